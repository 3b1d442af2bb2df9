//! Who and what the registration authority names: an application's reference, an RA
//! operator's login name, and the actor behind a transition (applicant, operator or the
//! background job).

use serde::{Deserialize, Serialize};

use crate::input::{InputError, crockford_normalize, random_base32, string_display, string_serde};

/// An application's reference: 12 Crockford base32 characters (60 random bits). It is printed
/// on the forms the applicant mails, so it is short and survives being read aloud.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApplicationId(String);

impl ApplicationId {
    /// A fresh random reference; the store's uniqueness constraint catches the improbable clash.
    pub fn generate() -> Self {
        Self(random_base32(12))
    }
    /// Parses a reference as typed (any case, dashes ignored).
    pub fn new(s: &str) -> Result<Self, InputError> {
        match crockford_normalize(s) {
            Some(v) if v.len() == 12 => Ok(Self(v)),
            _ => Err(InputError::ApplicationId(s.to_owned())),
        }
    }
    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An RA operator's login name, as the operator console authenticates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperatorId(String);

impl OperatorId {
    /// Checks and wraps an operator id: 1–64 of letters, digits, `.`, `_`, `-`, `@`.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok { Ok(Self(s.to_owned())) } else { Err(InputError::OperatorId(s.to_owned())) }
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_serde!(ApplicationId, OperatorId);
string_display!(ApplicationId, OperatorId);

/// Who asks for a transition. The web layer authenticates; the domain decides who may do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The applicant, signed in to this application.
    Applicant,
    /// An RA operator in the operator console.
    Operator(OperatorId),
    /// The background deadline job.
    System,
}

impl Actor {
    /// The audit log's actor string.
    pub fn audit_name(&self) -> String {
        match self {
            Self::Applicant => "applicant".to_owned(),
            Self::Operator(op) => format!("operator:{op}"),
            Self::System => "system".to_owned(),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_typed() {
        let id = ApplicationId::generate();
        assert_eq!(ApplicationId::new(&id.as_str().to_lowercase()).unwrap(), id);
        assert!(ApplicationId::new("short").is_err());
        assert!(OperatorId::new("alice@ra").is_ok() && OperatorId::new("alice smith").is_err());
    }
}
