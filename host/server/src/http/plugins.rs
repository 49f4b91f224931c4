//! Plugins (issue 8; not in the API spec, built in its style): the registry, per-machine
//! enablement, and calling an enabled mcp-adapter's tools.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    agent_link::MachineAuth,
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiJson, ApiPath},
};
use crate::{
    app::AppState,
    domain::plugins::{self, Enable},
    error::{ApiError, ErrorCode, Result},
    plugins::grants::GrantSet,
    store::{MachinePlugin, PluginRow},
};

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    let upload_limit = state.config().plugins.max_component_bytes;
    OpenApiRouter::new()
        .routes(routes!(list_plugins, install_plugin))
        // Components are larger than API bodies.
        .layer(DefaultBodyLimit::max(upload_limit))
        .routes(routes!(get_plugin, delete_plugin))
        .routes(routes!(machine_plugins))
        .routes(routes!(enable_plugin, disable_plugin))
        .routes(routes!(list_tools))
        .routes(routes!(call_tool))
        .routes(routes!(agent_component))
}

/// An installed plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    pub id: Uuid,
    pub name: String,
    pub version: String,
    /// `mcp-adapter`, `summarizer` or `skill-processor`.
    pub world: String,
    pub api_version: String,
    pub description: String,
    pub sha256: String,
    pub size_bytes: i64,
    /// The manifest embedded in the component (requested capabilities included).
    #[schema(value_type = Object)]
    pub manifest: Value,
    pub created_at: DateTime<Utc>,
    /// Present when the install replaced an earlier version in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<plugins::Upgrade>,
}

impl From<PluginRow> for PluginView {
    fn from(p: PluginRow) -> Self {
        Self {
            upgrade: None,
            id: p.id,
            name: p.name,
            version: p.version,
            world: p.world,
            api_version: p.api_version,
            description: p.description,
            sha256: p.sha256,
            size_bytes: p.size_bytes,
            manifest: p.manifest.0,
            created_at: p.created_at,
        }
    }
}

/// A plugin enabled on a machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnabledView {
    pub plugin: PluginView,
    pub machine_id: Uuid,
    /// Config values the plugin reads with `host.config`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub grants: GrantSet,
    pub enabled_at: DateTime<Utc>,
    /// The version the machine runs: the plugin's current one, or an earlier one when an
    /// upgrade asked for more than this machine granted.
    pub running_version: String,
    pub running_sha256: String,
    /// A newer version waits for this machine's grants (enable it again to move).
    pub upgrade_pending: bool,
}

impl EnabledView {
    async fn new(
        store: &dyn crate::store::Store,
        row: PluginRow,
        enabled: MachinePlugin,
    ) -> Result<Self> {
        let running_version = plugins::running_version(store, &row, &enabled).await?;
        let running_sha256 = plugins::running_sha256(&row, &enabled).to_owned();
        Ok(Self {
            upgrade_pending: enabled.pinned_sha256.is_some(),
            running_version,
            running_sha256,
            plugin: row.into(),
            machine_id: enabled.machine_id,
            config: enabled.config.0,
            grants: serde_json::from_value(enabled.grants.0).unwrap_or_default(),
            enabled_at: enabled.enabled_at,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    #[serde(default)]
    pub config: HashMap<String, String>,
    #[serde(default)]
    pub grants: GrantSet,
}

/// The caller's installed plugins.
#[utoipa::path(get, path = "/plugins", tag = "plugins", security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<PluginView>>)))]
pub async fn list_plugins(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
) -> Result<Reply<Vec<PluginView>>> {
    let rows = plugins::list(state.store(), &principal).await?;
    Ok(Reply::ok(rows.into_iter().map(PluginView::from).collect()))
}

/// Installs a component (the request body, `application/wasm`): its manifest and world are
/// checked, then it is compiled, then stored. A new version of an installed plugin (same name,
/// other bytes) replaces it in place (200, with `upgrade`): machines move to it unless it asks
/// for more than they granted, in which case they stay on the earlier version until enabled
/// again.
#[utoipa::path(post, path = "/plugins", tag = "plugins", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 200, description = "a new version replaced the installed one (`upgrade` says which machines moved)", body = Envelope<PluginView>),
        (status = 201, body = Envelope<PluginView>),
        (status = 409, description = "PLG_002: these very bytes are installed, or a new version would change the world (checked before compiling)", body = ErrorEnvelope),
        (status = 413, description = "VAL_002: larger than `plugins.max_component_bytes`", body = ErrorEnvelope),
        (status = 422, description = "PLG_003: not a component this host runs, or too large to compile (the message says why); PLG_006: over the per-user quota (`plugins.max_plugins_per_user`, `plugins.max_bytes_per_user`)", body = ErrorEnvelope),
    ))]
