//! [`Pkcs11RecoveryKey`]: the key recovery key (KRK) held on an HSM, behind
//! [`signet_pki::escrow::RecoveryKey`], so escrowed encryption keys are opened without the
//! KRK ever leaving the token.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::Session;
use signet_pki::KeyAlgorithm;
use signet_pki::escrow::{EscrowError, RecoveryKey};

use crate::config::Pkcs11KeyConfig;
use crate::error::{TokenError, describe, device};
use crate::signer::{
    KeyUsage, discard, generate_key_pair, protected_private_key, public_key_info, refuse_existing_label, rsa_oaep_sha1,
};
use crate::token::Token;

/// What the key encrypts to itself on open and generate, to prove the private key works and
/// matches the public key.
const SELF_TEST_MESSAGE: &[u8] = b"signet-token self-test: this key decrypts what its public key encrypts";

/// A key recovery key on a PKCS#11 token: an RSA private key that may only decrypt. This
/// holds a handle to it, its public key and one logged-in session.
pub struct Pkcs11RecoveryKey {
    token_label: String,
    key_label: String,
    key: ObjectHandle,
    spki: Vec<u8>,
    /// A PKCS#11 session must not be used by two threads at once; recoveries are rare and
    /// approved one by one, so one session is enough.
    session: Mutex<Session>,
}

impl fmt::Debug for Pkcs11RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11RecoveryKey")
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11RecoveryKey {
    /// Finds the private key labelled `key_label` on the token labelled `token_label`, logged
    /// in with the user PIN `pin`, as [`crate::Pkcs11Signer::open`] does for a CA key, and
    /// proves by decrypting a test message that it works.
    ///
    /// Refuses keys that could leave the token in clear ([`TokenError::KeyNotProtected`]),
    /// and keys that are not RSA or may not decrypt ([`TokenError::UnsupportedKey`]).
    pub fn open(module: &Path, token_label: &str, key_label: &str, pin: &str) -> Result<Self, TokenError> {
        let cfg = config(module, token_label, key_label, pin);
        let token = Token::connect(&cfg)?;
        let session = token.open_session(false)?;
        let (key, _) = protected_private_key(&session, &cfg)?;
        let wanted = [AttributeType::KeyType, AttributeType::Decrypt];
        let (mut key_type, mut decrypt) = (None, false);
        for attr in session.get_attributes(key, &wanted).map_err(device)? {
            match attr {
                Attribute::KeyType(v) => key_type = Some(v),
                Attribute::Decrypt(v) => decrypt = v,
                _ => {}
            }
        }
        if key_type != Some(KeyType::RSA) {
            return Err(TokenError::UnsupportedKey(format!("{key_label:?} is not an RSA key, so it cannot do OAEP")));
        }
        if !decrypt {
            return Err(TokenError::UnsupportedKey(format!("{key_label:?} may not decrypt (CKA_DECRYPT is false)")));
        }
        // An RSA private key object carries its modulus and public exponent.
        let (_, spki) = public_key_info(&session, key, key_label)?;
        self_test(&session, key, &spki, key_label)?;
        Ok(Self::new(&cfg, key, spki, session))
    }

    /// Generates an RSA-3072 key recovery key on the token labelled `token_label`: a token
    /// object, private, sensitive, never extractable, that may decrypt and do nothing else
    /// (no signing, no unwrapping of keys into the token); its public key may only encrypt.
    /// Both are labelled `key_label` and share a random `CKA_ID`.
    ///
    /// Refuses with [`TokenError::KeyExists`] if a key labelled `key_label` is already on the
    /// token. A new key that fails its self-test is destroyed.
    pub fn generate(module: &Path, token_label: &str, key_label: &str, pin: &str) -> Result<Self, TokenError> {
        let cfg = config(module, token_label, key_label, pin);
        let token = Token::connect(&cfg)?;
        let session = token.open_session(true)?;
        refuse_existing_label(&session, &cfg)?;
        let pair = generate_key_pair(&session, KeyAlgorithm::Rsa3072, KeyUsage::Decrypt, true, key_label)?;
        if let Err(e) = self_test(&session, pair.private, &pair.spki, key_label) {
            discard(&session, [pair.private, pair.public]);
            return Err(e);
        }
        Ok(Self::new(&cfg, pair.private, pair.spki, session))
    }

    fn new(cfg: &Pkcs11KeyConfig, key: ObjectHandle, spki: Vec<u8>, session: Session) -> Self {
        Self {
            token_label: cfg.token_label.clone(),
            key_label: cfg.key_label.clone(),
            key,
            spki,
            session: Mutex::new(session),
        }
    }

    /// The token's label, for logs.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The key's `CKA_LABEL`, for logs.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }
}

impl RecoveryKey for Pkcs11RecoveryKey {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, EscrowError> {
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        session.decrypt(&rsa_oaep_sha1(), self.key, ciphertext).map_err(|e| match e {
            // The ciphertext is at fault, not the device: a damaged record or another key's.
            // SoftHSM2 reports every failed decryption, bad OAEP padding included, as
            // CKR_GENERAL_ERROR.
            CkError::Pkcs11(
                RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange | RvError::GeneralError,
                _,
            ) => EscrowError::Decryption,
            other => EscrowError::Device(describe(&other)),
        })
    }
}

fn config(module: &Path, token_label: &str, key_label: &str, pin: &str) -> Pkcs11KeyConfig {
    Pkcs11KeyConfig {
        module: module.to_owned(),
        token_label: token_label.to_owned(),
        pin: pin.to_owned(),
        key_label: key_label.to_owned(),
    }
}

/// Encrypts a fixed message to `spki` in software and decrypts it with `key` on the token.
fn self_test(session: &Session, key: ObjectHandle, spki: &[u8], key_label: &str) -> Result<(), TokenError> {
    let bad_key = |reason: &str| TokenError::PublicKey { key: key_label.to_owned(), reason: reason.to_owned() };
    let public = PublicEncryptingKey::from_der(spki)
        .ok()
        .and_then(|k| OaepPublicEncryptingKey::new(k).ok())
        .ok_or_else(|| bad_key("not an RSA public key for OAEP"))?;
    let mut out = vec![0; public.ciphertext_size()];
    let ciphertext = public
        .encrypt(&OAEP_SHA1_MGF1SHA1, SELF_TEST_MESSAGE, &mut out, None)
        .map_err(|_| bad_key("OAEP encryption to it failed"))?;
    let decrypted = session.decrypt(&rsa_oaep_sha1(), key, ciphertext).map_err(device)?;
    if decrypted != SELF_TEST_MESSAGE {
        return Err(TokenError::DecryptSelfTest { key: key_label.to_owned() });
    }
    Ok(())
}
