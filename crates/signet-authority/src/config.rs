//! Server configuration: [`ServerConfig`] is the TOML file as written (every field
//! optional); [`ServerConfig::into_settings`] turns it into validated [`Settings`].

pub use crate::config_error::ConfigError;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use signet_pki::attestation::AttestationRoots;
use signet_pki::csr::KeyPolicy;
use signet_pki::profile::Catalog;
use signet_ra::application::PriceTable;
use signet_ra::contact::RaContact;
use signet_ra::data_file::AtLine;
use signet_ra::mail_templates::MailTemplates;
use signet_ra::prices::SHIPPED_PRICES;
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::wizard::{AgencyCatalog, DEFAULT_AGENCIES};
use time::Duration;

use crate::mail::{MailConfig, MailSettings};
use signet_ra::passkey::OperatorPasskeys;

/// The configuration file (`signet.toml`) and command-line overrides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (HTTPS when `[tls]` says so); default 127.0.0.1:8080.
    pub listen: Option<String>,
    /// Public base URL written into certificates (CRL DP, AIA); default `http://<listen>`, or
    /// `http://<tls.http_listen>` with HTTPS. Always `http://` with HTTPS: relying parties fetch
    /// CRLs and OCSP over plain HTTP.
    pub base_url: Option<String>,
    /// Data folder (SQLite file, dev CA); default `./data`.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`; default SQLite in the data folder.
    pub database_url: Option<String>,
    /// CRL nextUpdate − thisUpdate, hours; default 24.
    pub crl_lifetime_hours: Option<u32>,
    /// OCSP response validity, hours; default 24.
    pub ocsp_validity_hours: Option<u32>,
    /// Profile catalog file; default the shipped ECA catalog.
    pub profiles: Option<PathBuf>,
    /// Blocklist of known-compromised keys (hex SHA-256 of SPKI per line).
    pub key_blocklist: Option<PathBuf>,
    /// PEM bundle of the YubiKey PIV attestation roots a hardware-type retrieval may prove its
    /// key with; without it, those types need an operator-witnessed key generation.
    pub attestation_roots: Option<PathBuf>,
    /// `[mail]`: the SMTP relay (or dev folder) the outbox is sent through.
    #[serde(default)]
    pub mail: MailConfig,
    /// `[acme]`: challenge validation (port, resolver, fixed addresses) and the device profile.
    #[serde(default)]
    pub acme: crate::acme::AcmeConfig,
    /// `[limits]`: timeouts, connections, password hashing and per-client attempts.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// `[ra]`: the Registration Authority as applicants reach it.
    #[serde(default)]
    pub ra: RaConfig,
    /// `[deadlines]`: how long an application stays open and certificates wait for retrieval.
    #[serde(default)]
    pub deadlines: DeadlinesConfig,
    /// `[tls]`: HTTPS from certificate files or a self-issued certificate, or a TLS proxy in front.
    #[serde(default)]
    pub tls: crate::tls::TlsConfig,
    /// The `signet` client offered for download at `/retrieve/signet`; `signet serve` offers
    /// itself when this is not set.
    pub client_download: Option<PathBuf>,
    /// `[passkeys]`: whether RA operators must sign in with a passkey, and with which models.
    #[serde(default)]
    pub passkeys: PasskeysConfig,
}

/// `[passkeys]`: subscribers may always add passkeys; for RA operators, whose sign-in approves
/// identities, the RA may require one and restrict the authenticator models.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeysConfig {
    /// `"required"`: operators sign in with a passkey (an operator without one registers one at
    /// the first sign-in with a code, before anything else); `"optional"` (the default).
    pub operators: Option<String>,
    /// A file of the AAGUIDs (one per line, `#` comments) of the authenticator models operators
    /// may register; default any.
    pub operator_authenticators: Option<PathBuf>,
}

