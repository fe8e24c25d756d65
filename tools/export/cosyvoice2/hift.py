"""CosyVoice2 vocoder (``HiFTGenerator``: NSF source + iSTFTNet): 80-bin mel at 50 Hz -> 24 kHz waveform.

DESIGN: an inference-only reimplementation written from docs/cosyvoice2.md (§5, §6.3, §9, §11),
TorchScript-scriptable, with plain (folded) convolution weights. The module tree has the
official ``hift.pt`` names; the only difference is weight norm: the official file stores every
weight-normed conv as ``<name>.parametrizations.weight.original0`` (g) / ``.original1`` (v) (or the
legacy ``<name>.weight_g`` / ``.weight_v``), and this module has ``<name>.weight``.
:func:`fold_weight_norm` maps an official state_dict to this module's keys (W = g * v / ||v||, norm over
every dim but 0, computed with the same ``torch._weight_norm`` kernel the reference's parametrization
uses, so the folded weights are bit-identical to what the reference convolves with), after stripping
any ``generator.`` from the keys. :func:`unfold_weight_norm` goes the other way (for writing an
official-layout random ``hift.pt``). :meth:`HiFTGenerator.load_official` = fold + strict load.

Source (§5.1 step 3): SineGen2 for every rate but 22,050 Hz (HEAD), classic SineGen otherwise; both are
kept (``sinegen_type`` "2" / "1" / "auto") because which one hift.pt was trained with is unverified
(§12 item 3). Randomness is controllable: ``inference(mel, cache_source, noise)`` uses the given noise
for the harmonic branch when ``noise`` is a tensor (then nothing is drawn from any RNG), otherwise it
draws from torch's global generator in the reference's order and layout (SineGen2: ``rand(B, H)``
initial phases, ``randn_like`` of the (B, L, H) sines — laid out as (B, H, L) in memory —, then the
discarded ``randn_like(uv)`` of the source's noise branch), so the same seed gives the reference's
noise. For SineGen2 the initial phases provably never reach the output (they sit on sample 0, which
the 1/480 linear down-interpolation never reads), so ``noise`` alone fixes the output; for the classic
SineGen the initial phases matter and are drawn from the global RNG unless ``phase`` (B, H) is given.

HiFT always runs in float32 (§6.1). Streaming (§6.3): ``cache_source`` (1, 1, S) overwrites the first
S samples of the generated source, and the returned source (with the cache applied) is what the caller
keeps the tail of; :meth:`HiFTGenerator.fade_in_out` is the reference's cross-fade with the symmetric
Hamming(2 * source_cache_len) window (float64 arithmetic, as numpy does in the reference).
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
    "HIFT_DEFAULTS",
    "hift_params",
    "weight_norm_modules",
    "fold_weight_norm",
    "unfold_weight_norm",
    "Snake",
    "ResBlock",
    "ConvRNNF0Predictor",
    "SineGen",
    "SineGen2",
    "SourceModuleHnNSF",
    "HiFTGenerator",
    "build_hift",
]

# The released CosyVoice2-0.5B values (docs/cosyvoice2.md §5); used only for keys a given config does not carry.
HIFT_DEFAULTS: Dict[str, Any] = {
    "in_channels": 80,
    "base_channels": 512,
    "nb_harmonics": 8,
    "sampling_rate": 24000,
    "nsf_alpha": 0.1,
    "nsf_sigma": 0.003,
    "nsf_voiced_threshold": 10.0,
    "upsample_rates": (8, 5, 3),
    "upsample_kernel_sizes": (16, 11, 7),
    "istft_n_fft": 16,
    "istft_hop_len": 4,
    "resblock_kernel_sizes": (3, 7, 11),
    "resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    "source_resblock_kernel_sizes": (7, 7, 11),
    "source_resblock_dilation_sizes": ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    "lrelu_slope": 0.1,
    "audio_limit": 0.99,
    "f0_num_class": 1,
    "f0_in_channels": 80,
    "f0_cond_channels": 512,
    "sinegen_type": "auto",  # "auto": SineGen for 22050 Hz, SineGen2 otherwise (HEAD, §11)
    "source_cache_len": None,  # streaming: mel_cache_len 8 frames x samples per frame (3840 at 24 kHz, §6.3)
}


def hift_params(cfg: Any = None) -> Dict[str, Any]:
    """Normalize a HiFT config to a flat dict with the field names of ``HiftConfig`` (+ a few extras).

    Accepted: ``None`` (0.5B values), a dataclass such as ``cosyvoice2.config.HiftConfig``, a flat dict with
    those names, or the yaml's ``hift:`` arguments (``istft_params: {n_fft, hop_len}``, ``f0_predictor:
    {num_class, in_channels, cond_channels}``).
    """
    p = dict(HIFT_DEFAULTS)
    if cfg is None:
        return _finish(p)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = dataclasses.asdict(cfg)
    cfg = section(cfg, "hift")
    flat = {k: v for k, v in cfg.items() if k in HIFT_DEFAULTS}
    p.update(flat)
    if "istft_params" in cfg:
        ist = section(cfg["istft_params"], "hift")
        if "n_fft" in ist:
            p["istft_n_fft"] = ist["n_fft"]
        if "hop_len" in ist:
            p["istft_hop_len"] = ist["hop_len"]
    if "f0_predictor" in cfg:
        f0 = section(cfg["f0_predictor"], "hift")
        for src, dst in (("num_class", "f0_num_class"), ("in_channels", "f0_in_channels"),
                         ("cond_channels", "f0_cond_channels")):
            if src in f0:
                p[dst] = f0[src]
    return _finish(p)


def _finish(p: Dict[str, Any]) -> Dict[str, Any]:
    for k in ("in_channels", "base_channels", "nb_harmonics", "sampling_rate", "istft_n_fft", "istft_hop_len",
              "f0_num_class", "f0_in_channels", "f0_cond_channels"):
        p[k] = int(p[k])
    for k in ("nsf_alpha", "nsf_sigma", "nsf_voiced_threshold", "lrelu_slope", "audio_limit"):
        p[k] = float(p[k])
    for k in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes", "source_resblock_kernel_sizes"):
        p[k] = tuple(int(x) for x in p[k])
    for k in ("resblock_dilation_sizes", "source_resblock_dilation_sizes"):
        p[k] = tuple(tuple(int(x) for x in d) for d in p[k])
    n = len(p["upsample_rates"])
    if len(p["upsample_kernel_sizes"]) != n:
        raise ValueError("hift config: upsample_rates and upsample_kernel_sizes differ in length")
    if len(p["source_resblock_kernel_sizes"]) != n or len(p["source_resblock_dilation_sizes"]) != n:
        raise ValueError("hift config: one source resblock per upsampling stage expected")
    if len(p["resblock_kernel_sizes"]) != len(p["resblock_dilation_sizes"]):
        raise ValueError("hift config: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
    if p["base_channels"] % (2 ** n):
        raise ValueError("hift config: base_channels must be divisible by 2**len(upsample_rates)")
    if p["f0_in_channels"] != p["in_channels"]:
        raise ValueError("hift config: f0_predictor in_channels != in_channels")
    if p["f0_num_class"] != 1:
        raise ValueError("hift config: f0_predictor num_class must be 1 (f0 in Hz)")
    if p["sinegen_type"] not in ("auto", "1", "2"):
        raise ValueError(f"hift config: sinegen_type {p['sinegen_type']!r}")
    p["source_cache_len"] = 8 * samples_per_frame(p) if p["source_cache_len"] is None else int(p["source_cache_len"])
    if p["sinegen_type"] == "auto":
        p["sinegen_type"] = "1" if p["sampling_rate"] == 22050 else "2"
    for d in p["resblock_dilation_sizes"] + p["source_resblock_dilation_sizes"]:
        if len(d) == 0:
            raise ValueError("hift config: empty dilation list")
    return p


def samples_per_frame(p: Dict[str, Any]) -> int:
    n = p["istft_hop_len"]
    for r in p["upsample_rates"]:
        n *= r
    return n


# --------------------------------------------------------------------------------------------------------
# weight norm (official parametrizations <-> plain weights)
# --------------------------------------------------------------------------------------------------------


def weight_norm_modules(cfg: Any = None) -> List[str]:
    """Names of the weight-normed convolutions (§5.2, §9) for a config."""
    p = hift_params(cfg)
    names = ["conv_pre"]
    names += [f"ups.{i}" for i in range(len(p["upsample_rates"]))]
    for i, d in enumerate(p["source_resblock_dilation_sizes"]):
        names += [f"source_resblocks.{i}.convs1.{j}" for j in range(len(d))]
        names += [f"source_resblocks.{i}.convs2.{j}" for j in range(len(d))]
    n = 0
    for _ in range(len(p["upsample_rates"])):
        for d in p["resblock_dilation_sizes"]:
            names += [f"resblocks.{n}.convs1.{j}" for j in range(len(d))]
            names += [f"resblocks.{n}.convs2.{j}" for j in range(len(d))]
            n += 1
    names.append("conv_post")
    names += [f"f0_predictor.condnet.{2 * j}" for j in range(5)]
    return names


_WN_SUFFIXES = (
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
    (".weight_g", ".weight_v"),
)


def fold_weight_norm(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map an official ``hift.pt`` state_dict to :class:`HiFTGenerator` keys.

    * strips every ``generator.`` substring from the keys (as the reference loader does);
    * for each ``X.parametrizations.weight.original0`` (g) / ``X.parametrizations.weight.original1`` (v)
      pair, or legacy ``X.weight_g`` / ``X.weight_v``, produces ``X.weight = g * v / ||v||`` with the norm
      over every dim except 0 (Conv1d: per output channel; ConvTranspose1d: per input channel, g being
      [C_in, 1, 1]) — the reference's ``weight_norm(dim=0)``;
    * leaves every other key (biases, Snake alphas, plain convs, linears) unchanged.
    A lone g or v is an error naming the key. The result is a new dict; tensors keep their dtype/device.
    """
    out: Dict[str, torch.Tensor] = {}
    sd = {k.replace("generator.", ""): v for k, v in state_dict.items()}
    used = set()
    for k in sd:
        for g_suf, v_suf in _WN_SUFFIXES:
            if k.endswith(g_suf):
                base = k[: -len(g_suf)]
                vk = base + v_suf
                if vk not in sd:
                    raise KeyError(f"hift: weight-norm magnitude {k} without direction {vk}")
                g, v = sd[k], sd[vk]
                if g.dim() != v.dim() or g.shape[0] != v.shape[0] or any(s != 1 for s in g.shape[1:]):
                    raise ValueError(f"hift: {k} shape {tuple(g.shape)} does not match {vk} {tuple(v.shape)}")
                if base + ".weight" in sd:
                    raise KeyError(f"hift: {base} has both a plain weight and a weight-norm pair")
                out[base + ".weight"] = torch._weight_norm(v, g, 0)
                used.update((k, vk))
    for k, v in sd.items():
        if k in used:
            continue
        if k.endswith(_WN_SUFFIXES[0][1]) or k.endswith(_WN_SUFFIXES[1][1]):
            raise KeyError(f"hift: weight-norm direction {k} without magnitude")
        out[k] = v
    return out


