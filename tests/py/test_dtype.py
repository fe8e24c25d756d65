"""fp16 and bf16 bundles against fp32 on the same random weights (tiny preset, CPU kernels), through the
scripted entry points the daemon calls; and what each dtype does when the LLM's residual stream carries
massive activations (randmodel.stress_llm_state). `pytest -s` prints the figures that
tools/export/cosyvoice2/README.md quotes. Every limit below is a measured figure with a margin (the measured
value is in the comment next to it)."""

import copy
import json
import math
import os
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest
import torch

from cosyvoice2 import bundle, config, load, randmodel
from cosyvoice2.llm import Qwen2LM

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools", "bench"))
from dtype_fidelity import snr_db, teacher_forced_logp  # noqa: E402  (the full-size figures' method)
from test_export import _encoder_zip as encoder_zip
from test_export import eager_modules

pytestmark = pytest.mark.usefixtures("unoptimized_jit")

HALF = ("fp16", "bf16")
FP16_MAX = float(torch.finfo(torch.float16).max)
STEPS = 200
VOCAB = os.path.join(randmodel.default_tokenizer_dir(), "vocab.json")


@pytest.fixture(scope="module")
def bundles(tiny_bundle, tiny_bundle_fp16, tiny_bundle_bf16) -> Dict[str, torch.jit.ScriptModule]:
    """The three bundles of one tiny random model directory, loaded as the daemon loads them."""
    dirs = {"fp32": tiny_bundle[0], "fp16": tiny_bundle_fp16[0], "bf16": tiny_bundle_bf16[0]}
    return {d: bundle.load_model(p) for d, p in dirs.items()}


def test_bf16_bundle_layout(tiny_bundle_bf16, bundles):
    out, man = tiny_bundle_bf16
    assert man["dtype"] == "bf16" and man["hift_dtype"] == "fp32"
    assert bundle.verify_bundle(out) == []
    m = bundles["bf16"]
    assert m.llm.speech_embedding.weight.dtype == torch.bfloat16
    assert m.flow.input_embedding.weight.dtype == torch.bfloat16
    assert m.hift.conv_pre.weight.dtype == torch.float32
    assert m.llm.llm.model.model.inv_freq_fp32.dtype == torch.float32
    k, v = m.llm_new_cache(8)
    assert k.dtype == v.dtype == torch.bfloat16


def test_unknown_dtype_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(bundle.ExportError, match="dtype must be one of fp32, fp16, bf16, not 'int8'"):
        bundle.export(tiny_model_dir, str(tmp_path / "b"), "int8", log=lambda s: None)


# ------------------------------------------------------------------------------ the same weights per dtype
# limits: the measured value (torch 2.15 and 2.11, CPU) x about 6; agreement: measured minus 0.025 / 0.075.
# Measured: fp16 max-abs 3.4e-4, mean-abs 3.5e-5, agreement 0.995; bf16 2.7e-3, 2.8e-4, 0.975
LLM_LIMITS = {
    "fp16": {"max_abs": 2e-3, "mean_abs": 2e-4, "agree": 0.97},
    "bf16": {"max_abs": 1.5e-2, "mean_abs": 1.5e-3, "agree": 0.90},
}


