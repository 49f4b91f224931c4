//! HTTP throughput and tail latency of the real ClaudeNest stack, next to a bare axum
//! hello-world measured in the same run (these machines are noisy: compare ratios, not numbers).
//!
//! `cargo bench -p claudenest --bench http` prints, per target, requests/s and p50/p99 latency
//! for closed-loop clients on loopback, interleaving the targets over several rounds and keeping
//! each target's median round.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use claudenest::{
    app::AppState,
    config::{Config, RateLimits},
    domain::accounts,
    server::Server,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const CONCURRENCY: usize = 32;
const REQUESTS_PER_ROUND: usize = 20_000;
const ROUNDS: usize = 3;

struct Target {
    name: &'static str,
    url: String,
    bearer: Option<String>,
    status: u16,
}

#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();

    // The real server on the embedded store, limits out of the way.
    let config = Config {
        data_dir: dir.path().to_owned(),
        log: "warn".into(),
        rate_limits: RateLimits {
            auth_per_minute: u32::MAX,
            login_per_account_per_minute: u32::MAX,
            api_per_minute: u32::MAX,
            websocket_per_minute: u32::MAX,
            websocket_connections_per_address: usize::MAX,
            trusted_proxies: Vec::new(),
        },
        ..Config::default()
    };
    let state = AppState::open(config).await.unwrap();
    let user = accounts::create_account(
        state.store(),
        accounts::NewAccount {
            name: "Bench".into(),
            email: "bench@example.com".into(),
            password: "bench password".into(),
        },
    )
    .await
    .unwrap();
    let (_, token) = accounts::issue_token(state.store(), user.id, "bench", vec!["*".into()], None)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::from_parts(state, listener);
    let cn_addr = server.local_addr().unwrap();
    tokio::spawn(server.run(shutdown.clone()));

    // The baseline: axum with one route and no middleware.
    let hello = Router::new().route("/hello", get(|| async { "hello" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hello_addr: SocketAddr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, hello)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });

    let targets = [
        Target {
            name: "axum hello-world (baseline)",
            url: format!("http://{hello_addr}/hello"),
            bearer: None,
            status: 200,
        },
        Target {
            name: "GET /api/unknown (layers, no DB)",
            url: format!("http://{cn_addr}/api/unknown"),
            bearer: None,
            status: 404,
        },
        Target {
            name: "GET /api/health",
            url: format!("http://{cn_addr}/api/health"),
            bearer: None,
            status: 200,
        },
        Target {
            name: "GET /api/auth/me (token auth)",
            url: format!("http://{cn_addr}/api/auth/me"),
            bearer: Some(token),
            status: 200,
        },
    ];

    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    for target in &targets {
        load(&client, target, 1_000).await; // warm-up
    }
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, target) in targets.iter().enumerate() {
            rounds[i].push(load(&client, target, REQUESTS_PER_ROUND).await);
        }
    }

    println!(
        "\n{CONCURRENCY} concurrent clients, {REQUESTS_PER_ROUND} requests/round, median of {ROUNDS} rounds"
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "target", "req/s", "p50 µs", "p99 µs", "rps ratio", "p99 ratio"
    );
    let medians: Vec<Figures> = rounds.iter_mut().map(|r| median(r)).collect();
    let base = medians[0];
    for (target, f) in targets.iter().zip(&medians) {
        println!(
            "{:<32} {:>10.0} {:>10} {:>10} {:>12.2} {:>12.2}",
            target.name,
            f.rps,
            f.p50.as_micros(),
            f.p99.as_micros(),
            f.rps / base.rps,
            f.p99.as_secs_f64() / base.p99.as_secs_f64(),
        );
    }
    sign_in_costs(&client, cn_addr, medians[0]).await;
    shutdown.cancel();
}

/// What signing in costs: argon2id alone, and a whole `POST /api/auth/login`, sequentially.
async fn sign_in_costs(client: &reqwest::Client, cn_addr: SocketAddr, base: Figures) {
    const N: usize = 15;
    let phc = accounts::hash_password("bench password".into())
        .await
        .unwrap();
    let mut argon = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        assert!(
            accounts::verify_password("bench password".into(), phc.clone())
                .await
                .unwrap()
        );
        argon.push(t.elapsed());
    }
    let mut logins = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let response = client
            .post(format!("http://{cn_addr}/api/auth/login"))
            .json(&serde_json::json!({"email": "bench@example.com", "password": "bench password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        logins.push(t.elapsed());
    }
    argon.sort_unstable();
    logins.sort_unstable();
    let (argon, login) = (argon[N / 2], logins[N / 2]);
    println!("\nsign-in, median of {N} sequential runs (argon2id m=19 MiB, t=2, p=1)");
    println!(
        "argon2id verify: {:>8.1} ms   POST /api/auth/login: {:>8.1} ms   login / baseline p50: {:.0}x",
        argon.as_secs_f64() * 1e3,
        login.as_secs_f64() * 1e3,
        login.as_secs_f64() / base.p50.as_secs_f64(),
    );
}

/// Closed loop: `CONCURRENCY` workers send `total` requests between them.
async fn load(client: &reqwest::Client, target: &Target, total: usize) -> Figures {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            let (url, bearer, status) = (target.url.clone(), target.bearer.clone(), target.status);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(total / CONCURRENCY + 1);
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let t = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(token) = &bearer {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.expect("request");
                    assert_eq!(response.status().as_u16(), status, "{url}");
                    response.bytes().await.expect("body");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Figures {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: all[all.len() / 2],
        p99: all[all.len() * 99 / 100],
    }
}

fn median(rounds: &mut [Figures]) -> Figures {
    rounds.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    rounds[rounds.len() / 2]
}
