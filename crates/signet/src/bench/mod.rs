//! `signet bench`: issuance, OCSP and CRL figures beside raw-signing and plain-HTTP
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

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use const_oid::db::{rfc5912, rfc6960};
use der::asn1::{Any, OctetString, Uint};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use signet_pki::ca::{HierarchyNames, create_hierarchy};
use signet_pki::crl::{RevokedEntry, sign_crl};
use signet_pki::csr::VerifiedCsr;
use signet_pki::escrow::{EncryptionKey, EscrowError, RecoveryKey, RecoveryKeyPublic, SoftwareRecoveryKey};
use signet_pki::issue::{CertificateOrder, Prepared};
use signet_pki::ocsp::{CertId, CertIdHash, OcspIssuer};
use signet_pki::profile::{Catalog, Profile};
use signet_pki::subject::{CommonName, Email, OrganizationName, Subject};
use signet_pki::{CaUrls, CertificateAuthority, KeyAlgorithm, RevocationReason, Serial, Signer, SoftwareSigner};
use signet_ra::SystemClock;
use signet_server::ca_files::ensure_dev_ca;
use signet_server::{AppState, ServerConfig, Settings};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp as wire;
use x509_ocsp::ext::Nonce;

mod flood;

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
    Issuance(IssuanceArgs),
    /// OCSP responses/s over loopback HTTP against a plain hello-world on the same server.
    Ocsp(OcspArgs),
    /// Time and peak memory of signing one CRL with many entries.
    Crl(CrlArgs),
    /// Portal pages/s and p99 over loopback HTTP (a new session per request, and an existing
    /// one) against a plain hello-world on the same server, on SQLite and optionally PostgreSQL.
    Portal(PortalArgs),
    /// Made-up retrievals (each a password check) at high concurrency: OCSP throughput during
    /// the flood against idle OCSP, and the server's memory before, at peak and after.
    Flood(flood::FloodArgs),
    /// Issuance, OCSP and two CRL sizes, then a summary of the ratios.
    All(AllArgs),
}

