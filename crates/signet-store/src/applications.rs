//! Enrollment storage: the domain's [`ApplicationStore`] (applications, registering applicant
//! organizations, and the notification outbox) plus the two outbox calls the mail relay needs.
//!
//! An application is one row: the checked form and the state's evidence as JSON, the state name
//! under a CHECK over [`ALL_STATE_NAMES`](signet_ra::application::ALL_STATE_NAMES), and a
//! revision for optimistic concurrency. Secrets are only ever what the domain hands over: the
//! password as its Argon2id PHC string, one-time codes as digests inside the state data.

use signet_pki::subject::Email;
use signet_ra::application::{
    Application, ApplicationForm, ApplicationId, ApplicationState, ApplicationStore, Organization, OrganizationKey,
    PasswordHash, Transition,
};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::notify::{MessageKind, OutboxMessage};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::organizations::organization;
use crate::{Store, backend_error, unique_or};

/// A queued message as the mail relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The outbox row, for [`Store::mark_sent`].
    pub id: i64,
    /// When it was queued.
    pub queued_at: OffsetDateTime,
    /// The message.
    pub message: OutboxMessage,
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is invalid: {e}"))
}

pub(crate) fn ts(t: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|e| corrupt("time", e))
}

/// What the SQL binds for an application row, owned so it can move into a transaction.
struct ApplicationRow {
    id: String,
    revision: i64,
    state: &'static str,
    state_data: String,
    is_open: i64,
}

impl ApplicationRow {
    fn of(app: &Application) -> Self {
        let (state, state_data) = app.state().to_stored();
        Self {
            id: app.id().as_str().to_owned(),
            revision: i64::from(app.revision()),
            state,
            state_data,
            is_open: i64::from(app.state().is_open()),
        }
    }
}

/// An application transition as the SQL writes it, owned so it can move into a transaction
/// that may write more (the token stock binds its token in the same one).
pub(crate) struct TransitionWrite {
    row: ApplicationRow,
    previous: i64,
    at: i64,
    outbox: Vec<OutboxRow>,
}

impl TransitionWrite {
    pub(crate) fn of(transition: &Transition, outbox: &[OutboxMessage]) -> Result<Self, StoreError> {
        let row = ApplicationRow::of(&transition.application);
        // Revision 0 is a submission, which `create` stores; nothing can precede it.
        let previous = row.revision.checked_sub(1).filter(|p| *p >= 0).ok_or(StoreError::Conflict("revision"))?;
        Ok(Self { row, previous, at: transition.audit.at.unix_timestamp(), outbox: outbox_rows(outbox) })
    }

    /// Compare-and-set of the application row, then its outbox messages, on a connection whose
    /// transaction already appended the audit event (which serialized writers, so the
    /// compare-and-set sees the latest committed revision).
    pub(crate) async fn apply(self, c: &mut AnyConnection) -> Result<(), StoreError> {
        let Self { row, previous, at, outbox } = self;
        let done = sqlx::query(
            "UPDATE applications SET revision = $1, state = $2, state_data = $3, is_open = $4, updated_at = $5 \
             WHERE id = $6 AND revision = $7",
        )
        .bind(row.revision)
        .bind(row.state)
        .bind(row.state_data)
        .bind(row.is_open)
        .bind(at)
        .bind(row.id.clone())
        .bind(previous)
        .execute(&mut *c)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() != 1 {
            // Returning an error drops the transaction, taking the audit row with it.
            let exists = sqlx::query("SELECT 1 FROM applications WHERE id = $1")
                .bind(row.id)
                .fetch_optional(&mut *c)
                .await
                .map_err(backend_error)?;
            return Err(if exists.is_some() { StoreError::Conflict("revision") } else { StoreError::NotFound });
        }
        insert_outbox(c, outbox, at).await
    }
}

/// Reads `id, form, submitted_at, revision, state, state_data`.
pub(crate) fn application(row: &AnyRow) -> Result<Application, StoreError> {
    let id: String = row.try_get(0).map_err(backend_error)?;
    let form: String = row.try_get(1).map_err(backend_error)?;
    let submitted_at: i64 = row.try_get(2).map_err(backend_error)?;
    let revision: i64 = row.try_get(3).map_err(backend_error)?;
    let state: String = row.try_get(4).map_err(backend_error)?;
    let state_data: String = row.try_get(5).map_err(backend_error)?;
    let what = format!("application {id}");
    Ok(Application::restore(
        ApplicationId::new(&id).map_err(|e| corrupt(&what, e))?,
        serde_json::from_str::<ApplicationForm>(&form).map_err(|e| corrupt(&what, e))?,
        ts(submitted_at)?,
        u32::try_from(revision).map_err(|e| corrupt(&what, e))?,
        ApplicationState::from_stored(&state, &state_data).map_err(|e| corrupt(&what, e))?,
    ))
}

