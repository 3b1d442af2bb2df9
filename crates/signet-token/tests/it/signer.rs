//! `Pkcs11Signer` against a real SoftHSM2: key generation, reopening, signing from
//! several threads, and the errors an operator meets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{MODULE, PIN, in_softhsm};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use signet_pki::signer::verify_signature;
use signet_pki::{KeyAlgorithm, SignError, Signer};
use signet_token::{Pkcs11KeyConfig, Pkcs11Signer, TokenError};

#[test]
fn every_algorithm_generates_signs_verifies_and_reopens() {
    in_softhsm("signer::every_algorithm_generates_signs_verifies_and_reopens", |hsm| {
        hsm.init_token("ca");
        for alg in KeyAlgorithm::ALL {
            let cfg = hsm.config("ca", &format!("key-{alg}"));
            let signer = Pkcs11Signer::generate(&cfg, alg).unwrap();
            assert_eq!(signer.algorithm(), alg);
            let sig = signer.sign(b"to be signed").unwrap();
            assert!(verify_signature(alg, signer.public_key_spki(), b"to be signed", &sig), "{alg}");
            assert!(!verify_signature(alg, signer.public_key_spki(), b"to be signed!", &sig), "{alg}");
            let spki = signer.public_key_spki().to_vec();
            drop(signer);

            let reopened = Pkcs11Signer::open(&cfg).unwrap();
            assert_eq!(reopened.algorithm(), alg, "algorithm read back from the token");
            assert_eq!(reopened.public_key_spki(), spki, "{alg}");
            let sig = reopened.sign(b"again").unwrap();
            assert!(verify_signature(alg, &spki, b"again", &sig), "{alg}");
        }
    });
}

#[test]
fn ecdsa_signatures_are_der_and_randomized() {
    in_softhsm("signer::ecdsa_signatures_are_der_and_randomized", |hsm| {
        hsm.init_token("ca");
        let signer = Pkcs11Signer::generate(&hsm.config("ca", "ec"), KeyAlgorithm::P384).unwrap();
        let (a, b) = (signer.sign(b"m").unwrap(), signer.sign(b"m").unwrap());
        assert_ne!(a, b, "ECDSA uses a fresh nonce each time");
        for sig in [a, b] {
            // SEQUENCE, short length covering the rest: DER, not raw r || s (96 bytes).
            assert_eq!(sig[0], 0x30);
            assert_eq!(usize::from(sig[1]) + 2, sig.len());
        }
    });
}

#[test]
fn generated_private_key_is_sensitive_non_extractable_and_sign_only() {
    in_softhsm("signer::generated_private_key_is_sensitive_non_extractable_and_sign_only", |hsm| {
        hsm.init_token("ca");
        let _rsa = Pkcs11Signer::generate(&hsm.config("ca", "rsa"), KeyAlgorithm::Rsa2048).unwrap();
        let _ec = Pkcs11Signer::generate(&hsm.config("ca", "ec"), KeyAlgorithm::P256).unwrap();

        // Read the attributes with cryptoki directly, not through the code under test.
        let pkcs11 = Pkcs11::new(MODULE).unwrap();
        if let Err(e) = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // The signer initialized this module already; that is expected.
            assert!(e.to_string().contains("already been initialized"), "{e}");
        }
        let slot = pkcs11.get_slots_with_token().unwrap()[0];
        let session = pkcs11.open_ro_session(slot).unwrap();
        // Already logged in through the signers' sessions, or logs in now.
        let _ = session.login(UserType::User, Some(&AuthPin::from(PIN)));
        for label in ["rsa", "ec"] {
            let keys = session
                .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(label.into())])
                .unwrap();
            assert_eq!(keys.len(), 1, "{label}");
            let flags = [
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Unwrap,
                AttributeType::Derive,
            ];
            let got = session.get_attributes(keys[0], &flags).unwrap();
            let expected = vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::AlwaysSensitive(true),
                Attribute::Extractable(false),
                Attribute::NeverExtractable(true),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ];
            assert_eq!(got, expected, "{label}");
            // The secret parts cannot be read: the token withholds them (CKR_ATTRIBUTE_SENSITIVE).
            let secret = [AttributeType::PrivateExponent, AttributeType::Value];
            assert_eq!(session.get_attributes(keys[0], &secret).unwrap(), vec![], "{label}");
            // Private and public key share label and a 16-byte CKA_ID.
            let id = session.get_attributes(keys[0], &[AttributeType::Id]).unwrap();
            assert!(matches!(&id[..], [Attribute::Id(id)] if id.len() == 16), "{label}: {id:?}");
            let public = session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), id[0].clone()]).unwrap();
            assert_eq!(public.len(), 1, "{label}");
        }
    });
}

#[test]
fn generate_refuses_an_existing_label_and_leaves_the_key_alone() {
    in_softhsm("signer::generate_refuses_an_existing_label_and_leaves_the_key_alone", |hsm| {
        hsm.init_token("ca");
        let cfg = hsm.config("ca", "root");
        let first = Pkcs11Signer::generate(&cfg, KeyAlgorithm::P256).unwrap();
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::Rsa2048] {
            let err = Pkcs11Signer::generate(&cfg, alg).unwrap_err();
            assert!(matches!(err, TokenError::KeyExists { .. }), "{err}");
            assert_eq!(err.to_string(), r#"a key labelled "root" already exists on token "ca"; choose another label"#);
        }
        assert_eq!(Pkcs11Signer::open(&cfg).unwrap().public_key_spki(), first.public_key_spki());
    });
}

