//! The lifecycle: the commands an actor gives an application, who may give which, and the
//! transition each makes — checked against vetting's rules and the governing deadline, with its
//! audit event and any one-time secret to email.

use serde_json::json;
use time::OffsetDateTime;

use super::state::{
    ActivationRecord, ApplicationState, Approval, DualApproval, IdentityRecord, Reason, Shipment, Vetting,
};
use crate::application_form::ApplicationForm;
use crate::audit::{AuditAction, AuditEvent};
use crate::deadline::{Deadline, DeadlinePolicy};
use crate::evidence::{
    self, Attestation, CallOutcome, Finding, FormsReceipt, IdentityDocument, OfficerCallback, ProofingRule, Tracking,
};
use crate::ids::{Actor, ApplicationId, OperatorId};
use crate::secrets::{ActivationCode, IssuedSecret, SecretDigest, VerificationToken};

/// What an actor asks an application to do. The web layer builds one from a form post; the
/// deadline job builds `Expire`.
#[derive(Debug, Clone)]
pub enum Command {
    /// The applicant followed the email link (applicant).
    VerifyEmail(VerificationToken),
    /// The notarized forms arrived by mail (operator).
    RecordForms(FormsReceipt),
    /// A call-back to the organization officer was made (operator; the caller is the actor).
    RecordCallback(OfficerCallback),
    /// Identity documents were checked against the forms (operator).
    VerifyIdentity(Vec<IdentityDocument>),
    /// An approval (operator); the second must come from a different operator.
    Approve,
    /// The token was shipped (operator).
    ShipToken(Tracking),
    /// Certificates are ready: issue and email the activation code (operator or system).
    IssueActivationCode,
    /// The applicant presented the activation code to retrieve (applicant; the web layer
    /// checks the account password first).
    Retrieve(ActivationCode),
    /// Refuse the application (operator).
    Reject(Reason),
    /// Withdraw it (applicant, or an operator on the applicant's behalf).
    Withdraw,
    /// Expire it after its deadline passed (system).
    Expire,
}

impl Command {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::VerifyEmail(_) => "verify-email",
            Self::RecordForms(_) => "record-forms",
            Self::RecordCallback(_) => "record-callback",
            Self::VerifyIdentity(_) => "verify-identity",
            Self::Approve => "approve",
            Self::ShipToken(_) => "ship-token",
            Self::IssueActivationCode => "issue-activation-code",
            Self::Retrieve(_) => "retrieve",
            Self::Reject(_) => "reject",
            Self::Withdraw => "withdraw",
            Self::Expire => "expire",
        }
    }

    fn permits(&self, actor: &Actor) -> bool {
        match self {
            Self::VerifyEmail(_) | Self::Retrieve(_) => matches!(actor, Actor::Applicant),
            Self::RecordForms(_)
            | Self::RecordCallback(_)
            | Self::VerifyIdentity(_)
            | Self::Approve
            | Self::ShipToken(_)
            | Self::Reject(_) => matches!(actor, Actor::Operator(_)),
            Self::IssueActivationCode => matches!(actor, Actor::Operator(_) | Actor::System),
            Self::Withdraw => matches!(actor, Actor::Applicant | Actor::Operator(_)),
            Self::Expire => matches!(actor, Actor::System),
        }
    }
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The command does not apply in the current state.
    #[error("cannot {command} an application that is {state}")]
    NotAllowed {
        /// Current state name.
        state: &'static str,
        /// Command name.
        command: &'static str,
    },
    /// This actor may not give this command.
    #[error("{actor} may not {command}")]
    NotPermitted {
        /// The actor's audit name.
        actor: String,
        /// Command name.
        command: &'static str,
    },
    /// The email link's token is not this application's.
    #[error("this verification link is not valid for the application")]
    WrongVerificationToken,
    /// The activation code does not match (or was already used).
    #[error("the activation code is not correct")]
    WrongActivationCode,
    /// Vetting found blocking problems; each finding says what to fix.
    #[error("vetting found problems: {}", .0.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "))]
    Vetting(Vec<Finding>),
    /// The type needs in-person proofing by a registrar or Trusted Agent, not a notary
    /// (DESIGN §2: Medium Hardware Assurance).
    #[error("{cert_type} requires identity proofing in person by a registrar or Trusted Agent, not a notary")]
    InPersonProofingRequired {
        /// The certificate type id.
        cert_type: String,
    },
    /// The second approval came from the operator who gave the first.
    #[error("{0} already approved this application; a different operator must give the second approval")]
    SameApprover(OperatorId),
    /// The application's deadline has passed; only expiry (or rejection/withdrawal) remains.
    #[error("the deadline ({}) has passed", .0.last_day)]
    DeadlinePassed(Deadline),
    /// Expiry was asked for before the deadline.
    #[error("the deadline ({}) has not passed yet", .0.last_day)]
    NotYetDue(Deadline),
}

