#!/usr/bin/env bash
# tools/dev/torch-stamp.sh VERSION — what the Makefile needs to build the libtorch plugin against torch VERSION,
# one item per line:
#   1. the torch package directory (include/, lib/): the pinned venv's when VERSION is the pin
#      (tools/export/requirements-export.txt), else the unpacked wheel (tools/dev/torch-wheel.sh);
#   2. its C++ ABI flag (_GLIBCXX_USE_CXX11_ABI: 1 when libc10 exports __cxx11 symbols);
#   3. the CUDA runtime library beside it (pip's nvidia wheels), else the CUDA toolkit's of the soname
#      libtorch_cuda needs, else "" (the plugin then takes cudart from the libtorch_cuda it is loaded with);
#   4. its version (torch/version.py's __version__).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 VERSION" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pin="$(sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' "$here/../export/requirements-export.txt" | head -n1)"
if [ "$1" = "$pin" ]; then
  py=$(bash "$here/torch-venv.sh")
  dir=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
else
  dir=$(bash "$here/torch-wheel.sh" "$1")
fi
[ -f "$dir/lib/libc10.so" ] || { echo "torch-stamp: $dir/lib/libc10.so missing" >&2; exit 1; }
abi=0
if [ "$(nm -D --defined-only "$dir/lib/libc10.so" | grep -c '__cxx11' || true)" -gt 0 ]; then abi=1; fi
cudart=$(ls "$dir"/../nvidia/*/lib/libcudart.so.* "$dir"/../nvidia/cuda_runtime/lib/libcudart.so.* 2>/dev/null | sort | head -n1 || true)
if [ -z "$cudart" ]; then
  # a wheel alone: the CUDA toolkit's runtime of the soname libtorch_cuda wants (same interface)
  want=$(readelf -d "$dir/lib/libtorch_cuda.so" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(libcudart\.so\.[0-9]*\)\].*/\1/p')
  for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64; do
    if [ -n "$want" ] && [ -e "$d/$want" ]; then cudart="$d/$want"; break; fi
  done
fi
ver=$(sed -n "s/^__version__ = ['\"]\([^'\"]*\)['\"].*/\1/p" "$dir/version.py")
[ -n "$ver" ] || { echo "torch-stamp: no __version__ in $dir/version.py" >&2; exit 1; }
echo "$dir"
echo "$abi"
echo "${cudart:+$(realpath "$cudart")}"
echo "$ver"
