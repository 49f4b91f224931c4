//! The Pusher Channels protocol (v7) as Laravel Reverb serves it, so `pusher-js` and Laravel
//! Echo connect unchanged (API §11; details in docs/realtime.md):
//!
//! - `GET /app/{key}`: the WebSocket.
//! - `POST /api/broadcasting/auth`: signs private/presence subscriptions for a signed-in user.
//! - `POST /apps/{app_id}/events`, `/batch_events`: the signed HTTP publishing API.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{
        FromRequest, Request, State,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, Reply},
    extract::{ApiPath, ApiQuery, ApiWebSocket},
};
use crate::{
    app::{AppState, PusherApp},
    domain::{
        channels::{self, ChannelKind},
        sessions,
    },
    error::{ApiError, ErrorCode, Result, Validator},
    events::Event,
    realtime::{self, Frame, SocketHandle},
};

/// How long a client has to answer the server's `pusher:ping` (Pusher's 30 s, or the
/// activity timeout when that is shorter).
const PONG_WAIT: Duration = Duration::from_secs(30);

/// `/app/{key}` (new connections rate limited per client IP) and the publishing API,
/// outside `/api` where Pusher clients look for them.
pub fn root_router(state: &AppState) -> OpenApiRouter<AppState> {
    let socket = OpenApiRouter::new().routes(routes!(socket)).route_layer(
        axum::middleware::from_fn_with_state(
            state.websocket_limiter(),
            super::rate_limit::per_client_ip,
        ),
    );
    OpenApiRouter::new()
        .merge(socket)
        .routes(routes!(publish_event))
        .routes(routes!(publish_batch))
}

/// `/api/broadcasting/auth` (needs a user token).
pub fn authenticated_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(authorize_channel))
}

// --- signatures -----------------------------------------------------------------------------

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `key:hex(HMAC-SHA256(secret, "socket_id:channel[:channel_data]"))`.
fn channel_auth(app: &PusherApp, socket_id: &str, channel: &str, data: Option<&str>) -> String {
    let message = match data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{}:{}", app.key, hmac_hex(&app.secret, &message))
}

/// The signature of a watch-only subscription: the same form as [`channel_auth`] (pusher-js
/// passes it through unchanged), over the message with a suffix no channel name or socket id
/// can contain. The socket that verifies it knows, from which of the two matches, whether the
/// subscriber may send client events — whichever host process signed it.
fn watch_only_auth(app: &PusherApp, socket_id: &str, channel: &str, data: Option<&str>) -> String {
    let message = match data {
        Some(data) => format!("{socket_id}:{channel}:{data}\0watch-only"),
        None => format!("{socket_id}:{channel}\0watch-only"),
    };
    format!("{}:{}", app.key, hmac_hex(&app.secret, &message))
}

/// How a subscription's signature verifies: not at all, watch-only, or in full.
fn verify_auth(
    app: &PusherApp,
    socket_id: &str,
    channel: &str,
    data: Option<&str>,
    auth: &str,
) -> Option<bool> {
    if super::credentials::same_secret(auth, &channel_auth(app, socket_id, channel, data)) {
        Some(true)
    } else if super::credentials::same_secret(auth, &watch_only_auth(app, socket_id, channel, data))
    {
        Some(false)
    } else {
        None
    }
}

fn is_socket_id(text: &str) -> bool {
    text.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

// --- the channel authorization endpoint --------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChannelAuthRequest {
    /// The `socket_id` from `pusher:connection_established`.
    pub socket_id: String,
    pub channel_name: String,
}

/// pusher-js reads `auth` (and `channel_data`) at the top level; the envelope rides along.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelAuthResponse {
    pub auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    pub success: bool,
    pub data: ChannelAuthData,
    pub meta: super::envelope::Meta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelAuthData {
    pub auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
}

/// Who asks for a channel signature: a user, or a session's `ws_` token.
pub struct ChannelCaller(channels::Caller);

