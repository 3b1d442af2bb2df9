//! The applicant's pages after submission: sign-in with the application reference and account
//! password, the status page with the timeline picture, the email verification link, and the
//! pre-filled forms as PDF.

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use signet_ra::application::{
    Actor, Application, ApplicationId, ApplicationStore, Command, HashingBusy, PasswordChecker, PasswordHash,
    VerificationToken,
};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::vetting::{self, DeadlineKind};

use crate::error::PageError;
use crate::state::{AppState, CommandFailure};
use crate::web::{Principal, Session, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/applications/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/applications/{id}", get(status))
        .route("/applications/{id}/forms/{form}", get(form_pdf))
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
    forms: Vec<(&'static str, &'static str)>,
}

/// What each state means to the applicant and what they do next.
fn explain(app: &Application) -> (&'static str, String) {
    let email = app.form().applicant.email.as_str();
    match app.state().state_name() {
        "submitted" => ("Submitted", format!("Open the link we emailed to {email} to confirm your address.")),
        "email-verified" => (
            "Email confirmed",
            "Print the forms below, sign the identity form before a notary (or a registrar, for Medium Hardware) \
             and mail them. The 30-day retrieval clock starts on the notary's date."
                .into(),
        ),
        "forms-received" | "officer-confirmed" | "identity-verified" | "first-approved" => (
            "Being vetted",
            "We received your forms. A registration officer is checking them and calling your organization.".into(),
        ),
        "approved" => ("Approved", "Your application is approved; your USB token ships next.".into()),
        "token-shipped" => {
            ("Token shipped", "Your USB token is on its way. Watch for the activation code email.".into())
        }
        "certificates-ready" => (
            "Ready to retrieve",
            "Your certificates are ready. Retrieve them onto your token with the Signet client, the activation \
             code we emailed and your account password — before the deadline. The steps for your computer are \
             below."
                .into(),
        ),
        "retrieved" => ("Retrieved", "Your certificates are on your token. Nothing more to do.".into()),
        "rejected" => ("Rejected", "Your application was rejected; the email we sent says why.".into()),
        "expired" => ("Expired", "The deadline passed before the certificates were retrieved. Apply again.".into()),
        _ => ("Withdrawn", "You withdrew this application.".into()),
    }
}

/// The forms a type's applicant prints, by link slug and title.
const FORMS: [(&str, &str); 3] = [
    ("officer-verification.pdf", "Organization Officer Verification"),
    ("identity-verification.pdf", "Identity Verification"),
    ("citizenship.pdf", "Citizenship"),
];

#[derive(Deserialize)]
struct StatusQuery {
    submitted: Option<String>,
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
    let now = s.clock.now();
    let (state_label, next_step) = explain(&app);
    let deadline_text = match vetting::deadline(&app, &s.deadlines) {
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
    let timeline_svg =
        vetting::timeline(&app, now, &s.deadlines).map(|t| crate::timeline_svg::timeline_svg(&t)).unwrap_or_default();
    let page = StatusPage {
        csrf: session.csrf().to_owned(),
        reference: app.id().as_str().to_owned(),
        name: app.form().applicant.name.as_str().to_owned(),
        email: app.form().applicant.email.as_str().to_owned(),
        state_label,
        next_step,
        just_submitted: q.submitted.is_some(),
        deadline_text,
        timeline_svg,
        // The forms are printed before they are mailed; once they have arrived they are history.
        forms: if app.state().forms().is_none() && app.state().is_open() { FORMS.to_vec() } else { Vec::new() },
    };
    render(&page)
}

async fn form_pdf(State(s): State<AppState>, session: Session, Path((id, form)): Path<(String, String)>) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return PageError::NotFound.into_response(),
        Err(e) => return e.into_response(),
    };
    let pdf = match form.as_str() {
        "officer-verification.pdf" => crate::forms_pdf::officer_verification(&app, &s.base_url),
        "identity-verification.pdf" => crate::forms_pdf::identity_verification(&app, &s.base_url),
        "citizenship.pdf" => crate::forms_pdf::citizenship(&app, &s.base_url),
        _ => return PageError::NotFound.into_response(),
    };
    let disposition = format!("attachment; filename=\"{}-{form}\"", app.id());
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
