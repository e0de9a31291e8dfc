#!/usr/bin/env bash
# keystone.sh - a throw-away OpenStack Keystone for Clinker's conformance runs.
#
# usage: scripts/keystone.sh install | installed
#        scripts/keystone.sh start [--port N] [--endpoint CLINKER_URL]
#        scripts/keystone.sh stop | status | authtoken
#        scripts/keystone.sh openrc admin|demo|alt_demo|demo_reader|clinker
#        scripts/keystone.sh wipe
#
# install    venv with keystone (30.0.0) + gunicorn from PyPI, pinned by
#            scripts/tempest/keystone-constraints.txt.  Idempotent: a venv
#            whose stamp matches the pins is reused (about 20 s when new,
#            well under 1 s when reused).
# installed  exit 0 when the venv is installed and current, 1 otherwise
#            (tests use it to decide between running and skipping).
# start      SQLite database + fernet keys under $KEYSTONE_HOME, bootstrap
#            admin/admin in RegionOne, gunicorn on 127.0.0.1:PORT (default
#            5000; a port that already answers is refused), then provisions:
#              roles    admin member reader service manager
#              projects demo alt_demo service
#              users    demo (member on demo), alt_demo (member on
#                       alt_demo), demo_reader (reader on demo), clinker
#                       (admin + service on service)
#              services block-storage, volumev3: public/internal/admin
#                       endpoints CLINKER_URL/v3/%(project_id)s
#            and logs in as every account to check it.  CLINKER_URL
#            defaults to the last one used, else http://127.0.0.1:8776.
#            Running start again (also while running) re-provisions, so a
#            new --endpoint updates the endpoints.  Data survives stop;
#            `wipe` removes it (the venv stays).
# stop       stops the gunicorn this script started (pid file) and nothing
#            else.
# status     exit 0 and one line when running, exit 3 when not.
# authtoken  the [keystone_authtoken] section for Clinker's config file.
# openrc     `export OS_...` lines for the named account.
#
# Environment:
#   KEYSTONE_HOME      data, logs, pid (default ~/.cache/clinker-keystone)
#   KEYSTONE_VENV      the venv (default $KEYSTONE_HOME/venv); point several
#                      homes at one venv to install once
#   KEYSTONE_PASSWORD  every account's password (default: the last start's,
#                      else secret); per account: ADMIN_PASSWORD DEMO_PASSWORD
#                      ALT_DEMO_PASSWORD DEMO_READER_PASSWORD SERVICE_PASSWORD
#                      (user clinker).  A changed one is reset on `start`.
#   KEYSTONE_PORT      default of --port (5000)
#   KEYSTONE_COMPUTE_ENDPOINT  also a compute service with this URL (the
#                      stand-in Compute API of scripts/osc-tour.sh)
#   KEYSTONE_IMAGE_ENDPOINT    also an image service (glance) with this
#                      URL (scripts/glance.sh's Glance)
#   KEYSTONE_WORKERS   gunicorn workers (2).  Concurrent *writes* through
#                      several workers can fail with SQLite's "database is
#                      locked"; tests only read (logins, token checks).
#   KEYSTONE_CACHE     true: in-process cache (tokens validate in ~5 ms)
#   KEYSTONE_VERSION   30.0.0; another version installs without the pins
#   KEYSTONE_PINS      a constraints file, or 'none' to resolve freshly
#   PYTHON             interpreter for the venv (python3, needs >= 3.10)
#   KEYSTONE_TLS_CERT, KEYSTONE_TLS_KEY, KEYSTONE_TLS_CA
#                      HTTPS instead of HTTP: gunicorn serves with this
#                      certificate (for 127.0.0.1) and key (its --certfile /
#                      --keyfile); the script's own calls, `authtoken`
#                      (cafile) and `openrc` (OS_CACERT) trust KEYSTONE_TLS_CA,
#                      the CA that signed it.  All three or none; a running
#                      Keystone keeps its scheme until stopped.
# The values used by `start` are remembered in $KEYSTONE_HOME/state.env, so
# `authtoken` and `openrc` print the ones the running Keystone has.
set -euo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KEYSTONE_HOME=${KEYSTONE_HOME:-$HOME/.cache/clinker-keystone}
mkdir -p "$KEYSTONE_HOME"
KEYSTONE_HOME=$(cd "$KEYSTONE_HOME" && pwd -P)   # compared with /proc/PID/cwd
VENV=${KEYSTONE_VENV:-$KEYSTONE_HOME/venv}
VERSION=${KEYSTONE_VERSION:-30.0.0}
PINS=${KEYSTONE_PINS:-$SCRIPTS/tempest/keystone-constraints.txt}
[ "$VERSION" = 30.0.0 ] || PINS=${KEYSTONE_PINS:-none}
PIDFILE=$KEYSTONE_HOME/keystone.pid
STATE=$KEYSTONE_HOME/state.env
CONF=$KEYSTONE_HOME/etc/keystone.conf
HOST=127.0.0.1          # loopback only, by design
REGION=RegionOne
FRESH_DB=0
PORT='' ENDPOINT=''     # of the last start, from $STATE
SCHEME=http CA=''       # of the last start, from $STATE; CA: the https trust

