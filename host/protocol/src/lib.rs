//! What the host and the machine agent share, and nothing else: the link protocol (version
//! [`PROTOCOL_VERSION`]: every message both ends exchange, defined once and compiled into both),
//! the token formats and hashing ([`tokens`]), the skill rules both sides apply ([`skills`]) and
//! private files ([`files`]). Messages are JSON text frames tagged by `type`; see
//! docs/agent-protocol.md.
//!
//! Rules both ends follow:
//! - The agent's first message is `hello`; the host answers `welcome` (or `error` + close).
//! - The host sends `ping`; the agent answers `pong` with the same nonce. A missed pong closes
//!   the link and the machine goes offline.
//! - `request` carries an `id`; the agent answers `reply` or `error` with `reply_to` = that id.
//! - A message that cannot be decoded (unknown `type`, bad fields) is answered with `error`
//!   (code `unknown_type` or `bad_message`), never dropped in silence.
//! - Frames are at most [`MAX_FRAME_BYTES`].

pub mod files;
pub mod skills;
pub mod telemetry;
pub mod tokens;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;

/// Bumped on any incompatible change; the host refuses a `hello` with another version.
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// WebSocket close codes the host uses.
pub mod close {
    /// Another link with the same machine token took over.
    pub const REPLACED: u16 = 4000;
    /// The machine token was regenerated or the machine deleted.
    pub const REVOKED: u16 = 4001;
    /// The agent spoke another protocol version, or not `hello` first.
    pub const PROTOCOL: u16 = 4002;
    /// No pong within the deadline.
    pub const PONG_TIMEOUT: u16 = 4003;
    /// The host is shutting down; reconnect later.
    pub const SHUTDOWN: u16 = 1001;
}

/// What the agent tells the host about its machine (API §3.7 plus what presence and
/// Wake-on-LAN need).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub platform: String,
    pub hostname: String,
    pub arch: String,
    pub agent_version: String,
    pub node_version: Option<String>,
    pub claude_version: Option<String>,
    pub claude_path: Option<String>,
    pub capabilities: Vec<String>,
    pub max_sessions: u32,
    /// MAC addresses of the machine's non-loopback interfaces (`aa:bb:cc:dd:ee:ff`).
    pub mac_addresses: Vec<String>,
    /// IPv4 networks of its non-loopback interfaces, for finding a Wake-on-LAN relay.
    pub networks: Vec<Ipv4Network>,
}

/// An interface address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4Network {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Network {
    /// The network's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        let host_bits = 32 - u32::from(self.prefix.min(32));
        let mask = if host_bits == 32 {
            0
        } else {
            u32::MAX << host_bits
        };
        Ipv4Addr::from(u32::from(self.addr) | !mask)
    }

    /// Whether both addresses are in the same network (by the shorter prefix).
    pub fn same_subnet(&self, other: &Ipv4Network) -> bool {
        let prefix = self.prefix.min(other.prefix).min(32);
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        u32::from(self.addr) & mask == u32::from(other.addr) & mask
    }
}

/// Agent → host.
// `Hello` is much larger than the rest, but each link sends it once: not worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello {
        protocol_version: u32,
        environment: Environment,
        /// Sessions whose processes this agent runs now; the host ends the others it thought
        /// were running on the machine (their agent restarted).
        #[serde(default)]
        sessions: Vec<Uuid>,
    },
    Pong {
        nonce: u64,
    },
    Reply {
        reply_to: u64,
        result: Value,
    },
    Error {
        reply_to: Option<u64>,
        code: String,
        message: String,
    },
    /// Terminal output of a session, numbered per session from 1.
    SessionOutput {
        session_id: Uuid,
        seq: u64,
        data: String,
    },
    /// The session's process ended (sent after its last output chunk).
    SessionExit {
        session_id: Uuid,
        exit_code: Option<i32>,
    },
    /// Token use and cost a headless session reported in its stream-json output.
    SessionUsage {
        session_id: Uuid,
        total_tokens: i64,
        total_cost: f64,
    },
    /// Skills of the machine's folder: after a link opens, every skill (in frames of bounded
    /// size) and then `present`, the complete list of paths there; later, only the skills that
    /// changed or disappeared since the last report.
    SkillsReport {
        skills: Vec<DiskSkill>,
        #[serde(default)]
        present: Option<Vec<String>>,
    },
    /// What a session's Claude Code reported through its hooks (see [`HookReport`]).
    SessionHook {
        session_id: Uuid,
        hook: HookReport,
    },
    /// An MCP server's run state changed (crashed, restarting, running again, tools changed).
    McpStatus {
        name: String,
        status: String,
        error: Option<String>,
        /// Present when the server's tool list is (re)read.
        tools: Option<Vec<Value>>,
    },
}

