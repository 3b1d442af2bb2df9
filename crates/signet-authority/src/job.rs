//! The background jobs a node runs, each with its period and, if only one node may run it at a
//! time, its lease: what the runner schedules and what `/metrics` reports on.

use std::time::Duration as StdDuration;

use time::Duration;

/// A background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Job {
    /// Sends due outbox messages.
    Outbox,
    /// Reminds applicants of deadlines and expires applications past theirs.
    Deadlines,
    /// Pre-signs the OCSP answers of certificates issued under load, and re-signs cached
    /// answers past half their validity.
    OcspRefresh,
    /// Deletes lapsed web sessions (every anonymous visit to a page starts one).
    Sessions,
    /// Removes escrows whose certificate was never issued (issuance failed after the escrow).
    OrphanEscrows,
    /// Marks failed the issuance intents a dead node left behind, releasing their keys
    /// ([`signet_ra::issuance::ABANDONED_AFTER`]).
    Intents,
    /// Mails subscribers 60, 30 and 7 days before a certificate of theirs expires.
    ExpiryReminders,
    /// Records in this node's audit lane the heads of the other lanes that moved, so rows
    /// removed from them are caught by `signet audit verify`.
    AuditAnchor,
}

impl Job {
    /// Every job, as the runner starts them.
    pub const ALL: [Job; 8] = [
        Job::Outbox,
        Job::Deadlines,
        Job::OcspRefresh,
        Job::Sessions,
        Job::OrphanEscrows,
        Job::Intents,
        Job::ExpiryReminders,
        Job::AuditAnchor,
    ];

    /// The job's name, also its lease's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Deadlines => "deadlines",
            Self::OcspRefresh => "ocsp-refresh",
            Self::Sessions => "sessions",
            Self::OrphanEscrows => "orphan-escrows",
            Self::Intents => "intents",
            Self::ExpiryReminders => "expiry-reminders",
            Self::AuditAnchor => "audit-anchor",
        }
    }

    pub(crate) fn period(self) -> StdDuration {
        match self {
            Self::Outbox => StdDuration::from_secs(15),
            // Deadlines fall on calendar days; reminders a few minutes late are on time.
            Self::Deadlines => StdDuration::from_secs(5 * 60),
            Self::OcspRefresh => StdDuration::from_secs(60),
            Self::Sessions => StdDuration::from_secs(10 * 60),
            Self::OrphanEscrows => StdDuration::from_secs(30 * 60),
            // A key a crash left reserved is free again within the bound plus one period.
            Self::Intents => StdDuration::from_secs(5 * 60),
            // Reminders count calendar days: an hour late is on time.
            Self::ExpiryReminders => StdDuration::from_secs(60 * 60),
            // Rows removed from another lane are caught if they were written before the last
            // anchor: a minute leaves little unanchored, and a quiet log writes no anchors.
            Self::AuditAnchor => StdDuration::from_secs(60),
        }
    }

    /// How long a run's lease lasts: a few periods, so a live holder always renews in time and
    /// a dead one is replaced within minutes. `None` for a job every node runs.
    pub(crate) fn lease(self) -> Option<Duration> {
        match self {
            Self::Outbox => Some(Duration::seconds(60)),
            Self::Deadlines => Some(Duration::minutes(20)),
            // Each node re-signs the answers in its own memory cache, so every node must run
            // it: it takes no lease.
            Self::OcspRefresh => None,
            Self::Sessions => Some(Duration::minutes(30)),
            Self::OrphanEscrows => Some(Duration::minutes(90)),
            // One node resolves; the conditional write makes a second one harmless anyway.
            Self::Intents => Some(Duration::minutes(15)),
            Self::ExpiryReminders => Some(Duration::hours(3)),
            // Each node anchors in its own lane.
            Self::AuditAnchor => None,
        }
    }
}
