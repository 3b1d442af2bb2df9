//! The applicant's own pages: sign-in.

use super::*;

#[derive(Template)]
#[template(path = "signin.html")]
pub(super) struct SignInPage {
    csrf: String,
    reference: String,
    error: String,
}

/// The one message for every failed sign-in, so it reveals neither which secret was wrong
/// nor whether the reference exists.
pub(super) const SIGN_IN_FAILED: &str = "The application reference or password is not correct.";

pub(super) fn sign_in_page(session: &Session, reference: &str, error: &str) -> Response {
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
pub(super) struct SignInForm {
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

pub(super) fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| PasswordHash::from_phc(DUMMY_PHC).expect("a well-formed Argon2id PHC string"))
}

/// An Argon2id hash of a random string nobody knows, at the parameters `PasswordHash::new` uses.
pub(super) const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2lnbmV0ZHVtbXlzYWx0$Qj1pd9yjrnDkCXDJ0q5nmMvS1NmQ9l8AHhHVv+Lf0jE";

pub(super) async fn sign_in(State(s): State<AppState>, mut session: Session, Form(form): Form<SignInForm>) -> Response {
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
pub(super) async fn check_sign_in(s: &AppState, form: &SignInForm) -> Result<Result<ApplicationId, String>, PageError> {
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

pub(super) async fn sign_out(mut session: Session) -> Response {
    match session.become_principal(Principal::Anonymous).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The application this session is signed in to, `None` when it is signed in to another or
/// to none (the caller shows the sign-in form: the same answer whether the reference exists).
pub(super) async fn own_application(
    s: &AppState,
    session: &Session,
    id: &str,
) -> Result<Option<Application>, PageError> {
    if session.principal() != Principal::Applicant(id.to_owned()) {
        return Ok(None);
    }
    let id = ApplicationId::new(id).map_err(|_| PageError::NotFound)?;
    Ok(s.store.load(&id).await?)
}
