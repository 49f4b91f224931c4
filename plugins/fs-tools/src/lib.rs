//! MCP tools over one granted directory, mounted by the host at `/workspace`: `list_files`,
//! `read_file`, `search_files`. Paths are relative to the workspace; the sandbox, not this code,
//! is what keeps the plugin inside it (the tests ask it to read `../..` and outside paths).

use std::path::{Path, PathBuf};

use exports::claudenest::plugin::tools::{Content, Guest, Tool, ToolResult};
use serde_json::{Value, json};

wit_bindgen::generate!({ path: "../../wit", world: "mcp-adapter" });

/// The manifest the host reads before compiling the component (custom section).
#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

const ROOT: &str = "/workspace";
const MAX_READ: u64 = 1024 * 1024;

struct FsTools;

fn text(result: impl Into<String>, is_error: bool) -> ToolResult {
    ToolResult {
        content: vec![Content::Text(result.into())],
        is_error,
    }
}

fn resolve(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative.trim_start_matches('/'))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= limit {
            break;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out, limit)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn list_files(args: &Value) -> ToolResult {
    let dir = resolve(args["path"].as_str().unwrap_or(""));
    let mut files = Vec::new();
    match walk(&dir, &mut files, 1000) {
        Ok(()) => ToolResult {
            content: vec![Content::Json(
                json!(files.iter().map(|p| relative(p)).collect::<Vec<_>>()).to_string(),
            )],
            is_error: false,
        },
        Err(err) => text(format!("cannot list {}: {err}", dir.display()), true),
    }
}

fn read_file(args: &Value) -> ToolResult {
    let Some(path) = args["path"].as_str() else {
        return text("`path` is required", true);
    };
    let path = resolve(path);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > MAX_READ => {
            text(format!("{} is larger than 1 MiB", path.display()), true)
        }
        Ok(_) => match std::fs::read_to_string(&path) {
            Ok(content) => text(content, false),
            Err(err) => text(format!("cannot read {}: {err}", path.display()), true),
        },
        Err(err) => text(format!("cannot read {}: {err}", path.display()), true),
    }
}

fn search_files(args: &Value) -> ToolResult {
    let Some(needle) = args["query"].as_str().filter(|q| !q.is_empty()) else {
        return text("`query` is required", true);
    };
    let mut files = Vec::new();
    if let Err(err) = walk(Path::new(ROOT), &mut files, 5000) {
        return text(format!("cannot search: {err}"), true);
    }
    let mut hits = Vec::new();
    for file in files {
        let Ok(content) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (n, line) in content.lines().enumerate() {
            if line.contains(needle) {
                hits.push(json!({"path": relative(&file), "line": n + 1, "text": line}));
            }
        }
    }
    ToolResult {
        content: vec![Content::Json(json!(hits).to_string())],
        is_error: false,
    }
}

impl Guest for FsTools {
    fn list_tools() -> Vec<Tool> {
        let path_arg = |description: &str, required: bool| {
            json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": description}},
                "required": if required { vec!["path"] } else { vec![] },
            })
            .to_string()
        };
        vec![
            Tool {
                name: "list_files".into(),
                description: "Lists the files under a directory of the workspace (recursive)."
                    .into(),
                input_schema: path_arg(
                    "Directory relative to the workspace; empty for its root.",
                    false,
                ),
            },
            Tool {
                name: "read_file".into(),
                description: "Reads a text file of the workspace (at most 1 MiB).".into(),
                input_schema: path_arg("File relative to the workspace.", true),
            },
            Tool {
                name: "search_files".into(),
                description: "Finds the lines of workspace files that contain a string.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                })
                .to_string(),
            },
        ]
    }

    fn call_tool(name: String, arguments: String) -> Result<ToolResult, String> {
        let args: Value =
            serde_json::from_str(&arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
        claudenest::plugin::host::log(
            claudenest::plugin::host::LogLevel::Debug,
            &format!("{name} {arguments}"),
        );
        match name.as_str() {
            "list_files" => Ok(list_files(&args)),
            "read_file" => Ok(read_file(&args)),
            "search_files" => Ok(search_files(&args)),
            other => Err(format!("unknown tool `{other}`")),
        }
    }
}

export!(FsTools);
