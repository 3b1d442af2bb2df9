//! Hostile traffic against a running server: each probe an attacker (or a careless client)
//! made, replayed with the bound the server must now hold — memory through a flood of made-up
//! retrievals, no disk written by reading pages, slow sockets cut, one answer whichever
//! sign-in part was wrong, a per-client limit across accounts, and readiness that follows
//! the database away and back. Throughput under the flood is measured by `signet bench flood`,
//! not here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use signet_authority::ServerConfig;
use signet_ra::SystemClock;
use signet_testkit::TestDb;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::common::*;

/// One answer, read to the end of the connection.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The session cookie the answer set, as a `Cookie:` value.
    fn cookie(&self) -> Option<String> {
        self.header("set-cookie").map(|v| v.split(';').next().unwrap().to_owned())
    }

    fn csrf(&self) -> String {
        let at = self.body.find("name=\"_csrf\" value=\"").expect("a form token in the page") + 20;
        self.body[at..at + self.body[at..].find('"').unwrap()].to_owned()
    }
}

fn addr(base: &str) -> String {
    base.strip_prefix("http://").unwrap().to_owned()
}

/// Sends `request` (which asks for `Connection: close`) and reads the answer.
fn exchange(base: &str, request: &str) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr(base))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok(Reply { status, head: head.to_owned(), body: body.to_owned() })
}

fn get(base: &str, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    exchange(base, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{cookie}Connection: close\r\n\r\n")).unwrap()
}

fn post(base: &str, path: &str, content_type: &str, cookie: Option<&str>, body: &str) -> Reply {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\n{cookie}Content-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(base, &request).unwrap()
}

fn form(base: &str, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Reply {
    let body: String = fields
        .iter()
        .map(|(k, v)| {
            format!("{k}={}", v.replace('%', "%25").replace('&', "%26").replace('+', "%2B").replace(' ', "+"))
        })
        .collect::<Vec<_>>()
        .join("&");
    let reply = post(base, path, "application/x-www-form-urlencoded", Some(cookie), &body);
    // A form's page comes by Post/Redirect/Get: follow the redirect to the post's own address,
    // as a browser does, to read it (a visitor's cookie is the one the page was kept under).
    if reply.status == 303 && reply.header("location") == Some(path) {
        let cookie = reply.cookie().unwrap_or_else(|| cookie.to_owned());
        return get(base, path, Some(&cookie));
    }
    reply
}

/// A server on SQLite in `dir/data`, configured with `config` (TOML).
fn server(dir: &Path, config: &str) -> Server {
    let file = dir.join("signet.toml");
    std::fs::write(&file, config).unwrap();
    Server::start(&dir.join("data"), &[("SIGNET_CONFIG", file.to_str().unwrap())])
}

fn sql(dir: &Path, query: &str) -> String {
    must("sqlite3", &[dir.join("data/signet.db").to_str().unwrap(), query], &[]).trim().to_owned()
}

/// A `/proc/<pid>/status` figure in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
    line.trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[test]
fn made_up_retrievals_keep_memory_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    // The per-client limit would stop this flood at its 30th request; it is lifted here so the
    // flood reaches the password hashing it is meant to test.
    let server = server(tmp.path(), "[limits]\nsecret_attempts_per_minute = 1000000\n");
    let pid = server.child.id();
    let before = proc_kib(pid, "VmRSS:");
    let (next, statuses) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let flood: Vec<_> = (0..32)
        .map(|t| {
            let (base, next, statuses) = (server.base.clone(), next.clone(), statuses.clone());
            std::thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < 700 {
                    let body = format!(
                        r#"{{"application":"ECA-{t:02}{:06}","activation_code":"AAAA-BBBB-CCCC-DDDD","password":"guess-{t}","csr":"AAAA"}}"#,
                        next.load(Ordering::SeqCst)
                    );
                    let r = post(&base, "/api/v1/retrieval", "application/json", None, &body);
                    if r.status == 503 {
                        assert_eq!(r.header("retry-after"), Some("2"), "{}", r.head);
                    }
                    statuses.lock().unwrap().push(r.status);
                }
            })
        })
        .collect();
    // Meanwhile the server keeps answering what needs no password.
    let mut served_meanwhile = 0;
    while !flood.iter().all(|t| t.is_finished()) {
        assert_eq!(get(&server.base, "/ca/chain.pem", None).status, 200);
        served_meanwhile += 1;
    }
    for t in flood {
        t.join().unwrap();
    }
    let statuses = statuses.lock().unwrap();
    assert_eq!(statuses.len(), 700);
    let refused = statuses.iter().filter(|s| **s == 403).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(refused + busy, 700, "only refusals and 'busy': {statuses:?}");
    assert!(refused > 0, "some guesses were checked");
    let peak = proc_kib(pid, "VmHWM:");
    eprintln!(
        "700 made-up retrievals at concurrency 32: {refused} refused, {busy} busy; RSS {before} KiB before, peak \
         {peak} KiB; {served_meanwhile} other requests served meanwhile"
    );
    assert!(peak < 300 * 1024, "peak RSS {peak} KiB");
    assert!(served_meanwhile > 0);
}

