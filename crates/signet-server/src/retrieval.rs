//! Certificate retrieval (DESIGN §2 "Retrieval"): `POST /api/v1/retrieval`, what
//! `signet token retrieve` calls once it has generated the identity key on the applicant's token.
//!
//! The applicant proves the account with the application reference, the emailed single-use
//! activation code and the account password; the token's key proves possession through the
//! CSR's signature. Every refusal reads the same, so no answer tells which secret was wrong or
//! whether the reference exists. Five failed attempts pause retrieval of the application for 15
//! minutes, doubling with each further failure up to a day
//! ([`AttemptScope::default_policy`]): anyone can fail against a reference, so a lock only
//! slows a guesser and never shuts the owner out. The applicant lifts it at once by signing in
//! to the portal (`/applications/<reference>/retrieval`), an administrator with
//! `signet admin unlock --scope activation-code --subject <reference>`.
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
use signet_authority::RevokeRequest;
use signet_authority::stock::TransportPins;
use signet_pki::attestation::PinPolicy;
use signet_pki::escrow::{EncryptionKey, TransportWrapped};
use signet_pki::{IssuedCertificate, RevocationReason, Serial};
use signet_ra::application::{
    ActivationCode, Actor, Application, ApplicationId, ApplicationState, ApplicationStore, Command, Transition,
    TransitionError,
};
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::{EscrowedKey, KeyRecoveryStore};
use signet_ra::lockout::{AttemptScope, AttemptStore, LockState, Until};
use signet_ra::token_stock::{
    DeliveredKey, Delivery, ShipmentChallenge, StockState, StockToken, TokenSerial, TokenStockStore,
};
use signet_ra::vetting::Deadline;
use signet_ra::witness::WitnessStore;

use crate::api::base64_field;
use crate::applicant::password_matches;
use crate::error::ApiError;
use crate::state::AppState;

/// Routes of certificate retrieval.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/retrieval", post(retrieve))
        .route("/api/v1/retrieval/begin", post(begin))
        .route("/api/v1/retrieval/check-token", post(check_token))
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
    /// The token's serial number (`C_GetTokenInfo`), for a token shipped from the RA's stock
    /// or one an operator witnessed.
    #[serde(default)]
    pub token_serial: Option<String>,
    /// The challenge from `POST /api/v1/retrieval/begin`.
    #[serde(default)]
    pub challenge: Option<String>,
    /// The shipment key's signature (ASN.1 ECDSA, base64) over
    /// [`signet_ra::token_stock::shipment_message`] of the challenge and this CSR.
    #[serde(default)]
    pub shipment_signature: Option<String>,
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

/// Body of `POST /api/v1/retrieval/begin`. `Debug` shows the reference only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginRequest {
    /// The application reference.
    pub application: String,
    /// The activation code from the "certificates are ready" email.
    pub activation_code: String,
    /// The account password.
    pub password: String,
    /// The inserted token's serial number.
    pub token_serial: String,
}

impl std::fmt::Debug for BeginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeginRequest").field("application", &self.application).finish_non_exhaustive()
    }
}

/// The answer to `begin`: the challenge the shipment key signs, and — for a first retrieval —
/// the token's transport PINs, which the client replaces with the subscriber's own at once.
#[derive(Serialize)]
struct Begun {
    token_serial: String,
    challenge: String,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    transport_pins: Option<TransportPins>,
}

impl std::fmt::Debug for Begun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Begun").field("token_serial", &self.token_serial).finish_non_exhaustive()
    }
}

/// Step one of retrieving onto a token from the RA's stock: the account's secrets and the
/// inserted token's serial open a single-use challenge, and the transport PINs of that token.
/// Nothing is spent: the activation code is spent by the retrieval itself.
#[tracing::instrument(skip_all)]
async fn begin(
    State(state): State<AppState>,
    body: Result<Json<BeginRequest>, JsonRejection>,
) -> Result<Json<Begun>, ApiError> {
    let Json(req) = body?;
    let serial = TokenSerial::new(&req.token_serial)
        .map_err(|e| ApiError::BadRequest { kind: "bad-token-serial", detail: e.to_string() })?;
    let id = ApplicationId::new(&req.application).ok();
    let opened = open(&state, id.as_ref(), &req.activation_code, req.password).await?;
    let token = shipped_token(&state, opened.application(), &serial).await?;
    let challenge = ShipmentChallenge::issue(opened.application().id().clone(), serial, state.clock.now());
    state.store.save_challenge(&challenge).await?;
    let transport_pins = match opened {
        Opened::Fresh(_) => Some(TransportPins::open(&state, &token).map_err(|e| ApiError::Internal(e.to_string()))?),
        Opened::Delivered(_) => None,
    };
    tracing::info!(application = %challenge.application, token = %challenge.serial, "retrieval challenge issued");
    Ok(Json(Begun {
        token_serial: challenge.serial.to_string(),
        challenge: challenge.nonce,
        expires_at: challenge.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        transport_pins,
    }))
}

