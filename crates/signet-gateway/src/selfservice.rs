//! The gateway's own pages under `/.signet/` (never proxied): `/.signet/link`, where a
//! certificate holder without an account link asks for one and later sees the outcome, and
//! `/.signet/admin`, where a gateway administrator (an account named in `admins`, signed in
//! with its own linked certificate) approves or refuses the requests. Plain HTML forms, no
//! JavaScript; every form carries a token bound to the certificate (HMAC with a secret kept
//! in the link database), because browsers present client certificates on cross-site
//! requests too. Inputs are bounded; every value shown is HTML-escaped.

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Response, StatusCode};
use time::OffsetDateTime;

use crate::denial::escape;
use crate::links::{CertRef, LinkRequest, LinkStore, RequestStatus};

/// Where the gateway's own pages live.
pub const PREFIX: &str = "/.signet";
/// The link request page.
pub const LINK_PATH: &str = "/.signet/link";
/// The administrators' page.
pub const ADMIN_PATH: &str = "/.signet/admin";
/// Largest form body accepted.
pub const MAX_FORM: usize = 8 * 1024;
/// Longest account name.
const MAX_ACCOUNT: usize = 64;
/// Longest note.
const MAX_NOTE: usize = 500;

/// One of the gateway's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    Link,
    Admin,
    Unknown,
}

/// Whether a canonical path is one of the gateway's own (all of `/.signet/…` is reserved).
pub(crate) fn page_of(path: &str) -> Option<Page> {
    let rest = path.strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    Some(match path.trim_end_matches('/') {
        LINK_PATH => Page::Link,
        ADMIN_PATH => Page::Admin,
        _ => Page::Unknown,
    })
}

/// Who is visiting.
pub(crate) struct Visit<'a> {
    pub cert: CertRef,
    /// The linked account (from the accounts file or the database).
    pub account: Option<String>,
    pub is_admin: bool,
    /// The configured administrators, so a request for one of their accounts stands out.
    pub admins: &'a [String],
    pub now: OffsetDateTime,
    pub form_key: &'a hmac::Key,
}

impl Visit<'_> {
    fn token(&self, page: &str) -> String {
        let msg = format!("{page}|{}|{}", self.cert.issuer_dn, self.cert.serial_hex);
        hex::encode(hmac::sign(self.form_key, msg.as_bytes()))
    }

    fn token_ok(&self, page: &str, token: &str) -> bool {
        let msg = format!("{page}|{}|{}", self.cert.issuer_dn, self.cert.serial_hex);
        hex::decode(token).is_ok_and(|t| hmac::verify(self.form_key, msg.as_bytes(), &t).is_ok())
    }
}

/// `4 December 2026 at 15:36 UTC`.
pub fn when(unix: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{} {} {} at {:02}:{:02} UTC", at.day(), at.month(), at.year(), at.hour(), at.minute())
}

/// What a person's latest request says, for their pages.
pub(crate) fn outcome(r: &LinkRequest) -> String {
    match r.status {
        RequestStatus::Pending => {
            format!(
                "your request to link this certificate to account {} ({}) is waiting for approval",
                r.account,
                when(r.created_at)
            )
        }
        RequestStatus::Approved => {
            format!("your request for account {} was approved by {} on {}", r.account, r.decided_by, when(r.decided_at))
        }
        RequestStatus::Refused => {
            format!("your request for account {} was refused by {} on {}", r.account, r.decided_by, when(r.decided_at))
        }
    }
}

type Page200 = Response<Full<Bytes>>;

