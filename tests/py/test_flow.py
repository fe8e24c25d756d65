"""Tests of tools/export/cosyvoice2/flow.py (CausalMaskedDiffWithXvec) against docs/cosyvoice2.md (§4, §6.3, §9).

Run: $(tools/dev/torch-venv.sh) -m pytest tests/py/test_flow.py
"""

import io
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "export"))

from cosyvoice2 import flow, keys  # noqa: E402
from jitutil import freeze  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def tiny(tiny_config):
    torch.manual_seed(1234)
    m = flow.build_flow(tiny_config.flow)
    # random weights have tiny biases/LayerNorm affine at init; perturb everything so no path is trivial
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.fixture(scope="module")
def tiny_scripted(tiny):
    return torch.jit.script(tiny)


def inputs(n_tok, n_prompt, seed=0):
    g = torch.Generator().manual_seed(seed)
    tok = torch.randint(0, 6561, (1, n_tok), generator=g)
    ptok = torch.randint(0, 6561, (1, n_prompt), generator=g)
    pfeat = torch.randn(1, 2 * n_prompt, 80, generator=g)
    emb = torch.randn(1, 192, generator=g)
    return tok, ptok, pfeat, emb


# ------------------------------------------------------------------------------------------------ layout


def shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def test_full_key_layout_matches_spec_counts(full_config):
    m = flow.build_flow(full_config.flow, torch.device("meta"))
    sd = m.state_dict()
    assert all(v.is_meta for v in m.parameters())
    assert len(sd) == 1121  # docs/cosyvoice2.md §4.5
    assert sum(v.numel() for v in sd.values()) == 112_549_360  # docs/cosyvoice2.md §1/§4.5
    assert sum(v.numel() for k, v in sd.items() if k.startswith("encoder.")) == 37_831_168
    assert sum(v.numel() for k, v in sd.items() if k.startswith("decoder.estimator.")) == 71_302_480
    assert "decoder.rand_noise" not in sd  # not a checkpoint tensor (§9)


def test_full_key_layout_matches_key_table(full_config):
    m = flow.build_flow(full_config.flow, torch.device("meta"))
    want = dict(keys.flow_keys(full_config.flow))
    got = shapes(m.state_dict())
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    assert {k: v for k, v in got.items() if want[k] != v} == {}


def test_full_spec_spot_shapes(full_config):
    got = shapes(flow.build_flow(full_config.flow, torch.device("meta")).state_dict())
    spec = {  # shapes of docs/cosyvoice2.md §4.5
        "input_embedding.weight": (6561, 512),
        "spk_embed_affine_layer.weight": (80, 192),
        "spk_embed_affine_layer.bias": (80,),
        "encoder_proj.weight": (80, 512),
        "encoder.embed.out.0.weight": (512, 512),
        "encoder.embed.out.1.weight": (512,),
        "encoder.up_embed.out.1.bias": (512,),
        "encoder.pre_lookahead_layer.conv1.weight": (512, 512, 4),
        "encoder.pre_lookahead_layer.conv2.weight": (512, 512, 3),
        "encoder.encoders.5.self_attn.linear_pos.weight": (512, 512),
        "encoder.encoders.0.self_attn.pos_bias_u": (8, 64),
        "encoder.up_encoders.3.self_attn.pos_bias_v": (8, 64),
        "encoder.up_encoders.3.feed_forward.w_1.weight": (2048, 512),
        "encoder.encoders.2.feed_forward.w_2.weight": (512, 2048),
        "encoder.up_layer.conv.weight": (512, 512, 5),
        "encoder.after_norm.weight": (512,),
        "decoder.estimator.time_mlp.linear_1.weight": (1024, 320),
        "decoder.estimator.time_mlp.linear_2.weight": (1024, 1024),
        "decoder.estimator.down_blocks.0.0.mlp.1.weight": (256, 1024),
        "decoder.estimator.down_blocks.0.0.block1.block.0.weight": (256, 320, 3),
        "decoder.estimator.down_blocks.0.0.res_conv.weight": (256, 320, 1),
        "decoder.estimator.mid_blocks.11.0.block2.block.0.weight": (256, 256, 3),
        "decoder.estimator.mid_blocks.7.0.block1.block.2.weight": (256,),
        "decoder.estimator.up_blocks.0.0.block1.block.0.weight": (256, 512, 3),
        "decoder.estimator.up_blocks.0.0.res_conv.weight": (256, 512, 1),
        "decoder.estimator.down_blocks.0.1.3.attn1.to_q.weight": (512, 256),
        "decoder.estimator.mid_blocks.0.1.0.attn1.to_out.0.weight": (256, 512),
        "decoder.estimator.mid_blocks.0.1.0.attn1.to_out.0.bias": (256,),
        "decoder.estimator.up_blocks.0.1.2.ff.net.0.proj.weight": (1024, 256),
        "decoder.estimator.up_blocks.0.1.2.ff.net.2.weight": (256, 1024),
        "decoder.estimator.down_blocks.0.2.weight": (256, 256, 3),
        "decoder.estimator.up_blocks.0.2.bias": (256,),
        "decoder.estimator.final_block.block.0.weight": (256, 256, 3),
        "decoder.estimator.final_block.block.2.bias": (256,),
        "decoder.estimator.final_proj.weight": (80, 256, 1),
    }
    assert {k: got.get(k) for k in spec} == spec
    for absent in ("decoder.estimator.down_blocks.0.1.0.attn1.to_q.bias", "encoder.encoders.0.norm_conv.weight",
                   "encoder.encoders.0.norm_ff_macaron.weight", "encoder.encoders.0.self_attn.linear_pos.bias"):
        assert absent not in got


