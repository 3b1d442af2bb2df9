//! The deadline rules: how long an application stays open before its forms arrive, how long
//! after the signature its certificates may be retrieved, when to remind, and the deadline those
//! rules give. Counted in calendar days (UTC); the engine that applies them to an application
//! is `vetting`'s.

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::input::iso_date;

/// The deadline rules, as configuration. Day numbers follow the seed guide's timeline: the day
/// of the notary signature is Day 1, so a 30-day window's last day is Day 30 (signature + 29
/// days) — the stricter reading of "within 30 days", never past the window under either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlinePolicy {
    /// Days an application stays open before its forms are received (DESIGN §2: 45).
    pub open_days: u16,
    /// Days from the notary (or registrar) signature to retrieve certificates (DESIGN §2: 30).
    pub retrieval_days: u16,
    /// Days before the deadline to remind the applicant.
    pub reminder_days: Vec<u16>,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self { open_days: 45, retrieval_days: 30, reminder_days: vec![7, 2] }
    }
}

/// Why a deadline policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlinePolicyError {
    /// A window is empty or longer than a year.
    #[error("{field} must be 1 to 365 days, not {days}")]
    Window {
        /// `open_days` or `retrieval_days`.
        field: &'static str,
        /// The days given.
        days: u16,
    },
    /// A reminder would come before its window opens, or twice.
    #[error(
        "reminder_days must each be fewer days than both windows ({shortest}) and appear once; {days} does not fit"
    )]
    Reminder {
        /// The reminder that does not fit.
        days: u16,
        /// The shorter window.
        shortest: u16,
    },
}

impl DeadlinePolicy {
    /// A policy from an operator's settings: both windows 1 to 365 days, each reminder inside
    /// both windows (a reminder is sent that many days before either deadline).
    pub fn new(open_days: u16, retrieval_days: u16, mut reminder_days: Vec<u16>) -> Result<Self, DeadlinePolicyError> {
        for (field, days) in [("open_days", open_days), ("retrieval_days", retrieval_days)] {
            if !(1..=365).contains(&days) {
                return Err(DeadlinePolicyError::Window { field, days });
            }
        }
        let shortest = open_days.min(retrieval_days);
        reminder_days.sort_unstable_by(|a, b| b.cmp(a));
        for pair in reminder_days.windows(2) {
            if pair[0] == pair[1] {
                return Err(DeadlinePolicyError::Reminder { days: pair[0], shortest });
            }
        }
        if let Some(&days) = reminder_days.iter().find(|&&d| d >= shortest) {
            return Err(DeadlinePolicyError::Reminder { days, shortest });
        }
        Ok(Self { open_days, retrieval_days, reminder_days })
    }
}

/// Which rule a deadline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineKind {
    /// The application's open window, counted from submission.
    Open,
    /// The retrieval window, counted from the notary signature.
    Retrieval,
}

impl DeadlineKind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Retrieval => "retrieval",
        }
    }
}

/// A deadline: the last calendar day (UTC) on which the application may still progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The rule.
    pub kind: DeadlineKind,
    /// The last day.
    #[serde(with = "iso_date")]
    pub last_day: Date,
}

impl Deadline {
    /// Whole days from `today` to the last day (0 on the last day, negative after it).
    pub fn days_left(&self, today: Date) -> i64 {
        (self.last_day - today).whole_days()
    }
    /// Whether `today` is past the last day.
    pub fn passed(&self, today: Date) -> bool {
        today > self.last_day
    }

    /// The deadline that governs an open application submitted on `submitted_on`: the open
    /// window until the forms arrive, then the retrieval window from `signed_on`, the day they
    /// were notarized (or attested in person).
    pub(crate) fn governing(submitted_on: Date, signed_on: Option<Date>, policy: &DeadlinePolicy) -> Self {
        match signed_on {
            Some(signed_on) => retrieval_deadline(signed_on, policy),
            None => Self { kind: DeadlineKind::Open, last_day: window(submitted_on, policy.open_days) },
        }
    }
}

/// The last day of a window of `days` days whose first day is `start`.
fn window(start: Date, days: u16) -> Date {
    start + Duration::days(i64::from(days.max(1)) - 1)
}

/// The retrieval window that a signature on `signed_on` opens.
pub(crate) fn retrieval_deadline(signed_on: Date, policy: &DeadlinePolicy) -> Deadline {
    Deadline { kind: DeadlineKind::Retrieval, last_day: window(signed_on, policy.retrieval_days) }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_deadline_policy_is_checked() {
        assert_eq!(DeadlinePolicy::new(45, 30, vec![2, 7]).unwrap(), DeadlinePolicy::default());
        assert_eq!(
            DeadlinePolicy::new(0, 30, vec![]).unwrap_err().to_string(),
            "open_days must be 1 to 365 days, not 0"
        );
        assert!(matches!(
            DeadlinePolicy::new(45, 400, vec![]),
            Err(DeadlinePolicyError::Window { field: "retrieval_days", .. })
        ));
        assert_eq!(
            DeadlinePolicy::new(45, 30, vec![7, 30]).unwrap_err(),
            DeadlinePolicyError::Reminder { days: 30, shortest: 30 }
        );
        assert!(matches!(DeadlinePolicy::new(45, 30, vec![7, 7]), Err(DeadlinePolicyError::Reminder { days: 7, .. })));
        assert_eq!(DeadlinePolicy::new(60, 45, vec![]).unwrap().reminder_days, Vec::<u16>::new());
    }
}
