//! What a Signet node runs beside its web front: the store, the [`Authority`] it instructs,
//! the clock and the RA's rules and wording. The pages, the command line and the background
//! jobs share these workflows, so each rule is written once.

use std::sync::Arc;

use signet_pki::issue::{CertificateOrder, IssuedCertificate};
use signet_pki::profile::Catalog;
use signet_pki::seal::SealingKey;
use signet_pki::{CaUrls, KeyAlgorithm, RevocationReason, Serial};
use signet_ra::Clock;
use signet_ra::acme::Finalizing;
use signet_ra::application::{
    Actor, Application, ApplicationId, ApplicationStore, Command, OrganizationKey, TransitionError,
};
use signet_ra::enterprise::{AddUserRefused, Candidate, EnterpriseStore, EnterpriseUser, check_candidate};
use signet_ra::issuance::{IssuanceError, RevocationError, Revoked, StoreError};
use signet_ra::notify::{Notifier, OutboxMessage};
use signet_ra::vetting::DeadlinePolicy;
use signet_store::Store;

use crate::authority::{Authority, CaCertificates, IssueRequest, RevokeRequest};
use crate::ca::{CaAuthority, CaSettings};
use crate::ca_files::{self, CaSetupError};
use crate::config::Settings;
use crate::metrics::Metrics;

/// The shared parts of a running node. Cheap to share behind an `Arc`.
pub struct Core {
    /// The database.
    pub store: Store,
    /// The CA, instructed only through [`Authority`].
    pub authority: Arc<dyn Authority>,
    /// Its certificates, for downloads and chains.
    pub certificates: CaCertificates,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// The certificate types and profiles offered.
    pub catalog: Catalog,
    /// Enrollment: the 45-day / 30-day rules and reminder thresholds.
    pub deadlines: DeadlinePolicy,
    /// Renders notices into outbox messages.
    pub notifier: Notifier,
    /// Seals the stock tokens' transport PINs at rest.
    pub sealing: SealingKey,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
}

/// Why a node could not open its store or CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The CA could not be created or loaded.
    #[error(transparent)]
    Ca(#[from] CaSetupError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] signet_store::OpenError),
    /// The CA certificate cannot back an OCSP responder.
    #[error("OCSP responder: {0}")]
    Ocsp(#[from] signet_pki::ocsp::OcspError),
    /// The data folder could not be created.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// A node's core and what only the web front uses of the CA folder.
pub struct Opened {
    /// The shared parts.
    pub core: Core,
    /// What encryption keys are escrowed to; `None`: no encryption certificates.
    pub recovery_key: Option<signet_pki::escrow::RecoveryKeyPublic>,
}

/// Why a command to an application did not take effect. Nothing changed in any case.
#[derive(Debug)]
pub enum CommandFailure {
    /// No application with that reference.
    NotFound,
    /// The domain refused the command; its message is for the person who gave it.
    Refused(TransitionError),
    /// Someone changed the application between our read and our write.
    Changed,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for CommandFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => Self::Changed,
            other => Self::Store(other),
        }
    }
}

