#!/usr/bin/env python3
"""Drive Cinder's own chunked backup drivers (posix, s3, swift) outside the
cinder-backup service, with the database and notifications stubbed, so
Clinker's backups can be checked against Cinder's: a backup one writes must
restore in the other, byte for byte.

Runs under the interpreter of the venv that scripts/install-cinder29.sh
makes (Cinder 29.0.0 from PyPI).

  cinder_backup_driver.py JOB.json       run one job, print its result (JSON)
  cinder_backup_driver.py golden OUTDIR  write the golden POSIX backup pair

A job is a JSON object:

  driver     "posix" | "s3" | "swift"
  options    cinder.conf [DEFAULT] overrides, e.g. {"backup_posix_path": DIR}
  zone       storage_availability_zone (default "nova")
  now        the UTC time the object prefix is made from (ISO 8601; default:
             the real time)
  op         "backup" | "restore" | "delete"
  backups    backup rows, oldest first: id, volume_id, display_name,
             display_description, created_at (ISO 8601), container,
             service_metadata, parent_id, size (GiB).
             backup: the last one is made (its parent must be listed);
             restore: the last one is restored with its ancestors;
             delete: the last one is deleted.
  volume     the volume file (backup: read; restore: written in place)
  volume_is_new   restore only (default true)
  volume_meta     backup only: the JSON text stored as volume_meta

The result: backup -> {"container", "service_metadata", "object_count"};
restore -> {"volume_meta": [texts put back, in order]}; delete -> {}.
"""
import contextlib
import datetime
import hashlib
import json
import os
import sys
from unittest import mock

GOLDEN_IDS = {
    'volume': '00000000-0000-0000-0000-000000001111',
    'full': '00000000-0000-0000-0000-0000000000f1',
    'incr': '00000000-0000-0000-0000-0000000000f2',
}
GOLDEN_NOW = '2026-11-25T04:46:17'
GOLDEN_CREATED_AT = '2026-11-25T05:00:00+00:00'
GOLDEN_VOLUME_META = json.dumps({
    'version': 2,
    'volume-base-metadata': {'id': GOLDEN_IDS['volume'], 'size': 1},
    'volume-metadata': {'k': 'v'},
    'volume-glance-metadata': {'image_id': 'img'}})
GOLDEN_OPTIONS = {'backup_file_size': 262144, 'backup_sha_block_size_bytes': 32768,
                  'backup_compression_algorithm': 'zlib'}


def pattern(seed, length):
    """Incompressible bytes anyone can regenerate: SHA-256(seed || be64(i)), i = 0, 1, ..."""
    out = bytearray()
    i = 0
    while len(out) < length:
        out += hashlib.sha256(seed + i.to_bytes(8, 'big')).digest()
        i += 1
    return bytes(out[:length])


def golden_volumes():
    """The golden volume before and after the changes (see crates/backup/tests/golden.rs)."""
    full = bytearray(pattern(b'full-a', 393216) + bytes(917504) + pattern(b'full-b', 262144))
    incr = bytearray(full)
    for seed, offset, length in ((b'incr-a', 65536, 32768), (b'incr-b', 1300000, 40000),
                                 (b'incr-c', 700000, 100)):
        incr[offset:offset + length] = pattern(seed, length)
    return bytes(full), bytes(incr)


def load_cinder(driver, options, zone):
    from oslo_config import cfg
    from cinder import context as ctx_mod, objects
    objects.register_all()
    from cinder.backup import chunkeddriver  # noqa: F401  (registers its options)
    conf = cfg.CONF
    conf([], project='cinder')
    conf.set_override('connection', 'sqlite://', group='database')  # never used: the db is stubbed
    conf.set_override('storage_availability_zone', zone)
    if driver == 'posix':
        from cinder.backup.drivers import posix as module
        conf.set_override('backup_enable_progress_timer', False)
    elif driver == 's3':
        from cinder.backup.drivers import s3 as module
        conf.set_override('backup_s3_enable_progress_timer', False)
    else:
        from cinder.backup.drivers import swift as module
        conf.set_override('backup_swift_enable_progress_timer', False)
    for key, value in options.items():
        conf.set_override(key, value)
    return ctx_mod, module


