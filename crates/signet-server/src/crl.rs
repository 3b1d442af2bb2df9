//! The CRL at the distribution point written into every certificate. Regenerated when the
//! set of revocations changes (seen from any node through the database) or half-way
//! through its lifetime.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::{AppState, CachedCrl};

/// Routes: `GET /crl/issuing.crl`.
pub fn router() -> Router<AppState> {
    Router::new().route("/crl/issuing.crl", get(get_crl))
}

#[tracing::instrument(skip_all)]
async fn get_crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let der = current_crl(&state).await?;
    let mut resp = der.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pkix-crl"));
    Ok(resp)
}

/// The current CRL, signing a new one if revocations changed or it is half-way to expiry.
pub(crate) async fn current_crl(state: &AppState) -> Result<Bytes, ApiError> {
    let fingerprint = state.store.revocation_fingerprint().await?;
    let now = state.clock.now();
    // Holding the lock while signing makes concurrent requests wait for one new CRL
    // instead of each signing their own.
    let mut cache = state.crl_cache.lock().await;
    if let Some(c) = cache.as_ref()
        && c.fingerprint == fingerprint
        && now < c.refresh_at
    {
        return Ok(c.der.clone());
    }
    let der = Bytes::from(state.publish_crl("system").await?);
    state.metrics.crl_signed(now.unix_timestamp());
    *cache = Some(CachedCrl { der: der.clone(), fingerprint, refresh_at: now + state.crl_lifetime / 2 });
    Ok(der)
}
