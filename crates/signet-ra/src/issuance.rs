//! The CA workflows the RA drives: issue (parse → key policy → lint → record intent →
//! sign → store), revoke, and publish a CRL. The CA signs only through these functions,
//! i.e. only on an RA instruction, and each state change is audited in the same
//! transaction as the change itself. An intent a dead node left behind is marked failed
//! after [`ABANDONED_AFTER`] ([`CaService::resolve_abandoned_intents`]), so its key can be
//! certified again.

use std::future::Future;

use serde_json::json;
use signet_pki::crl::{RevokedEntry, sign_crl};
use signet_pki::csr::{CsrError, KeyPolicy, VerifiedCsr};
use signet_pki::issue::{CertificateOrder, IssueError, IssuedCertificate, Prepared};
use signet_pki::profile::Catalog;
use signet_pki::{CaError, CertificateAuthority, RevocationReason, Serial};
use time::{Duration, OffsetDateTime};

use crate::acme::{AcmeProblem, Finalizing, OrderError, OrderMove};
use crate::audit::{AuditAction, AuditEvent};
use crate::clock::Clock;
use crate::outbox::OutboxMessage;

/// What the domain needs to know about a storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness rule was hit (the named one), e.g. the key is already certified.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// The database failed; details are for the log, not for users.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// How old an intent must be before it is taken for abandoned and marked failed.
///
/// A live issuance resolves its intent within milliseconds: the signature is made in memory
/// (a hardware signer adds seconds at most) and the completing write waits at most for a pool
/// connection and SQLite's busy timeout, under a minute even on a node under load. Ten minutes
/// is a wide margin over that and over clock skew between nodes (an intent carries the time of
/// the node that wrote it, the job compares it with its own), yet frees a key a crash left
/// reserved soon enough that an applicant who tries again later the same hour succeeds.
///
/// Marking an old intent failed never takes back a certificate someone holds. A certificate
/// leaves [`CaService::issue`] only after `complete_issuance` has committed its row as
/// issued; an intent still recorded as an intent means that commit never happened — the node
/// died, or lost the database, after the intent and before the certificate was stored — so
/// whatever was signed existed only in that process's memory and no response carried it. A
/// node that was only slow, not dead, cannot deliver afterwards either: its completing write
/// changes only a row still in 'intent', finds it failed, and `issue` returns an error instead
/// of the certificate (and its audit row is rolled back with it).
pub const ABANDONED_AFTER: Duration = Duration::minutes(10);

/// A reserved issuance, stored before the CA key is used.
#[derive(Debug, Clone)]
pub struct IssuanceIntent {
    /// The serial the certificate will carry.
    pub serial: Serial,
    /// Profile id.
    pub profile: String,
    /// The order's subject, as JSON.
    pub subject_json: String,
    /// Hex SHA-256 of the subject public key info.
    pub spki_sha256: String,
    /// Who instructed.
    pub requested_by: String,
    /// When.
    pub at: OffsetDateTime,
}

impl IssuanceIntent {
    /// The audit event of marking this intent failed as abandoned ([`ABANDONED_AFTER`]).
    pub fn abandoned_event(&self, now: OffsetDateTime) -> AuditEvent {
        AuditEvent::new(
            now,
            "system",
            AuditAction::IssuanceAbandoned,
            self.serial.to_hex(),
            json!({
                "profile": self.profile, "spki_sha256": self.spki_sha256, "requested_by": self.requested_by,
                "intent_at": self.at.unix_timestamp(),
            }),
        )
    }
}

/// Outcome of a revocation request that reached a stored certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Newly revoked.
    Now,
    /// It had been revoked before; nothing changed.
    Already,
}

/// The revocation facts of a certificate, for OCSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked at a time for a reason.
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Reserved but never completed (signing failed or the node died): never delivered.
    NotIssued,
}

