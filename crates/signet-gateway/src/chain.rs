//! Certification path validation (RFC 5280 §6, the parts an ECA relying party needs):
//! build a path from the client's certificate through the intermediates it sent (or that
//! were fetched by AIA) to one of the configured trust anchors, checking signatures, name
//! chaining, AKI/SKI, basicConstraints, keyUsage, path length and validity at the injected
//! time; then run simplified policy processing (the leaf's policies, narrowed by every
//! intermediate unless it asserts anyPolicy; no policy mapping, since ECA does not use it).
//!
//! Pure and synchronous: fetching missing intermediates is the caller's job, guided by
//! [`PathError::MissingIssuer`].

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// anyPolicy (RFC 5280 §4.2.1.4).
pub const ANY_POLICY: &str = "2.5.29.32.0";
/// id-kp-clientAuth.
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// anyExtendedKeyUsage.
const ANY_EKU: &str = "2.5.29.37.0";
/// Longest path tried (leaf + intermediates), so a hostile pool cannot make us loop.
const MAX_DEPTH: usize = 6;

/// Extensions this validator understands; any other critical extension fails the path
/// (RFC 5280 §4.2).
const UNDERSTOOD: [&str; 10] = [
    "2.5.29.19",         // basicConstraints
    "2.5.29.15",         // keyUsage
    "2.5.29.37",         // extKeyUsage
    "2.5.29.32",         // certificatePolicies
    "2.5.29.17",         // subjectAltName
    "2.5.29.14",         // subjectKeyIdentifier
    "2.5.29.35",         // authorityKeyIdentifier
    "2.5.29.31",         // cRLDistributionPoints
    "1.3.6.1.5.5.7.1.1", // authorityInfoAccess
    "2.5.29.36",         // policyConstraints: ECA paths assert explicit policies anyway
];

/// Why a path could not be built or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A certificate is not parseable DER.
    #[error("certificate {0} cannot be parsed")]
    Malformed(usize),
    /// A certificate in the path is past its notAfter.
    #[error("certificate {subject} expired at {not_after}")]
    Expired {
        /// Its subject.
        subject: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// A certificate in the path is before its notBefore.
    #[error("certificate {subject} is not valid before {not_before}")]
    NotYetValid {
        /// Its subject.
        subject: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
    },
    /// No trust anchor or intermediate issued this certificate.
    #[error("no trusted issuer found for {issuer}")]
    MissingIssuer {
        /// The issuer name that was looked for.
        issuer: String,
        /// The certificate's AIA caIssuers URL (http), where the issuer may be fetched.
        ca_issuers: Option<String>,
    },
    /// A would-be issuer is not a CA, may not sign certificates, or its path length is
    /// exceeded.
    #[error("{0} may not issue certificates")]
    NotCa(String),
    /// The client certificate may not be used for TLS client authentication.
    #[error("the certificate's key usage does not allow TLS client authentication")]
    WrongUsage,
    /// A certificate in the path has a critical extension this validator does not process.
    #[error("unsupported critical extension {0}")]
    UnsupportedCritical(String),
}

/// A trust anchor: a root certificate, used for its name and key.
#[derive(Debug, Clone)]
struct Anchor {
    der: Vec<u8>,
}

