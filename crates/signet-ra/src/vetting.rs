//! Vetting (DESIGN §2 "Vetting"; seed onboarding guide Part 2): the evidence an RA operator
//! records — mailed forms with their tracking number and notary seal, the organization officer
//! call-back, identity documents by type and number — and the checks over it, which return
//! readable [`Finding`]s rather than booleans so the operator console can say what to fix.
//!
//! Also the deadline engine: an application is open 45 days; once notarized, certificates must
//! be retrieved within 30 days of the notary signature or the application expires.
//! [`due_actions`] is the pure function the background job calls with the injected clock's
//! time, and [`timeline`] is the applicant's status-page picture (Day 1 … Day 30).

use serde::{Deserialize, Serialize};
use signet_pki::subject::CommonName;
use time::{Date, Duration, OffsetDateTime};

use crate::application::{
    Application, ApplicationForm, ApplicationState, InputError, OperatorId, PhoneNumber, iso_date, string_display,
};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The step cannot be recorded until this is fixed.
    Blocking,
    /// Worth the operator's attention; does not stop the step.
    Warning,
}

/// One readable result of a vetting check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable machine code, e.g. `notary-seal-missing`.
    pub code: &'static str,
    /// Blocking or warning.
    pub severity: Severity,
    /// What is wrong and what to do, for the operator.
    pub message: String,
}

impl Finding {
    fn blocking(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, severity: Severity::Blocking, message: message.into() }
    }
    fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, severity: Severity::Warning, message: message.into() }
    }
    /// Whether it stops the step.
    pub fn is_blocking(&self) -> bool {
        self.severity == Severity::Blocking
    }
}

// ---------------------------------------------------------------------------------------------
// Mail

/// A parcel carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    /// United States Postal Service.
    Usps,
    /// UPS.
    Ups,
    /// FedEx.
    Fedex,
    /// DHL Express.
    Dhl,
    /// Any other carrier (format checked loosely).
    Other,
}

impl Carrier {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Usps => "USPS",
            Self::Ups => "UPS",
            Self::Fedex => "FedEx",
            Self::Dhl => "DHL",
            Self::Other => "carrier",
        }
    }

    /// What its tracking numbers look like, in words, for a person copying one from a receipt.
    pub fn number_hint(self) -> &'static str {
        match self {
            Self::Ups => "A UPS tracking number has 18 letters and digits and starts with 1Z.",
            Self::Fedex => "A FedEx tracking number has 12, 15, 20 or 22 digits.",
            Self::Usps => "A USPS tracking number has 20 to 22 digits, or 13 characters like EA123456789US.",
            Self::Dhl => "A DHL tracking number has 10 digits.",
            Self::Other => "A tracking number has 6 to 40 letters and digits.",
        }
    }
}

/// A tracking number in its carrier's format, uppercased, spaces removed. The seed guide:
/// "Without a tracking number, IdenTrust may not confirm receipt" — so it is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackingNumber(String);

impl TrackingNumber {
    /// Checks a number against the carrier's format.
    pub fn new(carrier: Carrier, s: &str) -> Result<Self, InputError> {
        let n: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        let alnum = |x: &str| x.bytes().all(|b| b.is_ascii_alphanumeric());
        let ok = match carrier {
            // 1Z + 6-character shipper + 2-digit service + 8 digits.
            Carrier::Ups => n.len() == 18 && n.starts_with("1Z") && alnum(&n),
            Carrier::Fedex => [12, 15, 20, 22].contains(&n.len()) && digits(&n),
            // Domestic 20–22 digits, or the UPU S10 form "EA123456789US".
            Carrier::Usps => {
                ((20..=22).contains(&n.len()) && digits(&n))
                    // ASCII first: the slices below would panic inside a multi-byte character.
                    || (n.len() == 13
                        && n.is_ascii()
                        && n[..2].bytes().all(|b| b.is_ascii_uppercase())
                        && digits(&n[2..11])
                        && n[11..].bytes().all(|b| b.is_ascii_uppercase()))
            }
            Carrier::Dhl => n.len() == 10 && digits(&n),
            Carrier::Other => (6..=40).contains(&n.len()) && alnum(&n),
        };
        if ok { Ok(Self(n)) } else { Err(InputError::TrackingNumber { carrier: carrier.name(), number: s.to_owned() }) }
    }
    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A carrier and tracking number (forms mailed in, token shipped out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// The carrier.
    pub carrier: Carrier,
    /// Its tracking number.
    pub number: TrackingNumber,
}

/// The pages of the form packet, as the operator found them (seed onboarding guide Part 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormPages {
    /// Page 2, Organization Officer Verification: signed, dated, every field on the right side.
    pub officer_verification: bool,
    /// Page 4, Identity Verification: the identification section complete.
    pub identity_verification: bool,
    /// Page 5, second citizenship: `None` if not enclosed, else whether complete.
    pub citizenship: Option<bool>,
}

