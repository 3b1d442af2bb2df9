//! Issuance over HTTP, the server as a black box: `POST /api/v1/certificates` on an in-process
//! node against raw signing with its CA key on every core and against `cfssl serve` under the
//! same load; optionally two nodes on one PostgreSQL database, with what its sessions wait on
//! sampled from `pg_stat_activity` while they issue.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use bytes::Bytes;
use serde::Serialize;
use signet_authority::Settings;
use signet_authority::metrics::Metrics;
use signet_pki::KeyAlgorithm;
use signet_pki::issue::CertificateOrder;
use signet_ra::SystemClock;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_server::{Running, token_hash};
use signet_store::{ApiKey, Store};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use tokio::process::{Child, Command};
use tokio::time::MissedTickBehavior;

use super::acme::ready_orders;
use super::figures::{Figure, Measured, Out, grouped, render};
use super::http::{Target, http_load, probe};
use super::issuance::raw_sign;
use super::messages::fresh_csrs;
use super::setup::{bench_order, bench_settings, make_dev_ca, server_ca, stop_node};
use super::{ACTOR, BoxError, PROFILE, ROUNDS, SETTLE, cores, parse_seconds};

// cfssl's CA is RSA-2048 as well, so both servers pay for the same kind of signature.
const KEY: KeyAlgorithm = KeyAlgorithm::Rsa2048;
// The goals set for issuance over HTTP, shown in the DESIGN §5 column: on SQLite at least half
// of what the CA key signs on every core, and 2.5× cfssl serve on the same machine; with two
// nodes on PostgreSQL (the database, both nodes and the load on the same cores) a quarter; a
// p99 within 50 ms for both.
const RAW_BAR: f64 = 0.5;
const RAW_BAR_POSTGRES_PAIR: f64 = 0.25;
const CFSSL_BAR: f64 = 2.5;
const P99_BAR: Duration = Duration::from_millis(50);
const CFSSL_CA_CSR: &str =
    r#"{"CN":"Signet Bench cfssl CA","key":{"algo":"rsa","size":2048},"names":[{"O":"Signet Benchmarks"}]}"#;
const CFSSL_READY_WITHIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);
// Idle sessions are pooled connections between requests, and the sampler's own is no node's.
const ACTIVITY: &str = "SELECT wait_event_type, wait_event, query FROM pg_stat_activity \
                        WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()";

#[derive(clap::Args, Clone)]
pub(super) struct HttpIssuanceArgs {
    /// Seconds of load per server.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub(super) seconds: f64,
    /// Concurrent keep-alive connections (split between the two nodes on PostgreSQL).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(super) connections: u64,
    /// The cfssl program (Debian: apt-get install golang-cfssl); without it the cfssl
    /// comparison is skipped.
    #[arg(long, default_value = "cfssl")]
    pub(super) cfssl: PathBuf,
    /// Also run two nodes on this PostgreSQL database (postgres://…) and sample what its
    /// sessions wait on. Their certificates and audit rows stay in it: use a scratch database.
    #[arg(long)]
    pub(super) database_url: Option<String>,
}

pub(super) async fn http_issuance(args: &HttpIssuanceArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let dir = tempfile::tempdir()?;
    // One data folder for every node, so that the nodes and the baseline sign with one CA key.
    let settings = bench_settings(&dir.path().join("node"), None)?;
    make_dev_ca(&settings.data_dir.join("ca"), KEY, &settings.catalog)?;
    let mut nodes = vec![signet_server::spawn(&settings, Arc::new(SystemClock)).await?];
    let result = measure(&mut nodes, &settings, dir.path(), args, out).await;
    for node in nodes {
        stop_node(node).await;
    }
    result
}

/// The servers under load.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Cfssl,
    Sqlite,
    /// ACME finalize on the SQLite node.
    AcmeSqlite,
    /// Two nodes on one PostgreSQL database, the connections split between them.
    PostgresPair,
}

impl Server {
    fn case(self) -> &'static str {
        match self {
            Server::Cfssl => "cfssl",
            Server::Sqlite => "signet-sqlite",
            Server::AcmeSqlite => "signet-sqlite-acme-finalize",
            Server::PostgresPair => "signet-postgres-2-nodes",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Server::Cfssl => "cfssl serve POST /api/v1/cfssl/sign",
            Server::Sqlite => "signet POST /api/v1/certificates, SQLite",
            Server::AcmeSqlite => "signet ACME finalize, SQLite",
            Server::PostgresPair => "signet POST /api/v1/certificates, 2 nodes, PostgreSQL",
        }
    }
}

