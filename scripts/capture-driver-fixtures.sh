#!/usr/bin/env bash
# Captures real LVM and tgt output into crates/drivers/fixtures/ so the
# drivers' parsers and error classification are tested on what the tools
# really print. Each capture is one JSON file:
#   {"command": [...], "code": N, "stdout": "...", "stderr": "..."}
#
# Usage (as root; needs lvm2, tgt, libiscsi-bin: scripts/install-dataplane-tools.sh):
#   scripts/capture-driver-fixtures.sh lvm [OUT_DIR]   # LVM on loop devices
#   scripts/capture-driver-fixtures.sh tgt [OUT_DIR]   # a private tgtd on 127.0.0.1
# `lvm` captures metadata-only output (activation = 0) when the kernel has no
# device-mapper, and thin pools, snapshots and activation when it has one
# (e.g. inside a VM with a full kernel); the files go to OUT_DIR/lvm/nodm or
# OUT_DIR/lvm/dm accordingly.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
what=${1:?lvm or tgt}
out_root=${2:-$here/crates/drivers/fixtures}

# capture NAME CMD...: runs CMD with LC_ALL=C (as Cinder runs LVM) and saves it.
capture() {
    local name=$1; shift
    local so se rc=0
    so=$(mktemp); se=$(mktemp)
    env LC_ALL=C "$@" >"$so" 2>"$se" || rc=$?
    python3 - "$out/$name.json" "$rc" "$so" "$se" "$@" <<'PY'
import json, sys
path, rc, so, se, *cmd = sys.argv[1:]
with open(path, "w") as f:
    json.dump({"command": cmd, "code": int(rc), "stdout": open(so).read(),
               "stderr": open(se).read()}, f, indent=1)
    f.write("\n")
PY
    rm -f "$so" "$se"
    echo "captured $name (rc=$rc)" >&2
}

