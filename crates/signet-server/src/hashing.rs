//! The bound on password hashing. Every sign-in, retrieval and new password runs Argon2id,
//! 19 MiB and tens of milliseconds of a core each, and most of those requests come before
//! anyone has proved who they are. Without a bound, a few hundred made-up retrievals took
//! gigabytes and starved OCSP. Here a fixed set of threads does all hashing, each in working
//! memory it keeps, at a lower scheduling priority than the threads that answer requests: memory
//! stays at the budget, OCSP and pages keep their cores, and a request that cannot get a turn
//! soon is told to come back (503 with Retry-After).

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signet_ra::application::{HashMemory, HashingBusy, PasswordChecker, PasswordHash};
use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// The hashing threads, how many requests they take at once, and how long a request waits for
/// a turn.
pub(crate) struct PasswordWork {
    turns: Arc<Semaphore>,
    wait: Duration,
    jobs: mpsc::Sender<Job>,
}

/// What a client told "busy" is asked to wait before retrying, in seconds.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 2;

impl PasswordWork {
    /// Starts `threads` hashing threads; they end when this is dropped.
    pub(crate) fn new(threads: usize, wait: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("signet-hash-{n}"))
                .spawn(move || hash_thread(&queue))
                .expect("the system could not start a hashing thread");
        }
        Self { turns: Arc::new(Semaphore::new(threads)), wait, jobs }
    }

    /// Runs `work` (a hash or a verification) on a hashing thread, with that thread's working
    /// memory, once a turn is free.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashingBusy> {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| HashingBusy)?
            .map_err(|_| HashingBusy)?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = answer.send(work(memory));
            drop(turn);
        });
        self.jobs.send(job).map_err(|_| HashingBusy)?;
        // The sender is gone only if the work panicked (logged by the thread).
        answered.await.map_err(|_| HashingBusy)
    }
}

/// One hashing thread: takes jobs until the sender is dropped.
fn hash_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    yield_to_requests();
    let mut memory: Option<HashMemory> = None;
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let memory = memory.get_or_insert_with(HashMemory::new);
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(memory))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// Lowers this thread's priority (nice 10), so hashing takes the cores only when requests leave
/// them idle. Best effort: where it cannot, hashing runs at normal priority, still bounded.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::warn!(error = %e, "could not lower the password hashing threads' priority");
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
    async fn a_full_bound_answers_busy_after_the_wait_and_frees_its_turn() {
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
        assert_eq!(work.run(|_| 1).await, Err(HashingBusy), "the only turn is taken");
        release.wait();
        holder.await.unwrap().unwrap();
        assert_eq!(work.run(|_| 2).await, Ok(2), "the turn came back");
    }

    #[tokio::test]
    async fn one_thread_keeps_one_working_memory_and_survives_a_panic() {
        let work = PasswordWork::new(1, Duration::from_secs(5));
        let first = work.run(|memory| std::ptr::from_ref(memory) as usize).await.unwrap();
        assert_eq!(work.run(|_| -> u8 { panic!("a bug in a job") }).await, Err(HashingBusy));
        let again = work.run(|memory| std::ptr::from_ref(memory) as usize).await.unwrap();
        assert_eq!(first, again, "the same memory, reused after the panic");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_below_normal_priority() {
        let work = PasswordWork::new(1, Duration::from_secs(5));
        let nice =
            work.run(|_| rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()).await.unwrap();
        assert_eq!(nice, 10);
    }
}
