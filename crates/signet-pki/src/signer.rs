//! The one signing interface of the CA: software keys (aws-lc-rs) and PKCS#11 keys
//! (in `signet-token`) both implement [`Signer`], so issuance, CRLs and OCSP never know
//! where the key lives.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use const_oid::db::rfc5912;
use der::asn1::Any;
use serde::{Deserialize, Serialize};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// Key types a CA (or a subscriber) key may have; DESIGN §2: RSA-2048 minimum, RSA-3072,
/// P-256 and P-384 allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus, signing with PKCS#1 v1.5 and SHA-256.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus, signing with PKCS#1 v1.5 and SHA-256.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "p-256")]
    P256,
    /// ECDSA on P-384 with SHA-384.
    #[serde(rename = "p-384")]
    P384,
}

impl KeyAlgorithm {
    /// Every supported algorithm, for CLI help and benchmarks.
    pub const ALL: [KeyAlgorithm; 4] = [Self::Rsa2048, Self::Rsa3072, Self::P256, Self::P384];

    /// The name used in configuration files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::P256 => "p-256",
            Self::P384 => "p-384",
        }
    }

    /// Whether this is an RSA key (PKCS#1 v1.5 signatures) rather than ECDSA.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072)
    }

    /// The signature algorithm rcgen writes into certificates and CRLs for this key.
    pub(crate) fn rcgen_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Rsa2048 | Self::Rsa3072 => &rcgen::PKCS_RSA_SHA256,
            Self::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// The AlgorithmIdentifier of this key's signatures, in the certificates and OCSP
    /// responses Signet encodes itself.
    pub(crate) fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self {
            // RFC 4055 §5: the parameters of the PKCS#1 v1.5 algorithms are NULL, not absent.
            Self::Rsa2048 | Self::Rsa3072 => {
                AlgorithmIdentifierOwned { oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION, parameters: Some(Any::null()) }
            }
            // RFC 5758 §3.2: the ECDSA algorithms have no parameters.
            Self::P256 => AlgorithmIdentifierOwned { oid: rfc5912::ECDSA_WITH_SHA_256, parameters: None },
            Self::P384 => AlgorithmIdentifierOwned { oid: rfc5912::ECDSA_WITH_SHA_384, parameters: None },
        }
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = SignError;
    fn from_str(s: &str) -> Result<Self, SignError> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| SignError::UnsupportedAlgorithm(s.to_owned()))
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a signing key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The algorithm name is not one of [`KeyAlgorithm::ALL`].
    #[error("unsupported key algorithm {0:?} (use rsa-2048, rsa-3072, p-256 or p-384)")]
    UnsupportedAlgorithm(String),
    /// Key generation failed in the crypto library.
    #[error("key generation failed")]
    KeyGeneration,
    /// The signing operation itself failed (crypto library or device).
    #[error("signing failed: {0}")]
    Signing(String),
    /// The stored key could not be decoded.
    #[error("the private key is malformed")]
    MalformedKey,
    /// The passphrase did not decrypt the key file (or the file was altered).
    #[error("wrong passphrase, or the key file was altered")]
    WrongPassphrase,
    /// The hardware module or token refused an operation.
    #[error("PKCS#11 device error: {0}")]
    Device(String),
}