impl axum::extract::FromRequestParts<AppState> for ChannelCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self> {
        let bearer = super::credentials::bearer_token(&parts.headers);
        if let Some(token) = bearer.filter(|t| t.starts_with(sessions::WS_TOKEN_PREFIX)) {
            let session = sessions::by_ws_token(state.store(), token).await?;
            return Ok(ChannelCaller(channels::Caller::Session(Box::new(session))));
        }
        // Through the REST door's extractor: its rate limits and checks apply.
        let AuthUser(principal) = AuthUser::from_request_parts(parts, state).await?;
        Ok(ChannelCaller(channels::Caller::User(principal)))
    }
}

/// The body as pusher-js sends it (form-encoded) or as JSON.
pub struct FormOrJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for FormOrJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|r| ApiError::invalid_field("body", r.body_text()))?;
            serde_urlencoded::from_bytes(&bytes)
                .map(FormOrJson)
                .map_err(|e| ApiError::invalid_field("body", format!("The form is invalid: {e}.")))
        } else {
            let super::extract::ApiJson(value) =
                super::extract::ApiJson::<T>::from_request(req, state).await?;
            Ok(FormOrJson(value))
        }
    }
}

/// Sign a private or presence channel subscription for this socket (pusher-js's auth endpoint).
#[utoipa::path(post, path = "/broadcasting/auth", tag = "realtime", security(("bearer" = [])),
    request_body(content = ChannelAuthRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = ChannelAuthResponse),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Not your channel", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn authorize_channel(
    State(state): State<AppState>,
    ChannelCaller(caller): ChannelCaller,
    FormOrJson(req): FormOrJson<ChannelAuthRequest>,
) -> Result<Response> {
    Validator::new()
        .check(
            is_socket_id(&req.socket_id),
            "socket_id",
            "The socket id must look like 123.456.",
        )
        .check(
            channels::is_valid_name(&req.channel_name),
            "channel_name",
            "The channel name is not valid.",
        )
        .finish()?;
    let kind = ChannelKind::of(&req.channel_name);
    if kind == ChannelKind::Public {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .with_message("Public channels need no authorization."));
    }
    let channels::Admission { access, member } =
        channels::admit(state.store(), &caller, &req.channel_name).await?;
    let writable = access.writable;
    let channel_data = (kind == ChannelKind::Presence).then(|| member.to_string());
    let sign = if writable {
        channel_auth
    } else {
        watch_only_auth
    };
    let auth = sign(
        state.pusher(),
        &req.socket_id,
        &req.channel_name,
        channel_data.as_deref(),
    );
    let body = ChannelAuthResponse {
        auth: auth.clone(),
        channel_data: channel_data.clone(),
        success: true,
        data: ChannelAuthData { auth, channel_data },
        meta: super::envelope::Meta::current(),
    };
    Ok(axum::Json(body).into_response())
}

// --- the WebSocket ------------------------------------------------------------------------------

/// The Pusher-protocol WebSocket (`?protocol=7&client=js&version=…`).
#[utoipa::path(get, path = "/app/{key}", tag = "realtime",
    params(("key" = String, Path, description = "The Pusher app key")),
    responses(
        (status = 101, description = "Switching to the Pusher protocol"),
        (status = 422, description = "Not a WebSocket upgrade", body = ErrorEnvelope),
    ))]
pub async fn socket(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    super::auth::ClientAddress(address): super::auth::ClientAddress,
    ApiWebSocket(upgrade): ApiWebSocket,
) -> Result<Response> {
    let per_address = state.config().rate_limits.websocket_connections_per_address;
    let slot = state
        .hub()
        .open_from(crate::limits::address_key(address), per_address);
    let max = state.config().pusher_max_message_bytes;
    let tracker = state.tasks().clone();
    Ok(upgrade
        // Over the limit is answered with close 1009 by the socket task; far over it, the
        // WebSocket layer itself refuses the frame.
        .max_message_size(max.saturating_mul(4).max(64 * 1024))
        // Small buffers: 10,000 idle sockets hold little. Frames written together (a busy
        // outbox, `send_outbox`) collect up to WRITE_BATCH_BYTES before a write, so one
        // system call carries many; a lone frame is written at its flush.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(WRITE_BATCH_BYTES)
        .on_upgrade(move |mut ws| {
            tracker.track_future(async move {
                // Counted while it is open; one over the address's quota is told why.
                let Some(_slot) = slot else {
                    say_ending(&mut ws, &Ending::error(4004, "Over connection quota")).await;
                    return;
                };
                run_socket(state, key, ws).await
            })
        }))
}

