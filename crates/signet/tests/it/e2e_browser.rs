//! The enrollment portal in a real browser: a real `signet serve` (SQLite) mailing through a
//! real SMTP server (Python's `aiosmtpd`), two operators made with `signet admin operator
//! create`, and `e2e/enrollment.spec.mjs` driving Debian's headless Chromium through
//! playwright-core from the partner link to "token shipped", then through a password reset and
//! the Certificate Management Center's soft-token set-up. Screenshots of every page go to
//! `<target>/screenshots/e2e/` for CI to keep.
//!
//! Node, Chromium, playwright-core (`npm ci --prefix e2e`), aiosmtpd and oathtool are
//! required: scripts/test.sh installs them, and a missing one fails this test rather than
//! skipping it, so CI cannot pass without the browser having run.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The whole walk takes a few minutes (it waits out TOTP steps); a hung browser must not hold CI for 90.
const NODE_TIMEOUT: Duration = Duration::from_secs(420);
/// The applicant's account password the browser types (passed to the script).
const APPLICANT_PASSWORD: &str = "Harbor-Quartz-Meadow-62";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `<target>/screenshots/e2e`, beside the binary under test (so `CARGO_TARGET_DIR` is honoured).
fn screenshot_dir() -> PathBuf {
    Path::new(SIGNET).parent().and_then(Path::parent).expect("target/<profile>/signet").join("screenshots/e2e")
}