/// One Claude Code hook call, as the agent read it: where the session stands now and, for a
/// permission dialog, what is asked (the hook waits for `permission_answer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookReport {
    /// Claude Code's `hook_event_name` (`Notification`, `PermissionRequest`, `Stop`, …).
    pub event: String,
    /// The session waits for its person (`true`) or works again (`false`); `None`: no change.
    pub waiting: Option<bool>,
    /// Why it waits: `permission`, `permission_prompt`, `idle_prompt`, `turn_finished`, …
    pub reason: Option<String>,
    /// What Claude Code says (the notification's text, or the permission asked).
    pub message: Option<String>,
    pub permission: Option<PermissionAsk>,
}

/// A tool Claude Code asks permission for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionAsk {
    /// Chosen by the agent; the answer names it.
    pub request_id: Uuid,
    pub tool_name: String,
    pub tool_input: Value,
}

/// A skill as found in the machine's folder (`<path>/SKILL.md`); `content: None` when it is
/// gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSkill {
    pub path: String,
    pub content: Option<String>,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A session's access to ClaudeNest's MCP server: the agent points Claude Code at
/// `<its server URL>/mcp` with this token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMcp {
    pub token: String,
    pub instance_id: String,
    pub project_id: Uuid,
}

/// Secrets stay out of logs: the token is not shown.
impl std::fmt::Debug for SessionMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMcp")
            .field("token", &"***")
            .field("instance_id", &self.instance_id)
            .field("project_id", &self.project_id)
            .finish()
    }
}

/// How the agent runs an MCP server (`stdio` child process or `http` URL).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpSpec {
    pub name: String,
    pub transport: String,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    pub url: Option<String>,
}

/// Secrets stay out of logs: `env` shows its names only.
impl std::fmt::Debug for McpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSpec")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("url", &self.url)
            .finish()
    }
}

/// An mcp-adapter plugin as the agent runs it: the component by hash (the agent fetches it
/// from the host with its machine token and checks the hash), with the tenant's config and
/// grants. The agent checks every mount against the roots its machine's owner allowed, and
/// every HTTP grant against its own allow-list, before each call.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSpec {
    pub name: String,
    pub sha256: String,
    /// The user the plugin belongs to: calls count against that user's share of the runtime.
    pub owner: String,
    #[serde(default)]
    pub config: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub mounts: Vec<PluginMount>,
    /// `host` or `host:port` grants.
    #[serde(default)]
    pub http: Vec<String>,
}

/// Config values may be secrets: only their names are shown.
impl std::fmt::Debug for PluginSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSpec")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("owner", &self.owner)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("mounts", &self.mounts)
            .field("http", &self.http)
            .finish()
    }
}

/// A directory the tenant granted, seen by the plugin as `/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMount {
    pub name: String,
    pub path: String,
    pub writable: bool,
}

/// Where a session's output stands on the host, sent in `welcome` for each session the agent
/// listed in its `hello`: the agent resends what follows `acked_seq` and drops the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCursor {
    pub session_id: Uuid,
    pub acked_seq: u64,
    /// The session already ended on the host (terminated while the link was down): the agent
    /// ends its process too.
    pub ended: bool,
}

/// Host → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    Welcome {
        protocol_version: u32,
        machine_id: Uuid,
        ping_interval_secs: u64,
        /// The host's cursor for each session the agent listed in `hello`. Sessions the host
        /// does not know (or not as this machine's) are missing: the agent ends and forgets them.
        #[serde(default)]
        sessions: Vec<SessionCursor>,
    },
    Ping {
        nonce: u64,
    },
    Request {
        id: u64,
        request: AgentRequest,
    },
    Error {
        reply_to: Option<u64>,
        code: String,
        message: String,
    },
    /// Output up to `seq` is stored: the agent may drop it. `exit_recorded`: the exit is
    /// stored too and the agent forgets the session.
    SessionAck {
        session_id: Uuid,
        seq: u64,
        #[serde(default)]
        exit_recorded: bool,
    },
    /// Sent just before the host closes the link, saying why.
    Goodbye {
        reason: String,
    },
}

