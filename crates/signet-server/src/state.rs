//! Shared state of a running server: the node's core and what the pages need beside it.
//! Built once at start-up.

use std::sync::Arc;

use signet_authority::Core;
use signet_pki::attestation::AttestationRoots;
use signet_pki::escrow::RecoveryKeyPublic;
use signet_pki::profile::KeyStorage;
use signet_ra::Clock;
use signet_ra::application::PriceTable;
use signet_ra::wizard::AgencyCatalog;
use signet_store::Store;

/// Everything a handler needs: the node's [`Core`] (store, the CA's [`signet_authority::Authority`],
/// clock, wording) and what only the web front uses. No handler reaches the CA key.
pub struct Inner {
    pub(crate) core: Arc<Core>,
    /// What encryption keys are escrowed to; `None`: no encryption certificates.
    pub(crate) recovery_key: Option<RecoveryKeyPublic>,
    /// Roots of the hardware key attestations retrieval accepts.
    pub(crate) attestation_roots: AttestationRoots,
    /// The public base URL (links in mail and PDFs, ACME): `https://` when TLS is served.
    pub(crate) base_url: String,
    /// How clients reach the server: whether a proxy's `X-Forwarded-Proto` counts.
    pub(crate) transport: signet_authority::tls::Transport,
    /// Enrollment: the selection wizard's agencies and programs.
    pub(crate) agencies: AgencyCatalog,
    /// Enrollment: prices per type and validity.
    pub(crate) prices: PriceTable,
    /// Enrollment: where applicants mail their forms and whom they ask.
    pub(crate) contact: signet_ra::contact::RaContact,
    /// ACME: challenge validation and the device profile.
    pub(crate) acme: signet_authority::acme::AcmeSettings,
    /// Bounds the Argon2id work running at once.
    pub(crate) hashing: crate::hashing::PasswordWork,
    /// Operator API keys verified recently.
    pub(crate) api_keys: crate::api_keys::ApiKeys,
    /// Typed-secret attempts per client address.
    pub(crate) client_limiter: crate::client_limiter::ClientLimiter,
    /// Public repository requests per client address.
    pub(crate) repository_limiter: crate::client_limiter::ClientLimiter,
    /// The `signet` client offered at `/retrieve/signet`.
    pub(crate) client_download: Option<std::path::PathBuf>,
    /// Refused forms' pages for visitors without a stored session (Post/Redirect/Get).
    pub(crate) unstored_pages: crate::unstored_pages::UnstoredPages,
    /// This site for WebAuthn; `None` when the public address cannot carry passkeys (plain
    /// HTTP other than on localhost, an IP address).
    pub(crate) passkeys: Option<signet_ra::passkey::RelyingParty>,
    /// What operators' passkeys must be.
    pub(crate) operator_passkeys: signet_ra::passkey::OperatorPasskeys,
}

impl std::ops::Deref for Inner {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
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
    pub(crate) fn forms_deployment(&self) -> signet_authority::forms_pdf::Deployment<'_> {
        signet_authority::forms_pdf::Deployment {
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

    /// The injected clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
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

    /// The node's core, for the background jobs and the HTTPS certificate's renewal.
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }
}
