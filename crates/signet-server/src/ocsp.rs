//! The OCSP responder (RFC 6960; GET per Appendix A.1, POST). Single-certificate requests
//! without a nonce are answered from a cache of pre-signed responses, checked against the
//! stored status on every request, so a revocation made on any node shows at once.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use signet_pki::Serial;
use signet_pki::ocsp::{
    CertId, CertIdHash, CertStatus, ErrorStatus, SingleStatus, error_response, parse_request, sign_response,
};
use signet_ra::issuance::{CaStore, StoreError, StoredStatus};
use time::OffsetDateTime;

use crate::metrics::OcspCache;
use crate::state::{AppState, CachedOcsp};

/// Routes: `POST /ocsp`, `GET /ocsp/{base64 request}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/ocsp", post(post_ocsp)).route("/ocsp/{*request}", get(get_ocsp))
}

/// How long a cached answer is served without re-reading the stored status. A revocation
/// made through this node drops its cached answers at once; one made on another node is
/// seen within this bound.
pub const STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

// The cache holds at most this many answers; past it, it is cleared (a cold miss costs one
// signature, so a simple bound beats an LRU here).
const CACHE_LIMIT: usize = 200_000;

fn ocsp_body(der: Bytes, max_age: Option<i64>) -> Response {
    let mut resp = der.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    // RFC 5019 §6: let HTTP caches keep GET answers until shortly before nextUpdate.
    let cache = match max_age {
        Some(s) if s > 0 => format!("max-age={s}, public, no-transform, must-revalidate"),
        _ => "no-cache".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

fn error(state: &AppState, status: ErrorStatus) -> Response {
    state.metrics.ocsp_error(status);
    ocsp_body(Bytes::from(error_response(status)), None)
}

#[tracing::instrument(skip_all)]
async fn post_ocsp(State(state): State<AppState>, body: Bytes) -> Response {
    answer(&state, &body, false).await
}

#[tracing::instrument(skip_all)]
async fn get_ocsp(State(state): State<AppState>, Path(request): Path<String>) -> Response {
    // Path<String> is already percent-decoded; some clients also drop the padding.
    let trimmed = request.trim_end_matches('=');
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed) {
        Ok(der) => answer(&state, &der, true).await,
        Err(_) => error(&state, ErrorStatus::MalformedRequest),
    }
}

fn to_cert_status(s: Option<StoredStatus>) -> CertStatus {
    match s {
        Some(StoredStatus::Good) => CertStatus::Good,
        Some(StoredStatus::Revoked { at, reason }) => CertStatus::Revoked { at, reason: Some(reason) },
        // Reserved but never issued, or never seen: we cannot vouch for it.
        Some(StoredStatus::NotIssued) | None => CertStatus::Unknown,
    }
}

async fn answer(state: &AppState, der: &[u8], is_get: bool) -> Response {
    let request = match parse_request(der) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "malformed OCSP request");
            return error(state, e.error_status());
        }
    };
    if !request.cert_ids.iter().any(|id| state.ocsp_issuer.issued(id)) {
        return error(state, ErrorStatus::Unauthorized);
    }
    let now = state.clock.now();
    let max_age = |c: &CachedOcsp| is_get.then(|| (c.next_update - now).whole_seconds() - 60);
    if let ([id], None) = (request.cert_ids.as_slice(), &request.nonce)
        && let Some(c) = fresh_cached(state, id, now)
    {
        state.metrics.ocsp_answer(&c.status, OcspCache::Hit);
        return ocsp_body(c.der.clone(), max_age(&c));
    }
    let mut statuses = Vec::with_capacity(request.cert_ids.len());
    for id in &request.cert_ids {
        let status = if state.ocsp_issuer.issued(id) {
            match state.store.status(&id.serial).await {
                Ok(s) => to_cert_status(s),
                Err(e) => {
                    tracing::error!(error = %e, "OCSP status lookup failed");
                    return error(state, ErrorStatus::TryLater);
                }
            }
        } else {
            CertStatus::Unknown
        };
        statuses.push(SingleStatus { cert_id: id.clone(), status });
    }
    if let ([single], None) = (statuses.as_slice(), &request.nonce) {
        return match cached_or_sign(state, single, now) {
            Ok((c, cache)) => {
                state.metrics.ocsp_answer(&c.status, cache);
                ocsp_body(c.der.clone(), max_age(&c))
            }
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing failed");
                error(state, ErrorStatus::InternalError)
            }
        };
    }
    // A nonce or several certificates: the answer is unique to this request.
    match sign_response(
        &state.ocsp_issuer,
        state.ca.signer(),
        &statuses,
        now,
        now,
        now + state.ocsp_validity,
        request.nonce.as_deref(),
    ) {
        Ok(der) => {
            for single in &statuses {
                state.metrics.ocsp_answer(&single.status, OcspCache::Unique);
            }
            ocsp_body(Bytes::from(der), None)
        }
        Err(e) => {
            tracing::error!(error = %e, "OCSP signing failed");
            error(state, ErrorStatus::InternalError)
        }
    }
}

