//! The passkey ceremonies as forms see them, for the Certificate Management Center and the
//! operator console alike: `/passkey/challenge` and `/passkey/registration` hand the browser
//! the options for `navigator.credentials` and the relying party's state, sealed under the
//! node's sealing key and bound to the session's form token; the form posts the state back with
//! the answer. So any node finishes a ceremony another began, and strangers asking for
//! challenges cost no disk.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use signet_ra::application::{ApplicationId, ApplicationStore};
use signet_ra::operator::OperatorStore;
use signet_ra::passkey::{Ceremony, PasskeyOwner, PasskeyStore, SecondFactor, new_user_handle};

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/passkey/challenge", get(challenge)).route("/passkey/registration", get(registration))
}

/// The two ceremonies, named in the sealing context so one's state cannot finish the other.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Authentication,
    Registration,
}

fn context(kind: Kind, session: &Session) -> Vec<u8> {
    let kind = match kind {
        Kind::Authentication => "authentication",
        Kind::Registration => "registration",
    };
    format!("signet passkey {kind}\0{}", session.csrf()).into_bytes()
}

fn sealed(s: &AppState, session: &Session, kind: Kind, ceremony: Ceremony) -> Result<Response, PageError> {
    let state = s
        .core
        .sealing
        .seal(&ceremony.state, &context(kind, session))
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let options: serde_json::Value =
        serde_json::from_str(&ceremony.options_json).map_err(|e| PageError::Internal(e.to_string()))?;
    let body = serde_json::json!({ "options": options, "state": URL_SAFE_NO_PAD.encode(state) });
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response())
}

/// The state a form posted back, opened; empty (which no ceremony accepts) when it does not open.
pub(crate) fn opened(s: &AppState, session: &Session, kind: Kind, posted: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(posted.trim())
        .ok()
        .and_then(|sealed| s.core.sealing.open(&sealed, &context(kind, session)).ok())
        .unwrap_or_default()
}

/// A sign-in or step-up challenge, for whoever asks: it is worthless without a passkey.
async fn challenge(State(s): State<AppState>, session: Session) -> Response {
    let Some(rp) = &s.passkeys else { return PageError::NotFound.into_response() };
    match rp.start_authentication() {
        Ok(c) => sealed(&s, &session, Kind::Authentication, c).unwrap_or_else(IntoResponse::into_response),
        Err(e) => PageError::Internal(e.to_string()).into_response(),
    }
}

/// Registration options for the signed-in subscriber or operator: the person's name, and their
/// passkeys so the authenticator does not register one twice.
async fn registration(State(s): State<AppState>, session: Session) -> Response {
    let Some(rp) = &s.passkeys else { return PageError::NotFound.into_response() };
    let start = async {
        let (owner, name) = match session.principal() {
            Principal::Subscriber(id) => {
                let id = ApplicationId::new(&id).map_err(|_| PageError::NotFound)?;
                let app = s.store.load(&id).await?.ok_or(PageError::NotFound)?;
                (PasskeyOwner::Subscriber(id), app.form().applicant.name.as_str().to_owned())
            }
            Principal::Operator(id) => {
                let id = signet_ra::application::OperatorId::new(&id).map_err(|_| PageError::NotFound)?;
                let op = s.store.operator_by_id(&id).await?.ok_or(PageError::NotFound)?;
                (PasskeyOwner::Operator(id.as_str().to_owned()), op.display_name.as_str().to_owned())
            }
            _ => return Err(PageError::NotFound),
        };
        let existing = s.store.passkeys(&owner).await?;
        let handle = existing.first().map_or_else(new_user_handle, |p| p.user_handle);
        let ceremony =
            rp.start_registration(&owner, &name, handle, &existing).map_err(|e| PageError::Internal(e.to_string()))?;
        sealed(&s, &session, Kind::Registration, ceremony)
    };
    start.await.unwrap_or_else(IntoResponse::into_response)
}

/// The second factor fields every step-up form posts: the code typed, or a passkey's answer
/// with the sealed state of its challenge.
#[derive(Deserialize, Default)]
pub(crate) struct Factor {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    passkey: String,
    #[serde(default)]
    passkey_state: String,
}

impl Factor {
    /// What the subscriber gave: the passkey when its answer came (and this site takes
    /// passkeys), the code otherwise. `state` holds the opened ceremony state.
    pub(crate) fn second<'a>(&'a self, s: &'a AppState, session: &Session, state: &'a mut Vec<u8>) -> SecondFactor<'a> {
        match &s.passkeys {
            Some(rp) if !self.passkey.is_empty() => {
                *state = opened(s, session, Kind::Authentication, &self.passkey_state);
                SecondFactor::Passkey { rp, state, answer: &self.passkey }
            }
            _ => SecondFactor::Code(&self.code),
        }
    }
}
