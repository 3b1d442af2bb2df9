//! YubiKey PIV key attestation.
//!
//! A YubiKey proves that a key was generated on the device, and under which PIN and touch
//! policy, by signing a certificate for it with its per-device attestation key (slot f9).
//! The chain runs leaf → f9 device certificate → Yubico intermediates → a root the operator
//! configures. The leaf's SubjectPublicKeyInfo is the attested key; Yubico extensions under
//! 1.3.6.1.4.1.41482.3 carry the firmware version, device serial, policies and form factor.
//!
//! Intermediates are not required to carry basicConstraints cA=TRUE: the f9 certificates of
//! older firmware lack it, and the chain is trusted for this one purpose only.

use std::fmt;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

/// Longest chain accepted, leaf included and root excluded: current Yubico chains have at
/// most four certificates, and a bound keeps the work per request small.
pub const MAX_CHAIN: usize = 5;

const OID_FIRMWARE: &str = "1.3.6.1.4.1.41482.3.3";
const OID_SERIAL: &str = "1.3.6.1.4.1.41482.3.7";
const OID_POLICY: &str = "1.3.6.1.4.1.41482.3.8";
const OID_FORM_FACTOR: &str = "1.3.6.1.4.1.41482.3.9";
const SLOT_CN_PREFIX: &str = "YubiKey PIV Attestation ";

/// Why an attestation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationError {
    /// The operator's root bundle is not a list of PEM X.509 certificates.
    #[error("attestation root bundle: {0}")]
    BadRoots(String),
    /// No certificates were sent.
    #[error("the attestation chain is empty")]
    EmptyChain,
    /// More than [`MAX_CHAIN`] certificates were sent.
    #[error("the attestation chain has {0} certificates (at most {MAX_CHAIN})")]
    ChainTooLong(usize),
    /// A certificate in the chain (0 = leaf) is not DER X.509.
    #[error("certificate {0} of the attestation chain is not a DER X.509 certificate")]
    Malformed(usize),
    /// A certificate (0 = leaf; the chain's length = the root) is not yet valid.
    #[error("certificate {0} of the attestation chain is not yet valid")]
    NotYetValid(usize),
    /// A certificate (0 = leaf; the chain's length = the root) has expired.
    #[error("certificate {0} of the attestation chain has expired")]
    Expired(usize),
    /// A certificate's signature (0 = leaf) does not verify under the next certificate's key.
    #[error("certificate {0} of the attestation chain is not signed by the next certificate")]
    BadSignature(usize),
    /// The last certificate is not signed by any configured attestation root.
    #[error("the attestation chain does not lead to a configured attestation root")]
    UntrustedChain,
    /// The leaf certifies a different key from the one being attested.
    #[error("the attestation is for a different public key")]
    KeyMismatch,
    /// A required Yubico extension is absent from the leaf.
    #[error("the attestation lacks the YubiKey {0} extension")]
    MissingExtension(&'static str),
    /// A Yubico extension is repeated or its value has the wrong form.
    #[error("the attestation's YubiKey {0} extension is malformed")]
    MalformedExtension(&'static str),
}

/// When the device asks for the PIN before using the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinPolicy {
    /// Never.
    Never,
    /// Once per session.
    Once,
    /// Before every use.
    Always,
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Once => "once",
            Self::Always => "always",
        })
    }
}

/// When the device asks for a touch before using the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchPolicy {
    /// Never.
    Never,
    /// Before every use.
    Always,
    /// Once, then not again for 15 seconds.
    Cached,
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Always => "always",
            Self::Cached => "cached",
        })
    }
}

/// Operator-configured trust anchors for attestation (Yubico's PIV roots).
#[derive(Debug, Clone, Default)]
pub struct AttestationRoots {
    roots: Vec<Vec<u8>>,
}

