//! [`Pkcs11Signer`]: a CA key held on a PKCS#11 token, behind [`signet_pki::Signer`].

use std::sync::{Condvar, Mutex, PoisonError};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use signet_pki::signer::verify_signature;
use signet_pki::{KeyAlgorithm, SignError, Signer};

use crate::config::Pkcs11KeyConfig;
use crate::encoding::{self, PublicKeyError};
use crate::error::{TokenError, device};
use crate::token::Token;

/// What the key signs on open and generate, to prove the private key works and matches
/// the public key.
const SELF_TEST_MESSAGE: &[u8] = b"signet-token self-test: this key signs and matches its public key";

/// A private key on a PKCS#11 token (an HSM, a smart card, SoftHSM2) that signs X.509
/// structures. The key never leaves the token; this holds only a handle to it, its
/// public key, and a few logged-in sessions.
///
/// Signing is thread-safe and parallel: each call borrows an idle session (a PKCS#11
/// session must not be used by two threads at once), opening one if none is idle, up to
/// one per CPU; beyond that, callers wait for a session to come back. On SoftHSM2 this
/// beat one mutex-guarded session (which serializes every signature) and a session per
/// signature (which pays `C_OpenSession` each time).
pub struct Pkcs11Signer {
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    token: Token,
    key_label: String,
    key: ObjectHandle,
    sessions: Mutex<SessionPool>,
    session_returned: Condvar,
    max_sessions: usize,
}

