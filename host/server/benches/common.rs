//! Set-up shared by the benchmarks (each includes this file with `#[path]`).

#![allow(dead_code)]

use std::time::Duration;

use claudenest::{
    domain::{
        accounts::{self, Principal},
        machines::{self, NewMachine},
    },
    store::Store,
};
use uuid::Uuid;

/// A new database on the PostgreSQL server at `server` (from `scripts/with-postgres.sh`).
pub async fn fresh_database(server: &str) -> String {
    use sqlx::Connection as _;
    let name = format!("bench_{}", Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A user with a `*` token and one machine of theirs, with the tokens in clear.
pub struct BenchUser {
    pub principal: Principal,
    pub token: String,
    pub machine: Uuid,
    pub machine_token: String,
}

pub async fn bench_user(store: &dyn Store) -> BenchUser {
    let user = accounts::create_account(
        store,
        accounts::NewAccount {
            name: "Bench".into(),
            email: format!("bench-{}@example.com", Uuid::now_v7().simple()),
            password: "bench password".into(),
        },
    )
    .await
    .unwrap();
    let (token_row, token) = accounts::issue_token(store, user.id, "bench", vec!["*".into()], None)
        .await
        .unwrap();
    let principal = Principal {
        user,
        token_id: token_row.id,
        abilities: vec!["*".to_owned()].into(),
    };
    let new = NewMachine {
        name: "bench".into(),
        ..NewMachine::default()
    };
    let (machine, machine_token) = machines::register(store, &principal, new).await.unwrap();
    BenchUser {
        principal,
        token,
        machine: machine.id,
        machine_token,
    }
}

/// A user with a `*` token, as a principal, and one machine of theirs.
pub async fn user_and_machine(store: &dyn Store) -> (Principal, Uuid) {
    let user = bench_user(store).await;
    (user.principal, user.machine)
}

/// A child process killed (and reaped) when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends the request and reads its answer as JSON (the benches' one way to call the API).
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// `n` more machines of `principal`'s, with their tokens in clear.
pub async fn more_machines(store: &dyn Store, principal: &Principal, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let new = NewMachine {
            name: format!("m{i}"),
            ..NewMachine::default()
        };
        let (_, token) = machines::register(store, principal, new).await.unwrap();
        tokens.push(token);
    }
    tokens
}

/// An agent link as `claudenest agent` opens it (`hello`, then the host's `welcome`), left idle.
pub async fn idle_agent_link(port: u16, machine_token: &str) -> Ws {
    use claudenest::protocol::{AgentMessage, Environment, PROTOCOL_VERSION};
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};
    let hello = serde_json::to_string(&AgentMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        environment: Environment {
            platform: "linux".into(),
            hostname: "bench".into(),
            arch: "x64".into(),
            agent_version: "bench".into(),
            max_sessions: 1,
            ..Environment::default()
        },
        sessions: vec![],
    })
    .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/api/agent/link")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {machine_token}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket.send(Message::Text(hello.into())).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"));
    socket
}

/// A Pusher client (as pusher-js connects) subscribed to the public `channel`.
pub async fn pusher_subscriber(port: u16, key: &str, channel: &str) -> Ws {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://127.0.0.1:{port}/app/{key}?protocol=7&client=js&version=8.6.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let established = ws.next().await.unwrap().unwrap();
    assert!(
        established
            .to_text()
            .unwrap()
            .contains("connection_established")
    );
    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    ws
}

