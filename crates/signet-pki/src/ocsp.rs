//! OCSP (RFC 6960): parse requests, and answer them with responses signed by the CA key.
//!
//! The CA answers for its own certificates and signs with its own key (RFC 6960 §4.2.2.2,
//! first case), so responses name the responder by key hash and carry no `certs`. Which
//! status each certificate has is the caller's business; this module only knows the wire
//! format and refuses to sign answers that could not be true (a `good` for another CA's
//! certificate, a key that is not the issuer's).

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5912, rfc6960};
use der::asn1::{Any, BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp as wire;

use crate::reason::RevocationReason;
use crate::serial::Serial;
use crate::signer::{SignError, Signer};

/// The most CertIDs one request may ask about. RFC 6960 sets no limit; one bounds the work
/// (and the signed bytes) an unauthenticated client can ask for, and real clients ask for one.
pub const MAX_REQUEST_CERTS: usize = 32;

/// The longest nonce accepted, in octets. RFC 9654 §2.1 (which obsoletes RFC 8954's limit of
/// 32) allows 1 to 128 octets and requires malformedRequest outside that range.
pub const MAX_NONCE_LEN: usize = 128;

/// Hash algorithms accepted in a CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    /// SHA-1: what OpenSSL and most other clients send by default.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl CertIdHash {
    /// Every accepted algorithm.
    pub const ALL: [CertIdHash; 4] = [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512];

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => rfc5912::ID_SHA_1,
            Self::Sha256 => rfc5912::ID_SHA_256,
            Self::Sha384 => rfc5912::ID_SHA_384,
            Self::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.oid() == *oid)
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            // Not a security use: CertID hashes only name the issuer (RFC 6960 §4.1.1).
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// One CertID (RFC 6960 §4.1.1): which issuer, by hashes of its name and key, and which
/// serial number. Two CertIDs are equal when they would be encoded alike, so a response
/// signed for one can answer the other (the responder's cache key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertId {
    /// The hash algorithm the client used; the answer uses the same one.
    pub hash: CertIdHash,
    /// Hash of the DER of the issuer's subject name.
    pub issuer_name_hash: Vec<u8>,
    /// Hash of the issuer's subjectPublicKey BIT STRING contents.
    pub issuer_key_hash: Vec<u8>,
    /// The certificate's serial number.
    pub serial: Serial,
    // Whether hashAlgorithm carried an explicit NULL parameter. Both forms are legal
    // (RFC 5754 §2); the answer repeats the client's so clients that compare CertIDs
    // byte for byte find theirs.
    hash_params_null: bool,
}

impl CertId {
    /// The CertID naming certificate `serial` of the issuer with this subject (its DER, as in
    /// the issuer's certificate) and subjectPublicKey contents. The hash algorithm identifier
    /// carries NULL parameters, as OpenSSL writes it.
    pub fn new(hash: CertIdHash, issuer_subject_der: &[u8], issuer_public_key: &[u8], serial: Serial) -> Self {
        CertId {
            hash,
            issuer_name_hash: hash.digest(issuer_subject_der),
            issuer_key_hash: hash.digest(issuer_public_key),
            serial,
            hash_params_null: true,
        }
    }
}

/// A parsed OCSP request: the certificates asked about and the nonce, if any.
#[derive(Debug, Clone)]
pub struct OcspRequest {
    /// The CertIDs, in request order; never empty, at most [`MAX_REQUEST_CERTS`].
    pub cert_ids: Vec<CertId>,
    /// The nonce extension's extnValue contents exactly as received, to be echoed unchanged
    /// (clients such as OpenSSL compare the whole extnValue). Normally the DER of an OCTET
    /// STRING holding 1 to [`MAX_NONCE_LEN`] octets (RFC 9654 §2.1).
    pub nonce: Option<Vec<u8>>,
}

