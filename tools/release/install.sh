#!/usr/bin/env bash
# tools/release/install.sh — what `make install` and `make uninstall` run.
#
#   tools/release/install.sh install   BUILD_DIR TORCH_SITE   (TORCH_SITE: the pinned venv's site-packages, "" = no torch)
#   tools/release/install.sh uninstall
# Environment: PREFIX (default /usr/local), DESTDIR (staging root for packagers, default empty),
# SYSCONFDIR (default /etc), UNITDIR (default $PREFIX/lib/systemd/system).
#
# Layout (everything the hardened unit needs is readable outside /home and /root):
#   $PREFIX/bin/cosyvoiced                         the daemon
#   $PREFIX/lib/cosyvoiced/libcosyvoiced_torch{,_cpu}.so  the libtorch plugins (the loader looks in ../lib/cosyvoiced)
#   $PREFIX/lib/cosyvoiced/torch/{lib,version.py}  the libtorch it was built against (the loader's first
#                                                  choice after the torch_lib setting)
#   $PREFIX/lib/cosyvoiced/nvidia/*/lib            the CUDA libraries libtorch_cuda links ($ORIGIN/../../nvidia)
#   $PREFIX/lib/cosyvoiced/INSTALLED               the files outside that directory, for uninstall
#   $UNITDIR/cosyvoiced.service                    the unit, ExecStart pointing at $PREFIX/bin
#   $SYSCONFDIR/cosyvoiced/cosyvoiced.json         the default configuration, only if none is there
# With an empty DESTDIR and as root it also creates the system user `cosyvoiced` when missing and
# runs `systemctl daemon-reload` when systemd runs. Uninstall keeps the configuration and
# /var/lib/cosyvoiced (models, voices): those are the operator's.
set -euo pipefail

mode="${1:-}"
PREFIX="${PREFIX:-/usr/local}"
DESTDIR="${DESTDIR:-}"
SYSCONFDIR="${SYSCONFDIR:-/etc}"
UNITDIR="${UNITDIR:-$PREFIX/lib/systemd/system}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
libdir="$PREFIX/lib/cosyvoiced"
d="$DESTDIR"

die() { echo "install: $*" >&2; exit 1; }

live_root() { [ -z "$DESTDIR" ] && [ "$(id -u)" -eq 0 ]; }

reload_systemd() {
	if live_root && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
		systemctl daemon-reload || true
	fi
}

