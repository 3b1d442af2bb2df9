//! The console's key recovery page (`/console/key-recovery`): designated key recovery
//! agents open requests for a certificate's escrowed encryption key and approve them; two
//! different agents must approve. Each request and approval signs the agent in again with
//! password and a fresh TOTP code (the console's lockouts apply), because a console session
//! alone must not release a key.
//!
//! Not here: the export. Opening an escrow takes the key recovery key, which the web tier never
//! holds; an approver exports with `signet admin key-recovery export` on the CA host.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::{Agent, KeyRecoveryStore, RecoveryRequest, RecoveryRequestId, RecoveryState};
use signet_ra::lockout;
use signet_ra::operator::{self, LoginError, Operator, Permission};

use crate::console::{Nav, signed_in, when};
use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Session, render, with_status};

const PAGE: &str = "/console/key-recovery";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(page))
        .route("/console/key-recovery/request", post(request_post))
        .route("/console/key-recovery/{id}/approve", post(approve_post))
}

struct RequestRow {
    id: String,
    serial: String,
    application: String,
    reason: String,
    requested: String,
    state: String,
    /// Whether this operator may approve it now.
    approvable: bool,
}

#[derive(Template)]
#[template(path = "console/key_recovery.html")]
struct KeyRecoveryPage {
    nav: Nav,
    agent: bool,
    rows: Vec<RequestRow>,
    notice: String,
    message: String,
    serial: String,
    reason: String,
}

fn row(r: &RecoveryRequest, me: &Operator, agent: bool) -> RequestRow {
    let (state, approvable) = match &r.state {
        RecoveryState::Pending { first_approver: None } => ("waiting for two approvals".to_owned(), agent),
        RecoveryState::Pending { first_approver: Some(a) } => {
            (format!("approved by {a}; waiting for a second agent"), agent && *a != me.id)
        }
        RecoveryState::Approved { approvers: [a, b] } => {
            (format!("approved by {a} and {b}; an approver may export it on the CA host"), false)
        }
        RecoveryState::Exported { exported_by, exported_at, .. } => {
            (format!("exported by {exported_by} on {}", when(*exported_at)), false)
        }
    };
    RequestRow {
        id: r.id.to_string(),
        serial: r.serial.clone(),
        application: r.application.to_string(),
        reason: r.reason.clone(),
        requested: format!("{} on {}", r.requested_by, when(r.requested_at)),
        state,
        approvable,
    }
}

