//! Plumbing shared by the server-rendered pages (applicant portal, operator console): a
//! database-backed session behind an HttpOnly cookie, a CSRF check on every form post,
//! security headers, and askama rendering. Pages work without JavaScript.
//!
//! Sessions live in the database, not in memory, so any node serves any request. The cookie
//! holds a random 256-bit token; the database holds its SHA-256. Reading a page stores
//! nothing: a visitor without a stored session gets a cookie and a form token derived from it,
//! and the row is written only when a handler first saves something (a draft, a sign-in), so
//! a flood of page loads costs no disk.
//!
//! Every form is Post/Redirect/Get, so reload and Back never re-post a form or land on an
//! address that only takes posts. Handlers answer a post either with a redirect or with a page
//! (a form shown again with its errors, a result); this layer keeps such a page in the session
//! and redirects to the post's own address, where the GET that follows shows it once. A GET of
//! an address that only takes posts (Back to it, or reload after the page was shown) goes to
//! the page that holds its form.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signet_store::SessionRecord;
use time::Duration;

use crate::error::{ErrorPageMark, PageError};
use crate::state::AppState;
use crate::unstored_pages::KeptPage;

const COOKIE: &str = "signet_session";
/// An unfinished application may take a day of looking up documents.
const ANONYMOUS_LIFETIME: Duration = Duration::hours(24);
/// Signed-in sessions lapse after half an hour without a request.
const SIGNED_IN_LIFETIME: Duration = Duration::minutes(30);
/// No form of ours comes near this; the cap applies before the CSRF check reads the body.
const FORM_LIMIT: usize = 64 * 1024;
/// No page of ours comes near this; a larger answer to a post is sent as it is, not kept.
const KEPT_PAGE_LIMIT: usize = 1024 * 1024;

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()))
}

/// The form token of a session not stored yet: bound to the cookie, which a forging site
/// cannot read, and kept once the session is stored.
fn derived_csrf(token: &str) -> String {
    let mut input = b"signet form token\0".to_vec();
    input.extend_from_slice(token.as_bytes());
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input))
}

/// A session that is not stored (yet) for the cookie `token`.
fn unstored(token: &str, now: time::OffsetDateTime) -> SessionRecord {
    SessionRecord {
        csrf: derived_csrf(token),
        principal: String::new(),
        data: "{}".into(),
        expires_at: now + ANONYMOUS_LIFETIME,
        flash: None,
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Nobody has signed in (the wizard runs like this).
    Anonymous,
    /// The applicant of this application reference.
    Applicant(String),
    /// An RA operator.
    Operator(String),
    /// A subscriber in the Certificate Management Center, signed in with password and soft
    /// token.
    Subscriber(String),
    /// A subscriber whose password was right but who has no active soft token yet: may only
    /// enroll one.
    Enrolling(String),
    /// A subscriber whose password was right, now answering the recovery questions.
    Recovering(String),
}

impl Principal {
    fn parse(s: &str) -> Self {
        match s.split_once(':') {
            Some(("applicant", id)) => Self::Applicant(id.to_owned()),
            Some(("operator", id)) => Self::Operator(id.to_owned()),
            Some(("subscriber", id)) => Self::Subscriber(id.to_owned()),
            Some(("enrolling", id)) => Self::Enrolling(id.to_owned()),
            Some(("recovering", id)) => Self::Recovering(id.to_owned()),
            _ => Self::Anonymous,
        }
    }

    fn stored(&self) -> String {
        match self {
            Self::Anonymous => String::new(),
            Self::Applicant(id) => format!("applicant:{id}"),
            Self::Operator(id) => format!("operator:{id}"),
            Self::Subscriber(id) => format!("subscriber:{id}"),
            Self::Enrolling(id) => format!("enrolling:{id}"),
            Self::Recovering(id) => format!("recovering:{id}"),
        }
    }
}

/// The request's session. Handlers take it as an extractor; writes go straight to the store.
#[derive(Clone)]
pub(crate) struct Session {
    state: AppState,
    id_hash: String,
    record: SessionRecord,
    /// A token the response must set: a new session, or one rotated at sign-in.
    set_cookie: Arc<Mutex<Option<String>>>,
    /// Whether the row exists yet.
    stored: bool,
}

impl Session {
    /// The token forms post back as `_csrf`.
    pub(crate) fn csrf(&self) -> &str {
        &self.record.csrf
    }

    pub(crate) fn principal(&self) -> Principal {
        Principal::parse(&self.record.principal)
    }

    /// The draft stored in the session, or the default when there is none or it no longer
    /// parses (a draft from an older release is dropped, not an error).
    pub(crate) fn data<T: DeserializeOwned + Default>(&self) -> T {
        serde_json::from_str(&self.record.data).unwrap_or_default()
    }

    pub(crate) async fn save_data<T: Serialize>(&mut self, data: &T) -> Result<(), PageError> {
        self.record.data = serde_json::to_string(data).map_err(|e| PageError::Internal(e.to_string()))?;
        self.write(None).await
    }

    /// Stores the record, under `new_hash` when the token rotates. The first write creates the
    /// row under a fresh token in any case, so a cookie planted in the browser before it
    /// never names a stored session; the form token stays, so open pages still post.
    async fn write(&mut self, new_hash: Option<&str>) -> Result<(), PageError> {
        let store = &self.state.store;
        if self.stored {
            store.update_session(&self.id_hash, new_hash, &self.record).await?;
            return Ok(());
        }
        let fresh = match new_hash {
            Some(h) => h.to_owned(),
            None => {
                let token = random_token();
                *self.set_cookie.lock().expect("cookie slot poisoned") = Some(token.clone());
                token_hash(&token)
            }
        };
        store.create_session(&fresh, &self.record, self.state.clock.now()).await?;
        self.id_hash = fresh;
        self.stored = true;
        Ok(())
    }

    /// Signs the session in (or out, with [`Principal::Anonymous`]) under a fresh token and
    /// form token, dropping any draft: a token planted in the browser before sign-in is
    /// worthless after it.
    pub(crate) async fn become_principal(&mut self, principal: Principal) -> Result<(), PageError> {
        let token = random_token();
        let new_hash = token_hash(&token);
        let now = self.state.clock.now();
        self.record = SessionRecord {
            csrf: random_token(),
            principal: principal.stored(),
            data: "{}".into(),
            expires_at: now + lifetime(&principal),
            flash: None,
        };
        self.write(Some(&new_hash)).await?;
        self.id_hash = new_hash;
        *self.set_cookie.lock().expect("cookie slot poisoned") = Some(token);
        Ok(())
    }
}

fn lifetime(principal: &Principal) -> Duration {
    if *principal == Principal::Anonymous { ANONYMOUS_LIFETIME } else { SIGNED_IN_LIFETIME }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| PageError::Internal("page route without the session layer".into()))
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn set_cookie_header(state: &AppState, token: &str, https: bool) -> HeaderValue {
    // Secure only when served over https: the dev server on http://127.0.0.1 must still work.
    let secure = if https || state.base_url.starts_with("https://") { "; Secure" } else { "" };
    let value = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&value).expect("the token is URL-safe base64")
}

