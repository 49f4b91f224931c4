//! Consent: a plugin reaches a directory or a host only when three parties say so.
//!
//! - The **plugin** asks, in its manifest (`capabilities.filesystem`, `capabilities.http`).
//! - The **tenant** grants, through the API, per machine ([`GrantSet`]).
//! - The **party running it** allows: the operator for plugins the host runs (server config
//!   `plugins.http_allow`, the only hosts they may reach; never a directory), the machine's
//!   owner for plugins an agent runs (`--plugin-root`, `--plugin-allow-host`: the directories
//!   tenants may mount and the hosts that may lead to internal addresses).
//!
//! Every check of that rule is here, whoever runs it: the host when a tenant enables a plugin
//! ([`check_tenant`]), the agent when the host asks whether its owner allows a grant and again
//! before every call ([`MachinePolicy`]), and the runtime when a plugin opens a mount
//! ([`Mount::writable_for`]) or fetches a URL ([`NetPolicy::permits`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    hosts::{self, HostEntry},
    manifest::{Access, FsRequest, Manifest},
};

/// What the tenant grants a plugin on one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantSet {
    /// Directories on the machine (mcp-adapter plugins only, which run there), each inside a
    /// root the machine's owner allows (`claudenest agent --plugin-root`).
    #[serde(default)]
    pub filesystem: Vec<FsGrant>,
    /// `host` or `host:port`; the plugin's manifest must ask for HTTP (and for these hosts,
    /// unless it asks for `*`). Internal addresses need the machine owner's (agent) or the
    /// operator's (host) allow-list; plugins the host runs reach only the operator's list.
    #[serde(default)]
    pub http: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FsGrant {
    /// The name the plugin's manifest requested.
    pub name: String,
    /// Absolute path of a directory on the machine, inside a root its owner allows.
    pub path: String,
    /// `read` (default) or `read_write` (only if the plugin asked for it).
    #[serde(default = "read_access")]
    pub access: Access,
}

fn read_access() -> Access {
    Access::Read
}

/// A grant refused: the request field it came from (`grants.http[0]`) and why.
pub type Refusal = (String, String);

/// The tenant's grants checked against what the plugin asked for and, for plugins the host
/// runs, what the operator allows (`runner`). Returns the HTTP grants in normal form, or every
/// refusal. What a machine's owner allows is known only on that machine: [`MachinePolicy`].
pub fn check_tenant(
    manifest: &Manifest,
    grants: &GrantSet,
    runner: &NetPolicy,
) -> Result<Vec<HostEntry>, Vec<Refusal>> {
    let mut refused = Vec::new();
    let mut refuse = |field: String, why: String| refused.push((field, why));
    for (i, fs) in grants.filesystem.iter().enumerate() {
        let field = format!("grants.filesystem[{i}]");
        match manifest
            .capabilities
            .filesystem
            .iter()
            .find(|r| r.name == fs.name)
        {
            None => refuse(
                format!("{field}.name"),
                format!(
                    "The plugin does not request a filesystem mount named `{}`.",
                    fs.name
                ),
            ),
            Some(r) if fs.access == Access::ReadWrite && r.access == Access::Read => refuse(
                format!("{field}.access"),
                "The plugin asked for read access only.".into(),
            ),
            Some(_) => {}
        }
        if !(Path::new(&fs.path).is_absolute() && fs.path.len() <= 4096) {
            refuse(
                format!("{field}.path"),
                "Give the directory as an absolute path on the machine.".into(),
            );
        }
    }
    let asked = &manifest.capabilities.http;
    let mut entries = Vec::new();
    for (i, host) in grants.http.iter().enumerate() {
        let field = format!("grants.http[{i}]");
        let entry = match HostEntry::parse(host) {
            Ok(entry) => entry,
            Err(reason) => {
                refuse(field, reason);
                continue;
            }
        };
        let requested = asked.iter().any(|a| {
            a == "*" || HostEntry::parse(a).is_ok_and(|a| a.names(&entry.host, entry.port))
        });
        if !requested {
            refuse(
                field.clone(),
                "The plugin does not request HTTP access to this host.".into(),
            );
        }
        if !manifest.world.runs_on_agent()
            && let Some(reason) = runner.refuses_grant(&entry)
        {
            refuse(field, reason);
        }
        entries.push(entry);
    }
    if refused.is_empty() {
        Ok(entries)
    } else {
        Err(refused)
    }
}

