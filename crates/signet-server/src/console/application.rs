//! The operator console: the application page.

use super::*;

/// The command forms of the application page, one per operator command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Forms,
    Callback,
    Identity,
    Approve,
    Ship,
    Activation,
    Reject,
    Withdraw,
}

/// The notes form's name, beside the commands'.
pub(super) const NOTE: &str = "note";
/// The form recording a witnessed key generation (hardware key types).
pub(super) const WITNESS: &str = "witness";
/// The form finding the mailed forms deficient, which asks the applicant to re-send them.
pub(super) const DEFICIENCY: &str = "deficiency";

impl Action {
    const ALL: [Self; 8] = [
        Self::Forms,
        Self::Callback,
        Self::Identity,
        Self::Approve,
        Self::Ship,
        Self::Activation,
        Self::Reject,
        Self::Withdraw,
    ];

    /// The form's path segment and name in the page.
    fn name(self) -> &'static str {
        match self {
            Self::Forms => "forms",
            Self::Callback => "callback",
            Self::Identity => "identity",
            Self::Approve => "approve",
            Self::Ship => "ship",
            Self::Activation => "activation",
            Self::Reject => "reject",
            Self::Withdraw => "withdraw",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// What the role must allow ([`Permission`]'s split: evidence and shipping are vetting;
    /// approving and rejecting are approval).
    fn permission(self) -> Permission {
        match self {
            Self::Approve | Self::Reject => Permission::ApproveApplications,
            _ => Permission::VetApplications,
        }
    }

    /// The notice after it succeeded.
    fn done(self) -> &'static str {
        match self {
            Self::Forms => "The forms receipt is recorded.",
            Self::Callback => "The call-back is recorded.",
            Self::Identity => "The identity documents are recorded.",
            Self::Approve => "Your approval is recorded.",
            Self::Ship => "The token shipment is recorded.",
            Self::Activation => "The activation code is issued and queued for email.",
            Self::Reject => "The application is rejected; the applicant is told why.",
            Self::Withdraw => "The application is withdrawn.",
        }
    }

    /// Whether the command applies to an application in `state`. The domain
    /// decides again when the form is posted; this only chooses which forms to show.
    fn applies(self, state: &ApplicationState) -> bool {
        let name = state.state_name();
        match self {
            Self::Forms => name == "email-verified",
            Self::Callback => name == "forms-received",
            Self::Identity => name == "officer-confirmed",
            Self::Approve => matches!(name, "identity-verified" | "first-approved"),
            Self::Ship => name == "approved",
            Self::Activation => name == "token-shipped",
            Self::Reject | Self::Withdraw => state.is_open(),
        }
    }
}

/// The fields of a posted form, in the order sent (identity rows repeat their names).
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().filter(|(k, _)| k != "_csrf").collect())
    }
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }
    fn nth(&self, name: &str, i: usize) -> &str {
        self.0.iter().filter(|(k, _)| k == name).nth(i).map_or("", |(_, v)| v.as_str())
    }
    /// Every value sent under `name` (ticked checkboxes).
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Field → message for a refused form; identity rows use `type1`, `number2`, ….
pub(super) type Errors = BTreeMap<String, String>;

/// Collects per-field messages while parsing a form.
#[derive(Default)]
pub(super) struct Check(Errors);

impl Check {
    fn fail<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.0.insert(field.to_owned(), message.into());
        None
    }
    fn field<T, E: Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => self.fail(field, e.to_string()),
        }
    }
    fn required<'a>(&mut self, field: &str, value: &'a str, message: &str) -> Option<&'a str> {
        let v = value.trim();
        if v.is_empty() { self.fail(field, message) } else { Some(v) }
    }
    fn date(&mut self, field: &str, value: &str, missing: &str) -> Option<Date> {
        let v = self.required(field, value, missing)?;
        let format = time::macros::format_description!("[year]-[month]-[day]");
        self.field(field, Date::parse(v, format).map_err(|_| "Enter the date as YYYY-MM-DD."))
    }
    fn finish<T>(self, value: Option<T>) -> Result<T, Errors> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// The carriers the forms offer: (form value, label, carrier).
pub(crate) const CARRIERS: [(&str, &str, Carrier); 5] = [
    ("usps", "USPS", Carrier::Usps),
    ("ups", "UPS", Carrier::Ups),
    ("fedex", "FedEx", Carrier::Fedex),
    ("dhl", "DHL", Carrier::Dhl),
    ("other", "Other carrier", Carrier::Other),
];

/// Call-back outcomes: (form value, label, outcome).
pub(super) const OUTCOMES: [(&str, &str, CallOutcome); 4] = [
    ("confirmed", "Confirmed the applicant's employment", CallOutcome::Confirmed),
    ("no-answer", "No answer", CallOutcome::NoAnswer),
    ("left-message", "Left a message", CallOutcome::LeftMessage),
    ("denied", "Denied the applicant's employment (rejects the application)", CallOutcome::Denied),
];

/// Page 5 as found: (form value, label, pages' `citizenship`).
pub(super) const CITIZENSHIP_PAGE: [(&str, &str, Option<bool>); 3] = [
    ("none", "Not enclosed", None),
    ("complete", "Enclosed and complete", Some(true)),
    ("incomplete", "Enclosed but incomplete", Some(false)),
];

