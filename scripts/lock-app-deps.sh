#!/usr/bin/env bash
# Lock the app's runtime dependencies: app/requirements.lock pins every direct
# and transitive dependency of app/pyproject.toml with the sha256 of every file
# of that version on the index (so one lock serves Python 3.11, the test venv,
# and 3.13, Debian 13's app hosts). The role installs exactly this file on the
# hosts (--require-hashes) and the Makefile installs it into the test venv:
# the tested set is the deployed set.
#   scripts/lock-app-deps.sh                        keep the current pins, add what is missing
#   scripts/lock-app-deps.sh --upgrade              newest versions inside pyproject's ranges
#   scripts/lock-app-deps.sh --upgrade-package httpx
# Needs the index (PyPI, or PIP_INDEX_URL for a mirror); pip-tools runs from a
# throwaway venv. Afterwards it proves that the lock resolves, binary-only and
# hash-checked, for each target in LOCK_PYTHONS (default "3.11 3.13") on
# manylinux x86_64.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
pip_tools=${PIP_TOOLS_VERSION:-7.7.0}
targets=${LOCK_PYTHONS:-3.11 3.13}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "pip-tools==$pip_tools"

cd "$here/app"
CUSTOM_COMPILE_COMMAND="scripts/lock-app-deps.sh" "$work/venv/bin/pip-compile" --quiet \
  --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock "$@" pyproject.toml

for v in $targets; do
  "$work/venv/bin/pip" download --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
    --python-version "$v" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --dest "$work/py$v" -r requirements.lock
  echo "lock-app-deps: Python $v: $(find "$work/py$v" -name '*.whl' | wc -l) wheels, hashes match"
done
echo "lock-app-deps: $(grep -cE '^[a-z0-9]' requirements.lock) packages pinned in app/requirements.lock"
