//! Runs a storage test once per backend, each time on a fresh, migrated database whose store
//! seals TOTP seeds under [`sealing_key`].

use signet_pki::seal::SealingKey;
use signet_store::Store;
use signet_testkit::{BACKENDS, TestDb};

/// The tests' sealing key: a fixed one, so a test can attach it again as a restart would.
pub fn sealing_key() -> SealingKey {
    SealingKey::from_bytes(&[0x5e; signet_pki::seal::KEY_LEN]).unwrap()
}

pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        let store = store.with_sealing_key(sealing_key()).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        test(store.clone()).await;
        store.close().await;
    }
}
