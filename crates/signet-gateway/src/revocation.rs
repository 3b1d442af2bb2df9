//! Revocation checking for client certificates: OCSP first (RFC 6960, the responder in the
//! certificate's AIA), then the CRL from its distribution point (RFC 5280 §5). Answers are
//! signature-checked against the issuing CA (or an OCSP responder certificate it delegated
//! to, RFC 6960 §4.2.2.2) and their thisUpdate/nextUpdate against the injected clock.
//!
//! OCSP answers are cached per certificate until their nextUpdate or `cache_max`, whichever
//! comes first — keep `cache_max` short so a revocation is seen soon after it happens. CRLs
//! are cached until their nextUpdate and fetched again then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use const_oid::db::rfc6960;
use der::{Decode, Encode};
use signet_clock::Clock;
use signet_pki::Serial;
use signet_pki::ocsp::{self, CertId, CertIdHash};
use time::{Duration, OffsetDateTime};
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::chain::ValidatedPath;
use crate::config::RevocationSettings;
use crate::fetch::Fetcher;

/// Clock skew tolerated on thisUpdate.
const SKEW: Duration = Duration::minutes(5);
/// How long a CRL without nextUpdate is kept.
const CRL_DEFAULT_TTL: Duration = Duration::hours(1);

/// The outcome of a revocation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Not revoked, per the named source (`ocsp`, `ocsp-cache`, `crl`).
    Good(&'static str),
    /// Revoked; the text says when and why.
    Revoked(String),
    /// Neither OCSP nor the CRL gave a usable answer; the text says what went wrong.
    Unavailable(String),
}

/// One entry of a CRL: when the certificate was revoked and, if the CRL says, why (the RFC
/// 5280 CRLReason code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Revocation date.
    pub at: OffsetDateTime,
    /// CRLReason code, if given.
    pub reason: Option<u8>,
}

/// A CRL's revoked serials (leading zeros stripped).
pub type RevokedSerials = HashMap<Vec<u8>, RevokedEntry>;

#[derive(Debug, Clone)]
struct CachedCrl {
    revoked: Arc<RevokedSerials>,
    until: OffsetDateTime,
}

/// RFC 5280 §5.3.1 CRLReason codes in words.
pub fn reason_words(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "key compromise",
        2 => "CA compromise",
        3 => "affiliation changed",
        4 => "superseded",
        5 => "cessation of operation",
        6 => "certificate hold",
        8 => "removed from CRL",
        9 => "privilege withdrawn",
        10 => "AA compromise",
        _ => "unknown reason",
    }
}

/// How a denial says when and why: `revoked on 4 December 2026 at 15:36 UTC (reason: key
/// compromise)`.
pub fn revoked_text(at: OffsetDateTime, reason: Option<u8>) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let month = at.month();
    let reason = reason.map(|r| format!(" (reason: {})", reason_words(r))).unwrap_or_default();
    format!("revoked on {} {month} {} at {:02}:{:02} UTC{reason}", at.day(), at.year(), at.hour(), at.minute())
}

/// Checks revocation with caches shared by all connections.
pub struct RevocationChecker {
    settings: RevocationSettings,
    fetcher: Fetcher,
    clock: Arc<dyn Clock>,
    ocsp_cache: Mutex<HashMap<String, (RevocationStatus, OffsetDateTime)>>,
    crl_cache: tokio::sync::Mutex<HashMap<String, CachedCrl>>,
}

impl std::fmt::Debug for RevocationChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationChecker").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    // Not a security use: CertID hashes only name the issuer (RFC 6960 §4.1.1), and SHA-1
    // is what every responder understands.
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// Encodes an OCSPRequest for one certificate (RFC 6960 §4.1.1) with a SHA-1 CertID, what
/// every responder understands, and a nonce extension when given. Returns the request and the
/// nonce extnValue to look for in the answer; fails for a serial number that is not a positive
/// integer of at most 20 octets, which no conforming CA issues.
pub fn encode_request(
    issuer_subject_der: &[u8],
    issuer_public_key_bits: &[u8],
    serial_raw: &[u8],
    nonce: Option<&[u8]>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let serial = Serial::from_der_integer(serial_raw)
        .map_err(|e| format!("OCSP cannot ask about serial {}: {e}", hex::encode(serial_raw)))?;
    let id = CertId::new(CertIdHash::Sha1, issuer_subject_der, issuer_public_key_bits, serial);
    ocsp::encode_request(&id, nonce).map_err(|e| e.to_string())
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    &b[n.min(b.len().saturating_sub(1))..]
}

