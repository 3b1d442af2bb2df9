//! The enrollment application (DESIGN §2 "Application"): what an applicant submits —
//! as parsed newtypes, so a form that exists is a form that was checked — and the lifecycle it
//! then goes through, as a closed enum whose transitions consume the application and return
//! the next one, an audit event, and any one-time secret to email.
//!
//! ```text
//! submitted → email-verified → forms-received → officer-confirmed → identity-verified
//!   → first-approved → approved → token-shipped → certificates-ready → retrieved
//! any open state → rejected | expired | withdrawn
//! ```
//!
//! Also here: the account password (strength rules and Argon2id hashing), payment by invoice or
//! purchase order with the card processor behind a trait, and the [`ApplicationStore`] this
//! domain consumes. Vetting evidence and the deadline engine live in [`crate::vetting`].

use std::fmt;
use std::future::Future;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_pki::profile::{Catalog, SubjectKind};
use signet_pki::subject::{CommonName, Email, OrganizationName, SubjectError};
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::issuance::StoreError;
use crate::notify::OutboxMessage;
use crate::vetting::{
    self, Attestation, CallOutcome, Deadline, DeadlinePolicy, Finding, FormsReceipt, IdentityDocument, OfficerCallback,
    ProofingRule, Tracking,
};

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

// ---------------------------------------------------------------------------------------------
// Identifiers and actors

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
            type Error = InputError;
            fn try_from(s: String) -> Result<Self, InputError> {
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

// ---------------------------------------------------------------------------------------------
// Application data

/// The federal program the applicant applies under, checked against the wizard catalog's
/// program list (only [`crate::wizard::AgencyCatalog::program`] makes one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FederalProgram(String);

impl FederalProgram {
    pub(crate) fn from_catalog(id: &str) -> Self {
        Self(id.to_owned())
    }
    /// The program's catalog id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The applicant's answer to "Do you live in the United States?" (seed onboarding guide Part 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Residency {
    /// Lives in the United States.
    UnitedStates,
    /// Lives elsewhere.
    Abroad,
}

pub use crate::prices::{Cents, PriceTable};

/// The certificate bought: type, validity and the price charged (fixed at application time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChoice {
    cert_type: String,
    years: u8,
    price: Cents,
}

impl CertificateChoice {
    /// Checks a choice: the type is a subscriber type of the catalog, the validity is one its
    /// profile allows (1, 2 or 3 years, DESIGN §2), and it has a price.
    pub fn new(catalog: &Catalog, prices: &PriceTable, cert_type: &str, years: u8) -> Result<Self, InputError> {
        if !catalog.types().iter().any(|t| t.id == cert_type) {
            return Err(InputError::UnknownCertificateType(cert_type.to_owned()));
        }
        let profile = catalog
            .profiles()
            .find(|p| p.cert_type.id == cert_type && p.subject == SubjectKind::Person)
            .ok_or_else(|| InputError::NotASubscriberType(cert_type.to_owned()))?;
        if !profile.validity_years.contains(&years) {
            return Err(InputError::Validity { cert_type: cert_type.to_owned(), years });
        }
        let price = prices
            .price(cert_type, years)
            .ok_or_else(|| InputError::NoPrice { cert_type: cert_type.to_owned(), years })?;
        Ok(Self { cert_type: cert_type.to_owned(), years, price })
    }
    /// The certificate catalog type id.
    pub fn cert_type(&self) -> &str {
        &self.cert_type
    }
    /// Validity in years.
    pub fn years(&self) -> u8 {
        self.years
    }
    /// The price charged.
    pub fn price(&self) -> Cents {
        self.price
    }
}

/// An organization's duplicate-detection key: case, punctuation and spacing folded, `&` read as
/// "and", and the usual legal-form spellings collapsed, so "Acme, Inc." and "ACME Inc" — or
/// "Acme Incorporated" — are one organization. DESIGN §2: once created, others in the company
/// find the organization instead of creating another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrganizationKey(String);

impl OrganizationKey {
    /// The key of a name.
    pub fn of(name: &OrganizationName) -> Self {
        let spaced: String = name
            .as_str()
            .chars()
            .flat_map(char::to_lowercase)
            .map(|c| if c.is_alphanumeric() || c == '&' { c } else { ' ' })
            .collect::<String>()
            .replace('&', " and ");
        let mut words: Vec<String> = Vec::new();
        let mut in_initials = false;
        for w in spaced.split_whitespace() {
            // "L.L.C." splits into one-letter words: glue each run of them back into one word.
            if w.chars().count() == 1 && in_initials {
                words.last_mut().expect("a run has a first word").push_str(w);
                continue;
            }
            in_initials = w.chars().count() == 1;
            words.push(
                match w {
                    "incorporated" => "inc",
                    "corporation" => "corp",
                    "company" => "co",
                    "limited" => "ltd",
                    w => w,
                }
                .to_owned(),
            );
        }
        Self(words.join(" "))
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An applicant's organization (the certificate's organization OU, DESIGN §2). Search and
/// creation are the store's; the key is what makes "Acme, Inc." find "ACME Inc".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The name as first entered.
    pub name: OrganizationName,
    /// The duplicate-detection key.
    pub key: OrganizationKey,
}

impl Organization {
    /// A new organization.
    pub fn new(name: OrganizationName) -> Self {
        let key = OrganizationKey::of(&name);
        Self { name, key }
    }
    /// The audit event for creating it.
    pub fn created_event(&self, at: OffsetDateTime, actor: &Actor) -> AuditEvent {
        AuditEvent::new(
            at,
            &actor.audit_name(),
            AuditAction::OrganizationCreated,
            self.key.as_str(),
            json!({ "name": self.name.as_str() }),
        )
    }
}

fn text(field: &'static str, max: usize, s: &str) -> Result<String, InputError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(InputError::Text { field, max });
    }
    Ok(t.to_owned())
}

/// The states, D.C., the territories, and the military "states" AA/AE/AP that APO/FPO/DPO
/// addresses use (USPS Publication 28): two-letter code and name, in the order a list shows them.
pub const US_STATES: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("AS", "American Samoa"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
    ("AA", "Armed Forces Americas (AA)"),
    ("AE", "Armed Forces Europe, Middle East, Africa and Canada (AE)"),
    ("AP", "Armed Forces Pacific (AP)"),
];

/// A U.S. state, territory or military postal code, uppercased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StateCode(String);

