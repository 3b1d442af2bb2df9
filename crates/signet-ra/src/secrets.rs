//! One-time secrets a transition emails once and then forgets: the email verification token
//! and the retrieval activation code, and the SHA-256 digest the store keeps instead of either.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::input::{InputError, crockford_normalize, random_base32};

/// SHA-256 of a one-time secret: what the store keeps instead of the secret (DESIGN §2:
/// the activation code is single use; a stolen database must not hand out codes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub(crate) fn of(secret: &str) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Whether `secret` hashes to this digest, compared in constant time.
    pub(crate) fn matches(&self, secret: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&Self::of(secret).0, &self.0).is_ok()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretDigest({}…)", &hex::encode(self.0)[..8])
    }
}

impl TryFrom<String> for SecretDigest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bytes = hex::decode(&s).map_err(|e| e.to_string())?;
        bytes.try_into().map(Self).map_err(|_| "a secret digest is 32 bytes".to_owned())
    }
}

impl From<SecretDigest> for String {
    fn from(d: SecretDigest) -> String {
        hex::encode(d.0)
    }
}

/// The activation code the applicant types with the account password to retrieve the
/// certificates (DESIGN §2 "Retrieval"; seed retrieval guide). 16 Crockford base32 characters
/// (80 bits), shown as `XXXX-XXXX-XXXX-XXXX`. Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationCode(String);

impl ActivationCode {
    pub(crate) fn generate() -> Self {
        Self(random_base32(16))
    }
    /// The code as its digest is made from it: no dashes, for [`SecretDigest`] only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
    /// Parses a code as typed: any case, dashes and spaces ignored, O/I/L read as 0/1/1.
    pub fn new(s: &str) -> Result<Self, InputError> {
        match crockford_normalize(s) {
            Some(v) if v.len() == 16 => Ok(Self(v)),
            _ => Err(InputError::ActivationCode),
        }
    }
    /// The code in groups of four, for the email and nowhere else.
    pub fn expose(&self) -> String {
        let c = &self.0;
        format!("{}-{}-{}-{}", &c[..4], &c[4..8], &c[8..12], &c[12..])
    }
}

impl fmt::Debug for ActivationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActivationCode(<redacted>)")
    }
}

/// The token in the email verification link: 32 Crockford base32 characters (160 bits).
/// Debug never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationToken(String);

impl VerificationToken {
    pub(crate) fn generate() -> Self {
        Self(random_base32(32))
    }
    /// Parses the token from the link.
    pub fn new(s: &str) -> Result<Self, InputError> {
        match crockford_normalize(s) {
            Some(v) if v.len() == 32 => Ok(Self(v)),
            _ => Err(InputError::VerificationToken),
        }
    }
    /// The token, for building the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationToken(<redacted>)")
    }
}

/// A secret a transition created, to be emailed once and then forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuedSecret {
    /// The email verification link's token (on submission).
    EmailVerification(VerificationToken),
    /// The retrieval activation code (when certificates become ready).
    Activation(ActivationCode),
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_codes_and_tokens_never_debug_print() {
        let code = ActivationCode::generate();
        let shown = format!("{code:?} {:?}", IssuedSecret::Activation(code.clone()));
        assert!(!shown.contains(&code.0) && shown.contains("redacted"), "{shown}");
        let token = VerificationToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
        assert_eq!(code.expose().len(), 19);
        assert!(ActivationCode::new("too-short").is_err());
    }
}