fn generalized(t: &x509_ocsp::OcspGeneralizedTime) -> OffsetDateTime {
    let secs = t.0.to_unix_duration().as_secs();
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Verifies `signature` over `message` with a certificate's public key, for the signature
/// algorithms CAs use: RSA PKCS#1 v1.5 with SHA-256/384/512 and ECDSA P-256/P-384.
pub fn verify_with(cert: &X509Certificate<'_>, alg_oid: &str, message: &[u8], signature: &[u8]) -> bool {
    use aws_lc_rs::signature as sig;
    let key = cert.public_key().subject_public_key.data.as_ref();
    let p384 = key.len() == 97;
    let alg: &'static dyn sig::VerificationAlgorithm = match (alg_oid, p384) {
        ("1.2.840.113549.1.1.11", _) => &sig::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &sig::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &sig::RSA_PKCS1_2048_8192_SHA512,
        ("1.2.840.10045.4.3.2", false) => &sig::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.2", true) => &sig::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", false) => &sig::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.3", true) => &sig::ECDSA_P384_SHA384_ASN1,
        _ => return false,
    };
    sig::UnparsedPublicKey::new(alg, key).verify(message, signature).is_ok()
}

/// Checks a DER OCSPResponse for `serial_raw` issued by `issuer`. `Ok(None)` means the
/// responder answered `unknown`. Returns the status and the answer's nextUpdate.
pub fn check_response(
    der: &[u8],
    issuer: &X509Certificate<'_>,
    serial_raw: &[u8],
    nonce_value: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<Option<(RevocationStatus, Option<OffsetDateTime>)>, String> {
    let resp = OcspResponse::from_der(der).map_err(|e| format!("OCSP response does not parse: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("OCSP responder answered {:?}", resp.response_status));
    }
    let bytes = resp.response_bytes.ok_or("OCSP response has no body")?;
    if bytes.response_type != rfc6960::ID_PKIX_OCSP_BASIC {
        return Err("OCSP response is not id-pkix-ocsp-basic".into());
    }
    let basic =
        BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| format!("BasicOCSPResponse: {e}"))?;
    let tbs = basic.tbs_response_data.to_der().map_err(|e| e.to_string())?;
    let alg = basic.signature_algorithm.oid.to_string();
    let signature = basic.signature.raw_bytes();
    if !verify_with(issuer, &alg, &tbs, signature) && !delegated_signature_ok(&basic, issuer, &alg, &tbs, now) {
        return Err("OCSP response signature does not verify against the issuing CA".into());
    }
    if let Some(want) = nonce_value {
        let echoed = basic
            .tbs_response_data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == rfc6960::ID_PKIX_OCSP_NONCE)
            .map(|e| e.extn_value.as_bytes());
        if echoed != Some(want) {
            return Err("OCSP response does not echo our nonce".into());
        }
    }
    let issuer_key_hash = sha1(issuer.public_key().subject_public_key.data.as_ref());
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|s| {
            strip_zeros(s.cert_id.serial_number.as_bytes()) == strip_zeros(serial_raw)
                && (s.cert_id.hash_algorithm.oid != const_oid::db::rfc5912::ID_SHA_1
                    || s.cert_id.issuer_key_hash.as_bytes() == issuer_key_hash.as_slice())
        })
        .ok_or("OCSP response does not answer for this certificate")?;
    let this_update = generalized(&single.this_update);
    if this_update > now + SKEW {
        return Err(format!("OCSP answer's thisUpdate {this_update} is in the future"));
    }
    let next_update = single.next_update.as_ref().map(generalized);
    if let Some(n) = next_update
        && n < now
    {
        return Err(format!("OCSP answer is stale (nextUpdate {n})"));
    }
    Ok(match &single.cert_status {
        CertStatus::Good(_) => Some((RevocationStatus::Good("ocsp"), next_update)),
        CertStatus::Revoked(info) => {
            let at = generalized(&info.revocation_time);
            let reason = info.revocation_reason.map(|r| r as u8);
            Some((RevocationStatus::Revoked(revoked_text(at, reason)), next_update))
        }
        CertStatus::Unknown(_) => None,
    })
}

