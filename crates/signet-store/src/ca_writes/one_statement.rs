//! On PostgreSQL, a group of intents and certificates alone (what issuance under load sends) in
//! one statement, which the server makes and commits as a whole: one round trip where the
//! long way, a transaction, takes six (`BEGIN`, the certificates, the intents, the lane's head,
//! the audit rows, `COMMIT`), and no transaction held open between them.
//!
//! Its audit rows are chained before it is sent: after the lane's head as this writer's last
//! group left it, at places in the whole log the writer took ahead. The statement moves the
//! head only from where the writer believes it stands, and fails as a whole unless every row
//! of it was made. So a head moved meanwhile by another writer of the lane (a write retried
//! alone, the intents job) or a write refused (a key certified already) sends the group the
//! long way, a transaction that finds each write's outcome, with nothing of the statement kept.
//!
//! The places a writer takes ahead are unique in the whole log and increase along its lane;
//! the log may skip some (those a writer held when it went the long way or stopped), as it
//! skips those of a transaction rolled back.

use std::collections::VecDeque;

use signet_ra::audit::LaneHead;
use signet_ra::issuance::StoreError;
use sqlx::{AnyConnection, Row};

use super::{
    CaWrite, PendingWrite, Written, bind_certificates, bind_intents, certificates_and_intents, certificates_sql,
    intents_sql,
};
use crate::audit::{audit_rows_sql, bind_records};
use crate::{Store, backend_error};

/// How many places in the whole log a writer takes at once: one round trip serves many groups.
const PLACES_AHEAD: usize = 256;
/// How long, in seconds of the groups' own audit times, places taken ahead stay in use, so
/// that a quiet writer's rows do not take places far behind the rest of the log.
const PLACES_FRESH_FOR: i64 = 1;

/// Places in the whole log taken ahead, and the audit time of the group they were taken for.
struct Places {
    free: VecDeque<i64>,
    taken_at: i64,
}

/// What a writer knows between its groups to write the next one in one statement.
#[derive(Default)]
pub(crate) struct OneStatement {
    /// Where this writer's lane stands, as its last group left it.
    head: Option<LaneHead>,
    places: Option<Places>,
}

impl OneStatement {
    /// Writes `writes` in one statement and returns their outcomes (each made); `None` if they
    /// must go the long way, with nothing of them written.
    pub(crate) async fn write(
        &mut self,
        store: &Store,
        c: &mut AnyConnection,
        writes: &[PendingWrite],
    ) -> Result<Option<Vec<Result<Written, StoreError>>>, StoreError> {
        let written = self.try_write(store, c, writes).await;
        if !matches!(written, Ok(Some(_))) {
            // The long way moves the lane's head and takes places of its own after these.
            *self = Self::default();
        }
        written
    }

