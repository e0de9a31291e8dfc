#!/usr/bin/env bash
# Installs the Ceph packages the RBD tests need (Debian 12: Ceph 16 pacific).
# python3-rados and python3-rbd are for Cinder 29's own RBD driver, which the
# adoption test runs (scripts/install-cinder29.sh links them into its venv).
# Idempotent; needs root (or sudo). The tests start their own throw-away
# cluster with scripts/ceph-single-node.sh and never touch /etc/ceph.
set -euo pipefail
packages=(ceph-mon ceph-osd ceph-mgr ceph-common python3-rados python3-rbd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ceph packages already installed"
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
as_root apt-get -o DPkg::Lock::Timeout=600 update -q
DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
