//! The mail relay's sending side: renders an outbox message as an RFC 5322 email and
//! hands it to an SMTP relay — or, in development, writes it as an `.eml` file to a folder.
//!
//! Configured by `[mail]` in `signet.toml` ([`MailConfig`] → [`MailSettings`]):
//! ```toml
//! [mail]
//! smtp = "smtp://mail.example.gov:587"   # or smtps://host (TLS from the first byte)
//! starttls = true                        # with smtp://: upgrade before anything is sent
//! from = "Signet RA <ra@example.gov>"
//! # or, instead of smtp: folder = "data/mail" (the default: <data_dir>/mail)
//! ```
//! Relay credentials come from `SIGNET_SMTP_USERNAME` / `SIGNET_SMTP_PASSWORD`, never from the
//! file, and only over TLS. Bodies carry one-time secrets (activation codes, verification
//! links), so nothing here logs a message or the password.
//!
//! Each email's Message-ID derives from the outbox dedup key, and the folder transport names
//! its file by it: a message re-sent after a crash between the relay's acceptance and
//! `mark_sent` is recognisably the same message (and in the folder, the same file).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use signet_ra::notify::OutboxMessage;
use time::OffsetDateTime;

use crate::config_error::ConfigError;

/// The environment variable holding the relay user name.
pub const USERNAME_ENV: &str = "SIGNET_SMTP_USERNAME";
/// The environment variable holding the relay password.
pub const PASSWORD_ENV: &str = "SIGNET_SMTP_PASSWORD";

/// How long one SMTP command may take: a relay that hangs must not hold the outbox job (and
/// its lease) for the default minute per message.
const SMTP_TIMEOUT: StdDuration = StdDuration::from_secs(20);

/// The `[mail]` table as written; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `smtp://host[:port]` (port 25, or 587 with `starttls`) or `smtps://host[:port]` (465).
    pub smtp: Option<String>,
    /// With `smtp://`: require STARTTLS, so nothing (credentials included) goes in clear.
    pub starttls: Option<bool>,
    /// An extra trust anchor (PEM) for the relay's certificate, beside the system's.
    pub tls_ca: Option<PathBuf>,
    /// Write `.eml` files here instead of sending; the default when `smtp` is unset is
    /// `<data_dir>/mail`.
    pub folder: Option<PathBuf>,
    /// The From mailbox, e.g. `Signet RA <ra@example.gov>`; required with `smtp`.
    pub from: Option<String>,
}

/// Validated mail settings.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The From mailbox.
    pub from: Mailbox,
    /// Where mail goes.
    pub transport: MailTransport,
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// An SMTP relay.
    Smtp(SmtpRelay),
    /// `.eml` files in a folder (development).
    Folder(PathBuf),
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// None: for a relay on the same host or a trusted segment.
    Plain,
    /// Plain connect, then a required STARTTLS upgrade.
    Starttls,
    /// TLS from the first byte (`smtps://`).
    Tls,
}

/// An SMTP relay.
#[derive(Debug, Clone)]
pub struct SmtpRelay {
    /// Host name or IP address (also the name its certificate must carry).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Connection protection.
    pub security: SmtpSecurity,
    /// Extra trust anchor file (PEM).
    pub tls_ca: Option<PathBuf>,
    /// Login, if the relay wants one.
    pub credentials: Option<SmtpCredentials>,
}

/// A relay login. Debug shows the user name only.
#[derive(Clone)]
pub struct SmtpCredentials {
    username: String,
    password: String,
}

