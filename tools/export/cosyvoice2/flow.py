"""CosyVoice2 flow (``CausalMaskedDiffWithXvec``): speech tokens -> 80-bin mel at 50 Hz.

DESIGN: an inference-only reimplementation written from docs/cosyvoice2.md (§4, §6.3, §11) whose module tree
reproduces the official ``flow.pt`` key names and shapes exactly (§4.5), so
``load_state_dict(strict=True)`` of the official file works without renaming. Everything is TorchScript
scriptable (no einops/diffusers/HF code, no **kwargs, no dict attributes); nested ``nn.ModuleList``s
stand where the reference has ``ModuleList([resnet, transformer_blocks, conv])`` triples, because that
is what produces the keys ``down_blocks.0.1.3.attn1.to_q.weight`` etc.

Tensors that are not in the checkpoint are regenerated here (§9):
* the CFM noise ``rand_noise`` [1, 80, 15000]: ``torch.manual_seed(0); torch.randn(1, 80, 15000)`` on
  the CPU generator (§4.3), registered as a *non-persistent* buffer, so it is not in ``state_dict()``
  (strict loading of flow.pt still works) but it IS saved inside a TorchScript archive;
* the ESPnet relative-position table (§4.2), computed per call in float32 exactly as the reference
  builds its table (it depends only on the relative position, so no 5000-row table is stored);
* the sinusoidal time-embedding frequencies (§4.4), computed per call in float32.

Sizes come from a config (never hard-coded 0.5B numbers): either the exporter's
``cosyvoice2.config.FlowConfig`` (or a dict with the same field names) or the yaml's ``flow:``
constructor arguments as nested dicts (``ModelConfig.flow_args``). See :func:`flow_params`.

Entry points (batch 1, as the reference):
* ``CausalMaskedDiffWithXvec.inference(token, prompt_token, prompt_feat, embedding, streaming, finalize)``
  -> mel (1, 80, 2N) float32 (same as ``forward``), §4.1;
* ``.encoder(xs, xs_lens, context, decoding_chunk_size, num_decoding_left_chunks, streaming)`` -> (h, masks)
  with the reference's (HEAD) signature, so it can be compared with the official ``flow.encoder.*.zip``;
* ``.encode(token, prompt_token, embedding, streaming, finalize)`` -> (mu, spks) and
  ``.decode(mu, spks, prompt_feat, streaming)`` -> mel: the same computation split in two;
* ``.decoder(mu, mask, spks, cond, streaming)`` -> mel: the CFM (10-step cosine Euler, CFG 0.7) and
  ``.decoder.estimator(x, mask, mu, t, spks, cond, streaming)``: the U-Net (ONNX-export signature, §4.6).
Streaming (§6.3): ``finalize=False`` treats the last ``pre_lookahead_len`` tokens as lookahead context
only; ``streaming=True`` applies the chunk masks (encoder: static_chunk_size tokens, x2 after upsampling;
estimator: its own static_chunk_size frames), with unlimited left context.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .hyperyaml import section

__all__ = [
    "FLOW_DEFAULTS",
    "flow_params",
    "make_pad_mask",
    "subsequent_chunk_mask",
    "rel_pos_table",
    "make_cfm_noise",
    "RelPositionMultiHeadedAttention",
    "UpsampleConformerEncoder",
    "CausalConditionalDecoder",
    "CausalConditionalCFM",
    "CausalMaskedDiffWithXvec",
    "build_flow",
]

# Values of the released CosyVoice2-0.5B configuration (docs/cosyvoice2.md §4, §11). Used only for keys that a given
# config does not carry (the reference hard-codes some of them in its classes: up-encoder depth 4, up
# stride 2 = token_mel_ratio, 10 CFM steps, noise seed 0 / 15000 frames).
FLOW_DEFAULTS: Dict[str, Any] = {
    "input_size": 512,
    "output_size": 80,
    "spk_embed_dim": 192,
    "vocab_size": 6561,
    "token_mel_ratio": 2,
    "pre_lookahead_len": 3,
    "enc_input_size": 512,
    "enc_output_size": 512,
    "enc_heads": 8,
    "enc_linear_units": 2048,
    "enc_num_blocks": 6,
    "enc_up_blocks": 4,
    "enc_static_chunk_size": 25,
    "enc_key_bias": True,
    # docs/cosyvoice2.md §4.2 step 4: the conformer-layer LayerNorms use eps 1e-12 (§12 item 6: two other stored
    # versions of the reference source have 1e-5 there; the difference is far below fp16 resolution).
    "enc_layer_norm_eps": 1e-12,
    "est_in_channels": 320,
    "est_out_channels": 80,
    "est_channels": (256,),
    "est_attention_head_dim": 64,
    "est_n_blocks": 4,
    "est_num_mid_blocks": 12,
    "est_num_heads": 8,
    "est_act_fn": "gelu",
    "est_static_chunk_size": 50,
    "inference_cfg_rate": 0.7,
    "sigma_min": 1e-6,
    "t_scheduler": "cosine",
    "n_timesteps": 10,
    "noise_frames": 15000,
    "noise_seed": 0,
}


def flow_params(cfg: Any = None) -> Dict[str, Any]:
    """Normalize a flow config to a flat dict with the field names of ``FlowConfig`` (+ a few extras).

    Accepted: ``None`` (the 0.5B values), a dataclass such as ``cosyvoice2.config.FlowConfig``, a flat dict
    with those field names, or the yaml's nested ``flow:`` arguments (``encoder:``, ``decoder:`` with
    ``cfm_params:`` (optionally under ``content:``) and ``estimator:``). Missing keys take FLOW_DEFAULTS.
    """
    p = dict(FLOW_DEFAULTS)
    if cfg is None:
        return p
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = dataclasses.asdict(cfg)
    cfg = section(cfg, "flow")
    if "encoder" in cfg or "decoder" in cfg:  # nested yaml arguments
        enc = section(cfg.get("encoder"), "flow")
        dec = section(cfg.get("decoder"), "flow")
        cfm = section(dec.get("cfm_params"), "flow")
        if isinstance(cfm.get("content"), dict):
            cfm = cfm["content"]
        est = section(dec.get("estimator"), "flow")
        top = {k: cfg[k] for k in ("input_size", "output_size", "spk_embed_dim", "vocab_size",
                                   "token_mel_ratio", "pre_lookahead_len") if k in cfg}
        p.update(top)
        for src, dst in (("input_size", "enc_input_size"), ("output_size", "enc_output_size"),
                         ("attention_heads", "enc_heads"), ("linear_units", "enc_linear_units"),
                         ("num_blocks", "enc_num_blocks"), ("static_chunk_size", "enc_static_chunk_size"),
                         ("key_bias", "enc_key_bias")):
            if src in enc:
                p[dst] = enc[src]
        if "input_size" not in enc:
            p["enc_input_size"] = p["input_size"]
        for key, want in (("input_layer", "linear"), ("pos_enc_layer_type", "rel_pos_espnet"),
                          ("selfattention_layer_type", "rel_selfattn"), ("macaron_style", False),
                          ("use_cnn_module", False), ("normalize_before", True), ("activation_type", "swish")):
            if key in enc and enc[key] != want:
                raise ValueError(f"flow config: encoder {key}={enc[key]!r} not supported (CosyVoice2 uses {want!r})")
        for src, dst in (("in_channels", "est_in_channels"), ("out_channels", "est_out_channels"),
                         ("channels", "est_channels"), ("attention_head_dim", "est_attention_head_dim"),
                         ("n_blocks", "est_n_blocks"), ("num_mid_blocks", "est_num_mid_blocks"),
                         ("num_heads", "est_num_heads"), ("act_fn", "est_act_fn"),
                         ("static_chunk_size", "est_static_chunk_size")):
            if src in est:
                p[dst] = est[src]
        for key in ("inference_cfg_rate", "sigma_min", "t_scheduler"):
            if key in cfm:
                p[key] = cfm[key]
        if "solver" in cfm and cfm["solver"] != "euler":
            raise ValueError(f"flow config: cfm solver {cfm['solver']!r} not supported (euler)")
    else:
        unknown = set(cfg) - set(FLOW_DEFAULTS)
        # FlowConfig may grow fields; ignore unknown ones rather than fail, but keep the known ones.
        p.update({k: v for k, v in cfg.items() if k not in unknown})
    p["est_channels"] = tuple(int(c) for c in p["est_channels"])
    for k in ("input_size", "output_size", "spk_embed_dim", "vocab_size", "token_mel_ratio", "pre_lookahead_len",
              "enc_input_size", "enc_output_size", "enc_heads", "enc_linear_units", "enc_num_blocks",
              "enc_up_blocks", "enc_static_chunk_size", "est_in_channels", "est_out_channels",
              "est_attention_head_dim", "est_n_blocks", "est_num_mid_blocks", "est_num_heads",
              "est_static_chunk_size", "n_timesteps", "noise_frames", "noise_seed"):
        p[k] = int(p[k])
    for k in ("enc_layer_norm_eps", "inference_cfg_rate", "sigma_min"):
        p[k] = float(p[k])
    _check(p)
    return p


def _check(p: Dict[str, Any]) -> None:
    def bad(msg: str) -> None:
        raise ValueError("flow config: " + msg)

    if p["enc_input_size"] != p["input_size"]:
        bad(f"encoder input_size {p['enc_input_size']} != flow input_size {p['input_size']}")
    if p["enc_output_size"] != p["input_size"]:
        # the reference's up_embed is Linear(input_size, output_size) applied to output_size features
        bad(f"encoder output_size {p['enc_output_size']} != input_size {p['input_size']} (the reference needs them equal)")
    if p["enc_output_size"] % p["enc_heads"]:
        bad(f"encoder output_size {p['enc_output_size']} not divisible by attention_heads {p['enc_heads']}")
    if p["enc_output_size"] % 2:
        bad("encoder output_size must be even (sin/cos position table)")
    if p["est_in_channels"] != 4 * p["output_size"]:
        bad(f"estimator in_channels {p['est_in_channels']} != 4 x output_size {p['output_size']}")
    if p["est_out_channels"] != p["output_size"]:
        bad(f"estimator out_channels {p['est_out_channels']} != output_size {p['output_size']}")
    if len(p["est_channels"]) != 1:
        bad(f"estimator channels {list(p['est_channels'])}: only one level is supported (CosyVoice2 shape)")
    if p["est_act_fn"] != "gelu":
        bad(f"estimator act_fn {p['est_act_fn']!r} not supported (gelu)")
    if p["est_in_channels"] % 2:
        bad("estimator in_channels must be even (time embedding)")
    if p["t_scheduler"] not in ("cosine", "linear"):
        bad(f"t_scheduler {p['t_scheduler']!r} not supported")
    if p["token_mel_ratio"] < 1 or p["pre_lookahead_len"] < 0 or p["n_timesteps"] < 1:
        bad("token_mel_ratio/pre_lookahead_len/n_timesteps out of range")


# --------------------------------------------------------------------------------------------------------
# masks and constant tables
# --------------------------------------------------------------------------------------------------------


def make_pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions: (B, max_len)."""
    seq = torch.arange(0, max_len, dtype=torch.int64, device=lengths.device)
    return seq.unsqueeze(0).expand(lengths.size(0), max_len) >= lengths.unsqueeze(-1)