/// What the SQL binds for an outbox row.
pub(crate) struct OutboxRow {
    dedup_key: String,
    recipient: String,
    subject: String,
    body_text: String,
    kind: &'static str,
}

pub(crate) fn outbox_rows(outbox: &[OutboxMessage]) -> Vec<OutboxRow> {
    outbox
        .iter()
        .map(|m| OutboxRow {
            dedup_key: m.dedup_key.clone(),
            recipient: m.to.as_str().to_owned(),
            subject: m.subject.clone(),
            body_text: m.body_text.clone(),
            kind: m.kind.name(),
        })
        .collect()
}

/// Queues `rows` on `conn`. A key queued before is skipped by the database itself (not by a
/// prior SELECT), so concurrent jobs cannot both insert it and the transaction never fails on it.
pub(crate) async fn insert_outbox(
    conn: &mut AnyConnection,
    rows: Vec<OutboxRow>,
    queued_at: i64,
) -> Result<(), StoreError> {
    for r in rows {
        sqlx::query(
            "INSERT INTO outbox (dedup_key, recipient, subject, body_text, kind, queued_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(r.dedup_key)
        .bind(r.recipient)
        .bind(r.subject)
        .bind(r.body_text)
        .bind(r.kind)
        .bind(queued_at)
        .execute(&mut *conn)
        .await
        .map_err(backend_error)?;
    }
    Ok(())
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Store {
    /// The applicant account's password hash for an application, `None` if there is no such
    /// application: what sign-in and retrieval check the typed password against.
    pub async fn application_password(&self, id: &ApplicationId) -> Result<Option<PasswordHash>, StoreError> {
        let row = sqlx::query("SELECT password_phc FROM applications WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        row.map(|r| {
            let phc: String = r.try_get(0).map_err(backend_error)?;
            PasswordHash::from_phc(&phc).map_err(|e| corrupt("password hash", e))
        })
        .transpose()
    }

    /// Unsent messages due at `now` (never tried, or past the backoff of their last failed
    /// attempt), oldest first, at most `limit`: what the mail relay sends next. The relay then
    /// claims each with [`Store::claim_outbox`] before sending it.
    pub async fn pending_outbox(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, queued_at, recipient, subject, body_text, kind, dedup_key FROM outbox \
             WHERE sent_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= $1) ORDER BY id LIMIT $2",
        )
        .bind(now.unix_timestamp())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0).map_err(backend_error)?;
                let queued_at: i64 = r.try_get(1).map_err(backend_error)?;
                let to: String = r.try_get(2).map_err(backend_error)?;
                let kind: String = r.try_get(5).map_err(backend_error)?;
                let what = format!("outbox message {id}");
                Ok(QueuedMessage {
                    id,
                    queued_at: ts(queued_at)?,
                    message: OutboxMessage {
                        to: Email::new(&to).map_err(|e| corrupt(&what, e))?,
                        subject: r.try_get(3).map_err(backend_error)?,
                        body_text: r.try_get(4).map_err(backend_error)?,
                        kind: MessageKind::ALL
                            .into_iter()
                            .find(|k| k.name() == kind)
                            .ok_or_else(|| corrupt(&what, format!("unknown kind {kind:?}")))?,
                        dedup_key: r.try_get(6).map_err(backend_error)?,
                    },
                })
            })
            .collect()
    }

    /// Appends `event` and queues the notices it sends, in one transaction: a record beside the
    /// lifecycle (an operator's finding on the mailed forms) is written if and only if its
    /// applicant is told.
    pub async fn audit_with_notices(&self, event: &AuditEvent, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        let rows = outbox_rows(outbox);
        let at = event.at.unix_timestamp();
        self.audited(event, move |c| Box::pin(insert_outbox(c, rows, at))).await
    }

    /// Marks a message delivered at `at` and blanks its body: the activation-code notice
    /// carries the code in clear (and the verification email its link's token), which must
    /// not outlive delivery. The row stays so its dedup
    /// key keeps suppressing repeats. `NotFound` if no unsent message has that id.
    ///
    /// Not audited: delivery changes no application and the audit event for the change the
    /// message announces was chained when it was queued.
    pub async fn mark_sent(&self, id: i64, at: OffsetDateTime) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE outbox SET sent_at = $1, body_text = '' WHERE id = $2 AND sent_at IS NULL")
            .bind(at.unix_timestamp())
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

