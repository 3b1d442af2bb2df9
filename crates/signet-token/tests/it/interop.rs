//! Independent checks of what `Pkcs11Signer` makes: OpenSSL parses its public keys and
//! verifies its signatures; OpenSC's `pkcs11-tool` reads the flags of its keys; keys that
//! `pkcs11-tool` made open with it.

use std::process::Command;

use crate::common::{in_softhsm, run_ok, write};
use signet_pki::signer::verify_signature;
use signet_pki::{KeyAlgorithm, Signer};
use signet_token::{Pkcs11Signer, TokenError};

#[test]
fn openssl_parses_the_public_keys_and_verifies_the_signatures() {
    in_softhsm("interop::openssl_parses_the_public_keys_and_verifies_the_signatures", |hsm| {
        hsm.init_token("ca");
        let message = b"tbsCertificate stand-in";
        let msg = write(&hsm.path("msg"), message);
        for (alg, expected_text, digest) in [
            (KeyAlgorithm::Rsa2048, "Public-Key: (2048 bit)", "-sha256"),
            (KeyAlgorithm::Rsa3072, "Public-Key: (3072 bit)", "-sha256"),
            (KeyAlgorithm::P256, "NIST CURVE: P-256", "-sha256"),
            (KeyAlgorithm::P384, "NIST CURVE: P-384", "-sha384"),
        ] {
            let signer = Pkcs11Signer::generate(&hsm.config("ca", alg.name()), alg).unwrap();
            let der = write(&hsm.path(&format!("{alg}.spki.der")), signer.public_key_spki());
            let pem = hsm.path(&format!("{alg}.pub.pem")).to_str().unwrap().to_owned();
            let text = run_ok(
                Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in", &der, "-text", "-noout"]),
            );
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(text.contains(expected_text), "{alg}: {text}");
            if alg.is_rsa() {
                assert!(text.contains("Exponent: 65537 (0x10001)"), "{alg}: {text}");
            }
            run_ok(Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem]));
            // OpenSSL re-encodes the key it parsed: byte-identical means canonical DER.
            let reencoded = run_ok(Command::new("openssl").args(["pkey", "-pubin", "-in", &pem, "-outform", "DER"]));
            assert_eq!(reencoded.stdout, signer.public_key_spki(), "{alg}");

            let sig = write(&hsm.path(&format!("{alg}.sig")), &signer.sign(message).unwrap());
            let out = run_ok(Command::new("openssl").args(["dgst", digest, "-verify", &pem, "-signature", &sig, &msg]));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Verified OK", "{alg}");
            let bad = write(&hsm.path("other-msg"), b"something else");
            let out = Command::new("openssl")
                .args(["dgst", digest, "-verify", &pem, "-signature", &sig, &bad])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{alg}: OpenSSL accepted a signature over another message");
        }
    });
}

#[test]
fn pkcs11_tool_sees_sensitive_never_extractable_sign_only_keys() {
    in_softhsm("interop::pkcs11_tool_sees_sensitive_never_extractable_sign_only_keys", |hsm| {
        hsm.init_token("ca");
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256] {
            Pkcs11Signer::generate(&hsm.config("ca", alg.name()), alg).unwrap();
        }
        let listing = hsm.pkcs11_tool("ca", &["--list-objects", "--type", "privkey"]);
        let keys: Vec<&str> = listing.split("Private Key Object;").skip(1).collect();
        assert_eq!(keys.len(), 2, "{listing}");
        for key in keys {
            let field = |name: &str| {
                key.lines()
                    .find_map(|l| l.trim().strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_else(|| panic!("no {name} in {key}"))
            };
            assert_eq!(field("Usage:"), "sign", "{key}");
            let access: Vec<String> = field("Access:").split(", ").map(str::to_owned).collect();
            for flag in ["sensitive", "always sensitive", "never extractable", "local"] {
                assert!(access.iter().any(|a| a == flag), "{flag} missing: {key}");
            }
            assert!(!access.iter().any(|a| a == "extractable"), "{key}");
        }
    });
}

#[test]
fn keys_made_by_pkcs11_tool_open_and_sign() {
    in_softhsm("interop::keys_made_by_pkcs11_tool_open_and_sign", |hsm| {
        hsm.init_token("ca");
        for (key_type, label, alg) in
            [("rsa:3072", "tool-rsa", KeyAlgorithm::Rsa3072), ("EC:secp384r1", "tool-ec", KeyAlgorithm::P384)]
        {
            hsm.pkcs11_tool("ca", &["--keypairgen", "--key-type", key_type, "--label", label, "--id", "a1b2"]);
            // Both share CKA_ID a1b2: the public key is told apart by label.
            let signer = Pkcs11Signer::open(&hsm.config("ca", label)).unwrap();
            assert_eq!(signer.algorithm(), alg);
            let sig = signer.sign(b"m").unwrap();
            assert!(verify_signature(alg, signer.public_key_spki(), b"m", &sig), "{alg}");
        }
    });
}

#[test]
fn extractable_key_is_refused() {
    in_softhsm("interop::extractable_key_is_refused", |hsm| {
        hsm.init_token("ca");
        let args = ["--keypairgen", "--key-type", "EC:prime256v1", "--label", "loose", "--extractable"];
        hsm.pkcs11_tool("ca", &args);
        let err = Pkcs11Signer::open(&hsm.config("ca", "loose")).unwrap_err();
        assert!(matches!(err, TokenError::KeyNotProtected { .. }), "{err}");
        assert!(err.to_string().contains("CKA_EXTRACTABLE is true"), "{err}");
    });
}

#[test]
fn rsa_key_without_public_key_object_opens_from_the_private_key() {
    in_softhsm("interop::rsa_key_without_public_key_object_opens_from_the_private_key", |hsm| {
        hsm.init_token("ca");
        for (key_type, label) in [("rsa:2048", "rsa"), ("EC:prime256v1", "ec")] {
            hsm.pkcs11_tool("ca", &["--keypairgen", "--key-type", key_type, "--label", label, "--id", "01"]);
            hsm.pkcs11_tool("ca", &["--delete-object", "--type", "pubkey", "--label", label]);
        }
        let rsa = Pkcs11Signer::open(&hsm.config("ca", "rsa")).unwrap();
        assert_eq!(rsa.algorithm(), KeyAlgorithm::Rsa2048);
        // An EC private key does not carry its point: nothing to build the SPKI from.
        let err = Pkcs11Signer::open(&hsm.config("ca", "ec")).unwrap_err();
        assert!(matches!(err, TokenError::PublicKey { .. }), "{err}");
        assert_eq!(err.to_string(), r#"bad public key for "ec": no public key object with CKA_EC_POINT"#);
    });
}
