//! The account password: the strength rules a new one must pass, its Argon2id hash, and where
//! verifications run (a server bounds them and keeps them off its async workers).

use std::fmt;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use signet_pki::subject::Email;

/// The shortest password accepted.
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// Passwords that top every breached-password list; checked after lowercasing and after
/// stripping digits and symbols from the end ("Password2024!" is "password").
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "passw0rd",
    "123456789012",
    "qwerty",
    "qwertyuiop",
    "letmein",
    "welcome",
    "iloveyou",
    "admin",
    "administrator",
    "changeme",
    "abc123",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "trustno",
    "starwars",
    "superman",
    "whatever",
    "p@ssword",
    "p@ssw0rd",
    "correcthorsebatterystaple",
];

/// One reason a password is too weak, worded for the applicant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordProblem {
    /// Shorter than [`MIN_PASSWORD_LENGTH`].
    #[error("use at least {MIN_PASSWORD_LENGTH} characters (this one has {0})")]
    TooShort(usize),
    /// Only lowercase, only uppercase, only digits or only symbols.
    #[error("mix at least two kinds of characters: lowercase, uppercase, digits, symbols")]
    OneCharacterClass,
    /// Contains the account's own name: the email address before the `@`, or the operator id.
    #[error("do not include your user name (such as the part of your email address before the @)")]
    ContainsEmailName,
    /// Is, or is built on, a very common password.
    #[error("this is one of the most common passwords; choose another")]
    Common,
}

/// Every reason a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password is too weak: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct WeakPassword(pub Vec<PasswordProblem>);

/// A new account password that passed the strength rules. Debug never prints it.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Checks a password for the account of `email`. The seed guide stresses this password is
    /// needed weeks later to retrieve the certificates, so it is chosen once, well.
    pub fn new(password: &str, email: &Email) -> Result<Self, WeakPassword> {
        let mut problems = Vec::new();
        let len = password.chars().count();
        if len < MIN_PASSWORD_LENGTH {
            problems.push(PasswordProblem::TooShort(len));
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ];
        if classes.iter().filter(|&&c| c).count() < 2 {
            problems.push(PasswordProblem::OneCharacterClass);
        }
        let lower = password.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default().to_lowercase();
        // The whole local part, and each word of it long enough to be more than noise
        // ("jane.doe" → "jane.doe", "jane").
        let email_words = std::iter::once(local.as_str())
            .filter(|w| w.len() >= 3)
            .chain(local.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 4));
        if email_words.into_iter().any(|w| lower.contains(w)) {
            problems.push(PasswordProblem::ContainsEmailName);
        }
        let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
        if COMMON_PASSWORDS.iter().any(|c| *c == lower || *c == stem) {
            problems.push(PasswordProblem::Common);
        }
        if problems.is_empty() { Ok(Self(password.to_owned())) } else { Err(WeakPassword(problems)) }
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

/// Why a stored password hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordHashError {
    /// Not a PHC string, or not Argon2id.
    #[error("stored password hash is not an Argon2id PHC string")]
    Malformed,
    /// Hashing failed (parameters rejected).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// An Argon2id password hash in PHC string form (`$argon2id$v=19$m=…`), the parameters and salt