/// Who witnessed the applicant's identity documents and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Attestation {
    /// A notary public (Medium and Medium Token only).
    Notarized {
        /// The notary's name as on the seal.
        notary_name: String,
        /// Whether the official seal is on the pages (seed: "Missing the seal means starting over").
        seal_present: bool,
        /// The notarization date: day 1 of the 30-day retrieval window.
        #[serde(with = "iso_date")]
        notarized_on: Date,
    },
    /// A registrar or Trusted Agent, in person (required for Medium Hardware, DESIGN §2).
    InPerson {
        /// The registrar's operator id.
        registrar: OperatorId,
        /// The date of the in-person proofing.
        #[serde(with = "iso_date")]
        attested_on: Date,
    },
}

impl Attestation {
    /// The date of the signature that starts the 30-day retrieval window.
    pub fn signed_on(&self) -> Date {
        match self {
            Self::Notarized { notarized_on, .. } => *notarized_on,
            Self::InPerson { attested_on, .. } => *attested_on,
        }
    }
    /// `notarized` or `in-person`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Notarized { .. } => "notarized",
            Self::InPerson { .. } => "in-person",
        }
    }
}

/// The mailed form packet as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormsReceipt {
    /// The day it arrived.
    #[serde(with = "iso_date")]
    pub received_on: Date,
    /// How it was mailed.
    pub tracking: Tracking,
    /// The pages.
    pub pages: FormPages,
    /// Notary or in-person registrar.
    pub attestation: Attestation,
}

/// How an officer call-back went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallOutcome {
    /// The officer confirmed the applicant's employment.
    Confirmed,
    /// The officer said the applicant does not work there (or refused to confirm).
    Denied,
    /// No one answered.
    NoAnswer,
    /// A message was left; the officer may call back (seed onboarding guide).
    LeftMessage,
}

impl CallOutcome {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::Denied => "denied",
            Self::NoAnswer => "no-answer",
            Self::LeftMessage => "left-message",
        }
    }
}

/// One call to the Organization Officer named on page 2 (DESIGN §2: "organization officer
/// confirmed by a call-back").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficerCallback {
    /// The officer's name, from page 2.
    pub officer_name: CommonName,
    /// The number dialled, from page 2.
    pub phone: PhoneNumber,
    /// The operator who called.
    pub called_by: OperatorId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub called_at: OffsetDateTime,
    /// What happened.
    pub outcome: CallOutcome,
}

// ---------------------------------------------------------------------------------------------
// Identity documents

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
string_display!(TrackingNumber);

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

// ---------------------------------------------------------------------------------------------
// Checks

/// Checks a received form packet: pages complete, seal present, the right kind of witness for
/// the type, and dates that make sense (not in the future, not before the application existed,
/// not so old that the 30-day retrieval window has closed).
pub fn check_forms(
    form: &ApplicationForm,
    submitted_on: Date,
    receipt: &FormsReceipt,
    today: Date,
    policy: &DeadlinePolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !receipt.pages.officer_verification {
        out.push(Finding::blocking(
            "officer-page-incomplete",
            "Page 2 (Organization Officer Verification) is unsigned or has empty fields on the officer's side.",
        ));
    }
    if !receipt.pages.identity_verification {
        out.push(Finding::blocking(
            "identity-page-incomplete",
            "Page 4 (Identity Verification) has an incomplete identification section.",
        ));
    }
    match (&form.applicant.second_citizenship, receipt.pages.citizenship) {
        (Some(c), None) => out.push(Finding::blocking(
            "citizenship-page-missing",
            format!("The applicant declared a second citizenship ({c}) but page 5 is not enclosed."),
        )),
        (Some(_), Some(false)) => {
            out.push(Finding::blocking("citizenship-page-incomplete", "Page 5 (second citizenship) is incomplete."))
        }
        (None, Some(_)) => out.push(Finding::warning(
            "citizenship-page-unexpected",
            "Page 5 (second citizenship) is enclosed but the application declares none; update the application.",
        )),
        _ => {}
    }
    match &receipt.attestation {
        Attestation::Notarized { notary_name, seal_present, .. } => {
            if !seal_present {
                out.push(Finding::blocking(
                    "notary-seal-missing",
                    "The notary's official seal is missing: the applicant must have the forms notarized again.",
                ));
            }
            if notary_name.trim().is_empty() {
                out.push(Finding::blocking("notary-name-missing", "Record the notary's name as on the seal."));
            }
            if proofing_rule(form.certificate.cert_type()) == ProofingRule::InPersonRegistrar {
                out.push(Finding::blocking(
                    "in-person-proofing-required",
                    format!(
                        "{} requires identity proofing in person by a registrar or Trusted Agent; a notary \
                         cannot proof it.",
                        form.certificate.cert_type()
                    ),
                ));
            }
        }
        Attestation::InPerson { .. } => {}
    }
    let signed = receipt.attestation.signed_on();
    if signed > today {
        out.push(Finding::blocking("signed-in-future", format!("The signature date {signed} is in the future.")));
    }
    if signed < submitted_on {
        // The forms are generated from the submitted application, so they cannot predate it.
        out.push(Finding::blocking(
            "signed-before-application",
            format!("The signature date {signed} is before the application was submitted ({submitted_on})."),
        ));
    }
    let window = retrieval_deadline(signed, policy);
    if window.passed(today) {
        out.push(Finding::blocking(
            "signed-too-long-ago",
            format!(
                "Signed on {signed}: the {}-day window to retrieve certificates ended on {}. The applicant must \
                 sign and be proofed again.",
                policy.retrieval_days, window.last_day
            ),
        ));
    } else if window.days_left(today) < 7 {
        out.push(Finding::warning(
            "little-time-left",
            format!("Only {} days remain to ship the token and retrieve.", window.days_left(today)),
        ));
    }
    if receipt.received_on > today {
        out.push(Finding::blocking("received-in-future", "The date received is in the future."));
    }
    if receipt.received_on < signed {
        out.push(Finding::blocking("received-before-signed", "The forms cannot arrive before they were signed."));
    }
    out
}

