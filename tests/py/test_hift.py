"""Tests of tools/export/cosyvoice2/hift.py (HiFTGenerator) against docs/cosyvoice2.md (§5, §6.3, §9).

Run: $(tools/dev/torch-venv.sh) -m pytest tests/py/test_hift.py
"""

import io
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "export"))

from cosyvoice2 import hift, keys  # noqa: E402
from jitutil import freeze  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*is deprecated:FutureWarning")


@pytest.fixture(scope="module")
def tiny(tiny_config):
    torch.manual_seed(4321)
    m = hift.build_hift(tiny_config.hift)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("alpha"):
                p.uniform_(0.5, 1.5)
            else:
                p.mul_(0.5)
        # a positive classifier bias makes most frames voiced (f0 > 10 Hz) so both uv branches occur
        m.f0_predictor.classifier.bias.fill_(40.0)
    return m


@pytest.fixture(scope="module")
def tiny_scripted(tiny):
    return torch.jit.script(tiny)


def mel(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 80, frames, generator=g) * 2.0 - 5.0


def std_noise(frames, harmonics=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 480 * frames, harmonics, generator=g)


def shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


# ------------------------------------------------------------------------------------------------ layout


def test_full_official_layout_counts(full_config):
    m = hift.build_hift(full_config.hift, torch.device("meta"))
    official = hift.unfold_weight_norm(m.state_dict(), hift.weight_norm_modules(full_config.hift))
    assert len(official) == 328  # docs/cosyvoice2.md §5.2
    assert sum(v.numel() for v in official.values()) == 20_821_295
    assert len(hift.weight_norm_modules(full_config.hift)) == 82
    assert len(m.state_dict()) == 328 - 82  # one plain weight instead of each g/v pair


def test_full_layout_matches_key_table(full_config):
    m = hift.build_hift(full_config.hift, torch.device("meta"))
    got = shapes(m.state_dict())
    assert got == dict(keys.hift_keys(full_config.hift, style="folded"))
    official = shapes(hift.unfold_weight_norm(m.state_dict(), hift.weight_norm_modules(full_config.hift)))
    assert official == dict(keys.hift_keys(full_config.hift, style="parametrizations"))
    legacy = shapes(hift.unfold_weight_norm(m.state_dict(), hift.weight_norm_modules(full_config.hift), "weight_g"))
    assert legacy == dict(keys.hift_keys(full_config.hift, style="weight_g"))


def test_full_spec_spot_shapes(full_config):
    m = hift.build_hift(full_config.hift, torch.device("meta"))
    got = shapes(hift.unfold_weight_norm(m.state_dict(), hift.weight_norm_modules(full_config.hift)))
    spec = {  # docs/cosyvoice2.md §5.2
        "m_source.l_linear.weight": (1, 9),
        "m_source.l_linear.bias": (1,),
        "conv_pre.parametrizations.weight.original0": (512, 1, 1),
        "conv_pre.parametrizations.weight.original1": (512, 80, 7),
        "ups.0.parametrizations.weight.original0": (512, 1, 1),
        "ups.0.parametrizations.weight.original1": (512, 256, 16),
        "ups.1.parametrizations.weight.original1": (256, 128, 11),
        "ups.2.parametrizations.weight.original1": (128, 64, 7),
        "ups.2.bias": (64,),
        "conv_post.parametrizations.weight.original0": (18, 1, 1),
        "conv_post.parametrizations.weight.original1": (18, 64, 7),
        "source_downs.0.weight": (256, 18, 30),
        "source_downs.1.weight": (128, 18, 6),
        "source_downs.2.weight": (64, 18, 1),
        "f0_predictor.classifier.weight": (1, 512),
        "f0_predictor.classifier.bias": (1,),
        "f0_predictor.condnet.0.parametrizations.weight.original1": (512, 80, 3),
        "f0_predictor.condnet.8.parametrizations.weight.original1": (512, 512, 3),
        "resblocks.0.activations1.0.alpha": (256,),
        "resblocks.2.convs1.2.parametrizations.weight.original1": (256, 256, 11),
        "resblocks.4.convs2.1.parametrizations.weight.original1": (128, 128, 7),
        "resblocks.8.activations2.2.alpha": (64,),
        "source_resblocks.0.convs1.0.parametrizations.weight.original1": (256, 256, 7),
        "source_resblocks.1.convs2.2.parametrizations.weight.original1": (128, 128, 7),
        "source_resblocks.2.convs1.1.parametrizations.weight.original1": (64, 64, 11),
    }
    assert {k: got.get(k) for k in spec} == spec


