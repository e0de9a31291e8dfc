#!/usr/bin/env bash
# Regenerates the golden Cinder 29 backup pair the backup crate's tests
# read (crates/backup/tests/fixtures/cinder29-posix): Cinder's own POSIX
# driver backs up a volume anyone can regenerate (see
# scripts/cinder_backup_driver.py), full then incremental, with fixed ids
# and times. Installs Cinder 29 into its venv first (scripts/install-cinder29.sh).
#
#   scripts/cinder-backup-golden.sh            # rewrite the fixture
#   scripts/cinder-backup-golden.sh OUTDIR     # write elsewhere
#
# ~2 minutes the first time (the venv), ~5 s after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../crates/backup/tests/fixtures/cinder29-posix}
"$here/install-cinder29.sh" > /dev/null
VENV="${CLINKER_CINDER_VENV:-$HOME/.cache/clinker-cinder29}"
rm -rf "$out"
mkdir -p "$out"
# Cinder's posix driver makes directories with the umask it finds.
(umask 022 && "$VENV/bin/python" "$here/cinder_backup_driver.py" golden "$out") 2> "$out.log" \
  || { cat "$out.log" >&2; rm -f "$out.log"; exit 1; }
rm -f "$out.log"
echo "golden backup pair written to $out" >&2
