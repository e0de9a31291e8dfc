#!/usr/bin/env python3
"""Give a Keystone the accounts and catalog of a Clinker conformance run.

usage: keystone_provision.py [--changed FILE | --verify-only] KEYSTONE_URL VOLUME_URL

  KEYSTONE_URL  the Keystone root, e.g. http://127.0.0.1:5000
  VOLUME_URL    Clinker's root, e.g. http://127.0.0.1:8776; the volume
                endpoints become VOLUME_URL/v3/%(project_id)s

Idempotent: what exists is kept, what differs is corrected (endpoint URLs,
role grants, passwords), what is missing is created; --changed FILE
creates FILE when anything was changed (keystone.sh then restarts the
workers, whose caches may hold the old catalog).  Then, or alone with
--verify-only, every account logs in once and its roles and catalog are
checked, so a successful exit means the accounts really work.

KEYSTONE_COMPUTE_ENDPOINT, when set, adds a Compute service (type compute)
with that URL as its public, internal and admin endpoints: the openstack
client tour (scripts/osc-tour.sh) runs a stand-in Compute API there.
KEYSTONE_IMAGE_ENDPOINT, when set, adds an Image service (type image, name
glance) with that URL: the Glance scripts/glance.sh starts for Tempest's
image tests and the tour.

Passwords come from the environment (default: $KEYSTONE_PASSWORD, else
'secret'): ADMIN_PASSWORD (to log in as admin, set by bootstrap),
DEMO_PASSWORD, ALT_DEMO_PASSWORD, DEMO_READER_PASSWORD, SERVICE_PASSWORD
(the 'clinker' service user).  Region: KEYSTONE_REGION (RegionOne).

Standard library only, so any python3 can run it.
"""
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DOMAIN = 'default'
ROLES = ('admin', 'member', 'reader', 'service', 'manager')
PROJECTS = ('demo', 'alt_demo', 'service')
# user, its project, roles there, environment variable with its password
USERS = (
    ('demo', 'demo', ('member',), 'DEMO_PASSWORD'),
    ('alt_demo', 'alt_demo', ('member',), 'ALT_DEMO_PASSWORD'),
    ('demo_reader', 'demo', ('reader',), 'DEMO_READER_PASSWORD'),
    ('clinker', 'service', ('admin', 'service'), 'SERVICE_PASSWORD'),
)
# catalog type, service name; both point at the same Clinker
VOLUME_SERVICES = (('block-storage', 'cinder'), ('volumev3', 'cinderv3'))
INTERFACES = ('public', 'internal', 'admin')
# services added when their variable names a URL: variable, type, name,
# description
OPTIONAL_SERVICES = (
    ('KEYSTONE_COMPUTE_ENDPOINT', 'compute', 'nova', 'Compute (stand-in)'),
    ('KEYSTONE_IMAGE_ENDPOINT', 'image', 'glance', 'Image service (Glance)'),
)


def password(var):
    return os.environ.get(var) or os.environ.get('KEYSTONE_PASSWORD') or \
        'secret'


class ApiError(Exception):
    pass


class Keystone:
    def __init__(self, root):
        self.base = root.rstrip('/') + '/v3'
        self.token = None

    def request(self, method, path, body=None, token=True, ok=(200, 201, 204)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data,
                                     method=method)
        req.add_header('Accept', 'application/json')
        if data is not None:
            req.add_header('Content-Type', 'application/json')
        if token:
            req.add_header('X-Auth-Token', self.token)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, raw = exc.code, exc.headers, exc.read()
        if status not in ok:
            raise ApiError('%s %s -> HTTP %s %s' % (
                method, path, status, raw[:300].decode('utf-8', 'replace')))
        return status, headers, (json.loads(raw) if raw else {})

    def login(self, user, pw, project):
        """Returns (token id, token body) or raises ApiError."""
        auth = {'identity': {'methods': ['password'], 'password': {
            'user': {'name': user, 'domain': {'id': DOMAIN},
                     'password': pw}}}}
        if project:
            auth['scope'] = {'project': {'name': project,
                                         'domain': {'id': DOMAIN}}}
        _, headers, body = self.request('POST', '/auth/tokens',
                                        {'auth': auth}, token=False)
        return headers['X-Subject-Token'], body['token']

    def listing(self, collection, query=''):
        _, _, body = self.request('GET', '/%s%s' % (collection, query))
        return body[collection]

    def create(self, collection, fields):
        kind = collection[:-1]
        _, _, body = self.request('POST', '/' + collection, {kind: fields})
        say('created %s %s' % (kind, fields.get('name', '')))
        return body[kind]


CHANGES = []


def say(msg, change=True):
    if change:
        CHANGES.append(msg)
    print('provision: ' + msg, flush=True)


def by_key(items, key='name'):
    return {item[key]: item for item in items}


def sync_endpoints(ks, service, endpoints, url, region):
    by_iface = {}
    for ep in endpoints:
        if ep['service_id'] == service['id']:
            by_iface.setdefault(ep['interface'], []).append(ep)
    for iface in INTERFACES:
        have = by_iface.get(iface, [])
        for extra in have[1:]:
            ks.request('DELETE', '/endpoints/' + extra['id'])
        if not have:
            ks.request('POST', '/endpoints', {'endpoint': {
                'service_id': service['id'], 'interface': iface,
                'url': url, 'region_id': region, 'enabled': True}})
            say('endpoint %s %s = %s' % (service['type'], iface, url))
        elif have[0]['url'] != url or have[0].get('region_id') != region:
            ks.request('PATCH', '/endpoints/' + have[0]['id'], {'endpoint': {
                'url': url, 'region_id': region}})
            say('endpoint %s %s: %s -> %s' % (service['type'], iface,
                                              have[0]['url'], url))