impl AttestationRoots {
    /// Reads a PEM bundle of root certificates. An empty bundle is allowed and trusts nothing.
    pub fn from_pem(bundle: &str) -> Result<Self, AttestationError> {
        let pems = pem::parse_many(bundle).map_err(|e| AttestationError::BadRoots(e.to_string()))?;
        let mut roots = Vec::with_capacity(pems.len());
        for (n, p) in pems.into_iter().enumerate() {
            if p.tag() != "CERTIFICATE" {
                return Err(AttestationError::BadRoots(format!("entry {} is a {}, not a CERTIFICATE", n + 1, p.tag())));
            }
            if parse(p.contents()).is_none() {
                return Err(AttestationError::BadRoots(format!("entry {} is not an X.509 certificate", n + 1)));
            }
            roots.push(p.into_contents());
        }
        Ok(Self { roots })
    }

    /// Whether no root is configured, so no attestation can verify.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// What a verified attestation says about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    /// The YubiKey's serial number.
    pub serial: u64,
    /// Firmware version (major, minor, patch).
    pub firmware: (u8, u8, u8),
    /// PIN policy of the key.
    pub pin_policy: PinPolicy,
    /// Touch policy of the key.
    pub touch_policy: TouchPolicy,
    /// The PIV slot ("9a"), from the leaf's common name when it has Yubico's form.
    pub slot: Option<String>,
    /// Yubico's form factor byte, when the device reports one.
    pub form_factor: Option<u8>,
}

/// Verifies that `attested_spki` (DER SubjectPublicKeyInfo) was generated on a YubiKey.
///
/// `chain` is DER, leaf first, then the f9 device certificate, then any further Yubico
/// intermediates; the root comes from `roots`. Every certificate, the root included, must be
/// valid at `now`.
pub fn verify(
    roots: &AttestationRoots,
    chain: &[Vec<u8>],
    attested_spki: &[u8],
    now: time::OffsetDateTime,
) -> Result<VerifiedAttestation, AttestationError> {
    if chain.is_empty() {
        return Err(AttestationError::EmptyChain);
    }
    if chain.len() > MAX_CHAIN {
        return Err(AttestationError::ChainTooLong(chain.len()));
    }
    let certs = chain
        .iter()
        .enumerate()
        .map(|(n, der)| parse(der).ok_or(AttestationError::Malformed(n)))
        .collect::<Result<Vec<_>, _>>()?;
    let now = ASN1Time::from(now);

    for (n, cert) in certs.iter().enumerate() {
        check_validity(cert, now, n)?;
        if let Some(issuer) = certs.get(n + 1) {
            cert.verify_signature(Some(issuer.public_key())).map_err(|_| AttestationError::BadSignature(n))?;
        }
    }
    let last = certs.last().ok_or(AttestationError::EmptyChain)?;
    // The names pick the candidates and the signature decides. Roots are re-issued with the
    // same name and key, so an expired match must not hide a valid one.
    let mut anchored = Err(AttestationError::UntrustedChain);
    for root in roots.roots.iter().filter_map(|der| parse(der)) {
        if root.subject().as_raw() == last.issuer().as_raw() && last.verify_signature(Some(root.public_key())).is_ok() {
            anchored = check_validity(&root, now, certs.len());
            if anchored.is_ok() {
                break;
            }
        }
    }
    anchored?;

    let leaf = certs.first().ok_or(AttestationError::EmptyChain)?;
    if leaf.public_key().raw != attested_spki {
        return Err(AttestationError::KeyMismatch);
    }
    let firmware = parse_firmware(required(leaf, OID_FIRMWARE, "firmware version")?)?;
    let serial = parse_serial(required(leaf, OID_SERIAL, "serial number")?)?;
    let (pin_policy, touch_policy) = parse_policy(required(leaf, OID_POLICY, "PIN and touch policy")?)?;
    let form_factor = match extension(leaf, OID_FORM_FACTOR, "form factor")? {
        None => None,
        Some([f]) => Some(*f),
        Some(_) => return Err(AttestationError::MalformedExtension("form factor")),
    };
    Ok(VerifiedAttestation { serial, firmware, pin_policy, touch_policy, slot: slot(leaf), form_factor })
}

