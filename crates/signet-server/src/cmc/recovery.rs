//! The Certificate Management Center: recovery questions and the recovery path.

use super::*;

#[derive(Template)]
#[template(path = "cmc/questions.html")]
pub(super) struct QuestionsPage {
    csrf: String,
    questions: Vec<(usize, &'static str)>,
    /// (slot, the question chosen in it).
    slots: Vec<(usize, usize)>,
    error: String,
}

pub(super) fn questions_view(session: &Session, chosen: Vec<usize>, error: &str) -> Response {
    let page = QuestionsPage {
        csrf: session.csrf().to_owned(),
        questions: RECOVERY_QUESTIONS.iter().copied().enumerate().collect(),
        slots: chosen.into_iter().enumerate().collect(),
        error: error.to_owned(),
    };
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    with_status(render(&page), status)
}

pub(super) async fn questions_page(session: Session) -> Response {
    if signed_in(&session).is_none() {
        return to_sign_in();
    }
    questions_view(&session, (0..RECOVERY_QUESTION_COUNT).collect(), "")
}

#[derive(Deserialize)]
pub(super) struct QuestionsForm {
    #[serde(default)]
    question_0: String,
    #[serde(default)]
    answer_0: String,
    #[serde(default)]
    question_1: String,
    #[serde(default)]
    answer_1: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

#[tracing::instrument(skip_all)]
pub(super) async fn questions_post(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<QuestionsForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    questions_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn questions_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: QuestionsForm,
) -> Result<Response, PageError> {
    let index = |q: &str| q.parse::<usize>().unwrap_or(usize::MAX);
    let chosen = vec![index(&form.question_0), index(&form.question_1)];
    if let Some(refused) = confirm(s, session, id, &form.factor, "set-recovery-questions").await? {
        return Ok(questions_view(session, chosen, &refused));
    }
    let picked = [(chosen[0], form.answer_0), (chosen[1], form.answer_1)];
    let hashed = s
        .hashing
        .run(move |_| cmc::recovery_questions(&picked.iter().map(|(q, a)| (*q, a.as_str())).collect::<Vec<_>>()))
        .await?;
    let questions = match hashed {
        Ok(q) => q,
        Err(e) => return Ok(questions_view(session, chosen, &e.to_string())),
    };
    let event = signet_ra::audit::AuditEvent::new(
        s.clock.now(),
        &cmc::actor(id),
        signet_ra::audit::AuditAction::RecoveryQuestionsSet,
        id.as_str(),
        serde_json::json!({ "questions": chosen }),
    );
    s.store.set_recovery_questions(id, &questions, event).await?;
    home_view(s, session, id, Outcome { notice: "Your recovery questions are saved.".into(), ..Outcome::default() })
        .await
}

#[derive(Template)]
#[template(path = "cmc/recover.html")]
pub(super) struct RecoverPage {
    csrf: String,
    reference: String,
    /// Empty on the first step; the questions to answer on the second.
    questions: Vec<&'static str>,
    error: String,
}

pub(super) fn recover_view(
    session: &Session,
    reference: &str,
    questions: Vec<&'static str>,
    error: &str,
    status: StatusCode,
) -> Response {
    let page = RecoverPage {
        csrf: session.csrf().to_owned(),
        reference: reference.to_owned(),
        questions,
        error: error.to_owned(),
    };
    with_status(render(&page), status)
}

pub(super) async fn recover_page(session: Session) -> Response {
    recover_view(&session, "", Vec::new(), "", StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct RecoverForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    password: String,
}

/// Step one of recovery: the account password (counted like a sign-in's) leads to the
/// questions. An account without questions gets the same refusal as a wrong password, so the
/// page tells a guesser nothing.
#[tracing::instrument(skip_all)]
pub(super) async fn recover_password(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<RecoverForm>,
) -> Response {
    let (subject, id) = subject_of(&form.reference);
    let password_ok = match password_matches::<PageError>(&s, id.as_ref(), form.password).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let now = s.clock.now();
    let checked = cmc::check_recovery_password(&s.store, &subject, id.as_ref(), password_ok, now).await;
    let questions = match (checked, id) {
        (Ok(questions), Some(id)) if !questions.is_empty() => (questions, id),
        (Ok(_), _) => {
            return recover_view(&session, &form.reference, Vec::new(), lockout::REFUSED, StatusCode::UNAUTHORIZED);
        }
        (Err(e), _) => {
            return match refusal(e, s.clock.now()) {
                Ok((message, status)) => recover_view(&session, &form.reference, Vec::new(), &message, status),
                Err(e) => e.into_response(),
            };
        }
    };
    let (questions, id) = questions;
    if let Err(e) = session.become_principal(Principal::Recovering(id.as_str().to_owned())).await {
        return e.into_response();
    }
    recover_view(&session, id.as_str(), questions.iter().map(|q| q.text()).collect(), "", StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct AnswersForm {
    #[serde(default)]
    answer_0: String,
    #[serde(default)]
    answer_1: String,
}

/// Step two: right answers remove the account's soft tokens; the subscriber enrolls a new one.
#[tracing::instrument(skip_all)]
pub(super) async fn recover_answers(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<AnswersForm>,
) -> Response {
    let Principal::Recovering(reference) = session.principal() else {
        return Redirect::to("/cmc/recover").into_response();
    };
    let Ok(id) = ApplicationId::new(&reference) else { return Redirect::to("/cmc/recover").into_response() };
    let now = s.clock.now();
    match cmc::recover(&s.store, &id, vec![form.answer_0, form.answer_1], now).await {
        Ok(()) => {
            tracing::info!(account = %id, "soft token recovered by the recovery questions");
            if let Err(e) = session.become_principal(Principal::Enrolling(id.as_str().to_owned())).await {
                return e.into_response();
            }
            Redirect::to("/cmc/soft-token").into_response()
        }
        Err(e) => match refusal(e, s.clock.now()) {
            Ok((message, status)) => {
                let questions = match s.store.recovery_questions(&id).await {
                    Ok(q) => q.iter().map(|q| q.text()).collect(),
                    Err(e) => return PageError::from(e).into_response(),
                };
                recover_view(&session, id.as_str(), questions, &message, status)
            }
            Err(e) => e.into_response(),
        },
    }
}
