//! The enrollment wizard: the retrieval lock, as its applicant sees it.

use super::*;

#[derive(Template)]
#[template(path = "retrieval_lock.html")]
pub(super) struct RetrievalLockPage {
    csrf: String,
    reference: String,
    /// When the pause ends, in words; empty when retrieval is not paused.
    paused_until: String,
    /// The applicant just allowed retrieval again.
    cleared: bool,
}

/// The application in the path if this session is signed in to it.
pub(super) fn signed_in_to(session: &Session, id: &str) -> Option<ApplicationId> {
    ApplicationId::new(id).ok().filter(|id| session.principal() == Principal::Applicant(id.as_str().to_owned()))
}

/// What any other session is given: the application's status page, which asks for the password
/// (the same for any reference).
pub(super) fn sign_in_first(id: &str) -> Response {
    match ApplicationId::new(id) {
        Ok(id) => Redirect::to(&format!("/applications/{id}")).into_response(),
        Err(_) => PageError::NotFound.into_response(),
    }
}

pub(super) async fn retrieval_page(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let Some(id) = signed_in_to(&session, &id) else { return sign_in_first(&id) };
    let paused_until = match s.store.check(AttemptScope::ActivationCode, id.as_str(), s.clock.now()).await {
        Ok(LockState::Open) => String::new(),
        Ok(LockState::Locked(Until::Time(t))) => lockout::utc_text(t),
        Ok(LockState::Locked(Until::AdministratorUnlocks)) => "you or the registration authority allow it again".into(),
        Err(e) => return PageError::from(e).into_response(),
    };
    render(&RetrievalLockPage {
        csrf: session.csrf().to_owned(),
        reference: id.as_str().to_owned(),
        paused_until,
        cleared: false,
    })
}

/// The applicant, signed in with the account password, forgets the failed retrievals.
pub(super) async fn retrieval_allow(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let Some(id) = signed_in_to(&session, &id) else { return sign_in_first(&id) };
    match lockout::clear_own_retrieval(&s.store, &id, s.clock.now()).await {
        Ok(cleared) => {
            if cleared {
                tracing::info!(application = %id, "the applicant allowed retrieval again");
            }
            render(&RetrievalLockPage {
                csrf: session.csrf().to_owned(),
                reference: id.as_str().to_owned(),
                paused_until: String::new(),
                cleared,
            })
        }
        Err(e) => PageError::from(e).into_response(),
    }
}
