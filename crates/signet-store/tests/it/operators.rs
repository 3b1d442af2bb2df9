//! Operator accounts (`OperatorStore`) and lockouts (`AttemptStore`) on both SQLite and
//! PostgreSQL, driven through the domain's `authenticate`: sign-in, single-use codes across
//! concurrent sign-ins, escalating lockouts on a fake clock, concurrent failure counting, and
//! audited administrator actions — with the audit chain intact after each.

mod seeds;

use std::sync::OnceLock;

use signet_pki::subject::CommonName;
use signet_ra::application::{OperatorId, PasswordHash, UnboundedChecker};
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore, LockLength, LockState, LockoutPolicy, Until};
use signet_ra::operator::{
    self, AdminError, LoginError, Operator, OperatorError, OperatorStore, Role, authenticate, operator_password,
};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
use signet_ra::{Clock, FakeClock};
use signet_store::Store;
use sqlx::Row;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use crate::common::backend_test;

const T0: OffsetDateTime = datetime!(2025-03-03 15:00:10 UTC);
const PASSWORD: &str = "Quill-Harbor-Sextant-58";

/// Argon2id is deliberately slow: hash once per test binary.
fn password() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let id = OperatorId::new("any").unwrap();
        PasswordHash::new(&operator_password(PASSWORD, &id).unwrap()).unwrap()
    })
}

fn id(s: &str) -> OperatorId {
    OperatorId::new(s).unwrap()
}

fn policy() -> LockoutPolicy {
    AttemptScope::OperatorPassword.default_policy()
}

async fn create(store: &Store, name: &str, role: Role, algorithm: TotpAlgorithm, digits: Digits) -> Operator {
    let op = Operator::new(
        id(name),
        CommonName::new(&format!("{name} Example")).unwrap(),
        role,
        password().clone(),
        Totp::new(TotpSecret::generate(), algorithm, digits),
    );
    store.create_operator(&op, op.created_event("cli:test", T0)).await.unwrap();
    op
}

async fn operator(store: &Store, name: &str) -> Operator {
    create(store, name, Role::RaOperator, TotpAlgorithm::Sha1, Digits::Six).await
}

async fn sign_in(
    store: &Store,
    op: &Operator,
    password: &str,
    code: &str,
    now: OffsetDateTime,
) -> Result<Operator, LoginError> {
    authenticate(store, &UnboundedChecker, &op.id, password, code, now, &policy()).await
}

/// The actions of the audit rows after the first `skip`.
async fn actions_after(store: &Store, skip: usize) -> Vec<String> {
    store.audit_records().await.unwrap().into_iter().skip(skip).map(|r| r.action).collect()
}

async fn chain_intact(store: &Store) {
    let rows = store.verify_audit().await.unwrap().expect("audit chain intact");
    assert!(rows > 0);
}

fn locked_at(t: OffsetDateTime) -> LockState {
    LockState::Locked(Until::Time(t))
}

backend_test!(create_read_and_list, |store| async move {
    let amy = create(&store, "amy", Role::RaAdministrator, TotpAlgorithm::Sha256, Digits::Eight).await;
    let bob = operator(&store, "bob").await;
    assert_eq!(store.operator_by_id(&amy.id).await.unwrap(), Some(amy.clone()));
    assert_eq!(store.operator_by_id(&id("nobody")).await.unwrap(), None);
    assert_eq!(store.list_operators().await.unwrap(), [amy.clone(), bob]);

    let again = operator(&store, "carol").await;
    let mut clash = again.clone();
    clash.id = amy.id.clone();
    let err = store.create_operator(&clash, clash.created_event("cli:test", T0)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("operator id")), "{err:?}");

    // The seed is stored sealed (tests/seeds.rs has the details), the password only as Argon2id.
    let row = sqlx::query("SELECT totp_secret, password_phc FROM operators WHERE id = 'amy'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(row.get::<String, _>(0).starts_with("sealed:v1:"));
    assert!(row.get::<String, _>(1).starts_with("$argon2id$"));

    let records = store.audit_records().await.unwrap();
    assert_eq!(records.iter().filter(|r| r.action == "operator-created").count(), 3, "the clash is not audited");
    assert!(records.iter().all(|r| !r.details.contains(&amy.totp.secret().to_base32())));
    chain_intact(&store).await;
});

