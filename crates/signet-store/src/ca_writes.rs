//! The CA's state changes written in groups: issuance intents, completions, failures and
//! revocations, any number of them in one transaction with one append to the store's audit
//! lane, each with an outcome of its own. A refusal of one (a key already certified, a
//! certificate already revoked) changes nothing for it and nothing for the others.

use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::{IssuanceIntent, Revoked, StoreError};
use signet_ra::notify::OutboxMessage;
use sqlx::AnyConnection;
use time::OffsetDateTime;

use crate::applications::{insert_outbox, outbox_rows};
use crate::{Store, backend_error, request};

/// One change to the CA's records, with its audit event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CaWrite {
    /// Reserves serial and key before signing; refused with `Conflict("key")` if the key is
    /// certified (or reserved) already.
    Intent {
        /// The reservation.
        intent: IssuanceIntent,
        /// Its audit event.
        audit: AuditEvent,
    },
    /// Stores a signed certificate against its intent; `NotFound` if the intent is no longer
    /// one (it was resolved as abandoned meanwhile).
    Complete {
        /// The certificate.
        cert: IssuedCertificate,
        /// Its audit event.
        audit: AuditEvent,
    },
    /// Marks an intent failed, releasing its key.
    Fail {
        /// The intent's serial.
        serial: Serial,
        /// Its audit event.
        audit: AuditEvent,
    },
    /// Revokes an issued certificate and queues its notices; a repeated revocation is
    /// `Already` and queues and audits nothing.
    Revoke {
        /// The certificate.
        serial: Serial,
        /// Why.
        reason: RevocationReason,
        /// When.
        at: OffsetDateTime,
        /// Its audit event.
        audit: AuditEvent,
        /// The subscriber's notices.
        outbox: Vec<OutboxMessage>,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The change was made.
    Done,
    /// A revocation's outcome.
    Revoked(Revoked),
}

impl Written {
    /// A revocation's outcome; an error if this was not a revocation.
    pub fn revocation(self) -> Result<Revoked, StoreError> {
        match self {
            Self::Revoked(r) => Ok(r),
            Self::Done => Err(StoreError::Backend("a revocation was written as something else".into())),
        }
    }
}

/// A write and the request it was made in, whose id its audit row carries.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    write: CaWrite,
    request_id: Option<String>,
}

impl CaWrite {
    /// This write, tagged with the request the calling task serves (if any), so a writer on
    /// another task records it as that request's.
    pub fn in_this_request(self) -> PendingWrite {
        PendingWrite { write: self, request_id: request::current() }
    }
}

type Applied<'w> = (Result<Written, StoreError>, Option<&'w AuditEvent>);

async fn apply<'w>(c: &mut AnyConnection, write: &'w CaWrite) -> Result<Applied<'w>, StoreError> {
    Ok(match write {
        CaWrite::Intent { intent: i, audit } => {
            let inserted = sqlx::query(
                "INSERT INTO certificates (serial, profile, subject, spki_sha256, state, requested_by, created_at) \
                 VALUES ($1, $2, $3, $4, 'intent', $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(i.serial.to_hex())
            .bind(i.profile.as_str())
            .bind(i.subject_json.as_str())
            .bind(i.spki_sha256.as_str())
            .bind(i.requested_by.as_str())
            .bind(i.at.unix_timestamp())
            .execute(&mut *c)
            .await
            .map_err(backend_error)?;
            // The serial is 159 random bits, so the conflict is the key's unique index.
            if inserted.rows_affected() == 1 {
                (Ok(Written::Done), Some(audit))
            } else {
                (Err(StoreError::Conflict("key")), None)
            }
        }
        CaWrite::Complete { cert, audit } => {
            let done = sqlx::query(
                "UPDATE certificates SET state = 'issued', der = $1, not_before = $2, not_after = $3 \
                 WHERE serial = $4 AND state = 'intent'",
            )
            .bind(cert.der.as_slice())
            .bind(cert.not_before.unix_timestamp())
            .bind(cert.not_after.unix_timestamp())
            .bind(cert.serial.to_hex())
            .execute(&mut *c)
            .await
            .map_err(backend_error)?;
            if done.rows_affected() == 1 { (Ok(Written::Done), Some(audit)) } else { (Err(StoreError::NotFound), None) }
        }
        CaWrite::Fail { serial, audit } => {
            sqlx::query("UPDATE certificates SET state = 'failed' WHERE serial = $1 AND state = 'intent'")
                .bind(serial.to_hex())
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
            (Ok(Written::Done), Some(audit))
        }
        CaWrite::Revoke { serial, reason, at, audit, outbox } => {
            let serial = serial.to_hex();
            let done = sqlx::query(
                "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
                 WHERE serial = $3 AND state = 'issued' AND revoked_at IS NULL",
            )
            .bind(at.unix_timestamp())
            .bind(i64::from(reason.code()))
            .bind(serial.clone())
            .execute(&mut *c)
            .await
            .map_err(backend_error)?;
            if done.rows_affected() == 1 {
                insert_outbox(c, outbox_rows(outbox), at.unix_timestamp()).await?;
                return Ok((Ok(Written::Revoked(Revoked::Now)), Some(audit)));
            }
            let exists = sqlx::query("SELECT 1 FROM certificates WHERE serial = $1 AND state = 'issued'")
                .bind(serial)
                .fetch_optional(&mut *c)
                .await
                .map_err(backend_error)?;
            // Nothing changed, so nothing is recorded.
            (if exists.is_some() { Ok(Written::Revoked(Revoked::Already)) } else { Err(StoreError::NotFound) }, None)
        }
    })
}

impl Store {
    /// Makes `writes` in one transaction, in order, and appends the audit rows of those that
    /// changed something; returns each write's outcome. `Err` only if the transaction failed,
    /// in which case none of them was made (and the same writes may be tried again).
    pub async fn write_ca(&self, writes: &[PendingWrite]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(backend_error)?;
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        // Every write starts with an INSERT or UPDATE, so SQLite takes the write lock on the
        // first statement and cannot deadlock upgrading a read lock.
        for PendingWrite { write, request_id } in writes {
            let (outcome, audit) = apply(&mut tx, write).await?;
            events.extend(audit.map(|a| (a, request_id.as_deref())));
            outcomes.push(outcome);
        }
        self.append_audit(&mut tx, &events).await.map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)?;
        Ok(outcomes)
    }

    /// One write in a transaction of its own.
    pub async fn write_alone(&self, write: &PendingWrite) -> Result<Written, StoreError> {
        let mut outcomes = self.write_ca(std::slice::from_ref(write)).await?;
        outcomes.pop().unwrap_or_else(|| Err(StoreError::Backend("a write went missing".into())))
    }
}
