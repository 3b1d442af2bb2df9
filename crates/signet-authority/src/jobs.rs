//! Background jobs: the outbox relay, the deadline engine, the subscribers' expiry reminders,
//! the OCSP refresher and the housekeeping of sessions, orphan escrows and abandoned issuance intents, each on its own
//! period. Several `signet serve` nodes may share one PostgreSQL database; a
//! job with a lease runs only on the node holding it (`Store::try_acquire_lease`), which renews
//! it on every run and hands it over by expiry — or at once through [`Jobs::stop`].
//!
//! The lease makes one node do the work; the writes make a lapse harmless: the relay claims
//! each message before sending it, expiry saves over the application's revision, reminders
//! dedupe on their key, and an abandoned intent is marked failed only while it is still an
//! intent. So with two nodes racing, each message is still sent once and each intent resolved
//! (and audited) once.
//!
//! Domain time (deadlines, backoff, leases) is the injected clock's; [`JobRunner::run_once`]
//! lets tests drive a job with a `FakeClock` instead of waiting for the timer.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use signet_pki::Serial;
use signet_ra::application::{Actor, Application, ApplicationId, ApplicationStore, Command};
use signet_ra::delivery::RetryPolicy;
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::KeyRecoveryStore;
use signet_ra::renewal::{self, EXPIRY_REMINDER_DAYS};
use signet_ra::vetting::{self, DeadlineAction};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinHandle;

use crate::core::Core;
pub use crate::job::Job;
use crate::mail::{MailError, Mailer};

/// Messages the relay takes per run; the rest wait for the next run.
const OUTBOX_BATCH: u32 = 100;
/// How long a claimed message is held for its sender. It exceeds a send's worst case (a few
/// SMTP command timeouts), so only a sender that died lets the message become due again.
const CLAIM: Duration = Duration::minutes(5);
/// Open applications read per page by the deadline job.
const DEADLINE_PAGE: u32 = 200;

/// Expiring certificates read per page by the expiry reminders.
const EXPIRY_PAGE: u32 = 200;

/// How old an escrow without its certificate must be before it counts as orphaned.
const ORPHAN_ESCROW_AGE: Duration = Duration::hours(1);

/// Abandoned intents resolved per run. A crash leaves at most the issuances then in flight, so
/// one run clears them; the cap keeps a run (and its audit writes) well inside the lease
/// should something have left many more.
const INTENT_BATCH: u32 = 500;

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Another node holds the job's lease; this one did nothing.
    NotLeader,
    /// The relay accepted `sent` messages; `failed` wait for a retry.
    Outbox {
        /// Delivered.
        sent: usize,
        /// Failed, retried later with backoff.
        failed: usize,
    },
    /// Deadline reminders due (the outbox drops repeats) and applications expired.
    Deadlines {
        /// Reminders due.
        reminders: usize,
        /// Applications expired.
        expired: usize,
    },
    /// OCSP answers re-signed.
    OcspRefresh {
        /// Re-signed.
        resigned: usize,
    },
    /// Lapsed sessions deleted.
    Sessions {
        /// Deleted.
        purged: u64,
    },
    /// Escrows removed whose certificate was never issued.
    OrphanEscrows {
        /// Removed.
        removed: usize,
    },
    /// Abandoned issuance intents marked failed.
    Intents {
        /// Marked failed.
        resolved: usize,
    },
    /// Expiry reminders due (the outbox drops repeats).
    ExpiryReminders {
        /// Reminders due.
        reminders: usize,
    },
    /// Other audit lanes whose heads this node's lane recorded (0: none moved, nothing written).
    AuditAnchor {
        /// Lanes named.
        lanes: usize,
    },
}

/// Why a job run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The database failed; the next run starts over.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Runs the jobs for one node.
pub struct JobRunner {
    state: Arc<Core>,
    mailer: Mailer,
    holder: String,
    retry: RetryPolicy,
}

impl JobRunner {
    /// A runner for this node, with a lease-holder id unique to this runner.
    pub fn new(state: Arc<Core>, mailer: Mailer) -> Self {
        let mut nonce = [0u8; 6];
        SystemRandom::new().fill(&mut nonce).expect("system random generator");
        // The process id tells operators which node holds a lease; the nonce keeps two runners
        // (or a restarted process reusing the id) apart.
        let holder = format!("{}-{}", std::process::id(), hex::encode(nonce));
        Self { state, mailer, holder, retry: RetryPolicy::default() }
    }

