//! The CA's state changes written in groups: issuance intents, completions, failures and
//! revocations, any number of them in one transaction with one append to the store's audit
//! lane, each with an outcome of its own. A refusal of one (a key already certified, a
//! certificate already revoked) changes nothing for it and nothing for the others. An
//! issuance for an ACME order moves the order in the same transaction as its own writes.

use std::collections::HashSet;

use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::acme::OrderMove;
use signet_ra::audit::AuditEvent;
use signet_ra::issuance::{IssuanceIntent, Revoked, StoreError};
use signet_ra::notify::OutboxMessage;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Row};
use time::OffsetDateTime;

use crate::acme::move_order;
use crate::applications::{insert_outbox, outbox_rows};
use crate::checkpoints::Checkpoints;
use crate::{Backend, Store, backend_error, request};

mod one_statement;
use one_statement::OneStatement;

/// One change to the CA's records, with its audit event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CaWrite {
    /// Reserves serial and key before signing; refused with `Conflict("key")` if the key is
    /// certified (or reserved) already.
    Intent {
        /// The reservation.
        intent: IssuanceIntent,
        /// Its audit event.
        audit: AuditEvent,
        /// The ACME order it is for, moving to processing: if the order moved meanwhile, the
        /// intent is refused with `Conflict("order progress")`.
        order: Option<OrderMove>,
    },
    /// Stores a signed certificate against its intent; `NotFound` if the intent is no longer
    /// one (it was resolved as abandoned meanwhile).
    Complete {
        /// The certificate.
        cert: IssuedCertificate,
        /// Its audit event.
        audit: AuditEvent,
        /// The ACME order it is for, moving to valid.
        order: Option<OrderMove>,
    },
    /// Marks an intent failed, releasing its key; [`Written::Resolved`] if it is no longer an
    /// intent. The intents job resolves abandoned intents with it too.
    Fail {
        /// The intent's serial.
        serial: Serial,
        /// Its audit event.
        audit: AuditEvent,
        /// The ACME order it was for, moving to invalid.
        order: Option<OrderMove>,
    },
    /// Revokes an issued certificate and queues its notices; a repeated revocation is
    /// `Already` and queues and audits nothing.
    Revoke {
        /// The certificate.
        serial: Serial,
        /// Why.
        reason: RevocationReason,
        /// When.
        at: OffsetDateTime,
        /// Its audit event.
        audit: AuditEvent,
        /// The subscriber's notices.
        outbox: Vec<OutboxMessage>,
    },
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The change was made.
    Done,
    /// A failure of an intent resolved already (as abandoned, by this node or another):
    /// nothing changed, and nothing was audited for it.
    Resolved,
    /// A revocation's outcome.
    Revoked(Revoked),
}

impl Written {
    /// A revocation's outcome; an error if this was not a revocation.
    pub fn revocation(self) -> Result<Revoked, StoreError> {
        match self {
            Self::Revoked(r) => Ok(r),
            Self::Done | Self::Resolved => {
                Err(StoreError::Backend("a revocation was written as something else".into()))
            }
        }
    }
}

/// A write and the request it was made in, whose id its audit row carries.
#[derive(Debug, Clone)]
pub struct PendingWrite {
    write: CaWrite,
    request_id: Option<String>,
}

impl CaWrite {
    /// This write, tagged with the request the calling task serves (if any), so a writer on
    /// another task records it as that request's.
    pub fn in_this_request(self) -> PendingWrite {
        PendingWrite { write: self, request_id: request::current() }
    }
}

