#!/usr/bin/env bash
# Installs python-openstackclient (from PyPI) into a private virtualenv at
# $HOME/.cache/clinker-osc, for the client compatibility tests. Idempotent.
set -euo pipefail
VENV="${CLINKER_OSC_VENV:-$HOME/.cache/clinker-osc}"
if [ -x "$VENV/bin/openstack" ]; then
  echo "openstack client already in $VENV"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q python-openstackclient
"$VENV/bin/openstack" --version
