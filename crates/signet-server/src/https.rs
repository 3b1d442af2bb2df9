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
    use std::sync::Arc;

    use axum::body::Body;
    use signet_ra::SystemClock;
    use tower::ServiceExt;

    use super::*;
    use signet_authority::config::ServerConfig;
    use signet_authority::limits::LimitsConfig;
    use signet_authority::tls::TlsConfig;

    /// Behind a proxy at 10.0.0.1: only its `X-Forwarded-Proto: https` earns HSTS and a
    /// Secure cookie.
    #[tokio::test]
    async fn forwarded_proto_counts_from_a_trusted_proxy_only() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerConfig {
            data_dir: Some(dir.path().to_owned()),
            tls: TlsConfig { behind_proxy: true, ..Default::default() },
            limits: LimitsConfig { trusted_proxies: vec!["10.0.0.1".into()], ..Default::default() },
            ..Default::default()
        }
        .into_settings()
        .unwrap();
        let state = crate::build_state(&settings, "http://signet.test", Arc::new(SystemClock)).await.unwrap();
        let app = crate::app(state);
        let get = |peer: &str, proto: Option<&str>| {
            let mut request = Request::builder().uri("/console/sign-in");
            if let Some(proto) = proto {
                request = request.header("x-forwarded-proto", proto);
            }
            let mut request = request.body(Body::empty()).unwrap();
            request.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 40000)));
            app.clone().oneshot(request)
        };
        let secure = |r: &Response| {
            let cookie = r.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
            (r.headers().contains_key(header::STRICT_TRANSPORT_SECURITY), cookie.ends_with("; Secure"))
        };
        assert_eq!(secure(&get("10.0.0.1", Some("https")).await.unwrap()), (true, true));
        assert_eq!(secure(&get("10.0.0.1", Some("http")).await.unwrap()), (false, false));
        assert_eq!(secure(&get("10.0.0.1", None).await.unwrap()), (false, false));
        assert_eq!(secure(&get("192.0.2.9", Some("https")).await.unwrap()), (false, false), "not a trusted proxy");
    }

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
