#!/usr/bin/env python3
"""Write a file's bytes into an existing RBD image at an offset through
librbd (the `rados` and `rbd` bindings Cinder's RBD driver itself uses), as
a guest writes to an attached volume. The adoption test
(bin/clinker/tests/cinder_rbd_adopt.rs) puts data this way into volumes
real Cinder 29 made, before Clinker takes them over.

  rbd_write.py CEPH_CONF USER POOL IMAGE OFFSET FILE

Prints the number of bytes written; fails unless all of them were.
"""
import sys

import rados
import rbd


def main():
    if len(sys.argv) != 7:
        raise SystemExit(__doc__)
    conf, user, pool, image, offset, path = sys.argv[1:]
    with open(path, 'rb') as f:
        data = f.read()
    with rados.Rados(conffile=conf, rados_id=user) as cluster:
        with cluster.open_ioctx(pool) as ioctx:
            with rbd.Image(ioctx, image) as img:
                written = img.write(data, int(offset))
                img.flush()
    if written != len(data):
        raise SystemExit('wrote %d of %d bytes' % (written, len(data)))
    print(written)


if __name__ == '__main__':
    main()
