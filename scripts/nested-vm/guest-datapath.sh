#!/bin/bash
# The data-path test that scripts/nested-vm-test.sh runs inside the nested
# VM (as /mnt/guest.sh, root, a real kernel with device-mapper, LIO and
# iscsi_tcp). It drives the real clinker binary built on the host with LVM
# backends on loop-device volume groups and real iSCSI targets, and checks
# the data byte for byte through open-iscsi logins made from the
# connection_info the attachments API returns, unmodified.
#
# First the driver's own device-mapper/LIO system tests
# (crates/drivers/tests/lvm_dm_system.rs, built on the host). Then, per
# combination (backend = lvm_type + target_helper):
#   volume V, attached: write random data P1 (three regions: start,
#   middle, end), read it back, detach; snapshot S of V; attach V again,
#   overwrite the regions with P2, detach; C1 from S and clone C2 of V;
#   attach each: C1 must read P1 (the snapshot kept the old data), C2 P2,
#   compared byte for byte. Exports exist only while attached. A wrong
#   CHAP password is refused. Then everything is deleted.
# Then: one volume per backend stays attached (and logged in) across a
# restart of clinker; every target must stay, untouched, and serve the
# same data (the backends share one tgtd and one LIO).
# At the end no LV (but the thin pools), no tgt target and no LIO object
# may be left.
#
# Phases (NESTED_VM_PHASES): dm-tests, combos, restart.
# Input: /mnt/env (CLINKER_BIN, NESTED_VM_COMBOS, NESTED_VM_PHASES, DM_TEST_BIN,
# CLINKER_QEMU_BIN, QEMU_MODULE_DIR). Output: stderr; the last line is
# "RESULT: PASS" or "RESULT: FAIL <reason>".
set -Eeuo pipefail

# shellcheck source=/dev/null
source /mnt/env
COMBOS="${NESTED_VM_COMBOS:-thick-tgt thin-lio thick-lio thin-tgt}"
PHASES="${NESTED_VM_PHASES:-dm-tests combos restart}"
STATE=/tmp/clinker
API=http://127.0.0.1:8776/v3
MV="OpenStack-API-Version: volume 3.54"
TGT_PORT=3261   # tgtd; LIO (in the kernel) listens on 3260
T0=$(date +%s.%N)

# Everything is reported on stderr, so that messages from functions whose
# output a caller captures with $(...) still reach the log.
log() { printf '[%7.2f] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*" >&2; }
fail() {
    trap - ERR
    log "FAILED: $*"
    # In a $(...) subshell the caller's ERR trap reports again: dump once.
    if ((BASH_SUBSHELL == 0)); then
        dump_diagnostics >&2
        echo "RESULT: FAIL $*" >&2
    fi
    exit 1
}
dump_diagnostics() {
    set +e
    echo "--- lvs"; lvs -a 2>&1
    echo "--- tgtadm targets"; tgtadm --lld iscsi --op show --mode target 2>&1 | head -60
    echo "--- LIO"; find /sys/kernel/config/target/iscsi -maxdepth 1 2>&1 | head -20
    echo "--- iscsi sessions"; iscsiadm -m session 2>&1
    save_logs
    echo "--- clinker log (last 80 lines)"; tail -n 80 /mnt/clinker.log 2>/dev/null
    echo "--- tgtd log"; tail -n 20 /tmp/tgtd.log 2>/dev/null
    echo "--- dmesg (last 30 lines)"; dmesg | tail -n 30
}
# The clinker and tgtd logs, without colours, into the run directory.
save_logs() {
    sed 's/\x1b\[[0-9;]*m//g' "$STATE/clinker.log" > /mnt/clinker.log 2>/dev/null
    cp /tmp/tgtd.log /mnt/tgtd.log 2>/dev/null
    return 0
}
trap 'fail "line $LINENO: $BASH_COMMAND exited $?"' ERR

# --- the API --------------------------------------------------------------
api() { # METHOD PATH [JSON] -> body on stdout; fails on a non-2xx answer
    local method=$1 path=$2 body=${3:-} out code
    out=$(mktemp)
    code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H "$MV" \
        -H 'Content-Type: application/json' ${body:+--data "$body"} "$API$path")
    if [[ $code != 2* ]]; then
        echo "$method $path -> HTTP $code: $(cat "$out")" >&2
        rm -f "$out"
        return 1
    fi
    cat "$out"
    rm -f "$out"
}
status_of() { curl -sS -H "$MV" "$API/$1" | jq -r ".${2}.status // \"gone\""; }
wait_status() { # volumes|snapshots ID WANTED [TIMEOUT]
    local kind=$1 id=$2 want=$3 limit=${4:-180} key status
    key=${kind%s}
    for ((i = 0; i < limit * 2; i++)); do
        status=$(status_of "$kind/$id" "$key")
        [[ $status == "$want" ]] && return 0
        [[ $status == error* ]] && fail "$key $id went to $status"
        sleep 0.5
    done
    fail "$key $id is $status, not $want, after $limit s"
}
wait_gone() { # volumes|snapshots ID
    local kind=$1 id=$2 code
    for ((i = 0; i < 360; i++)); do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$MV" "$API/$kind/$id")
        [[ $code == 404 ]] && return 0
        sleep 0.5
    done
    fail "${kind%s} $id still exists after 180 s"
}
create_volume() { # TYPE NAME [SOURCE-JSON-FIELDS] -> id
    local id
    id=$(api POST /volumes "{\"volume\": {\"size\": 1, \"volume_type\": \"$1\", \"name\": \"$2\"${3:+, $3}}}" \
        | jq -r .volume.id)
    wait_status volumes "$id" available
    echo "$id"
}

