//! A fresh SoftHSM2 token directory per test, without touching the system's.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` from the environment when the module is initialized,
//! and setting a variable in this process needs `unsafe` (forbidden here). So each test
//! re-runs itself: [`in_softhsm`] called in the test harness makes a temporary directory
//! with a `softhsm2.conf`, then runs this same test binary, filtered to the same test,
//! with `SOFTHSM2_CONF` in the child's environment; in that child, [`in_softhsm`] runs the
//! test body. Tests thus run in parallel, each against its own tokens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use signet_token::Pkcs11KeyConfig;

/// SoftHSM2 as packaged by Debian.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of every test token.
pub const PIN: &str = "1234";
/// The SO PIN of every test token.
pub const SO_PIN: &str = "5678";

/// Set in the child: the test's temporary directory.
const CHILD_DIR: &str = "SIGNET_TOKEN_TEST_DIR";

/// The SoftHSM2 set-up a test body runs against.
pub struct SoftHsm {
    dir: PathBuf,
}

impl SoftHsm {
    /// Initializes a token labelled `label` with [`PIN`] and [`SO_PIN`]. Call it before
    /// the test loads the module: SoftHSM2 lists tokens once, at `C_Initialize`.
    pub fn init_token(&self, label: &str) {
        run_ok(Command::new("softhsm2-util").args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ]));
    }

    /// The configuration for key `key` on token `token` with the right PIN.
    pub fn config(&self, token: &str, key: &str) -> Pkcs11KeyConfig {
        Pkcs11KeyConfig { module: MODULE.into(), token_label: token.into(), pin: PIN.into(), key_label: key.into() }
    }

    /// A path in the test's temporary directory, for files handed to other tools.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `pkcs11-tool` logged in to `token`, and returns its standard output.
    pub fn pkcs11_tool(&self, token: &str, args: &[&str]) -> String {
        let out = run_ok(
            Command::new("pkcs11-tool")
                .args(["--module", MODULE, "--token-label", token, "--login", "--pin", PIN])
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Runs `body` against a fresh SoftHSM2 token directory, in a child process (see the
/// module documentation). `test_name` must be the calling test's name as libtest knows
/// it; a wrong name fails the test rather than silently running nothing.
pub fn in_softhsm(test_name: &str, body: impl FnOnce(&SoftHsm)) {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let hsm = SoftHsm { dir: dir.into() };
        body(&hsm);
        std::fs::write(hsm.path(&done_marker(test_name)), "").unwrap();
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let conf = signet_testkit::softhsm_conf(tmp.path());

    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_DIR, tmp.path())
        .output()
        .unwrap();
    // Shown by libtest when the test fails (or with --nocapture).
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test_name} failed in its SoftHSM2 child process");
    assert!(
        tmp.path().join(done_marker(test_name)).exists(),
        "the child ran no test named {test_name:?}: pass the calling test's exact name"
    );
}

fn done_marker(test_name: &str) -> String {
    format!("done-{}", test_name.replace("::", "-"))
}

/// Runs a command, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes `bytes` to `path` and returns the path as a string for a command line.
pub fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Makes a throwaway OpenSSL CA in `dir`; returns its certificate (DER).
pub fn openssl_ca(dir: &Path) -> Vec<u8> {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.der"),
        "-outform",
        "DER",
        "-days",
        "2",
    ]));
    std::fs::read(p("ca.der")).unwrap()
}

/// Has the CA of [`openssl_ca`] certify `csr_der`; returns the certificate (DER).
pub fn openssl_certify(dir: &Path, csr_der: &[u8]) -> Vec<u8> {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let csr = write(&dir.join("req.der"), csr_der);
    run_ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-inform",
        "DER",
        "-in",
        &csr,
        "-CA",
        &p("ca.der"),
        "-CAform",
        "DER",
        "-CAkey",
        &p("ca.key"),
        "-days",
        "1",
        "-outform",
        "DER",
        "-out",
        &p("leaf.der"),
    ]));
    std::fs::read(p("leaf.der")).unwrap()
}