/// An application: the submitted form plus where it is in its lifecycle. Only transitions and
/// [`Application::restore`] (the store's constructor) make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    id: ApplicationId,
    form: ApplicationForm,
    submitted_at: OffsetDateTime,
    revision: u32,
    state: ApplicationState,
}

/// The result of a transition: the next application, its audit event, and any secret to email.
/// The store saves the application and the audit event (and the outbox messages rendered from
/// this by the notifier's `outbox_for`) in one transaction.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The application in its new state, with `revision` one higher.
    pub application: Application,
    /// The audit event to chain.
    pub audit: AuditEvent,
    /// A one-time secret to email, if this transition made one.
    pub secret: Option<IssuedSecret>,
}

impl Application {
    /// A new application, submitted at `now`. Revision 0; the secret is the email link token.
    pub fn submit(id: ApplicationId, form: ApplicationForm, now: OffsetDateTime) -> Transition {
        let token = VerificationToken::generate();
        let audit = AuditEvent::new(
            now,
            &Actor::Applicant.audit_name(),
            AuditAction::ApplicationSubmitted,
            id.as_str(),
            json!({
                "program": form.program.as_str(),
                "cert_type": form.certificate.cert_type(),
                "validity_years": form.certificate.years(),
                "price_cents": form.certificate.price().0,
                "payment": form.payment.method(),
                "organization": form.organization.as_str(),
            }),
        );
        let state = ApplicationState::Submitted { email_token: SecretDigest::of(token.expose()) };
        Transition {
            application: Self { id, form, submitted_at: now, revision: 0, state },
            audit,
            secret: Some(IssuedSecret::EmailVerification(token)),
        }
    }

    /// Rebuilds a stored application (the store's constructor).
    pub fn restore(
        id: ApplicationId,
        form: ApplicationForm,
        submitted_at: OffsetDateTime,
        revision: u32,
        state: ApplicationState,
    ) -> Self {
        Self { id, form, submitted_at, revision, state }
    }

    /// The reference.
    pub fn id(&self) -> &ApplicationId {
        &self.id
    }
    /// The submitted form.
    pub fn form(&self) -> &ApplicationForm {
        &self.form
    }
    /// When it was submitted.
    pub fn submitted_at(&self) -> OffsetDateTime {
        self.submitted_at
    }
    /// Bumped by every transition: the store saves only over revision − 1, so two operators
    /// acting at once cannot both win.
    pub fn revision(&self) -> u32 {
        self.revision
    }
    /// The current state.
    pub fn state(&self) -> &ApplicationState {
        &self.state
    }
    /// Whether the type needs in-person proofing (not a notary).
    pub fn proofing_rule(&self) -> ProofingRule {
        evidence::proofing_rule(self.form.certificate.cert_type())
    }

    /// The deadline that governs it while open: the open window until the forms (and with
    /// them the signature date) arrive, then the retrieval window. `None` once it is closed.
    pub(crate) fn deadline(&self, policy: &DeadlinePolicy) -> Option<Deadline> {
        let signed_on = self.state.forms().map(|f| f.attestation.signed_on());
        self.state.is_open().then(|| Deadline::governing(self.submitted_at.date(), signed_on, policy))
    }

