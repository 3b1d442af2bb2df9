//! Applicant notifications as an outbox: each transition renders its plain-text messages here,
//! and the store queues them in the same transaction as the change (so a notice goes out if
//! and only if the change happened). Sending over SMTP is a later layer's job; this module
//! knows no mail server.
//!
//! The messages follow what the seed guides tell applicants to expect: an email verification
//! link, notice of receipt, approval, shipment, the "certificates are ready" email with the
//! activation code, deadline reminders, and expiry or rejection.

use std::collections::BTreeMap;

use signet_pki::profile::Catalog;
use signet_pki::{RevocationReason, Serial};
use time::Date;

use crate::application::{Application, ApplicationState, IssuedSecret, Transition};
use crate::audit::AuditAction;
use crate::contact::RaContact;
use crate::forms_mail::{Deficiency, PaperForm};
use crate::mail_templates::MailTemplates;
use crate::password_reset::{ResetLink, ResetToken};
use crate::renewal::ExpiryReminder;
use crate::vetting::{self, Deadline, DeadlineAction, DeadlineKind, DeadlinePolicy};

// Queued messages are the outbox's own type; re-exported so the old paths keep working.
pub use crate::outbox::{MessageKind, OutboxMessage};

/// Renders notices for one deployment: its portal address, deadline rules, type names and the
/// RA's contact (where forms are mailed, whom to ask).
#[derive(Debug, Clone)]
pub struct Notifier {
    base_url: String,
    policy: DeadlinePolicy,
    type_names: BTreeMap<String, String>,
    contact: RaContact,
    templates: MailTemplates,
}

