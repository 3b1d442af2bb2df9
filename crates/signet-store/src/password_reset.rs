//! Password reset links (signet_ra::password_reset) on sqlx.

use signet_pki::subject::Email;
use signet_ra::application::{ApplicationId, PasswordHash};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::notify::OutboxMessage;
use signet_ra::password_reset::{LIFTED_LOCKOUTS, PasswordResetStore, ResetLink};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::applications::{corrupt, insert_outbox, outbox_rows, ts};
use crate::{Store, backend_error};

fn link(row: &AnyRow) -> Result<ResetLink, StoreError> {
    let account: String = row.try_get(0).map_err(backend_error)?;
    let email: String = row.try_get(1).map_err(backend_error)?;
    let used_at: Option<i64> = row.try_get(5).map_err(backend_error)?;
    Ok(ResetLink {
        account: ApplicationId::new(&account).map_err(|e| corrupt("reset link account", e))?,
        email: Email::new(&email).map_err(|e| corrupt("reset link email", e))?,
        digest: row.try_get(2).map_err(backend_error)?,
        created_at: ts(row.try_get(3).map_err(backend_error)?)?,
        expires_at: ts(row.try_get(4).map_err(backend_error)?)?,
        used_at: used_at.map(ts).transpose()?,
    })
}

impl PasswordResetStore for Store {
    async fn accounts_with_email(&self, email: &Email) -> Result<Vec<(ApplicationId, Email)>, StoreError> {
        let rows = sqlx::query("SELECT id, form FROM applications WHERE email_lower = $1 ORDER BY submitted_at, id")
            .bind(email.as_str().to_lowercase())
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(backend_error)?;
                let form: String = r.try_get(1).map_err(backend_error)?;
                let form: signet_ra::application::ApplicationForm =
                    serde_json::from_str(&form).map_err(|e| corrupt("application form", e))?;
                Ok((ApplicationId::new(&id).map_err(|e| corrupt("application id", e))?, form.applicant.email))
            })
            .collect()
    }

    async fn links_sent_since(&self, account: &ApplicationId, since: OffsetDateTime) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM password_resets WHERE account = $1 AND created_at >= $2")
            .bind(account.as_str())
            .bind(since.unix_timestamp())
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend_error)?;
        usize::try_from(n).map_err(|e| corrupt("reset link count", e))
    }

    async fn create_link(&self, l: &ResetLink, message: &OutboxMessage, audit: AuditEvent) -> Result<(), StoreError> {
        let l = l.clone();
        let outbox = outbox_rows(std::slice::from_ref(message));
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO password_resets (token_digest, account, email, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&l.digest)
                .bind(l.account.as_str())
                .bind(l.email.as_str())
                .bind(l.created_at.unix_timestamp())
                .bind(l.expires_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                insert_outbox(c, outbox, l.created_at.unix_timestamp()).await
            })
        })
        .await
    }

    async fn link(&self, digest: &str) -> Result<Option<ResetLink>, StoreError> {
        sqlx::query(
            "SELECT account, email, token_digest, created_at, expires_at, used_at FROM password_resets \
             WHERE token_digest = $1",
        )
        .bind(digest)
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?
        .as_ref()
        .map(link)
        .transpose()
    }

    async fn use_link(
        &self,
        l: &ResetLink,
        password: &PasswordHash,
        audit: AuditEvent,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (digest, account, phc, now) =
            (l.digest.clone(), l.account.as_str().to_owned(), password.as_phc().to_owned(), now.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                // Spending this link is the guard: a second use, or one racing it, changes no row.
                let spent = sqlx::query(
                    "UPDATE password_resets SET used_at = $1 \
                     WHERE token_digest = $2 AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(&digest)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                if spent.rows_affected() != 1 {
                    return Err(StoreError::Conflict("the reset link was already used or has expired"));
                }
                sqlx::query("UPDATE password_resets SET used_at = $1 WHERE account = $2 AND used_at IS NULL")
                    .bind(now)
                    .bind(&account)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                let changed = sqlx::query("UPDATE applications SET password_phc = $1 WHERE id = $2")
                    .bind(&phc)
                    .bind(&account)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                if changed.rows_affected() != 1 {
                    return Err(StoreError::NotFound);
                }
                for scope in LIFTED_LOCKOUTS {
                    sqlx::query("DELETE FROM login_attempts WHERE scope = $1 AND subject = $2")
                        .bind(scope.name())
                        .bind(&account)
                        .execute(&mut *c)
                        .await
                        .map_err(backend_error)?;
                }
                Ok(())
            })
        })
        .await
    }
}
