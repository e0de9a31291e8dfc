#!/usr/bin/env bash
# conformance.sh - Clinker against Tempest's volume API tests, end to end.
#
# usage: scripts/conformance.sh [REGEX]
#
# The one command CI runs.  It
#   1. installs (or reuses) the Keystone and Tempest venvs, in parallel;
#   2. starts a throw-away Keystone (scripts/keystone.sh) on a free port
#      whose volume endpoints point at Clinker's port, and a Glance in
#      Keystone mode (scripts/glance.sh via scripts/with-glance.sh) in its
#      catalog with one public qcow2 test image (Tempest's image_ref);
#   3. writes a Clinker config (auth_strategy = keystone, the
#      [keystone_authtoken] section Keystone printed, a file backend, state
#      under the run directory) and starts `clinker --config-file ... serve`;
#   4. runs scripts/tempest.sh (REGEX defaults to '^tempest\.api\.volume');
#   5. stops Clinker and Keystone, even when interrupted.
# Exit status 0 only when no selected test failed.  Everything stays in
# $CONFORMANCE_DIR: clinker/ (config, log, state), keystone/ (data, logs),
# tempest/ (outcomes.txt, failures.txt, summary.txt, tempest.log, ...),
# timings.txt and, for the full suite, compare-with-cinder.txt (what passes
# in Cinder 29 and not in Clinker, scripts/tempest/cinder-29-outcomes.txt).
# The last line printed is "N passed, N failed, N skipped".
#
# Environment:
#   CLINKER_BIN            [target/debug/clinker of this repository]
#   CONFORMANCE_DIR        [target/conformance-run-<UTC timestamp>], new or empty
#   CLINKER_PORT, KEYSTONE_PORT   [free ports on 127.0.0.1]
#   CLINKER_AUTH_STRATEGY  [keystone]; noauth exercises the harness with a
#                          Clinker that ignores tokens
#   CLINKER_EXTRA_CONFIG   a config file layered over the generated one
#                          (e.g. another backend)
#   CLINKER_START_TIMEOUT  [60] seconds for Clinker to answer
#   CONFORMANCE_DYNAMIC_PASS [True] for the full suite, a second pass with
#                          Tempest's dynamic credentials for the tests that
#                          need them (AbsoluteLimitsTests), merged into
#                          tempest/outcomes.txt
#   VOLUME_MANAGE_VOLUME_REF [source-name,volume-%s], VOLUME_MANAGE_SNAPSHOT_REF
#                          [source-name,snapshot-%s]: the file backend's names
#   CONFORMANCE_GLANCE     [True] start Glance and run Tempest's image tests
#                          (GLANCE_WORKAROUND=False); False: no Glance, those
#                          tests are left out (GLANCE_WORKAROUND=True)
#   VOLUME_FEATURE_MULTI_BACKEND=True configures two file backends (file,
#                          file2) so the multi-backend tests can run
#   KEYSTONE_VENV          [~/.cache/clinker-keystone/venv] shared venv; the
#                          Keystone data is per run
#   everything scripts/tempest.sh and scripts/keystone.sh read (passwords,
#   VOLUME_FEATURE_*, GLANCE_WORKAROUND, TEMPEST_VENV, ...)
# Self-test of the harness without Clinker:
#   CLINKER_BIN=scripts/tempest/stub_volume_api.py scripts/conformance.sh
set -uo pipefail

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$SCRIPTS")
REGEX=${1:-'^tempest\.api\.volume'}
CLINKER_BIN=${CLINKER_BIN:-$ROOT/target/debug/clinker}
# under target/ by default: ignored by git, next to the binary it tests
RUN=${CONFORMANCE_DIR:-$ROOT/target/conformance-run-$(date -u +%Y%m%dT%H%M%SZ)}

