//! Sessions: keystroke round trip and sustained output throughput, each next to a baseline
//! measured in the same run.
//!
//! - Keystroke: a Pusher WebSocket client sends `client-session:input` with one character; it
//!   travels host → agent → PTY (running `cat`, so the terminal's echo answers) → agent → host
//!   → the client as `session:output`. Baseline: `terminado` (PyPI; the PTY-over-WebSocket
//!   server JupyterLab uses, one hop) running `cat` the same way (`pip install terminado`).
//! - Throughput: a session prints base64 as fast as it can; measured from create to `completed`
//!   and the bytes in the log are checked against the bytes the PTY produced. Baseline: the same
//!   command read straight from a PTY in this process (no link, no database).
//!
//! Real processes throughout: the `claudenest` host binary on SQLite and a `claudenest agent`.

#[path = "common.rs"]
mod common;

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{Killed, free_port, keystrokes, percentile, session_socket};
use serde_json::json;

const KEYSTROKES: usize = 1000;
/// Bytes of zeros the flood encodes (base64 makes 4/3 of it, plus line ends).
const FLOOD_BYTES: usize = 24 * 1024 * 1024;

/// The session command: `cat` for keystrokes, a base64 flood in a `flood` directory.
const STAND_IN: &str = r#"#!/bin/sh
case "$(pwd)" in
  */flood) exec sh -c "head -c $FLOOD_BYTES /dev/zero | base64 -w 100" ;;
  *) exec cat ;;
esac
"#;

const TERMINADO: &str = r#"
import sys, tornado.ioloop, tornado.web, terminado
manager = terminado.SingleTermManager(shell_command=["cat"])
app = tornado.web.Application([(r"/websocket", terminado.TermSocket, {"term_manager": manager})])
app.listen(int(sys.argv[1]), "127.0.0.1")
print("ready", flush=True)
tornado.ioloop.IOLoop.current().start()
"#;

/// The same flood read straight from a PTY: bytes and seconds.
fn raw_pty_flood(script: &std::path::Path, flood_dir: &std::path::Path) -> (usize, Duration) {
    use portable_pty::{CommandBuilder, PtySize, native_pty_system};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(script);
    cmd.cwd(flood_dir);
    cmd.env("FLOOD_BYTES", FLOOD_BYTES.to_string());
    let t = Instant::now();
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    child.wait().unwrap();
    (total, t.elapsed())
}