class FakeBackup:
    """What the chunked driver reads and writes of a Backup object."""

    def __init__(self, row):
        self.id = row['id']
        self.volume_id = row['volume_id']
        self.display_name = row.get('display_name')
        self.display_description = row.get('display_description')
        self.created_at = datetime.datetime.fromisoformat(row['created_at'])
        self.container = row.get('container')
        self.service_metadata = row.get('service_metadata')
        self.parent_id = row.get('parent_id')
        self.size = row.get('size', 1)
        self.status = 'creating'
        self.object_count = 0

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)

    def save(self):
        pass

    def refresh(self):
        pass

    @contextlib.contextmanager
    def as_read_deleted(self):
        yield


def run(job):
    driver_name = job['driver']
    ctx_mod, module = load_cinder(driver_name, job.get('options', {}), job.get('zone', 'nova'))
    rows = [FakeBackup(row) for row in job['backups']]
    registry = {b.id: b for b in rows}
    target = rows[-1]
    put_back = []
    now = job.get('now')
    frozen = datetime.datetime.fromisoformat(now) if now else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch('cinder.volume.volume_utils.notify_about_backup_usage'))
        stack.enter_context(mock.patch('cinder.objects.Backup.get_by_id',
                                       side_effect=lambda context, backup_id: registry[backup_id]))
        if frozen:
            stack.enter_context(mock.patch.object(module.timeutils, 'utcnow', return_value=frozen))
        ctxt = ctx_mod.get_admin_context()
        cls = {'posix': 'PosixBackupDriver', 's3': 'S3BackupDriver', 'swift': 'SwiftBackupDriver'}
        drv = getattr(module, cls[driver_name])(ctxt)
        if driver_name == 'swift':
            drv.initialize()
        drv.db = mock.Mock()
        drv.db.volume_get.return_value = {'id': target.volume_id, 'size': target.size}
        drv.get_metadata = lambda volume_id: job.get('volume_meta')
        drv.put_metadata = lambda volume_id, meta: put_back.append(meta)
        op = job['op']
        if op == 'backup':
            with open(job['volume'], 'rb') as f:
                drv.backup(target, f, backup_metadata=True)
            return {'container': target.container, 'service_metadata': target.service_metadata,
                    'object_count': target.object_count}
        if op == 'restore':
            target.status = 'restoring'
            with open(job['volume'], 'r+b') as f:
                drv.restore(target, target.volume_id, f, job.get('volume_is_new', True))
            return {'volume_meta': put_back}
        if op == 'delete':
            drv.delete_backup(target)
            return {}
        raise SystemExit('unknown op %r' % op)


def golden(out):
    """The golden pair the repository keeps in crates/backup/tests/fixtures/cinder29-posix."""
    full_volume, incr_volume = golden_volumes()
    store = os.path.join(out, 'store')
    os.makedirs(store, exist_ok=True)
    volume = os.path.join(out, 'volume.img')
    rows = []
    for name, data in (('full', full_volume), ('incr', incr_volume)):
        with open(volume, 'wb') as f:
            f.write(data)
        row = {'id': GOLDEN_IDS[name], 'volume_id': GOLDEN_IDS['volume'], 'display_name': name,
               'display_description': 'golden', 'created_at': GOLDEN_CREATED_AT, 'size': 1,
               'parent_id': rows[-1]['id'] if rows else None}
        job = {'driver': 'posix', 'options': dict(GOLDEN_OPTIONS, backup_posix_path=store),
               'now': GOLDEN_NOW, 'op': 'backup', 'backups': rows + [row], 'volume': volume,
               'volume_meta': GOLDEN_VOLUME_META}
        row.update(run(job))
        rows.append(row)
    os.remove(volume)
    with open(os.path.join(out, 'backups.json'), 'w') as f:
        json.dump(rows, f, indent=2, sort_keys=True)
        f.write('\n')
    print(json.dumps(rows, indent=2, sort_keys=True))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == 'golden':
        golden(sys.argv[2])
        return
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    result = run(job)
    sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
