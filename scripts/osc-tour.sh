#!/usr/bin/env bash
# osc-tour.sh - the `openstack` client tour: Clinker driven by the real
# python-openstackclient with Keystone password authentication.
#
# usage: scripts/osc-tour.sh
#
# Self-contained:
#   1. installs (or reuses) the Keystone venv and the openstack client;
#   2. starts a throw-away Keystone (scripts/keystone.sh) on a free port,
#      its volume endpoints pointing at Clinker and a compute endpoint at
#      the tour's stand-in Compute API (scripts/osc-tour/tour.py), and a
#      Glance in Keystone mode with a public qcow2 image
#      (scripts/with-glance.sh, as scripts/conformance.sh does);
#   3. starts `clinker serve` with auth_strategy = keystone, a file
#      backend and its state under the run directory;
#   With OSC_TOUR_TLS=1 (the default) the tour runs over TLS: a throw-away
#   CA (openssl) signs one certificate for 127.0.0.1, Keystone serves
#   HTTPS with it (gunicorn certfile/keyfile), so does Clinker's API
#   ([ssl] cert_file / key_file, HTTP/2), Clinker trusts the CA for
#   Keystone ([keystone_authtoken] cafile, [nova] cafile for the token it
#   rescopes there) and the client for both (OS_CACERT, the openrc's
#   --os-cacert).  Glance and the stand-in Compute API stay plain HTTP;
#   Clinker's bus and database are the all-in-one's in-process bus and
#   SQLite (AMQPS and database TLS are tests/tls_backends.rs's).
#   4. runs the tour (scripts/osc-tour/tour.py) as admin, demo and
#      alt_demo: volume type with extra specs, volume, snapshot, clones of
#      the volume and of the snapshot, extend, attachment create / set /
#      complete / delete, quota show / set / delete, limits, service list,
#      a transfer from demo to alt_demo, deleting everything; then volume
#      create --image, the boot volume (bootable, image metadata), image
#      create --volume (scripts/osc-tour/image_steps.py).  Each step's
#      output is checked (status, fields, values), a failure names the
#      step and shows the command and what it printed;
#   5. uses a fresh token of each account once against Clinker, then
#      greps everything Clinker printed (its log, `manage config check`
#      of the tour's configuration) for every secret of the run: the
#      accounts' passwords (random per run), the service user's password,
#      the tokens, the CA's and the server's private keys; a hit fails the
#      tour;
#   6. stops Clinker and Keystone, also when interrupted.
# Prints a timing per step and "osc tour: N steps passed"; exit status 0
# only when every step passed.  Everything stays in $OSC_TOUR_DIR:
# clinker/ (config, log, state), keystone/ (data, logs), tour.log.
#
# Environment:
#   CLINKER_BIN            [target/debug/clinker of this repository]
#   OSC_TOUR_DIR           [target/osc-tour-<UTC timestamp>], new or empty
#   CLINKER_OPENSTACK_CLI  the openstack executable
#                          [~/.cache/clinker-osc/bin/openstack, installed by
#                          scripts/install-openstack-client.sh if missing]
#   OSC_TOUR_WAIT          [90] seconds a resource may take to reach a status
#   KEYSTONE_VENV          [~/.cache/clinker-keystone/venv] shared venv; the
#                          Keystone data is per run
#   CLINKER_START_TIMEOUT  [60] seconds for Clinker to answer
#   OSC_TOUR_TLS           [1] 0: plain HTTP everywhere
set -uo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPTS")
CLINKER_BIN=${CLINKER_BIN:-$ROOT/target/debug/clinker}
RUN=${OSC_TOUR_DIR:-$ROOT/target/osc-tour-$(date -u +%Y%m%dT%H%M%SZ)}

say() { echo "osc tour: $*"; }
# shellcheck source=with-glance.sh
. "$SCRIPTS/with-glance.sh"
die() { echo "osc tour: error: $*" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case ${1:-} in
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    '') ;;
    *) die "no arguments expected (see --help)" 64 ;;
