#!/usr/bin/env bash
# Ensure a Docker engine is installed and answering, idempotently.
#   - Debian/Ubuntu only (apt-get); anything else gets a clear message.
#   - With systemd as PID 1 the packaged service is used; without it (CI
#     sandboxes, this lab's build hosts) dockerd is started in the background.
# Safe to run any number of times: does nothing when `docker info` answers.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (or with sudo): installing and starting Docker needs it"
command -v apt-get >/dev/null 2>&1 \
  || die "this script supports Debian/Ubuntu (apt-get) only; install a Docker engine yourself and re-run"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  log "installing docker.io and debootstrap from the distribution archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi

# MTU: some VMs (this one: eth0 1400) drop full-size packets in containers.
mtu=$(ip -o link show "$(ip route show default 2>/dev/null | awk '/default/ {print $5; exit}')" 2>/dev/null \
      | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
mtu=${mtu:-1500}
mkdir -p /etc/docker
if [ ! -s /etc/docker/daemon.json ]; then
  printf '{"mtu": %s, "storage-driver": "overlay2"}\n' "$mtu" >/etc/docker/daemon.json
fi

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  log "starting docker.service through systemd"
  systemctl enable --now docker.service
else
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "no systemd as PID 1: starting dockerd in the background (log: /var/log/dockerd.log)"
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  fi
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
die "dockerd did not answer within 60 s; see /var/log/dockerd.log or 'journalctl -u docker'"