def provision(ks, ks_url, volume_url, region):
    """Creates what is missing; one listing per kind of thing (each
    Keystone request costs tens of milliseconds)."""
    roles = by_key(ks.listing('roles'))
    for name in ROLES:
        if name not in roles:
            roles[name] = ks.create('roles', {'name': name})
    projects = by_key(ks.listing('projects', '?domain_id=' + DOMAIN))
    for name in PROJECTS:
        if name not in projects:
            projects[name] = ks.create('projects', {
                'name': name, 'domain_id': DOMAIN,
                'description': 'Clinker conformance'})
    users = by_key(ks.listing('users', '?domain_id=' + DOMAIN))
    for name, project, _, pw_var in USERS:
        if name not in users:
            users[name] = ks.create('users', {
                'name': name, 'domain_id': DOMAIN,
                'password': password(pw_var),
                'default_project_id': projects[project]['id']})
    granted = set()
    for a in ks.listing('role_assignments'):
        if 'user' in a and 'project' in a.get('scope', {}):
            granted.add((a['user']['id'], a['scope']['project']['id'],
                         a['role']['id']))
    for name, project, grants, _ in USERS:
        for role in grants:
            key = (users[name]['id'], projects[project]['id'],
                   roles[role]['id'])
            if key not in granted:
                ks.request('PUT', '/projects/%s/users/%s/roles/%s' % (
                    key[1], key[0], key[2]))
                say('granted %s on %s to %s' % (role, project, name))

    if region not in by_key(ks.listing('regions'), 'id'):
        ks.request('POST', '/regions', {'region': {'id': region}})
        say('created region %s' % region)
    services = ks.listing('services')
    endpoints = ks.listing('endpoints')
    for svc in services:
        if svc['type'] == 'identity':  # bootstrap's; the port may differ now
            sync_endpoints(ks, svc, endpoints, ks_url + '/v3', region)
    volume_ep = volume_url + '/v3/%(project_id)s'
    for stype, name in VOLUME_SERVICES:
        svc = next((s for s in services if s['type'] == stype), None)
        if svc is None:
            svc = ks.create('services', {
                'type': stype, 'name': name, 'enabled': True,
                'description': 'Block Storage (Clinker)'})
        sync_endpoints(ks, svc, endpoints, volume_ep, region)
    for var, stype, name, desc in OPTIONAL_SERVICES:
        url = os.environ.get(var, '').rstrip('/')
        if not url:
            continue
        svc = next((s for s in services if s['type'] == stype), None)
        if svc is None:
            svc = ks.create('services', {
                'type': stype, 'name': name, 'enabled': True,
                'description': desc})
        sync_endpoints(ks, svc, endpoints, url, region)
    return users


def verify(ks, users, region):
    """Log in as every account (resetting a password that differs from the
    wanted one); check its roles and the volume endpoints in its catalog."""
    accounts = [('admin', 'admin', ('admin',), 'ADMIN_PASSWORD')]
    accounts += list(USERS)
    problems = []
    for user, project, grants, pw_var in accounts:
        try:
            try:
                _, token = ks.login(user, password(pw_var), project)
            except ApiError:
                if user == 'admin':
                    raise
                ks.request('PATCH', '/users/' + users[user]['id'], {
                    'user': {'password': password(pw_var), 'enabled': True}})
                say('reset password of user %s' % user)
                _, token = ks.login(user, password(pw_var), project)
        except ApiError as exc:
            problems.append('%s cannot log in to %s: %s' % (user, project,
                                                            exc))
            continue
        have = sorted(r['name'] for r in token.get('roles', []))
        missing = [r for r in grants if r not in have]
        if missing:
            problems.append('%s on %s lacks roles %s (has %s)' % (
                user, project, missing, have))
        pid = token['project']['id']
        urls = {}
        for svc in token.get('catalog', []):
            for ep in svc['endpoints']:
                if ep['interface'] == 'public' and ep['region_id'] == region:
                    urls[svc['type']] = ep['url']
        for stype, _ in VOLUME_SERVICES:
            url = urls.get(stype, '')
            if not url.endswith('/v3/' + pid):
                problems.append('%s: catalog %s endpoint is %r, want '
                                '.../v3/%s' % (user, stype, url, pid))
        say('login ok: %-11s project %-8s roles %s' % (
            user, project, ','.join(have)), change=False)
    return problems


def main():
    args = sys.argv[1:]
    mode, changed_file = 'both', None
    if args[:1] == ['--verify-only']:
        mode, args = 'verify', args[1:]
    elif args[:1] == ['--changed'] and len(args) > 1:
        mode, changed_file, args = 'provision', args[1], args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    ks_url, volume_url = (a.rstrip('/') for a in args)
    region = os.environ.get('KEYSTONE_REGION') or 'RegionOne'
    ks = Keystone(ks_url)
    problems = []
    try:
        ks.token, _ = ks.login('admin', password('ADMIN_PASSWORD'), 'admin')
        if mode != 'verify':
            provision(ks, ks_url, volume_url, region)
            if changed_file and CHANGES:
                with open(changed_file, 'w') as fh:
                    fh.write('\n'.join(CHANGES) + '\n')
        if mode != 'provision':
            users = by_key(ks.listing('users', '?domain_id=' + DOMAIN))
            problems = verify(ks, users, region)
    except (ApiError, OSError) as exc:
        sys.exit('provision: FAILED: %s' % exc)
    for p in problems:
        print('provision: PROBLEM: ' + p, file=sys.stderr)
    if problems:
        sys.exit(1)
    if mode != 'provision':
        say('ok: every account logs in; volume endpoints %s/v3/'
            '%%(project_id)s in %s' % (volume_url, region), change=False)


if __name__ == '__main__':
    main()
