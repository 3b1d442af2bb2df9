//! The ACME server (RFC 8555) for device certificates, under `/acme`.
//!
//! Every account needs External Account Binding (the directory says
//! `externalAccountRequired`): the EAB key ties the account to one enterprise organization and
//! its registered DNS domains, and every order must stay inside them. Certificates are issued
//! under the device profile (`[acme] profile`, default `device-tls`) by the same
//! [`CaService`](signet_ra::issuance::CaService) the RA API uses, with the organization's name
//! in the subject and the order's names in the SAN.
//!
//! Requests are flattened JWS ([`jws`]); replay nonces live in the database, so any node
//! accepts a nonce handed out by any other, once. Challenges ([`validate`]) are validated
//! inside the request that asks for it and only the outcome is stored, so no node holds work
//! another could lose. Answers are `application/json`, errors `application/problem+json` with
//! the ACME error types.

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use signet_authority::acme::validate;
use signet_pki::issue::CertificateOrder;
use signet_pki::subject::Subject;
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::{
    Account, AccountId, AccountStatus, AcmeProblem, AcmeStore, Authorization, AuthorizationId, ChallengeId,
    ChallengeStatus, EabBinding, Identifier, NewOrder, Nonce, Order, OrderId, OrderStatus, ProblemKind, Respond,
    parse_contacts,
};
use signet_ra::issuance::{IssuanceError, RevocationError, Revoked, StoreError};
use signet_ra::jws::{self, ExternalBinding, Jwk, Jws, KeyRef};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::state::AppState;

/// An ACME error answer.
#[derive(Debug)]
pub(crate) struct AcmeError {
    problem: AcmeProblem,
    status: StatusCode,
}

impl From<AcmeProblem> for AcmeError {
    fn from(problem: AcmeProblem) -> Self {
        let status = match problem.kind {
            ProblemKind::Unauthorized => StatusCode::FORBIDDEN,
            ProblemKind::OrderNotReady => StatusCode::FORBIDDEN,
            ProblemKind::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self { problem, status }
    }
}

impl From<StoreError> for AcmeError {
    fn from(e: StoreError) -> Self {
        internal(&e)
    }
}

fn internal(cause: &dyn std::fmt::Display) -> AcmeError {
    tracing::error!(%cause, "ACME internal error");
    AcmeProblem::new(ProblemKind::ServerInternal, "internal error; the operator has the details in the log").into()
}

fn problem(kind: ProblemKind, detail: impl Into<String>) -> AcmeError {
    AcmeProblem::new(kind, detail).into()
}

fn not_found(what: &str) -> AcmeError {
    AcmeError {
        problem: AcmeProblem::new(ProblemKind::Malformed, format!("no such {what}")),
        status: StatusCode::NOT_FOUND,
    }
}

fn problem_json(p: &AcmeProblem) -> Value {
    json!({ "type": p.kind.urn(), "detail": p.detail })
}

impl IntoResponse for AcmeError {
    fn into_response(self) -> Response {
        let mut body = problem_json(&self.problem);
        body["status"] = json!(self.status.as_u16());
        if self.problem.kind == ProblemKind::BadSignatureAlgorithm {
            body["algorithms"] = json!(jws::ALGORITHMS);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        resp
    }
}

type AcmeResult = Result<Response, AcmeError>;

/// Routes under `/acme`; every answer but the directory carries a fresh replay nonce.
pub fn router(state: AppState) -> Router<AppState> {
    let signed = Router::new()
        .route("/acme/new-nonce", get(new_nonce).head(new_nonce))
        .route("/acme/new-account", post(new_account))
        .route("/acme/account/{id}", post(account))
        .route("/acme/account/{id}/orders", post(account_orders))
        .route("/acme/new-order", post(new_order))
        .route("/acme/order/{id}", post(order))
        .route("/acme/order/{id}/finalize", post(finalize))
        .route("/acme/authz/{id}", post(authorization))
        .route("/acme/chall/{id}", post(challenge))
        .route("/acme/cert/{serial}", post(certificate))
        .route("/acme/revoke-cert", post(revoke))
        .layer(axum::middleware::from_fn_with_state(state, replay_nonce));
    Router::new().route("/acme/directory", get(directory)).merge(signed)
}

fn url(state: &AppState, path: &str) -> String {
    format!("{}/acme/{path}", state.base_url)
}

fn timestamp(t: OffsetDateTime) -> Value {
    json!(t.format(&Rfc3339).unwrap_or_default())
}

fn json_response(status: StatusCode, location: Option<String>, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, v);
    }
    resp
}

async fn replay_nonce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut resp = next.run(request).await;
    let nonce = Nonce::generate();
    match state.store.issue_nonce(&nonce, state.clock.now()).await {
        Ok(()) => {
            if let Ok(v) = HeaderValue::from_str(nonce.as_str()) {
                resp.headers_mut().insert("replay-nonce", v);
            }
        }
        // The client asks new-nonce when an answer has none.
        Err(e) => tracing::error!(error = %e, "storing an ACME nonce failed"),
    }
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>;rel=\"index\"", url(&state, "directory"))) {
        h.append(header::LINK, v);
    }
    resp
}

#[tracing::instrument(skip_all)]
async fn directory(State(state): State<AppState>) -> Response {
    let body = json!({
        "newNonce": url(&state, "new-nonce"),
        "newAccount": url(&state, "new-account"),
        "newOrder": url(&state, "new-order"),
        "revokeCert": url(&state, "revoke-cert"),
        "meta": { "externalAccountRequired": true, "website": state.base_url },
    });
    json_response(StatusCode::OK, None, &body)
}

