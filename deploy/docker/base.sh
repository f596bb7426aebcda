#!/usr/bin/env bash
# The images' base, built from Debian itself: `debootstrap` of bookworm (its python3 is 3.11, like
# the project's), imported into Docker once and then reused (skipped when the image exists). No
# Docker Hub image is involved; the packages come from Debian's own mirror.
#
#   deploy/docker/base.sh [IMAGE]        default: imagemesh/debian-python:bookworm
set -euo pipefail

IMAGE="${1:-${BASE_IMAGE:-imagemesh/debian-python:bookworm}}"
DOCKER="${DOCKER:-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE exists: reused"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "debootstrap needs root (run as root, or build $IMAGE elsewhere and load it)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
}

root="$(mktemp -d /tmp/imagemesh-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
# minbase: dpkg, apt and the essential set; python3-venv brings ensurepip (the images' venvs),
# ca-certificates lets the services reach hosted APIs over TLS.
nice -n 10 debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,tzdata \
    "$SUITE" "$root" "$MIRROR"
# What a container never needs: apt's downloaded lists and archives, docs, man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SUITE" >"$root/etc/apt/sources.list"

tar --numeric-owner -C "$root" -c . | "$DOCKER" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE from $MIRROR" \
    - "$IMAGE"
echo "base image $IMAGE built"
