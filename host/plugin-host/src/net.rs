//! Outbound HTTP for plugins (`host.http-fetch`): who may be reached, decided by three parties.
//!
//! - The **plugin** asks for hosts in its manifest (`capabilities.http`).
//! - The **tenant** grants some of them when enabling it on a machine.
//! - The **operator** (server config `plugins.http_allow`, for plugins the host runs) or the
//!   **machine owner** (`--plugin-allow-host`, for plugins an agent runs) names the hosts that
//!   may lead to internal addresses — loopback, private, link-local, unspecified, multicast and
//!   the like. Nobody else can: a tenant's grant of `127.1` or of a name that resolves to
//!   `10.0.0.5` is refused, whatever its spelling, because every host is compared in the form
//!   the URL parser normalises it to and every resolved address is checked.
//!
//! The connection goes to exactly the addresses checked (no second lookup), follows no
//! redirects and uses no proxy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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

/// What the party running the plugin (operator or machine owner) allows beyond tenant grants.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Hosts that may lead to internal addresses (and, with `only_allowed`, the only hosts).
    pub allowed: Vec<HostEntry>,
    /// Every host must be in `allowed` as well as granted: the server's own runtime, where
    /// the operator decides what the host process may reach.
    pub only_allowed: bool,
}

impl NetPolicy {
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|e| e.covers(host, port))
    }

    /// Why a tenant's grant of `entry` can never work under this policy, if it cannot.
    pub fn refuses_grant(&self, entry: &HostEntry) -> Option<String> {
        let named =
            |e: &HostEntry| e.host == entry.host && (e.port.is_none() || e.port == entry.port);
        let allowed = self.allowed.iter().any(named);
        if self.only_allowed && !allowed {
            return Some(format!(
                "{entry} is not in the operator's allow-list for plugins the host runs \
                 (plugins.http_allow)."
            ));
        }
        if entry.is_internal_literal() && !allowed {
            return Some(format!(
                "{entry} is an internal address; only the {} can allow it.",
                if self.only_allowed {
                    "operator (plugins.http_allow)"
                } else {
                    "machine's owner (--plugin-allow-host)"
                }
            ));
        }
        None
    }
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

/// One outbound request as the plugin asked for it.
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Where a URL may be fetched from: its normal host, port and the addresses to connect to.
/// Refused unless granted by the tenant, allowed by the policy, and every address it resolves
/// to is public or named by the policy.
pub async fn check(
    grants: &[HostEntry],
    policy: &NetPolicy,
    url: &reqwest::Url,
) -> Result<(String, Vec<SocketAddr>), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs".into());
    }
    let host = url
        .host_str()
        .ok_or("the URL has no host")?
        .to_ascii_lowercase();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    if !grants.iter().any(|g| g.covers(&host, port)) {
        return Err(format!("{host}:{port} is not granted to this plugin"));
    }
    let allowed = policy.allows(&host, port);
    if policy.only_allowed && !allowed {
        return Err(format!(
            "{host}:{port} is not in the operator's allow-list (plugins.http_allow)"
        ));
    }
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
        None => return Err("the URL has no host".into()),
    };
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !allowed && addrs.iter().any(|a| internal(a.ip())) {
        return Err(format!(
            "{host} leads to an internal address, which only the operator or the machine's \
             owner can allow"
        ));
    }
    Ok((host, addrs))
}

/// `host.http-fetch`: checked by [`check`], then sent to exactly the checked addresses with a
/// capped response body.
pub async fn fetch(
    grants: &[HostEntry],
    policy: &NetPolicy,
    body_cap: usize,
    request: Request,
) -> Result<Response, String> {
    let url = reqwest::Url::parse(&request.url).map_err(|e| format!("bad URL: {e}"))?;
    let (host, addrs) = check(grants, policy, &url).await?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs(&bare, &addrs)
        .build()
        .map_err(|e| e.to_string())?;
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("bad method {}", request.method))?;
    let mut builder = client.request(method, url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > body_cap {
            return Err(format!("the response body is larger than {body_cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], only_allowed: bool) -> NetPolicy {
        NetPolicy {
            allowed: allowed
                .iter()
                .map(|e| HostEntry::parse(e).unwrap())
                .collect(),
            only_allowed,
        }
    }

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

    #[test]
    fn internal_addresses_in_every_spelling_need_the_policy() {
        let tenant_only = policy(&[], false);
        for spelled in [
            "127.1",
            "0x7f000001",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "0.0.0.0",
            "localhost",
            "169.254.169.254",
            "10.1.2.3",
            "[fe80::1]",
            "[::127.0.0.1]",
            "[64:ff9b::a00:1]",
            "224.0.0.1",
        ] {
            let entry = HostEntry::parse(spelled).unwrap();
            assert!(entry.is_internal_literal(), "{spelled}");
            assert!(tenant_only.refuses_grant(&entry).is_some(), "{spelled}");
        }
        let public = HostEntry::parse("93.184.215.14").unwrap();
        assert!(tenant_only.refuses_grant(&public).is_none());
        // The operator's runtime: only what the operator listed, internal or not.
        let operator = policy(&["127.0.0.1:9000"], true);
        assert!(operator.refuses_grant(&public).is_some());
        assert!(
            operator
                .refuses_grant(&HostEntry::parse("127.1:9000").unwrap())
                .is_none()
        );
        assert!(
            operator
                .refuses_grant(&HostEntry::parse("127.0.0.1:9001").unwrap())
                .is_some()
        );
    }

    #[tokio::test]
    async fn fetch_checks_every_resolved_address() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let grants = |list: &[&str]| -> Vec<HostEntry> {
            list.iter().map(|e| HostEntry::parse(e).unwrap()).collect()
        };
        let open = policy(&[], false);
        // Granted by the tenant, but a name resolving to loopback: refused.
        let err = check(&grants(&["localhost"]), &open, &url("http://localhost:9/"))
            .await
            .unwrap_err();
        assert!(err.contains("internal"), "{err}");
        // The same spelled as a number.
        let err = check(&grants(&["127.1"]), &open, &url("http://2130706433:9/"))
            .await
            .unwrap_err();
        assert!(err.contains("internal"), "{err}");
        // Not granted at all.
        let err = check(&grants(&["example.com"]), &open, &url("http://127.0.0.1/"))
            .await
            .unwrap_err();
        assert!(err.contains("not granted"), "{err}");
        // Named by the machine's owner: allowed, pinned to the address.
        let owner = policy(&["127.0.0.1:9"], false);
        let (host, addrs) = check(&grants(&["127.0.0.1:9"]), &owner, &url("http://127.1:9/"))
            .await
            .unwrap();
        assert_eq!(host, "127.0.0.1");
        assert_eq!(addrs, vec!["127.0.0.1:9".parse().unwrap()]);
        // The operator's runtime refuses what the operator did not list.
        let operator = policy(&[], true);
        let err = check(
            &grants(&["93.184.215.14"]),
            &operator,
            &url("http://93.184.215.14/"),
        )
        .await
        .unwrap_err();
        assert!(err.contains("allow-list"), "{err}");
    }
}