    /// Applies a command, consuming the application. On success the next application (revision
    /// + 1), its audit event and any secret to email; on refusal nothing changed.
    pub fn apply(
        self,
        actor: &Actor,
        command: Command,
        now: OffsetDateTime,
        policy: &DeadlinePolicy,
    ) -> Result<Transition, TransitionError> {
        let from = self.state.state_name();
        if !command.permits(actor) {
            return Err(TransitionError::NotPermitted { actor: actor.audit_name(), command: command.name() });
        }
        let not_allowed = |command: &Command| TransitionError::NotAllowed { state: from, command: command.name() };
        let deadline = self.deadline(policy);
        let passed = deadline.as_ref().filter(|d| d.passed(now.date()));
        match (&command, passed) {
            (Command::Reject(_) | Command::Withdraw, _) => {}
            (Command::Expire, None) => {
                return Err(match deadline {
                    Some(d) => TransitionError::NotYetDue(d),
                    None => not_allowed(&command),
                });
            }
            (Command::Expire, Some(_)) => {}
            // DESIGN §2: after the deadline the application expires; nothing else may happen,
            // even if the background job has not run yet.
            (_, Some(d)) => return Err(TransitionError::DeadlinePassed(*d)),
            (_, None) => {}
        }
        let rule = self.proofing_rule();
        let Self { id, form, submitted_at, revision, state } = self;
        let operator = match actor {
            Actor::Operator(op) => Some(op.clone()),
            _ => None,
        };
        let by = || operator.clone().expect("operator-only commands were checked by Command::permits");
        use ApplicationState as S;
        let mut secret = None;
        let (next, action, details) = match (state, command) {
            (S::Submitted { email_token }, Command::VerifyEmail(token)) => {
                if !email_token.matches(token.expose()) {
                    return Err(TransitionError::WrongVerificationToken);
                }
                (S::EmailVerified { verified_at: now }, AuditAction::EmailVerified, json!({}))
            }
            (S::EmailVerified { .. }, Command::RecordForms(forms)) => {
                if rule == ProofingRule::InPersonRegistrar && matches!(forms.attestation, Attestation::Notarized { .. })
                {
                    return Err(TransitionError::InPersonProofingRequired {
                        cert_type: form.certificate.cert_type().to_owned(),
                    });
                }
                blocking(evidence::check_forms(&form, submitted_at.date(), &forms, now.date(), policy))?;
                let details = json!({
                    "carrier": forms.tracking.carrier.name(),
                    "tracking": forms.tracking.number.as_str(),
                    "attestation": forms.attestation.kind(),
                    "signed_on": forms.attestation.signed_on().to_string(),
                    "received_on": forms.received_on.to_string(),
                });
                (S::FormsReceived { forms, call_attempts: Vec::new() }, AuditAction::FormsReceived, details)
            }
            (S::FormsReceived { forms, mut call_attempts }, Command::RecordCallback(call)) => {
                blocking(evidence::check_callback(&form, &call, now))?;
                let details = json!({
                    "officer": call.officer_name.as_str(),
                    "phone": call.phone.as_str(),
                    "outcome": call.outcome.name(),
                    "called_at": call.called_at.unix_timestamp(),
                    "called_by": call.called_by.as_str(),
                });
                match call.outcome {
                    CallOutcome::Confirmed => (
                        S::OfficerConfirmed { forms, call_attempts, officer: call },
                        AuditAction::OfficerConfirmed,
                        details,
                    ),
                    CallOutcome::NoAnswer | CallOutcome::LeftMessage => {
                        call_attempts.push(call);
                        (S::FormsReceived { forms, call_attempts }, AuditAction::OfficerCallAttempted, details)
                    }
                    // An officer who will not confirm employment ends the application: the
                    // organization OU in the certificate would be unvouched for.
                    CallOutcome::Denied => {
                        let reason = Reason::new("The organization officer did not confirm your employment.")
                            .expect("fixed reason is valid");
                        let details = json!({ "from": from, "reason": reason.as_str(), "call": details });
                        (
                            S::Rejected { from: from.to_owned(), by: call.called_by, reason, at: now },
                            AuditAction::ApplicationRejected,
                            details,
                        )
                    }
                }
            }
            (S::OfficerConfirmed { forms, call_attempts, officer }, Command::VerifyIdentity(documents)) => {
                if rule == ProofingRule::InPersonRegistrar && matches!(forms.attestation, Attestation::Notarized { .. })
                {
                    return Err(TransitionError::InPersonProofingRequired {
                        cert_type: form.certificate.cert_type().to_owned(),
                    });
                }
                blocking(evidence::check_identity(&documents, now.date()))?;
                let details = json!({
                    "documents": documents.iter().map(|d| json!({
                        "type": d.kind().id, "number": d.number().masked(),
                    })).collect::<Vec<_>>(),
                });
                let identity = IdentityRecord { documents, by: by(), at: now };
                (
                    S::IdentityVerified { vetting: Vetting { forms, call_attempts, officer, identity } },
                    AuditAction::IdentityVerified,
                    details,
                )
            }
            (S::IdentityVerified { vetting }, Command::Approve) => (
                S::FirstApproved { vetting, first: Approval { by: by(), at: now } },
                AuditAction::ApplicationFirstApproval,
                json!({ "approver": 1 }),
            ),
            (S::FirstApproved { vetting, first }, Command::Approve) => {
                let second = by();
                if second == first.by {
                    return Err(TransitionError::SameApprover(second));
                }
                let details = json!({ "first": first.by.as_str(), "second": second.as_str() });
                let approvals = DualApproval { first, second: Approval { by: second, at: now } };
                (S::Approved { vetting, approvals }, AuditAction::ApplicationApproved, details)
            }
            (S::Approved { vetting, approvals }, Command::ShipToken(tracking)) => {
                let details = json!({ "carrier": tracking.carrier.name(), "tracking": tracking.number.as_str() });
                let shipment = Shipment { tracking, by: by(), at: now };
                (S::TokenShipped { vetting, approvals, shipment }, AuditAction::TokenShipped, details)
            }
            (S::TokenShipped { vetting, approvals, shipment }, Command::IssueActivationCode) => {
                let code = ActivationCode::generate();
                let activation = ActivationRecord { digest: SecretDigest::of(code.secret()), issued_at: now };
                secret = Some(IssuedSecret::Activation(code));
                (
                    S::CertificatesReady { vetting, approvals, shipment, activation },
                    AuditAction::CertificatesReady,
                    json!({}),
                )
            }
            (S::CertificatesReady { vetting, approvals, shipment, activation }, Command::Retrieve(code)) => {
                if !activation.digest.matches(code.secret()) {
                    return Err(TransitionError::WrongActivationCode);
                }
                // The digest is dropped here, so the code is spent: single use (DESIGN §2).
                (
                    S::Retrieved { vetting, approvals, shipment, retrieved_at: now },
                    AuditAction::ApplicationRetrieved,
                    json!({}),
                )
            }
            (s, Command::Reject(reason)) if s.is_open() => {
                let details = json!({ "from": from, "reason": reason.as_str() });
                (
                    S::Rejected { from: from.to_owned(), by: by(), reason, at: now },
                    AuditAction::ApplicationRejected,
                    details,
                )
            }
            (s, Command::Withdraw) if s.is_open() => (
                S::Withdrawn { from: from.to_owned(), at: now },
                AuditAction::ApplicationWithdrawn,
                json!({ "from": from }),
            ),
            (s, Command::Expire) if s.is_open() => {
                let deadline = deadline.expect("an open application has a deadline");
                let details = json!({ "from": from, "deadline": deadline.kind.name(), "last_day": deadline.last_day.to_string() });
                (S::Expired { from: from.to_owned(), deadline, at: now }, AuditAction::ApplicationExpired, details)
            }
            (_, command) => return Err(not_allowed(&command)),
        };
        let audit = AuditEvent::new(now, &actor.audit_name(), action, id.as_str(), details);
        Ok(Transition {
            application: Self { id, form, submitted_at, revision: revision + 1, state: next },
            audit,
            secret,
        })
    }
}

