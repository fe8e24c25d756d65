"""Python reference for the C CosyVoice2 engine's parity tests (driven by tests/unit/check_cosyvoice2.c).

    engine_ref.py <bundle dir> <random model dir> <request.json> <out dir>

The request names speakers of the bundle and gives token ids; this script computes, independently of
the C code:

* ``llm``: greedy (top-k 1) decode of the exporter's **eager** Qwen2LM (built from the model directory's
  llm.pt) with the prompt layout of docs/cosyvoice2.md §2.4/§3.3 and the lengths/stop rules of §3.4/§3.5
  -> ``llm_<name>.i32``;
* ``t2w``: buffered token2wav with the **eager** flow and HiFT modules, HiFT noise all zeros, optional
  speed by ``F.interpolate(linear, align_corners=False)`` (§6.2) -> ``t2w_<name>.f32``;
* ``stream``: the reference streaming algorithm of §6.3 (hop schedule, lookahead, HiFT cache, Hamming
  cross-fade, final full-attention chunk) written here in Python over the bundle's model.ts, HiFT noise
  all zeros -> ``stream_<name>.f32`` (concatenated) and ``stream_<name>.json`` (chunk lengths).
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "export"))

from cosyvoice2 import bundle, config, load  # noqa: E402

EOS, STOP = 6561, (6561, 6562, 6563)


def eager_modules(model_dir):
    cfg = config.load_model_dir(model_dir)
    states = {
        "llm": load.llm_module_state(load.read_state_dict(os.path.join(model_dir, "llm.pt")), cfg),
        "flow": load.flow_module_state(load.read_state_dict(os.path.join(model_dir, "flow.pt")), cfg),
        "hift": load.hift_module_state(load.read_state_dict(os.path.join(model_dir, "hift.pt")), cfg),
    }
    return bundle.build_modules(cfg, states)


def speaker(bundle_dir, manifest, name):
    base, xl = name, False
    if name.endswith("/cross-lingual"):
        base, xl = name[: -len("/cross-lingual")], True
    with safe_open(os.path.join(bundle_dir, manifest["speakers"][base]), "pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    return {
        "prompt_text": t["prompt_text"].long().reshape(1, -1),
        "prompt_tokens": t["prompt_speech_tokens"].long().reshape(1, -1),
        "prompt_mel": t["prompt_mel"].float().reshape(1, -1, t["prompt_mel"].shape[-1]),
        "embedding": t["embedding"].float().reshape(1, -1),
        "sft": t["prompt_speech_tokens"].numel() == 0,
        "xl": xl,
    }


def greedy_llm(llm, spk, text_ids, instruct_ids):
    text = torch.tensor([text_ids], dtype=torch.long)
    empty = torch.zeros(1, 0, dtype=torch.long)
    if instruct_ids:  # instruct2: instruction as prompt text, no prompt speech
        ptext, pspeech = torch.tensor([instruct_ids], dtype=torch.long), empty
    elif spk["sft"] or spk["xl"]:  # SFT / cross-lingual: [sos, text, task_id]
        ptext, pspeech = empty, empty
    else:  # zero-shot: all four parts
        ptext, pspeech = spk["prompt_text"], spk["prompt_tokens"]
    n = len(text_ids)
    min_len, max_len = int(n * 2), int(n * 20)
    full = torch.cat([ptext, text], dim=1)
    k, v = llm.new_cache(full.shape[1] + pspeech.shape[1] + 2 + max_len, 1)
    out = []
    with torch.no_grad():
        logp = llm.prefill(full, pspeech, k, v)
        pos = full.shape[1] + pspeech.shape[1] + 2
        for i in range(max_len):
            lp = logp[0].clone()
            if i < min_len:
                lp[EOS] = -float("inf")
            tok = int(torch.argmax(lp))
            if tok in STOP:
                break
            out.append(tok)
            if i + 1 == max_len:
                break
            logp = llm.decode_one(torch.tensor([[tok]]), pos, k, v)
            pos += 1
    return out


def zeros_noise(frames):
    return torch.zeros(1, frames * 480, 9)


def token2wav_eager(flow, hift, spk, tokens, speed):
    tok = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        mel = flow.inference(tok, spk["prompt_tokens"], spk["prompt_mel"], spk["embedding"], False, True)
        if speed != 1.0:
            mel = F.interpolate(mel, size=int(mel.shape[2] / speed), mode="linear")
        wav, _ = hift.inference(mel, torch.zeros(1, 1, 0), zeros_noise(mel.shape[2]))
    return wav[0].numpy().astype(np.float32)


def stream_ref(m, spk, tokens):
    """docs/cosyvoice2.md §6.3 on the bundle's model.ts: returns the emitted chunks."""
    tok = torch.tensor([tokens], dtype=torch.long)
    ptok, pfeat, emb = spk["prompt_tokens"], spk["prompt_mel"], spk["embedding"]
    P = ptok.shape[1]
    pad = int(math.ceil(P / 25) * 25 - P)
    hop_len, offset, first = 25, 0, True
    cache = None  # (mel (1,80,8), source (1,1,3840), speech (1,3840))
    chunks = []

    def vocode(mel, finalize):
        nonlocal cache
        if cache is not None:
            mel = torch.cat([cache[0], mel], dim=2)
            cs = cache[1]
        else:
            cs = torch.zeros(1, 1, 0)
        speech, source = m.hift_inference_noise(mel, cs, zeros_noise(mel.shape[2]))
        if cache is not None:
            speech = m.hift_fade_in_out(speech, cache[2])
        if not finalize:
            cache = (mel[:, :, -8:], source[:, :, -3840:], speech[:, -3840:])
            speech = speech[:, :-3840]
        chunks.append(speech[0].numpy().astype(np.float32))

    n = len(tokens)
    with torch.no_grad():
        while True:
            hop = hop_len + (pad if first else 0)
            if n - offset < hop + 3:
                break
            mel = m.flow_inference(tok[:, : offset + hop + 3], ptok, pfeat, emb, True, False)[:, :, 2 * offset:]
            vocode(mel, False)
            offset += hop
            hop_len = min(100, hop_len * 2)
            first = False
        mel = m.flow_inference(tok, ptok, pfeat, emb, False, True)[:, :, 2 * offset:]
        vocode(mel, True)
    return chunks