/// What one connection may do: channels it is in, messages per second (terminal keystrokes
/// included: key repeat and fast typing stay far below), and client events per second on other
/// than session channels (Pusher's own limit). Over them it is told with an error, never
/// dropped without a word.
const MAX_CHANNELS_PER_CONNECTION: usize = 100;
const MESSAGES_PER_SECOND: u32 = 1000;
const CLIENT_EVENTS_PER_SECOND: u32 = 10;

/// A fixed one-second window.
struct PerSecond {
    limit: u32,
    started: Instant,
    count: u32,
}

impl PerSecond {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            started: Instant::now(),
            count: 0,
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.started) >= Duration::from_secs(1) {
            self.started = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= self.limit
    }
}

/// The reader's way to the socket: replies share the outbox with deliveries, so the order the
/// reader decides (a subscription's success before its channel's events) is the order sent.
type Replies = mpsc::Sender<Frame>;

/// Queues a frame for the writer; `false` when the socket is gone.
async fn send_frame(out: &Replies, event: &str, channel: Option<&str>, data: &Value) -> bool {
    out.send(realtime::frame(event, channel, data))
        .await
        .is_ok()
}

async fn send_error(out: &Replies, code: u16, message: &str) -> bool {
    out.send(error_frame(code, message)).await.is_ok()
}

fn error_frame(code: u16, message: &str) -> Frame {
    realtime::frame(
        "pusher:error",
        None,
        &json!({ "code": code, "message": message }),
    )
}

/// Why the reader ends a socket: a `pusher:error` to send first (when Pusher's protocol
/// says so), and the close frame.
struct Ending {
    error: bool,
    code: u16,
    reason: &'static str,
}

impl Ending {
    const fn close(code: u16, reason: &'static str) -> Self {
        Self {
            error: false,
            code,
            reason,
        }
    }

    const fn error(code: u16, reason: &'static str) -> Self {
        Self {
            error: true,
            code,
            reason,
        }
    }
}

