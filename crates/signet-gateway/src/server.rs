//! The gateway proper: accept TLS, decide once per connection who the client is (path,
//! revocation), then per request whether this path admits that certificate type and
//! account, and either proxy upstream with verified identity headers or render a denial.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use signet_clock::Clock;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::accounts::{AccountError, AccountStore};
use crate::canonical::{CanonicalPath, canonicalize};
use crate::chain::{self, PathError, ValidatedPath};
use crate::config::{FailMode, GatewayConfig};
use crate::denial::{Denial, wants_json};
use crate::fetch::Fetcher;
use crate::headers;
use crate::links::{CertRef, LinkError, LinkStore};
use crate::revocation::{RevocationChecker, RevocationStatus};
use crate::selfservice;

/// Response bodies: proxied streams or rendered pages.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// The identity headers the gateway sets; any copy a client sends is removed first (every
/// header starting `x-signet-` is, in fact).
pub const IDENTITY_HEADERS: [&str; 5] =
    ["x-signet-subject", "x-signet-issuer", "x-signet-serial", "x-signet-assurance", "x-signet-account"];

/// Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How many intermediates one connection may fetch by AIA.
const MAX_AIA_FETCHES: usize = 3;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The certificate or key was refused by rustls.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The accounts file is unreadable.
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// The link database could not be opened.
    #[error(transparent)]
    Links(#[from] LinkError),
}

/// A client that passed path validation and revocation checking.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The validated path.
    pub path: ValidatedPath,
    /// Where the revocation answer came from (`ocsp`, `ocsp-cache`, `crl`, `soft-fail`).
    pub revocation: &'static str,
}

/// A denial with what this client should be told.
#[derive(Debug, Clone)]
struct Refusal {
    denial: Denial,
    detail: String,
    facts: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(denial: Denial, detail: impl Into<String>) -> Self {
        Self { denial, detail: detail.into(), facts: Vec::new() }
    }

    fn about(mut self, path: &ValidatedPath) -> Self {
        self.facts.push(("subject", path.subject.clone()));
        self.facts.push(("issuer", path.issuer.clone()));
        self.facts.push(("serial", path.serial_hex.clone()));
        self
    }
}

struct Inner {
    config: GatewayConfig,
    clock: Arc<dyn Clock>,
    revocation: RevocationChecker,
    aia: Fetcher,
    aia_cache: Mutex<HashMap<String, Vec<u8>>>,
    accounts: AccountStore,
    links: LinkStore,
    form_key: aws_lc_rs::hmac::Key,
    upstream: Client<HttpConnector, Incoming>,
}