/// What the host can ask an agent to do. Each has a typed reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AgentRequest {
    /// Answers the payload back (link health, round-trip measurement).
    Echo {
        payload: Value,
    },
    /// Re-reads and returns the machine's [`Environment`].
    Environment,
    /// Sends a Wake-on-LAN magic packet for `mac` to `target` (`ip:port`) from the agent's LAN.
    Wake {
        mac: String,
        target: String,
    },
    /// Starts a session's process in a PTY sized `cols`×`rows`.
    SessionStart {
        session_id: Uuid,
        mode: String,
        project_path: Option<String>,
        initial_prompt: Option<String>,
        cols: u16,
        rows: u16,
        /// ClaudeNest's MCP server for the session's Claude Code (`--mcp-config`), when the
        /// session works in a project.
        #[serde(default)]
        mcp: Option<SessionMcp>,
        /// The `claude_path` registered for the machine; the agent's own `--claude-path` wins.
        #[serde(default)]
        claude_path: Option<String>,
    },
    /// Types `data` into the session's terminal.
    SessionInput {
        session_id: Uuid,
        data: String,
    },
    SessionResize {
        session_id: Uuid,
        cols: u16,
        rows: u16,
    },
    /// Ends the session's process: hang-up (PTY) or SIGTERM, then SIGKILL to its process group
    /// after the agent's grace period.
    SessionTerminate {
        session_id: Uuid,
    },
    /// The current screen of an interactive session (its terminal emulator's state).
    SessionSnapshot {
        session_id: Uuid,
    },
    /// Stops the current run: Ctrl-C into the PTY (SIGINT for pipes), then terminate when the
    /// process is still there after the agent's grace period.
    SessionInterrupt {
        session_id: Uuid,
    },
    /// The person's answer to a permission the session's Claude Code asked for.
    PermissionAnswer {
        session_id: Uuid,
        request_id: Uuid,
        allow: bool,
        message: Option<String>,
    },
    /// Writes `<path>/SKILL.md`. When the file's current hash is not `expect_hash` (what the
    /// host last agreed; `None` = nothing), the current file is first kept as a conflict copy.
    SkillWrite {
        path: String,
        content: String,
        expect_hash: Option<String>,
    },
    /// Writes `content` beside the skill as `SKILL.conflict-<time>.md` (a losing version).
    SkillKeepCopy {
        path: String,
        content: String,
    },
    /// Removes `<path>/SKILL.md`, with the same conflict rule as `skill_write`.
    SkillRemove {
        path: String,
        expect_hash: Option<String>,
    },
    /// Starts (or, running with the same spec, just describes) an MCP server; replies with its
    /// tools.
    McpStart {
        server: McpSpec,
    },
    McpStop {
        name: String,
    },
    /// `tools/call` on a running server; replies with the MCP `CallToolResult`.
    McpCall {
        name: String,
        tool: String,
        arguments: Value,
        timeout_ms: u64,
    },
    /// Whether grants would be allowed on this machine; replies `{"mounts": [reason|null…],
    /// "http": [reason|null…]}` in the order given.
    PluginCheck {
        mounts: Vec<PluginMount>,
        http: Vec<String>,
    },
    /// An mcp-adapter plugin's tools; replies `{"tools": [{name, description, inputSchema}]}`.
    PluginTools {
        plugin: PluginSpec,
    },
    /// Calls a plugin's tool; replies with an MCP `CallToolResult`. A call the plugin refuses
    /// is error `refused`; a trap, timeout or limit is `plugin_failed`; a grant the machine
    /// does not allow is `not_allowed`.
    PluginCall {
        plugin: PluginSpec,
        tool: String,
        arguments: Value,
    },
    /// Drops a deleted plugin's compiled code from memory and disk.
    PluginForget {
        sha256: String,
    },
}

