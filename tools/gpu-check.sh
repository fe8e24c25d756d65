#!/usr/bin/env bash
# tools/gpu-check.sh — the GPU check of issue 6 in one command, on any machine with an NVIDIA GPU and a
# CUDA build of PyTorch (its python holds torch with CUDA and the C++ headers):
#
#   1. records the GPU (nvidia-smi), the date, the torch build;
#   2. builds the daemon against THAT torch's libtorch (WITH_TORCH=1, build/.torch-ok written from it),
#      installing Debian packages through tools/deps.sh only when some are missing (works offline when
#      they are all present);
#   3. exports the full-size random bundle in fp16 (and the tiny test bundle) with that torch;
#   4. runs the test suite's CUDA cases (GPU_TESTS);
#   5. runs `make bench` on cuda with the full bundle;
#   6. writes $OUT/gpu-check.json (steps, exit codes, seconds, GPU, torch), $OUT/bench.json + .txt and a copy
#      of every log under $OUT/logs.
#
# Environment (all optional):
#   OUT=build/gpu-check     where results go           TORCH_PY=python3   python with CUDA torch
#   RUNS=2  CASES=a,b       bench runs / case ids      BENCH_ARGS=...     extra tools/bench.py arguments
#   GPU_TESTS="..."         the CUDA test command (default below)      JOBS=$(nproc)
#   WHEELS=DIR              local wheels for missing Python packages (numpy pyyaml safetensors tokenizers)
#   GROWTH=1000             requests between the two GPU-memory readings (steady state: no growth)
#   SKIP_BUILD=1 SKIP_TESTS=1 SKIP_BENCH=1   leave a step out
#   ALLOW_NO_GPU=1 PRESET=tiny DTYPE=fp32    dry run of the script itself on a CPU machine (device cpu)
#
# Exit status: 0 when every step that ran passed, 1 otherwise (the JSON says which).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1
OUT="${OUT:-build/gpu-check}"
TORCH_PY="${TORCH_PY:-python3}"
RUNS="${RUNS:-2}"
CASES="${CASES:-}"
JOBS="${JOBS:-$(nproc)}"
PRESET="${PRESET:-full}"
DTYPE="${DTYPE:-fp16}"
BUNDLE_DIR="${BUNDLE_DIR:-build/bundles/$PRESET-$DTYPE}"
DEVICE=cuda
[ -z "${ALLOW_NO_GPU:-}" ] || DEVICE=cpu
GPU_TESTS="${GPU_TESTS:-make -j$JOBS WITH_TORCH=1 check integration}"
mkdir -p "$OUT/logs"
OUT="$(cd "$OUT" && pwd)"
summary="$OUT/steps.tsv"
: >"$summary"
failed=0

say() { echo "gpu-check: $*" | tee -a "$OUT/logs/gpu-check.log" >&2; }

# step NAME CMD...: run, log to $OUT/logs/NAME.log, record rc and seconds
step() {
	local name="$1"
	shift
	local t0 t1 rc
	say "== $name: $*"
	t0=$(date +%s.%N)
	("$@") >"$OUT/logs/$name.log" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN{print $t1 - $t0}")" >>"$summary"
	if [ "$rc" -ne 0 ]; then
		failed=1
		say "$name FAILED (exit $rc); last lines of $OUT/logs/$name.log:"
		tail -n 15 "$OUT/logs/$name.log" >&2
	else
		say "$name ok"
	fi
	return "$rc"
}

# ---- 1. machine
date -u '+%Y-%m-%d %H:%M UTC' >"$OUT/date.txt"
if command -v nvidia-smi >/dev/null 2>&1; then
	nvidia-smi >"$OUT/logs/nvidia-smi.txt" 2>&1
	nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>/dev/null
else
	echo "no nvidia-smi" >"$OUT/gpu.txt"
fi
say "GPU: $(head -n1 "$OUT/gpu.txt"), $(cat "$OUT/date.txt")"

torch_info() {
	"$TORCH_PY" - <<'EOF'
import os, sys, torch
ok = torch.cuda.is_available()
inc = os.path.join(os.path.dirname(torch.__file__), "include", "torch", "csrc", "api", "include", "torch", "torch.h")
print(f"torch {torch.__version__} cuda {torch.version.cuda} available {ok} "
      f"device {torch.cuda.get_device_name() if ok else '-'} headers {os.path.isfile(inc)}")
sys.exit(0 if (ok or os.environ.get("ALLOW_NO_GPU")) and os.path.isfile(inc) else 1)
EOF
}
if ! step torch torch_info; then
	say "TORCH_PY=$TORCH_PY has no usable CUDA torch with C++ headers; nothing else can run"
fi
cat "$OUT/logs/torch.log" >&2

python_deps() {
	if "$TORCH_PY" -c 'import numpy, yaml, safetensors, tokenizers' 2>/dev/null; then
		echo "python packages present"
		return 0
	fi
	if [ -n "${WHEELS:-}" ]; then
		"$TORCH_PY" -m pip install --no-index --find-links "$WHEELS" numpy pyyaml safetensors tokenizers || return 1
	else
		grep -v -E '^(torch|#|$)' tools/requirements-export.txt | grep -E '^(numpy|pyyaml|PyYAML|safetensors|tokenizers|pytest)' \
			>"$OUT/logs/py-reqs.txt"
		"$TORCH_PY" -m pip install -r "$OUT/logs/py-reqs.txt" || return 1
	fi
	"$TORCH_PY" -c 'import numpy, yaml, safetensors, tokenizers'
}

