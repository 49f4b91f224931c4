//! mcp-adapter plugins on the machine they are enabled on.
//!
//! The host sends a [`PluginSpec`] with every call: the component's sha256 and the tenant's
//! grants. The agent fetches the component from the host with its machine token (once per
//! process; compiled forms are kept in its own authenticated cache), checks its hash, and runs
//! the call in its own plugin runtime under the same limits as the host's.
//!
//! Double consent for the filesystem: the tenant grants a path through the API, and the
//! machine's owner allows roots on the machine (`--plugin-root`, `plugin_roots` in the agent
//! file; none by default: no mounts at all). A mount must lie inside an allowed root after
//! resolving symlinks, and may never overlap the agent's own data (its compile cache and key,
//! its file with the machine token). Internal HTTP addresses likewise need the owner's
//! `--plugin-allow-host`. Both are checked again before every call, so a stolen user token
//! cannot mount `/` on anybody's machine.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};

use claudenest_plugin_host::{
    net::{self, HostEntry, NetPolicy},
    runtime::{self, Grants, Loaded, Mount, PluginRuntime, result_json, tool_json},
};
use claudenest_protocol::{CodedError, PluginMount, PluginSpec, codes};

/// Largest component the agent downloads.
const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// What a plugin call may return over the link: a reply must fit one frame.
const MAX_OUTPUT_BYTES: usize = 768 * 1024;

/// What the machine's owner decides about plugins here.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// The agent's data directory (compile cache and its key).
    pub data_dir: PathBuf,
    /// Directories under which tenants may mount (empty: no mounts).
    pub roots: Vec<PathBuf>,
    /// Hosts that may lead to internal addresses (`host` or `host:port`).
    pub allow_hosts: Vec<String>,
    /// Directories no mount may overlap besides the data directory (the agent file's).
    pub protected: Vec<PathBuf>,
}