/// Error codes in `error` messages.
pub mod codes {
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    pub const BAD_MESSAGE: &str = "bad_message";
    pub const UNEXPECTED: &str = "unexpected";
    pub const FAILED: &str = "failed";
    /// A plugin refused the call (unknown tool, arguments it cannot take).
    pub const REFUSED: &str = "refused";
    /// A plugin trapped, timed out, hit a limit, or could not be fetched or compiled.
    pub const PLUGIN_FAILED: &str = "plugin_failed";
    /// A grant outside what the machine's owner allows.
    pub const NOT_ALLOWED: &str = "not_allowed";
    /// An MCP server at a URL could not be reached or did not speak MCP.
    pub const UNREACHABLE: &str = "unreachable";
}

/// An error that carries its protocol code (see [`codes`]) to the `error` reply.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: &'static str,
    pub message: String,
}

impl CodedError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a frame could not be decoded, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// `id` (or `reply_to`) of the offending frame, when it had one.
    pub reply_to: Option<u64>,
    pub code: &'static str,
    pub message: String,
}

/// Decodes a frame, telling an unknown `type` apart from a malformed known one.
pub fn decode<T: DeserializeOwned>(text: &str, known_types: &[&str]) -> Result<T, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError {
        reply_to: None,
        code: codes::BAD_MESSAGE,
        message: format!("not JSON: {e}"),
    })?;
    let reply_to = value
        .get("id")
        .or_else(|| value.get("reply_to"))
        .and_then(Value::as_u64);
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !known_types.contains(&kind.as_str()) {
        return Err(DecodeError {
            reply_to,
            code: codes::UNKNOWN_TYPE,
            message: format!("unknown message type `{kind}` (protocol {PROTOCOL_VERSION})"),
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError {
        reply_to,
        code: codes::BAD_MESSAGE,
        message: format!("bad `{kind}` message: {e}"),
    })
}

/// The `type` names of [`AgentMessage`].
pub const AGENT_MESSAGE_TYPES: &[&str] = &[
    "hello",
    "pong",
    "reply",
    "error",
    "session_output",
    "session_exit",
    "session_usage",
    "session_hook",
    "skills_report",
    "mcp_status",
];
/// The `type` names of [`HostMessage`].
pub const HOST_MESSAGE_TYPES: &[&str] = &[
    "welcome",
    "ping",
    "request",
    "error",
    "session_ack",
    "goodbye",
];

pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).expect("protocol messages always serialize")
}

/// The Wake-on-LAN magic packet: 6 × `0xFF`, then the MAC 16 times.
pub fn magic_packet(mac: [u8; 6]) -> [u8; 102] {
    let mut packet = [0xFF; 102];
    for chunk in packet[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac);
    }
    packet
}

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

