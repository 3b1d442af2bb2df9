//! Certificate Management Center storage: the domain's [`SoftTokenStore`] (soft tokens and
//! recovery questions) and the listing of an account's certificates, on both backends.
//!
//! The writes that must hold across nodes are single conditional statements: a TOTP step only
//! moves forward (`… WHERE last_step < $step`), and activation flips the row only while it is
//! still the pending token that was checked.

use signet_pki::Serial;
use signet_ra::application::{ApplicationId, PasswordHash};
use signet_ra::audit::AuditEvent;
use signet_ra::cmc::{RecoveryQuestion, SoftToken, SoftTokenSerial, SoftTokenState, SoftTokenStore};
use signet_ra::issuance::{StoreError, StoredStatus};
use signet_ra::notify::OutboxMessage;
use signet_ra::totp::{Digits, Totp, TotpAlgorithm};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::applications::{corrupt, insert_outbox, outbox_rows, ts};
use crate::ca::reason;
use crate::operators::step_column;
use crate::seeds::{SeedOwner, seed_error};
use crate::{Store, backend_error, unique_or};

const TOKEN_COLUMNS: &str = "serial, account, state, secret, algorithm, digits, pin_phc, last_step, created_at";

/// Reads the columns of [`TOKEN_COLUMNS`], opening the seed with the store's key.
fn soft_token(store: &Store, row: &AnyRow) -> Result<SoftToken, StoreError> {
    let serial: String = row.try_get(0).map_err(backend_error)?;
    let what = format!("soft token {serial}");
    let bad = |e: &dyn std::fmt::Display| corrupt(&what, e);
    let account: String = row.try_get(1).map_err(backend_error)?;
    let state: String = row.try_get(2).map_err(backend_error)?;
    let secret: String = row.try_get(3).map_err(backend_error)?;
    let algorithm: String = row.try_get(4).map_err(backend_error)?;
    let digits: i64 = row.try_get(5).map_err(backend_error)?;
    let pin: Option<String> = row.try_get(6).map_err(backend_error)?;
    let last_step: Option<i64> = row.try_get(7).map_err(backend_error)?;
    let created_at: i64 = row.try_get(8).map_err(backend_error)?;
    let state = match (state.as_str(), last_step) {
        ("pending", None) => SoftTokenState::Pending,
        ("active", Some(step)) => SoftTokenState::Active { last_step: u64::try_from(step).map_err(|e| bad(&e))? },
        _ => return Err(bad(&format!("state {state} with step {last_step:?}"))),
    };
    let owner = SeedOwner::SoftToken { serial: &serial, account: &account };
    Ok(SoftToken {
        account: ApplicationId::new(&account).map_err(|e| bad(&e))?,
        serial: SoftTokenSerial::new(&serial).ok_or_else(|| bad(&"serial"))?,
        totp: Totp::new(
            store.open_seed(&secret, owner).map_err(|e| seed_error(owner, e))?,
            algorithm.parse::<TotpAlgorithm>().map_err(|e| bad(&e))?,
            Digits::try_from(u32::try_from(digits).map_err(|e| bad(&e))?).map_err(|e| bad(&e))?,
        ),
        pin: pin.map(|p| PasswordHash::from_phc(&p)).transpose().map_err(|e| bad(&e))?,
        state,
        created_at: ts(created_at)?,
    })
}

/// One of an account's certificates, for the Certificate Management Center's list.
#[derive(Debug, Clone)]
pub struct AccountCertificate {
    /// Serial.
    pub serial: Serial,
    /// Profile id (`medium-token-identity`, `device-tls`, …).
    pub profile: String,
    /// DER.
    pub der: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Good or revoked.
    pub status: StoredStatus,
}

