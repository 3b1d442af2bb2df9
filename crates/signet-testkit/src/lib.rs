//! Test support: a fresh, empty database per test on either backend (zero2prod's
//! `spawn_app` pattern), so storage tests run the same suite on SQLite and PostgreSQL.
//!
//! PostgreSQL is reached at `SIGNET_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); CI starts the server. Also a SoftHSM2
//! configuration per test and a YubiKey-like attestation hierarchy ([`attestation`]). Not for
//! production code.

pub mod attestation;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The backends a suite runs on.
pub const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// Declares a test that runs once per backend, each its own test case (`NAME::sqlite`,
/// `NAME::postgres`), so a failure on one backend does not hide the other's result. Either
/// `backend_test!(NAME, per_backend)`, where `per_backend(backend)` is the whole test, or
/// `backend_test!(NAME, runner, test)`, where `runner(backend, test)` opens what `test` needs
/// on that backend and runs it; `multi_thread N:` before NAME runs it on N worker threads.
#[macro_export]
macro_rules! backend_test {
    (multi_thread $workers:literal: $name:ident, $runner:path, $test:expr) => {
        $crate::backend_test!(
            @with [tokio::test(flavor = "multi_thread", worker_threads = $workers)] $name,
            backend => $runner(backend, $test)
        );
    };
    ($name:ident, $per_backend:path) => {
        $crate::backend_test!(@with [tokio::test] $name, backend => $per_backend(backend));
    };
    ($name:ident, $runner:path, $test:expr) => {
        $crate::backend_test!(@with [tokio::test] $name, backend => $runner(backend, $test));
    };
    (@with [$($attr:tt)*] $name:ident, $backend:ident => $run:expr) => {
        mod $name {
            // The test body names what its file imports (helpers, types) or nothing at all.
            #[allow(unused_imports)]
            use super::*;

            #[$($attr)*]
            async fn sqlite() {
                let $backend = "sqlite";
                $run.await
            }

            #[$($attr)*]
            async fn postgres() {
                let $backend = "postgres";
                $run.await
            }
        }
    };
}

/// A database that exists for one test and is dropped after it.
#[derive(Debug)]
pub struct TestDb {
    /// The URL to open.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("SIGNET_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    SystemRandom::new().fill(&mut b).expect("rng");
    hex::encode(b)
}

impl TestDb {
    /// A new empty database on `backend` ("sqlite" or "postgres").
    pub async fn new(backend: &str) -> Self {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/signet.db", dir.path().display());
                Self { url, pg_name: None, _dir: Some(dir) }
            }
            "postgres" => {
                let name = format!("signet_test_{}", random_suffix());
                let admin = admin_url();
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test: {e}"));
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
                Self { url: format!("{base}/{name}"), pg_name: Some(name), _dir: None }
            }
            other => panic!("unknown backend {other}"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin_url()).await {
                        let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                            .execute(&mut c)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Splits `pkcs11-tool -O` output into objects: each starts on an unindented line.
pub fn pkcs11_objects(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in listing.lines() {
        match out.last_mut() {
            Some(object) if line.starts_with(' ') => {
                object.push('\n');
                object.push_str(line);
            }
            _ => out.push(line.to_owned()),
        }
    }
    out
}

/// Writes a SoftHSM2 configuration whose token directory is `<dir>/tokens` (created) and
/// returns its path, for `SOFTHSM2_CONF`. Tokens made under it vanish with `dir`.
pub fn softhsm_conf(dir: &std::path::Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .expect("softhsm2.conf");
    conf
}
