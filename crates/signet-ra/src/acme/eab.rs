//! External Account Binding keys (RFC 8555 §7.3.4): one per enterprise organization and its
//! domains, binding exactly one ACME account, with an HMAC key that is erased once bound.

use data_encoding::BASE64URL_NOPAD;
use serde_json::json;
use signet_pki::subject::OrganizationName;
use time::OffsetDateTime;

use super::ids::random_bytes_for_b64url;
use super::{AccountId, AcmeInputError, DomainScope, DomainSuffix, EabKeyId};
use crate::audit::{AuditAction, AuditEvent};

/// An EAB HMAC key: 256 random bits. Debug never prints it; it leaves only through
/// [`EabHmacKey::as_bytes`], for the store and for showing it once when it is created.
#[derive(Clone, PartialEq, Eq)]
pub struct EabHmacKey(Vec<u8>);

impl std::fmt::Debug for EabHmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EabHmacKey(<redacted>)")
    }
}

/// The MAC algorithms an EAB's inner JWS may use (RFC 8555 §7.3.4 names HS256; certbot sends it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EabAlgorithm {
    /// HMAC-SHA256.
    Hs256,
    /// HMAC-SHA384.
    Hs384,
    /// HMAC-SHA512.
    Hs512,
}

impl EabAlgorithm {
    /// By JWS `alg` name.
    pub fn from_name(alg: &str) -> Option<Self> {
        match alg {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            _ => None,
        }
    }
}

impl EabHmacKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(random_bytes_for_b64url(32))
    }

    /// A stored key.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AcmeInputError> {
        if (32..=64).contains(&bytes.len()) { Ok(Self(bytes)) } else { Err(AcmeInputError::HmacKeyLength) }
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The base64url form clients take (certbot's `--eab-hmac-key`).
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(&self.0)
    }

    /// Whether `tag` is the MAC of `message` under this key, compared in constant time.
    pub fn verify(&self, alg: EabAlgorithm, message: &[u8], tag: &[u8]) -> bool {
        use aws_lc_rs::hmac;
        let alg = match alg {
            EabAlgorithm::Hs256 => hmac::HMAC_SHA256,
            EabAlgorithm::Hs384 => hmac::HMAC_SHA384,
            EabAlgorithm::Hs512 => hmac::HMAC_SHA512,
        };
        hmac::verify(&hmac::Key::new(alg, &self.0), message, tag).is_ok()
    }
}

/// Whether an EAB key can still bind an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EabBinding {
    /// Not used yet: the HMAC key is kept to check the binding.
    Unbound(EabHmacKey),
    /// Bound to this account; the HMAC key is erased, since it can never be used again.
    Bound(AccountId),
}

/// An External Account Binding key of an enterprise organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EabKey {
    /// The key id.
    pub id: EabKeyId,
    /// The enterprise organization: the organization OU of every certificate the bound
    /// account is issued.
    pub organization: OrganizationName,
    /// The DNS domains registered for the organization.
    pub scope: DomainScope,
    /// Unbound (with its secret) or bound.
    pub binding: EabBinding,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl EabKey {
    /// A new unbound key with a random id and HMAC key.
    pub fn generate(organization: OrganizationName, scope: DomainScope, now: OffsetDateTime) -> Self {
        Self {
            id: EabKeyId::generate(),
            organization,
            scope,
            binding: EabBinding::Unbound(EabHmacKey::generate()),
            created_at: now,
        }
    }

    /// The audit event for creating it (never the HMAC key).
    pub fn created_event(&self, actor: &str) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            actor,
            AuditAction::AcmeEabKeyCreated,
            self.id.as_str(),
            json!({
                "organization": self.organization.as_str(),
                "domains": self.scope.domains().map(DomainSuffix::as_str).collect::<Vec<_>>(),
            }),
        )
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eab_ids_and_keys_never_start_like_a_command_line_option() {
        // 1 in 64 would without the check; a thousand draws make a miss all but impossible.
        for _ in 0..1000 {
            let id = EabKeyId::generate();
            let key = EabHmacKey::generate();
            assert!(!id.as_str().starts_with('-') && !key.to_base64url().starts_with('-'), "{id}");
        }
    }
}
