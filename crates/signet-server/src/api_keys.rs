//! Operator API keys verified in the last few seconds, so an RA client sending many requests
//! is not looked up in the database for each of them. Only keys that exist are kept (a stranger's
//! guesses cannot fill it), and each for [`KEEP`]: a key removed from the database stops working
//! on every node within that time. Nothing here decides who an operator is; the store does.

use std::collections::HashMap;
use std::sync::Mutex;

use signet_ra::Clock;
use signet_ra::issuance::StoreError;
use signet_store::{ApiKey, Store};
use time::{Duration, OffsetDateTime};

/// How long a verified key is trusted without asking the database again.
const KEEP: Duration = Duration::seconds(30);
/// More keys than any deployment has; past it, lapsed entries go first, then all.
const MAX_KEYS: usize = 1024;

/// The cache, one per server.
#[derive(Default)]
pub(crate) struct ApiKeys {
    verified: Mutex<HashMap<String, (ApiKey, OffsetDateTime)>>,
}

impl ApiKeys {
    /// The key whose token hashes to `token_sha256`, from the cache if it was verified within
    /// [`KEEP`], else from `store`.
    pub(crate) async fn find(
        &self,
        store: &Store,
        clock: &dyn Clock,
        token_sha256: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let now = clock.now();
        if let Some((key, at)) = self.lock().get(token_sha256)
            && now < *at + KEEP
        {
            return Ok(Some(key.clone()));
        }
        let found = store.api_key_by_hash(token_sha256).await?;
        let mut verified = self.lock();
        match &found {
            Some(key) => {
                if verified.len() >= MAX_KEYS {
                    verified.retain(|_, (_, at)| now < *at + KEEP);
                    if verified.len() >= MAX_KEYS {
                        verified.clear();
                    }
                }
                verified.insert(token_sha256.to_owned(), (key.clone(), now));
            }
            None => {
                verified.remove(token_sha256);
            }
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ApiKey, OffsetDateTime)>> {
        // The map holds no invariant a panicking holder could break.
        self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use signet_ra::FakeClock;
    use signet_ra::audit::{AuditAction, AuditEvent};
    use time::macros::datetime;

    use super::*;

    // A key removed from the database still works until its cache entry lapses, and not after;
    // a token no key has is never kept.
    #[tokio::test]
    async fn a_removed_key_stops_working_once_its_entry_lapses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}/signet.db", dir.path().display())).await.unwrap();
        let clock = FakeClock::at(datetime!(2026-12-06 12:00 UTC));
        let key = ApiKey { name: "ra1".into(), role: "ra-operator".into() };
        let event = AuditEvent::new(clock.now(), "test", AuditAction::ApiKeyCreated, "ra1", serde_json::json!({}));
        store.create_api_key(&key, "h1", &event).await.unwrap();
        let keys = ApiKeys::default();

        assert_eq!(keys.find(&store, &clock, "h1").await.unwrap(), Some(key.clone()));
        assert_eq!(keys.find(&store, &clock, "guess").await.unwrap(), None);
        assert_eq!(keys.lock().len(), 1, "only the key that exists is kept");

        sqlx::query("DELETE FROM api_keys").execute(store.pool()).await.unwrap();
        clock.advance(KEEP - Duration::seconds(1));
        assert_eq!(keys.find(&store, &clock, "h1").await.unwrap(), Some(key), "still within its time");
        clock.advance(Duration::seconds(1));
        assert_eq!(keys.find(&store, &clock, "h1").await.unwrap(), None, "asked the database again");
        assert!(keys.lock().is_empty(), "and forgot it");
    }
}
