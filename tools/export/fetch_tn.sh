#!/usr/bin/env bash
# tools/export/fetch_tn.sh — make OUTDIR a text frontend directory, as `--frontend-dir` (and a bundle) lays it out:
#   OUTDIR/tokenizer/  vocab.json merges.txt special_tokens.json   (from models/CosyVoice-BlankEN)
#   OUTDIR/tn/         zh_tn_tagger.fst zh_tn_verbalizer.fst en_tn_tagger.fst en_tn_verbalizer.fst
# The grammars are the ones the pinned `wetext` PyPI package ships (tools/dev/requirements-test.txt), taken
# from the parity-test venv (tools/dev/venv.sh), so they are byte-identical to those the Python reference
# runs with. `tools/export/export.py --tn OUTDIR/tn` puts them into a bundle. The integration suite serves
# /v1/text/normalize from exactly this directory (build/frontend), which proves the daemon takes it as is.
#
# Usage: tools/export/fetch_tn.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT="$1"
PY=$(bash tools/dev/venv.sh)
SRC=$("$PY" -c 'import os, wetext; print(os.path.join(os.path.dirname(wetext.__file__), "fsts"))')
mkdir -p "$OUT/tn" "$OUT/tokenizer"
for f in vocab.json merges.txt special_tokens.json; do
  cp models/CosyVoice-BlankEN/$f "$OUT/tokenizer/$f.part"
  mv "$OUT/tokenizer/$f.part" "$OUT/tokenizer/$f"
done
for lang in zh en; do
  for g in tagger verbalizer; do
    f="$SRC/$lang/tn/$g.fst"
    [[ -s "$f" ]] || { echo "fetch_tn: $f missing in the wetext package" >&2; exit 1; }
    cp "$f" "$OUT/tn/${lang}_tn_${g}.fst.part"
    mv "$OUT/tn/${lang}_tn_${g}.fst.part" "$OUT/tn/${lang}_tn_${g}.fst"
  done
done
echo "fetch_tn: tokenizer + wetext $("$PY" -c 'import importlib.metadata as m; print(m.version("wetext"))') grammars in $OUT" >&2
