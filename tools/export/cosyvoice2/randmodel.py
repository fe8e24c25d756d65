"""Write a complete official-layout CosyVoice2 model directory with random weights.

DESIGN: random bundles must take exactly the path official files take, so this writes what the
release ships (``cosyvoice2.yaml``, ``CosyVoice-BlankEN/{config.json, vocab.json, merges.txt,
tokenizer_config.json}``, ``llm.pt``, ``flow.pt``, ``hift.pt``, ``spk2info.pt``) and nothing else; the
exporter then reads it like the real thing. The tensors are generated from the official key lists
(keys.py, docs/cosyvoice2.md §9), not from this project's modules, so a module whose names drift from the
official layout fails the strict loader instead of silently agreeing with itself. Checkpoint details follow the
release: float32, ``lm_head`` sharing the storage of ``embed_tokens`` (stored once), HiFT weight norm
kept as ``parametrizations.weight.original0/1`` (or legacy ``weight_g/weight_v`` on request).

Initialization (deterministic from ``seed``): norm weights and Snake alphas 1; LLM tensors N(0, 0.02)
as Qwen2 initializes; flow and HiFT weights U(+-1/sqrt(fan_in)) like torch's default layers, the flow
token embedding N(0, 1); weight-norm magnitudes = the norm of the direction (so W = v).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from . import config as C
from . import keys as K
from . import presets as P

TOKENIZER_FILES = ("vocab.json", "merges.txt")


def default_tokenizer_dir() -> Optional[str]:
    env = os.environ.get("CV_TOKENIZER_DIR")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return os.path.join(repo, "models", C.QWEN_DIR)


def _tokenizer_config() -> str:
    added = {
        str(151643 + i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, t in enumerate(("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    }
    d = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    return json.dumps(d, indent=2) + "\n"


def _init(key: str, shape: tuple, family: str, g: torch.Generator) -> Tensor:
    t = torch.empty(shape, dtype=torch.float32)
    if key.endswith(".alpha") or (len(shape) == 1 and key.endswith(".weight")):
        return t.fill_(1.0)
    if family == "llm":
        return t.normal_(0.0, 0.02, generator=g)
    if key == "input_embedding.weight":
        return t.normal_(0.0, 1.0, generator=g)
    if key.endswith("pos_bias_u") or key.endswith("pos_bias_v"):
        return t.normal_(0.0, 0.1, generator=g)
    if len(shape) == 1:  # biases
        return t.uniform_(-0.05, 0.05, generator=g)
    fan_in = math.prod(shape[1:])  # ConvTranspose1d [in, out, k]: out * k, as torch's own init
    b = 1.0 / math.sqrt(max(1, fan_in))
    return t.uniform_(-b, b, generator=g)


def random_state(keylist: "OrderedDict[str, tuple]", family: str, g: torch.Generator) -> "OrderedDict[str, Tensor]":
    sd: "OrderedDict[str, Tensor]" = OrderedDict()
    for k, shape in keylist.items():
        if k.endswith(".parametrizations.weight.original0") or k.endswith(".weight_g"):
            sd[k] = None  # filled from its direction below
        elif k == "llm.model.lm_head.weight":
            sd[k] = None  # tied
        else:
            sd[k] = _init(k, shape, family, g)
    for k in list(sd):
        if sd[k] is not None:
            continue
        if k == "llm.model.lm_head.weight":
            sd[k] = sd["llm.model.model.embed_tokens.weight"]  # same storage: stored once by torch.save
        else:
            vk = k.replace(".original0", ".original1").replace(".weight_g", ".weight_v")
            sd[k] = torch.norm_except_dim(sd[vk], 2, 0).contiguous()
    return sd


# stress_llm_state: the trigger is the word "overflow" (its BPE tokens; "Ġ" is a leading space)
STRESS_WORDS = ("overflow", "Ġoverflow", "Overflow", "ĠOverflow")
STRESS_CHANNELS = 2


def stress_trigger_ids(vocab_path: str) -> List[int]:
    """Text token ids of the STRESS_WORDS a BlankEN ``vocab.json`` has."""
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    ids = [vocab[w] for w in STRESS_WORDS if w in vocab]
    if not ids:
        raise ValueError(f"{vocab_path}: has none of the stress trigger tokens {STRESS_WORDS}")
    return ids


def stress_llm_state(sd: Dict[str, Tensor], q: C.QwenConfig, scale: float, trigger_ids: Sequence[int]) -> None:
    """Give a random llm.pt state the "massive activations" of real Qwen2 checkpoints (in place, no RNG draws).

    Residual channels 0..STRESS_CHANNELS-1 are reserved: nothing writes them (their embedding columns and
    o_proj/down_proj rows are 0) except the text embeddings of ``trigger_ids``, which hold 1 there, and, in
    every decoder layer, one MLP neuron per channel (gate and up read only that channel, down writes only it)
    sized to add ``scale`` while the channel dominates the normalized input (which it does from the first
    layer on: RMSNorm does not see its size). At a trigger token the residual stream so holds
    1 + (i + 1) * scale after layer i, 1 + layers * scale at the top; at every other token the channels stay
    0. The largest weight is scale / (silu(h) * h), h = sqrt(hidden / STRESS_CHANNELS) (scale / 7.5 for the
    tiny preset, scale / 448 for the full one), so a half-precision cast is finite: an overflow comes from
    the activations, as it would with a real checkpoint."""
    k = STRESS_CHANNELS
    if q.hidden_size <= k or q.intermediate_size < k:
        raise ValueError(f"stress needs hidden_size > {k} and intermediate_size >= {k}")
    h0 = math.sqrt(q.hidden_size / k)  # a channel holding all of the RMS, after RMSNorm (weight 1)
    w = scale / (h0 * h0 / (1.0 + math.exp(-h0)))  # scale / (silu(h0) * h0)
    p = "llm.model.model."
    with torch.no_grad():
        for key in (p + "embed_tokens.weight", "speech_embedding.weight", "llm_embedding.weight"):
            sd[key][:, :k] = 0.0  # embed_tokens is also the tied lm_head: same storage, stays tied
        for i in trigger_ids:
            sd[p + "embed_tokens.weight"][i, :k] = 1.0
        for layer in range(q.num_layers):
            lp = f"{p}layers.{layer}."
            sd[lp + "self_attn.o_proj.weight"][:k] = 0.0
            gate, up, down = (sd[lp + f"mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
            down[:k] = 0.0
            for c in range(k):  # neuron c reads and writes channel c only
                gate[c] = 0.0
                up[c] = 0.0
                down[:, c] = 0.0
                gate[c, c] = 1.0
                up[c, c] = 1.0
                down[c, c] = w


def random_spk2info(cfg: C.ModelConfig, g: torch.Generator) -> dict:
    """A few entries in the reference's spk2info layout (§7.5): two zero-shot voices, one SFT voice."""
    out = {}
    for i, (lt, L) in enumerate(((6, 20), (9, 33))):
        tok = torch.randint(0, cfg.llm.speech_token_size, (1, L), generator=g, dtype=torch.int64).to(torch.int32)
        emb = torch.randn(1, cfg.flow.spk_embed_dim, generator=g)
        mel = torch.randn(1, 2 * L, cfg.flow.output_size, generator=g) * 1.5 - 6.0
        text = torch.randint(0, 151643, (1, lt), generator=g, dtype=torch.int64).to(torch.int32)
        out[f"zero_shot_{i}"] = {
            "prompt_text": text,
            "prompt_text_len": torch.tensor([lt], dtype=torch.int32),
            "llm_prompt_speech_token": tok,
            "llm_prompt_speech_token_len": torch.tensor([L], dtype=torch.int32),
            "flow_prompt_speech_token": tok.clone(),
            "flow_prompt_speech_token_len": torch.tensor([L], dtype=torch.int32),
            "prompt_speech_feat": mel,
            "prompt_speech_feat_len": torch.tensor([2 * L], dtype=torch.int32),
            "llm_embedding": emb,
            "flow_embedding": emb.clone(),
        }
    out["中文女"] = {"embedding": torch.randn(1, cfg.flow.spk_embed_dim, generator=g)}
    return out


