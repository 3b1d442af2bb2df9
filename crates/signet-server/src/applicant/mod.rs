//! The applicant's pages after submission: sign-in with the application reference and account
//! password, the status page with the timeline picture, the email verification link, and the
//! pre-filled forms as PDF.

mod email;
mod sign_in;
mod status;

use std::sync::OnceLock;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use signet_authority::CommandFailure;
use signet_ra::application::{
    Actor, Application, ApplicationId, ApplicationStore, Command, HashingBusy, PasswordChecker, PasswordHash,
    VerificationToken,
};
use signet_ra::forms_mail::{FormsMailed, FormsTrail, PaperForm};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::vetting::{self, Carrier, DeadlineKind, Tracking, TrackingNumber};

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render, with_status};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/applications/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/applications/{id}", get(status))
        .route("/applications/{id}/forms/{form}", get(form_pdf))
        .route("/applications/{id}/mailing", post(mailing_post))
        .route("/verify-email", get(verify_page).post(verify_post))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    csrf: String,
    principal: Principal,
}

async fn home(session: Session) -> Response {
    render(&HomePage { csrf: session.csrf().to_owned(), principal: session.principal() })
}

use email::*;
pub(crate) use sign_in::*;
use status::*;
