//! The applicant's enrollment wizard (`/apply…`): program and residency, the Certificate
//! Selection Wizard, type and validity with price, organization, personal information,
//! account password, payment, review and submission; and, once the certificates are ready, the
//! applicant's view of their retrieval lock (`/applications/{id}/retrieval`): until when failed
//! retrievals pause it, and a button that allows it again at once.
//!
//! Each step is a plain form (no JavaScript). What a step accepts is kept, as typed, in the
//! session's draft; a step that fails shows the same form again with the values entered and a
//! message beside each wrong field. Submission parses the whole draft into the domain's
//! `ApplicationForm` again, so nothing unchecked reaches the domain however the steps were
//! visited.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use signet_pki::subject::{Email, OrganizationName};
use signet_ra::application::{
    Actor, Application, ApplicationForm, ApplicationId, ApplicationStore, CardNumber, CertificateChoice,
    FederalProgram, NewPassword, Organization, OrganizationKey, PasswordHash, Payment, PaymentError, PaymentProcessor,
    PoNumber, Residency, TestCardProcessor,
};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{self, AttemptScope, AttemptStore, LockState, Until};
use signet_ra::wizard::{Exclusion, OfferedType};

use crate::apply_fields::{Errors, NAME_MAX, PO_MAX, PersonalFields, parse_organization, po_message};
use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/apply", get(start_page).post(start_post))
        .route("/apply/agencies", get(agencies_page).post(agencies_post))
        .route("/apply/certificate", get(certificate_page).post(certificate_post))
        .route("/apply/organization", get(organization_page).post(organization_post))
        .route("/apply/personal", get(personal_page).post(personal_post))
        .route("/apply/account", get(account_page).post(account_post))
        .route("/apply/payment", get(payment_page).post(payment_post))
        .route("/apply/review", get(review_page).post(review_post))
        .route("/applications/{id}/retrieval", get(retrieval_page).post(retrieval_allow))
}

/// The wizard's steps in order, for the progress list and for sending a visitor who skipped
/// ahead back to the first unfinished one.
const STEPS: [(&str, &str); 8] = [
    ("/apply", "Program"),
    ("/apply/agencies", "Agencies"),
    ("/apply/certificate", "Certificate"),
    ("/apply/organization", "Organization"),
    ("/apply/personal", "Your details"),
    ("/apply/account", "Password"),
    ("/apply/payment", "Payment"),
    ("/apply/review", "Review"),
];

/// What the applicant entered so far, as typed (every value already passed its step's checks).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Draft {
    program: String,
    residency: String,
    agencies_done: bool,
    agencies: Vec<String>,
    /// The applicant ticked "I will not use <program>": the program's agencies may be left out.
    program_dropped: bool,
    cert_type: String,
    /// The applicant ticked that they will not use the certificate for the program, whose
    /// agencies do not accept the chosen type.
    outside_program: bool,
    years: String,
    organization: String,
    personal: PersonalFields,
    /// The Argon2id hash, never the password.
    password_phc: String,
    /// Made at the payment step: a card authorization names the application it pays for.
    reference: String,
    payment: Option<Payment>,
}

impl Draft {
    /// The first step whose data is missing (the review step when all are done).
    fn first_missing(&self) -> usize {
        let done = [
            !self.program.is_empty() && !self.residency.is_empty(),
            self.agencies_done,
            !self.cert_type.is_empty(),
            !self.organization.is_empty(),
            !self.personal.email.is_empty(),
            !self.password_phc.is_empty(),
            self.payment.is_some(),
        ];
        done.iter().position(|d| !d).unwrap_or(STEPS.len() - 1)
    }

    /// A new program: its agencies are chosen again, and nothing said about the old one holds.
    fn take_program(&mut self, s: &AppState, program: &FederalProgram) {
        self.agencies = s.agencies.program_agencies(program).to_vec();
        self.program = program.as_str().to_owned();
        self.program_dropped = false;
        self.outside_program = false;
    }

    /// Redirects to the first unfinished step if `step` comes after it.
    fn guard(&self, step: usize) -> Option<Response> {
        let missing = self.first_missing();
        (missing < step).then(|| Redirect::to(STEPS[missing].0).into_response())
    }
}

/// What every wizard page template shows around its form.
struct Frame {
    csrf: String,
    step: usize,
    errors: Errors,
}

