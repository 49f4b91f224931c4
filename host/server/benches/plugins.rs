//! Plugins: what a component costs to compile, to start from the on-disk cache, to instantiate
//! (pooling vs on-demand allocation) and to call, next to the same work as plain Rust in the
//! same run: the summarizer plugin's TextRank source (`plugins/summarizer/src/textrank.rs`)
//! compiled natively into this benchmark.
//!
//! Needs the plugins built: `cargo build --release --target wasm32-wasip2 --manifest-path
//! plugins/Cargo.toml`.

#[path = "../../../plugins/summarizer/src/textrank.rs"]
mod textrank;

#[path = "common.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use claudenest::plugins::{
    grants::Grants,
    runtime::{Chunk, Limits, Options, PluginRuntime, SummarizeOptions},
};
use common::percentile;

const CALLS: usize = 2000;
const COLD_STARTS: usize = 10;

fn component(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/target/wasm32-wasip2/release/"
    );
    std::fs::read(format!("{path}{name}.wasm"))
        .unwrap_or_else(|e| panic!("{name}.wasm: {e}; build the plugins first"))
}

fn runtime(cache: Option<std::path::PathBuf>, pooling: bool) -> Arc<PluginRuntime> {
    PluginRuntime::new(Options {
        cache_dir: cache,
        limits: Limits::default(),
        pooling,
        ..Options::default()
    })
    .unwrap()
}

fn row(name: &str, times: &mut [Duration], baseline: Duration) {
    times.sort_unstable();
    let p50 = percentile(times, 50);
    println!(
        "{name:<48} {:>10.1} {:>10.1} {:>9.1}×",
        p50.as_secs_f64() * 1e6,
        percentile(times, 99).as_secs_f64() * 1e6,
        p50.as_secs_f64() / baseline.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let bytes = component("summarizer");
    let contents = [
        "We chose PostgreSQL for the task store. PostgreSQL gives us row locks for task claims.",
        "The cafeteria serves soup on Fridays. Nobody minds.",
        "Task claims use SKIP LOCKED in PostgreSQL so claimers never wait on each other.",
        "File locks are globs; overlapping globs are refused. Locks expire and are swept.",
    ];
    let chunks: Vec<Chunk> = contents
        .iter()
        .enumerate()
        .map(|(i, c)| Chunk {
            content: (*c).into(),
            chunk_type: "decision".into(),
            importance: 0.2 + 0.2 * i as f32,
            created_at: "2026-11-28T10:00:00Z".into(),
        })
        .collect();
    let options = SummarizeOptions { max_length: 200 };

    // Baseline: the same TextRank source, native.
    let inputs: Vec<textrank::Input> = chunks
        .iter()
        .map(|c| textrank::Input {
            content: &c.content,
            importance: c.importance,
        })
        .collect();
    let mut native = Vec::with_capacity(CALLS);
    let mut native_text = String::new();
    for _ in 0..CALLS {
        let t = Instant::now();
        native_text = std::hint::black_box(textrank::summarize(&inputs, 200)).0;
        native.push(t.elapsed());
    }
    native.sort_unstable();
    let base = percentile(&native, 50);

    // Compile (no cache), each time in a new engine.
    let mut compile = Vec::new();
    for _ in 0..3 {
        let rt = runtime(None, false);
        let t = Instant::now();
        rt.load(bytes.clone()).await.unwrap();
        compile.push(t.elapsed());
    }
    // Cold start from the compiled cache: a new engine reading the .cwasm.
    let cache = tempfile::tempdir().unwrap();
    runtime(Some(cache.path().to_owned()), true)
        .load(bytes.clone())
        .await
        .unwrap();
    let mut cold = Vec::new();
    for _ in 0..COLD_STARTS {
        let rt = runtime(Some(cache.path().to_owned()), true);
        let t = Instant::now();
        rt.load(bytes.clone()).await.unwrap();
        cold.push(t.elapsed());
    }

    let mut results = Vec::new();
    for pooling in [true, false] {
        let rt = runtime(None, pooling);
        assert_eq!(rt.pooling, pooling, "pooling allocator unavailable here");
        let loaded = rt.load(bytes.clone()).await.unwrap();
        let mut instantiate = Vec::with_capacity(CALLS);
        let mut calls = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            rt.instantiate(&loaded).await.unwrap();
            instantiate.push(t.elapsed());
            let t = Instant::now();
            let summary = rt
                .summarize(&loaded, &Grants::default(), &chunks, options)
                .await
                .unwrap()
                .unwrap();
            calls.push(t.elapsed());
            assert_eq!(
                summary.text, native_text,
                "the plugin and the native code agree"
            );
        }
        results.push((pooling, instantiate, calls));
    }

    println!(
        "\nplugin costs: summarizer component ({} KB), {CALLS} calls; baseline = the same TextRank natively",
        bytes.len() / 1024
    );
    println!(
        "{:<48} {:>10} {:>10} {:>10}",
        "", "p50 µs", "p99 µs", "p50 ratio"
    );
    row("native TextRank (baseline)", &mut native, base);
    row("compile (no cache, new engine)", &mut compile, base);
    row(
        "cold start from the .cwasm cache (new engine)",
        &mut cold,
        base,
    );
    for (pooling, mut instantiate, mut calls) in results {
        let kind = if pooling { "pooling" } else { "on-demand" };
        row(&format!("instantiate ({kind})"), &mut instantiate, base);
        row(
            &format!("call = instantiate + summarize ({kind})"),
            &mut calls,
            base,
        );
    }
}
