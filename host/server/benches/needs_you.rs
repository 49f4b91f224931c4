//! "Needs you": how long from a Claude Code hook firing to (a) the `session:status` event at a
//! subscribed Pusher socket and (b) the signed webhook at a receiver on loopback, p50/p99, next
//! to a plain REST round trip (`GET /api/sessions/{id}`) measured in the same run.
//!
//! The hook fires as Claude Code fires it: the command from the session's `--settings` file is
//! run with the event's JSON on stdin and the session's hook environment (which the stand-in
//! `claude` writes down for us). The clock starts just before that process is spawned; the
//! same process run with no agent to ask is printed too, to show what the spawn itself costs.
//! Real processes throughout: the `claudenest` host binary on SQLite and a `claudenest agent`.

#[path = "common.rs"]
mod common;

use std::{
    io::Write as _,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{HostAndAgent, json, next_json, percentile, session_socket};
use tokio::sync::mpsc;

const ROUNDS: usize = 200;
const WARM_UP: usize = 10;

/// Writes down its hook environment and `--settings` file, then waits.
const STAND_IN: &str = r#"#!/bin/sh
settings=""
while [ $# -gt 0 ]; do
  [ "$1" = "--settings" ] && settings="$2"
  shift
done
printf '%s\n%s\n%s\n' "$CLAUDENEST_HOOK_SOCKET" "$CLAUDENEST_HOOK_TOKEN" "$settings" > hook-env.tmp
mv hook-env.tmp hook-env
exec cat > /dev/null
"#;

/// A webhook receiver: the arrival time of each notice, with its message.
async fn receiver() -> (u16, mpsc::UnboundedReceiver<(Instant, String)>) {
    use axum::{body::Bytes, extract::State, routing::post};
    async fn hook(
        State(tx): State<mpsc::UnboundedSender<(Instant, String)>>,
        body: Bytes,
    ) -> &'static str {
        let at = Instant::now();
        let notice: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let _ = tx.send((
            at,
            notice["message"].as_str().unwrap_or_default().to_owned(),
        ));
        "ok"
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, rx)
}

/// Runs the session's hook command with `event` on stdin, as Claude Code does.
fn fire(command: &str, env: &[(&str, &str)], event: &serde_json::Value) {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(event.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("claude");
    std::fs::write(&script, STAND_IN).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (port, mut webhooks) = receiver().await;
    let url = common::sqlite_url(dir.path());
    let allow = format!("[\"127.0.0.1:{port}\"]");
    let host = Arc::new(
        HostAndAgent::start(
            &url,
            &[("CLAUDENEST_NOTIFICATIONS__ALLOW_HOSTS", &allow)],
            |agent| {
                agent.arg("--claude-path").arg(&script);
            },
        )
        .await,
    );
    let target = json(
        host.client
            .post(format!("{}/api/notifications/targets", host.base))
            .bearer_auth(&host.token)
            .json(&serde_json::json!({"name": "bench", "kind": "webhook",
                "url": format!("http://127.0.0.1:{port}/hook"), "events": ["waiting"]})),
    )
    .await;
    assert!(target["data"]["secret"].is_string(), "{target}");
    let (session, ws_token) = host.session(dir.path()).await;
    let env_file = dir.path().join("hook-env");
    common::wait_until(
        async || env_file.exists(),
        "the stand-in writing its hook env",
    )
    .await;
    let written = std::fs::read_to_string(&env_file).unwrap();
    let mut lines = written.lines();
    let (socket, token, settings) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    assert!(!socket.is_empty(), "the session got hooks");
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(settings).unwrap()).unwrap();
    let command = settings["hooks"]["Notification"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = [
        ("CLAUDENEST_HOOK_SOCKET", socket),
        ("CLAUDENEST_HOOK_TOKEN", token),
    ];
    let (mut ws, _) = session_socket(&host.base, &host.client, &session, &ws_token).await;

    let (mut to_status, mut to_webhook) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + WARM_UP {
        let message = format!("bench round {round}");
        let event = serde_json::json!({"hook_event_name": "Notification", "session_id": "s",
            "notification_type": "idle_prompt", "message": message});
        let start = Instant::now();
        tokio::task::block_in_place(|| fire(&command, &env, &event));
        let status_at = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), next_json(&mut ws))
                .await
                .expect("session:status in time");
            if frame["event"] == "session:status" {
                let data: serde_json::Value =
                    serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
                if data["waiting_message"] == message.as_str() {
                    break Instant::now();
                }
            }
        };
        let webhook_at = loop {
            let (at, said) = tokio::time::timeout(Duration::from_secs(10), webhooks.recv())
                .await
                .expect("the webhook in time")
                .unwrap();
            if said == message {
                break at;
            }
        };
        if round >= WARM_UP {
            to_status.push(status_at - start);
            to_webhook.push(webhook_at - start);
        }
        // Back to running, so the next notification is a change again.
        let back = serde_json::json!({"hook_event_name": "UserPromptSubmit", "session_id": "s", "prompt": "go on"});
        tokio::task::block_in_place(|| fire(&command, &env, &back));
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), next_json(&mut ws))
                .await
                .expect("running again");
            if frame["event"] == "session:status"
                && frame["data"].as_str().unwrap().contains("\"running\"")
            {
                break;
            }
        }
    }

    // The hook command alone: the same process with no agent to ask (it answers at once).
    let mut alone = Vec::new();
    let event = serde_json::json!({"hook_event_name": "Notification", "message": "nobody"});
    for round in 0..ROUNDS + WARM_UP {
        let start = Instant::now();
        tokio::task::block_in_place(|| fire(&command, &[], &event));
        if round >= WARM_UP {
            alone.push(start.elapsed());
        }
    }

    let get = format!("{}/api/sessions/{session}", host.base);
    let mut rest = Vec::new();
    for round in 0..ROUNDS + WARM_UP {
        let start = Instant::now();
        let reply = host
            .client
            .get(&get)
            .bearer_auth(&host.token)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success());
        reply.bytes().await.unwrap();
        if round >= WARM_UP {
            rest.push(start.elapsed());
        }
    }
    for list in [&mut to_status, &mut to_webhook, &mut alone, &mut rest] {
        list.sort();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "needs you: {ROUNDS} hook firings (Notification, idle_prompt) after {WARM_UP} to warm up"
    );
    println!("{:<44} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (name, list) in [
        ("hook fired → session:status at the socket", &to_status),
        ("hook fired → signed webhook received", &to_webhook),
        ("the hook command alone (no agent to ask)", &alone),
        ("REST round trip (GET /api/sessions/{id})", &rest),
    ] {
        println!(
            "{name:<44} {:>9.2} {:>9.2}",
            ms(percentile(list, 50)),
            ms(percentile(list, 99))
        );
    }
    for (name, list) in [
        ("status / REST", &to_status),
        ("webhook / REST", &to_webhook),
    ] {
        println!(
            "{name:<44} {:>8.1}× {:>8.1}×",
            ms(percentile(list, 50)) / ms(percentile(&rest, 50)),
            ms(percentile(list, 99)) / ms(percentile(&rest, 99))
        );
    }
}
