//! The fallback embedder: feature hashing of words and word bigrams into [`DIMS`] signed
//! buckets (FNV-1a, so the same text gives the same vector on every host and run).

use async_trait::async_trait;

use super::{DIMS, Embedder, normalize};

pub struct HashingEmbedder;

pub const MODEL: &str = "hashing-v1";

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn add(v: &mut [f32], feature: &str, weight: f32) {
    let h = fnv1a(feature.as_bytes());
    let bucket = (h % DIMS as u64) as usize;
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    v[bucket] += sign * weight;
}

/// The vector of one text.
pub fn embed_one(text: &str) -> Vec<f32> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    let mut v = vec![0.0; DIMS];
    for w in &words {
        add(&mut v, w, 1.0);
    }
    for pair in words.windows(2) {
        add(&mut v, &format!("{} {}", pair[0], pair[1]), 0.5);
    }
    normalize(&mut v);
    v
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn model(&self) -> &str {
        MODEL
    }

    fn semantic(&self) -> bool {
        false
    }

    async fn embed(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| embed_one(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::similarity;

    #[test]
    fn shared_words_make_similar_vectors_and_the_same_text_the_same_vector() {
        let a = embed_one("JWT authentication for the API");
        let b = embed_one("the API uses JWT authentication");
        let c = embed_one("soup on fridays in the cafeteria");
        assert_eq!(a, embed_one("JWT authentication for the API"));
        assert!(similarity(&a, &b) > similarity(&a, &c) + 0.3);
        assert!((a.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