def unfold_weight_norm(state_dict: Dict[str, torch.Tensor], names: List[str],
                       style: str = "parametrizations") -> Dict[str, torch.Tensor]:
    """Inverse of :func:`fold_weight_norm` for the modules ``names``: ``X.weight`` -> g = ||W|| (norm over
    all dims but 0, shape [dim0, 1, ..., 1]) and v = W, stored as ``parametrizations.weight.original0/1``
    (``style="parametrizations"``, the official layout) or ``weight_g/weight_v`` (``style="weight_g"``).
    Folding the result gives back W up to float rounding. Key order: the module's, g/v in place of weight."""
    if style == "parametrizations":
        g_suf, v_suf = _WN_SUFFIXES[0]
    elif style == "weight_g":
        g_suf, v_suf = _WN_SUFFIXES[1]
    else:
        raise ValueError(f"unfold_weight_norm: style {style!r}")
    wanted = {n + ".weight" for n in names}
    missing = wanted - set(state_dict)
    if missing:
        raise KeyError(f"unfold_weight_norm: missing {sorted(missing)[0]}")
    out: Dict[str, torch.Tensor] = {}
    for k, w in state_dict.items():
        if k in wanted:
            base = k[: -len(".weight")]
            if w.is_meta:
                g = torch.empty((w.shape[0],) + (1,) * (w.dim() - 1), dtype=w.dtype, device=w.device)
            else:
                g = torch.norm_except_dim(w, 2, 0)
            out[base + g_suf] = g
            out[base + v_suf] = w
        else:
            out[k] = w
    return out


