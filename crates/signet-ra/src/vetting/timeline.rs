//! The applicant's status-page timeline: the seed guide's milestones from the notary signature
//! (Day 1) to the retrieval deadline, each done, current or upcoming, with its date.

use time::{Date, Duration, OffsetDateTime};

use super::deadline;
use crate::application::{Application, ApplicationState};
use crate::deadline::{Deadline, DeadlinePolicy, retrieval_deadline};

/// Where a milestone stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MilestoneStatus {
    /// Happened.
    Done,
    /// The applicant is here: the next thing to happen.
    Current,
    /// Later.
    Upcoming,
}

/// One point of the applicant timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    /// Day number (Day 1 = notary signature).
    pub day: u16,
    /// Shown as "~Day n" (a typical day, not a rule).
    pub approximate: bool,
    /// What happens.
    pub label: &'static str,
    /// The actual date when done, else the expected one once the notary date is known.
    pub date: Option<Date>,
    /// Done, current or upcoming.
    pub status: MilestoneStatus,
}

/// The status page's timeline picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The milestones, the deadline last.
    pub milestones: Vec<Milestone>,
    /// Today's day number, once the notary date is known.
    pub today: Option<i64>,
    /// The governing deadline, while open.
    pub deadline: Option<Deadline>,
    /// Days left until it (0 on the last day), while open.
    pub days_remaining: Option<i64>,
}

/// The seed guide's timeline: (day, approximate, label, the progress that reaches it).
const MILESTONES: &[(u16, bool, &str, u8)] = &[
    (1, false, "Forms notarized and mailed", 2),
    (4, true, "Application received", 2),
    (5, true, "Token shipped", 7),
    // Delivery is not reported back; the activation-code email is the cue to plug the token in.
    (9, true, "Token received", 8),
    (10, true, "Certificates retrieved (do not wait!)", 9),
];

/// The applicant's timeline at `now`; `None` for rejected, expired and withdrawn applications.
pub fn timeline(app: &Application, now: OffsetDateTime, policy: &DeadlinePolicy) -> Option<Timeline> {
    let progress = app.state().progress()?;
    let today = now.date();
    let anchor = app.state().forms().map(|f| f.attestation.signed_on());
    let actual = |day: u16| -> Option<Date> {
        let state = app.state();
        match day {
            1 => anchor,
            4 => state.forms().map(|f| f.received_on),
            5 => state.shipment().map(|s| s.at.date()),
            10 => match state {
                ApplicationState::Retrieved { retrieved_at, .. } => Some(retrieved_at.date()),
                _ => None,
            },
            _ => None,
        }
    };
    let expected = |day: u16| anchor.map(|a| a + Duration::days(i64::from(day) - 1));
    let mut current_set = false;
    let mut milestones: Vec<Milestone> = MILESTONES
        .iter()
        .map(|&(day, approximate, label, reached_at)| {
            let done = progress >= reached_at;
            let status = if done {
                MilestoneStatus::Done
            } else if !current_set {
                current_set = true;
                MilestoneStatus::Current
            } else {
                MilestoneStatus::Upcoming
            };
            // A step done without a recorded day (the token's arrival) was done by today at the
            // latest: its expected day may still lie ahead when things went fast.
            let date = if done { actual(day).or_else(|| expected(day).map(|d| d.min(today))) } else { expected(day) };
            Milestone { day, approximate, label, date, status }
        })
        .collect();
    let deadline = deadline(app, policy);
    milestones.push(Milestone {
        day: policy.retrieval_days,
        approximate: false,
        label: "Deadline to retrieve certificates",
        date: anchor.map(|a| retrieval_deadline(a, policy).last_day),
        status: if progress >= 9 { MilestoneStatus::Done } else { MilestoneStatus::Upcoming },
    });
    Some(Timeline {
        milestones,
        today: anchor.map(|a| (today - a).whole_days() + 1),
        days_remaining: deadline.map(|d| d.days_left(today)),
        deadline,
    })
}
#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::application::testing::walk;
    use crate::application::{Actor, Command};
    use crate::clock::Clock;

    #[test]
    fn timeline_follows_the_application() {
        let p = DeadlinePolicy::default();
        let status = |t: &Timeline| t.milestones.iter().map(|m| m.status).collect::<Vec<_>>();
        use MilestoneStatus::{Current as C, Done as D, Upcoming as U};

        let (app, _, clock) = walk("medium-token", "email-verified");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [C, U, U, U, U, U]);
        assert_eq!((t.today, t.days_remaining), (None, Some(44)));
        assert!(t.milestones.iter().all(|m| m.date.is_none()), "no notary date yet");

        let (app, _, clock) = walk("medium-token", "token-shipped");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, C, U, U]);
        assert_eq!(t.today, Some(5), "shipped on Day 5, as the seed guide expects");
        assert_eq!(t.days_remaining, Some(25));
        assert_eq!(t.milestones[1].date, Some(date!(2025 - 03 - 06)), "actual date received");
        assert_eq!(t.milestones[4].date, Some(date!(2025 - 03 - 12)), "expected Day 10");
        assert_eq!((t.milestones[5].day, t.milestones[5].date), (30, Some(date!(2025 - 04 - 01))));

        let (app, _, clock) = walk("medium-token", "retrieved");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, D, D, D]);
        assert_eq!((t.deadline, t.days_remaining), (None, None));

        // Certificates ready the day the token shipped: the token's arrival, never reported,
        // is done by today, not on its expected day still ahead.
        let (shipped, _, clock) = walk("medium-token", "token-shipped");
        let app = shipped.apply(&Actor::System, Command::IssueActivationCode, clock.now(), &p).unwrap().application;
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, D, C, U]);
        let today = clock.now().date();
        for m in t.milestones.iter().filter(|m| m.status == D) {
            assert!(m.date.is_some_and(|d| d <= today), "{} done on {:?}, after {today}", m.label, m.date);
        }

        let (app, _, clock) = walk("medium", "submitted");
        let t = app.apply(&Actor::Applicant, Command::Withdraw, clock.now(), &p).unwrap();
        assert!(timeline(&t.application, clock.now(), &p).is_none());
    }
}
