//! The storage the enrollment workflow consumes; `signet-store` implements it.

use std::future::Future;

use super::lifecycle::{Application, Transition};
use crate::application_form::{Organization, OrganizationKey};
use crate::audit::AuditEvent;
use crate::ids::ApplicationId;
use crate::issuance::StoreError;
use crate::outbox::OutboxMessage;
use crate::password::PasswordHash;

/// The storage the enrollment workflow consumes; `signet-store` implements it. Every write that
/// changes an application also chains its audit event and queues its outbox messages in the
/// same database transaction, so a notice is sent if and only if the change happened.
pub trait ApplicationStore: Send + Sync {
    /// Stores a submitted application (revision 0), the applicant's account password hash, the
    /// submission audit event and the outbox messages. `Conflict("id")` if the reference is
    /// taken (generate another and retry).
    fn create(
        &self,
        submitted: &Transition,
        password: &PasswordHash,
        outbox: &[OutboxMessage],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Loads an application, `None` if there is none with that reference.
    fn load(&self, id: &ApplicationId) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Saves a transition if the stored revision is still `revision - 1`, with its audit event
    /// and outbox messages. `Conflict("revision")` if someone else changed it first.
    fn save_transition(
        &self,
        transition: &Transition,
        outbox: &[OutboxMessage],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queues messages that accompany no state change (deadline reminders). A message whose
    /// `dedup_key` was queued before is skipped, so the job may run as often as it likes.
    fn enqueue(&self, outbox: &[OutboxMessage]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Open applications with references after `after`, in reference order, at most `limit`:
    /// the deadline job pages through them with `vetting::due_actions`.
    fn open_applications(
        &self,
        after: Option<&ApplicationId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;

    /// Confirmed organizations whose key equals `key`, or that the organization with that key
    /// was merged into (the "did you mean" list before registering one). Pending and rejected
    /// ones are not offered: see [`crate::organization`].
    fn find_organizations(
        &self,
        key: &OrganizationKey,
    ) -> impl Future<Output = Result<Vec<Organization>, StoreError>> + Send;

    /// Registers an organization, pending the RA's decision, with its audit event.
    /// `Conflict("organization")` if the key exists, whatever its status.
    fn create_organization(
        &self,
        organization: &Organization,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
