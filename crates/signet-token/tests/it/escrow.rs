//! Escrowed encryption keys against a real SoftHSM2: a server-generated key unwrapped onto the
//! subscriber's token through a session-only transport key, and a key recovery key held on an
//! HSM — checked with OpenSC's `pkcs11-tool`, OpenSSL and cryptoki itself rather than with the
//! code under test.

use std::path::Path;
use std::process::Command;

use crate::common::{MODULE, PIN, SoftHsm, in_softhsm, openssl_ca, openssl_certify, run_ok, write};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::Session;
use signet_pki::KeyAlgorithm;
use signet_pki::escrow::{EncryptionKey, EscrowError, RecoveryKey, RecoveryKeyPublic, open};
use signet_testkit::pkcs11_objects as objects;
use signet_token::subscriber::{SubscriberToken, TokenSession};
use signet_token::{Pkcs11RecoveryKey, Pkcs11Signer, TokenError};

const TOKEN: &str = "ECA TEST";
const LABEL: &str = "encryption";

/// Initializes the blank SoftHSM2 token as retrieval does, and logs in.
fn subscriber_session() -> TokenSession {
    let mut token = SubscriberToken::find(Path::new(MODULE), None).unwrap();
    token.initialize(TOKEN, PIN).unwrap();
    token.login(PIN).unwrap()
}

/// A new session on `token`, opened with cryptoki directly. It sees this process's session
/// objects, which `pkcs11-tool` (another process) never can.
fn raw_session(token: &str) -> Session {
    let pkcs11 = Pkcs11::new(MODULE).unwrap();
    if let Err(e) = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // The code under test initialized the module already; that is expected.
        assert!(e.to_string().contains("already been initialized"), "{e}");
    }
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label() == token)
        .unwrap();
    // Login state belongs to the process: the code under test logged in already.
    pkcs11.open_ro_session(slot).unwrap()
}

/// The session (not token) objects this process holds on `token`.
fn session_objects(token: &str) -> usize {
    raw_session(token).find_objects(&[Attribute::Token(false)]).unwrap().len()
}

/// The objects `pkcs11-tool -O` lists on the subscriber token, without its own chatter.
fn token_objects(hsm: &SoftHsm) -> Vec<String> {
    objects(&hsm.pkcs11_tool(TOKEN, &["-O"])).into_iter().filter(|o| o.contains(" Object")).collect()
}

/// A field (`Usage:`, `Access:`, …) of one `pkcs11-tool -O` object.
fn field(object: &str, name: &str) -> String {
    object
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in {object}"))
}

