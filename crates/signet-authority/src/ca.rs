//! The [`Authority`] in this process: the one holder of the CA signer, with the consequences
//! of issuing and revoking (the OCSP cache, the CRL cache, the issuance figures) kept beside
//! the key so no caller has to remember them. Its records are written through the node's
//! [`GroupCommit`], so concurrent issuances share transactions.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use signet_pki::csr::KeyPolicy;
use signet_pki::issue::IssuedCertificate;
use signet_pki::ocsp::OcspIssuer;
use signet_pki::profile::Catalog;
use signet_pki::{CertificateAuthority, Serial};
use signet_ra::Clock;
use signet_ra::issuance::{CaService, CaStore, IssuanceError, RevocationError, Revoked, StoreError, StoredStatus};
use signet_store::Store;
use time::Duration;

use crate::authority::{Authority, CaCertificates, IssueRequest, OcspAnswer, OcspQuery, ProbeError, RevokeRequest};
use crate::config::Settings;
use crate::group_commit::GroupCommit;
use crate::metrics::Metrics;
use crate::ocsp::OcspCache;

/// The last CRL and what it was made from.
struct CachedCrl {
    der: Bytes,
    fingerprint: (i64, Option<i64>),
    refresh_at: time::OffsetDateTime,
}

/// What the CA needs beside its key.
#[derive(Clone)]
pub struct CaSettings {
    /// Profiles it issues.
    pub catalog: Catalog,
    /// Subscriber key rules (sizes, blocklist).
    pub key_policy: KeyPolicy,
    /// How long a CRL is valid.
    pub crl_lifetime: Duration,
    /// How long an OCSP answer is valid.
    pub ocsp_validity: Duration,
}

impl CaSettings {
    /// The CA's part of a node's validated settings.
    pub fn of(settings: &Settings) -> Self {
        Self {
            catalog: settings.catalog.clone(),
            key_policy: settings.key_policy.clone(),
            crl_lifetime: settings.crl_lifetime,
            ocsp_validity: settings.ocsp_validity,
        }
    }

    /// The domain's issuance workflow for `ca` over `store` with these settings.
    pub fn service<'a, S>(
        &'a self,
        store: &'a S,
        ca: &'a CertificateAuthority,
        clock: &'a dyn Clock,
    ) -> CaService<'a, S> {
        CaService { store, ca, catalog: &self.catalog, key_policy: &self.key_policy, clock }
    }
}

// The most new certificates whose OCSP answers wait to be pre-signed; past it, an answer is
// signed on its first request instead (about 20 bytes each, so the bound is a few MB).
const PRESIGN_BACKLOG: usize = 100_000;

/// The CA key and everything that follows from using it.
pub struct CaAuthority {
    store: Store,
    writer: GroupCommit,
    // Shared with the blocking task of a readiness probe.
    ca: Arc<CertificateAuthority>,
    certificates: CaCertificates,
    settings: CaSettings,
    clock: Arc<dyn Clock>,
    ocsp: OcspCache,
    crl: tokio::sync::Mutex<Option<CachedCrl>>,
    metrics: Arc<Metrics>,
    /// New certificates whose OCSP answers are to be pre-signed when the CA is idle.
    presign_backlog: std::sync::Mutex<Vec<Serial>>,
}