/// Checks a call-back record.
pub fn check_callback(form: &ApplicationForm, call: &OfficerCallback, now: OffsetDateTime) -> Vec<Finding> {
    let mut out = Vec::new();
    if call.called_at > now {
        out.push(Finding::blocking("call-in-future", "The call time is in the future."));
    }
    // The officer must be someone who can vouch for the applicant's employment (seed guide:
    // "your CEO, manager, or someone above you"), so calling the applicant proves nothing.
    if call.phone == form.applicant.phone {
        out.push(Finding::warning(
            "officer-phone-is-applicant",
            "The number called is the applicant's own; confirm the officer's number independently.",
        ));
    }
    if call.officer_name.as_str().eq_ignore_ascii_case(form.applicant.name.as_str()) {
        out.push(Finding::warning("officer-is-applicant", "The officer named is the applicant."));
    }
    out
}

/// Checks identity documents: each number in its type's format, none expired, and the list
/// rule — one List A document, or two different List B documents of which one has a photo.
pub fn check_identity(documents: &[IdentityDocument], today: Date) -> Vec<Finding> {
    let mut out = Vec::new();
    if documents.is_empty() {
        out.push(Finding::blocking("no-documents", "Record at least one identity document."));
        return out;
    }
    for d in documents {
        let f = d.kind.number;
        let n = d.number.as_str();
        let chars_ok = match f.charset {
            Charset::Digits => n.bytes().all(|b| b.is_ascii_digit()),
            Charset::Alphanumeric => true,
        };
        if !(f.min..=f.max).contains(&n.len()) || !chars_ok {
            out.push(Finding::blocking(
                "document-number-format",
                format!("{} numbers are {}; {} is not.", d.kind.name, f.hint, d.number.masked()),
            ));
        }
        if d.expires_on.is_some_and(|e| e < today) {
            out.push(Finding::blocking("document-expired", format!("The {} has expired.", d.kind.name)));
        }
    }
    let has_a = documents.iter().any(|d| d.kind.list == DocumentList::A);
    let mut b_kinds: Vec<&DocumentKind> =
        documents.iter().filter(|d| d.kind.list == DocumentList::B).map(|d| d.kind).collect();
    b_kinds.dedup_by_key(|k| k.id);
    let b_ok = b_kinds.len() >= 2 && b_kinds.iter().any(|k| k.photo);
    if !has_a && !b_ok {
        out.push(Finding::blocking(
            "document-combination",
            "Identity needs one federal government photo ID (List A), or two different non-federal government \
             IDs (List B) of which one has a photo.",
        ));
    }
    out
}

