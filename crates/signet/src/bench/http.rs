//! The load generator: keep-alive HTTP/1.1 connections (hyper) sending one kind of request
//! back to back, one connection per concurrent worker, every response checked as a client
//! would check it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Version};
use hyper_util::rt::TokioIo;
use signet_pki::ocsp::{CertId, encode_request};
use tokio::net::TcpStream;

use super::BoxError;
use super::acme::Finalize;
use super::figures::Measured;
use super::messages::ocsp_response_status;
use super::micros;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
// A bound on the bodies the client accepts, so a broken server cannot make it hoard memory.
const MAX_RESPONSE_BODY: usize = 1024 * 1024;

/// A request with its whole body at hand, as every benchmark sends.
pub(super) type HttpRequest = Request<Full<Bytes>>;

/// What one benchmark connection asks for.
pub(super) enum Target {
    /// The server's `GET /healthz`: the plain hello-world baseline.
    Healthz,
    /// `GET /ocsp/<base64>`, one prepared path per certificate; no nonce, so the server
    /// answers from its pre-signed cache.
    OcspGet(Vec<String>),
    /// `POST /ocsp` with a fresh nonce each time, so every answer is signed anew.
    OcspPost(Vec<CertId>),
    /// A portal page: its path, and the session cookie to send if any.
    Page(String, Option<String>),
    /// `POST /api/v1/certificates` with an operator's API key (`Bearer …`), each request the
    /// next of the prepared JSON bodies: the store certifies a key only once, so every body
    /// carries a CSR of its own.
    Issue { authorization: String, bodies: Vec<Bytes>, next: AtomicUsize },
    /// cfssl's `POST /api/v1/cfssl/sign`, one prepared body per connection: cfssl keeps no
    /// record of what it signed, so a CSR may come back.
    CfsslSign(Vec<Bytes>),
    /// ACME finalize, each request the next of the ready orders, signed over the nonce the
    /// connection holds.
    AcmeFinalize(Finalize, AtomicUsize),
}

impl Target {
    /// The next request; `nonce` is the ACME nonce the connection holds (see [`Target::signed`]).
    fn request(
        &self,
        index: usize,
        rng: &SystemRandom,
        nonce: Option<&str>,
    ) -> Result<(HttpRequest, Option<[u8; 16]>), String> {
        match self {
            Target::Healthz => Ok((get("/healthz", None)?, None)),
            Target::Page(path, cookie) => Ok((get(path, cookie.as_deref())?, None)),
            Target::OcspGet(paths) => Ok((get(&paths[index % paths.len()], None)?, None)),
            Target::OcspPost(ids) => {
                let mut nonce = [0u8; 16];
                rng.fill(&mut nonce).map_err(|_| "the random generator failed")?;
                let (body, _) = encode_request(&ids[index % ids.len()], Some(&nonce))
                    .map_err(|e| format!("encoding the OCSP request: {e}"))?;
                let request = Request::post("/ocsp")
                    .header(HOST, "bench")
                    .header(CONTENT_TYPE, "application/ocsp-request")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                Ok((request, Some(nonce)))
            }
            Target::Issue { authorization, bodies, next } => {
                let body = bodies
                    .get(next.fetch_add(1, Ordering::Relaxed))
                    .ok_or_else(|| format!("all {} prepared CSRs are used up", bodies.len()))?;
                Ok((post_json("/api/v1/certificates", Some(authorization), body.clone())?, None))
            }
            Target::CfsslSign(bodies) => {
                Ok((post_json("/api/v1/cfssl/sign", None, bodies[index % bodies.len()].clone())?, None))
            }
            Target::AcmeFinalize(finalize, next) => {
                let nonce = nonce.ok_or("no ACME nonce to sign with")?;
                let (path, body) = finalize.request(next.fetch_add(1, Ordering::Relaxed), nonce)?;
                let request = Request::post(path)
                    .header(HOST, "bench")
                    .header(CONTENT_TYPE, "application/jose+json")
                    .body(Full::new(body))
                    .map_err(|e| e.to_string())?;
                Ok((request, None))
            }
        }
    }

    /// Whether each request is a JWS over a nonce from the server (ACME), which the
    /// connection takes from the last answer or, holding none, from `new-nonce`.
    fn signed(&self) -> bool {
        matches!(self, Target::AcmeFinalize(..))
    }

    fn variants(&self) -> usize {
        match self {
            Target::Healthz | Target::Page(..) | Target::Issue { .. } | Target::AcmeFinalize(..) => 1,
            Target::OcspGet(paths) => paths.len(),
            Target::CfsslSign(bodies) => bodies.len(),
            Target::OcspPost(ids) => ids.len(),
        }
    }

