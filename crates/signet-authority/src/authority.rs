//! What the RA may ask of the CA, and nothing more: issue on an order, revoke, answer OCSP,
//! publish the CRL. Requests and answers are owned data, with no reference into the caller's
//! state, so the CA could answer from another process or host (the shape Boulder gives its CA)
//! without the pages, the API or ACME changing.

use async_trait::async_trait;
use bytes::Bytes;
use signet_pki::issue::{CertificateOrder, IssuedCertificate};
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::Finalizing;
use signet_ra::issuance::{IssuanceError, RevocationError, Revoked, StoreError};
use signet_ra::notify::OutboxMessage;

/// An RA's instruction to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Who instructs, as audited (`operator:…`, `subscriber:…`, `acme:…`).
    pub actor: String,
    /// The vetted subject, profile and validity.
    pub order: CertificateOrder,
    /// The subscriber's PKCS#10 request (DER or PEM), proving possession of the key.
    pub csr: Vec<u8>,
    /// The ACME order being finalized, whose moves go with the CA's writes; `None` otherwise.
    pub acme_order: Option<Finalizing>,
}

/// An RA's instruction to revoke.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// Who instructs, as audited.
    pub actor: String,
    /// The certificate.
    pub serial: Serial,
    /// Why.
    pub reason: RevocationReason,
    /// Mail to queue in the revocation's own transaction (the subscriber's notice), so no
    /// revocation happens behind the subscriber's back; empty for certificates of no account.
    pub notices: Vec<OutboxMessage>,
}

/// An OCSP request as it arrived.
#[derive(Debug, Clone)]
pub struct OcspQuery {
    /// The DER OCSPRequest (`Bytes`: the request body as it arrived, not a copy).
    pub der: Bytes,
    /// Whether it came by GET, whose answers HTTP caches may keep (RFC 5019 §6).
    pub cacheable: bool,
}

/// An OCSP answer ready to send.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// The DER OCSPResponse (a signed answer or an error status).
    pub der: Bytes,
    /// Seconds an HTTP cache may keep it; `None`: not to be cached.
    pub max_age: Option<i64>,
}

/// The CA's own certificates, as relying parties download them.
#[derive(Debug, Clone)]
pub struct CaCertificates {
    /// The issuing CA (DER).
    pub issuing: Vec<u8>,
    /// The root (DER).
    pub root: Vec<u8>,
}

impl CaCertificates {
    /// Issuing CA then root, as PEM: the chain a subscriber installs beside their certificate.
    pub fn chain_pem(&self) -> String {
        signet_pki::to_pem("CERTIFICATE", &self.issuing) + &signet_pki::to_pem("CERTIFICATE", &self.root)
    }
}

/// Why the CA cannot serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The CA's key did not sign (an HSM session may be gone).
    #[error("CA signer unavailable: {0}")]
    Signer(String),
}

/// The certificate authority as the RA drives it. Every signature the CA key makes is asked
/// for through here; whatever holds an `Authority` never holds the key.
#[async_trait]
pub trait Authority: Send + Sync {
    /// The issuing and root certificates.
    fn certificates(&self) -> CaCertificates;

    /// Issues on an RA instruction (audited). When no other issuance is in progress the OCSP
    /// `good` answer is ready when it returns; under load it is pre-signed once the CA is idle.
    async fn issue(&self, request: IssueRequest) -> Result<IssuedCertificate, IssuanceError>;

    /// Revokes (audited, with its notices); OCSP answers stop saying `good` at once on this node.
    async fn revoke(&self, request: RevokeRequest) -> Result<Revoked, RevocationError>;

    /// Answers an OCSP request (RFC 6960), malformed ones with an error status.
    async fn ocsp(&self, query: OcspQuery) -> OcspAnswer;

    /// The current CRL, signed anew when the revocations changed or half its life has passed.
    async fn crl(&self) -> Result<Bytes, IssuanceError>;

    /// Signs a new CRL now, as `actor` (audited).
    async fn publish_crl(&self, actor: String) -> Result<Vec<u8>, IssuanceError>;

    /// Pre-signs the answers of certificates issued under load, and re-signs cached OCSP answers
    /// past half their validity, so requests rarely wait on the key; returns how many were
    /// re-signed.
    async fn refresh_ocsp(&self) -> Result<usize, StoreError>;

    /// Marks failed, audited, up to `limit` issuance intents a crash left unfinished.
    async fn resolve_abandoned_intents(&self, limit: u32) -> Result<Vec<Serial>, StoreError>;

    /// Makes one real signature with the CA key (readiness).
    async fn probe(&self) -> Result<(), ProbeError>;
}
