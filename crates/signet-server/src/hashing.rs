//! The bound on password hashing. Every sign-in, retrieval and new password runs Argon2id,
//! 19 MiB and tens of milliseconds of a core each, and most of those requests come before
//! anyone has proved who they are. Without a bound, a few hundred made-up retrievals take
//! gigabytes and starve OCSP; with one, memory stays at the budget and a request beyond it
//! waits briefly, then is told to come back (503 with Retry-After).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet_ra::application::{HashMemory, HashingBusy, PasswordChecker, PasswordHash};
use tokio::sync::Semaphore;

/// How many hashes run at once, how long a request waits for a turn, and the working memory
/// each turn reuses (made on first need, at most one per slot).
pub(crate) struct PasswordWork {
    slots: Arc<Semaphore>,
    wait: Duration,
    memory: Arc<Mutex<Vec<HashMemory>>>,
}

/// What a client told "busy" is asked to wait before retrying, in seconds.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 2;

impl PasswordWork {
    pub(crate) fn new(slots: usize, wait: Duration) -> Self {
        Self { slots: Arc::new(Semaphore::new(slots)), wait, memory: Arc::default() }
    }

    /// Runs `work` (a hash or a verification) on the blocking pool once a slot is free, with
    /// the slot's working memory.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashingBusy> {
        let slot = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashingBusy)?
            .map_err(|_| HashingBusy)?;
        let pool = self.memory.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut memory = pool.lock().expect("memory pool poisoned").pop().unwrap_or_default();
            let out = work(&mut memory);
            pool.lock().expect("memory pool poisoned").push(memory);
            drop(slot);
            out
        })
        .await;
        // A panic inside Argon2 is a bug, not load; it surfaces as the runtime's panic log.
        done.map_err(|e| {
            tracing::error!(error = %e, "password hashing task failed");
            HashingBusy
        })
    }
}

impl PasswordChecker for PasswordWork {
    async fn verify(&self, hash: PasswordHash, candidate: String) -> Result<bool, HashingBusy> {
        self.run(move |memory| hash.verify_in(&candidate, memory)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_bound_answers_busy_after_the_wait_and_frees_its_slot() {
        let work = Arc::new(PasswordWork::new(1, Duration::from_millis(50)));
        let (started, release) = (Arc::new(tokio::sync::Notify::new()), Arc::new(std::sync::Barrier::new(2)));
        let holder = {
            let (work, started, release) = (work.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                work.run(move |_| {
                    started.notify_one();
                    release.wait();
                })
                .await
            })
        };
        started.notified().await;
        assert_eq!(work.run(|_| 1).await, Err(HashingBusy), "the only slot is taken");
        release.wait();
        holder.await.unwrap().unwrap();
        assert_eq!(work.run(|_| 2).await, Ok(2), "the slot came back");
        assert_eq!(work.memory.lock().unwrap().len(), 1, "one slot, one working memory, kept");
    }
}