/// The storage the CA workflows consume; `signet-store` implements it.
pub trait CaStore: Send + Sync {
    /// Reserves serial and key, and makes `order`'s move if given. `Conflict("key")` if the key
    /// is certified already, `Conflict("order progress")` if the order moved meanwhile; either
    /// way nothing is stored.
    fn record_intent(
        &self,
        intent: &IssuanceIntent,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Stores the signed certificate against its intent, with `order`'s move if given.
    fn complete_issuance(
        &self,
        cert: &IssuedCertificate,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks an intent failed, releasing its key, with `order`'s move if given.
    fn fail_issuance(
        &self,
        serial: &Serial,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Marks failed the intents recorded before `before` that are still intents, oldest first
    /// and at most `limit` of them, each in its own transaction with
    /// [`IssuanceIntent::abandoned_event`] at `now`; returns their serials. The change is
    /// conditional on the row still being an intent older than `before`, so one that was
    /// resolved meanwhile (its issuance completed, or another node resolved it first) is left
    /// alone and not audited. An ACME order waiting for an intent so resolved moves with it
    /// ([`Order::issuance_abandoned`](crate::acme::Order::issuance_abandoned)), so its client
    /// learns that no certificate will come.
    fn abandon_intents(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Serial>, StoreError>> + Send;
    /// Revokes an issued certificate and queues `outbox` (its notices) in the same
    /// transaction, so the notices go out if and only if this call revoked it.
    fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: OffsetDateTime,
        audit: AuditEvent,
        outbox: &[OutboxMessage],
    ) -> impl Future<Output = Result<Revoked, StoreError>> + Send;
    /// The status of a serial, `None` if this CA never reserved it.
    fn status(&self, serial: &Serial) -> impl Future<Output = Result<Option<StoredStatus>, StoreError>> + Send;
    /// Takes the next CRL number and records the publication.
    fn next_crl_number(&self, audit: AuditEvent) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Revoked certificates that have not yet expired at `now`.
    fn revoked_unexpired(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<RevokedEntry>, StoreError>> + Send;
}

/// Why an issuance instruction was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuanceError {
    /// The order names a profile the catalog does not have.
    #[error("unknown certificate profile {0:?}")]
    UnknownProfile(String),
    /// The CSR is malformed, fails proof of possession, or its key breaks the key policy.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The order does not fit the profile, or lint failed.
    #[error(transparent)]
    Order(#[from] IssueError),
    /// The public key is already in a certificate of this CA.
    #[error("this public key is already certified; generate a new key pair")]
    DuplicateKey,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA key failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The ACME order being finalized could not move on.
    #[error(transparent)]
    AcmeOrder(#[from] OrderError),
}

/// Why a revocation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// No issued certificate with that serial.
    #[error("no issued certificate has serial {0}")]
    NotFound(Serial),
    /// `removeFromCRL` only belongs in delta CRLs (RFC 5280 §5.3.1).
    #[error("removeFromCRL is not a reason a certificate can be revoked for")]
    BadReason,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The CA as the RA drives it.
pub struct CaService<'a, S> {
    /// Storage.
    pub store: &'a S,
    /// The issuing CA.
    pub ca: &'a CertificateAuthority,
    /// Profiles.
    pub catalog: &'a Catalog,
    /// Subscriber key policy.
    pub key_policy: &'a KeyPolicy,
    /// Time.
    pub clock: &'a dyn Clock,
}

impl<S: CaStore> CaService<'_, S> {
    /// Issues a certificate on an RA instruction. On any refusal before signing nothing is
    /// stored; once the intent is stored, the outcome is stored too.
    pub async fn issue(
        &self,
        actor: &str,
        order: &CertificateOrder,
        csr: &[u8],
    ) -> Result<IssuedCertificate, IssuanceError> {
        self.issue_for(actor, order, csr, None).await
    }

    /// [`CaService::issue`] for an ACME order being finalized, if given: its moves are made
    /// with the intent, the certificate or the failure ([`Finalizing`]). A refusal before the
    /// intent leaves the order as it was, so a client may finalize it again with a better CSR.
    pub async fn issue_for(
        &self,
        actor: &str,
        order: &CertificateOrder,
        csr: &[u8],
        finalizing: Option<&Finalizing>,
    ) -> Result<IssuedCertificate, IssuanceError> {
        let profile =
            self.catalog.profile(&order.profile).ok_or_else(|| IssuanceError::UnknownProfile(order.profile.clone()))?;
        let csr = VerifiedCsr::parse(csr)?;
        self.key_policy.check(&csr)?;
        let now = self.clock.now();
        let linted = Prepared::new(self.ca, profile, order, &csr, Serial::issued_at(now), now)?.lint(self.ca)?;
        let serial = linted.serial().clone();
        let intent = IssuanceIntent {
            serial: serial.clone(),
            profile: profile.id.clone(),
            subject_json: serde_json::to_string(&order.subject).map_err(|e| StoreError::Backend(e.to_string()))?,
            spki_sha256: hex::encode(csr.spki_sha256()),
            requested_by: actor.to_owned(),
            at: now,
        };
        let audit = AuditEvent::new(
            now,
            actor,
            AuditAction::IssuanceIntent,
            serial.to_hex(),
            json!({
                "profile": profile.id, "subject": order.subject.common_name(), "spki_sha256": intent.spki_sha256,
            }),
        );
        match self.store.record_intent(&intent, audit, finalizing.map(|f| &f.accepted)).await {
            Err(StoreError::Conflict("key")) => return Err(IssuanceError::DuplicateKey),
            other => other?,
        }
        match linted.sign(self.ca) {
            Ok(cert) => {
                let valid = finalizing.map(|f| f.issued(cert.serial.clone(), self.clock.now())).transpose()?;
                let audit = AuditEvent::new(
                    self.clock.now(),
                    actor,
                    AuditAction::CertificateIssued,
                    serial.to_hex(),
                    json!({
                        "profile": profile.id, "not_after": cert.not_after.unix_timestamp(),
                    }),
                );
                match self.store.complete_issuance(&cert, audit, valid.as_ref()).await {
                    Ok(()) => Ok(cert),
                    Err(e) => {
                        // The certificate is not stored and will not be: an ACME order waiting
                        // for it is concluded, so that its client stops polling. Should that
                        // fail too, the database is out of reach and `e` already says so.
                        if finalizing.is_some() {
                            let _ = self.fail(actor, &serial, e.to_string(), finalizing).await;
                        }
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                self.fail(actor, &serial, e.to_string(), finalizing).await?;
                Err(e.into())
            }
        }
    }

    /// Marks the intent `serial` failed because of `error`, with the move of the ACME order it
    /// was for, if any, to invalid.
    async fn fail(
        &self,
        actor: &str,
        serial: &Serial,
        error: String,
        finalizing: Option<&Finalizing>,
    ) -> Result<(), IssuanceError> {
        let now = self.clock.now();
        let invalid = finalizing.map(|f| f.failed(AcmeProblem::issuance_failed(), now)).transpose()?;
        let audit =
            AuditEvent::new(now, actor, AuditAction::IssuanceFailed, serial.to_hex(), json!({ "error": error }));
        Ok(self.store.fail_issuance(serial, audit, invalid.as_ref()).await?)
    }

    /// Marks failed, audited, up to `limit` intents older than [`ABANDONED_AFTER`], releasing
    /// their keys so the same request can be issued again; returns their serials. Safe to run
    /// on several nodes at once: each intent is resolved, and audited, once.
    pub async fn resolve_abandoned_intents(&self, limit: u32) -> Result<Vec<Serial>, StoreError> {
        let now = self.clock.now();
        self.store.abandon_intents(now - ABANDONED_AFTER, now, limit).await
    }

    /// Revokes a certificate; repeating a revocation is harmless and reports `Already`.
    pub async fn revoke(
        &self,
        actor: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Revoked, RevocationError> {
        self.revoke_notifying(actor, serial, reason, &[]).await
    }

    /// [`revoke`](Self::revoke), queuing `outbox` with the revocation; a repeated revocation
    /// (`Already`) queues nothing.
    pub async fn revoke_notifying(
        &self,
        actor: &str,
        serial: &Serial,
        reason: RevocationReason,
        outbox: &[OutboxMessage],
    ) -> Result<Revoked, RevocationError> {
        if reason == RevocationReason::RemoveFromCrl {
            return Err(RevocationError::BadReason);
        }
        let now = self.clock.now();
        let audit = AuditEvent::new(
            now,
            actor,
            AuditAction::CertificateRevoked,
            serial.to_hex(),
            json!({ "reason": reason.name() }),
        );
        match self.store.revoke(serial, reason, now, audit, outbox).await {
            Err(StoreError::NotFound) => Err(RevocationError::NotFound(serial.clone())),
            other => Ok(other?),
        }
    }

    /// Signs a fresh full CRL valid for `lifetime`.
    pub async fn publish_crl(&self, actor: &str, lifetime: Duration) -> Result<Vec<u8>, IssuanceError> {
        let now = self.clock.now();
        let entries = self.store.revoked_unexpired(now).await?;
        let count = entries.len();
        let audit = AuditEvent::new(now, actor, AuditAction::CrlPublished, "issuing", json!({ "entries": count }));
        let number = self.store.next_crl_number(audit).await?;
        Ok(sign_crl(self.ca, number, now, now + lifetime, entries)?)
    }
}