    /// This runner's lease-holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Runs `job` once now: takes or renews its lease first, if it has one. What it did is
    /// counted for `/metrics`.
    pub async fn run_once(&self, job: Job) -> Result<Outcome, JobError> {
        let outcome = self.run_job(job).await;
        let metrics = &self.state.metrics;
        if let Ok(Outcome::Outbox { sent, failed }) = outcome {
            metrics.outbox_run(sent, failed);
        }
        let leader = !matches!(outcome, Ok(Outcome::NotLeader) | Err(_));
        metrics.job_run(job, leader, outcome.is_ok(), self.state.clock.now().unix_timestamp());
        outcome
    }

    async fn run_job(&self, job: Job) -> Result<Outcome, JobError> {
        if let Some(ttl) = job.lease() {
            let now = self.state.clock.now();
            if !self.state.store.try_acquire_lease(job.name(), &self.holder, ttl, now).await? {
                return Ok(Outcome::NotLeader);
            }
        }
        match job {
            Job::Outbox => self.outbox().await,
            Job::Deadlines => self.deadlines().await,
            Job::OcspRefresh => Ok(Outcome::OcspRefresh { resigned: self.state.authority.refresh_ocsp().await? }),
            Job::Sessions => {
                Ok(Outcome::Sessions { purged: self.state.store.purge_sessions(self.state.clock.now()).await? })
            }
            Job::OrphanEscrows => {
                let now = self.state.clock.now();
                // An escrow younger than this may belong to a retrieval still issuing.
                let before = now - ORPHAN_ESCROW_AGE;
                let removed = self.state.store.discard_orphan_escrows(before, "system", now).await?;
                Ok(Outcome::OrphanEscrows { removed })
            }
            Job::Intents => {
                let serials = self.state.authority.resolve_abandoned_intents(INTENT_BATCH).await?;
                for serial in &serials {
                    tracing::warn!(%serial, "issuance intent abandoned (its node stopped mid-issuance); marked failed");
                }
                Ok(Outcome::Intents { resolved: serials.len() })
            }
            Job::ExpiryReminders => self.expiry_reminders().await,
            Job::AuditAnchor => {
                Ok(Outcome::AuditAnchor { lanes: self.state.store.anchor_audit(self.state.clock.now()).await? })
            }
        }
    }

    /// Queues the reminder due for each subscriber certificate expiring within 60 days that no
    /// renewal has replaced yet. Each threshold's reminder has its own dedup key, so a
    /// certificate gets each of its three mails once however often this runs.
    async fn expiry_reminders(&self) -> Result<Outcome, JobError> {
        let state = &self.state;
        let now = state.clock.now();
        let horizon = EXPIRY_REMINDER_DAYS.iter().copied().max().unwrap_or_default() + 1;
        let mut reminders = 0;
        let mut after: Option<Serial> = None;
        loop {
            let page = state
                .store
                .expiring_account_certificates(now, now + Duration::days(horizon), after.as_ref(), EXPIRY_PAGE)
                .await?;
            let more = page.len() == EXPIRY_PAGE as usize;
            after = page.last().map(|(_, c)| c.serial.clone());
            let mut queued = Vec::new();
            for (account, cert) in page {
                let Some(reminder) = renewal::expiry_reminder(cert.not_after, now) else { continue };
                // A renewed certificate's subscriber has switched over: nothing to remind.
                if crate::renewal::replacement(&cert, &state.store.account_certificates(&account).await?).is_some() {
                    continue;
                }
                let Some(app) = state.store.load(&account).await? else { continue };
                queued.push(state.notifier.certificate_expiring(
                    &app,
                    &state.certificate_name(&cert.profile),
                    &cert.serial,
                    &cert.profile,
                    cert.not_after.date(),
                    reminder,
                ));
            }
            reminders += queued.len();
            if !queued.is_empty() {
                state.store.enqueue(&queued).await?;
            }
            if !more {
                return Ok(Outcome::ExpiryReminders { reminders });
            }
        }
    }