impl Notifier {
    /// A notifier for the portal at `base_url` (e.g. `https://ra.example.gov`), signing as the
    /// example RA until [`Notifier::with_contact`] names the real one.
    pub fn new(base_url: &str, catalog: &Catalog, policy: DeadlinePolicy) -> Self {
        let type_names = catalog.types().iter().map(|t| (t.id.clone(), t.name.clone())).collect();
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            policy,
            type_names,
            contact: RaContact::example(),
            templates: MailTemplates::default(),
        }
    }

    /// The same notifier, worded by `templates`.
    #[must_use]
    pub fn with_templates(self, templates: MailTemplates) -> Self {
        Self { templates, ..self }
    }

    /// The same notifier, with `contact`'s mailing address and support line in its messages.
    #[must_use]
    pub fn with_contact(self, contact: RaContact) -> Self {
        Self { contact, ..self }
    }

    /// The messages a transition sends (none for internal steps such as the first approval).
    pub fn outbox_for(&self, transition: &Transition) -> Vec<OutboxMessage> {
        let app = &transition.application;
        let message = match (transition.audit.action, &transition.secret) {
            (AuditAction::ApplicationSubmitted, Some(IssuedSecret::EmailVerification(token))) => {
                Some(self.verification(app, token.expose()))
            }
            (AuditAction::FormsReceived, _) => Some(self.forms_received(app)),
            (AuditAction::ApplicationApproved, _) => Some(self.approved(app)),
            (AuditAction::TokenShipped, _) => Some(self.shipped(app)),
            (AuditAction::CertificatesReady, Some(IssuedSecret::Activation(code))) => {
                Some(self.activation(app, &code.expose()))
            }
            (AuditAction::ApplicationExpired, _) => Some(self.expired(app)),
            (AuditAction::ApplicationRejected, _) => Some(self.rejected(app)),
            _ => None,
        };
        message.into_iter().collect()
    }

    /// The reminder for a [`DeadlineAction::Remind`] from [`vetting::due_actions`]; `None` for
    /// other actions or a closed application.
    pub fn reminder(&self, app: &Application, action: DeadlineAction) -> Option<OutboxMessage> {
        let DeadlineAction::Remind { days_left, threshold } = action else { return None };
        let deadline = vetting::deadline(app, &self.policy)?;
        let when = match days_left {
            0 => "Today is the last day".to_owned(),
            1 => "One day is left".to_owned(),
            n => format!("{n} days are left"),
        };
        let todo = match app.state() {
            ApplicationState::Submitted { .. } => {
                "Verify your email address with the link we sent, then have your forms notarized and mail them."
                    .to_owned()
            }
            ApplicationState::EmailVerified { .. } => format!(
                "Have your forms notarized and mail the signed originals with a tracking number.\n\n{}\n\n{}",
                self.files_to_print(app),
                self.mail_to()
            ),
            ApplicationState::CertificatesReady { .. } => {
                "Retrieve your certificates now with the activation code we emailed and your account password."
                    .to_owned()
            }
            _ => "We are processing your application. If your token has not arrived, contact us.".to_owned(),
        };
        let last_day = deadline.last_day.to_string();
        let rule = self.deadline_rule(&deadline);
        let values: &[(&str, &str)] =
            &[("when", when.as_str()), ("last_day", &last_day), ("todo", &todo), ("deadline_rule", &rule)];
        Some(self.message(
            app,
            MessageKind::DeadlineReminder,
            values,
            format!("{}:{}:{}", deadline.kind.name(), threshold, deadline.last_day),
        ))
    }

    fn status_url(&self, app: &Application) -> String {
        format!("{}/applications/{}", self.base_url, app.id())
    }

    fn type_name<'a>(&'a self, app: &'a Application) -> &'a str {
        let id = app.form().certificate.cert_type();
        self.type_names.get(id).map_or(id, String::as_str)
    }

    fn deadline_rule(&self, deadline: &Deadline) -> String {
        match deadline.kind {
            DeadlineKind::Open => format!(
                "An application stays open {} days. Once your forms are notarized, certificates must be \
                 retrieved within {} days of the notary's signature.",
                self.policy.open_days, self.policy.retrieval_days
            ),
            DeadlineKind::Retrieval => format!(
                "Certificates must be retrieved within {} days of the notary's signature, or the application \
                 expires and you must start over.",
                self.policy.retrieval_days
            ),
        }
    }

    /// The application's last day, or `otherwise` when it has no deadline.
    fn last_day_or(&self, app: &Application, otherwise: &str) -> String {
        vetting::deadline(app, &self.policy).map_or_else(|| otherwise.to_owned(), |d| d.last_day.to_string())
    }

    /// `kind`'s notice for `app`'s applicant, worded by its template with `values`, between the
    /// greeting and the reference, status link and RA signature every applicant notice carries.
    fn message(
        &self,
        app: &Application,
        kind: MessageKind,
        values: &[(&str, &str)],
        key_suffix: String,
    ) -> OutboxMessage {
        let applicant = &app.form().applicant;
        let (subject, body) = self.templates.render(kind, values);
        let body_text = format!(
            "Hello {},\n\n{body}\n\nApplication reference: {}\nStatus: {}\n\n{}\n{}\n",
            applicant.name,
            app.id(),
            self.status_url(app),
            self.contact.name.as_str(),
            self.contact.support_line(),
        );
        let dedup_key = if key_suffix.is_empty() {
            format!("{}:{}", kind.name(), app.id())
        } else {
            format!("{}:{}:{key_suffix}", kind.name(), app.id())
        };
        OutboxMessage { to: applicant.email.clone(), subject, body_text, kind, dedup_key }
    }

    /// The PDF files this applicant prints, by the names they download under.
    fn files_to_print(&self, app: &Application) -> String {
        let files: Vec<String> = PaperForm::needed_by(app)
            .into_iter()
            .map(|f| format!("   - {} ({})", f.file_name(app.id()), f.title()))
            .collect();
        format!("Print these files from your status page ({}):\n{}", self.status_url(app), files.join("\n"))
    }

    /// Where the signed originals go.
    fn mail_to(&self) -> String {
        let lines: Vec<String> = self.contact.mailing_address.lines().map(|l| format!("   {l}")).collect();
        format!("Mail the signed originals to:\n{}", lines.join("\n"))
    }

    fn verification(&self, app: &Application, token: &str) -> OutboxMessage {
        let link = format!("{}/verify-email?application={}&token={token}", self.base_url, app.id());
        // The seed onboarding guide's Parts 1 and 2, in order, so the email is the checklist.
        let proofing = if app.proofing_rule() == vetting::ProofingRule::InPersonRegistrar {
            // DESIGN §2: Medium Hardware is proofed in person by a registrar, never a notary.
            "This certificate type must be proofed in person by a registrar or Trusted Agent, not a notary: \
             we will contact you to arrange it. Bring your identity documents and the printed forms."
        } else {
            "Take your identity documents and the Identity Verification form to a notary; make sure the \
             notary's official seal is on the page."
        };
        let rule = self.deadline_rule(&Deadline { kind: DeadlineKind::Open, last_day: app.submitted_at().date() });
        let values: &[(&str, &str)] = &[
            ("type", self.type_name(app)),
            ("verify_link", &link),
            ("files_to_print", &self.files_to_print(app)),
            ("proofing", proofing),
            ("mail_to", &self.mail_to()),
            ("deadline_rule", &rule),
        ];
        self.message(app, MessageKind::EmailVerification, values, String::new())
    }

    fn forms_received(&self, app: &Application) -> OutboxMessage {
        let forms = app.state().forms().expect("forms-received carries the forms");
        let values: &[(&str, &str)] = &[
            ("received_on", &forms.received_on.to_string()),
            ("carrier", forms.tracking.carrier.name()),
            ("tracking_number", forms.tracking.number.as_str()),
            ("last_day", &self.last_day_or(app, "the deadline")),
        ];
        self.message(app, MessageKind::FormsReceived, values, String::new())
    }

    /// The notice that the mailed forms must be sent again, after an operator's `finding`.
    pub fn forms_deficient(&self, app: &Application, finding: &Deficiency) -> OutboxMessage {
        let problems: Vec<String> = finding.problems.iter().map(|p| format!(" - {}", p.to_applicant())).collect();
        let note = finding.note.as_ref().map_or_else(String::new, |n| format!("A note from our staff: {n}\n\n"));
        let values: &[(&str, &str)] = &[
            ("problems", &problems.join("\n")),
            ("staff_note", &note),
            ("files_to_print", &self.files_to_print(app)),
            ("mail_to", &self.mail_to()),
            ("last_day", &self.last_day_or(app, "the deadline")),
        ];
        self.message(app, MessageKind::FormsDeficient, values, finding.at.unix_timestamp().to_string())
    }

    fn approved(&self, app: &Application) -> OutboxMessage {
        let address = app.form().applicant.shipping.to_string();
        self.message(app, MessageKind::Approved, &[("shipping_address", &address)], String::new())
    }

    fn shipped(&self, app: &Application) -> OutboxMessage {
        let shipment = app.state().shipment().expect("token-shipped carries the shipment");
        let values: &[(&str, &str)] = &[
            ("shipped_on", &shipment.at.date().to_string()),
            ("carrier", shipment.tracking.carrier.name()),
            ("tracking_number", shipment.tracking.number.as_str()),
            ("last_day", &self.last_day_or(app, "near")),
        ];
        self.message(app, MessageKind::TokenShipped, values, String::new())
    }

    /// The email with a password reset link for `link`'s account.
    pub fn password_reset(&self, link: &ResetLink, token: &ResetToken) -> OutboxMessage {
        let url = format!("{}/password-reset/new?token={}", self.base_url, token.expose());
        let account = link.account.to_string();
        let (subject, body_text) =
            self.templates.render(MessageKind::PasswordReset, &[("application", &account), ("reset_link", &url)]);
        OutboxMessage {
            to: link.email.clone(),
            subject,
            body_text,
            kind: MessageKind::PasswordReset,
            dedup_key: format!("{}:{}", MessageKind::PasswordReset.name(), link.digest),
        }
    }

    /// The notice that `certificate` (its name for people, e.g. "Medium Assurance identity"),
    /// serial `serial`, of `app`'s subscriber was revoked for `reason`.
    pub fn certificate_revoked(
        &self,
        app: &Application,
        certificate: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> OutboxMessage {
        let serial = serial.to_hex();
        let values: &[(&str, &str)] = &[
            ("certificate", certificate),
            ("serial", &serial),
            ("reason", reason_in_words(reason)),
            ("cmc_link", &format!("{}/cmc", self.base_url)),
        ];
        self.message(app, MessageKind::CertificateRevoked, values, serial.clone())
    }

    /// The notice that `app`'s subscriber renewed `certificate`: `new` replaces `old` and is
    /// valid until `not_after`.
    pub fn certificate_renewed(
        &self,
        app: &Application,
        certificate: &str,
        old: &Serial,
        new: &Serial,
        not_after: Date,
    ) -> OutboxMessage {
        let new = new.to_hex();
        let values: &[(&str, &str)] = &[
            ("certificate", certificate),
            ("new_serial", &new),
            ("old_serial", &old.to_hex()),
            ("not_after", &not_after.to_string()),
            ("cmc_link", &format!("{}/cmc", self.base_url)),
        ];
        self.message(app, MessageKind::CertificateRenewed, values, new.clone())
    }

    /// The notice that `app`'s subscriber's ways to sign in changed: `change` says how, in a
    /// sentence; `key` tells this change from others of the same account.
    pub fn sign_in_changed(&self, app: &Application, change: &str, key: &str) -> OutboxMessage {
        let values: &[(&str, &str)] = &[
            ("change", change),
            ("cmc_link", &format!("{}/cmc/passkeys", self.base_url)),
            ("recover_link", &format!("{}/cmc/recover", self.base_url)),
        ];
        self.message(app, MessageKind::SignInChanged, values, key.to_owned())
    }

    /// The reminder that `certificate` (serial `serial`, of profile `profile`) of `app`'s
    /// subscriber expires on `not_after`; one per threshold of `reminder`.
    pub fn certificate_expiring(
        &self,
        app: &Application,
        certificate: &str,
        serial: &Serial,
        profile: &str,
        not_after: Date,
        reminder: ExpiryReminder,
    ) -> OutboxMessage {
        let serial = serial.to_hex();
        let when = match reminder.days_left {
            1 => "tomorrow".to_owned(),
            n => format!("in {n} days"),
        };
        let values: &[(&str, &str)] = &[
            ("certificate", certificate),
            ("serial", &serial),
            ("when", &when),
            ("not_after", &not_after.to_string()),
            ("renewal_link", &format!("{}/cmc/renewal?profile={profile}", self.base_url)),
        ];
        self.message(app, MessageKind::CertificateExpiring, values, format!("{serial}:{}", reminder.threshold))
    }

    fn activation(&self, app: &Application, code: &str) -> OutboxMessage {
        // DESIGN §2: the incumbent's login bug must not exist, and a forgotten password is
        // reset by an emailed one-time link — so the email says both plainly.
        let values: &[(&str, &str)] = &[
            ("type", self.type_name(app)),
            ("activation_code", code),
            ("retrieve_link", &format!("{}/retrieve?application={}", self.base_url, app.id())),
            ("reset_link", &format!("{}/password-reset", self.base_url)),
            ("last_day", &self.last_day_or(app, "the deadline")),
        ];
        self.message(app, MessageKind::ActivationCode, values, String::new())
    }

    fn expired(&self, app: &Application) -> OutboxMessage {
        let ApplicationState::Expired { deadline, .. } = app.state() else {
            unreachable!("rendered only for expired applications")
        };
        let values: &[(&str, &str)] =
            &[("last_day", &deadline.last_day.to_string()), ("deadline_rule", &self.deadline_rule(deadline))];
        self.message(app, MessageKind::Expired, values, String::new())
    }

    fn rejected(&self, app: &Application) -> OutboxMessage {
        let ApplicationState::Rejected { reason, .. } = app.state() else {
            unreachable!("rendered only for rejected applications")
        };
        self.message(app, MessageKind::Rejected, &[("reason", &reason.to_string())], String::new())
    }
}

