#!/usr/bin/env bash
# Install what `make test` and `make lab` need on a fresh Debian 12+/Ubuntu
# 24.04 machine: Python venv support, Docker engine, debootstrap, and the
# servers the app's tests start themselves (Redis), and the documentation the
# bench's real-text corpus is built from. Idempotent.
set -euo pipefail
log() { printf 'host-deps: %s\n' "$*" >&2; }

command -v apt-get >/dev/null 2>&1 || { log "ERROR: Debian/Ubuntu (apt-get) required"; exit 1; }
[ "$(id -u)" -eq 0 ] || { log "ERROR: run as root (or with sudo)"; exit 1; }

need=()
for pair in python3:python3 make:make git:git curl:curl openssl:openssl \
            redis-server:redis-server dockerd:docker.io debootstrap:debootstrap pgbouncer:pgbouncer promtool:$(apt-cache show promtool >/dev/null 2>&1 && echo promtool || echo prometheus); do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# The bench's real-text corpus (bench/realtext.py PACKAGES): documentation that
# Debian packages ship (manuals' HTML, man pages; ~40 MB to download).
for pkg in postgresql-doc python3-doc sqlite3-doc python-django-doc python-sqlalchemy-doc \
           python-flask-doc git-doc nodejs-doc bind9-doc bash-doc debian-reference-en \
           manpages manpages-dev perl-doc libssl-doc; do
  [ "$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The distribution's redis-server package starts a system instance where
# systemd runs; the tests start their own on free ports, so that is harmless.
python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit("host-deps: ERROR: Python 3.11+ is needed for ansible-core 2.19 (Debian 12 or Ubuntu 24.04)")
PY
