//! Turns for this process's writers on SQLite.
//!
//! SQLite lets one connection write at a time. Another writer is refused and tries again from
//! SQLite's busy handler, which sleeps 1, 2, 5, … and then 100 ms between tries. Under issuance
//! the CA's writer commits one group after another and holds the lock nearly all the time, so
//! a writer asleep in the handler seldom wakes to find it free: ACME requests and portal
//! changes waited up to a second behind issuance. Writers that first take a turn here queue
//! in the order they came and find the lock free when their turn comes. PostgreSQL locks
//! rows, not the database, and takes no turns.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

use crate::Backend;

/// The queue of this process's SQLite writers; every clone of a store shares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurns(Option<Arc<Mutex<()>>>);

impl WriteTurns {
    pub(crate) fn of_backend(backend: Backend) -> Self {
        Self((backend == Backend::Sqlite).then(Default::default))
    }

    /// Waits for this writer's turn (first come, first served), which lasts as long as the
    /// guard: take it before the transaction begins and keep it until it commits.
    pub(crate) async fn take(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.0 {
            Some(turns) => Some(turns.lock().await),
            None => None,
        }
    }
}
