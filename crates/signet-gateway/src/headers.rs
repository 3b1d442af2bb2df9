//! Request headers the application can trust. Header names are compared the way CGI and WSGI
//! applications see them: lower case, with `_` read as `-` (`X_Signet_Account` and
//! `x-signet-account` both become `HTTP_X_SIGNET_ACCOUNT`).
//!
//! - Headers the gateway sets, or that claim to say who the client is or which path it asked
//!   for ([`is_reserved`]), are dropped in every spelling before the gateway adds its own.
//! - A request is refused ([`HeaderRefusal`]) when it carries twice a header that must
//!   appear once ([`SINGLE`], and every reserved header), or carries one header under two
//!   spellings (`Foo-Bar` and `Foo_Bar`): the application would join or pick between them.

use hyper::header::{HeaderMap, HeaderName};

/// Headers that must appear at most once (normalized names); an application joining two
/// copies (`a,b`) or taking either one would act on something the gateway did not check.
pub const SINGLE: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "authorization",
    "proxy-authorization",
    "cookie",
    "origin",
    "referer",
];

/// Why the request's headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderRefusal {
    /// A header that must appear once was sent more than once (counting every spelling).
    #[error("the header {0} was sent more than once")]
    Repeated(String),
    /// One header under two spellings, e.g. `foo-bar` and `foo_bar`.
    #[error("the header {0} was sent under two spellings ({1} and {2})")]
    TwoSpellings(String, String, String),
}

/// Lower case with `_` read as `-`.
pub fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Whether a (normalized) header name is the gateway's to set: `x-signet-*`, the
/// forwarding headers (`x-forwarded-*`, `forwarded`, `x-real-ip`, `x-client-ip`,
/// `true-client-ip`) and the path overrides some frameworks honour (`x-original-url`,
/// `x-rewrite-url`, `x-original-uri`).
pub fn is_reserved(normalized: &str) -> bool {
    normalized.starts_with("x-signet-")
        || normalized.starts_with("x-forwarded-")
        || matches!(
            normalized,
            "forwarded"
                | "x-real-ip"
                | "x-client-ip"
                | "true-client-ip"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-original-uri"
        )
}

/// Checks a request's headers; on success returns the headers to drop (the reserved ones,
/// in whatever spelling the client used).
pub fn screen(headers: &HeaderMap) -> Result<Vec<HeaderName>, HeaderRefusal> {
    let mut seen: Vec<(String, &HeaderName)> = Vec::new();
    let mut drop = Vec::new();
    for name in headers.keys() {
        let normalized = normalize(name.as_str());
        let count = headers.get_all(name).iter().count();
        let reserved = is_reserved(&normalized);
        if count > 1 && (reserved || SINGLE.contains(&normalized.as_str())) {
            return Err(HeaderRefusal::Repeated(normalized));
        }
        if let Some((_, other)) = seen.iter().find(|(n, _)| *n == normalized) {
            return Err(HeaderRefusal::TwoSpellings(normalized, other.to_string(), name.to_string()));
        }
        if reserved {
            drop.push(name.clone());
        }
        seen.push((normalized, name));
    }
    Ok(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reserved_headers_are_dropped_in_every_spelling() {
        let h = map(&[
            ("X_Signet_Account", "admin"),
            ("x-SIGNET-serial", "1"),
            ("X_Forwarded_For", "10.0.0.1"),
            ("x-forwarded-host", "evil"),
            ("Forwarded", "for=1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
            ("x_original_url", "/records"),
            ("accept", "*/*"),
            ("x-signetish", "kept"),
            ("my_header", "kept"),
        ]);
        let dropped: Vec<String> = screen(&h).unwrap().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            dropped,
            [
                "x_signet_account",
                "x-signet-serial",
                "x_forwarded_for",
                "x-forwarded-host",
                "forwarded",
                "x-real-ip",
                "x_original_url"
            ]
        );
    }

    #[test]
    fn repeated_and_doubly_spelled_headers_are_refused() {
        for (pairs, want) in [
            (vec![("host", "a"), ("host", "b")], HeaderRefusal::Repeated("host".into())),
            (vec![("authorization", "a"), ("Authorization", "b")], HeaderRefusal::Repeated("authorization".into())),
            (
                vec![("x-signet-account", "a"), ("x-signet-account", "b")],
                HeaderRefusal::Repeated("x-signet-account".into()),
            ),
            (
                vec![("x_forwarded_for", "a"), ("x_forwarded_for", "b")],
                HeaderRefusal::Repeated("x-forwarded-for".into()),
            ),
            (
                vec![("x-signet-account", "a"), ("x_signet_account", "b")],
                HeaderRefusal::TwoSpellings(
                    "x-signet-account".into(),
                    "x-signet-account".into(),
                    "x_signet_account".into(),
                ),
            ),
            (
                vec![("foo-bar", "a"), ("foo_bar", "b")],
                HeaderRefusal::TwoSpellings("foo-bar".into(), "foo-bar".into(), "foo_bar".into()),
            ),
        ] {
            assert_eq!(screen(&map(&pairs)), Err(want), "{pairs:?}");
        }
        // Headers a list may repeat are left to HTTP's rules.
        assert!(screen(&map(&[("accept", "a"), ("accept", "b"), ("cache-control", "x")])).is_ok());
    }
}
