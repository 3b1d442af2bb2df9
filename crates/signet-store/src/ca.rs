//! The CA's records: certificates from intent to issued, revocations, CRL numbers.

use signet_pki::crl::RevokedEntry;
use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::OrderMove;
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::{CaStore, IssuanceIntent, Revoked, StoreError, StoredStatus};
use signet_ra::notify::OutboxMessage;
use sqlx::Row;
use time::OffsetDateTime;

use crate::ca_writes::{CaWrite, Written};
use crate::{Store, backend_error};

fn ts(t: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| StoreError::Backend(e.to_string()))
}

pub(crate) fn reason(code: i64) -> Result<RevocationReason, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(RevocationReason::from_code)
        .ok_or_else(|| StoreError::Backend(format!("stored revocation reason {code} is invalid")))
}

/// A stored certificate, for listing and download.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    /// Serial.
    pub serial: Serial,
    /// Profile id.
    pub profile: String,
    /// DER.
    pub der: Vec<u8>,
    /// Revocation status.
    pub status: StoredStatus,
    /// Who asked for it, as the audit log names them (`applicant:<reference>`, `subscriber:<reference>`,
    /// `operator:<name>`, `acme:<account>`).
    pub requested_by: String,
}

impl Store {
    /// An issued certificate by serial.
    pub async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT profile, der, revoked_at, revocation_reason, requested_by FROM certificates \
             WHERE serial = $1 AND state = 'issued'",
        )
        .bind(serial.to_hex())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        let Some(r) = row else { return Ok(None) };
        let revoked_at: Option<i64> = r.try_get(2).map_err(backend_error)?;
        let reason_code: Option<i64> = r.try_get(3).map_err(backend_error)?;
        let status = match (revoked_at, reason_code) {
            (Some(at), Some(code)) => StoredStatus::Revoked { at: ts(at)?, reason: reason(code)? },
            _ => StoredStatus::Good,
        };
        Ok(Some(CertificateRecord {
            serial: serial.clone(),
            profile: r.try_get(0).map_err(backend_error)?,
            der: r.try_get(1).map_err(backend_error)?,
            status,
            requested_by: r.try_get(4).map_err(backend_error)?,
        }))
    }

    /// (number of revocations, latest revocation time): changes whenever a certificate is
    /// revoked on any node, so caches of the CRL know to regenerate.
    pub async fn revocation_fingerprint(&self) -> Result<(i64, Option<i64>), StoreError> {
        let r = sqlx::query("SELECT COUNT(*), MAX(revoked_at) FROM certificates WHERE revoked_at IS NOT NULL")
            .fetch_one(self.pool())
            .await
            .map_err(backend_error)?;
        Ok((r.try_get(0).map_err(backend_error)?, r.try_get(1).map_err(backend_error)?))
    }

    /// How many certificate rows exist in any state (for tests of "nothing stored").
    pub async fn certificate_rows(&self) -> Result<i64, StoreError> {
        sqlx::query("SELECT COUNT(*) FROM certificates")
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend_error)
    }
}

impl CaStore for Store {
    async fn record_intent(
        &self,
        i: &IssuanceIntent,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        let write = CaWrite::Intent { intent: i.clone(), audit, order: order.cloned() };
        self.write_alone(&write.in_this_request()).await.map(drop)
    }

    async fn complete_issuance(
        &self,
        cert: &IssuedCertificate,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        let write = CaWrite::Complete { cert: cert.clone(), audit, order: order.cloned() };
        self.write_alone(&write.in_this_request()).await.map(drop)
    }

    async fn fail_issuance(
        &self,
        serial: &Serial,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        let write = CaWrite::Fail { serial: serial.clone(), audit, order: order.cloned() };
        self.write_alone(&write.in_this_request()).await.map(drop)
    }

