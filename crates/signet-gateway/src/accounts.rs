//! Account binding: which application account a certificate stands for. Links are kept in a
//! small TOML file (`[[link]]` entries) that `signet gateway link` edits and the running
//! gateway re-reads when it changes, so linking needs no restart.
//!
//! A link names either a subject DN together with its issuer DN (a certificate renewed under
//! the same name keeps its account), or an email address from the certificate's
//! subjectAltName.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Why the accounts file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Reading or writing the file failed.
    #[error("{path}: {message}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// The file is not a valid accounts file.
    #[error("{path}: {message}")]
    Format {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A link must name an account and either subject + issuer DNs or an email.
    #[error("a link needs an account and either --subject-dn with --issuer-dn, or --email")]
    Incomplete,
}

/// One link from a certificate identity to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountLink {
    /// The application's account id (sent upstream as `X-Signet-Account`).
    pub account: String,
    /// Subject DN as the gateway shows it (`C=US, O=U.S. Government, …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_dn: Option<String>,
    /// Issuer DN; required with `subject_dn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_dn: Option<String>,
    /// rfc822Name in the certificate's subjectAltName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl AccountLink {
    fn check(&self) -> Result<(), AccountError> {
        let by_dn = self.subject_dn.is_some() && self.issuer_dn.is_some();
        if self.account.trim().is_empty() || !(by_dn || self.email.is_some()) {
            return Err(AccountError::Incomplete);
        }
        Ok(())
    }

    fn matches(&self, subject: &str, issuer: &str, emails: &[String]) -> bool {
        let by_dn = match (&self.subject_dn, &self.issuer_dn) {
            (Some(s), Some(i)) => normalize_dn(s) == normalize_dn(subject) && normalize_dn(i) == normalize_dn(issuer),
            _ => false,
        };
        let by_email = self.email.as_ref().is_some_and(|e| emails.iter().any(|m| m.eq_ignore_ascii_case(e)));
        by_dn || by_email
    }
}

/// The identity a link can name, read from a certificate (PEM or DER): subject DN, issuer
/// DN and SAN emails, in the form the gateway compares.
pub fn identity_of_certificate(bytes: &[u8]) -> Result<(String, String, Vec<String>), String> {
    use rustls_pki_types::pem::PemObject;
    let der = if bytes.first() == Some(&0x30) {
        bytes.to_vec()
    } else {
        rustls_pki_types::CertificateDer::pem_slice_iter(bytes)
            .next()
            .ok_or("no CERTIFICATE in the file")?
            .map_err(|e| format!("bad PEM: {e}"))?
            .to_vec()
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| format!("not a certificate: {e}"))?;
    let emails = crate::chain::san_emails(&cert);
    Ok((crate::chain::name_text(cert.subject()), crate::chain::name_text(cert.issuer()), emails))
}

/// DN comparison that forgives spacing and case around `,` and `=` (people paste DNs).
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            let (k, v) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!("{}={}", k.trim().to_ascii_uppercase(), v.trim().to_lowercase())
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default, rename = "link")]
    links: Vec<AccountLink>,
}

fn read_file(path: &Path) -> Result<Vec<AccountLink>, AccountError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AccountError::Io { path: path.to_owned(), message: e.to_string() }),
    };
    let file: AccountsFile =
        toml::from_str(&text).map_err(|e| AccountError::Format { path: path.to_owned(), message: e.to_string() })?;
    for l in &file.links {
        l.check().map_err(|e| AccountError::Format { path: path.to_owned(), message: e.to_string() })?;
    }
    Ok(file.links)
}

fn write_file(path: &Path, links: Vec<AccountLink>) -> Result<(), AccountError> {
    let io = |e: std::io::Error| AccountError::Io { path: path.to_owned(), message: e.to_string() };
    let text = toml::to_string(&AccountsFile { links })
        .map_err(|e| AccountError::Format { path: path.to_owned(), message: e.to_string() })?;
    // Write beside and rename, so the gateway never reads half a file.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Adds a link (replacing any link with the same identity) to the file at `path`.
pub fn link(path: &Path, new: AccountLink) -> Result<(), AccountError> {
    new.check()?;
    let mut links = read_file(path)?;
    links.retain(|l| !(l.subject_dn == new.subject_dn && l.issuer_dn == new.issuer_dn && l.email == new.email));
    links.push(new);
    write_file(path, links)
}

/// Removes every link to `account`; returns how many there were.
pub fn unlink(path: &Path, account: &str) -> Result<usize, AccountError> {
    let mut links = read_file(path)?;
    let before = links.len();
    links.retain(|l| l.account != account);
    let removed = before - links.len();
    write_file(path, links)?;
    Ok(removed)
}

/// The links a running gateway consults; re-reads the file when its modification time
/// changes.
#[derive(Debug)]
pub struct AccountStore {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<AccountLink>)>,
}

impl AccountStore {
    /// Opens (and reads once) the file at `path`; a missing file means no links yet.
    pub fn open(path: PathBuf) -> Result<Self, AccountError> {
        let links = read_file(&path)?;
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(Self { path, cache: Mutex::new((mtime, links)) })
    }

    /// The account linked to this certificate identity, if any.
    pub fn lookup(&self, subject: &str, issuer: &str, emails: &[String]) -> Result<Option<String>, AccountError> {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cache = self.cache.lock().expect("account cache lock");
        if cache.0 != mtime {
            *cache = (mtime, read_file(&self.path)?);
        }
        Ok(cache.1.iter().find(|l| l.matches(subject, issuer, emails)).map(|l| l.account.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_lookup_and_unlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        let store = AccountStore::open(path.clone()).unwrap();
        let subject = "C=US, O=U.S. Government, OU=ECA, CN=Ann Smith";
        let issuer = "C=US, O=U.S. Government, OU=ECA, CN=Signet ECA 1";
        assert_eq!(store.lookup(subject, issuer, &[]).unwrap(), None);
        link(
            &path,
            AccountLink {
                account: "ann".into(),
                subject_dn: Some("c=US,o=U.S. Government, OU=ECA,CN=ann smith".into()),
                issuer_dn: Some(issuer.into()),
                email: None,
            },
        )
        .unwrap();
        link(
            &path,
            AccountLink { account: "bob".into(), subject_dn: None, issuer_dn: None, email: Some("bob@x.test".into()) },
        )
        .unwrap();
        // mtime resolution can be coarse: force a re-read.
        store.cache.lock().unwrap().0 = None;
        assert_eq!(store.lookup(subject, issuer, &[]).unwrap().as_deref(), Some("ann"));
        assert_eq!(store.lookup(subject, "CN=Other CA", &[]).unwrap(), None);
        assert_eq!(store.lookup("CN=Bob", issuer, &["BOB@x.test".into()]).unwrap().as_deref(), Some("bob"));
        assert_eq!(unlink(&path, "ann").unwrap(), 1);
        store.cache.lock().unwrap().0 = None;
        assert_eq!(store.lookup(subject, issuer, &[]).unwrap(), None);
        let incomplete =
            AccountLink { account: "x".into(), subject_dn: Some("CN=x".into()), issuer_dn: None, email: None };
        assert!(matches!(link(&path, incomplete), Err(AccountError::Incomplete)));
    }
}
