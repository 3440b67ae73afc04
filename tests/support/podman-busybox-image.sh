#!/usr/bin/env bash
# Usage: bash tests/support/podman-busybox-image.sh [DIR]
#
# Creates the local image ${HSM_BUSYBOX_IMAGE:-localhost/hsm-busybox:latest}
# from the host's static busybox (Debian package busybox-static), without any
# registry. Idempotent: does nothing if the image already exists.
#
# Podman env: if DIR is given, `eval "$(podman-env.sh DIR)"` is done first;
# otherwise the caller must already have eval'ed podman-env.sh (CONTAINERS_CONF
# and CONTAINERS_STORAGE_CONF must be set, so we never touch the system store).
#
# Image content: /bin/busybox + one symlink per applet (busybox --list-full
# layout: bin/, sbin/, usr/bin/, usr/sbin/), /etc/passwd, /etc/group,
# /www/index.html ("hsm-busybox ok"), /tmp, /data, /var/www.
# Config: ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin, WORKDIR /, CMD ["sh"].
set -euo pipefail

HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

if [[ $# -ge 1 && -n "$1" ]]; then
    eval "$(bash "$HERE/podman-env.sh" "$1")"
fi
if [[ -z "${CONTAINERS_CONF:-}" || -z "${CONTAINERS_STORAGE_CONF:-}" ]]; then
    echo "error: podman env not set; pass DIR or eval \"\$(tests/support/podman-env.sh DIR)\" first" >&2
    exit 2
fi

IMAGE="${HSM_BUSYBOX_IMAGE:-localhost/hsm-busybox:latest}"

if podman image exists "$IMAGE"; then
    echo "image $IMAGE already present" >&2
    exit 0
fi

BUSYBOX=""
for c in /bin/busybox /usr/bin/busybox; do
    # must be the static build: the image has no libc
    if [[ -x "$c" ]] && ! ldd "$c" >/dev/null 2>&1; then BUSYBOX="$c"; break; fi
done
if [[ -z "$BUSYBOX" ]]; then
    echo "error: static busybox not found (apt-get install busybox-static)" >&2
    exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hsm-busybox-rootfs.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT
ROOT="$WORK/rootfs"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,data,www,var/www,root,proc,sys,dev,run}
chmod 1777 "$ROOT/tmp"
install -m 0755 "$BUSYBOX" "$ROOT/bin/busybox"
# one symlink (-> /bin/busybox) per applet, in its canonical directory
while IFS= read -r applet; do
    [[ -z "$applet" || "$applet" == "bin/busybox" ]] && continue
    [[ -e "$ROOT/$applet" || -L "$ROOT/$applet" ]] && continue
    ln -s /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo "hsm-busybox ok" >"$ROOT/www/index.html"
cp "$ROOT/www/index.html" "$ROOT/var/www/index.html"

# reproducible tarball (fixed owner and mtime, sorted)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' \
    -C "$ROOT" -cf "$WORK/rootfs.tar" .

podman import --quiet \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /' \
    --change 'CMD ["sh"]' \
    --message "hsm-busybox from $($BUSYBOX 2>/dev/null | head -n1)" \
    "$WORK/rootfs.tar" "$IMAGE" >/dev/null

podman image exists "$IMAGE"
echo "image $IMAGE created" >&2
