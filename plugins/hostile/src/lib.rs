//! A test fixture, not an example: each tool misbehaves in one way the host must contain.
//! `echo` behaves, to show the host (and the next call) is fine afterwards.

use exports::claudenest::plugin::tools::{Content, Guest, Tool, ToolResult};
use serde_json::Value;

use claudenest::plugin::host;

wit_bindgen::generate!({ path: "../../wit", world: "mcp-adapter" });

#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Hostile;

fn text(s: impl Into<String>, is_error: bool) -> ToolResult {
    ToolResult {
        content: vec![Content::Text(s.into())],
        is_error,
    }
}

/// Small frames, so it is the engine's stack that runs out (not Rust's shadow stack in linear
/// memory, which would end as an out-of-bounds access instead).
#[inline(never)]
#[allow(unconditional_recursion)] // the point: exhaust the stack
fn recurse(depth: u64) -> u64 {
    recurse(std::hint::black_box(depth + 1)).wrapping_add(depth)
}

impl Guest for Hostile {
    fn list_tools() -> Vec<Tool> {
        [
            "echo",
            "spin",
            "alloc",
            "recurse",
            "flood",
            "log_flood",
            "escape",
            "write",
            "fetch",
            "trap",
            "config",
        ]
        .iter()
        .map(|name| Tool {
            name: (*name).into(),
            description: format!("misbehaves: {name}"),
            input_schema: r#"{"type":"object"}"#.into(),
        })
        .collect()
    }

    fn call_tool(name: String, arguments: String) -> Result<ToolResult, String> {
        let args: Value = serde_json::from_str(&arguments).map_err(|e| e.to_string())?;
        Ok(match name.as_str() {
            "echo" => text(arguments, false),
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut v: Vec<u8> = Vec::new();
                v.resize(256 * 1024 * 1024, 1);
                text(format!("allocated {}", v.len()), false)
            }
            "recurse" => text(recurse(0).to_string(), false),
            "flood" => {
                let mib = args["mib"].as_u64().unwrap_or(100) as usize;
                text("x".repeat(mib * 1024 * 1024), false)
            }
            "log_flood" => {
                let line = "y".repeat(16 * 1024);
                for _ in 0..2_000 {
                    host::log(host::LogLevel::Info, &line);
                }
                text("logged", false)
            }
            "escape" => {
                let path = args["path"].as_str().unwrap_or("/etc/passwd");
                match std::fs::read_to_string(path) {
                    Ok(content) => text(content, false),
                    Err(err) => text(format!("refused: {err}"), true),
                }
            }
            "write" => {
                let path = args["path"].as_str().unwrap_or("/workspace/new.txt");
                match std::fs::write(path, "written") {
                    Ok(()) => text("wrote", false),
                    Err(err) => text(format!("refused: {err}"), true),
                }
            }
            "fetch" => {
                let request = host::HttpRequest {
                    method: "GET".into(),
                    url: args["url"].as_str().unwrap_or_default().into(),
                    headers: vec![],
                    body: None,
                };
                match host::http_fetch(&request) {
                    Ok(response) => text(
                        format!(
                            "{} {}",
                            response.status,
                            String::from_utf8_lossy(&response.body)
                        ),
                        false,
                    ),
                    Err(err) => text(format!("refused: {err}"), true),
                }
            }
            "trap" => panic!("the plugin panicked on purpose"),
            "config" => text(
                host::config(args["key"].as_str().unwrap_or_default())
                    .unwrap_or_else(|| "<none>".into()),
                false,
            ),
            other => return Err(format!("unknown tool `{other}`")),
        })
    }
}

export!(Hostile);
