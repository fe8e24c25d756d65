"""Speaker prompt extraction (docs/cosyvoice2.md §7): a reference recording + its transcript -> a saved speaker.

DESIGN: the reference computes four things from a prompt recording, each with a different front end;
all four are rebuilt here in plain torch so no torchaudio/librosa/whisper is needed, with the exact
constants of the reference:

* audio (§7.1): a WAV reader (PCM 8/16/24/32-bit, float32/64; channels averaged) and torchaudio's
  default ``Resample`` (sinc with a Hann window, width 6, rolloff 0.99; kernel built in float64,
  applied in float32), loading the file once per target rate (16 kHz and 24 kHz) as the reference does;
* speech tokens (§7.2): whisper's 128-bin log-mel (STFT 400/160, periodic Hann, last frame dropped,
  librosa Slaney filters, log10, max-8 floor, (x+4)/4) fed to ``speech_tokenizer_v2.onnx``;
* speaker embedding (§7.3): Kaldi fbank (povey window, DC removal, pre-emphasis 0.97, 512-point power
  spectrum, 80 Kaldi-mel bins 20-8000 Hz, ln with float32 epsilon floor), mean-subtracted, fed to
  ``campplus.onnx``;
* prompt mel (§7.4): Matcha's ``mel_spectrogram`` with the yaml's ``feat_extractor`` values.

The ONNX models run in onnxruntime (CPU); their input names are read from the session, as the reference
does. The transcript is tokenized raw (``add_zero_shot_spk`` does not normalize it, §7.5) with the BlankEN
files through Hugging Face ``tokenizers``. Token/mel alignment (§7.5) is applied by speakers.normalize.
"""

from __future__ import annotations

import math
import os
import struct
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MelConfig


class FrontendError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------ audio
def read_wav(path: str) -> Tuple[Tensor, int]:
    """-> (mono float32 waveform in [-1, 1], sample rate)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FrontendError(f"{path}: {e.strerror}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise FrontendError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos: pos + 4], struct.unpack("<I", data[pos + 4: pos + 8])[0]
        body = data[pos + 8: pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise FrontendError(f"{path}: short fmt chunk")
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise FrontendError(f"{path}: missing fmt or data chunk")
    tag, ch, rate, bits = fmt
    if ch < 1:
        raise FrontendError(f"{path}: {ch} channels")
    width = bits // 8
    n = len(pcm) // (width * ch) * ch
    if tag == 1 and bits == 8:
        x = (np.frombuffer(pcm, np.uint8, n).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        x = np.frombuffer(pcm, "<i2", n).astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(pcm, np.uint8, n * 3).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / 8388608.0
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(pcm, "<i4", n).astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(pcm, "<f4", n).astype(np.float32)
    elif tag == 3 and bits == 64:
        x = np.frombuffer(pcm, "<f8", n).astype(np.float32)
    else:
        raise FrontendError(f"{path}: unsupported WAV encoding (format {tag}, {bits} bits)")
    x = torch.from_numpy(x.copy()).reshape(-1, ch).mean(dim=1)
    return x, rate


def resample(x: Tensor, orig: int, new: int, width_zc: int = 6, rolloff: float = 0.99) -> Tensor:
    """torchaudio.transforms.Resample(orig, new) with its defaults (sinc_interp_hann)."""
    if orig == new:
        return x
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    base = min(o, n) * rolloff
    width = math.ceil(width_zc * o / base)
    idx = torch.arange(-width, width + o, dtype=torch.float64)[None, None] / o
    t = torch.arange(0, -n, -1)[:, None, None] / n + idx  # first term in the default dtype, as torchaudio
    t = t * base
    t = t.clamp(-width_zc, width_zc)
    window = torch.cos(t * math.pi / width_zc / 2) ** 2
    t = t * math.pi
    kern = torch.where(t == 0, torch.tensor(1.0, dtype=t.dtype), t.sin() / t)
    kern = (kern * window * (base / o)).to(torch.float32)
    length = x.shape[-1]
    y = F.pad(x.reshape(1, -1).to(torch.float32), (width, width + o))
    y = F.conv1d(y[:, None], kern, stride=o).transpose(1, 2).reshape(1, -1)
    target = math.ceil(n * length / o)
    return y[0, :target]


def load_audio(path: str, rate: int) -> Tensor:
    x, sr = read_wav(path)
    if sr < 16000:
        raise FrontendError(f"{path}: sample rate {sr} Hz; prompts need at least 16 kHz")
    return resample(x, sr, rate)


# ------------------------------------------------------------------------------------------ mel filters
def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: Optional[float] = None) -> Tensor:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) with htk=False, norm='slaney' -> (n_mels, n_fft//2+1)."""
    fmax = sr / 2.0 if fmax is None else fmax
    fft = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft)
    w = np.zeros((n_mels, len(fft)))
    for i in range(n_mels):
        w[i] = np.maximum(0.0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels]))[:, None]
    return torch.from_numpy(w.astype(np.float32))


