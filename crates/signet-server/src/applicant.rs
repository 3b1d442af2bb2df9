//! The applicant's pages after submission: sign-in with the application reference and account
//! password, the status page with the timeline picture, the email verification link, and the
//! pre-filled forms as PDF.

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use signet_authority::CommandFailure;
use signet_ra::application::{
    Actor, Application, ApplicationId, ApplicationStore, Command, HashingBusy, PasswordChecker, PasswordHash,
    VerificationToken,
};
use signet_ra::forms_mail::{FormsMailed, FormsTrail, PaperForm};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::vetting::{self, Carrier, DeadlineKind, Tracking, TrackingNumber};

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render, with_status};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/applications/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/applications/{id}", get(status))
        .route("/applications/{id}/forms/{form}", get(form_pdf))
        .route("/applications/{id}/mailing", post(mailing_post))
        .route("/verify-email", get(verify_page).post(verify_post))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    csrf: String,
    principal: Principal,
}

async fn home(session: Session) -> Response {
    render(&HomePage { csrf: session.csrf().to_owned(), principal: session.principal() })
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    csrf: String,
    reference: String,
    error: String,
}

/// The one message for every failed sign-in, so it reveals neither which secret was wrong
/// nor whether the reference exists.
const SIGN_IN_FAILED: &str = "The application reference or password is not correct.";

fn sign_in_page(session: &Session, reference: &str, error: &str) -> Response {
    let mut r = render(&SignInPage {
        csrf: session.csrf().to_owned(),
        reference: reference.to_owned(),
        error: error.to_owned(),
    });
    if !error.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
    }
    r
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    password: String,
}

/// Checks the password against the application's Argon2id hash within the server's hashing
/// bound. A reference that does not exist is checked against a fixed hash, so the answer
/// takes as long.
pub(crate) async fn password_matches<E: From<StoreError> + From<HashingBusy>>(
    s: &AppState,
    id: Option<&ApplicationId>,
    password: String,
) -> Result<bool, E> {
    let stored = match id {
        Some(id) => s.store.application_password(id).await?,
        None => None,
    };
    let exists = stored.is_some();
    let hash = match stored {
        Some(h) => h,
        None => dummy_hash().clone(),
    };
    Ok(s.hashing.verify(hash, password).await? && exists)
}

fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| PasswordHash::from_phc(DUMMY_PHC).expect("a well-formed Argon2id PHC string"))
}

/// An Argon2id hash of a random string nobody knows, at the parameters `PasswordHash::new` uses.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2lnbmV0ZHVtbXlzYWx0$Qj1pd9yjrnDkCXDJ0q5nmMvS1NmQ9l8AHhHVv+Lf0jE";

async fn sign_in(State(s): State<AppState>, mut session: Session, Form(form): Form<SignInForm>) -> Response {
    match check_sign_in(&s, &form).await {
        Ok(Ok(id)) => {
            if let Err(e) = session.become_principal(Principal::Applicant(id.as_str().to_owned())).await {
                return e.into_response();
            }
            Redirect::to(&format!("/applications/{id}")).into_response()
        }
        Ok(Err(message)) => sign_in_page(&session, &form.reference, &message),
        Err(e) => e.into_response(),
    }
}

/// The signed-in reference, or the message to show. Failures count per reference (made-up
/// references too, so a lock says nothing about existence) and lock it for a while.
async fn check_sign_in(s: &AppState, form: &SignInForm) -> Result<Result<ApplicationId, String>, PageError> {
    let scope = AttemptScope::ApplicantPassword;
    let id = ApplicationId::new(form.reference.trim()).ok();
    let subject: String = match &id {
        Some(id) => id.as_str().to_owned(),
        None => form.reference.trim().chars().take(64).collect(),
    };
    let now = s.clock.now();
    if let LockState::Locked(until) = s.store.check(scope, &subject, now).await? {
        return Ok(Err(until.message(now)));
    }
    if password_matches::<PageError>(s, id.as_ref(), form.password.clone()).await? {
        s.store.clear(scope, &subject).await?;
        return Ok(id.ok_or_else(|| SIGN_IN_FAILED.to_owned()));
    }
    Ok(Err(match s.store.record_failure(scope, &subject, &scope.default_policy(), now).await? {
        LockState::Locked(until) => until.message(now),
        LockState::Open => SIGN_IN_FAILED.to_owned(),
    }))
}

