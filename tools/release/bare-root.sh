#!/usr/bin/env bash
# tools/release/bare-root.sh — create (once) a bare Debian 12 root for tools/release/dist-check.sh, then print the path of
# its tarball.
#
# The root is `debootstrap --variant=minbase bookworm` plus python3 and nothing else: a stand-in for a
# fresh GPU host that has a python but none of cosyvoiced's libraries (libmicrohttpd, jansson, opus, FLAC,
# lame, soxr, espeak-ng, utf8proc, OpenFst, ...). `make dist`'s tarball must run there on its own.
# It is kept as a tarball, not a directory, so that every check unpacks a fresh, unmodified copy:
#
#   ${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}/bare-root-bookworm-<key>.tar.zst (.tar.gz
#   without zstd), <key> = sha256(suite, variant, include list, architecture, layout version)[:12]
#
# so clones, worktrees and CI runs on one machine share it, and a change of the recipe makes a new one.
# Packages come from the Debian mirror apt already uses here (/etc/apt/sources.list{,.d/*}; override
# with BARE_ROOT_MIRROR=URL). Next to the root's own files the tarball holds /etc/bare-root/: `info` (the
# recipe, the mirror, the date) and `minbase-packages` (what a plain minbase root installs, without the
# include list), which dist-check.sh uses to tell base-OS libraries (e.g. libsystemd0, pulled in by apt)
# from ones that must come with the tarball.
# Needs root (debootstrap, chroot); installs debootstrap with apt-get when it is missing. One builder at a
# time (flock); the tarball is written under a temporary name and renamed into place, so an interrupted
# build leaves nothing that looks finished.
#
#   tools/release/bare-root.sh            create if needed, print the tarball path (only that, on stdout)
#   tools/release/bare-root.sh --print    print the tarball path without creating it
#   tools/release/bare-root.sh --check    exit 0 if the tarball exists, 1 otherwise; never builds
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
INCLUDE="${BARE_ROOT_INCLUDE:-python3}" # tools/release/systemd-check.sh asks for systemd and our run-time libraries
LAYOUT=1 # bump when the tarball's layout (not the package set) changes
cache="${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}"
arch="$(dpkg --print-architecture)"
key="$(printf '%s\n' "$SUITE" "$VARIANT" "$INCLUDE" "$arch" "$LAYOUT" | sha256sum | cut -c1-12)"
if command -v zstd >/dev/null 2>&1; then
	ext=tar.zst
	compress=(--zstd)
else
	ext=tar.gz
	compress=(--gzip)
fi
out="$cache/bare-root-$SUITE-$key.$ext"

case "${1:-}" in
--print)
	echo "$out"
	exit 0
	;;
--check) [ -s "$out" ] && exit 0 || exit 1 ;;
"") ;;
*)
	echo "usage: $0 [--print|--check]" >&2
	exit 2
	;;
esac

if [ -s "$out" ]; then
	echo "$out"
	exit 0
fi

say() { echo "bare-root: $*" >&2; }
[ "$(id -u)" -eq 0 ] || {
	say "needs root (debootstrap and chroot); run it with sudo"
	exit 2
}

# The mirror that apt uses here: the first `deb` source (one-line .list or deb822 .sources) that carries
# $SUITE with the main component. Nothing is hard-coded, so a machine behind a local mirror keeps using it.
apt_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# deb [opts] URI SUITE COMPONENTS...
		awk -v s="$SUITE" '$1 == "deb" {
			i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) != s) next
			for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		# deb822 stanzas, separated by blank lines; fields may be folded over continuation lines.
		awk -v s="$SUITE" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && (" " comps " ") ~ / main /)
					{ split(uris, u, " "); if (u[1] != "") { print u[1]; found = 1; exit } }
				types = suites = comps = uris = ""
			}
			/^#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			/^[A-Za-z-]+:/ { k = tolower($1); sub(/^[^:]*:[[:space:]]*/, ""); last = k }
			/^[[:space:]]/ { sub(/^[[:space:]]+/, ""); k = last }
			{ if (k == "types:") types = types " " $0; else if (k == "uris:") uris = uris " " $0;
			  else if (k == "suites:") suites = suites " " $0; else if (k == "components:") comps = comps " " $0 }
			END { if (!found) flush() }' "$f"
	done
}