say() { echo "conformance: $*"; }
# shellcheck source=with-glance.sh
. "$SCRIPTS/with-glance.sh"
WITH_GLANCE=${CONFORMANCE_GLANCE:-True}
is_true() { case ${1,,} in 1|true|yes|on) return 0 ;; *) return 1 ;; esac; }
die() { echo "conformance: error: $*" >&2; exit "${2:-1}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case ${1:-} in -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ -x "$CLINKER_BIN" ] || die "no executable Clinker at $CLINKER_BIN (cargo build -p clinker, or set CLINKER_BIN)" 64
CLINKER_BIN=$(cd "$(dirname "$CLINKER_BIN")" && pwd)/$(basename "$CLINKER_BIN")
mkdir -p "$RUN" || die "cannot create $RUN" 64
RUN=$(cd "$RUN" && pwd)
[ -z "$(ls -A "$RUN")" ] || die "$RUN is not empty; choose another CONFORMANCE_DIR" 64
mkdir -p "$RUN/clinker"
export KEYSTONE_HOME=$RUN/keystone
export KEYSTONE_VENV=${KEYSTONE_VENV:-$HOME/.cache/clinker-keystone/venv}
TIMINGS=$RUN/timings.txt
timing() { printf '%-28s %6s s\n' "$1" "$2" | tee -a "$TIMINGS"; }
T0=$(now)

CLINKER_PID=
TEMPEST_PID=
KEYSTONE_STARTED=0
cleanup() {
    trap - EXIT INT TERM
    local t
    t=$(now)
    if [ -n "$TEMPEST_PID" ] && kill -0 "$TEMPEST_PID" 2>/dev/null; then
        say "interrupted: stopping tempest.sh (pid $TEMPEST_PID) and its children"
        kill -TERM -- "-$TEMPEST_PID" 2>/dev/null || kill -TERM "$TEMPEST_PID"
        wait "$TEMPEST_PID" 2>/dev/null
    fi
    if [ -n "$CLINKER_PID" ] && kill -0 "$CLINKER_PID" 2>/dev/null; then
        kill -TERM "$CLINKER_PID"
        for _ in $(seq 300); do kill -0 "$CLINKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$CLINKER_PID" 2>/dev/null && { say "Clinker ignored SIGTERM for 30 s; killing it"; kill -KILL "$CLINKER_PID"; }
        wait "$CLINKER_PID" 2>/dev/null
    fi
    [ "$KEYSTONE_STARTED" = 1 ] && "$SCRIPTS/keystone.sh" stop >/dev/null
    is_true "$WITH_GLANCE" && glance_stop "$RUN/glance"
    timing "stop Clinker + Keystone" "$(since "$t")"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. venvs: both installs are mostly download and unpack, so overlap them
t=$(now)
"$SCRIPTS/keystone.sh" install > "$RUN/install-keystone.log" 2>&1 &
ks_install=$!
glance_rc=0
if is_true "$WITH_GLANCE"; then
    "$SCRIPTS/glance.sh" install > "$RUN/install-glance.log" 2>&1 &
    glance_install=$!
fi
"$SCRIPTS/tempest.sh" --install-only > "$RUN/install-tempest.log" 2>&1
tempest_rc=$?
wait "$ks_install"; ks_rc=$?
if is_true "$WITH_GLANCE"; then wait "$glance_install"; glance_rc=$?; fi
cat "$RUN/install-keystone.log" "$RUN/install-tempest.log"
if [ "$ks_rc" != 0 ] || [ "$tempest_rc" != 0 ] || [ "$glance_rc" != 0 ]; then
    die "installing the venvs failed (see $RUN/install-*.log)" 69
fi
timing "install venvs" "$(since "$t")"

# 2. Keystone
CLINKER_PORT=${CLINKER_PORT:-$(free_port)}
KEYSTONE_PORT=${KEYSTONE_PORT:-$(free_port)}
[ "$CLINKER_PORT" != "$KEYSTONE_PORT" ] || KEYSTONE_PORT=$(free_port)
CLINKER_URL=http://127.0.0.1:$CLINKER_PORT
t=$(now)
KEYSTONE_STARTED=1
if is_true "$WITH_GLANCE"; then
    glance_pick_port
    export KEYSTONE_IMAGE_ENDPOINT=$GLANCE_URL
fi
"$SCRIPTS/keystone.sh" start --port "$KEYSTONE_PORT" --endpoint "$CLINKER_URL" \
    > "$RUN/keystone-start.log" 2>&1 || { cat "$RUN/keystone-start.log"; die "Keystone did not start"; }
grep -E '^keystone: start: ready|^provision: ok' "$RUN/keystone-start.log"
timing "start Keystone" "$(since "$t")"
if is_true "$WITH_GLANCE"; then
    t=$(now)
    glance_start "$RUN/glance" "http://127.0.0.1:$KEYSTONE_PORT" \
        || { cat "$RUN/glance.start.log"; die "Glance did not start"; }
    glance_test_image "http://127.0.0.1:$KEYSTONE_PORT" conformance-image \
        || die "cannot upload the test image to Glance"
    say "Glance on $GLANCE_URL (Keystone mode), test image $GLANCE_IMAGE_ID"
    timing "start Glance + image" "$(since "$t")"
fi

# 3. Clinker
backends='file'
is_true "${VOLUME_FEATURE_MULTI_BACKEND:-False}" && backends=file,file2
{
    cat <<EOF
# written by scripts/conformance.sh
[DEFAULT]
state_path = $RUN/clinker/state
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $CLINKER_PORT
auth_strategy = ${CLINKER_AUTH_STRATEGY:-keystone}
enabled_backends = $backends
EOF
    is_true "$WITH_GLANCE" && echo "glance_api_servers = $GLANCE_URL"
    for b in ${backends//,/ }; do
        printf '\n[%s]\nvolume_driver = file\nvolume_backend_name = %s\n' "$b" "$b"
    done
    echo
    "$SCRIPTS/keystone.sh" authtoken
} > "$RUN/clinker/clinker.conf"
conf_args=(--config-file "$RUN/clinker/clinker.conf")
[ -n "${CLINKER_EXTRA_CONFIG:-}" ] && conf_args+=(--config-file "$CLINKER_EXTRA_CONFIG")
t=$(now)
(cd "$RUN/clinker" && exec "$CLINKER_BIN" "${conf_args[@]}" serve) \
    > "$RUN/clinker/clinker.log" 2>&1 < /dev/null &
CLINKER_PID=$!
for _ in $(seq $((${CLINKER_START_TIMEOUT:-60} * 10))); do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$CLINKER_URL/") || true
    [ "$code" != 000 ] && break
    if ! kill -0 "$CLINKER_PID" 2>/dev/null; then
        tail -n 20 "$RUN/clinker/clinker.log" | sed 's/^/  | /' >&2
        die "Clinker exited during start-up (log: $RUN/clinker/clinker.log)"
    fi
    sleep 0.1
done
[ "$code" != 000 ] || die "Clinker did not answer on $CLINKER_URL within ${CLINKER_START_TIMEOUT:-60} s"
say "Clinker (pid $CLINKER_PID) answers on $CLINKER_URL; auth_strategy ${CLINKER_AUTH_STRATEGY:-keystone}, backends $backends"
timing "start Clinker" "$(since "$t")"

# 4. Tempest
[ "$backends" = file,file2 ] && export VOLUME_BACKEND_NAMES=${VOLUME_BACKEND_NAMES:-file,file2}
# The references the manage tests use for what an unmanage leaves behind:
# the file backend names volumes volume-<id> (Tempest's default) and
# snapshots snapshot-<id>. Tempest's snapshot default, _snapshot-<id>, is
# the LVM driver's escaped LV name; a file of that name does not exist, and
# a reference names a real backend object, so the ref follows the backend
# (as Cinder's own jobs set it per backend).
export VOLUME_MANAGE_VOLUME_REF=${VOLUME_MANAGE_VOLUME_REF:-source-name,volume-%s}
export VOLUME_MANAGE_SNAPSHOT_REF=${VOLUME_MANAGE_SNAPSHOT_REF:-source-name,snapshot-%s}
if is_true "$WITH_GLANCE"; then
    export GLANCE_WORKAROUND=False GLANCE_AVAILABLE=True TEMPEST_IMAGE_REF=$GLANCE_IMAGE_ID
fi
t=$(now)
# In the background of a process group of its own: `wait` returns on a
# signal (a foreground child would delay our trap until it ends) and the
# trap can stop tempest.sh with everything it started.
OUT_DIR=$RUN/tempest setsid -w "$SCRIPTS/tempest.sh" "http://127.0.0.1:$KEYSTONE_PORT" "$REGEX" &
TEMPEST_PID=$!
wait "$TEMPEST_PID"
rc=$?
TEMPEST_PID=
timing "tempest.sh (all of it)" "$(since "$t")"
if [ -f "$RUN/tempest/summary.txt" ]; then
    grep '^timing:' "$RUN/tempest/summary.txt" | sed 's/^/  tempest.sh /' | tee -a "$TIMINGS"
fi

# 4b. The tests Tempest runs only with dynamic credentials (it creates their
# project and users with the admin account): a second, short pass whose
# outcomes replace the first pass's skips.  The first pass keeps the
# pre-provisioned accounts the Cinder reference used.
DYNAMIC_REGEX='^tempest\.api\.volume\.test_volume_absolute_limits\.'
if [ "$REGEX" = '^tempest\.api\.volume' ] && is_true "${CONFORMANCE_DYNAMIC_PASS:-True}" \
        && [ -f "$RUN/tempest/outcomes.txt" ]; then
    t=$(now)
    # No network service: Tempest would try to clean up the classes' networks.
    NEUTRON_AVAILABLE=False TEMPEST_DYNAMIC_CREDENTIALS=True OUT_DIR=$RUN/tempest-dynamic \
        setsid -w "$SCRIPTS/tempest.sh" "http://127.0.0.1:$KEYSTONE_PORT" "$DYNAMIC_REGEX" \
        > "$RUN/tempest-dynamic.log" 2>&1 &
    TEMPEST_PID=$!
    wait "$TEMPEST_PID"
    rc_dynamic=$?
    TEMPEST_PID=
    timing "tempest.sh (dynamic creds)" "$(since "$t")"
    if [ -f "$RUN/tempest-dynamic/outcomes.txt" ]; then
        cp "$RUN/tempest/outcomes.txt" "$RUN/tempest/outcomes-first-pass.txt"
        python3 - "$RUN/tempest/outcomes.txt" "$RUN/tempest-dynamic/outcomes.txt" \
            "$RUN/tempest/summary.txt" <<'PY'
import sys
main_path, dyn_path, summary_path = sys.argv[1:4]
def read(path):
    rows = {}
    for line in open(path):
        if line.strip() and not line.startswith('#'):
            test, outcome = line.split()
            rows[test] = outcome
    return rows
rows = read(main_path)
rows.update(read(dyn_path))
with open(main_path, 'w') as fh:
    for test in sorted(rows):
        fh.write('%s %s\n' % (test, rows[test]))
counts = {k: sum(1 for v in rows.values() if v == k) for k in ('pass', 'fail', 'skip')}
with open(summary_path, 'a') as fh:
    fh.write('merged with the dynamic-credentials pass (tempest-dynamic/):\n')
    fh.write('%d passed, %d failed, %d skipped\n' % (counts['pass'], counts['fail'], counts['skip']))
PY
        if [ -s "$RUN/tempest-dynamic/failures.txt" ]; then
            cat "$RUN/tempest-dynamic/failures.txt" >> "$RUN/tempest/failures.txt"
        fi
    fi
    [ "$rc_dynamic" = 0 ] || rc=1
fi

# 5. stop everything; compare with Cinder; repeat the result as the closing line
cleanup
timing "total" "$(since "$T0")"
say "output in $RUN (Clinker log: clinker/clinker.log, Tempest: tempest/)"
REFERENCE=$SCRIPTS/tempest/cinder-29-outcomes.txt
if [ -f "$RUN/tempest/outcomes.txt" ] && [ "$REGEX" = '^tempest\.api\.volume' ]; then
    "$SCRIPTS/compare-tempest.sh" "$REFERENCE" "$RUN/tempest/outcomes.txt" > "$RUN/compare-with-cinder.txt"
    say "against Cinder 29: $(grep -c '(B: ' "$RUN/compare-with-cinder.txt" || true) tests pass in Cinder and not in Clinker," \
        "$(grep -c '(A: ' "$RUN/compare-with-cinder.txt" || true) pass in Clinker and not in Cinder ($RUN/compare-with-cinder.txt)"
fi
if [ -f "$RUN/tempest/outcomes.txt" ]; then
    tail -n 1 "$RUN/tempest/summary.txt"
fi
exit "$rc"