/// The `sockudo` binary (a Rust Pusher server, the realtime benches' baseline): `$SOCKUDO`, or
/// where `cargo install sockudo --root /opt/sockudo` or a plain `cargo install` put it.
pub fn sockudo() -> Option<String> {
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::var("SOCKUDO").ok().or_else(|| {
        [
            "/opt/sockudo/bin/sockudo".to_owned(),
            format!("{home}/.cargo/bin/sockudo"),
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    })
}

/// sockudo on `127.0.0.1:port` with one app and its limits lifted, quiet.
pub fn start_sockudo(bin: &str, port: u16, app_id: &str, key: &str, secret: &str) -> Killed {
    use std::process::{Command, Stdio};
    Killed(
        Command::new(bin)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("SOCKUDO_DEFAULT_APP_ID", app_id)
            .env("SOCKUDO_DEFAULT_APP_KEY", key)
            .env("SOCKUDO_DEFAULT_APP_SECRET", secret)
            .env("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", "100000")
            .env(
                "SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND",
                "1000000",
            )
            .env("RATE_LIMITER_ENABLED", "false")
            .env("METRICS_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A SQLite database file in `dir`, as a URL.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("claudenest.sqlite3").display())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process's resident memory, in KiB (VmRSS from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

pub fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid) as f64 / 1024.0
}

/// A process's CPU time so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (in parentheses, and it may hold spaces): utime and
    // stime are the 12th and 13th of them, in clock ticks.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Waits (up to 60 s) until `ready` says yes.
pub async fn wait_until(mut ready: impl AsyncFnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `claudenest serve` on SQLite at `url` (rate limits lifted) and a `claudenest agent` for
/// the bench user's machine, linked. Both are killed on drop.
pub struct HostAndAgent {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub machine: Uuid,
    _host: Killed,
    _agent: Killed,
}

impl HostAndAgent {
    /// `host_env` and `agent` adjust the two commands.
    pub async fn start(
        url: &str,
        host_env: &[(&str, &str)],
        agent: impl FnOnce(&mut std::process::Command),
    ) -> Self {
        use std::process::{Command, Stdio};
        let store = claudenest::store::open(url).await.unwrap();
        let user = bench_user(store.as_ref()).await;
        store.close().await;
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let host = Killed(
            Command::new(env!("CARGO_BIN_EXE_claudenest"))
                .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
                .env("CLAUDENEST_DATABASE_URL", url)
                .env("CLAUDENEST_LOG", "warn")
                .env("CLAUDENEST_RATE_LIMITS__API_PER_MINUTE", "1000000")
                .env("CLAUDENEST_RATE_LIMITS__WEBSOCKET_PER_MINUTE", "1000000")
                .envs(host_env.iter().copied())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_claudenest"));
        command
            .args(["agent", "--server", &base, "--token", &user.machine_token])
            .env("CLAUDENEST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        agent(&mut command);
        let agent = Killed(command.spawn().unwrap());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let machine_url = format!("{base}/api/machines/{}", user.machine);
        wait_until(
            async || {
                let Ok(r) = client
                    .get(&machine_url)
                    .bearer_auth(&user.token)
                    .send()
                    .await
                else {
                    return false;
                };
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                body["data"]["status"] == "online"
            },
            "the agent linking",
        )
        .await;
        Self {
            base,
            client,
            token: user.token,
            machine: user.machine,
            _host: host,
            _agent: agent,
        }
    }

    pub fn machine_url(&self) -> String {
        format!("{}/api/machines/{}", self.base, self.machine)
    }

    /// Starts an interactive session in `project_path` and waits until its agent runs it (the
    /// API answers a new session as `created`): its id and `ws_` token.
    pub async fn session(&self, project_path: &std::path::Path) -> (String, String) {
        let body = json(
            self.client
                .post(format!("{}/sessions", self.machine_url()))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({"mode": "interactive", "project_path": project_path})),
        )
        .await;
        let id = body["data"]["session"]["id"].as_str().unwrap().to_owned();
        let ws_token = body["data"]["websocket_token"].as_str().unwrap().to_owned();
        self.wait_for_session(&id, "running").await;
        (id, ws_token)
    }

    /// Waits until the session's status is `status` (failing on `error`).
    pub async fn wait_for_session(&self, id: &str, status: &str) {
        let url = format!("{}/api/sessions/{id}", self.base);
        wait_until(
            async || {
                let body = json(self.client.get(&url).bearer_auth(&self.token)).await;
                assert_ne!(body["data"]["status"], "error", "{body}");
                body["data"]["status"] == status
            },
            &format!("the session {status}"),
        )
        .await;
    }
}

/// A host and agent whose `claude` is the shell script `stand_in`, in a temporary directory
/// that also holds a `flood` directory for sessions that flood; the agent has `FLOOD_BYTES`.
/// Session logs are kept whole (no retention), so every byte can be counted.
pub struct StandIn {
    pub dir: tempfile::TempDir,
    pub script: std::path::PathBuf,
    pub flood_dir: std::path::PathBuf,
    pub host: HostAndAgent,
}

pub async fn with_stand_in(stand_in: &str, flood_bytes: usize) -> StandIn {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let script = dir.path().join("claude");
    std::fs::write(&script, stand_in).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let flood_dir = dir.path().join("flood");
    std::fs::create_dir(&flood_dir).unwrap();
    let host = HostAndAgent::start(
        &url,
        &[("CLAUDENEST_SESSIONS__LOG_RETENTION_CHUNKS", "0")],
        |agent| {
            agent
                .arg("--claude-path")
                .arg(&script)
                .env("FLOOD_BYTES", flood_bytes.to_string());
        },
    )
    .await;
    StandIn {
        dir,
        script,
        flood_dir,
        host,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, as JSON.
pub async fn next_json(ws: &mut Ws) -> serde_json::Value {
    use futures_util::StreamExt as _;
    loop {
        match ws.next().await.expect("socket open").expect("frame") {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                return serde_json::from_str(&text).unwrap();
            }
            _ => continue,
        }
    }
}

/// A raw Pusher WebSocket subscribed to `private-session.{session}` with its `ws_` token (the
/// client the sessions bench measures): the socket and the channel's name.
pub async fn session_socket(
    base: &str,
    client: &reqwest::Client,
    session: &str,
    ws_token: &str,
) -> (Ws, String) {
    use futures_util::SinkExt as _;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/app/claudenest",
        base.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    let established = next_json(&mut ws).await;
    let data: serde_json::Value =
        serde_json::from_str(established["data"].as_str().unwrap()).unwrap();
    let socket_id = data["socket_id"].as_str().unwrap().to_owned();
    let channel = format!("private-session.{session}");
    let signed: serde_json::Value = client
        .post(format!("{base}/api/broadcasting/auth"))
        .bearer_auth(ws_token)
        .form(&[
            ("socket_id", socket_id.as_str()),
            ("channel_name", channel.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscribe = serde_json::json!({"event": "pusher:subscribe",
        "data": {"channel": channel, "auth": signed["auth"]}});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        subscribe.to_string().into(),
    ))
    .await
    .unwrap();
    while next_json(&mut ws).await["event"] != "pusher_internal:subscription_succeeded" {}
    (ws, channel)
}

/// The `data` of a `session:output` frame.
pub fn session_output(message: &serde_json::Value) -> Option<String> {
    if message["event"] != "session:output" {
        return None;
    }
    let payload: serde_json::Value = serde_json::from_str(message["data"].as_str()?).ok()?;
    Some(payload["data"].as_str()?.to_owned())
}

/// Sends `count` characters (after a warm-up) one at a time, each framed by `frame` on the
/// socket, and times each until `echoed` finds it in an answer. Sorted.
pub async fn keystrokes(
    ws: &mut Ws,
    count: usize,
    frame: impl Fn(char) -> String,
    echoed: impl Fn(&serde_json::Value) -> Option<String>,
) -> Vec<Duration> {
    keystrokes_sent_by(
        ws,
        count,
        async |ws: &mut Ws, key| {
            use futures_util::SinkExt as _;
            let message = tokio_tungstenite::tungstenite::Message::Text(frame(key).into());
            ws.send(message).await.unwrap();
        },
        echoed,
    )
    .await
}

/// [`keystrokes`], each character sent by `send` (through the socket or another way) and its
/// echo read from the socket. A key whose echo does not come within 10 s fails the run: none
/// may be lost.
pub async fn keystrokes_sent_by(
    ws: &mut Ws,
    count: usize,
    mut send: impl AsyncFnMut(&mut Ws, char),
    echoed: impl Fn(&serde_json::Value) -> Option<String>,
) -> Vec<Duration> {
    const WARMUP: usize = 50;
    let mut times = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let key = (b'a' + (i % 26) as u8) as char;
        let t = std::time::Instant::now();
        send(ws, key).await;
        let echo = async {
            loop {
                let message = next_json(ws).await;
                if echoed(&message).is_some_and(|text| text.contains(key)) {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), echo)
            .await
            .unwrap_or_else(|_| panic!("keystroke {i} ({key:?}) was lost"));
        if i >= WARMUP {
            times.push(t.elapsed());
        }
        // Paced like very fast typing (500 keys a second), for every client measured: a
        // realtime socket accepts at most 1,000 messages a second.
        let paced = Duration::from_millis(2);
        if let Some(rest) = paced.checked_sub(t.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    times.sort_unstable();
    times
}