/// `(…), (…)` with `rows` groups of `columns` numbered parameters each, after the first
/// `skip`: the rows of one multi-row statement.
pub(crate) fn value_rows(skip: usize, rows: usize, columns: usize) -> String {
    let row = |i: usize| {
        let params: Vec<String> = (1..=columns).map(|j| format!("${}", skip + i * columns + j)).collect();
        format!("({})", params.join(", "))
    };
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// The statement that stores `rows` intents ([`bind_intents`]), its parameters after the
/// first `skip`; a key certified (or reserved) already leaves its intent out.
fn intents_sql(skip: usize, rows: usize) -> String {
    format!(
        "INSERT INTO certificates (serial, profile, subject, spki_sha256, state, requested_by, created_at) \
         VALUES {} ON CONFLICT DO NOTHING",
        value_rows(skip, rows, 7)
    )
}

fn bind_intents<'q>(mut query: AnyQuery<'q>, intents: &[&'q IssuanceIntent]) -> AnyQuery<'q> {
    for i in intents {
        query = query
            .bind(i.serial.to_hex())
            .bind(i.profile.as_str())
            .bind(i.subject_json.as_str())
            .bind(i.spki_sha256.as_str())
            .bind("intent")
            .bind(i.requested_by.as_str())
            .bind(i.at.unix_timestamp());
    }
    query
}

/// The statement that stores `rows` certificates ([`bind_certificates`]) against their
/// intents, its parameters after the first `skip`; one whose intent is no longer one is left out.
fn certificates_sql(skip: usize, rows: usize) -> String {
    format!(
        "WITH v(s, d, nb, na) AS (VALUES {}) \
         UPDATE certificates SET state = 'issued', der = v.d, not_before = v.nb, not_after = v.na \
         FROM v WHERE certificates.serial = v.s AND certificates.state = 'intent'",
        value_rows(skip, rows, 4)
    )
}

fn bind_certificates<'q>(mut query: AnyQuery<'q>, certs: &[&'q IssuedCertificate]) -> AnyQuery<'q> {
    for cert in certs {
        query = query
            .bind(cert.serial.to_hex())
            .bind(cert.der.as_slice())
            .bind(cert.not_before.unix_timestamp())
            .bind(cert.not_after.unix_timestamp());
    }
    query
}

/// The certificates and the intents among `writes`, each in the order they come.
fn certificates_and_intents<'a>(
    writes: impl Iterator<Item = &'a PendingWrite> + Clone,
) -> (Vec<&'a IssuedCertificate>, Vec<&'a IssuanceIntent>) {
    let certs = writes
        .clone()
        .filter_map(|w| if let CaWrite::Complete { cert, .. } = &w.write { Some(cert) } else { None })
        .collect();
    let intents = writes
        .filter_map(|w| if let CaWrite::Intent { intent, .. } = &w.write { Some(intent) } else { None })
        .collect();
    (certs, intents)
}

/// One statement for all of a group's `rows` (`sql` for as many, `bind` binding them); the
/// serials of those it stored.
async fn stored_serials<'q, T>(
    c: &mut AnyConnection,
    rows: &[&'q T],
    sql: fn(usize, usize) -> String,
    bind: fn(AnyQuery<'q>, &[&'q T]) -> AnyQuery<'q>,
) -> Result<HashSet<String>, StoreError> {
    if rows.is_empty() {
        return Ok(Default::default());
    }
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(format!("{} RETURNING serial", sql(0, rows.len())))), rows);
    let returned = query.fetch_all(&mut *c).await.map_err(backend_error)?;
    returned.iter().map(|r| r.try_get::<String, _>(0)).collect::<Result<_, _>>().map_err(backend_error)
}

/// Takes back an intent stored in this transaction.
async fn unreserve(c: &mut AnyConnection, serial: &Serial) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM certificates WHERE serial = $1 AND state = 'intent'")
        .bind(serial.to_hex())
        .execute(&mut *c)
        .await
        .map_err(backend_error)?;
    Ok(())
}

// A failure or a revocation is a statement of its own: both are rare beside issuance. Each
// returns its outcome, and whether it changed anything (and is audited).

/// Marks an intent failed, releasing its key; one resolved already (as abandoned) is left as it
/// is, and its failure is not audited twice.
async fn fail(c: &mut AnyConnection, serial: &Serial) -> Result<(Result<Written, StoreError>, bool), StoreError> {
    let done = sqlx::query(
        "UPDATE certificates SET state = 'failed', key_released = TRUE WHERE serial = $1 AND state = 'intent'",
    )
    .bind(serial.to_hex())
    .execute(&mut *c)
    .await
    .map_err(backend_error)?;
    let changed = done.rows_affected() == 1;
    Ok((Ok(if changed { Written::Done } else { Written::Resolved }), changed))
}

