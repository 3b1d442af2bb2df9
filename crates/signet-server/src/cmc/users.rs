//! The Certificate Management Center: the enterprise account's users.

use super::*;

/// What a subscriber who does not manage the organization's devices is told.
pub(super) const NOT_A_USER: &str = "Only users of your organization's enterprise account manage its devices. Ask one of them \
     to add you under Users; the RA adds the first one.";

/// Whether `id` manages `organization`'s devices: a user of its enterprise account who still
/// holds a valid identity certificate (a revoked or expired one ends the vetting it stood for).
pub(super) async fn is_enterprise_user(
    s: &AppState,
    id: &ApplicationId,
    organization: &OrganizationName,
) -> Result<bool, PageError> {
    manages_devices(s, id, &s.store.enterprise_users(&OrganizationKey::of(organization)).await?).await
}

/// [`is_enterprise_user`] with the organization's users already loaded.
pub(super) async fn manages_devices(
    s: &AppState,
    id: &ApplicationId,
    users: &[EnterpriseUser],
) -> Result<bool, PageError> {
    Ok(users.iter().any(|u| &u.account == id) && s.store.holds_identity_certificate(id, s.clock.now()).await?)
}

#[derive(Template)]
#[template(path = "cmc/users.html")]
pub(super) struct UsersPage {
    csrf: String,
    organization: String,
    is_user: bool,
    /// (reference, name, added by, added on)
    users: Vec<(String, String, String, String)>,
    reference: String,
    notice: String,
    error: String,
}

#[derive(Deserialize, Default)]
pub(super) struct UsersForm {
    #[serde(default)]
    reference: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

pub(super) async fn users_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    reference: &str,
    notice: &str,
    error: &str,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = app.form().organization.clone();
    let listed = s.store.enterprise_users(&OrganizationKey::of(&organization)).await?;
    let is_user = manages_devices(s, id, &listed).await?;
    let mut users = Vec::new();
    for u in listed {
        let name = s.store.load(&u.account).await?.map(|a| a.form().applicant.name.as_str().to_owned());
        users.push((u.account.as_str().to_owned(), name.unwrap_or_default(), u.added_by, day(u.added_at)));
    }
    let page = UsersPage {
        csrf: session.csrf().to_owned(),
        organization: organization.as_str().to_owned(),
        is_user,
        users,
        reference: reference.to_owned(),
        notice: notice.to_owned(),
        error: error.to_owned(),
    };
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

pub(super) async fn users_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    users_view(&s, &session, &id, "", "", "").await.unwrap_or_else(IntoResponse::into_response)
}

#[tracing::instrument(skip_all)]
pub(super) async fn users_post(State(s): State<AppState>, session: Session, Form(form): Form<UsersForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    users_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn users_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: UsersForm,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = OrganizationKey::of(&app.form().organization);
    let users = s.store.enterprise_users(&organization).await?;
    let typed = form.reference.trim();
    if !manages_devices(s, id, &users).await? {
        return users_view(s, session, id, typed, "", NOT_A_USER).await;
    }
    let candidate = ApplicationId::new(typed).ok();
    let account = match s.check_enterprise_candidate(&organization, candidate.as_ref()).await {
        Ok(()) => {
            candidate.ok_or_else(|| PageError::Internal("a candidate passed the check without a reference".into()))?
        }
        Err(EnterpriseFailure::Refused(refused)) => {
            return users_view(s, session, id, typed, "", &sentence(&refused)).await;
        }
        Err(EnterpriseFailure::Store(e)) => return Err(e.into()),
    };
    if let Some(refused) = confirm(s, session, id, &form.factor, "add-enterprise-user").await? {
        return users_view(s, session, id, typed, "", &refused).await;
    }
    let user = match s.add_enterprise_user(organization, account, &cmc::actor(id)).await {
        Ok(user) => user,
        Err(EnterpriseFailure::Refused(refused)) => {
            return users_view(s, session, id, typed, "", &sentence(&refused)).await;
        }
        Err(EnterpriseFailure::Store(e)) => return Err(e.into()),
    };
    tracing::info!(account = %id, added = %user.account, "enterprise user added");
    let notice = format!("{} is now a user of your enterprise account.", user.account);
    users_view(s, session, id, "", &notice, "").await
}

/// A refusal as a sentence on the page.
pub(super) fn sentence(refused: &AddUserRefused) -> String {
    let text = refused.to_string();
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}
