//! Certificate retrieval (DESIGN §2 "Retrieval", issue #4): `POST /api/v1/retrieval`, what
//! `signet token retrieve` calls once it has generated the identity key on the applicant's token.
//!
//! The applicant proves the account with the application reference, the emailed single-use
//! activation code and the account password; the token's key proves possession through the
//! CSR's signature. Five failed attempts lock the application until an administrator unlocks
//! it (`signet admin unlock --scope activation-code --subject <reference>`), and every refusal
//! reads the same, so no answer tells which secret was wrong or whether the reference exists.
//!
//! Order of writes. Issuance ([`signet_ra::issuance::CaService::issue`]) and the application's
//! `Retrieve` transition are separate transactions, so the transition is first checked in
//! memory (code, password, deadline), then the certificate is issued, then the transition is
//! saved — spending the code — with the serial in its audit event. A failure before the save
//! leaves the code unspent, so the applicant simply retries; if the save loses (the same code
//! spent by a concurrent request, or any other change meanwhile) or fails, the certificate that will never be delivered is
//! revoked (cessationOfOperation) before the error is returned. Nothing is delivered without
//! the code being spent, and a spent code always has its certificate in the database.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_pki::RevocationReason;
use signet_ra::application::{
    ActivationCode, Actor, Application, ApplicationId, ApplicationState, ApplicationStore, Command, Transition,
    TransitionError,
};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::vetting::Deadline;

use crate::api::{base64_field, chain_pem};
use crate::applicant::password_matches;
use crate::error::ApiError;
use crate::ocsp::{forget, presign_new};
use crate::state::AppState;

/// Routes of certificate retrieval.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/retrieval", post(retrieve))
}

/// What every wrong reference, activation code or password is told.
const REFUSED: &str = "the application reference, activation code or password is not correct";

/// What a second use of an activation code is told (once the password proved the account).
const ALREADY_RETRIEVED: &str =
    "the certificates of this application were already retrieved; an activation code works once";

/// Body of `POST /api/v1/retrieval`. `Debug` shows the reference only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalRequest {
    /// The application reference.
    pub application: String,
    /// The activation code from the "certificates are ready" email.
    pub activation_code: String,
    /// The account password chosen when applying.
    pub password: String,
    /// The PKCS#10 request signed by the token key, DER in standard base64.
    pub csr: String,
}

impl std::fmt::Debug for RetrievalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalRequest").field("application", &self.application).finish_non_exhaustive()
    }
}

/// The answer: the identity certificate and its chain (issuing CA, root), PEM.
#[derive(Debug, Serialize)]
struct Retrieved {
    serial: String,
    profile: String,
    certificate: String,
    chain: String,
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    body: Result<Json<RetrievalRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Retrieved>), ApiError> {
    let Json(req) = body?;
    let csr = base64_field(&req.csr, "bad-csr", "the CSR is not base64 DER")?;
    let id = ApplicationId::new(&req.application).ok();
    let now = state.clock.now();
    if let Some(id) = &id
        && let LockState::Locked(until) = state.store.check(AttemptScope::ActivationCode, id.as_str(), now).await?
    {
        return Err(ApiError::Locked(until.message()));
    }
    let transition = match authorize(&state, id.as_ref(), req).await? {
        Ok(t) => t,
        Err(Refusal::Credentials) => return Err(refuse(&state, id.as_ref()).await?),
        Err(Refusal::Other(e)) => return Err(e),
    };
    let id = transition.application.id().clone();
    let (cert, profile) = issue(&state, &transition.application, &csr).await?;
    save(&state, transition, &cert.serial, &profile).await?;
    // The code is spent, so the count no longer matters; a failure to forget it must not turn
    // a delivered retrieval into an error.
    if let Err(e) = state.store.clear(AttemptScope::ActivationCode, id.as_str()).await {
        tracing::warn!(error = %e, "could not clear the activation-code failure count");
    }
    presign_new(&state, &cert.serial);
    tracing::info!(application = %id, serial = %cert.serial, %profile, "certificates retrieved");
    Ok((
        StatusCode::CREATED,
        Json(Retrieved {
            serial: cert.serial.to_hex(),
            profile,
            certificate: signet_pki::to_pem("CERTIFICATE", &cert.der),
            chain: chain_pem(&state),
        }),
    ))
}

/// Why the secrets did not open the application.
enum Refusal {
    /// A wrong (or unknown) reference, activation code or password: counted, and answered
    /// with [`REFUSED`] whichever it was.
    Credentials,
    /// The account is proven (the password matched), so the applicant may be told why.
    Other(ApiError),
}

