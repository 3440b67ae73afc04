#!/usr/bin/env bash
# Usage: bash tests/support/podman-python-image.sh [--cache-only] [DIR]
#
# Creates the local base image ${HSM_PYTHON_IMAGE:-localhost/hsm-python:3.11}
# for `cargo hsm image build` tests, without any image registry: a Debian 12
# (bookworm) minbase root filesystem with python3 and python3-venv, made by
#
#     debootstrap --variant=minbase --include=python3,python3-venv bookworm ROOTFS
#
# from Debian's own packages, then `podman import` (podman-debian-image.sh).
# The root filesystem is made once per machine and kept as a tarball in
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
CACHE="${HSM_IMAGE_CACHE:-$HOME/.cache/cargo-hsm}"
TARBALL="$CACHE/debian-bookworm-python3.tar"
IMAGE="${HSM_PYTHON_IMAGE:-localhost/hsm-python:3.11}"
INCLUDE="python3,python3-venv"
CMD='["python3"]'
MESSAGE="hsm-python: debootstrap --variant=minbase --include=python3,python3-venv bookworm"
# shellcheck source=tests/support/podman-debian-image.sh
source "$HERE/podman-debian-image.sh"
