//! The enrollment wizard: step 1, program and residency.

use super::*;

#[derive(Template)]
#[template(path = "apply/start.html")]
pub(super) struct StartPage {
    f: Frame,
    programs: Vec<(String, String)>,
    program: String,
    residency: String,
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    program: Option<String>,
}

pub(super) async fn start_page(
    State(s): State<AppState>,
    mut session: Session,
    Query(q): Query<StartQuery>,
) -> Response {
    let mut draft: Draft = session.data();
    let mut errors = Errors::new();
    // A partner link pre-fills the program (and its agencies) for a new draft or a changed link.
    if let Some(link) = q.program.filter(|p| !p.trim().is_empty()) {
        match s.agencies.program(&link) {
            Ok(program) if program.as_str() != draft.program => {
                draft.take_program(&s, &program);
                if let Err(e) = session.save_data(&draft).await {
                    return e.into_response();
                }
            }
            Ok(_) => {}
            Err(_) => {
                errors.insert(
                    "program",
                    "The link names a program Signet does not serve. Choose your program from the list.".into(),
                );
            }
        }
    }
    render_start(&s, &session, &draft.program, &draft.residency, errors, false)
}

pub(super) fn render_start(
    s: &AppState,
    session: &Session,
    program: &str,
    residency: &str,
    errors: Errors,
    failed: bool,
) -> Response {
    let page = StartPage {
        f: Frame::new(session, 0, errors),
        programs: s.agencies.programs().iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
        program: program.to_owned(),
        residency: residency.to_owned(),
    };
    if failed { invalid(&page) } else { render(&page) }
}

#[derive(Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    program: String,
    #[serde(default)]
    residency: String,
}

pub(super) async fn start_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<StartForm>,
) -> Response {
    let mut errors = Errors::new();
    let program = match s.agencies.program(&form.program) {
        Ok(p) => Some(p),
        Err(_) => {
            errors.insert("program", "Choose the federal program you are applying under.".into());
            None
        }
    };
    let residency = match form.residency.as_str() {
        "united-states" | "abroad" => form.residency.clone(),
        _ => {
            errors.insert("residency", "Say whether you live in the United States.".into());
            String::new()
        }
    };
    let Some(program) = program.filter(|_| errors.is_empty()) else {
        return render_start(&s, &session, &form.program, &form.residency, errors, true);
    };
    let mut draft: Draft = session.data();
    if draft.program != program.as_str() {
        draft.take_program(&s, &program);
    }
    draft.residency = residency;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(0)
}