# Files of the torch and CUDA wheels that nothing in the daemon's process ever loads (no DT_NEEDED of any
# library that is kept, and not dlopened by torch): torch's Python bindings, NVRTC's alternate builds, the
# multi-GPU solver, the FFTW interface, CUPTI's profiler back ends, NVSHMEM's network transports, static and
# bitcode archives. What stays is libtorch, every library libtorch_cuda links, cuDNN's sub-libraries (loaded
# on demand by libcudnn), libtorch_cuda_linalg + cuSOLVER (dlopened by torch on a CUDA linalg call) and
# NVRTC (TorchScript's GPU fuser). Symbol tables (not the dynamic symbols) are stripped from torch's own
# libraries (-0.1 GB). README "Docker" has the sizes.
prune_unloaded() {
	local lib="$1" f
	rm -f "$lib"/torch/lib/libtorch_python.so "$lib"/nvidia/*/lib/*.alt.so* \
		"$lib"/nvidia/cusolver/lib/libcusolverMg.so* "$lib"/nvidia/cufft/lib/libcufftw.so* \
		"$lib"/nvidia/cuda_cupti/lib/libnvperf_*.so "$lib"/nvidia/cuda_cupti/lib/libcheckpoint.so \
		"$lib"/nvidia/cuda_cupti/lib/libpcsamplingutil.so "$lib"/nvidia/nvshmem/lib/nvshmem_transport_*.so* \
		"$lib"/nvidia/*/lib/*.a "$lib"/nvidia/*/lib/*.bc
	for f in "$lib"/torch/lib/*.so*; do
		[ -f "$f" ] && [ ! -L "$f" ] && strip --strip-unneeded "$f"
	done
}

case "$mode" in
install)
	build="${2:?usage: install.sh install BUILD_DIR TORCH_SITE}"
	site="${3:-}"
	[ -x "$build/cosyvoiced" ] || die "no $build/cosyvoiced: run make first"
	install -d -m 0755 "$d$PREFIX/bin" "$d$libdir" "$d$UNITDIR" "$d$SYSCONFDIR/cosyvoiced"
	install -m 0755 "$build/cosyvoiced" "$d$PREFIX/bin/cosyvoiced"
	if [ -n "$site" ]; then
		[ -f "$site/torch/lib/libtorch.so" ] || die "no libtorch under $site/torch/lib"
		for p in libcosyvoiced_torch.so libcosyvoiced_torch_cpu.so; do
			[ -f "$build/$p" ] || die "no $build/$p (a WITH_TORCH=1 build)"
			install -m 0755 "$build/$p" "$d$libdir/$p"
			# The plugin finds libcudart & co. beside the copied torch, never in the build's venv.
			patchelf --set-rpath '$ORIGIN/torch/lib:$ORIGIN/nvidia/cu13/lib:$ORIGIN/nvidia/cuda_runtime/lib' \
				"$d$libdir/$p"
		done
		rm -rf "$d$libdir/torch" "$d$libdir/nvidia"
		install -d -m 0755 "$d$libdir/torch/lib"
		cp -a "$site"/torch/lib/*.so* "$d$libdir/torch/lib/"
		install -m 0644 "$site/torch/version.py" "$d$libdir/torch/version.py"
		if [ -d "$site/nvidia" ]; then
			(cd "$site" && find nvidia -path '*/lib/*.so*' \( -type f -o -type l \)) | while read -r f; do
				install -d -m 0755 "$d$libdir/$(dirname "$f")"
				cp -a "$site/$f" "$d$libdir/$f"
			done
		fi
		prune_unloaded "$d$libdir"
		chmod -R a+rX "$d$libdir"
	else
		rm -rf "$d$libdir/torch" "$d$libdir/nvidia" "$d$libdir/libcosyvoiced_torch.so" \
			"$d$libdir/libcosyvoiced_torch_cpu.so"
	fi
	sed "s|^ExecStart=/usr/local/bin/cosyvoiced |ExecStart=$PREFIX/bin/cosyvoiced |; s|/etc/cosyvoiced/|$SYSCONFDIR/cosyvoiced/|g" \
		"$root/systemd/cosyvoiced.service" >"$d$UNITDIR/cosyvoiced.service"
	chmod 0644 "$d$UNITDIR/cosyvoiced.service"
	installed="$PREFIX/bin/cosyvoiced
$UNITDIR/cosyvoiced.service"
	if [ ! -e "$d$SYSCONFDIR/cosyvoiced/cosyvoiced.json" ]; then
		install -m 0644 "$root/config/cosyvoiced.json" "$d$SYSCONFDIR/cosyvoiced/cosyvoiced.json"
	fi
	printf '%s\n' "$installed" >"$d$libdir/INSTALLED"
	if live_root && ! getent passwd cosyvoiced >/dev/null; then
		useradd --system --user-group --no-create-home --home-dir /var/lib/cosyvoiced \
			--shell /usr/sbin/nologin cosyvoiced
		echo "install: created the system user cosyvoiced"
	fi
	reload_systemd
	echo "install: cosyvoiced in $d$PREFIX (libtorch: $([ -n "$site" ] && du -sh "$d$libdir" | cut -f1 || echo none)," \
		"unit $d$UNITDIR/cosyvoiced.service, config $d$SYSCONFDIR/cosyvoiced/cosyvoiced.json)"
	if ! live_root; then
		echo "install: staged under DESTDIR or not root: create the user on the target with" \
			"useradd --system --user-group --no-create-home --home-dir /var/lib/cosyvoiced --shell /usr/sbin/nologin cosyvoiced"
	fi
	;;
uninstall)
	if [ -f "$d$libdir/INSTALLED" ]; then
		while read -r f; do
			[ -n "$f" ] && rm -f "$d$f"
		done <"$d$libdir/INSTALLED"
	else
		rm -f "$d$PREFIX/bin/cosyvoiced" "$d$UNITDIR/cosyvoiced.service"
	fi
	rm -rf "$d$libdir"
	reload_systemd
	echo "install: removed cosyvoiced from $d$PREFIX (kept $SYSCONFDIR/cosyvoiced and /var/lib/cosyvoiced)"
	;;
*)
	echo "usage: $0 install BUILD_DIR TORCH_SITE | uninstall" >&2
	exit 2
	;;
esac