#[test]
fn reading_pages_stores_no_session_until_a_form_is_posted() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path(), "");
    for round in 0..40 {
        for path in ["/", "/apply", "/console/sign-in", "/cmc/sign-in", "/password-reset"] {
            let r = get(&server.base, path, None);
            assert_eq!(r.status, 200, "{path} round {round}");
            assert!(r.cookie().is_some(), "a cookie to post the form back with");
        }
    }
    assert_eq!(sql(tmp.path(), "SELECT COUNT(*) FROM web_sessions"), "0", "200 page loads wrote nothing");

    // A failed sign-in saves nothing either, yet its form worked: the token rides on the cookie.
    let page = get(&server.base, "/", None);
    let cookie = page.cookie().unwrap();
    let refused = form(
        &server.base,
        "/applications/sign-in",
        &cookie,
        &[("_csrf", &page.csrf()), ("reference", "ECA-000000"), ("password", "not it")],
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(sql(tmp.path(), "SELECT COUNT(*) FROM web_sessions"), "0");
    // A made-up cookie with a made-up form token is a forged post.
    let forged = form(&server.base, "/applications/sign-in", "signet_session=planted", &[("_csrf", "x")]);
    assert_eq!(forged.status, 403);

    // The wizard's first step saves a draft: now there is one row, under a token the server
    // chose, so a cookie planted before it names nothing stored; the next step reads the draft.
    let start = get(&server.base, "/apply", None);
    let planted = start.cookie().unwrap();
    let program = start.body.split("<option value=\"").nth(2).and_then(|o| o.split('"').next()).unwrap().to_owned();
    let fields = [("_csrf", start.csrf()), ("program", program), ("residency", "united-states".into())];
    let fields: Vec<_> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = form(&server.base, "/apply", &planted, &fields);
    assert_eq!(saved.status, 303, "{}", saved.body);
    let stored = saved.cookie().expect("the stored session's cookie");
    assert_ne!(stored, planted);
    assert_eq!(sql(tmp.path(), "SELECT COUNT(*) FROM web_sessions"), "1");
    assert_eq!(get(&server.base, "/apply/agencies", Some(&stored)).status, 200, "the draft is found");
    let stale = get(&server.base, "/apply/agencies", Some(&planted));
    assert_ne!(stale.status, 200, "the planted cookie holds no draft: {}", stale.status);
}