fn html(status: StatusCode, title: &str, body: &str) -> Page200 {
    let text = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:52em;margin:3em auto;padding:0 1em;color:#222}}\
         th{{text-align:left;padding-right:1em;vertical-align:top}}td{{vertical-align:top}}\
         label{{display:block;margin-top:1em}}.err{{color:#a00}}</style></head>\n<body><h1>{t}</h1>\n{body}</body></html>\n",
        t = escape(title)
    );
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    r.headers_mut()
        .insert("content-security-policy", HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"));
    r
}

fn see_other(to: &'static str) -> Page200 {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut().insert(LOCATION, HeaderValue::from_static(to));
    r
}

fn cert_rows(c: &CertRef) -> String {
    format!(
        "<table><tr><th>Subject</th><td>{}</td></tr><tr><th>Issuer</th><td>{}</td></tr>\
         <tr><th>Serial</th><td>{}</td></tr></table>\n",
        escape(&c.subject_dn),
        escape(&c.issuer_dn),
        escape(&c.serial_hex)
    )
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// An account name: 1–64 of `A–Z a–z 0–9 . _ @ -`.
fn valid_account(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ACCOUNT
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Serves one of the gateway's pages. `form` is the parsed body of a POST.
pub(crate) async fn serve(
    store: &LinkStore,
    page: Page,
    method: &Method,
    form: Option<Vec<(String, String)>>,
    v: &Visit<'_>,
) -> Page200 {
    let result = match (page, method) {
        (Page::Link, &Method::GET) => link_page(store, v, None).await,
        (Page::Link, &Method::POST) => link_post(store, v, &form.unwrap_or_default()).await,
        (Page::Admin, &Method::GET) => admin_page(store, v).await,
        (Page::Admin, &Method::POST) => admin_post(store, v, &form.unwrap_or_default()).await,
        (Page::Unknown, _) => Ok(html(StatusCode::NOT_FOUND, "Not found", "<p>No such gateway page.</p>\n")),
        _ => Ok(html(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", "<p>Use the forms.</p>\n")),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "link database unusable");
        html(StatusCode::SERVICE_UNAVAILABLE, "Try again later", "<p>The account link service is unavailable.</p>\n")
    })
}

async fn link_page(store: &LinkStore, v: &Visit<'_>, error: Option<&str>) -> Result<Page200, crate::links::LinkError> {
    let mut body = String::new();
    if let Some(account) = &v.account {
        body.push_str(&format!(
            "<p>This certificate is linked to account <strong>{}</strong>. <a href=\"/\">Continue</a>.</p>\n",
            escape(account)
        ));
        body.push_str(&cert_rows(&v.cert));
        return Ok(html(StatusCode::OK, "Account link", &body));
    }
    let latest = store.latest_request(&v.cert).await?;
    if let Some(r) = &latest {
        body.push_str(&format!("<p><strong>Status:</strong> {}.</p>\n", escape(&outcome(r))));
    }
    body.push_str(&cert_rows(&v.cert));
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"err\">{}</p>\n", escape(e)));
    }
    let pending = latest.as_ref().is_some_and(|r| r.status == RequestStatus::Pending);
    if !pending {
        body.push_str(&format!(
            "<form method=\"post\" action=\"{LINK_PATH}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <label>Account name <input name=\"account\" required maxlength=\"{MAX_ACCOUNT}\" \
             pattern=\"[A-Za-z0-9._@\\-]+\"></label>\
             <label>Note to the administrator (optional)<br><textarea name=\"note\" rows=\"3\" cols=\"60\" \
             maxlength=\"{MAX_NOTE}\"></textarea></label>\
             <p><button type=\"submit\">Ask for the link</button></p></form>\n",
            token = v.token("link")
        ));
    }
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(html(status, "Link your certificate to an account", &body))
}

async fn link_post(
    store: &LinkStore,
    v: &Visit<'_>,
    form: &[(String, String)],
) -> Result<Page200, crate::links::LinkError> {
    if !v.token_ok("link", field(form, "csrf")) {
        tracing::warn!(subject = %v.cert.subject_dn, "link request with a bad form token");
        return Ok(html(StatusCode::FORBIDDEN, "Form expired", "<p>Reload the page and try again.</p>\n"));
    }
    if v.account.is_some() {
        return link_page(store, v, None).await;
    }
    let account = field(form, "account").trim();
    let note: String = field(form, "note").chars().filter(|c| !c.is_control() || *c == '\n').collect();
    if !valid_account(account) {
        return link_page(store, v, Some("An account name is 1 to 64 letters, digits, '.', '_', '@' or '-'.")).await;
    }
    if note.chars().count() > MAX_NOTE {
        return link_page(store, v, Some("The note is limited to 500 characters.")).await;
    }
    let r = store.request(&v.cert, account, note.trim(), v.now.unix_timestamp()).await?;
    tracing::info!(subject = %v.cert.subject_dn, serial = %v.cert.serial_hex, account = %r.account, request = %r.id, "account link requested");
    Ok(see_other(LINK_PATH))
}

fn admins_only() -> Page200 {
    html(
        StatusCode::FORBIDDEN,
        "Administrators only",
        "<p>This page is for the gateway's administrators, signed in with their own linked certificate.</p>\n",
    )
}

async fn admin_page(store: &LinkStore, v: &Visit<'_>) -> Result<Page200, crate::links::LinkError> {
    if !v.is_admin {
        return Ok(admins_only());
    }
    let token = v.token("admin");
    let mut body = String::from("<h2>Waiting for a decision</h2>\n");
    let pending = store.pending().await?;
    if pending.is_empty() {
        body.push_str("<p>No requests.</p>\n");
    }
    for r in &pending {
        if v.admins.contains(&r.account) {
            body.push_str("<p class=\"err\"><strong>This request is for an administrator's account.</strong></p>\n");
        }
        body.push_str(&format!(
            "<table><tr><th>Account</th><td><strong>{}</strong></td></tr><tr><th>Note</th><td>{}</td></tr>\
             <tr><th>Asked</th><td>{}</td></tr><tr><th>Subject</th><td>{}</td></tr><tr><th>Issuer</th><td>{}</td></tr>\
             <tr><th>Serial</th><td>{}</td></tr></table>\
             <form method=\"post\" action=\"{ADMIN_PATH}\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <input type=\"hidden\" name=\"id\" value=\"{}\">\
             <button name=\"decision\" value=\"approve\">Approve</button> \
             <button name=\"decision\" value=\"refuse\">Refuse</button></form><hr>\n",
            escape(&r.account),
            escape(&r.note),
            when(r.created_at),
            escape(&r.cert.subject_dn),
            escape(&r.cert.issuer_dn),
            escape(&r.cert.serial_hex),
            escape(&r.id),
        ));
    }
    body.push_str("<h2>Recent changes</h2>\n<table><tr><th>When</th><th>Who</th><th>What</th><th>Account</th><th>Serial</th></tr>\n");
    for e in store.audit_log(50).await? {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            when(e.at),
            escape(&e.actor),
            escape(&e.action),
            escape(&e.account),
            escape(&e.serial)
        ));
    }
    body.push_str("</table>\n");
    Ok(html(StatusCode::OK, "Account link requests", &body))
}

