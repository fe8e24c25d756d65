#!/usr/bin/env bash
# tools/release/torch-pin.sh — re-pin the torch venv to another torch version (the Dockerfile's
# `--build-arg TORCH_VERSION=...`), with the CUDA header wheel that version's CUDA needs.
#
#   tools/release/torch-pin.sh VERSION [REQUIREMENTS]     (default tools/export/requirements-export.txt)
#
# Rewrites the `torch==` line and the CUDA header line of the requirements file in place; the venv
# (tools/dev/torch-venv.sh), the plugin build and `make install` then all follow the new pin. Torch's
# CUDA headers include crt/host_defines.h and nv/target, which the CUDA runtime wheels lack, so each CUDA
# generation needs its own header wheels:
#   torch 2.8 – 2.10  CUDA 12.8  nvidia-cuda-nvcc-cu12==12.8.93 nvidia-cuda-cccl-cu12==12.8.90  (driver 525+)
#   torch 2.11        CUDA 13.0  nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85            (driver 580+)
# Another version is refused: add its row here once its CUDA and header wheel are known.
set -euo pipefail

ver="${1:?usage: torch-pin.sh VERSION [REQUIREMENTS]}"
req="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../export" && pwd)/requirements-export.txt}"
[ -w "$req" ] || { echo "torch-pin: cannot write $req" >&2; exit 2; }

case "$ver" in
2.8.* | 2.9.* | 2.10.*) headers="nvidia-cuda-nvcc-cu12==12.8.93 nvidia-cuda-cccl-cu12==12.8.90" ;;
2.11.*) headers="nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85" ;;
*)
	echo "torch-pin: torch $ver: no known CUDA header wheel (known: 2.8-2.10 on CUDA 12.8, 2.11 on CUDA 13.0);" \
		"add a row to tools/release/torch-pin.sh" >&2
	exit 2
	;;
esac

grep -q '^torch==' "$req" || { echo "torch-pin: no torch== line in $req" >&2; exit 2; }
hdr='^nvidia-cuda-(nvcc-cu12|crt|cccl-cu12|cccl)=='
grep -Eq "$hdr" "$req" || { echo "torch-pin: no CUDA header lines in $req" >&2; exit 2; }
# The header lines go where the first one was; the torch line is rewritten in place.
awk -v ver="$ver" -v hdrs="$headers" -v re="$hdr" '
	/^torch==/ { print "torch==" ver; next }
	$0 ~ re { if (!done) { n = split(hdrs, h, " "); for (i = 1; i <= n; i++) print h[i]; done = 1 } next }
	{ print }' "$req" >"$req.tmp" && mv "$req.tmp" "$req"
echo "torch-pin: $req pins torch==$ver and $headers"