# --------------------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------------------


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return int((kernel_size * dilation - dilation) / 2)


class Snake(nn.Module):
    """x + 1/(alpha + 1e-9) * sin(alpha x)^2, alpha per channel (linear scale)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place on one temporary: the same operations in the same order as
        # x + (1 / (alpha + 1e-9)) * sin(x alpha)^2 (a*b == b*a and a+b == b+a exactly), so the same bits,
        # but one tensor of x's size allocated instead of five (HiFT's last stage: 22 MB each at 720 frames).
        alpha = self.alpha.unsqueeze(0).unsqueeze(-1)
        t = x * alpha
        t.sin_()
        t.pow_(2)
        t.mul_(1.0 / (alpha + 1e-9))
        return t.add_(x)


class ResBlock(nn.Module):
    """For each dilation d: x += conv2(Snake2(conv1_d(Snake1(x))))."""

    def __init__(self, channels: int, kernel_size: int, dilations: Tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList([
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilations])
        self.convs2 = nn.ModuleList([
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1))
            for _ in dilations])
        self.activations1 = nn.ModuleList([Snake(channels) for _ in dilations])
        self.activations2 = nn.ModuleList([Snake(channels) for _ in dilations])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.activations1, self.activations2):
            xt = a1(x)
            xt = c1(xt)
            xt = a2(xt)
            xt = c2(xt)
            x = xt.add_(x)  # xt is c2's fresh output: in place, same bits as xt + x
        return x


class ConvRNNF0Predictor(nn.Module):
    """5 x [Conv1d k3 p1 -> ELU] -> transpose -> Linear -> |.|: f0 in Hz, (B, T)."""

    def __init__(self, num_class: int, in_channels: int, cond_channels: int):
        super().__init__()
        layers: List[nn.Module] = []
        for j in range(5):
            layers.append(nn.Conv1d(in_channels if j == 0 else cond_channels, cond_channels, kernel_size=3, padding=1))
            layers.append(nn.ELU())
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(cond_channels, num_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.condnet(x).transpose(1, 2)
        return torch.abs(self.classifier(x).squeeze(-1))


class SineGen2(nn.Module):
    """HiFTNet-style sine source (HEAD at 24 kHz), §5.1 step 3 — the reference's op sequence:
    rad = (f0 h / sr) mod 1; + U[0,1) initial phase on sample 0 (not the fundamental); linear
    down-interpolation x1/upsample_scale; cumsum x 2 pi; x upsample_scale; linear up-interpolation;
    sin x sine_amp; voiced/unvoiced noise."""

    def __init__(self, samp_rate: int, upsample_scale: int, harmonic_num: int, sine_amp: float,
                 noise_std: float, voiced_threshold: float):
        super().__init__()
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.dim = harmonic_num + 1
        self.sampling_rate = samp_rate
        self.voiced_threshold = voiced_threshold
        self.upsample_scale = upsample_scale

    def forward(self, f0: torch.Tensor, noise: Optional[torch.Tensor] = None,
                phase: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """f0 (B, L, 1) Hz per sample -> (sines + noise (B, L, H), uv (B, L, 1)). ``phase`` is unused
        (the initial phases of SineGen2 cannot reach the output)."""
        harm = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype).view(1, 1, self.dim)
        fn = f0 * harm
        rad = (fn / self.sampling_rate) % 1
        if noise is None:
            rand_ini = torch.rand(fn.size(0), fn.size(2), device=fn.device)
            rand_ini[:, 0] = 0
            rad[:, 0, :] = rad[:, 0, :] + rand_ini
        rad = F.interpolate(rad.transpose(1, 2), scale_factor=1.0 / self.upsample_scale,
                            mode="linear").transpose(1, 2)
        ph = torch.cumsum(rad, dim=1) * 2 * math.pi
        ph = F.interpolate(ph.transpose(1, 2) * self.upsample_scale, scale_factor=float(self.upsample_scale),
                           mode="linear").transpose(1, 2)
        sine_waves = torch.sin(ph) * self.sine_amp
        uv = (f0 > self.voiced_threshold).to(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        if noise is None:
            n = noise_amp * torch.randn_like(sine_waves)
        else:
            n = noise_amp * noise.to(sine_waves.dtype)
        return sine_waves * uv + n, uv


class SineGen(nn.Module):
    """Classic NSF sine source (the reference's choice at 22,050 Hz, and Release-era code at 24 kHz):
    per-sample phase 2 pi ((cumsum f0 h / sr) mod 1) + U(-pi, pi) initial phase (0 for the fundamental)."""

    def __init__(self, samp_rate: int, harmonic_num: int, sine_amp: float, noise_std: float,
                 voiced_threshold: float):
        super().__init__()
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.dim = harmonic_num + 1
        self.sampling_rate = samp_rate
        self.voiced_threshold = voiced_threshold

    def forward(self, f0: torch.Tensor, noise: Optional[torch.Tensor] = None,
                phase: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """f0 (B, L, 1) -> (sines + noise (B, L, H), uv (B, L, 1)); noise (B, L, H), phase (B, H) optional."""
        f0t = f0.transpose(1, 2)  # (B, 1, L)
        harm = torch.arange(1, self.dim + 1, device=f0.device, dtype=f0.dtype).view(1, self.dim, 1)
        f_mat = f0t * harm / self.sampling_rate
        theta = 2 * math.pi * (torch.cumsum(f_mat, dim=-1) % 1)
        if phase is None:
            u = torch.rand((f0.size(0), self.dim, 1), device=f0.device)
            low = torch.tensor(-math.pi, dtype=torch.float32, device=f0.device)
            high = torch.tensor(math.pi, dtype=torch.float32, device=f0.device)
            phase_vec = low + u * (high - low)
        else:
            phase_vec = phase.to(f0.dtype).view(f0.size(0), self.dim, 1).clone()
        phase_vec[:, 0, :] = 0
        sine_waves = self.sine_amp * torch.sin(theta + phase_vec)
        uv = (f0t > self.voiced_threshold).to(torch.float32)
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        if noise is None:
            n = noise_amp * torch.randn_like(sine_waves)
        else:
            n = noise_amp * noise.to(sine_waves.dtype).transpose(1, 2)
        return (sine_waves * uv + n).transpose(1, 2), uv.transpose(1, 2)


class SourceModuleHnNSF(nn.Module):
    """``m_source``: harmonic sines -> Linear(H -> 1) -> tanh. Key: l_linear."""

    def __init__(self, sampling_rate: int, upsample_scale: int, harmonic_num: int, sine_amp: float,
                 add_noise_std: float, voiced_threshold: float, sinegen_type: str):
        super().__init__()
        self.sine_amp = sine_amp
        self.use_sinegen2 = sinegen_type == "2"
        self.l_sin_gen2 = SineGen2(sampling_rate, upsample_scale, harmonic_num, sine_amp, add_noise_std,
                                   voiced_threshold)
        self.l_sin_gen1 = SineGen(sampling_rate, harmonic_num, sine_amp, add_noise_std, voiced_threshold)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    def forward(self, x: torch.Tensor, noise: Optional[torch.Tensor] = None,
                phase: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, 1) f0 per sample -> source (B, L, 1)."""
        if self.use_sinegen2:
            sine_wavs, uv = self.l_sin_gen2(x, noise, phase)
        else:
            sine_wavs, uv = self.l_sin_gen1(x, noise, phase)
        sine_merge = torch.tanh(self.l_linear(sine_wavs))
        if noise is None:
            # The reference's noise branch: drawn (advancing the RNG like the reference) and unused. The
            # where() keeps sine_merge bit for bit (randn is never NaN) but stops TorchScript from
            # dead-code-eliminating the draw, so eager and scripted modules consume the RNG alike.
            nb = torch.randn_like(uv) * self.sine_amp / 3
            sine_merge = torch.where(torch.isnan(nb), nb, sine_merge)
        return sine_merge


# --------------------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------------------


class HiFTGenerator(nn.Module):
    """mel (B, 80, T) -> f0 -> NSF source -> STFT; conv_pre -> [lrelu, up, + source branch, mean(resblocks)] x 3
    -> lrelu(0.01) -> conv_post -> exp/sin -> iSTFT -> clamp(+-audio_limit): (B, 480 T) at 24 kHz."""

    def __init__(self, cfg: Any = None):
        super().__init__()
        p = hift_params(cfg)
        self.sampling_rate = p["sampling_rate"]
        self.lrelu_slope = p["lrelu_slope"]
        self.audio_limit = p["audio_limit"]
        self.n_fft = p["istft_n_fft"]
        self.hop_len = p["istft_hop_len"]
        self.num_kernels = len(p["resblock_kernel_sizes"])
        self.num_upsamples = len(p["upsample_rates"])
        self.upsample_scale = samples_per_frame(p)
        self.source_cache_len = p["source_cache_len"]
        base = p["base_channels"]
        self.m_source = SourceModuleHnNSF(
            sampling_rate=p["sampling_rate"], upsample_scale=self.upsample_scale, harmonic_num=p["nb_harmonics"],
            sine_amp=p["nsf_alpha"], add_noise_std=p["nsf_sigma"], voiced_threshold=p["nsf_voiced_threshold"],
            sinegen_type=p["sinegen_type"])
        self.conv_pre = nn.Conv1d(p["in_channels"], base, 7, 1, padding=3)
        self.ups = nn.ModuleList([
            nn.ConvTranspose1d(base // (2 ** i), base // (2 ** (i + 1)), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(p["upsample_rates"], p["upsample_kernel_sizes"]))])
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        down_rates = [1] + list(p["upsample_rates"][::-1][:-1])
        cum: List[int] = []
        acc = 1
        for r in down_rates:
            acc *= r
            cum.append(acc)
        for i, (u, k, d) in enumerate(zip(cum[::-1], p["source_resblock_kernel_sizes"],
                                          p["source_resblock_dilation_sizes"])):
            ch = base // (2 ** (i + 1))
            if u == 1:
                self.source_downs.append(nn.Conv1d(self.n_fft + 2, ch, 1, 1))
            else:
                self.source_downs.append(nn.Conv1d(self.n_fft + 2, ch, u * 2, u, padding=u // 2))
            self.source_resblocks.append(ResBlock(ch, k, d))
        self.resblocks = nn.ModuleList()
        ch = base
        for i in range(self.num_upsamples):
            ch = base // (2 ** (i + 1))
            for k, d in zip(p["resblock_kernel_sizes"], p["resblock_dilation_sizes"]):
                self.resblocks.append(ResBlock(ch, k, d))
        self.conv_post = nn.Conv1d(ch, self.n_fft + 2, 7, 1, padding=3)
        self.f0_predictor = ConvRNNF0Predictor(p["f0_num_class"], p["f0_in_channels"], p["f0_cond_channels"])
        # not in hift.pt: periodic Hann(n_fft) (scipy get_window('hann', fftbins=True), float32) and the
        # streaming cross-fade window numpy.hamming(2 * source_cache_len) (float64)
        n = torch.arange(self.n_fft, dtype=torch.float64, device="cpu")
        hann = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / self.n_fft)
        self.register_buffer("stft_window", hann.to(torch.float32), persistent=False)
        self.register_buffer("speech_window", torch.hamming_window(2 * self.source_cache_len, periodic=False,
                                                                   dtype=torch.float64, device="cpu"),
                             persistent=False)

    @torch.jit.ignore
    def load_official(self, state_dict: Dict[str, torch.Tensor]) -> None:
        """Python only: :func:`fold_weight_norm` + ``load_state_dict(strict=True)`` of an official hift.pt."""
        self.load_state_dict(fold_weight_norm(state_dict), strict=True)

    def _stft(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        spec = torch.stft(x, self.n_fft, self.hop_len, self.n_fft, window=self.stft_window.to(x.device),
                          center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        spec = torch.view_as_real(spec)
        return spec[..., 0], spec[..., 1]

    def _istft(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        magnitude = torch.clip(magnitude, max=1e2)
        real = magnitude * torch.cos(phase)
        img = magnitude * torch.sin(phase)
        return torch.istft(torch.complex(real, img), self.n_fft, self.hop_len, self.n_fft,
                           window=self.stft_window.to(magnitude.device), center=True)

    @torch.jit.export
    def f0(self, speech_feat: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) -> f0 (B, T) in Hz."""
        return self.f0_predictor(speech_feat)

    @torch.jit.export
    def source(self, speech_feat: torch.Tensor, noise: Optional[torch.Tensor] = None,
               phase: Optional[torch.Tensor] = None) -> torch.Tensor:
        """mel (B, 80, T) -> NSF source (B, 1, upsample_scale * T)."""
        f0 = self.f0_predictor(speech_feat)
        s = F.interpolate(f0.unsqueeze(1), scale_factor=float(self.upsample_scale), mode="nearest").transpose(1, 2)
        if noise is not None and (noise.size(0) != s.size(0) or noise.size(1) != s.size(1)):
            raise RuntimeError("hift: noise must be (B, upsample_scale * T, nb_harmonics + 1)")
        return self.m_source(s, noise, phase).transpose(1, 2)

    @torch.jit.export
    def decode(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) and source (B, 1, L) -> waveform (B, L)."""
        s_real, s_imag = self._stft(s.squeeze(1))
        s_stft = torch.cat([s_real, s_imag], dim=1)
        x = self.conv_pre(x)
        for i, (up, down, sres) in enumerate(zip(self.ups, self.source_downs, self.source_resblocks)):
            x = F.leaky_relu(x, self.lrelu_slope)
            x = up(x)
            if i == self.num_upsamples - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x.add_(sres(down(s_stft)))  # x is up's (or pad's) fresh output
            # in place where the left operand is this function's own temporary: the same bits, fewer
            # allocations of the stage's size
            xs = torch.zeros_like(x)
            for j, rb in enumerate(self.resblocks):
                if j // self.num_kernels == i:
                    xs.add_(rb(x))
            x = xs.div_(self.num_kernels)
        x = F.leaky_relu(x)
        x = self.conv_post(x)
        nb = self.n_fft // 2 + 1
        magnitude = torch.exp(x[:, :nb, :])
        phase = torch.sin(x[:, nb:, :])  # the reference keeps this sin (§5.1 step 5)
        x = self._istft(magnitude, phase)
        return torch.clamp(x, -self.audio_limit, self.audio_limit)

    @torch.jit.export
    def inference(self, speech_feat: torch.Tensor, cache_source: torch.Tensor = torch.zeros(1, 1, 0),
                  noise: Optional[torch.Tensor] = None,
                  phase: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """mel (1, 80, T), cache_source (1, 1, S) or (1, 1, 0) -> (speech (1, 480 T), source (1, 1, 480 T)).

        The returned source has the cache applied (its first S samples are ``cache_source``).
        ``noise`` (1, 480 T, H): the harmonic-branch noise (standard normal before scaling); ``phase``
        (1, H): SineGen initial phases (classic SineGen only). Without them the global RNG is used."""
        s = self.source(speech_feat, noise, phase)
        if cache_source.size(2) != 0:
            if cache_source.size(2) > s.size(2):
                raise RuntimeError("hift: cache_source longer than the generated source")
            s[:, :, : cache_source.size(2)] = cache_source
        return self.decode(speech_feat, s), s

    def forward(self, speech_feat: torch.Tensor, cache_source: torch.Tensor = torch.zeros(1, 1, 0),
                noise: Optional[torch.Tensor] = None,
                phase: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.inference(speech_feat, cache_source, noise, phase)

    @torch.jit.export
    def fade_in_out(self, fade_in: torch.Tensor, fade_out: torch.Tensor) -> torch.Tensor:
        """The reference's streaming cross-fade: out[..., :n] = in[..., :n] * w[:n] + fade_out[..., -n:] * w[n:],
        w = Hamming(2n) symmetric, n = source_cache_len; computed in float64, returned in fade_in's dtype."""
        n = self.speech_window.size(0) // 2
        w = self.speech_window.to(fade_in.device)
        out = fade_in.clone()
        mixed = fade_in[..., :n].to(torch.float64) * w[:n] + fade_out[..., fade_out.size(-1) - n:].to(torch.float64) * w[n:]
        out[..., :n] = mixed.to(out.dtype)
        return out


def build_hift(cfg: Any = None, device: Optional[torch.device] = None) -> HiFTGenerator:
    if device is None:
        return HiFTGenerator(cfg).eval()
    with torch.device(device):
        return HiFTGenerator(cfg).eval()
