//! YubiKey PIV attestation against a YubiKey-like chain that the `openssl` CLI builds at test
//! time ([`signet_testkit::attestation`]). Bad fixtures are named after their defect.
//!
//! openssl must be on PATH; a missing tool fails the tests rather than skipping them, since a
//! skipped test proves nothing.

use std::path::Path;

use signet_pki::attestation::{self, AttestationError, AttestationRoots, PinPolicy, TouchPolicy, VerifiedAttestation};
use signet_testkit::attestation::{ROOT_SUBJECT, YubiKeyPki as Pki};
use time::{Duration, OffsetDateTime};

fn pki(test: &str) -> Pki {
    Pki::new(&Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("attestation-{test}-{}", std::process::id())))
}

fn roots(pki: &Pki, name: &str) -> AttestationRoots {
    AttestationRoots::from_pem(&std::fs::read_to_string(pki.path(&format!("{name}.pem"))).unwrap()).unwrap()
}

#[test]
fn genuine_chain_verifies() {
    let pki = pki("genuine");
    let out = pki.openssl(&["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "leaf.pem"]);
    assert_eq!(out.trim(), "leaf.pem: OK");

    let verified =
        attestation::verify(&roots(&pki, "root"), &pki.chain("leaf"), &pki.spki("slot"), OffsetDateTime::now_utc());
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
    let pki = pki("mismatch");
    pki.key("other");
    let result =
        attestation::verify(&roots(&pki, "root"), &pki.chain("leaf"), &pki.spki("other"), OffsetDateTime::now_utc());
    assert_eq!(result, Err(AttestationError::KeyMismatch));
}

#[test]
fn chain_under_another_root_is_untrusted() {
    let pki = pki("untrusted");
    // Same name as the real root, other key: the name matches and the signature must not.
    pki.root("impostor-root", ROOT_SUBJECT);
    let (chain, spki, now) = (pki.chain("leaf"), pki.spki("slot"), OffsetDateTime::now_utc());
    assert_eq!(
        attestation::verify(&roots(&pki, "impostor-root"), &chain, &spki, now),
        Err(AttestationError::UntrustedChain)
    );
    let none = AttestationRoots::from_pem("").unwrap();
    assert!(none.is_empty());
    assert_eq!(attestation::verify(&none, &chain, &spki, now), Err(AttestationError::UntrustedChain));
}

#[test]
fn leaf_without_policy_is_refused() {
    let pki = pki("no-policy");
    pki.issue("leaf-without-policy", "/CN=YubiKey PIV Attestation 9c", "slot", "f9", "yubikey_without_policy", 3650);
    let result = attestation::verify(
        &roots(&pki, "root"),
        &pki.chain("leaf-without-policy"),
        &pki.spki("slot"),
        OffsetDateTime::now_utc(),
    );
    assert_eq!(result, Err(AttestationError::MissingExtension("PIN and touch policy")));
}

#[test]
fn leaf_is_checked_against_the_given_time() {
    let pki = pki("expired");
    pki.issue("leaf-valid-for-a-day", "/CN=YubiKey PIV Attestation 9d", "slot", "f9", "yubikey", 1);
    let (roots, chain, spki) = (roots(&pki, "root"), pki.chain("leaf-valid-for-a-day"), pki.spki("slot"));
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
    let pki = pki("bad-signature");
    // Another device certificate of the same name signs the leaf, which is then presented
    // with this device's f9 certificate.
    pki.key("other-f9");
    pki.issue("other-f9", "/CN=Yubico PIV Attestation", "other-f9", "root", "device", 3650);
    pki.issue("leaf-signed-by-other-device", "/CN=YubiKey PIV Attestation 9a", "slot", "other-f9", "yubikey", 3650);
    let args = ["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "leaf-signed-by-other-device.pem"];
    let (ok, out) = pki.openssl_status(&args);
    assert!(!ok, "openssl accepted a leaf not signed by f9: {out}");
    let (roots, spki, now) = (roots(&pki, "root"), pki.spki("slot"), OffsetDateTime::now_utc());
    let chain = pki.chain("leaf-signed-by-other-device");
    assert_eq!(attestation::verify(&roots, &chain, &spki, now), Err(AttestationError::BadSignature(0)));

    let swapped = vec![pki.der("f9"), pki.der("leaf")];
    assert_eq!(attestation::verify(&roots, &swapped, &spki, now), Err(AttestationError::BadSignature(0)));
}
