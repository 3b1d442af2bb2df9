//! Signet's HTTP front end (axum).
//!
//! What it does: the applicant portal (`/apply`, `/applications`, [`forms_pdf`],
//! [`timeline_svg`]), password reset (`/password-reset`), the operator console (`/console`,
//! with key recovery requests and approvals at `/console/key-recovery` and the token stock at
//! `/console/tokens`, whose workflows [`stock`] shares with `signet admin token`) and the subscriber
//! Certificate Management Center (`/cmc`) as server-rendered pages behind database sessions
//! and CSRF checks; the RA-facing JSON API (`/api/v1`, including token retrieval — with the
//! escrowed encryption key wrapped for the token, proven on the shipped token by its shipment
//! key — and renewal by the current key); the ACME server for device certificates (`/acme`); the OCSP responder; the CRL
//! and CA certificate downloads at the URLs written into certificates; and start-up
//! (configuration, dev CA on first start, background [`jobs`]: outbox [`mail`], deadlines,
//! OCSP refresh, session purge, orphan escrows). It serves plain HTTP, HTTPS ([`tls`]: a
//! certificate from files or one it issues itself and renews, with a plain port for what relying
//! parties fetch), or plain HTTP behind a TLS proxy. For operators: Prometheus metrics at
//! `/metrics`, the API's OpenAPI document at `/api/v1/openapi.json`, and a request id per request
//! on its log lines, its audit rows and its `X-Request-Id` header. Each module owns its `router()`; [`app`]
//! joins them and is what tests call.
//!
//! What it does not do: no certificate logic (`signet-pki`), no domain rules (`signet-ra`),
//! no SQL (`signet-store`), no PKCS#11 (the subscriber's token is driven by `signet token`).
//! The running server holds only the key recovery key's public half: it escrows, and never
//! opens an escrow ([`ca_files::open_recovery_key`] is for `signet admin key-recovery export`).

mod acme;
mod api;
mod applicant;
mod apply_fields;
pub mod ca_files;
mod cmc;
pub mod config;
mod console;
mod console_orgs;
mod console_stock;
mod crl;
mod effective;
mod error;
pub mod forms_pdf;
mod hashing;
mod https;
pub mod jobs;
pub mod limits;
mod listener;
pub mod mail;
mod metrics;
mod ocsp;
mod openapi;
mod password_reset;
mod portal;
mod recovery_console;
mod renewal;
mod request_id;
mod retrieval;
mod retrieve_guide;
mod self_issued;
mod state;
pub mod stock;
mod throttle;
pub mod timeline_svg;
pub mod tls;
mod web;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use signet_pki::ocsp::OcspIssuer;
use signet_pki::{CaUrls, KeyAlgorithm};
use signet_ra::Clock;
use signet_store::Store;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use acme::{AcmeConfig, AcmeSettings};
pub use api::token_hash;
pub use config::{ConfigError, ServerConfig, Settings};
pub use ocsp::STATUS_TTL as OCSP_STATUS_TTL;
pub use self_issued::SelfIssueError;
pub use state::AppState;

/// The largest request body taken: no request this server takes (CSR, OCSP request)
/// comes near it.
const MAX_BODY: usize = 64 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The CA could not be created or loaded.
    #[error(transparent)]
    Ca(#[from] ca_files::CaSetupError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] signet_store::OpenError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The CA certificate cannot back an OCSP responder.
    #[error("OCSP responder: {0}")]
    Ocsp(#[from] signet_pki::ocsp::OcspError),
    /// The data folder could not be created.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The mail relay (or mail folder) could not be set up.
    #[error("mail: {0}")]
    Mail(#[from] mail::MailError),
    /// The self-issued HTTPS certificate could not be had.
    #[error("self-issued HTTPS certificate: {0}")]
    SelfIssue(#[from] SelfIssueError),
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
        .merge(retrieve_guide::router())
        .merge(password_reset::router())
        .route("/static/site.css", get(web::stylesheet))
        .layer(axum::middleware::from_fn_with_state(state.clone(), web::session_layer));
    Router::new()
        .merge(pages)
        .merge(api::router())
        .merge(acme::router(state.clone()))
        .merge(retrieval::router())
        .merge(renewal::router())
        .merge(ocsp::router())
        .merge(crl::router())
        .merge(ca_router())
        .merge(metrics::router())
        .merge(openapi::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), throttle::limit_secret_posts))
        .layer(axum::middleware::from_fn_with_state(state.clone(), https::mark))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::map_response(problem_for_too_large))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        // No page runs script or is framed; links carry one-time tokens, so no referrer leaves.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
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
            get(|State(s): State<AppState>| async move { der_response(s.ca.cert_der(), "application/pkix-cert") }),
        )
        .route(
            "/ca/root.crt",
            get(|State(s): State<AppState>| async move { der_response(&s.root_der, "application/pkix-cert") }),
        )
        .route(
            "/ca/chain.pem",
            get(|State(s): State<AppState>| async move {
                ([(header::CONTENT_TYPE, "application/pem-certificate-chain")], api::chain_pem(&s))
            }),
        )
}

