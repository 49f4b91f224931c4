//! Sessions (API §4): Claude Code running in a PTY on a machine, driven from anywhere.
//!
//! The host keeps the record and the log; the machine's agent runs the process. Output comes
//! back over the agent link (numbered per session), is published at once as `session:output`
//! on `private-session.{id}`, and is written to the log in batches by the link.

use std::{collections::HashMap, sync::Arc, time::Duration as StdDuration};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    abilities,
    accounts::{Principal, TokenSecret, hash_token},
    clock,
    machines::{MachineStatus, PresenceSettings},
};
use crate::{
    error::{ApiError, ErrorCode, Result, Validator},
    events::{Event, EventBus},
    links::AgentLinks,
    protocol::{AgentRequest, SessionCursor},
    store::{Session, SessionLog, SessionStatus, Store},
};

pub const MODES: &[&str] = &["interactive", "headless", "oneshot"];
/// Prefix of per-session WebSocket tokens.
pub const WS_TOKEN_PREFIX: &str = "ws_";
const AGENT_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Attach answers without a snapshot rather than wait long for one.
const SNAPSHOT_TIMEOUT: StdDuration = StdDuration::from_secs(3);
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Output is logged in batches of at most this many chunks (or every [`OUTPUT_FLUSH`]).
pub const OUTPUT_BATCH: usize = 64;
pub const OUTPUT_FLUSH: StdDuration = StdDuration::from_millis(50);

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound)
}

fn publish(bus: &EventBus, id: Uuid, name: &str, data: Value) {
    bus.publish(Event::new(
        super::channel_names::session_channel(id),
        name,
        data,
    ));
}

/// Records a status change (log + `session:status`, and `session:terminated` when it ended).
/// The events say why a session waits (`waiting_reason`, `waiting_message`) or was stopped.
pub(super) async fn announce(store: &dyn Store, bus: &EventBus, session: &Session) -> Result<()> {
    store
        .append_session_logs(
            session.id,
            &[SessionLog {
                metadata: Json(json!({
                    "exit_code": session.exit_code,
                    "waiting_reason": session.waiting_reason,
                    "stop_reason": session.stop_reason,
                })),
                ..log_entry(session.id, "status", session.status.as_str().into())
            }],
        )
        .await?;
    let data = json!({
        "status": session.status.as_str(),
        "exit_code": session.exit_code,
        "waiting_reason": session.waiting_reason,
        "waiting_message": session.waiting_message,
        "stop_reason": session.stop_reason,
    });
    publish(bus, session.id, "session:status", data.clone());
    // The machine's channel hears every session's moves too: one subscription per machine is
    // enough for a fleet view (sessions started elsewhere included).
    bus.publish(Event::new(
        super::channel_names::machine_channel(session.machine_id),
        "session:status",
        json!({
            "session_id": session.id,
            "machine_id": session.machine_id,
            "status": session.status.as_str(),
            "exit_code": session.exit_code,
            "waiting_reason": session.waiting_reason,
            "waiting_message": session.waiting_message,
            "stop_reason": session.stop_reason,
        }),
    ));
    if session.status.is_ended() {
        publish(bus, session.id, "session:terminated", data);
    }
    Ok(())
}

/// Moves the session to `status` and tells everyone; nothing when it had already ended.
pub async fn set_status(
    store: &dyn Store,
    bus: &EventBus,
    id: Uuid,
    status: SessionStatus,
    exit_code: Option<i32>,
) -> Result<Option<Session>> {
    let moved = store
        .set_session_status(id, status, exit_code, clock::now())
        .await?;
    if let Some(session) = &moved {
        announce(store, bus, session).await?;
    }
    Ok(moved)
}

/// `POST /api/machines/{machine}/sessions`.
pub struct NewSession {
    pub mode: String,
    pub project_path: Option<String>,
    pub initial_prompt: Option<String>,
    pub cols: i64,
    pub rows: i64,
    pub budget_tokens: Option<i64>,
    /// US dollars.
    pub budget_cost: Option<f64>,
}

