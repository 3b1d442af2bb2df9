//! Signet's storage: the only crate that touches the database.
//!
//! What it does: one set of repositories over sqlx's `Any` driver, so the same SQL runs on
//! SQLite (the embedded default) and PostgreSQL (several nodes); migrations per backend;
//! every writing transaction appends to the hash-chained audit log, to a lane of its own
//! store so that nodes never wait on a common chain head (`audit`); on SQLite, the log copied
//! back beside the CA writer's commits rather than in them (`checkpoints`); TOTP seeds sealed
//! at rest under the CA folder's sealing key (`seeds`). Implements the storage
//! traits the domain declares (`signet_ra::issuance::CaStore`,
//! `signet_ra::application::ApplicationStore`, `signet_ra::operator::OperatorStore`,
//! `signet_ra::lockout::AttemptStore`, `signet_ra::acme::AcmeStore`, `signet_ra::cmc::SoftTokenStore`,
//! `signet_ra::enterprise::EnterpriseStore`, `signet_ra::password_reset::PasswordResetStore`,
//! `signet_ra::key_recovery::KeyRecoveryStore`, `signet_ra::witness::WitnessStore`,
//! `signet_ra::token_stock::TokenStockStore`, `signet_ra::repository::RepositoryStore`),
//! the outbox the mail relay drains, and the
//! leases and delivery bookkeeping of the background jobs.
//!
//! What it does not do: no domain rules (those live in `signet-ra`), no HTTP.

mod acme;
mod applications;
mod audit;
mod ca;
mod ca_writes;
mod checkpoints;
mod cmc;
mod console;
mod enterprise;
mod figures;
mod jobs;
mod key_recovery;
mod operators;
mod organizations;
mod passkeys;
mod password_reset;
mod repository;
pub mod request;
mod seeds;
mod sessions;
mod token_stock;
mod witness;
mod write_turns;

pub use applications::QueuedMessage;
pub use ca::CertificateRecord;
pub use ca_writes::{CaWrite, CaWriter, PendingWrite, Written};
pub use checkpoints::CHECKPOINT_EVERY;
pub use cmc::AccountCertificate;
pub use console::{QueueFilter, QueuePage, StateFilter};
pub use figures::{OperatingFigures, PoolUse};
pub use sessions::SessionRecord;

use std::str::FromStr;

use signet_ra::audit::AuditEvent;
use signet_ra::issuance::StoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The database, migrated and ready.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Seals and opens TOTP seeds and the pages sessions keep for their next GET; without it
    /// operators and soft tokens are out of reach and no page is kept.
    sealing: Option<std::sync::Arc<signet_pki::seal::SealingKey>>,
    /// The audit lane this store appends to.
    lane: audit::Lane,
    /// On SQLite, where this process's writers queue for the database's one write lock.
    turns: write_turns::WriteTurns,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("database URL must start with sqlite: or postgres:")]
    UnsupportedUrl,
    /// Connecting failed.
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The TOTP seeds an earlier version stored in clear could not be sealed.
    #[error("sealing the TOTP seeds stored in clear failed: {0}")]
    SealSeeds(StoreError),
}

/// An operator API key as stored (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Unique name, used as the audit actor.
    pub name: String,
    /// `ra-operator` or `ra-administrator`.
    pub role: String,
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates `path` empty and owner-only if it does not exist, so SQLite never creates it
/// under the process umask.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the database file and its -wal and -shm companions owner-only.
fn restrict_sqlite_files(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(crate) fn backend_error(e: sqlx::Error) -> StoreError {
    // The message goes to logs only; callers show users a generic failure.
    StoreError::Backend(e.to_string())
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`. A
    /// `postgres:` URL's TLS parameters (`sslmode`, `sslrootcert`, …) pass through to the driver.
    /// Operators and soft tokens also need [`Store::with_sealing_key`].
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(OpenError::UnsupportedUrl);
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_owned(),
        };
        let sqlite_file = (backend == Backend::Sqlite).then(|| sqlite_path(&url)).flatten();
        if let Some(path) = &sqlite_file {
            create_private(path).map_err(|e| OpenError::Connect(sqlx::Error::Io(e)))?;
        }
        let options = AnyConnectOptions::from_str(&url).map_err(OpenError::Connect)?;
        // One plain connection first: the pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out, where the operator
        // needs the cause (refused, unknown database, bad password) at once.
        AnyConnection::connect_with(&options)
            .await
            .map_err(OpenError::Connect)?
            .close()
            .await
            .map_err(OpenError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            // A SQLite connection is a file in this process and cannot go stale; checking it on
            // every acquire costs a round trip to its thread. A PostgreSQL connection can.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets OCSP reads proceed during writes; the busy timeout makes a
                        // second writer wait instead of failing; the CA's writer has the log
                        // checkpointed beside its commits (`checkpoints`). A statement that
                        // changes many rows inside a transaction keeps the pages it changes, to
                        // undo it alone; kept in memory (a few MB for the largest group), they
                        // do not spill into a temporary file created and deleted each time. The
                        // setting keeps SQLite's sorts and temporary tables in memory too: every
                        // query here that sorts reads its whole result into memory anyway.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {};",
                            checkpoints::AUTOCHECKPOINT_PAGES
                        )))
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(OpenError::Connect)?;
        let store = Self {
            pool,
            backend,
            sealing: None,
            lane: audit::Lane::new(),
            turns: write_turns::WriteTurns::of_backend(backend),
        };
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&store.pool).await.map_err(OpenError::Migrate)?;
        if let Some(path) = &sqlite_file {
            // SQLite gives the -wal and -shm files the database file's mode, but a file
            // created before this version (or by another tool) may be looser: the database
            // holds TOTP seeds and password hashes, so whatever the umask it is owner-only.
            restrict_sqlite_files(path).map_err(|e| OpenError::Connect(sqlx::Error::Io(e)))?;
        }
        Ok(store)
    }

    /// Whether the database answers a trivial query now (readiness checks). The caller
    /// bounds the wait: a pool whose server is gone waits for its acquire timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await.map_err(backend_error)?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for administrative SQL in tests and tools.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes all connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a new operator API key by the SHA-256 of its token.
    pub async fn create_api_key(&self, key: &ApiKey, token_sha256: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let (name, role, hash, at) =
            (key.name.clone(), key.role.clone(), token_sha256.to_owned(), event.at.unix_timestamp());
        self.audited(event, move |c| {
            Box::pin(async move {
                sqlx::query("INSERT INTO api_keys (name, token_sha256, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(name)
                    .bind(hash)
                    .bind(role)
                    .bind(at)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| unique_or(e, "api key name"))?;
                Ok(())
            })
        })
        .await
    }

    /// Finds the API key whose token hashes to `token_sha256`.
    pub async fn api_key_by_hash(&self, token_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query("SELECT name, role FROM api_keys WHERE token_sha256 = $1")
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_error)?;
        row.map(|r| Ok(ApiKey { name: r.try_get(0)?, role: r.try_get(1)? })).transpose().map_err(backend_error)
    }
}

pub(crate) fn unique_or(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend_error(e),
    }
}
