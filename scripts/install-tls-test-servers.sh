#!/usr/bin/env bash
# Installs the servers the TLS tests (bin/clinker/tests/tls_backends.rs)
# start for themselves: RabbitMQ, PostgreSQL and MariaDB. The tests never
# use the machine's running instances: each starts its own node or cluster
# from a temporary directory, on its own ports, with TLS on and throw-away
# certificates. Idempotent; the services the packages enable are left as
# scripts/ensure-services.sh expects them.
#
# Usage: scripts/install-tls-test-servers.sh
# Needs root (or sudo) for apt-get on Debian/Ubuntu.
set -euo pipefail

APT_PACKAGES=(rabbitmq-server postgresql mariadb-server mariadb-client util-linux)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
        || { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends "${missing[@]}"; }
else
    echo "apt packages already installed: ${APT_PACKAGES[*]}" >&2
fi

# What the tests look for (clinker_testkit::tls_servers).
for tool in /usr/lib/rabbitmq/bin/rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmqctl \
            mariadb-install-db mariadbd mariadb runuser; do
    if [[ $tool == /* ]]; then [[ -x $tool ]]; else command -v "$tool" >/dev/null \
        || [[ -x /usr/sbin/$tool ]]; fi \
        || { echo "missing after install: $tool" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || { echo "missing after install: PostgreSQL's initdb" >&2; exit 1; }
id postgres >/dev/null || { echo "missing after install: the postgres user" >&2; exit 1; }
echo "TLS test servers ready" >&2