/// RFC 6960 §4.2.2.2 case 3: a responder certificate issued by the CA with id-kp-OCSPSigning.
fn delegated_signature_ok(
    basic: &BasicOcspResponse,
    issuer: &X509Certificate<'_>,
    alg: &str,
    tbs: &[u8],
    now: OffsetDateTime,
) -> bool {
    basic.certs.iter().flatten().any(|c| {
        let Ok(der) = c.to_der() else { return false };
        let Ok((_, responder)) = X509Certificate::from_der(&der) else { return false };
        let ocsp_signing = responder.extended_key_usage().ok().flatten().is_some_and(|e| e.value.ocsp_signing);
        ocsp_signing
            && responder.issuer().as_raw() == issuer.subject().as_raw()
            && responder.verify_signature(Some(issuer.public_key())).is_ok()
            && responder.validity.is_valid_at(x509_parser::time::ASN1Time::new(now))
            && verify_with(&responder, alg, tbs, basic.signature.raw_bytes())
    })
}

/// Checks a DER CRL from `issuer` and returns its revoked serials (leading zeros stripped)
/// and how long it may be used.
pub fn check_crl(
    der: &[u8],
    issuer: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(RevokedSerials, OffsetDateTime), String> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| format!("CRL does not parse: {e}"))?;
    if crl.issuer().as_raw() != issuer.subject().as_raw() {
        return Err("CRL is from another issuer".into());
    }
    crl.verify_signature(issuer.public_key()).map_err(|_| "CRL signature does not verify against the issuing CA")?;
    let this_update = crl.last_update().to_datetime();
    if this_update > now + SKEW {
        return Err(format!("CRL thisUpdate {this_update} is in the future"));
    }
    let until = match crl.next_update() {
        Some(n) if n.to_datetime() < now => return Err(format!("CRL is stale (nextUpdate {})", n.to_datetime())),
        Some(n) => n.to_datetime(),
        None => now + CRL_DEFAULT_TTL,
    };
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| {
            let entry =
                RevokedEntry { at: r.revocation_date.to_datetime(), reason: r.reason_code().map(|(_, code)| code.0) };
            (strip_zeros(r.raw_serial()).to_vec(), entry)
        })
        .collect();
    Ok((revoked, until))
}

