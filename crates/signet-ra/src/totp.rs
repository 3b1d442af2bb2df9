//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): the second factor of operator
//! sign-in and of the subscriber soft token (DESIGN §2 "CMC / soft token": TOTP,
//! SHA-1 or SHA-256, 6 or 8 digits, 30 s).
//!
//! A code is accepted one step either side of now (clock drift between phone and server) and
//! only once: [`Totp::verify`] refuses every step at or before the last one accepted and returns
//! the step to store, so a code observed over a shoulder or replayed on another node is dead.

use std::fmt;

use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;
use time::OffsetDateTime;

/// RFC 6238's time step X, fixed: authenticator apps assume 30 s and DESIGN §2 asks for it.
pub const PERIOD_SECONDS: u64 = 30;

/// 160 bits: RFC 4226 §4 recommends it, and pyotp refuses secrets under 112 bits.
const SECRET_BYTES: usize = 20;

/// Why a TOTP setting or secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// Not base32, or not exactly 160 bits.
    #[error("a TOTP secret is 32 base32 characters (160 bits)")]
    Secret,
    /// Neither SHA1 nor SHA256.
    #[error("{0:?} is not a TOTP algorithm (SHA1 or SHA256)")]
    Algorithm(String),
    /// Neither 6 nor 8.
    #[error("{0:?} is not a TOTP code length (6 or 8 digits)")]
    Digits(String),
}

/// Why a code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeRejected {
    /// Not the configured number of digits.
    #[error("the code is not the right number of digits")]
    Malformed,
    /// No step in the window produces it.
    #[error("the code is not correct")]
    Wrong,
    /// It matches a step that was already used (or an earlier one): a replay.
    #[error("the code was already used")]
    Replayed,
}

/// The HMAC behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1: RFC 6238's default, what every authenticator app supports. HMAC keeps it
    /// sound here despite SHA-1's collisions.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
}

impl TotpAlgorithm {
    /// The name in otpauth URIs and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
        }
    }
}

impl std::str::FromStr for TotpAlgorithm {
    type Err = TotpError;
    /// Accepts the URI spelling and the dashed one (`SHA1`, `sha-256`).
    fn from_str(s: &str) -> Result<Self, TotpError> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            _ => Err(TotpError::Algorithm(s.to_owned())),
        }
    }
}

/// How many digits a code has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digits {
    /// Six, what authenticator apps show by default.
    Six,
    /// Eight.
    Eight,
}

impl Digits {
    /// The count.
    pub fn count(self) -> u32 {
        match self {
            Self::Six => 6,
            Self::Eight => 8,
        }
    }
}

impl TryFrom<u32> for Digits {
    type Error = TotpError;
    fn try_from(n: u32) -> Result<Self, TotpError> {
        match n {
            6 => Ok(Self::Six),
            8 => Ok(Self::Eight),
            n => Err(TotpError::Digits(n.to_string())),
        }
    }
}

impl std::str::FromStr for Digits {
    type Err = TotpError;
    fn from_str(s: &str) -> Result<Self, TotpError> {
        s.parse::<u32>().map_err(|_| TotpError::Digits(s.to_owned())).and_then(Self::try_from)
    }
}

/// A 160-bit TOTP seed. Debug never prints it; [`TotpSecret::to_base32`] is the one way out, for
/// showing it once at enrollment and for the store.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut b = [0u8; SECRET_BYTES];
        aws_lc_rs::rand::fill(&mut b).expect("the system RNG works");
        Self(b)
    }

    /// Parses the RFC 4648 base32 form (no padding), as typed: any case, spaces ignored.
    pub fn from_base32(s: &str) -> Result<Self, TotpError> {
        let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        let bytes = BASE32_NOPAD.decode(cleaned.as_bytes()).map_err(|_| TotpError::Secret)?;
        Ok(Self(bytes.try_into().map_err(|_| TotpError::Secret)?))
    }

    /// The RFC 4648 base32 form without padding (32 characters), as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// A TOTP generator-verifier: secret, algorithm and code length (the period is always 30 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    secret: TotpSecret,
    algorithm: TotpAlgorithm,
    digits: Digits,
}

impl Totp {
    /// A TOTP over `secret`.
    pub fn new(secret: TotpSecret, algorithm: TotpAlgorithm, digits: Digits) -> Self {
        Self { secret, algorithm, digits }
    }