/// Revokes an issued certificate and queues its notices; a repeated revocation changes nothing.
async fn revoke(
    c: &mut AnyConnection,
    serial: &Serial,
    reason: RevocationReason,
    at: OffsetDateTime,
    outbox: &[OutboxMessage],
) -> Result<(Result<Written, StoreError>, bool), StoreError> {
    let serial = serial.to_hex();
    let done = sqlx::query(
        "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
         WHERE serial = $3 AND state = 'issued' AND revoked_at IS NULL",
    )
    .bind(at.unix_timestamp())
    .bind(i64::from(reason.code()))
    .bind(serial.clone())
    .execute(&mut *c)
    .await
    .map_err(backend_error)?;
    if done.rows_affected() == 1 {
        insert_outbox(c, outbox_rows(outbox), at.unix_timestamp()).await?;
        return Ok((Ok(Written::Revoked(Revoked::Now)), true));
    }
    let exists = sqlx::query("SELECT 1 FROM certificates WHERE serial = $1 AND state = 'issued'")
        .bind(serial)
        .fetch_optional(&mut *c)
        .await
        .map_err(backend_error)?;
    // Nothing changed, so nothing is recorded.
    Ok((if exists.is_some() { Ok(Written::Revoked(Revoked::Already)) } else { Err(StoreError::NotFound) }, false))
}

impl CaWrite {
    fn audit(&self) -> &AuditEvent {
        match self {
            Self::Intent { audit, .. }
            | Self::Complete { audit, .. }
            | Self::Fail { audit, .. }
            | Self::Revoke { audit, .. } => audit,
        }
    }

    /// The ACME order move made with this write, if any.
    pub(crate) fn order_move(&self) -> Option<&OrderMove> {
        match self {
            Self::Intent { order, .. } | Self::Complete { order, .. } | Self::Fail { order, .. } => order.as_ref(),
            Self::Revoke { .. } => None,
        }
    }

    // The order a group is applied in: the certificates, then failures and revocations as
    // they came, then the intents, so a key a failure releases is free for an intent beside it.
    fn phase(&self) -> u8 {
        match self {
            Self::Complete { .. } => 0,
            Self::Fail { .. } | Self::Revoke { .. } => 1,
            Self::Intent { .. } => 2,
        }
    }
}

impl Store {
    /// Makes `writes` in one transaction and appends the audit rows of those that changed
    /// something; returns each write's outcome. `Err` only if the transaction failed, in which
    /// case none of them was made (and the same writes may be tried again).
    pub async fn write_ca(&self, writes: &[PendingWrite]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        // The turn first: a writer holding a connection while it waits could leave the one
        // whose turn it is without a connection to write on.
        let _turn = self.turns.take().await;
        let mut conn = self.pool().acquire().await.map_err(backend_error)?;
        self.write_ca_on(&mut conn, writes).await
    }

    /// A writer of groups that keeps its connection from one group to the next, sparing each
    /// group the pool's check-out (a round trip on PostgreSQL).
    pub fn ca_writer(&self) -> CaWriter {
        let checkpoints = (self.backend() == Backend::Sqlite).then(Checkpoints::default);
        let one_statement = (self.backend() == Backend::Postgres).then(OneStatement::default);
        CaWriter { store: self.clone(), conn: None, checkpoints, one_statement }
    }

    async fn write_ca_on(
        &self,
        conn: &mut AnyConnection,
        writes: &[PendingWrite],
    ) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(backend_error)?;
        // The writes of a group were all waiting at once, so any order is one they could
        // have come in; the audit rows follow the order they are applied in.
        let mut order: Vec<usize> = (0..writes.len()).collect();
        order.sort_by_key(|&i| writes[i].write.phase());
        let (certs, intents) = certificates_and_intents(writes.iter());
        // Every statement is an INSERT or UPDATE, so SQLite takes the write lock on the first
        // one and cannot deadlock upgrading a read lock.
        let issued = stored_serials(&mut tx, &certs, certificates_sql, bind_certificates).await?;
        let mut reserved = None;
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut events = Vec::with_capacity(writes.len());
        for &i in &order {
            let write = &writes[i].write;
            let (mut outcome, mut changed) = match write {
                CaWrite::Complete { cert, .. } if issued.contains(&cert.serial.to_hex()) => (Ok(Written::Done), true),
                // The intent is no longer one: it was resolved as abandoned meanwhile.
                CaWrite::Complete { .. } => (Err(StoreError::NotFound), false),
                CaWrite::Intent { intent, .. } => {
                    if reserved.is_none() {
                        reserved = Some(stored_serials(&mut tx, &intents, intents_sql, bind_intents).await?);
                    }
                    if reserved.as_ref().is_some_and(|r| r.contains(&intent.serial.to_hex())) {
                        (Ok(Written::Done), true)
                    } else {
                        // The serial has 96 random bits or more, so the conflict is the key's unique index.
                        (Err(StoreError::Conflict("key")), false)
                    }
                }
                CaWrite::Fail { serial, .. } => fail(&mut tx, serial).await?,
                CaWrite::Revoke { serial, reason, at, outbox, .. } => {
                    revoke(&mut tx, serial, *reason, *at, outbox).await?
                }
            };
            // An order moves with the change it goes with; with a failure, also when the intent
            // was resolved before: either way its certificate will not come.
            let mut moved = None;
            if let Some(step) = write.order_move().filter(|_| changed || matches!(write, CaWrite::Fail { .. })) {
                let intent = if let CaWrite::Intent { intent, .. } = write { Some(&intent.serial) } else { None };
                if move_order(&mut tx, &step.order, &step.from, intent).await? {
                    moved = Some(&step.audit);
                } else if let Some(serial) = intent {
                    // Another finalize of the same order went first: this one keeps nothing,
                    // so its key stays free.
                    unreserve(&mut tx, serial).await?;
                    (outcome, changed) = (Err(StoreError::Conflict("order progress")), false);
                }
            }
            let request_id = writes[i].request_id.as_deref();
            if changed {
                events.push((write.audit(), request_id));
            }
            events.extend(moved.map(|audit| (audit, request_id)));
            outcomes.push((i, outcome));
        }
        self.append_audit(&mut tx, &events).await.map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)?;
        outcomes.sort_by_key(|&(i, _)| i);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    /// One write in a transaction of its own, on a connection from the pool.
    pub async fn write_alone(&self, write: &PendingWrite) -> Result<Written, StoreError> {
        let mut outcomes = self.write_ca(std::slice::from_ref(write)).await?;
        outcomes.pop().unwrap_or_else(|| Err(StoreError::Backend("a write went missing".into())))
    }
}

