#!/usr/bin/env bash
# Shared by podman-python-image.sh and podman-node-image.sh, which set:
#
#   IMAGE    the image to create (`localhost/hsm-python:3.11`)
#   TARBALL  the cached root filesystem (`$CACHE/debian-bookworm-python3.tar`)
#   INCLUDE  Debian packages for `debootstrap --include=`
#   CMD      the image's CMD (JSON)
#   MESSAGE  the image's commit message
#
# and may define `post_debootstrap ROOTFS WORK` (e.g. to unpack npm); they
# source this file with their own arguments, `[--cache-only] [DIR]`
# (`--cache-only`: stop once the tarball exists). A
# Debian 12 (bookworm) minbase root filesystem is made once with
# `debootstrap --variant=minbase --include=$INCLUDE`, kept as $TARBALL,
# then `podman import`ed. Idempotent: nothing happens if the image exists.
# Podman env: the caller's first argument DIR, or podman-env.sh eval'ed.
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
CACHE_ONLY=0
if [[ "${1:-}" == "--cache-only" ]]; then
    CACHE_ONLY=1
    shift
fi

make_tarball() {
    [[ -s "$TARBALL" ]] && return 0
    if ! command -v debootstrap >/dev/null; then
        echo "error: debootstrap not found (apt-get install debootstrap)" >&2
        exit 1
    fi
    mkdir -p "$(dirname -- "$TARBALL")"
    local work
    work="$(mktemp -d "$(dirname -- "$TARBALL")/rootfs.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf -- '$work'" EXIT
    debootstrap --variant=minbase --include="$INCLUDE" \
        bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || {
        tail -n 20 "$work/debootstrap.log" >&2
        exit 1
    }
    if declare -F post_debootstrap >/dev/null; then
        post_debootstrap "$work/rootfs" "$work"
    fi
    # Nothing the image needs: package caches and lists.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar --sort=name --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
    mv "$work/rootfs.tar" "$TARBALL"
    rm -rf -- "$work"
    trap - EXIT
}

make_tarball
[[ "$CACHE_ONLY" == 1 ]] && exit 0

if [[ $# -ge 1 && -n "$1" ]]; then
    eval "$(bash "$HERE/podman-env.sh" "$1")"
fi
if [[ -z "${CONTAINERS_CONF:-}" || -z "${CONTAINERS_STORAGE_CONF:-}" ]]; then
    echo "error: podman env not set; pass DIR or eval \"\$(tests/support/podman-env.sh DIR)\" first" >&2
    exit 2
fi
if podman image exists "$IMAGE"; then
    echo "image $IMAGE already present" >&2
    exit 0
fi
podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "CMD $CMD" \
    --message "$MESSAGE" \
    "$TARBALL" "$IMAGE" >/dev/null
podman image exists "$IMAGE"
