#!/usr/bin/env python3
"""Which CPU kernel streams a decode step's weights fastest: one row times 24 weight matrices of the 0.5B
LLM's MLP shape (4864 x 896), too many to stay in the caches, in fp32 and bf16, through

  * ``F.linear`` (what the exported model calls: ATen's CPU GEMV/GEMM path),
  * oneDNN with the weight reordered once (``mkldnn::_reorder_linear_weight`` + ``_linear_pointwise``),
  * a plain read of the same bytes (``sum``; the floor).

    tools/bench/linear_kernels.py [--layers 24] [--reps 15]

docs/benchmarks.md quotes its figures: they decide how a bf16 bundle's decode can be made faster on a CPU.
"""
import argparse
import time

import torch


def median_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1000.0


@torch.inference_mode()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rows", type=int, default=896)
    ap.add_argument("--cols", type=int, default=4864)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.layers} x ({a.cols} x {a.rows}), one row")
    for dt in (torch.float32, torch.bfloat16):
        ws = [torch.randn(a.cols, a.rows).to(dt) for _ in range(a.layers)]
        x = torch.randn(1, a.rows).to(dt)
        nbytes = sum(w.numel() * w.element_size() for w in ws)
        rows = [("F.linear", lambda: [torch.nn.functional.linear(x, w) for w in ws]),
                ("read (sum)", lambda: [w.sum() for w in ws])]
        try:
            packed = [torch.ops.mkldnn._reorder_linear_weight(w, 1) for w in ws]
            rows.insert(1, ("oneDNN packed", lambda: [torch.ops.mkldnn._linear_pointwise(x, p, None, "none", [], "")
                                                      for p in packed]))
        except (RuntimeError, AttributeError) as e:
            print(f"  oneDNN packed: unavailable ({e})")
        for name, fn in rows:
            ms = median_ms(fn, a.reps)
            print(f"  {str(dt).replace('torch.', ''):9} {name:14} {ms:7.2f} ms  {nbytes / ms / 1e6:5.1f} GB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
