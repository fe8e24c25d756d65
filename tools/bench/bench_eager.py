#!/usr/bin/env python3
"""The eager PyTorch baseline of `make bench`: CosyVoice2 inference on a bundle, without TorchScript.

    python tools/bench/bench_eager.py --bundle DIR [--device cpu|cuda] [--impl eager|script] \
        [--text "..." | --cases tools/bench/bench_cases.json [--case-ids a,b]] [--runs N] [--seed S] [--greedy] \
        [--speaker NAME] [--json OUT] [--wav OUT.wav]

DESIGN: this is the "no JIT" side of the comparison users make, so it must run exactly the algorithm the
daemon runs, on exactly the bundle's weights, with nothing of TorchScript in the hot path:

* modules: the exporter's own Python modules (tools/export/cosyvoice2 llm/flow/hift), built from the
  configuration recorded in the bundle's manifest, cast as the exporter casts them (LLM and flow in the
  bundle dtype, HiFT float32) and loaded strictly with the state dict of the bundle's ``model.ts``, so
  the weights are bit-identical to what the daemon loads. ``--impl script`` drives the same Python
  pipeline over the scripted ``model.ts`` instead (JIT from Python), for a three-way comparison.
* algorithm (docs/cosyvoice2.md §2-§6, non-streaming, zero-shot with a saved speaker): text split into sentences
  (§2.1 rules without wetext/inflect: the benchmark texts have no digits), BlankEN BPE (§2.2, HF
  ``tokenizers``), per sentence: ``[sos, prompt_text ++ text, task, prompt_speech]`` prefill, KV-cached
  decode of one token per step with EOS masked below ``2 n`` and at most ``20 n`` tokens, RAS sampling
  (§3.5, HEAD: top-p 0.8, top-k 25, window 10, tau 0.1, fallback without the repeated token), stop on the
  three stop ids; then flow (encoder + 10-step CFM with CFG, fixed noise inside the module) and HiFT.
* determinism: sampling runs on the CPU in float32 with a ``torch.Generator`` seeded per utterance, so
  a given seed gives the same tokens on any device as long as the log-probabilities agree; ``--greedy``
  takes the arg-max (top-k 1, no RAS fallback), which is what a parity test wants. HiFT's random source
  is seeded from the same seed (global RNG, as the reference).
* timing: each stage is bracketed by ``torch.cuda.synchronize()`` on CUDA; the per-token decode figure
  is decode time / decode steps (each step reads its token back to the host, as every real decoder must).
  One warm-up utterance runs first and is not counted. Peak GPU memory is ``max_memory_allocated`` over
  the measured runs; CPU RSS is this process's VmHWM.

Importable: :func:`load_model`, :func:`Pipeline` (``synthesize(text, seed)``, ``llm_tokens``) for parity
tests of the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "export"))

from cosyvoice2 import bundle as B  # noqa: E402
from cosyvoice2 import config as C  # noqa: E402
from cosyvoice2 import frontend as FE  # noqa: E402


# ------------------------------------------------------------------------------------------ loading
def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    return v


def config_from_manifest(c: dict) -> C.ModelConfig:
    """Rebuild the exporter's ModelConfig from ``manifest["config"]`` (ModelConfig.as_json)."""
    llm = dict(c["llm"])
    qwen = C.QwenConfig(**llm.pop("qwen"))
    llm_cfg = C.LLMConfig(qwen=qwen, **{k: _tuples(v) for k, v in llm.items()})
    flow = C.FlowConfig(**{k: _tuples(v) for k, v in c["flow"].items()})
    hift = C.HiftConfig(**{k: _tuples(v) for k, v in c["hift"].items()})
    mel = C.MelConfig(**c["mel"])
    return C.ModelConfig(sample_rate=c["sample_rate"], token_frame_rate=c["token_frame_rate"],
                         token_mel_ratio=c["token_mel_ratio"], chunk_size=c["chunk_size"], llm=llm_cfg,
                         flow=flow, hift=hift, mel=mel)


