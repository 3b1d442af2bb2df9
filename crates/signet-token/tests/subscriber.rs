//! The subscriber side of retrieval against a real SoftHSM2: readiness, initializing a blank
//! token, an identity key and its request, certificates written back — checked with OpenSC's
//! `pkcs11-tool` and OpenSSL rather than with the code under test.

mod common;

use std::path::Path;
use std::process::Command;

use common::{MODULE, in_softhsm, openssl_ca, openssl_certify, run_ok, write};
use signet_pki::KeyAlgorithm;
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
    in_softhsm("readiness_reports_a_blank_token_and_a_missing_module", |_| {
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
    in_softhsm("a_blank_token_is_initialized_with_the_pin_and_a_one_time_unlock_code", |_| {
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
    in_softhsm("identity_key_request_and_certificates_on_the_token", |hsm| {
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
    in_softhsm("slots_are_chosen_explicitly_when_several_tokens_are_present", |hsm| {
        hsm.init_token("first");
        // SoftHSM2 now shows the initialized token and a new free slot.
        let err = SubscriberToken::find(Path::new(MODULE), None).unwrap_err();
        let TokenError::SeveralTokens { tokens } = &err else { panic!("{err}") };
        assert!(tokens.iter().any(|t| t.ends_with("(\"first\")")) && tokens.iter().any(|t| t.ends_with("(blank)")));
        let report = readiness(Path::new(MODULE));
        let first = report.slots.iter().find(|s| s.token.as_ref().is_some_and(|t| t.label == "first")).unwrap();
        let token = SubscriberToken::find(Path::new(MODULE), Some(first.id)).unwrap();
        assert_eq!(token.label(), "first");
        let err = SubscriberToken::find(Path::new(MODULE), Some(4_000_000_000)).unwrap_err();
        assert!(matches!(err, TokenError::SlotNotFound { slot: 4_000_000_000, .. }), "{err}");
    });
}
