//! Shared context (API §7): chunks instances leave for each other, the compiled context that
//! fits a project's token budget, search by meaning, and summaries.
//!
//! Chunks are stored at once and embedded off the request path by [`spawn_embedder`]; a query
//! searches the embedded chunks by cosine similarity and, for chunks not embedded yet, falls
//! back to a full-text match (scored with the word-hashing similarity). Without a semantic
//! embedder the full-text index answers alone. `search_method` says which of these ran.
//! Tokens are counted as characters / 4 everywhere.

use std::{sync::Arc, time::Duration as StdDuration};

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    abilities,
    accounts::Principal,
    channel_names::project_channel,
    clock,
    projects::{self, estimate_tokens},
};
use crate::{
    embed::{self, SharedEmbedder},
    error::{ApiError, ErrorCode, Result, Validator},
    events::{Event, EventBus},
    store::{ChunkFilter, ChunkSearch, ContextChunk, Project, Store},
};

pub const CHUNK_TYPES: &[&str] = &[
    "task_completion",
    "context_update",
    "file_change",
    "decision",
    "summary",
    "broadcast",
];

fn check_type(v: &mut Validator, kind: &str) {
    v.check(
        CHUNK_TYPES.contains(&kind),
        "type",
        format!("The type must be one of: {}.", CHUNK_TYPES.join(", ")),
    );
}
const MAX_CHUNK_CHARS: usize = 50_000;
const MAX_QUERY_CHARS: usize = 2_000;
/// Chunks the summarizer reads.
const SUMMARIZE_CHUNKS: u64 = 50;