#[test]
fn an_escrowed_key_is_unwrapped_onto_the_token_and_decrypts_there() {
    in_softhsm("escrow::an_escrowed_key_is_unwrapped_onto_the_token_and_decrypts_there", |hsm| {
        let session = subscriber_session();
        openssl_ca(&hsm.path(""));

        let transport = session.generate_transport_key().unwrap();
        let spki = write(&hsm.path("transport.der"), transport.spki());
        let text = run_ok(Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in", &spki, "-text"]));
        assert!(String::from_utf8_lossy(&text.stdout).contains("Public-Key: (2048 bit)"));
        // The pair exists only in the session, and its private half can unwrap and nothing else.
        let raw = raw_session(TOKEN);
        assert_eq!(session_objects(TOKEN), 2);
        let private = raw.find_objects(&[Attribute::Token(false), Attribute::Class(ObjectClass::PRIVATE_KEY)]).unwrap();
        let flags = [
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Unwrap,
            AttributeType::Decrypt,
            AttributeType::Sign,
            AttributeType::Derive,
        ];
        assert_eq!(
            raw.get_attributes(private[0], &flags).unwrap(),
            [
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Unwrap(true),
                Attribute::Decrypt(false),
                Attribute::Sign(false),
                Attribute::Derive(false),
            ]
        );

        // The server's side: generate, certify, wrap for the transport key.
        let key = EncryptionKey::generate().unwrap();
        let certificate = openssl_certify(&hsm.path(""), &key.csr().unwrap());
        let wrapped = key.wrap_for_transport(transport.spki()).unwrap();
        let id = session
            .install_encryption_key(transport, &wrapped.wrapped_key, &wrapped.wrapped_private_key, &certificate, LABEL)
            .unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(session_objects(TOKEN), 0, "the transport key pair and the AES key are destroyed");

        // OpenSC sees exactly the key, its public key and its certificate, under one ID and label.
        let id_hex = hex::encode(&id);
        let listing = token_objects(hsm);
        let mut kinds: Vec<&str> = listing.iter().map(|o| o.split(';').next().unwrap()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["Certificate Object", "Private Key Object", "Public Key Object"], "{listing:#?}");
        for object in &listing {
            assert_eq!(field(object, "ID:"), id_hex, "{object}");
            assert_eq!(field(object, "label:"), LABEL, "{object}");
        }
        let private = listing.iter().find(|o| o.starts_with("Private Key Object")).unwrap();
        assert!(private.starts_with("Private Key Object; RSA"), "{private}");
        assert_eq!(field(private, "Usage:"), "decrypt, unwrap", "{private}");
        // Sensitive and not extractable, but neither "never extractable" nor "local": PKCS#11
        // keeps those for keys born on the token, and this one was born on the server, which
        // is what lets it be escrowed.
        assert_eq!(field(private, "Access:"), "sensitive", "{private}");
        let public = listing.iter().find(|o| o.starts_with("Public Key Object")).unwrap();
        assert_eq!(field(public, "Usage:"), "encrypt, wrap", "{public}");

        // The certificate reads back byte for byte; the private key's secret parts do not
        // (CKR_ATTRIBUTE_SENSITIVE: cryptoki returns none of them).
        let read = hsm.path("read.der").to_str().unwrap().to_owned();
        hsm.pkcs11_tool(TOKEN, &["--read-object", "--type", "cert", "--id", &id_hex, "-o", &read]);
        assert_eq!(std::fs::read(&read).unwrap(), certificate);
        let private =
            raw.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id.clone())]).unwrap();
        let secret = [AttributeType::PrivateExponent, AttributeType::Prime1, AttributeType::Prime2];
        assert_eq!(raw.get_attributes(private[0], &secret).unwrap(), []);

        // OpenSSL encrypts to the certificate's key; the token decrypts.
        let cert = write(&hsm.path("enc.der"), &certificate);
        let pem = run_ok(Command::new("openssl").args(["x509", "-inform", "DER", "-in", &cert, "-pubkey", "-noout"]));
        let pem = write(&hsm.path("enc.pub.pem"), &pem.stdout);
        let message = b"a content-encryption key for S/MIME";
        let plain = write(&hsm.path("message"), message);
        let encrypted = hsm.path("message.enc").to_str().unwrap().to_owned();
        run_ok(Command::new("openssl").args([
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &pem,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha1",
            "-in",
            &plain,
            "-out",
            &encrypted,
        ]));
        let decrypted = hsm.path("message.dec").to_str().unwrap().to_owned();
        hsm.pkcs11_tool(
            TOKEN,
            &[
                "--decrypt",
                "-m",
                "RSA-PKCS-OAEP",
                "--hash-algorithm",
                "SHA-1",
                "--mgf",
                "MGF1-SHA1",
                "--id",
                &id_hex,
                "--input-file",
                &encrypted,
                "--output-file",
                &decrypted,
            ],
        );
        assert_eq!(std::fs::read(&decrypted).unwrap(), message);
    });
}

