"""Saved speakers of a bundle: one safetensors file per speaker (docs/cosyvoice2.md §7.5).

DESIGN: a speaker is exactly the cached zero-shot model input of the reference (``spk2info`` entry)
minus what is per request: prompt text ids, prompt speech tokens, prompt mel and the 192-d embedding.
One small file per speaker (not one big pickle) so the daemon can list, load and add speakers without a
Python unpickler, and the format is fixed here once:

======================  =======  ===========  =========================================================
tensor                  dtype    shape        meaning
======================  =======  ===========  =========================================================
``prompt_text``         int32    [Lt]         prompt transcript token ids (BlankEN BPE; may be empty)
``prompt_speech_tokens``  int32  [L]          prompt speech tokens (25 Hz; may be empty for SFT voices)
``prompt_mel``          float32  [2L, 80]     prompt mel (50 Hz, ln, feat_extractor of §7.4)
``embedding``           float32  [192]        campplus speaker vector (not normalized; the flow does it)
======================  =======  ===========  =========================================================

Metadata (string map): ``format`` = ``cosyvoiced-speaker``, ``format_version`` = ``1``, ``name`` (the
speaker id as given, any UTF-8), ``source`` (``random``, ``spk2info``, ``recording``) and ``note``.
The token/mel alignment of §7.5 (``L = min(mel_frames // 2, tokens)``) is applied on write, so
``prompt_mel`` always has exactly 2x the token count.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

FORMAT = "cosyvoiced-speaker"
FORMAT_VERSION = "1"


class SpeakerError(ValueError):
    pass


@dataclass
class Speaker:
    name: str
    prompt_text: Tensor  # int32 [Lt]
    prompt_speech_tokens: Tensor  # int32 [L]
    prompt_mel: Tensor  # float32 [2L, mel_bins]
    embedding: Tensor  # float32 [spk_dim]
    source: str = "unknown"
    note: str = ""


def align(tokens: Tensor, mel: Tensor, ratio: int = 2) -> tuple:
    """§7.5: L = min(mel_frames // ratio, n_tokens); truncate tokens to L and mel to ratio*L."""
    n = min(mel.shape[0] // ratio, tokens.shape[0])
    return tokens[:n], mel[: ratio * n]


def normalize(sp: Speaker, mel_bins: int = 80, spk_dim: int = 192, ratio: int = 2) -> Speaker:
    def flat(t: Tensor, what: str) -> Tensor:
        t = torch.as_tensor(t).detach().cpu()
        if t.dim() == 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 1:
            raise SpeakerError(f"speaker {sp.name!r}: {what} has shape {list(t.shape)}, expected [n] or [1, n]")
        return t

    text = flat(sp.prompt_text, "prompt_text").to(torch.int32)
    tok = flat(sp.prompt_speech_tokens, "prompt_speech_tokens").to(torch.int32)
    mel = torch.as_tensor(sp.prompt_mel).detach().cpu().to(torch.float32)
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.numel() == 0:
        mel = mel.reshape(0, mel_bins)
    if mel.dim() != 2 or mel.shape[1] != mel_bins:
        raise SpeakerError(f"speaker {sp.name!r}: prompt_mel has shape {list(mel.shape)}, expected [frames, {mel_bins}]")
    emb = flat(sp.embedding, "embedding").to(torch.float32)
    if emb.shape[0] != spk_dim:
        raise SpeakerError(f"speaker {sp.name!r}: embedding has {emb.shape[0]} values, expected {spk_dim}")
    if not torch.isfinite(emb).all() or not torch.isfinite(mel).all():
        raise SpeakerError(f"speaker {sp.name!r}: non-finite values")
    if tok.numel() and (int(tok.min()) < 0 or int(tok.max()) >= 6561):
        raise SpeakerError(f"speaker {sp.name!r}: prompt speech tokens outside [0, 6561)")
    tok, mel = align(tok, mel, ratio)
    return Speaker(sp.name, text.contiguous(), tok.contiguous(), mel.contiguous(), emb.contiguous(), sp.source, sp.note)


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def file_stem(name: str, taken: set) -> str:
    """An ASCII file name for a speaker id (the real id is in the metadata and the manifest)."""
    stem = name if _SAFE.match(name) and not name.endswith(".") else ""
    if not stem:
        stem = "spk" + "".join(c if c.isascii() and c.isalnum() else "" for c in name)[:24]
        if stem == "spk":
            stem = "spk0"
    base, i = stem, 1
    while stem.lower() in taken:
        stem = f"{base}-{i}"
        i += 1
    taken.add(stem.lower())
    return stem


def save(sp: Speaker, path: str) -> None:
    save_file(
        {
            "prompt_text": sp.prompt_text,
            "prompt_speech_tokens": sp.prompt_speech_tokens,
            "prompt_mel": sp.prompt_mel,
            "embedding": sp.embedding,
        },
        path,
        metadata={"format": FORMAT, "format_version": FORMAT_VERSION, "name": sp.name, "source": sp.source, "note": sp.note},
    )


def pick_default(speakers: List[Speaker]) -> Optional[str]:
    """The default voice of a new bundle: the first with a full prompt (zero-shot), else the first."""
    for sp in speakers:
        if torch.as_tensor(sp.prompt_speech_tokens).numel() > 0:
            return sp.name
    return speakers[0].name if speakers else None


def load(path: str) -> Speaker:
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise SpeakerError(f"{path}: not a {FORMAT} file")
        t = {k: f.get_tensor(k) for k in f.keys()}
    for k in ("prompt_text", "prompt_speech_tokens", "prompt_mel", "embedding"):
        if k not in t:
            raise SpeakerError(f"{path}: missing tensor {k}")
    return Speaker(meta.get("name", ""), t["prompt_text"], t["prompt_speech_tokens"], t["prompt_mel"], t["embedding"],
                   meta.get("source", ""), meta.get("note", ""))


def random_speakers(n: int, seed: int = 1234, text_vocab: int = 151643, mel_bins: int = 80,
                    spk_dim: int = 192) -> List[Speaker]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        lt = int(torch.randint(3, 12, (1,), generator=g))
        L = int(torch.randint(10, 40, (1,), generator=g))
        mel = torch.randn(2 * L, mel_bins, generator=g) * 1.5 - 6.0
        out.append(Speaker(
            name=f"random{i}",
            prompt_text=torch.randint(0, text_vocab, (lt,), generator=g, dtype=torch.int64).to(torch.int32),
            prompt_speech_tokens=torch.randint(0, 6561, (L,), generator=g, dtype=torch.int64).to(torch.int32),
            prompt_mel=mel,
            embedding=torch.randn(spk_dim, generator=g),
            source="random",
            note="random values for tests (random-weight bundle)",
        ))
    return out


def _get(entry: dict, *names: str) -> Optional[Tensor]:
    for n in names:
        if n in entry and isinstance(entry[n], Tensor):
            return entry[n]
    return None


def from_spk2info(path: str, mel_bins: int = 80, spk_dim: int = 192) -> List[Speaker]:
    """Import the entries of an official ``spk2info.pt`` (zero-shot entries and SFT embedding-only ones)."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SpeakerError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise SpeakerError(f"{path}: holds a {type(d).__name__}, expected a dict spk_id -> dict of tensors")
    out = []
    for name, entry in d.items():
        if not isinstance(entry, dict):
            raise SpeakerError(f"{path}: entry {name!r} is a {type(entry).__name__}, expected a dict")
        emb = _get(entry, "flow_embedding", "embedding", "llm_embedding")
        if emb is None:
            raise SpeakerError(f"{path}: entry {name!r} has no flow_embedding/embedding")
        tok = _get(entry, "flow_prompt_speech_token", "llm_prompt_speech_token", "speech_token")
        llm_tok = _get(entry, "llm_prompt_speech_token")
        note = ""
        if tok is not None and llm_tok is not None and not torch.equal(tok.reshape(-1), llm_tok.reshape(-1)):
            note = "llm and flow prompt tokens differ; the flow tokens were kept"
        mel = _get(entry, "prompt_speech_feat")
        text = _get(entry, "prompt_text")
        if tok is None or mel is None:  # SFT voice: embedding only
            tok = torch.zeros(0, dtype=torch.int32)
            mel = torch.zeros(0, mel_bins)
            text = torch.zeros(0, dtype=torch.int32) if text is None else text
            note = note or "embedding only (SFT voice): no prompt text/tokens/mel"
        if text is None:
            text = torch.zeros(0, dtype=torch.int32)
        out.append(normalize(Speaker(str(name), text, tok, mel, emb, "spk2info", note), mel_bins, spk_dim))
    return out


def write_all(speakers: List[Speaker], out_dir: str, mel_bins: int = 80, spk_dim: int = 192) -> Dict[str, str]:
    """Write speakers under ``out_dir``; returns name -> file name (relative to out_dir)."""
    os.makedirs(out_dir, exist_ok=True)
    taken: set = set()
    index: Dict[str, str] = {}
    for sp in speakers:
        if sp.name in index:
            raise SpeakerError(f"duplicate speaker name {sp.name!r}")
        sp = normalize(sp, mel_bins, spk_dim)
        fn = file_stem(sp.name, taken) + ".safetensors"
        save(sp, os.path.join(out_dir, fn))
        index[sp.name] = fn
    return index
