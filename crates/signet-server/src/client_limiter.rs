//! The per-client budget of typed-secret attempts: a count per client address, across accounts,
//! in this process's memory (each node limits on its own; a restart forgets it), in a bounded
//! table so a flood of addresses cannot grow it without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Clients remembered at once; past it, those whose budget is full again are forgotten, and
/// if none is, a new client is refused until one is.
const MAX_CLIENTS: usize = 65_536;

/// A budget of `per_minute` attempts per client, refilled evenly (a generic cell rate
/// algorithm: each client is stored as the moment its budget is full again).
pub(crate) struct ClientLimiter {
    interval: Duration,
    window: Duration,
    trusted_proxies: Vec<IpAddr>,
    full_at: Mutex<HashMap<IpAddr, Instant>>,
}

impl ClientLimiter {
    pub(crate) fn new(per_minute: u32, trusted_proxies: Vec<IpAddr>) -> Self {
        let window = Duration::from_secs(60);
        Self { interval: window / per_minute.max(1), window, trusted_proxies, full_at: Mutex::default() }
    }

    /// Whether `peer` is one of `[limits]`'s trusted proxies.
    pub(crate) fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.contains(&peer)
    }

    /// Spends one attempt of `client` at `now`; `Err(seconds to wait)` when none is left.
    pub(crate) fn spend(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut table = self.full_at.lock().expect("limiter table poisoned");
        if table.len() >= MAX_CLIENTS && !table.contains_key(&client) {
            table.retain(|_, full| *full > now);
            if table.len() >= MAX_CLIENTS {
                return Err(self.interval.as_secs().max(1));
            }
        }
        let full = table.get(&client).copied().filter(|f| *f > now).unwrap_or(now);
        let after = full + self.interval;
        if after > now + self.window {
            let wait = after - (now + self.window);
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        table.insert(client, after);
        Ok(())
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the last
    /// address of `X-Forwarded-For` that is not itself a trusted proxy. IPv6 clients count by
    /// their /64, which one subscriber line usually gets whole.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        if self.trusted_proxies.contains(&peer) {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .collect::<Vec<_>>();
            if let Some(a) = forwarded.into_iter().rev().find(|a| !self.trusted_proxies.contains(a)) {
                client = a;
            }
        }
        match client {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
            v4 => v4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refills_evenly_and_is_per_client() {
        let limiter = ClientLimiter::new(6, Vec::new());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..6 {
            limiter.spend(a, t0).unwrap();
        }
        assert_eq!(limiter.spend(a, t0), Err(10), "the seventh waits for one interval");
        limiter.spend(b, t0).expect("another client has its own budget");
        limiter.spend(a, t0 + Duration::from_secs(10)).expect("one attempt came back");
        assert!(limiter.spend(a, t0 + Duration::from_secs(10)).is_err());
        for _ in 0..6 {
            limiter.spend(a, t0 + Duration::from_secs(120)).expect("a quiet two minutes refill it all");
        }
    }

    #[test]
    fn client_behind_a_trusted_proxy_and_ipv6_prefix() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let limiter = ClientLimiter::new(30, vec![proxy]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        assert_eq!(limiter.client(proxy, &headers), "198.51.100.7".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "192.0.2.5".parse().unwrap();
        assert_eq!(limiter.client(stranger, &headers), stranger, "an untrusted peer cannot name another client");
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        assert_eq!(limiter.client(v6, &HeaderMap::new()), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(limiter.client(mapped, &HeaderMap::new()), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
