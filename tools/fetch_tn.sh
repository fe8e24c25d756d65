#!/usr/bin/env bash
# tools/fetch_tn.sh — copy the TN grammars that the pinned `wetext` PyPI package
# ships (tools/requirements-test.txt) into OUTDIR, flat, as the daemon and
# `tools/export.py --tn OUTDIR` expect them:
#   zh_tn_tagger.fst zh_tn_verbalizer.fst en_tn_tagger.fst en_tn_verbalizer.fst
# The package comes from the parity-test venv (tools/venv.sh), so the grammars
# are byte-identical to those the Python reference runs with.
#
# Usage: tools/fetch_tn.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT="$1"
PY=$(bash tools/venv.sh)
SRC=$("$PY" -c 'import os, wetext; print(os.path.join(os.path.dirname(wetext.__file__), "fsts"))')
mkdir -p "$OUT"
for lang in zh en; do
  for g in tagger verbalizer; do
    f="$SRC/$lang/tn/$g.fst"
    [[ -s "$f" ]] || { echo "fetch_tn: $f missing in the wetext package" >&2; exit 1; }
    cp "$f" "$OUT/${lang}_tn_${g}.fst.part"
    mv "$OUT/${lang}_tn_${g}.fst.part" "$OUT/${lang}_tn_${g}.fst"
  done
done
echo "fetch_tn: wetext $("$PY" -c 'import importlib.metadata as m; print(m.version("wetext"))') grammars in $OUT" >&2