/// Says why (when the ending has a `pusher:error`) and closes: the writer's last words, and
/// a socket's refused before its loops start.
async fn say_ending<S>(sink: &mut S, ending: &Ending)
where
    S: futures_util::Sink<Message> + Unpin,
{
    use futures_util::SinkExt as _;
    if ending.error
        && sink
            .feed(Message::Text(error_frame(ending.code, ending.reason)))
            .await
            .is_err()
    {
        return;
    }
    let close = CloseFrame {
        code: ending.code,
        reason: ending.reason.into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
}

/// Bytes of frames a socket gathers before writing them (see `send_outbox`).
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// Frames written from the outbox before one flush.
const OUTBOX_BATCH: usize = 64;

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Writes `first` and whatever else waits in the outbox (up to [`OUTBOX_BATCH`]) with one
/// flush: under load a socket makes one write for many frames instead of one each, which
/// saves system calls and keeps a busy socket from falling behind the others.
async fn send_outbox(sink: &mut Sink, first: Frame, frames: &mut mpsc::Receiver<Frame>) -> bool {
    use futures_util::SinkExt as _;
    if sink.feed(Message::Text(first)).await.is_err() {
        return false;
    }
    for _ in 1..OUTBOX_BATCH {
        let Ok(frame) = frames.try_recv() else { break };
        if sink.feed(Message::Text(frame)).await.is_err() {
            return false;
        }
    }
    sink.flush().await.is_ok()
}

/// A socket's writer, a task of its own: it waits on nothing but its outbox and the reader's
/// ending, so delivering a frame wakes and polls no more than that (the reader, with its
/// socket read, timers and tokens, sleeps until the client speaks). When it stops it tells
/// the reader through `done`.
async fn write_frames(
    mut sink: Sink,
    mut frames: mpsc::Receiver<Frame>,
    ending: tokio::sync::oneshot::Receiver<Option<Ending>>,
    overflowed: Arc<AtomicBool>,
    done: CancellationToken,
) {
    tokio::pin!(ending);
    let close = loop {
        tokio::select! {
            // Frames first: what the reader queued before it ended goes out before the close.
            biased;
            Some(frame) = frames.recv() => {
                if !send_outbox(&mut sink, frame, &mut frames).await {
                    break None;
                }
                // The hub found the outbox full (so this loop had frames to wake for).
                if overflowed.load(Ordering::Relaxed) {
                    break Some(Ending::error(4100, "Over capacity"));
                }
            }
            ending = &mut ending => break ending.ok().flatten(),
        }
    };
    done.cancel();
    if let Some(ending) = close {
        say_ending(&mut sink, &ending).await;
    }
}

/// One connection's state.
struct Connection {
    socket_id: String,
    handle: SocketHandle,
    /// Channels this socket is in, and whether it may send client events there.
    channels: HashMap<String, (ChannelKind, bool)>,
    messages: PerSecond,
    client_events: PerSecond,
    /// Terminal events (`client-session:*`) on their way to the machines, one at a time in the
    /// order typed: each keystroke is a message of its own, and handling them side by side let
    /// later ones overtake earlier ones. Started at the first such event.
    terminal: Option<mpsc::Sender<TerminalEvent>>,
}

/// A `client-session:*` event for a session's machine.
struct TerminalEvent {
    session_id: uuid::Uuid,
    name: String,
    data: Value,
}

/// Terminal events a socket may have waiting for its machine (a paste of 64 KiB in the
/// dashboard's 1,500-character pieces is 44); over it the event is refused with 4301.
const TERMINAL_QUEUE: usize = 256;

/// How long keystrokes use the session as read for an earlier one.
const SESSION_REREAD: Duration = Duration::from_secs(1);

/// Hands a socket's terminal events to the session's machine, in order.
async fn route_terminal_events(state: AppState, mut events: mpsc::Receiver<TerminalEvent>) {
    // Keystrokes come many a second: each waits for the machine, not for reading the session
    // again (which machine, which mode) within SESSION_REREAD. An ended session is noticed by
    // the next read, and its machine refuses input meanwhile; other events read it afresh.
    let mut known: Option<(crate::store::Session, Instant)> = None;
    let (input_log, writer) = sessions::InputLog::new(state.store_arc());
    state.tasks().spawn(writer);
    while let Some(TerminalEvent {
        session_id,
        name,
        data,
    }) = events.recv().await
    {
        let routed = async {
            let reuse = name == "client-session:input"
                && known
                    .as_ref()
                    .is_some_and(|(s, at)| s.id == session_id && at.elapsed() < SESSION_REREAD);
            if !reuse {
                let session = sessions::open_session(state.store(), session_id).await?;
                known = Some((session, Instant::now()));
            }
            let (session, _) = known.as_ref().expect("read above");
            sessions::from_client_event(
                state.store(),
                state.agent_links(),
                state.bus(),
                &input_log,
                session,
                &name,
                &data,
            )
            .await
        }
        .await;
        match routed {
            Ok(()) => tracing::debug!(%session_id, event = name, "terminal event routed"),
            Err(err) => {
                tracing::debug!(%session_id, event = name, error = %err, "client session event refused");
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(socket_id))]
async fn run_socket(state: AppState, key: String, mut ws: WebSocket) {
    use futures_util::StreamExt as _;
    let app = state.pusher().clone();
    if !super::credentials::same_secret(&key, &app.key) {
        say_ending(&mut ws, &Ending::error(4001, "Application does not exist")).await;
        return;
    }
    let socket_id = {
        use rand::Rng as _;
        let mut rng = rand::rng();
        format!(
            "{}.{}",
            rng.random_range(1..1_000_000_000u32),
            rng.random_range(1..1_000_000_000u32)
        )
    };
    tracing::Span::current().record("socket_id", socket_id.as_str());
    let activity_timeout = Duration::from_secs(state.config().pusher_activity_timeout_secs.max(1));
    let (outbox, frames) = mpsc::channel::<Frame>(realtime::OUTBOX_CAPACITY);
    let established = json!({
        "socket_id": socket_id,
        "activity_timeout": activity_timeout.as_secs(),
    });
    let established = realtime::frame("pusher:connection_established", None, &established);
    if ws.send(Message::Text(established)).await.is_err() {
        return;
    }
    let _open = crate::metrics::Held::new(crate::metrics::WEBSOCKET_CONNECTIONS);
    let mut conn = Connection {
        socket_id,
        handle: SocketHandle {
            outbox,
            overflowed: Arc::default(),
        },
        channels: HashMap::new(),
        messages: PerSecond::new(MESSAGES_PER_SECOND),
        client_events: PerSecond::new(CLIENT_EVENTS_PER_SECOND),
        terminal: None,
    };
    let (sink, stream) = ws.split();
    // A child of the server's: cancelled by shutting down or by the writer stopping.
    let done = state.shutdown().child_token();
    let (end, ending) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn(write_frames(
        sink,
        frames,
        ending,
        conn.handle.overflowed.clone(),
        done.clone(),
    ));
    let why = read_messages(&state, &app, &mut conn, stream, activity_timeout, done).await;
    let _ = end.send(why);
    let _ = writer.await;
    for channel in conn.channels.keys() {
        state.hub().unsubscribe(channel, &conn.socket_id);
    }
}

/// A socket's reader: client messages, the activity timeout's pings, and the reasons to stop.
/// Returns how to close the socket (`None`: it is already gone).
async fn read_messages(
    state: &AppState,
    app: &PusherApp,
    conn: &mut Connection,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    activity_timeout: Duration,
    done: CancellationToken,
) -> Option<Ending> {
    use futures_util::StreamExt as _;
    let max_message = state.config().pusher_max_message_bytes;
    let out = conn.handle.outbox.clone();
    let done = done.cancelled_owned();
    // Fires `activity_timeout` after the last message in; checked lazily, so a message in only
    // moves `last_activity`.
    let idle = tokio::time::sleep(activity_timeout);
    let pong = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(done, idle, pong);
    let mut last_activity = Instant::now();
    let mut awaiting_pong = false;
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_activity = Instant::now();
                        awaiting_pong = false;
                        continue;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if !send_error(&out, 4200, "Invalid message format").await {
                            return None;
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                };
                last_activity = Instant::now();
                awaiting_pong = false;
                if text.len() > max_message {
                    return Some(Ending::close(1009, "Maximum message size exceeded"));
                }
                if !handle_message(state, app, conn, &out, &text).await {
                    return None;
                }
            }
            () = &mut idle, if !awaiting_pong => {
                let idle_at = last_activity + activity_timeout;
                if idle_at > Instant::now() {
                    idle.as_mut().reset(idle_at);
                    continue;
                }
                if !send_frame(&out, "pusher:ping", None, &json!({})).await {
                    return None;
                }
                awaiting_pong = true;
                pong.as_mut().reset(Instant::now() + PONG_WAIT.min(activity_timeout));
                // Counted again from the ping's answer.
                idle.as_mut().reset(Instant::now() + activity_timeout);
            }
            () = &mut pong, if awaiting_pong => {
                return Some(Ending::error(4201, "Pong reply not received in time"));
            }
            () = &mut done => {
                // 4200: pusher-js reconnects at once (to another node, or this one restarted).
                // Otherwise the writer stopped, and closed the socket itself.
                return state.shutdown().is_cancelled().then(|| Ending::close(4200, "Server restarting"));
            }
        }
    }
}

