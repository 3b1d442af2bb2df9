//! Secrets the server must read back, kept sealed at rest: AES-256-GCM under a key that lives
//! with the CA material, never in the database. Each sealed value is bound to what it belongs
//! to (the associated data, e.g. a token serial), so a sealed value copied onto another row
//! does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The length of a sealing key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The key is not 32 bytes.
    #[error("a sealing key is 32 bytes")]
    KeyLength,
    /// The sealed value is damaged, was sealed under another key, or belongs to something else.
    #[error("the sealed value does not open with this key for this purpose")]
    Open,
    /// The system's random generator failed.
    #[error("no randomness for a nonce")]
    Random,
}

/// An AES-256-GCM key for sealing secrets at rest.
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// Fresh key bytes, for a key file.
    pub fn generate() -> Result<[u8; KEY_LEN], SealError> {
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut key).map_err(|_| SealError::Random)?;
        Ok(key)
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::KeyLength);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::KeyLength)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// `nonce ‖ ciphertext ‖ tag` of `secret`, bound to `context`.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut body = secret.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut body)
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The secret sealed by [`SealingKey::seal`] with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(context), &mut body).map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_context() {
        let key = SealingKey::from_bytes(&SealingKey::generate().unwrap()).unwrap();
        let sealed = key.seal(b"12345678", b"token 0001").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"12345678"), "sealed text shows the secret");
        assert_eq!(key.open(&sealed, b"token 0001").unwrap(), b"12345678");
        assert_eq!(key.open(&sealed, b"token 0002"), Err(SealError::Open));
        let other = SealingKey::from_bytes(&SealingKey::generate().unwrap()).unwrap();
        assert_eq!(other.open(&sealed, b"token 0001"), Err(SealError::Open));
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&damaged, b"token 0001"), Err(SealError::Open));
        assert_eq!(key.open(&sealed[..5], b"token 0001"), Err(SealError::Open));
        assert_eq!(SealingKey::from_bytes(&[0; 16]).unwrap_err(), SealError::KeyLength);
    }
}