/// A whole DER certificate, nothing trailing.
fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Some(cert),
        _ => None,
    }
}

fn check_validity(cert: &X509Certificate<'_>, now: ASN1Time, position: usize) -> Result<(), AttestationError> {
    let validity = cert.validity();
    if now < validity.not_before {
        Err(AttestationError::NotYetValid(position))
    } else if now > validity.not_after {
        Err(AttestationError::Expired(position))
    } else {
        Ok(())
    }
}

/// The value of the extension `oid`, refusing duplicates: with two values we could not tell
/// which one the device meant.
fn extension<'a>(
    cert: &X509Certificate<'a>,
    oid: &str,
    name: &'static str,
) -> Result<Option<&'a [u8]>, AttestationError> {
    let mut matches = cert.extensions().iter().filter(|e| e.oid.to_id_string() == oid);
    let first = matches.next().map(|e| e.value);
    if matches.next().is_some() {
        return Err(AttestationError::MalformedExtension(name));
    }
    Ok(first)
}

fn required<'a>(cert: &X509Certificate<'a>, oid: &str, name: &'static str) -> Result<&'a [u8], AttestationError> {
    extension(cert, oid, name)?.ok_or(AttestationError::MissingExtension(name))
}

// Yubico documents three raw bytes; an inner OCTET STRING is accepted as well, since that is
// how a generic tool would encode "an OCTET STRING of 3 bytes".
fn parse_firmware(value: &[u8]) -> Result<(u8, u8, u8), AttestationError> {
    match value {
        [major, minor, patch] | [0x04, 0x03, major, minor, patch] => Ok((*major, *minor, *patch)),
        _ => Err(AttestationError::MalformedExtension("firmware version")),
    }
}

fn parse_serial(value: &[u8]) -> Result<u64, AttestationError> {
    match u64::from_der(value) {
        Ok(([], serial)) => Ok(serial),
        _ => Err(AttestationError::MalformedExtension("serial number")),
    }
}

// Values outside the documented ones (such as the YubiKey Bio's match policies) are refused
// rather than guessed at: the CA's decision depends on them.
fn parse_policy(value: &[u8]) -> Result<(PinPolicy, TouchPolicy), AttestationError> {
    let malformed = AttestationError::MalformedExtension("PIN and touch policy");
    let [pin, touch] = value else { return Err(malformed) };
    let pin = match pin {
        1 => PinPolicy::Never,
        2 => PinPolicy::Once,
        3 => PinPolicy::Always,
        _ => return Err(malformed),
    };
    let touch = match touch {
        1 => TouchPolicy::Never,
        2 => TouchPolicy::Always,
        3 => TouchPolicy::Cached,
        _ => return Err(malformed),
    };
    Ok((pin, touch))
}

