//! The audit log as stored: lanes of hash-chained rows (see `signet_ra::audit`), each store
//! appending to a lane of its own, and the anchors that tie the lanes together.
//!
//! A lane's head row is only ever updated by the one store that owns the lane, so appends from
//! different nodes (or different processes on one database) never wait on a common row. Within
//! a store, appends to its lane serialize on that lane's head row, which on SQLite is also what
//! takes the write lock first in every audited transaction (no lock-upgrade deadlocks).

use std::sync::Arc;

use signet_ra::audit::{Anchor, AuditEvent, AuditRecord, ChainBreak, GENESIS_HASH, LaneHead, verify_log};
use signet_ra::issuance::StoreError;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::ca_writes::{AnyQuery, value_rows};
use crate::{Backend, Store, backend_error, request};

/// The lane a store appends to: a random name, fresh for every opened store.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    name: Arc<str>,
    /// The heads of the other lanes as this lane's last anchor recorded them, so an anchor
    /// only names lanes that moved since.
    anchored: Arc<tokio::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

impl Lane {
    pub(crate) fn new() -> Self {
        use aws_lc_rs::rand::SecureRandom;
        let mut id = [0u8; 8];
        // As for serials: without the system's random generator nothing here is safe to run.
        aws_lc_rs::rand::SystemRandom::new().fill(&mut id).expect("system random generator");
        Self { name: hex::encode(id).into(), anchored: Default::default() }
    }
}

/// The audit rows' columns, in the order [`audit_record`] reads them and appends write them.
macro_rules! audit_columns {
    () => {
        "seq, at, actor, action, subject, details, prev_hash, hash, request_id, lane, lane_seq"
    };
}

/// Selects the audit rows' columns in the order [`audit_record`] reads them.
pub(crate) const AUDIT_SELECT: &str = concat!("SELECT ", audit_columns!(), " FROM audit_log");

const AUDIT_COLUMNS: &str = audit_columns!();

/// The `k` places in the whole log the head's update returned: on SQLite the last place so far
/// (the new ones follow it), on PostgreSQL the sequence's `k` values, comma-separated.
fn log_places(backend: Backend, returned: &str, k: i64) -> Result<Vec<i64>, sqlx::Error> {
    let bad = || sqlx::Error::Protocol(format!("the audit log's new places came back as {returned:?}"));
    let places: Vec<i64> = match backend {
        Backend::Sqlite => {
            let last: i64 = returned.parse().map_err(|_| bad())?;
            (last + 1..=last + k).collect()
        }
        Backend::Postgres => {
            let mut places: Vec<i64> =
                returned.split(',').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad())?;
            // string_agg keeps no promised order; a lane's rows take their places in order.
            places.sort_unstable();
            places
        }
    };
    if i64::try_from(places.len()).ok() != Some(k) {
        return Err(bad());
    }
    Ok(places)
}

/// How many parameters an audit row takes in [`audit_rows_sql`].
const AUDIT_PARAMS: usize = 11;

/// The statement that stores `rows` audit rows ([`bind_records`]), its parameters after the
/// first `skip`.
pub(crate) fn audit_rows_sql(skip: usize, rows: usize) -> String {
    format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES {}", value_rows(skip, rows, AUDIT_PARAMS))
}

/// Binds `records` in the order [`audit_rows_sql`] takes them.
pub(crate) fn bind_records(mut query: AnyQuery<'_>, records: Vec<AuditRecord>) -> AnyQuery<'_> {
    for r in records {
        query = query
            .bind(r.seq)
            .bind(r.at)
            .bind(r.actor)
            .bind(r.action)
            .bind(r.subject)
            .bind(r.details)
            .bind(r.prev_hash)
            .bind(r.hash)
            .bind(r.request_id)
            .bind(r.lane)
            .bind(r.lane_seq);
    }
    query
}

pub(crate) fn audit_record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        subject: r.try_get(4)?,
        details: r.try_get(5)?,
        prev_hash: r.try_get(6)?,
        hash: r.try_get(7)?,
        request_id: r.try_get(8)?,
        lane: r.try_get(9)?,
        lane_seq: r.try_get(10)?,
    })
}

