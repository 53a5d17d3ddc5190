#!/usr/bin/env bash
# Build the app's wheel with a given version, without touching the checkout:
#   scripts/build-release.sh VERSION OUTDIR   -> OUTDIR/vector_search-VERSION-py3-none-any.whl
# Used to rehearse upgrades (Molecule, the cluster scenario) and by release
# managers; deploy it with -e vector_search_wheel=PATH.
set -euo pipefail
version=${1:?usage: $0 VERSION OUTDIR}
out=${2:?usage: $0 VERSION OUTDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[[ $version =~ ^[0-9]+(\.[0-9]+)*([a-z]+[0-9]*)?(\+[a-z0-9.]+)?$ ]] \
  || { echo "build-release: '$version' is not a PEP 440 version such as 1.2.3" >&2; exit 2; }
wheel="$out/vector_search-$version-py3-none-any.whl"
if [ -s "$wheel" ]; then echo "$wheel"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$here/app" --exclude='*.egg-info' --exclude=__pycache__ --exclude=build --exclude=.mypy_cache -cf - . \
  | tar -C "$work" -xf -
sed -i -E "s/^version\s*=\s*\"[^\"]+\"/version = \"$version\"/" "$work/pyproject.toml"
mkdir -p "$out"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$work" >&2
echo "$wheel"
