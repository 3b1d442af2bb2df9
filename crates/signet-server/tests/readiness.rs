//! `/readyz` tells the truth about the database: a server on PostgreSQL answers 503 within
//! 2 s of its database refusing connections (existing ones terminated, new ones refused) and
//! 200 again once the database takes connections, without a restart. `/healthz` stays 200
//! throughout: the process is alive. SQLite's readiness (and its files' modes) is checked
//! through the `signet` binary in `crates/signet/tests/cli.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use signet_ra::SystemClock;
use signet_server::ServerConfig;
use signet_testkit::TestDb;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

async fn get(base: &str, path: &str) -> (u16, String) {
    let url = format!("{base}{path}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl").args(["-s", "-m", "10", "-w", "\n%{http_code}", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap_or(0), body.to_owned())
}

async fn admin(sql: String) {
    let url =
        std::env::var("SIGNET_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_postgres_database_away_and_back() {
    let db = TestDb::new("postgres").await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let settings = ServerConfig {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        database_url: Some(db.url.clone()),
        ..Default::default()
    }
    .into_settings()
    .unwrap();
    let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await.unwrap();
    let base = running.base_url.clone();
    assert_eq!(get(&base, "/readyz").await, (200, "ready".into()));

    // The database goes away: no new connections, the pool's connections cut.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")).await;
    let asked = Instant::now();
    let (code, body) = get(&base, "/readyz").await;
    let took = asked.elapsed();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert!(took < Duration::from_millis(2500), "503 took {took:?}");
    assert_eq!(get(&base, "/healthz").await, (200, "ok".into()), "the process is alive");

    // Back: the same process is ready again.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let back = Instant::now();
    loop {
        let (code, body) = get(&base, "/readyz").await;
        if code == 200 {
            assert_eq!(body, "ready");
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "still {code} {body} after the database returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.jobs.stop().await;
    running.task.abort();
}
