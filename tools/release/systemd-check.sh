#!/usr/bin/env bash
# tools/release/systemd-check.sh — the operator's check: cosyvoiced installed with `make install` and run
# by a real systemd under the shipped, hardened unit. Not part of `make test` (needs root, a Debian
# mirror once, and a few minutes); run it before changing the unit, main.c's notify code or the install.
#
# What it does: a Debian 12 root (tools/release/bare-root.sh with systemd and our run-time libraries),
# `make install DESTDIR=<root>`, the system user, the tiny CosyVoice2 bundle under
# /var/lib/cosyvoiced/models; then it boots the root with `systemd-nspawn -b` and checks, through
# `nsenter` into the container and curl from the host (the network is shared):
#   ready       the unit is active only once /readyz is 200; STATUS says "serving"; the journal names
#               every start-up stage
#   stop        `systemctl stop` drains and the main process exits 0 (Result=success)
#   kill9       `kill -9` of the main process: Restart=on-failure brings it back (NRestarts + 1)
#   wedged      the whole daemon frozen with SIGSTOP after READY: no watchdog pings, systemd aborts and
#               restarts it (Result=watchdog)
#   hung-load   a start-up stage that hangs (test fault CVTEST_LOAD_HANG, load_stall_timeout_ms 3000):
#               killed by the watchdog / start timeout, the journal names the stage
#   limit       a bundle that fails to load: restarted until the start limit (5 in 300 s) stops it
#   cosyvoice2  the tiny bundle on the CPU under the hardened unit (ProtectHome, User=cosyvoiced): the
#               libtorch that make install copied is used, POST /tts answers X-Engine: cosyvoice2
# Facts this relies on (the development machines have no systemd as PID 1 and hybrid cgroups):
# --register=no --keep-unit, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 and --system-call-filter=bpf (so
# DevicePolicy= is enforceable inside).
#
#   sudo bash tools/release/systemd-check.sh [--keep]       prints one line per check, exits 1 on any failure
# Environment: PORT (default 18480), WORK (default a temp dir; --keep leaves it).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PORT:-18480}"
keep=0
[ "${1:-}" = "--keep" ] && keep=1
say() { echo "systemd-check: $*"; }
die() { echo "systemd-check: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, systemd-nspawn, nsenter)"
for t in curl nsenter; do command -v "$t" >/dev/null || die "needs $t"; done
if ! command -v systemd-nspawn >/dev/null; then
	say "installing systemd-container (systemd-nspawn)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null || die "cannot install systemd-container"
fi
command -v zstd >/dev/null || die "needs zstd"

pkgs="systemd,systemd-sysv,dbus,procps,libmicrohttpd12,libjansson4,libopusenc0,libopus0,libflac12,libsoxr0"
pkgs="$pkgs,libespeak-ng1,espeak-ng-data,libutf8proc2,libmp3lame0,libfst22,libsystemd0"
tarball="$(BARE_ROOT_INCLUDE="$pkgs" bash "$repo/tools/release/bare-root.sh")" || die "bare-root.sh failed"

WORK="${WORK:-$(mktemp -d /var/tmp/cv-systemd-check.XXXXXX)}"
root="$WORK/root"
nspawn_pid=""
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null
		for _ in $(seq 1 40); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$nspawn_pid" 2>/dev/null
	fi
	[ "$keep" = 1 ] && { say "kept $WORK"; return; }
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

mkdir -p "$root"
tar -C "$root" -xf "$tarball" --zstd || die "cannot unpack $tarball"
say "root from $(basename "$tarball"); installing"
make -C "$repo" -s install DESTDIR="$root" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; die "make install failed"; }
chroot "$root" useradd --system --user-group --no-create-home --home-dir /var/lib/cosyvoiced \
	--shell /usr/sbin/nologin cosyvoiced || die "useradd failed"
mkdir -p "$root/var/lib/cosyvoiced/models"
if [ -f "$repo/build/tiny-bundle/manifest.json" ]; then
	cp -rL "$repo/build/tiny-bundle" "$root/var/lib/cosyvoiced/models/tiny"
	# A bundle whose model file is damaged: the frontend opens, the engine refuses it (hash).
	cp -rL "$repo/build/tiny-bundle" "$root/var/lib/cosyvoiced/models/broken"
	head -c 4096 /dev/urandom >"$root/var/lib/cosyvoiced/models/broken/model.ts"
	chmod -R a+rX "$root/var/lib/cosyvoiced/models"
