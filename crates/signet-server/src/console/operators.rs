//! The operator console: operators (RA administrators).

use super::*;

pub(super) struct OperatorRow {
    id: String,
    name: String,
    role: &'static str,
    disabled: bool,
    yourself: bool,
    /// (scope name, what the lock says)
    locks: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "console/operators.html")]
pub(super) struct OperatorsPage {
    nav: Nav,
    rows: Vec<OperatorRow>,
    message: String,
}

/// The scopes an operator's sign-in can be locked in.
pub(super) const OPERATOR_SCOPES: [AttemptScope; 1] = [operator::SIGN_IN_SCOPE];

pub(super) async fn operators_view(
    s: &AppState,
    session: &Session,
    admin: &Operator,
    message: String,
) -> Result<Response, PageError> {
    let now = s.clock.now();
    let mut rows = Vec::new();
    for op in s.store.list_operators().await? {
        let mut locks = Vec::new();
        for scope in OPERATOR_SCOPES {
            if let LockState::Locked(until) = s.store.check(scope, op.id.as_str(), now).await? {
                let text = match until {
                    Until::Time(t) => format!("locked until {}", when(t)),
                    Until::AdministratorUnlocks => "locked until cleared".to_owned(),
                };
                locks.push((scope.name(), text));
            }
        }
        rows.push(OperatorRow {
            id: op.id.as_str().to_owned(),
            name: op.display_name.as_str().to_owned(),
            role: match op.role {
                Role::RaAdministrator => "RA administrator",
                Role::RaOperator => "RA operator",
            },
            disabled: op.disabled,
            yourself: op.id == admin.id,
            locks,
        });
    }
    let status = if message.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&OperatorsPage { nav: Nav::new(session, admin), rows, message }), status))
}

pub(super) async fn operators_page(State(s): State<AppState>, mut session: Session) -> Response {
    let admin = match signed_in(&s, &mut session, Permission::ManageOperators).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    operators_view(&s, &session, &admin, String::new()).await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UnlockForm {
    scope: String,
}

#[tracing::instrument(skip_all, fields(operator = %id, action = %action))]
pub(super) async fn operator_post(
    State(s): State<AppState>,
    mut session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<UnlockForm>,
) -> Response {
    let permission = match action.as_str() {
        "disable" | "enable" => Permission::ManageOperators,
        "unlock" => Permission::UnlockLockouts,
        _ => return PageError::NotFound.into_response(),
    };
    let admin = match signed_in(&s, &mut session, permission).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Ok(id) = OperatorId::new(&id) else { return PageError::NotFound.into_response() };
    let now = s.clock.now();
    let done = match action.as_str() {
        // An administrator who disabled their own account could not undo it from the console.
        "disable" if id == admin.id => {
            let message = "You cannot disable your own account; another administrator can.".to_owned();
            return operators_view(&s, &session, &admin, message).await.unwrap_or_else(IntoResponse::into_response);
        }
        "unlock" => match OPERATOR_SCOPES.into_iter().find(|scope| scope.name() == form.scope) {
            Some(scope) => operator::unlock(&s.store, &admin, scope, id.as_str(), now).await,
            None => return PageError::BadRequest("Choose which lock to clear.".into()).into_response(),
        },
        _ => operator::set_disabled(&s.store, &admin, &id, action == "disable", now).await,
    };
    match done {
        Ok(()) => {
            tracing::info!(by = %admin.id, "operator account changed");
            Redirect::to("/console/operators").into_response()
        }
        Err(operator::AdminError::Store(signet_ra::issuance::StoreError::NotFound)) => {
            let message = format!("Nothing to do: {id} has no such lock, or no longer exists.");
            operators_view(&s, &session, &admin, message).await.unwrap_or_else(IntoResponse::into_response)
        }
        Err(operator::AdminError::Operator(_)) => PageError::Forbidden.into_response(),
        Err(e) => PageError::Internal(e.to_string()).into_response(),
    }
}
