//! The Certificate Management Center: what the public repository shows about the subscriber
//! (which certificates, at which addresses), and their choice to publish identity certificates.

use signet_ra::repository::{self, RepositoryStore};

use super::*;

pub(super) const PUBLISHED: &str = "/cmc/published";

/// One of the account's certificates and whether the repository shows it.
pub(super) struct PublishedRow {
    serial: String,
    type_name: String,
    not_after: String,
    /// Empty when published; otherwise why not.
    withheld: &'static str,
    pem_url: String,
    p7c_url: String,
}

#[derive(Template)]
#[template(path = "cmc/published.html")]
pub(super) struct PublishedPage {
    csrf: String,
    email: String,
    lookup_url: String,
    identity_chosen: bool,
    rows: Vec<PublishedRow>,
    notice: String,
}

async fn published_view(
    s: &AppState,
    session: &Session,
    id: &ApplicationId,
    notice: &str,
) -> Result<Response, PageError> {
    let app = s.store.load(id).await?.ok_or(PageError::NotFound)?;
    let email = app.form().applicant.email.as_str().to_owned();
    let identity_chosen = s.store.identity_published(id).await?;
    let now = s.clock.now();
    let rows = s
        .store
        .account_certificates(id)
        .await?
        .into_iter()
        .map(|c| {
            let type_name = s.certificate_name(&c.profile);
            let c = c.in_repository(identity_chosen);
            let serial = c.serial.to_hex();
            let url = |file: &str| format!("{}/repository/certificates/{serial}/{file}", s.base_url);
            PublishedRow {
                withheld: repository::publication(&s.catalog, &c, now).err().map_or("", |w| w.in_words()),
                pem_url: url("certificate.pem"),
                p7c_url: url("certificate.p7c"),
                type_name,
                not_after: day(c.not_after),
                serial,
            }
        })
        .collect();
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("email", &email).finish();
    Ok(render(&PublishedPage {
        csrf: session.csrf().to_owned(),
        lookup_url: format!("{}/repository?{query}", s.base_url),
        email,
        identity_chosen,
        rows,
        notice: notice.to_owned(),
    }))
}

pub(super) async fn published_page(State(s): State<AppState>, session: Session) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    published_view(&s, &session, &id, "").await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub(super) struct PublishForm {
    #[serde(default)]
    identity: String,
}

/// The identity choice. No step-up: it publishes certificates meant to be shown to whoever the
/// subscriber writes to, and the change is audited and shown on this page.
#[tracing::instrument(skip_all)]
pub(super) async fn published_post(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<PublishForm>,
) -> Response {
    let Some(id) = signed_in(&session) else { return to_sign_in() };
    let publish = match form.identity.as_str() {
        "publish" => true,
        "withhold" => false,
        _ => {
            return PageError::BadRequest("Choose whether to publish your identity certificates.".into())
                .into_response();
        }
    };
    let notice = match repository::choose_identity_publication(&s.store, &id, publish, s.clock.now()).await {
        Ok(false) => "Nothing changed: that was already your choice.",
        Ok(true) if publish => {
            "Your valid identity certificates are now published beside your encryption certificates."
        }
        Ok(true) => "Your identity certificates are no longer published.",
        Err(e) => return PageError::from(e).into_response(),
    };
    published_view(&s, &session, &id, notice).await.unwrap_or_else(IntoResponse::into_response)
}
