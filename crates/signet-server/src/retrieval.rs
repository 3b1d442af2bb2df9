//! Certificate retrieval (DESIGN §2 "Retrieval", issue #4): `POST /api/v1/retrieval`, what
//! `signet token retrieve` calls once it has generated the identity key on the applicant's token.
//!
//! The applicant proves the account with the application reference, the emailed single-use
//! activation code and the account password; the token's key proves possession through the
//! CSR's signature. Five failed attempts lock the application until an administrator unlocks
//! it (`signet admin unlock --scope activation-code --subject <reference>`), and every refusal
//! reads the same, so no answer tells which secret was wrong or whether the reference exists.
//!
//! Hardware key types (`key_storage = "hardware"`: Medium Token, Medium Hardware) need proof
//! that the identity key is held by hardware: a YubiKey PIV attestation chaining to a
//! configured attestation root, whose attested key is the CSR's, or else an RA operator's
//! record of having witnessed the key generation in person ([`signet_ra::witness`]).
//!
//! Encryption certificate (when the CA has a key recovery key and the type an
//! `<type>-encryption` profile): the server generates the key pair, escrows it to the key
//! recovery key ([`signet_pki::escrow`]; the escrow row is written before the certificate is
//! issued, so no encryption certificate exists whose key is not escrowed), and returns it
//! wrapped to the token's session-only transport key, so it is in the clear only inside the
//! token. The request must then carry `transport_key`.
//!
//! Order of writes. Issuance ([`signet_ra::issuance::CaService::issue`]) and the application's
//! `Retrieve` transition are separate transactions, so the transition is first checked in
//! memory (code, password, deadline, key proof, transport key), then the certificates are
//! issued, then the transition is saved — spending the code — with the serials in its audit
//! event. A failure before the save leaves the code unspent, so the applicant simply retries;
//! if the save loses (the same code spent by a concurrent request, or any other change
//! meanwhile) or fails, the certificates that will never be delivered are revoked
//! (cessationOfOperation) before the error is returned. Nothing is delivered without the code
//! being spent, and a spent code always has its certificates in the database. An escrow whose
//! certificate was never issued names no certificate and cannot be recovered.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_pki::attestation::PinPolicy;
use signet_pki::escrow::{EncryptionKey, TransportWrapped};
use signet_pki::{IssuedCertificate, RevocationReason, Serial};
use signet_ra::application::{
    ActivationCode, Actor, Application, ApplicationId, ApplicationState, ApplicationStore, Command, Transition,
    TransitionError,
};
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::{EscrowedKey, KeyRecoveryStore};
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState};
use signet_ra::vetting::Deadline;
use signet_ra::witness::WitnessStore;

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
    /// The token's session-only RSA transport key (SubjectPublicKeyInfo DER, base64) that the
    /// encryption key is wrapped to; required when the type has an encryption certificate.
    #[serde(default)]
    pub transport_key: Option<String>,
    /// Hardware key types: the attestation of the identity key (the attestation certificate,
    /// then the device's attestation certificate, DER base64; not the root).
    #[serde(default)]
    pub attestation: Vec<String>,
}

impl std::fmt::Debug for RetrievalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalRequest").field("application", &self.application).finish_non_exhaustive()
    }
}

/// The answer: the identity certificate and its chain (issuing CA, root), PEM, and the
/// encryption certificate with its wrapped key when the type has one.
#[derive(Debug, Serialize)]
struct Retrieved {
    serial: String,
    profile: String,
    certificate: String,
    chain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption: Option<DeliveredEncryption>,
}

/// The encryption certificate and its key: an AES-256 key wrapped to the transport key
/// (RSAES-OAEP, SHA-1), and the PKCS#8 private key wrapped under it (RFC 5649), base64.
#[derive(Debug, Serialize)]
struct DeliveredEncryption {
    serial: String,
    profile: String,
    certificate: String,
    wrapped_key: String,
    wrapped_private_key: String,
}

