//! The subscriber side of retrieval against a real SoftHSM2: readiness, initializing a blank
//! token, an identity key and its request, certificates written back — checked with OpenSC's
//! `pkcs11-tool` and OpenSSL rather than with the code under test.

use std::path::Path;
use std::process::Command;

use crate::common::{MODULE, in_softhsm, openssl_ca, openssl_certify, run_ok, write};
use signet_pki::KeyAlgorithm;
use signet_pki::attestation::{AttestationRoots, verify};
use signet_testkit::attestation::YubiKeyPki;
use signet_testkit::pkcs11_objects as objects;
use signet_token::TokenError;
use signet_token::subscriber::{SubscriberToken, readiness};

const USER_PIN: &str = "246810";

/// Runs `pkcs11-tool` on the token labelled `label`, logged in with `pin`. (By label: SoftHSM2
/// gives a token initialized in another process a new slot number.)
fn pkcs11_tool(label: &str, pin: &str, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", label, "--login", "--pin", pin])
            .args(args),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn readiness_reports_a_blank_token_and_a_missing_module() {
    in_softhsm("subscriber::readiness_reports_a_blank_token_and_a_missing_module", |_| {
        let report = readiness(Path::new(MODULE));
        assert!(report.is_ready(), "{report}");
        let library = report.library.as_ref().unwrap();
        assert_eq!(library.manufacturer, "SoftHSM");
        let [slot] = report.slots.as_slice() else { panic!("SoftHSM2 starts with one free slot: {report}") };
        let token = slot.token.as_ref().unwrap();
        assert!(!token.initialized && !token.user_pin_initialized);
        assert_eq!(token.key_generation, [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256]);
        assert_eq!(token.pin_length, (4, 255));
        let text = report.to_string();
        assert!(text.contains("blank token") && text.contains("ready: nothing is missing"), "{text}");

        let missing = readiness(Path::new("/nonexistent/opensc-pkcs11.so"));
        assert!(!missing.is_ready() && missing.library.is_none());
        assert!(missing.to_string().contains("no PKCS#11 module at /nonexistent/opensc-pkcs11.so"), "{missing}");
        let err = SubscriberToken::find(Path::new("/nonexistent/opensc-pkcs11.so"), None).unwrap_err();
        assert!(matches!(err, TokenError::ModuleNotFound { .. }), "{err}");
        // A file that is not a PKCS#11 module loads as nothing.
        let not_a_module = readiness(Path::new("/etc/hostname"));
        assert!(not_a_module.missing[0].contains("cannot load the PKCS#11 module /etc/hostname"), "{not_a_module}");
    });
}

#[test]
fn a_blank_token_is_initialized_with_the_pin_and_a_one_time_unlock_code() {
    in_softhsm("subscriber::a_blank_token_is_initialized_with_the_pin_and_a_one_time_unlock_code", |_| {
        let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
        assert!(!token.is_initialized());
        assert!(matches!(token.login(USER_PIN), Err(TokenError::WrongPin { .. } | TokenError::Device(_))));
        assert!(matches!(token.initialize("ECA TEST", "12"), Err(TokenError::PinLength { min: 4, max: 255 })));
        let unlock = token.initialize("ECA TEST", USER_PIN).unwrap();
        assert_eq!(unlock.expose().len(), 16);
        assert!(token.is_initialized() && token.label() == "ECA TEST");
        assert!(
            matches!(token.initialize("again", USER_PIN), Err(TokenError::NotBlank { token }) if token == "ECA TEST")
        );

        assert!(matches!(token.login("000000"), Err(TokenError::WrongPin { token }) if token == "ECA TEST"));
        token.login(USER_PIN).unwrap();
        // The unlock code is the SO PIN: OpenSC resets the user PIN with it.
        run_ok(Command::new("pkcs11-tool").args([
            "--module",
            MODULE,
            "--token-label",
            "ECA TEST",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            unlock.expose(),
            "--init-pin",
            "--new-pin",
            "1357",
        ]));
        pkcs11_tool("ECA TEST", "1357", &["-O"]);
    });
}

#[test]
fn identity_key_request_and_certificates_on_the_token() {
    in_softhsm("subscriber::identity_key_request_and_certificates_on_the_token", |hsm| {
        let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
        token.initialize("ECA TEST", USER_PIN).unwrap();
        let session = token.login(USER_PIN).unwrap();
        let ca = openssl_ca(&hsm.path(""));
        for (alg, label) in [(KeyAlgorithm::Rsa2048, "identity rsa"), (KeyAlgorithm::P256, "identity ec")] {
            let key = session.generate_identity_key(alg, label).unwrap();
            assert_eq!((key.algorithm(), key.label(), key.id().len()), (alg, label, 16));
            let csr = key.certificate_request().unwrap();
            // OpenSSL checks the proof of possession independently.
            let csr_file = write(&hsm.path(&format!("{alg}.csr")), &csr);
            let out =
                run_ok(Command::new("openssl").args(["req", "-inform", "DER", "-in", &csr_file, "-verify", "-noout"]));
            assert!(String::from_utf8_lossy(&out.stderr).contains("verify OK"), "{alg}");

            let leaf = openssl_certify(&hsm.path(""), &csr);
            session.store_certificates(&key, &leaf, std::slice::from_ref(&ca)).unwrap();
            let listing = objects(&pkcs11_tool("ECA TEST", USER_PIN, &["-O"]));
            let id = format!("ID:         {}", hex::encode(key.id()));
            let with_id: Vec<&String> = listing.iter().filter(|o| o.contains(&id)).collect();
            let mut kinds: Vec<&str> = with_id.iter().map(|o| o.split(';').next().unwrap()).collect();
            kinds.sort_unstable();
            assert_eq!(kinds, ["Certificate Object", "Private Key Object", "Public Key Object"], "{listing:#?}");
            assert!(with_id.iter().all(|o| o.contains(&format!("label:      {label}"))), "{listing:#?}");
            let private = with_id.iter().find(|o| o.starts_with("Private Key Object")).unwrap();
            assert!(private.contains("Access:     sensitive, always sensitive, never extractable, local"), "{private}");
            assert!(private.contains("Usage:      sign\n") || private.ends_with("Usage:      sign"), "{private}");
            let cas = listing.iter().filter(|o| o.contains("label:      Test CA")).count();
            assert_eq!(cas, 1, "the CA certificate is written once: {listing:#?}");
        }

        // A certificate for some other key is refused before anything is written.
        let key = session.generate_identity_key(KeyAlgorithm::P256, "identity other").unwrap();
        let other = signet_pki::SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let foreign = signet_token::subscriber::certification_request(&other, "x").unwrap();
        let leaf = openssl_certify(&hsm.path(""), &foreign);
        assert!(matches!(session.store_certificates(&key, &leaf, &[ca]), Err(TokenError::Certificate(_))));
        // Discarded, its key pair is gone; and a key left without certificate is replaced.
        session.discard(key).unwrap();
        assert!(!pkcs11_tool("ECA TEST", USER_PIN, &["-O"]).contains("identity other"));
        let first = session.generate_identity_key(KeyAlgorithm::P256, "identity again").unwrap();
        let second = session.generate_identity_key(KeyAlgorithm::P256, "identity again").unwrap();
        assert_ne!(first.id(), second.id());
        assert_eq!(pkcs11_tool("ECA TEST", USER_PIN, &["-O"]).matches("label:      identity again").count(), 2);
        // One whose certificate is on the token is kept and refused.
        assert!(matches!(
            session.generate_identity_key(KeyAlgorithm::P256, "identity ec"),
            Err(TokenError::KeyExists { .. })
        ));
        assert!(matches!(
            session.generate_identity_key(KeyAlgorithm::P384, "identity p384"),
            Err(TokenError::UnsupportedKey(_))
        ));
    });
}

#[test]
fn slots_are_chosen_explicitly_when_several_tokens_are_present() {
    in_softhsm("subscriber::slots_are_chosen_explicitly_when_several_tokens_are_present", |hsm| {
        hsm.init_token("first");
        // SoftHSM2 now shows the initialized token and a new free slot.
        let err = SubscriberToken::find(Path::new(MODULE), None).unwrap_err();
        let TokenError::SeveralTokens { tokens } = &err else { panic!("{err}") };
        assert!(tokens.iter().any(|t| t.ends_with("(\"first\")")) && tokens.iter().any(|t| t.ends_with("(blank)")));
        let report = readiness(Path::new(MODULE));
        let first = report.slots.iter().find(|s| s.token.as_ref().is_some_and(|t| t.label == "first")).unwrap();
        // The report names every token's slot and serial, so the applicant can pick one.
        let text = report.to_string();
        let serial = &first.token.as_ref().unwrap().serial;
        assert!(!serial.is_empty() && serial.trim() == serial);
        assert!(text.contains("2 tokens are inserted: name the one to use with"), "{text}");
        assert!(text.ends_with("ready: nothing is missing; say which token with --slot"), "{text}");
        assert!(text.contains(&format!("--slot {} for serial {serial} (\"first\")", first.id)), "{text}");
        assert!(err.to_string().contains(&format!("--slot {} for serial {serial}", first.id)), "{err}");
        let token = SubscriberToken::find(Path::new(MODULE), Some(first.id)).unwrap();
        assert_eq!(token.label(), "first");
        let err = SubscriberToken::find(Path::new(MODULE), Some(4_000_000_000)).unwrap_err();
        assert!(matches!(err, TokenError::SlotNotFound { slot: 4_000_000_000, .. }), "{err}");
    });
}

/// Whether `pkcs11-tool` can log in to `label` with `pin`.
fn logs_in(label: &str, pin: &str) -> bool {
    Command::new("pkcs11-tool")
        .args(["--module", MODULE, "--token-label", label, "--login", "--pin", pin, "-O"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn pins_are_changed_and_unblocked_and_certificates_listed() {
    in_softhsm("subscriber::pins_are_changed_and_unblocked_and_certificates_listed", |hsm| {
        let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
        let unlock = token.initialize("ECA TEST", USER_PIN).unwrap();
        assert!(token.is_personalized().unwrap(), "the applicant chose the PIN");

        assert!(matches!(token.change_pin("000000", "111222"), Err(TokenError::WrongPin { .. })));
        assert!(matches!(token.change_pin(USER_PIN, "12"), Err(TokenError::PinLength { min: 4, max: 255 })));
        token.change_pin(USER_PIN, "111222").unwrap();
        assert!(logs_in("ECA TEST", "111222"));
        assert!(!logs_in("ECA TEST", USER_PIN), "the old PIN no longer works");

        // Wrong tries (SoftHSM2 counts them but never locks), then the unlock code sets a new PIN.
        for _ in 0..3 {
            assert!(matches!(token.login("999999"), Err(TokenError::WrongPin { .. })));
        }
        let err = token.unblock_pin("1234567890123456", "333444").unwrap_err();
        assert!(matches!(err, TokenError::WrongUnlockCode { .. }), "{err}");
        token.unblock_pin(unlock.expose(), "333444").unwrap();
        assert!(logs_in("ECA TEST", "333444"));
        assert!(!logs_in("ECA TEST", "111222"));

        // The certificates on the token are those OpenSC lists.
        assert!(token.certificates().unwrap().is_empty());
        let session = token.login("333444").unwrap();
        let ca = openssl_ca(&hsm.path(""));
        let key = session.generate_identity_key(KeyAlgorithm::P256, "identity ec").unwrap();
        let leaf = openssl_certify(&hsm.path(""), &key.certificate_request().unwrap());
        session.store_certificates(&key, &leaf, std::slice::from_ref(&ca)).unwrap();
        let listed = token.certificates().unwrap();
        let cert_objects = objects(&pkcs11_tool("ECA TEST", "333444", &["-O", "--type", "cert"]));
        let mut ours: Vec<String> = listed.iter().map(|c| format!("{} {}", c.label, hex::encode(&c.id))).collect();
        let mut theirs: Vec<String> = cert_objects
            .iter()
            .filter(|o| o.starts_with("Certificate Object"))
            .map(|o| {
                let field =
                    |name: &str| o.lines().find_map(|l| l.trim().strip_prefix(name)).map_or("", str::trim).to_owned();
                format!("{} {}", field("label:"), field("ID:"))
            })
            .collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 2);
        assert!(listed.iter().any(|c| c.der == leaf && c.id == key.id()) && listed.iter().any(|c| c.der == ca));
    });
}

#[test]
fn a_lost_answer_leaves_the_key_pair_and_the_transport_key_for_the_retry() {
    in_softhsm("subscriber::a_lost_answer_leaves_the_key_pair_and_the_transport_key_for_the_retry", |hsm| {
        let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
        token.initialize("ECA TEST", USER_PIN).unwrap();
        openssl_ca(&hsm.path(""));
        let (identity, transport_label) = ("ECA identity X", "signet transport ECA X");
        let (key_id, key_spki, transport_spki) = {
            let session = token.login(USER_PIN).unwrap();
            assert!(session.uncertified_identity_key(identity).unwrap().is_none());
            // A key imported under the label was not born on the token: it is never picked up.
            import_ec_key("ECA TEST", identity);
            assert!(session.uncertified_identity_key(identity).unwrap().is_none());
            let key = session.generate_identity_key(KeyAlgorithm::P256, identity).unwrap();
            let transport = session.transport_key(transport_label).unwrap();
            (key.id().to_vec(), key.public_key_spki().to_vec(), transport.spki().to_vec())
        };
        // The answer was lost; the next run finds both again.
        let session = token.login(USER_PIN).unwrap();
        let key = session.uncertified_identity_key(identity).unwrap().unwrap();
        assert_eq!((key.id(), key.public_key_spki()), (&key_id[..], &key_spki[..]));
        let transport = session.transport_key(transport_label).unwrap();
        assert_eq!(transport.spki(), transport_spki);
        let listing = objects(&pkcs11_tool("ECA TEST", USER_PIN, &["-O"]));
        let private = listing
            .iter()
            .find(|o| o.starts_with("Private Key Object; RSA") && o.contains(transport_label))
            .unwrap_or_else(|| panic!("{listing:#?}"));
        assert!(private.contains("Access:     sensitive, always sensitive, never extractable, local"), "{private}");
        assert!(private.contains("Usage:      unwrap"), "{private}");

        // The server's resent answer: the same encryption key, wrapped again for the same key.
        let encryption = signet_pki::escrow::EncryptionKey::generate().unwrap();
        let certificate = openssl_certify(&hsm.path(""), &encryption.csr().unwrap());
        let wrapped = encryption.wrap_for_transport(&transport_spki).unwrap();
        // A damaged answer keeps the transport key for another try.
        assert!(matches!(
            session.install_encryption_key(transport, b"garbage", &wrapped.wrapped_private_key, &certificate, "enc"),
            Err(TokenError::Unwrap(_))
        ));
        let transport = session.transport_key(transport_label).unwrap();
        assert_eq!(transport.spki(), transport_spki);
        session
            .install_encryption_key(transport, &wrapped.wrapped_key, &wrapped.wrapped_private_key, &certificate, "enc")
            .unwrap();
        assert!(!pkcs11_tool("ECA TEST", USER_PIN, &["-O"]).contains(transport_label), "deleted once installed");

        let leaf = openssl_certify(&hsm.path(""), &key.certificate_request().unwrap());
        session.store_certificates(&key, &leaf, &[]).unwrap();
        assert!(session.uncertified_identity_key(identity).unwrap().is_none());
    });
}

#[test]
fn a_piv_attestation_laid_out_like_ykcs11_is_read_for_the_key() {
    in_softhsm("subscriber::a_piv_attestation_laid_out_like_ykcs11_is_read_for_the_key", |hsm| {
        let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
        token.initialize("ECA TEST", USER_PIN).unwrap();
        let session = token.login(USER_PIN).unwrap();
        let key = session.generate_identity_key(KeyAlgorithm::P256, "identity ec").unwrap();
        assert_eq!(session.piv_attestation(&key).unwrap(), None, "SoftHSM2 exposes no attestation");

        // A YubiKey-like hierarchy, and an attestation certificate for the token's key.
        let pki = YubiKeyPki::new(&hsm.path("piv"));
        let spki = write(&pki.path("token.spki"), key.public_key_spki());
        pki.openssl(&["pkey", "-pubin", "-inform", "DER", "-in", &spki, "-out", "token.pub"]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-force_pubkey",
            "token.pub",
            "-CA",
            "f9.pem",
            "-CAkey",
            "f9.key",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "fixture.cnf",
            "-extensions",
            "yubikey",
            "-out",
            "token-attestation.pem",
        ]);
        let (attestation, f9) = (pki.der("token-attestation"), pki.der("f9"));

        // Objects as ykcs11 shows them: the slot's attestation under the slot's CKA_ID, and F9.
        let write_certificate = |label: &str, id: u8, der: &[u8]| {
            let path = write(&hsm.path(&format!("{id}.der")), der);
            pkcs11_tool(
                "ECA TEST",
                USER_PIN,
                &["--write-object", &path, "--type", "cert", "--label", label, "--id", &format!("{id:02x}")],
            );
        };
        // Another key's attestation in slot 9a proves nothing about this key.
        write_certificate("X.509 Certificate for PIV Attestation 9a", 1, &pki.der("leaf"));
        assert_eq!(session.piv_attestation(&key).unwrap(), None, "no F9 certificate yet");
        write_certificate("X.509 Certificate for PIV Attestation", 0x19, &f9);
        assert_eq!(session.piv_attestation(&key).unwrap(), None, "the 9a attestation is another key's");
        write_certificate("X.509 Certificate for PIV Attestation 9a", 1, &attestation);
        let chain = session.piv_attestation(&key).unwrap().unwrap();
        assert_eq!(chain, [attestation, f9]);

        let roots = AttestationRoots::from_pem(&std::fs::read_to_string(pki.path("root.pem")).unwrap()).unwrap();
        let verified = verify(&roots, &chain, key.public_key_spki(), time::OffsetDateTime::now_utc()).unwrap();
        assert_eq!((verified.serial, verified.slot.as_deref()), (20_000_000, Some("9a")));
    });
}

/// Imports a P-256 private key labelled `label` (sensitive, not extractable, but not generated
/// on the token), through the module this process loaded and logged in to.
fn import_ec_key(token: &str, label: &str) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    let pkcs11 = Pkcs11::new(MODULE).unwrap();
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label() == token)
        .unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    // prime256v1's OID, and a scalar well below the group order.
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut scalar = vec![0x11; 32];
    scalar[0] = 0x01;
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(p256),
            Attribute::Value(scalar),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(vec![0xee; 16]),
        ])
        .unwrap();
}