/// A client → server message: `data` is an object (or, from some clients, a string).
#[derive(Deserialize)]
struct ClientMessage {
    event: String,
    #[serde(default)]
    data: Value,
    channel: Option<String>,
}

/// Handles one message; false when the socket must close.
async fn handle_message(
    state: &AppState,
    app: &PusherApp,
    conn: &mut Connection,
    out: &Replies,
    text: &str,
) -> bool {
    if !conn.messages.allow() {
        // Told once per window; the rest of the burst is dropped.
        if conn.messages.count == conn.messages.limit + 1 {
            return send_error(out, 4302, "Too many messages: at most 1000 a second").await;
        }
        return true;
    }
    let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
        return send_error(out, 4200, "Invalid message format").await;
    };
    // Some clients send `data` as a JSON string: accept both.
    let data = match message.data {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    };
    match message.event.as_str() {
        "pusher:ping" => send_frame(out, "pusher:pong", None, &json!({})).await,
        "pusher:pong" => true,
        "pusher:subscribe" => subscribe(state, app, conn, out, &data).await,
        "pusher:unsubscribe" => {
            if let Some(channel) = data.get("channel").and_then(Value::as_str)
                && conn.channels.remove(channel).is_some()
            {
                state.hub().unsubscribe(channel, &conn.socket_id);
            }
            true
        }
        name if name.starts_with("client-") => {
            client_event(state, conn, out, name, message.channel, data).await
        }
        _ => send_error(out, 4200, "Invalid message format").await,
    }
}

