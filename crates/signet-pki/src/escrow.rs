//! Key escrow for subscribers' encryption keys (DESIGN §2: "Encryption keys may be escrowed
//! (key recovery with two recovery agents); signing keys never").
//!
//! The server's key recovery component generates the encryption key pair ([`EncryptionKey`]),
//! seals its PKCS#8 to the key recovery key (KRK) as a CMS EnvelopedData (RFC 5652) — RSAES-OAEP
//! key transport to the KRK, AES-256-CBC content — and wraps it a second time for the
//! subscriber's token ([`TransportWrapped`]). Sealing needs only the KRK's public key, so the
//! web tier never holds what could open an escrow; opening ([`open`]) takes a [`RecoveryKey`],
//! a file or HSM key used by the recovery tool once two agents have approved.
//!
//! Only [`EncryptionKey`]s can be escrowed: keys generated on a subscriber's token never leave
//! it, and nothing here accepts a signing key.
//!
//! OAEP uses SHA-1 and MGF1-SHA-1 (RFC 8017's defaults) throughout: SoftHSM2 and most PKCS#11
//! tokens implement no other OAEP hash for `CKM_RSA_PKCS_OAEP`, and OAEP's security does not
//! rest on SHA-1's collision resistance.

use std::sync::Arc;

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode, Sequence};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::signer::{EncryptedKey, KeyAlgorithm, Signer, SoftwareSigner};

/// id-envelopedData (RFC 5652 §6.1).
const ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
/// id-data (RFC 5652 §4).
pub(crate) const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-RSAES-OAEP (RFC 8017 appendix A.2.1).
const RSAES_OAEP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
/// id-aes256-CBC (NIST CSOR); parameters: the 16-byte IV.
const AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
/// id-PBES2 and id-PBKDF2 (RFC 8018 appendix A).
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
/// hmacWithSHA256 (RFC 8018 appendix B.1.2).
const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");

/// Why a key could not be escrowed, wrapped or recovered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EscrowError {
    /// A public key (recovery or transport key) is not an RSA key of 2048 bits or more.
    #[error("the {0} is not an RSA public key of at least 2048 bits")]
    BadPublicKey(&'static str),
    /// The escrow record is not a CMS EnvelopedData this module wrote.
    #[error("the escrow record is not a CMS EnvelopedData of the expected form")]
    Malformed,
    /// The escrow was sealed to another key recovery key.
    #[error("the escrow record was sealed to another key recovery key")]
    WrongRecoveryKey,
    /// Decryption failed: damaged record, or the key does not match.
    #[error("the escrow record does not decrypt")]
    Decryption,
    /// Key generation or encryption failed in the crypto library.
    #[error("key generation or encryption failed")]
    Crypto,
    /// The device holding the key recovery key (an HSM) failed or refused the operation.
    #[error("the key recovery key's device failed: {0}")]
    Device(String),
    /// The CSR for the generated key could not be made.
    #[error("could not make the certification request: {0}")]
    Request(String),
    /// The key recovery key's file does not open with this passphrase, or is damaged.
    #[error("the key recovery key file does not open: wrong passphrase or a damaged file")]
    KeyFile,
}

fn crypto<E>(_: E) -> EscrowError {
    EscrowError::Crypto
}

/// An RSA public key of at least 2048 bits, parsed from a SubjectPublicKeyInfo.
fn rsa_public(spki: &[u8], what: &'static str) -> Result<PublicEncryptingKey, EscrowError> {
    let key = PublicEncryptingKey::from_der(spki).map_err(|_| EscrowError::BadPublicKey(what))?;
    if key.key_size_bits() < 2048 {
        return Err(EscrowError::BadPublicKey(what));
    }
    Ok(key)
}

fn oaep_encrypt(key: PublicEncryptingKey, plaintext: &[u8]) -> Result<Vec<u8>, EscrowError> {
    let key = OaepPublicEncryptingKey::new(key).map_err(crypto)?;
    let mut out = vec![0; key.ciphertext_size()];
    let len = key.encrypt(&OAEP_SHA1_MGF1SHA1, plaintext, &mut out, None).map_err(crypto)?.len();
    out.truncate(len);
    Ok(out)
}

