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

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
}