#[derive(Clone)]
pub struct AgentPlugins {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PluginSettings,
    /// Canonical roots (those that exist).
    roots: Vec<PathBuf>,
    protected: Vec<PathBuf>,
    net: NetPolicy,
    server: String,
    token: String,
    client: reqwest::Client,
    /// Made on first use: most machines never run a plugin.
    runtime: tokio::sync::OnceCell<Arc<PluginRuntime>>,
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

impl AgentPlugins {
    pub fn new(settings: PluginSettings, server: &str, token: &str) -> Self {
        let roots = settings
            .roots
            .iter()
            .filter_map(|r| {
                let found = canonical(r);
                if found.is_none() {
                    tracing::warn!(root = %r.display(), "plugin root does not exist; ignored");
                }
                found
            })
            .collect();
        let mut protected = vec![settings.data_dir.clone()];
        protected.extend(settings.protected.iter().cloned());
        // Canonical where they exist; the data dir is made on first use, so keep the plain
        // path too (an overlap with either form is refused).
        let protected = protected
            .into_iter()
            .flat_map(|p| {
                let c = canonical(&p);
                std::iter::once(p).chain(c)
            })
            .collect();
        let net = NetPolicy {
            allowed: net::entries(&settings.allow_hosts),
            only_allowed: false,
        };
        Self {
            inner: Arc::new(Inner {
                settings,
                roots,
                protected,
                net,
                server: server.trim_end_matches('/').to_owned(),
                token: token.to_owned(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap_or_default(),
                runtime: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The directory a mount may use, or why not.
    pub fn check_mount(&self, path: &str) -> Result<PathBuf, String> {
        let inner = &self.inner;
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err("The path must be absolute.".into());
        }
        if inner.roots.is_empty() {
            return Err(
                "This machine allows no plugin mounts: its owner names roots with \
                 `claudenest agent --plugin-root DIR`."
                    .into(),
            );
        }
        let Some(dir) = canonical(given).filter(|d| d.is_dir()) else {
            return Err("The path is not an existing directory on this machine.".into());
        };
        if !inner.roots.iter().any(|root| dir.starts_with(root)) {
            return Err(format!(
                "The path is outside the roots this machine's owner allows ({}).",
                inner
                    .roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if inner
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
            Ok(entry) => self.inner.net.refuses_grant(&entry),
            Err(reason) => Some(reason),
        }
    }

    /// `plugin_check`: one answer per grant, `null` when allowed.
    pub fn check(&self, mounts: &[PluginMount], http: &[String]) -> Value {
        let mounts: Vec<Value> = mounts
            .iter()
            .map(|m| match self.check_mount(&m.path) {
                Ok(_) => Value::Null,
                Err(reason) => Value::String(reason),
            })
            .collect();
        let http: Vec<Value> = http
            .iter()
            .map(|h| self.check_http(h).map_or(Value::Null, Value::String))
            .collect();
        json!({"mounts": mounts, "http": http})
    }

    async fn runtime(&self) -> Result<&Arc<PluginRuntime>, CodedError> {
        self.inner
            .runtime
            .get_or_try_init(|| async {
                let options = runtime::Options {
                    cache_dir: Some(self.inner.settings.data_dir.join("plugin-cache")),
                    limits: runtime::Limits {
                        output_bytes: MAX_OUTPUT_BYTES,
                        ..runtime::Limits::default()
                    },
                    net: self.inner.net.clone(),
                    pooling: true,
                };
                PluginRuntime::new(options).map_err(|e| {
                    CodedError::new(
                        codes::PLUGIN_FAILED,
                        format!("the agent's plugin runtime did not start: {e:#}"),
                    )
                })
            })
            .await
    }

    /// The component, loaded: from memory, else fetched from the host and checked.
    async fn loaded(&self, spec: &PluginSpec) -> Result<Arc<Loaded>, CodedError> {
        let runtime = self.runtime().await?;
        if let Some(loaded) = runtime.get(&spec.sha256) {
            return Ok(loaded);
        }
        let failed = |m: String| CodedError::new(codes::PLUGIN_FAILED, m);
        let url = format!("{}/api/agent/plugins/{}", self.inner.server, spec.sha256);
        let mut response = self
            .inner
            .client
            .get(&url)
            .bearer_auth(&self.inner.token)
            .send()
            .await
            .map_err(|e| failed(format!("fetching the component from the host: {e}")))?;
        if !response.status().is_success() {
            return Err(failed(format!(
                "the host did not give the component ({})",
                response.status()
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(format!("fetching the component from the host: {e}")))?
        {
            if bytes.len() + chunk.len() > MAX_COMPONENT_BYTES {
                return Err(failed(
                    "the component is larger than the agent accepts".into(),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if PluginRuntime::sha256(&bytes) != spec.sha256 {
            return Err(failed(
                "the component the host sent does not match its sha256".into(),
            ));
        }
        let loaded = runtime.load(bytes).await.map_err(|e| failed(e.0))?;
        if !loaded.manifest.world.runs_on_agent() {
            return Err(failed(format!(
                "`{}` plugins do not run on agents",
                loaded.manifest.world.as_str()
            )));
        }
        Ok(loaded)
    }

    /// The tenant's grants, checked again against what this machine allows now.
    fn grants(&self, spec: &PluginSpec) -> Result<Grants, CodedError> {
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            let dir = self.check_mount(&m.path).map_err(|reason| {
                CodedError::new(codes::NOT_ALLOWED, format!("mount `{}`: {reason}", m.name))
            })?;
            mounts.push(Mount {
                name: m.name.clone(),
                host_path: dir,
                writable: m.writable,
            });
        }
        Ok(Grants {
            owner: spec.owner.clone(),
            config: spec.config.clone().into_iter().collect(),
            mounts,
            http: net::entries(&spec.http),
        })
    }

    pub async fn tools(&self, spec: &PluginSpec) -> Result<Value, CodedError> {
        let grants = self.grants(spec)?;
        let loaded = self.loaded(spec).await?;
        let runtime = self.runtime().await?;
        let tools = runtime
            .list_tools(&loaded, &grants)
            .await
            .map_err(|e| CodedError::new(codes::PLUGIN_FAILED, e.0))?;
        let tools: Vec<Value> = tools.into_iter().map(tool_json).collect();
        Ok(json!({ "tools": tools }))
    }

    pub async fn call(
        &self,
        spec: &PluginSpec,
        tool: &str,
        arguments: &Value,
    ) -> Result<Value, CodedError> {
        let grants = self.grants(spec)?;
        let loaded = self.loaded(spec).await?;
        let runtime = self.runtime().await?;
        let result = runtime
            .call_tool(&loaded, &grants, tool, &arguments.to_string())
            .await
            .map_err(|e| CodedError::new(codes::PLUGIN_FAILED, e.0))?
            .map_err(|reason| CodedError::new(codes::REFUSED, reason))?;
        Ok(result_json(result))
    }

    /// Drops a deleted plugin's compiled code.
    pub fn forget(&self, sha256: &str) {
        if let Some(runtime) = self.inner.runtime.get() {
            runtime.forget(sha256);
        }
    }
}