fi
# A second config for the CosyVoice2 check; the default one serves espeak-ng.
conf="$root/etc/cosyvoiced/cosyvoiced.json"
python3 - "$conf" "$PORT" <<'EOF' || die "cannot write the config"
import json, sys
path, port = sys.argv[1], int(sys.argv[2])
c = json.load(open(path))
c["listen"], c["port"] = "127.0.0.1", port
json.dump(c, open(path, "w"), indent=2)
c["model_dir"], c["device"] = "/var/lib/cosyvoiced/models/tiny", "cpu"
json.dump(c, open(path.replace(".json", "-tiny.json"), "w"), indent=2)
EOF

say "booting the root with systemd-nspawn"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$root" -b --register=no --keep-unit \
	--system-call-filter=bpf --console=pipe -M cvcheck >"$WORK/boot.log" 2>&1 </dev/null &
nspawn_pid=$!
leader=""
for _ in $(seq 1 60); do
	leader="$(pgrep -P "$nspawn_pid" | head -n1)"
	[ -n "$leader" ] && break
	sleep 0.5
done
[ -n "$leader" ] || { cat "$WORK/boot.log"; die "the container did not start"; }
in_ct() { nsenter -t "$leader" -a "$@"; }
for _ in $(seq 1 120); do
	st="$(in_ct systemctl is-system-running 2>/dev/null)"
	case "$st" in running | degraded) break ;; esac
	sleep 0.5
done
say "container up (systemd: ${st:-unknown})"

fails=0
pass() { printf 'systemd-check: PASS %-11s %s\n' "$1" "$2"; }
fail() { printf 'systemd-check: FAIL %-11s %s\n' "$1" "$2"; fails=$((fails + 1)); }
prop() { in_ct systemctl show -p "$1" --value cosyvoiced; }
wait_prop() { # wait_prop PROP VALUE SECONDS
	for _ in $(seq 1 $(($3 * 4))); do [ "$(prop "$1")" = "$2" ] && return 0; sleep 0.25; done
	return 1
}
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/readyz"; }
journal() { in_ct journalctl -u cosyvoiced --no-pager -o cat "$@" 2>/dev/null; }
# jhas REGEX: the unit's journal has a matching line (grep reads it all: no SIGPIPE under pipefail).
jhas() { journal | grep -- "$1" >/dev/null; }
dropin() { # dropin NAME CONTENT: a drop-in for the next start ("" removes all)
	local d="$root/etc/systemd/system/cosyvoiced.service.d"
	rm -rf "$d"
	if [ -n "$2" ]; then mkdir -p "$d" && printf '%s\n' "$2" >"$d/$1.conf"; fi
	in_ct systemctl daemon-reload
	in_ct systemctl reset-failed cosyvoiced 2>/dev/null || true
}

# ready: `systemctl start` returns once READY=1 arrived; the daemon answers at once.
dropin none ""
t0=$(date +%s.%N)
in_ct systemctl start cosyvoiced
t1=$(date +%s.%N)
code="$(readyz)"
status="$(prop StatusText)"
if [ "$(prop ActiveState)" = active ] && [ "$code" = 200 ] && [[ "$status" == serving* ]] &&
	jhas "start-up stage: warm-up"; then
	pass ready "active after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, /readyz $code, STATUS \"$status\""
else
	fail ready "state $(prop ActiveState), /readyz $code, STATUS \"$status\""
fi

# stop: drain, exit 0.
in_ct systemctl stop cosyvoiced
res="$(prop Result)" code_="$(prop ExecMainStatus)"
if [ "$res" = success ] && [ "$code_" = 0 ] && jhas "stopped (exit 0)"; then
	pass stop "Result=$res, exit status $code_"
else
	fail stop "Result=$res, exit status $code_"
fi

# kill9: restart.
in_ct systemctl start cosyvoiced
n0="$(prop NRestarts)"
in_ct systemctl kill -s KILL --kill-whom=main cosyvoiced
if wait_prop NRestarts $((n0 + 1)) 20 && wait_prop ActiveState active 60 && [ "$(readyz)" = 200 ]; then
	pass kill9 "restarted (NRestarts $n0 -> $(prop NRestarts)), /readyz 200"
else
	fail kill9 "NRestarts $(prop NRestarts), state $(prop ActiveState)"
fi

