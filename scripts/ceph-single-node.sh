#!/usr/bin/env bash
# A throw-away one-node Ceph cluster for Clinker's RBD tests.
#
#   CEPH_DIR=/tmp/c1 scripts/ceph-single-node.sh up     # start; prints the env to use
#   CEPH_DIR=/tmp/c1 scripts/ceph-single-node.sh stop   # kill its daemons, keep the data
#   CEPH_DIR=/tmp/c1 scripts/ceph-single-node.sh start  # restart a stopped cluster (OBJECTSTORE=bluestore keeps data)
#   CEPH_DIR=/tmp/c1 scripts/ceph-single-node.sh down   # kill its daemons and delete CEPH_DIR
#   CEPH_DIR=/tmp/c1 scripts/ceph-single-node.sh status
#
# One monitor, one manager (`ceph df` needs it) and one OSD (memstore by
# default: nothing on disk, ~13 s to clean placement groups), pool
# `$CEPH_POOL` (default `volumes`, size 1, rbd-initialised) and the cephx
# user `client.$CEPH_USER` (default `cinder`) with Cinder's recommended caps
# (`profile rbd`), whose keyring is `$CEPH_DIR/<cluster>.client.<user>.keyring`
# next to `$CEPH_DIR/<cluster>.conf`, as in /etc/ceph.
#
# Safe to run in parallel and next to a real Ceph:
# * everything lives under CEPH_DIR (required; must not exist for `up`), and
#   every command passes `--conf` explicitly, so /etc/ceph is never read;
# * daemons bind to 127.0.0.1 only; the monitor ports are free ports picked
#   at start (OSD and manager pick free ports from Ceph's range themselves);
# * `stop`/`down` signal only the pids recorded in CEPH_DIR/run whose
#   command line names this CEPH_DIR's config, never anything by name;
# * with OWNER_PID set, a watchdog tears the cluster down when that process
#   exits (a test killed by a timeout leaks nothing).
#
# Needs: ceph-mon ceph-osd ceph-mgr ceph-common (Debian 12: Ceph 16 pacific).
# Knobs: CEPH_CLUSTER (ceph), CEPH_POOL (volumes), CEPH_USER (cinder),
#        CEPH_EXTRA_POOLS (more rbd pools the user may use, e.g. "backups"),
#        OBJECTSTORE (memstore | bluestore on a sparse file), OSD_SIZE (4G),
#        UP_TIMEOUT seconds (120), OWNER_PID.
set -euo pipefail

usage() {
  sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ -n "${CEPH_DIR:-}" ] || { echo "ceph-single-node: set CEPH_DIR" >&2; usage; }