def subsequent_chunk_mask(size: int, chunk_size: int, device: torch.device) -> torch.Tensor:
    """(size, size) bool: key j visible to query i iff j < (floor(i / chunk) + 1) * chunk (unlimited left)."""
    pos = torch.arange(size, device=device)
    limit = (torch.div(pos, chunk_size, rounding_mode="floor") + 1) * chunk_size
    return pos.unsqueeze(0) < limit.unsqueeze(1)


def rel_pos_table(size: int, d_model: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """ESPnet relative-position table slice for a length-``size`` sequence: (1, 2*size-1, d_model).

    Row r holds relative position ``size-1-r`` (size-1 ... 0 ... -(size-1)); even columns sin, odd cos of
    ``p * w_k`` with ``w_k = exp(2k * -(ln 10000 / d))``, all in float32 as the reference builds it (§4.2).
    """
    pos = torch.arange(size - 1, -size, -1, dtype=torch.float32, device=device).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / d_model))
    arg = pos * div
    pe = torch.stack([torch.sin(arg), torch.cos(arg)], dim=2).reshape(2 * size - 1, d_model)
    return pe.unsqueeze(0).to(dtype)


def make_cfm_noise(n_feats: int = 80, frames: int = 15000, seed: int = 0) -> torch.Tensor:
    """The CFM's fixed noise: identical to ``torch.manual_seed(seed); torch.randn(1, n_feats, frames)`` on
    the CPU generator (§4.3), without touching the global RNG state."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn(1, n_feats, frames, generator=g, dtype=torch.float32, device="cpu")


# --------------------------------------------------------------------------------------------------------
# encoder (UpsampleConformerEncoder, §4.2)
# --------------------------------------------------------------------------------------------------------


class LinearNoSubsampling(nn.Module):
    """``embed`` / ``up_embed``: Linear -> LayerNorm(1e-5) -> (dropout) -> x sqrt(d); keys ``out.0``, ``out.1``."""

    def __init__(self, idim: int, odim: int):
        super().__init__()
        self.out = nn.Sequential(nn.Linear(idim, odim), nn.LayerNorm(odim, eps=1e-5), nn.Dropout(0.0))
        self.d_model = odim
        self.xscale = math.sqrt(odim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x) * self.xscale

    def pos_emb(self, size: int, x: torch.Tensor) -> torch.Tensor:
        return rel_pos_table(size, self.d_model, x.device, x.dtype)


class RelPositionMultiHeadedAttention(nn.Module):
    """ESPnet "new" rel-pos MHA (Transformer-XL style) with pos_bias_u/v and linear_pos (§4.2)."""

    def __init__(self, n_head: int, n_feat: int, key_bias: bool = True):
        super().__init__()
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat, bias=key_bias)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.sqrt_dk = math.sqrt(self.d_k)

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, 2T-1) -> (B, H, T, T) with out[i, j] = x[i, T-1-i+j] (pad / reshape trick)."""
        b, h, t1, n = x.size(0), x.size(1), x.size(2), x.size(3)
        zero_pad = torch.zeros((b, h, t1, 1), device=x.device, dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=-1).view(b, h, n + 1, t1)
        return x_padded[:, :, 1:].view(b, h, t1, n)[:, :, :, : n // 2 + 1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """x (B, T, D); mask (B, 1, T) or (B, T, T) bool (True = visible), or (0, 0, 0); pos_emb (1, 2T-1, D)."""
        b = x.size(0)
        q = self.linear_q(x).view(b, -1, self.h, self.d_k)  # (B, T, H, d)
        k = self.linear_k(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        ac = torch.matmul(q_u, k.transpose(-2, -1))
        bd = torch.matmul(q_v, p.transpose(-2, -1))
        if bd.size(-1) != ac.size(-1):
            bd = self.rel_shift(bd)
        scores = (ac + bd) / self.sqrt_dk
        if mask.size(2) > 0:
            m = mask.unsqueeze(1).eq(0)[:, :, :, : scores.size(-1)]
            scores = scores.masked_fill(m, -float("inf"))
            attn = torch.softmax(scores, dim=-1).masked_fill(m, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, -1, self.h * self.d_k)
        return self.linear_out(out)


class PositionwiseFeedForward(nn.Module):
    """``feed_forward``: w_1 -> SiLU ("swish") -> w_2."""

    def __init__(self, idim: int, hidden: int):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden)
        self.w_2 = nn.Linear(hidden, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class ConformerEncoderLayer(nn.Module):
    """Pre-norm conformer layer without macaron FF and without conv module (§4.2 step 4)."""

    def __init__(self, size: int, heads: int, linear_units: int, key_bias: bool, eps: float):
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(heads, size, key_bias)
        self.feed_forward = PositionwiseFeedForward(size, linear_units)
        self.norm_ff = nn.LayerNorm(size, eps=eps)
        self.norm_mha = nn.LayerNorm(size, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), mask, pos_emb)
        x = x + self.feed_forward(self.norm_ff(x))
        return x


class PreLookaheadLayer(nn.Module):
    """conv1 (k = lookahead+1) over [x, lookahead frames] -> leaky_relu -> left-pad 2 -> conv2 (k 3) -> + x."""

    def __init__(self, channels: int, pre_lookahead_len: int):
        super().__init__()
        self.pre_lookahead_len = pre_lookahead_len
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=pre_lookahead_len + 1, stride=1, padding=0)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, stride=1, padding=0)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """inputs (B, T, C); context (B, L, C) with L = pre_lookahead_len, or (0, 0, 0) for zero padding."""
        out = inputs.transpose(1, 2).contiguous()
        if context.size(1) == 0:
            out = F.pad(out, (0, self.pre_lookahead_len), mode="constant", value=0.0)
        else:
            if context.size(1) != self.pre_lookahead_len:
                raise RuntimeError("PreLookaheadLayer: context must have exactly pre_lookahead_len frames")
            out = torch.cat([out, context.transpose(1, 2).contiguous()], dim=2)
        out = F.leaky_relu(self.conv1(out), 0.01)
        out = F.pad(out, (2, 0), mode="constant", value=0.0)
        out = self.conv2(out).transpose(1, 2).contiguous()
        return out + inputs