async fn new_nonce(request: Request) -> StatusCode {
    // RFC 8555 §7.2: 200 to HEAD, 204 to GET; the nonce is added on the way out.
    if request.method() == axum::http::Method::HEAD { StatusCode::OK } else { StatusCode::NO_CONTENT }
}

/// Who may sign a request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// An existing account (`kid`).
    Account,
    /// A key presented in the request (`jwk`): new-account.
    NewKey,
    /// Either: revoke-cert (the account, or the certificate's own key).
    Either,
}

/// A verified request.
struct Signed {
    jws: Jws,
    jwk: Jwk,
    account: Option<Account>,
}

impl Signed {
    /// The signing account (requests of [`Signer::Account`] always have one).
    fn account(&self) -> Result<&Account, AcmeError> {
        self.account.as_ref().ok_or_else(|| internal(&"an account request without an account"))
    }
}

/// Checks a request: media type, JWS, `url` = the request URL, key (the account's for `kid`),
/// signature, then spends the nonce.
async fn authenticate(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    signer: Signer,
) -> Result<Signed, AcmeError> {
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next());
    if media_type.map(str::trim) != Some("application/jose+json") {
        return Err(AcmeError {
            problem: AcmeProblem::new(ProblemKind::Malformed, "requests are application/jose+json"),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        });
    }
    let jws = Jws::parse(body)?;
    let request_url = format!("{}{}", state.base_url, uri.path());
    if jws.url != request_url {
        return Err(problem(ProblemKind::Unauthorized, format!("the JWS url {:?} is not the request URL", jws.url)));
    }
    let (jwk, account) = match (&jws.key, signer) {
        (KeyRef::Jwk(k), Signer::NewKey | Signer::Either) => (k.clone(), None),
        (KeyRef::Kid(kid), Signer::Account | Signer::Either) => {
            let unknown = || problem(ProblemKind::AccountDoesNotExist, "no account has this kid");
            let id = kid
                .strip_prefix(&url(state, "account/"))
                .and_then(|id| AccountId::parse(id).ok())
                .ok_or_else(unknown)?;
            let account = state.store.account(&id).await?.ok_or_else(unknown)?;
            if account.status != AccountStatus::Valid {
                return Err(problem(ProblemKind::Unauthorized, "the account is deactivated"));
            }
            let stored: Value = serde_json::from_str(&account.jwk).map_err(|e| internal(&e))?;
            (Jwk::from_json(&stored)?, Some(account))
        }
        (KeyRef::Jwk(_), Signer::Account) => {
            return Err(problem(ProblemKind::Malformed, "sign this request with the account's kid, not a jwk"));
        }
        (KeyRef::Kid(_), Signer::NewKey) => {
            return Err(problem(ProblemKind::Malformed, "new-account requests carry the account key as a jwk"));
        }
    };
    jws.verify(&jwk)?;
    let spent = match Nonce::parse(&jws.nonce) {
        Ok(nonce) => state.store.consume_nonce(&nonce, state.clock.now()).await?,
        Err(_) => false,
    };
    if !spent {
        return Err(problem(ProblemKind::BadNonce, "the nonce is unknown, expired or already used"));
    }
    Ok(Signed { jws, jwk, account })
}

fn account_json(state: &AppState, a: &Account) -> Value {
    json!({
        "status": a.status.name(),
        "contact": a.contact.iter().map(|e| format!("mailto:{e}")).collect::<Vec<_>>(),
        "orders": url(state, &format!("account/{}/orders", a.id)),
        "createdAt": timestamp(a.created_at),
    })
}

