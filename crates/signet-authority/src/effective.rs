//! The effective settings as an operator reads them (`signet config check`): every value the
//! server will run with, defaults filled in, secrets masked.

use crate::config::Settings;
use crate::mail::{MailTransport, SmtpSecurity};
use crate::tls::{CertificateSource, Transport};

/// What stands in for a secret.
const MASK: &str = "********";

impl Settings {
    /// The settings in the configuration file's own layout and vocabulary. Passwords in the
    /// database URL and the relay's login are masked; file contents (catalogs, prices) are
    /// summarized, not dumped.
    pub fn effective(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!("listen = \"{}\"", self.listen));
        match &self.base_url {
            Some(url) => line(format!("base_url = \"{url}\"")),
            None => line(format!("base_url = \"http://{}\"  # from listen", self.listen)),
        }
        line(format!("data_dir = \"{}\"", self.data_dir.display()));
        line(format!("database_url = \"{}\"", mask_url_password(&self.database_url)));
        line(format!("crl_lifetime_hours = {}", self.crl_lifetime.whole_hours()));
        line(format!("ocsp_validity_hours = {}", self.ocsp_validity.whole_hours()));
        let types: Vec<&str> = self.catalog.types().iter().map(|t| t.id.as_str()).collect();
        line(format!("# certificate types: {}", types.join(", ")));
        line(format!(
            "# key attestation roots: {}",
            if self.attestation_roots.is_empty() {
                "none (hardware types need a witnessed generation)"
            } else {
                "configured"
            }
        ));
        match &self.client_download {
            Some(p) => line(format!("client_download = \"{}\"", p.display())),
            None => line("# client_download: the running signet program".to_owned()),
        }

        line(String::new());
        line("[ra]".to_owned());
        line(format!("name = \"{}\"", self.ra.name.as_str()));
        let address: Vec<String> = self.ra.mailing_address.lines().map(|l| format!("\"{l}\"")).collect();
        line(format!("mailing_address = [{}]", address.join(", ")));
        line(format!("# {}", self.ra.support_line()));
        let programs: Vec<&str> = self.agencies.programs().iter().map(|p| p.name.as_str()).collect();
        line(format!(
            "# agencies: {} ({} partner programs: {})",
            self.agencies.agencies().len(),
            programs.len(),
            programs.join(", ")
        ));
        let replaced = self.mail_templates.replaced();
        if replaced.is_empty() {
            line("# mail templates: the shipped wording".to_owned());
        } else {
            line(format!("# mail templates replaced: {}", replaced.join(", ")));
        }
        for (cert_type, years, price) in self.prices.iter() {
            let plural = if years == 1 { "" } else { "s" };
            line(format!("# price: {cert_type}, {years} year{plural} = {price}"));
        }

        line(String::new());
        line("[deadlines]".to_owned());
        line(format!("open_days = {}", self.deadlines.open_days));
        line(format!("retrieval_days = {}", self.deadlines.retrieval_days));
        let reminders: Vec<String> = self.deadlines.reminder_days.iter().map(u16::to_string).collect();
        line(format!("reminder_days = [{}]", reminders.join(", ")));

        line(String::new());
        line("[mail]".to_owned());
        line(format!("from = \"{}\"", self.mail.from));
        match &self.mail.transport {
            MailTransport::Folder(p) => line(format!("folder = \"{}\"", p.display())),
            MailTransport::Smtp(relay) => {
                let scheme = if relay.security == SmtpSecurity::Tls { "smtps" } else { "smtp" };
                line(format!("smtp = \"{scheme}://{}:{}\"", relay.host, relay.port));
                line(format!("starttls = {}", relay.security == SmtpSecurity::Starttls));
                if let Some(ca) = &relay.tls_ca {
                    line(format!("tls_ca = \"{}\"", ca.display()));
                }
                match &relay.credentials {
                    Some(c) => line(format!("# login: {} / {MASK} (from the environment)", c.username())),
                    None => line("# login: none".to_owned()),
                }
            }
        }

        line(String::new());
        line("[acme]".to_owned());
        line(format!("http01_port = {}", self.acme.http01_port));
        line(format!("profile = \"{}\"", self.acme.profile));
        match self.acme.dns_resolver {
            Some(r) => line(format!("dns_resolver = \"{r}\"")),
            None => line("# dns_resolver: the first nameserver of /etc/resolv.conf".to_owned()),
        }

        line(String::new());
        line("[tls]".to_owned());
        match &self.transport {
            Transport::Plain => line("# plain HTTP on listen".to_owned()),
            Transport::BehindProxy { public_url } => {
                line("behind_proxy = true".to_owned());
                if let Some(url) = public_url {
                    line(format!("public_url = \"{url}\""));
                }
            }
            Transport::Https(h) => {
                match &h.certificate {
                    CertificateSource::Files(_) => line("# certificate and key: from the files named".to_owned()),
                    CertificateSource::SelfIssued(names) => {
                        let names: Vec<String> = names.iter().map(|n| format!("\"{}\"", n.as_str())).collect();
                        line(format!("self_issued = [{}]", names.join(", ")));
                    }
                }
                line(format!("http_listen = \"{}\"", h.http_listen));
                match &h.public_url {
                    Some(url) => line(format!("public_url = \"{url}\"")),
                    None => line(format!("# public_url: https://{} at the listen port", h.host)),
                }
            }
        }

        let l = &self.limits;
        line(String::new());
        line("[limits]".to_owned());
        line(format!("header_timeout_seconds = {}", l.header_timeout.as_secs()));
        line(format!("request_timeout_seconds = {}", l.request_timeout.as_secs()));
        line(format!("max_connections = {}", l.max_connections));
        line(format!("# password hashes at once: {}", l.password_hashes));
        line(format!("password_hash_wait_ms = {}", l.password_hash_wait.as_millis()));
        line(format!("secret_attempts_per_minute = {}", l.secret_attempts_per_minute));
        line(format!("repository_requests_per_minute = {}", l.repository_requests_per_minute));
        let proxies: Vec<String> = l.trusted_proxies.iter().map(|p| format!("\"{p}\"")).collect();
        line(format!("trusted_proxies = [{}]", proxies.join(", ")));
        out
    }
}

/// `scheme://user:password@host/…` with the password masked; other URLs unchanged.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return masked_query(url);
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let userinfo = if userinfo.contains(':') { format!("{user}:{MASK}") } else { user.to_owned() };
    masked_query(&format!("{scheme}://{userinfo}@{host}{path}"))
}

/// A `password=` query parameter (libpq accepts one) masked too.
fn masked_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_owned() };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={MASK}"),
            _ => p.to_owned(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_masked() {
        assert_eq!(mask_url_password("postgres://ra:s3cret@db:5432/signet"), "postgres://ra:********@db:5432/signet");
        assert_eq!(mask_url_password("postgres://ra@db/signet"), "postgres://ra@db/signet");
        assert_eq!(
            mask_url_password("postgres://db/signet?user=ra&password=s3cret&sslmode=verify-full"),
            "postgres://db/signet?user=ra&password=********&sslmode=verify-full"
        );
        assert_eq!(mask_url_password("sqlite://data/signet.db"), "sqlite://data/signet.db");
    }
}