/// Every finding over the evidence an application has so far, for the operator console.
pub fn findings(app: &Application, today: Date, policy: &DeadlinePolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    let submitted_on = app.submitted_at().date();
    if let Some(forms) = app.state().forms() {
        out.extend(check_forms(app.form(), submitted_on, forms, today, policy));
    }
    let officer_and_identity = match app.state() {
        ApplicationState::OfficerConfirmed { officer, .. } => Some((officer, None)),
        ApplicationState::IdentityVerified { vetting }
        | ApplicationState::FirstApproved { vetting, .. }
        | ApplicationState::Approved { vetting, .. }
        | ApplicationState::TokenShipped { vetting, .. }
        | ApplicationState::CertificatesReady { vetting, .. } => Some((&vetting.officer, Some(&vetting.identity))),
        _ => None,
    };
    if let Some((officer, identity)) = officer_and_identity {
        // Calls were checked against the clock when recorded; re-check them against the end of today.
        let end_of_today = today.with_hms(23, 59, 59).expect("valid time").assume_utc();
        out.extend(check_callback(app.form(), officer, end_of_today));
        if let Some(identity) = identity {
            out.extend(check_identity(&identity.documents, today));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Deadlines

/// The deadline rules, as configuration. Day numbers follow the seed guide's timeline: the day
/// of the notary signature is Day 1, so a 30-day window's last day is Day 30 (signature + 29
/// days) — the stricter reading of "within 30 days", never past the window under either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlinePolicy {
    /// Days an application stays open before its forms are received (DESIGN §2: 45).
    pub open_days: u16,
    /// Days from the notary (or registrar) signature to retrieve certificates (DESIGN §2: 30).
    pub retrieval_days: u16,
    /// Days before the deadline to remind the applicant.
    pub reminder_days: Vec<u16>,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self { open_days: 45, retrieval_days: 30, reminder_days: vec![7, 2] }
    }
}

/// Why a deadline policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlinePolicyError {
    /// A window is empty or longer than a year.
    #[error("{field} must be 1 to 365 days, not {days}")]
    Window {
        /// `open_days` or `retrieval_days`.
        field: &'static str,
        /// The days given.
        days: u16,
    },
    /// A reminder would come before its window opens, or twice.
    #[error(
        "reminder_days must each be fewer days than both windows ({shortest}) and appear once; {days} does not fit"
    )]
    Reminder {
        /// The reminder that does not fit.
        days: u16,
        /// The shorter window.
        shortest: u16,
    },
}

impl DeadlinePolicy {
    /// A policy from an operator's settings: both windows 1 to 365 days, each reminder inside
    /// both windows (a reminder is sent that many days before either deadline).
    pub fn new(open_days: u16, retrieval_days: u16, mut reminder_days: Vec<u16>) -> Result<Self, DeadlinePolicyError> {
        for (field, days) in [("open_days", open_days), ("retrieval_days", retrieval_days)] {
            if !(1..=365).contains(&days) {
                return Err(DeadlinePolicyError::Window { field, days });
            }
        }
        let shortest = open_days.min(retrieval_days);
        reminder_days.sort_unstable_by(|a, b| b.cmp(a));
        for pair in reminder_days.windows(2) {
            if pair[0] == pair[1] {
                return Err(DeadlinePolicyError::Reminder { days: pair[0], shortest });
            }
        }
        if let Some(&days) = reminder_days.iter().find(|&&d| d >= shortest) {
            return Err(DeadlinePolicyError::Reminder { days, shortest });
        }
        Ok(Self { open_days, retrieval_days, reminder_days })
    }
}

/// Which rule a deadline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineKind {
    /// The application's open window, counted from submission.
    Open,
    /// The retrieval window, counted from the notary signature.
    Retrieval,
}

impl DeadlineKind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Retrieval => "retrieval",
        }
    }
}

/// A deadline: the last calendar day (UTC) on which the application may still progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The rule.
    pub kind: DeadlineKind,
    /// The last day.
    #[serde(with = "iso_date")]
    pub last_day: Date,
}

impl Deadline {
    /// Whole days from `today` to the last day (0 on the last day, negative after it).
    pub fn days_left(&self, today: Date) -> i64 {
        (self.last_day - today).whole_days()
    }
    /// Whether `today` is past the last day.
    pub fn passed(&self, today: Date) -> bool {
        today > self.last_day
    }
}

fn window(start: Date, days: u16) -> Date {
    start + Duration::days(i64::from(days.max(1)) - 1)
}

fn retrieval_deadline(signed_on: Date, policy: &DeadlinePolicy) -> Deadline {
    Deadline { kind: DeadlineKind::Retrieval, last_day: window(signed_on, policy.retrieval_days) }
}

/// The deadline that governs an open application: the open window until the forms (and with
/// them the notary date) arrive, then the retrieval window. `None` once it is closed.
pub fn deadline(app: &Application, policy: &DeadlinePolicy) -> Option<Deadline> {
    if !app.state().is_open() {
        return None;
    }
    Some(match app.state().forms() {
        Some(forms) => retrieval_deadline(forms.attestation.signed_on(), policy),
        None => Deadline { kind: DeadlineKind::Open, last_day: window(app.submitted_at().date(), policy.open_days) },
    })
}

