//! Enterprise accounts ("add users"): which of an organization's subscribers manage
//! its devices in the Certificate Management Center — create device certificates and ACME keys
//! for the domains the RA registered — and may add others.
//!
//! Only vetted people manage an organization's devices, as an ECA device certificate's sponsor
//! must be: a user is a subscriber account of the same organization that holds a valid ECA
//! identity certificate. The RA adds the first user (`signet admin enterprise add-user`); users
//! add the next ones, each addition confirmed with a fresh soft-token code and audited.
//!
//! No HTTP and no SQL: storage is [`EnterpriseStore`].

use std::future::Future;

use serde_json::json;
use time::OffsetDateTime;

use crate::application_form::OrganizationKey;
use crate::audit::{AuditAction, AuditEvent};
use crate::ids::ApplicationId;
use crate::issuance::StoreError;

/// A user of an organization's enterprise account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseUser {
    /// The organization's key.
    pub organization: OrganizationKey,
    /// The subscriber account (application reference).
    pub account: ApplicationId,
    /// Who added them, as the audit log names actors.
    pub added_by: String,
    /// When.
    pub added_at: OffsetDateTime,
}

impl EnterpriseUser {
    /// The audit event of adding this user.
    pub fn added_event(&self) -> AuditEvent {
        AuditEvent::new(
            self.added_at,
            &self.added_by,
            AuditAction::EnterpriseUserAdded,
            self.account.as_str(),
            json!({ "organization": self.organization.as_str() }),
        )
    }
}

/// What is known about the account someone wants to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its organization's key; `None` when no account has the reference.
    pub organization: Option<OrganizationKey>,
    /// Whether it holds a valid (unexpired, unrevoked) ECA identity certificate.
    pub vetted: bool,
    /// Whether it is a user of the organization already.
    pub already_user: bool,
}

/// Why an account cannot be added. The messages are for the person adding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddUserRefused {
    /// No account has the reference, or it belongs to another organization: the same answer,
    /// so references of other organizations cannot be probed.
    #[error("no subscriber of your organization has that application reference")]
    NotInOrganization,
    /// The account has no valid identity certificate yet.
    #[error("that subscriber holds no valid ECA identity certificate yet: only vetted subscribers manage devices")]
    NotVetted,
    /// The account is a user already.
    #[error("that subscriber is already a user of your enterprise account")]
    AlreadyUser,
}

/// Whether `candidate` may be added to `organization`'s enterprise account.
pub fn check_candidate(organization: &OrganizationKey, candidate: &Candidate) -> Result<(), AddUserRefused> {
    if candidate.organization.as_ref() != Some(organization) {
        Err(AddUserRefused::NotInOrganization)
    } else if candidate.already_user {
        Err(AddUserRefused::AlreadyUser)
    } else if !candidate.vetted {
        Err(AddUserRefused::NotVetted)
    } else {
        Ok(())
    }
}

/// The storage enterprise accounts need; `signet-store` implements it.
pub trait EnterpriseStore {
    /// The users of an organization's enterprise account, oldest first.
    fn enterprise_users(
        &self,
        organization: &OrganizationKey,
    ) -> impl Future<Output = Result<Vec<EnterpriseUser>, StoreError>> + Send;

    /// Adds a user with its audit event, in one transaction; [`StoreError::Conflict`] if the
    /// account is a user already (and nothing is written).
    fn add_enterprise_user(
        &self,
        user: &EnterpriseUser,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use signet_pki::subject::OrganizationName;
    use time::macros::datetime;

    use super::*;

    fn key(name: &str) -> OrganizationKey {
        OrganizationKey::of(&OrganizationName::new(name).unwrap())
    }

    #[test]
    fn only_vetted_subscribers_of_the_same_organization_are_added_once() {
        let acme = key("Acme, Inc.");
        let ok = Candidate { organization: Some(key("ACME Inc")), vetted: true, already_user: false };
        assert_eq!(check_candidate(&acme, &ok), Ok(()));
        let other = Candidate { organization: Some(key("Globex")), ..ok.clone() };
        let unknown = Candidate { organization: None, ..ok.clone() };
        assert_eq!(check_candidate(&acme, &other), Err(AddUserRefused::NotInOrganization));
        assert_eq!(check_candidate(&acme, &unknown), Err(AddUserRefused::NotInOrganization));
        assert_eq!(check_candidate(&acme, &Candidate { vetted: false, ..ok.clone() }), Err(AddUserRefused::NotVetted));
        assert_eq!(check_candidate(&acme, &Candidate { already_user: true, ..ok }), Err(AddUserRefused::AlreadyUser));
    }

    #[test]
    fn the_audit_event_names_who_added_whom() {
        let user = EnterpriseUser {
            organization: key("Acme, Inc."),
            account: ApplicationId::new("ABCDEFGHJKMN").unwrap(),
            added_by: "subscriber:0123456789AB".into(),
            added_at: datetime!(2026-12-03 09:00 UTC),
        };
        let e = user.added_event();
        assert_eq!(
            (e.action, e.actor.as_str(), e.subject.as_str()),
            (AuditAction::EnterpriseUserAdded, "subscriber:0123456789AB", "ABCDEFGHJKMN")
        );
        assert!(e.details.to_string().contains("acme inc"));
    }
}
