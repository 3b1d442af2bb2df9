//! The Certificate Management Center: sign-in.

use super::*;

#[derive(Template)]
#[template(path = "cmc/sign_in.html")]
pub(super) struct SignInPage {
    csrf: String,
    reference: String,
    error: String,
}

pub(super) fn sign_in_view(session: &Session, reference: &str, error: &str, status: StatusCode) -> Response {
    let page = SignInPage { csrf: session.csrf().to_owned(), reference: reference.to_owned(), error: error.to_owned() };
    with_status(render(&page), status)
}

pub(super) async fn sign_in_page(session: Session) -> Response {
    if matches!(session.principal(), Principal::Subscriber(_)) {
        return Redirect::to(HOME).into_response();
    }
    sign_in_view(&session, "", "", StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

/// The reference as typed, bounded, for counting failures (also of references that do not
/// parse), and the account it names when it parses.
pub(super) fn subject_of(reference: &str) -> (String, Option<ApplicationId>) {
    let id = ApplicationId::new(reference.trim()).ok();
    let subject = match &id {
        Some(id) => id.as_str().to_owned(),
        None => reference.trim().chars().take(64).collect(),
    };
    (subject, id)
}

#[tracing::instrument(skip_all)]
pub(super) async fn sign_in(State(s): State<AppState>, mut session: Session, Form(form): Form<SignInForm>) -> Response {
    let (subject, id) = subject_of(&form.reference);
    let password_ok = match password_matches::<PageError>(&s, id.as_ref(), form.password).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let now = s.clock.now();
    let mut state = Vec::new();
    let second = form.factor.second(&s, &session, &mut state);
    let outcome = cmc::sign_in(&s.store, &subject, id.as_ref(), password_ok, second, now).await;
    let (principal, to) = match (outcome, id) {
        (Ok(SignedIn::Complete), Some(id)) => (Principal::Subscriber(id.as_str().to_owned()), HOME),
        (Ok(SignedIn::MustEnroll), Some(id)) => (Principal::Enrolling(id.as_str().to_owned()), "/cmc/soft-token"),
        (Ok(_), None) => return PageError::Internal("signed in without an account".into()).into_response(),
        (Err(e), _) => {
            return match refusal(e, s.clock.now()) {
                Ok((message, status)) => sign_in_view(&session, &form.reference, &message, status),
                Err(e) => e.into_response(),
            };
        }
    };
    if let Err(e) = session.become_principal(principal).await {
        return e.into_response();
    }
    tracing::info!(account = %subject, "subscriber signed in to the CMC");
    Redirect::to(to).into_response()
}

pub(super) async fn sign_out(mut session: Session) -> Response {
    match session.become_principal(Principal::Anonymous).await {
        Ok(()) => Redirect::to(SIGN_IN).into_response(),
        Err(e) => e.into_response(),
    }
}
