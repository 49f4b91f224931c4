//! Machines (API §3): registration, settings, tokens, presence, pairing and Wake-on-LAN.
//!
//! Presence is recorded by the agent link (hello → online, every pong → still online, close →
//! offline) and *judged* at read time: an `online` record that no link has confirmed for
//! [`PresenceSettings::stale_after`] reads as offline, so a host that died without closing its
//! links cannot leave machines looking online.

use std::{net::SocketAddr, time::Duration as StdDuration};

use chrono::{DateTime, Duration, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    abilities,
    accounts::{Principal, TokenSecret, hash_token},
    clock,
};
use crate::{
    config::AgentLinkSettings,
    error::{ApiError, ErrorCode, Result, Validator},
    events::{Event, EventBus},
    links::{AgentLinks, LinkError},
    protocol::{self, AgentRequest, Environment, Ipv4Network, close},
    store::{Machine, MachineFilter, Pairing, Store, StoreError},
};

pub use claudenest_protocol::tokens::{MACHINE_TOKEN_PREFIX, PAIRING_TTL};
pub const DEFAULT_MAX_SESSIONS: i32 = 10;
pub const DEFAULT_WOL_BROADCAST: &str = "255.255.255.255";
pub const DEFAULT_WOL_PORT: i32 = 9;
/// The capability that allows Wake-on-LAN (API §3.8).
pub const WAKE_ON_LAN: &str = "wake_on_lan";
/// How long a machine reads `connecting` after a wake signal.
const CONNECTING_FOR: Duration = Duration::minutes(5);
/// How long a relaying agent gets to send a magic packet.
const RELAY_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// A machine's status as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineStatus {
    Online,
    Offline,
    Connecting,
}

impl MachineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::Online => "online",
            MachineStatus::Offline => "offline",
            MachineStatus::Connecting => "connecting",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "online" => Some(MachineStatus::Online),
            "offline" => Some(MachineStatus::Offline),
            "connecting" => Some(MachineStatus::Connecting),
            _ => None,
        }
    }

    /// What the stored record means at `now`.
    pub fn of(machine: &Machine, presence: &PresenceSettings, now: DateTime<Utc>) -> Self {
        match machine.status.as_str() {
            "online" if machine.status_at > now - presence.stale_after() => MachineStatus::Online,
            "connecting" if machine.status_at > now - CONNECTING_FOR => MachineStatus::Connecting,
            _ => MachineStatus::Offline,
        }
    }
}

/// The link timings presence is judged by.
#[derive(Debug, Clone, Copy)]
pub struct PresenceSettings {
    pub ping_interval: StdDuration,
    pub pong_timeout: StdDuration,
}

impl PresenceSettings {
    pub fn from_settings(s: &AgentLinkSettings) -> Self {
        Self {
            ping_interval: StdDuration::from_secs(s.ping_interval_secs.max(1)),
            pong_timeout: StdDuration::from_secs(s.pong_timeout_secs.max(1)),
        }
    }

    /// Two missed ping rounds: by then the link's own deadline has closed it, or its host is gone.
    pub fn stale_after(&self) -> Duration {
        Duration::from_std(2 * (self.ping_interval + self.pong_timeout)).unwrap_or(Duration::MAX)
    }
}

/// Wake-on-LAN settings as the API shows and takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakeSettings {
    pub mac: Option<String>,
    pub broadcast: Option<String>,
    pub port: Option<i64>,
}

/// `POST /api/machines` (API §3.2).
#[derive(Debug, Clone, Default)]
pub struct NewMachine {
    pub name: String,
    pub platform: Option<String>,
    pub hostname: Option<String>,
    pub arch: Option<String>,
    pub node_version: Option<String>,
    pub agent_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub max_sessions: Option<i64>,
    pub wake_on_lan: Option<WakeSettings>,
}

