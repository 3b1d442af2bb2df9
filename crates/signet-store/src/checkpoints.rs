//! SQLite's write-ahead log copied back into the database file beside the CA's writer rather
//! than inside its commits.
//!
//! Left to SQLite, the connection whose commit takes the log past its limit copies the log
//! into the database file and syncs both, inside that commit. Under load that connection is
//! the CA's writer, and every issuance in its group waits for the copy and the syncs. So the
//! writer asks for a passive checkpoint on another connection every [`CHECKPOINT_EVERY`]
//! writes: it copies what the log holds without taking the write lock, while the writer goes
//! on committing. SQLite's own checkpoint stays as the bound ([`AUTOCHECKPOINT_PAGES`]): it
//! finds the log mostly copied already, so it costs the commit that meets it little, and the
//! next write starts the log again from its beginning. What this does not do: anything on
//! PostgreSQL, whose server checkpoints by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::AnyPool;

/// How many CA writes the writer makes between two checkpoints it asks for: about a few
/// hundred log pages, a few milliseconds of copying.
pub const CHECKPOINT_EVERY: usize = 128;

/// The log's length, in pages, at which a committing connection checkpoints by itself
/// (SQLite's `wal_autocheckpoint`, whose default is 1,000): four times the default, so that
/// under load it is the background checkpoints that copy the log, and a log this long (16 MB
/// of 4 KB pages) is still copied back by any connection that writes.
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 4000;

/// The writer's count of writes since its last checkpoint, and whether one is running.
#[derive(Default)]
pub(crate) struct Checkpoints {
    since: usize,
    running: Arc<AtomicBool>,
}

impl Checkpoints {
    /// Counts `writes` just committed; when enough have been, starts a checkpoint on a
    /// connection of `pool` unless one is running still.
    pub(crate) fn committed(&mut self, pool: &AnyPool, writes: usize) {
        self.since += writes;
        if self.since < CHECKPOINT_EVERY || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.since = 0;
        let (pool, running) = (pool.clone(), self.running.clone());
        tokio::spawn(async move {
            // PASSIVE copies what it can without waiting for readers or the writer; what it
            // leaves, the next one copies.
            let done = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await;
            if let Err(e) = done
                && !pool.is_closed()
            {
                tracing::warn!(error = %e, "checkpointing the SQLite log failed; the next checkpoint will copy it");
            }
            running.store(false, Ordering::Release);
        });
    }
}
