//! The agent's command line: `claudenest-agent [pair]` on its own, and `claudenest agent [pair]`
//! inside the server's binary (which delegates here), with the same flags.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::{AgentFile, AgentSettings, environment::EnvironmentSettings};

/// `claudenest-agent`: the machine agent alone, without the server.
#[derive(Debug, Parser)]
#[command(
    name = "claudenest-agent",
    version,
    about = "ClaudeNest machine agent: links this machine to a ClaudeNest host"
)]
struct AgentCli {
    #[command(flatten)]
    args: AgentArgs,
}

/// Entry point of the `claudenest-agent` binary. Logs as `RUST_LOG` says (default `info`).
pub fn main() -> ExitCode {
    let cli = AgentCli::parse();
    claudenest_protocol::telemetry::init("info", false);
    claudenest_protocol::telemetry::run_to_exit("claudenest-agent", run(cli.args))
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The host's base URL, e.g. http://127.0.0.1:8000 [default: from the agent file].
    #[arg(long, env = "CLAUDENEST_AGENT_SERVER", global = true)]
    pub server: Option<String>,
    /// The machine token (`mn_…`). Prefer the agent file or the environment: flags show in `ps`.
    #[arg(
        long,
        env = "CLAUDENEST_AGENT_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// The agent file (server, token, settings) [default: ~/.config/claudenest/agent.toml].
    #[arg(long, env = "CLAUDENEST_AGENT_FILE", global = true)]
    pub agent_file: Option<PathBuf>,
    /// Path of the `claude` executable [default: found on PATH].
    #[arg(long, global = true)]
    pub claude_path: Option<PathBuf>,
    /// A capability to report (repeatable), e.g. `--capability wake_on_lan`.
    #[arg(long = "capability", global = true)]
    pub capabilities: Vec<String>,
    /// Sessions this machine accepts at once [default: 10].
    #[arg(long, global = true)]
    pub max_sessions: Option<u32>,
    /// Seconds a terminated session has between its hang-up and SIGKILL [default: 5].
    #[arg(long, global = true)]
    pub kill_grace_secs: Option<u64>,
    /// The skill folder kept in step with the host [default: ~/.claude/skills].
    #[arg(long, env = "CLAUDENEST_AGENT_SKILLS_DIR", global = true)]
    pub skills_dir: Option<PathBuf>,
    /// Milliseconds between looks at the skill folder for changes [default: 2000].
    #[arg(long, global = true)]
    pub skills_poll_ms: Option<u64>,
    /// The agent's data directory: compiled plugins and their key
    /// [default: ~/.local/share/claudenest/agent].
    #[arg(long, env = "CLAUDENEST_AGENT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// A directory under which plugins enabled on this machine may be granted mounts
    /// (repeatable; adds to `plugin_roots` of the agent file) [default: none, no mounts].
    #[arg(long = "plugin-root", global = true)]
    pub plugin_roots: Vec<PathBuf>,
    /// A host (`host` or `host:port`) plugins may reach although it leads to a loopback,
    /// private or link-local address (repeatable) [default: none].
    #[arg(long = "plugin-allow-host", global = true)]
    pub plugin_allow_hosts: Vec<String>,
    /// Seconds a permission dialog waits for an answer from the host before Claude Code's own
    /// prompt stands [default: 300].
    #[arg(long, global = true)]
    pub permission_timeout_secs: Option<u64>,
    #[command(subcommand)]
    pub action: Option<AgentAction>,
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// What Claude Code runs for a session's hook events (set up by the agent; not for people).
    #[command(hide = true)]
    Hook,
    /// Pair this machine with your account using a short code, save the token, then run.
    Pair {
        /// Name for the machine [default: the hostname].
        #[arg(long)]
        name: Option<String>,
        /// Exit after pairing instead of running the agent.
        #[arg(long)]
        no_run: bool,
    },
}

/// Runs the agent as the flags and the agent file say (`pair` first when asked).
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    if let Some(AgentAction::Hook) = &args.action {
        // Claude Code waits for this one: exit with the hook's status, at once.
        std::process::exit(match crate::hooks::run_hook_command() {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 2,
        });
    }
    let path = args
        .agent_file
        .clone()
        .unwrap_or_else(AgentFile::default_path);
    let mut file = AgentFile::load(&path)?;
    let server = args
        .server
        .clone()
        .or_else(|| file.server.clone())
        .context("no server: pass --server URL (or pair first)")?;
    if let Some(AgentAction::Pair { name, no_run }) = &args.action {
        file = crate::pair(&server, &path, file, name.as_deref()).await?;
        if *no_run {
            return Ok(());
        }
    }
    let token = args
        .token
        .clone()
        .or_else(|| file.token.clone())
        .context("no machine token: run `claudenest agent pair --server URL` first")?;
    let mut capabilities = file.capabilities.clone();
    capabilities.extend(args.capabilities.iter().cloned());
    capabilities.sort();
    capabilities.dedup();
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir.clone())
        .unwrap_or_else(crate::default_data_dir);
    let hooks = crate::hooks::HookSettings {
        dir: data_dir.join("hooks"),
        command: hook_command()?,
        answer_timeout: std::time::Duration::from_secs(
            args.permission_timeout_secs
                .or(file.permission_timeout_secs)
                .unwrap_or(300)
                .clamp(1, 3600),
        ),
    };
    let settings = AgentSettings {
        hooks: Some(hooks),
        server,
        token,
        environment: EnvironmentSettings {
            claude_path: args.claude_path.clone().or(file.claude_path.clone()),
            capabilities,
            max_sessions: args.max_sessions.or(file.max_sessions).unwrap_or(10),
        },
        kill_grace: std::time::Duration::from_secs(
            args.kill_grace_secs.or(file.kill_grace_secs).unwrap_or(5),
        ),
        skills_dir: args
            .skills_dir
            .clone()
            .or(file.skills_dir.clone())
            .unwrap_or_else(crate::skills::SkillFolder::default_dir),
        skills_poll: std::time::Duration::from_millis(
            args.skills_poll_ms
                .or(file.skills_poll_ms)
                .unwrap_or(2000)
                .max(50),
        ),
        plugins: crate::plugins::PluginSettings {
            data_dir: data_dir.clone(),
            roots: file
                .plugin_roots
                .iter()
                .chain(&args.plugin_roots)
                .cloned()
                .collect(),
            allow_hosts: file
                .plugin_allow_hosts
                .iter()
                .chain(&args.plugin_allow_hosts)
                .cloned()
                .collect(),
            // The agent file holds the machine token: never mountable.
            protected: path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(std::path::Path::to_path_buf)
                .into_iter()
                .collect(),
        },
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let term = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut sig) = signal(SignalKind::terminate()) {
            sig.recv().await;
            term.cancel();
        }
    });
    tracing::info!(server = %settings.server, "claudenest agent starting");
    crate::run(settings, shutdown).await
}

/// How Claude Code calls this binary back for a hook: `claudenest-agent hook`, or
/// `claudenest agent hook` when the agent runs inside the server's binary.
fn hook_command() -> anyhow::Result<Vec<String>> {
    let exe = std::env::current_exe().context("finding this program's path for hooks")?;
    let standalone = exe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("claudenest-agent"));
    let mut command = vec![exe.display().to_string()];
    if !standalone {
        command.push("agent".into());
    }
    command.push("hook".into());
    Ok(command)
}
