//! The API from a terminal: `claudenest login`, `pair CODE`, `machines`, `sessions`, `tasks`
//! and `attach SESSION`. Each command is a REST call or two through [`Client`]; `attach` adds
//! the session's Pusher channel and puts the terminal in raw mode.
//!
//! The server and token come from flags, then `CLAUDENEST_SERVER` / `CLAUDENEST_TOKEN`, then the
//! client file `login` writes (`~/.config/claudenest/client.toml`, mode 0600).

use std::{
    collections::BTreeMap,
    io::Write as _,
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// What `claudenest login` keeps for the other client commands.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientFile {
    pub server: Option<String>,
    pub token: Option<String>,
}

impl ClientFile {
    /// `$XDG_CONFIG_HOME/claudenest/client.toml`, else `~/.config/claudenest/client.toml`.
    pub fn default_path() -> PathBuf {
        crate::agent::AgentFile::default_path().with_file_name("client.toml")
    }

    /// The file, or nothing kept yet.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        crate::secrets::read_toml_or_default(path)
    }

    /// Readable by its owner only: it holds a token.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::secrets::write_private(path, toml::to_string(self)?.as_bytes())
    }
}

/// A refusal from the API, as its envelope said it.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}{}", fields(.errors))]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub errors: Option<Value>,
}

fn fields(errors: &Option<Value>) -> String {
    let Some(Value::Object(map)) = errors else {
        return String::new();
    };
    map.iter()
        .map(|(field, messages)| {
            let said: Vec<&str> = messages
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!("\n  {field}: {}", said.join(" "))
        })
        .collect()
}

/// The host's REST API with a bearer token.
pub struct Client {
    http: reqwest::Client,
    pub server: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        url::Url::parse(&server).with_context(|| format!("the server URL {server:?}"))?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            server,
            token,
        })
    }

    /// The bearer token (empty when none).
    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap_or_default()
    }

    /// `data` of a success envelope; the envelope's error otherwise (as [`Refused`]).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        Ok(self.call_full(method, path, body).await?["data"].take())
    }

    /// The whole success envelope (`data` and `meta`).
    async fn call_full(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.server));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching {}", self.server))?;
        let status = response.status();
        let envelope: Value = response
            .json()
            .await
            .with_context(|| format!("{status} from {path}, not the API's envelope"))?;
        if envelope["success"] == true {
            return Ok(envelope);
        }
        let error = &envelope["error"];
        Err(Refused {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("?").to_owned(),
            message: error["message"].as_str().unwrap_or("").to_owned(),
            errors: error.get("errors").cloned(),
        }
        .into())
    }

    /// Every page of a list (at most 100 pages of 100).
    pub async fn list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let joiner = if path.contains('?') { '&' } else { '?' };
        for page in 1..=100 {
            let envelope = self
                .call_full(
                    Method::GET,
                    &format!("{path}{joiner}per_page=100&page={page}"),
                    None,
                )
                .await?;
            all.extend(envelope["data"].as_array().cloned().unwrap_or_default());
            let last = envelope["meta"]["pagination"]["last_page"]
                .as_u64()
                .unwrap_or(1);
            if page >= last {
                break;
            }
        }
        Ok(all)
    }
}

/// `claudenest login`: signs in and keeps the server and token in the client file.
pub async fn login(
    server: &str,
    email: &str,
    password: &str,
    file: &Path,
) -> anyhow::Result<String> {
    let client = Client::new(server, None)?;
    let data = client
        .call(
            Method::POST,
            "/api/auth/login",
            Some(json!({"email": email, "password": password})),
        )
        .await?;
    let token = data["token"]
        .as_str()
        .context("no token in the answer")?
        .to_owned();
    ClientFile {
        server: Some(client.server.clone()),
        token: Some(token),
    }
    .save(file)?;
    Ok(data["user"]["name"].as_str().unwrap_or(email).to_owned())
}