/// AES-256-CBC with PKCS#7 padding under a caller-drawn IV, which the CMS and PBES2
/// structures carry as the algorithm's parameter.
fn aes256_cbc_encrypt(key: &[u8; 32], iv: [u8; 16], plaintext: &[u8]) -> Result<Vec<u8>, EscrowError> {
    let mut out = plaintext.to_vec();
    PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).map_err(crypto)?)
        .map_err(crypto)?
        .less_safe_encrypt(&mut out, aws_lc_rs::cipher::EncryptionContext::Iv128(iv.into()))
        .map_err(crypto)?;
    Ok(out)
}

fn random<const N: usize>() -> Result<[u8; N], EscrowError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(crypto)?;
    Ok(out)
}

/// The key recovery key's public half: all the server needs to escrow.
#[derive(Debug, Clone)]
pub struct RecoveryKeyPublic {
    spki: Vec<u8>,
    key_id: Vec<u8>,
    /// Parsed once at start-up rather than on every retrieval's escrow.
    key: PublicEncryptingKey,
}

impl RecoveryKeyPublic {
    /// Parses a DER SubjectPublicKeyInfo; an RSA key of at least 2048 bits.
    pub fn from_spki(spki: &[u8]) -> Result<Self, EscrowError> {
        let key = rsa_public(spki, "key recovery key")?;
        Ok(Self { spki: spki.to_vec(), key_id: key_id(spki)?, key })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The key identifier escrows name their recipient by (RFC 5280 §4.2.1.2 method 1), hex.
    pub fn key_id_hex(&self) -> String {
        hex::encode(&self.key_id)
    }
}

/// SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1): the identifier OpenSSL
/// also computes, so `openssl cms -decrypt` finds the recipient.
fn key_id(spki: &[u8]) -> Result<Vec<u8>, EscrowError> {
    let parsed = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki).map_err(|_| EscrowError::Malformed)?;
    let bits = parsed.subject_public_key.raw_bytes();
    Ok(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bits).as_ref().to_vec())
}

/// The private half of the key recovery key: opens escrows. A file key ([`SoftwareRecoveryKey`])
/// or a PKCS#11 key (`signet-token`).
pub trait RecoveryKey: Send + Sync {
    /// The DER SubjectPublicKeyInfo.
    fn public_key_spki(&self) -> &[u8];
    /// RSAES-OAEP (SHA-1, MGF1-SHA-1) decryption of `ciphertext`.
    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, EscrowError>;
}

/// A key recovery key held in memory (loaded from its encrypted file).
pub struct SoftwareRecoveryKey {
    key: OaepPrivateDecryptingKey,
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for SoftwareRecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareRecoveryKey").finish_non_exhaustive()
    }
}

impl SoftwareRecoveryKey {
    /// Generates an RSA-3072 key recovery key.
    pub fn generate() -> Result<Self, EscrowError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa3072).map_err(crypto)?;
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).map_err(crypto)?.as_ref().to_vec();
        Self::from_pkcs8(&pkcs8)
    }

    /// Loads an RSA key from PKCS#8 DER.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, EscrowError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .filter(|k| k.key_size_bits() >= 2048)
            .ok_or(EscrowError::BadPublicKey("key recovery key"))?;
        let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(&key.public_key())
            .map_err(crypto)?
            .as_ref()
            .to_vec();
        Ok(Self { key: OaepPrivateDecryptingKey::new(key).map_err(crypto)?, pkcs8: pkcs8.to_vec(), spki })
    }

    /// The private key as PKCS#8 DER; callers encrypt it before it touches a disk.
    pub fn to_pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key sealed under `passphrase` the way the CA's key files are (Argon2id, AES-256-GCM).
    pub fn to_encrypted(&self, passphrase: &str) -> Result<EncryptedKey, EscrowError> {
        EncryptedKey::seal(Self::FILE_ALGORITHM, &self.pkcs8, passphrase).map_err(crypto)
    }

    /// Opens a key file written by [`Self::to_encrypted`].
    pub fn from_encrypted(file: &EncryptedKey, passphrase: &str) -> Result<Self, EscrowError> {
        if file.algorithm != Self::FILE_ALGORITHM {
            return Err(EscrowError::KeyFile);
        }
        Self::from_pkcs8(&file.open(passphrase).map_err(|_| EscrowError::KeyFile)?)
    }

    // The tag is authenticated with the file; key recovery keys are RSA-3072 as generated.
    const FILE_ALGORITHM: KeyAlgorithm = KeyAlgorithm::Rsa3072;
}

