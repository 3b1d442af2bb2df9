//! Web sessions: one row per browser session, keyed by the SHA-256 of its cookie token. Not
//! audited: a session is not a domain state change; the sign-ins it records are audited by the
//! callers that authenticate.
//!
//! A session may also keep one page for the GET that follows a form post (Post/Redirect/Get).
//! That page can show what the person typed, so it is sealed like a TOTP seed and bound to the
//! session's token hash: a kept page copied to another row, or left behind when the token
//! rotates, does not open.

use signet_ra::issuance::StoreError;
use sqlx::Row;
use time::OffsetDateTime;

use crate::seeds::SEALED_PREFIX;
use crate::{Store, backend_error};

fn flash_context(id_hash: &str) -> Vec<u8> {
    format!("web-session-flash:{id_hash}").into_bytes()
}

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
    /// The page kept for the next GET, as the web layer wrote it; `None` when there is none,
    /// or when it does not open (sealed for another token, or the store has no sealing key).
    pub flash: Option<String>,
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
        let flash = record.flash.as_deref().map(|page| self.seal_flash(id_hash, page)).transpose()?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, csrf, principal, data, created_at, expires_at, flash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id_hash)
        .bind(&record.csrf)
        .bind(&record.principal)
        .bind(&record.data)
        .bind(now.unix_timestamp())
        .bind(record.expires_at.unix_timestamp())
        .bind(flash)
        .execute(self.pool())
        .await
        .map_err(backend_error)?;
        Ok(())
    }

    /// The session with this token hash, `None` if there is none or it lapsed before `now`.
    pub async fn session(&self, id_hash: &str, now: OffsetDateTime) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT csrf, principal, data, expires_at, flash FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now.unix_timestamp())
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        row.map(|r| {
            let expires: i64 = r.try_get(3).map_err(backend_error)?;
            let flash: Option<String> = r.try_get(4).map_err(backend_error)?;
            Ok(SessionRecord {
                csrf: r.try_get(0).map_err(backend_error)?,
                principal: r.try_get(1).map_err(backend_error)?,
                data: r.try_get(2).map_err(backend_error)?,
                expires_at: OffsetDateTime::from_unix_timestamp(expires)
                    .map_err(|e| StoreError::Backend(e.to_string()))?,
                flash: flash.and_then(|sealed| self.open_flash(id_hash, &sealed)),
            })
        })
        .transpose()
    }

    /// Replaces a session's principal, data and expiry; the kept page stays. When `new_id_hash`
    /// is given the session also gets a new token (sign-in and sign-out rotate it, so a token
    /// planted before sign-in is worthless after) and loses its kept page, which was sealed to
    /// the old one. `NotFound` if the session is gone.
    pub async fn update_session(
        &self,
        id_hash: &str,
        new_id_hash: Option<&str>,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE web_sessions SET id_hash = $1, csrf = $2, principal = $3, data = $4, expires_at = $5, \
             flash = CASE WHEN $1 = $6 THEN flash ELSE NULL END WHERE id_hash = $6",
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

    /// Keeps `page` for the session's next GET, or drops the kept page with `None`. `NotFound`
    /// if the session is not stored.
    pub async fn set_session_flash(&self, id_hash: &str, page: Option<&str>) -> Result<(), StoreError> {
        let sealed = page.map(|page| self.seal_flash(id_hash, page)).transpose()?;
        let done = sqlx::query("UPDATE web_sessions SET flash = $1 WHERE id_hash = $2")
            .bind(sealed)
            .bind(id_hash)
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    fn seal_flash(&self, id_hash: &str, page: &str) -> Result<String, StoreError> {
        let key = self.sealing.as_ref().ok_or_else(|| StoreError::Backend("no sealing key for kept pages".into()))?;
        let sealed = key
            .seal(page.as_bytes(), &flash_context(id_hash))
            .map_err(|e| StoreError::Backend(format!("sealing a kept page: {e}")))?;
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(sealed)))
    }

    fn open_flash(&self, id_hash: &str, stored: &str) -> Option<String> {
        let sealed = hex::decode(stored.strip_prefix(SEALED_PREFIX)?).ok()?;
        let page = self.sealing.as_ref()?.open(&sealed, &flash_context(id_hash)).ok()?;
        String::from_utf8(page).ok()
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