/// The configured roots. Several may be configured at once (a root rollover).
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    anchors: Vec<Anchor>,
    subjects: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Parses each root; fails on the first that is not a certificate.
    pub fn new(ders: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, PathError> {
        let mut anchors = Vec::new();
        let mut subjects = Vec::new();
        for (i, der) in ders.into_iter().enumerate() {
            let (_, cert) = X509Certificate::from_der(&der).map_err(|_| PathError::Malformed(i))?;
            subjects.push(cert.subject().as_raw().to_vec());
            anchors.push(Anchor { der });
        }
        Ok(Self { anchors, subjects })
    }

    /// The anchors' subject names (DER), sent as certificate_authorities hints in TLS.
    pub fn subjects(&self) -> &[Vec<u8>] {
        &self.subjects
    }

    /// How many anchors there are.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A validated path and what a relying party needs from it.
#[derive(Debug, Clone)]
pub struct ValidatedPath {
    /// The client certificate (DER).
    pub leaf_der: Vec<u8>,
    /// The certificate that issued it (an intermediate, or the anchor itself).
    pub issuer_der: Vec<u8>,
    /// Subject DN as text (`C=US, O=U.S. Government, …, CN=…`).
    pub subject: String,
    /// Issuer DN as text.
    pub issuer: String,
    /// Serial number, lower-case hex, no leading zero octet.
    pub serial_hex: String,
    /// Serial number octets as encoded (for CRL lookups).
    pub serial_raw: Vec<u8>,
    /// rfc822Name entries of the subjectAltName.
    pub emails: Vec<String>,
    /// Policies valid for the whole path (dotted OIDs).
    pub policies: Vec<String>,
    /// The leaf's OCSP responder URLs (http).
    pub ocsp_urls: Vec<String>,
    /// The leaf's CRL distribution points (http).
    pub crl_urls: Vec<String>,
    /// Leaf notAfter.
    pub not_after: OffsetDateTime,
}

/// Text of a name, RFC 4514-ish in certificate order, as x509-parser prints it.
pub fn name_text(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.to_string()
}

fn check_time(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Result<(), PathError> {
    let v = &cert.validity;
    if now < v.not_before.to_datetime() {
        return Err(PathError::NotYetValid {
            subject: name_text(cert.subject()),
            not_before: v.not_before.to_datetime(),
        });
    }
    if now > v.not_after.to_datetime() {
        return Err(PathError::Expired { subject: name_text(cert.subject()), not_after: v.not_after.to_datetime() });
    }
    Ok(())
}

fn check_critical(cert: &X509Certificate<'_>) -> Result<(), PathError> {
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if ext.critical && !UNDERSTOOD.contains(&oid.as_str()) {
            return Err(PathError::UnsupportedCritical(oid));
        }
    }
    Ok(())
}

fn http_uris<'a>(names: impl Iterator<Item = &'a GeneralName<'a>>) -> Vec<String> {
    names
        .filter_map(|g| match g {
            GeneralName::URI(u) if u.starts_with("http://") => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// AIA URLs: (OCSP, caIssuers).
fn aia(cert: &X509Certificate<'_>) -> (Vec<String>, Vec<String>) {
    let mut ocsp = Vec::new();
    let mut issuers = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::AuthorityInfoAccess(a) = ext.parsed_extension() {
            for d in &a.accessdescs {
                let list = match d.access_method.to_id_string().as_str() {
                    "1.3.6.1.5.5.7.48.1" => &mut ocsp,
                    "1.3.6.1.5.5.7.48.2" => &mut issuers,
                    _ => continue,
                };
                list.extend(http_uris(std::iter::once(&d.access_location)));
            }
        }
    }
    (ocsp, issuers)
}

fn crl_urls(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) = &p.distribution_point {
                    out.extend(http_uris(names.iter()));
                }
            }
        }
    }
    out
}

fn policies(cert: &X509Certificate<'_>) -> Option<Vec<String>> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::CertificatePolicies(p) => Some(p.iter().map(|i| i.policy_id.to_id_string()).collect()),
        _ => None,
    })
}

fn ski<'a>(cert: &'a X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
        _ => None,
    })
}

fn aki<'a>(cert: &'a X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
        _ => None,
    })
}