/// The session layer for page routers: loads or starts the session, slides its expiry,
/// checks the CSRF token of every form post, and sets the cookie when the token changed.
pub(crate) async fn session_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match with_session(state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn with_session(state: AppState, request: Request, next: Next) -> Result<Response, Response> {
    let now = state.clock.now();
    let https = request.extensions().get::<crate::https::Https>().is_some_and(|h| h.0);
    let set_cookie = Arc::new(Mutex::new(None));
    let token = match cookie_token(request.headers()) {
        Some(token) => token.to_owned(),
        None => {
            let token = random_token();
            *set_cookie.lock().expect("cookie slot poisoned") = Some(token.clone());
            token
        }
    };
    let id_hash = token_hash(&token);
    let found = state.store.session(&id_hash, now).await.map_err(|e| PageError::from(e).into_response())?;
    let stored = found.is_some();
    let record = match found {
        Some(mut record) => {
            let full = lifetime(&Principal::parse(&record.principal));
            if record.expires_at - now < full / 2 {
                record.expires_at = now + full;
                state
                    .store
                    .update_session(&id_hash, None, &record)
                    .await
                    .map_err(|e| PageError::from(e).into_response())?;
            }
            record
        }
        // A new visitor, or a session that lapsed: nothing is stored until a handler saves.
        None => unstored(&token, now),
    };
    let method = request.method().clone();
    let address = request.uri().path_and_query().map_or_else(|| request.uri().path().to_owned(), |a| a.to_string());
    if method == Method::GET
        && let Some(kept) = record.flash.as_deref().and_then(|f| serde_json::from_str::<KeptPage>(f).ok())
        && kept.at == address
    {
        // Shown once: a reload after this asks the handler afresh.
        state.store.set_session_flash(&id_hash, None).await.map_err(|e| PageError::from(e).into_response())?;
        return Ok(kept.into_response());
    }
    if method == Method::GET
        && !stored
        && let Some(kept) = state.unstored_pages.take(&id_hash, &address)
    {
        return Ok(kept.into_response());
    }
    let request = if method == Method::POST { check_csrf(request, &record.csrf).await? } else { request };
    let session = Session { state: state.clone(), id_hash, record, set_cookie: set_cookie.clone(), stored };
    let mut request = request;
    request.extensions_mut().insert(session);
    let mut response = next.run(request).await;
    if method == Method::POST && is_kept_page(&response) {
        response = keep(&state, &token, &set_cookie, address, response).await;
    } else if matches!(method, Method::GET | Method::HEAD) && response.status() == StatusCode::METHOD_NOT_ALLOWED {
        response = Redirect::to(&form_page(request_path(&address))).into_response();
    }
    if let Some(token) = set_cookie.lock().expect("cookie slot poisoned").take() {
        response.headers_mut().append(header::SET_COOKIE, set_cookie_header(&state, &token, https));
    }
    Ok(response)
}

/// A page a handler rendered in answer to a post (not a redirect, not an error page).
fn is_kept_page(response: &Response) -> bool {
    let status = response.status();
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    html && (status.is_success() || status.is_client_error()) && response.extensions().get::<ErrorPageMark>().is_none()
}

/// Keeps `response` in the session (storing the session first if it was not) and answers with
/// a redirect to `at`. If it cannot be kept, the page is sent as it is: the person still sees
/// it, only reload would post again.
async fn keep(
    state: &AppState,
    cookie: &str,
    set_cookie: &Mutex<Option<String>>,
    at: String,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, KEPT_PAGE_LIMIT).await else {
        return PageError::Internal("a page too large to keep".into()).into_response();
    };
    let kept = KeptPage { at: at.clone(), status, html: String::from_utf8_lossy(&bytes).into_owned() };
    let kept_json = serde_json::to_string(&kept).expect("a kept page serializes");
    // The handler may have stored the session under a new token (first save, sign-in).
    let current = set_cookie.lock().expect("cookie slot poisoned").clone().unwrap_or_else(|| cookie.to_owned());
    let stored = match state.store.set_session_flash(&token_hash(&current), Some(&kept_json)).await {
        // A visitor with no stored session (a refused sign-in, a refused first step) gets no
        // row for it: the page waits in memory instead, so strangers' posts cost no disk.
        Err(signet_ra::issuance::StoreError::NotFound) => {
            state.unstored_pages.put(token_hash(&current), kept);
            Ok(())
        }
        other => other,
    };
    match stored {
        Ok(()) => Redirect::to(&at).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "could not keep a page for its redirect; sending it directly");
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

fn request_path(address: &str) -> &str {
    address.split_once('?').map_or(address, |(path, _)| path)
}

/// The page holding the form that posts to `path`, for a GET of an address that only takes
/// posts: each area's forms post below the page that shows them.
fn form_page(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["console", "applications", id, _, ..] => format!("/console/applications/{id}"),
        ["console", area, _, ..] => format!("/console/{area}"),
        ["console", ..] => "/console".into(),
        ["cmc", area @ ("recover" | "soft-token" | "passkeys"), _, ..] => format!("/cmc/{area}"),
        ["cmc", ..] => "/cmc".into(),
        ["applications", id, _, ..] if *id != "sign-in" => format!("/applications/{id}"),
        _ => "/".into(),
    }
}

