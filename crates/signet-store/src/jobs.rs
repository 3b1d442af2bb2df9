//! Background-job support: leases, so that of several `signet serve` nodes on one
//! database only one runs each job, and the outbox's delivery bookkeeping (claims, failures).
//!
//! A lease alone cannot make a job run exactly once: a holder that stalls past its lease (a
//! long SMTP timeout, a paused VM) overlaps the node that took over. So every write a job makes
//! is also safe to race: messages are claimed one by one with a compare-and-set here,
//! application transitions save over their revision, and reminders dedupe on their key.
//!
//! Neither leases nor delivery attempts are audited: they change no application, certificate
//! or key, and chaining a renewal every few seconds per node would bury the audit log's events
//! and queue every renewal behind the audit head. What a job changes in an application goes
//! through `save_transition`, which chains it.

use signet_ra::issuance::StoreError;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use crate::{Store, backend_error};

/// Longest stored delivery error; the relay's replies can be long and say nothing more after
/// the first lines.
const MAX_ERROR_CHARS: usize = 500;

impl Store {
    /// Takes the lease `name` for `holder` until `now + ttl`, or renews it if `holder` holds it
    /// already. `true` if `holder` holds it now, `false` while another holder's lease runs.
    ///
    /// One statement on both backends: the upsert decides under the row's lock, so of two
    /// nodes racing for a missing or expired lease exactly one gets it.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind((now + ttl).unix_timestamp())
        .bind(now.unix_timestamp())
        .execute(self.pool())
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives up `holder`'s lease `name` (a node shutting down), so another node need not wait
    /// for it to expire. Nothing happens if someone else holds it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Claims a due, unsent message for one delivery attempt: counts the attempt and moves its
    /// next attempt to `until`, so no other sender picks it up meanwhile (and if this sender
    /// dies mid-send, the message is due again at `until`). Returns the attempt's number, or
    /// `None` if the message was sent, claimed by someone else, or is not due at `now`.
    pub async fn claim_outbox(
        &self,
        id: i64,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Option<u32>, StoreError> {
        // The due test is in this UPDATE's own WHERE (not only in a prior SELECT), so
        // PostgreSQL re-checks it on the latest row version when two claims race.
        let row = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE id = $2 AND sent_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $3) \
             RETURNING attempts",
        )
        .bind(until.unix_timestamp())
        .bind(id)
        .bind(now.unix_timestamp())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        row.map(|r| {
            let attempts: i64 = r.try_get(0).map_err(backend_error)?;
            u32::try_from(attempts).map_err(|e| StoreError::Backend(format!("outbox attempts: {e}")))
        })
        .transpose()
    }

    /// Records that the claimed attempt on message `id` failed with `error` and when to try
    /// again (the domain's [`signet_ra::delivery::RetryPolicy`] decides). `NotFound` if no
    /// unsent message has that id.
    pub async fn record_send_failure(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        let done =
            sqlx::query("UPDATE outbox SET last_error = $1, next_attempt_at = $2 WHERE id = $3 AND sent_at IS NULL")
                .bind(error)
                .bind(next_attempt_at.unix_timestamp())
                .bind(id)
                .execute(self.pool())
                .await
                .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
