#!/usr/bin/env bash
# glance.sh - a throw-away OpenStack Glance (Image service v2) for Clinker's
# image tests: SQLite database, the `file` store (or `rbd`), loopback only.
#
# usage: scripts/glance.sh install [--with-ceph]
#        GLANCE_DIR=DIR scripts/glance.sh up [--port N] [--auth noauth|keystone]
#                                            [--store file|rbd]
#        GLANCE_DIR=DIR scripts/glance.sh down | status
#        scripts/glance.sh installed
#
# install    venv with glance 33.0.0 + uWSGI from PyPI, pinned by
#            scripts/glance-constraints.txt.  Idempotent: a venv whose stamp
#            matches the pins is reused.  uWSGI is built from source by pip
#            (needs gcc and the Python headers; ~1 min the first time).
#            --with-ceph also links Debian's python3-rados / python3-rbd
#            into the venv (scripts/link-ceph-bindings.sh), which
#            glance_store's rbd driver imports.
# installed  exit 0 when the venv is installed and current, 1 otherwise
#            (tests use it to decide between running and skipping);
#            `installed --with-ceph` also needs the rados/rbd modules.
# up         a new instance in GLANCE_DIR (which must not exist): config,
#            `glance-manage db_sync`, uWSGI on 127.0.0.1:PORT (default 9292).
#            Glance 33 has no standalone glance-api server any more: it runs
#            as the WSGI application glance.wsgi.api:application.
#              noauth    (default) no Keystone; every request is anonymous
#                        and owns nothing, so the policy opens the rules
#                        that need a role (publicize_image, locations).
#              keystone  tokens validated by keystonemiddleware against
#                        KS_URL with the service user KS_USER/KS_PASS in
#                        KS_PROJECT (defaults: scripts/keystone.sh's
#                        clinker/secret in service); an https KS_URL is
#                        trusted through the CA bundle KS_CAFILE.
#            --store file (default): images are stored as
#            GLANCE_DIR/images/<image id> (tests replace such a file to
#            simulate corruption).
#            --store rbd: images are RBD images in pool RBD_STORE_POOL
#            (default images) of the cluster CEPH_CONF names, as cephx
#            user CEPH_USER (default cinder), each with its protected
#            snapshot `snap` (glance_store's rbd driver; needs
#            `install --with-ceph`); `locations` are shown too.
#            `direct_url` is shown.  Upload inspection (Glance's own format checks) applies
#            to container_format=bare only.
# down       stops the instance in GLANCE_DIR (the pid in its pid file, and
#            only when that process runs from this GLANCE_DIR) and removes
#            the directory.
# status     exit 0 and the URL when the instance answers, 3 otherwise.
#
# Environment:
#   GLANCE_HOME    where the venv lives (default ~/.cache/clinker-glance)
#   GLANCE_VENV    the venv (default $GLANCE_HOME/venv)
#   GLANCE_DIR     the instance directory (required for up/down/status)
#   GLANCE_PORT    default of --port (9292)
#   OWNER_PID      with `up`: a watchdog runs `down` when that process exits
#                  (a test killed by a timeout leaks no server)
#   PYTHON         interpreter for the venv (python3, >= 3.10)
#   CEPH_CONF, CEPH_USER, RBD_STORE_POOL   with `up --store rbd` (see above)
#
# Clients must not send `Expect: 100-continue`: uWSGI never answers it and
# the upload stalls (curl: -H 'Expect:').
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GLANCE_HOME=${GLANCE_HOME:-$HOME/.cache/clinker-glance}
VENV=${GLANCE_VENV:-$GLANCE_HOME/venv}
VERSION=33.0.0
PINS=$SCRIPTS/glance-constraints.txt
HOST=127.0.0.1

say() { echo "glance: $*" >&2; }
die() { echo "glance: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- install ---------------------------------------------------------------

install_stamp() {
    echo "glance==$VERSION uwsgi pins=$(sha256sum < "$PINS" | cut -c1-16) $("${PYTHON:-python3}" -V 2>&1)"
}

is_installed() {
    [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" = "$(install_stamp)" ] \
        && [ -x "$VENV/bin/uwsgi" ] && [ -x "$VENV/bin/glance-manage" ]
}

has_ceph_bindings() { "$VENV/bin/python" -c 'import rados, rbd' 2>/dev/null; }

cmd_installed() {
    is_installed || return 1
    case ${1:-} in
        "") ;;
        --with-ceph) has_ceph_bindings ;;
        *) usage ;;
    esac
}