backend_test!(totp_step_only_moves_forward, |store| async move {
    let op = operator(&store, "dana").await;
    let event = |step: u64| {
        AuditEvent::new(T0, "operator:dana", AuditAction::OperatorSignedIn, format!("{step}"), serde_json::json!({}))
    };
    let before = store.audit_records().await.unwrap().len();
    store.set_last_totp_step(&op.id, 100, event(100)).await.unwrap();
    for stale in [100, 99] {
        let err = store.set_last_totp_step(&op.id, stale, event(stale)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict("totp step")), "{stale}: {err:?}");
    }
    store.set_last_totp_step(&op.id, 101, event(101)).await.unwrap();
    let err = store.set_last_totp_step(&id("ghost"), 5, event(5)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.operator_by_id(&op.id).await.unwrap().unwrap().last_totp_step, Some(101));
    assert_eq!(actions_after(&store, before).await, ["operator-signed-in", "operator-signed-in"], "refusals roll back");
    chain_intact(&store).await;
});

backend_test!(sign_in_with_password_and_single_use_code, |store| async move {
    let op = create(&store, "erin", Role::RaOperator, TotpAlgorithm::Sha256, Digits::Eight).await;
    let code = op.totp.code(T0);
    let signed_in = sign_in(&store, &op, PASSWORD, &code, T0).await.unwrap();
    assert_eq!(signed_in.last_totp_step, Some(Totp::step_at(T0)));
    assert_eq!(store.operator_by_id(&op.id).await.unwrap().unwrap().last_totp_step, Some(Totp::step_at(T0)));

    // The same code again, still inside its window: refused and counted in the one sign-in
    // counter.
    let replay = sign_in(&store, &op, PASSWORD, &code, T0 + Duration::seconds(20)).await.unwrap_err();
    assert!(matches!(replay, LoginError::Refused), "{replay:?}");
    let failures: i64 =
        sqlx::query("SELECT failures FROM login_attempts WHERE scope = 'operator-password' AND subject = 'erin'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
    assert_eq!(failures, 1);

    // Wrong password, wrong code, unknown operator, disabled operator: one answer for all.
    let next = T0 + Duration::seconds(30);
    let fresh = op.totp.code(next);
    for (who, password, code) in [(&op, "Quill-Harbor-Sextant-59", fresh.as_str()), (&op, PASSWORD, "00000000")] {
        assert!(matches!(sign_in(&store, who, password, code, next).await, Err(LoginError::Refused)));
    }
    let ghost =
        authenticate(&store, &UnboundedChecker, &id("ghost"), PASSWORD, &fresh, next, &policy()).await.unwrap_err();
    assert!(matches!(ghost, LoginError::Refused), "{ghost:?}");
    store.set_operator_disabled(&op.id, true, operator::disabled_event(&op.id, true, "cli:test", next)).await.unwrap();
    assert!(matches!(sign_in(&store, &op, PASSWORD, &fresh, next).await, Err(LoginError::Refused)));
    store
        .set_operator_disabled(&op.id, false, operator::disabled_event(&op.id, false, "cli:test", next))
        .await
        .unwrap();

    // The fresh code still works, and success clears the counter.
    sign_in(&store, &op, PASSWORD, &fresh, next).await.unwrap();
    let rows: i64 = sqlx::query("SELECT COUNT(*) FROM login_attempts WHERE subject = 'erin'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    let actions = actions_after(&store, 1).await;
    assert_eq!(
        actions,
        [
            "operator-signed-in",
            "authentication-failed",
            "authentication-failed",
            "authentication-failed",
            "authentication-failed",
            "operator-disabled",
            "authentication-failed",
            "operator-enabled",
            "operator-signed-in"
        ]
    );
    chain_intact(&store).await;
});

/// Two nodes signing in at the same moment: the real store, except that each sign-in waits
/// after reading the operator until the other has read it too, so both see the same last step
/// and only the store's compare-and-set can stop the second.
struct Lockstep<'a> {
    store: &'a Store,
    both_read: Barrier,
}

impl OperatorStore for Lockstep<'_> {
    async fn create_operator(&self, operator: &Operator, audit: AuditEvent) -> Result<(), StoreError> {
        self.store.create_operator(operator, audit).await
    }
    async fn operator_by_id(&self, id: &OperatorId) -> Result<Option<Operator>, StoreError> {
        let read = self.store.operator_by_id(id).await;
        self.both_read.wait().await;
        read
    }
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.store.list_operators().await
    }
    async fn set_last_totp_step(&self, id: &OperatorId, step: u64, audit: AuditEvent) -> Result<(), StoreError> {
        self.store.set_last_totp_step(id, step, audit).await
    }
    async fn set_operator_disabled(
        &self,
        id: &OperatorId,
        disabled: bool,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        self.store.set_operator_disabled(id, disabled, audit).await
    }
}

