//! mcp-adapter plugins on the machine they are enabled on.
//!
//! The host sends a [`PluginSpec`] with every call: the component's sha256 and the tenant's
//! grants. The agent fetches the component from the host with its machine token (once per
//! process; compiled forms are kept in its own authenticated cache), checks its hash, and runs
//! the call in its own plugin runtime under the same limits as the host's.
//!
//! What a plugin may reach here needs the machine owner's consent as well as the tenant's
//! (`--plugin-root`, `--plugin-allow-host`): the rules are the plugin host's
//! ([`claudenest_plugin_host::grants`]); the agent applies them when the host asks
//! (`plugin_check`) and again before every call.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde_json::{Value, json};

use claudenest_plugin_host::{
    grants::{Grants, MachinePolicy, MountGrant},
    hosts,
    runtime::{self, Loaded, PluginRuntime, result_json, tool_json},
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
    policy: MachinePolicy,
    server: String,
    token: String,
    client: reqwest::Client,
    /// Made on first use: most machines never run a plugin.
    runtime: tokio::sync::OnceCell<Arc<PluginRuntime>>,
}

impl AgentPlugins {
    pub fn new(settings: PluginSettings, server: &str, token: &str) -> Self {
        let mut protected = vec![settings.data_dir.clone()];
        protected.extend(settings.protected.iter().cloned());
        let policy = MachinePolicy::new(&settings.roots, &protected, &settings.allow_hosts);
        Self {
            inner: Arc::new(Inner {
                settings,
                policy,
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

    /// `plugin_check`: one answer per grant, `null` when this machine's owner allows it.
    pub fn check(&self, mounts: &[PluginMount], http: &[String]) -> Value {
        let policy = &self.inner.policy;
        let mounts: Vec<Value> = mounts
            .iter()
            .map(|m| match policy.check_mount(&m.path) {
                Ok(_) => Value::Null,
                Err(reason) => Value::String(reason),
            })
            .collect();
        let http: Vec<Value> = http
            .iter()
            .map(|h| policy.check_http(h).map_or(Value::Null, Value::String))
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
                    net: self.inner.policy.net().clone(),
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
        let mounts = self
            .inner
            .policy
            .mounts(spec.mounts.iter().map(|m| MountGrant {
                name: &m.name,
                path: &m.path,
                writable: m.writable,
            }))
            .map_err(|reason| CodedError::new(codes::NOT_ALLOWED, reason))?;
        Ok(Grants {
            owner: spec.owner.clone(),
            config: spec.config.clone().into_iter().collect(),
            mounts,
            http: hosts::entries(&spec.http),
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