def main():
    bundle_dir, model_dir, req_path, out = sys.argv[1:5]
    torch._C._set_graph_executor_optimize(False)
    torch.set_num_threads(1)
    with open(req_path) as f:
        req = json.load(f)
    with open(os.path.join(bundle_dir, "manifest.json")) as f:
        manifest = json.load(f)
    llm, flow, hift = eager_modules(model_dir)
    for item in req.get("llm", []):
        spk = speaker(bundle_dir, manifest, item["speaker"])
        toks = greedy_llm(llm, spk, item["text_ids"], item.get("instruct_ids") or [])
        np.asarray(toks, dtype=np.int32).tofile(os.path.join(out, f"llm_{item['name']}.i32"))
    for item in req.get("t2w", []):
        spk = speaker(bundle_dir, manifest, item["speaker"])
        wav = token2wav_eager(flow, hift, spk, item["tokens"], float(item.get("speed", 1.0)))
        wav.tofile(os.path.join(out, f"t2w_{item['name']}.f32"))
    if req.get("stream"):
        m = bundle.load_model(bundle_dir)
        for item in req["stream"]:
            spk = speaker(bundle_dir, manifest, item["speaker"])
            chunks = stream_ref(m, spk, item["tokens"])
            np.concatenate(chunks).tofile(os.path.join(out, f"stream_{item['name']}.f32"))
            with open(os.path.join(out, f"stream_{item['name']}.json"), "w") as f:
                json.dump([int(c.shape[0]) for c in chunks], f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
