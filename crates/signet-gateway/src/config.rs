//! Gateway configuration: [`GatewayConfigFile`] is the TOML file as written;
//! [`GatewayConfigFile::validate`] turns it into a [`GatewayConfig`] whose certificates, keys,
//! trust anchors and policy names have all been read and checked, so a bad configuration
//! fails at start-up rather than on the first client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use signet_pki::profile::Catalog;

use crate::canonical::{CanonicalPath, canonicalize};
use crate::chain::TrustAnchors;
use crate::policy::PolicySet;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read or is not of the expected shape.
    #[error("{path}: {message}")]
    File {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

/// Whether an unanswerable revocation check denies (hard) or admits (soft) the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Deny with "revocation status unavailable" (the default).
    #[default]
    Hard,
    /// Admit, and log a warning.
    Soft,
}

/// `[revocation]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationFile {
    /// `hard` (default) or `soft`.
    pub mode: Option<FailMode>,
    /// Ask the OCSP responder named in the certificate's AIA; default true.
    pub ocsp: Option<bool>,
    /// Fall back to the CRL named in the certificate's CRL distribution point; default true.
    pub crl: Option<bool>,
    /// Send a nonce in OCSP requests and require it echoed (RFC 9654); default false.
    pub ocsp_nonce: Option<bool>,
    /// Longest time an OCSP answer is reused, seconds (it is never reused past its
    /// nextUpdate); default 60, at most 3600.
    pub cache_max_seconds: Option<u64>,
    /// Timeout for one OCSP, CRL or AIA fetch, milliseconds; default 3000.
    pub timeout_ms: Option<u64>,
}

/// One `[[route]]`: requests whose path starts with `prefix` need one of these policies
/// instead of the global list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Path prefix, e.g. `/admin`.
    pub prefix: String,
    /// Certificate type ids of the catalog (`medium-token`) or dotted policy OIDs.
    pub required_policies: Vec<String>,
    /// Match the prefix ignoring ASCII case, for applications that serve `/Records` and
    /// `/records` alike (IIS, case-insensitive file systems); default false.
    #[serde(default)]
    pub case_insensitive: bool,
}

/// The configuration file (`gateway.toml`). Relative paths are relative to the file's folder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfigFile {
    /// Address to listen on; default 127.0.0.1:8443.
    pub listen: Option<String>,
    /// The application behind the gateway, `http://host:port`.
    pub upstream: Option<String>,
    /// The gateway's TLS certificate chain (PEM, leaf first).
    pub server_cert: Option<PathBuf>,
    /// The gateway's TLS private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub server_key: Option<PathBuf>,
    /// Trust anchor files (PEM or DER; a PEM file may hold several roots, e.g. across a root
    /// rollover).
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
    /// Certificate types (catalog ids such as `medium-token`) or dotted policy OIDs, at
    /// least one of which the client's chain must assert (Keycloak's
    /// `requiredCertificatePolicies`). A type id admits its legacy OID too.
    #[serde(default)]
    pub required_policies: Vec<String>,
    /// Per-path overrides of `required_policies`; the longest matching prefix wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteFile>,
    /// Revocation checking.
    #[serde(default)]
    pub revocation: RevocationFile,
    /// Linked accounts file (TOML, managed by `signet gateway link`); default
    /// `accounts.toml` beside the configuration.
    pub accounts: Option<PathBuf>,
    /// Where first-time users go to link their certificate to an account; default the
    /// gateway's own `/.signet/link`.
    pub link_url: Option<String>,
    /// The link database: `sqlite:…` (default `gateway-links.db` beside this file) or
    /// `postgres://…` for several gateways sharing their links.
    pub database: Option<String>,
    /// Accounts that may approve link requests on `/.signet/admin`.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Fetch missing intermediates from the certificate's AIA caIssuers URL; default true.
    pub fetch_aia: Option<bool>,
}

