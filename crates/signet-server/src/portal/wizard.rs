//! The enrollment wizard: step 2, the Certificate Selection Wizard.

use super::*;

#[derive(Template)]
#[template(path = "apply/agencies.html")]
pub(super) struct AgenciesPage {
    f: Frame,
    /// (id, name, checked)
    agencies: Vec<(String, String, bool)>,
    /// The partner link's program, when it needs agencies.
    program_name: String,
    /// The names of the agencies the program needs.
    program_agencies: Vec<String>,
    /// "I will not use <program>" is ticked.
    dropped: bool,
}

pub(super) async fn agencies_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(1) {
        return r;
    }
    render(&agencies_view(&s, &session, &draft, &draft.agencies, draft.program_dropped, Errors::new()))
}

pub(super) fn agencies_view(
    s: &AppState,
    session: &Session,
    draft: &Draft,
    chosen: &[String],
    dropped: bool,
    errors: Errors,
) -> AgenciesPage {
    let program = s.agencies.program(&draft.program).ok();
    let needed: Vec<String> = program
        .as_ref()
        .map(|p| {
            s.agencies
                .program_agencies(p)
                .iter()
                .filter_map(|id| s.agencies.agency(id))
                .map(|a| a.name.clone())
                .collect()
        })
        .unwrap_or_default();
    AgenciesPage {
        f: Frame::new(session, 1, errors),
        agencies: s
            .agencies
            .agencies()
            .iter()
            .map(|a| (a.id.clone(), a.name.clone(), chosen.contains(&a.id)))
            .collect(),
        program_name: match (&program, needed.is_empty()) {
            (Some(p), false) => s.agencies.program_name(p),
            _ => String::new(),
        },
        program_agencies: needed,
        dropped,
    }
}

pub(super) async fn agencies_post(
    State(s): State<AppState>,
    mut session: Session,
    body: axum::body::Bytes,
) -> Response {
    // Checkboxes repeat the field name, which a struct cannot take; read the pairs directly.
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let chosen: Vec<String> = pairs.iter().filter(|(k, _)| k == "agency").map(|(_, v)| v.clone()).collect();
    let dropped = pairs.iter().any(|(k, v)| k == "drop_program" && v == "yes");
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(1) {
        return r;
    }
    let refuse = |field: &'static str, message: String| {
        invalid(&agencies_view(&s, &session, &draft, &chosen, dropped, Errors::from([(field, message)])))
    };
    let ids: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let selection = match s.agencies.select(&ids) {
        Ok(sel) => sel,
        Err(_) => return refuse("agency", "Choose agencies from the list only.".into()),
    };
    if selection.is_empty() {
        return refuse("agency", selection.message());
    }
    if let Ok(program) = s.agencies.program(&draft.program) {
        let left_out = s.agencies.program_agencies_left_out(&program, &chosen);
        if !left_out.is_empty() && !dropped {
            let names: Vec<&str> = left_out.iter().map(|a| a.name.as_str()).collect();
            let program = s.agencies.program_name(&program);
            return refuse(
                "drop_program",
                format!(
                    "{program} users need {}. Tick it again, or tick \"I will not use {program}\" if this \
                     certificate is not for {program}.",
                    names.join(" and ")
                ),
            );
        }
    }
    draft.agencies = chosen;
    draft.program_dropped = dropped;
    draft.agencies_done = true;
    if !selection.allows(&draft.cert_type) {
        draft.cert_type.clear();
    }
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(1)
}