struct SessionPool {
    idle: Vec<Session>,
    /// Sessions in existence: idle plus borrowed.
    open: usize,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("algorithm", &self.algorithm)
            .field("token_label", &self.token.label())
            .field("key_label", &self.key_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Generates a key pair on the token and returns a signer for it.
    ///
    /// The private key is a token object that is private, sensitive, non-extractable and
    /// may only sign (`CKA_DECRYPT`, `CKA_UNWRAP` and `CKA_DERIVE` false: SoftHSM2 would
    /// otherwise allow them); the public key may only verify. Both get `cfg.key_label`
    /// and the same random 16-byte `CKA_ID`. RSA keys use the exponent 65537; EC keys a
    /// named curve.
    ///
    /// Refuses with [`TokenError::KeyExists`] if a key labelled `cfg.key_label` is
    /// already on the token. A new key that fails its self-test is destroyed.
    pub fn generate(cfg: &Pkcs11KeyConfig, algorithm: KeyAlgorithm) -> Result<Self, TokenError> {
        Self::generate_with_id(cfg, algorithm, random_id()?)
    }

    /// [`Self::generate`] with a chosen `CKA_ID`: a PIV module (ykcs11) picks the key's slot
    /// by it and ignores the label.
    pub(crate) fn generate_with_id(
        cfg: &Pkcs11KeyConfig,
        algorithm: KeyAlgorithm,
        id: Vec<u8>,
    ) -> Result<Self, TokenError> {
        let token = Token::connect(cfg)?;
        let session = token.open_session(true)?;
        refuse_existing_label(&session, cfg)?;
        let pair = generate_key_pair_with_id(&session, algorithm, KeyUsage::Sign, true, &cfg.key_label, id)?;
        let signer = Self::new(cfg, token, pair.private, algorithm, pair.spki);
        match signer.self_test() {
            Ok(()) => Ok(signer),
            Err(e) => {
                discard(&session, [pair.private, pair.public]);
                Err(e)
            }
        }
    }

    /// A signer for a private key already found on the token (by handle, so that keys sharing
    /// a label are told apart), with its public key read from `public` (or, for RSA, the
    /// private key itself). The pair must pass the self-test.
    pub(crate) fn for_key(
        cfg: &Pkcs11KeyConfig,
        private: ObjectHandle,
        public: Option<ObjectHandle>,
    ) -> Result<Self, TokenError> {
        let token = Token::connect(cfg)?;
        let session = token.open_session(false)?;
        let (algorithm, spki) = public_key_info(&session, public.unwrap_or(private), &cfg.key_label)?;
        drop(session);
        let signer = Self::new(cfg, token, private, algorithm, spki);
        signer.self_test()?;
        Ok(signer)
    }

    /// Finds the private key labelled `cfg.key_label` on the token, reads its public key
    /// (the public key object with the same `CKA_ID`, else the same label; for RSA, the
    /// private key's own modulus and exponent if there is none), works out its
    /// [`KeyAlgorithm`], and proves with a test signature that the pair works.
    ///
    /// Refuses keys that could leave the token in clear ([`TokenError::KeyNotProtected`]).
    pub fn open(cfg: &Pkcs11KeyConfig) -> Result<Self, TokenError> {
        let token = Token::connect(cfg)?;
        let session = token.open_session(false)?;
        let label = cfg.key_label.clone().into_bytes();

        let (private_key, id) = protected_private_key(&session, cfg)?;
        let may_sign = session.get_attributes(private_key, &[AttributeType::Sign]).map_err(device)?;
        if may_sign != [Attribute::Sign(true)] {
            return Err(TokenError::UnsupportedKey(format!("{:?} may not sign (CKA_SIGN is false)", cfg.key_label)));
        }

        let mut public_key = None;
        let by_id = (!id.is_empty()).then_some(Attribute::Id(id));
        for selector in by_id.into_iter().chain([Attribute::Label(label)]) {
            let found = session.find_objects(&[Attribute::Class(ObjectClass::PUBLIC_KEY), selector]).map_err(device)?;
            if let [key] = found.as_slice() {
                public_key = Some(*key);
                break;
            }
        }
        // An RSA private key carries its public half; an EC one (before PKCS#11 3.0) not.
        let (algorithm, spki) = public_key_info(&session, public_key.unwrap_or(private_key), &cfg.key_label)?;
        let signer = Self::new(cfg, token, private_key, algorithm, spki);
        signer.self_test()?;
        Ok(signer)
    }

    fn new(cfg: &Pkcs11KeyConfig, token: Token, key: ObjectHandle, algorithm: KeyAlgorithm, spki: Vec<u8>) -> Self {
        Self {
            algorithm,
            spki,
            token,
            key_label: cfg.key_label.clone(),
            key,
            sessions: Mutex::new(SessionPool { idle: Vec::new(), open: 0 }),
            session_returned: Condvar::new(),
            max_sessions: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// Signs a fixed message on the token and verifies it in software against the SPKI.
    fn self_test(&self) -> Result<(), TokenError> {
        let signature = self.sign_with_token(SELF_TEST_MESSAGE)?;
        if !verify_signature(self.algorithm, &self.spki, SELF_TEST_MESSAGE, &signature) {
            return Err(TokenError::SelfTest { key: self.key_label.clone() });
        }
        Ok(())
    }

    /// The token's label, for logs.
    pub fn token_label(&self) -> &str {
        self.token.label()
    }

    /// The key's `CKA_LABEL`, for logs.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    fn sign_with_token(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let session = self.borrow_session()?;
        let result = match self.algorithm {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => session.sign(&Mechanism::Sha256RsaPkcs, self.key, message),
            // CKM_ECDSA signs a digest: hash here, with the hash X.509 pairs with the curve.
            KeyAlgorithm::P256 => {
                let digest = digest::digest(&digest::SHA256, message);
                session.sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            }
            KeyAlgorithm::P384 => {
                let digest = digest::digest(&digest::SHA384, message);
                session.sign(&Mechanism::Ecdsa, self.key, digest.as_ref())
            }
        };
        let session_lost = matches!(
            result,
            Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::TokenNotPresent,
                _
            ))
        );
        self.return_session(session, session_lost);
        let raw = result.map_err(device)?;
        if self.algorithm.is_rsa() {
            Ok(raw)
        } else {
            encoding::ecdsa_raw_to_der(self.algorithm, &raw).map_err(TokenError::Device)
        }
    }

    /// Takes an idle session, opens (and logs in) a new one if there is room, or waits.
    fn borrow_session(&self) -> Result<Session, TokenError> {
        let mut pool = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(session) = pool.idle.pop() {
                return Ok(session);
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return self.token.open_session(false).inspect_err(|_| self.forget_session());
            }
            pool = self.session_returned.wait(pool).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Puts a session back for the next signature, or closes it if it is no good.
    fn return_session(&self, session: Session, lost: bool) {
        if lost {
            drop(session);
            self.forget_session();
        } else {
            self.sessions.lock().unwrap_or_else(PoisonError::into_inner).idle.push(session);
            self.session_returned.notify_one();
        }
    }

    /// Frees the place of a session that failed to open or was closed.
    fn forget_session(&self) {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner).open -= 1;
        self.session_returned.notify_one();
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.sign_with_token(message)?)
    }
}

/// What the private key of a pair made by [`generate_key_pair`] may do: this and nothing
/// else, since SoftHSM2 (like many tokens) would otherwise allow every use the key type has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUsage {
    /// Sign; the public key verifies (CA and identity keys).
    Sign,
    /// Decrypt; the public key encrypts (the key recovery key).
    Decrypt,
    /// Unwrap secret keys; the public key wraps (the transport key a subscriber's
    /// encryption key arrives under).
    Unwrap,
}

