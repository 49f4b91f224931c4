//! all-MiniLM-L6-v2 (384 dimensions) in-process with candle, from a local model directory
//! holding `model.safetensors`, `tokenizer.json` and `config.json` (`claudenest model fetch`
//! puts them there). Sequences are truncated at 256 tokens and padded per batch (the shipped
//! tokenizer pins 128 for both); mean pooling over the attention mask, then L2 normalisation.

use std::{path::Path, sync::Arc};

use anyhow::Context as _;
use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{DIMS, Embedder};

pub const MODEL: &str = "all-MiniLM-L6-v2";
/// Files a model directory must hold.
pub const FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];
const MAX_TOKENS: usize = 256;

struct Loaded {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

pub struct MiniLm {
    inner: Arc<Loaded>,
}

impl MiniLm {
    /// Whether `dir` holds a model.
    pub fn present(dir: &Path) -> bool {
        FILES.iter().all(|f| dir.join(f).is_file())
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let device = Device::Cpu;
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json")).context("reading config.json")?,
        )
        .context("parsing config.json")?;
        anyhow::ensure!(
            config.hidden_size == DIMS,
            "the model in {} has {} dimensions; this deployment stores {DIMS}",
            dir.display(),
            config.hidden_size
        );
        let weights = std::fs::read(dir.join("model.safetensors")).context("reading weights")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = BertModel::load(vb, &config).context("loading the BERT weights")?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("reading tokenizer.json: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer truncation: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(Self {
            inner: Arc::new(Loaded {
                model,
                tokenizer,
                device,
            }),
        })
    }
}

fn embed_batch(loaded: &Loaded, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    let encodings = loaded
        .tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
    let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> anyhow::Result<Tensor> {
        let data: Vec<Vec<u32>> = encodings.iter().map(f).collect();
        Ok(Tensor::new(data, &loaded.device)?)
    };
    let ids = rows(&|e| e.get_ids().to_vec())?;
    let type_ids = rows(&|e| e.get_type_ids().to_vec())?;
    let mask = rows(&|e| e.get_attention_mask().to_vec())?;
    let hidden = loaded.model.forward(&ids, &type_ids, Some(&mask))?;
    // Mean over the real tokens, then unit length.
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
    let unit = mean.broadcast_div(&norms)?;
    Ok(unit.to_vec2::<f32>()?)
}

#[async_trait]
impl Embedder for MiniLm {
    fn model(&self) -> &str {
        MODEL
    }

    fn semantic(&self) -> bool {
        true
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (inner, texts) = (self.inner.clone(), texts.to_vec());
        tokio::task::spawn_blocking(move || embed_batch(&inner, &texts)).await?
    }
}
