//! The one place where errors become HTTP: RFC 9457 problem+json for the API. Internal
//! failures are logged with their cause and shown to clients only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signet_ra::issuance::{IssuanceError, RevocationError, StoreError};

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
    /// Something broke on our side; the cause is logged, not shown.
    Internal(String),
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
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
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

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::BadRequest { kind: "bad-json", detail: e.body_text() }
    }
}
