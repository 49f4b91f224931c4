#!/usr/bin/env bash
# Builds the Python skill processor into plugins/target/python/python_skill.wasm (no manifest:
# the tests add it the way `claudenest plugin pack` does). Needs `pip install componentize-py`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../target/python"
mkdir -p "$out"
cd "$here"
componentize-py -d ../../wit -w skill-processor componentize app -o "$out/python_skill.wasm"