class Upsample1D(nn.Module):
    """``up_layer``: nearest x stride -> left-pad 2*stride zeros -> Conv1d(k = 2*stride+1)."""

    def __init__(self, channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(channels, out_channels, stride * 2 + 1, stride=1, padding=0)

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = F.interpolate(inputs, scale_factor=float(self.stride), mode="nearest")
        out = F.pad(out, (self.stride * 2, 0), value=0.0)
        return self.conv(out), input_lengths * self.stride


class UpsampleConformerEncoder(nn.Module):
    """embed -> pre-lookahead -> N conformer layers -> x2 upsample -> up_embed -> M layers -> after_norm."""

    def __init__(self, input_size: int, output_size: int, attention_heads: int, linear_units: int,
                 num_blocks: int, num_up_blocks: int, static_chunk_size: int, pre_lookahead_len: int,
                 up_stride: int, key_bias: bool = True, layer_norm_eps: float = 1e-12):
        super().__init__()
        self._output_size = output_size
        self.static_chunk_size = static_chunk_size
        self.pre_lookahead_len = pre_lookahead_len
        self.embed = LinearNoSubsampling(input_size, output_size)
        self.pre_lookahead_layer = PreLookaheadLayer(output_size, pre_lookahead_len)
        self.encoders = nn.ModuleList(
            [ConformerEncoderLayer(output_size, attention_heads, linear_units, key_bias, layer_norm_eps)
             for _ in range(num_blocks)])
        self.up_layer = Upsample1D(output_size, output_size, up_stride)
        self.up_stride = up_stride
        self.up_embed = LinearNoSubsampling(input_size, output_size)
        self.up_encoders = nn.ModuleList(
            [ConformerEncoderLayer(output_size, attention_heads, linear_units, key_bias, layer_norm_eps)
             for _ in range(num_up_blocks)])
        self.after_norm = nn.LayerNorm(output_size, eps=1e-5)

    @torch.jit.export
    def output_size(self) -> int:
        return self._output_size

    def _chunk_masks(self, masks: torch.Tensor, size: int, chunk: int, streaming: bool) -> torch.Tensor:
        if streaming and chunk > 0:
            return masks & subsequent_chunk_mask(size, chunk, masks.device).unsqueeze(0)
        return masks

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor, context: torch.Tensor = torch.zeros(0, 0, 0),
                decoding_chunk_size: int = 0, num_decoding_left_chunks: int = -1,
                streaming: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, D) embedded tokens; xs_lens (B,); context (B, L, D) lookahead tokens or (0, 0, 0).

        Returns (h (B, stride*T, D), masks (B, 1, stride*T) bool). ``decoding_chunk_size`` and
        ``num_decoding_left_chunks`` are accepted for signature compatibility and ignored (as at HEAD).
        """
        t = xs.size(1)
        masks = ~make_pad_mask(xs_lens, t).unsqueeze(1)
        pos_emb = self.embed.pos_emb(t, xs)
        xs = self.embed(xs)
        if context.size(1) != 0:
            context = self.embed(context)
        chunk_masks = self._chunk_masks(masks, t, self.static_chunk_size, streaming)
        xs = self.pre_lookahead_layer(xs, context)
        for layer in self.encoders:
            xs = layer(xs, chunk_masks, pos_emb)

        xs = xs.transpose(1, 2).contiguous()
        xs, xs_lens = self.up_layer(xs, xs_lens)
        xs = xs.transpose(1, 2).contiguous()
        t = xs.size(1)
        masks = ~make_pad_mask(xs_lens, t).unsqueeze(1)
        pos_emb = self.up_embed.pos_emb(t, xs)
        xs = self.up_embed(xs)
        chunk_masks = self._chunk_masks(masks, t, self.static_chunk_size * self.up_stride, streaming)
        for layer in self.up_encoders:
            xs = layer(xs, chunk_masks, pos_emb)
        xs = self.after_norm(xs)
        return xs, masks


# --------------------------------------------------------------------------------------------------------
# estimator (CausalConditionalDecoder, §4.4)
# --------------------------------------------------------------------------------------------------------


class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int):
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.transpose(x, self.dim0, self.dim1)


class CausalConv1d(nn.Conv1d):
    """Left-pad kernel_size-1 zeros, then a plain Conv1d (stride 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(in_channels, out_channels, kernel_size, stride=1, padding=0)
        self.causal_padding = kernel_size - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.causal_padding, 0), value=0.0)
        return self._conv_forward(x, self.weight, self.bias)


