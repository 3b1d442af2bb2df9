//! OCSP over loopback HTTP: cached GETs against a plain hello-world on the same server, and
//! POSTs with a nonce (each answer signed anew) against raw signing on every core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use signet_pki::ocsp::{CertIdHash, OcspError, OcspIssuer, encode_request};
use signet_pki::{CertificateAuthority, KeyAlgorithm};
use signet_ra::SystemClock;
use signet_server::AppState;

use super::figures::{Figure, Measured, Out};
use super::http::{Target, http_load, probe};
use super::issuance::raw_sign;
use super::messages::{fresh_csrs, ocsp_get_path};
use super::setup::{bench_order, bench_settings, make_dev_ca, server_ca, stop_node};
use super::{ACTOR, BoxError, OCSP_CERTS, ROUNDS, cores, parse_seconds};

// A cached answer costs a lookup and no signature, so it should serve nearly as fast as a
// hello-world on the same server.
const CACHED_BAR: f64 = 0.85;

#[derive(clap::Args, Clone)]
pub(super) struct OcspArgs {
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub(super) seconds: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(super) connections: u64,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    pub(super) key_type: KeyAlgorithm,
}

pub(super) async fn ocsp(args: &OcspArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let dir = tempfile::tempdir()?;
    let settings = bench_settings(dir.path(), None)?;
    make_dev_ca(&settings.data_dir.join("ca"), args.key_type, &settings.catalog)?;
    let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
    // The raw-signing baseline signs with the same key the server's CA holds.
    let ca = server_ca(&settings, &running.base_url)?;
    let result = ocsp_against(running.addr, &running.state, &ca, args, out).await;
    stop_node(running).await;
    result
}

async fn ocsp_against(
    addr: SocketAddr,
    state: &AppState,
    ca: &Arc<CertificateAuthority>,
    args: &OcspArgs,
    out: &Out,
) -> Result<Vec<Figure>, BoxError> {
    let key = args.key_type;
    let cores = cores();
    let load_slice = Duration::from_secs_f64(args.seconds) / ROUNDS as u32;
    let load_half = load_slice / 2;
    let raw_half = Duration::from_secs_f64((args.seconds / 2.5).clamp(0.5, 2.0)) / (2 * ROUNDS as u32);

    let issuer = OcspIssuer::new(&state.certificates.issuing)?;
    let order = bench_order()?;
    let mut cert_ids = Vec::new();
    for csr in fresh_csrs(OCSP_CERTS)? {
        let cert = state.issue(ACTOR, &order, &csr).await?;
        // SHA-1 CertIDs: what OpenSSL and most clients send, and what the server pre-signs.
        cert_ids.push(issuer.cert_id(CertIdHash::Sha1, cert.serial));
    }
    let get_paths =
        cert_ids.iter().map(|id| Ok(ocsp_get_path(&encode_request(id, None)?.0))).collect::<Result<_, OcspError>>()?;
    let targets = [
        ("healthz", "GET /healthz (hello-world)", Arc::new(Target::Healthz)),
        ("ocsp-get-cached", "GET /ocsp, cached", Arc::new(Target::OcspGet(get_paths))),
        ("ocsp-post-nonce", "POST /ocsp + nonce", Arc::new(Target::OcspPost(cert_ids))),
    ];
    for (case, _, target) in &targets {
        probe(addr, target, case).await?;
    }

    let mut raw1 = Measured::default();
    let mut raw_all = Measured::default();
    let mut loads: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
    let (healthz_target, get_target, post_target) = (targets[0].2.clone(), targets[1].2.clone(), targets[2].2.clone());
    let n = args.connections;
    for _ in 0..ROUNDS {
        // Each case between two halves of its baseline: GET between hello-worlds, POST
        // between raw signing on every core.
        loads[0].merge(http_load(&[addr], healthz_target.clone(), n, load_half).await?);
        loads[1].merge(http_load(&[addr], get_target.clone(), n, load_slice).await?);
        loads[0].merge(http_load(&[addr], healthz_target.clone(), n, load_half).await?);
        raw1.merge(raw_sign(ca, 1, raw_half).await?);
        if cores > 1 {
            raw_all.merge(raw_sign(ca, cores, raw_half).await?);
        }
        loads[2].merge(http_load(&[addr], post_target.clone(), n, load_slice).await?);
        if cores > 1 {
            raw_all.merge(raw_sign(ca, cores, raw_half).await?);
        }
        raw1.merge(raw_sign(ca, 1, raw_half).await?);
    }
    let raw1 = raw1.into_figure("ocsp", "raw-sign", "raw sign (1 KiB)", key, 1);
    let raw_all =
        if cores > 1 { raw_all.into_figure("ocsp", "raw-sign", "raw sign (1 KiB)", key, cores) } else { raw1.clone() };
    let mut figs = vec![raw1];
    if cores > 1 {
        figs.push(raw_all.clone());
    }
    let mut healthz: Option<Figure> = None;
    for ((case, label, _), m) in targets.iter().zip(loads) {
        let fig = m.into_figure("ocsp", case, *label, key, args.connections);
        let fig = match (*case, &healthz) {
            // DESIGN §5 lets the cached path be up to 2× slower than the hello-world; the goal
            // set for it since is at least 0.85× the hello-world.
            ("ocsp-get-cached", Some(h)) => fig.against(h, Some(CACHED_BAR)),
            // Each answer costs one signature, so the ceiling is raw signing on every core.
            ("ocsp-post-nonce", _) => fig.against(&raw_all, None),
            _ => fig,
        };
        if *case == "healthz" {
            healthz = Some(fig.clone());
        }
        figs.push(fig);
    }
    let notes = vec![
        format!(
            "{OCSP_CERTS} certificates, one SHA-1 CertID per request; {:.1} s per endpoint over loopback HTTP/1.1 keep-alive, in {ROUNDS} rounds with each case between two halves of its baseline",
            args.seconds
        ),
        format!("the load generator shares the {cores} cores with the server; every response is checked"),
    ];
    out.figures(&format!("OCSP — CA key {key}, {} connections", args.connections), &figs, &notes);
    Ok(figs)
}
