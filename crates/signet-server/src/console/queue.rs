//! The operator console: queue.

use super::*;

/// What the state filter offers: the three groups, then each state.
pub(super) fn state_options() -> Vec<(&'static str, &'static str)> {
    let groups = [("open", "Open (vetting queue)"), ("closed", "Closed"), ("all", "All")];
    groups.into_iter().chain(signet_ra::application::ALL_STATE_NAMES.iter().map(|n| (*n, *n))).collect()
}

/// The certificate types people apply for (not device types), as (id, name).
pub(super) fn subscriber_types(s: &AppState) -> Vec<(String, String)> {
    s.catalog
        .types()
        .iter()
        .filter(|t| s.catalog.profiles().any(|p| p.cert_type.id == t.id && p.subject == SubjectKind::Person))
        .map(|t| (t.id.clone(), t.name.clone()))
        .collect()
}

/// An open application's deadline in words and whether it is close enough to flag.
pub(super) fn deadline_of(s: &AppState, app: &Application) -> Option<(vetting::Deadline, i64, bool)> {
    let d = vetting::deadline(app, &s.deadlines)?;
    let days = d.days_left(s.clock.now().date());
    Some((d, days, days <= FLAG_DAYS))
}

pub(super) fn days_text(days: i64) -> String {
    match days {
        d if d < 0 => format!("passed {} day{} ago", -d, if d == -1 { "" } else { "s" }),
        0 => "last day".to_owned(),
        1 => "1 day".to_owned(),
        d => format!("{d} days"),
    }
}

pub(super) struct QueueRow {
    reference: String,
    applicant: String,
    email: String,
    organization: String,
    type_name: String,
    state: &'static str,
    days_left: String,
    flag: bool,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
pub(super) struct QueuePage {
    nav: Nav,
    rows: Vec<QueueRow>,
    state: String,
    program: String,
    cert_type: String,
    q: String,
    states: Vec<(&'static str, &'static str)>,
    programs: Vec<(String, String)>,
    types: Vec<(String, String)>,
    page: u32,
    previous: String,
    next: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct QueueQuery {
    state: String,
    program: String,
    #[serde(rename = "type")]
    cert_type: String,
    q: String,
    page: String,
}

impl QueueQuery {
    /// The link to page `page` of the same filter.
    fn link(&self, page: u32) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("state", &self.state)
            .append_pair("program", &self.program)
            .append_pair("type", &self.cert_type)
            .append_pair("q", &self.q)
            .append_pair("page", &page.to_string())
            .finish();
        format!("/console?{query}")
    }
}

pub(super) async fn queue(State(s): State<AppState>, mut session: Session, Query(q): Query<QueueQuery>) -> Response {
    let op = match signed_in(&s, &mut session, Permission::VetApplications).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let Some(states) = StateFilter::parse(&q.state) else {
        return PageError::BadRequest("Choose a state from the list.".into()).into_response();
    };
    let page = if q.page.is_empty() { Ok(1) } else { q.page.parse::<u32>() };
    let Some(page) = page.ok().filter(|p| *p >= 1) else {
        return PageError::BadRequest("The page number must be 1 or more.".into()).into_response();
    };
    let some = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let filter = QueueFilter { states, program: some(&q.program), cert_type: some(&q.cert_type), text: some(&q.q) };
    let found = match s.store.application_queue(&filter, u64::from(page - 1) * u64::from(PAGE_SIZE), PAGE_SIZE).await {
        Ok(found) => found,
        Err(e) => return PageError::from(e).into_response(),
    };
    let rows = found
        .applications
        .iter()
        .map(|app| {
            let form = app.form();
            let deadline = deadline_of(&s, app);
            QueueRow {
                reference: app.id().as_str().to_owned(),
                applicant: form.applicant.name.as_str().to_owned(),
                email: form.applicant.email.as_str().to_owned(),
                organization: form.organization.as_str().to_owned(),
                type_name: s.type_name(form.certificate.cert_type()),
                state: app.state().state_name(),
                days_left: deadline.map_or_else(|| "—".to_owned(), |(_, days, _)| days_text(days)),
                flag: deadline.is_some_and(|(_, _, flag)| flag),
            }
        })
        .collect();
    render(&QueuePage {
        nav: Nav::new(&session, &op),
        rows,
        state: states.as_str().to_owned(),
        states: state_options(),
        programs: s.agencies.programs().iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
        types: subscriber_types(&s),
        page,
        previous: if page > 1 { q.link(page - 1) } else { String::new() },
        next: if found.more { q.link(page + 1) } else { String::new() },
        program: q.program,
        cert_type: q.cert_type,
        q: q.q,
    })
}