/// Validated revocation settings.
#[derive(Debug, Clone)]
pub struct RevocationSettings {
    /// Hard or soft fail.
    pub mode: FailMode,
    /// Ask OCSP.
    pub ocsp: bool,
    /// Fall back to CRLs.
    pub crl: bool,
    /// Send and check an OCSP nonce.
    pub ocsp_nonce: bool,
    /// Longest reuse of an OCSP answer.
    pub cache_max: Duration,
    /// One fetch's timeout.
    pub timeout: Duration,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        Self {
            mode: FailMode::Hard,
            ocsp: true,
            crl: true,
            ocsp_nonce: false,
            cache_max: Duration::from_secs(60),
            timeout: Duration::from_millis(3000),
        }
    }
}

/// A per-path policy requirement.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path prefix.
    pub prefix: String,
    /// Accepted policies.
    pub required: PolicySet,
    /// Whether the prefix matches ignoring ASCII case.
    pub case_insensitive: bool,
}

/// Validated configuration.
#[derive(Debug)]
pub struct GatewayConfig {
    /// Listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// Upstream base, `http://host:port` with no path.
    pub upstream: hyper::Uri,
    /// TLS certificate chain.
    pub server_chain: Vec<CertificateDer<'static>>,
    /// TLS key.
    pub server_key: PrivateKeyDer<'static>,
    /// Trust anchors.
    pub anchors: TrustAnchors,
    /// Global accepted policies.
    pub required: PolicySet,
    /// Per-path overrides, longest prefix first.
    pub routes: Vec<Route>,
    /// Revocation checking.
    pub revocation: RevocationSettings,
    /// Linked accounts file.
    pub accounts: PathBuf,
    /// Link page URL.
    pub link_url: Option<String>,
    /// Link database URL.
    pub database: String,
    /// Gateway administrators (account names).
    pub admins: Vec<String>,
    /// Fetch missing intermediates by AIA.
    pub fetch_aia: bool,
}

impl GatewayConfig {
    /// The policies a request path needs: the longest matching route's, else the global ones.
    /// Only a [`CanonicalPath`] can be asked, so no other spelling of a path escapes its route.
    pub fn required_for(&self, path: &CanonicalPath) -> &PolicySet {
        self.routes
            .iter()
            .find(|r| path_has_prefix(path.as_str(), &r.prefix, r.case_insensitive))
            .map_or(&self.required, |r| &r.required)
    }
}

/// `/admin` matches `/admin` and `/admin/x`, not `/administrator`; with `fold_case`,
/// `/Admin/x` too.
fn path_has_prefix(path: &str, prefix: &str, fold_case: bool) -> bool {
    let prefix = prefix.trim_end_matches('/');
    let Some(head) = path.get(..prefix.len()) else { return false };
    let same = if fold_case { head.eq_ignore_ascii_case(prefix) } else { head == prefix };
    let rest = &path[prefix.len()..];
    same && (prefix.is_empty() || rest.is_empty() || rest.starts_with('/'))
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })
}

/// Reads certificates from a PEM file (every CERTIFICATE block) or a single DER file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read(path)?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::File { path: path.to_owned(), message: format!("bad PEM: {e}") })?;
    if certs.is_empty() {
        return Err(ConfigError::File { path: path.to_owned(), message: "no CERTIFICATE in the file".into() });
    }
    Ok(certs)
}

