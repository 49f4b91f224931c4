//! An OpenAI-compatible embeddings endpoint (`POST {base}/embeddings`): OpenAI, Ollama, vLLM,
//! LM Studio. Asks for [`DIMS`] dimensions and refuses a model that answers with another size.

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde_json::json;

use super::{DIMS, Embedder, normalize};

pub struct HttpEmbedder {
    client: reqwest::Client,
    url: String,
    /// The model the endpoint is asked for.
    remote_model: String,
    api_key: Option<String>,
    /// `http:<model>`, the name stored with its embeddings.
    id: String,
}

impl HttpEmbedder {
    /// `base_url` like `http://127.0.0.1:11434/v1`.
    pub fn new(base_url: &str, model: &str, api_key: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            remote_model: model.to_owned(),
            api_key,
            id: format!("http:{model}"),
        })
    }
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn model(&self) -> &str {
        // Stored with each embedding: a different remote model means re-embedding.
        &self.id
    }

    fn semantic(&self) -> bool {
        true
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = self.client.post(&self.url).json(&json!({
            "model": self.remote_model,
            "input": texts,
            "dimensions": DIMS,
            "encoding_format": "float",
        }));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .context("reaching the embeddings endpoint")?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("embeddings response")?;
        anyhow::ensure!(
            status.is_success(),
            "the embeddings endpoint answered {status}: {body}"
        );
        let mut data: Vec<(usize, Vec<f32>)> = body["data"]
            .as_array()
            .context("no `data` in the embeddings response")?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let index = item["index"].as_u64().map_or(i, |x| x as usize);
                let vector: Vec<f32> = item["embedding"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_f64())
                            .map(|x| x as f32)
                            .collect()
                    })
                    .unwrap_or_default();
                (index, vector)
            })
            .collect();
        data.sort_by_key(|(i, _)| *i);
        anyhow::ensure!(
            data.len() == texts.len(),
            "asked {} embeddings, got {}",
            texts.len(),
            data.len()
        );
        data.into_iter()
            .map(|(_, mut v)| {
                anyhow::ensure!(
                    v.len() == DIMS,
                    "the model `{}` gives {} dimensions; this deployment stores {DIMS}",
                    self.remote_model,
                    v.len()
                );
                normalize(&mut v);
                Ok(v)
            })
            .collect()
    }
}
