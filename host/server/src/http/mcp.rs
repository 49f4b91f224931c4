//! MCP servers (API §10). Thin: running them is `domain::mcp` (and the agent).

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiJson, ApiPath},
};
use crate::{
    app::AppState,
    domain::mcp::{self, Execute, NewServer, ServerPatch},
    error::Result,
    store::McpServerRow,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_servers, add_server))
        .routes(routes!(all_tools))
        .routes(routes!(get_server, update_server, delete_server))
        .routes(routes!(start_server))
        .routes(routes!(stop_server))
        .routes(routes!(list_tools))
        .routes(routes!(execute_tool))
}

/// An MCP server. `env` is never shown: only its variable names.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerView {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    /// `stopped`, `starting`, `running`, `restarting` (after a crash), `offline` (its machine's
    /// agent is not linked; restarted when it links) or `error`.
    pub status: String,
    /// `stdio`, `http` or `wasm`.
    pub transport: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env_keys: Vec<String>,
    pub url: Option<String>,
    pub plugin: Option<String>,
    pub auto_start: bool,
    pub tools_count: usize,
    /// Why it last failed to start or stopped unexpectedly (the server's own words).
    pub last_error: Option<String>,
    pub last_started_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<McpServerRow> for ServerView {
    fn from(s: McpServerRow) -> Self {
        let env: BTreeMap<String, String> = s.env.0;
        Self {
            id: s.id,
            name: s.name,
            display_name: s.display_name,
            status: s.status,
            transport: s.transport,
            command: s.command,
            args: s.args.0,
            env_keys: env.into_keys().collect(),
            url: s.url,
            plugin: s.plugin,
            auto_start: s.auto_start,
            tools_count: s.tools.0.len(),
            last_error: s.last_error,
            last_started_at: s.last_started_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The machine's MCP servers.
#[utoipa::path(get, path = "/machines/{machine}/mcp", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<ServerView>>), (status = 404, description = "MCH_001", body = ErrorEnvelope)))]
pub async fn list_servers(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
) -> Result<Reply<Vec<ServerView>>> {
    let rows = mcp::list(state.store(), &principal, machine).await?;
    Ok(Reply::ok(rows.into_iter().map(ServerView::from).collect()))
}

/// Adds a server: `stdio` (command, args, env), `http` (url) or `wasm` (plugin).
#[utoipa::path(post, path = "/machines/{machine}/mcp", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path)), request_body = NewServer,
    responses((status = 201, body = Envelope<ServerView>), (status = 404, body = ErrorEnvelope),
               (status = 422, description = "VAL_001", body = ErrorEnvelope)))]
pub async fn add_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
    ApiJson(new): ApiJson<NewServer>,
) -> Result<Reply<ServerView>> {
    let deps = state.deps().await?;
    let row = mcp::create(deps, &principal, machine, new).await?;
    Ok(Reply::created(row.into()))
}

/// The tools of every running server on the machine; `qualified_name` is `server__tool`.
#[utoipa::path(get, path = "/machines/{machine}/mcp/all-tools", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<Object>>), (status = 404, body = ErrorEnvelope)))]
pub async fn all_tools(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
) -> Result<Reply<Vec<Value>>> {
    Ok(Reply::ok(
        mcp::all_tools(state.store(), &principal, machine).await?,
    ))
}

/// One MCP server of the machine.
#[utoipa::path(get, path = "/machines/{machine}/mcp/{name}", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<ServerView>), (status = 404, description = "MCP_001", body = ErrorEnvelope)))]
pub async fn get_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<ServerView>> {
    Ok(Reply::ok(
        mcp::get(state.store(), &principal, machine, &name)
            .await?
            .into(),
    ))
}

/// Change an MCP server's configuration.
#[utoipa::path(patch, path = "/machines/{machine}/mcp/{name}", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)), request_body = ServerPatch,
    responses((status = 200, body = Envelope<ServerView>), (status = 404, description = "MCP_001", body = ErrorEnvelope),
               (status = 422, description = "VAL_001", body = ErrorEnvelope)))]
pub async fn update_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> Result<Reply<ServerView>> {
    let deps = state.deps().await?;
    Ok(Reply::ok(
        mcp::update(deps, &principal, machine, &name, patch)
            .await?
            .into(),
    ))
}

/// Stops the server if it runs, then deletes it.
#[utoipa::path(delete, path = "/machines/{machine}/mcp/{name}", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "MCP_001", body = ErrorEnvelope)))]
pub async fn delete_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Null>> {
    let deps = state.deps().await?;
    mcp::delete(deps, &principal, machine, &name).await?;
    Ok(Reply::ok(Null))
}

/// Starts the server (on the machine's agent, or the plugin runtime for `wasm`) and reads its
/// tools. `MCP_002` carries the server's own error text.
#[utoipa::path(post, path = "/machines/{machine}/mcp/{name}/start", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<ServerView>), (status = 404, description = "MCP_001", body = ErrorEnvelope),
               (status = 400, description = "MCH_002: the machine is offline", body = ErrorEnvelope),
               (status = 500, description = "MCP_002", body = ErrorEnvelope)))]
pub async fn start_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<ServerView>> {
    let deps = state.deps().await?;
    Ok(Reply::ok(
        mcp::start(deps, &principal, machine, &name).await?.into(),
    ))
}

/// Stop a running MCP server.
#[utoipa::path(post, path = "/machines/{machine}/mcp/{name}/stop", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<ServerView>), (status = 404, description = "MCP_001", body = ErrorEnvelope)))]
pub async fn stop_server(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<ServerView>> {
    let deps = state.deps().await?;
    Ok(Reply::ok(
        mcp::stop(deps, &principal, machine, &name).await?.into(),
    ))
}

/// The server's tools as it last listed them (`parameters` is the input schema).
#[utoipa::path(get, path = "/machines/{machine}/mcp/{name}/tools", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<Vec<Object>>), (status = 404, description = "MCP_001", body = ErrorEnvelope)))]
pub async fn list_tools(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Vec<Value>>> {
    Ok(Reply::ok(
        mcp::tools(state.store(), &principal, machine, &name).await?,
    ))
}

/// Calls a tool: `{content, mimeType}` plus the MCP `items` and `structuredContent`. A tool
/// that reports failure (`isError`) is `MCP_003` with its message.
#[utoipa::path(post, path = "/machines/{machine}/mcp/{name}/execute", tag = "mcp", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)), request_body = Execute,
    responses((status = 200, body = Envelope<Object>), (status = 404, description = "MCP_001", body = ErrorEnvelope),
               (status = 422, description = "VAL_001: not running, no such tool", body = ErrorEnvelope),
               (status = 500, description = "MCP_003", body = ErrorEnvelope)))]
pub async fn execute_tool(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
    ApiJson(call): ApiJson<Execute>,
) -> Result<Reply<Value>> {
    let deps = state.deps().await?;
    Ok(Reply::ok(
        mcp::execute(deps, &principal, machine, &name, call).await?,
    ))
}