def load_model(bundle_dir: str, device: str = "cpu", impl: str = "eager"):
    """-> (module with the CosyVoice2Bundle entry points, manifest). ``impl``: eager | script."""
    with open(os.path.join(bundle_dir, B.MANIFEST), encoding="utf-8") as f:
        manifest = json.load(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ts = B.load_model(bundle_dir)
    if impl == "script":
        return ts.to(device).eval(), manifest
    if impl != "eager":
        raise ValueError(f"impl must be eager or script, not {impl!r}")
    cfg = config_from_manifest(manifest["config"])
    llm, flow, hift = B.build_modules(cfg)
    dtype = B.DTYPES[manifest["dtype"]]
    B.cast_module(llm, dtype)
    B.cast_module(flow, B.DTYPES[manifest.get("flow_dtype", manifest["dtype"])])
    B.cast_module(hift, torch.float32)
    m = B.CosyVoice2Bundle(llm, flow, hift).eval()
    sd = ts.state_dict()
    missing, unexpected = m.load_state_dict(sd, strict=False)
    # TorchScript also saves the non-persistent buffers (RoPE frequencies, CFM noise, windows): copy
    # them too, so even the constants are the bundle's own.
    own_buffers = dict(m.named_buffers())
    for k in [k for k in unexpected if k in own_buffers]:
        own_buffers[k].copy_(sd[k])
    unexpected = [k for k in unexpected if k not in own_buffers]
    missing = [k for k in missing if k not in own_buffers]
    if missing or unexpected:
        raise RuntimeError(f"bundle weights do not fit the eager modules: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    del ts
    return m.to(device), manifest


# ------------------------------------------------------------------------------------------ frontend
ZH_PUNCT = set("。？！；：、.?!;")
EN_PUNCT = set(".?!;:")


def _is_zh(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def normalize(text: str) -> Tuple[str, str]:
    """§2.1 without wetext/inflect -> (text, lang)."""
    text = text.strip()
    if _is_zh(text):
        text = text.replace("\n", "")
        out = []
        for i, ch in enumerate(text):
            if ch == " ":
                prev = text[i - 1] if i > 0 else " "
                nxt = text[i + 1] if i + 1 < len(text) else " "
                if not (prev.isascii() and prev != " " and nxt.isascii() and nxt != " "):
                    continue
            out.append(ch)
        text = "".join(out).replace("²", "平方").replace("³", "立方")
        text = text.replace(".", "。").replace(" - ", "，")
        for ch in "（）【】`":
            text = text.replace(ch, "")
        text = text.replace("——", " ")
        text = re.sub(r"[，,、]+$", "。", text)
        return text, "zh"
    return text, "en"


def split_paragraph(text: str, lang: str, measure, token_max_n: int = 80, token_min_n: int = 60,
                    merge_len: int = 20) -> List[str]:
    """§2.1 split_paragraph (comma_split False)."""
    punct = ZH_PUNCT if lang == "zh" else EN_PUNCT
    if not text:
        return []
    if text[-1] not in punct:
        text += "。" if lang == "zh" else "."
    pieces: List[str] = []
    st, i = 0, 0
    while i < len(text):
        if text[i] in punct:
            if text[st:i]:
                pieces.append(text[st:i] + text[i])
            if i + 1 < len(text) and text[i + 1] in ('"', "”"):
                pieces[-1] += text[i + 1]
                st = i + 2
                i += 2
                continue
            st = i + 1
        i += 1
    out: List[str] = []
    cur = ""
    for p in pieces:
        if measure(cur + p) > token_max_n and measure(cur) > token_min_n:
            out.append(cur)
            cur = ""
        cur += p
    if cur:
        if measure(cur) < merge_len and out:
            out[-1] += cur
        else:
            out.append(cur)
    return out


def _punct_only(s: str) -> bool:
    return all(unicodedata.category(ch)[0] in "PSZ" for ch in s)


class TextFrontend:
    def __init__(self, tokenizer_dir: str):
        self.tok = FE.text_tokenizer(tokenizer_dir)

    def encode(self, text: str) -> List[int]:
        return FE.encode_text(self.tok, text)

    def sentences(self, text: str) -> List[str]:
        text, lang = normalize(text)
        measure = len if lang == "zh" else (lambda s: len(self.encode(s)))
        return [s for s in split_paragraph(text, lang, measure) if s and not _punct_only(s)]


# ------------------------------------------------------------------------------------------ sampling
def nucleus(logp: torch.Tensor, top_p: float, top_k: int, gen: torch.Generator) -> int:
    p = torch.softmax(logp, dim=-1)
    sp, idx = torch.sort(p, descending=True, stable=True)
    before = torch.cumsum(sp, 0) - sp  # cumulative probability before each candidate
    n = int(min(top_k, int((before < top_p).sum())))
    n = max(n, 1)
    pick = int(torch.multinomial(sp[:n], 1, generator=gen))
    return int(idx[pick])


def ras_sample(logp: torch.Tensor, decoded: List[int], s: dict, gen: torch.Generator) -> int:
    """§3.5 HEAD: nucleus, then the repetition-aware fallback (repeated token removed)."""
    tok = nucleus(logp, s["top_p"], s["top_k"], gen)
    win = decoded[-s["win_size"]:]
    if win.count(tok) >= s["win_size"] * s["tau_r"]:
        logp = logp.clone()
        logp[tok] = float("-inf")
        tok = int(torch.multinomial(torch.softmax(logp, dim=-1), 1, generator=gen))
    return tok


# ------------------------------------------------------------------------------------------ pipeline
@dataclass
class Utterance:
    sentences: int = 0
    text_ids: int = 0
    tokens: int = 0
    decode_steps: int = 0
    audio_s: float = 0.0
    ms: Dict[str, float] = field(default_factory=lambda: {"frontend": 0.0, "prefill": 0.0, "decode": 0.0,
                                                          "flow": 0.0, "hift": 0.0, "total": 0.0})
    speech_tokens: List[List[int]] = field(default_factory=list)
    wav: Optional[torch.Tensor] = None

    @property
    def rtf(self) -> float:
        return self.ms["total"] / 1000.0 / self.audio_s if self.audio_s > 0 else float("nan")

    @property
    def decode_ms_per_token(self) -> float:
        return self.ms["decode"] / self.decode_steps if self.decode_steps else float("nan")


def load_speaker(bundle_dir: str, manifest: dict, name: Optional[str]) -> Tuple[str, Dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    spk = manifest.get("speakers", {})
    if not spk:
        raise RuntimeError(f"{bundle_dir}: the bundle has no speakers")
    if name is None:
        name = "zero_shot_0" if "zero_shot_0" in spk else sorted(spk)[0]
    if name not in spk:
        raise RuntimeError(f"speaker {name!r} not in the bundle (have: {', '.join(sorted(spk))})")
    return name, load_file(os.path.join(bundle_dir, spk[name]))


class Pipeline:
    def __init__(self, bundle_dir: str, device: str = "cpu", impl: str = "eager", speaker: Optional[str] = None,
                 greedy: bool = False):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.model, self.manifest = load_model(bundle_dir, device, impl)
        self.front = TextFrontend(os.path.join(bundle_dir, self.manifest["tokenizer"]["dir"]))
        self.speaker, sp = load_speaker(bundle_dir, self.manifest, speaker)
        dev = self.device
        self.prompt_text = sp["prompt_text"].to(torch.int64).reshape(1, -1).to(dev)
        self.prompt_tokens = sp["prompt_speech_tokens"].to(torch.int64).reshape(1, -1).to(dev)
        self.prompt_mel = sp["prompt_mel"].to(torch.float32).unsqueeze(0).to(dev)
        self.embedding = sp["embedding"].to(torch.float32).reshape(1, -1).to(dev)
        t = self.manifest["tokens"]
        self.eos = int(t["eos"])
        self.stop = set(int(x) for x in t["stop"])
        self.sampling = dict(self.manifest["llm"]["sampling"])
        self.min_ratio = int(self.manifest["llm"]["min_token_text_ratio"])
        self.max_ratio = int(self.manifest["llm"]["max_token_text_ratio"])
        self.sr = int(self.manifest["sample_rate"])
        self.greedy = greedy

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def llm_tokens(self, text_ids: List[int], seed: int, u: Optional[Utterance] = None) -> List[int]:
        """Prefill + KV-cached decode of one sentence; returns the speech tokens (stop token excluded)."""
        m = self.model
        gen = torch.Generator().manual_seed(seed)
        n = len(text_ids)
        min_len, max_len = n * self.min_ratio, n * self.max_ratio
        ids = torch.tensor([text_ids], dtype=torch.int64, device=self.device)
        full = torch.cat([self.prompt_text, ids], dim=1)
        prefix = full.shape[1] + self.prompt_tokens.shape[1] + 2
        k, v = m.llm_new_cache(prefix + max_len + 1)
        t0 = time.perf_counter()
        logp = m.llm_prefill(full, self.prompt_tokens, k, v)
        lp = logp[0].float().cpu()
        t1 = time.perf_counter()
        out: List[int] = []
        pos = prefix
        steps = 0
        for i in range(max_len):
            if i < min_len:
                lp[self.eos] = float("-inf")
            tok = int(torch.argmax(lp)) if self.greedy else ras_sample(lp, out, self.sampling, gen)
            if tok in self.stop:
                break
            out.append(tok)
            if i + 1 == max_len:
                break
            logp = m.llm_decode_one(torch.tensor([[tok]], device=self.device), pos, k, v)
            lp = logp[0].float().cpu()
            pos += 1
            steps += 1
        t2 = time.perf_counter()
        if u is not None:
            u.ms["prefill"] += (t1 - t0) * 1e3
            u.ms["decode"] += (t2 - t1) * 1e3
            u.decode_steps += steps
        return out

    @torch.inference_mode()
    def synthesize(self, text: str, seed: int = 0) -> Utterance:
        u = Utterance()
        m = self.model
        self._sync()
        t_start = time.perf_counter()
        sents = self.front.sentences(text)
        sent_ids = [self.front.encode(s) for s in sents]
        u.ms["frontend"] = (time.perf_counter() - t_start) * 1e3
        wavs = []
        empty = torch.zeros(1, 1, 0, device=self.device)
        for j, ids in enumerate(sent_ids):
            if not ids:
                continue
            torch.manual_seed(seed + j)
            toks = self.llm_tokens(ids, seed + j, u)
            u.text_ids += len(ids)
            u.speech_tokens.append(toks)
            if not toks:
                continue
            self._sync()
            t0 = time.perf_counter()
            mel = m.flow_inference(torch.tensor([toks], device=self.device), self.prompt_tokens, self.prompt_mel,
                                   self.embedding, False, True)
            self._sync()
            t1 = time.perf_counter()
            wav, _ = m.hift_inference(mel, empty)
            wav = wav.cpu()
            t2 = time.perf_counter()
            u.ms["flow"] += (t1 - t0) * 1e3
            u.ms["hift"] += (t2 - t1) * 1e3
            wavs.append(wav[0])
        self._sync()
        u.ms["total"] = (time.perf_counter() - t_start) * 1e3
        u.sentences = len(sent_ids)
        u.tokens = sum(len(t) for t in u.speech_tokens)
        u.wav = torch.cat(wavs) if wavs else torch.zeros(0)
        u.audio_s = u.wav.numel() / self.sr
        return u


# ------------------------------------------------------------------------------------------ CLI
@torch.inference_mode()
def weight_stream_floor(model, device: torch.device, reps: int = 7) -> dict:
    """The decode step's memory floor: the time to read, once, every LLM weight one decode step reads (all
    but the embedding tables, of which a step reads one row), with the same threads as the pipeline. Each
    tensor is reduced in one pass over its bytes (negligible arithmetic) by two methods — ``sum`` in its own
    dtype, and ``max`` over its bytes viewed as int16 (libtorch's bf16 ``sum`` streams slower than its fp32
    one) — and the faster method's median of ``reps`` passes (after one warm pass) is the floor. A decode
    step cannot be faster than this on this machine."""
    ps = [p for n, p in model.llm.named_parameters() if "embed" not in n.rsplit(".", 2)[-2]]
    nbytes = sum(p.numel() * p.element_size() for p in ps)
    methods = {"sum": lambda p: p.sum(), "int16_max": lambda p: p.reshape(-1).view(torch.int16).max()}
    best = None
    for name, fn in methods.items():
        times = []
        for i in range(reps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            acc = [fn(p) for p in ps]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = (time.perf_counter() - t0) * 1000.0
            del acc
            if i:
                times.append(dt)
        times.sort()
        ms = times[len(times) // 2]
        if best is None or ms < best[1]:
            best = (name, ms)
    return {"ms": best[1], "method": best[0], "bytes": nbytes, "gb_per_s": nbytes / best[1] / 1e6, "tensors": len(ps)}


def vm_hwm_bytes(pid: str = "self") -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def summarize(xs: List[float]) -> dict:
    xs = [x for x in xs if x == x]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "mean": statistics.fmean(xs), "median": statistics.median(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0, "min": min(xs), "max": max(xs)}


def load_cases(path: str, ids: Optional[str]) -> List[dict]:
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    if ids:
        want = [x.strip() for x in ids.split(",") if x.strip()]
        by = {c["id"]: c for c in cases}
        unknown = [w for w in want if w not in by]
        if unknown:
            raise SystemExit(f"bench_eager: unknown case id(s) {unknown} (have: {', '.join(by)})")
        cases = [by[w] for w in want]
    return cases


def write_wav(path: str, wav: torch.Tensor, sr: int) -> None:
    import struct

    pcm = (wav.clamp(-1, 1) * 32767).round().to(torch.int16).numpy().tobytes()
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Eager PyTorch CosyVoice2 baseline on a bundle.")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--impl", choices=["eager", "script"], default="eager")
    ap.add_argument("--text", help="one text (else --cases)")
    ap.add_argument("--cases", default=os.path.join(HERE, "bench_cases.json"))
    ap.add_argument("--case-ids", help="comma-separated case ids (default: all)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--greedy", action="store_true", help="arg-max decoding (top-k 1, no RAS)")
    ap.add_argument("--speaker")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--json", help="write results here")
    ap.add_argument("--wav", help="with --text: write the last run's audio here")
    a = ap.parse_args(argv)

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    cuda = a.device.startswith("cuda")
    t0 = time.perf_counter()
    pipe = Pipeline(a.bundle, a.device, a.impl, a.speaker, a.greedy)
    if cuda:
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    cases = [{"id": "text", "lang": "?", "text": a.text}] if a.text else load_cases(a.cases, a.case_ids)
    t0 = time.perf_counter()
    pipe.synthesize(cases[0]["text"][:12], a.seed)  # warm-up (a few words), not counted
    warm_s = time.perf_counter() - t0
    floor = weight_stream_floor(pipe.model, pipe.device) if a.impl == "eager" else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    results = []
    for c in cases:
        runs = []
        last = None
        for r in range(a.runs):
            u = pipe.synthesize(c["text"], a.seed)
            last = u
            runs.append({"total_ms": u.ms["total"], "audio_s": u.audio_s, "rtf": u.rtf, "tokens": u.tokens,
                         "text_ids": u.text_ids, "sentences": u.sentences, "prefill_ms": u.ms["prefill"],
                         "decode_ms": u.ms["decode"], "decode_steps": u.decode_steps,
                         "decode_ms_per_token": u.decode_ms_per_token, "flow_ms": u.ms["flow"],
                         "hift_ms": u.ms["hift"], "frontend_ms": u.ms["frontend"]})
            print(f"bench_eager: {c['id']} run {r + 1}/{a.runs}: {u.ms['total']:.0f} ms, {u.audio_s:.2f} s audio, "
                  f"{u.tokens} tokens, {u.decode_ms_per_token:.2f} ms/token", file=sys.stderr, flush=True)
        res = {"id": c["id"], "lang": c.get("lang"), "chars": len(c["text"]), "runs": runs,
               "total_ms": summarize([x["total_ms"] for x in runs]), "rtf": summarize([x["rtf"] for x in runs]),
               "prefill_ms": summarize([x["prefill_ms"] for x in runs]),
               "decode_ms_per_token": summarize([x["decode_ms_per_token"] for x in runs])}
        results.append(res)
        if a.wav and last is not None and last.wav is not None:
            write_wav(a.wav, last.wav, pipe.sr)
    out = {
        "impl": a.impl, "device": a.device, "dtype": pipe.manifest["dtype"], "speaker": pipe.speaker,
        "seed": a.seed, "greedy": a.greedy, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_s": load_s, "warmup_s": warm_s, "weight_stream_floor": floor, "cases": results,
        "rss_peak_bytes": vm_hwm_bytes(),
        "gpu_peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "gpu_name": torch.cuda.get_device_name() if cuda else None,
    }
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write("\n")
    else:
        json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