/// Why a certificate was revoked, as a subscriber reads it (the RFC 5280 name means nothing to
/// them): the end of "… was revoked because …".
pub fn reason_in_words(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::KeyCompromise => "the key was compromised",
        RevocationReason::CaCompromise | RevocationReason::AaCompromise => "the issuing authority was compromised",
        RevocationReason::AffiliationChanged => "the holder's organization, name or role changed",
        RevocationReason::Superseded => "a newer certificate replaces it",
        RevocationReason::CessationOfOperation => "it is no longer needed",
        RevocationReason::CertificateHold => "it is on hold",
        RevocationReason::PrivilegeWithdrawn => "the holder's privilege was withdrawn",
        RevocationReason::Unspecified | RevocationReason::RemoveFromCrl => "no reason was given",
    }
}

#[cfg(test)]
mod tests {
    use signet_pki::subject::Email;
    use time::Duration;

    use super::*;
    use crate::application::testing::{T0, callback, form, op, walk};
    use crate::application::{ApplicationId, Command, Reason};
    use crate::clock::Clock;
    use crate::vetting::CallOutcome;

    fn notifier() -> Notifier {
        Notifier::new("https://ra.example.gov/", &Catalog::default_eca(), DeadlinePolicy::default())
    }

    fn only(mut v: Vec<OutboxMessage>) -> OutboxMessage {
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn the_reset_email_carries_the_link_and_says_nothing_changed_yet() {
        let email = Email::new("jane.doe@acme.example").unwrap();
        let (link, token) = ResetLink::issue(ApplicationId::new("ABCDEFGHJKMN").unwrap(), email, T0);
        let m = notifier().password_reset(&link, &token);
        assert_eq!((m.kind, m.to.as_str()), (MessageKind::PasswordReset, "jane.doe@acme.example"));
        let url = format!("https://ra.example.gov/password-reset/new?token={}", token.expose());
        assert!(m.body_text.contains(&url), "{}", m.body_text);
        assert!(m.body_text.contains("still works") && m.subject.contains("ABCDEFGHJKMN"));
        assert_eq!(m.dedup_key, format!("password-reset:{}", link.digest));
    }

    #[test]
    fn submission_sends_the_verification_link() {
        let t = Application::submit(ApplicationId::generate(), form("medium-token"), T0);
        let Some(IssuedSecret::EmailVerification(token)) = &t.secret else { panic!() };
        let m = only(notifier().outbox_for(&t));
        assert_eq!((m.kind, m.to.as_str()), (MessageKind::EmailVerification, "jane.doe@acme.example"));
        let id = t.application.id();
        assert!(
            m.body_text
                .contains(&format!("https://ra.example.gov/verify-email?application={id}&token={}", token.expose()))
        );
        assert!(m.body_text.starts_with("Hello Jane Q. Doe,"));
        assert!(m.body_text.contains("Medium Token Assurance") && m.body_text.contains("45 days"), "{}", m.body_text);
        assert_eq!(m.dedup_key, format!("email-verification:{id}"));
        let hardware = Application::submit(ApplicationId::generate(), form("medium-hardware"), T0);
        assert!(only(notifier().outbox_for(&hardware)).body_text.contains("Trusted Agent"));
    }

    #[test]
    fn each_notice_renders_from_the_application() {
        let n = notifier();
        let (app, _, clock) = walk("medium-token", "email-verified");
        clock.advance(Duration::days(3));
        let forms = crate::application::testing::notarized_forms(T0.date(), clock.now().date());
        let t = app.apply(&op("alice"), Command::RecordForms(forms), clock.now(), &DeadlinePolicy::default()).unwrap();
        let m = only(n.outbox_for(&t));
        assert_eq!(m.kind, MessageKind::FormsReceived);
        assert!(m.body_text.contains("1Z999AA10123456784") && m.body_text.contains("2025-04-01"), "{}", m.body_text);

        // Internal steps send nothing.
        let t = t
            .application
            .apply(
                &op("alice"),
                Command::RecordCallback(callback(CallOutcome::Confirmed, clock.now())),
                clock.now(),
                &DeadlinePolicy::default(),
            )
            .unwrap();
        assert!(n.outbox_for(&t).is_empty());

        let (app, _, clock) = walk("medium-token", "first-approved");
        let t = app.apply(&op("bob"), Command::Approve, clock.now(), &DeadlinePolicy::default()).unwrap();
        let m = only(n.outbox_for(&t));
        assert_eq!(m.kind, MessageKind::Approved);
        assert!(m.body_text.contains("Seattle, WA 98101-1234"), "{}", m.body_text);

        let (app, _, clock) = walk("medium-token", "approved");
        let tracking = crate::application::testing::tracking("1Z999AA10123456785");
        let t = app.apply(&op("bob"), Command::ShipToken(tracking), clock.now(), &DeadlinePolicy::default()).unwrap();
        let m = only(n.outbox_for(&t));
        assert!(m.kind == MessageKind::TokenShipped && m.body_text.contains("UPS, tracking number 1Z999AA10123456785"));

        let (app, _, clock) = walk("medium-token", "token-shipped");
        let t = app
            .apply(
                &crate::application::Actor::System,
                Command::IssueActivationCode,
                clock.now(),
                &DeadlinePolicy::default(),
            )
            .unwrap();
        let Some(IssuedSecret::Activation(code)) = &t.secret else { panic!() };
        let m = only(n.outbox_for(&t));
        assert_eq!(m.kind, MessageKind::ActivationCode);
        assert!(m.subject.contains("ready") && m.subject.contains("2025-04-01"), "{}", m.subject);
        assert!(m.body_text.contains(&format!("Activation code: {}", code.expose())));
        assert!(m.body_text.contains("/password-reset"));
        assert!(!format!("{:?}", t.audit).contains(&code.expose()), "the code is only in the email");

        let (app, _, clock) = walk("medium", "identity-verified");
        let t = app
            .apply(
                &op("bob"),
                Command::Reject(Reason::new("Illegible ID").unwrap()),
                clock.now(),
                &DeadlinePolicy::default(),
            )
            .unwrap();
        let m = only(n.outbox_for(&t));
        assert!(m.kind == MessageKind::Rejected && m.body_text.contains("Reason: Illegible ID"));

        let (app, _, clock) = walk("medium", "certificates-ready");
        let late = clock.now() + Duration::days(40);
        let t =
            app.apply(&crate::application::Actor::System, Command::Expire, late, &DeadlinePolicy::default()).unwrap();
        let m = only(n.outbox_for(&t));
        assert!(
            m.kind == MessageKind::Expired && m.body_text.contains("2025-04-01") && m.body_text.contains("30 days")
        );
    }

    #[test]
    fn certificate_notices_name_the_certificate_and_dedupe_per_event() {
        let n = notifier();
        let (app, _, _) = walk("medium-token", "certificates-ready");
        let (old, new) = (Serial::random(), Serial::random());
        let name = "Medium Token Assurance (identity)";
        let revoked = n.certificate_revoked(&app, name, &old, RevocationReason::KeyCompromise);
        assert_eq!((revoked.kind, revoked.to.as_str()), (MessageKind::CertificateRevoked, "jane.doe@acme.example"));
        assert!(revoked.body_text.contains(&old.to_hex()) && revoked.body_text.contains("the key was compromised"));
        assert!(!revoked.body_text.contains("keyCompromise"), "{}", revoked.body_text);
        assert_eq!(revoked.dedup_key, format!("certificate-revoked:{}:{}", app.id(), old.to_hex()));

        let day = time::macros::date!(2028 - 11 - 23);
        let renewed = n.certificate_renewed(&app, name, &old, &new, day);
        assert!(renewed.body_text.contains(&new.to_hex()) && renewed.body_text.contains("2028-11-23"));
        assert_ne!(renewed.dedup_key, revoked.dedup_key);

        let at = |days_left, threshold| crate::renewal::ExpiryReminder { days_left, threshold };
        let sixty = n.certificate_expiring(&app, name, &old, "medium-token-identity", day, at(60, 60));
        let fifty = n.certificate_expiring(&app, name, &old, "medium-token-identity", day, at(50, 60));
        let seven = n.certificate_expiring(&app, name, &old, "medium-token-identity", day, at(7, 7));
        assert_eq!(sixty.dedup_key, fifty.dedup_key, "one reminder per threshold");
        assert_ne!(sixty.dedup_key, seven.dedup_key);
        assert!(sixty.body_text.contains("expires in 60 days, on 2028-11-23"), "{}", sixty.body_text);
        assert!(sixty.body_text.contains("https://ra.example.gov/cmc/renewal?profile=medium-token-identity"));
        assert!(n.certificate_expiring(&app, name, &old, "p", day, at(1, 7)).body_text.contains("expires tomorrow"));
    }

    #[test]
    fn reminders_say_what_to_do_and_dedupe_per_threshold() {
        let n = notifier();
        let (app, _, _) = walk("medium-token", "certificates-ready");
        let at = |days_left: i64, threshold| DeadlineAction::Remind { days_left, threshold };
        let seven = n.reminder(&app, at(7, 7)).unwrap();
        let five = n.reminder(&app, at(5, 7)).unwrap();
        let two = n.reminder(&app, at(2, 2)).unwrap();
        assert_eq!(seven.dedup_key, five.dedup_key, "one reminder per threshold");
        assert_ne!(seven.dedup_key, two.dedup_key);
        assert!(
            seven.subject.starts_with("7 days are left") && seven.body_text.contains("Retrieve your certificates now")
        );
        assert!(n.reminder(&app, at(0, 2)).unwrap().subject.starts_with("Today is the last day"));
        assert!(n.reminder(&app, DeadlineAction::Expire).is_none());
        let (early, _, _) = walk("medium", "email-verified");
        let m = n.reminder(&early, at(2, 2)).unwrap();
        assert!(m.body_text.contains("notarized") && m.body_text.contains("open 45 days"), "{}", m.body_text);
        assert!(m.dedup_key.contains(":open:2:"));
        assert_eq!(MessageKind::DeadlineReminder.name(), "deadline-reminder");
    }

    #[test]
    fn mails_name_the_files_the_mailing_address_and_the_contact() {
        let contact =
            RaContact::new("Acme RA", &["PO Box 1", "Reston, VA 20190"], "help@acme-ra.example", "571 555 0199")
                .unwrap();
        let n = notifier().with_contact(contact);
        let t = Application::submit(ApplicationId::generate(), form("medium-token"), T0);
        let m = only(n.outbox_for(&t));
        let id = t.application.id();
        for file in ["officer-verification.pdf", "identity-verification.pdf"] {
            assert!(m.body_text.contains(&format!("{id}-{file}")), "{}", m.body_text);
        }
        assert!(!m.body_text.contains("pages 2"), "{}", m.body_text);
        assert!(
            m.body_text.contains("Mail the signed originals to:\n   PO Box 1\n   Reston, VA 20190"),
            "{}",
            m.body_text
        );
        assert!(
            m.body_text.ends_with("Acme RA\nQuestions? Email help@acme-ra.example or call (571) 555-0199.\n"),
            "{}",
            m.body_text
        );

        let (app, _, clock) = walk("medium-token", "forms-received");
        use crate::forms_mail::FormProblem;
        let finding =
            Deficiency::new(&[FormProblem::NotarySealMissing, FormProblem::Other], "Seal is faint.", clock.now())
                .unwrap();
        let m = n.forms_deficient(&app, &finding);
        assert_eq!((m.kind, m.kind.name()), (MessageKind::FormsDeficient, "forms-deficient"));
        assert!(m.body_text.contains("official seal is not on the Identity Verification form"), "{}", m.body_text);
        assert!(m.body_text.contains("A note from our staff: Seal is faint."), "{}", m.body_text);
        assert!(m.body_text.contains("   PO Box 1") && m.body_text.contains("identity-verification.pdf"));
        assert_eq!(m.dedup_key, format!("forms-deficient:{}:{}", app.id(), clock.now().unix_timestamp()));
    }
}