def test_llm_logp_against_fp32(bundles):
    """Prefill + 200 teacher-forced decode steps on a fixed token sequence: log-probability error and the
    fraction of steps whose greedy token equals fp32's. Random weights give an almost flat distribution
    (the fp32 top-1/top-2 gap is printed), so a greedy flip needs only a tiny error: a pessimistic proxy."""
    g = torch.Generator().manual_seed(11)
    text = torch.randint(0, 151643, (1, 12), generator=g)
    prompt = torch.randint(0, 6561, (1, 20), generator=g)
    tokens = torch.randint(0, 6561, (1, STEPS), generator=g)
    with torch.no_grad():
        ref = teacher_forced_logp(bundles["fp32"], text, prompt, tokens)
        top2 = ref.topk(2, dim=-1).values
        print(f"\n[llm] fp32: logp in [{float(ref.min()):.3f}, {float(ref.max()):.3f}], median top-1/top-2 gap "
              f"{float((top2[:, 0] - top2[:, 1]).median()):.4f} nats, {ref.shape[0]} steps")
        err = {}
        for d in HALF:
            lp = teacher_forced_logp(bundles[d], text, prompt, tokens)
            assert lp.dtype == torch.float32 and lp.shape == ref.shape and torch.isfinite(lp).all()
            e = (lp - ref).abs()
            agree = float((lp.argmax(-1) == ref.argmax(-1)).double().mean())
            err[d] = float(e.max())
            print(f"[llm] {d}: max-abs {float(e.max()):.3g}, mean-abs {float(e.mean()):.3g}, "
                  f"greedy agreement {agree:.3f}")
            lim = LLM_LIMITS[d]
            assert float(e.max()) < lim["max_abs"] and float(e.mean()) < lim["mean_abs"] and agree >= lim["agree"]
    # bf16 keeps 8 significant bits, fp16 11: the errors must show it (both bundles really are half precision)
    assert 0.0 < err["fp16"] < err["bf16"]