fn account_url(state: &AppState, id: &AccountId) -> String {
    url(state, &format!("account/{id}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccountPayload {
    #[serde(default)]
    contact: Vec<String>,
    #[serde(default)]
    only_return_existing: bool,
    external_account_binding: Option<Value>,
}

fn payload<T: serde::de::DeserializeOwned>(jws: &Jws) -> Result<T, AcmeError> {
    serde_json::from_value(Value::Object(jws.payload_object()?))
        .map_err(|e| problem(ProblemKind::Malformed, format!("the payload does not fit this request: {e}")))
}

#[tracing::instrument(skip_all)]
async fn new_account(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::NewKey).await?;
    let req: NewAccountPayload = payload(&signed.jws)?;
    let thumbprint = signed.jwk.thumbprint();
    // RFC 8555 §7.3.1: a known key gets its account back, whatever else the request says.
    if let Some(existing) = state.store.account_by_thumbprint(&thumbprint).await? {
        if existing.status != AccountStatus::Valid {
            return Err(problem(ProblemKind::Unauthorized, "the account with this key is deactivated"));
        }
        return Ok(json_response(
            StatusCode::OK,
            Some(account_url(&state, &existing.id)),
            &account_json(&state, &existing),
        ));
    }
    if req.only_return_existing {
        return Err(problem(ProblemKind::AccountDoesNotExist, "no account has this key"));
    }
    let binding = req.external_account_binding.ok_or_else(|| {
        problem(
            ProblemKind::ExternalAccountRequired,
            "this server requires external account binding: ask your enterprise administrator for an EAB key id and HMAC key",
        )
    })?;
    let binding = ExternalBinding::parse(&binding, &signed.jws.url, &signed.jwk)?;
    let unauthorized =
        || problem(ProblemKind::Unauthorized, "the external account binding key is unknown or already used");
    let eab = state.store.eab_key(binding.key_id()).await?.ok_or_else(unauthorized)?;
    match &eab.binding {
        EabBinding::Unbound(secret) if binding.verify(secret) => {}
        EabBinding::Unbound(_) => {
            return Err(problem(ProblemKind::Unauthorized, "the external account binding's MAC does not verify"));
        }
        EabBinding::Bound(_) => return Err(unauthorized()),
    }
    let contact = parse_contacts(req.contact.iter().map(String::as_str)).map_err(AcmeProblem::from)?;
    let (account, _) =
        Account::register(signed.jwk.canonical_json(), thumbprint.clone(), eab, contact, state.clock.now())
            .map_err(|_| unauthorized())?;
    match state.store.create_account(&account, account.created_event()).await {
        Ok(()) => {}
        Err(StoreError::Conflict("eab key used")) => return Err(unauthorized()),
        // The same key registered at the same moment on another node: that account is this one.
        Err(StoreError::Conflict("account key")) => {
            let existing = state.store.account_by_thumbprint(&thumbprint).await?.ok_or_else(unauthorized)?;
            return Ok(json_response(
                StatusCode::OK,
                Some(account_url(&state, &existing.id)),
                &account_json(&state, &existing),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(account = %account.id, organization = %account.organization, "ACME account created");
    Ok(json_response(StatusCode::CREATED, Some(account_url(&state, &account.id)), &account_json(&state, &account)))
}

fn own_account(signed: &Signed, id: &str) -> Result<Account, AcmeError> {
    let account = signed.account()?;
    if account.id.as_str() != id {
        return Err(problem(ProblemKind::Unauthorized, "this is not the signing account"));
    }
    Ok(account.clone())
}

#[tracing::instrument(skip_all)]
async fn account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let account = own_account(&signed, &id)?;
    if signed.jws.payload.is_empty() {
        return Ok(json_response(StatusCode::OK, None, &account_json(&state, &account)));
    }
    let update = signed.jws.payload_object()?;
    if update.contains_key("contact") {
        return Err(problem(ProblemKind::Malformed, "changing contacts is not supported; create a new account"));
    }
    match update.get("status").and_then(Value::as_str) {
        None => Ok(json_response(StatusCode::OK, None, &account_json(&state, &account))),
        Some("deactivated") => {
            let (closed, event) =
                account.deactivate(state.clock.now()).map_err(|e| problem(ProblemKind::Unauthorized, e.to_string()))?;
            state.store.deactivate_account(&closed, event).await?;
            Ok(json_response(StatusCode::OK, None, &account_json(&state, &closed)))
        }
        Some(other) => Err(problem(ProblemKind::Malformed, format!("an account cannot be set to {other:?}"))),
    }
}

#[tracing::instrument(skip_all)]
async fn account_orders(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let account = own_account(&signed, &id)?;
    let orders: Vec<String> =
        state.store.account_orders(&account.id).await?.iter().map(|o| url(&state, &format!("order/{o}"))).collect();
    Ok(json_response(StatusCode::OK, None, &json!({ "orders": orders })))
}

fn order_json(state: &AppState, o: &Order) -> Value {
    let status = o.status_at(state.clock.now());
    let mut v = json!({
        "status": status.name(),
        "expires": timestamp(o.expires),
        "identifiers": o.identifiers.iter().map(|i| json!({ "type": "dns", "value": i.name().as_str() })).collect::<Vec<_>>(),
        "authorizations": o.authorizations.iter().map(|(id, _)| url(state, &format!("authz/{id}"))).collect::<Vec<_>>(),
        "finalize": url(state, &format!("order/{}/finalize", o.id)),
    });
    match status {
        OrderStatus::Valid { certificate } => {
            v["certificate"] = json!(url(state, &format!("cert/{}", certificate.to_hex())))
        }
        OrderStatus::Invalid { error: Some(e) } => v["error"] = problem_json(&e),
        _ => {}
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrderPayload {
    identifiers: Vec<IdentifierPayload>,
    not_before: Option<Value>,
    not_after: Option<Value>,
}

#[derive(Deserialize)]
struct IdentifierPayload {
    r#type: String,
    value: String,
}

#[tracing::instrument(skip_all)]
async fn new_order(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let account = signed.account()?;
    let req: NewOrderPayload = payload(&signed.jws)?;
    if req.not_before.is_some() || req.not_after.is_some() {
        return Err(problem(
            ProblemKind::Malformed,
            "validity comes from the device profile; omit notBefore and notAfter",
        ));
    }
    let new = NewOrder::new(
        account,
        req.identifiers.iter().map(|i| (i.r#type.as_str(), i.value.as_str())),
        state.clock.now(),
    )
    .map_err(AcmeProblem::from)?;
    state.store.create_order(&new, new.created_event(account)).await?;
    tracing::info!(order = %new.order.id, account = %account.id, "ACME order created");
    Ok(json_response(
        StatusCode::CREATED,
        Some(url(&state, &format!("order/{}", new.order.id))),
        &order_json(&state, &new.order),
    ))
}

async fn own_order(state: &AppState, signed: &Signed, id: &str) -> Result<Order, AcmeError> {
    let id = OrderId::parse(id).map_err(|_| not_found("order"))?;
    let order = state.store.order(&id).await?.ok_or_else(|| not_found("order"))?;
    if order.account != signed.account()?.id {
        return Err(problem(ProblemKind::Unauthorized, "this order belongs to another account"));
    }
    Ok(order)
}

#[tracing::instrument(skip_all)]
async fn order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let order = own_order(&state, &signed, &id).await?;
    Ok(json_response(StatusCode::OK, None, &order_json(&state, &order)))
}

fn challenge_json(state: &AppState, c: &signet_ra::acme::Challenge) -> Value {
    let mut v = json!({
        "type": c.kind.name(),
        "url": url(state, &format!("chall/{}", c.id)),
        "token": c.token.as_str(),
        "status": c.status.name(),
    });
    match &c.status {
        ChallengeStatus::Valid { validated } => v["validated"] = timestamp(*validated),
        ChallengeStatus::Invalid { error } => v["error"] = problem_json(error),
        _ => {}
    }
    v
}

fn authorization_json(state: &AppState, a: &Authorization) -> Value {
    json!({
        "status": a.status_at(state.clock.now()).name(),
        "expires": timestamp(a.expires),
        "identifier": { "type": "dns", "value": a.identifier.name().as_str() },
        "challenges": a.challenges.iter().map(|c| challenge_json(state, c)).collect::<Vec<_>>(),
    })
}

fn check_owner(signed: &Signed, a: &Authorization) -> Result<(), AcmeError> {
    if a.account != signed.account()?.id {
        return Err(problem(ProblemKind::Unauthorized, "this authorization belongs to another account"));
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
async fn authorization(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let id = AuthorizationId::parse(&id).map_err(|_| not_found("authorization"))?;
    let authz = state.store.authorization(&id).await?.ok_or_else(|| not_found("authorization"))?;
    check_owner(&signed, &authz)?;
    if !signed.jws.payload.is_empty() {
        return Err(problem(ProblemKind::Malformed, "authorizations cannot be changed; let them expire"));
    }
    Ok(json_response(StatusCode::OK, None, &authorization_json(&state, &authz)))
}

#[tracing::instrument(skip_all)]
async fn challenge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let account = signed.account()?;
    let id = ChallengeId::parse(&id).map_err(|_| not_found("challenge"))?;
    let authz = state.store.authorization_by_challenge(&id).await?.ok_or_else(|| not_found("challenge"))?;
    check_owner(&signed, &authz)?;
    // POST-as-GET reads; a JSON object (`{}`) asks for validation (RFC 8555 §7.5.1).
    let authz = if signed.jws.payload.is_empty() {
        authz
    } else {
        signed.jws.payload_object()?;
        match authz.respond(&id, &account.thumbprint, state.clock.now()) {
            Respond::Unchanged(authz) => authz,
            Respond::Validate(v) => {
                let outcome = validate::validate(&state.acme, &v).await;
                if let Err(p) = &outcome {
                    tracing::info!(name = %v.name(), kind = v.kind().name(), error = %p.detail, "ACME validation failed");
                }
                let (done, challenge, event) = v.conclude(outcome, account, state.clock.now());
                match state.store.record_validation(&done, &challenge, event).await {
                    Ok(()) => done,
                    // Another request concluded it first: report what it stored.
                    Err(StoreError::Conflict(_)) => {
                        state.store.authorization(&done.id).await?.ok_or_else(|| not_found("authorization"))?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };
    let ch = authz.challenges.iter().find(|c| c.id == id).ok_or_else(|| not_found("challenge"))?;
    let mut resp = json_response(StatusCode::OK, None, &challenge_json(&state, ch));
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>;rel=\"up\"", url(&state, &format!("authz/{}", authz.id)))) {
        resp.headers_mut().append(header::LINK, v);
    }
    Ok(resp)
}

fn b64_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Vec<u8>, AcmeError> {
    obj.get(name)
        .and_then(Value::as_str)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or_else(|| problem(ProblemKind::Malformed, format!("{name} must be base64url DER")))
}

/// The DNS names a CSR requests: its SAN dNSNames and its CN, if it has one (RFC 8555 §7.4:
/// they must be exactly the order's).
fn csr_names(der: &[u8]) -> Result<BTreeSet<Identifier>, AcmeError> {
    let bad = |d: String| problem(ProblemKind::BadCsr, d);
    let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|_| bad("the CSR is not DER PKCS#10".into()))?;
    if !rest.is_empty() {
        return Err(bad("the CSR has trailing bytes".into()));
    }
    let mut names = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(n) => names.push((*n).to_owned()),
                    other => return Err(bad(format!("the CSR requests {other}, but only DNS names are issued"))),
                }
            }
        }
    }
    for cn in csr.certification_request_info.subject.iter_common_name() {
        names.push(cn.as_str().map_err(|_| bad("the CSR's CN is not text".into()))?.to_owned());
    }
    names.iter().map(|n| Identifier::parse("dns", n).map_err(|e| bad(e.to_string()))).collect()
}

fn issuance_problem(e: IssuanceError) -> AcmeProblem {
    match e {
        IssuanceError::Csr(_) | IssuanceError::DuplicateKey => AcmeProblem::new(ProblemKind::BadCsr, e.to_string()),
        other => {
            tracing::error!(error = %other, "ACME issuance failed");
            AcmeProblem::issuance_failed()
        }
    }
}

#[tracing::instrument(skip_all)]
async fn finalize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let account = signed.account()?;
    let order = own_order(&state, &signed, &id).await?;
    let csr = b64_field(&signed.jws.payload_object()?, "csr")?;
    let names = csr_names(&csr)?;
    let finalizing = order.finalizing(&names, account, state.clock.now()).map_err(AcmeProblem::from)?;
    let subject = Subject::Device {
        organization: account.organization.clone(),
        dns_names: finalizing.accepted.order.identifiers.iter().map(|i| i.name().clone()).collect(),
    };
    let cert_order =
        CertificateOrder { profile: state.acme.profile.clone(), subject, validity_years: state.acme.validity_years };
    // The order moves with the CA's writes: processing with the intent, then valid or
    // invalid. A refusal before the intent (a bad CSR, a key certified already) leaves it
    // ready, for the client to finalize again.
    let processing = finalizing.accepted.order.clone();
    match state.issue_for(&account.actor(), &cert_order, &csr, Some(finalizing)).await {
        Ok(cert) => {
            tracing::info!(serial = %cert.serial, order = %processing.id, "ACME certificate issued");
            let (done, _) = processing.issued(cert.serial, account, state.clock.now()).map_err(|e| internal(&e))?;
            Ok(json_response(
                StatusCode::OK,
                Some(url(&state, &format!("order/{}", done.id))),
                &order_json(&state, &done),
            ))
        }
        Err(IssuanceError::Store(StoreError::Conflict("order progress"))) => {
            Err(problem(ProblemKind::OrderNotReady, "the order was finalized already"))
        }
        Err(e) => Err(issuance_problem(e).into()),
    }
}

#[tracing::instrument(skip_all)]
async fn certificate(
    State(state): State<AppState>,
    Path(serial): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Account).await?;
    let serial = Serial::from_hex(&serial).map_err(|_| not_found("certificate"))?;
    let order = state.store.order_by_certificate(&serial).await?.ok_or_else(|| not_found("certificate"))?;
    if order.account != signed.account()?.id {
        return Err(problem(ProblemKind::Unauthorized, "this certificate belongs to another account"));
    }
    let cert = state.store.certificate(&serial).await?.ok_or_else(|| not_found("certificate"))?;
    let pem = signet_pki::to_pem("CERTIFICATE", &cert.der) + &state.certificates.chain_pem();
    let mut resp = pem.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pem-certificate-chain"));
    Ok(resp)
}

#[tracing::instrument(skip_all)]
async fn revoke(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> AcmeResult {
    let signed = authenticate(&state, &uri, &headers, &body, Signer::Either).await?;
    let req = signed.jws.payload_object()?;
    let der = b64_field(&req, "certificate")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| problem(ProblemKind::Malformed, "certificate is not a DER X.509 certificate"))?;
    let serial = Serial::from_der_integer(parsed.raw_serial()).map_err(|_| not_found("certificate"))?;
    let stored =
        state.store.certificate(&serial).await?.filter(|c| c.der == der).ok_or_else(|| not_found("certificate"))?;
    // RFC 8555 §7.6: the account that ordered it, or whoever holds the certificate's key.
    let actor = match &signed.account {
        Some(account) => {
            let order = state.store.order_by_certificate(&serial).await?;
            if order.is_none_or(|o| o.account != account.id) {
                return Err(problem(ProblemKind::Unauthorized, "this account did not order this certificate"));
            }
            account.actor()
        }
        None => {
            if Jwk::from_spki(parsed.public_key().raw).as_ref() != Some(&signed.jwk) {
                return Err(problem(ProblemKind::Unauthorized, "the request is not signed by the certificate's key"));
            }
            "acme:certificate-key".to_owned()
        }
    };
    let reason =
        match req.get("reason") {
            None => RevocationReason::Unspecified,
            Some(v) => v.as_u64().and_then(|c| u8::try_from(c).ok()).and_then(RevocationReason::from_code).ok_or_else(
                || problem(ProblemKind::BadRevocationReason, format!("{v} is not an RFC 5280 reason code")),
            )?,
        };
    match state.revoke(&actor, &stored.serial, reason).await {
        Ok(Revoked::Now) => {
            tracing::info!(serial = %stored.serial, reason = reason.name(), "certificate revoked over ACME");
            Ok(StatusCode::OK.into_response())
        }
        Ok(Revoked::Already) => Err(problem(ProblemKind::AlreadyRevoked, "the certificate was revoked before")),
        Err(RevocationError::BadReason) => {
            Err(problem(ProblemKind::BadRevocationReason, "removeFromCRL is not a revocation reason"))
        }
        Err(RevocationError::NotFound(_)) => Err(not_found("certificate")),
        Err(e) => Err(internal(&e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use signet_pki::subject::OrganizationName;
    use signet_ra::acme::{DomainScope, EabKey};
    use signet_ra::audit::{AuditAction, AuditEvent};
    use signet_ra::issuance::{ABANDONED_AFTER, CaStore, IssuanceIntent, StoredStatus};
    use signet_ra::{Clock, FakeClock};
    use tower::ServiceExt;

    use super::*;
    use signet_authority::config::ServerConfig;
    use signet_ra::jws::fixtures::{ClientKey, eab};

    const BASE: &str = "http://acme.test";

    struct Harness {
        state: AppState,
        _dir: tempfile::TempDir,
    }

    /// An account's order whose one name's authorization is valid: ready to finalize.
    struct ReadyOrder {
        key: ClientKey,
        kid: String,
        account: Account,
        url: String,
        finalize_url: String,
    }

    impl Harness {
        async fn new() -> Self {
            Self::with_clock(Arc::new(FakeClock::at(OffsetDateTime::now_utc()))).await
        }

        async fn with_clock(clock: Arc<dyn Clock>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let settings =
                ServerConfig { data_dir: Some(dir.path().to_owned()), ..Default::default() }.into_settings().unwrap();
            let state = crate::build_state(&settings, BASE, clock).await.unwrap();
            Self { state, _dir: dir }
        }

        /// A new account's order for `name` (under acme.example), its challenge validated
        /// through the store: reaching the name is not the point.
        async fn ready_order(&self, name: &str) -> ReadyOrder {
            let (eab_kid, secret) = self.eab_key("acme.example").await;
            let key = ClientKey::p256();
            let payload = json!({ "externalAccountBinding": eab(&eab_kid, &secret, NEW_ACCOUNT, &key) });
            let body = key.request(NEW_ACCOUNT, &self.nonce().await, None, payload.to_string().as_bytes());
            let (status, headers, _) = self.send("POST", "/acme/new-account", body).await;
            assert_eq!(status, StatusCode::CREATED);
            let kid = headers[header::LOCATION].to_str().unwrap().to_owned();
            let store = self.state.store();
            let account =
                store.account(&AccountId::parse(kid.rsplit('/').next().unwrap()).unwrap()).await.unwrap().unwrap();

            let payload = json!({ "identifiers": [{ "type": "dns", "value": name }] }).to_string();
            let body =
                key.request(&format!("{BASE}/acme/new-order"), &self.nonce().await, Some(&kid), payload.as_bytes());
            let (status, headers, order) = self.send("POST", "/acme/new-order", body).await;
            assert_eq!(status, StatusCode::CREATED, "{order}");
            let url = headers[header::LOCATION].to_str().unwrap().to_owned();
            let authz_id = order["authorizations"][0].as_str().unwrap().rsplit('/').next().unwrap();
            let authz = store.authorization(&AuthorizationId::parse(authz_id).unwrap()).await.unwrap().unwrap();
            let challenge = authz.challenges[0].id.clone();
            let Respond::Validate(v) = authz.respond(&challenge, &account.thumbprint, self.state.clock().now()) else {
                panic!("pending")
            };
            let (valid, challenge, event) = v.conclude(Ok(()), &account, self.state.clock().now());
            store.record_validation(&valid, &challenge, event).await.unwrap();
            let finalize_url = order["finalize"].as_str().unwrap().to_owned();
            ReadyOrder { key, kid, account, url, finalize_url }
        }

        /// The order as its client reads it (POST-as-GET).
        async fn order_as_client(&self, o: &ReadyOrder) -> Value {
            let body = o.key.request(&o.url, &self.nonce().await, Some(&o.kid), b"");
            self.send("POST", o.url.strip_prefix(BASE).unwrap(), body).await.2
        }

        async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, HeaderMap, Value) {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/jose+json")
                .body(Body::from(body))
                .unwrap();
            let resp = crate::app(self.state.clone()).oneshot(req).await.unwrap();
            let (status, headers) = (resp.status(), resp.headers().clone());
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        }

        async fn nonce(&self) -> String {
            let (status, headers, _) = self.send("HEAD", "/acme/new-nonce", vec![]).await;
            assert_eq!(status, StatusCode::OK);
            headers["replay-nonce"].to_str().unwrap().to_owned()
        }

        async fn eab_key(&self, domains: &str) -> (String, Vec<u8>) {
            let org = OrganizationName::new("Acme Devices").unwrap();
            let key = EabKey::generate(org, DomainScope::parse(domains).unwrap(), self.state.clock().now());
            self.state.store().create_eab_key(&key, key.created_event("cli:test")).await.unwrap();
            let EabBinding::Unbound(secret) = &key.binding else { unreachable!() };
            (key.id.to_string(), secret.as_bytes().to_vec())
        }
    }

    fn error_type(body: &Value) -> &str {
        body["type"].as_str().unwrap_or_default().trim_start_matches("urn:ietf:params:acme:error:")
    }

    const NEW_ACCOUNT: &str = "http://acme.test/acme/new-account";

    #[tokio::test]
    async fn nonces_urls_and_signatures_are_enforced() {
        let h = Harness::new().await;
        let (status, _, dir) = h.send("GET", "/acme/directory", vec![]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(dir["meta"]["externalAccountRequired"], json!(true));
        assert_eq!(dir["newAccount"], json!(NEW_ACCOUNT));

        let key = ClientKey::p256();
        let payload = br#"{"termsOfServiceAgreed":true}"#;
        // No EAB: refused, and the nonce is spent.
        let body = key.request(NEW_ACCOUNT, &h.nonce().await, None, payload);
        let (status, headers, err) = h.send("POST", "/acme/new-account", body.clone()).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "externalAccountRequired"), "{err}");
        assert!(headers.contains_key("replay-nonce"), "errors carry a fresh nonce too");
        let (status, _, err) = h.send("POST", "/acme/new-account", body).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "badNonce"), "a replayed request");
        let body = key.request(NEW_ACCOUNT, "never-issued", None, payload);
        assert_eq!(error_type(&h.send("POST", "/acme/new-account", body).await.2), "badNonce");

        // The signed url must be the URL posted to.
        let body = key.request("http://acme.test/acme/new-order", &h.nonce().await, None, payload);
        let (status, _, err) = h.send("POST", "/acme/new-account", body).await;
        assert_eq!((status, error_type(&err)), (StatusCode::FORBIDDEN, "unauthorized"), "{err}");

        // A signature by another key over the same header does not verify.
        let nonce = h.nonce().await;
        let mut forged: Value = serde_json::from_slice(&key.request(NEW_ACCOUNT, &nonce, None, payload)).unwrap();
        let other: Value =
            serde_json::from_slice(&ClientKey::p256().request(NEW_ACCOUNT, &nonce, None, payload)).unwrap();
        forged["signature"] = other["signature"].clone();
        let (status, _, err) = h.send("POST", "/acme/new-account", forged.to_string().into_bytes()).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "malformed"), "{err}");
        let (status, _, err) = h.send("POST", "/acme/new-account", b"{}".to_vec()).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "malformed"));
    }

    #[tokio::test]
    async fn eab_binds_one_account_whose_orders_stay_in_its_domains() {
        let h = Harness::new().await;
        let (kid, secret) = h.eab_key("acme.example").await;
        let key = ClientKey::rsa();

        let with_eab = |key: &ClientKey, hmac: &[u8], nonce: &str| {
            let payload = json!({
                "contact": ["mailto:ops@acme.example"],
                "termsOfServiceAgreed": true,
                "externalAccountBinding": eab(&kid, hmac, NEW_ACCOUNT, key),
            });
            key.request(NEW_ACCOUNT, nonce, None, payload.to_string().as_bytes())
        };
        let wrong = with_eab(&key, &[7; 32], &h.nonce().await);
        let (status, _, err) = h.send("POST", "/acme/new-account", wrong).await;
        assert_eq!((status, error_type(&err)), (StatusCode::FORBIDDEN, "unauthorized"), "wrong HMAC key: {err}");

        let (status, headers, account) =
            h.send("POST", "/acme/new-account", with_eab(&key, &secret, &h.nonce().await)).await;
        assert_eq!(status, StatusCode::CREATED, "{account}");
        assert_eq!(account["contact"], json!(["mailto:ops@acme.example"]));
        let kid_url = headers[header::LOCATION].to_str().unwrap().to_owned();
        // The same key again finds its account; another key cannot reuse the EAB key.
        let (status, headers, _) = h.send("POST", "/acme/new-account", with_eab(&key, &secret, &h.nonce().await)).await;
        assert_eq!((status, headers[header::LOCATION].to_str().unwrap()), (StatusCode::OK, kid_url.as_str()));
        let other = ClientKey::p256();
        let (status, _, err) = h.send("POST", "/acme/new-account", with_eab(&other, &secret, &h.nonce().await)).await;
        assert_eq!((status, error_type(&err)), (StatusCode::FORBIDDEN, "unauthorized"), "EAB key reused: {err}");

        let new_order = "http://acme.test/acme/new-order";
        let order = |names: &[&str]| {
            let ids: Vec<Value> = names.iter().map(|n| json!({ "type": "dns", "value": n })).collect();
            json!({ "identifiers": ids }).to_string().into_bytes()
        };
        let body = key.request(new_order, &h.nonce().await, Some(&kid_url), &order(&["www.other.example"]));
        let (status, _, err) = h.send("POST", "/acme/new-order", body).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "rejectedIdentifier"), "{err}");
        assert!(err["detail"].as_str().unwrap().contains("acme.example"), "the detail names the allowed domains");
        let body = key.request(new_order, &h.nonce().await, Some(&kid_url), &order(&["*.acme.example"]));
        assert_eq!(error_type(&h.send("POST", "/acme/new-order", body).await.2), "rejectedIdentifier");
        // A jwk instead of the kid is refused after account creation.
        let body = key.request(new_order, &h.nonce().await, None, &order(&["d.acme.example"]));
        assert_eq!(error_type(&h.send("POST", "/acme/new-order", body).await.2), "malformed");

        let body = key.request(new_order, &h.nonce().await, Some(&kid_url), &order(&["d.acme.example"]));
        let (status, headers, created) = h.send("POST", "/acme/new-order", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["status"], json!("pending"));
        let order_url = headers[header::LOCATION].to_str().unwrap().to_owned();
        // Another account cannot read it.
        let (kid2, secret2) = h.eab_key("acme.example").await;
        let stranger = ClientKey::p256();
        let payload = json!({ "externalAccountBinding": eab(&kid2, &secret2, NEW_ACCOUNT, &stranger) });
        let body = stranger.request(NEW_ACCOUNT, &h.nonce().await, None, payload.to_string().as_bytes());
        let (_, headers, _) = h.send("POST", "/acme/new-account", body).await;
        let stranger_url = headers[header::LOCATION].to_str().unwrap().to_owned();
        let path = order_url.strip_prefix(BASE).unwrap();
        let body = stranger.request(&order_url, &h.nonce().await, Some(&stranger_url), b"");
        assert_eq!(error_type(&h.send("POST", path, body).await.2), "unauthorized");
        let body = key.request(&order_url, &h.nonce().await, Some(&kid_url), b"");
        assert_eq!(h.send("POST", path, body).await.2["status"], json!("pending"));

        // A deactivated account signs nothing more, and its key cannot come back.
        let account_path = kid_url.strip_prefix(BASE).unwrap();
        let body = key.request(&kid_url, &h.nonce().await, Some(&kid_url), br#"{"status":"deactivated"}"#);
        assert_eq!(h.send("POST", account_path, body).await.2["status"], json!("deactivated"));
        let body = key.request(new_order, &h.nonce().await, Some(&kid_url), &order(&["d.acme.example"]));
        assert_eq!(error_type(&h.send("POST", "/acme/new-order", body).await.2), "unauthorized");
        let (status, _, err) = h.send("POST", "/acme/new-account", with_eab(&key, &secret, &h.nonce().await)).await;
        assert_eq!((status, error_type(&err)), (StatusCode::FORBIDDEN, "unauthorized"));
    }

    /// A DER CSR for a fresh P-256 key naming `name` (openssl, as a client would make it).
    fn csr(dir: &std::path::Path, name: &str) -> Vec<u8> {
        let out = dir.join(format!("{name}.csr"));
        let made = std::process::Command::new("openssl")
            .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .args(["-subj", &format!("/CN={name}"), "-outform", "DER", "-out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        std::fs::read(out).unwrap()
    }

    // Finalize moves the order with the CA's own writes: a CSR the CA refuses leaves the order
    // ready for another try, a good one makes it valid, and a second finalize is refused.
    #[tokio::test]
    async fn finalize_moves_the_order_with_the_certificate() {
        let h = Harness::new().await;
        let name = "f.acme.example";
        let o = h.ready_order(name).await;
        let store = h.state.store();
        let finalize_path = o.finalize_url.strip_prefix(BASE).unwrap().to_owned();
        let finalize = |der: &[u8], nonce: String| {
            let payload = json!({ "csr": URL_SAFE_NO_PAD.encode(der) }).to_string();
            o.key.request(&o.finalize_url, &nonce, Some(&o.kid), payload.as_bytes())
        };
        let order_status = async || h.order_as_client(&o).await["status"].clone();
        let dir = tempfile::tempdir().unwrap();
        let good = csr(dir.path(), name);
        // Its signature broken: the CSR no longer proves possession of its key.
        let mut forged = good.clone();
        *forged.last_mut().unwrap() ^= 1;
        let (status, _, err) = h.send("POST", &finalize_path, finalize(&forged, h.nonce().await)).await;
        assert_eq!((status, error_type(&err)), (StatusCode::BAD_REQUEST, "badCSR"), "{err}");
        assert_eq!(order_status().await, json!("ready"), "a refused CSR leaves the order ready");

        let (status, _, done) = h.send("POST", &finalize_path, finalize(&good, h.nonce().await)).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["status"], json!("valid"));
        let serial = done["certificate"].as_str().unwrap().rsplit('/').next().unwrap();
        assert_eq!(store.status(&Serial::from_hex(serial).unwrap()).await.unwrap(), Some(StoredStatus::Good));
        assert_eq!(order_status().await, json!("valid"));
        let (_, _, err) = h.send("POST", &finalize_path, finalize(&good, h.nonce().await)).await;
        assert_eq!(error_type(&err), "orderNotReady", "{err}");

        let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
        let order_moves: Vec<&str> = actions
            .iter()
            .map(String::as_str)
            .filter(|a| a.starts_with("acme-order-") && *a != "acme-order-created")
            .collect();
        assert_eq!(order_moves, ["acme-order-processing", "acme-order-valid"], "{actions:?}");
        assert_eq!(store.verify_audit().await.unwrap(), Ok(actions.len()));
    }

    // A node stopped between the intent and the certificate: once the intents job resolves
    // the intent as abandoned, the client polling its order reads that it is invalid and what
    // to do, instead of `processing` for ever.
    #[tokio::test]
    async fn an_interrupted_issuance_makes_its_order_invalid() {
        let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
        let h = Harness::with_clock(clock.clone()).await;
        let name = "g.acme.example";
        let o = h.ready_order(name).await;
        let store = h.state.store();

        // What a finalize leaves behind when its node is killed before it signs: the CA's
        // intent, and the order processing with it (one transaction).
        let id = OrderId::parse(o.url.rsplit('/').next().unwrap()).unwrap();
        let order = store.order(&id).await.unwrap().unwrap();
        let names = [Identifier::parse("dns", name).unwrap()].into();
        let finalizing = order.finalizing(&names, &o.account, clock.now()).unwrap();
        let serial = Serial::issued_at(clock.now());
        let intent = IssuanceIntent {
            serial: serial.clone(),
            profile: "device-tls".into(),
            subject_json: "{}".into(),
            spki_sha256: "interrupted-key".into(),
            requested_by: o.account.actor(),
            at: clock.now(),
        };
        let audit =
            AuditEvent::new(clock.now(), &o.account.actor(), AuditAction::IssuanceIntent, serial.to_hex(), json!({}));
        store.record_intent(&intent, audit, Some(&finalizing.accepted)).await.unwrap();
        assert_eq!(h.order_as_client(&o).await["status"], json!("processing"));

        // The intents job, run before the intent is old enough, leaves it; run after, resolves it.
        assert!(h.state.core().authority.resolve_abandoned_intents(10).await.unwrap().is_empty());
        clock.advance(ABANDONED_AFTER + time::Duration::minutes(1));
        assert_eq!(h.state.core().authority.resolve_abandoned_intents(10).await.unwrap(), [serial]);
        let order = h.order_as_client(&o).await;
        assert_eq!(order["status"], json!("invalid"), "{order}");
        assert_eq!(order["error"]["type"], json!("urn:ietf:params:acme:error:serverInternal"), "{order}");
        assert_eq!(order["error"]["detail"], json!(AcmeProblem::issuance_interrupted().detail), "{order}");
        assert!(store.verify_audit().await.unwrap().is_ok());
    }
}
