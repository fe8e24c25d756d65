#!/usr/bin/env bash
# tools/dev/verify-unit.sh UNIT DAEMON_BINARY — `systemd-analyze verify` a unit file
# against the binary we built.
#
# The unit's ExecStart points at the installed path (/usr/local/bin/...), which
# does not exist on a build machine, and verify refuses a missing executable.
# So verify a copy, under the same file name in a temp dir, whose ExecStart
# program is the given binary (made absolute), arguments kept.
#
# systemd-analyze prints parse problems as warnings and still exits 0 (e.g.
# "Failed to parse service type, ignoring: bogus"), and on a container it may
# also print noise about other units. So: fail when it exits nonzero, or when
# any output line names our unit file; ignore lines about other units.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 UNIT DAEMON_BINARY" >&2
  exit 2
fi
unit=$1
bin=$2
if [[ ! -f "$unit" ]]; then
  echo "verify-unit: no such unit file: $unit" >&2
  exit 2
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "verify-unit: systemd-analyze not found (Debian package: systemd)" >&2
  exit 2
fi
bin_abs=$(realpath -m -- "$bin")
name=$(basename -- "$unit")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/$name"

# Rewrite the program of every ExecStart= line (keeping systemd's prefix
# characters such as '-', '@', '+', '!' and the arguments). The path goes into
# a sed replacement, so refuse the few characters that would break it.
if [[ "$bin_abs" == *'|'* || "$bin_abs" == *'&'* || "$bin_abs" == *'\'* ]]; then
  echo "verify-unit: unsupported character in binary path: $bin_abs" >&2
  exit 2
fi
sed -E "s|^(ExecStart=[-@+!:]*)[^[:space:]]+|\1$bin_abs|" "$unit" >"$copy"
if ! grep -q "^ExecStart=[-@+!:]*$bin_abs\\b" "$copy"; then
  echo "verify-unit: $unit has no ExecStart= line to rewrite" >&2
  exit 1
fi

set +e
out=$(SYSTEMD_LOG_COLOR=0 SYSTEMD_COLORS=0 systemd-analyze --man=no verify "$copy" 2>&1)
rc=$?
set -e

# Report positions against the original file (same line numbers: the rewrite
# changes no line count).
out=${out//"$copy"/"$unit"}
ours=$(printf '%s\n' "$out" | grep -F -- "$name" || true)
if [[ $rc -ne 0 || -n "$ours" ]]; then
  echo "verify-unit: $unit FAILED (systemd-analyze rc=$rc, ExecStart mapped to $bin_abs):" >&2
  if [[ -n "$ours" ]]; then
    printf '%s\n' "$ours" >&2
  else
    printf '%s\n' "$out" >&2
  fi
  exit 1
fi
others=$(printf '%s\n' "$out" | grep -c . || true)
if [[ $others -gt 0 ]]; then
  echo "verify-unit: ignored $others line(s) of systemd-analyze output about other units" >&2
fi
echo "verify-unit: $unit OK (ExecStart mapped to $bin_abs)"
