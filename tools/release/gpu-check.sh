#!/usr/bin/env bash
# tools/release/gpu-check.sh — every GPU figure of cosyvoiced in one command, on an offline CUDA host, from the
# unpacked release tarball (make dist TORCH_VERSION=<the host's torch>):
#
#   tar xzf cosyvoiced-<v>-linux-x86_64-torch<t>.tar.gz && cd cosyvoiced-<v>-linux-x86_64-torch<t>
#   OUT=/tmp/gpu-check bash tools/release/gpu-check.sh            # full check, <= 8 min on an H100-class host
#   OUT=/tmp/gpu-check bash tools/release/gpu-check.sh --quick    # tiny-bundle tests + one full-bundle case, <= 3 min
#   ALLOW_NO_GPU=1 bash tools/release/gpu-check.sh                # dry run of every step on the CPU (make dist-check):
#                                                         # tiny preset, 1 run of zh_short/en_short, 20 growth requests
#
# Needs: the host's python3 with its CUDA torch (TORCH_PY), numpy, pyyaml, safetensors; nvidia-smi when
# present. No compiler, no package installs, no network: the daemon, its libraries and the CUDA test cases
# (libexec/cosyvoiced/check_unit) come in the tarball; libtorch is the host's (found through TORCH_PY's torch).
#
# Steps (each timed, each with its own log; exit codes and seconds in $OUT/gpu-check.json):
#   host        GPU (nvidia-smi), driver, torch version and CUDA; the tarball's torch must be the host's
#   export      tiny fp32 bundle (test cases) and the full-size random bundle in DTYPE (fp16) with the
#               host's torch (dry run: the tiny preset in fp16, served with cpu_half)
#   cuda-tests  the unit suites' CUDA cases (graph decode = eager decode, memory steady, daemon on cuda)
#               and tests/gpu (pytest: graph capture, no host syncs); dry run: the same suite's http cases
#   serve       tools/release/gpu_serve_check.py: the daemon on the full bundle under the 4 GiB promise
#               (cuda_memory_limit_mb=$CAP_MB): WAV/Opus/stream, short/medium/long, a ~30 s utterance,
#               memory-guard predictions vs measured peaks, a real out-of-memory survived
#   bench       tools/bench/bench.py: engine vs eager on short/medium/long zh/en, CUDA graph on/off, TTFA, RTF,
#               decode ms/token, peak memory, $GROWTH requests of memory growth, all under the cap
#
# Output ($OUT, at most 8 files): gpu-check.json (steps + host facts + the serve figures), bench.json,
# bench.txt, logs.tar.gz (every step's log and the daemons' logs), gpu-check.log.
#
# Environment: OUT (./gpu-check-out) TORCH_PY (python3) DTYPE (fp16) CAP_MB (3276) GROWTH (1000; quick 50)
#              RUNS (2; quick 1) CASES (all; quick en_short) WORK (scratch, $OUT/../gpu-check-work)
# Exit status: 0 when every step passed, 1 otherwise (the JSON says which and why).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK=1
OUT="${OUT:-$root/gpu-check-out}"
TORCH_PY="${TORCH_PY:-python3}"
DTYPE="${DTYPE:-fp16}"
CAP_MB="${CAP_MB:-3276}"
GROWTH="${GROWTH:-$([ -n "$QUICK" ] && echo 50 || echo 1000)}"
RUNS="${RUNS:-$([ -n "$QUICK" ] && echo 1 || echo 2)}"
CASES="${CASES:-$([ -n "$QUICK" ] && echo en_short || echo '')}"
DEVICE=cuda
PRESET=full
if [ -n "${ALLOW_NO_GPU:-}" ]; then
	# the dry run: same steps on the CPU, sized for 2 cores (tiny preset as the "full" bundle)
	DEVICE=cpu
	PRESET=tiny
	GROWTH="${ALLOW_NO_GPU_GROWTH:-20}"
	RUNS=1
	CASES="${CASES:-zh_short,en_short}"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${WORK:-$OUT/../gpu-check-work}"
