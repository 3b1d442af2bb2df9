//! Certificate signing requests and the subscriber key policy.
//!
//! A CSR is accepted only after its self-signature verifies (proof of possession of the
//! private key) and its public key passes [`KeyPolicy`]: RSA of at least 2048 bits with a
//! sane exponent and no small factors, or ECDSA on P-256/P-384 (DESIGN §2), and not on the
//! operator's blocklist. Duplicate keys are refused by the store, which sees all keys.

use std::collections::HashSet;

use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrError {
    /// Neither PEM ("CERTIFICATE REQUEST") nor DER PKCS#10.
    #[error("the CSR is not a PEM or DER PKCS#10 certification request")]
    Malformed,
    /// The self-signature does not verify, so possession of the key is not proven.
    #[error("the CSR signature does not verify (proof of possession failed)")]
    BadSignature,
    /// RSA modulus shorter than 2048 bits (or longer than 8192).
    #[error("RSA key of {0} bits is not allowed (2048 to 8192 bits)")]
    RsaSize(usize),
    /// RSA public exponent even or outside 65537..2^256.
    #[error("RSA public exponent is not allowed (must be odd and at least 65537)")]
    RsaExponent,
    /// RSA modulus divisible by a small prime: a broken key generator.
    #[error("RSA modulus has a small prime factor")]
    RsaSmallFactor,
    /// EC key on a curve other than P-256 or P-384.
    #[error("elliptic curve {0} is not allowed (P-256 or P-384)")]
    Curve(String),
    /// EC point not on the curve, or compressed.
    #[error("EC public key is not a valid uncompressed point")]
    BadPoint,
    /// Neither RSA nor EC.
    #[error("public key algorithm {0} is not allowed")]
    Algorithm(String),
    /// The key is on the operator's blocklist of known-compromised keys.
    #[error("this public key is known to be compromised and cannot be certified")]
    Blocked,
}

/// The subscriber key's type, as the policy saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberKey {
    /// RSA with this modulus size.
    Rsa {
        /// Modulus bits.
        bits: usize,
    },
    /// ECDSA on NIST P-256.
    P256,
    /// ECDSA on NIST P-384.
    P384,
}

/// A CSR whose proof of possession verified. Only the public key is used: the subject and
/// extensions come from the RA's vetted data, never from the request.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    spki: Vec<u8>,
    key_bits: Vec<u8>,
    key: SubscriberKey,
}

impl VerifiedCsr {
    /// Parses PEM or DER and verifies the self-signature.
    pub fn parse(input: &[u8]) -> Result<Self, CsrError> {
        let der = match pem::parse(input) {
            Ok(p) if p.tag() == "CERTIFICATE REQUEST" || p.tag() == "NEW CERTIFICATE REQUEST" => p.into_contents(),
            Ok(_) => return Err(CsrError::Malformed),
            Err(_) => input.to_vec(),
        };
        let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|_| CsrError::Malformed)?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed);
        }
        let spki = &csr.certification_request_info.subject_pki;
        let key = classify(spki)?;
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
        Ok(Self { spki: spki.raw.to_vec(), key_bits: spki.subject_public_key.data.to_vec(), key })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The key type.
    pub fn key(&self) -> SubscriberKey {
        self.key
    }

    /// SHA-256 of the SubjectPublicKeyInfo: the key's identity for duplicate and blocklist
    /// checks.
    pub fn spki_sha256(&self) -> [u8; 32] {
        spki_sha256(&self.spki)
    }

    /// The subjectPublicKey bits (for the subject key identifier).
    pub fn subject_public_key(&self) -> &[u8] {
        &self.key_bits
    }
}

/// SHA-256 of a DER SubjectPublicKeyInfo.
pub fn spki_sha256(spki: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Verifies `signature` over `message` with the key of a DER SubjectPublicKeyInfo, as the
/// subscriber's signer makes it: RSA PKCS#1 v1.5 with SHA-256, ECDSA (DER) with SHA-256 on
/// P-256 and SHA-384 on P-384. Renewal uses it to check that the request comes from the
/// holder of the key being replaced; the key must still pass the key policy's shape checks.
pub fn verify_with_spki(spki: &[u8], message: &[u8], signature: &[u8]) -> Result<(), CsrError> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        VerificationAlgorithm,
    };
    let (rest, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).map_err(|_| CsrError::Malformed)?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed);
    }
    let alg: &'static dyn VerificationAlgorithm = match classify(&parsed)? {
        SubscriberKey::Rsa { .. } => &RSA_PKCS1_2048_8192_SHA256,
        SubscriberKey::P256 => &ECDSA_P256_SHA256_ASN1,
        SubscriberKey::P384 => &ECDSA_P384_SHA384_ASN1,
    };
    UnparsedPublicKey::new(alg, parsed.subject_public_key.data.as_ref())
        .verify(message, signature)
        .map_err(|_| CsrError::BadSignature)
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