fn validate_size(v: &mut Validator, cols: i64, rows: i64) {
    v.check(
        (10..=1000).contains(&cols),
        "cols",
        "The cols must be between 10 and 1000.",
    )
    .check(
        (2..=500).contains(&rows),
        "rows",
        "The rows must be between 2 and 500.",
    );
}

/// Creates the session and starts it on the machine. Returns it as created and its `ws_` token.
pub async fn create(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    presence: &PresenceSettings,
    principal: &Principal,
    machine_id: Uuid,
    new: NewSession,
) -> Result<(Session, String)> {
    principal.require(abilities::SESSIONS_WRITE)?;
    let mut v = Validator::new();
    v.check(
        MODES.contains(&new.mode.as_str()),
        "mode",
        "The mode must be one of: interactive, headless, oneshot.",
    );
    validate_size(&mut v, new.cols, new.rows);
    if let Some(path) = &new.project_path {
        v.check(
            (1..=1024).contains(&path.len()),
            "project_path",
            "The project path must be 1 to 1024 characters.",
        );
    }
    if let Some(prompt) = &new.initial_prompt {
        v.check(
            prompt.len() <= 100_000,
            "initial_prompt",
            "The initial prompt may not be longer than 100000 bytes.",
        );
    }
    v.check(
        new.mode == "interactive" || new.initial_prompt.as_deref().is_some_and(|p| !p.is_empty()),
        "initial_prompt",
        "Headless and oneshot sessions need an initial prompt.",
    );
    if let Some(tokens) = new.budget_tokens {
        v.check(
            (1..=1_000_000_000_000).contains(&tokens),
            "budget_tokens",
            "The budget_tokens must be between 1 and 1000000000000.",
        );
    }
    if let Some(cost) = new.budget_cost {
        v.check(
            cost.is_finite() && (0.01..=1_000_000.0).contains(&cost),
            "budget_cost",
            "The budget_cost must be between 0.01 and 1000000 (US dollars).",
        );
    }
    v.finish()?;
    let machine = super::machines::owned(store, principal, machine_id).await?;
    if MachineStatus::of(&machine, presence, clock::now()) != MachineStatus::Online {
        return Err(ApiError::new(ErrorCode::MachineOffline));
    }
    if store.active_sessions(machine.id).await? >= i64::from(machine.max_sessions) {
        return Err(
            ApiError::new(ErrorCode::SessionLimitReached).with_message(format!(
                "The machine runs its maximum of {} sessions.",
                machine.max_sessions
            )),
        );
    }
    let project = match &new.project_path {
        Some(path) => {
            super::mcp_access::project_at(store, principal.user.id, machine.id, path).await?
        }
        None => None,
    };
    if let Some(project) = &project {
        super::budgets::check_start(store, principal.user.id, project).await?;
    }
    let secret = TokenSecret::generate(WS_TOKEN_PREFIX);
    let now = clock::now();
    let session = Session {
        id: Uuid::now_v7(),
        machine_id: machine.id,
        user_id: principal.user.id,
        mode: new.mode,
        project_path: new.project_path,
        initial_prompt: new.initial_prompt,
        status: SessionStatus::Created,
        cols: new.cols as i32,
        rows: new.rows as i32,
        exit_code: None,
        total_tokens: 0,
        total_cost: 0.0,
        ws_token_hash: secret.hash.to_vec(),
        last_seq: 0,
        started_at: None,
        ended_at: None,
        created_at: now,
        updated_at: now,
        ws_token_parent: Some(principal.token_id),
        ws_token_write: true,
        waiting_reason: None,
        waiting_message: None,
        stop_reason: None,
        budget_tokens: new.budget_tokens,
        budget_cost: new.budget_cost,
        budget_warned: false,
    };
    store.insert_session(&session).await?;
    set_status(store, bus, session.id, SessionStatus::Starting, None).await?;
    // Working in a project: its Claude Code gets ClaudeNest's MCP server as its own instance.
    let mcp = match project {
        Some(project) => {
            let access =
                super::mcp_access::mint_for_session(store, bus, principal, &session, &project)
                    .await?;
            Some(crate::protocol::SessionMcp {
                token: access.token,
                instance_id: access.instance_id,
                project_id: access.project_id,
            })
        }
        None => None,
    };
    let start = AgentRequest::SessionStart {
        session_id: session.id,
        mode: session.mode.clone(),
        project_path: session.project_path.clone(),
        initial_prompt: session.initial_prompt.clone(),
        cols: session.cols as u16,
        rows: session.rows as u16,
        mcp,
        claude_path: machine.claude_path.clone(),
    };
    match links.request(machine.id, start, AGENT_TIMEOUT).await {
        Ok(_) => set_status(store, bus, session.id, SessionStatus::Running, None).await?,
        Err(err) => {
            tracing::warn!(session_id = %session.id, error = %err, "the agent could not start the session");
            log_error(
                store,
                session.id,
                &format!("The agent could not start the session: {err}"),
            )
            .await?;
            set_status(store, bus, session.id, SessionStatus::Error, None).await?
        }
    };
    // Answered as created (API §4.2); where it went from there (`running`, or `error` with the
    // reason in its logs) is in GET and the `session:status` events.
    Ok((session, secret.plain))
}

