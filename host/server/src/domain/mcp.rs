//! MCP servers per machine (API §10). `stdio` and `http` servers are run by the machine's
//! agent (`agent::mcp`, an rmcp client); `wasm` servers are mcp-adapter plugins enabled on the
//! machine, called in the host's plugin runtime. All three answer the same endpoints.
//!
//! The host keeps each server's configuration, run state and tool list (refreshed when the
//! agent reports `notifications/tools/list_changed` or a restart). `env` holds secrets: it is
//! write-only — the API shows only its keys, and it is never logged.

use std::{collections::BTreeMap, time::Duration};

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Deps, abilities, accounts::Principal, clock};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    links::LinkError,
    protocol::{AgentRequest, McpSpec, codes},
    store::{Machine, McpServerRow, McpStatusUpdate, Store},
};

pub const TRANSPORTS: &[&str] = &["stdio", "http", "wasm"];
/// Starting includes spawning the process and the lifecycle (python servers take ~1.5 s; a
/// legacy server that ignores `server/discover` costs the client's 10 s probe).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 30_000;
const MAX_CALL_TIMEOUT_MS: u64 = 300_000;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::McpServerNotFound)
}

/// `POST /api/machines/{machine}/mcp`: a new MCP server on the machine.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    pub name: String,
    pub display_name: Option<String>,
    /// `stdio` (default with `command`), `http` (default with `url`) or `wasm` (with `plugin`).
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    /// Write-only: never returned.
    pub env: Option<BTreeMap<String, String>>,
    pub url: Option<String>,
    /// The mcp-adapter plugin behind a `wasm` server.
    pub plugin: Option<String>,
    pub auto_start: Option<bool>,
}

/// `PATCH …/mcp/{name}`: the fields given change. A running server keeps running with
/// its old settings until it is started again.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    pub display_name: Option<String>,
    pub transport: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    /// Replaces the whole environment. Write-only.
    pub env: Option<BTreeMap<String, String>>,
    pub url: Option<String>,
    pub plugin: Option<String>,
    pub auto_start: Option<bool>,
}

/// `POST …/mcp/{name}/execute`: a tool call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Execute {
    pub tool: String,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Default 30000, at most 300000.
    pub timeout_ms: Option<u64>,
}

/// A name usable in a URL and as a tool prefix: `[a-z0-9][a-z0-9_-]{0,63}`, not `all-tools`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name != "all-tools"
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

