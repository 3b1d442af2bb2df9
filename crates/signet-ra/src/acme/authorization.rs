//! Authorizations of one name for one order and their http-01 and dns-01 challenges: the key
//! authorization a client publishes, and a validation from "please validate" to its outcome.

use data_encoding::BASE64URL_NOPAD;
use serde_json::json;
use signet_pki::subject::DnsName;
use time::OffsetDateTime;

use super::{
    Account, AccountId, AcmeProblem, AuthorizationId, ChallengeId, ChallengeToken, Identifier, KeyThumbprint, OrderId,
};
use crate::audit::{AuditAction, AuditEvent};

/// A challenge type (RFC 8555 §8.3, §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// The key authorization served over HTTP on port 80.
    Http01,
    /// A TXT record at `_acme-challenge.<name>`.
    Dns01,
}

impl ChallengeKind {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
    /// By RFC name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "http-01" => Some(Self::Http01),
            "dns-01" => Some(Self::Dns01),
            _ => None,
        }
    }
}

/// The key authorization (RFC 8555 §8.1): what the client must publish for `token`.
pub fn key_authorization(token: &ChallengeToken, thumbprint: &KeyThumbprint) -> String {
    format!("{}.{}", token.as_str(), thumbprint.as_str())
}

/// The dns-01 TXT value (RFC 8555 §8.4): base64url SHA-256 of the key authorization.
pub fn dns01_txt(key_authorization: &str) -> String {
    BASE64URL_NOPAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes()).as_ref())
}

/// A challenge's status. `Processing` exists only while the server validates: the outcome is
/// stored, never the in-between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeStatus {
    /// Waiting for the client.
    Pending,
    /// Being validated.
    Processing,
    /// Validated at this time.
    Valid {
        /// When.
        validated: OffsetDateTime,
    },
    /// Validation failed.
    Invalid {
        /// Why.
        error: AcmeProblem,
    },
}

impl ChallengeStatus {
    /// The RFC name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// A challenge of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Id.
    pub id: ChallengeId,
    /// Type.
    pub kind: ChallengeKind,
    /// Token.
    pub token: ChallengeToken,
    /// Status.
    pub status: ChallengeStatus,
}

/// An authorization's stored status; `expired` is derived from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationStatus {
    /// Waiting for a challenge to be validated.
    Pending,
    /// A challenge was validated.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Pending past its expiry.
    Expired,
}

impl AuthorizationStatus {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
    /// By stored name (`expired` is never stored).
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "valid" => Some(Self::Valid),
            "invalid" => Some(Self::Invalid),
            _ => None,
        }
    }
}

/// The authorization of one name for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Id.
    pub id: AuthorizationId,
    /// The order it belongs to.
    pub order: OrderId,
    /// The account that owns the order.
    pub account: AccountId,
    /// The name.
    pub identifier: Identifier,
    /// Stored status (pending, valid or invalid).
    pub status: AuthorizationStatus,
    /// Expiry.
    pub expires: OffsetDateTime,
    /// The challenges offered: http-01 and dns-01.
    pub challenges: Vec<Challenge>,
}

/// What a client's "please validate" did to an authorization.
#[derive(Debug)]
pub enum Respond {
    /// The challenge is processing: validate it, then [`Validation::conclude`].
    Validate(Validation),
    /// Nothing to do (already validated, failed or expired): report the state as it is.
    Unchanged(Authorization),
}

impl Authorization {
    /// The status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> AuthorizationStatus {
        match self.status {
            AuthorizationStatus::Pending if now >= self.expires => AuthorizationStatus::Expired,
            s => s,
        }
    }

    /// The client asked the server to validate `challenge` (RFC 8555 §7.5.1).
    pub fn respond(mut self, challenge: &ChallengeId, thumbprint: &KeyThumbprint, now: OffsetDateTime) -> Respond {
        let Some(index) = self.challenges.iter().position(|c| &c.id == challenge) else {
            return Respond::Unchanged(self);
        };
        if self.status_at(now) != AuthorizationStatus::Pending
            || self.challenges[index].status != ChallengeStatus::Pending
        {
            return Respond::Unchanged(self);
        }
        self.challenges[index].status = ChallengeStatus::Processing;
        let key_authorization = key_authorization(&self.challenges[index].token, thumbprint);
        Respond::Validate(Validation { authorization: self, index, key_authorization })
    }
}

/// An authorization whose challenge is processing.
#[derive(Debug)]
pub struct Validation {
    authorization: Authorization,
    index: usize,
    key_authorization: String,
}

impl Validation {
    /// The name to validate.
    pub fn name(&self) -> &DnsName {
        self.authorization.identifier.name()
    }
    /// The challenge type.
    pub fn kind(&self) -> ChallengeKind {
        self.authorization.challenges[self.index].kind
    }
    /// The token (the http-01 path).
    pub fn token(&self) -> &ChallengeToken {
        &self.authorization.challenges[self.index].token
    }
    /// The key authorization the client must have published.
    pub fn key_authorization(&self) -> &str {
        &self.key_authorization
    }

    /// Records the outcome: the challenge and its authorization become valid or invalid.
    /// Returns the authorization, the challenge's id and the audit event.
    pub fn conclude(
        self,
        outcome: Result<(), AcmeProblem>,
        account: &Account,
        now: OffsetDateTime,
    ) -> (Authorization, ChallengeId, AuditEvent) {
        let Self { mut authorization, index, .. } = self;
        let kind = authorization.challenges[index].kind;
        let (action, status, details) = match outcome {
            Ok(()) => (
                AuditAction::AcmeAuthorizationValidated,
                AuthorizationStatus::Valid,
                json!({ "name": authorization.identifier.name().as_str(), "challenge": kind.name() }),
            ),
            Err(error) => {
                let details = json!({
                    "name": authorization.identifier.name().as_str(), "challenge": kind.name(),
                    "error": error.kind.name(), "detail": error.detail,
                });
                authorization.challenges[index].status = ChallengeStatus::Invalid { error };
                (AuditAction::AcmeAuthorizationInvalid, AuthorizationStatus::Invalid, details)
            }
        };
        if status == AuthorizationStatus::Valid {
            authorization.challenges[index].status = ChallengeStatus::Valid { validated: now };
        }
        authorization.status = status;
        let event = AuditEvent::new(now, &account.actor(), action, authorization.id.as_str(), details);
        let challenge = authorization.challenges[index].id.clone();
        (authorization, challenge, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns01_txt_is_the_base64url_sha256_of_the_key_authorization() {
        // SHA-256("abc") is the FIPS 180-2 test vector ba7816bf…15ad, here in base64url.
        assert_eq!(dns01_txt("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
