//! The HTTPS certificate Signet issues to itself: a device certificate from its own issuing
//! CA (the ACME device profile, through the same issuance path, so it is stored, audited and
//! revocable like any other), kept in `<data>/tls`, and renewed by a background task once less
//! than a third of its lifetime is left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use signet_pki::issue::CertificateOrder;
use signet_pki::subject::{DnsName, OrganizationName, Subject};
use time::OffsetDateTime;

use crate::core::Core;
use crate::tls::CertSlot;

/// Who the audit log says asked for the certificate.
const ACTOR: &str = "server:self-issued-tls";

/// How often the renewal task looks at the certificate.
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Why the server could not get its own certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfIssueError {
    /// The key or the request could not be made.
    #[error("key or request: {0}")]
    Request(#[from] rcgen::Error),
    /// The RA's name is not an organization name a certificate can carry.
    #[error("ra.name cannot be the certificate's organization: {0}")]
    Organization(#[from] signet_pki::subject::SubjectError),
    /// The CA refused or failed to issue it.
    #[error("issuance: {0}")]
    Issue(#[from] signet_ra::issuance::IssuanceError),
    /// The issued certificate and key do not make a usable TLS identity.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The certificate or key could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Where the certificate lives, for which names, and what it is issued as.
#[derive(Debug, Clone)]
pub struct SelfIssued {
    names: Vec<DnsName>,
    dir: PathBuf,
    /// The device profile and validity ACME issues under.
    profile: String,
    validity_years: u8,
    /// The RA's name, the certificate's organization.
    organization: String,
}

/// A certificate as this module judges it: what it serves and when it is due.
struct Held {
    certified: CertifiedKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl SelfIssued {
    /// For `names`, kept under `<data_dir>/tls`, issued under the ACME device profile of
    /// `acme` to the organization `organization`.
    pub fn new(names: Vec<DnsName>, data_dir: &Path, acme: &crate::acme::AcmeSettings, organization: &str) -> Self {
        Self {
            names,
            dir: data_dir.join("tls"),
            profile: acme.profile.clone(),
            validity_years: acme.validity_years,
            organization: organization.to_owned(),
        }
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("server.pem"), self.dir.join("server.key"))
    }

    /// The stored certificate if it is for these names and not due, or a new one.
    pub async fn current_or_new(&self, state: &Core) -> Result<Arc<CertifiedKey>, SelfIssueError> {
        let now = state.clock.now();
        match self.stored() {
            Some(held) if !due(held.not_before, held.not_after, now) => Ok(Arc::new(held.certified)),
            _ => Ok(Arc::new(self.issue(state).await?)),
        }
    }

    /// Renews into `slot` when due, checking every [`CHECK_EVERY`]; runs until dropped.
    pub async fn keep_renewed(self, state: Arc<Core>, slot: Arc<CertSlot>) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if let Err(e) = self.renew_if_due(&state, &slot).await {
                // The current certificate still serves; the next check tries again.
                tracing::error!(error = %e, "renewing the self-issued HTTPS certificate failed");
            }
        }
    }

    async fn renew_if_due(&self, state: &Core, slot: &CertSlot) -> Result<(), SelfIssueError> {
        let current = slot.current();
        let Some((not_before, not_after)) = current.end_entity_cert().ok().and_then(|c| validity(c)) else {
            return Ok(());
        };
        if due(not_before, not_after, state.clock.now()) {
            slot.replace(Arc::new(self.issue(state).await?));
        }
        Ok(())
    }

    /// What `<data>/tls` holds, if it is a usable certificate for exactly these names.
    fn stored(&self) -> Option<Held> {
        let (cert_path, key_path) = self.paths();
        let chain = CertificateDer::pem_file_iter(&cert_path).ok()?.collect::<Result<Vec<_>, _>>().ok()?;
        let leaf = chain.first()?;
        let (not_before, not_after) = validity(leaf)?;
        if dns_names(leaf)? != self.names.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>() {
            return None;
        }
        let key = PrivateKeyDer::from_pem_file(&key_path).ok()?;
        let certified = crate::tls::certified_key(chain, key).ok()?;
        Some(Held { certified, not_before, not_after })
    }

    /// A new key, a certificate for it from this server's CA, both written to `<data>/tls`.
    async fn issue(&self, state: &Core) -> Result<CertifiedKey, SelfIssueError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let names = self.names.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>();
        let csr = rcgen::CertificateParams::new(names)?.serialize_request(&key)?;
        let order = CertificateOrder {
            profile: self.profile.clone(),
            subject: Subject::Device {
                organization: OrganizationName::new(&self.organization)?,
                dns_names: self.names.clone(),
            },
            validity_years: self.validity_years,
        };
        let issued = state.issue(ACTOR, &order, csr.der()).await?;
        let chain =
            vec![CertificateDer::from(issued.der.clone()), CertificateDer::from(state.certificates.issuing.clone())];
        let certified = crate::tls::certified_key(chain, PrivateKeyDer::Pkcs8(key.serialize_der().into()))?;
        let pem = [issued.der.as_slice(), state.certificates.issuing.as_slice()]
            .iter()
            .map(|der| signet_pki::to_pem("CERTIFICATE", der))
            .collect::<String>();
        self.write(&pem, &key.serialize_pem())?;
        tracing::info!(serial = %issued.serial, not_after = %issued.not_after, "issued this server's HTTPS certificate");
        Ok(certified)
    }

    fn write(&self, cert_pem: &str, key_pem: &str) -> Result<(), SelfIssueError> {
        let (cert_path, key_path) = self.paths();
        let failed = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SelfIssueError::Write { path, source }
        };
        crate::core::create_private_dir(&self.dir).map_err(failed(&self.dir))?;
        // The key first and owner-only from its first byte; the certificate names it.
        write_private(&key_path, key_pem.as_bytes()).map_err(failed(&key_path))?;
        std::fs::write(&cert_path, cert_pem).map_err(failed(&cert_path))
    }
}

