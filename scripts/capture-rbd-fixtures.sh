#!/usr/bin/env bash
# Regenerates crates/drivers/src/rbd/fixtures/: real `rbd`/`ceph` outputs
# (JSON and error texts) the RBD driver's unit tests parse and classify.
# Starts and removes its own throw-away cluster (scripts/ceph-single-node.sh).
#
#   scripts/capture-rbd-fixtures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../crates/drivers/src/rbd/fixtures"
CEPH_DIR=$(mktemp -d -u /tmp/clinker-rbd-fixtures.XXXXXX)
export CEPH_DIR OWNER_PID=$$
trap '"$here/ceph-single-node.sh" down' EXIT
"$here/ceph-single-node.sh" up > /dev/null
mkdir -p "$out"

conf="$CEPH_DIR/ceph.conf"
user=(--id cinder --cluster ceph --conf "$conf")
p=volumes
a=volume-11111111-1111-4111-8111-111111111111
b=volume-22222222-2222-4222-8222-222222222222
c=volume-33333333-3333-4333-8333-333333333333
s=snapshot-44444444-4444-4444-8444-444444444444

r() { rbd "${user[@]}" "$@"; }
# Cluster-specific values become fixed ones, so regenerated fixtures keep
# the values the unit tests expect: the fsid, and the monitor's ports.
FSID=a917357d-39bd-4232-bca2-b6192def3c59
normalize() {
  local mon_v2 mon_v1
  mon_v2=$(sed -n 's/^mon host = \[v2:127.0.0.1:\([0-9]*\),.*/\1/p' "$conf")
  mon_v1=$(sed -n 's/^mon host = .*,v1:127.0.0.1:\([0-9]*\)\]/\1/p' "$conf")
  sed -i -e "s|$CEPH_DIR|/etc/ceph|g" -e "s/$(ceph_fsid)/$FSID/g" \
    -e "s/127.0.0.1:$mon_v2/127.0.0.1:3300/g" -e "s/127.0.0.1:$mon_v1/127.0.0.1:6789/g" "$1"
}
ceph_fsid() { sed -n 's/^fsid = //p' "$conf"; }
save() { # file, command... (stdout; the command must succeed)
  local f=$1
  shift
  "$@" > "$out/$f"
  normalize "$out/$f"
}
fail() { # file, expected exit code, command... (stderr and exit code)
  local f=$1 want=$2 rc=0
  shift 2
  "$@" > /dev/null 2> "$out/$f" || rc=$?
  [ "$rc" = "$want" ] || { echo "expected exit $want from $*, got $rc" >&2; exit 1; }
  # Timestamps and thread ids vary between runs; keep the messages.
  sed -i -E 's/^[0-9T:.+-]{20,} [0-9a-f]+ +-?[0-9]+ //' "$out/$f"
  normalize "$out/$f"
}

r create --no-progress --size 1024M --object-size 4M "$p/$a"
r snap create --no-progress "$p/$a@$s"
r snap protect "$p/$a@$s"
r clone --object-size 4M "$p/$a@$s" "$p/$b"
r snap create --no-progress "$p/$b@$c.clone_snap"
r snap protect "$p/$b@$c.clone_snap"
r clone --object-size 4M "$p/$b@$c.clone_snap" "$p/$c"
r bench --io-type write --io-size 4M --io-total 8M "$p/$a" > /dev/null

save info-plain.json r info --format json "$p/$a"
save info-clone.json r info --format json "$p/$c"
save snap-ls.json r snap ls --format json "$p/$b"
save children.json r children --format json "$p/$a@$s"
save ls.json r ls --format json "$p"
save ls-long.json r ls --long --format json "$p"
save du.json r du --format json -p "$p"
save ceph-df.json ceph "${user[@]}" df --format json
save ceph-get-quota.json ceph "${user[@]}" osd pool get-quota "$p" --format json
save ceph-mon-dump.json ceph "${user[@]}" mon dump --format json
save ceph-fsid.json ceph "${user[@]}" fsid --format json

