//! `GET /api/agent/link`: the agent's WebSocket, authenticated by its `mn_` token in the
//! `Authorization` header (never the query string). Speaks [`crate::protocol`].

use std::time::Duration;

use axum::{
    extract::{
        FromRequestParts, State,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::request::Parts,
    response::Response,
};
use tokio::time::{Instant, MissedTickBehavior};

use super::{credentials::bearer_token, envelope::ErrorEnvelope, extract::ApiWebSocket};
use crate::{
    app::AppState,
    domain::{attention, budgets, machines, mcp, sessions, skills},
    error::{ApiError, ErrorCode, Result},
    links::{Link, LinkError},
    protocol::{
        self, AGENT_MESSAGE_TYPES, AgentMessage, HostMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION,
        close, codes,
    },
    store::Machine,
};

/// Initial read buffer of each link's socket.
const LINK_READ_BUFFER: usize = 4 * 1024;

/// A request made with a machine token (`Authorization: Bearer mn_…`): it acts only on its
/// own machine.
pub struct MachineAuth(pub Machine);

impl FromRequestParts<AppState> for MachineAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated))?;
        machines::authenticate_machine(state.store(), token)
            .await
            .map(MachineAuth)
    }
}

/// Open the agent link (WebSocket upgrade). See docs/agent-protocol.md.
#[utoipa::path(get, path = "/agent/link", tag = "agent", security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the agent link protocol"),
        (status = 401, description = "AUTH_005: missing or unknown machine token", body = ErrorEnvelope),
        (status = 422, description = "VAL_001 on `upgrade`: not a WebSocket upgrade request", body = ErrorEnvelope),
    ))]
pub async fn open_link(
    State(state): State<AppState>,
    MachineAuth(machine): MachineAuth,
    ApiWebSocket(upgrade): ApiWebSocket,
) -> Response {
    let tracker = state.tasks().clone();
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // Links are idle most of the time: tungstenite's default 128 KiB read buffer per link
        // would dominate the host's memory. Frames are small; grow on demand instead.
        .read_buffer_size(LINK_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| tracker.track_future(run_link(state, machine, socket)))
}

