//! Certificate renewal (DESIGN §2 "CMC"): `POST /api/v1/renewal`, what
//! `signet token renew` calls with a new key generated on the subscriber's token, and
//! [`renew`], which the Certificate Management Center's renew button uses as well.
//!
//! The API is the "presenting the current certificate" way in: instead of a TLS client
//! certificate, which a TLS-terminating proxy in front of Signet would strip, the request
//! carries the current certificate and a signature by its key over
//! [`signet_ra::renewal::proof_message`] of the new CSR — possession of the key being
//! replaced, bound to the one new key (as EST re-enrollment and CMP key update prove it). The
//! signature is made on the token, so no secret is typed and there is nothing to lock out.
//!
//! Both ways share the rules: a certificate of a subscriber account, not a device
//! certificate, inside the 90 days before its expiry, not revoked, and not already replaced by
//! a later one of the same type. The new certificate repeats what the account was vetted for
//! — the profile, the subject from the application and the validity length it chose — with the
//! new key; the old one stays valid until it expires, so the subscriber can switch over.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use signet_authority::renewal::replacement;
use signet_pki::Serial;
use signet_pki::issue::IssuedCertificate;
use signet_pki::profile::Catalog;
use signet_ra::application::{ApplicationId, ApplicationStore};
use signet_ra::cmc;
use signet_ra::issuance::StoredStatus;
use signet_ra::renewal::{self, RenewalRefused};
use signet_ra::token_stock::{StockState, TokenSerial, TokenStockStore, renewal_message};
use signet_store::AccountCertificate;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::api::base64_field;
use crate::error::ApiError;
use crate::state::AppState;

/// Device certificates are renewed by creating a new one (or by ACME), not here: a device
/// certificate's names are chosen anew each time.
pub(crate) const DEVICE_PROFILE: &str = "device-tls";

/// Routes of renewal by the current key.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/renewal", post(renew_by_key))
}

/// Body of `POST /api/v1/renewal`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewalRequest {
    /// The certificate to renew, PEM.
    certificate: String,
    /// The PKCS#10 request signed by the new key, DER in standard base64.
    csr: String,
    /// The current key's signature over `proof_message(csr)`, standard base64.
    proof: String,
    /// Hardware key types: the serial of the token the new key was generated on …
    #[serde(default)]
    token_serial: Option<String>,
    /// … and that token's shipment key's signature over
    /// [`signet_ra::token_stock::renewal_message`] of the new CSR (ASN.1 ECDSA, base64).
    #[serde(default)]
    shipment_signature: Option<String>,
    /// Or a YubiKey PIV attestation of the new key (attestation certificate, then the device
    /// certificate, DER base64).
    #[serde(default)]
    attestation: Vec<String>,
}

/// The answer: the new certificate and its chain (issuing CA, root), PEM.
#[derive(Debug, Serialize)]
struct Renewed {
    serial: String,
    replaces: String,
    profile: String,
    certificate: String,
    chain: String,
}

#[tracing::instrument(skip_all)]
async fn renew_by_key(
    State(s): State<AppState>,
    body: Result<Json<RenewalRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Renewed>), ApiError> {
    let Json(req) = body?;
    let csr = base64_field(&req.csr, "bad-csr", "the CSR is not standard base64")?;
    let proof = base64_field(&req.proof, "bad-proof", "the proof is not standard base64")?;
    let (der, serial, spki) = parse_certificate(&req.certificate)?;

    // Serials are public, so only the exact certificate this CA stored for an account counts.
    let not_ours = || ApiError::Forbidden {
        kind: "unknown-certificate",
        detail: "this CA did not issue this certificate to a subscriber account".into(),
    };
    let record = s.store.certificate(&serial).await?.filter(|r| r.der == der).ok_or_else(not_ours)?;
    let account = cmc::account_of(&record.requested_by).ok_or_else(not_ours)?;
    signet_pki::csr::verify_with_spki(&spki, &renewal::proof_message(&csr), &proof).map_err(|_| {
        ApiError::Forbidden {
            kind: "bad-proof",
            detail: "the proof does not verify with the current certificate's key: it must be that key's \
                     signature over the renewal message of this CSR"
                .into(),
        }
    })?;
    let key_proof = new_key_proof(&s, &account, &req, &csr).await?;
    let all = s.store.account_certificates(&account).await?;
    let current = all
        .iter()
        .find(|c| c.serial == serial)
        .ok_or_else(|| ApiError::Internal(format!("certificate {serial} is not among account {account}'s")))?;
    let new = renew(&s, &account, current, &all, &csr, key_proof).await?;
    Ok((
        StatusCode::CREATED,
        Json(Renewed {
            serial: new.serial.to_hex(),
            replaces: serial.to_hex(),
            profile: current.profile.clone(),
            certificate: signet_pki::to_pem("CERTIFICATE", &new.der),
            chain: s.certificates.chain_pem(),
        }),
    ))
}

