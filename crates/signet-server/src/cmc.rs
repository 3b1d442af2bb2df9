//! The Certificate Management Center (DESIGN §2 "CMC / soft token"): subscribers sign
//! in with the account password and their soft token, enroll or replace the token in two steps,
//! set recovery questions, and — each confirmed with a fresh code (step-up) — revoke, renew, and
//! create device certificates for their organization's registered domains.
//!
//! The rules (token lifecycle, lockouts, step-up, recovery) are in [`signet_ra::cmc`]; this
//! module turns them into pages. Every refusal of a typed secret reads the same
//! ([`lockout::REFUSED`]) whichever secret was wrong.

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

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Template)]
#[template(path = "cmc/sign_in.html")]
struct SignInPage {
    csrf: String,
    reference: String,
    error: String,
}

fn sign_in_view(session: &Session, reference: &str, error: &str, status: StatusCode) -> Response {
    let page = SignInPage { csrf: session.csrf().to_owned(), reference: reference.to_owned(), error: error.to_owned() };
    with_status(render(&page), status)
}

async fn sign_in_page(session: Session) -> Response {
    if matches!(session.principal(), Principal::Subscriber(_)) {
        return Redirect::to(HOME).into_response();
    }
    sign_in_view(&session, "", "", StatusCode::OK)
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// The reference as typed, bounded, for counting failures (also of references that do not
/// parse), and the account it names when it parses.
fn subject_of(reference: &str) -> (String, Option<ApplicationId>) {
    let id = ApplicationId::new(reference.trim()).ok();
    let subject = match &id {
        Some(id) => id.as_str().to_owned(),
        None => reference.trim().chars().take(64).collect(),
    };
    (subject, id)
}

#[tracing::instrument(skip_all)]
async fn sign_in(State(s): State<AppState>, mut session: Session, Form(form): Form<SignInForm>) -> Response {
    let (subject, id) = subject_of(&form.reference);
    let password_ok = match password_matches::<PageError>(&s, id.as_ref(), form.password).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let now = s.clock.now();
    let outcome = cmc::sign_in(&s.store, &subject, id.as_ref(), password_ok, &form.code, now).await;
    let (principal, to) = match (outcome, id) {
        (Ok(SignedIn::Complete), Some(id)) => (Principal::Subscriber(id.as_str().to_owned()), HOME),
        (Ok(SignedIn::MustEnroll), Some(id)) => (Principal::Enrolling(id.as_str().to_owned()), "/cmc/soft-token"),
        (Ok(_), None) => return PageError::Internal("signed in without an account".into()).into_response(),
        (Err(e), _) => {
            return match refusal(e, s.clock.now()) {
                Ok((message, status)) => sign_in_view(&session, &form.reference, &message, status),
                Err(e) => e.into_response(),
            };
        }
    };
    if let Err(e) = session.become_principal(principal).await {
        return e.into_response();
    }
    tracing::info!(account = %subject, "subscriber signed in to the CMC");
    Redirect::to(to).into_response()
}

async fn sign_out(mut session: Session) -> Response {
    match session.become_principal(Principal::Anonymous).await {
        Ok(()) => Redirect::to(SIGN_IN).into_response(),
        Err(e) => e.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Home: the account's certificates and the secure actions

struct CertificateRow {
    serial: String,
    type_name: String,
    not_before: String,
    not_after: String,
    status: String,
    revocable: bool,
    /// Empty when renewal is open; otherwise why not (window dates).
    renewal: String,
    renewable: bool,
}

#[derive(Template)]
#[template(path = "cmc/home.html")]
struct HomePage {
    csrf: String,
    account: String,
    name: String,
    token_serial: String,
    has_questions: bool,
    certificates: Vec<CertificateRow>,
    reasons: Vec<(u8, &'static str)>,
    device_domains: Vec<String>,
    notice: String,
    error: String,
    /// The serial the error belongs to, so it shows beside that certificate.
    error_serial: String,
    /// After a key-compromise revocation: the serial revoked, and the account's other valid
    /// certificates (serial, name) whose keys may have gone with it.
    compromised: String,
    others: Vec<(String, String)>,
}

fn reason_label(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::KeyCompromise => "The key (token or PIN) was compromised",
        RevocationReason::AffiliationChanged => "I left the organization, or my name or role changed",
        RevocationReason::Superseded => "A newer certificate replaces it",
        RevocationReason::CessationOfOperation => "I no longer need it",
        _ => "Other reason",
    }
}

fn row(s: &AppState, c: &AccountCertificate, all: &[AccountCertificate], now: OffsetDateTime) -> CertificateRow {
    let type_name = s.certificate_name(&c.profile);
    let (status, revoked) = match &c.status {
        StoredStatus::Revoked { at, reason } => {
            (format!("Revoked on {}: {}", day(*at), reason_in_words(*reason)), true)
        }
        _ if c.not_after <= now => ("Expired".to_owned(), false),
        _ => ("Valid".to_owned(), false),
    };
    // Internal errors cannot come from the rules; they read as "not renewable" all the same.
    let refusal = renewal::refusal(&s.catalog, c, all, now)
        .map(|e| e.user_detail().unwrap_or_else(|cause| cause))
        .or_else(|| on_token_only(s, c));
    CertificateRow {
        serial: c.serial.to_hex(),
        type_name,
        not_before: day(c.not_before),
        not_after: day(c.not_after),
        revocable: !revoked && c.not_after > now,
        renewable: refusal.is_none(),
        renewal: refusal.map(as_sentence).unwrap_or_default(),
        status,
    }
}

/// A refusal written to follow a colon ("the certificate is revoked: …") as a sentence of its own
/// on the page: capitalized and ending with a full stop.
fn as_sentence(text: String) -> String {
    let mut chars = text.chars();
    let Some(first) = chars.next() else { return text };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Why a pasted request cannot renew `c`: a token type's new key must be proven on the token,
/// which only `signet token renew` does. `None` for software and device types.
fn on_token_only(s: &AppState, c: &AccountCertificate) -> Option<String> {
    let p = s.catalog.profile(&c.profile).filter(|p| p.cert_type.key_storage == KeyStorage::Hardware)?;
    Some(format!(
        "A {} certificate is renewed on your token: insert it and run `signet token renew`, which generates \
         the new key on the token and proves it. A pasted certificate request cannot show where its key is.",
        p.cert_type.name
    ))
}

/// What the home page shows besides its rows: a confirmation, or an error beside a certificate.
#[derive(Default)]
struct Outcome {
    notice: String,
    error: String,
    error_serial: String,
    /// The certificate just revoked for key compromise, whose companions the page offers to
    /// revoke too.
    compromised: Option<Serial>,
}

async fn home_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let now = s.clock.now();
    let token = s.store.soft_token(id, "active").await?;
    let all = s.store.account_certificates(id).await?;
    let certificates = all.iter().map(|c| row(s, c, &all, now)).collect();
    let (compromised, others) = match &outcome.compromised {
        Some(serial) => (
            serial.to_hex(),
            companions(s, &all, serial, now).map(|c| (c.serial.to_hex(), s.certificate_name(&c.profile))).collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    let device_domains = registered_domains(s, &app.form().organization).await?;
    let page = HomePage {
        csrf: session.csrf().to_owned(),
        account: id.as_str().to_owned(),
        name: app.form().applicant.name.as_str().to_owned(),
        token_serial: token.map(|t| t.serial.as_str().to_owned()).unwrap_or_default(),
        has_questions: !s.store.recovery_questions(id).await?.is_empty(),
        certificates,
        reasons: SUBSCRIBER_REASONS.iter().map(|r| (r.code(), reason_label(*r))).collect(),
        device_domains,
        notice: outcome.notice,
        error: outcome.error,
        error_serial: outcome.error_serial,
        compromised,
        others,
    };
    let status = if page.error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

/// The organization's registered domains, as the pages list them (empty if it has none).
async fn registered_domains(s: &AppState, organization: &OrganizationName) -> Result<Vec<String>, PageError> {
    let scope = s.store.organization_domains(organization).await?;
    Ok(scope.map(|scope| scope.domains().map(|d| d.as_str().to_owned()).collect()).unwrap_or_default())
}

async fn home(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    home_view(&s, &session, &id, Outcome::default()).await.unwrap_or_else(IntoResponse::into_response)
}

/// One of the account's certificates by its serial as in the URL; `NotFound` for a serial of
/// someone else, so serials cannot be probed.
async fn owned(s: &AppState, id: &ApplicationId, serial: &str) -> Result<AccountCertificate, PageError> {
    let serial = Serial::from_hex(serial).map_err(|_| PageError::NotFound)?;
    s.store.account_certificates(id).await?.into_iter().find(|c| c.serial == serial).ok_or(PageError::NotFound)
}

async fn download(State(s): State<AppState>, session: Session, Path(serial): Path<String>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    match owned(&s, &id, &serial).await {
        Ok(c) => ([(header::CONTENT_TYPE, "application/x-pem-file")], signet_pki::to_pem("CERTIFICATE", &c.der))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a subscriber is told when the code confirming an action is refused. Unlike at the
/// sign-in form, naming the code tells nothing away: the session already proved the password,
/// and the code is the only secret a step-up checks.
const STEP_UP_REFUSED: &str = "That code from your authenticator app was not accepted. Codes change every 30 seconds \
     and each works once: enter the code your app shows now (your PIN first, if you set one).";

/// The step-up check before a secure action: the answer to show when the code is refused.
async fn confirm(s: &AppState, id: &ApplicationId, code: &str, action: &str) -> Result<Option<String>, PageError> {
    match cmc::step_up(&s.store, id, code, action, s.clock.now()).await {
        Ok(()) => Ok(None),
        Err(CmcAuthError::Refused) => Ok(Some(STEP_UP_REFUSED.to_owned())),
        Err(e) => refusal(e, s.clock.now()).map(|(message, _)| {
            Some(format!("{message} Then enter a fresh code from your authenticator app to confirm this action."))
        }),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    code: String,
}

#[tracing::instrument(skip_all, fields(%serial))]
async fn revoke(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    revoke_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn revoke_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    serial: &str,
    form: RevokeForm,
) -> Result<Response, PageError> {
    let cert = owned(s, id, serial).await?;
    let fail = |error: String| Outcome { error, error_serial: cert.serial.to_hex(), ..Outcome::default() };
    let reason =
        form.reason.parse::<u8>().ok().and_then(RevocationReason::from_code).filter(|r| SUBSCRIBER_REASONS.contains(r));
    let Some(reason) = reason else {
        return home_view(s, session, id, fail("Choose why the certificate is revoked.".into())).await;
    };
    if let Some(refused) = confirm(s, id, &form.code, "revoke").await? {
        return home_view(s, session, id, fail(refused)).await;
    }
    revoke_one(s, id, &cert.serial, reason).await?;
    let notice = format!(
        "Certificate {} is revoked because {}. Systems that check it are told so at once. We have emailed you a \
         confirmation.",
        cert.serial.to_hex(),
        reason_in_words(reason)
    );
    let compromised = (reason == RevocationReason::KeyCompromise).then(|| cert.serial.clone());
    home_view(s, session, id, Outcome { notice, compromised, ..Outcome::default() }).await
}

/// Revokes one of the account's certificates (the subscriber's notice goes with it).
async fn revoke_one(
    s: &AppState,
    id: &ApplicationId,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<(), PageError> {
    s.revoke(&cmc::actor(id), serial, reason).await.map_err(|e| PageError::Internal(e.to_string()))?;
    tracing::info!(account = %id, %serial, reason = reason.name(), "subscriber revoked a certificate");
    Ok(())
}

/// The account's other still-valid certificates whose keys a compromise of `serial`'s may
/// have taken along (the same token, the same person): all but device certificates, whose keys
/// live on the organization's servers.
fn companions<'a>(
    s: &'a AppState,
    all: &'a [AccountCertificate],
    serial: &'a Serial,
    now: OffsetDateTime,
) -> impl Iterator<Item = &'a AccountCertificate> {
    all.iter().filter(move |c| {
        &c.serial != serial
            && c.status == StoredStatus::Good
            && c.not_after > now
            && !s.catalog.profile(&c.profile).is_some_and(|p| p.subject == SubjectKind::Device)
    })
}

#[derive(Deserialize)]
struct RevokeOthersForm {
    #[serde(default)]
    code: String,
}

/// After a key-compromise revocation: revokes the account's other valid certificates for key
/// compromise too, confirmed with one fresh code. The list is worked out again here, not taken
/// from the form, so a post cannot name certificates the page did not offer.
#[tracing::instrument(skip_all, fields(%serial))]
async fn revoke_others(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RevokeOthersForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    revoke_others_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn revoke_others_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    serial: &str,
    form: RevokeOthersForm,
) -> Result<Response, PageError> {
    let cert = owned(s, id, serial).await?;
    if !matches!(cert.status, StoredStatus::Revoked { reason: RevocationReason::KeyCompromise, .. }) {
        return Err(PageError::NotFound);
    }
    if let Some(error) = confirm(s, id, &form.code, "revoke").await? {
        let outcome = Outcome { error, compromised: Some(cert.serial), ..Outcome::default() };
        return home_view(s, session, id, outcome).await;
    }
    let all = s.store.account_certificates(id).await?;
    let others: Vec<Serial> = companions(s, &all, &cert.serial, s.clock.now()).map(|c| c.serial.clone()).collect();
    for other in &others {
        revoke_one(s, id, other, RevocationReason::KeyCompromise).await?;
    }
    let notice = match others.len() {
        0 => "None of your other certificates was still valid: nothing more to revoke.".to_owned(),
        _ => format!(
            "Also revoked because the key was compromised: {}. We have emailed you a confirmation for each.",
            others.iter().map(Serial::to_hex).collect::<Vec<_>>().join(", ")
        ),
    };
    home_view(s, session, id, Outcome { notice, ..Outcome::default() }).await
}

/// A client-fixable API failure as the message for the page; anything else stays internal.
fn user_message(e: ApiError) -> Result<String, PageError> {
    e.user_detail().map_err(PageError::Internal)
}

#[derive(Template)]
#[template(path = "cmc/certificate.html")]
struct CertificatePage {
    csrf: String,
    type_name: String,
    serial: String,
    not_before: String,
    not_after: String,
    status: String,
    /// What just happened, after a renewal or a creation.
    notice: String,
    pem: String,
    chain: String,
}

#[derive(Deserialize)]
struct CertificateQuery {
    #[serde(default)]
    done: String,
}

/// One of the account's certificates: its details, the certificate and the chain to install.
/// A renewal or a creation answers with a redirect here, so reload repeats nothing.
async fn certificate_page(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Query(query): Query<CertificateQuery>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    let c = match owned(&s, &id, &serial).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let all = [c.clone()];
    let shown = row(&s, &c, &all, s.clock.now());
    let notice = match query.done.as_str() {
        "renewed" => {
            "Your certificate is renewed. Install this new certificate with the key you made the request \
                      with; the old one keeps working until it expires."
        }
        "created" => {
            "Your device certificate is created. Install it on the device with the key you made the \
                      request with."
        }
        _ => "",
    };
    let page = CertificatePage {
        csrf: session.csrf().to_owned(),
        type_name: shown.type_name,
        serial: shown.serial,
        not_before: shown.not_before,
        not_after: shown.not_after,
        status: shown.status,
        notice: notice.to_owned(),
        pem: signet_pki::to_pem("CERTIFICATE", &c.der),
        chain: s.certificates.chain_pem(),
    };
    render(&page)
}

/// How a certificate of one profile is renewed, as the renewal guide explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenewalWay {
    /// A key generated on the token: `signet token renew`.
    Token,
    /// A pasted request in the CMC.
    Software,
    /// Not renewed: a new device certificate.
    Device,
    /// Not renewed: the CA makes the key, so a new application.
    Reapply,
    /// A profile this server does not know (an old link).
    Unknown,
}

#[derive(Template)]
#[template(path = "cmc/renewal.html")]
struct RenewalGuidePage {
    certificate: String,
    way: RenewalWay,
    contact_name: String,
    support_email: String,
    support_phone: String,
}

#[derive(Deserialize)]
struct RenewalQuery {
    #[serde(default)]
    profile: String,
}

/// The page the expiry reminders link to: how to renew a certificate of the profile named,
/// for anyone (the reminder's reader is usually signed out), leading to the sign-in.
async fn renewal_guide(State(s): State<AppState>, Query(query): Query<RenewalQuery>) -> Response {
    let profile = s.catalog.profile(&query.profile);
    let way = match profile {
        None => RenewalWay::Unknown,
        Some(p) if p.subject == SubjectKind::Device => RenewalWay::Device,
        Some(p) if p.is_encryption() => RenewalWay::Reapply,
        Some(p) if p.cert_type.key_storage == KeyStorage::Hardware => RenewalWay::Token,
        Some(_) => RenewalWay::Software,
    };
    let certificate = profile.map(|p| s.certificate_name(&p.id)).unwrap_or_default();
    render(&RenewalGuidePage {
        certificate,
        way,
        contact_name: s.contact.name.as_str().to_owned(),
        support_email: s.contact.support_email.as_str().to_owned(),
        support_phone: s.contact.support_phone.display(),
    })
}

/// Where a renewal or creation sends the browser: the new certificate's page.
fn to_certificate(serial: &Serial, done: &str) -> Response {
    Redirect::to(&format!("/cmc/certificates/{}?done={done}", serial.to_hex())).into_response()
}

#[derive(Deserialize)]
struct RenewForm {
    #[serde(default)]
    csr: String,
    #[serde(default)]
    code: String,
}

#[tracing::instrument(skip_all, fields(%serial))]
async fn renew(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RenewForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    renew_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn renew_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    serial: &str,
    form: RenewForm,
) -> Result<Response, PageError> {
    let serial = Serial::from_hex(serial).map_err(|_| PageError::NotFound)?;
    let all = s.store.account_certificates(id).await?;
    let cert = all.iter().find(|c| c.serial == serial).ok_or(PageError::NotFound)?;
    let fail = |error: String| Outcome { error, error_serial: cert.serial.to_hex(), ..Outcome::default() };
    // Checked before the code too, so a subscriber too early is told so without spending a code.
    if let Some(refused) = renewal::refusal(&s.catalog, cert, &all, s.clock.now()) {
        return home_view(s, session, id, fail(user_message(refused)?)).await;
    }
    if let Some(refused) = on_token_only(s, cert) {
        return home_view(s, session, id, fail(refused)).await;
    }
    if form.csr.trim().is_empty() {
        return home_view(s, session, id, fail("Paste the certificate request (PEM) for the new key.".into())).await;
    }
    if let Some(refused) = confirm(s, id, &form.code, "renew").await? {
        return home_view(s, session, id, fail(refused)).await;
    }
    match renewal::renew(s, id, cert, &all, form.csr.trim().as_bytes(), None).await {
        Ok(new) => Ok(to_certificate(&new.serial, "renewed")),
        Err(e) => home_view(s, session, id, fail(user_message(e)?)).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Device certificates for the organization's registered domains

#[derive(Template)]
#[template(path = "cmc/device.html")]
struct DevicePage {
    csrf: String,
    organization: String,
    /// Whether this subscriber manages the organization's devices (else the forms are hidden).
    is_user: bool,
    domains: Vec<String>,
    names: String,
    csr: String,
    error: String,
}

#[derive(Deserialize, Default)]
struct DeviceForm {
    #[serde(default)]
    names: String,
    #[serde(default)]
    csr: String,
    #[serde(default)]
    code: String,
}

async fn device_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: &DeviceForm,
    error: &str,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = app.form().organization.clone();
    let domains = registered_domains(s, &organization).await?;
    let page = DevicePage {
        csrf: session.csrf().to_owned(),
        organization: organization.as_str().to_owned(),
        is_user: is_enterprise_user(s, id, &organization).await?,
        domains,
        names: form.names.clone(),
        csr: form.csr.clone(),
        error: error.to_owned(),
    };
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

async fn device_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    device_view(&s, &session, &id, &DeviceForm::default(), "").await.unwrap_or_else(IntoResponse::into_response)
}

#[tracing::instrument(skip_all)]
async fn device_post(State(s): State<AppState>, session: Session, Form(form): Form<DeviceForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    device_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn device_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: DeviceForm,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = app.form().organization.clone();
    if !is_enterprise_user(s, id, &organization).await? {
        return device_view(s, session, id, &form, NOT_A_USER).await;
    }
    let Some(scope) = s.store.organization_domains(&organization).await? else {
        let error = "Your organization has no registered domains. Ask the RA to register them before creating device certificates.";
        return device_view(s, session, id, &form, error).await;
    };
    let mut names = Vec::new();
    for typed in form.names.split([',', '\n', ' ']).map(str::trim).filter(|n| !n.is_empty()) {
        let name = match DnsName::new(&typed.to_ascii_lowercase()) {
            Ok(n) => n,
            Err(e) => return device_view(s, session, id, &form, &e.to_string()).await,
        };
        if !scope.covers(&name) {
            let error = format!("{typed} is not under a domain registered for {}.", organization.as_str());
            return device_view(s, session, id, &form, &error).await;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return device_view(s, session, id, &form, "Enter at least one host name.").await;
    }
    if form.csr.trim().is_empty() {
        return device_view(s, session, id, &form, "Paste the certificate request (PEM) for the device's key.").await;
    }
    if let Some(refused) = confirm(s, id, &form.code, "create-device-certificate").await? {
        return device_view(s, session, id, &form, &refused).await;
    }
    // The shortest validity the device profile allows: a device certificate is renewed often.
    let years = s.catalog.profile(DEVICE_PROFILE).and_then(|p| p.validity_years.iter().min().copied()).unwrap_or(1);
    let order = CertificateOrder {
        profile: DEVICE_PROFILE.to_owned(),
        subject: Subject::Device { organization, dns_names: names },
        validity_years: years,
    };
    match s.issue(&cmc::actor(id), &order, form.csr.trim().as_bytes()).await {
        Ok(cert) => {
            tracing::info!(account = %id, serial = %cert.serial, "subscriber created a device certificate");
            Ok(to_certificate(&cert.serial, "created"))
        }
        Err(e) => {
            let message = user_message(e.into())?;
            device_view(s, session, id, &form, &message).await
        }
    }
}

#[derive(Template)]
#[template(path = "cmc/acme_key.html")]
struct AcmeKeyPage {
    csrf: String,
    organization: String,
    domains: Vec<String>,
    kid: String,
    hmac_key: String,
    directory: String,
}

#[derive(Deserialize)]
struct AcmeKeyForm {
    #[serde(default)]
    code: String,
}

/// An External Account Binding key for the organization's ACME clients, created by one of its
/// subscribers (step-up confirmed) for the domains the RA registered: the subscriber chooses
/// when a device fleet gets a key, the RA still decides which names it may ever certify.
#[tracing::instrument(skip_all)]
async fn acme_key_post(State(s): State<AppState>, session: Session, Form(form): Form<AcmeKeyForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    acme_key_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn acme_key_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: AcmeKeyForm,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = app.form().organization.clone();
    if !is_enterprise_user(s, id, &organization).await? {
        return device_view(s, session, id, &DeviceForm::default(), NOT_A_USER).await;
    }
    let Some(scope) = s.store.organization_domains(&organization).await? else {
        let error =
            "Your organization has no registered domains. Ask the RA to register them before creating ACME keys.";
        return device_view(s, session, id, &DeviceForm::default(), error).await;
    };
    if let Some(refused) = confirm(s, id, &form.code, "create-acme-key").await? {
        return device_view(s, session, id, &DeviceForm::default(), &refused).await;
    }
    let key = EabKey::generate(organization, scope, s.clock.now());
    s.store.create_eab_key(&key, key.created_event(&cmc::actor(id))).await?;
    let EabBinding::Unbound(secret) = &key.binding else {
        return Err(PageError::Internal("a new EAB key is bound".into()));
    };
    tracing::info!(account = %id, kid = %key.id, "subscriber created an ACME EAB key");
    let page = AcmeKeyPage {
        csrf: session.csrf().to_owned(),
        organization: key.organization.as_str().to_owned(),
        domains: key.scope.domains().map(|d| d.as_str().to_owned()).collect(),
        kid: key.id.to_string(),
        hmac_key: secret.to_base64url(),
        directory: format!("{}/acme/directory", s.base_url),
    };
    Ok(with_status(render(&page), StatusCode::CREATED))
}

// ---------------------------------------------------------------------------------------------
// The enterprise account's users

/// What a subscriber who does not manage the organization's devices is told.
const NOT_A_USER: &str = "Only users of your organization's enterprise account manage its devices. Ask one of them \
     to add you under Users; the RA adds the first one.";

/// Whether `id` manages `organization`'s devices: a user of its enterprise account who still
/// holds a valid identity certificate (a revoked or expired one ends the vetting it stood for).
async fn is_enterprise_user(
    s: &AppState,
    id: &ApplicationId,
    organization: &OrganizationName,
) -> Result<bool, PageError> {
    manages_devices(s, id, &s.store.enterprise_users(&OrganizationKey::of(organization)).await?).await
}

/// [`is_enterprise_user`] with the organization's users already loaded.
async fn manages_devices(s: &AppState, id: &ApplicationId, users: &[EnterpriseUser]) -> Result<bool, PageError> {
    Ok(users.iter().any(|u| &u.account == id) && s.store.holds_identity_certificate(id, s.clock.now()).await?)
}

#[derive(Template)]
#[template(path = "cmc/users.html")]
struct UsersPage {
    csrf: String,
    organization: String,
    is_user: bool,
    /// (reference, name, added by, added on)
    users: Vec<(String, String, String, String)>,
    reference: String,
    notice: String,
    error: String,
}

#[derive(Deserialize, Default)]
struct UsersForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    code: String,
}

async fn users_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    reference: &str,
    notice: &str,
    error: &str,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = app.form().organization.clone();
    let listed = s.store.enterprise_users(&OrganizationKey::of(&organization)).await?;
    let is_user = manages_devices(s, id, &listed).await?;
    let mut users = Vec::new();
    for u in listed {
        let name = s.store.load(&u.account).await?.map(|a| a.form().applicant.name.as_str().to_owned());
        users.push((u.account.as_str().to_owned(), name.unwrap_or_default(), u.added_by, day(u.added_at)));
    }
    let page = UsersPage {
        csrf: session.csrf().to_owned(),
        organization: organization.as_str().to_owned(),
        is_user,
        users,
        reference: reference.to_owned(),
        notice: notice.to_owned(),
        error: error.to_owned(),
    };
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok(with_status(render(&page), status))
}

async fn users_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    users_view(&s, &session, &id, "", "", "").await.unwrap_or_else(IntoResponse::into_response)
}

#[tracing::instrument(skip_all)]
async fn users_post(State(s): State<AppState>, session: Session, Form(form): Form<UsersForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    users_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn users_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: UsersForm,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let organization = OrganizationKey::of(&app.form().organization);
    let users = s.store.enterprise_users(&organization).await?;
    let typed = form.reference.trim();
    if !manages_devices(s, id, &users).await? {
        return users_view(s, session, id, typed, "", NOT_A_USER).await;
    }
    let candidate = ApplicationId::new(typed).ok();
    let account = match s.check_enterprise_candidate(&organization, candidate.as_ref()).await {
        Ok(()) => {
            candidate.ok_or_else(|| PageError::Internal("a candidate passed the check without a reference".into()))?
        }
        Err(EnterpriseFailure::Refused(refused)) => {
            return users_view(s, session, id, typed, "", &sentence(&refused)).await;
        }
        Err(EnterpriseFailure::Store(e)) => return Err(e.into()),
    };
    if let Some(refused) = confirm(s, id, &form.code, "add-enterprise-user").await? {
        return users_view(s, session, id, typed, "", &refused).await;
    }
    let user = match s.add_enterprise_user(organization, account, &cmc::actor(id)).await {
        Ok(user) => user,
        Err(EnterpriseFailure::Refused(refused)) => {
            return users_view(s, session, id, typed, "", &sentence(&refused)).await;
        }
        Err(EnterpriseFailure::Store(e)) => return Err(e.into()),
    };
    tracing::info!(account = %id, added = %user.account, "enterprise user added");
    let notice = format!("{} is now a user of your enterprise account.", user.account);
    users_view(s, session, id, "", &notice, "").await
}

/// A refusal as a sentence on the page.
fn sentence(refused: &AddUserRefused) -> String {
    let text = refused.to_string();
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

// ---------------------------------------------------------------------------------------------
// Soft-token enrollment (two steps) and replacement

#[derive(Template)]
#[template(path = "cmc/soft_token.html")]
struct SoftTokenPage {
    csrf: String,
    /// Replacing an active token: the create form asks for its code (step-up).
    replacing: bool,
    serial: String,
    activation_code: String,
    qr_data_uri: String,
    otpauth: String,
    algorithm: String,
    digits: u32,
    pin: bool,
    error: String,
}

/// The account the session may enroll a token for, and whether it has an active one
/// (replacing it needs step-up); `None` sends the request to [`to_sign_in`].
fn enrolling(session: &Session) -> Option<(ApplicationId, bool)> {
    let (id, full) = match session.principal() {
        Principal::Subscriber(id) => (id, true),
        Principal::Enrolling(id) => (id, false),
        _ => return None,
    };
    ApplicationId::new(&id).ok().map(|id| (id, full))
}

/// The QR code of the Key URI as an SVG data URI (the page's CSP allows `data:` images only).
fn qr_data_uri(uri: &str) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| PageError::Internal(e.to_string()))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(220, 220).build();
    Ok(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

async fn soft_token_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    replacing: bool,
    error: &str,
) -> Result<Response, PageError> {
    let pending = s.store.soft_token(id, "pending").await?;
    let mut page = SoftTokenPage {
        csrf: session.csrf().to_owned(),
        replacing,
        serial: String::new(),
        activation_code: String::new(),
        qr_data_uri: String::new(),
        otpauth: String::new(),
        algorithm: String::new(),
        digits: 0,
        pin: false,
        error: error.to_owned(),
    };
    if let Some(t) = pending {
        let uri = t.totp.uri(TOTP_ISSUER, &format!("{} {}", id.as_str(), t.serial));
        page.qr_data_uri = qr_data_uri(&uri)?;
        page.otpauth = uri;
        page.serial = t.serial.as_str().to_owned();
        page.activation_code = t.activation_code();
        page.algorithm = t.totp.algorithm().name().to_owned();
        page.digits = t.totp.digits().count();
        page.pin = t.pin.is_some();
    }
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    // The activation code is a secret: no cache keeps the page.
    let mut r = with_status(render(&page), status);
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn soft_token_page(State(s): State<AppState>, session: Session) -> Response {
    let Some((id, replacing)) = enrolling(&session) else { return to_sign_in() };
    soft_token_view(&s, &session, &id, replacing, "").await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct CreateTokenForm {
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    digits: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    pin_again: String,
    #[serde(default)]
    code: String,
}

#[tracing::instrument(skip_all)]
async fn soft_token_create(State(s): State<AppState>, session: Session, Form(form): Form<CreateTokenForm>) -> Response {
    let Some((id, replacing)) = enrolling(&session) else { return to_sign_in() };
    create_inner(&s, &session, &id, replacing, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn create_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    replacing: bool,
    form: CreateTokenForm,
) -> Result<Response, PageError> {
    let (Ok(algorithm), Ok(digits)) = (form.algorithm.parse::<TotpAlgorithm>(), form.digits.parse::<Digits>()) else {
        return soft_token_view(s, session, id, replacing, "Choose the algorithm and the code length your app uses.")
            .await;
    };
    if replacing && let Some(refused) = confirm(s, id, &form.code, "change-soft-token").await? {
        return soft_token_view(s, session, id, replacing, &refused).await;
    }
    let now = s.clock.now();
    let account = id.clone();
    let enrolled = s
        .hashing
        .run(move |_| {
            let pin = (!form.pin.is_empty() || !form.pin_again.is_empty())
                .then_some((form.pin.as_str(), form.pin_again.as_str()));
            SoftToken::enroll(account, algorithm, digits, pin, now)
        })
        .await?;
    let token = match enrolled {
        Ok(t) => t,
        Err(e) => return soft_token_view(s, session, id, replacing, &e.to_string()).await,
    };
    let event = signet_ra::audit::AuditEvent::new(
        now,
        &cmc::actor(id),
        signet_ra::audit::AuditAction::SoftTokenEnrolled,
        id.as_str(),
        serde_json::json!({ "serial": token.serial.as_str(), "replacing": replacing }),
    );
    s.store.save_pending(&token, event).await?;
    Ok(Redirect::to("/cmc/soft-token").into_response())
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    registration_code: String,
}

#[tracing::instrument(skip_all)]
async fn soft_token_register(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<RegisterForm>,
) -> Response {
    let Some((id, replacing)) = enrolling(&session) else { return to_sign_in() };
    match cmc::register(&s.store, &id, &form.registration_code, s.clock.now()).await {
        Ok(token) => {
            tracing::info!(account = %id, serial = %token.serial, "soft token registered");
            // The password was checked at sign-in and the code proves the token: the session
            // is now fully signed in.
            if let Err(e) = session.become_principal(Principal::Subscriber(id.as_str().to_owned())).await {
                return e.into_response();
            }
            Redirect::to(if replacing { HOME } else { "/cmc/recovery-questions" }).into_response()
        }
        Err(e) => match refusal(e, s.clock.now()) {
            Ok((message, _)) => {
                let message = format!("{message} Type the code your app shows now for serial number below.");
                soft_token_view(&s, &session, &id, replacing, &message)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
            Err(e) => e.into_response(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Recovery questions and the recovery path

#[derive(Template)]
#[template(path = "cmc/questions.html")]
struct QuestionsPage {
    csrf: String,
    questions: Vec<(usize, &'static str)>,
    /// (slot, the question chosen in it).
    slots: Vec<(usize, usize)>,
    error: String,
}

fn questions_view(session: &Session, chosen: Vec<usize>, error: &str) -> Response {
    let page = QuestionsPage {
        csrf: session.csrf().to_owned(),
        questions: RECOVERY_QUESTIONS.iter().copied().enumerate().collect(),
        slots: chosen.into_iter().enumerate().collect(),
        error: error.to_owned(),
    };
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    with_status(render(&page), status)
}

async fn questions_page(session: Session) -> Response {
    if signed_in(&session).is_none() {
        return to_sign_in();
    }
    questions_view(&session, (0..RECOVERY_QUESTION_COUNT).collect(), "")
}

#[derive(Deserialize)]
struct QuestionsForm {
    #[serde(default)]
    question_0: String,
    #[serde(default)]
    answer_0: String,
    #[serde(default)]
    question_1: String,
    #[serde(default)]
    answer_1: String,
    #[serde(default)]
    code: String,
}

#[tracing::instrument(skip_all)]
async fn questions_post(State(s): State<AppState>, session: Session, Form(form): Form<QuestionsForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    questions_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

async fn questions_inner(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    form: QuestionsForm,
) -> Result<Response, PageError> {
    let index = |q: &str| q.parse::<usize>().unwrap_or(usize::MAX);
    let chosen = vec![index(&form.question_0), index(&form.question_1)];
    if let Some(refused) = confirm(s, id, &form.code, "set-recovery-questions").await? {
        return Ok(questions_view(session, chosen, &refused));
    }
    let picked = [(chosen[0], form.answer_0), (chosen[1], form.answer_1)];
    let hashed = s
        .hashing
        .run(move |_| cmc::recovery_questions(&picked.iter().map(|(q, a)| (*q, a.as_str())).collect::<Vec<_>>()))
        .await?;
    let questions = match hashed {
        Ok(q) => q,
        Err(e) => return Ok(questions_view(session, chosen, &e.to_string())),
    };
    let event = signet_ra::audit::AuditEvent::new(
        s.clock.now(),
        &cmc::actor(id),
        signet_ra::audit::AuditAction::RecoveryQuestionsSet,
        id.as_str(),
        serde_json::json!({ "questions": chosen }),
    );
    s.store.set_recovery_questions(id, &questions, event).await?;
    home_view(s, session, id, Outcome { notice: "Your recovery questions are saved.".into(), ..Outcome::default() })
        .await
}

#[derive(Template)]
#[template(path = "cmc/recover.html")]
struct RecoverPage {
    csrf: String,
    reference: String,
    /// Empty on the first step; the questions to answer on the second.
    questions: Vec<&'static str>,
    error: String,
}

fn recover_view(
    session: &Session,
    reference: &str,
    questions: Vec<&'static str>,
    error: &str,
    status: StatusCode,
) -> Response {
    let page = RecoverPage {
        csrf: session.csrf().to_owned(),
        reference: reference.to_owned(),
        questions,
        error: error.to_owned(),
    };
    with_status(render(&page), status)
}

async fn recover_page(session: Session) -> Response {
    recover_view(&session, "", Vec::new(), "", StatusCode::OK)
}

#[derive(Deserialize)]
struct RecoverForm {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    password: String,
}

/// Step one of recovery: the account password (counted like a sign-in's) leads to the
/// questions. An account without questions gets the same refusal as a wrong password, so the
/// page tells a guesser nothing.
#[tracing::instrument(skip_all)]
async fn recover_password(State(s): State<AppState>, mut session: Session, Form(form): Form<RecoverForm>) -> Response {
    let (subject, id) = subject_of(&form.reference);
    let password_ok = match password_matches::<PageError>(&s, id.as_ref(), form.password).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let now = s.clock.now();
    let checked = cmc::check_recovery_password(&s.store, &subject, id.as_ref(), password_ok, now).await;
    let questions = match (checked, id) {
        (Ok(questions), Some(id)) if !questions.is_empty() => (questions, id),
        (Ok(_), _) => {
            return recover_view(&session, &form.reference, Vec::new(), lockout::REFUSED, StatusCode::UNAUTHORIZED);
        }
        (Err(e), _) => {
            return match refusal(e, s.clock.now()) {
                Ok((message, status)) => recover_view(&session, &form.reference, Vec::new(), &message, status),
                Err(e) => e.into_response(),
            };
        }
    };
    let (questions, id) = questions;
    if let Err(e) = session.become_principal(Principal::Recovering(id.as_str().to_owned())).await {
        return e.into_response();
    }
    recover_view(&session, id.as_str(), questions.iter().map(|q| q.text()).collect(), "", StatusCode::OK)
}

#[derive(Deserialize)]
struct AnswersForm {
    #[serde(default)]
    answer_0: String,
    #[serde(default)]
    answer_1: String,
}

/// Step two: right answers remove the account's soft tokens; the subscriber enrolls a new one.
#[tracing::instrument(skip_all)]
async fn recover_answers(State(s): State<AppState>, mut session: Session, Form(form): Form<AnswersForm>) -> Response {
    let Principal::Recovering(reference) = session.principal() else {
        return Redirect::to("/cmc/recover").into_response();
    };
    let Ok(id) = ApplicationId::new(&reference) else { return Redirect::to("/cmc/recover").into_response() };
    let now = s.clock.now();
    match cmc::recover(&s.store, &id, vec![form.answer_0, form.answer_1], now).await {
        Ok(()) => {
            tracing::info!(account = %id, "soft token recovered by the recovery questions");
            if let Err(e) = session.become_principal(Principal::Enrolling(id.as_str().to_owned())).await {
                return e.into_response();
            }
            Redirect::to("/cmc/soft-token").into_response()
        }
        Err(e) => match refusal(e, s.clock.now()) {
            Ok((message, status)) => {
                let questions = match s.store.recovery_questions(&id).await {
                    Ok(q) => q.iter().map(|q| q.text()).collect(),
                    Err(e) => return PageError::from(e).into_response(),
                };
                recover_view(&session, id.as_str(), questions, &message, status)
            }
            Err(e) => e.into_response(),
        },
    }
}
