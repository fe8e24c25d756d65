#!/usr/bin/env bash
# tools/dev/torch-wheel.sh VERSION — the headers and libraries of PyPI's torch==VERSION Linux wheel, to build
# the libtorch plugin against a torch other than the pinned one (make dist TORCH_VERSION=VERSION).
#
# The wheel is downloaded once into the cache's wheelhouse (${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}/wheels),
# and only torch/include, torch/lib, torch/share and torch/version.py are unpacked into
# <cache>/torch-wheel-VERSION/torch, which this script prints. Nothing is installed or imported: the plugin
# only needs to compile and link; at run time it uses the host's own torch of the same version.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 VERSION" >&2; exit 2; }
ver="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}"
dest="$cache/torch-wheel-$ver"
if [ -f "$dest/.ok" ]; then
  echo "$dest/torch"
  exit 0
fi
mkdir -p "$cache/wheels"
exec 9>"$cache/.torch-wheel.lock"
flock 9
if [ ! -f "$dest/.ok" ]; then
  py=$(bash "$here/torch-venv.sh")
  {
    whl=$(ls "$cache"/wheels/torch-"$ver"-cp311-cp311-manylinux*_x86_64.whl 2>/dev/null | head -n1 || true)
    if [ -z "$whl" ]; then
      echo "torch-wheel: downloading torch==$ver (Linux x86_64, CPython 3.11)"
      PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip download --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.11 \
        --implementation cp -d "$cache/wheels" "torch==$ver"
      whl=$(ls "$cache"/wheels/torch-"$ver"-cp311-cp311-manylinux*_x86_64.whl | head -n1)
    fi
    rm -rf "$dest.part"
    mkdir -p "$dest.part"
    "$py" - "$whl" "$dest.part" <<'PY'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
keep = ("torch/include/", "torch/lib/", "torch/share/", "torch/version.py")
with zipfile.ZipFile(whl) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith(keep)])
PY
    rm -rf "$dest"
    mv "$dest.part" "$dest"
    touch "$dest/.ok"
  } >&2
fi
echo "$dest/torch"