impl Store {
    /// The certificates issued for an account — retrieved onto its token (requested by
    /// `applicant:<reference>`) or created in the Certificate Management Center
    /// (`subscriber:<reference>`) — oldest first.
    pub async fn account_certificates(&self, account: &ApplicationId) -> Result<Vec<AccountCertificate>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS} FROM certificates \
             WHERE state = 'issued' AND requested_by IN ($1, $2) ORDER BY created_at, serial"
        )))
        .bind(format!("applicant:{account}"))
        .bind(signet_ra::cmc::actor(account))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter().map(account_certificate).collect()
    }

    /// The unrevoked certificates of subscriber accounts that expire after `now` and at the
    /// latest at `until`, with their accounts, by serial after `after`, at most `limit`: the
    /// expiry reminders' work list.
    pub async fn expiring_account_certificates(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        after: Option<&Serial>,
        limit: u32,
    ) -> Result<Vec<(ApplicationId, AccountCertificate)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CERTIFICATE_COLUMNS}, requested_by FROM certificates \
             WHERE state = 'issued' AND revoked_at IS NULL AND not_after > $1 AND not_after <= $2 \
             AND (requested_by LIKE 'applicant:%' OR requested_by LIKE 'subscriber:%') AND serial > $3 \
             ORDER BY serial LIMIT $4"
        )))
        .bind(now.unix_timestamp())
        .bind(until.unix_timestamp())
        .bind(after.map(Serial::to_hex).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let requested_by: String = r.try_get(7).map_err(backend_error)?;
                let account = signet_ra::cmc::account_of(&requested_by)
                    .ok_or_else(|| corrupt("certificate requester", &requested_by))?;
                Ok((account, account_certificate(r)?))
            })
            .collect()
    }
}

pub(crate) const CERTIFICATE_COLUMNS: &str =
    "serial, profile, der, not_before, not_after, revoked_at, revocation_reason";

/// Reads the columns of [`CERTIFICATE_COLUMNS`].
pub(crate) fn account_certificate(r: &AnyRow) -> Result<AccountCertificate, StoreError> {
    let serial: String = r.try_get(0).map_err(backend_error)?;
    let revoked_at: Option<i64> = r.try_get(5).map_err(backend_error)?;
    let reason_code: Option<i64> = r.try_get(6).map_err(backend_error)?;
    let status = match (revoked_at, reason_code) {
        (Some(at), Some(code)) => StoredStatus::Revoked { at: ts(at)?, reason: reason(code)? },
        _ => StoredStatus::Good,
    };
    Ok(AccountCertificate {
        serial: Serial::from_hex(&serial).map_err(|e| corrupt("serial", e))?,
        profile: r.try_get(1).map_err(backend_error)?,
        der: r.try_get(2).map_err(backend_error)?,
        not_before: ts(r.try_get(3).map_err(backend_error)?)?,
        not_after: ts(r.try_get(4).map_err(backend_error)?)?,
        status,
    })
}

impl Store {
    /// Whether an account holds a valid (unexpired, unrevoked) ECA identity certificate at
    /// `now`: a vetted subscriber, as the sponsor of a device certificate must be.
    pub async fn holds_identity_certificate(
        &self,
        account: &ApplicationId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .account_certificates(account)
            .await?
            .iter()
            .any(|c| c.profile.ends_with("-identity") && c.status == StoredStatus::Good && c.not_after > now))
    }
}

