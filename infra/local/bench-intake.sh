#!/usr/bin/env bash
# Benchmark only (not a test): one run of the intake alone on postgres, as the
# benchmark rows (README, BENCHMARKS.md) measure it, plus what a figure alone does not show.
#   infra/local/bench-intake.sh [SECONDS [RATE [DEMO FLAGS...]]]
#   (defaults: 30 s, 10,000/s; e.g. `60 10000 --connections 256`)
# Drops and recreates the database `cwdemo` (`CWDEMO_URL`, default on
# 127.0.0.1:5432), makes sure PostgreSQL has the WAL segments the run will
# write (below; `WAL_WARM=0` skips it), runs CHECKPOINT and sync, then the
# demo with a 5 s warm-up
# and `--intake-only`, and stops it once the intake's figures are printed
# (before the workers drain). Then prints WAL written per second, checkpoints,
# how busy both cores were (and how much of it the hypervisor took), and the
# journal's bytes per row.
# `CLEARWAY_BIN=/path/to/clearway` runs another build (to compare two commits);
# by default this tree's, after `cargo build --release`. `BENCH_LOG=file`
# keeps the demo's stderr there: the p99 of each second and each slow commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

secs=${1:-30}
rate=${2:-10000}
shift $(( $# < 2 ? $# : 2 ))
url=${CWDEMO_URL:-postgres://postgres@127.0.0.1:5432/cwdemo}
admin="${url%/*}/postgres"
if [ -z "${CLEARWAY_BIN:-}" ]; then
  cargo build --release --quiet
  CLEARWAY_BIN="${CARGO_TARGET_DIR:-target}/release/clearway"
fi

q() { psql "$admin" -qAtc "$1"; }
q "drop database if exists cwdemo" 2>/dev/null
q "create database cwdemo"
# PostgreSQL makes each new 16 MB WAL segment by writing it full of zeros and
# fsyncing it, and the commit that needs it waits (20-60 ms; at 10,000
# orders/s one segment fills every ~1.4 s). A server that has run at this
# load recycles the segments it has; a fresh cluster, or one idle for long,
# has few, and its first run measures their making (19-44 commits over 20 ms
# a minute here, p99 26-50 ms). So write the WAL the run needs once, as a
# logical message (no table is touched), and let the CHECKPOINT below keep
# its segments for recycling: the figures are the steady state's.
wal_segs=$(q "select count(*) from pg_ls_waldir()")
if [ "${WAL_WARM:-1}" != 0 ]; then
  max_segs=$(q "select setting::bigint / 16 from pg_settings where name = 'max_wal_size'")
  need=$(( (secs + 5) * rate * 1300 / 16777216 + 4 ))
  need=$(( need < max_segs ? need : max_segs ))
  if (( wal_segs < need )); then
    q "select count(pg_logical_emit_message(false, 'clearway-bench', repeat('x', 16777216 - 1024)))
       from generate_series(1, $need)" >/dev/null
  fi
fi
q "checkpoint"
wal_ready=$(q "select count(*) from pg_ls_waldir()")
sync
# Busy (as in the benchmark rows: stolen time counted), all, and stolen:
# the time the hypervisor ran something else on this machine's CPUs.
cpu() { awk '/^cpu / { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9, $9 }' /proc/stat; }
lsn0=$(q "select pg_current_wal_lsn()")
ck0=$(q "select checkpoints_timed + checkpoints_req from pg_stat_bgwriter")
read -r busy0 total0 steal0 < <(cpu)

out=$(mktemp)
err=${BENCH_LOG:-$(mktemp)}
trap 'rm -f "$out"; [ -n "${BENCH_LOG:-}" ] || rm -f "$err"' EXIT
CLEARWAY_TRANSPORT=postgres CLEARWAY_DATABASE_URL="$url" \
  "$CLEARWAY_BIN" demo --rate "$rate" --seconds "$secs" --warmup 5 --intake-only "$@" >"$out" 2>"$err" &
pid=$!
# The intake's figures end with the group-commit line.
until grep -q "^group commits" "$out"; do
  kill -0 "$pid" 2>/dev/null || { cat "$out" "$err" >&2; exit 1; }
  sleep 0.5
done
read -r busy1 total1 steal1 < <(cpu)
lsn1=$(q "select pg_current_wal_lsn()")
ck1=$(q "select checkpoints_timed + checkpoints_req from pg_stat_bgwriter")
sleep 0.5
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

cat "$out"
echo "host:            WAL segments $wal_segs, at the start $wal_ready; vm.dirty_background_bytes $(sysctl -n vm.dirty_background_bytes), ratio $(sysctl -n vm.dirty_background_ratio)"
echo "WAL:             $(q "select round(pg_wal_lsn_diff('$lsn1', '$lsn0') / 1e6 / ($secs + 5), 1)") MB/s over the warm-up and the run; $((ck1 - ck0)) checkpoints"
echo "cores busy:      $(( (busy1 - busy0) * 100 / (total1 - total0) ))%; stolen by the hypervisor $(awk -v s=$((steal1 - steal0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.2f", s * 100 / t }')%"
echo "slow commits:    $(grep -c "slow group commit" "$err" || true) logged (over 20 ms)"
# The p99 of each measured second (the demo prints one line a second).
grep -v "(warm-up)" "$err" | grep -o "last second: p99 *[0-9]*" | awk '$4 > 0 { print $4 }' | sort -n |
  awk '{ v[NR] = $1; if ($1 <= 10000) ok++ }
       END { if (NR) printf "each second:     p99 median %.1f ms, worst %.1f ms; %d of %d seconds at or under 10 ms\n",
             v[int((NR + 1) / 2)] / 1000, v[NR] / 1000, ok, NR }'
psql "$url" -Atc "select 'journal:         ' || count(*) || ' rows, input ' || round(avg(length(input))) || ' bytes on average, '
  || round(pg_relation_size('workflows')::numeric / count(*)) || ' table bytes per row ('
  || round(pg_total_relation_size('workflows')::numeric / count(*)) || ' with indexes)' from workflows"