/// `PATCH /api/machines/{id}` (API §3.4): only the fields given change.
#[derive(Debug, Clone, Default)]
pub struct MachineChanges {
    pub name: Option<String>,
    pub max_sessions: Option<i64>,
    pub capabilities: Option<Vec<String>>,
    pub wake_on_lan: Option<WakeSettings>,
}

fn validate_name(v: &mut Validator, name: &str) {
    v.check_length(
        name,
        1,
        100,
        "name",
        "The name must be between 1 and 100 characters.",
    );
}

fn validate_max_sessions(v: &mut Validator, n: i64) {
    v.check(
        (1..=100).contains(&n),
        "max_sessions",
        "The max sessions must be between 1 and 100.",
    );
}

fn validate_capabilities(v: &mut Validator, caps: &[String]) {
    v.check(caps.len() <= 32, "capabilities", "At most 32 capabilities.");
    for cap in caps {
        let ok = (1..=64).contains(&cap.len())
            && cap
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:-".contains(&b));
        v.check(
            ok,
            "capabilities",
            format!("`{cap}` is not a capability name (a-z, 0-9, _ : -, at most 64)."),
        );
    }
}

fn validate_wake(v: &mut Validator, wake: &WakeSettings) {
    if let Some(mac) = &wake.mac {
        v.check(
            protocol::parse_mac(mac).is_some(),
            "wake_on_lan.mac",
            "The MAC address must look like aa:bb:cc:dd:ee:ff.",
        );
    }
    if let Some(addr) = &wake.broadcast {
        v.check(
            addr.parse::<std::net::IpAddr>().is_ok(),
            "wake_on_lan.broadcast",
            "The broadcast address must be an IP address.",
        );
    }
    if let Some(port) = wake.port {
        v.check(
            (1..=65535).contains(&port),
            "wake_on_lan.port",
            "The port must be between 1 and 65535.",
        );
    }
}

fn validate_optional_text(v: &mut Validator, field: &str, value: &Option<String>) {
    if let Some(text) = value {
        v.check(
            text.chars().count() <= 255,
            field,
            format!("The {field} may not be longer than 255 characters."),
        );
    }
}

fn name_taken() -> ApiError {
    ApiError::invalid_field("name", "You already have a machine with this name.")
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::MachineNotFound)
}

/// A fresh machine row for `user_id` with the given token hash.
fn new_row(user_id: Uuid, name: String, token_hash: Vec<u8>, now: DateTime<Utc>) -> Machine {
    Machine {
        id: Uuid::now_v7(),
        user_id,
        name,
        token_hash,
        platform: None,
        hostname: None,
        arch: None,
        node_version: None,
        agent_version: None,
        claude_version: None,
        claude_path: None,
        capabilities: Json(Vec::new()),
        max_sessions: DEFAULT_MAX_SESSIONS,
        mac_addresses: Json(Vec::new()),
        networks: Json(Vec::new()),
        wol_mac: None,
        wol_broadcast: DEFAULT_WOL_BROADCAST.into(),
        wol_port: DEFAULT_WOL_PORT,
        status: MachineStatus::Offline.as_str().into(),
        status_at: now,
        connected_at: None,
        last_seen_at: None,
        created_at: now,
        updated_at: now,
    }
}

fn apply_wake(machine: &mut Machine, wake: WakeSettings) {
    if let Some(mac) = wake.mac {
        machine.wol_mac = Some(mac.to_ascii_lowercase().replace('-', ":"));
    }
    if let Some(addr) = wake.broadcast {
        machine.wol_broadcast = addr;
    }
    if let Some(port) = wake.port {
        machine.wol_port = port as i32;
    }
}

async fn insert(store: &dyn Store, machine: &Machine) -> Result<()> {
    match store.insert_machine(machine).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(name_taken()),
        Err(err) => Err(err.into()),
    }
}