impl StateCode {
    /// Checks a code or a name as people write it ("va", "Virginia", "virginia"); spacing and
    /// case do not matter.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
        US_STATES
            .iter()
            .find(|(code, name)| code.eq_ignore_ascii_case(&folded) || name.eq_ignore_ascii_case(&folded))
            .map(|(code, _)| Self((*code).to_owned()))
            .ok_or_else(|| InputError::StateCode(s.to_owned()))
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ZIP code: five digits, or ZIP+4 written `12345-6789` (nine bare digits are accepted and
/// written that way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ZipCode(String);

impl ZipCode {
    /// Checks a ZIP code.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
        let zip = match t.split_once('-') {
            Some((a, b)) if digits(a, 5) && digits(b, 4) => t.to_owned(),
            None if digits(t, 5) => t.to_owned(),
            None if digits(t, 9) => format!("{}-{}", &t[..5], &t[5..]),
            _ => return Err(InputError::ZipCode(s.to_owned())),
        };
        // 00000 is not assigned to any delivery area.
        if zip.starts_with("00000") {
            return Err(InputError::ZipCode(s.to_owned()));
        }
        Ok(Self(zip))
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 (`+15555550123`): ten North American digits (optionally with the
/// leading 1), or `+` and an international number. The officer call-back dials it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Checks a number as typed (spaces, dots, dashes and parentheses ignored).
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let international = t.starts_with('+');
        let digits: String = t.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+')).collect();
        let bad = || InputError::Phone(s.to_owned());
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let e164 = if international && !digits.starts_with('1') {
            if !(8..=15).contains(&digits.len()) {
                return Err(bad());
            }
            digits
        } else {
            let national = match digits.len() {
                10 => digits.as_str(),
                11 if digits.starts_with('1') => &digits[1..],
                _ => return Err(bad()),
            };
            // NANP area codes and exchanges never start with 0 or 1.
            if national.starts_with(['0', '1']) || national[3..].starts_with(['0', '1']) {
                return Err(bad());
            }
            format!("1{national}")
        };
        Ok(Self(format!("+{e164}")))
    }
    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// As people write it: North American numbers as `(206) 555-0142`, others in E.164.
    pub fn display(&self) -> String {
        match self.0.strip_prefix("+1") {
            Some(n) if n.len() == 10 => format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => self.0.clone(),
        }
    }
}

/// An address line or city: trimmed, 1–64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddressLine(String);

impl AddressLine {
    /// Checks a line.
    pub fn new(s: &str) -> Result<Self, InputError> {
        text("address line", 64, s).map(Self)
    }
    /// The line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text an operator writes for the applicant (rejection reasons): 1–500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    /// Checks a reason.
    pub fn new(s: &str) -> Result<Self, InputError> {
        text("reason", 500, s).map(Self)
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A purchase-order number, as the applicant's organization issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoNumber(String);

impl PoNumber {
    /// Checks a PO number: 1–30 letters, digits, `-`, `/`, `.`.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.len() <= 30
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.'));
        if ok { Ok(Self(t.to_owned())) } else { Err(InputError::PoNumber(s.to_owned())) }
    }
    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_serde!(StateCode, ZipCode, PhoneNumber, AddressLine, Reason, PoNumber);
string_display!(StateCode, ZipCode, PhoneNumber, AddressLine, Reason, PoNumber, OrganizationKey);

/// A U.S. mailing address; the token ships here (seed onboarding guide: "The address you enter
/// is where IdenTrust will ship your USB token").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsAddress {
    /// Street line.
    pub line1: AddressLine,
    /// Apartment, suite, unit.
    pub line2: Option<AddressLine>,
    /// City (or APO/FPO/DPO).
    pub city: AddressLine,
    /// State.
    pub state: StateCode,
    /// ZIP.
    pub zip: ZipCode,
}

impl UsAddress {
    /// Checks an address from its form fields; an empty second line means none.
    pub fn new(line1: &str, line2: &str, city: &str, state: &str, zip: &str) -> Result<Self, InputError> {
        Ok(Self {
            line1: AddressLine::new(line1)?,
            line2: if line2.trim().is_empty() { None } else { Some(AddressLine::new(line2)?) },
            city: AddressLine::new(city)?,
            state: StateCode::new(state)?,
            zip: ZipCode::new(zip)?,
        })
    }
}

impl fmt::Display for UsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.line1)?;
        if let Some(l2) = &self.line2 {
            writeln!(f, "{l2}")?;
        }
        write!(f, "{}, {} {}", self.city, self.state, self.zip)
    }
}

/// The applicant's personal information section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalInfo {
    /// Full name as it will be proofed and appear in the certificate's CN.
    pub name: CommonName,
    /// Email: the certificate's rfc822Name and where every notice goes.
    pub email: Email,
    /// Daytime phone.
    pub phone: PhoneNumber,
    /// Where the token ships.
    pub shipping: UsAddress,
    /// A second citizenship, if any: the form packet then includes page 5 (seed onboarding
    /// guide Part 2), which vetting requires.
    pub second_citizenship: Option<String>,
}

/// How the applicant pays. Invoice and purchase order are handled here; cards go through a
/// [`PaymentProcessor`] and only its authorization is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Payment {
    /// Invoice the organization.
    Invoice,
    /// Invoice against a purchase order.
    PurchaseOrder {
        /// The PO number.
        po: PoNumber,
    },
    /// A card payment the processor authorized.
    Card {
        /// The authorization.
        authorization: CardAuthorization,
    },
}

impl Payment {
    /// The method's stored name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::PurchaseOrder { .. } => "purchase-order",
            Self::Card { .. } => "card",
        }
    }
}

/// A card number: 13–19 digits with a valid Luhn check digit. Never stored or logged: Debug
/// shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Checks a number as typed (spaces and dashes ignored).
    pub fn new(s: &str) -> Result<Self, InputError> {
        let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InputError::CardNumber);
        }
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
            })
            .sum();
        if !sum.is_multiple_of(10) {
            return Err(InputError::CardNumber);
        }
        Ok(Self(digits))
    }
    /// The last four digits, for receipts.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
    /// The full number, for the processor only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

/// A processor's approval of a charge: what is kept instead of the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardAuthorization {
    /// The processor's authorization id.
    pub id: String,
    /// The card's last four digits.
    pub last4: String,
    /// The amount authorized.
    pub amount: Cents,
}

/// Why a card was not charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The issuer declined; the applicant may try another card or pay by invoice.
    #[error("the card was declined")]
    Declined,
    /// The processor could not be reached; details are for the log.
    #[error("the card processor is unavailable: {0}")]
    Unavailable(String),
}

/// A card processor. Signet has no processor contract yet; production wiring must supply one.
pub trait PaymentProcessor: Send + Sync {
    /// Authorizes `amount` on `card` for application `reference`.
    fn authorize(
        &self,
        card: &CardNumber,
        amount: Cents,
        reference: &ApplicationId,
    ) -> impl Future<Output = Result<CardAuthorization, PaymentError>> + Send;
}

/// A TEST DOUBLE standing in for a card processor, for tests and demo deployments only: it
/// approves every valid number except [`TestCardProcessor::DECLINED_CARD`] and moves no money.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestCardProcessor;

impl TestCardProcessor {
    /// The number this double always declines (a Luhn-valid test number).
    pub const DECLINED_CARD: &'static str = "4000000000000002";
}

impl PaymentProcessor for TestCardProcessor {
    fn authorize(
        &self,
        card: &CardNumber,
        amount: Cents,
        reference: &ApplicationId,
    ) -> impl Future<Output = Result<CardAuthorization, PaymentError>> + Send {
        let result = if card.expose() == Self::DECLINED_CARD {
            Err(PaymentError::Declined)
        } else {
            Ok(CardAuthorization { id: format!("test-{reference}"), last4: card.last4().to_owned(), amount })
        };
        std::future::ready(result)
    }
}

// ---------------------------------------------------------------------------------------------
// Account password

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

// ---------------------------------------------------------------------------------------------
// One-time secrets

/// SHA-256 of a one-time secret: what the store keeps instead of the secret (DESIGN §2:
/// the activation code is single use; a stolen database must not hand out codes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    fn of(secret: &str) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Whether `secret` hashes to this digest, compared in constant time.
    fn matches(&self, secret: &str) -> bool {
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
    fn generate() -> Self {
        Self(random_base32(16))
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
    fn generate() -> Self {
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

// ---------------------------------------------------------------------------------------------
// The lifecycle

/// Everything the applicant submitted, each part already checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationForm {
    /// Federal program (pre-filled from the partner link).
    pub program: FederalProgram,
    /// Agencies chosen in the selection wizard (may be empty).
    pub agencies: Vec<String>,
    /// U.S. resident or not.
    pub residency: Residency,
    /// Type, validity, price.
    pub certificate: CertificateChoice,
    /// The employer organization (found or created).
    pub organization: OrganizationName,
    /// Name, email, phone, shipping address.
    pub applicant: PersonalInfo,
    /// How it is paid.
    pub payment: Payment,
}

impl ApplicationForm {
    /// The order for a certificate of `profile` for this vetted applicant: the subject from the
    /// form and the validity length it chose (retrieval and renewal issue the same person).
    pub fn person_order(&self, profile: String) -> signet_pki::issue::CertificateOrder {
        signet_pki::issue::CertificateOrder {
            profile,
            subject: signet_pki::subject::Subject::Person {
                common_name: self.applicant.name.clone(),
                organization: self.organization.clone(),
                email: self.applicant.email.clone(),
            },
            validity_years: self.certificate.years(),
        }
    }
}

/// An operator's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The two approvals DESIGN §1 requires for this sensitive step, by different operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualApproval {
    /// The first approval.
    pub first: Approval,
    /// The second, by someone else.
    pub second: Approval,
}

/// Identity documents as an operator verified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The documents (type and number; never images).
    pub documents: Vec<IdentityDocument>,
    /// Who verified.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Everything vetting established, carried by every state after identity verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vetting {
    /// The mailed forms.
    pub forms: FormsReceipt,
    /// Earlier call-back attempts that reached no one.
    pub call_attempts: Vec<OfficerCallback>,
    /// The call-back that confirmed employment.
    pub officer: OfficerCallback,
    /// The identity documents.
    pub identity: IdentityRecord,
}

