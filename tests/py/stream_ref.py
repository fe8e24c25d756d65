"""Python references for engine/cosyvoice2/cv2_stream.c (docs/cosyvoice2.md §6.2/§6.3), run by check_cv2_stream.c
in the torch venv.

    $(tools/dev/torch-venv.sh) tests/py/stream_ref.py OUTDIR

Writes into OUTDIR:
  sched.txt            per line "P N : n_tokens,token_offset,finalize ..." — the chunk list of the reference's
                       CosyVoice2Model.tts() streaming loop (transcribed below, per-request hop reset), with
                       tokens arriving in random bursts between 100 ms polls (the C side feeds them one by one)
  hamming_np.f64       numpy.hamming(7680);   hamming_torch.f64: torch.hamming_window(7680, periodic=False)
  fade_{in,prev,out}.f32  HiFTGenerator.fade_in_out (tools/export/cosyvoice2/hift.py) on random float32 speech
  speed.txt            per line "k T speed out_T"; speed_k_{in,out}.f32: F.interpolate(mel, size=int(T/speed),
                       mode='linear') on random (1, 80, T) mel
  hift.txt             per line "k P N"; hift_k_{mel,out}.f32: the reference token2wav HiFT cache / cross-fade
                       bookkeeping over a whole streamed utterance with a fake, elementwise "HiFT" (fake_hift
                       below), all emitted chunks concatenated
Raw files are little-endian, C order.
"""

import math
import os
import random
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "export"))
from cosyvoice2.hift import HiFTGenerator  # noqa: E402

TOKEN_HOP, MAX_HOP, SCALE, LOOKAHEAD = 25, 100, 2, 3
MEL_CACHE, SOURCE_CACHE, SPF = 8, 3840, 480


def reference_schedule(P, N, rng):
    """The HEAD streaming loop of CosyVoice2Model.tts() with token_hop_len reset per request.
    Tokens arrive in random bursts; one loop iteration per poll. Returns [(n_tokens, offset, finalize)]."""
    token_hop_len = TOKEN_HOP
    out = []
    have, llm_end = 0, False
    token_offset = 0
    prompt_token_pad = int(np.ceil(P / token_hop_len) * token_hop_len - P)
    while True:
        # LLM thread progress between polls
        if not llm_end:
            have = min(N, have + rng.choice([0, 1, 3, 7, 30, 120]))
            llm_end = have == N and rng.random() < 0.7
        this_token_hop_len = token_hop_len + prompt_token_pad if token_offset == 0 else token_hop_len
        if have - token_offset >= this_token_hop_len + LOOKAHEAD:
            out.append((token_offset + this_token_hop_len + LOOKAHEAD, token_offset, 0))
            token_offset += this_token_hop_len
            token_hop_len = min(MAX_HOP, token_hop_len * SCALE)
        if llm_end and have - token_offset < this_token_hop_len + LOOKAHEAD:
            break
    out.append((N, token_offset, 1))
    return out


def fake_hift(mel, cache_source):
    """Elementwise stand-in for HiFT (1,C,T) -> speech (1,480T), source (1,1,480T); float32 ops only."""
    T = mel.shape[2]
    idx = torch.arange(SPF * T) // SPF
    frac = (torch.arange(SPF * T) % SPF).to(torch.float32) / 480.0
    source = mel[0, 2, idx].clone().reshape(1, 1, -1)
    if cache_source.shape[2] != 0:
        source[:, :, : cache_source.shape[2]] = cache_source
    speech = mel[0, 0, idx] * 0.25 + mel[0, 1, idx] * frac + source[0, 0] * 0.1
    return speech.reshape(1, -1), source