pub(super) fn tracking(c: &mut Check, f: &Fields) -> Option<Tracking> {
    let carrier = match CARRIERS.iter().find(|(v, _, _)| *v == f.get("carrier")) {
        Some((_, _, carrier)) => Some(*carrier),
        None => c.fail("carrier", "Choose the carrier."),
    };
    let number = c.required("tracking", f.get("tracking"), "Enter the tracking number.");
    let (carrier, number) = (carrier?, number?);
    let number = c.field("tracking", TrackingNumber::new(carrier, number))?;
    Some(Tracking { carrier, number })
}

pub(super) fn forms_receipt(f: &Fields) -> Result<FormsReceipt, Errors> {
    let mut c = Check::default();
    let received_on = c.date("received_on", f.get("received_on"), "Enter the day the forms arrived.");
    let tracking = tracking(&mut c, f);
    let citizenship = match CITIZENSHIP_PAGE.iter().find(|(v, _, _)| *v == f.get("citizenship")) {
        Some((_, _, page)) => Some(*page),
        None => c.fail("citizenship", "Say whether page 5 is enclosed."),
    };
    let attestation = match f.get("attestation") {
        "notarized" => {
            let name = c.required("notary_name", f.get("notary_name"), "Enter the notary's name as on the seal.");
            let seal = match f.get("seal") {
                "yes" => Some(true),
                "no" => Some(false),
                _ => c.fail("seal", "Say whether the notary's seal is on the pages."),
            };
            let on = c.date("notarized_on", f.get("notarized_on"), "Enter the notarization date.");
            match (name, seal, on) {
                (Some(name), Some(seal_present), Some(notarized_on)) => {
                    Some(Attestation::Notarized { notary_name: name.to_owned(), seal_present, notarized_on })
                }
                _ => None,
            }
        }
        "in-person" => {
            let registrar = c.field("registrar", OperatorId::new(f.get("registrar").trim()));
            let on = c.date("attested_on", f.get("attested_on"), "Enter the date of the in-person proofing.");
            registrar.zip(on).map(|(registrar, attested_on)| Attestation::InPerson { registrar, attested_on })
        }
        _ => c.fail("attestation", "Say who proofed the applicant: a notary or a registrar in person."),
    };
    let pages = citizenship.map(|citizenship| FormPages {
        officer_verification: f.get("officer_page") == "yes",
        identity_verification: f.get("identity_page") == "yes",
        citizenship,
    });
    let receipt = match (received_on, tracking, pages, attestation) {
        (Some(received_on), Some(tracking), Some(pages), Some(attestation)) => {
            Some(FormsReceipt { received_on, tracking, pages, attestation })
        }
        _ => None,
    };
    c.finish(receipt)
}

pub(super) fn callback(f: &Fields, op: &Operator, now: OffsetDateTime) -> Result<OfficerCallback, Errors> {
    let mut c = Check::default();
    let name = c
        .required("officer_name", f.get("officer_name"), "Enter the officer's name from page 2.")
        .and_then(|n| c.field("officer_name", CommonName::new(n)));
    let phone = c.field("phone", PhoneNumber::new(f.get("phone")));
    let outcome = match OUTCOMES.iter().find(|(v, _, _)| *v == f.get("outcome")) {
        Some((_, _, outcome)) => Some(*outcome),
        None => c.fail("outcome", "Choose how the call went."),
    };
    let call = match (name, phone, outcome) {
        (Some(officer_name), Some(phone), Some(outcome)) => {
            Some(OfficerCallback { officer_name, phone, called_by: op.id.clone(), called_at: now, outcome })
        }
        _ => None,
    };
    c.finish(call)
}

/// The filled rows; a row left entirely empty is skipped. An empty list goes to the domain,
/// whose finding says a document is needed.
pub(super) fn documents(f: &Fields) -> Result<Vec<IdentityDocument>, Errors> {
    let mut c = Check::default();
    let mut out = Vec::new();
    for i in 0..DOCUMENT_ROWS {
        let (kind, number, expires) = (f.nth("type", i), f.nth("number", i), f.nth("expires", i));
        if [kind, number, expires].iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let row = i + 1;
        let expires_on = if expires.trim().is_empty() {
            Some(None)
        } else {
            c.date(&format!("expires{row}"), expires, "Enter the expiry date.").map(Some)
        };
        if kind.is_empty() {
            c.fail::<()>(&format!("type{row}"), "Choose the document type.");
            continue;
        }
        let Some(number) = c.required(&format!("number{row}"), number, "Enter the document number.") else { continue };
        let document = IdentityDocument::new(kind, number, expires_on.flatten());
        // The error names the field: an unknown type, or a number that is not letters and digits.
        let field = if matches!(document, Err(signet_ra::application::InputError::DocumentType(_))) {
            format!("type{row}")
        } else {
            format!("number{row}")
        };
        if let (Some(d), Some(_)) = (c.field(&field, document), expires_on) {
            out.push(d);
        }
    }
    c.finish(Some(out))
}