/// Why a request could not be parsed or a response could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// The request is not a DER OCSPRequest, or breaks one of its rules (a repeated
    /// nonce, hash algorithm parameters other than NULL).
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// The request asks about no certificate at all.
    #[error("the OCSP request lists no certificates")]
    EmptyRequest,
    /// The request asks about more than [`MAX_REQUEST_CERTS`] certificates.
    #[error("the OCSP request lists {0} certificates; at most {MAX_REQUEST_CERTS} are answered")]
    TooManyCerts(usize),
    /// A CertID uses a hash algorithm other than SHA-1 or SHA-2.
    #[error("unsupported CertID hash algorithm {0}")]
    UnsupportedHash(String),
    /// A CertID's serial number is zero, negative or longer than 20 octets, so this CA
    /// cannot have issued it.
    #[error("CertID serial number is not a positive integer of at most 20 octets")]
    BadSerial,
    /// The nonce is empty or longer than [`MAX_NONCE_LEN`] octets (RFC 9654 §2.1).
    #[error("OCSP nonce of {0} octets; 1 to {MAX_NONCE_LEN} are allowed")]
    BadNonce(usize),
    /// The request has a critical extension this responder does not understand.
    #[error("unsupported critical extension {0} in the OCSP request")]
    UnsupportedCriticalExtension(String),
    /// The CA certificate given to [`OcspIssuer::new`] could not be parsed.
    #[error("the CA certificate is malformed: {0}")]
    BadIssuerCert(String),
    /// The signer's key is not the key in the CA certificate.
    #[error("the signing key is not the CA certificate's key")]
    SignerMismatch,
    /// A `good` or `revoked` status was given for a CertID naming another issuer.
    #[error("refusing to vouch for serial {0}: its CertID names another issuer")]
    ForeignCertId(Serial),
    /// The reason cannot appear in an OCSP answer (removeFromCRL exists only in delta CRLs,
    /// RFC 5280 §5.3.1).
    #[error("revocation reason {0} cannot be used in an OCSP response")]
    UnusableReason(RevocationReason),
    /// A response must answer at least one CertID.
    #[error("no statuses to sign")]
    NoStatuses,
    /// The times are inconsistent (thisUpdate after producedAt, or nextUpdate not after
    /// thisUpdate).
    #[error("inconsistent OCSP response times: {0}")]
    BadTimes(&'static str),
    /// A time cannot be written as a GeneralizedTime (before 1970 or after 9999).
    #[error("time {0} is outside the range OCSP can encode")]
    TimeOutOfRange(OffsetDateTime),
    /// Signing the response failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The response could not be DER-encoded.
    #[error("encoding the OCSP response failed: {0}")]
    Encode(String),
}

impl OcspError {
    /// The unsigned error status to send for this error: malformedRequest for faults in
    /// the request, internalError for faults on our side.
    pub fn error_status(&self) -> ErrorStatus {
        match self {
            Self::Malformed(_)
            | Self::EmptyRequest
            | Self::TooManyCerts(_)
            | Self::UnsupportedHash(_)
            | Self::BadSerial
            | Self::BadNonce(_)
            | Self::UnsupportedCriticalExtension(_) => ErrorStatus::MalformedRequest,
            _ => ErrorStatus::InternalError,
        }
    }
}

/// Parses a DER OCSPRequest (RFC 6960 §4.1.1).
///
/// A signed request is accepted but its signature is not checked: this responder answers
/// anyone, so the requestor's identity changes nothing. Non-critical extensions other than
/// the nonce are ignored (RFC 6960 §4.4); critical ones other than the nonce and
/// acceptable-responses are refused.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, OcspError> {
    let request = wire::OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(OcspError::EmptyRequest);
    }
    if tbs.request_list.len() > MAX_REQUEST_CERTS {
        return Err(OcspError::TooManyCerts(tbs.request_list.len()));
    }

    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        if ext.extn_id == rfc6960::ID_PKIX_OCSP_NONCE {
            if nonce.is_some() {
                return Err(OcspError::Malformed("two nonce extensions".into()));
            }
            let value = ext.extn_value.as_bytes();
            check_nonce(value)?;
            nonce = Some(value.to_vec());
        } else if ext.extn_id == rfc6960::ID_PKIX_OCSP_RESPONSE {
            // We only ever send id-pkix-ocsp-basic, which every client must accept
            // (RFC 6960 §4.2.1), so the list needs no reading.
        } else if ext.critical {
            return Err(OcspError::UnsupportedCriticalExtension(ext.extn_id.to_string()));
        }
    }

    let cert_ids = tbs
        .request_list
        .iter()
        .map(|r| {
            if let Some(ext) = r.single_request_extensions.iter().flatten().find(|e| e.critical) {
                return Err(OcspError::UnsupportedCriticalExtension(ext.extn_id.to_string()));
            }
            cert_id_from_wire(&r.req_cert)
        })
        .collect::<Result<_, _>>()?;
    Ok(OcspRequest { cert_ids, nonce })
}

