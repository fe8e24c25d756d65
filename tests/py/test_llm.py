"""Qwen2LM: KV-cache prefill/decode against an independent float64 Qwen2 forward written here (HF eager
semantics: RMSNorm, rotate-half RoPE, GQA via repeat_interleave, causal mask), and TorchScript parity."""

import io
import math

import pytest
import torch
import torch.nn.functional as F

from cosyvoice2 import config
from cosyvoice2.llm import Qwen2LM

Q = config.QwenConfig(hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8, intermediate_size=48,
                      vocab_size=500, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=4096,
                      tie_word_embeddings=True)
CFG = config.LLMConfig(qwen=Q, llm_input_size=32, llm_output_size=32, speech_token_size=6561, mix_ratio=(5, 15),
                       top_p=0.8, top_k=25, win_size=10, tau_r=0.1)

pytestmark = pytest.mark.usefixtures("unoptimized_jit")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(11)
    m = Qwen2LM(CFG).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return m


def reference_hidden(m, x):
    """Whole-sequence Qwen2 forward in float64, no cache (independent of the module's code)."""
    sd = {k: v.double() for k, v in m.state_dict().items()}
    x = x.double()
    B, L, _ = x.shape
    nh, nkv, hd = Q.num_heads, Q.num_kv_heads, Q.head_dim

    def rms(h, w):
        return w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + Q.rms_norm_eps))

    def rot(t):
        return torch.cat([-t[..., hd // 2:], t[..., : hd // 2]], -1)

    inv = 1.0 / (Q.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    fr = torch.outer(torch.arange(L, dtype=torch.float64), inv)
    cos, sin = torch.cat([fr, fr], -1).cos(), torch.cat([fr, fr], -1).sin()
    mask = torch.full((L, L), float("-inf"), dtype=torch.float64).triu(1)
    h = x
    for i in range(Q.num_layers):
        p = f"llm.model.model.layers.{i}."
        a = rms(h, sd[p + "input_layernorm.weight"])
        q = F.linear(a, sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.q_proj.bias"]).view(B, L, nh, hd).transpose(1, 2)
        k = F.linear(a, sd[p + "self_attn.k_proj.weight"], sd[p + "self_attn.k_proj.bias"]).view(B, L, nkv, hd).transpose(1, 2)
        v = F.linear(a, sd[p + "self_attn.v_proj.weight"], sd[p + "self_attn.v_proj.bias"]).view(B, L, nkv, hd).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(nh // nkv, dim=1), v.repeat_interleave(nh // nkv, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1) @ v
        h = h + F.linear(att.transpose(1, 2).reshape(B, L, nh * hd), sd[p + "self_attn.o_proj.weight"])
        m2 = rms(h, sd[p + "post_attention_layernorm.weight"])
        h = h + F.linear(F.silu(F.linear(m2, sd[p + "mlp.gate_proj.weight"])) * F.linear(m2, sd[p + "mlp.up_proj.weight"]),
                         sd[p + "mlp.down_proj.weight"])
    return rms(h, sd["llm.model.model.norm.weight"])


def reference_logp(m, x):
    sd = m.state_dict()
    h = reference_hidden(m, x)
    return torch.log_softmax(F.linear(h, sd["llm_decoder.weight"].double(), sd["llm_decoder.bias"].double()), -1)


def sequence(seed=0, lt=7, p=5, n=6):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, Q.vocab_size, (1, lt), generator=g), torch.randint(0, 6561, (1, p), generator=g),
            torch.randint(0, 6561, (1, n), generator=g))


def full_embeds(m, text, prompt, gen):
    return torch.cat([m.sos_embedding(), m.embed_text(text), m.task_embedding(), m.embed_speech(prompt),
                      m.embed_speech(gen)], 1)


def run_cached(m, text, prompt, gen, max_len=64):
    k, v = m.new_cache(max_len)
    outs = [m.prefill(text, prompt, k, v)]
    pos = text.shape[1] + prompt.shape[1] + 2
    for j in range(gen.shape[1] - 1):
        outs.append(m.decode_one(gen[:, j: j + 1], pos + j, k, v))
    return torch.stack(outs, 1)  # (1, n, V): logp after the prefix and after each fed token


def test_prefill_and_decode_match_independent_reference(model):
    text, prompt, gen = sequence()
    with torch.no_grad():
        got = run_cached(model, text, prompt, gen)
        ref = reference_logp(model, full_embeds(model, text, prompt, gen))
    start = text.shape[1] + prompt.shape[1] + 1
    ref = ref[:, start: start + gen.shape[1]]
    assert got.dtype == torch.float32 and got.shape == (1, 6, 6564)
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2e-5)
    # the logits are not trivial: the reference is far from uniform
    assert (ref.max(-1).values - ref.min(-1).values).min() > 1.0


def test_cache_equals_no_cache_forward_fp32(model):
    text, prompt, gen = sequence(seed=1, lt=4, p=9, n=5)
    with torch.no_grad():
        got = run_cached(model, text, prompt, gen)
        h = model(full_embeds(model, text, prompt, gen))
        full = model.logp(h)
    start = text.shape[1] + prompt.shape[1] + 1
    torch.testing.assert_close(got, full[:, start: start + gen.shape[1]], rtol=1e-5, atol=1e-5)


def test_chunked_step_embeds_equals_one_prefill(model):
    text, prompt, gen = sequence(seed=2)
    x = full_embeds(model, text, prompt, gen)
    with torch.no_grad():
        k, v = model.new_cache(40)
        whole = model.step_embeds(x, 0, k, v)
        k2, v2 = model.new_cache(40)
        model.step_embeds(x[:, :5], 0, k2, v2)
        model.step_embeds(x[:, 5:11], 5, k2, v2)
        last = model.step_embeds(x[:, 11:], 11, k2, v2)
    torch.testing.assert_close(last, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k2[:, :, :, : x.shape[1]], k[:, :, :, : x.shape[1]], rtol=1e-5, atol=1e-5)


def test_batch_rows_are_independent(model):
    a, b = sequence(seed=3), sequence(seed=4)
    with torch.no_grad():
        k, v = model.new_cache(32, 2)
        both = model.prefill(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]]), k, v)
        ka, va = model.new_cache(32)
        one = model.prefill(a[0], a[1], ka, va)
    torch.testing.assert_close(both[:1], one, rtol=1e-5, atol=1e-5)


