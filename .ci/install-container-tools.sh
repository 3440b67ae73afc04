#!/usr/bin/env bash
# Installs the container tools the integration tests use, idempotently:
#   Debian (apt, --no-install-recommends so docker.io is NOT pulled in):
#     docker-compose (1.29.2, Python; only used for `config -q` validation),
#     podman (4.3.1), runc, conmon, catatonit (podman --init / init: true),
#     containernetworking-plugins + dnsname plugin (CNI bridge, portmap, DNS),
#     iptables (CNI port forwarding), busybox-static (local base image), curl
#   PyPI: podman-compose (pinned, override with PODMAN_COMPOSE_VERSION)
# Fails loudly if anything is still missing afterwards.
#
# Usage: bash .ci/install-container-tools.sh [--smoke]
#   --smoke  additionally start one container with a throw-away project-local
#            podman config (tests/support/podman-env.sh) and remove it again.
# Must run as root (or with passwordless sudo).
set -euo pipefail

PODMAN_COMPOSE_VERSION="${PODMAN_COMPOSE_VERSION:-1.6.0}"
APT_PACKAGES=(
    docker-compose
    podman
    runc
    conmon
    catatonit
    containernetworking-plugins
    golang-github-containernetworking-plugin-dnsname
    iptables
    busybox-static
    curl
)

log() { printf '[install-container-tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
    SUDO=(sudo -n)
fi

# ---------------------------------------------------------------- apt part
missing_debs=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing_debs+=("$p")
    fi
done
if ((${#missing_debs[@]})); then
    log "apt: installing ${missing_debs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing_debs[@]}"; then
        log "apt-get install failed; running apt-get update and retrying"
        "${SUDO[@]}" apt-get update -q
        "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing_debs[@]}"
    fi
else
    log "apt: all packages already installed"
fi

# ---------------------------------------------------------------- pip part
have_podman_compose() {
    command -v podman-compose >/dev/null 2>&1 &&
        podman-compose --version 2>/dev/null | grep -q "podman-compose version ${PODMAN_COMPOSE_VERSION}\b"
}
if have_podman_compose; then
    log "pip: podman-compose ${PODMAN_COMPOSE_VERSION} already installed"
else
    PY="$(command -v python3 || true)"
    [[ -n "$PY" ]] || die "python3 not found"
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        log "pip missing for $PY; installing python3-pip"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip
    fi
    log "pip: installing podman-compose==${PODMAN_COMPOSE_VERSION} with $PY"
    pip_args=(install --disable-pip-version-check --root-user-action=ignore "podman-compose==${PODMAN_COMPOSE_VERSION}")
    if ! "${SUDO[@]}" "$PY" -m pip "${pip_args[@]}"; then
        # Debian's own python3 is "externally managed" (PEP 668)
        log "pip install failed; retrying with --break-system-packages"
        "${SUDO[@]}" "$PY" -m pip "${pip_args[@]}" --break-system-packages
    fi
    hash -r
    # pyenv needs its shims refreshed to expose the new console script
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

# ---------------------------------------------------------------- checks
fail=0
check() { # name, command...
    local name="$1"; shift
    local out
    if out="$("$@" 2>&1)"; then
        log "ok: $name: $(printf '%s' "$out" | head -n1)"
    else
        log "MISSING/BROKEN: $name ($*): $(printf '%s' "$out" | head -n3)"
        fail=1
    fi
}
check docker-compose docker-compose version --short
check podman podman --version
check runc runc --version
check conmon conmon --version
check podman-compose podman-compose --version
check curl curl --version
check busybox-static sh -c 'b=$(command -v busybox) && ! ldd "$b" >/dev/null 2>&1 && "$b" | head -n1'
check catatonit test -x /usr/libexec/podman/catatonit
check cni-plugins sh -c 'for p in bridge portmap host-local loopback firewall tuning dnsname; do test -x /usr/lib/cni/$p || { echo "no /usr/lib/cni/$p"; exit 1; }; done; echo /usr/lib/cni'
check iptables iptables --version

# docker-compose must validate without an engine, and reject bad files
tmp="$(mktemp -d)"
trap 'rm -rf -- "$tmp"' EXIT
printf 'version: "3.8"\nservices:\n  a:\n    image: localhost/x:latest\n' >"$tmp/good.yml"
printf 'version: "3.8"\nservices:\n  a:\n    image: localhost/x:latest\n    portz: [1]\n' >"$tmp/bad.yml"
check "docker-compose config -q (valid file)" docker-compose -f "$tmp/good.yml" config -q
if docker-compose -f "$tmp/bad.yml" config -q >/dev/null 2>&1; then
    log "BROKEN: docker-compose config -q accepted an invalid file"
    fail=1
else
    log "ok: docker-compose config -q rejects an invalid file"
fi

if [[ "${1:-}" == "--smoke" ]]; then
    here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
    (
        set -e
        eval "$(bash "$here/tests/support/podman-env.sh" "$tmp/podman")"
        bash "$here/tests/support/podman-busybox-image.sh"
        podman run --rm localhost/hsm-busybox:latest echo smoke-ok
        podman rmi -a -f >/dev/null
    ) && log "ok: podman smoke run" || { log "BROKEN: podman smoke run"; fail=1; }
fi

((fail == 0)) || die "container tools incomplete (see above)"
log "all container tools present"