struct Case {
    server: Server,
    addrs: Vec<SocketAddr>,
    target: Arc<Target>,
    load: Measured,
    /// The nodes' figures (none for cfssl), and the CA transactions and the writes they held
    /// during this case's slices.
    metrics: Vec<Arc<Metrics>>,
    transactions: (u64, u64),
}

impl Case {
    /// The nodes' CA transactions and writes so far.
    fn ca_transactions(&self) -> (u64, u64) {
        self.metrics.iter().map(|m| m.ca_transactions()).fold((0, 0), |(t, w), (dt, dw)| (t + dt, w + dw))
    }

    /// A note on how many writes each transaction held, for a case on Signet nodes.
    fn group_note(&self) -> Option<String> {
        let (transactions, writes) = self.transactions;
        (transactions > 0).then(|| {
            format!(
                "{}: {:.1} writes per CA transaction ({} writes in {} transactions during its slices)",
                self.server.label(),
                writes as f64 / transactions as f64,
                grouped(writes as f64),
                grouped(transactions as f64)
            )
        })
    }
}

async fn measure(
    nodes: &mut Vec<Running>,
    settings: &Settings,
    dir: &Path,
    args: &HttpIssuanceArgs,
    out: &Out,
) -> Result<Vec<Figure>, BoxError> {
    let cores = cores();
    let n = args.connections;
    let ca = server_ca(settings, &nodes[0].base_url)?;
    let sqlite_key = operator_key(nodes[0].state.store()).await?;
    // The same logging for both servers: Signet's nodes log each issuance at info, cfssl each
    // signature at its level 1.
    let log_requests = tracing::enabled!(target: "signet_server", tracing::Level::INFO);
    let cfssl = Cfssl::start(&args.cfssl, dir, log_requests).await?;
    let mut postgres = None;
    if let Some(url) = &args.database_url {
        let settings = bench_settings(&settings.data_dir, Some(url))?;
        // The second node loads the CA the first one (and the SQLite node) uses.
        for _ in 0..2 {
            nodes.push(signet_server::spawn(&settings, Arc::new(SystemClock)).await?);
        }
        let key = operator_key(nodes[1].state.store()).await?;
        let sampler = PgConnection::connect(url).await.map_err(|e| format!("{url}: {e}"))?;
        postgres = Some((key, sampler));
    }

    // No server issues faster than its key signs on every core, so that rate, with a margin
    // for noise, bounds how many requests a case can send.
    let bound = raw_sign(&ca, cores, Duration::from_millis(300)).await?;
    let per_case = (bound.ops as f64 / bound.elapsed.as_secs_f64() * args.seconds * 1.5) as usize + 1;
    let order = bench_order()?;
    let t = Instant::now();
    let mut cases = Vec::new();
    if let Some(cfssl) = &cfssl {
        let bodies = csr_pems(usize::try_from(n)?)?
            .into_iter()
            .map(|pem| Ok(Bytes::from(serde_json::to_vec(&serde_json::json!({ "certificate_request": pem }))?)))
            .collect::<Result<_, serde_json::Error>>()?;
        cases.push(Case {
            server: Server::Cfssl,
            addrs: vec![cfssl.addr],
            target: Arc::new(Target::CfsslSign(bodies)),
            load: Measured::default(),
            metrics: Vec::new(),
            transactions: (0, 0),
        });
    }
    cases.push(Case {
        server: Server::Sqlite,
        addrs: vec![nodes[0].addr],
        target: Arc::new(issue_target(&sqlite_key, &order, per_case)?),
        load: Measured::default(),
        metrics: vec![nodes[0].state.metrics.clone()],
        transactions: (0, 0),
    });
    // A finalize does all an API issuance does and more (a JWS, nonces, the order), and goes at
    // well under a third of what the key signs: a quarter of the bound serves, and each order
    // made ready costs the setup two transactions.
    let finalize = ready_orders(nodes[0].state.store(), &nodes[0].base_url, per_case / 4).await?;
    cases.push(Case {
        server: Server::AcmeSqlite,
        addrs: vec![nodes[0].addr],
        target: Arc::new(Target::AcmeFinalize(finalize, AtomicUsize::new(0))),
        load: Measured::default(),
        metrics: vec![nodes[0].state.metrics.clone()],
        transactions: (0, 0),
    });
    if let Some((key, _)) = &postgres {
        cases.push(Case {
            server: Server::PostgresPair,
            addrs: vec![nodes[1].addr, nodes[2].addr],
            target: Arc::new(issue_target(key, &order, per_case)?),
            load: Measured::default(),
            metrics: vec![nodes[1].state.metrics.clone(), nodes[2].state.metrics.clone()],
            transactions: (0, 0),
        });
    }
    let csr_seconds = t.elapsed().as_secs_f64();
    for case in &cases {
        for &addr in &case.addrs {
            probe(addr, &case.target, case.server.case()).await?;
        }
    }

    let slice = Duration::from_secs_f64(args.seconds) / ROUNDS as u32;
    let raw_half = slice / 4;
    let mut raw = Measured::default();
    let mut waits = Waits::default();
    for _ in 0..ROUNDS {
        for case in &mut cases {
            raw.merge(raw_sign(&ca, cores, raw_half).await?);
            let before = case.ca_transactions();
            let load = match &mut postgres {
                Some((_, sampler)) if case.server == Server::PostgresPair => {
                    load_sampled(sampler, &mut waits, &case.addrs, case.target.clone(), n, slice).await?
                }
                _ => http_load(&case.addrs, case.target.clone(), n, slice).await?,
            };
            case.load.merge(load);
            let after = case.ca_transactions();
            case.transactions.0 += after.0 - before.0;
            case.transactions.1 += after.1 - before.1;
            tokio::time::sleep(SETTLE).await;
            raw.merge(raw_sign(&ca, cores, raw_half).await?);
        }
    }
    let cfssl_note = match cfssl {
        Some(cfssl) => {
            let note = format!(
                "cfssl {}: an RSA-2048 CA from `cfssl genkey -initca`, its default signing policy; it stores nothing, so one CSR per connection serves",
                cfssl.version
            );
            cfssl.stop().await;
            note
        }
        None => format!(
            "cfssl not found ({}): the cfssl comparison is skipped; install it with `apt-get install golang-cfssl` or pass --cfssl PATH",
            args.cfssl.display()
        ),
    };
    if let Some((_, sampler)) = postgres {
        sampler.close().await.map_err(|e| format!("closing the pg_stat_activity sampler: {e}"))?;
    }

    let group_notes: Vec<String> = cases.iter().filter_map(Case::group_note).collect();
    let figs = figures(raw, cases, n);
    let mut notes = vec![
        format!(
            "{n} keep-alive connections over loopback HTTP/1.1, {:.1} s per server in {ROUNDS} rounds, each slice between two halves of raw signing on every core",
            args.seconds
        ),
        format!(
            "each Signet request certifies a fresh P-256 key (profile {PROFILE}, operator API key; {csr_seconds:.2} s to make the CSRs and the ready ACME orders, untimed)"
        ),
        "each ACME finalize is a JWS (ES256) over the last answer's nonce, for an order of one name made ready through the store (the bench stands in for the challenges), and is compared with the API on the same node".into(),
        cfssl_note,
        format!(
            "the load generator shares the {cores} cores with the servers; every response is checked for a certificate"
        ),
    ];
    notes.extend(group_notes);
    out.figures(&format!("HTTP issuance — CA key {KEY}, {n} connections"), &figs, &notes);
    if args.database_url.is_some() {
        out.json(&waits.figure());
        out.text(&waits.table());
    }
    Ok(figs)
}