lvm_capture() {
    # Globals: the EXIT trap runs after this function has returned.
    vg=cinder-fixture; loops=()
    lvm_work=$(mktemp -d); local work=$lvm_work
    # /dev/mapper/control may exist as a node without a kernel driver behind it.
    if grep -qw device-mapper /proc/misc; then out=$out_root/lvm/dm; dm=1; else out=$out_root/lvm/nodm; dm=0; fi
    mkdir -p "$out"
    cleanup() {
        LVM_SYSTEM_DIR=$lvm_work/etc vgremove -f "$vg" >/dev/null 2>&1 || true
        for l in "${loops[@]}"; do
            LVM_SYSTEM_DIR=$lvm_work/etc pvremove -ff -y "$l" >/dev/null 2>&1 || true
            losetup -d "$l" || true
        done
        rm -rf "$lvm_work"
    }
    trap cleanup EXIT
    truncate -s 2G "$work/pv0.img"; truncate -s 1G "$work/pv1.img"
    loops+=("$(losetup -f --show "$work/pv0.img")")
    loops+=("$(losetup -f --show "$work/pv1.img")")
    mkdir -p "$work/etc"
    {
        [[ $dm == 0 ]] && echo 'global { activation = 0 }'
        echo "devices { global_filter = [ \"a|^${loops[0]}\$|\", \"a|^${loops[1]}\$|\", \"r|.*|\" ] obtain_device_list_from_udev = 0 }"
        echo 'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }'
    } > "$work/etc/lvm.conf"
    export LVM_SYSTEM_DIR=$work/etc LVM_SUPPRESS_FD_WARNINGS=1
    pvcreate -q "${loops[@]}" >/dev/null
    vgcreate -q "$vg" "${loops[@]}" >/dev/null

    local lvs_fields=vg_name,lv_name,lv_size,lv_attr,origin,pool_lv,data_percent
    local vgs_fields=vg_name,vg_size,vg_free,lv_count,vg_uuid,vg_extent_size
    local pvs_fields=vg_name,pv_name,pv_size,pv_free
    local report=(--reportformat json --units b --nosuffix)
    local a=volume-0a0a0a0a-0000-4000-8000-00000000000a
    local b=volume-0b0b0b0b-0000-4000-8000-00000000000b

    capture lvm-version lvm version
    capture lvs-empty lvs "${report[@]}" -o $lvs_fields $vg
    capture lvcreate-thick lvcreate -n $a $vg -L 1g
    capture lvcreate-exists lvcreate -n $a $vg -L 1g
    capture lvcreate-bytes lvcreate -n $b $vg -L 104857600b
    if [[ $dm == 1 ]]; then
        # A thick snapshot (Cinder sizes it like its origin) and what it does
        # to the origin: attr 'o', resizes refused while active.
        capture lvcreate-snapshot lvcreate --name _snapshot-0c0c0c0c-0000-4000-8000-00000000000c --snapshot $vg/$b -L 104857600b
        capture lvextend-snapshot-origin lvextend -L 200m $vg/$b
    fi
    capture lvcreate-no-space lvcreate -n volume-big $vg -L 8g
    capture lvcreate-missing-vg lvcreate -n $a no-such-vg -L 1g
    capture lvextend-thick lvextend -L 2g $vg/$a
    capture lvextend-same-size lvextend -L 2g $vg/$a
    capture lvextend-smaller lvextend -L 1g $vg/$a
    capture lvextend-no-space lvextend -L 8g $vg/$a
    capture lvextend-missing lvextend -L 8g $vg/volume-missing
    capture lvrename lvrename $vg $b _wipe-$b
    capture lvrename-exists lvrename $vg _wipe-$b $a
    capture lvrename-missing lvrename $vg volume-missing volume-other
    capture lvs-missing-lv lvs "${report[@]}" -o $lvs_fields $vg/volume-missing
    capture vgs-missing-vg vgs "${report[@]}" -o $vgs_fields no-such-vg
    capture lvcreate-mirror lvcreate -n volume-mirror $vg -L 64m --type=mirror -m 1 --nosync --mirrorlog mirrored
    [[ $dm == 0 ]] && capture lvcreate-snapshot lvcreate --name _snapshot-0c0c0c0c-0000-4000-8000-00000000000c --snapshot $vg/$a -L 1g
    capture lvcreate-thin-pool lvcreate -T -L 256m $vg/$vg-pool
    capture lvcreate-thin lvcreate -T -V 1g -n volume-thin $vg/$vg-pool
    if [[ $dm == 1 ]]; then
        capture lvcreate-thin-snapshot lvcreate --name _snapshot-0d0d0d0d-0000-4000-8000-00000000000d --snapshot $vg/volume-thin
        capture lvchange-activate-snapshot lvchange -a y --yes -K $vg/_snapshot-0d0d0d0d-0000-4000-8000-00000000000d
        capture lvcreate-thin-clone lvcreate --name volume-thin-clone --snapshot $vg/_snapshot-0d0d0d0d-0000-4000-8000-00000000000d
        capture lvchange-activate-permanent lvchange -a y --yes -k n $vg/volume-thin-clone
        capture lvcreate-thin-over-pool lvcreate -T -V 64g -n volume-thin-big $vg/$vg-pool
    fi
    capture lvs lvs "${report[@]}" -o $lvs_fields $vg
    capture vgs vgs "${report[@]}" -o $vgs_fields $vg
    capture pvs pvs "${report[@]}" -o $pvs_fields
    capture lvremove-missing lvremove --config 'activation { retry_deactivation = 1} ' -f $vg/volume-missing
    capture lvremove lvremove --config 'activation { retry_deactivation = 1} ' -f $vg/_wipe-$b
    if [[ $dm == 1 ]]; then
        capture lvs-after-remove lvs "${report[@]}" -o $lvs_fields $vg
    fi
}