/// carried inside so they can be raised later without invalidating old hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes a new password with Argon2id (v1.3, the argon2 crate's default OWASP parameters:
    /// 19 MiB, 2 passes, 1 lane) and a 16-byte random salt.
    pub fn new(password: &NewPassword) -> Result<Self, PasswordHashError> {
        Self::of_secret(&password.0)
    }

    /// Hashes a secret that has its own rules instead of the password strength rules (a soft
    /// token's PIN, a normalized recovery answer).
    pub(crate) fn of_secret(secret: &str) -> Result<Self, PasswordHashError> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).expect("the system RNG works");
        let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordHashError::Hashing(e.to_string()))?;
        let hash = argon2id()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|e| PasswordHashError::Hashing(e.to_string()))?;
        Ok(Self(hash.to_string()))
    }

    /// Wraps a stored PHC string, refusing anything but Argon2id.
    pub fn from_phc(s: &str) -> Result<Self, PasswordHashError> {
        let parsed = argon2::password_hash::PasswordHash::new(s).map_err(|_| PasswordHashError::Malformed)?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.hash.is_none() {
            return Err(PasswordHashError::Malformed);
        }
        Ok(Self(s.to_owned()))
    }

    /// The PHC string, for the store.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the password. The hash outputs are compared in constant time
    /// (password-hash's `Output` equality), so timing reveals nothing about the stored hash.
    pub fn verify(&self, candidate: &str) -> bool {
        match argon2::password_hash::PasswordHash::new(&self.0) {
            Ok(parsed) => argon2id().verify_password(candidate.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    /// [`Self::new`], working in `memory` instead of a fresh allocation.
    pub fn new_in(password: &NewPassword, memory: &mut HashMemory) -> Result<Self, PasswordHashError> {
        let hashing = |e: &dyn fmt::Display| PasswordHashError::Hashing(e.to_string());
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).expect("the system RNG works");
        let params = Params::default();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2id()
            .hash_password_into_with_memory(password.0.as_bytes(), &salt, &mut out, memory.blocks(&params))
            .map_err(|e| hashing(&e))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| hashing(&e))?;
        let phc = argon2::password_hash::PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: (&params).try_into().map_err(|e: argon2::password_hash::Error| hashing(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| hashing(&e))?),
        };
        Ok(Self(phc.to_string()))
    }

    /// [`Self::verify`], working in `memory` instead of a fresh allocation.
    pub fn verify_in(&self, candidate: &str, memory: &mut HashMemory) -> bool {
        let Ok(parsed) = argon2::password_hash::PasswordHash::new(&self.0) else { return false };
        let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&parsed), parsed.salt, parsed.hash) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
        let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
        let Ok(version) = version else { return false };
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params.clone());
        argon2.hash_password_into_with_memory(candidate.as_bytes(), salt, &mut out, memory.blocks(&params)).is_ok()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
    }
}

/// Argon2id's working memory, kept and reused by a server that bounds how many hashes run at
/// once. A fresh 19 MiB allocation per check is returned to the allocator but rarely to the
/// system, so under a flood the process grew far past the bound; reused memory stays at it.
pub struct HashMemory(Vec<argon2::Block>);

impl HashMemory {
    /// Memory for the parameters [`PasswordHash::new`] uses (19 MiB).
    pub fn new() -> Self {
        Self(vec![argon2::Block::default(); Params::default().block_count()])
    }

    /// Exactly the blocks `params` need, growing first if a stored hash asks for more.
    fn blocks(&mut self, params: &Params) -> &mut [argon2::Block] {
        let needed = params.block_count();
        if self.0.len() < needed {
            self.0.resize(needed, argon2::Block::default());
        }
        &mut self.0[..needed]
    }
}

impl Default for HashMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashMemory({} KiB)", self.0.len())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(argon2id)")
    }
}

fn argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// No hashing slot came free in time: the caller should answer "busy, retry shortly".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are running; try again shortly")]
pub struct HashingBusy;

/// Where Argon2id verifications run. Each takes 19 MiB and tens of milliseconds of a core, so
/// a server bounds how many run at once and keeps them off its async workers; the domain
/// only says when one is needed.
pub trait PasswordChecker: Send + Sync {
    /// Whether `candidate` is the password `hash` was made from; [`HashingBusy`] when the
    /// bound was reached.
    fn verify(
        &self,
        hash: PasswordHash,
        candidate: String,
    ) -> impl std::future::Future<Output = Result<bool, HashingBusy>> + Send;
}

/// Verifies on the blocking pool without a bound: for the command line, where one person
/// types one password.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnboundedChecker;

