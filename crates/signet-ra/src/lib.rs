//! Signet's registration-authority domain.
//!
//! What it does: the rules around the CA — the issuance and revocation workflows
//! (parse, policy, record intent, sign, store; audit every state change), the clock, and
//! the hash-chained audit log's events. It declares the storage traits it consumes
//! ([`issuance::CaStore`]); `signet-store` implements them.
//!
//! What it does not do: no HTTP, no SQL, no files. Enrollment, vetting and accounts arrive
//! with later issues.

pub mod audit;
pub mod clock;
pub mod issuance;

pub use clock::{Clock, FakeClock, SystemClock};