impl RecoveryKey for SoftwareRecoveryKey {
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, EscrowError> {
        let mut out = vec![0; self.key.min_output_size()];
        let len = self
            .key
            .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None)
            .map_err(|_| EscrowError::Decryption)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// An encryption key pair generated by the key recovery component. Debug shows nothing.
pub struct EncryptionKey {
    signer: Arc<SoftwareSigner>,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey").finish_non_exhaustive()
    }
}

/// The encryption key wrapped for one subscriber token: an AES-256 key under the token's
/// transport key (RSAES-OAEP, for `C_UnwrapKey` with `CKM_RSA_PKCS_OAEP`), and the PKCS#8
/// under that AES key (RFC 5649 key wrap with padding, for `CKM_AES_KEY_WRAP_PAD`), so the
/// private key is in clear only inside the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportWrapped {
    /// The AES-256 key, OAEP-encrypted to the transport key.
    pub wrapped_key: Vec<u8>,
    /// The PKCS#8 private key, AES key wrapped with padding.
    pub wrapped_private_key: Vec<u8>,
}

impl std::fmt::Debug for TransportWrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportWrapped").finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// A fresh RSA-2048 key: encryption certificates need keyEncipherment, which EC keys
    /// cannot do.
    pub fn generate() -> Result<Self, EscrowError> {
        let signer = SoftwareSigner::generate(KeyAlgorithm::Rsa2048).map_err(crypto)?;
        let pkcs8 = signer.to_pkcs8().map_err(crypto)?;
        Ok(Self { signer: Arc::new(signer), pkcs8 })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        self.signer.public_key_spki()
    }

    /// A PKCS#10 request signed by the key, so the issuance path checks this key's proof of
    /// possession like any other. Its subject is empty: the RA's vetted data names the holder.
    pub fn csr(&self) -> Result<Vec<u8>, EscrowError> {
        let signer: Arc<dyn Signer> = self.signer.clone();
        let key = crate::ca::RcgenKey::new(signer).map_err(|e| EscrowError::Request(e.to_string()))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(|e| EscrowError::Request(e.to_string()))?;
        Ok(csr.der().to_vec())
    }

    /// Seals the private key to the key recovery key: the escrow record, DER CMS
    /// `ContentInfo` holding an `EnvelopedData`.
    pub fn escrow(&self, krk: &RecoveryKeyPublic) -> Result<Vec<u8>, EscrowError> {
        let cek: [u8; 32] = random()?;
        let iv: [u8; 16] = random()?;
        let content = aes256_cbc_encrypt(&cek, iv, &self.pkcs8)?;
        let enc_key = oaep_encrypt(krk.key.clone(), &cek)?;
        let recipient = KeyTransRecipientInfo {
            // Version 2: the recipient is named by subject key identifier (RFC 5652 §6.2.1).
            version: CmsVersion::V2,
            rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(octets(&krk.key_id)?)),
            key_enc_alg: oaep_algorithm()?,
            enc_key: octets(&enc_key)?,
        };
        let enveloped = EnvelopedData {
            version: CmsVersion::V2,
            originator_info: None,
            recip_infos: RecipientInfos(
                SetOfVec::try_from(vec![RecipientInfo::Ktri(recipient)]).map_err(|_| EscrowError::Malformed)?,
            ),
            encrypted_content: EncryptedContentInfo {
                content_type: DATA,
                content_enc_alg: AlgorithmIdentifierOwned { oid: AES256_CBC, parameters: Some(any(&octets(&iv)?)?) },
                encrypted_content: Some(octets(&content)?),
            },
            unprotected_attrs: None,
        };
        let info = ContentInfo { content_type: ENVELOPED_DATA, content: any(&enveloped)? };
        info.to_der().map_err(|_| EscrowError::Malformed)
    }

    /// Wraps the private key for the token holding the RSA transport key `transport_spki`.
    pub fn wrap_for_transport(&self, transport_spki: &[u8]) -> Result<TransportWrapped, EscrowError> {
        use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded};
        let transport = rsa_public(transport_spki, "transport key")?;
        let aes: [u8; 32] = random()?;
        let kek = AesKek::new(&aws_lc_rs::key_wrap::AES_256, &aes).map_err(crypto)?;
        // RFC 5649: the output is the input padded to 8 bytes plus one 8-byte block.
        let mut out = vec![0; self.pkcs8.len().div_ceil(8) * 8 + 8];
        let len = kek.wrap_with_padding(&self.pkcs8, &mut out).map_err(crypto)?.len();
        out.truncate(len);
        Ok(TransportWrapped { wrapped_key: oaep_encrypt(transport, &aes)?, wrapped_private_key: out })
    }
}

