//! Audit events and the hash chain that makes the log tamper-evident: each row's hash
//! covers the previous row's hash, so changing, inserting or deleting a row breaks every
//! hash after it (`signet audit verify`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What happened. Named events, as in Boulder's audit log; persisted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A CA hierarchy was created.
    CaInitialized,
    /// The RA instructed issuance; the serial is reserved before signing.
    IssuanceIntent,
    /// The CA signed and the certificate was stored.
    CertificateIssued,
    /// Signing failed after the intent was recorded.
    IssuanceFailed,
    /// An intent left unresolved (its node stopped between the intent and the certificate) was
    /// marked failed by the system, releasing its key; no certificate had been delivered.
    IssuanceAbandoned,
    /// A certificate was revoked.
    CertificateRevoked,
    /// A CRL was signed and published.
    CrlPublished,
    /// An operator API key was created.
    ApiKeyCreated,
    /// An applicant submitted an enrollment application.
    ApplicationSubmitted,
    /// The applicant followed the email verification link.
    EmailVerified,
    /// The notarized forms arrived by mail.
    FormsReceived,
    /// The applicant recorded the carrier and tracking number of the forms they mailed.
    FormsMailed,
    /// An operator found the mailed forms deficient; the applicant is asked to re-send them.
    FormsDeficient,
    /// An organization officer call-back reached no one.
    OfficerCallAttempted,
    /// The organization officer confirmed the applicant's employment.
    OfficerConfirmed,
    /// Identity documents were verified.
    IdentityVerified,
    /// The first of two operators approved the application.
    ApplicationFirstApproval,
    /// A second, different operator approved the application.
    ApplicationApproved,
    /// The applicant's token was shipped.
    TokenShipped,
    /// The activation code was issued; certificates can be retrieved.
    CertificatesReady,
    /// The applicant retrieved the certificates; the activation code is spent.
    ApplicationRetrieved,
    /// The application was rejected.
    ApplicationRejected,
    /// The application passed its deadline.
    ApplicationExpired,
    /// The application was withdrawn.
    ApplicationWithdrawn,
    /// An applicant organization was created.
    OrganizationCreated,
    /// An RA operator confirmed a registered organization: applicants are now offered it.
    OrganizationConfirmed,
    /// An RA operator merged a registered organization into an existing one.
    OrganizationMerged,
    /// An RA operator rejected a registered organization.
    OrganizationRejected,
    /// An RA operator account was created.
    OperatorCreated,
    /// An RA operator account was disabled; it cannot sign in.
    OperatorDisabled,
    /// A disabled RA operator account was enabled again.
    OperatorEnabled,
    /// An RA operator signed in (password and a fresh TOTP code).
    OperatorSignedIn,
    /// A typed secret (password, TOTP code, activation code, reset link) was wrong.
    AuthenticationFailed,
    /// An administrator (or the applicant, for their own retrieval) cleared the failures that
    /// locked a subject out.
    LockoutCleared,
    /// An ACME External Account Binding key was created for an organization's domains.
    AcmeEabKeyCreated,
    /// An ACME account was created, binding its EAB key.
    AcmeAccountCreated,
    /// An ACME account was deactivated by its holder.
    AcmeAccountDeactivated,
    /// An ACME order was created with its authorizations.
    AcmeOrderCreated,
    /// An ACME challenge was validated; its authorization is valid.
    AcmeAuthorizationValidated,
    /// An ACME challenge failed; its authorization is invalid.
    AcmeAuthorizationInvalid,
    /// An ACME order was finalized; its certificate is being issued.
    AcmeOrderProcessing,
    /// An ACME order's certificate was issued.
    AcmeOrderValid,
    /// An ACME order's issuance failed.
    AcmeOrderInvalid,
    /// An RA operator wrote a note on an application (the text is in the details).
    NoteAdded,
    /// A subscriber signed in to the Certificate Management Center (password and soft token).
    SubscriberSignedIn,
    /// A subscriber confirmed a secure action with a fresh soft-token code (step-up).
    StepUpConfirmed,
    /// A soft token was created and shown to its subscriber; it is pending registration.
    SoftTokenEnrolled,
    /// A soft token's registration code was accepted; it is the account's active token.
    SoftTokenActivated,
    /// The recovery questions were answered: the account's soft tokens were removed.
    SoftTokenRecovered,
    /// A subscriber set (or replaced) the recovery questions.
    RecoveryQuestionsSet,
    /// A password reset link was emailed to an account (the token is never recorded).
    PasswordResetRequested,
    /// An account password was changed through a reset link.
    PasswordChanged,
    /// A subscriber became a user of the organization's enterprise account.
    EnterpriseUserAdded,
    /// An encryption key was escrowed to the key recovery key, before its certificate was issued.
    KeyEscrowed,
    /// An RA operator was designated key recovery agent.
    KeyRecoveryAgentDesignated,
    /// A key recovery agent asked for an escrowed key to be recovered (the reason is in the details).
    KeyRecoveryRequested,
    /// A key recovery agent approved a recovery request (the first or the second approval).
    KeyRecoveryApproved,
    /// An approving agent exported an escrowed key (the key itself is never recorded).
    KeyRecovered,
    /// An RA operator witnessed, in person, a key being generated on its hardware token.
    KeyGenerationWitnessed,
    /// A blank token was provisioned into the RA's stock (its PINs are never recorded).
    TokenProvisioned,
    /// A stock token was reported lost or stolen.
    TokenLost,
    /// A stock token was taken out of service before shipping.
    TokenRetired,
    /// An escrow whose certificate was never issued was removed.
    EscrowDiscarded,
}

