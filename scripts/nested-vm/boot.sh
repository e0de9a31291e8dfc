#!/bin/bash
# Runs as PID 1 inside the nested VM after the initramfs (init) switched to
# the overlay root. /mnt is the run directory shared with the host: this
# sets up what a booted system would have, runs /mnt/guest.sh with its
# output in /mnt/guest.log and its exit status in /mnt/guest.rc, and
# powers off. The host-side runner reads those two files.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
mount -t tmpfs -o size=512m tmpfs /run
mount -t tmpfs -o size=512m tmpfs /tmp
mkdir -p /run/lock /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t configfs configfs /sys/kernel/config
ip link set lo up
hostname nested-vm
echo "nested-vm: guest up after $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
rc=1
if [[ -x /mnt/guest.sh ]]; then
    /mnt/guest.sh > /mnt/guest.log 2>&1 < /dev/null
    rc=$?
fi
echo "$rc" > /mnt/guest.rc
echo "nested-vm: guest script exited $rc after $(cut -d' ' -f1 /proc/uptime) s"
sync
echo o > /proc/sysrq-trigger
sleep 30