def make(
    out_dir: str,
    preset: str = "tiny",
    seed: int = 0,
    tokenizer_dir: Optional[str] = None,
    hift_style: str = "parametrizations",
    with_spk2info: bool = True,
    stress_scale: float = 0.0,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> C.ModelConfig:
    if preset not in P.PRESETS:
        raise ValueError(f"preset must be one of {sorted(P.PRESETS)}, not {preset!r}")
    t0 = time.monotonic()
    tokenizer_dir = tokenizer_dir or default_tokenizer_dir()
    for f in TOKENIZER_FILES:
        if not os.path.isfile(os.path.join(tokenizer_dir, f)):
            raise FileNotFoundError(
                f"missing file: {os.path.join(tokenizer_dir, f)} (the BlankEN tokenizer files; "
                "set CV_TOKENIZER_DIR or pass --tokenizer-dir)"
            )
    os.makedirs(out_dir, exist_ok=True)
    qdir = os.path.join(out_dir, C.QWEN_DIR)
    os.makedirs(qdir, exist_ok=True)
    with open(os.path.join(out_dir, C.YAML_NAME), "w", encoding="utf-8") as f:
        f.write(P.yaml_text(preset))
    with open(os.path.join(qdir, "config.json"), "w", encoding="utf-8") as f:
        f.write(P.qwen_config_json(preset))
    with open(os.path.join(qdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        f.write(_tokenizer_config())
    for fn in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(tokenizer_dir, fn), os.path.join(qdir, fn))
    cfg = C.load_model_dir(out_dir)  # read back through the exporter's own path
    g = torch.Generator().manual_seed(seed)
    for name, family, keylist in (
        ("llm.pt", "llm", K.llm_keys(cfg.llm, with_lm_head=True)),
        ("flow.pt", "flow", K.flow_keys(cfg.flow)),
        ("hift.pt", "hift", K.hift_keys(cfg.hift, hift_style)),
    ):
        sd = random_state(keylist, family, g)
        if family == "llm" and stress_scale:
            stress_llm_state(sd, cfg.llm.qwen, stress_scale, stress_trigger_ids(os.path.join(qdir, "vocab.json")))
            log(f"llm.pt: massive activations of {stress_scale:g} per layer at the token 'overflow' (stress)")
        path = os.path.join(out_dir, name)
        torch.save(sd, path)
        log(f"wrote {path}: {len(sd)} tensors, {K.param_count(keylist) / 1e6:.2f} M values, "
            f"{os.path.getsize(path) / 1e6:.1f} MB ({time.monotonic() - t0:.1f} s)")
        del sd
    if with_spk2info:
        torch.save(random_spk2info(cfg, g), os.path.join(out_dir, "spk2info.pt"))
    log(f"random {preset} model directory ready: {out_dir}")
    return cfg