esac
[ -x "$CLINKER_BIN" ] || die "no executable Clinker at $CLINKER_BIN (cargo build -p clinker, or set CLINKER_BIN)" 64
CLINKER_BIN=$(cd "$(dirname "$CLINKER_BIN")" && pwd)/$(basename "$CLINKER_BIN")
mkdir -p "$RUN" || die "cannot create $RUN" 64
RUN=$(cd "$RUN" && pwd)
[ -z "$(ls -A "$RUN")" ] || die "$RUN is not empty; choose another OSC_TOUR_DIR" 64
mkdir -p "$RUN/clinker"
export KEYSTONE_HOME=$RUN/keystone
export KEYSTONE_VENV=${KEYSTONE_VENV:-$HOME/.cache/clinker-keystone/venv}
T0=$(now)
TLS=${OSC_TOUR_TLS:-1}
case $TLS in 0|1) ;; *) die "OSC_TOUR_TLS must be 0 or 1" 64 ;; esac
# Every account's password is new per run, so the secrets check at the end
# cannot be fooled by a common word.
rand() { python3 -c 'import secrets; print(secrets.token_hex(12))'; }
for v in ADMIN_PASSWORD DEMO_PASSWORD ALT_DEMO_PASSWORD DEMO_READER_PASSWORD SERVICE_PASSWORD; do
    printf -v "$v" 'pw%s' "$(rand)"
    export "${v?}"
done

CLINKER_PID=
TOUR_PID=
KEYSTONE_STARTED=0
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$TOUR_PID" ] && kill -0 "$TOUR_PID" 2>/dev/null; then
        say "interrupted: stopping the tour (pid $TOUR_PID) and the commands it runs"
        kill -TERM -- "-$TOUR_PID" 2>/dev/null || kill -TERM "$TOUR_PID"
        wait "$TOUR_PID" 2>/dev/null
    fi
    if [ -n "$CLINKER_PID" ] && kill -0 "$CLINKER_PID" 2>/dev/null; then
        kill -TERM "$CLINKER_PID"
        for _ in $(seq 300); do kill -0 "$CLINKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$CLINKER_PID" 2>/dev/null && { say "Clinker ignored SIGTERM for 30 s; killing it"; kill -KILL "$CLINKER_PID"; }
        wait "$CLINKER_PID" 2>/dev/null
    fi
    [ "$KEYSTONE_STARTED" = 1 ] && "$SCRIPTS/keystone.sh" stop >/dev/null
    glance_stop "$RUN/glance"
    CLINKER_PID= KEYSTONE_STARTED=0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. the client and Keystone's venv, in parallel (both are no-ops when done)
t=$(now)
OSC=${CLINKER_OPENSTACK_CLI:-$HOME/.cache/clinker-osc/bin/openstack}
"$SCRIPTS/keystone.sh" install > "$RUN/install-keystone.log" 2>&1 &
ks_install=$!
if [ ! -x "$OSC" ]; then
    [ -z "${CLINKER_OPENSTACK_CLI:-}" ] || die "CLINKER_OPENSTACK_CLI=$OSC is not executable" 64
    "$SCRIPTS/install-openstack-client.sh" > "$RUN/install-osc.log" 2>&1 || {
        cat "$RUN/install-osc.log"; die "installing the openstack client failed" 69; }
fi
wait "$ks_install" || { cat "$RUN/install-keystone.log"; die "installing Keystone failed" 69; }
"$SCRIPTS/glance.sh" install > "$RUN/install-glance.log" 2>&1 || {
    cat "$RUN/install-glance.log"; die "installing Glance failed" 69; }
say "$("$OSC" --version 2>&1), installs checked in $(since "$t") s"