tgt_capture() {
    local port
    out=$out_root/tgt; mkdir -p "$out"
    tgt_work=$(mktemp -d); local work=$tgt_work
    port=$((3300 + RANDOM % 2000)); ctl=$((20000 + RANDOM % 12000))  # tgtd accepts up to 32767
    mkdir -p "$work/volumes"; echo "include $work/volumes/*" > "$work/targets.conf"
    tgtd -C $ctl --iscsi "portal=127.0.0.1:$port" --pid-file "$work/tgtd.pid"
    cleanup() {
        tgt-admin -C $ctl --force --delete ALL >/dev/null 2>&1 || true
        tgtadm -C $ctl --op delete --mode system >/dev/null 2>&1 || true
        rm -f /var/run/tgtd/socket.$ctl /var/run/tgtd/socket.$ctl.lock
        rm -rf "$tgt_work"
    }
    trap cleanup EXIT
    for _ in $(seq 50); do tgtadm -C $ctl --op show --mode sys >/dev/null 2>&1 && break; sleep 0.05; done
    local u1=0e0e0e0e-0000-4000-8000-00000000000e u2=0f0f0f0f-0000-4000-8000-00000000000f
    local iqn1=iqn.2010-10.org.openstack:volume-$u1 iqn2=iqn.2010-10.org.openstack:volume-$u2
    truncate -s 64M "$work/vol1.img" "$work/vol2.img"
    printf '\n<target %s>\n    backing-store %s\n    driver iscsi\n    incominguser %s %s\n\n    write-cache on\n    scsi_sn volume-%s\n    scsi_id volume-%s\n</target>\n' \
        $iqn1 /srv/clinker/vol1.img AbCdEfGhJkMnPqRsTuVw s3cr3tPassw0rd42 $u1 $u1 > "$work/volumes/volume-$u1"
    sed -i "s|/srv/clinker/vol1.img|$work/vol1.img|" "$work/volumes/volume-$u1"
    printf '<target %s>\n    backing-store %s\n    driver iscsi\n    incominguser %s %s\n    bsoflags direct\n    write-cache off\n    scsi_sn volume-%s\n    scsi_id volume-%s\n</target>\n' \
        $iqn2 "$work/missing.img" ZyXwVuTsRqPnMkJhGfEd an0therPassw0rd $u2 $u2 > "$work/volumes/volume-$u2"
    local tgt=(tgt-admin -C $ctl -c "$work/targets.conf")
    capture tgt-admin-update "${tgt[@]}" --update $iqn1
    capture tgt-admin-update-again "${tgt[@]}" --update $iqn1 -f
    capture tgt-admin-update-missing-backing "${tgt[@]}" --update $iqn2
    capture tgt-admin-update-unconfigured "${tgt[@]}" --update iqn.2010-10.org.openstack:volume-unconfigured
    capture tgt-admin-show "${tgt[@]}" --show
    capture tgtadm-new-lun-exists tgtadm -C $ctl --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$work/vol1.img"
    capture tgtadm-new-target-exists tgtadm -C $ctl --lld iscsi --op new --mode target --tid 9 -T $iqn1
    if [[ -n "${CLINKER_QEMU_BIN:-}" ]]; then
        # Hold a session open so the show output has an I_T nexus.
        "$CLINKER_QEMU_BIN/qemu-io" -f raw -c "sleep 3000" \
            "iscsi://AbCdEfGhJkMnPqRsTuVw%s3cr3tPassw0rd42@127.0.0.1:$port/$iqn1/1" &
        sleep 1
        capture tgt-admin-show-session "${tgt[@]}" --show
        capture tgt-admin-delete-in-use "${tgt[@]}" --delete $iqn1
        capture tgt-admin-show-after-delete-in-use "${tgt[@]}" --show
        capture tgt-admin-delete-force "${tgt[@]}" --delete $iqn1 -f
        wait || true
    fi
    capture iscsi-inq-wrong-chap iscsi-inq "iscsi://AbCdEfGhJkMnPqRsTuVw%wrong@127.0.0.1:$port/$iqn2/1"
    capture tgt-admin-delete-missing "${tgt[@]}" --delete iqn.2010-10.org.openstack:volume-missing -f
    capture tgtadm-show-no-daemon tgtadm -C $((ctl + 1)) --lld iscsi --op show --mode target
    capture tgt-admin-show-no-daemon tgt-admin -C $((ctl + 1)) --show
    # Strip the scratch directory so the fixtures do not change run to run.
    sed -i "s|$work|/srv/clinker|g; s|127.0.0.1:$port|127.0.0.1:3260|g; s|-C $((ctl + 1))|-C 8|g; s|-C $ctl|-C 7|g; s|\"$ctl\"|\"7\"|g; s|\"$((ctl + 1))\"|\"8\"|g" "$out"/*.json
}

case $what in
    lvm) lvm_capture ;;
    tgt) tgt_capture ;;
    *) echo "usage: $0 lvm|tgt [OUT_DIR]" >&2; exit 2 ;;
esac
