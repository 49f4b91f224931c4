#!/usr/bin/env bash
# Makes tests/fixtures/upgrade/<version>/: a `claudenest backup` of a host this release
# populated through its API (an account, a token, a machine, a project with a task, a
# notification target). Kept in git, so later releases' tests restore it — migrating it to
# their schema — and find the data intact (tests/tests/e2e/operations.rs).
#   scripts/make-upgrade-fixture.sh [path/to/claudenest]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/claudenest}
version=$("$bin" --version | awk '{print $2}')
out=tests/fixtures/upgrade/$version
[[ -e $out ]] && { echo "$out exists: remove it first" >&2; exit 1; }
work=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
HOME=$work "$bin" serve --data-dir "$work/data" --bind "127.0.0.1:$port" --log warn &
pid=$!
for _ in $(seq 100); do curl -fs "$base/api/health" >/dev/null && break; sleep 0.1; done

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
call() { curl -fsS -X "$1" "$base$2" -H 'Content-Type: application/json' -H "Authorization: Bearer ${token:-}" ${3:+-d "$3"}; }
token=$(call POST /api/auth/register '{"name": "Ada", "email": "ada@example.com",
  "password": "correct horse battery", "password_confirmation": "correct horse battery"}' | json '["data"]["token"]')
machine=$(call POST /api/machines '{"name": "box"}' | json '["data"]["machine"]["id"]')
project=$(call POST "/api/machines/$machine/projects" '{"name": "app", "project_path": "/srv/app"}' | json '["data"]["id"]')
call POST "/api/projects/$project/tasks" '{"title": "made by an older release"}' >/dev/null
call POST /api/notifications/targets '{"name": "pager", "kind": "webhook", "url": "https://hooks.example.com/claudenest"}' >/dev/null

HOME=$work "$bin" backup "$out" --data-dir "$work/data" --log warn
echo "$token" > "$out/token"
echo "wrote $out"
