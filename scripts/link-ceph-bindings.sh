#!/usr/bin/env bash
# link-ceph-bindings.sh - makes Debian's python3-rados / python3-rbd
# importable in a Python venv.
#
# usage: scripts/link-ceph-bindings.sh VENV [WHO]
#
# The `rados` and `rbd` modules are not on PyPI: they are Debian's
# python3-rados / python3-rbd (scripts/install-ceph.sh), built against the
# system's librados. The venv sees exactly those two through a .pth file
# naming a directory of links to them, rather than all of the system's
# site-packages (--system-site-packages would also let Debian's older
# oslo.* and eventlet, installed for Swift, stand in for anything the venv
# lacks). Idempotent. When the modules are not installed it says so (WHO
# names what will not load) and exits 0, leaving the venv as it is.
set -euo pipefail
VENV=${1:?usage: $0 VENV [WHO]}
WHO=${2:-the ceph bindings}
CEPH_BINDINGS=/usr/lib/python3/dist-packages

suffix=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
dir="$VENV/clinker-ceph-bindings"
found=0
for mod in rados rbd; do
  [ -f "$CEPH_BINDINGS/$mod$suffix" ] && found=$((found + 1))
done
if [ $found != 2 ]; then
  echo "python3-rados / python3-rbd for $suffix not installed (scripts/install-ceph.sh): $WHO will not load" >&2
  exit 0
fi
mkdir -p "$dir"
for mod in rados rbd; do
  ln -sfn "$CEPH_BINDINGS/$mod$suffix" "$dir/$mod$suffix"
done
echo "$dir" > "$purelib/clinker-ceph-bindings.pth"
"$VENV/bin/python" -c 'import rados, rbd; print("ceph bindings: rados", rados.__file__)'