def test_config_forms_agree(tiny_config, full_config):
    for mc in (tiny_config, full_config):
        assert hift.hift_params(mc.hift) == hift.hift_params(mc.hift_args)
    assert hift.hift_params(full_config.hift) == hift.hift_params(None)
    assert hift.hift_params(None)["sinegen_type"] == "2"  # 24 kHz -> SineGen2 (HEAD, §11)
    assert hift.hift_params({"sampling_rate": 22050})["sinegen_type"] == "1"


# ------------------------------------------------------------------------------------------ weight norm


def test_fold_matches_torch_weight_norm_parametrization():
    """fold_weight_norm gives bit-identical weights to what a weight-normed module convolves with, for
    Conv1d (norm per output channel) and ConvTranspose1d (per input channel)."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(0)
    for mod in (torch.nn.Conv1d(6, 5, 3), torch.nn.ConvTranspose1d(6, 4, 5, 2)):
        wn = weight_norm(mod)
        with torch.no_grad():
            wn.parametrizations.weight.original0.uniform_(0.5, 2.0)
            wn.parametrizations.weight.original1.normal_()
        sd = {"generator.x." + k: v.detach().clone() for k, v in wn.state_dict().items()}
        folded = hift.fold_weight_norm(sd)
        assert set(folded) == {"x.weight", "x.bias"}
        assert torch.equal(folded["x.weight"], wn.weight.detach())
        g = wn.parametrizations.weight.original0.detach()
        v = wn.parametrizations.weight.original1.detach()
        manual = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)
        assert torch.allclose(folded["x.weight"], manual, atol=1e-6)


def test_fold_legacy_weight_g_v():
    torch.manual_seed(1)
    g = torch.rand(4, 1, 1) + 0.5
    v = torch.randn(4, 3, 7)
    folded = hift.fold_weight_norm({"conv_pre.weight_g": g, "conv_pre.weight_v": v, "conv_pre.bias": torch.zeros(4)})
    assert torch.allclose(folded["conv_pre.weight"], g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1), atol=1e-6)


def test_fold_errors_name_the_key():
    with pytest.raises(KeyError, match="conv_post.parametrizations.weight.original1"):
        hift.fold_weight_norm({"conv_post.parametrizations.weight.original0": torch.ones(18, 1, 1)})
    with pytest.raises(KeyError, match="conv_post.weight_v"):
        hift.fold_weight_norm({"conv_post.weight_v": torch.ones(18, 64, 7)})
    with pytest.raises(ValueError, match="conv_post"):
        hift.fold_weight_norm({"conv_post.weight_g": torch.ones(17, 1, 1), "conv_post.weight_v": torch.ones(18, 4, 7)})


def test_official_layout_round_trip_and_strict_load(tiny_config, tiny):
    names = hift.weight_norm_modules(tiny_config.hift)
    official = hift.unfold_weight_norm(tiny.state_dict(), names)
    assert shapes(official) == dict(keys.hift_keys(tiny_config.hift, style="parametrizations"))
    buf = io.BytesIO()
    torch.save({"generator." + k: v for k, v in official.items()}, buf)  # as some releases prefix keys
    buf.seek(0)
    loaded_sd = torch.load(buf, weights_only=True)
    fresh = hift.build_hift(tiny_config.hift)
    fresh.load_official(loaded_sd)
    for k, v in tiny.state_dict().items():
        assert torch.allclose(fresh.state_dict()[k], v, atol=1e-6), k
    bad = dict(official)
    bad.pop("resblocks.3.activations2.1.alpha")
    with pytest.raises(RuntimeError, match="resblocks.3.activations2.1.alpha"):
        fresh.load_official(bad)


# ------------------------------------------------------------------------------------------------ audio


def test_shapes_range_and_f0(tiny):
    for frames in (1, 7, 50):
        with torch.inference_mode():
            wav, src = tiny.inference(mel(frames), noise=std_noise(frames))
            f0 = tiny.f0(mel(frames))
        assert wav.shape == (1, 480 * frames) and wav.dtype == torch.float32
        assert src.shape == (1, 1, 480 * frames)
        assert float(wav.abs().max()) <= 0.99
        assert f0.shape == (1, frames) and bool((f0 >= 0).all())


def test_audio_limit_clamps(tiny_config, tiny):
    loud = hift.build_hift(tiny_config.hift)
    loud.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        # DC only: magnitude exp(4) ~ 54.6 in bin 0, ~0 elsewhere, phase sin(0) = 0 -> a constant signal of
        # 54.6 / 16 ~ 3.4 before the clamp
        loud.conv_post.weight.zero_()
        loud.conv_post.bias.fill_(0.0)
        loud.conv_post.bias[0] = 4.0
        loud.conv_post.bias[1:9].fill_(-30.0)
    with torch.inference_mode():
        wav, _ = loud.inference(mel(10), noise=std_noise(10))
    assert float(wav.abs().max()) == pytest.approx(0.99)
    assert float((wav >= 0.99 - 1e-6).float().mean()) > 0.99


def test_explicit_noise_is_deterministic_and_rng_free(tiny):
    m, n = mel(12, seed=2), std_noise(12, seed=3)
    state = torch.random.get_rng_state()
    with torch.inference_mode():
        a = tiny.inference(m, noise=n)
        b = tiny.inference(m, noise=n)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with torch.inference_mode():
        c = tiny.inference(m, noise=std_noise(12, seed=4))
    assert not torch.equal(a[1], c[1])


def test_rng_path_equals_explicit_noise_drawn_in_reference_order(tiny):
    """With the global RNG, the draws are rand(1, 9) (initial phases), randn_like of the (1, L, 9) sines laid
    out as (1, 9, L), then the discarded source noise: the same noise passed explicitly gives the same audio,
    i.e. the SineGen2 initial phases never reach the output (§5.1 step 3)."""
    m = mel(9, seed=5)
    with torch.inference_mode():
        torch.manual_seed(77)
        a_wav, a_src = tiny.inference(m)
        after_a = torch.random.get_rng_state()
        torch.manual_seed(77)
        torch.rand(1, 9)
        noise = torch.randn_like(torch.empty(1, 9, 480 * 9).transpose(1, 2))
        torch.randn(1, 480 * 9, 1)
        after_manual = torch.random.get_rng_state()
        b_wav, b_src = tiny.inference(m, noise=noise)
    assert torch.equal(after_a, after_manual)  # same number of draws as the reference order
    assert torch.equal(a_src, b_src)
    assert torch.equal(a_wav, b_wav)


def test_sinegen2_matches_per_frame_formula(tiny):
    """SineGen2 sines (noise 0, all voiced) equal the per-frame form of docs/cosyvoice2.md §5.1 step 3:
    Phi_k = cumsum((f0_k h / 24000) mod 1) * 2 pi, x 480, linearly upsampled x480 with source coordinate
    (n + 0.5)/480 - 0.5 clamped to [0, T-1], sin, x 0.1."""
    frames, h = 6, 9
    f0_frames = torch.tensor([[120.0, 180.0, 95.5, 240.0, 130.25, 300.0]])
    f0 = f0_frames.repeat_interleave(480, dim=1).unsqueeze(-1)  # (1, L, 1), nearest upsampling
    sines, uv = tiny.m_source.l_sin_gen2(f0, torch.zeros(1, 480 * frames, h))
    assert bool((uv == 1).all())
    harm = torch.arange(1, h + 1, dtype=torch.float32)
    rad = (f0_frames.t() * harm / 24000) % 1  # (T, H)
    phi = torch.cumsum(rad, dim=0) * 2 * math.pi * 480  # (T, H)
    n = torch.arange(480 * frames, dtype=torch.float64)
    src = ((n + 0.5) / 480 - 0.5).clamp(min=0, max=frames - 1)
    lo = src.floor().long().clamp(max=frames - 1)
    hi = (lo + 1).clamp(max=frames - 1)
    w = (src - lo.double()).unsqueeze(1)
    want = torch.sin(phi.double()[lo] * (1 - w) + phi.double()[hi] * w) * 0.1
    assert torch.allclose(sines[0].double(), want, atol=2e-4), (sines[0].double() - want).abs().max()


def test_unvoiced_frames_get_noise_only(tiny):
    f0 = torch.zeros(1, 480 * 3, 1)  # all unvoiced (f0 <= 10 Hz)
    noise = std_noise(3)
    sines, uv = tiny.m_source.l_sin_gen2(f0, noise)
    assert bool((uv == 0).all())
    assert torch.allclose(sines, noise * (0.1 / 3), atol=1e-7)


def test_cache_source_overwrites_the_head(tiny):
    m = mel(16, seed=6)
    n = std_noise(16, seed=7)
    cache = torch.randn(1, 1, 3840) * 0.1
    with torch.inference_mode():
        wav0, src0 = tiny.inference(m, noise=n)
        wav1, src1 = tiny.inference(m, cache, noise=n)
    assert torch.equal(src1[:, :, :3840], cache)
    assert torch.equal(src1[:, :, 3840:], src0[:, :, 3840:])
    assert wav1.shape == wav0.shape
    assert not torch.equal(wav0, wav1)
    with pytest.raises(RuntimeError):
        tiny.inference(mel(2), torch.zeros(1, 1, 2000), noise=std_noise(2))


def test_streaming_cache_continuity(tiny):
    """§6.3 HiFT cache: the next chunk is vocoded with the last 8 mel frames prepended and the kept source
    tail as cache_source, so its first 3840 source samples continue the previous chunk's source exactly."""
    m = mel(40, seed=8)
    with torch.inference_mode():
        wav_a, src_a = tiny.inference(m[:, :, :20], noise=std_noise(20, seed=9))
        mel_cache, src_cache, speech_cache = m[:, :, 12:20], src_a[:, :, -3840:], wav_a[:, -3840:]
        nxt = torch.cat([mel_cache, m[:, :, 20:]], dim=2)
        wav_b, src_b = tiny.inference(nxt, src_cache, noise=std_noise(28, seed=10))
        faded = tiny.fade_in_out(wav_b, speech_cache)
    assert torch.equal(src_b[:, :, :3840], src_a[:, :, -3840:])
    assert wav_b.shape == (1, 480 * 28)
    assert torch.equal(faded[:, 3840:], wav_b[:, 3840:])


