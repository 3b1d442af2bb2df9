//! Audit events and the hash chains that make the log tamper-evident.
//!
//! The log is a set of lanes, each a hash chain: each row's hash covers the previous row's
//! hash in its lane, so changing, inserting, deleting or reordering a row breaks every hash
//! after it. Each writer (a node's store) appends to a lane of its own, so nodes never wait on
//! one another's chain head; a lane periodically records the heads of the other lanes (an
//! anchor row), so removing rows from one lane, or a whole lane, is caught by the rows that
//! vouched for them (`signet audit verify`). Rows written before lanes existed form the
//! [`LEGACY_LANE`] and hash as they always did.

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
    /// A passkey was registered as a second factor (its name and AAGUID are in the details).
    PasskeyRegistered,
    /// A passkey was given another name.
    PasskeyRenamed,
    /// A passkey was removed by its owner.
    PasskeyRemoved,
    /// A subscriber removed the soft token, signing in with passkeys alone.
    SoftTokenRemoved,
    /// A password reset link was emailed to an account (the token is never recorded).
    PasswordResetRequested,
    /// An account password was changed through a reset link.
    PasswordChanged,
    /// A subscriber became a user of the organization's enterprise account.
    EnterpriseUserAdded,
    /// A subscriber chose to publish (or no longer publish) their identity certificates in the
    /// public repository (the choice is in the details).
    IdentityPublicationChanged,
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
    /// A lane recorded the heads of the other lanes of the audit log (in the details).
    AuditAnchored,
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
            Self::PasskeyRegistered => "passkey-registered",
            Self::PasskeyRenamed => "passkey-renamed",
            Self::PasskeyRemoved => "passkey-removed",
            Self::SoftTokenRemoved => "soft-token-removed",
            Self::PasswordResetRequested => "password-reset-requested",
            Self::PasswordChanged => "password-changed",
            Self::EnterpriseUserAdded => "enterprise-user-added",
            Self::IdentityPublicationChanged => "identity-publication-changed",
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
            Self::AuditAnchored => "audit-anchored",
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
    /// Position in the whole log, increasing in the order rows were appended (across lanes it
    /// may skip numbers: a rolled-back append on PostgreSQL spends its numbers).
    pub seq: i64,
    /// The lane (the writer's chain) the row belongs to.
    pub lane: String,
    /// Position in its lane, from 1 without gaps.
    pub lane_seq: i64,
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

/// The lane of the rows written before lanes existed, as one chain over `seq`.
pub const LEGACY_LANE: &str = "legacy";

/// The hash before the first row of a lane.
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

impl AuditRecord {
    /// The hash this row must carry, given its fields and `prev_hash`.
    ///
    /// Legacy rows hash as they did before lanes; a lane row also covers its lane and its
    /// place in it, so it cannot be moved to another lane or place without breaking the chain.
    pub fn computed_hash(&self) -> String {
        let rid = self.request_id.as_deref();
        let (at, actor, action, subject, details) = (self.at, &self.actor, &self.action, &self.subject, &self.details);
        if self.lane == LEGACY_LANE {
            return chain_hash(&self.prev_hash, self.seq, at, actor, action, subject, details, rid);
        }
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let fields: [&[u8]; 10] = [
            self.prev_hash.as_bytes(),
            &self.seq.to_be_bytes(),
            &at.to_be_bytes(),
            actor.as_bytes(),
            action.as_bytes(),
            subject.as_bytes(),
            details.as_bytes(),
            rid.unwrap_or_default().as_bytes(),
            self.lane.as_bytes(),
            &self.lane_seq.to_be_bytes(),
        ];
        for field in fields {
            ctx.update(&(field.len() as u64).to_be_bytes());
            ctx.update(field);
        }
        hex::encode(ctx.finish())
    }
}

/// One lane's head as an anchor row records it (and as the lane table keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneHead {
    /// The lane.
    pub lane: String,
    /// Its last row's place in the lane (0: no rows yet).
    pub lane_seq: i64,
    /// Its last row's hash.
    pub hash: String,
}

/// The details of an [`AuditAction::AuditAnchored`] row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The other lanes' heads when the anchor was written.
    pub heads: Vec<LaneHead>,
}