fn blocking(findings: Vec<Finding>) -> Result<(), TransitionError> {
    if findings.iter().any(Finding::is_blocking) { Err(TransitionError::Vetting(findings)) } else { Ok(()) }
}
#[cfg(test)]
mod tests {
    use serde_json::json;
    use signet_pki::profile::Catalog;
    use time::Duration;
    use time::macros::{date, datetime};

    use super::*;
    use crate::application::testing::{
        T0, callback, form, in_person_forms, notarized_forms, op, passport, step, terminal, tracking, walk,
    };
    use crate::application::{ALL_STATE_NAMES, CertificateChoice, PriceTable};
    use crate::clock::{Clock, FakeClock};

    #[test]
    fn happy_path_end_to_end() {
        let clock = FakeClock::at(T0);
        let submitted = Application::submit(ApplicationId::generate(), form("medium-token"), clock.now());
        assert_eq!(submitted.audit.action, AuditAction::ApplicationSubmitted);
        assert_eq!(submitted.audit.details["price_cents"], 27_900);
        let Some(IssuedSecret::EmailVerification(token)) = submitted.secret else { panic!("no email token") };
        let app = submitted.application;
        assert_eq!((app.state().state_name(), app.revision()), ("submitted", 0));

        let t = step(app, &Actor::Applicant, Command::VerifyEmail(token), &clock).unwrap();
        assert_eq!(t.audit.action, AuditAction::EmailVerified);
        clock.advance(Duration::days(3));
        let forms = notarized_forms(T0.date(), clock.now().date());
        let t = step(t.application, &op("alice"), Command::RecordForms(forms), &clock).unwrap();
        assert_eq!(t.audit.details["tracking"], "1Z999AA10123456784");
        let t = step(
            t.application,
            &op("alice"),
            Command::RecordCallback(callback(CallOutcome::NoAnswer, clock.now())),
            &clock,
        )
        .unwrap();
        assert_eq!(
            (t.application.state().state_name(), t.audit.action),
            ("forms-received", AuditAction::OfficerCallAttempted)
        );
        let t = step(
            t.application,
            &op("alice"),
            Command::RecordCallback(callback(CallOutcome::Confirmed, clock.now())),
            &clock,
        )
        .unwrap();
        assert_eq!(t.audit.action, AuditAction::OfficerConfirmed);
        let ApplicationState::OfficerConfirmed { call_attempts, .. } = t.application.state() else { panic!() };
        assert_eq!(call_attempts.len(), 1, "the missed call is kept");
        let t = step(t.application, &op("alice"), Command::VerifyIdentity(passport()), &clock).unwrap();
        assert_eq!(t.audit.details["documents"][0]["number"], "*****5678", "audit never holds the full number");
        let t = step(t.application, &op("alice"), Command::Approve, &clock).unwrap();
        assert_eq!(t.application.state().state_name(), "first-approved");
        let t = step(t.application, &op("bob"), Command::Approve, &clock).unwrap();
        assert_eq!((t.audit.action, t.audit.actor.as_str()), (AuditAction::ApplicationApproved, "operator:bob"));
        clock.advance(Duration::days(1));
        let t = step(t.application, &op("bob"), Command::ShipToken(tracking("1Z999AA10123456785")), &clock).unwrap();
        assert_eq!(t.application.state().shipment().unwrap().tracking.number.as_str(), "1Z999AA10123456785");
        clock.advance(Duration::days(4));
        let t = step(t.application, &Actor::System, Command::IssueActivationCode, &clock).unwrap();
        let Some(IssuedSecret::Activation(code)) = t.secret.clone() else { panic!("no activation code") };
        assert_eq!(t.audit.details, json!({}), "the code is never audited");
        clock.advance(Duration::days(1));
        let wrong = ActivationCode::new("ZZZZ-ZZZZ-ZZZZ-ZZZZ").unwrap();
        let app = t.application;
        assert_eq!(
            step(app.clone(), &Actor::Applicant, Command::Retrieve(wrong), &clock).unwrap_err(),
            TransitionError::WrongActivationCode
        );
        // Typed as the email shows it, lowercased, with O for 0: still the code.
        let typed = ActivationCode::new(&code.expose().to_lowercase().replace('0', "o")).unwrap();
        let t = step(app, &Actor::Applicant, Command::Retrieve(typed), &clock).unwrap();
        assert_eq!(
            (t.application.state().state_name(), t.audit.action),
            ("retrieved", AuditAction::ApplicationRetrieved)
        );
        assert_eq!(t.application.revision(), 10);
        assert!(!t.application.state().is_open());
        // Single use: a retrieved application takes no second retrieval.
        assert!(matches!(
            step(t.application, &Actor::Applicant, Command::Retrieve(code), &clock),
            Err(TransitionError::NotAllowed { state: "retrieved", command: "retrieve" })
        ));
    }

