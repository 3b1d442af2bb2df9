//! What a request's transport changes in the answer: a request that came over HTTPS (to this
//! server, or to a trusted proxy that says so) gets Strict-Transport-Security and Secure
//! cookies; the plain HTTP port beside HTTPS redirects everything but what relying parties
//! fetch over plain HTTP by design (OCSP, CRLs, CA certificates) and health checks.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Put on each request by the connection loop: whether it arrived over TLS to this server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverTls(pub bool);

/// Put on each request by [`mark`]: whether the client reached the server over HTTPS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Https(pub bool);

/// A year, the value HSTS preload lists ask for; subdomains are left to their own servers.
const HSTS: &str = "max-age=31536000";

/// Decides [`Https`] and sends HSTS over HTTPS. `X-Forwarded-Proto` counts only in
/// behind-proxy mode and only from a trusted proxy: anyone else could claim anything.
pub(crate) async fn mark(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let direct = request.extensions().get::<OverTls>().is_some_and(|t| t.0);
    let forwarded = state.transport.trusts_forwarded_proto()
        && request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|ConnectInfo(peer)| state.client_limiter.is_trusted_proxy(peer.ip()))
        && request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let https = direct || forwarded;
    request.extensions_mut().insert(Https(https));
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
    response
}

/// What the plain port serves itself rather than redirecting.
fn served_plain(path: &str) -> bool {
    path == "/ocsp"
        || path.starts_with("/ocsp/")
        || path.starts_with("/crl/")
        || path.starts_with("/ca/")
        || path == "/healthz"
        || path == "/readyz"
}

/// The plain port beside HTTPS: a permanent redirect to the same path and query under
/// `public_url` (the configured URL, never the request's Host, which the client chose).
pub(crate) async fn redirect_plain(State(public_url): State<String>, request: Request, next: Next) -> Response {
    if served_plain(request.uri().path()) {
        return next.run(request).await;
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::try_from(format!("{public_url}{path}")) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_paths_stay_plain() {
        for path in ["/ocsp", "/ocsp/MEUwQz", "/crl/issuing.crl", "/ca/root.crt", "/ca/chain.pem", "/healthz"] {
            assert!(served_plain(path), "{path}");
        }
        for path in ["/", "/ocspx", "/console/sign-in", "/acme/directory", "/crl", "/api/v1/profiles"] {
            assert!(!served_plain(path), "{path}");
        }
    }
}
