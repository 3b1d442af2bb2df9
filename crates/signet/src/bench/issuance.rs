//! Issuance: `Prepared → lint → sign` alone and the whole `CaService::issue` path with its
//! database, against raw signing with the same CA key at the same concurrency; and what key
//! escrow adds before an encryption certificate is issued.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signet_pki::CertificateAuthority;
use signet_pki::csr::VerifiedCsr;
use signet_pki::escrow::{EncryptionKey, EscrowError, RecoveryKey, RecoveryKeyPublic, SoftwareRecoveryKey};
use signet_pki::issue::{CertificateOrder, Prepared};
use signet_pki::profile::Profile;
use signet_pki::{KeyAlgorithm, Serial, Signer};
use time::OffsetDateTime;

use super::figures::{Figure, Measured, Out};
use super::messages::fresh_csrs;
use super::setup::{BenchCa, bench_order, bench_state};
use super::{BoxError, PROFILE, ROUNDS, SETTLE, cores, micros, parse_seconds};

#[derive(clap::Args, Clone)]
pub(super) struct IssuanceArgs {
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    pub(super) key_type: KeyAlgorithm,
    /// Certificates issued per case.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(super) count: u64,
    /// Threads (pure PKI) or tasks (full path) of the concurrent cases; default one per core.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub(super) concurrency: Option<u64>,
    /// Seconds of raw signing per concurrency level.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub(super) raw_seconds: f64,
    /// Also run the full path on this database (postgres://…). The benchmark's certificates
    /// and audit rows stay in it: use a scratch database.
    #[arg(long)]
    pub(super) database_url: Option<String>,
}

/// Runs `op` on `threads` threads until `duration` has passed.
fn timed_blocking(
    threads: u64,
    duration: Duration,
    op: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<Measured, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        op()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        join_scoped(handles)
    })?;
    Ok(Measured { ops: counts.iter().sum(), elapsed: start.elapsed(), ..Default::default() })
}

/// Signs a 1 KiB message (about a to-be-signed certificate, so hashing costs the same) with
/// `threads` threads until `duration` has passed.
fn raw_sign_blocking(signer: &dyn Signer, threads: u64, duration: Duration) -> Result<Measured, BoxError> {
    let message = vec![0x5a_u8; 1024];
    timed_blocking(threads, duration, &|| signer.sign(&message).map(drop).map_err(|e| e.to_string()))
}

/// What a retrieval adds before issuing an encryption certificate: generating its RSA-2048 key,
/// escrowing it to a key recovery key, wrapping it to a transport key, and its CSR.
async fn escrow_prepare(threads: u64, duration: Duration) -> Result<Measured, BoxError> {
    let krk = RecoveryKeyPublic::from_spki(SoftwareRecoveryKey::generate()?.public_key_spki())?;
    let transport = EncryptionKey::generate()?.spki().to_vec();
    let prepare = move || -> Result<(), EscrowError> {
        let key = EncryptionKey::generate()?;
        key.escrow(&krk)?;
        key.wrap_for_transport(&transport)?;
        key.csr().map(drop)
    };
    tokio::task::spawn_blocking(move || timed_blocking(threads, duration, &|| prepare().map_err(|e| e.to_string())))
        .await?
}

pub(super) async fn raw_sign(
    ca: &Arc<CertificateAuthority>,
    threads: u64,
    duration: Duration,
) -> Result<Measured, BoxError> {
    let ca = ca.clone();
    tokio::task::spawn_blocking(move || raw_sign_blocking(ca.signer(), threads, duration)).await?
}

fn join_scoped<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T, String>>>) -> Result<Vec<T>, String> {
    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a benchmark thread panicked".into()))).collect()
}

/// `Prepared::new → lint → sign` only: no CSR parsing, no database.
async fn pki_issue(
    state: &BenchCa,
    profile: Profile,
    order: CertificateOrder,
    csrs: Arc<Vec<VerifiedCsr>>,
    range: std::ops::Range<usize>,
    threads: u64,
) -> Result<Measured, BoxError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let ca = &*state.ca;
        let csrs = csrs.get(range).ok_or("CSR range out of bounds")?;
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        let per_thread = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut latencies = Vec::new();
                        while let Some(csr) = csrs.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let t = Instant::now();
                            Prepared::new(ca, &profile, &order, csr, Serial::random(), OffsetDateTime::now_utc())
                                .and_then(|p| p.lint(ca))
                                .and_then(|l| l.sign(ca))
                                .map_err(|e| e.to_string())?;
                            latencies.push(micros(t.elapsed()));
                        }
                        Ok(latencies)
                    })
                })
                .collect();
            join_scoped(handles)
        })?;
        let elapsed = start.elapsed();
        let latencies_us: Vec<u64> = per_thread.into_iter().flatten().collect();
        Ok(Measured { ops: latencies_us.len() as u64, elapsed, latencies_us, ..Default::default() })
    })
    .await?
}