/// Registers a machine; returns it and its `mn_` token, shown this once.
pub async fn register(
    store: &dyn Store,
    principal: &Principal,
    new: NewMachine,
) -> Result<(Machine, String)> {
    principal.require(abilities::MACHINES_WRITE)?;
    let mut v = Validator::new();
    validate_name(&mut v, &new.name);
    for (field, value) in [
        ("platform", &new.platform),
        ("hostname", &new.hostname),
        ("arch", &new.arch),
        ("node_version", &new.node_version),
        ("agent_version", &new.agent_version),
        ("claude_version", &new.claude_version),
        ("claude_path", &new.claude_path),
    ] {
        validate_optional_text(&mut v, field, value);
    }
    if let Some(n) = new.max_sessions {
        validate_max_sessions(&mut v, n);
    }
    if let Some(caps) = &new.capabilities {
        validate_capabilities(&mut v, caps);
    }
    if let Some(wake) = &new.wake_on_lan {
        validate_wake(&mut v, wake);
    }
    v.finish()?;
    let secret = TokenSecret::generate(MACHINE_TOKEN_PREFIX);
    let mut machine = new_row(
        principal.user.id,
        new.name.trim().to_owned(),
        secret.hash.to_vec(),
        clock::now(),
    );
    machine.platform = new.platform;
    machine.hostname = new.hostname;
    machine.arch = new.arch;
    machine.node_version = new.node_version;
    machine.agent_version = new.agent_version;
    machine.claude_version = new.claude_version;
    machine.claude_path = new.claude_path;
    machine.capabilities = Json(new.capabilities.unwrap_or_default());
    machine.max_sessions = new.max_sessions.map_or(DEFAULT_MAX_SESSIONS, |n| n as i32);
    if let Some(wake) = new.wake_on_lan {
        apply_wake(&mut machine, wake);
    }
    insert(store, &machine).await?;
    Ok((machine, secret.plain))
}