def reference_token2wav_stream(mel_full, P, N, window_module):
    """token2wav's HiFT part for every chunk of the (non-random) schedule; flow output = slices of mel_full."""
    sched = reference_schedule(P, N, random.Random(0))
    cache = None
    chunks = []
    for n_tokens, token_offset, finalize in sched:
        # the flow returns 2 * (tokens before the lookahead) frames; keep from 2 * token_offset
        n_out = n_tokens if finalize else n_tokens - LOOKAHEAD
        tts_mel = mel_full[:, :, 2 * token_offset: 2 * n_out]
        if cache is not None:
            tts_mel = torch.concat([cache["mel"], tts_mel], dim=2)
            cache_source = cache["source"]
        else:
            cache_source = torch.zeros(1, 1, 0)
        speech, source = fake_hift(tts_mel, cache_source)
        if cache is not None:
            speech = HiFTGenerator.fade_in_out(window_module, speech, cache["speech"])
        if not finalize:
            cache = {"mel": tts_mel[:, :, -MEL_CACHE:], "source": source[:, :, -SOURCE_CACHE:],
                     "speech": speech[:, -SOURCE_CACHE:]}
            speech = speech[:, :-SOURCE_CACHE]
        chunks.append(speech)
    return torch.cat(chunks, dim=1)


def save(path, t):
    np.ascontiguousarray(t.detach().cpu().numpy()).tofile(path)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(5)
    lines = []
    for P in [0, 1, 13, 24, 25, 26, 49, 50, 51, 125, 150, 201]:
        for N in [0, 1, 2, 27, 28, 29, 53, 60, 77, 78, 103, 180, 181, 300, 777, 1000]:
            for rep in range(3):
                s = reference_schedule(P, N, random.Random(P * 100003 + N * 7 + rep))
                lines.append(f"{P} {N} : " + " ".join(f"{a},{b},{c}" for a, b, c in s))
    with open(os.path.join(outdir, "sched.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")

    save(os.path.join(outdir, "hamming_np.f64"), torch.from_numpy(np.hamming(2 * SOURCE_CACHE)))
    wmod = types.SimpleNamespace(speech_window=torch.hamming_window(2 * SOURCE_CACHE, periodic=False,
                                                                    dtype=torch.float64))
    save(os.path.join(outdir, "hamming_torch.f64"), wmod.speech_window)

    fin = torch.randn(1, 10000) * 0.3
    prev = torch.randn(1, SOURCE_CACHE) * 0.3
    out = HiFTGenerator.fade_in_out(wmod, fin, prev)
    save(os.path.join(outdir, "fade_in.f32"), fin)
    save(os.path.join(outdir, "fade_prev.f32"), prev)
    save(os.path.join(outdir, "fade_out.f32"), out)

    sp = []
    cases = [(1, 1.0), (7, 1.5), (100, 1.0), (100, 0.5), (100, 2.0), (257, 1.1), (300, 0.8), (301, 1.3),
             (500, 0.7), (999, 1.7), (3, 0.25)]
    for k, (T, speed) in enumerate(cases):
        mel = torch.randn(1, 80, T) * 3
        ot = int(mel.shape[2] / speed)
        y = F.interpolate(mel, size=ot, mode="linear")
        save(os.path.join(outdir, f"speed_{k}_in.f32"), mel)
        save(os.path.join(outdir, f"speed_{k}_out.f32"), y)
        sp.append(f"{k} {T} {speed.hex()} {ot}")
    with open(os.path.join(outdir, "speed.txt"), "w") as f:
        f.write("\n".join(sp) + "\n")

    hl = []
    for k, (P, N) in enumerate([(0, 30), (13, 200), (25, 31), (60, 400), (7, 5)]):
        mel_full = torch.randn(1, 80, 2 * N)
        wav = reference_token2wav_stream(mel_full, P, N, wmod)
        assert wav.shape[1] == 2 * N * SPF
        save(os.path.join(outdir, f"hift_{k}_mel.f32"), mel_full)
        save(os.path.join(outdir, f"hift_{k}_out.f32"), wav)
        hl.append(f"{k} {P} {N}")
    with open(os.path.join(outdir, "hift.txt"), "w") as f:
        f.write("\n".join(hl) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
