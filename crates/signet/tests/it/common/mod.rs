//! Helpers for driving the `signet` binary with the independent tools around it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const SIGNET: &str = env!("CARGO_BIN_EXE_signet");
pub const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const MEDIUM: &str = "2.16.840.1.101.3.2.1.12.4";
pub const MEDIUM_TOKEN: &str = "2.16.840.1.101.3.2.1.12.5";

pub fn run(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(cmd)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} must be installed (scripts/test.sh installs it): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn must(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let (ok, out, err) = run(cmd, args, env);
    assert!(ok, "{cmd} {args:?} failed:\n{out}\n{err}");
    out
}

/// A `signet serve` child, killed on drop.
pub struct Server {
    pub child: Child,
    /// The base URL in certificates: the plain HTTP listener.
    pub base: String,
    /// The URL people and ACME clients open (`https://` when TLS is on).
    pub url: String,
    /// Everything the server logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(data, &[], env)
    }

    /// [`Server::start`] with more arguments to `serve` (`--log-format json`).
    pub fn start_with(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(SIGNET)
            .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let (base, url) = loop {
            let line = lines.next().unwrap_or_else(|| panic!("serve exited before listening:\n{seen}")).unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("signet listening on ") {
                let after = |marker: &str| {
                    let rest =
                        &line[line.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {line}")) + marker.len()..];
                    rest.split([',', ')', ' ']).next().unwrap().trim_end_matches('/').to_owned()
                };
                break (after("base URL "), after("; open "));
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe, and keep it for
        // tests that read the log.
        let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, base, url, log }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn csr(dir: &Path, name: &str, newkey: &str) -> PathBuf {
    let out = dir.join(format!("{name}.csr"));
    let key = dir.join(format!("{name}.key"));
    must(
        "openssl",
        &[
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=x",
            "-newkey",
            newkey,
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    out
}

pub fn der_to_pem(kind: &str, der: &Path, pem: &Path) {
    must("openssl", &[kind, "-inform", "DER", "-in", der.to_str().unwrap(), "-out", pem.to_str().unwrap()], &[]);
}

/// `openssl ocsp` asking the responder at `base` about `cert` (PEM), issued by `issuer` (PEM),
/// with the answer's signature checked up to `root` (PEM); what it prints.
pub fn ocsp_status(issuer: &Path, cert: &Path, base: &str, root: &Path) -> String {
    must(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-cert",
            cert.to_str().unwrap(),
            "-url",
            &format!("{base}/ocsp"),
            "-CAfile",
            root.to_str().unwrap(),
        ],
        &[],
    )
}

/// openssl verify against the CA in `data/ca` with a CRL file (DER).
pub fn verify(data: &Path, leaf: &Path, policy: &str, crl_der: &Path) -> (bool, String) {
    let ca = data.join("ca");
    der_to_pem("x509", &ca.join("root.crt"), &ca.join("root.pem"));
    der_to_pem("x509", &ca.join("issuing.crt"), &ca.join("issuing.pem"));
    let crl_pem = crl_der.with_extension("pem");
    der_to_pem("crl", crl_der, &crl_pem);
    let (ok, out, err) = run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.join("root.pem").to_str().unwrap(),
            "-untrusted",
            ca.join("issuing.pem").to_str().unwrap(),
            "-policy",
            policy,
            "-explicit_policy",
            "-crl_check",
            "-CRLfile",
            crl_pem.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ],
        &[],
    );
    (ok, out + &err)
}

pub fn issue_json(profile: &str, csr: &Path) -> String {
    let csr = std::fs::read_to_string(csr).unwrap().replace('\n', "\\n");
    format!(
        r#"{{"profile":"{profile}","validity_years":2,"subject":{{"kind":"person","common_name":"Jane Q. Doe","organization":"Acme","email":"jane@acme.example"}},"csr":"{csr}"}}"#
    )
}

/// An authenticated API call with curl: `body` is POSTed as JSON, or `None` makes a GET.
/// Returns the HTTP status, or `None` if no answer came back (the server died).
pub fn try_call(url: &str, token: &str, body: Option<&str>, out: &Path) -> Option<String> {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec!["-s", "--max-time", "10", "-o", out.to_str().unwrap(), "-w", "%{http_code}", "-H", &auth];
    if let Some(body) = body {
        args.extend(["-H", "content-type: application/json", "--data-binary", body]);
    }
    args.push(url);
    let (ok, code, _) = run("curl", &args, &[]);
    ok.then_some(code)
}

/// POSTs JSON with a token; returns the HTTP status.
pub fn post(url: &str, token: &str, body: &str, out: &Path) -> String {
    try_call(url, token, Some(body), out).unwrap_or_else(|| panic!("no answer from {url}"))
}

/// Pulls the PEM certificate out of the API's JSON answer without a JSON library: the only
/// PEM before "chain" is the certificate.
pub fn certificate_from(json_path: &Path, pem_out: &Path) {
    let text = std::fs::read_to_string(json_path).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("certificate in answer");
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start + "-----END CERTIFICATE-----".len();
    std::fs::write(pem_out, text[start..end].replace("\\n", "\n") + "\n").unwrap();
}