class CausalBlock1D(nn.Module):
    """``block`` = [CausalConv1d k3, Transpose, LayerNorm, Transpose, Mish]: y = Mish(LN(conv(x*m)))*m."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.block = nn.Sequential(CausalConv1d(dim, dim_out, 3), Transpose(1, 2), nn.LayerNorm(dim_out),
                                   Transpose(1, 2), nn.Mish())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x * mask) * mask


class CausalResnetBlock1D(nn.Module):
    """h = block1(x); h += mlp(temb); h = block2(h); out = h + res_conv(x*mask). Keys mlp.1, block1/2, res_conv."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = CausalBlock1D(dim, dim_out)
        self.block2 = CausalBlock1D(dim_out, dim_out)
        self.res_conv = nn.Conv1d(dim, dim_out, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x, mask)
        h = h + self.mlp(time_emb).unsqueeze(-1)
        h = self.block2(h, mask)
        return h + self.res_conv(x * mask)


class SelfAttention(nn.Module):
    """diffusers ``Attention`` as used by Matcha's BasicTransformerBlock: to_q/k/v without bias,
    to_out.0 with bias (to_out.1 is dropout), SDPA with an additive mask bias, scale 1/sqrt(head_dim)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x (B, T, C); bias (B, T, T) additive (0 visible, -1e10 masked), or empty: nothing masked."""
        b = x.size(0)
        q = self.to_q(x).view(b, -1, self.heads, self.dim_head).transpose(1, 2)
        k = self.to_k(x).view(b, -1, self.heads, self.dim_head).transpose(1, 2)
        v = self.to_v(x).view(b, -1, self.heads, self.dim_head).transpose(1, 2)
        attn_mask: Optional[torch.Tensor] = None
        if bias.numel() > 0:
            attn_mask = bias.unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(b, -1, self.heads * self.dim_head).to(q.dtype)
        for layer in self.to_out:
            out = layer(out)
        return out


