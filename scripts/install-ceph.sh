#!/usr/bin/env bash
# Installs the Ceph packages the RBD tests need (Debian 12: Ceph 16 pacific).
# python3-rados and python3-rbd are for Cinder 29's own RBD driver, which the
# adoption test runs (scripts/install-cinder29.sh links them into its venv).
# Idempotent; needs root (or sudo). The tests start their own throw-away
# cluster with scripts/ceph-single-node.sh and never touch /etc/ceph.
set -euo pipefail
# shellcheck source=apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install_missing --with-recommends ceph-mon ceph-osd ceph-mgr ceph-common python3-rados python3-rbd
