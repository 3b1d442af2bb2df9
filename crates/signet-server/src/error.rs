//! The one place where errors become HTTP: RFC 9457 problem+json for the API. Internal
//! failures are logged with their cause and shown to clients only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signet_pki::attestation::AttestationError;
use signet_pki::escrow::EscrowError;
use signet_ra::application::HashingBusy;
use signet_ra::issuance::{IssuanceError, RevocationError, StoreError};
use signet_ra::renewal::RenewalRefused;

/// An API failure.
#[derive(Debug)]
pub enum ApiError {
    /// No or unknown credentials.
    Unauthorized,
    /// The request is wrong in a way the client can fix; `kind` is the problem type slug.
    BadRequest { kind: &'static str, detail: String },
    /// No such resource.
    NotFound(String),
    /// The request conflicts with stored state.
    Conflict { kind: &'static str, detail: String },
    /// Secrets typed by a person were refused; `detail` says nothing about which one.
    Forbidden { kind: &'static str, detail: String },
    /// Too many failed attempts locked the subject; `detail` is the lock's message.
    Locked(String),
    /// The request came after its deadline (an expired application).
    Gone { kind: &'static str, detail: String },
    /// The body is larger than the server takes.
    PayloadTooLarge,
    /// This client typed too many secrets too fast; retry after that many seconds.
    TooManyRequests { retry_after: u64 },
    /// Too many password checks are running; retry shortly.
    Busy,
    /// Something broke on our side; the cause is logged, not shown.
    Internal(String),
}

/// Sets `Retry-After` (seconds) on a refusal the client may simply repeat later.
fn retry_after(mut response: Response, seconds: u64) -> Response {
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, detail) = match &self {
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "a valid operator API key is required".to_owned())
            }
            ApiError::BadRequest { kind, detail } => (StatusCode::BAD_REQUEST, *kind, detail.clone()),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "not-found", what.clone()),
            ApiError::Conflict { kind, detail } => (StatusCode::CONFLICT, *kind, detail.clone()),
            ApiError::Forbidden { kind, detail } => (StatusCode::FORBIDDEN, *kind, detail.clone()),
            ApiError::Locked(detail) => (StatusCode::LOCKED, "locked", detail.clone()),
            ApiError::Gone { kind, detail } => (StatusCode::GONE, *kind, detail.clone()),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "the request body is larger than 64 KiB".to_owned())
            }
            ApiError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                format!("too many attempts from this address; try again in {retry_after} seconds"),
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is busy; try again in {} seconds", crate::hashing::RETRY_AFTER_SECONDS),
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the operator has the details in the log".to_owned(),
                )
            }
        };
        let problem = Problem {
            r#type: format!("urn:signet:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: &detail,
        };
        let mut resp = (status, Json(problem)).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        match self {
            ApiError::TooManyRequests { retry_after: s } => retry_after(resp, s),
            ApiError::Busy => retry_after(resp, crate::hashing::RETRY_AFTER_SECONDS),
            _ => resp,
        }
    }
}

