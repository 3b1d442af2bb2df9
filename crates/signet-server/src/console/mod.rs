//! The RA operator console (`/console…`): sign-in with password and TOTP, the vetting queue,
//! one page per application with every check, the evidence, notes and audit history and a
//! form for each command its state admits, and — for RA administrators — the operator list
//! with disable/enable and lockout clearing.
//!
//! Every page asks [`signed_in`] for the operator first: a session that is not an operator's
//! goes to the sign-in page, and the account is read again on each request, so disabling an
//! operator or changing a role takes effect at once. A refused form (bad input, or the domain
//! saying no) shows the same page again with 422, the values typed and the reason; nothing is
//! stored then. Every change goes through [`AppState::command`] or the domain's operator
//! functions, which chain the audit row in the same transaction.

mod application;
mod operators;
mod orgs;
mod passkeys;
mod queue;
mod sign_in;
mod tokens;

use std::collections::BTreeMap;
use std::fmt::Display;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use signet_authority::CommandFailure;
use signet_authority::stock::{self, ShipFailure};
use signet_pki::profile::SubjectKind;
use signet_pki::subject::CommonName;
use signet_ra::application::{
    Actor, Application, ApplicationId, ApplicationState, ApplicationStore, Command, OperatorId, Payment, PhoneNumber,
    Reason, Residency, Vetting,
};
use signet_ra::audit::{AuditAction, AuditEvent, AuditRecord};
use signet_ra::forms_mail::{Deficiency, DeficiencyError, FormProblem, FormsTrail};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{self, AttemptScope, AttemptStore, LockState, Until};
use signet_ra::operator::{self, LoginError, Operator, OperatorStore, Permission, Role};
use signet_ra::passkey::{PasskeyOwner, PasskeyStore};
use signet_ra::token_stock::TokenSerial;
use signet_ra::token_stock::{StockToken, TokenStockStore};
use signet_ra::vetting::{
    self, ACCEPTED_DOCUMENTS, Attestation, CallOutcome, Carrier, DeadlineKind, FormPages, FormsReceipt,
    IdentityDocument, OfficerCallback, Tracking, TrackingNumber,
};
use signet_ra::witness::{WitnessRefused, WitnessStore, WitnessedGeneration};
use signet_store::{QueueFilter, StateFilter};
use time::{Date, OffsetDateTime};

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render, with_status};

const SIGN_IN: &str = "/console/sign-in";
/// Queue rows per page.
const PAGE_SIZE: u32 = 25;
/// A deadline this close is flagged red in the queue and on the application page.
const FLAG_DAYS: i64 = 7;
/// Identity document rows on the form: two List B documents, plus one spare.
const DOCUMENT_ROWS: usize = 3;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(SIGN_IN, get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console", get(queue))
        .route("/console/applications/{id}", get(application_page))
        .route("/console/applications/{id}/note", post(note_post))
        .route("/console/applications/{id}/witness", post(witness_post))
        .route("/console/applications/{id}/deficiency", post(deficiency_post))
        .route("/console/applications/{id}/{action}", post(application_post))
        .route("/console/operators", get(operators_page))
        .route("/console/operators/{id}/{action}", post(operator_post))
        .merge(tokens::router())
        .merge(passkeys::router())
        .merge(orgs::router())
}

pub(crate) fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

/// The signed-in operator, if the session is an operator's, the account still exists and is
/// enabled, and its role allows `permission`. Otherwise the response to send instead: the
/// sign-in page (ending the session of an account that was disabled meanwhile), 403, or —
/// where operators must use passkeys — the passkey page, until the operator has one.
pub(crate) async fn signed_in(
    s: &AppState,
    session: &mut Session,
    permission: Permission,
) -> Result<Operator, Response> {
    let op = operator_of(s, session, permission).await?;
    if s.operator_passkeys.required {
        let owner = PasskeyOwner::Operator(op.id.as_str().to_owned());
        if s.store.passkeys(&owner).await.map_err(|e| PageError::from(e).into_response())?.is_empty() {
            return Err(Redirect::to(passkeys::PAGE).into_response());
        }
    }
    Ok(op)
}

/// [`signed_in`] without the passkey requirement: for the page that meets it.
pub(crate) async fn operator_of(
    s: &AppState,
    session: &mut Session,
    permission: Permission,
) -> Result<Operator, Response> {
    let Principal::Operator(id) = session.principal() else {
        return Err(Redirect::to(SIGN_IN).into_response());
    };
    let stored = match OperatorId::new(&id) {
        Ok(id) => s.store.operator_by_id(&id).await.map_err(|e| PageError::from(e).into_response())?,
        Err(_) => None,
    };
    let Some(op) = stored.filter(|op| !op.disabled) else {
        session.become_principal(Principal::Anonymous).await.map_err(IntoResponse::into_response)?;
        return Err(Redirect::to(SIGN_IN).into_response());
    };
    op.require(permission).map_err(|_| PageError::Forbidden.into_response())?;
    Ok(op)
}

/// What every console page shows in its header.
pub(crate) struct Nav {
    pub(crate) csrf: String,
    pub(crate) operator: String,
    pub(crate) admin: bool,
}

impl Nav {
    pub(crate) fn new(session: &Session, op: &Operator) -> Self {
        Self {
            csrf: session.csrf().to_owned(),
            operator: format!("{} ({})", op.display_name.as_str(), op.id),
            admin: op.role.may(Permission::ManageOperators),
        }
    }
}

pub(crate) use application::*;
use operators::*;
use queue::*;
use sign_in::*;
