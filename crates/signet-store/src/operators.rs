//! Operator console sign-in storage: the domain's [`OperatorStore`] (RA operator accounts) and
//! [`AttemptStore`] (failure counts behind every lockout), on both backends.
//!
//! Two writes must hold across server nodes, so both are single conditional statements rather
//! than read-then-write: the TOTP step only moves forward (`UPDATE … WHERE last_totp_step <
//! $step`), and a failure is one upsert that adds 1 to the stored count and returns the sum.

use signet_pki::subject::CommonName;
use signet_ra::application::{OperatorId, PasswordHash};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{
    AttemptScope, AttemptStore, FailureRecord, LockState, LockoutPolicy, Until, failure_event, unlock_event,
};
use signet_ra::operator::{Operator, OperatorStore, Role};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::seeds::{SeedOwner, seed_error};
use crate::{Store, backend_error, unique_or};

const OPERATOR_COLUMNS: &str =
    "id, display_name, role, password_phc, totp_secret, totp_algorithm, totp_digits, last_totp_step, disabled";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is invalid: {e}"))
}

pub(crate) fn step_column(step: u64) -> Result<i64, StoreError> {
    // Steps are Unix time / 30: i64 holds them for longer than the universe has left.
    i64::try_from(step).map_err(|_| StoreError::Backend(format!("TOTP step {step} is out of range")))
}

/// Reads the columns of [`OPERATOR_COLUMNS`], opening the seed with the store's key.
fn operator(store: &Store, row: &AnyRow) -> Result<Operator, StoreError> {
    let id: String = row.try_get(0).map_err(backend_error)?;
    let what = format!("operator {id}");
    let bad = |e: &dyn std::fmt::Display| corrupt(&what, e);
    let display_name: String = row.try_get(1).map_err(backend_error)?;
    let role: String = row.try_get(2).map_err(backend_error)?;
    let phc: String = row.try_get(3).map_err(backend_error)?;
    let secret: String = row.try_get(4).map_err(backend_error)?;
    let algorithm: String = row.try_get(5).map_err(backend_error)?;
    let digits: i64 = row.try_get(6).map_err(backend_error)?;
    let last_totp_step: Option<i64> = row.try_get(7).map_err(backend_error)?;
    let disabled: i64 = row.try_get(8).map_err(backend_error)?;
    let owner = SeedOwner::Operator(&id);
    let totp = Totp::new(
        store.open_seed(&secret, owner).map_err(|e| seed_error(owner, e))?,
        algorithm.parse::<TotpAlgorithm>().map_err(|e| bad(&e))?,
        Digits::try_from(u32::try_from(digits).map_err(|e| bad(&e))?).map_err(|e| bad(&e))?,
    );
    Ok(Operator {
        id: OperatorId::new(&id).map_err(|e| bad(&e))?,
        display_name: CommonName::new(&display_name).map_err(|e| bad(&e))?,
        role: role.parse::<Role>().map_err(|e| bad(&e))?,
        password: PasswordHash::from_phc(&phc).map_err(|e| bad(&e))?,
        totp,
        last_totp_step: last_totp_step.map(u64::try_from).transpose().map_err(|e| bad(&e))?,
        disabled: disabled != 0,
    })
}

impl OperatorStore for Store {
    async fn create_operator(&self, operator: &Operator, audit: AuditEvent) -> Result<(), StoreError> {
        let owner = SeedOwner::Operator(operator.id.as_str());
        let secret = self.seal_seed(operator.totp.secret(), owner).map_err(|e| seed_error(owner, e))?;
        let op = operator.clone();
        let at = audit.at.unix_timestamp();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO operators (id, display_name, role, password_phc, totp_secret, totp_algorithm, \
                     totp_digits, last_totp_step, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(op.id.as_str())
                .bind(op.display_name.as_str())
                .bind(op.role.name())
                .bind(op.password.as_phc())
                .bind(secret)
                .bind(op.totp.algorithm().name())
                .bind(i64::from(op.totp.digits().count()))
                .bind(op.last_totp_step.map(step_column).transpose()?)
                .bind(i64::from(op.disabled))
                .bind(at)
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "operator id"))?;
                Ok(())
            })
        })
        .await
    }

    async fn operator_by_id(&self, id: &OperatorId) -> Result<Option<Operator>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?;
        row.map(|r| operator(self, &r)).transpose()
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id")))
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter().map(|r| operator(self, r)).collect()
    }

    async fn set_last_totp_step(&self, id: &OperatorId, step: u64, audit: AuditEvent) -> Result<(), StoreError> {
        let (id, step) = (id.as_str().to_owned(), step_column(step)?);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let moved = sqlx::query(
                    "UPDATE operators SET last_totp_step = $1 \
                     WHERE id = $2 AND (last_totp_step IS NULL OR last_totp_step < $1)",
                )
                .bind(step)
                .bind(&id)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if moved == 1 {
                    return Ok(());
                }
                let exists = sqlx::query("SELECT 1 FROM operators WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend_error)?;
                Err(if exists.is_some() { StoreError::Conflict("totp step") } else { StoreError::NotFound })
            })
        })
        .await
    }

    async fn set_operator_disabled(
        &self,
        id: &OperatorId,
        disabled: bool,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let id = id.as_str().to_owned();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let done = sqlx::query("UPDATE operators SET disabled = $1 WHERE id = $2")
                    .bind(i64::from(disabled))
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound) }
            })
        })
        .await
    }
}