impl CaAuthority {
    /// The CA `ca` (whose root is `root_der`) issuing into `store`.
    pub fn new(
        store: Store,
        ca: CertificateAuthority,
        root_der: Vec<u8>,
        settings: CaSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, signet_pki::ocsp::OcspError> {
        let issuer = OcspIssuer::new(ca.cert_der())?;
        let certificates = CaCertificates { issuing: ca.cert_der().to_vec(), root: root_der };
        Ok(Self {
            ocsp: OcspCache::new(issuer, settings.ocsp_validity),
            writer: GroupCommit::start(store.with_own_audit_lane(), metrics.clone()),
            store,
            ca: Arc::new(ca),
            certificates,
            settings,
            clock,
            crl: tokio::sync::Mutex::new(None),
            metrics,
            presign_backlog: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn service(&self) -> CaService<'_, GroupCommit> {
        self.settings.service(&self.writer, &self.ca, self.clock.as_ref())
    }

    fn presign_backlog(&self) -> std::sync::MutexGuard<'_, Vec<Serial>> {
        self.presign_backlog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pre-signs the OCSP answers left for later, one at a time, while no issuance is waiting.
    async fn presign_deferred(&self) {
        loop {
            if self.writer.expected() > 0 {
                return;
            }
            let Some(serial) = self.presign_backlog().pop() else { return };
            // It may have been revoked since it was issued: only a certificate still good gets
            // a `good` answer ahead of time.
            if let Ok(Some(StoredStatus::Good)) = self.store.status(&serial).await {
                self.ocsp.presign_new(self.ca.signer(), &serial, self.clock.now());
            }
            // One signature at a time, so the job never holds a worker for long.
            tokio::task::yield_now().await;
        }
    }
}

#[async_trait]
impl Authority for CaAuthority {
    fn certificates(&self) -> CaCertificates {
        self.certificates.clone()
    }

    async fn issue(&self, request: IssueRequest) -> Result<IssuedCertificate, IssuanceError> {
        let started = std::time::Instant::now();
        // Counted from here: the writer waits for an issuance in progress to write, and while
        // there are others, a new certificate's OCSP answer is left for later rather than
        // signed before the response, so the key signs certificates.
        let _expected = self.writer.expect_writes();
        let issued =
            self.service().issue_for(&request.actor, &request.order, &request.csr, request.acme_order.as_ref()).await;
        self.metrics.issuance(&request.order.profile, started.elapsed(), issued.is_ok());
        if let Ok(cert) = &issued {
            // Alone, the answer is signed now, so the first OCSP request finds it ready. Under
            // load each signature spent here is a certificate not signed: the answer waits for
            // the next quiet moment (the OCSP refresh job), or its first request signs it.
            if self.writer.expected() == 1 {
                self.ocsp.presign_new(self.ca.signer(), &cert.serial, self.clock.now());
            } else {
                let mut backlog = self.presign_backlog();
                if backlog.len() < PRESIGN_BACKLOG {
                    backlog.push(cert.serial.clone());
                }
            }
        }
        issued
    }

    async fn revoke(&self, request: RevokeRequest) -> Result<Revoked, RevocationError> {
        let revoked =
            self.service().revoke_notifying(&request.actor, &request.serial, request.reason, &request.notices).await?;
        self.ocsp.forget(&request.serial);
        Ok(revoked)
    }

    async fn ocsp(&self, query: OcspQuery) -> OcspAnswer {
        self.ocsp.answer(&self.store, self.ca.signer(), &self.metrics, &query, self.clock.now()).await
    }

    async fn crl(&self) -> Result<Bytes, IssuanceError> {
        let fingerprint = self.store.revocation_fingerprint().await?;
        let now = self.clock.now();
        // Holding the lock while signing makes concurrent requests wait for one new CRL
        // instead of each signing their own.
        let mut cache = self.crl.lock().await;
        if let Some(c) = cache.as_ref()
            && c.fingerprint == fingerprint
            && now < c.refresh_at
        {
            return Ok(c.der.clone());
        }
        let der = Bytes::from(self.service().publish_crl("system", self.settings.crl_lifetime).await?);
        self.metrics.crl_signed(now.unix_timestamp());
        *cache = Some(CachedCrl { der: der.clone(), fingerprint, refresh_at: now + self.settings.crl_lifetime / 2 });
        Ok(der)
    }

    async fn publish_crl(&self, actor: String) -> Result<Vec<u8>, IssuanceError> {
        self.service().publish_crl(&actor, self.settings.crl_lifetime).await
    }

    async fn refresh_ocsp(&self) -> Result<usize, StoreError> {
        self.presign_deferred().await;
        self.ocsp.refresh(&self.store, self.ca.signer(), self.clock.now()).await
    }

    async fn resolve_abandoned_intents(&self, limit: u32) -> Result<Vec<Serial>, StoreError> {
        self.service().resolve_abandoned_intents(limit).await
    }

    async fn probe(&self) -> Result<(), ProbeError> {
        // Off the async workers: a token can block.
        let ca = self.ca.clone();
        let signed = tokio::task::spawn_blocking(move || ca.signer().sign(b"signet readiness probe")).await;
        match signed {
            Ok(Ok(sig)) if !sig.is_empty() => Ok(()),
            Ok(Ok(_)) => Err(ProbeError::Signer("it returned no signature".into())),
            Ok(Err(e)) => Err(ProbeError::Signer(e.to_string())),
            Err(e) => Err(ProbeError::Signer(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use signet_pki::issue::CertificateOrder;
    use signet_pki::ocsp::{CertIdHash, OcspIssuer, encode_request};
    use signet_pki::subject::{CommonName, Email, OrganizationName, Subject};
    use signet_ra::SystemClock;

    use super::*;
    use crate::config::ServerConfig;
    use crate::core::Core;

    fn csr(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.serialize_request(&key).unwrap().der().to_vec()
    }

    /// The certificate status OpenSSL reads in `der`, an OCSP response.
    fn openssl_status(dir: &std::path::Path, der: &[u8]) -> String {
        let path = dir.join("resp.der");
        std::fs::write(&path, der).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["ocsp", "-respin", path.to_str().unwrap(), "-resp_text", "-noverify"])
            .output()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find(|l| l.contains("Cert Status:")).unwrap_or(&text).trim().to_owned()
    }

    // Issued side by side, most answers are left for the refresh job; one revoked before the
    // job runs must never get a `good` answer from it, and the others are answered `good`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_left_for_later_are_never_good_after_a_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            ServerConfig { data_dir: Some(dir.path().to_owned()), ..Default::default() }.into_settings().unwrap();
        let core = Core::open(&settings, "http://signet.test", "http://signet.test", Arc::new(SystemClock))
            .await
            .unwrap()
            .core;
        let order = CertificateOrder {
            profile: "medium-identity".into(),
            subject: Subject::Person {
                common_name: CommonName::new("Jane Doe").unwrap(),
                organization: OrganizationName::new("Acme").unwrap(),
                email: Email::new("jane@acme.example").unwrap(),
            },
            validity_years: 1,
        };
        let csrs: Vec<Vec<u8>> = (0..8).map(|i| csr(&format!("k{i}"))).collect();
        let issued = futures_util::future::join_all(csrs.iter().map(|c| core.issue("test", &order, c))).await;
        let serials: Vec<Serial> = issued.into_iter().map(|c| c.unwrap().serial).collect();
        core.revoke("test", &serials[0], signet_pki::RevocationReason::KeyCompromise).await.unwrap();
        core.authority.refresh_ocsp().await.unwrap();

        let issuer = OcspIssuer::new(&core.certificates.issuing).unwrap();
        for (i, serial) in serials.iter().enumerate() {
            let (der, _) = encode_request(&issuer.cert_id(CertIdHash::Sha1, serial.clone()), None).unwrap();
            let answer = core.authority.ocsp(OcspQuery { der: Bytes::from(der), cacheable: true }).await;
            let status = openssl_status(dir.path(), &answer.der);
            let expected = if i == 0 { "Cert Status: revoked" } else { "Cert Status: good" };
            assert_eq!(status, expected, "certificate {i}");
        }
    }
}
