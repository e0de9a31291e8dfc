#!/usr/bin/env python3
"""A stand-in for `clinker serve` that tests the conformance harness itself.

usage: stub_volume_api.py --config-file FILE [--config-file FILE...] serve

Reads the options of Clinker's config that the harness writes ([DEFAULT]
osapi_volume_listen, osapi_volume_listen_port, auth_strategy and
[keystone_authtoken]) and answers only what discovery and a handful of
Tempest tests need:

  GET /                        300, the version document (v3.0, 3.0..3.71)
  GET /v3/                     200, the v3 version
  GET /v3/{project}/os-availability-zone, /extensions,
      /scheduler-stats/get_pools[?detail=true]
  anything else                404 itemNotFound

With auth_strategy = keystone every request except the version documents
needs an X-Auth-Token, checked the way Clinker will check it: as the
[keystone_authtoken] service user, GET {auth_url}/auth/tokens with the
token as X-Subject-Token (results cached 60 s).  An invalid token gets 401
with WWW-Authenticate, a token for another project than the URL's 403, and
get_pools needs the admin role.

So `CLINKER_BIN=scripts/tempest/stub_volume_api.py scripts/conformance.sh`
runs the whole harness (Keystone, accounts, authtoken section, discovery,
tempest run, report) with a few passes, many failures and the skips of a
real run, before Clinker speaks Keystone.  Standard library only.
"""
import configparser
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_VERSION = '3.71'
UPDATED = '2025-01-01T00:00:00Z'
POOL = {'name': 'stub@file#file', 'capabilities': {
    'volume_backend_name': 'file', 'vendor_name': 'Open Source',
    'driver_version': '1.0', 'storage_protocol': 'file',
    'total_capacity_gb': 1000.0, 'free_capacity_gb': 1000.0,
    'reserved_percentage': 0, 'thin_provisioning_support': True,
    'max_over_subscription_ratio': '20.0', 'multiattach': False,
    'timestamp': UPDATED}}


def version(host):
    return {'id': 'v3.0', 'status': 'CURRENT', 'version': MAX_VERSION,
            'min_version': '3.0', 'updated': UPDATED,
            'links': [{'rel': 'self', 'href': 'http://%s/v3/' % host}],
            'media-types': [{'base': 'application/json', 'type':
                             'application/vnd.openstack.volume+json;'
                             'version=3'}]}


class KeystoneCheck:
    """Token validation as a service user, as keystonemiddleware does."""

    def __init__(self, opts):
        self.opts = opts
        self.url = opts['auth_url'].rstrip('/')
        if not self.url.endswith('/v3'):
            self.url += '/v3'
        self.lock = threading.Lock()
        self.service_token = None
        self.cache = {}

    def _call(self, method, path, body=None, headers=None):
        req = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode())
        req.add_header('Content-Type', 'application/json')
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, None

    def _login(self):
        o = self.opts
        status, headers, _ = self._call('POST', '/auth/tokens', {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': o['username'], 'password': o['password'],
                'domain': {'name': o.get('user_domain_name', 'Default')}}}},
            'scope': {'project': {'name': o['project_name'], 'domain': {
                'name': o.get('project_domain_name', 'Default')}}}}})
        if status != 201:
            raise RuntimeError('service user %s cannot log in: HTTP %s' % (
                o['username'], status))
        return headers['X-Subject-Token']

    def validate(self, token):
        """The token body, or None when Keystone rejects the token."""
        now = time.time()
        with self.lock:
            hit = self.cache.get(token)
            if hit and hit[0] > now:
                return hit[1]
            if self.service_token is None:
                self.service_token = self._login()
            status, _, body = self._call('GET', '/auth/tokens', headers={
                'X-Auth-Token': self.service_token,
                'X-Subject-Token': token})
            if status == 401:  # our own token expired: once more
                self.service_token = self._login()
                status, _, body = self._call('GET', '/auth/tokens', headers={
                    'X-Auth-Token': self.service_token,
                    'X-Subject-Token': token})
            result = body['token'] if status == 200 else None
            self.cache[token] = (now + 60, result)
            return result


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'clinker-stub'
    keystone = None  # set in main()

    def log_message(self, fmt, *args):
        sys.stderr.write('stub: %s %s\n' % (self.address_string(),
                                            fmt % args))

    def reply(self, status, body, headers=None):
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def fault(self, status, kind, message, headers=None):
        self.reply(status, {kind: {'code': status, 'message': message}},
                   headers)

    def do_GET(self):
        path, _, _ = self.path.partition('?')
        host = self.headers.get('Host', 'localhost')
        parts = [p for p in path.split('/') if p]
        if not parts:
            return self.reply(300, {'versions': [version(host)]})
        if parts == ['v3']:
            return self.reply(200, {'versions': [version(host)]})
        if parts[0] != 'v3' or len(parts) < 3:
            return self.fault(404, 'itemNotFound', 'stub: no such route')
        roles = ['admin']
        if self.keystone:
            token = self.headers.get('X-Auth-Token')
            info = self.keystone.validate(token) if token else None
            if info is None:
                return self.fault(401, 'unauthorized',
                                  'The request you have made requires '
                                  'authentication.', {
                                      'WWW-Authenticate': 'Keystone uri="%s"'
                                      % self.keystone.url})
            if info.get('project', {}).get('id') != parts[1]:
                return self.fault(403, 'forbidden',
                                  'token is for another project')
            roles = [r['name'] for r in info.get('roles', [])]
        route = '/'.join(parts[2:])
        if route == 'os-availability-zone':
            return self.reply(200, {'availabilityZoneInfo': [{
                'zoneName': 'nova', 'zoneState': {'available': True}}]})
        if route == 'extensions':
            return self.reply(200, {'extensions': []})
        if route == 'scheduler-stats/get_pools':
            if 'admin' not in roles:
                return self.fault(403, 'forbidden', 'admin only')
            detail = 'detail=true' in self.path.lower()
            pool = POOL if detail else {'name': POOL['name']}
            return self.reply(200, {'pools': [pool]})
        return self.fault(404, 'itemNotFound',
                          'stub: %s is not implemented' % route)

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        self.rfile.read(length)
        self.fault(404, 'itemNotFound', 'stub: not implemented')

    do_PUT = do_DELETE = do_PATCH = do_POST


def main():
    args = sys.argv[1:]
    files = [args[i + 1] for i, a in enumerate(args)
             if a == '--config-file' and i + 1 < len(args)]
    if not files or 'serve' not in args:
        sys.exit(__doc__)
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    cfg.read(files)
    d = cfg.defaults()
    host = d.get('osapi_volume_listen', '127.0.0.1')
    port = int(d.get('osapi_volume_listen_port', '8776'))
    if d.get('auth_strategy', 'noauth') == 'keystone':
        Handler.keystone = KeystoneCheck(dict(cfg['keystone_authtoken']))
    server = ThreadingHTTPServer((host, port), Handler)
    print('stub: serving http://%s:%d/v3 (auth %s)' % (
        host, port, 'keystone' if Handler.keystone else 'none'), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
