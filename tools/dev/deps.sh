#!/usr/bin/env bash
# tools/dev/deps.sh — install what cosyvoiced needs on Debian 12, idempotently.
#
# Quiet when everything is present. Installs missing Debian packages with
# apt-get (one `apt-get update` first), and unpacks promtool (from Debian's
# `prometheus` package, without installing the server) into a cache outside
# the clone, keyed by its pinned version, so clean-clone CI runs reuse it.
#
# Usage: tools/dev/deps.sh [--print-promtool | --build]
#   --build  only what `make` needs to build the daemon and the libtorch plugin (the Dockerfile's build
#            stage): no test, lint, browser or container tools, no promtool
set -euo pipefail

CACHE="${CV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cosyvoiced}"
PROM_VER="2.42.0+ds-5+deb12u1"
PROMTOOL_DIR="$CACHE/promtool-${PROM_VER//+/_}"

PKGS=(
  build-essential pkg-config clang clang-format valgrind libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev libopusenc-dev libopus-dev libflac-dev libmp3lame-dev libsoxr-dev
  libsystemd-dev libespeak-ng-dev espeak-ng-data libutf8proc-dev
  libfst-dev
  check libsubunit-dev libcurl4-openssl-dev curl
  sox opus-tools flac mpg123 systemd
  patchelf debootstrap zstd systemd-container
  chromium chromium-driver python3-selenium
  python3 python3-venv python3-pip
)

# The subset a build needs (the -dev packages, the compiler, patchelf for make install, python3-venv for the
# torch venv, espeak-ng's data).
BUILD_PKGS=(
  build-essential pkg-config ca-certificates
  libmicrohttpd-dev libjansson-dev libopusenc-dev libopus-dev libflac-dev libmp3lame-dev libsoxr-dev
  libsystemd-dev libespeak-ng-dev espeak-ng-data libutf8proc-dev libfst-dev
  patchelf python3 python3-venv
)
build_only=0
if [[ "${1:-}" == "--build" ]]; then
  build_only=1
  PKGS=("${BUILD_PKGS[@]}")
fi

if [[ "${1:-}" == "--print-promtool" ]]; then
  echo "$PROMTOOL_DIR/usr/bin/promtool"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

updated=0
apt_update() {
  if [[ $updated -eq 0 ]]; then
    $SUDO apt-get update -qq >/dev/null
    updated=1
  fi
}

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ $build_only -eq 0 && ! -x "$PROMTOOL_DIR/usr/bin/promtool" ]]; then
  echo "deps: fetching promtool (prometheus $PROM_VER) into $PROMTOOL_DIR" >&2
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  apt_update
  ( cd "$tmp" && apt-get download -qq "prometheus=$PROM_VER" >/dev/null 2>&1 || apt-get download -qq prometheus >/dev/null )
  mkdir -p "$PROMTOOL_DIR.tmp"
  dpkg -x "$tmp"/prometheus_*.deb "$PROMTOOL_DIR.tmp"
  rm -rf "$PROMTOOL_DIR" "$tmp"
  mv "$PROMTOOL_DIR.tmp" "$PROMTOOL_DIR"
fi
