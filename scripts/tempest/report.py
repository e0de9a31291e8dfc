#!/usr/bin/env python3
"""Turn a Tempest (stestr) subunit v2 stream into one outcome per test.

usage: report.py --tests TESTS --out DIR [--stream RESULTS.subunit]
                 [--excluded EXCLUDED] [--missing-reason TEXT]
                 [--header TEXT]...

  TESTS      every selected test id, one per line (as `stestr list` prints
             them, with or without the "[id-...,tags]" suffix)
  EXCLUDED   lines "test_id | reason": selected but deliberately not run;
             reported as skip with that reason
  --missing-reason  the reason given to a selected test that has no result
             and no class-level result either (default: not run)

Writes into DIR:
  outcomes.txt  "test_id pass|fail|skip" for every selected test, sorted
  failures.txt  "test_id | error line" for every failed test; class-level
                cleanup failures (tearDownClass) as "# ..." lines
  summary.txt   counts, skip and failure reasons, the closing count line
and prints summary.txt.  Its last line is "N passed, N failed, N skipped".

A class whose setUpClass fails or skips (Tempest's skip_checks, missing
credentials, ...) reports one "setUpClass (module.Class)" entry and
nothing for its tests; that outcome is given to each of the class's tests.
xfail counts as pass, an unexpected success as fail.  Ids are written
without the "[...]" attribute suffix.

Needs python-subunit and testtools (both in the Tempest venv).
"""
import argparse
import collections
import os
import re
import sys

import subunit
import testtools

FIXTURE = re.compile(r'^(?P<kind>setUpClass|tearDownClass|setUpModule|'
                     r'tearDownModule) \((?P<owner>[^)]*)\)$')
FINAL = {'success': 'pass', 'xfail': 'pass', 'fail': 'fail',
         'uxsuccess': 'fail', 'skip': 'skip'}


def bare(test_id):
    return test_id.split('[', 1)[0].strip()


class Collector(testtools.StreamResult):
    """Keeps, per test id, its final status and its attachments."""

    def __init__(self):
        super().__init__()
        self.status_of = {}
        self.files = collections.defaultdict(
            lambda: collections.defaultdict(bytearray))

    def status(self, test_id=None, test_status=None, test_tags=None,
               runnable=True, file_name=None, file_bytes=None, eof=False,
               mime_type=None, route_code=None, timestamp=None):
        if test_id is None:
            return
        if file_name is not None and file_bytes:
            self.files[test_id][file_name].extend(file_bytes)
        if test_status in FINAL:
            self.status_of[test_id] = FINAL[test_status]

    def text(self, test_id, name):
        return bytes(self.files[test_id].get(name, b'')).decode(
            'utf-8', 'replace')


def read_stream(path):
    col = Collector()
    if path and os.path.exists(path) and os.path.getsize(path):
        with open(path, 'rb') as fh:
            parser = subunit.ByteStreamToStreamResult(
                fh, non_subunit_name='stdout')
            col.startTestRun()
            try:
                parser.run(col)
            finally:
                col.stopTestRun()
    return col


def error_line(traceback):
    """The exception a traceback ends with, on one line.

    Tempest's REST errors span lines ("NotFound: Object not found" then
    "Details: {...server message...}"): everything after the last stack
    frame is joined."""
    lines = [ln.rstrip() for ln in traceback.strip().splitlines()
             if ln.strip()]
    last_frame = max((i for i, ln in enumerate(lines)
                      if ln.lstrip().startswith('File "')), default=None)
    if last_frame is not None:
        tail = lines[last_frame + 1:]
        # skip the frame's source line(s): indented deeper than "File"
        while tail and tail[0].startswith('    '):
            tail = tail[1:]
    else:
        tail = lines[-2:]
    text = ' '.join(' '.join(ln.split()) for ln in tail)
    return (text or (lines[-1] if lines else 'no traceback'))[:500]


