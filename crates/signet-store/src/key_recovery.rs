//! Key escrow and recovery (signet_ra::key_recovery) on sqlx.
//!
//! A request's state is spread over columns the migration's CHECKs tie to it, so a row that
//! reads back is one the domain could have made. Transitions are compare-and-set on `version`.

use signet_ra::application::{ApplicationId, OperatorId};
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::{
    AgentDesignation, EscrowedKey, KeyRecoveryStore, RecoveryRequest, RecoveryRequestId, RecoveryState,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::applications::{corrupt, ts};
use crate::{Store, backend_error, unique_or};

/// Selects the request columns in the order [`request`] reads them.
const REQUEST_SELECT: &str = "SELECT id, serial, spki_sha256, application, reason, requested_by, requested_at, state, \
     first_approver, second_approver, exported_by, exported_at, version FROM key_recovery_requests";

/// A reference to a row that does not exist is the caller's conflict, like a duplicate row.
fn conflict_or(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Conflict(what),
        _ => unique_or(e, what),
    }
}

fn operator(id: &str) -> Result<OperatorId, StoreError> {
    OperatorId::new(id).map_err(|e| corrupt("key recovery operator", e))
}

fn escrowed_key(row: &AnyRow) -> Result<EscrowedKey, StoreError> {
    let application: String = row.try_get(1).map_err(backend_error)?;
    Ok(EscrowedKey {
        spki_sha256: row.try_get(0).map_err(backend_error)?,
        application: ApplicationId::new(&application).map_err(|e| corrupt("escrowed key application", e))?,
        krk_id: row.try_get(2).map_err(backend_error)?,
        envelope: row.try_get(3).map_err(backend_error)?,
        created_at: ts(row.try_get(4).map_err(backend_error)?)?,
    })
}

fn designation(row: &AnyRow) -> Result<AgentDesignation, StoreError> {
    let id: String = row.try_get(0).map_err(backend_error)?;
    Ok(AgentDesignation {
        operator: operator(&id)?,
        designated_by: row.try_get(1).map_err(backend_error)?,
        designated_at: ts(row.try_get(2).map_err(backend_error)?)?,
    })
}

/// Reads the columns of [`REQUEST_SELECT`].
fn request(row: &AnyRow) -> Result<RecoveryRequest, StoreError> {
    let id: String = row.try_get(0).map_err(backend_error)?;
    let application: String = row.try_get(3).map_err(backend_error)?;
    let requested_by: String = row.try_get(5).map_err(backend_error)?;
    let state: String = row.try_get(7).map_err(backend_error)?;
    let first: Option<String> = row.try_get(8).map_err(backend_error)?;
    let second: Option<String> = row.try_get(9).map_err(backend_error)?;
    let exported_by: Option<String> = row.try_get(10).map_err(backend_error)?;
    let exported_at: Option<i64> = row.try_get(11).map_err(backend_error)?;
    let state = match (state.as_str(), first, second, exported_by, exported_at) {
        ("pending", first, None, None, None) => {
            RecoveryState::Pending { first_approver: first.as_deref().map(operator).transpose()? }
        }
        ("approved", Some(first), Some(second), None, None) => {
            RecoveryState::Approved { approvers: [operator(&first)?, operator(&second)?] }
        }
        ("exported", Some(first), Some(second), Some(by), Some(at)) => RecoveryState::Exported {
            approvers: [operator(&first)?, operator(&second)?],
            exported_by: operator(&by)?,
            exported_at: ts(at)?,
        },
        _ => return Err(corrupt("key recovery request state", format!("{state} of request {id}"))),
    };
    Ok(RecoveryRequest {
        id: RecoveryRequestId::parse(&id).ok_or_else(|| corrupt("key recovery request id", &id))?,
        serial: row.try_get(1).map_err(backend_error)?,
        spki_sha256: row.try_get(2).map_err(backend_error)?,
        application: ApplicationId::new(&application).map_err(|e| corrupt("key recovery application", e))?,
        reason: row.try_get(4).map_err(backend_error)?,
        requested_by: operator(&requested_by)?,
        requested_at: ts(row.try_get(6).map_err(backend_error)?)?,
        state,
        version: row.try_get(12).map_err(backend_error)?,
    })
}

