#!/usr/bin/env bash
# Starts the local PostgreSQL, MariaDB and RabbitMQ if they are down and
# waits until each answers. The database and broker test suites use them;
# under CI=true those suites fail (not skip) when a service is unreachable.
# Safe to run repeatedly. Needs root on a Debian machine with the packages
# installed (as the project's development and CI machines have).
set -u

wait_for() { # name, command
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "ensure-services: $name is up"; return 0; fi
    sleep 1
  done
  echo "ensure-services: $name did not come up" >&2
  return 1
}

status=0

if command -v pg_ctlcluster >/dev/null 2>&1; then
  if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432 || status=1
else
  echo "ensure-services: PostgreSQL is not installed here"
fi

if [ -x /usr/sbin/mariadbd ]; then
  if ! mariadb-admin -uroot --protocol=tcp -h127.0.0.1 ping >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  fi
  wait_for MariaDB mariadb-admin -uroot --protocol=tcp -h127.0.0.1 ping || status=1
else
  echo "ensure-services: MariaDB is not installed here"
fi

if command -v rabbitmq-server >/dev/null 2>&1; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmq-server -detached || true
  fi
  wait_for RabbitMQ bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' || status=1
  wait_for "RabbitMQ (app)" rabbitmqctl -q await_startup || status=1
else
  echo "ensure-services: RabbitMQ is not installed here"
fi

exit $status
