#!/usr/bin/env bash
# Clearway local services: PostgreSQL, Redis and moto_server (SQS FIFO, Kinesis, S3),
# all on loopback. Installs what is missing (Debian 12, as root), starts what is down,
# creates the AWS resources in moto, and prints the environment to use on stdout:
#
#     eval "$(infra/local/up.sh)"
#
# Everything else goes to stderr. Idempotent: a second run only checks and prints.
# See infra/local/README.md.
set -euo pipefail

# stdout is reserved for the export lines; everything else goes to stderr.
exec 3>&1 1>&2

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

MOTO_VERSION="${CLEARWAY_MOTO_VERSION:-5.2.1}"
MOTO_PORT="${MOTO_PORT:-5055}"
VENV="${CLEARWAY_VENV:-/var/tmp/clearway-venv}"
MOTO_LOG="${CLEARWAY_MOTO_LOG:-/var/tmp/clearway-moto.log}"
MOTO_PIDFILE="${CLEARWAY_MOTO_PIDFILE:-/var/tmp/clearway-moto.pid}"
# The ports are fixed in practice (the exported URLs follow them); overridable for tests.
PG_PORT="${CLEARWAY_PG_PORT:-5432}"
REDIS_PORT="${CLEARWAY_REDIS_PORT:-6379}"

export CLEARWAY_QUEUE_PREFIX="${CLEARWAY_QUEUE_PREFIX:-clearway}"
export CLEARWAY_STREAM="${CLEARWAY_STREAM:-clearway-events}"
export CLEARWAY_BUCKET="${CLEARWAY_BUCKET:-clearway-archive}"
export AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test