cmd_install() {
    local t0 ceph=0
    case ${1:-} in
        "") ;;
        --with-ceph) ceph=1 ;;
        *) usage ;;
    esac
    t0=$(now)
    if is_installed; then
        [ $ceph = 0 ] || bash "$SCRIPTS/link-ceph-bindings.sh" "$VENV" "glance_store's rbd driver" >&2
        say "install: up to date ($VENV, $(since "$t0") s)"
        return 0
    fi
    mkdir -p "$(dirname "$VENV")"
    # two runs installing into one venv at once would corrupt it
    exec 8> "$VENV.lock"
    flock 8
    if is_installed; then
        say "install: up to date ($VENV)"; exec 8>&-; return 0
    fi
    say "install: glance==$VERSION + uwsgi into $VENV"
    "${PYTHON:-python3}" -m venv --clear "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$PINS" "glance==$VERSION" uwsgi
    install_stamp > "$VENV/.clinker-stamp"
    exec 8>&-
    [ $ceph = 0 ] || bash "$SCRIPTS/link-ceph-bindings.sh" "$VENV" "glance_store's rbd driver" >&2
    say "install: done in $(since "$t0") s"
}

# --- instance --------------------------------------------------------------

need_dir() {
    [ -n "${GLANCE_DIR:-}" ] || die "set GLANCE_DIR to the instance directory"
    case $GLANCE_DIR in /*) ;; *) GLANCE_DIR=$PWD/$GLANCE_DIR ;; esac
}

# The pid in the pid file, if that process is alive and is the uWSGI master
# of this GLANCE_DIR (its command line names our pid file): a recycled pid
# is never touched.
our_pid() {
    local pid
    pid=$(cat "$GLANCE_DIR/uwsgi.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$GLANCE_DIR/uwsgi.pid" || return 1
    echo "$pid"
}

port_answers() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

write_conf() { # port auth store
    local port=$1 auth=$2 store=$3 flavor="" backend=fs locations=false
    [ "$auth" = keystone ] && flavor=keystone
    if [ "$store" = rbd ]; then backend=ceph; locations=true; fi
    cp "$VENV/etc/glance/glance-api-paste.ini" "$GLANCE_DIR/etc/"
    cat > "$GLANCE_DIR/etc/glance-api.conf" <<EOF
# written by scripts/glance.sh up; throw-away, loopback only
[DEFAULT]
enabled_backends = $backend:$store
enabled_import_methods = [glance-direct]
show_image_direct_url = true
show_multiple_locations = $locations
image_cache_dir = $GLANCE_DIR/cache
log_file = $GLANCE_DIR/log/glance-api.log
debug = false
public_endpoint = http://$HOST:$port
worker_self_reference_url = http://$HOST:$port

[database]
connection = sqlite:///$GLANCE_DIR/glance.sqlite

[glance_store]
default_backend = $backend

[fs]
filesystem_store_datadir = $GLANCE_DIR/images/

[ceph]
rbd_store_pool = ${RBD_STORE_POOL:-images}
rbd_store_user = ${CEPH_USER:-cinder}
rbd_store_ceph_conf = ${CEPH_CONF:-/etc/ceph/ceph.conf}
rbd_store_chunk_size = 4

[os_glance_staging_store]
filesystem_store_datadir = $GLANCE_DIR/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $GLANCE_DIR/tasks/

[paste_deploy]
flavor = $flavor
config_file = $GLANCE_DIR/etc/glance-api-paste.ini

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
policy_file = $GLANCE_DIR/etc/policy.yaml

[keystone_authtoken]
www_authenticate_uri = ${KS_URL:-http://127.0.0.1:5000}
auth_url = ${KS_URL:-http://127.0.0.1:5000}
auth_type = password
username = ${KS_USER:-clinker}
password = ${KS_PASS:-secret}
project_name = ${KS_PROJECT:-service}
user_domain_name = Default
project_domain_name = Default
service_token_roles_required = false
${KS_CAFILE:+cafile = $KS_CAFILE}
EOF
    if [ "$auth" = keystone ]; then
        echo '{}' > "$GLANCE_DIR/etc/policy.yaml"
    else
        # An anonymous (noauth) context has no roles, so every rule that
        # asks for admin or the service role would answer 403.
        cat > "$GLANCE_DIR/etc/policy.yaml" <<'EOF'
"publicize_image": ""
"communitize_image": ""
"get_image_location": ""
"set_image_location": ""
"delete_image_location": ""
"fetch_image_location": ""
"add_image_location": ""
EOF
    fi
}

start_watchdog() { # owner pid
    # setsid + closed descriptors: the watchdog must not keep a caller's
    # pipes open (a test reading our output would wait for it forever).
    setsid bash -c '
        echo $$ > "$1/watchdog.pid"
        while kill -0 "$2" 2>/dev/null && [ -d "$1" ]; do sleep 1; done
        [ -d "$1" ] && GLANCE_DIR="$1" "$3" down
    ' watchdog "$GLANCE_DIR" "$1" "$(readlink -f "$0")" </dev/null >/dev/null 2>&1 &
}

cmd_up() {
    local port=${GLANCE_PORT:-9292} auth=noauth store=file t0 i
    while [ $# -gt 0 ]; do
        case $1 in
            --store) store=${2:?--store needs file or rbd}; shift 2 ;;
            --store=*) store=${1#*=}; shift ;;
            --port) port=${2:?--port needs a value}; shift 2 ;;
            --port=*) port=${1#*=}; shift ;;
            --auth) auth=${2:?--auth needs noauth or keystone}; shift 2 ;;
            --auth=*) auth=${1#*=}; shift ;;
            *) usage ;;
        esac
    done
    case $port in ''|*[!0-9]*) die "bad port '$port'" ;; esac
    case $auth in noauth|keystone) ;; *) die "--auth must be noauth or keystone" ;; esac
    case $store in file|rbd) ;; *) die "--store must be file or rbd" ;; esac
    need_dir
    t0=$(now)
    is_installed || die "not installed in $VENV (run: $0 install)"
    if [ "$store" = rbd ]; then
        has_ceph_bindings || die "the venv cannot import rados/rbd (run: $0 install --with-ceph)"
        [ -r "${CEPH_CONF:-/etc/ceph/ceph.conf}" ] || die "--store rbd: no readable ceph.conf (set CEPH_CONF)"
    fi
    [ ! -e "$GLANCE_DIR" ] || die "$GLANCE_DIR exists; run '$0 down' first or pick another GLANCE_DIR"
    port_answers "$port" && die "port $port on $HOST is already in use; choose another --port"
    mkdir -p "$GLANCE_DIR"/{etc,images,staging,tasks,cache,log}
    touch "$GLANCE_DIR/.clinker-glance"
    [ -z "${OWNER_PID:-}" ] || start_watchdog "$OWNER_PID"
    # On any failure below, leave nothing running.
    trap 'rc=$?; [ $rc = 0 ] || { say "up failed; stopping"; cmd_down >/dev/null 2>&1 || true; }; exit $rc' EXIT
    write_conf "$port" "$auth" "$store"
    # A new instance starts from a copy of a database migrated once with
    # this venv instead of spending ~10 s on the migrations every time.
    local golden=$VENV/clinker-synced.sqlite
    if [ -s "$golden" ] && [ "$(cat "$golden.stamp" 2>/dev/null)" = "$(install_stamp)" ]; then
        cp "$golden" "$GLANCE_DIR/glance.sqlite"
    else
        OS_GLANCE_CONFIG_DIR=$GLANCE_DIR/etc "$VENV/bin/glance-manage" \
            --config-dir "$GLANCE_DIR/etc" db_sync > "$GLANCE_DIR/log/db_sync.log" 2>&1 \
            || { tail -20 "$GLANCE_DIR/log/db_sync.log" >&2; die "glance-manage db_sync failed"; }
        cp "$GLANCE_DIR/glance.sqlite" "$golden.$$" && mv -f "$golden.$$" "$golden"
        install_stamp > "$golden.stamp"
    fi
    say "up: [$(since "$t0") s] database ready"
    # --http-chunked-input / --http-raw-body: uploads may come chunked;
    # Connection: close because uWSGI's http-socket does not keep requests
    # apart reliably after a streamed body.
    OS_GLANCE_CONFIG_DIR=$GLANCE_DIR/etc "$VENV/bin/uwsgi" --master --processes 1 --threads 4 \
        --enable-threads --lazy-apps --die-on-term --need-app \
        --http-socket "$HOST:$port" --http-chunked-input --http-auto-chunked --http-raw-body \
        --buffer-size 65535 --add-header 'Connection: close' \
        --wsgi glance.wsgi.api:application --virtualenv "$VENV" \
        --pidfile "$GLANCE_DIR/uwsgi.pid" --daemonize "$GLANCE_DIR/log/uwsgi.log"
    for i in $(seq 600); do
        [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$HOST:$port/healthcheck")" = 200 ] && break
        [ "$i" -lt 600 ] || { tail -30 "$GLANCE_DIR/log/uwsgi.log" >&2; die "no answer on port $port after 60 s"; }
        sleep 0.1
    done
    echo "$port" > "$GLANCE_DIR/port"
    trap - EXIT
    say "up: [$(since "$t0") s] http://$HOST:$port (auth=$auth, store=$store)"
    echo "http://$HOST:$port"
}

cmd_down() {
    local pid i
    need_dir
    if pid=$(our_pid); then
        kill -INT "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [ -f "$GLANCE_DIR/watchdog.pid" ]; then
        pid=$(cat "$GLANCE_DIR/watchdog.pid")
        # The watchdog's command line carries the directory it guards.
        if [ "$pid" != "$$" ] && [ "$pid" != "$PPID" ] \
            && tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$GLANCE_DIR"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
    # Only ever delete a directory this script made.
    if [ -f "$GLANCE_DIR/.clinker-glance" ]; then rm -rf "$GLANCE_DIR"; fi
    say "down: $GLANCE_DIR"
}

cmd_status() {
    local port
    need_dir
    port=$(cat "$GLANCE_DIR/port" 2>/dev/null) || { say "status: not running"; exit 3; }
    if our_pid >/dev/null && [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$HOST:$port/healthcheck")" = 200 ]; then
        echo "http://$HOST:$port"
    else
        say "status: not running"; exit 3
    fi
}

case ${1:-} in
    install) shift; cmd_install "$@" ;;
    installed) shift; cmd_installed "$@" ;;
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) usage ;;
esac