/// The token shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Carrier and tracking number.
    pub tracking: Tracking,
    /// Who shipped.
    pub by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An issued activation code, as stored: its digest only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRecord {
    /// SHA-256 of the code.
    pub digest: SecretDigest,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

/// Where an application is, with the evidence gathered so far. Closed: the store keeps
/// [`ApplicationState::state_name`] under a CHECK constraint over [`ALL_STATE_NAMES`] and the
/// rest as JSON ([`ApplicationState::to_stored`] / [`ApplicationState::from_stored`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "data", rename_all = "kebab-case")]
pub enum ApplicationState {
    /// Submitted and paid; waiting for the email link to be followed.
    Submitted {
        /// Digest of the verification link's token.
        email_token: SecretDigest,
    },
    /// Email verified; waiting for the notarized forms by mail.
    EmailVerified {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
    },
    /// Forms received; waiting for the organization officer call-back.
    FormsReceived {
        /// The forms.
        forms: FormsReceipt,
        /// Call-backs that reached no one yet (seed guide: "If missed, they can call back").
        call_attempts: Vec<OfficerCallback>,
    },
    /// The officer confirmed employment; waiting for identity verification.
    OfficerConfirmed {
        /// The forms.
        forms: FormsReceipt,
        /// Unanswered attempts before the confirmation.
        call_attempts: Vec<OfficerCallback>,
        /// The confirming call.
        officer: OfficerCallback,
    },
    /// Vetted; waiting for the first approval.
    IdentityVerified {
        /// The vetting record.
        vetting: Vetting,
    },
    /// One operator approved; waiting for a different one.
    FirstApproved {
        /// The vetting record.
        vetting: Vetting,
        /// The first approval.
        first: Approval,
    },
    /// Approved by two operators; waiting for the token to ship.
    Approved {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
    },
    /// Token shipped; waiting for the activation code to be issued.
    TokenShipped {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
    },
    /// Activation code emailed; waiting for the applicant to retrieve.
    CertificatesReady {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
        /// The code's digest.
        activation: ActivationRecord,
    },
    /// Certificates retrieved onto the token; the activation code is spent.
    Retrieved {
        /// The vetting record.
        vetting: Vetting,
        /// Both approvals.
        approvals: DualApproval,
        /// The shipment.
        shipment: Shipment,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        retrieved_at: OffsetDateTime,
    },
    /// Refused by an operator, or the officer denied the applicant's employment.
    Rejected {
        /// The state it was rejected from.
        from: String,
        /// Who.
        by: OperatorId,
        /// Why, as shown to the applicant.
        reason: Reason,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// A deadline passed (DESIGN §2: 45 days open; 30 days from the notary signature).
    Expired {
        /// The state it expired in.
        from: String,
        /// The deadline that passed.
        deadline: Deadline,
        /// When the job expired it.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Withdrawn by the applicant (or by an operator on the applicant's request).
    Withdrawn {
        /// The state it was withdrawn from.
        from: String,
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// Every state's stored name, in lifecycle order: the store's CHECK constraint list.
pub const ALL_STATE_NAMES: [&str; 13] = [
    "submitted",
    "email-verified",
    "forms-received",
    "officer-confirmed",
    "identity-verified",
    "first-approved",
    "approved",
    "token-shipped",
    "certificates-ready",
    "retrieved",
    "rejected",
    "expired",
    "withdrawn",
];

/// Why a stored state could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoredStateError {
    /// The name is not one of [`ALL_STATE_NAMES`].
    #[error("unknown application state {0:?}")]
    UnknownState(String),
    /// The data does not fit the state.
    #[error("application state {state} has malformed data: {error}")]
    Data {
        /// The state name.
        state: String,
        /// The decoding error.
        error: String,
    },
}

impl ApplicationState {
    /// The stored name.
    pub fn state_name(&self) -> &'static str {
        ALL_STATE_NAMES[self.position()]
    }

    fn position(&self) -> usize {
        match self {
            Self::Submitted { .. } => 0,
            Self::EmailVerified { .. } => 1,
            Self::FormsReceived { .. } => 2,
            Self::OfficerConfirmed { .. } => 3,
            Self::IdentityVerified { .. } => 4,
            Self::FirstApproved { .. } => 5,
            Self::Approved { .. } => 6,
            Self::TokenShipped { .. } => 7,
            Self::CertificatesReady { .. } => 8,
            Self::Retrieved { .. } => 9,
            Self::Rejected { .. } => 10,
            Self::Expired { .. } => 11,
            Self::Withdrawn { .. } => 12,
        }
    }

    /// How far along the happy path the application got: 0 (submitted) to 9 (retrieved);
    /// `None` for rejected, expired and withdrawn.
    pub fn progress(&self) -> Option<u8> {
        let p = self.position();
        (p <= 9).then_some(p as u8)
    }

    /// Whether the application can still move (everything but retrieved and the three ends).
    pub fn is_open(&self) -> bool {
        self.position() < 9
    }

    /// The mailed forms, once received.
    pub fn forms(&self) -> Option<&FormsReceipt> {
        match self {
            Self::FormsReceived { forms, .. } | Self::OfficerConfirmed { forms, .. } => Some(forms),
            Self::IdentityVerified { vetting }
            | Self::FirstApproved { vetting, .. }
            | Self::Approved { vetting, .. }
            | Self::TokenShipped { vetting, .. }
            | Self::CertificatesReady { vetting, .. }
            | Self::Retrieved { vetting, .. } => Some(&vetting.forms),
            _ => None,
        }
    }

    /// The token shipment, once shipped.
    pub fn shipment(&self) -> Option<&Shipment> {
        match self {
            Self::TokenShipped { shipment, .. }
            | Self::CertificatesReady { shipment, .. }
            | Self::Retrieved { shipment, .. } => Some(shipment),
            _ => None,
        }
    }

    /// The state's name and its data as JSON text, for the store.
    pub fn to_stored(&self) -> (&'static str, String) {
        let value = serde_json::to_value(self).expect("application states serialize");
        (self.state_name(), value["data"].to_string())
    }

    /// Reads a state back from its stored name and JSON data.
    pub fn from_stored(name: &str, data: &str) -> Result<Self, StoredStateError> {
        if !ALL_STATE_NAMES.contains(&name) {
            return Err(StoredStateError::UnknownState(name.to_owned()));
        }
        let bad = |e: serde_json::Error| StoredStateError::Data { state: name.to_owned(), error: e.to_string() };
        let data: serde_json::Value = serde_json::from_str(data).map_err(bad)?;
        serde_json::from_value(json!({ "state": name, "data": data })).map_err(bad)
    }
}

/// What an actor asks an application to do. The web layer builds one from a form post; the
/// deadline job builds `Expire`.
#[derive(Debug, Clone)]
pub enum Command {
    /// The applicant followed the email link (applicant).
    VerifyEmail(VerificationToken),
    /// The notarized forms arrived by mail (operator).
    RecordForms(FormsReceipt),
    /// A call-back to the organization officer was made (operator; the caller is the actor).
    RecordCallback(OfficerCallback),
    /// Identity documents were checked against the forms (operator).
    VerifyIdentity(Vec<IdentityDocument>),
    /// An approval (operator); the second must come from a different operator.
    Approve,
    /// The token was shipped (operator).
    ShipToken(Tracking),
    /// Certificates are ready: issue and email the activation code (operator or system).
    IssueActivationCode,
    /// The applicant presented the activation code to retrieve (applicant; the web layer
    /// checks the account password first).
    Retrieve(ActivationCode),
    /// Refuse the application (operator).
    Reject(Reason),
    /// Withdraw it (applicant, or an operator on the applicant's behalf).
    Withdraw,
    /// Expire it after its deadline passed (system).
    Expire,
}

impl Command {
    /// The command's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::VerifyEmail(_) => "verify-email",
            Self::RecordForms(_) => "record-forms",
            Self::RecordCallback(_) => "record-callback",
            Self::VerifyIdentity(_) => "verify-identity",
            Self::Approve => "approve",
            Self::ShipToken(_) => "ship-token",
            Self::IssueActivationCode => "issue-activation-code",
            Self::Retrieve(_) => "retrieve",
            Self::Reject(_) => "reject",
            Self::Withdraw => "withdraw",
            Self::Expire => "expire",
        }
    }

    fn permits(&self, actor: &Actor) -> bool {
        match self {
            Self::VerifyEmail(_) | Self::Retrieve(_) => matches!(actor, Actor::Applicant),
            Self::RecordForms(_)
            | Self::RecordCallback(_)
            | Self::VerifyIdentity(_)
            | Self::Approve
            | Self::ShipToken(_)
            | Self::Reject(_) => matches!(actor, Actor::Operator(_)),
            Self::IssueActivationCode => matches!(actor, Actor::Operator(_) | Actor::System),
            Self::Withdraw => matches!(actor, Actor::Applicant | Actor::Operator(_)),
            Self::Expire => matches!(actor, Actor::System),
        }
    }
}

/// Why a transition was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The command does not apply in the current state.
    #[error("cannot {command} an application that is {state}")]
    NotAllowed {
        /// Current state name.
        state: &'static str,
        /// Command name.
        command: &'static str,
    },
    /// This actor may not give this command.
    #[error("{actor} may not {command}")]
    NotPermitted {
        /// The actor's audit name.
        actor: String,
        /// Command name.
        command: &'static str,
    },
    /// The email link's token is not this application's.
    #[error("this verification link is not valid for the application")]
    WrongVerificationToken,
    /// The activation code does not match (or was already used).
    #[error("the activation code is not correct")]
    WrongActivationCode,
    /// Vetting found blocking problems; each finding says what to fix.
    #[error("vetting found problems: {}", .0.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; "))]
    Vetting(Vec<Finding>),
    /// The type needs in-person proofing by a registrar or Trusted Agent, not a notary
    /// (DESIGN §2: Medium Hardware Assurance).
    #[error("{cert_type} requires identity proofing in person by a registrar or Trusted Agent, not a notary")]
    InPersonProofingRequired {
        /// The certificate type id.
        cert_type: String,
    },
    /// The second approval came from the operator who gave the first.
    #[error("{0} already approved this application; a different operator must give the second approval")]
    SameApprover(OperatorId),
    /// The application's deadline has passed; only expiry (or rejection/withdrawal) remains.
    #[error("the deadline ({}) has passed", .0.last_day)]
    DeadlinePassed(Deadline),
    /// Expiry was asked for before the deadline.
    #[error("the deadline ({}) has not passed yet", .0.last_day)]
    NotYetDue(Deadline),
}

