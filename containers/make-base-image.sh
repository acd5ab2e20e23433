#!/usr/bin/env bash
# Build a Debian bookworm base image with systemd from the Debian mirror, for
# machines that cannot pull from a container registry (CI, air-gapped hosts).
#
#   containers/make-base-image.sh [TAG]     default TAG: localhost/debian-systemd:bookworm
#
# The result is a plain `debootstrap --variant=minbase` tree plus systemd,
# imported with `podman import`; containers/build.sh takes it as BASE_IMAGE.
# It is cached: an existing TAG is left alone unless REBUILD=1.
set -euo pipefail

tag=${1:-localhost/debian-systemd:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ ${REBUILD:-0} != 1 ]] && podman image exists "$tag"; then
    echo "base image $tag exists (REBUILD=1 to rebuild)"
    exit 0
fi

for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install $tool)" >&2; exit 69; }
done

root=$(mktemp -d /var/tmp/handoff-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "debootstrap bookworm into $root (mirror $mirror)"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# Keep the image small and reproducible-ish: no apt lists or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# apt inside `podman build` must reach the mirror the base came from.
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"

tar -C "$root" -c . | podman import \
    --change 'CMD ["/sbin/init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$tag"
echo "imported $tag"
