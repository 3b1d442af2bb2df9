//! Vetted subject values. Each newtype checks its input once, so a certificate can only be
//! built from names that fit X.509 and the ECA naming rules (DESIGN §2).

use serde::{Deserialize, Serialize};

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
    /// Not an ASCII addr-spec (rfc822Name is an IA5String).
    #[error("{0:?} is not a valid email address")]
    Email(String),
    /// Not a valid DNS host name.
    #[error("{0:?} is not a valid DNS name")]
    DnsName(String),
}

fn directory_string(field: &'static str, s: &str) -> Result<String, SubjectError> {
    if s.is_empty() || s.chars().count() > 64 {
        return Err(SubjectError::Length { field });
    }
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(SubjectError::Characters { field });
    }
    Ok(s.to_owned())
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
}
