//! The Certificate Management Center: passkeys. A subscriber registers, renames and removes
//! passkeys (each change confirmed by step-up, audited and mailed), may drop the soft token once
//! a passkey can sign in, and uses a passkey wherever a code is asked for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use signet_ra::passkey::{Passkey, PasskeyName, PasskeyOwner, PasskeyStore};

pub(super) use crate::passkey_forms::Factor;
use crate::passkey_forms::{Kind, opened};

use super::*;

pub(super) struct PasskeyRow {
    id: String,
    name: String,
    added: String,
    last_used: String,
    aaguid: String,
}

#[derive(Template)]
#[template(path = "cmc/passkeys.html")]
pub(super) struct PasskeysPage {
    csrf: String,
    available: bool,
    origin: String,
    passkeys: Vec<PasskeyRow>,
    token_serial: String,
    notice: String,
    error: String,
    /// The passkey the error belongs to (empty: the add form's).
    error_id: String,
    name: String,
}

#[derive(Default)]
pub(super) struct PasskeysOutcome {
    notice: String,
    error: String,
    error_id: String,
    name: String,
}

pub(super) async fn passkeys_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    outcome: PasskeysOutcome,
) -> Result<Response, PageError> {
    let passkeys = s.store.passkeys(&PasskeyOwner::Subscriber(id.clone())).await?;
    let token = s.store.soft_token(id, "active").await?;
    let page = PasskeysPage {
        csrf: session.csrf().to_owned(),
        available: s.passkeys.is_some(),
        origin: s.passkeys.as_ref().map(|rp| rp.origin().to_owned()).unwrap_or_default(),
        passkeys: passkeys
            .iter()
            .map(|p| PasskeyRow {
                id: p.id_text(),
                name: p.name.as_str().to_owned(),
                added: day(p.created_at),
                last_used: p.last_used_at.map(day).unwrap_or_else(|| "not yet".into()),
                aaguid: p.aaguid.to_string(),
            })
            .collect(),
        token_serial: token.map(|t| t.serial.as_str().to_owned()).unwrap_or_default(),
        notice: outcome.notice,
        error: outcome.error,
        error_id: outcome.error_id,
        name: outcome.name,
    };
    let status = if page.error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

pub(super) async fn passkeys_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    passkeys_view(&s, &session, &id, PasskeysOutcome::default()).await.unwrap_or_else(IntoResponse::into_response)
}

/// The notice mailed for a change to the ways `id` signs in.
async fn notice(
    s: &AppState,
    id: &ApplicationId,
    change: &str,
    key: &str,
) -> Result<signet_ra::notify::OutboxMessage, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    Ok(s.core.notifier.sign_in_changed(&app, change, key))
}

fn event(s: &AppState, id: &ApplicationId, action: AuditAction, details: serde_json::Value) -> AuditEvent {
    AuditEvent::new(s.clock.now(), &cmc::actor(id), action, id.as_str(), details)
}