impl Anchor {
    /// The audit event recording these heads.
    pub fn event(&self, at: OffsetDateTime) -> AuditEvent {
        let details = serde_json::to_value(self).unwrap_or_default();
        AuditEvent::new(at, "system", AuditAction::AuditAnchored, "audit", details)
    }
}

/// Where the log breaks. Each variant names the row (by `seq`) or lane where the break shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    /// A row's hash does not match its contents: it was edited.
    #[error("audit row {0} was altered (its hash does not match its contents)")]
    Altered(i64),
    /// A row does not point at the previous row's hash: rows were removed, inserted or reordered.
    #[error("audit row {0} does not follow the row before it (rows removed, inserted or reordered)")]
    Broken(i64),
    /// An anchor row vouches for a row of another lane that is gone or differs.
    #[error("audit row {0} vouches for a row of another lane that is missing or altered (rows removed)")]
    Unanchored(i64),
    /// A lane ends before the head recorded for it: its last rows were removed.
    #[error("audit lane {0} ends before its recorded head (rows removed from its end)")]
    Truncated(String),
}

/// Checks every lane of the log in `rows` (any order): each lane's chain from the genesis
/// hash, and every anchor's view of the other lanes. Returns the number of rows checked.
pub fn verify_chain<'a>(rows: impl IntoIterator<Item = &'a AuditRecord>) -> Result<usize, ChainBreak> {
    let mut lanes: std::collections::BTreeMap<&str, Vec<&AuditRecord>> = std::collections::BTreeMap::new();
    for r in rows {
        lanes.entry(&r.lane).or_default().push(r);
    }
    let mut breaks = Vec::new();
    let mut n = 0;
    for lane in lanes.values_mut() {
        lane.sort_by_key(|r| r.lane_seq);
        n += lane.len();
        if let Err(b) = verify_lane(lane) {
            breaks.push(b);
        }
    }
    for r in lanes.values().flatten().filter(|r| r.action == AuditAction::AuditAnchored.name()) {
        let anchor: Anchor = serde_json::from_str(&r.details).map_err(|_| ChainBreak::Altered(r.seq))?;
        let vouched = anchor.heads.iter().all(|h| {
            h.lane_seq == 0
                || lanes.get(h.lane.as_str()).is_some_and(|l| {
                    l.binary_search_by_key(&h.lane_seq, |x| x.lane_seq).is_ok_and(|i| l[i].hash == h.hash)
                })
        });
        if !vouched {
            breaks.push(ChainBreak::Unanchored(r.seq));
        }
    }
    // Report the earliest break in the log, whichever lane it is in.
    match breaks.into_iter().min_by_key(|b| match b {
        ChainBreak::Altered(s) | ChainBreak::Broken(s) | ChainBreak::Unanchored(s) => *s,
        ChainBreak::Truncated(_) => i64::MAX,
    }) {
        Some(b) => Err(b),
        None => Ok(n),
    }
}

/// [`verify_chain`], and that each lane reaches the head recorded for it in `heads` (it may
/// have grown past it since the heads were read).
pub fn verify_log<'a>(
    rows: impl IntoIterator<Item = &'a AuditRecord> + Clone,
    heads: &[LaneHead],
) -> Result<usize, ChainBreak> {
    let n = verify_chain(rows.clone())?;
    let rows: std::collections::HashMap<(&str, i64), &str> =
        rows.into_iter().map(|r| ((r.lane.as_str(), r.lane_seq), r.hash.as_str())).collect();
    for h in heads.iter().filter(|h| h.lane_seq > 0) {
        if rows.get(&(h.lane.as_str(), h.lane_seq)) != Some(&h.hash.as_str()) {
            return Err(ChainBreak::Truncated(h.lane.clone()));
        }
    }
    Ok(n)
}

