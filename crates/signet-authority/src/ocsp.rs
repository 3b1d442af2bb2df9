//! OCSP answers (RFC 6960). Single-certificate requests without a nonce are answered from a
//! cache of pre-signed responses, checked against the stored status on every request (at most
//! [`STATUS_TTL`] old), so a revocation made on any node shows at once.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use signet_pki::Serial;
use signet_pki::ocsp::{
    CertId, CertIdHash, CertStatus, ErrorStatus, OcspError, OcspIssuer, SingleStatus, error_response, parse_request,
    sign_response,
};
use signet_pki::signer::Signer;
use signet_ra::issuance::{CaStore, StoreError, StoredStatus};
use signet_store::Store;
use time::{Duration, OffsetDateTime};

use crate::authority::{OcspAnswer, OcspQuery};
use crate::metrics::{Metrics, OcspSource};

/// How long a cached answer is served without re-reading the stored status. A revocation
/// made through this node drops its cached answers at once; one made on another node is
/// seen within this bound.
pub const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

// The cache holds at most this many answers; past it, it is cleared (a cold miss costs one
// signature, so a simple bound beats an LRU here).
const CACHE_LIMIT: usize = 200_000;

/// A signed answer kept for reuse while the stored status is unchanged.
#[derive(Debug, Clone)]
struct Cached {
    status: CertStatus,
    /// `Bytes` so serving it is a reference-count bump, not a copy.
    der: Bytes,
    /// Re-signed after this, half-way through its validity.
    refresh_at: OffsetDateTime,
    next_update: OffsetDateTime,
    /// When the stored status was last read (monotonic, real time: it bounds how stale a
    /// status may be, whatever the injected clock says).
    checked: std::time::Instant,
}

/// The responder's identity and its cache of signed answers.
pub(crate) struct OcspCache {
    issuer: OcspIssuer,
    validity: Duration,
    answers: Mutex<HashMap<CertId, Cached>>,
}

fn to_cert_status(s: Option<StoredStatus>) -> CertStatus {
    match s {
        Some(StoredStatus::Good) => CertStatus::Good,
        Some(StoredStatus::Revoked { at, reason }) => CertStatus::Revoked { at, reason: Some(reason) },
        // Reserved but never issued, or never seen: we cannot vouch for it.
        Some(StoredStatus::NotIssued) | None => CertStatus::Unknown,
    }
}

fn refused(metrics: &Metrics, status: ErrorStatus) -> OcspAnswer {
    metrics.ocsp_error(status);
    OcspAnswer { der: Bytes::from(error_response(status)), max_age: None }
}

