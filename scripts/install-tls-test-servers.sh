#!/usr/bin/env bash
# Installs the servers the TLS tests (bin/clinker/tests/tls_backends.rs)
# start for themselves: RabbitMQ, PostgreSQL and MariaDB; and promtool
# (Debian's prometheus package, its daemon never started), which checks
# the metrics endpoint's output (bin/clinker/tests/operations.rs). The
# tests never use the machine's running instances: each starts its own node or cluster
# from a temporary directory, on its own ports, with TLS on and throw-away
# certificates. Idempotent; the services the packages enable are left as
# scripts/ensure-services.sh expects them.
#
# Usage: scripts/install-tls-test-servers.sh
# Needs root (or sudo) for apt-get on Debian/Ubuntu.
set -euo pipefail
# shellcheck source=apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"

APT_PACKAGES=(rabbitmq-server postgresql mariadb-server mariadb-client util-linux)

apt_install_missing "${APT_PACKAGES[@]}"
apt_install_missing --no-daemons prometheus

# What the tests look for (clinker_testkit::tls_servers, promtool).
for tool in /usr/lib/rabbitmq/bin/rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmqctl \
            mariadb-install-db mariadbd mariadb runuser promtool; do
    if [[ $tool == /* ]]; then [[ -x $tool ]]; else command -v "$tool" >/dev/null \
        || [[ -x /usr/sbin/$tool ]]; fi \
        || { echo "missing after install: $tool" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || { echo "missing after install: PostgreSQL's initdb" >&2; exit 1; }
id postgres >/dev/null || { echo "missing after install: the postgres user" >&2; exit 1; }
echo "TLS test servers ready" >&2
