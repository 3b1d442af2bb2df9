//! The public repository of certificates: what a lookup by email address returns, and the
//! subscriber's choice to publish their identity certificates too.
//!
//! An ECA publishes its subscribers' encryption certificates so that others can encrypt mail to
//! them (DESIGN §2: two certificates per person, the encryption one for others to encrypt to).
//! A lookup names one address exactly — no wildcard, no prefix, no listing — and returns the
//! valid (not revoked, inside their validity) certificates of a person whose subject email is
//! that address: every encryption certificate, and identity certificates only of accounts whose
//! subscriber chose to publish them (the default is not to: an identity certificate says where
//! someone works and is not needed to encrypt to them). Device certificates never.
//!
//! No HTTP and no SQL: storage is [`RepositoryStore`].

use std::future::Future;

use serde_json::json;
use signet_pki::Serial;
use signet_pki::profile::Catalog;
use signet_pki::subject::Email;
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent};
use crate::ids::ApplicationId;
use crate::issuance::{StoreError, StoredStatus};

/// The longest address looked up, in bytes: an rfc822Name is at most 254 (RFC 5321's path
/// limit less the brackets), so anything longer cannot match and is refused before parsing.
pub const MAX_ADDRESS_LEN: usize = 254;

/// The catalog usage whose certificates are always published (eca.toml's `[[usage]]` ids).
const ENCRYPTION_USAGE: &str = "encryption";
/// The catalog usage published only by the subscriber's choice.
const IDENTITY_USAGE: &str = "identity";

/// An address someone looks up: one ASCII `local@domain` address, its domain lowercased (as
/// certificates store it), its local part exactly as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAddress(Email);

/// Why a typed address cannot be looked up. The messages are for the person who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing was typed.
    #[error("enter the email address of the person you want to send encrypted mail to")]
    Empty,
    /// Longer than any email address can be.
    #[error("an email address is at most 254 characters")]
    TooLong,
    /// Not one plain address such as jane.doe@example.com.
    #[error("that is not an email address: enter one address such as jane.doe@example.com, without name or brackets")]
    Malformed,
}

impl LookupAddress {
    /// Parses what was typed; surrounding spaces are dropped (a pasted address often has them).
    pub fn parse(typed: &str) -> Result<Self, AddressError> {
        let typed = typed.trim();
        if typed.is_empty() {
            return Err(AddressError::Empty);
        }
        if typed.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        Email::new(typed).map(Self).map_err(|_| AddressError::Malformed)
    }

    /// The address as certificates carry it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A stored certificate as the repository sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryCertificate {
    /// Serial.
    pub serial: Serial,
    /// Profile id (`medium-token-encryption`, …).
    pub profile: String,
    /// DER.
    pub der: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Good or revoked.
    pub status: StoredStatus,
    /// Whether the subscriber account it was issued to publishes its identity certificates
    /// (false for a certificate of no account).
    pub identity_chosen: bool,
}

/// Why a certificate is not in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Neither an encryption nor an identity certificate (a device's), or of a profile this
    /// server no longer knows.
    NotPersonal,
    /// Revoked: nobody should encrypt to it or rely on it.
    Revoked,
    /// Outside its validity (expired, or not valid yet).
    OutsideValidity,
    /// An identity certificate of an account that has not chosen to publish them.
    IdentityNotChosen,
}

impl Withheld {
    /// The reason, as the subscriber reads it beside the certificate.
    pub fn in_words(self) -> &'static str {
        match self {
            Self::NotPersonal => "device certificates are never published",
            Self::Revoked => "it is revoked",
            Self::OutsideValidity => "it is not valid now",
            Self::IdentityNotChosen => "you have not chosen to publish your identity certificates",
        }
    }
}

/// Whether `c` is published at `now`: `Err` with the reason when it is not.
pub fn publication(catalog: &Catalog, c: &RepositoryCertificate, now: OffsetDateTime) -> Result<(), Withheld> {
    let usage = catalog.profile(&c.profile).map(|p| p.usage.as_str());
    if !matches!(usage, Some(ENCRYPTION_USAGE | IDENTITY_USAGE)) {
        return Err(Withheld::NotPersonal);
    }
    if c.status != StoredStatus::Good {
        return Err(Withheld::Revoked);
    }
    if now < c.not_before || now >= c.not_after {
        return Err(Withheld::OutsideValidity);
    }
    if usage == Some(IDENTITY_USAGE) && !c.identity_chosen {
        return Err(Withheld::IdentityNotChosen);
    }
    Ok(())
}

/// The certificates published for `address` at `now`, newest first. One read of the store
/// whatever it finds, so the work does not tell who holds certificates.
pub async fn lookup<S: RepositoryStore>(
    store: &S,
    catalog: &Catalog,
    address: &LookupAddress,
    now: OffsetDateTime,
) -> Result<Vec<RepositoryCertificate>, StoreError> {
    let mut found = store.certificates_for_address(address).await?;
    found.retain(|c| publication(catalog, c, now).is_ok());
    found.sort_by(|a, b| b.not_before.cmp(&a.not_before).then_with(|| a.serial.to_hex().cmp(&b.serial.to_hex())));
    Ok(found)
}