/// An encryption key generated and wrapped for the token, not yet escrowed or certified.
struct PendingEncryption {
    profile: String,
    key: EncryptionKey,
    wrapped: TransportWrapped,
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    body: Result<Json<RetrievalRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Retrieved>), ApiError> {
    let Json(req) = body?;
    let csr = base64_field(&req.csr, "bad-csr", "the CSR is not base64 DER")?;
    let transport_key = req
        .transport_key
        .as_deref()
        .map(|k| base64_field(k, "bad-transport-key", "the transport key is not base64 DER"))
        .transpose()?;
    let attestation = req
        .attestation
        .iter()
        .map(|c| base64_field(c, "bad-attestation", "an attestation certificate is not base64 DER"))
        .collect::<Result<Vec<_>, _>>()?;
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
    let key_proof = hardware_key_proof(&state, &transition.application, &csr, &attestation).await?;
    let pending = prepare_encryption(&state, &transition.application, transport_key).await?;
    let (cert, profile) = issue(&state, &transition.application, &csr).await?;
    let encryption = match pending {
        Some(p) => match issue_encryption(&state, &transition.application, p).await {
            Ok(e) => Some(e),
            Err(e) => {
                revoke_undelivered(&state, &id, &[&cert.serial]).await;
                return Err(e);
            }
        },
        None => None,
    };
    let mut details = json!({ "serial": cert.serial.to_hex(), "profile": profile, "key_proof": key_proof });
    let mut serials = vec![&cert.serial];
    if let Some((enc, _, enc_profile)) = &encryption {
        details["encryption"] = json!({ "serial": enc.serial.to_hex(), "profile": enc_profile });
        serials.push(&enc.serial);
    }
    save(&state, transition, details, &serials).await?;
    // The code is spent, so the count no longer matters; a failure to forget it must not turn
    // a delivered retrieval into an error.
    if let Err(e) = state.store.clear(AttemptScope::ActivationCode, id.as_str()).await {
        tracing::warn!(error = %e, "could not clear the activation-code failure count");
    }
    for serial in serials {
        presign_new(&state, serial);
    }
    tracing::info!(application = %id, serial = %cert.serial, %profile, "certificates retrieved");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok((
        StatusCode::CREATED,
        Json(Retrieved {
            serial: cert.serial.to_hex(),
            profile,
            certificate: signet_pki::to_pem("CERTIFICATE", &cert.der),
            chain: chain_pem(&state),
            encryption: encryption.map(|(cert, wrapped, profile)| DeliveredEncryption {
                serial: cert.serial.to_hex(),
                profile,
                certificate: signet_pki::to_pem("CERTIFICATE", &cert.der),
                wrapped_key: b64(&wrapped.wrapped_key),
                wrapped_private_key: b64(&wrapped.wrapped_private_key),
            }),
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

/// For a hardware key type, how the identity key was shown to be hardware-held (for the audit
/// event); `null` for other types. Refused unless an attestation verifies or an operator
/// witnessed the generation.
async fn hardware_key_proof(
    state: &AppState,
    app: &Application,
    csr: &[u8],
    attestation: &[Vec<u8>],
) -> Result<serde_json::Value, ApiError> {
    if !state.needs_hardware_key(app) {
        return Ok(serde_json::Value::Null);
    }
    if !attestation.is_empty() {
        let csr = signet_pki::csr::VerifiedCsr::parse(csr)
            .map_err(|e| ApiError::BadRequest { kind: "bad-csr", detail: e.to_string() })?;
        let proof =
            signet_pki::attestation::verify(&state.attestation_roots, attestation, csr.spki(), state.clock.now())?;
        // A key usable without its PIN is not one a subscriber controls.
        if proof.pin_policy == PinPolicy::Never {
            return Err(ApiError::Conflict {
                kind: "attestation-refused",
                detail:
                    "the attested key can be used without its PIN (PIN policy \"never\"); generate it with a PIN policy"
                        .into(),
            });
        }
        return Ok(json!({
            "method": "attestation",
            "device_serial": proof.serial,
            "firmware": format!("{}.{}.{}", proof.firmware.0, proof.firmware.1, proof.firmware.2),
        }));
    }
    match state.store.witness(app.id()).await? {
        Some(w) => Ok(json!({ "method": "witnessed", "operator": w.operator.as_str() })),
        None => Err(ApiError::Conflict {
            kind: "hardware-key-unproven",
            detail: format!(
                "a {} certificate needs a key held by hardware: send the token's key attestation, or have \
                 an RA operator witness the key generation in person and record it before retrieving",
                app.form().certificate.cert_type()
            ),
        }),
    }
}

/// When the CA escrows and the type has an encryption profile: generates the encryption key and
/// wraps it to the transport key, which the request must carry. Nothing is written.
async fn prepare_encryption(
    state: &AppState,
    app: &Application,
    transport_key: Option<Vec<u8>>,
) -> Result<Option<PendingEncryption>, ApiError> {
    let profile = format!("{}-encryption", app.form().certificate.cert_type());
    if state.recovery_key.is_none() || state.catalog.profile(&profile).is_none() {
        return Ok(None);
    }
    let Some(transport_key) = transport_key else {
        return Err(ApiError::BadRequest {
            kind: "transport-key-required",
            detail: format!(
                "a {} application includes an escrowed encryption certificate: send the token's transport key \
                 (update `signet token`)",
                app.form().certificate.cert_type()
            ),
        });
    };
    // RSA key generation takes tens of milliseconds: off the async workers.
    let (key, wrapped) = tokio::task::spawn_blocking(move || {
        let key = EncryptionKey::generate()?;
        let wrapped = key.wrap_for_transport(&transport_key)?;
        Ok::<_, signet_pki::escrow::EscrowError>((key, wrapped))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("encryption key generation panicked: {e}")))??;
    Ok(Some(PendingEncryption { profile, key, wrapped }))
}

/// Escrows the encryption key (audited), then issues its certificate.
async fn issue_encryption(
    state: &AppState,
    app: &Application,
    pending: PendingEncryption,
) -> Result<(IssuedCertificate, TransportWrapped, String), ApiError> {
    let PendingEncryption { profile, key, wrapped } = pending;
    let krk = state.recovery_key.as_ref().ok_or_else(|| ApiError::Internal("no key recovery key".into()))?;
    let escrow = EscrowedKey {
        spki_sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.spki())),
        application: app.id().clone(),
        krk_id: krk.key_id_hex(),
        envelope: key.escrow(krk)?,
        created_at: state.clock.now(),
    };
    state.store.save_escrow(&escrow, escrow.escrowed_event(&actor(app.id()))).await?;
    let order = app.form().person_order(profile.clone());
    let cert = state.service().issue(&actor(app.id()), &order, &key.csr()?).await?;
    Ok((cert, wrapped, profile))
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

/// Revokes certificates that were issued but will not be delivered.
async fn revoke_undelivered(state: &AppState, id: &ApplicationId, serials: &[&Serial]) {
    for serial in serials {
        match state.service().revoke(&actor(id), serial, RevocationReason::CessationOfOperation).await {
            Ok(_) => forget(state, serial),
            Err(revoke) => tracing::error!(%serial, error = %revoke, "could not revoke an undelivered certificate"),
        }
    }
}

/// Saves the `Retrieve` transition (spending the code) with the serials in its audit event; if
/// it cannot be saved, revokes the certificates that will not be delivered.
async fn save(
    state: &AppState,
    mut transition: Transition,
    details: serde_json::Value,
    serials: &[&Serial],
) -> Result<(), ApiError> {
    transition.audit.details = details;
    let outbox = state.notifier.outbox_for(&transition);
    let Err(e) = state.store.save_transition(&transition, &outbox).await else { return Ok(()) };
    revoke_undelivered(state, transition.application.id(), serials).await;
    Err(match e {
        StoreError::Conflict(_) => ApiError::Conflict {
            kind: "changed",
            detail: "the application changed during the retrieval and nothing was delivered; try again".into(),
        },
        other => other.into(),
    })
}
