#!/usr/bin/env bash
# Builds a local stand-in for the official `python:3.11-slim` image where no container registry
# is reachable: a minimal Debian (debootstrap) with Debian's Python 3 and venv, imported into
# podman as IMAGE (default localhost/homeiq-base:bookworm-python3.11). Pass it to the build as
# `--build-arg BASE_IMAGE=IMAGE`. Needs root and debootstrap (docker/setup-podman.sh).
#
# The root file system is cached as a tarball under $HOMEIQ_CONTAINER_CACHE (default
# ~/.cache/homeiq/container), and the tarball is what counts: the image is an import of it
# (labelled with its name), so a run with the tarball and its image does nothing, a run with only
# the tarball imports it (seconds), and a run without it debootstraps anew (about a minute,
# about 40 MB of Debian packages), even if an image of that name exists.
set -euo pipefail

IMAGE="${1:-localhost/homeiq-base:bookworm-python3.11}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-venv,ca-certificates"
CACHE="${HOMEIQ_CONTAINER_CACHE:-$HOME/.cache/homeiq/container}"
KEY="rootfs-$SUITE-$(echo "$PACKAGES" | md5sum | cut -c1-8)"
TARBALL="$CACHE/$KEY.tar"

imported="$(podman image inspect --format '{{index .Labels "org.homeiq.rootfs"}}' "$IMAGE" 2>/dev/null || true)"
if [ -s "$TARBALL" ] && [ "$imported" = "$KEY" ]; then
    echo "build-base-image.sh: $IMAGE is the import of $TARBALL"
    exit 0
fi

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
    work="$(mktemp -d "$CACHE/debootstrap.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "build-base-image.sh: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/root" "$MIRROR" >"$work/log" 2>&1; then
        tail -n 30 "$work/log" >&2
        echo "build-base-image.sh: debootstrap failed (full log above: last 30 lines)" >&2
        exit 1
    fi
    root="$work/root"
    # What the official slim images leave out too: package caches, lists, documentation, locales.
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    ln -sf python3 "$root/usr/bin/python"  # as in python:3.11-slim (Debian: python-is-python3)
    # Pin the apt sources to what the image was built from.
    echo "deb $MIRROR $SUITE main" > "$root/etc/apt/sources.list"
    tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -C "$root" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
fi

echo "build-base-image.sh: importing $(du -h "$TARBALL" | cut -f1) root file system as $IMAGE"
previous="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
podman import --quiet \
    --change "LABEL org.homeiq.rootfs=$KEY" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES" \
    "$TARBALL" "$IMAGE" >/dev/null
current="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true  # the old import, unless something still uses it
fi
echo "build-base-image.sh: $IMAGE ready ($(podman run --rm --network=none "$IMAGE" python3 --version))"