fn chromium() -> String {
    std::env::var("SIGNET_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// What `cmd args` printed, or `None` if it is not installed or failed.
fn output_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails (never skips) with the fix when a tool the walk needs is missing.
fn check_prerequisites(e2e: &Path) {
    let hint = "scripts/test.sh installs it";
    let node = output_of("node", &["--version"]).unwrap_or_default();
    let major: u32 = node.trim().trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    assert!(major >= 20, "Node.js 20 or later is required ({hint}); found {node:?}");
    assert!(
        output_of(&chromium(), &["--version"]).is_some(),
        "Chromium is required at {} (apt-get install chromium; {hint})",
        chromium()
    );
    assert!(
        e2e.join("node_modules/playwright-core/package.json").is_file(),
        "playwright-core is not installed: run `npm ci --prefix e2e` ({hint})"
    );
    assert!(output_of("python3", &["-c", "import aiosmtpd"]).is_some(), "python3 -m pip install aiosmtpd ({hint})");
    assert!(output_of("oathtool", &["--version"]).is_some(), "oathtool is required ({hint})");
}

/// A child process killed when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `aiosmtpd` on 127.0.0.1, keeping every message it accepts in the Maildir `maildir`.
fn smtp_sink(maildir: &Path) -> (Reaped, u16) {
    // Python's Maildir makes its subfolders only when the folder itself is new.
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m aiosmtpd");
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start on port {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, port)
}

struct OperatorLogin {
    id: &'static str,
    password: &'static str,
    secret: String,
}

/// Creates an operator with the CLI and reads the TOTP secret it prints once.
fn create_operator(config: &Path, id: &'static str, name: &str, role: &str, password: &'static str) -> OperatorLogin {
    let args = [
        "admin",
        "operator",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--id",
        id,
        "--name",
        name,
        "--role",
        role,
    ];
    let out = must(SIGNET, &args, &[("SIGNET_OPERATOR_PASSWORD", password)]);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no TOTP secret printed:\n{out}"))
        .to_owned();
    OperatorLogin { id, password, secret }
}

/// Runs the node script to the end (or the timeout); returns success and everything it printed.
fn run_node(e2e: &Path, env: &[(&str, String)], log_dir: &Path) -> (bool, String) {
    let stdout = log_dir.join("node.out");
    let stderr = log_dir.join("node.err");
    let mut child = Command::new("node")
        .arg("enrollment.spec.mjs")
        .current_dir(e2e)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node");
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut printed = std::fs::read_to_string(&stdout).unwrap_or_default();
    printed.push_str(&std::fs::read_to_string(&stderr).unwrap_or_default());
    match status {
        Some(s) => (s.success(), printed),
        None => (false, format!("{printed}\nnode was killed after {NODE_TIMEOUT:?}")),
    }
}

#[test]
fn enrollment_from_partner_link_to_revoked_certificates_in_chromium() {
    let e2e = repo_root().join("e2e");
    check_prerequisites(&e2e);

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let maildir = tmp.path().join("maildir");
    std::fs::create_dir_all(&data).unwrap();
    let (_smtp, smtp_port) = smtp_sink(&maildir);
    let config = tmp.path().join("signet.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\n[mail]\nsmtp = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"Signet RA <ra@signet.test>\"\n",
            data.display()
        ),
    )
    .unwrap();

    let operators = [
        create_operator(&config, "alice", "Alice Adams", "ra-operator", "Lantern-Fjord-Cobalt-73"),
        create_operator(&config, "bob", "Bob Brown", "ra-administrator", "Thistle-Beacon-Orbit-58"),
    ];
    let operators_json = serde_json::to_string(
        &operators
            .iter()
            .map(|o| serde_json::json!({ "id": o.id, "password": o.password, "secret": o.secret }))
            .collect::<Vec<_>>(),
    )
    .unwrap();

    // The RA provisions the token it will ship, onto a SoftHSM2 token of its own.
    let tokens = tmp.path().join("softhsm");
    let softhsm_conf = signet_testkit::softhsm_conf(&tokens);
    let provisioned = must(
        SIGNET,
        &["admin", "token", "provision", "--module", SOFTHSM],
        &[("SIGNET_CONFIG", config.to_str().unwrap()), ("SOFTHSM2_CONF", softhsm_conf.to_str().unwrap())],
    );
    let token_serial = provisioned.strip_prefix("Token ").and_then(|r| r.split_whitespace().next()).unwrap().to_owned();

    // Debug logging: the walk below checks that no secret typed or issued reaches the log.
    let server = Server::start(&data, &[("SIGNET_CONFIG", config.to_str().unwrap()), ("RUST_LOG", "debug")]);
    let shots = screenshot_dir();
    // Old screenshots would mix with this run's in the artifacts.
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let env = [
        ("SIGNET_BASE_URL", server.base.clone()),
        ("SIGNET_MAILDIR", maildir.display().to_string()),
        ("SIGNET_SCREENSHOTS", shots.display().to_string()),
        ("SIGNET_OPERATORS", operators_json),
        ("SIGNET_CHROMIUM", chromium()),
        ("SIGNET_APPLICANT_PASSWORD", APPLICANT_PASSWORD.to_owned()),
        ("SIGNET_TOKEN_SERIAL", token_serial.clone()),
        ("SIGNET_BIN", SIGNET.to_owned()),
        ("SIGNET_PKCS11_MODULE", SOFTHSM.to_owned()),
        ("SOFTHSM2_CONF", softhsm_conf.display().to_string()),
    ];
    let (ok, printed) = run_node(&e2e, &env, tmp.path());
    let log = server.log.lock().unwrap().clone();
    assert!(ok, "the browser walk failed:\n{printed}\n--- server log (last 60 lines) ---\n{}", tail(&log, 60));
    println!("{printed}");

    // What the browser did, read back from the database: one application, its certificates
    // retrieved onto the token the RA shipped, with every step in the audit chain under the
    // person who took it.
    let db = data.join("signet.db");
    let sql = |query: &str| must("sqlite3", &[db.to_str().unwrap(), query], &[]);
    assert_eq!(sql("SELECT state FROM applications"), "retrieved\n");
    let reference = sql("SELECT id FROM applications").trim().to_owned();
    let bound = sql("SELECT serial || ' ' || state || ' ' || application FROM stock_tokens");
    assert_eq!(bound.trim(), format!("{token_serial} retrieved {reference}"), "the shipped token holds its keys");
    let trail =
        sql("SELECT action || ' ' || actor FROM audit_log WHERE subject = (SELECT id FROM applications) ORDER BY seq");
    assert_eq!(
        trail.lines().collect::<Vec<_>>(),
        [
            "application-submitted applicant",
            "email-verified applicant",
            "forms-mailed applicant",
            "forms-deficient operator:alice",
            "forms-mailed applicant",
            "forms-received operator:alice",
            "officer-confirmed operator:alice",
            "identity-verified operator:alice",
            "note-added operator:alice",
            "application-first-approval operator:alice",
            "application-approved operator:bob",
            "token-shipped operator:bob",
            "password-reset-requested system",
            &*format!("password-changed applicant:{reference}"),
            &*format!("soft-token-enrolled subscriber:{reference}"),
            &*format!("soft-token-activated subscriber:{reference}"),
            &*format!("step-up-confirmed subscriber:{reference}"),
            &*format!("recovery-questions-set subscriber:{reference}"),
            &*format!("subscriber-signed-in subscriber:{reference}"),
            "certificates-ready operator:bob",
            &*format!("key-escrowed applicant:{reference}"),
            "application-retrieved applicant",
            // On localhost: signed in with a code, a passkey added (confirmed with a code), then
            // signed in twice with the passkey; the refused attempts between are not the
            // account's but their lockout scope's.
            &*format!("subscriber-signed-in subscriber:{reference}"),
            &*format!("step-up-confirmed subscriber:{reference}"),
            &*format!("passkey-registered subscriber:{reference}"),
            &*format!("subscriber-signed-in subscriber:{reference}"),
            &*format!("subscriber-signed-in subscriber:{reference}"),
            // The revocation for key compromise (confirmed with the passkey), then the other
            // certificate on the token (with a code).
            &*format!("step-up-confirmed subscriber:{reference}"),
            &*format!("step-up-confirmed subscriber:{reference}"),
        ]
    );
    // The organization the applicant registered is the one the operator confirmed.
    assert_eq!(sql("SELECT name || ' ' || status FROM organizations"), "Acme Widgets, Inc. confirmed\n");
    // Key compromise on one certificate revoked the other on the same token too.
    let revoked = sql(
        "SELECT count(*) || ' ' || min(revocation_reason) || ' ' || max(revocation_reason) FROM certificates WHERE state = 'issued' AND revoked_at IS NOT NULL",
    );
    assert_eq!(revoked, "2 1 1\n", "both of the token's certificates, for key compromise");
    let factors = sql(&format!(
        "SELECT json_extract(details, '$.factor') FROM audit_log WHERE action = 'step-up-confirmed' \
         AND subject = '{reference}' ORDER BY seq"
    ));
    assert_eq!(factors, "soft-token\nsoft-token\npasskey\nsoft-token\n", "how each step-up was confirmed");
    let operator_passkeys = sql("SELECT owner || ' ' || name FROM passkeys WHERE owner LIKE 'operator:%'");
    assert_eq!(operator_passkeys, "operator:alice Security key 7\n");
    let revocations = sql("SELECT actor FROM audit_log WHERE action = 'certificate-revoked' ORDER BY seq");
    assert_eq!(revocations, format!("subscriber:{reference}\nsubscriber:{reference}\n"), "each revocation audited");
    // The refused sign-ins the walk made (applicant password, operator code) are audited too.
    let failures = sql("SELECT subject FROM audit_log WHERE action = 'authentication-failed' ORDER BY seq");
    assert!(
        failures.starts_with("applicant-password:") && failures.contains("\noperator-password:alice\n"),
        "{failures}"
    );
    let out = must(SIGNET, &["audit", "verify", "--config", config.to_str().unwrap()], &[]);
    assert!(out.contains("audit log intact"), "{out}");
    // Nothing secret in the debug log: passwords, TOTP seeds, session cookies.
    let log = server.log.lock().unwrap().clone();
    let mut secrets = vec![APPLICANT_PASSWORD.to_owned(), format!("{APPLICANT_PASSWORD}-new")];
    // The one-time tokens of the mailed links (verification, password reset) ride in query
    // strings, which the request log must leave out.
    let files: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    // Python's email package decodes the bodies (quoted-printable would hide the tokens).
    let decode = "import email, email.policy, sys\nfor p in sys.argv[1:]:\n    \
                  print(email.message_from_binary_file(open(p, 'rb'), policy=email.policy.default)\
                  .get_body(('plain',)).get_content())";
    let mut args = vec!["-c", decode];
    args.extend(files.iter().map(String::as_str));
    let bodies = must("python3", &args, &[]);
    secrets.extend(bodies.split("token=").skip(1).filter_map(|rest| {
        let token: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
        (token.len() >= 16).then_some(token)
    }));
    assert!(secrets.len() >= 4, "the verification and reset tokens are among the secrets ({} found)", secrets.len());
    secrets.extend(operators.iter().flat_map(|o| [o.password.to_owned(), o.secret.clone()]));
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the server log");
    }
    assert!(!log.contains("signet_session="), "a session cookie reached the server log");
    let names: Vec<String> =
        std::fs::read_dir(&shots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with("-cmc-renewal-guide.png")), "the last page is kept: {names:?}");
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