/// The certificate `serial` if it is published at `now` (for its downloads); `None` otherwise,
/// whether it does not exist or is withheld.
pub async fn published<S: RepositoryStore>(
    store: &S,
    catalog: &Catalog,
    serial: &Serial,
    now: OffsetDateTime,
) -> Result<Option<RepositoryCertificate>, StoreError> {
    Ok(store.repository_certificate(serial).await?.filter(|c| publication(catalog, c, now).is_ok()))
}

/// Records the subscriber's choice to publish (or no longer publish) their identity
/// certificates, audited in the same transaction. Returns whether anything changed: choosing
/// again what is already chosen writes nothing.
pub async fn choose_identity_publication<S: RepositoryStore>(
    store: &S,
    account: &ApplicationId,
    publish: bool,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    if store.identity_published(account).await? == publish {
        return Ok(false);
    }
    let event = AuditEvent::new(
        now,
        &crate::cmc::actor(account),
        AuditAction::IdentityPublicationChanged,
        account.as_str(),
        json!({ "published": publish }),
    );
    store.set_identity_published(account, publish, event).await?;
    Ok(true)
}

/// The storage the repository needs; `signet-store` implements it.
pub trait RepositoryStore {
    /// Every issued certificate whose subject email is exactly `address`, revoked and expired
    /// ones included (the rules decide), in one query whatever it finds.
    fn certificates_for_address(
        &self,
        address: &LookupAddress,
    ) -> impl Future<Output = Result<Vec<RepositoryCertificate>, StoreError>> + Send;

    /// The issued certificate `serial`, if there is one.
    fn repository_certificate(
        &self,
        serial: &Serial,
    ) -> impl Future<Output = Result<Option<RepositoryCertificate>, StoreError>> + Send;

    /// Whether `account` publishes its identity certificates.
    fn identity_published(&self, account: &ApplicationId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Sets whether `account` publishes its identity certificates, with `audit`, in one
    /// transaction.
    fn set_identity_published(
        &self,
        account: &ApplicationId,
        publish: bool,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use signet_pki::RevocationReason;
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2027-03-01 12:00 UTC);

    fn certificate(profile: &str) -> RepositoryCertificate {
        RepositoryCertificate {
            serial: Serial::random(),
            profile: profile.into(),
            der: vec![0x30, 0x00],
            not_before: NOW - Duration::days(30),
            not_after: NOW + Duration::days(335),
            status: StoredStatus::Good,
            identity_chosen: false,
        }
    }

    #[test]
    fn addresses_are_exact_with_the_domain_lowercased() {
        let a = LookupAddress::parse(" Jane.Doe@ACME.Example ").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe@acme.example");
        assert_ne!(a, LookupAddress::parse("jane.doe@acme.example").unwrap(), "the local part is not folded");
        assert_eq!(LookupAddress::parse("  "), Err(AddressError::Empty));
        let long = format!("{}@{}.example", "a".repeat(64), "b".repeat(190));
        assert_eq!(LookupAddress::parse(&long), Err(AddressError::TooLong));
        // `*` and `%` are letters of an address's local part, matched as themselves: no pattern.
        assert_eq!(LookupAddress::parse("*@acme.example").unwrap().as_str(), "*@acme.example");
        for bad in ["jane", "jane@*.example", "Jane <jane@acme.example>", "j%@acme", "jane@acme"] {
            assert_eq!(LookupAddress::parse(bad), Err(AddressError::Malformed), "{bad}");
        }
    }

    #[test]
    fn encryption_always_identity_by_choice_never_devices_revoked_or_expired() {
        let catalog = Catalog::default_eca();
        let encryption = certificate("medium-token-encryption");
        assert_eq!(publication(&catalog, &encryption, NOW), Ok(()));
        let identity = certificate("medium-token-identity");
        assert_eq!(publication(&catalog, &identity, NOW), Err(Withheld::IdentityNotChosen));
        let chosen = RepositoryCertificate { identity_chosen: true, ..identity };
        assert_eq!(publication(&catalog, &chosen, NOW), Ok(()));
        let device = RepositoryCertificate { identity_chosen: true, ..certificate("device-tls") };
        assert_eq!(publication(&catalog, &device, NOW), Err(Withheld::NotPersonal));
        assert_eq!(publication(&catalog, &certificate("retired-profile"), NOW), Err(Withheld::NotPersonal));
        let revoked = RepositoryCertificate {
            status: StoredStatus::Revoked { at: NOW, reason: RevocationReason::Superseded },
            ..encryption.clone()
        };
        assert_eq!(publication(&catalog, &revoked, NOW), Err(Withheld::Revoked));
        assert_eq!(publication(&catalog, &encryption, encryption.not_after), Err(Withheld::OutsideValidity));
        let early = encryption.not_before - Duration::seconds(1);
        assert_eq!(publication(&catalog, &encryption, early), Err(Withheld::OutsideValidity));
    }
}
