//! Vetted subject values. Each newtype checks its input once, so a certificate can only be
//! built from names that fit X.509 and the ECA naming rules (DESIGN §2).

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Why a subject value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The value is empty or longer than the X.520 upper bound (64).
    #[error("{field} must be 1 to 64 characters")]
    Length {
        /// Which field.
        field: &'static str,
    },
    /// The value has control characters or leading/trailing spaces.
    #[error("{field} contains control characters or surrounding spaces")]
    Characters {
        /// Which field.
        field: &'static str,
    },
    /// A character a reader cannot see, or cannot trust to look like what it is.
    #[error(
        "{field} may not contain U+{code_point:04X} ({kind}); names hold only visible characters: \
         letters, digits, punctuation, ASCII symbols and the space"
    )]
    Character {
        /// Which field.
        field: &'static str,
        /// The refused character.
        code_point: u32,
        /// What it is, in words.
        kind: &'static str,
    },
    /// Not an ASCII addr-spec (rfc822Name is an IA5String).
    #[error("{0:?} is not a valid email address")]
    Email(String),
    /// Not a valid DNS host name.
    #[error("{0:?} is not a valid DNS name")]
    DnsName(String),
}

/// Names are shown to people who decide whom to trust by them, so they are stored in one
/// form (NFC: "é" typed as e + U+0301 is stored as U+00E9) and hold only characters that
/// look like what they are. Refused: controls and format characters (bidirectional overrides
/// and isolates, zero-width characters), unassigned, private-use and surrogate code points,
/// every separator but the ASCII space, symbols outside ASCII (emoji, ™), and a combining
/// mark with no character before it.
fn directory_string(field: &'static str, s: &str) -> Result<String, SubjectError> {
    let s: String = s.nfc().collect();
    if s.is_empty() || s.chars().count() > 64 {
        return Err(SubjectError::Length { field });
    }
    for (i, c) in s.chars().enumerate() {
        if let Some(kind) = invisible_kind(c, i == 0) {
            return Err(SubjectError::Character { field, code_point: c.into(), kind });
        }
    }
    if s.trim() != s {
        return Err(SubjectError::Characters { field });
    }
    Ok(s)
}

/// Why `c` may not appear in a name (`first`: it starts the name), or `None` if it may.
fn invisible_kind(c: char, first: bool) -> Option<&'static str> {
    if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}') {
        return Some("a bidirectional control");
    }
    let category = c.general_category();
    match category {
        GeneralCategory::Control | GeneralCategory::Format => Some("a control or format character"),
        GeneralCategory::Unassigned => Some("an unassigned code point"),
        GeneralCategory::PrivateUse | GeneralCategory::Surrogate => Some("a private-use code point"),
        GeneralCategory::SpaceSeparator if c == ' ' => None,
        GeneralCategory::SpaceSeparator | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("a space or separator other than the ASCII space")
        }
        _ if c.general_category_group() == GeneralCategoryGroup::Symbol && !c.is_ascii() => {
            Some("a symbol outside ASCII, such as an emoji")
        }
        _ if first && c.general_category_group() == GeneralCategoryGroup::Mark => {
            Some("a combining mark with no character before it")
        }
        _ => None,
    }
}

/// A person's or device's common name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommonName(String);

