//! The RA's token stock (`TokenStockStore`) on both SQLite and PostgreSQL: a serial is added
//! once; shipping binds a token in the same transaction as the application's step, so a stale
//! revision leaves the token in stock and writes no audit row; one token per application, by
//! the database's own index; shipment challenges answer once and not after they expire — with
//! the audit chain intact after each.

use std::sync::OnceLock;

use signet_pki::subject::Email;
use signet_ra::application::{
    Application, ApplicationId, ApplicationStore, Command, IssuedSecret, NewPassword, PasswordHash, Transition,
};
use signet_ra::fixtures::{sample_form, vetting_plan};
use signet_ra::issuance::StoreError;
use signet_ra::token_stock::{
    CHALLENGE_LIFETIME, Delivery, ShipmentChallenge, StockState, StockToken, TokenSerial, TokenStockStore,
};
use signet_ra::vetting::DeadlinePolicy;
use signet_store::Store;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::common::backend_test;

const T0: OffsetDateTime = datetime!(2026-11-02 14:00 UTC);

/// Argon2id is deliberately slow: hash once per test binary.
fn password() -> &'static PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| {
        let email = Email::new("jane.doe@acme.example").unwrap();
        PasswordHash::new(&NewPassword::new("plover-quartz-meander-41", &email).unwrap()).unwrap()
    })
}

fn serial(s: &str) -> TokenSerial {
    TokenSerial::new(s).unwrap()
}

/// A provisioned token as `signet admin token provision` records it (the key and sealed PINs
/// are opaque bytes to the store).
fn token(s: &str) -> StockToken {
    StockToken {
        serial: serial(s),
        model: "SoftHSM v2".into(),
        manufacturer: "SoftHSM project".into(),
        shipment_key: vec![0x30, 0x59, 1, 2, 3],
        sealed_pins: vec![9, 8, 7, 6],
        provisioned_at: T0,
        provisioned_by: "cli:ra".into(),
        state: StockState::InStock,
    }
}

async fn added(store: &Store, s: &str) -> StockToken {
    let t = token(s);
    store.add_stock_token(&t, t.event("cli:ra", T0)).await.unwrap();
    t
}

async fn stored(store: &Store, s: &str) -> StockToken {
    store.stock_token(&serial(s)).await.unwrap().expect("in the stock")
}

async fn audit_len(store: &Store) -> usize {
    store.audit_records().await.unwrap().len()
}

async fn chain_intact(store: &Store) {
    assert!(store.verify_audit().await.unwrap().expect("audit chain intact") > 0);
}

/// A medium-token application, stored and approved through the domain; returns it with the
/// `ShipToken` command that comes next.
async fn approved(store: &Store) -> (Application, Command) {
    let mut at = T0 - Duration::days(9);
    let submitted = Application::submit(ApplicationId::generate(), sample_form("medium-token"), at);
    store.create(&submitted, password(), &[]).await.unwrap();
    let Some(IssuedSecret::EmailVerification(code)) = submitted.secret.clone() else { panic!("no email token") };
    let mut app = submitted.application;
    let mut plan = vetting_plan(code, at.date(), "medium-token").into_iter();
    for (actor, command, wait) in plan.by_ref().take(6) {
        at += wait;
        let t = app.apply(&actor, command, at, &DeadlinePolicy::default()).unwrap();
        store.save_transition(&t, &[]).await.unwrap();
        app = t.application;
    }
    let (_, ship, _) = plan.next().expect("the shipment step");
    (app, ship)
}

fn ship(app: &Application, command: Command) -> Transition {
    let bob = signet_ra::application::Actor::Operator(signet_ra::application::OperatorId::new("bob").unwrap());
    app.clone().apply(&bob, command, T0, &DeadlinePolicy::default()).unwrap()
}

backend_test!(a_serial_is_added_once_and_read_back, |store| async move {
    assert!(store.stock().await.unwrap().is_empty());
    let a = added(&store, "SK-0001").await;
    assert_eq!(stored(&store, "SK-0001").await, a, "every field round-trips");
    let before = audit_len(&store).await;
    let again = token("SK-0001");
    let dup = store.add_stock_token(&again, again.event("cli:ra", T0)).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(audit_len(&store).await, before, "a refused add writes no audit row");
    let b = StockToken { provisioned_at: T0 + Duration::hours(1), ..token("SK-0002") };
    store.add_stock_token(&b, b.event("cli:ra", T0)).await.unwrap();
    let serials: Vec<String> = store.stock().await.unwrap().into_iter().map(|t| t.serial.to_string()).collect();
    assert_eq!(serials, ["SK-0002", "SK-0001"], "newest first");
    assert_eq!(store.stock_token(&serial("SK-9999")).await.unwrap(), None);
    let last = store.audit_records().await.unwrap().pop().unwrap();
    assert_eq!((last.action.as_str(), last.subject.as_str()), ("token-provisioned", "token:SK-0002"));
    assert!(!last.details.contains("9,8,7,6") && !last.details.contains("pins"), "no PINs in the audit");
    chain_intact(&store).await;
});

