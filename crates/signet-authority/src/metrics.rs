//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4): issuance per profile,
//! OCSP answers, the CRL's age, the outbox, the background jobs, lockouts and per-client
//! refusals, and the database pool.
//!
//! The hot paths (issuance, OCSP) only add to atomics. Figures that need the database (the
//! outbox backlog, lockouts) are read by a scrape at most once per [`FIGURES_TTL`] and shared
//! by the scrapes in between, with a bounded wait, so scraping more often costs no more
//! queries and a database that hangs cannot hold scrapes. Labels are fixed sets (catalog
//! profiles, statuses, job and scope names): no name, address or serial ever becomes one,
//! and a profile id a client made up is counted as `other`.
//!
//! The endpoint needs no credentials: it tells counts only, and scrapers expect to reach it
//! as they reach `/readyz`. An operator who wants it private blocks `/metrics` at the proxy.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use signet_pki::ocsp::{CertStatus, ErrorStatus};
use signet_pki::profile::Catalog;
use signet_store::{OperatingFigures, Store};
use time::OffsetDateTime;

use crate::job::Job;

/// How long figures read from the database are reused.
const FIGURES_TTL: Duration = Duration::from_secs(5);

/// How long a scrape waits for the database before answering without its figures.
const FIGURES_WAIT: Duration = Duration::from_secs(2);

/// Upper bounds of the issuance latency buckets, in seconds: from a software signer's few
/// milliseconds to an HSM or database under load.
const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The label of issuance for a profile not in the catalog.
const OTHER_PROFILE: &str = "other";

/// A latency histogram with [`LATENCY_BUCKETS`].
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// Whether an OCSP answer came from the cache of pre-signed answers.
#[derive(Debug, Clone, Copy)]
pub enum OcspSource {
    /// Served from the cache.
    Hit,
    /// Signed for the cache now.
    Miss,
    /// Signed for this request alone (a nonce, or several certificates).
    Unique,
}

impl OcspSource {
    const ALL: [Self; 3] = [Self::Hit, Self::Miss, Self::Unique];

    fn name(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Unique => "unique",
        }
    }
}

/// The names of the OCSP error statuses (RFC 6960 §2.3) the responder answers with.
const OCSP_ERRORS: [&str; 4] = ["malformed", "unauthorized", "try_later", "internal"];

fn error_index(status: ErrorStatus) -> usize {
    match status {
        ErrorStatus::MalformedRequest => 0,
        ErrorStatus::Unauthorized => 1,
        ErrorStatus::TryLater => 2,
        _ => 3,
    }
}

const OCSP_STATUSES: [&str; 3] = ["good", "revoked", "unknown"];

fn status_index(status: &CertStatus) -> usize {
    match status {
        CertStatus::Good => 0,
        CertStatus::Revoked { .. } => 1,
        _ => 2,
    }
}

/// What one background job did lately on this node.
#[derive(Default)]
struct JobFigures {
    /// 1 while this node holds the job's lease (or the job takes none), else 0.
    leader: AtomicU64,
    failures: AtomicU64,
    /// Unix seconds of the last run that ended well; 0 before the first.
    last_success: AtomicI64,
}

/// The counters of one server process.
pub struct Metrics {
    /// Catalog profile ids; index `profiles.len()` counts [`OTHER_PROFILE`].
    profiles: Vec<String>,
    issued: Vec<Histogram>,
    issue_failures: Vec<AtomicU64>,
    ocsp: [[AtomicU64; 3]; 3],
    ocsp_errors: [AtomicU64; 4],
    /// thisUpdate (unix seconds) of the CRL this node serves; `i64::MIN` before the first.
    crl_this_update: AtomicI64,
    outbox_sent: AtomicU64,
    outbox_failures: AtomicU64,
    jobs: [JobFigures; Job::ALL.len()],
    rate_limited: AtomicU64,
    /// Transactions of the CA's group commit, and the writes they held.
    ca_transactions: AtomicU64,
    ca_writes: AtomicU64,
    figures: tokio::sync::Mutex<Option<(Instant, Option<OperatingFigures>)>>,
}