pub async fn install_plugin(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Reply<PluginView>> {
    let body = body.map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge))?;
    let runtime = state.plugins().await?;
    let settings = &state.config().plugins;
    let quota = plugins::Quota {
        max_plugins: settings.max_plugins_per_user,
        max_bytes: settings.max_bytes_per_user,
    };
    let (row, upgrade) =
        plugins::install(state.store(), runtime, &principal, quota, body.to_vec()).await?;
    let upgraded = upgrade.is_some();
    let view = PluginView {
        upgrade,
        ..row.into()
    };
    Ok(if upgraded {
        Reply::ok(view)
    } else {
        Reply::created(view)
    })
}

/// One of your plugins.
#[utoipa::path(get, path = "/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = Envelope<PluginView>), (status = 404, description = "PLG_001", body = ErrorEnvelope)))]
pub async fn get_plugin(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Reply<PluginView>> {
    Ok(Reply::ok(
        plugins::get(state.store(), &principal, &name).await?.into(),
    ))
}

/// Uninstalls the plugin (and disables it everywhere).
#[utoipa::path(delete, path = "/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "PLG_001", body = ErrorEnvelope)))]
pub async fn delete_plugin(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Reply<Null>> {
    plugins::delete(state.deps().await?, &principal, &name).await?;
    Ok(Reply::ok(Null))
}

/// The plugins enabled on a machine.
#[utoipa::path(get, path = "/machines/{machine}/plugins", tag = "plugins", security(("bearer" = [])),
    params(("machine" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<EnabledView>>), (status = 404, body = ErrorEnvelope)))]
pub async fn machine_plugins(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(machine): ApiPath<Uuid>,
) -> Result<Reply<Vec<EnabledView>>> {
    let rows = plugins::enabled_on(state.store(), &principal, machine).await?;
    let mut views = Vec::with_capacity(rows.len());
    for (row, enabled) in rows {
        views.push(EnabledView::new(state.store(), row, enabled).await?);
    }
    Ok(Reply::ok(views))
}

/// Enables the plugin on the machine with config values and capability grants (or changes
/// them). Grants must match what the plugin's manifest requests and what the party running
/// it allows: for an mcp-adapter the machine's agent checks mounts against the roots its owner
/// allows (so the machine must be online); for the others HTTP hosts must be in the
/// operator's `plugins.http_allow`.
#[utoipa::path(put, path = "/machines/{machine}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)), request_body = EnableRequest,
    responses((status = 200, body = Envelope<EnabledView>),
               (status = 400, description = "MCH_002: grants need the machine online to be checked", body = ErrorEnvelope),
               (status = 404, description = "MCH_001, PLG_001", body = ErrorEnvelope),
               (status = 422, description = "VAL_001: per grant, why it is refused", body = ErrorEnvelope),
               (status = 502, description = "PLG_004: the agent could not check the grants", body = ErrorEnvelope)))]
pub async fn enable_plugin(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
    ApiJson(req): ApiJson<EnableRequest>,
) -> Result<Reply<EnabledView>> {
    let enable = Enable {
        config: req.config,
        grants: req.grants,
    };
    let (row, enabled) =
        plugins::enable(state.deps().await?, &principal, machine, &name, enable).await?;
    Ok(Reply::ok(
        EnabledView::new(state.store(), row, enabled).await?,
    ))
}

