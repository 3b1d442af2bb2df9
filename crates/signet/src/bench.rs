//! `signet bench`: issuance, OCSP and CRL figures beside raw-signing and plain-HTTP
//! baselines measured in the same run.

/// Options of `signet bench`.
#[derive(clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmarks.
pub async fn run(_args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("not yet".into())
}