impl Metrics {
    pub fn new(catalog: &Catalog) -> Self {
        let profiles: Vec<String> = catalog.profiles().map(|p| p.id.clone()).collect();
        let slots = profiles.len() + 1;
        Self {
            issued: (0..slots).map(|_| Histogram::default()).collect(),
            issue_failures: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            profiles,
            ocsp: Default::default(),
            ocsp_errors: Default::default(),
            crl_this_update: AtomicI64::new(i64::MIN),
            outbox_sent: AtomicU64::new(0),
            outbox_failures: AtomicU64::new(0),
            jobs: Default::default(),
            rate_limited: AtomicU64::new(0),
            ca_transactions: AtomicU64::new(0),
            ca_writes: AtomicU64::new(0),
            figures: tokio::sync::Mutex::new(None),
        }
    }

    fn profile_slot(&self, profile: &str) -> usize {
        self.profiles.iter().position(|p| p == profile).unwrap_or(self.profiles.len())
    }

    /// One issuance of `profile` that took `took`, issued or refused.
    pub fn issuance(&self, profile: &str, took: Duration, issued: bool) {
        let slot = self.profile_slot(profile);
        if issued {
            self.issued[slot].observe(took);
        } else {
            self.issue_failures[slot].fetch_add(1, Relaxed);
        }
    }

    /// One transaction of the CA's group commit, holding `writes` writes.
    pub fn ca_transaction(&self, writes: usize) {
        self.ca_transactions.fetch_add(1, Relaxed);
        self.ca_writes.fetch_add(writes as u64, Relaxed);
    }

    /// The CA's group commit so far: (transactions, writes they held).
    pub fn ca_transactions(&self) -> (u64, u64) {
        (self.ca_transactions.load(Relaxed), self.ca_writes.load(Relaxed))
    }

    /// One OCSP answer stating `status`.
    pub fn ocsp_answer(&self, status: &CertStatus, cache: OcspSource) {
        self.ocsp[status_index(status)][cache as usize].fetch_add(1, Relaxed);
    }

    /// One OCSP error answer.
    pub fn ocsp_error(&self, status: ErrorStatus) {
        self.ocsp_errors[error_index(status)].fetch_add(1, Relaxed);
    }

    /// The CRL now served was signed at `this_update` (unix seconds).
    pub fn crl_signed(&self, this_update: i64) {
        self.crl_this_update.store(this_update, Relaxed);
    }

    /// A run of the outbox relay sent `sent` messages and failed `failed`.
    pub fn outbox_run(&self, sent: usize, failed: usize) {
        self.outbox_sent.fetch_add(sent as u64, Relaxed);
        self.outbox_failures.fetch_add(failed as u64, Relaxed);
    }

    /// A run of `job` at `now` (unix seconds): whether this node led it (a run left to another
    /// node's lease did nothing here, so it is no success of this node), and whether it ended well.
    pub fn job_run(&self, job: Job, leader: bool, ok: bool, now: i64) {
        let Some(figures) = Job::ALL.iter().position(|j| *j == job).map(|i| &self.jobs[i]) else { return };
        figures.leader.store(u64::from(leader), Relaxed);
        if !ok {
            figures.failures.fetch_add(1, Relaxed);
        } else if leader {
            figures.last_success.store(now, Relaxed);
        }
    }

