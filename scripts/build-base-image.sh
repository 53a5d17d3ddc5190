#!/usr/bin/env bash
# Build the local Debian 13 systemd base image used by every Molecule scenario
# and by the lab: debootstrap -> docker import -> small Dockerfile (PID-1 shim).
# Idempotent: the image carries a label with a hash of this recipe and is
# rebuilt only when the recipe (this script, the Dockerfile, the shim) changes.
set -euo pipefail

IMAGE=${LAB_IMAGE:-vector-search-lab/debian13-systemd:latest}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,curl,gnupg,netbase,locales,tzdata
here=$(cd "$(dirname "$0")" && pwd)
recipe_dir="$here/../molecule/shared/image"

log() { printf 'build-base-image: %s\n' "$*" >&2; }

recipe_hash=$( { cat "$0" "$recipe_dir/Dockerfile" "$recipe_dir/cgroup2-init"; echo "$MIRROR $SUITE $INCLUDE"; } \
  | sha256sum | cut -c1-16)
current=$(docker image inspect --format '{{ index .Config.Labels "org.vector-search.recipe" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$recipe_hash" ]; then
  log "$IMAGE is up to date (recipe $recipe_hash)"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || { log "debootstrap missing: run scripts/ensure-docker.sh first"; exit 1; }
[ "$(id -u)" -eq 0 ] || { log "ERROR: debootstrap needs root"; exit 1; }

work=$(mktemp -d /var/tmp/vs-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
log "debootstrap $SUITE from $MIRROR (about a minute)"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; log "ERROR: debootstrap failed (network or mirror?)"; exit 1; }

rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
: >"$rootfs/etc/machine-id"
sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/;s/^# *en_GB.UTF-8/en_GB.UTF-8/' "$rootfs/etc/locale.gen" 2>/dev/null || true
chroot "$rootfs" locale-gen >/dev/null 2>&1 || true
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb

base="vector-search-lab/debian13-rootfs:$recipe_hash"
log "importing rootfs as $base"
tar -C "$rootfs" -c . | docker import -c 'ENV container=docker' - "$base" >/dev/null
log "building $IMAGE"
docker build -q --build-arg BASE="$base" \
  --label "org.vector-search.recipe=$recipe_hash" --label org.vector-search.lab=true \
  -t "$IMAGE" "$recipe_dir" >/dev/null
docker rmi "$base" >/dev/null 2>&1 || true
log "built $IMAGE (recipe $recipe_hash)"
