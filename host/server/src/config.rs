//! Layered configuration: built-in defaults → optional TOML file → `CLAUDENEST_*` environment
//! variables → command-line flags (later wins). Nested keys use `__` in variable names:
//! `CLAUDENEST_OAUTH__GITHUB__CLIENT_ID` is `[oauth.github] client_id`. Unknown keys are an
//! error, so a typo is never silently ignored. Every key is listed in docs/configuration.md.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Everything the host server needs to run. Build it with [`Config::load`] (or by hand in tests).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Where the embedded SQLite database (and later caches) live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; `None` means the SQLite file in `data_dir`.
    pub database_url: Option<Secret>,
    /// Base URL users reach the service at, for links in e-mails. Default: `http://{bind}`.
    pub public_url: Option<String>,
    /// `tracing` EnvFilter directive, e.g. `info,claudenest=debug`.
    pub log: String,
    /// Emit logs as JSON lines instead of human-readable text.
    pub log_json: bool,
    /// Seconds shutdown waits for in-flight requests before giving up on them.
    pub shutdown_timeout_secs: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub rate_limits: RateLimits,
    pub auth: AuthSettings,
    pub mail: MailSettings,
    pub oauth: OAuthSettings,
    pub agent_link: AgentLinkSettings,
    pub coordination: CoordinationSettings,
    pub sessions: SessionSettings,
    pub plugins: PluginSettings,
    pub embeddings: EmbeddingSettings,
    pub mcp: McpServerSettings,
    pub wake_on_lan: WakeOnLanSettings,
    pub notifications: NotificationSettings,
    pub metrics: MetricsSettings,
    pub retention: RetentionSettings,
    /// Pusher app id (for the HTTP publishing API path).
    pub pusher_app_id: String,
    /// Pusher app key: clients connect to `/app/{key}`.
    pub pusher_app_key: String,
    /// Signs channel authorizations and publishing requests. Default: generated on first run
    /// and kept in `<data_dir>/pusher-secret` (0600). Set it when several hosts share a database.
    pub pusher_app_secret: Option<Secret>,
    /// Seals secrets stored in the database (MCP servers' `env` values): 64 hex digits.
    /// Default: generated on first run and kept in `<data_dir>/secret-key` (0600). Set the same
    /// one on every host sharing a database.
    pub secret_key: Option<Secret>,
    /// Largest inbound WebSocket message; larger ones close the socket with 1009.
    pub pusher_max_message_bytes: usize,
    /// Seconds of silence after which the server pings a client (and told to clients).
    pub pusher_activity_timeout_secs: u64,
}

/// Timings of multi-instance coordination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinationSettings {
    /// An instance silent this long is disconnected; its tasks and locks are released.
    pub instance_timeout_secs: u64,
    /// How often the sweeper runs (stale instances, timed-out claims, expired locks).
    pub sweep_interval_secs: u64,
}

impl Default for CoordinationSettings {
    fn default() -> Self {
        Self {
            instance_timeout_secs: 300,
            sweep_interval_secs: 15,
        }
    }
}

/// ClaudeNest's own MCP server at `/mcp` (docs/mcp-server.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerSettings {
    /// `Host` values `/mcp` answers (DNS-rebinding protection, as the MCP spec asks); add the
    /// names the host is reached by (`host` or `host:port`).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed (`scheme://host[:port]`); requests without `Origin` pass.
    /// Empty: any request with an `Origin` header is refused.
    pub allowed_origins: Vec<String>,
}

impl Default for McpServerSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
        }
    }
}

/// Which embedder context search uses (docs/context.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingSettings {
    /// `auto` (MiniLM if its files are in `model_dir`, else `http` if `http_url` is set, else
    /// `hashing`), `minilm`, `http` or `hashing`.
    pub provider: String,
    /// all-MiniLM-L6-v2 files. Default: `<data_dir>/models/all-MiniLM-L6-v2`.
    pub model_dir: Option<PathBuf>,
    /// An OpenAI-compatible API base, e.g. `http://127.0.0.1:11434/v1` (Ollama).
    pub http_url: Option<String>,
    pub http_model: String,
    pub http_api_key: Option<Secret>,
    /// Where `claudenest model fetch` downloads the MiniLM files from.
    pub fetch_base_url: String,
    /// Chunks embedded per batch by the background worker.
    pub batch_size: usize,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        Self {
            provider: "auto".into(),
            model_dir: None,
            http_url: None,
            http_model: "text-embedding-3-small".into(),
            http_api_key: None,
            fetch_base_url:
                "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main".into(),
            batch_size: 32,
        }
    }
}

impl Config {
    /// Where the MiniLM files are (or go).
    pub fn model_dir(&self) -> PathBuf {
        self.embeddings
            .model_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models/all-MiniLM-L6-v2"))
    }
}

