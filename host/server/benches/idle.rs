//! Idle connections: the host's RSS holding 1,000 idle agent links and 10,000 idle Pusher
//! sockets (each subscribed to one of 100 public channels). Goal: at most 300 MB together.
//!
//! Baselines in the same run: the same host with nothing connected, and — when installed —
//! `sockudo` 5.2 (a Rust Pusher server; see the fanout bench) holding the same 10,000 sockets.
//! RSS is read from /proc for the server process alone; this process holds the clients.

#[path = "common.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Killed, Ws, free_port, rss_mib};
use futures_util::{StreamExt as _, stream};

const AGENT_LINKS: usize = 1000;
const PUSHER_SOCKETS: usize = 10_000;
const CHANNELS: usize = 100;
const GOAL_MIB: f64 = 300.0;
const KEY: &str = "bench-key";
/// Connections opened at once.
const OPENING: usize = 32;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(dir.path());
    let store = claudenest::store::open(&url).await.unwrap();
    let user = common::bench_user(store.as_ref()).await;
    let tokens = common::more_machines(store.as_ref(), &user.principal, AGENT_LINKS).await;
    store.close().await;

    let port = free_port();
    let host = Killed(
        Command::new(env!("CARGO_BIN_EXE_claudenest"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("CLAUDENEST_DATABASE_URL", &url)
            .env("CLAUDENEST_LOG", "warn")
            .env("CLAUDENEST_PUSHER_APP_KEY", KEY)
            .env("CLAUDENEST_RATE_LIMITS__WEBSOCKET_PER_MINUTE", "1000000")
            .env(
                "CLAUDENEST_RATE_LIMITS__WEBSOCKET_CONNECTIONS_PER_ADDRESS",
                "100000",
            )
            // Idle means idle: no ping during the measurement.
            .env("CLAUDENEST_AGENT_LINK__PING_INTERVAL_SECS", "600")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = host.0.id();
    let empty = rss_mib(pid);

    let started = Instant::now();
    let links: Vec<Ws> = stream::iter(&tokens)
        .map(|token| common::idle_agent_link(port, token))
        .buffer_unordered(OPENING)
        .collect()
        .await;
    let linking = started.elapsed();
    settle().await;
    let with_links = rss_mib(pid);

    let (sockets, opening) = open_sockets(port).await;
    settle().await;
    let with_both = rss_mib(pid);

    println!(
        "\nidle connections: {AGENT_LINKS} agent links (linked in {linking:.1?}), \
         {PUSHER_SOCKETS} Pusher sockets on {CHANNELS} channels (opened in {opening:.1?})"
    );
    println!("{:<46} {:>9} {:>14}", "", "RSS MiB", "KiB each");
    println!(
        "{:<46} {:>9.1}",
        "claudenest, nothing connected (baseline)", empty
    );
    println!(
        "{:<46} {:>9.1} {:>14.1}",
        format!("  + {AGENT_LINKS} agent links"),
        with_links,
        (with_links - empty) * 1024.0 / AGENT_LINKS as f64
    );
    let ours_per_socket = (with_both - with_links) * 1024.0 / PUSHER_SOCKETS as f64;
    println!(
        "{:<46} {:>9.1} {:>14.1}",
        format!("  + {PUSHER_SOCKETS} Pusher sockets"),
        with_both,
        ours_per_socket
    );
    println!(
        "ratios: with both / nothing connected {:.2}; with both / goal ({GOAL_MIB} MB) {:.2}",
        with_both / empty,
        with_both / GOAL_MIB
    );
    drop(sockets);
    drop(links);
    drop(host);

    let Some(bin) = common::sockudo() else {
        println!(
            "sockudo: not installed (cargo install sockudo --version '~5.2' --locked; needs protoc)"
        );
        return;
    };
    let port = free_port();
    let sockudo = common::start_sockudo(&bin, port, "bench", KEY, "bench-secret");
    wait_for_port(port).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = sockudo.0.id();
    let their_empty = rss_mib(pid);
    let (sockets, _) = open_sockets(port).await;
    settle().await;
    let their_full = rss_mib(pid);
    let theirs_per_socket = (their_full - their_empty) * 1024.0 / PUSHER_SOCKETS as f64;
    println!(
        "{:<46} {:>9.1}\n{:<46} {:>9.1} {:>14.1}",
        "sockudo, nothing connected",
        their_empty,
        format!("  + {PUSHER_SOCKETS} Pusher sockets"),
        their_full,
        theirs_per_socket
    );
    println!(
        "ratio claudenest/sockudo, KiB per idle Pusher socket: {:.2}",
        ours_per_socket / theirs_per_socket
    );
    drop(sockets);
}

/// PUSHER_SOCKETS subscribers, spread over CHANNELS channels; and how long opening them took.
async fn open_sockets(port: u16) -> (Vec<Ws>, Duration) {
    let started = Instant::now();
    let sockets: Vec<Ws> = stream::iter(0..PUSHER_SOCKETS)
        .map(|i| async move {
            let mut ws =
                common::pusher_subscriber(port, KEY, &format!("idle-{}", i % CHANNELS)).await;
            // Subscribed once the server says so.
            while let Some(Ok(frame)) = ws.next().await {
                if frame
                    .to_text()
                    .is_ok_and(|t| t.contains("subscription_succeeded"))
                {
                    break;
                }
            }
            ws
        })
        .buffer_unordered(OPENING)
        .collect()
        .await;
    (sockets, started.elapsed())
}

/// Lets allocators return what connecting used before RSS is read.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn wait_for_port(port: u16) {
    common::wait_until(
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
        "the server listening",
    )
    .await;
}
