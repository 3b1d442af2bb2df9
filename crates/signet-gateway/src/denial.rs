//! Why a client was turned away, and the one place that says it: a readable HTML page for
//! people, `application/problem+json` (RFC 9457) for API clients.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};

/// The reasons the gateway denies a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Denial {
    /// The client presented no certificate.
    NoCertificate,
    /// The certificate does not chain to a configured trust anchor (or is malformed, or may
    /// not be used for client authentication).
    Untrusted,
    /// The certificate (or one above it) is expired or not yet valid.
    Expired,
    /// The issuer revoked the certificate.
    Revoked,
    /// The certificate's type (policy OID) is not one this application or path accepts.
    WrongAssurance,
    /// The certificate is valid but not linked to an account here.
    NotLinked,
    /// Revocation status could not be established and the gateway fails hard.
    RevocationUnavailable,
    /// The request path has no unambiguous canonical form (see [`crate::canonical`]).
    BadPath,
    /// The request repeats a header the application would join, or spells one two ways.
    BadHeaders,
}

/// What each denial says: (code, HTTP status, title, what the person can do).
struct Wording {
    code: &'static str,
    status: u16,
    title: &'static str,
    advice: &'static str,
}

impl Denial {
    /// Every denial, for tests and documentation.
    pub const ALL: [Denial; 9] = [
        Self::NoCertificate,
        Self::Untrusted,
        Self::Expired,
        Self::Revoked,
        Self::WrongAssurance,
        Self::NotLinked,
        Self::RevocationUnavailable,
        Self::BadPath,
        Self::BadHeaders,
    ];

    fn wording(self) -> Wording {
        let (code, status, title, advice) = match self {
            Self::NoCertificate => (
                "no-certificate",
                401,
                "No certificate was presented",
                "This application requires a client certificate. Insert your token (smart card) and \
                 make sure your browser or client is set up to present your ECA identity certificate, \
                 then try again.",
            ),
            Self::Untrusted => (
                "untrusted",
                403,
                "Certificate not trusted",
                "Your certificate was not issued by a certification authority this application trusts, \
                 or it may not be used to sign in. Use your ECA identity certificate.",
            ),
            Self::Expired => (
                "expired",
                403,
                "Certificate expired",
                "Your certificate has expired or is not yet valid. Renew it (renewal is open in the 90 \
                 days before expiry) and try again.",
            ),
            Self::Revoked => (
                "revoked",
                403,
                "Certificate revoked",
                "Your certificate has been revoked by its issuer. Contact your certification authority \
                 to obtain a new one.",
            ),
            Self::WrongAssurance => (
                "wrong-assurance",
                403,
                "Wrong certificate type",
                "Your certificate is valid, but this application (or this part of it) requires a \
                 different certificate type, for example a hardware token.",
            ),
            Self::NotLinked => (
                "not-linked",
                403,
                "Certificate not linked to an account",
                "Your certificate is valid, but it is not linked to an account in this application yet. \
                 Follow the link below, or ask your administrator to link it.",
            ),
            Self::RevocationUnavailable => (
                "revocation-unavailable",
                503,
                "Revocation status unavailable",
                "The revocation status of your certificate could not be checked right now, so access \
                 is refused. Try again in a few minutes.",
            ),
            Self::BadPath => (
                "bad-path",
                400,
                "Request address refused",
                "The address of this request is spelled in a way this gateway does not accept \
                 (an encoded slash or backslash, a path parameter after ;, a NUL or control \
                 character, double encoding, or escapes that are not UTF-8). Use the plain address \
                 of the page.",
            ),
            Self::BadHeaders => (
                "bad-headers",
                400,
                "Request headers refused",
                "The request repeats a header that must appear once, or spells one header in two \
                 ways (with - and with _). Send each header once.",
            ),
        };
        Wording { code, status, title, advice }
    }