/// Reads a password from stdin: without echo when it is a terminal.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let echo_off = RawTerminal::without_echo(&stdin);
    if echo_off.is_some() {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    if echo_off.is_some() {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Rows as aligned columns, a header first.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The `keys` of each item, as table cells.
pub fn rows(items: &[Value], keys: &[&str]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| keys.iter().map(|k| text(&item[*k])).collect())
        .collect()
}

pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// --- attach -----------------------------------------------------------------------------------

/// The key that detaches (Ctrl-]), as telnet and docker do.
pub const DETACH_KEY: u8 = 0x1d;

/// The terminal in raw mode (or with echo off) until dropped.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter(fd: impl AsFd, change: impl FnOnce(&mut rustix::termios::Termios)) -> Option<Self> {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(&fd).ok()?;
        let mut changed = saved.clone();
        change(&mut changed);
        tcsetattr(&fd, OptionalActions::Now, &changed).ok()?;
        Some(Self { saved })
    }

    fn raw(fd: impl AsFd) -> Option<Self> {
        Self::enter(fd, |t| t.make_raw())
    }

    fn without_echo(fd: impl AsFd) -> Option<Self> {
        Self::enter(fd, |t| {
            t.local_modes.remove(rustix::termios::LocalModes::ECHO);
        })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// How an attachment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Detached {
    /// The person pressed the detach key; the session runs on.
    ByKey,
    /// The session ended (its status).
    Ended(String),
    /// Input closed (stdin at its end); the session runs on.
    InputClosed,
}