/// Body of `POST /api/v1/retrieval/check-token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckToken {
    application: String,
    token_serial: String,
}

/// `signet token readiness --application`: whether the inserted token is the one shipped for
/// the application. Says no more than that: neither the shipped serial nor the application's
/// state, so a reference alone tells a stranger nothing else.
async fn check_token(
    State(state): State<AppState>,
    body: Result<Json<CheckToken>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body?;
    let bad = |kind, detail: &str| ApiError::BadRequest { kind, detail: detail.to_owned() };
    let id = ApplicationId::new(&req.application)
        .map_err(|_| bad("bad-application", "an application reference is 12 letters and digits"))?;
    let serial = TokenSerial::new(&req.token_serial).map_err(|e| bad("bad-token-serial", &e.to_string()))?;
    let verdict = match state.store.token_of(&id).await? {
        Some(t) if t.serial == serial => "shipped-for-this-application",
        Some(_) => "another-token",
        None => "no-token-from-stock",
    };
    Ok(Json(json!({ "verdict": verdict })))
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    body: Result<Json<RetrievalRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Retrieved>), ApiError> {
    let Json(mut req) = body?;
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
    let proof = ShipmentProof::of(&req)?;
    let id = ApplicationId::new(&req.application).ok();
    let password = std::mem::take(&mut req.password);
    let transition = match open(&state, id.as_ref(), &req.activation_code, password).await? {
        Opened::Fresh(t) => t,
        Opened::Delivered(app) => return redeliver(&state, &app, proof, &csr).await,
    };
    let id = transition.application.id().clone();
    let shipped = match &proof {
        Some(p) => Some(p.verify(&state, &transition.application, &csr).await?),
        None => None,
    };
    let key_proof = match &shipped {
        Some(t) => json!({ "method": "shipment-key", "token_serial": t.serial.as_str() }),
        None => {
            hardware_key_proof(&state, &transition.application, &csr, &attestation, req.token_serial.as_deref()).await?
        }
    };
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
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let delivered_encryption = encryption.as_ref().map(|(cert, wrapped, profile)| DeliveredEncryption {
        serial: cert.serial.to_hex(),
        profile: profile.clone(),
        certificate: signet_pki::to_pem("CERTIFICATE", &cert.der),
        wrapped_key: b64(&wrapped.wrapped_key),
        wrapped_private_key: b64(&wrapped.wrapped_private_key),
    });
    // What a retry with the same token is given again if this answer is lost.
    let delivered = shipped.map(|t| {
        let delivery = Delivery {
            identity_serial: cert.serial.to_hex(),
            encryption: delivered_encryption.as_ref().map(|e| DeliveredKey {
                serial: e.serial.clone(),
                wrapped_key: e.wrapped_key.clone(),
                wrapped_private_key: e.wrapped_private_key.clone(),
            }),
        };
        t.retrieved(delivery)
    });
    let delivered = match delivered.transpose() {
        Ok(d) => d,
        // The token left "shipped" since it proved itself (reported lost meanwhile).
        Err(refused) => {
            revoke_undelivered(&state, &id, &serials).await;
            return Err(ApiError::Conflict { kind: "changed", detail: format!("{refused}; nothing was delivered") });
        }
    };
    save(&state, transition, details, &serials, delivered.as_ref()).await?;
    // The code is spent, so the count no longer matters; a failure to forget it must not turn
    // a delivered retrieval into an error.
    if let Err(e) = state.store.clear(AttemptScope::ActivationCode, id.as_str()).await {
        tracing::warn!(error = %e, "could not clear the activation-code failure count");
    }
    tracing::info!(application = %id, serial = %cert.serial, %profile, "certificates retrieved");
    Ok((
        StatusCode::CREATED,
        Json(Retrieved {
            serial: cert.serial.to_hex(),
            profile,
            certificate: signet_pki::to_pem("CERTIFICATE", &cert.der),
            chain: state.certificates.chain_pem(),
            encryption: delivered_encryption,
        }),
    ))
}

/// What the secrets opened.
enum Opened {
    /// An application whose certificates are ready: the `Retrieve` transition, not yet saved.
    Fresh(Transition),
    /// An application already retrieved (the password matched; the code is spent).
    Delivered(Application),
}