/// A subscription refused: the status and message for `pusher:subscription_error`.
type Refusal = (u16, String);
/// Admitted: whether client events may be sent, and the presence member (`user_id`,
/// `user_info`).
type Admitted = (bool, Option<(String, Value)>);

fn presence_member(
    kind: ChannelKind,
    member: &Value,
) -> std::result::Result<Option<(String, Value)>, Refusal> {
    if kind != ChannelKind::Presence {
        return Ok(None);
    }
    let user_id = match &member["user_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err((400, "The channel data has no user_id".to_owned())),
    };
    Ok(Some((user_id, member["user_info"].clone())))
}

/// A signed subscription (`auth: "key:signature"`, with `channel_data` on presence channels).
fn signature_admission(
    app: &PusherApp,
    socket_id: &str,
    kind: ChannelKind,
    channel: &str,
    auth: &str,
    channel_data: Option<&str>,
) -> std::result::Result<Admitted, Refusal> {
    let unauthorized = || (401, "Connection is unauthorized".to_owned());
    let data = if kind == ChannelKind::Presence {
        Some(channel_data.ok_or_else(unauthorized)?)
    } else {
        None
    };
    let writable = verify_auth(app, socket_id, channel, data, auth).ok_or_else(unauthorized)?;
    let member: Value = data
        .map(|cd| serde_json::from_str(cd).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    Ok((writable, presence_member(kind, &member)?))
}

/// A subscription carrying a token: `{token: "…"}` or `{headers: {Authorization: "Bearer …"}}`.
async fn token_admission(
    state: &AppState,
    kind: ChannelKind,
    channel: &str,
    auth: &serde_json::Map<String, Value>,
) -> std::result::Result<Admitted, Refusal> {
    let header = auth
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        })
        .and_then(|(_, value)| value.as_str())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        });
    let token = auth
        .get("token")
        .and_then(Value::as_str)
        .or(header)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| (401, "The subscription carries no token".to_owned()))?;
    let refused = |err: ApiError| (err.code().status().as_u16(), err.message().to_owned());
    let caller = channels::Caller::from_token(state.store(), token)
        .await
        .map_err(refused)?;
    let admission = channels::admit(state.store(), &caller, channel)
        .await
        .map_err(refused)?;
    Ok((
        admission.access.writable,
        presence_member(kind, &admission.member)?,
    ))
}

async fn subscribe(
    state: &AppState,
    app: &PusherApp,
    conn: &mut Connection,
    out: &Replies,
    data: &Value,
) -> bool {
    let Some(channel) = data
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| channels::is_valid_name(c))
    else {
        return send_error(out, 4200, "Invalid message format").await;
    };
    if conn.channels.len() >= MAX_CHANNELS_PER_CONNECTION && !conn.channels.contains_key(channel) {
        return send_frame(
            out,
            "pusher:subscription_error",
            Some(channel),
            &json!({ "type": "LimitReached", "error": "A connection may be in at most 100 channels", "status": 429 }),
        )
        .await;
    }
    let kind = ChannelKind::of(channel);
    let admitted = match (kind, data.get("auth")) {
        (ChannelKind::Public, _) => Ok((false, None)),
        // API §11.2 and §11.4: a token inside the subscription, `{headers: {Authorization:
        // "Bearer cn_…"}}` or `{token: "ws_…"}`, decided by the signing endpoint's rule.
        (_, Some(Value::Object(auth))) => token_admission(state, kind, channel, auth).await,
        // pusher-js: a signature from `POST /api/broadcasting/auth`.
        (_, auth) => signature_admission(
            app,
            &conn.socket_id,
            kind,
            channel,
            auth.and_then(Value::as_str).unwrap_or(""),
            data.get("channel_data").and_then(Value::as_str),
        ),
    };
    let (writable, member) = match admitted {
        Ok(admitted) => admitted,
        Err((status, error)) => {
            tracing::debug!(channel, error, "subscription refused");
            // Only this channel is refused: the socket and its other channels stay.
            let kind = if status == 403 {
                "Forbidden"
            } else {
                "AuthError"
            };
            return send_frame(
                out,
                "pusher:subscription_error",
                Some(channel),
                &json!({ "type": kind, "error": error, "status": status }),
            )
            .await;
        }
    };
    // The hub answers the subscription itself, ahead of any event of the channel.
    state
        .hub()
        .subscribe(channel, &conn.socket_id, conn.handle.clone(), member);
    conn.channels.insert(channel.to_owned(), (kind, writable));
    true
}