/// "9a" from "CN=YubiKey PIV Attestation 9a".
fn slot(leaf: &X509Certificate<'_>) -> Option<String> {
    let cn = leaf.subject().iter_common_name().next()?.as_str().ok()?;
    let slot = cn.strip_prefix(SLOT_CN_PREFIX)?;
    (slot.len() == 2 && slot.bytes().all(|b| b.is_ascii_hexdigit())).then(|| slot.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_raw_or_wrapped() {
        assert_eq!(parse_firmware(&[5, 7, 4]), Ok((5, 7, 4)));
        assert_eq!(parse_firmware(&[0x04, 0x03, 5, 4, 3]), Ok((5, 4, 3)));
        for bad in [&[][..], &[5, 7], &[5, 7, 4, 1], &[0x04, 0x02, 5, 7, 4], &[0x04, 0x03, 5, 7]] {
            assert_eq!(parse_firmware(bad), Err(AttestationError::MalformedExtension("firmware version")), "{bad:?}");
        }
    }

    #[test]
    fn serial_is_a_non_negative_der_integer() {
        assert_eq!(parse_serial(&[0x02, 0x04, 0x01, 0x31, 0x2d, 0x00]), Ok(20_000_000));
        assert_eq!(parse_serial(&[0x02, 0x01, 0x00]), Ok(0));
        let malformed = Err(AttestationError::MalformedExtension("serial number"));
        assert_eq!(parse_serial(&[0x02, 0x01, 0xff]), malformed, "negative");
        assert_eq!(parse_serial(&[0x02, 0x04, 0x01, 0x31, 0x2d]), malformed, "truncated");
        assert_eq!(parse_serial(&[0x02, 0x01, 0x01, 0x00]), malformed, "trailing byte");
        assert_eq!(parse_serial(&[0x04, 0x01, 0x01]), malformed, "not an INTEGER");
        assert_eq!(parse_serial(&[0x02, 0x0a, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), malformed, "too large");
        assert_eq!(parse_serial(&[]), malformed);
    }

    #[test]
    fn policies() {
        assert_eq!(parse_policy(&[1, 1]), Ok((PinPolicy::Never, TouchPolicy::Never)));
        assert_eq!(parse_policy(&[2, 3]), Ok((PinPolicy::Once, TouchPolicy::Cached)));
        assert_eq!(parse_policy(&[3, 2]), Ok((PinPolicy::Always, TouchPolicy::Always)));
        for bad in [&[][..], &[2], &[2, 2, 2], &[0, 2], &[4, 2], &[2, 0], &[2, 4]] {
            assert_eq!(parse_policy(bad), Err(AttestationError::MalformedExtension("PIN and touch policy")), "{bad:?}");
        }
        assert_eq!(format!("{} {}", PinPolicy::Once, TouchPolicy::Cached), "once cached");
    }

    #[test]
    fn roots_bundle() {
        assert!(AttestationRoots::from_pem("").unwrap().is_empty());
        let key = rcgen::generate_simple_self_signed(vec!["root.example".into()]).unwrap();
        let roots = AttestationRoots::from_pem(&key.cert.pem()).unwrap();
        assert!(!roots.is_empty());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(AttestationRoots::from_pem(garbage), Err(AttestationError::BadRoots(_))));
        let key_pem = key.signing_key.serialize_pem();
        assert!(matches!(AttestationRoots::from_pem(&key_pem), Err(AttestationError::BadRoots(_))));
    }

    // `verify` takes bytes from the network: no input may make it panic.
    #[test]
    fn garbage_chains_are_refused_without_panicking() {
        let key = rcgen::generate_simple_self_signed(vec!["root.example".into()]).unwrap();
        let der = key.cert.der().to_vec();
        let roots = AttestationRoots::from_pem(&key.cert.pem()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        assert_eq!(verify(&roots, &[], &[], now), Err(AttestationError::EmptyChain));
        assert_eq!(verify(&roots, &vec![der.clone(); 6], &[], now), Err(AttestationError::ChainTooLong(6)));
        for len in 0..der.len() {
            let truncated = der.get(..len).unwrap_or_default().to_vec();
            assert_eq!(verify(&roots, std::slice::from_ref(&truncated), &[], now), Err(AttestationError::Malformed(0)));
            assert_eq!(verify(&roots, &[der.clone(), truncated], &[], now), Err(AttestationError::Malformed(1)));
        }
        let mut flipped = der.clone();
        for i in 0..flipped.len() {
            if let Some(b) = flipped.get_mut(i) {
                *b ^= 0x55;
            }
            assert!(verify(&roots, &[flipped.clone()], &[0xff; 3], now).is_err());
            if let Some(b) = flipped.get_mut(i) {
                *b ^= 0x55;
            }
        }
        // A self-signed certificate that is its own root, but not from a YubiKey.
        let spki = parse(&der).unwrap().public_key().raw.to_vec();
        assert_eq!(verify(&roots, &[der], &spki, now), Err(AttestationError::MissingExtension("firmware version")));
    }
}