/// RFC 9654 §2.1: the extnValue holds the DER of `Nonce ::= OCTET STRING (SIZE(1..128))`.
/// Some old clients put the raw nonce in extnValue instead; those are measured raw and still
/// echoed, since echoing exactly is all a client checks.
fn check_nonce(ext_value: &[u8]) -> Result<(), OcspError> {
    let len = match OctetString::from_der(ext_value) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => ext_value.len(),
    };
    if (1..=MAX_NONCE_LEN).contains(&len) { Ok(()) } else { Err(OcspError::BadNonce(len)) }
}

/// Encodes an unsigned OCSPRequest for one certificate (RFC 6960 §4.1.1), with a nonce
/// extension when `nonce` is given (RFC 9654 §2.1: its extnValue is the DER of an OCTET STRING
/// holding the nonce). Returns the request and that extnValue, which a responder echoes.
/// Signet's one OCSP client encoding: the gateway, `signet token status` and `signet bench`.
pub fn encode_request(id: &CertId, nonce: Option<&[u8]>) -> Result<(Vec<u8>, Option<Vec<u8>>), OcspError> {
    let nonce_value = nonce.map(|n| OctetString::new(n).and_then(|n| n.to_der())).transpose().map_err(encode_err)?;
    let request_extensions = match &nonce_value {
        Some(value) => {
            Some(vec![Extension { extn_id: rfc6960::ID_PKIX_OCSP_NONCE, critical: false, extn_value: octets(value)? }])
        }
        None => None,
    };
    let request = wire::OcspRequest {
        tbs_request: wire::TbsRequest {
            request_list: vec![wire::Request { req_cert: cert_id_to_wire(id)?, single_request_extensions: None }],
            request_extensions,
            ..Default::default()
        },
        optional_signature: None,
    };
    Ok((request.to_der().map_err(encode_err)?, nonce_value))
}

fn cert_id_from_wire(id: &wire::CertId) -> Result<CertId, OcspError> {
    let alg = &id.hash_algorithm;
    let hash = CertIdHash::from_oid(&alg.oid).ok_or_else(|| OcspError::UnsupportedHash(alg.oid.to_string()))?;
    let hash_params_null = match &alg.parameters {
        None => false,
        Some(p) if p.is_null() => true,
        Some(_) => {
            return Err(OcspError::Malformed("CertID hash algorithm has parameters".into()));
        }
    };
    Ok(CertId {
        hash,
        issuer_name_hash: id.issuer_name_hash.as_bytes().to_vec(),
        issuer_key_hash: id.issuer_key_hash.as_bytes().to_vec(),
        serial: Serial::from_der_integer(id.serial_number.as_bytes()).map_err(|_| OcspError::BadSerial)?,
        hash_params_null,
    })
}

fn cert_id_to_wire(id: &CertId) -> Result<wire::CertId, OcspError> {
    Ok(wire::CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: id.hash.oid(),
            parameters: id.hash_params_null.then(Any::null),
        },
        issuer_name_hash: octets(&id.issuer_name_hash)?,
        issuer_key_hash: octets(&id.issuer_key_hash)?,
        serial_number: id.serial.serial_number().map_err(encode_err)?,
    })
}

/// The CA whose certificates the responder answers for, reduced to what CertIDs are
/// matched against: its name and key hashed with every [`CertIdHash`].
#[derive(Debug, Clone)]
pub struct OcspIssuer {
    name_hashes: [Vec<u8>; 4],
    key_hashes: [Vec<u8>; 4],
    // subjectPublicKey contents, to check that a signer holds this CA's key.
    public_key: Vec<u8>,
}

