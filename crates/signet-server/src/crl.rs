//! The CRL at the distribution point written into every certificate; the CA signs it anew
//! when the set of revocations changes (seen from any node through the database) or half-way
//! through its lifetime.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes: `GET /crl/issuing.crl`.
pub fn router() -> Router<AppState> {
    Router::new().route("/crl/issuing.crl", get(get_crl))
}

#[tracing::instrument(skip_all)]
async fn get_crl(State(state): State<AppState>) -> Result<Response, ApiError> {
    let der = state.authority.crl().await?;
    let mut resp = der.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pkix-crl"));
    Ok(resp)
}
