#!/usr/bin/env bash
# A throw-away OpenStack Swift "all in one" for the backup tests: Debian's
# Swift 2.30 servers (proxy, account, container, object) and memcached on
# 127.0.0.1, one replica on one device directory, tempauth, and s3api (the
# S3 API on the same port).
#
#   SWIFT_DIR=/tmp/swift1 scripts/swift-saio.sh up     # start; prints the env to use
#   SWIFT_DIR=/tmp/swift1 scripts/swift-saio.sh down   # stop it, delete SWIFT_DIR
#
# Ports are free ones picked at start. `up` prints:
#   SWIFT_AUTH_URL SWIFT_USER SWIFT_KEY        (auth v1.0, account AUTH_test)
#   SWIFT_S3_ENDPOINT SWIFT_S3_ACCESS SWIFT_S3_SECRET
# With OWNER_PID set, a watchdog runs `down` when that process exits. Uses
# the packaged /etc/swift/swift.conf (hash prefix/suffix and storage policy
# 0) as is; everything else lives under SWIFT_DIR. ~5 s.
#
# Needs: scripts/install-objectstores.sh.
set -euo pipefail
[ -n "${SWIFT_DIR:-}" ] || { echo "swift-saio.sh: set SWIFT_DIR" >&2; exit 2; }
case "$SWIFT_DIR" in /*) ;; *) SWIFT_DIR="$PWD/$SWIFT_DIR" ;; esac
PY=/usr/bin/python3
log() { echo "[swift-saio $(date -u +%H:%M:%S.%3N)] $*" >&2; }
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# Whether pid $1 is one of ours (its command line names SWIFT_DIR).
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$SWIFT_DIR"; }

down() {
  local f pid
  for f in "$SWIFT_DIR"/run/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    [ "$(basename "$f")" != watchdog.pid ] || continue
    if ours "$pid"; then
      kill "$pid" 2> /dev/null || true
      for _ in $(seq 1 25); do ours "$pid" || break; sleep 0.2; done
      ! ours "$pid" || kill -9 "$pid" 2> /dev/null || true
    fi
  done
  if [ -f "$SWIFT_DIR/run/watchdog.pid" ]; then
    pid=$(cat "$SWIFT_DIR/run/watchdog.pid")
    [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ] || ! ours "$pid" || kill "$pid" 2> /dev/null || true
  fi
  if [ -f "$SWIFT_DIR/.clinker-swift-saio" ]; then rm -rf "$SWIFT_DIR"; fi
}

up() {
  local tool
  for tool in swift-ring-builder swift-proxy-server swift-object-server memcached; do
    command -v "$tool" > /dev/null || { log "$tool is not installed (scripts/install-objectstores.sh)"; exit 1; }
  done
  [ ! -e "$SWIFT_DIR" ] || { log "$SWIFT_DIR exists; run '$0 down' first"; exit 1; }
  mkdir -p "$SWIFT_DIR"/{etc,srv/d1,run,log,cache}
  touch "$SWIFT_DIR/.clinker-swift-saio"
  trap 'rc=$?; [ $rc = 0 ] || { log "start failed; stopping"; down; }; exit $rc' EXIT
  if [ -n "${OWNER_PID:-}" ]; then
    setsid bash -c 'echo $$ > "$1/run/watchdog.pid"
      while kill -0 "$2" 2> /dev/null && [ -d "$1/run" ]; do sleep 1; done
      [ -d "$1/run" ] && SWIFT_DIR="$1" "$3" down' watchdog "$SWIFT_DIR" "$OWNER_PID" "$(readlink -f "$0")" \
      < /dev/null > /dev/null 2>&1 &
  fi
  local etc=$SWIFT_DIR/etc proxy_port memcached_port i ring srv port
  proxy_port=${SWIFT_PROXY_PORT:-$(free_port)}
  memcached_port=$(free_port)
  declare -A ports=([object]=$(free_port) [container]=$(free_port) [account]=$(free_port))
  for ring in object container account; do
    (cd "$etc" && swift-ring-builder $ring.builder create 8 1 1 > /dev/null \
      && swift-ring-builder $ring.builder add "r1z1-127.0.0.1:${ports[$ring]}/d1" 1 > /dev/null \
      && { swift-ring-builder $ring.builder rebalance > /dev/null 2>&1 || true; })
  done
  for srv in object container account; do
    cat > "$etc/$srv-server.conf" <<CONF
[DEFAULT]
devices = $SWIFT_DIR/srv
mount_check = false
bind_ip = 127.0.0.1
bind_port = ${ports[$srv]}
workers = 0
swift_dir = $etc
user = $(id -un)
log_facility = LOG_LOCAL0
recon_cache_path = $SWIFT_DIR/cache

[pipeline:main]
pipeline = $srv-server

[app:$srv-server]
use = egg:swift#$srv
CONF
    [ $srv != container ] || printf '\n[container-sync]\n' >> "$etc/$srv-server.conf"
    [ $srv != object ] || printf '\n[object-replicator]\n' >> "$etc/$srv-server.conf"
  done
  cat > "$etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy_port
workers = 0
swift_dir = $etc
user = $(id -un)

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
storage_url_scheme = default

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
CONF
  memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 64 -u "$(id -un)" -d -P "$SWIFT_DIR/run/memcached.pid"
  for srv in object container account proxy; do
    nohup "swift-$srv-server" "$etc/$srv-server.conf" > "$SWIFT_DIR/log/$srv.log" 2>&1 &
    echo $! > "$SWIFT_DIR/run/$srv.pid"
  done
  for i in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$proxy_port/healthcheck" > /dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$proxy_port/healthcheck" > /dev/null || { tail -20 "$SWIFT_DIR"/log/*.log >&2; exit 1; }
  trap - EXIT
  log "swift proxy ready on 127.0.0.1:$proxy_port"
  cat <<ENV
SWIFT_AUTH_URL=http://127.0.0.1:$proxy_port/auth/v1.0
SWIFT_USER=test:tester
SWIFT_KEY=testing
SWIFT_S3_ENDPOINT=http://127.0.0.1:$proxy_port
SWIFT_S3_ACCESS=test:tester
SWIFT_S3_SECRET=testing
ENV
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
