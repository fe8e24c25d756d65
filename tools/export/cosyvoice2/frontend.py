"""Speaker prompt extraction (docs/cosyvoice2.md §7): a reference recording + its transcript -> a saved speaker.

DESIGN: the reference computes four things from a prompt recording, each with a different front end;
all four are rebuilt here in plain torch so no torchaudio/librosa/whisper is needed, with the exact
constants of the reference:

* audio (§7.1): libsndfile through ``soundfile`` (what the reference's ``torchaudio.load(backend=
  "soundfile")`` uses: WAV of any common encoding, FLAC, OGG, MP3; float32; channels averaged) and torchaudio's
  default ``Resample`` (sinc with a Hann window, width 6, rolloff 0.99; kernel built in float64,
  applied in float32), the file read once and resampled to 16 kHz and 24 kHz (the reference loads it once per rate: the same samples);
* speech tokens (§7.2): whisper's 128-bin log-mel (STFT 400/160, periodic Hann, last frame dropped,
  librosa Slaney filters, log10, max-8 floor, (x+4)/4) fed to ``speech_tokenizer_v2.onnx``;
* speaker embedding (§7.3): Kaldi fbank (povey window, DC removal, pre-emphasis 0.97, 512-point power
  spectrum, 80 Kaldi-mel bins 20-8000 Hz, ln with float32 epsilon floor; all in float32 as torchaudio
  computes it), mean-subtracted, fed to ``campplus.onnx``;
* prompt mel (§7.4): Matcha's ``mel_spectrogram`` with the yaml's ``feat_extractor`` values.

The ONNX models run in onnxruntime (CPU); their input names are read from the session, as the reference
does. The transcript is tokenized raw (``add_zero_shot_spk`` does not normalize it, §7.5) with the BlankEN
files through Hugging Face ``tokenizers``. Token/mel alignment (§7.5) is applied by speakers.normalize.
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MelConfig


class FrontendError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------ audio
def read_audio(path: str) -> Tuple[Tensor, int]:
    """-> (mono float32 waveform in [-1, 1], sample rate), as the reference loads a prompt:
    ``torchaudio.load(path, backend="soundfile")`` (libsndfile's float32 conversion) then the mean over
    channels. Reads what libsndfile reads: WAV of any common encoding (PCM 8-32 bit, float, A-law/u-law,
    ADPCM), FLAC, OGG/Vorbis or Opus, MP3, AIFF."""
    import soundfile as sf

    if not os.path.isfile(path):
        raise FrontendError(f"{path}: no such file")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as e:
        raise FrontendError(f"{path}: not a recording libsndfile can read ({e})") from None
    if data.shape[1] < 1 or data.shape[0] == 0:
        raise FrontendError(f"{path}: no audio samples")
    x = torch.from_numpy(np.ascontiguousarray(data.T)).mean(dim=0)
    return x, int(rate)


# Prompt limits and checks (what the reference's models accept and what makes a usable voice).
PROMPT_MAX_SECONDS = 30.0
PROMPT_MIN_RATE = 16000


def check_prompt(x: Tensor, rate: int, path: str, transcript: str) -> List[str]:
    """Refuse what cannot work (FrontendError); return warnings about what may sound bad."""
    secs = x.numel() / float(rate)
    if rate < PROMPT_MIN_RATE:
        raise FrontendError(f"{path}: sample rate {rate} Hz; prompts need at least {PROMPT_MIN_RATE // 1000} kHz "
                            "(record or export at 16 kHz or more; upsampling adds nothing)")
    if secs > PROMPT_MAX_SECONDS:
        raise FrontendError(f"{path}: {secs:.1f} s long; prompts may be at most {PROMPT_MAX_SECONDS:.0f} s "
                            "(the speech tokenizer's limit): cut a 5-15 s passage and give its transcript")
    warn = []
    peak = float(x.abs().max()) if x.numel() else 0.0
    rms = float(x.pow(2).mean().sqrt()) if x.numel() else 0.0
    if peak < 1e-3 or rms < 1e-4:
        warn.append(f"{path}: the recording is (nearly) silent (peak {peak:.2g}, rms {rms:.2g}): the voice will be "
                    "noise; check the input level")
    clipped = float((x.abs() >= 0.999).float().mean()) if x.numel() else 0.0
    if clipped > 0.001:
        warn.append(f"{path}: {100 * clipped:.2f}% of the samples are clipped: the voice will carry the distortion; "
                    "record at a lower level")
    if secs < 3.0:
        warn.append(f"{path}: only {secs:.1f} s of speech: 5-15 s give a steadier voice")
    odd = sorted(set(re.findall(r"[0-9%$&@#+=/\\<>_*^~|€£¥]", transcript)))
    if odd:
        warn.append("the transcript contains " + " ".join(repr(c) for c in odd) + ": a saved voice's prompt text is "
                    "used verbatim (the reference does not normalize it either), so write it as it is spoken, e.g. "
                    "'twenty five percent' for '25%'")
    return warn


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
    x, sr = read_audio(path)
    if sr < PROMPT_MIN_RATE:
        raise FrontendError(f"{path}: sample rate {sr} Hz; prompts need at least {PROMPT_MIN_RATE // 1000} kHz")
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
    """torchaudio.compliance.kaldi.fbank(wav, num_mel_bins, dither=0, sample_frequency) with Kaldi defaults.

    Every step in float32 with the same torch operations in the same order as torchaudio (povey window
    ``hann_window(periodic=False, float32) ** 0.85``; mel banks from float32 ``arange`` tensors and Python
    float scalars), so the features equal the reference's bit for bit rather than to ~3e-4 (what float64
    window and banks cast to float32 give)."""
    wl, ws, nfft = int(sample_rate * 0.025), int(sample_rate * 0.010), 512
    x = wav16k.to(torch.float32)
    if x.numel() < wl:
        raise FrontendError("recording shorter than one 25 ms frame")
    frames = x.unfold(0, wl, ws)  # snip_edges: 1 + (N - 400) // 160 frames
    frames = frames - torch.mean(frames, dim=1).unsqueeze(1)
    prev = F.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - 0.97 * prev[:, :-1]
    povey = torch.hann_window(wl, periodic=False, dtype=torch.float32).pow(0.85).unsqueeze(0)
    frames = F.pad((frames * povey).unsqueeze(0), (0, nfft - wl), mode="constant", value=0).squeeze(0)
    power = torch.fft.rfft(frames).abs().pow(2.0)  # (F, 257)

    lo = 1127.0 * math.log(1.0 + 20.0 / 700.0)
    hi = 1127.0 * math.log(1.0 + (0.5 * sample_rate) / 700.0)
    delta = (hi - lo) / (num_mel_bins + 1)
    b = torch.arange(num_mel_bins).unsqueeze(1)
    left, center, right = lo + b * delta, lo + (b + 1.0) * delta, lo + (b + 2.0) * delta
    m = (1127.0 * (1.0 + (sample_rate / nfft * torch.arange(nfft // 2)) / 700.0).log()).unsqueeze(0)
    banks = torch.max(torch.zeros(1), torch.min((m - left) / (center - left), (right - m) / (right - center)))
    banks = F.pad(banks, (0, 1), mode="constant", value=0)  # Nyquist bin weight 0
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(torch.finfo(torch.float32).eps)).log()


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
                 tokenizer_dir: str, mel: MelConfig, warn: Callable[[str], None] = lambda s: None):
    from . import speakers as S

    x, sr = read_audio(wav_path)  # read once; check_prompt refuses rates under 16 kHz
    for w in check_prompt(x, sr, wav_path, transcript):
        warn(w)
    a16 = resample(x, sr, 16000)
    a24 = resample(x, sr, mel.sampling_rate)
    tokens = speech_tokens(a16, tokenizer_onnx)
    emb = speaker_embedding(a16, campplus_onnx)
    feat = prompt_mel(a24, mel)
    ids = torch.tensor(encode_text(text_tokenizer(tokenizer_dir), transcript), dtype=torch.int32)
    sp = S.Speaker(name, ids, tokens, feat, emb, source="recording",
                   note=f"{os.path.basename(wav_path)}: {len(tokens)} tokens, {feat.shape[0]} mel frames")
    return S.normalize(sp, mel.num_mels, emb.numel())
