//! The certificate authorities: creating the root + issuing hierarchy, and the loaded
//! issuing CA that signs certificates, CRLs and OCSP responses through a [`Signer`].

use std::sync::Arc;

use der::Encode;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa, KeyIdMethod,
    KeyUsagePurpose, string::PrintableString,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

use crate::issue::certificate_policies;
use crate::profile::Catalog;
use crate::{KeyAlgorithm, Serial, SignError, Signer};

/// Why a CA could not be created or loaded, or refused to sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CA certificate is not parseable DER.
    #[error("the CA certificate cannot be parsed")]
    BadCertificate,
    /// The certificate is not a CA, or may not sign certificates.
    #[error("the certificate is not a CA certificate with keyCertSign")]
    NotCa,
    /// The configured key does not belong to the CA certificate.
    #[error("the CA key does not match the CA certificate")]
    KeyMismatch,
    /// The CA certificate has no subject key identifier to put in AKIs.
    #[error("the CA certificate has no subject key identifier")]
    NoKeyIdentifier,
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// rcgen or the DER encoder refused the parameters (a programming error, reported rather
    /// than panicking).
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
}

impl From<der::Error> for CaError {
    fn from(e: der::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> Self {
        CaError::Encoding(e.to_string())
    }
}

/// Where relying parties fetch revocation data and the CA certificate; written into every
/// certificate (DESIGN §2: CRL DP and AIA in every certificate).
#[derive(Debug, Clone)]
pub struct CaUrls {
    /// CRL distribution point.
    pub crl: String,
    /// OCSP responder.
    pub ocsp: String,
    /// caIssuers: the issuing CA certificate.
    pub ca_issuers: String,
}

impl CaUrls {
    /// The URLs a Signet server publishes under `base` (e.g. `http://127.0.0.1:8080`).
    pub fn under(base: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            crl: format!("{base}/crl/issuing.crl"),
            ocsp: format!("{base}/ocsp"),
            ca_issuers: format!("{base}/ca/issuing.crt"),
        }
    }
}

/// rcgen's view of a [`Signer`]: rcgen wants the raw subjectPublicKey bits and an algorithm.
pub(crate) struct RcgenKey {
    signer: Arc<dyn Signer>,
    raw: Vec<u8>,
}

impl RcgenKey {
    pub(crate) fn new(signer: Arc<dyn Signer>) -> Result<Self, CaError> {
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(signer.public_key_spki())
            .map_err(|_| CaError::KeyMismatch)?;
        let raw = spki.subject_public_key.data.to_vec();
        Ok(Self { signer, raw })
    }
}

impl rcgen::PublicKeyData for RcgenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.signer.algorithm().rcgen_algorithm()
    }
}

impl rcgen::SigningKey for RcgenKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Names for a new hierarchy.
#[derive(Debug, Clone)]
pub struct HierarchyNames {
    /// Root CA common name.
    pub root_cn: String,
    /// Issuing CA common name.
    pub issuing_cn: String,
}

/// The ECA naming prefix every Signet CA DN starts with (DESIGN §2).
fn eca_dn_prefix() -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        // DESIGN pitfall: rcgen writes UTF8String unless told; C must be PrintableString.
        DnValue::PrintableString(PrintableString::try_from("US").expect("printable")),
    );
    dn.push(DnType::OrganizationName, DnValue::Utf8String("U.S. Government".into()));
    dn.push(DnType::OrganizationalUnitName, DnValue::Utf8String("ECA".into()));
    dn
}

fn ca_params(cn: &str, not_before: OffsetDateTime, years: i64, path_len: Option<u8>) -> CertificateParams {
    let mut dn = eca_dn_prefix();
    dn.push(DnType::CommonName, DnValue::Utf8String(cn.into()));
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(Serial::random().as_bytes()));
    p.not_before = not_before;
    p.not_after = not_before + Duration::days(365 * years);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// OID arcs of certificatePolicies, for rcgen's custom extensions.
const CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];

/// Creates a self-signed root (20 years) and an issuing CA (10 years, path length 0) that
/// asserts every current ECA policy of the catalog, so `-explicit_policy` path validation
/// succeeds for each profile. Returns (root DER, issuing DER).
pub fn create_hierarchy(
    root: Arc<dyn Signer>,
    issuing: Arc<dyn Signer>,
    names: &HierarchyNames,
    catalog: &Catalog,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Vec<u8>), CaError> {
    let now = now.replace_nanosecond(0).map_err(|e| CaError::Encoding(e.to_string()))?;
    let root_params = ca_params(&names.root_cn, now, 20, None);
    let root_key = RcgenKey::new(root)?;
    let root_cert = root_params.self_signed(&root_key)?;
    let root_issuer = rcgen::Issuer::new(root_params, root_key);

    let mut issuing_params = ca_params(&names.issuing_cn, now, 10, Some(0));
    issuing_params.use_authority_key_identifier_extension = true;
    issuing_params.custom_extensions.push(CustomExtension::from_oid_content(
        CERTIFICATE_POLICIES,
        certificate_policies(&catalog.all_policies())?.to_der()?,
    ));
    let issuing_key = RcgenKey::new(issuing)?;
    let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;
    Ok((root_cert.der().to_vec(), issuing_cert.der().to_vec()))
}

/// A loaded issuing CA, ready to sign. Built once at start-up; cheap to share.
pub struct CertificateAuthority {
    cert_der: Vec<u8>,
    pub(crate) issuer: rcgen::Issuer<'static, RcgenKey>,
    pub(crate) ski: Vec<u8>,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) urls: CaUrls,
    pub(crate) vendor: String,
    /// The CA's subject exactly as encoded in its certificate: the issuer of what it signs.
    pub(crate) subject_der: Vec<u8>,
    signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("urls", &self.urls).finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads a CA from its certificate and key. Checks that the key matches the certificate
    /// (by signing a probe and verifying it against the certificate's key) and that the
    /// certificate is a CA with a subject key identifier.
    pub fn new(cert_der: Vec<u8>, signer: Arc<dyn Signer>, urls: CaUrls, vendor: &str) -> Result<Self, CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).map_err(|_| CaError::BadCertificate)?;
        let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
        let can_sign = cert.key_usage().ok().flatten().is_some_and(|k| k.value.key_cert_sign());
        if !is_ca || !can_sign {
            return Err(CaError::NotCa);
        }
        let ski = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .ok_or(CaError::NoKeyIdentifier)?;
        let probe = signer.sign(b"signet key check")?;
        if !crate::signer::verify_signature(signer.algorithm(), cert.public_key().raw, b"signet key check", &probe) {
            return Err(CaError::KeyMismatch);
        }
        let not_after = cert.validity().not_after.to_datetime();
        let subject_der = cert.subject().as_raw().to_vec();
        let issuer = rcgen::Issuer::from_ca_cert_der(&cert_der.as_slice().into(), RcgenKey::new(signer.clone())?)?;
        Ok(Self { cert_der, issuer, ski, not_after, urls, vendor: vendor.to_owned(), subject_der, signer })
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's key type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.signer.algorithm()
    }

    /// The signer, for OCSP responses.
    pub fn signer(&self) -> &dyn Signer {
        self.signer.as_ref()
    }

    /// The subject key identifier, which every AKI this CA writes must equal.
    pub fn key_identifier(&self) -> &[u8] {
        &self.ski
    }

    /// When the CA certificate expires; no certificate may outlive it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}
