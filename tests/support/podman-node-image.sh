#!/usr/bin/env bash
# Usage: bash tests/support/podman-node-image.sh [--cache-only] [DIR]
#
# Creates the local base image ${HSM_NODE_IMAGE:-localhost/hsm-node:18} for
# the node tests of `cargo hsm image build`, without any image registry: a
# Debian 12 (bookworm) minbase root filesystem with Debian's Node.js 18,
#
#     debootstrap --variant=minbase --include=nodejs,ca-certificates bookworm ROOTFS
#
# and npm 10 unpacked from the npm registry's own tarball (`npm pack npm@10`
# on the host) into /usr/local/lib/node_modules/npm, as the official node
# images have it. Debian's `npm` package would pull in some 300 packages of
# its own; the tarball is one download. Then `podman import`.
#
# The root filesystem is made once per machine and kept as a tarball in
# ${HSM_IMAGE_CACHE:-$HOME/.cache/cargo-hsm}/debian-bookworm-node18.tar;
# later runs only import it. With `--cache-only` it only makes sure the
# tarball exists (`.ci/run` does this, so that tests never pay for
# debootstrap). Idempotent: does nothing if the image already exists.
# The steps are podman-debian-image.sh's, as for the python image.
#
# Podman env: as for podman-busybox-image.sh (DIR, or podman-env.sh eval'ed).
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
CACHE="${HSM_IMAGE_CACHE:-$HOME/.cache/cargo-hsm}"
TARBALL="$CACHE/debian-bookworm-node18.tar"
IMAGE="${HSM_NODE_IMAGE:-localhost/hsm-node:18}"
NPM_SPEC="${HSM_NODE_IMAGE_NPM:-npm@10}"
INCLUDE="nodejs,ca-certificates"
CMD='["node"]'
MESSAGE="hsm-node: debootstrap --variant=minbase --include=nodejs,ca-certificates bookworm, $NPM_SPEC"

# npm from the npm registry, where the official images have it.
post_debootstrap() {
    local rootfs="$1" work="$2" tgz
    if ! command -v npm >/dev/null; then
        echo "error: npm not found on the host (it comes with Node.js)" >&2
        exit 1
    fi
    (cd "$work" && npm pack --silent "$NPM_SPEC" >"$work/npm-pack.txt")
    tgz="$work/$(tail -n 1 "$work/npm-pack.txt")"
    mkdir -p "$rootfs/usr/local/lib/node_modules/npm" "$rootfs/usr/local/bin"
    tar -xzf "$tgz" --strip-components=1 --no-same-owner \
        -C "$rootfs/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
}

# shellcheck source=tests/support/podman-debian-image.sh
source "$HERE/podman-debian-image.sh"
