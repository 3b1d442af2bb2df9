//! `signet gateway`: the mTLS reverse proxy a relying application puts in front of itself
//! (DESIGN §2 "Relying party").
//!
//! What it does: terminates TLS (rustls, TLS 1.3 and 1.2) and asks for a client
//! certificate; validates the path to the configured trust anchors ([`chain`]), requires one
//! of the application's policy OIDs — Keycloak's `requiredCertificatePolicies` — globally or
//! per route ([`policy`]), checks revocation by OCSP then CRL with hard or soft fail
//! ([`revocation`]), decides on one canonical request path ([`canonical`]) and screens the
//! request headers ([`headers`]), maps the certificate to a linked account ([`accounts`],
//! [`links`]; certificate holders ask for links on the gateway's own pages,
//! [`selfservice`]), and proxies to the application with verified identity headers
//! (`X-Signet-Subject`, `-Issuer`, `-Serial`, `-Assurance`, `-Account`), dropping any copies
//! the client sent in any spelling. Every refusal is a readable page or problem+json naming
//! the reason ([`Denial`]).
//!
//! What it does not do: no certificate issuance; its only database is the link database;
//! time comes from the injected [`signet_clock::Clock`].

pub mod accounts;
pub mod bench;
pub mod canonical;
pub mod chain;
pub mod config;
pub mod denial;
pub mod fetch;
pub mod headers;
pub mod links;
pub mod policy;
pub mod revocation;
pub mod selfservice;
mod server;
pub mod tls;

pub use config::{ConfigError, FailMode, GatewayConfig, GatewayConfigFile};
pub use denial::Denial;
pub use server::{Body, IDENTITY_HEADERS, Identity, RunningGateway, StartError, header_text, spawn};
