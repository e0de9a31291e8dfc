#!/usr/bin/env python3
"""Run Cinder 29's own image download path, cinder.image.image_utils.fetch_to_raw
(the image downloaded from Glance into a temporary file under
image_conversion_dir, inspected with qemu-img info, then written to the volume
with qemu-img convert), outside cinder-volume, against a running noauth Glance:
the anchor `clinker-bench --image` prints beside Clinker's create from image.

Runs under the interpreter of the venv that scripts/install-cinder29.sh
makes (Cinder 29.0.0 from PyPI).

  cinder_image_fetch.py GLANCE_URL IMAGE_ID DEST CONVERSION_DIR

DEST is the volume: an existing file of the volume's size, overwritten.
Prints {"seconds": S}: the time fetch_to_raw took, the interpreter's start-up
and Cinder's imports left out.
"""
import json
import os
import sys
import time


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    glance_url, image_id, dest, conversion_dir = argv[1:]
    from oslo_config import cfg
    from cinder import context, objects
    objects.register_all()
    from cinder.image import glance, image_utils
    import cinder.privsep
    # The privileged helpers (qemu-img info) run in this process instead of
    # a privsep daemon started through sudo: the bench runs them as its own
    # user, as Clinker runs qemu-img.
    cinder.privsep.sys_admin_pctxt.set_client_mode(False)
    conf = cfg.CONF
    conf([], project='cinder')
    conf.set_override('connection', 'sqlite://', group='database')  # never used
    conf.set_override('auth_strategy', 'noauth')
    conf.set_override('glance_api_servers', [glance_url])
    conf.set_override('image_conversion_dir', conversion_dir)
    ctx = context.RequestContext('bench', 'bench', is_admin=True)
    service = glance.get_default_image_service()
    size_gb = max(1, -(-os.path.getsize(dest) // (1 << 30)))
    started = time.monotonic()
    # cinder-volume's own call (volume_utils / the drivers' copy_image_to_volume):
    # the volume's size in GiB, volume_dd_blocksize, not as root here.
    image_utils.fetch_to_raw(ctx, service, image_id, dest, conf.volume_dd_blocksize,
                             size=size_gb, run_as_root=False)
    print(json.dumps({'seconds': time.monotonic() - started}))


if __name__ == '__main__':
    main(sys.argv)
