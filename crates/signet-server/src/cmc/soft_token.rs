//! The Certificate Management Center: soft-token enrollment (two steps) and replacement.

use super::*;

#[derive(Template)]
#[template(path = "cmc/soft_token.html")]
pub(super) struct SoftTokenPage {
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
pub(super) fn enrolling(session: &Session) -> Option<(ApplicationId, bool)> {
    let (id, full) = match session.principal() {
        Principal::Subscriber(id) => (id, true),
        Principal::Enrolling(id) => (id, false),
        _ => return None,
    };
    ApplicationId::new(&id).ok().map(|id| (id, full))
}

/// The QR code of the Key URI as an SVG data URI (the page's CSP allows `data:` images only).
pub(super) fn qr_data_uri(uri: &str) -> Result<String, PageError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| PageError::Internal(e.to_string()))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(220, 220).build();
    Ok(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

pub(super) async fn soft_token_view(
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

pub(super) async fn soft_token_page(State(s): State<AppState>, session: Session) -> Response {
    let Some((id, replacing)) = enrolling(&session) else { return to_sign_in() };
    soft_token_view(&s, &session, &id, replacing, "").await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub(super) struct CreateTokenForm {
    #[serde(default)]
    algorithm: String,
    #[serde(default)]
    digits: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    pin_again: String,
    #[serde(flatten)]
    factor: passkeys::Factor,
}

#[tracing::instrument(skip_all)]
pub(super) async fn soft_token_create(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<CreateTokenForm>,
) -> Response {
    let Some((id, replacing)) = enrolling(&session) else { return to_sign_in() };
    create_inner(&s, &session, &id, replacing, form).await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn create_inner(
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
    if replacing && let Some(refused) = confirm(s, session, id, &form.factor, "change-soft-token").await? {
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
pub(super) struct RegisterForm {
    #[serde(default)]
    registration_code: String,
}

#[tracing::instrument(skip_all)]
pub(super) async fn soft_token_register(
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
