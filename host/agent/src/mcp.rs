//! MCP servers run by the agent (API §10): `stdio` servers as child processes (each in its own
//! process group, stderr to the agent's log), `http` servers reached by URL. The client is
//! `rmcp` in its auto lifecycle mode: `server/discover` first (2026-07-28), `initialize` for
//! servers of the earlier era.
//!
//! A server that exits on its own is restarted with capped backoff; the host hears every change
//! (`mcp_status`), and the tool list again when the server says it changed.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use rmcp::{
    ClientHandler, RoleClient,
    model::{
        CallToolRequestParams, ClientConfig, ProtocolVersion, ServerNotification,
        SubscriptionFilter,
    },
    service::{
        ClientLifecycleMode, ClientServiceExt as _, NotificationContext, Peer, RunningService,
    },
    transport::{StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::Value;
use tokio::{io::AsyncBufReadExt as _, sync::mpsc};
use tokio_util::sync::CancellationToken;

use claudenest_protocol::{self as protocol, AgentMessage, McpSpec};

/// Lines of a server's stderr kept for error messages.
const STDERR_TAIL: usize = 20;
/// Restarts give up after this many failures in a row (the status becomes `error`).
const MAX_RESTARTS: u32 = 8;
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Running this long resets the restart backoff.
const STABLE: Duration = Duration::from_secs(60);

/// The MCP servers this agent runs, by name.
#[derive(Clone)]
pub struct McpServers {
    servers: Arc<Mutex<HashMap<String, Arc<Server>>>>,
    /// Status messages for the host (through the link's outbound queue).
    events: mpsc::Sender<AgentMessage>,
    restart_base: Duration,
}

struct Server {
    spec: McpSpec,
    stop: CancellationToken,
    /// The live client while the server runs.
    peer: Mutex<Option<Peer<RoleClient>>>,
    tools: Mutex<Vec<Value>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// Our side of the MCP connection: refreshes the tool list when the server says it changed.
#[derive(Clone)]
struct Handler {
    name: String,
    server: std::sync::Weak<Server>,
    events: mpsc::Sender<AgentMessage>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info.name = "claudenest-agent".into();
        info.client_info.version = env!("CARGO_PKG_VERSION").into();
        info
    }

    /// Earlier-era servers notify any time; the current era's go through `listen` below.
    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // Re-read on a task of its own: a request awaited inside a notification handler would
        // wait on the very loop that has to deliver its answer.
        let (handler, peer) = (self.clone(), context.peer.clone());
        tokio::spawn(async move { handler.refresh_tools(&peer).await });
    }
}

impl Handler {
    fn of(server: &Arc<Server>, events: mpsc::Sender<AgentMessage>) -> Self {
        Self {
            name: server.spec.name.clone(),
            server: Arc::downgrade(server),
            events,
        }
    }

    /// Re-reads the server's tools and tells the host.
    async fn refresh_tools(&self, peer: &Peer<RoleClient>) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        match list_tools(peer).await {
            Ok(tools) => {
                *server.tools.lock().unwrap_or_else(|p| p.into_inner()) = tools.clone();
                let _ = self
                    .events
                    .send(status(&self.name, "running", None, Some(tools)))
                    .await;
            }
            Err(err) => {
                tracing::warn!(server = %self.name, error = %err, "re-reading tools failed")
            }
        }
    }

    /// In the 2026-07-28 era a server sends list changes only to a `subscriptions/listen`
    /// stream: hold one open while the client runs (an earlier-era server refuses it; its
    /// notifications reach `on_tool_list_changed` instead).
    async fn listen(self, peer: Peer<RoleClient>, stop: CancellationToken) {
        let filter = SubscriptionFilter::builder().tools_list_changed().build();
        let mut subscription = match peer.listen(filter).await {
            Ok(subscription) => subscription,
            Err(err) => {
                tracing::debug!(server = %self.name, error = %err, "no subscription (earlier-era server)");
                return;
            }
        };
        loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                () = stop.cancelled() => return,
            };
            match next {
                Ok(Some(ServerNotification::ToolListChangedNotification(_))) => {
                    self.refresh_tools(&peer).await;
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(err) => {
                    tracing::debug!(server = %self.name, error = %err, "subscription ended");
                    return;
                }
            }
        }
    }
}

fn status(
    name: &str,
    status: &str,
    error: Option<String>,
    tools: Option<Vec<Value>>,
) -> AgentMessage {
    AgentMessage::McpStatus {
        name: name.to_owned(),
        status: status.to_owned(),
        error,
        tools,
    }
}

