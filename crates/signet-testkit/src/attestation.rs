//! A YubiKey-like PIV attestation hierarchy built by the `openssl` CLI: a root, an "f9" device
//! attestation certificate, and a leaf for a separately generated slot key carrying Yubico's
//! extensions. `openssl verify` accepts the genuine chain, so the fixture is not shaped to fit
//! Signet's own verifier. Used by the attestation unit tests and the retrieval tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The root's subject.
pub const ROOT_SUBJECT: &str = "/CN=Signet Test PIV Root CA";

// Extension values are given as DER, as a YubiKey writes them: firmware 5.7.4, serial
// 20000000, PIN once and touch always (`yubikey_pin_never`: PIN never, touch never), form
// factor 1.
const CONFIG: &str = "\
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[device]
# Older firmware leaves cA=TRUE out of f9 certificates; openssl verify needs it.
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
[yubikey]
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
1.3.6.1.4.1.41482.3.7 = DER:02:04:01:31:2D:00
1.3.6.1.4.1.41482.3.8 = DER:02:02
1.3.6.1.4.1.41482.3.9 = DER:01
[yubikey_pin_never]
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
1.3.6.1.4.1.41482.3.7 = DER:02:04:01:31:2D:00
1.3.6.1.4.1.41482.3.8 = DER:01:01
1.3.6.1.4.1.41482.3.9 = DER:01
[yubikey_without_policy]
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
1.3.6.1.4.1.41482.3.7 = DER:02:04:01:31:2D:00
";

/// Files in a directory: `root`, the device certificate `f9`, and `leaf` for the key
/// `slot` (`NAME.key`, `NAME.pem`).
pub struct YubiKeyPki {
    dir: PathBuf,
}

// Keep the files of a failed test for inspection; tidy up after a passing one.
impl Drop for YubiKeyPki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl YubiKeyPki {
    /// Builds the genuine hierarchy in `dir` (emptied first): `root`, `f9`, and `leaf` for the
    /// key `slot`.
    pub fn new(dir: &Path) -> Self {
        let dir = dir.to_owned();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("fixture.cnf"), CONFIG).unwrap();
        let pki = Self { dir };
        pki.root("root", ROOT_SUBJECT);
        pki.key("f9");
        pki.issue("f9", "/CN=Yubico PIV Attestation", "f9", "root", "device", 3650);
        pki.key("slot");
        pki.issue("leaf", "/CN=YubiKey PIV Attestation 9a", "slot", "f9", "yubikey", 3650);
        pki
    }

    /// Runs `openssl` in the fixture directory; panics on failure.
    pub fn openssl(&self, args: &[&str]) -> String {
        let (ok, out) = self.openssl_status(args);
        assert!(ok, "openssl {} failed:\n{out}", args.join(" "));
        out
    }

    /// Runs `openssl` in the fixture directory; returns whether it succeeded and its stdout
    /// and stderr.
    pub fn openssl_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("the openssl CLI must be on PATH for the attestation tests: {e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// A P-256 key `name.key`.
    pub fn key(&self, name: &str) {
        let key = format!("{name}.key");
        self.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    }

    /// A self-signed root `name.pem` with its key.
    pub fn root(&self, name: &str, subject: &str) {
        self.key(name);
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &key,
            "-subj",
            subject,
            "-days",
            "3650",
            "-sha256",
            "-config",
            "fixture.cnf",
            "-extensions",
            "root",
            "-out",
            &pem,
        ]);
    }

    /// Certifies the key `key` as `name.pem`, signed by `issuer`, with the extensions of
    /// `section` in the configuration.
    pub fn issue(&self, name: &str, subject: &str, key: &str, issuer: &str, section: &str, days: u32) {
        let (key, csr, pem) = (format!("{key}.key"), format!("{name}.csr"), format!("{name}.pem"));
        let (ca, ca_key, days) = (format!("{issuer}.pem"), format!("{issuer}.key"), days.to_string());
        self.openssl(&["req", "-new", "-key", &key, "-subj", subject, "-config", "fixture.cnf", "-out", &csr]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-days",
            &days,
            "-sha256",
            "-extfile",
            "fixture.cnf",
            "-extensions",
            section,
            "-out",
            &pem,
        ]);
    }

    /// The certificate `name.pem` as DER.
    pub fn der(&self, name: &str) -> Vec<u8> {
        let (pem, der) = (format!("{name}.pem"), format!("{name}.der"));
        self.openssl(&["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        fs::read(self.dir.join(der)).unwrap()
    }

    /// A file of the fixture.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// `leaf` then the f9 certificate, as a YubiKey hands them out.
    pub fn chain(&self, leaf: &str) -> Vec<Vec<u8>> {
        vec![self.der(leaf), self.der("f9")]
    }

    /// The DER SubjectPublicKeyInfo of the key `name`, as OpenSSL writes it.
    pub fn spki(&self, name: &str) -> Vec<u8> {
        let (key, out) = (format!("{name}.key"), format!("{name}.spki"));
        self.openssl(&["pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &out]);
        fs::read(self.dir.join(out)).unwrap()
    }
}