/// The state columns of a request: (state, first_approver, second_approver, exported_by,
/// exported_at).
type StateColumns = (&'static str, Option<String>, Option<String>, Option<String>, Option<i64>);

fn state_columns(state: &RecoveryState) -> StateColumns {
    let name = state.name();
    match state {
        RecoveryState::Pending { first_approver } => {
            (name, first_approver.as_ref().map(|o| o.as_str().to_owned()), None, None, None)
        }
        RecoveryState::Approved { approvers: [first, second] } => {
            (name, Some(first.as_str().to_owned()), Some(second.as_str().to_owned()), None, None)
        }
        RecoveryState::Exported { approvers: [first, second], exported_by, exported_at } => (
            name,
            Some(first.as_str().to_owned()),
            Some(second.as_str().to_owned()),
            Some(exported_by.as_str().to_owned()),
            Some(exported_at.unix_timestamp()),
        ),
    }
}

impl KeyRecoveryStore for Store {
    async fn save_escrow(&self, key: &EscrowedKey, audit: AuditEvent) -> Result<(), StoreError> {
        let key = key.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO escrowed_keys (spki_sha256, application, krk_id, envelope, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key.spki_sha256)
                .bind(key.application.as_str().to_owned())
                .bind(key.krk_id)
                .bind(key.envelope)
                .bind(key.created_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_or(e, "escrowed key"))?;
                Ok(())
            })
        })
        .await
    }

    async fn escrow_of_serial(&self, serial: &str) -> Result<Option<EscrowedKey>, StoreError> {
        // Only an issued certificate names a key holder; an intent or a failed issuance does not.
        sqlx::query(
            "SELECT e.spki_sha256, e.application, e.krk_id, e.envelope, e.created_at \
             FROM certificates c JOIN escrowed_keys e ON e.spki_sha256 = c.spki_sha256 \
             WHERE c.serial = $1 AND c.state = 'issued'",
        )
        .bind(serial)
        .fetch_optional(self.pool())
        .await
        .map_err(backend_error)?
        .as_ref()
        .map(escrowed_key)
        .transpose()
    }

    async fn discard_orphan_escrows(
        &self,
        before: OffsetDateTime,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        const ORPHAN: &str = "NOT EXISTS (SELECT 1 FROM certificates c WHERE c.spki_sha256 = e.spki_sha256 \
                              AND c.state = 'issued') \
                              AND NOT EXISTS (SELECT 1 FROM key_recovery_requests r WHERE r.spki_sha256 = e.spki_sha256)";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT e.spki_sha256, e.application, e.krk_id, e.envelope, e.created_at FROM escrowed_keys e \
             WHERE e.created_at < $1 AND {ORPHAN}"
        )))
        .bind(before.unix_timestamp())
        .fetch_all(self.pool())
        .await
        .map_err(backend_error)?;
        let mut removed = 0;
        for row in &rows {
            let key = escrowed_key(row)?;
            let spki = key.spki_sha256.clone();
            // Checked again inside the transaction: a certificate issued meanwhile keeps its escrow.
            removed += self
                .audited(&key.discarded_event(actor, now), move |c| {
                    Box::pin(async move {
                        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM escrowed_keys WHERE spki_sha256 = $1 AND spki_sha256 IN \
                             (SELECT e.spki_sha256 FROM escrowed_keys e WHERE {ORPHAN})"
                        )))
                        .bind(spki)
                        .execute(&mut *c)
                        .await
                        .map_err(backend_error)?;
                        if done.rows_affected() == 1 { Ok(1) } else { Err(StoreError::Conflict("escrow")) }
                    })
                })
                .await
                .or_else(|e| if matches!(e, StoreError::Conflict(_)) { Ok(0) } else { Err(e) })?;
        }
        Ok(removed)
    }

    async fn designate_agent(&self, d: &AgentDesignation, audit: AuditEvent) -> Result<(), StoreError> {
        let d = d.clone();
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO key_recovery_agents (operator, designated_by, designated_at) VALUES ($1, $2, $3)",
                )
                .bind(d.operator.as_str().to_owned())
                .bind(d.designated_by)
                .bind(d.designated_at.unix_timestamp())
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_or(e, "key recovery agent (already designated, or no such operator)"))?;
                Ok(())
            })
        })
        .await
    }

    async fn agent(&self, operator: &OperatorId) -> Result<Option<AgentDesignation>, StoreError> {
        sqlx::query("SELECT operator, designated_by, designated_at FROM key_recovery_agents WHERE operator = $1")
            .bind(operator.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?
            .as_ref()
            .map(designation)
            .transpose()
    }

    async fn agents(&self) -> Result<Vec<AgentDesignation>, StoreError> {
        let rows =
            sqlx::query("SELECT operator, designated_by, designated_at FROM key_recovery_agents ORDER BY operator")
                .fetch_all(self.pool())
                .await
                .map_err(backend_error)?;
        rows.iter().map(designation).collect()
    }

    async fn create_request(&self, r: &RecoveryRequest, audit: AuditEvent) -> Result<(), StoreError> {
        let r = r.clone();
        let (state, first, second, exported_by, exported_at) = state_columns(&r.state);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO key_recovery_requests (id, serial, spki_sha256, application, reason, requested_by, \
                     requested_at, state, first_approver, second_approver, exported_by, exported_at, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(r.id.as_str().to_owned())
                .bind(r.serial)
                .bind(r.spki_sha256)
                .bind(r.application.as_str().to_owned())
                .bind(r.reason)
                .bind(r.requested_by.as_str().to_owned())
                .bind(r.requested_at.unix_timestamp())
                .bind(state)
                .bind(first)
                .bind(second)
                .bind(exported_by)
                .bind(exported_at)
                .bind(r.version)
                .execute(&mut *c)
                .await
                .map_err(|e| conflict_or(e, "key recovery request (duplicate id, or no such escrowed key)"))?;
                Ok(())
            })
        })
        .await
    }

    async fn request(&self, id: &RecoveryRequestId) -> Result<Option<RecoveryRequest>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{REQUEST_SELECT} WHERE id = $1")))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(backend_error)?
            .as_ref()
            .map(request)
            .transpose()
    }

    async fn requests(&self) -> Result<Vec<RecoveryRequest>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{REQUEST_SELECT} ORDER BY requested_at DESC, id DESC")))
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter().map(request).collect()
    }

    async fn update_request(&self, r: &RecoveryRequest, audit: AuditEvent) -> Result<(), StoreError> {
        // Version 0 is an opened request, which `create_request` stores; nothing can precede it.
        let previous = r.version.checked_sub(1).filter(|p| *p >= 0).ok_or(StoreError::Conflict("request version"))?;
        let (id, version) = (r.id.as_str().to_owned(), r.version);
        let (state, first, second, exported_by, exported_at) = state_columns(&r.state);
        self.audited(&audit, move |c| {
            Box::pin(async move {
                // The audit append above already serialized writers, so this compare-and-set
                // sees the latest committed version: of two agents approving at once, one wins.
                let done = sqlx::query(
                    "UPDATE key_recovery_requests SET state = $1, first_approver = $2, second_approver = $3, \
                     exported_by = $4, exported_at = $5, version = $6 WHERE id = $7 AND version = $8",
                )
                .bind(state)
                .bind(first)
                .bind(second)
                .bind(exported_by)
                .bind(exported_at)
                .bind(version)
                .bind(id.clone())
                .bind(previous)
                .execute(&mut *c)
                .await
                .map_err(backend_error)?;
                if done.rows_affected() != 1 {
                    // Returning an error drops the transaction, taking the audit row with it.
                    let exists = sqlx::query("SELECT 1 FROM key_recovery_requests WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await
                        .map_err(backend_error)?;
                    return Err(if exists.is_some() {
                        StoreError::Conflict("request version")
                    } else {
                        StoreError::NotFound
                    });
                }
                Ok(())
            })
        })
        .await
    }
}