say() { echo "keystone: $*"; }
die() { echo "keystone: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- install ---------------------------------------------------------------

install_stamp() {
    local pins=none
    [ "$PINS" = none ] || pins=$(sha256sum < "$PINS" | cut -c1-16)
    echo "keystone==$VERSION gunicorn pins=$pins $("${PYTHON:-python3}" -V 2>&1)"
}

cmd_install() {
    local t0 stamp
    t0=$(now)
    stamp=$(install_stamp)
    if [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" = "$stamp" ]; then
        say "install: up to date ($VENV, $(since "$t0") s)"
        return 0
    fi
    mkdir -p "$(dirname "$VENV")"
    # two runs installing into one venv at once would corrupt it
    exec 8> "$VENV.lock"
    flock 8
    if [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" = "$stamp" ]; then
        say "install: up to date ($VENV)"; exec 8>&-; return 0
    fi
    say "install: keystone==$VERSION into $VENV"
    "${PYTHON:-python3}" -m venv --clear "$VENV"
    local args=(-q --disable-pip-version-check)
    [ "$PINS" = none ] || args+=(-c "$PINS")
    "$VENV/bin/pip" install "${args[@]}" "keystone==$VERSION" gunicorn
    echo "$stamp" > "$VENV/.clinker-stamp"
    exec 8>&-
    say "install: done in $(since "$t0") s"
}

# --- helpers ---------------------------------------------------------------

# The pid in the pid file, if that process is alive and is our gunicorn
# (its working directory is our etc/): a recycled pid is never touched.
our_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$KEYSTONE_HOME/etc" ] || return 1
    echo "$pid"
}

port_answers() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

load_state() {
    [ -f "$STATE" ] || die "never started in $KEYSTONE_HOME (run: $0 start)"
    # shellcheck source=/dev/null
    . "$STATE"
}

write_state() { # port endpoint
    local old_umask
    old_umask=$(umask); umask 077
    {
        printf 'PORT=%q\nENDPOINT=%q\nSCHEME=%q\nCA=%q\n' "$1" "$2" "$SCHEME" "$CA"
        for v in $PASSWORD_VARS; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } > "$STATE"
    umask "$old_umask"
}

PASSWORD_VARS="ADMIN_PASSWORD DEMO_PASSWORD ALT_DEMO_PASSWORD DEMO_READER_PASSWORD SERVICE_PASSWORD"

# Each password: its own variable, else KEYSTONE_PASSWORD, else the one the
# last start used (so a plain `start` keeps custom passwords), else secret.
choose_passwords() {
    local v saved
    for v in $PASSWORD_VARS; do
        if [ -z "${!v:-}" ]; then
            saved=
            # shellcheck source=/dev/null
            [ -n "${KEYSTONE_PASSWORD:-}" ] || [ ! -f "$STATE" ] || \
                saved=$(. "$STATE" && echo "${!v:-}")
            printf -v "$v" '%s' "${KEYSTONE_PASSWORD:-${saved:-secret}}"
        fi
        export "${v?}"
    done
}

fernet_keys() { # directory: keys 0 (staged) and 1 (primary), as fernet_setup makes
    local dir=$1 i
    [ -s "$dir/0" ] && [ -s "$dir/1" ] && return 0
    mkdir -p "$dir"; chmod 700 "$dir"
    for i in 0 1; do
        [ -s "$dir/$i" ] || (umask 077; "$VENV/bin/python" -c \
            'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode(), end="")' \
            > "$dir/$i")
    done
}

render_conf() { # port
    mkdir -p "$KEYSTONE_HOME/etc" "$KEYSTONE_HOME/logs"
    cat > "$CONF" <<EOF
# written by scripts/keystone.sh start; throw-away, loopback only
[DEFAULT]
log_dir = $KEYSTONE_HOME/logs
log_file = keystone.log
debug = false

[database]
connection = sqlite:///$KEYSTONE_HOME/keystone.sqlite

[identity]
# bcrypt's minimum cost: each login (Tempest makes hundreds, Clinker one
# per token it validates with a fresh service token) costs milliseconds
# instead of ~0.4 s of CPU.  Fine for test passwords, wrong for real ones.
password_hash_rounds = 4

[token]
provider = fernet
# 12 h: a long test session never meets an expired token
expiration = 43200

[fernet_tokens]
key_repository = $KEYSTONE_HOME/fernet-keys

[fernet_receipts]
key_repository = $KEYSTONE_HOME/fernet-keys

[credential]
key_repository = $KEYSTONE_HOME/credential-keys

[cache]
# An in-process cache cuts an authenticated request (token validation,
# Clinker's included) from ~100 ms to ~5 ms.  Each gunicorn worker has its
# own, so a change made through one worker (a password reset revoking
# tokens) can take up to 10 min to reach the other: fine for test runs.
# KEYSTONE_CACHE=false turns it off.
enabled = ${KEYSTONE_CACHE:-true}
backend = dogpile.cache.memory
expiration_time = 600
EOF
    # Keystone reads its configuration from sys.argv and from this variable
    # only; gunicorn's options therefore live in ./gunicorn.conf.py (its
    # default config file) and gunicorn is started without arguments.
    cat > "$KEYSTONE_HOME/etc/gunicorn.conf.py" <<EOF
# written by scripts/keystone.sh start
wsgi_app = "keystone.wsgi.api:application"
bind = "$HOST:$1"
workers = ${KEYSTONE_WORKERS:-2}
timeout = 120
raw_env = ["OS_KEYSTONE_CONFIG_FILES=$CONF"]
accesslog = "$KEYSTONE_HOME/logs/access.log"
errorlog = "$KEYSTONE_HOME/logs/gunicorn.log"
pidfile = "$PIDFILE"
control_socket_disable = True
# import keystone once in the master, not in every worker: ready in ~2 s
# instead of ~4 s on two busy cores (no database handle is open by then)
preload_app = True
EOF
    if [ "$SCHEME" = https ]; then
        cat >> "$KEYSTONE_HOME/etc/gunicorn.conf.py" <<EOF
# KEYSTONE_TLS_CERT / KEYSTONE_TLS_KEY: HTTPS only, no plain-text listener
certfile = "$KEYSTONE_TLS_CERT"
keyfile = "$KEYSTONE_TLS_KEY"
EOF
    fi
}

# KEYSTONE_TLS_*: all three or none, readable; sets SCHEME and CA.
choose_scheme() {
    local n=0 v
    for v in KEYSTONE_TLS_CERT KEYSTONE_TLS_KEY KEYSTONE_TLS_CA; do
        [ -z "${!v:-}" ] && continue
        [ -r "${!v}" ] || die "$v: cannot read ${!v}"
        printf -v "$v" '%s' "$(cd "$(dirname "${!v}")" && pwd)/$(basename "${!v}")"
        n=$((n + 1))
    done
    case $n in
        0) SCHEME=http CA='' ;;
        3) SCHEME=https CA=$KEYSTONE_TLS_CA ;;
        *) die "KEYSTONE_TLS_CERT, KEYSTONE_TLS_KEY and KEYSTONE_TLS_CA go together" ;;
    esac
}

