#!/usr/bin/env bash
# A throw-away Ceph RADOS Gateway (S3 and Swift APIs) for the backup tests,
# on the single-node cluster of scripts/ceph-single-node.sh.
#
#   RGW_DIR=/tmp/rgw1 scripts/radosgw.sh up     # start; prints the env to use
#   RGW_DIR=/tmp/rgw1 scripts/radosgw.sh down   # stop everything, delete RGW_DIR
#
# `up` starts a cluster under $RGW_DIR (memstore OSD), then radosgw with the
# beast frontend on 127.0.0.1 (a free port unless RGW_PORT is set), one user
# with fixed S3 keys and a Swift subuser with a key (auth v1.0 at
# /auth/1.0, storage URL /swift/v1). It prints:
#   RGW_S3_ENDPOINT RGW_S3_ACCESS RGW_S3_SECRET
#   RGW_SWIFT_AUTH_URL RGW_SWIFT_USER RGW_SWIFT_KEY
# radosgw's pid file lives in the cluster's run directory, so the cluster
# script's `down` (and its OWNER_PID watchdog) stops it too. ~25 s.
#
# Needs: scripts/install-objectstores.sh (radosgw and the Ceph packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -n "${RGW_DIR:-}" ] || { echo "radosgw.sh: set RGW_DIR" >&2; exit 2; }
case "$RGW_DIR" in /*) ;; *) RGW_DIR="$PWD/$RGW_DIR" ;; esac
export CEPH_DIR=$RGW_DIR
CONF=$RGW_DIR/ceph.conf
S3_ACCESS=${RGW_S3_ACCESS:-CLINKERBACKUPACCESS1}
S3_SECRET=${RGW_S3_SECRET:-clinkerbackupsecretkey000000000000000001}
SWIFT_KEY=${RGW_SWIFT_KEY:-clinkerswiftkey}
UID_NAME=cinder
PY=/usr/bin/python3
log() { echo "[radosgw $(date -u +%H:%M:%S.%3N)] $*" >&2; }

up() {
  command -v radosgw > /dev/null || { log "radosgw is not installed (scripts/install-objectstores.sh)"; exit 1; }
  local port=${RGW_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')}
  "$here/ceph-single-node.sh" up > "$RGW_DIR.cluster-env"
  mv "$RGW_DIR.cluster-env" "$RGW_DIR/cluster-env"
  trap 'rc=$?; [ $rc = 0 ] || { log "start failed; stopping"; "$here/ceph-single-node.sh" down; }; exit $rc' EXIT
  mkdir -p "$RGW_DIR/rgw"
  cat >> "$CONF" <<CONFEOF

[client.rgw.gw1]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $RGW_DIR/rgw
rgw dns name = 127.0.0.1
rgw swift url = http://127.0.0.1:$port
rgw swift auth url = http://127.0.0.1:$port/auth/1.0
log file = $RGW_DIR/log/rgw.log
CONFEOF
  local admin=(--cluster ceph --conf "$CONF")
  ceph "${admin[@]}" config set global osd_pool_default_pg_num 8 > /dev/null
  ceph "${admin[@]}" config set global osd_pool_default_pgp_num 8 > /dev/null
  ceph "${admin[@]}" auth get-or-create client.rgw.gw1 mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    > "$RGW_DIR/ceph.client.rgw.gw1.keyring"
  radosgw "${admin[@]}" -n client.rgw.gw1
  local i
  for i in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ] && break
    sleep 0.2
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ] \
    || { tail -20 "$RGW_DIR/log/rgw.log" >&2; log "radosgw did not answer"; exit 1; }
  radosgw-admin "${admin[@]}" user create --uid="$UID_NAME" --display-name="$UID_NAME" \
    --access-key="$S3_ACCESS" --secret="$S3_SECRET" > "$RGW_DIR/rgw/user.json"
  radosgw-admin "${admin[@]}" subuser create --uid="$UID_NAME" --subuser="$UID_NAME:swift" \
    --access=full --key-type=swift --secret="$SWIFT_KEY" > "$RGW_DIR/rgw/subuser.json"
  trap - EXIT
  log "radosgw ready on 127.0.0.1:$port"
  cat <<ENV
RGW_S3_ENDPOINT=http://127.0.0.1:$port
RGW_S3_ACCESS=$S3_ACCESS
RGW_S3_SECRET=$S3_SECRET
RGW_SWIFT_AUTH_URL=http://127.0.0.1:$port/auth/1.0
RGW_SWIFT_USER=$UID_NAME:swift
RGW_SWIFT_KEY=$SWIFT_KEY
ENV
}

case "${1:-}" in
  up) up ;;
  down) "$here/ceph-single-node.sh" down ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
