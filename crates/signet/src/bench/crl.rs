//! CRL: the time and peak memory of signing one CRL with many entries. Peak memory is the
//! process's high-water mark (VmHWM), which never goes down, so `bench all` signs each size in
//! a child process of its own.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use signet_pki::crl::{RevokedEntry, sign_crl};
use signet_pki::{KeyAlgorithm, RevocationReason, Serial};
use time::OffsetDateTime;

use super::BoxError;
use super::figures::{Out, grouped, rate_text, render};
use super::setup::memory_ca;

#[derive(clap::Args, Clone)]
pub(super) struct CrlArgs {
    /// Revoked certificates listed in the CRL.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(super) entries: u64,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    pub(super) key_type: KeyAlgorithm,
}

/// The peak memory and timing of one CRL signature; also the JSON a child process prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CrlFigure {
    pub(super) bench: String,
    pub(super) key: String,
    pub(super) entries: u64,
    /// Building the entries in memory (not part of signing).
    pub(super) generate_seconds: f64,
    /// `sign_crl`: encoding and signing.
    pub(super) sign_seconds: f64,
    pub(super) entries_per_second: f64,
    pub(super) crl_bytes: u64,
    /// VmHWM after the CA was loaded, before the entries existed.
    pub(super) vm_hwm_baseline_kib: Option<u64>,
    /// VmHWM after signing.
    pub(super) vm_hwm_peak_kib: Option<u64>,
}

pub(super) fn crl_table(figs: &[CrlFigure]) -> String {
    let header = [
        "entries",
        "build s",
        "sign s",
        "entries/s",
        "CRL bytes",
        "bytes/entry",
        "VmHWM before",
        "VmHWM peak",
        "peak − before",
    ];
    let mem = |k: Option<u64>| k.map_or_else(|| "n/a".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|f| {
            let delta = f.vm_hwm_peak_kib.zip(f.vm_hwm_baseline_kib).map(|(p, b)| p.saturating_sub(b));
            vec![
                grouped(f.entries as f64),
                format!("{:.3}", f.generate_seconds),
                format!("{:.3}", f.sign_seconds),
                rate_text(f.entries_per_second),
                grouped(f.crl_bytes as f64),
                format!("{:.1}", f.crl_bytes as f64 / f.entries.max(1) as f64),
                mem(f.vm_hwm_baseline_kib),
                mem(f.vm_hwm_peak_kib),
                mem(delta),
            ]
        })
        .collect();
    let key = figs.first().map_or("?", |f| f.key.as_str());
    format!(
        "\nCRL — sign_crl with a {key} CA key; peak resident memory is the process's VmHWM\n{}",
        render(&header, &rows)
    )
}

// Reasons a subscriber certificate is revoked for in practice; cycling them gives the CRL
// the mix of reason-code extensions (and their absence, for unspecified) a real one has.
const CRL_REASONS: [RevocationReason; 6] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::PrivilegeWithdrawn,
];

/// The process's peak resident set in KiB (Linux); `None` elsewhere.
fn vm_hwm_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// A `/proc/self/status` field given in kB (Linux); `None` elsewhere.
pub(super) fn proc_status_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(|s| status_kib(s, field))
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(field))?.trim().strip_suffix("kB")?.trim().parse().ok()
}

fn measure_crl(key: KeyAlgorithm, entries: u64) -> Result<CrlFigure, BoxError> {
    const YEAR_SECONDS: u64 = 365 * 24 * 3600;
    let ca = memory_ca(key)?;
    let baseline = vm_hwm_kib();
    let now = OffsetDateTime::now_utc();
    let t = Instant::now();
    let list: Vec<RevokedEntry> = (0..entries)
        .map(|i| RevokedEntry {
            serial: Serial::random(),
            revoked_at: now - time::Duration::seconds(i64::try_from(i % YEAR_SECONDS).unwrap_or_default()),
            reason: CRL_REASONS[(i % CRL_REASONS.len() as u64) as usize],
        })
        .collect();
    let generate = t.elapsed();
    let t = Instant::now();
    let der = sign_crl(&ca, 1, now, now + time::Duration::days(1), list)?;
    let sign = t.elapsed();
    let peak = vm_hwm_kib();
    Ok(CrlFigure {
        bench: "crl".into(),
        key: key.name().into(),
        entries,
        generate_seconds: generate.as_secs_f64(),
        sign_seconds: sign.as_secs_f64(),
        entries_per_second: entries as f64 / sign.as_secs_f64().max(1e-9),
        crl_bytes: der.len() as u64,
        vm_hwm_baseline_kib: baseline,
        vm_hwm_peak_kib: peak,
    })
}

pub(super) async fn crl_in_process(args: &CrlArgs, out: &Out) -> Result<CrlFigure, BoxError> {
    let (key, entries) = (args.key_type, args.entries);
    let fig = tokio::task::spawn_blocking(move || measure_crl(key, entries)).await??;
    out.json(&fig);
    out.text(&crl_table(std::slice::from_ref(&fig)));
    Ok(fig)
}

/// Runs `signet bench crl --json` in a child process, so its VmHWM is the CRL's alone.
pub(super) async fn crl_child(key: KeyAlgorithm, entries: u64) -> Result<CrlFigure, BoxError> {
    let exe = std::env::current_exe()?;
    let entries_arg = entries.to_string();
    let child = tokio::process::Command::new(&exe)
        .args(["bench", "crl", "--json", "--entries", &entries_arg, "--key-type", key.name()])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), child)
        .await
        .map_err(|_| format!("`bench crl --entries {entries}` took more than 10 minutes"))??;
    if !output.status.success() {
        return Err(format!(
            "`{} bench crl --entries {entries}` failed ({}): {}",
            exe.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    parse_crl_line(&String::from_utf8_lossy(&output.stdout))
}

fn parse_crl_line(stdout: &str) -> Result<CrlFigure, BoxError> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<CrlFigure>(l).ok().filter(|f| f.bench == "crl"))
        .ok_or_else(|| "the `bench crl` child printed no JSON figure".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_and_crl_child_output_parse() {
        let status = "Name:\tsignet\nVmPeak:\t  9 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 4096 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(status_kib(status, "VmRSS:"), Some(4096));
        assert_eq!(status_kib("Name:\tsignet\n", "VmHWM:"), None);
        assert_eq!(status_kib("VmRSS: lots", "VmRSS:"), None);
        let fig = measure_crl(KeyAlgorithm::P256, 20).unwrap();
        assert_eq!(fig.entries, 20);
        assert!(fig.crl_bytes > 20 * 20);
        let line = serde_json::to_string(&fig).unwrap();
        let back = parse_crl_line(&format!("noise\n{line}\n")).unwrap();
        assert_eq!(back.crl_bytes, fig.crl_bytes);
        assert!(parse_crl_line("{\"bench\":\"ocsp\"}\n").is_err());
    }
}
