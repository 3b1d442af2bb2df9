//! How the server meets its clients: `[tls]` in the configuration file, turned into a
//! validated [`Transport`] — plain HTTP (the development default), HTTPS with a certificate
//! from files or one Signet issues to itself, or plain HTTP behind a TLS-terminating proxy —
//! and the rustls acceptor that serves whichever certificate is current.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use signet_pki::subject::DnsName;
use tokio_rustls::TlsAcceptor;

use crate::config_error::ConfigError;

/// `[tls]` as written; every field optional. At most one of `certificate`/`key`,
/// `self_issued` and `behind_proxy`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first, that HTTPS presents.
    pub certificate: Option<PathBuf>,
    /// PEM private key of `certificate` (PKCS#8, SEC1 or PKCS#1).
    pub key: Option<PathBuf>,
    /// Host names of a certificate Signet issues to itself from its own CA and renews.
    #[serde(default)]
    pub self_issued: Vec<String>,
    /// TLS ends at a reverse proxy in front: the listener stays plain HTTP, and
    /// `X-Forwarded-Proto` is believed from `limits.trusted_proxies` only.
    #[serde(default)]
    pub behind_proxy: bool,
    /// The plain HTTP listener beside HTTPS: it redirects pages and serves OCSP, CRLs and CA
    /// certificates, which relying parties fetch over plain HTTP. Required with HTTPS.
    pub http_listen: Option<String>,
    /// The `https://` URL people and ACME clients use; default `https://<first host name>:<port>`.
    pub public_url: Option<String>,
}

/// Validated `[tls]`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Plain HTTP on `listen`.
    #[default]
    Plain,
    /// Plain HTTP on `listen`, TLS at the trusted proxies in front.
    BehindProxy {
        /// See [`TlsConfig::public_url`].
        public_url: Option<String>,
    },
    /// HTTPS on `listen`, plain HTTP on `http_listen`.
    Https(HttpsSettings),
}

/// HTTPS served by Signet itself.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    /// Where the certificate comes from.
    pub certificate: CertificateSource,
    /// See [`TlsConfig::http_listen`].
    pub http_listen: SocketAddr,
    /// See [`TlsConfig::public_url`].
    pub public_url: Option<String>,
    /// The host the public URL names when none is configured.
    pub host: String,
}

/// The certificate HTTPS presents.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// Read from files at start-up.
    Files(Arc<CertifiedKey>),
    /// Issued by this server's CA for these names and renewed before it expires.
    SelfIssued(Vec<DnsName>),
}

impl Transport {
    /// Whether requests from trusted proxies may say they came over HTTPS.
    pub fn trusts_forwarded_proto(&self) -> bool {
        matches!(self, Self::BehindProxy { .. })
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { field, message: message.into() }
}

impl TlsConfig {
    /// Validates, reading the certificate files; `trusted_proxies` are `[limits]`'s.
    pub fn into_transport(self, trusted_proxies: &[IpAddr]) -> Result<Transport, ConfigError> {
        let files = self.certificate.is_some() || self.key.is_some();
        let chosen = usize::from(files) + usize::from(!self.self_issued.is_empty()) + usize::from(self.behind_proxy);
        if chosen > 1 {
            return Err(invalid("tls", "choose one of certificate and key, self_issued, or behind_proxy"));
        }
        if let Some(url) = &self.public_url
            && !url.starts_with("https://")
        {
            return Err(invalid("tls.public_url", "must start with https://"));
        }
        let public_url = self.public_url.map(|u| u.trim_end_matches('/').to_owned());
        if chosen == 0 || self.behind_proxy {
            if self.http_listen.is_some() {
                return Err(invalid("tls.http_listen", "only with certificate and key, or self_issued"));
            }
            if chosen == 0 {
                return match public_url {
                    Some(_) => Err(invalid("tls.public_url", "only with HTTPS or behind_proxy")),
                    None => Ok(Transport::Plain),
                };
            }
            if trusted_proxies.is_empty() {
                return Err(invalid("tls.behind_proxy", "needs the proxies' addresses in limits.trusted_proxies"));
            }
            return Ok(Transport::BehindProxy { public_url });
        }
        let http_listen = self
            .http_listen
            .as_deref()
            .ok_or_else(|| invalid("tls.http_listen", "required with HTTPS: OCSP and CRLs are served over plain HTTP"))?
            .parse()
            .map_err(|e: std::net::AddrParseError| invalid("tls.http_listen", e.to_string()))?;
        let (certificate, host) = if files {
            let cert = self.certificate.ok_or_else(|| invalid("tls.certificate", "required with tls.key"))?;
            let key = self.key.ok_or_else(|| invalid("tls.key", "required with tls.certificate"))?;
            let (certified, host) = read_files(&cert, &key)?;
            (CertificateSource::Files(Arc::new(certified)), host)
        } else {
            let names = self
                .self_issued
                .iter()
                .map(|n| DnsName::new(n).map_err(|e| invalid("tls.self_issued", e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let host = names[0].as_str().to_owned();
            (CertificateSource::SelfIssued(names), host)
        };
        Ok(Transport::Https(HttpsSettings { certificate, http_listen, public_url, host }))
    }
}

/// The certificate and key files as rustls serves them, and the leaf's first DNS name.
fn read_files(cert: &Path, key: &Path) -> Result<(CertifiedKey, String), ConfigError> {
    let file_error = |path: &Path, message: String| ConfigError::File { path: path.to_path_buf(), message };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(cert, e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(cert, "no CERTIFICATE in the file".into()));
    };
    let host = first_dns_name(leaf).ok_or_else(|| file_error(cert, "the certificate names no DNS host".into()))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let certified = certified_key(chain, key_der).map_err(|e| file_error(key, e.to_string()))?;
    Ok((certified, host))
}

/// A chain and its key, checked to belong together.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    CertifiedKey::from_der(chain, key, &rustls::crypto::aws_lc_rs::default_provider())
}

fn first_dns_name(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
        _ => None,
    })
}