/// Raw signing, then each server against it, and Signet on SQLite also against cfssl.
fn figures(raw: Measured, cases: Vec<Case>, connections: u64) -> Vec<Figure> {
    let raw = raw.into_figure("http-issuance", "raw-sign", "raw sign (1 KiB)", KEY, cores());
    let mut figs = vec![raw.clone()];
    let mut cfssl: Option<Figure> = None;
    let mut api: Option<Figure> = None;
    for case in cases {
        let fig = case.load.into_figure("http-issuance", case.server.case(), case.server.label(), KEY, connections);
        if case.server == Server::Cfssl {
            cfssl = Some(fig.against(&raw, None));
            figs.extend(cfssl.clone());
            continue;
        }
        if case.server == Server::AcmeSqlite {
            figs.push(fig.clone().against(&raw, None).p99_at_most(P99_BAR));
            figs.extend(api.as_ref().map(|api| fig.against(api, None)));
            continue;
        }
        let bar = if case.server == Server::PostgresPair { RAW_BAR_POSTGRES_PAIR } else { RAW_BAR };
        figs.push(fig.clone().against(&raw, Some(bar)).p99_at_most(P99_BAR));
        if case.server == Server::Sqlite {
            if let Some(cfssl) = &cfssl {
                figs.push(fig.clone().against(cfssl, Some(CFSSL_BAR)));
            }
            api = Some(fig);
        }
    }
    figs
}