    /// A post refused by the per-client limit on typed secrets.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Relaxed);
    }

    /// The database figures, read again if the last read is older than [`FIGURES_TTL`];
    /// `None` if the database did not answer in [`FIGURES_WAIT`].
    async fn figures(&self, store: &Store, now: OffsetDateTime) -> Option<OperatingFigures> {
        let mut cached = self.figures.lock().await;
        if let Some((at, figures)) = cached.as_ref()
            && at.elapsed() < FIGURES_TTL
        {
            return figures.clone();
        }
        let read = tokio::time::timeout(FIGURES_WAIT, store.operating_figures(now)).await;
        let figures = match read {
            Ok(Ok(f)) => Some(f),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: database figures unavailable");
                None
            }
            Err(_) => {
                tracing::warn!("metrics: the database did not answer in time");
                None
            }
        };
        *cached = Some((Instant::now(), figures.clone()));
        figures
    }

    /// The exposition text (format 0.0.4), with the database figures if they can be had.
    pub async fn exposition(&self, store: &Store, now: OffsetDateTime) -> String {
        let figures = self.figures(store, now).await;
        self.render(store, now.unix_timestamp(), figures.as_ref())
    }

    fn render(&self, store: &Store, now: i64, figures: Option<&OperatingFigures>) -> String {
        let mut out = Exposition::default();
        let profile_names = self.profiles.iter().map(String::as_str).chain([OTHER_PROFILE]);

        out.family("signet_certificates_issued_total", "counter", "Certificates issued, per profile.");
        for (profile, h) in profile_names.clone().zip(&self.issued) {
            out.sample("signet_certificates_issued_total", &[("profile", profile)], h.count.load(Relaxed));
        }
        out.family(
            "signet_issuance_failures_total",
            "counter",
            "Issuance requests refused or failed, per profile (a made-up profile counts as other).",
        );
        for (profile, n) in profile_names.clone().zip(&self.issue_failures) {
            out.sample("signet_issuance_failures_total", &[("profile", profile)], n.load(Relaxed));
        }
        out.family(
            "signet_issuance_duration_seconds",
            "histogram",
            "Time to issue a certificate (checks, intent, signing, storing), per profile.",
        );
        for (profile, h) in profile_names.zip(&self.issued) {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                cumulative += n.load(Relaxed);
                out.sample(
                    "signet_issuance_duration_seconds_bucket",
                    &[("profile", profile), ("le", &bound.to_string())],
                    cumulative,
                );
            }
            let count = h.count.load(Relaxed);
            out.sample("signet_issuance_duration_seconds_bucket", &[("profile", profile), ("le", "+Inf")], count);
            out.sample_f64(
                "signet_issuance_duration_seconds_sum",
                &[("profile", profile)],
                h.sum_micros.load(Relaxed) as f64 / 1e6,
            );
            out.sample("signet_issuance_duration_seconds_count", &[("profile", profile)], count);
        }
        out.family(
            "signet_ca_write_transactions_total",
            "counter",
            "Transactions the CA wrote its records in; under load each holds many writes (group commit).",
        );
        let (transactions, writes) = self.ca_transactions();
        out.sample("signet_ca_write_transactions_total", &[], transactions);
        out.family(
            "signet_ca_writes_total",
            "counter",
            "Issuance intents, certificates, failures and revocations the CA wrote; per transaction, the mean group size.",
        );
        out.sample("signet_ca_writes_total", &[], writes);

        out.family(
            "signet_ocsp_responses_total",
            "counter",
            "OCSP answers by certificate status and by whether the pre-signed cache served them.",
        );
        for (status, row) in OCSP_STATUSES.iter().zip(&self.ocsp) {
            for (cache, n) in OcspSource::ALL.iter().zip(row) {
                out.sample(
                    "signet_ocsp_responses_total",
                    &[("status", status), ("cache", cache.name())],
                    n.load(Relaxed),
                );
            }
        }
        out.family("signet_ocsp_errors_total", "counter", "OCSP error answers by RFC 6960 error status.");
        for (error, n) in OCSP_ERRORS.iter().zip(&self.ocsp_errors) {
            out.sample("signet_ocsp_errors_total", &[("error", error)], n.load(Relaxed));
        }

        let this_update = self.crl_this_update.load(Relaxed);
        if this_update != i64::MIN {
            out.family(
                "signet_crl_age_seconds",
                "gauge",
                "Seconds since the CRL this node serves was signed (absent until the first CRL is served).",
            );
            out.sample("signet_crl_age_seconds", &[], (now - this_update).max(0));
        }

        out.family("signet_outbox_sent_total", "counter", "Mail messages this node's relay delivered.");
        out.sample("signet_outbox_sent_total", &[], self.outbox_sent.load(Relaxed));
        out.family(
            "signet_outbox_send_failures_total",
            "counter",
            "Failed attempts of this node's relay to send a message.",
        );
        out.sample("signet_outbox_send_failures_total", &[], self.outbox_failures.load(Relaxed));

        out.family(
            "signet_job_leader",
            "gauge",
            "1 while this node holds the job's lease (or the job runs on every node) as of its last run, else 0.",
        );
        for (job, f) in Job::ALL.iter().zip(&self.jobs) {
            out.sample("signet_job_leader", &[("job", job.name())], f.leader.load(Relaxed));
        }
        out.family("signet_job_failures_total", "counter", "Background job runs that failed on this node.");
        for (job, f) in Job::ALL.iter().zip(&self.jobs) {
            out.sample("signet_job_failures_total", &[("job", job.name())], f.failures.load(Relaxed));
        }
        out.family(
            "signet_job_last_success_timestamp_seconds",
            "gauge",
            "When the job last ran to its end on this node as its leader (unix seconds; 0 before that).",
        );
        for (job, f) in Job::ALL.iter().zip(&self.jobs) {
            out.sample(
                "signet_job_last_success_timestamp_seconds",
                &[("job", job.name())],
                f.last_success.load(Relaxed),
            );
        }

        out.family(
            "signet_rate_limit_refusals_total",
            "counter",
            "Posts of typed secrets refused with 429 by the per-client limit.",
        );
        out.sample("signet_rate_limit_refusals_total", &[], self.rate_limited.load(Relaxed));

        let pool = store.pool_use();
        out.family("signet_db_pool_connections", "gauge", "Open database connections, idle or in use.");
        out.sample("signet_db_pool_connections", &[("state", "idle")], pool.idle);
        out.sample("signet_db_pool_connections", &[("state", "in_use")], pool.open.saturating_sub(pool.idle));
        out.family("signet_db_pool_max_connections", "gauge", "The most database connections the pool opens.");
        out.sample("signet_db_pool_max_connections", &[], pool.max);

        out.family(
            "signet_database_figures_up",
            "gauge",
            "1 if the database answered the metrics' last read (outbox and lockout figures), else 0.",
        );
        out.sample("signet_database_figures_up", &[], u8::from(figures.is_some()));
        if let Some(f) = figures {
            out.family("signet_outbox_backlog", "gauge", "Mail messages waiting to be sent.");
            out.sample("signet_outbox_backlog", &[], f.outbox_unsent);
            out.family(
                "signet_outbox_retrying",
                "gauge",
                "Waiting messages whose sending already failed at least once.",
            );
            out.sample("signet_outbox_retrying", &[], f.outbox_retrying);
            out.family(
                "signet_outbox_oldest_age_seconds",
                "gauge",
                "Seconds the oldest waiting message has waited (0 when none waits).",
            );
            let oldest = f.outbox_oldest_unsent.map_or(0, |t| (now - t.unix_timestamp()).max(0));
            out.sample("signet_outbox_oldest_age_seconds", &[], oldest);
            out.family(
                "signet_lockouts_active",
                "gauge",
                "Subjects locked out now after repeated failures, per scope.",
            );
            for scope in signet_ra::lockout::AttemptScope::ALL {
                let n = f.locked.iter().find(|(s, _)| s == scope.name()).map_or(0, |(_, n)| *n);
                out.sample("signet_lockouts_active", &[("scope", scope.name())], n);
            }
        }
        out.text
    }
}

