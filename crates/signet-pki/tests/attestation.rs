//! YubiKey PIV attestation against a YubiKey-like chain that the `openssl` CLI builds at test
//! time: a root, an "f9" device attestation certificate, and a leaf for a separately
//! generated slot key carrying Yubico's extensions. `openssl verify` must accept the genuine
//! chain too, so the fixture is not shaped to fit our own verifier.
//!
//! openssl must be on PATH; a missing tool fails the tests rather than skipping them, since a
//! skipped test proves nothing. Bad fixtures are named after their defect.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use signet_pki::attestation::{self, AttestationError, AttestationRoots, PinPolicy, TouchPolicy, VerifiedAttestation};
use time::{Duration, OffsetDateTime};

const ROOT_SUBJECT: &str = "/CN=Signet Test PIV Root CA";

// Extension values are given as DER, as a YubiKey writes them: firmware 5.7.4, serial
// 20000000, PIN once and touch always, form factor 1.
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
[yubikey_without_policy]
1.3.6.1.4.1.41482.3.3 = DER:05:07:04
1.3.6.1.4.1.41482.3.7 = DER:02:04:01:31:2D:00
";

/// Files in a fresh directory: `root`, the device certificate `f9`, and `leaf` for the key
/// `slot` (`NAME.key`, `NAME.pem`).
struct Pki {
    dir: PathBuf,
}

// Keep the files of a failed test for inspection; tidy up after a passing one.
impl Drop for Pki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("attestation-{test}-{}", std::process::id()));
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

    fn openssl(&self, args: &[&str]) -> String {
        let (ok, out) = self.openssl_status(args);
        assert!(ok, "openssl {} failed:\n{out}", args.join(" "));
        out
    }

    /// Runs `openssl` in the fixture directory; returns whether it succeeded and its stdout
    /// and stderr.
    fn openssl_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("the openssl CLI must be on PATH for the attestation tests: {e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn key(&self, name: &str) {
        let key = format!("{name}.key");
        self.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    }

    fn root(&self, name: &str, subject: &str) {
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
    fn issue(&self, name: &str, subject: &str, key: &str, issuer: &str, section: &str, days: u32) {
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

    fn der(&self, name: &str) -> Vec<u8> {
        let text = fs::read(self.dir.join(format!("{name}.pem"))).unwrap();
        pem::parse(text).unwrap().into_contents()
    }

    /// The DER SubjectPublicKeyInfo of the key `name`, as OpenSSL writes it.
    fn spki(&self, name: &str) -> Vec<u8> {
        let (key, out) = (format!("{name}.key"), format!("{name}.spki"));
        self.openssl(&["pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &out]);
        fs::read(self.dir.join(out)).unwrap()
    }

    fn roots(&self, name: &str) -> AttestationRoots {
        AttestationRoots::from_pem(&fs::read_to_string(self.dir.join(format!("{name}.pem"))).unwrap()).unwrap()
    }

    /// `leaf` then the f9 certificate, as a YubiKey hands them out.
    fn chain(&self, leaf: &str) -> Vec<Vec<u8>> {
        vec![self.der(leaf), self.der("f9")]
    }
}

#[test]
fn genuine_chain_verifies() {
    let pki = Pki::new("genuine");
    let out = pki.openssl(&["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "leaf.pem"]);
    assert_eq!(out.trim(), "leaf.pem: OK");

    let verified =
        attestation::verify(&pki.roots("root"), &pki.chain("leaf"), &pki.spki("slot"), OffsetDateTime::now_utc());
    let expected = VerifiedAttestation {
        serial: 20_000_000,
        firmware: (5, 7, 4),
        pin_policy: PinPolicy::Once,
        touch_policy: TouchPolicy::Always,
        slot: Some("9a".to_owned()),
        form_factor: Some(1),
    };
    assert_eq!(verified, Ok(expected));
}

#[test]
fn another_key_is_a_key_mismatch() {
    let pki = Pki::new("mismatch");
    pki.key("other");
    let result =
        attestation::verify(&pki.roots("root"), &pki.chain("leaf"), &pki.spki("other"), OffsetDateTime::now_utc());
    assert_eq!(result, Err(AttestationError::KeyMismatch));
}

#[test]
fn chain_under_another_root_is_untrusted() {
    let pki = Pki::new("untrusted");
    // Same name as the real root, other key: the name matches and the signature must not.
    pki.root("impostor-root", ROOT_SUBJECT);
    let (chain, spki, now) = (pki.chain("leaf"), pki.spki("slot"), OffsetDateTime::now_utc());
    assert_eq!(
        attestation::verify(&pki.roots("impostor-root"), &chain, &spki, now),
        Err(AttestationError::UntrustedChain)
    );
    let none = AttestationRoots::from_pem("").unwrap();
    assert!(none.is_empty());
    assert_eq!(attestation::verify(&none, &chain, &spki, now), Err(AttestationError::UntrustedChain));
}

#[test]
fn leaf_without_policy_is_refused() {
    let pki = Pki::new("no-policy");
    pki.issue("leaf-without-policy", "/CN=YubiKey PIV Attestation 9c", "slot", "f9", "yubikey_without_policy", 3650);
    let result = attestation::verify(
        &pki.roots("root"),
        &pki.chain("leaf-without-policy"),
        &pki.spki("slot"),
        OffsetDateTime::now_utc(),
    );
    assert_eq!(result, Err(AttestationError::MissingExtension("PIN and touch policy")));
}

#[test]
fn leaf_is_checked_against_the_given_time() {
    let pki = Pki::new("expired");
    pki.issue("leaf-valid-for-a-day", "/CN=YubiKey PIV Attestation 9d", "slot", "f9", "yubikey", 1);
    let (roots, chain, spki) = (pki.roots("root"), pki.chain("leaf-valid-for-a-day"), pki.spki("slot"));
    let now = OffsetDateTime::now_utc();
    assert_eq!(attestation::verify(&roots, &chain, &spki, now).map(|v| v.slot), Ok(Some("9d".to_owned())));
    assert_eq!(attestation::verify(&roots, &chain, &spki, now + Duration::days(2)), Err(AttestationError::Expired(0)));
    assert_eq!(
        attestation::verify(&roots, &chain, &spki, now - Duration::days(1)),
        Err(AttestationError::NotYetValid(0))
    );
}

#[test]
fn leaf_not_signed_by_the_device_key_is_refused() {
    let pki = Pki::new("bad-signature");
    // Another device certificate of the same name signs the leaf, which is then presented
    // with this device's f9 certificate.
    pki.key("other-f9");
    pki.issue("other-f9", "/CN=Yubico PIV Attestation", "other-f9", "root", "device", 3650);
    pki.issue("leaf-signed-by-other-device", "/CN=YubiKey PIV Attestation 9a", "slot", "other-f9", "yubikey", 3650);
    let args = ["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "leaf-signed-by-other-device.pem"];
    let (ok, out) = pki.openssl_status(&args);
    assert!(!ok, "openssl accepted a leaf not signed by f9: {out}");
    let (roots, spki, now) = (pki.roots("root"), pki.spki("slot"), OffsetDateTime::now_utc());
    let chain = pki.chain("leaf-signed-by-other-device");
    assert_eq!(attestation::verify(&roots, &chain, &spki, now), Err(AttestationError::BadSignature(0)));

    let swapped = vec![pki.der("f9"), pki.der("leaf")];
    assert_eq!(attestation::verify(&roots, &swapped, &spki, now), Err(AttestationError::BadSignature(0)));
}