async fn list_tools(peer: &Peer<RoleClient>) -> anyhow::Result<Vec<Value>> {
    let tools = peer.list_all_tools().await?;
    Ok(tools
        .into_iter()
        .map(|t| serde_json::to_value(t).expect("tools serialize"))
        .collect())
}

type Client = RunningService<RoleClient, Handler>;

impl McpServers {
    pub fn new(events: mpsc::Sender<AgentMessage>) -> Self {
        Self {
            servers: Arc::default(),
            events,
            restart_base: Duration::from_millis(500),
        }
    }

    fn get(&self, name: &str) -> Option<Arc<Server>> {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Starts the server (restarting it when its spec changed) and returns its tools. Running
    /// already with the same spec: returns the tools it has.
    pub async fn start(&self, spec: McpSpec) -> anyhow::Result<Value> {
        if let Some(existing) = self.get(&spec.name) {
            let running = existing
                .peer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            if existing.spec == spec && running {
                let tools = existing
                    .tools
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                return Ok(serde_json::json!({ "tools": tools }));
            }
            self.stop(&spec.name).await;
        }
        let server = Arc::new(Server {
            spec: spec.clone(),
            stop: CancellationToken::new(),
            peer: Mutex::new(None),
            tools: Mutex::new(Vec::new()),
            stderr: Arc::default(),
        });
        let client = match connect(&server, self.events.clone()).await {
            Ok(client) => client,
            // Said plainly already (an http server that could not be reached).
            Err(err) if err.is::<protocol::CodedError>() => return Err(err),
            Err(err) => anyhow::bail!("{}", describe_failure(&server, &err).await),
        };
        let tools = list_tools(client.peer()).await?;
        listen_for_changes(&server, &client, self.events.clone());
        *server.tools.lock().unwrap_or_else(|p| p.into_inner()) = tools.clone();
        *server.peer.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.peer().clone());
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.name.clone(), server.clone());
        tokio::spawn(supervise(
            server,
            client,
            self.events.clone(),
            self.restart_base,
        ));
        tracing::info!(server = %spec.name, tools = tools.len(), "MCP server started");
        Ok(serde_json::json!({ "tools": tools }))
    }

    /// Stops the server (stdio: stdin closed, SIGTERM, then SIGKILL to its process group).
    pub async fn stop(&self, name: &str) -> bool {
        let server = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let Some(server) = server else {
            return false;
        };
        server.stop.cancel();
        // The supervisor clears the peer once the process is gone.
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT + Duration::from_secs(1);
        while server
            .peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    pub async fn stop_all(&self) {
        let names: Vec<String> = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in names {
            self.stop(&name).await;
        }
    }

    /// `tools/call`: the MCP result as JSON (a tool failure is a result with `isError`).
    pub async fn call(
        &self,
        name: &str,
        tool: &str,
        arguments: Value,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let server = self
            .get(name)
            .with_context(|| format!("the MCP server `{name}` is not running"))?;
        let peer = server
            .peer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .with_context(|| format!("the MCP server `{name}` is restarting"))?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let result = tokio::time::timeout(timeout, peer.call_tool(params))
            .await
            .map_err(|_| {
                anyhow::anyhow!("the tool did not answer within {} ms", timeout.as_millis())
            })?
            .map_err(|err| anyhow::anyhow!("{err}"))?;
        Ok(serde_json::to_value(result)?)
    }
}

/// Keeps a tool-list subscription open for the life of this client.
fn listen_for_changes(server: &Arc<Server>, client: &Client, events: mpsc::Sender<AgentMessage>) {
    let handler = Handler::of(server, events);
    let peer = client.peer().clone();
    // Ends with the client (its transport closing ends the stream) or the server's stop.
    tokio::spawn(handler.listen(peer, server.stop.clone()));
}

