//! Runs a storage test on each backend, each time on a fresh, migrated database whose store
//! seals TOTP seeds under [`sealing_key`].

use signet_pki::seal::SealingKey;
use signet_store::Store;
use signet_testkit::TestDb;

/// The tests' sealing key: a fixed one, so a test can attach it again as a restart would.
pub fn sealing_key() -> SealingKey {
    SealingKey::from_bytes(&[0x5e; signet_pki::seal::KEY_LEN]).unwrap()
}

/// Runs `test` on a fresh, migrated database of `backend`, then closes the store.
pub async fn on_backend<F, Fut>(backend: &str, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
    let store = store.with_sealing_key(sealing_key()).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
    test(store.clone()).await;
    store.close().await;
}

/// A storage test run once per backend, each its own test case (see
/// [`signet_testkit::backend_test`]).
macro_rules! backend_test {
    (multi_thread $workers:literal: $name:ident, $test:expr) => {
        signet_testkit::backend_test!(multi_thread $workers: $name, $crate::common::on_backend, $test);
    };
    ($name:ident, $per_backend:ident) => {
        signet_testkit::backend_test!($name, $per_backend);
    };
    ($name:ident, $test:expr) => {
        signet_testkit::backend_test!($name, $crate::common::on_backend, $test);
    };
}
pub(crate) use backend_test;
