//! The messages the benchmark sends and reads besides plain pages: PKCS#10 requests from fresh
//! P-256 keys (rcgen), OCSP requests in RFC 5019 GET paths, and the status of OCSP responses.
//! The unit tests check them against Signet's own parsers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::BoxError;

/// A PKCS#10 request for a fresh P-256 key. Every issuance needs its own key, because the
/// store refuses to certify a key twice.
pub(super) fn p256_csr(common_name: &str) -> Result<Vec<u8>, BoxError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    // Only the CN: rcgen's default name is a placeholder CN of its own.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    Ok(params.serialize_request(&key)?.der().to_vec())
}

pub(super) fn fresh_csrs(count: usize) -> Result<Vec<Vec<u8>>, BoxError> {
    (0..count).map(|i| p256_csr(&format!("bench {i}"))).collect()
}

/// The responseStatus of a DER OCSPResponse (0 is successful), read without a full parse.
pub(super) fn ocsp_response_status(body: &[u8]) -> Option<u8> {
    if *body.first()? != 0x30 {
        return None;
    }
    let len_octet = *body.get(1)?;
    let header = if len_octet < 0x80 {
        2
    } else {
        let n = usize::from(len_octet & 0x7f);
        if !(1..=4).contains(&n) {
            return None;
        }
        2 + n
    };
    match body.get(header..header + 3)? {
        [0x0a, 0x01, status] => Some(*status),
        _ => None,
    }
}

/// RFC 5019 §5: the path of an OCSP GET is the request in standard base64 (RFC 4648 §4),
/// URL-encoded, since `+`, `/` and `=` are not plain path characters.
pub(super) fn ocsp_get_path(request_der: &[u8]) -> String {
    let b64 = BASE64.encode(request_der);
    format!("/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_pki::csr::{SubscriberKey, VerifiedCsr};

    #[test]
    fn ocsp_response_status_is_read_from_the_der() {
        assert_eq!(
            ocsp_response_status(&signet_pki::ocsp::error_response(signet_pki::ocsp::ErrorStatus::Unauthorized)),
            Some(6)
        );
        let mut long = vec![0x30, 0x82, 0x01, 0x00, 0x0a, 0x01, 0x00];
        long.resize(4 + 0x100, 0);
        assert_eq!(ocsp_response_status(&long), Some(0));
        assert_eq!(ocsp_response_status(b"ok"), None);
        assert_eq!(ocsp_response_status(&[0x30, 0x85, 0, 0, 0, 0, 0]), None);
        assert_eq!(ocsp_response_status(&[]), None);
    }

    #[test]
    fn ocsp_get_paths_are_url_encoded_base64() {
        assert_eq!(ocsp_get_path(b"foobar"), "/ocsp/Zm9vYmFy");
        assert_eq!(ocsp_get_path(b"foob"), "/ocsp/Zm9vYg%3D%3D");
        assert_eq!(ocsp_get_path(&[0xfb, 0xff]), "/ocsp/%2B%2F8%3D");
    }

    #[test]
    fn csrs_verify_with_signets_parser() {
        let a = VerifiedCsr::parse(&p256_csr("bench 1").unwrap()).unwrap();
        let b = VerifiedCsr::parse(&p256_csr("bench 2").unwrap()).unwrap();
        assert_eq!(a.key(), SubscriberKey::P256);
        assert_ne!(a.spki(), b.spki(), "each CSR needs its own key");
    }
}
