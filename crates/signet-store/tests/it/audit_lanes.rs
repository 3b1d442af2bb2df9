//! The audit log's lanes and the CA's grouped writes: several stores (nodes) on one database
//! each append to a lane of their own; `verify_audit` still catches an edited, removed or
//! reordered row in any lane, a lane cut short, and a lane removed whole once anchored.

use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::audit::{AuditAction, ChainBreak};
use signet_ra::issuance::{Revoked, StoreError};
use signet_store::{CHECKPOINT_EVERY, CaWrite, Store, Written};
use signet_testkit::TestDb;
use time::Duration;

use crate::common::backend_test;
use crate::store::{self, event, now};

fn intent(serial: &Serial, key: &str) -> CaWrite {
    CaWrite::Intent { intent: store::intent(serial, key), audit: event(AuditAction::IssuanceIntent, key), order: None }
}

fn complete(serial: &Serial) -> CaWrite {
    let cert = IssuedCertificate {
        der: vec![0x30, 0x00],
        serial: serial.clone(),
        not_before: now(),
        not_after: now() + Duration::days(365),
    };
    CaWrite::Complete { cert, audit: event(AuditAction::CertificateIssued, &serial.to_hex()), order: None }
}

fn revoke(serial: &Serial) -> CaWrite {
    let audit = event(AuditAction::CertificateRevoked, &serial.to_hex());
    CaWrite::Revoke {
        serial: serial.clone(),
        reason: RevocationReason::KeyCompromise,
        at: now(),
        audit,
        outbox: vec![],
    }
}

async fn write(store: &Store, writes: Vec<CaWrite>) -> Vec<Result<Written, StoreError>> {
    let writes: Vec<_> = writes.into_iter().map(CaWrite::in_this_request).collect();
    store.write_ca(&writes).await.unwrap()
}

async fn rows(store: &Store, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(store.pool()).await.unwrap().try_get(0).unwrap()
}

// One transaction, one outcome per write: a refused write changes nothing and leaves no audit
// row, and does not stop the others.
backend_test!(grouped_writes_each_have_their_own_outcome, |store| async move {
    let (a, b, dup, unknown) = (Serial::random(), Serial::random(), Serial::random(), Serial::random());
    let outcomes = write(&store, vec![intent(&a, "ka"), intent(&b, "kb"), intent(&dup, "ka"), revoke(&unknown)]).await;
    assert!(
        matches!(
            outcomes[..],
            [Ok(Written::Done), Ok(Written::Done), Err(StoreError::Conflict("key")), Err(StoreError::NotFound)]
        ),
        "{outcomes:?}"
    );
    let outcomes = write(&store, vec![complete(&a), complete(&dup), revoke(&a), revoke(&a), complete(&b)]).await;
    assert!(
        matches!(
            outcomes[..],
            [
                Ok(Written::Done),
                Err(StoreError::NotFound),
                Ok(Written::Revoked(Revoked::Now)),
                Ok(Written::Revoked(Revoked::Already)),
                Ok(Written::Done)
            ]
        ),
        "{outcomes:?}"
    );
    assert_eq!(rows(&store, "SELECT COUNT(*) FROM certificates").await, 2, "the refused intent stored nothing");

    // A group is applied certificates first, then failures and revocations as they came, then
    // intents: the key a failure releases is free for an intent in the same group.
    let (c, d) = (Serial::random(), Serial::random());
    write(&store, vec![intent(&c, "kc")]).await;
    let fail = CaWrite::Fail { serial: c.clone(), audit: event(AuditAction::IssuanceFailed, &c.to_hex()), order: None };
    let outcomes = write(&store, vec![intent(&d, "kc"), fail]).await;
    assert!(matches!(outcomes[..], [Ok(Written::Done), Ok(Written::Done)]), "{outcomes:?}");

    // The audit rows follow the order the writes were applied in.
    assert_eq!(store.verify_audit().await.unwrap(), Ok(8));
    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            "issuance-intent",
            "issuance-intent",
            "certificate-issued",
            "certificate-issued",
            "certificate-revoked",
            "issuance-intent",
            "issuance-failed",
            "issuance-intent"
        ]
    );
});

