#!/usr/bin/env bash
# Usage: bash tests/support/podman-python-image.sh [DIR]
#
# Creates the local base image ${HSM_PYTHON_IMAGE:-localhost/hsm-python:3.11}
# for `cargo hsm image build` tests, without any image registry: a Debian 12
# (bookworm) minbase root filesystem with python3 and python3-venv, made by
#
#     debootstrap --variant=minbase --include=python3,python3-venv bookworm ROOTFS
#
# from Debian's own packages, then `podman import`. The root filesystem is
# made once per machine and kept as a tarball in
# ${HSM_IMAGE_CACHE:-$HOME/.cache/cargo-hsm}/debian-bookworm-python3.tar
# (about 45 s, 275 MB); later runs only import it (a few seconds).
# Idempotent: does nothing if the image already exists.
#
# With `--cache-only` it only makes sure the tarball exists (`.ci/run` does
# this, so that tests never pay for debootstrap).
#
# Podman env: as for podman-busybox-image.sh (DIR, or podman-env.sh eval'ed).
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
CACHE_ONLY=0
if [[ "${1:-}" == "--cache-only" ]]; then
    CACHE_ONLY=1
    shift
fi

CACHE="${HSM_IMAGE_CACHE:-$HOME/.cache/cargo-hsm}"
TARBALL="$CACHE/debian-bookworm-python3.tar"
IMAGE="${HSM_PYTHON_IMAGE:-localhost/hsm-python:3.11}"

make_tarball() {
    [[ -s "$TARBALL" ]] && return 0
    if ! command -v debootstrap >/dev/null; then
        echo "error: debootstrap not found (apt-get install debootstrap)" >&2
        exit 1
    fi
    mkdir -p "$CACHE"
    local work
    work="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf -- '$work'" EXIT
    debootstrap --variant=minbase --include=python3,python3-venv \
        bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || {
        tail -n 20 "$work/debootstrap.log" >&2
        exit 1
    }
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
    --change 'CMD ["python3"]' \
    --message "hsm-python: debootstrap --variant=minbase --include=python3,python3-venv bookworm" \
    "$TARBALL" "$IMAGE" >/dev/null
podman image exists "$IMAGE"
