//! Extractive summarizer: TextRank over the sentences of the chunks, each sentence's rank
//! weighted by its chunk's importance; the best sentences that fit `max-length` are returned in
//! their original order. Tokens are estimated as one per four characters (rounded up).

use std::collections::HashSet;

use exports::claudenest::plugin::summarize::{Chunk, Guest, Options, Summary};

wit_bindgen::generate!({ path: "../../wit", world: "summarizer" });

#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

const DAMPING: f64 = 0.85;
const ITERATIONS: usize = 40;

struct TextRank;

struct Sentence {
    chunk: u32,
    text: String,
    words: HashSet<String>,
}

fn sentences(chunks: &[Chunk]) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        for raw in chunk.content.split_inclusive(['.', '!', '?', '\n']) {
            let text = raw.trim();
            if text.len() < 3 {
                continue;
            }
            let words = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 2)
                .map(str::to_lowercase)
                .collect();
            out.push(Sentence {
                chunk: i as u32,
                text: text.to_owned(),
                words,
            });
        }
    }
    out
}

fn similarity(a: &Sentence, b: &Sentence) -> f64 {
    let shared = a.words.intersection(&b.words).count() as f64;
    if shared == 0.0 || a.words.len() < 2 || b.words.len() < 2 {
        return 0.0;
    }
    shared / ((a.words.len() as f64).ln() + (b.words.len() as f64).ln())
}

fn rank(sentences: &[Sentence]) -> Vec<f64> {
    let n = sentences.len();
    let weights: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        0.0
                    } else {
                        similarity(&sentences[i], &sentences[j])
                    }
                })
                .collect()
        })
        .collect();
    let out_sums: Vec<f64> = weights.iter().map(|row| row.iter().sum()).collect();
    let mut scores = vec![1.0; n];
    for _ in 0..ITERATIONS {
        scores = (0..n)
            .map(|i| {
                let incoming: f64 = (0..n)
                    .filter(|&j| out_sums[j] > 0.0)
                    .map(|j| weights[j][i] / out_sums[j] * scores[j])
                    .sum();
                (1.0 - DAMPING) + DAMPING * incoming
            })
            .collect();
    }
    scores
}

impl Guest for TextRank {
    fn summarize(chunks: Vec<Chunk>, options: Options) -> Result<Summary, String> {
        if options.max_length == 0 {
            return Err("max-length must be positive".into());
        }
        let sentences = sentences(&chunks);
        if sentences.is_empty() {
            return Ok(Summary {
                text: String::new(),
                used: vec![],
                token_estimate: 0,
            });
        }
        let scores = rank(&sentences);
        let mut order: Vec<usize> = (0..sentences.len()).collect();
        let weighted = |i: usize| {
            let importance = f64::from(
                chunks[sentences[i].chunk as usize]
                    .importance
                    .clamp(0.0, 1.0),
            );
            scores[i] * (0.5 + importance)
        };
        order.sort_by(|&a, &b| weighted(b).total_cmp(&weighted(a)).then(a.cmp(&b)));
        let mut chosen = Vec::new();
        let mut length = 0usize;
        for i in order {
            let add = sentences[i].text.chars().count() + usize::from(!chosen.is_empty());
            if length + add > options.max_length as usize {
                continue;
            }
            length += add;
            chosen.push(i);
        }
        chosen.sort_unstable();
        let text = chosen
            .iter()
            .map(|&i| sentences[i].text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let mut used: Vec<u32> = chosen.iter().map(|&i| sentences[i].chunk).collect();
        used.dedup();
        let token_estimate = text.chars().count().div_ceil(4) as u32;
        Ok(Summary {
            text,
            used,
            token_estimate,
        })
    }
}

export!(TextRank);
