//! The `claudenest` command line. Thin: parse, load the configuration, call into the library.

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use serde::Serialize;

use crate::{config::Config, domain::accounts, store};

#[derive(Debug, Parser)]
#[command(
    name = "claudenest",
    version,
    about = "ClaudeNest host server and machine agent"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The most used settings as flags; each is also a `CLAUDENEST_*` variable. Every other
/// setting comes from the config file or the environment (docs/configuration.md).
#[derive(Debug, Args, Serialize)]
pub struct Settings {
    /// TOML configuration file.
    #[arg(long, env = "CLAUDENEST_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "CLAUDENEST_BIND", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<std::net::SocketAddr>,
    /// Data directory for the embedded SQLite store [default: ~/.local/share/claudenest].
    #[arg(long, env = "CLAUDENEST_DATA_DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file.
    #[arg(
        long,
        env = "CLAUDENEST_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Base URL users reach this server at (for links in e-mails) [default: http://{bind}].
    #[arg(long, env = "CLAUDENEST_PUBLIC_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Log filter (EnvFilter syntax) [default: info]. `RUST_LOG` overrides it.
    #[arg(long, env = "CLAUDENEST_LOG", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// `json` writes one JSON object per log line (for log shippers) [default: text, or
    /// `log_json` from the configuration]. Lines from requests carry their request id.
    #[arg(long, env = "CLAUDENEST_LOG_FORMAT", global = true, value_enum)]
    #[serde(skip)]
    pub log_format: Option<LogFormat>,
    /// Seconds in-flight requests get to finish on shutdown [default: 10].
    #[arg(long, env = "CLAUDENEST_SHUTDOWN_TIMEOUT_SECS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), self)?;
        if let Some(format) = self.log_format {
            config.log_json = format == LogFormat::Json;
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Back up the database (SQLite: while the server runs) and the data directory's keys
    /// into a new directory (docs/operations.md).
    Backup {
        /// Where to write it: a directory that does not exist yet or is empty.
        dir: PathBuf,
    },
    /// Put a backup in place for this configuration, then migrate it to this release.
    Restore {
        /// A directory `claudenest backup` wrote.
        dir: PathBuf,
        /// Replace an existing database (stop the server first) and different keys.
        #[arg(long)]
        force: bool,
    },
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the machine agent: link this machine to a ClaudeNest host.
    Agent(Box<claudenest_agent::cli::AgentArgs>),
    /// Work with WebAssembly plugins (docs/plugins.md).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage the embedding model context search uses.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Sign in to a host; the server and a token are kept for the commands below
    /// (~/.config/claudenest/client.toml, mode 0600). The password is read from stdin.
    Login {
        /// The host's base URL.
        #[arg(
            long = "server",
            env = "CLAUDENEST_SERVER",
            default_value = "http://127.0.0.1:8000"
        )]
        host: String,
        #[arg(long)]
        email: String,
    },
    /// Complete a machine's pairing with the code its agent shows (`claudenest agent pair`).
    Pair {
        /// The code, e.g. `ABCD-2345`.
        code: String,
        /// Name for the machine [default: its hostname].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List your machines.
    Machines {
        #[command(flatten)]
        remote: Remote,
    },
    /// List sessions: one machine's, or every machine's.
    Sessions {
        #[arg(long)]
        machine: Option<uuid::Uuid>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a project's tasks.
    Tasks {
        #[arg(long)]
        project: uuid::Uuid,
        #[command(flatten)]
        remote: Remote,
    },
    /// Attach this terminal to a running session: its screen, then live output; what you type
    /// goes to it and its size follows this terminal. Ctrl-] detaches (the session runs on).
    Attach {
        session: uuid::Uuid,
        /// The host's Pusher app key.
        #[arg(long, env = "CLAUDENEST_PUSHER_APP_KEY", default_value = "claudenest")]
        app_key: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print how to give a Claude Code you run yourself ClaudeNest's MCP server (`claude mcp
    /// add …` and a `.mcp.json` entry). The token stays in `CLAUDENEST_TOKEN`, never in files.
    McpConfig {
        /// The project the instance works on.
        #[arg(long)]
        project: uuid::Uuid,
        /// The instance id it reports as [default: none; tools then take `instance_id`].
        #[arg(long)]
        instance: Option<String>,
        /// The host's base URL [default: public_url, else http://<bind>].
        #[arg(long)]
        server: Option<String>,
    },
}

/// The `claude mcp add` line and the `.mcp.json` snippet for `claudenest mcp-config`.
pub fn mcp_config_text(server: &str, project: uuid::Uuid, instance: Option<&str>) -> String {
    let url = format!("{}/mcp", server.trim_end_matches('/'));
    let mut headers = vec![
        (
            "Authorization".to_owned(),
            "Bearer ${CLAUDENEST_TOKEN}".to_owned(),
        ),
        ("X-ClaudeNest-Project".to_owned(), project.to_string()),
    ];
    if let Some(instance) = instance {
        headers.push(("X-ClaudeNest-Instance".to_owned(), instance.to_owned()));
    }
    let flags: Vec<String> = headers
        .iter()
        // Single quotes: Claude Code, not the shell, expands the variable (at every start).
        .map(|(k, v)| format!("--header '{k}: {v}'"))
        .collect();
    let json = serde_json::json!({
        "mcpServers": {
            "claudenest": {
                "type": "http",
                "url": url,
                "headers": headers
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
            }
        }
    });
    format!(
        "# Claude Code, command line (the token stays in the environment: export CLAUDENEST_TOKEN=cn_…):\n\
         claude mcp add --transport http {} claudenest {url}\n\n\
         # or .mcp.json in the project (Claude Code expands ${{CLAUDENEST_TOKEN}}):\n{}\n",
        flags.join(" "),
        serde_json::to_string_pretty(&json).expect("JSON")
    )
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json) into
    /// `embeddings.model_dir` [default: <data_dir>/models/all-MiniLM-L6-v2].
    Fetch {
        /// Where to download from [default: embeddings.fetch_base_url, Hugging Face].
        #[arg(long)]
        base_url: Option<String>,
        /// Where to put the files [default: embeddings.model_dir].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a component's manifest, world, API version, exports, imports and requested
    /// capabilities, and whether this host accepts it. Reads the file only.
    Inspect { file: PathBuf },
    /// Embed a manifest (JSON) into a component built by a tool that cannot (componentize-py).
    Pack {
        file: PathBuf,
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Upload a component to a host (`POST /api/plugins`).
    Install {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the plugins installed on a host.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where a client command talks to, and as whom.
#[derive(Debug, Args)]
pub struct Remote {
    /// The host's base URL [default: from `claudenest login`, else http://127.0.0.1:8000].
    #[arg(long = "server", env = "CLAUDENEST_SERVER")]
    pub server: Option<String>,
    /// A `cn_` token [default: the one `claudenest login` kept].
    #[arg(long = "token", env = "CLAUDENEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Remote {
    /// The flags, else the environment, else the client file `login` wrote.
    pub fn client(self) -> anyhow::Result<crate::client::Client> {
        use crate::client::{Client, ClientFile};
        let file = ClientFile::load(&ClientFile::default_path())?;
        let server = self
            .server
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
        let token = self.token.or(file.token).context(
            "not signed in: run `claudenest login` (or pass --token / CLAUDENEST_TOKEN)",
        )?;
        Client::new(&server, Some(token))
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a random password is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (it is shown only this once).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Comma-separated abilities [default: *].
        #[arg(long, value_delimiter = ',', default_value = "*")]
        abilities: Vec<String>,
        /// Days until the token expires [default: never].
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

/// The server's settings are global (`claudenest serve --bind …` and `claudenest --bind …
/// serve` both work), so clap shows them under every command; the agent and the client
/// commands have no use for them, and their help should not offer them. The agent's own flags are global within `agent`, so
/// `agent pair --server URL` works as well as `agent --server URL pair`.
const SERVER_ONLY: [&str; 5] = [
    "bind",
    "database_url",
    "public_url",
    "shutdown_timeout_secs",
    "config",
];

fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut command = Cli::command();
    // Built first: that is when global flags are copied into the subcommands.
    command.build();
    // In place (`mut_arg` would reorder the built argument list).
    let hide = |command: clap::Command| {
        command.mut_args(|arg| {
            let server_only = SERVER_ONLY.contains(&arg.get_id().as_str());
            arg.hide(server_only)
        })
    };
    let mut command = command.mut_subcommand("agent", |agent| {
        let mut agent = hide(agent);
        agent.build();
        agent.mut_subcommand("pair", hide)
    });
    // The client commands talk to a host; they don't run one either.
    for client in ["login", "pair", "machines", "sessions", "tasks", "attach"] {
        command = command.mut_subcommand(client, hide);
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit())
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = parse();
    let config = match cli.settings.load() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("claudenest: {err:#}");
            return ExitCode::from(2);
        }
    };
    claudenest_protocol::telemetry::init(&config.log, config.log_json);
    claudenest_protocol::telemetry::run_to_exit(
        "claudenest",
        run(cli.command.unwrap_or(Command::Serve), config),
    )
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Agent(args) => claudenest_agent::cli::run(*args).await,
        Command::Login { host, email } => {
            let password = crate::client::read_password("Password: ")?;
            let path = crate::client::ClientFile::default_path();
            let name = crate::client::login(&host, &email, &password, &path).await?;
            println!("Signed in as {name}; token kept in {}", path.display());
            Ok(())
        }
        Command::Pair { code, name, remote } => {
            let client = remote.client()?;
            let body = serde_json::json!({ "name": name });
            let machine = client
                .call(
                    reqwest::Method::POST,
                    &format!("/api/pairing/{code}/complete"),
                    Some(body),
                )
                .await?;
            println!(
                "Paired {} ({}); its agent links now.",
                crate::client::text(&machine["name"]),
                crate::client::text(&machine["id"])
            );
            Ok(())
        }
        Command::Machines { remote } => {
            let machines = remote.client()?.list("/api/machines").await?;
            let keys = ["id", "name", "status", "platform", "active_sessions_count"];
            let rows = crate::client::rows(&machines, &keys);
            print!(
                "{}",
                crate::client::table(&["ID", "NAME", "STATUS", "PLATFORM", "SESSIONS"], &rows)
            );
            Ok(())
        }
        Command::Sessions { machine, remote } => {
            let client = remote.client()?;
            let machines = match machine {
                Some(id) => vec![id.to_string()],
                None => client
                    .list("/api/machines")
                    .await?
                    .iter()
                    .map(|m| crate::client::text(&m["id"]))
                    .collect(),
            };
            let mut sessions = Vec::new();
            for machine in machines {
                let url = format!("/api/machines/{machine}/sessions");
                sessions.extend(client.list(&url).await?);
            }
            let keys = [
                "id",
                "machine_id",
                "status",
                "mode",
                "project_path",
                "created_at",
            ];
            let rows = crate::client::rows(&sessions, &keys);
            print!(
                "{}",
                crate::client::table(
                    &["ID", "MACHINE", "STATUS", "MODE", "PATH", "CREATED"],
                    &rows
                )
            );
            Ok(())
        }
        Command::Tasks { project, remote } => {
            let tasks = remote
                .client()?
                .list(&format!("/api/projects/{project}/tasks"))
                .await?;
            let keys = ["id", "status", "priority", "assigned_to", "title"];
            let rows = crate::client::rows(&tasks, &keys);
            print!(
                "{}",
                crate::client::table(&["ID", "STATUS", "PRIORITY", "ASSIGNED", "TITLE"], &rows)
            );
            Ok(())
        }
        Command::Attach {
            session,
            app_key,
            remote,
        } => {
            let client = remote.client()?;
            let how = crate::client::attach(&client, &app_key, session).await?;
            match how {
                crate::client::Detached::ByKey => eprintln!("\r\n[detached; the session runs on]"),
                crate::client::Detached::InputClosed => {
                    eprintln!("\r\n[input closed; the session runs on]")
                }
                crate::client::Detached::Ended(status) => {
                    eprintln!("\r\n[the session ended: {status}]")
                }
            }
            Ok(())
        }
        Command::Plugin(command) => run_plugin(command).await,
        Command::McpConfig {
            project,
            instance,
            server,
        } => {
            let server = server
                .or(config.public_url.clone())
                .unwrap_or_else(|| format!("http://{}", config.bind));
            print!("{}", mcp_config_text(&server, project, instance.as_deref()));
            Ok(())
        }
        Command::Model(ModelCommand::Fetch { base_url, dir }) => {
            let base = base_url.unwrap_or_else(|| config.embeddings.fetch_base_url.clone());
            let dir = dir.unwrap_or_else(|| config.model_dir());
            fetch_model(&base, &dir).await?;
            // Loading it proves the download is a usable model.
            crate::embed::minilm::MiniLm::load(&dir)?;
            println!("all-MiniLM-L6-v2 is ready in {}", dir.display());
            Ok(())
        }
        Command::Serve => crate::server::serve(config).await,
        Command::Backup { dir } => {
            let manifest = crate::backup::backup(&config, &dir).await?;
            println!(
                "backed up {} into {}",
                manifest.files.join(", "),
                dir.display()
            );
            if manifest.store == "postgres" {
                println!("the PostgreSQL database itself: pg_dump -Fc (docs/operations.md)");
            }
            Ok(())
        }
        Command::Restore { dir, force } => {
            let manifest = crate::backup::restore(&config, &dir, force).await?;
            println!(
                "restored {} (taken by {} at {}); migrated to {}",
                manifest.files.join(", "),
                manifest.version,
                manifest.created_at,
                crate::VERSION
            );
            Ok(())
        }
        Command::Migrate => {
            let store = store::open(&config.effective_database_url()).await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create {
            email,
            name,
            password_stdin,
        }) => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                accounts::TokenSecret::generate("").plain
            };
            let store = store::open(&config.effective_database_url()).await?;
            // Without --name: the address's local part, or the whole address when that is too short.
            let name = name.unwrap_or_else(|| match email.split_once('@') {
                Some((local, _)) if local.chars().count() >= 2 => local.to_owned(),
                _ => email.clone(),
            });
            let created = accounts::create_account(
                store.as_ref(),
                accounts::NewAccount {
                    name,
                    email,
                    password: password.clone(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}{}", describe_fields(&e)))?;
            store.close().await;
            println!("created user {} <{}>", created.id, created.email);
            if !password_stdin {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            email,
            name,
            abilities,
            expires_in_days,
        }) => {
            let store = store::open(&config.effective_database_url()).await?;
            let user = store
                .user_by_email(&accounts::normalize_email(&email))
                .await?
                .with_context(|| format!("no user with e-mail {email}"))?;
            let expires_at = expires_in_days
                .map(|days| crate::domain::clock::now() + chrono::Duration::days(days.into()));
            let (_, secret) =
                accounts::issue_token(store.as_ref(), user.id, &name, abilities, expires_at)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            store.close().await;
            println!("{secret}");
            Ok(())
        }
    }
}

fn describe_fields(err: &crate::error::ApiError) -> String {
    err.field_errors()
        .map(|fields| {
            fields
                .iter()
                .map(|(field, msgs)| format!("\n  {field}: {}", msgs.join(" ")))
                .collect()
        })
        .unwrap_or_default()
}

/// Downloads the model files, each to a temporary name first, so an interrupted download never
/// leaves a half-written file under the real name.
async fn fetch_model(base: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let client = reqwest::Client::new();
    for file in crate::embed::minilm::FILES {
        let url = format!("{}/{file}", base.trim_end_matches('/'));
        let response = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("downloading {url}"))?
            .error_for_status()
            .with_context(|| format!("downloading {url}"))?;
        let bytes = response.bytes().await?;
        anyhow::ensure!(!bytes.is_empty(), "{url} is empty");
        let tmp = dir.join(format!("{file}.part"));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, dir.join(file))?;
        println!("{file}: {} bytes", bytes.len());
    }
    Ok(())
}

async fn run_plugin(command: PluginCommand) -> anyhow::Result<()> {
    use crate::plugins::{manifest, runtime::PluginRuntime};
    let read =
        |file: &PathBuf| std::fs::read(file).with_context(|| format!("reading {}", file.display()));
    match command {
        PluginCommand::Inspect { file } => {
            let bytes = read(&file)?;
            let inspected =
                manifest::inspect(&bytes).map_err(|e| anyhow::anyhow!("rejected: {e}"))?;
            let m = &inspected.manifest;
            println!("name:         {} {}", m.name, m.version);
            println!("world:        {}", m.world.as_str());
            println!("api version:  {}", m.api_version);
            println!("sha256:       {}", PluginRuntime::sha256(&bytes));
            println!("size:         {} bytes", bytes.len());
            println!(
                "code:         {} functions, {} bytes (compile limits: plugins.max_functions, \
                 plugins.max_code_mib)",
                inspected.functions, inspected.code_bytes
            );
            println!("description:  {}", m.description);
            println!("exports:      {}", inspected.exports.join(", "));
            println!("imports:      {}", inspected.imports.join(", "));
            for fs in &m.capabilities.filesystem {
                println!("requests:     filesystem /{} ({:?})", fs.name, fs.access);
            }
            for host in &m.capabilities.http {
                println!("requests:     http {host}");
            }
            println!(
                "accepted by this host (plugin API {})",
                manifest::API_VERSION
            );
            Ok(())
        }
        PluginCommand::Pack {
            file,
            manifest: manifest_file,
            output,
        } => {
            let m: manifest::Manifest = serde_json::from_slice(&read(&manifest_file)?)
                .context("the manifest is not valid")?;
            let packed = manifest::append_manifest(&read(&file)?, &m);
            manifest::inspect(&packed).map_err(|e| anyhow::anyhow!("rejected: {e}"))?;
            std::fs::write(&output, packed)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        PluginCommand::Install { file, remote } => {
            let client = remote.client()?;
            let token = client.token().to_owned();
            let body: serde_json::Value = reqwest::Client::new()
                .post(format!("{}/api/plugins", client.server))
                .bearer_auth(token)
                .header("content-type", "application/wasm")
                .body(read(&file)?)
                .send()
                .await?
                .json()
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            anyhow::ensure!(body["success"] == true, "the host refused the plugin");
            Ok(())
        }
        PluginCommand::List { remote } => {
            for p in remote.client()?.list("/api/plugins").await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    p["name"].as_str().unwrap_or(""),
                    p["version"].as_str().unwrap_or(""),
                    p["world"].as_str().unwrap_or(""),
                    p["sha256"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}