fail stderr-info-missing.txt 2 r info --format json "$p/volume-missing"
fail stderr-pool-missing.txt 2 r ls --format json nopool
fail stderr-create-exists.txt 17 r create --no-progress --size 1024M "$p/$a"
fail stderr-protect-protected.txt 16 r snap protect "$p/$a@$s"
fail stderr-unprotect-children.txt 16 r snap unprotect "$p/$a@$s"
fail stderr-rm-has-snapshots.txt 39 r rm --no-progress "$p/$a"
fail stderr-resize-shrink.txt 22 r resize --no-progress --size 512M "$p/$a"
fail stderr-resize-equal.txt 22 r resize --no-progress --size 1024M "$p/$a"
fail stderr-snap-rm-missing.txt 2 r snap rm --no-progress "$p/$a@snapshot-missing"
r snap create --no-progress "$p/$a@unprotected"
fail stderr-unprotect-unprotected.txt 22 r snap unprotect "$p/$a@unprotected"
fail stderr-unprotect-missing.txt 2 r snap unprotect "$p/$a@snapshot-missing"

# A watcher: an image held open by a client (as an attached volume is).
/usr/bin/python3 - "$conf" "$p" "$a" <<'EOF' &
import sys, time, rados, rbd
c = rados.Rados(conffile=sys.argv[1], rados_id="cinder"); c.connect()
img = rbd.Image(c.open_ioctx(sys.argv[2]), sys.argv[3]); time.sleep(6)
EOF
watcher=$!
sleep 3
r snap unprotect "$p/$a@unprotected" 2> /dev/null || true
r snap rm --no-progress "$p/$a@unprotected"
r rm --no-progress "$p/$c"
r snap unprotect "$p/$b@$c.clone_snap"
r snap rm --no-progress "$p/$b@$c.clone_snap"
r flatten --no-progress "$p/$b"
r snap unprotect "$p/$a@$s"
r snap rm --no-progress "$p/$a@$s"
fail stderr-rm-watchers.txt 16 r rm --no-progress "$p/$a"
wait "$watcher"

ceph --conf "$conf" auth get-or-create client.nocaps mon 'allow r' > "$CEPH_DIR/ceph.client.nocaps.keyring"
fail stderr-ls-permission-denied.txt 1 rbd --id nocaps --conf "$conf" ls --format json "$p"
fail stderr-no-keyring.txt 2 rbd --id nobody --conf "$conf" ls --format json "$p"
fail stderr-ceph-no-keyring.txt 1 ceph --id nobody --conf "$conf" df --format json

# A pool over its quota: writes block until rados_osd_op_timeout.
ceph --conf "$conf" osd pool create full 8 8 > /dev/null 2>&1
rbd --conf "$conf" pool init full
ceph --conf "$conf" osd pool set-quota full max_objects 1 > /dev/null 2>&1
rbd --conf "$conf" create --no-progress --size 64M full/volume-q
for _ in $(seq 1 60); do
  ceph --conf "$conf" osd pool ls detail --format json | grep -q full_quota && break
  sleep 0.5
done
save ceph-pool-ls-detail.json ceph "${user[@]}" osd pool ls detail --format json
fail stderr-create-pool-full.txt 110 rbd --conf "$conf" --rados_osd_op_timeout 2 create --no-progress --size 64M full/volume-r

"$here/ceph-single-node.sh" stop
fail stderr-unreachable.txt 110 r --client_mount_timeout 2 --rados_mon_op_timeout 2 --rados_osd_op_timeout 2 ls --format json "$p"
fail stderr-ceph-unreachable.txt 1 ceph "${user[@]}" --client_mount_timeout 2 --rados_mon_op_timeout 2 --rados_osd_op_timeout 2 mon dump --format json
fail stderr-conf-missing.txt 1 rbd --id cinder --conf "$CEPH_DIR/missing.conf" ls --format json "$p"
echo "fixtures written to $out" >&2
