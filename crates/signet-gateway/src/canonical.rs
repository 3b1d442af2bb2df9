//! One canonical spelling of a request path. The gateway matches its route policies on the
//! canonical path and forwards exactly that path, so the application can never be asked for a
//! resource under a spelling the policy did not see (`//records`, `/%72ecords`,
//! `/x/../records`, …).
//!
//! [`canonicalize`] is a pure function:
//!
//! - percent-encoded *unreserved* characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`) are
//!   decoded; every other escape is kept, with upper-case hex;
//! - raw characters that are neither unreserved, `/`, sub-delims, `:` nor `@` (non-ASCII
//!   UTF-8, `"`, `{`, `|`, …) are percent-encoded, so the result is ASCII;
//! - dot segments are removed (RFC 3986 §5.2.4), after decoding, so `%2e%2E` is `..`;
//! - repeated slashes are merged; a trailing slash is kept.
//!
//! What cannot be made canonical unambiguously is refused ([`PathRefusal`]): encoded `/` or
//! `\`, a raw `\`, NUL and control characters (raw or encoded), `;` path parameters (raw or
//! encoded), double encoding (`%25` followed by two hex digits), a `%` without two hex
//! digits, and escapes that do not decode to UTF-8.

use std::fmt;

/// A request path in its one canonical spelling: starts with `/`, ASCII only, no dot
/// segments, no empty segments except a trailing slash, escapes only where needed and in
/// upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a path has no unambiguous canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PathRefusal {
    /// The request target is not an absolute path (`*`, or empty).
    #[error("the request path does not start with /")]
    NotAbsolute,
    /// `%2F` or `%5C`: applications disagree on whether it separates segments.
    #[error("the path contains an encoded / or \\ (%2F or %5C)")]
    EncodedSeparator,
    /// A raw `\`, which some servers read as `/`.
    #[error("the path contains a backslash")]
    Backslash,
    /// NUL, raw or `%00`, which truncates paths in some servers.
    #[error("the path contains a NUL character (%00)")]
    Nul,
    /// Another control character, raw or encoded (`%0A`, `%7F`, …).
    #[error("the path contains a control character")]
    Control,
    /// `;`, raw or `%3B`: path parameters (`/records;x`) that some servers strip before routing.
    #[error("the path contains ; (path parameters are not accepted)")]
    Parameter,
    /// `%` not followed by two hexadecimal digits.
    #[error("the path contains a % that does not start a %XX escape")]
    BadEscape,
    /// `%25` followed by two hex digits, which a second decoding would turn into another
    /// character.
    #[error("the path is encoded twice (%25 followed by hex digits)")]
    DoubleEncoding,
    /// Escapes that do not decode to UTF-8 (including overlong forms such as `%C0%AE`).
    #[error("the path's escapes do not decode to valid UTF-8")]
    InvalidUtf8,
}

impl PathRefusal {
    /// Short machine code, logged with every refusal.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAbsolute => "not-absolute",
            Self::EncodedSeparator => "encoded-separator",
            Self::Backslash => "backslash",
            Self::Nul => "nul",
            Self::Control => "control-character",
            Self::Parameter => "path-parameter",
            Self::BadEscape => "bad-escape",
            Self::DoubleEncoding => "double-encoding",
            Self::InvalidUtf8 => "invalid-utf8",
        }
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters kept as they are when sent raw (besides unreserved and `/`): sub-delims
/// without `;`, `:` and `@`. Sent encoded, they stay encoded (RFC 3986 §2.2: encoding a
/// reserved character may change its meaning).
fn kept_raw(b: u8) -> bool {
    matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte a `%XX` escape at `at` stands for.
fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    Some(hex(*bytes.get(at + 1)?)? << 4 | hex(*bytes.get(at + 2)?)?)
}

