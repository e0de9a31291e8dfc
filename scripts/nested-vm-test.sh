#!/usr/bin/env bash
# The nested-VM data-path test, in one command:
#
#   scripts/nested-vm-test.sh
#
# Builds clinker (debug) and the nested VM (scripts/nested-vm/build.sh,
# cached), boots the VM and runs scripts/nested-vm/guest-datapath.sh in it:
# real clinker with thick and thin LVM backends exported by tgtadm and
# lioadm, volumes, snapshots and clones attached with open-iscsi through
# the attachments API's connection_info and compared byte for byte. Exits
# 0 only when the guest prints "RESULT: PASS".
#
# Environment:
#   CLINKER_BIN         the clinker binary to test (default: cargo build -p clinker)
#   NESTED_VM_COMBOS    backends to test (default: "thick-tgt thin-lio thick-lio thin-tgt")
#   NESTED_VM_PHASES    what to run (default "dm-tests combos restart"): the
#                       driver's device-mapper/LIO system tests
#                       (crates/drivers/tests/lvm_dm_system.rs), the data path
#                       per backend, then attached volumes across a restart
#   NESTED_VM_TIMEOUT   hard limit in seconds for the VM (default 2700); qemu is killed then
#   NESTED_VM_ACCEL     auto (default) | kvm | tcg. auto uses KVM when /dev/kvm
#                       boots this guest (probed once per host kernel, cached),
#                       else TCG (software emulation)
#   NESTED_VM_RUN_DIR   where the run's files go (default target/nested-vm/run-<time>)
#   NESTED_VM_KEEP=1    keep the run's scratch disk image
set -euo pipefail
# The whole script is one block, read before it runs: editing the file
# during a run (which lasts minutes) cannot change what the run does.
{
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
started=$SECONDS

say() { printf 'nested-vm-test: %s\n' "$*" >&2; }

if [[ -z "${CLINKER_BIN:-}" ]]; then
    cargo build -q -p clinker
    target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    CLINKER_BIN="$target_dir/debug/clinker"
fi
CLINKER_BIN="$(realpath "$CLINKER_BIN")"
[[ -x "$CLINKER_BIN" ]] || { say "no clinker binary at $CLINKER_BIN"; exit 1; }
# The guest sees this machine's / except what it mounts anew.
case "$CLINKER_BIN" in
    /tmp/* | /run/* | /mnt/* | /dev/* | /proc/* | /sys/*)
        say "$CLINKER_BIN is hidden in the guest (it mounts its own /tmp, /run, /mnt); copy it elsewhere"
        exit 1 ;;
esac

phases="${NESTED_VM_PHASES:-dm-tests combos restart}"
dm_test_bin=""
if [[ " $phases " == *" dm-tests "* ]]; then
    # The driver's device-mapper/LIO system tests (crates/drivers/tests/
    # lvm_dm_system.rs) need a kernel this machine lacks: build them here,
    # run them in the guest. They read over iSCSI with libiscsi and qemu-io.
    scripts/install-dataplane-tools.sh >&2
    eval "$(scripts/install-dataplane-tools.sh --print-env)"
    dm_test_bin=$(cargo test -q -p clinker-drivers --test lvm_dm_system --no-run \
        --message-format=json | jq -r 'select(.executable != null) | .executable' | tail -n1)
    [[ -x "$dm_test_bin" ]] || { say "cannot build the lvm_dm_system tests"; exit 1; }
fi

vm_dir=$(scripts/nested-vm/build.sh | tail -n1)
qemu="$vm_dir/qemu/usr/bin/qemu-system-x86_64"

run_dir="${NESTED_VM_RUN_DIR:-$repo/target/nested-vm/run-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$run_dir"
run_dir="$(realpath "$run_dir")"
rm -f "$run_dir"/guest.{log,rc} "$run_dir/console.log"

# boot_vm DIR ACCEL CPU TIMEOUT [qemu args...]: boots the VM with DIR as
# its run directory; returns timeout(1)'s status.
boot_vm() {
    local dir=$1 accel=$2 cpu=$3 limit=$4
    shift 4
    timeout --kill-after=10 "$limit" "$qemu" \
        -L "$vm_dir/qemu/usr/share/qemu" -L "$vm_dir/qemu/usr/share/seabios" \
        -accel "$accel" -cpu "$cpu" -smp 2 -m 3072 -nographic -no-reboot \
        -kernel "$vm_dir/vmlinuz" -initrd "$vm_dir/initrd.img" \
        -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3" \
        -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
        -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
        -fsdev "local,id=share,path=$dir,security_model=none" \
        -device virtio-9p-pci,fsdev=share,mount_tag=share \
        -nic none "$@"
}

# KVM: /dev/kvm may exist and still not run this guest (a PVM host hangs
# after the BIOS). Probe with an empty guest once per host kernel.
accel="${NESTED_VM_ACCEL:-auto}"
if [[ "$accel" == auto ]]; then
    accel=tcg
    probe_cache="$vm_dir/kvm-probe-$(uname -r)"
    if [[ -r /dev/kvm && -w /dev/kvm ]]; then
        if [[ ! -f "$probe_cache" ]]; then
            probe=$(mktemp -d)
            cp scripts/nested-vm/boot.sh "$probe/boot.sh"
            if boot_vm "$probe" kvm host,-arch-capabilities 30 > "$probe/console.log" 2>&1 \
                && [[ -f "$probe/guest.rc" ]]; then
                echo kvm > "$probe_cache"
            else
                echo tcg > "$probe_cache"
            fi
            rm -rf "$probe"
        fi
        accel=$(cat "$probe_cache")
    fi
    say "accelerator: $accel (auto)"
fi
case "$accel" in
    kvm) accel_arg=kvm cpu=host,-arch-capabilities ;;
    tcg) accel_arg=tcg,thread=multi cpu=max ;;
    *) say "NESTED_VM_ACCEL must be auto, kvm or tcg"; exit 2 ;;
esac

cp scripts/nested-vm/boot.sh "$run_dir/boot.sh"
cp scripts/nested-vm/guest-datapath.sh "$run_dir/guest.sh"
cat > "$run_dir/env" <<EOF
CLINKER_BIN=$CLINKER_BIN
NESTED_VM_COMBOS="${NESTED_VM_COMBOS:-thick-tgt thin-lio thick-lio thin-tgt}"
NESTED_VM_PHASES="$phases"
DM_TEST_BIN=$dm_test_bin
CLINKER_QEMU_BIN=${CLINKER_QEMU_BIN:-}
QEMU_MODULE_DIR=${QEMU_MODULE_DIR:-}
EOF
# The scratch disk holding the loop devices' files: sparse, on the host's
# disk rather than in the guest's RAM.
disk="$run_dir/scratch.img"
rm -f "$disk"
truncate -s 24G "$disk"

limit="${NESTED_VM_TIMEOUT:-2700}"
say "booting ($accel, limit $limit s); guest log: $run_dir/guest.log"
: > "$run_dir/guest.log"
tail -n +1 -F "$run_dir/guest.log" 2>/dev/null &
tail_pid=$!
set +e
boot_vm "$run_dir" "$accel_arg" "$cpu" "$limit" \
    -drive "file=$disk,if=virtio,format=raw,cache=unsafe,discard=unmap" \
    > "$run_dir/console.log" 2>&1
vm_status=$?
set -e
sleep 2   # let tail print the last lines
kill "$tail_pid" 2>/dev/null || true
wait "$tail_pid" 2>/dev/null || true
[[ "${NESTED_VM_KEEP:-0}" == 1 ]] || rm -f "$disk"

elapsed=$((SECONDS - started))
if ((vm_status == 124 || vm_status == 137)); then
    say "TIMEOUT: the VM ran past $limit s and qemu was killed (console: $run_dir/console.log)"
    tail -n 20 "$run_dir/console.log" >&2
    exit 1
fi
if [[ ! -f "$run_dir/guest.rc" ]]; then
    say "FAIL: the guest script did not finish (qemu exited $vm_status); console:"
    tail -n 40 "$run_dir/console.log" >&2
    exit 1
fi
if [[ "$(cat "$run_dir/guest.rc")" != 0 ]] || ! grep -qx "RESULT: PASS" "$run_dir/guest.log"; then
    say "FAIL after $elapsed s (guest exit $(cat "$run_dir/guest.rc")); log: $run_dir/guest.log"
    exit 1
fi
say "PASS in $elapsed s ($accel)"
exit 0
}
