#!/usr/bin/env bash
# tools/dev/venv.sh — the Python venv of the parity tests; prints its python path.
#
# Creates (once, idempotently) a venv OUTSIDE the clone at
#   ${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}/venv-<first 12 hex of sha256(tools/dev/requirements-test.txt)>
# with the exact pins of tools/dev/requirements-test.txt, so clean-clone CI runs
# reuse it and a change of pins gets a fresh venv. Concurrent callers are
# serialized with flock; a venv is only published (renamed into place) once
# its install succeeded, so a half-built one is never used. stdout carries
# the python path and nothing else; pip talks on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQ=tools/dev/requirements-test.txt
CACHE="${CV_CACHE_DIR:-$HOME/.cache/cosyvoiced}"
KEY=$(sha256sum "$REQ" | cut -c1-12)
VENV="$CACHE/venv-$KEY"
PY="${PYTHON:-python3}"

ok() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import tokenizers, wetext, inflect, regex' >/dev/null 2>&1; }

if ! ok; then
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.venv-$KEY.lock"
  flock 9
  if ! ok; then
    echo "venv: creating $VENV" >&2
    rm -rf "$VENV" "$VENV.part"
    # Built under a temporary name and renamed: only bin/python and
    # `python -m pip` are used, and both work from the renamed folder.
    "$PY" -m venv "$VENV.part" >&2
    "$VENV.part/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$REQ" >&2
    mv "$VENV.part" "$VENV"
  fi
fi
echo "$VENV/bin/python"
