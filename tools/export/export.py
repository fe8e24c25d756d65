#!/usr/bin/env python3
"""Export CosyVoice2 to a cosyvoiced model bundle.

    python tools/export/export.py --src <CosyVoice2-0.5B dir> --out <bundle dir> [--dtype fp32|fp16|bf16]
    python tools/export/export.py --random tiny|full --out <bundle dir> [--dtype ...] [--keep-model DIR]
    python tools/export/export.py --verify <bundle dir>

Options: --tn DIR copies text-normalization grammars (*.fst) into the bundle; --spk2info FILE imports
speakers from an official spk2info.pt (default: <src>/spk2info.pt when present); --flow-encoder-zip ZIP
uses the official flow.encoder.fp32.zip / fp16.zip (matching --dtype) in place of the own encoder export,
after checking that it computes the same as flow.pt. --stress-scale X (with --random) gives the LLM
massive activations at the word "overflow", for fp16 overflow tests. Run it with the venv
python (tools/dev/torch-venv.sh prints its path), or through `make bundle`.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cosyvoice2 import bundle, randmodel  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Export CosyVoice2 to a cosyvoiced model bundle.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--src", help="official model directory (cosyvoice2.yaml, llm.pt, flow.pt, hift.pt, CosyVoice-BlankEN/)")
    src.add_argument("--random", choices=sorted(randmodel.P.PRESETS), help="random weights of the official layout")
    src.add_argument("--verify", metavar="BUNDLE", help="check a bundle's files against its manifest")
    ap.add_argument("--out", help="bundle directory to write (replaced if it holds a bundle)")
    ap.add_argument("--dtype", choices=list(bundle.DTYPES), default="fp32")
    ap.add_argument("--flow-dtype", choices=list(bundle.DTYPES),
                    help="the flow's own dtype (default: --dtype); --dtype bf16 --flow-dtype fp32 is the CPU's mix")
    ap.add_argument("--tn", metavar="DIR", help="text-normalization grammars (*.fst) to include")
    ap.add_argument("--spk2info", metavar="FILE", help="official spk2info.pt to import speakers from")
    ap.add_argument("--flow-encoder-zip", metavar="ZIP",
                    help="use the official flow.encoder.<dtype>.zip for the flow encoder (checked against flow.pt)")
    ap.add_argument("--keep-model", metavar="DIR", help="with --random: write the random model directory here and keep it")
    ap.add_argument("--seed", type=int, default=0, help="with --random: weight seed")
    ap.add_argument("--stress-scale", type=float, default=0.0, metavar="X",
                    help="with --random: massive LLM activations, X per layer, at the word 'overflow' "
                    "(fp16 overflow tests; see cosyvoice2/randmodel.py stress_llm_state)")
    ap.add_argument("--tokenizer-dir", help="with --random: BlankEN tokenizer files (default models/CosyVoice-BlankEN)")
    ap.add_argument("--default", metavar="NAME",
                    help="the bundle's default voice (default: the first voice with a full prompt, else the first)")
    a = ap.parse_args(argv)

    if a.verify:
        problems = bundle.verify_bundle(a.verify)
        for p in problems:
            print(f"verify: {p}", file=sys.stderr)
        print(f"verify: {a.verify}: " + ("OK" if not problems else f"{len(problems)} problem(s)"), file=sys.stderr)
        return 0 if not problems else 1
    if not a.out:
        ap.error("--out is required")
    if a.stress_scale and not a.random:
        ap.error("--stress-scale needs --random")
    try:
        if a.random:
            preset = a.random + (f" (stress_scale {a.stress_scale:g})" if a.stress_scale else "")
            if a.keep_model:
                randmodel.make(a.keep_model, a.random, a.seed, a.tokenizer_dir, stress_scale=a.stress_scale)
                bundle.export(a.keep_model, a.out, a.dtype, a.tn, a.spk2info, random_preset=preset,
                              flow_encoder_zip=a.flow_encoder_zip, default_speaker=a.default,
                              flow_dtype=a.flow_dtype)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
                with tempfile.TemporaryDirectory(prefix="cosyvoice2-random-", dir=os.path.dirname(os.path.abspath(a.out))) as d:
                    randmodel.make(d, a.random, a.seed, a.tokenizer_dir, stress_scale=a.stress_scale)
                    bundle.export(d, a.out, a.dtype, a.tn, a.spk2info, random_preset=preset,
                                  flow_encoder_zip=a.flow_encoder_zip, default_speaker=a.default,
                              flow_dtype=a.flow_dtype)
        else:
            bundle.export(a.src, a.out, a.dtype, a.tn, a.spk2info, flow_encoder_zip=a.flow_encoder_zip,
                          default_speaker=a.default, flow_dtype=a.flow_dtype)
    except (bundle.ExportError, OSError, ValueError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
