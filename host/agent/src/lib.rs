//! The machine agent (`claudenest-agent`, also `claudenest agent`): keeps one authenticated link
//! to the host, says hello with the machine's environment, answers pings and requests, and
//! reconnects forever with capped, jittered backoff. It runs sessions in PTYs, stdio MCP servers,
//! the skill folder and the plugins enabled on its machine.
//!
//! It depends on the protocol and the plugin host only: never on the server's domain, store,
//! embeddings or HTTP (the crate graph makes that a compile error).
#![deny(unsafe_code)]

pub mod cli;
pub mod environment;
pub mod hooks;
pub mod mcp;
pub mod plugins;
pub mod sessions;
pub mod skills;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest as _, http::HeaderValue, protocol::WebSocketConfig,
    },
};
use tokio_util::sync::CancellationToken;

use claudenest_protocol::{
    self as protocol, AgentMessage, AgentRequest, HOST_MESSAGE_TYPES, HostMessage, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, codes,
    tokens::{MACHINE_TOKEN_PREFIX, TokenSecret},
};
use environment::EnvironmentSettings;

/// The agent's saved configuration (`~/.config/claudenest/agent.toml`, mode 0600).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub server: Option<String>,
    pub token: Option<String>,
    pub claude_path: Option<PathBuf>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub max_sessions: Option<u32>,
    pub kill_grace_secs: Option<u64>,
    pub skills_dir: Option<PathBuf>,
    pub skills_poll_ms: Option<u64>,
    /// The agent's data directory (compiled plugins and their key).
    pub data_dir: Option<PathBuf>,
    /// Directories under which plugins may be granted mounts (none by default).
    #[serde(default)]
    pub plugin_roots: Vec<PathBuf>,
    /// Hosts plugins may reach even though they lead to internal addresses.
    #[serde(default)]
    pub plugin_allow_hosts: Vec<String>,
    /// Seconds a permission dialog waits for the host's answer (default 300).
    pub permission_timeout_secs: Option<u64>,
}

impl AgentFile {
    /// `$XDG_CONFIG_HOME/claudenest/agent.toml`, else `~/.config/claudenest/agent.toml`.
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("claudenest/agent.toml")
    }

    /// The file, or defaults when it does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        claudenest_protocol::files::read_toml_or_default(path)
    }

    /// Writes the file readable by its owner only (it holds the machine token).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        claudenest_protocol::files::write_private(path, toml::to_string(self)?.as_bytes())
    }
}

/// Everything a running agent needs.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The host's base URL (`http://…` or `https://…`).
    pub server: String,
    pub token: String,
    pub environment: EnvironmentSettings,
    /// Between a terminated session's hang-up and SIGKILL.
    pub kill_grace: Duration,
    /// The skill folder kept in step with the host (`<dir>/<name>/SKILL.md`).
    pub skills_dir: PathBuf,
    /// How often the skill folder is looked at for changes.
    pub skills_poll: Duration,
    /// What the machine's owner allows plugins here.
    pub plugins: plugins::PluginSettings,
    /// Claude Code hooks for the sessions this agent starts (`None`: no hooks).
    pub hooks: Option<hooks::HookSettings>,
}

/// `agent/` in ClaudeNest's data directory (`~/.local/share/claudenest/agent`).
pub fn default_data_dir() -> PathBuf {
    claudenest_protocol::files::default_data_dir().join("agent")
}

/// Names of this process's environment variables no child may inherit: ClaudeNest's own
/// settings (`CLAUDENEST_*`), the machine token `CLAUDENEST_AGENT_TOKEN` among them. Sessions,
/// MCP servers and probes get the user's environment without them.
pub fn private_env() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str()
                .is_some_and(|n| n.to_ascii_uppercase().starts_with("CLAUDENEST_"))
        })
        .collect()
}

/// Link URL for a server base URL: `http` → `ws`, `https` → `wss`.
pub fn link_url(server: &str) -> anyhow::Result<String> {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        anyhow::bail!("the server URL must start with http:// or https:// (got {server})");
    };
    Ok(format!("{ws}/api/agent/link"))
}

/// Exponential backoff with full jitter, capped.
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay: uniform in [base/2, min(cap, base·2^attempt)].
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng as _;
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let floor = (self.base / 2).min(ceiling);
        rand::rng().random_range(floor..=ceiling)
    }
}

