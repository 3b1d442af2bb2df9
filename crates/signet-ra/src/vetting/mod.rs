//! Vetting (DESIGN §2 "Vetting"; seed onboarding guide Part 2) of one application: every
//! finding over the evidence it has so far ([`findings`]), for the operator console.
//!
//! Also the deadline engine: an application is open 45 days; once notarized, certificates must
//! be retrieved within 30 days of the notary signature or the application expires.
//! [`due_actions`] is the pure function the background job calls with the injected clock's
//! time, and [`timeline`] is the applicant's status-page picture (Day 1 … Day 30).
//!
//! The evidence and its checks (`evidence`) and the deadline rules (`deadline`) sit below the
//! application, whose lifecycle obeys them; they are re-exported here, where they have always
//! been named.

mod timeline;

use time::{Date, OffsetDateTime};

pub use timeline::{Milestone, MilestoneStatus, Timeline, timeline};

use crate::application::{Application, ApplicationState};
pub use crate::deadline::{Deadline, DeadlineKind, DeadlinePolicy, DeadlinePolicyError};
pub use crate::evidence::{
    ACCEPTED_DOCUMENTS, Attestation, CallOutcome, Carrier, Charset, DocumentKind, DocumentList, DocumentNumber,
    Finding, FormPages, FormsReceipt, IdentityDocument, NumberFormat, OfficerCallback, PROOFING_RULES, ProofingRule,
    Severity, Tracking, TrackingNumber, check_callback, check_forms, check_identity, proofing_rule,
};

/// Every finding over the evidence an application has so far, for the operator console.
pub fn findings(app: &Application, today: Date, policy: &DeadlinePolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    let submitted_on = app.submitted_at().date();
    if let Some(forms) = app.state().forms() {
        out.extend(check_forms(app.form(), submitted_on, forms, today, policy));
    }
    let officer_and_identity = match app.state() {
        ApplicationState::OfficerConfirmed { officer, .. } => Some((officer, None)),
        ApplicationState::IdentityVerified { vetting }
        | ApplicationState::FirstApproved { vetting, .. }
        | ApplicationState::Approved { vetting, .. }
        | ApplicationState::TokenShipped { vetting, .. }
        | ApplicationState::CertificatesReady { vetting, .. } => Some((&vetting.officer, Some(&vetting.identity))),
        _ => None,
    };
    if let Some((officer, identity)) = officer_and_identity {
        // Calls were checked against the clock when recorded; re-check them against the end of today.
        let end_of_today = today.with_hms(23, 59, 59).expect("valid time").assume_utc();
        out.extend(check_callback(app.form(), officer, end_of_today));
        if let Some(identity) = identity {
            out.extend(check_identity(&identity.documents, today));
        }
    }
    out
}

/// The deadline that governs an open application: the open window until the forms (and with
/// them the notary date) arrive, then the retrieval window. `None` once it is closed.
pub fn deadline(app: &Application, policy: &DeadlinePolicy) -> Option<Deadline> {
    app.deadline(policy)
}

/// What the background job should do for an application now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineAction {
    /// The deadline passed: apply [`crate::application::Command::Expire`].
    Expire,
    /// Remind the applicant. `threshold` is the configured reminder day this falls under — the
    /// outbox de-duplicates on it, so a job that runs hourly (or missed a day) reminds once.
    Remind {
        /// Days until the last day (0 on the last day).
        days_left: i64,
        /// The reminder day crossed (e.g. 7 for any of days 7 … 3 with reminders at 7 and 2).
        threshold: u16,
    },
}