impl Store {
    /// Appends `events` (each with the id of the request it was made in) to this store's lane
    /// inside the transaction `conn`, in order, with one update of the lane's head however many
    /// there are.
    pub(crate) async fn append_audit(
        &self,
        conn: &mut AnyConnection,
        events: &[(&AuditEvent, Option<&str>)],
    ) -> Result<(), sqlx::Error> {
        let Some((first, _)) = events.first() else { return Ok(()) };
        let k = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let lane = &*self.lane.name;
        let take = || sqlx::query(self.take_places_sql()).bind(k).bind(lane);
        let head = match take().fetch_optional(&mut *conn).await? {
            Some(head) => head,
            None => {
                // The lane's first row. Two first appends of one store may race here: the
                // second waits for the first's insert and then takes the head after it.
                sqlx::query(
                    "INSERT INTO audit_lanes (lane, seq, hash, opened_at) VALUES ($1, 0, $2, $3) \
                     ON CONFLICT (lane) DO NOTHING",
                )
                .bind(lane)
                .bind(GENESIS_HASH)
                .bind(first.at.unix_timestamp())
                .execute(&mut *conn)
                .await?;
                take().fetch_one(&mut *conn).await?
            }
        };
        let records = self.chained_after(&head, events)?;
        self.append_records(conn, records).await?;
        Ok(())
    }

    /// The lane this store appends to.
    pub(crate) fn lane_name(&self) -> String {
        self.lane.name.to_string()
    }