mkdir -p "$WORK" "$OUT/logs"
WORK="$(cd "$WORK" && pwd)"
rm -f "$OUT/steps.tsv" "$OUT/gpu-check.json"
failed=0
export PYTHONUNBUFFERED=1

say() { echo "gpu-check: $*" | tee -a "$OUT/gpu-check.log" >&2; }

# step NAME CMD...: run, log to $OUT/logs/NAME.log, record rc and seconds
step() {
	local name="$1" t0 t1 rc
	shift
	say "== $name"
	t0=$(date +%s.%N)
	("$@") >"$OUT/logs/$name.log" 2>&1
	rc=$?
	t1=$(date +%s.%N)
	printf '%s\t%s\t%s\n' "$name" "$rc" "$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")" >>"$OUT/steps.tsv"
	if [ "$rc" -ne 0 ]; then
		failed=1
		say "$name FAILED (exit $rc); last lines of logs/$name.log:"
		tail -n 20 "$OUT/logs/$name.log" >&2
	else
		say "$name ok ($(awk "BEGIN{printf \"%.0f\", $t1 - $t0}") s)"
	fi
	return "$rc"
}

host() {
	date -u '+%Y-%m-%d %H:%M UTC'
	nproc
	if command -v nvidia-smi >/dev/null 2>&1; then
		nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
		nvidia-smi
	else
		echo "no nvidia-smi"
	fi
	"$TORCH_PY" - "$root/BUILDINFO.json" "$DEVICE" <<'EOF'
import json, os, sys
import torch
info = json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else {}
want, have = info.get("torch", "?"), torch.__version__
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
ok = torch.cuda.is_available()
print(f"torch {have} cuda {torch.version.cuda} available {ok} "
      f"device {torch.cuda.get_device_name() if ok else '-'} lib {lib}")
print(f"TORCH_LIB={lib}")
if want.split("+")[0] != have.split("+")[0]:
    sys.exit(f"this release is built for torch {want}, the host has torch {have}: "
             f"build one with `make dist TORCH_VERSION={have.split('+')[0]}`")
if sys.argv[2] == "cuda" and not ok:
    sys.exit("torch sees no CUDA device (set ALLOW_NO_GPU=1 for a dry run on the CPU)")
for m in ("numpy", "yaml", "safetensors"):
    __import__(m)
EOF
}

export_bundles() {
	rm -rf "$WORK/tiny" "$WORK/tiny-model" "$WORK/big"
	"$TORCH_PY" tools/export/export.py --random tiny --out "$WORK/tiny" --dtype fp32 --keep-model "$WORK/tiny-model" &&
		"$TORCH_PY" tools/export/export.py --random "$PRESET" --out "$WORK/big" --dtype "$DTYPE" &&
		du -sh "$WORK/tiny" "$WORK/big"
}

cuda_tests() {
	local rc=0 tcase=cuda
	[ "$DEVICE" = cuda ] || tcase=http
	# The unit suites' CUDA cases (registered by CVTEST_CUDA=1); a dry run takes the same suite's
	# daemon cases on the CPU. Engines opened in-process find libtorch through python3 (TORCH_PY first).
	env PATH="$(dirname "$(command -v "$TORCH_PY")"):$PATH" CVTEST_CUDA=$([ "$DEVICE" = cuda ] && echo 1 || echo 0) CK_RUN_SUITE=cosyvoice2 CK_RUN_CASE=$tcase \
		CK_DEFAULT_TIMEOUT=600 COSYVOICE2_TEST_BUNDLE="$WORK/tiny" COSYVOICE2_TEST_MODEL="$WORK/tiny-model" \
		TORCH_PYTHON="$TORCH_PY" CVTEST_BIN="$root/bin/cosyvoiced" COSYVOICED_TORCH_LIB="$TORCH_LIB" \
		"$root/libexec/cosyvoiced/check_unit" || rc=1
	if [ "$DEVICE" = cuda ]; then
		COSYVOICE2_TEST_BUNDLE="$WORK/tiny" "$TORCH_PY" -m pytest -q -p no:cacheprovider tests/gpu || rc=1
	else
		echo "tests/gpu: not run (dry run on the CPU: CUDA graph capture and sync checks need a GPU)"
	fi
	return $rc
}

