#!/usr/bin/env python3
"""Memory of a CosyVoice2 bundle per dtype (fp32, fp16, bf16): weights and the LLM's KV cache.

    python tools/bench/dtype_memory.py [--preset full|tiny | --model-dir DIR] [--positions 4096]
                                 [--workspace [--workspace-preset tiny] [--seconds 10]]

The modules are built on the meta device (no weight is allocated; the full preset takes a second) and
cast exactly as the exporter casts them (bundle.cast_module: the LLM and flow in the bundle dtype except
buffers named *_fp32, HiFT always float32), so the weight figures count every parameter and buffer that
model.ts holds, the CFM noise and the RoPE/STFT constants included. The LLM's text embedding table is
counted apart: the bundle keeps it in llm_text_embedding.safetensors, which the daemon maps (resident:
only the pages of the rows prompts read). KV cache per position:
layers x 2 (K and V) x kv_heads x head_dim x the element size, in the LLM dtype.

--workspace also measures the flow + HiFT workspace on the CPU: the peak resident memory above the
resident memory before the call (Linux /proc/self/clear_refs and VmHWM), for one non-streaming
flow_inference of --seconds of audio and one hift_inference of its mel, each dtype in a fresh process,
eager modules with random weights. Prints markdown tables.
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
from typing import Dict

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export"))

import torch  # noqa: E402

from cosyvoice2 import bundle, config, flow, hift, presets  # noqa: E402
from cosyvoice2.llm import Qwen2LM  # noqa: E402



def size(n: float) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def preset_config(preset: str) -> config.ModelConfig:
    """The ModelConfig of a preset, read through the files a model directory has."""
    with tempfile.TemporaryDirectory(prefix="cosyvoice2-cfg-") as d:
        os.makedirs(os.path.join(d, config.QWEN_DIR))
        with open(os.path.join(d, config.QWEN_DIR, "config.json"), "w", encoding="utf-8") as f:
            f.write(presets.qwen_config_json(preset))
        with open(os.path.join(d, config.YAML_NAME), "w", encoding="utf-8") as f:
            f.write(presets.yaml_text(preset))
        return config.load_model_dir(d)


def tensor_bytes(m: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers()))


def weight_bytes(cfg: config.ModelConfig, dtype: torch.dtype) -> Dict[str, int]:
    """Bytes of every parameter and buffer of the LLM, flow and HiFT as a bundle of ``dtype`` holds them."""
    with torch.device("meta"):
        llm = Qwen2LM(cfg.llm)
    mods = {"llm": bundle.cast_module(llm, dtype),
            "flow": bundle.cast_module(flow.build_flow(cfg.flow, torch.device("meta")), dtype),
            "hift": bundle.cast_module(hift.build_hift(cfg.hift, torch.device("meta")), torch.float32)}
    out = {k: tensor_bytes(m) for k, m in mods.items()}
    table = llm.llm.model.model.embed_tokens.weight
    out["text_table"] = table.numel() * table.element_size()
    out["llm"] -= out["text_table"]
    return out


def kv_bytes_per_position(cfg: config.ModelConfig, dtype: torch.dtype) -> int:
    q = cfg.llm.qwen
    return q.num_layers * 2 * q.num_kv_heads * q.head_dim * torch.empty(0, dtype=dtype).element_size()


def _rss(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_extra(fn) -> int:
    """Run fn(); the peak resident memory above the resident memory before it, in bytes."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM (the peak) to the current VmRSS
    before = _rss("VmRSS")
    fn()
    return _rss("VmHWM") - before


def _workspace(preset: str, dtype_name: str, seconds: float) -> Dict[str, int]:
    """In a fresh process: flow_inference and hift_inference peak extra memory for ``seconds`` of audio."""
    cfg = preset_config(preset)
    dtype = bundle.DTYPES[dtype_name]
    _, fl, hi = bundle.build_modules(cfg)
    bundle.cast_module(fl, dtype)
    g = torch.Generator().manual_seed(0)
    n = int(round(seconds * cfg.sample_rate / cfg.hift.samples_per_frame / cfg.flow.token_mel_ratio))
    emb = torch.randn(1, cfg.flow.spk_embed_dim, generator=g).to(dtype)
    no_tok = torch.zeros(1, 0, dtype=torch.int64)
    no_feat = torch.zeros(1, 0, cfg.flow.output_size, dtype=dtype)
    out: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        warm = fl.inference(torch.randint(0, cfg.flow.vocab_size, (1, 8), generator=g), no_tok, no_feat, emb)
        hi.inference(warm)  # thread pools and kernel caches before the measured calls
        tok = torch.randint(0, cfg.flow.vocab_size, (1, n), generator=g)
        flow_peak = _peak_extra(lambda: out.update(mel=fl.inference(tok, no_tok, no_feat, emb)))
        hift_peak = _peak_extra(lambda: out.update(wav=hi.inference(out["mel"])[0]))
    return {"flow": flow_peak, "hift": hift_peak, "frames": out["mel"].shape[2], "samples": out["wav"].shape[1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=sorted(presets.PRESETS), default="full")
    src.add_argument("--model-dir", help="a model directory (only its cosyvoice2.yaml and config.json are read)")
    ap.add_argument("--positions", type=int, default=4096, help="KV cache length for the table")
    ap.add_argument("--workspace", action="store_true", help="also measure the flow + HiFT workspace on the CPU")
    ap.add_argument("--workspace-preset", choices=sorted(presets.PRESETS), default="tiny")
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length of the workspace run")
    a = ap.parse_args(argv)

    cfg = config.load_model_dir(a.model_dir) if a.model_dir else preset_config(a.preset)
    q = cfg.llm.qwen
    name = a.model_dir or f"the {a.preset} preset"
    print(f"Weights and KV cache of {name}: LLM {q.num_layers} layers x {q.hidden_size}, {q.num_kv_heads} KV "
          f"heads x {q.head_dim}; HiFT is float32 in every bundle.\n")
    print(f"| dtype | LLM | flow | HiFT | model.ts total | text table (mapped file) | KV cache / position | "
          f"KV cache x {a.positions} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for d, dt in bundle.DTYPES.items():
        w = weight_bytes(cfg, dt)
        kv = kv_bytes_per_position(cfg, dt)
        print(f"| {d} | {size(w['llm'])} | {size(w['flow'])} | {size(w['hift'])} | "
              f"{size(w['llm'] + w['flow'] + w['hift'])} | {size(w['text_table'])} | {size(kv)} | "
              f"{size(kv * a.positions)} |")

    if a.workspace:
        ctx = multiprocessing.get_context("spawn")
        print(f"\nflow + HiFT workspace ({a.workspace_preset} preset, CPU, eager, {a.seconds:g} s of audio, "
              "non-streaming): peak resident memory above the resident memory before the call.\n")
        print("| dtype | flow_inference | hift_inference (float32) |")
        print("|---|---:|---:|")
        for d in bundle.DTYPES:
            with ctx.Pool(1) as pool:
                r = pool.apply(_workspace, (a.workspace_preset, d, a.seconds))
            print(f"| {d} | {size(r['flow'])} ({r['frames']} mel frames) | {size(r['hift'])} ({r['samples']} samples) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
