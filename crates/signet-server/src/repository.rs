//! The public repository of certificates: `GET /repository?email=…` finds the certificates
//! published for one address (the rules are [`signet_ra::repository`]'s), as a page for people
//! or as JSON for tools, with each certificate's PEM and `.p7c` downloads.
//!
//! Nobody signs in here, so the endpoint assumes the asker is hostile: it matches one address
//! exactly, counts each client's requests ([`crate::throttle::spend`], `[limits]`
//! `repository_requests_per_minute`), takes the same time to say "found" as "not found"
//! ([`ANSWER_TIME`]) so that holders of certificates cannot be told from the timing, and never
//! logs the address looked up.
//!
//! JSON or HTML: `format=json` (or `format=html`) decides; without it, a request whose `Accept`
//! names `application/json` gets JSON and every other one (a browser's) gets the page. JSON
//! errors are problem+json, as the rest of the API's.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use signet_pki::Serial;
use signet_ra::repository::{self, LookupAddress, MAX_ADDRESS_LEN, RepositoryCertificate};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::error::{ApiError, PageError, wait_words};
use crate::state::AppState;
use crate::web::{as_sentence, render, with_status};

/// Every lookup is answered no sooner than this after it was understood, found or not: well
/// above the time one indexed query and the page take, so the answer's time is this figure
/// whatever the database held.
pub(crate) const ANSWER_TIME: std::time::Duration = std::time::Duration::from_millis(250);

/// The lookup's address.
const LOOKUP: &str = "/repository";

/// Routes: the lookup and each published certificate's downloads.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(LOOKUP, get(lookup))
        .route("/repository/certificates/{serial}/certificate.pem", get(pem_download))
        .route("/repository/certificates/{serial}/certificate.p7c", get(p7c_download))
}

/// How the answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Html,
    Json,
}

/// What the query string asked: every `email` and `format` given (one of each is
/// understood; more are refused, not guessed between).
struct Query {
    emails: Vec<String>,
    formats: Vec<String>,
}

/// What a lookup with several addresses is told.
const ONE_ADDRESS: &str = "look up one address at a time";

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let (mut emails, mut formats) = (Vec::new(), Vec::new());
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "email" => emails.push(value.into_owned()),
                "format" => formats.push(value.into_owned()),
                _ => {}
            }
        }
        Self { emails, formats }
    }

    /// The module's rule: `format` if given, else `Accept` naming `application/json`.
    fn format(&self, request: &Request) -> Result<Format, ApiError> {
        match self.formats.as_slice() {
            [one] if one == "json" => Ok(Format::Json),
            [one] if one == "html" => Ok(Format::Html),
            [_, ..] => Err(ApiError::BadRequest { kind: "bad-format", detail: "format is json or html, once".into() }),
            [] => {
                let wants_json = request
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|media| {
                        media.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
                    });
                Ok(if wants_json { Format::Json } else { Format::Html })
            }
        }
    }
}

/// A published certificate as the page and the JSON show it.
#[derive(Serialize)]
struct Found {
    serial: String,
    /// The subject's distinguished name.
    subject: String,
    email: String,
    usage: String,
    /// The certificate's type and usage in words.
    name: String,
    not_before: String,
    not_after: String,
    /// The validity as the page says it.
    #[serde(skip)]
    valid: String,
    status: &'static str,
    certificate: String,
    /// Issuing CA, then root, PEM.
    chain: String,
    /// The chain's subjects, issuing CA first.
    issuers: Vec<String>,
    downloads: Downloads,
}

#[derive(Serialize)]
struct Downloads {
    pem: String,
    p7c: String,
}

#[derive(Serialize)]
struct Answer<'a> {
    email: &'a str,
    certificates: &'a [Found],
}

#[derive(Template)]
#[template(path = "repository.html")]
struct Page<'a> {
    /// What was typed, as typed (cut to the longest address).
    typed: &'a str,
    /// The address looked up; empty before a lookup and for a refused one.
    looked_up: &'a str,
    error: &'a str,
    found: &'a [Found],
}

/// The subject's distinguished name, as OpenSSL and mail clients print it.
fn subject_of(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der).map(|(_, c)| c.subject().to_string()).unwrap_or_default()
}

fn date(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn minute(t: time::OffsetDateTime) -> String {
    t.format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).unwrap_or_default()
}

fn found(s: &AppState, address: &LookupAddress, c: &RepositoryCertificate) -> Found {
    let serial = c.serial.to_hex();
    let url = |file: &str| format!("{}/repository/certificates/{serial}/{file}", s.base_url);
    Found {
        subject: subject_of(&c.der),
        email: address.as_str().to_owned(),
        usage: s.catalog.profile(&c.profile).map(|p| p.usage.clone()).unwrap_or_default(),
        name: s.certificate_name(&c.profile),
        not_before: date(c.not_before),
        not_after: date(c.not_after),
        valid: format!("from {} to {}", minute(c.not_before), minute(c.not_after)),
        status: "good",
        certificate: signet_pki::to_pem("CERTIFICATE", &c.der),
        chain: s.certificates.chain_pem(),
        issuers: [&s.certificates.issuing, &s.certificates.root].map(|der| subject_of(der)).to_vec(),
        downloads: Downloads { pem: url("certificate.pem"), p7c: url("certificate.p7c") },
        serial,
    }
}

