//! Test helpers: sample evidence, and an application walked along the happy path to any state.

use signet_pki::subject::CommonName;
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

use super::{
    ActivationCode, Actor, Application, ApplicationForm, ApplicationId, Command, IssuedSecret, OperatorId, PhoneNumber,
    Reason, Transition, TransitionError, VerificationToken,
};
use crate::clock::{Clock, FakeClock};
use crate::deadline::DeadlinePolicy;
use crate::evidence::{
    self, Attestation, CallOutcome, Carrier, FormPages, FormsReceipt, IdentityDocument, OfficerCallback, ProofingRule,
    Tracking, TrackingNumber,
};

pub(crate) const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);

pub(crate) fn op(name: &str) -> Actor {
    Actor::Operator(OperatorId::new(name).unwrap())
}

pub(crate) fn form(cert_type: &str) -> ApplicationForm {
    crate::fixtures::sample_form(cert_type)
}

pub(crate) fn tracking(n: &str) -> Tracking {
    Tracking { carrier: Carrier::Ups, number: TrackingNumber::new(Carrier::Ups, n).unwrap() }
}

pub(crate) fn notarized_forms(on: Date, received_on: Date) -> FormsReceipt {
    FormsReceipt {
        received_on,
        tracking: tracking("1Z999AA10123456784"),
        pages: FormPages { officer_verification: true, identity_verification: true, citizenship: None },
        attestation: Attestation::Notarized { notary_name: "Pat Notary".into(), seal_present: true, notarized_on: on },
    }
}

pub(crate) fn in_person_forms(on: Date, received_on: Date) -> FormsReceipt {
    FormsReceipt {
        attestation: Attestation::InPerson { registrar: OperatorId::new("ta.smith").unwrap(), attested_on: on },
        ..notarized_forms(on, received_on)
    }
}

pub(crate) fn callback(outcome: CallOutcome, at: OffsetDateTime) -> OfficerCallback {
    OfficerCallback {
        officer_name: CommonName::new("Sam Officer").unwrap(),
        phone: PhoneNumber::new("+1 206 555 0199").unwrap(),
        called_by: OperatorId::new("alice").unwrap(),
        called_at: at,
        outcome,
    }
}

pub(crate) fn passport() -> Vec<IdentityDocument> {
    vec![IdentityDocument::new("us-passport", "A12345678", Some(date!(2030 - 01 - 01))).unwrap()]
}

/// Steps with the clock's current time.
pub(crate) fn step(
    app: Application,
    actor: &Actor,
    cmd: Command,
    clock: &FakeClock,
) -> Result<Transition, TransitionError> {
    app.apply(actor, cmd, clock.now(), &DeadlinePolicy::default())
}

/// Walks an application to `target` (a state name) on the happy path from T0, notarized on
/// the submission day. Returns the application and the last secret issued.
pub(crate) fn walk(cert_type: &str, target: &str) -> (Application, Option<IssuedSecret>, FakeClock) {
    let clock = FakeClock::at(T0);
    let t = Application::submit(ApplicationId::generate(), form(cert_type), clock.now());
    let mut app = t.application;
    let mut secret = t.secret;
    let forms = if evidence::proofing_rule(cert_type) == ProofingRule::InPersonRegistrar {
        in_person_forms(T0.date(), T0.date() + Duration::days(3))
    } else {
        notarized_forms(T0.date(), T0.date() + Duration::days(3))
    };
    let day = Duration::days(1);
    let plan: Vec<(Actor, Command, Duration)> = vec![
        (Actor::Applicant, Command::VerifyEmail(VerificationToken::generate()), Duration::ZERO),
        (op("alice"), Command::RecordForms(forms), day * 3),
        (op("alice"), Command::RecordCallback(callback(CallOutcome::Confirmed, T0 + day * 3)), Duration::hours(2)),
        (op("alice"), Command::VerifyIdentity(passport()), Duration::hours(1)),
        (op("alice"), Command::Approve, Duration::hours(1)),
        (op("bob"), Command::Approve, Duration::hours(1)),
        (op("bob"), Command::ShipToken(tracking("1Z999AA10123456785")), day),
        (Actor::System, Command::IssueActivationCode, day * 4),
        (Actor::Applicant, Command::Retrieve(ActivationCode::generate()), day),
    ];
    for (actor, cmd, wait) in plan {
        if app.state().state_name() == target {
            break;
        }
        clock.advance(wait);
        let cmd = match (cmd, &secret) {
            (Command::VerifyEmail(_), Some(IssuedSecret::EmailVerification(t))) => Command::VerifyEmail(t.clone()),
            (Command::Retrieve(_), Some(IssuedSecret::Activation(c))) => Command::Retrieve(c.clone()),
            (c, _) => c,
        };
        let t = step(app, &actor, cmd, &clock).unwrap();
        app = t.application;
        if t.secret.is_some() {
            secret = t.secret;
        }
    }
    assert_eq!(app.state().state_name(), target);
    (app, secret, clock)
}

/// An application rejected or withdrawn after identity verification.
pub(crate) fn terminal(name: &str) -> Application {
    let (app, _, clock) = walk("medium", "identity-verified");
    let cmd = match name {
        "rejected" => (op("carol"), Command::Reject(Reason::new("fraud").unwrap())),
        "withdrawn" => (Actor::Applicant, Command::Withdraw),
        _ => unreachable!(),
    };
    step(app, &cmd.0, cmd.1, &clock).unwrap().application
}
