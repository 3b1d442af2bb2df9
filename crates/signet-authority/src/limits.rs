//! What one server gives any client before it has proved who it is: `[limits]` in the
//! configuration file, turned into validated [`Limits`]. The defaults fit a small node (two
//! cores, a few GiB) facing the internet directly; docs/operations.md lists each one.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config_error::ConfigError;

/// `[limits]` as written; every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Seconds a client has to send a request's headers, counted from the connection's first
    /// byte or from the end of the previous response (an idle keep-alive connection is closed
    /// after it too); default 15.
    pub header_timeout_seconds: Option<u64>,
    /// Seconds from the end of the headers to the end of the response, body upload included;
    /// default 30.
    pub request_timeout_seconds: Option<u64>,
    /// Open connections at once; further clients wait in the kernel's accept queue; default 1024.
    pub max_connections: Option<usize>,
    /// Memory, in MiB, that password hashing (Argon2id, 19 MiB each) may use at once; default 160
    /// (8 hashes at a time).
    pub password_hash_memory_mib: Option<usize>,
    /// Milliseconds a request waits for a hashing slot before it gets 503 with Retry-After;
    /// default 2000.
    pub password_hash_wait_ms: Option<u64>,
    /// Typed-secret attempts (sign-ins, retrievals, codes, reset links) one client address may
    /// make per minute, across all accounts; default 30.
    pub secret_attempts_per_minute: Option<u32>,
    /// Requests to the public certificate repository (lookups by address and downloads) one
    /// client address may make per minute; default 30.
    pub repository_requests_per_minute: Option<u32>,
    /// Reverse proxies whose `X-Forwarded-For` names the client; default none (the peer
    /// address is the client).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// Memory one Argon2id hash takes at the parameters `PasswordHash` uses (m = 19456 KiB).
const HASH_MIB: usize = 19;

/// Validated limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`LimitsConfig::header_timeout_seconds`].
    pub header_timeout: Duration,
    /// See [`LimitsConfig::request_timeout_seconds`].
    pub request_timeout: Duration,
    /// See [`LimitsConfig::max_connections`].
    pub max_connections: usize,
    /// Password hashes at once: the memory budget over one hash's memory, at least one.
    pub password_hashes: usize,
    /// See [`LimitsConfig::password_hash_wait_ms`].
    pub password_hash_wait: Duration,
    /// See [`LimitsConfig::secret_attempts_per_minute`].
    pub secret_attempts_per_minute: u32,
    /// See [`LimitsConfig::repository_requests_per_minute`].
    pub repository_requests_per_minute: u32,
    /// See [`LimitsConfig::trusted_proxies`].
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        LimitsConfig::default().into_limits().expect("the defaults are valid")
    }
}

impl LimitsConfig {
    /// Validates and fills defaults.
    pub fn into_limits(self) -> Result<Limits, ConfigError> {
        let invalid = |field: &'static str, message: &str| ConfigError::Invalid { field, message: message.into() };
        let seconds = |field: &'static str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
            0 => Err(invalid(field, "must be at least 1 second")),
            s if s > 3600 => Err(invalid(field, "must be at most 3600 seconds")),
            s => Ok(Duration::from_secs(s)),
        };
        let max_connections = match self.max_connections.unwrap_or(1024) {
            0 => return Err(invalid("limits.max_connections", "must be at least 1")),
            n => n,
        };
        let memory = self.password_hash_memory_mib.unwrap_or(8 * HASH_MIB + 8);
        if memory < HASH_MIB {
            return Err(invalid("limits.password_hash_memory_mib", "must be at least 19 (one Argon2id hash)"));
        }
        let wait = match self.password_hash_wait_ms.unwrap_or(2000) {
            w if w > 60_000 => return Err(invalid("limits.password_hash_wait_ms", "must be at most 60000")),
            w => Duration::from_millis(w),
        };
        let per_minute = |field: &'static str, v: Option<u32>| match v.unwrap_or(30) {
            0 => Err(invalid(field, "must be at least 1")),
            n => Ok(n),
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| p.parse().map_err(|_| invalid("limits.trusted_proxies", &format!("{p:?} is not an IP address"))))
            .collect::<Result<_, _>>()?;
        Ok(Limits {
            header_timeout: seconds("limits.header_timeout_seconds", self.header_timeout_seconds, 15)?,
            request_timeout: seconds("limits.request_timeout_seconds", self.request_timeout_seconds, 30)?,
            max_connections,
            password_hashes: memory / HASH_MIB,
            password_hash_wait: wait,
            secret_attempts_per_minute: per_minute(
                "limits.secret_attempts_per_minute",
                self.secret_attempts_per_minute,
            )?,
            repository_requests_per_minute: per_minute(
                "limits.repository_requests_per_minute",
                self.repository_requests_per_minute,
            )?,
            trusted_proxies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals() {
        let l = Limits::default();
        assert_eq!(l.password_hashes, 8);
        assert_eq!(l.header_timeout, Duration::from_secs(15));
        assert_eq!(l.request_timeout, Duration::from_secs(30));
        assert_eq!((l.max_connections, l.secret_attempts_per_minute, l.repository_requests_per_minute), (1024, 30, 30));
        let small = LimitsConfig { password_hash_memory_mib: Some(40), ..Default::default() };
        assert_eq!(small.into_limits().unwrap().password_hashes, 2);
        for bad in [
            LimitsConfig { password_hash_memory_mib: Some(10), ..Default::default() },
            LimitsConfig { header_timeout_seconds: Some(0), ..Default::default() },
            LimitsConfig { max_connections: Some(0), ..Default::default() },
            LimitsConfig { secret_attempts_per_minute: Some(0), ..Default::default() },
            LimitsConfig { repository_requests_per_minute: Some(0), ..Default::default() },
            LimitsConfig { trusted_proxies: vec!["proxy.example".into()], ..Default::default() },
        ] {
            assert!(matches!(bad.into_limits(), Err(ConfigError::Invalid { .. })));
        }
        let proxied = LimitsConfig { trusted_proxies: vec!["127.0.0.1".into(), "::1".into()], ..Default::default() };
        assert_eq!(proxied.into_limits().unwrap().trusted_proxies.len(), 2);
    }
}
