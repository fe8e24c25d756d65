"""Qwen2LM (docs/cosyvoice2.md §3): a Qwen2 decoder with a static KV cache plus the three CosyVoice tables.

DESIGN: Hugging Face's Qwen2 is not scriptable, so the backbone is rewritten in plain torch with the
same parameter names (the module tree mirrors ``llm.model.model.*`` so a checkpoint loads without
renaming) and the same arithmetic as HF's eager path: RMSNorm in float32 then cast back, RoPE
("rotate_half", cos/sin from float32 ``positions x inv_freq``; written with ``roll`` and a sign-folded
sin, bit-identical: :func:`_apply_rope`), GQA by grouping query heads over their KV head (no K/V
copies), scores scaled after the matmul and softmaxed in float32.

A decode step is one row through every weight: on the CPU its time is the weights' streaming plus a
few microseconds per operator in the TorchScript interpreter, so the step keeps its operator count low
(q and k roped as one tensor, the mask made once per step, in-place fills on temporaries) and, packed
for oneDNN in bf16, runs the attention's small products in fp32 over an fp32 cache (:meth:`Qwen2LM.new_cache`).

The KV cache is a pair of caller-owned tensors ``[layers, batch, kv_heads, max_len, head_dim]``
allocated once by :meth:`Qwen2LM.new_cache` and written in place: a request owns its cache, the module
holds no per-request state, so one loaded module serves concurrent requests. :meth:`prefill` runs the
prompt, :meth:`decode_one` one new speech token; :meth:`step_embeds` is the general form (any
embeddings at any start position: bistream text chunks). Sampling (RAS, min/max length, stop set) stays
with the caller (docs/cosyvoice2.md §6.5). The tied ``lm_head`` is never used by CosyVoice, so it is not a parameter
here (the loader checks and drops it).
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LLMConfig, QwenConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def _pack_weight(w: Tensor) -> Tensor:
    """w (out, in) reordered once for oneDNN's matmul (batch hint 1: decode's one row): what
    :func:`_packed_linear` takes."""
    return torch.ops.mkldnn._reorder_linear_weight(w, 1)


def _packed_linear(x: Tensor, packed: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``F.linear`` through a weight packed by :func:`_pack_weight`."""
    no_scalars: List[Optional[Union[int, float, complex]]] = []  # TorchScript's Scalar?[]
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", no_scalars, "")


class Linear(nn.Linear):
    """``nn.Linear`` (the same parameters and keys) whose weight can be reordered once for oneDNN instead.

    On a CPU with native bf16, ATen's one-row bf16 GEMV (what a decode step runs) streams the weights at
    about 11 GB/s on the development machine, slower than its fp32 one; oneDNN's matmul on a weight
    reordered in advance streams about 17 GB/s (tools/bench/linear_kernels.py), and is as fast as ATen's
    for prefill's many rows. ``pack_cpu`` (called by the engine at load, bf16 bundles on such CPUs only:
    the bundle's ``llm_pack_cpu``) makes that reordered copy and releases the plain weight's storage (the
    parameter keeps its name with zero elements), so the weights are held once; every input then goes
    through oneDNN. :class:`Attention` and :class:`MLP` pack q/k/v and gate/up as one weight each instead
    (one product per decode step instead of three and two: the per-call overhead is what that saves; the
    log-probabilities are bit-identical). Nothing is packed in the saved bundle: a packed tensor is opaque
    to TorchScript's serializer and depends on the CPU that made it."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        # empty until pack_cpu (a plain tensor attribute: not a parameter or buffer, not in the state dict)
        self.packed = torch.empty(0)

    def pack_cpu(self) -> None:
        if self.packed.numel() > 0:
            return
        self.packed = _pack_weight(self.weight)
        self.weight.set_()  # storage released now: one layer's plain + packed copies at most at a time

    def forward(self, x: Tensor) -> Tensor:
        if self.packed.numel() > 0:
            return _packed_linear(x, self.packed, self.bias)
        return F.linear(x, self.weight, self.bias)


def _apply_rope(x: Tensor, cos: Tensor, sin_signed: Tensor) -> Tensor:
    """HF's ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)``, as
    ``x * cos + roll(x) * cat(-sin1, sin2)``: negating before or after a rounded product gives the same
    bits, so the result is bit-identical, in four operators instead of nine (see Qwen2Model._rope)."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, -1) * sin_signed