async fn send(socket: &mut WebSocket, message: &HostMessage) -> bool {
    socket
        .send(Message::Text(protocol::encode(message).into()))
        .await
        .is_ok()
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = send(
        socket,
        &HostMessage::Goodbye {
            reason: reason.to_owned(),
        },
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await;
}

fn error(reply_to: Option<u64>, code: &str, message: impl Into<String>) -> HostMessage {
    HostMessage::Error {
        reply_to,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Waits for the agent's `hello`; `None` (after telling the agent why) when it does not come.
async fn await_hello(
    socket: &mut WebSocket,
    timeout: Duration,
) -> Option<(protocol::Environment, Vec<uuid::Uuid>)> {
    let first = tokio::time::timeout(timeout, socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(_) => return None,
        Err(_) => {
            close_with(socket, close::PROTOCOL, "no hello within the deadline").await;
            return None;
        }
    };
    match protocol::decode::<AgentMessage>(&text, AGENT_MESSAGE_TYPES) {
        Ok(AgentMessage::Hello {
            protocol_version,
            environment,
            sessions,
        }) if protocol_version == PROTOCOL_VERSION => Some((environment, sessions)),
        Ok(AgentMessage::Hello {
            protocol_version, ..
        }) => {
            let reason = format!(
                "protocol version {protocol_version} is not supported (host speaks {PROTOCOL_VERSION})"
            );
            let _ = send(socket, &error(None, codes::UNEXPECTED, reason.clone())).await;
            close_with(socket, close::PROTOCOL, &reason).await;
            None
        }
        Ok(_) => {
            close_with(socket, close::PROTOCOL, "the first message must be hello").await;
            None
        }
        Err(err) => {
            let _ = send(socket, &error(err.reply_to, err.code, err.message)).await;
            close_with(socket, close::PROTOCOL, "the first message must be hello").await;
            None
        }
    }
}

#[tracing::instrument(skip_all, fields(machine_id = %machine.id))]
async fn run_link(state: AppState, machine: Machine, mut socket: WebSocket) {
    let settings = state.config().agent_link.clone();
    let Some((environment, running)) = await_hello(
        &mut socket,
        Duration::from_secs(settings.hello_timeout_secs),
    )
    .await
    else {
        return;
    };
    if let Err(err) =
        machines::link_opened(state.store(), state.bus(), &machine, &environment).await
    {
        tracing::error!(error = %err, "recording hello failed");
        close_with(&mut socket, 1011, "internal error").await;
        return;
    }
    if let Err(err) = sessions::reconcile(state.store(), state.bus(), machine.id, &running).await {
        tracing::error!(error = %err, "reconciling the machine's sessions failed");
    }
    let retention = state.config().sessions.log_retention_chunks;
    let (mut streams, cursors) =
        match sessions::OutputStreams::open(state.store_arc(), machine.id, &running, retention)
            .await
        {
            Ok(opened) => opened,
            Err(err) => {
                tracing::error!(error = %err, "reading the machine's session cursors failed");
                close_with(&mut socket, 1011, "internal error").await;
                return;
            }
        };
    let (link, mut outbox) = state.links().register(machine.id, close::REPLACED);
    tracing::info!(hostname = %environment.hostname, "agent linked");
    let skill_reports = spawn_machine_work(&state, &machine);
    let presence = *state.presence();
    let welcome = HostMessage::Welcome {
        protocol_version: PROTOCOL_VERSION,
        machine_id: machine.id,
        ping_interval_secs: presence.ping_interval.as_secs(),
        sessions: cursors,
    };
    if send(&mut socket, &welcome).await {
        let mut io = LinkIo {
            socket: &mut socket,
            outbox: &mut outbox,
            streams: &mut streams,
            skill_reports: &skill_reports,
        };
        serve(&state, &link, &mut io, presence).await;
    }
    if state.links().unregister(&link) {
        if let Err(err) = machines::link_closed(state.store(), state.bus(), machine.id).await {
            tracing::error!(error = %err, "recording the link's end failed");
        }
        mcp::on_link_closed(state.store(), machine.id).await;
        tracing::info!("agent link closed; machine offline");
    } else {
        tracing::info!("agent link replaced by a newer one");
    }
}

/// What the link's loop reads from and writes to.
struct LinkIo<'a> {
    socket: &'a mut WebSocket,
    outbox: &'a mut tokio::sync::mpsc::Receiver<HostMessage>,
    streams: &'a mut sessions::OutputStreams,
    /// Skill folder reports, handled in order by the machine's sync task.
    skill_reports: &'a tokio::sync::mpsc::Sender<SkillReport>,
}

type SkillReport = (Vec<protocol::DiskSkill>, Option<Vec<String>>);

/// Skill reports waiting to be applied. An agent polls its folder every few seconds; one that
/// sends faster than the host applies them is cut off (it sends a full report when it links
/// again, so nothing is lost), and the host's memory stays bounded.
const SKILL_REPORT_QUEUE: usize = 16;

/// Work a new link starts beside its loop: the machine's MCP servers (auto-start), and the
/// task that applies its skill reports one after another (each may ask the agent to write, so
/// it cannot run inside the link's loop, which carries the answers).
fn spawn_machine_work(
    state: &AppState,
    machine: &Machine,
) -> tokio::sync::mpsc::Sender<SkillReport> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SkillReport>(SKILL_REPORT_QUEUE);
    let (s, m) = (state.clone(), machine.clone());
    state.tasks().spawn(async move {
        let Ok(deps) = s.deps().await else { return };
        mcp::on_link_opened(deps, &m).await;
    });
    let (s, m) = (state.clone(), machine.clone());
    state.tasks().spawn(async move {
        let Ok(deps) = s.deps().await else { return };
        while let Some((disk, present)) = rx.recv().await {
            skills::sync_from_disk(deps, &m, disk, present).await;
        }
    });
    tx
}

/// Tells the agent what is stored; `false` when the socket is gone.
async fn send_acks(socket: &mut WebSocket, acks: Vec<sessions::Ack>) -> bool {
    for ack in acks {
        let message = HostMessage::SessionAck {
            session_id: ack.session_id,
            seq: ack.seq,
            exit_recorded: ack.exit_recorded,
        };
        if !send(socket, &message).await {
            return false;
        }
    }
    true
}

/// Sends the acks of a write; a store error closes the link (the agent reconnects and resends
/// what was not acknowledged). `false` when the link is done.
async fn acknowledge(written: Result<Vec<sessions::Ack>>, io: &mut LinkIo<'_>) -> bool {
    match written {
        Ok(acks) => send_acks(io.socket, acks).await,
        Err(err) => {
            tracing::error!(error = %err, "storing session output failed; the agent will resend");
            close_with(io.socket, 1011, "storing session output failed").await;
            false
        }
    }
}

/// The link's main loop: frames in, frames out, pings, and the reasons to stop.
async fn serve(
    state: &AppState,
    link: &Link,
    io: &mut LinkIo<'_>,
    presence: machines::PresenceSettings,
) {
    let mut ticker = tokio::time::interval(presence.ping_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut nonce = 0u64;
    // The ping awaiting its pong, and when it is overdue.
    let mut awaiting: Option<(u64, Instant)> = None;
    let mut flush = tokio::time::interval(sessions::OUTPUT_FLUSH);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Made once, not per turn: the loop turns once per message, and a fresh `cancelled()`
    // registers with its token (the shutdown one is shared by every link and socket) each poll.
    let closing = link.closing().clone().cancelled_owned();
    let stopping = state.shutdown().clone().cancelled_owned();
    tokio::pin!(closing, stopping);
    // Every way out of the loop below returns from this block, so the batch is always flushed.
    async {
    loop {
        let overdue = awaiting.map(|(_, at)| at);
        tokio::select! {
            incoming = io.socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = send(io.socket, &error(None, codes::BAD_MESSAGE, "binary frames are not part of the protocol")).await;
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                };
                match protocol::decode::<AgentMessage>(&text, AGENT_MESSAGE_TYPES) {
                    Ok(AgentMessage::Pong { nonce: n }) => {
                        if awaiting.is_some_and(|(expected, _)| expected == n) {
                            awaiting = None;
                            if let Err(err) = machines::link_alive(state.store(), link.machine_id).await {
                                tracing::warn!(error = %err, "recording presence failed");
                            }
                        }
                    }
                    Ok(AgentMessage::Reply { reply_to, result }) => {
                        if !link.resolve(reply_to, Ok(result)) {
                            tracing::debug!(reply_to, "reply nobody waits for (timed out?)");
                        }
                    }
                    Ok(AgentMessage::Error { reply_to: Some(id), code, message }) => {
                        link.resolve(id, Err(LinkError::Agent { code, message }));
                    }
                    Ok(AgentMessage::Error { reply_to: None, code, message }) => {
                        tracing::warn!(code, message, "agent reported an error");
                    }
                    Ok(AgentMessage::SessionOutput { session_id, seq, data }) => {
                        let written = io.streams.output(state.bus(), session_id, seq, data).await;
                        if !acknowledge(written, io).await {
                            return;
                        }
                    }
                    Ok(AgentMessage::SessionUsage { session_id, total_tokens, total_cost }) => {
                        match io.streams.usage(state.bus(), session_id, total_tokens, total_cost).await {
                            Ok(Some(session)) => {
                                // Stopping a run asks the agent, whose answer comes through
                                // this loop: checked beside it.
                                let state = state.clone();
                                tokio::spawn(async move {
                                    if let Err(err) = budgets::check(state.store(), state.bus(), state.agent_links(), state.notifier(), &session).await {
                                        tracing::error!(error = %err, session_id = %session.id, "checking a session's budget failed");
                                    }
                                });
                            }
                            Ok(None) => {}
                            Err(err) => tracing::error!(error = %err, %session_id, "recording a session's usage failed"),
                        }
                    }
                    Ok(AgentMessage::SessionHook { session_id, hook }) => {
                        if let Err(err) = attention::on_hook(state.store(), state.bus(), state.notifier(), link.machine_id, session_id, hook).await {
                            tracing::error!(error = %err, %session_id, "recording a session's hook report failed");
                        }
                    }
                    Ok(AgentMessage::SessionExit { session_id, exit_code }) => {
                        match io.streams.exit(state.bus(), session_id, exit_code).await {
                            Ok(acks) => if !send_acks(io.socket, acks).await { return },
                            Err(err) => {
                                // Not acknowledged: the agent sends the exit again on its next link.
                                tracing::error!(error = %err, %session_id, "recording a session's exit failed");
                                close_with(io.socket, 1011, "internal error").await;
                                return;
                            }
                        }
                    }
                    Ok(AgentMessage::SkillsReport { skills, present }) => {
                        // Waiting here could deadlock (applying a report asks the agent things
                        // whose answers come through this loop): a full queue ends the link.
                        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) =
                            io.skill_reports.try_send((skills, present))
                        {
                            tracing::warn!(machine_id = %link.machine_id, "skill reports arrive faster than they are applied; closing the link");
                            close_with(io.socket, 1008, "skill reports arrive too fast").await;
                            return;
                        }
                    }
                    Ok(AgentMessage::McpStatus { name, status, error, tools }) => {
                        tracing::info!(server = %name, status, "MCP server status from the agent");
                        mcp::on_status(state.store(), link.machine_id, &name, status, error, tools).await;
                    }
                    Ok(AgentMessage::Hello { .. }) => {
                        let _ = send(io.socket, &error(None, codes::UNEXPECTED, "hello was already received")).await;
                    }
                    Err(err) => {
                        tracing::debug!(code = err.code, message = %err.message, "undecodable frame");
                        let _ = send(io.socket, &error(err.reply_to, err.code, err.message)).await;
                    }
                }
            }
            Some(message) = io.outbox.recv() => {
                if !send(io.socket, &message).await {
                    return;
                }
            }
            _ = flush.tick(), if io.streams.due() => io.streams.start_write(),
            written = io.streams.written(), if io.streams.is_writing() => {
                if !acknowledge(written, io).await {
                    return;
                }
            }
            _ = ticker.tick(), if awaiting.is_none() => {
                nonce += 1;
                awaiting = Some((nonce, Instant::now() + presence.pong_timeout));
                if !send(io.socket, &HostMessage::Ping { nonce }).await {
                    return;
                }
            }
            () = sleep_until_some(overdue) => {
                tracing::warn!("no pong within the deadline; closing the link");
                close_with(io.socket, close::PONG_TIMEOUT, "pong timeout").await;
                return;
            }
            () = &mut closing => {
                let (code, reason) = link.close_reason().unwrap_or((close::REVOKED, "closed".into()));
                close_with(io.socket, code, &reason).await;
                return;
            }
            () = &mut stopping => {
                close_with(io.socket, close::SHUTDOWN, "host shutting down").await;
                return;
            }
        }
    }
    }
    .await;
    let written = io.streams.flush().await;
    acknowledge(written, io).await;
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