pub(super) fn reason(f: &Fields) -> Result<Reason, Errors> {
    let mut c = Check::default();
    let reason = c
        .required("reason", f.get("reason"), "Write the reason the applicant will read.")
        .and_then(|r| c.field("reason", Reason::new(r)));
    c.finish(reason)
}

/// An operator's note on an application: 1 to 2,000 characters; line breaks allowed, other
/// control characters not.
pub(super) struct Note(String);

impl Note {
    const MAX: usize = 2000;
    fn new(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad_char = t.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
        if t.is_empty() || t.chars().count() > Self::MAX || bad_char {
            return Err(format!("Write a note of 1 to {} characters.", Self::MAX));
        }
        Ok(Self(t.to_owned()))
    }
}

/// Parses the posted form of `action` into its command.
pub(super) fn command(action: Action, f: &Fields, op: &Operator, now: OffsetDateTime) -> Result<Command, Errors> {
    match action {
        Action::Forms => forms_receipt(f).map(Command::RecordForms),
        Action::Callback => callback(f, op, now).map(Command::RecordCallback),
        Action::Identity => documents(f).map(Command::VerifyIdentity),
        Action::Approve => Ok(Command::Approve),
        Action::Ship => {
            let mut c = Check::default();
            let t = tracking(&mut c, f);
            c.finish(t).map(Command::ShipToken)
        }
        Action::Activation => Ok(Command::IssueActivationCode),
        Action::Reject => reason(f).map(Command::Reject),
        Action::Withdraw => {
            if f.get("confirm") == "yes" {
                Ok(Command::Withdraw)
            } else {
                Err(Errors::from([("confirm".to_owned(), "Confirm that the applicant asked to withdraw.".to_owned())]))
            }
        }
    }
}

/// Why a posted form did not take effect.
pub(super) enum Refusal {
    /// Fields were wrong.
    Invalid(Errors),
    /// The domain refused, or the application changed meanwhile; the message says which.
    Refused(String, StatusCode),
    /// Not a form problem: the page fails.
    Page(PageError),
}

/// What a refused form shows when the page is drawn again.
#[derive(Default)]
pub(super) struct Entered {
    action: &'static str,
    fields: Option<Fields>,
    errors: Errors,
    message: String,
}

pub(super) struct Section {
    title: &'static str,
    rows: Vec<(String, String)>,
}

pub(super) struct HistoryRow {
    at: String,
    actor: String,
    action: String,
    text: String,
    note: bool,
}

#[derive(Template)]
#[template(path = "console/application.html")]
pub(super) struct ApplicationPage {
    nav: Nav,
    reference: String,
    state: &'static str,
    deadline: String,
    flag: bool,
    notice: String,
    submitted: Vec<(String, String)>,
    blocking: Vec<String>,
    warnings: Vec<String>,
    evidence: Vec<Section>,
    history: Vec<HistoryRow>,
    offered: Vec<Action>,
    in_person: bool,
    today: String,
    carriers: Vec<(&'static str, &'static str)>,
    outcomes: Vec<(&'static str, &'static str)>,
    citizenship_pages: Vec<(&'static str, &'static str)>,
    document_types: Vec<(&'static str, &'static str)>,
    document_rows: Vec<usize>,
    /// Whether the witnessed-key-generation form is shown.
    witness_offered: bool,
    /// The recorded witnessed key generation, as a sentence; empty if none.
    witnessed: String,
    /// What the applicant said they mailed the forms with: the receipt form starts from it.
    mailed_carrier: &'static str,
    mailed_tracking: String,
    /// Whether the deficiency form is shown.
    deficiency_offered: bool,
    /// (value, label) of each problem the deficiency form lists.
    problems: Vec<(&'static str, &'static str)>,
    entered: Entered,
}

impl ApplicationPage {
    fn offers(&self, form: &str) -> bool {
        self.offered.iter().any(|a| a.name() == form)
    }
    fn failed(&self, form: &str) -> bool {
        self.entered.action == form
    }
    /// The value typed into `form`'s `field` if that form was refused, else its default.
    fn val(&self, form: &str, field: &str) -> &str {
        match &self.entered.fields {
            Some(f) if self.failed(form) => f.get(field),
            _ => match (form, field) {
                ("forms", "received_on") => &self.today,
                ("forms", "attestation") if self.in_person => "in-person",
                ("forms", "attestation") => "notarized",
                ("forms", "citizenship") => "none",
                ("forms", "carrier") => self.mailed_carrier,
                ("forms", "tracking") => &self.mailed_tracking,
                _ => "",
            },
        }
    }
    fn picked(&self, form: &str, field: &str, value: &str) -> bool {
        self.val(form, field) == value
    }
    /// Whether the refused deficiency form had `problem` ticked.
    fn ticked(&self, problem: &str) -> bool {
        match &self.entered.fields {
            Some(f) if self.failed(DEFICIENCY) => f.all("problem").any(|v| v == problem),
            _ => false,
        }
    }
    /// Identity row `i`'s `field`, as typed.
    fn row(&self, field: &str, i: &usize) -> &str {
        match &self.entered.fields {
            Some(f) if self.failed("identity") => f.nth(field, *i),
            _ => "",
        }
    }
    fn err(&self, form: &str, field: &str) -> &str {
        if self.failed(form) { self.entered.errors.get(field).map_or("", String::as_str) } else { "" }
    }
    fn row_err(&self, field: &str, i: &usize) -> &str {
        if self.failed("identity") {
            self.entered.errors.get(&format!("{field}{}", i + 1)).map_or("", String::as_str)
        } else {
            ""
        }
    }
    /// The page-level reason `form` was refused.
    fn refused(&self, form: &str) -> &str {
        if self.failed(form) { &self.entered.message } else { "" }
    }
}