def reason(col, test_id, outcome):
    if outcome == 'skip':
        return ' '.join(col.text(test_id, 'reason').split())[:300] or \
            'skipped'
    return error_line(col.text(test_id, 'traceback'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tests', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--stream')
    ap.add_argument('--excluded')
    ap.add_argument('--missing-reason', default='no result: not run')
    ap.add_argument('--header', action='append', default=[])
    args = ap.parse_args()

    with open(args.tests) as fh:
        selected = sorted({bare(ln) for ln in fh
                           if ln.strip() and not ln.startswith('#')})
    excluded = {}
    if args.excluded and os.path.exists(args.excluded):
        with open(args.excluded) as fh:
            for ln in fh:
                if ln.strip():
                    tid, _, why = ln.partition(' | ')
                    excluded[bare(tid)] = why.strip() or 'excluded'

    col = read_stream(args.stream)
    own = {}                                   # bare id -> (outcome, reason)
    fixtures = collections.defaultdict(list)   # owner -> [(kind, outcome, why)]
    for test_id, outcome in col.status_of.items():
        m = FIXTURE.match(test_id)
        if m:
            fixtures[m.group('owner')].append(
                (m.group('kind'), outcome, reason(col, test_id, outcome)))
            continue
        tid = bare(test_id)
        # a test reported twice keeps its worst outcome
        if tid not in own or outcome == 'fail' or own[tid][0] == 'pass':
            own[tid] = (outcome, reason(col, test_id, outcome))

    outcomes = {}
    for tid in selected:
        if tid in own:
            outcomes[tid] = own[tid]
        elif tid in excluded:
            outcomes[tid] = ('skip', excluded[tid])
        else:
            owner = tid.rsplit('.', 1)[0]
            setup = [f for f in fixtures.get(owner, []) +
                     fixtures.get(owner.rsplit('.', 1)[0], [])
                     if f[0].startswith('setUp')]
            if setup:
                kind, outcome, why = setup[0]
                outcomes[tid] = (outcome, '%s: %s' % (kind, why))
            else:
                outcomes[tid] = ('fail', args.missing_reason)
    for tid, result in own.items():   # reported although not selected
        outcomes.setdefault(tid, result)
    cleanup = ['%s (%s): %s' % (kind, owner, why)
               for owner, items in sorted(fixtures.items())
               for kind, outcome, why in items
               if kind.startswith('tearDown') and outcome == 'fail']

    count = collections.Counter(o for o, _ in outcomes.values())
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'outcomes.txt'), 'w') as fh:
        for tid in sorted(outcomes):
            fh.write('%s %s\n' % (tid, outcomes[tid][0]))
    with open(os.path.join(args.out, 'failures.txt'), 'w') as fh:
        for tid in sorted(outcomes):
            if outcomes[tid][0] == 'fail':
                fh.write('%s | %s\n' % (tid, outcomes[tid][1]))
        for line in cleanup:
            fh.write('# class cleanup failed: %s\n' % line)

    out = list(args.header)
    out.append('selected %d tests: %d ran, %d excluded (reported as skip), '
               '%d class-level results' % (
                   len(selected), len(own), len(set(selected) &
                                                set(excluded) - set(own)),
                   sum(len(v) for v in fixtures.values())))
    for title, which in (('skip reasons', 'skip'),
                         ('failure reasons', 'fail')):
        reasons = collections.Counter(
            why for o, why in outcomes.values() if o == which)
        if reasons:
            out.append('%s (count: reason):' % title)
            out.extend('  %3d: %s' % (n, why[:200])
                       for why, n in reasons.most_common())
    if cleanup:
        out.append('class cleanup failures (tests keep their outcome):')
        out.extend('  ' + line[:300] for line in cleanup)
    out.append('%d passed, %d failed, %d skipped' % (
        count['pass'], count['fail'], count['skip']))
    with open(os.path.join(args.out, 'summary.txt'), 'w') as fh:
        fh.write('\n'.join(out) + '\n')
    print('\n'.join(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
