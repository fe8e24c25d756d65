#!/usr/bin/env bash
# tools/release/dist.sh BUILD_DIR OUT_BASE — pack a relocatable release (what `make dist` calls after building).
#
# BUILD_DIR holds a DIST=1 build (RPATH $ORIGIN/../lib): cosyvoiced, libcosyvoiced_torch.so, check_unit
# and .torch-<version>. OUT_BASE is the release's path without .tar.gz; its last component is the top
# folder of the tarball:
#
#   bin/cosyvoiced                       the daemon (links no libtorch; espeak-ng works with no torch)
#   lib/                                 every shared library it and the test runner need that is not
#                                        glibc, libstdc++/libgcc_s, the NVIDIA driver or libtorch, plus
#                                        libcosyvoiced_torch.so (the plugin, built for one torch version)
#   libexec/cosyvoiced/check_unit        the unit suites (the GPU check runs their CUDA cases)
#   share/espeak-ng-data/                espeak-ng's data (found by the binary through ../share)
#   share/cosyvoiced/frontend/           tokenizer/ + tn/ (a --frontend-dir for /v1/text/normalize)
#   models/CosyVoice-BlankEN/            the tokenizer files the exporter puts into bundles
#   config/ systemd/ tools/ tests/gpu/   default config, unit, tools/{export,bench,release} (exporter, bench,
#                                        gpu-check), CUDA pytest
#   README.md BUILDINFO.json             how to run it; version, git revision, torch version
#
# The copied libraries get RUNPATH $ORIGIN so they find each other whoever loads them.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR OUT_BASE" >&2; exit 2; }
build="$1"
out="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
top="$(basename "$out")"
stage="$out.part/$top"
torch_stamp=$(ls "$build"/.torch-* | head -n1)
torch_ver=$(sed -n 4p "$torch_stamp")

for f in "$build/cosyvoiced" "$build/libcosyvoiced_torch.so" "$build/libcosyvoiced_torch_cpu.so" "$build/check_unit"; do
  [ -x "$f" ] || { echo "dist: $f missing (run make dist)" >&2; exit 1; }
done
command -v patchelf >/dev/null || { echo "dist: patchelf missing (tools/dev/deps.sh installs it)" >&2; exit 1; }

rm -rf "$out.part"
mkdir -p "$stage"/{bin,lib,libexec/cosyvoiced,share/cosyvoiced/frontend,models,config,systemd,tools,tests/gpu}
install -m 755 "$build/cosyvoiced" "$stage/bin/"
install -m 755 "$build/check_unit" "$stage/libexec/cosyvoiced/"
install -m 755 "$build/libcosyvoiced_torch.so" "$build/libcosyvoiced_torch_cpu.so" "$stage/lib/"

# Libraries: what ldd resolves for the binaries, minus the system's own (glibc, the C++ runtime) and
# what comes from the host at run time (libtorch and CUDA through the plugin; the NVIDIA driver).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil|libanl|libstdc\+\+|libgcc_s|libtorch|libc10|libcuda|libcudart|libnvidia)'
for bin in "$stage/bin/cosyvoiced" "$stage/libexec/cosyvoiced/check_unit"; do
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r soname path; do
  if [[ "$soname" =~ $skip ]]; then continue; fi
  cp -L "$path" "$stage/lib/$soname"
  chmod 644 "$stage/lib/$soname"
  patchelf --set-rpath '$ORIGIN' "$stage/lib/$soname"
done
missing=$(LD_LIBRARY_PATH= ldd "$stage/bin/cosyvoiced" | grep 'not found' || true)
[ -z "$missing" ] || { echo "dist: unresolved libraries: $missing" >&2; exit 1; }

# Data: espeak-ng, tokenizer, TN grammars (wetext's, through tools/export/fetch_tn.sh into the build).
cp -a /usr/lib/x86_64-linux-gnu/espeak-ng-data "$stage/share/espeak-ng-data"
cp -a models/CosyVoice-BlankEN "$stage/models/"
ln -s ../../../models/CosyVoice-BlankEN "$stage/share/cosyvoiced/frontend/tokenizer"
bash tools/export/fetch_tn.sh "$build/frontend" 2>/dev/null
cp -a "$build/frontend/tn" "$stage/share/cosyvoiced/frontend/tn"

cp config/cosyvoiced.json "$stage/config/"
cp systemd/cosyvoiced.service "$stage/systemd/"
mkdir -p "$stage/tools/export/cosyvoice2" "$stage/tools/bench" "$stage/tools/release"
cp -a tools/export/export.py tools/export/make_random_model.py tools/export/add_speaker.py \
  tools/export/requirements-export.txt "$stage/tools/export/"
cp tools/export/cosyvoice2/*.py tools/export/cosyvoice2/README.md "$stage/tools/export/cosyvoice2/"
cp -a tools/bench/bench.py tools/bench/bench_eager.py tools/bench/chart.py tools/bench/bench_cases.json "$stage/tools/bench/"
cp -a tools/release/gpu-check.sh tools/release/gpu_serve_check.py "$stage/tools/release/"
cp tests/gpu/*.py "$stage/tests/gpu/"
cp docs/release.md "$stage/README.md"
cat >"$stage/BUILDINFO.json" <<EOF
{"name": "cosyvoiced", "version": "$("$stage/bin/cosyvoiced" --version | awk '{print $2}')",
 "git": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "torch": "$torch_ver", "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "platform": "linux-x86_64"}
EOF
find "$stage" -name __pycache__ -prune -exec rm -rf {} +

tar -C "$out.part" -czf "$out.tar.gz.part" "$top"
mv "$out.tar.gz.part" "$out.tar.gz"
rm -rf "$out.part"
echo "dist: $out.tar.gz ($(du -h "$out.tar.gz" | cut -f1); torch $torch_ver)"
