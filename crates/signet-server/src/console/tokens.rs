//! The console's token stock page (`/console/tokens`): every provisioned token, where it is in
//! its life, and the two things an operator does with one — report it lost (which revokes, for
//! key compromise, whatever was issued for the application it was shipped for, since those keys
//! are on it) and retire an unshipped one.
//!
//! Not here: provisioning, which needs the token in hand (`signet admin token provision`), and
//! shipping, which is the application page's "token shipped" step.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use signet_authority::stock::{self, StockError};
use signet_pki::RevocationReason;
use signet_ra::issuance::{StoreError, StoredStatus};
use signet_ra::operator::{Operator, Permission};
use signet_ra::token_stock::{StockRefused, StockState, StockToken, TokenSerial, TokenStockStore};

use super::{Nav, signed_in};
use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Session, render, with_status};

const PAGE: &str = "/console/tokens";

/// Seeing the stock is part of vetting; reporting a token lost revokes certificates and
/// retiring one takes it out of service for good, so both are decisions, not records: they
/// need the approval permission.
const DECIDE: Permission = Permission::ApproveApplications;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(page))
        .route("/console/tokens/{serial}/lost", post(lost_post))
        .route("/console/tokens/{serial}/retire", post(retire_post))
}

struct TokenRow {
    serial: String,
    token: String,
    /// Where the token is, in words, up to the application (if any).
    state: String,
    /// The application it was shipped for, linked after `state`.
    application: String,
    provisioned: String,
    /// May be reported lost (in stock, shipped or retrieved).
    losable: bool,
    /// May be retired (in stock).
    retirable: bool,
    /// Why the last form posted for this token was refused.
    error: String,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    nav: Nav,
    rows: Vec<TokenRow>,
    notice: String,
    message: String,
    /// Whether this operator may report lost and retire.
    decides: bool,
}

fn row(t: &StockToken, refused: Option<(&TokenSerial, &str)>) -> TokenRow {
    let (state, application) = match &t.state {
        StockState::InStock => ("in stock", String::new()),
        StockState::Shipped(a) => ("shipped for application", a.to_string()),
        StockState::Retrieved(a, _) => ("certificates retrieved for application", a.to_string()),
        StockState::Lost(Some(a)) => ("lost; was shipped for application", a.to_string()),
        StockState::Lost(None) => ("lost (before shipping)", String::new()),
        StockState::Retired => ("retired", String::new()),
    };
    let model = [t.manufacturer.trim(), t.model.trim()].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    TokenRow {
        serial: t.serial.to_string(),
        token: model.join(" "),
        state: state.to_owned(),
        application,
        provisioned: format!("{} by {}", readable_date(t.provisioned_at), t.provisioned_by),
        losable: matches!(t.state, StockState::InStock | StockState::Shipped(_) | StockState::Retrieved(..)),
        retirable: t.state == StockState::InStock,
        error: refused.filter(|(s, _)| **s == t.serial).map_or_else(String::new, |(_, m)| m.to_owned()),
    }
}

/// "4 December 2026": a date a person reads at a glance (the time of day says nothing here).
pub(crate) fn readable_date(t: time::OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{} {} {}", d.day(), d.month(), d.year())
}

