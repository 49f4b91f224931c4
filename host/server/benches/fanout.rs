//! Realtime fan-out: one event to 1,000 subscribers of a channel, published through the
//! signed HTTP API, measured against `sockudo` (a Rust Pusher server; `cargo install sockudo`)
//! running on loopback in the same run.
//!
//! Both servers run as separate processes; this process holds the 1,000 WebSocket clients of
//! each, publishes, and timestamps deliveries. Two phases: paced (one event every 5 ms, for
//! delivery latency) and a burst (events back to back, for throughput).

#[path = "common.rs"]
mod common;
use common::{Killed, free_port};

use std::{
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, Mac};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: usize = 1000;
const PACED_EVENTS: usize = 200;
const BURST_EVENTS: usize = 500;
const APP_ID: &str = "bench";
const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";

struct Figures {
    p50: Duration,
    p99: Duration,
    deliveries_per_sec: f64,
    events_per_sec: f64,
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ours_port = free_port();
    let _ours = Killed(
        Command::new(env!("CARGO_BIN_EXE_claudenest"))
            .args(["serve", "--bind", &format!("127.0.0.1:{ours_port}")])
            .env("CLAUDENEST_DATA_DIR", dir.path())
            .env("CLAUDENEST_LOG", "warn")
            .env("CLAUDENEST_PUSHER_APP_ID", APP_ID)
            .env("CLAUDENEST_PUSHER_APP_KEY", KEY)
            .env("CLAUDENEST_PUSHER_APP_SECRET", SECRET)
            .env("CLAUDENEST_RATE_LIMITS__WEBSOCKET_PER_MINUTE", "1000000")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sockudo_bin = std::env::var("SOCKUDO").ok().or_else(|| {
        let home = std::env::var("HOME").ok()?;
        let path = format!("{home}/.cargo/bin/sockudo");
        std::path::Path::new(&path).exists().then_some(path)
    });
    let sockudo_port = free_port();
    let sockudo = sockudo_bin.as_ref().map(|bin| {
        Killed(
            Command::new(bin)
                .env("HOST", "127.0.0.1")
                .env("PORT", sockudo_port.to_string())
                .env("SOCKUDO_DEFAULT_APP_ID", APP_ID)
                .env("SOCKUDO_DEFAULT_APP_KEY", KEY)
                .env("SOCKUDO_DEFAULT_APP_SECRET", SECRET)
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
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "\nfan-out: 1 event → {SUBSCRIBERS} subscribers; {PACED_EVENTS} paced events (5 ms apart), then a burst of {BURST_EVENTS}"
    );
    println!(
        "{:<12} {:>9} {:>9} {:>16} {:>10}",
        "server", "p50 µs", "p99 µs", "deliveries/s", "events/s"
    );
    let ours = measure(ours_port).await;
    print_row("claudenest", &ours);
    match sockudo {
        Some(_) => {
            let theirs = measure(sockudo_port).await;
            print_row("sockudo", &theirs);
            println!(
                "ratios claudenest/sockudo: p50 {:.2}, p99 {:.2}, burst events/s {:.2}",
                ours.p50.as_secs_f64() / theirs.p50.as_secs_f64(),
                ours.p99.as_secs_f64() / theirs.p99.as_secs_f64(),
                ours.events_per_sec / theirs.events_per_sec
            );
        }
        None => println!("sockudo: not installed (cargo install sockudo --locked; needs protoc)"),
    }
}

fn print_row(name: &str, f: &Figures) {
    println!(
        "{name:<12} {:>9} {:>9} {:>16.0} {:>10.0}",
        f.p50.as_micros(),
        f.p99.as_micros(),
        f.deliveries_per_sec,
        f.events_per_sec
    );
}

/// Signed `POST /apps/{id}/events`, Pusher's HTTP API as every server library sends it.
async fn publish(client: &reqwest::Client, port: u16, data: &str) {
    let body = serde_json::json!({"name": "tick", "channel": "bench", "data": data}).to_string();
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(body.as_bytes()))
    };
    let ts = chrono::Utc::now().timestamp();
    let path = format!("/apps/{APP_ID}/events");
    let query = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&body_md5={md5}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("POST\n{path}\n{query}").as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let response = client
        .post(format!(
            "http://127.0.0.1:{port}{path}?{query}&auth_signature={sig}"
        ))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "publish: {}",
        response.status()
    );
}

async fn measure(port: u16) -> Figures {
    let base = Instant::now();
    // (event seq, delivery time since base) per delivery
    let deliveries: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut ready = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let url = format!("ws://127.0.0.1:{port}/app/{KEY}?protocol=7&client=js&version=8.6.0");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let _established = ws.next().await.unwrap().unwrap();
        ws.send(Message::Text(
            r#"{"event":"pusher:subscribe","data":{"channel":"bench"}}"#.into(),
        ))
        .await
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        let deliveries = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut mine = Vec::new();
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                if text.contains("subscription_succeeded") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                if text.contains("pusher:ping") {
                    let _ = ws
                        .send(Message::Text(r#"{"event":"pusher:pong","data":{}}"#.into()))
                        .await;
                    continue;
                }
                let at = base.elapsed();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                if value["event"] != "tick" {
                    continue;
                }
                let data: serde_json::Value =
                    serde_json::from_str(value["data"].as_str().unwrap()).unwrap();
                let seq = data["seq"].as_u64().unwrap();
                mine.push((seq, at));
                if data["last"].as_bool() == Some(true) {
                    break;
                }
            }
            deliveries.lock().unwrap().extend(mine);
        }));
    }
    for rx in ready {
        rx.await.unwrap();
    }
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut sent_at = Vec::new();
    // Paced: latency.
    for seq in 0..PACED_EVENTS as u64 {
        sent_at.push(base.elapsed());
        publish(&client, port, &serde_json::json!({"seq": seq}).to_string()).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Burst: throughput.
    let burst_start = base.elapsed();
    let total = (PACED_EVENTS + BURST_EVENTS) as u64;
    for seq in PACED_EVENTS as u64..total {
        sent_at.push(base.elapsed());
        let last = seq == total - 1;
        publish(
            &client,
            port,
            &serde_json::json!({"seq": seq, "last": last}).to_string(),
        )
        .await;
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("every subscriber got the last event")
            .unwrap();
    }
    let deliveries = deliveries.lock().unwrap();
    let mut latencies: Vec<Duration> = deliveries
        .iter()
        .filter(|(seq, _)| (*seq as usize) < PACED_EVENTS)
        .map(|(seq, at)| at.saturating_sub(sent_at[*seq as usize]))
        .collect();
    latencies.sort_unstable();
    let burst_deliveries = deliveries
        .iter()
        .filter(|(seq, _)| *seq as usize >= PACED_EVENTS)
        .count();
    let burst_end = deliveries.iter().map(|(_, at)| *at).max().unwrap();
    let burst_secs = (burst_end - burst_start).as_secs_f64();
    assert_eq!(
        deliveries.len(),
        SUBSCRIBERS * (PACED_EVENTS + BURST_EVENTS),
        "every subscriber got every event"
    );
    Figures {
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        deliveries_per_sec: burst_deliveries as f64 / burst_secs,
        events_per_sec: BURST_EVENTS as f64 / burst_secs,
    }
}