fn classify(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<SubscriberKey, CsrError> {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => check_rsa(rsa.modulus, rsa.exponent),
            _ => Err(CsrError::Malformed),
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .ok_or(CsrError::Malformed)?;
            let (key, alg): (_, &'static dyn aws_lc_rs::signature::VerificationAlgorithm) = match curve.as_str() {
                OID_P256 => (SubscriberKey::P256, &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1),
                OID_P384 => (SubscriberKey::P384, &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1),
                other => return Err(CsrError::Curve(other.to_owned())),
            };
            let point = spki.subject_public_key.data.as_ref();
            // aws-lc-rs checks that the point is on the curve.
            if point.first() != Some(&4) || aws_lc_rs::signature::ParsedPublicKey::new(alg, spki.raw).is_err() {
                return Err(CsrError::BadPoint);
            }
            Ok(key)
        }
        other => Err(CsrError::Algorithm(other.to_owned())),
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

// Primes below 1000, as in Boulder's goodkey: a modulus divisible by one of them comes
// from a broken generator.
fn small_primes() -> impl Iterator<Item = u32> {
    (3u32..1000).filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
}

fn check_rsa(modulus: &[u8], exponent: &[u8]) -> Result<SubscriberKey, CsrError> {
    let n = strip_zeros(modulus);
    let bits = n.first().map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(CsrError::RsaSize(bits));
    }
    let e = strip_zeros(exponent);
    let e_ok = match e.len() {
        0 => false,
        1..=3 => {
            let v = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            v >= 65537 && v % 2 == 1
        }
        4..=32 => e[e.len() - 1] % 2 == 1,
        _ => false,
    };
    if !e_ok {
        return Err(CsrError::RsaExponent);
    }
    if n[n.len() - 1].is_multiple_of(2) {
        return Err(CsrError::RsaSmallFactor);
    }
    for p in small_primes() {
        let rem = n.iter().fold(0u32, |acc, b| ((acc << 8) | u32::from(*b)) % p);
        if rem == 0 {
            return Err(CsrError::RsaSmallFactor);
        }
    }
    Ok(SubscriberKey::Rsa { bits })
}

/// The operator's key policy beyond the built-in checks: a blocklist of SHA-256 hashes of
/// SubjectPublicKeyInfos known to be compromised.
#[derive(Debug, Clone, Default)]
pub struct KeyPolicy {
    blocked: HashSet<[u8; 32]>,
}

impl KeyPolicy {
    /// Reads a blocklist: one hex SHA-256 of an SPKI per line, `#` comments allowed.
    pub fn from_blocklist(text: &str) -> Result<Self, String> {
        let mut blocked = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let hash: [u8; 32] = hex::decode(line)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| format!("blocklist line {}: not a hex SHA-256", n + 1))?;
            blocked.insert(hash);
        }
        Ok(Self { blocked })
    }

    /// Checks a verified CSR's key against the blocklist.
    pub fn check(&self, csr: &VerifiedCsr) -> Result<(), CsrError> {
        if self.blocked.contains(&csr.spki_sha256()) {
            return Err(CsrError::Blocked);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_primes_start_right() {
        let p: Vec<u32> = small_primes().take(5).collect();
        assert_eq!(p, [3, 5, 7, 11, 13]);
        assert_eq!(small_primes().count(), 167);
    }

    #[test]
    fn rsa_checks() {
        let mut n = vec![0xc5; 256];
        n[255] = 0x01; // odd
        // Make it not divisible by 3..997 is unlikely by hand; check size and exponent paths.
        assert_eq!(check_rsa(&n[..128], &[1, 0, 1]), Err(CsrError::RsaSize(1024)));
        assert_eq!(check_rsa(&n, &[3]), Err(CsrError::RsaExponent));
        assert_eq!(check_rsa(&n, &[1, 0, 0]), Err(CsrError::RsaExponent));
        let mut even = n.clone();
        even[255] = 0x02;
        assert_eq!(check_rsa(&even, &[1, 0, 1]), Err(CsrError::RsaSmallFactor));
    }

    #[test]
    fn signatures_verify_only_with_their_key_and_message() {
        use crate::{KeyAlgorithm, Signer, SoftwareSigner};
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let signer = SoftwareSigner::generate(alg).unwrap();
            let other = SoftwareSigner::generate(alg).unwrap();
            let signature = signer.sign(b"renew me").unwrap();
            assert_eq!(verify_with_spki(signer.public_key_spki(), b"renew me", &signature), Ok(()), "{alg}");
            let wrong = Err(CsrError::BadSignature);
            assert_eq!(verify_with_spki(signer.public_key_spki(), b"renew you", &signature), wrong, "{alg}");
            assert_eq!(verify_with_spki(other.public_key_spki(), b"renew me", &signature), wrong, "{alg}");
        }
        assert_eq!(verify_with_spki(b"garbage", b"m", b"s"), Err(CsrError::Malformed));
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(VerifiedCsr::parse(b"not a csr").unwrap_err(), CsrError::Malformed);
        assert_eq!(
            VerifiedCsr::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err(),
            CsrError::Malformed
        );
    }

    #[test]
    fn blocklist_parsing() {
        assert!(KeyPolicy::from_blocklist("# none\n\n").is_ok());
        assert!(KeyPolicy::from_blocklist("abc").is_err());
    }
}