async fn log_error(store: &dyn Store, session_id: Uuid, message: &str) -> Result<()> {
    let entry = log_entry(session_id, "error", message.to_owned());
    Ok(store.append_session_logs(session_id, &[entry]).await?)
}

/// A log entry with no `seq` (output sets its own) and no metadata, written now.
fn log_entry(session_id: Uuid, kind: &str, data: String) -> SessionLog {
    SessionLog {
        id: Uuid::now_v7(),
        session_id,
        kind: kind.into(),
        seq: None,
        data,
        metadata: Json(json!({})),
        created_at: clock::now(),
    }
}

pub async fn get(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Session> {
    principal.require(abilities::SESSIONS_READ)?;
    store
        .session(principal.user.id, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn list(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
    status: Option<String>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<Session>, u64)> {
    principal.require(abilities::SESSIONS_READ)?;
    super::machines::owned(store, principal, machine_id).await?;
    let status = status
        .map(|s| {
            SessionStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid_field("status", "The status is not a session status.")
            })
        })
        .transpose()?;
    Ok(store
        .sessions_page(machine_id, status, limit, offset)
        .await?)
}

/// Only interactive sessions have a terminal to type into.
fn takes_input(session: &Session) -> Result<()> {
    if session.mode != "interactive" {
        return Err(ApiError::invalid_field(
            "data",
            "Headless and oneshot sessions take no input.",
        ));
    }
    Ok(())
}

/// A live session of the caller's, for changing it (`SES_002` once it ended).
async fn live(store: &dyn Store, principal: &Principal, id: Uuid) -> Result<Session> {
    principal.require(abilities::SESSIONS_WRITE)?;
    let session = store
        .session(principal.user.id, id)
        .await?
        .ok_or_else(not_found)?;
    if session.status.is_ended() {
        return Err(ApiError::new(ErrorCode::SessionTerminated));
    }
    Ok(session)
}

/// Asks the agent; an unreachable agent is `MCH_002`.
async fn ask(links: &dyn AgentLinks, session: &Session, request: AgentRequest) -> Result<()> {
    links
        .request(session.machine_id, request, AGENT_TIMEOUT)
        .await
        .map(|_| ())
        .map_err(|err| {
            ApiError::new(ErrorCode::MachineOffline)
                .with_message(format!("The session's machine did not take it: {err}"))
        })
}

/// `DELETE /api/sessions/{id}`: ends the process and the session.
pub async fn terminate(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
) -> Result<Session> {
    let session = live(store, principal, id).await?;
    // Recorded first, so the exit the kill causes does not turn it into an `error`.
    let ended = set_status(store, bus, id, SessionStatus::Terminated, None).await?;
    let request = AgentRequest::SessionTerminate { session_id: id };
    if let Err(err) = links
        .request(session.machine_id, request, AGENT_TIMEOUT)
        .await
    {
        // Gone from the machine already (or the machine is): the record ends either way.
        tracing::info!(session_id = %id, error = %err, "terminate: the agent did not confirm");
    }
    match ended {
        Some(session) => Ok(session),
        None => store.session_by_id(id).await?.ok_or_else(not_found),
    }
}

/// API §4.4: ends the session if it still runs, then removes it with its logs.
pub async fn delete(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    principal: &Principal,
    id: Uuid,
) -> Result<()> {
    principal.require(abilities::SESSIONS_WRITE)?;
    let session = store
        .session(principal.user.id, id)
        .await?
        .ok_or_else(not_found)?;
    if !session.status.is_ended() {
        match terminate(store, links, bus, principal, id).await {
            // Ended on its own meanwhile: nothing left to stop.
            Err(err) if err.code() == ErrorCode::SessionTerminated => {}
            other => {
                other?;
            }
        }
    }
    if !store.delete_session(principal.user.id, id).await? {
        return Err(not_found());
    }
    Ok(())
}

/// `read` is the session when the caller has just read it (the request's path guard does);
/// it is used only when it is this caller's session `id`.
pub async fn input(
    store: &dyn Store,
    links: &dyn AgentLinks,
    principal: &Principal,
    id: Uuid,
    read: Option<Session>,
    data: String,
) -> Result<()> {
    Validator::new()
        .check(
            (1..=MAX_INPUT_BYTES).contains(&data.len()),
            "data",
            "The data must be 1 to 65536 bytes.",
        )
        .finish()?;
    principal.require(abilities::SESSIONS_WRITE)?;
    let session = match read.filter(|s| s.id == id && s.user_id == principal.user.id) {
        Some(session) => session,
        None => store
            .session(principal.user.id, id)
            .await?
            .ok_or_else(not_found)?,
    };
    // A headless session says so even once it ended; then an ended one is `SES_002`.
    takes_input(&session)?;
    if session.status.is_ended() {
        return Err(ApiError::new(ErrorCode::SessionTerminated));
    }
    // Written while the machine takes it (the answer waits for both); input the machine did
    // not take is followed by an `error` entry saying so.
    let entry = log_entry(session.id, "input", data.clone());
    let (sent, logged) = tokio::join!(
        ask(links, &session, input_request(&session, data)),
        store.append_session_logs(session.id, std::slice::from_ref(&entry)),
    );
    logged?;
    if let Err(err) = sent {
        log_error(
            store,
            session.id,
            &format!("input not delivered: {}", err.message()),
        )
        .await?;
        return Err(err);
    }
    Ok(())
}

fn input_request(session: &Session, data: String) -> AgentRequest {
    AgentRequest::SessionInput {
        session_id: session.id,
        data,
    }
}

/// Gives input to the session's machine; returns the input's log entry, for the caller to
/// write beside the keystrokes ([`InputLog`]).
async fn send_input(links: &dyn AgentLinks, session: &Session, data: String) -> Result<SessionLog> {
    takes_input(session)?;
    ask(links, session, input_request(session, data.clone())).await?;
    Ok(log_entry(session.id, "input", data))
}

/// Input typed on a socket, logged in order by a writer of its own: a keystroke waits for its
/// machine, not for the database (whose write lock an output batch may hold). Dropping the
/// log lets the writer finish what it holds, then end.
pub struct InputLog {
    entries: tokio::sync::mpsc::Sender<SessionLog>,
}

/// Entries an input log holds unwritten before a keystroke waits for the database.
const INPUT_LOG_QUEUE: usize = 256;

impl InputLog {
    /// The log and its writer, for the caller to run as a task (one it waits for at shutdown).
    pub fn new(store: Arc<dyn Store>) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (entries, mut queued) = tokio::sync::mpsc::channel(INPUT_LOG_QUEUE);
        let writer = async move {
            let mut batch: Vec<SessionLog> = Vec::new();
            while queued.recv_many(&mut batch, OUTPUT_BATCH).await > 0 {
                for entries in batch.chunk_by(|a, b| a.session_id == b.session_id) {
                    let session_id = entries[0].session_id;
                    if let Err(err) = store.append_session_logs(session_id, entries).await {
                        // Gone meanwhile, or the database is: the keys reached the machine.
                        tracing::warn!(error = %err, %session_id, "logging typed input failed");
                    }
                }
                batch.clear();
            }
        };
        (Self { entries }, writer)
    }

    async fn record(&self, entry: SessionLog) {
        // The writer outlives every sender; a send fails only when the runtime is going away.
        let _ = self.entries.send(entry).await;
    }
}