class GELUProj(nn.Module):
    """diffusers GELU (``ff.net.0``): proj Linear then exact GELU."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x))


class FeedForward(nn.Module):
    """``ff.net`` = [GELU(proj dim->4dim), Dropout, Linear(4dim->dim)]."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GELUProj(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """x = x + attn1(norm1(x)); x = x + ff(norm3(x)) (Matcha, layer_norm, self-attention only)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = SelfAttention(dim, num_heads, head_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x), bias) + x
        x = self.ff(self.norm3(x)) + x
        return x


class TimestepEmbedding(nn.Module):
    """``time_mlp``: linear_1 -> SiLU -> linear_2."""

    def __init__(self, in_channels: int, time_embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def _transformer_stack(n: int, dim: int, heads: int, head_dim: int) -> nn.ModuleList:
    return nn.ModuleList([BasicTransformerBlock(dim, heads, head_dim) for _ in range(n)])


class CausalConditionalDecoder(nn.Module):
    """The CFM estimator: a one-level causal U-Net-1D with transformer blocks (§4.4).

    Keys: time_mlp.*, down_blocks.0.{0: resnet, 1.{i}: transformer, 2: causal conv},
    mid_blocks.{j}.{0: resnet, 1.{i}: transformer}, up_blocks.0.{0,1.{i},2}, final_block, final_proj.
    """

    def __init__(self, in_channels: int, out_channels: int, channels: int, attention_head_dim: int,
                 n_blocks: int, num_mid_blocks: int, num_heads: int, static_chunk_size: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.static_chunk_size = static_chunk_size
        self.half_dim = in_channels // 2
        self.time_log_step = math.log(10000) / (self.half_dim - 1)
        time_embed_dim = channels * 4
        self.time_mlp = TimestepEmbedding(in_channels, time_embed_dim)
        self.down_blocks = nn.ModuleList([nn.ModuleList([
            CausalResnetBlock1D(in_channels, channels, time_embed_dim),
            _transformer_stack(n_blocks, channels, num_heads, attention_head_dim),
            CausalConv1d(channels, channels, 3),
        ])])
        self.mid_blocks = nn.ModuleList([nn.ModuleList([
            CausalResnetBlock1D(channels, channels, time_embed_dim),
            _transformer_stack(n_blocks, channels, num_heads, attention_head_dim),
        ]) for _ in range(num_mid_blocks)])
        self.up_blocks = nn.ModuleList([nn.ModuleList([
            CausalResnetBlock1D(channels * 2, channels, time_embed_dim),
            _transformer_stack(n_blocks, channels, num_heads, attention_head_dim),
            CausalConv1d(channels, channels, 3),
        ])])
        self.final_block = CausalBlock1D(channels, channels)
        self.final_proj = nn.Conv1d(channels, out_channels, 1)

    def time_embeddings(self, t: torch.Tensor) -> torch.Tensor:
        """Matcha SinusoidalPosEmb(in_channels), scale 1000: [sin((1000 t) f_k)..., cos(...)...] (§4.4)."""
        if t.dim() < 1:
            t = t.unsqueeze(0)
        freqs = torch.exp(torch.arange(self.half_dim, device=t.device).to(torch.float32) * -self.time_log_step)
        emb = 1000.0 * t.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)

    def _attn_bias(self, mask: torch.Tensor, size: int, streaming: bool, dtype: torch.dtype) -> torch.Tensor:
        m = mask.to(torch.bool)  # (B, 1, T)
        if streaming and self.static_chunk_size > 0:
            m = m & subsequent_chunk_mask(size, self.static_chunk_size, m.device).unsqueeze(0)
        else:
            # Nothing masked (one utterance, no padding: every non-streaming call the daemon makes): an empty
            # bias, so SDPA runs without one. Adding zeros changes no score, so the output is identical; CPU
            # flash attention is ~15 % faster without the bias (flow: 6 % at 760 frames). Only asked on the
            # CPU, where reading the answer costs nothing (on CUDA it would be a host sync per call).
            if m.device.type == "cpu" and bool(m.all()):
                return torch.zeros(0, dtype=dtype, device=m.device)
            m = m.repeat(1, size, 1)
        # computed in float32 then cast, as the reference's (1 - m) * -1e10 (-> -inf in fp16, -1e10 in bf16)
        return ((1.0 - m.to(torch.float32)) * -1.0e10).to(dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor, t: torch.Tensor,
                spks: torch.Tensor, cond: torch.Tensor, streaming: bool = False) -> torch.Tensor:
        """x, mu, cond (B, 80, T); mask (B, 1, T); t (B,); spks (B, 80) -> velocity (B, 80, T)."""
        temb = self.time_embeddings(t).to(t.dtype)
        temb = self.time_mlp(temb)
        x = torch.cat([x, mu, spks.unsqueeze(-1).expand(-1, -1, x.size(-1)), cond], dim=1)

        # One level (no down/up-sampling), so every stage shares the same mask: build the bias once
        # (the reference rebuilds the identical tensor per stage).
        bias = self._attn_bias(mask, x.size(2), streaming, x.dtype)
        hiddens: List[torch.Tensor] = []
        for blk in self.down_blocks:
            x = blk[0](x, mask, temb)
            x = x.transpose(1, 2).contiguous()
            for tb in blk[1]:
                x = tb(x, bias)
            x = x.transpose(1, 2).contiguous()
            hiddens.append(x)
            x = blk[2](x * mask)
        for blk in self.mid_blocks:
            x = blk[0](x, mask, temb)
            x = x.transpose(1, 2).contiguous()
            for tb in blk[1]:
                x = tb(x, bias)
            x = x.transpose(1, 2).contiguous()
        for blk in self.up_blocks:
            skip = hiddens.pop()
            x = torch.cat([x[:, :, : skip.size(-1)], skip], dim=1)
            x = blk[0](x, mask, temb)
            x = x.transpose(1, 2).contiguous()
            for tb in blk[1]:
                x = tb(x, bias)
            x = x.transpose(1, 2).contiguous()
            x = blk[2](x * mask)
        x = self.final_block(x, mask)
        return self.final_proj(x * mask) * mask


# --------------------------------------------------------------------------------------------------------
# CFM (CausalConditionalCFM, §4.3)
# --------------------------------------------------------------------------------------------------------


class CausalConditionalCFM(nn.Module):
    """10-step Euler on the cosine time grid with classifier-free guidance, from the fixed seed-0 noise."""

    def __init__(self, estimator: CausalConditionalDecoder, n_feats: int, inference_cfg_rate: float,
                 t_scheduler: str, n_timesteps: int, noise_frames: int, noise_seed: int):
        super().__init__()
        self.estimator = estimator
        self.n_feats = n_feats
        self.inference_cfg_rate = inference_cfg_rate
        self.cosine = t_scheduler == "cosine"
        self.n_timesteps = n_timesteps
        # not in flow.pt (persistent=False keeps strict loading exact); saved inside TorchScript archives
        self.register_buffer("rand_noise", make_cfm_noise(n_feats, noise_frames, noise_seed), persistent=False)

    @torch.jit.export
    def max_frames(self) -> int:
        return self.rand_noise.size(2)

    def forward(self, mu: torch.Tensor, mask: torch.Tensor, spks: torch.Tensor, cond: torch.Tensor,
                streaming: bool = False) -> torch.Tensor:
        """mu, cond (1, 80, T); mask (1, 1, T); spks (1, 80) -> mel (1, 80, T) float32."""
        size = mu.size(2)
        if size > self.rand_noise.size(2):
            raise RuntimeError("flow: sequence longer than the CFM noise buffer (prompt + generated mel frames)")
        z = self.rand_noise[:, :, :size].to(device=mu.device, dtype=mu.dtype)
        t_span = torch.linspace(0.0, 1.0, self.n_timesteps + 1, device=mu.device, dtype=mu.dtype)
        if self.cosine:
            t_span = 1 - torch.cos(t_span * 0.5 * math.pi)
        return self.solve_euler(z, t_span, mu, mask, spks, cond, streaming)

    def solve_euler(self, x: torch.Tensor, t_span: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor,
                    spks: torch.Tensor, cond: torch.Tensor, streaming: bool) -> torch.Tensor:
        t = t_span[0].unsqueeze(0)
        dt = t_span[1] - t_span[0]
        cfg = self.inference_cfg_rate
        b = x.size(0)
        steps = t_span.size(0)
        if cfg > 0:
            x_in = torch.zeros([2 * b, self.n_feats, x.size(2)], device=x.device, dtype=x.dtype)
            mask_in = torch.zeros([2 * b, 1, x.size(2)], device=x.device, dtype=x.dtype)
            mu_in = torch.zeros([2 * b, self.n_feats, x.size(2)], device=x.device, dtype=x.dtype)
            t_in = torch.zeros([2 * b], device=x.device, dtype=x.dtype)
            spks_in = torch.zeros([2 * b, self.n_feats], device=x.device, dtype=x.dtype)
            cond_in = torch.zeros([2 * b, self.n_feats, x.size(2)], device=x.device, dtype=x.dtype)
            for step in range(1, steps):
                x_in[:b] = x
                x_in[b:] = x
                mask_in[:b] = mask
                mask_in[b:] = mask
                mu_in[:b] = mu
                t_in[:] = t
                spks_in[:b] = spks
                cond_in[:b] = cond
                v = self.estimator(x_in, mask_in, mu_in, t_in, spks_in, cond_in, streaming)
                v_c, v_u = torch.split(v, [b, b], dim=0)
                v = (1.0 + cfg) * v_c - cfg * v_u
                x = x + dt * v
                t = t + dt
                if step < steps - 1:
                    dt = t_span[step + 1] - t
        else:
            for step in range(1, steps):
                v = self.estimator(x, mask, mu, t.expand(b), spks, cond, streaming)
                x = x + dt * v
                t = t + dt
                if step < steps - 1:
                    dt = t_span[step + 1] - t
        return x.to(torch.float32)


# --------------------------------------------------------------------------------------------------------
# flow (CausalMaskedDiffWithXvec, §4.1)
# --------------------------------------------------------------------------------------------------------


class CausalMaskedDiffWithXvec(nn.Module):
    """token embedding + speaker projection + UpsampleConformerEncoder + encoder_proj + CFM decoder."""

    def __init__(self, cfg: Any = None):
        super().__init__()
        p = flow_params(cfg)
        self.input_size = p["input_size"]
        self.output_size = p["output_size"]
        self.vocab_size = p["vocab_size"]
        self.token_mel_ratio = p["token_mel_ratio"]
        self.pre_lookahead_len = p["pre_lookahead_len"]
        self.input_embedding = nn.Embedding(p["vocab_size"], p["input_size"])
        self.spk_embed_affine_layer = nn.Linear(p["spk_embed_dim"], p["output_size"])
        self.encoder = UpsampleConformerEncoder(
            input_size=p["enc_input_size"], output_size=p["enc_output_size"], attention_heads=p["enc_heads"],
            linear_units=p["enc_linear_units"], num_blocks=p["enc_num_blocks"], num_up_blocks=p["enc_up_blocks"],
            static_chunk_size=p["enc_static_chunk_size"], pre_lookahead_len=p["pre_lookahead_len"],
            up_stride=p["token_mel_ratio"], key_bias=bool(p["enc_key_bias"]),
            layer_norm_eps=p["enc_layer_norm_eps"])
        self.encoder_proj = nn.Linear(p["enc_output_size"], p["output_size"])
        estimator = CausalConditionalDecoder(
            in_channels=p["est_in_channels"], out_channels=p["est_out_channels"], channels=p["est_channels"][0],
            attention_head_dim=p["est_attention_head_dim"], n_blocks=p["est_n_blocks"],
            num_mid_blocks=p["est_num_mid_blocks"], num_heads=p["est_num_heads"],
            static_chunk_size=p["est_static_chunk_size"])
        self.decoder = CausalConditionalCFM(
            estimator, n_feats=p["output_size"], inference_cfg_rate=p["inference_cfg_rate"],
            t_scheduler=p["t_scheduler"], n_timesteps=p["n_timesteps"], noise_frames=p["noise_frames"],
            noise_seed=p["noise_seed"])

    @torch.jit.export
    def encode(self, token: torch.Tensor, prompt_token: torch.Tensor, embedding: torch.Tensor,
               streaming: bool = False, finalize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> (mu (1, 80, 2M) in the weights' dtype, spks (1, 80)); M = P + N, minus the lookahead if not final."""
        embedding = F.normalize(embedding, dim=1)
        spks = self.spk_embed_affine_layer(embedding)
        tok = torch.cat([prompt_token, token], dim=1)
        tok_len = torch.full([tok.size(0)], tok.size(1), dtype=torch.int64, device=tok.device)
        emb = self.input_embedding(torch.clamp(tok, min=0))  # (x the all-ones length mask of batch 1)
        if finalize:
            h, _ = self.encoder(emb, tok_len, streaming=streaming)
        else:
            if tok.size(1) <= self.pre_lookahead_len:
                raise RuntimeError("flow: finalize=False needs more tokens than the lookahead")
            ctx = emb[:, tok.size(1) - self.pre_lookahead_len:]
            emb = emb[:, : tok.size(1) - self.pre_lookahead_len]
            h, _ = self.encoder(emb, tok_len, context=ctx, streaming=streaming)
        mu = self.encoder_proj(h).transpose(1, 2).contiguous()
        return mu, spks

    @torch.jit.export
    def decode(self, mu: torch.Tensor, spks: torch.Tensor, prompt_feat: torch.Tensor,
               streaming: bool = False) -> torch.Tensor:
        """mu (1, 80, T); prompt_feat (1, T1, 80) -> mel frames T1.. of the CFM output: (1, 80, T - T1) float32."""
        mel_len1 = prompt_feat.size(1)
        size = mu.size(2)
        if mel_len1 > size:
            raise RuntimeError("flow: prompt mel longer than the encoder output")
        cond = torch.zeros([mu.size(0), size, self.output_size], device=mu.device, dtype=mu.dtype)
        cond[:, :mel_len1] = prompt_feat.to(mu.dtype)
        cond = cond.transpose(1, 2)
        mask = torch.ones([mu.size(0), 1, size], device=mu.device, dtype=mu.dtype)
        feat = self.decoder(mu, mask, spks, cond, streaming)
        return feat[:, :, mel_len1:].to(torch.float32)

    @torch.jit.export
    def inference(self, token: torch.Tensor, prompt_token: torch.Tensor, prompt_feat: torch.Tensor,
                  embedding: torch.Tensor, streaming: bool = False, finalize: bool = True) -> torch.Tensor:
        """token (1, N) int; prompt_token (1, P) int; prompt_feat (1, 2P, 80); embedding (1, 192)
        -> mel (1, 80, 2M - 2P) float32 (2N when finalize, 2(N-lookahead) otherwise)."""
        mu, spks = self.encode(token, prompt_token, embedding, streaming, finalize)
        return self.decode(mu, spks, prompt_feat, streaming)

    def forward(self, token: torch.Tensor, prompt_token: torch.Tensor, prompt_feat: torch.Tensor,
                embedding: torch.Tensor, streaming: bool = False, finalize: bool = True) -> torch.Tensor:
        return self.inference(token, prompt_token, prompt_feat, embedding, streaming, finalize)


def build_flow(cfg: Any = None, device: Optional[torch.device] = None) -> CausalMaskedDiffWithXvec:
    """Construct the flow (on ``device``, e.g. ``torch.device('meta')`` for a key/shape listing)."""
    if device is None:
        return CausalMaskedDiffWithXvec(cfg).eval()
    with torch.device(device):
        return CausalMaskedDiffWithXvec(cfg).eval()

