//! The storage ACME consumes; `signet-store` implements it.

use std::future::Future;

use signet_pki::Serial;
use time::OffsetDateTime;

use super::{
    Account, AccountId, Authorization, AuthorizationId, ChallengeId, EabKey, EabKeyId, KeyThumbprint, NewOrder, Nonce,
    Order, OrderId, OrderProgress,
};
use crate::audit::AuditEvent;
use crate::issuance::StoreError;

/// The storage ACME consumes; `signet-store` implements it. Every state change is one
/// transaction with its audit event.
pub trait AcmeStore: Send + Sync {
    /// Stores a new unbound EAB key with its secret.
    fn create_eab_key(&self, key: &EabKey, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An EAB key by id.
    fn eab_key(&self, id: &EabKeyId) -> impl Future<Output = Result<Option<EabKey>, StoreError>> + Send;

    /// Stores a new account and binds its EAB key (erasing the key's secret), only if the key
    /// is still unbound: `Conflict("eab key used")` otherwise, `Conflict("account key")` if
    /// another account has the same key.
    fn create_account(
        &self,
        account: &Account,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An account by id.
    fn account(&self, id: &AccountId) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// The account with this key.
    fn account_by_thumbprint(
        &self,
        thumbprint: &KeyThumbprint,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Saves a deactivated account; `Conflict("account status")` if it was not valid.
    fn deactivate_account(
        &self,
        account: &Account,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a new order and its authorizations and challenges.
    fn create_order(&self, order: &NewOrder, audit: AuditEvent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An order by id.
    fn order(&self, id: &OrderId) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// The order that produced the certificate `serial`.
    fn order_by_certificate(&self, serial: &Serial) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;

    /// The ids of an account's orders, newest first.
    fn account_orders(&self, account: &AccountId) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;

    /// Saves an order's new progress, only over `from` (the progress it was changed from):
    /// `Conflict("order progress")` if another request moved it first.
    fn save_order_progress(
        &self,
        order: &Order,
        from: &OrderProgress,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An authorization with its challenges.
    fn authorization(
        &self,
        id: &AuthorizationId,
    ) -> impl Future<Output = Result<Option<Authorization>, StoreError>> + Send;

    /// The authorization holding a challenge.
    fn authorization_by_challenge(
        &self,
        challenge: &ChallengeId,
    ) -> impl Future<Output = Result<Option<Authorization>, StoreError>> + Send;

    /// Saves a concluded validation (the authorization and `challenge`), only over a pending
    /// authorization: `Conflict("authorization status")` if it was concluded meanwhile.
    fn record_validation(
        &self,
        authorization: &Authorization,
        challenge: &ChallengeId,
        audit: AuditEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores a nonce handed out at `now`, valid for [`NONCE_LIFETIME`]. Not audited: nonces are the
    /// protocol's anti-replay plumbing, not state anyone acts on, and auditing them would
    /// make every ACME response a write on the audit chain's head.
    fn issue_nonce(&self, nonce: &Nonce, now: OffsetDateTime) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Spends a nonce: true once if it was handed out and has not expired at `now`, on
    /// whichever node it is presented.
    fn consume_nonce(
        &self,
        nonce: &Nonce,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