/// Something that can sign with a CA key. The signature format is the X.509 one:
/// PKCS#1 v1.5 with SHA-256 for RSA, DER-encoded ECDSA-Sig-Value with SHA-256 (P-256) or
/// SHA-384 (P-384) for EC. Implementations hash the message themselves.
pub trait Signer: Send + Sync {
    /// The key type, which fixes the signature algorithm.
    fn algorithm(&self) -> KeyAlgorithm;
    /// The public key as a DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// Signs `message` (not a digest).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

enum SoftwareKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A CA key held in memory, backed by aws-lc-rs. On disk it is kept encrypted
/// ([`SoftwareSigner::to_encrypted`]).
pub struct SoftwareSigner {
    algorithm: KeyAlgorithm,
    key: SoftwareKey,
    spki: Vec<u8>,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SoftwareSigner").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// Generates a fresh key pair.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, SignError> {
        let key = match algorithm {
            KeyAlgorithm::Rsa2048 => SoftwareKey::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| SignError::KeyGeneration)?,
            ),
            KeyAlgorithm::Rsa3072 => SoftwareKey::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa3072).map_err(|_| SignError::KeyGeneration)?,
            ),
            KeyAlgorithm::P256 => SoftwareKey::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(|_| SignError::KeyGeneration)?,
            ),
            KeyAlgorithm::P384 => SoftwareKey::Ec(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).map_err(|_| SignError::KeyGeneration)?,
            ),
        };
        Self::from_key(algorithm, key)
    }

    /// Loads a key from unencrypted PKCS#8 DER.
    pub fn from_pkcs8(algorithm: KeyAlgorithm, pkcs8: &[u8]) -> Result<Self, SignError> {
        let key = match algorithm {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
                SoftwareKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| SignError::MalformedKey)?)
            }
            KeyAlgorithm::P256 => SoftwareKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
                    .map_err(|_| SignError::MalformedKey)?,
            ),
            KeyAlgorithm::P384 => SoftwareKey::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8)
                    .map_err(|_| SignError::MalformedKey)?,
            ),
        };
        let signer = Self::from_key(algorithm, key)?;
        if let SoftwareKey::Rsa(k) = &signer.key {
            let bits = k.public_modulus_len() * 8;
            let expected = if algorithm == KeyAlgorithm::Rsa2048 { 2048 } else { 3072 };
            if bits != expected {
                return Err(SignError::MalformedKey);
            }
        }
        Ok(signer)
    }

    fn from_key(algorithm: KeyAlgorithm, key: SoftwareKey) -> Result<Self, SignError> {
        let spki = match &key {
            SoftwareKey::Rsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            SoftwareKey::Ec(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| SignError::MalformedKey)?;
        Ok(Self { algorithm, key, spki })
    }

    /// The private key as unencrypted PKCS#8 DER; callers must encrypt it before it
    /// touches a disk.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, SignError> {
        match &self.key {
            SoftwareKey::Rsa(k) => AsDer::<Pkcs8V1Der>::as_der(k).map(|d| d.as_ref().to_vec()),
            SoftwareKey::Ec(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| SignError::MalformedKey)
    }

    /// Encrypts the key under a passphrase (Argon2id → AES-256-GCM) for storage at rest.
    pub fn to_encrypted(&self, passphrase: &str) -> Result<EncryptedKey, SignError> {
        EncryptedKey::seal(self.algorithm, &self.to_pkcs8()?, passphrase)
    }

    /// Decrypts a key written by [`SoftwareSigner::to_encrypted`].
    pub fn from_encrypted(file: &EncryptedKey, passphrase: &str) -> Result<Self, SignError> {
        let pkcs8 = file.open(passphrase)?;
        Self::from_pkcs8(file.algorithm, &pkcs8)
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        match &self.key {
            SoftwareKey::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(|e| SignError::Signing(e.to_string()))?;
                Ok(sig)
            }
            SoftwareKey::Ec(k) => {
                k.sign(&rng, message).map(|s| s.as_ref().to_vec()).map_err(|e| SignError::Signing(e.to_string()))
            }
        }
    }
}

/// A private key encrypted under a passphrase, as kept in the CA's key file (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptedKey {
    /// Key type, so the file can be loaded without guessing.
    pub algorithm: KeyAlgorithm,
    /// Always "argon2id".
    pub kdf: String,
    /// Argon2 memory cost in KiB.
    pub m_cost: u32,
    /// Argon2 iterations.
    pub t_cost: u32,
    /// Argon2 lanes.
    pub p_cost: u32,
    /// Argon2 salt, hex.
    pub salt: String,
    /// AES-256-GCM nonce, hex.
    pub nonce: String,
    /// AES-256-GCM ciphertext of the PKCS#8 DER with its tag, hex.
    pub ciphertext: String,
}