mkdir -p "$cache"
# One builder at a time (two checks, or two worktrees, may race here).
exec 9>"$cache/.bare-root.lock"
flock 9
if [ -s "$out" ]; then
	echo "$out"
	exit 0
fi

mirror="${BARE_ROOT_MIRROR:-$(apt_mirror | head -n1)}"
[ -n "$mirror" ] || {
	say "no 'deb ... $SUITE main' source in /etc/apt/sources.list{,.d/*}; set BARE_ROOT_MIRROR=URL"
	exit 2
}

if ! command -v debootstrap >/dev/null 2>&1; then
	say "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	}
fi

# Built next to the cache (same filesystem) and removed on any exit, an interrupted one included.
# debootstrap runs in a mount namespace of its own (the /proc and /sys it mounts in the target while it
# configures packages go away with it) and a session of its own (cleanup kills all of it); whatever is
# still mounted under the work dir is undone before deleting it, and nothing is deleted across a mount.
work="$(mktemp -d "$cache/.bare-root-build.XXXXXX")"
child=""
cleanup() {
	local rc=$? m
	trap - EXIT INT TERM
	if [ -n "$child" ]; then
		kill -KILL -- "-$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	for m in $(awk -v w="$work/" 'index($5 "/", w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf --one-file-system "$work"
	rm -f "$out.tmp.$$"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# isolated OUT ERR CMD...: CMD in a session and mount namespace of its own, stdout to OUT, stderr to ERR
# (the same file: both there); waits interruptibly
isolated() {
	local o="$1" e="$2" rc=0
	shift 2
	if [ "$o" = "$e" ]; then
		setsid unshare --mount --propagation private -- "$@" >"$o" 2>&1 </dev/null &
	else
		setsid unshare --mount --propagation private -- "$@" >"$o" 2>"$e" </dev/null &
	fi
	child=$!
	wait "$child" || rc=$?
	child=""
	return "$rc"
}

t0=$SECONDS
say "building $SUITE/$VARIANT + $INCLUDE from $mirror into $out (a minute or two)"
root="$work/root"
if ! isolated "$work/debootstrap.log" "$work/debootstrap.log" \
	debootstrap --variant="$VARIANT" --include="$INCLUDE" --arch="$arch" \
	"$SUITE" "$root" "$mirror"; then
	tail -n 30 "$work/debootstrap.log" >&2
	[ ! -f "$root/debootstrap/debootstrap.log" ] || tail -n 30 "$root/debootstrap/debootstrap.log" >&2
	say "debootstrap failed"
	exit 1
fi
# What a plain minbase root holds (same suite and mirror, no --include): the base OS.
if ! isolated "$work/plain.txt" "$work/plain.log" \
	debootstrap --print-debs --variant="$VARIANT" --arch="$arch" "$SUITE" \
	"$work/plain" "$mirror"; then
	tail -n 30 "$work/plain.log" >&2
	say "debootstrap --print-debs failed"
	exit 1
fi

# No package caches or indices in the image: the root is "a host we were handed", not a build box.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root/debootstrap"
mkdir -p "$root/etc/bare-root"
tr ' ' '\n' <"$work/plain.txt" | sed '/^$/d' | sort -u >"$root/etc/bare-root/minbase-packages"
[ -s "$root/etc/bare-root/minbase-packages" ] || {
	say "debootstrap --print-debs printed no package list"
	exit 1
}
{
	echo "suite=$SUITE"
	echo "variant=$VARIANT"
	echo "include=$INCLUDE"
	echo "arch=$arch"
	echo "key=$key"
	echo "mirror=$mirror"
	echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "python=$(chroot "$root" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo none)"
} >"$root/etc/bare-root/info"

tar -C "$root" --numeric-owner --one-file-system "${compress[@]}" -cf "$out.tmp.$$" .
mv -f "$out.tmp.$$" "$out"
say "ready in $((SECONDS - t0)) s: $(du -h "$out" | cut -f1) ($(wc -l <"$root/etc/bare-root/minbase-packages") minbase packages; $(chroot "$root" dpkg-query -W -f='.\n' | wc -l) installed)"
echo "$out"