impl AuditAction {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::CaInitialized => "ca-initialized",
            Self::IssuanceIntent => "issuance-intent",
            Self::CertificateIssued => "certificate-issued",
            Self::IssuanceFailed => "issuance-failed",
            Self::IssuanceAbandoned => "issuance-abandoned",
            Self::CertificateRevoked => "certificate-revoked",
            Self::CrlPublished => "crl-published",
            Self::ApiKeyCreated => "api-key-created",
            Self::ApplicationSubmitted => "application-submitted",
            Self::EmailVerified => "email-verified",
            Self::FormsReceived => "forms-received",
            Self::FormsMailed => "forms-mailed",
            Self::FormsDeficient => "forms-deficient",
            Self::OfficerCallAttempted => "officer-call-attempted",
            Self::OfficerConfirmed => "officer-confirmed",
            Self::IdentityVerified => "identity-verified",
            Self::ApplicationFirstApproval => "application-first-approval",
            Self::ApplicationApproved => "application-approved",
            Self::TokenShipped => "token-shipped",
            Self::CertificatesReady => "certificates-ready",
            Self::ApplicationRetrieved => "application-retrieved",
            Self::ApplicationRejected => "application-rejected",
            Self::ApplicationExpired => "application-expired",
            Self::ApplicationWithdrawn => "application-withdrawn",
            Self::OrganizationCreated => "organization-created",
            Self::OrganizationConfirmed => "organization-confirmed",
            Self::OrganizationMerged => "organization-merged",
            Self::OrganizationRejected => "organization-rejected",
            Self::OperatorCreated => "operator-created",
            Self::OperatorDisabled => "operator-disabled",
            Self::OperatorEnabled => "operator-enabled",
            Self::OperatorSignedIn => "operator-signed-in",
            Self::AuthenticationFailed => "authentication-failed",
            Self::LockoutCleared => "lockout-cleared",
            Self::AcmeEabKeyCreated => "acme-eab-key-created",
            Self::AcmeAccountCreated => "acme-account-created",
            Self::AcmeAccountDeactivated => "acme-account-deactivated",
            Self::AcmeOrderCreated => "acme-order-created",
            Self::AcmeAuthorizationValidated => "acme-authorization-validated",
            Self::AcmeAuthorizationInvalid => "acme-authorization-invalid",
            Self::AcmeOrderProcessing => "acme-order-processing",
            Self::AcmeOrderValid => "acme-order-valid",
            Self::AcmeOrderInvalid => "acme-order-invalid",
            Self::NoteAdded => "note-added",
            Self::SubscriberSignedIn => "subscriber-signed-in",
            Self::StepUpConfirmed => "step-up-confirmed",
            Self::SoftTokenEnrolled => "soft-token-enrolled",
            Self::SoftTokenActivated => "soft-token-activated",
            Self::SoftTokenRecovered => "soft-token-recovered",
            Self::RecoveryQuestionsSet => "recovery-questions-set",
            Self::PasswordResetRequested => "password-reset-requested",
            Self::PasswordChanged => "password-changed",
            Self::EnterpriseUserAdded => "enterprise-user-added",
            Self::KeyEscrowed => "key-escrowed",
            Self::KeyRecoveryAgentDesignated => "key-recovery-agent-designated",
            Self::KeyRecoveryRequested => "key-recovery-requested",
            Self::KeyRecoveryApproved => "key-recovery-approved",
            Self::KeyRecovered => "key-recovered",
            Self::KeyGenerationWitnessed => "key-generation-witnessed",
            Self::TokenProvisioned => "token-provisioned",
            Self::TokenLost => "token-lost",
            Self::TokenRetired => "token-retired",
            Self::EscrowDiscarded => "escrow-discarded",
        }
    }
}