pub async fn resize(
    store: &dyn Store,
    links: &dyn AgentLinks,
    principal: &Principal,
    id: Uuid,
    cols: i64,
    rows: i64,
) -> Result<Session> {
    let mut v = Validator::new();
    validate_size(&mut v, cols, rows);
    v.finish()?;
    let mut session = live(store, principal, id).await?;
    send_resize(store, links, &session, cols, rows).await?;
    session.cols = cols as i32;
    session.rows = rows as i32;
    Ok(session)
}

async fn send_resize(
    store: &dyn Store,
    links: &dyn AgentLinks,
    session: &Session,
    cols: i64,
    rows: i64,
) -> Result<()> {
    let request = AgentRequest::SessionResize {
        session_id: session.id,
        cols: cols as u16,
        rows: rows as u16,
    };
    ask(links, session, request).await?;
    Ok(store
        .set_session_size(session.id, cols as i32, rows as i32, clock::now())
        .await?)
}

/// What attaching gives a viewer.
pub struct Attached {
    pub session: Session,
    /// The new `ws_` token (the previous one stops working).
    pub token: String,
    /// A live interactive session's current screen, from the terminal emulator its agent
    /// keeps: `{seq, rows, cols, text, ansi}`. The viewer draws `ansi`, then applies
    /// `session:output` events with a higher `seq`. `None` when ended or unreachable.
    pub snapshot: Option<Value>,
}