case "$CEPH_DIR" in /*) ;; *) CEPH_DIR="$PWD/$CEPH_DIR" ;; esac
CLUSTER=${CEPH_CLUSTER:-ceph}
POOL=${CEPH_POOL:-volumes}
EXTRA_POOLS=${CEPH_EXTRA_POOLS:-}
USER_ID=${CEPH_USER:-cinder}
OBJECTSTORE=${OBJECTSTORE:-memstore}
OSD_SIZE=${OSD_SIZE:-4G}
UP_TIMEOUT=${UP_TIMEOUT:-120}
CONF="$CEPH_DIR/$CLUSTER.conf"
RUN="$CEPH_DIR/run"
PY=/usr/bin/python3 # the interpreter the ceph CLI itself uses

log() { echo "[ceph-single-node $(date -u +%H:%M:%S.%3N)] $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { $PY -c "print(f'{$(now) - $1:.1f}')"; }

# Every client command goes through these: explicit conf and cluster, a
# bounded connect time, never the host's /etc/ceph.
admin() { ceph --cluster "$CLUSTER" --conf "$CONF" --connect-timeout 5 "$@"; }
rbd_admin() { rbd --cluster "$CLUSTER" --conf "$CONF" "$@"; }

# A TCP port nobody listens on now (the kernel's choice, then released).
free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Whether pid $1 is a daemon of this cluster (guards against pid reuse).
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$CONF"
}

stop() {
  local f pid pids=()
  [ -d "$RUN" ] || return 0
  for f in "$RUN"/*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f")
    [ "$(basename "$f")" != watchdog.pid ] || continue
    if ours "$pid"; then
      kill -TERM "$pid" 2> /dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  # A throw-away cluster has nothing to flush: give the daemons 2 s in all.
  for _ in $(seq 1 20); do
    local alive=0
    for pid in "${pids[@]}"; do if ours "$pid"; then alive=1; fi; done
    [ $alive = 1 ] || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do if ours "$pid"; then kill -KILL "$pid" 2> /dev/null || true; fi; done
}

down() {
  stop
  if [ -f "$RUN/watchdog.pid" ]; then
    local pid
    pid=$(cat "$RUN/watchdog.pid")
    # The watchdog's command line carries the CEPH_DIR it guards.
    if [ "$pid" != "$$" ] && [ "$pid" != "$PPID" ] && [ -r "/proc/$pid/environ" ] \
      && tr '\0' '\n' < "/proc/$pid/environ" | grep -qxF "CEPH_DIR=$CEPH_DIR"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  fi
  # Only ever delete a directory this script made.
  if [ -f "$CEPH_DIR/.clinker-ceph-single-node" ]; then rm -rf "$CEPH_DIR"; fi
}

write_conf() {
  local fsid=$1 mon_v2=$2 mon_v1=$3
  cat > "$CONF" <<EOF
# Written by clinker scripts/ceph-single-node.sh; throw-away, loopback only.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
# Each client finds its own keyring here, as /etc/ceph/\$cluster.\$name.keyring.
keyring = $CEPH_DIR/\$cluster.\$name.keyring
run dir = $RUN
pid file = $RUN/\$cluster-\$name.pid
log file = $CEPH_DIR/log/\$cluster-\$name.log
crash dir = $CEPH_DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000

[client]
log file = /dev/null
admin socket =

[mon]
mon data = $CEPH_DIR/mon/\$cluster-\$id
keyring = $CEPH_DIR/mon/\$cluster-\$id/keyring
mon initial members = a
mon cluster log file = $CEPH_DIR/log/\$cluster-cluster.log

[mgr]
mgr data = $CEPH_DIR/mgr/\$cluster-\$id
keyring = $CEPH_DIR/mgr/\$cluster-\$id/keyring

[osd]
osd data = $CEPH_DIR/osd/\$cluster-\$id
keyring = $CEPH_DIR/osd/\$cluster-\$id/keyring
osd objectstore = $OBJECTSTORE
osd memory target = 939524096
memstore device bytes = $(numfmt --from=iec "$OSD_SIZE")
bluestore block create = true
bluestore block size = $(numfmt --from=iec "$OSD_SIZE")
bluestore fsck on mount = false
EOF
}

# Starts the monitor on fresh free ports; retries if another process took a
# port between the pick and the bind.
start_mon() {
  local fsid=$1 attempt mon_v2 mon_v1
  for attempt in 1 2 3; do
    mon_v2=$(free_port)
    mon_v1=$(free_port)
    [ "$mon_v1" != "$mon_v2" ] || continue
    write_conf "$fsid" "$mon_v2" "$mon_v1"
    rm -rf "$CEPH_DIR/mon/$CLUSTER-a" && mkdir -p "$CEPH_DIR/mon/$CLUSTER-a"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_v2,v1:127.0.0.1:$mon_v1]" \
      "$CEPH_DIR/monmap" > /dev/null
    ceph-mon --cluster "$CLUSTER" --conf "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
      --keyring "$CEPH_DIR/$CLUSTER.mon.keyring"
    if ceph-mon --cluster "$CLUSTER" --conf "$CONF" -i a; then
      for _ in $(seq 1 50); do
        admin mon stat > /dev/null 2>&1 && return 0
        sleep 0.2
      done
    fi
    log "monitor did not come up on ports $mon_v2/$mon_v1 (attempt $attempt)"
    stop
  done
  return 1
}

wait_for() { # description, timeout seconds, command...
  local what=$1 limit=$2 start
  shift 2
  start=$(now)
  until "$@"; do
    if $PY -c "import sys; sys.exit(0 if $(now) - $start > $limit else 1)"; then
      die "timed out after ${limit}s waiting for $what (logs in $CEPH_DIR/log)"
    fi
    sleep 0.3
  done
}

osd_is_up() {
  [ "$(admin osd stat -f json 2> /dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["num_up_osds"])' 2> /dev/null)" = 1 ]
}

pgs_are_clean() {
  admin pg stat -f json 2> /dev/null | $PY -c '
import json, sys
s = json.load(sys.stdin)
s = s.get("pg_summary", s)
total = s.get("num_pgs", 0)
clean = sum(x["num"] for x in s.get("num_pg_by_state", []) if x["name"] == "active+clean")
sys.exit(0 if total > 0 and clean == total else 1)'
}

user_can_list() {
  rbd --cluster "$CLUSTER" --conf "$CONF" --id "$USER_ID" ls "$POOL" > /dev/null 2>&1
}

start_watchdog() {
  local owner=$1
  # setsid + closed descriptors: the watchdog must not keep a caller's pipes
  # open (a test reading our output would wait for it forever).
  CEPH_DIR="$CEPH_DIR" setsid bash -c '
    echo $$ > "$1/run/watchdog.pid"
    while kill -0 "$2" 2> /dev/null && [ -d "$1/run" ]; do sleep 1; done
    [ -d "$1/run" ] && CEPH_DIR="$1" "$3" down
  ' watchdog "$CEPH_DIR" "$owner" "$(readlink -f "$0")" < /dev/null > /dev/null 2>&1 &
}

up() {
  local t0 fsid osd_uuid osd_secret osd_id
  t0=$(now)
  for tool in ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool rbd numfmt; do
    command -v "$tool" > /dev/null || die "$tool is not installed (apt-get install -y ceph-mon ceph-osd ceph-mgr ceph-common)"
  done
  [ -x "$PY" ] || die "$PY is missing"
  [ ! -e "$CEPH_DIR" ] || die "$CEPH_DIR exists; run '$0 down' first or pick another CEPH_DIR"
  mkdir -p "$CEPH_DIR"/{run,log,crash,mgr/"$CLUSTER"-x,osd/"$CLUSTER"-0}
  chmod 700 "$CEPH_DIR"
  touch "$CEPH_DIR/.clinker-ceph-single-node"
  [ -z "${OWNER_PID:-}" ] || start_watchdog "$OWNER_PID"
  # On any failure below, leave nothing running.
  trap 'rc=$?; [ $rc = 0 ] || { log "start failed; stopping"; stop; }; exit $rc' EXIT

  fsid=$(cat /proc/sys/kernel/random/uuid)
  ceph-authtool --create-keyring "$CEPH_DIR/$CLUSTER.mon.keyring" --gen-key -n mon. --cap mon 'allow *' > /dev/null
  ceph-authtool --create-keyring "$CEPH_DIR/$CLUSTER.client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' > /dev/null
  ceph-authtool "$CEPH_DIR/$CLUSTER.mon.keyring" --import-keyring "$CEPH_DIR/$CLUSTER.client.admin.keyring" > /dev/null
  start_mon "$fsid" || die "the monitor would not start (see $CEPH_DIR/log)"
  log "monitor up after $(elapsed "$t0")s"

  admin auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    > "$CEPH_DIR/mgr/$CLUSTER-x/keyring"
  ceph-mgr --cluster "$CLUSTER" --conf "$CONF" -i x

  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_secret=$(ceph-authtool --gen-print-key)
  printf '{"cephx_secret": "%s"}' "$osd_secret" > "$CEPH_DIR/osd-secret.json"
  osd_id=$(admin osd new "$osd_uuid" -i "$CEPH_DIR/osd-secret.json")
  [ "$osd_id" = 0 ] || die "unexpected osd id $osd_id"
  ceph-authtool --create-keyring "$CEPH_DIR/osd/$CLUSTER-0/keyring" -n osd.0 --add-key "$osd_secret" > /dev/null
  ceph-osd --cluster "$CLUSTER" --conf "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
    > "$CEPH_DIR/log/osd-mkfs.out" 2>&1 || { tail -5 "$CEPH_DIR/log/osd-mkfs.out" >&2; die "osd mkfs failed"; }
  ceph-osd --cluster "$CLUSTER" --conf "$CONF" -i 0 2>> "$CEPH_DIR/log/osd-start.out"
  wait_for "the OSD to be up" "$UP_TIMEOUT" osd_is_up
  log "OSD up after $(elapsed "$t0")s"

  local pool osd_caps="profile rbd pool=$POOL" mgr_caps="profile rbd pool=$POOL"
  for pool in $POOL $EXTRA_POOLS; do
    admin osd pool create "$pool" 8 8 > /dev/null 2>&1
    rbd_admin pool init "$pool"
    [ "$pool" = "$POOL" ] || { osd_caps+=", profile rbd pool=$pool"; mgr_caps+=", profile rbd pool=$pool"; }
  done
  admin auth get-or-create "client.$USER_ID" mon 'profile rbd' osd "$osd_caps" \
    mgr "$mgr_caps" > "$CEPH_DIR/$CLUSTER.client.$USER_ID.keyring"
  wait_for "placement groups to be active+clean" "$UP_TIMEOUT" pgs_are_clean
  wait_for "client.$USER_ID to list pool $POOL" 30 user_can_list
  trap - EXIT
  log "cluster ready after $(elapsed "$t0")s: $(admin health 2>&1)"
  cat <<EOF
CEPH_CONF=$CONF
CEPH_CLUSTER=$CLUSTER
CEPH_POOL=$POOL
CEPH_USER=$USER_ID
CEPH_KEYRING=$CEPH_DIR/$CLUSTER.client.$USER_ID.keyring
CEPH_FSID=$fsid
EOF
}

mon_is_up() {
  admin mon stat > /dev/null 2>&1
}

# Restarts the daemons of a cluster `stop` left behind, on the ports its
# config already names. Only a bluestore OSD still has its data.
start() {
  [ -f "$CEPH_DIR/.clinker-ceph-single-node" ] || die "$CEPH_DIR was not made by this script"
  local t0
  t0=$(now)
  ceph-mon --cluster "$CLUSTER" --conf "$CONF" -i a
  wait_for "the monitor" 30 mon_is_up
  ceph-mgr --cluster "$CLUSTER" --conf "$CONF" -i x
  ceph-osd --cluster "$CLUSTER" --conf "$CONF" -i 0 2>> "$CEPH_DIR/log/osd-start.out"
  wait_for "the OSD to be up" "$UP_TIMEOUT" osd_is_up
  wait_for "placement groups to be active+clean" "$UP_TIMEOUT" pgs_are_clean
  wait_for "client.$USER_ID to list pool $POOL" 30 user_can_list
  log "cluster restarted after $(elapsed "$t0")s"
}

status() {
  admin -s
}

case "${1:-}" in
  up) up ;;
  stop) stop ;;
  start) start ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
