//! Realtime fan-out: one event to 1,000 subscribers of a channel, published through the
//! signed HTTP API, measured against `sockudo` 5.2 (a Rust Pusher server; `cargo install
//! sockudo --version '~5.2' --locked`, needs protoc; or `SOCKUDO=/path/to/sockudo`) running on
//! loopback in the same run.
//!
//! Both servers run as separate processes, one after the other; this process holds the 1,000
//! WebSocket clients of each, publishes, and timestamps deliveries. Two phases: steady (50
//! events/s) and flat out (four publishers back to back). For each: delivery latency from the
//! publish request's start (p50, p99), deliveries/s, and the server's CPU time per delivery
//! (its utime + stime from /proc); and the server's RSS with the subscribers connected.

#[path = "common.rs"]
mod common;
use common::{Killed, cpu_time, free_port, percentile, rss_mib};

use std::{
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use hmac::{Hmac, Mac};
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIBERS: usize = 1000;
const STEADY_RATE: u64 = 50;
const STEADY_EVENTS: usize = 400;
const FLAT_OUT_EVENTS: usize = 2000;
const PUBLISHERS: usize = 4;
const APP_ID: &str = "bench";
const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";

struct Phase {
    p50: Duration,
    p99: Duration,
    deliveries_per_sec: f64,
    cpu_per_delivery: Duration,
}

struct Figures {
    steady: Phase,
    flat_out: Phase,
    rss_mib: f64,
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ours_port = free_port();
    let ours = Killed(
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
    let sockudo_port = free_port();
    let sockudo =
        common::sockudo().map(|bin| common::start_sockudo(&bin, sockudo_port, APP_ID, KEY, SECRET));
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!(
        "\nfan-out: 1 event → {SUBSCRIBERS} subscribers; steady: {STEADY_EVENTS} events at \
         {STEADY_RATE}/s; flat out: {FLAT_OUT_EVENTS} events from {PUBLISHERS} publishers"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>14} {:>16} {:>9}",
        "server / phase", "p50 ms", "p99 ms", "deliveries/s", "CPU µs/delivery", "RSS MiB"
    );
    let ours_figures = measure(ours_port, ours.0.id()).await;
    print_rows("claudenest", &ours_figures);
    match &sockudo {
        Some(theirs) => {
            let theirs_figures = measure(sockudo_port, theirs.0.id()).await;
            print_rows("sockudo", &theirs_figures);
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            for (name, o, t) in [
                ("steady", &ours_figures.steady, &theirs_figures.steady),
                ("flat out", &ours_figures.flat_out, &theirs_figures.flat_out),
            ] {
                println!(
                    "ratios claudenest/sockudo, {name}: CPU per delivery {:.2}, p50 {:.2}, p99 {:.2}, deliveries/s {:.2}",
                    ratio(o.cpu_per_delivery, t.cpu_per_delivery),
                    ratio(o.p50, t.p50),
                    ratio(o.p99, t.p99),
                    o.deliveries_per_sec / t.deliveries_per_sec,
                );
            }
            println!(
                "ratio claudenest/sockudo, RSS with {SUBSCRIBERS} subscribers: {:.2}",
                ours_figures.rss_mib / theirs_figures.rss_mib
            );
        }
        None => println!(
            "sockudo: not installed (cargo install sockudo --version '~5.2' --locked; needs protoc)"
        ),
    }
}

fn print_rows(name: &str, f: &Figures) {
    for (phase, p) in [("steady", &f.steady), ("flat out", &f.flat_out)] {
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>14.0} {:>16.2} {:>9.1}",
            format!("{name} / {phase}"),
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            p.deliveries_per_sec,
            p.cpu_per_delivery.as_secs_f64() * 1e6,
            f.rss_mib,
        );
    }
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

/// When each event's publish request started, in nanoseconds since `base` (0: not yet).
struct SentAt(Vec<AtomicU64>);

impl SentAt {
    fn mark(&self, seq: usize, base: Instant) {
        self.0[seq].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    fn get(&self, seq: usize) -> Duration {
        Duration::from_nanos(self.0[seq].load(Ordering::Relaxed))
    }
}

async fn measure(port: u16, pid: u32) -> Figures {
    let total = STEADY_EVENTS + FLAT_OUT_EVENTS;
    let base = Instant::now();
    // (event seq, delivery time since base) per delivery
    let deliveries: Arc<Mutex<Vec<(usize, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut ready = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut ws = common::pusher_subscriber(port, KEY, "bench").await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(rx);
        let deliveries = deliveries.clone();
        readers.push(tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut mine = Vec::with_capacity(total);
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
                mine.push((data["seq"].as_u64().unwrap() as usize, at));
                if mine.len() == total {
                    break;
                }
            }
            deliveries.lock().unwrap().extend(mine);
        }));
    }
    for rx in ready {
        rx.await.unwrap();
    }
    let rss = rss_mib(pid);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let sent_at = Arc::new(SentAt((0..total).map(|_| AtomicU64::new(0)).collect()));

    // Steady: one event every 1/STEADY_RATE s.
    let cpu_before = cpu_time(pid);
    let steady_start = base.elapsed();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / STEADY_RATE as u32);
    for seq in 0..STEADY_EVENTS {
        tick.tick().await;
        sent_at.mark(seq, base);
        publish(&client, port, &serde_json::json!({"seq": seq}).to_string()).await;
    }
    // Its last deliveries land before the flat-out phase starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let steady_cpu = cpu_time(pid) - cpu_before;

    // Flat out: PUBLISHERS loops back to back.
    let cpu_before = cpu_time(pid);
    let flat_start = base.elapsed();
    let next = Arc::new(AtomicUsize::new(STEADY_EVENTS));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (client, next, sent_at) = (client.clone(), next.clone(), sent_at.clone());
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= total {
                        return;
                    }
                    sent_at.mark(seq, base);
                    publish(&client, port, &serde_json::json!({"seq": seq}).to_string()).await;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(120), reader)
            .await
            .expect("every subscriber got every event")
            .unwrap();
    }
    let flat_cpu = cpu_time(pid) - cpu_before;

    let deliveries = deliveries.lock().unwrap();
    assert_eq!(
        deliveries.len(),
        SUBSCRIBERS * total,
        "every subscriber got every event"
    );
    let phase = |range: std::ops::Range<usize>, start: Duration, cpu: Duration| {
        let mut latencies: Vec<Duration> = Vec::new();
        let mut end = start;
        for (seq, at) in deliveries.iter().filter(|(seq, _)| range.contains(seq)) {
            latencies.push(at.saturating_sub(sent_at.get(*seq)));
            end = end.max(*at);
        }
        latencies.sort_unstable();
        let count = latencies.len();
        Phase {
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            deliveries_per_sec: count as f64 / (end - start).as_secs_f64(),
            cpu_per_delivery: cpu / count as u32,
        }
    };
    Figures {
        steady: phase(0..STEADY_EVENTS, steady_start, steady_cpu),
        flat_out: phase(STEADY_EVENTS..total, flat_start, flat_cpu),
        rss_mib: rss,
    }
}
