//! The operator console: sign-in.

use super::*;

#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub(super) struct SignInPage {
    csrf: String,
    operator: String,
    error: String,
}

pub(super) fn sign_in_view(session: &Session, operator: &str, error: &str, status: StatusCode) -> Response {
    let page = SignInPage { csrf: session.csrf().to_owned(), operator: operator.to_owned(), error: error.to_owned() };
    with_status(render(&page), status)
}

pub(super) async fn sign_in_page(session: Session) -> Response {
    if matches!(session.principal(), Principal::Operator(_)) {
        return Redirect::to("/console").into_response();
    }
    sign_in_view(&session, "", "", StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    operator: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    factor: crate::passkey_forms::Factor,
}

#[tracing::instrument(skip_all)]
pub(super) async fn sign_in(State(s): State<AppState>, mut session: Session, Form(form): Form<SignInForm>) -> Response {
    // An id that cannot exist gets the same answer as a wrong password.
    let Ok(id) = OperatorId::new(form.operator.trim()) else {
        return sign_in_view(&session, &form.operator, lockout::REFUSED, StatusCode::UNAUTHORIZED);
    };
    let policy = operator::SIGN_IN_SCOPE.default_policy();
    let now = s.clock.now();
    let mut state = Vec::new();
    let second = form.factor.second(&s, &session, &mut state);
    let required = s.operator_passkeys.required;
    match operator::sign_in(&s.store, &s.hashing, &id, &form.password, second, required, now, &policy).await {
        Ok(op) => {
            if let Err(e) = session.become_principal(Principal::Operator(op.id.as_str().to_owned())).await {
                return e.into_response();
            }
            tracing::info!(operator = %op.id, "operator signed in");
            Redirect::to("/console").into_response()
        }
        Err(LoginError::Refused) => sign_in_view(&session, &form.operator, lockout::REFUSED, StatusCode::UNAUTHORIZED),
        Err(LoginError::Locked { until }) => {
            sign_in_view(&session, &form.operator, &until.message(now), StatusCode::LOCKED)
        }
        Err(LoginError::Busy(busy)) => PageError::from(busy).into_response(),
        Err(e) => PageError::Internal(e.to_string()).into_response(),
    }
}

pub(super) async fn sign_out(mut session: Session) -> Response {
    match session.become_principal(Principal::Anonymous).await {
        Ok(()) => Redirect::to(SIGN_IN).into_response(),
        Err(e) => e.into_response(),
    }
}
