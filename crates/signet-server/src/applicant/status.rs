//! The applicant's own pages: the status page.

use super::*;

#[derive(Template)]
#[template(path = "status.html")]
pub(super) struct StatusPage {
    csrf: String,
    reference: String,
    name: String,
    email: String,
    state_label: &'static str,
    next_step: String,
    just_submitted: bool,
    deadline_text: String,
    timeline_svg: String,
    /// (download address, file name, title) of each form to print.
    forms: Vec<(String, String, &'static str)>,
    /// The RA's postal address, line by line, while forms are expected.
    mail_to: Vec<String>,
    contact_name: String,
    support_email: String,
    support_phone: String,
    /// What the applicant said they mailed, as a sentence; empty if nothing.
    mailed: String,
    /// What an operator found wrong with the mailed forms, in the applicant's words.
    deficiency: Vec<&'static str>,
    deficiency_note: String,
    mailing: MailingEntry,
    carriers: Vec<(&'static str, &'static str)>,
}

/// The mailing form as shown: offered or not (the page decides), what was typed, and why it was
/// refused.
#[derive(Default)]
pub(super) struct MailingEntry {
    offered: bool,
    carrier: String,
    tracking: String,
    carrier_error: String,
    tracking_error: String,
    /// The notice after a mailing was recorded.
    done: bool,
}

/// What each state means to the applicant and what they do next, in words someone who has
/// never met a certificate understands.
pub(super) fn explain(app: &Application) -> (&'static str, String) {
    let email = app.form().applicant.email.as_str();
    match app.state().state_name() {
        "submitted" => (
            "Submitted",
            format!(
                "We sent an email to {email}. Open the link in it and press the button to confirm your address. \
                 Meanwhile you can print your forms below."
            ),
        ),
        "email-verified" => (
            "Email confirmed",
            "Print the forms below. Your Organization Officer fills in their part. Sign the Identity Verification \
             form in front of a notary (or a registrar, for Medium Hardware), then mail the signed originals to \
             the address below and tell us the tracking number. You have 30 days to retrieve your certificates \
             from the day the notary signs."
                .into(),
        ),
        "forms-received" | "officer-confirmed" | "identity-verified" | "first-approved" => (
            "We are checking your application",
            "Your forms arrived. We are checking them and calling your Organization Officer to confirm that you \
             work there. You do not need to do anything unless we email you."
                .into(),
        ),
        "approved" => (
            "Approved",
            "Your application is approved. We will mail your USB token next and email you its tracking number.".into(),
        ),
        "token-shipped" => (
            "Token shipped",
            "Your USB token is in the mail. Do not plug it in yet. When it arrives, watch for our email with your \
             activation code."
                .into(),
        ),
        "certificates-ready" => (
            "Ready to retrieve",
            "Your certificates are ready. Put them on your token with the Signet program, the activation code we \
             emailed and your account password, before the deadline. The steps for your computer are below."
                .into(),
        ),
        "retrieved" => ("Retrieved", "Your certificates are on your token. There is nothing more to do.".into()),
        "rejected" => (
            "Not approved",
            "We could not approve this application. The email we sent you says why. Contact us if you have \
             questions."
                .into(),
        ),
        "expired" => (
            "Expired",
            "The deadline passed before the certificates were collected. To get a certificate, apply again.".into(),
        ),
        _ => ("Withdrawn", "This application was withdrawn. To get a certificate, apply again.".into()),
    }
}

#[derive(Deserialize)]
pub(super) struct StatusQuery {
    submitted: Option<String>,
    mailed: Option<String>,
}

pub(super) async fn status(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return sign_in_page(&session, &id, ""),
        Err(e) => return e.into_response(),
    };
    let entry = MailingEntry { done: q.mailed.is_some(), ..MailingEntry::default() };
    match status_view(&s, &session, &app, q.submitted.is_some(), entry).await {
        Ok(page) => render(&page),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn status_view(
    s: &AppState,
    session: &Session,
    app: &Application,
    just_submitted: bool,
    mut mailing: MailingEntry,
) -> Result<StatusPage, PageError> {
    let now = s.clock.now();
    let (state_label, next_step) = explain(app);
    let deadline_text = match vetting::deadline(app, &s.deadlines) {
        Some(d) => {
            let days = d.days_left(now.date());
            let what = match d.kind {
                DeadlineKind::Open => "Your forms must arrive by",
                DeadlineKind::Retrieval => "Retrieve your certificates by",
            };
            format!("{what} {} ({days} day{} left).", d.last_day, if days == 1 { "" } else { "s" })
        }
        None => String::new(),
    };
    let timeline_svg = vetting::timeline(app, now, &s.deadlines)
        .map(|t| signet_authority::timeline_svg::timeline_svg(&t))
        .unwrap_or_default();
    let trail = FormsTrail::of(&s.store.application_history(app.id()).await?);
    let expects_mailing = trail.expects_mailing(app);
    // The forms are printed before they are mailed, or again when they must be re-sent.
    let forms = if expects_mailing {
        PaperForm::ALL
            .into_iter()
            .map(|f| (format!("/applications/{}/forms/{}", app.id(), f.slug()), f.file_name(app.id()), f.title()))
            .collect()
    } else {
        Vec::new()
    };
    mailing.offered = expects_mailing;
    let mailed = trail.mailed.as_ref().map_or_else(String::new, |m| {
        format!(
            "On {} you told us you mailed your forms with {}, tracking number {}.",
            m.at.date(),
            m.tracking.carrier.name(),
            m.tracking.number.as_str()
        )
    });
    let deficiency = trail.deficiency.as_ref();
    Ok(StatusPage {
        csrf: session.csrf().to_owned(),
        reference: app.id().as_str().to_owned(),
        name: app.form().applicant.name.as_str().to_owned(),
        email: app.form().applicant.email.as_str().to_owned(),
        state_label,
        next_step,
        just_submitted,
        deadline_text,
        timeline_svg,
        forms,
        mail_to: if expects_mailing {
            s.contact.mailing_address.lines().map(str::to_owned).collect()
        } else {
            Vec::new()
        },
        contact_name: s.contact.name.as_str().to_owned(),
        support_email: s.contact.support_email.as_str().to_owned(),
        support_phone: s.contact.support_phone.display(),
        mailed,
        deficiency: deficiency.map_or_else(Vec::new, |d| d.problems.iter().map(|p| p.to_applicant()).collect()),
        deficiency_note: deficiency.and_then(|d| d.note.clone()).unwrap_or_default(),
        mailing,
        carriers: crate::console::CARRIERS.iter().map(|(v, l, _)| (*v, *l)).collect(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct MailingForm {
    carrier: String,
    tracking: String,
}

/// The longest tracking number field accepted, in characters: the longest format (40) with
/// room for the spaces people copy from receipts.
pub(super) const TRACKING_FIELD_MAX: usize = 60;

/// Checks the mailing form: the carrier from the list, and a number in that carrier's format.
pub(super) fn mailed_with(f: &MailingForm) -> Result<Tracking, (String, String)> {
    let carrier = crate::console::CARRIERS.iter().find(|(v, _, _)| *v == f.carrier).map(|(_, _, c)| *c);
    let typed = f.tracking.trim();
    let carrier_error = if carrier.is_none() { "Choose the company you mailed the forms with." } else { "" };
    let tracking_error = match carrier {
        _ if typed.is_empty() => "Enter the tracking number from your mailing receipt.".to_owned(),
        _ if typed.chars().count() > TRACKING_FIELD_MAX => {
            format!("A tracking number is at most {TRACKING_FIELD_MAX} characters. Copy it from your receipt.")
        }
        Some(c) => match TrackingNumber::new(c, typed) {
            Ok(number) => return Ok(Tracking { carrier: c, number }),
            Err(_) if c == Carrier::Other => format!("This does not look like a tracking number. {}", c.number_hint()),
            Err(_) => format!("This does not look like a {} tracking number. {}", c.name(), c.number_hint()),
        },
        None => String::new(),
    };
    Err((carrier_error.to_owned(), tracking_error))
}

/// The status page again with the mailing form as typed and why it was refused (422, which the
/// session keeps for the redirect that follows).
pub(super) async fn mailing_refused(
    s: &AppState,
    session: &Session,
    app: &Application,
    f: &MailingForm,
    carrier_error: String,
    tracking_error: String,
) -> Response {
    let entry = MailingEntry {
        carrier: f.carrier.chars().take(16).collect(),
        tracking: f.tracking.chars().take(TRACKING_FIELD_MAX).collect(),
        carrier_error,
        tracking_error,
        ..MailingEntry::default()
    };
    match status_view(s, session, app, false, entry).await {
        Ok(page) => with_status(render(&page), StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn mailing_post(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<MailingForm>,
) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return Redirect::to(&format!("/applications/{id}")).into_response(),
        Err(e) => return e.into_response(),
    };
    let trail = match s.store.application_history(app.id()).await {
        Ok(history) => FormsTrail::of(&history),
        Err(e) => return PageError::from(e).into_response(),
    };
    if !trail.expects_mailing(&app) {
        // The page no longer offers the form (a second tab, or Back): it shows where things stand.
        return Redirect::to(&format!("/applications/{}", app.id())).into_response();
    }
    let tracking = match mailed_with(&f) {
        Ok(t) => t,
        Err((carrier_error, tracking_error)) => {
            return mailing_refused(&s, &session, &app, &f, carrier_error, tracking_error).await;
        }
    };
    let mailed = FormsMailed { tracking, at: s.clock.now() };
    if let Err(e) = s.store.audit(&mailed.event(app.id())).await {
        return PageError::from(e).into_response();
    }
    tracing::info!(application = %app.id(), "applicant recorded the forms' mailing");
    Redirect::to(&format!("/applications/{}?mailed=1", app.id())).into_response()
}

pub(super) async fn form_pdf(
    State(s): State<AppState>,
    session: Session,
    Path((id, form)): Path<(String, String)>,
) -> Response {
    let app = match own_application(&s, &session, &id).await {
        Ok(Some(app)) => app,
        Ok(None) => return PageError::NotFound.into_response(),
        Err(e) => return e.into_response(),
    };
    let Some(paper) = PaperForm::from_slug(&form) else { return PageError::NotFound.into_response() };
    let pdf = signet_authority::forms_pdf::form(&app, paper, &s.forms_deployment());
    let disposition = format!("attachment; filename=\"{}\"", paper.file_name(app.id()));
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        pdf,
    )
        .into_response()
}