impl Frame {
    fn new(session: &Session, step: usize, errors: Errors) -> Self {
        Self { csrf: session.csrf().to_owned(), step, errors }
    }
    fn err(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }
    /// The ids for a field's `aria-describedby`: its hint (stated before anything is typed)
    /// and its error, when it has them.
    fn describe(&self, field: &str, hint: bool) -> String {
        let hint = hint.then(|| format!("{field}-hint"));
        let error = self.errors.contains_key(field).then(|| format!("{field}-error"));
        hint.into_iter().chain(error).collect::<Vec<_>>().join(" ")
    }
    fn steps(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        STEPS
            .iter()
            .enumerate()
            .map(|(i, (path, label))| {
                let class = match i.cmp(&self.step) {
                    std::cmp::Ordering::Less => "done",
                    std::cmp::Ordering::Equal => "current",
                    std::cmp::Ordering::Greater => "",
                };
                (*path, *label, class)
            })
            .collect()
    }
}

/// A form shown again because something in it was wrong: 422 so tools and tests can tell.
fn invalid<T: Template>(page: &T) -> Response {
    let mut r = render(page);
    *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn next(step: usize) -> Response {
    Redirect::to(STEPS[step + 1].0).into_response()
}

// ---------------------------------------------------------------------------------------------
// Step 1: program and residency

#[derive(Template)]
#[template(path = "apply/start.html")]
struct StartPage {
    f: Frame,
    programs: Vec<(String, String)>,
    program: String,
    residency: String,
}

#[derive(Deserialize)]
struct StartQuery {
    program: Option<String>,
}

async fn start_page(State(s): State<AppState>, mut session: Session, Query(q): Query<StartQuery>) -> Response {
    let mut draft: Draft = session.data();
    let mut errors = Errors::new();
    // A partner link pre-fills the program (and its agencies) for a new draft or a changed link.
    if let Some(link) = q.program.filter(|p| !p.trim().is_empty()) {
        match s.agencies.program(&link) {
            Ok(program) if program.as_str() != draft.program => {
                draft.take_program(&s, &program);
                if let Err(e) = session.save_data(&draft).await {
                    return e.into_response();
                }
            }
            Ok(_) => {}
            Err(_) => {
                errors.insert(
                    "program",
                    "The link names a program Signet does not serve. Choose your program from the list.".into(),
                );
            }
        }
    }
    render_start(&s, &session, &draft.program, &draft.residency, errors, false)
}

fn render_start(
    s: &AppState,
    session: &Session,
    program: &str,
    residency: &str,
    errors: Errors,
    failed: bool,
) -> Response {
    let page = StartPage {
        f: Frame::new(session, 0, errors),
        programs: s.agencies.programs().iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
        program: program.to_owned(),
        residency: residency.to_owned(),
    };
    if failed { invalid(&page) } else { render(&page) }
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    program: String,
    #[serde(default)]
    residency: String,
}

async fn start_post(State(s): State<AppState>, mut session: Session, Form(form): Form<StartForm>) -> Response {
    let mut errors = Errors::new();
    let program = match s.agencies.program(&form.program) {
        Ok(p) => Some(p),
        Err(_) => {
            errors.insert("program", "Choose the federal program you are applying under.".into());
            None
        }
    };
    let residency = match form.residency.as_str() {
        "united-states" | "abroad" => form.residency.clone(),
        _ => {
            errors.insert("residency", "Say whether you live in the United States.".into());
            String::new()
        }
    };
    let Some(program) = program.filter(|_| errors.is_empty()) else {
        return render_start(&s, &session, &form.program, &form.residency, errors, true);
    };
    let mut draft: Draft = session.data();
    if draft.program != program.as_str() {
        draft.take_program(&s, &program);
    }
    draft.residency = residency;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(0)
}

// ---------------------------------------------------------------------------------------------
// Step 2: the Certificate Selection Wizard

#[derive(Template)]
#[template(path = "apply/agencies.html")]
struct AgenciesPage {
    f: Frame,
    /// (id, name, checked)
    agencies: Vec<(String, String, bool)>,
    /// The partner link's program, when it needs agencies.
    program_name: String,
    /// The names of the agencies the program needs.
    program_agencies: Vec<String>,
    /// "I will not use <program>" is ticked.
    dropped: bool,
}

async fn agencies_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(1) {
        return r;
    }
    render(&agencies_view(&s, &session, &draft, &draft.agencies, draft.program_dropped, Errors::new()))
}