async fn admin_post(
    store: &LinkStore,
    v: &Visit<'_>,
    form: &[(String, String)],
) -> Result<Page200, crate::links::LinkError> {
    if !v.is_admin {
        return Ok(admins_only());
    }
    if !v.token_ok("admin", field(form, "csrf")) {
        tracing::warn!(subject = %v.cert.subject_dn, "admin decision with a bad form token");
        return Ok(html(StatusCode::FORBIDDEN, "Form expired", "<p>Reload the page and try again.</p>\n"));
    }
    let approve = match field(form, "decision") {
        "approve" => true,
        "refuse" => false,
        _ => return Ok(html(StatusCode::BAD_REQUEST, "Bad request", "<p>Approve or refuse.</p>\n")),
    };
    let admin = v.account.as_deref().unwrap_or("-");
    let id = field(form, "id");
    match store.decide(id, approve, admin, v.now.unix_timestamp()).await? {
        Some(r) => {
            tracing::info!(%admin, request = %r.id, account = %r.account, serial = %r.cert.serial_hex, approve, "account link decided")
        }
        None => tracing::warn!(%admin, request = %id, "decision on a request that is not pending"),
    }
    Ok(see_other(ADMIN_PATH))
}

/// Parses an `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_pages_and_inputs() {
        assert_eq!(page_of("/.signet/link"), Some(Page::Link));
        assert_eq!(page_of("/.signet/admin/"), Some(Page::Admin));
        assert_eq!(page_of("/.signet"), Some(Page::Unknown));
        assert_eq!(page_of("/.signet/other"), Some(Page::Unknown));
        assert_eq!(page_of("/.signetx"), None);
        assert_eq!(page_of("/app"), None);
        assert!(valid_account("ann.smith@acme-1"));
        assert!(!valid_account(""));
        assert!(!valid_account("a b"));
        assert!(!valid_account("<script>"));
        assert!(!valid_account(&"a".repeat(65)));
        assert_eq!(when(1_796_398_568), "4 December 2026 at 15:36 UTC");
        let form = parse_form(b"account=ann&note=hello+%3Cb%3E&csrf=ab");
        assert_eq!(field(&form, "note"), "hello <b>");
        assert_eq!(field(&form, "missing"), "");
    }

    #[test]
    fn form_tokens_are_bound_to_the_certificate_and_page() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let cert =
            CertRef { subject_dn: "CN=A".into(), issuer_dn: "CN=CA".into(), serial_hex: "01".into(), not_after: 0 };
        let v = Visit {
            cert: cert.clone(),
            account: None,
            is_admin: false,
            admins: &[],
            now: OffsetDateTime::UNIX_EPOCH,
            form_key: &key,
        };
        let t = v.token("link");
        assert!(v.token_ok("link", &t));
        assert!(!v.token_ok("admin", &t));
        assert!(!v.token_ok("link", "zz"));
        let other = Visit { cert: CertRef { serial_hex: "02".into(), ..cert }, ..v };
        assert!(!other.token_ok("link", &t));
    }
}
