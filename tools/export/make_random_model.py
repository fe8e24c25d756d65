#!/usr/bin/env python3
"""Write an official-layout CosyVoice2 model directory with random weights.

    python tools/export/make_random_model.py --preset tiny|full --out DIR [--seed N] [--tokenizer-dir DIR]

tiny: a few MB, seconds; full: the released 0.5B sizes (about 2.6 GB on disk, ~1 minute).
The directory has cosyvoice2.yaml, CosyVoice-BlankEN/ (config.json, tokenizer_config.json and the real
vocab.json/merges.txt copied from models/CosyVoice-BlankEN), llm.pt, flow.pt, hift.pt and a
spk2info.pt with three random voices; export it with tools/export/export.py like the official files.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cosyvoice2 import randmodel  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(randmodel.P.PRESETS), default="tiny")
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-dir", default=None, help="BlankEN tokenizer files (default models/CosyVoice-BlankEN)")
    ap.add_argument("--hift-weight-norm", choices=["parametrizations", "weight_g", "folded"], default="parametrizations")
    a = ap.parse_args(argv)
    try:
        randmodel.make(a.out, a.preset, a.seed, a.tokenizer_dir, a.hift_weight_norm)
    except (OSError, ValueError) as e:
        print(f"make_random_model: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
