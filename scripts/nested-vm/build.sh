#!/usr/bin/env bash
# Builds (or reuses) the nested VM used by scripts/nested-vm-test.sh: a
# Debian 6.1 kernel with device-mapper, LIO, iscsi_tcp and loop as modules,
# booted by a privately extracted qemu-system-x86 whose root filesystem is
# this machine's `/` shared read-only over virtio-9p with a RAM overlay on
# top. So everything installed here (lvm2, tgt, open-iscsi, the clinker
# binary built here) runs unchanged inside the guest, on a kernel that has
# what this machine's kernel lacks.
#
# Usage: scripts/nested-vm/build.sh [--print-dir]
#   CLINKER_NESTED_VM_DIR  cache directory (default $HOME/.cache/clinker-nested-vm)
#   NESTED_VM_KERNEL       kernel package version, e.g. 6.1.0-56-amd64
#                          (default: what linux-image-amd64 depends on)
#
# What it installs system-wide with apt (the guest runs them from `/`):
# lvm2, thin-provisioning-tools, tgt, open-iscsi, curl, jq, cpio and the
# shared libraries qemu-system needs. qemu-system, seabios, the kernel,
# busybox and kmod are only downloaded (`apt-get download`) and unpacked
# into the cache directory; nothing of the host's qemu is replaced.
#
# The result is reused while its inputs (kernel version, this script) are
# unchanged; it prints the directory holding `vmlinuz`, `initrd.img` and
# `qemu/` on its last line.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dir="${CLINKER_NESTED_VM_DIR:-$HOME/.cache/clinker-nested-vm}"

# shellcheck source=../apt-install.sh
. "$here/../apt-install.sh"

# Tools the guest script uses, run from the host's root filesystem.
host_packages=(lvm2 thin-provisioning-tools tgt open-iscsi curl jq cpio e2fsprogs
    libcapstone4 libfdt1 libslirp0 libvdeplug2 libpmem1)
apt_install_missing "${host_packages[@]}" >&2

kernel="${NESTED_VM_KERNEL:-}"
if [[ -z "$kernel" ]]; then
    kernel=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/{sub("linux-image-", "", $2); print $2; exit}')
    if [[ -z "$kernel" ]]; then
        as_root apt-get update -q >&2
        kernel=$(apt-cache depends linux-image-amd64 \
            | awk '/Depends: linux-image-[0-9]/{sub("linux-image-", "", $2); print $2; exit}')
    fi
fi
[[ -n "$kernel" ]] || { echo "cannot find a linux-image-*-amd64 package in apt" >&2; exit 1; }

stamp="kernel=$kernel scripts=$(cat "$0" "$here/init" | sha256sum | cut -c1-16)"
if [[ "${1:-}" == "--print-dir" ]]; then
    echo "$dir"
    exit 0
fi
if [[ -f "$dir/.complete" && "$(cat "$dir/.complete")" == "$stamp" ]]; then
    echo "nested VM reused ($stamp)" >&2
    echo "$dir"
    exit 0
fi

started=$SECONDS
work="$dir.tmp"
rm -rf "$work"
mkdir -p "$work/debs" "$work/root"
chmod 0777 "$work/debs"   # apt downloads as _apt
(cd "$work/debs" && apt-get download -q qemu-system-x86 qemu-system-common qemu-system-data \
    seabios "linux-image-$kernel" busybox-static kmod 2>&1 \
    | grep -v "Download is performed unsandboxed" >&2) || true
for pkg in qemu-system-x86 seabios "linux-image-$kernel" busybox-static kmod; do
    ls "$work/debs/${pkg}_"*.deb >/dev/null 2>&1 \
        || { echo "apt-get download $pkg failed" >&2; exit 1; }
done
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
rm -rf "$work/debs"

# Modules the guest needs, with their dependencies, in load order.
# kmod picks its personality from argv[0].
mkdir -p "$work/tools"
ln -s "$work/root/bin/kmod" "$work/tools/depmod"
ln -s "$work/root/bin/kmod" "$work/tools/modprobe"
modprobe=("$work/tools/modprobe" -d "$work/root" -S "$kernel")
"$work/tools/depmod" -b "$work/root" "$kernel"
modules=(virtio_pci virtio_blk virtio_net 9pnet_virtio 9p overlay loop ext4 configfs
    dm-mod dm-snapshot dm-thin-pool dm-bufio dm-zero
    target_core_mod target_core_iblock target_core_file iscsi_target_mod
    iscsi_tcp sd_mod)
initrd="$work/initrd"
mkdir -p "$initrd"/{bin,modules,proc,sys,dev,lower,upper,root}
n=0
for module in "${modules[@]}"; do
    "${modprobe[@]}" --show-depends "$module" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    n=$((n + 1))
    cp "$ko" "$initrd/modules/$(printf '%03d' "$n")-$(basename "$ko")"
done
ls "$initrd"/modules/*dm-thin-pool* "$initrd"/modules/*iscsi_target_mod* >/dev/null \
    || { echo "kernel modules missing from the initramfs" >&2; exit 1; }
cp "$work/root/bin/busybox" "$initrd/bin/busybox"
cp "$here/init" "$initrd/init"
chmod 0755 "$initrd/init"
(cd "$initrd" && find . | cpio -o -H newc --quiet | gzip -1 > "$work/initrd.img")
rm -rf "$initrd" "$work/tools"
cp "$work/root/boot/vmlinuz-$kernel" "$work/vmlinuz"
if ldd "$work/root/usr/bin/qemu-system-x86_64" | grep "not found" >&2; then
    echo "qemu-system-x86_64 lacks the shared libraries above; install their packages" >&2
    exit 1
fi
mv "$work/root" "$work/qemu"   # only qemu, seabios and modules are still used
echo "$stamp" > "$work/.complete"
rm -rf "$dir"
mv "$work" "$dir"
echo "nested VM built in $((SECONDS - started)) s ($stamp)" >&2
echo "$dir"