/// `POST /api/projects/{project}/context/chunks` (API §7.6).
pub struct NewChunk {
    pub content: String,
    pub kind: String,
    pub instance_id: Option<String>,
    pub task_id: Option<Uuid>,
    pub files: Vec<String>,
    pub importance_score: Option<f64>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn add_chunk(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    new: NewChunk,
    worker: &EmbedWorker,
) -> Result<ContextChunk> {
    principal.require(abilities::CONTEXT_WRITE)?;
    let project = projects::get(store, principal, project_id).await?;
    let now = clock::now();
    let mut v = Validator::new();
    v.check(
        (1..=MAX_CHUNK_CHARS).contains(&new.content.trim().chars().count()),
        "content",
        format!("The content must be 1 to {MAX_CHUNK_CHARS} characters."),
    );
    check_type(&mut v, &new.kind);
    if let Some(score) = new.importance_score {
        v.check(
            (0.0..=1.0).contains(&score),
            "importance_score",
            "The importance score must be between 0 and 1.",
        );
    }
    if let Some(instance) = &new.instance_id {
        super::instances::validate_instance_id(&mut v, "instance_id", instance);
    }
    v.check(new.files.len() <= 100, "files", "At most 100 files.");
    for (i, file) in new.files.iter().enumerate() {
        v.check(
            (1..=1024).contains(&file.len()),
            &format!("files[{i}]"),
            "Each file must be 1 to 1024 characters.",
        );
    }
    // An expiry already past is taken as written (the API document's own example carries a
    // date that has passed): the chunk is stored already expired, so lists and search leave it
    // out and the sweeper removes it; until then it can still be deleted by id.
    v.finish()?;
    if let Some(task_id) = new.task_id
        && store
            .task(principal.user.id, task_id)
            .await?
            .is_none_or(|row| row.task.project_id != project.id)
    {
        return Err(ApiError::invalid_field(
            "task_id",
            "No such task in this project.",
        ));
    }
    let chunk = ContextChunk {
        id: Uuid::now_v7(),
        project_id: project.id,
        instance_id: new.instance_id,
        task_id: new.task_id,
        kind: new.kind,
        content: new.content,
        files: Json(new.files),
        importance_score: new.importance_score.unwrap_or(0.5),
        expires_at: new.expires_at,
        created_at: now,
    };
    store.insert_chunk(&chunk).await?;
    worker.wake();
    bus.publish(Event::new(
        project_channel(project.id),
        "context:added",
        serde_json::json!({
            "chunk_id": chunk.id,
            "type": chunk.kind,
            "instance_id": chunk.instance_id,
        }),
    ));
    Ok(chunk)
}

/// `GET …/context/chunks` (API §7.5): live chunks, newest first.
pub async fn list_chunks(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
    filter: ChunkFilter,
) -> Result<(Vec<ContextChunk>, u64)> {
    principal.require(abilities::CONTEXT_READ)?;
    let project = projects::get(store, principal, project_id).await?;
    if let Some(kind) = &filter.kind {
        let mut v = Validator::new();
        check_type(&mut v, kind);
        v.finish()?;
    }
    Ok(store
        .context_chunks(project.id, &filter, clock::now())
        .await?)
}

/// `DELETE …/context/chunks/{id}` (API §7.7).
pub async fn delete_chunk(
    store: &dyn Store,
    bus: &EventBus,
    principal: &Principal,
    project_id: Uuid,
    chunk_id: Uuid,
) -> Result<()> {
    principal.require(abilities::CONTEXT_WRITE)?;
    let project = projects::get(store, principal, project_id).await?;
    if !store.delete_context_chunk(project.id, chunk_id).await? {
        return Err(ApiError::new(ErrorCode::ContextChunkNotFound));
    }
    bus.publish(Event::new(
        project_channel(project.id),
        "context:deleted",
        serde_json::json!({ "chunk_id": chunk_id }),
    ));
    Ok(())
}

/// API §7.1.
pub struct ProjectContext {
    pub project: Project,
    pub compiled_context: String,
    /// `total_tokens`, `max_tokens` and their percentage, as the project list shows them.
    pub stats: projects::Stats,
}

/// Chunks ranked for the compiled context: importance, then recency.
fn by_weight(chunks: &mut [ContextChunk]) {
    chunks.sort_by(|a, b| {
        b.importance_score
            .total_cmp(&a.importance_score)
            .then(b.created_at.cmp(&a.created_at))
    });
}

/// The markdown document an instance loads: the project's fields, then the most important
/// recent chunks, cut to `max_tokens` (characters / 4). Sections that do not fit are cut at a
/// character boundary; chunks that do not fit are left out whole.
pub fn compile(project: &Project, chunks: &[ContextChunk], max_tokens: i64) -> String {
    let budget = (max_tokens.max(0) as usize).saturating_mul(4);
    let mut out = String::new();
    let separator = "\n\n---\n\n";
    let push = |out: &mut String, text: &str| -> bool {
        let used = out.chars().count();
        let sep = if out.is_empty() { 0 } else { separator.len() };
        if used + sep >= budget {
            return false;
        }
        if !out.is_empty() {
            out.push_str(separator);
        }
        let room = budget - used - sep;
        out.extend(text.chars().take(room));
        text.chars().count() <= room
    };
    for (title, body) in [
        ("Project Summary", &project.summary),
        ("Architecture", &project.architecture),
        ("Conventions", &project.conventions),
        ("Current Focus", &project.current_focus),
        ("Recent Changes", &project.recent_changes),
    ] {
        if !body.trim().is_empty() && !push(&mut out, &format!("# {title}\n\n{}", body.trim())) {
            return out;
        }
    }
    let mut ranked = chunks.to_vec();
    by_weight(&mut ranked);
    let mut section = String::from("# Recent Context\n");
    let mut any = false;
    let used = out.chars().count() + separator.len();
    for chunk in &ranked {
        let line = format!(
            "\n- [{}] {}",
            chunk.kind,
            chunk.content.trim().replace('\n', " ")
        );
        if used + section.chars().count() + line.chars().count() > budget {
            continue;
        }
        section.push_str(&line);
        any = true;
    }
    if any {
        push(&mut out, &section);
    }
    out
}

pub async fn get_context(
    store: &dyn Store,
    principal: &Principal,
    project_id: Uuid,
) -> Result<ProjectContext> {
    principal.require(abilities::CONTEXT_READ)?;
    let project = projects::get(store, principal, project_id).await?;
    let stats = projects::stats(store, &project).await?;
    let filter = ChunkFilter {
        limit: 200,
        ..ChunkFilter::default()
    };
    let (chunks, _) = store
        .context_chunks(project.id, &filter, clock::now())
        .await?;
    let compiled_context = compile(&project, &chunks, stats.max_tokens);
    Ok(ProjectContext {
        project,
        compiled_context,
        stats,
    })
}

/// `POST …/context/query` (API §7.2).
pub struct Query {
    pub query: String,
    pub limit: Option<u64>,
    pub min_similarity: Option<f64>,
    pub kind: Option<String>,
    pub files: Vec<String>,
}

pub struct Hit {
    pub chunk: ContextChunk,
    pub similarity: f64,
}

pub struct QueryResult {
    pub hits: Vec<Hit>,
    /// `vector`, `hybrid` (vector plus text matches of chunks not embedded yet) or `text` (the
    /// embedder matches words, not meaning).
    pub method: &'static str,
}

pub async fn query(
    store: &dyn Store,
    embedder: &SharedEmbedder,
    principal: &Principal,
    project_id: Uuid,
    q: Query,
) -> Result<QueryResult> {
    principal.require(abilities::CONTEXT_READ)?;
    let limit = q.limit.unwrap_or(10);
    let min_similarity = q.min_similarity.unwrap_or(0.0);
    let mut v = Validator::new();
    v.check(
        q.query.trim().chars().count() >= 1 && q.query.chars().count() <= MAX_QUERY_CHARS,
        "query",
        format!("The query must be 1 to {MAX_QUERY_CHARS} characters."),
    )
    .check(
        (1..=100).contains(&limit),
        "limit",
        "The limit must be between 1 and 100.",
    )
    .check(
        (0.0..=1.0).contains(&min_similarity),
        "min_similarity",
        "The minimum similarity must be between 0 and 1.",
    );
    if let Some(kind) = &q.kind {
        check_type(&mut v, kind);
    }
    v.finish()?;
    let project = projects::get(store, principal, project_id).await?;
    // Over-fetch: the files filter and the similarity floor apply afterwards.
    let search = ChunkSearch {
        model: embedder.model(),
        kind: q.kind.as_deref(),
        limit: if q.files.is_empty() {
            limit
        } else {
            limit * 10
        },
        now: clock::now(),
    };
    let words: Vec<String> = q.query.split_whitespace().map(str::to_owned).collect();
    let hit = |(chunk, similarity): (ContextChunk, f64)| Hit {
        chunk,
        similarity: similarity.clamp(0.0, 1.0),
    };
    let (mut hits, method) = if embedder.semantic() {
        let vector = embedder
            .embed(std::slice::from_ref(&q.query))
            .await
            .map_err(|err| {
                tracing::error!(error = %format!("{err:#}"), "embedding the query failed");
                ApiError::new(ErrorCode::Unavailable).with_message("The embedder is not available.")
            })?
            .pop()
            .unwrap_or_default();
        // Text first: a chunk the worker embeds between the two reads is then found by one or
        // both (never by neither); a chunk found by both keeps its vector similarity.
        let pending = store
            .text_matches(project.id, &search, &words, true)
            .await?;
        let mut hits: Vec<Hit> = store
            .nearest_chunks(project.id, &search, &vector)
            .await?
            .into_iter()
            .map(hit)
            .collect();
        let pending: Vec<ContextChunk> = pending
            .into_iter()
            .map(|(chunk, _)| chunk)
            .filter(|c| !hits.iter().any(|h| h.chunk.id == c.id))
            .collect();
        let method = if pending.is_empty() {
            "vector"
        } else {
            "hybrid"
        };
        // Chunks not embedded yet are scored by word overlap, to sit beside cosine similarities.
        let query_words = embed::hashing::embed_one(&q.query);
        hits.extend(pending.into_iter().map(|chunk| Hit {
            similarity: embed::similarity(&query_words, &embed::hashing::embed_one(&chunk.content)),
            chunk,
        }));
        (hits, method)
    } else {
        // No semantic model: the full-text index ranks better than word-hashing vectors
        // (benches/retrieval.rs: nDCG@10 0.43-0.46 against 0.18), so it answers alone.
        let hits = store
            .text_matches(project.id, &search, &words, false)
            .await?;
        (hits.into_iter().map(hit).collect(), "text")
    };
    hits.retain(|h| {
        h.similarity >= min_similarity
            && (q.files.is_empty() || h.chunk.files.0.iter().any(|f| q.files.contains(f)))
    });
    hits.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.chunk.id.cmp(&b.chunk.id))
    });
    hits.truncate(limit as usize);
    Ok(QueryResult { hits, method })
}

