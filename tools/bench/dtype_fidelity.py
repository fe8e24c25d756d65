#!/usr/bin/env python3
"""How far a half-precision bundle (bf16 or fp16) is from the fp32 bundle of the same weights, through the
scripted entry points the daemon calls: the figures README quotes for the full-size model (the tiny-model
figures and their regression limits are tests/py/test_dtype.py, which uses the same method).

    tools/bench/dtype_fidelity.py --ref build/bundles/full-fp32 --bundle build/bundles/full-bf16 [--pack] [--json OUT]

--pack measures the engine's bf16 CPU path: llm_pack_cpu on the bundle first (oneDNN-packed projections,
the attention's products in fp32 over a float32 KV cache).

  * LLM: prefill + 200 teacher-forced decode steps (llm_decode_at, a fixed random token sequence):
    log-probability max-abs and mean-abs error, greedy agreement;
  * flow: flow_inference on 60 fixed tokens with a 10-token prompt: mel max-abs error and SNR;
  * HiFT: hift_inference_noise fed the fp32 mel with the same harmonic noise (float32 in every bundle:
    identical by construction, checked);
  * whole pipeline from the fixed tokens: flow -> HiFT waveform SNR (the same noise).
Both bundles run on the CPU with the same threads; the bundles must come from the same model directory
(`make bundle SRC=<dir> DTYPE=...`, or the same --random preset and seed).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "export"))
from cosyvoice2 import bundle as B  # noqa: E402

STEPS = 200


def snr_db(ref: torch.Tensor, x: torch.Tensor) -> float:
    """10 log10(|ref|^2 / |ref - x|^2); inf when x equals ref. (Also tests/py/test_dtype.py's.)"""
    err = float((ref.double() - x.double()).pow(2).sum())
    return math.inf if err == 0.0 else 10.0 * math.log10(float(ref.double().pow(2).sum()) / err)


def teacher_forced_logp(m, text, prompt, tokens):
    """llm_prefill, then one llm_decode_at step per token (the daemon's decode form): (1 + steps, vocab).
    (Also tests/py/test_dtype.py's.)"""
    k, v = m.llm_new_cache(text.shape[1] + prompt.shape[1] + 2 + tokens.shape[1])
    out = [m.llm_prefill(text, prompt, k, v)]
    pos = text.shape[1] + prompt.shape[1] + 2
    for j in range(tokens.shape[1]):
        out.append(m.llm_decode_at(tokens[:, j: j + 1], torch.tensor([pos + j]), k, v))
    return torch.cat(out)


def load(path):
    with open(os.path.join(path, B.MANIFEST), encoding="utf-8") as f:
        man = json.load(f)
    return B.load_model(path).eval(), man


@torch.inference_mode()
def measure(ref_dir: str, dir_: str, pack: bool = False) -> dict:
    torch._C._set_graph_executor_optimize(False)  # the daemon's plain executor (jit_optimize off)
    ref, rman = load(ref_dir)
    m, man = load(dir_)
    if rman["dtype"] != "fp32":
        raise SystemExit(f"--ref must be an fp32 bundle, not {rman['dtype']}")
    if pack:
        if man["dtype"] != "bf16":
            raise SystemExit(f"--pack is the bf16 CPU path: the bundle is {man['dtype']}")
        m.llm_pack_cpu()
    vocab = int(man["tokens"]["speech_token_size"])
    g = torch.Generator().manual_seed(11)
    text = torch.randint(0, int(man["tokens"]["text_special"]["<|endoftext|>"]), (1, 12), generator=g)
    prompt = torch.randint(0, vocab, (1, 20), generator=g)
    tokens = torch.randint(0, vocab, (1, STEPS), generator=g)
    out = {"ref": ref_dir, "bundle": dir_, "dtype": man["dtype"], "packed": pack, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "steps": STEPS}
    t0 = time.perf_counter()
    lr = teacher_forced_logp(ref, text, prompt, tokens)
    t1 = time.perf_counter()
    lp = teacher_forced_logp(m, text, prompt, tokens)
    t2 = time.perf_counter()
    e = (lp - lr).abs()
    out["llm"] = {"logp_max_abs": float(e.max()), "logp_mean_abs": float(e.mean()),
                  "greedy_agreement": float((lp.argmax(-1) == lr.argmax(-1)).double().mean()),
                  "ms_per_step_ref": (t1 - t0) * 1000 / (STEPS + 1), "ms_per_step": (t2 - t1) * 1000 / (STEPS + 1)}
    g = torch.Generator().manual_seed(12)
    tok, ptok = torch.randint(0, vocab, (1, 60), generator=g), torch.randint(0, vocab, (1, 10), generator=g)
    pfeat, emb = torch.randn(1, 20, 80, generator=g) - 5.0, torch.randn(1, 192, generator=g)
    t0 = time.perf_counter()
    mel32 = ref.flow_inference(tok, ptok, pfeat, emb, False, True)
    t1 = time.perf_counter()
    mel = m.flow_inference(tok, ptok, pfeat, emb, False, True)
    t2 = time.perf_counter()
    harmonics = int(man["hift"]["nb_harmonics"])
    noise = torch.randn(1, mel32.shape[2] * 480, harmonics + 1, generator=torch.Generator().manual_seed(13))
    empty = torch.zeros(1, 1, 0)
    wav32, _ = ref.hift_inference_noise(mel32, empty, noise)
    hift_wav, _ = m.hift_inference_noise(mel32, empty, noise)
    wav, _ = m.hift_inference_noise(mel, empty, noise)
    out["flow"] = {"mel_max_abs": float((mel - mel32).abs().max()), "mel_snr_db": snr_db(mel32, mel),
                   "ms_ref": (t1 - t0) * 1000, "ms": (t2 - t1) * 1000, "frames": int(mel32.shape[2])}
    out["hift"] = {"wav_snr_db": snr_db(wav32, hift_wav), "dtype": man.get("hift_dtype", "fp32")}
    out["pipeline"] = {"wav_snr_db": snr_db(wav32, wav)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="the fp32 bundle")
    ap.add_argument("--bundle", required=True, help="the bf16 or fp16 bundle of the same weights")
    ap.add_argument("--pack", action="store_true", help="llm_pack_cpu first (the engine's bf16 CPU path)")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args(argv)
    r = measure(a.ref, a.bundle, a.pack)
    fmt = lambda v: "identical" if v == math.inf else f"{v:.1f} dB"  # noqa: E731
    print(f"{r['dtype']}{' (LLM packed)' if r['packed'] else ''} vs fp32 ({r['bundle']}, torch {r['torch']}, "
          f"{r['threads']} threads):")
    L = r["llm"]
    print(f"  LLM {r['steps']} teacher-forced steps: log-prob max-abs {L['logp_max_abs']:.3g}, mean-abs "
          f"{L['logp_mean_abs']:.3g}, greedy agreement {L['greedy_agreement']:.3f} "
          f"({L['ms_per_step']:.1f} vs {L['ms_per_step_ref']:.1f} ms per step)")
    F = r["flow"]
    print(f"  flow ({F['frames']} frames): mel max-abs {F['mel_max_abs']:.3g}, SNR {fmt(F['mel_snr_db'])} "
          f"({F['ms']:.0f} vs {F['ms_ref']:.0f} ms)")
    print(f"  HiFT on the fp32 mel ({r['hift']['dtype']} in both): {fmt(r['hift']['wav_snr_db'])}")
    print(f"  flow -> HiFT waveform SNR: {fmt(r['pipeline']['wav_snr_db'])}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
