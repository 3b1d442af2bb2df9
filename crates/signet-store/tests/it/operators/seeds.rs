//! TOTP seeds at rest on SQLite and PostgreSQL: operators' and soft tokens' seeds are stored
//! sealed and bound to their row, sign-ins still work, the seeds an earlier version stored in
//! clear are sealed when the key is attached at start, and a store without the key writes and
//! reads no seed.

use signet_pki::subject::CommonName;
use signet_ra::application::{ApplicationId, OperatorId, UnboundedChecker};
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::cmc::{self, SoftToken, SoftTokenStore};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::AttemptScope;
use signet_ra::operator::{LoginError, Operator, OperatorStore, Role, authenticate};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
use signet_store::Store;
use signet_testkit::TestDb;
use time::{Duration, OffsetDateTime};

use super::{PASSWORD, T0, password};
use crate::common::{backend_test, sealing_key};

fn new_operator(name: &str) -> Operator {
    Operator::new(
        OperatorId::new(name).unwrap(),
        CommonName::new(&format!("{name} Example")).unwrap(),
        Role::RaOperator,
        password().clone(),
        Totp::new(TotpSecret::generate(), TotpAlgorithm::Sha1, Digits::Six),
    )
}

async fn create_operator(store: &Store, name: &str) -> Operator {
    let op = new_operator(name);
    store.create_operator(&op, op.created_event("cli:test", T0)).await.unwrap();
    op
}

fn enrolled_event(token: &SoftToken) -> AuditEvent {
    AuditEvent::new(
        T0,
        &cmc::actor(&token.account),
        AuditAction::SoftTokenEnrolled,
        token.account.as_str(),
        serde_json::json!({ "serial": token.serial.as_str() }),
    )
}

/// A pending soft token of a new account, saved.
async fn enroll(store: &Store) -> SoftToken {
    let token = SoftToken::enroll(ApplicationId::generate(), TotpAlgorithm::Sha1, Digits::Six, None, T0).unwrap();
    store.save_pending(&token, enrolled_event(&token)).await.unwrap();
    token
}

async fn sign_in(store: &Store, op: &Operator, now: OffsetDateTime) -> Result<Operator, LoginError> {
    let policy = AttemptScope::OperatorPassword.default_policy();
    authenticate(store, &UnboundedChecker, &op.id, PASSWORD, &op.totp.code(now), now, &policy).await
}

/// Registers the pending token with its current code, then signs the subscriber in a step later.
async fn register_and_sign_in(store: &Store, token: &SoftToken) {
    cmc::register(store, &token.account, &token.totp.code(T0), T0).await.unwrap();
    let later = T0 + Duration::seconds(30);
    let account = &token.account;
    cmc::sign_in(store, account.as_str(), Some(account), true, cmc::SecondFactor::Code(&token.totp.code(later)), later)
        .await
        .unwrap();
}

async fn operator_seed(store: &Store, id: &str) -> String {
    sqlx::query_scalar("SELECT totp_secret FROM operators WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn token_seed(store: &Store, token: &SoftToken) -> String {
    sqlx::query_scalar("SELECT secret FROM soft_tokens WHERE serial = $1")
        .bind(token.serial.as_str())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// The stored value is sealed and shows nothing of the seed.
fn assert_sealed(stored: &str, totp: &Totp) {
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    assert!(!stored.to_uppercase().contains(&totp.secret().to_base32()), "the stored value shows the seed");
}

/// The message of a storage failure.
fn failure<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Backend(message)) => message,
        other => panic!("expected a storage failure, got {other:?}"),
    }
}

backend_test!(seeds_are_stored_sealed_and_sign_ins_still_work, |store| async move {
    let amy = create_operator(&store, "amy").await;
    assert_sealed(&operator_seed(&store, "amy").await, &amy.totp);
    assert_eq!(store.operator_by_id(&amy.id).await.unwrap().as_ref(), Some(&amy));
    sign_in(&store, &amy, T0).await.unwrap();

    let token = enroll(&store).await;
    assert_sealed(&token_seed(&store, &token).await, &token.totp);
    assert_eq!(store.soft_token(&token.account, "pending").await.unwrap().as_ref(), Some(&token));
    register_and_sign_in(&store, &token).await;
    assert_sealed(&token_seed(&store, &token).await, &token.totp);

    let records = store.audit_records().await.unwrap();
    for seed in [amy.totp.secret().to_base32(), token.totp.secret().to_base32()] {
        assert!(records.iter().all(|r| !r.details.contains(&seed)), "an audit row shows a seed");
    }
    assert!(store.verify_audit().await.unwrap().is_ok());
});