/// An application: the submitted form plus where it is in its lifecycle. Only transitions and
/// [`Application::restore`] (the store's constructor) make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    id: ApplicationId,
    form: ApplicationForm,
    submitted_at: OffsetDateTime,
    revision: u32,
    state: ApplicationState,
}

/// The result of a transition: the next application, its audit event, and any secret to email.
/// The store saves the application and the audit event (and the outbox messages rendered from
/// this by [`crate::notify::Notifier::outbox_for`]) in one transaction.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The application in its new state, with `revision` one higher.
    pub application: Application,
    /// The audit event to chain.
    pub audit: AuditEvent,
    /// A one-time secret to email, if this transition made one.
    pub secret: Option<IssuedSecret>,
}

impl Application {
    /// A new application, submitted at `now`. Revision 0; the secret is the email link token.
    pub fn submit(id: ApplicationId, form: ApplicationForm, now: OffsetDateTime) -> Transition {
        let token = VerificationToken::generate();
        let audit = AuditEvent::new(
            now,
            &Actor::Applicant.audit_name(),
            AuditAction::ApplicationSubmitted,
            id.as_str(),
            json!({
                "program": form.program.as_str(),
                "cert_type": form.certificate.cert_type(),
                "validity_years": form.certificate.years(),
                "price_cents": form.certificate.price().0,
                "payment": form.payment.method(),
                "organization": form.organization.as_str(),
            }),
        );
        let state = ApplicationState::Submitted { email_token: SecretDigest::of(token.expose()) };
        Transition {
            application: Self { id, form, submitted_at: now, revision: 0, state },
            audit,
            secret: Some(IssuedSecret::EmailVerification(token)),
        }
    }

    /// Rebuilds a stored application (the store's constructor).
    pub fn restore(
        id: ApplicationId,
        form: ApplicationForm,
        submitted_at: OffsetDateTime,
        revision: u32,
        state: ApplicationState,
    ) -> Self {
        Self { id, form, submitted_at, revision, state }
    }

    /// The reference.
    pub fn id(&self) -> &ApplicationId {
        &self.id
    }
    /// The submitted form.
    pub fn form(&self) -> &ApplicationForm {
        &self.form
    }
    /// When it was submitted.
    pub fn submitted_at(&self) -> OffsetDateTime {
        self.submitted_at
    }
    /// Bumped by every transition: the store saves only over revision − 1, so two operators
    /// acting at once cannot both win.
    pub fn revision(&self) -> u32 {
        self.revision
    }
    /// The current state.
    pub fn state(&self) -> &ApplicationState {
        &self.state
    }
    /// Whether the type needs in-person proofing (not a notary).
    pub fn proofing_rule(&self) -> ProofingRule {
        vetting::proofing_rule(self.form.certificate.cert_type())
    }