/// `client-*` events: only on private/presence channels the sender is in; never echoed.
async fn client_event(
    state: &AppState,
    conn: &mut Connection,
    out: &Replies,
    name: &str,
    channel: Option<String>,
    data: Value,
) -> bool {
    let Some(channel) = channel else {
        return send_error(out, 4200, "Invalid message format").await;
    };
    let terminal = channel.starts_with("private-session.") && name.starts_with("client-session:");
    if !terminal && !conn.client_events.allow() {
        return send_error(
            out,
            4301,
            "Client event rejected due to rate limit: at most 10 a second",
        )
        .await;
    }
    match conn.channels.get(&channel) {
        Some((ChannelKind::Private | ChannelKind::Presence, true)) => {}
        Some((ChannelKind::Private | ChannelKind::Presence, false)) => {
            return send_error(
                out,
                4301,
                "This subscription may only watch: its token lacks the write ability",
            )
            .await;
        }
        Some((ChannelKind::Public, _)) => {
            return send_error(
                out,
                4301,
                "Client events are only allowed on private and presence channels",
            )
            .await;
        }
        None => {
            return send_error(out, 4009, "The client is not subscribed to this channel").await;
        }
    }
    // Terminal events on a session channel go to the session's machine too (§11.3).
    if let Some(session_id) = channel
        .strip_prefix("private-session.")
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        && name.starts_with("client-session:")
    {
        let queue = conn.terminal.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(TERMINAL_QUEUE);
            tokio::spawn(route_terminal_events(state.clone(), rx));
            tx
        });
        let event = TerminalEvent {
            session_id,
            name: name.to_owned(),
            data: data.clone(),
        };
        if queue.try_send(event).is_err() {
            return send_error(
                out,
                4301,
                "Too many terminal events waiting for the machine: slow down",
            )
            .await;
        }
    }
    state.bus().publish(Event {
        channel,
        name: name.to_owned(),
        data,
        except_socket: Some(conn.socket_id.clone()),
    });
    true
}

// --- the HTTP publishing API ---------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    pub auth_key: String,
    pub auth_timestamp: i64,
    pub auth_version: String,
    pub body_md5: Option<String>,
    pub auth_signature: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PublishRequest {
    pub name: String,
    /// The event's payload, usually a JSON string.
    #[schema(value_type = Object)]
    pub data: Value,
    pub channels: Option<Vec<String>>,
    pub channel: Option<String>,
    /// A socket that must not receive the event.
    pub socket_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    pub batch: Vec<PublishRequest>,
}

/// Checks Pusher's request signature: key, timestamp within ±600 s, body MD5 and HMAC.
fn verify_signed(
    app: &PusherApp,
    method: &str,
    path: &str,
    raw_query: &str,
    query: &SignedQuery,
    body: &[u8],
) -> Result<()> {
    let unauthorized =
        |why: &str| ApiError::new(ErrorCode::Unauthenticated).with_message(why.to_owned());
    if !super::credentials::same_secret(&query.auth_key, &app.key) {
        return Err(unauthorized("Unknown auth_key."));
    }
    let now = chrono::Utc::now().timestamp();
    if (now - query.auth_timestamp).abs() > 600 {
        return Err(unauthorized("auth_timestamp is more than 600 s away."));
    }
    if query.auth_version != "1.0" {
        return Err(unauthorized("auth_version must be 1.0."));
    }
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(body))
    };
    if !body.is_empty() && query.body_md5.as_deref() != Some(md5.as_str()) {
        return Err(unauthorized("body_md5 does not match the body."));
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let expected = hmac_hex(&app.secret, &format!("{method}\n{path}\n{canonical}"));
    if !super::credentials::same_secret(&expected, &query.auth_signature) {
        return Err(unauthorized("auth_signature does not match."));
    }
    Ok(())
}