impl ApplicationStore for Store {
    async fn create(
        &self,
        submitted: &Transition,
        password: &PasswordHash,
        outbox: &[OutboxMessage],
    ) -> Result<(), StoreError> {
        let app = &submitted.application;
        let row = ApplicationRow::of(app);
        let form = serde_json::to_string(app.form()).map_err(|e| StoreError::Backend(e.to_string()))?;
        let submitted_at = app.submitted_at().unix_timestamp();
        let phc = password.as_phc().to_owned();
        let at = submitted.audit.at.unix_timestamp();
        let outbox = outbox_rows(outbox);
        let email_lower = app.form().applicant.email.as_str().to_lowercase();
        self.audited(&submitted.audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO applications \
                     (id, form, password_phc, submitted_at, revision, state, state_data, is_open, updated_at, \
                     email_lower) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(row.id)
                .bind(form)
                .bind(phc)
                .bind(submitted_at)
                .bind(row.revision)
                .bind(row.state)
                .bind(row.state_data)
                .bind(row.is_open)
                .bind(at)
                .bind(email_lower)
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "id"))?;
                insert_outbox(c, outbox, at).await
            })
        })
        .await
    }

    async fn load(&self, id: &ApplicationId) -> Result<Option<Application>, StoreError> {
        let row =
            sqlx::query("SELECT id, form, submitted_at, revision, state, state_data FROM applications WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await
                .map_err(backend_error)?;
        row.as_ref().map(application).transpose()
    }

    async fn save_transition(&self, transition: &Transition, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        let write = TransitionWrite::of(transition, outbox)?;
        self.audited(&transition.audit, move |c| Box::pin(write.apply(c))).await
    }

    async fn enqueue(&self, outbox: &[OutboxMessage]) -> Result<(), StoreError> {
        // No state changes and the trait gives no audit event, so this transaction does not
        // touch the chain. It only inserts (no read first), so SQLite takes the write lock on
        // the first statement and cannot deadlock upgrading a read lock.
        let rows = outbox_rows(outbox);
        let mut tx = self.pool().begin().await.map_err(backend_error)?;
        insert_outbox(&mut tx, rows, OffsetDateTime::now_utc().unix_timestamp()).await?;
        tx.commit().await.map_err(backend_error)
    }

    async fn open_applications(
        &self,
        after: Option<&ApplicationId>,
        limit: u32,
    ) -> Result<Vec<Application>, StoreError> {
        // Every reference is non-empty, so '' pages from the start. References are uppercase
        // Crockford base32, which every collation orders as ApplicationId's Ord does.
        let rows = sqlx::query(
            "SELECT id, form, submitted_at, revision, state, state_data FROM applications \
             WHERE is_open = 1 AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map_or("", ApplicationId::as_str).to_owned())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(application).collect()
    }

    async fn find_organizations(&self, key: &OrganizationKey) -> Result<Vec<Organization>, StoreError> {
        // A spelling the RA merged into another organization finds that one instead.
        let rows = sqlx::query(
            "SELECT org_key, name FROM organizations WHERE status = 'confirmed' AND (org_key = $1 \
             OR org_key = (SELECT merged_into FROM organizations WHERE org_key = $2 AND status = 'merged')) \
             ORDER BY name",
        )
        .bind(key.as_str())
        .bind(key.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(organization).collect()
    }

    async fn create_organization(&self, organization: &Organization, audit: AuditEvent) -> Result<(), StoreError> {
        let key = organization.key.as_str().to_owned();
        let name = organization.name.as_str().to_owned();
        let name_lower = name.to_lowercase();
        let at = audit.at.unix_timestamp();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO organizations (org_key, name, name_lower, created_at, status) \
                     VALUES ($1, $2, $3, $4, 'pending')",
                )
                .bind(key)
                .bind(name)
                .bind(name_lower)
                .bind(at)
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "organization"))?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use signet_ra::application::ALL_STATE_NAMES;

    use super::*;

    const MIGRATIONS: [(&str, &str); 2] = [
        ("sqlite", include_str!("../migrations/sqlite/0002_applications.sql")),
        ("postgres", include_str!("../migrations/postgres/0002_applications.sql")),
    ];

    /// The quoted names in the `IN (...)` list that follows `column` in `sql`.
    fn check_list(sql: &str, column: &str) -> Vec<String> {
        let start = sql.find(&format!("CHECK ({column} IN (")).expect("the column has a CHECK list");
        let rest = &sql[start..];
        let list = &rest[rest.find("IN (").unwrap() + 4..rest.find(')').unwrap()];
        list.split(',').map(|s| s.trim().trim_matches('\'').to_owned()).collect()
    }

    #[test]
    fn migration_state_list_is_all_state_names() {
        for (backend, sql) in MIGRATIONS {
            assert_eq!(check_list(sql, "state"), ALL_STATE_NAMES, "{backend}");
        }
    }

    #[test]
    fn migration_kind_list_is_every_message_kind() {
        // The newest migration that rebuilds the kind list: the outbox table's CHECK admits
        // exactly the kinds there are.
        let latest = [
            ("sqlite", include_str!("../migrations/sqlite/0021_passkeys.sql")),
            ("postgres", include_str!("../migrations/postgres/0021_passkeys.sql")),
        ];
        let names: Vec<&str> = MessageKind::ALL.iter().map(|k| k.name()).collect();
        for (backend, sql) in latest {
            assert_eq!(check_list(sql, "kind"), names, "{backend}");
        }
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
    }
}
