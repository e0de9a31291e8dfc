#!/usr/bin/env bash
# compare-tempest.sh - which tests pass in one Tempest run and not in another.
#
# usage: scripts/compare-tempest.sh A B
#
#   A, B  outcome files: "test_id pass|fail|skip" per line (outcomes.txt of
#         scripts/tempest.sh, or a reference file); lines starting with #
#         and blank lines are ignored; a "[id-...]" suffix on ids is ignored
#
# Prints the tests that pass in A but not in B (with B's outcome, or
# "absent"), then those that pass in B but not in A, then both files'
# counts.  Typical: A = the Cinder reference, B = a Clinker run:
#   scripts/compare-tempest.sh reference.txt tempest-run-*/outcomes.txt
# Exit status: 0 when both lists are empty, 1 when not, 64 on usage errors.
set -euo pipefail

if [ $# -ne 2 ] || [ ! -r "$1" ] || [ ! -r "$2" ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 64
fi

LC_ALL=C awk -v A="$1" -v B="$2" '
    function load(file, into,    line, n, f) {
        while ((getline line < file) > 0) {
            if (line ~ /^[ \t]*(#|$)/) continue
            n = split(line, f, /[ \t]+/)
            if (n < 2) continue
            sub(/\[.*$/, "", f[1])
            into[f[1]] = f[2]
        }
        close(file)
    }
    function count(arr, what,    t, c) {
        c = 0
        for (t in arr) if (arr[t] == what) c++
        return c
    }
    function only(xname, x, y, yname,    t, n, list, i, j, line) {
        n = 0
        # (t in y) first: merely reading y[t] would create it
        for (t in x) if (x[t] == "pass" && !((t in y) && y[t] == "pass")) list[++n] = t
        # insertion sort: the lists are a few hundred ids at most
        for (i = 2; i <= n; i++) {
            line = list[i]
            for (j = i - 1; j > 0 && list[j] > line; j--) list[j + 1] = list[j]
            list[j + 1] = line
        }
        printf "== pass in %s, not in %s: %d\n", xname, yname, n
        for (i = 1; i <= n; i++)
            printf "  %s  (%s: %s)\n", list[i], yname, (list[i] in y) ? y[list[i]] : "absent"
        return n
    }
    BEGIN {
        load(A, a); load(B, b)
        printf "A = %s\nB = %s\n", A, B
        d = only("A", a, b, "B")
        d += only("B", b, a, "A")
        printf "A: %d passed, %d failed, %d skipped\n", count(a, "pass"), count(a, "fail"), count(a, "skip")
        printf "B: %d passed, %d failed, %d skipped\n", count(b, "pass"), count(b, "fail"), count(b, "skip")
        exit (d > 0)
    }'
