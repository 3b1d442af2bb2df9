//! The OCSP responder's routes (RFC 6960; GET per Appendix A.1, POST). The answers, and the
//! cache of pre-signed ones, are the CA's ([`signet_authority::Authority::ocsp`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use signet_authority::{OcspAnswer, OcspQuery};
use signet_pki::ocsp::{ErrorStatus, error_response};

use crate::state::AppState;

/// Routes: `POST /ocsp`, `GET /ocsp/{base64 request}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/ocsp", post(post_ocsp)).route("/ocsp/{*request}", get(get_ocsp))
}

fn ocsp_body(answer: OcspAnswer) -> Response {
    let mut resp = answer.der.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ocsp-response"));
    // RFC 5019 §6: let HTTP caches keep GET answers until shortly before nextUpdate.
    let cache = match answer.max_age {
        Some(s) if s > 0 => format!("max-age={s}, public, no-transform, must-revalidate"),
        _ => "no-cache".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

#[tracing::instrument(skip_all)]
async fn post_ocsp(State(state): State<AppState>, body: Bytes) -> Response {
    ocsp_body(state.authority.ocsp(OcspQuery { der: body, cacheable: false }).await)
}

#[tracing::instrument(skip_all)]
async fn get_ocsp(State(state): State<AppState>, Path(request): Path<String>) -> Response {
    // Path<String> is already percent-decoded; some clients also drop the padding.
    let trimmed = request.trim_end_matches('=');
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed) {
        Ok(der) => ocsp_body(state.authority.ocsp(OcspQuery { der: Bytes::from(der), cacheable: true }).await),
        Err(_) => {
            state.metrics.ocsp_error(ErrorStatus::MalformedRequest);
            ocsp_body(OcspAnswer { der: Bytes::from(error_response(ErrorStatus::MalformedRequest)), max_age: None })
        }
    }
}
