"""The image steps of the `openstack` client tour (tour.py): a volume made
from a Glance image, a boot-volume check, a volume sent to a new image.

They use the public test image scripts/osc-tour.sh uploads to its Glance
(tour.py --image-id) and remove what they create before they end.
"""
import time

from tour import TourFailure, check, check_eq, wait_for, wait_gone, \
    WAIT_SECONDS

# the image fields Cinder copies into a volume's glance metadata
IMAGE_FIELDS = ('disk_format', 'container_format', 'checksum', 'min_disk',
                'min_ram')


def wait_image(account, image_id, want='active'):
    """Polls `openstack image show` until the image has status `want`."""
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.2
    while True:
        shown = account.json('image', 'show', image_id)
        status = shown.get('status')
        if status == want:
            return shown
        if status in ('killed', 'deleted', 'deactivated'):
            raise TourFailure('image %s went to %s' % (image_id, status),
                              output=str(shown))
        if time.monotonic() > deadline:
            raise TourFailure('image %s still %s after %.0f s (want %s)' % (
                image_id, status, WAIT_SECONDS, want), output=str(shown))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


class ImageSteps:
    """Mixed into tour.Tour: needs self.admin, self.demo, self.ids,
    self.facts, self.tag and self.image_id."""

    def image_steps(self):
        if not self.image_id:
            return []
        return [
            ('volume create --image (from a Glance image)',
             self.volume_from_image),
            ('boot volume: bootable, image metadata set / unset',
             self.boot_volume),
            ('image create --volume (upload to Glance)', self.image_from_volume),
            ('image and boot volume delete', self.image_delete),
        ]

    def volume_from_image(self):
        image = self.demo.json('image', 'show', self.image_id)
        check_eq(image, 'status', 'active', 'image show')
        self.facts['image'] = image
        created = self.demo.json('volume', 'create', '--image', self.image_id,
                                 '--size', 1, self.tag + '-boot')
        self.ids['boot'] = created.get('id')
        check_eq(created, 'size', 1, 'volume create --image')
        shown = wait_for(self.demo, 'volume', created['id'], 'available')
        meta = shown.get('volume_image_metadata') or {}
        check_eq(meta, 'image_id', self.image_id, 'volume_image_metadata')
        check_eq(meta, 'image_name', image['name'], 'volume_image_metadata')
        for field in IMAGE_FIELDS:
            check(str(meta.get(field)) == str(image.get(field)),
                  'volume_image_metadata %s is %r, the image has %r' % (
                      field, meta.get(field), image.get(field)), shown)
        check(str(meta.get('size')) == str(image.get('size')),
              'volume_image_metadata size is %r, the image has %r' % (
                  meta.get('size'), image.get('size')), shown)

    def boot_volume(self):
        boot = self.ids['boot']
        shown = self.demo.json('volume', 'show', boot)
        check(str(shown.get('bootable')).lower() == 'true',
              'a volume made from an image is not bootable', shown)
        # the image metadata actions on it (os-set/unset_image_metadata)
        self.demo.run('volume', 'set', '--image-property', 'hw_disk_bus=scsi',
                      boot)
        meta = self.demo.json('volume', 'show', boot)['volume_image_metadata']
        check_eq(meta, 'hw_disk_bus', 'scsi', 'image property set')
        check_eq(meta, 'image_id', self.image_id, 'image property set')
        self.demo.run('volume', 'unset', '--image-property', 'hw_disk_bus',
                      boot)
        meta = self.demo.json('volume', 'show', boot)['volume_image_metadata']
        check('hw_disk_bus' not in meta, 'image property unset left it',
              meta)
        # bootable off and on again
        # (Cinder answers "true"/"false"; the client shows a boolean)
        for flag, want in (('--non-bootable', 'false'), ('--bootable', 'true')):
            self.demo.run('volume', 'set', flag, boot)
            shown = self.demo.json('volume', 'show', boot)
            check(str(shown.get('bootable')).lower() == want,
                  'volume show after %s: bootable is %r' % (
                      flag, shown.get('bootable')), shown)

    def image_from_volume(self):
        boot = self.ids['boot']
        name = self.tag + '-image'
        created = self.demo.json('image', 'create', '--volume', boot,
                                 '--disk-format', 'raw', '--container-format',
                                 'bare', name, volume_api='3.1')
        check_eq(created, 'image_name', name, 'image create --volume')
        image_id = created.get('image_id')
        check(image_id, 'image create --volume printed no image_id', created)
        self.ids['image'] = image_id
        check_eq(created, 'id', boot, 'image create --volume')
        image = wait_image(self.demo, image_id)
        check_eq(image, 'name', name, 'image show')
        check_eq(image, 'disk_format', 'raw', 'image show')
        check_eq(image, 'container_format', 'bare', 'image show')
        check_eq(image, 'size', 1 << 30, 'image show')
        check_eq(image, 'visibility', 'private', 'image show')
        check_eq(image, 'owner', self.facts['demo_project'], 'image show')
        wait_for(self.demo, 'volume', boot, 'available')
        # the new image is usable as a source in its turn
        listed = self.demo.json('image', 'list', '--private')
        check(any(i.get('ID') == image_id for i in listed),
              'image list --private lacks the uploaded image', listed)

    def image_delete(self):
        self.demo.run('image', 'delete', self.ids['image'])
        code, _, err = self.demo.run('image', 'show', self.ids.pop('image'),
                                     ok=False)
        check(code != 0, 'image show still finds the deleted image')
        self.demo.run('volume', 'delete', self.ids['boot'])
        wait_gone(self.demo, 'volume', self.ids.pop('boot'))

    def image_clean_up(self):
        if 'image' in self.ids:
            self.admin.run('image', 'delete', self.ids['image'], ok=False)
        if 'boot' in self.ids:
            self.admin.run('volume', 'delete', '--force', self.ids['boot'],
                           ok=False)
