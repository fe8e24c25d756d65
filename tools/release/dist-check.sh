#!/usr/bin/env bash
# tools/release/dist-check.sh — prove that `make dist`'s tarball runs on a bare Debian 12 host.
#
# A portable tarball is only portable if it runs where none of the build machine's libraries are. This
# unpacks a fresh bare root (tools/release/bare-root.sh: debootstrap minbase bookworm + python3), checks that the
# root really lacks every library cosyvoiced links (libmicrohttpd, jansson, opus, FLAC, lame, ...), puts the
# tarball under its /opt and runs the daemon there, in a chroot inside a private mount namespace
# (`unshare --mount --fork` + chroot; /proc, /sys and /dev bound read-only, a tmpfs /tmp and /dev/shm, a
# clean environment). The network namespace stays the host's, so the host talks to the daemon on
# 127.0.0.1 and checks the audio with its own sox and opusinfo:
#
#   root       bare root unpacked            libs    none of the project's libraries in the bare root
#   unpack     the tarball under /opt        layout  its files (tools/release/dist.sh's layout)
#   ldd        every DT_NEEDED under bin/, lib/, libexec/ resolves in the root (libtorch/CUDA: the host's)
#   espeak     (a) no model: the embedded espeak-ng engine, data found relative to the binary:
#              WAV (>0.5 s, read by soxi) and Ogg Opus (accepted by opusinfo), SIGTERM -> exit 0
#   cosyvoice2 (b) with --torch-site and --bundle: the CosyVoice2 engine on cpu with the venv's libtorch
#              (COSYVOICED_TORCH_LIB), X-Engine: cosyvoice2, SIGTERM -> exit 0
#   gpu-check  (c) with --torch-site: tools/release/gpu-check.sh (the full command) as a CPU dry run (ALLOW_NO_GPU=1)
#
# --torch-site DIR is a venv's site-packages (torch/ and the nvidia/ wheels), e.g.
#   "$(bash tools/dev/torch-venv.sh --dir)/lib/python3.11/site-packages"
# The whole venv is bound read-only at the same absolute path inside the root, so its python works there.
# When the venv's base interpreter (pyvenv.cfg `home`) is not in the root (a pyenv build, say), that home
# is linked to the root's /usr: the root's python3 (same major.minor, checked) stands in for it.
#
# Needs root (unshare, chroot, mount) and curl, sox (soxi), opusinfo (opus-tools) on the host.
# Every temporary file lives under one mktemp dir that is removed on exit, failure included; the mounts
# live and die with the namespace, and any mount still under that dir is undone before the removal.
# Responses, daemon logs and gpu-check's results go to ${DIST_CHECK_OUT:-build/dist-check}.
#
#   tools/release/dist-check.sh TARBALL [--torch-site DIR] [--bundle DIR]
#   env: DIST_CHECK_OUT=DIR  READY_TIMEOUT=30  MODEL_READY_TIMEOUT=120  GPUCHECK_TIMEOUT=1800
# Exit status: 0 when every step passed, 1 when one failed, 2 on a usage or host problem.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
usage() {
	echo "usage: $0 TARBALL [--torch-site DIR] [--bundle DIR]" >&2
	exit 2
}
die() {
	echo "dist-check: $*" >&2
	exit 2
}

tarball=""
site=""
bundle=""
while [ $# -gt 0 ]; do
	case "$1" in
	--torch-site)
		[ $# -ge 2 ] || usage
		site="$2"
		shift 2
		;;
	--bundle)
		[ $# -ge 2 ] || usage
		bundle="$2"
		shift 2
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*)
		[ -z "$tarball" ] || usage
		tarball="$1"
		shift
		;;
	esac
done
[ -n "$tarball" ] || usage
[ -r "$tarball" ] || die "cannot read $tarball"
tarball="$(realpath "$tarball")"
[ "$(id -u)" -eq 0 ] || die "needs root (unshare, chroot, mount)"
for t in unshare chroot mount curl soxi opusinfo tar; do
	command -v "$t" >/dev/null 2>&1 || die "needs '$t' on the host (tools/dev/deps.sh installs sox and opus-tools)"
done

