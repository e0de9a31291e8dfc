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
packages=(radosgw swift swift-proxy swift-account swift-container swift-object memcached)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "object store packages already installed"
  exit 0
fi
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
# Keep the packages' own daemons (memcached, swift-*, radosgw) from starting:
# the tests start theirs on private ports.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" > /dev/null
  as_root chmod 755 "$policy"
  made_policy=1
fi
trap '[ $made_policy = 0 ] || as_root rm -f "$policy"' EXIT
as_root apt-get -o DPkg::Lock::Timeout=600 update -q
DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
