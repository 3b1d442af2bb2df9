//! ACME (RFC 8555) for device certificates: the rules, without HTTP or JSON Web Signatures.
//!
//! DESIGN §1: enterprise account admins get device (TLS server/client) certificates "by hand or
//! via ACME". An enterprise account is bound to an ACME account by an External Account Binding
//! key (RFC 8555 §7.3.4) that an administrator creates for one organization and the DNS domains
//! registered for it; the key binds exactly one ACME account, and every name that account
//! orders must lie under one of those domains (the organization-scoped name rule).
//!
//! Lifecycles are enums changed by consuming transitions, as RFC 8555 §7.1.6 draws them:
//! an order is pending until all its authorizations are valid, then ready; finalizing makes it
//! processing, then valid (with a certificate) or invalid. An authorization's challenge goes
//! pending → processing → valid / invalid and takes the authorization with it. The pending /
//! ready part of an order is derived from its authorizations rather than stored, so two
//! authorizations validated at once on two nodes cannot leave an order stuck in pending.
//!
//! Declares [`AcmeStore`], which `signet-store` implements.
//!
//! The pieces: identifiers and input errors (`ids`), the organization's domains and the names
//! ordered under them (`domains`), External Account Binding keys (`eab`), accounts
//! (`account`), problem documents (`problem`), authorizations with their challenges
//! (`authorization`), orders (`order`) and the store (`store`).

mod account;
mod authorization;
mod domains;
mod eab;
mod ids;
mod order;
mod problem;
mod store;

use time::Duration;

pub use account::{Account, AccountError, AccountStatus, KeyThumbprint, parse_contacts};
pub use authorization::{
    Authorization, AuthorizationStatus, Challenge, ChallengeKind, ChallengeStatus, Respond, Validation, dns01_txt,
    key_authorization,
};
pub use domains::{DomainScope, DomainSuffix, Identifier};
pub use eab::{EabAlgorithm, EabBinding, EabHmacKey, EabKey};
pub use ids::{AccountId, AcmeInputError, AuthorizationId, ChallengeId, ChallengeToken, EabKeyId, Nonce, OrderId};
pub use order::{Finalizing, NewOrder, Order, OrderError, OrderMove, OrderProgress, OrderStatus};
pub use problem::{AcmeProblem, ProblemKind};
pub use store::AcmeStore;

/// How long an order and its authorizations stay usable (Let's Encrypt uses 7 days too).
pub const ORDER_LIFETIME: Duration = Duration::days(7);

/// How long a replay nonce is accepted after it was handed out.
pub const NONCE_LIFETIME: Duration = Duration::hours(1);

/// The most names one order may carry.
pub const MAX_IDENTIFIERS: usize = 20;

/// Test helpers: a fixed time and an account scoped to given domains.
#[cfg(test)]
mod testing {
    use signet_pki::subject::OrganizationName;
    use time::OffsetDateTime;

    use super::{Account, DomainScope, EabKey, KeyThumbprint};

    pub(super) fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    pub(super) fn account(domains: &str) -> Account {
        let eab = EabKey::generate(
            OrganizationName::new("Acme Devices").unwrap(),
            DomainScope::parse(domains).unwrap(),
            t0(),
        );
        let thumb = KeyThumbprint::new(&"a".repeat(43)).unwrap();
        Account::register("{}".into(), thumb, eab, vec![], t0()).unwrap().0
    }
}
