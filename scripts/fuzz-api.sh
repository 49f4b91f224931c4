#!/usr/bin/env bash
# Fuzzes the API against its own OpenAPI document with schemathesis (pinned by scripts/test.sh),
# bounded in time: every operation is called with generated requests, and the run fails when
# one answers 5xx, answers a status or content type its operation does not document, answers
# a body that does not match its documented schema, or accepts a request its schema forbids.
# Runs the built debug binary on a private SQLite data directory on loopback.
#
# Left out, on purpose: `positive_data_acceptance` (a schema-valid request may be refused for
# what the schema cannot say: an offline machine, a duplicate name, a state); logout and
# password reset (they would end the token the run uses); the plugin upload (a wasm body,
# which schemathesis cannot generate; the plugin tests upload real components); deleting the
# machine or project the run aims at (the end-to-end tests delete them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-150}
bin=target/debug/claudenest
[[ -x $bin ]] || { echo "fuzz-api: build first (cargo build --workspace)" >&2; exit 1; }
command -v schemathesis >/dev/null || { echo "fuzz-api: schemathesis is not installed (scripts/test.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/claudenest-fuzz.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/config.toml" <<TOML
# The limiter would turn most of a fast run into 429s.
[rate_limits]
api_per_minute = 10000000
auth_per_minute = 10000000
login_per_account_per_minute = 10000000
websocket_per_minute = 10000000
TOML
export CLAUDENEST_DATA_DIR=$work/data CLAUDENEST_CONFIG=$work/config.toml
"$bin" user create --email fuzz@example.com --password-stdin <<<"fuzzing password" >/dev/null
token=$("$bin" token create --email fuzz@example.com --name fuzz | grep -o 'cn_[A-Za-z0-9]*' | head -1)
"$bin" serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break
  sleep 0.1
done

# Real resources to aim at, so most operations get past their 404 to their own logic.
api() { curl -sf -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  "http://127.0.0.1:$port$2" ${3:+-d "$3"} | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["'"$4"'"]["id"] if "'"$4"'" else json.load(sys.stdin)["data"]["id"])'; }
machine=$(api POST /api/machines '{"name": "fuzzed"}' machine)
project=$(api POST "/api/machines/$machine/projects" '{"name": "fuzzed", "project_path": "/srv/fuzzed"}' "")
task=$(api POST "/api/projects/$project/tasks" '{"title": "fuzzed"}' "")
cat > "$work/schemathesis.toml" <<TOML
[parameters]
"path.machine" = "$machine"
"path.project" = "$project"

[[operations]]
include-path-regex = '^/api/machines/\{id\}'
parameters = { "path.id" = "$machine" }

[[operations]]
include-path-regex = '^/api/projects/\{id\}'
parameters = { "path.id" = "$project" }

[[operations]]
include-path-regex = '^/api/tasks/\{id\}'
parameters = { "path.id" = "$task" }

TOML

status=0
schemathesis --config-file "$work/schemathesis.toml" run "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance \
  --phases examples,fuzzing --max-examples 10 --max-time "$seconds" --seed 20261205 \
  --exclude-path /api/auth/logout --exclude-path /api/auth/reset-password \
  --exclude-operation-id install_plugin \
  --exclude-operation-id delete_machine --exclude-operation-id delete_project \
  --no-color || status=$?
if [[ $status != 0 ]]; then
  echo "fuzz-api: the server's log ends with:" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"