impl RevocationChecker {
    /// A checker with empty caches.
    pub fn new(settings: RevocationSettings, clock: Arc<dyn Clock>) -> Self {
        let fetcher = Fetcher::new(settings.timeout);
        Self {
            settings,
            fetcher,
            clock,
            ocsp_cache: Mutex::new(HashMap::new()),
            crl_cache: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Checks the leaf of a validated path.
    pub async fn check(&self, path: &ValidatedPath) -> RevocationStatus {
        let Ok((_, issuer)) = X509Certificate::from_der(&path.issuer_der) else {
            return RevocationStatus::Unavailable("issuer certificate does not parse".into());
        };
        let mut problems = Vec::new();
        if self.settings.ocsp {
            for url in &path.ocsp_urls {
                match self.ocsp(url, &issuer, path).await {
                    Ok(Some(status)) => return status,
                    Ok(None) => problems.push(format!("{url}: the responder does not know the certificate")),
                    Err(e) => problems.push(e),
                }
            }
        }
        if self.settings.crl {
            for url in &path.crl_urls {
                match self.crl(url, &issuer).await {
                    Ok(revoked) => {
                        return match revoked.get(strip_zeros(&path.serial_raw)) {
                            Some(e) => RevocationStatus::Revoked(revoked_text(e.at, e.reason)),
                            None => RevocationStatus::Good("crl"),
                        };
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        if problems.is_empty() {
            problems.push("the certificate names no OCSP responder or CRL that is enabled".into());
        }
        RevocationStatus::Unavailable(problems.join("; "))
    }

    async fn ocsp(
        &self,
        url: &str,
        issuer: &X509Certificate<'_>,
        path: &ValidatedPath,
    ) -> Result<Option<RevocationStatus>, String> {
        let now = self.clock.now();
        let key_bits = issuer.public_key().subject_public_key.data.as_ref();
        let cache_key = format!("{}:{}", hex::encode(sha1(key_bits)), path.serial_hex);
        if let Some((status, until)) = self.ocsp_cache.lock().expect("cache lock").get(&cache_key)
            && *until > now
        {
            return Ok(Some(match status {
                RevocationStatus::Good(_) => RevocationStatus::Good("ocsp-cache"),
                other => other.clone(),
            }));
        }
        let nonce = if self.settings.ocsp_nonce {
            let mut n = [0u8; 16];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut n)
                .map_err(|_| "random generator failed")?;
            Some(n)
        } else {
            None
        };
        let (request, nonce_value) =
            encode_request(issuer.subject().as_raw(), key_bits, &path.serial_raw, nonce.as_ref().map(|n| &n[..]))
                .map_err(|e| format!("{url}: {e}"))?;
        let body =
            self.fetcher.post(url, "application/ocsp-request", request).await.map_err(|e| format!("OCSP: {e}"))?;
        let answer = check_response(&body, issuer, &path.serial_raw, nonce_value.as_deref(), now)
            .map_err(|e| format!("{url}: {e}"))?;
        let Some((status, next_update)) = answer else { return Ok(None) };
        let max = now + Duration::try_from(self.settings.cache_max).unwrap_or(Duration::ZERO);
        let until = next_update.map_or(max, |n| n.min(max));
        if until > now {
            let mut cache = self.ocsp_cache.lock().expect("cache lock");
            if cache.len() > 100_000 {
                cache.retain(|_, (_, u)| *u > now);
            }
            cache.insert(cache_key, (status.clone(), until));
        }
        Ok(Some(status))
    }

    async fn crl(&self, url: &str, issuer: &X509Certificate<'_>) -> Result<Arc<RevokedSerials>, String> {
        let now = self.clock.now();
        // Holding the lock across the fetch makes concurrent clients wait for one download
        // instead of each starting their own.
        let mut cache = self.crl_cache.lock().await;
        if let Some(c) = cache.get(url)
            && c.until > now
        {
            return Ok(c.revoked.clone());
        }
        let der = self.fetcher.get(url).await.map_err(|e| format!("CRL: {e}"))?;
        let (revoked, until) = check_crl(&der, issuer, now).map_err(|e| format!("{url}: {e}"))?;
        let revoked = Arc::new(revoked);
        cache.insert(url.to_owned(), CachedCrl { revoked: revoked.clone(), until });
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encodes_as_rfc6960_and_parses() {
        let (der, nonce) = encode_request(b"\x30\x00", b"key", &[0x00, 0x9f, 0x01], Some(&[7u8; 16])).unwrap();
        let parsed = x509_ocsp::OcspRequest::from_der(&der).expect("our request parses");
        let id = &parsed.tbs_request.request_list[0].req_cert;
        assert_eq!(id.hash_algorithm.oid, const_oid::db::rfc5912::ID_SHA_1);
        assert_eq!(id.issuer_key_hash.as_bytes(), sha1(b"key").as_slice());
        let ext = &parsed.tbs_request.request_extensions.as_ref().unwrap()[0];
        assert_eq!(ext.extn_id, rfc6960::ID_PKIX_OCSP_NONCE);
        assert_eq!(Some(ext.extn_value.as_bytes()), nonce.as_deref());
        // And Signet's own responder accepts it.
        let req = signet_pki::ocsp::parse_request(&der).expect("signet parses it");
        assert_eq!(req.nonce.as_deref(), nonce.as_deref());
        let (plain, none) = encode_request(b"\x30\x00", b"key", &[0x01], None).unwrap();
        assert!(none.is_none());
        assert!(signet_pki::ocsp::parse_request(&plain).unwrap().nonce.is_none());
    }

    #[test]
    fn serials_compare_without_leading_zeros() {
        assert_eq!(strip_zeros(&[0, 0, 5]), &[5]);
        assert_eq!(strip_zeros(&[0]), &[0]);
    }

    #[test]
    fn revocations_read_as_sentences() {
        let at = time::macros::datetime!(2026-12-04 15:36:08.0 UTC);
        assert_eq!(revoked_text(at, Some(1)), "revoked on 4 December 2026 at 15:36 UTC (reason: key compromise)");
        let east = time::macros::datetime!(2026-12-05 01:06 +09:30);
        assert_eq!(revoked_text(east, Some(4)), "revoked on 4 December 2026 at 15:36 UTC (reason: superseded)");
        assert_eq!(revoked_text(at, None), "revoked on 4 December 2026 at 15:36 UTC");
        assert_eq!(reason_words(2), "CA compromise");
        assert_eq!(reason_words(5), "cessation of operation");
        assert_eq!(reason_words(7), "unknown reason");
    }
}