impl EncryptedKey {
    // OWASP's Argon2id baseline (19 MiB, 2 passes); unlocking a CA key is rare.
    const M_COST: u32 = 19 * 1024;
    const T_COST: u32 = 2;
    const P_COST: u32 = 1;

    fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<[u8; 32], SignError> {
        let params = argon2::Params::new(m, t, p, Some(32)).map_err(|_| SignError::MalformedKey)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon.hash_password_into(passphrase.as_bytes(), salt, &mut out).map_err(|_| SignError::MalformedKey)?;
        Ok(out)
    }

    pub(crate) fn seal(algorithm: KeyAlgorithm, pkcs8: &[u8], passphrase: &str) -> Result<Self, SignError> {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let rng = SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rng.fill(&mut salt).map_err(|_| SignError::KeyGeneration)?;
        rng.fill(&mut nonce).map_err(|_| SignError::KeyGeneration)?;
        let kek = Self::derive(passphrase, &salt, Self::M_COST, Self::T_COST, Self::P_COST)?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek).map_err(|_| SignError::KeyGeneration)?);
        let mut buf = pkcs8.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(algorithm.name().as_bytes()),
            &mut buf,
        )
        .map_err(|_| SignError::KeyGeneration)?;
        Ok(Self {
            algorithm,
            kdf: "argon2id".into(),
            m_cost: Self::M_COST,
            t_cost: Self::T_COST,
            p_cost: Self::P_COST,
            salt: hex::encode(salt),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(buf),
        })
    }

    pub(crate) fn open(&self, passphrase: &str) -> Result<Vec<u8>, SignError> {
        use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        if self.kdf != "argon2id" {
            return Err(SignError::MalformedKey);
        }
        let salt = hex::decode(&self.salt).map_err(|_| SignError::MalformedKey)?;
        let nonce: [u8; 12] =
            hex::decode(&self.nonce).ok().and_then(|n| n.try_into().ok()).ok_or(SignError::MalformedKey)?;
        let mut buf = hex::decode(&self.ciphertext).map_err(|_| SignError::MalformedKey)?;
        let kek = Self::derive(passphrase, &salt, self.m_cost, self.t_cost, self.p_cost)?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &kek).map_err(|_| SignError::MalformedKey)?);
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(self.algorithm.name().as_bytes()), &mut buf)
            .map_err(|_| SignError::WrongPassphrase)?;
        Ok(plain.to_vec())
    }
}

/// Verifies `signature` over `message` with a DER SubjectPublicKeyInfo, for tests and for
/// checking a freshly loaded HSM key against its certificate.
pub fn verify_signature(algorithm: KeyAlgorithm, spki: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    };
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match algorithm {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => &RSA_PKCS1_2048_8192_SHA256,
        KeyAlgorithm::P256 => &ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::P384 => &ECDSA_P384_SHA384_ASN1,
    };
    ParsedPublicKey::new(alg, spki).is_ok_and(|k| k.verify_sig(message, signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in KeyAlgorithm::ALL {
            let s = SoftwareSigner::generate(alg).unwrap();
            let sig = s.sign(b"hello").unwrap();
            assert!(verify_signature(alg, s.public_key_spki(), b"hello", &sig), "{alg}");
            assert!(!verify_signature(alg, s.public_key_spki(), b"hellp", &sig), "{alg}");
        }
    }

    #[test]
    fn encrypted_key_round_trip_and_wrong_passphrase() {
        let s = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let file = s.to_encrypted("correct horse").unwrap();
        let back = SoftwareSigner::from_encrypted(&file, "correct horse").unwrap();
        assert_eq!(back.public_key_spki(), s.public_key_spki());
        assert!(matches!(SoftwareSigner::from_encrypted(&file, "wrong"), Err(SignError::WrongPassphrase)));
        let json = serde_json::to_string(&file).unwrap();
        assert!(!json.contains(&hex::encode(s.to_pkcs8().unwrap())));
    }
}