fn agencies_view(
    s: &AppState,
    session: &Session,
    draft: &Draft,
    chosen: &[String],
    dropped: bool,
    errors: Errors,
) -> AgenciesPage {
    let program = s.agencies.program(&draft.program).ok();
    let needed: Vec<String> = program
        .as_ref()
        .map(|p| {
            s.agencies
                .program_agencies(p)
                .iter()
                .filter_map(|id| s.agencies.agency(id))
                .map(|a| a.name.clone())
                .collect()
        })
        .unwrap_or_default();
    AgenciesPage {
        f: Frame::new(session, 1, errors),
        agencies: s
            .agencies
            .agencies()
            .iter()
            .map(|a| (a.id.clone(), a.name.clone(), chosen.contains(&a.id)))
            .collect(),
        program_name: match (&program, needed.is_empty()) {
            (Some(p), false) => s.agencies.program_name(p),
            _ => String::new(),
        },
        program_agencies: needed,
        dropped,
    }
}

async fn agencies_post(State(s): State<AppState>, mut session: Session, body: axum::body::Bytes) -> Response {
    // Checkboxes repeat the field name, which a struct cannot take; read the pairs directly.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let chosen: Vec<String> = pairs.iter().filter(|(k, _)| k == "agency").map(|(_, v)| v.clone()).collect();
    let dropped = pairs.iter().any(|(k, v)| k == "drop_program" && v == "yes");
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(1) {
        return r;
    }
    let refuse = |field: &'static str, message: String| {
        invalid(&agencies_view(&s, &session, &draft, &chosen, dropped, Errors::from([(field, message)])))
    };
    let ids: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let selection = match s.agencies.select(&ids) {
        Ok(sel) => sel,
        Err(_) => return refuse("agency", "Choose agencies from the list only.".into()),
    };
    if selection.is_empty() {
        return refuse("agency", selection.message());
    }
    if let Ok(program) = s.agencies.program(&draft.program) {
        let left_out = s.agencies.program_agencies_left_out(&program, &chosen);
        if !left_out.is_empty() && !dropped {
            let names: Vec<&str> = left_out.iter().map(|a| a.name.as_str()).collect();
            let program = s.agencies.program_name(&program);
            return refuse(
                "drop_program",
                format!(
                    "{program} users need {}. Tick it again, or tick \"I will not use {program}\" if this \
                     certificate is not for {program}.",
                    names.join(" and ")
                ),
            );
        }
    }
    draft.agencies = chosen;
    draft.program_dropped = dropped;
    draft.agencies_done = true;
    if !selection.allows(&draft.cert_type) {
        draft.cert_type.clear();
    }
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(1)
}

// ---------------------------------------------------------------------------------------------
// Step 3: certificate type and validity

/// A type the applicant may buy: (type id, name, [(years, price)]).
type PricedType = (String, String, Vec<(u8, String)>);

/// A type the program's agencies do not accept, with why: (type name, reasons).
type OutsideType = (String, String);

#[derive(Template)]
#[template(path = "apply/certificate.html")]
struct CertificatePage {
    f: Frame,
    message: String,
    allowed: Vec<PricedType>,
    excluded: Vec<Exclusion>,
    cert_type: String,
    years: String,
    /// The program, when some offered types are ones it does not accept.
    program_name: String,
    /// Offered types the program does not accept.
    outside: Vec<OutsideType>,
    /// "I will not use this certificate for <program>" is ticked.
    outside_program: bool,
}

async fn certificate_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(2) {
        return r;
    }
    let form = CertificateForm {
        cert_type: draft.cert_type.clone(),
        years: draft.years.clone(),
        outside_program: if draft.outside_program { "yes".into() } else { String::new() },
    };
    certificate_view(&s, &session, &draft, &form, Errors::new())
}

/// Why the program's agencies do not accept `cert_type`, in one sentence; empty when they do.
fn program_objection(s: &AppState, draft: &Draft, cert_type: &str) -> String {
    let Ok(program) = s.agencies.program(&draft.program) else { return String::new() };
    let reasons: Vec<String> =
        s.agencies.program_objections(&program, cert_type).into_iter().map(|o| o.reason).collect();
    reasons.join("; ")
}

