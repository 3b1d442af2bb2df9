//! A request id for every request: written on each log line of the request (the `request`
//! span), on every audit row the request appends ([`signet_store::request::scope`]) and in the
//! `X-Request-Id` answer header, so a client's complaint, the log and the audit log meet.
//!
//! The server makes the id (128 random bits, hex). A client's `X-Request-Id` is ignored — it
//! would let anyone write what they like into the audit log's correlation — except from a
//! trusted proxy (`[limits] trusted_proxies`), whose id is kept when it is 8 to 64 letters,
//! digits, `-`, `_` or `.`, so the proxy's access log lines up too.

use std::net::SocketAddr;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::state::AppState;

/// The header the id travels in, both ways.
pub(crate) const HEADER: &str = "x-request-id";

/// The middleware: picks the id, runs the request in its span and audit scope, echoes it.
pub(crate) async fn tag(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let id = from_proxy(&state, &request).unwrap_or_else(generate);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        // The path only: query strings carry one-time tokens (email verification, password
        // reset links), which must not reach the log.
        path = %request.uri().path(),
    );
    let mut response = signet_store::request::scope(id.clone(), next.run(request)).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The id a trusted proxy sent, if it is well formed.
fn from_proxy(state: &AppState, request: &Request) -> Option<String> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    if !state.client_limiter.is_trusted_proxy(peer.ip()) {
        return None;
    }
    let sent = request.headers().get(HEADER)?.to_str().ok()?;
    well_formed(sent).then(|| sent.to_owned())
}

fn well_formed(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn generate() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("system random generator");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_of_sensible_length_are_kept() {
        assert!(well_formed("3f2a9c1e-77b0-4c1d-9a52-0e1f2a3b4c5d"));
        assert!(well_formed(&generate()));
        for bad in ["short", &"x".repeat(65), "id with spaces", "a\"b{c}=d\nforged"] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
