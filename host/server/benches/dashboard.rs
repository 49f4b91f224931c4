//! The dashboard in a real headless Chromium (`tests/browser/bench.mjs`), each figure next to a
//! baseline measured in the same run:
//!
//! - First load, cold cache: bytes over the wire, requests, and time until the fleet view is
//!   drawn, next to the same binary's Swagger UI (`/api/docs`) loaded the same way.
//! - Keystroke echo typed into the page's terminal until the page has drawn it, next to the raw
//!   WebSocket client of the sessions bench doing the same on the same host and agent.
//! - Output rendered: a session floods base64 and the page's xterm.js parses all of it, next to
//!   the raw client merely receiving the same flood.
//! - The project room's board with 1,000 tasks and 200 locks: time until it is drawn and how
//!   long a click takes to answer, next to the same page with 10 tasks.
//!
//! Needs `npm ci --prefix tests/browser` and Debian's `chromium` (scripts/test.sh installs both).
//! Run: `cargo bench -p claudenest --bench dashboard`.

#[path = "common.rs"]
mod common;

use std::{path::PathBuf, time::Instant};

use common::{keystrokes, percentile, session_output, session_socket};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const KEYS: usize = 300;
/// Bytes of zeros the flood encodes (base64 makes 4/3 of it, plus line ends).
const FLOOD_BYTES: usize = 6 * 1024 * 1024;

/// `cat` for keystrokes; in a `flood` directory, a base64 flood once a line arrives, so that
/// whoever watches is attached before it starts.
const STAND_IN: &str = r#"#!/bin/sh
case "$(pwd)" in
  */flood) read line; head -c $FLOOD_BYTES /dev/zero | base64 -w 100; echo FLOOD-DONE; exec cat ;;
  *) exec cat ;;
esac
"#;