# 2. Keystone, with the stand-in Compute API in its catalog
CLINKER_PORT=$(free_port)
KEYSTONE_PORT=$(free_port)
NOVA_PORT=$(free_port)
SCHEME=http
CURL_TLS=()
if [ "$TLS" = 1 ]; then
    # A CA and one server certificate for 127.0.0.1, shared by Keystone
    # and Clinker; keys stay in the run directory.
    t=$(now)
    pki=$RUN/pki
    mkdir -p "$pki" && chmod 700 "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=osc-tour-ca" -keyout "$pki/ca.key" -out "$pki/ca.pem" \
        > "$pki/openssl.log" 2>&1 &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$pki/server.key" -out "$pki/server.csr" \
        >> "$pki/openssl.log" 2>&1 &&
    printf 'subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n' \
        > "$pki/server.ext" &&
    openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
        -CAcreateserial -days 2 -extfile "$pki/server.ext" -out "$pki/server.pem" \
        >> "$pki/openssl.log" 2>&1 ||
        { cat "$pki/openssl.log"; die "openssl could not make the tour's certificates"; }
    export KEYSTONE_TLS_CERT=$pki/server.pem KEYSTONE_TLS_KEY=$pki/server.key KEYSTONE_TLS_CA=$pki/ca.pem
    SCHEME=https
    CURL_TLS=(--cacert "$pki/ca.pem")
    say "TLS on: CA $pki/ca.pem in $(since "$t") s"
fi
CLINKER_URL=$SCHEME://127.0.0.1:$CLINKER_PORT
t=$(now)
KEYSTONE_STARTED=1
glance_pick_port
KEYSTONE_IMAGE_ENDPOINT=$GLANCE_URL KEYSTONE_COMPUTE_ENDPOINT=http://127.0.0.1:$NOVA_PORT/v2.1 \
    "$SCRIPTS/keystone.sh" start --port "$KEYSTONE_PORT" --endpoint "$CLINKER_URL" \
    > "$RUN/keystone-start.log" 2>&1 || { cat "$RUN/keystone-start.log"; die "Keystone did not start"; }
KEYSTONE_URL=$SCHEME://127.0.0.1:$KEYSTONE_PORT
say "Keystone on $KEYSTONE_URL in $(since "$t") s"
t=$(now)
glance_start "$RUN/glance" "$KEYSTONE_URL" \
    || { cat "$RUN/glance.start.log"; die "Glance did not start"; }
glance_test_image "$KEYSTONE_URL" osc-tour-image \
    || die "cannot upload the test image to Glance"
say "Glance on $GLANCE_URL with image $GLANCE_IMAGE_ID in $(since "$t") s"

# 3. Clinker
{
    cat <<EOF
# written by scripts/osc-tour.sh
[DEFAULT]
state_path = $RUN/clinker/state
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $CLINKER_PORT
auth_strategy = keystone
enabled_backends = file
# no glance_api_servers: Clinker finds Glance in the caller's catalog
# (glance_catalog_info image:glance:publicURL), as Cinder does

[file]
volume_driver = file
volume_backend_name = file

EOF
    if [ "$TLS" = 1 ]; then
        cat <<EOF
[ssl]
cert_file = $KEYSTONE_TLS_CERT
key_file = $KEYSTONE_TLS_KEY

[nova]
# the caller's token is rescoped at the https Keystone before Compute is asked
cafile = $KEYSTONE_TLS_CA

EOF
    fi
    "$SCRIPTS/keystone.sh" authtoken
} > "$RUN/clinker/clinker.conf"
t=$(now)
(cd "$RUN/clinker" && exec "$CLINKER_BIN" --config-file "$RUN/clinker/clinker.conf" serve) \
    > "$RUN/clinker/clinker.log" 2>&1 < /dev/null &
CLINKER_PID=$!
code=000
for _ in $(seq $((${CLINKER_START_TIMEOUT:-60} * 10))); do
    code=$(curl "${CURL_TLS[@]}" -s -o /dev/null -m 2 -w '%{http_code}' "$CLINKER_URL/") || true
    [ "$code" != 000 ] && break
    if ! kill -0 "$CLINKER_PID" 2>/dev/null; then
        tail -n 20 "$RUN/clinker/clinker.log" | sed 's/^/  | /' >&2
        die "Clinker exited during start-up (log: $RUN/clinker/clinker.log)"
    fi
    sleep 0.1
done
[ "$code" != 000 ] || die "Clinker did not answer on $CLINKER_URL within ${CLINKER_START_TIMEOUT:-60} s"
say "Clinker (pid $CLINKER_PID) on $CLINKER_URL in $(since "$t") s"