    async fn try_write(
        &mut self,
        store: &Store,
        c: &mut AnyConnection,
        writes: &[PendingWrite],
    ) -> Result<Option<Vec<Result<Written, StoreError>>>, StoreError> {
        // An ACME order's move may be refused, which the statement has no way to say.
        let plain = |w: &PendingWrite| {
            matches!(w.write, CaWrite::Intent { .. } | CaWrite::Complete { .. }) && w.write.order_move().is_none()
        };
        if writes.is_empty() || !writes.iter().all(plain) {
            return Ok(None);
        }
        let head = match self.head.take() {
            Some(head) => head,
            None => match lane_head(store, c).await? {
                Some(head) => head,
                // A lane with no row yet: the long way opens it.
                None => return Ok(None),
            },
        };
        // Certificates first, then intents, as the long way applies them.
        let mut order: Vec<&PendingWrite> = writes.iter().collect();
        order.sort_by_key(|w| w.write.phase());
        let events: Vec<_> = order.iter().map(|w| (w.write.audit(), w.request_id.as_deref())).collect();
        let at = events[0].0.at.unix_timestamp();
        let places = self.take_places(c, events.len(), at).await?;
        let records = store.chained(head.lane_seq, head.hash.clone(), places, &events);
        let last = &records[records.len() - 1];
        let new_head = LaneHead { lane: head.lane.clone(), lane_seq: last.lane_seq, hash: last.hash.clone() };

        let (certs, intents) = certificates_and_intents(order.iter().copied());
        let mut ctes = String::new();
        let mut made = Vec::new();
        let mut skip = 0;
        if !certs.is_empty() {
            ctes.push_str(&format!("issued AS ({} RETURNING 1), ", certificates_sql(skip, certs.len())));
            made.push(format!("(SELECT count(*) FROM issued) = {}", certs.len()));
            skip += certs.len() * 4;
        }
        if !intents.is_empty() {
            ctes.push_str(&format!("reserved AS ({} RETURNING 1), ", intents_sql(skip, intents.len())));
            made.push(format!("(SELECT count(*) FROM reserved) = {}", intents.len()));
            skip += intents.len() * 7;
        }
        ctes.push_str(&format!(
            "head AS (UPDATE audit_lanes SET seq = ${}, hash = ${} WHERE lane = ${} AND seq = ${} AND hash = ${} RETURNING 1), ",
            skip + 1,
            skip + 2,
            skip + 3,
            skip + 4,
            skip + 5
        ));
        made.push("(SELECT count(*) FROM head) = 1".to_owned());
        ctes.push_str(&format!("appended AS ({})", audit_rows_sql(skip + 5, records.len())));
        // Unless every row was made, the statement divides by zero: it fails, and nothing of
        // it is kept.
        let sql = format!("WITH {ctes} SELECT 1 / CASE WHEN {} THEN 1 ELSE 0 END", made.join(" AND "));
        let query = bind_intents(bind_certificates(sqlx::query(sqlx::AssertSqlSafe(sql)), &certs), &intents)
            .bind(new_head.lane_seq)
            .bind(new_head.hash.clone())
            .bind(head.lane)
            .bind(head.lane_seq)
            .bind(head.hash);
        match bind_records(query, records).fetch_one(&mut *c).await {
            Ok(_) => {
                self.head = Some(new_head);
                Ok(Some(writes.iter().map(|_| Ok(Written::Done)).collect()))
            }
            // Something was refused, or the head had moved (a row of the lane already at one
            // of these places fails the insert before the check): the long way finds out which.
            Err(sqlx::Error::Database(_)) => Ok(None),
            Err(e) => Err(backend_error(e)),
        }
    }

    /// `n` places in the whole log, in order: held ones while they are fresh at `at`, else
    /// [`PLACES_AHEAD`] (or `n`, if more) new ones.
    async fn take_places(&mut self, c: &mut AnyConnection, n: usize, at: i64) -> Result<Vec<i64>, StoreError> {
        let fresh = |p: &Places| p.free.len() >= n && at <= p.taken_at + PLACES_FRESH_FOR;
        let places = match self.places.take() {
            Some(places) if fresh(&places) => self.places.insert(places),
            _ => {
                let count = i64::try_from(n.max(PLACES_AHEAD)).unwrap_or(i64::MAX);
                let rows = sqlx::query("SELECT nextval('audit_log_seq') FROM generate_series(1::bigint, $1::bigint)")
                    .bind(count)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(backend_error)?;
                let mut free = rows
                    .iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend_error)?;
                free.sort_unstable();
                self.places.insert(Places { free: free.into(), taken_at: at })
            }
        };
        Ok(places.free.drain(..n).collect())
    }
}

/// The lane's head as the database has it; `None` if the lane has no row yet.
async fn lane_head(store: &Store, c: &mut AnyConnection) -> Result<Option<LaneHead>, StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_lanes WHERE lane = $1")
        .bind(store.lane_name())
        .fetch_optional(&mut *c)
        .await
        .map_err(backend_error)?;
    row.map(|r| Ok(LaneHead { lane: store.lane_name(), lane_seq: r.try_get(0)?, hash: r.try_get(1)? }))
        .transpose()
        .map_err(backend_error)
}