/// Checks the secrets and the application's state; on success the `Retrieve` transition,
/// not yet saved.
async fn authorize(
    state: &AppState,
    id: Option<&ApplicationId>,
    req: RetrievalRequest,
) -> Result<Result<Transition, Refusal>, ApiError> {
    // Always hashed, even for an unknown reference or a malformed code, so timing tells nothing.
    let password_ok =
        password_matches(state, id, req.password).await.map_err(|e| ApiError::Internal(format!("{e:?}")))?;
    let (Some(id), Ok(code), true) = (id, ActivationCode::new(&req.activation_code), password_ok) else {
        return Ok(Err(Refusal::Credentials));
    };
    let Some(app) = state.store.load(id).await? else { return Ok(Err(Refusal::Credentials)) };
    let refused = |kind, detail: String| Ok(Err(Refusal::Other(ApiError::Conflict { kind, detail })));
    let expired = |d: Deadline| {
        Ok(Err(Refusal::Other(ApiError::Gone {
            kind: "expired",
            detail: format!(
                "the retrieval deadline ({}) has passed and the application has expired; apply again",
                d.last_day
            ),
        })))
    };
    // The deadline job may have expired it already; the answer is the same as just before.
    if let ApplicationState::Expired { deadline, .. } = app.state() {
        return expired(*deadline);
    }
    match app.apply(&Actor::Applicant, Command::Retrieve(code), state.clock.now(), &state.deadlines) {
        Ok(t) => Ok(Ok(t)),
        Err(TransitionError::WrongActivationCode) => Ok(Err(Refusal::Credentials)),
        Err(TransitionError::DeadlinePassed(d)) => expired(d),
        Err(TransitionError::NotAllowed { state: "retrieved", .. }) => {
            refused("already-retrieved", ALREADY_RETRIEVED.into())
        }
        Err(TransitionError::NotAllowed { state: current, .. }) => refused(
            "not-ready",
            format!("the application is {current}: certificates can be retrieved once the activation code is emailed"),
        ),
        Err(e) => Err(ApiError::Internal(format!("retrieve refused unexpectedly: {e}"))),
    }
}

/// Counts a failed attempt; the fifth locks the application, and that attempt already says so.
async fn refuse(state: &AppState, id: Option<&ApplicationId>) -> Result<ApiError, ApiError> {
    let refused = ApiError::Forbidden { kind: "retrieval-refused", detail: REFUSED.into() };
    // A reference that does not parse names no application, so there is nothing to lock.
    let Some(id) = id else { return Ok(refused) };
    let policy = AttemptScope::ActivationCode.default_policy();
    let after =
        state.store.record_failure(AttemptScope::ActivationCode, id.as_str(), &policy, state.clock.now()).await?;
    Ok(match after {
        LockState::Locked(until) => ApiError::Locked(until.message()),
        LockState::Open => refused,
    })
}

/// Issues the identity certificate (`<type>-identity`) for the vetted applicant.
async fn issue(
    state: &AppState,
    app: &Application,
    csr: &[u8],
) -> Result<(signet_pki::IssuedCertificate, String), ApiError> {
    let form = app.form();
    let order = form.person_order(format!("{}-identity", form.certificate.cert_type()));
    let cert = state.service().issue(&actor(app.id()), &order, csr).await?;
    Ok((cert, order.profile))
}

fn actor(id: &ApplicationId) -> String {
    format!("{}:{id}", Actor::Applicant.audit_name())
}

/// Saves the `Retrieve` transition (spending the code) with the serial in its audit event; if
/// it cannot be saved, revokes the certificate that will not be delivered.
async fn save(
    state: &AppState,
    mut transition: Transition,
    serial: &signet_pki::Serial,
    profile: &str,
) -> Result<(), ApiError> {
    transition.audit.details = json!({ "serial": serial.to_hex(), "profile": profile });
    let outbox = state.notifier.outbox_for(&transition);
    let Err(e) = state.store.save_transition(&transition, &outbox).await else { return Ok(()) };
    let id = transition.application.id();
    match state.service().revoke(&actor(id), serial, RevocationReason::CessationOfOperation).await {
        Ok(_) => forget(state, serial),
        Err(revoke) => tracing::error!(%serial, error = %revoke, "could not revoke an undelivered certificate"),
    }
    Err(match e {
        StoreError::Conflict(_) => ApiError::Conflict {
            kind: "changed",
            detail: "the application changed during the retrieval and nothing was delivered; try again".into(),
        },
        other => other.into(),
    })
}