/// How one link ended.
enum Ended {
    Shutdown,
    /// The link was up (hello answered) and then closed.
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

/// Runs until `shutdown`: connect, serve, and on any failure reconnect after a backoff.
pub async fn run(settings: AgentSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let url = link_url(&settings.server)?;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // Replies to the host's requests. Session output does not pass here: it waits in the
    // sessions' journals until the host acknowledges it, across links.
    let (outbound_tx, mut outbound) = mpsc::channel::<AgentMessage>(OUTBOUND_CAPACITY);
    let sessions = sessions::Sessions::new(
        settings.environment.claude_path.clone(),
        settings.kill_grace,
    );
    let hooks = settings
        .hooks
        .clone()
        .map(|h| hooks::Hooks::new(h, outbound_tx.clone()));
    if let Some(hooks) = &hooks {
        sessions.set_hooks(hooks.clone());
    }
    let mcp = mcp::McpServers::new(outbound_tx.clone());
    let skills = skills::SkillFolder::new(settings.skills_dir.clone());
    let plugins =
        plugins::AgentPlugins::new(settings.plugins.clone(), &settings.server, &settings.token);
    // Read once: `claude --version` may take seconds, and a reconnect after the host died
    // should not wait for it again (`AgentRequest::Environment` reads it fresh on demand).
    let environment = environment::detect(&settings.environment).await;
    let ended = loop {
        let link = Link {
            url: &url,
            settings: &settings,
            environment: &environment,
            sessions: &sessions,
            replies: &outbound_tx,
            mcp: &mcp,
            skills: &skills,
            plugins: &plugins,
            hooks: hooks.as_ref(),
        };
        match connect_and_serve(&link, &mut outbound, &shutdown).await {
            Ok(Ended::Shutdown) => break Ok(()),
            Ok(Ended::Closed { code, reason }) => {
                tracing::warn!(?code, reason, "link closed; reconnecting");
                backoff.reset();
            }
            Err(err) => tracing::warn!(error = format!("{err:#}"), "link failed"),
        }
        let delay = backoff.next_delay();
        tracing::info!(?delay, "reconnecting after");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break Ok(()),
        }
    };
    sessions.end_all().await;
    mcp.stop_all().await;
    ended
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Replies waiting to be sent.
const OUTBOUND_CAPACITY: usize = 1024;
/// Session messages sent per turn of the link loop, so pings are answered between turns.
const SESSION_BATCH: usize = 64;
/// How long the host has to answer `hello` with `welcome`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// What one connection attempt works with.
struct Link<'a> {
    url: &'a str,
    settings: &'a AgentSettings,
    environment: &'a protocol::Environment,
    sessions: &'a sessions::Sessions,
    replies: &'a mpsc::Sender<AgentMessage>,
    mcp: &'a mcp::McpServers,
    skills: &'a skills::SkillFolder,
    plugins: &'a plugins::AgentPlugins,
    hooks: Option<&'a hooks::Hooks>,
}

async fn connect(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    // `true`: TCP_NODELAY, so keystroke echoes are not held back by Nagle.
    match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) if response.status() == 401 => {
            anyhow::bail!("the host refused the machine token (401): pair again or set a new token")
        }
        Err(err) => Err(err).with_context(|| format!("connecting to {url}")),
    }
}

async fn send(socket: &mut Socket, message: &AgentMessage) -> anyhow::Result<()> {
    socket
        .send(Message::Text(protocol::encode(message).into()))
        .await?;
    Ok(())
}

