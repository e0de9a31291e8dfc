#!/usr/bin/env bash
# Reruns the measurement behind docs/adr/0001-rbd-through-the-cli.md: starts a
# throw-away single-node Ceph, times the RBD driver's operations through the
# `rbd` CLI and through librbd on one connection, and tears the cluster down.
#
#   scripts/bench-rbd.sh [--rounds N]
#
# Knobs: OBJECTSTORE (memstore | bluestore), as scripts/ceph-single-node.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CEPH_DIR=$(mktemp -d -u /tmp/clinker-bench-rbd.XXXXXX)
export CEPH_DIR OWNER_PID=$$
trap '"$here/ceph-single-node.sh" down' EXIT
"$here/ceph-single-node.sh" up > /dev/null
/usr/bin/python3 "$here/bench-rbd-cli-vs-librbd.py" --conf "$CEPH_DIR/ceph.conf" --id cinder --pool volumes "$@"
