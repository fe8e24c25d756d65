#!/usr/bin/env bash
# tools/release/docker-check.sh — the image's check: build the Dockerfile (runtime image and the `tools`
# target) as a user would, run it, and check what a user relies on. Not part of `make test` (it builds
# for 10–20 minutes and downloads the torch wheels into the image); run it before changing the
# Dockerfile, make install or the start-up path.
#
# Engine: Docker when `docker info` answers, else podman (ENGINE=docker|podman forces one). Base images:
# debian:12 and debian:12-slim are pulled; where no registry is reachable they are made here from
# `debootstrap --variant=minbase bookworm` (tools/release/bare-root.sh) and tagged under their official
# names. Podman on hosts without a full cgroup v2 or without CAP_SYS_RESOURCE: the script probes which
# runtime (crun, else runc) and which rlimits (the spec's, else 4096) can start a container and uses
# those for the build and the runs (it prints what it chose).
#
# Checks (one PASS/FAIL line each; exit 1 on any failure):
#   build       both targets build; the image size and what dominates it are printed
#   tools       the tools image exports a random tiny bundle as uid 4242 under umask 077: every file it
#               writes is 0644, every directory 0755, owned by 4242 (export by another user)
#   ready       the runtime image, on a port other than 8080, with that bundle mounted read-only and
#               COSYVOICED_DEVICE=cpu, as its own uid 10001: /readyz 200, engine cosyvoice2
#   wav, opus   POST /tts audio decoded by independent tools (soxi; opusinfo)
#   metrics     GET /metrics passes promtool check metrics
#   health      the HEALTHCHECK (`cosyvoiced --healthcheck`, following --port) turns the container healthy
#   log         no error lines in the start-up log (HOME is writable: espeak-ng stays quiet)
#   stop        `docker stop` drains: the container exits 0 and the log says so
#
#   sudo bash tools/release/docker-check.sh [--keep]
# Environment: ENGINE, PORT (default 18490), TORCH_VERSION (build argument, default: the pin),
# WORK (default a temp dir; --keep leaves it and the images), IMAGE (default cosyvoiced:check).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PORT:-18490}"
IMAGE="${IMAGE:-cosyvoiced:check}"
TOOLS_IMAGE="${IMAGE%%:*}-tools:${IMAGE##*:}"
keep=0
[ "${1:-}" = "--keep" ] && keep=1
say() { echo "docker-check: $*"; }
die() { echo "docker-check: $*" >&2; exit 2; }
fails=0
pass() { printf 'docker-check: PASS %-8s %s\n' "$1" "$2"; }
fail() { printf 'docker-check: FAIL %-8s %s\n' "$1" "$2"; fails=$((fails + 1)); }

for t in curl soxi opusinfo; do command -v "$t" >/dev/null || die "needs $t (sox, opus-tools: tools/dev/deps.sh)"; done
promtool="$(bash "$repo/tools/dev/deps.sh" --print-promtool)"
[ -x "$promtool" ] || die "needs promtool: run tools/dev/deps.sh"

# ---------------------------------------------------------------- engine
ENGINE="${ENGINE:-}"
if [ -z "$ENGINE" ]; then
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
	elif command -v podman >/dev/null; then ENGINE=podman
	else die "neither a Docker engine nor podman here"; fi
fi
# podman without systemd as PID 1 logs "unable to get systemd connection" for every HEALTHCHECK timer it
# cannot create (the check runs the health command itself, below): those lines are dropped.
eng() { "$ENGINE" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }
E=(eng)
RUN_OPTS=()   # extra `run` options the probe found necessary (podman only)
BUILD_OPTS=() # and the same for `build`

