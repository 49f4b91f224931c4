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
