//! Plugins (issue 8, 16): a user's installed components and where they are enabled.
//!
//! Install inspects the component (manifest, world, size of its code) before anything else,
//! checks the name and the user's quota, then compiles it within the compile budget and stores
//! it (the bytes live in the database, so every host process and agent can get them).
//!
//! Where a plugin runs follows from its world: mcp-adapters run on the agent of the machine
//! they are enabled on (their tools act on that machine; mounts need the machine owner's
//! roots), summarizers and skill processors in the host's runtime, with no filesystem and HTTP
//! only to hosts the operator allow-listed. A plugin gets a capability only when its manifest
//! asks for it, the tenant grants it, and the party running it allows it.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Deps, abilities, accounts::Principal, clock};
use crate::{
    error::{ApiError, ErrorCode, FieldErrors, Result, Validator},
    links::LinkError,
    plugins::{
        grants::{self, GrantSet, Grants},
        hosts::HostEntry,
        manifest::{self, Access, Manifest},
        runtime::{Loaded, PluginError, PluginRuntime},
    },
    protocol::{AgentRequest, PluginMount, PluginSpec, codes},
    store::{Machine, MachinePlugin, PluginRow, PluginUpgrade, Store, StoreError},
};

pub struct Enable {
    pub config: HashMap<String, String>,
    pub grants: GrantSet,
}

/// How much one user may install.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub max_plugins: usize,
    pub max_bytes: u64,
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::PluginNotFound)
}

fn failed(err: PluginError) -> ApiError {
    ApiError::new(ErrorCode::PluginFailed).with_message(err.0)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::PluginInvalid).with_message(message)
}

/// How long the host waits for an agent's plugin call: the first call on a machine fetches
/// and compiles the component (within the agent's compile budget) before running it.
const AGENT_PLUGIN_WAIT: Duration = Duration::from_secs(80);
/// How long grants take to check on the machine.
const AGENT_CHECK_WAIT: Duration = Duration::from_secs(10);

/// What replacing an installed plugin by a new version did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Upgrade {
    pub from_version: String,
    pub from_sha256: String,
    /// Machines now running the new version (their grants kept: it asks for nothing more).
    pub machines_moved: Vec<Uuid>,
    /// Machines left on the earlier version because the new one asks for more than they
    /// granted: enabling it there again (with grants for the new version) moves them.
    pub machines_kept: Vec<Uuid>,
}

/// Whether `new` asks for anything `old` did not: a mount, write access, a host.
fn capabilities_grew(old: &Manifest, new: &Manifest) -> bool {
    let (old, new) = (&old.capabilities, &new.capabilities);
    let fs_grew = new.filesystem.iter().any(|n| {
        !old.filesystem.iter().any(|o| {
            o.name == n.name && (o.access == Access::ReadWrite || n.access == Access::Read)
        })
    });
    let any_host = old.http.iter().any(|h| h == "*");
    let http_grew = !any_host && new.http.iter().any(|h| !old.http.contains(h));
    fs_grew || http_grew
}

