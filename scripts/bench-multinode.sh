#!/usr/bin/env bash
# bench-multinode.sh - the benchmark against a multi-process deployment.
#
# usage: scripts/bench-multinode.sh [clinker-bench options...]
#
# Starts, on this machine, the deployment the README's multi-node section
# describes: PostgreSQL for state, RabbitMQ for RPC, one `clinker api`, two
# `clinker scheduler`s and `clinker volume` on two hosts (node1@file,
# node2@file), each in its own process. Then runs clinker-bench against the
# API (--endpoint: start-up time and RSS are the all-in-one's figures, not
# measured here) and tears everything down, the database and the RabbitMQ
# vhost included, even when interrupted.
#
# Environment:
#   CLINKER_BIN   [target/release/clinker]
#   BENCH_BIN     [target/release/clinker-bench]
#   PG_URL_BASE   [postgresql://postgres@127.0.0.1:5432]  (trust auth)
#   RABBIT        [guest:guest@127.0.0.1:5672]
#   KEEP=1        keep the run directory (configs, logs)
# Needs psql and rabbitmqctl (scripts/ensure-services.sh starts the servers).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLINKER_BIN=${CLINKER_BIN:-$ROOT/target/release/clinker}
BENCH_BIN=${BENCH_BIN:-$ROOT/target/release/clinker-bench}
PG_URL_BASE=${PG_URL_BASE:-postgresql://postgres@127.0.0.1:5432}
RABBIT=${RABBIT:-guest:guest@127.0.0.1:5672}
for bin in "$CLINKER_BIN" "$BENCH_BIN"; do
    [ -x "$bin" ] || { echo "bench-multinode: $bin missing (cargo build --release -p clinker -p clinker-bench)" >&2; exit 2; }
done

NAME="clinker_bench_$(date +%s)_$$"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/clinker-bench-mn.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS $NAME" >/dev/null 2>&1 || true
    rabbitmqctl -q delete_vhost "$NAME" >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "bench-multinode: kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT INT TERM

psql "$PG_URL_BASE/postgres" -qc "CREATE DATABASE $NAME" >/dev/null
rabbitmqctl -q add_vhost "$NAME" >/dev/null
rabbitmqctl -q set_permissions -p "$NAME" guest '.*' '.*' '.*' >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat > "$DIR/common.conf" <<EOF
[DEFAULT]
transport_url = rabbit://$RABBIT/$NAME
state_path = $DIR
quota_volumes = -1
quota_gigabytes = -1
quota_snapshots = -1
[database]
connection = $PG_URL_BASE/$NAME
EOF
printf '[DEFAULT]\nhost = api1\nosapi_volume_listen_port = %s\n' "$PORT" > "$DIR/api.conf"
printf '[DEFAULT]\nhost = sched1\n' > "$DIR/sched1.conf"
printf '[DEFAULT]\nhost = sched2\n' > "$DIR/sched2.conf"
for n in 1 2; do
    printf '[DEFAULT]\nhost = node%s\nenabled_backends = file\n[file]\nvolume_driver = file\nfile_volumes_dir = %s/node%s\n' \
        "$n" "$DIR" "$n" > "$DIR/node$n.conf"
done

"$CLINKER_BIN" --config-file "$DIR/common.conf" manage db sync >"$DIR/db-sync.log" 2>&1
start() { # name role
    "$CLINKER_BIN" --config-file "$DIR/common.conf" --config-file "$DIR/$1.conf" "$2" >"$DIR/$1.log" 2>&1 &
    PIDS+=($!)
}
start node1 volume
start node2 volume
start sched1 scheduler
start sched2 scheduler
start api api

ENDPOINT="http://127.0.0.1:$PORT/v3"
for _ in $(seq 1 300); do
    # Ready when both volume hosts are up in os-services.
    up=$(curl -sf "$ENDPOINT/os-services?binary=cinder-volume" 2>/dev/null |
        python3 -c 'import json,sys; print(sum(s["state"] == "up" for s in json.load(sys.stdin)["services"]))' 2>/dev/null || echo 0)
    [ "$up" = 2 ] && break
    sleep 0.1
done
[ "${up:-0}" = 2 ] || { echo "bench-multinode: the deployment did not come up; logs in $DIR" >&2; tail -n 20 "$DIR"/*.log >&2; exit 1; }
# A scheduler holds creates (up to scheduler_driver_init_wait_time) until it
# has capability reports: wait until get_pools, answered by either
# scheduler, shows both pools six times in a row.
streak=0
for _ in $(seq 1 300); do
    pools=$(curl -sf "$ENDPOINT/scheduler-stats/get_pools" 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["pools"]))' 2>/dev/null || echo 0)
    if [ "$pools" = 2 ]; then streak=$((streak + 1)); else streak=0; fi
    [ "$streak" -ge 6 ] && break
    sleep 0.1
done
[ "$streak" -ge 6 ] || { echo "bench-multinode: the schedulers never reported both pools" >&2; exit 1; }
echo "multi-node deployment: PostgreSQL + RabbitMQ, api1, sched1, sched2, node1@file, node2@file"
if ! "$BENCH_BIN" --endpoint "$ENDPOINT" "$@"; then
    echo "bench-multinode: the benchmark failed; the services' last log lines:" >&2
    for log in "$DIR"/*.log; do echo "== $log" >&2; tail -n 15 "$log" >&2; done
    exit 1
fi