/// Writes `path` as owner-only whatever the umask, through a temporary file so a crash
/// leaves the old key or the new one, never half of one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Due for renewal: less than a third of the lifetime left, as ACME clients commonly judge.
fn due(not_before: OffsetDateTime, not_after: OffsetDateTime, now: OffsetDateTime) -> bool {
    now >= not_after - (not_after - not_before) / 3
}

fn validity(der: &[u8]) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let v = cert.validity();
    Some((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

fn dns_names(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use signet_ra::{Clock, FakeClock};
    use time::macros::datetime;

    use super::*;
    use crate::config::ServerConfig;

    fn leaf(c: &CertifiedKey) -> Vec<u8> {
        c.cert[0].to_vec()
    }

    #[tokio::test]
    async fn issued_once_kept_across_restarts_and_renewed_when_a_third_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let settings =
            ServerConfig { data_dir: Some(dir.path().to_owned()), ..Default::default() }.into_settings().unwrap();
        let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
        let state =
            Core::open(&settings, "http://signet.test", "http://signet.test", clock.clone()).await.unwrap().core;
        let own = SelfIssued::new(vec![DnsName::new("signet.test").unwrap()], dir.path(), &settings.acme, "Signet");
        let first = own.current_or_new(&state).await.unwrap();
        assert_eq!(dns_names(&leaf(&first)).unwrap(), ["signet.test"]);
        assert_eq!(leaf(&own.current_or_new(&state).await.unwrap()), leaf(&first), "a restart reuses it");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/server.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let slot = CertSlot::new(first.clone());
        own.renew_if_due(&state, &slot).await.unwrap();
        assert_eq!(leaf(&slot.current()), leaf(&first), "not due yet");
        let (not_before, not_after) = validity(&leaf(&first)).unwrap();
        let due_at = not_after - (not_after - not_before) / 3;
        clock.advance(due_at - clock.now() - time::Duration::minutes(1));
        own.renew_if_due(&state, &slot).await.unwrap();
        assert_eq!(leaf(&slot.current()), leaf(&first), "a minute before a third is left");
        clock.advance(time::Duration::minutes(2));
        own.renew_if_due(&state, &slot).await.unwrap();
        let renewed = slot.current();
        assert_ne!(leaf(&renewed), leaf(&first), "renewed and swapped in");
        assert!(validity(&leaf(&renewed)).unwrap().1 > not_after);
        assert_eq!(leaf(&own.stored().unwrap().certified), leaf(&renewed), "and stored for the next start");

        let other = SelfIssued::new(vec![DnsName::new("other.test").unwrap()], dir.path(), &settings.acme, "Signet");
        let for_other = other.current_or_new(&state).await.unwrap();
        assert_eq!(dns_names(&leaf(&for_other)).unwrap(), ["other.test"], "new names, new certificate");
    }

    #[test]
    fn due_once_a_third_of_the_lifetime_is_left() {
        let (from, to) = (datetime!(2026-01-01 0:00 UTC), datetime!(2026-01-31 0:00 UTC));
        assert!(!due(from, to, datetime!(2026-01-20 23:59 UTC)));
        assert!(due(from, to, datetime!(2026-01-21 0:00 UTC)));
        assert!(due(from, to, datetime!(2026-02-15 0:00 UTC)), "an expired one is due too");
    }
}