/// One lane, sorted by `lane_seq`.
fn verify_lane(rows: &[&AuditRecord]) -> Result<(), ChainBreak> {
    let mut prev = GENESIS_HASH;
    for (expected, r) in (1..).zip(rows) {
        let legacy_out_of_place = r.lane == LEGACY_LANE && r.seq != expected;
        if r.prev_hash != prev || r.lane_seq != expected || legacy_out_of_place {
            return Err(ChainBreak::Broken(r.seq));
        }
        if r.computed_hash() != r.hash {
            return Err(ChainBreak::Altered(r.seq));
        }
        prev = &r.hash;
    }
    Ok(())
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
            lane: LEGACY_LANE.into(),
            lane_seq: seq,
        }
    }

    /// Appends a row to `lane` after `prev` (its last row, if any), at global place `seq`.
    fn lane_row(seq: i64, lane: &str, prev: Option<&AuditRecord>, action: &str, details: &str) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            at: 10,
            actor: "a".into(),
            action: action.into(),
            subject: "s".into(),
            details: details.into(),
            prev_hash: prev.map_or(GENESIS_HASH, |p| &p.hash).into(),
            hash: String::new(),
            request_id: None,
            lane: lane.into(),
            lane_seq: prev.map_or(1, |p| p.lane_seq + 1),
        };
        r.hash = r.computed_hash();
        r
    }

    fn head(r: &AuditRecord) -> LaneHead {
        LaneHead { lane: r.lane.clone(), lane_seq: r.lane_seq, hash: r.hash.clone() }
    }

    fn anchor_details(heads: &[&AuditRecord]) -> String {
        serde_json::to_string(&Anchor { heads: heads.iter().map(|r| head(r)).collect() }).unwrap()
    }

    #[test]
    fn lanes_interleave_and_each_is_its_own_chain() {
        let a1 = lane_row(1, "a", None, "x", "{}");
        let b1 = lane_row(2, "b", None, "x", "{}");
        let a2 = lane_row(3, "a", Some(&a1), "x", "{}");
        let b2 = lane_row(5, "b", Some(&b1), "x", "{}");
        assert_eq!(verify_chain([&b2, &a1, &a2, &b1]), Ok(4), "order of reading and gaps in seq do not matter");
        assert_eq!(verify_log([&a1, &a2, &b1, &b2], &[head(&a2), head(&b2)]), Ok(4));

        let mut edited = b1.clone();
        edited.actor = "mallory".into();
        assert_eq!(verify_chain([&a1, &a2, &edited, &b2]), Err(ChainBreak::Altered(2)));
        assert_eq!(verify_chain([&a1, &a2, &b2]), Err(ChainBreak::Broken(5)), "a row removed from lane b");

        // Reordered within a lane: swapping places breaks the links.
        let (mut x, mut y) = (a1.clone(), a2.clone());
        std::mem::swap(&mut x.lane_seq, &mut y.lane_seq);
        assert_eq!(verify_chain([&x, &y, &b1, &b2]), Err(ChainBreak::Broken(3)));
        // Moved to another lane, or to another place in the log: the hash covers both.
        let mut moved = b2.clone();
        moved.lane = "a".into();
        moved.lane_seq = 3;
        moved.prev_hash = a2.hash.clone();
        assert_eq!(verify_chain([&a1, &a2, &moved, &b1]), Err(ChainBreak::Altered(5)));
        let mut renumbered = a2.clone();
        renumbered.seq = 4;
        assert_eq!(verify_chain([&a1, &renumbered, &b1, &b2]), Err(ChainBreak::Altered(4)));

        // The last row of a lane is only missed against the recorded heads.
        assert_eq!(verify_chain([&a1, &a2, &b1]), Ok(3));
        assert_eq!(verify_log([&a1, &a2, &b1], &[head(&a2), head(&b2)]), Err(ChainBreak::Truncated("b".into())));
    }

    #[test]
    fn an_anchor_catches_a_lane_removed_with_its_head() {
        let a1 = lane_row(1, "a", None, "x", "{}");
        let b1 = lane_row(2, "b", None, "x", "{}");
        let b2 = lane_row(3, "b", Some(&b1), "x", "{}");
        let anchor = lane_row(4, "a", Some(&a1), AuditAction::AuditAnchored.name(), &anchor_details(&[&b2]));
        assert_eq!(verify_log([&a1, &b1, &b2, &anchor], &[head(&anchor), head(&b2)]), Ok(4));
        // Lane b's end, and then all of lane b, removed together with its recorded head.
        assert_eq!(verify_log([&a1, &b1, &anchor], &[head(&anchor)]), Err(ChainBreak::Unanchored(4)));
        assert_eq!(verify_log([&a1, &anchor], &[head(&anchor)]), Err(ChainBreak::Unanchored(4)));
        // An anchor's own details cannot be edited to match.
        let mut forged = anchor.clone();
        forged.details = anchor_details(&[&b1]);
        assert_eq!(verify_chain([&a1, &b1, &forged]), Err(ChainBreak::Altered(4)));
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