/// `POST …/context/summarize` (API §7.4).
pub struct Summarized {
    pub summary: String,
    pub chunks_processed: usize,
    pub tokens_used: i64,
    /// Which summarizer ran: a plugin's name, or `textrank (built in)`.
    pub summarizer: String,
    pub stored: Option<ContextChunk>,
}

/// Summarizes the project's most important recent chunks with the summarizer plugin enabled
/// on its machine (the first, by name), or the built-in TextRank (the same source as the
/// example plugin) when none is. `store` keeps the result as a `summary` chunk.
pub async fn summarize(
    store: &dyn Store,
    plugins: &Arc<crate::plugins::runtime::PluginRuntime>,
    principal: &Principal,
    project_id: Uuid,
    max_length: u32,
    keep: bool,
    worker: &EmbedWorker,
) -> Result<Summarized> {
    principal.require(abilities::CONTEXT_WRITE)?;
    Validator::new()
        .check(
            (50..=20_000).contains(&max_length),
            "max_length",
            "The max length must be between 50 and 20000 characters.",
        )
        .finish()?;
    let project = projects::get(store, principal, project_id).await?;
    let filter = ChunkFilter {
        limit: SUMMARIZE_CHUNKS * 4,
        ..ChunkFilter::default()
    };
    let (mut chunks, _) = store
        .context_chunks(project.id, &filter, clock::now())
        .await?;
    chunks.retain(|c| c.kind != "summary");
    by_weight(&mut chunks);
    chunks.truncate(SUMMARIZE_CHUNKS as usize);
    // Oldest first reads better.
    chunks.sort_by_key(|c| c.created_at);
    let plugin = summarizer_plugin(store, principal, project.machine_id).await?;
    let (summary, summarizer) = match plugin {
        Some(name) => {
            let ready =
                super::plugins::ready(store, plugins, principal.user.id, project.machine_id, &name)
                    .await?;
            let input: Vec<crate::plugins::runtime::Chunk> = chunks
                .iter()
                .map(|c| crate::plugins::runtime::Chunk {
                    content: c.content.clone(),
                    chunk_type: c.kind.clone(),
                    importance: c.importance_score as f32,
                    created_at: c.created_at.to_rfc3339(),
                })
                .collect();
            let options = crate::plugins::runtime::SummarizeOptions { max_length };
            let summary = plugins
                .summarize(&ready.loaded, &ready.grants, &input, options)
                .await
                .map_err(|e| ApiError::new(ErrorCode::PluginFailed).with_message(e.0))?
                .map_err(|reason| {
                    ApiError::new(ErrorCode::PluginFailed)
                        .with_message(format!("The summarizer refused: {reason}"))
                })?;
            (summary.text, name)
        }
        None => {
            let inputs: Vec<textrank::Input> = chunks
                .iter()
                .map(|c| textrank::Input {
                    content: &c.content,
                    importance: c.importance_score as f32,
                })
                .collect();
            let (text, _) = textrank::summarize(&inputs, max_length as usize);
            (text, "textrank (built in)".to_owned())
        }
    };
    let tokens_used = estimate_tokens(
        chunks
            .iter()
            .map(|c| c.content.chars().count() as i64)
            .sum::<i64>()
            + summary.chars().count() as i64,
    );
    let stored = if keep && !summary.is_empty() {
        let chunk = ContextChunk {
            id: Uuid::now_v7(),
            project_id: project.id,
            instance_id: None,
            task_id: None,
            kind: "summary".into(),
            content: summary.clone(),
            files: Json(vec![]),
            importance_score: 0.8,
            expires_at: None,
            created_at: clock::now(),
        };
        store.insert_chunk(&chunk).await?;
        worker.wake();
        Some(chunk)
    } else {
        None
    };
    Ok(Summarized {
        summary,
        chunks_processed: chunks.len(),
        tokens_used,
        summarizer,
        stored,
    })
}