    /// The secret.
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// The algorithm.
    pub fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// The code length.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The time step `at` falls in (RFC 6238 T, with T0 = 0). Times before 1970 are step 0.
    pub fn step_at(at: OffsetDateTime) -> u64 {
        u64::try_from(at.unix_timestamp()).unwrap_or(0) / PERIOD_SECONDS
    }

    /// The code for step `step` (RFC 4226 §5.3 dynamic truncation), zero-padded.
    pub fn code_at_step(&self, step: u64) -> String {
        let key = hmac::Key::new(self.algorithm.hmac(), &self.secret.0);
        let mac = hmac::sign(&key, &step.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let word = u32::from_be_bytes([mac[offset], mac[offset + 1], mac[offset + 2], mac[offset + 3]]) & 0x7fff_ffff;
        let digits = self.digits.count();
        format!("{:0width$}", word % 10u32.pow(digits), width = digits as usize)
    }

    /// The code shown at `at`.
    pub fn code(&self, at: OffsetDateTime) -> String {
        self.code_at_step(Self::step_at(at))
    }

    /// Checks `code` (spaces ignored) against the steps before, at and after `at`, skipping
    /// every step at or before `last_accepted`. Returns the matching step, which the caller
    /// stores as the new `last_accepted` — with a compare-and-set, so two nodes cannot both
    /// accept it. Every candidate is compared, in constant time, so timing reveals neither the
    /// code nor which step matched.
    pub fn verify(&self, code: &str, at: OffsetDateTime, last_accepted: Option<u64>) -> Result<u64, CodeRejected> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != self.digits.count() as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodeRejected::Malformed);
        }
        let now = Self::step_at(at);
        let mut fresh = None;
        let mut used = false;
        for step in now.saturating_sub(1)..=now + 1 {
            let candidate = self.code_at_step(step);
            if aws_lc_rs::constant_time::verify_slices_are_equal(candidate.as_bytes(), code.as_bytes()).is_ok() {
                if last_accepted.is_some_and(|last| step <= last) {
                    used = true;
                } else if fresh.is_none() {
                    fresh = Some(step);
                }
            }
        }
        match (fresh, used) {
            (Some(step), _) => Ok(step),
            (None, true) => Err(CodeRejected::Replayed),
            (None, false) => Err(CodeRejected::Wrong),
        }
    }

    /// The Key URI that authenticator apps read from a QR code:
    /// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=…&digits=…&period=30`.
    /// Issuer and account are percent-encoded, and the issuer appears in both places, as the
    /// Key URI Format asks, so old apps (label) and new ones (parameter) show the same name.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={PERIOD_SECONDS}",
            percent_encode(account),
            self.secret.to_base32(),
            self.algorithm.name(),
            self.digits.count(),
        )
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use time::Duration;
    use time::macros::{datetime, format_description};

    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed, "12345678901234567890".
    const RFC_SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const T0: OffsetDateTime = datetime!(2025-03-03 15:00:00 UTC);

    fn totp(secret: &str, algorithm: TotpAlgorithm, digits: Digits) -> Totp {
        Totp::new(TotpSecret::from_base32(secret).unwrap(), algorithm, digits)
    }

    /// What oathtool, an independent implementation, shows at `at`.
    fn oathtool(t: &Totp, at: OffsetDateTime) -> String {
        let now = at.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).unwrap();
        let out = Command::new("oathtool")
            .arg(format!("--totp={}", t.algorithm().name().to_lowercase()))
            .args(["-b", "--digits", &t.digits().count().to_string(), "--now", &now])
            .arg(t.secret().to_base32())
            .output()
            .expect("oathtool must be installed (scripts/test.sh installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn rfc_6238_vectors() {
        let t = totp(RFC_SEED, TotpAlgorithm::Sha1, Digits::Eight);
        for (unix, code) in [(59, "94287082"), (1_111_111_109, "07081804"), (2_000_000_000, "69279037")] {
            assert_eq!(t.code(OffsetDateTime::from_unix_timestamp(unix).unwrap()), code, "at {unix}");
        }
    }

    #[test]
    fn codes_match_oathtool() {
        for (algorithm, digits) in [
            (TotpAlgorithm::Sha1, Digits::Six),
            (TotpAlgorithm::Sha1, Digits::Eight),
            (TotpAlgorithm::Sha256, Digits::Six),
            (TotpAlgorithm::Sha256, Digits::Eight),
        ] {
            let t = Totp::new(TotpSecret::generate(), algorithm, digits);
            for at in [T0, T0 + Duration::seconds(29), T0 + Duration::seconds(30), datetime!(2038-01-19 03:14:08 UTC)] {
                let code = oathtool(&t, at);
                assert_eq!(code.len(), digits.count() as usize);
                assert_eq!(t.code(at), code, "{algorithm:?}/{digits:?} at {at}");
            }
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let t = Totp::new(TotpSecret::generate(), TotpAlgorithm::Sha256, Digits::Eight);
        let now = T0 + Duration::seconds(10);
        let step = Totp::step_at(now);
        // Codes oathtool shows at the last second of the step two before, the first second of the
        // one before, the last second of the one after, and the first second of the one after that.
        let two_before = oathtool(&t, T0 - Duration::seconds(31));
        let one_before = oathtool(&t, T0 - Duration::seconds(30));
        let one_after = oathtool(&t, T0 + Duration::seconds(59));
        let two_after = oathtool(&t, T0 + Duration::seconds(60));
        assert_eq!(t.verify(&one_before, now, None), Ok(step - 1));
        assert_eq!(t.verify(&one_after, now, None), Ok(step + 1));
        assert_eq!(t.verify(&oathtool(&t, now), now, None), Ok(step));
        assert_eq!(t.verify(&two_before, now, None), Err(CodeRejected::Wrong));
        assert_eq!(t.verify(&two_after, now, None), Err(CodeRejected::Wrong));
    }

    #[test]
    fn an_accepted_step_is_never_accepted_again() {
        let t = Totp::new(TotpSecret::generate(), TotpAlgorithm::Sha1, Digits::Six);
        let code = oathtool(&t, T0);
        let step = t.verify(&code, T0, None).unwrap();
        assert_eq!(t.verify(&code, T0, Some(step)), Err(CodeRejected::Replayed));
        // Still inside the window a step later, still refused.
        assert_eq!(t.verify(&code, T0 + Duration::seconds(30), Some(step)), Err(CodeRejected::Replayed));
        // A code from before the last accepted step is a replay too, not merely wrong.
        let earlier = oathtool(&t, T0 - Duration::seconds(30));
        assert_eq!(t.verify(&earlier, T0, Some(step)), Err(CodeRejected::Replayed));
        // The next step's code is fresh.
        let next = oathtool(&t, T0 + Duration::seconds(30));
        assert_eq!(t.verify(&next, T0 + Duration::seconds(30), Some(step)), Ok(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused_before_comparison() {
        let t = totp(RFC_SEED, TotpAlgorithm::Sha1, Digits::Six);
        let code = t.code(T0);
        assert_eq!(t.verify(&format!("{} {}", &code[..3], &code[3..]), T0, None), Ok(Totp::step_at(T0)));
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(t.verify(bad, T0, None), Err(CodeRejected::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn secret_base32_round_trip_and_redaction() {
        let s = TotpSecret::generate();
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(!b32.contains('='));
        assert_eq!(TotpSecret::from_base32(&b32.to_lowercase()).unwrap(), s);
        assert_eq!(TotpSecret::from_base32(&format!("{} {}", &b32[..16], &b32[16..])).unwrap(), s);
        assert_eq!(format!("{s:?}"), "TotpSecret(<redacted>)");
        assert!(!format!("{:?}", Totp::new(s, TotpAlgorithm::Sha1, Digits::Six)).contains(&b32));
        // 80 bits, and a character outside the alphabet.
        assert_eq!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQ"), Err(TotpError::Secret));
        assert_eq!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1"), Err(TotpError::Secret));
    }

    #[test]
    fn settings_parse() {
        assert_eq!("sha-256".parse(), Ok(TotpAlgorithm::Sha256));
        assert_eq!("SHA1".parse(), Ok(TotpAlgorithm::Sha1));
        assert_eq!("md5".parse::<TotpAlgorithm>(), Err(TotpError::Algorithm("md5".into())));
        assert_eq!(Digits::try_from(8), Ok(Digits::Eight));
        assert_eq!(Digits::try_from(7), Err(TotpError::Digits("7".into())));
        assert_eq!("8".parse(), Ok(Digits::Eight));
        assert!("six".parse::<Digits>().is_err());
    }

    #[test]
    fn key_uri() {
        let t = totp(RFC_SEED, TotpAlgorithm::Sha256, Digits::Eight);
        assert_eq!(
            t.uri("Signet RA", "jane.doe@ra.example"),
            "otpauth://totp/Signet%20RA:jane.doe%40ra.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Signet%20RA&algorithm=SHA256&digits=8&period=30"
        );
    }
}