    async fn abandon_intents(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Serial>, StoreError> {
        // The partial index certificates_intents keeps this read to the few rows in 'intent'.
        let rows = sqlx::query(
            "SELECT serial, profile, subject, spki_sha256, requested_by, created_at FROM certificates \
             WHERE state = 'intent' AND created_at < $1 ORDER BY created_at, serial LIMIT $2",
        )
        .bind(before.unix_timestamp())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        let mut resolved = Vec::new();
        for r in &rows {
            let serial: String = r.try_get(0).map_err(backend_error)?;
            let intent = IssuanceIntent {
                serial: Serial::from_hex(&serial).map_err(|e| StoreError::Backend(e.to_string()))?,
                profile: r.try_get(1).map_err(backend_error)?,
                subject_json: r.try_get(2).map_err(backend_error)?,
                spki_sha256: r.try_get(3).map_err(backend_error)?,
                requested_by: r.try_get(4).map_err(backend_error)?,
                at: ts(r.try_get(5).map_err(backend_error)?)?,
            };
            // An ACME order waiting for it concludes with it. Read before the transaction, and
            // moved only if it is still processing then.
            let order = match self.order_waiting_for(&intent.serial).await? {
                Some((order, account)) => {
                    Some(order.issuance_abandoned(&account, now).map_err(|e| StoreError::Backend(e.to_string()))?)
                }
                None => None,
            };
            // The CA's own failure write, which changes the row only if it is still an intent
            // (it may have completed, or another node may have resolved it, since the read:
            // then nothing changes and nothing is audited).
            let write = CaWrite::Fail { serial: intent.serial.clone(), audit: intent.abandoned_event(now), order };
            if self.write_alone(&write.in_this_request()).await? == Written::Done {
                resolved.push(intent.serial);
            }
        }
        Ok(resolved)
    }

    async fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: OffsetDateTime,
        audit: AuditEvent,
        outbox: &[OutboxMessage],
    ) -> Result<Revoked, StoreError> {
        let write = CaWrite::Revoke { serial: serial.clone(), reason, at, audit, outbox: outbox.to_vec() };
        self.write_alone(&write.in_this_request()).await?.revocation()
    }

    async fn status(&self, serial: &Serial) -> Result<Option<StoredStatus>, StoreError> {
        let row = sqlx::query("SELECT state, revoked_at, revocation_reason FROM certificates WHERE serial = $1")
            .bind(serial.to_hex())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        let Some(r) = row else { return Ok(None) };
        let state: String = r.try_get(0).map_err(backend_error)?;
        let revoked_at: Option<i64> = r.try_get(1).map_err(backend_error)?;
        let code: Option<i64> = r.try_get(2).map_err(backend_error)?;
        Ok(Some(match (state.as_str(), revoked_at, code) {
            ("issued", Some(at), Some(code)) => StoredStatus::Revoked { at: ts(at)?, reason: reason(code)? },
            ("issued", _, _) => StoredStatus::Good,
            _ => StoredStatus::NotIssued,
        }))
    }

    async fn next_crl_number(&self, audit: AuditEvent) -> Result<u64, StoreError> {
        self.audited(&audit, |c| {
            Box::pin(async move {
                let n: i64 = sqlx::query("UPDATE crl_state SET number = number + 1 WHERE id = 1 RETURNING number")
                    .fetch_one(&mut *c)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(backend_error)?;
                u64::try_from(n).map_err(|e| StoreError::Backend(e.to_string()))
            })
        })
        .await
    }

    async fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL AND not_after >= $1 ORDER BY serial",
        )
        .bind(now.unix_timestamp())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let serial: String = r.try_get(0).map_err(backend_error)?;
                Ok(RevokedEntry {
                    serial: Serial::from_hex(&serial).map_err(|e| StoreError::Backend(e.to_string()))?,
                    revoked_at: ts(r.try_get(1).map_err(backend_error)?)?,
                    reason: reason(r.try_get(2).map_err(backend_error)?)?,
                })
            })
            .collect()
    }
}
