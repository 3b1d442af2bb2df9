//! Typed input: why a value someone typed was refused ([`InputError`]), and what the parsing
//! newtypes share — Crockford base32 for references and codes that are read aloud or retyped,
//! the trimmed-text rule, (de)serialization through the checking constructor, and the ISO date
//! format of stored dates.

use signet_pki::subject::SubjectError;

time::serde::format_description!(pub(crate) iso_date, Date, "[year]-[month]-[day]");

/// Why an input value was refused. Messages are written for the applicant or operator who
/// typed the value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A name, organization or email failed the X.509 naming rules.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// The certificate type is not in the certificate catalog.
    #[error("{0:?} is not a certificate type")]
    UnknownCertificateType(String),
    /// The type exists but is not for people (e.g. device certificates).
    #[error("{0:?} certificates are not applied for through the enrollment portal")]
    NotASubscriberType(String),
    /// Validity must be 1, 2 or 3 years and allowed by the type's profile.
    #[error("{years} years is not a validity offered for {cert_type}")]
    Validity {
        /// Type id.
        cert_type: String,
        /// Requested years.
        years: u8,
    },
    /// The price table has no entry for the choice.
    #[error("no price is set for {cert_type} for {years} years")]
    NoPrice {
        /// Type id.
        cert_type: String,
        /// Years.
        years: u8,
    },
    /// A required text field is empty, too long, or has control characters.
    #[error("{field} must be 1 to {max} characters without control characters")]
    Text {
        /// Which field.
        field: &'static str,
        /// Upper bound in characters.
        max: usize,
    },
    /// Not a U.S. state, territory or military (AA/AE/AP) code.
    #[error("Choose your state, territory or military address (AA, AE, AP) from the list.")]
    StateCode(String),
    /// Not a ZIP code (12345 or 12345-6789).
    #[error("{0:?} is not a ZIP code (12345 or 12345-6789)")]
    ZipCode(String),
    /// Not a phone number.
    #[error("{0:?} is not a phone number (10 digits, or + and country code)")]
    Phone(String),
    /// Not a purchase-order number.
    #[error("{0:?} is not a purchase-order number (1 to 30 letters, digits, '-', '/', '.')")]
    PoNumber(String),
    /// Not a valid card number (length or check digit).
    #[error("that is not a valid card number")]
    CardNumber,
    /// Not an operator id.
    #[error("{0:?} is not an operator id")]
    OperatorId(String),
    /// Not an application reference.
    #[error("{0:?} is not an application reference")]
    ApplicationId(String),
    /// Not an activation code as printed in the email.
    #[error("that is not an activation code (16 letters and digits, as in the email)")]
    ActivationCode,
    /// Not an email verification token.
    #[error("the verification link is damaged; copy the whole link from the email")]
    VerificationToken,
    /// Not a tracking number for the named carrier.
    #[error("{number:?} is not a {carrier} tracking number")]
    TrackingNumber {
        /// Carrier display name.
        carrier: &'static str,
        /// The value.
        number: String,
    },
    /// Not an accepted identity document type.
    #[error("{0:?} is not an accepted identity document type")]
    DocumentType(String),
}

pub(crate) const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `n` random Crockford base32 characters (5 bits each; 256 is a multiple of 32, so masking
/// a random byte is unbiased).
pub(crate) fn random_base32(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG works");
    bytes.iter().map(|b| CROCKFORD[usize::from(b & 31)] as char).collect()
}

/// Uppercases and maps the look-alikes Crockford base32 folds (O→0, I/L→1), dropping the
/// separators people type; `None` if anything else is left over.
pub(crate) fn crockford_normalize(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !matches!(c, '-' | ' ')) {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !CROCKFORD.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

macro_rules! string_serde {
    ($($t:ident),*) => {$(
        impl TryFrom<String> for $t {
            type Error = $crate::input::InputError;
            fn try_from(s: String) -> Result<Self, $crate::input::InputError> {
                Self::new(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
    )*};
}
pub(crate) use string_serde;

macro_rules! string_display {
    ($($t:ident),*) => {$(
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
pub(crate) use string_display;

/// Trimmed text of 1 to `max` characters without control characters, else [`InputError::Text`].
pub(crate) fn text(field: &'static str, max: usize, s: &str) -> Result<String, InputError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(InputError::Text { field, max });
    }
    Ok(t.to_owned())
}
