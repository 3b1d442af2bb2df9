//! The certificate authority and the work of a Signet node that is not HTTP.
//!
//! What it does: the [`Authority`] the RA instructs — issue, revoke, OCSP answers, CRLs — whose
//! one in-process implementation, [`CaAuthority`], is the only holder of the CA signer and keeps
//! the consequences of issuing and revoking (pre-signed OCSP answers, the CRL cache) beside the
//! key; the [`Core`] a node shares between its pages, its command line and its background
//! [`jobs`] (revocation with the subscriber's notice, application commands, the token
//! [`stock`]); all configuration ([`config`], [`tls`], [`limits`], [`acme`] settings, the
//! [`effective`] listing); the CA folder ([`ca_files`]); outbound [`mail`]; the application
//! forms ([`forms_pdf`]) and timeline picture ([`timeline_svg`]); ACME's JWS format and
//! challenge validation; the Prometheus [`metrics`] registry; the HTTPS certificate a node issues
//! itself ([`self_issued`]).
//!
//! What it does not do: no HTTP routing, pages or error mapping (the web crate,
//! `signet-server`), no certificate encoding (`signet-pki`), no domain rules (`signet-ra`), no
//! SQL (`signet-store`). Requests to the [`Authority`] are owned data, so it could run in a
//! process of its own; today it runs in the node's.

pub mod acme;
mod authority;
mod ca;
pub mod ca_files;
pub mod config;
mod config_error;
mod core;
pub mod effective;
pub mod forms_pdf;
mod group_commit;
mod job;
pub mod jobs;
pub mod limits;
pub mod mail;
pub mod metrics;
mod ocsp;
pub mod renewal;
pub mod self_issued;
pub mod stock;
pub mod timeline_svg;
pub mod tls;

pub use authority::{Authority, CaCertificates, IssueRequest, OcspAnswer, OcspQuery, ProbeError, RevokeRequest};
pub use ca::{CaAuthority, CaSettings};
pub use config::{ConfigError, ServerConfig, Settings};
pub use core::{CommandFailure, Core, EnterpriseFailure, OpenError, Opened};
pub use group_commit::GroupCommit;
pub use ocsp::STATUS_TTL as OCSP_STATUS_TTL;