/// Sends the magic packet for `mac` to `target` over UDP (broadcast allowed).
pub async fn send_magic_packet(mac: [u8; 6], target: std::net::SocketAddr) -> std::io::Result<()> {
    let bind: std::net::SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.set_broadcast(true)?;
    socket.send_to(&magic_packet(mac), target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let spec = McpSpec {
            name: "fetch".into(),
            transport: "stdio".into(),
            command: Some("uvx".into()),
            args: vec![],
            env: [("API_KEY".to_owned(), "s3cret".to_owned())].into(),
            url: None,
        };
        let shown = format!("{spec:?}");
        assert!(
            shown.contains("API_KEY") && !shown.contains("s3cret"),
            "{shown}"
        );
        let access = SessionMcp {
            token: "mcs_s3cret".into(),
            instance_id: "session-1".into(),
            project_id: Uuid::nil(),
        };
        assert!(!format!("{access:?}").contains("s3cret"));
    }

    #[test]
    fn every_message_type_round_trips_and_the_type_lists_are_complete() {
        let agent = [
            AgentMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                environment: Environment::default(),
                sessions: vec![Uuid::nil()],
            },
            AgentMessage::Pong { nonce: 1 },
            AgentMessage::Reply {
                reply_to: 2,
                result: Value::Null,
            },
            AgentMessage::Error {
                reply_to: None,
                code: "x".into(),
                message: "y".into(),
            },
            AgentMessage::SessionOutput {
                session_id: Uuid::nil(),
                seq: 1,
                data: "hi".into(),
            },
            AgentMessage::SessionExit {
                session_id: Uuid::nil(),
                exit_code: Some(0),
            },
            AgentMessage::SessionUsage {
                session_id: Uuid::nil(),
                total_tokens: 12,
                total_cost: 0.5,
            },
            AgentMessage::SessionHook {
                session_id: Uuid::nil(),
                hook: HookReport {
                    event: "PermissionRequest".into(),
                    waiting: Some(true),
                    reason: Some("permission".into()),
                    message: Some("Bash: ls".into()),
                    permission: Some(PermissionAsk {
                        request_id: Uuid::nil(),
                        tool_name: "Bash".into(),
                        tool_input: serde_json::json!({"command": "ls"}),
                    }),
                },
            },
            AgentMessage::SkillsReport {
                present: Some(vec!["debugging".into()]),
                skills: vec![DiskSkill {
                    path: "debugging".into(),
                    content: None,
                    modified: chrono::DateTime::UNIX_EPOCH,
                }],
            },
            AgentMessage::McpStatus {
                name: "time".into(),
                status: "running".into(),
                error: None,
                tools: Some(vec![]),
            },
        ];
        for m in &agent {
            let decoded: AgentMessage = decode(&encode(m), AGENT_MESSAGE_TYPES).unwrap();
            assert_eq!(&decoded, m);
        }
        assert_eq!(agent.len(), AGENT_MESSAGE_TYPES.len());
        let host = [
            HostMessage::Welcome {
                protocol_version: 1,
                machine_id: Uuid::nil(),
                ping_interval_secs: 15,
                sessions: vec![SessionCursor {
                    session_id: Uuid::nil(),
                    acked_seq: 9,
                    ended: false,
                }],
            },
            HostMessage::Ping { nonce: 3 },
            HostMessage::Request {
                id: 4,
                request: AgentRequest::Wake {
                    mac: "aa:bb:cc:dd:ee:ff".into(),
                    target: "127.0.0.1:9".into(),
                },
            },
            HostMessage::Error {
                reply_to: Some(4),
                code: "x".into(),
                message: "y".into(),
            },
            HostMessage::SessionAck {
                session_id: Uuid::nil(),
                seq: 9,
                exit_recorded: true,
            },
            HostMessage::Goodbye {
                reason: "bye".into(),
            },
        ];
        for m in &host {
            let decoded: HostMessage = decode(&encode(m), HOST_MESSAGE_TYPES).unwrap();
            assert_eq!(&decoded, m);
        }
        assert_eq!(host.len(), HOST_MESSAGE_TYPES.len());
    }

    #[test]
    fn unknown_and_malformed_frames_are_told_apart() {
        let err = decode::<AgentMessage>(
            r#"{"type":"skills_discovered","id":7}"#,
            AGENT_MESSAGE_TYPES,
        )
        .unwrap_err();
        assert_eq!((err.code, err.reply_to), (codes::UNKNOWN_TYPE, Some(7)));
        let err = decode::<AgentMessage>(r#"{"type":"pong"}"#, AGENT_MESSAGE_TYPES).unwrap_err();
        assert_eq!(err.code, codes::BAD_MESSAGE);
        let err = decode::<AgentMessage>("nope", AGENT_MESSAGE_TYPES).unwrap_err();
        assert_eq!(err.code, codes::BAD_MESSAGE);
    }

    #[test]
    fn magic_packets_and_macs() {
        let mac = parse_mac("01:23:45:67:89:AB").unwrap();
        assert_eq!(mac, [0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
        assert_eq!(parse_mac("01-23-45-67-89-ab"), Some(mac));
        assert_eq!(parse_mac("01:23:45:67:89"), None);
        assert_eq!(parse_mac("01:23:45:67:89:zz"), None);
        let packet = magic_packet(mac);
        assert_eq!(&packet[..6], &[0xFF; 6]);
        assert!(packet[6..].chunks(6).all(|c| c == mac));
    }

    #[test]
    fn subnets() {
        let net = |a: [u8; 4], p| Ipv4Network {
            addr: a.into(),
            prefix: p,
        };
        assert!(net([192, 168, 1, 10], 24).same_subnet(&net([192, 168, 1, 99], 24)));
        assert!(!net([192, 168, 1, 10], 24).same_subnet(&net([192, 168, 2, 10], 24)));
        assert!(net([10, 1, 2, 3], 8).same_subnet(&net([10, 9, 9, 9], 16)));
    }
}