def test_fade_in_out_is_numpy_hamming_crossfade(tiny):
    n = 3840
    a = torch.randn(1, 6000)
    b = torch.randn(1, 5000)
    got = tiny.fade_in_out(a, b)
    k = torch.arange(2 * n, dtype=torch.float64)
    w = 0.54 - 0.46 * torch.cos(2 * math.pi * k / (2 * n - 1))  # numpy.hamming(7680)
    want = a.clone()
    want[:, :n] = (a[:, :n].double() * w[:n] + b[:, -n:].double() * w[n:]).float()
    assert torch.equal(got, want)
    assert torch.equal(a[:, n:], got[:, n:])


def test_stft_window_is_periodic_hann(tiny):
    n = torch.arange(16, dtype=torch.float64)
    want = (torch.sin(math.pi * n / 16) ** 2).float()
    assert torch.allclose(tiny.stft_window, want, atol=1e-7)
    assert "stft_window" not in tiny.state_dict() and "speech_window" not in tiny.state_dict()


# ------------------------------------------------------------------------------------------ TorchScript


def test_scripted_equals_eager(tiny, tiny_scripted):
    m, n = mel(11, seed=11), std_noise(11, seed=12)
    cache = torch.randn(1, 1, 960) * 0.05
    with torch.inference_mode():
        a = tiny.inference(m, cache, n)
        b = tiny_scripted.inference(m, cache, n)
        c = tiny_scripted(m, cache, n)
    assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[1], atol=1e-6)
    assert torch.equal(b[0], c[0])