fn any<T: der::EncodeValue + der::Tagged>(value: &T) -> Result<Any, EscrowError> {
    Any::encode_from(value).map_err(|_| EscrowError::Malformed)
}

fn octets(bytes: &[u8]) -> Result<OctetString, EscrowError> {
    OctetString::new(bytes.to_vec()).map_err(|_| EscrowError::Malformed)
}

/// RSAES-OAEP with empty parameters: SHA-1, MGF1-SHA-1 and an empty label (RFC 8017 A.2.1).
fn oaep_algorithm() -> Result<AlgorithmIdentifierOwned, EscrowError> {
    let params = Any::new(der::Tag::Sequence, Vec::new()).map_err(|_| EscrowError::Malformed)?;
    Ok(AlgorithmIdentifierOwned { oid: RSAES_OAEP, parameters: Some(params) })
}

/// A recovered encryption key. Debug shows nothing.
pub struct RecoveredKey {
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

impl std::fmt::Debug for RecoveredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveredKey").finish_non_exhaustive()
    }
}

/// Opens an escrow record with the key recovery key.
pub fn open(escrow: &[u8], krk: &dyn RecoveryKey) -> Result<RecoveredKey, EscrowError> {
    let info = ContentInfo::from_der(escrow).map_err(|_| EscrowError::Malformed)?;
    if info.content_type != ENVELOPED_DATA {
        return Err(EscrowError::Malformed);
    }
    let enveloped: EnvelopedData = info.content.decode_as().map_err(|_| EscrowError::Malformed)?;
    let wanted = key_id(krk.public_key_spki())?;
    let recipient = enveloped
        .recip_infos
        .0
        .iter()
        .find_map(|r| match r {
            RecipientInfo::Ktri(k) => match &k.rid {
                RecipientIdentifier::SubjectKeyIdentifier(ski) if ski.0.as_bytes() == wanted => Some(k),
                _ => None,
            },
            _ => None,
        })
        .ok_or(EscrowError::WrongRecoveryKey)?;
    if recipient.key_enc_alg.oid != RSAES_OAEP {
        return Err(EscrowError::Malformed);
    }
    let cek = krk.decrypt(recipient.enc_key.as_bytes())?;
    let content = &enveloped.encrypted_content;
    if content.content_enc_alg.oid != AES256_CBC {
        return Err(EscrowError::Malformed);
    }
    let iv: OctetString = content
        .content_enc_alg
        .parameters
        .as_ref()
        .ok_or(EscrowError::Malformed)?
        .decode_as()
        .map_err(|_| EscrowError::Malformed)?;
    let iv: [u8; 16] = iv.as_bytes().try_into().map_err(|_| EscrowError::Malformed)?;
    let mut buf = content.encrypted_content.as_ref().ok_or(EscrowError::Malformed)?.as_bytes().to_vec();
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(
        UnboundCipherKey::new(&AES_256, &cek).map_err(|_| EscrowError::Decryption)?,
    )
    .map_err(crypto)?;
    let pkcs8 =
        key.decrypt(&mut buf, DecryptionContext::Iv128(iv.into())).map_err(|_| EscrowError::Decryption)?.to_vec();
    let signer = SoftwareSigner::from_pkcs8(KeyAlgorithm::Rsa2048, &pkcs8).map_err(|_| EscrowError::Decryption)?;
    Ok(RecoveredKey { spki: signer.public_key_spki().to_vec(), pkcs8 })
}

/// PBKDF2 iterations of an exported key: OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
const PBKDF2_ITERATIONS: u32 = 600_000;

#[derive(Sequence)]
struct Pbkdf2Params {
    salt: OctetString,
    iterations: u32,
    key_length: u8,
    prf: AlgorithmIdentifierOwned,
}

#[derive(Sequence)]
struct Pbes2Params {
    kdf: AlgorithmIdentifierOwned,
    scheme: AlgorithmIdentifierOwned,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    algorithm: AlgorithmIdentifierOwned,
    data: OctetString,
}