/// The `locked_until`, `until_unlocked` columns of a lock.
fn lock_columns(lock: Option<Until>) -> (Option<i64>, i64) {
    match lock {
        None => (None, 0),
        Some(Until::Time(t)) => (Some(t.unix_timestamp()), 0),
        Some(Until::AdministratorUnlocks) => (None, 1),
    }
}

impl AttemptStore for Store {
    async fn check(&self, scope: AttemptScope, subject: &str, now: OffsetDateTime) -> Result<LockState, StoreError> {
        let row = sqlx::query(
            "SELECT failures, last_failure, locked_until, until_unlocked FROM login_attempts \
             WHERE scope = $1 AND subject = $2",
        )
        .bind(scope.name())
        .bind(subject)
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        let Some(row) = row else { return Ok(LockState::Open) };
        let ts = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|e| corrupt("attempt time", e));
        let failures: i64 = row.try_get(0).map_err(backend_error)?;
        let last_failure: i64 = row.try_get(1).map_err(backend_error)?;
        let locked_until: Option<i64> = row.try_get(2).map_err(backend_error)?;
        let until_unlocked: i64 = row.try_get(3).map_err(backend_error)?;
        let record = FailureRecord {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            locked_until: match (locked_until, until_unlocked) {
                (_, 1) => Some(Until::AdministratorUnlocks),
                (Some(t), _) => Some(Until::Time(ts(t)?)),
                (None, _) => None,
            },
            last_failure: ts(last_failure)?,
        };
        Ok(record.state(now))
    }

    async fn record_failure(
        &self,
        scope: AttemptScope,
        subject: &str,
        policy: &LockoutPolicy,
        now: OffsetDateTime,
    ) -> Result<LockState, StoreError> {
        let (subject, policy) = (subject.to_owned(), *policy);
        self.audited(&failure_event(scope, &subject, now), move |c| {
            Box::pin(async move {
                // The count is the database's own increment, so concurrent failures on several
                // nodes each add one. The row stays locked until commit (PostgreSQL's row lock,
                // SQLite's write lock), so the lock written next matches the count just returned.
                let failures: i64 = sqlx::query(
                    "INSERT INTO login_attempts (scope, subject, failures, last_failure, locked_until, until_unlocked) \
                     VALUES ($1, $2, 1, $3, NULL, 0) \
                     ON CONFLICT (scope, subject) DO UPDATE \
                     SET failures = login_attempts.failures + 1, last_failure = excluded.last_failure \
                     RETURNING failures",
                )
                .bind(scope.name())
                .bind(&subject)
                .bind(now.unix_timestamp())
                .fetch_one(&mut *c)
                .await
                .map_err(backend_error)?
                .try_get(0)
                .map_err(backend_error)?;
                let record = policy.record(u32::try_from(failures).unwrap_or(u32::MAX), now);
                let (locked_until, until_unlocked) = lock_columns(record.locked_until);
                sqlx::query(
                    "UPDATE login_attempts SET locked_until = $1, until_unlocked = $2 WHERE scope = $3 AND subject = $4",
                )
                .bind(locked_until)
                .bind(until_unlocked)
                .bind(scope.name())
                .bind(&subject)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                Ok(record.state(now))
            })
        })
        .await
    }

    async fn clear(&self, scope: AttemptScope, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE scope = $1 AND subject = $2")
            .bind(scope.name())
            .bind(subject)
            .execute(self.pool())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn unlock(
        &self,
        scope: AttemptScope,
        subject: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let subject = subject.to_owned();
        self.audited(&unlock_event(scope, &subject, actor, now), move |c| {
            Box::pin(async move {
                let done = sqlx::query("DELETE FROM login_attempts WHERE scope = $1 AND subject = $2")
                    .bind(scope.name())
                    .bind(subject)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound) }
            })
        })
        .await
    }
}