#[derive(clap::Args, Clone)]
struct IssuanceArgs {
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
    /// Certificates issued per case.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    count: u64,
    /// Threads (pure PKI) or tasks (full path) of the concurrent cases; default one per core.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: Option<u64>,
    /// Seconds of raw signing per concurrency level.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    raw_seconds: f64,
    /// Also run the full path on this database (postgres://…). The benchmark's certificates
    /// and audit rows stay in it: use a scratch database.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(clap::Args, Clone)]
struct OcspArgs {
    /// Seconds of load per endpoint.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
}

#[derive(clap::Args, Clone)]
struct PortalArgs {
    /// Seconds of load per page.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    connections: u64,
    /// Also run on this database (postgres://…); sessions are written to it: use a scratch one.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(clap::Args, Clone)]
struct CrlArgs {
    /// Revoked certificates listed in the CRL.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    entries: u64,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
}

#[derive(clap::Args, Clone)]
struct AllArgs {
    /// Smaller counts (500 issuances, 2 s of OCSP load, CRLs of 10k and 100k entries).
    #[arg(long)]
    quick: bool,
    /// CA key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
    /// Also run the full issuance path on this database (postgres://…); use a scratch one.
    #[arg(long)]
    database_url: Option<String>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if (0.1..=600.0).contains(&v) { Ok(v) } else { Err("must be between 0.1 and 600 seconds".into()) }
}

/// Runs the benchmarks.
pub async fn run(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let out = Out { json: args.json };
    let result = match args.mode {
        Mode::Issuance(a) => issuance(&a, &out).await.map(drop),
        Mode::Ocsp(a) => ocsp(&a, &out).await.map(drop),
        Mode::Crl(a) => crl_in_process(&a, &out).await.map(drop),
        Mode::Portal(a) => portal(&a, &out).await.map(drop),
        Mode::Flood(a) => flood::flood(&a, &out).await,
        Mode::All(a) => all(&a, &out).await,
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
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
// Bounds on what the loopback client accepts, so a broken server cannot make it hoard memory.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
const MAX_RESPONSE_BODY: usize = 1024 * 1024;

fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------
// Figures and their output

/// One measured rate, with its baseline when it has one.
#[derive(Debug, Clone, Serialize)]
struct Figure {
    bench: &'static str,
    case: &'static str,
    #[serde(skip)]
    label: String,
    key: KeyAlgorithm,
    /// Threads, tasks or connections working at once.
    concurrency: u64,
    ops: u64,
    errors: u64,
    seconds: f64,
    per_second: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_us: Option<u64>,
    /// `<case>@<concurrency>` of the baseline figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<String>,
    #[serde(skip)]
    baseline_label: String,
    /// per_second / the baseline's per_second.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<f64>,
    /// The smallest ratio DESIGN §5 accepts without looking for overhead.
    #[serde(skip_serializing_if = "Option::is_none")]
    design_bar: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// What a timed loop produced.
#[derive(Debug, Default)]
struct Measured {
    ops: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

impl Measured {
    /// Adds another slice of the same case.
    fn merge(&mut self, other: Measured) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn into_figure(
        mut self,
        bench: &'static str,
        case: &'static str,
        label: impl Into<String>,
        key: KeyAlgorithm,
        concurrency: u64,
    ) -> Figure {
        self.latencies_us.sort_unstable();
        let seconds = self.elapsed.as_secs_f64();
        Figure {
            bench,
            case,
            label: label.into(),
            key,
            concurrency,
            ops: self.ops,
            errors: self.errors,
            seconds,
            per_second: if seconds > 0.0 { self.ops as f64 / seconds } else { 0.0 },
            p50_us: percentile(&self.latencies_us, 50.0),
            p99_us: percentile(&self.latencies_us, 99.0),
            baseline: None,
            baseline_label: String::new(),
            ratio: None,
            design_bar: None,
            first_error: self.first_error,
        }
    }
}

impl Figure {
    fn against(mut self, base: &Figure, design_bar: Option<f64>) -> Self {
        self.baseline = Some(format!("{}@{}", base.case, base.concurrency));
        self.baseline_label = format!("{} ×{}", base.label, base.concurrency);
        self.ratio = (base.per_second > 0.0).then(|| self.per_second / base.per_second);
        self.design_bar = design_bar;
        self
    }

    fn verdict(&self) -> String {
        match (self.ratio, self.design_bar) {
            (Some(r), Some(bar)) if r >= bar => format!("ok (≥ {bar:.2})"),
            (Some(_), Some(bar)) => format!("below {bar:.2}: overhead to find"),
            _ => String::new(),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The peak memory and timing of one CRL signature; also the JSON a child process prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CrlFigure {
    bench: String,
    key: String,
    entries: u64,
    /// Building the entries in memory (not part of signing).
    generate_seconds: f64,
    /// `sign_crl`: encoding and signing.
    sign_seconds: f64,
    entries_per_second: f64,
    crl_bytes: u64,
    /// VmHWM after the CA was loaded, before the entries existed.
    vm_hwm_baseline_kib: Option<u64>,
    /// VmHWM after signing.
    vm_hwm_peak_kib: Option<u64>,
}

struct Out {
    json: bool,
}

impl Out {
    fn text(&self, s: &str) {
        if self.json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }

    fn json<T: Serialize>(&self, v: &T) {
        if self.json {
            match serde_json::to_string(v) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("cannot encode a figure as JSON: {e}"),
            }
        }
    }

    fn figures(&self, title: &str, figs: &[Figure], notes: &[String]) {
        for f in figs {
            self.json(f);
        }
        self.text(&figure_table(title, figs, notes));
    }
}

fn figure_table(title: &str, figs: &[Figure], notes: &[String]) -> String {
    let header = ["case", "conc", "ops", "errors", "per s", "p50 µs", "p99 µs", "ratio", "baseline", "DESIGN §5"];
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| grouped(v as f64));
    let rows: Vec<Vec<String>> = figs
        .iter()
        .map(|f| {
            vec![
                f.label.clone(),
                f.concurrency.to_string(),
                grouped(f.ops as f64),
                f.errors.to_string(),
                rate_text(f.per_second),
                opt(f.p50_us),
                opt(f.p99_us),
                f.ratio.map_or_else(String::new, |r| format!("{r:.2}")),
                f.baseline_label.clone(),
                f.verdict(),
            ]
        })
        .collect();
    let mut s = format!("\n{title}\n{}", render(&header, &rows));
    for f in figs.iter().filter(|f| f.errors > 0) {
        s.push_str(&format!(
            "  {}: {} errors, first: {}\n",
            f.label,
            f.errors,
            f.first_error.as_deref().unwrap_or("?")
        ));
    }
    for n in notes {
        s.push_str(&format!("  {n}\n"));
    }
    s
}

fn crl_table(figs: &[CrlFigure]) -> String {
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

/// A plain-text table: the first column left-aligned, the others right-aligned.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i == 0 {
                s.push_str(&format!("  {cell}{pad}"));
            } else {
                s.push_str(&format!("  {pad}{cell}"));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// A count with thousands separators.
fn grouped(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        return "n/a".into();
    }
    let digits = (v.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_text(v: f64) -> String {
    if v.is_finite() && v < 100.0 { format!("{v:.1}") } else { grouped(v) }
}

// ---------------------------------------------------------------------------------------
// Setup shared by the modes

/// Writes a dev CA of the benchmark's key type into `dir` unless one is there.
fn make_dev_ca(dir: &Path, key: KeyAlgorithm, catalog: &Catalog) -> Result<(), BoxError> {
    ensure_dev_ca(dir, key, catalog, OffsetDateTime::now_utc())?;
    Ok(())
}

/// The names of the benchmark's CAs, on disk and in memory alike.
fn bench_names() -> HierarchyNames {
    HierarchyNames { root_cn: "Signet Bench Root CA".into(), issuing_cn: "Signet Bench ECA 1".into() }
}

fn bench_settings(dir: &Path, database_url: Option<&str>) -> Result<Settings, BoxError> {
    Ok(ServerConfig {
        data_dir: Some(dir.to_owned()),
        listen: Some("127.0.0.1:0".into()),
        database_url: database_url.map(str::to_owned),
        ..Default::default()
    }
    .into_settings()?)
}

/// A server state (CA + store) in `dir`, without an HTTP listener.
async fn bench_state(
    dir: &Path,
    key: KeyAlgorithm,
    database_url: Option<&str>,
) -> Result<(Settings, AppState), BoxError> {
    let settings = bench_settings(dir, database_url)?;
    make_dev_ca(&settings.data_dir.join("ca"), key, &settings.catalog)?;
    let base_url = format!("http://{}", settings.listen);
    let state = signet_server::build_state(&settings, &base_url, Arc::new(SystemClock)).await?;
    Ok((settings, state))
}

fn bench_order() -> Result<CertificateOrder, BoxError> {
    Ok(CertificateOrder {
        profile: PROFILE.into(),
        subject: Subject::Person {
            common_name: CommonName::new("Bench Subscriber")?,
            organization: OrganizationName::new("Signet Benchmarks")?,
            email: Email::new("bench@example.com")?,
        },
        validity_years: 1,
    })
}

/// A CA held in memory only. The CRL benchmark uses it rather than the dev CA on disk because
/// opening the encrypted key file runs Argon2 over 19 MiB, which would inflate the memory
/// baseline the CRL's peak is compared with; the signing code is the same.
fn memory_ca(key: KeyAlgorithm) -> Result<CertificateAuthority, BoxError> {
    let root: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(key)?);
    let issuing: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(key)?);
    let (_, issuing_der) =
        create_hierarchy(root, issuing.clone(), &bench_names(), &Catalog::default_eca(), OffsetDateTime::now_utc())?;
    Ok(CertificateAuthority::new(issuing_der, issuing, CaUrls::under("http://127.0.0.1:8080"), "Signet Bench")?)
}

// ---------------------------------------------------------------------------------------
// The two messages the benchmark sends: PKCS#10 requests from fresh P-256 keys (rcgen) and
// OCSP requests (x509-ocsp); the unit tests check them against Signet's own parsers.

/// A PKCS#10 request for a fresh P-256 key. Every issuance needs its own key, because the
/// store refuses to certify a key twice.
fn p256_csr(common_name: &str) -> Result<Vec<u8>, BoxError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    // Only the CN: rcgen's default name is a placeholder CN of its own.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    Ok(params.serialize_request(&key)?.der().to_vec())
}

fn fresh_csrs(count: usize) -> Result<Vec<Vec<u8>>, BoxError> {
    (0..count).map(|i| p256_csr(&format!("bench {i}"))).collect()
}

/// An unsigned OCSPRequest for one CertID (RFC 6960 §4.1.1), with a nonce extension
/// (RFC 9654) when given, written as OpenSSL writes it (NULL hash parameters).
fn ocsp_request_der(id: &CertId, nonce: Option<&[u8]>) -> Result<Vec<u8>, der::Error> {
    let hash_oid = match id.hash {
        CertIdHash::Sha1 => rfc5912::ID_SHA_1,
        CertIdHash::Sha256 => rfc5912::ID_SHA_256,
        CertIdHash::Sha384 => rfc5912::ID_SHA_384,
        CertIdHash::Sha512 => rfc5912::ID_SHA_512,
    };
    // SerialNumber::new refuses 20-octet serials with the top bit set (their DER is 21
    // octets) although RFC 5280 allows them and decoding accepts them; go through DER.
    let serial_number = SerialNumber::from_der(&Uint::new(id.serial.as_bytes())?.to_der()?)?;
    let req_cert = wire::CertId {
        hash_algorithm: AlgorithmIdentifierOwned { oid: hash_oid, parameters: Some(Any::null()) },
        issuer_name_hash: OctetString::new(id.issuer_name_hash.as_slice())?,
        issuer_key_hash: OctetString::new(id.issuer_key_hash.as_slice())?,
        serial_number,
    };
    let request_extensions = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(Nonce::new(n)?.to_der()?)?,
        }]),
        None => None,
    };
    wire::OcspRequest {
        tbs_request: wire::TbsRequest {
            request_list: vec![wire::Request { req_cert, single_request_extensions: None }],
            request_extensions,
            ..Default::default()
        },
        optional_signature: None,
    }
    .to_der()
}

/// The responseStatus of a DER OCSPResponse (0 is successful), read without a full parse.
fn ocsp_response_status(body: &[u8]) -> Option<u8> {
    if *body.first()? != 0x30 {
        return None;
    }
    let len_octet = *body.get(1)?;
    let header = if len_octet < 0x80 {
        2
    } else {
        let n = usize::from(len_octet & 0x7f);
        if !(1..=4).contains(&n) {
            return None;
        }
        2 + n
    };
    match body.get(header..header + 3)? {
        [0x0a, 0x01, status] => Some(*status),
        _ => None,
    }
}

/// RFC 5019 §5: the path of an OCSP GET is the request in standard base64 (RFC 4648 §4),
/// URL-encoded, since `+`, `/` and `=` are not plain path characters.
fn ocsp_get_path(request_der: &[u8]) -> String {
    let b64 = BASE64.encode(request_der);
    format!("/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
}

// ---------------------------------------------------------------------------------------
// Issuance

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

async fn raw_sign(state: &AppState, threads: u64, duration: Duration) -> Result<Measured, BoxError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || raw_sign_blocking(state.ca().signer(), threads, duration)).await?
}

fn join_scoped<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T, String>>>) -> Result<Vec<T>, String> {
    handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a benchmark thread panicked".into()))).collect()
}