venv=""
if [ -n "$site" ]; then
	[ -d "$site/torch/lib" ] || die "--torch-site $site has no torch/lib"
	site="$(realpath "$site")"
	# DIR = <venv>/lib/pythonX.Y/site-packages
	venv="$(dirname "$(dirname "$(dirname "$site")")")"
	[ -f "$venv/pyvenv.cfg" ] && [ -e "$venv/bin/python" ] ||
		die "--torch-site $site is not <venv>/lib/pythonX.Y/site-packages (no $venv/pyvenv.cfg or bin/python)"
fi
if [ -n "$bundle" ]; then
	[ -n "$site" ] || die "--bundle needs --torch-site (the CosyVoice2 engine loads the venv's libtorch)"
	[ -f "$bundle/manifest.json" ] || die "--bundle $bundle has no manifest.json"
	bundle="$(realpath "$bundle")"
fi

out="${DIST_CHECK_OUT:-build/dist-check}"
case "$out" in /*) ;; *) out="$repo/$out" ;; esac
mkdir -p "$out"
rm -rf "$out"/*.log "$out"/*.wav "$out"/*.opus "$out"/*.headers "$out"/*.opusinfo "$out/gpu-check.json" "$out/gpucheck"
READY_TIMEOUT="${READY_TIMEOUT:-30}"
MODEL_READY_TIMEOUT="${MODEL_READY_TIMEOUT:-120}"
GPUCHECK_TIMEOUT="${GPUCHECK_TIMEOUT:-1800}"

# ---- temporary dir, namespace runner, cleanup
work="$(mktemp -d "${TMPDIR:-/tmp}/dist-check.XXXXXX")"
root="$work/root"
ns_pid=""     # the `unshare` process of a running daemon
daemon_pid="" # the daemon itself (same pid inside: no pid namespace)

mounts_under() { awk -v w="$work/" 'index($5 "/", w) == 1 { print $5 }' /proc/self/mountinfo | sort -r; }
cleanup() {
	local rc=$? m
	trap - EXIT INT TERM
	kill_group
	# The mounts are private to each namespace and go with it; this only catches a leak.
	for m in $(mounts_under); do
		echo "dist-check: unmounting leftover $m" >&2
		umount -l "$m" 2>/dev/null || true
	done
	if [ -n "$(mounts_under)" ]; then
		echo "dist-check: mounts remain under $work; not removing it" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Extra read-only binds into the root, "SRC:DST" (DST an absolute path inside the root).
binds=()
# in_root [NAME=VALUE...] CMD [ARG...]: run in the root, in a new mount namespace, with a clean environment.
# The setup shell writes its pid to $work/ns.pid and execs chroot, env, then CMD: that pid is CMD's pid.
ns_setup='
set -eu
root=$1 pidfile=$2
shift 2
ro() { mount -o remount,bind,ro "$1" 2>/dev/null || echo "dist-check: note: $1 stays writable" >&2; }
for d in proc sys dev; do
	mount --bind "/$d" "$root/$d"
	ro "$root/$d"
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
while [ "$1" != -- ]; do
	src=${1%%:*} dst=${1#*:}
	mkdir -p "$root$dst"
	mount --bind "$src" "$root$dst"
	ro "$root$dst"
	shift
done
shift
echo $$ >"$pidfile"
exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 "$@"
'
ns_cmd() {
	ns=(unshare --mount --propagation private --fork --kill-child=SIGKILL --
		bash -c "$ns_setup" dist-check-ns "$root" "$work/ns.pid" "${binds[@]}" --)
}
in_root() {
	local ns
	ns_cmd
	"${ns[@]}" "$@"
}
# in_root_bg LOG [NAME=VALUE...] CMD [ARG...]: in_root in the background, output to LOG, in a process group
# of its own (setsid; $ns_pid is its id, so cleanup can kill all of it); $daemon_pid is CMD's pid.
in_root_bg() {
	local lg="$1" ns
	shift
	ns_cmd
	rm -f "$work/ns.pid"
	setsid "${ns[@]}" "$@" >"$lg" 2>&1 </dev/null &
	ns_pid=$!
	for _ in $(seq 1 100); do
		[ -s "$work/ns.pid" ] && break
		kill -0 "$ns_pid" 2>/dev/null || break
		sleep 0.1
	done
	daemon_pid="$(cat "$work/ns.pid" 2>/dev/null || true)"
	[ -n "$daemon_pid" ] || {
		wait "$ns_pid" || true
		ns_pid=""
		fail "the namespace setup failed (see the log)"
	}
}
# kill_group: SIGKILL to everything started by in_root_bg
kill_group() {
	[ -n "$ns_pid" ] || return 0
	kill -KILL -- "-$ns_pid" 2>/dev/null || true
	wait "$ns_pid" 2>/dev/null || true
	ns_pid="" daemon_pid=""
}

# ---- steps
passed=0
failed=0
why=""
log="" # the daemon log of the running step, shown when it fails
step() {
	local name="$1" t0=$SECONDS rc=0
	shift
	why=""
	log=""
	echo "dist-check: == $name" >&2
	"$@" || rc=$?
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "dist-check: PASS $name ($((SECONDS - t0)) s)${why:+: $why}"
	else
		failed=$((failed + 1))
		echo "dist-check: FAIL $name ($((SECONDS - t0)) s): ${why:-exit $rc}"
		if [ -n "$log" ] && [ -s "$log" ]; then
			echo "dist-check: --- last lines of $log:" >&2
			tail -n 40 "$log" | sed 's/^/    /' >&2
		fi
	fi
	return 0
}
skip() { echo "dist-check: SKIP $1: $2"; }
fail() {
	why="$*"
	return 1
}

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
			echo "$p"
			return 0
		}
	done
	return 1
}

# start_daemon LOG [NAME=VALUE...] CMD ARGS...: CMD --listen 127.0.0.1 --port <free port> in the root
start_daemon() {
	local lg="$1"
	shift
	port="$(free_port)" || fail "no free port" || return 1
	in_root_bg "$lg" "$@" --listen 127.0.0.1 --port "$port"
}

# wait_ready SECONDS: /readyz 200 from the host; fails at once when the daemon exits
wait_ready() {
	local deadline=$((SECONDS + $1)) code rc
	while [ $SECONDS -lt $deadline ]; do
		if ! kill -0 "$ns_pid" 2>/dev/null; then
			rc=0
			wait "$ns_pid" || rc=$?
			ns_pid="" daemon_pid=""
			fail "the daemon exited (status $rc) before /readyz answered 200: $(grep -m1 -iE 'error|cannot|fail' "$log" || tail -n1 "$log")"
			return 1
		fi
		code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz" || true)"
		[ "$code" = 200 ] && return 0
		sleep 0.5
	done
	fail "/readyz not 200 after $1 s (last answer: ${code:-none})"
}

# stop_daemon: SIGTERM, expect exit 0 within 30 s
stop_daemon() {
	local rc=0
	kill -TERM "$daemon_pid"
	for _ in $(seq 1 60); do
		kill -0 "$ns_pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$ns_pid" 2>/dev/null; then
		kill_group
		fail "still running 30 s after SIGTERM (killed)"
		return 1
	fi
	wait "$ns_pid" || rc=$?
	ns_pid="" daemon_pid=""
	[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM (expected 0)"
}

# tts NAME JSON -> $out/NAME.{body,headers}; sets $code
tts() {
	code="$(curl -s -o "$out/$1" -D "$out/$1.headers" -w '%{http_code}' --max-time 120 \
		-H 'Content-Type: application/json' --data "$2" "http://127.0.0.1:$port/tts" || true)"
	[ "$code" = 200 ] || fail "POST /tts $2 -> HTTP ${code:-no answer}: $(head -c 300 "$out/$1" 2>/dev/null)"
}

# check_wav FILE MIN_SECONDS
check_wav() {
	local d
	[ "$(head -c 4 "$1")" = RIFF ] && [ "$(dd if="$1" bs=1 skip=8 count=4 2>/dev/null)" = WAVE ] ||
		fail "$(basename "$1") is not RIFF/WAVE (starts with: $(head -c 16 "$1" | od -An -c | tr -s ' '))" || return 1
	d="$(soxi -D "$1" 2>&1)" || fail "soxi cannot read $(basename "$1"): $d" || return 1
	awk -v d="$d" -v m="$2" 'BEGIN { exit !(d + 0 > m + 0) }' || fail "$(basename "$1") holds $d s of audio (want > $2 s)"
	wav_info="$d s, $(soxi -r "$1") Hz"
}

header() { tr -d '\r' <"$1" | awk -v h="$2" -F': ' 'tolower($1) == tolower(h) { print $2 }'; }

step_root() {
	local bare
	bare="$(bash "$here/bare-root.sh")" || fail "tools/release/bare-root.sh failed" || return 1
	mkdir -p "$root"
	tar -C "$root" --numeric-owner -xf "$bare" || fail "cannot unpack $bare" || return 1
	why="$(basename "$bare"), python $(sed -n 's/^python=//p' "$root/etc/bare-root/info")"
}

# None of the project's libraries in the bare root; a hit owned by a package that plain minbase installs
# (libsystemd0: apt depends on it) is the base OS, not ours, and is only reported.
PROJECT_LIBS=(libmicrohttpd libjansson libopusenc libopus libFLAC libmp3lame libsoxr libespeak-ng libutf8proc
	libfst libcheck libcurl libsystemd)
step_libs() {
	local lib f pkg bad=() base=()
	for lib in "${PROJECT_LIBS[@]}"; do
		while IFS= read -r f; do
			[ -n "$f" ] || continue
			f="/${f#"$root"/}"
			pkg="$(dpkg-query --admindir="$root/var/lib/dpkg" -S "$f" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
			if [ -n "$pkg" ] && grep -qx "$pkg" "$root/etc/bare-root/minbase-packages"; then
				base+=("$pkg")
				echo "dist-check: note: $f belongs to $pkg, which every minbase root has: base OS, not counted as ours" >&2
			else
				bad+=("$f (${pkg:-no package})")
			fi
		done < <(find "$root" -xdev \( -type f -o -type l \) -name "$lib*.so*" | sort)
	done
	((${#bad[@]} == 0)) || fail "the bare root already has: ${bad[*]}" || return 1
	mapfile -t base < <(printf '%s\n' "${base[@]}" | sed '/^$/d' | sort -u)
	why="none of the ${#PROJECT_LIBS[@]} in the root${base[*]:+ (base OS, allowed: ${base[*]})}"
}

step_unpack() {
	local tops
	mkdir -p "$root/opt"
	tar -C "$root/opt" --no-same-owner -xf "$tarball" || fail "cannot unpack $tarball" || return 1
	tops="$(find "$root/opt" -mindepth 1 -maxdepth 1 -printf '%f\n')"
	[ "$(echo "$tops" | wc -l)" -eq 1 ] || fail "the tarball has $(echo "$tops" | wc -l) top entries, want one: $(echo "$tops" | tr '\n' ' ')" ||
		return 1
	top="$tops"
	[[ "$top" =~ ^cosyvoiced-[0-9][^/]*-linux-x86_64(-torch[0-9][^/]*)?$ ]] ||
		fail "top folder '$top' is not cosyvoiced-<ver>-linux-x86_64[-torch<ver>]" || return 1
	why="/opt/$top, $(du -sh "$root/opt/$top" | cut -f1)"
}

# The release layout (tools/release/dist.sh); "a|b" accepts either path.
LAYOUT=(bin/cosyvoiced lib share/espeak-ng-data share/cosyvoiced/frontend/tokenizer\|share/cosyvoiced/tokenizer
	share/cosyvoiced/frontend/tn\|share/cosyvoiced/tn config systemd tools tools/release/gpu-check.sh README.md\|README
	libexec/cosyvoiced/check_unit)
step_layout() {
	local p a ok missing=()
	for p in "${LAYOUT[@]}"; do
		ok=""
		for a in ${p//|/ }; do [ ! -e "$root/opt/$top/$a" ] || ok=1; done
		[ -n "$ok" ] || missing+=("$p")
	done
	[ -x "$root/opt/$top/bin/cosyvoiced" ] || missing+=("bin/cosyvoiced (executable)")
	((${#missing[@]} == 0)) || fail "missing: ${missing[*]}"
}

# ldd (the root's own, from libc-bin) of every ELF file under bin/, lib/ and libexec/: nothing "not found",
# except libtorch and CUDA (the torch plugin's; they come from the host's torch at run time, step cosyvoice2).
# Also says where each library came from: the tarball's lib/ or the root's system directories.
HOST_LIBS='^(libtorch|libc10|libcuda|libcudart|libcublas|libcudnn|libnvrtc|libnvToolsExt|libnvidia)'
step_ldd() {
	local f rel lg="$out/ldd.log" own sys=() nf=() hostlibs=() rp
	: >"$lg"
	while IFS= read -r f; do
		rel="/${f#"$root"/}"
		[ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || continue
		echo "== $rel" >>"$lg"
		in_root /usr/bin/ldd "$rel" >>"$lg" 2>&1 || true
	done < <(find "$root/opt/$top/bin" "$root/opt/$top/lib" "$root/opt/$top/libexec" -type f 2>/dev/null | sort)
	mapfile -t nf < <(awk '/not found/ { print $1 }' "$lg" | sort -u | grep -Ev "$HOST_LIBS" || true)
	mapfile -t hostlibs < <(awk '/not found/ { print $1 }' "$lg" | sort -u | grep -E "$HOST_LIBS" || true)
	own="$(grep -o "=> /opt/$top/lib/[^ ]*" "$lg" | sort -u | wc -l)"
	mapfile -t sys < <(grep -o '=> /[^ ]*' "$lg" | grep -v "=> /opt/" | sed 's|.*/||' | sort -u)
	rp="$(readelf -d "$root/opt/$top/bin/cosyvoiced" 2>/dev/null | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\1 \2/p')"
	echo "dist-check: bin/cosyvoiced: ${rp:-no RPATH/RUNPATH}; from the root's system dirs: ${sys[*]}" >&2
	((${#hostlibs[@]} == 0)) || echo "dist-check: note: left to the host's torch: ${hostlibs[*]}" >&2
	log="$lg"
	((${#nf[@]} == 0)) || fail "${#nf[@]} unresolved: ${nf[*]}" || return 1
	log=""
	why="all resolve; $own from the tarball's lib/, ${#sys[@]} from the base OS${hostlibs[*]:+, ${#hostlibs[@]} left to the host torch}"
}

step_espeak() {
	log="$out/espeak-daemon.log"
	start_daemon "$log" "/opt/$top/bin/cosyvoiced" || return 1
	wait_ready "$READY_TIMEOUT" || return 1
	tts espeak-hello.wav '{"text":"Hello from a bare root."}' || return 1
	check_wav "$out/espeak-hello.wav" 0.5 || return 1
	local wi="$wav_info" engine
	tts espeak-zh.opus '{"text":"你好，世界。","format":"opus"}' || return 1
	[ "$(head -c 4 "$out/espeak-zh.opus")" = OggS ] || fail "the opus reply does not start with OggS" || return 1
	# opusinfo exits 0 on some damaged streams; it says WARNING or ERROR then
	if ! opusinfo "$out/espeak-zh.opus" >"$out/espeak-zh.opusinfo" 2>&1 || grep -qE 'WARNING|ERROR' "$out/espeak-zh.opusinfo"; then
		fail "opusinfo rejects the reply: $(grep -m1 -E 'WARNING|ERROR' "$out/espeak-zh.opusinfo" || tail -n1 "$out/espeak-zh.opusinfo")"
		return 1
	fi
	engine="$(header "$out/espeak-hello.wav.headers" X-Engine)"
	[[ "$engine" == *espeak* ]] || fail "X-Engine is '${engine:-absent}', want espeak-ng" || return 1
	stop_daemon || return 1
	why="port $port; X-Engine: $engine; WAV $wi; Opus $(sed -n 's/^[[:space:]]*Playback length: //p' "$out/espeak-zh.opusinfo")"
}

step_cosyvoice2() {
	log="$out/cosyvoice2-daemon.log"
	binds+=("$bundle:/srv/bundle")
	start_daemon "$log" COSYVOICED_TORCH_LIB="$site/torch/lib" "/opt/$top/bin/cosyvoiced" \
		--model-dir /srv/bundle --device cpu || return 1
	local t0=$SECONDS
	wait_ready "$MODEL_READY_TIMEOUT" || return 1
	local t_ready=$((SECONDS - t0)) engine
	tts cosyvoice2-hello.wav '{"text":"Hello from a bare root."}' || return 1
	check_wav "$out/cosyvoice2-hello.wav" 0 || return 1
	engine="$(header "$out/cosyvoice2-hello.wav.headers" X-Engine)"
	[[ "$engine" == *cosyvoice2* ]] || fail "X-Engine is '${engine:-absent}', want cosyvoice2" || return 1
	stop_daemon || return 1
	why="ready in $t_ready s; X-Engine: $engine; WAV $wav_info"
}

step_gpucheck() {
	local rc=0
	log="$out/gpu-check.log"
	[ -f "$root/opt/$top/tools/release/gpu-check.sh" ] || fail "the tarball has no tools/release/gpu-check.sh" || return 1
	in_root_bg "$log" ALLOW_NO_GPU=1 TORCH_PY="$venv/bin/python" OUT=/tmp/gpucheck /bin/bash -c \
		"cd /opt/$top && bash tools/release/gpu-check.sh; rc=\$?; rm -rf /var/tmp/gpucheck;
		cp -a /tmp/gpucheck /var/tmp/ 2>/dev/null; exit \$rc" || return 1
	local deadline=$((SECONDS + GPUCHECK_TIMEOUT))
	while kill -0 "$ns_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
	if kill -0 "$ns_pid" 2>/dev/null; then
		kill_group
		rc=124
	else
		wait "$ns_pid" || rc=$?
		ns_pid="" daemon_pid=""
	fi
	rm -rf "$out/gpucheck"
	if [ -d "$root/var/tmp/gpucheck" ]; then
		cp -a "$root/var/tmp/gpucheck" "$out/gpucheck"
		[ ! -f "$out/gpucheck/gpu-check.json" ] || cp "$out/gpucheck/gpu-check.json" "$out/gpu-check.json"
	fi
	if [ "$rc" -ne 0 ]; then
		local bad full="$log"
		bad="$(sed -n 's/^gpu-check: \([^ ]*\) FAILED.*/\1/p' "$log" | tr '\n' ' ')"
		if [ -n "$bad" ]; then # its own account of each failed step, not the JSON at the end of the log
			echo "dist-check: --- gpu-check's failed steps, from $log:" >&2
			grep -A 21 ' FAILED' "$log" | head -n 120 | sed 's/^/    /' >&2
			log=""
		fi
		fail "tools/release/gpu-check.sh exited $rc$([ "$rc" -ne 124 ] || echo " (timed out after $GPUCHECK_TIMEOUT s)")${bad:+; failed steps: ${bad% }}; its output: $full"
		return 1
	fi
	[ -f "$out/gpu-check.json" ] || fail "exit 0 but no gpu-check.json in OUT" || return 1
	why="$out/gpu-check.json"
}

# The venv is bound at its own path; its python needs its base interpreter (pyvenv.cfg `home`) there too.
venv_binds() {
	local home hv rv
	binds+=("$venv:$venv")
	home="$(sed -n 's/^home[[:space:]]*=[[:space:]]*//p' "$venv/pyvenv.cfg" | head -n1)"
	[ -n "$home" ] && [ ! -e "$root$home" ] || return 0
	hv="$(sed -n 's/^version[[:space:]]*=[[:space:]]*\([0-9]*\.[0-9]*\).*/\1/p' "$venv/pyvenv.cfg" | head -n1)"
	rv="$(sed -n 's/^python=\([0-9]*\.[0-9]*\).*/\1/p' "$root/etc/bare-root/info")"
	[ "${home##*/}" = bin ] && [ -n "$hv" ] && [ "$hv" = "$rv" ] || {
		echo "dist-check: note: the venv's base python ($home, $hv) is not in the root and the root's python is $rv" >&2
		return 0
	}
	mkdir -p "$root$(dirname "${home%/bin}")"
	ln -s /usr "$root${home%/bin}"
	echo "dist-check: note: the venv's base python $home is not in the root: linked ${home%/bin} -> /usr (the root's python $rv)" >&2
}

echo "dist-check: $tarball${site:+ --torch-site $site}${bundle:+ --bundle $bundle}; results in $out" >&2
top=""
step root step_root
# Each step needs the one before: a root that already has our libraries proves nothing.
[ "$failed" -ne 0 ] || step libs step_libs
[ "$failed" -ne 0 ] || step unpack step_unpack
if [ -n "$top" ] && [ "$failed" -eq 0 ]; then
	step layout step_layout
	step ldd step_ldd
	step espeak step_espeak
	if [ -n "$site" ]; then
		venv_binds
		if [ -n "$bundle" ]; then step cosyvoice2 step_cosyvoice2; else skip cosyvoice2 "no --bundle"; fi
		step gpu-check step_gpucheck
	else
		skip cosyvoice2 "no --torch-site"
		skip gpu-check "no --torch-site"
	fi
else
	skip "the daemon steps" "an earlier step failed"
fi
echo "dist-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