/// What the background job should do for an application now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineAction {
    /// The deadline passed: apply [`crate::application::Command::Expire`].
    Expire,
    /// Remind the applicant. `threshold` is the configured reminder day this falls under — the
    /// outbox de-duplicates on it, so a job that runs hourly (or missed a day) reminds once.
    Remind {
        /// Days until the last day (0 on the last day).
        days_left: i64,
        /// The reminder day crossed (e.g. 7 for any of days 7 … 3 with reminders at 7 and 2).
        threshold: u16,
    },
}

/// The actions due for `app` at `now` (pure: the job passes its clock's time). Empty when
/// nothing is due or the application is closed.
pub fn due_actions(app: &Application, now: OffsetDateTime, policy: &DeadlinePolicy) -> Vec<DeadlineAction> {
    let Some(d) = deadline(app, policy) else { return Vec::new() };
    let today = now.date();
    if d.passed(today) {
        return vec![DeadlineAction::Expire];
    }
    let days_left = d.days_left(today);
    policy
        .reminder_days
        .iter()
        .copied()
        .filter(|&t| i64::from(t) >= days_left)
        .min()
        .map(|threshold| DeadlineAction::Remind { days_left, threshold })
        .into_iter()
        .collect()
}

/// Where a milestone stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MilestoneStatus {
    /// Happened.
    Done,
    /// The applicant is here: the next thing to happen.
    Current,
    /// Later.
    Upcoming,
}

/// One point of the applicant timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    /// Day number (Day 1 = notary signature).
    pub day: u16,
    /// Shown as "~Day n" (a typical day, not a rule).
    pub approximate: bool,
    /// What happens.
    pub label: &'static str,
    /// The actual date when done, else the expected one once the notary date is known.
    pub date: Option<Date>,
    /// Done, current or upcoming.
    pub status: MilestoneStatus,
}

/// The status page's timeline picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The milestones, the deadline last.
    pub milestones: Vec<Milestone>,
    /// Today's day number, once the notary date is known.
    pub today: Option<i64>,
    /// The governing deadline, while open.
    pub deadline: Option<Deadline>,
    /// Days left until it (0 on the last day), while open.
    pub days_remaining: Option<i64>,
}

/// The seed guide's timeline: (day, approximate, label, the progress that reaches it).
const MILESTONES: &[(u16, bool, &str, u8)] = &[
    (1, false, "Forms notarized and mailed", 2),
    (4, true, "Application received", 2),
    (5, true, "Token shipped", 7),
    // Delivery is not reported back; the activation-code email is the cue to plug the token in.
    (9, true, "Token received", 8),
    (10, true, "Certificates retrieved (do not wait!)", 9),
];

/// The applicant's timeline at `now`; `None` for rejected, expired and withdrawn applications.
pub fn timeline(app: &Application, now: OffsetDateTime, policy: &DeadlinePolicy) -> Option<Timeline> {
    let progress = app.state().progress()?;
    let today = now.date();
    let anchor = app.state().forms().map(|f| f.attestation.signed_on());
    let actual = |day: u16| -> Option<Date> {
        let state = app.state();
        match day {
            1 => anchor,
            4 => state.forms().map(|f| f.received_on),
            5 => state.shipment().map(|s| s.at.date()),
            10 => match state {
                ApplicationState::Retrieved { retrieved_at, .. } => Some(retrieved_at.date()),
                _ => None,
            },
            _ => None,
        }
    };
    let expected = |day: u16| anchor.map(|a| a + Duration::days(i64::from(day) - 1));
    let mut current_set = false;
    let mut milestones: Vec<Milestone> = MILESTONES
        .iter()
        .map(|&(day, approximate, label, reached_at)| {
            let done = progress >= reached_at;
            let status = if done {
                MilestoneStatus::Done
            } else if !current_set {
                current_set = true;
                MilestoneStatus::Current
            } else {
                MilestoneStatus::Upcoming
            };
            // A step done without a recorded day (the token's arrival) was done by today at the
            // latest: its expected day may still lie ahead when things went fast.
            let date = if done { actual(day).or_else(|| expected(day).map(|d| d.min(today))) } else { expected(day) };
            Milestone { day, approximate, label, date, status }
        })
        .collect();
    let deadline = deadline(app, policy);
    milestones.push(Milestone {
        day: policy.retrieval_days,
        approximate: false,
        label: "Deadline to retrieve certificates",
        date: anchor.map(|a| retrieval_deadline(a, policy).last_day),
        status: if progress >= 9 { MilestoneStatus::Done } else { MilestoneStatus::Upcoming },
    });
    Some(Timeline {
        milestones,
        today: anchor.map(|a| (today - a).whole_days() + 1),
        days_remaining: deadline.map(|d| d.days_left(today)),
        deadline,
    })
}

#[cfg(test)]
mod tests {
    use signet_pki::profile::Catalog;
    use time::macros::{date, datetime};

