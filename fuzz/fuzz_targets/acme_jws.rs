//! An ACME request body as the server reads it (RFC 8555 §6.2): the flattened JWS, its
//! protected header and account key (`jwk` or `kid`), the signature check, the payload, and a
//! new-account request's External Account Binding.
//!
//! The parser is `signet_ra::jws`, the one the server calls.
//!
//! Whatever parses must be usable without a panic, and an accepted account key must survive
//! its RFC 7638 canonical form (the thumbprint that identifies the account).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_ra::jws::{ExternalBinding, Jwk, Jws, KeyRef};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Jws::parse(data) else { return };
    let KeyRef::Jwk(key) = &request.key else {
        // A `kid` request names an account; the server looks its key up and verifies the same way.
        return;
    };
    let canonical: serde_json::Value = serde_json::from_str(&key.canonical_json()).expect("the canonical form is JSON");
    assert!(matches!(Jwk::from_json(&canonical), Ok(k) if &k == key), "the canonical form reads back as the same key");
    let _ = key.thumbprint();
    // Signed by its own key or not, the check answers without panicking.
    let _ = request.verify(key);
    if let Ok(payload) = request.payload_object()
        && let Some(binding) = payload.get("externalAccountBinding")
        && let Ok(binding) = ExternalBinding::parse(binding, &request.url, key)
    {
        let hmac = signet_ra::acme::EabHmacKey::from_bytes(vec![7; 32]).expect("a 32-byte key");
        let _ = binding.verify(&hmac);
        let _ = binding.key_id();
    }
});