impl PasswordChecker for UnboundedChecker {
    async fn verify(&self, hash: PasswordHash, candidate: String) -> Result<bool, HashingBusy> {
        // A panic inside Argon2 cannot be a match.
        Ok(tokio::task::spawn_blocking(move || hash.verify(&candidate)).await.unwrap_or(false))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_strength_reasons() {
        let email = Email::new("jane.doe@acme.example").unwrap();
        let problems = |pw: &str| NewPassword::new(pw, &email).err().map(|w| w.0).unwrap_or_default();
        assert!(problems("tidal-Kettle-93").is_empty());
        assert_eq!(problems("Short1!"), [PasswordProblem::TooShort(7)]);
        assert_eq!(problems("alllowercaseletters"), [PasswordProblem::OneCharacterClass]);
        assert_eq!(problems("Jane.Doe-2025-ok"), [PasswordProblem::ContainsEmailName]);
        assert_eq!(problems("xx-JANE-forever-9"), [PasswordProblem::ContainsEmailName]);
        assert_eq!(problems("Password2024!"), [PasswordProblem::Common]);
        assert_eq!(
            problems("password"),
            [PasswordProblem::TooShort(8), PasswordProblem::OneCharacterClass, PasswordProblem::Common]
        );
        let msg = NewPassword::new("abc", &email).unwrap_err().to_string();
        assert!(msg.contains("at least 12 characters (this one has 3)") && msg.contains("mix at least two"), "{msg}");
    }

    #[test]
    fn hashing_in_kept_memory_matches_the_allocating_path() {
        let password = NewPassword::new("Lantern-Fjord-Cobalt-27", &Email::new("jane@example.test").unwrap()).unwrap();
        let mut memory = HashMemory::new();
        let kept = PasswordHash::new_in(&password, &mut memory).unwrap();
        assert!(kept.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", kept.as_phc());
        assert!(PasswordHash::from_phc(kept.as_phc()).is_ok());
        assert!(kept.verify("Lantern-Fjord-Cobalt-27"), "the allocating path reads what the kept one wrote");
        let allocated = PasswordHash::new(&password).unwrap();
        for hash in [&kept, &allocated] {
            assert!(hash.verify_in("Lantern-Fjord-Cobalt-27", &mut memory));
            assert!(!hash.verify_in("Lantern-Fjord-Cobalt-28", &mut memory));
        }
        // A stored hash with more memory than today's parameters still verifies.
        let bigger = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32 * 1024, 2, 1, None).unwrap());
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let phc = bigger.hash_password(b"older-secret", &salt).unwrap().to_string();
        assert!(PasswordHash::from_phc(&phc).unwrap().verify_in("older-secret", &mut memory));
        assert!(!PasswordHash::from_phc(&phc).unwrap().verify_in("older-secreT", &mut memory));
    }

    #[test]
    fn password_hash_is_argon2id_and_verifies() {
        let email = Email::new("jane.doe@acme.example").unwrap();
        let hash = PasswordHash::new(&NewPassword::new("tidal-Kettle-93", &email).unwrap()).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$"), "{}", hash.as_phc());
        assert!(hash.verify("tidal-Kettle-93"));
        assert!(!hash.verify("tidal-kettle-93"));
        let stored = PasswordHash::from_phc(hash.as_phc()).unwrap();
        assert!(stored.verify("tidal-Kettle-93"));
        assert_eq!(format!("{stored:?}"), "PasswordHash(argon2id)");
        assert_eq!(PasswordHash::from_phc("$2b$10$abcdefghijklmnopqrstuv"), Err(PasswordHashError::Malformed));
        let argon2i = hash.as_phc().replacen("argon2id", "argon2i", 1);
        assert_eq!(PasswordHash::from_phc(&argon2i), Err(PasswordHashError::Malformed));
    }

    #[test]
    fn new_passwords_never_debug_print() {
        let pw = NewPassword::new("Correct-Horse-42", &Email::new("x@y.example").unwrap()).unwrap();
        assert_eq!(format!("{pw:?}"), "NewPassword(<redacted>)");
    }
}
