#!/usr/bin/env python3
"""Discover a Keystone + Clinker (or Cinder) deployment and write Tempest's
configuration for it.

usage: configure.py KEYSTONE_URL OUT_DIR

Logs in as every pre-provisioned account (admin, demo, alt_demo,
demo_reader by default), finds the volume endpoint in the admin token's
catalog (type block-storage, else volumev3, else volume), reads the
server's microversion range from its unversioned root (GET /) and, as
admin, the pools' capabilities (GET scheduler-stats/get_pools?detail=true)
for storage_protocol, vendor_name and the backend names.  Then writes
OUT_DIR/etc/tempest.conf (from tempest.conf.in next to this file),
OUT_DIR/etc/accounts.yaml and OUT_DIR/settings.txt.

Every setting can be forced through the environment variable of the same
name (see scripts/tempest.sh); a forced value wins over discovery.
Exit status 0 when configured, 2 when the deployment is unusable (admin or
another account cannot log in, no volume endpoint); the reason is on
stderr and in OUT_DIR/discovery-error.txt.

Standard library only.
"""
import json
import os
import string
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 20
ENV = os.environ
DEFAULT_PASSWORD = ENV.get('KEYSTONE_PASSWORD') or 'secret'


class Unusable(Exception):
    """The deployment cannot run the tests; the message says why."""


def log(msg):
    print('configure: ' + msg, file=sys.stderr, flush=True)


def env(name, default=''):
    value = ENV.get(name)
    return default if value is None or value == '' else value


def flag(name, default):
    value = env(name, default).strip().lower()
    if value in ('1', 'true', 'yes', 'on'):
        return 'True'
    if value in ('0', 'false', 'no', 'off'):
        return 'False'
    raise SystemExit('configure: %s=%r is not a boolean' % (
        name, ENV.get(name)))


def http(method, url, body=None, token=None):
    """Returns (status, headers, parsed JSON or None); never raises for an
    HTTP status (a version document comes with 300 Multiple Choices)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, headers, parsed


def accounts():
    """The four pre-provisioned accounts Tempest gets, in file order.

    Order matters: Tempest hands out 'alt' as the first free non-admin
    account in file order, so alt_demo must come before demo_reader (else
    a class asking for alt before project_reader takes the reader and
    leaves no reader in the demo project)."""
    demo_project = env('DEMO_PROJECT', 'demo')
    return [
        {'key': 'demo', 'username': env('DEMO_USER', 'demo'),
         'project_name': demo_project,
         'password': env('DEMO_PASSWORD', DEFAULT_PASSWORD),
         'roles': ['member']},
        {'key': 'alt_demo', 'username': env('ALT_DEMO_USER', 'alt_demo'),
         'project_name': env('ALT_DEMO_PROJECT', 'alt_demo'),
         'password': env('ALT_DEMO_PASSWORD', DEFAULT_PASSWORD),
         'roles': ['member']},
        {'key': 'demo_reader',
         'username': env('DEMO_READER_USER', 'demo_reader'),
         'project_name': demo_project,
         'password': env('DEMO_READER_PASSWORD', DEFAULT_PASSWORD),
         'roles': ['reader']},
        {'key': 'admin', 'username': env('ADMIN_USER', 'admin'),
         'project_name': env('ADMIN_PROJECT', 'admin'),
         'password': env('ADMIN_PASSWORD', DEFAULT_PASSWORD),
         'roles': ['admin'], 'types': ['admin']},
    ]


def login(uri_v3, account, domain):
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': account['username'], 'password': account['password'],
            'domain': {'name': domain}}}},
        'scope': {'project': {'name': account['project_name'],
                              'domain': {'name': domain}}}}}
    status, headers, parsed = http('POST', uri_v3 + '/auth/tokens', body)
    if status != 201:
        detail = (parsed or {}).get('error', {}).get('message', '')
        raise Unusable('%s cannot log in to project %s at %s: HTTP %s %s' % (
            account['username'], account['project_name'], uri_v3, status,
            detail))
    return headers['X-Subject-Token'], parsed['token']


def find_endpoint(catalog, types, interface, region):
    for stype in types:
        for svc in catalog:
            if svc.get('type') != stype:
                continue
            eps = [e for e in svc.get('endpoints', [])
                   if e.get('interface') == interface]
            if region:
                eps = [e for e in eps if e.get('region_id') == region] or eps
            if eps:
                return stype, eps[0]['url'].rstrip('/'), eps[0].get(
                    'region_id') or eps[0].get('region') or ''
    return None, None, None


def version_range(endpoint):
    """min, max microversion of v3 from the unversioned root, or ('', '')."""
    parts = urllib.parse.urlsplit(endpoint)
    path = parts.path
    cut = path.find('/v3')
    root = urllib.parse.urlunsplit((parts.scheme, parts.netloc,
                                    (path[:cut] if cut >= 0 else '') + '/',
                                    '', ''))
    try:
        status, _, doc = http('GET', root)
    except OSError as exc:
        log('WARNING: GET %s failed: %s' % (root, exc))
        return '', ''
    versions = (doc or {}).get('versions') or []
    if isinstance(versions, dict):  # {"versions": {"values": [...]}}
        versions = versions.get('values', [])
    for v in versions:
        if str(v.get('id', '')).startswith('v3'):
            log('GET %s -> %s: %s %s, microversions %s..%s' % (
                root, status, v.get('id'), v.get('status'),
                v.get('min_version'), v.get('version')))
            return v.get('min_version') or '', v.get('version') or ''
    log('WARNING: GET %s -> HTTP %s without a v3 version' % (root, status))
    return '', ''


def pools(endpoint, token):
    """The pools' capabilities as seen by admin, or [] with a warning."""
    url = endpoint + '/scheduler-stats/get_pools?detail=true'
    try:
        status, _, body = http('GET', url, token=token)
    except OSError as exc:
        log('WARNING: GET %s failed: %s' % (url, exc))
        return []
    if status != 200:
        log('WARNING: GET %s -> HTTP %s; storage_protocol, vendor_name and '
            'backend_names keep their defaults' % (url, status))
        return []
    result = [p.get('capabilities') or {} for p in (body or {}).get(
        'pools', [])]
    log('get_pools: %d pool(s) %s' % (len(result), ', '.join(
        '%s/%s/%s' % (c.get('volume_backend_name'), c.get('storage_protocol'),
                      c.get('vendor_name')) for c in result)))
    return result