#[test]
fn a_certificate_for_another_key_leaves_nothing_on_the_token() {
    in_softhsm("escrow::a_certificate_for_another_key_leaves_nothing_on_the_token", |hsm| {
        let session = subscriber_session();
        openssl_ca(&hsm.path(""));
        let transport = session.generate_transport_key().unwrap();
        let key = EncryptionKey::generate().unwrap();
        let other = EncryptionKey::generate().unwrap();
        let foreign = openssl_certify(&hsm.path(""), &other.csr().unwrap());
        let wrapped = key.wrap_for_transport(transport.spki()).unwrap();
        let err = session
            .install_encryption_key(transport, &wrapped.wrapped_key, &wrapped.wrapped_private_key, &foreign, LABEL)
            .unwrap_err();
        assert!(matches!(err, TokenError::Certificate(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot write the certificate to the token: it certifies another public key than the one unwrapped"
        );
        assert_eq!(token_objects(hsm), Vec::<String>::new());
        assert_eq!(session_objects(TOKEN), 0);
    });
}

#[test]
fn a_damaged_or_misdirected_wrapped_key_leaves_nothing_on_the_token() {
    in_softhsm("escrow::a_damaged_or_misdirected_wrapped_key_leaves_nothing_on_the_token", |hsm| {
        let session = subscriber_session();
        openssl_ca(&hsm.path(""));
        let key = EncryptionKey::generate().unwrap();
        let certificate = openssl_certify(&hsm.path(""), &key.csr().unwrap());

        // One flipped bit in the RFC 5649 wrapping fails its integrity check.
        let transport = session.generate_transport_key().unwrap();
        let wrapped = key.wrap_for_transport(transport.spki()).unwrap();
        let mut damaged = wrapped.wrapped_private_key.clone();
        damaged[20] ^= 1;
        let err =
            session.install_encryption_key(transport, &wrapped.wrapped_key, &damaged, &certificate, LABEL).unwrap_err();
        assert!(matches!(err, TokenError::Unwrap(_)), "{err}");
        assert!(err.to_string().starts_with("the server's wrapped encryption key does not unwrap on the token: "));

        // Wrapped for another token's transport key: the OAEP layer fails.
        let elsewhere = session.generate_transport_key().unwrap();
        let transport = session.generate_transport_key().unwrap();
        let wrapped = key.wrap_for_transport(elsewhere.spki()).unwrap();
        let err = session
            .install_encryption_key(transport, &wrapped.wrapped_key, &wrapped.wrapped_private_key, &certificate, LABEL)
            .unwrap_err();
        assert!(matches!(err, TokenError::Unwrap(_)), "{err}");
        // Only the unused transport key pair is left, in the session.
        assert_eq!(session_objects(TOKEN), 2);
        drop(elsewhere);
        drop(session);
        assert_eq!(session_objects(TOKEN), 0, "session objects end with their session");
        assert_eq!(token_objects(hsm), Vec::<String>::new());
    });
}

#[test]
fn the_key_recovery_key_on_an_hsm_opens_escrows() {
    in_softhsm("escrow::the_key_recovery_key_on_an_hsm_opens_escrows", |hsm| {
        hsm.init_token("krk");
        let module = Path::new(MODULE);
        let krk = Pkcs11RecoveryKey::generate(module, "krk", "krk-2026", PIN).unwrap();

        let listing = objects(&hsm.pkcs11_tool("krk", &["-O"]));
        let private = listing.iter().find(|o| o.starts_with("Private Key Object")).unwrap();
        assert!(private.starts_with("Private Key Object; RSA"), "{private}");
        assert_eq!(field(private, "Usage:"), "decrypt", "{private}");
        assert_eq!(field(private, "Access:"), "sensitive, always sensitive, never extractable, local", "{private}");
        let public = listing.iter().find(|o| o.starts_with("Public Key Object")).unwrap();
        assert_eq!(field(public, "Usage:"), "encrypt", "{public}");
        let spki = write(&hsm.path("krk.der"), krk.public_key_spki());
        let text = run_ok(Command::new("openssl").args(["pkey", "-pubin", "-inform", "DER", "-in", &spki, "-text"]));
        assert!(String::from_utf8_lossy(&text.stdout).contains("Public-Key: (3072 bit)"));

        let key = EncryptionKey::generate().unwrap();
        let escrow = key.escrow(&RecoveryKeyPublic::from_spki(krk.public_key_spki()).unwrap()).unwrap();
        assert_eq!(open(&escrow, &krk).unwrap().spki(), key.spki());
        // A ciphertext that is not the key's is the record's fault, not the device's.
        assert_eq!(krk.decrypt(&[0x55; 384]).unwrap_err(), EscrowError::Decryption);

        let again = Pkcs11RecoveryKey::open(module, "krk", "krk-2026", PIN).unwrap();
        assert_eq!(again.public_key_spki(), krk.public_key_spki());
        assert_eq!(open(&escrow, &again).unwrap().spki(), key.spki());

        let err = Pkcs11RecoveryKey::generate(module, "krk", "krk-2026", PIN).unwrap_err();
        assert!(matches!(err, TokenError::KeyExists { .. }), "{err}");
        let err = Pkcs11RecoveryKey::open(module, "krk", "krk-2025", PIN).unwrap_err();
        assert!(matches!(err, TokenError::KeyNotFound { .. }), "{err}");
        // A signing key is not a key recovery key.
        Pkcs11Signer::generate(&hsm.config("krk", "signing"), KeyAlgorithm::Rsa3072).unwrap();
        let err = Pkcs11RecoveryKey::open(module, "krk", "signing", PIN).unwrap_err();
        assert_eq!(err.to_string(), r#"unsupported key type: "signing" may not decrypt (CKA_DECRYPT is false)"#);

        // A key recovery key OpenSC made opens too.
        hsm.pkcs11_tool(
            "krk",
            &["--keypairgen", "--key-type", "rsa:3072", "--usage-decrypt", "--sensitive", "--label", "by-opensc"],
        );
        let theirs = Pkcs11RecoveryKey::open(module, "krk", "by-opensc", PIN).unwrap();
        let escrow = key.escrow(&RecoveryKeyPublic::from_spki(theirs.public_key_spki()).unwrap()).unwrap();
        assert_eq!(open(&escrow, &theirs).unwrap().spki(), key.spki());
        assert_eq!(open(&escrow, &krk).unwrap_err(), EscrowError::WrongRecoveryKey);
    });
}

#[test]
fn a_wrong_pin_for_the_key_recovery_key_is_reported_as_such() {
    in_softhsm("escrow::a_wrong_pin_for_the_key_recovery_key_is_reported_as_such", |hsm| {
        hsm.init_token("krk");
        let module = Path::new(MODULE);
        // A wrong PIN must be tried before any right one: login state is per process.
        let err = Pkcs11RecoveryKey::generate(module, "krk", "krk-2026", "0000").unwrap_err();
        assert!(matches!(err, TokenError::WrongPin { .. }), "{err}");
        let err = Pkcs11RecoveryKey::open(module, "krk", "krk-2026", "0000").unwrap_err();
        assert_eq!(err.to_string(), r#"wrong PIN for token "krk""#);
    });
}