/// One audit entry before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When.
    pub at: OffsetDateTime,
    /// Who: an operator API key name, `cli:<user>`, or `system`.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// On what: a serial, a CRL number, a key name.
    pub subject: String,
    /// Facts worth keeping, as JSON; never secrets.
    pub details: serde_json::Value,
}

impl AuditEvent {
    /// An event at `at`.
    pub fn new(
        at: OffsetDateTime,
        actor: &str,
        action: AuditAction,
        subject: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self { at, actor: actor.to_owned(), action, subject: subject.into(), details }
    }
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// Action name.
    pub action: String,
    /// On what.
    pub subject: String,
    /// JSON text.
    pub details: String,
    /// The previous row's hash (hex); 64 zeros for the first.
    pub prev_hash: String,
    /// This row's hash (hex).
    pub hash: String,
    /// The request that caused the row (its `X-Request-Id`); `None` outside a request.
    pub request_id: Option<String>,
}

/// The hash before the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and the row's fields, length-prefixed so no two rows
/// can be made to collide by moving bytes between fields.
///
/// The request id is hashed as an eighth field when there is one, so it cannot be changed,
/// added or removed without breaking the chain, while rows without one (written outside a
/// request, or before rows carried it) hash exactly as they always did.
#[allow(clippy::too_many_arguments)]
pub fn chain_hash(
    prev_hash: &str,
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
    request_id: Option<&str>,
) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let fields: [&[u8]; 7] = [
        prev_hash.as_bytes(),
        &seq.to_be_bytes(),
        &at.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        subject.as_bytes(),
        details.as_bytes(),
    ];
    for field in fields.into_iter().chain(request_id.map(str::as_bytes)) {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field);
    }
    hex::encode(ctx.finish())
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    /// A row's hash does not match its contents: it was edited.
    #[error("audit row {0} was altered (its hash does not match its contents)")]
    Altered(i64),
    /// A row does not point at the previous row's hash: rows were removed or inserted.
    #[error("audit row {0} does not follow the row before it (rows removed or inserted)")]
    Broken(i64),
}

/// Checks a run of rows in sequence order, starting from the genesis hash.
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a AuditRecord>) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS_HASH;
    let mut n = 0;
    for (expected_seq, r) in (1..).zip(rows) {
        if r.prev_hash != prev || r.seq != expected_seq {
            return Err(ChainBreak::Broken(r.seq));
        }
        let hash =
            chain_hash(&r.prev_hash, r.seq, r.at, &r.actor, &r.action, &r.subject, &r.details, r.request_id.as_deref());
        if hash != r.hash {
            return Err(ChainBreak::Altered(r.seq));
        }
        prev = &r.hash;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str, subject: &str) -> AuditRecord {
        let hash = chain_hash(prev, seq, 10, "a", "x", subject, "{}", None);
        AuditRecord {
            seq,
            at: 10,
            actor: "a".into(),
            action: "x".into(),
            subject: subject.into(),
            details: "{}".into(),
            prev_hash: prev.into(),
            hash,
            request_id: None,
        }
    }

    #[test]
    fn detects_edits_and_gaps() {
        let r1 = row(1, GENESIS_HASH, "s1");
        let r2 = row(2, &r1.hash, "s2");
        let r3 = row(3, &r2.hash, "s3");
        assert_eq!(verify_chain([&r1, &r2, &r3]), Ok(3));
        let mut edited = r2.clone();
        edited.subject = "evil".into();
        assert_eq!(verify_chain([&r1, &edited, &r3]), Err(ChainBreak::Altered(2)));
        assert_eq!(verify_chain([&r1, &r3]), Err(ChainBreak::Broken(3)));
    }

    #[test]
    fn a_request_id_is_covered_and_its_absence_hashes_as_before() {
        let plain = row(1, GENESIS_HASH, "s1");
        let mut tagged = plain.clone();
        tagged.request_id = Some("0123456789abcdef0123456789abcdef".into());
        assert_eq!(verify_chain([&tagged]), Err(ChainBreak::Altered(1)), "an id added later is caught");
        tagged.hash = chain_hash(GENESIS_HASH, 1, 10, "a", "x", "s1", "{}", tagged.request_id.as_deref());
        assert_eq!(verify_chain([&tagged]), Ok(1));
        let mut moved = tagged.clone();
        moved.request_id = Some("ffffffffffffffffffffffffffffffff".into());
        assert_eq!(verify_chain([&moved]), Err(ChainBreak::Altered(1)), "an id changed is caught");
        moved.request_id = None;
        assert_eq!(verify_chain([&moved]), Err(ChainBreak::Altered(1)), "an id removed is caught");
    }
}
