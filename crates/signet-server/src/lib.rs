//! Signet's HTTP front end (axum): routers, handlers, page templates and the one mapping of
//! errors to HTTP answers.
//!
//! What it does: the applicant portal (`/apply`, `/applications`, with the PDF forms and the
//! timeline picture), password reset (`/password-reset`), the operator console (`/console`,
//! with key recovery requests and approvals at `/console/key-recovery` and the token stock at
//! `/console/tokens`) and the subscriber Certificate Management Center (`/cmc`) as
//! server-rendered pages behind database sessions and CSRF checks; the RA-facing JSON API
//! (`/api/v1`, including token retrieval — with the escrowed encryption key wrapped for the
//! token, proven on the shipped token by its shipment key — and renewal by the current key);
//! the ACME server for device certificates (`/acme`); the OCSP and CRL routes and the CA
//! certificate downloads at the URLs written into certificates; the public repository of
//! subscribers' certificates (`/repository`); `/metrics`, the API's OpenAPI
//! document at `/api/v1/openapi.json`, and a request id per request on its log lines, its audit
//! rows and its `X-Request-Id` header. It serves plain HTTP, HTTPS (a certificate from files or
//! one the node issues itself, with a plain port for what relying parties fetch), or plain HTTP
//! behind a TLS proxy, and starts the node's background jobs beside it. Each module owns its
//! `router()`; [`app`] joins them and is what tests call.
//!
//! What it does not do: no handler holds the CA key — issuing, revoking, OCSP and CRLs are
//! asked of the `signet_authority::Authority`; configuration, jobs, mail and documents are
//! `signet-authority`'s; no certificate logic (`signet-pki`), no domain rules (`signet-ra`), no
//! SQL (`signet-store`), no PKCS#11 (the subscriber's token is driven by `signet token`). The
//! running server holds only the key recovery key's public half: it escrows, and never opens an
//! escrow.

mod acme;
mod api;
mod api_keys;
mod applicant;
mod apply_fields;
mod client_limiter;
mod cmc;
mod console;
mod crl;
mod error;
mod hashing;
mod https;
mod listener;
mod metrics_route;
mod ocsp;
mod openapi;
mod passkey_forms;
mod password_reset;
mod portal;
mod recovery_console;
mod renewal;
mod repository;
mod request_id;
mod retrieval;
mod retrieve_guide;
mod state;
mod throttle;
mod unstored_pages;
mod web;

pub use api::token_hash;
pub use state::AppState;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use signet_authority::{Core, OpenError, Settings, mail, self_issued, tls};
use signet_ra::Clock;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The largest request body taken: no request this server takes (CSR, OCSP request)
/// comes near it.
const MAX_BODY: usize = 64 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store or the CA could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The mail relay (or mail folder) could not be set up.
    #[error("mail: {0}")]
    Mail(#[from] mail::MailError),
    /// The self-issued HTTPS certificate could not be had.
    #[error("self-issued HTTPS certificate: {0}")]
    SelfIssue(#[from] self_issued::SelfIssueError),
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    // Pages share the session layer (cookie session, CSRF check on every post); the API,
    // OCSP and CRL endpoints are cookie-free.
    let pages = Router::new()
        .merge(portal::router())
        .merge(applicant::router())
        .merge(console::router())
        .merge(recovery_console::router())
        .merge(cmc::router())
        .merge(passkey_forms::router())
        .merge(retrieve_guide::router())
        .merge(password_reset::router())
        .route("/static/site.css", get(web::stylesheet))
        .route("/static/passkey.js", get(web::passkey_script))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::session_layer));
    Router::new()
        .merge(pages)
        .merge(api::router())
        .merge(acme::router(state.clone()))
        .merge(retrieval::router())
        .merge(renewal::router())
        .merge(ocsp::router())
        .merge(crl::router())
        .merge(repository::router())
        .merge(ca_router())
        .merge(metrics_route::router())
        .merge(openapi::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), throttle::limit_secret_posts))
        .layer(axum::middleware::from_fn_with_state(state.clone(), https::mark))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::map_response(problem_for_too_large))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        // No page runs inline script or is framed (the one script, for passkeys, is a file of
        // ours that only calls this site); links carry one-time tokens, so no referrer leaves.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
                 img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        // The request's span is the one `request_id::tag` opened around it.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|_: &axum::http::Request<_>| tracing::Span::current()),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), request_id::tag))
        .with_state(state)
}

fn ca_router() -> Router<AppState> {
    Router::new()
        // Process alive only; whether it can serve is /readyz.
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/ca/issuing.crt",
            get(|State(s): State<AppState>| async move {
                der_response(&s.certificates.issuing, "application/pkix-cert")
            }),
        )
        .route(
            "/ca/root.crt",
            get(|State(s): State<AppState>| async move { der_response(&s.certificates.root, "application/pkix-cert") }),
        )
        .route(
            "/ca/chain.pem",
            get(|State(s): State<AppState>| async move {
                ([(header::CONTENT_TYPE, "application/pem-certificate-chain")], s.certificates.chain_pem())
            }),
        )
}

/// How long readiness waits for the database before calling it gone.
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready to serve: the database answers within [`READY_DB_TIMEOUT`] and the issuing CA's
/// key signs. A load balancer takes the node out on 503; the text says which part failed.
async fn readyz(State(s): State<AppState>) -> Response {
    let unavailable = |reason: String| (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    match tokio::time::timeout(READY_DB_TIMEOUT, s.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unusable");
            return unavailable("database unavailable".into());
        }
        Err(_) => {
            tracing::warn!("readiness: database did not answer in time");
            return unavailable("database did not answer".into());
        }
    }
    // A real signature with the key the CA issues with (an HSM session may have gone).
    match s.authority.probe().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: CA signer failed");
            unavailable("CA signer unavailable".into())
        }
    }
}