# curl towards our Keystone, trusting its CA when it speaks https.
kcurl() { if [ -n "$CA" ]; then curl --cacert "$CA" "$@"; else curl "$@"; fi; }

manage() { PYTHONWARNINGS=ignore "$VENV/bin/keystone-manage" --config-file "$CONF" "$@"; }

# A new home starts from a copy of a database that was migrated and
# bootstrapped once with this venv (saved by the first home that did it),
# instead of spending ~8 s on ~60 migrations and a bootstrap.  Copies share
# the ids of admin, its project and the roles; fernet keys and everything
# provisioned later are the home's own.  db.stamp names the keystone
# installation the schema belongs to (another one migrates again);
# bootstrap.stamp the admin password bootstrap set.
GOLDEN_DB=$VENV/clinker-bootstrapped.sqlite
database() {
    local db=$KEYSTONE_HOME/keystone.sqlite
    FRESH_DB=0
    [ "$(cat "$KEYSTONE_HOME/db.stamp" 2>/dev/null)" = "$(cat "$VENV/.clinker-stamp")" ] && return 0
    if [ ! -e "$db" ] && [ -s "$GOLDEN_DB" ] && [ -s "$GOLDEN_DB.stamp" ]; then
        cp "$GOLDEN_DB" "$db"
        cp "$GOLDEN_DB.stamp" "$KEYSTONE_HOME/bootstrap.stamp"
    else
        [ -e "$db" ] || FRESH_DB=1
        manage db_sync
    fi
    cp "$VENV/.clinker-stamp" "$KEYSTONE_HOME/db.stamp"
}