/// A running gateway (tests, `signet gateway run`).
#[derive(Debug)]
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The accept loop; abort it to stop.
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `config.listen` (port 0 picks one) and serves in the background.
pub async fn spawn(config: GatewayConfig, clock: Arc<dyn Clock>) -> Result<RunningGateway, StartError> {
    let tls = crate::tls::server_config(
        config.server_chain.clone(),
        config.server_key.clone_key(),
        config.anchors.subjects(),
    )?;
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
    let accounts = AccountStore::open(config.accounts.clone())?;
    let links = LinkStore::open(&config.database).await?;
    let form_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &links.form_secret().await?);
    // Links of certificates that expired while nobody used them go within the hour.
    let sweeper = links.clone();
    let sweep_clock = clock.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match sweeper.purge_expired(sweep_clock.now().unix_timestamp()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(links = n, "account links of expired certificates removed"),
                Err(e) => tracing::error!(error = %e, "purging expired account links failed"),
            }
        }
    });
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let upstream = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector);
    let inner = Arc::new(Inner {
        revocation: RevocationChecker::new(config.revocation.clone(), clock.clone()),
        aia: Fetcher::new(config.revocation.timeout),
        aia_cache: Mutex::new(HashMap::new()),
        accounts,
        links,
        form_key,
        upstream,
        clock,
        config,
    });
    tracing::info!(%addr, upstream = %inner.config.upstream, anchors = inner.config.anchors.len(), "signet gateway listening");
    let task = tokio::spawn(accept_loop(listener, acceptor, inner));
    Ok(RunningGateway { addr, task })
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, inner: Arc<Inner>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let inner = inner.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let certs: Arc<Vec<CertificateDer<'static>>> = Arc::new(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            );
            let decided: Arc<tokio::sync::OnceCell<Result<Arc<Identity>, Refusal>>> = Arc::default();
            let service = service_fn(move |req| {
                let inner = inner.clone();
                let certs = certs.clone();
                let decided = decided.clone();
                async move {
                    let who = decided.get_or_init(|| inner.decide(&certs, peer)).await.clone();
                    Ok::<_, Infallible>(inner.handle(req, who, peer).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A header value from text: printable ASCII kept, everything else (UTF-8 in names,
/// control characters) and `%` percent-encoded, so values are unambiguous.
pub fn header_text(s: &str) -> HeaderValue {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).expect("printable ASCII")
}

/// Removes hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

impl Inner {
    /// Path validation (fetching missing intermediates by AIA) and revocation, once per
    /// connection.
    async fn decide(&self, certs: &[CertificateDer<'static>], peer: SocketAddr) -> Result<Arc<Identity>, Refusal> {
        let result = self.decide_inner(certs).await;
        match &result {
            Ok(id) => tracing::info!(
                %peer, subject = %id.path.subject, serial = %id.path.serial_hex, revocation = id.revocation,
                "client certificate accepted"
            ),
            Err(r) => tracing::warn!(
                %peer, reason = r.denial.code(), detail = %r.detail,
                subject = r.facts.first().map(|f| f.1.as_str()).unwrap_or("-"), "client denied"
            ),
        }
        result.map(Arc::new)
    }

    async fn decide_inner(&self, certs: &[CertificateDer<'static>]) -> Result<Identity, Refusal> {
        let Some((leaf, sent)) = certs.split_first() else {
            return Err(Refusal::new(
                Denial::NoCertificate,
                "no client certificate was presented in the TLS handshake",
            ));
        };
        let mut pool: Vec<Vec<u8>> = sent.iter().map(|c| c.to_vec()).collect();
        let now = self.clock.now();
        let mut fetched = 0;
        let path = loop {
            match chain::validate(leaf, &pool, &self.config.anchors, now) {
                Ok(p) => break p,
                Err(PathError::MissingIssuer { ca_issuers: Some(url), .. })
                    if self.config.fetch_aia && fetched < MAX_AIA_FETCHES =>
                {
                    fetched += 1;
                    match self.fetch_issuer(&url).await {
                        Some(der) if !pool.contains(&der) => pool.push(der),
                        _ => {
                            return Err(Refusal::new(
                                Denial::Untrusted,
                                "the certificate does not chain to a trusted root (its issuer could not be found)",
                            ));
                        }
                    }
                }
                Err(e @ PathError::Expired { .. }) => {
                    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
                        let serial = hex::encode(cert.serial.to_bytes_be());
                        self.unlink(&chain::name_text(cert.issuer()), &serial, "expired").await;
                    }
                    return Err(Refusal::new(Denial::Expired, e.to_string()));
                }
                Err(e @ PathError::NotYetValid { .. }) => {
                    return Err(Refusal::new(Denial::Expired, e.to_string()));
                }
                Err(e) => {
                    return Err(Refusal::new(Denial::Untrusted, format!("certificate path rejected: {e}")));
                }
            }
        };
        let revocation = match self.revocation.check(&path).await {
            RevocationStatus::Good(source) => source,
            RevocationStatus::Revoked(detail) => {
                self.unlink(&path.issuer, &path.serial_hex, "revoked").await;
                return Err(Refusal::new(Denial::Revoked, format!("the certificate was {detail}")).about(&path));
            }
            RevocationStatus::Unavailable(why) => match self.config.revocation.mode {
                FailMode::Hard => {
                    tracing::warn!(serial = %path.serial_hex, %why, "revocation status unavailable (hard fail)");
                    return Err(Refusal::new(
                        Denial::RevocationUnavailable,
                        "neither the OCSP responder nor the CRL of your certificate's issuer answered",
                    )
                    .about(&path));
                }
                FailMode::Soft => {
                    tracing::warn!(serial = %path.serial_hex, %why, "revocation status unavailable; admitted (soft fail)");
                    "soft-fail"
                }
            },
        };
        Ok(Identity { path, revocation })
    }

    /// Removes the database links of a revoked or expired certificate.
    async fn unlink(&self, issuer: &str, serial_hex: &str, why: &str) {
        match self.links.remove_certificate(issuer, serial_hex, why, self.clock.now().unix_timestamp()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(serial = %serial_hex, links = n, %why, "account link removed"),
            Err(e) => tracing::error!(error = %e, serial = %serial_hex, "removing an account link failed"),
        }
    }

    fn cert_ref(id: &Identity) -> CertRef {
        CertRef {
            subject_dn: id.path.subject.clone(),
            issuer_dn: id.path.issuer.clone(),
            serial_hex: id.path.serial_hex.clone(),
            not_after: id.path.not_after.unix_timestamp(),
        }
    }

    /// The account linked to a certificate: the accounts file first, then the database.
    async fn account_of(&self, id: &Identity) -> Result<Option<String>, Refusal> {
        let unavailable = || Refusal::new(Denial::NotLinked, "the account directory is unavailable");
        match self.accounts.lookup(&id.path.subject, &id.path.issuer, &id.path.emails) {
            Ok(Some(a)) => return Ok(Some(a)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "accounts file unusable; denying");
                return Err(unavailable());
            }
        }
        self.links.linked(&Self::cert_ref(id), self.clock.now().unix_timestamp()).await.map_err(|e| {
            tracing::error!(error = %e, "link database unusable; denying");
            unavailable()
        })
    }

    /// `/.signet/…`: the gateway's own pages, for clients whose certificate passes the
    /// global policy.
    async fn self_service(
        &self,
        page: selfservice::Page,
        req: Request<Incoming>,
        path: &CanonicalPath,
        id: &Arc<Identity>,
    ) -> Result<Response<Body>, Refusal> {
        self.assurance(path, id)?;
        let account = self.account_of(id).await?;
        let method = req.method().clone();
        let form = if method == hyper::Method::POST {
            let limited = http_body_util::Limited::new(req.into_body(), selfservice::MAX_FORM);
            match limited.collect().await {
                Ok(b) => Some(selfservice::parse_form(&b.to_bytes())),
                Err(_) => {
                    let mut r = Response::new(full("The form is too large.\n"));
                    *r.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
                    return Ok(r);
                }
            }
        } else {
            None
        };
        let visit = selfservice::Visit {
            cert: Self::cert_ref(id),
            is_admin: account.as_ref().is_some_and(|a| self.config.admins.contains(a)),
            account,
            admins: &self.config.admins,
            now: self.clock.now(),
            form_key: &self.form_key,
        };
        let page = selfservice::serve(&self.links, page, &method, form, &visit).await;
        Ok(page.map(|b| b.map_err(|never| match never {}).boxed()))
    }

    async fn fetch_issuer(&self, url: &str) -> Option<Vec<u8>> {
        if let Some(der) = self.aia_cache.lock().expect("aia lock").get(url) {
            return Some(der.clone());
        }
        let body = match self.aia.get(url).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "AIA caIssuers fetch failed");
                return None;
            }
        };
        let der = if body.first() == Some(&0x30) {
            body.to_vec()
        } else {
            use rustls_pki_types::pem::PemObject;
            CertificateDer::pem_slice_iter(&body).next()?.ok()?.to_vec()
        };
        let mut cache = self.aia_cache.lock().expect("aia lock");
        if cache.len() < 1000 {
            cache.insert(url.to_owned(), der.clone());
        }
        Some(der)
    }

    async fn handle(
        &self,
        mut req: Request<Incoming>,
        who: Result<Arc<Identity>, Refusal>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let json = wants_json(req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()));
        let path = match canonicalize(req.uri().path()) {
            Ok(p) => p,
            Err(why) => {
                let raw = req.uri().path();
                let subject = who.as_ref().map_or("-", |id| id.path.subject.as_str());
                tracing::warn!(%peer, reason = why.code(), path = ?raw, %subject, "request path refused");
                return self.render(Denial::BadPath, json, &why.to_string(), &[("path", raw.to_owned())]);
            }
        };
        let subject = || who.as_ref().map_or("-".to_owned(), |id| id.path.subject.clone());
        match headers::screen(req.headers()) {
            Ok(reserved) => {
                if !reserved.is_empty() {
                    let names: Vec<&str> = reserved.iter().map(|n| n.as_str()).collect();
                    tracing::warn!(%peer, subject = %subject(), headers = ?names, "client sent headers the gateway sets; removed");
                }
                for name in reserved {
                    req.headers_mut().remove(name);
                }
            }
            Err(why) => {
                tracing::warn!(%peer, reason = "bad-headers", detail = %why, subject = %subject(), "request headers refused");
                return self.render(Denial::BadHeaders, json, &why.to_string(), &[]);
            }
        }
        if let Some(page) = selfservice::page_of(path.as_str()) {
            let served = match &who {
                Ok(id) => self.self_service(page, req, &path, id).await,
                Err(r) => Err(r.clone()),
            };
            return served.unwrap_or_else(|r| {
                let facts: Vec<(&str, String)> = r.facts.iter().map(|(k, v)| (*k, v.clone())).collect();
                self.render(r.denial, json, &r.detail, &facts)
            });
        }
        let result = match who {
            Ok(id) => self.admit(&path, &id).await,
            Err(r) => Err(r),
        };
        match result {
            Ok((id, level, account)) => self.proxy(req, &path, &id, &level, &account, peer).await,
            Err(r) => {
                let facts: Vec<(&str, String)> = r.facts.iter().map(|(k, v)| (*k, v.clone())).collect();
                self.render(r.denial, json, &r.detail, &facts)
            }
        }
    }

    fn render(&self, denial: Denial, json: bool, detail: &str, facts: &[(&str, String)]) -> Response<Body> {
        denial
            .render(json, detail, self.config.link_url.as_deref(), facts)
            .map(|b| b.map_err(|never| match never {}).boxed())
    }

    /// Per request: the path's policy requirement, then the account link.
    async fn admit(
        &self,
        path: &CanonicalPath,
        id: &Arc<Identity>,
    ) -> Result<(Arc<Identity>, String, String), Refusal> {
        let level = self.assurance(path, id)?;
        let Some(account) = self.account_of(id).await? else {
            let mut r = Refusal::new(
                Denial::NotLinked,
                format!(
                    "this certificate is not linked to an account; ask for a link at {}",
                    self.config.link_url.as_deref().unwrap_or(selfservice::LINK_PATH)
                ),
            )
            .about(&id.path);
            if let Ok(Some(request)) = self.links.latest_request(&Self::cert_ref(id)).await {
                r.facts.push(("link_request", selfservice::outcome(&request)));
            }
            tracing::warn!(reason = r.denial.code(), subject = %id.path.subject, issuer = %id.path.issuer, "client denied");
            return Err(r);
        };
        Ok((id.clone(), level, account))
    }

    /// The assurance level the certificate gives on this path, or the wrong-assurance denial.
    fn assurance(&self, path: &CanonicalPath, id: &Identity) -> Result<String, Refusal> {
        let required = self.config.required_for(path);
        let Some(matched) = required.matching(&id.path.policies) else {
            let catalog = signet_pki::profile::Catalog::default_eca();
            let yours: Vec<String> = id
                .path
                .policies
                .iter()
                .map(|o| crate::policy::level_of(&catalog, o).unwrap_or_else(|| o.clone()))
                .collect();
            let yours = if yours.is_empty() { "no accepted policy".to_owned() } else { yours.join(", ") };
            let r = Refusal::new(
                Denial::WrongAssurance,
                format!("{path} requires a {} certificate; yours is {yours}", required.levels().join(" or ")),
            )
            .about(&id.path);
            tracing::warn!(reason = r.denial.code(), detail = %r.detail, subject = %id.path.subject, "client denied");
            return Err(r);
        };
        Ok(matched.level.clone())
    }

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        path: &CanonicalPath,
        id: &Identity,
        level: &str,
        account: &str,
        peer: SocketAddr,
    ) -> Response<Body> {
        // Exactly the path the policy was decided on, and the client's query as sent.
        let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
        let authority = self.config.upstream.authority().expect("validated upstream has an authority");
        let Ok(uri) = format!("http://{authority}{path}{query}").parse::<hyper::Uri>() else {
            return bad_gateway();
        };
        *req.uri_mut() = uri;
        // The client's reserved headers (every spelling) went in `handle`.
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        let p = &id.path;
        for (name, value) in IDENTITY_HEADERS.iter().zip([&p.subject, &p.issuer, &p.serial_hex, level, account]) {
            headers.insert(*name, header_text(value));
        }
        headers.insert("x-forwarded-for", header_text(&peer.ip().to_string()));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        match self.upstream.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                tracing::error!(error = %e, "upstream request failed");
                bad_gateway()
            }
        }
    }
}

fn bad_gateway() -> Response<Body> {
    let mut r = Response::new(full("The application behind this gateway is not answering.\n"));
    *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_escapes_non_ascii_and_percent() {
        assert_eq!(header_text("CN=Ann, O=U.S. Government"), "CN=Ann, O=U.S. Government");
        assert_eq!(header_text("CN=Zoë 100%"), "CN=Zo%C3%AB 100%25");
        assert_eq!(header_text("a\r\nX-Signet-Account: admin"), "a%0D%0AX-Signet-Account: admin");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }
}
