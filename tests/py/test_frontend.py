"""Speaker prompt front ends (docs/cosyvoice2.md §7) against float64 numpy references written here, and the
recording -> speaker path with small ONNX stand-ins of speech_tokenizer_v2.onnx / campplus.onnx
(same input/output signature) built in the test with onnx.helper."""

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import wave

import numpy as np
import pytest
import torch

from cosyvoice2 import bundle, config, frontend, speakers

from conftest import REPO

MEL = config.MelConfig(n_fft=1920, num_mels=80, sampling_rate=24000, hop_size=480, win_size=1920, fmin=0.0,
                       fmax=8000.0, center=False)


def signal(sr, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(0.3 / h * np.sin(h * phase) for h in range(1, 8)) + 0.01 * rng.standard_normal(t.size)
    x *= np.minimum(1.0, t / 0.05)
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------- WAV
def write_pcm(path, x, sr, bits=16, channels=1):
    y = np.repeat(x[:, None], channels, axis=1)
    if bits == 16:
        raw = np.clip(np.round(y * 32767), -32768, 32767).astype("<i2").tobytes()
    elif bits == 8:
        raw = (np.clip(np.round(y * 127), -128, 127) + 128).astype(np.uint8).tobytes()
    else:
        raise ValueError(bits)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(bits // 8)
        w.setframerate(sr)
        w.writeframes(raw)


def write_raw(path, payload, sr, tag, bits, channels=1):
    fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", 4) + b"INFO"
    body += b"data" + struct.pack("<I", len(payload)) + payload
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_read_audio_formats(tmp_path):
    import soundfile as sf

    x = signal(16000, 0.1)
    p = str(tmp_path / "a.wav")
    write_pcm(p, x, 16000, 16, channels=2)
    y, sr = frontend.read_audio(p)
    assert sr == 16000 and y.dtype == torch.float32 and y.shape == (1600,)
    np.testing.assert_allclose(y.numpy(), np.round(x * 32767) / 32768, atol=1e-7)
    write_pcm(p, x, 22050, 8)
    y, sr = frontend.read_audio(p)
    assert sr == 22050
    np.testing.assert_allclose(y.numpy(), np.round(x * 127) / 128, atol=1e-7)
    v = np.array([0, 1, -1, 8388607, -8388608], dtype=np.int64)
    raw = b"".join(int(a & 0xFFFFFF).to_bytes(3, "little") for a in v)
    write_raw(p, raw, 48000, 1, 24)
    y, _ = frontend.read_audio(p)
    np.testing.assert_allclose(y.numpy(), v / 8388608.0, atol=1e-9)
    write_raw(p, x.astype("<f4").tobytes(), 24000, 3, 32)
    y, _ = frontend.read_audio(p)
    np.testing.assert_array_equal(y.numpy(), x)
    # FLAC is lossless: the 16-bit values come back exactly; OGG/Vorbis and MP3 are lossy: same length
    # (MP3: up to the encoder's padding) and the same waveform within the codec's error.
    long = signal(24000, 1.0, seed=9)
    for ext, fmt, sub, exact in (("flac", "FLAC", "PCM_16", True), ("ogg", "OGG", "VORBIS", False),
                                 ("mp3", "MP3", "MPEG_LAYER_III", False)):
        q = str(tmp_path / f"a.{ext}")
        sf.write(q, np.round(long * 32767).astype(np.int16) if exact else long, 24000, format=fmt, subtype=sub)
        y, sr = frontend.read_audio(q)
        assert sr == 24000 and y.dtype == torch.float32, ext
        if exact:
            np.testing.assert_allclose(y.numpy(), np.round(long * 32767) / 32768, atol=1e-7)
        else:
            assert abs(y.numel() - long.size) <= 2400, (ext, y.numel())
            n = min(y.numel(), long.size)
            best = max(np.corrcoef(y.numpy()[k:n], long[: n - k])[0, 1] for k in range(0, 2400, 1))
            assert best > 0.9, (ext, best)
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVE")
    with pytest.raises(frontend.FrontendError, match="not a recording libsndfile can read"):
        frontend.read_audio(str(tmp_path / "bad.wav"))
    with pytest.raises(frontend.FrontendError, match="no such file"):
        frontend.read_audio(str(tmp_path / "missing.wav"))
    write_pcm(p, x, 8000, 16)
    with pytest.raises(frontend.FrontendError, match="at least 16 kHz"):
        frontend.load_audio(p, 16000)


def test_prompt_checks(tmp_path):
    ok = torch.from_numpy(signal(16000, 6.0, seed=2))
    assert frontend.check_prompt(ok, 16000, "a.wav", "Hello there, this is my voice.") == []
    with pytest.raises(frontend.FrontendError, match="at most 30 s"):
        frontend.check_prompt(torch.zeros(16000 * 31), 16000, "long.wav", "x")
    with pytest.raises(frontend.FrontendError, match="at least 16 kHz"):
        frontend.check_prompt(ok, 8000, "low.wav", "x")
    w = frontend.check_prompt(torch.zeros(16000 * 5), 16000, "quiet.wav", "x")
    assert len(w) == 1 and "silent" in w[0]
    loud = torch.clamp(ok * 50, -1, 1)
    w = frontend.check_prompt(loud, 16000, "loud.wav", "x")
    assert len(w) == 1 and "clipped" in w[0]
    w = frontend.check_prompt(ok, 16000, "a.wav", "It costs $25, i.e. 25% off.")
    assert len(w) == 1 and "'$'" in w[0] and "'%'" in w[0] and "'2'" in w[0] and "as it is spoken" in w[0]
    w = frontend.check_prompt(ok[:16000], 16000, "short.wav", "Hi.")
    assert len(w) == 1 and "5-15 s" in w[0]


# ---------------------------------------------------------------------------------------- resampling
def ref_resample(x, orig, new, W=6, rolloff=0.99):
    """Direct evaluation of the windowed-sinc interpolation torchaudio's Resample implements."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    base = min(o, n) * rolloff
    M = math.ceil(n * len(x) / o)
    j = np.arange(len(x))[None, :].astype(np.float64)
    m = np.arange(M)[:, None].astype(np.float64)
    t = np.clip((j / o - m / n) * base, -W, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(t == 0, 1.0, np.sin(np.pi * t) / (np.pi * t))
    k = s * np.cos(np.pi * t / W / 2) ** 2 * (base / o)
    return k @ x.astype(np.float64)


@pytest.mark.parametrize("orig, new", [(24000, 16000), (44100, 24000), (16000, 24000), (48000, 16000)])
def test_resample_matches_direct_sinc_interpolation(orig, new):
    x = signal(orig, 0.03, seed=1)
    got = frontend.resample(torch.from_numpy(x), orig, new).numpy()
    ref = ref_resample(x, orig, new)
    assert got.shape == ref.shape == (math.ceil(new * x.size / orig),)
    np.testing.assert_allclose(got, ref, atol=2e-6)


# -------------------------------------------------------------------------------------- mel filters
def ref_slaney_filters(sr, n_fft, n_mels, fmin, fmax):
    def hz2mel(f):
        return f / (200.0 / 3) if f < 1000 else 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27)

    def mel2hz(m):
        return m * (200.0 / 3) if m < 15.0 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27)

    lo, hi = hz2mel(fmin), hz2mel(fmax)
    pts = [mel2hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    w = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        a, c, b = pts[i], pts[i + 1], pts[i + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            tri = (f - a) / (c - a) if f <= c else (b - f) / (b - c)
            w[i, k] = max(0.0, tri) * 2.0 / (b - a)
    return w


@pytest.mark.parametrize("sr, n_fft, n_mels, fmax", [(16000, 400, 128, 8000.0), (24000, 1920, 80, 8000.0)])
def test_slaney_mel_filters(sr, n_fft, n_mels, fmax):
    got = frontend.mel_filters(sr, n_fft, n_mels, 0.0, fmax).numpy().astype(np.float64)
    ref = ref_slaney_filters(sr, n_fft, n_mels, 0.0, fmax)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-9)
    # Slaney normalization: each triangle has unit area in Hz (checked where it spans many bins)
    area = got.sum(axis=1) * sr / n_fft
    np.testing.assert_allclose(area[-10:], 1.0, rtol=0.02)


# --------------------------------------------------------------------------------------- features
def frames_np(x, n_fft, hop):
    n = 1 + (len(x) - n_fft) // hop
    return np.stack([x[i * hop: i * hop + n_fft] for i in range(n)])


def periodic_hann(n):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def test_whisper_log_mel_matches_reference():
    x = signal(16000, 0.5, seed=2)
    got = frontend.whisper_log_mel(torch.from_numpy(x)).numpy()
    xp = np.pad(x.astype(np.float64), 200, mode="reflect")
    spec = np.abs(np.fft.rfft(frames_np(xp, 400, 160) * periodic_hann(400), axis=1)) ** 2
    spec = spec[:-1].T  # drop the last frame
    mel = ref_slaney_filters(16000, 400, 128, 0.0, 8000.0) @ spec
    log = np.log10(np.maximum(mel, 1e-10))
    ref = (np.maximum(log, log.max() - 8.0) + 4.0) / 4.0
    assert got.shape == (128, len(x) // 160)
    np.testing.assert_allclose(got, ref, atol=2e-4)


def test_kaldi_fbank_matches_a_float64_reference():
    x = signal(16000, 0.4, seed=3)
    got = frontend.kaldi_fbank(torch.from_numpy(x)).numpy()

    def kmel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = kmel(20.0), kmel(8000.0)
    d = (hi - lo) / 81
    banks = np.zeros((80, 257))
    for mbin in range(80):
        l, c, r = lo + mbin * d, lo + (mbin + 1) * d, lo + (mbin + 2) * d
        for k in range(256):
            mk = kmel(k * 31.25)
            if l < mk < r:
                banks[mbin, k] = (mk - l) / (c - l) if mk <= c else (r - mk) / (r - c)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)) ** 0.85
    rows = []
    for fr in frames_np(x.astype(np.float64), 400, 160):
        fr = fr - fr.mean()
        fr = fr - 0.97 * np.concatenate([[fr[0]], fr[:-1]])
        p = np.abs(np.fft.rfft(np.concatenate([fr * window, np.zeros(112)]))) ** 2
        rows.append(np.log(np.maximum(banks @ p, np.finfo(np.float32).eps)))
    ref = np.array(rows)
    assert got.shape == (1 + (len(x) - 400) // 160, 80)
    np.testing.assert_allclose(got, ref, atol=2e-4, rtol=1e-5)


def torchaudio_kaldi_fbank(wav, num_mel_bins=80, sample_frequency=16000.0):
    """A transcription of torchaudio.compliance.kaldi.fbank (torchaudio 2.11) for the options the reference
    uses (dither 0, povey window, snip_edges, remove_dc_offset, preemphasis 0.97, power spectrum, log, 512-point
    FFT): the same torch operations in the same order and dtypes. Checked on this machine against torchaudio
    2.11.0 itself (torch 2.11.0): identical output."""
    wav = wav.unsqueeze(0)[0]
    dtype = wav.dtype
    shift, size = int(sample_frequency * 0.010), int(sample_frequency * 0.025)
    padded = 1 << (size - 1).bit_length()
    n = 1 + (wav.size(0) - size) // shift
    strided = wav.as_strided((n, size), (shift * wav.stride(0), wav.stride(0)))
    strided = strided - torch.mean(strided, dim=1).unsqueeze(1)
    offset = torch.nn.functional.pad(strided.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    strided = strided - 0.97 * offset[:, :-1]
    window = torch.hann_window(size, periodic=False, dtype=dtype).pow(0.85).unsqueeze(0)
    strided = strided * window
    strided = torch.nn.functional.pad(strided.unsqueeze(0), (0, padded - size), mode="constant", value=0).squeeze(0)
    spectrum = torch.fft.rfft(strided).abs().pow(2.0)

    def mel_scalar(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    def mel_tensor(f):
        return 1127.0 * (1.0 + f / 700.0).log()

    num_fft_bins = padded // 2
    low, high = mel_scalar(20.0), mel_scalar(0.5 * sample_frequency)
    delta = (high - low) / (num_mel_bins + 1)
    b = torch.arange(num_mel_bins).unsqueeze(1)
    left, center, right = low + b * delta, low + (b + 1.0) * delta, low + (b + 2.0) * delta
    mel = mel_tensor((sample_frequency / padded) * torch.arange(num_fft_bins)).unsqueeze(0)
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1), torch.min(up, down)).to(dtype=dtype)
    banks = torch.nn.functional.pad(banks, (0, 1), mode="constant", value=0)
    energies = torch.mm(spectrum, banks.T)
    return torch.max(energies, torch.tensor(torch.finfo(dtype).eps, dtype=dtype)).log()


def test_kaldi_fbank_equals_torchaudio_on_recordings(tmp_path):
    """Five recordings of different rates and encodings, loaded and resampled to 16 kHz as the tool does:
    the fbank fed to campplus equals torchaudio's (float32 window and banks) to <= 1e-6."""
    import soundfile as sf

    cases = [("a.wav", 44100, "WAV", "PCM_16"), ("b.wav", 16000, "WAV", "FLOAT"), ("c.flac", 48000, "FLAC", "PCM_24"),
             ("d.ogg", 22050, "OGG", "VORBIS"), ("e.mp3", 24000, "MP3", "MPEG_LAYER_III"),
             ("f.wav", 32000, "WAV", "ULAW")]
    for i, (name, sr, fmt, sub) in enumerate(cases):
        path = str(tmp_path / name)
        sf.write(path, signal(sr, 1.5, seed=20 + i), sr, format=fmt, subtype=sub)
        a16 = frontend.load_audio(path, 16000)
        got, ref = frontend.kaldi_fbank(a16), torchaudio_kaldi_fbank(a16)
        assert got.shape == ref.shape == (1 + (a16.numel() - 400) // 160, 80), name
        d = float((got - ref).abs().max())
        assert d <= 1e-6, (name, d)


def test_prompt_mel_matches_reference():
    x = signal(24000, 0.5, seed=4)
    got = frontend.prompt_mel(torch.from_numpy(x), MEL).numpy()
    xp = np.pad(x.astype(np.float64), 720, mode="reflect")
    spec = np.fft.rfft(frames_np(xp, 1920, 480) * periodic_hann(1920), axis=1)
    mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9).T
    ref = np.log(np.maximum(ref_slaney_filters(24000, 1920, 80, 0.0, 8000.0) @ mag, 1e-5)).T
    assert got.shape == (len(x) // 480, 80)
    np.testing.assert_allclose(got, ref, atol=2e-4)


# ------------------------------------------------------------------------------------- tokenizer
def test_text_tokenizer_uses_blanken_files_and_specials(tiny_bundle):
    tok = frontend.text_tokenizer(os.path.join(tiny_bundle[0], "tokenizer"))
    with open(os.path.join(tiny_bundle[0], "tokenizer", "vocab.json")) as f:
        vocab = json.load(f)
    assert frontend.encode_text(tok, "Hello world") == [vocab["Hello"], vocab["Ġworld"]]
    assert frontend.encode_text(tok, "<|endofprompt|>[breath]") == [151646, 151647]
    assert frontend.encode_text(tok, "2024") == [vocab[c] for c in "2024"]  # one digit per token
    # BlankEN drops multi-ideograph merges: Chinese is about one token per character (docs/cosyvoice2.md §2.3)
    assert len(frontend.encode_text(tok, "成功用户")) == 4


# ------------------------------------------------------------------------- recording -> speaker
def standin_tokenizer(path, K=64):
    """(feats (1,128,T) f32, feats_len (1,) i32) -> tokens (1, T//4) i64: argmax of a stride-4 conv, x97."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    w = rng.standard_normal((K, 128, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["feats", "w"], ["s"], kernel_shape=[4], strides=[4]),
        helper.make_node("ArgMax", ["s"], ["a"], axis=1, keepdims=0),
        helper.make_node("Mul", ["a", "k97"], ["tokens"]),
    ]
    g = helper.make_graph(
        nodes, "speech_tokenizer_standin",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, 128, "T"]),
         helper.make_tensor_value_info("feats_len", TensorProto.INT32, [1])],
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "N"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(97, dtype=np.int64), "k97")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return lambda feats: (np.einsum("kcj,ctj->kt", w, feats[:, : feats.shape[1] // 4 * 4].reshape(128, -1, 4))
                          .argmax(0) * 97)


def standin_campplus(path):
    """input (1,T,80) f32 -> (1,192): mean over time, then a fixed linear map."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(6).standard_normal((80, 192)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["embedding"])],
        "campplus_standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 192])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return lambda feat: feat.mean(0) @ w


def test_recording_to_speaker_in_a_bundle(tiny_bundle, tmp_path):
    out = str(tmp_path / "b")
    shutil.copytree(tiny_bundle[0], out)
    tok_onnx, cam_onnx = str(tmp_path / "speech_tokenizer_v2.onnx"), str(tmp_path / "campplus.onnx")
    tok_fn, cam_fn = standin_tokenizer(tok_onnx), standin_campplus(cam_onnx)
    x = signal(44100, 2.0, seed=7)
    wav = str(tmp_path / "prompt.wav")
    write_pcm(wav, x, 44100, 16)
    text = "Hello there, this is my voice."
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export", "add_speaker.py"), "--bundle", out,
                        "--name", "alice", "--wav", wav, "--text", text, "--tokenizer-onnx", tok_onnx,
                        "--campplus-onnx", cam_onnx], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert bundle.verify_bundle(out) == []
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    sp = speakers.load(os.path.join(out, m["speakers"]["alice"]))
    assert sp.source == "recording" and sp.name == "alice"
    # adding a voice never moves the default; the file is readable by the service user
    assert m["default_speaker"] == "zero_shot_0"
    assert os.stat(os.path.join(out, m["speakers"]["alice"])).st_mode & 0o777 == 0o644
    # expected values from the same front ends (checked against references above) and the stand-in formulas
    a16 = frontend.load_audio(wav, 16000)
    a24 = frontend.load_audio(wav, 24000)
    tokens = tok_fn(frontend.whisper_log_mel(a16).numpy())
    mel = frontend.prompt_mel(a24, MEL).numpy()
    L = min(mel.shape[0] // 2, tokens.size)
    assert L >= 45 and sp.prompt_speech_tokens.tolist() == tokens[:L].tolist()
    np.testing.assert_allclose(sp.prompt_mel.numpy(), mel[: 2 * L], atol=1e-6)
    fb = frontend.kaldi_fbank(a16).numpy()
    np.testing.assert_allclose(sp.embedding.numpy(), cam_fn(fb - fb.mean(0)), rtol=1e-4, atol=1e-4)
    tok = frontend.text_tokenizer(os.path.join(out, "tokenizer"))
    assert sp.prompt_text.tolist() == frontend.encode_text(tok, text)
    # the new speaker works with the bundle's flow
    mod = bundle.load_model(out)
    with torch.no_grad():
        mel_out = mod.flow_inference(torch.tensor([[1, 2, 3, 4, 5]]), sp.prompt_speech_tokens.unsqueeze(0),
                                     sp.prompt_mel.unsqueeze(0), sp.embedding.unsqueeze(0), False, True)
    assert mel_out.shape == (1, 80, 10)
    # adding the same name again needs --replace
    again = [sys.executable, os.path.join(REPO, "tools", "export", "add_speaker.py"), "--bundle", out, "--name", "alice",
             "--wav", wav, "--text", "x", "--tokenizer-onnx", tok_onnx, "--campplus-onnx", cam_onnx]
    r = subprocess.run(again, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "already in the bundle" in r.stderr
    r = subprocess.run(again + ["--replace"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert bundle.verify_bundle(out) == []
    with open(os.path.join(out, "manifest.json")) as f:
        m = json.load(f)
    assert len(m["speakers"]) == 4 and m["default_speaker"] == "zero_shot_0"
    base = [sys.executable, os.path.join(REPO, "tools", "export", "add_speaker.py"), "--bundle", out]
    r = subprocess.run(base + ["--default", "alice"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "default voice 'alice'" in r.stderr, r.stderr
    r = subprocess.run(base + ["--default", "nobody"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "not one of the bundle's voices" in r.stderr
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["default_speaker"] == "alice" and bundle.verify_bundle(out) == []
