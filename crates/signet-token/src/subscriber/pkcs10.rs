//! The subscriber's token: PKCS#10.

use super::*;

/// id-at-commonName (RFC 4519 §2.3).
pub(super) const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
/// sha256WithRSAEncryption (RFC 4055 §5).
pub(super) const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// ecdsa-with-SHA256 (RFC 5758 §3.2).
pub(super) const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384 (RFC 5758 §3.2).
pub(super) const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// RFC 5280 §4.1.2.4: one AttributeTypeAndValue of a Name.
#[derive(Sequence, ValueOrd)]
pub(super) struct AttributeTypeAndValue<'a> {
    oid: ObjectIdentifier,
    value: Utf8StringRef<'a>,
}

/// RFC 2986 §4.1: CertificationRequestInfo.
#[derive(Sequence)]
pub(super) struct CertificationRequestInfo<'a> {
    version: u8,
    subject: AnyRef<'a>,
    subject_pk_info: AnyRef<'a>,
    /// `[0] IMPLICIT SET OF Attribute`, here empty: extensions come from the CA's profile.
    attributes: AnyRef<'a>,
}

/// RFC 2986 §4.2: CertificationRequest.
#[derive(Sequence)]
pub(super) struct CertificationRequest<'a> {
    info: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifier<'a>,
    signature: BitStringRef<'a>,
}

/// A DER PKCS#10 request for `signer`'s key with subject `CN=<common_name>`, signed by it.
/// Any [`Signer`] works; retrieval passes the token key's.
pub fn certification_request(signer: &dyn Signer, common_name: &str) -> Result<Vec<u8>, TokenError> {
    let encoding = |e: der::Error| TokenError::Device(format!("cannot encode the certificate request: {e}"));
    let atv = AttributeTypeAndValue { oid: COMMON_NAME, value: Utf8StringRef::new(common_name).map_err(encoding)? };
    let subject = vec![SetOfVec::try_from(vec![atv]).map_err(encoding)?].to_der().map_err(encoding)?;
    let info = CertificationRequestInfo {
        version: 0,
        subject: AnyRef::from_der(&subject).map_err(encoding)?,
        subject_pk_info: AnyRef::from_der(signer.public_key_spki()).map_err(encoding)?,
        attributes: AnyRef::from_der(&[0xa0, 0x00]).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)?;
    let signature = signer.sign(&info).map_err(|e| TokenError::Device(e.to_string()))?;
    let null = Null.into();
    let signature_algorithm = match signer.algorithm() {
        // RFC 4055 §5: the parameters are NULL for the RSA PKCS#1 v1.5 signatures.
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 => {
            AlgorithmIdentifier { algorithm: SHA256_WITH_RSA, parameters: Some(null) }
        }
        // RFC 5758 §3.2: and absent for ECDSA.
        KeyAlgorithm::P256 => AlgorithmIdentifier { algorithm: ECDSA_WITH_SHA256, parameters: None },
        KeyAlgorithm::P384 => AlgorithmIdentifier { algorithm: ECDSA_WITH_SHA384, parameters: None },
    };
    CertificationRequest {
        info: AnyRef::from_der(&info).map_err(encoding)?,
        signature_algorithm,
        signature: BitStringRef::from_bytes(&signature).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)
}

#[cfg(test)]
mod tests {
    use signet_pki::SoftwareSigner;
    use signet_pki::csr::{SubscriberKey, VerifiedCsr};

    use super::*;

    #[test]
    fn requests_pass_the_cas_proof_of_possession_check() {
        for (alg, expected) in [
            (KeyAlgorithm::Rsa2048, SubscriberKey::Rsa { bits: 2048 }),
            (KeyAlgorithm::P256, SubscriberKey::P256),
            (KeyAlgorithm::P384, SubscriberKey::P384),
        ] {
            let signer = SoftwareSigner::generate(alg).unwrap();
            let der = certification_request(&signer, "ECA identity 0123456789AB").unwrap();
            let csr = VerifiedCsr::parse(&der).unwrap();
            assert_eq!(csr.key(), expected, "{alg}");
            assert_eq!(csr.spki(), signer.public_key_spki(), "{alg}");
        }
    }

    #[test]
    fn a_request_signed_by_another_key_fails_proof_of_possession() {
        let signer = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let other = SoftwareSigner::generate(KeyAlgorithm::P256).unwrap();
        let mut der = certification_request(&signer, "x").unwrap();
        // P-256 SPKIs have one length: swap in the other key's public key.
        let (mine, theirs) = (signer.public_key_spki(), other.public_key_spki());
        let at = der.windows(mine.len()).position(|w| w == mine).unwrap();
        der[at..at + mine.len()].copy_from_slice(theirs);
        assert_eq!(VerifiedCsr::parse(&der).unwrap_err(), signet_pki::csr::CsrError::BadSignature);
    }
}