/// RSAES-OAEP with SHA-1, MGF1-SHA-1 and an empty label: what `signet_pki::escrow` encrypts
/// with, and the only OAEP hash SoftHSM2 and most tokens implement.
pub(crate) fn rsa_oaep_sha1() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, PkcsOaepSource::empty()))
}

/// A key pair just generated on a token, and its public key as a DER SubjectPublicKeyInfo.
pub(crate) struct KeyPair {
    pub(crate) public: ObjectHandle,
    pub(crate) private: ObjectHandle,
    pub(crate) spki: Vec<u8>,
}

/// Destroys what a failed operation made, so nothing is left that a later lookup could pick
/// up. Best effort: the error worth reporting is the operation's, and session objects die with
/// the session anyway.
pub(crate) fn discard(session: &Session, objects: impl IntoIterator<Item = ObjectHandle>) {
    for object in objects {
        let _ = session.destroy_object(object);
    }
}

/// Signs `message` with the P-256 private key `key` (`CKM_ECDSA` over a SHA-256 digest made
/// here) and returns the DER Ecdsa-Sig-Value X.509 and aws-lc-rs expect.
pub(crate) fn ecdsa_p256_sign(session: &Session, key: ObjectHandle, message: &[u8]) -> Result<Vec<u8>, TokenError> {
    let digest = digest::digest(&digest::SHA256, message);
    let raw = session.sign(&Mechanism::Ecdsa, key, digest.as_ref()).map_err(device)?;
    encoding::ecdsa_raw_to_der(KeyAlgorithm::P256, &raw).map_err(TokenError::Device)
}

/// A random 16-byte `CKA_ID`: unique without a registry, so objects made together share it
/// and nothing else does.
pub(crate) fn random_id() -> Result<Vec<u8>, TokenError> {
    let mut id = vec![0u8; 16];
    SystemRandom::new().fill(&mut id).map_err(|_| TokenError::Device("no randomness for CKA_ID".into()))?;
    Ok(id)
}

/// [`TokenError::KeyExists`] if a private or public key labelled `cfg.key_label` is on the
/// token, so that generating never shadows a key that `open` finds by label.
pub(crate) fn refuse_existing_label(session: &Session, cfg: &Pkcs11KeyConfig) -> Result<(), TokenError> {
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        let template = [Attribute::Class(class), Attribute::Label(cfg.key_label.clone().into_bytes())];
        if !session.find_objects(&template).map_err(device)?.is_empty() {
            return Err(TokenError::KeyExists { token: cfg.token_label.clone(), key: cfg.key_label.clone() });
        }
    }
    Ok(())
}

/// Generates a key pair labelled `label` with a random 16-byte `CKA_ID`, for `usage` only.
/// The private key is private, sensitive and never extractable; `on_token` false makes both
/// halves session objects, gone when the session closes. RSA keys use the exponent 65537;
/// EC keys a named curve. If the token made something else than `algorithm`, the pair is
/// destroyed.
pub(crate) fn generate_key_pair(
    session: &Session,
    algorithm: KeyAlgorithm,
    usage: KeyUsage,
    on_token: bool,
    label: &str,
) -> Result<KeyPair, TokenError> {
    generate_key_pair_with_id(session, algorithm, usage, on_token, label, random_id()?)
}

