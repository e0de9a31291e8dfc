#!/usr/bin/env python3
"""The `openstack` client tour: a scripted block-storage session against
Clinker through Keystone password authentication.

usage: tour.py --cli OPENSTACK --nova-port PORT --openrc USER=FILE...

  --cli        the `openstack` executable (python-openstackclient)
  --nova-port  the port of the compute endpoint in the Keystone catalog:
               this script serves a stand-in Compute API there (see
               FakeNova) for the commands that look a server up
  --openrc     `scripts/keystone.sh openrc USER` output for admin, demo and
               alt_demo (the `export OS_...` lines)
  --image-id   a public image in the catalog's Glance: the image steps
               (image_steps.py) create a volume from it, check the boot
               volume and upload it to a new image

Every step runs real `openstack` commands, each with its own password
login, and checks what they print (statuses reached, fields present and
right), not only their exit codes.  A failed check stops the tour with the
step's name, the command and its output; what the tour created is then
deleted on a best-effort basis.  Prints one timing line per step and
finally "osc tour: N steps passed".  Exit status 0 only when all passed.

Standard library only: any python3 (>= 3.8) runs it.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How long a resource may take to reach a status (file backend: well
# under a second; the slack is for a busy CI machine).
WAIT_SECONDS = float(os.environ.get('OSC_TOUR_WAIT', '90'))
# Microversions for the attachments API: 3.27 brings it, 3.44 `complete`,
# 3.54 the attach `mode`.
ATTACH_MV = '3.54'


class TourFailure(Exception):
    """A check failed: the message says what, `output` what was printed."""

    def __init__(self, message, command=None, output=''):
        super().__init__(message)
        self.command = command
        self.output = output


# --- the stand-in Compute API ----------------------------------------------

class FakeNova:
    """The few Compute API answers the tour needs, on 127.0.0.1:PORT/v2.1.

    `openstack volume attachment create` resolves its --server through the
    Compute API (GET /servers/{id}), `limits show` also asks Compute for its
    limits, and Clinker, like Cinder (`attachment_deletion_allowed`), asks
    Compute whether a server still uses a volume before a user may delete a
    connected attachment (GET /servers/{id}/os-volume_attachments/{volume}).
    This stand-in knows one server, which has no volumes attached through
    Compute: the tour attaches behind Compute's back, exactly what the
    attachment commands are for.  Every request is recorded, so the tour can
    check that Clinker really asked.
    """

    def __init__(self, port):
        self.server_id = str(uuid.uuid4())
        self.requests = []
        nova = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tour prints its own lines
                pass

            def do_GET(self):
                nova.requests.append((self.path, self.headers.get('X-Auth-Token')))
                status, body = nova.answer(self.path)
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.base = 'http://127.0.0.1:%d' % port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, raw_path):
        path = raw_path.split('?')[0].rstrip('/')
        version = {'id': 'v2.1', 'status': 'CURRENT', 'version': '2.96',
                   'min_version': '2.1', 'updated': '2013-07-23T11:33:21Z',
                   'links': [{'rel': 'self', 'href': self.base + '/v2.1/'}]}
        if path == '':
            return 200, {'versions': [version]}
        if path == '/v2.1':
            return 200, {'version': version}
        if path == '/v2.1/servers/' + self.server_id:
            return 200, {'server': {'id': self.server_id,
                                    'name': 'osc-tour-server',
                                    'status': 'ACTIVE'}}
        if path == '/v2.1/limits':
            return 200, {'limits': {'rate': [], 'absolute': {}}}
        return 404, {'itemNotFound': {'code': 404,
                                      'message': 'not found: ' + path}}

    def asked_about(self, fragment):
        return [p for p, _ in self.requests if fragment in p]

    def stop(self):
        self.httpd.shutdown()


# --- running the client ----------------------------------------------------

def read_openrc(path):
    env = {}
    with open(path) as fh:
        for line in fh:
            parts = shlex.split(line, comments=True)
            if len(parts) == 2 and parts[0] == 'export' and '=' in parts[1]:
                key, value = parts[1].split('=', 1)
                env[key] = value
    if 'OS_USERNAME' not in env:
        sys.exit('tour: %s has no OS_USERNAME' % path)
    return env


class Account:
    """One Keystone user; every command logs in with its password."""

    def __init__(self, cli, openrc):
        self.cli = cli
        self.name = openrc['OS_USERNAME']
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith('OS_')}
        self.env.update(openrc)
        self.commands = 0

    def run(self, *args, ok=True, volume_api=None):
        """Runs `openstack ARGS`; returns (exit status, stdout, stderr).
        With ok=True a non-zero exit status fails the step."""
        cmd = [self.cli]
        if volume_api:
            cmd += ['--os-volume-api-version', volume_api]
        cmd += [str(a) for a in args]
        shown = '[%s] openstack %s' % (self.name, ' '.join(
            shlex.quote(str(a)) for a in cmd[1:]))
        self.commands += 1
        proc = subprocess.run(cmd, env=self.env, capture_output=True,
                              text=True, timeout=300)
        if ok and proc.returncode != 0:
            raise TourFailure('exit status %d' % proc.returncode, shown,
                              proc.stdout + proc.stderr)
        self.last = (shown, proc.stdout + proc.stderr)
        return proc.returncode, proc.stdout, proc.stderr

    def json(self, *args, volume_api=None):
        """Runs `openstack ARGS -f json` and returns the parsed output."""
        _, out, _ = self.run(*args, '-f', 'json', volume_api=volume_api)
        try:
            return json.loads(out)
        except ValueError:
            raise TourFailure('output is not JSON', self.last[0], out)

    def fails(self, *args, expect, volume_api=None):
        """Runs a command that must fail with `expect` in its output."""
        code, out, err = self.run(*args, ok=False, volume_api=volume_api)
        if code == 0 or expect not in out + err:
            raise TourFailure('expected a failure saying %r' % expect,
                              self.last[0], out + err)
        return out + err


def check(condition, message, data=None):
    if not condition:
        output = '' if data is None else json.dumps(data, indent=1,
                                                    sort_keys=True)
        raise TourFailure(message, output=output)


def check_eq(data, key, want, what=None):
    have = data.get(key, '<absent>') if isinstance(data, dict) else data
    check(have == want, '%s: %s is %r, want %r' % (
        what or 'output', key, have, want), data)


def wait_for(account, kind, ident, want_status, extra=None):
    """Polls `openstack volume [snapshot] show` until the status is
    `want_status` and extra(shown) holds; an error status fails at once."""
    deadline = time.monotonic() + WAIT_SECONDS
    show = ('volume', 'show', ident) if kind == 'volume' else (
        'volume', 'snapshot', 'show', ident)
    delay = 0.2
    while True:
        shown = account.json(*show)
        status = shown.get('status')
        if status == want_status and (extra is None or extra(shown)):
            return shown
        if status and status.startswith('error') and \
                not want_status.startswith('error'):
            raise TourFailure('%s %s went to %s while waiting for %s' % (
                kind, ident, status, want_status), output=json.dumps(shown))
        if time.monotonic() > deadline:
            raise TourFailure('%s %s still %s after %.0f s (want %s)' % (
                kind, ident, status, WAIT_SECONDS, want_status),
                output=json.dumps(shown, indent=1))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def wait_gone(account, kind, ident):
    """Polls until `show` says the volume or snapshot does not exist."""
    deadline = time.monotonic() + WAIT_SECONDS
    show = ('volume', 'show', ident) if kind == 'volume' else (
        'volume', 'snapshot', 'show', ident)
    delay = 0.2
    while True:
        code, out, err = account.run(*show, '-f', 'json', ok=False)
        if code != 0:
            check(' found for ' in err,
                  '%s %s: show failed for another reason than absence: %s' % (
                      kind, ident, err.strip()))
            return
        status = json.loads(out).get('status')
        if status == 'error_deleting':
            raise TourFailure('%s %s went to error_deleting' % (kind, ident),
                              output=out)
        if time.monotonic() > deadline:
            raise TourFailure('%s %s still there (%s) after %.0f s' % (
                kind, ident, status, WAIT_SECONDS), output=out)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def wait_backup(account, ident, want_status):
    """Polls `openstack volume backup show` until the status is
    `want_status`; an error status fails at once."""
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.2
    while True:
        shown = account.json('volume', 'backup', 'show', ident)
        status = shown.get('status')
        if status == want_status:
            return shown
        if status and status.startswith('error'):
            raise TourFailure('backup %s went to %s while waiting for %s' % (
                ident, status, want_status), output=json.dumps(shown))
        if time.monotonic() > deadline:
            raise TourFailure('backup %s still %s after %.0f s (want %s)' % (
                ident, status, WAIT_SECONDS, want_status),
                output=json.dumps(shown, indent=1))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def wait_backup_gone(account, ident):
    """Polls until `volume backup show` says the backup does not exist."""
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.2
    while True:
        code, out, err = account.run('volume', 'backup', 'show', ident,
                                     '-f', 'json', ok=False)
        if code != 0:
            check('No backup' in err or ' found for ' in err,
                  'backup %s: show failed for another reason than absence: '
                  '%s' % (ident, err.strip()))
            return
        if time.monotonic() > deadline:
            raise TourFailure('backup %s still there after %.0f s' % (
                ident, WAIT_SECONDS), output=out)
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


# --- the tour --------------------------------------------------------------

# image_steps.py takes the helpers above from this module, also when it
# runs as a script
sys.modules.setdefault('tour', sys.modules[__name__])
from image_steps import ImageSteps  # noqa: E402


class Tour(ImageSteps):
    def __init__(self, admin, demo, alt, nova, image_id=None):
        self.admin, self.demo, self.alt, self.nova = admin, demo, alt, nova
        self.image_id = image_id
        self.tag = 'osc-tour-' + uuid.uuid4().hex[:8]
        self.ids = {}        # what exists, for the clean-up after a failure
        self.facts = {}

    def steps(self):
        return [
            ('identity: password logins', self.logins),
            ('volume service list', self.service_list),
            ('volume type create with extra specs', self.type_create),
            ('volume create with the type', self.volume_create),
            ('volume snapshot create', self.snapshot_create),
            ('volume create --source (clone of a volume)', self.clone_volume),
            ('volume create --snapshot (clone of a snapshot)', self.clone_snapshot),
            ('volume backup create (full, then --incremental)', self.backup_create),
            ('volume backup list / show', self.backup_show),
            ('volume backup restore (new volume, --force onto one)', self.backup_restore),
            ('volume create --backup (3.47)', self.volume_from_backup),
            ('volume backup delete', self.backup_delete),
            ('volume set --size (extend)', self.extend),
            ('volume attachment create (reserve)', self.attachment_create),
            ('volume attachment set (connect)', self.attachment_set),
            ('volume attachment complete', self.attachment_complete),
            ('volume attachment delete', self.attachment_delete),
            ('quota show / set', self.quotas),
            ('limits show', self.limits),
            ('volume transfer request create / accept', self.transfer),
            ('delete all', self.delete_all),
        ] + self.image_steps()

    # Each step raises TourFailure on the first wrong thing it sees.

    def logins(self):
        for account in (self.admin, self.demo, self.alt):
            token = account.json('token', 'issue')
            for key in ('id', 'project_id', 'user_id', 'expires'):
                check(token.get(key), '%s: token issue has no %s' % (
                    account.name, key), {k: v for k, v in token.items()
                                         if k != 'id'})
            self.facts[account.name + '_project'] = token['project_id']
        check(self.facts['demo_project'] != self.facts['alt_demo_project'],
              'demo and alt_demo share a project')
        # what demo and alt_demo use already (a reused deployment may hold
        # volumes): the usage checks count from here
        for account in (self.demo, self.alt):
            self.facts[account.name + '_usage'] = self.usage(account)

    def usage(self, account):
        rows = account.json('quota', 'show', '--volume', '--usage')
        check(isinstance(rows, list) and rows, 'quota show --usage: no rows',
              rows)
        return {row.get('Resource'): row for row in rows}

    def service_list(self):
        services = self.admin.json('volume', 'service', 'list')
        by_binary = {}
        for s in services:
            by_binary.setdefault(s.get('Binary'), []).append(s)
        for binary in ('cinder-scheduler', 'cinder-volume'):
            check(binary in by_binary, 'no %s in the service list' % binary,
                  services)
        for s in services:
            check(s.get('Status') == 'enabled' and s.get('State') == 'up',
                  '%s on %s is %s/%s' % (s.get('Binary'), s.get('Host'),
                                         s.get('Status'), s.get('State')),
                  services)
        for s in by_binary['cinder-volume']:
            check('@' in s.get('Host', ''), 'volume service host %r is not '
                  'host@backend' % s.get('Host'), services)
        # the backend the volume type will ask for, from the pool report
        pools = self.admin.json('volume', 'backend', 'pool', 'list', '--long')
        check(pools, 'no pools reported', pools)
        caps = pools[0].get('Capabilities') or {}
        check(caps.get('volume_backend_name'),
              'pool %s reports no volume_backend_name' % pools[0].get('Name'),
              pools)
        self.facts['backend'] = caps['volume_backend_name']

    def type_create(self):
        name = self.tag + '-type'
        specs = {'volume_backend_name': self.facts['backend'],
                 'osc_tour:purpose': 'client tour'}
        args = ['volume', 'type', 'create', '--description', 'osc tour',
                '--public']
        for k, v in specs.items():
            args += ['--property', '%s=%s' % (k, v)]
        created = self.admin.json(*args, name)
        self.ids['type'] = created.get('id')
        check_eq(created, 'name', name, 'type create')
        check_eq(created, 'properties', specs, 'type create')
        check_eq(created, 'is_public', True, 'type create')
        shown = self.admin.json('volume', 'type', 'show', name)
        check_eq(shown, 'id', created['id'], 'type show')
        check_eq(shown, 'properties', specs, 'type show')
        check_eq(shown, 'description', 'osc tour', 'type show')
        # a member sees the public type, without its extra specs (admin only)
        listed = self.demo.json('volume', 'type', 'list')
        check(any(t.get('Name') == name for t in listed),
              'demo does not see the public type %s' % name, listed)
        self.facts['type'] = name

    def volume_create(self):
        name = self.tag + '-vol'
        created = self.demo.json('volume', 'create', '--size', 1, '--type',
                                 self.facts['type'], '--description',
                                 'osc tour volume', '--property', 'tour=yes',
                                 name)
        self.ids['volume'] = created.get('id')
        check_eq(created, 'name', name, 'volume create')
        check_eq(created, 'size', 1, 'volume create')
        check_eq(created, 'type', self.facts['type'], 'volume create')
        check(created.get('status') in ('creating', 'available'),
              'volume create: status %r' % created.get('status'), created)
        shown = wait_for(self.demo, 'volume', created['id'], 'available')
        check_eq(shown, 'volume_type_id', self.ids['type'], 'volume show')
        check_eq(shown, 'properties', {'tour': 'yes'}, 'volume show')
        check_eq(shown, 'description', 'osc tour volume', 'volume show')
        check_eq(shown, 'os-vol-tenant-attr:tenant_id',
                 self.facts['demo_project'], 'volume show')
        check_eq(shown, 'attachments', [], 'volume show')

    def snapshot_create(self):
        name = self.tag + '-snap'
        created = self.demo.json('volume', 'snapshot', 'create', '--volume',
                                 self.ids['volume'], '--description',
                                 'osc tour snapshot', name)
        self.ids['snapshot'] = created.get('id')
        check_eq(created, 'volume_id', self.ids['volume'], 'snapshot create')
        shown = wait_for(self.demo, 'snapshot', created['id'], 'available')
        check_eq(shown, 'name', name, 'snapshot show')
        check_eq(shown, 'size', 1, 'snapshot show')
        check_eq(shown, 'description', 'osc tour snapshot', 'snapshot show')
        listed = self.demo.json('volume', 'snapshot', 'list')
        check(any(s.get('ID') == created['id'] and s.get('Status') ==
                  'available' for s in listed),
              'snapshot list lacks the available snapshot', listed)

    def clone_volume(self):
        created = self.demo.json('volume', 'create', '--source',
                                 self.ids['volume'], '--size', 1,
                                 self.tag + '-clone')
        self.ids['clone'] = created.get('id')
        shown = wait_for(self.demo, 'volume', created['id'], 'available')
        check_eq(shown, 'source_volid', self.ids['volume'], 'clone show')
        check_eq(shown, 'size', 1, 'clone show')
        check_eq(shown, 'type', self.facts['type'], 'clone show')

    def clone_snapshot(self):
        created = self.demo.json('volume', 'create', '--snapshot',
                                 self.ids['snapshot'], '--size', 2,
                                 self.tag + '-fromsnap')
        self.ids['fromsnap'] = created.get('id')
        shown = wait_for(self.demo, 'volume', created['id'], 'available')
        check_eq(shown, 'snapshot_id', self.ids['snapshot'], 'from-snapshot show')
        check_eq(shown, 'size', 2, 'from-snapshot show')
        check_eq(shown, 'type', self.facts['type'], 'from-snapshot show')

    # Backups: Cinder's cinder-backup, run inside `clinker serve`.

    def backup_create(self):
        full = self.demo.json('volume', 'backup', 'create', '--name',
                              self.tag + '-full', '--description',
                              'osc tour backup', self.ids['volume'])
        self.ids['backup_full'] = full.get('id')
        check_eq(full, 'name', self.tag + '-full', 'backup create')
        shown = wait_backup(self.demo, full['id'], 'available')
        check_eq(shown, 'is_incremental', False, 'backup show')
        wait_for(self.demo, 'volume', self.ids['volume'], 'available')
        incr = self.demo.json('volume', 'backup', 'create', '--incremental',
                              '--name', self.tag + '-incr', self.ids['volume'])
        self.ids['backup_incr'] = incr.get('id')
        shown = wait_backup(self.demo, incr['id'], 'available')
        check_eq(shown, 'is_incremental', True, 'incremental backup show')
        wait_for(self.demo, 'volume', self.ids['volume'], 'available')

    def backup_show(self):
        listed = self.demo.json('volume', 'backup', 'list')
        mine = {b.get('ID'): b for b in listed}
        for key in ('backup_full', 'backup_incr'):
            check(mine.get(self.ids[key], {}).get('Status') == 'available',
                  'backup list lacks the available %s' % key, listed)
        shown = self.demo.json('volume', 'backup', 'show',
                               self.ids['backup_full'])
        check_eq(shown, 'volume_id', self.ids['volume'], 'backup show')
        check_eq(shown, 'size', 1, 'backup show')
        check_eq(shown, 'description', 'osc tour backup', 'backup show')
        check_eq(shown, 'has_dependent_backups', True, 'backup show')
        # the parent cannot go while the incremental one depends on it
        self.demo.fails('volume', 'backup', 'delete', self.ids['backup_full'],
                        expect='Incremental backups exist')

    def backup_restore(self):
        restored = self.demo.json('volume', 'backup', 'restore',
                                  self.ids['backup_incr'],
                                  self.tag + '-restored')
        self.ids['restored'] = restored.get('volume_id')
        # the SDK shows the restore's backup_id as `id`
        check_eq(restored, 'id', self.ids['backup_incr'], 'backup restore')
        check_eq(restored, 'volume_name', self.tag + '-restored',
                 'backup restore')
        shown = wait_for(self.demo, 'volume', restored['volume_id'],
                         'available')
        check_eq(shown, 'size', 1, 'restored volume show')
        # the source's metadata comes back with the data
        check(shown.get('properties', {}).get('tour') == 'yes',
              'restored volume lacks the source volume\'s properties', shown)
        wait_backup(self.demo, self.ids['backup_incr'], 'available')
        # onto an existing volume: refused without --force
        self.demo.fails('volume', 'backup', 'restore',
                        self.ids['backup_full'], self.ids['clone'],
                        expect='--force')
        self.demo.json('volume', 'backup', 'restore', '--force',
                       self.ids['backup_full'], self.ids['clone'])
        wait_backup(self.demo, self.ids['backup_full'], 'available')
        wait_for(self.demo, 'volume', self.ids['clone'], 'available')

    def volume_from_backup(self):
        made = self.demo.json('volume', 'create', '--backup',
                              self.ids['backup_full'],
                              self.tag + '-from-backup', volume_api='3.47')
        self.ids['from_backup'] = made.get('id')
        check_eq(made, 'size', 1, 'volume create --backup')
        shown = wait_for(self.demo, 'volume', made['id'], 'available')
        check(shown.get('properties', {}).get('src_backup_id')
              == self.ids['backup_full'],
              'the volume created from a backup lacks src_backup_id', shown)
        wait_backup(self.demo, self.ids['backup_full'], 'available')
        self.demo.run('volume', 'delete', self.ids['from_backup'])
        wait_gone(self.demo, 'volume', self.ids.pop('from_backup'))

    def backup_delete(self):
        for key in ('backup_incr', 'backup_full'):
            self.demo.run('volume', 'backup', 'delete', self.ids[key])
            wait_backup_gone(self.demo, self.ids.pop(key))
        self.demo.run('volume', 'delete', self.ids['restored'])
        wait_gone(self.demo, 'volume', self.ids.pop('restored'))
        usage = self.usage(self.demo)
        base = self.facts['demo_usage']
        for key in ('backups', 'backup_gigabytes'):
            if key in usage and key in base:
                check(usage[key]['In Use'] == base[key]['In Use'],
                      'demo: %s in use is %r after deleting the backups, '
                      'was %r' % (key, usage[key]['In Use'],
                                  base[key]['In Use']), list(usage.values()))

    def extend(self):
        self.demo.run('volume', 'set', '--size', 3, self.ids['volume'])
        shown = wait_for(self.demo, 'volume', self.ids['volume'], 'available',
                         extra=lambda v: v.get('size') == 3)
        check_eq(shown, 'size', 3, 'volume show after extend')

    def attachment_create(self):
        created = self.demo.json('volume', 'attachment', 'create', '--server',
                                 self.nova.server_id, '--mode', 'rw',
                                 self.ids['volume'], volume_api=ATTACH_MV)
        self.ids['attachment'] = created.get('ID')
        check_eq(created, 'Volume ID', self.ids['volume'], 'attachment create')
        check_eq(created, 'Instance ID', self.nova.server_id,
                 'attachment create')
        check_eq(created, 'Status', 'reserved', 'attachment create')
        check_eq(created, 'Attach Mode', 'rw', 'attachment create')
        check(not created.get('Properties'), 'a reservation has no '
              'connection info', created)
        check(self.nova.asked_about('/servers/' + self.nova.server_id),
              'the client never looked the server up in Compute')
        shown = self.demo.json('volume', 'show', self.ids['volume'])
        check_eq(shown, 'status', 'reserved', 'volume show')

    def attachment_set(self):
        updated = self.demo.json(
            'volume', 'attachment', 'set', '--host', 'osc-tour-host',
            '--ip', '192.0.2.10', '--initiator',
            'iqn.1993-08.org.debian:01:osctour', '--platform', 'x86_64',
            '--os-type', 'linux2', '--mountpoint', '/dev/vdb',
            self.ids['attachment'], volume_api=ATTACH_MV)
        check_eq(updated, 'ID', self.ids['attachment'], 'attachment set')
        check_eq(updated, 'Status', 'attaching', 'attachment set')
        info = updated.get('Properties') or {}
        check(info.get('driver_volume_type'), 'attachment set returned no '
              'connection info (driver_volume_type)', updated)
        check_eq(info, 'attachment_id', self.ids['attachment'],
                 'connection info')
        shown = self.demo.json('volume', 'show', self.ids['volume'])
        check_eq(shown, 'status', 'attaching', 'volume show')

    def attachment_complete(self):
        self.demo.run('volume', 'attachment', 'complete',
                      self.ids['attachment'], volume_api=ATTACH_MV)
        listed = self.demo.json('volume', 'attachment', 'list',
                                volume_api=ATTACH_MV)
        mine = [a for a in listed if a.get('ID') == self.ids['attachment']]
        check(len(mine) == 1, 'attachment list lacks the attachment', listed)
        check_eq(mine[0], 'Status', 'attached', 'attachment list')
        check_eq(mine[0], 'Server ID', self.nova.server_id, 'attachment list')
        shown = self.demo.json('volume', 'show', self.ids['volume'])
        check_eq(shown, 'status', 'in-use', 'volume show')
        atts = shown.get('attachments') or []
        check(len(atts) == 1, 'volume show: want one attachment', shown)
        check_eq(atts[0], 'attachment_id', self.ids['attachment'],
                 'volume attachments')
        check_eq(atts[0], 'server_id', self.nova.server_id,
                 'volume attachments')
        check_eq(atts[0], 'device', '/dev/vdb', 'volume attachments')
        # an attached volume cannot be deleted
        self.demo.fails('volume', 'delete', self.ids['volume'],
                        expect='Invalid volume')

    def attachment_delete(self):
        asked_before = len(self.nova.asked_about('/os-volume_attachments/'))
        self.demo.run('volume', 'attachment', 'delete',
                      self.ids['attachment'], volume_api=ATTACH_MV)
        # Clinker asked Compute whether the server still uses the volume
        # (CVE-2023-2088) before letting a user delete a connected
        # attachment; this server does not.
        asked = self.nova.asked_about('/servers/%s/os-volume_attachments/%s'
                                      % (self.nova.server_id,
                                         self.ids['volume']))
        check(len(asked) > asked_before and asked,
              'Clinker deleted a connected attachment without asking Compute')
        del self.ids['attachment']
        listed = self.demo.json('volume', 'attachment', 'list',
                                volume_api=ATTACH_MV)
        check(not [a for a in listed if a.get('Volume ID') ==
                   self.ids['volume']],
              'attachment list still shows the volume', listed)
        shown = self.demo.json('volume', 'show', self.ids['volume'])
        check_eq(shown, 'status', 'available', 'volume show after detach')
        check_eq(shown, 'attachments', [], 'volume show after detach')

    def quotas(self):
        project = self.facts['demo_project']
        base = self.facts['demo_usage']
        rows = self.admin.json('quota', 'show', '--volume', project)
        before = {row.get('Resource'): row.get('Limit') for row in rows}
        type_key = 'volumes_' + self.facts['type']
        for key in ('volumes', 'snapshots', 'gigabytes',
                    'per-volume-gigabytes', type_key):
            check(key in before, 'quota show has no %s' % key, rows)
        self.facts['default_quota'] = before
        # new limits above what demo used before the tour
        limits = {key: base[key]['In Use'] + room for key, room in
                  (('volumes', 17), ('gigabytes', 170), ('snapshots', 9))}
        self.facts['limits'] = limits
        self.admin.run('quota', 'set', '--volumes', limits['volumes'],
                       '--gigabytes', limits['gigabytes'], '--snapshots',
                       limits['snapshots'], project)
        rows = self.admin.json('quota', 'show', '--volume', project)
        after = {row.get('Resource'): row.get('Limit') for row in rows}
        for key, want in limits.items():
            check_eq(after, key, want, 'quota show after set')
        # usage: volume (3 GiB), clone (1 GiB), from snapshot (2 GiB) and
        # one snapshot (1 GiB: snapshots count in gigabytes too)
        usage = self.usage(self.demo)
        for resource, added in (('volumes', 3), ('gigabytes', 7),
                                ('snapshots', 1), (type_key, 3)):
            row = usage.get(resource)
            check(row is not None, 'quota show --usage has no %s' % resource,
                  list(usage.values()))
            check_eq(row, 'In Use', base.get(resource, {}).get('In Use', 0)
                     + added, 'quota usage of ' + resource)
            if resource in limits:
                check_eq(row, 'Limit', limits[resource],
                         'quota usage of ' + resource)
        # demo is a member, not an admin: it may not change its quota
        self.demo.fails('quota', 'set', '--volumes', 100, project,
                        expect='403')

    def limits(self):
        base = self.facts['demo_usage']
        limits = self.facts['limits']
        want = {'max_total_volumes': limits['volumes'],
                'max_total_volume_gigabytes': limits['gigabytes'],
                'max_total_snapshots': limits['snapshots'],
                'total_volumes_used': base['volumes']['In Use'] + 3,
                'total_gigabytes_used': base['gigabytes']['In Use'] + 7,
                'total_snapshots_used': base['snapshots']['In Use'] + 1}
        shown = self.demo.json('limits', 'show', '--absolute')
        values = {row.get('Name'): row.get('Value') for row in shown}
        for name, value in want.items():
            check(values.get(name) == value, 'limits show: %s is %r, want %r'
                  % (name, values.get(name), value), shown)
        # back to the defaults, and the admin's view of another project
        project = self.facts['demo_project']
        self.admin.run('quota', 'delete', '--volume', project)
        rows = self.admin.json('quota', 'show', '--volume', project)
        restored = {row.get('Resource'): row.get('Limit') for row in rows}
        for key in ('volumes', 'gigabytes', 'snapshots'):
            check_eq(restored, key, self.facts['default_quota'][key],
                     'quota show after quota delete')
        as_admin = self.admin.json('limits', 'show', '--absolute',
                                   '--project', project)
        values = {row.get('Name'): row.get('Value') for row in as_admin}
        check(values.get('total_volumes_used') == want['total_volumes_used'],
              'limits show --project: total_volumes_used is %r, want %r' % (
                  values.get('total_volumes_used'), want['total_volumes_used']),
              as_admin)

    def transfer(self):
        clone = self.ids['clone']
        created = self.demo.json('volume', 'transfer', 'request', 'create',
                                 '--name', self.tag + '-transfer', clone)
        self.ids['transfer'] = created.get('id')
        check_eq(created, 'volume_id', clone, 'transfer request create')
        check(created.get('auth_key'), 'no auth_key in the transfer', created)
        shown = self.demo.json('volume', 'show', clone)
        check_eq(shown, 'status', 'awaiting-transfer', 'volume show')
        listed = self.demo.json('volume', 'transfer', 'request', 'list')
        check(any(t.get('ID') == created['id'] for t in listed),
              'transfer request list lacks the transfer', listed)
        # a wrong key is refused and changes nothing
        self.alt.fails('volume', 'transfer', 'request', 'accept',
                       '--auth-key', 'not-the-key', created['id'],
                       expect='Invalid auth key')
        accepted = self.alt.json('volume', 'transfer', 'request', 'accept',
                                 '--auth-key', created['auth_key'],
                                 created['id'])
        del self.ids['transfer']
        check_eq(accepted, 'volume_id', clone, 'transfer accept')
        check_eq(accepted, 'id', created['id'], 'transfer accept')
        self.ids['alt_clone'] = self.ids.pop('clone')
        taken = self.alt.json('volume', 'show', clone)
        check_eq(taken, 'status', 'available', 'volume show as alt_demo')
        check_eq(taken, 'os-vol-tenant-attr:tenant_id',
                 self.facts['alt_demo_project'], 'volume show as alt_demo')
        check_eq(taken, 'user_id', self.alt_user_id(), 'volume show as alt_demo')
        self.demo.fails('volume', 'show', clone, expect='No Volume found')
        as_admin = self.admin.json('volume', 'show', clone)
        check_eq(as_admin, 'os-vol-tenant-attr:tenant_id',
                 self.facts['alt_demo_project'], 'volume show as admin')

    def alt_user_id(self):
        return self.alt.json('token', 'issue')['user_id']

    def delete_all(self):
        self.alt.run('volume', 'delete', self.ids['alt_clone'])
        self.demo.run('volume', 'delete', self.ids['fromsnap'])
        # the volume has a snapshot: refused until the snapshot is gone
        self.demo.fails('volume', 'delete', self.ids['volume'],
                        expect='Invalid volume')
        self.demo.run('volume', 'snapshot', 'delete', self.ids['snapshot'])
        wait_gone(self.demo, 'snapshot', self.ids.pop('snapshot'))
        self.demo.run('volume', 'delete', self.ids['volume'])
        for account, key in ((self.alt, 'alt_clone'), (self.demo, 'fromsnap'),
                             (self.demo, 'volume')):
            wait_gone(account, 'volume', self.ids.pop(key))
        self.admin.run('volume', 'type', 'delete', self.facts['type'])
        del self.ids['type']
        self.admin.fails('volume', 'type', 'show', self.facts['type'],
                         expect='No Type found')
        # nothing of the tour is left, and the usage is back where it was
        for account in (self.demo, self.alt):
            left = [v for v in account.json('volume', 'list')
                    if (v.get('Name') or '').startswith(self.tag)]
            check(not left, '%s still lists tour volumes' % account.name, left)
            base = self.facts[account.name + '_usage']
            now = self.usage(account)
            for key in ('volumes', 'gigabytes', 'snapshots'):
                check(now[key]['In Use'] == base[key]['In Use'],
                      '%s: %s in use is %r after deleting all, was %r' % (
                          account.name, key, now[key]['In Use'],
                          base[key]['In Use']), list(now.values()))

    def clean_up(self):
        """After a failure: remove what is left, ignoring errors, so a
        reused deployment is not littered."""
        ids = self.ids
        self.image_clean_up()
        for key in ('backup_incr', 'backup_full'):
            if key in ids:
                self.admin.run('volume', 'backup', 'delete', '--force',
                               ids[key], ok=False)
                time.sleep(1)
        if 'restored' in ids:
            self.admin.run('volume', 'delete', '--force', ids['restored'],
                           ok=False)
        if 'attachment' in ids:
            self.admin.run('volume', 'attachment', 'delete', ids['attachment'],
                           ok=False, volume_api=ATTACH_MV)
        if 'transfer' in ids:
            self.demo.run('volume', 'transfer', 'request', 'delete',
                          ids['transfer'], ok=False)
        for key in ('fromsnap', 'clone', 'alt_clone'):
            if key in ids:
                self.admin.run('volume', 'delete', '--force', ids[key], ok=False)
        if 'snapshot' in ids:
            self.admin.run('volume', 'snapshot', 'delete', '--force',
                           ids['snapshot'], ok=False)
            time.sleep(1)
        if 'volume' in ids:
            self.admin.run('volume', 'delete', '--force', ids['volume'],
                           ok=False)
            time.sleep(1)
        if 'type' in ids:
            self.admin.run('volume', 'type', 'delete', ids['type'], ok=False)
        if 'default_quota' in self.facts:
            self.admin.run('quota', 'delete', '--volume',
                           self.facts['demo_project'], ok=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cli', required=True)
    parser.add_argument('--nova-port', type=int, required=True)
    parser.add_argument('--openrc', action='append', required=True,
                        metavar='USER=FILE')
    parser.add_argument('--image-id', help='a public Glance image: the '
                        'image steps (image_steps.py) run with it')
    args = parser.parse_args()
    rc = {}
    for item in args.openrc:
        user, _, path = item.partition('=')
        rc[user] = read_openrc(path)
    missing = {'admin', 'demo', 'alt_demo'} - set(rc)
    if missing:
        sys.exit('tour: --openrc missing for %s' % ', '.join(sorted(missing)))

    nova = FakeNova(args.nova_port)
    accounts = [Account(args.cli, rc[u]) for u in ('admin', 'demo', 'alt_demo')]
    tour = Tour(*accounts, nova, image_id=args.image_id)
    started = time.monotonic()
    passed = 0
    steps = tour.steps()
    for number, (name, step) in enumerate(steps, 1):
        t0 = time.monotonic()
        before = sum(a.commands for a in accounts)
        try:
            step()
        except (TourFailure, subprocess.TimeoutExpired) as exc:
            print('osc tour: step %d/%d FAILED: %s (%.1f s)' % (
                number, len(steps), name, time.monotonic() - t0), flush=True)
            print('  reason: %s' % exc)
            command = getattr(exc, 'command', None) or \
                getattr(exc, 'cmd', None)
            output = getattr(exc, 'output', None) or ''
            if command:
                print('  command: %s' % command)
            if output:
                print('  output:')
                for line in str(output).rstrip().splitlines():
                    print('    | ' + line)
            print('osc tour: cleaning up after the failure', flush=True)
            try:
                tour.clean_up()
            except Exception as cleanup_exc:  # best effort only
                print('osc tour: clean-up failed: %s' % cleanup_exc)
            nova.stop()
            print('osc tour: %d steps passed, step "%s" failed' % (passed, name))
            return 1
        commands = sum(a.commands for a in accounts) - before
        print('osc tour: step %2d/%d ok %6.1f s %3d commands  %s' % (
            number, len(steps), time.monotonic() - t0, commands, name),
            flush=True)
        passed += 1
    nova.stop()
    total = sum(a.commands for a in accounts)
    print('osc tour: %d openstack commands in %.1f s' % (
        total, time.monotonic() - started))
    print('osc tour: %d steps passed' % passed)
    return 0


if __name__ == '__main__':
    sys.exit(main())
