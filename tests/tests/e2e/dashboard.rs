//! The web dashboard in a real headless Chromium (`tests/browser/dashboard.mjs`, Playwright
//! driving Debian's `/usr/bin/chromium`), against the built `claudenest` binary and a real
//! `claudenest-agent` paired from the page, whose `claude` is the stand-in. Saves a screenshot
//! of each screen into `docs/screenshots/`.

use std::{path::PathBuf, time::Duration};

use claudenest_e2e::{AgentProcess, ServerProcess, TEST_PASSWORD, http_client};
use serde_json::json;

fn browser_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    dir
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "no Chromium at {path}: `apt-get install chromium` (scripts/test.sh does), or set CHROMIUM"
    );
    path
}

async fn register(base_url: &str, name: &str, email: &str) {
    let reply = http_client()
        .post(format!("{base_url}/api/auth/register"))
        .json(
            &json!({"name": name, "email": email, "password": TEST_PASSWORD,
                      "password_confirmation": TEST_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_pairs_a_machine_and_drives_a_session_in_a_real_browser() {
    let dir = browser_dir();
    let chromium = chromium();
    let server = ServerProcess::start_logged(&[]).await;
    register(&server.base_url, "Ada", "ada@example.com").await;
    register(&server.base_url, "Bob", "bob@example.com").await;
    let claude_dir = tempfile::tempdir().unwrap();
    let claude = claudenest_e2e::write_stand_in_claude(claude_dir.path());
    let (agent, code) = AgentProcess::pair_at(
        &server.base_url,
        &[
            "--claude-path",
            claude.to_str().unwrap(),
            "--kill-grace-secs",
            "1",
        ],
    );
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let started = std::time::SystemTime::now();

    let run = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&dir)
        .env("BASE_URL", &server.base_url)
        .env("PASSWORD", TEST_PASSWORD)
        .env("ADA", "ada@example.com")
        .env("BOB", "bob@example.com")
        .env("PAIR_CODE", &code)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser story finished within 4 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser story failed:\n{stdout}\n{stderr}\n--- agent log ---\n{}\n--- server log (tail) ---\n{}",
        agent.log(),
        tail(&server.log(), 60)
    );
    for step in [
        "the paired machine turned online without a reload",
        "typed a line and saw the answer",
        "after a dropped socket every line arrived exactly once",
        "after a reload the same screen is back",
        "ended: the fleet view moved it to Ended without a reload",
        "another user's session id shows a not-found page",
    ] {
        assert!(stdout.contains(step), "missing step {step:?}:\n{stdout}");
    }
    for shot in [
        "sign-in",
        "fleet",
        "machines",
        "machine",
        "session",
        "session-phone",
        "tokens",
        "not-found",
    ] {
        let taken = std::fs::metadata(shots.join(format!("{shot}.png")))
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        assert!(
            taken >= started,
            "the story took no new screenshot {shot}.png"
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