def test_tiny_key_layout_and_strict_load(tiny_config, tiny):
    assert shapes(tiny.state_dict()) == dict(keys.flow_keys(tiny_config.flow))
    buf = io.BytesIO()
    torch.save(tiny.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    fresh = flow.build_flow(tiny_config.flow)
    fresh.load_state_dict(sd, strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, sd[k]), k
    bad = dict(sd)
    bad.pop("encoder.after_norm.bias")
    with pytest.raises(RuntimeError, match="encoder.after_norm.bias"):
        fresh.load_state_dict(bad, strict=True)
    bad = dict(sd)
    bad["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="encoder.extra.weight"):
        fresh.load_state_dict(bad, strict=True)


def test_config_forms_agree(tiny_config, full_config):
    for mc in (tiny_config, full_config):
        a = flow.flow_params(mc.flow)  # FlowConfig dataclass
        b = flow.flow_params(mc.flow_args)  # the yaml's nested constructor arguments
        assert a == b
    assert flow.flow_params(full_config.flow) == flow.flow_params(None)  # None = the released 0.5B values


def test_config_rejects_unsupported():
    with pytest.raises(ValueError, match="channels"):
        flow.flow_params({"est_channels": [256, 256]})
    with pytest.raises(ValueError, match="in_channels"):
        flow.flow_params({"est_in_channels": 240})
    with pytest.raises(ValueError, match="macaron_style"):
        flow.flow_params({"encoder": {"macaron_style": True}, "decoder": {}})


# ------------------------------------------------------------------------------------------ constants


def test_cfm_noise_is_seed0_randn():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        want = torch.randn(1, 80, 15000)
    state = torch.random.get_rng_state()
    got = flow.make_cfm_noise(80, 15000, 0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
    assert torch.equal(got, want)


def test_cfm_noise_buffer_in_module_and_torchscript(tiny, tiny_scripted, tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        want = torch.randn(1, 80, 15000)
    assert torch.equal(tiny.decoder.rand_noise, want)
    p = str(tmp_path / "flow.pt")
    torch.jit.save(tiny_scripted, p)
    loaded = torch.jit.load(p)
    assert torch.equal(loaded.decoder.rand_noise, want)
    assert "decoder.rand_noise" not in tiny.state_dict()


def test_rel_pos_table_matches_espnet_construction():
    d = 32
    for size in (1, 2, 7, 40):
        got = flow.rel_pos_table(size, d, torch.device("cpu"), torch.float32)
        assert got.shape == (1, 2 * size - 1, d)
        # the reference's construction (§4.2): max_len table, positive part reversed ++ negative part
        max_len = 50
        pos = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * -(math.log(10000.0) / d))
        pe_pos = torch.zeros(max_len, d)
        pe_neg = torch.zeros(max_len, d)
        pe_pos[:, 0::2] = torch.sin(pos * div)
        pe_pos[:, 1::2] = torch.cos(pos * div)
        pe_neg[:, 0::2] = torch.sin(-1 * pos * div)
        pe_neg[:, 1::2] = torch.cos(-1 * pos * div)
        pe = torch.cat([torch.flip(pe_pos, [0]), pe_neg[1:]], dim=0).unsqueeze(0)
        c = pe.size(1) // 2
        want = pe[:, c - size + 1: c + size]
        assert torch.allclose(got, want, rtol=0, atol=1e-6)
    # centre row = relative position 0: sin 0 = 0, cos 0 = 1
    t = flow.rel_pos_table(5, d, torch.device("cpu"), torch.float32)[0]
    assert torch.equal(t[4, 0::2], torch.zeros(d // 2)) and torch.equal(t[4, 1::2], torch.ones(d // 2))


def test_rel_shift_gathers_relative_position():
    b, h, t = 1, 3, 6
    x = torch.randn(b, h, t, 2 * t - 1)
    got = flow.RelPositionMultiHeadedAttention.rel_shift(x)
    assert got.shape == (b, h, t, t)
    for i in range(t):
        for j in range(t):
            assert torch.equal(got[:, :, i, j], x[:, :, i, t - 1 - i + j])  # docs/cosyvoice2.md §4.2 identity


def test_chunk_mask():
    m = flow.subsequent_chunk_mask(7, 3, torch.device("cpu"))
    for i in range(7):
        for j in range(7):
            assert bool(m[i, j]) == (j < (i // 3 + 1) * 3)


def test_time_embedding_layout(tiny):
    est = tiny.decoder.estimator
    t = torch.tensor([0.0, 0.3, 1.0])
    got = est.time_embeddings(t)
    half = est.in_channels // 2
    f = torch.exp(torch.arange(half, dtype=torch.float64) * -(math.log(10000.0) / (half - 1)))
    arg = 1000.0 * t.double().unsqueeze(1) * f.unsqueeze(0)
    want = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)  # all sines first, then all cosines (§4.4)
    assert got.shape == (3, est.in_channels)
    assert torch.allclose(got.double(), want, atol=2e-4)


# ------------------------------------------------------------------------------------------- forward


def test_inference_shapes_and_determinism(tiny):
    tok, ptok, pfeat, emb = inputs(16, 8)
    with torch.inference_mode():
        mel = tiny.inference(tok, ptok, pfeat, emb, False, True)
        again = tiny.inference(tok, ptok, pfeat, emb, False, True)
        partial = tiny.inference(tok, ptok, pfeat, emb, True, False)
        no_prompt = tiny.inference(tok, ptok[:, :0], pfeat[:, :0], emb, False, True)
    assert mel.shape == (1, 80, 32) and mel.dtype == torch.float32  # 2 mel frames per token
    assert partial.shape == (1, 80, 2 * (16 - 3))  # the last 3 tokens are lookahead only
    assert no_prompt.shape == (1, 80, 32)
    assert torch.isfinite(mel).all()
    assert torch.equal(mel, again)  # fixed noise buffer: no RNG involved


def test_speaker_embedding_is_l2_normalized(tiny):
    tok, ptok, pfeat, emb = inputs(12, 6, seed=3)
    with torch.inference_mode():
        a = tiny.inference(tok, ptok, pfeat, emb, False, True)
        b = tiny.inference(tok, ptok, pfeat, emb * 7.5, False, True)
        c = tiny.inference(tok, ptok, pfeat, -emb, False, True)
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(a, c, atol=1e-3)


def test_prompt_mel_conditions_the_output(tiny):
    tok, ptok, pfeat, emb = inputs(12, 6, seed=4)
    with torch.inference_mode():
        a = tiny.inference(tok, ptok, pfeat, emb, False, True)
        b = tiny.inference(tok, ptok, pfeat + 1.0, emb, False, True)
    assert a.shape == b.shape == (1, 80, 24)
    assert not torch.allclose(a, b, atol=1e-3)


def test_negative_tokens_clamp_to_zero(tiny):
    tok, ptok, pfeat, emb = inputs(8, 4, seed=5)
    tok[0, 2] = 0
    neg = tok.clone()
    neg[0, 2] = -5
    with torch.inference_mode():
        assert torch.equal(tiny.inference(tok, ptok, pfeat, emb, False, True),
                           tiny.inference(neg, ptok, pfeat, emb, False, True))


def test_cfm_is_cosine_euler_with_cfg(tiny):
    """The CFM equals an independent Euler loop over t_k = 1 - cos(pi/2 k/10), v = 1.7 v_c - 0.7 v_u, with the
    unconditional branch seeing zero mu, spks and cond (docs/cosyvoice2.md §4.3)."""
    tok, ptok, pfeat, emb = inputs(10, 5, seed=6)
    est = tiny.decoder.estimator
    with torch.inference_mode():
        mu, spks = tiny.encode(tok, ptok, emb, False, True)
        size = mu.size(2)
        cond = torch.zeros(1, 80, size)
        cond[:, :, :10] = pfeat.transpose(1, 2)
        mask = torch.ones(1, 1, size)
        got = tiny.decoder(mu, mask, spks, cond, False)
        x = tiny.decoder.rand_noise[:, :, :size].clone()
        grid = [1 - math.cos(0.5 * math.pi * k / 10) for k in range(11)]
        for k in range(10):
            t = torch.full([1], grid[k])
            vc = est(x, mask, mu, t, spks, cond, False)
            vu = est(x, mask, torch.zeros_like(mu), t, torch.zeros_like(spks), torch.zeros_like(cond), False)
            x = x + (grid[k + 1] - grid[k]) * (1.7 * vc - 0.7 * vu)
        decoded = tiny.decode(mu, spks, pfeat, False)
    assert torch.allclose(got, x, atol=1e-4), (got - x).abs().max()
    assert torch.equal(decoded, got[:, :, 10:])


def test_streaming_masks_change_the_result(tiny):
    tok, ptok, pfeat, emb = inputs(30, 5, seed=7)
    with torch.inference_mode():
        full = tiny.inference(tok, ptok, pfeat, emb, False, True)
        stream = tiny.inference(tok, ptok, pfeat, emb, True, True)
    assert full.shape == stream.shape
    assert not torch.allclose(full, stream, atol=1e-3)


def streaming_chunks(tiny_mod, tok, ptok, pfeat, emb, hop0=25, max_hop=100, lookahead=3):
    """The §6.3 loop (hop 25 (+prompt pad), 50, 100, ...; last chunk finalize=True, streaming=False)."""
    p = ptok.size(1)
    pad = int(math.ceil(p / hop0) * hop0 - p)
    offset, hop, out = 0, hop0, []
    n = tok.size(1)
    while True:
        this_hop = hop + pad if offset == 0 else hop
        if n - offset >= this_hop + lookahead:
            mel = tiny_mod.inference(tok[:, : offset + this_hop + lookahead], ptok, pfeat, emb, True, False)
            chunk = mel[:, :, 2 * offset:]
            assert chunk.shape[2] == 2 * this_hop
            out.append(("stream", offset, chunk))
            offset += this_hop
            hop = min(max_hop, hop * 2)
        else:
            mel = tiny_mod.inference(tok, ptok, pfeat, emb, False, True)
            out.append(("final", offset, mel[:, :, 2 * offset:]))
            return out


def test_streaming_chunks_match_full_streaming_pass(tiny):
    """Frames emitted by the chunked finalize=False calls equal the same frames of one streaming pass over
    all tokens (chunk masks on absolute 25-token / 50-frame boundaries, causal convs, lookahead as context,
    fixed noise prefix — §6.3). The final call uses full attention and is only checked for its length."""
    tok, ptok, pfeat, emb = inputs(110, 13, seed=8)
    with torch.inference_mode():
        ref = tiny.inference(tok, ptok, pfeat, emb, True, True)
        chunks = streaming_chunks(tiny, tok, ptok, pfeat, emb)
    kinds = [c[0] for c in chunks]
    assert kinds == ["stream", "stream", "final"]  # hops 25+12, 50, then the rest
    total = 0
    for kind, offset, mel in chunks:
        assert offset * 2 == total
        total += mel.shape[2]
        if kind == "stream":
            want = ref[:, :, 2 * offset: 2 * offset + mel.shape[2]]
            assert torch.allclose(mel, want, atol=1e-5), (kind, offset, (mel - want).abs().max())
    assert total == 2 * tok.size(1)


# ------------------------------------------------------------------------------------------ TorchScript


@pytest.mark.parametrize("streaming,finalize", [(False, True), (True, True), (True, False), (False, False)])
def test_scripted_equals_eager(tiny, tiny_scripted, streaming, finalize):
    tok, ptok, pfeat, emb = inputs(20, 9, seed=9)
    with torch.inference_mode():
        a = tiny.inference(tok, ptok, pfeat, emb, streaming, finalize)
        b = tiny_scripted.inference(tok, ptok, pfeat, emb, streaming, finalize)
        c = tiny_scripted(tok, ptok, pfeat, emb, streaming, finalize)
    assert torch.allclose(a, b, rtol=0, atol=1e-5)
    assert torch.equal(b, c)


def test_scripted_encoder_signature_and_save_load(tiny, tiny_scripted, tmp_path):
    d = tiny.input_size
    xs = torch.randn(1, 20, d)
    ctx = torch.randn(1, 3, d)
    lens = torch.tensor([23])
    with torch.inference_mode():
        a, am = tiny.encoder(xs, lens, context=ctx, streaming=True)
        b, bm = tiny_scripted.encoder(xs, lens, context=ctx, streaming=True)
        c, _ = tiny_scripted.encoder(xs, torch.tensor([20]))
    assert a.shape == (1, 40, d) and am.shape == (1, 1, 40) and bool(am.all())
    assert torch.allclose(a, b, atol=1e-5) and torch.equal(am, bm)
    assert c.shape == (1, 40, d)
    p = str(tmp_path / "flow.pt")
    torch.jit.save(tiny_scripted, p)
    loaded = torch.jit.load(p)
    tok, ptok, pfeat, emb = inputs(9, 5, seed=10)
    with torch.inference_mode():
        want = tiny.inference(tok, ptok, pfeat, emb, False, True)
        got = loaded.inference(tok, ptok, pfeat, emb, False, True)
        mu, spks = loaded.encode(tok, ptok, emb, False, True)
        split = loaded.decode(mu, spks, pfeat, False)
    assert torch.allclose(want, got, atol=1e-5)
    assert torch.equal(got, split)
    assert loaded.decoder.max_frames() == 15000


def test_frozen_module_equals_eager(tiny, tiny_scripted):
    frozen = freeze(tiny_scripted, ["inference", "encode", "decode"])
    tok, ptok, pfeat, emb = inputs(20, 10, seed=11)
    with torch.inference_mode():
        a = tiny.inference(tok, ptok, pfeat, emb, True, False)
        b = frozen.inference(tok, ptok, pfeat, emb, True, False)
    assert torch.allclose(a, b, atol=1e-5)


def test_fp16_weights_run_and_stay_close(tiny_config, tiny):
    """A half-precision copy (as a fp16 bundle would hold) gives float32 mel close to the fp32 result.
    CPU half kernels are slow and not all exist in every torch build, so this is a short sequence."""
    half = flow.build_flow(tiny_config.flow)
    half.load_state_dict(tiny.state_dict())
    half = half.half()
    tok, ptok, pfeat, emb = inputs(8, 4, seed=12)
    with torch.inference_mode():
        a = tiny.inference(tok, ptok, pfeat, emb, False, True)
        try:
            b = half.inference(tok, ptok, pfeat.half(), emb.half(), False, True)
        except RuntimeError as e:  # pragma: no cover - depends on the torch CPU build
            pytest.fail(f"fp16 inference failed on CPU: {e}")
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.1 * a.abs().max() + 0.05


def test_unmasked_attention_runs_without_bias_and_computes_the_same(tiny, monkeypatch):
    """Non-streaming with nothing masked (one utterance: every call the daemon makes), the estimator's
    attention runs SDPA without a bias; the mel is bit-identical to the reference's all-zero additive bias.
    A padded mask still builds the bias."""
    est = tiny.decoder.estimator
    full = torch.ones(2, 1, 12)
    assert est._attn_bias(full, 12, False, torch.float32).numel() == 0
    padded = full.clone()
    padded[1, :, 9:] = 0
    bias = est._attn_bias(padded, 12, False, torch.float32)
    assert bias.shape == (2, 12, 12) and float(bias[1, 0, 10]) == -1.0e10 and float(bias[0].abs().max()) == 0.0
    assert est._attn_bias(full, 12, True, torch.float32).numel() == 2 * 12 * 12  # streaming: chunk masks
    tok, ptok, pfeat, emb = inputs(40, 10, seed=3)
    with torch.inference_mode():
        fast = tiny.inference(tok, ptok, pfeat, emb, False, True)
        zeros = lambda mask, size, streaming, dtype: torch.zeros(mask.size(0), size, size, dtype=dtype)  # noqa: E731
        monkeypatch.setattr(est, "_attn_bias", zeros)
        ref = tiny.inference(tok, ptok, pfeat, emb, False, True)
    assert torch.equal(fast, ref)