/// One of the caller's machines; another user's id is `MCH_001` like a missing one.
/// The caller's machine `id`, for what lives under a machine (its projects, sessions, skills,
/// MCP servers, plugins): `MCH_001` for a machine that is not theirs. The caller's ability is
/// checked by the resource's own rules.
pub async fn owned(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Machine> {
    store
        .machine(principal.user.id, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn get(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Machine> {
    principal.require(abilities::MACHINES_READ)?;
    store
        .machine(principal.user.id, id)
        .await?
        .ok_or_else(not_found)
}

/// A page of the caller's machines, filtered by `search` (name or hostname) and `status`.
pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    presence: &PresenceSettings,
    search: Option<String>,
    status: Option<String>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Machine>, u64)> {
    principal.require(abilities::MACHINES_READ)?;
    if let Some(s) = &status {
        Validator::new()
            .check(
                MachineStatus::parse(s).is_some(),
                "status",
                "The status must be one of: online, offline, connecting.",
            )
            .finish()?;
    }
    let now = clock::now();
    let filter = MachineFilter {
        search: search.filter(|s| !s.trim().is_empty()),
        status,
        online_after: now - presence.stale_after(),
        connecting_after: now - CONNECTING_FOR,
    };
    Ok(store
        .machines_page(principal.user.id, &filter, limit, offset)
        .await?)
}

/// Applies the given settings.
pub async fn update(
    store: &dyn Store,
    principal: &Principal,
    id: Uuid,
    changes: MachineChanges,
) -> Result<Machine> {
    principal.require(abilities::MACHINES_WRITE)?;
    let mut v = Validator::new();
    if let Some(name) = &changes.name {
        validate_name(&mut v, name);
    }
    if let Some(n) = changes.max_sessions {
        validate_max_sessions(&mut v, n);
    }
    if let Some(caps) = &changes.capabilities {
        validate_capabilities(&mut v, caps);
    }
    if let Some(wake) = &changes.wake_on_lan {
        validate_wake(&mut v, wake);
    }
    v.finish()?;
    let mut machine = get(store, principal, id).await?;
    if let Some(name) = changes.name {
        machine.name = name.trim().to_owned();
    }
    if let Some(n) = changes.max_sessions {
        machine.max_sessions = n as i32;
    }
    if let Some(caps) = changes.capabilities {
        machine.capabilities = Json(caps);
    }
    if let Some(wake) = changes.wake_on_lan {
        apply_wake(&mut machine, wake);
    }
    machine.updated_at = clock::now();
    match store.update_machine_settings(&machine).await {
        Ok(true) => Ok(machine),
        Ok(false) => Err(not_found()),
        Err(StoreError::Conflict) => Err(name_taken()),
        Err(err) => Err(err.into()),
    }
}

/// Deletes the machine and closes its agent link.
pub async fn delete(
    store: &dyn Store,
    links: &dyn AgentLinks,
    principal: &Principal,
    id: Uuid,
) -> Result<()> {
    principal.require(abilities::MACHINES_WRITE)?;
    let machine = get(store, principal, id).await?;
    // End the processes of its live sessions while the link is still there; the records go
    // with the machine.
    let (sessions, _) = store.sessions_page(machine.id, None, 10_000, 0).await?;
    for session in sessions.iter().filter(|s| !s.status.is_ended()) {
        let request = AgentRequest::SessionTerminate {
            session_id: session.id,
        };
        if let Err(err) = links.request(machine.id, request, RELAY_TIMEOUT).await {
            tracing::info!(session_id = %session.id, error = %err, "delete: session not confirmed ended");
        }
    }
    if !store.delete_machine(principal.user.id, id).await? {
        return Err(not_found());
    }
    links.disconnect(id, close::REVOKED, "machine deleted");
    Ok(())
}

/// Issues a new `mn_` token: the old one stops working at once and its live link is dropped.
pub async fn regenerate_token(
    store: &dyn Store,
    links: &dyn AgentLinks,
    principal: &Principal,
    id: Uuid,
) -> Result<String> {
    principal.require(abilities::MACHINES_WRITE)?;
    let secret = TokenSecret::generate(MACHINE_TOKEN_PREFIX);
    if !store
        .set_machine_token(principal.user.id, id, &secret.hash, clock::now())
        .await?
    {
        return Err(not_found());
    }
    links.disconnect(id, close::REVOKED, "machine token regenerated");
    Ok(secret.plain)
}

/// The machine an `mn_` token belongs to; every failure is the same `AUTH_005`.
pub async fn authenticate_machine(store: &dyn Store, bearer: &str) -> Result<Machine> {
    let unauthenticated = |why: &str| {
        tracing::debug!(reason = why, "machine token rejected");
        ApiError::new(ErrorCode::Unauthenticated)
    };
    if !bearer.starts_with(MACHINE_TOKEN_PREFIX) {
        return Err(unauthenticated("not a machine token"));
    }
    store
        .machine_by_token_hash(&hash_token(bearer))
        .await?
        .ok_or_else(|| unauthenticated("no such machine token"))
}

// --- presence (called by the agent link) -----------------------------------------------------

/// The agent said hello. Capabilities it reports are added to the machine's (the user can
/// add more, and the agent cannot take the user's away); `max_sessions` stays the user's.
pub async fn link_opened(
    store: &dyn Store,
    bus: &EventBus,
    machine: &Machine,
    env: &Environment,
) -> Result<()> {
    let mut capabilities = machine.capabilities.0.clone();
    for cap in &env.capabilities {
        if !capabilities.contains(cap) {
            capabilities.push(cap.clone());
        }
    }
    store
        .record_machine_hello(machine.id, env, &capabilities, clock::now())
        .await?;
    announce_status(bus, machine.id, MachineStatus::Online);
    Ok(())
}

/// `machine:status` on the machine's private channel.
fn announce_status(bus: &EventBus, machine_id: Uuid, status: MachineStatus) {
    bus.publish(Event::new(
        super::channel_names::machine_channel(machine_id),
        "machine:status",
        serde_json::json!({ "machine_id": machine_id, "status": status.as_str() }),
    ));
}

pub async fn link_alive(store: &dyn Store, machine_id: Uuid) -> Result<()> {
    Ok(store.record_machine_seen(machine_id, clock::now()).await?)
}

pub async fn link_closed(store: &dyn Store, bus: &EventBus, machine_id: Uuid) -> Result<()> {
    store
        .set_machine_status(machine_id, MachineStatus::Offline.as_str(), clock::now())
        .await?;
    announce_status(bus, machine_id, MachineStatus::Offline);
    Ok(())
}

/// Asks the machine's agent to echo a payload and measures the round trip (link health).
/// `MCH_002` when the machine has no live link.
pub async fn ping(
    store: &dyn Store,
    links: &dyn AgentLinks,
    presence: &PresenceSettings,
    principal: &Principal,
    id: Uuid,
) -> Result<StdDuration> {
    let machine = get(store, principal, id).await?;
    if MachineStatus::of(&machine, presence, clock::now()) != MachineStatus::Online {
        return Err(ApiError::new(ErrorCode::MachineOffline));
    }
    let payload = serde_json::json!({ "nonce": rand::random::<u64>() });
    let started = std::time::Instant::now();
    let echoed = links
        .request(
            machine.id,
            AgentRequest::Echo {
                payload: payload.clone(),
            },
            PING_TIMEOUT,
        )
        .await
        .map_err(|err| match err {
            LinkError::NotConnected => ApiError::new(ErrorCode::MachineOffline),
            other => ApiError::new(ErrorCode::MachineOffline)
                .with_message(format!("The agent did not answer: {other}")),
        })?;
    if echoed != payload {
        return Err(ApiError::internal(anyhow::anyhow!(
            "agent echoed {echoed} instead of {payload}"
        )));
    }
    Ok(started.elapsed())
}

/// How long `ping` waits for the agent.
const PING_TIMEOUT: StdDuration = StdDuration::from_secs(5);

// --- pairing ---------------------------------------------------------------------------------

/// Letters and digits that cannot be misread for each other (no 0/O, 1/I/L, U).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";

/// `XXXX-XXXX` from a CSPRNG (≈39 bits; codes also expire and are rate limited).
fn new_pairing_code() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let chars: String = (0..8)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Upper-case, without separators or spaces: how codes are compared.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What an agent sends to start pairing.
pub struct PairingRequest {
    /// Hex SHA-256 of the `mn_` token the agent generated and keeps.
    pub token_hash: String,
    pub hostname: Option<String>,
    pub platform: Option<String>,
    pub arch: Option<String>,
}

/// Starts pairing: returns the code the agent shows and when it expires.
pub async fn start_pairing(
    store: &dyn Store,
    request: PairingRequest,
) -> Result<(String, DateTime<Utc>)> {
    let mut v = Validator::new();
    let token_hash = hex::decode(&request.token_hash)
        .ok()
        .filter(|h| h.len() == 32);
    v.check(
        token_hash.is_some(),
        "token_hash",
        "The token hash must be 64 hexadecimal characters (SHA-256).",
    );
    for (field, value) in [
        ("hostname", &request.hostname),
        ("platform", &request.platform),
        ("arch", &request.arch),
    ] {
        validate_optional_text(&mut v, field, value);
    }
    v.finish()?;
    let code = new_pairing_code();
    let now = clock::now();
    let expires_at = now + PAIRING_TTL;
    store
        .insert_pairing(&Pairing {
            code_hash: hash_token(&normalize_code(&code)).to_vec(),
            token_hash: token_hash.unwrap_or_default(),
            hostname: request.hostname,
            platform: request.platform,
            arch: request.arch,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok((code, expires_at))
}

/// Completes pairing for the signed-in user: the machine is created with the agent's token.
pub async fn complete_pairing(
    store: &dyn Store,
    principal: &Principal,
    code: &str,
    name: Option<String>,
) -> Result<Machine> {
    principal.require(abilities::MACHINES_WRITE)?;
    if let Some(name) = &name {
        let mut v = Validator::new();
        validate_name(&mut v, name);
        v.finish()?;
    }
    let pairing = store
        .take_pairing(&hash_token(&normalize_code(code)))
        .await?
        .filter(|p| p.expires_at > clock::now())
        .ok_or_else(|| ApiError::new(ErrorCode::PairingNotFound))?;
    let name = name
        .or_else(|| pairing.hostname.clone())
        .unwrap_or_else(|| "machine".into());
    let mut machine = new_row(
        principal.user.id,
        name.trim().to_owned(),
        pairing.token_hash.clone(),
        clock::now(),
    );
    machine.hostname = pairing.hostname.clone();
    machine.platform = pairing.platform.clone();
    machine.arch = pairing.arch.clone();
    if let Err(err) = insert(store, &machine).await {
        // Give the code back so the user can retry with another name.
        store.insert_pairing(&pairing).await?;
        return Err(err);
    }
    Ok(machine)
}

// --- Wake-on-LAN -----------------------------------------------------------------------------

/// The outcome of a wake request.
pub struct Woken {
    pub machine: Machine,
    /// The online machine whose agent sent the packet, when one on the same LAN did.
    pub relayed_by: Option<Uuid>,
}

/// Sends a magic packet for the machine (API §3.8), through an agent on the same LAN when
/// one is online, else from the host to the configured broadcast address and port.
pub async fn wake(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    presence: &PresenceSettings,
    principal: &Principal,
    id: Uuid,
    allowed_targets: &[String],
) -> Result<Woken> {
    principal.require(abilities::MACHINES_WRITE)?;
    let mut machine = get(store, principal, id).await?;
    let now = clock::now();
    if MachineStatus::of(&machine, presence, now) == MachineStatus::Online {
        return Err(ApiError::new(ErrorCode::MachineAlreadyOnline));
    }
    if !machine.capabilities.iter().any(|c| c == WAKE_ON_LAN) {
        return Err(ApiError::new(ErrorCode::WakeOnLanUnsupported));
    }
    let mac_text = machine
        .wol_mac
        .clone()
        .or_else(|| machine.mac_addresses.first().cloned())
        .ok_or_else(|| {
            ApiError::new(ErrorCode::WakeOnLanUnsupported)
                .with_message("Machine has no MAC address to wake")
        })?;
    let mac = protocol::parse_mac(&mac_text).ok_or_else(|| {
        ApiError::new(ErrorCode::WakeOnLanUnsupported)
            .with_message("Machine's MAC address is not valid")
    })?;
    let ip: std::net::IpAddr = machine.wol_broadcast.parse().map_err(|_| {
        ApiError::new(ErrorCode::WakeOnLanUnsupported)
            .with_message("Machine's broadcast address is not valid")
    })?;
    let target = SocketAddr::new(ip, machine.wol_port as u16);
    if !wake_target_allowed(target, &machine.networks, allowed_targets) {
        return Err(
            ApiError::new(ErrorCode::WakeOnLanUnsupported).with_message(format!(
                "Magic packets go to broadcast addresses on port 7 or 9; {target} is neither \
             (the operator can allow it: wake_on_lan.allowed_targets)"
            )),
        );
    }
    let relayed_by = relay_wake(
        store, links, presence, principal, &machine, &mac_text, target,
    )
    .await?;
    if relayed_by.is_none() {
        protocol::send_magic_packet(mac, target)
            .await
            .map_err(|err| ApiError::internal(anyhow::anyhow!("sending magic packet: {err}")))?;
    }
    tracing::info!(machine_id = %machine.id, %target, relayed_by = ?relayed_by, "wake-on-lan sent");
    store
        .set_machine_status(machine.id, MachineStatus::Connecting.as_str(), now)
        .await?;
    machine.status = MachineStatus::Connecting.as_str().into();
    machine.status_at = now;
    announce_status(bus, machine.id, MachineStatus::Connecting);
    Ok(Woken {
        machine,
        relayed_by,
    })
}

/// Where a magic packet may go: the limited broadcast address, a directed broadcast (the
/// broadcast of a network the machine reported, or an address ending in `.255`), on the
/// Wake-on-LAN ports 7 or 9 — or a target the operator allowed (`ip` or `ip:port`).
fn wake_target_allowed(target: SocketAddr, networks: &[Ipv4Network], allowed: &[String]) -> bool {
    let named = allowed.iter().any(|a| {
        a.parse::<SocketAddr>().is_ok_and(|a| a == target)
            || a.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == target.ip())
    });
    if named {
        return true;
    }
    let std::net::IpAddr::V4(ip) = target.ip() else {
        return false;
    };
    let broadcast = ip.is_broadcast()
        || (ip.octets()[3] == 255 && !ip.is_loopback() && !ip.is_multicast())
        // A reported /31 or /32 has no broadcast address: its "broadcast" would be a host.
        || networks
            .iter()
            .any(|n| n.prefix <= 30 && !n.addr.is_loopback() && n.broadcast() == ip);
    broadcast && matches!(target.port(), 7 | 9)
}

/// Asks an online machine on the same subnet to send the packet; `None` when there is none
/// or none managed to.
async fn relay_wake(
    store: &dyn Store,
    links: &dyn AgentLinks,
    presence: &PresenceSettings,
    principal: &Principal,
    target_machine: &Machine,
    mac: &str,
    target: SocketAddr,
) -> Result<Option<Uuid>> {
    let lan: Vec<&Ipv4Network> = target_machine
        .networks
        .iter()
        .filter(|n| !n.addr.is_loopback())
        .collect();
    if lan.is_empty() {
        return Ok(None);
    }
    let (online, _) = list(
        store,
        principal,
        presence,
        None,
        Some("online".into()),
        100,
        0,
    )
    .await?;
    for candidate in online.iter().filter(|m| m.id != target_machine.id) {
        let shares_lan = candidate
            .networks
            .iter()
            .any(|n| lan.iter().any(|t| t.same_subnet(n)));
        if !shares_lan || !links.is_connected(candidate.id) {
            continue;
        }
        let request = AgentRequest::Wake {
            mac: mac.to_owned(),
            target: target.to_string(),
        };
        match links.request(candidate.id, request, RELAY_TIMEOUT).await {
            Ok(_) => return Ok(Some(candidate.id)),
            Err(err) => {
                tracing::warn!(relay = %candidate.id, error = %err, "wake relay failed; trying the next");
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_packets_go_to_broadcast_addresses_on_the_wol_ports_only() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let lan = [Ipv4Network {
            addr: "192.168.7.20".parse().unwrap(),
            prefix: 23,
        }];
        for ok in ["255.255.255.255:9", "10.0.0.255:7", "192.168.7.255:9"] {
            assert!(wake_target_allowed(at(ok), &lan, &[]), "{ok}");
        }
        for refused in [
            "10.0.0.5:9",
            "10.0.0.255:19999",
            "127.0.0.1:9",
            "127.255.255.255:9",
            "224.0.0.255:9",
            "[ff02::1]:9",
        ] {
            assert!(!wake_target_allowed(at(refused), &lan, &[]), "{refused}");
        }
        // A /32 "network" has no broadcast address: its own address is not one.
        let host = [Ipv4Network {
            addr: "10.1.1.1".parse().unwrap(),
            prefix: 32,
        }];
        assert!(!wake_target_allowed(at("10.1.1.1:9"), &host, &[]));
        // The operator may name a target, by address or address and port.
        assert!(wake_target_allowed(
            at("127.0.0.1:4000"),
            &lan,
            &["127.0.0.1".into()]
        ));
        assert!(wake_target_allowed(
            at("127.0.0.1:4000"),
            &lan,
            &["127.0.0.1:4000".into()]
        ));
        assert!(!wake_target_allowed(
            at("127.0.0.1:4001"),
            &lan,
            &["127.0.0.1:4000".into()]
        ));
    }
}
