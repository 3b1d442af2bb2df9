//! Password reset pages (the rules are `signet_ra::password_reset`): `/password-reset`
//! asks for the account's email address and always answers the same; the emailed link opens
//! `/password-reset/new?token=…`, where the new password is chosen. The link carries its token
//! in the query string, which the request log leaves out (see `lib.rs`), and the page posts it
//! back in the form body.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use signet_pki::subject::Email;
use signet_ra::application::PasswordHash;
use signet_ra::password_reset::{self, LinkRefused, PasswordResetStore, ResetLink, ResetToken};
use time::Duration;

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Session, render, with_status};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/password-reset", get(request_page).post(request_post))
        .route("/password-reset/new", get(new_password_page).post(new_password_post))
}

#[derive(Template)]
#[template(path = "password_reset.html")]
struct RequestPage {
    csrf: String,
    email: String,
    error: String,
    sent: bool,
}

#[derive(Deserialize, Default)]
struct RequestForm {
    #[serde(default)]
    email: String,
}

async fn request_page(session: Session) -> Response {
    render(&RequestPage { csrf: session.csrf().to_owned(), email: String::new(), error: String::new(), sent: false })
}

#[tracing::instrument(skip_all)]
async fn request_post(State(s): State<AppState>, session: Session, Form(form): Form<RequestForm>) -> Response {
    let page = |email: &str, error: String, sent| RequestPage {
        csrf: session.csrf().to_owned(),
        email: email.to_owned(),
        error,
        sent,
    };
    let Ok(email) = Email::new(form.email.trim()) else {
        let error = "Enter the email address you applied with, like name@example.com.".to_owned();
        return with_status(render(&page(&form.email, error, false)), StatusCode::UNPROCESSABLE_ENTITY);
    };
    match send_links(&s, &email).await {
        // The same page whether or not the address has accounts, and whether or not the hourly
        // limit held a link back.
        Ok(()) => render(&page(form.email.trim(), String::new(), true)),
        Err(e) => e.into_response(),
    }
}

/// Emails a link to each account under `email` that has not had its hourly share.
async fn send_links(s: &AppState, email: &Email) -> Result<(), PageError> {
    let now = s.clock.now();
    for (account, stored_email) in s.store.accounts_with_email(email).await? {
        let recent = s.store.links_sent_since(&account, now - Duration::hours(1)).await?;
        if !password_reset::may_send(recent) {
            tracing::info!(%account, "password reset link not sent: hourly limit reached");
            continue;
        }
        let (link, token) = ResetLink::issue(account, stored_email, now);
        let message = s.notifier.password_reset(&link, &token);
        s.store.create_link(&link, &message, link.requested_event()).await?;
        tracing::info!(account = %link.account, "password reset link queued");
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "password_reset_new.html")]
struct NewPasswordPage {
    csrf: String,
    token: String,
    account: String,
    problems: Vec<String>,
    /// Why the link does not work; the form is not shown.
    refused: String,
    done: bool,
}

#[derive(Deserialize, Default)]
struct NewPasswordForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    again: String,
}

/// The link's record if it still works, else the page saying it does not.
async fn open_link(s: &AppState, session: &Session, token: &str) -> Result<Result<ResetLink, Response>, PageError> {
    let link = match ResetToken::parse(token) {
        Some(token) => s.store.link(&token.digest()).await?,
        None => None,
    };
    let checked = link.ok_or(LinkRefused::Used).and_then(|l| l.check(s.clock.now()).map(|()| l));
    Ok(checked.map_err(|refused| {
        let page = NewPasswordPage {
            csrf: session.csrf().to_owned(),
            token: String::new(),
            account: String::new(),
            problems: Vec::new(),
            refused: refused.to_string(),
            done: false,
        };
        with_status(render(&page), StatusCode::GONE)
    }))
}

/// The link opens a form rather than acting on GET: mail scanners that prefetch links must
/// not spend them.
async fn new_password_page(State(s): State<AppState>, session: Session, Query(q): Query<NewPasswordForm>) -> Response {
    match open_link(&s, &session, &q.token).await {
        Ok(Ok(link)) => render(&NewPasswordPage {
            csrf: session.csrf().to_owned(),
            token: q.token.trim().to_owned(),
            account: link.account.as_str().to_owned(),
            problems: Vec::new(),
            refused: String::new(),
            done: false,
        }),
        Ok(Err(refused)) => refused,
        Err(e) => e.into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn new_password_post(State(s): State<AppState>, session: Session, Form(form): Form<NewPasswordForm>) -> Response {
    new_password_inner(&s, &session, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn new_password_inner(s: &AppState, session: &Session, form: NewPasswordForm) -> Result<Response, PageError> {
    let link = match open_link(s, session, &form.token).await? {
        Ok(link) => link,
        Err(refused) => return Ok(refused),
    };
    let page = |problems: Vec<String>, done| NewPasswordPage {
        csrf: session.csrf().to_owned(),
        token: if done { String::new() } else { form.token.trim().to_owned() },
        account: link.account.as_str().to_owned(),
        problems,
        refused: String::new(),
        done,
    };
    let password = match password_reset::new_password(&link, &form.password, &form.again) {
        Ok(p) => p,
        Err(problems) => return Ok(with_status(render(&page(problems, false)), StatusCode::UNPROCESSABLE_ENTITY)),
    };
    let hash = s
        .hashing
        .run(move |memory| PasswordHash::new_in(&password, memory))
        .await?
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let now = s.clock.now();
    // The same transaction forgets the account's failed sign-ins and retrievals: whoever holds
    // the mailbox chose this password (`password_reset::LIFTED_LOCKOUTS`).
    match s.store.use_link(&link, &hash, link.changed_event(now), now).await {
        Ok(()) => {}
        // Used by a concurrent request between the check and now.
        Err(signet_ra::issuance::StoreError::Conflict(_)) => {
            return Ok(with_status(
                render(&NewPasswordPage { refused: LinkRefused::Used.to_string(), ..page(Vec::new(), false) }),
                StatusCode::GONE,
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(account = %link.account, "password changed through a reset link");
    Ok(render(&page(Vec::new(), true)))
}
