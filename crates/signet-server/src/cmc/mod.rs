//! The Certificate Management Center (DESIGN §2 "CMC / soft token"): subscribers sign
//! in with the account password and their soft token, enroll or replace the token in two steps,
//! set recovery questions, and — each confirmed with a fresh code (step-up) — revoke, renew, and
//! create device certificates for their organization's registered domains.
//!
//! The rules (token lifecycle, lockouts, step-up, recovery) are in [`signet_ra::cmc`]; this
//! module turns them into pages. Every refusal of a typed secret reads the same
//! ([`lockout::REFUSED`]) whichever secret was wrong.

mod devices;
mod home;
mod passkeys;
mod published;
mod recovery;
mod sign_in;
mod soft_token;
mod users;

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use signet_authority::EnterpriseFailure;
use signet_pki::issue::CertificateOrder;
use signet_pki::profile::{KeyStorage, SubjectKind};
use signet_pki::subject::{DnsName, OrganizationName, Subject};
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::{AcmeStore, EabBinding, EabKey};
use signet_ra::application::{ApplicationId, ApplicationStore, OrganizationKey};
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::cmc::{
    self, CmcAuthError, RECOVERY_QUESTION_COUNT, RECOVERY_QUESTIONS, SignedIn, SoftToken, SoftTokenStore,
};
use signet_ra::enterprise::{AddUserRefused, EnterpriseStore, EnterpriseUser};
use signet_ra::issuance::StoredStatus;
use signet_ra::lockout;
use signet_ra::notify::reason_in_words;
use signet_ra::totp::{Digits, TotpAlgorithm};
use signet_store::AccountCertificate;
use time::OffsetDateTime;

use crate::applicant::password_matches;
use crate::error::{ApiError, PageError};
use crate::renewal::{self, DEVICE_PROFILE};
use crate::state::AppState;
use crate::web::{Principal, Session, render, with_status};

const SIGN_IN: &str = "/cmc/sign-in";
const HOME: &str = "/cmc";
/// The issuer name authenticator apps show beside the account.
const TOTP_ISSUER: &str = "Signet CMC";

/// Reasons a subscriber may give; the others (CA compromise, certificate hold, …) are the CA's.
const SUBSCRIBER_REASONS: [RevocationReason; 5] = [
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::Unspecified,
];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(SIGN_IN, get(sign_in_page).post(sign_in))
        .route("/cmc/sign-out", post(sign_out))
        .route(HOME, get(home))
        .route("/cmc/soft-token", get(soft_token_page).post(soft_token_create))
        .route("/cmc/soft-token/register", post(soft_token_register))
        .route("/cmc/recovery-questions", get(questions_page).post(questions_post))
        .route("/cmc/recover", get(recover_page).post(recover_password))
        .route("/cmc/recover/answers", post(recover_answers))
        .route("/cmc/renewal", get(renewal_guide))
        .route("/cmc/certificates/{serial}", get(certificate_page))
        .route("/cmc/certificates/{serial}/certificate.pem", get(download))
        .route("/cmc/certificates/{serial}/revoke", post(revoke))
        .route("/cmc/certificates/{serial}/revoke-others", post(revoke_others))
        .route("/cmc/certificates/{serial}/renew", post(renew))
        .route("/cmc/devices", get(device_page).post(device_post))
        .route("/cmc/acme-keys", post(acme_key_post))
        .route("/cmc/users", get(users_page).post(users_post))
        .route("/cmc/passkeys", get(passkeys::passkeys_page).post(passkeys::add))
        .route("/cmc/passkeys/{credential}/rename", post(passkeys::rename))
        .route("/cmc/passkeys/{credential}/remove", post(passkeys::remove))
        .route("/cmc/passkeys/remove-soft-token", post(passkeys::remove_soft_token))
        .route(PUBLISHED, get(published_page).post(published_post))
}

fn day(t: OffsetDateTime) -> String {
    t.date().to_string()
}

/// The signed-in subscriber's account; `None` sends the request to [`to_sign_in`].
fn signed_in(session: &Session) -> Option<ApplicationId> {
    match session.principal() {
        Principal::Subscriber(id) => ApplicationId::new(&id).ok(),
        _ => None,
    }
}

fn to_sign_in() -> Response {
    Redirect::to(SIGN_IN).into_response()
}

/// The message and status for a refused typed secret.
fn refusal(e: CmcAuthError, now: OffsetDateTime) -> Result<(String, StatusCode), PageError> {
    match e {
        CmcAuthError::Refused => Ok((lockout::REFUSED.to_owned(), StatusCode::UNAUTHORIZED)),
        CmcAuthError::Locked { until } => Ok((until.message(now), StatusCode::LOCKED)),
        other => Err(PageError::Internal(other.to_string())),
    }
}

use devices::*;
use home::*;
use published::*;
use recovery::*;
use sign_in::*;
use soft_token::*;
use users::*;
