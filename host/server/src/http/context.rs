//! Shared context (API §7).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::AuthUser,
    envelope::ErrorEnvelope,
    envelope::{Envelope, Null, PageQuery, Reply},
    extract::{ApiJson, ApiPath, ApiQuery},
};
use crate::{
    app::AppState,
    domain::{
        context::{self, NewChunk, ProjectContext, Query},
        projects::{self, ProjectChanges},
    },
    error::Result,
    store::{ChunkFilter, ContextChunk},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_context, update_context))
        .routes(routes!(query))
        .routes(routes!(summarize))
        .routes(routes!(list_chunks, add_chunk))
        .routes(routes!(delete_chunk))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenUsage {
    /// Tokens (characters / 4) of the project's fields and all its live chunks.
    pub total: i64,
    /// The project's `maxContextTokens`.
    pub max: i64,
    pub percent: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextView {
    pub summary: String,
    pub architecture: String,
    pub conventions: String,
    pub current_focus: String,
    pub recent_changes: String,
    /// Markdown: the fields, then the most important recent chunks, within `maxContextTokens`.
    pub compiled_context: String,
    pub token_usage: TokenUsage,
}

impl From<ProjectContext> for ContextView {
    fn from(c: ProjectContext) -> Self {
        Self {
            token_usage: TokenUsage {
                total: c.stats.total_tokens,
                max: c.stats.max_tokens,
                percent: c.stats.usage_percent(),
            },
            summary: c.project.summary,
            architecture: c.project.architecture,
            conventions: c.project.conventions,
            current_focus: c.project.current_focus,
            recent_changes: c.project.recent_changes,
            compiled_context: c.compiled_context,
        }
    }
}

/// A chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkView {
    pub id: Uuid,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub instance_id: Option<String>,
    pub task_id: Option<Uuid>,
    pub files: Vec<String>,
    pub importance_score: f64,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ContextChunk> for ChunkView {
    fn from(c: ContextChunk) -> Self {
        Self {
            id: c.id,
            content: c.content,
            kind: c.kind,
            instance_id: c.instance_id,
            task_id: c.task_id,
            files: c.files.0,
            importance_score: c.importance_score,
            expires_at: c.expires_at,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContextRequest {
    pub summary: Option<String>,
    pub architecture: Option<String>,
    pub conventions: Option<String>,
    pub current_focus: Option<String>,
    pub recent_changes: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(min_length = 1, max_length = 2000)]
    pub query: String,
    /// Default 10.
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// Default 0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_similarity: Option<f64>,
    /// Only chunks of this type (extension).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only chunks touching one of these files (extension).
    #[serde(default)]
    pub files: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryHit {
    pub id: Uuid,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Cosine similarity in [0, 1].
    pub similarity: f64,
    pub files: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueryView {
    pub query: String,
    pub results: Vec<QueryHit>,
    pub total_results: usize,
    /// `vector`, `hybrid` (vector plus text matches of chunks not embedded yet) or `text` (no
    /// semantic embedder configured).
    pub search_method: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    /// Characters, 50..=20000, default 2000.
    pub max_length: Option<u32>,
    /// Keep the summary as a `summary` chunk (default false).
    #[serde(default)]
    pub store: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub summary: String,
    pub chunks_processed: usize,
    /// Tokens (characters / 4) read and written.
    pub tokens_used: i64,
    /// The plugin that ran, or `textrank (built in)`.
    pub summarizer: String,
    /// The stored `summary` chunk, when asked for.
    pub chunk: Option<ChunkView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddChunkRequest {
    pub content: String,
    /// task_completion, context_update, file_change, decision, summary, broadcast.
    #[serde(rename = "type")]
    pub kind: String,
    pub instance_id: Option<String>,
    pub task_id: Option<Uuid>,
    #[serde(default)]
    pub files: Vec<String>,
    /// 0..=1, default 0.5.
    pub importance_score: Option<f64>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChunkListQuery {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub instance_id: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// The project's compiled context and its token budget.
#[utoipa::path(get, path = "/projects/{project}/context", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path)),
    responses((status = 200, body = Envelope<ContextView>), (status = 404, body = ErrorEnvelope)))]
pub async fn get_context(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
) -> Result<Reply<ContextView>> {
    let ctx = context::get_context(state.store(), &principal, project).await?;
    Ok(Reply::ok(ctx.into()))
}

/// Changes the given fields; answers like `GET …/context`.
#[utoipa::path(patch, path = "/projects/{project}/context", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = UpdateContextRequest,
    responses((status = 200, body = Envelope<ContextView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn update_context(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateContextRequest>,
) -> Result<Reply<ContextView>> {
    principal.require(crate::domain::abilities::CONTEXT_WRITE)?;
    let changes = ProjectChanges {
        summary: req.summary,
        architecture: req.architecture,
        conventions: req.conventions,
        current_focus: req.current_focus,
        recent_changes: req.recent_changes,
        ..ProjectChanges::default()
    };
    projects::update(state.store(), state.bus(), &principal, project, changes).await?;
    let ctx = context::get_context(state.store(), &principal, project).await?;
    Ok(Reply::ok(ctx.into()))
}

/// Search by meaning.
#[utoipa::path(post, path = "/projects/{project}/context/query", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = QueryRequest,
    responses((status = 200, body = Envelope<QueryView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn query(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Reply<QueryView>> {
    let text = req.query.clone();
    let q = Query {
        query: req.query,
        limit: req.limit,
        min_similarity: req.min_similarity,
        kind: req.kind,
        files: req.files,
    };
    let found = context::query(state.store(), state.embedder(), &principal, project, q).await?;
    let results: Vec<QueryHit> = found
        .hits
        .into_iter()
        .map(|h| QueryHit {
            id: h.chunk.id,
            content: h.chunk.content,
            kind: h.chunk.kind,
            similarity: (h.similarity * 10_000.0).round() / 10_000.0,
            files: h.chunk.files.0,
            created_at: h.chunk.created_at,
        })
        .collect();
    Ok(Reply::ok(QueryView {
        query: text,
        total_results: results.len(),
        results,
        search_method: found.method.to_owned(),
    }))
}

/// Summarizes the most important recent chunks.
#[utoipa::path(post, path = "/projects/{project}/context/summarize", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = SummarizeRequest,
    responses((status = 200, body = Envelope<SummaryView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope), (status = 502, description = "PLG_004", body = ErrorEnvelope)))]
pub async fn summarize(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    // An empty body is `{}`: the spec's request has none.
    ApiJson(req): ApiJson<SummarizeRequest>,
) -> Result<Reply<SummaryView>> {
    let runtime = state.plugins().await?;
    let done = context::summarize(
        state.store(),
        runtime,
        &principal,
        project,
        req.max_length.unwrap_or(2000),
        req.store,
        state.embed_worker(),
    )
    .await?;
    Ok(Reply::ok(SummaryView {
        summary: done.summary,
        chunks_processed: done.chunks_processed,
        tokens_used: done.tokens_used,
        summarizer: done.summarizer,
        chunk: done.stored.map(ChunkView::from),
    }))
}

/// Live chunks, newest first.
#[utoipa::path(get, path = "/projects/{project}/context/chunks", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path), ChunkListQuery),
    responses((status = 200, body = Envelope<Vec<ChunkView>>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn list_chunks(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ChunkListQuery>,
) -> Result<Reply<Vec<ChunkView>>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    }
    .validate()?;
    let filter = ChunkFilter {
        kind: q.kind,
        instance_id: q.instance_id,
        limit: page.per_page,
        offset: page.offset(),
    };
    let (rows, total) = context::list_chunks(state.store(), &principal, project, filter).await?;
    Ok(Reply::page(
        rows.into_iter().map(ChunkView::from).collect(),
        total,
        page,
    ))
}

/// Stored at once; embedded in the background.
#[utoipa::path(post, path = "/projects/{project}/context/chunks", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path)), request_body = AddChunkRequest,
    responses((status = 201, body = Envelope<ChunkView>), (status = 404, body = ErrorEnvelope),
               (status = 422, body = ErrorEnvelope)))]
pub async fn add_chunk(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath(project): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AddChunkRequest>,
) -> Result<Reply<ChunkView>> {
    let new = NewChunk {
        content: req.content,
        kind: req.kind,
        instance_id: req.instance_id,
        task_id: req.task_id,
        files: req.files,
        importance_score: req.importance_score,
        expires_at: req.expires_at,
    };
    let chunk = context::add_chunk(
        state.store(),
        state.bus(),
        &principal,
        project,
        new,
        state.embed_worker(),
    )
    .await?;
    Ok(Reply::created(chunk.into()))
}

/// Delete a context chunk.
#[utoipa::path(delete, path = "/projects/{project}/context/chunks/{chunk}", tag = "context", security(("bearer" = [])),
    params(("project" = Uuid, Path), ("chunk" = Uuid, Path)),
    responses((status = 200, body = Envelope<Null>), (status = 404, description = "CTX_001", body = ErrorEnvelope)))]
pub async fn delete_chunk(
    State(state): State<AppState>,
    AuthUser(principal): AuthUser,
    ApiPath((project, chunk)): ApiPath<(Uuid, Uuid)>,
) -> Result<Reply<Null>> {
    context::delete_chunk(state.store(), state.bus(), &principal, project, chunk).await?;
    Ok(Reply::ok(Null))
}