// A group of only certificates and intents (the path issuance under load takes), with a key
// used twice and a certificate without its intent, each write with its own outcome.
backend_test!(a_group_of_certificates_and_intents_alone, |store| async move {
    let (e, f, g) = (Serial::random(), Serial::random(), Serial::random());
    let outcomes = write(&store, vec![intent(&e, "ke"), intent(&f, "kf"), intent(&g, "ke")]).await;
    assert!(
        matches!(outcomes[..], [Ok(Written::Done), Ok(Written::Done), Err(StoreError::Conflict("key"))]),
        "{outcomes:?}"
    );
    let (h, never) = (Serial::random(), Serial::random());
    let outcomes = write(&store, vec![complete(&e), intent(&h, "kh"), complete(&never), complete(&f)]).await;
    assert!(
        matches!(outcomes[..], [Ok(Written::Done), Ok(Written::Done), Err(StoreError::NotFound), Ok(Written::Done)]),
        "{outcomes:?}"
    );
    assert_eq!(rows(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'issued'").await, 2);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        ["issuance-intent", "issuance-intent", "certificate-issued", "certificate-issued", "issuance-intent"]
    );
});

// A group in which every write is made (what issuance under load sends, and what the CA's
// writer sends PostgreSQL in one statement) stores each row whole and chains its audit rows, in
// order, after the lane's earlier ones, whoever wrote those.
backend_test!(a_group_with_nothing_refused, |store| async move {
    let mut writer = store.ca_writer();
    let mut write = async |writes: Vec<CaWrite>| {
        let writes: Vec<_> = writes.into_iter().map(CaWrite::in_this_request).collect();
        writer.write(&writes).await.unwrap()
    };
    let serials: Vec<Serial> = (0..4).map(|_| Serial::random()).collect();
    let outcomes = write(serials.iter().enumerate().map(|(i, s)| intent(s, &format!("k{i}"))).collect()).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Written::Done))), "{outcomes:?}");
    let (more, more_too) = (Serial::random(), Serial::random());
    let mut writes: Vec<CaWrite> = serials.iter().map(complete).collect();
    writes.insert(1, intent(&more, "k-more"));
    writes.push(intent(&more_too, "k-more-too"));
    let outcomes = write(writes).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Written::Done))), "{outcomes:?}");
    assert_eq!(
        rows(
            &store,
            "SELECT COUNT(*) FROM certificates WHERE state = 'issued' AND der IS NOT NULL AND not_after > not_before"
        )
        .await,
        4
    );
    assert_eq!(rows(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'intent'").await, 2);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(10));
    let actions: Vec<String> = store.audit_records().await.unwrap().into_iter().map(|r| r.action).collect();
    let mut expected = vec!["issuance-intent"; 4];
    expected.extend(["certificate-issued"; 4]);
    expected.extend(["issuance-intent"; 2]);
    assert_eq!(actions, expected, "certificates first, then intents");
    // The next group, refused in part, goes the long way and continues the same chain.
    let outcomes = write(vec![intent(&Serial::random(), "k0"), complete(&more)]).await;
    assert!(matches!(outcomes[..], [Err(StoreError::Conflict("key")), Ok(Written::Done)]), "{outcomes:?}");
    // Another writer of the lane (a write retried alone) moves its head between two groups.
    let alone = Serial::random();
    let outcome = store.write_alone(&intent(&alone, "k-alone").in_this_request()).await;
    assert!(matches!(outcome, Ok(Written::Done)), "{outcome:?}");
    let outcomes = write(vec![complete(&more_too), complete(&alone)]).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Written::Done))), "{outcomes:?}");
    writer.release();
    assert_eq!(rows(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'issued'").await, 7);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(14));
});