bootstrap() { # keystone url
    local want
    want=$(printf '%s' "$ADMIN_PASSWORD" | sha256sum | cut -c1-16)
    if [ "$(cat "$KEYSTONE_HOME/bootstrap.stamp" 2>/dev/null)" != "$want" ]; then
        # the identity endpoints it makes are kept current by provisioning
        OS_BOOTSTRAP_PASSWORD=$ADMIN_PASSWORD manage bootstrap --bootstrap-username admin \
            --bootstrap-project-name admin --bootstrap-role-name admin \
            --bootstrap-service-name keystone --bootstrap-region-id "$REGION" \
            --bootstrap-public-url "$1/v3" --bootstrap-internal-url "$1/v3" \
            --bootstrap-admin-url "$1/v3"
        echo "$want" > "$KEYSTONE_HOME/bootstrap.stamp"
    fi
    # write-ahead logging: readers (token checks) and a writer no longer
    # block each other across the gunicorn workers; the mode is persistent
    "$VENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("pragma journal_mode=wal").fetchall()' \
        "$KEYSTONE_HOME/keystone.sqlite"
    if [ "$FRESH_DB" = 1 ]; then
        "$VENV/bin/python" -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("pragma wal_checkpoint(truncate)").fetchall()' \
            "$KEYSTONE_HOME/keystone.sqlite"
        cp "$KEYSTONE_HOME/keystone.sqlite" "$GOLDEN_DB.$$"
        mv -f "$GOLDEN_DB.$$" "$GOLDEN_DB"
        cp "$KEYSTONE_HOME/bootstrap.stamp" "$GOLDEN_DB.stamp"
    fi
}

# --- start / stop ----------------------------------------------------------

