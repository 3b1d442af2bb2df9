//! Passkeys on SQLite and PostgreSQL: stored by credential id for their owner, renamed and
//! removed only by that owner, never the last way a subscriber signs in, each change with its
//! audit row and its mailed notice in one transaction; a use only moves the counters it read;
//! the recovery path removes them with the soft tokens.

use signet_pki::subject::Email;
use signet_ra::application::ApplicationId;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::cmc::{self, SoftToken, SoftTokenStore};
use signet_ra::issuance::StoreError;
use signet_ra::notify::{MessageKind, OutboxMessage};
use signet_ra::passkey::{Aaguid, Passkey, PasskeyName, PasskeyOwner, PasskeyStore};
use signet_ra::totp::{Digits, TotpAlgorithm};
use signet_store::Store;
use time::OffsetDateTime;
use time::macros::datetime;

use crate::common::backend_test;

const T0: OffsetDateTime = datetime!(2026-12-01 09:00:00 UTC);

fn passkey(owner: &PasskeyOwner, id: u8, name: &str) -> Passkey {
    Passkey {
        credential_id: vec![id; 16],
        owner: owner.clone(),
        user_handle: [7; 16],
        name: PasskeyName::new(name).unwrap(),
        aaguid: Aaguid::from_bytes([0xaa; 16]),
        static_state: vec![1, 2, 3, id],
        dynamic_state: [0, 0, 0, 0, 1, 0, id],
        created_at: T0 + time::Duration::minutes(i64::from(id)),
        last_used_at: None,
    }
}

fn event(owner: &PasskeyOwner, action: AuditAction) -> AuditEvent {
    AuditEvent::new(T0, &owner.stored(), action, "passkeys", serde_json::json!({}))
}

fn notice(key: &str) -> OutboxMessage {
    OutboxMessage {
        to: Email::new("jane.doe@acme.example").unwrap(),
        subject: "The way you sign in changed".into(),
        body_text: "A passkey was added.".into(),
        kind: MessageKind::SignInChanged,
        dedup_key: key.into(),
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(store.pool()).await.unwrap()
}

/// An account with an active soft token.
async fn with_soft_token(store: &Store) -> ApplicationId {
    let token = SoftToken::enroll(ApplicationId::generate(), TotpAlgorithm::Sha1, Digits::Six, None, T0).unwrap();
    let account = token.account.clone();
    store
        .save_pending(&token, event(&PasskeyOwner::Subscriber(account.clone()), AuditAction::SoftTokenEnrolled))
        .await
        .unwrap();
    cmc::register(store, &account, &token.totp.code(T0), T0).await.unwrap();
    account
}

backend_test!(stored_listed_renamed_by_their_owner_with_audit_and_notice, |store| async move {
    let jane = PasskeyOwner::Subscriber(ApplicationId::generate());
    let alice = PasskeyOwner::Operator("alice".into());
    let laptop = passkey(&jane, 1, "Work laptop");
    store.add_passkey(&laptop, event(&jane, AuditAction::PasskeyRegistered), Some(&notice("added:1"))).await.unwrap();
    store
        .add_passkey(&passkey(&alice, 2, "YubiKey"), event(&alice, AuditAction::PasskeyRegistered), None)
        .await
        .unwrap();
    assert_eq!(store.passkeys(&jane).await.unwrap(), vec![laptop.clone()]);
    assert_eq!(store.passkey(&[1; 16]).await.unwrap(), Some(laptop.clone()));
    assert_eq!(store.passkey(&[9; 16]).await.unwrap(), None);
    let taken =
        store.add_passkey(&passkey(&alice, 1, "Same id"), event(&alice, AuditAction::PasskeyRegistered), None).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "a credential id is one owner's");

    let new_name = PasskeyName::new("Home laptop").unwrap();
    let renamed = store.rename_passkey(&alice, &[1; 16], &new_name, event(&alice, AuditAction::PasskeyRenamed), None);
    assert!(matches!(renamed.await, Err(StoreError::NotFound)), "another owner's passkey is not found");
    store
        .rename_passkey(
            &jane,
            &[1; 16],
            &new_name,
            event(&jane, AuditAction::PasskeyRenamed),
            Some(&notice("renamed:1")),
        )
        .await
        .unwrap();
    assert_eq!(store.passkeys(&jane).await.unwrap()[0].name, new_name);
    let queued = store.pending_outbox(T0, 10).await.unwrap();
    let kinds: Vec<_> = queued.iter().map(|q| (q.message.kind, q.message.dedup_key.as_str())).collect();
    assert_eq!(kinds, [(MessageKind::SignInChanged, "added:1"), (MessageKind::SignInChanged, "renamed:1")]);
    let audited =
        count(&store, "SELECT COUNT(*) FROM audit_log WHERE action IN ('passkey-registered', 'passkey-renamed')");
    assert_eq!(audited.await, 3, "the refused writes left no audit row");
    assert!(store.verify_audit().await.unwrap().is_ok(), "the audit chain holds");
});

