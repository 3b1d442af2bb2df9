//! Group commit: the CA's concurrent issuances and revocations share transactions.
//!
//! One writer task per node takes every write waiting when it is free — intents of some
//! issuances, certificates of others, revocations — and makes them in one transaction with one
//! append to the node's audit lane. Each caller still waits for its own write's commit before
//! going on: an intent is stored before its certificate is signed, and a certificate is stored
//! before it is delivered, exactly as when each had a transaction of its own. Under load the
//! batches grow by themselves (whatever arrived during the last commit), so the database does
//! a few large commits instead of many small ones; when the node is idle a batch is one write
//! and waits for nothing (after a burst, the first write alone may wait once, see below).
//!
//! Left to itself the writer would commit as soon as anything waits, and under load it would
//! make one small transaction after another: each costs the database the same statements
//! whatever it holds. So callers that will write soon say so ([`GroupCommit::expect_writes`]);
//! while some of them have not queued their write, the writer waits for them, a moment at most
//! ([`GATHER_AT_MOST`]), and they share the transaction. How many it waits for depends on where
//! the commit's work is done ([`Share`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signet_pki::crl::RevokedEntry;
use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::OrderMove;
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::{CaStore, IssuanceIntent, Revoked, StoreError, StoredStatus};
use signet_ra::notify::OutboxMessage;
use signet_store::{Backend, CaWrite, PendingWrite, Store, Written};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

// The most writes in one transaction: enough for every connection of a busy node, and few
// enough that one batch's audit insert stays far below the databases' limits on parameters.
const MAX_BATCH: usize = 256;
// How long the writer keeps its database connection without a write to make.
const KEEP_CONNECTION: std::time::Duration = std::time::Duration::from_millis(50);
/// The longest the writer waits for the writes of callers it expects: about what a few
/// issuances need to sign their certificates, small beside the latency an RA client allows.
pub const GATHER_AT_MOST: std::time::Duration = std::time::Duration::from_millis(2);

/// How many of the callers it expects the writer waits for before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    /// All of them. PostgreSQL's commit is mostly a wait for its server to flush the log, so
    /// the fewer the commits the better.
    All,
    /// Half. SQLite's commit runs in one thread on this node's own cores: a group holding
    /// every caller would leave the other cores idle while it is written. With half, one half
    /// signs while the other half's writes are committed.
    Half,
}

impl Share {
    fn of_backend(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::All,
            Backend::Sqlite => Self::Half,
        }
    }

    /// How many writes to wait for when `n` callers are expected.
    fn of(self, n: usize) -> usize {
        match self {
            Self::All => n,
            Self::Half => n.div_ceil(2),
        }
    }
}

struct Queued {
    write: PendingWrite,
    done: oneshot::Sender<Result<Written, StoreError>>,
}

/// The CA's records written through one batching writer; reads go straight to the store.
pub struct GroupCommit {
    store: Store,
    queue: mpsc::Sender<Queued>,
    expected: Arc<AtomicUsize>,
}