    use super::*;
    use crate::application::tests::{T0, callback, form, notarized_forms, op, walk};
    use crate::application::{Actor, Command, TransitionError};
    use crate::clock::{Clock, FakeClock};

    fn doc(kind: &str, number: &str) -> IdentityDocument {
        IdentityDocument::new(kind, number, None).unwrap()
    }

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn proofing_rules_agree_with_the_certificate_catalog() {
        let catalog = Catalog::default_eca();
        for (id, rule) in PROOFING_RULES {
            let t = catalog.types().iter().find(|t| t.id == *id).unwrap();
            assert_eq!(t.proofing.contains("not a notary"), *rule == ProofingRule::InPersonRegistrar, "{id}");
        }
        assert_eq!(proofing_rule("something-new"), ProofingRule::InPersonRegistrar);
    }

    #[test]
    fn tracking_numbers_by_carrier() {
        assert_eq!(
            TrackingNumber::new(Carrier::Ups, "1z 999 aa1 01 2345 6784").unwrap().as_str(),
            "1Z999AA10123456784"
        );
        assert!(TrackingNumber::new(Carrier::Ups, "2Z999AA10123456784").is_err());
        assert!(TrackingNumber::new(Carrier::Fedex, "123456789012").is_ok());
        assert!(TrackingNumber::new(Carrier::Fedex, "12345678901").is_err());
        assert!(TrackingNumber::new(Carrier::Usps, "9400 1000 0000 0000 0000 00").is_ok());
        assert!(TrackingNumber::new(Carrier::Usps, "EA123456789US").is_ok());
        assert!(TrackingNumber::new(Carrier::Usps, "EA12345678XUS").is_err());
        // Found by fuzz/fuzz_targets/form_inputs.rs: 13 bytes with a character across byte 11.
        assert!(TrackingNumber::new(Carrier::Usps, "EA2469134:\u{4da}3").is_err());
        assert!(TrackingNumber::new(Carrier::Dhl, "1234567890").is_ok());
        assert!(TrackingNumber::new(Carrier::Other, "").is_err());
        let err = TrackingNumber::new(Carrier::Ups, "nope").unwrap_err();
        assert_eq!(err.to_string(), "\"nope\" is not a UPS tracking number");
    }

    #[test]
    fn form_checks() {
        let f = form("medium");
        let p = DeadlinePolicy::default();
        let d = T0.date();
        assert!(check_forms(&f, d, &notarized_forms(d, d + Duration::days(3)), d + Duration::days(3), &p).is_empty());

        let mut bad = notarized_forms(d + Duration::days(5), d + Duration::days(2));
        bad.pages.officer_verification = false;
        bad.pages.citizenship = Some(true);
        bad.attestation = Attestation::Notarized {
            notary_name: " ".into(),
            seal_present: false,
            notarized_on: d + Duration::days(5),
        };
        let found = check_forms(&f, d, &bad, d + Duration::days(1), &p);
        assert_eq!(
            codes(&found),
            [
                "officer-page-incomplete",
                "citizenship-page-unexpected",
                "notary-seal-missing",
                "notary-name-missing",
                "signed-in-future",
                "received-in-future",
                "received-before-signed",
            ]
        );
        assert!(!found[1].is_blocking());
        assert!(found[2].message.contains("notarized again"));

        let before = notarized_forms(d - Duration::days(1), d);
        assert_eq!(codes(&check_forms(&f, d, &before, d, &p)), ["signed-before-application"]);

        // Day 30 of the window is the last; on Day 31 the forms are too old to accept.
        let forms = notarized_forms(d, d);
        assert_eq!(codes(&check_forms(&f, d, &forms, d + Duration::days(25), &p)), ["little-time-left"]);
        assert_eq!(codes(&check_forms(&f, d, &forms, d + Duration::days(30), &p)), ["signed-too-long-ago"]);

        let mut dual = form("medium");
        dual.applicant.second_citizenship = Some("Canada".into());
        assert_eq!(codes(&check_forms(&dual, d, &forms, d, &p)), ["citizenship-page-missing"]);

        assert_eq!(codes(&check_forms(&form("medium-hardware"), d, &forms, d, &p)), ["in-person-proofing-required"]);
    }

    #[test]
    fn callback_checks() {
        let f = form("medium");
        assert!(check_callback(&f, &callback(CallOutcome::Confirmed, T0), T0).is_empty());
        let mut own = callback(CallOutcome::Confirmed, T0 + Duration::hours(1));
        own.phone = f.applicant.phone.clone();
        own.officer_name = f.applicant.name.clone();
        assert_eq!(
            codes(&check_callback(&f, &own, T0)),
            ["call-in-future", "officer-phone-is-applicant", "officer-is-applicant"]
        );
    }