pub(super) fn vetting_of(state: &ApplicationState) -> Option<&Vetting> {
    use ApplicationState as S;
    match state {
        S::IdentityVerified { vetting }
        | S::FirstApproved { vetting, .. }
        | S::Approved { vetting, .. }
        | S::TokenShipped { vetting, .. }
        | S::CertificatesReady { vetting, .. }
        | S::Retrieved { vetting, .. } => Some(vetting),
        _ => None,
    }
}

pub(super) fn submitted_rows(s: &AppState, app: &Application) -> Vec<(String, String)> {
    let f = app.form();
    let program =
        s.agencies.programs().iter().find(|p| p.id == f.program.as_str()).map_or(f.program.as_str(), |p| &p.name);
    let agencies: Vec<&str> =
        f.agencies.iter().map(|id| s.agencies.agency(id).map_or(id.as_str(), |a| a.name.as_str())).collect();
    let payment = match &f.payment {
        Payment::Invoice => "Invoice to the organization".to_owned(),
        Payment::PurchaseOrder { po } => format!("Invoice against purchase order {po}"),
        Payment::Card { authorization } => {
            format!(
                "Card ending {} (authorization {}, {})",
                authorization.last4, authorization.id, authorization.amount
            )
        }
    };
    let rows = [
        ("Submitted", when(app.submitted_at())),
        ("Federal program", program.to_owned()),
        ("Agencies", if agencies.is_empty() { "none chosen".to_owned() } else { agencies.join(", ") }),
        ("Lives in the U.S.", if f.residency == Residency::UnitedStates { "Yes" } else { "No" }.to_owned()),
        (
            "Certificate",
            format!(
                "{}, {} year(s), {}",
                s.type_name(f.certificate.cert_type()),
                f.certificate.years(),
                f.certificate.price()
            ),
        ),
        ("Organization", f.organization.as_str().to_owned()),
        ("Name", f.applicant.name.as_str().to_owned()),
        ("Email", f.applicant.email.as_str().to_owned()),
        ("Phone", f.applicant.phone.as_str().to_owned()),
        ("Ships to", f.applicant.shipping.to_string().replace('\n', ", ")),
        ("Second citizenship", f.applicant.second_citizenship.clone().unwrap_or_else(|| "none".to_owned())),
        ("Payment", payment),
    ];
    rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub(super) fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

pub(super) fn evidence(app: &Application, token: Option<&StockToken>, trail: &FormsTrail) -> Vec<Section> {
    use ApplicationState as S;
    let state = app.state();
    let mut out = Vec::new();
    let row = |k: &str, v: String| (k.to_owned(), v);
    if let Some(m) = &trail.mailed {
        let rows = vec![
            row("Mailed with", format!("{} {}", m.tracking.carrier.name(), m.tracking.number.as_str())),
            row("Recorded by the applicant", when(m.at)),
        ];
        out.push(Section { title: "Forms mailed (as the applicant told us)", rows });
    }
    if let Some(d) = &trail.deficiency {
        let mut rows: Vec<(String, String)> = d.problems.iter().map(|p| row("Problem", p.label().to_owned())).collect();
        rows.extend(d.note.iter().map(|n| row("Note to the applicant", n.clone())));
        rows.push(row("Found", when(d.at)));
        out.push(Section { title: "Forms to be re-sent", rows });
    }
    if let Some(forms) = state.forms() {
        let mut rows = vec![
            row("Received", forms.received_on.to_string()),
            row("Mailed by", format!("{} {}", forms.tracking.carrier.name(), forms.tracking.number)),
            row("Page 2 (officer) complete", yes_no(forms.pages.officer_verification)),
            row("Page 4 (identity) complete", yes_no(forms.pages.identity_verification)),
            row(
                "Page 5 (citizenship)",
                match forms.pages.citizenship {
                    None => "not enclosed".to_owned(),
                    Some(complete) => format!("enclosed, complete: {}", yes_no(complete)),
                },
            ),
        ];
        match &forms.attestation {
            Attestation::Notarized { notary_name, seal_present, notarized_on } => rows.extend([
                row("Notary", notary_name.clone()),
                row("Notary seal present", yes_no(*seal_present)),
                row("Notarized on", notarized_on.to_string()),
            ]),
            Attestation::InPerson { registrar, attested_on } => rows.extend([
                row("Proofed in person by", registrar.to_string()),
                row("Proofed on", attested_on.to_string()),
            ]),
        }
        out.push(Section { title: "Forms received", rows });
    }
    let (attempts, officer): (&[OfficerCallback], Option<&OfficerCallback>) = match state {
        S::FormsReceived { call_attempts, .. } => (call_attempts, None),
        S::OfficerConfirmed { call_attempts, officer, .. } => (call_attempts, Some(officer)),
        _ => vetting_of(state).map_or((&[], None), |v| (&v.call_attempts, Some(&v.officer))),
    };
    let calls: Vec<(String, String)> = attempts
        .iter()
        .chain(officer)
        .map(|c| {
            let what = format!("{} at {}: {}", c.officer_name.as_str(), c.phone, c.outcome.name());
            (format!("{} by {}", when(c.called_at), c.called_by), what)
        })
        .collect();
    if !calls.is_empty() {
        out.push(Section { title: "Officer call-backs", rows: calls });
    }
    if let Some(v) = vetting_of(state) {
        let mut rows: Vec<(String, String)> = v
            .identity
            .documents
            .iter()
            .map(|d| {
                let expires = d.expires_on().map_or_else(String::new, |e| format!(", expires {e}"));
                (d.kind().name.to_owned(), format!("{}{expires}", d.number().masked()))
            })
            .collect();
        rows.push(row("Verified", format!("{} by {}", when(v.identity.at), v.identity.by)));
        out.push(Section { title: "Identity documents", rows });
    }
    let approvals = match state {
        S::FirstApproved { first, .. } => vec![first],
        S::Approved { approvals, .. }
        | S::TokenShipped { approvals, .. }
        | S::CertificatesReady { approvals, .. }
        | S::Retrieved { approvals, .. } => vec![&approvals.first, &approvals.second],
        _ => Vec::new(),
    };
    if !approvals.is_empty() {
        let rows = approvals
            .iter()
            .zip(["First approval", "Second approval"])
            .map(|(a, label)| row(label, format!("{} at {}", a.by, when(a.at))))
            .collect();
        out.push(Section { title: "Approvals", rows });
    }
    if let Some(sh) = state.shipment() {
        let mut rows = vec![
            row("Token shipped", format!("{} {}", sh.tracking.carrier.name(), sh.tracking.number)),
            row("Shipped", format!("{} by {}", when(sh.at), sh.by)),
        ];
        if let Some(t) = token {
            rows.push(row("Token", format!("{} ({} {}): {}", t.serial, t.manufacturer, t.model, t.state.describe())));
        }
        out.push(Section { title: "Shipment", rows });
    }
    let outcome = match state {
        S::CertificatesReady { activation, .. } => {
            Some(vec![row("Activation code issued", when(activation.issued_at))])
        }
        S::Retrieved { retrieved_at, .. } => Some(vec![row("Certificates retrieved", when(*retrieved_at))]),
        S::Rejected { from, by, reason, at } => Some(vec![
            row("Rejected", format!("{} by {by} (was {from})", when(*at))),
            row("Reason", reason.as_str().to_owned()),
        ]),
        S::Expired { from, deadline, at } => Some(vec![row(
            "Expired",
            format!("{} (was {from}; {} deadline {})", when(*at), deadline.kind.name(), deadline.last_day),
        )]),
        S::Withdrawn { from, at } => Some(vec![row("Withdrawn", format!("{} (was {from})", when(*at)))]),
        _ => None,
    };
    if let Some(rows) = outcome {
        out.push(Section { title: "Outcome", rows });
    }
    out
}

/// An audit row for the history: notes show their text, other events their details.
pub(super) fn history_row(r: &AuditRecord) -> HistoryRow {
    let at = OffsetDateTime::from_unix_timestamp(r.at).map_or_else(|_| r.at.to_string(), when);
    let details: serde_json::Value = serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null);
    let note = r.action == AuditAction::NoteAdded.name();
    let text = match (&details, note) {
        (serde_json::Value::Object(map), true) => {
            map.get("note").and_then(|n| n.as_str()).unwrap_or_default().to_owned()
        }
        (serde_json::Value::Object(map), false) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                // Moments are stored as Unix seconds (`*_at`); an operator reads dates.
                serde_json::Value::Number(n) if k.ends_with("_at") => {
                    let moment = n.as_i64().and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
                    format!("{k}: {}", moment.map_or_else(|| n.to_string(), when))
                }
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    };
    HistoryRow { at, actor: r.actor.clone(), action: r.action.clone(), text, note }
}