class Attention(nn.Module):
    def __init__(self, q: QwenConfig):
        super().__init__()
        self.num_heads = q.num_heads
        self.num_kv_heads = q.num_kv_heads
        self.head_dim = q.head_dim
        self.groups = q.num_heads // q.num_kv_heads
        self.scaling = q.head_dim**-0.5
        self.q_proj = Linear(q.hidden_size, q.num_heads * q.head_dim, bias=True)
        self.k_proj = Linear(q.hidden_size, q.num_kv_heads * q.head_dim, bias=True)
        self.v_proj = Linear(q.hidden_size, q.num_kv_heads * q.head_dim, bias=True)
        self.o_proj = Linear(q.num_heads * q.head_dim, q.hidden_size, bias=False)
        # pack_cpu: q, k and v as one reordered weight (one call per step instead of three)
        self.qkv_packed = torch.empty(0)
        self.qkv_bias = torch.empty(0)

    def pack_cpu(self) -> None:
        """The three projections as one oneDNN-reordered weight (rows q ++ k ++ v), the plain ones released."""
        if self.qkv_packed.numel() > 0:
            return
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight], 0)
        self.qkv_bias = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias], 0)
        self.qkv_packed = _pack_weight(w)
        self.q_proj.weight.set_()
        self.k_proj.weight.set_()
        self.v_proj.weight.set_()
        self.o_proj.pack_cpu()

    def _qkv(self, x: Tensor, cos: Tensor, sin_signed: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Projections of x (B,L,H) as (B,heads,L,hd) / (B,kv,L,hd), RoPE applied to q and k (as one
        tensor of heads + kv_heads heads when the projections are packed: the same elementwise results)."""
        B, L = x.shape[0], x.shape[1]
        if self.qkv_packed.numel() > 0:
            qkv = _packed_linear(x, self.qkv_packed, self.qkv_bias)
            nqk = (self.num_heads + self.num_kv_heads) * self.head_dim
            qk, vp = qkv.split([nqk, self.num_kv_heads * self.head_dim], dim=-1)
            qk = qk.reshape(B, L, self.num_heads + self.num_kv_heads, self.head_dim).transpose(1, 2)
            q, k = _apply_rope(qk, cos, sin_signed).split([self.num_heads, self.num_kv_heads], dim=1)
        else:
            qp, kp, vp = self.q_proj(x), self.k_proj(x), self.v_proj(x)
            q = _apply_rope(qp.reshape(B, L, self.num_heads, self.head_dim).transpose(1, 2), cos, sin_signed)
            k = _apply_rope(kp.reshape(B, L, self.num_kv_heads, self.head_dim).transpose(1, 2), cos, sin_signed)
        v = vp.reshape(B, L, self.num_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def forward(self, x: Tensor, cos: Tensor, sin_signed: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        # x (B,L,H); cos/sin_signed (L,hd) in x's dtype (Qwen2Model._rope); caches (B,kv,max_len,hd),
        # written at [start, start+L).
        L = x.shape[1]
        q, k, v = self._qkv(x, cos, sin_signed)
        end = start + L
        k_cache[:, :, start:end] = k  # (copy_ widens into an fp32 cache exactly)
        v_cache[:, :, start:end] = v
        masked: Optional[Tensor] = None
        if L > 1:
            qpos = torch.arange(start, end, device=x.device).repeat(self.groups)
            kpos = torch.arange(0, end, device=x.device)
            masked = kpos.unsqueeze(0) > qpos.unsqueeze(1)  # (g*L, end)
        return self._attend(q, k_cache[:, :, :end], v_cache[:, :, :end], masked, x.dtype)

    def _attend(self, q: Tensor, keys: Tensor, values: Tensor, masked: Optional[Tensor], dtype: torch.dtype) -> Tensor:
        """Attention of q (B,heads,L,hd) over keys/values (B,kv,n,hd) leaving out where ``masked`` ((g*L, n)
        or (n,), bool) is set, through o_proj: (B,L,H). The products run in the cache's dtype (new_cache)
        and are rounded to ``dtype`` (the activations') as a product of that dtype is."""
        B, L = q.shape[0], q.shape[2]
        # Query head h attends with KV head h // groups (HF repeat_kv order): group the query heads.
        qg = q.reshape(B, self.num_kv_heads, self.groups * L, self.head_dim)
        scores = torch.matmul(qg.to(keys.dtype), keys.transpose(2, 3)).to(dtype) * self.scaling  # (B,kv,g*L,n)
        scores = scores.to(torch.float32)
        if masked is not None:
            scores.masked_fill_(masked, float("-inf"))  # scores is this call's own temporary (mul's result)
        probs = torch.softmax(scores, dim=-1).to(dtype)
        out = torch.matmul(probs.to(values.dtype), values).to(dtype)  # (B,kv,g*L,hd)
        out = out.reshape(B, self.num_heads, L, self.head_dim).transpose(1, 2).reshape(B, L, -1)
        return self.o_proj(out)

    def forward_at(self, x: Tensor, cos: Tensor, sin_signed: Tensor, pos: Tensor, later: Tensor, k_cache: Tensor,
                   v_cache: Tensor) -> Tensor:
        # One position (L = 1) at the position held by the tensor pos (shape (1,), int64), attending over
        # the whole cache with the positions after pos masked (later: (cap,) bool, cache positions > pos,
        # computed once per step by the caller). Every shape is fixed by the cache, and no value is read
        # back to the host, so the step can be captured once as a CUDA graph and replayed for any
        # position. Same arithmetic as forward(): masked keys get probability exactly 0.
        q, k, v = self._qkv(x, cos, sin_signed)
        k_cache.index_copy_(2, pos, k.to(k_cache.dtype))
        v_cache.index_copy_(2, pos, v.to(v_cache.dtype))
        return self._attend(q, k_cache, v_cache, later, x.dtype)


class MLP(nn.Module):
    def __init__(self, q: QwenConfig):
        super().__init__()
        self.gate_proj = Linear(q.hidden_size, q.intermediate_size, bias=False)
        self.up_proj = Linear(q.hidden_size, q.intermediate_size, bias=False)
        self.down_proj = Linear(q.intermediate_size, q.hidden_size, bias=False)
        self.gate_up_packed = torch.empty(0)  # pack_cpu: gate and up as one reordered weight

    def pack_cpu(self) -> None:
        if self.gate_up_packed.numel() > 0:
            return
        w = torch.cat([self.gate_proj.weight, self.up_proj.weight], 0)
        self.gate_up_packed = _pack_weight(w)
        self.gate_proj.weight.set_()
        self.up_proj.weight.set_()
        self.down_proj.pack_cpu()

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_up_packed.numel() > 0:
            gu = _packed_linear(x, self.gate_up_packed, None)
            gate, up = gu.chunk(2, dim=-1)
            return self.down_proj(F.silu(gate) * up)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, q: QwenConfig):
        super().__init__()
        self.self_attn = Attention(q)
        self.mlp = MLP(q)
        self.input_layernorm = RMSNorm(q.hidden_size, q.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(q.hidden_size, q.rms_norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, start, k_cache, v_cache)
        return h + self.mlp(self.post_attention_layernorm(h))

    def forward_at(self, x: Tensor, cos: Tensor, sin: Tensor, pos: Tensor, later: Tensor, k_cache: Tensor,
                   v_cache: Tensor) -> Tensor:
        h = x + self.self_attn.forward_at(self.input_layernorm(x), cos, sin, pos, later, k_cache, v_cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class Qwen2Model(nn.Module):
    """HF ``Qwen2Model`` (keys ``embed_tokens``, ``layers.N.*``, ``norm``); returns post-final-norm states."""

    def __init__(self, q: QwenConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(q.vocab_size, q.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(q) for _ in range(q.num_layers)])
        self.norm = RMSNorm(q.hidden_size, q.rms_norm_eps)
        self.head_dim = q.head_dim
        # HF: 1 / theta ** (arange(0, dim, 2).float() / dim), float32. Kept float32 in fp16/bf16 bundles.
        inv = 1.0 / (q.rope_theta ** (torch.arange(0, q.head_dim, 2, dtype=torch.int64).float() / q.head_dim))
        self.register_buffer("inv_freq_fp32", inv, persistent=False)

    def _rope(self, pos: Tensor, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """cos and the signed sin (L, hd) in dtype for the positions pos (L,), computed in float32 as HF
        does; the sin's first half negated (what :func:`_apply_rope` takes in place of rotate_half's sign)."""
        freqs = pos.to(torch.float32).unsqueeze(1) * self.inv_freq_fp32.to(torch.float32).unsqueeze(0)  # (L, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        sin = emb.sin()
        half = sin.shape[-1] // 2
        return emb.cos().to(dtype), torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).to(dtype)

    def forward(self, x: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        L = x.shape[1]
        cos, sin = self._rope(torch.arange(start, start + L, device=x.device), x.dtype)
        i = 0
        for layer in self.layers:
            x = layer(x, cos, sin, start, k_cache[i], v_cache[i])
            i += 1
        return self.norm(x)

    def forward_at(self, x: Tensor, pos: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        """One position given as a tensor (see Attention.forward_at); x (B,1,H)."""
        cos, sin = self._rope(pos, x.dtype)
        later = torch.arange(0, k_cache.shape[3], device=x.device) > pos  # masked cache positions, all layers
        i = 0
        for layer in self.layers:
            x = layer.forward_at(x, cos, sin, pos, later, k_cache[i], v_cache[i])
            i += 1
        return self.norm(x)


class _CausalLMShell(nn.Module):
    """HF ``Qwen2ForCausalLM`` minus the (tied, unused) lm_head: holds ``.model``."""

    def __init__(self, q: QwenConfig):
        super().__init__()
        self.model = Qwen2Model(q)


class Qwen2Encoder(nn.Module):
    """CosyVoice's ``Qwen2Encoder`` wrapper: holds ``.model`` (so keys read ``llm.model.model.*``)."""

    def __init__(self, q: QwenConfig):
        super().__init__()
        self.model = _CausalLMShell(q)


class Qwen2LM(nn.Module):
    """CosyVoice2's LLM. Entry points (all TorchScript-exported):

    * ``new_cache(max_len, batch) -> (k_cache, v_cache)``: zero caches on the weights' device, in their
      dtype (float32 after ``pack_cpu``).
    * ``pack_cpu()``: the projection weights reordered for oneDNN in place of the plain ones (CPU bf16).
    * ``prefill(text_ids (B,Lt) int64, prompt_speech (B,P) int64, k, v) -> logp (B, speech_vocab) fp32``:
      runs ``[sos, embed_tokens(text_ids), task_id, speech_embedding(prompt_speech)]`` at positions
      0..Lt+P+1 (text_ids = prompt text ids ++ sentence ids) and returns the log-probabilities of the first
      speech token. The prefix length is ``Lt + P + 2``.
    * ``decode_one(token (B,1) int64, pos, k, v) -> logp``: feed ``speech_embedding[token]`` at ``pos``.
    * ``decode_at(token (B,1) int64, pos (1,) int64 tensor, k, v) -> logp``: the same step with fixed
      shapes (attends over the whole cache, later positions masked): the CUDA-graph form.
    * ``step_embeds(x (B,L,H), start, k, v) -> logp``: general form (bistream); logp of the last position.
    * ``embed_text``, ``embed_speech``, ``sos_embedding``, ``task_embedding``: the input tables.
    * ``attach_text_table(table)``: the text table, which bundles store outside the module
      (:meth:`detach_text_table`).
    * ``forward(x (B,L,H)) -> hidden (B,L,H)``: whole sequence without a caller cache (reference path).
    """

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        q = cfg.qwen
        self.llm_embedding = nn.Embedding(2, cfg.llm_input_size)
        self.llm = Qwen2Encoder(q)
        self.llm_decoder = Linear(cfg.llm_output_size, cfg.speech_vocab)
        self.speech_embedding = nn.Embedding(cfg.speech_vocab, cfg.llm_input_size)
        self.num_layers = q.num_layers
        self.num_kv_heads = q.num_kv_heads
        self.head_dim = q.head_dim
        self.hidden_size = q.hidden_size
        self.speech_token_size = cfg.speech_token_size

    @torch.jit.export
    def pack_cpu(self) -> None:
        """Reorder every projection's weight once for oneDNN, releasing the plain one (see :class:`Linear`):
        CPU, bf16 only; a second call does nothing."""
        for layer in self.llm.model.model.layers:
            layer.self_attn.pack_cpu()
            layer.mlp.pack_cpu()
        self.llm_decoder.pack_cpu()

    @torch.jit.export
    def new_cache(self, max_len: int, batch: int = 1) -> Tuple[Tensor, Tensor]:
        """Zero caches in the weights' dtype, or in float32 once :meth:`pack_cpu` ran (bf16 on the CPU):
        they hold the same bf16-rounded keys and values exactly, and the attention's two small products
        then run as fp32 GEMMs (about 2.5x faster there than oneDNN's bf16 ones at these shapes, whose
        per-call cost dominates), their results rounded to bf16 as before. Not bit-identical to the bf16
        products (those accumulate in a different order: one score in ~10^5 moves by one bf16 unit)."""
        w = self.speech_embedding.weight
        dtype = torch.float32 if self.llm_decoder.packed.numel() > 0 else w.dtype
        shape: List[int] = [self.num_layers, batch, self.num_kv_heads, max_len, self.head_dim]
        return (
            torch.zeros(shape, dtype=dtype, device=w.device),
            torch.zeros(shape, dtype=dtype, device=w.device),
        )

    @torch.jit.export
    def attach_text_table(self, table: Tensor) -> None:
        """Put ``table`` (text_vocab, hidden) in place of the text embedding without copying it, on
        whatever device it is: bundles keep the table out of ``model.ts`` (a file the daemon maps: only
        the rows a prompt uses are ever read, on the host even when the model runs on a GPU)."""
        w = self.llm.model.model.embed_tokens.weight
        if table.dim() != 2 or table.shape[1] != self.hidden_size or table.dtype != w.dtype:
            raise RuntimeError("attach_text_table: want a (text_vocab, hidden) table in the LLM's dtype")
        with torch.no_grad():
            w.set_(table)

    @torch.jit.export
    def embed_text(self, ids: Tensor) -> Tensor:
        """Rows of the text table (looked up where the table is, returned on the model's device)."""
        w = self.llm.model.model.embed_tokens.weight
        if w.shape[0] == 0:
            raise RuntimeError("embed_text: no text embedding table (llm_attach_text_table first: the "
                               "bundle keeps it in llm_text_embedding.safetensors)")
        return F.embedding(ids.to(w.device), w).to(self.speech_embedding.weight.device)

    def detach_text_table(self) -> Tensor:
        """Take the text table out (leaving a (0, hidden) placeholder) and return it: what a bundle
        stores beside ``model.ts``."""
        emb = self.llm.model.model.embed_tokens
        table = emb.weight.detach()
        emb.weight = nn.Parameter(table.new_empty((0, table.shape[1])), requires_grad=False)
        return table

    @torch.jit.export
    def embed_speech(self, ids: Tensor) -> Tensor:
        return self.speech_embedding(ids)

    @torch.jit.export
    def sos_embedding(self) -> Tensor:
        return self.llm_embedding.weight[0].reshape(1, 1, -1)

    @torch.jit.export
    def task_embedding(self) -> Tensor:
        return self.llm_embedding.weight[1].reshape(1, 1, -1)

    @torch.jit.export
    def logp(self, h_last: Tensor) -> Tensor:
        """log_softmax(llm_decoder(h)) in float32, over speech_token_size + 3 classes."""
        return torch.log_softmax(self.llm_decoder(h_last).to(torch.float32), dim=-1)

    @torch.jit.export
    def step_embeds(self, x: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.hidden_size:
            raise RuntimeError("step_embeds: x must be (batch, length, hidden)")
        if k_cache.dim() != 5 or k_cache.shape[1] != x.shape[0]:
            raise RuntimeError("step_embeds: cache batch differs from input batch")
        if start < 0 or start + x.shape[1] > k_cache.shape[3]:
            raise RuntimeError("step_embeds: sequence exceeds the KV cache (new_cache(max_len) too small)")
        h = self.llm.model.model(x.to(self.speech_embedding.weight.dtype), start, k_cache, v_cache)
        return self.logp(h[:, -1])

    @torch.jit.export
    def prefill(self, text_ids: Tensor, prompt_speech: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        B = text_ids.shape[0]
        sos = self.sos_embedding().expand(B, 1, self.hidden_size)
        task = self.task_embedding().expand(B, 1, self.hidden_size)
        x = torch.cat([sos, self.embed_text(text_ids), task, self.embed_speech(prompt_speech)], dim=1)
        return self.step_embeds(x, 0, k_cache, v_cache)

    @torch.jit.export
    def decode_one(self, token: Tensor, pos: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        return self.step_embeds(self.embed_speech(token), pos, k_cache, v_cache)

    @torch.jit.export
    def decode_at(self, token: Tensor, pos: Tensor, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        """decode_one with the position as a (1,) int64 tensor on the model's device, attending over the
        whole cache given (positions after pos masked): fixed shapes and no host reads, so one CUDA graph
        serves every step for a given cache length. The caller keeps pos < cache length, and may pass a
        prefix view of a longer cache (cache[..., :n, :]) to read less."""
        x = self.embed_speech(token).to(self.speech_embedding.weight.dtype)
        h = self.llm.model.model.forward_at(x, pos, k_cache, v_cache)
        return self.logp(h[:, -1])

    def forward(self, x: Tensor) -> Tensor:
        k, v = self.new_cache(x.shape[1], x.shape[0])
        return self.llm.model.model(x.to(self.speech_embedding.weight.dtype), 0, k, v)