/// Whether `issuer` names, identifies and signed `child`.
fn issued(issuer: &X509Certificate<'_>, child: &X509Certificate<'_>) -> bool {
    if issuer.subject().as_raw() != child.issuer().as_raw() {
        return false;
    }
    if let (Some(a), Some(s)) = (aki(child), ski(issuer))
        && a != s
    {
        return false;
    }
    child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// CA checks for an intermediate that has `below` intermediates under it in the path.
fn check_ca(cert: &X509Certificate<'_>, below: usize) -> Result<(), PathError> {
    let not_ca = || PathError::NotCa(name_text(cert.subject()));
    let bc = cert.basic_constraints().map_err(|_| not_ca())?.ok_or_else(not_ca)?;
    if !bc.value.ca {
        return Err(not_ca());
    }
    if let Some(max) = bc.value.path_len_constraint
        && below > max as usize
    {
        return Err(not_ca());
    }
    if let Ok(Some(ku)) = cert.key_usage()
        && !ku.value.key_cert_sign()
    {
        return Err(not_ca());
    }
    check_critical(cert)
}

fn check_leaf_usage(cert: &X509Certificate<'_>) -> Result<(), PathError> {
    if let Ok(Some(ku)) = cert.key_usage()
        && !ku.value.digital_signature()
    {
        return Err(PathError::WrongUsage);
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let e = &eku.value;
        let others: Vec<String> = e.other.iter().map(|o| o.to_id_string()).collect();
        if !(e.client_auth || e.any || others.iter().any(|o| o == CLIENT_AUTH || o == ANY_EKU)) {
            return Err(PathError::WrongUsage);
        }
    }
    check_critical(cert)
}

/// Validates `leaf` at `now` against `anchors`, using any of `pool` as intermediates.
///
/// Tries every candidate issuer (there may be several across a rollover) and reports the
/// most informative failure: an expiry over a missing issuer.
pub fn validate(
    leaf_der: &[u8],
    pool: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: OffsetDateTime,
) -> Result<ValidatedPath, PathError> {
    let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|_| PathError::Malformed(0))?;
    let parsed_pool: Vec<X509Certificate<'_>> =
        pool.iter().filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c)).collect();
    let parsed_anchors: Vec<X509Certificate<'_>> =
        anchors.anchors.iter().filter_map(|a| X509Certificate::from_der(&a.der).ok().map(|(_, c)| c)).collect();
    check_leaf_usage(&leaf)?;
    // Depth-first over candidate issuers; `path` holds indices into parsed_pool.
    let mut path: Vec<usize> = Vec::new();
    let found = search(&leaf, &parsed_pool, &parsed_anchors, &mut path, now)?;
    let anchor = &parsed_anchors[found];

    // Validity of every certificate in the path (the anchor is trusted as configured).
    check_time(&leaf, now)?;
    for &i in &path {
        check_time(&parsed_pool[i], now)?;
    }

    // Policy processing: start from the leaf's policies and narrow through the
    // intermediates, top-down; anyPolicy in a CA passes everything through. The leaf's
    // own anyPolicy satisfies no specific requirement.
    let mut valid: Vec<String> = policies(&leaf).unwrap_or_default();
    valid.retain(|p| p != ANY_POLICY);
    for &i in &path {
        let ca = policies(&parsed_pool[i]).unwrap_or_default();
        if !ca.iter().any(|p| p == ANY_POLICY) {
            valid.retain(|p| ca.contains(p));
        }
    }

    let issuer_der = match path.first() {
        Some(&i) => pool_der(pool, &parsed_pool[i]),
        None => anchor.as_ref().to_vec(),
    };
    let (ocsp_urls, _) = aia(&leaf);
    let emails = san_emails(&leaf);
    Ok(ValidatedPath {
        leaf_der: leaf_der.to_vec(),
        issuer_der,
        subject: name_text(leaf.subject()),
        issuer: name_text(leaf.issuer()),
        serial_hex: hex::encode(leaf.serial.to_bytes_be()),
        serial_raw: leaf.raw_serial().to_vec(),
        emails,
        policies: valid,
        ocsp_urls,
        crl_urls: crl_urls(&leaf),
        not_after: leaf.validity.not_after.to_datetime(),
    })
}

fn pool_der(pool: &[Vec<u8>], cert: &X509Certificate<'_>) -> Vec<u8> {
    let raw = cert.as_ref();
    pool.iter().find(|d| d.as_slice() == raw).cloned().unwrap_or_else(|| raw.to_vec())
}

/// Finds an anchor for `current`, directly or through pool certificates not yet in `path`.
/// Returns the anchor index; `path` then lists the intermediates leaf-side first.
fn search(
    current: &X509Certificate<'_>,
    pool: &[X509Certificate<'_>],
    anchors: &[X509Certificate<'_>],
    path: &mut Vec<usize>,
    now: OffsetDateTime,
) -> Result<usize, PathError> {
    if let Some(i) = anchors.iter().position(|a| issued(a, current)) {
        return Ok(i);
    }
    let mut best =
        PathError::MissingIssuer { issuer: name_text(current.issuer()), ca_issuers: aia(current).1.into_iter().next() };
    if path.len() + 1 >= MAX_DEPTH {
        return Err(best);
    }
    for (i, candidate) in pool.iter().enumerate() {
        if path.contains(&i) || !issued(candidate, current) {
            continue;
        }
        // The candidate will have path.len() intermediates below it.
        if let Err(e) = check_ca(candidate, path.len()) {
            best = e;
            continue;
        }
        // Prefer a candidate that is valid now (rollover: an expired and a fresh
        // intermediate with the same name and key).
        if let Err(e) = check_time(candidate, now) {
            best = e;
            continue;
        }
        path.push(i);
        match search(candidate, pool, anchors, path, now) {
            Ok(a) => return Ok(a),
            Err(e) => {
                path.pop();
                if !matches!(e, PathError::MissingIssuer { .. }) || matches!(best, PathError::MissingIssuer { .. }) {
                    best = e;
                }
            }
        }
    }
    Err(best)
}

/// The rfc822Name entries of a certificate's subjectAltName (DESIGN §2: a subscriber's email).
pub(crate) fn san_emails(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::RFC822Name(e) => Some((*e).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    // Path validation is exercised against real Signet CAs in tests/it/main.rs; here only
    // the pure helpers.
    use super::*;

    #[test]
    fn garbage_is_malformed() {
        let anchors = TrustAnchors::new(Vec::new()).unwrap();
        assert!(anchors.is_empty());
        let err = validate(b"\x30\x03\x02\x01\x01", &[], &anchors, OffsetDateTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(err, PathError::Malformed(0));
        assert!(TrustAnchors::new([vec![1, 2, 3]]).is_err());
    }
}
