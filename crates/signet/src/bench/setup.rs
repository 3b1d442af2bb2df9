//! What every mode starts from: a server's settings and state in a temporary folder, its dev
//! CA, and the order every benchmark issues.

use std::path::Path;
use std::sync::Arc;

use signet_authority::ca_files::{ensure_dev_ca, load_ca};
use signet_authority::metrics::Metrics;
use signet_authority::{CaSettings, GroupCommit, ServerConfig, Settings};
use signet_pki::ca::{HierarchyNames, create_hierarchy};
use signet_pki::issue::{CertificateOrder, IssuedCertificate};
use signet_pki::profile::Catalog;
use signet_pki::subject::{CommonName, Email, OrganizationName, Subject};
use signet_pki::{CaUrls, CertificateAuthority, KeyAlgorithm, Signer, SoftwareSigner};
use signet_ra::SystemClock;
use signet_ra::issuance::IssuanceError;
use signet_server::Running;
use signet_store::Store;
use time::OffsetDateTime;

use super::{ACTOR, BoxError, PROFILE};

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

/// Stops an in-process server: its listener, its background jobs (which hand their leases
/// over) and its database pool.
pub(super) async fn stop_node(running: Running) {
    running.task.abort();
    running.jobs.stop().await;
    running.state.store().close().await;
}

/// The CA key and a store in `dir`, without a server: the baselines sign with the key itself,
/// and the domain case measures `CaService` below the node's `Authority`, writing through the
/// same group commit a node uses.
#[derive(Clone)]
pub(super) struct BenchCa {
    pub(super) store: Store,
    pub(super) ca: Arc<CertificateAuthority>,
    settings: Arc<CaSettings>,
    writer: Arc<GroupCommit>,
}

impl BenchCa {
    /// `CaService::issue` as a node's authority calls it: counted by the writer as an
    /// issuance that will write, so concurrent ones share transactions as they do on a node.
    pub(super) async fn issue(&self, order: &CertificateOrder, csr: &[u8]) -> Result<IssuedCertificate, IssuanceError> {
        let _expected = self.writer.expect_writes();
        self.settings.service(&*self.writer, &self.ca, &SystemClock).issue(ACTOR, order, csr).await
    }
}

/// The dev CA of the server whose settings are `settings`, loaded as the server loads it.
pub(super) fn server_ca(settings: &Settings, base_url: &str) -> Result<Arc<CertificateAuthority>, BoxError> {
    Ok(Arc::new(load_ca(&settings.data_dir.join("ca"), CaUrls::under(base_url))?.ca))
}

/// The CA and a store in `dir`, without an HTTP listener.
pub(super) async fn bench_state(
    dir: &Path,
    key: KeyAlgorithm,
    database_url: Option<&str>,
) -> Result<(Settings, BenchCa), BoxError> {
    let settings = bench_settings(dir, database_url)?;
    make_dev_ca(&settings.data_dir.join("ca"), key, &settings.catalog)?;
    let ca = server_ca(&settings, &format!("http://{}", settings.listen))?;
    let store = Store::connect(&settings.database_url).await?;
    let ca_settings = CaSettings::of(&settings);
    let writer = Arc::new(GroupCommit::start(store.with_own_audit_lane(), Arc::new(Metrics::new(&settings.catalog))));
    Ok((settings, BenchCa { store, ca, settings: Arc::new(ca_settings), writer }))
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