    /// Applies a command, consuming the application. On success the next application (revision
    /// + 1), its audit event and any secret to email; on refusal nothing changed.
    pub fn apply(
        self,
        actor: &Actor,
        command: Command,
        now: OffsetDateTime,
        policy: &DeadlinePolicy,
    ) -> Result<Transition, TransitionError> {
        let from = self.state.state_name();
        if !command.permits(actor) {
            return Err(TransitionError::NotPermitted { actor: actor.audit_name(), command: command.name() });
        }
        let not_allowed = |command: &Command| TransitionError::NotAllowed { state: from, command: command.name() };
        let deadline = vetting::deadline(&self, policy);
        let passed = deadline.as_ref().filter(|d| d.passed(now.date()));
        match (&command, passed) {
            (Command::Reject(_) | Command::Withdraw, _) => {}
            (Command::Expire, None) => {
                return Err(match deadline {
                    Some(d) => TransitionError::NotYetDue(d),
                    None => not_allowed(&command),
                });
            }
            (Command::Expire, Some(_)) => {}
            // DESIGN §2: after the deadline the application expires; nothing else may happen,
            // even if the background job has not run yet.
            (_, Some(d)) => return Err(TransitionError::DeadlinePassed(*d)),
            (_, None) => {}
        }
        let rule = self.proofing_rule();
        let Self { id, form, submitted_at, revision, state } = self;
        let operator = match actor {
            Actor::Operator(op) => Some(op.clone()),
            _ => None,
        };
        let by = || operator.clone().expect("operator-only commands were checked by Command::permits");
        use ApplicationState as S;
        let mut secret = None;
        let (next, action, details) = match (state, command) {
            (S::Submitted { email_token }, Command::VerifyEmail(token)) => {
                if !email_token.matches(token.expose()) {
                    return Err(TransitionError::WrongVerificationToken);
                }
                (S::EmailVerified { verified_at: now }, AuditAction::EmailVerified, json!({}))
            }
            (S::EmailVerified { .. }, Command::RecordForms(forms)) => {
                if rule == ProofingRule::InPersonRegistrar && matches!(forms.attestation, Attestation::Notarized { .. })
                {
                    return Err(TransitionError::InPersonProofingRequired {
                        cert_type: form.certificate.cert_type().to_owned(),
                    });
                }
                blocking(vetting::check_forms(&form, submitted_at.date(), &forms, now.date(), policy))?;
                let details = json!({
                    "carrier": forms.tracking.carrier.name(),
                    "tracking": forms.tracking.number.as_str(),
                    "attestation": forms.attestation.kind(),
                    "signed_on": forms.attestation.signed_on().to_string(),
                    "received_on": forms.received_on.to_string(),
                });
                (S::FormsReceived { forms, call_attempts: Vec::new() }, AuditAction::FormsReceived, details)
            }
            (S::FormsReceived { forms, mut call_attempts }, Command::RecordCallback(call)) => {
                blocking(vetting::check_callback(&form, &call, now))?;
                let details = json!({
                    "officer": call.officer_name.as_str(),
                    "phone": call.phone.as_str(),
                    "outcome": call.outcome.name(),
                    "called_at": call.called_at.unix_timestamp(),
                    "called_by": call.called_by.as_str(),
                });
                match call.outcome {
                    CallOutcome::Confirmed => (
                        S::OfficerConfirmed { forms, call_attempts, officer: call },
                        AuditAction::OfficerConfirmed,
                        details,
                    ),
                    CallOutcome::NoAnswer | CallOutcome::LeftMessage => {
                        call_attempts.push(call);
                        (S::FormsReceived { forms, call_attempts }, AuditAction::OfficerCallAttempted, details)
                    }
                    // An officer who will not confirm employment ends the application: the
                    // organization OU in the certificate would be unvouched for.
                    CallOutcome::Denied => {
                        let reason = Reason::new("The organization officer did not confirm your employment.")
                            .expect("fixed reason is valid");
                        let details = json!({ "from": from, "reason": reason.as_str(), "call": details });
                        (
                            S::Rejected { from: from.to_owned(), by: call.called_by, reason, at: now },
                            AuditAction::ApplicationRejected,
                            details,
                        )
                    }
                }
            }
            (S::OfficerConfirmed { forms, call_attempts, officer }, Command::VerifyIdentity(documents)) => {
                if rule == ProofingRule::InPersonRegistrar && matches!(forms.attestation, Attestation::Notarized { .. })
                {
                    return Err(TransitionError::InPersonProofingRequired {
                        cert_type: form.certificate.cert_type().to_owned(),
                    });
                }
                blocking(vetting::check_identity(&documents, now.date()))?;
                let details = json!({
                    "documents": documents.iter().map(|d| json!({
                        "type": d.kind().id, "number": d.number().masked(),
                    })).collect::<Vec<_>>(),
                });
                let identity = IdentityRecord { documents, by: by(), at: now };
                (
                    S::IdentityVerified { vetting: Vetting { forms, call_attempts, officer, identity } },
                    AuditAction::IdentityVerified,
                    details,
                )
            }
            (S::IdentityVerified { vetting }, Command::Approve) => (
                S::FirstApproved { vetting, first: Approval { by: by(), at: now } },
                AuditAction::ApplicationFirstApproval,
                json!({ "approver": 1 }),
            ),
            (S::FirstApproved { vetting, first }, Command::Approve) => {
                let second = by();
                if second == first.by {
                    return Err(TransitionError::SameApprover(second));
                }
                let details = json!({ "first": first.by.as_str(), "second": second.as_str() });
                let approvals = DualApproval { first, second: Approval { by: second, at: now } };
                (S::Approved { vetting, approvals }, AuditAction::ApplicationApproved, details)
            }
            (S::Approved { vetting, approvals }, Command::ShipToken(tracking)) => {
                let details = json!({ "carrier": tracking.carrier.name(), "tracking": tracking.number.as_str() });
                let shipment = Shipment { tracking, by: by(), at: now };
                (S::TokenShipped { vetting, approvals, shipment }, AuditAction::TokenShipped, details)
            }
            (S::TokenShipped { vetting, approvals, shipment }, Command::IssueActivationCode) => {
                let code = ActivationCode::generate();
                let activation = ActivationRecord { digest: SecretDigest::of(&code.0), issued_at: now };
                secret = Some(IssuedSecret::Activation(code));
                (
                    S::CertificatesReady { vetting, approvals, shipment, activation },
                    AuditAction::CertificatesReady,
                    json!({}),
                )
            }
            (S::CertificatesReady { vetting, approvals, shipment, activation }, Command::Retrieve(code)) => {
                if !activation.digest.matches(&code.0) {
                    return Err(TransitionError::WrongActivationCode);
                }
                // The digest is dropped here, so the code is spent: single use (DESIGN §2).
                (
                    S::Retrieved { vetting, approvals, shipment, retrieved_at: now },
                    AuditAction::ApplicationRetrieved,
                    json!({}),
                )
            }
            (s, Command::Reject(reason)) if s.is_open() => {
                let details = json!({ "from": from, "reason": reason.as_str() });
                (
                    S::Rejected { from: from.to_owned(), by: by(), reason, at: now },
                    AuditAction::ApplicationRejected,
                    details,
                )
            }
            (s, Command::Withdraw) if s.is_open() => (
                S::Withdrawn { from: from.to_owned(), at: now },
                AuditAction::ApplicationWithdrawn,
                json!({ "from": from }),
            ),
            (s, Command::Expire) if s.is_open() => {
                let deadline = deadline.expect("an open application has a deadline");
                let details = json!({ "from": from, "deadline": deadline.kind.name(), "last_day": deadline.last_day.to_string() });
                (S::Expired { from: from.to_owned(), deadline, at: now }, AuditAction::ApplicationExpired, details)
            }
            (_, command) => return Err(not_allowed(&command)),
        };
        let audit = AuditEvent::new(now, &actor.audit_name(), action, id.as_str(), details);
        Ok(Transition {
            application: Self { id, form, submitted_at, revision: revision + 1, state: next },
            audit,
            secret,
        })
    }
}

fn blocking(findings: Vec<Finding>) -> Result<(), TransitionError> {
    if findings.iter().any(Finding::is_blocking) { Err(TransitionError::Vetting(findings)) } else { Ok(()) }
}

// ---------------------------------------------------------------------------------------------
// Storage