fn certificate_view(
    s: &AppState,
    session: &Session,
    draft: &Draft,
    form: &CertificateForm,
    errors: Errors,
) -> Response {
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = match s.agencies.select(&ids) {
        Ok(sel) => sel,
        Err(e) => return PageError::BadRequest(e.to_string()).into_response(),
    };
    let priced = |t: &OfferedType| {
        let options = (1..=3u8).filter_map(|y| s.prices.price(&t.id, y).map(|p| (y, p.to_string()))).collect();
        (t.id.clone(), t.name.clone(), options)
    };
    let outside: Vec<OutsideType> = selection
        .allowed
        .iter()
        .map(|t| (t.name.clone(), program_objection(s, draft, &t.id)))
        .filter(|(_, why)| !why.is_empty())
        .collect();
    let program_name = match s.agencies.program(&draft.program) {
        Ok(p) if !outside.is_empty() => s.agencies.program_name(&p),
        _ => String::new(),
    };
    let failed = !errors.is_empty();
    let page = CertificatePage {
        f: Frame::new(session, 2, errors),
        message: selection.message(),
        allowed: selection.allowed.iter().map(priced).collect(),
        excluded: selection.excluded,
        cert_type: form.cert_type.clone(),
        years: form.years.clone(),
        program_name,
        outside,
        outside_program: form.outside_program == "yes",
    };
    if failed { invalid(&page) } else { render(&page) }
}

#[derive(Deserialize)]
struct CertificateForm {
    #[serde(default)]
    cert_type: String,
    #[serde(default)]
    years: String,
    #[serde(default)]
    outside_program: String,
}

async fn certificate_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<CertificateForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(2) {
        return r;
    }
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = s.agencies.select(&ids).ok();
    let offered = selection.as_ref().and_then(|sel| sel.allowed.iter().find(|t| t.id == form.cert_type));
    let outside_program = form.outside_program == "yes";
    // Type and validity are checked apart, so that both are flagged at once.
    let mut errors = Errors::new();
    match offered {
        None if form.cert_type.is_empty() => {
            errors.insert("cert_type", "Choose a certificate type.".into());
        }
        None => {
            errors.insert("cert_type", "Choose one of the certificate types your agencies accept.".into());
        }
        Some(t) => {
            let objection = program_objection(&s, &draft, &t.id);
            if !objection.is_empty() && !outside_program {
                errors.insert(
                    "outside_program",
                    format!(
                        "{objection}. Choose another type, or tick the box to say you will not use this \
                         certificate for that."
                    ),
                );
            }
        }
    }
    let years = form.years.parse::<u8>().ok().filter(|y| (1..=3).contains(y));
    match (years, offered) {
        (None, _) => {
            errors.insert("years", "Choose how many years the certificate is valid: 1, 2 or 3.".into());
        }
        (Some(y), Some(t)) if CertificateChoice::new(&s.catalog, &s.prices, &t.id, y).is_err() => {
            errors
                .insert("years", format!("{} is not sold for {y} years. Choose a period that shows a price.", t.name));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return certificate_view(&s, &session, &draft, &form, errors);
    }
    draft.cert_type = form.cert_type;
    draft.years = form.years;
    draft.outside_program = outside_program;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(2)
}

// ---------------------------------------------------------------------------------------------
// Step 4: organization (search, pick, or register a new one)

#[derive(Template)]
#[template(path = "apply/organization.html")]
struct OrganizationPage {
    f: Frame,
    name_max: usize,
    query: String,
    found: Vec<String>,
    searched: bool,
    chosen: String,
    new_name: String,
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn organization_page(State(s): State<AppState>, session: Session, Query(q): Query<SearchQuery>) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(3) {
        return r;
    }
    let found = if q.q.trim().is_empty() {
        Vec::new()
    } else {
        match s.store.search_organizations(&q.q, 20).await {
            Ok(orgs) => orgs.into_iter().map(|o| o.name.as_str().to_owned()).collect(),
            Err(e) => return PageError::from(e).into_response(),
        }
    };
    let page = OrganizationPage {
        f: Frame::new(&session, 3, Errors::new()),
        name_max: NAME_MAX,
        searched: !q.q.trim().is_empty(),
        query: q.q,
        found,
        chosen: draft.organization,
        new_name: String::new(),
    };
    render(&page)
}

#[derive(Deserialize)]
struct OrganizationForm {
    #[serde(default)]
    choose: String,
    #[serde(default)]
    new_name: String,
}

