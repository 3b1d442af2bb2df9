//! ACME accounts: created by binding an unused EAB key, so each belongs to one organization
//! and its domains; identified by their key's thumbprint; closed by deactivation.

use serde_json::json;
use signet_pki::subject::{Email, OrganizationName};
use time::OffsetDateTime;

use super::ids::is_b64url;
use super::{AccountId, AcmeInputError, DomainScope, EabBinding, EabKey, EabKeyId};
use crate::audit::{AuditAction, AuditEvent};

/// An account key's RFC 7638 thumbprint (base64url SHA-256): its identity, and the second
/// half of every key authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyThumbprint(String);

impl KeyThumbprint {
    /// Wraps the base64url thumbprint computed from the JWK.
    pub fn new(s: &str) -> Result<Self, AcmeInputError> {
        if is_b64url(s) && s.len() == 43 {
            Ok(Self(s.to_owned()))
        } else {
            Err(AcmeInputError::Id { what: "key thumbprint", value: s.chars().take(80).collect() })
        }
    }
    /// The thumbprint.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account's status (RFC 8555 §7.1.6); `revoked` is for server-initiated removal, which
/// Signet does by deactivating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// In use.
    Valid,
    /// Closed by its holder; every later request with its key is refused.
    Deactivated,
}

impl AccountStatus {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Deactivated => "deactivated",
        }
    }
    /// By RFC name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "valid" => Some(Self::Valid),
            "deactivated" => Some(Self::Deactivated),
            _ => None,
        }
    }
}

/// An ACME account, bound to one EAB key and so to one organization and its domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// The account public key as a JWK (JSON text), as the client sent it.
    pub jwk: String,
    /// Its thumbprint.
    pub thumbprint: KeyThumbprint,
    /// The EAB key it was created with.
    pub eab_key: EabKeyId,
    /// The organization of the EAB key.
    pub organization: OrganizationName,
    /// The domains of the EAB key.
    pub scope: DomainScope,
    /// Contact addresses.
    pub contact: Vec<Email>,
    /// Status.
    pub status: AccountStatus,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// Why an account could not be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The EAB key already bound an account.
    #[error("this external account binding key is already used by another account")]
    EabKeyUsed,
    /// The account is deactivated.
    #[error("the account is deactivated")]
    Deactivated,
}

/// Parses `mailto:` contacts (RFC 8555 §7.3: servers may refuse other schemes).
pub fn parse_contacts<'a>(contacts: impl IntoIterator<Item = &'a str>) -> Result<Vec<Email>, AcmeInputError> {
    contacts
        .into_iter()
        .map(|c| {
            let addr = c.strip_prefix("mailto:").ok_or_else(|| AcmeInputError::Contact(c.to_owned()))?;
            Email::new(addr).map_err(|_| AcmeInputError::Contact(c.to_owned()))
        })
        .collect()
}

impl Account {
    /// A new account for the key `jwk`, binding the unbound EAB key `eab`, whose MAC the caller
    /// has verified. Returns the account and the key as it is once bound.
    pub fn register(
        jwk: String,
        thumbprint: KeyThumbprint,
        eab: EabKey,
        contact: Vec<Email>,
        now: OffsetDateTime,
    ) -> Result<(Self, EabKey), AccountError> {
        if !matches!(eab.binding, EabBinding::Unbound(_)) {
            return Err(AccountError::EabKeyUsed);
        }
        let account = Self {
            id: AccountId::generate(),
            jwk,
            thumbprint,
            eab_key: eab.id.clone(),
            organization: eab.organization.clone(),
            scope: eab.scope.clone(),
            contact,
            status: AccountStatus::Valid,
            created_at: now,
        };
        let bound = EabKey { binding: EabBinding::Bound(account.id.clone()), ..eab };
        Ok((account, bound))
    }

    /// The audit event for creating it.
    pub fn created_event(&self) -> AuditEvent {
        AuditEvent::new(
            self.created_at,
            &self.actor(),
            AuditAction::AcmeAccountCreated,
            self.id.as_str(),
            json!({
                "eab_key": self.eab_key.as_str(),
                "organization": self.organization.as_str(),
                "thumbprint": self.thumbprint.as_str(),
            }),
        )
    }

    /// Closes the account (RFC 8555 §7.3.6) and returns it with the audit event.
    pub fn deactivate(self, now: OffsetDateTime) -> Result<(Self, AuditEvent), AccountError> {
        if self.status != AccountStatus::Valid {
            return Err(AccountError::Deactivated);
        }
        let event =
            AuditEvent::new(now, &self.actor(), AuditAction::AcmeAccountDeactivated, self.id.as_str(), json!({}));
        Ok((Self { status: AccountStatus::Deactivated, ..self }, event))
    }

    /// The audit actor for this account's requests.
    pub fn actor(&self) -> String {
        format!("acme:{}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::EabAlgorithm;
    use crate::acme::testing::t0;

    #[test]
    fn eab_keys_bind_once_and_hide_their_secret() {
        let org = OrganizationName::new("Acme Devices").unwrap();
        let eab = EabKey::generate(org, DomainScope::parse("acme.example").unwrap(), t0());
        let EabBinding::Unbound(hmac) = &eab.binding else { panic!("new keys are unbound") };
        assert!(!format!("{eab:?}").contains(&hmac.to_base64url()));
        assert!(!format!("{:?}", eab.created_event("cli:x").details).contains(&hmac.to_base64url()));
        let tag =
            aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac.as_bytes()), b"m");
        assert!(hmac.verify(EabAlgorithm::Hs256, b"m", tag.as_ref()));
        assert!(!hmac.verify(EabAlgorithm::Hs256, b"n", tag.as_ref()));
        assert!(!hmac.verify(EabAlgorithm::Hs384, b"m", tag.as_ref()));
        let thumb = KeyThumbprint::new(&"b".repeat(43)).unwrap();
        let (acct, bound) = Account::register("{}".into(), thumb.clone(), eab, vec![], t0()).unwrap();
        assert_eq!(bound.binding, EabBinding::Bound(acct.id.clone()));
        assert_eq!(acct.organization.as_str(), "Acme Devices");
        assert_eq!(Account::register("{}".into(), thumb, bound, vec![], t0()).unwrap_err(), AccountError::EabKeyUsed);
        let (closed, event) = acct.deactivate(t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeAccountDeactivated);
        assert_eq!(closed.deactivate(t0()).unwrap_err(), AccountError::Deactivated);
    }

    #[test]
    fn contacts_are_mailto_addresses() {
        assert_eq!(parse_contacts(["mailto:ops@acme.example"]).unwrap()[0].as_str(), "ops@acme.example");
        assert!(matches!(parse_contacts(["tel:+1555"]), Err(AcmeInputError::Contact(_))));
    }
}
