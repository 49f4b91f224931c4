//! Outbound HTTP for plugins (`host.http-fetch`). Who may be reached is decided by three
//! parties ([`crate::grants`]); the operator or the machine owner alone names the hosts that
//! may lead to internal addresses — loopback, private, link-local, unspecified, multicast and
//! the like. Nobody else can: a tenant's grant of `127.1` or of a name that resolves to
//! `10.0.0.5` is refused, whatever its spelling, because every host is compared in the form
//! the URL parser normalises it to and every resolved address is checked.
//!
//! The connection goes to exactly the addresses checked (no second lookup), follows no
//! redirects and uses no proxy.

use std::net::SocketAddr;

use crate::{
    grants::NetPolicy,
    hosts::{HostEntry, internal},
};

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
    let may_be_internal = policy.permits(grants, &host, port)?;
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
    if !may_be_internal && addrs.iter().any(|a| internal(a.ip())) {
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