impl GatewayConfigFile {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = String::from_utf8(read(path)?)
            .map_err(|_| ConfigError::File { path: path.to_owned(), message: "not UTF-8".into() })?;
        toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })
    }

    /// Where the linked accounts file is, for a configuration file in folder `base`.
    pub fn accounts_path(&self, base: &Path) -> PathBuf {
        let p = self.accounts.clone().unwrap_or_else(|| PathBuf::from("accounts.toml"));
        if p.is_absolute() { p } else { base.join(p) }
    }

    /// Reads every referenced file (relative to `base`) and checks every value.
    pub fn validate(self, base: &Path, catalog: &Catalog) -> Result<GatewayConfig, ConfigError> {
        let at = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        let accounts = self.accounts_path(base);
        let listen: SocketAddr = self
            .listen
            .as_deref()
            .unwrap_or("127.0.0.1:8443")
            .parse()
            .map_err(|e: std::net::AddrParseError| invalid("listen", e.to_string()))?;
        let upstream_text = self.upstream.ok_or_else(|| invalid("upstream", "required, e.g. http://127.0.0.1:3000"))?;
        let upstream: hyper::Uri = upstream_text.parse().map_err(|e| invalid("upstream", format!("{e}")))?;
        if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
            return Err(invalid("upstream", "must be http://host:port"));
        }
        if !matches!(upstream.path(), "" | "/") || upstream.query().is_some() {
            return Err(invalid("upstream", "must not have a path"));
        }
        let cert_path = at(self.server_cert.as_ref().ok_or_else(|| invalid("server_cert", "required"))?);
        let server_chain = read_certificates(&cert_path)?;
        let key_path = at(self.server_key.as_ref().ok_or_else(|| invalid("server_key", "required"))?);
        let server_key = PrivateKeyDer::from_pem_slice(&read(&key_path)?)
            .map_err(|e| ConfigError::File { path: key_path.clone(), message: format!("no private key: {e}") })?;
        if self.trust_anchors.is_empty() {
            return Err(invalid("trust_anchors", "at least one trust anchor file is required"));
        }
        let mut anchor_ders = Vec::new();
        for p in &self.trust_anchors {
            anchor_ders.extend(read_certificates(&at(p))?);
        }
        let anchors = TrustAnchors::new(anchor_ders.iter().map(|c| c.to_vec()))
            .map_err(|e| invalid("trust_anchors", e.to_string()))?;
        if self.required_policies.is_empty() {
            return Err(invalid("required_policies", "name at least one certificate type or policy OID"));
        }
        let required = PolicySet::resolve(&self.required_policies, catalog)
            .map_err(|e| invalid("required_policies", e.to_string()))?;
        let mut routes = Vec::new();
        for r in self.routes {
            if !r.prefix.starts_with('/') {
                return Err(invalid("route.prefix", format!("{:?} must start with /", r.prefix)));
            }
            if r.required_policies.is_empty() {
                return Err(invalid("route.required_policies", format!("route {} names no policy", r.prefix)));
            }
            match canonicalize(&r.prefix) {
                Ok(c) if c.as_str() == r.prefix => {}
                Ok(c) => {
                    return Err(invalid(
                        "route.prefix",
                        format!("{:?} is not canonical; write it as {:?}", r.prefix, c),
                    ));
                }
                Err(e) => return Err(invalid("route.prefix", format!("{:?}: {e}", r.prefix))),
            }
            let required = PolicySet::resolve(&r.required_policies, catalog)
                .map_err(|e| invalid("route.required_policies", e.to_string()))?;
            routes.push(Route { prefix: r.prefix, required, case_insensitive: r.case_insensitive });
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.trim_end_matches('/').len()));
        let rf = self.revocation;
        let cache_max = rf.cache_max_seconds.unwrap_or(60);
        if cache_max > 3600 {
            return Err(invalid("revocation.cache_max_seconds", "at most 3600"));
        }
        let timeout = rf.timeout_ms.unwrap_or(3000);
        if !(100..=60_000).contains(&timeout) {
            return Err(invalid("revocation.timeout_ms", "between 100 and 60000"));
        }
        let revocation = RevocationSettings {
            mode: rf.mode.unwrap_or_default(),
            ocsp: rf.ocsp.unwrap_or(true),
            crl: rf.crl.unwrap_or(true),
            ocsp_nonce: rf.ocsp_nonce.unwrap_or(false),
            cache_max: Duration::from_secs(cache_max),
            timeout: Duration::from_millis(timeout),
        };
        if !revocation.ocsp && !revocation.crl && revocation.mode == FailMode::Hard {
            return Err(invalid("revocation", "hard-fail with neither OCSP nor CRL would deny everyone"));
        }
        if let Some(u) = &self.link_url
            && !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with('/'))
        {
            return Err(invalid("link_url", "must be an http(s) URL or an absolute path"));
        }
        Ok(GatewayConfig {
            listen,
            upstream,
            server_chain,
            server_key,
            anchors,
            required,
            routes,
            revocation,
            accounts,
            link_url: Some(self.link_url.unwrap_or_else(|| crate::selfservice::LINK_PATH.to_owned())),
            database: database_url(self.database.as_deref(), base),
            admins: self.admins,
            fetch_aia: self.fetch_aia.unwrap_or(true),
        })
    }
}