    /// The statement that moves this lane's head on by `k` rows (its first parameter, the lane
    /// its second) and returns the new head's place and hash and the log's new places (see
    /// [`log_places`]). The log's new places come with the head, and the head's new hash with
    /// the rows ([`Store::append_records`]).
    fn take_places_sql(&self) -> &'static str {
        match self.backend() {
            // SQLite has one writer at a time, which holds the write lock here.
            Backend::Sqlite => {
                "UPDATE audit_lanes SET seq = seq + $1 WHERE lane = $2 \
                 RETURNING seq, hash, CAST((SELECT COALESCE(MAX(seq), 0) FROM audit_log) AS TEXT)"
            }
            // A sequence locks no row.
            Backend::Postgres => {
                "UPDATE audit_lanes SET seq = seq + $1 WHERE lane = $2 RETURNING seq, hash, \
                 (SELECT string_agg(nextval('audit_log_seq')::text, ',') FROM generate_series(1::bigint, $1::bigint))"
            }
        }
    }

    /// The rows of `events` (each with the id of the request it was made in), chained after
    /// the head a [`Store::take_places_sql`] statement returned for as many.
    fn chained_after(
        &self,
        head: &sqlx::any::AnyRow,
        events: &[(&AuditEvent, Option<&str>)],
    ) -> Result<Vec<AuditRecord>, sqlx::Error> {
        let k = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let places = log_places(self.backend(), &head.try_get::<String, _>(2)?, k)?;
        Ok(self.chained(head.try_get::<i64, _>(0)? - k, head.try_get(1)?, places, events))
    }

    /// The rows of `events` (each with the id of the request it was made in), chained after
    /// this lane's row `lane_seq`, whose hash is `prev`, each at the next of `places` in the
    /// whole log.
    pub(crate) fn chained(
        &self,
        mut lane_seq: i64,
        mut prev: String,
        places: impl IntoIterator<Item = i64>,
        events: &[(&AuditEvent, Option<&str>)],
    ) -> Vec<AuditRecord> {
        let mut records = Vec::with_capacity(events.len());
        for ((e, request_id), seq) in events.iter().zip(places) {
            lane_seq += 1;
            let mut r = AuditRecord {
                seq,
                at: e.at.unix_timestamp(),
                actor: e.actor.clone(),
                action: e.action.name().to_owned(),
                subject: e.subject.clone(),
                details: e.details.to_string(),
                prev_hash: prev,
                hash: String::new(),
                request_id: request_id.map(str::to_owned),
                lane: self.lane_name(),
                lane_seq,
            };
            r.hash = r.computed_hash();
            prev = r.hash.clone();
            records.push(r);
        }
        records
    }

    /// Stores `records` (at least one) and moves the lane's head hash to the last one's: one
    /// statement of a data-modifying WITH on PostgreSQL, two on SQLite, which has none.
    async fn append_records(&self, conn: &mut AnyConnection, records: Vec<AuditRecord>) -> Result<(), sqlx::Error> {
        let head = records.last().map(|r| r.hash.clone());
        let insert = audit_rows_sql(0, records.len());
        let set_head = |hash: usize| format!("UPDATE audit_lanes SET hash = ${hash} WHERE lane = ${}", hash + 1);
        match self.backend() {
            Backend::Postgres => {
                let sql = format!("WITH appended AS ({insert}) {}", set_head(records.len() * AUDIT_PARAMS + 1));
                let rows = bind_records(sqlx::query(sqlx::AssertSqlSafe(sql)), records);
                rows.bind(head).bind(self.lane_name()).execute(&mut *conn).await?
            }
            Backend::Sqlite => {
                bind_records(sqlx::query(sqlx::AssertSqlSafe(insert)), records).execute(&mut *conn).await?;
                sqlx::query(sqlx::AssertSqlSafe(set_head(1)))
                    .bind(head)
                    .bind(self.lane_name())
                    .execute(&mut *conn)
                    .await?
            }
        };
        Ok(())
    }

    /// Runs `body` in a transaction that first appends `event` to the audit log; both commit
    /// or neither does.
    pub(crate) async fn audited<T, F>(&self, event: &AuditEvent, body: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
                &'c mut AnyConnection,
            ) -> std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>
            + Send,
        T: Send,
    {
        let _turn = self.turns.take().await;
        let mut tx = self.pool().begin().await.map_err(backend_error)?;
        let request_id = request::current();
        self.append_audit(&mut tx, &[(event, request_id.as_deref())]).await.map_err(backend_error)?;
        let out = body(&mut tx).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(out)
    }

    /// Records an audit event on its own (for events with no other state change).
    pub async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.audited(event, |_| Box::pin(async { Ok(()) })).await
    }

    /// Every audit row, in the order they were appended (by `seq`).
    pub async fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{AUDIT_SELECT} ORDER BY seq")))
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter().map(audit_record).collect::<Result<_, sqlx::Error>>().map_err(backend_error)
    }

    /// Every lane's recorded head.
    async fn lane_heads(&self) -> Result<Vec<LaneHead>, StoreError> {
        let rows = sqlx::query("SELECT lane, seq, hash FROM audit_lanes ORDER BY lane")
            .fetch_all(self.pool())
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|r| Ok(LaneHead { lane: r.try_get(0)?, lane_seq: r.try_get(1)?, hash: r.try_get(2)? }))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(backend_error)
    }

    /// Verifies the whole audit log: every lane's chain, every anchor, every lane's recorded
    /// head; returns the number of rows checked.
    pub async fn verify_audit(&self) -> Result<Result<usize, ChainBreak>, StoreError> {
        // Heads first: a lane that grows between the two reads still reaches its head.
        let heads = self.lane_heads().await?;
        let rows = self.audit_records().await?;
        Ok(verify_log(&rows, &heads))
    }

    /// Records in this store's lane the heads of the other lanes that moved since its last
    /// anchor, so that removing their rows (or a whole lane) breaks this lane's record of them.
    /// Returns how many lanes it named; writes nothing when none moved.
    pub async fn anchor_audit(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut anchored = self.lane.anchored.lock().await;
        let heads: Vec<LaneHead> = self
            .lane_heads()
            .await?
            .into_iter()
            .filter(|h| *h.lane != *self.lane.name && h.lane_seq > 0 && anchored.get(&h.lane) != Some(&h.lane_seq))
            .collect();
        if heads.is_empty() {
            return Ok(0);
        }
        let anchor = Anchor { heads };
        self.audit(&anchor.event(now)).await?;
        for h in &anchor.heads {
            anchored.insert(h.lane.clone(), h.lane_seq);
        }
        Ok(anchor.heads.len())
    }
}

impl Store {
    /// This store, on the same connections, appending to a new lane of its own: for a writer
    /// (the CA's group commit) that should never wait on the node's other audited writes.
    pub fn with_own_audit_lane(&self) -> Self {
        Self { lane: Lane::new(), ..self.clone() }
    }
}