    /// Short machine code, e.g. `wrong-assurance` (logged, and the problem type's last part).
    pub fn code(self) -> &'static str {
        self.wording().code
    }

    /// HTTP status: 400 for a malformed request, 401 without a certificate, 503 when
    /// revocation could not be checked, 403 otherwise.
    pub fn status(self) -> u16 {
        self.wording().status
    }

    /// One-line title.
    pub fn title(self) -> &'static str {
        self.wording().title
    }

    /// Renders the denial for a client: problem+json when `json`, else HTML.
    /// `detail` is specific to this client (never internal errors); `link_url` is shown on
    /// the not-linked page; `facts` are name/value lines shown to the person (their
    /// certificate's subject and issuer, the required levels).
    pub fn render(
        self,
        json: bool,
        detail: &str,
        link_url: Option<&str>,
        facts: &[(&str, String)],
    ) -> Response<Full<Bytes>> {
        let w = self.wording();
        let (content_type, body) = if json {
            let mut problem = serde_json::json!({
                "type": format!("urn:signet:gateway:{}", w.code),
                "title": w.title,
                "status": w.status,
                "detail": detail,
                "reason": w.code,
            });
            for (k, v) in facts {
                problem[*k] = serde_json::Value::String(v.clone());
            }
            if let (Denial::NotLinked, Some(url)) = (self, link_url) {
                problem["link_url"] = serde_json::Value::String(url.to_owned());
            }
            ("application/problem+json", problem.to_string())
        } else {
            let mut rows = String::new();
            for (k, v) in facts {
                rows.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v)));
            }
            let link = match (self, link_url) {
                (Denial::NotLinked, Some(url)) => {
                    format!("<p class=\"link\"><a href=\"{0}\">Link your certificate: {0}</a></p>\n", escape(url))
                }
                _ => String::new(),
            };
            let html = format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{title}</title><style>body{{font-family:sans-serif;max-width:42em;margin:3em auto;\
                 padding:0 1em;color:#222}}h1{{color:#a00;font-size:1.5em}}th{{text-align:left;\
                 padding-right:1em;vertical-align:top}}code{{background:#eee}}</style></head>\n<body>\
                 <h1>Access denied: {title}</h1>\n<p>{advice}</p>\n<p><strong>Why:</strong> {detail}</p>\n\
                 {link}<table>\n{rows}</table>\n<p><small>Reason code: <code>{code}</code></small></p>\n\
                 </body></html>\n",
                title = escape(w.title),
                advice = escape(w.advice),
                detail = escape(detail),
                code = w.code,
            );
            ("text/html; charset=utf-8", html)
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = hyper::StatusCode::from_u16(w.status).expect("valid status");
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Whether the client prefers JSON: an Accept header naming application/json or
/// application/problem+json and not text/html.
pub fn wants_json(accept: Option<&str>) -> bool {
    let Some(a) = accept else { return false };
    let a = a.to_ascii_lowercase();
    (a.contains("application/json") || a.contains("application/problem+json")) && !a.contains("text/html")
}

/// Minimal HTML escaping for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_denial_renders_html_and_problem_json() {
        for d in Denial::ALL {
            let html = d.render(false, "because <script>", Some("https://app/link"), &[("Subject", "CN=A&B".into())]);
            assert_eq!(html.status().as_u16(), d.status());
            assert_eq!(html.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
            let text = body(html).await;
            assert!(text.contains(d.title()), "{d}");
            assert!(text.contains("because &lt;script&gt;"));
            assert!(text.contains("CN=A&amp;B"));
            assert_eq!(text.contains("https://app/link"), d == Denial::NotLinked);

            let json = d.render(true, "because", Some("https://app/link"), &[("subject", "CN=A".into())]);
            assert_eq!(json.headers()[CONTENT_TYPE], "application/problem+json");
            let v: serde_json::Value = serde_json::from_str(&body(json).await).unwrap();
            assert_eq!(v["reason"], d.code());
            assert_eq!(v["status"], d.status());
            assert_eq!(v["type"], format!("urn:signet:gateway:{}", d.code()));
            assert_eq!(v["subject"], "CN=A");
        }
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_json(Some("application/json")));
        assert!(wants_json(Some("application/problem+json, */*")));
        assert!(!wants_json(Some("text/html,application/xhtml+xml,application/json;q=0.9")));
        assert!(!wants_json(Some("*/*")));
        assert!(!wants_json(None));
    }
}
