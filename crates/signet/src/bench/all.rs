//! `bench all`: issuance (in process and over HTTP), OCSP, portal pages and two CRL sizes, then one summary of the ratios.

use std::time::Instant;

use signet_pki::KeyAlgorithm;

use super::crl::{crl_child, crl_table};
use super::figures::{Out, grouped, rate_text, render};
use super::{BoxError, cores, http_issuance, issuance, ocsp, portal};

#[derive(clap::Args, Clone)]
pub(super) struct AllArgs {
    /// Smaller counts (500 issuances, 2 s of HTTP load per server, CRLs of 10k and 100k entries).
    #[arg(long)]
    pub(super) quick: bool,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    pub(super) key_type: KeyAlgorithm,
    /// Also run the full issuance path, HTTP issuance on two nodes and the portal on this
    /// database (postgres://…); use a scratch one.
    #[arg(long)]
    pub(super) database_url: Option<String>,
}

pub(super) async fn all(args: &AllArgs, out: &Out) -> Result<(), BoxError> {
    let quick = args.quick;
    let started = Instant::now();
    let issuance_args = issuance::IssuanceArgs {
        key_type: args.key_type,
        count: if quick { 500 } else { 2000 },
        concurrency: None,
        raw_seconds: if quick { 1.0 } else { 2.0 },
        database_url: args.database_url.clone(),
    };
    let mut figs = issuance::issuance(&issuance_args, out).await?;
    let http_issuance_args = http_issuance::HttpIssuanceArgs {
        seconds: if quick { 2.0 } else { 5.0 },
        connections: 16,
        cfssl: "cfssl".into(),
        database_url: args.database_url.clone(),
    };
    figs.extend(http_issuance::http_issuance(&http_issuance_args, out).await?);
    let ocsp_args = ocsp::OcspArgs { seconds: if quick { 2.0 } else { 5.0 }, connections: 4, key_type: args.key_type };
    figs.extend(ocsp::ocsp(&ocsp_args, out).await?);
    let portal_args = portal::PortalArgs {
        seconds: if quick { 2.0 } else { 5.0 },
        connections: 4,
        database_url: args.database_url.clone(),
    };
    figs.extend(portal::portal(&portal_args, out).await?);
    let mut crls = Vec::new();
    for entries in if quick { [10_000, 100_000] } else { [100_000, 1_000_000] } {
        let fig = crl_child(args.key_type, entries).await?;
        out.json(&fig);
        crls.push(fig);
    }
    out.text(&crl_table(&crls));

    let header = ["figure", "conc", "per s", "ratio", "of", "DESIGN §5"];
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|f| {
            vec![
                format!("{}: {}", f.bench, f.label),
                f.concurrency.to_string(),
                rate_text(f.per_second),
                f.ratio.map_or_else(String::new, |r| format!("{r:.2}")),
                f.baseline_label.clone(),
                f.verdict(),
            ]
        })
        .chain(crls.iter().map(|c| {
            vec![
                format!("crl: sign {} entries", grouped(c.entries as f64)),
                "1".into(),
                rate_text(c.entries_per_second),
                String::new(),
                String::new(),
                format!(
                    "{:.2} s, {:.1} MB, peak {}",
                    c.sign_seconds,
                    c.crl_bytes as f64 / 1e6,
                    c.vm_hwm_peak_kib.map_or_else(|| "n/a".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
                ),
            ]
        }))
        .collect();
    out.text(&format!(
        "\nsummary — CA key {}, {} cores{}, {:.0} s in all\n{}",
        args.key_type,
        cores(),
        if quick { ", --quick" } else { "" },
        started.elapsed().as_secs_f64(),
        render(&header, &rows)
    ));
    Ok(())
}