/// The summarizer plugin enabled on the machine, if any (first by name).
async fn summarizer_plugin(
    store: &dyn Store,
    principal: &Principal,
    machine_id: Uuid,
) -> Result<Option<String>> {
    let names =
        super::plugins::enabled_of_world(store, principal.user.id, machine_id, "summarizer")
            .await?;
    Ok(names.into_iter().next())
}

/// The built-in summarizer: the example plugin's TextRank, compiled natively.
#[path = "../../../../plugins/summarizer/src/textrank.rs"]
mod textrank;

/// Embeds chunks in the background, in batches, for the current model; wakes on new chunks
/// and also polls (chunks added by other host processes, a model change).
#[derive(Clone)]
pub struct EmbedWorker {
    wake: Arc<tokio::sync::Notify>,
}

impl EmbedWorker {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

pub fn spawn_embedder(
    store: Arc<dyn Store>,
    embedder: SharedEmbedder,
    batch: usize,
    shutdown: tokio_util::sync::CancellationToken,
) -> EmbedWorker {
    let worker = EmbedWorker {
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let wake = worker.wake.clone();
    tokio::spawn(async move {
        loop {
            match embed_pending(store.as_ref(), &embedder, batch.max(1)).await {
                // A full batch: there may be more.
                Ok(n) if n >= batch => continue,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "embedding chunks failed; retrying")
                }
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(StdDuration::from_secs(5)) => {}
                () = shutdown.cancelled() => return,
            }
        }
    });
    worker
}

/// Embeds one batch of chunks lacking an embedding from the current model; returns how many.
pub async fn embed_pending(
    store: &dyn Store,
    embedder: &SharedEmbedder,
    batch: usize,
) -> anyhow::Result<usize> {
    let chunks = store
        .chunks_to_embed(embedder.model(), batch as u64)
        .await?;
    if chunks.is_empty() {
        return Ok(0);
    }
    let texts: Vec<String> = chunks.iter().map(|c| c.content.clone()).collect();
    let vectors = embedder.embed(&texts).await?;
    let rows: Vec<(Uuid, Uuid, Vec<f32>)> = chunks
        .iter()
        .zip(vectors)
        .map(|(c, v)| (c.id, c.project_id, v))
        .collect();
    store.put_embeddings(embedder.model(), &rows).await?;
    Ok(chunks.len())
}
