//! Plugins (issue 8): a user's installed components and where they are enabled.
//!
//! Install validates and compiles the component before storing it (the bytes live in the
//! database, so every host process can load them; each compiles once into its own cache).
//! Enabling a plugin on a machine binds the capabilities its manifest requests to what the
//! operator grants; a plugin gets a capability only when both say so. Calls read the current
//! enablement, so install/enable/disable take effect at once.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{abilities, accounts::Principal, clock};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    plugins::{
        manifest::{Access, Manifest},
        runtime::{Grants, Loaded, Mount, PluginError, PluginRuntime},
    },
    store::{MachinePlugin, PluginRow, Store, StoreError},
};

/// What the operator grants a plugin on one machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantSet {
    #[serde(default)]
    pub filesystem: Vec<FsGrant>,
    /// `host` or `host:port`; the plugin's manifest must ask for HTTP (and for these hosts,
    /// unless it asks for `*`).
    #[serde(default)]
    pub http: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FsGrant {
    /// The name the plugin's manifest requested.
    pub name: String,
    /// Absolute path of a directory on the host.
    pub path: String,
    /// `read` (default) or `read_write` (only if the plugin asked for it).
    #[serde(default = "read_access")]
    pub access: Access,
}

fn read_access() -> Access {
    Access::Read
}

pub struct Enable {
    pub config: HashMap<String, String>,
    pub grants: GrantSet,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::PluginNotFound)
}

fn failed(err: PluginError) -> ApiError {
    ApiError::new(ErrorCode::PluginFailed).with_message(err.0)
}

