//! Machines (API §3), pairing, and the machine-token view of a machine.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    agent_link::MachineAuth,
    auth::AuthUser,
    credentials::bearer_token,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, PageQuery, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::{
        clock,
        machines::{
            self, MACHINE_TOKEN_PREFIX, MachineChanges, MachineStatus, NewMachine, PairingRequest,
            PresenceSettings, WakeSettings,
        },
    },
    error::{ApiError, ErrorCode, Result},
    protocol::Ipv4Network,
    store::Machine,
};

/// Routes for signed-in users (rate limited per token).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_machines, register_machine))
        .routes(routes!(get_machine, update_machine, delete_machine))
        .routes(routes!(regenerate_token))
        .routes(routes!(environment))
        .routes(routes!(wake))
        .routes(routes!(ping))
        .routes(routes!(complete_pairing))
        .routes(routes!(own_machine))
        .routes(routes!(super::agent_link::open_link))
}

/// Routes an agent calls before it has a token (rate limited per IP).
pub fn pairing_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(start_pairing))
}

// --- views --------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema, Default)]
pub struct WakeOnLanView {
    /// The MAC to wake; when absent the first one the agent reported is used.
    pub mac: Option<String>,
    /// Where the magic packet goes (default 255.255.255.255).
    pub broadcast: Option<String>,
    /// UDP port (default 9).
    pub port: Option<i64>,
}

/// A machine as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineView {
    pub id: Uuid,
    pub name: String,
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub arch: Option<String>,
    /// `online`, `offline` or `connecting`.
    pub status: &'static str,
    pub active_sessions_count: u32,
    pub max_sessions: i32,
    pub capabilities: Vec<String>,
    pub node_version: Option<String>,
    pub agent_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    pub wake_on_lan: WakeOnLanView,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub connected_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MachineView {
    /// The view with `active_sessions_count` counted from the sessions table.
    async fn counted(state: &AppState, m: Machine) -> Result<Self> {
        let active = state.store().active_sessions(m.id).await?;
        let mut view = Self::new(m, state.presence());
        view.active_sessions_count = active as u32;
        Ok(view)
    }

    fn new(m: Machine, presence: &PresenceSettings) -> Self {
        Self {
            status: MachineStatus::of(&m, presence, clock::now()).as_str(),
            active_sessions_count: 0,
            id: m.id,
            name: m.name,
            platform: m.platform,
            hostname: m.hostname,
            arch: m.arch,
            max_sessions: m.max_sessions,
            capabilities: m.capabilities.0,
            node_version: m.node_version,
            agent_version: m.agent_version,
            claude_version: m.claude_version,
            claude_path: m.claude_path,
            wake_on_lan: WakeOnLanView {
                mac: m.wol_mac,
                broadcast: Some(m.wol_broadcast),
                port: Some(m.wol_port.into()),
            },
            last_seen_at: m.last_seen_at,
            connected_at: m.connected_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnvironmentView {
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub arch: Option<String>,
    pub node_version: Option<String>,
    pub agent_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    pub capabilities: Vec<String>,
    pub max_sessions: i32,
    pub mac_addresses: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub networks: Vec<Ipv4Network>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredMachine {
    pub machine: MachineView,
    /// `mn_…`: shown this once.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenData {
    /// `mn_…`: shown this once; the previous token no longer works.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WakeData {
    pub message: String,
    pub machine: MachineView,
    /// The online machine whose agent sent the packet on the LAN; null when the host sent it.
    pub relayed_by: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairingStarted {
    /// Show this to the user: they enter it at `POST /api/pairing/{code}/complete`.
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

// --- requests -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterMachineRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub arch: Option<String>,
    pub node_version: Option<String>,
    pub agent_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    #[schema(max_items = 32)]
    pub capabilities: Option<Vec<String>>,
    /// Default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub max_sessions: Option<i64>,
    pub wake_on_lan: Option<WakeOnLanView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMachineRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_sessions: Option<i64>,
    #[schema(max_items = 32)]
    pub capabilities: Option<Vec<String>>,
    pub wake_on_lan: Option<WakeOnLanView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Case-insensitive part of the name or hostname.
    pub search: Option<String>,
    /// `online`, `offline` or `connecting`.
    pub status: Option<String>,
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartPairingRequest {
    /// Hex SHA-256 of the `mn_` token the agent generated; the token itself never leaves it.
    #[schema(pattern = "^[0-9a-fA-F]{64}$", min_length = 64, max_length = 64)]
    pub token_hash: String,
    pub hostname: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletePairingRequest {
    /// Defaults to the agent's hostname.
    pub name: Option<String>,
}

fn wake_settings(view: WakeOnLanView) -> WakeSettings {
    WakeSettings {
        mac: view.mac,
        broadcast: view.broadcast,
        port: view.port,
    }
}

/// Either a signed-in user or a machine's own agent.
pub enum Caller {
    User(crate::domain::accounts::Principal),
    Machine(Box<Machine>),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let is_machine =
            bearer_token(&parts.headers).is_some_and(|t| t.starts_with(MACHINE_TOKEN_PREFIX));
        if is_machine {
            let MachineAuth(machine) = MachineAuth::from_request_parts(parts, state).await?;
            Ok(Caller::Machine(Box::new(machine)))
        } else {
            let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
            Ok(Caller::User(principal))
        }
    }
}

// --- handlers -----------------------------------------------------------------------------

/// List your machines, by name.
#[utoipa::path(get, path = "/machines", tag = "machines", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = Envelope<Vec<MachineView>>),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn list_machines(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Reply<Vec<MachineView>>> {
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .validate()?;
    let (rows, total) = machines::list(
        state.store(),
        &principal,
        state.presence(),
        query.search,
        query.status,
        page.per_page,
        page.offset(),
    )
    .await?;
    let mut views = Vec::with_capacity(rows.len());
    for m in rows {
        views.push(MachineView::counted(&state, m).await?);
    }
    Ok(Reply::page(views, total, page))
}

/// Register a machine; its `mn_` token is in the answer, once.
#[utoipa::path(post, path = "/machines", tag = "machines", security(("bearer" = [])),
    request_body = RegisterMachineRequest,
    responses(
        (status = 201, body = Envelope<RegisteredMachine>),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, description = "Invalid fields, or the name is taken", body = ErrorEnvelope),
    ))]
pub async fn register_machine(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiJson(req): ApiJson<RegisterMachineRequest>,
) -> Result<Reply<RegisteredMachine>> {
    let new = NewMachine {
        name: req.name,
        platform: req.platform,
        hostname: req.hostname,
        arch: req.arch,
        node_version: req.node_version,
        agent_version: req.agent_version,
        claude_version: req.claude_version,
        claude_path: req.claude_path,
        capabilities: req.capabilities,
        max_sessions: req.max_sessions,
        wake_on_lan: req.wake_on_lan.map(wake_settings),
    };
    let (machine, token) = machines::register(state.store(), &principal, new).await?;
    Ok(Reply::created(RegisteredMachine {
        machine: MachineView::new(machine, state.presence()),
        token,
    }))
}

/// One of your machines.
#[utoipa::path(get, path = "/machines/{id}", tag = "machines", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<MachineView>),
        (status = 404, description = "MCH_001", body = ErrorEnvelope),
    ))]
