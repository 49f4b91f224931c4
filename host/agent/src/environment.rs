//! What the agent reports about its machine in `hello`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use claudenest_protocol::{Environment, Ipv4Network};

/// What the operator configured; the rest is detected.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentSettings {
    pub claude_path: Option<PathBuf>,
    pub capabilities: Vec<String>,
    pub max_sessions: u32,
}

/// Reads the machine's environment. Slow parts (running `claude --version`) are bounded.
pub async fn detect(settings: &EnvironmentSettings) -> Environment {
    // Only a path of the agent's own is reported: it replaces the one registered for the
    // machine, which the agent otherwise uses (the host sends it with each session).
    let detected = settings
        .claude_path
        .clone()
        .or_else(|| find_on_path("claude"));
    let claude_version = match &detected {
        Some(path) => version_of(path).await,
        None => None,
    };
    let node_version = match find_on_path("node") {
        Some(node) => version_of(&node)
            .await
            .map(|v| v.trim_start_matches('v').to_owned()),
        None => None,
    };
    let (mac_addresses, networks) = interfaces();
    Environment {
        platform: platform().into(),
        hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        arch: arch().into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        node_version,
        claude_version,
        claude_path: settings
            .claude_path
            .as_ref()
            .map(|p| p.display().to_string()),
        capabilities: settings.capabilities.clone(),
        max_sessions: settings.max_sessions,
        mac_addresses,
        networks,
    }
}

/// Node.js's names (`darwin`, `linux`, `win32`), as the API examples use them.
pub fn platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

/// Node.js's names (`x64`, `arm64`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// First line of `<program> --version`, if it answers within 5 s.
async fn version_of(program: &Path) -> Option<String> {
    let mut command = tokio::process::Command::new(program);
    for name in super::private_env() {
        command.env_remove(name);
    }
    let run = command
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next()?.trim();
    // `claude --version` prints e.g. "1.0.3 (Claude Code)": keep the version.
    let version = first.split_whitespace().next().unwrap_or(first);
    (!version.is_empty()).then(|| version.to_owned())
}

/// MACs and IPv4 networks of the non-loopback interfaces.
fn interfaces() -> (Vec<String>, Vec<Ipv4Network>) {
    let mut macs = Vec::new();
    let mut networks = Vec::new();
    let Ok(addrs) = if_addrs::get_if_addrs() else {
        return (macs, networks);
    };
    for iface in addrs.iter().filter(|i| !i.is_loopback()) {
        if let if_addrs::IfAddr::V4(v4) = &iface.addr {
            networks.push(Ipv4Network {
                addr: v4.ip,
                prefix: u32::from(v4.netmask).count_ones() as u8,
            });
        }
        if let Some(mac) = mac_of(&iface.name)
            && !macs.contains(&mac)
        {
            macs.push(mac);
        }
    }
    (macs, networks)
}

/// Linux exposes each interface's MAC in sysfs; elsewhere none is reported.
fn mac_of(interface: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    let mac = text.trim().to_ascii_lowercase();
    (claudenest_protocol::parse_mac(&mac).is_some() && mac != "00:00:00:00:00:00").then_some(mac)
}