/// A key for the notice that tells this change from every other: what and when.
fn notice_key(what: &str, s: &AppState) -> String {
    format!("{what}:{}", s.clock.now().unix_timestamp_nanos())
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
pub(super) async fn add(State(s): State<AppState>, session: Session, Form(form): Form<AddForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    add_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn add_inner(s: &AppState, session: &Session, id: &ApplicationId, form: AddForm) -> Result<Response, PageError> {
    let typed = form.name.clone();
    let fail = |error: String| PasskeysOutcome { error, name: typed.clone(), ..PasskeysOutcome::default() };
    let Some(rp) = &s.passkeys else {
        return passkeys_view(s, session, id, fail(UNAVAILABLE.into())).await;
    };
    let name = match PasskeyName::new(&form.name) {
        Ok(n) => n,
        Err(e) => return passkeys_view(s, session, id, fail(format!("Passkey name: {e}."))).await,
    };
    if form.credential.is_empty() {
        return passkeys_view(s, session, id, fail(NO_ANSWER.into())).await;
    }
    if let Some(refused) = confirm(s, session, id, &form.factor, "add-passkey").await? {
        return passkeys_view(s, session, id, fail(refused)).await;
    }
    let state = opened(s, session, Kind::Registration, &form.credential_state);
    let owner = PasskeyOwner::Subscriber(id.clone());
    let passkey = match rp.register(&state, &form.credential, owner, name, s.clock.now()) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "a passkey registration was refused");
            return passkeys_view(s, session, id, fail(REGISTRATION_REFUSED.into())).await;
        }
    };
    let change = format!("A passkey named \u{201c}{}\u{201d} was added to your account.", passkey.name.as_str());
    let mail = notice(s, id, &change, &notice_key(&format!("added:{}", passkey.id_text()), s)).await?;
    let audit = event(
        s,
        id,
        AuditAction::PasskeyRegistered,
        serde_json::json!({ "credential": passkey.id_text(), "name": passkey.name.as_str(), "aaguid": passkey.aaguid.to_string() }),
    );
    match s.store.add_passkey(&passkey, audit, Some(&mail)).await {
        Ok(()) => {}
        Err(signet_ra::issuance::StoreError::Conflict(_)) => {
            return passkeys_view(s, session, id, fail("That passkey is registered already.".into())).await;
        }
        Err(e) => return Err(e.into()),
    }
    let notice = format!(
        "Your passkey \u{201c}{}\u{201d} is added. Use it to sign in and to confirm secure actions. We have emailed you about the change.",
        passkey.name.as_str()
    );
    passkeys_view(s, session, id, PasskeysOutcome { notice, ..PasskeysOutcome::default() }).await
}

/// The account's passkey named by `credential` in the address, or a 404.
async fn own_passkey(s: &AppState, id: &ApplicationId, credential: &str) -> Result<Passkey, PageError> {
    let bytes = URL_SAFE_NO_PAD.decode(credential).map_err(|_| PageError::NotFound)?;
    let passkey = s.store.passkey(&bytes).await?.ok_or(PageError::NotFound)?;
    if passkey.owner != PasskeyOwner::Subscriber(id.clone()) {
        return Err(PageError::NotFound);
    }
    Ok(passkey)
}

#[derive(Deserialize)]
pub(super) struct RenameForm {
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    factor: Factor,
}