impl OcspCache {
    pub(crate) fn new(issuer: OcspIssuer, validity: Duration) -> Self {
        Self { issuer, validity, answers: Mutex::new(HashMap::new()) }
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<CertId, Cached>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) async fn answer(
        &self,
        store: &Store,
        signer: &dyn Signer,
        metrics: &Metrics,
        query: &OcspQuery,
        now: OffsetDateTime,
    ) -> OcspAnswer {
        let request = match parse_request(&query.der) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "malformed OCSP request");
                return refused(metrics, e.error_status());
            }
        };
        if !request.cert_ids.iter().any(|id| self.issuer.issued(id)) {
            return refused(metrics, ErrorStatus::Unauthorized);
        }
        let cached_answer = |c: &Cached| OcspAnswer {
            der: c.der.clone(),
            max_age: query.cacheable.then(|| (c.next_update - now).whole_seconds() - 60),
        };
        if let ([id], None) = (request.cert_ids.as_slice(), &request.nonce)
            && let Some(c) = self.fresh(id, now)
        {
            metrics.ocsp_answer(&c.status, OcspSource::Hit);
            return cached_answer(&c);
        }
        let mut statuses = Vec::with_capacity(request.cert_ids.len());
        for id in &request.cert_ids {
            let status = if self.issuer.issued(id) {
                match store.status(&id.serial).await {
                    Ok(s) => to_cert_status(s),
                    Err(e) => {
                        tracing::error!(error = %e, "OCSP status lookup failed");
                        return refused(metrics, ErrorStatus::TryLater);
                    }
                }
            } else {
                CertStatus::Unknown
            };
            statuses.push(SingleStatus { cert_id: id.clone(), status });
        }
        if let ([single], None) = (statuses.as_slice(), &request.nonce) {
            return match self.cached_or_sign(signer, single, now) {
                Ok((c, source)) => {
                    metrics.ocsp_answer(&c.status, source);
                    cached_answer(&c)
                }
                Err(e) => {
                    tracing::error!(error = %e, "OCSP signing failed");
                    refused(metrics, ErrorStatus::InternalError)
                }
            };
        }
        // A nonce or several certificates: the answer is unique to this request.
        match sign_response(&self.issuer, signer, &statuses, now, now, now + self.validity, request.nonce.as_deref()) {
            Ok(der) => {
                for single in &statuses {
                    metrics.ocsp_answer(&single.status, OcspSource::Unique);
                }
                OcspAnswer { der: Bytes::from(der), max_age: None }
            }
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing failed");
                refused(metrics, ErrorStatus::InternalError)
            }
        }
    }

    /// A cached answer whose status was read within [`STATUS_TTL`] and that is not due for
    /// re-signing: served without touching the database.
    fn fresh(&self, id: &CertId, now: OffsetDateTime) -> Option<Cached> {
        self.answers().get(id).filter(|c| c.checked.elapsed() < STATUS_TTL && now < c.refresh_at).cloned()
    }

    /// The cached answer if it still states `single.status`, else a newly signed one; and which
    /// of the two it is.
    fn cached_or_sign(
        &self,
        signer: &dyn Signer,
        single: &SingleStatus,
        now: OffsetDateTime,
    ) -> Result<(Cached, OcspSource), OcspError> {
        if let Some(c) = self.answers().get_mut(&single.cert_id)
            && c.status == single.status
            && now < c.refresh_at
        {
            c.checked = std::time::Instant::now();
            return Ok((c.clone(), OcspSource::Hit));
        }
        Ok((self.presign(signer, single.clone(), now)?, OcspSource::Miss))
    }

    /// Drops every cached answer for `serial`, after it was revoked through this node.
    pub(crate) fn forget(&self, serial: &Serial) {
        self.answers().retain(|id, _| id.serial != *serial);
    }

    /// Signs a response for one certificate and caches it.
    fn presign(&self, signer: &dyn Signer, single: SingleStatus, now: OffsetDateTime) -> Result<Cached, OcspError> {
        let next_update = now + self.validity;
        let der = sign_response(&self.issuer, signer, std::slice::from_ref(&single), now, now, next_update, None)?;
        let entry = Cached {
            status: single.status,
            der: Bytes::from(der),
            refresh_at: now + self.validity / 2,
            next_update,
            checked: std::time::Instant::now(),
        };
        let mut answers = self.answers();
        if answers.len() >= CACHE_LIMIT {
            answers.clear();
        }
        answers.insert(single.cert_id, entry.clone());
        Ok(entry)
    }

    /// Pre-signs the `good` answer for a new certificate, for the CertID form OpenSSL and most
    /// clients send (SHA-1 hashes).
    pub(crate) fn presign_new(&self, signer: &dyn Signer, serial: &Serial, now: OffsetDateTime) {
        let cert_id = self.issuer.cert_id(CertIdHash::Sha1, serial.clone());
        if let Err(e) = self.presign(signer, SingleStatus { cert_id, status: CertStatus::Good }, now) {
            tracing::warn!(error = %e, "pre-signing OCSP failed; it will be signed on first request");
        }
    }

    /// Re-signs cached answers past half their validity; returns how many were re-signed.
    pub(crate) async fn refresh(
        &self,
        store: &Store,
        signer: &dyn Signer,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let due: Vec<CertId> =
            self.answers().iter().filter(|(_, c)| c.refresh_at <= now).map(|(id, _)| id.clone()).collect();
        for cert_id in &due {
            let status = to_cert_status(store.status(&cert_id.serial).await?);
            if let Err(e) = self.presign(signer, SingleStatus { cert_id: cert_id.clone(), status }, now) {
                tracing::error!(error = %e, "OCSP refresh failed");
            }
        }
        Ok(due.len())
    }
}