/// What a plugin gets for one call: the tenant's grants, within what the party running the
/// runtime allows.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Whose share of the runtime the call counts against (a user id).
    pub owner: String,
    pub config: HashMap<String, String>,
    pub mounts: Vec<Mount>,
    /// `host` or `host:port` entries, in normal form.
    pub http: Vec<HostEntry>,
}

impl Grants {
    /// For a plugin the host runs: never a mount; HTTP as the tenant granted (checked against
    /// the operator's list again at every fetch).
    pub fn on_host(owner: String, config: HashMap<String, String>, grants: &GrantSet) -> Self {
        Self {
            owner,
            config,
            mounts: Vec::new(),
            http: hosts::entries(&grants.http),
        }
    }
}

/// A directory the tenant granted and the machine's owner allows, resolved on the machine.
#[derive(Debug, Clone)]
pub struct Mount {
    /// The plugin's request name; seen as `/<name>`.
    pub name: String,
    pub host_path: PathBuf,
    /// What the tenant granted; the plugin's request may still narrow it.
    pub writable: bool,
}

impl Mount {
    /// Writable only when the tenant granted it and the plugin asked for it.
    pub fn writable_for(&self, request: &FsRequest) -> bool {
        self.writable && request.access == Access::ReadWrite
    }
}

/// A mount the tenant granted, as the host sends it to the machine.
pub struct MountGrant<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub writable: bool,
}

/// What the party running plugins allows beyond tenants' HTTP grants.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// Hosts that may lead to internal addresses (and, with `only_allowed`, the only hosts).
    pub allowed: Vec<HostEntry>,
    /// Every host must be in `allowed` as well as granted: the server's own runtime, where
    /// the operator decides what the host process may reach.
    pub only_allowed: bool,
}

impl NetPolicy {
    /// The operator's policy for plugins the host runs: only these hosts, internal or not.
    pub fn operator(allow: &[String]) -> Self {
        Self {
            allowed: hosts::entries(allow),
            only_allowed: true,
        }
    }

    /// A machine owner's policy: any public host a tenant grants, internal ones only if named.
    pub fn machine_owner(allow: &[String]) -> Self {
        Self {
            allowed: hosts::entries(allow),
            only_allowed: false,
        }
    }

