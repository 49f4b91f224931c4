//! Text embeddings for context search (issue 9). Three embedders behind one trait:
//! all-MiniLM-L6-v2 run in-process with candle (`minilm`), an OpenAI-compatible HTTP endpoint
//! (`http`: Ollama, OpenAI, vLLM), and a deterministic feature-hashing fallback (`hashing`) used
//! only when neither is configured — it matches words, not meaning, and says so.
//!
//! Every embedder returns L2-normalised vectors of [`DIMS`] values, so cosine similarity is a
//! dot product and the stores can index them.

pub mod hashing;
pub mod http;
pub mod minilm;

use std::sync::Arc;

use async_trait::async_trait;

/// Dimensions of every stored embedding (fixed per deployment; the PostgreSQL column is
/// `vector(384)`).
pub const DIMS: usize = 384;

#[async_trait]
pub trait Embedder: Send + Sync {
    /// Identifies the model; embeddings made by another model are redone.
    fn model(&self) -> &str;
    /// Whether similarity means similar meaning (false for the hashing fallback).
    fn semantic(&self) -> bool;
    /// One vector of [`DIMS`] per text, L2-normalised.
    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>>;
}

pub type SharedEmbedder = Arc<dyn Embedder>;

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two unit vectors, clamped into [0, 1] as the API reports it.
pub fn similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    f64::from(dot).clamp(0.0, 1.0)
}

/// The embedder the configuration asks for. An explicit choice that cannot be met is an error;
/// `auto` falls back in the documented order.
pub fn from_config(config: &crate::config::Config) -> anyhow::Result<SharedEmbedder> {
    let settings = &config.embeddings;
    let dir = config.model_dir();
    let http = || -> anyhow::Result<SharedEmbedder> {
        let url = settings.http_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!("embeddings.provider = http needs embeddings.http_url")
        })?;
        let key = settings
            .http_api_key
            .as_ref()
            .map(|k| k.expose().to_owned());
        Ok(Arc::new(http::HttpEmbedder::new(
            url,
            &settings.http_model,
            key,
        )?))
    };
    let embedder: SharedEmbedder = match settings.provider.as_str() {
        "minilm" => Arc::new(minilm::MiniLm::load(&dir)?),
        "http" => http()?,
        "hashing" => Arc::new(hashing::HashingEmbedder),
        "auto" if minilm::MiniLm::present(&dir) => Arc::new(minilm::MiniLm::load(&dir)?),
        "auto" if settings.http_url.is_some() => http()?,
        "auto" => {
            tracing::warn!(
                model_dir = %dir.display(),
                "no embedding model: context search uses the full-text index only (run `claudenest model fetch`)"
            );
            Arc::new(hashing::HashingEmbedder)
        }
        other => {
            anyhow::bail!("embeddings.provider must be auto, minilm, http or hashing, not {other}")
        }
    };
    tracing::info!(model = embedder.model(), "embedder ready");
    Ok(embedder)
}
