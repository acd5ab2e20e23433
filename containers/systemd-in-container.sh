#!/bin/sh
# What systemd as a container's PID 1 needs, for every image with systemd
# inside (containers/Containerfile, tests/nixos/Containerfile): boot to
# multi-user.target, and nothing a container has no use for: consoles,
# logins, device management, timers that touch the host.
set -eu
systemctl set-default multi-user.target
systemctl mask \
    getty.target console-getty.service serial-getty@.service \
    systemd-logind.service systemd-udevd.service systemd-udevd-control.socket \
    systemd-udevd-kernel.socket systemd-udev-trigger.service \
    systemd-timesyncd.service systemd-resolved.service systemd-networkd.service \
    systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer systemd-tmpfiles-clean.timer
