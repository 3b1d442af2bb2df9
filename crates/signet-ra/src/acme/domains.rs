//! DNS names: the domains registered for an organization, the scope they make for an EAB key
//! and its account, and the identifiers an order asks for under them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use signet_pki::subject::DnsName;

use super::AcmeInputError;

/// Orders and hashes a wrapper of a [`DnsName`] by its text (signet-pki's `DnsName` is
/// lowercased on construction, so equal text is the same name).
macro_rules! by_name {
    ($($t:ident),*) => {$(
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.as_str().hash(state);
            }
        }
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_str().cmp(other.0.as_str())
            }
        }
    )*};
}

/// A DNS domain registered for an organization: it covers itself and every name below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainSuffix(DnsName);

impl DomainSuffix {
    /// Checks a domain; it needs two labels at least.
    pub fn new(s: &str) -> Result<Self, AcmeInputError> {
        let name = DnsName::new(s.trim())?;
        if !name.as_str().contains('.') {
            return Err(AcmeInputError::TopLevelSuffix(name.as_str().to_owned()));
        }
        Ok(Self(name))
    }

    /// Whether `name` is this domain or below it (label-wise: `evilacme.example` is not
    /// under `acme.example`).
    pub fn covers(&self, name: &DnsName) -> bool {
        let (n, d) = (name.as_str(), self.0.as_str());
        n == d || n.strip_suffix(d).is_some_and(|head| head.ends_with('.'))
    }

    /// The domain.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for DomainSuffix {
    type Error = AcmeInputError;
    fn try_from(s: String) -> Result<Self, AcmeInputError> {
        Self::new(&s)
    }
}

impl From<DomainSuffix> for String {
    fn from(d: DomainSuffix) -> String {
        d.0.into()
    }
}

/// The domains an EAB key (and the account it binds) may get certificates for; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainScope(BTreeSet<DomainSuffix>);

impl DomainScope {
    /// A scope from a comma-separated list (`a.example,b.example`).
    pub fn parse(list: &str) -> Result<Self, AcmeInputError> {
        Self::new(list.split(',').filter(|s| !s.trim().is_empty()).map(DomainSuffix::new).collect::<Result<_, _>>()?)
    }

    /// A scope from checked domains.
    pub fn new(domains: BTreeSet<DomainSuffix>) -> Result<Self, AcmeInputError> {
        if domains.is_empty() { Err(AcmeInputError::NoDomains) } else { Ok(Self(domains)) }
    }

    /// Whether some domain of the scope covers `name`.
    pub fn covers(&self, name: &DnsName) -> bool {
        self.0.iter().any(|d| d.covers(name))
    }

    /// The domains, sorted.
    pub fn domains(&self) -> impl Iterator<Item = &DomainSuffix> {
        self.0.iter()
    }
}

/// An ACME identifier: a DNS host name, the only type issued (RFC 8555 §9.7.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(DnsName);

by_name!(DomainSuffix, Identifier);

impl Identifier {
    /// Checks an identifier object's `type` and `value`.
    pub fn parse(kind: &str, value: &str) -> Result<Self, AcmeInputError> {
        if kind != "dns" {
            return Err(AcmeInputError::IdentifierType(kind.chars().take(40).collect()));
        }
        if value.starts_with("*.") {
            return Err(AcmeInputError::Wildcard(value.chars().take(260).collect()));
        }
        Ok(Self(DnsName::new(value)?))
    }

    /// The host name.
    pub fn name(&self) -> &DnsName {
        &self.0
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::{AcmeProblem, ProblemKind};

    #[test]
    fn domain_suffixes_cover_by_label() {
        let scope = DomainScope::parse("acme.example, b.example").unwrap();
        let covered = |n: &str| scope.covers(&DnsName::new(n).unwrap());
        assert!(covered("acme.example"));
        assert!(covered("device.acme.example"));
        assert!(covered("x.y.B.example"));
        assert!(!covered("evilacme.example"), "a suffix match must end on a label boundary");
        assert!(!covered("example"));
        assert!(!covered("acme.example.evil"));
        assert_eq!(DomainScope::parse(" , "), Err(AcmeInputError::NoDomains));
        assert_eq!(DomainSuffix::new("example"), Err(AcmeInputError::TopLevelSuffix("example".into())));
        assert!(DomainSuffix::new("*.acme.example").is_err());
    }

    #[test]
    fn identifiers_are_dns_names_without_wildcards() {
        assert_eq!(Identifier::parse("dns", "Device.Acme.Example").unwrap().name().as_str(), "device.acme.example");
        assert_eq!(Identifier::parse("ip", "127.0.0.1"), Err(AcmeInputError::IdentifierType("ip".into())));
        assert!(matches!(Identifier::parse("dns", "*.acme.example"), Err(AcmeInputError::Wildcard(_))));
        assert!(matches!(Identifier::parse("dns", "bad_name.example"), Err(AcmeInputError::Name(_))));
        let p: AcmeProblem = AcmeInputError::IdentifierType("ip".into()).into();
        assert_eq!(p.kind, ProblemKind::UnsupportedIdentifier);
    }
}