/// Why a subscriber was not made a user of an enterprise account. Nothing changed in either case.
#[derive(Debug, thiserror::Error)]
pub enum EnterpriseFailure {
    /// The rules refused; the message is for the person adding.
    #[error(transparent)]
    Refused(#[from] AddUserRefused),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates `dir` (and missing parents) owner-only whatever the umask: it holds the
/// database and the CA's keys. An existing folder is left as the operator set it.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

impl Core {
    /// Opens the store and the CA (creating the dev CA in `<data>/ca` if there is none) for a
    /// node whose certificates point at `base_url` and whose mail links at `public_url`.
    pub async fn open(
        settings: &Settings,
        base_url: &str,
        public_url: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Opened, OpenError> {
        create_private_dir(&settings.data_dir)
            .map_err(|source| OpenError::DataDir { path: settings.data_dir.clone(), source })?;
        // The database first: a node that cannot reach it must leave nothing behind (no dev
        // CA minted for a database that was never used).
        let store = Store::connect(&settings.database_url).await?;
        let ca_dir = settings.data_dir.join("ca");
        if ca_files::ensure_dev_ca(&ca_dir, KeyAlgorithm::Rsa2048, &settings.catalog, clock.now())? {
            tracing::warn!(dir = %ca_dir.display(), "created a DEV CA with its passphrase stored beside the key; use `signet ca init` for a real one");
        }
        let loaded = ca_files::load_ca(&ca_dir, CaUrls::under(base_url))?;
        // TOTP seeds are sealed under the CA folder's key; those still in clear are sealed now.
        let store = store.with_sealing_key(ca_files::sealing_key(&ca_dir)?).await?;
        let metrics = Arc::new(Metrics::new(&settings.catalog));
        let ca_settings = CaSettings::of(settings);
        let authority =
            CaAuthority::new(store.clone(), loaded.ca, loaded.root_der, ca_settings, clock.clone(), metrics.clone())?;
        let certificates = authority.certificates();
        let core = Core {
            store,
            authority: Arc::new(authority),
            certificates,
            clock,
            catalog: settings.catalog.clone(),
            deadlines: settings.deadlines.clone(),
            notifier: Notifier::new(public_url, &settings.catalog, settings.deadlines.clone())
                .with_contact(settings.ra.clone())
                .with_templates(settings.mail_templates.clone()),
            sealing: loaded.sealing,
            metrics,
        };
        Ok(Opened { core, recovery_key: loaded.recovery_key })
    }

    /// Issues on an RA instruction as `actor`.
    pub async fn issue(
        &self,
        actor: &str,
        order: &CertificateOrder,
        csr: &[u8],
    ) -> Result<IssuedCertificate, IssuanceError> {
        self.issue_for(actor, order, csr, None).await
    }

    /// Issues as `actor` for the ACME order being finalized, if given, moving it with the CA's
    /// writes ([`Finalizing`]).
    pub async fn issue_for(
        &self,
        actor: &str,
        order: &CertificateOrder,
        csr: &[u8],
        acme_order: Option<Finalizing>,
    ) -> Result<IssuedCertificate, IssuanceError> {
        let request = IssueRequest { actor: actor.to_owned(), order: order.clone(), csr: csr.to_vec(), acme_order };
        self.authority.issue(request).await
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
        let notices = self.revocation_notice(serial, reason).await?.into_iter().collect();
        let request = RevokeRequest { actor: actor.to_owned(), serial: serial.clone(), reason, notices };
        self.authority.revoke(request).await
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

    /// Signs a new CRL now, as `actor` (audited).
    pub async fn publish_crl(&self, actor: &str) -> Result<Vec<u8>, IssuanceError> {
        self.authority.publish_crl(actor.to_owned()).await
    }

    /// A certificate profile's name for people ("Medium Token Assurance (identity)"), from
    /// its catalog id.
    pub fn certificate_name(&self, profile: &str) -> String {
        self.catalog
            .profile(profile)
            .map_or_else(|| profile.to_owned(), |p| format!("{} ({})", p.cert_type.name, p.usage))
    }

    /// Loads an application, applies `command` as `actor` at the injected clock's time, and
    /// saves the transition with its audit event and notices in one transaction (refused if
    /// the stored revision moved meanwhile). The one path every page and command takes to
    /// change an application.
    pub async fn command(
        &self,
        id: &ApplicationId,
        actor: &Actor,
        command: Command,
    ) -> Result<Application, CommandFailure> {
        let app = self.store.load(id).await?.ok_or(CommandFailure::NotFound)?;
        let transition =
            app.apply(actor, command, self.clock.now(), &self.deadlines).map_err(CommandFailure::Refused)?;
        let outbox = self.notifier.outbox_for(&transition);
        self.store.save_transition(&transition, &outbox).await?;
        Ok(transition.application)
    }

    /// Checks that the account `candidate` (`None`: a reference no account can have) may become a
    /// user of `organization`'s enterprise account: a vetted subscriber of that organization, not
    /// a user already.
    pub async fn check_enterprise_candidate(
        &self,
        organization: &OrganizationKey,
        candidate: Option<&ApplicationId>,
    ) -> Result<(), EnterpriseFailure> {
        let users = self.store.enterprise_users(organization).await?;
        let found = match candidate {
            Some(account) => self.store.enterprise_candidate(account, &users, self.clock.now()).await?,
            None => Candidate { organization: None, vetted: false, already_user: false },
        };
        Ok(check_candidate(organization, &found)?)
    }

    /// Makes `account` a user of `organization`'s enterprise account as `actor` (audited), after
    /// [`Self::check_enterprise_candidate`]; two adding at once add it once.
    pub async fn add_enterprise_user(
        &self,
        organization: OrganizationKey,
        account: ApplicationId,
        actor: &str,
    ) -> Result<EnterpriseUser, EnterpriseFailure> {
        self.check_enterprise_candidate(&organization, Some(&account)).await?;
        let user = EnterpriseUser { organization, account, added_by: actor.to_owned(), added_at: self.clock.now() };
        match self.store.add_enterprise_user(&user, user.added_event()).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(AddUserRefused::AlreadyUser.into()),
            Err(e) => Err(e.into()),
        }
    }
}