pub async fn get_machine(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<MachineView>> {
    let machine = machines::get(state.store(), &principal, id).await?;
    Ok(Reply::ok(MachineView::counted(&state, machine).await?))
}

/// Change a machine's settings.
#[utoipa::path(patch, path = "/machines/{id}", tag = "machines", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateMachineRequest,
    responses(
        (status = 200, body = Envelope<MachineView>),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
    ))]
pub async fn update_machine(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateMachineRequest>,
) -> Result<Reply<MachineView>> {
    let changes = MachineChanges {
        name: req.name,
        max_sessions: req.max_sessions,
        capabilities: req.capabilities,
        wake_on_lan: req.wake_on_lan.map(wake_settings),
    };
    let machine = machines::update(state.store(), &principal, id, changes).await?;
    Ok(Reply::ok(MachineView::new(machine, state.presence())))
}

/// Delete a machine; its agent link is closed.
#[utoipa::path(delete, path = "/machines/{id}", tag = "machines", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_machine(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<Null>> {
    machines::delete(state.store(), state.agent_links(), &principal, id).await?;
    Ok(Reply::ok(Null))
}

/// A new machine token: the old one dies at once and its live link is dropped.
#[utoipa::path(post, path = "/machines/{id}/regenerate-token", tag = "machines",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<TokenData>), (status = 404, body = ErrorEnvelope)))]
pub async fn regenerate_token(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<TokenData>> {
    let token =
        machines::regenerate_token(state.store(), state.agent_links(), &principal, id).await?;
    Ok(Reply::ok(TokenData { token }))
}

/// The machine's environment as its agent reported it. Callable by the owner, or
/// by the machine's own `mn_` token (another machine's token gets 404).
#[utoipa::path(get, path = "/machines/{id}/environment", tag = "machines",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = Envelope<EnvironmentView>), (status = 404, body = ErrorEnvelope)))]
pub async fn environment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<EnvironmentView>> {
    let m = match caller {
        Caller::User(principal) => machines::get(state.store(), &principal, id).await?,
        Caller::Machine(own) if own.id == id => *own,
        Caller::Machine(_) => return Err(ApiError::new(ErrorCode::MachineNotFound)),
    };
    Ok(Reply::ok(EnvironmentView {
        platform: m.platform,
        hostname: m.hostname,
        arch: m.arch,
        node_version: m.node_version,
        agent_version: m.agent_version,
        claude_version: m.claude_version,
        claude_path: m.claude_path,
        capabilities: m.capabilities.0,
        max_sessions: m.max_sessions,
        mac_addresses: m.mac_addresses.0,
        networks: m.networks.0,
    }))
}

/// Wake the machine with a magic packet.
#[utoipa::path(post, path = "/machines/{id}/wake", tag = "machines", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<WakeData>),
        (status = 400, description = "MCH_003 (no capability or MAC, or a target that is not a broadcast address on port 7 or 9 nor allowed by `wake_on_lan.allowed_targets`) or MCH_004 (already online)", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn wake(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<WakeData>> {
    let woken = machines::wake(
        state.store(),
        state.agent_links(),
        state.bus(),
        state.presence(),
        &principal,
        id,
        &state.config().wake_on_lan.allowed_targets,
    )
    .await?;
    Ok(Reply::ok(WakeData {
        message: "Wake-on-LAN signal sent".into(),
        machine: MachineView::new(woken.machine, state.presence()),
        relayed_by: woken.relayed_by,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PingData {
    /// Host → agent → host, in milliseconds.
    pub round_trip_ms: f64,
}

/// Check the agent link: the agent echoes a payload and the round trip is measured.
#[utoipa::path(post, path = "/machines/{id}/ping", tag = "machines", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<PingData>),
        (status = 400, description = "MCH_002: no live agent link", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn ping(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<PingData>> {
    let elapsed = machines::ping(
        state.store(),
        state.agent_links(),
        state.presence(),
        &principal,
        id,
    )
    .await?;
    Ok(Reply::ok(PingData {
        round_trip_ms: elapsed.as_secs_f64() * 1e3,
    }))
}

/// Start pairing (called by `claudenest agent pair`): returns the code to show the user.
#[utoipa::path(post, path = "/pairing", tag = "machines", request_body = StartPairingRequest,
    responses((status = 201, body = Envelope<PairingStarted>), (status = 422, body = ErrorEnvelope),
               (status = 429, body = ErrorEnvelope)))]
pub async fn start_pairing(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<StartPairingRequest>,
) -> Result<Reply<PairingStarted>> {
    let (code, expires_at) = machines::start_pairing(
        state.store(),
        PairingRequest {
            token_hash: req.token_hash,
            hostname: req.hostname,
            platform: req.platform,
            arch: req.arch,
        },
    )
    .await?;
    Ok(Reply::created(PairingStarted { code, expires_at }))
}

/// Complete pairing with the code the agent shows: the machine joins your account.
#[utoipa::path(post, path = "/pairing/{code}/complete", tag = "machines",
    security(("bearer" = [])), params(("code" = String, Path)),
    request_body = CompletePairingRequest,
    responses(
        (status = 201, body = Envelope<MachineView>),
        (status = 404, description = "MCH_005: unknown, used or expired code", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn complete_pairing(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(code): ApiPath<String>,
    ApiJson(req): ApiJson<CompletePairingRequest>,
) -> Result<Reply<MachineView>> {
    let machine = machines::complete_pairing(state.store(), &principal, &code, req.name).await?;
    Ok(Reply::created(MachineView::new(machine, state.presence())))
}

/// The machine a machine token belongs to (for agents).
#[utoipa::path(get, path = "/agent/machine", tag = "agent", security(("bearer" = [])),
    responses((status = 200, body = Envelope<MachineView>), (status = 401, body = ErrorEnvelope)))]
pub async fn own_machine(
    State(state): State<AppState>,
    MachineAuth(machine): MachineAuth,
) -> Reply<MachineView> {
    Reply::ok(MachineView::new(machine, state.presence()))
}