/// `POST /api/sessions/{id}/attach`.
pub async fn attach(
    store: &dyn Store,
    links: &dyn AgentLinks,
    principal: &Principal,
    id: Uuid,
) -> Result<Attached> {
    let session = get(store, principal, id).await?;
    let secret = TokenSecret::generate(WS_TOKEN_PREFIX);
    // The token watches; it types too only if the caller could (and dies with the caller's).
    let write = principal.can(abilities::SESSIONS_WRITE);
    store
        .set_session_ws_token(id, &secret.hash, principal.token_id, write)
        .await?;
    let snapshot = if session.mode == "interactive" && !session.status.is_ended() {
        let request = AgentRequest::SessionSnapshot { session_id: id };
        match links
            .request(session.machine_id, request, SNAPSHOT_TIMEOUT)
            .await
        {
            Ok(screen) => Some(screen),
            Err(err) => {
                tracing::info!(session_id = %id, error = %err, "no snapshot for attach");
                None
            }
        }
    } else {
        None
    };
    Ok(Attached {
        session,
        token: secret.plain,
        snapshot,
    })
}

/// The session a `ws_` token opens (its channel only), while the token that minted it lives.
pub async fn by_ws_token(store: &dyn Store, token: &str) -> Result<Session> {
    if !token.starts_with(WS_TOKEN_PREFIX) {
        return Err(ApiError::new(ErrorCode::Unauthenticated));
    }
    let session = store
        .session_by_ws_token(&hash_token(token))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated))?;
    if !super::accounts::parent_is_live(store, session.ws_token_parent).await? {
        return Err(ApiError::new(ErrorCode::Unauthenticated));
    }
    Ok(session)
}

/// The session terminal events are for, while it has not ended (`SES_002` once it has).
pub async fn open_session(store: &dyn Store, session_id: Uuid) -> Result<Session> {
    let session = store
        .session_by_id(session_id)
        .await?
        .ok_or_else(not_found)?;
    if session.status.is_ended() {
        return Err(ApiError::new(ErrorCode::SessionTerminated));
    }
    Ok(session)
}

