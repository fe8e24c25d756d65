"""Strict loading of the official ``llm.pt`` / ``flow.pt`` / ``hift.pt`` state_dicts
(docs/cosyvoice2.md §3.2, §4.5, §5.2, §9).

DESIGN: a checkpoint is first compared against the key list that the model directory's own config
implies (keys.py): every missing, extra or mis-shaped key is reported by name with both shapes, so a
wrong file, a truncated file or a config/checkpoint size mismatch fails before any module is touched.
Only then are tensors mapped onto the modules with ``load_state_dict(strict=True)``. Mapping rules:

* llm.pt: ``llm.model.lm_head.weight`` must be present (it is in the release) and is dropped: it is the
  tied copy of ``embed_tokens`` (one storage in the file) and CosyVoice never uses it.
* hift.pt: any ``generator.`` substring is removed from the keys first (as the reference does); weight
  norm stored as ``parametrizations.weight.original0/1`` or legacy ``weight_g/weight_v`` is folded into a
  plain ``weight`` with ``torch._weight_norm`` (bit-identical to what the reference computes at run time);
  an already-folded file is accepted as is.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

import torch
from torch import Tensor, nn

from . import keys as K
from .config import ModelConfig


class CheckpointError(ValueError):
    pass


def read_state_dict(path: str) -> "OrderedDict[str, Tensor]":
    """torch.load a flat str->Tensor state_dict safely (weights_only) and lazily (mmap)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"missing file: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # zip/pickle errors come in many types
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise CheckpointError(f"{path}: not a torch.save state_dict ({type(e).__name__}: {e})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: holds a {type(sd).__name__}, expected a dict of tensors")
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise CheckpointError(f"{path}: entry {k!r} is a {type(v).__name__}, expected a tensor")
        if not v.is_floating_point():
            raise CheckpointError(f"{path}: key '{k}' has dtype {v.dtype}, expected floating point")
        out[k] = v
    return out


def _shape(s) -> str:
    return "[" + ", ".join(str(int(d)) for d in s) + "]"


def check_keys(sd: Mapping[str, Tensor], expected: Mapping[str, Tuple[int, ...]], what: str) -> None:
    """Raise CheckpointError naming every missing, extra and mis-shaped key (first 20 of each)."""
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    bad = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k])]
    if not (missing or extra or bad):
        return
    lines = []
    for k in missing[:20]:
        lines.append(f"  missing key '{k}' (expected shape {_shape(expected[k])})")
    for k in extra[:20]:
        lines.append(f"  unexpected key '{k}' (shape {_shape(sd[k].shape)})")
    for k in bad[:20]:
        lines.append(f"  key '{k}' has shape {_shape(sd[k].shape)}, expected {_shape(expected[k])}")
    more = len(missing) + len(extra) + len(bad) - len(lines)
    if more > 0:
        lines.append(f"  ... and {more} more")
    hint = ""
    if bad and not missing and not extra:
        hint = " (the sizes in cosyvoice2.yaml / CosyVoice-BlankEN/config.json do not match this checkpoint)"
    elif missing and extra:
        hint = " (is this the right file for this model directory?)"
    raise CheckpointError(
        f"{what}: {len(missing)} missing, {len(extra)} unexpected, {len(bad)} mis-shaped keys{hint}:\n"
        + "\n".join(lines)
    )


# ------------------------------------------------------------------------------------------------ LLM
LM_HEAD = "llm.model.lm_head.weight"
EMBED = "llm.model.model.embed_tokens.weight"


def llm_module_state(sd: Mapping[str, Tensor], cfg: ModelConfig, what: str = "llm.pt") -> "OrderedDict[str, Tensor]":
    check_keys(sd, K.llm_keys(cfg.llm, with_lm_head=True), what)
    out = OrderedDict((k, v) for k, v in sd.items() if k != LM_HEAD)
    return out


def lm_head_is_tied(sd: Mapping[str, Tensor]) -> bool:
    a, b = sd[LM_HEAD], sd[EMBED]
    try:
        if a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and a.data_ptr() == b.data_ptr():
            return True
    except RuntimeError:
        pass
    return bool(torch.equal(a, b))


# ----------------------------------------------------------------------------------------------- HiFT
def hift_style(sd: Mapping[str, Tensor]) -> str:
    if any(k.endswith(".parametrizations.weight.original0") for k in sd):
        return "parametrizations"
    if any(k.endswith(".weight_g") for k in sd):
        return "weight_g"
    return "folded"


def strip_generator(sd: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for k, v in sd.items():
        nk = k.replace("generator.", "")
        if nk in out:
            raise CheckpointError(f"hift.pt: keys '{k}' and another both map to '{nk}' after removing 'generator.'")
        out[nk] = v
    return out


def fold_weight_norm(g: Tensor, v: Tensor) -> Tensor:
    """W = g * v / ||v|| with the norm over every dim except 0 (torch's own weight-norm kernel)."""
    return torch._weight_norm(v.float(), g.float(), 0)


def hift_module_state(sd: Mapping[str, Tensor], cfg: ModelConfig, what: str = "hift.pt") -> "OrderedDict[str, Tensor]":
    sd = strip_generator(sd)
    style = hift_style(sd)
    check_keys(sd, K.hift_keys(cfg.hift, style), what)
    if style == "folded":
        return OrderedDict(sd)
    if style == "parametrizations":
        g_suf, v_suf = ".parametrizations.weight.original0", ".parametrizations.weight.original1"
    else:
        g_suf, v_suf = ".weight_g", ".weight_v"
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for k, t in sd.items():
        if k.endswith(v_suf):
            continue
        if k.endswith(g_suf):
            base = k[: -len(g_suf)]
            out[base + ".weight"] = fold_weight_norm(t, sd[base + v_suf])
        else:
            out[k] = t
    return out


# ----------------------------------------------------------------------------------------------- flow
def flow_module_state(sd: Mapping[str, Tensor], cfg: ModelConfig, what: str = "flow.pt") -> "OrderedDict[str, Tensor]":
    check_keys(sd, K.flow_keys(cfg.flow), what)
    return OrderedDict(sd)


# ------------------------------------------------------------------------------------------- modules
def load_into(module: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """load_state_dict(strict=True) with an error that names the keys (module/code disagreement)."""
    own = module.state_dict()
    expected = OrderedDict((k, tuple(v.shape)) for k, v in own.items())
    try:
        check_keys(state, expected, f"{what} -> {type(module).__name__}")
    except CheckpointError as e:
        raise CheckpointError(f"{e}\n(the module code and the key list in keys.py disagree)") from None
    module.load_state_dict(dict(state), strict=True)


def load_checkpoint_files(model_dir: str, cfg: ModelConfig) -> Dict[str, "OrderedDict[str, Tensor]"]:
    """Read and check all three files; returns module-ready state dicts keyed 'llm', 'flow', 'hift'."""
    out = {}
    sd = read_state_dict(os.path.join(model_dir, "llm.pt"))
    out["llm"] = llm_module_state(sd, cfg)
    sd = read_state_dict(os.path.join(model_dir, "flow.pt"))
    out["flow"] = flow_module_state(sd, cfg)
    sd = read_state_dict(os.path.join(model_dir, "hift.pt"))
    out["hift"] = hift_module_state(sd, cfg)
    return out