    /// Checks what a client would: status, type, a successful OCSPResponse with the nonce
    /// echoed, an issued certificate.
    fn check(&self, resp: &HttpResponse, nonce: Option<&[u8]>) -> Result<(), String> {
        let expected = if matches!(self, Target::Issue { .. }) { 201 } else { 200 };
        if resp.status != expected {
            // A JSON error body says why (a problem document, cfssl's errors).
            let json = resp.content_type.as_deref().is_some_and(|t| t.contains("json"));
            let why = if json {
                String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into_owned()
            } else {
                String::new()
            };
            return Err(format!("HTTP status {} {why}", resp.status).trim_end().to_owned());
        }
        match self {
            Target::Healthz => {
                return if resp.body == b"ok"[..] { Ok(()) } else { Err("unexpected /healthz body".into()) };
            }
            Target::Page(..) => {
                let html = resp.content_type.as_deref().is_some_and(|t| t.starts_with("text/html"));
                return if html && resp.body.windows(6).any(|w| w == b"_csrf\"") {
                    Ok(())
                } else {
                    Err("not the application form".into())
                };
            }
            Target::AcmeFinalize(..) => {
                let order: serde_json::Value =
                    serde_json::from_slice(&resp.body).map_err(|e| format!("the answer is not JSON: {e}"))?;
                return if order["status"] == "valid" && order["certificate"].is_string() {
                    Ok(())
                } else {
                    Err(format!("the order is not valid: {order}"))
                };
            }
            Target::Issue { .. } | Target::CfsslSign(_) => {
                let answer: serde_json::Value =
                    serde_json::from_slice(&resp.body).map_err(|e| format!("the answer is not JSON: {e}"))?;
                let certificate = if let Target::CfsslSign(_) = self {
                    if answer["success"] != true {
                        return Err(format!("cfssl did not sign: {}", answer["errors"]));
                    }
                    &answer["result"]["certificate"]
                } else {
                    &answer["certificate"]
                };
                return if certificate.as_str().is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")) {
                    Ok(())
                } else {
                    Err("the answer holds no PEM certificate".into())
                };
            }
            Target::OcspGet(_) | Target::OcspPost(_) => {}
        }
        if resp.content_type.as_deref() != Some("application/ocsp-response") {
            return Err(format!("content-type {:?}", resp.content_type));
        }
        match ocsp_response_status(&resp.body) {
            Some(0) => {}
            Some(s) => return Err(format!("OCSP responseStatus {s} (not successful)")),
            None => return Err("the body is not an OCSPResponse".into()),
        }
        if let Some(n) = nonce
            && !resp.body.windows(n.len()).any(|w| w == n)
        {
            return Err("the nonce is not echoed".into());
        }
        Ok(())
    }
}

/// `GET path` with the cookie, if given.
pub(super) fn get(path: &str, cookie: Option<&str>) -> Result<HttpRequest, String> {
    let mut request = Request::builder().method(Method::GET).uri(path).header(HOST, "bench");
    if let Some(cookie) = cookie {
        request = request.header(hyper::header::COOKIE, cookie);
    }
    request.body(Full::default()).map_err(|e| e.to_string())
}

/// `POST path` with a JSON body, and an `Authorization` header if given.
fn post_json(path: &str, authorization: Option<&str>, body: Bytes) -> Result<HttpRequest, String> {
    let mut request = Request::post(path).header(HOST, "bench").header(CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    request.body(Full::new(body)).map_err(|e| e.to_string())
}

/// The parts of a response the checks need.
#[derive(Debug)]
pub(super) struct HttpResponse {
    pub(super) status: u16,
    pub(super) content_type: Option<String>,
    pub(super) set_cookie: Option<String>,
    /// An ACME server's next nonce.
    pub(super) replay_nonce: Option<String>,
    pub(super) body: Bytes,
    /// The server will close the connection after this response.
    pub(super) close: bool,
}

/// One keep-alive HTTP/1.1 connection to the server under test.
pub(super) struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub(super) async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        // Requests are single small writes; Nagle would only add delay.
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, connection) =
            http1::Builder::new().handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        // Reads and writes happen in the connection's task; it ends when `sender` is dropped.
        // A connection error also fails the request in flight, which is where it is counted.
        tokio::spawn(async move { connection.await.ok() });
        Ok(Self { sender })
    }

    /// Sends one request and reads its whole response, within [`REQUEST_TIMEOUT`].
    pub(super) async fn exchange(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        let exchange = async {
            let response = self.sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let close = response.version() == Version::HTTP_10
                || response.headers().get(CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let (status, content_type, set_cookie, replay_nonce) = (
                response.status().as_u16(),
                header(CONTENT_TYPE),
                header(hyper::header::SET_COOKIE),
                header(hyper::header::HeaderName::from_static("replay-nonce")),
            );
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| format!("read: {e}"))?
                .to_bytes();
            Ok(HttpResponse { status, content_type, set_cookie, replay_nonce, body, close })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no response within {REQUEST_TIMEOUT:?}"))?
    }
}