async fn connect_and_serve(
    link: &Link<'_>,
    outbound: &mut mpsc::Receiver<AgentMessage>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Ended> {
    let settings = link.settings;
    let mut socket = tokio::select! {
        socket = connect(link.url, &settings.token) => socket?,
        () = shutdown.cancelled() => return Ok(Ended::Shutdown),
    };
    send(
        &mut socket,
        &AgentMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            environment: link.environment.clone(),
            sessions: link.sessions.ids(),
        },
    )
    .await?;
    let cursors = tokio::select! {
        welcome = await_welcome(&mut socket) => welcome?,
        () = shutdown.cancelled() => return Ok(Ended::Shutdown),
    };
    link.sessions.resume(&cursors);
    let folder = link.skills.clone();
    let full_report = tokio::task::spawn_blocking(move || folder.report_messages(true)).await?;
    for message in &full_report {
        send(&mut socket, message).await?;
    }
    let mut skills_poll = tokio::time::interval(settings.skills_poll);
    skills_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    skills_poll.tick().await;
    // Replies are produced by spawned tasks, so a slow request never delays a pong.
    loop {
        tokio::select! {
            frame = socket.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        return Ok(Ended::Closed {
                            code: frame.as_ref().map(|f| u16::from(f.code)),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        });
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Err(err.into()),
                    None => return Ok(Ended::Closed { code: None, reason: "connection lost".into() }),
                };
                match protocol::decode::<HostMessage>(&text, HOST_MESSAGE_TYPES) {
                    Ok(HostMessage::Welcome { .. }) => {
                        tracing::warn!("a second welcome on one link; ignored");
                    }
                    Ok(HostMessage::SessionAck { session_id, seq, exit_recorded }) => {
                        link.sessions.ack(session_id, seq, exit_recorded);
                    }
                    Ok(HostMessage::Ping { nonce }) => {
                        send(&mut socket, &AgentMessage::Pong { nonce }).await?;
                    }
                    Ok(HostMessage::Request { id, request: AgentRequest::SessionInput { session_id, data } })
                        if let Some(outcome) = link.sessions.input_at_once(session_id, &data) =>
                    {
                        send(&mut socket, &answer(id, outcome.map(|()| done()))).await?;
                    }
                    Ok(HostMessage::Request { id, request }) => {
                        let replies = link.replies.clone();
                        let env_settings = settings.environment.clone();
                        let parts = Parts {
                            server: settings.server.clone(),
                            sessions: link.sessions.clone(),
                            mcp: link.mcp.clone(),
                            skills: link.skills.clone(),
                            plugins: link.plugins.clone(),
                            hooks: link.hooks.cloned(),
                        };
                        tokio::spawn(async move {
                            let answer = answer(id, handle_request(request, &env_settings, &parts).await);
                            let _ = replies.send(answer).await;
                        });
                    }
                    Ok(HostMessage::Error { reply_to, code, message }) => {
                        tracing::warn!(?reply_to, code, message, "host reported an error");
                    }
                    Ok(HostMessage::Goodbye { reason }) => {
                        tracing::info!(reason, "host is closing the link");
                    }
                    Err(err) => {
                        send(&mut socket, &AgentMessage::Error {
                            reply_to: err.reply_to,
                            code: err.code.into(),
                            message: err.message,
                        }).await?;
                    }
                }
            }
            Some(message) = outbound.recv() => send(&mut socket, &message).await?,
            _ = skills_poll.tick() => {
                let folder = link.skills.clone();
                let changes = tokio::task::spawn_blocking(move || folder.report_messages(false)).await?;
                for message in &changes {
                    send(&mut socket, message).await?;
                }
            }
            () = link.sessions.ready().notified() => {
                let batch = link.sessions.pending(SESSION_BATCH);
                if batch.len() == SESSION_BATCH {
                    // More waits: come back after a look at the socket.
                    link.sessions.ready().notify_one();
                }
                for message in &batch {
                    send(&mut socket, message).await?;
                }
            }
            () = shutdown.cancelled() => {
                let _ = socket.close(None).await;
                return Ok(Ended::Shutdown);
            }
        }
    }
}

/// Waits for the host's `welcome` (pings before it are answered) and returns its session
/// cursors.
async fn await_welcome(socket: &mut Socket) -> anyhow::Result<Vec<protocol::SessionCursor>> {
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no welcome from the host in time")?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => anyhow::bail!(
                "the host closed the link before welcome: {}",
                frame.map(|f| f.reason.to_string()).unwrap_or_default()
            ),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("the host closed the link before welcome"),
        };
        match protocol::decode::<HostMessage>(&text, HOST_MESSAGE_TYPES) {
            Ok(HostMessage::Welcome {
                machine_id,
                sessions,
                ..
            }) => {
                tracing::info!(%machine_id, sessions = sessions.len(), "linked to the host");
                return Ok(sessions);
            }
            Ok(HostMessage::Ping { nonce }) => send(socket, &AgentMessage::Pong { nonce }).await?,
            Ok(HostMessage::Error { code, message, .. }) => {
                anyhow::bail!("the host refused the link: {code}: {message}")
            }
            Ok(other) => tracing::debug!(?other, "before welcome; ignored"),
            Err(err) => anyhow::bail!("undecodable frame before welcome: {}", err.message),
        }
    }
}