/// Wake-on-LAN: where magic packets may go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WakeOnLanSettings {
    /// Targets (`ip` or `ip:port`) allowed besides broadcast addresses on ports 7 and 9: a
    /// machine's settings can otherwise not aim the host's packets at anything else.
    pub allowed_targets: Vec<String>,
}

/// How long what grows with use is kept; 0 keeps it forever. Swept in bounded batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// How often the retention sweep runs.
    pub interval_secs: u64,
    /// Project activity (broadcasts included) older than this is removed.
    pub activity_days: u64,
    /// And beyond this many entries per project, the oldest go.
    pub activity_per_project: u64,
    /// Session log entries older than this are removed (the newest output per session is also
    /// capped by `sessions.log_retention_chunks`).
    pub session_log_days: u64,
    /// Notification delivery log entries older than this are removed.
    pub delivery_days: u64,
    /// Answered and expired permission requests (the audit) older than this are removed.
    pub permission_days: u64,
    /// Relayed event payloads (PostgreSQL's large-event relay) older than this many seconds.
    pub relayed_event_secs: u64,
    /// Rows deleted per statement; a sweep runs at most 20 statements per kind, and leaves the
    /// rest for the next sweep.
    pub batch: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            activity_days: 90,
            activity_per_project: 10_000,
            session_log_days: 0,
            delivery_days: 30,
            permission_days: 365,
            relayed_event_secs: 3600,
            batch: 1000,
        }
    }
}

/// Prometheus metrics at `/metrics`: never public by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// A separate address serving only `/metrics`, unauthenticated (keep it on loopback or a
    /// private network) [default: none].
    pub bind: Option<SocketAddr>,
    /// Serves `/metrics` on the main address to `Authorization: Bearer <token>` [default: none,
    /// and `/metrics` there answers 404].
    pub token: Option<Secret>,
}

/// Notifications ("needs you"): where the host may send them and how it retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// Hosts (`host` or `host:port`) targets may name although they lead to loopback, private
    /// or link-local addresses. Users cannot aim the host at its own network otherwise.
    pub allow_hosts: Vec<String>,
    /// Attempts per delivery (the first included).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each next one.
    pub retry_base_ms: u64,
    /// How long one attempt may take.
    pub timeout_secs: u64,
    /// The VAPID key Web Push notices are signed with: the 32-byte P-256 private key in
    /// base64url. Default: generated on first run and kept in `<data_dir>/vapid-key` (0600).
    /// Set the same one on every host sharing a database (browsers subscribe to one key).
    pub vapid_private_key: Option<Secret>,
    /// Who push services can reach about this host's notices (`mailto:` or `https:`).
    /// Default: the public URL.
    pub vapid_contact: Option<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            allow_hosts: Vec::new(),
            max_attempts: 5,
            retry_base_ms: 1000,
            timeout_secs: 10,
            vapid_private_key: None,
            vapid_contact: None,
        }
    }
}

/// WebAssembly plugins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Deadline of one plugin call.
    pub call_timeout_ms: u64,
    /// Linear memory a plugin instance may grow to.
    pub memory_mib: u64,
    /// Bytes a call may return.
    pub max_output_bytes: usize,
    /// Largest component accepted at install.
    pub max_component_bytes: usize,
    /// Plugins one user may install.
    pub max_plugins_per_user: usize,
    /// Bytes of components one user may install, together.
    pub max_bytes_per_user: u64,
    /// Memory all concurrent plugin calls in the host may hold together
    /// (`total_memory_mib / memory_mib` calls run at once).
    pub total_memory_mib: u64,
    /// Plugin calls one user may have running in the host at once.
    pub calls_per_user: usize,
    /// Longest a component may take to compile at install.
    pub compile_timeout_secs: u64,
    /// Functions a component may define, checked before compiling (compile time and memory
    /// grow with them; CPython compiled by componentize-py has about 13,400).
    pub max_functions: usize,
    /// MiB of code a component may hold, checked before compiling (CPython: about 6.3).
    pub max_code_mib: usize,
    /// Hosts (`host` or `host:port`) plugins the host runs (summarizers, skill processors) may
    /// be granted: the only hosts they can reach, and the only way to an internal address.
    pub http_allow: Vec<String>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            call_timeout_ms: 5000,
            memory_mib: 64,
            max_output_bytes: 1024 * 1024,
            max_component_bytes: 32 * 1024 * 1024,
            max_plugins_per_user: 32,
            max_bytes_per_user: 256 * 1024 * 1024,
            total_memory_mib: 512,
            calls_per_user: 2,
            compile_timeout_secs: 60,
            max_functions: 30_000,
            max_code_mib: 24,
            http_allow: Vec::new(),
        }
    }
}