pub(super) async fn application_view(
    s: &AppState,
    session: &Session,
    op: &Operator,
    id: &ApplicationId,
    notice: &str,
    entered: Entered,
) -> Result<ApplicationPage, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let history = s.store.application_history(id).await?;
    let today = s.clock.now().date();
    let (blocking, warnings): (Vec<_>, Vec<_>) =
        vetting::findings(&app, today, &s.deadlines).into_iter().partition(vetting::Finding::is_blocking);
    let deadline = deadline_of(s, &app);
    let witness = s.store.witness(id).await?;
    let witnessed = witness.as_ref().map_or_else(String::new, |w| {
        format!(
            "Key generation witnessed in person by {} on {}, on token {}: {}",
            w.operator,
            when(w.witnessed_at),
            w.token.as_ref().map_or("(serial not recorded)", TokenSerial::as_str),
            w.note
        )
    });
    let witness_offered = witness.is_none() && needs_witness(s, &app) && op.role.may(Permission::VetApplications);
    let token = s.store.token_of(id).await?;
    let trail = FormsTrail::of(&history);
    let mailed_carrier = trail
        .mailed
        .as_ref()
        .map_or("", |m| CARRIERS.iter().find(|(_, _, c)| *c == m.tracking.carrier).map_or("", |(v, _, _)| *v));
    let mailed_tracking = trail.mailed.as_ref().map_or_else(String::new, |m| m.tracking.number.as_str().to_owned());
    let deficiency_offered = Deficiency::may_be_found(app.state()) && op.role.may(Permission::VetApplications);
    let deadline_text = deadline.map_or_else(String::new, |(d, days, _)| {
        let what = match d.kind {
            DeadlineKind::Open => "The forms must arrive by",
            DeadlineKind::Retrieval => "The certificates must be retrieved by",
        };
        format!(
            "{what} {} ({}).",
            d.last_day,
            if days < 0 { days_text(days) } else { format!("{} left", days_text(days)) }
        )
    });
    Ok(ApplicationPage {
        nav: Nav::new(session, op),
        reference: id.as_str().to_owned(),
        state: app.state().state_name(),
        deadline: deadline_text,
        flag: deadline.is_some_and(|(_, _, flag)| flag),
        notice: notice.to_owned(),
        submitted: submitted_rows(s, &app),
        blocking: blocking.into_iter().map(|f| f.message).collect(),
        warnings: warnings.into_iter().map(|f| f.message).collect(),
        evidence: evidence(&app, token.as_ref(), &trail),
        history: history.iter().map(history_row).collect(),
        offered: Action::ALL.into_iter().filter(|a| a.applies(app.state()) && op.role.may(a.permission())).collect(),
        in_person: app.proofing_rule() == vetting::ProofingRule::InPersonRegistrar,
        today: today.to_string(),
        carriers: CARRIERS.iter().map(|(v, l, _)| (*v, *l)).collect(),
        outcomes: OUTCOMES.iter().map(|(v, l, _)| (*v, *l)).collect(),
        citizenship_pages: CITIZENSHIP_PAGE.iter().map(|(v, l, _)| (*v, *l)).collect(),
        document_types: ACCEPTED_DOCUMENTS.iter().map(|k| (k.id, k.name)).collect(),
        document_rows: (0..DOCUMENT_ROWS).collect(),
        witness_offered,
        witnessed,
        mailed_carrier,
        mailed_tracking,
        deficiency_offered,
        problems: FormProblem::ALL.iter().map(|p| (p.name(), p.label())).collect(),
        entered,
    })
}