/// `CaService::issue`: CSR parse and proof of possession, key policy, lint, intent and audit
/// row, signature, stored certificate and audit row.
async fn full_issue(
    state: &BenchCa,
    order: &CertificateOrder,
    csrs: Vec<Vec<u8>>,
    tasks: u64,
) -> Result<Measured, BoxError> {
    let csrs = Arc::new(csrs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (state, order, csrs, next) = (state.clone(), order.clone(), csrs.clone(), next.clone());
        set.spawn(async move {
            let mut latencies = Vec::new();
            while let Some(csr) = csrs.get(next.fetch_add(1, Ordering::Relaxed)) {
                let t = Instant::now();
                state.issue(&order, csr).await.map_err(|e| e.to_string())?;
                latencies.push(micros(t.elapsed()));
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut latencies_us = Vec::new();
    // Returning early drops the set, which aborts the other tasks.
    while let Some(done) = set.join_next().await {
        latencies_us.extend(done??);
    }
    Ok(Measured { ops: latencies_us.len() as u64, elapsed: start.elapsed(), latencies_us, ..Default::default() })
}

/// The `r`th of `rounds` nearly equal parts of `0..count`.
fn round_range(count: usize, rounds: usize, r: usize) -> std::ops::Range<usize> {
    count * r / rounds..count * (r + 1) / rounds
}

pub(super) async fn issuance(args: &IssuanceArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let key = args.key_type;
    let count = usize::try_from(args.count)?;
    let cores = cores();
    let concurrency = args.concurrency.unwrap_or(cores);
    let levels: Vec<u64> = if concurrency == 1 { vec![1] } else { vec![1, concurrency] };
    let raw_half = Duration::from_secs_f64(args.raw_seconds) / (2 * ROUNDS as u32);

    let dir = tempfile::tempdir()?;
    let (settings, sqlite) = bench_state(dir.path(), key, None).await?;
    let mut backends = vec![sqlite];
    if let Some(url) = &args.database_url {
        // Same CA folder, so the same CA key signs on both backends.
        backends.push(bench_state(dir.path(), key, Some(url)).await?.1);
    }
    let state = &backends[0];
    let order = bench_order()?;
    let profile =
        settings.catalog.profile(PROFILE).cloned().ok_or_else(|| format!("the catalog has no {PROFILE} profile"))?;
    let cases: Vec<(&'static str, &'static str)> = backends
        .iter()
        .map(|b| match b.store.backend() {
            signet_store::Backend::Sqlite => ("full-issue-sqlite", "CaService::issue, SQLite"),
            signet_store::Backend::Postgres => ("full-issue-postgres", "CaService::issue, PostgreSQL"),
        })
        .collect();

    let t = Instant::now();
    let first_csrs = fresh_csrs(count)?;
    let csr_seconds = t.elapsed().as_secs_f64();
    let parsed: Vec<VerifiedCsr> = first_csrs.iter().map(|c| VerifiedCsr::parse(c)).collect::<Result<_, _>>()?;
    let parsed = Arc::new(parsed);
    // The pure-PKI runs store nothing, so their CSRs serve the first full run; every later
    // full run needs keys the store has not seen.
    let mut spare_csrs = Some(first_csrs);

    let mut figs = Vec::new();
    for &c in &levels {
        let mut raw = Measured::default();
        let mut pki = Measured::default();
        let mut full: Vec<Measured> = backends.iter().map(|_| Measured::default()).collect();
        let mut full_csrs = Vec::new();
        for _ in &backends {
            full_csrs.push(match spare_csrs.take() {
                Some(csrs) => csrs,
                None => fresh_csrs(count)?,
            });
        }
        for r in 0..ROUNDS {
            let range = round_range(count, ROUNDS, r);
            raw.merge(raw_sign(&state.ca, c, raw_half).await?);
            pki.merge(pki_issue(state, profile.clone(), order.clone(), parsed.clone(), range.clone(), c).await?);
            raw.merge(raw_sign(&state.ca, c, raw_half).await?);
            for ((backend, acc), csrs) in backends.iter().zip(&mut full).zip(&full_csrs) {
                acc.merge(full_issue(backend, &order, csrs[range.clone()].to_vec(), c).await?);
            }
            tokio::time::sleep(SETTLE).await;
        }
        let escrow = escrow_prepare(c, raw_half * ROUNDS as u32).await?;
        let base = raw.into_figure("issuance", "raw-sign", "raw sign (1 KiB)", key, c);
        figs.push(base.clone());
        figs.push(pki.into_figure("issuance", "pki-issue", "pki prepare→lint→sign", key, c).against(&base, Some(0.70)));
        for (m, (case, label)) in full.into_iter().zip(&cases) {
            figs.push(m.into_figure("issuance", case, *label, key, c).against(&base, Some(0.70)));
        }
        let label = "escrow: RSA-2048 keygen, CMS, wrap, CSR";
        figs.push(escrow.into_figure("issuance", "escrow-prepare", label, key, c).against(&base, None));
    }
    for backend in &backends {
        backend.store.close().await;
    }

    let notes = vec![
        format!(
            "{count} certificates per case, profile {PROFILE}, fresh P-256 subscriber keys ({csr_seconds:.2} s to make {count} CSRs, untimed)"
        ),
        format!(
            "conc = threads (raw, pki) or tasks on the {cores}-core runtime (CaService); ratios compare like concurrency"
        ),
        format!(
            "measured in {ROUNDS} rounds, each pki slice between two halves of its raw-signing slice, so load from other processes hits both alike"
        ),
        "pki excludes CSR parsing; CaService includes it, the key policy, and its two audited writes through the node's group commit".to_owned(),
        "escrow is what a retrieval adds per encryption certificate before issuing it; no design bar (key generation dominates)".to_owned(),
    ];
    out.figures(&format!("issuance — CA key {key}, {cores} cores"), &figs, &notes);
    Ok(figs)
}
