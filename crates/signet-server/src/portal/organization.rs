//! The enrollment wizard: step 4, organization (search, pick, or register a new one).

use super::*;

#[derive(Template)]
#[template(path = "apply/organization.html")]
pub(super) struct OrganizationPage {
    f: Frame,
    name_max: usize,
    query: String,
    found: Vec<String>,
    searched: bool,
    chosen: String,
    new_name: String,
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(super) async fn organization_page(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<SearchQuery>,
) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(3) {
        return r;
    }
    let found = if q.q.trim().is_empty() {
        Vec::new()
    } else {
        match s.store.search_organizations(&q.q, 20).await {
            Ok(orgs) => orgs.into_iter().map(|o| o.name.as_str().to_owned()).collect(),
            Err(e) => return PageError::from(e).into_response(),
        }
    };
    let page = OrganizationPage {
        f: Frame::new(&session, 3, Errors::new()),
        name_max: NAME_MAX,
        searched: !q.q.trim().is_empty(),
        query: q.q,
        found,
        chosen: draft.organization,
        new_name: String::new(),
    };
    render(&page)
}

#[derive(Deserialize)]
pub(super) struct OrganizationForm {
    #[serde(default)]
    choose: String,
    #[serde(default)]
    new_name: String,
}

pub(super) async fn organization_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<OrganizationForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(3) {
        return r;
    }
    let outcome = if !form.choose.trim().is_empty() {
        if form.choose == draft.organization {
            // This draft's own new organization, shown as chosen when the applicant comes back.
            Ok(draft.organization.clone())
        } else {
            choose_organization(&s, &form.choose).await
        }
    } else {
        new_organization(&s, &form.new_name).await
    };
    match outcome {
        Ok(name) => {
            draft.organization = name;
            if let Err(e) = session.save_data(&draft).await {
                return e.into_response();
            }
            next(3)
        }
        Err(OrgProblem::Page(e)) => e.into_response(),
        Err(OrgProblem::Field(field, message, found)) => {
            let page = OrganizationPage {
                f: Frame::new(&session, 3, Errors::from([(field, message)])),
                name_max: NAME_MAX,
                query: form.new_name.clone(),
                searched: !found.is_empty(),
                found,
                chosen: form.choose,
                new_name: form.new_name,
            };
            invalid(&page)
        }
    }
}

pub(super) enum OrgProblem {
    /// A field is wrong: (field, message, organizations to offer instead).
    Field(&'static str, String, Vec<String>),
    Page(PageError),
}

impl From<StoreError> for OrgProblem {
    fn from(e: StoreError) -> Self {
        Self::Page(e.into())
    }
}

/// An existing organization, by the exact name the search offered.
pub(super) async fn choose_organization(s: &AppState, name: &str) -> Result<String, OrgProblem> {
    let parsed = parse_organization(name).map_err(|m| OrgProblem::Field("choose", m, Vec::new()))?;
    let found = s.store.find_organizations(&OrganizationKey::of(&parsed)).await?;
    found.into_iter().next().map(|o| o.name.as_str().to_owned()).ok_or_else(|| {
        OrgProblem::Field("choose", "That organization is not registered; search again or register it.".into(), vec![])
    })
}

/// A new organization for this draft, checked (its name, and that it does not fold to one
/// the RA confirmed, which is offered instead) but not registered: an unfinished draft must not
/// put names before other applicants. It is registered when the application is submitted, and
/// offered to others once the RA confirms it. A spelling another applicant registered and the
/// RA has not confirmed yet is taken as new here, so that nothing unconfirmed is revealed.
pub(super) async fn new_organization(s: &AppState, name: &str) -> Result<String, OrgProblem> {
    if name.trim().is_empty() {
        return Err(OrgProblem::Field(
            "new_name",
            "Choose your organization from the search results, or enter its legal name to register it.".into(),
            Vec::new(),
        ));
    }
    let parsed = parse_organization(name).map_err(|m| OrgProblem::Field("new_name", m, Vec::new()))?;
    let existing = s.store.find_organizations(&OrganizationKey::of(&parsed)).await?;
    if !existing.is_empty() {
        let names: Vec<String> = existing.iter().map(|o| o.name.as_str().to_owned()).collect();
        return Err(OrgProblem::Field(
            "new_name",
            format!("{} is already registered. Choose it below instead of registering it again.", names.join(", ")),
            names,
        ));
    }
    Ok(parsed.as_str().to_owned())
}

/// Registers a submitted application's organization (audited), pending the RA's decision, if
/// it is new, so that once confirmed the next applicant from the same company finds it. The
/// application stands whatever happens here: the register only helps others pick the same
/// spelling.
pub(super) async fn register_organization(s: &AppState, name: &OrganizationName) {
    let registered = match s.store.find_organizations(&OrganizationKey::of(name)).await {
        Ok(found) if !found.is_empty() => return,
        Ok(_) => {
            let organization = Organization::new(name.clone());
            let audit = organization.created_event(s.clock.now(), &Actor::Applicant);
            s.store.create_organization(&organization, audit).await
        }
        Err(e) => Err(e),
    };
    match registered {
        // Another applicant registered it first (pending or decided: the RA sees it either way).
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, "could not register a submitted application's organization"),
    }
}