# --- attach through the attachments API + open-iscsi --------------------
INITIATOR=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
CONNECTOR=$(jq -nc --arg i "$INITIATOR" \
    '{initiator: $i, ip: "127.0.0.1", host: "nested-vm", multipath: false, platform: "x86_64", os_type: "linux"}')

# attach VOLUME -> sets ATT (attachment id), DEV (/dev/sdX), CI (connection_info JSON)
attach() {
    local volume=$1 made portal iqn lun
    made=$(api POST /attachments "{\"attachment\": {\"volume_uuid\": \"$volume\", \"connector\": $CONNECTOR}}")
    ATT=$(jq -r .attachment.id <<<"$made")
    CI=$(jq -c .attachment.connection_info <<<"$made")
    [[ $(jq -r .driver_volume_type <<<"$CI") == iscsi ]] || fail "not an iSCSI connection: $CI"
    [[ $(jq -r .auth_method <<<"$CI") == CHAP ]] || fail "CHAP is off: $CI"
    portal=$(jq -r .target_portal <<<"$CI")
    iqn=$(jq -r .target_iqn <<<"$CI")
    lun=$(jq -r .target_lun <<<"$CI")
    iscsi_login "$portal" "$iqn" "$(jq -r .auth_username <<<"$CI")" "$(jq -r .auth_password <<<"$CI")"
    DEV=$(wait_device "$iqn" "$lun")
    api POST "/attachments/$ATT/action" '{"os-complete": {}}' >/dev/null
    wait_status volumes "$volume" in-use 30
}

iscsi_login() { # PORTAL IQN USER PASSWORD
    iscsiadm -m node -o new -T "$2" -p "$1" >/dev/null
    iscsiadm -m node -T "$2" -p "$1" -o update -n node.session.auth.authmethod -v CHAP
    iscsiadm -m node -T "$2" -p "$1" -o update -n node.session.auth.username -v "$3"
    iscsiadm -m node -T "$2" -p "$1" -o update -n node.session.auth.password -v "$4"
    iscsiadm -m node -T "$2" -p "$1" --login >/dev/null
}

iscsi_logout() { # PORTAL IQN
    iscsiadm -m node -T "$2" -p "$1" --logout >/dev/null
    iscsiadm -m node -o delete -T "$2" -p "$1"
}