impl PasskeysConfig {
    fn into_policy(self) -> Result<OperatorPasskeys, ConfigError> {
        let required = match self.operators.as_deref() {
            None | Some("optional") => false,
            Some("required") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    field: "passkeys.operators",
                    message: format!("{other:?} is neither \"required\" nor \"optional\""),
                });
            }
        };
        let authenticators = match &self.operator_authenticators {
            Some(p) => Some(
                OperatorPasskeys::parse_allow_list(&read(p)?)
                    .map_err(|message| ConfigError::File { path: p.clone(), message })?,
            ),
            None => None,
        };
        Ok(OperatorPasskeys { required, authenticators })
    }
}

/// `[ra]`: who the applicant mails the notarized forms to and asks for help. Printed on the
/// forms, in every applicant mail and on the status page. A setting left out takes the example
/// RA's, which is right only for a development server.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaConfig {
    /// The RA's name, as mail is signed.
    pub name: Option<String>,
    /// The postal address for the notarized originals, 2 to 6 lines of at most 64 characters.
    pub mailing_address: Option<Vec<String>>,
    /// The support email address.
    pub support_email: Option<String>,
    /// The support phone number.
    pub support_phone: Option<String>,
    /// The agency catalog the Certificate Selection Wizard offers (which agency accepts which
    /// type, and the partner programs); default the shipped `catalog/agencies.toml`.
    pub agencies: Option<PathBuf>,
    /// The price list by type and validity; default the shipped `catalog/prices.toml`.
    pub prices: Option<PathBuf>,
    /// A folder of mail templates, `<notice>.txt` each (e.g. `activation-code.txt`), replacing
    /// the shipped wording of those notices; the others keep theirs.
    pub mail_templates: Option<PathBuf>,
}

/// `[deadlines]`: the RA's deadline policy (DESIGN §2 defaults: 45 days open, 30 days from the
/// notary's signature to retrieval, reminders 7 and 2 days before either deadline).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesConfig {
    /// Days an application stays open before its forms are received.
    pub open_days: Option<u16>,
    /// Days from the notary's signature to retrieve the certificates.
    pub retrieval_days: Option<u16>,
    /// Days before a deadline to remind the applicant.
    pub reminder_days: Option<Vec<u16>>,
}

impl DeadlinesConfig {
    fn into_policy(self) -> Result<DeadlinePolicy, ConfigError> {
        let shipped = DeadlinePolicy::default();
        DeadlinePolicy::new(
            self.open_days.unwrap_or(shipped.open_days),
            self.retrieval_days.unwrap_or(shipped.retrieval_days),
            self.reminder_days.unwrap_or(shipped.reminder_days),
        )
        .map_err(|e| ConfigError::Invalid { field: "deadlines", message: e.to_string() })
    }
}

impl RaConfig {
    /// The wizard's agencies and the price list, from the files named or the shipped ones.
    fn catalogs(&self, certificates: &Catalog) -> Result<(AgencyCatalog, PriceTable), ConfigError> {
        let refused = |path: &PathBuf, message: String| ConfigError::File { path: path.clone(), message };
        let agencies = match &self.agencies {
            Some(p) => AgencyCatalog::from_toml(&read(p)?, certificates).map_err(|e| refused(p, e.to_string()))?,
            None => AgencyCatalog::from_toml(DEFAULT_AGENCIES, certificates).map_err(|e| ConfigError::Invalid {
                field: "profiles",
                message: format!("the shipped agency catalog does not fit this certificate catalog: {e}"),
            })?,
        };
        let prices = match &self.prices {
            Some(p) => PriceTable::from_toml(&read(p)?, certificates).map_err(|e| refused(p, e.to_string()))?,
            None => PriceTable::from_toml(SHIPPED_PRICES, certificates).map_err(|e| ConfigError::Invalid {
                field: "profiles",
                message: format!("the shipped price list does not fit this certificate catalog: {e}"),
            })?,
        };
        Ok((agencies, prices))
    }

