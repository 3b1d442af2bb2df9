//! End-to-end: a real Signet CA (`signet_server::spawn`, serving OCSP and the CRL), client
//! keys and CSRs from the `openssl` CLI, an upstream echo server, the gateway, and `curl` /
//! `openssl s_client` as the clients. No mocks.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use signet_authority::ServerConfig;
use signet_clock::{Clock, FakeClock, SystemClock};
use signet_gateway::accounts::{AccountLink, link};
use signet_gateway::{GatewayConfigFile, RunningGateway};
use signet_pki::issue::CertificateOrder;
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, DnsName, Email, OrganizationName, Subject};
use signet_pki::{RevocationReason, Serial};
use signet_server::Running;
use time::{Duration, OffsetDateTime};

/// A Signet CA in a temporary folder.
struct Ca {
    running: Running,
    dir: tempfile::TempDir,
}

impl Ca {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerConfig {
            data_dir: Some(dir.path().to_owned()),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        }
        .into_settings()
        .unwrap();
        let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await.unwrap();
        Self { running, dir }
    }

    fn pem(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
    }

    /// Writes the root to `root.pem` and returns its path.
    fn root_file(&self) -> PathBuf {
        let p = self.dir.path().join("root.pem");
        std::fs::write(&p, Self::pem(self.running.state.certificates.root.as_slice())).unwrap();
        p
    }

    /// Issues a certificate for a fresh P-256 key; writes `<name>.pem` (leaf + issuing CA)
    /// and `<name>.key`. Returns (cert path, key path, serial).
    async fn issue(&self, name: &str, profile: &str, subject: Subject) -> (PathBuf, PathBuf, Serial) {
        let key = self.dir.path().join(format!("{name}.key"));
        let csr = self.dir.path().join(format!("{name}.csr"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj"])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let order = CertificateOrder { profile: profile.into(), subject, validity_years: 1 };
        let cert = self
            .running
            .state
            .issue("test", &order, &std::fs::read(&csr).unwrap())
            .await
            .unwrap_or_else(|e| panic!("issue {name}: {e}"));
        let path = self.dir.path().join(format!("{name}.pem"));
        let chain =
            format!("{}{}", Self::pem(&cert.der), Self::pem(self.running.state.certificates.issuing.as_slice()));
        std::fs::write(&path, chain).unwrap();
        (path, key, cert.serial)
    }

    async fn person(&self, name: &str, profile: &str, email: &str) -> (PathBuf, PathBuf, Serial) {
        let subject = Subject::Person {
            common_name: CommonName::new(name).unwrap(),
            organization: OrganizationName::new("Acme Widgets").unwrap(),
            email: Email::new(email).unwrap(),
        };
        self.issue(&name.replace(' ', "_"), profile, subject).await
    }
}

/// Upstream that answers 200 with the request's headers as JSON.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let mut headers = serde_json::Map::new();
                    for (k, v) in req.headers() {
                        let list = headers.entry(k.as_str()).or_insert_with(|| serde_json::json!([]));
                        list.as_array_mut().unwrap().push(v.to_str().unwrap_or("?").into());
                    }
                    let body = serde_json::json!({ "path": req.uri().to_string(), "headers": headers });
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(body.to_string()))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    addr
}

/// Writes a gateway configuration into `dir` and starts the gateway.
async fn gateway(dir: &Path, toml_extra: &str, upstream: SocketAddr, clock: Arc<dyn Clock>) -> RunningGateway {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\nserver_cert = \"gw.pem\"\nserver_key = \"gw.key\"\n\
         trust_anchors = [\"anchors.pem\"]\naccounts = \"accounts.toml\"\nlink_url = \"https://app.example/link\"\n\
         required_policies = [\"medium\", \"medium-token\", \"medium-hardware\"]\n{toml_extra}\n"
    );
    gateway_from(dir, &text, clock).await
}