/// How the request shows the new key is held by hardware: the account's shipped token's
/// shipment key signed for it, or a YubiKey attested it. `None` when it shows neither.
async fn new_key_proof(
    s: &AppState,
    account: &ApplicationId,
    req: &RenewalRequest,
    csr: &[u8],
) -> Result<Option<serde_json::Value>, ApiError> {
    if let (Some(serial), Some(signature)) = (&req.token_serial, &req.shipment_signature) {
        let refused = |detail: String| ApiError::Conflict { kind: "hardware-key-unproven", detail };
        let serial = TokenSerial::new(serial)
            .map_err(|e| ApiError::BadRequest { kind: "bad-token-serial", detail: e.to_string() })?;
        let signature = base64_field(signature, "bad-shipment-signature", "the shipment signature is not base64")?;
        let token = s.store.token_of(account).await?.filter(|t| t.serial == serial).ok_or_else(|| {
            refused(format!("token {serial} is not the token the RA shipped for this account: renew on that token"))
        })?;
        if !matches!(token.state, StockState::Retrieved(..)) {
            return Err(refused(format!("token {serial} is {}; it cannot prove a renewal", token.state.describe())));
        }
        if !token.signed_by_shipment_key(&renewal_message(&serial, csr), &signature) {
            return Err(refused(format!("the shipment key of token {serial} did not sign this renewal request")));
        }
        return Ok(Some(json!({ "method": "shipment-key", "token_serial": serial.as_str() })));
    }
    if req.attestation.is_empty() {
        return Ok(None);
    }
    let chain = req
        .attestation
        .iter()
        .map(|c| base64_field(c, "bad-attestation", "an attestation certificate is not base64 DER"))
        .collect::<Result<Vec<_>, _>>()?;
    crate::retrieval::attested(s, csr, &chain).map(Some)
}

/// The DER, serial and SubjectPublicKeyInfo of a PEM certificate.
fn parse_certificate(pem_text: &str) -> Result<(Vec<u8>, Serial, Vec<u8>), ApiError> {
    let bad = || ApiError::BadRequest {
        kind: "bad-certificate",
        detail: "the certificate is not one PEM X.509 certificate".into(),
    };
    let pem = pem::parse(pem_text.trim()).map_err(|_| bad())?;
    if pem.tag() != "CERTIFICATE" {
        return Err(bad());
    }
    let der = pem.into_contents();
    let (rest, cert) = x509_parser::certificate::X509Certificate::from_der(&der).map_err(|_| bad())?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let serial = Serial::from_unsigned_bytes(cert.raw_serial()).map_err(|_| bad())?;
    let spki = cert.public_key().raw.to_vec();
    Ok((der, serial, spki))
}

/// Why `current`, one of `all` (the account's certificates, oldest first), may not be renewed at
/// `now`; `None` when it may.
pub(crate) fn refusal(
    catalog: &Catalog,
    current: &AccountCertificate,
    all: &[AccountCertificate],
    now: OffsetDateTime,
) -> Option<ApiError> {
    if current.profile == DEVICE_PROFILE {
        return Some(ApiError::Conflict {
            kind: "not-renewable",
            detail: "device certificates are not renewed: create a new one for the device's new key".into(),
        });
    }
    // Its key must be one the CA generated and escrowed; a subscriber's new key would not be.
    if catalog.profile(&current.profile).is_some_and(|p| p.is_encryption()) {
        return Some(ApiError::Conflict {
            kind: "not-renewable",
            detail: "encryption certificates are not renewed with a key of your own: their keys are generated \
                     and escrowed by the CA; apply for a new certificate"
                .into(),
        });
    }
    let revoked = matches!(current.status, StoredStatus::Revoked { .. });
    if let Err(refused) = renewal::check_window(current.not_after, revoked, now) {
        return Some(refused.into());
    }
    let replacement = replacement(current, all)?;
    Some(RenewalRefused::Replaced { by: replacement.serial.to_hex() }.into())
}

/// Renews `current` (one of `all`, the account's certificates) with the key of `csr`: checks
/// [`refusal`], then issues the same profile for the vetted subject as `subscriber:<account>`.
pub(crate) async fn renew(
    s: &AppState,
    account: &ApplicationId,
    current: &AccountCertificate,
    all: &[AccountCertificate],
    csr: &[u8],
    key_proof: Option<serde_json::Value>,
) -> Result<IssuedCertificate, ApiError> {
    if let Some(refused) = refusal(&s.catalog, current, all, s.clock.now()) {
        return Err(refused);
    }
    let app = s
        .store
        .load(account)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("account {account} has certificates but no application")))?;
    // A token type promises a key born on the token: a pasted request proves nothing of the kind.
    if key_proof.is_none() && s.needs_hardware_key(&app) {
        return Err(ApiError::Conflict {
            kind: "hardware-key-unproven",
            detail: format!(
                "a {} certificate is renewed only with a new key generated on your token: insert the token and \
                 run `signet token renew` (the client and your token's driver: {}/retrieve)",
                s.type_name(app.form().certificate.cert_type()),
                s.base_url
            ),
        });
    }
    let order = app.form().person_order(current.profile.clone());
    let new = s.issue(&cmc::actor(account), &order, csr).await?;
    if let Some(proof) = key_proof {
        tracing::info!(%account, serial = %new.serial, %proof, "renewal key held by hardware");
    }
    tracing::info!(%account, old = %current.serial, new = %new.serial, profile = %current.profile, "certificate renewed");
    let notice = s.notifier.certificate_renewed(
        &app,
        &s.certificate_name(&current.profile),
        &current.serial,
        &new.serial,
        new.not_after.date(),
    );
    // Issuance stores its certificate in steps of its own (intent, then the signed
    // certificate), so the notice follows the last one. The certificate is the subscriber's
    // either way: a queue that failed is logged, not turned into a failed renewal.
    if let Err(e) = s.store.enqueue(&[notice]).await {
        tracing::error!(%account, new = %new.serial, error = %e, "renewal notice not queued");
    }
    Ok(new)
}
