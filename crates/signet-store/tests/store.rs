//! The storage suite, run against both SQLite and PostgreSQL.

mod common;

use common::each_backend;
use serde_json::json;
use signet_pki::issue::IssuedCertificate;
use signet_pki::{RevocationReason, Serial};
use signet_ra::audit::{AuditAction, AuditEvent, ChainBreak};
use signet_ra::issuance::{ABANDONED_AFTER, CaStore, IssuanceIntent, Revoked, StoreError, StoredStatus};
use signet_store::{ApiKey, Store};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn event(action: AuditAction, subject: &str) -> AuditEvent {
    AuditEvent::new(now(), "test", action, subject, json!({}))
}

fn intent(serial: &Serial, key: &str) -> IssuanceIntent {
    IssuanceIntent {
        serial: serial.clone(),
        profile: "medium-identity".into(),
        subject_json: "{}".into(),
        spki_sha256: key.into(),
        requested_by: "test".into(),
        at: now(),
    }
}

async fn issue(store: &Store, key: &str) -> Serial {
    let serial = Serial::random();
    store.record_intent(&intent(&serial, key), event(AuditAction::IssuanceIntent, key)).await.unwrap();
    let cert = IssuedCertificate {
        der: vec![0x30, 0x00],
        serial: serial.clone(),
        not_before: now(),
        not_after: now() + Duration::days(365),
    };
    store.complete_issuance(&cert, event(AuditAction::CertificateIssued, key)).await.unwrap();
    serial
}

#[tokio::test]
async fn issue_revoke_and_list() {
    each_backend(|store| async move {
        let serial = issue(&store, "k1").await;
        assert_eq!(store.status(&serial).await.unwrap(), Some(StoredStatus::Good));
        assert_eq!(store.certificate(&serial).await.unwrap().unwrap().der, vec![0x30, 0x00]);
        let at = now() + Duration::hours(1);
        let r = store
            .revoke(&serial, RevocationReason::KeyCompromise, at, event(AuditAction::CertificateRevoked, "r"))
            .await;
        assert_eq!(r.unwrap(), Revoked::Now);
        assert_eq!(
            store.status(&serial).await.unwrap(),
            Some(StoredStatus::Revoked { at, reason: RevocationReason::KeyCompromise })
        );
        let again =
            store.revoke(&serial, RevocationReason::Superseded, at, event(AuditAction::CertificateRevoked, "r")).await;
        assert_eq!(again.unwrap(), Revoked::Already);
        let listed = store.revoked_unexpired(now()).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].serial, serial);
        assert_eq!(listed[0].reason, RevocationReason::KeyCompromise);
        // Expired certificates leave the CRL.
        assert!(store.revoked_unexpired(now() + Duration::days(400)).await.unwrap().is_empty());
        // intent, issued, revoked: the repeated revocation changed nothing and left no row.
        assert_eq!(store.verify_audit().await.unwrap(), Ok(3));
    })
    .await;
}

#[tokio::test]
async fn duplicate_keys_are_refused_until_the_intent_fails() {
    each_backend(|store| async move {
        issue(&store, "same-key").await;
        let second = Serial::random();
        let err = store.record_intent(&intent(&second, "same-key"), event(AuditAction::IssuanceIntent, "x")).await;
        assert!(matches!(err, Err(StoreError::Conflict("key"))), "{err:?}");
        assert_eq!(store.status(&second).await.unwrap(), None);

        let pending = Serial::random();
        store.record_intent(&intent(&pending, "k2"), event(AuditAction::IssuanceIntent, "x")).await.unwrap();
        assert_eq!(store.status(&pending).await.unwrap(), Some(StoredStatus::NotIssued));
        store.fail_issuance(&pending, event(AuditAction::IssuanceFailed, "x")).await.unwrap();
        store.record_intent(&intent(&Serial::random(), "k2"), event(AuditAction::IssuanceIntent, "x")).await.unwrap();
        assert_eq!(store.certificate_rows().await.unwrap(), 3);
        assert!(store.verify_audit().await.unwrap().is_ok());
    })
    .await;
}