impl SmtpCredentials {
    /// The login name (the password never leaves this type except to the relay).
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

/// Splits `smtp[s]://host[:port]` into its parts. User info, paths and queries are refused:
/// credentials belong in the environment, and nothing else means anything to a relay.
fn parse_smtp_url(url: &str) -> Result<(bool, String, Option<u16>), ConfigError> {
    let field = "mail.smtp";
    let (tls, rest) = if let Some(rest) = url.strip_prefix("smtps://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("smtp://") {
        (false, rest)
    } else {
        return Err(invalid(field, "must start with smtp:// or smtps://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(invalid(field, format!("put credentials in {USERNAME_ENV} and {PASSWORD_ENV}, not in the URL")));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(invalid(field, "must be smtp[s]://host[:port], with no path or query"));
    }
    // An IPv6 literal keeps its colons inside brackets.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(invalid(field, "names no host"));
    }
    let port = port
        .map(|p| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| invalid(field, format!("bad port {p:?}"))))
        .transpose()?;
    Ok((tls, host.to_owned(), port))
}

impl MailConfig {
    /// Validates and fills defaults; `env` looks up the credential variables (the process
    /// environment in production; tests pass their own, as setting variables is unsafe).
    pub fn into_settings(
        self,
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<MailSettings, ConfigError> {
        let from = self
            .from
            .as_deref()
            .map(|f| f.parse::<Mailbox>().map_err(|e| invalid("mail.from", format!("{f:?} is not a mailbox: {e}"))));
        let Some(url) = self.smtp else {
            if self.starttls.is_some() || self.tls_ca.is_some() {
                return Err(invalid("mail", "starttls and tls_ca apply only with smtp"));
            }
            // Dev mail never leaves the folder, so a placeholder sender harms no one.
            let from = from.unwrap_or_else(|| Ok("Signet RA <ra@signet.invalid>".parse().expect("valid mailbox")))?;
            let folder = self.folder.unwrap_or_else(|| data_dir.join("mail"));
            return Ok(MailSettings { from, transport: MailTransport::Folder(folder) });
        };
        if self.folder.is_some() {
            return Err(invalid("mail", "set either smtp or folder, not both"));
        }
        let from = from.ok_or_else(|| invalid("mail.from", "required with smtp"))??;
        let (tls, host, port) = parse_smtp_url(&url)?;
        let security = match (tls, self.starttls.unwrap_or(false)) {
            (true, true) => return Err(invalid("mail.starttls", "smtps:// is TLS already; drop starttls")),
            (true, false) => SmtpSecurity::Tls,
            (false, true) => SmtpSecurity::Starttls,
            (false, false) => SmtpSecurity::Plain,
        };
        if security == SmtpSecurity::Plain && self.tls_ca.is_some() {
            return Err(invalid("mail.tls_ca", "needs smtps:// or starttls = true"));
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        let credentials = match (var(USERNAME_ENV), var(PASSWORD_ENV)) {
            (None, None) => None,
            (Some(username), Some(password)) => Some(SmtpCredentials { username, password }),
            _ => return Err(invalid("mail", format!("set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither"))),
        };
        if credentials.is_some() && security == SmtpSecurity::Plain {
            return Err(invalid("mail", "relay credentials are sent only over TLS: use smtps:// or starttls = true"));
        }
        let port = port.unwrap_or(match security {
            SmtpSecurity::Plain => 25,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
        });
        Ok(MailSettings {
            from,
            transport: MailTransport::Smtp(SmtpRelay { host, port, security, tls_ca: self.tls_ca, credentials }),
        })
    }
}

/// Why mail could not be set up or sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The relay's TLS parameters could not be built (an unreadable or invalid `tls_ca`).
    #[error("SMTP TLS setup: {0}")]
    Tls(String),
    /// The mail folder could not be created or written.
    #[error("mail folder {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The email could not be built (a recipient the mail system does not accept).
    #[error("cannot build the email: {0}")]
    Compose(String),
    /// The relay could not be reached, or refused the message.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

/// Sends outbox messages as emails.
pub struct Mailer {
    from: Mailbox,
    transport: Transport,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to = match &self.transport {
            Transport::Smtp(_) => "smtp".to_owned(),
            Transport::Folder(p) => p.display().to_string(),
        };
        f.debug_struct("Mailer").field("from", &self.from.to_string()).field("transport", &to).finish()
    }
}

fn tls_parameters(relay: &SmtpRelay) -> Result<TlsParameters, MailError> {
    let tls = |e: &dyn fmt::Display| MailError::Tls(e.to_string());
    let mut builder = TlsParameters::builder(relay.host.clone());
    if let Some(path) = &relay.tls_ca {
        let pem = std::fs::read(path).map_err(|e| tls(&format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| tls(&e))?);
    }
    builder.build().map_err(|e| tls(&e))
}

impl Mailer {
    /// A mailer for `settings`: builds the relay's TLS parameters, or creates the folder.
    pub fn new(settings: &MailSettings) -> Result<Self, MailError> {
        let transport = match &settings.transport {
            MailTransport::Smtp(relay) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
                    .port(relay.port)
                    .timeout(Some(SMTP_TIMEOUT))
                    .tls(match relay.security {
                        SmtpSecurity::Plain => Tls::None,
                        SmtpSecurity::Starttls => Tls::Required(tls_parameters(relay)?),
                        SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(relay)?),
                    });
                if let Some(c) = &relay.credentials {
                    builder = builder.credentials(Credentials::new(c.username.clone(), c.password.clone()));
                }
                let loopback =
                    relay.host == "localhost" || relay.host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
                if relay.security == SmtpSecurity::Plain && !loopback {
                    tracing::warn!(host = %relay.host, "mail to the SMTP relay is not encrypted; activation codes cross the network in clear");
                }
                Transport::Smtp(builder.build())
            }
            MailTransport::Folder(path) => {
                std::fs::create_dir_all(path).map_err(|source| MailError::Folder { path: path.clone(), source })?;
                Transport::Folder(path.clone())
            }
        };
        Ok(Self { from: settings.from.clone(), transport })
    }

