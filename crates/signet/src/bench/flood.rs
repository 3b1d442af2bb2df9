//! What an unauthenticated flood costs everyone else: made-up retrievals, each of which makes
//! the server hash a password, sent at high concurrency while relying parties ask for OCSP.
//! The figures are OCSP throughput during the flood as a ratio of the same server's idle
//! OCSP throughput, and the process's resident memory before, at its peak and after.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use serde::Serialize;
use signet_pki::KeyAlgorithm;
use signet_pki::ocsp::{CertIdHash, OcspIssuer, encode_request};
use signet_ra::SystemClock;

use super::crl::proc_status_kib;
use super::figures::{Measured, Out, percentile, render};
use super::http::{Connection, HttpRequest, Target, http_load, probe};
use super::messages::{fresh_csrs, ocsp_get_path};
use super::setup::{bench_order, bench_settings, make_dev_ca, stop_node};
use super::{ACTOR, BoxError, OCSP_CERTS};

/// Options of `signet bench flood`.
#[derive(clap::Args, Clone)]
pub(super) struct FloodArgs {
    /// Retrieval requests with made-up application references, in all.
    #[arg(long, default_value_t = 700, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    requests: u64,
    /// Flood connections sending at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// OCSP keep-alive connections, idle and during the flood alike.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    ocsp_connections: u64,
    /// Seconds of idle OCSP load measured before the flood.
    #[arg(long, default_value_t = 2.0, value_parser = super::parse_seconds)]
    idle_seconds: f64,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
}

/// One flood run's outcome.
#[derive(Debug, Serialize)]
struct FloodFigure {
    bench: &'static str,
    case: &'static str,
    requests: u64,
    concurrency: u64,
    flood_seconds: f64,
    /// Answers by HTTP status; "error" for a connection that failed or timed out.
    statuses: BTreeMap<String, u64>,
    ocsp_idle_per_second: f64,
    ocsp_flood_per_second: f64,
    /// OCSP during the flood / idle OCSP.
    ocsp_ratio: f64,
    ocsp_flood_p99_us: Option<u64>,
    rss_before_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
    rss_after_kib: Option<u64>,
}

/// Runs the flood against a fresh server on SQLite.
pub(super) async fn flood(args: &FloodArgs, out: &Out) -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let mut settings = bench_settings(dir.path(), None)?;
    // One address sends the whole flood; the per-client limit would answer most of it 429
    // before any password is hashed, and the hashing bound is what is measured.
    settings.limits.secret_attempts_per_minute = 1_000_000;
    make_dev_ca(&settings.data_dir.join("ca"), args.key_type, &settings.catalog)?;
    let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
    let result = flood_against(running.addr, &running.state, args).await;
    stop_node(running).await;
    let fig = result?;
    out.json(&fig);
    out.text(&table(&fig, args));
    Ok(())
}

async fn flood_against(
    addr: SocketAddr,
    state: &signet_server::AppState,
    args: &FloodArgs,
) -> Result<FloodFigure, BoxError> {
    let issuer = OcspIssuer::new(&state.certificates.issuing)?;
    let order = bench_order()?;
    let mut paths = Vec::new();
    for csr in fresh_csrs(OCSP_CERTS)? {
        let cert = state.issue(ACTOR, &order, &csr).await?;
        paths.push(ocsp_get_path(&encode_request(&issuer.cert_id(CertIdHash::Sha1, cert.serial), None)?.0));
    }
    let ocsp = Arc::new(Target::OcspGet(paths));
    probe(addr, &ocsp, "ocsp-get-cached").await?;
    let idle =
        http_load(&[addr], ocsp.clone(), args.ocsp_connections, Duration::from_secs_f64(args.idle_seconds)).await?;
    let ocsp_idle_per_second = idle.ops as f64 / idle.elapsed.as_secs_f64();

    let rss_before_kib = vm_rss_kib();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_peak_rss(done.clone()));
    // OCSP keeps asking in short slices until the flood is over, so that its figure covers the
    // flood and nothing after it.
    let ocsp_during = tokio::spawn({
        let (done, ocsp, n) = (done.clone(), ocsp.clone(), args.ocsp_connections);
        async move {
            let mut m = Measured::default();
            while !done.load(Ordering::Relaxed) {
                m.merge(http_load(&[addr], ocsp.clone(), n, Duration::from_millis(250)).await?);
            }
            Ok::<_, BoxError>(m)
        }
    });
    let started = Instant::now();
    let remaining = Arc::new(AtomicU64::new(args.requests));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        senders.spawn(send_retrievals(addr, remaining.clone()));
    }
    let mut statuses = BTreeMap::new();
    while let Some(counts) = senders.join_next().await {
        for (status, n) in counts? {
            *statuses.entry(status).or_insert(0) += n;
        }
    }
    let flood_seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let during = ocsp_during.await??;
    let rss_peak_kib = sampler.await?;
    let rss_after_kib = vm_rss_kib();

    let ocsp_flood_per_second = during.ops as f64 / during.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut latencies = during.latencies_us;
    latencies.sort_unstable();
    Ok(FloodFigure {
        bench: "flood",
        case: "retrieval-unknown-references",
        requests: args.requests,
        concurrency: args.concurrency,
        flood_seconds,
        statuses,
        ocsp_idle_per_second,
        ocsp_flood_per_second,
        ocsp_ratio: ocsp_flood_per_second / ocsp_idle_per_second,
        ocsp_flood_p99_us: percentile(&latencies, 99.0),
        rss_before_kib,
        rss_peak_kib,
        rss_after_kib,
    })
}

