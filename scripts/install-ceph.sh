#!/usr/bin/env bash
# Installs the Ceph packages the RBD tests need (Debian 12: Ceph 16 pacific).
# Idempotent; needs root (or sudo). The tests start their own throw-away
# cluster with scripts/ceph-single-node.sh and never touch /etc/ceph.
set -euo pipefail
# shellcheck source=apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
apt_install_missing --with-recommends ceph-mon ceph-osd ceph-mgr ceph-common