def discover(uri_v3, domain, settings):
    """Fills settings from the deployment; raises Unusable."""
    accts = accounts()
    admin = accts[-1]
    token, body = login(uri_v3, admin, domain)
    for acct in accts:
        if acct is admin:
            tok = body
        else:
            tok = login(uri_v3, acct, domain)[1]
        have = sorted(r['name'] for r in tok.get('roles', []))
        log('login ok: %s in %s, roles %s' % (acct['username'],
                                              acct['project_name'],
                                              ','.join(have)))
        if not set(acct['roles']) <= set(have):
            log('WARNING: %s lacks role(s) %s in %s' % (
                acct['username'], acct['roles'], acct['project_name']))
        settings['ROLES_' + acct['key'].upper()] = ','.join(have)

    forced_type = env('VOLUME_CATALOG_TYPE')
    types = [forced_type] if forced_type else [
        'block-storage', 'volumev3', 'volume']
    interface = env('VOLUME_ENDPOINT_TYPE', 'publicURL').replace('URL', '')
    stype, endpoint, region = find_endpoint(
        body.get('catalog', []), types, interface, env('REGION'))
    if not endpoint:
        raise Unusable('no %s endpoint of type %s in the catalog of %s' % (
            interface, ' or '.join(types), admin['username']))
    log('volume endpoint: %s %s %s (region %s)' % (stype, interface,
                                                   endpoint, region))
    settings.update(VOLUME_CATALOG_TYPE=stype, VOLUME_ENDPOINT=endpoint,
                    DISCOVERED_REGION=region)

    low, high = version_range(endpoint)
    settings.update(SERVER_MIN_MICROVERSION=low, SERVER_MAX_MICROVERSION=high)
    caps = pools(endpoint, token)
    if caps:
        proto = caps[0].get('storage_protocol') or ''
        if isinstance(proto, list):
            proto = proto[0] if proto else ''
        settings['DISCOVERED_STORAGE_PROTOCOL'] = proto
        settings['DISCOVERED_VENDOR_NAME'] = caps[0].get('vendor_name') or ''
        names = []
        for c in caps:
            name = c.get('volume_backend_name')
            if name and name not in names:
                names.append(name)
        settings['DISCOVERED_BACKEND_NAMES'] = ','.join(names)