async fn state_of(store: &Store, serial: &Serial) -> String {
    sqlx::query_scalar("SELECT state FROM certificates WHERE serial = $1")
        .bind(serial.to_hex())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Records an intent at `at` and nothing after it, as a node that died mid-issuance leaves it.
async fn stuck(store: &Store, key: &str, at: OffsetDateTime) -> Serial {
    let serial = Serial::random();
    let i = IssuanceIntent { at, ..intent(&serial, key) };
    store.record_intent(&i, event(AuditAction::IssuanceIntent, key)).await.unwrap();
    serial
}

#[tokio::test]
async fn abandoned_intents_are_failed_once_audited_and_free_their_key() {
    each_backend(|store| async move {
        let old = stuck(&store, "old-key", now()).await;
        let fresh = stuck(&store, "fresh-key", now() + Duration::minutes(5)).await;
        let done = issue(&store, "issued-key").await;
        let run_at = now() + Duration::minutes(12);
        let before = store.audit_records().await.unwrap().len();

        let resolved = store.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap();
        assert_eq!(resolved, std::slice::from_ref(&old), "only the intent older than the bound");
        assert_eq!(state_of(&store, &old).await, "failed");
        assert_eq!(state_of(&store, &fresh).await, "intent", "seven minutes old: maybe still signing");
        assert_eq!(store.status(&done).await.unwrap(), Some(StoredStatus::Good), "issued rows are not touched");
        assert_eq!(store.status(&old).await.unwrap(), Some(StoredStatus::NotIssued));

        let records = store.audit_records().await.unwrap();
        assert_eq!(records.len(), before + 1, "one audit row per resolved intent");
        let row = records.last().unwrap();
        assert_eq!(
            (row.action.as_str(), row.actor.as_str(), row.subject.as_str(), row.at),
            ("issuance-abandoned", "system", old.to_hex().as_str(), run_at.unix_timestamp())
        );
        let details: serde_json::Value = serde_json::from_str(&row.details).unwrap();
        assert_eq!(details["spki_sha256"], "old-key");
        assert_eq!(details["intent_at"], now().unix_timestamp());

        // The key is free again; the fresh intent still holds its own.
        stuck(&store, "old-key", run_at).await;
        let taken = intent(&Serial::random(), "fresh-key");
        let again = store.record_intent(&taken, event(AuditAction::IssuanceIntent, "x")).await;
        assert!(matches!(again, Err(StoreError::Conflict("key"))), "{again:?}");

        // A second run finds nothing and records nothing.
        let n = store.audit_records().await.unwrap().len();
        assert!(store.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap().is_empty());
        assert_eq!(store.audit_records().await.unwrap().len(), n);
        assert!(store.verify_audit().await.unwrap().is_ok());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_resolving_at_once_resolve_each_intent_once() {
    each_backend(|store| async move {
        let mut serials = Vec::new();
        for i in 0..8 {
            serials.push(stuck(&store, &format!("k{i}"), now()).await);
        }
        let run_at = now() + Duration::hours(1);
        let nodes: Vec<_> = (0..2)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap() })
            })
            .collect();
        let mut resolved = Vec::new();
        for node in nodes {
            resolved.extend(node.await.unwrap());
        }
        resolved.sort();
        serials.sort();
        assert_eq!(resolved, serials, "every intent resolved, none twice");
        let audited = store.audit_records().await.unwrap().iter().filter(|r| r.action == "issuance-abandoned").count();
        assert_eq!(audited, serials.len());
        assert!(store.verify_audit().await.unwrap().is_ok());
    })
    .await;
}

#[tokio::test]
async fn unknown_serials_and_crl_numbers() {
    each_backend(|store| async move {
        let ghost = Serial::random();
        let r = store
            .revoke(&ghost, RevocationReason::Unspecified, now(), event(AuditAction::CertificateRevoked, "g"))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound)));
        assert_eq!(store.audit_records().await.unwrap().len(), 0, "a refused change leaves no audit row");
        let a = store.next_crl_number(event(AuditAction::CrlPublished, "c")).await.unwrap();
        let b = store.next_crl_number(event(AuditAction::CrlPublished, "c")).await.unwrap();
        assert_eq!((a, b), (1, 2));
    })
    .await;
}

#[tokio::test]
async fn api_keys_by_hash_and_unique_names() {
    each_backend(|store| async move {
        let key = ApiKey { name: "ra1".into(), role: "ra-operator".into() };
        store.create_api_key(&key, "h1", &event(AuditAction::ApiKeyCreated, "ra1")).await.unwrap();
        assert_eq!(store.api_key_by_hash("h1").await.unwrap(), Some(key.clone()));
        assert_eq!(store.api_key_by_hash("h2").await.unwrap(), None);
        let dup = store.create_api_key(&key, "h3", &event(AuditAction::ApiKeyCreated, "ra1")).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
    })
    .await;
}

#[tokio::test]
async fn tampering_with_the_audit_log_is_detected() {
    each_backend(|store| async move {
        for k in ["a", "b", "c"] {
            issue(&store, k).await;
        }
        assert_eq!(store.verify_audit().await.unwrap(), Ok(6));
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(store.pool()).await.unwrap();
        assert_eq!(store.verify_audit().await.unwrap(), Err(ChainBreak::Altered(2)));
        sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(store.pool()).await.unwrap();
        assert_eq!(store.verify_audit().await.unwrap(), Err(ChainBreak::Broken(3)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_the_chain_whole() {
    each_backend(|store| async move {
        let mut tasks = Vec::new();
        for i in 0..24 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { issue(&s, &format!("key-{i}")).await }));
        }
        let mut serials = Vec::new();
        for t in tasks {
            serials.push(t.await.unwrap());
        }
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 24);
        assert_eq!(store.verify_audit().await.unwrap(), Ok(48));
    })
    .await;
}
