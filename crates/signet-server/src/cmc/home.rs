//! The Certificate Management Center: the home page, with the account's certificates and the secure actions.

use super::*;
use crate::web::as_sentence;

pub(super) struct CertificateRow {
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
pub(super) struct HomePage {
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

pub(super) fn reason_label(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::KeyCompromise => "The key (token or PIN) was compromised",
        RevocationReason::AffiliationChanged => "I left the organization, or my name or role changed",
        RevocationReason::Superseded => "A newer certificate replaces it",
        RevocationReason::CessationOfOperation => "I no longer need it",
        _ => "Other reason",
    }
}

pub(super) fn row(
    s: &AppState,
    c: &AccountCertificate,
    all: &[AccountCertificate],
    now: OffsetDateTime,
) -> CertificateRow {
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

/// Why a pasted request cannot renew `c`: a token type's new key must be proven on the token,
/// which only `signet token renew` does. `None` for software and device types.
pub(super) fn on_token_only(s: &AppState, c: &AccountCertificate) -> Option<String> {
    let p = s.catalog.profile(&c.profile).filter(|p| p.cert_type.key_storage == KeyStorage::Hardware)?;
    Some(format!(
        "A {} certificate is renewed on your token: insert it and run `signet token renew`, which generates \
         the new key on the token and proves it. A pasted certificate request cannot show where its key is.",
        p.cert_type.name
    ))
}

/// What the home page shows besides its rows: a confirmation, or an error beside a certificate.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) notice: String,
    pub(super) error: String,
    pub(super) error_serial: String,
    /// The certificate just revoked for key compromise, whose companions the page offers to
    /// revoke too.
    pub(super) compromised: Option<Serial>,
}

pub(super) async fn home_view(
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
pub(super) async fn registered_domains(
    s: &AppState,
    organization: &OrganizationName,
) -> Result<Vec<String>, PageError> {
    let scope = s.store.organization_domains(organization).await?;
    Ok(scope.map(|scope| scope.domains().map(|d| d.as_str().to_owned()).collect()).unwrap_or_default())
}

pub(super) async fn home(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    home_view(&s, &session, &id, Outcome::default()).await.unwrap_or_else(IntoResponse::into_response)
}

/// One of the account's certificates by its serial as in the URL; `NotFound` for a serial of
/// someone else, so serials cannot be probed.
pub(super) async fn owned(s: &AppState, id: &ApplicationId, serial: &str) -> Result<AccountCertificate, PageError> {
    let serial = Serial::from_hex(serial).map_err(|_| PageError::NotFound)?;
    s.store.account_certificates(id).await?.into_iter().find(|c| c.serial == serial).ok_or(PageError::NotFound)
}

pub(super) async fn download(State(s): State<AppState>, session: Session, Path(serial): Path<String>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    match owned(&s, &id, &serial).await {
        Ok(c) => ([(header::CONTENT_TYPE, "application/x-pem-file")], signet_pki::to_pem("CERTIFICATE", &c.der))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a subscriber is told when the code confirming an action is refused. Unlike at the
/// sign-in form, naming the code tells nothing away: the session already proved the password,
/// and the second factor is the only secret a step-up checks.
pub(super) const STEP_UP_REFUSED: &str = "That code from your authenticator app was not accepted. Codes change every 30 seconds \
     and each works once: enter the code your app shows now (your PIN first, if you set one).";
/// The same when the passkey was refused.
const PASSKEY_REFUSED: &str = "Your passkey was not accepted. Use a passkey you added to this account, on this site's \
     own address, and unlock it with your PIN or fingerprint when asked — or enter a code from your authenticator app.";

/// The step-up check before a secure action: the answer to show when the factor is refused.
pub(super) async fn confirm(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    factor: &passkeys::Factor,
    action: &str,
) -> Result<Option<String>, PageError> {
    let mut state = Vec::new();
    let second = factor.second(s, session, &mut state);
    let refused = match second {
        cmc::SecondFactor::Code(_) => STEP_UP_REFUSED,
        cmc::SecondFactor::Passkey { .. } => PASSKEY_REFUSED,
    };
    match cmc::step_up(&s.store, id, second, action, s.clock.now()).await {
        Ok(()) => Ok(None),
        Err(CmcAuthError::Refused) => Ok(Some(refused.to_owned())),
        Err(e) => refusal(e, s.clock.now()).map(|(message, _)| {
            Some(format!("{message} Then enter a fresh code from your authenticator app, or use your passkey, to confirm this action."))
        }),
    }
}

#[derive(Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

#[tracing::instrument(skip_all, fields(%serial))]
pub(super) async fn revoke(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    revoke_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn revoke_inner(
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
    if let Some(refused) = confirm(s, session, id, &form.factor, "revoke").await? {
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
pub(super) async fn revoke_one(
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
pub(super) fn companions<'a>(
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
pub(super) struct RevokeOthersForm {
    #[serde(flatten)]
    factor: passkeys::Factor,
}

/// After a key-compromise revocation: revokes the account's other valid certificates for key
/// compromise too, confirmed with one fresh code. The list is worked out again here, not taken
/// from the form, so a post cannot name certificates the page did not offer.
#[tracing::instrument(skip_all, fields(%serial))]
pub(super) async fn revoke_others(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RevokeOthersForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    revoke_others_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn revoke_others_inner(
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
    if let Some(error) = confirm(s, session, id, &form.factor, "revoke").await? {
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
pub(super) fn user_message(e: ApiError) -> Result<String, PageError> {
    e.user_detail().map_err(PageError::Internal)
}

#[derive(Template)]
#[template(path = "cmc/certificate.html")]
pub(super) struct CertificatePage {
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
pub(super) struct CertificateQuery {
    #[serde(default)]
    done: String,
}

/// One of the account's certificates: its details, the certificate and the chain to install.
/// A renewal or a creation answers with a redirect here, so reload repeats nothing.
pub(super) async fn certificate_page(
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
pub(super) enum RenewalWay {
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
pub(super) struct RenewalGuidePage {
    certificate: String,
    way: RenewalWay,
    contact_name: String,
    support_email: String,
    support_phone: String,
}

#[derive(Deserialize)]
pub(super) struct RenewalQuery {
    #[serde(default)]
    profile: String,
}

/// The page the expiry reminders link to: how to renew a certificate of the profile named,
/// for anyone (the reminder's reader is usually signed out), leading to the sign-in.
pub(super) async fn renewal_guide(State(s): State<AppState>, Query(query): Query<RenewalQuery>) -> Response {
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
pub(super) fn to_certificate(serial: &Serial, done: &str) -> Response {
    Redirect::to(&format!("/cmc/certificates/{}?done={done}", serial.to_hex())).into_response()
}

#[derive(Deserialize)]
pub(super) struct RenewForm {
    #[serde(default)]
    csr: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

#[tracing::instrument(skip_all, fields(%serial))]
pub(super) async fn renew(
    State(s): State<AppState>,
    session: Session,
    Path(serial): Path<String>,
    Form(form): Form<RenewForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    renew_inner(&s, &session, &id, &serial, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn renew_inner(
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
    if let Some(refused) = confirm(s, session, id, &form.factor, "renew").await? {
        return home_view(s, session, id, fail(refused)).await;
    }
    match renewal::renew(s, id, cert, &all, form.csr.trim().as_bytes(), None).await {
        Ok(new) => Ok(to_certificate(&new.serial, "renewed")),
        Err(e) => home_view(s, session, id, fail(user_message(e)?)).await,
    }
}