/// Disable a plugin on a machine.
#[utoipa::path(delete, path = "/machines/{machine}/plugins/{name}", tag = "plugins", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "PLG_001, PLG_005", body = ErrorEnvelope)))]
pub async fn disable_plugin(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Null>> {
    plugins::disable(state.store(), &principal, machine, &name).await?;
    Ok(Reply::ok(Null))
}

/// The tools of an mcp-adapter plugin enabled on the machine (MCP `tools/list` shape), from
/// the machine's agent, which runs it.
#[utoipa::path(get, path = "/machines/{machine}/plugins/{name}/tools", tag = "plugins", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path)),
    responses((status = 200, body = Envelope<Vec<Object>>),
               (status = 400, description = "MCH_002: the machine is offline", body = ErrorEnvelope),
               (status = 403, description = "PLG_007: a grant the machine no longer allows", body = ErrorEnvelope),
               (status = 404, description = "MCH_001, PLG_001, PLG_005", body = ErrorEnvelope),
               (status = 422, description = "VAL_001: the plugin runs on the host and has no tools", body = ErrorEnvelope),
               (status = 502, description = "PLG_004: the plugin failed", body = ErrorEnvelope)))]
pub async fn list_tools(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name)): ApiPath<(Uuid, String)>,
) -> Result<Reply<Vec<Value>>> {
    let tools = plugins::list_tools(state.deps().await?, &principal, machine, &name).await?;
    Ok(Reply::ok(tools))
}

/// Calls a tool with the body as its arguments, on the machine's agent; answers MCP
/// `tools/call` content and `isError`. Traps, timeouts and limits are `PLG_004` with the
/// reason.
#[utoipa::path(post, path = "/machines/{machine}/plugins/{name}/tools/{tool}", tag = "plugins", security(("bearer" = [])),
    params(("machine" = Uuid, Path), ("name" = String, Path), ("tool" = String, Path)),
    request_body = Object,
    responses((status = 200, body = Envelope<Object>),
               (status = 400, description = "MCH_002: the machine is offline", body = ErrorEnvelope),
               (status = 403, description = "PLG_007: a grant the machine no longer allows", body = ErrorEnvelope),
               (status = 404, description = "MCH_001, PLG_001, PLG_005", body = ErrorEnvelope),
               (status = 422, description = "VAL_001: the plugin refused the call (`tool`)", body = ErrorEnvelope),
               (status = 502, description = "PLG_004: the plugin failed", body = ErrorEnvelope)))]
pub async fn call_tool(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((machine, name, tool)): ApiPath<(Uuid, String, String)>,
    ApiJson(arguments): ApiJson<Value>,
) -> Result<Reply<Value>> {
    let result = plugins::call_tool(
        state.deps().await?,
        &principal,
        machine,
        &name,
        &tool,
        &arguments,
    )
    .await?;
    Ok(Reply::ok(result))
}

/// A component for the calling agent (machine token), by sha256: only one enabled on that
/// machine. The agent checks the hash before compiling it.
#[utoipa::path(get, path = "/agent/plugins/{sha256}", tag = "agent", security(("bearer" = [])),
    params(("sha256" = String, Path)),
    responses((status = 200, content_type = "application/wasm", body = Vec<u8>),
               (status = 401, description = "AUTH_005: not a machine token", body = ErrorEnvelope),
               (status = 404, description = "PLG_001: no plugin with this hash is enabled on the machine", body = ErrorEnvelope)))]
pub async fn agent_component(
    State(state): State<AppState>,
    MachineAuth(machine): MachineAuth,
    ApiPath(sha256): ApiPath<String>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let bytes = plugins::component_for_machine(state.store(), &machine, &sha256).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/wasm")],
        bytes,
    )
        .into_response())
}
