//! Token stock against a real SoftHSM2: the RA provisions a blank token (transport PINs and a
//! shipment key), the subscriber takes it over with their own PIN and unlock code and proves
//! with the shipment key that it is the shipped token — checked with `pkcs11-tool` and OpenSSL.

use std::path::Path;
use std::process::Command;

use crate::common::{MODULE, in_softhsm, run_ok, write};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use signet_pki::KeyAlgorithm;
use signet_testkit::pkcs11_objects as objects;
use signet_token::TokenError;
use signet_token::stock::{SHIPMENT_KEY_LABEL, provision};
use signet_token::subscriber::{SubscriberToken, readiness};

const NEW_PIN: &str = "135790";

/// `pkcs11-tool` on the token labelled `label`, logged in with `pin`; its success and output.
fn pkcs11_tool(label: &str, pin: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("pkcs11-tool")
        .args(["--module", MODULE, "--token-label", label, "--login", "--pin", pin])
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The slot of the token labelled `label`.
fn slot_of(label: &str) -> u64 {
    let report = readiness(Path::new(MODULE));
    report.slots.iter().find(|s| s.token.as_ref().is_some_and(|t| t.label == label)).unwrap().id
}

/// The slot of a blank token, if SoftHSM2 shows one.
fn blank_slot() -> u64 {
    let report = readiness(Path::new(MODULE));
    report.slots.iter().find(|s| s.token.as_ref().is_some_and(|t| !t.initialized)).unwrap().id
}

#[test]
fn provisioned_token_is_personalized_and_proves_it_was_shipped() {
    in_softhsm("stock::provisioned_token_is_personalized_and_proves_it_was_shipped", |hsm| {
        let shipped = provision(Path::new(MODULE), None, "SIGNET STOCK").unwrap();
        assert_eq!((shipped.manufacturer.as_str(), shipped.model.as_str()), ("SoftHSM project", "SoftHSM v2"));
        assert!(!shipped.serial.is_empty() && shipped.serial.trim() == shipped.serial);
        assert!(!format!("{shipped:?}").contains(shipped.user_pin.expose()));
        assert!(!format!("{shipped:?}").contains(shipped.so_pin.expose()));
        let (user, so) = (shipped.user_pin.expose().to_owned(), shipped.so_pin.expose().to_owned());
        assert_eq!((user.len(), so.len()), (16, 16));

        // The shipment key as OpenSC sees it: on the token, never extractable, sign only.
        let (ok, listing) = pkcs11_tool("SIGNET STOCK", &user, &["-O"]);
        assert!(ok, "{listing}");
        let listing = objects(&listing);
        let key = listing
            .iter()
            .find(|o| {
                o.starts_with("Private Key Object; EC") && o.contains(&format!("label:      {SHIPMENT_KEY_LABEL}"))
            })
            .unwrap_or_else(|| panic!("{listing:#?}"));
        assert!(key.contains("Access:     sensitive, always sensitive, never extractable, local"), "{key}");
        assert!(key.contains("Usage:      sign\n") || key.ends_with("Usage:      sign"), "{key}");

        // Only blank tokens go into stock.
        let slot = slot_of("SIGNET STOCK");
        let err = provision(Path::new(MODULE), Some(slot), "again").unwrap_err();
        assert!(matches!(&err, TokenError::StockNotBlank { serial, .. } if *serial == shipped.serial), "{err}");
        assert!(err.to_string().contains("only blank tokens go into stock"), "{err}");

        let token = SubscriberToken::find(Path::new(MODULE), Some(slot)).unwrap();
        assert_eq!(token.serial(), shipped.serial);
        assert!(!token.is_personalized().unwrap() && token.is_from_stock().unwrap());
        // A wrong transport unlock code changes nothing (and, the transport PIN working, looks
        // like someone else's change).
        let err = token.personalize(&user, "wrong-so-pin", NEW_PIN).unwrap_err();
        assert!(matches!(err, TokenError::UnlockCodeChanged { .. }), "{err}");
        assert!(pkcs11_tool("SIGNET STOCK", &user, &["-O"]).0);

        let unlock = token.personalize(&user, &so, NEW_PIN).unwrap();
        assert!(token.is_personalized().unwrap());
        assert!(pkcs11_tool("SIGNET STOCK", NEW_PIN, &["-O"]).0);
        assert!(!pkcs11_tool("SIGNET STOCK", &user, &["-O"]).0, "the transport PIN no longer works");
        // The unlock code is the SO PIN now, and the transport SO PIN is not.
        let so_login = |pin: &str| {
            Command::new("pkcs11-tool")
                .args(["--module", MODULE, "--token-label", "SIGNET STOCK", "--login", "--login-type", "so"])
                .args(["--so-pin", pin, "--init-pin", "--new-pin", NEW_PIN])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(!so_login(&so));
        assert!(so_login(unlock.expose()));
        let err = token.personalize(&user, &so, NEW_PIN).unwrap_err();
        assert!(matches!(err, TokenError::AlreadyPersonalized { .. }), "{err}");

        // The shipment key signs; OpenSSL verifies against the SPKI the RA recorded.
        let session = token.login(NEW_PIN).unwrap();
        let challenge = b"signet shipment proof: challenge bound to the CSR";
        let signature = session.shipment_sign(challenge).unwrap();
        assert!(signet_pki::signer::verify_signature(KeyAlgorithm::P256, &shipped.shipment_key, challenge, &signature));
        let key_file = write(&hsm.path("shipment.der"), &shipped.shipment_key);
        let signature_file = write(&hsm.path("proof.sig"), &signature);
        let message_file = write(&hsm.path("challenge"), challenge);
        let out = run_ok(Command::new("openssl").args([
            "dgst",
            "-sha256",
            "-verify",
            &key_file,
            "-keyform",
            "DER",
            "-signature",
            &signature_file,
            &message_file,
        ]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    });
}

#[test]
fn interrupted_and_tampered_personalizations_are_told_apart() {
    in_softhsm("stock::interrupted_and_tampered_personalizations_are_told_apart", |_| {
        // Stopped after the PIN was set: running it again finishes. (The PINs are changed in
        // this process: SoftHSM2 keeps a token's PINs in memory once loaded.)
        let first = provision(Path::new(MODULE), None, "FIRST").unwrap();
        let (user, so) = (first.user_pin.expose(), first.so_pin.expose());
        set_pin(slot_of("FIRST"), UserType::User, user, NEW_PIN);
        let token = SubscriberToken::find(Path::new(MODULE), Some(slot_of("FIRST"))).unwrap();
        let unlock = token.personalize(user, so, NEW_PIN).unwrap();
        assert!(token.is_personalized().unwrap() && !unlock.expose().is_empty());
        assert!(pkcs11_tool("FIRST", NEW_PIN, &["-O"]).0);

        // The unlock code changed behind the subscriber's back, the PIN not: tampering.
        let second = provision(Path::new(MODULE), Some(blank_slot()), "SECOND").unwrap();
        let (user, so) = (second.user_pin.expose(), second.so_pin.expose());
        set_pin(slot_of("SECOND"), UserType::So, so, "99999999");
        let token = SubscriberToken::find(Path::new(MODULE), Some(slot_of("SECOND"))).unwrap();
        let err = token.personalize(user, so, NEW_PIN).unwrap_err();
        assert!(matches!(err, TokenError::UnlockCodeChanged { .. }), "{err}");
        assert!(err.to_string().contains("call the RA"), "{err}");
        assert!(!token.is_personalized().unwrap());

        // Stopped after the unlock code was changed, before the token was marked.
        let third = provision(Path::new(MODULE), Some(blank_slot()), "THIRD").unwrap();
        let (user, so) = (third.user_pin.expose(), third.so_pin.expose());
        set_pin(slot_of("THIRD"), UserType::User, user, NEW_PIN);
        set_pin(slot_of("THIRD"), UserType::So, so, "99999999");
        let token = SubscriberToken::find(Path::new(MODULE), Some(slot_of("THIRD"))).unwrap();
        let err = token.personalize(user, so, NEW_PIN).unwrap_err();
        assert!(matches!(err, TokenError::PersonalizationInterrupted { .. }), "{err}");

        hsm_token_without_shipment_key();
    });
}

/// Changes a PIN the way an interrupted run or a tamperer would, through the module this
/// process already loaded.
fn set_pin(slot: u64, user: UserType, old: &str, new: &str) {
    let pkcs11 = Pkcs11::new(MODULE).unwrap();
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = pkcs11.get_all_slots().unwrap().into_iter().find(|s| s.id() == slot).unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    session.login(user, Some(&AuthPin::from(old))).unwrap();
    session.set_pin(&AuthPin::from(old), &AuthPin::from(new)).unwrap();
    session.logout().unwrap();
}

/// A token initialized by the subscriber (not from stock) is personalized, and has no
/// shipment key to sign with.
fn hsm_token_without_shipment_key() {
    let mut token = SubscriberToken::find(Path::new(MODULE), Some(blank_slot())).unwrap();
    token.initialize("OWN", NEW_PIN).unwrap();
    assert!(token.is_personalized().unwrap() && !token.is_from_stock().unwrap());
    let err = token.login(NEW_PIN).unwrap().shipment_sign(b"x").unwrap_err();
    assert!(matches!(err, TokenError::NoShipmentKey { .. }), "{err}");
}
