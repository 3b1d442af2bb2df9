//! Issuance: an RA order and a verified CSR become a certificate in three consuming steps,
//! [`Prepared`] → [`Linted`] → [`IssuedCertificate`], so nothing can be signed that was not
//! linted, and the bytes signed are the bytes linted.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::Serial;
use crate::ca::{CaError, CertificateAuthority};
use crate::csr::{SubscriberKey, VerifiedCsr};
use crate::der::{self, sequence, tlv};
use crate::profile::{Oid, Profile, SubjectKind};
use crate::subject::Subject;

/// What the RA instructs the CA to issue. The subject comes from vetted data; the CSR only
/// contributes its public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateOrder {
    /// Profile id from the catalog, e.g. `medium-token-identity`.
    pub profile: String,
    /// Who the certificate names.
    pub subject: Subject,
    /// Validity in years; must be one the profile allows.
    pub validity_years: u8,
}

/// Why issuance stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The order names a person for a device profile or the reverse.
    #[error("profile {profile} issues {expected} certificates, but the order names a {got}")]
    SubjectKind {
        /// Profile id.
        profile: String,
        /// What the profile wants.
        expected: &'static str,
        /// What the order has.
        got: &'static str,
    },
    /// The validity is not one the profile allows.
    #[error("profile {profile} allows validity of {allowed:?} years, not {got}")]
    Validity {
        /// Profile id.
        profile: String,
        /// Allowed years.
        allowed: Vec<u8>,
        /// Requested years.
        got: u8,
    },
    /// The certificate would outlive the issuing CA.
    #[error("the issuing CA expires before the requested validity ends")]
    OutlivesCa,
    /// A device order without host names.
    #[error("a device certificate needs at least one DNS name")]
    NoDnsNames,
    /// The pre-signing lint found problems; nothing was signed.
    #[error("certificate failed pre-signing lint: {}", .0.join("; "))]
    Lint(Vec<String>),
    /// The CA failed to sign.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// An issued certificate and the facts the store keeps about it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub der: Vec<u8>,
    /// Its serial.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity (inclusive).
    pub not_after: OffsetDateTime,
}

/// Step 1: the to-be-signed certificate, encoded from the order; nothing signed yet.
#[derive(Debug)]
pub struct Prepared<'a> {
    tbs: Vec<u8>,
    profile: &'a Profile,
    order: &'a CertificateOrder,
    csr: &'a VerifiedCsr,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

fn add_years(t: OffsetDateTime, years: u8) -> OffsetDateTime {
    let year = t.year() + i32::from(years);
    // 29 February has no twin in most years: fall back to the 28th.
    let date = Date::from_calendar_date(year, t.month(), t.day())
        .or_else(|_| Date::from_calendar_date(year, t.month(), 28))
        .expect("day 28 exists in every month");
    t.replace_date(date)
}

/// RFC 7093 method 1: the leftmost 160 bits of SHA-256 over the subjectPublicKey bits.
pub(crate) fn key_identifier(subject_public_key: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, subject_public_key).as_ref()[..20].to_vec()
}

/// The ECA subscriber DN (DESIGN §2): C=US, O=U.S. Government, OU=ECA, OU=<CA vendor>,
/// OU=<organization>, CN=<name>. Written by hand because the OU repeats, which rcgen's
/// map-shaped `DistinguishedName` cannot express. C is a PrintableString, the rest UTF8String.
fn subscriber_name(vendor: &str, subject: &Subject) -> Vec<u8> {
    let rdn = |id: &str, tag: u8, value: &str| {
        tlv(0x31, &sequence(&[der::oid(&Oid::parse(id).expect("constant OID")), tlv(tag, value.as_bytes())]))
    };
    sequence(&[
        rdn("2.5.4.6", 0x13, "US"),
        rdn("2.5.4.10", 0x0c, "U.S. Government"),
        rdn("2.5.4.11", 0x0c, "ECA"),
        rdn("2.5.4.11", 0x0c, vendor),
        rdn("2.5.4.11", 0x0c, subject.organization().as_str()),
        rdn("2.5.4.3", 0x0c, subject.common_name()),
    ])
}