impl OcspIssuer {
    /// Reads the CA certificate (DER).
    pub fn new(ca_cert_der: &[u8]) -> Result<Self, OcspError> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(ca_cert_der).map_err(|e| OcspError::BadIssuerCert(e.to_string()))?;
        if !rest.is_empty() {
            return Err(OcspError::BadIssuerCert("trailing data after the certificate".into()));
        }
        // The name hash covers the subject exactly as encoded in the certificate, which is
        // what clients hash (RFC 6960 §4.1.1), so use the raw bytes rather than re-encoding.
        let name = cert.tbs_certificate.subject.as_raw();
        let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
        Ok(Self {
            name_hashes: CertIdHash::ALL.map(|h| h.digest(name)),
            key_hashes: CertIdHash::ALL.map(|h| h.digest(key)),
            public_key: key.to_vec(),
        })
    }

    /// Whether the CertID names this CA (both name and key hash match).
    pub fn issued(&self, id: &CertId) -> bool {
        let i = hash_index(id.hash);
        id.issuer_name_hash == self.name_hashes[i] && id.issuer_key_hash == self.key_hashes[i]
    }

    /// The CertID for one of this CA's serials, for answers signed ahead of any request.
    /// The hash algorithm identifier carries NULL parameters, as OpenSSL writes it.
    pub fn cert_id(&self, hash: CertIdHash, serial: Serial) -> CertId {
        let i = hash_index(hash);
        CertId {
            hash,
            issuer_name_hash: self.name_hashes[i].clone(),
            issuer_key_hash: self.key_hashes[i].clone(),
            serial,
            hash_params_null: true,
        }
    }

    // RFC 6960 §4.2.1 KeyHash: SHA-1 of the subjectPublicKey contents, whatever hash the
    // CertIDs use.
    fn responder_key_hash(&self) -> &[u8] {
        &self.key_hashes[hash_index(CertIdHash::Sha1)]
    }
}

fn hash_index(hash: CertIdHash) -> usize {
    match hash {
        CertIdHash::Sha1 => 0,
        CertIdHash::Sha256 => 1,
        CertIdHash::Sha384 => 2,
        CertIdHash::Sha512 => 3,
    }
}

/// A certificate's status, as the CA's records have it (RFC 6960 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `at`. `Unspecified` is written as an absent reason, as RFC 5280 §5.3.1
    /// recommends.
    Revoked {
        /// When the revocation took effect.
        at: OffsetDateTime,
        /// Why, if said.
        reason: Option<RevocationReason>,
    },
    /// Not known to this responder.
    Unknown,
}

/// The answer for one CertID.
#[derive(Debug, Clone)]
pub struct SingleStatus {
    /// The CertID as requested; it is echoed in the response.
    pub cert_id: CertId,
    /// Its status.
    pub status: CertStatus,
}