/// The certificate HTTPS presents now; the self-issued one is swapped here when renewed,
/// without a restart and without dropping connections.
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(current: Arc<CertifiedKey>) -> Self {
        Self(RwLock::new(current))
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.read().expect("certificate slot poisoned").clone()
    }

    pub fn replace(&self, next: Arc<CertifiedKey>) {
        *self.0.write().expect("certificate slot poisoned") = next;
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.3 and 1.2 only (aws-lc-rs), HTTP/1.1 by ALPN, the certificate from `slot`.
pub fn acceptor(slot: Arc<CertSlot>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("aws-lc-rs supports TLS 1.3 and 1.2")
        .with_no_client_auth()
        .with_cert_resolver(slot);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str, proxies: &[IpAddr]) -> Result<Transport, ConfigError> {
        toml::from_str::<TlsConfig>(toml).unwrap().into_transport(proxies)
    }

    fn field(r: Result<Transport, ConfigError>) -> &'static str {
        match r {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn modes_and_refusals_name_the_field() {
        assert!(matches!(parse("", &[]), Ok(Transport::Plain)));
        let https = parse("self_issued = [\"Signet.Example\"]\nhttp_listen = \"127.0.0.1:80\"", &[]).unwrap();
        let Transport::Https(h) = https else { panic!("not https") };
        assert_eq!((h.host.as_str(), h.http_listen.port()), ("signet.example", 80));
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(parse("behind_proxy = true", &[proxy]).unwrap().trusts_forwarded_proto());
        assert_eq!(field(parse("behind_proxy = true", &[])), "tls.behind_proxy");
        assert_eq!(field(parse("self_issued = [\"a.example\"]", &[])), "tls.http_listen");
        assert_eq!(field(parse("self_issued = [\"a.example\"]\nbehind_proxy = true", &[proxy])), "tls");
        assert_eq!(
            field(parse("self_issued = [\"*.example\"]\nhttp_listen = \"127.0.0.1:80\"", &[])),
            "tls.self_issued"
        );
        assert_eq!(field(parse("certificate = \"c.pem\"\nhttp_listen = \"127.0.0.1:80\"", &[])), "tls.key");
        assert_eq!(field(parse("http_listen = \"127.0.0.1:80\"", &[])), "tls.http_listen");
        assert_eq!(field(parse("public_url = \"https://x.example\"", &[])), "tls.public_url");
        assert_eq!(field(parse("behind_proxy = true\npublic_url = \"http://x\"", &[proxy])), "tls.public_url");
        assert!(toml::from_str::<TlsConfig>("port = 443").is_err(), "unknown field");
    }

    #[test]
    fn files_are_read_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["files.example".into()]).unwrap().self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let toml = format!("certificate = {cert_path:?}\nkey = {key_path:?}\nhttp_listen = \"127.0.0.1:80\"");
        let Transport::Https(h) = parse(&toml, &[]).unwrap() else { panic!("not https") };
        assert_eq!(h.host, "files.example");
        // Another key than the certificate's is refused at start-up, naming the file.
        std::fs::write(&key_path, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        assert!(matches!(parse(&toml, &[]), Err(ConfigError::File { path, .. }) if path == key_path));
    }
}
