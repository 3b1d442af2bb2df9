//! Key escrow, key recovery (`KeyRecoveryStore`) and witnessed key generation (`WitnessStore`)
//! on both SQLite and PostgreSQL: an escrow found through its certificate's serial, agent
//! designations, a request's whole lifecycle reloaded at every step, compare-and-set against
//! stale and concurrent approvals, the database's own refusal of a single-agent approval, and
//! escrows whose certificate was never issued discarded — with the audit chain intact after each.

use std::sync::OnceLock;

use serde_json::json;
use signet_pki::Serial;
use signet_pki::issue::IssuedCertificate;
use signet_pki::subject::CommonName;
use signet_ra::application::{ApplicationId, OperatorId, PasswordHash};
use signet_ra::audit::{AuditAction, AuditEvent, AuditRecord};
use signet_ra::issuance::{CaStore, IssuanceIntent, StoreError};
use signet_ra::key_recovery::{
    Agent, AgentDesignation, EscrowedKey, KeyRecoveryStore, RecoveryRequest, RecoveryRequestId, RecoveryState,
};
use signet_ra::operator::{Operator, OperatorStore, Role, operator_password};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
use signet_ra::witness::{WitnessStore, WitnessedGeneration};
use signet_store::Store;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::common::backend_test;

const T0: OffsetDateTime = datetime!(2026-05-04 10:00 UTC);
const KRK_ID: &str = "5b1b0c5a8f0e2d3c4b5a69788796a5b4c3d2e1f0";

/// Argon2id is deliberately slow: hash once per test binary.
fn password() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let id = OperatorId::new("any").unwrap();
        PasswordHash::new(&operator_password("Quill-Harbor-Sextant-58", &id).unwrap()).unwrap()
    })
}

fn id(s: &str) -> OperatorId {
    OperatorId::new(s).unwrap()
}

fn application() -> ApplicationId {
    ApplicationId::new("ABCDEFGHJKMN").unwrap()
}

/// The hex SHA-256 of a stand-in SubjectPublicKeyInfo, as the server computes it.
fn spki_sha256(spki: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki))
}

fn escrow(spki: &[u8]) -> EscrowedKey {
    EscrowedKey {
        spki_sha256: spki_sha256(spki),
        application: application(),
        krk_id: KRK_ID.into(),
        envelope: vec![0x30, 0x03, 0x02, 0x01, 0x00],
        created_at: T0,
    }
}

fn event(action: AuditAction, subject: &str) -> AuditEvent {
    AuditEvent::new(T0, "test", action, subject, json!({}))
}

/// Issues a certificate for the key with this SPKI digest, through the CA's storage API.
async fn issue(store: &Store, spki_sha256: &str) -> Serial {
    let serial = reserve(store, spki_sha256).await;
    let cert = IssuedCertificate {
        der: vec![0x30, 0x00],
        serial: serial.clone(),
        not_before: T0,
        not_after: T0 + Duration::days(365),
    };
    store.complete_issuance(&cert, event(AuditAction::CertificateIssued, spki_sha256), None).await.unwrap();
    serial
}

/// Records an issuance intent only: a serial reserved, no certificate yet.
async fn reserve(store: &Store, spki_sha256: &str) -> Serial {
    let serial = Serial::random();
    let intent = IssuanceIntent {
        serial: serial.clone(),
        profile: "medium-encryption".into(),
        subject_json: "{}".into(),
        spki_sha256: spki_sha256.into(),
        requested_by: "test".into(),
        at: T0,
    };
    store.record_intent(&intent, event(AuditAction::IssuanceIntent, spki_sha256), None).await.unwrap();
    serial
}

async fn create_operator(store: &Store, name: &str) {
    let op = Operator::new(
        id(name),
        CommonName::new(&format!("{name} Example")).unwrap(),
        Role::RaOperator,
        password().clone(),
        Totp::new(TotpSecret::generate(), TotpAlgorithm::Sha1, Digits::Six),
    );
    store.create_operator(&op, op.created_event("cli:test", T0)).await.unwrap();
}

/// Creates and designates an operator, then makes the agent the way the server will: from the
/// stored designation.
async fn agent(store: &Store, name: &str) -> Agent {
    create_operator(store, name).await;
    let d = AgentDesignation::new(id(name), "operator:root", T0);
    store.designate_agent(&d, d.designated_event()).await.unwrap();
    Agent::from_designation(&store.agent(&id(name)).await.unwrap().expect("designated"))
}