impl ApiError {
    /// The detail a person can act on, for a page; `Err` with the cause for failures that stay
    /// internal (logged, never shown).
    pub(crate) fn user_detail(self) -> Result<String, String> {
        match self {
            ApiError::BadRequest { detail, .. }
            | ApiError::Conflict { detail, .. }
            | ApiError::Forbidden { detail, .. }
            | ApiError::Gone { detail, .. }
            | ApiError::NotFound(detail)
            | ApiError::Locked(detail) => Ok(detail),
            ApiError::Unauthorized => Ok("not signed in".to_owned()),
            ApiError::PayloadTooLarge => Ok("the request is too large".to_owned()),
            ApiError::TooManyRequests { retry_after } => {
                Ok(format!("too many attempts from this address; try again in {retry_after} seconds"))
            }
            ApiError::Busy => Ok("the server is busy; try again in a few seconds".to_owned()),
            ApiError::Internal(cause) => Err(cause),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<HashingBusy> for ApiError {
    fn from(_: HashingBusy) -> Self {
        ApiError::Busy
    }
}

impl From<IssuanceError> for ApiError {
    fn from(e: IssuanceError) -> Self {
        use signet_pki::IssueError;
        match e {
            IssuanceError::UnknownProfile(_) => ApiError::BadRequest { kind: "unknown-profile", detail: e.to_string() },
            IssuanceError::Csr(_) => ApiError::BadRequest { kind: "bad-csr", detail: e.to_string() },
            IssuanceError::DuplicateKey => ApiError::Conflict { kind: "duplicate-key", detail: e.to_string() },
            IssuanceError::Order(
                IssueError::SubjectKind { .. }
                | IssueError::Validity { .. }
                | IssueError::NoDnsNames
                | IssueError::OutlivesCa,
            ) => ApiError::BadRequest { kind: "bad-order", detail: e.to_string() },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<RevocationError> for ApiError {
    fn from(e: RevocationError) -> Self {
        match e {
            RevocationError::NotFound(_) => ApiError::NotFound(e.to_string()),
            RevocationError::BadReason => ApiError::BadRequest { kind: "bad-reason", detail: e.to_string() },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<RenewalRefused> for ApiError {
    fn from(e: RenewalRefused) -> Self {
        let detail = e.to_string();
        match e {
            RenewalRefused::Expired { .. } => ApiError::Gone { kind: "expired", detail },
            RenewalRefused::TooEarly { .. } => ApiError::Conflict { kind: "renewal-not-open", detail },
            RenewalRefused::Revoked => ApiError::Conflict { kind: "revoked", detail },
            RenewalRefused::Replaced { .. } => ApiError::Conflict { kind: "already-renewed", detail },
            other => ApiError::Conflict { kind: "not-renewable", detail: other.to_string() },
        }
    }
}

impl From<EscrowError> for ApiError {
    fn from(e: EscrowError) -> Self {
        match e {
            EscrowError::BadPublicKey(_) => ApiError::BadRequest { kind: "bad-transport-key", detail: e.to_string() },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<AttestationError> for ApiError {
    fn from(e: AttestationError) -> Self {
        ApiError::Conflict { kind: "attestation-refused", detail: format!("the key attestation was refused: {e}") }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        // A chunked body passes the limit layer and is cut while the extractor reads it.
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        ApiError::BadRequest { kind: "bad-json", detail: e.body_text() }
    }
}

/// A page failure, shown as a readable page. Validation errors on a form are not page
/// failures: the form is shown again with its values and the messages beside the fields.
#[derive(Debug)]
pub enum PageError {
    /// No such page or record (or not one this session may see: the same answer, so
    /// references cannot be probed).
    NotFound,
    /// The request cannot be understood; the message says what to do.
    BadRequest(String),
    /// The form's CSRF token is missing or stale (an old tab, or a forged post).
    FormExpired,
    /// The signed-in operator's role does not allow this page (an RA operator on an
    /// administrator's page).
    Forbidden,
    /// This client typed too many secrets too fast; retry after that many seconds.
    TooManyRequests { retry_after: u64 },
    /// Too many password checks are running; retry shortly.
    Busy,
    /// Something broke on our side; the cause is logged, not shown.
    Internal(String),
}

#[derive(askama::Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or you are not signed in to see it.".into(),
            ),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m.clone()),
            PageError::FormExpired => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Your session changed since this page was loaded. Go back, reload the page and submit it again.".into(),
            ),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed for your role",
                "Your role does not allow this page. Ask an RA administrator to do it for you.".into(),
            ),
            PageError::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!(
                    "There were too many sign-in attempts from your network. Wait {} and try again.",
                    wait_words(*retry_after)
                ),
            ),
            PageError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy — please try again",
                "The service is very busy right now. Wait a few seconds, then go back and submit the form again."
                    .into(),
            ),
            PageError::Internal(cause) => {
                tracing::error!(%cause, "internal error on a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Nothing you entered was lost; please try again.".into(),
                )
            }
        };
        let page = ErrorPage { title, message: &message };
        let mut response = match askama::Template::render(&page) {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        };
        response.extensions_mut().insert(ErrorPageMark);
        match self {
            PageError::TooManyRequests { retry_after: s } => retry_after(response, s),
            PageError::Busy => retry_after(response, crate::hashing::RETRY_AFTER_SECONDS),
            _ => response,
        }
    }
}

/// "45 seconds", "2 minutes": a wait as a person reads it.
pub(crate) fn wait_words(seconds: u64) -> String {
    match seconds {
        0..=1 => "a second".to_owned(),
        2..=90 => format!("{seconds} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
}

impl From<HashingBusy> for PageError {
    fn from(_: HashingBusy) -> Self {
        PageError::Busy
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Internal(e.to_string())
    }
}

/// Marks the pages of [`PageError`]: they hold no form, so they are sent as they are.
#[derive(Clone, Copy)]
pub(crate) struct ErrorPageMark;