    fn allows(&self, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|e| e.covers(host, port))
    }

    /// Whether a plugin holding `granted` may fetch from `host:port` (normal form). `Ok(true)`
    /// when the policy names the host, so it may lead to an internal address; `Ok(false)` when
    /// it may be reached only at public addresses (checked after resolving).
    pub fn permits(&self, granted: &[HostEntry], host: &str, port: u16) -> Result<bool, String> {
        if !granted.iter().any(|g| g.covers(host, port)) {
            return Err(format!("{host}:{port} is not granted to this plugin"));
        }
        let allowed = self.allows(host, port);
        if self.only_allowed && !allowed {
            return Err(format!(
                "{host}:{port} is not in the operator's allow-list (plugins.http_allow)"
            ));
        }
        Ok(allowed)
    }

    /// Why a tenant's grant of `entry` can never work under this policy, if it cannot.
    pub fn refuses_grant(&self, entry: &HostEntry) -> Option<String> {
        let allowed = self
            .allowed
            .iter()
            .any(|e| e.names(&entry.host, entry.port));
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

/// What a machine's owner allows plugins on it: the directories tenants may mount and the
/// hosts that may lead to internal addresses. Checked when a tenant enables a plugin there and
/// again before every call, so a stolen user token cannot mount `/` on anybody's machine.
#[derive(Debug, Clone, Default)]
pub struct MachinePolicy {
    /// Canonical roots (those that exist); none: no mounts at all.
    roots: Vec<PathBuf>,
    /// Directories no mount may overlap (the agent's own data), plain and canonical.
    protected: Vec<PathBuf>,
    net: NetPolicy,
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

impl MachinePolicy {
    pub fn new(roots: &[PathBuf], protected: &[PathBuf], allow_hosts: &[String]) -> Self {
        let roots = roots
            .iter()
            .filter_map(|r| {
                let found = canonical(r);
                if found.is_none() {
                    tracing::warn!(root = %r.display(), "plugin root does not exist; ignored");
                }
                found
            })
            .collect();
        // Canonical where they exist; a data dir is made on first use, so keep the plain path
        // too (an overlap with either form is refused).
        let protected = protected
            .iter()
            .flat_map(|p| std::iter::once(p.clone()).chain(canonical(p)))
            .collect();
        Self {
            roots,
            protected,
            net: NetPolicy::machine_owner(allow_hosts),
        }
    }

    pub fn net(&self) -> &NetPolicy {
        &self.net
    }

    /// The directory a mount may use, or why not.
    pub fn check_mount(&self, path: &str) -> Result<PathBuf, String> {
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err("The path must be absolute.".into());
        }
        if self.roots.is_empty() {
            return Err(
                "This machine allows no plugin mounts: its owner names roots with \
                 `claudenest agent --plugin-root DIR`."
                    .into(),
            );
        }
        let Some(dir) = canonical(given).filter(|d| d.is_dir()) else {
            return Err("The path is not an existing directory on this machine.".into());
        };
        if !self.roots.iter().any(|root| dir.starts_with(root)) {
            return Err(format!(
                "The path is outside the roots this machine's owner allows ({}).",
                self.roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self
            .protected
            .iter()
            .any(|p| dir.starts_with(p) || p.starts_with(&dir))
        {
            return Err("The path overlaps the agent's own data and can never be granted.".into());
        }
        Ok(dir)
    }

    /// Why an HTTP grant can never work on this machine, if it cannot.
    pub fn check_http(&self, entry: &str) -> Option<String> {
        match HostEntry::parse(entry) {
            Ok(entry) => self.net.refuses_grant(&entry),
            Err(reason) => Some(reason),
        }
    }

    /// The tenant's mounts resolved on this machine, or the first one its owner refuses.
    pub fn mounts<'a>(
        &self,
        granted: impl IntoIterator<Item = MountGrant<'a>>,
    ) -> Result<Vec<Mount>, String> {
        granted
            .into_iter()
            .map(|m| {
                let dir = self
                    .check_mount(m.path)
                    .map_err(|reason| format!("mount `{}`: {reason}", m.name))?;
                Ok(Mount {
                    name: m.name.to_owned(),
                    host_path: dir,
                    writable: m.writable,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Capabilities, World};

    fn manifest(world: World, fs: Vec<FsRequest>, http: &[&str]) -> Manifest {
        Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            world,
            api_version: crate::manifest::API_VERSION.into(),
            description: String::new(),
            capabilities: Capabilities {
                filesystem: fs,
                http: http.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn fields(r: Result<Vec<HostEntry>, Vec<Refusal>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn the_tenant_grants_only_what_the_plugin_asks() {
        let m = manifest(
            World::McpAdapter,
            vec![FsRequest {
                name: "docs".into(),
                access: Access::Read,
            }],
            &["api.example.com"],
        );
        let grants = GrantSet {
            filesystem: vec![
                FsGrant {
                    name: "docs".into(),
                    path: "/srv/docs".into(),
                    access: Access::ReadWrite,
                },
                FsGrant {
                    name: "other".into(),
                    path: "relative".into(),
                    access: Access::Read,
                },
            ],
            http: vec!["api.example.com".into(), "evil.example.com".into()],
        };
        let refused = fields(check_tenant(&m, &grants, &NetPolicy::default()));
        assert_eq!(
            refused,
            [
                "grants.filesystem[0].access",
                "grants.filesystem[1].name",
                "grants.filesystem[1].path",
                "grants.http[1]"
            ]
        );
        let ok = GrantSet {
            filesystem: vec![FsGrant {
                name: "docs".into(),
                path: "/srv/docs".into(),
                access: Access::Read,
            }],
            http: vec!["API.example.com:443".into()],
        };
        let http = check_tenant(&m, &ok, &NetPolicy::default()).unwrap();
        assert_eq!(http[0].to_string(), "api.example.com:443");
    }

    #[test]
    fn the_operator_bounds_plugins_the_host_runs() {
        let m = manifest(World::Summarizer, vec![], &["*"]);
        let operator = NetPolicy::operator(&["api.example.com".into()]);
        let grants = GrantSet {
            filesystem: vec![],
            http: vec!["api.example.com".into(), "other.example.com".into()],
        };
        assert_eq!(
            fields(check_tenant(&m, &grants, &operator)),
            ["grants.http[1]"]
        );
        let host = |h: &str| vec![HostEntry::parse(h).unwrap()];
        assert_eq!(
            operator.permits(&host("api.example.com"), "api.example.com", 443),
            Ok(true)
        );
        assert!(
            operator
                .permits(&host("other.example.com"), "other.example.com", 443)
                .is_err()
        );
        // Granted by nobody: refused whatever the operator says.
        assert!(
            operator
                .permits(&host("x.example.com"), "api.example.com", 443)
                .is_err()
        );
    }

    #[test]
    fn internal_hosts_need_the_machine_owner() {
        let none = NetPolicy::machine_owner(&[]);
        let entry = HostEntry::parse("127.1:8080").unwrap();
        assert!(none.refuses_grant(&entry).is_some());
        let owner = NetPolicy::machine_owner(&["127.0.0.1".into()]);
        assert_eq!(owner.refuses_grant(&entry), None);
        assert_eq!(
            owner.permits(std::slice::from_ref(&entry), "127.0.0.1", 8080),
            Ok(true)
        );
        let public = HostEntry::parse("example.com").unwrap();
        assert_eq!(
            none.permits(std::slice::from_ref(&public), "example.com", 80),
            Ok(false)
        );
    }

    #[test]
    fn mounts_lie_inside_a_root_and_outside_the_agents_data() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let work = root.path().join("work");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let outside = tempfile::tempdir().unwrap();

        let closed = MachinePolicy::new(&[], std::slice::from_ref(&data), &[]);
        assert!(closed.check_mount(work.to_str().unwrap()).is_err());

        let policy =
            MachinePolicy::new(&[root.path().to_owned()], std::slice::from_ref(&data), &[]);
        assert!(policy.check_mount(work.to_str().unwrap()).is_ok());
        assert!(policy.check_mount("work").is_err());
        assert!(
            policy
                .check_mount(outside.path().to_str().unwrap())
                .is_err()
        );
        assert!(policy.check_mount(data.to_str().unwrap()).is_err());
        // The root itself holds the data directory: mounting it would expose the data.
        assert!(policy.check_mount(root.path().to_str().unwrap()).is_err());
        let escape = format!("{}/../{}", work.display(), "..");
        assert!(policy.check_mount(&escape).is_err());

        let mounts = policy
            .mounts([MountGrant {
                name: "w",
                path: work.to_str().unwrap(),
                writable: true,
            }])
            .unwrap();
        let read_only = FsRequest {
            name: "w".into(),
            access: Access::Read,
        };
        assert!(!mounts[0].writable_for(&read_only));
    }
}