impl AttemptStore for Lockstep<'_> {
    async fn check(&self, scope: AttemptScope, subject: &str, now: OffsetDateTime) -> Result<LockState, StoreError> {
        self.store.check(scope, subject, now).await
    }
    async fn record_failure(
        &self,
        scope: AttemptScope,
        subject: &str,
        policy: &LockoutPolicy,
        now: OffsetDateTime,
    ) -> Result<LockState, StoreError> {
        self.store.record_failure(scope, subject, policy, now).await
    }
    async fn clear(&self, scope: AttemptScope, subject: &str) -> Result<(), StoreError> {
        self.store.clear(scope, subject).await
    }
    async fn unlock(
        &self,
        scope: AttemptScope,
        subject: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.store.unlock(scope, subject, actor, now).await
    }
}

backend_test!(a_code_signs_in_once_when_two_nodes_race, |store| async move {
    let op = operator(&store, "fay").await;
    let code = op.totp.code(T0);
    let nodes = Lockstep { store: &store, both_read: Barrier::new(2) };
    let policy = policy();
    let attempt = || authenticate(&nodes, &UnboundedChecker, &op.id, PASSWORD, &code, T0, &policy);
    let (a, b) = tokio::join!(attempt(), attempt());
    let wins = [&a, &b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{a:?} / {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(LoginError::Refused)));
    let records = store.audit_records().await.unwrap();
    let last_two: Vec<_> = records.iter().rev().take(2).map(|r| (r.action.as_str(), r.subject.as_str())).collect();
    assert_eq!(last_two, [("authentication-failed", "operator-password:fay"), ("operator-signed-in", "fay")]);
    chain_intact(&store).await;
});

backend_test!(lockout_escalates_and_holds_even_for_the_right_credentials, |store| async move {
    let clock = FakeClock::at(T0);
    let op = operator(&store, "gus").await;
    let wrong = "Quill-Harbor-Sextant-00";
    for _ in 1..5 {
        let e = sign_in(&store, &op, wrong, "000000", clock.now()).await.unwrap_err();
        assert!(matches!(e, LoginError::Refused), "{e:?}");
    }
    let first_lock = T0 + Duration::minutes(1);
    let e = sign_in(&store, &op, wrong, "000000", clock.now()).await.unwrap_err();
    assert!(matches!(e, LoginError::Locked { until: Until::Time(t) } if t == first_lock), "{e:?}");

    // While locked, the right password and code are not even checked: the step is not spent.
    clock.advance(Duration::seconds(30));
    let e = sign_in(&store, &op, PASSWORD, &op.totp.code(clock.now()), clock.now()).await.unwrap_err();
    assert!(matches!(e, LoginError::Locked { .. }), "{e:?}");
    assert_eq!(store.operator_by_id(&op.id).await.unwrap().unwrap().last_totp_step, None);

    // The lock ends on time; the next failure locks for twice as long.
    clock.advance(Duration::seconds(30));
    assert_eq!(store.check(AttemptScope::OperatorPassword, "gus", clock.now()).await.unwrap(), LockState::Open);
    let e = sign_in(&store, &op, wrong, "000000", clock.now()).await.unwrap_err();
    assert!(matches!(e, LoginError::Locked { until: Until::Time(t) } if t == clock.now() + Duration::minutes(2)));
    clock.advance(Duration::minutes(2));
    sign_in(&store, &op, PASSWORD, &op.totp.code(clock.now()), clock.now()).await.unwrap();
    assert_eq!(store.check(AttemptScope::OperatorPassword, "gus", clock.now()).await.unwrap(), LockState::Open);

    // Wrong codes after a right password count in the same counter and lock at the same
    // try with the same answer as wrong passwords do: the lock tells nothing about which
    // part was right.
    clock.advance(Duration::seconds(30));
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(format!("{:?}", sign_in(&store, &op, PASSWORD, "000000", clock.now()).await.unwrap_err()));
    }
    let now = clock.now();
    assert_eq!(answers[..4], ["Refused", "Refused", "Refused", "Refused"]);
    assert_eq!(
        store.check(AttemptScope::OperatorPassword, "gus", now).await.unwrap(),
        locked_at(now + Duration::minutes(1))
    );
    let e = sign_in(&store, &op, PASSWORD, &op.totp.code(now), now).await.unwrap_err();
    assert!(matches!(e, LoginError::Locked { .. }), "{e:?}");

    // An id that does not exist locks exactly like one that does.
    for _ in 0..5 {
        let _ = authenticate(&store, &UnboundedChecker, &id("ghost"), wrong, "000000", now, &policy()).await;
    }
    assert_eq!(
        store.check(AttemptScope::OperatorPassword, "ghost", now).await.unwrap(),
        locked_at(now + Duration::minutes(1))
    );
    chain_intact(&store).await;
});