impl Opened {
    fn application(&self) -> &Application {
        match self {
            Self::Fresh(t) => &t.application,
            Self::Delivered(a) => a,
        }
    }
}

/// Checks the lockout and the secrets; a wrong one is counted and answered with [`REFUSED`].
async fn open(
    state: &AppState,
    id: Option<&ApplicationId>,
    activation_code: &str,
    password: String,
) -> Result<Opened, ApiError> {
    if let Some(id) = id
        && let LockState::Locked(until) =
            state.store.check(AttemptScope::ActivationCode, id.as_str(), state.clock.now()).await?
    {
        return Err(locked(state, id, until));
    }
    match authorize(state, id, activation_code, password).await? {
        Ok(o) => Ok(o),
        Err(Refusal::Credentials) => Err(refuse(state, id).await?),
        Err(Refusal::Other(e)) => Err(e),
    }
}

/// The token a retrieval names, checked against the one shipped for the application.
async fn shipped_token(state: &AppState, app: &Application, serial: &TokenSerial) -> Result<StockToken, ApiError> {
    let conflict = |kind, detail: String| ApiError::Conflict { kind, detail };
    let Some(token) = state.store.token_of(app.id()).await? else {
        return Err(conflict(
            "no-shipped-token",
            format!(
                "no token from the RA's stock was shipped for application {}; retrieve onto your own token \
                 without a shipment proof, or ask the RA",
                app.id()
            ),
        ));
    };
    if token.serial != *serial {
        return Err(conflict(
            "wrong-token",
            format!(
                "the inserted token (serial {serial}) is not the one the RA shipped for application {}: insert \
                 the token that came in the mail (serial {}) and run the command again",
                app.id(),
                token.serial
            ),
        ));
    }
    match token.state {
        StockState::Shipped(_) | StockState::Retrieved(..) => Ok(token),
        StockState::Lost(_) => Err(conflict(
            "token-lost",
            format!("token {serial} was reported lost and its certificates revoked; contact the RA"),
        )),
        _ => Err(ApiError::Internal(format!("token {serial} is bound to {} but {}", app.id(), token.state.name()))),
    }
}

/// A shipment proof as sent: the token, the challenge and the shipment key's signature.
struct ShipmentProof {
    serial: TokenSerial,
    challenge: String,
    signature: Vec<u8>,
}

impl ShipmentProof {
    /// The proof in the request, if it carries one; all three fields or none.
    fn of(req: &RetrievalRequest) -> Result<Option<Self>, ApiError> {
        let (Some(challenge), Some(signature)) = (&req.challenge, &req.shipment_signature) else {
            return Ok(None);
        };
        let serial = TokenSerial::new(req.token_serial.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::BadRequest { kind: "bad-token-serial", detail: e.to_string() })?;
        let signature = base64_field(signature, "bad-shipment-signature", "the shipment signature is not base64")?;
        Ok(Some(Self { serial, challenge: challenge.clone(), signature }))
    }

    /// Takes the challenge (it answers once) and checks that the shipped token's shipment key
    /// signed it together with this CSR.
    async fn verify(&self, state: &AppState, app: &Application, csr: &[u8]) -> Result<StockToken, ApiError> {
        let refused = |detail: &str| ApiError::Conflict { kind: "shipment-proof-refused", detail: detail.to_owned() };
        let Some(challenge) = state.store.take_challenge(&self.challenge, state.clock.now()).await? else {
            return Err(refused(
                "the retrieval challenge was already used or has expired: run `signet token retrieve` again",
            ));
        };
        if challenge.application != *app.id() || challenge.serial != self.serial {
            return Err(refused("the challenge was issued for another application or token"));
        }
        let token = shipped_token(state, app, &self.serial).await?;
        if !token.signed_by_shipment_key(&challenge.message(csr), &self.signature) {
            return Err(refused(
                "the token's shipment key did not sign this request: use the token the RA shipped for this \
                 application, unchanged",
            ));
        }
        Ok(token)
    }
}