/// The reply to request `id`: its result, or an `error` with the code the failure carries.
/// A result too large for one frame is an error too (the host would refuse the frame).
fn answer(id: u64, outcome: anyhow::Result<serde_json::Value>) -> AgentMessage {
    let error = |code: &str, message: String| AgentMessage::Error {
        reply_to: Some(id),
        code: code.into(),
        message,
    };
    match outcome {
        Ok(result) => {
            let reply = AgentMessage::Reply {
                reply_to: id,
                result,
            };
            let size = protocol::encode(&reply).len();
            if size > MAX_FRAME_BYTES {
                return error(
                    codes::FAILED,
                    format!("the result ({size} bytes) is larger than a link frame"),
                );
            }
            reply
        }
        Err(err) => match err.downcast_ref::<protocol::CodedError>() {
            Some(coded) => error(coded.code, coded.message.clone()),
            None => error(codes::FAILED, format!("{err:#}")),
        },
    }
}

/// What requests act on.
struct Parts {
    /// The host's base URL (its `/mcp` is given to sessions).
    server: String,
    sessions: sessions::Sessions,
    mcp: mcp::McpServers,
    skills: skills::SkillFolder,
    plugins: plugins::AgentPlugins,
    hooks: Option<hooks::Hooks>,
}

/// The answer to a request that has nothing to say but that it was done.
fn done() -> serde_json::Value {
    serde_json::json!({ "ok": true })
}

/// Does what the host asked.
async fn handle_request(
    request: AgentRequest,
    env: &EnvironmentSettings,
    parts: &Parts,
) -> anyhow::Result<serde_json::Value> {
    let sessions = &parts.sessions;
    let ok = || Ok(done());
    match request {
        AgentRequest::SessionStart {
            session_id,
            mode,
            project_path,
            initial_prompt,
            cols,
            rows,
            mcp,
            claude_path,
        } => {
            let sessions = sessions.clone();
            let mcp = match mcp {
                Some(access) => Some(sessions::McpAccess::write(
                    &parts.server,
                    session_id,
                    &access,
                )?),
                None => None,
            };
            let start = sessions::StartRequest {
                session_id,
                mode,
                project_path,
                initial_prompt,
                cols,
                rows,
                mcp,
                claude_path,
            };
            // Opening a PTY and typing the first prompt block: off the async threads.
            tokio::task::spawn_blocking(move || sessions.start(start)).await??;
            ok()
        }
        AgentRequest::SessionInput { session_id, data } => {
            sessions.input(session_id, &data)?;
            ok()
        }
        AgentRequest::SessionResize {
            session_id,
            cols,
            rows,
        } => {
            sessions.resize(session_id, cols, rows)?;
            ok()
        }
        AgentRequest::SessionTerminate { session_id } => {
            sessions.terminate(session_id)?;
            ok()
        }
        AgentRequest::SessionSnapshot { session_id } => sessions.snapshot(session_id),
        AgentRequest::SessionInterrupt { session_id } => {
            sessions.interrupt(session_id)?;
            ok()
        }
        AgentRequest::PermissionAnswer {
            session_id,
            request_id,
            allow,
            message,
        } => {
            let hooks = parts
                .hooks
                .as_ref()
                .context("this agent runs sessions without hooks")?;
            hooks.answer(session_id, request_id, allow, message)?;
            ok()
        }
        AgentRequest::SkillWrite {
            path,
            content,
            expect_hash,
        } => parts.skills.write(&path, &content, expect_hash.as_deref()),
        AgentRequest::SkillKeepCopy { path, content } => {
            let copy = parts.skills.keep_copy(&path, &content)?;
            Ok(serde_json::json!({ "copy": copy }))
        }
        AgentRequest::SkillRemove { path, expect_hash } => {
            parts.skills.remove(&path, expect_hash.as_deref())
        }
        AgentRequest::McpStart { server } => parts.mcp.start(server).await,
        AgentRequest::McpStop { name } => {
            Ok(serde_json::json!({ "stopped": parts.mcp.stop(&name).await }))
        }
        AgentRequest::McpCall {
            name,
            tool,
            arguments,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis(timeout_ms);
            parts.mcp.call(&name, &tool, arguments, timeout).await
        }
        AgentRequest::PluginCheck { mounts, http } => Ok(parts.plugins.check(&mounts, &http)),
        AgentRequest::PluginTools { plugin } => Ok(parts.plugins.tools(&plugin).await?),
        AgentRequest::PluginCall {
            plugin,
            tool,
            arguments,
        } => Ok(parts.plugins.call(&plugin, &tool, &arguments).await?),
        AgentRequest::PluginForget { sha256 } => {
            parts.plugins.forget(&sha256);
            ok()
        }
        AgentRequest::Echo { payload } => Ok(payload),
        AgentRequest::Environment => Ok(serde_json::to_value(environment::detect(env).await)?),
        AgentRequest::Wake { mac, target } => {
            let mac = protocol::parse_mac(&mac).context("bad MAC address")?;
            let target = target.parse().context("bad wake target")?;
            protocol::send_magic_packet(mac, target).await?;
            tracing::info!(%target, "sent a wake-on-lan packet for the host");
            Ok(serde_json::json!({ "sent": true }))
        }
    }
}

