//! The Certificate Management Center: device certificates for the organization's registered domains.

use super::*;

#[derive(Template)]
#[template(path = "cmc/device.html")]
pub(super) struct DevicePage {
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
pub(super) struct DeviceForm {
    #[serde(default)]
    names: String,
    #[serde(default)]
    csr: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

pub(super) async fn device_view(
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

pub(super) async fn device_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    device_view(&s, &session, &id, &DeviceForm::default(), "").await.unwrap_or_else(IntoResponse::into_response)
}

#[tracing::instrument(skip_all)]
pub(super) async fn device_post(State(s): State<AppState>, session: Session, Form(form): Form<DeviceForm>) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    device_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn device_inner(
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
    if let Some(refused) = confirm(s, session, id, &form.factor, "create-device-certificate").await? {
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
pub(super) struct AcmeKeyPage {
    csrf: String,
    organization: String,
    domains: Vec<String>,
    kid: String,
    hmac_key: String,
    directory: String,
}

#[derive(Deserialize)]
pub(super) struct AcmeKeyForm {
    #[serde(flatten)]
    factor: passkeys::Factor,
}

/// An External Account Binding key for the organization's ACME clients, created by one of its
/// subscribers (step-up confirmed) for the domains the RA registered: the subscriber chooses
/// when a device fleet gets a key, the RA still decides which names it may ever certify.
#[tracing::instrument(skip_all)]
pub(super) async fn acme_key_post(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<AcmeKeyForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    acme_key_inner(&s, &session, &id, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn acme_key_inner(
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
    if let Some(refused) = confirm(s, session, id, &form.factor, "create-acme-key").await? {
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