impl<'a> Prepared<'a> {
    /// Encodes the certificate: ECA DN, SAN, KU (critical), EKU, basicConstraints cA=false,
    /// policies, CRL DP, AIA, SKI/AKI, the reserved serial, validity from `now` (seconds
    /// precision) for the ordered years, minus one second because notAfter is inclusive
    /// (RFC 5280 §4.1.2.5).
    pub fn new(
        ca: &CertificateAuthority,
        profile: &'a Profile,
        order: &'a CertificateOrder,
        csr: &'a VerifiedCsr,
        serial: Serial,
        now: OffsetDateTime,
    ) -> Result<Self, IssueError> {
        let got = match order.subject {
            Subject::Person { .. } => "person",
            Subject::Device { .. } => "device",
        };
        let expected = match profile.subject {
            SubjectKind::Person => "person",
            SubjectKind::Device => "device",
        };
        if got != expected {
            return Err(IssueError::SubjectKind { profile: profile.id.clone(), expected, got });
        }
        if !profile.validity_years.contains(&order.validity_years) {
            return Err(IssueError::Validity {
                profile: profile.id.clone(),
                allowed: profile.validity_years.clone(),
                got: order.validity_years,
            });
        }
        let not_before = now.replace_nanosecond(0).expect("0 is a valid nanosecond");
        let not_after = add_years(not_before, order.validity_years) - Duration::seconds(1);
        if not_after > ca.not_after() {
            return Err(IssueError::OutlivesCa);
        }
        let san = match &order.subject {
            Subject::Person { email, .. } => sequence(&[tlv(0x81, email.as_str().as_bytes())]),
            Subject::Device { dns_names, .. } => {
                if dns_names.is_empty() {
                    return Err(IssueError::NoDnsNames);
                }
                sequence(&dns_names.iter().map(|d| tlv(0x82, d.as_str().as_bytes())).collect::<Vec<_>>())
            }
        };
        let key_usages = match csr.key() {
            SubscriberKey::Rsa { .. } => &profile.key_usages,
            SubscriberKey::P256 | SubscriberKey::P384 => &profile.ec_key_usages,
        };
        let ku_bits: Vec<u8> = key_usages.iter().map(|k| *k as u8).collect();
        let ekus: Vec<Vec<u8>> =
            profile.extended_key_usages.iter().map(|e| der::oid(&Oid::parse(e.oid()).expect("constant OID"))).collect();
        let crl_dp = sequence(&[sequence(&[tlv(0xa0, &tlv(0xa0, &tlv(0x86, ca.urls.crl.as_bytes())))])]);
        let mut extensions = vec![
            der::extension("2.5.29.19", true, &sequence(&[])),
            der::extension("2.5.29.15", true, &der::named_bits(&ku_bits)),
        ];
        if !ekus.is_empty() {
            extensions.push(der::extension("2.5.29.37", false, &sequence(&ekus)));
        }
        extensions.extend([
            der::extension("2.5.29.14", false, &tlv(0x04, &key_identifier(csr.subject_public_key()))),
            der::extension("2.5.29.35", false, &sequence(&[tlv(0x80, &ca.ski)])),
            der::extension("2.5.29.17", false, &san),
            der::extension("2.5.29.32", false, &der::certificate_policies(&profile.policies())),
            der::extension("2.5.29.31", false, &crl_dp),
            der::extension("1.3.6.1.5.5.7.1.1", false, &der::authority_info_access(&ca.urls.ocsp, &ca.urls.ca_issuers)),
        ]);
        let tbs = sequence(&[
            tlv(0xa0, &der::unsigned_integer(&[2])),
            der::unsigned_integer(serial.as_bytes()),
            der::signature_algorithm(ca.algorithm()),
            ca.subject_der.clone(),
            sequence(&[der::time(not_before), der::time(not_after)]),
            subscriber_name(&ca.vendor, &order.subject),
            csr.spki().to_vec(),
            tlv(0xa3, &sequence(&extensions)),
        ]);
        Ok(Self { tbs, profile, order, csr, serial, not_before, not_after })
    }

    /// Step 2: wraps the to-be-signed bytes with a zero signature, parses that draft as a
    /// relying party would and checks it against the profile and the CA. The CA key is not
    /// used (Boulder's lint-then-sign).
    pub fn lint(self, ca: &CertificateAuthority) -> Result<Linted<'a>, IssueError> {
        let draft = assemble(&self.tbs, ca, &[0; 8]);
        let (_, cert) = x509_parser::parse_x509_certificate(&draft)
            .map_err(|e| IssueError::Lint(vec![format!("draft does not parse: {e}")]))?;
        let findings = lint(&cert, ca, &self);
        if !findings.is_empty() {
            return Err(IssueError::Lint(findings));
        }
        Ok(Linted { prepared: self })
    }
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }.
fn assemble(tbs: &[u8], ca: &CertificateAuthority, signature: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature);
    sequence(&[tbs.to_vec(), der::signature_algorithm(ca.algorithm()), tlv(0x03, &bits)])
}

/// Step 2 passed: ready for the CA key.
#[derive(Debug)]
pub struct Linted<'a> {
    prepared: Prepared<'a>,
}