/// The storage the enrollment workflow consumes; `signet-store` implements it. Every write that
/// changes an application also chains its audit event and queues its outbox messages in the
/// same database transaction, so a notice is sent if and only if the change happened.
pub trait ApplicationStore: Send + Sync {
    /// Stores a submitted application (revision 0), the applicant's account password hash, the
    /// submission audit event and the outbox messages. `Conflict("id")` if the reference is
    /// taken (generate another and retry).
    fn create(
        &self,
        submitted: &Transition,
        password: &PasswordHash,
        outbox: &[OutboxMessage],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Loads an application, `None` if there is none with that reference.
    fn load(&self, id: &ApplicationId) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Saves a transition if the stored revision is still `revision - 1`, with its audit event
    /// and outbox messages. `Conflict("revision")` if someone else changed it first.
    fn save_transition(
        &self,
        transition: &Transition,
        outbox: &[OutboxMessage],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queues messages that accompany no state change (deadline reminders). A message whose
    /// `dedup_key` was queued before is skipped, so the job may run as often as it likes.
    fn enqueue(&self, outbox: &[OutboxMessage]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Open applications with references after `after`, in reference order, at most `limit`:
    /// the deadline job pages through them with [`crate::vetting::due_actions`].
    fn open_applications(
        &self,
        after: Option<&ApplicationId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;

    /// Confirmed organizations whose key equals `key`, or that the organization with that key
    /// was merged into (the "did you mean" list before registering one). Pending and rejected
    /// ones are not offered: see [`crate::organization`].
    fn find_organizations(
        &self,
        key: &OrganizationKey,
    ) -> impl Future<Output = Result<Vec<Organization>, StoreError>> + Send;

    /// Registers an organization, pending the RA's decision, with its audit event.
    /// `Conflict("organization")` if the key exists, whatever its status.
    fn create_organization(
        &self,
        organization: &Organization,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
pub(crate) mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use time::macros::{date, datetime};
    use time::{Date, Duration};

    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::vetting::{Carrier, FormPages, TrackingNumber};

    pub(crate) const T0: OffsetDateTime = datetime!(2025-03-03 15:00 UTC);

    pub(crate) fn op(name: &str) -> Actor {
        Actor::Operator(OperatorId::new(name).unwrap())
    }

    pub(crate) fn form(cert_type: &str) -> ApplicationForm {
        crate::fixtures::sample_form(cert_type)
    }

    pub(crate) fn tracking(n: &str) -> Tracking {
        Tracking { carrier: Carrier::Ups, number: TrackingNumber::new(Carrier::Ups, n).unwrap() }
    }

    pub(crate) fn notarized_forms(on: Date, received_on: Date) -> FormsReceipt {
        FormsReceipt {
            received_on,
            tracking: tracking("1Z999AA10123456784"),
            pages: FormPages { officer_verification: true, identity_verification: true, citizenship: None },
            attestation: Attestation::Notarized {
                notary_name: "Pat Notary".into(),
                seal_present: true,
                notarized_on: on,
            },
        }
    }

    pub(crate) fn in_person_forms(on: Date, received_on: Date) -> FormsReceipt {
        FormsReceipt {
            attestation: Attestation::InPerson { registrar: OperatorId::new("ta.smith").unwrap(), attested_on: on },
            ..notarized_forms(on, received_on)
        }
    }

    pub(crate) fn callback(outcome: CallOutcome, at: OffsetDateTime) -> OfficerCallback {
        OfficerCallback {
            officer_name: CommonName::new("Sam Officer").unwrap(),
            phone: PhoneNumber::new("+1 206 555 0199").unwrap(),
            called_by: OperatorId::new("alice").unwrap(),
            called_at: at,
            outcome,
        }
    }

    pub(crate) fn passport() -> Vec<IdentityDocument> {
        vec![IdentityDocument::new("us-passport", "A12345678", Some(date!(2030 - 01 - 01))).unwrap()]
    }

    /// Drives a (ready) future to completion without a runtime.
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("test futures are ready immediately"),
        }
    }

    /// Steps with the clock's current time.
    fn step(app: Application, actor: &Actor, cmd: Command, clock: &FakeClock) -> Result<Transition, TransitionError> {
        app.apply(actor, cmd, clock.now(), &DeadlinePolicy::default())
    }

    /// Walks an application to `target` (a state name) on the happy path from T0, notarized on
    /// the submission day. Returns the application and the last secret issued.
    pub(crate) fn walk(cert_type: &str, target: &str) -> (Application, Option<IssuedSecret>, FakeClock) {
        let clock = FakeClock::at(T0);
        let t = Application::submit(ApplicationId::generate(), form(cert_type), clock.now());
        let mut app = t.application;
        let mut secret = t.secret;
        let forms = if vetting::proofing_rule(cert_type) == ProofingRule::InPersonRegistrar {
            in_person_forms(T0.date(), T0.date() + Duration::days(3))
        } else {
            notarized_forms(T0.date(), T0.date() + Duration::days(3))
        };
        let day = Duration::days(1);
        let plan: Vec<(Actor, Command, Duration)> = vec![
            (Actor::Applicant, Command::VerifyEmail(VerificationToken::generate()), Duration::ZERO),
            (op("alice"), Command::RecordForms(forms), day * 3),
            (op("alice"), Command::RecordCallback(callback(CallOutcome::Confirmed, T0 + day * 3)), Duration::hours(2)),
            (op("alice"), Command::VerifyIdentity(passport()), Duration::hours(1)),
            (op("alice"), Command::Approve, Duration::hours(1)),
            (op("bob"), Command::Approve, Duration::hours(1)),
            (op("bob"), Command::ShipToken(tracking("1Z999AA10123456785")), day),
            (Actor::System, Command::IssueActivationCode, day * 4),
            (Actor::Applicant, Command::Retrieve(ActivationCode::generate()), day),
        ];
        for (actor, cmd, wait) in plan {
            if app.state().state_name() == target {
                break;
            }
            clock.advance(wait);
            let cmd = match (cmd, &secret) {
                (Command::VerifyEmail(_), Some(IssuedSecret::EmailVerification(t))) => Command::VerifyEmail(t.clone()),
                (Command::Retrieve(_), Some(IssuedSecret::Activation(c))) => Command::Retrieve(c.clone()),
                (c, _) => c,
            };
            let t = step(app, &actor, cmd, &clock).unwrap();
            app = t.application;
            if t.secret.is_some() {
                secret = t.secret;
            }
        }
        assert_eq!(app.state().state_name(), target);
        (app, secret, clock)
    }

    #[test]
    fn happy_path_end_to_end() {
        let clock = FakeClock::at(T0);
        let submitted = Application::submit(ApplicationId::generate(), form("medium-token"), clock.now());
        assert_eq!(submitted.audit.action, AuditAction::ApplicationSubmitted);
        assert_eq!(submitted.audit.details["price_cents"], 27_900);
        let Some(IssuedSecret::EmailVerification(token)) = submitted.secret else { panic!("no email token") };
        let app = submitted.application;
        assert_eq!((app.state().state_name(), app.revision()), ("submitted", 0));

        let t = step(app, &Actor::Applicant, Command::VerifyEmail(token), &clock).unwrap();
        assert_eq!(t.audit.action, AuditAction::EmailVerified);
        clock.advance(Duration::days(3));
        let forms = notarized_forms(T0.date(), clock.now().date());
        let t = step(t.application, &op("alice"), Command::RecordForms(forms), &clock).unwrap();
        assert_eq!(t.audit.details["tracking"], "1Z999AA10123456784");
        let t = step(
            t.application,
            &op("alice"),
            Command::RecordCallback(callback(CallOutcome::NoAnswer, clock.now())),
            &clock,
        )
        .unwrap();
        assert_eq!(
            (t.application.state().state_name(), t.audit.action),
            ("forms-received", AuditAction::OfficerCallAttempted)
        );
        let t = step(
            t.application,
            &op("alice"),
            Command::RecordCallback(callback(CallOutcome::Confirmed, clock.now())),
            &clock,
        )
        .unwrap();
        assert_eq!(t.audit.action, AuditAction::OfficerConfirmed);
        let ApplicationState::OfficerConfirmed { call_attempts, .. } = t.application.state() else { panic!() };
        assert_eq!(call_attempts.len(), 1, "the missed call is kept");
        let t = step(t.application, &op("alice"), Command::VerifyIdentity(passport()), &clock).unwrap();
        assert_eq!(t.audit.details["documents"][0]["number"], "*****5678", "audit never holds the full number");
        let t = step(t.application, &op("alice"), Command::Approve, &clock).unwrap();
        assert_eq!(t.application.state().state_name(), "first-approved");
        let t = step(t.application, &op("bob"), Command::Approve, &clock).unwrap();
        assert_eq!((t.audit.action, t.audit.actor.as_str()), (AuditAction::ApplicationApproved, "operator:bob"));
        clock.advance(Duration::days(1));
        let t = step(t.application, &op("bob"), Command::ShipToken(tracking("1Z999AA10123456785")), &clock).unwrap();
        assert_eq!(t.application.state().shipment().unwrap().tracking.number.as_str(), "1Z999AA10123456785");
        clock.advance(Duration::days(4));
        let t = step(t.application, &Actor::System, Command::IssueActivationCode, &clock).unwrap();
        let Some(IssuedSecret::Activation(code)) = t.secret.clone() else { panic!("no activation code") };
        assert_eq!(t.audit.details, json!({}), "the code is never audited");
        clock.advance(Duration::days(1));
        let wrong = ActivationCode::new("ZZZZ-ZZZZ-ZZZZ-ZZZZ").unwrap();
        let app = t.application;
        assert_eq!(
            step(app.clone(), &Actor::Applicant, Command::Retrieve(wrong), &clock).unwrap_err(),
            TransitionError::WrongActivationCode
        );
        // Typed as the email shows it, lowercased, with O for 0: still the code.
        let typed = ActivationCode::new(&code.expose().to_lowercase().replace('0', "o")).unwrap();
        let t = step(app, &Actor::Applicant, Command::Retrieve(typed), &clock).unwrap();
        assert_eq!(
            (t.application.state().state_name(), t.audit.action),
            ("retrieved", AuditAction::ApplicationRetrieved)
        );
        assert_eq!(t.application.revision(), 10);
        assert!(!t.application.state().is_open());
        // Single use: a retrieved application takes no second retrieval.
        assert!(matches!(
            step(t.application, &Actor::Applicant, Command::Retrieve(code), &clock),
            Err(TransitionError::NotAllowed { state: "retrieved", command: "retrieve" })
        ));
    }

    fn sample_commands() -> Vec<(Actor, Command)> {
        let d = T0.date();
        vec![
            (Actor::Applicant, Command::VerifyEmail(VerificationToken::generate())),
            (op("carol"), Command::RecordForms(notarized_forms(d, d))),
            (op("carol"), Command::RecordCallback(callback(CallOutcome::Confirmed, T0))),
            (op("carol"), Command::VerifyIdentity(passport())),
            (op("carol"), Command::Approve),
            (op("carol"), Command::ShipToken(tracking("1Z999AA10123456786"))),
            (Actor::System, Command::IssueActivationCode),
            (Actor::Applicant, Command::Retrieve(ActivationCode::generate())),
            (op("carol"), Command::Reject(Reason::new("no").unwrap())),
            (Actor::Applicant, Command::Withdraw),
            (Actor::System, Command::Expire),
        ]
    }

    /// The happy-path command that moves each open state on.
    fn forward(state: &str) -> &'static str {
        match state {
            "submitted" => "verify-email",
            "email-verified" => "record-forms",
            "forms-received" => "record-callback",
            "officer-confirmed" => "verify-identity",
            "identity-verified" | "first-approved" => "approve",
            "approved" => "ship-token",
            "token-shipped" => "issue-activation-code",
            "certificates-ready" => "retrieve",
            _ => "",
        }
    }

    fn terminal(name: &str) -> Application {
        let (app, _, clock) = walk("medium", "identity-verified");
        let cmd = match name {
            "rejected" => (op("carol"), Command::Reject(Reason::new("fraud").unwrap())),
            "withdrawn" => (Actor::Applicant, Command::Withdraw),
            _ => unreachable!(),
        };
        step(app, &cmd.0, cmd.1, &clock).unwrap().application
    }

    #[test]
    fn every_illegal_transition_is_refused() {
        let mut states: Vec<Application> = ALL_STATE_NAMES[..10].iter().map(|s| walk("medium", s).0).collect();
        states.push(terminal("rejected"));
        states.push(terminal("withdrawn"));
        // Within the deadline (day 3 after notarization), so only the state decides.
        let now = T0 + Duration::days(3);
        for app in states {
            let name = app.state().state_name();
            for (actor, cmd) in sample_commands() {
                let cmd_name = cmd.name();
                let result = app.clone().apply(&actor, cmd, now, &DeadlinePolicy::default());
                let closing = matches!(cmd_name, "reject" | "withdraw") && app.state().is_open();
                if cmd_name == forward(name) {
                    // Legal, though the sample evidence may be wrong (wrong token/code, same
                    // approver): never NotAllowed.
                    assert!(
                        !matches!(result, Err(TransitionError::NotAllowed { .. })),
                        "{name} {cmd_name}: {result:?}"
                    );
                } else if closing {
                    assert!(result.is_ok(), "{name} {cmd_name}: {result:?}");
                } else if cmd_name == "expire" && app.state().is_open() {
                    assert!(matches!(result, Err(TransitionError::NotYetDue(_))), "{name}: {result:?}");
                } else {
                    assert_eq!(
                        result.unwrap_err(),
                        TransitionError::NotAllowed { state: name, command: cmd_name },
                        "{name} {cmd_name}"
                    );
                }
            }
        }
    }

    #[test]
    fn actors_are_checked() {
        let (app, _, clock) = walk("medium", "identity-verified");
        for (actor, cmd) in [
            (Actor::Applicant, Command::Approve),
            (Actor::System, Command::Approve),
            (op("alice"), Command::Retrieve(ActivationCode::generate())),
            (op("alice"), Command::Expire),
            (Actor::System, Command::Withdraw),
            (Actor::Applicant, Command::Reject(Reason::new("x").unwrap())),
        ] {
            let name = cmd.name();
            let err = step(app.clone(), &actor, cmd, &clock).unwrap_err();
            assert!(matches!(err, TransitionError::NotPermitted { command, .. } if command == name), "{err:?}");
        }
    }

    #[test]
    fn two_different_operators_must_approve() {
        let (app, _, clock) = walk("medium-token", "first-approved");
        let ApplicationState::FirstApproved { first, .. } = app.state() else { panic!() };
        assert_eq!(first.by.as_str(), "alice");
        let err = step(app.clone(), &op("alice"), Command::Approve, &clock).unwrap_err();
        assert_eq!(err, TransitionError::SameApprover(OperatorId::new("alice").unwrap()));
        assert!(err.to_string().contains("different operator"));
        let t = step(app, &op("bob"), Command::Approve, &clock).unwrap();
        let ApplicationState::Approved { approvals, .. } = t.application.state() else { panic!() };
        assert_ne!(approvals.first.by, approvals.second.by);
    }

    #[test]
    fn medium_hardware_refuses_a_notary() {
        let (app, _, clock) = walk("medium-hardware", "email-verified");
        let forms = notarized_forms(T0.date(), T0.date() + Duration::days(3));
        clock.advance(Duration::days(3));
        let err = step(app.clone(), &op("alice"), Command::RecordForms(forms), &clock).unwrap_err();
        assert_eq!(err, TransitionError::InPersonProofingRequired { cert_type: "medium-hardware".into() });
        let forms = in_person_forms(T0.date(), T0.date() + Duration::days(3));
        assert!(step(app, &op("alice"), Command::RecordForms(forms), &clock).is_ok());
        // And the whole path works with a registrar.
        walk("medium-hardware", "retrieved");
    }

    #[test]
    fn medium_hardware_refuses_a_notary_at_identity_verification_too() {
        // A record written before the rule (or by a faulty import) is still caught.
        let (app, _, clock) = walk("medium", "officer-confirmed");
        let mut hardware_form = app.form().clone();
        hardware_form.certificate =
            CertificateChoice::new(&Catalog::default_eca(), &PriceTable::default(), "medium-hardware", 1).unwrap();
        let app = Application::restore(app.id().clone(), hardware_form, app.submitted_at(), 4, app.state().clone());
        let err = step(app, &op("alice"), Command::VerifyIdentity(passport()), &clock).unwrap_err();
        assert!(matches!(err, TransitionError::InPersonProofingRequired { .. }));
    }

    #[test]
    fn blocking_findings_refuse_the_step() {
        let (app, _, clock) = walk("medium", "email-verified");
        let mut forms = notarized_forms(T0.date(), T0.date());
        forms.attestation =
            Attestation::Notarized { notary_name: "Pat".into(), seal_present: false, notarized_on: T0.date() };
        let TransitionError::Vetting(findings) =
            step(app, &op("alice"), Command::RecordForms(forms), &clock).unwrap_err()
        else {
            panic!()
        };
        assert!(findings.iter().any(|f| f.code == "notary-seal-missing"), "{findings:?}");
    }

    #[test]
    fn denied_callback_rejects_and_wrong_token_is_refused() {
        let (app, _, clock) = walk("medium", "forms-received");
        let t = step(app, &op("alice"), Command::RecordCallback(callback(CallOutcome::Denied, clock.now())), &clock)
            .unwrap();
        let ApplicationState::Rejected { from, reason, .. } = t.application.state() else { panic!() };
        assert_eq!(from, "forms-received");
        assert!(reason.as_str().contains("officer"));
        let (app, _, clock) = walk("medium", "submitted");
        let err =
            step(app, &Actor::Applicant, Command::VerifyEmail(VerificationToken::generate()), &clock).unwrap_err();
        assert_eq!(err, TransitionError::WrongVerificationToken);
    }

    #[test]
    fn retrieval_after_the_deadline_is_refused_before_the_job_runs() {
        let (app, secret, clock) = walk("medium-token", "certificates-ready");
        let Some(IssuedSecret::Activation(code)) = secret else { panic!() };
        // Notarized on T0's date (Day 1); Day 30 is T0 + 29 days; Day 31 is too late.
        let day31 = datetime!(2025-04-02 00:00 UTC);
        assert!(clock.now() < day31);
        let err =
            app.clone().apply(&Actor::Applicant, Command::Retrieve(code.clone()), day31, &DeadlinePolicy::default());
        assert!(
            matches!(err, Err(TransitionError::DeadlinePassed(ref d)) if d.last_day == date!(2025 - 04 - 01)),
            "{err:?}"
        );
        let day30_late = datetime!(2025-04-01 23:59 UTC);
        assert!(
            app.clone()
                .apply(&Actor::Applicant, Command::Retrieve(code), day30_late, &DeadlinePolicy::default())
                .is_ok()
        );
        let t = app.apply(&Actor::System, Command::Expire, day31, &DeadlinePolicy::default()).unwrap();
        let ApplicationState::Expired { from, deadline, .. } = t.application.state() else { panic!() };
        assert_eq!((from.as_str(), deadline.last_day), ("certificates-ready", date!(2025 - 04 - 01)));
        assert_eq!(t.audit.action, AuditAction::ApplicationExpired);
    }

    #[test]
    fn states_round_trip_through_storage() {
        let mut all: Vec<Application> = ALL_STATE_NAMES[..10].iter().map(|s| walk("medium-token", s).0).collect();
        all.push(terminal("rejected"));
        let (app, _, _) = walk("medium", "submitted");
        let expired = app.apply(&Actor::System, Command::Expire, T0 + Duration::days(60), &DeadlinePolicy::default());
        all.push(expired.unwrap().application);
        all.push(terminal("withdrawn"));
        let mut seen: Vec<&str> = Vec::new();
        for app in &all {
            let (name, data) = app.state().to_stored();
            assert_eq!(ApplicationState::from_stored(name, &data).unwrap(), *app.state(), "{name}");
            let form_json = serde_json::to_string(app.form()).unwrap();
            assert_eq!(serde_json::from_str::<ApplicationForm>(&form_json).unwrap(), *app.form());
            seen.push(name);
        }
        assert_eq!(seen, ALL_STATE_NAMES, "every state is reachable and named in lifecycle order");
        assert_eq!(
            ApplicationState::from_stored("approved-ish", "{}"),
            Err(StoredStateError::UnknownState("approved-ish".into()))
        );
        assert!(matches!(ApplicationState::from_stored("approved", "{}"), Err(StoredStateError::Data { .. })));
    }

    #[test]
    fn activation_codes_and_tokens_never_debug_print() {
        let code = ActivationCode::generate();
        let shown = format!("{code:?} {:?}", IssuedSecret::Activation(code.clone()));
        assert!(!shown.contains(&code.0) && shown.contains("redacted"), "{shown}");
        let token = VerificationToken::generate();
        assert!(!format!("{token:?}").contains(token.expose()));
        let (app, _, _) = walk("medium-token", "certificates-ready");
        assert!(!format!("{app:?}").contains(&code.0));
        assert_eq!(code.expose().len(), 19);
        assert!(ActivationCode::new("too-short").is_err());
        let pw = NewPassword::new("Correct-Horse-42", &Email::new("x@y.example").unwrap()).unwrap();
        assert_eq!(format!("{pw:?}"), "NewPassword(<redacted>)");
        assert_eq!(format!("{:?}", CardNumber::new("4242 4242 4242 4242").unwrap()), "CardNumber(****4242)");
    }

    #[test]
    fn organization_names_fold_for_duplicates() {
        let key = |s: &str| OrganizationKey::of(&OrganizationName::new(s).unwrap()).as_str().to_owned();
        assert_eq!(key("Acme, Inc."), key("ACME Inc"));
        assert_eq!(key("Acme Incorporated"), key("acme  inc."));
        assert_eq!(key("Smith & Sons L.L.C."), key("Smith and Sons LLC"));
        assert_eq!(key("Acme, Inc."), "acme inc");
        assert_ne!(key("Acme Inc"), key("Acme Rockets Inc"));
        let org = Organization::new(OrganizationName::new("Acme, Inc.").unwrap());
        let ev = org.created_event(T0, &Actor::Applicant);
        assert_eq!((ev.action, ev.subject.as_str()), (AuditAction::OrganizationCreated, "acme inc"));
    }

    #[test]
    fn addresses_zips_and_phones() {
        assert_eq!(ZipCode::new("98101").unwrap().as_str(), "98101");
        assert_eq!(ZipCode::new("98101-1234").unwrap().as_str(), "98101-1234");
        assert_eq!(ZipCode::new("981011234").unwrap().as_str(), "98101-1234");
        for bad in ["9810", "981012", "98101-12", "9810a", "00000", "98101 1234", ""] {
            assert_eq!(ZipCode::new(bad), Err(InputError::ZipCode(bad.into())), "{bad}");
        }
        assert_eq!(StateCode::new(" wa ").unwrap().as_str(), "WA");
        assert_eq!(StateCode::new("AE").unwrap().as_str(), "AE");
        assert_eq!(StateCode::new("Virginia").unwrap().as_str(), "VA");
        assert_eq!(StateCode::new(" new  york ").unwrap().as_str(), "NY");
        assert_eq!(StateCode::new("Armed Forces Pacific (AP)").unwrap().as_str(), "AP");
        assert_eq!(US_STATES.len(), 59, "50 states, D.C., 5 territories, AA, AE, AP");
        let refused = StateCode::new("XX").unwrap_err();
        assert_eq!(refused.to_string(), "Choose your state, territory or military address (AA, AE, AP) from the list.");
        assert!(StateCode::new("Virginny").is_err() && StateCode::new("").is_err());
        let a = UsAddress::new("1 Main St", " ", "Seattle", "WA", "98101").unwrap();
        assert_eq!(a.line2, None);
        assert_eq!(a.to_string(), "1 Main St\nSeattle, WA 98101");
        assert!(matches!(UsAddress::new("", "", "Seattle", "WA", "98101"), Err(InputError::Text { .. })));
        assert!(matches!(UsAddress::new("1 Main", "", "Seattle", "ZZ", "98101"), Err(InputError::StateCode(_))));
        assert_eq!(PhoneNumber::new("(206) 555-0142").unwrap().as_str(), "+12065550142");
        assert_eq!(PhoneNumber::new("1-206-555-0142").unwrap().as_str(), "+12065550142");
        assert_eq!(PhoneNumber::new("+44 20 7946 0958").unwrap().as_str(), "+442079460958");
        for bad in ["555-0142", "(106) 555-0142", "206 055 0142", "+44 12", "call me"] {
            assert!(PhoneNumber::new(bad).is_err(), "{bad}");
        }
    }

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
    fn certificate_choices_and_prices() {
        let c = Catalog::default_eca();
        let p = PriceTable::default();
        let choice = CertificateChoice::new(&c, &p, "medium-token", 3).unwrap();
        assert_eq!((choice.price(), choice.price().to_string()), (Cents(35_900), "$359.00".to_owned()));
        assert!(matches!(CertificateChoice::new(&c, &p, "medium", 4), Err(InputError::Validity { .. })));
        assert!(matches!(CertificateChoice::new(&c, &p, "device", 1), Err(InputError::NotASubscriberType(_))));
        assert!(matches!(CertificateChoice::new(&c, &p, "gold", 1), Err(InputError::UnknownCertificateType(_))));
        let mut custom = PriceTable::empty();
        assert!(matches!(CertificateChoice::new(&c, &custom, "medium", 1), Err(InputError::NoPrice { .. })));
        custom.set("medium", 1, Cents(9_900));
        assert_eq!(CertificateChoice::new(&c, &custom, "medium", 1).unwrap().price(), Cents(9_900));
        for (t, y, _) in p.iter() {
            CertificateChoice::new(&c, &p, t, y).unwrap();
        }
    }

    #[test]
    fn payment_by_po_and_the_test_card_double() {
        assert_eq!(PoNumber::new(" PO-2025/0042 ").unwrap().as_str(), "PO-2025/0042");
        assert!(PoNumber::new("").is_err() && PoNumber::new("PO 42; drop").is_err());
        assert!(CardNumber::new("4242 4242 4242 4241").is_err(), "bad check digit");
        let id = ApplicationId::generate();
        let ok =
            block_on(TestCardProcessor.authorize(&CardNumber::new("4242-4242-4242-4242").unwrap(), Cents(100), &id));
        assert_eq!(ok.unwrap().last4, "4242");
        let declined = CardNumber::new(TestCardProcessor::DECLINED_CARD).unwrap();
        assert_eq!(block_on(TestCardProcessor.authorize(&declined, Cents(100), &id)), Err(PaymentError::Declined));
        let json = serde_json::to_value(Payment::PurchaseOrder { po: PoNumber::new("PO-1").unwrap() }).unwrap();
        assert_eq!(json, json!({ "method": "purchase-order", "po": "PO-1" }));
    }

    #[test]
    fn ids_parse_as_typed() {
        let id = ApplicationId::generate();
        assert_eq!(ApplicationId::new(&id.as_str().to_lowercase()).unwrap(), id);
        assert!(ApplicationId::new("short").is_err());
        assert!(OperatorId::new("alice@ra").is_ok() && OperatorId::new("alice smith").is_err());
    }

    #[test]
    fn phone_numbers_display_as_people_write_them() {
        assert_eq!(PhoneNumber::new("206 555 0142").unwrap().display(), "(206) 555-0142");
        assert_eq!(PhoneNumber::new("+44 20 7123 4567").unwrap().display(), "+442071234567");
    }
}
