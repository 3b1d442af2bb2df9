//! The `signet` binary end to end: `ca init` (file keys and a SoftHSM2 token), `serve`,
//! `admin api-key create`, `cert issue`/`revoke`, `crl`, `audit verify` — with OpenSSL,
//! curl, softhsm2-util and sqlite3 as the independent parties.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SIGNET: &str = env!("CARGO_BIN_EXE_signet");
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
const MEDIUM: &str = "2.16.840.1.101.3.2.1.12.4";
const MEDIUM_TOKEN: &str = "2.16.840.1.101.3.2.1.12.5";

fn run(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
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

fn must(cmd: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let (ok, out, err) = run(cmd, args, env);
    assert!(ok, "{cmd} {args:?} failed:\n{out}\n{err}");
    out
}

/// A `signet serve` child, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(SIGNET)
            .args(["serve", "--data-dir", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = String::new();
        let base = loop {
            let line = lines.next().unwrap_or_else(|| panic!("serve exited before listening:\n{seen}")).unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.strip_prefix("signet listening on ") {
                break format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn csr(dir: &Path, name: &str, newkey: &str) -> PathBuf {
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

fn der_to_pem(kind: &str, der: &Path, pem: &Path) {
    must("openssl", &[kind, "-inform", "DER", "-in", der.to_str().unwrap(), "-out", pem.to_str().unwrap()], &[]);
}

/// openssl verify against the CA in `data/ca` with a CRL file (DER).
fn verify(data: &Path, leaf: &Path, policy: &str, crl_der: &Path) -> (bool, String) {
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

fn issue_json(profile: &str, csr: &Path) -> String {
    let csr = std::fs::read_to_string(csr).unwrap().replace('\n', "\\n");
    format!(
        r#"{{"profile":"{profile}","validity_years":2,"subject":{{"kind":"person","common_name":"Jane Q. Doe","organization":"Acme","email":"jane@acme.example"}},"csr":"{csr}"}}"#
    )
}

fn post(url: &str, token: &str, body: &str, out: &Path) -> String {
    must(
        "curl",
        &[
            "-s",
            "-o",
            out.to_str().unwrap(),
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
            url,
        ],
        &[],
    )
}

/// Pulls the PEM certificate out of the API's JSON answer without a JSON library: the only
/// PEM before "chain" is the certificate.
fn certificate_from(json_path: &Path, pem_out: &Path) {
    let text = std::fs::read_to_string(json_path).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("certificate in answer");
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start + "-----END CERTIFICATE-----".len();
    std::fs::write(pem_out, text[start..end].replace("\\n", "\n") + "\n").unwrap();
}

#[test]
fn file_key_ca_issue_revoke_crl_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let pass = [("SIGNET_CA_PASSPHRASE", "correct horse battery staple")];

    let out =
        must(SIGNET, &["ca", "init", "--data-dir", d, "--key-type", "rsa-3072", "--vendor", "Acme CA Services"], &pass);
    assert!(out.contains("created root and issuing CA (rsa-3072)"), "{out}");
    let key_file = std::fs::read_to_string(data.join("ca/issuing.key.json")).unwrap();
    assert!(key_file.contains("argon2id") && !key_file.contains("PRIVATE KEY"), "keys are encrypted at rest");
    let (ok, _, err) = run(SIGNET, &["ca", "init", "--data-dir", d], &pass);
    assert!(!ok && err.contains("already exists"), "{err}");

    let request = csr(tmp.path(), "jane", "rsa:2048");
    let leaf = tmp.path().join("jane.pem");
    let args = [
        "cert",
        "issue",
        "--data-dir",
        d,
        "--profile",
        "medium-identity",
        "--csr",
        request.to_str().unwrap(),
        "--org",
        "Acme",
        "--cn",
        "Jane Q. Doe",
        "--email",
        "jane@acme.example",
        "--years",
        "3",
        "--out",
        leaf.to_str().unwrap(),
    ];
    let (ok, _, err) = run(SIGNET, &args, &[("SIGNET_CA_PASSPHRASE", "wrong")]);
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    let (ok, _, err) = run(SIGNET, &args, &pass);
    assert!(ok, "{err}");
    let serial = err.trim().rsplit(' ').next().unwrap().to_owned();
    let text = must("openssl", &["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()], &[]);
    assert!(text.contains("OU = Acme CA Services, OU = Acme, CN = Jane Q. Doe"), "{text}");

    let crl1 = tmp.path().join("crl1.der");
    must(SIGNET, &["crl", "--data-dir", d, "--out", crl1.to_str().unwrap()], &pass);
    let (ok, out) = verify(&data, &leaf, MEDIUM, &crl1);
    assert!(ok, "{out}");

    let out = must(SIGNET, &["cert", "revoke", "--data-dir", d, &serial, "--reason", "affiliation-changed"], &pass);
    assert!(out.contains("revoked (Now)"), "{out}");
    let crl2 = tmp.path().join("crl2.der");
    must(SIGNET, &["crl", "--data-dir", d, "--out", crl2.to_str().unwrap()], &pass);
    let (ok, out) = verify(&data, &leaf, MEDIUM, &crl2);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let crl_text = must("openssl", &["crl", "-inform", "DER", "-noout", "-text", "-in", crl2.to_str().unwrap()], &[]);
    assert!(
        crl_text.contains("Affiliation Changed") && crl_text.contains("X509v3 CRL Number: \n                2"),
        "{crl_text}"
    );

    let out = must(SIGNET, &["audit", "verify", "--data-dir", d], &[]);
    assert!(out.contains("audit log intact"), "{out}");
    let db = data.join("signet.db");
    must("sqlite3", &[db.to_str().unwrap(), "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"], &[]);
    let (ok, out, _) = run(SIGNET, &["audit", "verify", "--data-dir", d], &[]);
    assert!(!ok && out.contains("audit row 2 was altered"), "{out}");
}

#[test]
fn pkcs11_ca_serves_verifiable_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    let env = [("SOFTHSM2_CONF", conf.to_str().unwrap()), ("SIGNET_TEST_PIN", "4321")];
    must(
        "softhsm2-util",
        &["--init-token", "--free", "--label", "signet-ca", "--pin", "4321", "--so-pin", "8765"],
        &env,
    );

    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let out = must(
        SIGNET,
        &[
            "ca",
            "init",
            "--data-dir",
            d,
            "--key-type",
            "p-256",
            "--pkcs11-module",
            SOFTHSM,
            "--token-label",
            "signet-ca",
            "--pin-env",
            "SIGNET_TEST_PIN",
        ],
        &env,
    );
    assert!(out.contains("created root and issuing CA (p-256)"), "{out}");
    assert!(!data.join("ca/issuing.key.json").exists(), "no key file when the key is on the token");
    let objects = must(
        "pkcs11-tool",
        &["--module", SOFTHSM, "--token-label", "signet-ca", "--login", "--pin", "4321", "-O"],
        &env,
    );
    assert!(objects.contains("signet-issuing") && objects.contains("signet-root"), "{objects}");
    assert!(objects.contains("never extractable"), "CA keys must be non-extractable:\n{objects}");
    let (ok, _, err) = run(
        SIGNET,
        &["admin", "api-key", "create", "--data-dir", d, "--name", "ra"],
        &[env[0], ("SIGNET_TEST_PIN", "0000")],
    );
    assert!(!ok && err.to_lowercase().contains("pin"), "a wrong PIN is reported: {err}");
    let token = must(SIGNET, &["admin", "api-key", "create", "--data-dir", d, "--name", "ra"], &env).trim().to_owned();

    let server = Server::start(&data, &env);
    let params = tmp.path().join("p256.param");
    must("openssl", &["ecparam", "-name", "prime256v1", "-out", params.to_str().unwrap()], &[]);
    let request = csr(tmp.path(), "tok", &format!("ec:{}", params.display()));
    let answer = tmp.path().join("answer.json");
    let code = post(
        &format!("{}/api/v1/certificates", server.base),
        &token,
        &issue_json("medium-token-identity", &request),
        &answer,
    );
    assert_eq!(code, "201", "{}", std::fs::read_to_string(&answer).unwrap());
    let leaf = tmp.path().join("tok.pem");
    certificate_from(&answer, &leaf);
    let crl = tmp.path().join("served.crl");
    must("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", server.base)], &[]);
    let (ok, out) = verify(&data, &leaf, MEDIUM_TOKEN, &crl);
    assert!(ok, "{out}");
    let text = must("openssl", &["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()], &[]);
    assert!(text.contains("ecdsa-with-SHA256") && text.contains(&server.base), "{text}");
}

#[test]
fn serve_creates_a_dev_ca_once_and_enforces_the_key_blocklist() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();

    // A key the operator knows to be compromised: its SPKI hash goes on the blocklist.
    let bad = csr(tmp.path(), "leaked", "rsa:2048");
    let spki = tmp.path().join("leaked.spki");
    let pubkey = must("openssl", &["req", "-in", bad.to_str().unwrap(), "-pubkey", "-noout"], &[]);
    std::fs::write(tmp.path().join("leaked.pub"), pubkey).unwrap();
    must(
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-in",
            tmp.path().join("leaked.pub").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            spki.to_str().unwrap(),
        ],
        &[],
    );
    let digest = must("openssl", &["dgst", "-sha256", "-r", spki.to_str().unwrap()], &[]);
    let blocklist = tmp.path().join("blocklist.txt");
    std::fs::write(&blocklist, format!("# leaked in incident 42\n{}\n", digest.split_whitespace().next().unwrap()))
        .unwrap();
    let config = tmp.path().join("signet.toml");
    std::fs::write(&config, format!("data_dir = \"{d}\"\nkey_blocklist = \"{}\"\n", blocklist.display())).unwrap();
    let env = [("SIGNET_CONFIG", config.to_str().unwrap())];

    let issuing_before = {
        let server = Server::start(&data, &env);
        let health = must("curl", &["-sf", &format!("{}/healthz", server.base)], &[]);
        assert_eq!(health, "ok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("ca/passphrase")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the dev passphrase is private to its owner");
        }
        let fetched = tmp.path().join("issuing.crt");
        must("curl", &["-sf", "-o", fetched.to_str().unwrap(), &format!("{}/ca/issuing.crt", server.base)], &[]);
        let text =
            must("openssl", &["x509", "-inform", "DER", "-noout", "-subject", "-in", fetched.to_str().unwrap()], &[]);
        assert!(text.contains("Signet Dev ECA 1"), "{text}");

        let token = must(SIGNET, &["admin", "api-key", "create", "--name", "ra"], &env).trim().to_owned();
        let answer = tmp.path().join("answer.json");
        let code = post(
            &format!("{}/api/v1/certificates", server.base),
            &token,
            &issue_json("medium-identity", &bad),
            &answer,
        );
        let body = std::fs::read_to_string(&answer).unwrap();
        assert_eq!(code, "400", "{body}");
        assert!(body.contains("known to be compromised"), "{body}");
        std::fs::read(&fetched).unwrap()
    };
    let server = Server::start(&data, &env);
    let again = tmp.path().join("again.crt");
    must("curl", &["-sf", "-o", again.to_str().unwrap(), &format!("{}/ca/issuing.crt", server.base)], &[]);
    assert_eq!(std::fs::read(again).unwrap(), issuing_before, "a restart keeps the CA");
}
