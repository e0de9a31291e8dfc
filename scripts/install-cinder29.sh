#!/usr/bin/env bash
# Installs Cinder 29.0.0 from PyPI (with the libraries its chunked backup
# drivers import: boto3 for S3, python-swiftclient for Swift, zstd for the
# zstd compressor) and the database drivers its cinder.conf URLs name (PyMySQL
# for mysql+pymysql://, psycopg2 for postgresql://) into a private virtualenv
# at $HOME/.cache/clinker-cinder29 (or $CLINKER_CINDER_VENV). Idempotent: a
# complete venv is kept (the marker file names the pinned set); a venv made
# with fewer pins gains the missing ones in place. Used by
# scripts/cinder-backup-golden.sh, the backup cross-compatibility tests,
# which drive Cinder's own drivers, the export test
# (bin/clinker/tests/cinder_export.rs), which runs cinder-manage db sync and
# cinder-api, and the RBD adoption test (bin/clinker/tests/cinder_rbd_adopt.rs),
# which runs cinder-volume with Cinder's RBD driver.
#
# Cinder's RBD driver imports the `rados` and `rbd` modules, which are not on
# PyPI: scripts/link-ceph-bindings.sh links Debian's into the venv. Checked
# on every run, also when the venv is complete.
set -euo pipefail
VENV="${CLINKER_CINDER_VENV:-$HOME/.cache/clinker-cinder29}"
PINS=(cinder==29.0.0 boto3 python-swiftclient zstd PyMySQL psycopg2-binary)
MARKER="$VENV/.clinker-pins"

# Links Debian's rados and rbd extension modules into the venv.
link_ceph_bindings() {
  bash "$(dirname "${BASH_SOURCE[0]}")/link-ceph-bindings.sh" "$VENV" "Cinder's RBD driver"
}

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "${PINS[*]}" ] && [ -x "$VENV/bin/python" ]; then
  link_ceph_bindings
  echo "cinder 29 already in $VENV"
  exit 0
fi
if ! { [ -f "$MARKER" ] && [ -x "$VENV/bin/python" ]; }; then
  rm -rf "$VENV"
  # The system interpreter: Cinder 29 supports Python 3.10 to 3.12.
  PY=${CLINKER_CINDER_PYTHON:-/usr/bin/python3}
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
fi
"$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -c 'import cinder.backup.chunkeddriver, boto3, swiftclient, zstd, pymysql, psycopg2; from importlib.metadata import version; print("cinder", version("cinder"))'
echo "${PINS[*]}" > "$MARKER"
link_ceph_bindings