/// A cached answer whose status was read within [`STATUS_TTL`] and that is not due for
/// re-signing: served without touching the database.
fn fresh_cached(state: &AppState, id: &CertId, now: OffsetDateTime) -> Option<CachedOcsp> {
    let cache = state.ocsp_cache.lock().unwrap_or_else(|p| p.into_inner());
    cache.get(id).filter(|c| c.checked.elapsed() < STATUS_TTL && now < c.refresh_at).cloned()
}

/// The cached answer if it still states `single.status`, else a newly signed one; and which
/// of the two it is.
fn cached_or_sign(
    state: &AppState,
    single: &SingleStatus,
    now: OffsetDateTime,
) -> Result<(CachedOcsp, OcspCache), signet_pki::ocsp::OcspError> {
    {
        let mut cache = state.ocsp_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get_mut(&single.cert_id)
            && c.status == single.status
            && now < c.refresh_at
        {
            c.checked = std::time::Instant::now();
            return Ok((c.clone(), OcspCache::Hit));
        }
    }
    Ok((presign(state, single.clone(), now)?, OcspCache::Miss))
}

/// Drops every cached answer for `serial`, after it was revoked through this node.
pub(crate) fn forget(state: &AppState, serial: &Serial) {
    state.ocsp_cache.lock().unwrap_or_else(|p| p.into_inner()).retain(|id, _| id.serial != *serial);
}

/// Signs a response for one certificate and caches it.
pub(crate) fn presign(
    state: &AppState,
    single: SingleStatus,
    now: OffsetDateTime,
) -> Result<CachedOcsp, signet_pki::ocsp::OcspError> {
    let next_update = now + state.ocsp_validity;
    let der = sign_response(
        &state.ocsp_issuer,
        state.ca.signer(),
        std::slice::from_ref(&single),
        now,
        now,
        next_update,
        None,
    )?;
    let entry = CachedOcsp {
        status: single.status,
        der: Bytes::from(der),
        refresh_at: now + state.ocsp_validity / 2,
        next_update,
        checked: std::time::Instant::now(),
    };
    let mut cache = state.ocsp_cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(single.cert_id, entry.clone());
    Ok(entry)
}

/// Pre-signs the `good` answer for a new certificate, for the CertID form OpenSSL and most
/// clients send (SHA-1 hashes).
pub(crate) fn presign_new(state: &AppState, serial: &Serial) {
    let cert_id = state.ocsp_issuer.cert_id(CertIdHash::Sha1, serial.clone());
    if let Err(e) = presign(state, SingleStatus { cert_id, status: CertStatus::Good }, state.clock.now()) {
        tracing::warn!(error = %e, "pre-signing OCSP failed; it will be signed on first request");
    }
}

impl AppState {
    /// Re-signs cached answers past half their validity, so requests never wait on the key;
    /// returns how many were re-signed. Runs every minute in the background.
    pub async fn refresh_ocsp(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due: Vec<CertId> = {
            let cache = self.ocsp_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.iter().filter(|(_, c)| c.refresh_at <= now).map(|(id, _)| id.clone()).collect()
        };
        for cert_id in &due {
            let status = to_cert_status(self.store.status(&cert_id.serial).await?);
            if let Err(e) = presign(self, SingleStatus { cert_id: cert_id.clone(), status }, now) {
                tracing::error!(error = %e, "OCSP refresh failed");
            }
        }
        Ok(due.len())
    }
}