impl SoftTokenStore for Store {
    async fn soft_token(&self, account: &ApplicationId, state: &'static str) -> Result<Option<SoftToken>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM soft_tokens WHERE account = $1 AND state = $2"
        )))
        .bind(account.as_str())
        .bind(state)
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?;
        row.map(|r| soft_token(self, &r)).transpose()
    }

    async fn save_pending(&self, token: &SoftToken, audit: AuditEvent) -> Result<(), StoreError> {
        if token.state != SoftTokenState::Pending {
            return Err(StoreError::Conflict("only a pending soft token is saved as pending"));
        }
        let owner = SeedOwner::SoftToken { serial: token.serial.as_str(), account: token.account.as_str() };
        let secret = self.seal_seed(token.totp.secret(), owner).map_err(|e| seed_error(owner, e))?;
        let token = token.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM soft_tokens WHERE account = $1 AND state = 'pending'")
                    .bind(token.account.as_str())
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                sqlx::query(
                    "INSERT INTO soft_tokens (serial, account, state, secret, algorithm, digits, pin_phc, last_step, created_at) \
                     VALUES ($1, $2, 'pending', $3, $4, $5, $6, NULL, $7)",
                )
                .bind(token.serial.as_str())
                .bind(token.account.as_str())
                .bind(secret)
                .bind(token.totp.algorithm().name())
                .bind(i64::from(token.totp.digits().count()))
                .bind(token.pin.as_ref().map(|p| p.as_phc().to_owned()))
                .bind(token.created_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, "soft token serial"))?;
                Ok(())
            })
        })
        .await
    }

    async fn activate(&self, token: &SoftToken, audit: AuditEvent) -> Result<(), StoreError> {
        let SoftTokenState::Active { last_step } = token.state else {
            return Err(StoreError::Conflict("only a registered soft token is activated"));
        };
        let (serial, account, step) =
            (token.serial.as_str().to_owned(), token.account.as_str().to_owned(), step_column(last_step)?);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let still_pending = sqlx::query("SELECT 1 FROM soft_tokens WHERE serial = $1 AND state = 'pending'")
                    .bind(&serial)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend_error)?;
                if still_pending.is_none() {
                    return Err(StoreError::Conflict("soft token is no longer pending"));
                }
                sqlx::query("DELETE FROM soft_tokens WHERE account = $1 AND state = 'active'")
                    .bind(&account)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                let flipped = sqlx::query(
                    "UPDATE soft_tokens SET state = 'active', last_step = $1 WHERE serial = $2 AND state = 'pending'",
                )
                .bind(step)
                .bind(&serial)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if flipped == 1 { Ok(()) } else { Err(StoreError::Conflict("soft token is no longer pending")) }
            })
        })
        .await
    }

    async fn advance_step(&self, serial: &SoftTokenSerial, step: u64, audit: AuditEvent) -> Result<(), StoreError> {
        let (serial, step) = (serial.as_str().to_owned(), step_column(step)?);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let moved = sqlx::query(
                    "UPDATE soft_tokens SET last_step = $1 WHERE serial = $2 AND state = 'active' AND last_step < $1",
                )
                .bind(step)
                .bind(&serial)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if moved == 1 { Ok(()) } else { Err(StoreError::Conflict("totp step")) }
            })
        })
        .await
    }

    async fn remove_second_factors(&self, account: &ApplicationId, audit: AuditEvent) -> Result<(), StoreError> {
        let (account, owner) = (account.as_str().to_owned(), signet_ra::cmc::actor(account));
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM soft_tokens WHERE account = $1")
                    .bind(&account)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                sqlx::query("DELETE FROM passkeys WHERE owner = $1")
                    .bind(&owner)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                Ok(())
            })
        })
        .await
    }

    async fn remove_active_soft_token(
        &self,
        account: &ApplicationId,
        audit: AuditEvent,
        notice: Option<&OutboxMessage>,
    ) -> Result<(), StoreError> {
        let (account, owner) = (account.as_str().to_owned(), signet_ra::cmc::actor(account));
        let (notice, at) =
            (notice.map(|n| outbox_rows(std::slice::from_ref(n))).unwrap_or_default(), audit.at.unix_timestamp());
        self.audited(&audit, move |c| {
            Box::pin(async move {
                let removed = sqlx::query(
                    "DELETE FROM soft_tokens WHERE account = $1 AND state = 'active' \
                     AND EXISTS (SELECT 1 FROM passkeys WHERE owner = $2)",
                )
                .bind(&account)
                .bind(&owner)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?
                .rows_affected();
                if removed == 1 {
                    return insert_outbox(c, notice, at).await;
                }
                let active = sqlx::query("SELECT 1 FROM soft_tokens WHERE account = $1 AND state = 'active'")
                    .bind(&account)
                    .fetch_optional(&mut *c)
                    .await
                    .map_err(backend_error)?;
                Err(if active.is_some() {
                    StoreError::Conflict("the last second factor")
                } else {
                    StoreError::NotFound
                })
            })
        })
        .await
    }

    async fn recovery_questions(&self, account: &ApplicationId) -> Result<Vec<RecoveryQuestion>, StoreError> {
        let rows =
            sqlx::query("SELECT question, answer_phc FROM recovery_questions WHERE account = $1 ORDER BY position")
                .bind(account.as_str())
                .fetch_all(self.pool())
                .await
                .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                let question: i64 = r.try_get(0).map_err(backend_error)?;
                let phc: String = r.try_get(1).map_err(backend_error)?;
                Ok(RecoveryQuestion {
                    question: usize::try_from(question).map_err(|e| corrupt("recovery question", e))?,
                    answer: PasswordHash::from_phc(&phc).map_err(|e| corrupt("recovery answer", e))?,
                })
            })
            .collect()
    }

    async fn set_recovery_questions(
        &self,
        account: &ApplicationId,
        questions: &[RecoveryQuestion],
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let account = account.as_str().to_owned();
        let questions = questions.to_vec();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM recovery_questions WHERE account = $1")
                    .bind(&account)
                    .execute(&mut *c)
                    .await
                    .map_err(backend_error)?;
                for (position, q) in questions.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO recovery_questions (account, position, question, answer_phc) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&account)
                    .bind(i64::try_from(position).map_err(|e| corrupt("position", e))?)
                    .bind(i64::try_from(q.question).map_err(|e| corrupt("question", e))?)
                    .bind(q.answer.as_phc())
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