/// Starts the process (or opens the URL) and runs the MCP lifecycle.
async fn connect(
    server: &Arc<Server>,
    events: mpsc::Sender<AgentMessage>,
) -> anyhow::Result<Client> {
    let spec = &server.spec;
    let handler = Handler::of(server, events);
    let lifecycle = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    };
    match spec.transport.as_str() {
        "stdio" => {
            let program = spec
                .command
                .as_deref()
                .context("a stdio server needs a command")?;
            let mut command = tokio::process::Command::new(program);
            for name in super::private_env() {
                command.env_remove(name);
            }
            command.args(&spec.args).envs(&spec.env);
            let mut wrapped = process_wrap::tokio::CommandWrap::from(command);
            // Its own process group: stopping it reaches whatever it spawned (npx → node).
            wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
            let (transport, stderr) = TokioChildProcess::builder(wrapped)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("starting `{program}`"))?;
            if let Some(stderr) = stderr {
                tokio::spawn(log_stderr(spec.name.clone(), stderr, server.stderr.clone()));
            }
            Ok(handler.serve_with_lifecycle(transport, lifecycle).await?)
        }
        "http" => {
            let url = spec.url.as_deref().context("an http server needs a url")?;
            let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
            match handler.serve_with_lifecycle(transport, lifecycle).await {
                Ok(client) => Ok(client),
                Err(err) => {
                    // The client library's error names its own types; say plainly instead.
                    tracing::debug!(url, error = %err, "MCP server over HTTP failed");
                    let why = why_unreachable(url).await;
                    Err(protocol::CodedError::new(
                        protocol::codes::UNREACHABLE,
                        format!("could not reach the MCP server at {url}: {why}"),
                    )
                    .into())
                }
            }
        }
        other => anyhow::bail!("the agent does not run `{other}` servers"),
    }
}

/// Why `url` does not serve MCP, in plain words: what a plain request to it meets (the
/// connection's own error, e.g. "Connection refused (os error 111)", or the HTTP status).
async fn why_unreachable(url: &str) -> String {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(err) => return err.to_string(),
    };
    let probe = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await;
    match probe {
        Ok(response) => format!(
            "it answered HTTP {}, not as an MCP server",
            response.status()
        ),
        Err(err) if err.is_timeout() => "no answer within 5 s".to_owned(),
        Err(err) => {
            let err = anyhow::Error::from(err);
            err.chain()
                .last()
                .map_or_else(|| err.to_string(), ToString::to_string)
        }
    }
}

/// The error with what the server said on stderr (usually the real reason).
async fn describe_failure(server: &Server, err: &anyhow::Error) -> String {
    // Give the stderr reader a moment to catch the process's last words.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tail = server.stderr.lock().unwrap_or_else(|p| p.into_inner());
    if tail.is_empty() {
        format!("{err:#}")
    } else {
        let said: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!("{err:#}; stderr: {}", said.join("\n"))
    }
}

async fn log_stderr(
    name: String,
    stderr: tokio::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(server = %name, "{line}");
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Watches a running server until it is stopped; restarts it when it ends on its own.
async fn supervise(
    server: Arc<Server>,
    mut client: Client,
    events: mpsc::Sender<AgentMessage>,
    base: Duration,
) {
    let name = server.spec.name.clone();
    let mut failures = 0u32;
    let mut up_since = tokio::time::Instant::now();
    loop {
        let cancel = client.cancellation_token();
        let waiting = client.waiting();
        tokio::pin!(waiting);
        tokio::select! {
            _ = &mut waiting => {}
            () = server.stop.cancelled() => {
                cancel.cancel();
                // Closing the transport runs the graceful stdio shutdown (stdin, SIGTERM, kill).
                let _ = tokio::time::timeout(STOP_TIMEOUT, waiting).await;
                *server.peer.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::info!(server = %name, "MCP server stopped");
                return;
            }
        }
        *server.peer.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if up_since.elapsed() > STABLE {
            // It stayed up a while: a fresh backoff.
            failures = 0;
        }
        // Ended on its own: restart with backoff until it stays up.
        loop {
            failures += 1;
            let said = describe_failure(&server, &anyhow::anyhow!("the server exited")).await;
            tracing::warn!(server = %name, failures, "{said}");
            if failures > MAX_RESTARTS {
                let _ = events.send(status(&name, "error", Some(said), None)).await;
                return;
            }
            let _ = events
                .send(status(&name, "restarting", Some(said), None))
                .await;
            let delay = base * 2u32.pow(failures.min(6) - 1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = server.stop.cancelled() => return,
            }
            match connect(&server, events.clone()).await {
                Ok(restarted) => match list_tools(restarted.peer()).await {
                    Ok(tools) => {
                        listen_for_changes(&server, &restarted, events.clone());
                        *server.tools.lock().unwrap_or_else(|p| p.into_inner()) = tools.clone();
                        *server.peer.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(restarted.peer().clone());
                        let _ = events
                            .send(status(&name, "running", None, Some(tools)))
                            .await;
                        client = restarted;
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(server = %name, error = %err, "restarted server did not list its tools")
                    }
                },
                Err(err) => tracing::warn!(server = %name, error = %err, "restart failed"),
            }
        }
        up_since = tokio::time::Instant::now();
    }
}
