//! The DER a PKCS#11 token does not give us: SubjectPublicKeyInfo from the public key's
//! attributes, the curve OIDs for `CKA_EC_PARAMS`, and X.509's ECDSA-Sig-Value from
//! `CKM_ECDSA`'s raw `r || s`.

use der::asn1::{AnyRef, BitStringRef, Null, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use signet_pki::KeyAlgorithm;

/// rsaEncryption (RFC 8017 appendix A.1).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480 §2.1.1.1).
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// RFC 5280 §4.1: AlgorithmIdentifier.
#[derive(Sequence)]
pub(crate) struct AlgorithmIdentifier<'a> {
    pub(crate) algorithm: ObjectIdentifier,
    pub(crate) parameters: Option<AnyRef<'a>>,
}

/// RFC 5280 §4.1: SubjectPublicKeyInfo.
#[derive(Sequence)]
struct SubjectPublicKeyInfo<'a> {
    algorithm: AlgorithmIdentifier<'a>,
    subject_public_key: BitStringRef<'a>,
}

/// RFC 8017 appendix A.1.1: RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// RFC 5480 §2.2.3 (and RFC 3279): ECDSA-Sig-Value.
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Why the token's public key could not be turned into a SubjectPublicKeyInfo.
#[derive(Debug)]
pub(crate) enum PublicKeyError {
    /// A key type or size outside DESIGN §2's list.
    Unsupported(String),
    /// The attribute bytes are not what PKCS#11 says they are.
    Malformed(String),
}

/// The `CKA_EC_PARAMS` value (a DER namedCurve OID) for an EC algorithm; `None` for RSA.
pub(crate) fn ec_params(algorithm: KeyAlgorithm) -> Option<Vec<u8>> {
    let oid = match algorithm {
        KeyAlgorithm::P256 => SECP256R1,
        KeyAlgorithm::P384 => SECP384R1,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => return None,
    };
    // Encoding an OID into a Vec cannot fail.
    oid.to_der().ok()
}

/// Builds the SPKI of an RSA key from `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT` (big-endian
/// unsigned integers) and names its algorithm from the modulus size.
pub(crate) fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), PublicKeyError> {
    let malformed = |e: der::Error| PublicKeyError::Malformed(format!("RSA public key: {e}"));
    let bits = bit_length(modulus);
    let algorithm = match bits {
        2048 => KeyAlgorithm::Rsa2048,
        3072 => KeyAlgorithm::Rsa3072,
        _ => {
            return Err(PublicKeyError::Unsupported(format!("RSA-{bits} (use RSA-2048 or RSA-3072)")));
        }
    };
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(malformed)?,
        public_exponent: UintRef::new(exponent).map_err(malformed)?,
    }
    .to_der()
    .map_err(malformed)?;
    // RFC 3279 §2.3.1: the parameters field MUST be NULL for rsaEncryption.
    let spki = spki(RSA_ENCRYPTION, Some(Null.into()), &key).map_err(malformed)?;
    Ok((algorithm, spki))
}

/// Builds the SPKI of an EC key from `CKA_EC_PARAMS` (a DER namedCurve OID) and
/// `CKA_EC_POINT`, and names its algorithm from the curve.
///
/// PKCS#11 says `CKA_EC_POINT` is the DER encoding of an OCTET STRING holding the
/// uncompressed point (SoftHSM, OpenSC, YubiKey); a few modules return the bare point,
/// so that is accepted too.
pub(crate) fn ec_spki(params: &[u8], ec_point: &[u8]) -> Result<(KeyAlgorithm, Vec<u8>), PublicKeyError> {
    let malformed = |e: der::Error| PublicKeyError::Malformed(format!("EC public key: {e}"));
    let curve = ObjectIdentifier::from_der(params)
        .map_err(|_| PublicKeyError::Unsupported("an EC key whose parameters are not a named curve".into()))?;
    let (algorithm, field_len) = match curve {
        SECP256R1 => (KeyAlgorithm::P256, 32),
        SECP384R1 => (KeyAlgorithm::P384, 48),
        other => {
            return Err(PublicKeyError::Unsupported(format!("EC curve {other} (use P-256 or P-384)")));
        }
    };
    let is_uncompressed = |p: &[u8]| p.len() == 1 + 2 * field_len && p[0] == 0x04;
    let point = match OctetStringRef::from_der(ec_point) {
        Ok(inner) if is_uncompressed(inner.as_bytes()) => inner.as_bytes(),
        _ if is_uncompressed(ec_point) => ec_point,
        _ => {
            return Err(PublicKeyError::Malformed(format!(
                "CKA_EC_POINT is not an uncompressed {algorithm} point ({} bytes)",
                ec_point.len()
            )));
        }
    };
    let spki = spki(EC_PUBLIC_KEY, Some((&curve).into()), point).map_err(malformed)?;
    Ok((algorithm, spki))
}

fn spki(algorithm: ObjectIdentifier, parameters: Option<AnyRef<'_>>, key: &[u8]) -> der::Result<Vec<u8>> {
    SubjectPublicKeyInfo {
        algorithm: AlgorithmIdentifier { algorithm, parameters },
        subject_public_key: BitStringRef::from_bytes(key)?,
    }
    .to_der()
}