/// `claudenest agent pair`: makes a machine token here, registers its hash with the host under
/// a short code, waits for the user to enter the code, and saves the token (0600).
pub async fn pair(
    server: &str,
    file_path: &Path,
    mut file: AgentFile,
    name_hint: Option<&str>,
) -> anyhow::Result<AgentFile> {
    let secret = TokenSecret::generate(MACHINE_TOKEN_PREFIX);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let base = server.trim_end_matches('/');
    let hostname = name_hint
        .map(str::to_owned)
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let started: serde_json::Value = client
        .post(format!("{base}/api/pairing"))
        .json(&serde_json::json!({
            "token_hash": hex::encode(secret.hash),
            "hostname": hostname,
            "platform": environment::platform(),
            "arch": environment::arch(),
        }))
        .send()
        .await
        .context("reaching the host")?
        .error_for_status()
        .context("the host refused to start pairing")?
        .json()
        .await?;
    let code = started["data"]["code"]
        .as_str()
        .context("the host did not send a pairing code")?
        .to_owned();
    println!("Pairing code: {code}");
    println!("Enter it in ClaudeNest within 5 minutes (POST {base}/api/pairing/{code}/complete).");
    let _ = std::io::stdout().flush();
    let deadline = tokio::time::Instant::now() + machines_pairing_ttl();
    loop {
        let answer = client
            .get(format!("{base}/api/agent/machine"))
            .bearer_auth(&secret.plain)
            .send()
            .await;
        if let Ok(response) = answer
            && response.status().is_success()
        {
            let body: serde_json::Value = response.json().await?;
            println!(
                "Paired as machine \"{}\" ({}).",
                body["data"]["name"].as_str().unwrap_or(""),
                body["data"]["id"].as_str().unwrap_or("")
            );
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the pairing code expired before it was entered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    file.server = Some(base.to_owned());
    file.token = Some(secret.plain);
    file.save(file_path)?;
    println!(
        "Saved the machine token to {} (mode 0600).",
        file_path.display()
    );
    Ok(file)
}

fn machines_pairing_ttl() -> Duration {
    claudenest_protocol::tokens::PAIRING_TTL
        .to_std()
        .unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_urls() {
        assert_eq!(
            link_url("http://127.0.0.1:8000/").unwrap(),
            "ws://127.0.0.1:8000/api/agent/link"
        );
        assert_eq!(
            link_url("https://nest.example.com").unwrap(),
            "wss://nest.example.com/api/agent/link"
        );
        assert!(link_url("ftp://x").is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_capped() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        for _ in 0..50 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(250) && d <= Duration::from_secs(30),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn the_saved_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/agent.toml");
        let file = AgentFile {
            server: Some("http://127.0.0.1:1".into()),
            token: Some("mn_secret".into()),
            ..AgentFile::default()
        };
        file.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            AgentFile::load(&path).unwrap().token.as_deref(),
            Some("mn_secret")
        );
    }
}