cmd_start() {
    local port=${KEYSTONE_PORT:-5000} endpoint="" t0 pid url
    while [ $# -gt 0 ]; do
        case $1 in
            --port) port=${2:?--port needs a value}; shift 2 ;;
            --port=*) port=${1#*=}; shift ;;
            --endpoint) endpoint=${2:?--endpoint needs a URL}; shift 2 ;;
            --endpoint=*) endpoint=${1#*=}; shift ;;
            *) usage ;;
        esac
    done
    case $port in ''|*[!0-9]*) die "bad port '$port'" ;; esac
    if [ -z "$endpoint" ]; then
        endpoint=$( (load_state >/dev/null 2>&1 && echo "$ENDPOINT") || echo http://127.0.0.1:8776)
    fi
    endpoint=${endpoint%/}
    case $endpoint in http://*|https://*) ;; *) die "--endpoint must be an http(s) URL, got '$endpoint'" ;; esac
    t0=$(now)
    choose_passwords
    choose_scheme
    url=$SCHEME://$HOST:$port

    if pid=$(our_pid); then
        local running_port
        running_port=$( (load_state && echo "$SCHEME:$PORT") )
        [ "$running_port" = "$SCHEME:$port" ] || \
            die "already running (pid $pid) as $running_port; stop it to change the port or scheme"
        say "start: already running (pid $pid) on $url; provisioning again"
        FRESH_DB=0
        bootstrap "$url"    # only if ADMIN_PASSWORD changed
    else
        port_answers "$port" && die "port $port on $HOST is already in use; choose another --port"
        cmd_install >/dev/null
        render_conf "$port"
        fernet_keys "$KEYSTONE_HOME/fernet-keys"
        fernet_keys "$KEYSTONE_HOME/credential-keys"
        database
        bootstrap "$url"
        say "start: [$(since "$t0") s] database ready"
        rm -f "$PIDFILE"
        # setsid: gunicorn leads a process group of its own, apart from the
        # caller's; -w keeps the launcher alive as long as gunicorn should
        # setsid have to fork.  gunicorn writes $PIDFILE itself.
        (cd "$KEYSTONE_HOME/etc" && exec setsid -w "$VENV/bin/gunicorn" \
            </dev/null >>"$KEYSTONE_HOME/logs/gunicorn.out" 2>&1) &
        local launcher=$! i
        for i in $(seq 600); do
            [ "$(kcurl -s -o /dev/null -m 5 -w '%{http_code}' "$url/v3")" = 200 ] && break
            kill -0 "$launcher" 2>/dev/null || \
                die "gunicorn exited; see $KEYSTONE_HOME/logs/gunicorn.log"
            [ "$i" -lt 600 ] || die "no answer from $url/v3 after 60 s"
            sleep 0.1
        done
        pid=$(our_pid) || die "gunicorn answers but its pid file $PIDFILE is missing"
        say "start: [$(since "$t0") s] $url/v3 answers (pid $pid)"
    fi
    write_state "$port" "$endpoint"
    local provision=("$VENV/bin/python" "$SCRIPTS/tempest/keystone_provision.py")
    # Python's default TLS context trusts SSL_CERT_FILE: our CA, for https
    [ -z "$CA" ] || export SSL_CERT_FILE=$CA
    rm -f "$KEYSTONE_HOME/changed"
    KEYSTONE_REGION=$REGION "${provision[@]}" --changed "$KEYSTONE_HOME/changed" "$url" "$endpoint"
    if [ -e "$KEYSTONE_HOME/changed" ]; then
        fresh_workers "$url"
        rm -f "$KEYSTONE_HOME/changed"
    fi
    KEYSTONE_REGION=$REGION "${provision[@]}" --verify-only "$url" "$endpoint"
    say "start: ready in $(since "$t0") s: $url/v3, volume endpoint $endpoint/v3/%(project_id)s"
    say "start: logs in $KEYSTONE_HOME/logs; '$0 authtoken' prints Clinker's [keystone_authtoken]"
}