/// Reads the form body, compares its `_csrf` field with the session's in constant time, and
/// hands the same body on. A post that is not a URL-encoded form is refused: no page of ours
/// sends anything else.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(PageError::BadRequest("this page only accepts its own form".into()).into_response());
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| PageError::BadRequest("the form is too large".into()).into_response())?;
    let sent = form_urlencoded::parse(&bytes).find(|(k, _)| k == "_csrf").map(|(_, v)| v.into_owned());
    let valid = sent
        .is_some_and(|s| aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), expected.as_bytes()).is_ok());
    if !valid {
        return Err(PageError::FormExpired.into_response());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Renders a page; a template that fails to render is an internal error (logged).
pub(crate) fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError::Internal(format!("template: {e}")).into_response(),
    }
}

/// A rendered page with another status: 422 for a refused form, 401 or 423 for a refused sign-in,
/// 410 for a link that no longer works.
pub(crate) fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// The script that lets forms use passkeys (pages work without it, with codes).
pub(crate) async fn passkey_script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/passkey.js"))
}

/// A refusal written to follow a colon ("the certificate is revoked: …") as a sentence of its own
/// on the page: capitalized and ending with a full stop.
pub(crate) fn as_sentence(text: String) -> String {
    let mut chars = text.chars();
    let Some(first) = chars.next() else { return text };
    let mut out: String = first.to_uppercase().chain(chars).collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The stylesheet every page links (no inline styles: the CSP forbids them).
pub(crate) async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/site.css"))
}