/// Session logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Output chunks (each at most 16 KiB) kept per session; older output leaves the log as
    /// new output arrives. Input, status and error entries are kept. 0 keeps everything.
    pub log_retention_chunks: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            log_retention_chunks: 50_000,
        }
    }
}

/// Timings of host ↔ agent links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentLinkSettings {
    /// The host pings each agent this often.
    pub ping_interval_secs: u64,
    /// A ping unanswered this long closes the link (the machine goes offline).
    pub pong_timeout_secs: u64,
    /// An agent must say hello within this long after connecting.
    pub hello_timeout_secs: u64,
}

impl Default for AgentLinkSettings {
    fn default() -> Self {
        Self {
            ping_interval_secs: 15,
            pong_timeout_secs: 10,
            hello_timeout_secs: 10,
        }
    }
}

/// Requests per minute for each rate-limited group (API §13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Authentication endpoints, counted per client IP.
    pub auth_per_minute: u32,
    /// Login attempts per account (e-mail) from one client address, on top of the per-IP
    /// limit: someone elsewhere cannot lock a person out.
    pub login_per_account_per_minute: u32,
    /// Authenticated API, counted per bearer token.
    pub api_per_minute: u32,
    /// New realtime WebSocket connections (`/app/{key}`), counted per client IP: enough for
    /// a busy office behind one address.
    pub websocket_per_minute: u32,
    /// Realtime sockets open at once from one client address.
    pub websocket_connections_per_address: usize,
    /// Proxies (`ip` or `ip/prefix`) whose `X-Forwarded-For` names the client; nobody else's
    /// is believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            auth_per_minute: 10,
            login_per_account_per_minute: 5,
            api_per_minute: 1000,
            websocket_per_minute: 1200,
            websocket_connections_per_address: 2000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Lifetimes of what sign-in hands out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Days a token from login/register/OAuth lives.
    pub session_token_days: u32,
    /// Days it lives when the login asked to be remembered.
    pub remember_token_days: u32,
    /// Minutes a password-reset link stays valid.
    pub reset_token_minutes: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_token_days: 30,
            remember_token_days: 365,
            reset_token_minutes: 60,
        }
    }
}

/// Outgoing mail. Without `smtp_url`, password-reset links are written to the log instead.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `smtp://user:pass@host:587?tls=required`, `smtps://…`, or `smtp://127.0.0.1:2525`.
    pub smtp_url: Option<Secret>,
    /// Sender address. Default: `ClaudeNest <no-reply@localhost>`.
    pub from: Option<String>,
}

/// OAuth providers (API §2.1). A provider without settings answers a clear error.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    pub github: Option<OAuthProvider>,
    pub google: Option<OAuthProvider>,
}

/// One OAuth provider. The endpoint URLs default to the provider's public ones.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthProvider {
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the provider sends the browser back: `{public_url}/api/auth/{provider}/callback`.
    pub redirect_url: Option<String>,
    pub auth_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// GitHub only: the list of the user's addresses with their verified flags.
    pub emails_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: default_data_dir(),
            database_url: None,
            public_url: None,
            log: "info".into(),
            log_json: false,
            shutdown_timeout_secs: 10,
            max_body_bytes: 2 * 1024 * 1024,
            rate_limits: RateLimits::default(),
            auth: AuthSettings::default(),
            mail: MailSettings::default(),
            oauth: OAuthSettings::default(),
            agent_link: AgentLinkSettings::default(),
            coordination: CoordinationSettings::default(),
            sessions: SessionSettings::default(),
            plugins: PluginSettings::default(),
            embeddings: EmbeddingSettings::default(),
            mcp: McpServerSettings::default(),
            wake_on_lan: WakeOnLanSettings::default(),
            notifications: NotificationSettings::default(),
            metrics: MetricsSettings::default(),
            retention: RetentionSettings::default(),
            pusher_app_id: "claudenest".into(),
            pusher_app_key: "claudenest".into(),
            pusher_app_secret: None,
            secret_key: None,
            pusher_max_message_bytes: 10 * 1024,
            pusher_activity_timeout_secs: 30,
        }
    }
}

/// A string that never shows in `Debug` output, and therefore never in logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; anything else → `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        },
        None => format!("{scheme}://{rest}"),
    }
}

pub use claudenest_protocol::files::default_data_dir;

