//! `claudenest:plugin@0.1.0`: one generated module per world, and the conversions between their
//! records and the plugin host's own types. The `host` interface is generated once (in `mcp`)
//! and shared, so one implementation serves every world.

use crate::types;

pub mod mcp {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "mcp-adapter",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}
pub mod summarizer {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "summarizer",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "claudenest:plugin/host": super::mcp::claudenest::plugin::host },
    });
}
pub mod skills {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "skill-processor",
        imports: { default: async | trappable },
        exports: { default: async },
        with: { "claudenest:plugin/host": super::mcp::claudenest::plugin::host },
    });
}

pub use mcp::claudenest::plugin::host;
use mcp::exports::claudenest::plugin::tools;
use skills::exports::claudenest::plugin::skills as skill;
use summarizer::exports::claudenest::plugin::summarize;

impl From<tools::Tool> for types::Tool {
    fn from(t: tools::Tool) -> Self {
        Self {
            name: t.name,
            description: t.description,
            input_schema: t.input_schema,
        }
    }
}

impl From<tools::ToolResult> for types::ToolResult {
    fn from(r: tools::ToolResult) -> Self {
        let content = r
            .content
            .into_iter()
            .map(|c| match c {
                tools::Content::Text(text) => types::Content::Text(text),
                tools::Content::Json(text) => types::Content::Json(text),
                tools::Content::Image(image) => types::Content::Image {
                    data: image.data,
                    mime_type: image.mime_type,
                },
            })
            .collect();
        Self {
            content,
            is_error: r.is_error,
        }
    }
}

impl From<&types::Chunk> for summarize::Chunk {
    fn from(c: &types::Chunk) -> Self {
        Self {
            content: c.content.clone(),
            chunk_type: c.chunk_type.clone(),
            importance: c.importance,
            created_at: c.created_at.clone(),
        }
    }
}

impl From<types::SummarizeOptions> for summarize::Options {
    fn from(o: types::SummarizeOptions) -> Self {
        Self {
            max_length: o.max_length,
        }
    }
}

impl From<summarize::Summary> for types::Summary {
    fn from(s: summarize::Summary) -> Self {
        Self {
            text: s.text,
            used: s.used,
            token_estimate: s.token_estimate,
        }
    }
}

impl From<skill::Processed> for types::Processed {
    fn from(p: skill::Processed) -> Self {
        let m = p.metadata;
        Self {
            metadata: types::Metadata {
                name: m.name,
                description: m.description,
                tags: m.tags,
                version: m.version,
                extra: m.extra,
            },
            content: p.content,
            warnings: p.warnings,
        }
    }
}
