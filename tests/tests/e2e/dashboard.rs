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
    // Both needs checked before anything starts.
    browser_dir();
    chromium();
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
    let shots = shots_dir();
    let started = std::time::SystemTime::now();

    run_story(
        "dashboard.mjs",
        &[
            ("BASE_URL", &server.base_url),
            ("PASSWORD", TEST_PASSWORD),
            ("ADA", "ada@example.com"),
            ("BOB", "bob@example.com"),
            ("PAIR_CODE", &code),
        ],
        &[
            "the paired machine turned online without a reload",
            "typed a line and saw the answer",
            "after a dropped socket every line arrived exactly once",
            "after a reload the same screen is back",
            "ended: the fleet view moved it to Ended without a reload",
            "another user's session id shows a not-found page",
        ],
        || {
            format!(
                "--- agent log ---\n{}\n--- server log (tail) ---\n{}",
                agent.log(),
                tail(&server.log(), 60)
            )
        },
    )
    .await;
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

/// Where the stories save their screenshots.
fn shots_dir() -> PathBuf {
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// Runs `node <script>` in tests/browser with `env` (plus Chromium and the screenshot folder)
/// and asserts that it succeeded and printed each of `steps`; `context` adds to a failure.
async fn run_story(
    script: &str,
    env: &[(&str, &str)],
    steps: &[&str],
    context: impl FnOnce() -> String,
) {
    let run = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(browser_dir())
        .envs(env.iter().copied())
        .env("SHOTS", shots_dir())
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("{script} finished within 4 minutes"))
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    for step in steps {
        assert!(stdout.contains(step), "missing step {step:?}:\n{stdout}");
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The page and its files as a browser and a proxy see them: locked down, compressed once,
/// revalidated by ETag, rooted at `public_url`'s path, and the OAuth landing passing the
/// provider's answer on to the page.
#[tokio::test]
async fn the_page_is_served_locked_down_compressed_and_cacheable() {
    let db = claudenest_e2e::TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = claudenest_e2e::TestApp::spawn_with(db, |c| {
        c.public_url = Some("https://nest.example.com/team/".into());
    })
    .await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = async |path: &str, headers: &[(&str, &str)]| {
        let mut request = client.get(format!("{}{path}", app.base_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    };

    let page = get("/", &[]).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<base href=\"/team/\">"),
        "public_url's path is the page's base:\n{html}"
    );
    assert!(
        !html.contains("https://"),
        "the page names no other origin (no CDN)"
    );

    // Compressed when asked, the same bytes otherwise; an unchanged file answers 304.
    let plain = get("/ui/vendor/xterm.mjs", &[]).await;
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();
    let gzipped = get("/ui/vendor/xterm.mjs", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let gzipped = gzipped.bytes().await.unwrap();
    assert!(
        gzipped.len() * 3 < plain.len(),
        "{} vs {} bytes",
        gzipped.len(),
        plain.len()
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain);
    let again = get("/ui/vendor/xterm.mjs", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    let missing = get("/ui/nope.js", &[]).await;
    assert_eq!(missing.status(), 404);
    let traversal = get("/ui/..%2FCargo.toml", &[]).await;
    assert_eq!(traversal.status(), 404);

    // What the page needs before signing in.
    let config = app.get("/api/client-config", None).await;
    config.expect(200);
    assert_eq!(
        config.body["data"]["pusher_app_key"],
        app.state.pusher().key.as_str()
    );
    assert_eq!(
        config.body["data"]["oauth_providers"],
        serde_json::json!([])
    );

    // Back from a provider: on to the page with its answer; anything else is not a route.
    let landing = get("/oauth/github?code=abc&state=xyz", &[]).await;
    assert_eq!(landing.status(), 303);
    assert_eq!(
        landing.headers()["location"],
        "../?provider=github&code=abc&state=xyz"
    );
    assert_eq!(get("/oauth/GitHub%0d", &[]).await.status(), 404);
}

/// The project room live while two Claude Code instances (MCP clients of `/mcp`, the official
/// TypeScript SDK) claim, lock, add context, beat and complete: each move shows within a second
/// without a reload; a person force-releases a lock and the instance sees the path free; the
/// dependent task becomes the next available when its dependency completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_room_shows_two_instances_moves_live() {
    chromium();
    assert!(
        browser_dir()
            .join("../mcp/node_modules/@modelcontextprotocol/sdk")
            .exists(),
        "the MCP SDK is not installed: run `npm ci --prefix tests/mcp` (scripts/test.sh does)"
    );
    let db = claudenest_e2e::TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    let app = claudenest_e2e::TestApp::spawn(db).await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, _) = app.register_machine(&token, json!({"name": "box"})).await;
    let project = app
        .post(
            &format!("/api/machines/{machine}/projects"),
            Some(&token),
            json!({"name": "nest", "project_path": "/srv/nest"}),
        )
        .await;
    project.expect(201);
    let project = project.body["data"]["id"].as_str().unwrap().to_owned();
    let task = async |body: serde_json::Value| {
        let reply = app
            .post(
                &format!("/api/projects/{project}/tasks"),
                Some(&token),
                body,
            )
            .await;
        reply.expect(201);
        reply.body["data"]["id"].as_str().unwrap().to_owned()
    };
    let design = task(json!({"title": "Design the tree", "priority": "high"})).await;
    let build = task(json!({"title": "Build on it", "dependencies": [design]})).await;

    run_story(
        "project-room.mjs",
        &[
            ("BASE_URL", &app.base_url),
            ("TOKEN", &token),
            ("PROJECT", &project),
            ("DESIGN", &design),
            ("BUILD", &build),
        ],
        &[
            "alpha's claim showed",
            "alpha's glob lock showed",
            "beta's context showed",
            "a force-release on the page frees the path for the instances",
            "the dependent task becoming next showed",
        ],
        String::new,
    )
    .await;
}

/// A session asking for permission, answered from the page: Allow lets the tool run, Deny
/// blocks it with a reason, the fleet says what each session waits for.
#[tokio::test]
async fn a_permission_asked_in_a_session_is_answered_on_the_page() {
    chromium();
    let db = claudenest_e2e::TestDb::create(claudenest_e2e::Backend::Sqlite)
        .await
        .unwrap();
    // An ntfy topic stand-in on loopback, which the operator allows.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ntfy = listener.local_addr().unwrap();
    let topic = axum::Router::new().route("/topic", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, topic).await.unwrap() });
    let app = claudenest_e2e::TestApp::spawn_with(db, |c| {
        claudenest_e2e::fast_links(c);
        c.notifications.allow_hosts = vec![ntfy.to_string()];
    })
    .await;
    let (_, token) = app.user_with_token("ada@example.com").await;
    let (machine, machine_token) = app.register_machine(&token, json!({"name": "box"})).await;
    let dir = tempfile::tempdir().unwrap();
    let claude = claudenest_e2e::write_stand_in_claude_with_hooks(dir.path());
    let agent = AgentProcess::start(
        &app,
        &machine_token,
        &["--claude-path", claude.to_str().unwrap()],
    );
    app.wait_for_status(&token, machine, "online", Duration::from_secs(15))
        .await;
    let created = app
        .post(
            &format!("/api/machines/{machine}/sessions"),
            Some(&token),
            json!({"mode": "interactive", "project_path": "/tmp"}),
        )
        .await;
    created.expect(201);
    let session = created.body["data"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run_story(
        "needs-you.mjs",
        &[
            ("BASE_URL", &app.base_url),
            ("TOKEN", &token),
            ("SESSION", &session),
            ("NTFY_URL", &format!("http://{ntfy}/topic")),
        ],
        &[
            "an ntfy target is added on the notifications page",
            "the permission asked shows with Allow and Deny",
            "Allow let the tool run",
            "Deny blocked the tool and told Claude why",
            "the fleet card says what the session waits for",
            "the notifications page lists what was sent",
        ],
        || tail(&agent.log(), 30),
    )
    .await;
}
