"""The official key lists and shapes of ``llm.pt``, ``flow.pt`` and ``hift.pt``, derived from a config.

DESIGN: these lists are written from the key tables of docs/cosyvoice2.md (§3.2, §4.5, §5.2), independently of the
module code, so they are the yardstick for both sides: the strict loader (load.py) compares a checkpoint against them,
and the tests compare the modules' ``state_dict()`` against them. For the released configuration they
give exactly 295 / 1,121 / 328 tensors (the counts of docs/cosyvoice2.md §1). Order follows the reference
modules' registration order (not required by the loader, but it keeps diffs readable).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Tuple

from .config import FlowConfig, HiftConfig, LLMConfig

Shape = Tuple[int, ...]
KeyList = "OrderedDict[str, Shape]"


# ------------------------------------------------------------------------------------------------ LLM
def llm_keys(cfg: LLMConfig, with_lm_head: bool = True) -> "OrderedDict[str, Shape]":
    """``llm.pt``: Qwen2 backbone under ``llm.model.model.``, tied ``llm.model.lm_head``, CosyVoice heads."""
    q = cfg.qwen
    H, I, V = q.hidden_size, q.intermediate_size, q.vocab_size
    qd = q.num_heads * q.head_dim
    kvd = q.num_kv_heads * q.head_dim
    k: "OrderedDict[str, Shape]" = OrderedDict()
    k["llm_embedding.weight"] = (2, H)
    p = "llm.model.model."
    k[p + "embed_tokens.weight"] = (V, H)
    for i in range(q.num_layers):
        lp = f"{p}layers.{i}."
        k[lp + "self_attn.q_proj.weight"] = (qd, H)
        k[lp + "self_attn.q_proj.bias"] = (qd,)
        k[lp + "self_attn.k_proj.weight"] = (kvd, H)
        k[lp + "self_attn.k_proj.bias"] = (kvd,)
        k[lp + "self_attn.v_proj.weight"] = (kvd, H)
        k[lp + "self_attn.v_proj.bias"] = (kvd,)
        k[lp + "self_attn.o_proj.weight"] = (H, qd)
        k[lp + "mlp.gate_proj.weight"] = (I, H)
        k[lp + "mlp.up_proj.weight"] = (I, H)
        k[lp + "mlp.down_proj.weight"] = (H, I)
        k[lp + "input_layernorm.weight"] = (H,)
        k[lp + "post_attention_layernorm.weight"] = (H,)
    k[p + "norm.weight"] = (H,)
    if with_lm_head:
        k["llm.model.lm_head.weight"] = (V, H)
    k["llm_decoder.weight"] = (cfg.speech_vocab, cfg.llm_output_size)
    k["llm_decoder.bias"] = (cfg.speech_vocab,)
    k["speech_embedding.weight"] = (cfg.speech_vocab, cfg.llm_input_size)
    return k


# ----------------------------------------------------------------------------------------------- flow
def _linear(k: dict, name: str, out: int, inp: int, bias: bool = True) -> None:
    k[name + ".weight"] = (out, inp)
    if bias:
        k[name + ".bias"] = (out,)


def _conv(k: dict, name: str, out: int, inp: int, ks: int, bias: bool = True) -> None:
    k[name + ".weight"] = (out, inp, ks)
    if bias:
        k[name + ".bias"] = (out,)


def _norm(k: dict, name: str, n: int) -> None:
    k[name + ".weight"] = (n,)
    k[name + ".bias"] = (n,)


def _conformer_layer(k: dict, p: str, d: int, heads: int, units: int) -> None:
    dk = d // heads
    for n in ("linear_q", "linear_k", "linear_v", "linear_out"):
        _linear(k, f"{p}self_attn.{n}", d, d)
    _linear(k, f"{p}self_attn.linear_pos", d, d, bias=False)
    k[f"{p}self_attn.pos_bias_u"] = (heads, dk)
    k[f"{p}self_attn.pos_bias_v"] = (heads, dk)
    _linear(k, f"{p}feed_forward.w_1", units, d)
    _linear(k, f"{p}feed_forward.w_2", d, units)
    _norm(k, f"{p}norm_ff", d)
    _norm(k, f"{p}norm_mha", d)


def _resnet(k: dict, p: str, cin: int, cout: int, temb: int) -> None:
    _linear(k, p + "mlp.1", cout, temb)
    _conv(k, p + "block1.block.0", cout, cin, 3)
    _norm(k, p + "block1.block.2", cout)
    _conv(k, p + "block2.block.0", cout, cout, 3)
    _norm(k, p + "block2.block.2", cout)
    _conv(k, p + "res_conv", cout, cin, 1)


def _transformer(k: dict, p: str, c: int, heads: int, head_dim: int) -> None:
    inner = heads * head_dim
    _norm(k, p + "norm1", c)
    _linear(k, p + "attn1.to_q", inner, c, bias=False)
    _linear(k, p + "attn1.to_k", inner, c, bias=False)
    _linear(k, p + "attn1.to_v", inner, c, bias=False)
    _linear(k, p + "attn1.to_out.0", c, inner)
    _norm(k, p + "norm3", c)
    _linear(k, p + "ff.net.0.proj", 4 * c, c)
    _linear(k, p + "ff.net.2", c, 4 * c)


def flow_keys(cfg: FlowConfig) -> "OrderedDict[str, Shape]":
    """``flow.pt`` (CausalMaskedDiffWithXvec: encoder + CausalConditionalCFM estimator)."""
    k: "OrderedDict[str, Shape]" = OrderedDict()
    d = cfg.enc_output_size
    k["input_embedding.weight"] = (cfg.vocab_size, cfg.input_size)
    _linear(k, "spk_embed_affine_layer", cfg.output_size, cfg.spk_embed_dim)
    # encoder
    e = "encoder."
    _linear(k, e + "embed.out.0", d, cfg.enc_input_size)
    _norm(k, e + "embed.out.1", d)
    _conv(k, e + "pre_lookahead_layer.conv1", d, d, cfg.pre_lookahead_len + 1)
    _conv(k, e + "pre_lookahead_layer.conv2", d, d, 3)
    for i in range(cfg.enc_num_blocks):
        _conformer_layer(k, f"{e}encoders.{i}.", d, cfg.enc_heads, cfg.enc_linear_units)
    _conv(k, e + "up_layer.conv", d, d, 2 * cfg.token_mel_ratio + 1)
    _linear(k, e + "up_embed.out.0", d, cfg.enc_input_size)  # the reference builds it from input_size
    _norm(k, e + "up_embed.out.1", d)
    for i in range(cfg.enc_up_blocks):
        _conformer_layer(k, f"{e}up_encoders.{i}.", d, cfg.enc_heads, cfg.enc_linear_units)
    _norm(k, e + "after_norm", d)
    _linear(k, "encoder_proj", cfg.output_size, d)
    # estimator
    s = "decoder.estimator."
    c = cfg.est_channels[0]
    temb = 4 * c
    _linear(k, s + "time_mlp.linear_1", temb, cfg.est_in_channels)
    _linear(k, s + "time_mlp.linear_2", temb, temb)

    def stage(p: str, cin: int) -> None:
        _resnet(k, p + "0.", cin, c, temb)
        for j in range(cfg.est_n_blocks):
            _transformer(k, f"{p}1.{j}.", c, cfg.est_num_heads, cfg.est_attention_head_dim)

    stage(s + "down_blocks.0.", cfg.est_in_channels)
    _conv(k, s + "down_blocks.0.2", c, c, 3)
    for m in range(cfg.est_num_mid_blocks):
        stage(f"{s}mid_blocks.{m}.", c)
    stage(s + "up_blocks.0.", 2 * c)
    _conv(k, s + "up_blocks.0.2", c, c, 3)
    _conv(k, s + "final_block.block.0", c, c, 3)
    _norm(k, s + "final_block.block.2", c)
    _conv(k, s + "final_proj", cfg.est_out_channels, c, 1)
    return k


# ----------------------------------------------------------------------------------------------- HiFT
WEIGHT_NORM_STYLES = ("parametrizations", "weight_g", "folded")


def _wn_conv(k: dict, name: str, out: int, inp: int, ks: int, style: str, transpose: bool = False) -> None:
    """A weight-normed conv: g is [dim0,1,1] (dim 0 = out for Conv1d, in for ConvTranspose1d)."""
    w = (inp, out, ks) if transpose else (out, inp, ks)
    g = (w[0], 1, 1)
    if style == "parametrizations":
        k[name + ".bias"] = (out,)
        k[name + ".parametrizations.weight.original0"] = g
        k[name + ".parametrizations.weight.original1"] = w
    elif style == "weight_g":
        k[name + ".bias"] = (out,)
        k[name + ".weight_g"] = g
        k[name + ".weight_v"] = w
    elif style == "folded":
        k[name + ".weight"] = w
        k[name + ".bias"] = (out,)
    else:
        raise ValueError(f"weight-norm style {style!r}")


def _resblock(k: dict, p: str, ch: int, ks: int, dil: tuple, style: str) -> None:
    for j in range(len(dil)):
        _wn_conv(k, f"{p}convs1.{j}", ch, ch, ks, style)
    for j in range(len(dil)):
        _wn_conv(k, f"{p}convs2.{j}", ch, ch, ks, style)
    for j in range(len(dil)):
        k[f"{p}activations1.{j}.alpha"] = (ch,)
    for j in range(len(dil)):
        k[f"{p}activations2.{j}.alpha"] = (ch,)


def hift_keys(cfg: HiftConfig, style: str = "parametrizations") -> "OrderedDict[str, Shape]":
    """``hift.pt`` keys (after stripping ``generator.``); ``style`` picks how weight norm is stored."""
    k: "OrderedDict[str, Shape]" = OrderedDict()
    base = cfg.base_channels
    nfft2 = cfg.istft_n_fft + 2
    k["m_source.l_linear.weight"] = (1, cfg.nb_harmonics + 1)
    k["m_source.l_linear.bias"] = (1,)
    _wn_conv(k, "conv_pre", base, cfg.in_channels, 7, style)
    for i, (u, ks) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
        _wn_conv(k, f"ups.{i}", base // 2 ** (i + 1), base // 2**i, ks, style, transpose=True)
    # source_downs: cumulative down rates of the later stages, reversed (docs/cosyvoice2.md §5.1: k30 s15, k6 s3, k1)
    down = [1] + list(cfg.upsample_rates[::-1][:-1])
    cum = []
    acc = 1
    for r in down:
        acc *= r
        cum.append(acc)
    for i, (u, ks, dil) in enumerate(
        zip(cum[::-1], cfg.source_resblock_kernel_sizes, cfg.source_resblock_dilation_sizes)
    ):
        ch = base // 2 ** (i + 1)
        _conv(k, f"source_downs.{i}", ch, nfft2, 1 if u == 1 else 2 * u)
        _resblock(k, f"source_resblocks.{i}.", ch, ks, dil, style)
    n = 0
    for i in range(len(cfg.upsample_rates)):
        ch = base // 2 ** (i + 1)
        for ks, dil in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
            _resblock(k, f"resblocks.{n}.", ch, ks, dil, style)
            n += 1
    _wn_conv(k, "conv_post", nfft2, base // 2 ** len(cfg.upsample_rates), 7, style)
    fc = cfg.f0_cond_channels
    for j in range(5):
        _wn_conv(k, f"f0_predictor.condnet.{2 * j}", fc, cfg.f0_in_channels if j == 0 else fc, 3, style)
    _linear(k, "f0_predictor.classifier", cfg.f0_num_class, fc)
    return k


def param_count(keys: Dict[str, Shape]) -> int:
    n = 0
    for s in keys.values():
        m = 1
        for d in s:
            m *= d
        n += m
    return n
