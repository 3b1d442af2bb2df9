//! What the RA decides about an organization an applicant registered. A name typed by one
//! applicant is not put before the next until an operator has looked at it: it starts
//! [`Pending`](OrganizationStatus::Pending), and only a
//! [`Confirmed`](OrganizationStatus::Confirmed) organization is offered in the wizard's search.
//!
//! ```text
//! pending → confirmed | merged(into a confirmed one) | rejected
//! ```
//!
//! Each decision consumes the registered organization and returns the next one with its audit
//! event; deciding twice is refused, so two operators deciding at once cannot both win.

use serde_json::json;
use time::OffsetDateTime;

use crate::application_form::{Organization, OrganizationKey};
use crate::audit::{AuditAction, AuditEvent};

/// Where a registered organization is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationStatus {
    /// Registered by an applicant's submitted application; not offered to others yet.
    Pending,
    /// The RA confirmed it: applicants find it in the organization search.
    Confirmed,
    /// The same organization as a confirmed one, registered under another spelling; applicants
    /// who type this spelling are offered that one.
    Merged(OrganizationKey),
    /// The RA found it is not an organization it serves under this name.
    Rejected,
}

impl OrganizationStatus {
    /// Every stored status name, as the migration's CHECK lists them.
    pub const ALL_NAMES: [&'static str; 4] = ["pending", "confirmed", "merged", "rejected"];

    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Merged(_) => "merged",
            Self::Rejected => "rejected",
        }
    }

    /// The organization it was merged into, if it was.
    pub fn merged_into(&self) -> Option<&OrganizationKey> {
        match self {
            Self::Merged(key) => Some(key),
            _ => None,
        }
    }

    /// The status from its stored name and merge target.
    pub fn from_stored(name: &str, merged_into: Option<OrganizationKey>) -> Result<Self, OrganizationError> {
        match (name, merged_into) {
            ("pending", None) => Ok(Self::Pending),
            ("confirmed", None) => Ok(Self::Confirmed),
            ("merged", Some(key)) => Ok(Self::Merged(key)),
            ("rejected", None) => Ok(Self::Rejected),
            (other, _) => Err(OrganizationError::StoredStatus(other.to_owned())),
        }
    }
}

/// Why a decision about an organization was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrganizationError {
    /// Only a pending organization can be confirmed, merged or rejected.
    #[error("{name} was already {status}; only a pending organization can be decided")]
    AlreadyDecided {
        /// The organization's name.
        name: String,
        /// What was decided (a stored status name).
        status: &'static str,
    },
    /// An organization can only be merged into a confirmed one.
    #[error("{0} is not a confirmed organization; merge only into one applicants are offered")]
    TargetNotConfirmed(String),
    /// An organization cannot be merged into itself.
    #[error("an organization cannot be merged into itself")]
    SameOrganization,
    /// The stored status name and merge target do not make a status.
    #[error("stored organization status {0:?} is not valid")]
    StoredStatus(String),
}

/// An organization in the register, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredOrganization {
    /// Name and duplicate-detection key.
    pub organization: Organization,
    /// Where it is in its life.
    pub status: OrganizationStatus,
    /// When an applicant's submitted application registered it.
    pub registered_at: OffsetDateTime,
}

/// A decision taken: the organization as it now is, and the audit event to store with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The organization after the decision.
    pub organization: RegisteredOrganization,
    /// The named event for the audit log.
    pub audit: AuditEvent,
}

impl RegisteredOrganization {
    /// Whether applicants are offered it.
    pub fn is_offered(&self) -> bool {
        self.status == OrganizationStatus::Confirmed
    }

    /// The RA confirms it: from now on applicants find it.
    pub fn confirm(self, actor: &str, at: OffsetDateTime) -> Result<Decision, OrganizationError> {
        self.decide(OrganizationStatus::Confirmed, AuditAction::OrganizationConfirmed, actor, at, json!({}))
    }

    /// The RA finds it is `target` under another spelling.
    pub fn merge_into(
        self,
        target: &RegisteredOrganization,
        actor: &str,
        at: OffsetDateTime,
    ) -> Result<Decision, OrganizationError> {
        if target.organization.key == self.organization.key {
            return Err(OrganizationError::SameOrganization);
        }
        if !target.is_offered() {
            return Err(OrganizationError::TargetNotConfirmed(target.organization.name.as_str().to_owned()));
        }
        let details =
            json!({ "into": target.organization.key.as_str(), "into_name": target.organization.name.as_str() });
        let status = OrganizationStatus::Merged(target.organization.key.clone());
        self.decide(status, AuditAction::OrganizationMerged, actor, at, details)
    }