async fn sign_out(mut session: Session) -> Response {
    match session.become_principal(Principal::Anonymous).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The application this session is signed in to, `None` when it is signed in to another or
/// to none (the caller shows the sign-in form: the same answer whether the reference exists).
async fn own_application(s: &AppState, session: &Session, id: &str) -> Result<Option<Application>, PageError> {
    if session.principal() != Principal::Applicant(id.to_owned()) {
        return Ok(None);
    }
    let id = ApplicationId::new(id).map_err(|_| PageError::NotFound)?;
    Ok(s.store.load(&id).await?)
}

// ---------------------------------------------------------------------------------------------
// Status page

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    csrf: String,
    reference: String,
    name: String,
    email: String,
    state_label: &'static str,
    next_step: String,
    just_submitted: bool,
    deadline_text: String,
    timeline_svg: String,
    /// (download address, file name, title) of each form to print.
    forms: Vec<(String, String, &'static str)>,
    /// The RA's postal address, line by line, while forms are expected.
    mail_to: Vec<String>,
    contact_name: String,
    support_email: String,
    support_phone: String,
    /// What the applicant said they mailed, as a sentence; empty if nothing.
    mailed: String,
    /// What an operator found wrong with the mailed forms, in the applicant's words.
    deficiency: Vec<&'static str>,
    deficiency_note: String,
    mailing: MailingEntry,
    carriers: Vec<(&'static str, &'static str)>,
}

/// The mailing form as shown: offered or not (the page decides), what was typed, and why it was
/// refused.
#[derive(Default)]
struct MailingEntry {
    offered: bool,
    carrier: String,
    tracking: String,
    carrier_error: String,
    tracking_error: String,
    /// The notice after a mailing was recorded.
    done: bool,
}

/// What each state means to the applicant and what they do next, in words someone who has
/// never met a certificate understands.
fn explain(app: &Application) -> (&'static str, String) {
    let email = app.form().applicant.email.as_str();
    match app.state().state_name() {
        "submitted" => (
            "Submitted",
            format!(
                "We sent an email to {email}. Open the link in it and press the button to confirm your address. \
                 Meanwhile you can print your forms below."
            ),
        ),
        "email-verified" => (
            "Email confirmed",
            "Print the forms below. Your Organization Officer fills in their part. Sign the Identity Verification \
             form in front of a notary (or a registrar, for Medium Hardware), then mail the signed originals to \
             the address below and tell us the tracking number. You have 30 days to retrieve your certificates \
             from the day the notary signs."
                .into(),
        ),
        "forms-received" | "officer-confirmed" | "identity-verified" | "first-approved" => (
            "We are checking your application",
            "Your forms arrived. We are checking them and calling your Organization Officer to confirm that you \
             work there. You do not need to do anything unless we email you."
                .into(),
        ),
        "approved" => (
            "Approved",
            "Your application is approved. We will mail your USB token next and email you its tracking number.".into(),
        ),
        "token-shipped" => (
            "Token shipped",
            "Your USB token is in the mail. Do not plug it in yet. When it arrives, watch for our email with your \
             activation code."
                .into(),
        ),
        "certificates-ready" => (
            "Ready to retrieve",
            "Your certificates are ready. Put them on your token with the Signet program, the activation code we \
             emailed and your account password, before the deadline. The steps for your computer are below."
                .into(),
        ),
        "retrieved" => ("Retrieved", "Your certificates are on your token. There is nothing more to do.".into()),
        "rejected" => (
            "Not approved",
            "We could not approve this application. The email we sent you says why. Contact us if you have \
             questions."
                .into(),
        ),
        "expired" => (
            "Expired",
            "The deadline passed before the certificates were collected. To get a certificate, apply again.".into(),
        ),
        _ => ("Withdrawn", "This application was withdrawn. To get a certificate, apply again.".into()),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    submitted: Option<String>,
    mailed: Option<String>,
}

async fn status(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return sign_in_page(&session, &id, ""),
        Err(e) => return e.into_response(),
    };
    let entry = MailingEntry { done: q.mailed.is_some(), ..MailingEntry::default() };
    match status_view(&s, &session, &app, q.submitted.is_some(), entry).await {
        Ok(page) => render(&page),
        Err(e) => e.into_response(),
    }
}

async fn status_view(
    s: &AppState,
    session: &Session,
    app: &Application,
    just_submitted: bool,
    mut mailing: MailingEntry,
) -> Result<StatusPage, PageError> {
    let now = s.clock.now();
    let (state_label, next_step) = explain(app);
    let deadline_text = match vetting::deadline(app, &s.deadlines) {
        Some(d) => {
            let days = d.days_left(now.date());
            let what = match d.kind {
                DeadlineKind::Open => "Your forms must arrive by",
                DeadlineKind::Retrieval => "Retrieve your certificates by",
            };
            format!("{what} {} ({days} day{} left).", d.last_day, if days == 1 { "" } else { "s" })
        }
        None => String::new(),
    };
    let timeline_svg = vetting::timeline(app, now, &s.deadlines)
        .map(|t| signet_authority::timeline_svg::timeline_svg(&t))
        .unwrap_or_default();
    let trail = FormsTrail::of(&s.store.application_history(app.id()).await?);
    let expects_mailing = trail.expects_mailing(app);
    // The forms are printed before they are mailed, or again when they must be re-sent.
    let forms = if expects_mailing {
        PaperForm::ALL
            .into_iter()
            .map(|f| (format!("/applications/{}/forms/{}", app.id(), f.slug()), f.file_name(app.id()), f.title()))
            .collect()
    } else {
        Vec::new()
    };
    mailing.offered = expects_mailing;
    let mailed = trail.mailed.as_ref().map_or_else(String::new, |m| {
        format!(
            "On {} you told us you mailed your forms with {}, tracking number {}.",
            m.at.date(),
            m.tracking.carrier.name(),
            m.tracking.number.as_str()
        )
    });
    let deficiency = trail.deficiency.as_ref();
    Ok(StatusPage {
        csrf: session.csrf().to_owned(),
        reference: app.id().as_str().to_owned(),
        name: app.form().applicant.name.as_str().to_owned(),
        email: app.form().applicant.email.as_str().to_owned(),
        state_label,
        next_step,
        just_submitted,
        deadline_text,
        timeline_svg,
        forms,
        mail_to: if expects_mailing {
            s.contact.mailing_address.lines().map(str::to_owned).collect()
        } else {
            Vec::new()
        },
        contact_name: s.contact.name.as_str().to_owned(),
        support_email: s.contact.support_email.as_str().to_owned(),
        support_phone: s.contact.support_phone.display(),
        mailed,
        deficiency: deficiency.map_or_else(Vec::new, |d| d.problems.iter().map(|p| p.to_applicant()).collect()),
        deficiency_note: deficiency.and_then(|d| d.note.clone()).unwrap_or_default(),
        mailing,
        carriers: crate::console::CARRIERS.iter().map(|(v, l, _)| (*v, *l)).collect(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MailingForm {
    carrier: String,
    tracking: String,
}

/// The longest tracking number field accepted, in characters: the longest format (40) with
/// room for the spaces people copy from receipts.
const TRACKING_FIELD_MAX: usize = 60;

/// Checks the mailing form: the carrier from the list, and a number in that carrier's format.
fn mailed_with(f: &MailingForm) -> Result<Tracking, (String, String)> {
    let carrier = crate::console::CARRIERS.iter().find(|(v, _, _)| *v == f.carrier).map(|(_, _, c)| *c);
    let typed = f.tracking.trim();
    let carrier_error = if carrier.is_none() { "Choose the company you mailed the forms with." } else { "" };
    let tracking_error = match carrier {
        _ if typed.is_empty() => "Enter the tracking number from your mailing receipt.".to_owned(),
        _ if typed.chars().count() > TRACKING_FIELD_MAX => {
            format!("A tracking number is at most {TRACKING_FIELD_MAX} characters. Copy it from your receipt.")
        }
        Some(c) => match TrackingNumber::new(c, typed) {
            Ok(number) => return Ok(Tracking { carrier: c, number }),
            Err(_) if c == Carrier::Other => format!("This does not look like a tracking number. {}", c.number_hint()),
            Err(_) => format!("This does not look like a {} tracking number. {}", c.name(), c.number_hint()),
        },
        None => String::new(),
    };
    Err((carrier_error.to_owned(), tracking_error))
}

/// The status page again with the mailing form as typed and why it was refused (422, which the
/// session keeps for the redirect that follows).
async fn mailing_refused(
    s: &AppState,
    session: &Session,
    app: &Application,
    f: &MailingForm,
    carrier_error: String,
    tracking_error: String,
) -> Response {
    let entry = MailingEntry {
        carrier: f.carrier.chars().take(16).collect(),
        tracking: f.tracking.chars().take(TRACKING_FIELD_MAX).collect(),
        carrier_error,
        tracking_error,
        ..MailingEntry::default()
    };
    match status_view(s, session, app, false, entry).await {
        Ok(page) => with_status(render(&page), StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => e.into_response(),
    }
}

async fn mailing_post(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<MailingForm>,
) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return Redirect::to(&format!("/applications/{id}")).into_response(),
        Err(e) => return e.into_response(),
    };
    let trail = match s.store.application_history(app.id()).await {
        Ok(history) => FormsTrail::of(&history),
        Err(e) => return PageError::from(e).into_response(),
    };
    if !trail.expects_mailing(&app) {
        // The page no longer offers the form (a second tab, or Back): it shows where things stand.
        return Redirect::to(&format!("/applications/{}", app.id())).into_response();
    }
    let tracking = match mailed_with(&f) {
        Ok(t) => t,
        Err((carrier_error, tracking_error)) => {
            return mailing_refused(&s, &session, &app, &f, carrier_error, tracking_error).await;
        }
    };
    let mailed = FormsMailed { tracking, at: s.clock.now() };
    if let Err(e) = s.store.audit(&mailed.event(app.id())).await {
        return PageError::from(e).into_response();
    }
    tracing::info!(application = %app.id(), "applicant recorded the forms' mailing");
    Redirect::to(&format!("/applications/{}?mailed=1", app.id())).into_response()
}

async fn form_pdf(State(s): State<AppState>, session: Session, Path((id, form)): Path<(String, String)>) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return PageError::NotFound.into_response(),
        Err(e) => return e.into_response(),
    };
    let Some(paper) = PaperForm::from_slug(&form) else { return PageError::NotFound.into_response() };
    let pdf = signet_authority::forms_pdf::form(&app, paper, &s.forms_deployment());
    let disposition = format!("attachment; filename=\"{}\"", paper.file_name(app.id()));
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        pdf,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Email verification

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage {
    csrf: String,
    application: String,
    token: String,
    message: String,
    done: bool,
}

#[derive(Deserialize)]
struct VerifyParams {
    #[serde(default)]
    application: String,
    #[serde(default)]
    token: String,
}

/// The emailed link opens a page with a button rather than verifying on GET: mail scanners
/// that prefetch links must not confirm an address nobody read.
async fn verify_page(session: Session, Query(p): Query<VerifyParams>) -> Response {
    render(&VerifyPage {
        csrf: session.csrf().to_owned(),
        application: p.application,
        token: p.token,
        message: String::new(),
        done: false,
    })
}

async fn verify_post(State(s): State<AppState>, session: Session, Form(p): Form<VerifyParams>) -> Response {
    let refused = |message: String| {
        let mut r = render(&VerifyPage {
            csrf: session.csrf().to_owned(),
            application: p.application.clone(),
            token: p.token.clone(),
            message,
            done: false,
        });
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        r
    };
    let (Ok(id), Ok(token)) = (ApplicationId::new(p.application.trim()), VerificationToken::new(p.token.trim())) else {
        return refused("This link is damaged. Copy the whole link from the email into the address bar.".into());
    };
    match s.command(&id, &Actor::Applicant, Command::VerifyEmail(token)).await {
        Ok(_) => render(&VerifyPage {
            csrf: session.csrf().to_owned(),
            application: p.application.clone(),
            token: String::new(),
            message: "Your email address is confirmed. Next: print, notarize and mail your forms.".into(),
            done: true,
        }),
        Err(CommandFailure::NotFound) | Err(CommandFailure::Refused(_)) => refused(
            "This link is not valid any more: it was used already, the application has expired, or it belongs \
             to another application. Sign in to see where your application stands."
                .into(),
        ),
        Err(CommandFailure::Changed) => refused("The application changed meanwhile; open the link again.".into()),
        Err(CommandFailure::Store(e)) => PageError::from(e).into_response(),
    }
}
