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
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
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
    /// `None` only for PostgreSQL outside CI when no server was provided (reported as NOT RUN).
    pub async fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.sqlite3").display()),
            Backend::Postgres => fresh_pg_database().await?,
        };
        Some(Self { backend, url, dir })
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

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
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

async fn into_reply(response: reqwest::Response) -> Reply {
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
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let binary = profile_dir.join("claudenest");
    assert!(
        binary.exists(),
        "{} does not exist: build it first (`cargo build -p claudenest`; scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
