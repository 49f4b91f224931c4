//! Agent links: the host → agent → host request/reply round trip, and how many idle links one
//! host process holds per 100 MB of RSS.
//!
//! Runs the real `claudenest` binary as the host (so its RSS is its own), a real
//! `claudenest agent` for the round trip, and N protocol clients from this process for the
//! idle links. Baseline in the same run: an authenticated REST call that does not touch the
//! link (`GET /api/machines/{id}`).

#[path = "common.rs"]
mod common;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use claudenest::store;
use common::{Killed, percentile, rss_kib};

const IDLE_LINKS: usize = 2000;
const ROUND_TRIPS: usize = 2000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(dir.path());

    // Accounts and machines are made up front, straight through the domain.
    let store = store::open(&url).await.unwrap();
    let user = common::bench_user(store.as_ref()).await;
    let idle_tokens = common::more_machines(store.as_ref(), &user.principal, IDLE_LINKS).await;
    let token = user.token.clone();
    store.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let host = Killed(
        Command::new(env!("CARGO_BIN_EXE_claudenest"))
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("CLAUDENEST_DATABASE_URL", &url)
            .env("CLAUDENEST_LOG", "warn")
            .env("CLAUDENEST_RATE_LIMITS__API_PER_MINUTE", "1000000")
            // Idle means idle: no ping during the measurement.
            .env("CLAUDENEST_AGENT_LINK__PING_INTERVAL_SECS", "600")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "host did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- round trip through a real agent --------------------------------------------------
    let (agent_machine, agent_token) = (user.machine, &user.machine_token);
    let _agent = Killed(
        Command::new(env!("CARGO_BIN_EXE_claudenest"))
            .args(["agent", "--server", &base, "--token", agent_token])
            .env("CLAUDENEST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ping_url = format!("{base}/api/machines/{}/ping", agent_machine);
    let plain_url = format!("{base}/api/machines/{}", agent_machine);
    loop {
        let r = client
            .post(&ping_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break;
        }
        assert!(Instant::now() < deadline, "agent did not link");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut link_rt, mut via_rest, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        let body = common::json(client.post(&ping_url).bearer_auth(&token)).await;
        via_rest.push(t.elapsed());
        let ms = body["data"]["round_trip_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("ping failed: {body}"));
        link_rt.push(Duration::from_secs_f64(ms / 1e3));
        let t = Instant::now();
        let r = client
            .get(&plain_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        plain.push(t.elapsed());
    }
    for v in [&mut link_rt, &mut via_rest, &mut plain] {
        v.sort_unstable();
    }
    println!("\nround trip, {ROUND_TRIPS} sequential requests (one real agent process)");
    println!(
        "{:<46} {:>9} {:>9} {:>10}",
        "", "p50 µs", "p99 µs", "p50 ratio"
    );
    let base_p50 = percentile(&plain, 50).as_secs_f64();
    for (name, v) in [
        ("GET /api/machines/{id} (baseline, no link)", &plain),
        ("POST /api/machines/{id}/ping (REST + link)", &via_rest),
        ("host→agent→host inside the host", &link_rt),
    ] {
        println!(
            "{name:<46} {:>9} {:>9} {:>10.2}",
            percentile(v, 50).as_micros(),
            percentile(v, 99).as_micros(),
            percentile(v, 50).as_secs_f64() / base_p50
        );
    }

    // --- idle links per 100 MB -------------------------------------------------------------
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(host.0.id());
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(IDLE_LINKS);
    for machine_token in &idle_tokens {
        sockets.push(common::idle_agent_link(port, machine_token).await);
    }
    let linking = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(host.0.id());
    let per_link = (after.saturating_sub(before)) as f64 / IDLE_LINKS as f64;
    println!("\nidle links: {IDLE_LINKS} linked in {linking:?} (hello + welcome each)");
    println!(
        "host RSS {:.1} MB → {:.1} MB: {:.1} KiB per link, {:.0} links per 100 MB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_link,
        100.0 * 1024.0 / per_link.max(0.001)
    );
    drop(sockets);
}
