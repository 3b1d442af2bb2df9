//! The operator console: an operator's own passkeys. Where the RA requires them, an operator
//! without one lands here after signing in with a code and can do nothing else until one is
//! registered, and the last one cannot be removed; where it lists the authenticator models
//! allowed, others are refused at registration. Each change is confirmed with a fresh code or
//! passkey and audited.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use signet_ra::passkey::{PasskeyName, PasskeyOwner, PasskeyStore};

use super::*;
use crate::passkey_forms::{Factor, Kind, opened};

pub(super) const PAGE: &str = "/console/passkeys";

pub(super) fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(page).post(add)).route("/console/passkeys/{credential}/remove", post(remove))
}

pub(super) struct Row {
    id: String,
    name: String,
    added: String,
    last_used: String,
    aaguid: String,
}

#[derive(Template)]
#[template(path = "console/passkeys.html")]
pub(super) struct PasskeysPage {
    nav: Nav,
    available: bool,
    required: bool,
    origin: String,
    passkeys: Vec<Row>,
    notice: String,
    error: String,
    name: String,
}

async fn view(
    s: &AppState,
    session: &Session,
    op: &Operator,
    notice: String,
    error: String,
    name: String,
) -> Result<Response, PageError> {
    let passkeys = s.store.passkeys(&owner(op)).await?;
    let page = PasskeysPage {
        nav: Nav::new(session, op),
        available: s.passkeys.is_some(),
        required: s.operator_passkeys.required,
        origin: s.passkeys.as_ref().map(|rp| rp.origin().to_owned()).unwrap_or_default(),
        passkeys: passkeys
            .iter()
            .map(|p| Row {
                id: p.id_text(),
                name: p.name.as_str().to_owned(),
                added: when(p.created_at),
                last_used: p.last_used_at.map_or_else(|| "not yet".to_owned(), when),
                aaguid: p.aaguid.to_string(),
            })
            .collect(),
        notice,
        error,
        name,
    };
    let status = if page.error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

fn owner(op: &Operator) -> PasskeyOwner {
    PasskeyOwner::Operator(op.id.as_str().to_owned())
}

async fn page(State(s): State<AppState>, mut session: Session) -> Response {
    let op = match operator_of(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    view(&s, &session, &op, String::new(), String::new(), String::new())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The step-up before a change: `None` when confirmed, else what to show.
async fn confirm(
    s: &AppState,
    session: &Session,
    op: &Operator,
    factor: &Factor,
    action: &str,
) -> Result<Option<String>, PageError> {
    let mut state = Vec::new();
    let second = factor.second(s, session, &mut state);
    let now = s.clock.now();
    match operator::step_up(&s.store, op, second, action, now, &operator::SIGN_IN_SCOPE.default_policy()).await {
        Ok(()) => Ok(None),
        Err(LoginError::Refused) => Ok(Some(STEP_UP_REFUSED.to_owned())),
        Err(LoginError::Locked { until }) => Ok(Some(until.message(now))),
        Err(LoginError::Busy(busy)) => Err(PageError::from(busy)),
        Err(e) => Err(PageError::Internal(e.to_string())),
    }
}

#[derive(Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    credential_state: String,
    #[serde(flatten)]
    factor: Factor,
}

#[tracing::instrument(skip_all)]
async fn add(State(s): State<AppState>, mut session: Session, Form(form): Form<AddForm>) -> Response {
    let op = match operator_of(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    add_inner(&s, &session, &op, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn add_inner(s: &AppState, session: &Session, op: &Operator, form: AddForm) -> Result<Response, PageError> {
    let fail = |error: &str| view(s, session, op, String::new(), error.to_owned(), form.name.clone());
    let Some(rp) = &s.passkeys else { return fail(UNAVAILABLE).await };
    let name = match PasskeyName::new(&form.name) {
        Ok(n) => n,
        Err(e) => return fail(&format!("Passkey name: {e}.")).await,
    };
    if form.credential.is_empty() {
        return fail(NO_ANSWER).await;
    }
    if let Some(refused) = confirm(s, session, op, &form.factor, "add-passkey").await? {
        return fail(&refused).await;
    }
    let state = opened(s, session, Kind::Registration, &form.credential_state);
    let passkey = match rp.register(&state, &form.credential, owner(op), name, s.clock.now()) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "an operator's passkey registration was refused");
            return fail(REGISTRATION_REFUSED).await;
        }
    };
    if !s.operator_passkeys.allows(passkey.aaguid) {
        let refused = format!(
            "This RA allows operators only the security keys on its list, and this one (model {}) is not on it. \
             Use one of the RA's security keys, or ask an administrator to add this model.",
            passkey.aaguid
        );
        return fail(&refused).await;
    }
    let audit = AuditEvent::new(
        s.clock.now(),
        &op.audit_name(),
        AuditAction::PasskeyRegistered,
        op.id.as_str(),
        json!({ "credential": passkey.id_text(), "name": passkey.name.as_str(), "aaguid": passkey.aaguid.to_string() }),
    );
    match s.store.add_passkey(&passkey, audit, None).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return fail("That passkey is registered already.").await,
        Err(e) => return Err(e.into()),
    }
    let notice =
        format!("Your passkey \u{201c}{}\u{201d} is added: sign in with it from now on.", passkey.name.as_str());
    view(s, session, op, notice, String::new(), String::new()).await
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    #[serde(flatten)]
    factor: Factor,
}

#[tracing::instrument(skip_all)]
async fn remove(
    State(s): State<AppState>,
    mut session: Session,
    Path(credential): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    let op = match operator_of(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    remove_inner(&s, &session, &op, &credential, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn remove_inner(
    s: &AppState,
    session: &Session,
    op: &Operator,
    credential: &str,
    form: RemoveForm,
) -> Result<Response, PageError> {
    let fail = |error: &str| view(s, session, op, String::new(), error.to_owned(), String::new());
    let bytes = URL_SAFE_NO_PAD.decode(credential).map_err(|_| PageError::NotFound)?;
    let mine = s.store.passkeys(&owner(op)).await?;
    let Some(passkey) = mine.iter().find(|p| p.credential_id == bytes) else { return Err(PageError::NotFound) };
    if s.operator_passkeys.required && mine.len() == 1 {
        return fail(LAST_REQUIRED).await;
    }
    if let Some(refused) = confirm(s, session, op, &form.factor, "remove-passkey").await? {
        return fail(&refused).await;
    }
    let audit = AuditEvent::new(
        s.clock.now(),
        &op.audit_name(),
        AuditAction::PasskeyRemoved,
        op.id.as_str(),
        json!({ "credential": passkey.id_text(), "name": passkey.name.as_str() }),
    );
    s.store.remove_passkey(&passkey.owner, &passkey.credential_id, audit, None).await?;
    let notice = format!("The passkey \u{201c}{}\u{201d} is removed.", passkey.name.as_str());
    view(s, session, op, notice, String::new(), String::new()).await
}

const STEP_UP_REFUSED: &str = "That code or passkey was not accepted. Enter the code your authenticator app shows now, or use a passkey registered to you.";
const UNAVAILABLE: &str =
    "Passkeys are not available at this site's address: it must be an https:// address with a host name.";
const NO_ANSWER: &str =
    "Press \u{201c}Create passkey\u{201d} and follow your browser\u{2019}s prompt; this needs JavaScript turned on.";
const REGISTRATION_REFUSED: &str =
    "The passkey could not be registered: it must be made for this site and check your PIN or fingerprint. Try again.";
const LAST_REQUIRED: &str =
    "This RA requires operators to sign in with a passkey: add another passkey before you remove your last one.";