/// A retrieval run again after its answer was lost: the shipped token proves itself again and
/// gets the same certificates (and the same wrapped encryption key); nothing is issued.
async fn redeliver(
    state: &AppState,
    app: &Application,
    proof: Option<ShipmentProof>,
    csr: &[u8],
) -> Result<(StatusCode, Json<Retrieved>), ApiError> {
    let already = || ApiError::Conflict { kind: "already-retrieved", detail: ALREADY_RETRIEVED.into() };
    let Some(proof) = proof else { return Err(already()) };
    let token = proof.verify(state, app, csr).await?;
    let StockState::Retrieved(_, delivery) = &token.state else { return Err(already()) };
    let stored = |hex: &str| {
        let serial = Serial::from_hex(hex).map_err(|e| ApiError::Internal(format!("delivered serial: {e}")));
        async move {
            let serial = serial?;
            state
                .store
                .certificate(&serial)
                .await?
                .ok_or_else(|| ApiError::Internal(format!("delivered certificate {serial} is not stored")))
        }
    };
    let identity = stored(&delivery.identity_serial).await?;
    // The retry runs on the key the lost answer was for, still on the token.
    let csr = signet_pki::csr::VerifiedCsr::parse(csr)
        .map_err(|e| ApiError::BadRequest { kind: "bad-csr", detail: e.to_string() })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&identity.der)
        .map_err(|e| ApiError::Internal(format!("stored certificate: {e}")))?;
    if cert.public_key().raw != csr.spki() {
        return Err(ApiError::Conflict {
            kind: "already-retrieved",
            detail: "the certificates of this application were already delivered onto this token, for another key: \
                     look for them with `signet token status`"
                .into(),
        });
    }
    let encryption = match &delivery.encryption {
        Some(e) => {
            let record = stored(&e.serial).await?;
            Some(DeliveredEncryption {
                serial: e.serial.clone(),
                profile: record.profile,
                certificate: signet_pki::to_pem("CERTIFICATE", &record.der),
                wrapped_key: e.wrapped_key.clone(),
                wrapped_private_key: e.wrapped_private_key.clone(),
            })
        }
        None => None,
    };
    tracing::info!(application = %app.id(), token = %token.serial, "certificates delivered again");
    Ok((
        StatusCode::OK,
        Json(Retrieved {
            serial: identity.serial.to_hex(),
            profile: identity.profile,
            certificate: signet_pki::to_pem("CERTIFICATE", &identity.der),
            chain: state.certificates.chain_pem(),
            encryption,
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
    activation_code: &str,
    password: String,
) -> Result<Result<Opened, Refusal>, ApiError> {
    // Always hashed, even for an unknown reference or a malformed code, so timing tells nothing.
    let password_ok = password_matches::<ApiError>(state, id, password).await?;
    let (Some(id), Ok(code), true) = (id, ActivationCode::new(activation_code), password_ok) else {
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
    if app.state().state_name() == "retrieved" {
        // The code is spent and cannot be checked; the password was. A retry whose answer was
        // lost proves the shipped token next.
        return Ok(Ok(Opened::Delivered(app)));
    }
    match app.apply(&Actor::Applicant, Command::Retrieve(code), state.clock.now(), &state.deadlines) {
        Ok(t) => Ok(Ok(Opened::Fresh(t))),
        Err(TransitionError::WrongActivationCode) => Ok(Err(Refusal::Credentials)),
        Err(TransitionError::DeadlinePassed(d)) => expired(d),
        Err(TransitionError::NotAllowed { state: current, .. }) => refused(
            "not-ready",
            format!("the application is {current}: certificates can be retrieved once the activation code is emailed"),
        ),
        Err(e) => Err(ApiError::Internal(format!("retrieve refused unexpectedly: {e}"))),
    }
}

/// Counts a failed attempt; the fifth pauses retrieval, and that attempt already says so.
async fn refuse(state: &AppState, id: Option<&ApplicationId>) -> Result<ApiError, ApiError> {
    let refused = ApiError::Forbidden { kind: "retrieval-refused", detail: REFUSED.into() };
    // A reference that does not parse names no application, so there is nothing to lock.
    let Some(id) = id else { return Ok(refused) };
    let policy = AttemptScope::ActivationCode.default_policy();
    let after =
        state.store.record_failure(AttemptScope::ActivationCode, id.as_str(), &policy, state.clock.now()).await?;
    Ok(match after {
        LockState::Locked(until) => locked(state, id, until),
        LockState::Open => refused,
    })
}

/// What a paused retrieval is told: until when, and where its applicant allows it again. The
/// same for every reference, so it says nothing about whether the application exists.
fn locked(state: &AppState, id: &ApplicationId, until: Until) -> ApiError {
    ApiError::Locked(format!(
        "{} If this is your application, you can allow retrieval again now: sign in at {}/applications/{id}/retrieval",
        until.message(state.clock.now()),
        state.base_url
    ))
}

/// For a hardware key type, how the identity key was shown to be hardware-held (for the audit
/// event); `null` for other types. Refused unless an attestation verifies or an operator
/// witnessed the generation.
async fn hardware_key_proof(
    state: &AppState,
    app: &Application,
    csr: &[u8],
    attestation: &[Vec<u8>],
    token_serial: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    if !state.needs_hardware_key(app) {
        return Ok(serde_json::Value::Null);
    }
    if !attestation.is_empty() {
        return attested(state, csr, attestation);
    }
    match state.store.witness(app.id()).await? {
        Some(w) if token_serial.map(str::trim) == w.token.as_ref().map(TokenSerial::as_str) => {
            Ok(json!({ "method": "witnessed", "operator": w.operator.as_str(), "token_serial": token_serial }))
        }
        Some(w) => Err(ApiError::Conflict {
            kind: "hardware-key-unproven",
            detail: format!(
                "the key generation an RA operator witnessed was on token {}, not on this one{}: use that token",
                w.token.as_ref().map_or("(no serial recorded)", TokenSerial::as_str),
                token_serial.map(|s| format!(" (serial {s})")).unwrap_or_default()
            ),
        }),
        None if let Some(shipped) = state.store.token_of(app.id()).await? => Err(ApiError::Conflict {
            kind: "hardware-key-unproven",
            detail: format!(
                "a {} certificate is retrieved onto the token the RA shipped for this application (serial {}): \
                 insert that token and run the command again",
                state.type_name(app.form().certificate.cert_type()),
                shipped.serial
            ),
        }),
        None => Err(ApiError::Conflict {
            kind: "hardware-key-unproven",
            detail: format!(
                "a {} certificate needs a key held by hardware: send the token's key attestation, or have \
                 an RA operator witness the key generation in person and record it before retrieving",
                state.type_name(app.form().certificate.cert_type())
            ),
        }),
    }
}

/// The audit record of a YubiKey PIV attestation of the CSR's key; refused unless it chains
/// to a configured attestation root, attests exactly that key, and the key needs its PIN.
pub(crate) fn attested(state: &AppState, csr: &[u8], attestation: &[Vec<u8>]) -> Result<serde_json::Value, ApiError> {
    let csr = signet_pki::csr::VerifiedCsr::parse(csr)
        .map_err(|e| ApiError::BadRequest { kind: "bad-csr", detail: e.to_string() })?;
    let proof = signet_pki::attestation::verify(&state.attestation_roots, attestation, csr.spki(), state.clock.now())?;
    // A key usable without its PIN is not one a subscriber controls.
    if proof.pin_policy == PinPolicy::Never {
        return Err(ApiError::Conflict {
            kind: "attestation-refused",
            detail:
                "the attested key can be used without its PIN (PIN policy \"never\"); generate it with a PIN policy"
                    .into(),
        });
    }
    Ok(json!({
        "method": "attestation",
        "device_serial": proof.serial,
        "firmware": format!("{}.{}.{}", proof.firmware.0, proof.firmware.1, proof.firmware.2),
    }))
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
                state.type_name(app.form().certificate.cert_type())
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
    let cert = state.issue(&actor(app.id()), &order, &key.csr()?).await?;
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
    let cert = state.issue(&actor(app.id()), &order, csr).await?;
    Ok((cert, order.profile))
}

fn actor(id: &ApplicationId) -> String {
    format!("{}:{id}", Actor::Applicant.audit_name())
}

/// Revokes certificates that were issued but will not be delivered.
async fn revoke_undelivered(state: &AppState, id: &ApplicationId, serials: &[&Serial]) {
    for serial in serials {
        let request = RevokeRequest {
            actor: actor(id),
            serial: (*serial).clone(),
            reason: RevocationReason::CessationOfOperation,
            notices: Vec::new(),
        };
        match state.authority.revoke(request).await {
            Ok(_) => {}
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
    token: Option<&StockToken>,
) -> Result<(), ApiError> {
    transition.audit.details = details;
    let outbox = state.notifier.outbox_for(&transition);
    let saved = match token {
        // The delivery is recorded on the token in the same transaction that spends the code.
        Some(t) => {
            let from = StockState::Shipped(transition.application.id().clone()).name();
            state.store.save_transition_with_token(&transition, &outbox, t, from).await
        }
        None => state.store.save_transition(&transition, &outbox).await,
    };
    let Err(e) = saved else { return Ok(()) };
    revoke_undelivered(state, transition.application.id(), serials).await;
    Err(match e {
        StoreError::Conflict(_) => ApiError::Conflict {
            kind: "changed",
            detail: "the application changed during the retrieval and nothing was delivered; try again".into(),
        },
        other => other.into(),
    })
}