/// An operator API key created in `store` as `signet admin api-key create` makes one; returns
/// the `Authorization` header that presents it.
async fn operator_key(store: &Store) -> Result<String, BoxError> {
    let mut raw = [0u8; 32];
    SystemRandom::new().fill(&mut raw).map_err(|_| "the random generator failed")?;
    let token = format!("sgt_{}", hex::encode(raw));
    let hash = token_hash(&token);
    // Unique per run: a scratch PostgreSQL database keeps the keys of earlier runs.
    let name = format!("bench-{}", &hash[..12]);
    let role = "ra-operator";
    let event = AuditEvent::new(
        OffsetDateTime::now_utc(),
        ACTOR,
        AuditAction::ApiKeyCreated,
        &name,
        serde_json::json!({ "role": role }),
    );
    store
        .create_api_key(&ApiKey { name, role: role.into() }, &hash, &event)
        .await
        .map_err(|e| format!("creating the bench's API key: {e}"))?;
    Ok(format!("Bearer {token}"))
}

/// `count` fresh CSRs in PEM.
fn csr_pems(count: usize) -> Result<Vec<String>, BoxError> {
    Ok(fresh_csrs(count)?.into_iter().map(|der| pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))).collect())
}

/// `count` issue requests for `order`, each with a CSR of its own.
fn issue_target(authorization: &str, order: &CertificateOrder, count: usize) -> Result<Target, BoxError> {
    let mut request = serde_json::to_value(order)?;
    let bodies = csr_pems(count)?
        .into_iter()
        .map(|pem| {
            request["csr"] = pem.into();
            serde_json::to_vec(&request).map(Bytes::from)
        })
        .collect::<Result<_, _>>()?;
    Ok(Target::Issue { authorization: authorization.to_owned(), bodies, next: AtomicUsize::new(0) })
}

/// `cfssl serve` as a child process, with an RSA-2048 CA from `cfssl genkey -initca`.
struct Cfssl {
    child: Child,
    addr: SocketAddr,
    version: String,
}