# ------------------------------------------------------------------------------------------ features
def whisper_log_mel(audio16k: Tensor, n_mels: int = 128) -> Tensor:
    """openai-whisper log_mel_spectrogram: (n_mels, N // 160)."""
    win = torch.hann_window(400)
    spec = torch.stft(audio16k.to(torch.float32), 400, 160, window=win, return_complex=True)
    mag = spec[..., :-1].abs() ** 2
    mel = mel_filters(16000, 400, n_mels) @ mag
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def kaldi_fbank(wav16k: Tensor, num_mel_bins: int = 80, sample_rate: int = 16000) -> Tensor:
    """torchaudio.compliance.kaldi.fbank(wav, num_mel_bins, dither=0, sample_frequency) with Kaldi defaults."""
    wl, ws, nfft = int(sample_rate * 0.025), int(sample_rate * 0.010), 512
    x = wav16k.to(torch.float32)
    if x.numel() < wl:
        raise FrontendError("recording shorter than one 25 ms frame")
    frames = x.unfold(0, wl, ws)  # snip_edges: 1 + (N - 400) // 160 frames
    frames = frames - frames.mean(dim=1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * prev
    povey = torch.hann_window(wl, periodic=False, dtype=torch.float64).pow(0.85).to(torch.float32)
    frames = F.pad(frames * povey, (0, nfft - wl))
    power = torch.fft.rfft(frames).abs().pow(2.0)  # (F, 257)

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = mel(20.0), mel(sample_rate / 2.0)
    delta = (hi - lo) / (num_mel_bins + 1)
    left = lo + np.arange(num_mel_bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    m = mel(sample_rate / nfft * np.arange(nfft // 2))[None, :]
    banks = np.maximum(0.0, np.minimum((m - left) / (center - left), (right - m) / (right - center)))
    banks = torch.from_numpy(np.pad(banks, ((0, 0), (0, 1))).astype(np.float32))  # Nyquist bin weight 0
    energies = power @ banks.T
    return torch.clamp(energies, min=torch.finfo(torch.float32).eps).log()


def prompt_mel(audio: Tensor, mel: MelConfig) -> Tensor:
    """Matcha mel_spectrogram (the yaml's feat_extractor) -> (frames, num_mels), frames = len // hop."""
    pad = (mel.n_fft - mel.hop_size) // 2
    y = F.pad(audio.to(torch.float32).reshape(1, 1, -1), (pad, pad), mode="reflect").reshape(1, -1)
    spec = torch.stft(y, mel.n_fft, hop_length=mel.hop_size, win_length=mel.win_size,
                      window=torch.hann_window(mel.win_size), center=mel.center, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True)
    spec = torch.view_as_real(spec)
    mag = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
    basis = mel_filters(mel.sampling_rate, mel.n_fft, mel.num_mels, mel.fmin, mel.fmax)
    out = torch.log(torch.clamp(basis @ mag, min=1e-5))
    return out[0].transpose(0, 1).contiguous()


# ------------------------------------------------------------------------------------------ ONNX models
def _session(path: str):
    import onnxruntime as ort

    if not os.path.isfile(path):
        raise FrontendError(f"missing file: {path}")
    opt = ort.SessionOptions()
    opt.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opt.intra_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opt, providers=["CPUExecutionProvider"])


def speech_tokens(audio16k: Tensor, tokenizer_onnx: str) -> Tensor:
    if audio16k.numel() > 30 * 16000:
        raise FrontendError("prompt recordings longer than 30 s are not supported (speech tokenizer limit)")
    feats = whisper_log_mel(audio16k).unsqueeze(0)
    s = _session(tokenizer_onnx)
    ins = s.get_inputs()
    out = s.run(None, {ins[0].name: feats.numpy(), ins[1].name: np.array([feats.shape[2]], dtype=np.int32)})[0]
    return torch.from_numpy(np.asarray(out).reshape(-1).astype(np.int64)).to(torch.int32)


def speaker_embedding(audio16k: Tensor, campplus_onnx: str) -> Tensor:
    feat = kaldi_fbank(audio16k)
    feat = feat - feat.mean(dim=0, keepdim=True)
    s = _session(campplus_onnx)
    out = s.run(None, {s.get_inputs()[0].name: feat.unsqueeze(0).numpy()})[0]
    return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(-1).copy())


# ------------------------------------------------------------------------------------------ tokenizer
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def text_tokenizer(tokenizer_dir: str):
    """The CosyVoice2 text tokenizer (§2.2) built from BlankEN vocab.json + merges.txt with HF tokenizers."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    from .bundle import special_tokens

    vocab, merges = os.path.join(tokenizer_dir, "vocab.json"), os.path.join(tokenizer_dir, "merges.txt")
    for p in (vocab, merges):
        if not os.path.isfile(p):
            raise FrontendError(f"missing file: {p}")
    tok = Tokenizer(models.BPE.from_file(vocab, merges))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = special_tokens(vocab)
    tok.add_special_tokens(list(specials))
    for t, i in specials.items():
        if tok.token_to_id(t) != i:
            raise FrontendError(f"tokenizer: special token {t} got id {tok.token_to_id(t)}, expected {i}")
    return tok


def encode_text(tok, text: str) -> List[int]:
    return tok.encode(text, add_special_tokens=False).ids


# ------------------------------------------------------------------------------------------ speaker
def make_speaker(name: str, wav_path: str, transcript: str, tokenizer_onnx: str, campplus_onnx: str,
                 tokenizer_dir: str, mel: MelConfig):
    from . import speakers as S

    a16 = load_audio(wav_path, 16000)
    a24 = load_audio(wav_path, mel.sampling_rate)
    tokens = speech_tokens(a16, tokenizer_onnx)
    emb = speaker_embedding(a16, campplus_onnx)
    feat = prompt_mel(a24, mel)
    ids = torch.tensor(encode_text(text_tokenizer(tokenizer_dir), transcript), dtype=torch.int32)
    sp = S.Speaker(name, ids, tokens, feat, emb, source="recording",
                   note=f"{os.path.basename(wav_path)}: {len(tokens)} tokens, {feat.shape[0]} mel frames")
    return S.normalize(sp, mel.num_mels, emb.numel())
