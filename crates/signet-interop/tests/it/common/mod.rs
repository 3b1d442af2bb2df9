//! A running CA on a port, and the independent tools that check what it produces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use signet_authority::ServerConfig;
use signet_ra::FakeClock;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_server::Running;
use signet_store::ApiKey;
use signet_testkit::TestDb;
use time::OffsetDateTime;

static REQUESTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The current ECA policy OIDs.
pub const MEDIUM: &str = "2.16.840.1.101.3.2.1.12.4";
pub const MEDIUM_TOKEN: &str = "2.16.840.1.101.3.2.1.12.5";
pub const MEDIUM_HARDWARE: &str = "2.16.840.1.101.3.2.1.12.10";
pub const DEVICE: &str = "2.16.840.1.101.3.2.1.12.9";

pub struct Ca {
    pub running: Running,
    pub settings: signet_authority::Settings,
    pub dir: tempfile::TempDir,
    pub token: String,
    pub clock: Arc<FakeClock>,
    _db: TestDb,
}

pub struct Issued {
    pub status: u16,
    pub body: Value,
    pub leaf: PathBuf,
}

/// Runs a command, returning (success, stdout + stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/test.sh installs it): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn pem(tag: &str, der: &[u8]) -> String {
    // openssl does the encoding, so the PEM is independent of our encoder.
    let mut child = std::process::Command::new("openssl")
        .args(if tag == "X509 CRL" { ["crl", "-inform", "DER"] } else { ["x509", "-inform", "DER"] })
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(der).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl could not read our {tag}");
    String::from_utf8(out.stdout).unwrap()
}

