#!/usr/bin/env python3
"""Upload one image to a Keystone-authenticated Glance and print its id.

usage: glance-image.py KEYSTONE_URL GLANCE_URL FILE DISK_FORMAT NAME

Logs in as admin in project admin (password ADMIN_PASSWORD, else
KEYSTONE_PASSWORD, else 'secret': scripts/keystone.sh's accounts), creates
a public image (container_format bare) named NAME, sends FILE as its data
with a Content-Length (never `Expect: 100-continue`, which uWSGI-hosted
Glance stalls on) and waits until Glance shows it active.  The image id is
the one line printed on stdout.  Used by scripts/with-glance.sh for the
image Tempest's [compute] image_ref and the openstack tour name.

Standard library only, so any python3 can run it.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request


def request(method, url, token=None, body=None, data=None, headers=None):
    hdrs = {'Accept': 'application/json'}
    if token:
        hdrs['X-Auth-Token'] = token
    if body is not None:
        data = json.dumps(body).encode()
        hdrs['Content-Type'] = 'application/json'
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
            return resp.status, resp.headers, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        sys.exit('glance-image: %s %s -> HTTP %s %s' % (
            method, url, exc.code, exc.read()[:300].decode('utf-8', 'replace')))


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    ks_url, glance_url, path, disk_format, name = sys.argv[1:]
    ks_url = ks_url.rstrip('/')
    if ks_url.endswith('/v3'):
        ks_url = ks_url[:-3]
    glance_url = glance_url.rstrip('/')
    password = os.environ.get('ADMIN_PASSWORD') or \
        os.environ.get('KEYSTONE_PASSWORD') or 'secret'
    auth = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'domain': {'id': 'default'},
            'password': password}}},
        'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}}
    _, headers, _ = request('POST', ks_url + '/v3/auth/tokens?nocatalog',
                            body=auth)
    token = headers['X-Subject-Token']
    _, _, image = request('POST', glance_url + '/v2/images', token, body={
        'name': name, 'disk_format': disk_format,
        'container_format': 'bare', 'visibility': 'public'})
    with open(path, 'rb') as fh:
        data = fh.read()
    request('PUT', '%s/v2/images/%s/file' % (glance_url, image['id']), token,
            data=data, headers={'Content-Type': 'application/octet-stream'})
    for _ in range(600):
        _, _, shown = request('GET', '%s/v2/images/%s' % (
            glance_url, image['id']), token)
        if shown['status'] == 'active':
            print(image['id'])
            return
        if shown['status'] not in ('queued', 'saving', 'importing'):
            sys.exit('glance-image: image %s is %s' % (image['id'],
                                                      shown['status']))
        time.sleep(0.1)
    sys.exit('glance-image: image %s not active after 60 s' % image['id'])


if __name__ == '__main__':
    main()
