//! Certificates-only bundles (`.p7c`): the degenerate CMS SignedData of RFC 8551 §3.2.2 — no
//! content, no signers, only certificates — which mail clients import and `openssl pkcs7`
//! reads, so a sender gets a recipient's certificate and its chain in one file.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, SetOfVec};
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::escrow::DATA;

/// id-signedData (RFC 5652 §5.1).
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// One of the certificates given is not a DER X.509 certificate.
    #[error("certificate {index} of the bundle is not a DER X.509 certificate")]
    BadCertificate {
        /// Its place in the list, from 0.
        index: usize,
    },
    /// The same certificate was given twice (a SET OF holds each element once).
    #[error("certificate {index} of the bundle repeats an earlier one")]
    Repeated {
        /// Its place in the list, from 0.
        index: usize,
    },
    /// The DER encoder refused the structure.
    #[error("the bundle could not be encoded: {0}")]
    Encode(String),
}

/// The DER `.p7c` holding `certificates` (the subscriber's first, then its chain). A SET OF
/// is encoded sorted, so readers see them in DER order, not in the order given.
pub fn certs_only(certificates: &[&[u8]]) -> Result<Vec<u8>, BundleError> {
    let mut set = SetOfVec::new();
    for (index, der) in certificates.iter().enumerate() {
        let cert = Certificate::from_der(der).map_err(|_| BundleError::BadCertificate { index })?;
        set.insert(CertificateChoices::Certificate(cert)).map_err(|_| BundleError::Repeated { index })?;
    }
    let encode = |e: der::Error| BundleError::Encode(e.to_string());
    // Version 1: no signers, no attribute certificates, and id-data as the (absent) content's
    // type (RFC 5652 §5.1).
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo { econtent_type: DATA, econtent: None },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&signed).map_err(encode)? };
    info.to_der().map_err(encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn holds_every_certificate_given_and_nothing_else() {
        let (a, b) = (certificate("a.example"), certificate("b.example"));
        let bundle = certs_only(&[&a, &b]).unwrap();
        let info = ContentInfo::from_der(&bundle).unwrap();
        assert_eq!(info.content_type, SIGNED_DATA);
        let signed: SignedData = info.content.decode_as().unwrap();
        assert!(signed.signer_infos.0.is_empty() && signed.digest_algorithms.is_empty());
        assert!(signed.encap_content_info.econtent.is_none());
        let mut held: Vec<Vec<u8>> = signed
            .certificates
            .unwrap()
            .0
            .iter()
            .map(|c| match c {
                CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                CertificateChoices::Other(_) => panic!("only certificates"),
            })
            .collect();
        held.sort();
        let mut given = vec![a.clone(), b];
        given.sort();
        assert_eq!(held, given);

        assert_eq!(certs_only(&[&a, b"not a certificate"]), Err(BundleError::BadCertificate { index: 1 }));
        assert_eq!(certs_only(&[&a, &a]), Err(BundleError::Repeated { index: 1 }));
    }
}