# Each worker caches the catalog, roles etc. in its own memory, so after a
# change made through one of them the other may answer with the old
# endpoints for minutes.  HUP makes gunicorn fork new workers (empty caches,
# from the preloaded master) and retire the old ones; wait until they are
# gone.
fresh_workers() { # url
    local pid old i alive
    pid=$(our_pid) || die "not running"
    old=$(pgrep -P "$pid" | tr '\n' ' ')
    kill -HUP "$pid"
    # KEYSTONE_WORKER_WAIT [10] seconds: more on a loaded machine.
    for i in $(seq $((${KEYSTONE_WORKER_WAIT:-10} * 10))); do
        alive=0
        for p in $old; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && [ -n "$(pgrep -P "$pid")" ] && \
            [ "$(kcurl -s -o /dev/null -m 5 -w '%{http_code}' "$1/v3")" = 200 ] && return 0
        sleep 0.1
    done
    die "gunicorn did not replace its workers within ${KEYSTONE_WORKER_WAIT:-10} s; see $KEYSTONE_HOME/logs/gunicorn.log"
}

cmd_stop() {
    local pid i
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"; say "stop: not running"; return 0
    fi
    # INT: gunicorn's quick shutdown: workers finish their request and exit
    # (~1.5 s).  The master then spends ~2 s more tearing keystone down;
    # once its workers are gone nothing is left to protect, so the group
    # (master + workers, ours through setsid) is killed instead.
    local workers w alive
    workers=$(pgrep -P "$pid")
    kill -INT "$pid"
    for i in $(seq 50); do      # the workers: at most 5 s
        alive=
        for w in $workers; do kill -0 "$w" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for i in 1 2 3; do          # the master: a moment, then its group goes
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
    say "stop: stopped pid $pid"
}

cmd_status() {
    local pid
    if pid=$(our_pid); then
        load_state
        echo "running: pid $pid, $SCHEME://$HOST:$PORT/v3, volume endpoint $ENDPOINT/v3/%(project_id)s, home $KEYSTONE_HOME"
    else
        echo "not running (home $KEYSTONE_HOME)"
        return 3
    fi
}

cmd_wipe() {
    our_pid >/dev/null && die "running; stop it first"
    local h=${KEYSTONE_HOME:?}
    rm -rf "$h/keystone.sqlite" "$h"/*.stamp "$h/fernet-keys" \
        "$h/credential-keys" "${h:?}/etc" "$h/logs" "$STATE"
    say "wipe: data removed from $KEYSTONE_HOME (venv kept)"
}

cmd_authtoken() {
    load_state
    cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $SCHEME://$HOST:$PORT/v3
auth_url = $SCHEME://$HOST:$PORT/v3
auth_type = password
username = clinker
password = $SERVICE_PASSWORD
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = $REGION
EOF
    [ -z "$CA" ] || echo "cafile = $CA"
}

cmd_openrc() {
    local user=${1:-} project pw
    case $user in
        admin) project='admin'; pw=ADMIN_PASSWORD ;;
        demo) project=demo; pw=DEMO_PASSWORD ;;
        alt_demo) project=alt_demo; pw=ALT_DEMO_PASSWORD ;;
        demo_reader) project=demo; pw=DEMO_READER_PASSWORD ;;
        clinker) project=service; pw=SERVICE_PASSWORD ;;
        *) die "openrc needs one of: admin demo alt_demo demo_reader clinker" ;;
    esac
    load_state
    cat <<EOF
export OS_AUTH_TYPE=password
export OS_AUTH_URL=$SCHEME://$HOST:$PORT/v3
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$user
export OS_PASSWORD=$(printf '%q' "${!pw}")
export OS_PROJECT_NAME=$project
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$REGION
export OS_VOLUME_API_VERSION=3
EOF
    [ -z "$CA" ] || printf 'export OS_CACERT=%q\n' "$CA"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    install) cmd_install ;;
    installed) [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" = "$(install_stamp)" ] ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    authtoken) cmd_authtoken ;;
    openrc) cmd_openrc "$@" ;;
    wipe) cmd_wipe ;;
    *) usage ;;
esac
