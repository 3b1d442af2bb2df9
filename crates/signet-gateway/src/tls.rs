//! The TLS layer: request a client certificate, check only that the client holds its key,
//! and leave every trust decision to the gateway after the handshake.
//!
//! Deciding after the handshake (rather than with a TLS alert) is what lets the gateway
//! answer a person with a readable page saying *why* — no certificate, untrusted, expired,
//! revoked, wrong type, not linked — over the established connection; and it lets path
//! validation fetch intermediates, OCSP answers and CRLs asynchronously.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// Asks for a client certificate (naming the trust anchors as acceptable issuers) but
/// does not require one. The CertificateVerify signature *is* checked, so a client that
/// presents a certificate has proven it holds the private key; the path, policy and
/// revocation checks follow in the gateway.
#[derive(Debug)]
pub struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    /// `anchor_subjects` are DER Names (with their SEQUENCE), sent as certificate_authorities.
    pub fn new(anchor_subjects: &[Vec<u8>], algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { hints: anchor_subjects.iter().map(|s| DistinguishedName::from(s.clone())).collect(), algorithms }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Without a certificate the client still gets a page explaining what it needs.
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deliberately deferred: see the module documentation. Key possession is still
        // proven by the signature checks below.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server configuration: TLS 1.3 and 1.2, aws-lc-rs, HTTP/1.1 by ALPN.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    anchor_subjects: &[Vec<u8>],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(RequestClientCert::new(anchor_subjects, provider.signature_verification_algorithms));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
