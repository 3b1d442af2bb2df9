//! An OCSP request as the responder handles it (`signet_authority` OCSP answers): parsed, each CertID
//! matched against the CA, and answered with a signed response echoing the nonce.
//!
//! Whatever the parser accepts must be answerable: a parsed request whose answer cannot be
//! signed would reach clients as internalError for a fault that is theirs.
#![no_main]

use std::sync::LazyLock;

use der::Decode;
use libfuzzer_sys::fuzz_target;
use signet_pki::ocsp::{
    CertStatus, ErrorStatus, MAX_NONCE_LEN, MAX_REQUEST_CERTS, OcspIssuer, SingleStatus, parse_request, sign_response,
};
use signet_pki::{KeyAlgorithm, RevocationReason, Serial, SoftwareSigner};
use time::OffsetDateTime;
use time::macros::datetime;

/// The throwaway CA that fuzz/make-seeds.sh made, which the seed requests name.
struct TestCa {
    issuer: OcspIssuer,
    signer: SoftwareSigner,
}

static CA: LazyLock<TestCa> = LazyLock::new(|| TestCa {
    issuer: OcspIssuer::new(include_bytes!("../fixtures/ocsp-ca.der")).expect("fixture CA certificate"),
    signer: SoftwareSigner::from_pkcs8(KeyAlgorithm::P256, include_bytes!("../fixtures/ocsp-ca.pk8"))
        .expect("fixture CA key"),
});

const NOW: OffsetDateTime = datetime!(2030-01-02 03:04:05 UTC);

fuzz_target!(|data: &[u8]| {
    let request = match parse_request(data) {
        Ok(r) => r,
        Err(e) => {
            // Every refusal of a request is the client's fault, never ours.
            assert_eq!(e.error_status(), ErrorStatus::MalformedRequest, "{e}");
            return;
        }
    };
    assert!((1..=MAX_REQUEST_CERTS).contains(&request.cert_ids.len()));
    if let Some(nonce) = &request.nonce {
        // 1 to 128 octets, raw or wrapped in an OCTET STRING's tag and length (at most 3 octets).
        assert!(!nonce.is_empty() && nonce.len() <= MAX_NONCE_LEN + 3, "nonce of {} octets", nonce.len());
    }

    let statuses: Vec<SingleStatus> = request
        .cert_ids
        .iter()
        .map(|id| {
            // Vouch only for our own certificates, as the responder does; the serial's last bit
            // picks good or revoked so both encodings are reached.
            let status = match (CA.issuer.issued(id), id.serial.as_bytes().last().map(|b| b & 1)) {
                (false, _) => CertStatus::Unknown,
                (true, Some(1)) => CertStatus::Revoked {
                    at: NOW - time::Duration::days(1),
                    reason: Some(RevocationReason::KeyCompromise),
                },
                (true, _) => CertStatus::Good,
            };
            SingleStatus { cert_id: id.clone(), status }
        })
        .collect();
    let der = sign_response(
        &CA.issuer,
        &CA.signer,
        &statuses,
        NOW,
        NOW,
        NOW + time::Duration::days(1),
        request.nonce.as_deref(),
    )
    .expect("a parsed request can always be answered");

    // The answer reads back with an independent decoder and echoes what was asked.
    let response = x509_ocsp::OcspResponse::from_der(&der).expect("response decodes");
    let bytes = response.response_bytes.expect("successful response has a body");
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic response decodes");
    let tbs = basic.tbs_response_data;
    assert_eq!(tbs.responses.len(), request.cert_ids.len());
    for (single, id) in tbs.responses.iter().zip(&request.cert_ids) {
        assert_eq!(single.cert_id.issuer_name_hash.as_bytes(), id.issuer_name_hash.as_slice());
        assert_eq!(single.cert_id.issuer_key_hash.as_bytes(), id.issuer_key_hash.as_slice());
        assert_eq!(Serial::from_der_integer(single.cert_id.serial_number.as_bytes()).as_ref(), Ok(&id.serial));
    }
    let echoed = tbs.response_extensions.iter().flatten().map(|e| e.extn_value.as_bytes()).next();
    assert_eq!(echoed, request.nonce.as_deref());
});