backend_test!(multi_thread 2: concurrent_failures_all_count, |store| async move {
    let policy = LockoutPolicy {
        max_failures: 100,
        lock: LockLength::Escalating { base_delay: Duration::minutes(1), max_delay: Duration::hours(1) },
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(
                async move { store.record_failure(AttemptScope::SubscriberTotp, "s-1", &policy, T0).await },
            )
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), LockState::Open);
    }
    let failures: i64 = sqlx::query("SELECT failures FROM login_attempts WHERE subject = 's-1'")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 8);
    assert_eq!(actions_after(&store, 0).await, vec!["authentication-failed"; 8]);
    chain_intact(&store).await;
});

backend_test!(permanent_lock_needs_an_audited_administrator_unlock, |store| async move {
    let admin = create(&store, "hal", Role::RaAdministrator, TotpAlgorithm::Sha1, Digits::Six).await;
    let vetter = operator(&store, "ida").await;
    // No shipped scope locks for good any more; the store still keeps such a lock.
    let policy = LockoutPolicy { max_failures: 5, lock: LockLength::UntilUnlocked };
    let subject = "7K2M9Q4T8V1W";
    let mut last = LockState::Open;
    for _ in 0..5 {
        last = store.record_failure(AttemptScope::ActivationCode, subject, &policy, T0).await.unwrap();
    }
    assert_eq!(last, LockState::Locked(Until::AdministratorUnlocks));
    let much_later = T0 + Duration::days(365);
    let state = store.check(AttemptScope::ActivationCode, subject, much_later).await.unwrap();
    assert_eq!(state, LockState::Locked(Until::AdministratorUnlocks));

    let e = operator::unlock(&store, &vetter, AttemptScope::ActivationCode, subject, much_later).await.unwrap_err();
    assert!(matches!(e, AdminError::Operator(OperatorError::Forbidden)), "{e:?}");
    let before = store.audit_records().await.unwrap().len();
    operator::unlock(&store, &admin, AttemptScope::ActivationCode, subject, much_later).await.unwrap();
    let records = store.audit_records().await.unwrap();
    let last_row = records.last().unwrap();
    assert_eq!(records.len(), before + 1);
    assert_eq!(
        (last_row.action.as_str(), last_row.actor.as_str(), last_row.subject.as_str()),
        ("lockout-cleared", "operator:hal", "activation-code:7K2M9Q4T8V1W")
    );
    assert_eq!(store.check(AttemptScope::ActivationCode, subject, much_later).await.unwrap(), LockState::Open);

    // Nothing left to unlock: refused, and nothing audited.
    let e = operator::unlock(&store, &admin, AttemptScope::ActivationCode, subject, much_later).await.unwrap_err();
    assert!(matches!(e, AdminError::Store(StoreError::NotFound)), "{e:?}");
    assert_eq!(store.audit_records().await.unwrap().len(), before + 1);

    // Only administrators disable operators.
    let e = operator::set_disabled(&store, &vetter, &admin.id, true, much_later).await.unwrap_err();
    assert!(matches!(e, AdminError::Operator(OperatorError::Forbidden)), "{e:?}");
    operator::set_disabled(&store, &admin, &vetter.id, true, much_later).await.unwrap();
    assert!(store.operator_by_id(&vetter.id).await.unwrap().unwrap().disabled);
    chain_intact(&store).await;
});

backend_test!(every_scope_is_admitted_and_no_other, |store| async move {
    for scope in AttemptScope::ALL {
        let state = store.record_failure(scope, "x", &scope.default_policy(), T0).await.unwrap();
        assert_eq!(state, LockState::Open, "{scope}");
    }
    let bogus = sqlx::query(
            "INSERT INTO login_attempts (scope, subject, failures, last_failure, until_unlocked) VALUES ('bogus', 'x', 1, 0, 0)",
        )
        .execute(store.pool())
        .await;
    assert!(bogus.is_err());
    chain_intact(&store).await;
});
