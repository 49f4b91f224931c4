//! Layered configuration: built-in defaults → optional TOML file → `CLAUDENEST_*` environment
//! variables → command-line flags. Clap resolves the last two (a flag beats its env var), so this
//! module only has to lay the file under whatever clap produced.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use serde::Deserialize;

/// Everything the host server needs to run. Build it with [`Config::load`] (or by hand in tests).
#[derive(Clone)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// Where the embedded SQLite database (and later caches) live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; `None` means the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `tracing` EnvFilter directive, e.g. `info,claudenest=debug`.
    pub log: String,
    /// Emit logs as JSON lines instead of human-readable text.
    pub log_json: bool,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub rate_limits: RateLimits,
}

/// Requests per minute for each rate-limited group (API §13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Authentication endpoints, counted per client IP.
    pub auth_per_minute: u32,
    /// Authenticated API, counted per bearer token.
    pub api_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            auth_per_minute: 10,
            api_per_minute: 1000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: default_data_dir(),
            database_url: None,
            log: "info".into(),
            log_json: false,
            shutdown_timeout: Duration::from_secs(10),
            max_body_bytes: 2 * 1024 * 1024,
            rate_limits: RateLimits::default(),
        }
    }
}

/// The database URL can carry a password: keep it out of `Debug` output and therefore out of logs.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("log", &self.log)
            .field("log_json", &self.log_json)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rate_limits", &self.rate_limits)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `$XDG_DATA_HOME/claudenest`, else `~/.local/share/claudenest`, else `./claudenest-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("claudenest");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/share/claudenest");
    }
    PathBuf::from("claudenest-data")
}

/// Settings as they can appear in the TOML file, the environment or on the command line.
/// Every field is optional; `None` means "not set at this layer".
#[derive(Debug, Default, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log: Option<String>,
    pub log_json: Option<bool>,
    pub shutdown_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub rate_limit_auth_per_minute: Option<u32>,
    pub rate_limit_api_per_minute: Option<u32>,
}

impl Overrides {
    /// Reads a TOML file; unknown keys are an error so a typo is never silently ignored.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// Fields set in `upper` win over fields set in `self`.
    pub fn layered_under(self, upper: Overrides) -> Overrides {
        Overrides {
            bind: upper.bind.or(self.bind),
            data_dir: upper.data_dir.or(self.data_dir),
            database_url: upper.database_url.or(self.database_url),
            log: upper.log.or(self.log),
            log_json: upper.log_json.or(self.log_json),
            shutdown_timeout_secs: upper.shutdown_timeout_secs.or(self.shutdown_timeout_secs),
            max_body_bytes: upper.max_body_bytes.or(self.max_body_bytes),
            rate_limit_auth_per_minute: upper
                .rate_limit_auth_per_minute
                .or(self.rate_limit_auth_per_minute),
            rate_limit_api_per_minute: upper
                .rate_limit_api_per_minute
                .or(self.rate_limit_api_per_minute),
        }
    }
}

impl Config {
    /// Defaults, then the optional file, then `cli` (environment and flags as clap resolved them).
    pub fn load(file: Option<&Path>, cli: Overrides) -> anyhow::Result<Self> {
        let file = match file {
            Some(path) => Overrides::from_file(path)?,
            None => Overrides::default(),
        };
        Ok(Config::default().apply(file.layered_under(cli)))
    }

    /// Applies every field that is set.
    pub fn apply(mut self, o: Overrides) -> Self {
        if let Some(v) = o.bind {
            self.bind = v;
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.database_url.filter(|u| !u.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = o.log {
            self.log = v;
        }
        if let Some(v) = o.log_json {
            self.log_json = v;
        }
        if let Some(v) = o.shutdown_timeout_secs {
            self.shutdown_timeout = Duration::from_secs(v);
        }
        if let Some(v) = o.max_body_bytes {
            self.max_body_bytes = v;
        }
        if let Some(v) = o.rate_limit_auth_per_minute {
            self.rate_limits.auth_per_minute = v;
        }
        if let Some(v) = o.rate_limit_api_per_minute {
            self.rate_limits.api_per_minute = v;
        }
        self
    }

    /// The URL of the store to open: the configured one, or the SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("claudenest.sqlite3").display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_unset_fields_fall_through() {
        let dir = std::env::temp_dir().join(format!("cn-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nlog = \"debug\"\nrate_limit_api_per_minute = 5\n",
        )
        .unwrap();
        let cli = Overrides {
            bind: Some("127.0.0.1:9100".parse().unwrap()),
            ..Default::default()
        };
        let config = Config::load(Some(&file), cli).unwrap();
        assert_eq!(config.bind.port(), 9100, "flag/env beats file");
        assert_eq!(config.log, "debug", "file beats default");
        assert_eq!(config.rate_limits.api_per_minute, 5);
        assert_eq!(config.rate_limits.auth_per_minute, 10, "default kept");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("cn-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "bnd = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn database_password_never_reaches_debug_output() {
        let config = Config {
            database_url: Some("postgres://app:hunter2@127.0.0.1/cn".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@127.0.0.1/cn"));
    }
}
