//! Shared state of a running server: store, CA, caches. Built once at start-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use signet_pki::attestation::AttestationRoots;
use signet_pki::csr::KeyPolicy;
use signet_pki::escrow::RecoveryKeyPublic;
use signet_pki::ocsp::{CertId, OcspIssuer};
use signet_pki::profile::{Catalog, KeyStorage};
use signet_pki::{CertificateAuthority, RevocationReason, Serial};
use signet_ra::Clock;
use signet_ra::application::{ApplicationStore, PriceTable};
use signet_ra::issuance::{CaService, RevocationError, Revoked, StoreError};
use signet_ra::notify::{Notifier, OutboxMessage};
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::wizard::AgencyCatalog;
use signet_store::Store;
use time::{Duration, OffsetDateTime};

/// A signed OCSP answer kept for reuse while the stored status is unchanged.
#[derive(Debug, Clone)]
pub(crate) struct CachedOcsp {
    pub status: signet_pki::ocsp::CertStatus,
    /// The DER; `Bytes` so serving it is a reference-count bump, not a copy.
    pub der: axum::body::Bytes,
    /// Re-signed after this, half-way through its validity.
    pub refresh_at: OffsetDateTime,
    pub next_update: OffsetDateTime,
    /// When the stored status was last read (monotonic, real time: it bounds how stale a
    /// status may be, whatever the injected clock says).
    pub checked: std::time::Instant,
}

/// The last CRL and what it was made from.
#[derive(Debug, Clone)]
pub(crate) struct CachedCrl {
    pub der: axum::body::Bytes,
    pub fingerprint: (i64, Option<i64>),
    pub refresh_at: OffsetDateTime,
}

/// Everything a handler needs.
pub struct Inner {
    pub(crate) store: Store,
    pub(crate) ca: CertificateAuthority,
    pub(crate) root_der: Vec<u8>,
    pub(crate) ocsp_issuer: OcspIssuer,
    pub(crate) catalog: Catalog,
    pub(crate) key_policy: KeyPolicy,
    /// What encryption keys are escrowed to; `None`: no encryption certificates.
    pub(crate) recovery_key: Option<RecoveryKeyPublic>,
    /// Roots of the hardware key attestations retrieval accepts.
    pub(crate) attestation_roots: AttestationRoots,
    /// Seals the stock tokens' transport PINs at rest.
    pub(crate) sealing: signet_pki::seal::SealingKey,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) crl_lifetime: Duration,
    pub(crate) ocsp_validity: Duration,
    pub(crate) ocsp_cache: Mutex<HashMap<CertId, CachedOcsp>>,
    pub(crate) crl_cache: tokio::sync::Mutex<Option<CachedCrl>>,
    /// The public base URL (links in mail and PDFs, ACME): `https://` when TLS is served.
    pub(crate) base_url: String,
    /// How clients reach the server: whether a proxy's `X-Forwarded-Proto` counts.
    pub(crate) transport: crate::tls::Transport,
    /// Enrollment: the selection wizard's agencies and programs.
    pub(crate) agencies: AgencyCatalog,
    /// Enrollment: prices per type and validity.
    pub(crate) prices: PriceTable,
    /// Enrollment: the 45-day / 30-day rules and reminder thresholds.
    pub(crate) deadlines: DeadlinePolicy,
    /// Enrollment: renders applicant notices into outbox messages.
    pub(crate) notifier: Notifier,
    /// Enrollment: where applicants mail their forms and whom they ask.
    pub(crate) contact: signet_ra::contact::RaContact,
    /// ACME: challenge validation and the device profile.
    pub(crate) acme: crate::acme::AcmeSettings,
    /// Bounds the Argon2id work running at once.
    pub(crate) hashing: crate::hashing::PasswordWork,
    /// Typed-secret attempts per client address.
    pub(crate) client_limiter: crate::throttle::ClientLimiter,
    /// The `signet` client offered at `/retrieve/signet`.
    pub(crate) client_download: Option<std::path::PathBuf>,
    /// Refused forms' pages for visitors without a stored session (Post/Redirect/Get).
    pub(crate) unstored_pages: crate::web::UnstoredPages,
    /// What `/metrics` reports.
    pub(crate) metrics: crate::metrics::Metrics,
}

