//! Portal pages over loopback HTTP: the first page of the application wizard with a new
//! session per request and with an existing one, against a plain hello-world on the same
//! server, on SQLite and optionally PostgreSQL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signet_pki::KeyAlgorithm;
use signet_ra::SystemClock;

use super::figures::{Figure, Measured, Out};
use super::http::{Connection, Target, get, http_load, probe};
use super::setup::{bench_settings, make_dev_ca, stop_node};
use super::{BoxError, ROUNDS, SETTLE, cores, parse_seconds};

#[derive(clap::Args, Clone)]
pub(super) struct PortalArgs {
    /// Seconds of load per page.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub(super) seconds: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(super) connections: u64,
    /// Also run on this database (postgres://…); sessions are written to it: use a scratch one.
    #[arg(long)]
    pub(super) database_url: Option<String>,
}

/// The first page of the application wizard.
const APPLY_PATH: &str = "/apply?program=Integrate";

/// Starts a session the way a browser does and returns its cookie (`name=value`).
async fn session_cookie(addr: SocketAddr) -> Result<String, BoxError> {
    let response = Connection::open(addr).await?.exchange(get(APPLY_PATH, None)?).await?;
    response
        .set_cookie
        .and_then(|v| v.trim().split(';').next().map(str::to_owned))
        .ok_or_else(|| "the portal set no session cookie".into())
}

pub(super) async fn portal(args: &PortalArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let mut figs = Vec::new();
    for database_url in std::iter::once(None).chain(args.database_url.as_deref().map(Some)) {
        let dir = tempfile::tempdir()?;
        let settings = bench_settings(dir.path(), database_url)?;
        make_dev_ca(&settings.data_dir.join("ca"), KeyAlgorithm::P256, &settings.catalog)?;
        let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
        let result = portal_against(running.addr, args, database_url.is_some(), out).await;
        stop_node(running).await;
        figs.extend(result?);
    }
    Ok(figs)
}

async fn portal_against(
    addr: SocketAddr,
    args: &PortalArgs,
    postgres: bool,
    out: &Out,
) -> Result<Vec<Figure>, BoxError> {
    let backend = if postgres { "PostgreSQL" } else { "SQLite" };
    let cookie = session_cookie(addr).await?;
    let targets = [
        ("healthz", "GET /healthz (hello-world)".to_owned(), Arc::new(Target::Healthz)),
        (
            "portal-new-session",
            format!("GET /apply, new session ({backend})"),
            Arc::new(Target::Page(APPLY_PATH.to_owned(), None)),
        ),
        (
            "portal-session",
            format!("GET /apply, with session ({backend})"),
            Arc::new(Target::Page(APPLY_PATH.to_owned(), Some(cookie))),
        ),
    ];
    for (case, _, target) in &targets {
        probe(addr, target, case).await?;
    }
    let slice = Duration::from_secs_f64(args.seconds) / ROUNDS as u32;
    let mut loads: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
    for _ in 0..ROUNDS {
        // Each page between two halves of the hello-world, as in the OCSP benchmark.
        for (i, (_, _, target)) in targets.iter().enumerate().skip(1) {
            loads[0].merge(http_load(&[addr], targets[0].2.clone(), args.connections, slice / 4).await?);
            loads[i].merge(http_load(&[addr], target.clone(), args.connections, slice).await?);
            tokio::time::sleep(SETTLE).await;
            loads[0].merge(http_load(&[addr], targets[0].2.clone(), args.connections, slice / 4).await?);
        }
    }
    let mut figs: Vec<Figure> = Vec::new();
    for ((case, label, _), m) in targets.iter().zip(loads) {
        let fig = m.into_figure("portal", case, label, KeyAlgorithm::P256, args.connections);
        let fig = match figs.first() {
            Some(healthz) => fig.against(healthz, None),
            None => fig,
        };
        figs.push(fig);
    }
    let notes = vec![
        format!(
            "GET /apply?program=Integrate renders the first wizard page; without a cookie each request also inserts a session row, with one it reads it; {:.1} s per page in {ROUNDS} rounds between slices of the hello-world",
            args.seconds
        ),
        format!("the load generator shares the {} cores with the server; every response is checked", cores()),
    ];
    out.figures(&format!("Portal — {backend}, {} connections", args.connections), &figs, &notes);
    Ok(figs)
}