async fn organization_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<OrganizationForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(3) {
        return r;
    }
    let outcome = if !form.choose.trim().is_empty() {
        if form.choose == draft.organization {
            // This draft's own new organization, shown as chosen when the applicant comes back.
            Ok(draft.organization.clone())
        } else {
            choose_organization(&s, &form.choose).await
        }
    } else {
        new_organization(&s, &form.new_name).await
    };
    match outcome {
        Ok(name) => {
            draft.organization = name;
            if let Err(e) = session.save_data(&draft).await {
                return e.into_response();
            }
            next(3)
        }
        Err(OrgProblem::Page(e)) => e.into_response(),
        Err(OrgProblem::Field(field, message, found)) => {
            let page = OrganizationPage {
                f: Frame::new(&session, 3, Errors::from([(field, message)])),
                name_max: NAME_MAX,
                query: form.new_name.clone(),
                searched: !found.is_empty(),
                found,
                chosen: form.choose,
                new_name: form.new_name,
            };
            invalid(&page)
        }
    }
}

enum OrgProblem {
    /// A field is wrong: (field, message, organizations to offer instead).
    Field(&'static str, String, Vec<String>),
    Page(PageError),
}

impl From<StoreError> for OrgProblem {
    fn from(e: StoreError) -> Self {
        Self::Page(e.into())
    }
}

/// An existing organization, by the exact name the search offered.
async fn choose_organization(s: &AppState, name: &str) -> Result<String, OrgProblem> {
    let parsed = parse_organization(name).map_err(|m| OrgProblem::Field("choose", m, Vec::new()))?;
    let found = s.store.find_organizations(&OrganizationKey::of(&parsed)).await?;
    found.into_iter().next().map(|o| o.name.as_str().to_owned()).ok_or_else(|| {
        OrgProblem::Field("choose", "That organization is not registered; search again or register it.".into(), vec![])
    })
}

/// A new organization for this draft, checked (its name, and that it does not fold to one
/// the RA confirmed, which is offered instead) but not registered: an unfinished draft must not
/// put names before other applicants. It is registered when the application is submitted, and
/// offered to others once the RA confirms it. A spelling another applicant registered and the
/// RA has not confirmed yet is taken as new here, so that nothing unconfirmed is revealed.
async fn new_organization(s: &AppState, name: &str) -> Result<String, OrgProblem> {
    if name.trim().is_empty() {
        return Err(OrgProblem::Field(
            "new_name",
            "Choose your organization from the search results, or enter its legal name to register it.".into(),
            Vec::new(),
        ));
    }
    let parsed = parse_organization(name).map_err(|m| OrgProblem::Field("new_name", m, Vec::new()))?;
    let existing = s.store.find_organizations(&OrganizationKey::of(&parsed)).await?;
    if !existing.is_empty() {
        let names: Vec<String> = existing.iter().map(|o| o.name.as_str().to_owned()).collect();
        return Err(OrgProblem::Field(
            "new_name",
            format!("{} is already registered. Choose it below instead of registering it again.", names.join(", ")),
            names,
        ));
    }
    Ok(parsed.as_str().to_owned())
}

/// Registers a submitted application's organization (audited), pending the RA's decision, if
/// it is new, so that once confirmed the next applicant from the same company finds it. The
/// application stands whatever happens here: the register only helps others pick the same
/// spelling.
async fn register_organization(s: &AppState, name: &OrganizationName) {
    let registered = match s.store.find_organizations(&OrganizationKey::of(name)).await {
        Ok(found) if !found.is_empty() => return,
        Ok(_) => {
            let organization = Organization::new(name.clone());
            let audit = organization.created_event(s.clock.now(), &Actor::Applicant);
            s.store.create_organization(&organization, audit).await
        }
        Err(e) => Err(e),
    };
    match registered {
        // Another applicant registered it first (pending or decided: the RA sees it either way).
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, "could not register a submitted application's organization"),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 5: personal information and shipping address

#[derive(Template)]
#[template(path = "apply/personal.html")]
struct PersonalPage {
    f: Frame,
    states: Vec<(&'static str, &'static str, bool)>,
    p: PersonalFields,
    abroad: bool,
    name_max: usize,
}

impl PersonalPage {
    fn new(session: &Session, draft: &Draft, p: PersonalFields, errors: Errors) -> Self {
        Self {
            f: Frame::new(session, 4, errors),
            states: p.states(),
            p,
            abroad: draft.residency == "abroad",
            name_max: NAME_MAX,
        }
    }
}

async fn personal_page(session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(4) {
        return r;
    }
    render(&PersonalPage::new(&session, &draft, draft.personal.clone(), Errors::new()))
}

async fn personal_post(mut session: Session, Form(form): Form<PersonalFields>) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(4) {
        return r;
    }
    if let Err(errors) = form.parse() {
        return invalid(&PersonalPage::new(&session, &draft, form, errors));
    }
    if draft.personal.email.trim() != form.email.trim() {
        // The password rules depend on the email: choose it again for the new address.
        draft.password_phc.clear();
    }
    draft.personal = form;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(4)
}

// ---------------------------------------------------------------------------------------------
// Step 6: account password

#[derive(Template)]
#[template(path = "apply/account.html")]
struct AccountPage {
    f: Frame,
    email: String,
    min_length: usize,
}

async fn account_page(session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(5) {
        return r;
    }
    render(&AccountPage {
        f: Frame::new(&session, 5, Errors::new()),
        email: draft.personal.email,
        min_length: signet_ra::application::MIN_PASSWORD_LENGTH,
    })
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn account_post(State(s): State<AppState>, mut session: Session, Form(form): Form<AccountForm>) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(5) {
        return r;
    }
    let email = match Email::new(draft.personal.email.trim()) {
        Ok(e) => e,
        Err(_) => return Redirect::to(STEPS[4].0).into_response(),
    };
    let mut errors = Errors::new();
    let checked = NewPassword::new(&form.password, &email);
    match &checked {
        Err(weak) => {
            let reasons: Vec<String> = weak.0.iter().map(ToString::to_string).collect();
            errors.insert("password", format!("Choose a stronger password: {}.", reasons.join("; ")));
        }
        Ok(_) if form.password != form.confirm => {
            errors.insert("confirm", "The two passwords differ.".into());
        }
        Ok(_) => {}
    }
    let password = match checked {
        Ok(p) if errors.is_empty() => p,
        _ => {
            // Passwords are never sent back into the page.
            let page = AccountPage {
                f: Frame::new(&session, 5, errors),
                email: draft.personal.email,
                min_length: signet_ra::application::MIN_PASSWORD_LENGTH,
            };
            return invalid(&page);
        }
    };
    match s.hashing.run(move |memory| PasswordHash::new_in(&password, memory)).await {
        Ok(Ok(hash)) => draft.password_phc = hash.as_phc().to_owned(),
        Ok(Err(e)) => return PageError::Internal(e.to_string()).into_response(),
        Err(busy) => return PageError::from(busy).into_response(),
    }
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(5)
}

// ---------------------------------------------------------------------------------------------
// Step 7: payment

#[derive(Template)]
#[template(path = "apply/payment.html")]
struct PaymentPage {
    f: Frame,
    po_max: usize,
    price: String,
    method: String,
    po: String,
}

fn choice(s: &AppState, draft: &Draft) -> Result<CertificateChoice, PageError> {
    let years = draft.years.parse::<u8>().map_err(|_| PageError::BadRequest("choose the validity again".into()))?;
    CertificateChoice::new(&s.catalog, &s.prices, &draft.cert_type, years)
        .map_err(|e| PageError::BadRequest(e.to_string()))
}

async fn payment_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(6) {
        return r;
    }
    let price = match choice(&s, &draft) {
        Ok(c) => c.price().to_string(),
        Err(e) => return e.into_response(),
    };
    let (method, po) = match &draft.payment {
        Some(Payment::PurchaseOrder { po }) => ("purchase-order".to_owned(), po.as_str().to_owned()),
        Some(p) => (p.method().to_owned(), String::new()),
        None => (String::new(), String::new()),
    };
    render(&PaymentPage { f: Frame::new(&session, 6, Errors::new()), po_max: PO_MAX, price, method, po })
}