/// The actions due for `app` at `now` (pure: the job passes its clock's time). Empty when
/// nothing is due or the application is closed.
pub fn due_actions(app: &Application, now: OffsetDateTime, policy: &DeadlinePolicy) -> Vec<DeadlineAction> {
    let Some(d) = deadline(app, policy) else { return Vec::new() };
    let today = now.date();
    if d.passed(today) {
        return vec![DeadlineAction::Expire];
    }
    let days_left = d.days_left(today);
    policy
        .reminder_days
        .iter()
        .copied()
        .filter(|&t| i64::from(t) >= days_left)
        .min()
        .map(|threshold| DeadlineAction::Remind { days_left, threshold })
        .into_iter()
        .collect()
}
#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::{date, datetime};

    use super::*;
    use crate::application::testing::{T0, notarized_forms, op, walk};
    use crate::application::{Actor, Command, TransitionError};
    use crate::clock::{Clock, FakeClock};

    #[test]
    fn findings_cover_the_recorded_evidence() {
        let (app, _, clock) = walk("medium", "approved");
        assert!(findings(&app, clock.now().date(), &DeadlinePolicy::default()).is_empty());
        let late = clock.now().date() + Duration::days(40);
        let codes: Vec<&str> = findings(&app, late, &DeadlinePolicy::default()).iter().map(|f| f.code).collect();
        assert_eq!(codes, ["signed-too-long-ago"]);
    }

    #[test]
    fn retrieval_expires_after_day_30_of_the_notarization() {
        // T0 is 2025-03-03 15:00; the forms were notarized that day (Day 1).
        let (app, _, _) = walk("medium-token", "certificates-ready");
        let p = DeadlinePolicy::default();
        let d = deadline(&app, &p).unwrap();
        assert_eq!((d.kind, d.last_day), (DeadlineKind::Retrieval, date!(2025 - 04 - 01)));
        assert_eq!(
            due_actions(&app, datetime!(2025-04-01 23:59:59 UTC), &p),
            [DeadlineAction::Remind { days_left: 0, threshold: 2 }]
        );
        assert_eq!(due_actions(&app, datetime!(2025-04-02 00:00 UTC), &p), [DeadlineAction::Expire]);
        let t = app.apply(&Actor::System, Command::Expire, datetime!(2025-04-02 00:00 UTC), &p).unwrap();
        assert!(due_actions(&t.application, datetime!(2025-05-01 00:00 UTC), &p).is_empty(), "closed: nothing due");
    }

    #[test]
    fn open_window_expires_after_45_days_without_forms() {
        let (app, _, _) = walk("medium", "email-verified");
        let p = DeadlinePolicy::default();
        let d = deadline(&app, &p).unwrap();
        // Submitted 2025-03-03 (Day 1); Day 45 is 2025-04-16.
        assert_eq!((d.kind, d.last_day), (DeadlineKind::Open, date!(2025 - 04 - 16)));
        let clock = FakeClock::at(T0);
        clock.advance(Duration::days(44));
        assert_ne!(due_actions(&app, clock.now(), &p), [DeadlineAction::Expire]);
        let early = app.clone().apply(&Actor::System, Command::Expire, clock.now(), &p).unwrap_err();
        assert_eq!(early, TransitionError::NotYetDue(d));
        clock.advance(Duration::days(1));
        assert_eq!(due_actions(&app, clock.now(), &p), [DeadlineAction::Expire]);
        // Nothing but expiry, rejection or withdrawal is possible now.
        let forms = notarized_forms(clock.now().date(), clock.now().date());
        let late = app.clone().apply(&op("alice"), Command::RecordForms(forms), clock.now(), &p).unwrap_err();
        assert_eq!(late, TransitionError::DeadlinePassed(d));
        assert!(app.apply(&Actor::System, Command::Expire, clock.now(), &p).is_ok());
    }

    #[test]
    fn reminders_fire_once_per_threshold() {
        let (app, _, _) = walk("medium-token", "token-shipped");
        let p = DeadlinePolicy::default();
        let on = |d: Date| due_actions(&app, d.with_hms(9, 0, 0).unwrap().assume_utc(), &p);
        let last = date!(2025 - 04 - 01);
        assert!(on(last - Duration::days(8)).is_empty());
        let seven = on(last - Duration::days(7));
        assert_eq!(seven, [DeadlineAction::Remind { days_left: 7, threshold: 7 }]);
        assert_eq!(on(last - Duration::days(3)), [DeadlineAction::Remind { days_left: 3, threshold: 7 }]);
        assert_eq!(on(last - Duration::days(2)), [DeadlineAction::Remind { days_left: 2, threshold: 2 }]);
        assert_eq!(on(last), [DeadlineAction::Remind { days_left: 0, threshold: 2 }]);
        let custom = DeadlinePolicy { reminder_days: vec![14], ..DeadlinePolicy::default() };
        assert_eq!(
            due_actions(&app, (last - Duration::days(10)).midnight().assume_utc(), &custom),
            [DeadlineAction::Remind { days_left: 10, threshold: 14 }]
        );
    }
}
