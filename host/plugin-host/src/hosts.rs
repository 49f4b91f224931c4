//! How hosts are written in grants and allow-lists (`host` or `host:port`, in the form the URL
//! parser normalises them to) and which addresses count as internal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A `host` or `host:port` entry in its normal form (`127.1` → `127.0.0.1`, `[::FFFF:7F00:1]`
/// → `[::ffff:7f00:1]`, names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub host: String,
    pub port: Option<u16>,
}

impl HostEntry {
    /// Parses `host` or `host:port`; anything else (a path, user info, a wildcard, a scheme) is
    /// refused with a reason.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty()
            || entry.contains(['/', '@', '*', '?', '#', '\\'])
            || entry.chars().any(char::is_whitespace)
        {
            return Err("Give a host or host:port.".into());
        }
        let url = reqwest::Url::parse(&format!("http://{entry}/"))
            .map_err(|_| "Give a host or host:port.".to_owned())?;
        let host = url.host_str().ok_or("Give a host or host:port.")?;
        // `http://h:80/` normalises the explicit default port away: keep what was written.
        let port = match url.port() {
            Some(port) => Some(port),
            None if entry.ends_with(":80") => Some(80),
            None => None,
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether this entry covers `host` (normal form) on `port`.
    pub fn covers(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }

    /// Whether this entry names another entry's host and port (any port when it gives none).
    pub fn names(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && (self.port.is_none() || self.port == port)
    }

    /// Whether the entry names an internal address literally (`127.0.0.1`, `[::1]`,
    /// `localhost`). Names that merely resolve to one are caught when fetching.
    pub fn is_internal_literal(&self) -> bool {
        if self.host == "localhost" || self.host.ends_with(".localhost") {
            return true;
        }
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok_and(internal)
    }
}

impl std::fmt::Display for HostEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Parses a list of entries, dropping (and logging) the ones that are not hosts.
pub fn entries(list: &[String]) -> Vec<HostEntry> {
    list.iter()
        .filter_map(|e| match HostEntry::parse(e) {
            Ok(entry) => Some(entry),
            Err(_) => {
                tracing::warn!(entry = %e, "not a host or host:port; ignored");
                None
            }
        })
        .collect()
}

/// Loopback, private, link-local, unspecified, multicast, shared, reserved and documentation
/// ranges, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240
}

fn internal_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || v6.to_ipv4_mapped().is_some_and(internal_v4)
        // ::a.b.c.d (deprecated IPv4-compatible)
        || (s[..6].iter().all(|&x| x == 0) && internal_v4(embedded(s[6], s[7])))
        // 64:ff9b::/96 (NAT64)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) && internal_v4(embedded(s[6], s[7])))
        // 2002::/16 (6to4) carries an IPv4 address in its next 32 bits
        || (s[0] == 0x2002 && internal_v4(embedded(s[1], s[2])))
        // 2001:db8::/32 (documentation)
        || (s[0] == 0x2001 && s[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_their_normal_form() {
        for (written, normal) in [
            ("127.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
            ("LocalHost", "localhost"),
            ("Api.Example.com:8443", "api.example.com:8443"),
        ] {
            assert_eq!(
                HostEntry::parse(written).unwrap().to_string(),
                normal,
                "{written}"
            );
        }
        for bad in ["", "a/b", "*.example.com", "user@host", "http://x", "a b"] {
            assert!(HostEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