serve() {
	"$TORCH_PY" tools/release/gpu_serve_check.py --daemon "$root/bin/cosyvoiced" --bundle "$WORK/big" --device "$DEVICE" \
		--cap-mb "$CAP_MB" --torch-lib "$TORCH_LIB" --out "$OUT/serve.json" --log-dir "$WORK/logs-serve" \
		$([ -n "$QUICK" ] && echo --quick) ${CASES:+--case-ids "$CASES"}
}

bench() {
	local args=(--bundle "$WORK/big" --device "$DEVICE" --daemon "$root/bin/cosyvoiced" --out "$OUT/bench.json"
		--runs "$RUNS" --log-dir "$WORK/logs-bench" --growth-requests "$GROWTH"
		--daemon-env "COSYVOICED_TORCH_LIB=$TORCH_LIB")
	[ -z "$CASES" ] || args+=(--case-ids "$CASES")
	if [ "$DEVICE" = cuda ]; then
		args+=(--graph-env COSYVOICED_CUDA_GRAPH "--daemon-arg=--cuda-memory-limit-mb=$CAP_MB")
	else
		args+=("--daemon-arg=--cpu-half=true")
	fi
	[ -z "$QUICK" ] && [ "$DEVICE" = cuda ] || args+=(--concurrency 1)
	"$TORCH_PY" tools/bench/bench.py "${args[@]}"
}

if step host host; then
	TORCH_LIB=$(sed -n 's/^TORCH_LIB=//p' "$OUT/logs/host.log")
	export TORCH_LIB
	say "$(grep -m1 '^torch ' "$OUT/logs/host.log")"
	step export export_bundles &&
		{
			step cuda-tests cuda_tests
			step serve serve
			step bench bench
		}
fi

# ---- summary: gpu-check.json, logs.tar.gz (at most 8 files in $OUT)
"$TORCH_PY" - "$OUT" "$QUICK" "$DEVICE" <<'EOF' || python3 - "$OUT" <<'EOF2'
import json, os, sys
out, quick, device = sys.argv[1], bool(sys.argv[2]), sys.argv[3]
def rd(p):
    p = os.path.join(out, p)
    return open(p, errors="replace").read() if os.path.exists(p) else ""
steps = []
for line in rd("steps.tsv").splitlines():
    n, rc, s = line.split("\t")
    steps.append({"step": n, "exit": int(rc), "seconds": float(s or 0), "log": f"logs/{n}.log"})
host = rd("logs/host.log").splitlines()
doc = {"date": host[0] if host else None, "cpus": host[1] if len(host) > 1 else None,
       "gpu": host[2] if len(host) > 2 else None,
       "torch": next((l for l in host if l.startswith("torch ")), None),
       "mode": "quick" if quick else "full", "device": device,
       "seconds": round(sum(s["seconds"] for s in steps), 1), "steps": steps,
       "ok": bool(steps) and all(s["exit"] == 0 for s in steps),
       "serve": json.loads(rd("serve.json")) if rd("serve.json") else None,
       "bench": "bench.json" if os.path.exists(os.path.join(out, "bench.json")) else None}
json.dump(doc, open(os.path.join(out, "gpu-check.json"), "w"), indent=1)
print(json.dumps({k: doc[k] for k in ("date", "gpu", "torch", "mode", "seconds", "ok")}, indent=1))
for s in steps:
    print(f"  {s['step']:<11} exit {s['exit']}  {s['seconds']:7.1f} s")
EOF
import json, sys
print(json.dumps({"error": "no python to summarize"}))
EOF2
cp -r "$WORK"/logs-* "$OUT/logs/" 2>/dev/null
tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs steps.tsv $([ -f "$OUT/serve.json" ] && echo serve.json) &&
	rm -rf "$OUT/logs" "$OUT/steps.tsv" "$OUT/serve.json"
say "results in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit "$failed"
