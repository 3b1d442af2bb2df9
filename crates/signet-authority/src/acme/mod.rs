//! ACME's parts that are not HTTP: the `[acme]` settings and challenge validation. The JWS
//! request format is `signet_ra::jws`; the routes live in the web crate.

pub mod validate;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;
use signet_pki::profile::{Catalog, SubjectKind};
use signet_pki::subject::DnsName;

use crate::config_error::ConfigError;

/// `[acme]` in the configuration file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// Port http-01 validation connects to; default 80 (RFC 8555 §8.3).
    pub http01_port: Option<u16>,
    /// Names validation reaches at a fixed address instead of through DNS (split-horizon
    /// networks; tests on loopback): `resolve = { "device.acme.example" = "127.0.0.1" }`.
    #[serde(default)]
    pub resolve: BTreeMap<String, IpAddr>,
    /// DNS server dns-01 asks (`ip` or `ip:port`); default the first nameserver of
    /// /etc/resolv.conf.
    pub dns_resolver: Option<String>,
    /// Profile ACME certificates are issued under; default `device-tls`.
    pub profile: Option<String>,
}

/// Validated `[acme]` settings.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// http-01 port.
    pub http01_port: u16,
    /// Fixed addresses by lowercased name.
    pub resolve: HashMap<String, IpAddr>,
    /// dns-01 server; `None` reads /etc/resolv.conf when needed.
    pub dns_resolver: Option<SocketAddr>,
    /// A device profile of the catalog.
    pub profile: String,
    /// The shortest validity the profile allows: ACME clients renew on their own.
    pub validity_years: u8,
}

impl AcmeConfig {
    /// Validates against the profile catalog and fills defaults.
    pub fn into_settings(self, catalog: &Catalog) -> Result<AcmeSettings, ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid { field, message };
        let profile_id = self.profile.unwrap_or_else(|| "device-tls".into());
        let profile = catalog
            .profile(&profile_id)
            .ok_or_else(|| invalid("acme.profile", format!("the catalog has no profile {profile_id:?}")))?;
        if profile.subject != SubjectKind::Device {
            return Err(invalid("acme.profile", format!("{profile_id} is not a device profile")));
        }
        let validity_years = *profile
            .validity_years
            .iter()
            .min()
            .ok_or_else(|| invalid("acme.profile", format!("{profile_id} allows no validity")))?;
        let resolve = self
            .resolve
            .into_iter()
            .map(|(name, ip)| Ok((DnsName::new(&name).map_err(|e| invalid("acme.resolve", e.to_string()))?.into(), ip)))
            .collect::<Result<_, ConfigError>>()?;
        let dns_resolver = self
            .dns_resolver
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| invalid("acme.dns_resolver", format!("{s:?} is not an IP address or ip:port")))
            })
            .transpose()?;
        Ok(AcmeSettings {
            http01_port: self.http01_port.unwrap_or(80),
            resolve,
            dns_resolver,
            profile: profile_id,
            validity_years,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn acme_config_is_validated() {
        let s = AcmeConfig::default().into_settings(&Catalog::default_eca()).unwrap();
        assert_eq!((s.http01_port, s.profile.as_str(), s.validity_years, s.dns_resolver), (80, "device-tls", 1, None));
        let cfg: ServerConfig = toml::from_str(
            "[acme]\nhttp01_port = 5002\nresolve = { \"Device.Acme.Example\" = \"127.0.0.1\" }\ndns_resolver = \"::1\"",
        )
        .unwrap();
        let s = cfg.into_settings().unwrap().acme;
        assert_eq!(s.http01_port, 5002);
        assert_eq!(s.resolve["device.acme.example"], IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.dns_resolver, Some("[::1]:53".parse().unwrap()));
        for (bad, field) in [
            ("profile = \"medium-identity\"", "acme.profile"),
            ("profile = \"nope\"", "acme.profile"),
            ("dns_resolver = \"resolver.example\"", "acme.dns_resolver"),
            ("resolve = { \"bad_name\" = \"127.0.0.1\" }", "acme.resolve"),
        ] {
            let cfg: ServerConfig = toml::from_str(&format!("[acme]\n{bad}")).unwrap();
            assert!(matches!(cfg.into_settings(), Err(ConfigError::Invalid { field: f, .. }) if f == field), "{bad}");
        }
        assert!(toml::from_str::<ServerConfig>("[acme]\nrequire_eab = false").is_err(), "EAB cannot be turned off");
    }
}
