"""Export a CosyVoice2 model directory to a bundle the daemon loads (docs/cosyvoice2.md §1, §6.5, §8, §9, §11).

DESIGN: one pass, in this order, each step printed: check the directory (a missing file is named),
read the sizes (config.py), hash the source files, strictly check and load the three checkpoints
(load.py), build the eager modules, cast, script the single top-level module, save it, reload the saved
file with ``torch.jit.load`` and run it once (a bundle that does not load is never written), copy the
tokenizer and (when given) text-normalization grammars, write the speakers, and last the manifest with
the sha256 of every file. Everything goes to ``<out>.partial`` and is renamed onto ``<out>`` at the end,
so a failed export never leaves a half bundle behind under the real name.

The TorchScript module (``model.ts``) is :class:`CosyVoice2Bundle`: the LLM, flow and HiFT as submodules
with flat exported entry points (``llm_prefill``, ``flow_inference``, ``hift_inference``, ...), and the
non-checkpoint constants (CFM noise of seed 0, RoPE inverse frequencies, STFT/fade windows) inside as
buffers. It is scripted, not frozen: freezing would turn weights into graph constants, which the C++
side could no longer move with ``module.to(device)``; the file is written in the bundle dtype, so a
plain ``torch::jit::load(path, device)`` is all the daemon does, plus one call: the LLM's text embedding
table (a quarter of the LLM's bytes, a few rows read per prompt) is written beside ``model.ts`` as
``llm_text_embedding.safetensors`` and attached at load (``llm_attach_text_table``; the daemon maps the
file, so the table costs no resident or GPU memory; Python callers use :func:`load_model`). HiFT always stays float32 (the reference
runs it outside autocast, docs/cosyvoice2.md §6.1); the LLM and flow are cast to the bundle dtype (fp32, fp16 or bf16:
:data:`DTYPES`), except buffers whose name ends in ``_fp32`` (RoPE frequencies), which stay float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from . import config as C
from . import load as L
from . import speakers as S
from .llm import Qwen2LM

FORMAT = "cosyvoiced-bundle"
FORMAT_VERSION = 2  # 2: the text embedding table moved out of model.ts into TEXT_TABLE_FILE
MODEL_FILE = "model.ts"
MANIFEST = "manifest.json"
# The LLM's text embedding (151936 x 896: a quarter of the LLM's bytes, of which a prompt reads a few
# rows) lives beside model.ts; the daemon maps it and attaches it (llm_attach_text_table), so it costs
# neither resident memory nor GPU memory beyond the pages a prompt touches.
TEXT_TABLE_FILE = "llm_text_embedding.safetensors"
TEXT_TABLE_TENSOR = "llm.model.model.embed_tokens.weight"
# bundle dtype (manifest "dtype") -> torch dtype of the LLM and flow; HiFT is always float32
DTYPES: Dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# accept_encoder_zip: largest difference (relative to max(1, max |output|)) of an encoder zip from the own
# encoder; bf16 has 3 mantissa bits fewer than fp16 (a zip made from the same weights: 0.0015 in fp16,
# 0.012-0.015 in bf16, tiny and full sizes; from weights off by 0.001: above 1)
ZIP_TOLERANCE: Dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}

# The CosyVoice2 tokenizer (docs/cosyvoice2.md §2.2): 3 specials the BlankEN vocab already has after its base
# vocabulary, then the additional special tokens the reference adds, in this order.
BUILTIN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ADDED_SPECIALS = [
    "<|endofprompt|>", "[breath]", "<strong>", "</strong>", "[noise]", "[laughter]", "[cough]", "[clucking]",
    "[accent]", "[quick_breath]", "<laughter>", "</laughter>", "[hissing]", "[sigh]", "[vocalized-noise]",
    "[lipsmack]", "[mn]",
]

REQUIRED_FILES = [
    C.YAML_NAME,
    "llm.pt",
    "flow.pt",
    "hift.pt",
    f"{C.QWEN_DIR}/config.json",
    f"{C.QWEN_DIR}/vocab.json",
    f"{C.QWEN_DIR}/merges.txt",
]
OPTIONAL_SOURCE_FILES = [
    f"{C.QWEN_DIR}/tokenizer_config.json",
    "spk2info.pt",
    "campplus.onnx",
    "speech_tokenizer_v2.onnx",
    "flow.encoder.fp32.zip",
    "flow.encoder.fp16.zip",
]


class ExportError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------ the module
class CosyVoice2Bundle(nn.Module):
    """The whole model as one scriptable module; see the manifest's ``entry_points`` for the contract."""

    def __init__(self, llm: nn.Module, flow: nn.Module, hift: nn.Module):
        super().__init__()
        self.llm = llm
        self.flow = flow
        self.hift = hift

    # ---- LLM (docs/cosyvoice2.md §3) ----
    @torch.jit.export
    def llm_new_cache(self, max_len: int) -> Tuple[Tensor, Tensor]:
        return self.llm.new_cache(max_len, 1)

    @torch.jit.export
    def llm_prefill(self, text_ids: Tensor, prompt_speech: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        return self.llm.prefill(text_ids.to(torch.int64), prompt_speech.to(torch.int64), k_cache, v_cache)

    @torch.jit.export
    def llm_pack_cpu(self) -> None:
        self.llm.pack_cpu()

    @torch.jit.export
    def llm_decode_one(self, token: Tensor, pos: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        return self.llm.decode_one(token.to(torch.int64), pos, k_cache, v_cache)

    @torch.jit.export
    def llm_decode_at(self, token: Tensor, pos: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        return self.llm.decode_at(token, pos, k_cache, v_cache)

    @torch.jit.export
    def llm_step_embeds(self, x: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        return self.llm.step_embeds(x, start, k_cache, v_cache)

    @torch.jit.export
    def llm_attach_text_table(self, table: Tensor) -> None:
        self.llm.attach_text_table(table)

    @torch.jit.export
    def llm_embed_text(self, ids: Tensor) -> Tensor:
        return self.llm.embed_text(ids.to(torch.int64))

    @torch.jit.export
    def llm_embed_speech(self, ids: Tensor) -> Tensor:
        return self.llm.embed_speech(ids.to(torch.int64))

    @torch.jit.export
    def llm_sos_embedding(self) -> Tensor:
        return self.llm.sos_embedding()

    @torch.jit.export
    def llm_task_embedding(self) -> Tensor:
        return self.llm.task_embedding()

    # ---- flow (docs/cosyvoice2.md §4) ----
    def _flow_dtype(self) -> torch.dtype:
        return self.flow.input_embedding.weight.dtype

    @torch.jit.export
    def flow_inference(self, token: Tensor, prompt_token: Tensor, prompt_feat: Tensor, embedding: Tensor,
                       streaming: bool, finalize: bool) -> Tensor:
        return self.flow.inference(token.to(torch.int64), prompt_token.to(torch.int64),
                                   prompt_feat.to(self._flow_dtype()), embedding.to(self._flow_dtype()),
                                   streaming, finalize)

    @torch.jit.export
    def flow_encode(self, token: Tensor, prompt_token: Tensor, embedding: Tensor, streaming: bool,
                    finalize: bool) -> Tuple[Tensor, Tensor]:
        return self.flow.encode(token.to(torch.int64), prompt_token.to(torch.int64),
                                embedding.to(self._flow_dtype()), streaming, finalize)

    @torch.jit.export
    def flow_decode(self, mu: Tensor, spks: Tensor, prompt_feat: Tensor, streaming: bool) -> Tensor:
        return self.flow.decode(mu, spks, prompt_feat, streaming)

    # ---- HiFT (docs/cosyvoice2.md §5), always float32 ----
    @torch.jit.export
    def hift_inference(self, mel: Tensor, cache_source: Tensor) -> Tuple[Tensor, Tensor]:
        return self.hift.inference(mel.to(torch.float32), cache_source.to(torch.float32), None, None)

    @torch.jit.export
    def hift_inference_noise(self, mel: Tensor, cache_source: Tensor, noise: Tensor) -> Tuple[Tensor, Tensor]:
        return self.hift.inference(mel.to(torch.float32), cache_source.to(torch.float32),
                                   noise.to(torch.float32), None)

    @torch.jit.export
    def hift_fade_in_out(self, fade_in: Tensor, fade_out: Tensor) -> Tensor:
        return self.hift.fade_in_out(fade_in, fade_out)

    def forward(self, token: Tensor, prompt_token: Tensor, prompt_feat: Tensor, embedding: Tensor) -> Tensor:
        """Non-streaming token2wav: speech tokens -> 24 kHz waveform (1, 480 * 2N)."""
        mel = self.flow_inference(token, prompt_token, prompt_feat, embedding, False, True)
        empty = torch.zeros([1, 1, 0], dtype=torch.float32, device=mel.device)
        wav, _ = self.hift_inference(mel, empty)
        return wav


ENTRY_POINTS = {
    "llm_new_cache": "(max_len:int) -> (k_cache, v_cache) [layers,1,kv_heads,max_len,head_dim] zeros in the LLM dtype",
    "llm_prefill": "(text_ids (1,Lt) int, prompt_speech (1,P) int, k_cache, v_cache) -> logp (1,speech_vocab) fp32; "
    "runs [sos, text_ids, task_id, prompt_speech] at positions 0..Lt+P+1 (text_ids = prompt text ++ sentence)",
    "llm_decode_one": "(token (1,1) int, pos:int, k_cache, v_cache) -> logp (1,speech_vocab) fp32; "
    "first call pos = Lt+P+2, then +1 per token",
    "llm_pack_cpu": "() -> None: reorder the LLM's projection weights for oneDNN once, releasing the plain ones; "
    "every later LLM call uses them (CPU with native bf16, bf16 bundles; the daemon calls it at load)",
    "llm_decode_at": "(token (1,1) int64, pos (1,) int64 tensor, k_cache, v_cache) -> logp; llm_decode_one with "
    "fixed shapes (whole cache attended, later positions masked): what the daemon captures as a CUDA graph",
    "llm_step_embeds": "(x (1,L,hidden), start:int, k_cache, v_cache) -> logp of the last position (bistream)",
    "llm_attach_text_table": "(table (text_vocab_size, hidden) in the LLM dtype, any device) -> None: the text "
    "embedding of text_embedding.file, used in place (not copied, not moved); llm_prefill and llm_embed_text "
    "need it (model.ts holds a (0, hidden) placeholder)",
    "llm_embed_text": "(ids (1,L) int) -> (1,L,hidden), looked up on the table's device, returned on the model's",
    "llm_embed_speech": "(ids (1,L) int) -> (1,L,hidden)",
    "llm_sos_embedding": "() -> (1,1,hidden)",
    "llm_task_embedding": "() -> (1,1,hidden)",
    "flow_inference": "(token (1,N) int, prompt_token (1,P) int, prompt_feat (1,2P,80), embedding (1,192), "
    "streaming:bool, finalize:bool) -> mel (1,80,2N) fp32 (2(N-3) when finalize is false)",
    "flow_encode": "(token, prompt_token, embedding, streaming, finalize) -> (mu (1,80,2M), spks (1,80))",
    "flow_decode": "(mu, spks, prompt_feat (1,T1,80), streaming) -> mel (1,80,2M-T1) fp32",
    "hift_inference": "(mel (1,80,T), cache_source (1,1,S) or (1,1,0)) -> (speech (1,480T) fp32, source (1,1,480T))",
    "hift_inference_noise": "(mel, cache_source, noise (1,480T,nb_harmonics+1)) -> (speech, source); no RNG draws",
    "hift_fade_in_out": "(fade_in (1,n), fade_out (1,m)) -> cross-faded fade_in (Hamming(2*source_cache_len))",
    "forward": "(token, prompt_token, prompt_feat, embedding) -> speech (1,480*2N): non-streaming token2wav",
}


# ------------------------------------------------------------------------------------------- helpers
def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def check_model_dir(model_dir: str) -> None:
    if not os.path.isdir(model_dir):
        raise ExportError(f"model directory not found: {model_dir}")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
        lines = "\n".join(f"  missing file: {os.path.join(model_dir, f)}" for f in missing)
        raise ExportError(
            f"{model_dir} is not a complete CosyVoice2 model directory:\n{lines}\n"
            "(expected the CosyVoice2-0.5B layout: cosyvoice2.yaml, llm.pt, flow.pt, hift.pt and "
            "CosyVoice-BlankEN/ with config.json, vocab.json, merges.txt)"
        )


def cast_module(m: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast floating parameters and buffers to ``dtype``, except buffers named ``*_fp32``."""
    for mod in m.modules():
        for name, p in mod._parameters.items():
            if p is not None and p.is_floating_point():
                p.data = p.data.to(dtype)
        for name, b in mod._buffers.items():
            if b is not None and b.is_floating_point() and not name.endswith("_fp32"):
                mod._buffers[name] = b.to(dtype)
    return m


def special_tokens(vocab_path: str) -> Dict[str, int]:
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    if not isinstance(vocab, dict):
        raise ExportError(f"{vocab_path}: not a JSON object")
    base = len(vocab)
    out: Dict[str, int] = {}
    for i, t in enumerate(BUILTIN_SPECIALS + ADDED_SPECIALS):
        if t in vocab:
            raise ExportError(f"{vocab_path}: special token {t} is in the base vocabulary (not a BlankEN vocab.json?)")
        out[t] = base + i
    return out


def build_modules(cfg: C.ModelConfig, states: Optional[Dict[str, Dict[str, Tensor]]] = None):
    """Eager LLM, flow and HiFT for ``cfg`` (random init), loaded strictly from ``states`` when given."""
    from . import flow as flow_mod
    from . import hift as hift_mod

    llm = Qwen2LM(cfg.llm).eval()
    flow = flow_mod.build_flow(cfg.flow)
    hift = hift_mod.build_hift(cfg.hift)
    if states is not None:
        L.load_into(llm, states["llm"], "llm.pt")
        L.load_into(flow, states["flow"], "flow.pt")
        L.load_into(hift, states["hift"], "hift.pt")
    return llm, flow, hift


def accept_encoder_zip(flow: nn.Module, zip_path: str, dtype: torch.dtype, cfg: C.ModelConfig) -> dict:
    """Check an official ``flow.encoder.{fp32,fp16}.zip`` (the reference's load_jit artefact; there is no
    official bf16 one, but one made the same way is accepted) against this flow's own encoder (already
    loaded from flow.pt and cast to ``dtype``) and, if it matches, put it in place of the own encoder.
    Returns what the manifest records."""
    if not os.path.isfile(zip_path):
        raise ExportError(f"missing file: {zip_path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            enc = torch.jit.load(zip_path, map_location="cpu")
    except Exception as e:
        raise ExportError(f"{zip_path}: not a TorchScript archive ({e})") from None
    g = torch.Generator().manual_seed(0)
    d = cfg.flow.input_size
    la = cfg.flow.pre_lookahead_len
    worst = 0.0
    cases = [(30, 0, False), (30, 0, True), (27, la, True), (27, la, False)]
    with torch.no_grad():
        for t, nctx, streaming in cases:
            xs = torch.randn(1, t, d, generator=g).to(dtype)
            ctx = torch.randn(1, nctx, d, generator=g).to(dtype) if nctx else torch.zeros(0, 0, 0, dtype=dtype)
            lens = torch.tensor([t + nctx])
            ours = flow.encoder(xs, lens, context=ctx, streaming=streaming)[0]
            try:
                theirs = enc(xs, lens, context=ctx, streaming=streaming)[0]
            except Exception as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ExportError(
                    f"{zip_path} cannot be used: calling it as the reference does (xs, xs_lens, context=, "
                    f"streaming=) with {dtype} inputs failed: {msg}\n(a zip from older code, or of another "
                    "dtype; export without --flow-encoder-zip to use the own encoder)"
                ) from None
            if theirs.shape != ours.shape or theirs.dtype != ours.dtype:
                raise ExportError(f"{zip_path}: output {tuple(theirs.shape)} {theirs.dtype}, expected "
                                  f"{tuple(ours.shape)} {ours.dtype}")
            scale = max(1.0, float(ours.float().abs().max()))
            worst = max(worst, float((theirs.float() - ours.float()).abs().max()) / scale)
    tol = ZIP_TOLERANCE[dtype]
    if not worst <= tol:
        raise ExportError(f"{zip_path} does not match flow.pt: relative max difference {worst:.3g} > {tol} "
                          "(the zip was exported from other weights)")
    flow.encoder = enc
    return {"source": os.path.basename(zip_path), "sha256": sha256_file(zip_path), "max_rel_diff": worst,
            "tolerance": tol}


def script_bundle(llm: nn.Module, flow: nn.Module, hift: nn.Module, dtype: torch.dtype,
                  encoder_zip: Optional[str] = None, cfg: Optional[C.ModelConfig] = None,
                  flow_dtype: Optional[torch.dtype] = None):
    """Cast (the flow to ``flow_dtype`` when given, else ``dtype``), optionally swap in an official encoder
    zip, take the LLM's text table out, script; returns (scripted, encoder_info, text_table)."""
    fdt = flow_dtype or dtype
    cast_module(llm, dtype)
    cast_module(flow, fdt)
    cast_module(hift, torch.float32)
    enc_info = {"source": "flow.pt"}
    if encoder_zip:
        assert cfg is not None
        enc_info = accept_encoder_zip(flow, encoder_zip, fdt, cfg)
    table = llm.detach_text_table()
    b = CosyVoice2Bundle(llm, flow, hift).eval()
    for p in b.parameters():
        p.requires_grad_(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is "deprecated" but maintained
        return torch.jit.script(b), enc_info, table


def load_model(bundle_dir: str, map_location: str = "cpu"):
    """``torch.jit.load`` a bundle's model with its text table attached (read into memory, kept on the
    CPU whatever ``map_location`` is, as the daemon does): what Python callers of a bundle use."""
    from safetensors import safe_open

    with open(os.path.join(bundle_dir, MANIFEST), encoding="utf-8") as f:
        man = json.load(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        m = torch.jit.load(os.path.join(bundle_dir, man.get("model", MODEL_FILE)), map_location=map_location)
    te = man["text_embedding"]
    with safe_open(os.path.join(bundle_dir, te["file"]), framework="pt") as f:
        table = f.get_tensor(te["tensor"])
    m.llm_attach_text_table(table)
    return m


def smoke_run(m, cfg: C.ModelConfig, device: str = "cpu") -> Dict[str, List[int]]:
    """Run every stage once on small inputs; returns the output shapes (raises on any failure)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        k, v = m.llm_new_cache(16)
        text = torch.randint(0, 1000, (1, 4), generator=g)
        prompt = torch.randint(0, cfg.llm.speech_token_size, (1, 3), generator=g)
        lp = m.llm_prefill(text, prompt, k, v)
        tok = torch.tensor([[int(lp.argmax())]]) % cfg.llm.speech_token_size
        lp2 = m.llm_decode_one(tok, 9, k, v)
        lp3 = m.llm_decode_at(tok, torch.tensor([9]), k, v)
        if not torch.allclose(lp2, lp3, atol=1e-3, rtol=1e-3):
            raise ExportError("smoke run: llm_decode_at differs from llm_decode_one")
        tokens = torch.randint(0, cfg.llm.speech_token_size, (1, 6), generator=g)
        ptok = torch.randint(0, cfg.llm.speech_token_size, (1, 2), generator=g)
        pfeat = torch.randn(1, 4, cfg.flow.output_size, generator=g) - 5.0
        emb = torch.randn(1, cfg.flow.spk_embed_dim, generator=g)
        mel = m.flow_inference(tokens, ptok, pfeat, emb, False, True)
        wav, src = m.hift_inference(mel, torch.zeros(1, 1, 0))
    for name, t in (("llm_prefill", lp), ("llm_decode_one", lp2), ("flow_inference", mel), ("hift_inference", wav)):
        if not torch.isfinite(t).all():
            raise ExportError(f"smoke run: {name} produced non-finite values")
    if list(mel.shape) != [1, cfg.flow.output_size, 2 * tokens.shape[1]]:
        raise ExportError(f"smoke run: flow_inference gave shape {list(mel.shape)}")
    if list(wav.shape) != [1, mel.shape[2] * cfg.hift.samples_per_frame]:
        raise ExportError(f"smoke run: hift_inference gave shape {list(wav.shape)}")
    return {"llm_prefill": list(lp.shape), "flow_inference": list(mel.shape), "hift_inference": list(wav.shape)}


# ------------------------------------------------------------------------------------------- export
def export(
    model_dir: str,
    out_dir: str,
    dtype: str = "fp32",
    tn_dir: Optional[str] = None,
    spk2info: Optional[str] = None,
    extra_speakers: Optional[List[S.Speaker]] = None,
    random_speakers: int = 0,
    random_preset: Optional[str] = None,
    verify: bool = True,
    flow_encoder_zip: Optional[str] = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    default_speaker: Optional[str] = None,
    flow_dtype: Optional[str] = None,
) -> dict:
    """Export ``model_dir`` to ``out_dir``; returns the manifest. ``flow_dtype`` (default ``dtype``) gives
    the flow its own precision: ``dtype="bf16", flow_dtype="fp32"`` is the CPU's mix (the LLM's decode is
    bound by weight bytes, the flow's matrix products by arithmetic, which CPUs without AMX do no faster in
    bf16: docs/benchmarks.md)."""
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    flow_dtype = flow_dtype or dtype
    if flow_dtype not in DTYPES:
        raise ExportError(f"flow dtype must be one of {', '.join(DTYPES)}, not {flow_dtype!r}")
    tdtype = DTYPES[dtype]
    t0 = time.monotonic()
    steps = 9

    def step(i: int, msg: str) -> None:
        log(f"[{i}/{steps}] {msg} ({time.monotonic() - t0:.1f} s)")

    model_dir = os.path.abspath(model_dir)
    out_dir = os.path.abspath(out_dir)
    step(1, f"checking {model_dir}")
    check_model_dir(model_dir)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ExportError(f"{out_dir} exists and is not a directory")
        if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, MANIFEST)):
            raise ExportError(f"{out_dir} exists, is not empty and is not a bundle: refusing to replace it")

    step(2, "reading cosyvoice2.yaml and CosyVoice-BlankEN/config.json")
    try:
        cfg = C.load_model_dir(model_dir)
    except (C.ConfigError, ValueError) as e:
        raise ExportError(f"config: {e}") from None
    q = cfg.llm.qwen
    log(f"      LLM {q.num_layers} layers x {q.hidden_size} ({q.num_heads} heads, {q.num_kv_heads} KV), "
        f"flow encoder {cfg.flow.enc_num_blocks}+{cfg.flow.enc_up_blocks} x {cfg.flow.enc_output_size}, "
        f"estimator {cfg.flow.est_channels[0]} ch, HiFT {cfg.hift.base_channels} ch")

    step(3, "hashing source files")
    sources: Dict[str, dict] = {}
    for f in REQUIRED_FILES + OPTIONAL_SOURCE_FILES:
        p = os.path.join(model_dir, f)
        if os.path.isfile(p):
            sources[f] = {"sha256": sha256_file(p), "bytes": os.path.getsize(p)}

    step(4, "loading llm.pt, flow.pt, hift.pt (strict)")
    try:
        states: Dict[str, Dict[str, Tensor]] = {}
        llm_sd = L.read_state_dict(os.path.join(model_dir, "llm.pt"))
        states["llm"] = L.llm_module_state(llm_sd, cfg)
        tied = L.lm_head_is_tied(llm_sd)
        del llm_sd
        states["flow"] = L.flow_module_state(L.read_state_dict(os.path.join(model_dir, "flow.pt")), cfg)
        states["hift"] = L.hift_module_state(L.read_state_dict(os.path.join(model_dir, "hift.pt")), cfg)
    except L.CheckpointError as e:
        raise ExportError(str(e)) from None
    if not tied:
        log("      note: llm.model.lm_head.weight differs from embed_tokens; it is unused by CosyVoice and dropped")

    step(5, f"building modules and scripting ({dtype})")
    try:
        llm, flow, hift = build_modules(cfg, states)
    except L.CheckpointError as e:
        raise ExportError(str(e)) from None
    del states
    scripted, enc_info, text_table = script_bundle(llm, flow, hift, tdtype, flow_encoder_zip, cfg,
                                                   DTYPES[flow_dtype])
    if flow_encoder_zip:
        log(f"      flow encoder from {flow_encoder_zip} (matches flow.pt: relative max diff {enc_info['max_rel_diff']:.2g})")

    tmp = out_dir + ".partial"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    model_path = os.path.join(tmp, MODEL_FILE)
    scripted.save(model_path)
    del scripted, llm, flow, hift
    log(f"      wrote {MODEL_FILE}: {os.path.getsize(model_path) / 1e6:.1f} MB")
    from safetensors.torch import save_file

    table_path = os.path.join(tmp, TEXT_TABLE_FILE)
    save_file({TEXT_TABLE_TENSOR: text_table.contiguous()}, table_path,
              metadata={"format": "cosyvoiced-text-embedding", "dtype": dtype})
    log(f"      wrote {TEXT_TABLE_FILE}: {tuple(text_table.shape)} {dtype}, "
        f"{os.path.getsize(table_path) / 1e6:.1f} MB")

    step(6, "reloading the TorchScript file and running it once")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = torch.jit.load(model_path, map_location="cpu")
    reloaded.llm_attach_text_table(text_table)
    # a one-off run: skip the profiling executor's per-shape optimization (seconds on a small CPU)
    opt = torch._C._get_graph_executor_optimize()
    torch._C._set_graph_executor_optimize(False)
    try:
        smoke = smoke_run(reloaded, cfg) if verify else {}
    finally:
        torch._C._set_graph_executor_optimize(opt)
    del reloaded, text_table

    step(7, "copying tokenizer files and text-normalization grammars")
    tokdir = os.path.join(tmp, "tokenizer")
    os.makedirs(tokdir)
    qdir = os.path.join(model_dir, C.QWEN_DIR)
    tokfiles = ["vocab.json", "merges.txt"]
    for f in ("tokenizer_config.json",):
        if os.path.isfile(os.path.join(qdir, f)):
            tokfiles.append(f)
    for f in tokfiles:
        shutil.copyfile(os.path.join(qdir, f), os.path.join(tokdir, f))
    specials = special_tokens(os.path.join(qdir, "vocab.json"))
    with open(os.path.join(tokdir, "special_tokens.json"), "w", encoding="utf-8") as f:
        json.dump(specials, f, indent=1, ensure_ascii=False)
        f.write("\n")
    if max(specials.values()) >= q.vocab_size:
        raise ExportError(f"tokenizer ids reach {max(specials.values())} but the text embedding has {q.vocab_size} rows")
    tn_info: Optional[dict] = None
    tn_note = ""
    if tn_dir:
        if not os.path.isdir(tn_dir):
            raise ExportError(f"text-normalization grammar directory not found: {tn_dir}")
        fsts = sorted(f for f in os.listdir(tn_dir) if f.endswith(".fst"))
        if not fsts:
            raise ExportError(f"{tn_dir}: no .fst grammars in it")
        os.makedirs(os.path.join(tmp, "tn"))
        for f in fsts:
            shutil.copyfile(os.path.join(tn_dir, f), os.path.join(tmp, "tn", f))
        tn_info = {"dir": "tn", "files": fsts}
    else:
        tn_note = "no text-normalization grammars given (--tn DIR): the daemon uses its built-in rules only"
        log(f"      note: {tn_note}")

    step(8, "writing speakers")
    spk_list: List[S.Speaker] = []
    spk_path = spk2info or (os.path.join(model_dir, "spk2info.pt") if os.path.isfile(os.path.join(model_dir, "spk2info.pt")) else None)
    if spk_path:
        try:
            spk_list += S.from_spk2info(spk_path, cfg.flow.output_size, cfg.flow.spk_embed_dim)
        except S.SpeakerError as e:
            raise ExportError(str(e)) from None
        log(f"      imported {len(spk_list)} speakers from {spk_path}")
    if extra_speakers:
        spk_list += extra_speakers
    if random_speakers:
        spk_list += S.random_speakers(random_speakers, mel_bins=cfg.flow.output_size, spk_dim=cfg.flow.spk_embed_dim)
    try:
        spk_index = S.write_all(spk_list, os.path.join(tmp, "speakers"), cfg.flow.output_size, cfg.flow.spk_embed_dim)
    except S.SpeakerError as e:
        raise ExportError(str(e)) from None
    if default_speaker is None:
        default_speaker = S.pick_default(spk_list)
    elif default_speaker not in spk_index:
        raise ExportError(f"--default {default_speaker!r} is not one of the bundle's voices ({', '.join(spk_index)})")
    log(f"      {len(spk_index)} speakers, default {default_speaker!r}")

    step(9, "writing manifest.json")
    files: Dict[str, dict] = {}
    for root, _, names in os.walk(tmp):
        for n in sorted(names):
            p = os.path.join(root, n)
            rel = os.path.relpath(p, tmp)
            files[rel] = {"sha256": sha256_file(p), "bytes": os.path.getsize(p)}
    manifest = make_manifest(cfg, dtype, specials, files, sources, model_dir, spk_index, tn_info, tn_note,
                             random_preset, smoke, default_speaker, flow_dtype)
    manifest["flow_encoder"] = enc_info
    with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    make_readable(tmp)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    total = sum(v["bytes"] for v in files.values())
    log(f"done: {out_dir} ({total / 1e6:.1f} MB, {time.monotonic() - t0:.1f} s)")
    return manifest


def make_manifest(cfg: C.ModelConfig, dtype: str, specials: Dict[str, int], files: Dict[str, dict],
                  sources: Dict[str, dict], model_dir: str, spk_index: Dict[str, str], tn_info: Optional[dict],
                  tn_note: str, random_preset: Optional[str], smoke: dict,
                  default_speaker: Optional[str] = None, flow_dtype: Optional[str] = None) -> dict:
    q = cfg.llm.qwen
    st = cfg.llm.speech_token_size
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": "tools/export/export.py",
        "torch_version": torch.__version__,
        "dtype": dtype,
        "flow_dtype": flow_dtype or dtype,
        "hift_dtype": "fp32",
        "sample_rate": cfg.sample_rate,
        "model": MODEL_FILE,
        "text_embedding": {"file": TEXT_TABLE_FILE, "tensor": TEXT_TABLE_TENSOR, "dtype": dtype,
                           "shape": [q.vocab_size, q.hidden_size]},
        "entry_points": ENTRY_POINTS,
        "tokens": {
            "speech_token_size": st,
            "speech_vocab": cfg.llm.speech_vocab,
            "eos": st,
            "unused": st + 1,
            "fill": st + 2,
            "stop": [st, st + 1, st + 2],
            "llm_embedding_rows": {"sos": 0, "task_id": 1},
            "text_vocab_size": q.vocab_size,
            "text_special": {k: specials[k] for k in ("<|endoftext|>", "<|endofprompt|>")},
        },
        "llm": {
            "hidden_size": q.hidden_size,
            "num_layers": q.num_layers,
            "num_heads": q.num_heads,
            "num_kv_heads": q.num_kv_heads,
            "head_dim": q.head_dim,
            "max_position_embeddings": q.max_position_embeddings,
            "rope_theta": q.rope_theta,
            "sampling": {"top_p": cfg.llm.top_p, "top_k": cfg.llm.top_k, "win_size": cfg.llm.win_size,
                         "tau_r": cfg.llm.tau_r},
            "min_token_text_ratio": 2,
            "max_token_text_ratio": 20,
            "mix_ratio": list(cfg.llm.mix_ratio),
        },
        "flow": {
            "token_mel_ratio": cfg.flow.token_mel_ratio,
            "pre_lookahead_len": cfg.flow.pre_lookahead_len,
            "mel_bins": cfg.flow.output_size,
            "spk_embed_dim": cfg.flow.spk_embed_dim,
            "n_timesteps": C.CFM_STEPS,
            "inference_cfg_rate": cfg.flow.inference_cfg_rate,
            "max_mel_frames": C.CFM_NOISE_FRAMES,
            "noise_seed": C.CFM_NOISE_SEED,
            "encoder_chunk_tokens": cfg.flow.enc_static_chunk_size,
            "estimator_chunk_frames": cfg.flow.est_static_chunk_size,
        },
        "hift": {
            "samples_per_frame": cfg.hift.samples_per_frame,
            "audio_limit": cfg.hift.audio_limit,
            "nb_harmonics": cfg.hift.nb_harmonics,
        },
        "streaming": {
            "token_hop_len": cfg.chunk_size,
            "token_max_hop_len": 4 * cfg.chunk_size,
            "stream_scale_factor": 2,
            "pre_lookahead_len": cfg.flow.pre_lookahead_len,
            "mel_cache_len": 8,
            "source_cache_len": 8 * cfg.hift.samples_per_frame,
            "speech_window": f"hamming({2 * 8 * cfg.hift.samples_per_frame}), symmetric",
        },
        "mel": {
            "n_fft": cfg.mel.n_fft,
            "num_mels": cfg.mel.num_mels,
            "sampling_rate": cfg.mel.sampling_rate,
            "hop_size": cfg.mel.hop_size,
            "win_size": cfg.mel.win_size,
            "fmin": cfg.mel.fmin,
            "fmax": cfg.mel.fmax,
            "center": cfg.mel.center,
        },
        "tokenizer": {
            "dir": "tokenizer",
            "vocab": "tokenizer/vocab.json",
            "merges": "tokenizer/merges.txt",
            "special_tokens": "tokenizer/special_tokens.json",
        },
        "tn": tn_info,
        "tn_note": tn_note,
        "speakers": {name: f"speakers/{fn}" for name, fn in spk_index.items()},
        "default_speaker": default_speaker,
        "speaker_format": {
            "format": S.FORMAT,
            "format_version": S.FORMAT_VERSION,
            "tensors": {
                "prompt_text": "int32 [Lt]",
                "prompt_speech_tokens": "int32 [L]",
                "prompt_mel": f"float32 [2L, {cfg.flow.output_size}]",
                "embedding": f"float32 [{cfg.flow.spk_embed_dim}]",
            },
        },
        "files": files,
        "source": {"dir": model_dir, "random": random_preset, "files": sources},
        "smoke_run_shapes": smoke,
        "config": cfg.as_json(),
    }


def make_readable(bundle_dir: str) -> None:
    """Files 0644, directories 0755, whatever the umask and the writers' defaults (safetensors writes
    0600): a bundle is served by another user (systemd's User=cosyvoiced, the image's uid 10001)."""
    os.chmod(bundle_dir, 0o755)
    for root, dirs, names in os.walk(bundle_dir):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for n in names:
            p = os.path.join(root, n)
            if not os.path.islink(p):
                os.chmod(p, 0o644)


def verify_bundle(bundle_dir: str) -> List[str]:
    """Re-hash every file listed in the manifest; returns a list of problems (empty when all is well)."""
    problems: List[str] = []
    mpath = os.path.join(bundle_dir, MANIFEST)
    try:
        with open(mpath, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        return [f"{mpath}: {e}"]
    if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
        problems.append(f"{mpath}: format {m.get('format')!r} version {m.get('format_version')!r}")
    listed = set(m.get("files", {}))
    for rel, info in m.get("files", {}).items():
        p = os.path.join(bundle_dir, rel)
        if not os.path.isfile(p):
            problems.append(f"missing file: {rel}")
        elif sha256_file(p) != info.get("sha256"):
            problems.append(f"sha256 mismatch: {rel}")
    for root, _, names in os.walk(bundle_dir):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), bundle_dir)
            if rel != MANIFEST and rel not in listed:
                problems.append(f"file not in manifest: {rel}")
    return problems


def _first_full_prompt(bundle_dir: str, spk: dict) -> str:
    """The daemon's rule for a manifest without default_speaker: the first voice (manifest order) with
    prompt speech tokens, else the first voice."""
    for name, rel in spk.items():
        try:
            if S.load(os.path.join(bundle_dir, rel)).prompt_speech_tokens.numel() > 0:
                return name
        except (S.SpeakerError, OSError):
            continue
    return next(iter(spk))


def add_speakers(bundle_dir: str, new: List[S.Speaker], replace: bool = False, default: Optional[str] = None) -> dict:
    """Write speakers into an existing bundle and update its manifest (speakers and file hashes).

    The default voice never moves by adding one: a manifest without ``default_speaker`` (older bundles)
    first gets the one the daemon used for it (the first voice with a full prompt, in manifest order);
    ``default`` names a new one explicitly."""
    problems = verify_bundle(bundle_dir)
    if problems:
        raise ExportError(f"{bundle_dir}: not a valid bundle ({problems[0]})")
    mpath = os.path.join(bundle_dir, MANIFEST)
    with open(mpath, encoding="utf-8") as f:
        m = json.load(f)
    mel_bins = int(m["flow"]["mel_bins"])
    spk_dim = int(m["flow"]["spk_embed_dim"])
    spk = dict(m.get("speakers", {}))
    if not m.get("default_speaker") and spk:
        m["default_speaker"] = _first_full_prompt(bundle_dir, spk)
    taken = {os.path.splitext(os.path.basename(p))[0].lower() for p in spk.values()}
    sdir = os.path.join(bundle_dir, "speakers")
    os.makedirs(sdir, exist_ok=True)
    for sp in new:
        if sp.name in spk:
            if not replace:
                raise ExportError(f"speaker {sp.name!r} already in the bundle (use --replace)")
            old = spk.pop(sp.name)
            taken.discard(os.path.splitext(os.path.basename(old))[0].lower())
            os.remove(os.path.join(bundle_dir, old))
            m["files"].pop(old, None)
        try:
            sp = S.normalize(sp, mel_bins, spk_dim)
        except S.SpeakerError as e:
            raise ExportError(str(e)) from None
        rel = "speakers/" + S.file_stem(sp.name, taken) + ".safetensors"
        S.save(sp, os.path.join(bundle_dir, rel))
        spk[sp.name] = rel
        m["files"][rel] = {"sha256": sha256_file(os.path.join(bundle_dir, rel)),
                           "bytes": os.path.getsize(os.path.join(bundle_dir, rel))}
    m["speakers"] = spk
    if default is not None:
        if default not in spk:
            raise ExportError(f"--default {default!r} is not one of the bundle's voices ({', '.join(spk)})")
        m["default_speaker"] = default
    tmp = mpath + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(m, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, mpath)
    make_readable(bundle_dir)
    return m