    /// Sends `message`, dated `date` (the injected clock's time).
    pub async fn send(&self, message: &OutboxMessage, date: OffsetDateTime) -> Result<(), MailError> {
        let key = message_key(&message.dedup_key);
        let email = self.compose(message, &key, date)?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(email).await?;
            }
            Transport::Folder(dir) => {
                let folder = |source| MailError::Folder { path: dir.clone(), source };
                // Written aside and renamed, so a reader never sees half a message.
                let partial = dir.join(format!(".{key}.partial"));
                tokio::fs::write(&partial, email.formatted()).await.map_err(folder)?;
                tokio::fs::rename(&partial, dir.join(format!("{key}.eml"))).await.map_err(folder)?;
            }
        }
        Ok(())
    }

    fn compose(&self, message: &OutboxMessage, key: &str, date: OffsetDateTime) -> Result<Message, MailError> {
        let to: Address = message.to.as_str().parse().map_err(|e| MailError::Compose(format!("recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(message.subject.as_str())
            .date(date.into())
            .message_id(Some(format!("<{key}@{}>", self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(message.body_text.clone())
            .map_err(|e| MailError::Compose(e.to_string()))
    }
}

/// A stable, header- and file-name-safe name for the message with this dedup key.
fn message_key(dedup_key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, dedup_key.as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn smtp(url: &str) -> MailConfig {
        MailConfig { smtp: Some(url.into()), from: Some("Signet RA <ra@example.test>".into()), ..Default::default() }
    }

    fn relay(config: MailConfig, vars: &[(&str, &str)]) -> Result<SmtpRelay, ConfigError> {
        match config.into_settings(Path::new("data"), env(vars))?.transport {
            MailTransport::Smtp(r) => Ok(r),
            MailTransport::Folder(_) => panic!("expected SMTP"),
        }
    }

    fn refused(config: MailConfig, vars: &[(&str, &str)]) -> String {
        match config.into_settings(Path::new("data"), env(vars)) {
            Err(ConfigError::Invalid { field, message }) => format!("{field}: {message}"),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn default_is_a_folder_in_the_data_dir() {
        let s = MailConfig::default().into_settings(Path::new("/srv/signet"), env(&[])).unwrap();
        assert!(matches!(s.transport, MailTransport::Folder(p) if p == Path::new("/srv/signet/mail")));
        assert_eq!(s.from.email.domain(), "signet.invalid");
    }

    #[test]
    fn smtp_urls_pick_security_and_port() {
        let r = relay(smtp("smtp://127.0.0.1:2525"), &[]).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.security), ("127.0.0.1", 2525, SmtpSecurity::Plain));
        let r = relay(smtp("smtps://mail.example.gov/"), &[]).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.security), ("mail.example.gov", 465, SmtpSecurity::Tls));
        let r = relay(MailConfig { starttls: Some(true), ..smtp("smtp://mail.example.gov") }, &[]).unwrap();
        assert_eq!((r.port, r.security), (587, SmtpSecurity::Starttls));
        let r = relay(smtp("smtp://[::1]:25"), &[]).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 25));
        let r = relay(smtp("smtp://[::1]"), &[]).unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 25));
    }

    #[test]
    fn bad_mail_settings_are_refused() {
        assert!(refused(smtp("http://x"), &[]).contains("smtp://"));
        assert!(refused(smtp("smtp://user:pw@x"), &[]).contains(PASSWORD_ENV));
        assert!(refused(smtp("smtp://x/path"), &[]).contains("no path"));
        assert!(refused(smtp("smtp://x:0"), &[]).contains("bad port"));
        assert!(refused(smtp("smtp://:25"), &[]).contains("no host"));
        assert!(refused(MailConfig { from: None, ..smtp("smtp://x") }, &[]).starts_with("mail.from"));
        assert!(
            refused(MailConfig { from: Some("not an address".into()), ..smtp("smtp://x") }, &[]).contains("mailbox")
        );
        assert!(refused(MailConfig { folder: Some("m".into()), ..smtp("smtp://x") }, &[]).contains("not both"));
        assert!(refused(MailConfig { starttls: Some(true), ..smtp("smtps://x") }, &[]).starts_with("mail.starttls"));
        assert!(
            refused(MailConfig { tls_ca: Some("ca.pem".into()), ..smtp("smtp://x") }, &[]).starts_with("mail.tls_ca")
        );
        assert!(refused(MailConfig { starttls: Some(true), ..Default::default() }, &[]).contains("only with smtp"));
        assert!(toml::from_str::<MailConfig>("smtp = \"smtp://x\"\npassword = \"p\"").is_err(), "unknown field");
    }

    #[test]
    fn credentials_come_from_the_environment_and_only_over_tls() {
        let login = [(USERNAME_ENV, "relay-user"), (PASSWORD_ENV, "hunter2-correct-horse")];
        let r = relay(smtp("smtps://mail.example.gov"), &login).unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("relay-user") && !debug.contains("hunter2"), "{debug}");
        assert!(refused(smtp("smtp://mail.example.gov"), &login).contains("only over TLS"));
        assert!(refused(smtp("smtps://x"), &login[..1]).contains("or neither"));
        assert!(relay(smtp("smtps://x"), &[(USERNAME_ENV, ""), (PASSWORD_ENV, "")]).unwrap().credentials.is_none());
    }

    #[test]
    fn message_keys_are_stable_and_distinct() {
        let a = message_key("activation-code:ABC");
        assert_eq!(a, message_key("activation-code:ABC"));
        assert_ne!(a, message_key("activation-code:ABD"));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