/// Whether the application's type needs a hardware-held key and it is at the stage where the
/// applicant generates it (token shipped, or certificates ready).
pub(super) fn needs_witness(s: &AppState, app: &Application) -> bool {
    s.needs_hardware_key(app) && matches!(app.state().state_name(), "token-shipped" | "certificates-ready")
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DoneQuery {
    done: String,
}

pub(super) async fn application_page(
    State(s): State<AppState>,
    mut session: Session,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Ok(id) = ApplicationId::new(&id) else { return PageError::NotFound.into_response() };
    let notice = match q.done.as_str() {
        NOTE => "Your note is added.",
        WITNESS => "The witnessed key generation is recorded.",
        DEFICIENCY => "The problems are recorded and the applicant is emailed what to re-send.",
        other => Action::parse(other).map_or("", Action::done),
    };
    match application_view(&s, &session, &op, &id, notice, Entered::default()).await {
        Ok(page) => render(&page),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn add_note(s: &AppState, op: &Operator, id: &ApplicationId, f: &Fields) -> Result<(), Refusal> {
    let note = Note::new(f.get("note")).map_err(|m| Refusal::Invalid(Errors::from([("note".to_owned(), m)])))?;
    // Notes go on applications that exist; the audit row is the note.
    s.store.load(id).await.map_err(|e| Refusal::Page(e.into()))?.ok_or(Refusal::Page(PageError::NotFound))?;
    let event = AuditEvent::new(
        s.clock.now(),
        &op.audit_name(),
        AuditAction::NoteAdded,
        id.as_str(),
        json!({ "note": note.0 }),
    );
    s.store.audit(&event).await.map_err(|e| Refusal::Page(e.into()))
}

pub(super) async fn add_deficiency(s: &AppState, op: &Operator, id: &ApplicationId, f: &Fields) -> Result<(), Refusal> {
    let app = s.store.load(id).await.map_err(|e| Refusal::Page(e.into()))?.ok_or(Refusal::Page(PageError::NotFound))?;
    if !Deficiency::may_be_found(app.state()) {
        return Err(Refusal::Refused(
            "forms are found deficient only after the email is confirmed and before the approval".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let mut problems = Vec::new();
    for value in f.all("problem") {
        match FormProblem::parse(value) {
            Some(p) => problems.push(p),
            None => {
                return Err(Refusal::Invalid(Errors::from([(
                    "problem".to_owned(),
                    "Tick problems from the list.".to_owned(),
                )])));
            }
        }
    }
    let finding = Deficiency::new(&problems, f.get("note"), s.clock.now()).map_err(|e| {
        let field = if e == DeficiencyError::NoProblem { "problem" } else { "note" };
        Refusal::Invalid(Errors::from([(field.to_owned(), e.to_string())]))
    })?;
    // The finding and the mail asking to re-send are one write: no finding the applicant is not told.
    let notice = s.notifier.forms_deficient(&app, &finding);
    let event = finding.event(id, &Actor::Operator(op.id.clone()));
    s.store.audit_with_notices(&event, &[notice]).await.map_err(|e| Refusal::Page(e.into()))
}

pub(super) async fn add_witness(s: &AppState, op: &Operator, id: &ApplicationId, f: &Fields) -> Result<(), Refusal> {
    let app = s.store.load(id).await.map_err(|e| Refusal::Page(e.into()))?.ok_or(Refusal::Page(PageError::NotFound))?;
    if !needs_witness(s, &app) {
        return Err(Refusal::Refused(
            "a witnessed key generation is recorded only for hardware-key types, once the token is shipped".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let witness =
        WitnessedGeneration::record(id.clone(), op.id.clone(), f.get("token_serial"), f.get("note"), s.clock.now())
            .map_err(|e| {
                let field = if e == WitnessRefused::Token { "token_serial" } else { "note" };
                Refusal::Invalid(Errors::from([(field.to_owned(), e.to_string())]))
            })?;
    // A token from the stock was bound at shipment: the witnessed one must be that token.
    if let Some(shipped) = s.store.token_of(id).await.map_err(|e| Refusal::Page(e.into()))?
        && witness.token.as_ref() != Some(&shipped.serial)
    {
        return Err(Refusal::Invalid(Errors::from([(
            "token_serial".to_owned(),
            format!(
                "The token shipped for this application has serial {}; witness the generation on that token.",
                shipped.serial
            ),
        )])));
    }
    match s.store.record_witness(&witness, witness.event()).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(Refusal::Refused(
            "a witnessed key generation is already recorded for this application".into(),
            StatusCode::CONFLICT,
        )),
        Err(e) => Err(Refusal::Page(e.into())),
    }
}

pub(super) async fn give_command(
    s: &AppState,
    op: &Operator,
    id: &ApplicationId,
    action: Action,
    f: &Fields,
) -> Result<(), Refusal> {
    let token = if matches!(action, Action::Ship) { shipped_token(s, id, f).await } else { Ok(None) };
    // Every wrong field at once: the token serial's message beside the tracking number's.
    let (command, token) = match (command(action, f, op, s.clock.now()), token) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(mut errors), Err(Refusal::Invalid(more))) => {
            errors.extend(more);
            return Err(Refusal::Invalid(errors));
        }
        (Err(errors), _) => return Err(Refusal::Invalid(errors)),
        (Ok(_), Err(refusal)) => return Err(refusal),
    };
    let actor = Actor::Operator(op.id.clone());
    let outcome = match token {
        Some(serial) => match stock::ship(s, id, &actor, command, &serial).await {
            Ok(()) => Ok(()),
            Err(ShipFailure::Stock(e)) => {
                return Err(Refusal::Invalid(Errors::from([("token_serial".to_owned(), e.to_string())])));
            }
            Err(ShipFailure::Command(e)) => Err(e),
        },
        None => s.command(id, &actor, command).await.map(drop),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(application = %id, action = action.name(), "operator command");
            Ok(())
        }
        Err(CommandFailure::NotFound) => Err(Refusal::Page(PageError::NotFound)),
        Err(CommandFailure::Refused(e)) => Err(Refusal::Refused(e.to_string(), StatusCode::UNPROCESSABLE_ENTITY)),
        Err(CommandFailure::Changed) => Err(Refusal::Refused(
            "Someone changed this application while you were entering this; review it and try again.".into(),
            StatusCode::CONFLICT,
        )),
        Err(CommandFailure::Store(e)) => Err(Refusal::Page(e.into())),
    }
}

/// The stock token a shipment names: required for hardware-key types (their retrieval proves
/// the key is on that very token), optional for the others.
pub(super) async fn shipped_token(
    s: &AppState,
    id: &ApplicationId,
    f: &Fields,
) -> Result<Option<TokenSerial>, Refusal> {
    let typed = f.get("token_serial").trim();
    let app = s.store.load(id).await.map_err(|e| Refusal::Page(e.into()))?.ok_or(Refusal::Page(PageError::NotFound))?;
    let field_error = |m: String| Refusal::Invalid(Errors::from([("token_serial".to_owned(), m)]));
    if typed.is_empty() {
        if s.needs_hardware_key(&app) {
            return Err(field_error(format!(
                "A {} certificate ships on a token from the stock: enter the serial number printed on the token.",
                s.type_name(app.form().certificate.cert_type())
            )));
        }
        return Ok(None);
    }
    TokenSerial::new(typed).map(Some).map_err(|e| field_error(e.to_string()))
}

#[tracing::instrument(skip_all, fields(application = %id, action = %action))]
pub(super) async fn application_post(
    State(s): State<AppState>,
    mut session: Session,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(action) = Action::parse(&action) else { return PageError::NotFound.into_response() };
    let op = match signed_in(&s, &mut session, action.permission()).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Ok(id) = ApplicationId::new(&id) else { return PageError::NotFound.into_response() };
    let fields = Fields::parse(&body);
    let outcome = give_command(&s, &op, &id, action, &fields).await;
    respond(&s, &session, &op, &id, action.name(), fields, outcome).await
}

pub(super) async fn note_post(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    record_post(s, session, id, body, NOTE).await
}

pub(super) async fn witness_post(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    record_post(s, session, id, body, WITNESS).await
}

pub(super) async fn deficiency_post(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    record_post(s, session, id, body, DEFICIENCY).await
}

/// A form of the application page that records something beside the lifecycle: a note, a
/// witnessed key generation, or a deficiency finding on the mailed forms.
#[tracing::instrument(skip_all, fields(application = %id, form = form))]
pub(super) async fn record_post(
    s: AppState,
    mut session: Session,
    id: String,
    body: Bytes,
    form: &'static str,
) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Ok(id) = ApplicationId::new(&id) else { return PageError::NotFound.into_response() };
    let fields = Fields::parse(&body);
    let outcome = match form {
        WITNESS => add_witness(&s, &op, &id, &fields).await,
        DEFICIENCY => add_deficiency(&s, &op, &id, &fields).await,
        _ => add_note(&s, &op, &id, &fields).await,
    };
    respond(&s, &session, &op, &id, form, fields, outcome).await
}

/// After a posted form: back to the page with a notice, or the page again with the form's
/// values and why it was refused.
pub(super) async fn respond(
    s: &AppState,
    session: &Session,
    op: &Operator,
    id: &ApplicationId,
    form: &'static str,
    fields: Fields,
    outcome: Result<(), Refusal>,
) -> Response {
    let (entered, status) = match outcome {
        Ok(()) => return Redirect::to(&format!("/console/applications/{id}?done={form}")).into_response(),
        Err(Refusal::Page(e)) => return e.into_response(),
        Err(Refusal::Invalid(errors)) => {
            let message = "Please correct the fields marked below. Nothing was recorded.".to_owned();
            (Entered { action: form, fields: Some(fields), errors, message }, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(Refusal::Refused(message, status)) => {
            let message = format!("Not recorded: {message}");
            (Entered { action: form, fields: Some(fields), errors: Errors::new(), message }, status)
        }
    };
    match application_view(s, session, op, id, "", entered).await {
        Ok(page) => with_status(render(&page), status),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn history_shows_stored_moments_as_dates() {
        let record = AuditRecord {
            seq: 7,
            at: 1_796_396_475,
            actor: "operator:alice".into(),
            action: "officer-confirmed".into(),
            subject: "7K2M9Q4T8V1W".into(),
            details: r#"{"called_at":1796396475,"officer_name":"Sam Officer","pages":2}"#.into(),
            prev_hash: String::new(),
            hash: String::new(),
            request_id: None,
            lane: String::new(),
            lane_seq: 0,
        };
        let row = history_row(&record);
        let moment = when(OffsetDateTime::from_unix_timestamp(1_796_396_475).unwrap());
        assert_eq!(row.text, format!("called_at: {moment}; officer_name: Sam Officer; pages: 2"));
        assert!(!row.text.contains("1796396475"), "{}", row.text);
        assert_eq!(row.at, moment);
    }

    #[test]
    fn every_action_round_trips_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("delete"), None);
    }

    #[test]
    fn forms_receipt_names_each_wrong_field() {
        let errors = forms_receipt(&fields(&[
            ("received_on", "2026-13-01"),
            ("carrier", "ups"),
            ("tracking", "12345"),
            ("attestation", "notarized"),
            ("seal", "maybe"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(keys, ["citizenship", "notarized_on", "notary_name", "received_on", "seal", "tracking"]);
        assert_eq!(errors["tracking"], "\"12345\" is not a UPS tracking number");
        assert_eq!(errors["received_on"], "Enter the date as YYYY-MM-DD.");
    }

    #[test]
    fn identity_rows_skip_blank_ones_and_name_the_bad_field() {
        let ok = documents(&fields(&[
            ("type", "us-passport"),
            ("number", "a1234 5678"),
            ("expires", "2031-05-01"),
            ("type", ""),
            ("number", ""),
            ("expires", ""),
        ]))
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].number().as_str(), "A12345678");
        let errors = documents(&fields(&[
            ("type", "library-card"),
            ("number", "123"),
            ("expires", ""),
            ("type", "drivers-license"),
            ("number", "!!"),
            ("expires", "soon"),
        ]))
        .unwrap_err();
        assert!(errors["type1"].contains("not an accepted identity document type"), "{errors:?}");
        assert!(errors.contains_key("number2") && errors.contains_key("expires2"), "{errors:?}");
    }

    #[test]
    fn notes_take_line_breaks_but_not_other_controls() {
        assert!(Note::new("Called twice.\nOfficer on leave until Monday.").is_ok());
        assert!(Note::new("   ").is_err());
        assert!(Note::new("bell \u{7}").is_err());
        assert!(Note::new(&"x".repeat(Note::MAX + 1)).is_err());
    }
}