/// Runs `node script` in tests/browser with `env`; the JSON object it prints last.
async fn browser_figures(browser: &std::path::Path, script: &str, env: &[(&str, &str)]) -> Value {
    let output = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(browser)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[tokio::main]
async fn main() {
    let browser = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix tests/browser` first"
    );
    let common::StandIn {
        dir,
        flood_dir,
        host: setup,
        ..
    } = common::with_stand_in(STAND_IN, FLOOD_BYTES).await;
    let (base, client, token) = (&setup.base, &setup.client, &setup.token);

    // --- the raw client: keystrokes, then a flood received -----------------------------------
    let (echo_session, ws_token) = setup.session(dir.path()).await;
    let (mut ws, channel) = session_socket(base, client, &echo_session, &ws_token).await;
    let input = |data: &str| {
        json!({"event": "client-session:input", "channel": channel, "data": {"data": data}})
            .to_string()
    };
    let raw_echo = keystrokes(&mut ws, KEYS, |key| input(&key.to_string()), session_output).await;
    drop(ws);
    let (flood_session, ws_token) = setup.session(&flood_dir).await;
    let (mut ws, channel) = session_socket(base, client, &flood_session, &ws_token).await;
    let start = Instant::now();
    let go = json!({"event": "client-session:input", "channel": channel, "data": {"data": "\r"}});
    ws.send(Message::Text(go.to_string().into())).await.unwrap();
    let (mut raw_bytes, mut tail) = (0usize, String::new());
    while !tail.contains("FLOOD-DONE") {
        if let Some(data) = session_output(&common::next_json(&mut ws).await) {
            raw_bytes += data.len();
            tail = format!("{tail}{data}");
            tail = tail[tail.len().saturating_sub(64)..].to_owned();
        }
    }
    let raw_flood = start.elapsed();
    drop(ws);

    // --- the page ------------------------------------------------------------------------------
    let (page_flood_session, _) = setup.session(&flood_dir).await;
    let page = browser_figures(
        &browser,
        "bench.mjs",
        &[
            ("BASE_URL", base),
            ("TOKEN", token),
            ("ECHO_SESSION", &echo_session),
            ("FLOOD_SESSION", &page_flood_session),
            ("KEYS", &KEYS.to_string()),
        ],
    )
    .await;

    let load = &page["first_load"];
    let docs = &page["docs_load"];
    println!("\nfirst load, cold cache, loopback (median of 5)");
    println!("{:<44} {:>10} {:>9} {:>9}", "", "bytes", "requests", "ms");
    for (name, v) in [
        ("Swagger UI at /api/docs (baseline)", docs),
        ("dashboard until the fleet view is drawn", load),
    ] {
        println!(
            "{name:<44} {:>10} {:>9} {:>9.0}",
            v["bytes"],
            v["requests"],
            v["ms"].as_f64().unwrap()
        );
    }
    let ratio = |a: &Value, b: &Value| a.as_f64().unwrap() / b.as_f64().unwrap();
    println!(
        "ratio dashboard / Swagger UI: bytes {:.2}×, time {:.2}×",
        ratio(&load["bytes"], &docs["bytes"]),
        ratio(&load["ms"], &docs["ms"])
    );

    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let (raw50, raw99) = (ms(percentile(&raw_echo, 50)), ms(percentile(&raw_echo, 99)));
    let (page50, page99) = (
        page["echo_ms"]["p50"].as_f64().unwrap(),
        page["echo_ms"]["p99"].as_f64().unwrap(),
    );
    println!("\nkeystroke echo, {KEYS} keys, host → agent → PTY (`cat`) and back");
    println!("{:<44} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    println!(
        "{:<44} {raw50:>9.2} {raw99:>9.2}",
        "raw WebSocket client (baseline)"
    );
    println!(
        "{:<44} {page50:>9.2} {page99:>9.2}",
        "the page (typed into xterm.js, drawn)"
    );
    println!(
        "ratio page / raw client: p50 {:.2}×, p99 {:.2}×",
        page50 / raw50,
        page99 / raw99
    );

    let mbps = |bytes: f64, secs: f64| bytes / 1e6 / secs;
    let raw_rate = mbps(raw_bytes as f64, raw_flood.as_secs_f64());
    let page_bytes = page["flood"]["bytes"].as_f64().unwrap();
    let page_rate = mbps(page_bytes, page["flood"]["ms"].as_f64().unwrap() / 1e3);
    println!(
        "\noutput, {:.1} MB of base64 from one session",
        raw_bytes as f64 / 1e6
    );
    println!("{:<44} {:>9}", "", "MB/s");
    println!(
        "{:<44} {raw_rate:>9.1}",
        "raw WebSocket client, received (baseline)"
    );
    println!("{:<44} {page_rate:>9.1}", "the page, parsed by xterm.js");
    println!("ratio page / raw client: {:.2}×", page_rate / raw_rate);
    assert_eq!(
        page_bytes as usize, raw_bytes,
        "the page drew as many bytes as the raw client received"
    );

    // --- the project room's board: 1,000 tasks and 200 locks next to 10 tasks ----------------
    let project = async |name: &str, tasks: usize, locks: usize| -> String {
        let post = async |path: String, body: Value| -> Value {
            let reply = common::json(
                client
                    .post(format!("{base}/api/{path}"))
                    .bearer_auth(token)
                    .json(&body),
            )
            .await;
            assert_eq!(reply["success"], true, "{reply}");
            reply["data"].clone()
        };
        let made = post(
            format!("machines/{}/projects", setup.machine),
            json!({"name": name, "project_path": format!("/srv/{name}")}),
        )
        .await;
        let id = made["id"].as_str().unwrap().to_owned();
        let mut previous: Option<String> = None;
        for i in 0..tasks {
            // Every fifth task waits on the one before it: the board draws dependencies too.
            let dependencies: Vec<String> =
                previous.iter().filter(|_| i % 5 == 0).cloned().collect();
            let task = post(
                format!("projects/{id}/tasks"),
                json!({"title": format!("task {i}"), "dependencies": dependencies,
                       "files": [format!("src/module_{i}.rs")]}),
            )
            .await;
            previous = task["id"].as_str().map(str::to_owned);
        }
        for i in 0..locks {
            post(
                format!("projects/{id}/locks"),
                json!({"path": format!("src/area_{i}/**"), "instance_id": format!("instance-{}", i % 8),
                       "reason": "bench"}),
            )
            .await;
        }
        id
    };
    let small = project("small", 10, 0).await;
    let large = project("large", 1000, 200).await;
    let board = async |id: &str, tasks: usize| -> (f64, f64) {
        let mut usable = Vec::new();
        let mut click = Vec::new();
        for _ in 0..3 {
            let figures = browser_figures(
                &browser,
                "project-room.mjs",
                &[
                    ("BASE_URL", base),
                    ("TOKEN", token),
                    ("PROJECT", id),
                    ("BENCH_TASKS", &tasks.to_string()),
                ],
            )
            .await;
            usable.push(figures["usable_ms"].as_f64().unwrap());
            click.push(figures["click_ms"].as_f64().unwrap());
        }
        usable.sort_by(f64::total_cmp);
        click.sort_by(f64::total_cmp);
        (usable[1], click[1])
    };
    let (small_usable, small_click) = board(&small, 10).await;
    let (large_usable, large_click) = board(&large, 1000).await;
    println!("\nproject room, time until the board is drawn and a click's answer (median of 3)");
    println!("{:<44} {:>9} {:>9}", "", "usable ms", "click ms");
    println!(
        "{:<44} {small_usable:>9.0} {small_click:>9.0}",
        "10 tasks (baseline)"
    );
    println!(
        "{:<44} {large_usable:>9.0} {large_click:>9.0}",
        "1,000 tasks and 200 locks"
    );
    println!(
        "ratio 1,000 / 10: usable {:.2}×, click {:.2}×",
        large_usable / small_usable,
        large_click / small_click.max(1.0)
    );
}
