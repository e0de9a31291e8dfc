#!/usr/bin/env bash
# tempest.sh - run OpenStack Tempest's volume API tests against Clinker.
#
# usage: scripts/tempest.sh KEYSTONE_URL [REGEX]
#        scripts/tempest.sh --install-only
#
#   KEYSTONE_URL  e.g. http://127.0.0.1:5000 (a trailing /v3 is fine); the
#                 volume endpoint is found in its catalog
#   REGEX         stestr selection regex, default '^tempest\.api\.volume'
#
# Installs tempest 47.0.0 + stestr (pinned by
# scripts/tempest/tempest-constraints.txt) into a reusable venv, discovers
# the deployment (scripts/tempest/configure.py: accounts, volume endpoint,
# microversions, pool capabilities), writes tempest.conf and a
# pre-provisioned accounts.yaml (demo = primary, alt_demo = alt, admin =
# admin, demo_reader = project_reader; what scripts/keystone.sh makes),
# runs `tempest run` serially and reports one outcome per selected test.
#
# Output, in $OUT_DIR (default ./tempest-run-<UTC timestamp>):
#   outcomes.txt   "test_id pass|fail|skip" for every selected test;
#                  setUpClass errors and skips count for each test of the
#                  class (compare runs with scripts/compare-tempest.sh)
#   failures.txt   "test_id | error line"
#   summary.txt    counts, skip and failure reasons, settings
#   results.subunit, tempest.log (every request and response), console.log,
#   settings.txt, tests.txt (selected), excluded.txt, etc/tempest.conf,
#   etc/accounts.yaml
# The last line printed is "N passed, N failed, N skipped".  Exit status:
# 0 all selected tests passed or skipped, 1 some failed, 2 the deployment
# could not be used (every test then counts as failed), 64 usage, 69 the
# venv could not be installed.
#
# Environment (defaults in brackets):
#   OUT_DIR                 [./tempest-run-<UTC timestamp>], must be new or empty
#   TEMPEST_VENV            [~/.cache/clinker-tempest/venv]
#   TEMPEST_PINS            [scripts/tempest/tempest-constraints.txt] or 'none'
#   CONCURRENCY             [1]  one set of accounts serves one worker only
#   GLANCE_WORKAROUND       [True]  render glance=True and leave out the 8
#                           tests that need a real Glance (reported as skip):
#                           with glance off, tempest 47.0.0 fails all 41 tests
#                           of VolumesGetTest, VolumesNegativeTest and
#                           VolumesActionsTest in setup_clients, 34 of which
#                           pass against Cinder
#   GLANCE_AVAILABLE        [False] True: a real Glance is in the catalog
#                           (use with GLANCE_WORKAROUND=False)
#   TEMPEST_IMAGE_REF       the id of an active image ([compute] image_ref)
#                           the image tests create volumes from
#   NEUTRON_AVAILABLE       [True]  runs 11 Cinder-only tests whose classes
#                           ask for a network (none is created)
#   ENFORCE_SCOPE_CINDER    [True]  read-only calls go through demo_reader
#   VOLUME_FEATURE_BACKUP   [False] backup tests (needs a backup service)
#   VOLUME_FEATURE_MULTI_BACKEND [False] multi-backend and migrating
#                           retype tests; needs two backend names
#                           (discovered from the pools, or VOLUME_BACKEND_NAMES=a,b)
#   VOLUME_FEATURE_MANAGE   [False] manage/unmanage volume and snapshot tests
#                           (VOLUME_MANAGE_VOLUME_REF / _SNAPSHOT_REF for the
#                           backend's naming, e.g. source-name,volume-%s)
#   VOLUME_FEATURE_MULTIATTACH [False] the multiattach retype test
#   TEMPEST_DYNAMIC_CREDENTIALS [False] Tempest creates a project and users
#                           per test class with the admin account instead of
#                           using the pre-provisioned ones (AbsoluteLimitsTests
#                           runs only so)
#   VOLUME_BACKUP_DRIVER    [Tempest's: ceph]
#   VOLUME_STORAGE_PROTOCOL, VOLUME_VENDOR_NAME, VOLUME_BACKEND_NAMES
#                           [discovered from get_pools, else Tempest's]
#   VOLUME_MIN_MICROVERSION [unset unless the server's minimum is above 3.0]
#   VOLUME_MAX_MICROVERSION [the server's maximum, else latest]
#   VOLUME_CATALOG_TYPE     [discovered: block-storage, volumev3, volume]
#   VOLUME_ENDPOINT_TYPE    [publicURL]   REGION [discovered]
#   VOLUME_BUILD_TIMEOUT [120]  VOLUME_BUILD_INTERVAL [1]  TEMPEST_DEBUG [True]
#   Accounts: ADMIN_USER/ADMIN_PROJECT [admin/admin], DEMO_USER/DEMO_PROJECT
#     [demo/demo], ALT_DEMO_USER/ALT_DEMO_PROJECT [alt_demo/alt_demo],
#     DEMO_READER_USER [demo_reader, in DEMO_PROJECT], DOMAIN [Default];
#     passwords ADMIN_PASSWORD DEMO_PASSWORD ALT_DEMO_PASSWORD
#     DEMO_READER_PASSWORD [all $KEYSTONE_PASSWORD, else secret]
#   TEMPEST_EXCLUDE_REGEX   more tests to leave out (reported as skip)
#   TEMPEST_QUIET           [0]  1: no progress line per finished test
#   TEMPEST_LOCK_WAIT       [7200] seconds to wait for another run that uses
#                           the same Keystone (the accounts are shared)
set -uo pipefail
export LC_ALL=C   # sort and comm must agree on the order of test ids

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${TEMPEST_VENV:-$HOME/.cache/clinker-tempest/venv}
PINS=${TEMPEST_PINS:-$SCRIPTS/tempest/tempest-constraints.txt}
TEMPEST_VERSION=47.0.0
DEFAULT_REGEX='^tempest\.api\.volume'
# Tempest's volume tests that need a real Glance: the ones tagged 'image'
# (@utils.services('image')), and VolumesExtendTest.test_volume_extend,
# which creates its volume from CONF.compute.image_ref without the tag.
GLANCE_TESTS_RE='\[([^]]*,)?image(,[^]]*)?\]|^tempest\.api\.volume\.test_volumes_extend\.VolumesExtendTest\.test_volume_extend(\[|$)'