/// Starts a gateway from a whole configuration text.
async fn gateway_from(dir: &Path, text: &str, clock: Arc<dyn Clock>) -> RunningGateway {
    let path = dir.join(format!("gateway-{}.toml", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    let cfg = GatewayConfigFile::from_file(&path).unwrap().validate(dir, &Catalog::default_eca()).unwrap();
    signet_gateway::spawn(cfg, clock).await.unwrap()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The values the upstream saw for a header.
    fn upstream_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// curl against the gateway; `cert` is (chain, key).
async fn curl(gw: SocketAddr, root: &Path, cert: Option<(&Path, &Path)>, path: &str, extra: &[&str]) -> Reply {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code} %{content_type}"])
        .arg("--cacert")
        .arg(root)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", gw.port())]);
    if let Some((c, k)) = cert {
        cmd.arg("--cert").arg(c).arg("--key").arg(k);
    }
    cmd.args(extra).arg(format!("https://localhost:{}{path}", gw.port()));
    let out = cmd.output().await.expect("curl runs");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (status, content_type) = tail.split_once(' ').unwrap();
    Reply { status: status.parse().unwrap(), content_type: content_type.to_owned(), body: body.to_owned() }
}

struct World {
    ca: Ca,
    root: PathBuf,
    upstream: SocketAddr,
}

/// A CA, the gateway's own TLS certificate, anchors and the upstream.
async fn world() -> World {
    let ca = Ca::start().await;
    let root = ca.root_file();
    std::fs::copy(&root, ca.dir.path().join("anchors.pem")).unwrap();
    let device = Subject::Device {
        organization: OrganizationName::new("Acme Widgets").unwrap(),
        dns_names: vec![DnsName::new("localhost").unwrap()],
    };
    let (c, k, _) = ca.issue("gw", "device-tls", device).await;
    assert!(c.ends_with("gw.pem") && k.ends_with("gw.key"));
    let upstream = echo_upstream().await;
    World { ca, root, upstream }
}

const POLICY: &str = "[[route]]\nprefix = \"/token\"\nrequired_policies = [\"medium-token\", \"medium-hardware\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_admits_only_the_right_certificates() {
    let w = world().await;
    let dir = w.ca.dir.path();
    let accounts = dir.join("accounts.toml");
    let (token_c, token_k, _) = w.ca.person("Ann Token", "medium-token-identity", "ann@acme.test").await;
    let (soft_c, soft_k, _) = w.ca.person("Sam Soft", "medium-identity", "sam@acme.test").await;
    let (new_c, new_k, _) = w.ca.person("Nell New", "medium-token-identity", "nell@acme.test").await;
    let (rev_c, rev_k, rev_serial) = w.ca.person("Rex Revoked", "medium-token-identity", "rex@acme.test").await;
    link(
        &accounts,
        AccountLink {
            account: "ann".into(),
            subject_dn: Some("C=US, O=U.S. Government, OU=ECA, OU=Signet Dev, OU=Acme Widgets, CN=Ann Token".into()),
            issuer_dn: Some(
                x509_parser::parse_x509_certificate(w.ca.running.state.certificates.issuing.as_slice())
                    .unwrap()
                    .1
                    .subject()
                    .to_string(),
            ),
            email: None,
        },
    )
    .unwrap();
    for (account, email) in [("sam", "sam@acme.test"), ("rex", "rex@acme.test")] {
        link(
            &accounts,
            AccountLink { account: account.into(), subject_dn: None, issuer_dn: None, email: Some(email.into()) },
        )
        .unwrap();
    }
    let revocation = "[revocation]\ncache_max_seconds = 1\nocsp_nonce = true\n";
    let gw = gateway(dir, &format!("{revocation}{POLICY}"), w.upstream, Arc::new(SystemClock)).await.addr;
    let root = w.root.as_path();
    let token = Some((token_c.as_path(), token_k.as_path()));
    let soft = Some((soft_c.as_path(), soft_k.as_path()));

    // Medium Token passes, with verified identity upstream.
    let r = curl(gw, root, token, "/token/records?x=1", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/token/records?x=1");
    assert_eq!(r.upstream_header("x-signet-account"), ["ann"]);
    assert_eq!(r.upstream_header("x-signet-assurance"), ["medium-token"]);
    assert!(r.upstream_header("x-signet-subject")[0].ends_with("CN=Ann Token"), "{:?}", r.body);
    assert!(r.upstream_header("x-signet-issuer")[0].contains("Signet Dev ECA 1"));
    assert_eq!(r.upstream_header("x-forwarded-proto"), ["https"]);

    // Header injection: the client's copies never reach the application.
    let r = curl(
        gw,
        root,
        token,
        "/token/x",
        &["-H", "X-Signet-Account: admin", "-H", "X-Signet-Assurance: medium-hardware", "-H", "x-signet-extra: 1"],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-signet-account"), ["ann"]);
    assert_eq!(r.upstream_header("x-signet-assurance"), ["medium-token"]);
    assert!(r.upstream_header("x-signet-extra").is_empty());

    // Medium (software) passes where Medium is accepted, is refused where only token or
    // hardware is: a readable page, or problem+json for API clients.
    let r = curl(gw, root, soft, "/app", &[]).await;
    assert_eq!((r.status, r.upstream_header("x-signet-assurance")), (200, vec!["medium".to_owned()]));
    let r = curl(gw, root, soft, "/token/records", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.content_type.starts_with("text/html"));
    assert!(
        r.body.contains("Wrong certificate type") && r.body.contains("medium-token or medium-hardware"),
        "{}",
        r.body
    );
    let r = curl(gw, root, soft, "/token/records", &["-H", "Accept: application/json"]).await;
    assert_eq!((r.status, r.content_type.as_str()), (403, "application/problem+json"));
    assert_eq!(r.json()["reason"], "wrong-assurance");

    // No certificate: a page, not a TLS alert.
    let r = curl(gw, root, None, "/app", &[]).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("No certificate was presented"), "{}", r.body);

    // Valid but not linked: the link page.
    let r = curl(gw, root, Some((&new_c, &new_k)), "/app", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("not linked") && r.body.contains("https://app.example/link"), "{}", r.body);
    assert!(r.body.contains("CN=Nell New"));

    // Wrong CA: another Signet dev CA, same names, different keys.
    let other = Ca::start().await;
    let (bad_c, bad_k, _) = other.person("Ann Token", "medium-token-identity", "ann@acme.test").await;
    let r = curl(gw, root, Some((&bad_c, &bad_k)), "/app", &["-H", "Accept: application/json"]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "untrusted", "{}", r.body);

    // Revoked: admitted before, refused right after (OCSP answers are reused for at most
    // a second here).
    let rev = Some((rev_c.as_path(), rev_k.as_path()));
    assert_eq!(curl(gw, root, rev, "/app", &[]).await.status, 200);
    w.ca.running
        .state
        .authority
        .revoke(signet_authority::RevokeRequest {
            actor: "test".to_owned(),
            serial: rev_serial.clone(),
            reason: RevocationReason::KeyCompromise,
            notices: Vec::new(),
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = curl(gw, root, rev, "/app", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Certificate revoked"), "{}", r.body);
    // When and why, in words: "revoked on 4 December 2026 at 15:36 UTC (reason: key compromise)".
    let today = OffsetDateTime::now_utc();
    let on = format!("revoked on {} {} {} at ", today.day(), today.month(), today.year());
    assert!(r.body.contains(&on) && r.body.contains("UTC (reason: key compromise)"), "{}", r.body);
    // A CRL-only gateway sees it too.
    let crl_only =
        gateway(dir, &format!("[revocation]\nocsp = false\n{POLICY}"), w.upstream, Arc::new(SystemClock)).await.addr;
    let r = curl(crl_only, root, rev, "/app", &["-H", "Accept: application/json"]).await;
    assert_eq!(r.json()["reason"], "revoked", "{}", r.body);
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(&on) && detail.ends_with("UTC (reason: key compromise)"), "{detail}");
    assert_eq!(curl(crl_only, root, token, "/app", &[]).await.status, 200);

    // Expired: a gateway whose clock is past the certificates' notAfter.
    let later = Arc::new(FakeClock::at(OffsetDateTime::now_utc() + Duration::days(400)));
    let expired_gw = gateway(dir, POLICY, w.upstream, later).await.addr;
    let r = curl(expired_gw, root, token, "/app", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Certificate expired"), "{}", r.body);

    // openssl s_client over TLS 1.3 and 1.2.
    for version in ["-tls1_3", "-tls1_2"] {
        let out = s_client(gw, root, &token_c, &token_k, version).await;
        assert!(out.contains("HTTP/1.1 200 OK"), "{version}: {out}");
        assert!(out.contains("\"x-signet-account\":[\"ann\"]"), "{version}: {out}");
    }
}

async fn s_client(gw: SocketAddr, root: &Path, cert: &Path, key: &Path, version: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-ign_eof", version, "-servername", "localhost", "-verify_return_error"])
        .arg("-connect")
        .arg(gw.to_string())
        .arg("-CAfile")
        .arg(root)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"GET /token/s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    drop(stdin);
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_revocation_fails_hard_by_default_and_soft_when_configured() {
    let w = world().await;
    let dir = w.ca.dir.path();
    let (c, k, _) = w.ca.person("Ann Token", "medium-token-identity", "ann@acme.test").await;
    link(
        &dir.join("accounts.toml"),
        AccountLink { account: "ann".into(), subject_dn: None, issuer_dn: None, email: Some("ann@acme.test".into()) },
    )
    .unwrap();
    // The CA (its OCSP responder and CRL) goes away.
    w.ca.running.task.abort();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let extra = "[revocation]\ntimeout_ms = 500\n";
    let hard = gateway(dir, &format!("{extra}{POLICY}"), w.upstream, Arc::new(SystemClock)).await.addr;
    let r = curl(hard, &w.root, Some((&c, &k)), "/app", &["-H", "Accept: application/json"]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "revocation-unavailable", "{}", r.body);
    let soft = gateway(dir, &format!("{extra}mode = \"soft\"\n{POLICY}"), w.upstream, Arc::new(SystemClock)).await.addr;
    let r = curl(soft, &w.root, Some((&c, &k)), "/app", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-signet-account"), ["ann"]);
}

/// A TLS client that sends the request head exactly as written (curl and hyper would fix
/// some spellings), presenting a client certificate; one request per connection.
struct RawClient {
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
}

struct RawReply {
    status: u16,
    body: String,
}

impl RawReply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl RawClient {
    fn new(gw: SocketAddr, root: &Path, cert: &Path, key: &Path) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(root).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let chain: Vec<_> = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        Self { connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)), addr: gw }
    }

    /// `GET <target>` with the given extra header lines (each ending in `\r\n`).
    async fn get(&self, target: &str, headers: &str) -> RawReply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Bounded, so a gateway that stops answering fails the test instead of stalling the run.
        let connect = async {
            let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            self.connector.connect(name, tcp).await.unwrap()
        };
        let mut tls =
            tokio::time::timeout(std::time::Duration::from_secs(20), connect).await.expect("TLS handshake within 20 s");
        let head = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n{headers}\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(20), tls.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        RawReply { status, body: body.to_owned() }
    }
}

/// Ann (Medium Token, account `ann`) and Sam (Medium, account `sam`), linked by email.
async fn token_and_soft(w: &World) -> ((PathBuf, PathBuf), (PathBuf, PathBuf)) {
    let dir = w.ca.dir.path();
    let (tc, tk, _) = w.ca.person("Ann Token", "medium-token-identity", "ann@acme.test").await;
    let (sc, sk, _) = w.ca.person("Sam Soft", "medium-identity", "sam@acme.test").await;
    for (account, email) in [("ann", "ann@acme.test"), ("sam", "sam@acme.test")] {
        link(
            &dir.join("accounts.toml"),
            AccountLink { account: account.into(), subject_dn: None, issuer_dn: None, email: Some(email.into()) },
        )
        .unwrap();
    }
    ((tc, tk), (sc, sk))
}

/// `/records` needs a token or hardware certificate, ignoring case (the application behind
/// serves `/Records` too); `/exact` needs one too, matched case-sensitively.
const RECORDS: &str = "[[route]]\nprefix = \"/records\"\nrequired_policies = [\"medium-token\", \"medium-hardware\"]\n\
                       case_insensitive = true\n\
                       [[route]]\nprefix = \"/exact\"\nrequired_policies = [\"medium-token\", \"medium-hardware\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_path_lets_a_medium_certificate_through() {
    let w = world().await;
    let ((tc, tk), (sc, sk)) = token_and_soft(&w).await;
    let gw = gateway(w.ca.dir.path(), RECORDS, w.upstream, Arc::new(SystemClock)).await.addr;
    let token = RawClient::new(gw, &w.root, &tc, &tk);
    let soft = RawClient::new(gw, &w.root, &sc, &sk);

    // The canonical request: the token passes, Medium is refused.
    assert_eq!(token.get("/records/secret.txt", "").await.json()["path"], "/records/secret.txt");
    assert_eq!(soft.get("/records/secret.txt", "").await.status, 403);

    // (spelling, what the upstream receives when the token certificate asks, or None if refused)
    let cases: [(&str, Option<&str>); 14] = [
        ("//records/secret.txt", Some("/records/secret.txt")),
        ("/%72ecords/secret.txt", Some("/records/secret.txt")),
        ("/x/../records/secret.txt", Some("/records/secret.txt")),
        ("/./records/secret.txt", Some("/records/secret.txt")),
        ("/%2e/records/%2E%2e/records/secret.txt", Some("/records/secret.txt")),
        ("/records/secret.txt?q=1", Some("/records/secret.txt?q=1")),
        ("/Records", Some("/Records")),
        ("/RECORDS/1", Some("/RECORDS/1")),
        ("/records%2fsecret.txt", None),
        ("/records%5Csecret.txt", None),
        ("/records\\secret.txt", None),
        ("/records;x", None),
        ("/records%00", None),
        ("/%2572ecords/secret.txt", None),
    ];
    for (spelling, forwarded) in cases {
        let r = soft.get(spelling, "").await;
        match forwarded {
            Some(_) => {
                assert_eq!(r.status, 403, "{spelling}: {}", r.body);
                assert_eq!(r.json()["reason"], "wrong-assurance", "{spelling}");
            }
            None => {
                assert_eq!(r.status, 400, "{spelling}: {}", r.body);
                assert_eq!(r.json()["reason"], "bad-path", "{spelling}");
            }
        }
        let r = token.get(spelling, "").await;
        match forwarded {
            Some(path) => {
                assert_eq!(r.status, 200, "{spelling}: {}", r.body);
                assert_eq!(r.json()["path"], path, "{spelling}");
            }
            None => assert_eq!(r.status, 400, "{spelling}: {}", r.body),
        }
    }

    // A case-sensitive route: `/EXACT` is another resource for the application, forwarded
    // as spelled and judged by the global policy; that is what `case_insensitive` is for.
    let r = soft.get("/EXACT/x", "").await;
    assert_eq!((r.status, r.json()["path"].as_str()), (200, Some("/EXACT/x")));
    assert_eq!(soft.get("/exact/x", "").await.status, 403);
    assert_eq!(soft.get("/%65xact/x", "").await.status, 403);

    // The refusal page for people.
    let r = curl(gw, &w.root, Some((&sc, &sk)), "/records%2fx", &["--path-as-is"]).await;
    assert_eq!(r.status, 400);
    assert!(r.content_type.starts_with("text/html") && r.body.contains("Request address refused"), "{}", r.body);
    assert!(r.body.contains("encoded / or \\"), "{}", r.body);
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A spelling of `path` that a normalizing server would read as the same resource (up to
/// ASCII case): characters percent-encoded with either hex case, case flipped, slashes
/// doubled, `/./`, `/x/../` and their encoded forms inserted.
fn variant(rng: &mut Rng, path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c == '/' {
            out.push('/');
            while rng.chance(15) {
                out.push_str(rng.pick(&["/", "./", "%2e/", "%2E/", "x/../", "x/%2e%2e/", "a/b/../../", "X/.%2E/"]));
            }
            continue;
        }
        let c = if rng.chance(20) && c.is_ascii_alphabetic() { c.to_ascii_uppercase() } else { c };
        if rng.chance(30) {
            let hex = format!("%{:02X}", c as u32);
            out.push_str(&if rng.chance(50) { hex.to_ascii_lowercase() } else { hex });
        } else {
            out.push(c);
        }
    }
    if rng.chance(5) {
        out.push_str(rng.pick(&["%2f", ";v=1", "%00", "%3B", "\\x", "%255c"]));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_spellings_are_refused_or_decided_like_their_canonical_path() {
    let w = world().await;
    let ((tc, tk), (sc, sk)) = token_and_soft(&w).await;
    let gw = gateway(w.ca.dir.path(), RECORDS, w.upstream, Arc::new(SystemClock)).await.addr;
    let token = RawClient::new(gw, &w.root, &tc, &tk);
    let soft = RawClient::new(gw, &w.root, &sc, &sk);
    let mut rng = Rng(0x5157_4E45_5447_5721);
    let mut forwarded = 0;
    for _ in 0..120 {
        let v = variant(&mut rng, "/records/secret.txt");
        let s = soft.get(&v, "").await;
        assert!(matches!(s.status, 400 | 403), "Medium reached the application with {v:?}: {}", s.body);
        let t = token.get(&v, "").await;
        match t.status {
            200 => {
                let seen = t.json()["path"].as_str().unwrap().to_owned();
                assert!(seen.eq_ignore_ascii_case("/records/secret.txt"), "{v:?} arrived as {seen:?}");
                assert_eq!(s.status, 403, "{v:?}");
                forwarded += 1;
            }
            400 => assert_eq!(s.status, 400, "{v:?}"),
            other => panic!("{v:?}: {other} {}", t.body),
        }
    }
    assert!(forwarded > 60, "the generator should mostly produce acceptable spellings ({forwarded})");
}

const WSGI_APP: &str = r#"
import json
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

def app(environ, start_response):
    seen = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
    body = json.dumps({"path": environ["PATH_INFO"], "environ": seen}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// A WSGI application (Python's wsgiref) on loopback, answering with its `HTTP_*` environ;
/// killed when the child is dropped.
async fn wsgi_upstream() -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", WSGI_APP])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = lines.next_line().await.unwrap().expect("wsgi port").trim().parse().unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wsgi_application_sees_only_the_gateways_identity_headers() {
    let w = world().await;
    let ((tc, tk), _) = token_and_soft(&w).await;
    let (_wsgi, upstream) = wsgi_upstream().await;
    let gw = gateway(w.ca.dir.path(), RECORDS, upstream, Arc::new(SystemClock)).await.addr;
    let token = RawClient::new(gw, &w.root, &tc, &tk);

    // Every spelling of the identity and forwarding headers is dropped; the application
    // sees the gateway's value alone (without the gateway it would see "admin,ann").
    let spoofed = "X_Signet_Account: admin\r\nx-SIGNET-assurance: medium-hardware\r\nX_Signet_Serial: 01\r\n\
                   X_Forwarded_For: 10.9.9.9\r\nx_forwarded_proto: http\r\nX-Forwarded-Host: evil.example\r\n\
                   Forwarded: for=10.9.9.9\r\nX_Real_IP: 10.9.9.9\r\nX-Original-URL: /records/secret.txt\r\n\
                   Accept-Language: en\r\nAccept-Language: fr\r\n";
    let r = token.get("/app", spoofed).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let env = &r.json()["environ"];
    assert_eq!(env["HTTP_X_SIGNET_ACCOUNT"], "ann", "{env}");
    assert_eq!(env["HTTP_X_SIGNET_ASSURANCE"], "medium-token");
    assert_ne!(env["HTTP_X_SIGNET_SERIAL"], "01");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "https");
    for gone in ["HTTP_X_FORWARDED_HOST", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_ORIGINAL_URL"] {
        assert!(env.get(gone).is_none(), "{gone} reached the application: {env}");
    }
    // A list header may repeat.
    assert_eq!(env["HTTP_ACCEPT_LANGUAGE"], "en,fr");
    assert_eq!(r.json()["path"], "/app");

    // Repeats the application would join, and one header under two spellings: refused.
    for twice in [
        "X-Signet-Account: admin\r\nX_Signet_Account: root\r\n",
        "X-Signet-Account: admin\r\nx-signet-account: root\r\n",
        "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n",
        "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
        "Cookie: a=1\r\nCookie: a=2\r\n",
        "My-Role: user\r\nMy_Role: admin\r\n",
    ] {
        let r = token.get("/app", twice).await;
        assert_eq!(r.status, 400, "{twice:?}: {}", r.body);
        assert_eq!(r.json()["reason"], "bad-headers", "{twice:?}");
    }
    assert_eq!(token.get("/app", "Host: evil.example\r\n").await.status, 400);
}

/// The value of the hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_holder_asks_for_a_link_an_administrator_approves_and_revocation_ends_it() {
    let w = world().await;
    let dir = w.ca.dir.path();
    let (ops_c, ops_k, _) = w.ca.person("Otto Ops", "medium-token-identity", "ops@acme.test").await;
    let (nell_c, nell_k, nell_serial) = w.ca.person("Nell New", "medium-token-identity", "nell@acme.test").await;
    let (sam_c, sam_k, _) = w.ca.person("Sam Soft", "medium-identity", "sam@acme.test").await;
    // The administrator's own link comes from the accounts file (the import path).
    link(
        &dir.join("accounts.toml"),
        AccountLink { account: "ops".into(), subject_dn: None, issuer_dn: None, email: Some("ops@acme.test".into()) },
    )
    .unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://{}\"\nserver_cert = \"gw.pem\"\nserver_key = \"gw.key\"\n\
         trust_anchors = [\"anchors.pem\"]\nrequired_policies = [\"medium\", \"medium-token\", \"medium-hardware\"]\n\
         admins = [\"ops\"]\n[revocation]\ncache_max_seconds = 1\n",
        w.upstream
    );
    let gw = gateway_from(dir, &text, Arc::new(SystemClock)).await.addr;
    let root = w.root.as_path();
    let ops = Some((ops_c.as_path(), ops_k.as_path()));
    let nell = Some((nell_c.as_path(), nell_k.as_path()));
    let sam = Some((sam_c.as_path(), sam_k.as_path()));

    // Not linked: the denial points at the gateway's own link page.
    let r = curl(gw, root, nell, "/app", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("/.signet/link"), "{}", r.body);

    // The request: a form with a token bound to this certificate.
    let page = curl(gw, root, nell, "/.signet/link", &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("CN=Nell New"));
    let token = hidden(&page.body, "csrf");
    let forged = curl(gw, root, nell, "/.signet/link", &["--data", "csrf=00&account=nell"]).await;
    assert_eq!(forged.status, 403);
    let sams_token = hidden(&curl(gw, root, sam, "/.signet/link", &[]).await.body, "csrf");
    let stolen = curl(gw, root, nell, "/.signet/link", &["--data", &format!("csrf={sams_token}&account=nell")]).await;
    assert_eq!(stolen.status, 403, "a token is only good for the certificate it was made for");
    let bad = curl(gw, root, nell, "/.signet/link", &["--data", &format!("csrf={token}&account=%3Cb%3E")]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("An account name is"), "{}", bad.body);
    let asked = curl(
        gw,
        root,
        nell,
        "/.signet/link",
        &[
            "--data-urlencode",
            &format!("csrf={token}"),
            "--data-urlencode",
            "account=nell",
            "--data-urlencode",
            "note=<script>alert(1)</script> new analyst",
        ],
    )
    .await;
    assert_eq!(asked.status, 303, "{}", asked.body);
    let page = curl(gw, root, nell, "/.signet/link", &[]).await;
    assert!(page.body.contains("is waiting for approval"), "{}", page.body);
    assert!(!page.body.contains("name=\"csrf\""), "one pending request at a time");

    // Only administrators decide.
    let r = curl(gw, root, nell, "/.signet/admin", &[]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Administrators only"));
    let admin = curl(gw, root, ops, "/.signet/admin", &[]).await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    assert!(admin.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; new analyst"), "{}", admin.body);
    assert!(!admin.body.contains("<script>"));
    let (id, token) = (hidden(&admin.body, "id"), hidden(&admin.body, "csrf"));
    let nells_try =
        curl(gw, root, nell, "/.signet/admin", &["--data", &format!("csrf={token}&id={id}&decision=approve")]).await;
    assert_eq!(nells_try.status, 403);
    let decided =
        curl(gw, root, ops, "/.signet/admin", &["--data", &format!("csrf={token}&id={id}&decision=approve")]).await;
    assert_eq!(decided.status, 303, "{}", decided.body);

    // Access, with the linked account, and the outcome on the link page.
    let r = curl(gw, root, nell, "/app", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.upstream_header("x-signet-account"), ["nell"]);
    assert!(curl(gw, root, nell, "/.signet/link", &[]).await.body.contains("linked to account <strong>nell</strong>"));

    // A refusal is shown to the requester on the next visit.
    let token = hidden(&curl(gw, root, sam, "/.signet/link", &[]).await.body, "csrf");
    assert_eq!(
        curl(gw, root, sam, "/.signet/link", &["--data", &format!("csrf={token}&account=ops")]).await.status,
        303
    );
    let admin = curl(gw, root, ops, "/.signet/admin", &[]).await;
    assert!(admin.body.contains("This request is for an administrator's account"), "{}", admin.body);
    let (id, token) = (hidden(&admin.body, "id"), hidden(&admin.body, "csrf"));
    curl(gw, root, ops, "/.signet/admin", &["--data", &format!("csrf={token}&id={id}&decision=refuse")]).await;
    let r = curl(gw, root, sam, "/app", &["-H", "Accept: application/json"]).await;
    assert_eq!(r.status, 403);
    assert!(r.json()["link_request"].as_str().unwrap().contains("was refused by ops on"), "{}", r.body);
    assert!(curl(gw, root, sam, "/.signet/link", &[]).await.body.contains("was refused by ops"));

    // Revocation: refused, and the link is gone (audited).
    w.ca.running
        .state
        .authority
        .revoke(signet_authority::RevokeRequest {
            actor: "test".to_owned(),
            serial: nell_serial.clone(),
            reason: RevocationReason::KeyCompromise,
            notices: Vec::new(),
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = curl(gw, root, nell, "/app", &["-H", "Accept: application/json"]).await;
    assert_eq!((r.status, r.json()["reason"].as_str()), (403, Some("revoked")));
    let store = signet_gateway::links::LinkStore::open(&format!("sqlite://{}", dir.join("gateway-links.db").display()))
        .await
        .unwrap();
    let log = store.audit_log(20).await.unwrap();
    let actions: Vec<(&str, &str, &str)> =
        log.iter().map(|e| (e.action.as_str(), e.account.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("unlinked-revoked", "nell", "gateway"),
            ("refused", "ops", "ops"),
            ("requested", "ops", "C=US, O=U.S. Government, OU=ECA, OU=Signet Dev, OU=Acme Widgets, CN=Sam Soft"),
            ("approved", "nell", "ops"),
            ("requested", "nell", "C=US, O=U.S. Government, OU=ECA, OU=Signet Dev, OU=Acme Widgets, CN=Nell New"),
        ]
    );
    let admin = curl(gw, root, ops, "/.signet/admin", &[]).await;
    assert!(admin.body.contains("unlinked-revoked"), "{}", admin.body);
}