    /// The RA will not offer it to applicants.
    pub fn reject(self, actor: &str, at: OffsetDateTime) -> Result<Decision, OrganizationError> {
        self.decide(OrganizationStatus::Rejected, AuditAction::OrganizationRejected, actor, at, json!({}))
    }

    fn decide(
        self,
        next: OrganizationStatus,
        action: AuditAction,
        actor: &str,
        at: OffsetDateTime,
        mut details: serde_json::Value,
    ) -> Result<Decision, OrganizationError> {
        if self.status != OrganizationStatus::Pending {
            return Err(OrganizationError::AlreadyDecided {
                name: self.organization.name.as_str().to_owned(),
                status: self.status.name(),
            });
        }
        details["name"] = json!(self.organization.name.as_str());
        let audit = AuditEvent::new(at, actor, action, self.organization.key.as_str(), details);
        Ok(Decision { organization: Self { status: next, ..self }, audit })
    }
}

#[cfg(test)]
mod tests {
    use signet_pki::subject::OrganizationName;
    use time::macros::datetime;

    use super::*;

    const AT: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);

    fn registered(name: &str, status: OrganizationStatus) -> RegisteredOrganization {
        RegisteredOrganization {
            organization: Organization::new(OrganizationName::new(name).unwrap()),
            status,
            registered_at: AT,
        }
    }

    #[test]
    fn pending_is_not_offered_until_confirmed() {
        let pending = registered("Acme, Inc.", OrganizationStatus::Pending);
        assert!(!pending.is_offered());
        let d = pending.confirm("operator:ra1", AT).unwrap();
        assert!(d.organization.is_offered());
        assert_eq!((d.audit.action, d.audit.subject.as_str()), (AuditAction::OrganizationConfirmed, "acme inc"));
        assert_eq!(d.audit.details["name"], "Acme, Inc.");
        assert_eq!(d.audit.actor, "operator:ra1");
    }

    #[test]
    fn merge_goes_only_into_another_confirmed_organization() {
        let target = registered("Acme Corporation", OrganizationStatus::Confirmed);
        let d = registered("Acme Corp Federal", OrganizationStatus::Pending).merge_into(&target, "op", AT).unwrap();
        assert_eq!(d.organization.status, OrganizationStatus::Merged(target.organization.key.clone()));
        assert_eq!(d.organization.status.merged_into(), Some(&target.organization.key));
        assert_eq!(
            (d.audit.action, d.audit.details["into"].as_str()),
            (AuditAction::OrganizationMerged, Some("acme corp"))
        );

        let pending_target = registered("Initech", OrganizationStatus::Pending);
        let refused = registered("Acme Labs", OrganizationStatus::Pending).merge_into(&pending_target, "op", AT);
        assert_eq!(refused, Err(OrganizationError::TargetNotConfirmed("Initech".into())));
        let itself = registered("Acme Labs", OrganizationStatus::Pending);
        assert_eq!(itself.clone().merge_into(&itself, "op", AT), Err(OrganizationError::SameOrganization));
    }

    #[test]
    fn a_decision_is_taken_once() {
        let rejected = registered("Totally Real LLC", OrganizationStatus::Pending).reject("op", AT).unwrap();
        assert_eq!(rejected.organization.status, OrganizationStatus::Rejected);
        assert_eq!(rejected.audit.action, AuditAction::OrganizationRejected);
        let again = rejected.organization.confirm("op", AT).unwrap_err();
        assert_eq!(again, OrganizationError::AlreadyDecided { name: "Totally Real LLC".into(), status: "rejected" });
        assert!(again.to_string().contains("already rejected"), "{again}");
    }

    #[test]
    fn stored_statuses_round_trip_and_strays_are_refused() {
        let key = Organization::new(OrganizationName::new("Acme").unwrap()).key;
        for status in [
            OrganizationStatus::Pending,
            OrganizationStatus::Confirmed,
            OrganizationStatus::Merged(key.clone()),
            OrganizationStatus::Rejected,
        ] {
            assert!(OrganizationStatus::ALL_NAMES.contains(&status.name()));
            let back = OrganizationStatus::from_stored(status.name(), status.merged_into().cloned()).unwrap();
            assert_eq!(back, status);
        }
        assert!(OrganizationStatus::from_stored("merged", None).is_err());
        assert!(OrganizationStatus::from_stored("pending", Some(key)).is_err());
        assert!(OrganizationStatus::from_stored("approved", None).is_err());
    }
}