fn publish_all(state: &AppState, requests: Vec<PublishRequest>) -> Result<()> {
    let mut v = Validator::new();
    for req in &requests {
        let channels: Vec<&String> = req.channels.iter().flatten().chain(&req.channel).collect();
        v.check(
            (1..=100).contains(&channels.len()),
            "channels",
            "Give between 1 and 100 channels.",
        );
        for c in &channels {
            v.check(
                channels::is_valid_name(c),
                "channels",
                format!("`{c}` is not a valid channel name."),
            );
        }
        v.check(
            (1..=200).contains(&req.name.len()),
            "name",
            "The event name must be 1 to 200 characters.",
        );
    }
    v.finish()?;
    for req in requests {
        let data = match req.data {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            other => other,
        };
        for channel in req.channels.into_iter().flatten().chain(req.channel) {
            state.bus().publish(Event {
                channel,
                name: req.name.clone(),
                data: data.clone(),
                except_socket: req.socket_id.clone(),
            });
        }
    }
    Ok(())
}

/// The raw query string and parsed signature parameters of a publishing request.
async fn signed_body(
    state: &AppState,
    app_id: &str,
    suffix: &str,
    raw_query: Option<String>,
    query: &SignedQuery,
    body: &Bytes,
) -> Result<()> {
    let app = state.pusher();
    if app_id != app.id {
        return Err(ApiError::new(ErrorCode::RouteNotFound).with_message("Unknown app id."));
    }
    let path = format!("/apps/{app_id}/{suffix}");
    verify_signed(
        app,
        "POST",
        &path,
        raw_query.as_deref().unwrap_or(""),
        query,
        body,
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_field("body", format!("The body is invalid: {e}.")))
}

/// Publish one event to channels (Pusher HTTP API, signed).
#[utoipa::path(post, path = "/apps/{app_id}/events", tag = "realtime",
    params(("app_id" = String, Path), SignedQuery), request_body = PublishRequest,
    responses(
        (status = 200, body = Envelope<Null>),
        (status = 401, description = "Bad signature, key, timestamp or body MD5", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn publish_event(
    State(state): State<AppState>,
    ApiPath(app_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    uri: axum::http::Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> Result<Reply<Null>> {
    signed_body(
        &state,
        &app_id,
        "events",
        uri.query().map(str::to_owned),
        &query,
        &body,
    )
    .await?;
    publish_all(&state, vec![parse_json(&body)?])?;
    Ok(Reply::ok(Null))
}

/// Publish several events (Pusher HTTP API, signed).
#[utoipa::path(post, path = "/apps/{app_id}/batch_events", tag = "realtime",
    params(("app_id" = String, Path), SignedQuery), request_body = BatchRequest,
    responses(
        (status = 200, body = Envelope<Null>),
        (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn publish_batch(
    State(state): State<AppState>,
    ApiPath(app_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SignedQuery>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Reply<Null>> {
    signed_body(
        &state,
        &app_id,
        "batch_events",
        uri.query().map(str::to_owned),
        &query,
        &body,
    )
    .await?;
    let batch: BatchRequest = parse_json(&body)?;
    if batch.batch.len() > 10 {
        return Err(ApiError::invalid_field(
            "batch",
            "At most 10 events per batch.",
        ));
    }
    publish_all(&state, batch.batch)?;
    Ok(Reply::ok(Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_signatures_match_pushers_documented_example() {
        // From Pusher's channel authorization docs.
        let app = PusherApp {
            id: "1".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        };
        assert_eq!(
            channel_auth(&app, "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(is_socket_id("123.456") && !is_socket_id("123") && !is_socket_id("a.1"));
    }
}
