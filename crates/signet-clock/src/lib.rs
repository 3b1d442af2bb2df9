//! The injected clock of Signet's crates.
//!
//! What it does: one trait, [`Clock`], for "now in UTC"; production reads the system time
//! ([`SystemClock`]), tests move a [`FakeClock`] to cross deadlines and validity ends without
//! sleeping. A crate that only needs the time (the gateway's revocation checks) depends on
//! this crate alone rather than on the whole registration-authority domain.
//!
//! What it does not do: no timers, no sleeping, no time zones other than UTC, no
//! monotonic time for measuring durations.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    /// A clock stopped at `at`.
    pub fn at(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