impl Linted<'_> {
    /// The serial that will be issued; the caller records the intent under it before
    /// signing.
    pub fn serial(&self) -> &Serial {
        &self.prepared.serial
    }

    /// Step 3: signs exactly the bytes that were linted.
    pub fn sign(self, ca: &CertificateAuthority) -> Result<IssuedCertificate, IssueError> {
        let p = self.prepared;
        let signature = ca.signer().sign(&p.tbs).map_err(CaError::from)?;
        Ok(IssuedCertificate {
            der: assemble(&p.tbs, ca, &signature),
            serial: p.serial,
            not_before: p.not_before,
            not_after: p.not_after,
        })
    }
}

/// Profile and RFC 5280 checks on the draft; each finding is one readable sentence.
fn lint(cert: &X509Certificate<'_>, ca: &CertificateAuthority, p: &Prepared<'_>) -> Vec<String> {
    let mut f = Vec::new();
    let tbs = &cert.tbs_certificate;
    if tbs.raw_serial() != p.serial.as_bytes() && tbs.raw_serial().get(1..) != Some(p.serial.as_bytes()) {
        f.push("serial number differs from the one reserved".into());
    }
    if tbs.raw_serial().len() > 20 {
        f.push("serial number longer than 20 octets".into());
    }
    if tbs.validity.not_before.to_datetime() >= tbs.validity.not_after.to_datetime() {
        f.push("notBefore is not before notAfter".into());
    }
    if tbs.validity.not_after.to_datetime() > ca.not_after {
        f.push("certificate outlives its issuer".into());
    }
    if tbs.subject_pki.raw != p.csr.spki() {
        f.push("subject public key differs from the CSR's".into());
    }
    // Country must be a PrintableString "US" (DESIGN §2).
    let country_ok = tbs.subject.iter_country().next().is_some_and(|c| {
        c.attr_value().header.tag() == x509_parser::der_parser::asn1_rs::Tag::PrintableString
            && c.as_str().ok() == Some("US")
    });
    if !country_ok {
        f.push("subject C is not PrintableString \"US\"".into());
    }
    let ous: Vec<&str> = tbs.subject.iter_organizational_unit().filter_map(|a| a.as_str().ok()).collect();
    let want_ous = ["ECA", ca.vendor.as_str(), p.order.subject.organization().as_str()];
    if ous != want_ous {
        f.push(format!("subject OUs are {ous:?}, expected {want_ous:?}"));
    }
    let cn: Vec<&str> = tbs.subject.iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    if cn != [p.order.subject.common_name()] {
        f.push("subject CN differs from the order".into());
    }

    let mut seen = Vec::new();
    for ext in tbs.extensions() {
        seen.push(ext.oid.to_id_string());
        match ext.parsed_extension() {
            ParsedExtension::CertificatePolicies(pols) => {
                let got: Vec<String> = pols.iter().map(|p| p.policy_id.to_id_string()).collect();
                let want: Vec<String> = p.profile.policies().iter().map(ToString::to_string).collect();
                if got != want {
                    f.push(format!("policies {got:?}, expected {want:?}"));
                }
            }
            ParsedExtension::KeyUsage(_) if !ext.critical => f.push("keyUsage is not critical".into()),
            ParsedExtension::BasicConstraints(bc) if bc.ca => f.push("end-entity certificate has cA=true".into()),
            ParsedExtension::AuthorityKeyIdentifier(aki)
                if aki.key_identifier.as_ref().map(|k| k.0) != Some(ca.ski.as_slice()) =>
            {
                f.push("AKI does not equal the issuing CA's SKI".into());
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                let ok = match &p.order.subject {
                    Subject::Person { email, .. } => {
                        matches!(san.general_names.as_slice(), [GeneralName::RFC822Name(e)] if *e == email.as_str())
                    }
                    Subject::Device { dns_names, .. } => {
                        san.general_names.len() == dns_names.len()
                            && san
                                .general_names
                                .iter()
                                .zip(dns_names)
                                .all(|(g, d)| matches!(g, GeneralName::DNSName(n) if *n == d.as_str()))
                    }
                };
                if !ok {
                    f.push("subjectAltName differs from the order".into());
                }
            }
            _ => {}
        }
    }
    for (oid, name) in [
        ("2.5.29.32", "certificatePolicies"),
        ("2.5.29.15", "keyUsage"),
        ("2.5.29.37", "extKeyUsage"),
        ("2.5.29.14", "subjectKeyIdentifier"),
        ("2.5.29.35", "authorityKeyIdentifier"),
        ("2.5.29.31", "cRLDistributionPoints"),
        ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
        ("2.5.29.17", "subjectAltName"),
    ] {
        match seen.iter().filter(|s| *s == oid).count() {
            1 => {}
            0 => f.push(format!("{name} is missing")),
            _ => f.push(format!("{name} appears more than once")),
        }
    }
    f
}
