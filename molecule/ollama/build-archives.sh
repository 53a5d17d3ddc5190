#!/usr/bin/env bash
# Build release-shaped archives of the Ollama API stand-in for the ollama
# role's Molecule scenario (the real Ollama cannot be downloaded here).
#
#   build-archives.sh OUTDIR VERSION [VERSION...]
#
# For each VERSION writes OUTDIR/VERSION/ollama-linux-amd64.{tgz,tar.zst}
# laid out like an official release (bin/ollama, lib/ollama/...), each with a
# .sha256 file next to it.
# bin/ollama is a launcher: `ollama serve` starts files/ollama-standin with
# the target's python3 (Debian 13: 3.13) and reads OLLAMA_HOST like Ollama;
# /api/version reports VERSION. The wheels are resolved here, on the
# controller, for cp313/manylinux x86_64, so targets need no network.
# Archives are cached: a rebuild happens only when the stand-in changes.
set -euo pipefail

out=${1:?usage: $0 OUTDIR VERSION...}
shift
[ $# -gt 0 ] || { echo "usage: $0 OUTDIR VERSION..." >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
standin=$(cd "$here/../../files/ollama-standin" && pwd)
pip=${PIP:-pip}

# Cache key: the stand-in's sources and pins, and this script.
key=$( (cd "$standin" && find ollama_standin pyproject.toml requirements.txt -type f \
          ! -path '*__pycache__*' -print0 | sort -z | xargs -0 sha256sum; sha256sum "$here/build-archives.sh") \
       | sha256sum | cut -c1-16)
mkdir -p "$out"
# Scenarios may run side by side: one build at a time.
exec 9>"$out/.lock"
flock 9
stamp="$out/.key"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  missing=0
  for v in "$@"; do [ -s "$out/$v/ollama-linux-amd64.tar.zst.sha256" ] || missing=1; done
  [ "$missing" = 0 ] && { echo "archives up to date in $out"; exit 0; }
fi

# Archives of an older stand-in are stale: drop them all.
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ]; then
  find "$out" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  rm -f "$stamp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site="$work/site"
"$pip" install --quiet --disable-pip-version-check --no-compile --no-deps \
  --only-binary=:all: --implementation cp --python-version 3.13 --abi cp313 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 \
  --target "$site" -r "$standin/requirements.txt"
# The stand-in itself is pure Python: copy the package.
(cd "$standin" && tar --exclude=__pycache__ -cf - ollama_standin) | tar -C "$site" -xf -
rm -rf "$site"/bin

built=()
for v in "$@"; do
  # A version already built from this stand-in stays as it is (its checksum
  # is what deployed hosts recorded).
  [ -s "$out/$v/ollama-linux-amd64.tar.zst.sha256" ] && continue
  built+=("$v")
  root="$work/release-$v"
  mkdir -p "$root/bin" "$root/lib/ollama"
  cp -a "$site" "$root/lib/ollama/standin"
  cat >"$root/bin/ollama" <<LAUNCHER
#!/bin/sh
# NOT Ollama: release-shaped launcher of the Ollama API stand-in
# (files/ollama-standin), built for tests only. Version $v.
set -eu
root=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")
export PYTHONPATH="\$root/lib/ollama/standin"
export PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
export OLLAMA_STANDIN_REPORTED_VERSION="\${OLLAMA_STANDIN_REPORTED_VERSION:-$v}"
case "\${1:-}" in
  -v|--version) echo "ollama version is $v (stand-in, not Ollama)"; exit 0 ;;
esac
exec python3 -m ollama_standin "\$@"
LAUNCHER
  chmod 0755 "$root/bin/ollama"
  dest="$work/out-$v"
  mkdir -p "$dest"
  tar -C "$root" --owner=0 --group=0 --numeric-owner -cf "$work/release.tar" bin lib
  # Both formats Ollama has shipped: .tgz (up to 0.13) and .tar.zst.
  gzip -c "$work/release.tar" >"$dest/ollama-linux-amd64.tgz"
  zstd -q -T0 -c "$work/release.tar" >"$dest/ollama-linux-amd64.tar.zst"
  for f in ollama-linux-amd64.tgz ollama-linux-amd64.tar.zst; do
    sha256sum "$dest/$f" | cut -d' ' -f1 >"$dest/$f.sha256"
  done
  rm -rf "$root" "$work/release.tar" "${out:?}/$v"
  mv "$dest" "$out/$v"
done
echo "$key" >"$stamp"
echo "built ${built[*]} in $out"