/// See [`Store::ca_writer`].
pub struct CaWriter {
    store: Store,
    conn: Option<PoolConnection<Any>>,
    /// On SQLite, the log's checkpoints this writer asks for beside its commits.
    checkpoints: Option<Checkpoints>,
    /// On PostgreSQL, what this writer needs to write a group in one statement.
    one_statement: Option<OneStatement>,
}

impl CaWriter {
    /// [`Store::write_ca`] on the kept connection. A failed group gives it back to the pool
    /// (which checks a PostgreSQL connection before lending it again), and the next group
    /// takes one from the pool. On SQLite, every [`crate::CHECKPOINT_EVERY`] writes it starts
    /// a checkpoint of the log on another connection. On PostgreSQL a group of intents and
    /// certificates alone is written in one statement when it can be (`one_statement`).
    pub async fn write(&mut self, writes: &[PendingWrite]) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.store.pool().acquire().await.map_err(backend_error)?,
        };
        let at_once = match &mut self.one_statement {
            Some(one) => one.write(&self.store, &mut conn, writes).await?,
            None => None,
        };
        let outcomes = match at_once {
            Some(outcomes) => outcomes,
            None => {
                // This writer waits for its turn holding the one connection it keeps; the pool
                // has others for the writer whose turn it is.
                let _turn = self.store.turns.take().await;
                self.store.write_ca_on(&mut conn, writes).await?
            }
        };
        self.conn = Some(conn);
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.committed(self.store.pool(), writes.len());
        }
        Ok(outcomes)
    }

    /// Gives the kept connection back to the pool (closing a store waits for every connection
    /// to be back).
    pub fn release(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use signet_testkit::TestDb;

    use super::*;

    // Storing a certificate changes its row's state, not its key. On SQLite the writer's
    // statement leaves the key's index alone: with the index's condition on the state, SQLite
    // deleted and re-added the key's entry, rewriting a page at a random place in that index
    // for every certificate.
    #[tokio::test]
    async fn sqlite_storing_a_certificate_leaves_the_key_index_alone() {
        let db = TestDb::new("sqlite").await;
        let store = Store::connect(&db.url).await.unwrap();
        let index: i64 = sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = 'certificates_key'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        let explain = format!("EXPLAIN {}", certificates_sql(0, 1));
        let program = sqlx::query(sqlx::AssertSqlSafe(explain)).fetch_all(store.pool()).await.unwrap();
        let opened: Vec<i64> =
            program.iter().filter(|op| op.get::<String, _>(1) == "OpenWrite").map(|op| op.get::<i64, _>(3)).collect();
        assert!(!opened.is_empty(), "the statement writes the table");
        assert!(!opened.contains(&index), "the key's index (root page {index}) is written: {opened:?}");
        store.close().await;
    }
}