/// The link database URL: a relative SQLite path is relative to the configuration's folder.
fn database_url(url: Option<&str>, base: &Path) -> String {
    let url = url.unwrap_or("sqlite://gateway-links.db");
    match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(":memory:") => {
            format!("sqlite://{}", base.join(rest).display())
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_prefixes_match_whole_segments() {
        assert!(path_has_prefix("/admin", "/admin", false));
        assert!(path_has_prefix("/admin/users", "/admin/", false));
        assert!(!path_has_prefix("/administrator", "/admin", false));
        assert!(path_has_prefix("/anything", "/", false));
        assert!(!path_has_prefix("/Admin/users", "/admin", false));
        assert!(path_has_prefix("/Admin/users", "/admin", true));
        assert!(path_has_prefix("/ADMIN", "/admin/", true));
        assert!(!path_has_prefix("/ADMINistrator", "/admin", true));
        assert!(!path_has_prefix("/adm", "/admin", true));
        assert!(!path_has_prefix("/caf%C3%A9", "/caf", true));
    }

    #[test]
    fn unknown_fields_and_missing_values_are_refused() {
        assert!(toml::from_str::<GatewayConfigFile>("nope = 1").is_err());
        assert!(toml::from_str::<GatewayConfigFile>("[revocation]\nmode = \"maybe\"").is_err());
        let dir = tempfile::tempdir().unwrap();
        let cfg = GatewayConfigFile::default();
        let err = cfg.validate(dir.path(), &Catalog::default_eca()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "upstream", .. }), "{err}");
        let cfg = GatewayConfigFile { upstream: Some("https://x:1".into()), ..Default::default() };
        let err = cfg.validate(dir.path(), &Catalog::default_eca()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { field: "upstream", .. }), "{err}");
    }

    #[test]
    fn sqlite_paths_are_relative_to_the_configuration() {
        let base = Path::new("/etc/signet");
        assert_eq!(database_url(None, base), "sqlite:///etc/signet/gateway-links.db");
        assert_eq!(database_url(Some("sqlite://links.db"), base), "sqlite:///etc/signet/links.db");
        assert_eq!(database_url(Some("sqlite:links.db?mode=rwc"), base), "sqlite:///etc/signet/links.db?mode=rwc");
        assert_eq!(database_url(Some("sqlite:///var/lib/gw.db"), base), "sqlite:///var/lib/gw.db");
        assert_eq!(database_url(Some("postgres://gw@db/gw"), base), "postgres://gw@db/gw");
    }

    #[test]
    fn route_prefixes_must_be_canonical() {
        for (prefix, ok) in [("/records", true), ("/records/", true), ("//records", false), ("/%72ecords", false)] {
            let text =
                format!("[[route]]\nprefix = {prefix:?}\nrequired_policies = [\"medium\"]\ncase_insensitive = true\n");
            let file: GatewayConfigFile = toml::from_str(&text).unwrap();
            let r = &file.routes[0];
            let canonical = canonicalize(&r.prefix).map(|c| c.as_str() == r.prefix);
            assert_eq!(canonical, Ok(ok), "{prefix}");
            assert!(r.case_insensitive);
        }
        assert!(canonicalize("/records;x").is_err());
    }
}
