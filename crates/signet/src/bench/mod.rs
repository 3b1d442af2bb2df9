//! `signet bench`: issuance (in process and over HTTP), OCSP and CRL figures beside raw-signing and plain-HTTP
//! baselines measured in the same run, on the same key and the same server.
//!
//! Absolute rates only mean something on the machine that produced them, so every figure
//! that has a natural baseline is also given as a ratio to it (DESIGN §5: issuance below
//! ~70% of raw signing, or OCSP slower than a plain HTTP hello-world by more than 2×, has
//! overhead to find). Each mode prints a table; with `--json` it also prints one JSON object
//! per figure on standard output, and the tables move to standard error so the JSON can be
//! piped and quoted as is.
//!
//! Peak memory of a CRL is the process's high-water mark (VmHWM), which never goes down, so
//! `bench all` signs each CRL size in a child process of its own.

use std::time::Duration;

mod acme;
mod all;
mod crl;
mod figures;
mod flood;
mod http;
mod http_issuance;
mod issuance;
mod messages;
mod ocsp;
mod portal;
mod setup;

use figures::Out;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options of `signet bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Mode,
    /// Also print one JSON object per figure on standard output (the tables then go to
    /// standard error).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Mode {
    /// Issuance/s (pure PKI, and the full RA path with its database) against raw signing/s
    /// of the same CA key.
    Issuance(issuance::IssuanceArgs),
    /// Issuance/s and p99 over loopback HTTP (`POST /api/v1/certificates` with an operator's
    /// API key) against raw signing/s of the same CA key on every core and against cfssl serve;
    /// optionally two nodes on one PostgreSQL database, with its lock waits sampled.
    HttpIssuance(http_issuance::HttpIssuanceArgs),
    /// OCSP responses/s over loopback HTTP against a plain hello-world on the same server.
    Ocsp(ocsp::OcspArgs),
    /// Time and peak memory of signing one CRL with many entries.
    Crl(crl::CrlArgs),
    /// Portal pages/s and p99 over loopback HTTP (a new session per request, and an existing
    /// one) against a plain hello-world on the same server, on SQLite and optionally PostgreSQL.
    Portal(portal::PortalArgs),
    /// Made-up retrievals (each a password check) at high concurrency: OCSP throughput during
    /// the flood against idle OCSP, and the server's memory before, at peak and after.
    Flood(flood::FloodArgs),
    /// Issuance (in process and over HTTP), OCSP, portal pages and two CRL sizes, then a
    /// summary of the ratios.
    All(all::AllArgs),
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (0.1..=600.0).contains(&v) { Ok(v) } else { Err("must be between 0.1 and 600 seconds".into()) }
}

/// Runs the benchmarks.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let out = Out { json: args.json };
    let result = match args.mode {
        Mode::Issuance(a) => issuance::issuance(&a, &out).await.map(drop),
        Mode::HttpIssuance(a) => http_issuance::http_issuance(&a, &out).await.map(drop),
        Mode::Ocsp(a) => ocsp::ocsp(&a, &out).await.map(drop),
        Mode::Crl(a) => crl::crl_in_process(&a, &out).await.map(drop),
        Mode::Portal(a) => portal::portal(&a, &out).await.map(drop),
        Mode::Flood(a) => flood::flood(&a, &out).await,
        Mode::All(a) => all::all(&a, &out).await,
    };
    result.map_err(|e| -> Box<dyn std::error::Error> { e })
}

// The profile every benchmark issues under: a person's identity certificate, the most common
// ECA issuance; its catalog type allows the software keys the benchmark generates.
const PROFILE: &str = "medium-identity";
const ACTOR: &str = "cli:bench";
// How many certificates the OCSP benchmark asks about, round-robin over its connections.
const OCSP_CERTS: usize = 4;
// Every case is measured in this many slices, each between two half-slices of its baseline,
// so that load from other processes on a shared machine drifts into both alike instead of
// skewing the ratio.
const ROUNDS: usize = 4;
// A pause after the database-bound runs: PostgreSQL's background writers (and SQLite's WAL
// checkpoints) keep a core busy for a moment after the last commit, which would otherwise land
// in the next baseline slice.
const SETTLE: Duration = Duration::from_millis(250);

fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