    async fn outbox(&self) -> Result<Outcome, JobError> {
        let store = &self.state.store;
        let (mut sent, mut failed) = (0, 0);
        for queued in store.pending_outbox(self.state.clock.now(), OUTBOX_BATCH).await? {
            let now = self.state.clock.now();
            // Another sender (a node whose lease lapsed mid-run) may have taken it meanwhile.
            let Some(attempt) = store.claim_outbox(queued.id, now, now + CLAIM).await? else { continue };
            match self.mailer.send(&queued.message, now).await {
                Ok(()) => {
                    store.mark_sent(queued.id, self.state.clock.now()).await?;
                    sent += 1;
                }
                Err(e) => {
                    let next = self.retry.next_attempt(attempt, now);
                    // The id and kind only: the recipient is personal data, the body a secret.
                    tracing::warn!(message = queued.id, kind = queued.message.kind.name(), attempt, error = %e, %next, "mail not sent; will retry");
                    store.record_send_failure(queued.id, &e.to_string(), next).await?;
                    failed += 1;
                    if relay_unavailable(&e) {
                        // The rest would fail the same way; leave them unclaimed and untried.
                        break;
                    }
                }
            }
        }
        Ok(Outcome::Outbox { sent, failed })
    }

    async fn deadlines(&self) -> Result<Outcome, JobError> {
        let state = &self.state;
        let now = state.clock.now();
        let (mut reminders, mut expired) = (0, 0);
        let mut after: Option<ApplicationId> = None;
        loop {
            let page = state.store.open_applications(after.as_ref(), DEADLINE_PAGE).await?;
            let more = page.len() == DEADLINE_PAGE as usize;
            after = page.last().map(|a| a.id().clone());
            let mut queued = Vec::new();
            for app in page {
                for action in vetting::due_actions(&app, now, &state.deadlines) {
                    match action {
                        DeadlineAction::Remind { .. } => queued.extend(state.notifier.reminder(&app, action)),
                        DeadlineAction::Expire => expired += usize::from(self.expire(app.clone(), now).await?),
                    }
                }
            }
            reminders += queued.len();
            if !queued.is_empty() {
                state.store.enqueue(&queued).await?;
            }
            if !more {
                return Ok(Outcome::Deadlines { reminders, expired });
            }
        }
    }

    /// Expires `app` with its notice; `false` if someone changed it since it was read.
    async fn expire(&self, app: Application, now: OffsetDateTime) -> Result<bool, JobError> {
        let id = app.id().clone();
        let t = match app.apply(&Actor::System, Command::Expire, now, &self.state.deadlines) {
            Ok(t) => t,
            Err(e) => {
                // due_actions said expire, so this is a domain bug; the others still expire.
                tracing::error!(application = %id, error = %e, "cannot expire");
                return Ok(false);
            }
        };
        match self.state.store.save_transition(&t, &self.state.notifier.outbox_for(&t)).await {
            Ok(()) => Ok(true),
            // An operator or another node moved it on; the next run judges its new state.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs every job on its period in the background until [`Jobs::stop`].
    pub fn start(self) -> Jobs {
        let runner = Arc::new(self);
        let tasks = Job::ALL
            .into_iter()
            .map(|job| {
                let runner = runner.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(job.period());
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        match runner.run_once(job).await {
                            Ok(outcome) => tracing::debug!(job = job.name(), ?outcome, "job ran"),
                            Err(e) => tracing::error!(job = job.name(), error = %e, "job failed"),
                        }
                    }
                })
            })
            .collect();
        Jobs { runner, tasks }
    }
}

/// Whether a failure is the relay's (down, unreachable, TLS, or the folder unwritable) rather
/// than one message's: SMTP replies (4xx, 5xx) are about the message; anything else is not.
fn relay_unavailable(e: &MailError) -> bool {
    match e {
        MailError::Smtp(e) => !(e.is_permanent() || e.is_transient()),
        MailError::Folder { .. } | MailError::Tls(_) => true,
        MailError::Compose(_) => false,
    }
}

/// The running jobs of one node.
pub struct Jobs {
    runner: Arc<JobRunner>,
    tasks: Vec<JoinHandle<()>>,
}

impl Jobs {
    /// Stops every job and releases this node's leases, so another node takes over at once.
    pub async fn stop(self) {
        for task in self.tasks {
            task.abort();
            // Wait for the abort, so no run renews a lease after it is released below.
            let _ = task.await;
        }
        for job in Job::ALL.into_iter().filter(|j| j.lease().is_some()) {
            if let Err(e) = self.runner.state.store.release_lease(job.name(), &self.runner.holder).await {
                tracing::warn!(job = job.name(), error = %e, "could not release the lease; it expires on its own");
            }
        }
    }
}