/// `Prepared::new → lint → sign` only: no CSR parsing, no database.
async fn pki_issue(
    state: &AppState,
    profile: Profile,
    order: CertificateOrder,
    csrs: Arc<Vec<VerifiedCsr>>,
    range: std::ops::Range<usize>,
    threads: u64,
) -> Result<Measured, BoxError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let ca = state.ca();
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
    state: &AppState,
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
                state.service().issue(ACTOR, &order, csr).await.map_err(|e| e.to_string())?;
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

async fn issuance(args: &IssuanceArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
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
        .map(|b| match b.store().backend() {
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
            raw.merge(raw_sign(state, c, raw_half).await?);
            pki.merge(pki_issue(state, profile.clone(), order.clone(), parsed.clone(), range.clone(), c).await?);
            raw.merge(raw_sign(state, c, raw_half).await?);
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
        backend.store().close().await;
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
        "pki excludes CSR parsing; CaService includes it, the key policy, and two audited transactions".to_owned(),
        "escrow is what a retrieval adds per encryption certificate before issuing it; no design bar (key generation dominates)".to_owned(),
    ];
    out.figures(&format!("issuance — CA key {key}, {cores} cores"), &figs, &notes);
    Ok(figs)
}

// ---------------------------------------------------------------------------------------
// OCSP over loopback HTTP

/// What one benchmark connection asks for.
enum Target {
    /// The server's `GET /healthz`: the plain hello-world baseline.
    Healthz,
    /// `GET /ocsp/<base64>`, one prepared request per certificate; no nonce, so the server
    /// answers from its pre-signed cache.
    OcspGet(Vec<Vec<u8>>),
    /// `POST /ocsp` with a fresh nonce each time, so every answer is signed anew.
    OcspPost(Vec<CertId>),
    /// A portal page: the whole prepared request (with or without a session cookie).
    Page(Vec<u8>),
}

impl Target {
    fn request(&self, index: usize, rng: &SystemRandom) -> Result<(Vec<u8>, Option<[u8; 16]>), String> {
        match self {
            Target::Healthz => Ok((b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(), None)),
            Target::Page(request) => Ok((request.clone(), None)),
            Target::OcspGet(requests) => Ok((requests[index % requests.len()].clone(), None)),
            Target::OcspPost(ids) => {
                let mut nonce = [0u8; 16];
                rng.fill(&mut nonce).map_err(|_| "the random generator failed")?;
                let body = ocsp_request_der(&ids[index % ids.len()], Some(&nonce))
                    .map_err(|e| format!("encoding the OCSP request: {e}"))?;
                let mut req = format!(
                    "POST /ocsp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                req.extend_from_slice(&body);
                Ok((req, Some(nonce)))
            }
        }
    }

    fn variants(&self) -> usize {
        match self {
            Target::Healthz | Target::Page(_) => 1,
            Target::OcspGet(r) => r.len(),
            Target::OcspPost(ids) => ids.len(),
        }
    }

    /// Checks what a client would: status, type, a successful OCSPResponse, the nonce echoed.
    fn check(&self, resp: &HttpResponse, nonce: Option<&[u8]>) -> Result<(), String> {
        if resp.head.status != 200 {
            return Err(format!("HTTP status {}", resp.head.status));
        }
        match self {
            Target::Healthz => {
                return if resp.body == b"ok" { Ok(()) } else { Err("unexpected /healthz body".into()) };
            }
            Target::Page(_) => {
                let html = resp.head.content_type.as_deref().is_some_and(|t| t.starts_with("text/html"));
                return if html && resp.body.windows(6).any(|w| w == b"_csrf\"") {
                    Ok(())
                } else {
                    Err("not the application form".into())
                };
            }
            Target::OcspGet(_) | Target::OcspPost(_) => {}
        }
        if resp.head.content_type.as_deref() != Some("application/ocsp-response") {
            return Err(format!("content-type {:?}", resp.head.content_type));
        }
        match ocsp_response_status(&resp.body) {
            Some(0) => {}
            Some(s) => return Err(format!("OCSP responseStatus {s} (not successful)")),
            None => return Err("the body is not an OCSPResponse".into()),
        }
        if let Some(n) = nonce
            && !resp.body.windows(n.len()).any(|w| w == n)
        {
            return Err("the nonce is not echoed".into());
        }
        Ok(())
    }
}

/// The parts of an HTTP/1.1 response head the client needs.
#[derive(Debug, PartialEq, Eq)]
struct ResponseHead {
    status: u16,
    content_type: Option<String>,
    content_length: usize,
    close: bool,
    /// Bytes of the head, blank line included.
    len: usize,
}

#[derive(Debug)]
struct HttpResponse {
    head: ResponseHead,
    body: Vec<u8>,
}

/// Parses a response head from the start of `buf`; `Ok(None)` if it is not complete yet.
/// Only what Signet's server sends is supported: bodies framed by Content-Length.
fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_RESPONSE_HEAD { Err("response head too large".into()) } else { Ok(None) };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut head =
        ResponseHead { status, content_type: None, content_length: 0, close: version == "HTTP/1.0", len: end + 4 };
    let mut has_length = false;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line: {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().map_err(|_| format!("bad Content-Length: {value:?}"))?;
            has_length = true;
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("Transfer-Encoding {value} is not supported by the benchmark client"));
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
    if !has_length && !bodiless {
        return Err("response without Content-Length".into());
    }
    if head.content_length > MAX_RESPONSE_BODY {
        return Err(format!("response body of {} bytes is too large", head.content_length));
    }
    Ok(Some(head))
}

/// Sends one request on a keep-alive connection and reads its whole response.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<HttpResponse, String> {
    stream.write_all(request).await.map_err(|e| format!("write: {e}"))?;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(head) = parse_head(buf)? {
            let total = head.len + head.content_length;
            while buf.len() < total {
                let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[head.len..total].to_vec();
            buf.drain(..total);
            return Ok(HttpResponse { head, body });
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    // Requests are single small writes; Nagle would only add delay.
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(stream)
}

/// One keep-alive connection sending requests back to back until `deadline`.
async fn drive_connection(addr: SocketAddr, target: Arc<Target>, index: usize, deadline: Instant) -> Measured {
    let rng = SystemRandom::new();
    let mut m = Measured::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut connect_failures = 0;
    let fail = |m: &mut Measured, e: String| {
        m.errors += 1;
        m.first_error.get_or_insert(e);
    };
    while Instant::now() < deadline {
        let s = match &mut stream {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => {
                    buf.clear();
                    stream.insert(s)
                }
                Err(e) => {
                    fail(&mut m, e);
                    connect_failures += 1;
                    // A server that refuses connections will not come back within a run.
                    if connect_failures >= 10 {
                        break;
                    }
                    continue;
                }
            },
        };
        let (request, nonce) = match target.request(index, &rng) {
            Ok(r) => r,
            Err(e) => {
                fail(&mut m, e);
                break;
            }
        };
        let t = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(s, &request, &mut buf)).await {
            Ok(Ok(resp)) => {
                let latency = micros(t.elapsed());
                match target.check(&resp, nonce.as_ref().map(|n| n.as_slice())) {
                    Ok(()) => {
                        m.ops += 1;
                        m.latencies_us.push(latency);
                    }
                    Err(e) => fail(&mut m, e),
                }
                if resp.head.close {
                    stream = None;
                }
            }
            Ok(Err(e)) => {
                fail(&mut m, e);
                stream = None;
            }
            Err(_) => {
                fail(&mut m, format!("no response within {REQUEST_TIMEOUT:?}"));
                stream = None;
            }
        }
    }
    m
}

