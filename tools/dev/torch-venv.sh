#!/usr/bin/env bash
# tools/dev/torch-venv.sh — create (once) the pinned torch venv used by the exporter and its tests,
# then print the path of its python.
#
# The venv lives OUTSIDE the clone, under
#   ${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}/torch-<torch version>-<sha256(requirements)[:12]>
# so clones, worktrees and CI runs on one machine share it, and a change of any pin makes a new one.
# pip's cache (PIP_CACHE_DIR) and a wheelhouse live under the same cache dir, so re-creating is fast.
# Idempotent: a venv whose stamp matches is reused without touching the network.
#
#   tools/dev/torch-venv.sh            create if needed, print the python path (only that, on stdout)
#   tools/dev/torch-venv.sh --dir      print the venv directory instead
#   tools/dev/torch-venv.sh --site     print the venv's site-packages directory
#   tools/dev/torch-venv.sh --check    exit 0 if the venv is ready, 1 otherwise; never installs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/../export/requirements-export.txt"
cache="${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}"
base_python="${CV_BASE_PYTHON:-python3}"

[ -r "$req" ] || { echo "torch-venv: missing $req" >&2; exit 2; }
torch_ver="$(sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' "$req" | head -n1)"
[ -n "$torch_ver" ] || { echo "torch-venv: no 'torch==' pin in $req" >&2; exit 2; }
req_sha="$(sha256sum "$req" | cut -c1-12)"
venv="$cache/torch-$torch_ver-$req_sha"
py="$venv/bin/python"
stamp="$venv/.cosyvoiced-ready"

mode="${1:-}"
case "$mode" in
  --dir) echo "$venv"; exit 0 ;;
  --site) echo "$venv/lib/python$("$base_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages"; exit 0 ;;
  --check) [ -f "$stamp" ] && [ -x "$py" ] && exit 0; exit 1 ;;
  "") ;;
  *) echo "usage: $0 [--dir|--check]" >&2; exit 2 ;;
esac

if [ -f "$stamp" ] && [ -x "$py" ] && cmp -s "$stamp" "$req"; then
  echo "$py"
  exit 0
fi

mkdir -p "$cache"
# One installer at a time (two make targets, or two worktrees, may race here).
exec 9>"$cache/.torch-venv.lock"
flock 9
if [ -f "$stamp" ] && [ -x "$py" ] && cmp -s "$stamp" "$req"; then
  echo "$py"
  exit 0
fi

# Built in place under its final name (venv scripts hard-code their own path); the stamp is written last,
# so an interrupted install is simply redone from scratch on the next call.
{
  echo "torch-venv: creating $venv (torch $torch_ver; a first install downloads several GB)"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
  export PIP_CACHE_DIR="$cache/pip"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # The registry's answers are not kept by pip's HTTP cache here, so keep the wheels themselves: download
  # into a wheelhouse under the cache (files already there are not fetched again), install from it alone.
  "$py" -m pip download -r "$req" -d "$cache/wheels"
  "$py" -m pip install --no-index --find-links "$cache/wheels" -r "$req"
  "$py" -c 'import torch, numpy, yaml, safetensors, onnx, onnxruntime, tokenizers; print("torch-venv: torch", torch.__version__)'
} >&2
cp "$req" "$stamp"
echo "torch-venv: ready" >&2
echo "$py"
