//! Web sessions: one row per browser session, keyed by the SHA-256 of its cookie token. Not
//! audited: a session is not a domain state change; the sign-ins it records are audited by the
//! callers that authenticate.

use signet_ra::issuance::StoreError;
use sqlx::Row;
use time::OffsetDateTime;

use crate::{Store, backend_error};

/// A live session as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The form token.
    pub csrf: String,
    /// `""`, `applicant:<reference>` or `operator:<id>`.
    pub principal: String,
    /// Draft data (JSON).
    pub data: String,
    /// When it lapses.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The draft may hold personal data and the CSRF token is a per-session secret.
        f.debug_struct("SessionRecord").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl Store {
    /// Stores a new session.
    pub async fn create_session(
        &self,
        id_hash: &str,
        record: &SessionRecord,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, csrf, principal, data, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(&record.csrf)
        .bind(&record.principal)
        .bind(&record.data)
        .bind(now.unix_timestamp())
        .bind(record.expires_at.unix_timestamp())
        .execute(self.pool())
        .await
        .map_err(backend_error)?;
        Ok(())
    }

    /// The session with this token hash, `None` if there is none or it lapsed before `now`.
    pub async fn session(&self, id_hash: &str, now: OffsetDateTime) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT csrf, principal, data, expires_at FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now.unix_timestamp())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        row.map(|r| {
            let expires: i64 = r.try_get(3).map_err(backend_error)?;
            Ok(SessionRecord {
                csrf: r.try_get(0).map_err(backend_error)?,
                principal: r.try_get(1).map_err(backend_error)?,
                data: r.try_get(2).map_err(backend_error)?,
                expires_at: OffsetDateTime::from_unix_timestamp(expires)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
            })
        })
        .transpose()
    }

    /// Replaces a session's principal, data and expiry. When `new_id_hash` is given the session
    /// also gets a new token (sign-in and sign-out rotate it, so a token planted before
    /// sign-in is worthless after). `NotFound` if the session is gone.
    pub async fn update_session(
        &self,
        id_hash: &str,
        new_id_hash: Option<&str>,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE web_sessions SET id_hash = $1, csrf = $2, principal = $3, data = $4, expires_at = $5 \
             WHERE id_hash = $6",
        )
        .bind(new_id_hash.unwrap_or(id_hash))
        .bind(&record.csrf)
        .bind(&record.principal)
        .bind(&record.data)
        .bind(record.expires_at.unix_timestamp())
        .bind(id_hash)
        .execute(self.pool())
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Deletes sessions that lapsed before `now`; returns how many.
    pub async fn purge_sessions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now.unix_timestamp())
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected())
    }
}
