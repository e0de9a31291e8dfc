#!/usr/bin/env bash
# Installs the real object stores the backup tests use (Debian 12 packages):
#
#   * radosgw (Ceph 16 RADOS Gateway, S3 and Swift APIs) on top of the Ceph
#     packages of scripts/install-ceph.sh; started by scripts/radosgw.sh;
#   * the OpenStack Swift servers (proxy, account, container, object; 2.30)
#     and memcached, started as a one-node "all in one" by
#     scripts/swift-saio.sh (Swift API with tempauth, S3 through s3api).
#
# Idempotent; needs root (or sudo). Nothing is started or enabled: the
# packages' own services are masked from starting through policy-rc.d while
# they install, and the test scripts run their own daemons under a
# directory of their own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/install-ceph.sh"
# shellcheck source=apt-install.sh
. "$here/apt-install.sh"
# The packages' own daemons (memcached, swift-*, radosgw) are kept from
# starting: the tests start theirs on private ports.
apt_install_missing --no-daemons radosgw swift swift-proxy swift-account swift-container \
  swift-object memcached
