//! A small TLS load generator for `signet gateway bench`: full handshakes per second (a new
//! connection, no session resumption, one request each) and requests per second over
//! keep-alive connections, presenting a client certificate. Bounded by a duration, and
//! meant for loopback targets only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Counts from one run.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    /// Requests answered 200.
    pub ok: u64,
    /// Connections or requests that failed (or answered otherwise).
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl BenchResult {
    /// Successful operations per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// A client with a certificate, for one target.
#[derive(Clone)]
pub struct LoadClient {
    connector: TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
}

impl std::fmt::Debug for LoadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadClient").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl LoadClient {
    /// Trusts `root_der` for the server, presents `chain` + `key`, never resumes sessions.
    pub fn new(
        addr: SocketAddr,
        server_name: &str,
        root_der: &[u8],
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(root_der.to_vec())).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| e.to_string())?;
        cfg.resumption = rustls::client::Resumption::disabled();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        Ok(Self { connector: TlsConnector::from(Arc::new(cfg)), addr, name })
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let tls = self.connector.connect(self.name.clone(), tcp).await.map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// One GET; Ok when the answer is 200 and its body was read.
    pub async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> Result<(), String> {
        sender.ready().await.map_err(|e| e.to_string())?;
        let req = Request::get(path).header("host", "localhost").body(Empty::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        resp.into_body().collect().await.map_err(|e| e.to_string())?;
        if status == 200 { Ok(()) } else { Err(format!("HTTP {status}")) }
    }

    /// One fresh connection (full handshake) and one request, as often as possible.
    pub async fn handshakes(&self, duration: Duration, concurrency: usize) -> BenchResult {
        self.run(duration, concurrency, false).await
    }

    /// Requests over persistent connections.
    pub async fn requests(&self, duration: Duration, concurrency: usize) -> BenchResult {
        self.run(duration, concurrency, true).await
    }

    async fn run(&self, duration: Duration, concurrency: usize, keep_alive: bool) -> BenchResult {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let me = self.clone();
            let (ok, failed) = (ok.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
                while Instant::now() < deadline {
                    if conn.is_none() {
                        match me.connect().await {
                            Ok(c) => conn = Some(c),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                continue;
                            }
                        }
                    }
                    let sender = conn.as_mut().expect("connected");
                    match Self::get(sender, "/").await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => {
                            conn = None;
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    if !keep_alive {
                        conn = None;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        BenchResult { ok: ok.load(Ordering::Relaxed), failed: failed.load(Ordering::Relaxed), elapsed: start.elapsed() }
    }
}