def test_packed_decode_against_fp32(tiny_bundle, tiny_bundle_bf16, bundles):
    """llm_pack_cpu (what the engine calls for bf16 on a CPU with bf16 units): prefill and one-row steps
    through oneDNN's reordered weights (q/k/v fused, gate/up fused), attention over a float32 KV cache, stay
    within bf16's limits against fp32; the plain weights' storage is released (held once) while the state
    dict keys stay; a second call changes nothing."""
    m = bundle.load_model(tiny_bundle_bf16[0])
    keys = set(m.state_dict())
    g = torch.Generator().manual_seed(11)
    text = torch.randint(0, 151643, (1, 12), generator=g)
    prompt = torch.randint(0, 6561, (1, 20), generator=g)
    tokens = torch.randint(0, 6561, (1, STEPS), generator=g)
    lin = m.llm.llm_decoder
    x = torch.randn(1, 5, lin.in_features, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        plain = teacher_forced_logp(m, text, prompt, tokens)
        y_plain = torch.nn.functional.linear(x, lin.weight, lin.bias).float()
        n_weight = lin.weight.numel()
        m.llm_pack_cpu()
        assert lin.packed.numel() > 0 and lin.weight.numel() == 0 < n_weight and set(m.state_dict()) == keys
        projections = [t for k, t in m.named_parameters() if k.startswith("llm.") and k.endswith("_proj.weight")]
        assert len(projections) == 7 * m.llm.num_layers
        assert all(t.untyped_storage().nbytes() == 0 for t in projections)
        for i in range(m.llm.num_layers):  # q/k/v and gate/up as one product each per step
            layer = getattr(m.llm.llm.model.model.layers, str(i))
            assert layer.self_attn.qkv_packed.numel() > 0 and layer.mlp.gate_up_packed.numel() > 0
        packed = teacher_forced_logp(m, text, prompt, tokens)
        # the packed model's KV cache is float32 (the attention's products run as fp32 GEMMs) and holds
        # bf16-rounded keys and values exactly
        k, v = m.llm_new_cache(64)
        assert k.dtype == v.dtype == torch.float32
        m.llm_prefill(text, prompt, k, v)
        n = text.shape[1] + prompt.shape[1] + 2
        assert k[..., :n, :].abs().sum() > 0 and torch.equal(k, k.to(torch.bfloat16).float())
        assert torch.equal(v, v.to(torch.bfloat16).float()) and k[..., n:, :].abs().sum() == 0
        m.llm_pack_cpu()  # idempotent: the packed copies stay, nothing is reordered from an empty weight
        assert torch.equal(teacher_forced_logp(m, text, prompt, tokens), packed)
        ref = teacher_forced_logp(bundles["fp32"], text, prompt, tokens)
        y_packed = lin(x).float()  # 5 rows (prefill's shape) go through the packed copy too
        assert y_packed.shape == y_plain.shape
        assert float((y_packed - y_plain).abs().max()) <= 0.02 * float(y_plain.abs().max())
    e = (packed - ref).abs()
    agree = float((packed.argmax(-1) == ref.argmax(-1)).double().mean())
    print(f"\n[llm] bf16 packed: max-abs {float(e.max()):.3g}, mean-abs {float(e.mean()):.3g}, greedy agreement "
          f"{agree:.3f}; packed vs plain bf16 max-abs {float((packed - plain).abs().max()):.3g}")
    lim = LLM_LIMITS["bf16"]
    assert torch.isfinite(packed).all() and float(e.max()) < lim["max_abs"] and float(e.mean()) < lim["mean_abs"]
    assert agree >= lim["agree"]


def test_flow_dtype_mix(tiny_model_dir, tiny_bundle, bundles, tmp_path):
    """--dtype bf16 --flow-dtype fp32 (the CPU's mix): LLM and KV cache in bf16, the flow in fp32 computing
    exactly what the fp32 bundle's flow computes."""
    out = str(tmp_path / "mix")
    man = bundle.export(tiny_model_dir, out, "bf16", random_preset="tiny", log=lambda s: None, flow_dtype="fp32")
    assert (man["dtype"], man["flow_dtype"], man["hift_dtype"]) == ("bf16", "fp32", "fp32")
    assert bundle.verify_bundle(out) == []
    m = bundle.load_model(out)
    assert m.llm.speech_embedding.weight.dtype == torch.bfloat16 and m.llm_new_cache(4)[0].dtype == torch.bfloat16
    assert m.flow.input_embedding.weight.dtype == torch.float32
    tok, ptok, pfeat, emb = flow_inputs()
    with torch.no_grad():
        assert torch.equal(m.flow_inference(tok, ptok, pfeat, emb, False, True),
                           bundles["fp32"].flow_inference(tok, ptok, pfeat, emb, False, True))
    with pytest.raises(bundle.ExportError, match="flow dtype must be one of"):
        bundle.export(tiny_model_dir, str(tmp_path / "bad"), "bf16", log=lambda s: None, flow_dtype="int8")


def flow_inputs() -> Tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(12)
    return (torch.randint(0, 6561, (1, 60), generator=g), torch.randint(0, 6561, (1, 10), generator=g),
            torch.randn(1, 20, 80, generator=g) - 5.0, torch.randn(1, 192, generator=g))


def hift_noise(frames: int, harmonics: int) -> torch.Tensor:
    """The harmonic-branch noise passed explicitly (hift_inference_noise): no RNG draw, as in test_hift."""
    return torch.randn(1, frames * 480, harmonics + 1, generator=torch.Generator().manual_seed(13))


# limits: measured (torch 2.15 and 2.11, CPU) fp16 mel max-abs 0.0080 / 56.1 dB, wav 70.9 dB;
# bf16 0.052 / 41.3 dB, wav 55.9 dB; 9-10 dB and 5-6x of margin
FLOW_LIMITS = {"fp16": {"mel_max_abs": 0.05, "mel_snr": 46.0, "wav_snr": 61.0},
               "bf16": {"mel_max_abs": 0.25, "mel_snr": 32.0, "wav_snr": 47.0}}


def test_flow_hift_and_pipeline_against_fp32(bundles, tiny_bundle):
    """flow_inference (60 tokens, 10 prompt tokens): mel error; hift_inference_noise fed the fp32 mel (HiFT
    is float32 in every bundle: identical); flow -> HiFT: waveform SNR, HiFT noise the same in all."""
    harmonics = tiny_bundle[1]["hift"]["nb_harmonics"]
    tok, ptok, pfeat, emb = flow_inputs()
    empty = torch.zeros(1, 1, 0)
    with torch.no_grad():
        mel32 = bundles["fp32"].flow_inference(tok, ptok, pfeat, emb, False, True)
        noise = hift_noise(mel32.shape[2], harmonics)
        wav32, _ = bundles["fp32"].hift_inference_noise(mel32, empty, noise)
        print(f"\n[flow] fp32: mel in [{float(mel32.min()):.2f}, {float(mel32.max()):.2f}], "
              f"{mel32.shape[2]} frames; wav rms {float(wav32.pow(2).mean().sqrt()):.4f}")
        for d in HALF:
            m = bundles[d]
            mel = m.flow_inference(tok, ptok, pfeat, emb, False, True)
            assert mel.dtype == torch.float32 and mel.shape == mel32.shape
            hift_wav, _ = m.hift_inference_noise(mel32, empty, noise)
            wav, _ = m.hift_inference_noise(mel, empty, noise)
            mel_err, mel_snr = float((mel - mel32).abs().max()), snr_db(mel32, mel)
            hift_snr, wav_snr = snr_db(wav32, hift_wav), snr_db(wav32, wav)
            print(f"[flow] {d}: mel max-abs {mel_err:.3g}, mel SNR {mel_snr:.1f} dB; HiFT (fp32 mel) SNR "
                  f"{hift_snr:.1f} dB; flow -> HiFT waveform SNR {wav_snr:.1f} dB")
            lim = FLOW_LIMITS[d]
            assert 0.0 < mel_err < lim["mel_max_abs"] and mel_snr > lim["mel_snr"] and wav_snr > lim["wav_snr"]
            assert hift_snr == math.inf  # the same float32 HiFT weights and arithmetic in every bundle


def test_bf16_encoder_zip_tolerance(tiny_model_dir, tmp_path):
    """A bf16 encoder zip made from flow.pt the reference's way (script, freeze, optimize_for_inference) is
    accepted (measured difference 0.014); one from weights off by 0.003 is not (0.15)."""
    cfg, (_, flow, _) = eager_modules(tiny_model_dir)
    bf16 = bundle.cast_module(copy.deepcopy(flow), torch.bfloat16)
    diff = {}
    for perturb in (0.0, 0.003):
        z = encoder_zip(flow, str(tmp_path / f"enc{perturb}.zip"), perturb=perturb, dtype=torch.bfloat16)
        try:
            diff[perturb] = bundle.accept_encoder_zip(copy.deepcopy(bf16), z, torch.bfloat16, cfg)["max_rel_diff"]
        except bundle.ExportError as e:
            assert "does not match flow.pt" in str(e)
            diff[perturb] = None
    print(f"\n[zip] bf16 encoder zip from flow.pt: relative max diff {diff[0.0]:.3g} "
          f"(tolerance {bundle.ZIP_TOLERANCE[torch.bfloat16]})")
    assert diff[0.0] is not None and diff[0.0] > 0.0 and diff[0.003] is None


# ------------------------------------------------------------------------------------ massive activations
def stressed_llm(sd: Dict[str, torch.Tensor], cfg: config.ModelConfig, scale: float, dtype: torch.dtype) -> Qwen2LM:
    """The eager LLM of llm.pt's state ``sd`` with stress_llm_state(scale) applied, cast as a bundle casts it."""
    s = {k: v.clone() for k, v in sd.items()}
    s["llm.model.lm_head.weight"] = s["llm.model.model.embed_tokens.weight"]  # tied, as in the file
    randmodel.stress_llm_state(s, cfg.llm.qwen, scale, randmodel.stress_trigger_ids(VOCAB))
    llm = Qwen2LM(cfg.llm).eval()
    load.load_into(llm, load.llm_module_state(s, cfg), "llm.pt")
    return bundle.cast_module(llm, dtype)


def residual_run(llm: Qwen2LM, text: torch.Tensor, prompt: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Prefill: the residual stream after every decoder layer (float32 copies) and the logp."""
    outs: List[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda mod, i, o: outs.append(o.detach().float()))
             for layer in llm.llm.model.model.layers]
    try:
        k, v = llm.new_cache(text.shape[1] + prompt.shape[1] + 2)
        lp = llm.prefill(text, prompt, k, v)
    finally:
        for h in hooks:
            h.remove()
    return outs, lp


def stress_inputs() -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Text with the trigger word ("Ġoverflow") in the middle, the same text without it, a speech prompt."""
    g = torch.Generator().manual_seed(14)
    plain = torch.randint(1000, 151643, (1, 10), generator=g)
    text = plain.clone()
    text[0, 4] = randmodel.stress_trigger_ids(VOCAB)[1]
    return text, plain, torch.randint(0, 6561, (1, 8), generator=g)


def test_massive_activations_per_dtype(tiny_model_dir, tiny_config):
    """Eager LLM (the bundle's modules and cast): residual peak and finiteness per stress scale. fp32 and
    bf16 stay finite at every scale; fp16's hidden states turn inf exactly where the fp32 residual passes
    65504, its log-probabilities where the residual entering the last layer does (inf there reaches the
    KV cache as NaN); a text without the trigger stays finite."""
    sd = load.read_state_dict(os.path.join(tiny_model_dir, "llm.pt"))
    text, plain, prompt = stress_inputs()
    layers = tiny_config.llm.qwen.num_layers
    print(f"\n[stress] tiny preset, {layers} layers; residual peak at the trigger token (max |x| over layers)")
    with torch.no_grad():
        for scale in (1e3, 1e4, 2e4, 3e4, 5e4, 1e5):
            row = []
            for dt in (torch.float32, torch.bfloat16, torch.float16):
                llm = stressed_llm(sd, tiny_config, scale, dt)
                outs, lp = residual_run(llm, text, prompt)
                _, lp_plain = residual_run(llm, plain, prompt)
                hidden_ok = all(bool(torch.isfinite(o).all()) for o in outs)
                finite = [float(o.nan_to_num(0.0, 0.0, 0.0).abs().max()) for o in outs]  # finite values' peak
                lp_ok = bool(torch.isfinite(lp).all())
                assert torch.isfinite(lp_plain).all()
                if dt == torch.float32:
                    peak32, below_top = max(finite), max(finite[:-1])
                    assert hidden_ok and lp_ok
                    assert abs(peak32 - (1 + layers * scale)) < 0.01 * layers * scale  # the construction
                elif dt == torch.bfloat16:
                    assert hidden_ok and lp_ok and abs(max(finite) - peak32) < 0.02 * peak32
                else:
                    assert hidden_ok == (peak32 < FP16_MAX) and lp_ok == (below_top < FP16_MAX)
                row.append(f"{str(dt)[6:]} {max(finite):9.4g}{'' if hidden_ok else ' +inf'}"
                           f"{'' if lp_ok else ' (logp NaN)'}")
            print(f"[stress] scale {scale:7.0e}: " + " | ".join(row))


def fp16_overflow_scale(sd, cfg, text, prompt, logp: bool) -> float:
    """Smallest stress scale (to 0.1%) at which the fp16 LLM's hidden states (or log-probs) are non-finite."""
    lo, hi = 1e3, 2e5
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        outs, lp = residual_run(stressed_llm(sd, cfg, mid, torch.float16), text, prompt)
        bad = not torch.isfinite(lp).all() if logp else not all(bool(torch.isfinite(o).all()) for o in outs)
        lo, hi = (lo, mid) if bad else (mid, hi)
    return hi


def test_fp16_overflow_threshold(tiny_model_dir, tiny_config):
    """Where fp16 overflows, found by bisection: the scale at which the residual reaches fp16's limit
    (1 + layers * scale = 65504), and for the log-probs 1 + (layers - 1) * scale = 65504."""
    sd = load.read_state_dict(os.path.join(tiny_model_dir, "llm.pt"))
    text, _, prompt = stress_inputs()
    layers = tiny_config.llm.qwen.num_layers
    with torch.no_grad():
        hidden = fp16_overflow_scale(sd, tiny_config, text, prompt, logp=False)
        logp = fp16_overflow_scale(sd, tiny_config, text, prompt, logp=True)
    print(f"\n[stress] fp16 overflow: hidden states from scale {hidden:.0f} (residual {1 + layers * hidden:.0f}), "
          f"log-probs from scale {logp:.0f} (residual into the last layer {1 + (layers - 1) * logp:.0f}); "
          f"full preset (24 layers): {FP16_MAX / 24:.0f} and {FP16_MAX / 23:.0f}")
    assert abs(hidden * layers / FP16_MAX - 1) < 0.01 and abs(logp * (layers - 1) / FP16_MAX - 1) < 0.01


def test_stress_bundles_fp16_overflows(tmp_path):
    """Exported bundles of a stressed model (what the daemon's non-finite check is tested with): the
    fp16 one, written by `tools/export/export.py --random tiny --stress-scale 100000 --dtype fp16`, passes the
    export's smoke run and serves a text without the trigger, but a text with it gives NaN log-probs
    from llm_prefill on; the fp32 and bf16 bundles of the same weights stay finite."""
    model = str(tmp_path / "model")
    randmodel.make(model, "tiny", seed=0, stress_scale=1e5, log=lambda s: None)
    ms = {}
    for d in ("fp32", "bf16"):
        out = str(tmp_path / d)
        bundle.export(model, out, d, log=lambda s: None)
        ms[d] = bundle.load_model(out)
    out16 = str(tmp_path / "fp16")
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "export.py"), "--random", "tiny", "--seed", "0",
                        "--stress-scale", "100000", "--dtype", "fp16", "--out", out16,
                        "--tokenizer-dir", randmodel.default_tokenizer_dir()],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ms["fp16"] = bundle.load_model(out16)
    with open(os.path.join(out16, bundle.MANIFEST)) as f:
        man = json.load(f)
    assert man["dtype"] == "fp16" and man["source"]["random"] == "tiny (stress_scale 100000)"
    assert torch.equal(ms["fp16"].llm.speech_embedding.weight, ms["fp32"].llm.speech_embedding.weight.half())
    text, plain, prompt = stress_inputs()
    print()
    with torch.no_grad():
        for d, m in ms.items():
            k, v = m.llm_new_cache(32)
            lp_plain = m.llm_prefill(plain, prompt, k, v)
            k, v = m.llm_new_cache(32)
            lp = m.llm_prefill(text, prompt, k, v)
            step = m.llm_decode_at(torch.tensor([[5]]), torch.tensor([text.shape[1] + prompt.shape[1] + 2]), k, v)
            assert torch.isfinite(lp_plain).all()
            finite = bool(torch.isfinite(lp).all()) and bool(torch.isfinite(step).all())
            print(f"[stress] bundle {d}, scale 1e5: log-probs of the text with the trigger finite: {finite}")
            assert finite == (d != "fp16")