backend_test!(a_sealed_seed_opens_only_in_its_own_row, |store| async move {
    let amy = create_operator(&store, "amy").await;
    let bob = create_operator(&store, "bob").await;
    sqlx::query("UPDATE operators SET totp_secret = $1 WHERE id = 'bob'")
        .bind(operator_seed(&store, "amy").await)
        .execute(store.pool())
        .await
        .unwrap();
    let message = failure(store.operator_by_id(&bob.id).await);
    assert!(message.contains("operator bob") && message.contains("does not open"), "{message}");
    assert!(failure(store.list_operators().await).contains("does not open"));
    assert!(matches!(sign_in(&store, &bob, T0).await, Err(LoginError::Store(_))));
    assert_eq!(store.operator_by_id(&amy.id).await.unwrap().as_ref(), Some(&amy));

    // A seed in clear is refused too: whoever wrote it into the database lacks the key.
    sqlx::query("UPDATE operators SET totp_secret = $1 WHERE id = 'bob'")
        .bind(TotpSecret::generate().to_base32())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(failure(store.operator_by_id(&bob.id).await).contains("stored in clear"));

    // A soft token's seed is bound to its serial and to its account.
    let (first, second) = (enroll(&store).await, enroll(&store).await);
    sqlx::query("UPDATE soft_tokens SET secret = $1 WHERE serial = $2")
        .bind(token_seed(&store, &first).await)
        .bind(second.serial.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(failure(store.soft_token(&second.account, "pending").await).contains("does not open"));
    let elsewhere = ApplicationId::generate();
    sqlx::query("UPDATE soft_tokens SET account = $1 WHERE serial = $2")
        .bind(elsewhere.as_str())
        .bind(first.serial.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(failure(store.soft_token(&elsewhere, "pending").await).contains("does not open"));
});

backend_test!(clear_seeds_from_an_earlier_version_are_sealed_at_start, |store| async move {
    let amy = create_operator(&store, "amy").await;
    let token = enroll(&store).await;
    // The rows as an earlier version wrote them: the base32 seed in clear.
    sqlx::query("UPDATE operators SET totp_secret = $1 WHERE id = 'amy'")
        .bind(amy.totp.secret().to_base32())
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE soft_tokens SET secret = $1 WHERE serial = $2")
        .bind(token.totp.secret().to_base32())
        .bind(token.serial.as_str())
        .execute(store.pool())
        .await
        .unwrap();
    assert!(failure(store.operator_by_id(&amy.id).await).contains("stored in clear"));
    let audit_rows = store.audit_records().await.unwrap().len();

    // What the server does at start.
    let store = store.with_sealing_key(sealing_key()).await.unwrap();
    let (sealed_operator, sealed_token) = (operator_seed(&store, "amy").await, token_seed(&store, &token).await);
    assert_sealed(&sealed_operator, &amy.totp);
    assert_sealed(&sealed_token, &token.totp);
    assert_eq!(store.audit_records().await.unwrap().len(), audit_rows, "sealing changes how, not what");
    sign_in(&store, &amy, T0).await.unwrap();
    assert_eq!(store.soft_token(&token.account, "pending").await.unwrap().as_ref(), Some(&token));
    register_and_sign_in(&store, &token).await;

    // The next start finds nothing to seal.
    let store = store.with_sealing_key(sealing_key()).await.unwrap();
    assert_eq!(operator_seed(&store, "amy").await, sealed_operator);
    assert_eq!(token_seed(&store, &token).await, sealed_token);
    assert!(store.verify_audit().await.unwrap().is_ok());
});

backend_test!(a_store_without_the_key_writes_and_reads_no_seed, without_the_key);

async fn without_the_key(backend: &str) {
    let db = TestDb::new(backend).await;
    let bare = Store::connect(&db.url).await.unwrap();
    let op = new_operator("amy");
    let message = failure(bare.create_operator(&op, op.created_event("cli:test", T0)).await);
    assert!(message.contains("no sealing key"), "{backend}: {message}");
    let token = SoftToken::enroll(ApplicationId::generate(), TotpAlgorithm::Sha1, Digits::Six, None, T0).unwrap();
    assert!(failure(bare.save_pending(&token, enrolled_event(&token)).await).contains("no sealing key"));
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators").fetch_one(bare.pool()).await.unwrap();
    assert_eq!(rows, 0, "{backend}");
    assert!(bare.audit_records().await.unwrap().is_empty(), "{backend}: a refused write leaves no audit row");

    let keyed = bare.clone().with_sealing_key(sealing_key()).await.unwrap();
    keyed.create_operator(&op, op.created_event("cli:test", T0)).await.unwrap();
    assert!(failure(bare.operator_by_id(&op.id).await).contains("no sealing key"), "{backend}");
    keyed.close().await;
}