#[derive(Deserialize)]
struct PaymentForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    po: String,
    #[serde(default)]
    card: String,
}

async fn payment_post(State(s): State<AppState>, mut session: Session, Form(form): Form<PaymentForm>) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(6) {
        return r;
    }
    let price = match choice(&s, &draft) {
        Ok(c) => c.price(),
        Err(e) => return e.into_response(),
    };
    if draft.reference.is_empty() {
        draft.reference = ApplicationId::generate().as_str().to_owned();
    }
    let reference = match ApplicationId::new(&draft.reference) {
        Ok(r) => r,
        Err(e) => return PageError::Internal(e.to_string()).into_response(),
    };
    let payment = match form.method.as_str() {
        "invoice" => Ok(Payment::Invoice),
        "purchase-order" => {
            PoNumber::new(&form.po).map(|po| Payment::PurchaseOrder { po }).map_err(|_| ("po", po_message(&form.po)))
        }
        "card" => match CardNumber::new(&form.card) {
            // The card processor is a TEST DOUBLE until a processor contract exists.
            Ok(card) => TestCardProcessor
                .authorize(&card, price, &reference)
                .await
                .map(|authorization| Payment::Card { authorization })
                .map_err(|e| match e {
                    PaymentError::Declined => {
                        ("card", "The card was declined. Try another card, or choose invoice.".to_owned())
                    }
                    // The processor's details are for the log, not the applicant.
                    other => {
                        tracing::error!(error = %other, "card processor");
                        ("card", "Card payments are unavailable right now. Try later, or choose invoice.".to_owned())
                    }
                }),
            Err(_) => {
                Err(("card", "Check the card number: it is the 13 to 19 digits on the front of the card.".to_owned()))
            }
        },
        _ => Err(("method", "Choose how to pay.".to_owned())),
    };
    match payment {
        Ok(p) => {
            draft.payment = Some(p);
            if let Err(e) = session.save_data(&draft).await {
                return e.into_response();
            }
            next(6)
        }
        Err((field, message)) => invalid(&PaymentPage {
            f: Frame::new(&session, 6, Errors::from([(field, message)])),
            po_max: PO_MAX,
            price: price.to_string(),
            method: form.method,
            // The card number is never echoed back.
            po: form.po,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 8: review and submit

#[derive(Template)]
#[template(path = "apply/review.html")]
struct ReviewPage {
    f: Frame,
    form: ApplicationForm,
    program_name: String,
    type_name: String,
    agency_names: Vec<String>,
    /// How the applicant pays, with the purchase-order number or the card's last digits.
    payment: String,
}

/// The payment as the applicant chose it, in words.
fn payment_words(payment: &Payment) -> String {
    match payment {
        Payment::Invoice => "Invoice to your organization".into(),
        Payment::PurchaseOrder { po } => format!("Invoice against purchase order {po}"),
        Payment::Card { authorization } => {
            format!("Card ending in {}, {} authorized", authorization.last4, authorization.amount)
        }
    }
}

/// The whole draft parsed into the domain's form, or the step to send the applicant back to.
fn parse_draft(s: &AppState, draft: &Draft) -> Result<(ApplicationForm, PasswordHash, ApplicationId), usize> {
    let program = s.agencies.program(&draft.program).map_err(|_| 0_usize)?;
    let residency = match draft.residency.as_str() {
        "united-states" => Residency::UnitedStates,
        "abroad" => Residency::Abroad,
        _ => return Err(0_usize),
    };
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = s.agencies.select(&ids).map_err(|_| 1_usize)?;
    // The partner link holds however the steps were visited: the program's agencies stay
    // unless the applicant said they will not use it, and so does its list of types.
    if !draft.program_dropped && !s.agencies.program_agencies_left_out(&program, &draft.agencies).is_empty() {
        return Err(1_usize);
    }
    if !selection.allows(&draft.cert_type)
        || (!draft.outside_program && !s.agencies.program_objections(&program, &draft.cert_type).is_empty())
    {
        return Err(2_usize);
    }
    let certificate = choice(s, draft).map_err(|_| 2_usize)?;
    let organization = OrganizationName::new(&draft.organization).map_err(|_| 3_usize)?;
    let applicant = draft.personal.parse().map_err(|_| 4_usize)?;
    let password = PasswordHash::from_phc(&draft.password_phc).map_err(|_| 5_usize)?;
    let payment = draft.payment.clone().ok_or(6_usize)?;
    let reference = ApplicationId::new(&draft.reference).map_err(|_| 6_usize)?;
    let form = ApplicationForm {
        program,
        agencies: draft.agencies.clone(),
        residency,
        certificate,
        organization,
        applicant,
        payment,
    };
    Ok((form, password, reference))
}

async fn review_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(7) {
        return r;
    }
    let (form, _, _) = match parse_draft(&s, &draft) {
        Ok(parsed) => parsed,
        Err(step) => return Redirect::to(STEPS[step].0).into_response(),
    };
    render(&review_view(&s, &session, form, Errors::new()))
}

fn review_view(s: &AppState, session: &Session, form: ApplicationForm, errors: Errors) -> ReviewPage {
    let program_name = s
        .agencies
        .programs()
        .iter()
        .find(|p| p.id == form.program.as_str())
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let type_name = s.type_name(form.certificate.cert_type());
    let agency_names = form.agencies.iter().filter_map(|id| s.agencies.agency(id)).map(|a| a.name.clone()).collect();
    let payment = payment_words(&form.payment);
    ReviewPage { f: Frame::new(session, 7, errors), form, program_name, type_name, agency_names, payment }
}

#[derive(Deserialize)]
struct ReviewForm {
    #[serde(default)]
    agree: String,
}

async fn review_post(State(s): State<AppState>, mut session: Session, Form(review): Form<ReviewForm>) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(7) {
        return r;
    }
    let (form, password, reference) = match parse_draft(&s, &draft) {
        Ok(parsed) => parsed,
        Err(step) => return Redirect::to(STEPS[step].0).into_response(),
    };
    if review.agree != "yes" {
        let errors = Errors::from([("agree", "Confirm that the information is true and complete.".to_owned())]);
        return invalid(&review_view(&s, &session, form, errors));
    }
    let transition = Application::submit(reference, form.clone(), s.clock.now());
    let outbox = s.notifier.outbox_for(&transition);
    let id = transition.application.id().clone();
    match s.store.create(&transition, &password, &outbox).await {
        Ok(()) => {}
        // The reference was made at the payment step, so a taken one is this same draft
        // submitted from a second tab: the first submission stands. Anything else under that
        // reference is someone else's application and must not be signed in to.
        Err(StoreError::Conflict(_)) => match s.store.load(&id).await {
            Ok(Some(existing)) if *existing.form() == form => {}
            Ok(_) => return PageError::Internal(format!("application reference {id} collided")).into_response(),
            Err(e) => return PageError::from(e).into_response(),
        },
        Err(e) => return PageError::from(e).into_response(),
    }
    tracing::info!(application = %id, "application submitted");
    register_organization(&s, &form.organization).await;
    if let Err(e) = session.become_principal(Principal::Applicant(id.as_str().to_owned())).await {
        return e.into_response();
    }
    Redirect::to(&format!("/applications/{id}?submitted=1")).into_response()
}

// ---------------------------------------------------------------------------------------------
// The retrieval lock, as its applicant sees it

#[derive(Template)]
#[template(path = "retrieval_lock.html")]
struct RetrievalLockPage {
    csrf: String,
    reference: String,
    /// When the pause ends, in words; empty when retrieval is not paused.
    paused_until: String,
    /// The applicant just allowed retrieval again.
    cleared: bool,
}

/// The application in the path if this session is signed in to it.
fn signed_in_to(session: &Session, id: &str) -> Option<ApplicationId> {
    ApplicationId::new(id).ok().filter(|id| session.principal() == Principal::Applicant(id.as_str().to_owned()))
}

/// What any other session is given: the application's status page, which asks for the password
/// (the same for any reference).
fn sign_in_first(id: &str) -> Response {
    match ApplicationId::new(id) {
        Ok(id) => Redirect::to(&format!("/applications/{id}")).into_response(),
        Err(_) => PageError::NotFound.into_response(),
    }
}

async fn retrieval_page(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let Some(id) = signed_in_to(&session, &id) else { return sign_in_first(&id) };
    let paused_until = match s.store.check(AttemptScope::ActivationCode, id.as_str(), s.clock.now()).await {
        Ok(LockState::Open) => String::new(),
        Ok(LockState::Locked(Until::Time(t))) => lockout::utc_text(t),
        Ok(LockState::Locked(Until::AdministratorUnlocks)) => "you or the registration authority allow it again".into(),
        Err(e) => return PageError::from(e).into_response(),
    };
    render(&RetrievalLockPage {
        csrf: session.csrf().to_owned(),
        reference: id.as_str().to_owned(),
        paused_until,
        cleared: false,
    })
}

/// The applicant, signed in with the account password, forgets the failed retrievals.
async fn retrieval_allow(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let Some(id) = signed_in_to(&session, &id) else { return sign_in_first(&id) };
    match lockout::clear_own_retrieval(&s.store, &id, s.clock.now()).await {
        Ok(cleared) => {
            if cleared {
                tracing::info!(application = %id, "the applicant allowed retrieval again");
            }
            render(&RetrievalLockPage {
                csrf: session.csrf().to_owned(),
                reference: id.as_str().to_owned(),
                paused_until: String::new(),
                cleared,
            })
        }
        Err(e) => PageError::from(e).into_response(),
    }
}
