#!/usr/bin/env python3
"""Where a bundle's time goes on this machine: the top operators of each stage the daemon runs (LLM decode
step, flow, HiFT), measured with torch.profiler over the scripted entry points of model.ts, with the
daemon's executor settings (plain executor, the same threads). The tables in docs/benchmarks.md come from
here.

    tools/bench/profile_ops.py --bundle build/bundles/full-bf16 [--pack --static] [--top 10] [--steps 20] [--json OUT]

Inputs are fixed (seeded): a 12-token text with a 20-token prompt, `--steps` decode steps; flow on 60
tokens with a 10-token prompt (120 mel frames, the size of a short sentence); HiFT on that mel.
"""
import argparse
import json
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "export"))
from cosyvoice2 import bundle as B  # noqa: E402


def top_ops(prof, n: int) -> list:
    rows = []
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]:
        rows.append({"op": e.key, "self_ms": e.self_cpu_time_total / 1000.0, "calls": e.count,
                     "share": e.self_cpu_time_total / total if total else 0.0})
    return rows


@torch.inference_mode()
def run(bundle_dir: str, steps: int, top: int, pack: bool = False, static: bool = False) -> dict:
    torch._C._set_graph_executor_optimize(False)
    with open(os.path.join(bundle_dir, B.MANIFEST), encoding="utf-8") as f:
        man = json.load(f)
    m = B.load_model(bundle_dir).eval()
    if pack:
        m.llm_pack_cpu()  # what the engine does for bf16 on a CPU with bf16 units
    vocab = int(man["tokens"]["speech_token_size"])
    g = torch.Generator().manual_seed(11)
    text = torch.randint(0, int(man["tokens"]["text_special"]["<|endoftext|>"]), (1, 12), generator=g)
    prompt = torch.randint(0, vocab, (1, 20), generator=g)
    toks = torch.randint(0, vocab, (1, steps), generator=g)
    tok, ptok = torch.randint(0, vocab, (1, 60), generator=g), torch.randint(0, vocab, (1, 10), generator=g)
    pfeat, emb = torch.randn(1, 20, 80, generator=g) - 5.0, torch.randn(1, 192, generator=g)
    empty = torch.zeros(1, 1, 0)

    def decode():
        k, v = m.llm_new_cache(512)
        m.llm_prefill(text, prompt, k, v)
        pos = text.shape[1] + prompt.shape[1] + 2
        t_tok, t_pos = torch.zeros(1, 1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64)
        t0 = time.perf_counter()
        for j in range(steps):
            if static:  # the engine's form: llm_decode_at over cache[:bucket] (torch_runtime.cpp decode_bucket)
                b = 64
                while b <= pos + j:
                    b *= 2
                t_tok.fill_(int(toks[0, j]))
                t_pos.fill_(pos + j)
                m.llm_decode_at(t_tok, t_pos, k.narrow(3, 0, b), v.narrow(3, 0, b))
            else:
                m.llm_decode_one(toks[:, j: j + 1], pos + j, k, v)
        return (time.perf_counter() - t0) * 1000 / steps

    mel = m.flow_inference(tok, ptok, pfeat, emb, False, True)  # warm-up of every stage
    m.hift_inference(mel, empty)
    decode()
    out = {"bundle": bundle_dir, "dtype": man["dtype"], "packed": pack, "static": static, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "stages": {}}
    for name, fn in (("llm_decode", decode),
                     ("flow", lambda: m.flow_inference(tok, ptok, pfeat, emb, False, True)),
                     ("hift", lambda: m.hift_inference(mel, empty))):
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            r = fn()
        wall = (time.perf_counter() - t0) * 1000
        st = {"wall_ms": wall, "top": top_ops(prof, top)}
        if name == "llm_decode":
            st["ms_per_step"] = r
            st["steps"] = steps
        out["stages"][name] = st
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--pack", action="store_true", help="llm_pack_cpu first (the engine's bf16 CPU path)")
    ap.add_argument("--static", action="store_true",
                    help="decode through llm_decode_at over position buckets (what the engine runs for half "
                    "precision on the CPU; with --pack, the whole bf16 CPU path)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    r = run(a.bundle, a.steps, a.top, a.pack, a.static)
    print(f"{r['bundle']} ({r['dtype']}{', LLM packed' if r['packed'] else ''}"
          f"{', fixed-shape decode' if r['static'] else ''}), torch {r['torch']}, "
          f"{r['threads']} threads")
    for name, st in r["stages"].items():
        extra = f", {st['ms_per_step']:.1f} ms/step over {st['steps']} steps" if "ms_per_step" in st else ""
        print(f"\n{name}: {st['wall_ms']:.0f} ms under the profiler{extra}")
        print(f"  {'op':<40} {'self ms':>9} {'calls':>6} {'share':>6}")
        for row in st["top"]:
            print(f"  {row['op'][:40]:<40} {row['self_ms']:>9.1f} {row['calls']:>6} {row['share'] * 100:>5.1f}%")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
