//! Runs a storage test once per backend, each time on a fresh, migrated database.

use signet_store::Store;
use signet_testkit::{BACKENDS, TestDb};

pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.unwrap_or_else(|e| panic!("{backend}: {e}"));
        test(store.clone()).await;
        store.close().await;
    }
}