/// Gives a 413 from the body limit the API's problem+json shape (the limit layer answers
/// a declared oversize Content-Length itself, in plain text).
async fn problem_for_too_large(response: Response) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return error::ApiError::PayloadTooLarge.into_response();
    }
    response
}

fn der_response(der: &[u8], content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], der.to_vec()).into_response()
}

/// Opens the store and the CA (creating the dev CA in `<data>/ca` if there is none) for a
/// server whose certificates point at `base_url`; people and ACME clients use the configured
/// public URL if there is one, `base_url` otherwise.
pub async fn build_state(settings: &Settings, base_url: &str, clock: Arc<dyn Clock>) -> Result<AppState, StartError> {
    let public_url = settings.public_url(settings.listen.port()).unwrap_or_else(|| base_url.to_owned());
    build_state_at(settings, base_url, &public_url, clock).await
}

async fn build_state_at(
    settings: &Settings,
    base_url: &str,
    public_url: &str,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartError> {
    let opened = Core::open(settings, base_url, public_url, clock).await?;
    let passkeys = signet_ra::passkey::RelyingParty::for_origin(public_url)
        .inspect_err(|e| tracing::warn!(error = %e, "passkeys are off: people sign in with codes only"))
        .ok();
    Ok(AppState(Arc::new(state::Inner {
        core: Arc::new(opened.core),
        recovery_key: opened.recovery_key,
        attestation_roots: settings.attestation_roots.clone(),
        base_url: public_url.to_owned(),
        transport: settings.transport.clone(),
        agencies: settings.agencies.clone(),
        prices: settings.prices.clone(),
        contact: settings.ra.clone(),
        acme: settings.acme.clone(),
        hashing: hashing::PasswordWork::new(settings.limits.password_hashes, settings.limits.password_hash_wait),
        api_keys: api_keys::ApiKeys::default(),
        client_limiter: client_limiter::ClientLimiter::new(
            settings.limits.secret_attempts_per_minute,
            settings.limits.trusted_proxies.clone(),
        ),
        repository_limiter: client_limiter::ClientLimiter::new(
            settings.limits.repository_requests_per_minute,
            settings.limits.trusted_proxies.clone(),
        ),
        client_download: settings.client_download.clone(),
        unstored_pages: crate::unstored_pages::UnstoredPages::default(),
        passkeys,
        operator_passkeys: settings.operator_passkeys.clone(),
    })))
}

/// A server bound and running in the background (tests, `signet serve`).
pub struct Running {
    /// Where it listens (HTTPS when TLS is on).
    pub addr: SocketAddr,
    /// The plain HTTP listener beside HTTPS.
    pub plain_addr: Option<SocketAddr>,
    /// The base URL in certificates (always `http://`).
    pub base_url: String,
    /// The URL people and ACME clients open.
    pub public_url: String,
    /// Its state.
    pub state: AppState,
    /// The serving task (with the self-issued certificate's renewal).
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The background jobs; [`signet_authority::jobs::Jobs::stop`] on shutdown hands their leases over.
    pub jobs: signet_authority::jobs::Jobs,
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Binds `settings.listen` (port 0 picks one) and, with HTTPS, `tls.http_listen`, builds the
/// state and serves in the background, with the background jobs (outbox, deadlines, OCSP
/// refresh) beside it.
pub async fn spawn(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let (listener, addr) = bind(settings.listen).await?;
    let (plain, plain_addr) = match &settings.transport {
        tls::Transport::Https(h) => {
            let (l, a) = bind(h.http_listen).await?;
            (Some(l), Some(a))
        }
        _ => (None, None),
    };
    let base_url = settings.base_url.clone().unwrap_or_else(|| format!("http://{}", plain_addr.unwrap_or(addr)));
    let public_url = settings.public_url(addr.port()).unwrap_or_else(|| base_url.clone());
    let state = build_state_at(settings, &base_url, &public_url, clock).await?;
    let jobs = signet_authority::jobs::JobRunner::new(state.core(), mail::Mailer::new(&settings.mail)?).start();
    let router = app(state.clone());
    let limits = settings.limits.clone();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let task = match (&settings.transport, plain) {
        (tls::Transport::Https(h), Some(plain)) => {
            let (first, renewer) = match &h.certificate {
                tls::CertificateSource::Files(certified) => (certified.clone(), None),
                tls::CertificateSource::SelfIssued(names) => {
                    let own = self_issued::SelfIssued::new(
                        names.clone(),
                        &settings.data_dir,
                        &settings.acme,
                        settings.ra.name.as_str(),
                    );
                    (own.current_or_new(&state).await?, Some(own))
                }
            };
            let slot = Arc::new(tls::CertSlot::new(first));
            let renewal = {
                let (core, slot) = (state.core(), slot.clone());
                async move {
                    match renewer {
                        Some(own) => own.keep_renewed(core, slot).await,
                        None => std::future::pending().await,
                    }
                }
            };
            let https =
                listener::serve(listener, router.clone(), limits.clone(), Some(tls::acceptor(slot)), open.clone());
            let redirecting =
                router.layer(axum::middleware::from_fn_with_state(public_url.clone(), https::redirect_plain));
            let plain = listener::serve(plain, redirecting, limits, None, open);
            tokio::spawn(async move {
                tokio::select! {
                    served = async { tokio::try_join!(https, plain) } => served.map(|_| ()),
                    () = renewal => Ok(()),
                }
            })
        }
        _ => tokio::spawn(listener::serve(listener, router, limits, None, open)),
    };
    tracing::info!(%addr, ?plain_addr, %base_url, %public_url, "signet serving");
    Ok(Running { addr, plain_addr, base_url, public_url, state, task, jobs })
}
