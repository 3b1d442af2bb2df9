//! Signet's registration-authority domain.
//!
//! What it does: the rules around the CA — the issuance and revocation workflows
//! (parse, policy, record intent, sign, store; audit every state change) and the
//! hash-chained audit log's events. It declares the storage traits it consumes
//! ([`issuance::CaStore`]); `signet-store` implements them. The clock is `signet-clock`'s,
//! re-exported as [`clock`].
//!
//! What it does not do: no HTTP, no SQL, no files.
//!
//! Enrollment: the application lifecycle ([`application`]), vetting checks and the
//! deadline engine ([`vetting`]), the Certificate Selection Wizard ([`wizard`]) and applicant
//! notices as an outbox ([`notify`]), consuming [`application::ApplicationStore`]. What
//! these share — identifiers and actors, the submitted form, the account password, one-time
//! secrets, vetting evidence and its checks, the deadline rules, outbox messages — lives in
//! private leaf modules below them and is re-exported where it has always been named, so that
//! notices sit above vetting, vetting above the application, and none imports one above it.
//!
//! Operator console sign-in: RA operator accounts and roles ([`operator`]), TOTP
//! ([`totp`]) and lockouts on every typed secret ([`lockout`]), consuming
//! [`operator::OperatorStore`] and [`lockout::AttemptStore`].
//!
//! Background jobs: the outbox's delivery retry policy ([`delivery`]).
//!
//! Device certificates over ACME: External Account Binding keys per enterprise
//! organization, accounts, orders, authorizations and challenges ([`acme`]), consuming
//! [`acme::AcmeStore`].
//!
//! Certificate Management Center: soft tokens, sign-in, step-up and recovery
//! ([`cmc`]), renewal's window and proof ([`renewal`]), enterprise account users
//! ([`enterprise`]); password reset by emailed link ([`password_reset`]). Consuming
//! [`cmc::SoftTokenStore`], [`enterprise::EnterpriseStore`] and
//! [`password_reset::PasswordResetStore`]. Passkeys (WebAuthn, on the `webauthn_rp` library)
//! as the second factor of subscribers and operators alike ([`passkey`]), consuming
//! [`passkey::PasskeyStore`].
//!
//! Key escrow and recovery: encryption keys escrowed before their certificates are issued, and
//! recovered only after two different key recovery agents approved ([`key_recovery`]); in-person
//! witnessed key generation where no token attestation exists ([`witness`]). Consuming
//! [`key_recovery::KeyRecoveryStore`] and [`witness::WitnessStore`].
//!
//! The public repository of certificates: what a lookup by email address returns and the
//! subscriber's choice to publish identity certificates ([`repository`]), consuming
//! [`repository::RepositoryStore`].
//!
//! Hardware-key assurance: the RA's stock of provisioned tokens, bound to one application at
//! shipment, and the shipment key's proof that a retrieval or renewal runs on that very token
//! ([`token_stock`]), consuming [`token_stock::TokenStockStore`].

pub mod acme;
pub mod application;
mod application_form;
pub mod audit;
pub mod cmc;
pub mod contact;
pub mod data_file;
mod deadline;
pub mod delivery;
pub mod enterprise;
mod evidence;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod forms_mail;
mod ids;
mod input;
pub mod issuance;
pub mod jws;
pub mod key_recovery;
pub mod lockout;
pub mod mail_templates;
pub mod notify;
pub mod operator;
pub mod organization;
mod outbox;
pub mod passkey;
mod password;
pub mod password_reset;
pub mod prices;
pub mod renewal;
pub mod repository;
mod secrets;
pub mod token_stock;
pub mod totp;
pub mod vetting;
pub mod witness;
pub mod wizard;

// The clock lives in its own crate so the gateway can take it without this one; the old
// paths (`signet_ra::Clock`, `signet_ra::clock::…`) stay for the crates above.
pub use signet_clock as clock;
pub use signet_clock::{Clock, FakeClock, SystemClock};