impl Cfssl {
    /// Starts cfssl with its files in `dir`; `None` when there is no `bin` to run.
    async fn start(bin: &Path, dir: &Path, log_requests: bool) -> Result<Option<Self>, BoxError> {
        let csr = dir.join("ca-csr.json");
        std::fs::write(&csr, CFSSL_CA_CSR)?;
        let made = match Command::new(bin).arg("genkey").arg("-initca").arg(&csr).output().await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            made => made.map_err(|e| format!("{}: {e}", bin.display()))?,
        };
        if !made.status.success() {
            let stderr = String::from_utf8_lossy(&made.stderr);
            return Err(format!("cfssl genkey -initca: {}: {}", made.status, stderr.trim()).into());
        }
        #[derive(serde::Deserialize)]
        struct InitCa {
            cert: String,
            key: String,
        }
        let ca: InitCa =
            serde_json::from_slice(&made.stdout).map_err(|e| format!("cfssl genkey -initca printed no CA: {e}"))?;
        let (cert, key, log) = (dir.join("ca.pem"), dir.join("ca-key.pem"), dir.join("cfssl.log"));
        std::fs::write(&cert, ca.cert)?;
        std::fs::write(&key, ca.key)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(bin)
            .args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
            .args(["-loglevel", if log_requests { "1" } else { "2" }])
            .arg("-ca")
            .arg(&cert)
            .arg("-ca-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let version = Command::new(bin).arg("version").output().await?.stdout;
        let version = String::from_utf8_lossy(&version)
            .lines()
            .next()
            .unwrap_or_default()
            .replace("Version:", "")
            .trim()
            .to_owned();
        let mut cfssl = Self { child, addr: ([127, 0, 0, 1], port).into(), version };
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        let deadline = Instant::now() + CFSSL_READY_WITHIN;
        while tokio::net::TcpStream::connect(cfssl.addr).await.is_err() {
            if let Some(status) = cfssl.child.try_wait()? {
                return Err(format!("cfssl serve exited ({status}):\n{}", log_tail()).into());
            }
            if Instant::now() > deadline {
                return Err(format!("cfssl serve did not listen within {CFSSL_READY_WITHIN:?}:\n{}", log_tail()).into());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(Some(cfssl))
    }

    async fn stop(mut self) {
        if let Err(e) = self.child.kill().await {
            eprintln!("stopping cfssl serve: {e}");
        }
    }
}

/// What the database's sessions were doing, sampled while the nodes issued.
#[derive(Default)]
struct Waits {
    polls: u64,
    /// `wait_event_type / wait_event` (running when neither) → sessions seen so.
    by_event: BTreeMap<String, u64>,
    /// Sessions seen writing certificates or the audit log while waiting on a row or a
    /// transaction lock.
    write_lock_waits: u64,
}

#[derive(Serialize)]
struct WaitsFigure<'a> {
    bench: &'static str,
    case: &'static str,
    polls: u64,
    by_event: &'a BTreeMap<String, u64>,
    write_lock_waits: u64,
}

impl Waits {
    async fn sample(&mut self, conn: &mut PgConnection) -> Result<(), BoxError> {
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(ACTIVITY)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| format!("sampling pg_stat_activity: {e}"))?;
        self.polls += 1;
        for (kind, event, query) in rows {
            let lock = kind.as_deref() == Some("Lock") && matches!(event.as_deref(), Some("transactionid" | "tuple"));
            if lock && query.as_deref().is_some_and(writes_issuance_tables) {
                self.write_lock_waits += 1;
            }
            let name = match (kind, event) {
                (Some(kind), Some(event)) => format!("{kind} / {event}"),
                (Some(kind), None) => kind,
                (None, _) => "(running)".to_owned(),
            };
            *self.by_event.entry(name).or_default() += 1;
        }
        Ok(())
    }

    fn figure(&self) -> WaitsFigure<'_> {
        WaitsFigure {
            bench: "http-issuance",
            case: "postgres-waits",
            polls: self.polls,
            by_event: &self.by_event,
            write_lock_waits: self.write_lock_waits,
        }
    }

    fn table(&self) -> String {
        let sessions: u64 = self.by_event.values().sum();
        let mut events: Vec<(&String, &u64)> = self.by_event.iter().collect();
        events.sort_by(|a, b| b.1.cmp(a.1));
        let rows: Vec<Vec<String>> = events
            .into_iter()
            .map(|(name, &count)| {
                vec![
                    name.clone(),
                    grouped(count as f64),
                    format!("{:.1}%", 100.0 * count as f64 / sessions.max(1) as f64),
                ]
            })
            .collect();
        format!(
            "\nPostgreSQL sessions while 2 nodes issued — {} polls, one every {POLL:?}\n{}  INSERT/UPDATE of certificates or audit tables waiting on Lock (transactionid/tuple): {} of {} session samples\n",
            grouped(self.polls as f64),
            render(&["wait_event_type / wait_event", "samples", "share"], &rows),
            grouped(self.write_lock_waits as f64),
            grouped(sessions as f64),
        )
    }
}

fn writes_issuance_tables(query: &str) -> bool {
    let q = query.to_ascii_lowercase();
    (q.contains("insert into") || q.contains("update ")) && (q.contains("certificates") || q.contains("audit_"))
}

/// Loads the nodes at `addrs` while sampling, every [`POLL`] on a connection of its own, what
/// the database's other sessions wait on.
async fn load_sampled(
    sampler: &mut PgConnection,
    waits: &mut Waits,
    addrs: &[SocketAddr],
    target: Arc<Target>,
    connections: u64,
    duration: Duration,
) -> Result<Measured, BoxError> {
    let (done, mut loaded) = tokio::sync::oneshot::channel::<()>();
    let load = async move {
        let measured = http_load(addrs, target, connections, duration).await;
        drop(done);
        measured
    };
    let sample = async {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut loaded => return Ok::<_, BoxError>(()),
                _ = tick.tick() => waits.sample(sampler).await?,
            }
        }
    };
    let (measured, sampled) = tokio::join!(load, sample);
    sampled?;
    measured
}