/// `POST /api/plugins`: inspects, checks name and quota, compiles and stores the component.
/// A new version of an installed plugin (same name and world, other bytes) replaces it in
/// place: its machines move to it, unless it asks for more than they granted.
pub async fn install(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    principal: &Principal,
    quota: Quota,
    component: Vec<u8>,
) -> Result<(PluginRow, Option<Upgrade>)> {
    principal.require(abilities::PLUGINS_WRITE)?;
    if component.is_empty() {
        return Err(ApiError::invalid_field(
            "component",
            "Send the component's bytes as the request body (application/wasm).",
        ));
    }
    // Cheap checks first: nothing is compiled for a component that cannot be installed.
    let inspected = manifest::inspect(&component).map_err(invalid)?;
    let name = &inspected.manifest.name;
    let installed = store.plugins(principal.user.id).await?;
    let previous = installed.iter().find(|p| &p.name == name);
    if let Some(old) = previous {
        if old.sha256 == PluginRuntime::sha256(&component) {
            return Err(exists(name));
        }
        if old.world != inspected.manifest.world.as_str() {
            return Err(ApiError::new(ErrorCode::PluginExists).with_message(format!(
                "`{name}` is installed as a {} plugin; a new version cannot change its world: \
                 delete it first.",
                old.world
            )));
        }
    }
    let others = installed.iter().filter(|p| Some(*p) != previous);
    let count = others.clone().count();
    let bytes: u64 = others.map(|p| p.size_bytes.max(0) as u64).sum();
    if count >= quota.max_plugins {
        return Err(ApiError::new(ErrorCode::PluginQuota).with_message(format!(
            "You have {count} plugins installed, the most this host allows; delete one first."
        )));
    }
    if bytes + component.len() as u64 > quota.max_bytes {
        return Err(ApiError::new(ErrorCode::PluginQuota).with_message(format!(
            "Your plugins would take {} bytes, more than the {} this host allows per user.",
            bytes + component.len() as u64,
            quota.max_bytes
        )));
    }
    let loaded = runtime
        .load(component.clone())
        .await
        .map_err(|e| invalid(e.0))?;
    let manifest = &loaded.manifest;
    let row = PluginRow {
        id: previous.map_or_else(Uuid::now_v7, |p| p.id),
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
    if let Some(old) = previous {
        let grew = capabilities_grew(&manifest_of(old)?, manifest);
        let enablements = store.plugin_enablements(old.id).await?;
        // Machines already on an earlier version stay there until enabled again.
        let (kept, moved): (Vec<_>, Vec<_>) = enablements
            .iter()
            .filter(|e| e.pinned_sha256.is_none())
            .map(|e| e.machine_id)
            .partition(|_| grew);
        store
            .upgrade_plugin(&PluginUpgrade {
                old,
                new: &row,
                component: &component,
                pinned_machines: &kept,
            })
            .await?;
        if kept.is_empty() {
            runtime.forget(&old.sha256);
        }
        let upgrade = Upgrade {
            from_version: old.version.clone(),
            from_sha256: old.sha256.clone(),
            machines_moved: moved,
            machines_kept: kept,
        };
        return Ok((row, Some(upgrade)));
    }
    match store.insert_plugin(&row, &component).await {
        Ok(()) => Ok((row, None)),
        Err(StoreError::Conflict) => Err(exists(&row.name)),
        Err(err) => Err(err.into()),
    }
}

fn exists(name: &str) -> ApiError {
    ApiError::new(ErrorCode::PluginExists).with_message(format!(
        "`{name}` is already installed with these very bytes; a new version installs over it."
    ))
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

/// `DELETE /api/plugins/{name}`: the row, its enablements, and its compiled code — in this
/// process and on the online agents it was enabled on.
pub async fn delete(deps: Deps<'_>, principal: &Principal, name: &str) -> Result<()> {
    principal.require(abilities::PLUGINS_WRITE)?;
    let row = get(deps.store, principal, name).await?;
    let enablements = deps.store.plugin_enablements(row.id).await?;
    if !deps.store.delete_plugin(principal.user.id, name).await? {
        return Err(not_found());
    }
    let mut shas: Vec<String> = enablements
        .iter()
        .filter_map(|e| e.pinned_sha256.clone())
        .chain([row.sha256.clone()])
        .collect();
    shas.sort();
    shas.dedup();
    for sha in &shas {
        deps.plugins.forget(sha);
    }
    for enabled in enablements {
        let Some(machine) = deps
            .store
            .machine(principal.user.id, enabled.machine_id)
            .await?
        else {
            continue;
        };
        if !deps.is_online(&machine) {
            continue;
        }
        for sha in &shas {
            let forget = AgentRequest::PluginForget {
                sha256: sha.clone(),
            };
            if let Err(err) = deps
                .links
                .request(machine.id, forget, AGENT_CHECK_WAIT)
                .await
            {
                tracing::warn!(machine = %machine.id, error = %err, "an agent did not drop a deleted plugin");
            }
        }
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

/// The tenant's grants against what the plugin asked for and, for plugins the host runs, the
/// operator's allow-list; refusals become field errors. Returns the HTTP grants in normal form.
fn validate_grants(
    manifest: &Manifest,
    grants: &GrantSet,
    host_policy: &grants::NetPolicy,
) -> Result<Vec<HostEntry>> {
    grants::check_tenant(manifest, grants, host_policy).map_err(|refused| {
        let mut errors = FieldErrors::new();
        for (field, reason) in refused {
            errors.entry(field).or_default().push(reason);
        }
        ApiError::validation(errors)
    })
}

/// Asks the machine's agent whether its owner allows these grants; its reasons become field
/// errors. The machine must be online: the roots it allows are known only there.
async fn check_on_machine(
    deps: Deps<'_>,
    machine: &Machine,
    grants: &GrantSet,
    http: &[HostEntry],
) -> Result<()> {
    if grants.filesystem.is_empty() && http.is_empty() {
        return Ok(());
    }
    if !deps.is_online(machine) {
        return Err(ApiError::new(ErrorCode::MachineOffline).with_message(
            "The machine must be online to check these grants against what its owner allows \
             (plugin roots and hosts are set on the machine).",
        ));
    }
    let request = AgentRequest::PluginCheck {
        mounts: grants
            .filesystem
            .iter()
            .map(|fs| PluginMount {
                name: fs.name.clone(),
                path: fs.path.clone(),
                writable: fs.access == Access::ReadWrite,
            })
            .collect(),
        http: http.iter().map(ToString::to_string).collect(),
    };
    let reply = deps
        .links
        .request(machine.id, request, AGENT_CHECK_WAIT)
        .await
        .map_err(link_error)?;
    let mut v = Validator::new();
    let reasons = |key: &str| -> Vec<Option<String>> {
        reply[key]
            .as_array()
            .map(|a| a.iter().map(|r| r.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    for (i, reason) in reasons("mounts").into_iter().enumerate() {
        if let Some(reason) = reason {
            v.add(&format!("grants.filesystem[{i}].path"), reason);
        }
    }
    for (i, reason) in reasons("http").into_iter().enumerate() {
        if let Some(reason) = reason {
            v.add(&format!("grants.http[{i}]"), reason);
        }
    }
    v.finish()
}

/// An agent's failure as the API answers it.
fn link_error(err: LinkError) -> ApiError {
    match err {
        LinkError::NotConnected => ApiError::new(ErrorCode::MachineOffline),
        LinkError::Agent { code, message } => match code.as_str() {
            codes::REFUSED => ApiError::invalid_field("tool", &message),
            codes::NOT_ALLOWED => ApiError::new(ErrorCode::PluginNotAllowed).with_message(message),
            _ => ApiError::new(ErrorCode::PluginFailed).with_message(message),
        },
        other => ApiError::new(ErrorCode::PluginFailed).with_message(other.to_string()),
    }
}

/// `PUT /api/machines/{machine}/plugins/{name}`: enables (or re-configures) the plugin.
pub async fn enable(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    enable: Enable,
) -> Result<(PluginRow, MachinePlugin)> {
    principal.require(abilities::PLUGINS_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let row = get(deps.store, principal, name).await?;
    let manifest = manifest_of(&row)?;
    let http = validate_grants(&manifest, &enable.grants, deps.plugins.net())?;
    if manifest.world.runs_on_agent() {
        check_on_machine(deps, &machine, &enable.grants, &http).await?;
    }
    let grants = GrantSet {
        filesystem: enable.grants.filesystem,
        http: http.iter().map(ToString::to_string).collect(),
    };
    let enabled = MachinePlugin {
        machine_id,
        plugin_id: row.id,
        config: Json(json!(enable.config)),
        grants: Json(serde_json::to_value(&grants).expect("grants serialize")),
        enabled_at: clock::now(),
        pinned_sha256: None,
    };
    deps.store.enable_plugin(&enabled).await?;
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

/// A plugin's row and its enablement on the machine.
async fn enabled(
    store: &dyn Store,
    user_id: Uuid,
    machine_id: Uuid,
    name: &str,
) -> Result<(PluginRow, MachinePlugin, GrantSet, HashMap<String, String>)> {
    let row = store.plugin(user_id, name).await?.ok_or_else(not_found)?;
    let enabled = store
        .machine_plugin(machine_id, row.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PluginNotEnabled))?;
    let set: GrantSet = serde_json::from_value(enabled.grants.0.clone()).unwrap_or_default();
    let config: HashMap<String, String> =
        serde_json::from_value(enabled.config.0.clone()).unwrap_or_default();
    Ok((row, enabled, set, config))
}

/// A host-run plugin (summarizer, skill processor) ready to call: loaded (compiled once per
/// process) with its grants — never a mount.
pub struct Ready {
    pub loaded: Arc<Loaded>,
    pub grants: Grants,
}

/// Loads the host-run plugin enabled on the machine under `name` (of the user's).
pub async fn ready(
    store: &dyn Store,
    runtime: &Arc<PluginRuntime>,
    user_id: Uuid,
    machine_id: Uuid,
    name: &str,
) -> Result<Ready> {
    let (row, enabled, set, config) = enabled(store, user_id, machine_id, name).await?;
    let sha256 = running_sha256(&row, &enabled);
    let loaded = match runtime.get(sha256) {
        Some(loaded) => loaded,
        None => {
            let bytes = component_of(store, &row, &enabled).await?;
            runtime.load(bytes).await.map_err(failed)?
        }
    };
    if loaded.manifest.world.runs_on_agent() {
        return Err(failed(PluginError(format!(
            "`{name}` is an mcp-adapter: it runs on the machine's agent"
        ))));
    }
    let grants = Grants::on_host(user_id.to_string(), config, &set);
    Ok(Ready { loaded, grants })
}

/// The agent's view of an mcp-adapter enabled on `machine`, once the machine is online.
async fn agent_spec(deps: Deps<'_>, machine: &Machine, name: &str) -> Result<PluginSpec> {
    let (row, enabled, set, config) =
        enabled(deps.store, machine.user_id, machine.id, name).await?;
    let sha256 = running_sha256(&row, &enabled).to_owned();
    if !manifest::World::parse(&row.world).is_some_and(manifest::World::runs_on_agent) {
        return Err(ApiError::invalid_field(
            "name",
            "This plugin runs on the host and has no tools.",
        ));
    }
    if !deps.is_online(machine) {
        return Err(ApiError::new(ErrorCode::MachineOffline)
            .with_message("The machine is offline; its plugins run on its agent."));
    }
    Ok(PluginSpec {
        name: row.name,
        sha256,
        owner: machine.user_id.to_string(),
        config: config.into_iter().collect(),
        mounts: set
            .filesystem
            .into_iter()
            .map(|fs| PluginMount {
                name: fs.name,
                path: fs.path,
                writable: fs.access == Access::ReadWrite,
            })
            .collect(),
        http: set.http,
    })
}

/// The tools of an mcp-adapter plugin enabled on the machine, from its agent. For a machine
/// the caller may act on (checked by the caller).
pub async fn machine_tools(deps: Deps<'_>, machine: &Machine, name: &str) -> Result<Vec<Value>> {
    let plugin = agent_spec(deps, machine, name).await?;
    let reply = deps
        .links
        .request(
            machine.id,
            AgentRequest::PluginTools { plugin },
            AGENT_PLUGIN_WAIT,
        )
        .await
        .map_err(link_error)?;
    Ok(reply["tools"].as_array().cloned().unwrap_or_default())
}

/// Calls a tool of an mcp-adapter on the machine's agent; the result is MCP-shaped
/// (`content`, `isError`). A call the plugin refuses (unknown tool) is `VAL_001` on `tool`.
pub async fn machine_call(
    deps: Deps<'_>,
    machine: &Machine,
    name: &str,
    tool: &str,
    arguments: &Value,
) -> Result<Value> {
    let plugin = agent_spec(deps, machine, name).await?;
    let request = AgentRequest::PluginCall {
        plugin,
        tool: tool.to_owned(),
        arguments: arguments.clone(),
    };
    deps.links
        .request(machine.id, request, AGENT_PLUGIN_WAIT)
        .await
        .map_err(link_error)
}

/// `GET …/plugins/{name}/tools`.
pub async fn list_tools(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<Vec<Value>> {
    principal.require(abilities::PLUGINS_READ)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    machine_tools(deps, &machine, name).await
}

/// `POST …/plugins/{name}/tools/{tool}`.
pub async fn call_tool(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    tool: &str,
    arguments: &Value,
) -> Result<Value> {
    principal.require(abilities::PLUGINS_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    machine_call(deps, &machine, name, tool, arguments).await
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

/// The component a machine runs for this plugin: the current one, or the earlier version an
/// upgrade left it on.
pub fn running_sha256<'a>(row: &'a PluginRow, enabled: &'a MachinePlugin) -> &'a str {
    enabled.pinned_sha256.as_deref().unwrap_or(&row.sha256)
}

async fn component_of(
    store: &dyn Store,
    row: &PluginRow,
    enabled: &MachinePlugin,
) -> Result<Vec<u8>> {
    let bytes = match &enabled.pinned_sha256 {
        Some(sha) => store
            .plugin_version(row.id, sha)
            .await?
            .map(|(_, bytes)| bytes),
        None => store.plugin_component(row.id).await?,
    };
    bytes.ok_or_else(not_found)
}

/// The version string of what the machine runs.
pub async fn running_version(
    store: &dyn Store,
    row: &PluginRow,
    enabled: &MachinePlugin,
) -> Result<String> {
    Ok(match &enabled.pinned_sha256 {
        Some(sha) => store
            .plugin_version(row.id, sha)
            .await?
            .and_then(|(manifest, _)| manifest.0["version"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        None => row.version.clone(),
    })
}

/// The component with this hash, for the agent of `machine` — only when the machine runs a
/// plugin with it (an agent gets nothing it was not asked to run).
pub async fn component_for_machine(
    store: &dyn Store,
    machine: &Machine,
    sha256: &str,
) -> Result<Vec<u8>> {
    let plugins = store.plugins(machine.user_id).await?;
    for enabled in store.machine_plugins(machine.id).await? {
        let Some(row) = plugins.iter().find(|p| p.id == enabled.plugin_id) else {
            continue;
        };
        if running_sha256(row, &enabled) == sha256 {
            return component_of(store, row, &enabled).await;
        }
    }
    Err(not_found())
}