/// [`generate_key_pair`] with a chosen `CKA_ID`.
pub(crate) fn generate_key_pair_with_id(
    session: &Session,
    algorithm: KeyAlgorithm,
    usage: KeyUsage,
    on_token: bool,
    label: &str,
    id: Vec<u8>,
) -> Result<KeyPair, TokenError> {
    let (sign, decrypt, unwrap) = (usage == KeyUsage::Sign, usage == KeyUsage::Decrypt, usage == KeyUsage::Unwrap);
    let mut public = vec![
        Attribute::Token(on_token),
        Attribute::Private(false),
        Attribute::Verify(sign),
        Attribute::Encrypt(decrypt),
        Attribute::Wrap(unwrap),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(on_token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(sign),
        Attribute::Decrypt(decrypt),
        Attribute::Unwrap(unwrap),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
    ];
    let rsa = |bits: u64| [Attribute::ModulusBits(bits.into()), Attribute::PublicExponent(vec![0x01, 0x00, 0x01])];
    let mechanism = match (algorithm, encoding::ec_params(algorithm)) {
        (KeyAlgorithm::Rsa2048, _) => {
            public.extend(rsa(2048));
            Mechanism::RsaPkcsKeyPairGen
        }
        (KeyAlgorithm::Rsa3072, _) => {
            public.extend(rsa(3072));
            Mechanism::RsaPkcsKeyPairGen
        }
        (KeyAlgorithm::P256 | KeyAlgorithm::P384, Some(params)) => {
            public.push(Attribute::EcParams(params));
            Mechanism::EccKeyPairGen
        }
        (_, None) => return Err(TokenError::UnsupportedKey(algorithm.to_string())),
    };
    let (public, private) = session.generate_key_pair(&mechanism, &public, &private).map_err(device)?;
    let spki = public_key_info(session, public, label).and_then(|(made, spki)| {
        if made == algorithm {
            Ok(spki)
        } else {
            Err(TokenError::UnsupportedKey(format!("asked for {algorithm}, the token made {made}")))
        }
    });
    match spki {
        Ok(spki) => Ok(KeyPair { public, private, spki }),
        Err(e) => {
            discard(session, [private, public]);
            Err(e)
        }
    }
}

/// The one private key labelled `cfg.key_label`, and its `CKA_ID` (empty if it has none).
/// Refuses keys that could leave the token in clear ([`TokenError::KeyNotProtected`]).
pub(crate) fn protected_private_key(
    session: &Session,
    cfg: &Pkcs11KeyConfig,
) -> Result<(ObjectHandle, Vec<u8>), TokenError> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(cfg.key_label.clone().into_bytes()),
        ])
        .map_err(device)?;
    let private_key = match found.as_slice() {
        [key] => *key,
        [] => return Err(TokenError::KeyNotFound { token: cfg.token_label.clone(), key: cfg.key_label.clone() }),
        many => {
            return Err(TokenError::AmbiguousKey {
                token: cfg.token_label.clone(),
                key: cfg.key_label.clone(),
                count: many.len(),
            });
        }
    };
    let wanted = [AttributeType::Id, AttributeType::Sensitive, AttributeType::Extractable];
    let (mut id, mut sensitive, mut extractable) = (Vec::new(), false, true);
    for attr in session.get_attributes(private_key, &wanted).map_err(device)? {
        match attr {
            Attribute::Id(v) => id = v,
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            _ => {}
        }
    }
    let not_protected =
        |reason| TokenError::KeyNotProtected { token: cfg.token_label.clone(), key: cfg.key_label.clone(), reason };
    if !sensitive {
        return Err(not_protected("CKA_SENSITIVE is false, so its value can be read"));
    }
    if extractable {
        return Err(not_protected("CKA_EXTRACTABLE is true, so it can be wrapped out"));
    }
    Ok((private_key, id))
}

/// Reads a key object's public half and returns its algorithm and DER SPKI. `object` is a
/// public key, or an RSA private key (which carries the modulus and public exponent).
pub(crate) fn public_key_info(
    session: &Session,
    object: ObjectHandle,
    key_label: &str,
) -> Result<(KeyAlgorithm, Vec<u8>), TokenError> {
    let wanted = [
        AttributeType::KeyType,
        AttributeType::Modulus,
        AttributeType::PublicExponent,
        AttributeType::EcParams,
        AttributeType::EcPoint,
    ];
    let (mut key_type, mut modulus, mut exponent, mut params, mut point) = (None, None, None, None, None);
    for attr in session.get_attributes(object, &wanted).map_err(device)? {
        match attr {
            Attribute::KeyType(v) => key_type = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let missing = |what: &str| TokenError::PublicKey { key: key_label.to_owned(), reason: format!("no {what}") };
    let result = match key_type {
        Some(KeyType::RSA) => encoding::rsa_spki(
            &modulus.ok_or_else(|| missing("CKA_MODULUS"))?,
            &exponent.ok_or_else(|| missing("CKA_PUBLIC_EXPONENT"))?,
        ),
        Some(KeyType::EC) => encoding::ec_spki(
            &params.ok_or_else(|| missing("CKA_EC_PARAMS"))?,
            &point.ok_or_else(|| missing("public key object with CKA_EC_POINT"))?,
        ),
        Some(other) => return Err(TokenError::UnsupportedKey(format!("{other} key"))),
        None => return Err(missing("CKA_KEY_TYPE")),
    };
    result.map_err(|e| match e {
        PublicKeyError::Unsupported(what) => TokenError::UnsupportedKey(what),
        PublicKeyError::Malformed(reason) => TokenError::PublicKey { key: key_label.to_owned(), reason },
    })
}