def test_scripted_rng_path_consumes_like_eager(tiny, tiny_scripted):
    """Two consecutive seeded calls give the same audio eager and scripted (the discarded source-noise draw
    is not dead-code-eliminated)."""
    m = mel(5, seed=13)
    with torch.inference_mode():
        torch.manual_seed(5)
        e1, _ = tiny.inference(m)
        e2, _ = tiny.inference(m)
        torch.manual_seed(5)
        s1, _ = tiny_scripted.inference(m)
        s2, _ = tiny_scripted.inference(m)
    assert torch.allclose(e1, s1, atol=1e-6) and torch.allclose(e2, s2, atol=1e-6)
    assert not torch.equal(e1, e2)


def test_save_load_and_freeze(tiny, tiny_scripted, tmp_path):
    p = str(tmp_path / "hift.pt")
    torch.jit.save(tiny_scripted, p)
    loaded = torch.jit.load(p)
    frozen = freeze(loaded, ["inference", "fade_in_out"])
    m, n = mel(8, seed=14), std_noise(8, seed=15)
    with torch.inference_mode():
        want, _ = tiny.inference(m, noise=n)
        got, _ = loaded.inference(m, noise=n)
        fr, _ = frozen.inference(m, noise=n)
    assert torch.allclose(want, got, atol=1e-6) and torch.allclose(want, fr, atol=1e-6)
    assert torch.equal(loaded.stft_window, tiny.stft_window)


def test_classic_sinegen_variant(tiny_config, tiny):
    """sinegen_type "1" (classic NSF SineGen, §5.1): runs, scripts, and with explicit noise + phases is
    deterministic; the phases matter for it (unlike SineGen2)."""
    p = hift.hift_params(tiny_config.hift)
    p["sinegen_type"] = "1"
    m1 = hift.build_hift(p)
    m1.load_state_dict(tiny.state_dict())
    s1 = torch.jit.script(m1)
    x, n = mel(6, seed=16), std_noise(6, seed=17)
    ph = torch.rand(1, 9) * 2 * math.pi - math.pi
    with torch.inference_mode():
        a, _ = m1.inference(x, noise=n, phase=ph)
        b, _ = s1.inference(x, noise=n, phase=ph)
        c, _ = m1.inference(x, noise=n, phase=ph + 1.0)
        d, _ = tiny.inference(x, noise=n)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)
    assert not torch.allclose(a, d, atol=1e-4)