def microversions(settings):
    """Tempest runs a test only if its microversion range overlaps
    [min_microversion, max_microversion]; with both unset it runs none of
    the microversioned tests.  max: the server's maximum, so tests needing
    more than Clinker offers are skipped rather than failed.  min: left
    unset when the server starts at 3.0 (then Tempest sends no version
    header unless a test needs one, as in the reference run)."""
    low = settings.get('SERVER_MIN_MICROVERSION', '')
    high = settings.get('SERVER_MAX_MICROVERSION', '')
    settings['VOLUME_MAX_MICROVERSION'] = env('VOLUME_MAX_MICROVERSION',
                                              high or 'latest')
    settings['VOLUME_MIN_MICROVERSION'] = env(
        'VOLUME_MIN_MICROVERSION', low if low not in ('', '3.0') else '')


def yaml_str(value):
    return json.dumps(str(value))  # a JSON string is a YAML string


def write_accounts(path, domain):
    lines = ['# Tempest pre-provisioned accounts, written by '
             'scripts/tempest/configure.py.',
             '# primary = demo (member), alt = alt_demo, project_reader = '
             'demo_reader (reader',
             '# in the primary\'s project), admin = admin.  Each is '
             'handed to one test class',
             '# at a time, so one set supports one worker '
             '(CONCURRENCY=1).', '']
    for acct in accounts():
        lines.append('- username: %s' % yaml_str(acct['username']))
        lines.append('  project_name: %s' % yaml_str(acct['project_name']))
        lines.append('  password: %s' % yaml_str(acct['password']))
        lines.append('  user_domain_name: %s' % yaml_str(domain))
        lines.append('  project_domain_name: %s' % yaml_str(domain))
        for key in ('roles', 'types'):
            if acct.get(key):
                lines.append('  %s: [%s]' % (key, ', '.join(
                    yaml_str(x) for x in acct[key])))
        lines.append('')
    old = os.umask(0o077)
    try:
        with open(path, 'w') as fh:
            fh.write('\n'.join(lines))
    finally:
        os.umask(old)