/// Whether the server closed `s` (EOF) before `limit`; what it sent first, if anything.
fn closed_within(s: &mut TcpStream, limit: Duration) -> (bool, String) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let closed = s.read_to_end(&mut got).is_ok();
    (closed, String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn slow_and_idle_sockets_are_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let server =
        server(tmp.path(), "[limits]\nheader_timeout_seconds = 1\nrequest_timeout_seconds = 2\nmax_connections = 6\n");
    let connect = || TcpStream::connect(addr(&server.base)).unwrap();

    // An idle connection, and one whose headers trickle in a byte at a time.
    let mut idle = connect();
    let mut trickle = connect();
    let started = Instant::now();
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: " {
        if trickle.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (closed, _) = closed_within(&mut trickle, Duration::from_secs(5));
    assert!(closed, "trickled headers still open after {:?}", started.elapsed());
    let (closed, _) = closed_within(&mut idle, Duration::from_secs(5));
    assert!(closed, "idle connection still open after {:?}", started.elapsed());

    // Bodies trickled to OCSP and to retrieval: 408, then the connection closes.
    for (path, kind) in [("/ocsp", "application/ocsp-request"), ("/api/v1/retrieval", "application/json")] {
        let mut s = connect();
        let started = Instant::now();
        write!(s, "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {kind}\r\nContent-Length: 4000\r\n\r\n").unwrap();
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                for _ in 0..40 {
                    if s.write_all(b"{").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        let (closed, answer) = closed_within(&mut s, Duration::from_secs(8));
        assert!(closed, "{path}: still open after {:?}", started.elapsed());
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        writer.join().unwrap();
    }

    // At the connection cap a new client waits until a slot frees (here: until the held
    // connections' header deadline cuts them), then is served.
    let held: Vec<_> = (0..6).map(|_| connect()).collect();
    let waited = Instant::now();
    let r = get(&server.base, "/healthz", None);
    assert_eq!(r.status, 200);
    assert!(waited.elapsed() >= Duration::from_millis(500), "served at once past the cap: {:?}", waited.elapsed());
    drop(held);
}

/// The operator's TOTP code now (oathtool, SHA-256, 8 digits).
fn code(secret: &str, offset_steps: i64) -> String {
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
        + 30 * offset_steps;
    must("oathtool", &["--totp=sha256", "--digits", "8", "-b", "--now", &format!("@{at}"), secret], &[])
        .trim()
        .to_owned()
}

#[test]
fn a_wrong_password_and_a_wrong_code_get_one_answer() {
    const PASSWORD: &str = "Lantern-Fjord-Cobalt-27";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let created = must(
        SIGNET,
        &[
            "admin",
            "operator",
            "create",
            "--data-dir",
            data.to_str().unwrap(),
            "--id",
            "alice",
            "--name",
            "Alice Example",
            "--role",
            "ra-operator",
            "--totp-algorithm",
            "sha256",
            "--totp-digits",
            "8",
        ],
        &[("SIGNET_OPERATOR_PASSWORD", PASSWORD)],
    );
    let secret = created.lines().find_map(|l| l.strip_prefix("secret: ")).unwrap().to_owned();
    let server = server(tmp.path(), "");
    let page = get(&server.base, "/console/sign-in", None);
    let (cookie, csrf) = (page.cookie().unwrap(), page.csrf());
    let try_sign_in = |password: &str, code: &str| {
        form(
            &server.base,
            "/console/sign-in",
            &cookie,
            &[("_csrf", &csrf), ("operator", "alice"), ("password", password), ("code", code)],
        )
    };
    // A code from an hour ago is wrong whatever the password.
    let stale = code(&secret, -120);
    let wrong_password = try_sign_in("Quill-Harbor-Sextant-59", &code(&secret, 0));
    let wrong_code = try_sign_in(PASSWORD, &stale);
    let unknown = form(
        &server.base,
        "/console/sign-in",
        &cookie,
        &[("_csrf", &csrf), ("operator", "alice"), ("password", "Quill-Harbor-Sextant-59"), ("code", &stale)],
    );
    for r in [&wrong_password, &wrong_code, &unknown] {
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert_eq!(wrong_password.body, wrong_code.body, "the page is the same whichever part was wrong");
    assert_eq!(wrong_code.body, unknown.body);
    assert!(wrong_code.body.contains("The sign-in details are not correct."));

    // The fifth failure locks, whichever parts were wrong; the lock reads the same.
    let fourth = try_sign_in(PASSWORD, &stale);
    assert_eq!(fourth.status, 401);
    let fifth = try_sign_in("Quill-Harbor-Sextant-59", &stale);
    assert_eq!(fifth.status, 423, "{}", fifth.body);
    assert!(fifth.body.contains("Too many failed attempts"), "{}", fifth.body);
    let counted = sql(tmp.path(), "SELECT scope || ' ' || failures FROM login_attempts WHERE subject = 'alice'");
    assert_eq!(counted, "operator-password 5", "one counter for every part");
}

#[test]
fn one_client_guessing_across_accounts_is_slowed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path(), "[limits]\nsecret_attempts_per_minute = 5\n");
    let page = get(&server.base, "/", None);
    let (cookie, csrf) = (page.cookie().unwrap(), page.csrf());
    for n in 0..5 {
        let reference = format!("ECA-{n:06}");
        let r = form(
            &server.base,
            "/applications/sign-in",
            &cookie,
            &[("_csrf", &csrf), ("reference", &reference), ("password", "Summer2026!")],
        );
        assert_eq!(r.status, 401, "guess {n}: {}", r.body);
    }
    let sixth = form(
        &server.base,
        "/applications/sign-in",
        &cookie,
        &[("_csrf", &csrf), ("reference", "ECA-000099"), ("password", "Summer2026!")],
    );
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    let wait: u64 = sixth.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    assert!(sixth.body.contains("Too many attempts") && sixth.body.contains("seconds"), "{}", sixth.body);

    // The API answers in its own shape; a forwarded-for header from an untrusted peer changes
    // nothing.
    let api = exchange(
        &server.base,
        "POST /api/v1/retrieval HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.7\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(api.status, 429, "{}", api.body);
    assert!(api.header("content-type").unwrap().starts_with("application/problem+json"));
    assert!(api.header("retry-after").is_some());
    // Reading pages is not limited.
    assert_eq!(get(&server.base, "/", None).status, 200);
}

// `/readyz` tells the truth about the database: a server on PostgreSQL answers 503 within 2 s
// of its database refusing connections (existing ones terminated, new ones refused) and 200
// again once the database takes connections, without a restart. `/healthz` stays 200
// throughout: the process is alive. SQLite's readiness (and its files' modes) is checked in
// `cli.rs`.

async fn curl_get(base: &str, path: &str) -> (u16, String) {
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
    assert_eq!(curl_get(&base, "/readyz").await, (200, "ready".into()));

    // The database goes away: no new connections, the pool's connections cut.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await;
    admin(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")).await;
    let asked = Instant::now();
    let (code, body) = curl_get(&base, "/readyz").await;
    let took = asked.elapsed();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("database"), "{body}");
    assert!(took < Duration::from_millis(2500), "503 took {took:?}");
    assert_eq!(curl_get(&base, "/healthz").await, (200, "ok".into()), "the process is alive");

    // Back: the same process is ready again.
    admin(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    let back = Instant::now();
    loop {
        let (code, body) = curl_get(&base, "/readyz").await;
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