WORK="${WORK:-$(mktemp -d /var/tmp/cv-docker-check.XXXXXX)}"
mkdir -p "$WORK"
ctr="cvcheck-$$"
cleanup() {
	"${E[@]}" rm -f "$ctr" >/dev/null 2>&1
	[ "$keep" = 1 ] && { say "kept $WORK and the images $IMAGE, $TOOLS_IMAGE"; return; }
	"${E[@]}" rmi -f "$IMAGE" "$TOOLS_IMAGE" >/dev/null 2>&1
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# Base images: the registry's, else made here (same names, so the Dockerfile is used unchanged).
base_image() {
	local name="$1" tarball
	"${E[@]}" image inspect "$name" >/dev/null 2>&1 && return 0
	if "${E[@]}" pull -q "$name" >/dev/null 2>&1; then say "pulled $name"; return 0; fi
	[ "$(id -u)" -eq 0 ] || die "no registry for $name and not root (debootstrap needs root)"
	tarball="$(BARE_ROOT_INCLUDE=ca-certificates bash "$repo/tools/release/bare-root.sh")" || die "bare-root.sh failed"
	zstd -dc "$tarball" | "${E[@]}" import - "$name" >/dev/null || die "cannot import $tarball as $name"
	say "no registry: $name made from $(basename "$tarball") (debootstrap minbase bookworm + ca-certificates)"
}
base_image docker.io/library/debian:12
base_image docker.io/library/debian:12-slim

if [ "$ENGINE" = podman ]; then
	probe_ok=0
	for rt in "" runc; do
		[ -n "$rt" ] && ! command -v "$rt" >/dev/null && continue
		for lim in "" "--ulimit nproc=4096:4096 --ulimit nofile=4096:4096"; do
			opts=(${rt:+--runtime "$rt"} $lim --network host)
			if "${E[@]}" run --rm "${opts[@]}" docker.io/library/debian:12-slim true >/dev/null 2>"$WORK/probe.err"; then
				RUN_OPTS=("${opts[@]}")
				# --format docker: OCI images have no HEALTHCHECK, podman's default format drops it
				BUILD_OPTS=(${rt:+--runtime "$rt"} $lim --format docker)
				probe_ok=1
				break 2
			fi
		done
	done
	[ "$probe_ok" = 1 ] || { cat "$WORK/probe.err" >&2; die "podman cannot start a container here"; }
	say "podman run options: ${RUN_OPTS[*]}"
else
	RUN_OPTS=(--network host)
fi

# ---------------------------------------------------------------- build
rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
bargs=(--build-arg "GIT_REV=$rev" ${TORCH_VERSION:+--build-arg "TORCH_VERSION=$TORCH_VERSION"})
# A CA bundle pip is told to trust here (a TLS-intercepting proxy) goes to the build as the pip_cert secret.
pip_cert="${PIP_CERT:-$(pip3 config get global.cert 2>/dev/null || true)}"
if [ -n "$pip_cert" ] && [ -s "$pip_cert" ]; then
	bargs+=(--secret "id=pip_cert,src=$pip_cert")
	say "pip's CA bundle $pip_cert goes to the build as secret pip_cert"
fi
t0=$SECONDS
if "${E[@]}" build "${BUILD_OPTS[@]}" --network host "${bargs[@]}" -t "$IMAGE" "$repo" >"$WORK/build.log" 2>&1 &&
	"${E[@]}" build "${BUILD_OPTS[@]}" --network host "${bargs[@]}" --target tools -t "$TOOLS_IMAGE" "$repo" \
		>"$WORK/build-tools.log" 2>&1; then
	size=$("${E[@]}" image inspect --format '{{.Size}}' "$IMAGE")
	tsize=$("${E[@]}" image inspect --format '{{.Size}}' "$TOOLS_IMAGE")
	pass build "$(( SECONDS - t0 )) s; $IMAGE $(awk -v b="$size" 'BEGIN{printf "%.2f GB", b/1e9}'), $TOOLS_IMAGE $(awk -v b="$tsize" 'BEGIN{printf "%.2f GB", b/1e9}')"
	# What dominates: make install's tree (libtorch, the CUDA libraries) against the rest of the image.
	"${E[@]}" run --rm "${RUN_OPTS[@]}" --entrypoint sh "$IMAGE" -c \
		'cd /usr/local/lib/cosyvoiced && printf "/usr/local/lib/cosyvoiced %s MB:" "$(du -sm . | cut -f1)";
		 du -sm torch/lib nvidia/* | sort -rn | head -8 | awk "{printf \" %s %s,\", \$2, \$1}";
		 printf " everything else %s MB\n" "$(du -smx --exclude=/usr/local/lib/cosyvoiced / 2>/dev/null | cut -f1)"' \
		2>/dev/null | sed 's/^/docker-check:   sizes: /'
	"${E[@]}" run --rm "${RUN_OPTS[@]}" "$IMAGE" --version | sed 's/^/docker-check:   /'
else
	tail -n 40 "$WORK/build.log" "$WORK/build-tools.log" 2>/dev/null
	fail build "see $WORK/build.log"
	exit 1
fi

# ---------------------------------------------------------------- tools: export as another uid
models="$WORK/models"
mkdir -p "$models" && chmod 1777 "$models"
if "${E[@]}" run --rm "${RUN_OPTS[@]}" -u 4242:4242 -v "$models:/models" --entrypoint sh "$TOOLS_IMAGE" -c \
	'umask 077 && cosyvoiced-tools export --random tiny --out /models/tiny --dtype fp32' >"$WORK/export.log" 2>&1; then
	bad="$(find "$models/tiny" \( -type f ! -perm 0644 \) -o \( -type d ! -perm 0755 \) -o ! -uid 4242 | head -3)"
	n=$(find "$models/tiny" -type f | wc -l)
	if [ -z "$bad" ] && [ -f "$models/tiny/manifest.json" ]; then
		pass tools "exported as uid 4242 under umask 077: $n files, all 0644 (directories 0755)"
	else
		fail tools "wrong modes or owner: $bad"
	fi
	"${E[@]}" run --rm "${RUN_OPTS[@]}" "$TOOLS_IMAGE" add-speaker --help >/dev/null 2>&1 ||
		fail tools "add-speaker --help failed"
else
	tail -n 20 "$WORK/export.log"
	fail tools "export failed"
fi

# ---------------------------------------------------------------- runtime
"${E[@]}" run -d --name "$ctr" "${RUN_OPTS[@]}" -v "$models/tiny:/models/tiny:ro" \
	-e COSYVOICED_MODEL_DIR=/models/tiny -e COSYVOICED_DEVICE=cpu "$IMAGE" \
	--listen 127.0.0.1 --port "$PORT" --config /etc/cosyvoiced/cosyvoiced.json >/dev/null || die "run failed"
url="http://127.0.0.1:$PORT"
ready=0
for _ in $(seq 1 240); do
	curl -sf "$url/readyz" >"$WORK/readyz.json" 2>/dev/null && { ready=1; break; }
	[ "$("${E[@]}" inspect --format '{{.State.Running}}' "$ctr")" = true ] || break
	sleep 0.5
done
if [ "$ready" = 1 ] && grep -q cosyvoice2 "$WORK/readyz.json"; then
	pass ready "/readyz 200 on port $PORT, engine cosyvoice2, uid $("${E[@]}" inspect --format '{{.Config.User}}' "$ctr"), bundle of uid 4242 read-only"
else
	"${E[@]}" logs "$ctr" 2>&1 | tail -n 20
	fail ready "not ready"
fi

code=$(curl -s -o "$WORK/a.wav" -w '%{http_code}' -H 'Content-Type: application/json' \
	-d '{"text":"Hello from the container.","format":"wav"}' "$url/tts")
if [ "$code" = 200 ] && soxi "$WORK/a.wav" >"$WORK/soxi.txt" 2>&1; then
	pass wav "$(awk -F': ' '/Sample Rate|Duration/{printf "%s ", $2}' "$WORK/soxi.txt")(soxi)"
else
	fail wav "HTTP $code: $(head -c 200 "$WORK/a.wav")"
fi
code=$(curl -s -o "$WORK/a.opus" -w '%{http_code}' -H 'Content-Type: application/json' \
	-d '{"text":"Hello from the container.","format":"opus"}' "$url/tts")
if [ "$code" = 200 ] && opusinfo "$WORK/a.opus" >"$WORK/opusinfo.txt" 2>&1; then
	pass opus "$(grep -m1 -o 'Playback length: .*' "$WORK/opusinfo.txt") (opusinfo)"
else
	fail opus "HTTP $code: $(head -c 200 "$WORK/a.opus")"
fi

if curl -sf "$url/metrics" >"$WORK/metrics.txt" && "$promtool" check metrics <"$WORK/metrics.txt" >"$WORK/promtool.txt" 2>&1; then
	pass metrics "$(grep -c '^# TYPE' "$WORK/metrics.txt") families, promtool clean"
else
	fail metrics "$(head -5 "$WORK/promtool.txt")"
fi

# Docker runs the HEALTHCHECK on its own schedule; podman without systemd timers runs it when asked.
health=""
for _ in $(seq 1 40); do
	[ "$ENGINE" = podman ] && "${E[@]}" healthcheck run "$ctr" >/dev/null 2>&1
	health="$("${E[@]}" inspect --format '{{.State.Health.Status}}' "$ctr" 2>/dev/null ||
		"${E[@]}" inspect --format '{{.State.Healthcheck.Status}}' "$ctr" 2>/dev/null)"
	[ "$health" = healthy ] && break
	sleep 1
done
[ "$health" = healthy ] && pass health "healthy (cosyvoiced --healthcheck on port $PORT)" || fail health "status '$health'"

"${E[@]}" logs "$ctr" >"$WORK/run.log" 2>&1
if grep -E 'level=(error|fatal)' "$WORK/run.log" >"$WORK/errors.txt"; then
	fail log "$(head -3 "$WORK/errors.txt")"
else
	pass log "no error lines in $(wc -l <"$WORK/run.log") log lines"
fi

"${E[@]}" stop -t 30 "$ctr" >/dev/null
rc="$("${E[@]}" inspect --format '{{.State.ExitCode}}' "$ctr")"
"${E[@]}" logs "$ctr" >"$WORK/run.log" 2>&1
if [ "$rc" = 0 ] && grep -q 'draining' "$WORK/run.log"; then
	pass stop "exit 0 after draining: $(grep -m1 'draining' "$WORK/run.log" | cut -c1-100)"
else
	fail stop "exit $rc"
fi

[ "$fails" -eq 0 ] && say "all checks passed" || say "$fails check(s) failed"
[ "$fails" -eq 0 ]