def render(template, out, values):
    with open(template) as fh:
        text = string.Template(fh.read()).substitute(values)
    rendered = []
    for line in text.splitlines():
        name, sep, value = line.partition(' = ')
        if sep and not name.startswith('#') and not value.strip():
            line = '# %s = (Tempest default)' % name
        elif line.endswith(' =') and not line.startswith('#'):
            line = '# %s (Tempest default)' % line
        rendered.append(line)
    with open(out, 'w') as fh:
        fh.write('\n'.join(rendered) + '\n')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root = sys.argv[1].rstrip('/')
    for suffix in ('/v3', '/v2.0'):
        if root.endswith(suffix):
            root = root[:-len(suffix)]
    uri_v3 = root + '/v3'
    out_dir = os.path.abspath(sys.argv[2])
    os.makedirs(os.path.join(out_dir, 'etc'), exist_ok=True)
    domain = env('DOMAIN', 'Default')
    settings = {}
    try:
        discover(uri_v3, domain, settings)
    except (Unusable, OSError) as exc:
        msg = str(exc) if isinstance(exc, Unusable) else \
            'cannot reach %s: %s' % (uri_v3, exc)
        log('ERROR: ' + msg)
        with open(os.path.join(out_dir, 'discovery-error.txt'), 'w') as fh:
            fh.write(msg + '\n')
        return 2
    microversions(settings)

    glance_workaround = flag('GLANCE_WORKAROUND', 'True')
    multi_backend = flag('VOLUME_FEATURE_MULTI_BACKEND', 'False')
    values = {
        'OUT_DIR': out_dir,
        'ACCOUNTS_FILE': os.path.join(out_dir, 'etc', 'accounts.yaml'),
        'DOMAIN': domain,
        'IDENTITY_URI_V3': uri_v3,
        'REGION': env('REGION', settings['DISCOVERED_REGION'] or 'RegionOne'),
        'TEMPEST_DEBUG': flag('TEMPEST_DEBUG', 'True'),
        # A real Glance (GLANCE_AVAILABLE=True) or the workaround's claim.
        'GLANCE_AVAILABLE': 'True' if 'True' in (
            glance_workaround, flag('GLANCE_AVAILABLE', 'False')) else 'False',
        'IMAGE_REF': env('TEMPEST_IMAGE_REF'),
        'NEUTRON_AVAILABLE': flag('NEUTRON_AVAILABLE', 'True'),
        'ENFORCE_SCOPE_CINDER': flag('ENFORCE_SCOPE_CINDER', 'True'),
        'VOLUME_CATALOG_TYPE': settings['VOLUME_CATALOG_TYPE'],
        'VOLUME_ENDPOINT_TYPE': env('VOLUME_ENDPOINT_TYPE', 'publicURL'),
        'VOLUME_REGION': env('VOLUME_REGION'),
        'VOLUME_MIN_MICROVERSION': settings['VOLUME_MIN_MICROVERSION'],
        'VOLUME_MAX_MICROVERSION': settings['VOLUME_MAX_MICROVERSION'],
        'VOLUME_STORAGE_PROTOCOL': env(
            'VOLUME_STORAGE_PROTOCOL',
            settings.get('DISCOVERED_STORAGE_PROTOCOL', '')),
        'VOLUME_VENDOR_NAME': env(
            'VOLUME_VENDOR_NAME', settings.get('DISCOVERED_VENDOR_NAME', '')),
        'VOLUME_BACKEND_NAMES': env(
            'VOLUME_BACKEND_NAMES',
            settings.get('DISCOVERED_BACKEND_NAMES', '')),
        'VOLUME_BACKUP_DRIVER': env('VOLUME_BACKUP_DRIVER'),
        'VOLUME_MANAGE_VOLUME_REF': env('VOLUME_MANAGE_VOLUME_REF'),
        'VOLUME_MANAGE_SNAPSHOT_REF': env('VOLUME_MANAGE_SNAPSHOT_REF'),
        'VOLUME_BUILD_TIMEOUT': env('VOLUME_BUILD_TIMEOUT', '120'),
        'VOLUME_BUILD_INTERVAL': env('VOLUME_BUILD_INTERVAL', '1'),
        'VOLUME_FEATURE_BACKUP': flag('VOLUME_FEATURE_BACKUP', 'False'),
        'VOLUME_FEATURE_MULTI_BACKEND': multi_backend,
        'VOLUME_FEATURE_MANAGE': flag('VOLUME_FEATURE_MANAGE', 'False'),
        'VOLUME_FEATURE_MULTIATTACH': flag('VOLUME_FEATURE_MULTIATTACH',
                                           'False'),
        'USE_DYNAMIC_CREDENTIALS': flag('TEMPEST_DYNAMIC_CREDENTIALS',
                                        'False'),
    }
    # Dynamic credentials: Tempest creates a project and users per test
    # class with the admin account (AbsoluteLimitsTests insists on them).
    admin = accounts()[-1]
    dynamic = values['USE_DYNAMIC_CREDENTIALS'] == 'True'
    values.update({
        'DYNAMIC_ADMIN_USERNAME': admin['username'] if dynamic else '',
        'DYNAMIC_ADMIN_PASSWORD': admin['password'] if dynamic else '',
        'DYNAMIC_ADMIN_PROJECT': admin['project_name'] if dynamic else '',
        'DYNAMIC_ADMIN_DOMAIN': domain if dynamic else '',
    })
    if multi_backend == 'True' and \
            len(set(values['VOLUME_BACKEND_NAMES'].split(','))) < 2:
        log('WARNING: VOLUME_FEATURE_MULTI_BACKEND=True but backend names '
            '%r: the multi-backend tests need two (set VOLUME_BACKEND_NAMES'
            '=a,b)' % values['VOLUME_BACKEND_NAMES'])

    render(os.path.join(HERE, 'tempest.conf.in'),
           os.path.join(out_dir, 'etc', 'tempest.conf'), values)
    write_accounts(values['ACCOUNTS_FILE'], domain)
    shown = dict(values)
    shown.update({k: v for k, v in settings.items() if k.startswith(
        ('SERVER_', 'ROLES_', 'VOLUME_ENDPOINT'))})
    with open(os.path.join(out_dir, 'settings.txt'), 'w') as fh:
        for key in sorted(shown):
            fh.write('%s=%s\n' % (key, shown[key]))
    log('tempest.conf: microversions %s..%s, storage_protocol %s, '
        'vendor_name %s, backend_names %s' % (
            values['VOLUME_MIN_MICROVERSION'] or '(unset)',
            values['VOLUME_MAX_MICROVERSION'],
            values['VOLUME_STORAGE_PROTOCOL'] or '(Tempest default)',
            values['VOLUME_VENDOR_NAME'] or '(Tempest default)',
            values['VOLUME_BACKEND_NAMES'] or '(Tempest default)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