backend_test!(the_last_way_to_sign_in_stays, |store| async move {
    let account = with_soft_token(&store).await;
    let owner = PasskeyOwner::Subscriber(account.clone());
    store
        .add_passkey(&passkey(&owner, 1, "Laptop"), event(&owner, AuditAction::PasskeyRegistered), None)
        .await
        .unwrap();
    store.add_passkey(&passkey(&owner, 2, "Phone"), event(&owner, AuditAction::PasskeyRegistered), None).await.unwrap();

    // With the soft token and another passkey, either goes.
    store
        .remove_passkey(&owner, &[1; 16], event(&owner, AuditAction::PasskeyRemoved), Some(&notice("removed:1")))
        .await
        .unwrap();
    let soft_token_removed = event(&owner, AuditAction::SoftTokenRemoved);
    store.remove_active_soft_token(&account, soft_token_removed, Some(&notice("soft-token"))).await.unwrap();
    assert!(store.soft_token(&account, "active").await.unwrap().is_none());
    // The last passkey, now the only way in, stays; nothing is audited or mailed for the refusal.
    let mail = notice("removed:2");
    let last = store.remove_passkey(&owner, &[2; 16], event(&owner, AuditAction::PasskeyRemoved), Some(&mail)).await;
    assert!(matches!(last, Err(StoreError::Conflict(_))));
    assert_eq!(store.passkeys(&owner).await.unwrap().len(), 1);
    let gone = store.remove_passkey(&owner, &[1; 16], event(&owner, AuditAction::PasskeyRemoved), None);
    assert!(matches!(gone.await, Err(StoreError::NotFound)));
    let again = store.remove_active_soft_token(&account, event(&owner, AuditAction::SoftTokenRemoved), None).await;
    assert!(matches!(again, Err(StoreError::NotFound)));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM outbox WHERE kind = 'sign-in-changed'").await, 2);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM audit_log WHERE action = 'passkey-removed'").await, 1);

    // An account whose only factor is a soft token cannot remove it either.
    let other = with_soft_token(&store).await;
    let refused = store.remove_active_soft_token(&other, event(&owner, AuditAction::SoftTokenRemoved), None).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))));

    // The recovery path removes the passkeys with the soft tokens.
    let recovered = event(&owner, AuditAction::SoftTokenRecovered);
    store.remove_second_factors(&account, recovered).await.unwrap();
    assert!(store.passkeys(&owner).await.unwrap().is_empty());
});

backend_test!(a_use_moves_only_the_counters_it_read, |store| async move {
    let owner = PasskeyOwner::Operator("alice".into());
    let before = passkey(&owner, 3, "YubiKey");
    store.add_passkey(&before, event(&owner, AuditAction::PasskeyRegistered), None).await.unwrap();
    let after = Passkey { dynamic_state: [0, 0, 0, 0, 1, 0, 4], last_used_at: Some(T0), ..before.clone() };
    store.passkey_used(&before, &after, event(&owner, AuditAction::OperatorSignedIn)).await.unwrap();
    assert_eq!(store.passkey(&[3; 16]).await.unwrap(), Some(after.clone()));
    // A second node that read the old counters loses: its signature was already counted.
    let raced = store.passkey_used(&before, &after, event(&owner, AuditAction::OperatorSignedIn)).await;
    assert!(matches!(raced, Err(StoreError::Conflict(_))));
});