/// Signs a successful response: an OCSPResponse wrapping a BasicOCSPResponse (RFC 6960
/// §4.2.1) with the responder named by key hash, one SingleResponse per status with the
/// given thisUpdate and nextUpdate, the nonce extension when `nonce` is given, and no
/// `certs`, since the CA signs directly (§4.2.2.2).
///
/// `nonce` is the extnValue from [`OcspRequest::nonce`], echoed byte for byte. Times are
/// written as GeneralizedTime in whole seconds (sub-seconds are dropped). The signature
/// algorithm follows the signer: sha256WithRSAEncryption for RSA, ecdsa-with-SHA256 for
/// P-256, ecdsa-with-SHA384 for P-384.
///
/// Refuses to sign if `signer` does not hold the issuer's key, if a `good` or `revoked`
/// status is given for a CertID that does not name `issuer` (`unknown` is fine: RFC 6960
/// §2.2), if `this_update` is after `produced_at`, or if `next_update` is not after
/// `this_update`.
pub fn sign_response(
    issuer: &OcspIssuer,
    signer: &dyn Signer,
    statuses: &[SingleStatus],
    produced_at: OffsetDateTime,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    if statuses.is_empty() {
        return Err(OcspError::NoStatuses);
    }
    if this_update > produced_at {
        return Err(OcspError::BadTimes("thisUpdate is after producedAt"));
    }
    if next_update <= this_update {
        return Err(OcspError::BadTimes("nextUpdate is not after thisUpdate"));
    }
    if signer_public_key(signer)? != issuer.public_key {
        return Err(OcspError::SignerMismatch);
    }

    let this_update = generalized_time(this_update)?;
    let next_update = generalized_time(next_update)?;
    let responses = statuses
        .iter()
        .map(|s| {
            Ok(wire::SingleResponse {
                cert_id: cert_id_to_wire(&s.cert_id)?,
                cert_status: cert_status_to_wire(issuer, s)?,
                this_update,
                next_update: Some(next_update),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, OcspError>>()?;
    let response_extensions = nonce
        .map(|n| -> Result<_, OcspError> {
            Ok(vec![Extension { extn_id: rfc6960::ID_PKIX_OCSP_NONCE, critical: false, extn_value: octets(n)? }])
        })
        .transpose()?;
    let tbs_response_data = wire::ResponseData {
        version: wire::Version::V1,
        responder_id: wire::ResponderId::ByKey(octets(issuer.responder_key_hash())?),
        produced_at: generalized_time(produced_at)?,
        responses,
        response_extensions,
    };

    let tbs_der = tbs_response_data.to_der().map_err(encode_err)?;
    let signature = signer.sign(&tbs_der)?;
    let basic = wire::BasicOcspResponse {
        tbs_response_data,
        signature_algorithm: signer.algorithm().signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(encode_err)?,
        certs: None,
    };
    wire::OcspResponse::successful(basic).and_then(|r| r.to_der()).map_err(encode_err)
}

fn cert_status_to_wire(issuer: &OcspIssuer, s: &SingleStatus) -> Result<wire::CertStatus, OcspError> {
    let vouches = !matches!(s.status, CertStatus::Unknown);
    if vouches && !issuer.issued(&s.cert_id) {
        return Err(OcspError::ForeignCertId(s.cert_id.serial.clone()));
    }
    Ok(match s.status {
        CertStatus::Good => wire::CertStatus::Good(Null),
        CertStatus::Unknown => wire::CertStatus::Unknown(Null),
        CertStatus::Revoked { at, reason } => {
            let revocation_reason = match reason {
                None | Some(RevocationReason::Unspecified) => None,
                Some(r) => Some(crl_reason(r)?),
            };
            wire::CertStatus::Revoked(wire::RevokedInfo { revocation_time: generalized_time(at)?, revocation_reason })
        }
    })
}

fn crl_reason(reason: RevocationReason) -> Result<CrlReason, OcspError> {
    Ok(match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
        RevocationReason::RemoveFromCrl => return Err(OcspError::UnusableReason(reason)),
    })
}

fn signer_public_key(signer: &dyn Signer) -> Result<Vec<u8>, OcspError> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(signer.public_key_spki())
        .map_err(|_| OcspError::SignerMismatch)?;
    Ok(spki.subject_public_key.data.to_vec())
}

/// The status of an unsigned error response (RFC 6960 §4.2.1); successful responses are
/// made by [`sign_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorStatus {
    /// The request could not be parsed or breaks a rule.
    MalformedRequest,
    /// The responder failed (database, signing key).
    InternalError,
    /// The responder is up but cannot answer now.
    TryLater,
    /// The responder does not answer for this issuer.
    Unauthorized,
}

impl ErrorStatus {
    fn code(self) -> u8 {
        match self {
            Self::MalformedRequest => 1,
            Self::InternalError => 2,
            Self::TryLater => 3,
            Self::Unauthorized => 6,
        }
    }
}

/// An unsigned error response: an OCSPResponse with only the status (RFC 6960 §4.2.1; §2.3
/// explains why these are not signed).
pub fn error_response(status: ErrorStatus) -> Vec<u8> {
    // SEQUENCE { ENUMERATED code }: fixed bytes, so this cannot fail.
    vec![0x30, 0x03, 0x0a, 0x01, status.code()]
}

fn generalized_time(t: OffsetDateTime) -> Result<wire::OcspGeneralizedTime, OcspError> {
    // RFC 5280 §4.1.2.5.2 (which OCSP inherits): GeneralizedTime in UTC, no fractions.
    let dt = crate::der_date_time(t).ok_or(OcspError::TimeOutOfRange(t))?;
    Ok(wire::OcspGeneralizedTime(GeneralizedTime::from_date_time(dt)))
}

fn octets(bytes: &[u8]) -> Result<OctetString, OcspError> {
    OctetString::new(bytes).map_err(encode_err)
}

fn encode_err(e: der::Error) -> OcspError {
    OcspError::Encode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::verify_signature;
    use crate::{KeyAlgorithm, SoftwareSigner};
    use time::macros::datetime;

    struct Ca {
        signer: SoftwareSigner,
        der: Vec<u8>,
        issuer: OcspIssuer,
    }

    fn make_ca(alg: KeyAlgorithm) -> Ca {
        let signer = SoftwareSigner::generate(alg).unwrap();
        let key = rcgen::KeyPair::try_from(signer.to_pkcs8().unwrap().as_slice()).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Signet Test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let issuer = OcspIssuer::new(&der).unwrap();
        Ca { signer, der, issuer }
    }

    fn request(cert_ids: &[CertId], extensions: Option<Vec<Extension>>) -> Vec<u8> {
        let request_list = cert_ids
            .iter()
            .map(|id| wire::Request { req_cert: cert_id_to_wire(id).unwrap(), single_request_extensions: None })
            .collect();
        let tbs_request = wire::TbsRequest { request_list, request_extensions: extensions, ..Default::default() };
        wire::OcspRequest { tbs_request, optional_signature: None }.to_der().unwrap()
    }

    fn nonce_ext(nonce: &[u8]) -> Extension {
        Extension {
            extn_id: rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(nonce).unwrap().to_der().unwrap()).unwrap(),
        }
    }

    const NOW: OffsetDateTime = datetime!(2030-01-02 03:04:05.678 UTC);

    fn sign(ca: &Ca, statuses: &[SingleStatus], nonce: Option<&[u8]>) -> Result<Vec<u8>, OcspError> {
        sign_response(
            &ca.issuer,
            &ca.signer,
            statuses,
            NOW,
            NOW - time::Duration::hours(1),
            NOW + time::Duration::days(1),
            nonce,
        )
    }

    fn decode_basic(resp: &[u8]) -> wire::BasicOcspResponse {
        let resp = wire::OcspResponse::from_der(resp).unwrap();
        assert_eq!(resp.response_status, wire::OcspResponseStatus::Successful);
        let bytes = resp.response_bytes.unwrap();
        assert_eq!(bytes.response_type, rfc6960::ID_PKIX_OCSP_BASIC);
        wire::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap()
    }

    #[test]
    fn request_round_trip_and_signed_response_verifies() {
        for alg in KeyAlgorithm::ALL {
            let ca = make_ca(alg);
            let ids: Vec<_> = CertIdHash::ALL.into_iter().map(|h| ca.issuer.cert_id(h, Serial::random())).collect();
            let req = parse_request(&request(&ids, Some(vec![nonce_ext(&[7; 32])]))).unwrap();
            assert_eq!(req.cert_ids.len(), 4);
            assert!(req.cert_ids.iter().all(|id| ca.issuer.issued(id)));
            assert_eq!(req.cert_ids[2].serial, ids[2].serial);
            let nonce = req.nonce.clone().unwrap();
            assert_eq!(nonce, OctetString::new([7; 32]).unwrap().to_der().unwrap());

            let statuses: Vec<_> =
                req.cert_ids.iter().map(|id| SingleStatus { cert_id: id.clone(), status: CertStatus::Good }).collect();
            let der = sign(&ca, &statuses, Some(&nonce)).unwrap();
            let basic = decode_basic(&der);
            let tbs = basic.tbs_response_data.to_der().unwrap();
            assert!(verify_signature(alg, ca.signer.public_key_spki(), &tbs, basic.signature.raw_bytes()), "{alg}");
            assert!(basic.certs.is_none());
            let data = &basic.tbs_response_data;
            assert_eq!(data.nonce().unwrap().0.as_bytes(), &[7; 32]);
            assert_eq!(
                data.responder_id,
                wire::ResponderId::ByKey(OctetString::new(ca.issuer.responder_key_hash()).unwrap())
            );
            for (single, id) in data.responses.iter().zip(&ids) {
                assert_eq!(single.cert_id, cert_id_to_wire(id).unwrap());
                assert_eq!(single.cert_status, wire::CertStatus::Good(Null));
            }
            // Sub-seconds dropped.
            assert_eq!(data.produced_at.0.to_unix_duration().as_secs(), NOW.unix_timestamp() as u64);
        }
    }

    #[test]
    fn encoded_requests_parse_with_signets_parser() {
        let ca = make_ca(KeyAlgorithm::P256);
        let issuer = &ca.issuer;
        for (hash, serial) in CertIdHash::ALL.into_iter().zip([
            Serial::random(),
            Serial::from_unsigned_bytes(&[0xff; 20]).unwrap(),
            Serial::from_unsigned_bytes(&[1]).unwrap(),
            Serial::random(),
        ]) {
            let id = issuer.cert_id(hash, serial);
            let (plain, none) = encode_request(&id, None).unwrap();
            assert_eq!(none, None);
            let plain = parse_request(&plain).unwrap();
            assert_eq!(plain.cert_ids, std::slice::from_ref(&id));
            assert_eq!(plain.nonce, None);
            let (with_nonce, nonce_value) = encode_request(&id, Some(&[7; 16])).unwrap();
            let with_nonce = parse_request(&with_nonce).unwrap();
            assert!(issuer.issued(&with_nonce.cert_ids[0]));
            // extnValue holds the DER of the nonce OCTET STRING (RFC 9654 §2.1).
            assert_eq!(with_nonce.nonce, Some([&[0x04, 16][..], &[7; 16]].concat()));
            assert_eq!(with_nonce.nonce, nonce_value);
        }
        // A CertID made from the issuer's name and key is the one the issuer makes itself.
        let (_, cert) = x509_parser::parse_x509_certificate(&ca.der).unwrap();
        let subject = cert.tbs_certificate.subject.as_raw();
        let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
        let serial = Serial::random();
        for hash in CertIdHash::ALL {
            assert_eq!(CertId::new(hash, subject, key, serial.clone()), issuer.cert_id(hash, serial.clone()));
        }
    }

    #[test]
    fn echoes_absent_hash_parameters_and_raw_nonces() {
        let ca = make_ca(KeyAlgorithm::P256);
        let mut id = ca.issuer.cert_id(CertIdHash::Sha256, Serial::random());
        id.hash_params_null = false;
        let raw_nonce = Extension {
            extn_id: rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new([0xAB; 16]).unwrap(),
        };
        let req = parse_request(&request(&[id], Some(vec![raw_nonce]))).unwrap();
        assert_eq!(req.nonce.as_deref(), Some(&[0xAB; 16][..]));
        let statuses = [SingleStatus { cert_id: req.cert_ids[0].clone(), status: CertStatus::Unknown }];
        let basic = decode_basic(&sign(&ca, &statuses, req.nonce.as_deref()).unwrap());
        let data = basic.tbs_response_data;
        assert_eq!(data.responses[0].cert_id.hash_algorithm.parameters, None);
        let ext = &data.response_extensions.unwrap()[0];
        assert_eq!(ext.extn_value.as_bytes(), &[0xAB; 16]);
    }

    #[test]
    fn rejects_bad_requests() {
        let ca = make_ca(KeyAlgorithm::P256);
        let id = ca.issuer.cert_id(CertIdHash::Sha1, Serial::random());
        assert!(matches!(parse_request(&request(&[], None)), Err(OcspError::EmptyRequest)));
        let many = vec![id.clone(); MAX_REQUEST_CERTS + 1];
        assert!(matches!(parse_request(&request(&many, None)), Err(OcspError::TooManyCerts(33))));
        assert!(parse_request(&request(&many[1..], None)).is_ok());
        for (len, ok) in [(0, false), (1, true), (128, true), (129, false)] {
            let got = parse_request(&request(std::slice::from_ref(&id), Some(vec![nonce_ext(&vec![1; len])])));
            assert_eq!(got.is_ok(), ok, "nonce of {len}");
            if !ok {
                assert!(matches!(got, Err(OcspError::BadNonce(n)) if n == len));
            }
        }
        let two_nonces = Some(vec![nonce_ext(&[1; 16]), nonce_ext(&[2; 16])]);
        assert!(matches!(parse_request(&request(std::slice::from_ref(&id), two_nonces)), Err(OcspError::Malformed(_))));
        let critical = Extension {
            extn_id: rfc5912::ID_CE_SUBJECT_ALT_NAME,
            critical: true,
            extn_value: OctetString::new([0x30, 0x00]).unwrap(),
        };
        let got = parse_request(&request(std::slice::from_ref(&id), Some(vec![critical.clone()])));
        assert!(matches!(got, Err(OcspError::UnsupportedCriticalExtension(_))));
        let ignored = Extension { critical: false, ..critical };
        assert!(parse_request(&request(std::slice::from_ref(&id), Some(vec![ignored]))).is_ok());

        // MD5 CertID.
        let mut md5 = cert_id_to_wire(&id).unwrap();
        md5.hash_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
        let tbs_request = wire::TbsRequest {
            request_list: vec![wire::Request { req_cert: md5, single_request_extensions: None }],
            ..Default::default()
        };
        let der = wire::OcspRequest { tbs_request, optional_signature: None }.to_der().unwrap();
        assert!(matches!(parse_request(&der), Err(OcspError::UnsupportedHash(_))));
        for e in [OcspError::EmptyRequest, OcspError::BadNonce(0), OcspError::BadSerial] {
            assert_eq!(e.error_status(), ErrorStatus::MalformedRequest);
        }
        assert_eq!(OcspError::SignerMismatch.error_status(), ErrorStatus::InternalError);
    }

    #[test]
    fn garbage_and_truncations_are_errors_not_panics() {
        let ca = make_ca(KeyAlgorithm::P256);
        let good = request(&[ca.issuer.cert_id(CertIdHash::Sha1, Serial::random())], Some(vec![nonce_ext(&[9; 20])]));
        for n in 0..good.len() {
            assert!(parse_request(&good[..n]).is_err(), "prefix of {n}");
        }
        let mut flipped = good.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = parse_request(&flipped);
            flipped[i] ^= 0xff;
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse_request(&trailing).is_err());
        assert!(parse_request(b"GET / HTTP/1.1\r\n").is_err());
        assert!(OcspIssuer::new(b"not a certificate").is_err());
    }

    #[test]
    fn refuses_to_sign_what_cannot_be_true() {
        let ca = make_ca(KeyAlgorithm::P256);
        let other = make_ca(KeyAlgorithm::P256);
        let id = ca.issuer.cert_id(CertIdHash::Sha1, Serial::random());
        let foreign = other.issuer.cert_id(CertIdHash::Sha1, Serial::random());
        let good = |cert_id: &CertId| SingleStatus { cert_id: cert_id.clone(), status: CertStatus::Good };

        assert!(matches!(sign(&ca, &[good(&foreign)], None), Err(OcspError::ForeignCertId(_))));
        let unknown = SingleStatus { cert_id: foreign, status: CertStatus::Unknown };
        assert!(sign(&ca, &[unknown], None).is_ok());
        assert!(matches!(sign(&ca, &[], None), Err(OcspError::NoStatuses)));
        let wrong_key = Ca { signer: other.signer, der: ca.der.clone(), issuer: ca.issuer.clone() };
        assert!(matches!(sign(&wrong_key, &[good(&id)], None), Err(OcspError::SignerMismatch)));

        let statuses = [good(&id)];
        let times = |p, t, n| sign_response(&ca.issuer, &ca.signer, &statuses, p, t, n, None);
        assert!(matches!(times(NOW, NOW, NOW), Err(OcspError::BadTimes(_))));
        assert!(matches!(
            times(NOW, NOW + time::Duration::SECOND, NOW + time::Duration::DAY),
            Err(OcspError::BadTimes(_))
        ));
        assert!(times(NOW, NOW, NOW + time::Duration::DAY).is_ok());
        let ancient = datetime!(1969-12-31 23:59:59 UTC);
        assert!(matches!(times(NOW, ancient, NOW), Err(OcspError::TimeOutOfRange(_))));

        let revoked = |reason| SingleStatus { cert_id: id.clone(), status: CertStatus::Revoked { at: NOW, reason } };
        let got = sign(&ca, &[revoked(Some(RevocationReason::RemoveFromCrl))], None);
        assert!(matches!(got, Err(OcspError::UnusableReason(RevocationReason::RemoveFromCrl))));
        let basic = decode_basic(&sign(&ca, &[revoked(Some(RevocationReason::Unspecified))], None).unwrap());
        let wire::CertStatus::Revoked(info) = basic.tbs_response_data.responses[0].cert_status else { panic!() };
        assert_eq!(info.revocation_reason, None);
        let basic = decode_basic(&sign(&ca, &[revoked(Some(RevocationReason::KeyCompromise))], None).unwrap());
        let wire::CertStatus::Revoked(info) = basic.tbs_response_data.responses[0].cert_status else { panic!() };
        assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
    }

    #[test]
    fn high_bit_twenty_octet_serials_are_echoed() {
        let ca = make_ca(KeyAlgorithm::P256);
        let serial = Serial::from_unsigned_bytes(&[0xff; 20]).unwrap();
        let id = ca.issuer.cert_id(CertIdHash::Sha1, serial.clone());
        let req = parse_request(&request(&[id], None)).unwrap();
        assert_eq!(req.cert_ids[0].serial, serial);
        let statuses = [SingleStatus { cert_id: req.cert_ids[0].clone(), status: CertStatus::Good }];
        let basic = decode_basic(&sign(&ca, &statuses, None).unwrap());
        assert!(basic.tbs_response_data.response_extensions.is_none());
        assert_eq!(basic.tbs_response_data.responses[0].cert_id.serial_number.as_bytes()[1..], [0xff; 20]);
    }

    #[test]
    fn error_responses_match_the_asn1() {
        for (status, wire_status) in [
            (ErrorStatus::MalformedRequest, wire::OcspResponse::malformed_request()),
            (ErrorStatus::InternalError, wire::OcspResponse::internal_error()),
            (ErrorStatus::TryLater, wire::OcspResponse::try_later()),
            (ErrorStatus::Unauthorized, wire::OcspResponse::unauthorized()),
        ] {
            assert_eq!(error_response(status), wire_status.to_der().unwrap());
        }
    }
}