/// Loads `target` from `connections` connections for `duration`.
async fn http_load(
    addr: SocketAddr,
    target: Arc<Target>,
    connections: u64,
    duration: Duration,
) -> Result<Measured, BoxError> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..connections {
        set.spawn(drive_connection(addr, target.clone(), usize::try_from(i)?, deadline));
    }
    let mut total = Measured::default();
    while let Some(done) = set.join_next().await {
        let m = done?;
        total.ops += m.ops;
        total.errors += m.errors;
        total.latencies_us.extend(m.latencies_us);
        if total.first_error.is_none() {
            total.first_error = m.first_error;
        }
    }
    total.elapsed = start.elapsed();
    if total.ops == 0 {
        return Err(format!("no successful responses; first error: {}", total.first_error.unwrap_or_default()).into());
    }
    Ok(total)
}

/// One request per variant of `target`, checked, before any timing: fails fast with a clear
/// error if the endpoint is broken, and fills the server's OCSP cache.
async fn probe(addr: SocketAddr, target: &Target, what: &str) -> Result<(), BoxError> {
    let rng = SystemRandom::new();
    let mut stream = connect(addr).await?;
    let mut buf = Vec::new();
    for i in 0..target.variants() {
        let (request, nonce) = target.request(i, &rng)?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut stream, &request, &mut buf))
            .await
            .map_err(|_| format!("{what}: no response within {REQUEST_TIMEOUT:?}"))?
            .map_err(|e| format!("{what}: {e}"))?;
        target.check(&resp, nonce.as_ref().map(|n| n.as_slice())).map_err(|e| format!("{what}: {e}"))?;
        if resp.head.close {
            stream = connect(addr).await?;
        }
    }
    Ok(())
}

