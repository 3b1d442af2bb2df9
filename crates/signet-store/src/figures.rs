//! Operating figures for monitoring: what is waiting in the outbox, how many subjects are
//! locked out, how busy the connection pool is. Counts only, never a name, an address or a
//! serial, so they can be exported to a metrics system as they are.

use signet_ra::issuance::StoreError;
use sqlx::Row;
use time::OffsetDateTime;

use crate::{Store, backend_error};

/// Aggregate counts read from the database at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatingFigures {
    /// Messages not yet sent.
    pub outbox_unsent: i64,
    /// Of those, messages whose sending failed at least once.
    pub outbox_retrying: i64,
    /// When the oldest unsent message was queued; `None` when nothing waits.
    pub outbox_oldest_unsent: Option<OffsetDateTime>,
    /// Subjects locked out now, per lockout scope name (`operator-password`, …); scopes
    /// without a lock are absent.
    pub locked: Vec<(String, i64)>,
}

/// The connection pool at one moment (no database round trip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open, idle or in use.
    pub open: u32,
    /// Open connections idle in the pool.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

impl Store {
    /// Reads the [`OperatingFigures`] at `now`: two aggregate queries.
    pub async fn operating_figures(&self, now: OffsetDateTime) -> Result<OperatingFigures, StoreError> {
        let outbox = sqlx::query(
            "SELECT COUNT(*), COUNT(CASE WHEN attempts > 0 THEN 1 END), MIN(queued_at) FROM outbox \
             WHERE sent_at IS NULL",
        )
        .fetch_one(self.pool())
        .await
        .map_err(backend_error)?;
        let oldest: Option<i64> = outbox.try_get(2).map_err(backend_error)?;
        let locked = sqlx::query(
            "SELECT scope, COUNT(*) FROM login_attempts WHERE until_unlocked = 1 OR locked_until > $1 \
             GROUP BY scope ORDER BY scope",
        )
        .bind(now.unix_timestamp())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        Ok(OperatingFigures {
            outbox_unsent: outbox.try_get(0).map_err(backend_error)?,
            outbox_retrying: outbox.try_get(1).map_err(backend_error)?,
            outbox_oldest_unsent: oldest.and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
            locked: locked
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(backend_error)?,
        })
    }

    /// How many connections the pool holds and how many of them are idle.
    pub fn pool_use(&self) -> PoolUse {
        PoolUse {
            open: self.pool().size(),
            idle: u32::try_from(self.pool().num_idle()).unwrap_or(u32::MAX),
            max: self.pool().options().get_max_connections(),
        }
    }
}