/// A caller counted as about to write, for as long as this lives.
pub struct Expected<'a>(&'a AtomicUsize);

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GroupCommit {
    /// Starts the writer task (on the current Tokio runtime); it ends when this is dropped.
    pub fn start(store: Store, metrics: Arc<Metrics>) -> Self {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let expected = Arc::new(AtomicUsize::new(0));
        tokio::spawn(writer(store.clone(), rx, expected.clone(), Share::of_backend(store.backend()), metrics));
        Self { store, queue, expected }
    }

    /// Counts the caller as one that will write soon (an issuance writes its intent, then its
    /// certificate) until the guard is dropped.
    pub fn expect_writes(&self) -> Expected<'_> {
        self.expected.fetch_add(1, Ordering::Relaxed);
        Expected(&self.expected)
    }

    /// How many callers are counted as about to write.
    pub fn expected(&self) -> usize {
        self.expected.load(Ordering::Relaxed)
    }

    async fn write(&self, write: CaWrite) -> Result<Written, StoreError> {
        let (done, outcome) = oneshot::channel();
        let stopped = || StoreError::Backend("the CA's database writer has stopped".into());
        self.queue.send(Queued { write: write.in_this_request(), done }).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Queued>,
    expected: Arc<AtomicUsize>,
    share: Share,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut db = store.ca_writer();
    // How many writes the last transaction held. Callers between two issuances (answering
    // one, reading the next request) are not counted as expected, yet they come back: waiting
    // for as many as came last time keeps them in one transaction rather than several.
    let mut last = 0;
    loop {
        // The writer keeps its connection while writes keep coming, and gives it back when
        // they pause, so that closing the store (which waits for it) is never held up long.
        let received = match tokio::time::timeout(KEEP_CONNECTION, rx.recv_many(&mut batch, MAX_BATCH)).await {
            Ok(received) => received,
            Err(_) => {
                db.release();
                rx.recv_many(&mut batch, MAX_BATCH).await
            }
        };
        if received == 0 {
            return;
        }
        // Nobody expected (an idle node, a revocation alone): the write goes at once.
        let want = match expected.load(Ordering::Relaxed) {
            0 => 0,
            n => share.of(n.max(last).min(MAX_BATCH)),
        };
        gather(&mut rx, &mut batch, want).await;
        last = batch.len();
        metrics.ca_transaction(batch.len());
        let (writes, done): (Vec<_>, Vec<_>) = batch.drain(..).map(|q| (q.write, q.done)).unzip();
        match db.write(&writes).await {
            Ok(outcomes) => {
                for (done, outcome) in done.into_iter().zip(outcomes) {
                    // A caller that gave up (its request was cancelled) needs no answer.
                    let _ = done.send(outcome);
                }
            }
            // The transaction failed as a whole: each write again on its own, so one that
            // cannot be made does not fail the others with it.
            Err(e) if writes.len() > 1 => {
                tracing::warn!(error = %e, writes = writes.len(), "a grouped CA transaction failed; writing one by one");
                for (write, done) in writes.iter().zip(done) {
                    let _ = done.send(store.write_alone(write).await);
                }
            }
            Err(e) => {
                for done in done {
                    let _ = done.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

/// Adds writes to `batch` until it holds `want` (at most [`MAX_BATCH`]) or [`GATHER_AT_MOST`]
/// has passed.
async fn gather(rx: &mut mpsc::Receiver<Queued>, batch: &mut Vec<Queued>, want: usize) {
    let deadline = tokio::time::Instant::now() + GATHER_AT_MOST;
    while batch.len() < want {
        let room = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(deadline, rx.recv_many(batch, room)).await {
            Ok(received) if received > 0 => {}
            _ => return,
        }
    }
}

impl CaStore for GroupCommit {
    async fn record_intent(
        &self,
        intent: &IssuanceIntent,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        self.write(CaWrite::Intent { intent: intent.clone(), audit, order: order.cloned() }).await.map(drop)
    }

    async fn complete_issuance(
        &self,
        cert: &IssuedCertificate,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        self.write(CaWrite::Complete { cert: cert.clone(), audit, order: order.cloned() }).await.map(drop)
    }

    async fn fail_issuance(
        &self,
        serial: &Serial,
        audit: AuditEvent,
        order: Option<&OrderMove>,
    ) -> Result<(), StoreError> {
        self.write(CaWrite::Fail { serial: serial.clone(), audit, order: order.cloned() }).await.map(drop)
    }

    fn abandon_intents(
        &self,
        before: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Serial>, StoreError>> + Send {
        self.store.abandon_intents(before, now, limit)
    }

    async fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: OffsetDateTime,
        audit: AuditEvent,
        outbox: &[OutboxMessage],
    ) -> Result<Revoked, StoreError> {
        let write = CaWrite::Revoke { serial: serial.clone(), reason, at, audit, outbox: outbox.to_vec() };
        self.write(write).await?.revocation()
    }

    fn status(&self, serial: &Serial) -> impl Future<Output = Result<Option<StoredStatus>, StoreError>> + Send {
        self.store.status(serial)
    }

    fn next_crl_number(&self, audit: AuditEvent) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.store.next_crl_number(audit)
    }

    fn revoked_unexpired(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<RevokedEntry>, StoreError>> + Send {
        self.store.revoked_unexpired(now)
    }
}

#[cfg(test)]
mod tests {
    use signet_pki::profile::Catalog;
    use signet_ra::audit::AuditAction;
    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-12-06 12:00 UTC);

    fn intent(key: &str) -> (IssuanceIntent, AuditEvent) {
        let serial = Serial::random();
        let audit = AuditEvent::new(T, "test", AuditAction::IssuanceIntent, serial.to_hex(), serde_json::json!({}));
        let intent = IssuanceIntent {
            serial,
            profile: "medium-identity".into(),
            subject_json: "{}".into(),
            spki_sha256: key.into(),
            requested_by: "test".into(),
            at: T,
        };
        (intent, audit)
    }

    fn queued(key: &str) -> Queued {
        let (intent, audit) = intent(key);
        Queued { write: CaWrite::Intent { intent, audit, order: None }.in_this_request(), done: oneshot::channel().0 }
    }

    // On Tokio's paused clock: time moves only when every task waits, so the waits are exact.
    #[tokio::test(start_paused = true)]
    async fn the_writer_waits_for_expected_writes_a_moment_at_most() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut batch = vec![queued("first")];

        // Nobody else expected: the write goes at once.
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut batch, 0).await;
        assert_eq!((batch.len(), start.elapsed()), (1, std::time::Duration::ZERO));

        // A second write expected and coming 1 ms later: the two go together, when it comes.
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            late.send(queued("second")).await.ok();
        });
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut batch, 2).await;
        assert_eq!((batch.len(), start.elapsed()), (2, std::time::Duration::from_millis(1)));

        // A third expected that never comes: the two go after the longest wait, no later.
        let start = tokio::time::Instant::now();
        gather(&mut rx, &mut batch, 3).await;
        assert_eq!((batch.len(), start.elapsed()), (2, GATHER_AT_MOST));
        drop(tx);
    }

    // PostgreSQL waits for every caller expected, SQLite for half of them (rounded up, so a
    // caller alone is still waited for).
    #[test]
    fn the_writer_waits_for_all_or_half() {
        assert_eq!([1, 15, 16].map(|n| Share::of_backend(Backend::Postgres).of(n)), [1, 15, 16]);
        assert_eq!([1, 15, 16].map(|n| Share::of_backend(Backend::Sqlite).of(n)), [1, 8, 8]);
    }

    // Everything that waits when the writer is free goes into one transaction, each write with
    // its own outcome; a write alone waits for nothing.
    #[tokio::test]
    async fn writes_waiting_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/signet.db", dir.path().display())).await.unwrap();
        let metrics = Arc::new(Metrics::new(&Catalog::default_eca()));
        let writer = GroupCommit::start(store.clone(), metrics.clone());
        let mut writes: Vec<_> = (0..40).map(|i| intent(&format!("key-{i}"))).collect();
        writes.push(intent("key-7"));
        // Polled together in this one task, all forty-one are queued before the writer runs.
        let outcomes =
            futures_util::future::join_all(writes.iter().map(|(i, a)| writer.record_intent(i, a.clone(), None))).await;
        assert!(outcomes[..40].iter().all(Result::is_ok), "{outcomes:?}");
        assert!(matches!(outcomes[40], Err(StoreError::Conflict("key"))), "the second use of a key is refused");
        let text = metrics.exposition(&store, T).await;
        assert!(text.contains("signet_ca_write_transactions_total 1\n"), "{text}");
        assert!(text.contains("signet_ca_writes_total 41\n"), "{text}");
        assert_eq!(store.verify_audit().await.unwrap(), Ok(40), "one audit row per intent stored");

        let (i, a) = intent("key-alone");
        writer.record_intent(&i, a, None).await.unwrap();
        assert!(metrics.exposition(&store, T).await.contains("signet_ca_write_transactions_total 2\n"));
    }
}
