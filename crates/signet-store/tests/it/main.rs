//! The storage suites, one test binary: each module drives one part of the store against both
//! SQLite and PostgreSQL.

mod applications;
mod audit_lanes;
mod common;
mod key_recovery;
mod operators;
mod passkeys;
mod repository;
mod store;
mod token_stock;