impl RecoveredKey {
    /// The DER SubjectPublicKeyInfo, to match against the certificate.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The key as a PEM `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2-HMAC-SHA256 and
    /// AES-256-CBC, RFC 8018), which OpenSSL and mail clients import with the passphrase.
    pub fn to_encrypted_pem(&self, passphrase: &str) -> Result<String, EscrowError> {
        let salt: [u8; 16] = random()?;
        let iv: [u8; 16] = random()?;
        let mut kek = [0u8; 32];
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(PBKDF2_ITERATIONS).ok_or(EscrowError::Crypto)?,
            &salt,
            passphrase.as_bytes(),
            &mut kek,
        );
        let data = aes256_cbc_encrypt(&kek, iv, &self.pkcs8)?;
        let kdf = Pbkdf2Params {
            salt: octets(&salt)?,
            iterations: PBKDF2_ITERATIONS,
            key_length: 32,
            prf: AlgorithmIdentifierOwned { oid: HMAC_SHA256, parameters: Some(Any::null()) },
        };
        let params = Pbes2Params {
            kdf: AlgorithmIdentifierOwned { oid: PBKDF2, parameters: Some(any(&kdf)?) },
            scheme: AlgorithmIdentifierOwned { oid: AES256_CBC, parameters: Some(any(&octets(&iv)?)?) },
        };
        let info = EncryptedPrivateKeyInfo {
            algorithm: AlgorithmIdentifierOwned { oid: PBES2, parameters: Some(any(&params)?) },
            data: octets(&data)?,
        };
        Ok(crate::to_pem("ENCRYPTED PRIVATE KEY", &info.to_der().map_err(|_| EscrowError::Malformed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escrow_opens_with_the_recovery_key_only() {
        let krk = SoftwareRecoveryKey::generate().unwrap();
        let public = RecoveryKeyPublic::from_spki(krk.public_key_spki()).unwrap();
        let key = EncryptionKey::generate().unwrap();
        let escrow = key.escrow(&public).unwrap();
        let recovered = open(&escrow, &krk).unwrap();
        assert_eq!(recovered.spki(), key.spki());
        assert_eq!(recovered.pkcs8, key.pkcs8);

        let other = SoftwareRecoveryKey::generate().unwrap();
        assert_eq!(open(&escrow, &other).unwrap_err(), EscrowError::WrongRecoveryKey);
        // A flipped byte anywhere in the ciphertext breaks the padding or the key.
        let mut damaged = escrow.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(open(&damaged, &krk).is_err());
        assert_eq!(open(b"not der", &krk).unwrap_err(), EscrowError::Malformed);
    }

    #[test]
    fn a_recovery_key_file_opens_with_its_passphrase_only() {
        let krk = SoftwareRecoveryKey::generate().unwrap();
        let file = krk.to_encrypted("correct horse").unwrap();
        assert!(!file.ciphertext.contains(&hex::encode(&krk.pkcs8[..32])));
        let opened = SoftwareRecoveryKey::from_encrypted(&file, "correct horse").unwrap();
        assert_eq!(opened.public_key_spki(), krk.public_key_spki());
        assert_eq!(SoftwareRecoveryKey::from_encrypted(&file, "wrong").unwrap_err(), EscrowError::KeyFile);
        let relabelled = EncryptedKey { algorithm: KeyAlgorithm::P256, ..file };
        assert_eq!(
            SoftwareRecoveryKey::from_encrypted(&relabelled, "correct horse").unwrap_err(),
            EscrowError::KeyFile
        );
    }

    #[test]
    fn transport_wrapping_unwraps_with_the_transport_key() {
        use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded};
        let transport = SoftwareRecoveryKey::generate().unwrap();
        let key = EncryptionKey::generate().unwrap();
        let wrapped = key.wrap_for_transport(transport.public_key_spki()).unwrap();
        let aes = transport.decrypt(&wrapped.wrapped_key).unwrap();
        let kek = AesKek::new(&aws_lc_rs::key_wrap::AES_256, &aes).unwrap();
        let mut out = vec![0; wrapped.wrapped_private_key.len()];
        let pkcs8 = kek.unwrap_with_padding(&wrapped.wrapped_private_key, &mut out).unwrap();
        assert_eq!(pkcs8, key.pkcs8.as_slice());
        // An EC or short key cannot take the wrapped AES key.
        let ec = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        assert_eq!(
            key.wrap_for_transport(ec.public_key_spki()).unwrap_err(),
            EscrowError::BadPublicKey("transport key")
        );
    }

    #[test]
    fn the_csr_proves_possession_of_the_generated_key() {
        let key = EncryptionKey::generate().unwrap();
        let csr = crate::csr::VerifiedCsr::parse(&key.csr().unwrap()).unwrap();
        assert_eq!(csr.spki(), key.spki());
    }
}