/// A typed value shown back in the field: at most the longest address, cut on a character.
fn shown(typed: &str) -> &str {
    typed.char_indices().nth(MAX_ADDRESS_LEN).map_or(typed, |(at, _)| &typed[..at])
}

fn page(typed: &str, looked_up: &str, error: &str, found: &[Found], status: StatusCode) -> Response {
    with_status(render(&Page { typed: shown(typed), looked_up, error, found }), status)
}

/// The page for a client over its budget: the form again, with how long to wait.
fn too_many(typed: &str, wait: u64) -> Response {
    let message = format!("Too many requests from your network. Wait {} and try again.", wait_words(wait));
    let mut r = page(typed, "", &message, &[], StatusCode::TOO_MANY_REQUESTS);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
    r
}

/// Marks a lookup's answer as one no cache may keep (a shared cache's hit would tell a later
/// asker what an earlier one found, faster) and as depending on `Accept`.
fn uncached(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

#[tracing::instrument(skip_all)]
async fn lookup(State(s): State<AppState>, request: Request) -> Response {
    let query = Query::parse(request.uri().query());
    let format = match query.format(&request) {
        Ok(f) => f,
        Err(e) => return uncached(e.into_response()),
    };
    let Some(typed) = query.emails.first().map(String::as_str) else {
        return uncached(match format {
            Format::Html => page("", "", "", &[], StatusCode::OK),
            Format::Json => ApiError::BadRequest { kind: "missing-email", detail: "give the address as email=".into() }
                .into_response(),
        });
    };
    if let Err(wait) = crate::throttle::spend(&s, &s.repository_limiter, &request) {
        return uncached(match format {
            Format::Html => too_many(typed, wait),
            Format::Json => ApiError::TooManyRequests { retry_after: wait }.into_response(),
        });
    }
    if query.emails.len() > 1 {
        return uncached(refused_address(format, typed, ONE_ADDRESS.to_owned()));
    }
    let address = match LookupAddress::parse(typed) {
        Ok(a) => a,
        Err(e) => return uncached(refused_address(format, typed, e.to_string())),
    };
    let started = tokio::time::Instant::now();
    let answer = match repository::lookup(&s.store, &s.catalog, &address, s.clock.now()).await {
        Ok(certificates) => {
            let found: Vec<Found> = certificates.iter().map(|c| found(&s, &address, c)).collect();
            match format {
                Format::Html => page(typed, address.as_str(), "", &found, StatusCode::OK),
                Format::Json => Json(Answer { email: address.as_str(), certificates: &found }).into_response(),
            }
        }
        Err(e) => match format {
            Format::Html => PageError::from(e).into_response(),
            Format::Json => ApiError::from(e).into_response(),
        },
    };
    tokio::time::sleep_until(started + ANSWER_TIME).await;
    uncached(answer)
}

/// The answer to an address that cannot be looked up (`why`, written to follow a colon): the
/// page with the reason beside the field, or a problem.
fn refused_address(format: Format, typed: &str, why: String) -> Response {
    match format {
        Format::Html => page(typed, "", &as_sentence(why), &[], StatusCode::BAD_REQUEST),
        Format::Json => ApiError::BadRequest { kind: "bad-email", detail: why }.into_response(),
    }
}

/// The published certificate `serial`, for a download: `NotFound` for a serial that is not
/// published now, whether or not it exists. Downloads count against the client's budget
/// (`budget`, spent by the caller, which holds the request), so they cannot probe serials
/// faster than lookups probe addresses.
async fn published(s: &AppState, budget: Result<(), u64>, serial: &str) -> Result<RepositoryCertificate, Response> {
    budget.map_err(|wait| too_many("", wait))?;
    let serial = Serial::from_hex(serial).map_err(|_| PageError::NotFound.into_response())?;
    match repository::published(&s.store, &s.catalog, &serial, s.clock.now()).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(PageError::NotFound.into_response()),
        Err(e) => Err(PageError::from(e).into_response()),
    }
}

/// A download named `<serial>.<extension>`.
fn attachment(content_type: &'static str, serial: &Serial, extension: &str, body: Vec<u8>) -> Response {
    let name = format!("attachment; filename=\"{}.{extension}\"", serial.to_hex());
    let disposition = HeaderValue::from_str(&name).expect("a hex serial and an extension");
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// The certificate and its chain, PEM.
async fn pem_download(State(s): State<AppState>, Path(serial): Path<String>, request: Request) -> Response {
    match published(&s, crate::throttle::spend(&s, &s.repository_limiter, &request), &serial).await {
        Ok(c) => {
            let pem = signet_pki::to_pem("CERTIFICATE", &c.der) + &s.certificates.chain_pem();
            attachment("application/pem-certificate-chain", &c.serial, "pem", pem.into_bytes())
        }
        Err(r) => r,
    }
}

/// The certificate and its chain as a certificates-only CMS bundle (RFC 8551 §3.2.2), the
/// file a mail client imports.
async fn p7c_download(State(s): State<AppState>, Path(serial): Path<String>, request: Request) -> Response {
    let c = match published(&s, crate::throttle::spend(&s, &s.repository_limiter, &request), &serial).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match signet_pki::p7c::certs_only(&[&c.der, &s.certificates.issuing, &s.certificates.root]) {
        Ok(bundle) => attachment("application/pkcs7-mime; smime-type=certs-only", &c.serial, "p7c", bundle),
        Err(e) => PageError::Internal(e.to_string()).into_response(),
    }
}