impl CommonName {
    /// Checks and wraps a common name.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        directory_string("common name", s).map(Self)
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The subscriber's organization (an OU under the CA vendor's OU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrganizationName(String);

impl OrganizationName {
    /// Checks and wraps an organization name.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        directory_string("organization", s).map(Self)
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address usable as an rfc822Name: ASCII, one `@`, a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Checks and wraps an email address (domain lowercased).
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        let bad = || SubjectError::Email(s.to_owned());
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        if !local_ok || DnsName::new(domain).is_err() || !domain.contains('.') || s.len() > 254 {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS host name (LDH labels, no wildcard), lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

impl DnsName {
    /// Checks and wraps a host name.
    pub fn new(s: &str) -> Result<Self, SubjectError> {
        let bad = || SubjectError::DnsName(s.to_owned());
        let s_trim = s.strip_suffix('.').unwrap_or(s);
        if s_trim.is_empty() || s_trim.len() > 253 {
            return Err(bad());
        }
        for label in s_trim.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad());
            }
        }
        Ok(Self(s_trim.to_ascii_lowercase()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_conversions {
    ($($t:ident),*) => {$(
        impl TryFrom<String> for $t {
            type Error = SubjectError;
            fn try_from(s: String) -> Result<Self, SubjectError> {
                Self::new(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_conversions!(CommonName, OrganizationName, Email, DnsName);

/// Who a certificate names, as the RA vetted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Subject {
    /// A subscriber: CN, organization and email (rfc822Name SAN).
    Person {
        /// Full name as proofed.
        common_name: CommonName,
        /// Employer organization.
        organization: OrganizationName,
        /// Email address.
        email: Email,
    },
    /// A device of an enterprise account: host names (first one is the CN).
    Device {
        /// Owning organization.
        organization: OrganizationName,
        /// Host names (at least one).
        dns_names: Vec<DnsName>,
    },
}

impl Subject {
    /// The CN: the person's name or the first host name.
    pub fn common_name(&self) -> &str {
        match self {
            Subject::Person { common_name, .. } => common_name.as_str(),
            Subject::Device { dns_names, .. } => dns_names.first().map_or("", DnsName::as_str),
        }
    }

    /// The subscriber organization.
    pub fn organization(&self) -> &OrganizationName {
        match self {
            Subject::Person { organization, .. } | Subject::Device { organization, .. } => organization,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::new("Jane.Doe@Example.COM").unwrap().as_str(), "Jane.Doe@example.com");
        for bad in ["", "nope", "a@b", "a@@b.c", "a b@c.d", "ü@c.d", ".a@b.c", "a@-b.c"] {
            assert!(Email::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_hosts() {
        assert!(CommonName::new("Jane Q. Doe").is_ok());
        assert_eq!(CommonName::new("").unwrap_err(), SubjectError::Length { field: "common name" });
        assert!(CommonName::new(&"x".repeat(65)).is_err());
        assert!(CommonName::new(" padded").is_err());
        assert!(OrganizationName::new("Acme\u{7}").is_err());
        assert_eq!(DnsName::new("WWW.Example.com.").unwrap().as_str(), "www.example.com");
        assert!(DnsName::new("*.example.com").is_err());
        assert!(DnsName::new("a..b").is_err());
    }

    #[test]
    fn names_that_lie_are_refused_with_the_character_named() {
        let e = CommonName::new("\u{202e}evil\u{1F600}").unwrap_err();
        assert_eq!(
            e,
            SubjectError::Character { field: "common name", code_point: 0x202E, kind: "a bidirectional control" }
        );
        let text = e.to_string();
        assert!(text.starts_with("common name may not contain U+202E (a bidirectional control)"), "{text}");
        for (bad, code_point) in [
            ("evil\u{1F600}", 0x1F600),  // emoji
            ("\u{301}Acme", 0x301),      // combining mark with nothing before it
            ("Ac\u{200B}me", 0x200B),    // zero width space (Cf)
            ("Acme\u{2066}Inc", 0x2066), // left-to-right isolate
            ("Acme\u{200F}", 0x200F),    // right-to-left mark
            ("Acme\u{61C}", 0x61C),      // Arabic letter mark
            ("Acme\u{AD}Inc", 0xAD),     // soft hyphen (Cf)
            ("Acme\u{E000}", 0xE000),    // private use
            ("Acme\u{378}", 0x378),      // unassigned
            ("Acme\u{A0}Inc", 0xA0),     // no-break space
            ("Acme\u{2028}Inc", 0x2028), // line separator
            ("Acme\u{85}", 0x85),        // next line (Cc)
            ("Acme\u{2122}", 0x2122),    // trade mark sign
        ] {
            match OrganizationName::new(bad) {
                Err(SubjectError::Character { field: "organization", code_point: c, .. }) => {
                    assert_eq!(c, code_point, "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        for good in [
            "José Müller",
            "Zoë O'Brien-Smith",
            "AT&T",
            "C++ Labs (US) $1 #2",
            "山田太郎",
            "Ελληνικά Α.Ε.",
            "Đặng Thị Hồng",
        ] {
            assert_eq!(CommonName::new(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn names_are_stored_nfc() {
        let nfd = "Jose\u{301} Mu\u{308}ller";
        let name = CommonName::new(nfd).unwrap();
        assert_eq!(name.as_str(), "Jos\u{E9} M\u{FC}ller");
        assert_eq!(OrganizationName::new("Cafe\u{301}, Inc.").unwrap().as_str(), "Caf\u{E9}, Inc.");
        // The same through serde, the API's way in.
        let parsed: CommonName = serde_json::from_str(&serde_json::to_string(nfd).unwrap()).unwrap();
        assert_eq!(parsed, name);
    }
}
