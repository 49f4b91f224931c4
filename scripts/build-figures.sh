#!/usr/bin/env bash
# Build and size figures of two revisions, measured one after the other on this machine, so the
# ratios between them mean something on a noisy box:
#   - clean release build of the binaries (no target/ at all, dependencies included)
#   - clean test build (`cargo test --workspace --no-run`, dev profile)
#   - incremental rebuild after editing one domain file (domain/tasks.rs): the binaries, then
#     the tests (their rebuild and link)
#   - disk used by target/ afterwards
#   - the server binary's size (as built, and stripped of its symbol table), the agent binary's
#     size as shipped (`--profile agent` where the revision has it: size-optimised, LTO,
#     stripped; before the split the agent is the server's binary, stripped) and the agent's
#     resident memory 5 s after starting (no host to reach: it idles, retrying)
#
# Usage: scripts/build-figures.sh [BEFORE [AFTER]]   (defaults: d559035, the last commit before
# the crate split, and HEAD). Each revision is exported into a temporary directory with its own
# target/; nothing in this checkout is touched. Takes about 25 minutes per revision on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-d559035}
after=${2:-HEAD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seconds (one decimal) a command takes; its output goes to $work/log.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >>"$work/log" 2>&1 || { echo "failed: $*" >&2; tail -30 "$work/log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

measure() {
  local rev=$1 dir="$work/$1"
  mkdir -p "$dir"
  git archive "$rev" | tar -x -C "$dir"
  cd "$dir"
  export CARGO_TARGET_DIR="$dir/target" CARGO_TERM_COLOR=never
  local domain=host/server/src/domain/tasks.rs
  [[ -f $domain ]] || domain=host/src/domain/tasks.rs
  local release test_clean touch_build touch_test disk server server_stripped agent rss
  release=$(timed cargo build --release --locked --workspace --bins)
  local shipped=""
  if grep -q '^\[profile.agent\]' Cargo.toml; then
    timed cargo build --profile agent --locked -p claudenest-agent --bin claudenest-agent >/dev/null
    shipped="$dir/target/agent/claudenest-agent"
  fi
  test_clean=$(timed cargo test --workspace --locked --no-run)
  echo "// figures: an edit" >>"$domain"
  touch_build=$(timed cargo build --workspace --locked --bins)
  echo "// figures: another edit" >>"$domain"
  touch_test=$(timed cargo test --workspace --locked --no-run)
  disk=$(du -sm "$dir/target" | cut -f1)
  server=$(stat -c %s "$dir/target/release/claudenest")
  strip -o "$work/server-stripped" "$dir/target/release/claudenest"
  server_stripped=$(stat -c %s "$work/server-stripped")
  local home="$dir/home" agent_cmd
  mkdir -p "$home"
  if [[ -n $shipped ]]; then
    agent=$(stat -c %s "$shipped")
    agent_cmd=("$shipped")
  else
    agent=$server_stripped
    agent_cmd=("$dir/target/release/claudenest" agent)
  fi
  # Port 9 (discard) on loopback: nothing answers, the agent backs off and retries.
  env -i HOME="$home" PATH="$PATH" "${agent_cmd[@]}" --server http://127.0.0.1:9 \
    --token mn_figures >/dev/null 2>&1 &
  local pid=$!
  sleep 5
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  cd - >/dev/null
  rm -rf "$dir/target"
  local line="$rev $release $test_clean $touch_build $touch_test $disk $server $server_stripped $agent $rss"
  echo "$line" >&2
  echo "$line"
}

echo "measuring $before (before) …" >&2
b=$(measure "$before")
echo "measuring $after (after) …" >&2
a=$(measure "$after")

awk -v b="$b" -v a="$a" 'BEGIN {
  split(b, x, " "); split(a, y, " ")
  names[2] = "clean release build (s)"; names[3] = "clean test build (s)"
  names[4] = "rebuild after a domain edit (s)"; names[5] = "test rebuild + link after it (s)"
  names[6] = "target/ (MB)"; names[7] = "server binary (MB)"
  names[8] = "server binary, stripped (MB)"; names[9] = "agent binary, shipped (MB)"
  names[10] = "agent idle RSS (MB)"
  printf "%-34s %12s %12s %8s\n", "", x[1], y[1], "after/before"
  for (i = 2; i <= 10; i++) {
    u = x[i]; v = y[i]
    if (i >= 7 && i <= 9) { u = u / 1048576; v = v / 1048576 }
    if (i == 10) { u = u / 1024; v = v / 1024 }
    printf "%-34s %12.1f %12.1f %8.2f\n", names[i], u, v, v / u
  }
  printf "%-34s %12.2f %12.2f\n", "agent shipped / server stripped", x[9] / x[8], y[9] / y[8]
}'
