#!/usr/bin/env bash
# A second PostgreSQL cluster for benchmarks, configured for a write-heavy load,
# on 127.0.0.1:5433 (BENCH_PG_PORT). The machine's own cluster (5432) keeps
# Debian's defaults (shared_buffers 128 MB, max_wal_size 1 GB), under which the
# intake's benchmark measures checkpoints and backend writes as much as
# Clearway. Durability is NOT relaxed: fsync, synchronous_commit and
# full_page_writes stay on. Nothing the tests use; see BENCHMARKS.md.
#
#     infra/local/bench-pg.sh          # init (first time) and start; prints the URL
#     infra/local/bench-pg.sh stop
set -euo pipefail

PORT="${BENCH_PG_PORT:-5433}"
DIR="${BENCH_PG_DIR:-/var/tmp/clearway-bench-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$BIN/initdb" ] || { echo "PostgreSQL's server binaries are missing: run infra/local/up.sh first" >&2; exit 1; }

as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

if [ "${1:-start}" = stop ]; then
    as_postgres "'$BIN/pg_ctl' -D '$DIR/data' stop -m fast" >&2
    exit 0
fi

if [ ! -f "$DIR/data/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" != 0 ] || chown postgres "$DIR"
    as_postgres "'$BIN/initdb' -D '$DIR/data' -A trust -U postgres" >&2
fi
if ! as_postgres "'$BIN/pg_ctl' -D '$DIR/data' status" >/dev/null 2>&1; then
    as_postgres "'$BIN/pg_ctl' -D '$DIR/data' -l '$DIR/log' -w start -o \"-p $PORT -k /tmp \
        -c listen_addresses=127.0.0.1 -c shared_buffers=2GB -c max_wal_size=8GB \
        -c checkpoint_timeout=30min -c log_checkpoints=on\"" >&2
fi
echo "postgres://postgres@127.0.0.1:$PORT"
