//! The [`Authority`] in this process: the one holder of the CA signer, with the consequences
//! of issuing and revoking (the OCSP cache, the CRL cache, the issuance figures) kept beside
//! the key so no caller has to remember them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use signet_pki::csr::KeyPolicy;
use signet_pki::issue::IssuedCertificate;
use signet_pki::ocsp::OcspIssuer;
use signet_pki::profile::Catalog;
use signet_pki::{CertificateAuthority, Serial};
use signet_ra::Clock;
use signet_ra::issuance::{CaService, IssuanceError, RevocationError, Revoked, StoreError};
use signet_store::Store;
use time::Duration;

use crate::authority::{Authority, CaCertificates, IssueRequest, OcspAnswer, OcspQuery, ProbeError, RevokeRequest};
use crate::config::Settings;
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

/// The CA key and everything that follows from using it.
pub struct CaAuthority {
    store: Store,
    // Shared with the blocking task of a readiness probe.
    ca: Arc<CertificateAuthority>,
    certificates: CaCertificates,
    settings: CaSettings,
    clock: Arc<dyn Clock>,
    ocsp: OcspCache,
    crl: tokio::sync::Mutex<Option<CachedCrl>>,
    metrics: Arc<Metrics>,
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
            store,
            ca: Arc::new(ca),
            certificates,
            settings,
            clock,
            crl: tokio::sync::Mutex::new(None),
            metrics,
        })
    }

    fn service(&self) -> CaService<'_, Store> {
        self.settings.service(&self.store, &self.ca, self.clock.as_ref())
    }
}

#[async_trait]
impl Authority for CaAuthority {
    fn certificates(&self) -> CaCertificates {
        self.certificates.clone()
    }

    async fn issue(&self, request: IssueRequest) -> Result<IssuedCertificate, IssuanceError> {
        let started = std::time::Instant::now();
        let issued = self.service().issue(&request.actor, &request.order, &request.csr).await;
        self.metrics.issuance(&request.order.profile, started.elapsed(), issued.is_ok());
        if let Ok(cert) = &issued {
            self.ocsp.presign_new(self.ca.signer(), &cert.serial, self.clock.now());
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