    #[test]
    fn identity_checks() {
        let today = date!(2025 - 03 - 06);
        assert!(check_identity(&[doc("us-passport", "A1234 5678")], today).is_empty());
        assert!(
            check_identity(&[doc("drivers-license", "WDL123456"), doc("birth-certificate", "1234567")], today)
                .is_empty()
        );
        assert_eq!(codes(&check_identity(&[], today)), ["no-documents"]);
        assert_eq!(codes(&check_identity(&[doc("drivers-license", "WDL123456")], today)), ["document-combination"]);
        // Two List B documents without a photo, or the same one twice, do not do.
        let no_photo = [doc("birth-certificate", "1234567"), doc("voter-registration-card", "V12345")];
        assert_eq!(codes(&check_identity(&no_photo, today)), ["document-combination"]);
        let twice = [doc("drivers-license", "WDL123456"), doc("drivers-license", "WDL123456")];
        assert_eq!(codes(&check_identity(&twice, today)), ["document-combination"]);
        let short = check_identity(&[doc("us-passport", "12345")], today);
        assert_eq!(codes(&short), ["document-number-format"]);
        assert!(short[0].message.contains("U.S. passport numbers are 9 characters"), "{}", short[0].message);
        assert_eq!(codes(&check_identity(&[doc("military-id", "12345678AB")], today)), ["document-number-format"]);
        let expired = IdentityDocument::new("us-passport", "A12345678", Some(date!(2025 - 03 - 05))).unwrap();
        assert_eq!(codes(&check_identity(&[expired], today)), ["document-expired"]);
        assert_eq!(
            IdentityDocument::new("library-card", "1", None).unwrap_err(),
            InputError::DocumentType("library-card".into())
        );
        assert_eq!(format!("{:?}", doc("us-passport", "A12345678").number()), "DocumentNumber(*****5678)");
        let json = serde_json::to_string(&doc("us-passport", "A12345678")).unwrap();
        assert_eq!(serde_json::from_str::<IdentityDocument>(&json).unwrap(), doc("us-passport", "A12345678"));
        assert!(serde_json::from_str::<IdentityDocument>(&json.replace("us-passport", "nope")).is_err());
    }

    #[test]
    fn findings_cover_the_recorded_evidence() {
        let (app, _, clock) = walk("medium", "approved");
        assert!(findings(&app, clock.now().date(), &DeadlinePolicy::default()).is_empty());
        let late = clock.now().date() + Duration::days(40);
        assert_eq!(codes(&findings(&app, late, &DeadlinePolicy::default())), ["signed-too-long-ago"]);
    }

    #[test]
    fn retrieval_expires_after_day_30_of_the_notarization() {
        // T0 is 2025-03-03 15:00; the forms were notarized that day (Day 1).
        let (app, _, _) = walk("medium-token", "certificates-ready");
        let p = DeadlinePolicy::default();
        let d = deadline(&app, &p).unwrap();
        assert_eq!((d.kind, d.last_day), (DeadlineKind::Retrieval, date!(2025 - 04 - 01)));
        assert_eq!(
            due_actions(&app, datetime!(2025-04-01 23:59:59 UTC), &p),
            [DeadlineAction::Remind { days_left: 0, threshold: 2 }]
        );
        assert_eq!(due_actions(&app, datetime!(2025-04-02 00:00 UTC), &p), [DeadlineAction::Expire]);
        let t = app.apply(&Actor::System, Command::Expire, datetime!(2025-04-02 00:00 UTC), &p).unwrap();
        assert!(due_actions(&t.application, datetime!(2025-05-01 00:00 UTC), &p).is_empty(), "closed: nothing due");
    }

    #[test]
    fn open_window_expires_after_45_days_without_forms() {
        let (app, _, _) = walk("medium", "email-verified");
        let p = DeadlinePolicy::default();
        let d = deadline(&app, &p).unwrap();
        // Submitted 2025-03-03 (Day 1); Day 45 is 2025-04-16.
        assert_eq!((d.kind, d.last_day), (DeadlineKind::Open, date!(2025 - 04 - 16)));
        let clock = FakeClock::at(T0);
        clock.advance(Duration::days(44));
        assert_ne!(due_actions(&app, clock.now(), &p), [DeadlineAction::Expire]);
        let early = app.clone().apply(&Actor::System, Command::Expire, clock.now(), &p).unwrap_err();
        assert_eq!(early, TransitionError::NotYetDue(d));
        clock.advance(Duration::days(1));
        assert_eq!(due_actions(&app, clock.now(), &p), [DeadlineAction::Expire]);
        // Nothing but expiry, rejection or withdrawal is possible now.
        let forms = notarized_forms(clock.now().date(), clock.now().date());
        let late = app.clone().apply(&op("alice"), Command::RecordForms(forms), clock.now(), &p).unwrap_err();
        assert_eq!(late, TransitionError::DeadlinePassed(d));
        assert!(app.apply(&Actor::System, Command::Expire, clock.now(), &p).is_ok());
    }