async fn ocsp(args: &OcspArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let dir = tempfile::tempdir()?;
    let settings = bench_settings(dir.path(), None)?;
    make_dev_ca(&settings.data_dir.join("ca"), args.key_type, &settings.catalog)?;
    let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
    let result = ocsp_against(running.addr, &running.state, args, out).await;
    running.task.abort();
    running.jobs.stop().await;
    running.state.store().close().await;
    result
}

async fn ocsp_against(addr: SocketAddr, state: &AppState, args: &OcspArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let key = args.key_type;
    let cores = cores();
    let load_slice = Duration::from_secs_f64(args.seconds) / ROUNDS as u32;
    let load_half = load_slice / 2;
    let raw_half = Duration::from_secs_f64((args.seconds / 2.5).clamp(0.5, 2.0)) / (2 * ROUNDS as u32);

    let issuer = OcspIssuer::new(state.ca().cert_der())?;
    let order = bench_order()?;
    let mut cert_ids = Vec::new();
    for csr in fresh_csrs(OCSP_CERTS)? {
        let cert = state.service().issue(ACTOR, &order, &csr).await?;
        // SHA-1 CertIDs: what OpenSSL and most clients send, and what the server pre-signs.
        cert_ids.push(issuer.cert_id(CertIdHash::Sha1, cert.serial));
    }
    let get_requests = cert_ids
        .iter()
        .map(|id| {
            let path = ocsp_get_path(&ocsp_request_der(id, None)?);
            Ok(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes())
        })
        .collect::<Result<_, der::Error>>()?;
    let targets = [
        ("healthz", "GET /healthz (hello-world)", Arc::new(Target::Healthz)),
        ("ocsp-get-cached", "GET /ocsp, cached", Arc::new(Target::OcspGet(get_requests))),
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
        loads[0].merge(http_load(addr, healthz_target.clone(), n, load_half).await?);
        loads[1].merge(http_load(addr, get_target.clone(), n, load_slice).await?);
        loads[0].merge(http_load(addr, healthz_target.clone(), n, load_half).await?);
        raw1.merge(raw_sign(state, 1, raw_half).await?);
        if cores > 1 {
            raw_all.merge(raw_sign(state, cores, raw_half).await?);
        }
        loads[2].merge(http_load(addr, post_target.clone(), n, load_slice).await?);
        if cores > 1 {
            raw_all.merge(raw_sign(state, cores, raw_half).await?);
        }
        raw1.merge(raw_sign(state, 1, raw_half).await?);
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
            // DESIGN §5: the cached path may be at most 2× slower than the hello-world.
            ("ocsp-get-cached", Some(h)) => fig.against(h, Some(0.5)),
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

// ---------------------------------------------------------------------------------------
// Portal pages over loopback HTTP

/// The first page of the application wizard, with the session cookie if given.
fn apply_request(cookie: Option<&str>) -> Vec<u8> {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    format!("GET /apply?program=Integrate HTTP/1.1\r\nHost: bench\r\n{cookie}\r\n").into_bytes()
}

/// Starts a session the way a browser does and returns its cookie (`name=value`).
async fn session_cookie(addr: SocketAddr) -> Result<String, BoxError> {
    let mut stream = connect(addr).await?;
    stream.write_all(&apply_request(None)).await?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_RESPONSE_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")))
        .and_then(|(_, v)| v.trim().split(';').next().map(str::to_owned))
        .ok_or_else(|| "the portal set no session cookie".into())
}

async fn portal(args: &PortalArgs, out: &Out) -> Result<Vec<Figure>, BoxError> {
    let mut figs = Vec::new();
    for database_url in std::iter::once(None).chain(args.database_url.as_deref().map(Some)) {
        let dir = tempfile::tempdir()?;
        let settings = bench_settings(dir.path(), database_url)?;
        make_dev_ca(&settings.data_dir.join("ca"), KeyAlgorithm::P256, &settings.catalog)?;
        let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
        let result = portal_against(running.addr, args, database_url.is_some(), out).await;
        running.task.abort();
        running.jobs.stop().await;
        running.state.store().close().await;
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
            Arc::new(Target::Page(apply_request(None))),
        ),
        (
            "portal-session",
            format!("GET /apply, with session ({backend})"),
            Arc::new(Target::Page(apply_request(Some(&cookie)))),
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
            loads[0].merge(http_load(addr, targets[0].2.clone(), args.connections, slice / 4).await?);
            loads[i].merge(http_load(addr, target.clone(), args.connections, slice).await?);
            tokio::time::sleep(SETTLE).await;
            loads[0].merge(http_load(addr, targets[0].2.clone(), args.connections, slice / 4).await?);
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

// ---------------------------------------------------------------------------------------
// CRL

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
fn proc_status_kib(field: &str) -> Option<u64> {
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

async fn crl_in_process(args: &CrlArgs, out: &Out) -> Result<CrlFigure, BoxError> {
    let (key, entries) = (args.key_type, args.entries);
    let fig = tokio::task::spawn_blocking(move || measure_crl(key, entries)).await??;
    out.json(&fig);
    out.text(&crl_table(std::slice::from_ref(&fig)));
    Ok(fig)
}

/// Runs `signet bench crl --json` in a child process, so its VmHWM is the CRL's alone.
async fn crl_child(key: KeyAlgorithm, entries: u64) -> Result<CrlFigure, BoxError> {
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

// ---------------------------------------------------------------------------------------
// All

async fn all(args: &AllArgs, out: &Out) -> Result<(), BoxError> {
    let quick = args.quick;
    let started = Instant::now();
    let issuance_args = IssuanceArgs {
        key_type: args.key_type,
        count: if quick { 500 } else { 2000 },
        concurrency: None,
        raw_seconds: if quick { 1.0 } else { 2.0 },
        database_url: args.database_url.clone(),
    };
    let mut figs = issuance(&issuance_args, out).await?;
    let ocsp_args = OcspArgs { seconds: if quick { 2.0 } else { 5.0 }, connections: 4, key_type: args.key_type };
    figs.extend(ocsp(&ocsp_args, out).await?);
    let portal_args =
        PortalArgs { seconds: if quick { 2.0 } else { 5.0 }, connections: 4, database_url: args.database_url.clone() };
    figs.extend(portal(&portal_args, out).await?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use signet_pki::csr::SubscriberKey;
    use signet_pki::ocsp::parse_request;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
    }

    #[test]
    fn response_heads_parse_and_bad_ones_are_refused() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/ocsp-response\r\nContent-Length: 5\r\n\r\nhello";
        let head = parse_head(ok).unwrap().unwrap();
        assert_eq!(
            head,
            ResponseHead {
                status: 200,
                content_type: Some("application/ocsp-response".into()),
                content_length: 5,
                close: false,
                len: ok.len() - 5,
            }
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").unwrap().unwrap().close
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_RESPONSE_HEAD + 1]).is_err());
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap().content_length, 0);
    }

    #[test]
    fn ocsp_response_status_is_read_from_the_der() {
        assert_eq!(
            ocsp_response_status(&signet_pki::ocsp::error_response(signet_pki::ocsp::ErrorStatus::Unauthorized)),
            Some(6)
        );
        let mut long = vec![0x30, 0x82, 0x01, 0x00, 0x0a, 0x01, 0x00];
        long.resize(4 + 0x100, 0);
        assert_eq!(ocsp_response_status(&long), Some(0));
        assert_eq!(ocsp_response_status(b"ok"), None);
        assert_eq!(ocsp_response_status(&[0x30, 0x85, 0, 0, 0, 0, 0]), None);
        assert_eq!(ocsp_response_status(&[]), None);
    }

    #[test]
    fn ocsp_get_paths_are_url_encoded_base64() {
        assert_eq!(ocsp_get_path(b"foobar"), "/ocsp/Zm9vYmFy");
        assert_eq!(ocsp_get_path(b"foob"), "/ocsp/Zm9vYg%3D%3D");
        assert_eq!(ocsp_get_path(&[0xfb, 0xff]), "/ocsp/%2B%2F8%3D");
    }

    #[test]
    fn ocsp_requests_parse_with_signets_parser() {
        let ca = memory_ca(KeyAlgorithm::P256).unwrap();
        let issuer = OcspIssuer::new(ca.cert_der()).unwrap();
        for (hash, serial) in CertIdHash::ALL.into_iter().zip([
            Serial::random(),
            Serial::from_unsigned_bytes(&[0xff; 20]).unwrap(),
            Serial::from_unsigned_bytes(&[1]).unwrap(),
            Serial::random(),
        ]) {
            let id = issuer.cert_id(hash, serial);
            let plain = parse_request(&ocsp_request_der(&id, None).unwrap()).unwrap();
            assert_eq!(plain.cert_ids, std::slice::from_ref(&id));
            assert_eq!(plain.nonce, None);
            let with_nonce = parse_request(&ocsp_request_der(&id, Some(&[7; 16])).unwrap()).unwrap();
            assert!(issuer.issued(&with_nonce.cert_ids[0]));
            // extnValue holds the DER of the nonce OCTET STRING (RFC 9654 §2.1).
            assert_eq!(with_nonce.nonce, Some([&[0x04, 16][..], &[7; 16]].concat()));
        }
    }

    #[test]
    fn csrs_verify_with_signets_parser() {
        let a = VerifiedCsr::parse(&p256_csr("bench 1").unwrap()).unwrap();
        let b = VerifiedCsr::parse(&p256_csr("bench 2").unwrap()).unwrap();
        assert_eq!(a.key(), SubscriberKey::P256);
        assert_ne!(a.spki(), b.spki(), "each CSR needs its own key");
    }

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
