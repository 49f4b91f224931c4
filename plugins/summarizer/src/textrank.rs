//! TextRank over sentences, weighted by the importance of the chunk each comes from. Plain Rust
//! with no bindings, so the benchmark compiles this same file natively as its baseline.

use std::collections::HashSet;

const DAMPING: f64 = 0.85;
const ITERATIONS: usize = 40;

/// A chunk of context: its text and importance (0..1).
pub struct Input<'a> {
    pub content: &'a str,
    pub importance: f32,
}

struct Sentence {
    chunk: u32,
    text: String,
    words: HashSet<String>,
}

fn sentences(inputs: &[Input]) -> Vec<Sentence> {
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        for raw in input.content.split_inclusive(['.', '!', '?', '\n']) {
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

/// The best sentences that fit `max_length` characters, in their original order, and the
/// indexes of the inputs they came from.
pub fn summarize(inputs: &[Input], max_length: usize) -> (String, Vec<u32>) {
    let sentences = sentences(inputs);
    if sentences.is_empty() {
        return (String::new(), Vec::new());
    }
    let scores = rank(&sentences);
    let weighted = |i: usize| {
        let importance = f64::from(
            inputs[sentences[i].chunk as usize]
                .importance
                .clamp(0.0, 1.0),
        );
        scores[i] * (0.5 + importance)
    };
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by(|&a, &b| weighted(b).total_cmp(&weighted(a)).then(a.cmp(&b)));
    let mut chosen = Vec::new();
    let mut length = 0usize;
    for i in order {
        let add = sentences[i].text.chars().count() + usize::from(!chosen.is_empty());
        if length + add > max_length {
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
    (text, used)
}