/// A retrieval for an application nobody applied for: a reference in the right shape, so the
/// server cannot refuse it before checking the password.
fn made_up_retrieval(rng: &SystemRandom) -> Result<HttpRequest, BoxError> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 12];
    rng.fill(&mut bytes).map_err(|_| "the random generator failed")?;
    let reference: String = bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect();
    let body = serde_json::json!({
        "application": reference,
        "activation_code": "ABCD-EFGH-JKMN-PQRS",
        "password": "not the password of anyone",
        "csr": "MA==",
    })
    .to_string();
    Ok(Request::post("/api/v1/retrieval")
        .header(HOST, "bench")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?)
}

/// One flood connection: takes requests from `remaining` until none are left, counting the
/// answers by status.
async fn send_retrievals(addr: SocketAddr, remaining: Arc<AtomicU64>) -> BTreeMap<String, u64> {
    let rng = SystemRandom::new();
    let mut counts = BTreeMap::new();
    let mut connection = None;
    while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
        let answer = async {
            let request = made_up_retrieval(&rng).map_err(|e| e.to_string())?;
            let c = match &mut connection {
                Some(c) => c,
                None => connection.insert(Connection::open(addr).await?),
            };
            let resp = c.exchange(request).await?;
            if resp.close {
                connection = None;
            }
            Ok::<_, String>(resp.status)
        }
        .await;
        let key = match answer {
            Ok(status) => status.to_string(),
            Err(_) => {
                connection = None;
                "error".to_owned()
            }
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// The process's resident set now, in KiB (Linux); `None` elsewhere.
fn vm_rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// The largest resident set seen every 20 ms until `done`.
async fn sample_peak_rss(done: Arc<AtomicBool>) -> Option<u64> {
    let mut peak = vm_rss_kib();
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak = peak.max(vm_rss_kib());
    }
    peak
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn table(f: &FloodFigure, args: &FloodArgs) -> String {
    let statuses = f.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect::<Vec<_>>().join(", ");
    let rows = vec![
        vec!["OCSP idle (cached GET)".into(), format!("{:.0}/s", f.ocsp_idle_per_second), "1.00".into()],
        vec![
            "OCSP during the flood".into(),
            format!("{:.0}/s", f.ocsp_flood_per_second),
            format!("{:.2}", f.ocsp_ratio),
        ],
    ];
    format!(
        "\nflood — {} made-up retrievals over {} connections in {:.1} s ({statuses}); OCSP over {} connections\n{}\nresident memory: {} before, {} at peak, {} after; OCSP p99 during the flood {}\n(the server and this load generator share one process and {} cores)\n",
        f.requests,
        f.concurrency,
        f.flood_seconds,
        args.ocsp_connections,
        render(&["figure", "per s", "ratio to idle"], &rows),
        mib(f.rss_before_kib),
        mib(f.rss_peak_kib),
        mib(f.rss_after_kib),
        f.ocsp_flood_p99_us.map_or_else(|| "n/a".into(), |us| format!("{:.1} ms", us as f64 / 1000.0)),
        super::cores(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn made_up_retrievals_are_well_formed_json_posts() {
        use http_body_util::BodyExt;
        use hyper::body::Body;
        let request = made_up_retrieval(&SystemRandom::new()).unwrap();
        assert_eq!(request.method(), hyper::Method::POST);
        assert_eq!(request.uri(), "/api/v1/retrieval");
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        // hyper sends the exact size as Content-Length.
        let length = request.body().size_hint().exact();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(length, Some(body.len() as u64));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["application"].as_str().unwrap().len(), 12);
    }
}
