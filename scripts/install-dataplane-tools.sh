#!/usr/bin/env bash
# Installs the storage data-path tools Clinker's driver system tests use, and
# prints the environment to use them. Idempotent: run it as often as you like.
#
#   * tgt (tgtd, tgtadm, tgt-admin): the userspace iSCSI target behind the
#     tgtadm target helper.
#   * lvm2, thin-provisioning-tools: the LVM driver's tools.
#   * libiscsi-bin (iscsi-ls, iscsi-inq, iscsi-readcapacity16): a userspace
#     iSCSI initiator, so no kernel iSCSI is needed.
#   * qemu-utils (the system's): the qemu-img Clinker runs for image
#     conversions and the image tests use to make test images.
#   * qemu-utils + qemu-block-extra 7.2, extracted privately (NOT installed):
#     qemu-io/qemu-img with the iscsi block module. The system qemu-utils may
#     be a backport without the iscsi module, and installing the distribution's
#     qemu-block-extra would downgrade it, so the pair is unpacked under
#     $CLINKER_QEMU_DIR (default $HOME/.cache/clinker-qemu72) and used with
#     QEMU_MODULE_DIR. The system qemu is never touched.
#
# Usage: scripts/install-dataplane-tools.sh [--print-env]
#   --print-env  only print the environment (install nothing).
# Needs root (or sudo) for apt-get; the qemu extraction needs no root.
set -euo pipefail
# shellcheck source=apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

QEMU_DIR="${CLINKER_QEMU_DIR:-$HOME/.cache/clinker-qemu72}"
APT_PACKAGES=(tgt lvm2 libiscsi-bin libiscsi7 thin-provisioning-tools qemu-utils)

print_env() {
    cat <<ENV
export CLINKER_QEMU_BIN=$QEMU_DIR/root/usr/bin
export QEMU_MODULE_DIR=$QEMU_DIR/root/usr/lib/x86_64-linux-gnu/qemu
ENV
}

if [[ "${1:-}" == "--print-env" ]]; then
    print_env
    exit 0
fi

apt_install_missing "${APT_PACKAGES[@]}"

# The tgt package may start a system tgtd on 3260 where services can start;
# the tests run their own tgtd on other ports, so it does not matter either way.

# qemu 7.2: both packages must come from the same build (modules refuse to
# load into a different build).
marker="$QEMU_DIR/.complete"
if [[ -f "$marker" && -x "$QEMU_DIR/root/usr/bin/qemu-io" ]]; then
    echo "qemu 7.2 already extracted in $QEMU_DIR ($(cat "$marker"))" >&2
else
    version=$(apt-cache madison qemu-block-extra | awk -F'|' '{gsub(/ /,"",$2); print $2}' \
        | grep '^1:7\.2' | head -n1)
    if [[ -z "$version" ]]; then
        echo "no qemu-block-extra 7.2 in the configured apt sources" >&2
        exit 1
    fi
    rm -rf "$QEMU_DIR.tmp"
    mkdir -p "$QEMU_DIR.tmp/debs"
    chmod 0777 "$QEMU_DIR.tmp/debs"   # lets apt download as _apt (sandboxed)
    (cd "$QEMU_DIR.tmp/debs" && apt-get download "qemu-utils=$version" "qemu-block-extra=$version")
    for deb in "$QEMU_DIR.tmp/debs"/*.deb; do
        dpkg-deb -x "$deb" "$QEMU_DIR.tmp/root"
    done
    echo "$version" > "$QEMU_DIR.tmp/.complete"
    rm -rf "$QEMU_DIR"
    mv "$QEMU_DIR.tmp" "$QEMU_DIR"
    echo "extracted qemu-utils and qemu-block-extra $version into $QEMU_DIR" >&2
fi

# The iscsi module and qemu-io need shared libraries from the system; name any
# that are missing instead of failing obscurely later.
for bin in "$QEMU_DIR/root/usr/bin/qemu-io" \
           "$QEMU_DIR/root/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"; do
    if ldd "$bin" 2>/dev/null | grep -q "not found"; then
        echo "missing shared libraries for $bin:" >&2
        ldd "$bin" | grep "not found" >&2
        exit 1
    fi
done
export QEMU_MODULE_DIR="$QEMU_DIR/root/usr/lib/x86_64-linux-gnu/qemu"
"$QEMU_DIR/root/usr/bin/qemu-io" --version | head -n1 >&2

echo "# environment for the data-path system tests:" >&2
print_env