#[test]
fn wrong_pin_is_reported_as_such() {
    in_softhsm("signer::wrong_pin_is_reported_as_such", |hsm| {
        hsm.init_token("ca");
        // A wrong PIN must be tried before any right one: login state is per process.
        let wrong = Pkcs11KeyConfig { pin: "0000".into(), ..hsm.config("ca", "root") };
        let err = Pkcs11Signer::generate(&wrong, KeyAlgorithm::P256).unwrap_err();
        assert!(matches!(err, TokenError::WrongPin { .. }), "{err}");
        assert_eq!(err.to_string(), r#"wrong PIN for token "ca""#);
        let err = Pkcs11Signer::open(&wrong).unwrap_err();
        assert!(matches!(err, TokenError::WrongPin { .. }), "{err}");
        // And as a SignError, for callers that use `?` towards signet-pki.
        let err: SignError = err.into();
        assert!(matches!(err, SignError::Device(m) if m.contains("wrong PIN")));
    });
}

#[test]
fn unknown_token_label_names_the_tokens_present() {
    in_softhsm("signer::unknown_token_label_names_the_tokens_present", |hsm| {
        hsm.init_token("ca-root");
        let err = Pkcs11Signer::open(&hsm.config("ca-rot", "root")).unwrap_err();
        assert!(matches!(err, TokenError::TokenNotFound { .. }), "{err}");
        assert_eq!(err.to_string(), r#"no token labelled "ca-rot" (tokens present: "ca-root")"#);
    });
}

#[test]
fn missing_key_is_key_not_found() {
    in_softhsm("signer::missing_key_is_key_not_found", |hsm| {
        hsm.init_token("ca");
        let err = Pkcs11Signer::open(&hsm.config("ca", "nope")).unwrap_err();
        assert!(matches!(err, TokenError::KeyNotFound { .. }), "{err}");
        assert_eq!(err.to_string(), r#"no private key labelled "nope" on token "ca""#);
    });
}

#[test]
fn unloadable_module_names_its_path() {
    // No SoftHSM2 involved: nothing gets as far as a token.
    let cfg = Pkcs11KeyConfig {
        module: "/nonexistent/libpkcs11.so".into(),
        token_label: "ca".into(),
        pin: PIN.into(),
        key_label: "root".into(),
    };
    let err = Pkcs11Signer::open(&cfg).unwrap_err();
    assert!(matches!(err, TokenError::ModuleLoad { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot load the PKCS#11 module /nonexistent/libpkcs11.so: \
         cannot open shared object file: No such file or directory"
    );
    // Not a shared library at all.
    let cfg = Pkcs11KeyConfig { module: "/etc/hostname".into(), ..cfg };
    assert!(matches!(Pkcs11Signer::open(&cfg), Err(TokenError::ModuleLoad { .. })));
}

#[test]
fn signs_from_many_threads_at_once() {
    in_softhsm("signer::signs_from_many_threads_at_once", |hsm| {
        hsm.init_token("ca");
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256] {
            let signer = Arc::new(Pkcs11Signer::generate(&hsm.config("ca", alg.name()), alg).unwrap());
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let signer = Arc::clone(&signer);
                    std::thread::spawn(move || {
                        for i in 0..25 {
                            let msg = format!("thread {t} message {i}");
                            let sig = signer.sign(msg.as_bytes()).unwrap();
                            assert!(verify_signature(alg, signer.public_key_spki(), msg.as_bytes(), &sig));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
    });
}

/// Prints RSA-2048 signatures per second on SoftHSM2 (DESIGN §5 expects ≈ 1,400/s per
/// session); asserts nothing about speed. `cargo test -p signet-token --release --test
/// signer -- --nocapture rsa_2048_throughput` for figures worth quoting.
#[test]
fn rsa_2048_throughput() {
    in_softhsm("signer::rsa_2048_throughput", |hsm| {
        hsm.init_token("ca");
        let signer = Arc::new(Pkcs11Signer::generate(&hsm.config("ca", "bench"), KeyAlgorithm::Rsa2048).unwrap());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for threads in [1, cores] {
            let start = Instant::now();
            let per_thread = 400;
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..per_thread {
                            signer.sign(b"benchmark message").unwrap();
                        }
                    });
                }
            });
            let rate = (threads * per_thread) as f64 / start.elapsed().max(Duration::from_micros(1)).as_secs_f64();
            println!("SoftHSM2 RSA-2048 via Pkcs11Signer, {threads} thread(s): {rate:.0} sign/s");
        }
    });
}

#[test]
#[should_panic(expected = "ran no test named")]
fn harness_rejects_a_misnamed_test() {
    // The child runs zero tests and exits 0; the harness must not call that a pass.
    in_softhsm("no_such_test", |_| {});
}
