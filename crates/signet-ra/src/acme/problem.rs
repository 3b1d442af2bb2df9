//! ACME problem documents (RFC 8555 §6.7): the error types Signet reports and a detail the
//! client can act on.

use serde_json::json;

use super::AcmeInputError;

/// The ACME error types (RFC 8555 §6.7) Signet reports, and the HTTP layer's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// No account has this key (`onlyReturnExisting`).
    AccountDoesNotExist,
    /// The certificate was revoked before.
    AlreadyRevoked,
    /// The CSR is unacceptable.
    BadCsr,
    /// The replay nonce is missing, unknown, expired or used.
    BadNonce,
    /// The JWS key is not acceptable.
    BadPublicKey,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The JWS algorithm is not supported.
    BadSignatureAlgorithm,
    /// The server could not connect to the validation target.
    Connection,
    /// DNS lookup failed during validation.
    Dns,
    /// An EAB is required and was missing.
    ExternalAccountRequired,
    /// The validation response was wrong.
    IncorrectResponse,
    /// The request is malformed.
    Malformed,
    /// The order is not ready to finalize.
    OrderNotReady,
    /// The server will not issue for this identifier.
    RejectedIdentifier,
    /// Something broke on the server's side.
    ServerInternal,
    /// The client lacks authorization.
    Unauthorized,
    /// The contact scheme is not supported.
    UnsupportedContact,
    /// The identifier type is not supported.
    UnsupportedIdentifier,
}

impl ProblemKind {
    const ALL: [Self; 18] = [
        Self::AccountDoesNotExist,
        Self::AlreadyRevoked,
        Self::BadCsr,
        Self::BadNonce,
        Self::BadPublicKey,
        Self::BadRevocationReason,
        Self::BadSignatureAlgorithm,
        Self::Connection,
        Self::Dns,
        Self::ExternalAccountRequired,
        Self::IncorrectResponse,
        Self::Malformed,
        Self::OrderNotReady,
        Self::RejectedIdentifier,
        Self::ServerInternal,
        Self::Unauthorized,
        Self::UnsupportedContact,
        Self::UnsupportedIdentifier,
    ];

    /// The name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::BadCsr => "badCSR",
            Self::BadNonce => "badNonce",
            Self::BadPublicKey => "badPublicKey",
            Self::BadRevocationReason => "badRevocationReason",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::Connection => "connection",
            Self::Dns => "dns",
            Self::ExternalAccountRequired => "externalAccountRequired",
            Self::IncorrectResponse => "incorrectResponse",
            Self::Malformed => "malformed",
            Self::OrderNotReady => "orderNotReady",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::ServerInternal => "serverInternal",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedContact => "unsupportedContact",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    /// By name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The full URN.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }
}

/// An ACME problem: a kind and a detail for the client (never internal causes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeProblem {
    /// Kind.
    pub kind: ProblemKind,
    /// What the client can act on.
    pub detail: String,
}

impl AcmeProblem {
    /// A problem.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }

    /// Issuance failed for a reason of the CA's, not the client's: the client learns only
    /// that, the operator's log has why.
    pub fn issuance_failed() -> Self {
        Self::new(ProblemKind::ServerInternal, "issuance failed; the operator has the details in the log")
    }

    /// Issuance was interrupted (the server stopped between accepting the finalize and storing
    /// the certificate) and will not resume: the client must place a new order.
    pub fn issuance_interrupted() -> Self {
        Self::new(
            ProblemKind::ServerInternal,
            "issuance was interrupted and no certificate was issued; place a new order",
        )
    }

    /// Stored form: `{"type": name, "detail": ...}`.
    pub fn to_stored(&self) -> String {
        json!({ "type": self.kind.name(), "detail": self.detail }).to_string()
    }

    /// From the stored form.
    pub fn from_stored(s: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        Some(Self::new(ProblemKind::from_name(v["type"].as_str()?)?, v["detail"].as_str()?))
    }
}

impl From<AcmeInputError> for AcmeProblem {
    fn from(e: AcmeInputError) -> Self {
        let kind = match &e {
            AcmeInputError::IdentifierType(_) => ProblemKind::UnsupportedIdentifier,
            AcmeInputError::Wildcard(_) | AcmeInputError::Name(_) => ProblemKind::RejectedIdentifier,
            AcmeInputError::Contact(_) => ProblemKind::UnsupportedContact,
            _ => ProblemKind::Malformed,
        };
        Self::new(kind, e.to_string())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_round_trip_by_name() {
        for kind in ProblemKind::ALL {
            assert_eq!(ProblemKind::from_name(kind.name()), Some(kind));
        }
        let p = AcmeProblem::new(ProblemKind::Dns, "no TXT");
        assert_eq!(AcmeProblem::from_stored(&p.to_stored()), Some(p));
        assert_eq!(ProblemKind::BadNonce.urn(), "urn:ietf:params:acme:error:badNonce");
    }
}