wait_device() { # IQN LUN -> sdX (no udev in the guest: read sysfs)
    local s b
    for ((i = 0; i < 100; i++)); do
        for s in /sys/class/iscsi_session/session*; do
            [[ -e $s/targetname && $(cat "$s/targetname") == "$1" ]] || continue
            for b in "$s"/device/target*/*:"$2"/block/*; do
                if [[ -e $b && -b /dev/$(basename "$b") ]]; then
                    basename "$b"
                    return 0
                fi
            done
        done
        sleep 0.2
    done
    echo "no block device for $1 LUN $2" >&2
    return 1
}

detach() { # VOLUME (uses CI, ATT of the last attach of it)
    local volume=$1 portal iqn
    portal=$(jq -r .target_portal <<<"$CI")
    iqn=$(jq -r .target_iqn <<<"$CI")
    sync
    iscsi_logout "$portal" "$iqn"
    api DELETE "/attachments/$ATT" >/dev/null
    wait_status volumes "$volume" available 30
    target_absent "$iqn" || fail "target $iqn still exported after the detach"
}

# Whether a target is gone from both tgtd and LIO.
target_absent() {
    ! tgtadm --lld iscsi --op show --mode target | grep -q "^Target [0-9]*: $1\$" \
        && [[ ! -e /sys/kernel/config/target/iscsi/$1 ]]
}

# The test data: random bytes in three regions of the 1 GiB volume (its
# start, its middle and its end), written through the iSCSI device.
# Reading a whole volume through iSCSI takes minutes under emulation, so
# the check compares these regions byte for byte (cmp) with the patterns
# written, and reports the sha256 of what was read.
REGIONS="0:4 509:2 1022:2"   # start MiB:length MiB

write_pattern() { # DEV TAG
    local dev=$1 tag=$2 region start len
    for region in $REGIONS; do
        start=${region%:*} len=${region#*:}
        head -c "${len}M" /dev/urandom > "/tmp/p-$tag-$start"
        dd if="/tmp/p-$tag-$start" of="/dev/$dev" bs=1M seek="$start" oflag=direct status=none
    done
    sync
}

# check_pattern DEV TAG: the regions read from DEV equal TAG's patterns;
# prints the sha256 of the regions read.
check_pattern() {
    local dev=$1 tag=$2 region start len
    for region in $REGIONS; do
        start=${region%:*} len=${region#*:}
        dd if="/dev/$dev" of="/tmp/read-$start" bs=1M skip="$start" count="$len" iflag=direct status=none
        if ! cmp "/tmp/p-$tag-$start" "/tmp/read-$start" >&2; then
            echo "region at $start MiB differs from pattern $tag" >&2
            return 1
        fi
    done
    for region in $REGIONS; do cat "/tmp/read-${region%:*}"; done | sha256sum | cut -d' ' -f1
}

# --- set-up ---------------------------------------------------------------
log "guest $(uname -r), clinker $CLINKER_BIN, combinations: $COMBOS, phases: $PHASES"
iscsid
mkdir -p /srv/pv
# The VM's scratch disk holds the loop devices' files (not RAM: thick
# copies write whole volumes).
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/vda
mount /dev/vda /srv/pv

# The driver-level system tests that need device-mapper and LIO; they make
# their own loop-device VGs and their own tgtd.
if [[ " $PHASES " == *" dm-tests "* ]]; then
    [[ -x ${DM_TEST_BIN:-} ]] || fail "no lvm_dm_system test binary (DM_TEST_BIN)"
    log "== driver system tests on device-mapper and LIO: $DM_TEST_BIN"
    export CLINKER_QEMU_BIN QEMU_MODULE_DIR
    mkdir -p /srv/pv/dm-tests
    # Their loop-device images live in TMPDIR: the scratch disk, not RAM.
    TMPDIR=/srv/pv/dm-tests CLINKER_DM_TESTS=1 "$DM_TEST_BIN" --test-threads=1 >&2 \
        || fail "crates/drivers/tests/lvm_dm_system.rs failed"
    log "driver system tests passed"
fi

mkdir -p "$STATE" /tmp/lvm /tmp/tgt /srv/pv
# No udev in the guest: LVM makes its own /dev nodes; only loop devices
# are physical volumes (the host's disk is 9p, invisible anyway).
cat > /tmp/lvm/lvm.conf <<'EOF'
devices { global_filter = [ "a|^/dev/loop|", "r|.*|" ] obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmetad = 0 }
EOF
export LVM_SYSTEM_DIR=/tmp/lvm LVM_SUPPRESS_FD_WARNINGS=1

for combo in $COMBOS; do
    # A thick clone needs the volume, its snapshot, a volume from it, the
    # clone and its temporary snapshot at once: 5 GiB.
    truncate -s 6G "/srv/pv/$combo.img"
    loop=$(losetup -f --show "/srv/pv/$combo.img")
    pvcreate -q "$loop"
    vgcreate -q "cv-$combo" "$loop"
done
log "volume groups: $(vgs --noheadings -o vg_name | tr -s ' \n' ' ')"

# tgt-admin reads only this file; it includes the shared volumes_dir.
echo "include $STATE/volumes/*" > /tmp/tgt/targets.conf
tgtd -f --iscsi portal=127.0.0.1:$TGT_PORT > /tmp/tgtd.log 2>&1 &
for ((i = 0; i < 50; i++)); do tgtadm --op show --mode sys >/dev/null 2>&1 && break; sleep 0.1; done

write_config() {
    cat > "$STATE/clinker.conf" <<EOF
[DEFAULT]
state_path = $STATE
my_ip = 127.0.0.1
enabled_backends = ${COMBOS// /,}
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = 8776
report_interval = 2
EOF
    for combo in $COMBOS; do
        local type=${combo%-*} helper=${combo#*-}
        cat >> "$STATE/clinker.conf" <<EOF

[$combo]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
volume_backend_name = $combo
volume_group = cv-$combo
lvm_type = $([[ $type == thick ]] && echo default || echo thin)
lvm_conf_file = /tmp/lvm/lvm.conf
lvm_suppress_fd_warnings = true
volume_clear = zero
volume_clear_size = 16
target_ip_address = 127.0.0.1
EOF
        if [[ $helper == tgt ]]; then
            # Both tgt backends share tgtd and the default volumes_dir,
            # as two Cinder LVM backends on one host do.
            printf 'target_helper = tgtadm\ntarget_port = %s\ntgt_conf_file = /tmp/tgt/targets.conf\n' \
                "$TGT_PORT" >> "$STATE/clinker.conf"
        else
            printf 'target_helper = lioadm\ntarget_port = 3260\nvolumes_dir = %s/lio\n' \
                "$STATE" >> "$STATE/clinker.conf"
        fi
    done
}

start_clinker() {
    RUST_LOG=info,clinker_exec=debug "$CLINKER_BIN" --config-file "$STATE/clinker.conf" serve >> "$STATE/clinker.log" 2>&1 &
    CLINKER_PID=$!
    local n want
    want=$(wc -w <<<"$COMBOS")
    for ((i = 0; i < 240; i++)); do
        n=$(curl -sf -H "$MV" "$API/scheduler-stats/get_pools" 2>/dev/null | jq '.pools | length' || echo 0)
        [[ $n == "$want" ]] && return 0
        kill -0 "$CLINKER_PID" 2>/dev/null || fail "clinker exited at start-up"
        sleep 0.5
    done
    fail "only $n of $want backends reported pools after 120 s"
}

stop_clinker() {
    kill -TERM "$CLINKER_PID"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$CLINKER_PID" 2>/dev/null || { wait "$CLINKER_PID" || true; return 0; }
        sleep 0.2
    done
    fail "clinker did not stop within 60 s of SIGTERM"
}

write_config
start_clinker
log "clinker up with $(wc -w <<<"$COMBOS") LVM backends"
for combo in $COMBOS; do
    api POST /types "{\"volume_type\": {\"name\": \"$combo\", \"extra_specs\": {\"volume_backend_name\": \"$combo\"}}}" >/dev/null
done

# --- one combination --------------------------------------------------------
run_combo() {
    local combo=$1 v s c1 c2 h1 h2 h iqn portal
    log "== $combo"
    v=$(create_volume "$combo" "$combo-v")
    iqn="iqn.2010-10.org.openstack:volume-$v"
    target_absent "$iqn" || fail "$combo: volume exported before any attach"

    attach "$v"
    [[ $(jq -r .target_iqn <<<"$CI") == "$iqn" ]] || fail "$combo: unexpected IQN in $CI"
    log "$combo: attached $v as /dev/$DEV ($(jq -r .target_portal <<<"$CI") lun $(jq -r .target_lun <<<"$CI"))"
    [[ $(blockdev --getsize64 "/dev/$DEV") == 1073741824 ]] || fail "$combo: device is not 1 GiB"
    write_pattern "$DEV" "$combo-1"
    h1=$(check_pattern "$DEV" "$combo-1") || fail "$combo: read back differs from what was written"
    log "$combo: wrote and read back the pattern, sha256 $h1"
    # Logging in again with a wrong password must be refused.
    portal=$(jq -r .target_portal <<<"$CI")
    iscsiadm -m node -T "$iqn" -p "$portal" --logout >/dev/null
    iscsiadm -m node -T "$iqn" -p "$portal" -o update -n node.session.auth.password -v wrongpassword12
    if iscsiadm -m node -T "$iqn" -p "$portal" --login >/dev/null 2>&1; then
        fail "$combo: a wrong CHAP password was accepted"
    fi
    iscsiadm -m node -T "$iqn" -p "$portal" -o update -n node.session.auth.password \
        -v "$(jq -r .auth_password <<<"$CI")"
    iscsiadm -m node -T "$iqn" -p "$portal" --login >/dev/null
    DEV=$(wait_device "$iqn" "$(jq -r .target_lun <<<"$CI")")
    h=$(check_pattern "$DEV" "$combo-1") || fail "$combo: data changed across a re-login"
    log "$combo: wrong CHAP password refused; a new login reads the same data"
    detach "$v"

    s=$(api POST /snapshots "{\"snapshot\": {\"volume_id\": \"$v\", \"name\": \"$combo-s\"}}" | jq -r .snapshot.id)
    wait_status snapshots "$s" available
    log "$combo: snapshot $s"

    attach "$v"
    write_pattern "$DEV" "$combo-2"
    h2=$(check_pattern "$DEV" "$combo-2") || fail "$combo: read back differs from what was written"
    [[ $h2 != "$h1" ]] || fail "$combo: overwriting did not change the data"
    detach "$v"
    log "$combo: overwrote the volume after the snapshot, sha256 $h2"

    c1=$(create_volume "$combo" "$combo-from-snapshot" "\"snapshot_id\": \"$s\"")
    log "$combo: volume $c1 from the snapshot"
    c2=$(create_volume "$combo" "$combo-clone" "\"source_volid\": \"$v\"")
    log "$combo: clone $c2 of the volume"
    attach "$c1"
    h=$(check_pattern "$DEV" "$combo-1") || fail "$combo: the volume from the snapshot does not hold the snapshot's data"
    log "$combo: volume from the snapshot reads the data of the snapshot's time, sha256 $h"
    detach "$c1"
    attach "$c2"
    h=$(check_pattern "$DEV" "$combo-2") || fail "$combo: the clone does not hold the volume's data"
    log "$combo: clone reads the volume's current data, sha256 $h"
    detach "$c2"

    api DELETE "/volumes/$c1" >/dev/null
    api DELETE "/volumes/$c2" >/dev/null
    api DELETE "/snapshots/$s" >/dev/null
    wait_gone volumes "$c1"
    wait_gone volumes "$c2"
    wait_gone snapshots "$s"
    api DELETE "/volumes/$v" >/dev/null
    wait_gone volumes "$v"
    log "$combo: deleted"
}

if [[ " $PHASES " == *" combos "* ]]; then
    for combo in $COMBOS; do run_combo "$combo"; done
fi

# --- attached volumes across a restart ------------------------------------
# One attached, logged-in volume per backend while clinker restarts: each
# backend re-exports its own volumes at start-up and removes the targets
# nobody needs, and must leave alone the targets of the other backends
# that share its tgtd or LIO. A target removed even for a moment breaks
# the initiator's connection ("detected conn error" in the kernel log)
# and, for tgt, replaces its I_T nexus.
conn_errors() { dmesg | grep -c 'detected conn error' || true; }
tgt_nexus() { tgtadm --lld iscsi --op show --mode target | awk -v iqn="$1" \
    '/^Target /{on = ($3 == iqn)} on && /I_T nexus:/{print $3}' | tr '\n' ' '; }
restart_phase() {
    log "== restart with one attached volume on each backend"
    declare -A R_VOL R_ATT R_CI R_DEV R_NEXUS
    for combo in $COMBOS; do
        R_VOL[$combo]=$(create_volume "$combo" "$combo-restart")
        attach "${R_VOL[$combo]}"
        R_ATT[$combo]=$ATT R_CI[$combo]=$CI R_DEV[$combo]=$DEV
        R_NEXUS[$combo]=$(tgt_nexus "$(jq -r .target_iqn <<<"$CI")")
        write_pattern "$DEV" "$combo-r"
        check_pattern "$DEV" "$combo-r" >/dev/null || fail "$combo: read back differs from what was written"
    done
    errors_before=$(conn_errors)
    stop_clinker
    start_clinker
    # Let every backend finish its start-up reconcile (it runs after the
    # backend reports its pools, on a loaded emulated machine).
    sleep 20
    for combo in $COMBOS; do
        iqn=$(jq -r .target_iqn <<<"${R_CI[$combo]}")
        ! target_absent "$iqn" || fail "$combo: the target of attached volume ${R_VOL[$combo]} is gone after a restart"
        [[ $(tgt_nexus "$iqn") == "${R_NEXUS[$combo]}" ]] \
            || fail "$combo: the tgt session of ${R_VOL[$combo]} was replaced (I_T nexus ${R_NEXUS[$combo]} -> $(tgt_nexus "$iqn"))"
        check_pattern "${R_DEV[$combo]}" "$combo-r" >/dev/null \
            || fail "$combo: attached volume reads different data after a restart"
    done
    [[ $(conn_errors) == "$errors_before" ]] \
        || fail "iSCSI connections broke during the restart: $(dmesg | grep 'detected conn error' | tail -n 4)"
    log "restart: every attached volume kept its target, its session and its data"
    for combo in $COMBOS; do
        CI=${R_CI[$combo]} ATT=${R_ATT[$combo]}
        detach "${R_VOL[$combo]}"
        api DELETE "/volumes/${R_VOL[$combo]}" >/dev/null
        wait_gone volumes "${R_VOL[$combo]}"
    done
}
if [[ " $PHASES " == *" restart "* ]]; then restart_phase; fi

# --- nothing left behind --------------------------------------------------
for ((i = 0; i < 120; i++)); do
    left=$(lvs --noheadings -o lv_name 2>/dev/null | awk '$1 !~ /-pool$/' | tr -s ' \n' ' ')
    [[ -z ${left// /} ]] && break
    sleep 0.5   # background wipes of thick LVs
done
[[ -z ${left// /} ]] || fail "logical volumes left: $left"
[[ -z $(tgtadm --lld iscsi --op show --mode target) ]] || fail "tgt targets left"
[[ -z $(find /sys/kernel/config/target/iscsi -mindepth 1 -maxdepth 1 -name 'iqn.*' 2>/dev/null) ]] \
    || fail "LIO targets left"
lio_objects() { find /sys/kernel/config/target/core -mindepth 2 -maxdepth 2 -type d -path '*/core/*_[0-9]*/*' 2>/dev/null; }
[[ -z $(lio_objects) ]] || fail "LIO storage objects left: $(lio_objects)"
[[ -z $(iscsiadm -m session 2>/dev/null) ]] || fail "iSCSI sessions left"
log "no LV (but the thin pools), target, storage object or session left"
lvs -a >&2
stop_clinker
save_logs
echo "RESULT: PASS" >&2