/// Converts `CKM_ECDSA`'s output (PKCS#11 §2.3.1: `r || s`, each as long as the curve's
/// order) to the DER ECDSA-Sig-Value that X.509 carries (RFC 5480 §2.2.3), with both
/// integers minimally encoded and positive.
pub(crate) fn ecdsa_raw_to_der(algorithm: KeyAlgorithm, raw: &[u8]) -> Result<Vec<u8>, String> {
    let field_len = match algorithm {
        KeyAlgorithm::P256 => 32,
        KeyAlgorithm::P384 => 48,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
            return Err(format!("{algorithm} signatures are not ECDSA"));
        }
    };
    if raw.len() != 2 * field_len {
        return Err(format!("CKM_ECDSA returned {} bytes, expected {} for {algorithm}", raw.len(), 2 * field_len));
    }
    let (r, s) = raw.split_at(field_len);
    let sig = EcdsaSigValue {
        r: UintRef::new(r).map_err(|e| e.to_string())?,
        s: UintRef::new(s).map_err(|e| e.to_string())?,
    };
    sig.to_der().map_err(|e| e.to_string())
}

/// The number of significant bits of a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_pki::{SoftwareSigner, signer::Signer};

    /// Splits a DER SPKI back into (algorithm OID, parameters DER, key bytes).
    fn parse_spki(der: &[u8]) -> (ObjectIdentifier, Option<Vec<u8>>, Vec<u8>) {
        let spki = SubjectPublicKeyInfo::from_der(der).unwrap();
        let params = spki.algorithm.parameters.map(|p| p.to_der().unwrap());
        let key = spki.subject_public_key.as_bytes().unwrap().to_vec();
        (spki.algorithm.algorithm, params, key)
    }

    #[test]
    fn rsa_spki_is_byte_identical_to_aws_lc() {
        for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa3072] {
            let reference = SoftwareSigner::generate(alg).unwrap();
            let (_, _, key) = parse_spki(reference.public_key_spki());
            let rsa = RsaPublicKey::from_der(&key).unwrap();
            // What a token returns: unsigned big-endian, no sign byte.
            let (got_alg, spki) = rsa_spki(rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes()).unwrap();
            assert_eq!(got_alg, alg);
            assert_eq!(spki, reference.public_key_spki(), "{alg}");
        }
    }

    #[test]
    fn ec_spki_is_byte_identical_to_aws_lc_for_wrapped_and_bare_points() {
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let reference = SoftwareSigner::generate(alg).unwrap();
            let (_, _, point) = parse_spki(reference.public_key_spki());
            let params = ec_params(alg).unwrap();
            let wrapped = OctetStringRef::new(&point).unwrap().to_der().unwrap();
            for ec_point in [&wrapped, &point] {
                let (got_alg, spki) = ec_spki(&params, ec_point).unwrap();
                assert_eq!(got_alg, alg);
                assert_eq!(spki, reference.public_key_spki(), "{alg}");
            }
        }
    }

    #[test]
    fn curve_oids_are_the_rfc_5480_encodings() {
        assert_eq!(
            ec_params(KeyAlgorithm::P256).unwrap(),
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        );
        assert_eq!(ec_params(KeyAlgorithm::P384).unwrap(), [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
        assert_eq!(ec_params(KeyAlgorithm::Rsa2048), None);
    }

    #[test]
    fn rsa_1024_and_odd_sizes_are_unsupported() {
        let mut modulus = vec![0xff; 128];
        assert!(
            matches!(rsa_spki(&modulus, &[1, 0, 1]), Err(PublicKeyError::Unsupported(m)) if m.contains("RSA-1024"))
        );
        // A 2047-bit modulus is not RSA-2048.
        modulus = vec![0xff; 256];
        modulus[0] = 0x7f;
        assert!(matches!(rsa_spki(&modulus, &[1, 0, 1]), Err(PublicKeyError::Unsupported(_))));
    }

    #[test]
    fn secp256k1_is_unsupported_and_a_compressed_point_is_malformed() {
        let k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10").to_der().unwrap();
        assert!(matches!(ec_spki(&k1, &[4; 65]), Err(PublicKeyError::Unsupported(_))));
        let params = ec_params(KeyAlgorithm::P256).unwrap();
        let compressed = OctetStringRef::new(&[2; 33]).unwrap().to_der().unwrap();
        assert!(matches!(ec_spki(&params, &compressed), Err(PublicKeyError::Malformed(_))));
    }

    #[test]
    fn ecdsa_signature_integers_are_minimal_and_positive() {
        // r has its high bit set (needs a 0x00 sign byte); s has leading zeros to strip.
        let mut raw = vec![0x80; 32];
        raw.extend_from_slice(&[0; 31]);
        raw.push(0x05);
        let der = ecdsa_raw_to_der(KeyAlgorithm::P256, &raw).unwrap();
        let mut expected = vec![0x30, 2 + 33 + 3, 0x02, 33, 0x00];
        expected.extend_from_slice(&[0x80; 32]);
        expected.extend_from_slice(&[0x02, 1, 0x05]);
        assert_eq!(der, expected);
    }

    #[test]
    fn ecdsa_signature_of_the_wrong_length_is_refused() {
        assert!(ecdsa_raw_to_der(KeyAlgorithm::P384, &[1; 64]).is_err());
        assert!(ecdsa_raw_to_der(KeyAlgorithm::Rsa2048, &[1; 64]).is_err());
    }

    #[test]
    fn bit_length_ignores_leading_zero_bytes() {
        assert_eq!(bit_length(&[0, 0, 0x01, 0]), 9);
        assert_eq!(bit_length(&[0x80]), 8);
        assert_eq!(bit_length(&[0, 0]), 0);
    }
}