/// The page, with a notice after success or a message (and the refused token's row error)
/// after a refusal.
async fn view(
    s: &AppState,
    session: &Session,
    op: &Operator,
    notice: String,
    refused: Option<(&TokenSerial, &str)>,
) -> Response {
    let rows = match s.store.stock().await {
        Ok(tokens) => tokens.iter().map(|t| row(t, refused)).collect(),
        Err(e) => return PageError::from(e).into_response(),
    };
    render(&TokensPage {
        nav: Nav::new(session, op),
        rows,
        notice,
        message: refused.map_or_else(String::new, |(_, m)| format!("Not recorded: {m}")),
        decides: op.role.may(DECIDE),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DoneQuery {
    /// The token just reported lost.
    lost: String,
    /// The token just retired.
    retired: String,
}

#[tracing::instrument(skip_all)]
async fn page(State(s): State<AppState>, mut session: Session, Query(q): Query<DoneQuery>) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let notice = match notice(&s, &q).await {
        Ok(n) => n,
        Err(e) => return PageError::from(e).into_response(),
    };
    view(&s, &session, &op, notice, None).await
}

/// What the last post did, told from the store rather than from the query: a link someone
/// crafted cannot make the page claim a revocation that did not happen.
async fn notice(s: &AppState, q: &DoneQuery) -> Result<String, StoreError> {
    if let Ok(serial) = TokenSerial::new(&q.retired)
        && let Some(t) = s.store.stock_token(&serial).await?
        && t.state == StockState::Retired
    {
        return Ok(format!("Token {serial} is retired; it will not be shipped."));
    }
    let Ok(serial) = TokenSerial::new(&q.lost) else { return Ok(String::new()) };
    let Some(t) = s.store.stock_token(&serial).await? else { return Ok(String::new()) };
    let StockState::Lost(application) = &t.state else { return Ok(String::new()) };
    let Some(application) = application else {
        return Ok(format!("Token {serial} is reported lost. It had not been shipped, so no certificate was on it."));
    };
    let revoked: Vec<String> = s
        .store
        .account_certificates(application)
        .await?
        .into_iter()
        .filter(|c| matches!(c.status, StoredStatus::Revoked { reason: RevocationReason::KeyCompromise, .. }))
        .map(|c| c.serial.to_hex())
        .collect();
    Ok(if revoked.is_empty() {
        format!("Token {serial} is reported lost. No certificate had been issued for application {application}.")
    } else {
        format!(
            "Token {serial} is reported lost. Revoked for key compromise (application {application}): {}.",
            revoked.join(", ")
        )
    })
}

/// A refusal shown on the page again, beside the token, with its status.
struct Refused(String, StatusCode);

impl From<StockError> for Refused {
    fn from(e: StockError) -> Self {
        let status = match &e {
            StockError::Refused(StockRefused::NotInStock(_) | StockRefused::BadSerial) => StatusCode::NOT_FOUND,
            StockError::Refused(_) | StockError::Changed | StockError::Duplicate(_) => StatusCode::CONFLICT,
            // Sealing and storage failures, and whatever the stock may fail with later.
            _ => {
                tracing::error!(error = %e, "token stock failure");
                return Self(
                    "the token could not be updated; try again later".into(),
                    StatusCode::INTERNAL_SERVER_ERROR,
                );
            }
        };
        Self(e.to_string(), status)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LostForm {
    confirm: String,
}

/// Reports the token lost once the operator confirmed what that does.
async fn report_lost(s: &AppState, op: &Operator, serial: &TokenSerial, f: &LostForm) -> Result<(), Refused> {
    if f.confirm != "yes" {
        return Err(Refused(
            format!(
                "tick the box to confirm that token {serial} is lost: every certificate issued on it is revoked for \
                 key compromise"
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let (_, revoked) = stock::report_lost(s, serial, &format!("operator:{}", op.id)).await?;
    tracing::info!(token = %serial, revoked = revoked.len(), "token reported lost from the console");
    Ok(())
}

#[tracing::instrument(skip_all, fields(token = %serial))]
async fn lost_post(
    State(s): State<AppState>,
    mut session: Session,
    Path(serial): Path<String>,
    Form(f): Form<LostForm>,
) -> Response {
    let op = match signed_in(&s, &mut session, DECIDE).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // A path that cannot be a serial names no token.
    let Ok(serial) = TokenSerial::new(&serial) else { return PageError::NotFound.into_response() };
    match report_lost(&s, &op, &serial, &f).await {
        Ok(()) => Redirect::to(&format!("{PAGE}?lost={serial}")).into_response(),
        Err(Refused(_, StatusCode::NOT_FOUND)) => PageError::NotFound.into_response(),
        Err(Refused(message, status)) => {
            with_status(view(&s, &session, &op, String::new(), Some((&serial, &message))).await, status)
        }
    }
}

#[tracing::instrument(skip_all, fields(token = %serial))]
async fn retire_post(State(s): State<AppState>, mut session: Session, Path(serial): Path<String>) -> Response {
    let op = match signed_in(&s, &mut session, DECIDE).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // A path that cannot be a serial names no token.
    let Ok(serial) = TokenSerial::new(&serial) else { return PageError::NotFound.into_response() };
    match stock::retire(&s, &serial, &format!("operator:{}", op.id)).await.map_err(Refused::from) {
        Ok(_) => {
            tracing::info!(token = %serial, "token retired from the console");
            Redirect::to(&format!("{PAGE}?retired={serial}")).into_response()
        }
        Err(Refused(_, StatusCode::NOT_FOUND)) => PageError::NotFound.into_response(),
        Err(Refused(message, status)) => {
            with_status(view(&s, &session, &op, String::new(), Some((&serial, &message))).await, status)
        }
    }
}