// On SQLite the CA's writer has the log copied into the database file beside its commits, not
// in them: once it has made as many writes as it checkpoints after, the file grows, though the
// log is far below the length at which SQLite would copy it by itself.
#[tokio::test]
async fn the_ca_writer_has_the_sqlite_log_checkpointed() {
    let db = TestDb::new("sqlite").await;
    let store = Store::connect(&db.url).await.unwrap();
    let file = std::path::PathBuf::from(db.url.strip_prefix("sqlite://").unwrap());
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    let mut writer = store.ca_writer();
    let writes: Vec<_> =
        (0..CHECKPOINT_EVERY).map(|i| intent(&Serial::random(), &format!("k{i}")).in_this_request()).collect();
    let (first, rest) = writes.split_at(CHECKPOINT_EVERY - 1);
    assert!(writer.write(first).await.unwrap().iter().all(Result::is_ok));
    assert_eq!(size(), before, "one write short, nothing is copied");
    assert!(writer.write(rest).await.unwrap().iter().all(Result::is_ok));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() == before {
        assert!(std::time::Instant::now() < deadline, "the log was not checkpointed within 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(rows(&store, "SELECT COUNT(*) FROM certificates WHERE state = 'intent'").await, CHECKPOINT_EVERY as i64);
    writer.release();
    store.close().await;
}

// A group's multi-row statements keep the pages they change (to undo one statement alone) in
// memory, on every connection the CA's writer may take, rather than spilling them into a
// temporary file created and deleted for each such statement.
#[tokio::test]
async fn sqlite_connections_keep_statement_undo_in_memory() {
    use sqlx::Row;
    let db = TestDb::new("sqlite").await;
    let store = Store::connect(&db.url).await.unwrap();
    let size = store.pool().options().get_max_connections() as usize;
    let mut conns = Vec::new();
    while conns.len() < size {
        conns.push(store.pool().acquire().await.unwrap());
    }
    for conn in &mut conns {
        let row = sqlx::query("PRAGMA temp_store").fetch_one(&mut **conn).await.unwrap();
        assert_eq!(row.try_get::<i64, _>(0).unwrap(), 2, "temp_store = MEMORY");
    }
    drop(conns);
    store.close().await;
}

async fn two_nodes(backend: &str) -> (TestDb, Store, Store) {
    let db = TestDb::new(backend).await;
    let a = Store::connect(&db.url).await.unwrap();
    let b = Store::connect(&db.url).await.unwrap();
    (db, a, b)
}

async fn lanes_interleave_and_tampering_shows(backend: &str) {
    let (_db, a, b) = two_nodes(backend).await;
    for k in 0..3 {
        write(&a, vec![intent(&Serial::random(), &format!("a{k}"))]).await;
        write(&b, vec![intent(&Serial::random(), &format!("b{k}"))]).await;
    }
    assert_eq!(rows(&a, "SELECT COUNT(DISTINCT lane) FROM audit_log").await, 2, "{backend}: a lane per node");
    assert_eq!(a.verify_audit().await.unwrap(), Ok(6), "{backend}");
    let records = a.audit_records().await.unwrap();
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{backend}: one order over the whole log: {seqs:?}");

    // Lane b's second row: edited, then swapped with its third, then removed.
    let second = &records[3];
    assert_eq!((second.lane_seq, second.lane != records[0].lane), (2, true), "{backend}");
    let sql = format!("UPDATE audit_log SET actor = 'mallory' WHERE seq = {}", second.seq);
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(a.pool()).await.unwrap();
    assert_eq!(a.verify_audit().await.unwrap(), Err(ChainBreak::Altered(second.seq)), "{backend}");
    let sql = format!("UPDATE audit_log SET actor = 'test' WHERE seq = {}", second.seq);
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(a.pool()).await.unwrap();
    assert_eq!(a.verify_audit().await.unwrap(), Ok(6), "{backend}: restored");
    let (s2, s3) = (second.seq, records[5].seq);
    // Through a spare place, as the unique index on places needs.
    for (seq, place) in [(s2, -1), (s3, 2), (s2, 3)] {
        let sql = format!("UPDATE audit_log SET lane_seq = {place} WHERE seq = {seq}");
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(a.pool()).await.unwrap();
    }
    assert!(matches!(a.verify_audit().await.unwrap(), Err(ChainBreak::Broken(_))), "{backend}: reordered");
    let sql = format!("DELETE FROM audit_log WHERE seq = {s2}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(a.pool()).await.unwrap();
    assert!(matches!(a.verify_audit().await.unwrap(), Err(ChainBreak::Broken(_))), "{backend}: removed");
    a.close().await;
    b.close().await;
}
backend_test!(lanes_interleave_and_tampering_shows, lanes_interleave_and_tampering_shows);

async fn a_lane_cut_short_or_removed_shows(backend: &str) {
    let (_db, a, b) = two_nodes(backend).await;
    write(&a, vec![intent(&Serial::random(), "a0")]).await;
    write(&b, vec![intent(&Serial::random(), "b0"), intent(&Serial::random(), "b1")]).await;
    assert_eq!(a.anchor_audit(now()).await.unwrap(), 1, "{backend}: a names b's head");
    assert_eq!(a.anchor_audit(now()).await.unwrap(), 0, "{backend}: nothing moved, nothing written");
    assert_eq!(a.verify_audit().await.unwrap(), Ok(4), "{backend}");
    let lane_b = b
        .audit_records()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == "issuance-intent" && r.subject == "b1")
        .unwrap()
        .lane;

    // The last row of lane b removed: its recorded head is not reached.
    let last = format!("DELETE FROM audit_log WHERE lane = '{lane_b}' AND lane_seq = 2");
    sqlx::query(sqlx::AssertSqlSafe(last)).execute(a.pool()).await.unwrap();
    let verdict = a.verify_audit().await.unwrap();
    assert!(matches!(verdict, Err(ChainBreak::Unanchored(_))), "{backend}: {verdict:?}");
    // Lane b removed whole, with its head: a's anchor still vouches for it.
    for sql in [
        format!("DELETE FROM audit_log WHERE lane = '{lane_b}'"),
        format!("DELETE FROM audit_lanes WHERE lane = '{lane_b}'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(a.pool()).await.unwrap();
    }
    let verdict = a.verify_audit().await.unwrap();
    assert!(matches!(verdict, Err(ChainBreak::Unanchored(_))), "{backend}: {verdict:?}");
    a.close().await;
    b.close().await;
}
backend_test!(a_lane_cut_short_or_removed_shows, a_lane_cut_short_or_removed_shows);

// Without an anchor yet, a lane's last row removed still shows against the lane's head.
backend_test!(a_lane_cut_short_shows_against_its_head, |store| async move {
    write(&store, vec![intent(&Serial::random(), "k0"), intent(&Serial::random(), "k1")]).await;
    sqlx::query("DELETE FROM audit_log WHERE lane_seq = 2").execute(store.pool()).await.unwrap();
    assert!(matches!(store.verify_audit().await.unwrap(), Err(ChainBreak::Truncated(_))));
});
