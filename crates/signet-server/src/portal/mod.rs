//! The applicant's enrollment wizard (`/apply…`): program and residency, the Certificate
//! Selection Wizard, type and validity with price, organization, personal information,
//! account password, payment, review and submission; and, once the certificates are ready, the
//! applicant's view of their retrieval lock (`/applications/{id}/retrieval`): until when failed
//! retrievals pause it, and a button that allows it again at once.
//!
//! Each step is a plain form (no JavaScript). What a step accepts is kept, as typed, in the
//! session's draft; a step that fails shows the same form again with the values entered and a
//! message beside each wrong field. Submission parses the whole draft into the domain's
//! `ApplicationForm` again, so nothing unchecked reaches the domain however the steps were
//! visited.

mod certificate;
mod organization;
mod password;
mod payment;
mod personal;
mod program;
mod retrieval_lock;
mod review;
mod wizard;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use signet_pki::subject::{Email, OrganizationName};
use signet_ra::application::{
    Actor, Application, ApplicationForm, ApplicationId, ApplicationStore, CardNumber, CertificateChoice,
    FederalProgram, NewPassword, Organization, OrganizationKey, PasswordHash, Payment, PaymentError, PaymentProcessor,
    PoNumber, Residency, TestCardProcessor,
};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{self, AttemptScope, AttemptStore, LockState, Until};
use signet_ra::wizard::{Exclusion, OfferedType};

use crate::apply_fields::{Errors, NAME_MAX, PO_MAX, PersonalFields, parse_organization, po_message};
use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/apply", get(start_page).post(start_post))
        .route("/apply/agencies", get(agencies_page).post(agencies_post))
        .route("/apply/certificate", get(certificate_page).post(certificate_post))
        .route("/apply/organization", get(organization_page).post(organization_post))
        .route("/apply/personal", get(personal_page).post(personal_post))
        .route("/apply/account", get(account_page).post(account_post))
        .route("/apply/payment", get(payment_page).post(payment_post))
        .route("/apply/review", get(review_page).post(review_post))
        .route("/applications/{id}/retrieval", get(retrieval_page).post(retrieval_allow))
}

/// The wizard's steps in order, for the progress list and for sending a visitor who skipped
/// ahead back to the first unfinished one.
const STEPS: [(&str, &str); 8] = [
    ("/apply", "Program"),
    ("/apply/agencies", "Agencies"),
    ("/apply/certificate", "Certificate"),
    ("/apply/organization", "Organization"),
    ("/apply/personal", "Your details"),
    ("/apply/account", "Password"),
    ("/apply/payment", "Payment"),
    ("/apply/review", "Review"),
];

/// What the applicant entered so far, as typed (every value already passed its step's checks).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Draft {
    program: String,
    residency: String,
    agencies_done: bool,
    agencies: Vec<String>,
    /// The applicant ticked "I will not use <program>": the program's agencies may be left out.
    program_dropped: bool,
    cert_type: String,
    /// The applicant ticked that they will not use the certificate for the program, whose
    /// agencies do not accept the chosen type.
    outside_program: bool,
    years: String,
    organization: String,
    personal: PersonalFields,
    /// The Argon2id hash, never the password.
    password_phc: String,
    /// Made at the payment step: a card authorization names the application it pays for.
    reference: String,
    payment: Option<Payment>,
}

impl Draft {
    /// The first step whose data is missing (the review step when all are done).
    fn first_missing(&self) -> usize {
        let done = [
            !self.program.is_empty() && !self.residency.is_empty(),
            self.agencies_done,
            !self.cert_type.is_empty(),
            !self.organization.is_empty(),
            !self.personal.email.is_empty(),
            !self.password_phc.is_empty(),
            self.payment.is_some(),
        ];
        done.iter().position(|d| !d).unwrap_or(STEPS.len() - 1)
    }

    /// A new program: its agencies are chosen again, and nothing said about the old one holds.
    fn take_program(&mut self, s: &AppState, program: &FederalProgram) {
        self.agencies = s.agencies.program_agencies(program).to_vec();
        self.program = program.as_str().to_owned();
        self.program_dropped = false;
        self.outside_program = false;
    }

    /// Redirects to the first unfinished step if `step` comes after it.
    fn guard(&self, step: usize) -> Option<Response> {
        let missing = self.first_missing();
        (missing < step).then(|| Redirect::to(STEPS[missing].0).into_response())
    }
}

/// What every wizard page template shows around its form.
struct Frame {
    csrf: String,
    step: usize,
    errors: Errors,
}

impl Frame {
    fn new(session: &Session, step: usize, errors: Errors) -> Self {
        Self { csrf: session.csrf().to_owned(), step, errors }
    }
    fn err(&self, field: &str) -> &str {
        self.errors.get(field).map(String::as_str).unwrap_or("")
    }
    /// The ids for a field's `aria-describedby`: its hint (stated before anything is typed)
    /// and its error, when it has them.
    fn describe(&self, field: &str, hint: bool) -> String {
        let hint = hint.then(|| format!("{field}-hint"));
        let error = self.errors.contains_key(field).then(|| format!("{field}-error"));
        hint.into_iter().chain(error).collect::<Vec<_>>().join(" ")
    }
    fn steps(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        STEPS
            .iter()
            .enumerate()
            .map(|(i, (path, label))| {
                let class = match i.cmp(&self.step) {
                    std::cmp::Ordering::Less => "done",
                    std::cmp::Ordering::Equal => "current",
                    std::cmp::Ordering::Greater => "",
                };
                (*path, *label, class)
            })
            .collect()
    }
}

/// A form shown again because something in it was wrong: 422 so tools and tests can tell.
fn invalid<T: Template>(page: &T) -> Response {
    let mut r = render(page);
    *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    r
}

fn next(step: usize) -> Response {
    Redirect::to(STEPS[step + 1].0).into_response()
}

use certificate::*;
use organization::*;
use password::*;
use payment::*;
use personal::*;
use program::*;
use retrieval_lock::*;
use review::*;
use wizard::*;