/// Cheap to clone; one per server.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// What the application forms print about this deployment.
    pub(crate) fn forms_deployment(&self) -> crate::forms_pdf::Deployment<'_> {
        crate::forms_pdf::Deployment {
            base_url: &self.base_url,
            contact: &self.contact,
            catalog: &self.catalog,
            agencies: &self.agencies,
            deadlines: &self.deadlines,
        }
    }

    /// The store, for tests and tools that share the server's database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The issuing CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The injected clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Signs a new CRL with the configured lifetime, as `actor` (audited).
    pub async fn publish_crl(&self, actor: &str) -> Result<Vec<u8>, signet_ra::issuance::IssuanceError> {
        self.service().publish_crl(actor, self.crl_lifetime).await
    }

    /// Issues through [`Self::service`], counted and timed per profile for `/metrics`: every
    /// issuance the server makes goes through here.
    pub(crate) async fn issue(
        &self,
        actor: &str,
        order: &signet_pki::issue::CertificateOrder,
        csr: &[u8],
    ) -> Result<signet_pki::IssuedCertificate, signet_ra::issuance::IssuanceError> {
        let started = std::time::Instant::now();
        let issued = self.service().issue(actor, order, csr).await;
        self.metrics.issuance(&order.profile, started.elapsed(), issued.is_ok());
        issued
    }

    /// Whether the application's certificate type needs a key held by hardware (Medium Token,
    /// Medium Hardware): an attestation or a witnessed key generation.
    pub(crate) fn needs_hardware_key(&self, app: &signet_ra::application::Application) -> bool {
        let cert_type = app.form().certificate.cert_type();
        self.catalog.types().iter().any(|t| t.id == cert_type && t.key_storage == KeyStorage::Hardware)
    }

    /// A certificate type's name for people ("Medium Token Assurance"), from its catalog id.
    pub(crate) fn type_name(&self, id: &str) -> String {
        self.catalog.types().iter().find(|t| t.id == id).map_or_else(|| id.to_owned(), |t| t.name.clone())
    }

    /// A certificate profile's name for people ("Medium Token Assurance (identity)"), from
    /// its catalog id.
    pub(crate) fn certificate_name(&self, profile: &str) -> String {
        self.catalog
            .profile(profile)
            .map_or_else(|| profile.to_owned(), |p| format!("{} ({})", p.cert_type.name, p.usage))
    }

    /// Revokes a certificate as `actor`, mailing its subscriber (if a subscriber account holds
    /// it) in the same transaction: every way to revoke goes through here, so no revocation
    /// happens behind the subscriber's back.
    pub async fn revoke(
        &self,
        actor: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Revoked, RevocationError> {
        let notice = self.revocation_notice(serial, reason).await?;
        self.service().revoke_notifying(actor, serial, reason, notice.as_slice()).await
    }

    /// The mail to the subscriber whose certificate `serial` is being revoked; `None` for
    /// certificates of no subscriber account (ACME accounts, operators' own).
    async fn revocation_notice(
        &self,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let Some(record) = self.store.certificate(serial).await? else { return Ok(None) };
        let Some(account) = signet_ra::cmc::account_of(&record.requested_by) else { return Ok(None) };
        let Some(app) = self.store.load(&account).await? else { return Ok(None) };
        Ok(Some(self.notifier.certificate_revoked(&app, &self.certificate_name(&record.profile), serial, reason)))
    }

    /// The CA workflows over this server's store.
    pub fn service(&self) -> CaService<'_, Store> {
        CaService {
            store: &self.store,
            ca: &self.ca,
            catalog: &self.catalog,
            key_policy: &self.key_policy,
            clock: self.clock.as_ref(),
        }
    }
}

/// Why a command to an application did not take effect. Nothing changed in any case.
#[derive(Debug)]
pub(crate) enum CommandFailure {
    /// No application with that reference.
    NotFound,
    /// The domain refused the command; its message is for the person who gave it.
    Refused(signet_ra::application::TransitionError),
    /// Someone changed the application between our read and our write.
    Changed,
    /// The store failed.
    Store(signet_ra::issuance::StoreError),
}

impl From<signet_ra::issuance::StoreError> for CommandFailure {
    fn from(e: signet_ra::issuance::StoreError) -> Self {
        match e {
            signet_ra::issuance::StoreError::Conflict(_) => Self::Changed,
            other => Self::Store(other),
        }
    }
}

impl AppState {
    /// Loads an application, applies `command` as `actor` at the injected clock's time, and
    /// saves the transition with its audit event and notices in one transaction (refused if
    /// the stored revision moved meanwhile). The one path every page takes to change an
    /// application.
    pub(crate) async fn command(
        &self,
        id: &signet_ra::application::ApplicationId,
        actor: &signet_ra::application::Actor,
        command: signet_ra::application::Command,
    ) -> Result<signet_ra::application::Application, CommandFailure> {
        let app = self.store.load(id).await?.ok_or(CommandFailure::NotFound)?;
        let transition =
            app.apply(actor, command, self.clock.now(), &self.deadlines).map_err(CommandFailure::Refused)?;
        let outbox = self.notifier.outbox_for(&transition);
        self.store.save_transition(&transition, &outbox).await?;
        Ok(transition.application)
    }
}
