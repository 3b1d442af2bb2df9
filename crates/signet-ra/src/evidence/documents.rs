//! Identity documents: who may proof identity for each certificate type, the accepted document
//! types with their number formats, and one document as recorded (type and number, never an
//! image).

use serde::{Deserialize, Serialize};
use time::Date;

use crate::input::{InputError, iso_date};

/// Who may proof identity for a certificate type (DESIGN §2 table, "proofing" column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofingRule {
    /// A notary or a registrar.
    NotaryOrRegistrar,
    /// A registrar or Trusted Agent in person; never a notary.
    InPersonRegistrar,
}

/// The proofing rule of each subscriber type, as data. A test ties it to the certificate
/// catalog's `proofing` text so the two cannot disagree.
pub const PROOFING_RULES: &[(&str, ProofingRule)] = &[
    ("medium", ProofingRule::NotaryOrRegistrar),
    ("medium-token", ProofingRule::NotaryOrRegistrar),
    ("medium-hardware", ProofingRule::InPersonRegistrar),
];

/// The rule for a type; a type not in the table gets the strict rule (fail closed).
pub fn proofing_rule(cert_type: &str) -> ProofingRule {
    PROOFING_RULES.iter().find(|(t, _)| *t == cert_type).map_or(ProofingRule::InPersonRegistrar, |(_, r)| *r)
}

/// The form's document lists (seed: "passport from List A, or driver's license from List B").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentList {
    /// Federal government-issued photo identification: one suffices.
    A,
    /// Non-federal government identification: two, one with a photo.
    B,
}

/// Which characters a document number may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// Digits only.
    Digits,
    /// Letters and digits.
    Alphanumeric,
}

/// A document type's number format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberFormat {
    /// Shortest length.
    pub min: usize,
    /// Longest length.
    pub max: usize,
    /// Allowed characters.
    pub charset: Charset,
    /// The format in words, for findings.
    pub hint: &'static str,
}

/// An accepted identity document type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentKind {
    /// Stored id, e.g. `us-passport`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// List A or B.
    pub list: DocumentList,
    /// Whether it carries a photo.
    pub photo: bool,
    /// Its number's format.
    pub number: NumberFormat,
}

const fn number_format(min: usize, max: usize, charset: Charset, hint: &'static str) -> NumberFormat {
    NumberFormat { min, max, charset, hint }
}

/// The accepted identity documents, as data. Identity is established by one federal
/// government-issued photo ID (List A), or two non-federal government IDs of which one has a
/// photo (List B) — the ECA Certificate Policy's in-person identity rule.
pub const ACCEPTED_DOCUMENTS: &[DocumentKind] = &[
    DocumentKind {
        id: "us-passport",
        name: "U.S. passport",
        list: DocumentList::A,
        photo: true,
        number: number_format(9, 9, Charset::Alphanumeric, "9 characters (a letter and 8 digits, or 9 digits)"),
    },
    DocumentKind {
        id: "us-passport-card",
        name: "U.S. passport card",
        list: DocumentList::A,
        photo: true,
        number: number_format(9, 9, Charset::Alphanumeric, "9 characters starting with C"),
    },
    DocumentKind {
        id: "military-id",
        name: "U.S. military ID / Common Access Card",
        list: DocumentList::A,
        photo: true,
        number: number_format(10, 10, Charset::Digits, "the 10-digit DoD ID number"),
    },
    DocumentKind {
        id: "permanent-resident-card",
        name: "Permanent resident card",
        list: DocumentList::A,
        photo: true,
        number: number_format(13, 13, Charset::Alphanumeric, "3 letters and 10 digits"),
    },
    DocumentKind {
        id: "drivers-license",
        name: "State driver's license",
        list: DocumentList::B,
        photo: true,
        number: number_format(4, 20, Charset::Alphanumeric, "4 to 20 letters and digits"),
    },
    DocumentKind {
        id: "state-id-card",
        name: "State ID card",
        list: DocumentList::B,
        photo: true,
        number: number_format(4, 20, Charset::Alphanumeric, "4 to 20 letters and digits"),
    },
    DocumentKind {
        id: "birth-certificate",
        name: "Birth certificate (state-issued)",
        list: DocumentList::B,
        photo: false,
        number: number_format(4, 20, Charset::Alphanumeric, "4 to 20 letters and digits"),
    },
    DocumentKind {
        id: "voter-registration-card",
        name: "Voter registration card",
        list: DocumentList::B,
        photo: false,
        number: number_format(4, 20, Charset::Alphanumeric, "4 to 20 letters and digits"),
    },
];