/// The page, with a notice after success or a message (and the typed serial and reason) after
/// a refusal.
async fn view(
    s: &AppState,
    session: &Session,
    op: &Operator,
    notice: &str,
    message: &str,
    typed: (&str, &str),
) -> Response {
    let page = async {
        let agent = s.store.agent(&op.id).await?.is_some();
        let rows = s.store.requests().await?.iter().map(|r| row(r, op, agent)).collect();
        Ok::<_, StoreError>(KeyRecoveryPage {
            nav: Nav::new(session, op),
            agent,
            rows,
            notice: notice.to_owned(),
            message: message.to_owned(),
            serial: typed.0.to_owned(),
            reason: typed.1.to_owned(),
        })
    };
    match page.await {
        Ok(p) => render(&p),
        Err(e) => PageError::from(e).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DoneQuery {
    done: String,
}

async fn page(State(s): State<AppState>, mut session: Session, q: axum::extract::Query<DoneQuery>) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let notice = match q.done.as_str() {
        "request" => "The request is open; it needs the approval of two different agents.",
        "approve" => "Your approval is recorded.",
        _ => "",
    };
    view(&s, &session, &op, notice, "", ("", "")).await
}

/// A refusal shown on the page again, with its status.
struct Refused(String, StatusCode);

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => {
                Self("someone acted on this request meanwhile; look at it again".into(), StatusCode::CONFLICT)
            }
            other => {
                tracing::error!(error = %other, "key recovery store failure");
                Self("the request could not be saved; try again later".into(), StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<signet_ra::key_recovery::RecoveryRefused> for Refused {
    fn from(e: signet_ra::key_recovery::RecoveryRefused) -> Self {
        Self(e.to_string(), StatusCode::UNPROCESSABLE_ENTITY)
    }
}

/// Signs the operator in again (password and a fresh code) and checks the designation.
async fn confirm_agent(s: &AppState, op: &Operator, password: &str, code: &str) -> Result<Agent, Refused> {
    let policy = operator::SIGN_IN_SCOPE.default_policy();
    match operator::authenticate(&s.store, &s.hashing, &op.id, password, code.trim(), s.clock.now(), &policy).await {
        Ok(_) => {}
        Err(LoginError::Refused) => return Err(Refused(lockout::REFUSED.into(), StatusCode::UNAUTHORIZED)),
        Err(LoginError::Locked { until }) => return Err(Refused(until.message(s.clock.now()), StatusCode::LOCKED)),
        Err(LoginError::Store(e)) => return Err(e.into()),
        Err(LoginError::Busy(e)) => return Err(Refused(e.to_string(), StatusCode::SERVICE_UNAVAILABLE)),
        Err(e) => return Err(Refused(e.to_string(), StatusCode::INTERNAL_SERVER_ERROR)),
    }
    let designation = s.store.agent(&op.id).await?.ok_or_else(|| {
        Refused("only designated key recovery agents may request or approve a recovery".into(), StatusCode::FORBIDDEN)
    })?;
    Ok(Agent::from_designation(&designation))
}

#[derive(Deserialize)]
struct RequestForm {
    serial: String,
    reason: String,
    password: String,
    code: String,
}

async fn open_request(s: &AppState, op: &Operator, f: &RequestForm) -> Result<(), Refused> {
    let agent = confirm_agent(s, op, &f.password, &f.code).await?;
    let serial = f.serial.trim().to_ascii_lowercase();
    let escrow = s.store.escrow_of_serial(&serial).await?.ok_or_else(|| {
        Refused(
            format!("certificate {serial} has no escrowed key (only encryption keys are escrowed)"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    })?;
    let (request, event) = RecoveryRequest::open(&escrow, &serial, &f.reason, &agent, s.clock.now())?;
    s.store.create_request(&request, event).await?;
    tracing::info!(request = %request.id, serial = %request.serial, "key recovery requested");
    Ok(())
}

async fn request_post(State(s): State<AppState>, mut session: Session, Form(f): Form<RequestForm>) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    match open_request(&s, &op, &f).await {
        Ok(()) => Redirect::to(&format!("{PAGE}?done=request")).into_response(),
        Err(Refused(message, status)) => with_status(
            view(&s, &session, &op, "", &format!("Not recorded: {message}"), (&f.serial, &f.reason)).await,
            status,
        ),
    }
}

#[derive(Deserialize)]
struct ApproveForm {
    password: String,
    code: String,
}

async fn approve(s: &AppState, op: &Operator, id: &str, f: &ApproveForm) -> Result<(), Refused> {
    let not_found = || Refused(format!("no key recovery request {id}"), StatusCode::NOT_FOUND);
    let id = RecoveryRequestId::parse(id).ok_or_else(not_found)?;
    let agent = confirm_agent(s, op, &f.password, &f.code).await?;
    let request = s.store.request(&id).await?.ok_or_else(not_found)?;
    let (request, event) = request.approve(&agent, s.clock.now())?;
    s.store.update_request(&request, event).await?;
    tracing::info!(request = %request.id, state = request.state.name(), "key recovery approved");
    Ok(())
}

async fn approve_post(
    State(s): State<AppState>,
    mut session: Session,
    Path(id): Path<String>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    match approve(&s, &op, &id, &f).await {
        Ok(()) => Redirect::to(&format!("{PAGE}?done=approve")).into_response(),
        Err(Refused(message, status)) => {
            with_status(view(&s, &session, &op, "", &format!("Not recorded: {message}"), ("", "")).await, status)
        }
    }
}