backend_test!(shipping_binds_the_token_in_the_applications_transaction, |store| async move {
    let (app, command) = approved(&store).await;
    let id = app.id().clone();
    let a = added(&store, "SK-0001").await;
    let b = added(&store, "SK-0002").await;

    // A transition from a stale revision: refused, the token stays in stock, no audit row.
    let first = ship(&app, command.clone());
    let stale = ship(&app, command.clone());
    store.save_transition_with_token(&first, &[], &a.clone().ship(id.clone()).unwrap(), "in-stock").await.unwrap();
    let before = audit_len(&store).await;
    let revision = store.load(&id).await.unwrap().unwrap().revision();
    let refused = store.save_transition_with_token(&stale, &[], &b.clone().ship(id.clone()).unwrap(), "in-stock").await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(stored(&store, "SK-0002").await.state, StockState::InStock);
    assert_eq!(audit_len(&store).await, before);
    assert_eq!(store.load(&id).await.unwrap().unwrap().revision(), revision);

    // The first one did both: the application shipped, the token bound to it.
    assert_eq!(store.load(&id).await.unwrap().unwrap().state().state_name(), "token-shipped");
    let bound = store.token_of(&id).await.unwrap().expect("bound");
    assert_eq!((bound.serial.as_str(), bound.state), ("SK-0001", StockState::Shipped(id.clone())));

    // A token that moved meanwhile: the application's step is rolled back with it.
    let (other, command) = approved(&store).await;
    let before = audit_len(&store).await;
    let t = ship(&other, command);
    let moved =
        store.save_transition_with_token(&t, &[], &a.clone().ship(other.id().clone()).unwrap(), "in-stock").await;
    assert!(matches!(moved, Err(StoreError::Conflict(_))), "{moved:?}");
    assert_eq!(store.load(other.id()).await.unwrap().unwrap().state().state_name(), "approved");
    assert_eq!(audit_len(&store).await, before);
    assert_eq!(store.token_of(other.id()).await.unwrap(), None);
    chain_intact(&store).await;
});

backend_test!(one_token_per_application, |store| async move {
    let id = ApplicationId::new("ABCDEFGHJKMN").unwrap();
    let a = added(&store, "SK-0001").await.ship(id.clone()).unwrap();
    store.move_stock_token(&a, "in-stock", a.event("operator:bob", T0)).await.unwrap();
    let b = added(&store, "SK-0002").await.ship(id.clone()).unwrap();
    let before = audit_len(&store).await;
    let second = store.move_stock_token(&b, "in-stock", b.event("operator:bob", T0)).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "the unique index refuses: {second:?}");
    assert_eq!(stored(&store, "SK-0002").await.state, StockState::InStock);
    assert_eq!(audit_len(&store).await, before);
    assert_eq!(store.token_of(&id).await.unwrap().unwrap().serial.as_str(), "SK-0001");

    // Retrieved, then lost: still that application's, and its delivery read back.
    let delivery = Delivery { identity_serial: "0a1b".into(), encryption: None };
    let retrieved = a.retrieved(delivery.clone()).unwrap();
    store.move_stock_token(&retrieved, "shipped", retrieved.event("applicant", T0)).await.unwrap();
    assert_eq!(stored(&store, "SK-0001").await.state, StockState::Retrieved(id.clone(), delivery));
    let lost = retrieved.lose().unwrap();
    store.move_stock_token(&lost, "retrieved", lost.event("operator:bob", T0)).await.unwrap();
    assert_eq!(store.token_of(&id).await.unwrap().unwrap().state, StockState::Lost(Some(id.clone())));
    // A move from a state it is no longer in is refused.
    let stale = stored(&store, "SK-0002").await.retire().unwrap();
    store.move_stock_token(&stale, "in-stock", stale.event("operator:bob", T0)).await.unwrap();
    let again = store.move_stock_token(&stale, "in-stock", stale.event("operator:bob", T0)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    chain_intact(&store).await;
});

backend_test!(a_challenge_answers_once_and_not_after_it_expires, |store| async move {
    let id = ApplicationId::new("ABCDEFGHJKMN").unwrap();
    added(&store, "SK-0001").await;
    let c = ShipmentChallenge::issue(id.clone(), serial("SK-0001"), T0);
    store.save_challenge(&c).await.unwrap();
    assert_eq!(store.take_challenge(&c.nonce, T0 + Duration::minutes(1)).await.unwrap(), Some(c.clone()));
    assert_eq!(store.take_challenge(&c.nonce, T0 + Duration::minutes(1)).await.unwrap(), None, "single use");

    let late = ShipmentChallenge::issue(id.clone(), serial("SK-0001"), T0);
    store.save_challenge(&late).await.unwrap();
    let after = T0 + CHALLENGE_LIFETIME + Duration::seconds(1);
    assert_eq!(store.take_challenge(&late.nonce, after).await.unwrap(), None, "expired");
    assert_eq!(store.take_challenge(&late.nonce, T0).await.unwrap(), None, "and gone");

    // Expired ones are cleared on the way, whichever nonce is taken.
    let stale = ShipmentChallenge::issue(id.clone(), serial("SK-0001"), T0);
    store.save_challenge(&stale).await.unwrap();
    assert_eq!(store.take_challenge("no-such-nonce", after).await.unwrap(), None);
    assert_eq!(store.take_challenge(&stale.nonce, T0).await.unwrap(), None, "removed by the other take");
    let unknown = ShipmentChallenge::issue(id, serial("SK-9999"), T0);
    assert!(store.save_challenge(&unknown).await.is_err(), "only for a token in the stock");
});