START=$SECONDS
log() { printf '[up +%ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

# Is a TCP port on 127.0.0.1 accepting connections? (bash only, no client needed)
port_open() { (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- apt (only if needed)
APT_UPDATED=0
apt_install() {
  [ "$#" -gt 0 ] || return 0
  command -v apt-get >/dev/null || die "need to install $*, but apt-get is missing"
  [ "$(id -u)" = 0 ] || die "need to install $* with apt-get: run as root"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2
}

pg_server_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/moto_server" ] &&
    "$VENV/bin/python" - "$MOTO_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
assert md.version("moto") == sys.argv[1]
import boto3, flask  # noqa: F401  (boto3 for aws_resources.py, flask for moto_server)
PY
}

VENV_OK=0
venv_ok && VENV_OK=1

PKGS=()
# PostgreSQL: server + client tools, unless something already serves 5432.
if ! port_open "$PG_PORT"; then
  if ! pg_server_installed || ! command -v pg_ctlcluster >/dev/null; then PKGS+=(postgresql); fi
fi
if ! command -v pg_isready >/dev/null || ! command -v psql >/dev/null; then
  [[ " ${PKGS[*]-} " == *" postgresql "* ]] || PKGS+=(postgresql-client)
fi
# Redis
if ! port_open "$REDIS_PORT" && ! command -v redis-server >/dev/null; then PKGS+=(redis-server); fi
if ! command -v redis-cli >/dev/null; then
  [[ " ${PKGS[*]-} " == *" redis-server "* ]] || PKGS+=(redis-tools)
fi
command -v curl >/dev/null || PKGS+=(curl ca-certificates)
# Python with venv + ensurepip, only if our venv is not already usable.
PYTHON="${CLEARWAY_PYTHON:-python3}"
if [ "$VENV_OK" = 0 ]; then
  if ! command -v "$PYTHON" >/dev/null; then
    PYTHON=/usr/bin/python3
    PKGS+=(python3 python3-venv)
  elif ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian's python3 ships venv without ensurepip; the apt package brings it.
    PYTHON=/usr/bin/python3
    PKGS+=(python3-venv)
  fi
fi
apt_install ${PKGS[@]+"${PKGS[@]}"}

# ---------------------------------------------------------------- PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2; then
  command -v pg_lsclusters >/dev/null || die "PostgreSQL is down and pg_lsclusters is missing"
  # "ver name port status owner datadir logfile", one line per cluster
  cluster="$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }')"
  if [ -z "$cluster" ]; then
    ver="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
    name=main
    [ ! -d "/etc/postgresql/$ver/main" ] || name=clearway  # main lives on another port
    log "creating PostgreSQL cluster $ver/$name on port $PG_PORT"
    pg_createcluster -p "$PG_PORT" "$ver" "$name" >&2
    cluster="$ver $name"
  fi
  log "starting PostgreSQL cluster $cluster"
  # shellcheck disable=SC2086  # "ver name"
  pg_ctlcluster --skip-systemctl-redirect $cluster start </dev/null >&2 3>&- || true
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && break
    sleep 0.5
  done
  pg_isready -h 127.0.0.1 -p "$PG_PORT" -t 2 >&2 || die "PostgreSQL did not come up on 127.0.0.1:$PG_PORT"
fi
# The URL we export has no password: make sure that works (it does where the machine
# already runs with trust auth; a fresh Debian install wants a password on TCP).
pg_url_ok() {
  PGPASSWORD='' PGPASSFILE=/nonexistent PGCONNECT_TIMEOUT=5 \
    psql -w -X -q -tA "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -c 'select 1' >/dev/null 2>&1
}
if ! pg_url_ok; then
  log "postgres@127.0.0.1 needs a password: adding loopback trust lines to pg_hba.conf"
  hba="$(runuser -u postgres -- psql -p "$PG_PORT" -X -tAc 'show hba_file' 2>/dev/null || true)"
  [ -n "$hba" ] && [ -f "$hba" ] || die "cannot reach PostgreSQL over its socket to find pg_hba.conf"
  tmp="$(mktemp)"
  {
    echo '# clearway infra/local/up.sh: passwordless postgres over loopback (dev/CI only)'
    echo 'host all postgres 127.0.0.1/32 trust'
    echo 'host all postgres ::1/128 trust'
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba" && rm -f "$tmp"
  runuser -u postgres -- psql -p "$PG_PORT" -X -q -tAc 'select pg_reload_conf()' >/dev/null
  sleep 0.5
  pg_url_ok || die "still cannot connect as postgres@127.0.0.1:$PG_PORT without a password"
fi
log "PostgreSQL ok on 127.0.0.1:$PG_PORT"

# ---------------------------------------------------------------- Redis
if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir /var/tmp --logfile /var/tmp/clearway-redis.log </dev/null >&2 3>&-
  for _ in $(seq 1 40); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.25
  done
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG ||
    die "Redis did not come up on 127.0.0.1:$REDIS_PORT (see /var/tmp/clearway-redis.log)"
fi
log "Redis ok on 127.0.0.1:$REDIS_PORT"

# ---------------------------------------------------------------- moto_server venv
if [ "$VENV_OK" = 0 ]; then
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    die "$VENV exists and is not a virtualenv; set CLEARWAY_VENV elsewhere"
  fi
  if [ -f "$VENV/pyvenv.cfg" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "removing broken virtualenv $VENV"
    rm -rf "$VENV"
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV" >&2
  fi
  log "pip install moto[server]==$MOTO_VERSION into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    "moto[server]==$MOTO_VERSION" >&2
  venv_ok || die "moto $MOTO_VERSION not usable in $VENV after pip install"
fi

# ---------------------------------------------------------------- moto_server
# /moto-api/ is cheap; /moto-api/data.json dumps all state and gets slow.
moto_ok() { curl -sf -o /dev/null --max-time 10 "$AWS_ENDPOINT_URL/moto-api/"; }
if ! moto_ok; then
  if port_open "$MOTO_PORT"; then
    die "127.0.0.1:$MOTO_PORT is taken by something that is not moto_server; set MOTO_PORT"
  fi
  log "starting moto_server $MOTO_VERSION on 127.0.0.1:$MOTO_PORT (log: $MOTO_LOG)"
  # Own session, stdio detached: survives this script and never holds the
  # command substitution of `eval "$(up.sh)"` open.
  # fd 3 is this script's stdout (the export lines); a daemon that kept it
  # would hold `$(up.sh)` open for ever, so every daemon started here closes it.
  setsid nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" \
    </dev/null >>"$MOTO_LOG" 2>&1 3>&- &
  echo "$!" >"$MOTO_PIDFILE"
  for _ in $(seq 1 120); do
    moto_ok && break
    kill -0 "$(cat "$MOTO_PIDFILE")" 2>/dev/null || { tail -n 20 "$MOTO_LOG" >&2; die "moto_server exited"; }
    sleep 0.25
  done
  moto_ok || { tail -n 20 "$MOTO_LOG" >&2; die "moto_server did not answer on $AWS_ENDPOINT_URL"; }
fi
log "moto_server ok on $AWS_ENDPOINT_URL"

# ---------------------------------------------------------------- AWS resources
"$VENV/bin/python" "$HERE/aws_resources.py" >&2 || die "creating AWS resources in moto failed"
log "ready"

# ---------------------------------------------------------------- environment (stdout)
for var in DATABASE_URL REDIS_URL AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION \
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY CLEARWAY_QUEUE_PREFIX CLEARWAY_STREAM CLEARWAY_BUCKET; do
  case "$var" in
    DATABASE_URL) val="postgres://postgres@127.0.0.1:$PG_PORT/postgres" ;;
    REDIS_URL) val="redis://127.0.0.1:$REDIS_PORT" ;;
    *) val="${!var}" ;;
  esac
  printf 'export %s=%q\n' "$var" "$val" >&3
done