/// Refuses what no decoding step may produce or pass, whether sent raw or encoded.
fn refuse_byte(b: u8) -> Result<(), PathRefusal> {
    match b {
        0 => Err(PathRefusal::Nul),
        b';' => Err(PathRefusal::Parameter),
        b if b < 0x20 || b == 0x7f => Err(PathRefusal::Control),
        _ => Ok(()),
    }
}

/// The canonical form of a request path (without the query), or why there is none.
pub fn canonicalize(raw: &str) -> Result<CanonicalPath, PathRefusal> {
    if !raw.starts_with('/') {
        return Err(PathRefusal::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    // `text`: the path with unreserved escapes decoded and everything else escaped;
    // a `/` in it is always a real separator. `decoded`: fully decoded, for the UTF-8 check.
    let mut text = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let v = escape_at(bytes, i).ok_or(PathRefusal::BadEscape)?;
            if v == b'%' && escape_at(bytes, i + 2).is_some() {
                return Err(PathRefusal::DoubleEncoding);
            }
            if matches!(v, b'/' | b'\\') {
                return Err(PathRefusal::EncodedSeparator);
            }
            refuse_byte(v)?;
            if unreserved(v) {
                text.push(v as char);
            } else {
                text.push_str(&format!("%{v:02X}"));
            }
            decoded.push(v);
            i += 3;
            continue;
        }
        if b == b'\\' {
            return Err(PathRefusal::Backslash);
        }
        refuse_byte(b)?;
        if unreserved(b) || b == b'/' || kept_raw(b) {
            text.push(b as char);
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
        decoded.push(b);
        i += 1;
    }
    if std::str::from_utf8(&decoded).is_err() {
        return Err(PathRefusal::InvalidUtf8);
    }
    Ok(CanonicalPath(remove_dot_segments(&text)))
}

/// RFC 3986 §5.2.4 on an absolute path, with empty segments merged: `.` goes, `..` removes
/// the segment before it (never above the root); a path ending in `/`, `/.` or `/..` keeps a
/// trailing slash.
fn remove_dot_segments(path: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in path.split('/').skip(1) {
        trailing = matches!(seg, "" | "." | "..");
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || stack.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        canonicalize(raw).unwrap_or_else(|e| panic!("{raw}: {e}")).0
    }

    fn refused(raw: &str) -> PathRefusal {
        canonicalize(raw).map(|c| c.0).expect_err(raw)
    }

    #[test]
    fn canonical_paths_stay_as_they_are() {
        for p in ["/", "/records", "/records/", "/records/secret.txt", "/a/b.c/~d_e-f", "/x:y@z!$&'()*+,=", "/%3F%23"] {
            assert_eq!(ok(p), p);
        }
    }

    #[test]
    fn the_bypass_spellings_become_the_protected_path() {
        for p in [
            "//records/x",
            "/%72ecords/x",
            "/%72%65%63%6F%72%64%73/x",
            "/%72%65%63%6f%72%64%73/%78",
            "/x/../records/x",
            "/./records/x",
            "/records/./x",
            "/records//x",
            "///records///x",
            "/a/b/../../records/x",
            "/../records/x",
            "/%2e/records/x",
            "/x/%2E%2e/records/x",
            "/x/.%2e/records/x",
        ] {
            assert_eq!(ok(p), "/records/x", "{p}");
        }
        // Case is not folded here; routes decide (see `case_insensitive`).
        assert_eq!(ok("/Records"), "/Records");
        assert_eq!(ok("/RECORDS/1"), "/RECORDS/1");
    }

    #[test]
    fn dot_segments_follow_rfc_3986() {
        assert_eq!(ok("/a/b/c/./../../g"), "/a/g");
        assert_eq!(ok("/mid/content=5/../6"), "/mid/6");
        assert_eq!(ok("/records/."), "/records/");
        assert_eq!(ok("/records/.."), "/");
        assert_eq!(ok("/.."), "/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("/..."), "/...");
        assert_eq!(ok("/.signet/link"), "/.signet/link");
        assert_eq!(ok("/a./b"), "/a./b");
    }

    #[test]
    fn escapes_are_normalized() {
        assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(ok("/café"), "/caf%C3%A9");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%3fb"), "/a%3Fb");
        assert_eq!(ok("/a%3Ab"), "/a%3Ab");
        assert_eq!(ok("/q\"{|}^"), "/q%22%7B%7C%7D%5E");
        assert_eq!(ok("/%7e%41"), "/~A");
        assert_eq!(ok("/100%25"), "/100%25");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(refused("/records%2fsecret.txt"), PathRefusal::EncodedSeparator);
        assert_eq!(refused("/records%2Fx"), PathRefusal::EncodedSeparator);
        assert_eq!(refused("/records%5cx"), PathRefusal::EncodedSeparator);
        assert_eq!(refused("/records\\x"), PathRefusal::Backslash);
        assert_eq!(refused("/records%00"), PathRefusal::Nul);
        assert_eq!(refused("/records\0"), PathRefusal::Nul);
        assert_eq!(refused("/records%0a"), PathRefusal::Control);
        assert_eq!(refused("/records%7F"), PathRefusal::Control);
        assert_eq!(refused("/records\t"), PathRefusal::Control);
        assert_eq!(refused("/records;x"), PathRefusal::Parameter);
        assert_eq!(refused("/records;jsessionid=1/x"), PathRefusal::Parameter);
        assert_eq!(refused("/records%3bx"), PathRefusal::Parameter);
        assert_eq!(refused("/records%"), PathRefusal::BadEscape);
        assert_eq!(refused("/records%4"), PathRefusal::BadEscape);
        assert_eq!(refused("/records%zz"), PathRefusal::BadEscape);
        assert_eq!(refused("/%2572ecords"), PathRefusal::DoubleEncoding);
        assert_eq!(refused("/%252e%252e/records"), PathRefusal::DoubleEncoding);
        assert_eq!(refused("/%c0%ae%c0%ae/records"), PathRefusal::InvalidUtf8);
        assert_eq!(refused("/%ff"), PathRefusal::InvalidUtf8);
        assert_eq!(refused("/caf%c3"), PathRefusal::InvalidUtf8);
        assert_eq!(refused("*"), PathRefusal::NotAbsolute);
        assert_eq!(refused(""), PathRefusal::NotAbsolute);
    }

    #[test]
    fn canonicalizing_twice_changes_nothing() {
        for p in ["//a/./b/../c%2e%7e/", "/%c3%a9/x y", "/a/%41/..", "/x/%3A/"] {
            let once = ok(p);
            assert_eq!(ok(&once), once, "{p}");
        }
    }

    #[test]
    fn generated_spellings_canonicalize_to_the_one_path_or_are_refused() {
        // xorshift64*, fixed seed: failures reproduce.
        let mut state = 0x0123_4567_89AB_CDEFu64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % 100
        };
        let inserts = ["/", "./", "%2e/", "%2E/", "x/../", "x/%2e%2e/", "a/b/../../", "y/.%2e/", "%2F", ";p/", "%00/"];
        let (mut same, mut refusals) = (0, 0);
        for _ in 0..5000 {
            let mut v = String::new();
            for c in "/records/secret.txt".chars() {
                if c == '/' {
                    v.push('/');
                    while next() < 20 {
                        v.push_str(inserts[next() as usize % inserts.len()]);
                    }
                } else if next() < 40 {
                    let hex = format!("%{:02X}", c as u32);
                    v.push_str(&if next() < 50 { hex.to_ascii_lowercase() } else { hex });
                } else {
                    v.push(c);
                }
            }
            match canonicalize(&v) {
                Ok(c) => {
                    assert_eq!(c.as_str(), "/records/secret.txt", "{v:?}");
                    assert_eq!(canonicalize(c.as_str()).as_ref(), Ok(&c));
                    same += 1;
                }
                Err(_) => refusals += 1,
            }
        }
        assert!(same > 1000 && refusals > 100, "{same} canonical, {refusals} refused");
    }
}