/// An escrowed key certified under a serial, and a request for it opened by `requester`.
async fn opened(store: &Store, requester: &Agent) -> RecoveryRequest {
    let key = escrow(b"encryption key");
    store.save_escrow(&key, key.escrowed_event("system")).await.unwrap();
    let serial = issue(store, &key.spki_sha256).await;
    let found = store.escrow_of_serial(&serial.to_hex()).await.unwrap().expect("escrowed");
    let (r, audit) = RecoveryRequest::open(&found, &serial.to_hex(), "mailbox archive", requester, T0).unwrap();
    store.create_request(&r, audit).await.unwrap();
    r
}

async fn stored(store: &Store, r: &RecoveryRequest) -> RecoveryRequest {
    store.request(&r.id).await.unwrap().expect("stored request")
}

async fn audit(store: &Store) -> Vec<AuditRecord> {
    store.audit_records().await.unwrap()
}

async fn chain_intact(store: &Store) {
    assert!(store.verify_audit().await.unwrap().expect("audit chain intact") > 0);
}

backend_test!(an_escrow_is_found_by_the_serial_of_its_certificate, |store| async move {
    let key = escrow(b"encryption key");
    store.save_escrow(&key, key.escrowed_event("system")).await.unwrap();
    // The escrow is written before issuance; until then no serial leads to it.
    let pending = reserve(&store, &key.spki_sha256).await;
    assert_eq!(store.escrow_of_serial(&pending.to_hex()).await.unwrap(), None);
    store.fail_issuance(&pending, event(AuditAction::IssuanceFailed, "x"), None).await.unwrap();
    let serial = issue(&store, &key.spki_sha256).await;
    assert_eq!(store.escrow_of_serial(&serial.to_hex()).await.unwrap(), Some(key.clone()));
    assert_eq!(store.escrow_of_serial(&pending.to_hex()).await.unwrap(), None, "a failed issuance");

    let unescrowed = issue(&store, &spki_sha256(b"signing key")).await;
    assert_eq!(store.escrow_of_serial(&unescrowed.to_hex()).await.unwrap(), None);
    assert_eq!(store.escrow_of_serial(&Serial::random().to_hex()).await.unwrap(), None);

    let before = audit(&store).await;
    let again = store.save_escrow(&key, key.escrowed_event("system")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(audit(&store).await, before, "a refused escrow leaves no audit row");
    let escrowed = before.iter().find(|r| r.action == "key-escrowed").expect("escrow audited");
    assert_eq!(escrowed.subject, "ABCDEFGHJKMN");
    assert!(!escrowed.details.contains("envelope"));
    chain_intact(&store).await;
});

backend_test!(agents_are_designated_once_and_must_be_operators, |store| async move {
    let ghost = AgentDesignation::new(id("ghost"), "operator:root", T0);
    let refused = store.designate_agent(&ghost, ghost.designated_event()).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");

    agent(&store, "bob").await;
    agent(&store, "alice").await;
    let alice = AgentDesignation::new(id("alice"), "operator:root", T0);
    assert_eq!(store.agent(&id("alice")).await.unwrap(), Some(alice.clone()));
    let before = audit(&store).await;
    let twice = store.designate_agent(&alice, alice.designated_event()).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(audit(&store).await, before);

    create_operator(&store, "carol").await;
    assert_eq!(store.agent(&id("carol")).await.unwrap(), None, "an operator is not an agent");
    assert_eq!(store.agent(&id("ghost")).await.unwrap(), None);
    let agents: Vec<_> = store.agents().await.unwrap().into_iter().map(|d| d.operator).collect();
    assert_eq!(agents, [id("alice"), id("bob")]);
    chain_intact(&store).await;
});

backend_test!(a_request_is_approved_twice_and_exported_once, |store| async move {
    let (alice, bob) = (agent(&store, "alice").await, agent(&store, "bob").await);
    let r = opened(&store, &alice).await;
    assert_eq!(stored(&store, &r).await, r);
    assert_eq!(r.spki_sha256, spki_sha256(b"encryption key"));

    let (r, audit_event) = r.approve(&alice, T0 + Duration::minutes(1)).unwrap();
    store.update_request(&r, audit_event).await.unwrap();
    assert_eq!(stored(&store, &r).await, r);
    let (r, audit_event) = r.approve(&bob, T0 + Duration::minutes(2)).unwrap();
    store.update_request(&r, audit_event).await.unwrap();
    assert_eq!(stored(&store, &r).await, r);
    let (r, audit_event) = r.export(&bob, T0 + Duration::minutes(3)).unwrap();
    store.update_request(&r, audit_event).await.unwrap();
    let reloaded = stored(&store, &r).await;
    assert_eq!(reloaded, r);
    assert_eq!(
        reloaded.state,
        RecoveryState::Exported {
            approvers: [id("alice"), id("bob")],
            exported_by: id("bob"),
            exported_at: T0 + Duration::minutes(3),
        }
    );
    assert_eq!(reloaded.version, 3);

    let actions: Vec<_> = audit(&store).await.into_iter().rev().take(4).map(|a| a.action).rev().collect();
    assert_eq!(actions, ["key-recovery-requested", "key-recovery-approved", "key-recovery-approved", "key-recovered"]);

    // A second request for the same key, opened later, lists first.
    let key = store.escrow_of_serial(&r.serial).await.unwrap().unwrap();
    let (newer, audit_event) =
        RecoveryRequest::open(&key, &r.serial, "second look", &bob, T0 + Duration::hours(1)).unwrap();
    store.create_request(&newer, audit_event).await.unwrap();
    assert_eq!(store.requests().await.unwrap(), [newer, reloaded]);
    chain_intact(&store).await;
});

backend_test!(a_request_needs_an_escrowed_key_and_an_existing_row, |store| async move {
    let alice = agent(&store, "alice").await;
    let (r, audit_event) = RecoveryRequest::open(&escrow(b"never escrowed"), "0aff", "why", &alice, T0).unwrap();
    let before = audit(&store).await;
    let refused = store.create_request(&r, audit_event).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let (approved, audit_event) = r.approve(&alice, T0).unwrap();
    let missing = store.update_request(&approved, audit_event).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert_eq!(audit(&store).await, before);
    assert_eq!(store.request(&RecoveryRequestId::generate()).await.unwrap(), None);
    assert!(store.requests().await.unwrap().is_empty());
});

backend_test!(a_stale_update_changes_nothing, |store| async move {
    let (alice, bob) = (agent(&store, "alice").await, agent(&store, "bob").await);
    let r = opened(&store, &alice).await;
    let (first, first_event) = r.clone().approve(&alice, T0).unwrap();
    store.update_request(&first, first_event).await.unwrap();

    // Bob approves the request as he loaded it before Alice's approval: version 1 again.
    let before = audit(&store).await;
    let (stale, stale_event) = r.approve(&bob, T0).unwrap();
    assert_eq!(stale.version, first.version);
    let refused = store.update_request(&stale, stale_event).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(stored(&store, &first).await, first);
    assert_eq!(audit(&store).await, before, "the refused update left no audit row");

    // Reloaded, Bob's approval is the second one.
    let (approved, audit_event) = stored(&store, &first).await.approve(&bob, T0).unwrap();
    store.update_request(&approved, audit_event).await.unwrap();
    assert_eq!(stored(&store, &first).await.state, RecoveryState::Approved { approvers: [id("alice"), id("bob")] });
    chain_intact(&store).await;
});

backend_test!(of_two_concurrent_approvals_one_counts, |store| async move {
    let (alice, bob) = (agent(&store, "alice").await, agent(&store, "bob").await);
    let r = opened(&store, &alice).await;
    let before = audit(&store).await.len();
    let (a, a_event) = r.clone().approve(&alice, T0).unwrap();
    let (b, b_event) = r.approve(&bob, T0).unwrap();
    let (ra, rb) = tokio::join!(store.update_request(&a, a_event), store.update_request(&b, b_event));
    let winner = match (ra, rb) {
        (Ok(()), Err(StoreError::Conflict(_))) => a,
        (Err(StoreError::Conflict(_)), Ok(())) => b,
        other => panic!("exactly one approval must win: {other:?}"),
    };
    assert_eq!(stored(&store, &winner).await, winner);
    assert!(matches!(winner.state, RecoveryState::Pending { first_approver: Some(_) }));
    assert_eq!(audit(&store).await.len(), before + 1);
    chain_intact(&store).await;
});

backend_test!(the_database_refuses_a_single_agent_approval, |store| async move {
    let alice = agent(&store, "alice").await;
    let r = opened(&store, &alice).await;
    let insert = |id: &'static str, state: &'static str, second: &'static str, exported_by: Option<&'static str>| {
        sqlx::query(
            "INSERT INTO key_recovery_requests (id, serial, spki_sha256, application, reason, requested_by, \
                 requested_at, state, first_approver, second_approver, exported_by, exported_at, version) \
                 VALUES ($1, $2, $3, 'ABCDEFGHJKMN', 'why', 'alice', 0, $4, 'alice', $5, $6, $7, 2)",
        )
        .bind(id)
        .bind(r.serial.clone())
        .bind(r.spki_sha256.clone())
        .bind(state)
        .bind(second)
        .bind(exported_by)
        .bind(exported_by.map(|_| 0_i64))
        .execute(store.pool())
    };
    for (row, state, second, exported_by) in [
        ("BAD000000001", "approved", "alice", None),
        ("BAD000000002", "exported", "alice", Some("alice")),
        ("BAD000000003", "exported", "bob", Some("carol")),
        ("BAD000000004", "exported", "bob", None),
    ] {
        let err = insert(row, state, second, exported_by).await.expect_err(row);
        let sqlx::Error::Database(db) = &err else { panic!("{row}: {err}") };
        assert!(db.is_check_violation(), "{row}: {db}");
    }
    insert("TWAGENTS0000", "approved", "bob", None).await.expect("a valid row is accepted");
    let loaded = store.request(&RecoveryRequestId::parse("TWAGENTS0000").unwrap()).await.unwrap().unwrap();
    assert_eq!(loaded.state, RecoveryState::Approved { approvers: [id("alice"), id("bob")] });
});

backend_test!(a_witnessed_generation_is_recorded_once, |store| async move {
    assert_eq!(store.witness(&application()).await.unwrap(), None);
    let w = WitnessedGeneration::record(application(), id("alice"), " 0012345 ", " RA office ", T0).unwrap();
    store.record_witness(&w, w.event()).await.unwrap();
    let stored = store.witness(&application()).await.unwrap().expect("recorded");
    assert_eq!(stored, w.clone());
    assert_eq!(stored.token.as_ref().map(|t| t.as_str()), Some("0012345"), "the serial is kept");

    let before = audit(&store).await;
    let other = WitnessedGeneration::record(application(), id("bob"), "999", "RA office", T0).unwrap();
    let twice = store.record_witness(&other, other.event()).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(store.witness(&application()).await.unwrap(), Some(w));
    assert_eq!(audit(&store).await, before);
    let last = before.last().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("key-generation-witnessed", "operator:alice"));
    chain_intact(&store).await;
});

