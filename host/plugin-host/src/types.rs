//! What plugins give and take, in the plugin host's own types. The domain and the agent work with
//! these; the generated bindings of each WIT version (`bindings::v0_1`, …) convert to and from
//! them, so a new WIT version changes `bindings/`, not every caller.

/// A tool of an MCP adapter plugin (`tools/list`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// The tool's JSON Schema, as text.
    pub input_schema: String,
}

/// What a tool call answers (`tools/call`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub content: Vec<Content>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    /// JSON as text; shown as text and, when it parses, as structured content too.
    Json(String),
    Image {
        data: String,
        mime_type: String,
    },
}

impl Content {
    /// Bytes the plugin returned for this item (checked against the output limit).
    pub fn size(&self) -> usize {
        match self {
            Content::Text(t) | Content::Json(t) => t.len(),
            Content::Image { data, mime_type } => data.len() + mime_type.len(),
        }
    }
}

/// A context chunk handed to a summarizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub content: String,
    pub chunk_type: String,
    pub importance: f32,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummarizeOptions {
    /// Characters the summary may hold.
    pub max_length: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub text: String,
    /// Indexes of the chunks the summary drew on.
    pub used: Vec<u32>,
    pub token_estimate: u32,
}

/// A skill's metadata as a skill processor read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// A skill after its processor: the content to write and what it found.
#[derive(Debug, Clone, PartialEq)]
pub struct Processed {
    pub metadata: Metadata,
    pub content: String,
    pub warnings: Vec<String>,
}