# wedged: freeze the whole daemon after READY; WatchdogSec=5 for a quick check.
dropin wd $'[Service]\nWatchdogSec=5'
in_ct systemctl restart cosyvoiced
n0="$(prop NRestarts)"
in_ct systemctl kill -s STOP --kill-whom=main cosyvoiced
if wait_prop NRestarts $((n0 + 1)) 30 && wait_prop ActiveState active 60; then
	pass wedged "watchdog restart after SIGSTOP (NRestarts $n0 -> $(prop NRestarts)); journal: $(journal | grep -ci watchdog) watchdog lines"
else
	fail wedged "NRestarts $(prop NRestarts), state $(prop ActiveState), Result $(prop Result)"
fi
in_ct systemctl stop cosyvoiced

# hung-load: a stage that never ends.
dropin hang $'[Service]\nEnvironment=CVTEST_LOAD_HANG=warm-up:600000 COSYVOICED_LOAD_STALL_TIMEOUT_MS=3000\nWatchdogSec=5\nTimeoutStartSec=120\nRestart=no'
t0=$(date +%s)
in_ct systemctl start cosyvoiced 2>/dev/null
t1=$(date +%s)
res="$(prop Result)"
if [ "$res" = watchdog ] || [ "$res" = timeout ]; then
	if jhas "start-up stage 'warm-up' shows no progress"; then
		pass hung-load "stopped after $((t1 - t0)) s (Result=$res), the journal names stage 'warm-up'"
	else
		fail hung-load "Result=$res but no log line naming the stage"
	fi
else
	fail hung-load "Result=$res after $((t1 - t0)) s, state $(prop ActiveState)"
fi

# limit: a bundle that fails to load restarts until the start limit (5 starts in 300 s) refuses more
# (systemd 252 keeps Result=exit-code and logs "Start request repeated too quickly").
dropin broken $'[Service]\nEnvironment=COSYVOICED_MODEL_DIR=/var/lib/cosyvoiced/models/broken COSYVOICED_DEVICE=cpu'
in_ct systemctl start cosyvoiced 2>/dev/null
wait_prop ActiveState failed 60
if [ "$(prop ActiveState)" = failed ] && jhas "Start request repeated too quickly" &&
	jhas "engine failed to load"; then
	pass limit "gave up after $(prop NRestarts) restarts: start request repeated too quickly"
else
	fail limit "state $(prop ActiveState), Result $(prop Result), NRestarts $(prop NRestarts)"
fi

# cosyvoice2: the tiny bundle on the CPU under the hardened unit.
if [ -d "$root/var/lib/cosyvoiced/models/tiny" ] && [ -f "$root/usr/local/lib/cosyvoiced/libcosyvoiced_torch.so" ]; then
	dropin tiny $'[Service]\nExecStart=\nExecStart=/usr/local/bin/cosyvoiced --config /etc/cosyvoiced/cosyvoiced-tiny.json'
	in_ct systemctl start cosyvoiced 2>/dev/null
	hdr="$(curl -s -D - -o "$WORK/tiny.wav" --max-time 120 -H 'Content-Type: application/json' \
		-d '{"text":"Hello from systemd."}' "http://127.0.0.1:$PORT/tts" | tr -d '\r')"
	if [ "$(prop ActiveState)" = active ] && grep -qi '^x-engine: cosyvoice2' <<<"$hdr" &&
		jhas "libtorch .* from /usr/local/bin/../lib/cosyvoiced/torch/lib"; then
		pass cosyvoice2 "tiny bundle served ($(stat -c %s "$WORK/tiny.wav") bytes of WAV), libtorch from /usr/local/lib/cosyvoiced"
	else
		fail cosyvoice2 "state $(prop ActiveState); $(head -n1 <<<"$hdr"); $(journal | tail -n 3 | tr '\n' ' ')"
	fi
	in_ct systemctl stop cosyvoiced
else
	fail cosyvoice2 "no tiny bundle or no libtorch plugin installed (run make test first, on a WITH_TORCH build)"
fi

sec="$(in_ct systemd-analyze security cosyvoiced 2>/dev/null | tail -n1)"
say "systemd-analyze security: ${sec:-unavailable}"
[ "$fails" -eq 0 ] && { say "all checks passed"; exit 0; }
say "$fails check(s) failed (boot log: $WORK/boot.log; rerun with --keep to inspect)"
keep=1
exit 1