    fn sample_commands() -> Vec<(Actor, Command)> {
        let d = T0.date();
        vec![
            (Actor::Applicant, Command::VerifyEmail(VerificationToken::generate())),
            (op("carol"), Command::RecordForms(notarized_forms(d, d))),
            (op("carol"), Command::RecordCallback(callback(CallOutcome::Confirmed, T0))),
            (op("carol"), Command::VerifyIdentity(passport())),
            (op("carol"), Command::Approve),
            (op("carol"), Command::ShipToken(tracking("1Z999AA10123456786"))),
            (Actor::System, Command::IssueActivationCode),
            (Actor::Applicant, Command::Retrieve(ActivationCode::generate())),
            (op("carol"), Command::Reject(Reason::new("no").unwrap())),
            (Actor::Applicant, Command::Withdraw),
            (Actor::System, Command::Expire),
        ]
    }

    /// The happy-path command that moves each open state on.
    fn forward(state: &str) -> &'static str {
        match state {
            "submitted" => "verify-email",
            "email-verified" => "record-forms",
            "forms-received" => "record-callback",
            "officer-confirmed" => "verify-identity",
            "identity-verified" | "first-approved" => "approve",
            "approved" => "ship-token",
            "token-shipped" => "issue-activation-code",
            "certificates-ready" => "retrieve",
            _ => "",
        }
    }

    #[test]
    fn every_illegal_transition_is_refused() {
        let mut states: Vec<Application> = ALL_STATE_NAMES[..10].iter().map(|s| walk("medium", s).0).collect();
        states.push(terminal("rejected"));
        states.push(terminal("withdrawn"));
        // Within the deadline (day 3 after notarization), so only the state decides.
        let now = T0 + Duration::days(3);
        for app in states {
            let name = app.state().state_name();
            for (actor, cmd) in sample_commands() {
                let cmd_name = cmd.name();
                let result = app.clone().apply(&actor, cmd, now, &DeadlinePolicy::default());
                let closing = matches!(cmd_name, "reject" | "withdraw") && app.state().is_open();
                if cmd_name == forward(name) {
                    // Legal, though the sample evidence may be wrong (wrong token/code, same
                    // approver): never NotAllowed.
                    assert!(
                        !matches!(result, Err(TransitionError::NotAllowed { .. })),
                        "{name} {cmd_name}: {result:?}"
                    );
                } else if closing {
                    assert!(result.is_ok(), "{name} {cmd_name}: {result:?}");
                } else if cmd_name == "expire" && app.state().is_open() {
                    assert!(matches!(result, Err(TransitionError::NotYetDue(_))), "{name}: {result:?}");
                } else {
                    assert_eq!(
                        result.unwrap_err(),
                        TransitionError::NotAllowed { state: name, command: cmd_name },
                        "{name} {cmd_name}"
                    );
                }
            }
        }
    }

    #[test]
    fn actors_are_checked() {
        let (app, _, clock) = walk("medium", "identity-verified");
        for (actor, cmd) in [
            (Actor::Applicant, Command::Approve),
            (Actor::System, Command::Approve),
            (op("alice"), Command::Retrieve(ActivationCode::generate())),
            (op("alice"), Command::Expire),
            (Actor::System, Command::Withdraw),
            (Actor::Applicant, Command::Reject(Reason::new("x").unwrap())),
        ] {
            let name = cmd.name();
            let err = step(app.clone(), &actor, cmd, &clock).unwrap_err();
            assert!(matches!(err, TransitionError::NotPermitted { command, .. } if command == name), "{err:?}");
        }
    }

    #[test]
    fn two_different_operators_must_approve() {
        let (app, _, clock) = walk("medium-token", "first-approved");
        let ApplicationState::FirstApproved { first, .. } = app.state() else { panic!() };
        assert_eq!(first.by.as_str(), "alice");
        let err = step(app.clone(), &op("alice"), Command::Approve, &clock).unwrap_err();
        assert_eq!(err, TransitionError::SameApprover(OperatorId::new("alice").unwrap()));
        assert!(err.to_string().contains("different operator"));
        let t = step(app, &op("bob"), Command::Approve, &clock).unwrap();
        let ApplicationState::Approved { approvals, .. } = t.application.state() else { panic!() };
        assert_ne!(approvals.first.by, approvals.second.by);
    }

    #[test]
    fn medium_hardware_refuses_a_notary() {
        let (app, _, clock) = walk("medium-hardware", "email-verified");
        let forms = notarized_forms(T0.date(), T0.date() + Duration::days(3));
        clock.advance(Duration::days(3));
        let err = step(app.clone(), &op("alice"), Command::RecordForms(forms), &clock).unwrap_err();
        assert_eq!(err, TransitionError::InPersonProofingRequired { cert_type: "medium-hardware".into() });
        let forms = in_person_forms(T0.date(), T0.date() + Duration::days(3));
        assert!(step(app, &op("alice"), Command::RecordForms(forms), &clock).is_ok());
        // And the whole path works with a registrar.
        walk("medium-hardware", "retrieved");
    }

    #[test]
    fn medium_hardware_refuses_a_notary_at_identity_verification_too() {
        // A record written before the rule (or by a faulty import) is still caught.
        let (app, _, clock) = walk("medium", "officer-confirmed");
        let mut hardware_form = app.form().clone();
        hardware_form.certificate =
            CertificateChoice::new(&Catalog::default_eca(), &PriceTable::default(), "medium-hardware", 1).unwrap();
        let app = Application::restore(app.id().clone(), hardware_form, app.submitted_at(), 4, app.state().clone());
        let err = step(app, &op("alice"), Command::VerifyIdentity(passport()), &clock).unwrap_err();
        assert!(matches!(err, TransitionError::InPersonProofingRequired { .. }));
    }

    #[test]
    fn blocking_findings_refuse_the_step() {
        let (app, _, clock) = walk("medium", "email-verified");
        let mut forms = notarized_forms(T0.date(), T0.date());
        forms.attestation =
            Attestation::Notarized { notary_name: "Pat".into(), seal_present: false, notarized_on: T0.date() };
        let TransitionError::Vetting(findings) =
            step(app, &op("alice"), Command::RecordForms(forms), &clock).unwrap_err()
        else {
            panic!()
        };
        assert!(findings.iter().any(|f| f.code == "notary-seal-missing"), "{findings:?}");
    }

    #[test]
    fn denied_callback_rejects_and_wrong_token_is_refused() {
        let (app, _, clock) = walk("medium", "forms-received");
        let t = step(app, &op("alice"), Command::RecordCallback(callback(CallOutcome::Denied, clock.now())), &clock)
            .unwrap();
        let ApplicationState::Rejected { from, reason, .. } = t.application.state() else { panic!() };
        assert_eq!(from, "forms-received");
        assert!(reason.as_str().contains("officer"));
        let (app, _, clock) = walk("medium", "submitted");
        let err =
            step(app, &Actor::Applicant, Command::VerifyEmail(VerificationToken::generate()), &clock).unwrap_err();
        assert_eq!(err, TransitionError::WrongVerificationToken);
    }

    #[test]
    fn retrieval_after_the_deadline_is_refused_before_the_job_runs() {
        let (app, secret, clock) = walk("medium-token", "certificates-ready");
        let Some(IssuedSecret::Activation(code)) = secret else { panic!() };
        // Notarized on T0's date (Day 1); Day 30 is T0 + 29 days; Day 31 is too late.
        let day31 = datetime!(2025-04-02 00:00 UTC);
        assert!(clock.now() < day31);
        let err =
            app.clone().apply(&Actor::Applicant, Command::Retrieve(code.clone()), day31, &DeadlinePolicy::default());
        assert!(
            matches!(err, Err(TransitionError::DeadlinePassed(ref d)) if d.last_day == date!(2025 - 04 - 01)),
            "{err:?}"
        );
        let day30_late = datetime!(2025-04-01 23:59 UTC);
        assert!(
            app.clone()
                .apply(&Actor::Applicant, Command::Retrieve(code), day30_late, &DeadlinePolicy::default())
                .is_ok()
        );
        let t = app.apply(&Actor::System, Command::Expire, day31, &DeadlinePolicy::default()).unwrap();
        let ApplicationState::Expired { from, deadline, .. } = t.application.state() else { panic!() };
        assert_eq!((from.as_str(), deadline.last_day), ("certificates-ready", date!(2025 - 04 - 01)));
        assert_eq!(t.audit.action, AuditAction::ApplicationExpired);
    }

    #[test]
    fn an_application_never_debug_prints_its_activation_code() {
        let (app, secret, _) = walk("medium-token", "certificates-ready");
        let Some(IssuedSecret::Activation(code)) = secret else { panic!("no activation code") };
        assert!(!format!("{app:?}").contains(code.secret()));
    }
}