say() { echo "tempest: $*"; }
is_true() { case ${1,,} in 1|true|yes|on) return 0 ;; *) return 1 ;; esac; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }

install_venv() {
    local t0 stamp pins=none
    t0=$(now)
    [ "$PINS" = none ] || pins=$(sha256sum < "$PINS" | cut -c1-16)
    stamp="tempest==$TEMPEST_VERSION stestr pins=$pins $("${PYTHON:-python3}" -V 2>&1)"
    [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" = "$stamp" ] && return 0
    mkdir -p "$(dirname "$VENV")"
    exec 8> "$VENV.lock"
    flock 8
    if [ "$(cat "$VENV/.clinker-stamp" 2>/dev/null)" != "$stamp" ]; then
        say "installing tempest==$TEMPEST_VERSION + stestr into $VENV"
        local args=(-q --disable-pip-version-check)
        [ "$PINS" = none ] || args+=(-c "$PINS")
        if ! { "${PYTHON:-python3}" -m venv --clear "$VENV" &&
               "$VENV/bin/pip" install "${args[@]}" "tempest==$TEMPEST_VERSION" stestr; }; then
            echo "tempest: error: cannot install the venv $VENV" >&2
            exit 69
        fi
        echo "$stamp" > "$VENV/.clinker-stamp"
        say "installed in $(since "$t0") s"
    fi
    exec 8>&-
}

[ $# -ge 1 ] || usage
if [ "$1" = --install-only ]; then install_venv; say "venv ready: $VENV"; exit 0; fi
case $1 in -*) usage ;; esac
KEYSTONE_URL=${1%/}
REGEX=${2:-$DEFAULT_REGEX}
T_START=$(now)
install_venv
T_INSTALLED=$(now)

OUT=${OUT_DIR:-tempest-run-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT" || exit 64
OUT=$(cd "$OUT" && pwd)
if [ -n "$(ls -A "$OUT")" ]; then
    echo "tempest: error: $OUT is not empty; choose another OUT_DIR" >&2
    exit 64
fi
cd "$OUT" || exit 64
mkdir -p etc locks

# Runs against one Keystone share its accounts: one at a time.
LOCK=${TMPDIR:-/tmp}/clinker-tempest-$(printf '%s' "${KEYSTONE_URL%/v3}" | sha256sum | cut -c1-12).lock
exec 9> "$LOCK"
if ! flock -n 9; then
    say "waiting for another run against $KEYSTONE_URL ($LOCK)"
    flock -w "${TEMPEST_LOCK_WAIT:-7200}" 9 || { echo "tempest: error: lock wait timed out" >&2; exit 75; }
fi

# stestr needs its own config (the same one `tempest run` would write) and
# a repository before it can list tests.
T_LIST=$(now)
PKG=$("$VENV/bin/python" -c 'import os, tempest; print(os.path.dirname(tempest.__file__))')
printf '[DEFAULT]\ntest_path=%s/test_discover\ntop_dir=%s\ngroup_regex=([^\\.]*\\.)*\n' "$PKG" "$PKG" > .stestr.conf
"$VENV/bin/stestr" init >/dev/null
printf '[DEFAULT]\nlog_dir = %s\nlog_file = list.log\n' "$OUT" > etc/list.conf
TEMPEST_CONFIG_DIR=$OUT/etc TEMPEST_CONFIG=list.conf "$VENV/bin/stestr" list "$REGEX" \
    2> list-errors.txt | grep '^[A-Za-z_]' | sort > tests.txt
rm -f etc/list.conf list.log
if [ ! -s tests.txt ]; then
    echo "tempest: error: no test matches '$REGEX'" >&2
    sed 's/^/  /' list-errors.txt >&2
    echo "0 passed, 0 failed, 0 skipped"
    exit 2
fi
LIST_SECONDS=$(since "$T_LIST")
say "$(wc -l < tests.txt) tests match '$REGEX' (listed in $LIST_SECONDS s)"

: > excluded.txt
if is_true "${GLANCE_WORKAROUND:-True}"; then
    grep -E "$GLANCE_TESTS_RE" tests.txt | sed 's/$/ | excluded: needs Glance (GLANCE_WORKAROUND)/' >> excluded.txt
fi
if [ -n "${TEMPEST_EXCLUDE_REGEX:-}" ]; then
    grep -E "$TEMPEST_EXCLUDE_REGEX" tests.txt | sed 's/$/ | excluded: TEMPEST_EXCLUDE_REGEX/' >> excluded.txt
fi
sed 's/ | .*//' excluded.txt | sort -u > .excluded-ids
comm -23 tests.txt .excluded-ids > to-run.txt
rm -f .excluded-ids
say "$(wc -l < excluded.txt) left out (reported as skip), $(wc -l < to-run.txt) to run"

say "discovery through $KEYSTONE_URL"
T_DISC=$(now)
"$VENV/bin/python" "$SCRIPTS/tempest/configure.py" "$KEYSTONE_URL" "$OUT" 2>&1 | tee discovery.log | sed 's/^configure: /tempest: /'
disc_rc=${PIPESTATUS[0]}
T_DISC_END=$(now)

setting() { sed -n "s/^$1=//p" settings.txt 2>/dev/null; }
report() { # extra report.py arguments
    "$VENV/bin/python" "$SCRIPTS/tempest/report.py" --tests tests.txt \
        --excluded excluded.txt --out "$OUT" "$@" \
        --header "tempest $TEMPEST_VERSION, '$REGEX' through $KEYSTONE_URL; output in $OUT" \
        --header "volume endpoint $(setting VOLUME_ENDPOINT), server microversions $(setting SERVER_MIN_MICROVERSION)..$(setting SERVER_MAX_MICROVERSION), backends $(setting VOLUME_BACKEND_NAMES)" \
        --header "timing: venv $(awk -v a="$T_START" -v b="$T_INSTALLED" 'BEGIN{printf "%.1f", b-a}') s, test listing $LIST_SECONDS s, discovery $(awk -v a="$T_DISC" -v b="$T_DISC_END" 'BEGIN{printf "%.1f", b-a}') s, tempest run ${RUN_SECONDS:-0} s, total $(since "$T_START") s"
}

if [ "$disc_rc" -ne 0 ]; then
    [ "$disc_rc" -eq 2 ] || echo "configure: crashed (exit $disc_rc)" > discovery-error.txt
    say "the deployment is unusable; every selected test counts as failed"
    report --missing-reason "not run: $(cat discovery-error.txt 2>/dev/null || echo discovery failed)"
    exit 2
fi

CONCURRENCY=${CONCURRENCY:-1}
rc=0
if [ -s to-run.txt ]; then
    say "tempest run: $(wc -l < to-run.txt) tests, concurrency $CONCURRENCY (console: $OUT/console.log)"
    T_RUN=$(now)
    # one line per test (or per class-level result) as it finishes, so a
    # slow or hanging test shows in CI's log; TEMPEST_QUIET=1 hides them
    "$VENV/bin/tempest" run --config-file "$OUT/etc/tempest.conf" \
        --load-list to-run.txt --concurrency "$CONCURRENCY" 2>&1 | tee console.log |
        if is_true "${TEMPEST_QUIET:-0}"; then cat > /dev/null; else
            grep --line-buffered -E '^\{[0-9]+\} ' | sed -u 's/^{[0-9]*} /  /'; fi
    rc=${PIPESTATUS[0]}
    RUN_SECONDS=$(since "$T_RUN")
    say "tempest run finished in $RUN_SECONDS s (exit $rc)"
    "$VENV/bin/stestr" last --subunit > results.subunit 2>/dev/null || true
else
    : > results.subunit
fi
report --stream results.subunit \
    --missing-reason "no result: not run (tempest run exit $rc; see console.log)"
failed=$(grep -c ' fail$' outcomes.txt)
[ "$failed" -eq 0 ] || exit 1
exit 0
