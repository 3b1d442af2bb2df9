//! What every mode starts from: a server's settings and state in a temporary folder, its dev
//! CA, and the order every benchmark issues.

use std::path::Path;
use std::sync::Arc;

use signet_pki::ca::{HierarchyNames, create_hierarchy};
use signet_pki::issue::CertificateOrder;
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, Email, OrganizationName, Subject};
use signet_pki::{CaUrls, CertificateAuthority, KeyAlgorithm, Signer, SoftwareSigner};
use signet_ra::SystemClock;
use signet_server::ca_files::ensure_dev_ca;
use signet_server::{AppState, ServerConfig, Settings};
use time::OffsetDateTime;

use super::{BoxError, PROFILE};

/// Writes a dev CA of the benchmark's key type into `dir` unless one is there.
pub(super) fn make_dev_ca(dir: &Path, key: KeyAlgorithm, catalog: &Catalog) -> Result<(), BoxError> {
    ensure_dev_ca(dir, key, catalog, OffsetDateTime::now_utc())?;
    Ok(())
}

/// The names of the benchmark's CAs, on disk and in memory alike.
fn bench_names() -> HierarchyNames {
    HierarchyNames { root_cn: "Signet Bench Root CA".into(), issuing_cn: "Signet Bench ECA 1".into() }
}

pub(super) fn bench_settings(dir: &Path, database_url: Option<&str>) -> Result<Settings, BoxError> {
    Ok(ServerConfig {
        data_dir: Some(dir.to_owned()),
        listen: Some("127.0.0.1:0".into()),
        database_url: database_url.map(str::to_owned),
        ..Default::default()
    }
    .into_settings()?)
}

/// A server state (CA + store) in `dir`, without an HTTP listener.
pub(super) async fn bench_state(
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

pub(super) fn bench_order() -> Result<CertificateOrder, BoxError> {
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
pub(super) fn memory_ca(key: KeyAlgorithm) -> Result<CertificateAuthority, BoxError> {
    let root: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(key)?);
    let issuing: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(key)?);
    let (_, issuing_der) =
        create_hierarchy(root, issuing.clone(), &bench_names(), &Catalog::default_eca(), OffsetDateTime::now_utc())?;
    Ok(CertificateAuthority::new(issuing_der, issuing, CaUrls::under("http://127.0.0.1:8080"), "Signet Bench")?)
}