/// Top-level keys, so `CLAUDENEST_*` variables that are not settings (`CLAUDENEST_CONFIG`,
/// test variables) are not mistaken for typos.
const KEYS: &[&str] = &[
    "bind",
    "data_dir",
    "database_url",
    "public_url",
    "log",
    "log_json",
    "shutdown_timeout_secs",
    "max_body_bytes",
    "rate_limits",
    "auth",
    "mail",
    "oauth",
    "agent_link",
    "coordination",
    "sessions",
    "plugins",
    "embeddings",
    "mcp",
    "wake_on_lan",
    "notifications",
    "metrics",
    "retention",
    "pusher_app_id",
    "pusher_app_key",
    "pusher_app_secret",
    "secret_key",
    "pusher_max_message_bytes",
    "pusher_activity_timeout_secs",
];

impl Config {
    /// Defaults, then `file`, then `CLAUDENEST_*` variables, then `flags` (a TOML-shaped table of
    /// the flags that were given).
    pub fn load(file: Option<&Path>, flags: impl Serialize) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file_exact(path));
        }
        // Keys are still upper-case here; figment lower-cases them when it emits them.
        let env = Env::prefixed("CLAUDENEST_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|err| anyhow::anyhow!("configuration: {err}"))?;
        for entry in &config.plugins.http_allow {
            crate::plugins::hosts::HostEntry::parse(entry)
                .map_err(|e| anyhow::anyhow!("configuration: plugins.http_allow `{entry}`: {e}"))?;
        }
        Ok(config)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// The URL of the store to open: the configured one, or the SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.expose().is_empty() => url.expose().to_owned(),
            _ => format!(
                "sqlite://{}",
                self.data_dir.join("claudenest.sqlite3").display()
            ),
        }
    }

    /// Base URL for links that leave the server (reset e-mails, OAuth redirects).
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type; nothing to shrink there.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let file = dir.join("c.toml");
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Tests that read the environment run inside figment's `Jail`, one at a time, so one
    /// test's variables never leak into another.
    fn jailed(test: impl FnOnce()) {
        figment::Jail::expect_with(|_| {
            test();
            Ok(())
        });
    }

    #[test]
    fn later_layers_win_and_unset_fields_fall_through() {
        jailed(later_layers);
    }

    fn later_layers() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "bind = \"127.0.0.1:9000\"\nlog = \"debug\"\n[rate_limits]\napi_per_minute = 5\n\
             [oauth.github]\nclient_id = \"id\"\nclient_secret = \"shh\"\n",
        );
        let flags = serde_json::json!({"bind": "127.0.0.1:9100"});
        let config = Config::load(Some(&file), flags).unwrap();
        assert_eq!(config.bind.port(), 9100, "flag beats file");
        assert_eq!(config.log, "debug", "file beats default");
        assert_eq!(config.rate_limits.api_per_minute, 5);
        assert_eq!(config.rate_limits.auth_per_minute, 10, "default kept");
        let github = config.oauth.github.as_ref().unwrap();
        assert_eq!(github.client_secret.expose(), "shh");
        assert!(config.oauth.google.is_none());
    }

    #[test]
    fn environment_variables_sit_between_the_file_and_the_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "log = \"debug\"\nbind = \"127.0.0.1:9000\"\n")?;
            jail.set_env("CLAUDENEST_LOG", "trace");
            jail.set_env("CLAUDENEST_BIND", "127.0.0.1:9001");
            jail.set_env("CLAUDENEST_RATE_LIMITS__API_PER_MINUTE", "7");
            jail.set_env("CLAUDENEST_LOG_JSON", "true");
            // Not settings: must not be taken for unknown keys.
            jail.set_env("CLAUDENEST_CONFIG", "c.toml");
            jail.set_env("CLAUDENEST_TEST_PG_URL", "postgres://x");
            let flags = serde_json::json!({"bind": "127.0.0.1:9002"});
            let config = Config::load(Some(Path::new("c.toml")), flags).unwrap();
            assert_eq!(config.log, "trace", "env beats file");
            assert_eq!(config.bind.port(), 9002, "flag beats env");
            assert_eq!(config.rate_limits.api_per_minute, 7, "nested keys use __");
            assert!(config.log_json);
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        jailed(unknown_keys);
    }

    fn unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "bnd = \"127.0.0.1:9000\"\n");
        let err = Config::load(Some(&file), serde_json::json!({})).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        let missing = Config::load(Some(&dir.path().join("nope.toml")), serde_json::json!({}));
        assert!(missing.is_err());
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let mut config = Config {
            database_url: Some(Secret::new("postgres://app:hunter2@127.0.0.1/cn")),
            ..Config::default()
        };
        config.oauth.google = Some(OAuthProvider {
            client_id: "id".into(),
            client_secret: Secret::new("s3cr3t"),
            redirect_url: None,
            auth_url: None,
            token_url: None,
            userinfo_url: None,
            emails_url: None,
        });
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("postgres://app:***@127.0.0.1/cn"));
    }
}
