//! The RA-facing JSON API (`/api/v1`): the RA instructs the CA to issue and revoke.
//! Callers authenticate with an operator API key (`Authorization: Bearer …`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use signet_pki::issue::CertificateOrder;
use signet_pki::subject::Subject;
use signet_pki::{RevocationReason, Serial, to_pem};
use signet_ra::issuance::{Revoked, StoredStatus};
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/profiles", get(profiles))
        .route("/api/v1/certificates", post(issue))
        .route("/api/v1/certificates/{serial}", get(certificate))
        .route("/api/v1/certificates/{serial}/revoke", post(revoke))
}

/// The SHA-256 (hex) under which an API token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()))
}

/// An authenticated operator.
#[derive(Debug)]
pub struct Operator {
    /// Key name: the audit actor.
    pub name: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        // Tokens are 256-bit random, so a lookup by hash leaks nothing useful through timing
        // and needs no constant-time comparison of the token itself.
        let key = state
            .api_keys
            .find(&state.store, state.clock(), &token_hash(token.trim()))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Operator { name: format!("api:{}", key.name) })
    }
}

#[derive(Debug, Serialize)]
struct ProfileView {
    id: String,
    certificate_type: String,
    policy_oid: String,
    usage: String,
    validity_years: Vec<u8>,
}

async fn profiles(State(state): State<AppState>) -> Json<Vec<ProfileView>> {
    Json(
        state
            .catalog
            .profiles()
            .map(|p| ProfileView {
                id: p.id.clone(),
                certificate_type: p.cert_type.name.clone(),
                policy_oid: p.cert_type.policy.to_string(),
                usage: p.usage.clone(),
                validity_years: p.validity_years.clone(),
            })
            .collect(),
    )
}

/// Body of `POST /api/v1/certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Profile id.
    pub profile: String,
    /// Vetted subject.
    pub subject: Subject,
    /// 1, 2 or 3.
    pub validity_years: u8,
    /// PKCS#10, PEM.
    pub csr: String,
}

#[derive(Debug, Serialize)]
struct CertificateView {
    serial: String,
    profile: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_reason: Option<&'static str>,
    certificate: String,
    chain: String,
}

/// A binary field of a JSON request, in standard base64 (as `signet token` sends CSRs and
/// proofs); `detail` says which field is wrong.
pub(crate) fn base64_field(text: &str, kind: &'static str, detail: &'static str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::BadRequest { kind, detail: detail.into() })
}

fn view(state: &AppState, serial: &Serial, profile: String, der: &[u8], status: &StoredStatus) -> CertificateView {
    let (status, revoked_at, revocation_reason) = match status {
        StoredStatus::Revoked { at, reason } => ("revoked", at.format(&Rfc3339).ok(), Some(reason.name())),
        _ => ("good", None, None),
    };
    CertificateView {
        serial: serial.to_hex(),
        profile,
        status,
        revoked_at,
        revocation_reason,
        certificate: to_pem("CERTIFICATE", der),
        chain: state.certificates.chain_pem(),
    }
}

#[tracing::instrument(skip_all, fields(operator = %op.name))]
async fn issue(
    State(state): State<AppState>,
    op: Operator,
    body: Result<Json<IssueRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CertificateView>), ApiError> {
    let Json(req) = body?;
    let order = CertificateOrder { profile: req.profile, subject: req.subject, validity_years: req.validity_years };
    let cert = state.issue(&op.name, &order, req.csr.as_bytes()).await?;
    tracing::info!(serial = %cert.serial, profile = %order.profile, "certificate issued");
    Ok((StatusCode::CREATED, Json(view(&state, &cert.serial, order.profile, &cert.der, &StoredStatus::Good))))
}

fn parse_serial(s: &str) -> Result<Serial, ApiError> {
    Serial::from_hex(s).map_err(|e| ApiError::BadRequest { kind: "bad-serial", detail: e.to_string() })
}

#[tracing::instrument(skip_all, fields(operator = %_op.name))]
async fn certificate(
    State(state): State<AppState>,
    _op: Operator,
    Path(serial): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let serial = parse_serial(&serial)?;
    let rec = state
        .store
        .certificate(&serial)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no issued certificate has serial {serial}")))?;
    Ok(Json(view(&state, &serial, rec.profile, &rec.der, &rec.status)))
}

/// Body of `POST /api/v1/certificates/{serial}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// RFC 5280 reason name, e.g. `keyCompromise`.
    pub reason: RevocationReason,
}

#[derive(Debug, Serialize)]
struct RevokeView {
    serial: String,
    status: &'static str,
    already_revoked: bool,
}

#[tracing::instrument(skip_all, fields(operator = %op.name))]
async fn revoke(
    State(state): State<AppState>,
    op: Operator,
    Path(serial): Path<String>,
    body: Result<Json<RevokeRequest>, JsonRejection>,
) -> Result<Json<RevokeView>, ApiError> {
    let serial = parse_serial(&serial)?;
    let Json(req) = body?;
    let outcome = state.revoke(&op.name, &serial, req.reason).await?;
    tracing::info!(%serial, reason = req.reason.name(), "certificate revoked");
    Ok(Json(RevokeView { serial: serial.to_hex(), status: "revoked", already_revoked: outcome == Revoked::Already }))
}
