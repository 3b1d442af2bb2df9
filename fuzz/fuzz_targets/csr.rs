//! A submitted CSR, as the issuance workflow and the ACME finalize endpoint take it: PEM or DER,
//! parsed, proof of possession checked, then the key policy applied
//! (`signet_ra::issuance` and the ACME finalize route call exactly these two steps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_pki::csr::{CsrError, KeyPolicy, SubscriberKey, VerifiedCsr, spki_sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = VerifiedCsr::parse(data) else { return };
    KeyPolicy::default().check(&csr).expect("an empty blocklist refuses nothing");

    // The blocklist identifies a key by the hash of its SPKI; a CSR must be refused by the entry
    // made from its own hash, or operators could not block a compromised key.
    assert_eq!(csr.spki_sha256(), spki_sha256(csr.spki()));
    let blocklist = KeyPolicy::from_blocklist(&hex::encode(csr.spki_sha256())).expect("a hex SHA-256 is a valid line");
    assert_eq!(blocklist.check(&csr), Err(CsrError::Blocked));

    // The subject key identifier is cut from these bits, so they must be the SPKI's own.
    let bits = csr.subject_public_key();
    assert!(csr.spki().ends_with(bits), "subjectPublicKey is not the tail of the SPKI");
    match csr.key() {
        SubscriberKey::Rsa { bits } => assert!((2048..=8192).contains(&bits)),
        // Uncompressed points: 0x04 || X || Y.
        SubscriberKey::P256 => assert_eq!(bits.len(), 65),
        SubscriberKey::P384 => assert_eq!(bits.len(), 97),
    }
});