/// `POST /api/plugins`: validates, compiles and stores the component.
pub async fn install(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    principal: &Principal,
    component: Vec<u8>,
) -> Result<PluginRow> {
    principal.require(abilities::PLUGINS_WRITE)?;
    if component.is_empty() {
        return Err(ApiError::invalid_field(
            "component",
            "Send the component's bytes as the request body (application/wasm).",
        ));
    }
    let loaded = runtime
        .load(component.clone())
        .await
        .map_err(|e| ApiError::new(ErrorCode::PluginInvalid).with_message(e.0))?;
    let manifest = &loaded.manifest;
    let row = PluginRow {
        id: Uuid::now_v7(),
        user_id: principal.user.id,
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        world: manifest.world.as_str().to_owned(),
        api_version: manifest.api_version.clone(),
        description: manifest.description.clone(),
        sha256: loaded.sha256.clone(),
        size_bytes: component.len() as i64,
        manifest: Json(serde_json::to_value(manifest).expect("manifests serialize")),
        created_at: clock::now(),
    };
    match store.insert_plugin(&row, &component).await {
        Ok(()) => Ok(row),
        Err(StoreError::Conflict) => {
            Err(ApiError::new(ErrorCode::PluginExists).with_message(format!(
                "A plugin named `{}` is already installed; delete it first.",
                row.name
            )))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn list(store: &dyn Store, principal: &Principal) -> Result<Vec<PluginRow>> {
    principal.require(abilities::PLUGINS_READ)?;
    Ok(store.plugins(principal.user.id).await?)
}

pub async fn get(store: &dyn Store, principal: &Principal, name: &str) -> Result<PluginRow> {
    principal.require(abilities::PLUGINS_READ)?;
    store
        .plugin(principal.user.id, name)
        .await?
        .ok_or_else(not_found)
}

pub async fn delete(store: &dyn Store, principal: &Principal, name: &str) -> Result<()> {
    principal.require(abilities::PLUGINS_WRITE)?;
    if !store.delete_plugin(principal.user.id, name).await? {
        return Err(not_found());
    }
    Ok(())
}

/// The plugins enabled on a machine, with their rows.
pub async fn enabled_on(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Vec<(PluginRow, MachinePlugin)>> {
    principal.require(abilities::PLUGINS_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    let plugins = store.plugins(principal.user.id).await?;
    let enabled = store.machine_plugins(machine_id).await?;
    Ok(enabled
        .into_iter()
        .filter_map(|e| {
            let row = plugins.iter().find(|p| p.id == e.plugin_id)?.clone();
            Some((row, e))
        })
        .collect())
}

fn manifest_of(row: &PluginRow) -> Result<Manifest> {
    serde_json::from_value(row.manifest.0.clone()).map_err(|err| {
        tracing::error!(plugin = %row.name, error = %err, "stored manifest unreadable");
        ApiError::new(ErrorCode::Internal)
    })
}

/// Grants must match what the manifest requested; paths must be existing directories.
fn validate_grants(manifest: &Manifest, grants: &GrantSet) -> Result<()> {
    let mut v = Validator::new();
    for (i, fs) in grants.filesystem.iter().enumerate() {
        let requested = manifest
            .capabilities
            .filesystem
            .iter()
            .find(|r| r.name == fs.name);
        let field = format!("grants.filesystem[{i}]");
        match requested {
            None => {
                v.check(
                    false,
                    &format!("{field}.name"),
                    format!(
                        "The plugin does not request a filesystem mount named `{}`.",
                        fs.name
                    ),
                );
            }
            Some(r) => {
                v.check(
                    !(fs.access == Access::ReadWrite && r.access == Access::Read),
                    &format!("{field}.access"),
                    "The plugin asked for read access only.",
                );
            }
        }
        let path = std::path::Path::new(&fs.path);
        v.check(
            path.is_absolute() && path.is_dir(),
            &format!("{field}.path"),
            "The path must be an existing directory, given as an absolute path.",
        );
    }
    let asked = &manifest.capabilities.http;
    for (i, host) in grants.http.iter().enumerate() {
        let host = host.to_ascii_lowercase();
        let allowed = asked
            .iter()
            .any(|a| a == "*" || a.to_ascii_lowercase() == host);
        v.check(
            allowed,
            &format!("grants.http[{i}]"),
            "The plugin does not request HTTP access to this host.",
        );
        v.check(
            !host.is_empty() && !host.contains('/') && !host.contains('*'),
            &format!("grants.http[{i}]"),
            "Give a host or host:port.",
        );
    }
    v.finish()
}

/// `PUT /api/machines/{machine}/plugins/{name}`: enables (or re-configures) the plugin.
pub async fn enable(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    enable: Enable,
) -> Result<(PluginRow, MachinePlugin)> {
    principal.require(abilities::PLUGINS_WRITE)?;
    super::machines::owned(store, principal, machine_id).await?;
    let row = get(store, principal, name).await?;
    validate_grants(&manifest_of(&row)?, &enable.grants)?;
    let enabled = MachinePlugin {
        machine_id,
        plugin_id: row.id,
        config: Json(json!(enable.config)),
        grants: Json(serde_json::to_value(&enable.grants).expect("grants serialize")),
        enabled_at: clock::now(),
    };
    store.enable_plugin(&enabled).await?;
    Ok((row, enabled))
}

pub async fn disable(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<()> {
    principal.require(abilities::PLUGINS_WRITE)?;
    super::machines::owned(store, principal, machine_id).await?;
    let row = get(store, principal, name).await?;
    if !store.disable_plugin(machine_id, row.id).await? {
        return Err(ApiError::new(ErrorCode::PluginNotEnabled));
    }
    Ok(())
}

/// A plugin ready to call on a machine: loaded (compiled once per process) with its grants.
pub struct Ready {
    pub loaded: Arc<Loaded>,
    pub grants: Grants,
}

/// Loads the plugin enabled on the machine under `name` (of the user's).
pub async fn ready(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    user_id: Uuid,
    machine_id: Uuid,
    name: &str,
) -> Result<Ready> {
    let row = store.plugin(user_id, name).await?.ok_or_else(not_found)?;
    let enabled = store
        .machine_plugin(machine_id, row.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PluginNotEnabled))?;
    let loaded = match runtime.get(&row.sha256) {
        Some(loaded) => loaded,
        None => {
            let bytes = store
                .plugin_component(row.id)
                .await?
                .ok_or_else(not_found)?;
            runtime.load(bytes).await.map_err(failed)?
        }
    };
    let set: GrantSet = serde_json::from_value(enabled.grants.0.clone()).unwrap_or_default();
    let config: HashMap<String, String> =
        serde_json::from_value(enabled.config.0.clone()).unwrap_or_default();
    let grants = Grants {
        config,
        mounts: set
            .filesystem
            .into_iter()
            .map(|fs| Mount {
                name: fs.name,
                host_path: PathBuf::from(fs.path),
                writable: fs.access == Access::ReadWrite,
            })
            .collect(),
        http: set.http,
    };
    Ok(Ready { loaded, grants })
}

/// The tools of an mcp-adapter plugin enabled on the machine.
pub async fn list_tools(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<Vec<Value>> {
    principal.require(abilities::PLUGINS_READ)?;
    let ready = ready(store, runtime, principal.user.id, machine_id, name).await?;
    let tools = runtime
        .list_tools(&ready.loaded, &ready.grants)
        .await
        .map_err(failed)?;
    Ok(tools.into_iter().map(tool_json).collect())
}

/// A plugin's tool as MCP `tools/list` shows one.
pub fn tool_json(t: crate::plugins::runtime::Tool) -> Value {
    let schema: Value = serde_json::from_str(&t.input_schema).unwrap_or(json!({"type": "object"}));
    json!({"name": t.name, "description": t.description, "inputSchema": schema})
}

/// The names of the plugins of `world` enabled on the machine, in name order.
pub async fn enabled_of_world(
    store: &dyn Store,
    user_id: Uuid,
    machine_id: Uuid,
    world: &str,
) -> Result<Vec<String>> {
    let plugins = store.plugins(user_id).await?;
    let enabled = store.machine_plugins(machine_id).await?;
    Ok(plugins
        .into_iter()
        .filter(|p| p.world == world && enabled.iter().any(|e| e.plugin_id == p.id))
        .map(|p| p.name)
        .collect())
}

/// Calls a tool; the result is MCP-shaped (`content`, `isError`). A call the plugin refuses
/// (unknown tool) is a `VAL_001` on `tool`.
pub async fn call_tool(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    tool: &str,
    arguments: &Value,
) -> Result<Value> {
    principal.require(abilities::PLUGINS_WRITE)?;
    let ready = ready(store, runtime, principal.user.id, machine_id, name).await?;
    let result = runtime
        .call_tool(&ready.loaded, &ready.grants, tool, &arguments.to_string())
        .await
        .map_err(failed)?
        .map_err(|reason| ApiError::invalid_field("tool", &reason))?;
    use crate::plugins::runtime::Content;
    let content: Vec<Value> = result
        .content
        .into_iter()
        .map(|c| match c {
            Content::Text(text) => json!({"type": "text", "text": text}),
            Content::Json(text) => json!({"type": "text", "text": text, "json": serde_json::from_str::<Value>(&text).ok()}),
            Content::Image(image) => {
                json!({"type": "image", "data": image.data, "mimeType": image.mime_type})
            }
        })
        .collect();
    Ok(json!({"content": content, "isError": result.is_error}))
}