/// A nonce for `target`'s next request: the one held, or one from `new-nonce`; `None` for
/// targets that sign nothing.
async fn nonce_for(target: &Target, c: &mut Connection, held: Option<String>) -> Result<Option<String>, String> {
    if !target.signed() || held.is_some() {
        return Ok(held);
    }
    let request =
        Request::head("/acme/new-nonce").header(HOST, "bench").body(Full::default()).map_err(|e| e.to_string())?;
    let resp = c.exchange(request).await?;
    resp.replay_nonce.map(Some).ok_or_else(|| format!("new-nonce answered {} without a nonce", resp.status))
}

/// One keep-alive connection sending requests back to back until `deadline`.
async fn drive_connection(addr: SocketAddr, target: Arc<Target>, index: usize, deadline: Instant) -> Measured {
    let rng = SystemRandom::new();
    let mut m = Measured::default();
    let mut connection: Option<Connection> = None;
    let mut nonce = None;
    let mut connect_failures = 0;
    let fail = |m: &mut Measured, e: String| {
        m.errors += 1;
        m.first_error.get_or_insert(e);
    };
    while Instant::now() < deadline {
        let c = match &mut connection {
            Some(c) => c,
            None => match Connection::open(addr).await {
                Ok(c) => connection.insert(c),
                Err(e) => {
                    fail(&mut m, e);
                    connect_failures += 1;
                    // A server that refuses connections will not come back within a run.
                    if connect_failures >= 10 {
                        break;
                    }
                    continue;
                }
            },
        };
        let acme_nonce = match nonce_for(&target, c, nonce.take()).await {
            Ok(n) => n,
            Err(e) => {
                fail(&mut m, e);
                connection = None;
                continue;
            }
        };
        let (request, ocsp_nonce) = match target.request(index, &rng, acme_nonce.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                fail(&mut m, e);
                break;
            }
        };
        let t = Instant::now();
        match c.exchange(request).await {
            Ok(resp) => {
                let latency = micros(t.elapsed());
                nonce = resp.replay_nonce.clone();
                match target.check(&resp, ocsp_nonce.as_ref().map(|n| n.as_slice())) {
                    Ok(()) => {
                        m.ops += 1;
                        m.latencies_us.push(latency);
                    }
                    Err(e) => fail(&mut m, e),
                }
                if resp.close {
                    connection = None;
                }
            }
            Err(e) => {
                fail(&mut m, e);
                connection = None;
            }
        }
    }
    m
}

/// Loads `target` from `connections` connections for `duration`, spread round-robin over the
/// servers at `addrs` (nodes of one service).
pub(super) async fn http_load(
    addrs: &[SocketAddr],
    target: Arc<Target>,
    connections: u64,
    duration: Duration,
) -> Result<Measured, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..usize::try_from(connections)? {
        set.spawn(drive_connection(addrs[i % addrs.len()], target.clone(), i, deadline));
    }
    let mut total = Measured::default();
    while let Some(done) = set.join_next().await {
        let m = done?;
        total.ops += m.ops;
        total.errors += m.errors;
        total.latencies_us.extend(m.latencies_us);
        if total.first_error.is_none() {
            total.first_error = m.first_error;
        }
    }
    total.elapsed = start.elapsed();
    if total.ops == 0 {
        return Err(format!("no successful responses; first error: {}", total.first_error.unwrap_or_default()).into());
    }
    Ok(total)
}

/// One request per variant of `target`, checked, before any timing: fails fast with a clear
/// error if the endpoint is broken, and fills the server's OCSP cache.
pub(super) async fn probe(addr: SocketAddr, target: &Target, what: &str) -> Result<(), BoxError> {
    let rng = SystemRandom::new();
    let mut connection = Connection::open(addr).await?;
    for i in 0..target.variants() {
        let acme_nonce = nonce_for(target, &mut connection, None).await.map_err(|e| format!("{what}: {e}"))?;
        let (request, nonce) = target.request(i, &rng, acme_nonce.as_deref())?;
        let (resp, nonce) = match connection.exchange(request).await {
            Ok(resp) => (resp, nonce),
            // The server may close a keep-alive connection before it reads the next request
            // (hyper then cancels it); only a second failure on a fresh connection is the
            // endpoint's fault.
            Err(_) => {
                connection = Connection::open(addr).await?;
                let acme_nonce = nonce_for(target, &mut connection, None).await.map_err(|e| format!("{what}: {e}"))?;
                let (request, nonce) = target.request(i, &rng, acme_nonce.as_deref())?;
                (connection.exchange(request).await.map_err(|e| format!("{what}: {e}"))?, nonce)
            }
        };
        target.check(&resp, nonce.as_ref().map(|n| n.as_slice())).map_err(|e| format!("{what}: {e}"))?;
        if resp.close {
            connection = Connection::open(addr).await?;
        }
    }
    Ok(())
}