/// `claudenest attach SESSION`: the session's screen, then its live output, in this terminal;
/// what is typed goes to the session, and its size follows this terminal's. A dropped socket
/// is opened again and the output caught up from the log by sequence number: nothing is lost
/// or shown twice.
pub async fn attach(client: &Client, app_key: &str, session: Uuid) -> anyhow::Result<Detached> {
    let attached = client
        .call(
            Method::POST,
            &format!("/api/sessions/{session}/attach"),
            None,
        )
        .await?;
    let status = text(&attached["session"]["status"]);
    if ["completed", "error", "terminated"].contains(&status.as_str()) {
        bail!("the session has ended ({status}); its log is at /api/sessions/{session}/logs");
    }
    let ws_token = attached["websocket_token"]
        .as_str()
        .context("no websocket_token")?
        .to_owned();
    let mut out = std::io::stdout();
    let mut seen: i64 = 0;
    if let Some(snapshot) = attached.get("snapshot").filter(|s| s.is_object()) {
        seen = snapshot["seq"].as_i64().unwrap_or(0);
        let ansi = snapshot["ansi"].as_str().unwrap_or_default();
        write!(out, "\x1b[2J\x1b[H{ansi}")?;
        out.flush()?;
    }
    let _raw = RawTerminal::raw(std::io::stdin());
    let mut stdin = tokio::io::stdin();
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut pending_utf8 = Vec::new();
    let mut buf = vec![0u8; 4096];
    let channel = format!("private-session.{session}");
    // Live output that arrived ahead of a gap, by sequence number.
    let mut early: BTreeMap<i64, String> = BTreeMap::new();
    loop {
        let mut socket = match subscribe(client, app_key, &channel, &ws_token).await {
            Ok(socket) => socket,
            Err(err) => {
                write!(out, "\r\n[claudenest: {err:#}; trying again]\r\n")?;
                out.flush()?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // What was written while no socket listened comes from the log.
        early.clear();
        seen = catch_up(client, session, seen, &mut out).await?;
        let mut settle = SETTLE_ASKS_MS.iter();
        let mut next_ask = settle.next().map(|ms| after_ms(*ms));
        if let Some((cols, rows)) = terminal_size() {
            send_event(
                &mut socket,
                &channel,
                "client-session:resize",
                json!({"cols": cols, "rows": rows}),
            )
            .await;
        }
        let dropped = loop {
            tokio::select! {
                read = stdin.read(&mut buf) => {
                    let n = read?;
                    if n == 0 {
                        return Ok(Detached::InputClosed);
                    }
                    let typed = &buf[..n];
                    let (typed, detach) = match typed.iter().position(|b| *b == DETACH_KEY) {
                        Some(at) => (&typed[..at], true),
                        None => (typed, false),
                    };
                    pending_utf8.extend_from_slice(typed);
                    let ready = complete_utf8(&mut pending_utf8);
                    if !ready.is_empty() {
                        send_event(&mut socket, &channel, "client-session:input", json!({"data": ready})).await;
                    }
                    if detach {
                        return Ok(Detached::ByKey);
                    }
                }
                _ = winch.recv() => {
                    if let Some((cols, rows)) = terminal_size() {
                        send_event(&mut socket, &channel, "client-session:resize", json!({"cols": cols, "rows": rows})).await;
                    }
                }
                // Until live output shows where the stream is, the log may still be writing
                // what was published just before the subscription.
                _ = tokio::time::sleep_until(next_ask.unwrap_or_else(tokio::time::Instant::now)), if next_ask.is_some() => {
                    seen = catch_up(client, session, seen, &mut out).await?;
                    seen = drain_early(&mut early, seen, &mut out)?;
                    next_ask = settle.next().map(|ms| after_ms(*ms));
                }
                // Output after a gap the log did not have yet: ask it again shortly.
                _ = tokio::time::sleep(Duration::from_millis(200)), if !early.is_empty() => {
                    seen = catch_up(client, session, seen, &mut out).await?;
                    seen = drain_early(&mut early, seen, &mut out)?;
                }
                frame = socket.next() => {
                    let Some(Ok(frame)) = frame else { break true };
                    let Message::Text(frame) = frame else { continue };
                    let Ok(event) = serde_json::from_str::<Value>(&frame) else { continue };
                    let data = event_data(&event);
                    match event["event"].as_str().unwrap_or_default() {
                        "pusher:ping" => {
                            let _ = socket.send(Message::Text(json!({"event": "pusher:pong", "data": {}}).to_string().into())).await;
                        }
                        "session:output" => {
                            next_ask = None;
                            let seq = data["seq"].as_i64().unwrap_or(0);
                            if seq > seen && early.len() < EARLY_OUTPUT_MAX {
                                early.insert(seq, data["data"].as_str().unwrap_or_default().to_owned());
                            }
                            seen = drain_early(&mut early, seen, &mut out)?;
                            if !early.is_empty() {
                                // A gap: the log has what the socket missed (or soon will: the
                                // host publishes output before it logs it).
                                seen = catch_up(client, session, seen, &mut out).await?;
                                seen = drain_early(&mut early, seen, &mut out)?;
                            }
                        }
                        "session:status" | "session:terminated" => {
                            let status = text(&data["status"]);
                            if ["completed", "error", "terminated"].contains(&status.as_str()) {
                                seen = catch_up(client, session, seen, &mut out).await?;
                                let _ = seen;
                                return Ok(Detached::Ended(status));
                            }
                        }
                        _ => {}
                    }
                }
            }
        };
        if dropped {
            write!(out, "\r\n[claudenest: connection lost; reconnecting]\r\n")?;
            out.flush()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the Pusher socket and subscribes to the session's channel with its `ws_` token.
async fn subscribe(
    client: &Client,
    app_key: &str,
    channel: &str,
    ws_token: &str,
) -> anyhow::Result<Socket> {
    let base = client
        .server
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = format!(
        "{base}/app/{app_key}?protocol=7&client=claudenest-cli&version={}",
        crate::VERSION
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("connecting to {base}"))?;
    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": {"token": ws_token}}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no answer to the subscription")?;
        let Some(Ok(Message::Text(frame))) = frame else {
            bail!("the socket closed before the subscription was answered");
        };
        let event: Value = serde_json::from_str(&frame).unwrap_or_default();
        match event["event"].as_str().unwrap_or_default() {
            "pusher_internal:subscription_succeeded" => return Ok(socket),
            "pusher:subscription_error" => {
                bail!(
                    "subscription refused: {}",
                    text(&event_data(&event)["error"])
                )
            }
            _ => {}
        }
    }
}

/// An event's `data`, decoded when it came as a JSON string (as the Pusher protocol sends it).
fn event_data(event: &Value) -> Value {
    match &event["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => other.clone(),
    }
}

async fn send_event(socket: &mut Socket, channel: &str, event: &str, data: Value) {
    let frame = json!({"event": event, "channel": channel, "data": data});
    // A failed send shows as the socket ending on its next read.
    let _ = socket.send(Message::Text(frame.to_string().into())).await;
}

/// After a (re)subscription, the pauses before each further ask of the log, until live output
/// arrives. The host publishes output before it logs it, so what was published just before
/// the subscription may reach the log only after the first catch-up read it, and no later
/// event would show that gap (the session may say nothing more). The dashboard does the same
/// (`OutputFollower.settle` in `ui/follow.mjs`).
const SETTLE_ASKS_MS: [u64; 4] = [250, 500, 1000, 2000];

fn after_ms(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(ms)
}

/// Live output events held while a gap is caught up; beyond this the log serves the rest.
const EARLY_OUTPUT_MAX: usize = 4096;

/// Writes the held live output that follows `seen` without a gap and drops what was already
/// written; the new highest sequence number written.
fn drain_early(
    early: &mut BTreeMap<i64, String>,
    mut seen: i64,
    out: &mut impl std::io::Write,
) -> anyhow::Result<i64> {
    while let Some(entry) = early.first_entry() {
        let seq = *entry.key();
        if seq <= seen {
            entry.remove();
        } else if seq == seen + 1 || seen == 0 {
            write!(out, "{}", entry.remove())?;
            seen = seq;
        } else {
            break;
        }
    }
    out.flush()?;
    Ok(seen)
}

/// Writes the output after `seen` from the log, in order; the new highest sequence number.
async fn catch_up(
    client: &Client,
    session: Uuid,
    mut seen: i64,
    out: &mut impl std::io::Write,
) -> anyhow::Result<i64> {
    loop {
        let path = format!("/api/sessions/{session}/logs?since_seq={seen}&limit=1000");
        let entries = client.call(Method::GET, &path, None).await?;
        let entries = entries.as_array().cloned().unwrap_or_default();
        let before = seen;
        for entry in &entries {
            let seq = entry["seq"].as_i64().unwrap_or(0);
            if seq > seen {
                write!(out, "{}", entry["data"].as_str().unwrap_or_default())?;
                seen = seq;
            }
        }
        out.flush()?;
        if entries.len() < 1000 || seen == before {
            return Ok(seen);
        }
    }
}

/// The complete UTF-8 text at the front of `pending`; an incomplete last character waits for
/// its next bytes. Invalid bytes are replaced.
fn complete_utf8(pending: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(pending) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => pending.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let rest = pending.split_off(pending.len() - keep);
    let text = String::from_utf8_lossy(pending).into_owned();
    *pending = rest;
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_character_waits_for_its_last_bytes() {
        let mut pending = "é".as_bytes()[..1].to_vec();
        assert_eq!(complete_utf8(&mut pending), "");
        pending.extend_from_slice(&"é".as_bytes()[1..]);
        pending.extend_from_slice(b"x");
        assert_eq!(complete_utf8(&mut pending), "éx");
        assert!(pending.is_empty());
    }

    #[test]
    fn tables_align_their_columns() {
        let out = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "box".into()],
                vec!["22".into(), "b".into()],
            ],
        );
        assert_eq!(out, "ID  NAME\n1   box\n22  b\n");
    }
}