fn valid_env_key(key: &str) -> bool {
    (1..=128).contains(&key.len())
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn server_of(store: &dyn Store, machine_id: Uuid, name: &str) -> Result<McpServerRow> {
    store
        .mcp_server(machine_id, name)
        .await?
        .ok_or_else(not_found)
}

/// Checks a server's configuration as a whole (after a create or a patch).
async fn validate(store: &dyn Store, user_id: Uuid, s: &McpServerRow) -> Result<()> {
    let mut v = Validator::new();
    v.check(
        (1..=255).contains(&s.display_name.trim().len()),
        "display_name",
        "The display name must be 1 to 255 characters.",
    );
    v.check(
        TRANSPORTS.contains(&s.transport.as_str()),
        "transport",
        "The transport must be one of: stdio, http, wasm.",
    );
    match s.transport.as_str() {
        "stdio" => {
            v.check(
                s.command
                    .as_deref()
                    .is_some_and(|c| (1..=1024).contains(&c.trim().len())),
                "command",
                "A stdio server needs a command (1 to 1024 characters).",
            );
        }
        "http" => {
            let ok = s.url.as_deref().is_some_and(|u| {
                reqwest::Url::parse(u)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            });
            v.check(
                ok,
                "url",
                "An http server needs an http:// or https:// URL.",
            );
        }
        "wasm" => {
            let plugin = match s.plugin.as_deref() {
                Some(name) => store.plugin(user_id, name).await?,
                None => None,
            };
            v.check(
                plugin.is_some_and(|p| p.world == "mcp-adapter"),
                "plugin",
                "A wasm server needs the name of an installed mcp-adapter plugin.",
            );
        }
        _ => {}
    }
    v.check(s.args.0.len() <= 64, "args", "At most 64 arguments.");
    for (i, arg) in s.args.0.iter().enumerate() {
        v.check(
            arg.len() <= 4096,
            &format!("args.{i}"),
            "An argument may not be longer than 4096 bytes.",
        );
    }
    v.check(s.env.0.len() <= 64, "env", "At most 64 variables.");
    for (key, value) in &s.env.0 {
        v.check(
            valid_env_key(key),
            &format!("env.{key}"),
            "A variable name is letters, digits and '_', not starting with a digit.",
        );
        v.check(
            value.len() <= 8192,
            &format!("env.{key}"),
            "A value may not be longer than 8192 bytes.",
        );
    }
    v.finish()
}

pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Vec<McpServerRow>> {
    principal.require(abilities::MCP_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    Ok(store.mcp_servers(machine_id).await?)
}

pub async fn get(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<McpServerRow> {
    principal.require(abilities::MCP_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    server_of(store, machine_id, name).await
}

pub async fn create(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    new: NewServer,
) -> Result<McpServerRow> {
    principal.require(abilities::MCP_WRITE)?;
    Validator::new()
        .check(
            valid_name(&new.name),
            "name",
            "The name must be 1 to 64 lowercase letters, digits, '-' or '_' (not all-tools).",
        )
        .finish()?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let transport = new.transport.unwrap_or_else(|| {
        if new.url.is_some() {
            "http".into()
        } else if new.plugin.is_some() && new.command.is_none() {
            "wasm".into()
        } else {
            "stdio".into()
        }
    });
    let now = clock::now();
    let row = McpServerRow {
        id: Uuid::now_v7(),
        machine_id,
        display_name: new.display_name.unwrap_or_else(|| new.name.clone()),
        name: new.name,
        transport,
        command: new.command,
        args: Json(new.args.unwrap_or_default()),
        env: Json(new.env.unwrap_or_default()),
        url: new.url,
        plugin: new.plugin,
        auto_start: new.auto_start.unwrap_or(false),
        status: "stopped".into(),
        last_error: None,
        tools: Json(Vec::new()),
        last_started_at: None,
        created_at: now,
        updated_at: now,
    };
    validate(deps.store, principal.user.id, &row).await?;
    match deps.store.insert_mcp_server(&sealed(deps, &row)).await {
        Err(crate::store::StoreError::Conflict) => {
            return Err(ApiError::invalid_field(
                "name",
                "This machine already has an MCP server with this name.",
            ));
        }
        other => other?,
    }
    tracing::info!(machine_id = %machine.id, server = %row.name, transport = %row.transport, "MCP server added");
    Ok(row)
}

pub async fn update(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    patch: ServerPatch,
) -> Result<McpServerRow> {
    principal.require(abilities::MCP_WRITE)?;
    super::machines::owned(deps.store, principal, machine_id).await?;
    let mut row = server_of(deps.store, machine_id, name).await?;
    // Validated and kept as values; sealed again (with fresh nonces) when stored.
    row.env = Json(opened_env(deps, &row)?);
    if let Some(v) = patch.display_name {
        row.display_name = v;
    }
    if let Some(v) = patch.transport {
        row.transport = v;
    }
    if patch.command.is_some() {
        row.command = patch.command;
    }
    if let Some(v) = patch.args {
        row.args = Json(v);
    }
    if let Some(v) = patch.env {
        row.env = Json(v);
    }
    if patch.url.is_some() {
        row.url = patch.url;
    }
    if patch.plugin.is_some() {
        row.plugin = patch.plugin;
    }
    if let Some(v) = patch.auto_start {
        row.auto_start = v;
    }
    row.updated_at = clock::now();
    validate(deps.store, principal.user.id, &row).await?;
    deps.store.update_mcp_server(&sealed(deps, &row)).await?;
    Ok(row)
}

/// `DELETE …/mcp/{name}` (§10.10): stops it first when it runs.
pub async fn delete(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<()> {
    principal.require(abilities::MCP_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let row = server_of(deps.store, machine_id, name).await?;
    if row.transport != "wasm" && deps.is_online(&machine) {
        let stop = AgentRequest::McpStop {
            name: row.name.clone(),
        };
        if let Err(err) = deps.links.request(machine_id, stop, STOP_TIMEOUT).await {
            tracing::warn!(server = %row.name, error = %err, "stopping a deleted MCP server failed");
        }
    }
    deps.store.delete_mcp_server(machine_id, name).await?;
    Ok(())
}

/// The row as stored: `env` values sealed (docs/security.md), names in the clear.
fn sealed(deps: Deps<'_>, row: &McpServerRow) -> McpServerRow {
    let env = row
        .env
        .0
        .iter()
        .map(|(k, v)| (k.clone(), deps.secrets.seal(v)))
        .collect();
    McpServerRow {
        env: Json(env),
        ..row.clone()
    }
}

/// A stored row's `env` values, opened.
fn opened_env(deps: Deps<'_>, row: &McpServerRow) -> Result<BTreeMap<String, String>> {
    row.env
        .0
        .iter()
        .map(|(k, v)| Ok((k.clone(), deps.secrets.open(v).map_err(ApiError::internal)?)))
        .collect()
}

fn spec(deps: Deps<'_>, row: &McpServerRow) -> Result<McpSpec> {
    Ok(McpSpec {
        name: row.name.clone(),
        transport: row.transport.clone(),
        command: row.command.clone(),
        args: row.args.0.clone(),
        env: opened_env(deps, row)?,
        url: row.url.clone(),
    })
}

async fn set_status(store: &dyn Store, row: &McpServerRow, update: McpStatusUpdate) -> Result<()> {
    store
        .set_mcp_status(row.machine_id, &row.name, &update, clock::now())
        .await?;
    Ok(())
}

fn start_failed(message: &str) -> ApiError {
    ApiError::new(ErrorCode::McpServerStartFailed)
        .with_message(format!("MCP server failed to start: {message}"))
}

/// `POST …/mcp/{name}/start` (§10.5).
pub async fn start(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<McpServerRow> {
    principal.require(abilities::MCP_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let row = server_of(deps.store, machine_id, name).await?;
    run(deps, &machine, &row).await?;
    server_of(deps.store, machine_id, name).await
}

/// Starts a server and records the outcome; `MCP_002` with the server's own words on failure.
async fn run(deps: Deps<'_>, machine: &Machine, row: &McpServerRow) -> Result<()> {
    // Every transport runs on the agent (wasm servers are mcp-adapter plugins run there).
    if !deps.is_online(machine) {
        return Err(ApiError::new(ErrorCode::MachineOffline));
    }
    let tools = if row.transport == "wasm" {
        wasm_tools(deps, machine, row).await
    } else {
        set_status(deps.store, row, McpStatusUpdate::to("starting")).await?;
        let request = AgentRequest::McpStart {
            server: spec(deps, row)?,
        };
        match deps.links.request(machine.id, request, START_TIMEOUT).await {
            Ok(reply) => Ok(reply
                .get("tools")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()),
            Err(LinkError::Agent { code, message }) if code == codes::UNREACHABLE => {
                Err((ErrorCode::McpServerUnreachable, message))
            }
            Err(LinkError::Agent { message, .. }) => {
                Err((ErrorCode::McpServerStartFailed, message))
            }
            Err(LinkError::NotConnected) => {
                set_status(deps.store, row, McpStatusUpdate::to("stopped")).await?;
                return Err(ApiError::new(ErrorCode::MachineOffline));
            }
            Err(other) => Err((ErrorCode::McpServerStartFailed, other.to_string())),
        }
    };
    match tools {
        Ok(tools) => {
            let update = McpStatusUpdate {
                status: "running".into(),
                last_error: None,
                tools: Some(tools),
                started_at: Some(clock::now()),
            };
            set_status(deps.store, row, update).await?;
            Ok(())
        }
        Err((code, message)) => {
            let update = McpStatusUpdate {
                last_error: Some(message.clone()),
                ..McpStatusUpdate::to("error")
            };
            set_status(deps.store, row, update).await?;
            Err(match code {
                ErrorCode::McpServerStartFailed => start_failed(&message),
                code => ApiError::new(code).with_message(message),
            })
        }
    }
}

/// The tools of the mcp-adapter plugin behind a `wasm` server, from the machine's agent.
async fn wasm_tools(
    deps: Deps<'_>,
    machine: &Machine,
    row: &McpServerRow,
) -> std::result::Result<Vec<Value>, (ErrorCode, String)> {
    let plugin = row.plugin.as_deref().unwrap_or_default();
    super::plugins::machine_tools(deps, machine, plugin)
        .await
        .map_err(|e| (ErrorCode::McpServerStartFailed, e.message().to_owned()))
}

/// `POST …/mcp/{name}/stop` (§10.6).
pub async fn stop(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<McpServerRow> {
    principal.require(abilities::MCP_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let row = server_of(deps.store, machine_id, name).await?;
    if row.transport != "wasm" && deps.is_online(&machine) {
        let request = AgentRequest::McpStop {
            name: row.name.clone(),
        };
        match deps.links.request(machine_id, request, STOP_TIMEOUT).await {
            // Offline: the agent is gone or will be told at its next link (not auto-started).
            Ok(_) | Err(LinkError::NotConnected) => {}
            Err(err) => {
                tracing::warn!(server = %row.name, error = %err, "stopping an MCP server failed")
            }
        }
    }
    set_status(deps.store, &row, McpStatusUpdate::to("stopped")).await?;
    server_of(deps.store, machine_id, name).await
}

/// A cached tool in the API's shape (§10.7): `parameters` is the tool's input schema.
pub fn tool_view(tool: &Value) -> Value {
    let mut view = json!({
        "name": tool.get("name").cloned().unwrap_or(Value::Null),
        "description": tool.get("description").cloned().unwrap_or(Value::Null),
        "parameters": tool.get("inputSchema").cloned().unwrap_or(json!({"type": "object"})),
    });
    for key in ["title", "outputSchema", "annotations"] {
        if let Some(value) = tool.get(key) {
            view[key] = value.clone();
        }
    }
    view
}

/// `GET …/mcp/{name}/tools` (§10.7): the tools as the server last listed them.
pub async fn tools(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
) -> Result<Vec<Value>> {
    let row = get(store, principal, machine_id, name).await?;
    Ok(row.tools.0.iter().map(tool_view).collect())
}

/// `GET …/mcp/all-tools` (§10.9): the tools of every running server, named `server__tool`.
pub async fn all_tools(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Vec<Value>> {
    let servers = list(store, principal, machine_id).await?;
    Ok(servers
        .iter()
        .filter(|s| s.status == "running")
        .flat_map(|s| {
            s.tools.0.iter().map(move |t| {
                let mut view = tool_view(t);
                let tool = t.get("name").and_then(Value::as_str).unwrap_or_default();
                view["server"] = json!(s.name);
                view["qualified_name"] = json!(format!("{}__{tool}", s.name));
                view
            })
        })
        .collect())
}

/// `POST …/mcp/{name}/execute` (§10.8): `{content, mimeType}` as the spec shows, plus the MCP
/// `items` and `structuredContent`. A tool-level failure (`isError`) is `MCP_003` with the
/// tool's message.
pub async fn execute(
    deps: Deps<'_>,
    principal: &Principal,
    machine_id: Uuid,
    name: &str,
    call: Execute,
) -> Result<Value> {
    principal.require(abilities::MCP_WRITE)?;
    let machine = super::machines::owned(deps.store, principal, machine_id).await?;
    let row = server_of(deps.store, machine_id, name).await?;
    let timeout_ms = call.timeout_ms.unwrap_or(DEFAULT_CALL_TIMEOUT_MS);
    let arguments = call.parameters.unwrap_or_else(|| json!({}));
    let mut v = Validator::new();
    v.check(
        (1..=MAX_CALL_TIMEOUT_MS).contains(&timeout_ms),
        "timeout_ms",
        "The timeout must be between 1 and 300000 ms.",
    );
    v.check(
        arguments.is_object(),
        "parameters",
        "The parameters must be an object.",
    );
    v.check(
        row.status == "running",
        "name",
        format!("The MCP server is {}; start it first.", row.status),
    );
    v.finish()?;
    // A tool the server does not list is the spec's "tool execution failed" (MCP_003), with its
    // documented status, not a validation error: the request itself was well formed.
    let listed = row
        .tools
        .0
        .iter()
        .any(|t| t.get("name").and_then(Value::as_str) == Some(call.tool.as_str()));
    if !listed {
        return Err(
            ApiError::new(ErrorCode::ToolExecutionFailed).with_message(format!(
                "The MCP server `{}` has no tool named `{}`.",
                row.name, call.tool
            )),
        );
    }
    let result = if row.transport == "wasm" {
        let plugin = row.plugin.as_deref().unwrap_or_default();
        super::plugins::machine_call(deps, &machine, plugin, &call.tool, &arguments).await?
    } else {
        if !deps.is_online(&machine) {
            return Err(ApiError::new(ErrorCode::MachineOffline));
        }
        let request = AgentRequest::McpCall {
            name: row.name.clone(),
            tool: call.tool.clone(),
            arguments,
            timeout_ms,
        };
        // The agent enforces the tool's timeout; the link allows a little more.
        let wait = Duration::from_millis(timeout_ms) + Duration::from_secs(5);
        match deps.links.request(machine.id, request, wait).await {
            Ok(result) => result,
            Err(LinkError::NotConnected) => return Err(ApiError::new(ErrorCode::MachineOffline)),
            Err(LinkError::Agent { message, .. }) => {
                return Err(ApiError::new(ErrorCode::ToolExecutionFailed).with_message(message));
            }
            Err(other) => {
                return Err(
                    ApiError::new(ErrorCode::ToolExecutionFailed).with_message(other.to_string())
                );
            }
        }
    };
    to_response(&result)
}

/// Maps an MCP `CallToolResult` to the API's answer.
pub fn to_response(result: &Value) -> Result<Value> {
    let items = result
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let texts: Vec<&str> = items
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = if texts.is_empty() {
            "The tool reported an error.".to_owned()
        } else {
            texts.join("\n")
        };
        return Err(ApiError::new(ErrorCode::ToolExecutionFailed).with_message(message));
    }
    let (content, mime) = match items.as_slice() {
        [only] if only.get("type").and_then(Value::as_str) != Some("text") => (
            only.get("data")
                .or_else(|| only.get("text"))
                .or_else(|| only.get("uri"))
                .cloned()
                .unwrap_or(Value::Null),
            only.get("mimeType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream")
                .to_owned(),
        ),
        _ => (Value::String(texts.join("\n")), "text/plain".to_owned()),
    };
    let mut response = json!({ "content": content, "mimeType": mime, "items": items });
    if let Some(structured) = result.get("structuredContent") {
        response["structuredContent"] = structured.clone();
    }
    Ok(response)
}

/// The agent reported a change of run state (crash, restart, new tool list).
pub async fn on_status(
    store: &dyn Store,
    machine_id: Uuid,
    name: &str,
    status: String,
    error: Option<String>,
    tools: Option<Vec<Value>>,
) {
    let started_at = (status == "running").then(clock::now);
    let update = McpStatusUpdate {
        status,
        last_error: error,
        tools,
        started_at,
    };
    if let Err(err) = store
        .set_mcp_status(machine_id, name, &update, clock::now())
        .await
    {
        tracing::error!(server = name, error = %err, "recording an MCP server's status failed");
    }
}

/// A machine's agent link closed: what its agent runs is unknown until it links again.
pub async fn on_link_closed(store: &dyn Store, machine_id: Uuid) {
    let servers = match store.mcp_servers(machine_id).await {
        Ok(servers) => servers,
        Err(err) => {
            tracing::error!(error = %err, "reading the machine's MCP servers failed");
            return;
        }
    };
    let offline = McpStatusUpdate::to("offline");
    for row in servers
        .iter()
        .filter(|s| s.transport != "wasm" && RUNNING.contains(&s.status.as_str()))
    {
        if let Err(err) = set_status(store, row, offline.clone()).await {
            tracing::error!(server = %row.name, error = %err, "recording an MCP server offline failed");
        }
    }
}

/// States in which a server is (or should be) running on the agent.
const RUNNING: &[&str] = &["running", "starting", "restarting"];

/// A machine's agent linked: start its `auto_start` servers and the ones that were running.
pub async fn on_link_opened(deps: Deps<'_>, machine: &Machine) {
    // The row as it is now (online), not as it was when the agent authenticated.
    let machine = match deps.store.machine(machine.user_id, machine.id).await {
        Ok(Some(machine)) => machine,
        Ok(None) => return,
        Err(err) => {
            tracing::error!(error = %err, "reading the machine failed");
            return;
        }
    };
    let machine = &machine;
    let servers = match deps.store.mcp_servers(machine.id).await {
        Ok(servers) => servers,
        Err(err) => {
            tracing::error!(error = %err, "reading the machine's MCP servers failed");
            return;
        }
    };
    for row in servers {
        let wanted =
            row.auto_start || row.status == "offline" || RUNNING.contains(&row.status.as_str());
        if row.transport == "wasm" {
            continue;
        }
        if !wanted {
            // Stopped while the link was down: the agent (if it kept running) stops it too.
            let stop = AgentRequest::McpStop {
                name: row.name.clone(),
            };
            if let Err(err) = deps.links.request(machine.id, stop, STOP_TIMEOUT).await {
                tracing::warn!(server = %row.name, error = %err, "stopping an MCP server on link failed");
            }
            continue;
        }
        match run(deps, machine, &row).await {
            Ok(()) => tracing::info!(server = %row.name, "MCP server started with the agent"),
            Err(err) => {
                tracing::warn!(server = %row.name, error = %err.message(), "MCP server did not start with the agent")
            }
        }
    }
}