def test_fidelity_tool_measures_the_packed_path(tiny_bundle, tiny_bundle_fp16, tiny_bundle_bf16):
    """tools/bench/dtype_fidelity.py --pack (README's figure for the engine's bf16 CPU path): it packs the
    bundle, says so, and its LLM figures stay within bf16's limits; --pack on an fp16 bundle is refused."""
    import dtype_fidelity

    r = dtype_fidelity.measure(tiny_bundle[0], tiny_bundle_bf16[0], pack=True)
    plain = dtype_fidelity.measure(tiny_bundle[0], tiny_bundle_bf16[0])
    assert r["packed"] is True and plain["packed"] is False and r["dtype"] == "bf16"
    lim = LLM_LIMITS["bf16"]
    assert 0.0 < r["llm"]["logp_max_abs"] < lim["max_abs"] and r["llm"]["greedy_agreement"] >= lim["agree"]
    # the flow and HiFT do not depend on the LLM's packing
    assert r["flow"]["mel_max_abs"] == plain["flow"]["mel_max_abs"] and r["hift"]["wav_snr_db"] == math.inf
    with pytest.raises(SystemExit, match="--pack is the bf16 CPU path"):
        dtype_fidelity.measure(tiny_bundle[0], tiny_bundle_fp16[0], pack=True)