    #[test]
    fn an_operators_deadline_policy_is_checked() {
        assert_eq!(DeadlinePolicy::new(45, 30, vec![2, 7]).unwrap(), DeadlinePolicy::default());
        assert_eq!(
            DeadlinePolicy::new(0, 30, vec![]).unwrap_err().to_string(),
            "open_days must be 1 to 365 days, not 0"
        );
        assert!(matches!(
            DeadlinePolicy::new(45, 400, vec![]),
            Err(DeadlinePolicyError::Window { field: "retrieval_days", .. })
        ));
        assert_eq!(
            DeadlinePolicy::new(45, 30, vec![7, 30]).unwrap_err(),
            DeadlinePolicyError::Reminder { days: 30, shortest: 30 }
        );
        assert!(matches!(DeadlinePolicy::new(45, 30, vec![7, 7]), Err(DeadlinePolicyError::Reminder { days: 7, .. })));
        assert_eq!(DeadlinePolicy::new(60, 45, vec![]).unwrap().reminder_days, Vec::<u16>::new());
    }

    #[test]
    fn reminders_fire_once_per_threshold() {
        let (app, _, _) = walk("medium-token", "token-shipped");
        let p = DeadlinePolicy::default();
        let on = |d: Date| due_actions(&app, d.with_hms(9, 0, 0).unwrap().assume_utc(), &p);
        let last = date!(2025 - 04 - 01);
        assert!(on(last - Duration::days(8)).is_empty());
        let seven = on(last - Duration::days(7));
        assert_eq!(seven, [DeadlineAction::Remind { days_left: 7, threshold: 7 }]);
        assert_eq!(on(last - Duration::days(3)), [DeadlineAction::Remind { days_left: 3, threshold: 7 }]);
        assert_eq!(on(last - Duration::days(2)), [DeadlineAction::Remind { days_left: 2, threshold: 2 }]);
        assert_eq!(on(last), [DeadlineAction::Remind { days_left: 0, threshold: 2 }]);
        let custom = DeadlinePolicy { reminder_days: vec![14], ..DeadlinePolicy::default() };
        assert_eq!(
            due_actions(&app, (last - Duration::days(10)).midnight().assume_utc(), &custom),
            [DeadlineAction::Remind { days_left: 10, threshold: 14 }]
        );
    }

    #[test]
    fn timeline_follows_the_application() {
        let p = DeadlinePolicy::default();
        let status = |t: &Timeline| t.milestones.iter().map(|m| m.status).collect::<Vec<_>>();
        use MilestoneStatus::{Current as C, Done as D, Upcoming as U};

        let (app, _, clock) = walk("medium-token", "email-verified");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [C, U, U, U, U, U]);
        assert_eq!((t.today, t.days_remaining), (None, Some(44)));
        assert!(t.milestones.iter().all(|m| m.date.is_none()), "no notary date yet");

        let (app, _, clock) = walk("medium-token", "token-shipped");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, C, U, U]);
        assert_eq!(t.today, Some(5), "shipped on Day 5, as the seed guide expects");
        assert_eq!(t.days_remaining, Some(25));
        assert_eq!(t.milestones[1].date, Some(date!(2025 - 03 - 06)), "actual date received");
        assert_eq!(t.milestones[4].date, Some(date!(2025 - 03 - 12)), "expected Day 10");
        assert_eq!((t.milestones[5].day, t.milestones[5].date), (30, Some(date!(2025 - 04 - 01))));

        let (app, _, clock) = walk("medium-token", "retrieved");
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, D, D, D]);
        assert_eq!((t.deadline, t.days_remaining), (None, None));

        // Certificates ready the day the token shipped: the token's arrival, never reported,
        // is done by today, not on its expected day still ahead.
        let (shipped, _, clock) = walk("medium-token", "token-shipped");
        let app = shipped.apply(&Actor::System, Command::IssueActivationCode, clock.now(), &p).unwrap().application;
        let t = timeline(&app, clock.now(), &p).unwrap();
        assert_eq!(status(&t), [D, D, D, D, C, U]);
        let today = clock.now().date();
        for m in t.milestones.iter().filter(|m| m.status == D) {
            assert!(m.date.is_some_and(|d| d <= today), "{} done on {:?}, after {today}", m.label, m.date);
        }

        let (app, _, clock) = walk("medium", "submitted");
        let t = app.apply(&Actor::Applicant, Command::Withdraw, clock.now(), &p).unwrap();
        assert!(timeline(&t.application, clock.now(), &p).is_none());
    }
}
