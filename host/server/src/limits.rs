//! Fixed-window rate limits: one window per key per minute, as Laravel counts them. The
//! counters live here, below the HTTP floor (the application state holds them); the middleware
//! that applies them to routes is `http::rate_limit`.
//!
//! Every response of a limited group carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (Unix seconds); a request over the limit answers `RTE_001` 429 with
//! `Retry-After`. Counters live in this process: hosts sharing one PostgreSQL database each
//! count their own traffic (documented in docs/api.md).
//!
//! Keys an attacker chooses never get a counter of their own: a bearer token is counted under
//! its own key only once it authenticated; requests whose token is refused count against the
//! client's address (IPv6 by its /64), so inventing a token per request buys nothing. The
//! client's address is the peer's, or — only behind a proxy the operator trusts
//! (`rate_limits.trusted_proxies`) — the last untrusted one of `X-Forwarded-For`. The counters
//! are bounded: expired windows are swept at most once a second, and past `MAX_KEYS` the ones
//! not at their limit are dropped.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys, expired windows are swept (at most once a second).
const SWEEP_THRESHOLD: usize = 10_000;
/// Keys tracked at most; beyond, windows that are not at their limit are forgotten.
const MAX_KEYS: usize = 100_000;

/// One group's limit and its counters.
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<Windows>,
    proxies: TrustedProxies,
}

#[derive(Default)]
struct Windows {
    map: HashMap<[u8; 16], Window>,
    swept: Option<Instant>,
}

/// Networks (`ip` or `ip/prefix`) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[(IpAddr, u8)]>);

impl TrustedProxies {
    /// Parses the entries; a malformed one is an error (a typo must not trust the world).
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for entry in entries {
            let (ip, prefix) = match entry.split_once('/') {
                Some((ip, prefix)) => (ip, Some(prefix)),
                None => (entry.as_str(), None),
            };
            let ip: IpAddr = ip.trim().parse().map_err(|_| {
                anyhow::anyhow!("rate_limits.trusted_proxies: `{entry}` is not an address")
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| {
                        anyhow::anyhow!("rate_limits.trusted_proxies: bad prefix in `{entry}`")
                    })?,
                None => max,
            };
            nets.push((ip, prefix));
        }
        Ok(Self(nets.into()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0
            .iter()
            .any(|(net, prefix)| same_prefix(*net, ip, *prefix))
    }

    /// The client of a request from `peer` with these headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        // From the nearest hop outwards: the first address not of a trusted proxy.
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer)
    }
}

fn same_prefix(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The key a client address is counted under: IPv6 by its /64 (one host's usual allotment).
pub fn address_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => digest(&[b"ip:", &v4.octets()]),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => digest(&[b"ip:", &v4.octets()]),
            None => digest(&[b"ip6:", &v6.octets()[..8]]),
        },
    }
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_in: u64,
}

impl RateLimiter {
    pub fn new(limit_per_minute: u32) -> Arc<Self> {
        Self::with_proxies(limit_per_minute, TrustedProxies::default())
    }

    pub fn with_proxies(limit_per_minute: u32, proxies: TrustedProxies) -> Arc<Self> {
        Arc::new(Self {
            limit: limit_per_minute,
            windows: Mutex::default(),
            proxies,
        })
    }

    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// Keys tracked now (for tests of the bound).
    pub fn tracked(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether a request with `token` from `address` is refused before it runs: the token is
    /// at its limit, or it has no live window (it may be invented) and the address has used up
    /// its refused-token allowance. One look under the lock.
    pub fn refuses(&self, token: [u8; 16], address: [u8; 16], now: Instant) -> Option<Decision> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let at_limit = |key| {
            let window: &Window = windows.map.get(&key)?;
            let elapsed = now.duration_since(window.started);
            (elapsed < WINDOW && window.count >= self.limit).then(|| Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_in: WINDOW.saturating_sub(elapsed).as_secs_f64().ceil() as u64,
            })
        };
        let live = windows
            .map
            .get(&token)
            .is_some_and(|w| now.duration_since(w.started) < WINDOW);
        at_limit(token).or_else(|| if live { None } else { at_limit(address) })
    }

    /// Counts one request for `key` at `now`.
    pub fn hit(&self, key: [u8; 16], now: Instant) -> Decision {
        let mut guard = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let windows = &mut *guard;
        let due = windows
            .swept
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if windows.map.len() > SWEEP_THRESHOLD && due {
            windows.swept = Some(now);
            windows
                .map
                .retain(|_, w| now.duration_since(w.started) < WINDOW);
            if windows.map.len() > MAX_KEYS {
                let limit = self.limit;
                windows.map.retain(|_, w| w.count >= limit);
            }
        }
        let window = windows.map.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                count: 0,
            };
        }
        let allowed = window.count < self.limit;
        if allowed {
            window.count += 1;
        } else {
            ::metrics::counter!(crate::metrics::RATE_LIMITED).increment(1);
        }
        let elapsed = now.duration_since(window.started);
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - window.count,
            reset_in: (WINDOW.saturating_sub(elapsed)).as_secs_f64().ceil() as u64,
        }
    }
}

impl RateLimiter {
    /// Counts one request for a key made of `parts`; `RTE_001` once over the limit. For limits
    /// a handler applies itself (e.g. login attempts per account).
    pub fn check(&self, parts: &[&[u8]]) -> Result<(), ApiError> {
        let decision = self.hit(digest(parts), Instant::now());
        if decision.allowed {
            Ok(())
        } else {
            Err(ApiError::rate_limited(decision.reset_in.max(1)))
        }
    }
}

pub fn digest(parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let full = hasher.finalize();
    let mut key = [0; 16];
    key.copy_from_slice(&full[..16]);
    key
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_resets_after_the_window() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        let (a, b) = ([1; 16], [2; 16]);
        assert_eq!(limiter.hit(a, t0).remaining, 1);
        assert!(limiter.hit(a, t0).allowed);
        let third = limiter.hit(a, t0);
        assert!(!third.allowed);
        assert_eq!(third.remaining, 0);
        assert_eq!(third.reset_in, 60);
        assert!(limiter.hit(b, t0).allowed, "keys are independent");
        assert!(limiter.hit(a, t0 + WINDOW).allowed, "a new window starts");
    }

    #[test]
    fn only_trusted_proxies_name_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1, 10.1.2.3".parse().unwrap());
        let client = |peer: &str| proxies.client(peer.parse().unwrap(), &headers);
        // Through two trusted hops: the first untrusted address from the right.
        assert_eq!(
            client("10.9.9.9"),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored: no picking one's own address.
        assert_eq!(
            client("203.0.113.5"),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["example.com".into()]).is_err());
        // IPv6 clients are counted by their /64.
        let a = address_key("2001:db8:1:2::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert!(a == b && a != c);
    }

    #[test]
    fn keys_stay_bounded() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 50) {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_le_bytes());
            limiter.hit(key, t0);
        }
        // Sweeps run at most once a second; a second later the map is cut back.
        limiter.hit([9; 16], t0 + Duration::from_secs(2));
        assert!(limiter.tracked() <= MAX_KEYS, "{}", limiter.tracked());
    }
}