system_deps() {
	# tools/deps.sh needs apt and a network: skip it when pkg-config already finds every library.
	local pk="libmicrohttpd jansson libopusenc opus flac soxr libsystemd espeak-ng libutf8proc check libcurl"
	if pkg-config --exists $pk 2>/dev/null && [ -f /usr/include/lame/lame.h ]; then
		echo "system libraries present: tools/deps.sh skipped"
		mkdir -p build && touch build/.deps-ok
		return 0
	fi
	bash tools/deps.sh && mkdir -p build && touch build/.deps-ok
}

torch_stamp() {
	# The engine Makefile reads libtorch's directory (line 1) and C++ ABI (line 2) from build/.torch-ok;
	# write it from TORCH_PY so the daemon links against this machine's torch, not the pinned venv.
	mkdir -p build
	"$TORCH_PY" -c 'import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' \
		>build/.torch-ok.tmp && mv build/.torch-ok.tmp build/.torch-ok && touch build/.torch-ok && cat build/.torch-ok
}

cuda_inc() {
	# CUDA runtime headers: the toolkit's, else the ones pip's nvidia-* wheels ship.
	local d
	for d in "${CUDA_HOME:-/usr/local/cuda}/include" /usr/local/cuda/include; do
		[ -f "$d/cuda_runtime_api.h" ] && { echo "$d"; return; }
	done
	d=$("$TORCH_PY" - <<'EOF' 2>/dev/null
import glob, os, site
for s in site.getsitepackages():
    for h in sorted(glob.glob(os.path.join(s, "nvidia", "**", "include", "cuda_runtime_api.h"), recursive=True)):
        print(os.path.dirname(h)); raise SystemExit
EOF
)
	echo "${d:-/usr/local/cuda/include}"
}

build() {
	make -j"$JOBS" WITH_TORCH=1 CUDA_INC="$(cuda_inc)" all &&
		{ ldd build/cosyvoiced | grep -E 'torch|c10' || true; }
}

export_bundles() {
	local want
	want=$("$TORCH_PY" -c 'import torch; print(torch.__version__)')
	if [ -f "$BUNDLE_DIR/manifest.json" ] && grep -q "\"torch_version\": \"$want\"" "$BUNDLE_DIR/manifest.json" &&
		grep -q "\"dtype\": \"$DTYPE\"" "$BUNDLE_DIR/manifest.json"; then
		echo "reusing $BUNDLE_DIR"
	else
		"$TORCH_PY" tools/export.py --random "$PRESET" --out "$BUNDLE_DIR" --dtype "$DTYPE" || return 1
	fi
	# the engine tests' tiny bundle (Makefile TINY_BUNDLE), exported with the same torch
	"$TORCH_PY" tools/export.py --random tiny --out build/tiny-bundle --dtype fp32 >/dev/null &&
		touch build/tiny-bundle/manifest.json
}

gpu_tests() {
	export COSYVOICED_TEST_DEVICE="$DEVICE"
	[ "$DEVICE" != cuda ] || export COSYVOICED_TEST_CUDA=1
	local rc=0
	bash -c "$GPU_TESTS" || rc=1
	# the model code's CUDA cases (graph capture of llm_decode_at, no host syncs in flow/HiFT)
	if [ "$DEVICE" = cuda ]; then
		COSYVOICE2_TEST_BUNDLE="$root/build/tiny-bundle" "$TORCH_PY" -m pytest -q tests/gpu -p no:cacheprovider ||
			rc=1
	fi
	return $rc
}

bench() {
	make WITH_TORCH=1 CUDA_INC="$(cuda_inc)" bench TORCH_PY="$TORCH_PY" BUNDLE="$BUNDLE_DIR" DEVICE="$DEVICE" \
		BENCH_OUT="$OUT/bench.json" RUNS="$RUNS" CASES="$CASES" \
		BENCH_ARGS="--log-dir $OUT/logs/bench --graph-env COSYVOICED_CUDA_GRAPH --growth-requests ${GROWTH:-1000} ${BENCH_ARGS:-}"
}

if [ "$failed" -eq 0 ]; then
	step python-deps python_deps
	step system-deps system_deps
	if [ -z "${SKIP_BUILD:-}" ]; then
		step torch-stamp torch_stamp && step build build
	fi
	step export export_bundles
	[ -n "${SKIP_TESTS:-}" ] || step gpu-tests gpu_tests
	[ -n "${SKIP_BENCH:-}" ] || step bench bench
fi

# ---- summary JSON
"$TORCH_PY" - "$OUT" <<'EOF' || python3 - "$OUT" <<'EOF2'
import json, os, sys
out = sys.argv[1]
rd = lambda p: open(os.path.join(out, p)).read().strip() if os.path.exists(os.path.join(out, p)) else None
steps = []
for line in open(os.path.join(out, "steps.tsv")):
    n, rc, s = line.rstrip("\n").split("\t")
    steps.append({"step": n, "exit": int(rc), "seconds": float(s or 0), "log": f"logs/{n}.log"})
doc = {"date": rd("date.txt"), "gpu": rd("gpu.txt"), "torch": rd("logs/torch.log"), "steps": steps,
       "ok": all(s["exit"] == 0 for s in steps), "bench": "bench.json" if os.path.exists(os.path.join(out, "bench.json")) else None}
json.dump(doc, open(os.path.join(out, "gpu-check.json"), "w"), indent=1)
print(json.dumps(doc, indent=1))
EOF
import json, sys
print(json.dumps({"error": "no python to summarize"}))
EOF2
say "results in $OUT (gpu-check.json, bench.json, logs/)"
exit "$failed"