/// The text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                // Values are fixed names from this program, never input: nothing to escape.
                let _ = write!(self.text, "{}{key}=\"{value}\"", if i > 0 { "," } else { "" });
            }
            self.text.push('}');
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.labels(name, labels);
        let _ = writeln!(self.text, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.labels(name, labels);
        let _ = writeln!(self.text, " {value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let counts: Vec<u64> = h.buckets.iter().map(|b| b.load(Relaxed)).collect();
        assert_eq!(counts[0], 1, "3 ms ≤ 5 ms");
        assert_eq!(counts[3], 1, "30 ms ≤ 50 ms");
        assert_eq!(counts.iter().sum::<u64>(), 2, "a minute is only in +Inf");
        assert_eq!(h.count.load(Relaxed), 3);
        assert_eq!(h.sum_micros.load(Relaxed), 60_033_000);
    }

    #[test]
    fn a_made_up_profile_is_counted_as_other() {
        let metrics = Metrics::new(&Catalog::default_eca());
        metrics.issuance("medium-identity", Duration::from_millis(1), true);
        metrics.issuance("jane.doe@example.com", Duration::from_millis(1), false);
        let other = metrics.profiles.len();
        assert_eq!(metrics.issue_failures[other].load(Relaxed), 1);
        assert_eq!(metrics.issued[metrics.profile_slot("medium-identity")].count.load(Relaxed), 1);
    }
}