#[tracing::instrument(skip_all)]
pub(super) async fn rename(
    State(s): State<AppState>,
    session: Session,
    Path(credential): Path<String>,
    Form(form): Form<RenameForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    rename_inner(&s, &session, &id, &credential, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn rename_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    credential: &str,
    form: RenameForm,
) -> Result<Response, PageError> {
    let passkey = own_passkey(s, id, credential).await?;
    let fail = |error: String| PasskeysOutcome { error, error_id: passkey.id_text(), ..PasskeysOutcome::default() };
    let name = match PasskeyName::new(&form.name) {
        Ok(n) => n,
        Err(e) => return passkeys_view(s, session, id, fail(format!("New name: {e}."))).await,
    };
    if let Some(refused) = confirm(s, session, id, &form.factor, "rename-passkey").await? {
        return passkeys_view(s, session, id, fail(refused)).await;
    }
    let change = format!(
        "Your passkey \u{201c}{}\u{201d} was renamed \u{201c}{}\u{201d}.",
        passkey.name.as_str(),
        name.as_str()
    );
    let mail = notice(s, id, &change, &notice_key(&format!("renamed:{}", passkey.id_text()), s)).await?;
    let audit = event(
        s,
        id,
        AuditAction::PasskeyRenamed,
        serde_json::json!({ "credential": passkey.id_text(), "from": passkey.name.as_str(), "to": name.as_str() }),
    );
    s.store.rename_passkey(&passkey.owner, &passkey.credential_id, &name, audit, Some(&mail)).await?;
    let notice = format!("The passkey is now called \u{201c}{}\u{201d}.", name.as_str());
    passkeys_view(s, session, id, PasskeysOutcome { notice, ..PasskeysOutcome::default() }).await
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    #[serde(flatten)]
    factor: Factor,
}

#[tracing::instrument(skip_all)]
pub(super) async fn remove(
    State(s): State<AppState>,
    session: Session,
    Path(credential): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    remove_inner(&s, &session, &id, &credential, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn remove_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    credential: &str,
    form: RemoveForm,
) -> Result<Response, PageError> {
    let passkey = own_passkey(s, id, credential).await?;
    let fail = |error: String| PasskeysOutcome { error, error_id: passkey.id_text(), ..PasskeysOutcome::default() };
    if let Some(refused) = confirm(s, session, id, &form.factor, "remove-passkey").await? {
        return passkeys_view(s, session, id, fail(refused)).await;
    }
    let change = format!("Your passkey \u{201c}{}\u{201d} was removed from your account.", passkey.name.as_str());
    let mail = notice(s, id, &change, &notice_key(&format!("removed:{}", passkey.id_text()), s)).await?;
    let audit = event(
        s,
        id,
        AuditAction::PasskeyRemoved,
        serde_json::json!({ "credential": passkey.id_text(), "name": passkey.name.as_str() }),
    );
    match s.store.remove_passkey(&passkey.owner, &passkey.credential_id, audit, Some(&mail)).await {
        Ok(()) => {}
        Err(signet_ra::issuance::StoreError::Conflict(_)) => {
            return passkeys_view(s, session, id, fail(LAST_FACTOR.into())).await;
        }
        Err(e) => return Err(e.into()),
    }
    let notice = format!(
        "The passkey \u{201c}{}\u{201d} is removed: it no longer signs in. You can also delete it from the device.",
        passkey.name.as_str()
    );
    passkeys_view(s, session, id, PasskeysOutcome { notice, ..PasskeysOutcome::default() }).await
}

#[tracing::instrument(skip_all)]
pub(super) async fn remove_soft_token(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<RemoveForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    remove_soft_token_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn remove_soft_token_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: RemoveForm,
) -> Result<Response, PageError> {
    let fail = |error: String| PasskeysOutcome { error, error_id: "soft-token".into(), ..PasskeysOutcome::default() };
    if let Some(refused) = confirm(s, session, id, &form.factor, "remove-soft-token").await? {
        return passkeys_view(s, session, id, fail(refused)).await;
    }
    let change = "The soft token (authenticator app) was removed from your account: you now sign in with a passkey.";
    let mail = notice(s, id, change, &notice_key("soft-token-removed", s)).await?;
    let audit = event(s, id, AuditAction::SoftTokenRemoved, serde_json::json!({}));
    match s.store.remove_active_soft_token(id, audit, Some(&mail)).await {
        Ok(()) => {}
        Err(signet_ra::issuance::StoreError::Conflict(_)) => {
            return passkeys_view(s, session, id, fail(LAST_FACTOR.into())).await;
        }
        Err(signet_ra::issuance::StoreError::NotFound) => {
            return passkeys_view(s, session, id, fail("There is no soft token to remove.".into())).await;
        }
        Err(e) => return Err(e.into()),
    }
    let notice = "The soft token is removed: its codes no longer work. Sign in and confirm actions with your passkey.";
    passkeys_view(s, session, id, PasskeysOutcome { notice: notice.into(), ..PasskeysOutcome::default() }).await
}

const UNAVAILABLE: &str =
    "Passkeys are not available on this site's address. Ask the RA to serve it over https:// with a host name.";
const NO_ANSWER: &str = "Press \u{201c}Create passkey\u{201d} and follow your browser\u{2019}s prompt; the passkey is made on your device, so this needs JavaScript turned on.";
const REGISTRATION_REFUSED: &str = "Your device\u{2019}s passkey could not be registered: it must be made for this site and check your PIN or fingerprint. Try again, or use another device.";
const LAST_FACTOR: &str =
    "You cannot remove your only way to sign in. Add another passkey (or keep your soft token) first.";