#[cfg(test)]
mod tests {
    use signet_pki::Serial;
    use signet_pki::issue::IssuedCertificate;
    use signet_ra::audit::{AuditAction, AuditEvent};
    use signet_ra::issuance::IssuanceIntent;
    use signet_testkit::TestDb;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-12-07 12:00 UTC);

    fn intent(serial: &Serial, key: &str) -> PendingWrite {
        let intent = IssuanceIntent {
            serial: serial.clone(),
            profile: "medium-identity".into(),
            subject_json: "{}".into(),
            spki_sha256: key.into(),
            requested_by: "test".into(),
            at: T,
        };
        let audit = AuditEvent::new(T, "test", AuditAction::IssuanceIntent, serial.to_hex(), serde_json::json!({}));
        CaWrite::Intent { intent, audit, order: None }.in_this_request()
    }

    fn complete(serial: &Serial) -> PendingWrite {
        let cert = IssuedCertificate {
            der: vec![0x30, 0x00],
            serial: serial.clone(),
            not_before: T,
            not_after: T + time::Duration::days(365),
        };
        let audit = AuditEvent::new(T, "test", AuditAction::CertificateIssued, serial.to_hex(), serde_json::json!({}));
        CaWrite::Complete { cert, audit, order: None }.in_this_request()
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(store.pool()).await.unwrap()
    }

    // Once the lane has a row, groups go in one statement from where the last one left the
    // head. A head another writer of the lane moved, or a write refused, sends the group the
    // long way with nothing of it kept, and the next group goes in one statement again; the
    // lane stays one chain whose places in the whole log increase along it.
    #[tokio::test]
    async fn postgres_writes_a_group_in_one_statement_or_leaves_it_whole() {
        let db = TestDb::new("postgres").await;
        let store = Store::connect(&db.url).await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let mut one = OneStatement::default();
        let [a, b, c, d, e, f] = std::array::from_fn(|_| Serial::random());
        let made = |outcomes: Option<Vec<Result<Written, StoreError>>>| {
            outcomes.is_some_and(|o| o.iter().all(|w| matches!(w, Ok(Written::Done))))
        };

        assert_eq!(one.write(&store, &mut conn, &[intent(&a, "ka")]).await.unwrap().map(|o| o.len()), None);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates").await, 0, "a new lane goes the long way");
        store.write_ca(&[intent(&a, "ka")]).await.unwrap();

        assert!(made(one.write(&store, &mut conn, &[intent(&b, "kb"), complete(&a)]).await.unwrap()));
        assert!(made(one.write(&store, &mut conn, &[complete(&b)]).await.unwrap()), "from the head it left");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'issued'").await, 2);

        store.write_ca(&[intent(&c, "kc")]).await.unwrap();
        assert!(one.write(&store, &mut conn, &[intent(&d, "kd")]).await.unwrap().is_none(), "the head had moved");
        assert!(made(one.write(&store, &mut conn, &[intent(&d, "kd"), complete(&c)]).await.unwrap()));

        let refused = [intent(&e, "ka"), intent(&f, "kf"), complete(&d)];
        assert!(one.write(&store, &mut conn, &refused).await.unwrap().is_none(), "key ka is certified");
        let kept = format!("SELECT COUNT(*) FROM certificates WHERE serial IN ('{}', '{}')", e.to_hex(), f.to_hex());
        assert_eq!(count(&store, &kept).await, 0, "nothing of the refused group is kept");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'intent'").await, 1, "d waits still");
        assert!(made(one.write(&store, &mut conn, &[intent(&f, "kf"), complete(&d)]).await.unwrap()));

        drop(conn);
        assert_eq!(store.verify_audit().await.unwrap(), Ok(9));
        let records = store.audit_records().await.unwrap();
        assert!(records.windows(2).all(|w| w[0].lane_seq < w[1].lane_seq), "places increase along the lane");
        store.close().await;
    }
}