/// `client-session:input|resize|terminate` from a socket authorized on the session's channel,
/// for `session` as [`open_session`] read it.
pub async fn from_client_event(
    store: &dyn Store,
    links: &dyn AgentLinks,
    bus: &EventBus,
    input_log: &InputLog,
    session: &Session,
    event: &str,
    data: &Value,
) -> Result<()> {
    let session_id = session.id;
    match event {
        "client-session:input" => {
            let text = data["data"].as_str().unwrap_or_default().to_owned();
            if text.is_empty() || text.len() > MAX_INPUT_BYTES {
                return Err(ApiError::invalid_field(
                    "data",
                    "1 to 65536 bytes of input.",
                ));
            }
            input_log
                .record(send_input(links, session, text).await?)
                .await;
            Ok(())
        }
        "client-session:resize" => {
            let (cols, rows) = (
                data["cols"].as_i64().unwrap_or(0),
                data["rows"].as_i64().unwrap_or(0),
            );
            let mut v = Validator::new();
            validate_size(&mut v, cols, rows);
            v.finish()?;
            send_resize(store, links, session, cols, rows).await
        }
        "client-session:terminate" => {
            set_status(store, bus, session_id, SessionStatus::Terminated, None).await?;
            let request = AgentRequest::SessionTerminate { session_id };
            let _ = links
                .request(session.machine_id, request, AGENT_TIMEOUT)
                .await;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The host's end of one agent link's session streams: output is published at once, logged
/// in batches, and acknowledged to the agent once stored (so the agent can drop it). Sequence
/// numbers make resends after a reconnect harmless: what was seen is neither published nor
/// logged twice. Only the link's own machine's sessions are accepted.
///
/// A batch is written on a task of its own ([`OutputStreams::start_write`]) while the link
/// goes on publishing output and carrying keystrokes: an echo never waits for the database.
/// The task owns nothing of the link's, so the link may await other writes meanwhile (a
/// write in flight holds SQLite's write lock or the session's row, and finishes on its own).
pub struct OutputStreams {
    store: Arc<dyn Store>,
    machine_id: Uuid,
    /// Highest sequence accepted per session of this machine.
    seen: HashMap<Uuid, u64>,
    batch: Vec<SessionLog>,
    retention: u64,
    /// The one write in flight; one at a time keeps each session's log in order.
    writing: Option<tokio::task::JoinHandle<Result<Vec<Ack>>>>,
}

/// A stored position the agent may forget up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub session_id: Uuid,
    pub seq: u64,
    pub exit_recorded: bool,
}

/// Chunks a link holds unwritten while a write is under way before it waits for the database
/// (the agent's socket holds the rest).
const OUTPUT_BACKLOG: usize = 16 * OUTPUT_BATCH;

impl OutputStreams {
    /// After `hello`: the cursor of each session the agent holds that is this machine's.
    pub async fn open(
        store: Arc<dyn Store>,
        machine_id: Uuid,
        on_agent: &[Uuid],
        retention: u64,
    ) -> Result<(Self, Vec<SessionCursor>)> {
        let mut streams = Self {
            store,
            machine_id,
            seen: HashMap::new(),
            batch: Vec::new(),
            retention,
            writing: None,
        };
        let mut cursors = Vec::new();
        for &id in on_agent {
            if let Some(session) = streams.known(id).await? {
                cursors.push(SessionCursor {
                    session_id: id,
                    acked_seq: session.last_seq.max(0) as u64,
                    ended: session.status.is_ended(),
                });
            }
        }
        Ok((streams, cursors))
    }

    /// The session when it is this machine's (remembering its stored position).
    async fn known(&mut self, id: Uuid) -> Result<Option<Session>> {
        let session = self
            .store
            .session_by_id(id)
            .await?
            .filter(|s| s.machine_id == self.machine_id);
        if let Some(s) = &session {
            self.seen.entry(id).or_insert(s.last_seq.max(0) as u64);
        }
        Ok(session)
    }

    async fn owns(&mut self, id: Uuid) -> Result<bool> {
        Ok(self.seen.contains_key(&id) || self.known(id).await?.is_some())
    }

    /// A chunk of output: published now, written with the batch. Returns the acks of a write
    /// it had to wait for (only when the database is [`OUTPUT_BACKLOG`] chunks behind).
    pub async fn output(
        &mut self,
        bus: &EventBus,
        session_id: Uuid,
        seq: u64,
        data: String,
    ) -> Result<Vec<Ack>> {
        if !self.owns(session_id).await? {
            tracing::warn!(%session_id, "output for a session that is not this machine's; dropped");
            return Ok(Vec::new());
        }
        let seen = self.seen.entry(session_id).or_default();
        if seq <= *seen {
            return Ok(Vec::new());
        }
        *seen = seq;
        ::metrics::counter!(crate::metrics::OUTPUT_BYTES).increment(data.len() as u64);
        publish(
            bus,
            session_id,
            "session:output",
            json!({ "data": data, "seq": seq }),
        );
        self.batch.push(SessionLog {
            seq: Some(seq as i64),
            ..log_entry(session_id, "output", data)
        });
        if self.batch.len() >= OUTPUT_BACKLOG && self.writing.is_some() {
            return self.written().await;
        }
        if self.batch_full() {
            self.start_write();
        }
        Ok(Vec::new())
    }

    /// Whether output waits to be written and no write is under way (the flush timer's cue).
    pub fn due(&self) -> bool {
        !self.batch.is_empty() && self.writing.is_none()
    }

    /// Whether a full batch waits (started at once when the write under way ends).
    fn batch_full(&self) -> bool {
        self.batch.len() >= OUTPUT_BATCH
    }

    pub fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Starts writing the batch on a task of its own, unless a write is under way.
    pub fn start_write(&mut self) {
        if self.writing.is_some() || self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let (store, retention) = (self.store.clone(), self.retention);
        self.writing = Some(tokio::spawn(async move {
            write_batch(store.as_ref(), batch, retention).await
        }));
    }

    /// Waits for the write under way (forever when there is none: a `select!` branch) and
    /// returns what the agent may forget; a full batch waiting meanwhile is started at once.
    /// Cancel-safe: the write goes on and is waited for next time. On an error nothing is
    /// acknowledged: the agent resends.
    pub async fn written(&mut self) -> Result<Vec<Ack>> {
        let Some(writing) = self.writing.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = writing.await;
        self.writing = None;
        let acks = outcome.map_err(ApiError::internal)??;
        // Sessions deleted meanwhile have nowhere to put output: forgotten.
        for ack in acks.iter().filter(|a| a.exit_recorded) {
            self.seen.remove(&ack.session_id);
        }
        if self.batch_full() {
            self.start_write();
        }
        Ok(acks)
    }

    /// Writes everything accepted so far (the write under way, then the rest) and returns
    /// what the agent may now forget.
    pub async fn flush(&mut self) -> Result<Vec<Ack>> {
        let mut acks = Vec::new();
        if self.writing.is_some() {
            acks = self.written().await?;
        }
        self.start_write();
        if self.writing.is_some() {
            acks.extend(self.written().await?);
        }
        Ok(acks)
    }

    /// Token use a session reported (a headless run's result, or its hooks): the session as
    /// it is now, for the budget check.
    pub async fn usage(
        &mut self,
        bus: &EventBus,
        session_id: Uuid,
        total_tokens: i64,
        total_cost: f64,
    ) -> Result<Option<Session>> {
        if !self.owns(session_id).await? {
            return Ok(None);
        }
        let session = self
            .store
            .set_session_usage(session_id, total_tokens, total_cost, clock::now())
            .await?;
        let data = json!({ "total_tokens": total_tokens, "total_cost": total_cost });
        publish(bus, session_id, "session:usage", data);
        Ok(session)
    }

    /// The process ended: its output is stored first, then its status. Returns the
    /// acknowledgements, the last of which lets the agent forget the session.
    pub async fn exit(
        &mut self,
        bus: &EventBus,
        session_id: Uuid,
        exit_code: Option<i32>,
    ) -> Result<Vec<Ack>> {
        let mut acks = self.flush().await?;
        if let Some(session) = self.known(session_id).await? {
            // A run ClaudeNest stopped (its budget) was terminated, whatever its exit code.
            let status = if session.stop_reason.is_some() {
                SessionStatus::Terminated
            } else if exit_code == Some(0) {
                SessionStatus::Completed
            } else {
                SessionStatus::Error
            };
            set_status(self.store.as_ref(), bus, session_id, status, exit_code).await?;
        }
        acks.push(Ack {
            session_id,
            seq: self.seen.remove(&session_id).unwrap_or(0),
            exit_recorded: true,
        });
        Ok(acks)
    }
}

/// Writes a batch (one transaction per session) and applies retention. On an error nothing
/// is acknowledged: the agent resends.
async fn write_batch(
    store: &dyn Store,
    batch: Vec<SessionLog>,
    retention: u64,
) -> Result<Vec<Ack>> {
    let mut by_session: Vec<(Uuid, Vec<SessionLog>)> = Vec::new();
    for chunk in batch {
        match by_session
            .iter_mut()
            .find(|(id, _)| *id == chunk.session_id)
        {
            Some((_, list)) => list.push(chunk),
            None => by_session.push((chunk.session_id, vec![chunk])),
        }
    }
    let mut acks = Vec::with_capacity(by_session.len());
    for (session_id, logs) in by_session {
        let last = logs.iter().filter_map(|l| l.seq).max().unwrap_or(0);
        if let Err(err) = store.append_session_logs(session_id, &logs).await {
            if store.session_by_id(session_id).await?.is_some() {
                return Err(err.into());
            }
            // Deleted meanwhile (API §4.4): its output has nowhere to go, and the agent
            // may forget the session.
            acks.push(Ack {
                session_id,
                seq: last as u64,
                exit_recorded: true,
            });
            continue;
        }
        if retention > 0 && last > retention as i64 {
            store
                .trim_session_output(session_id, last - retention as i64)
                .await?;
        }
        acks.push(Ack {
            session_id,
            seq: last as u64,
            exit_recorded: false,
        });
    }
    Ok(acks)
}

/// On hello: sessions recorded as running on the machine whose processes the agent no longer
/// runs (it restarted, or the machine did) end as `error`.
pub async fn reconcile(
    store: &dyn Store,
    bus: &EventBus,
    machine_id: Uuid,
    running_on_agent: &[Uuid],
) -> Result<()> {
    let (recorded, _) = store
        .sessions_page(machine_id, Some(SessionStatus::Running), 10_000, 0)
        .await?;
    for session in recorded
        .iter()
        .filter(|s| !running_on_agent.contains(&s.id))
    {
        log_error(
            store,
            session.id,
            "The agent restarted; the session's process is gone.",
        )
        .await?;
        set_status(store, bus, session.id, SessionStatus::Error, None).await?;
    }
    Ok(())
}

/// `duration` and `formatted_duration` (API §4.1): from start to end (or now).
pub fn duration(session: &Session, now: DateTime<Utc>) -> (i64, String) {
    let Some(start) = session.started_at else {
        return (0, "0m".into());
    };
    let secs = (session.ended_at.unwrap_or(now) - start)
        .num_seconds()
        .max(0);
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let text = if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m")
    };
    (secs, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_spec() {
        let now = clock::now();
        let mut s = Session {
            id: Uuid::nil(),
            machine_id: Uuid::nil(),
            user_id: Uuid::nil(),
            mode: "interactive".into(),
            project_path: None,
            initial_prompt: None,
            status: SessionStatus::Running,
            cols: 80,
            rows: 24,
            exit_code: None,
            total_tokens: 0,
            total_cost: 0.0,
            ws_token_hash: vec![],
            last_seq: 0,
            started_at: Some(now - chrono::Duration::seconds(3600)),
            ended_at: None,
            created_at: now,
            updated_at: now,
            ws_token_parent: None,
            ws_token_write: false,
            waiting_reason: None,
            waiting_message: None,
            stop_reason: None,
            budget_tokens: None,
            budget_cost: None,
            budget_warned: false,
        };
        assert_eq!(duration(&s, now), (3600, "1h 0m".into()));
        s.ended_at = Some(now - chrono::Duration::seconds(3600 - 125));
        assert_eq!(duration(&s, now), (125, "2m".into()));
    }
}
