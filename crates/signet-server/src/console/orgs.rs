//! The console's organizations page (`/console/organizations`): the organizations applicants
//! registered, waiting for the RA, and the three decisions an operator takes on one — confirm
//! it (applicants are offered it from then on), merge it into a confirmed organization it is a
//! spelling of, or reject it. Each decision is audited and taken once.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use signet_ra::application::{Actor, OrganizationKey};
use signet_ra::issuance::StoreError;
use signet_ra::operator::{Operator, Permission};
use signet_ra::organization::{OrganizationStatus, RegisteredOrganization};

use super::tokens::readable_date;
use super::{Nav, signed_in};
use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Session, render, with_status};

const PAGE: &str = "/console/organizations";

/// Seeing the register is part of vetting; deciding what applicants are offered is a decision.
const DECIDE: Permission = Permission::ApproveApplications;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(PAGE, get(page).post(decide))
}

struct PendingRow {
    key: String,
    name: String,
    registered: String,
    /// Why the last decision posted for this organization was refused.
    error: String,
}

#[derive(Template)]
#[template(path = "console/organizations.html")]
struct OrganizationsPage {
    nav: Nav,
    pending: Vec<PendingRow>,
    /// (key, name) of the confirmed organizations, the possible merge targets.
    confirmed: Vec<(String, String)>,
    /// (name, what was decided) of the merged and rejected ones.
    decided: Vec<(String, String)>,
    notice: String,
    message: String,
    decides: bool,
}

async fn view(
    s: &AppState,
    session: &Session,
    op: &Operator,
    notice: String,
    refused: Option<(&str, &str)>,
) -> Response {
    let all = match s.store.registered_organizations().await {
        Ok(all) => all,
        Err(e) => return PageError::from(e).into_response(),
    };
    let name_of = |key: &OrganizationKey| {
        all.iter()
            .find(|o| &o.organization.key == key)
            .map_or_else(|| key.to_string(), |o| o.organization.name.to_string())
    };
    let mut page = OrganizationsPage {
        nav: Nav::new(session, op),
        pending: Vec::new(),
        confirmed: Vec::new(),
        decided: Vec::new(),
        notice,
        message: refused.map_or_else(String::new, |(_, m)| format!("Not recorded: {m}")),
        decides: op.role.may(DECIDE),
    };
    for o in &all {
        let (key, name) = (o.organization.key.to_string(), o.organization.name.to_string());
        match &o.status {
            OrganizationStatus::Pending => page.pending.push(PendingRow {
                error: refused.filter(|(k, _)| *k == key).map_or_else(String::new, |(_, m)| m.to_owned()),
                key,
                name,
                registered: readable_date(o.registered_at),
            }),
            OrganizationStatus::Confirmed => page.confirmed.push((key, name)),
            OrganizationStatus::Merged(into) => page.decided.push((name, format!("merged into {}", name_of(into)))),
            OrganizationStatus::Rejected => page.decided.push((name, "rejected".into())),
        }
    }
    render(&page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DoneQuery {
    /// The organization just decided.
    done: String,
}

#[tracing::instrument(skip_all)]
async fn page(State(s): State<AppState>, mut session: Session, Query(q): Query<DoneQuery>) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let notice = match notice(&s, &q.done).await {
        Ok(n) => n,
        Err(e) => return PageError::from(e).into_response(),
    };
    view(&s, &session, &op, notice, None).await
}

/// What the last decision did, told from the store rather than from the query: a crafted link
/// cannot make the page claim a decision that was not taken.
async fn notice(s: &AppState, done: &str) -> Result<String, StoreError> {
    let Some(key) = stored_key(done) else { return Ok(String::new()) };
    let Some(o) = s.store.registered_organization(&key).await? else { return Ok(String::new()) };
    let name = o.organization.name;
    Ok(match o.status {
        OrganizationStatus::Pending => String::new(),
        OrganizationStatus::Confirmed => format!("{name} is confirmed: applicants are now offered it."),
        OrganizationStatus::Merged(into) => {
            let target = s
                .store
                .registered_organization(&into)
                .await?
                .map_or_else(|| into.to_string(), |t| t.organization.name.to_string());
            format!("{name} is merged into {target}: applicants who type {name} are offered {target}.")
        }
        OrganizationStatus::Rejected => format!("{name} is rejected: applicants are not offered it."),
    })
}

/// A key as the page posted it back (keys are the store's, so this names one or none).
fn stored_key(text: &str) -> Option<OrganizationKey> {
    if text.is_empty() || text.len() > 256 {
        return None;
    }
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DecisionForm {
    organization: String,
    decision: String,
    into: String,
}

/// A refusal shown on the page again, beside the organization, with its status.
struct Refused(String, StatusCode);

async fn take(s: &AppState, op: &Operator, pending: RegisteredOrganization, f: &DecisionForm) -> Result<(), Refused> {
    let actor = Actor::Operator(op.id.clone()).audit_name();
    let now = s.clock.now();
    let decision = match f.decision.as_str() {
        "confirm" => pending.confirm(&actor, now),
        "reject" => pending.reject(&actor, now),
        "merge" => {
            let target = match stored_key(&f.into) {
                Some(key) => s.store.registered_organization(&key).await.map_err(internal)?,
                None => None,
            };
            let Some(target) = target else {
                return Err(Refused(
                    format!("choose the confirmed organization to merge {} into", pending.organization.name),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ));
            };
            pending.merge_into(&target, &actor, now)
        }
        _ => return Err(Refused("choose confirm, merge or reject".into(), StatusCode::UNPROCESSABLE_ENTITY)),
    }
    .map_err(|e| Refused(e.to_string(), StatusCode::CONFLICT))?;
    match s.store.save_organization_decision(&decision).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(Refused(
            "another operator decided about it, or about the organization to merge into, first; see the list".into(),
            StatusCode::CONFLICT,
        )),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: StoreError) -> Refused {
    tracing::error!(error = %e, "organization register failure");
    Refused("the decision could not be recorded; try again later".into(), StatusCode::INTERNAL_SERVER_ERROR)
}

#[tracing::instrument(skip_all)]
async fn decide(State(s): State<AppState>, mut session: Session, Form(f): Form<DecisionForm>) -> Response {
    let op = match signed_in(&s, &mut session, DECIDE).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let found = match stored_key(&f.organization) {
        Some(key) => s.store.registered_organization(&key).await,
        None => Ok(None),
    };
    let pending = match found {
        Ok(Some(o)) => o,
        Ok(None) => return PageError::NotFound.into_response(),
        Err(e) => return PageError::from(e).into_response(),
    };
    let key = pending.organization.key.to_string();
    match take(&s, &op, pending, &f).await {
        Ok(()) => {
            tracing::info!(organization = %key, decision = %f.decision, "organization decided");
            let done = form_urlencoded::Serializer::new(String::new()).append_pair("done", &key).finish();
            Redirect::to(&format!("{PAGE}?{done}")).into_response()
        }
        Err(Refused(message, status)) => {
            with_status(view(&s, &session, &op, String::new(), Some((key.as_str(), message.as_str()))).await, status)
        }
    }
}