# The secrets check: each account's token used once against Clinker, then
# Clinker's log and its view of the configuration searched for every
# secret of the run.  Prints what it found; fails on any hit.
check_secrets() {
    local secrets=() names=() user token project status i hits=0 out
    for v in ADMIN_PASSWORD DEMO_PASSWORD ALT_DEMO_PASSWORD DEMO_READER_PASSWORD SERVICE_PASSWORD; do
        secrets+=("${!v}"); names+=("$v")
    done
    for user in admin demo alt_demo; do
        read -r token project < <( (. "$RUN/$user.openrc" && "$OSC" token issue -f json) |
            python3 -c 'import json, sys; t = json.load(sys.stdin); print(t["id"], t["project_id"])')
        [ -n "${project:-}" ] || { echo "cannot issue a token for $user"; return 1; }
        status=$(curl "${CURL_TLS[@]}" -s -o /dev/null -m 30 -w '%{http_code}' \
            -H "X-Auth-Token: $token" "$CLINKER_URL/v3/$project/volumes")
        [ "$status" = 200 ] || { echo "GET volumes with $user's token: $status"; return 1; }
        secrets+=("$token"); names+=("$user's token")
    done
    if [ "$TLS" = 1 ]; then
        # the private keys' base64 body, one line of it
        for key in "$RUN/pki/ca.key" "$RUN/pki/server.key"; do
            secrets+=("$(sed -n 2p "$key")"); names+=("private key $(basename "$key")")
        done
    fi
    "$CLINKER_BIN" --config-file "$RUN/clinker/clinker.conf" manage config check \
        > "$RUN/clinker/config-check.out" 2>&1 || {
        cat "$RUN/clinker/config-check.out"; echo "manage config check failed"; return 1; }
    "$CLINKER_BIN" manage config sample > "$RUN/clinker/config-sample.out" 2>&1 || {
        echo "manage config sample failed"; return 1; }
    local files=("$RUN/clinker/clinker.log" "$RUN/clinker/config-check.out"
                 "$RUN/clinker/config-sample.out")
    for i in "${!secrets[@]}"; do
        [ -n "${secrets[$i]}" ] || { echo "empty secret ${names[$i]}"; return 1; }
        out=$(grep -lF -- "${secrets[$i]}" "${files[@]}")
        if [ -n "$out" ]; then
            echo "${names[$i]} found in: $out"
            hits=$((hits + 1))
        fi
    done
    [ "$hits" = 0 ] || return 1
    echo "${#secrets[@]} secrets, none in $(cat "${files[@]}" | wc -l) lines of ${#files[@]} files"
}

# 4. the tour, in a process group of its own so an interrupt stops the
# openstack command it is running too
for user in admin demo alt_demo; do
    "$SCRIPTS/keystone.sh" openrc "$user" > "$RUN/$user.openrc"
done
setsid -w python3 "$SCRIPTS/osc-tour/tour.py" --cli "$OSC" --nova-port "$NOVA_PORT" \
    --openrc "admin=$RUN/admin.openrc" --openrc "demo=$RUN/demo.openrc" \
    --openrc "alt_demo=$RUN/alt_demo.openrc" --image-id "$GLANCE_IMAGE_ID" \
    > "$RUN/tour.log" 2>&1 &
TOUR_PID=$!
tail -n +1 -f --pid="$TOUR_PID" "$RUN/tour.log" &
tail_pid=$!
wait "$TOUR_PID"
rc=$?
TOUR_PID=
wait "$tail_pid"

# 5. no secret in anything Clinker printed (also after a failed step:
# a failure's log lines are the likeliest to leak one)
t=$(now)
if check_secrets > "$RUN/secrets.log" 2>&1; then
    say "secrets: $(tail -n 1 "$RUN/secrets.log") in $(since "$t") s"
else
    sed 's/^/  | /' "$RUN/secrets.log"
    say "secrets check failed"
    rc=1
fi

# 6. stop everything; repeat the result as the closing line
t=$(now)
cleanup
say "stopped Clinker, Keystone and Glance in $(since "$t") s; total $(since "$T0") s; output in $RUN"
if [ "$rc" != 0 ]; then
    say "Clinker log: $RUN/clinker/clinker.log (last lines below)"
    tail -n 15 "$RUN/clinker/clinker.log" | sed 's/^/  | /'
fi
tail -n 1 "$RUN/tour.log"
exit "$rc"