backend_test!(orphan_escrows_are_discarded_and_certified_ones_kept, |store| async move {
    // Escrowed, then issuance failed: no certificate names the key.
    let orphan = escrow(b"orphan key");
    store.save_escrow(&orphan, orphan.escrowed_event("system")).await.unwrap();
    // Escrowed and certified.
    let certified = escrow(b"certified key");
    store.save_escrow(&certified, certified.escrowed_event("system")).await.unwrap();
    let serial = issue(&store, &certified.spki_sha256).await;
    // Escrowed with only an intent (a retrieval still signing): not issued, but recent.
    let recent = EscrowedKey { created_at: T0 + Duration::hours(2), ..escrow(b"recent key") };
    store.save_escrow(&recent, recent.escrowed_event("system")).await.unwrap();
    reserve(&store, &recent.spki_sha256).await;

    let before = audit(&store).await.len();
    let removed = store.discard_orphan_escrows(T0 + Duration::hours(1), "system", T0 + Duration::hours(3)).await;
    assert_eq!(removed.unwrap(), 1, "only the old orphan");
    let kept = store.escrow_of_serial(&serial.to_hex()).await.unwrap().expect("the certified escrow stays");
    assert_eq!(kept.spki_sha256, certified.spki_sha256);
    let records = audit(&store).await;
    assert_eq!(records.len(), before + 1);
    let last = records.last().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("escrow-discarded", "system"));
    assert!(last.details.contains(&orphan.spki_sha256), "{last:?}");
    // Once the bound passes the recent one, it goes too; the certified one never does.
    let removed = store.discard_orphan_escrows(T0 + Duration::hours(3), "system", T0 + Duration::hours(3)).await;
    assert_eq!(removed.unwrap(), 1);
    assert_eq!(store.discard_orphan_escrows(T0 + Duration::days(9), "system", T0).await.unwrap(), 0);
    assert!(store.escrow_of_serial(&serial.to_hex()).await.unwrap().is_some());
    chain_intact(&store).await;
});