impl Ca {
    /// A CA on 127.0.0.1:<free port> with a fresh database of `backend`, a dev CA and an
    /// operator API key. The clock starts at the real time, so OpenSSL accepts validity.
    pub async fn start(backend: &str) -> Self {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data")),
            database_url: Some(db.url.clone()),
            ..Default::default()
        }
        .into_settings()
        .unwrap();
        let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
        let running = signet_server::spawn(&settings, clock.clone()).await.unwrap();
        let token = "sgt_test_token_0123456789abcdef".to_owned();
        let event = AuditEvent::new(OffsetDateTime::now_utc(), "test", AuditAction::ApiKeyCreated, "ra", json!({}));
        running
            .state
            .store()
            .create_api_key(
                &ApiKey { name: "ra".into(), role: "ra-operator".into() },
                &signet_server::token_hash(&token),
                &event,
            )
            .await
            .unwrap();
        let ca = Self { running, settings, dir, token, clock, _db: db };
        std::fs::write(ca.path("root.pem"), pem("CERTIFICATE", ca.running.state.certificates.root.as_slice())).unwrap();
        std::fs::write(ca.path("issuing.pem"), pem("CERTIFICATE", ca.running.state.certificates.issuing.as_slice()))
            .unwrap();
        ca
    }

    /// Another node serving the same CA from the same database and data folder.
    pub async fn another_node(&self) -> Running {
        signet_server::spawn(&self.settings, self.clock.clone()).await.unwrap()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    /// `openssl req` with a new key: `rsa:<bits>` or `ec:<curve name>`; returns the CSR path.
    pub fn csr(&self, name: &str, newkey: &str) -> PathBuf {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let newkey = match newkey.strip_prefix("ec:") {
            Some(curve) => {
                let params = self.path(&format!("{name}.ecparam"));
                let (ok, out) = run("openssl", &["ecparam", "-name", curve, "-out", params.to_str().unwrap()]);
                assert!(ok, "{out}");
                format!("ec:{}", params.display())
            }
            None => newkey.to_owned(),
        };
        let (ok, out) = run(
            "openssl",
            &[
                "req",
                "-new",
                "-nodes",
                "-subj",
                "/CN=ignored by the CA",
                "-newkey",
                &newkey,
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                csr.to_str().unwrap(),
            ],
        );
        assert!(ok, "openssl req: {out}");
        csr
    }

    /// POSTs JSON with curl; returns (HTTP status, parsed body).
    pub fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        self.post_to(&self.running.base_url, path, body, token)
    }

    /// POSTs JSON to the node at `base`.
    pub fn post_to(&self, base: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let unique = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body_file = self.path(&format!("request-{unique}.json"));
        std::fs::write(&body_file, body.to_string()).unwrap();
        let out_file = self.path(&format!("response-{unique}.json"));
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut args = vec![
            "-s",
            "-o",
            out_file.to_str().unwrap(),
            "-w",
            "%{http_code} %{content_type}",
            "-H",
            "content-type: application/json",
            "--data-binary",
        ];
        let at = format!("@{}", body_file.display());
        args.push(&at);
        if let Some(a) = &auth {
            args.extend(["-H", a]);
        }
        let url = format!("{base}{path}");
        args.push(&url);
        let (ok, meta) = run("curl", &args);
        assert!(ok, "curl failed: {meta}");
        let (code, ctype) = meta.split_once(' ').unwrap_or((&meta, ""));
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let code: u16 = code.trim().parse().unwrap();
        if code >= 400 {
            assert_eq!(ctype, "application/problem+json", "errors are problem+json: {value}");
        }
        (code, value)
    }

    /// Issues through the RA API; writes the certificate to `<name>.pem` on success.
    pub fn issue(&self, name: &str, profile: &str, subject: Value, csr: &Path) -> Issued {
        self.issue_at(&self.running.base_url, name, profile, subject, csr)
    }

    /// Issues through the RA API of the node at `base`.
    pub fn issue_at(&self, base: &str, name: &str, profile: &str, subject: Value, csr: &Path) -> Issued {
        let body = json!({
            "profile": profile,
            "validity_years": 1,
            "subject": subject,
            "csr": std::fs::read_to_string(csr).unwrap(),
        });
        let (status, body) = self.post_to(base, "/api/v1/certificates", &body, Some(&self.token));
        let leaf = self.path(&format!("{name}.pem"));
        if status == 201 {
            std::fs::write(&leaf, body["certificate"].as_str().unwrap()).unwrap();
        }
        Issued { status, body, leaf }
    }

    /// Downloads the CRL from its distribution point; returns the PEM path.
    pub fn fetch_crl(&self) -> PathBuf {
        let der = self.path("crl.der");
        let (ok, out) = run("curl", &["-sf", "-o", der.to_str().unwrap(), &self.url("/crl/issuing.crl")]);
        assert!(ok, "CRL download: {out}");
        let crl = self.path("crl.pem");
        let (ok, out) =
            run("openssl", &["crl", "-inform", "DER", "-in", der.to_str().unwrap(), "-out", crl.to_str().unwrap()]);
        assert!(ok, "openssl crl: {out}");
        crl
    }

    /// `openssl verify` with explicit policy and CRL checking.
    pub fn verify(&self, leaf: &Path, policy: &str) -> (bool, String) {
        let crl = self.fetch_crl();
        run(
            "openssl",
            &[
                "verify",
                "-CAfile",
                self.path("root.pem").to_str().unwrap(),
                "-untrusted",
                self.path("issuing.pem").to_str().unwrap(),
                "-policy",
                policy,
                "-explicit_policy",
                "-crl_check",
                "-CRLfile",
                crl.to_str().unwrap(),
                leaf.to_str().unwrap(),
            ],
        )
    }

    /// `openssl ocsp` against the running responder (POST, with a nonce unless told not to).
    pub fn ocsp(&self, leaf: &Path, extra: &[&str]) -> String {
        self.ocsp_at(&self.running.base_url, leaf, extra)
    }

    /// `openssl ocsp` against the responder of the node at `base`.
    pub fn ocsp_at(&self, base: &str, leaf: &Path, extra: &[&str]) -> String {
        let mut args: Vec<String> = vec![
            "ocsp".into(),
            "-issuer".into(),
            self.path("issuing.pem").to_str().unwrap().to_owned(),
            "-cert".into(),
            leaf.to_str().unwrap().to_owned(),
            "-url".into(),
            format!("{base}/ocsp"),
            "-CAfile".into(),
            self.path("root.pem").to_str().unwrap().to_owned(),
            "-resp_text".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run("openssl", &refs).1
    }
}

/// pkilint with no finding at WARNING or above; returns its report on failure.
pub fn pkilint(tool: &str, extra: &[&str], files: &[&Path]) {
    let mut args = vec!["lint", "-s", "WARNING"];
    args.extend(extra);
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.extend(names);
    let (ok, out) = run(tool, &args);
    assert!(ok && out.trim().is_empty(), "{tool} {files:?} found problems:\n{out}");
}

pub fn person(name: &str, email: &str) -> Value {
    json!({ "kind": "person", "common_name": name, "organization": "Acme Widgets", "email": email })
}

pub fn device(host: &str) -> Value {
    json!({ "kind": "device", "organization": "Acme Widgets", "dns_names": [host] })
}