/// A document number as the operator typed it: uppercased, spaces and dashes removed, 1–40
/// letters and digits. The type's own format is a vetting check ([`check_identity`]). Debug and
/// [`DocumentNumber::masked`] show only the last four characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocumentNumber(String);

impl DocumentNumber {
    /// Normalizes a number.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let n: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>().to_ascii_uppercase();
        if n.is_empty() || n.len() > 40 || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(InputError::Text { field: "document number", max: 40 });
        }
        Ok(Self(n))
    }
    /// The full number (for the store).
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// All but the last four characters starred, for audit details and pages.
    pub fn masked(&self) -> String {
        let keep = self.0.len().min(4);
        format!("{}{}", "*".repeat(self.0.len() - keep), &self.0[self.0.len() - keep..])
    }
}

impl std::fmt::Debug for DocumentNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DocumentNumber({})", self.masked())
    }
}

impl TryFrom<String> for DocumentNumber {
    type Error = InputError;
    fn try_from(s: String) -> Result<Self, InputError> {
        Self::new(&s)
    }
}

impl From<DocumentNumber> for String {
    fn from(v: DocumentNumber) -> String {
        v.0
    }
}

/// One identity document: type and number, never an image (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredDocument", into = "StoredDocument")]
pub struct IdentityDocument {
    kind: &'static DocumentKind,
    number: DocumentNumber,
    expires_on: Option<Date>,
}

#[derive(Serialize, Deserialize)]
struct StoredDocument {
    kind: String,
    number: DocumentNumber,
    #[serde(with = "iso_date::option")]
    expires_on: Option<Date>,
}

impl TryFrom<StoredDocument> for IdentityDocument {
    type Error = InputError;
    fn try_from(d: StoredDocument) -> Result<Self, InputError> {
        Ok(Self { kind: document_kind(&d.kind)?, number: d.number, expires_on: d.expires_on })
    }
}

impl From<IdentityDocument> for StoredDocument {
    fn from(d: IdentityDocument) -> Self {
        Self { kind: d.kind.id.to_owned(), number: d.number, expires_on: d.expires_on }
    }
}

fn document_kind(id: &str) -> Result<&'static DocumentKind, InputError> {
    ACCEPTED_DOCUMENTS.iter().find(|k| k.id == id).ok_or_else(|| InputError::DocumentType(id.to_owned()))
}

impl IdentityDocument {
    /// A document of an accepted type (by id) with its number and expiry date if it has one.
    pub fn new(kind: &str, number: &str, expires_on: Option<Date>) -> Result<Self, InputError> {
        Ok(Self { kind: document_kind(kind)?, number: DocumentNumber::new(number)?, expires_on })
    }
    /// The document type.
    pub fn kind(&self) -> &'static DocumentKind {
        self.kind
    }
    /// The number.
    pub fn number(&self) -> &DocumentNumber {
        &self.number
    }
    /// The expiry date, if the document has one.
    pub fn expires_on(&self) -> Option<Date> {
        self.expires_on
    }
}
#[cfg(test)]
mod tests {
    use signet_pki::profile::Catalog;

    use super::*;

    #[test]
    fn proofing_rules_agree_with_the_certificate_catalog() {
        let catalog = Catalog::default_eca();
        for (id, rule) in PROOFING_RULES {
            let t = catalog.types().iter().find(|t| t.id == *id).unwrap();
            assert_eq!(t.proofing.contains("not a notary"), *rule == ProofingRule::InPersonRegistrar, "{id}");
        }
        assert_eq!(proofing_rule("something-new"), ProofingRule::InPersonRegistrar);
    }
}