#[tokio::main]
async fn main() {
    let common::StandIn {
        dir,
        script,
        flood_dir,
        host: setup,
    } = common::with_stand_in(STAND_IN, FLOOD_BYTES).await;
    let (base, client, token) = (&setup.base, &setup.client, &setup.token);

    // --- keystrokes through ClaudeNest ------------------------------------------------------
    let (session, ws_token) = setup.session(dir.path()).await;
    let (mut ws, channel) = session_socket(base, client, &session, &ws_token).await;
    let ours = keystrokes(
        &mut ws,
        KEYSTROKES,
        |key| {
            json!({"event": "client-session:input", "channel": channel, "data": {"data": key.to_string()}})
                .to_string()
        },
        common::session_output,
    )
    .await;
    // The same keys through `POST /api/sessions/{id}/input`, echoes read from the socket.
    let input_url = format!("{base}/api/sessions/{session}/input");
    let mut answered = Vec::new();
    let ours_rest = common::keystrokes_sent_by(
        &mut ws,
        KEYSTROKES,
        async |_: &mut common::Ws, key| {
            let t = Instant::now();
            let reply = client
                .post(&input_url)
                .bearer_auth(token)
                .json(&json!({"data": key.to_string()}))
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success(), "input: {}", reply.status());
            // Read to its end, as a client does: an unread body keeps the connection from
            // being used again.
            reply.bytes().await.unwrap();
            answered.push(t.elapsed());
        },
        common::session_output,
    )
    .await;
    drop(ws);
    answered.sort_unstable();
    // What the API's way in costs alone: the same token and session, no machine.
    let session_url = format!("{base}/api/sessions/{session}");
    let mut read = Vec::with_capacity(KEYSTROKES);
    for _ in 0..KEYSTROKES {
        let t = Instant::now();
        let reply = client
            .get(&session_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "get: {}", reply.status());
        reply.bytes().await.unwrap();
        read.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    read.sort_unstable();

    // --- keystrokes through terminado -------------------------------------------------------
    let terminado_port = free_port();
    let mut terminado = Killed(
        Command::new("python3")
            .args(["-c", TERMINADO, &terminado_port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(terminado.0.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(
        ready.trim(),
        "ready",
        "terminado did not start: pip install terminado"
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{terminado_port}/websocket"))
            .await
            .unwrap();
    let theirs = keystrokes(
        &mut ws,
        KEYSTROKES,
        |key| json!(["stdin", key.to_string()]).to_string(),
        |m| (m[0] == "stdout").then(|| m[1].as_str().unwrap_or_default().to_owned()),
    )
    .await;

    println!("\nkeystroke round trip, {KEYSTROKES} sequential keys echoed by a PTY running `cat`");
    println!("{:<52} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    for (name, v) in [
        ("terminado (baseline: browser → server → PTY)", &theirs),
        ("ClaudeNest, socket (client → host → agent → PTY)", &ours),
        ("ClaudeNest, POST …/input in, socket out", &ours_rest),
        ("  of which: POST …/input answered", &answered),
        ("  GET /api/sessions/{id} alone", &read),
    ] {
        println!(
            "{name:<52} {:>9} {:>9}",
            percentile(v, 50).as_micros(),
            percentile(v, 99).as_micros()
        );
    }
    let ratio =
        |v: &[Duration], p| percentile(v, p).as_secs_f64() / percentile(&theirs, p).as_secs_f64();
    for (name, v) in [("socket", &ours), ("POST …/input", &ours_rest)] {
        println!(
            "ratio ClaudeNest ({name}) / terminado: p50 {:.2}×, p99 {:.2}× (0 of {KEYSTROKES} lost)",
            ratio(v, 50),
            ratio(v, 99)
        );
    }

    // --- output throughput ------------------------------------------------------------------
    let (raw_bytes, raw_time) = raw_pty_flood(&script, &flood_dir);
    let t = Instant::now();
    let (session, _) = setup.session(&flood_dir).await;
    let session_url = format!("{base}/api/sessions/{session}");
    setup.wait_for_session(&session, "completed").await;
    let elapsed = t.elapsed();
    let (mut logged, mut since, mut chunks) = (0usize, 0i64, 0usize);
    loop {
        let body = common::json(
            client
                .get(format!("{session_url}/logs?since_seq={since}&limit=10000"))
                .bearer_auth(token),
        )
        .await;
        let entries = body["data"].as_array().unwrap();
        let Some(last) = entries.last() else { break };
        for entry in entries {
            logged += entry["data"].as_str().unwrap().len();
        }
        chunks += entries.len();
        since = last["seq"].as_i64().unwrap();
    }
    assert_eq!(
        logged, raw_bytes,
        "bytes logged must equal the bytes the PTY produced"
    );
    let mbps = |bytes: usize, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    println!(
        "\noutput throughput: {:.1} MB of base64 through a PTY (bytes in = bytes logged: {logged} in {chunks} chunks)",
        raw_bytes as f64 / 1e6
    );
    println!("{:<52} {:>9}", "", "MB/s");
    println!(
        "{:<52} {:>9.1}",
        "raw PTY read in-process (baseline)",
        mbps(raw_bytes, raw_time)
    );
    println!(
        "{:<52} {:>9.1}",
        "ClaudeNest: PTY → agent → host → SQLite log",
        mbps(logged, elapsed)
    );
    println!(
        "ratio ClaudeNest / raw PTY: {:.2}×",
        mbps(logged, elapsed) / mbps(raw_bytes, raw_time)
    );
}