    /// The shipped mail templates, with those in the folder named replacing theirs.
    fn templates(&self) -> Result<MailTemplates, ConfigError> {
        let mut templates = MailTemplates::default();
        let Some(dir) = &self.mail_templates else { return Ok(templates) };
        let listing =
            std::fs::read_dir(dir).map_err(|e| ConfigError::File { path: dir.clone(), message: e.to_string() })?;
        let mut files: Vec<PathBuf> = listing
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            templates
                .replace(&name, &read(&path)?)
                .map_err(|e| ConfigError::File { path: path.clone(), message: e.to_string() })?;
        }
        Ok(templates)
    }

    fn into_contact(self) -> Result<RaContact, ConfigError> {
        use signet_ra::contact::ContactError;
        let example = RaContact::example();
        let address: Vec<String> = match self.mailing_address {
            Some(lines) => lines,
            None => example.mailing_address.lines().map(str::to_owned).collect(),
        };
        RaContact::new(
            self.name.as_deref().unwrap_or(example.name.as_str()),
            address.as_slice(),
            self.support_email.as_deref().unwrap_or(example.support_email.as_str()),
            self.support_phone.as_deref().unwrap_or(example.support_phone.as_str()),
        )
        .map_err(|e| {
            let field = match e {
                ContactError::Name => "ra.name",
                ContactError::Email(_) => "ra.support_email",
                ContactError::Phone(_) => "ra.support_phone",
                _ => "ra.mailing_address",
            };
            ConfigError::Invalid { field, message: e.to_string() }
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Base URL; `None` means derive from the bound address.
    pub base_url: Option<String>,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// CRL lifetime.
    pub crl_lifetime: Duration,
    /// OCSP response validity.
    pub ocsp_validity: Duration,
    /// Profiles.
    pub catalog: Catalog,
    /// Key blocklist.
    pub key_policy: KeyPolicy,
    /// Trusted key attestation roots (empty: none).
    pub attestation_roots: AttestationRoots,
    /// Where applicant mail goes.
    pub mail: MailSettings,
    /// ACME.
    pub acme: crate::acme::AcmeSettings,
    /// What any client gets before it proves who it is.
    pub limits: crate::limits::Limits,
    /// See [`ServerConfig::client_download`].
    pub client_download: Option<PathBuf>,
    /// The Registration Authority as applicants reach it.
    pub ra: RaContact,
    /// The agencies and programs the wizard offers.
    pub agencies: AgencyCatalog,
    /// What each type costs.
    pub prices: PriceTable,
    /// Application and retrieval windows, and reminders.
    pub deadlines: DeadlinePolicy,
    /// The wording of every notice.
    pub mail_templates: MailTemplates,
    /// Plain HTTP, HTTPS, or behind a TLS proxy.
    pub transport: crate::tls::Transport,
    /// What operators' passkeys must be.
    pub operator_passkeys: OperatorPasskeys,
}

impl Settings {
    /// The base URL in certificates for tools that do not bind a port: the configured one,
    /// or the plain HTTP address.
    pub fn certificate_base_url(&self) -> String {
        let plain = match &self.transport {
            crate::tls::Transport::Https(h) => h.http_listen,
            _ => self.listen,
        };
        self.base_url.clone().unwrap_or_else(|| format!("http://{plain}"))
    }

    /// The URL people and ACME clients use when it differs from the base URL: the configured
    /// one, or with HTTPS `https://<host>` at `https_port`.
    pub fn public_url(&self, https_port: u16) -> Option<String> {
        match &self.transport {
            crate::tls::Transport::Plain => None,
            crate::tls::Transport::BehindProxy { public_url } => public_url.clone(),
            crate::tls::Transport::Https(h) => Some(h.public_url.clone().unwrap_or_else(|| match https_port {
                443 => format!("https://{}", h.host),
                port => format!("https://{}:{port}", h.host),
            })),
        }
    }
}

fn read(path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::File { path: path.clone(), message: e.to_string() })
}

impl ServerConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &PathBuf) -> Result<Self, ConfigError> {
        let text = read(path)?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: AtLine::toml(&text, &e, |message| message).to_string(),
        })
    }

    /// Validates and fills defaults.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr =
            self.listen.as_deref().unwrap_or("127.0.0.1:8080").parse().map_err(|e: std::net::AddrParseError| {
                ConfigError::Invalid { field: "listen", message: e.to_string() }
            })?;
        if let Some(base) = &self.base_url
            && !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                field: "base_url",
                message: "must start with http:// or https://".into(),
            });
        }
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("data"));
        let database_url =
            self.database_url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("signet.db").display()));
        let hours = |field: &'static str, v: Option<u32>| match v.unwrap_or(24) {
            0 => Err(ConfigError::Invalid { field, message: "must be at least 1 hour".into() }),
            h if h > 24 * 31 => Err(ConfigError::Invalid { field, message: "must be at most 31 days".into() }),
            h => Ok(Duration::hours(i64::from(h))),
        };
        let catalog = match &self.profiles {
            Some(p) => Catalog::from_toml(&read(p)?)
                .map_err(|e| ConfigError::File { path: p.clone(), message: e.to_string() })?,
            None => Catalog::default_eca(),
        };
        let key_policy = match &self.key_blocklist {
            Some(p) => KeyPolicy::from_blocklist(&read(p)?)
                .map_err(|message| ConfigError::File { path: p.clone(), message })?,
            None => KeyPolicy::default(),
        };
        let attestation_roots = match &self.attestation_roots {
            Some(p) => AttestationRoots::from_pem(&read(p)?)
                .map_err(|e| ConfigError::File { path: p.clone(), message: e.to_string() })?,
            None => AttestationRoots::default(),
        };
        let mail = self.mail.into_settings(&data_dir, |name| std::env::var(name).ok())?;
        let acme = self.acme.into_settings(&catalog)?;
        let limits = self.limits.into_limits()?;
        let (agencies, prices) = self.ra.catalogs(&catalog)?;
        let deadlines = self.deadlines.into_policy()?;
        let mail_templates = self.ra.templates()?;
        let ra = self.ra.into_contact()?;
        let transport = self.tls.into_transport(&limits.trusted_proxies)?;
        let operator_passkeys = self.passkeys.into_policy()?;
        if matches!(transport, crate::tls::Transport::Https(_))
            && self.base_url.as_deref().is_some_and(|b| b.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                field: "base_url",
                message: "must be http:// with HTTPS: relying parties fetch CRLs and OCSP over plain HTTP; \
                          the https:// address is tls.public_url"
                    .into(),
            });
        }
        Ok(Settings {
            listen,
            base_url: self.base_url.map(|b| b.trim_end_matches('/').to_owned()),
            data_dir,
            database_url,
            crl_lifetime: hours("crl_lifetime_hours", self.crl_lifetime_hours)?,
            ocsp_validity: hours("ocsp_validity_hours", self.ocsp_validity_hours)?,
            catalog,
            key_policy,
            attestation_roots,
            mail,
            acme,
            limits,
            client_download: self.client_download,
            ra,
            agencies,
            prices,
            deadlines,
            mail_templates,
            transport,
            operator_passkeys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values() {
        let s = ServerConfig::default().into_settings().unwrap();
        assert_eq!(s.listen.port(), 8080);
        assert!(s.database_url.starts_with("sqlite://"));
        assert_eq!(s.crl_lifetime, Duration::hours(24));
        let bad = ServerConfig { listen: Some("nope".into()), ..Default::default() };
        assert!(matches!(bad.into_settings(), Err(ConfigError::Invalid { field: "listen", .. })));
        let bad = ServerConfig { crl_lifetime_hours: Some(0), ..Default::default() };
        assert!(matches!(bad.into_settings(), Err(ConfigError::Invalid { field: "crl_lifetime_hours", .. })));
        let bad = ServerConfig { base_url: Some("ftp://x".into()), ..Default::default() };
        assert!(bad.into_settings().is_err());
        assert!(toml::from_str::<ServerConfig>("unknown = 1").is_err());
        let https =
            "base_url = \"https://ca.example\"\n[tls]\nself_issued = [\"ca.example\"]\nhttp_listen = \"127.0.0.1:80\"";
        let bad: ServerConfig = toml::from_str(https).unwrap();
        assert!(
            matches!(bad.into_settings(), Err(ConfigError::Invalid { field: "base_url", .. })),
            "CRLs stay http://"
        );
        let ok: ServerConfig = toml::from_str(&https.replace("https://ca", "http://ca")).unwrap();
        let s = ok.into_settings().unwrap();
        assert_eq!(s.public_url(443).as_deref(), Some("https://ca.example"));
        assert_eq!(s.public_url(8443).as_deref(), Some("https://ca.example:8443"));
        assert_eq!(s.certificate_base_url(), "http://ca.example");
        assert!(toml::from_str::<ServerConfig>("[mail]\nsmtp_host = \"x\"").is_err(), "unknown mail field");
    }

    #[test]
    fn ra_table_is_read_and_validated() {
        let s = ServerConfig::default().into_settings().unwrap();
        assert_eq!(s.ra, RaContact::example(), "a development server has the example RA");
        let cfg: ServerConfig = toml::from_str(
            "[ra]\nname = \"Acme RA\"\nmailing_address = [\"Acme RA, ECA Forms\", \"PO Box 7\", \"Reston, VA 20190\"]\n\
             support_email = \"help@acme-ra.example\"\nsupport_phone = \"571-555-0199\"",
        )
        .unwrap();
        let ra = cfg.into_settings().unwrap().ra;
        assert_eq!(ra.name.as_str(), "Acme RA");
        assert_eq!(
            ra.mailing_address.lines().collect::<Vec<_>>(),
            ["Acme RA, ECA Forms", "PO Box 7", "Reston, VA 20190"]
        );
        assert_eq!(ra.support_line(), "Questions? Email help@acme-ra.example or call (571) 555-0199.");
        for (toml, field) in [
            ("[ra]\nmailing_address = [\"PO Box 7\"]", "ra.mailing_address"),
            ("[ra]\nmailing_address = [\"PO Box 7\", \"\"]", "ra.mailing_address"),
            ("[ra]\nsupport_email = \"help\"", "ra.support_email"),
            ("[ra]\nsupport_phone = \"call us\"", "ra.support_phone"),
            ("[ra]\nname = \"\"", "ra.name"),
        ] {
            let bad: ServerConfig = toml::from_str(toml).unwrap();
            assert!(matches!(bad.into_settings(), Err(ConfigError::Invalid { field: f, .. }) if f == field), "{toml}");
        }
        let seven = format!("[ra]\nmailing_address = [{}]", ["\"line\""; 7].join(", "));
        let bad: ServerConfig = toml::from_str(&seven).unwrap();
        let Err(ConfigError::Invalid { message, .. }) = bad.into_settings() else { panic!("seven lines accepted") };
        assert_eq!(message, "the mailing address must have 2 to 6 lines, not 7");
        assert!(toml::from_str::<ServerConfig>("[ra]\naddress = \"x\"").is_err(), "unknown ra field");
    }

    #[test]
    fn mail_table_is_read_and_validated() {
        let cfg: ServerConfig =
            toml::from_str("[mail]\nsmtp = \"smtp://127.0.0.1:2525\"\nfrom = \"Signet RA <ra@example.test>\"").unwrap();
        let s = cfg.into_settings().unwrap();
        assert_eq!(s.mail.from.to_string(), "Signet RA <ra@example.test>");
        assert!(matches!(s.mail.transport, crate::mail::MailTransport::Smtp(r) if r.port == 2525));
        let s = ServerConfig { data_dir: Some("/srv/x".into()), ..Default::default() }.into_settings().unwrap();
        assert!(
            matches!(s.mail.transport, crate::mail::MailTransport::Folder(p) if p == std::path::Path::new("/srv/x/mail"))
        );
        let bad: ServerConfig = toml::from_str("[mail]\nsmtp = \"smtp://x\"").unwrap();
        assert!(matches!(bad.into_settings(), Err(ConfigError::Invalid { field: "mail.from", .. })));
    }
}