def test_cache_overflow_is_an_error(model):
    text, prompt, _ = sequence()
    k, v = model.new_cache(8)
    with pytest.raises(RuntimeError, match="exceeds the KV cache"):
        model.prefill(text, prompt, k, v)


def test_scripted_module_matches_eager_and_survives_save_load(model):
    s = torch.jit.script(model)
    buf = io.BytesIO()
    torch.jit.save(s, buf)
    buf.seek(0)
    s = torch.jit.load(buf)
    text, prompt, gen = sequence(seed=5)
    with torch.no_grad():
        eager = run_cached(model, text, prompt, gen)
        scripted = run_cached(s, text, prompt, gen)
        kk, vv = s.new_cache(8)
    torch.testing.assert_close(scripted, eager, rtol=1e-6, atol=1e-6)
    assert kk.shape == (Q.num_layers, 1, Q.num_kv_heads, 8, Q.head_dim)
    with pytest.raises(Exception, match="exceeds the KV cache"):
        s.prefill(text, prompt, kk, vv)


def test_fp16_weights_stay_close_to_fp32(model):
    """fp16 bundle numerics on this CPU: logp within 0.05 nats (stated tolerance for random weights)."""
    import copy

    from cosyvoice2.bundle import cast_module

    half = cast_module(copy.deepcopy(model), torch.float16)
    assert half.llm.model.model.inv_freq_fp32.dtype == torch.float32  # RoPE frequencies stay fp32
    text, prompt, gen = sequence(seed=6)
    with torch.no_grad():
        a = run_cached(model, text, prompt, gen)
        b = run_cached(half, text, prompt, gen)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b, a, rtol=0, atol=5e-2)


def test_rope_form_is_bit_identical_to_rotate_half():
    """_apply_rope (x*cos + roll(x)*signed sin, q and k as one tensor when packed) computes HF's
    x*cos + rotate_half(x)*sin to the bit, in every dtype a bundle uses, at positions up to 4096."""
    from cosyvoice2.llm import Qwen2Model, _apply_rope

    qm = Qwen2Model(Q)
    g = torch.Generator().manual_seed(5)
    pos = torch.tensor([0, 1, 7, 90, 511, 4095])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        cos, sin_signed = qm._rope(pos, dtype)
        freqs = pos.double().unsqueeze(1) * qm.inv_freq_fp32.double().unsqueeze(0)
        assert torch.allclose(sin_signed.double(), torch.cat((-freqs.sin(), freqs.sin()), -1), atol=1e-2)
        emb = torch.cat((pos.float().unsqueeze(1) * qm.inv_freq_fp32.unsqueeze(0),) * 2, dim=-1)
        sin = emb.sin().to(dtype)
        x = (torch.randn(2, Q.num_heads + Q.num_kv_heads, pos.numel(), Q.head_dim, generator=g) * 3).to(dtype)
        half = Q.head_dim // 2
        hf = x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin
        assert torch.equal(_apply_rope(x, cos, sin_signed), hf), dtype
        # the packed path's q ++ k heads as one tensor equals q and k apart
        q, k = x.split([Q.num_heads, Q.num_kv_heads], dim=1)
        assert torch.equal(torch.cat([_apply_rope(q, cos, sin_signed), _apply_rope(k, cos, sin_signed)], 1), hf)
