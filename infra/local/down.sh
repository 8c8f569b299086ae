#!/usr/bin/env bash
# Stop the moto_server that infra/local/up.sh started (by its pidfile).
# Never stops PostgreSQL or Redis: those may be the machine's own services.
set -euo pipefail

MOTO_PIDFILE="${CLEARWAY_MOTO_PIDFILE:-/var/tmp/clearway-moto.pid}"

if [ ! -f "$MOTO_PIDFILE" ]; then
  echo "[down] no pidfile $MOTO_PIDFILE: nothing to stop" >&2
  exit 0
fi
pid="$(cat "$MOTO_PIDFILE")"
if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server; then
  echo "[down] stopping moto_server (pid $pid)" >&2
  kill "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "[down] moto_server (pid $pid) ignored SIGTERM: sending SIGKILL" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
else
  echo "[down] pid '$pid' from $MOTO_PIDFILE is not a running moto_server: nothing to stop" >&2
fi
rm -f "$MOTO_PIDFILE"