/// Creates `dir` (and missing parents) owner-only whatever the umask: it holds the
/// database and the CA's keys. An existing folder is left as the operator set it.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
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
    // A real signature through the signer the CA issues with (an HSM session may have gone),
    // off the async workers since a token can block.
    let signed = tokio::task::spawn_blocking(move || s.ca.signer().sign(b"signet readiness probe")).await;
    match signed {
        Ok(Ok(sig)) if !sig.is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(Ok(_)) => unavailable("CA signer returned no signature".into()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: CA signer failed");
            unavailable("CA signer unavailable".into())
        }
        Err(e) => {
            tracing::error!(error = %e, "readiness: signer task failed");
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
    create_private_dir(&settings.data_dir)
        .map_err(|source| StartError::DataDir { path: settings.data_dir.clone(), source })?;
    // The database first: a server that cannot reach it must leave nothing behind (no dev
    // CA minted for a database that was never used).
    let store = Store::connect(&settings.database_url).await?;
    let ca_dir = settings.data_dir.join("ca");
    if ca_files::ensure_dev_ca(&ca_dir, KeyAlgorithm::Rsa2048, &settings.catalog, clock.now())? {
        tracing::warn!(dir = %ca_dir.display(), "created a DEV CA with its passphrase stored beside the key; use `signet ca init` for a real one");
    }
    let loaded = ca_files::load_ca(&ca_dir, CaUrls::under(base_url))?;
    // TOTP seeds are sealed under the CA folder's key; those still in clear are sealed now.
    let store = store.with_sealing_key(ca_files::sealing_key(&ca_dir)?).await?;
    let ocsp_issuer = OcspIssuer::new(loaded.ca.cert_der())?;
    Ok(AppState(Arc::new(state::Inner {
        store,
        ocsp_issuer,
        ca: loaded.ca,
        root_der: loaded.root_der,
        catalog: settings.catalog.clone(),
        key_policy: settings.key_policy.clone(),
        recovery_key: loaded.recovery_key,
        attestation_roots: settings.attestation_roots.clone(),
        sealing: loaded.sealing,
        clock,
        crl_lifetime: settings.crl_lifetime,
        ocsp_validity: settings.ocsp_validity,
        ocsp_cache: Mutex::new(Default::default()),
        crl_cache: tokio::sync::Mutex::new(None),
        base_url: public_url.to_owned(),
        transport: settings.transport.clone(),
        agencies: settings.agencies.clone(),
        prices: settings.prices.clone(),
        deadlines: settings.deadlines.clone(),
        notifier: signet_ra::notify::Notifier::new(public_url, &settings.catalog, settings.deadlines.clone())
            .with_contact(settings.ra.clone())
            .with_templates(settings.mail_templates.clone()),
        contact: settings.ra.clone(),
        acme: settings.acme.clone(),
        hashing: hashing::PasswordWork::new(settings.limits.password_hashes, settings.limits.password_hash_wait),
        client_limiter: throttle::ClientLimiter::new(
            settings.limits.secret_attempts_per_minute,
            settings.limits.trusted_proxies.clone(),
        ),
        client_download: settings.client_download.clone(),
        unstored_pages: crate::web::UnstoredPages::default(),
        metrics: metrics::Metrics::new(&settings.catalog),
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
    /// The background jobs; [`jobs::Jobs::stop`] on shutdown hands their leases over.
    pub jobs: jobs::Jobs,
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
    let jobs = jobs::JobRunner::new(state.clone(), mail::Mailer::new(&settings.mail)?).start();
    let router = app(state.clone());
    let limits = settings.limits.clone();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let task = match (&settings.transport, plain) {
        (tls::Transport::Https(h), Some(plain)) => {
            let (first, renewer) = match &h.certificate {
                tls::CertificateSource::Files(certified) => (certified.clone(), None),
                tls::CertificateSource::SelfIssued(names) => {
                    let own = self_issued::SelfIssued::new(names.clone(), &settings.data_dir);
                    (own.current_or_new(&state).await?, Some(own))
                }
            };
            let slot = Arc::new(tls::CertSlot::new(first));
            let renewal = {
                let (state, slot) = (state.clone(), slot.clone());
                async move {
                    match renewer {
                        Some(own) => own.keep_renewed(state, slot).await,
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
