#!/usr/bin/env python3
"""Add a speaker to a cosyvoiced bundle from a reference recording and its transcript (docs/cosyvoice2.md §7).

    python tools/export/add_speaker.py --bundle DIR --name NAME --wav prompt.wav --text "what is said in it" \
        --model-dir <CosyVoice2-0.5B dir>        # for speech_tokenizer_v2.onnx and campplus.onnx
    python tools/export/add_speaker.py --bundle DIR --spk2info spk2info.pt   # import an official spk2info.pt
    python tools/export/add_speaker.py --bundle DIR --default NAME           # make NAME the default voice

The recording (WAV of any common encoding, FLAC, OGG, MP3 — what libsndfile reads; >= 16 kHz, <= 30 s; warnings
for silence, clipping, under 3 s, and digits or symbols in the transcript, which is used verbatim) gives the prompt speech tokens (speech_tokenizer_v2.onnx on
whisper log-mel), the 192-d speaker embedding (campplus.onnx on Kaldi fbank) and the prompt mel; the
transcript is tokenized raw with the bundle's tokenizer files. --tokenizer-onnx/--campplus-onnx name the
ONNX files directly instead of --model-dir. The manifest's speaker list and hashes are updated.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cosyvoice2 import bundle, config, frontend, speakers  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Add a speaker to a cosyvoiced bundle.")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--name")
    ap.add_argument("--wav")
    ap.add_argument("--text")
    ap.add_argument("--model-dir")
    ap.add_argument("--tokenizer-onnx")
    ap.add_argument("--campplus-onnx")
    ap.add_argument("--spk2info")
    ap.add_argument("--replace", action="store_true", help="replace a speaker of the same name")
    ap.add_argument("--default", metavar="NAME",
                    help="make NAME the bundle's default voice (adding a voice never changes the default otherwise)")
    a = ap.parse_args(argv)
    try:
        if a.spk2info:
            new = speakers.from_spk2info(a.spk2info)
        elif a.default and not (a.name or a.wav or a.text):
            new = []  # only change the default voice
        else:
            if not (a.name and a.wav and a.text is not None):
                ap.error("--name, --wav and --text are required (or --spk2info)")
            tok_onnx = a.tokenizer_onnx or (a.model_dir and os.path.join(a.model_dir, "speech_tokenizer_v2.onnx"))
            cam_onnx = a.campplus_onnx or (a.model_dir and os.path.join(a.model_dir, "campplus.onnx"))
            if not tok_onnx or not cam_onnx:
                ap.error("give --model-dir, or --tokenizer-onnx and --campplus-onnx")
            import json

            with open(os.path.join(a.bundle, bundle.MANIFEST), encoding="utf-8") as f:
                mel = config.MelConfig(**json.load(f)["mel"])
            new = [frontend.make_speaker(a.name, a.wav, a.text, tok_onnx, cam_onnx,
                                         os.path.join(a.bundle, "tokenizer"), mel,
                                         warn=lambda w: print(f"add_speaker: warning: {w}", file=sys.stderr))]
        m = bundle.add_speakers(a.bundle, new, a.replace, a.default)
    except (bundle.ExportError, frontend.FrontendError, speakers.SpeakerError, OSError, KeyError) as e:
        print(f"add_speaker: error: {e}", file=sys.stderr)
        return 1
    if a.default:
        print(f"add_speaker: default voice {m['default_speaker']!r}", file=sys.stderr)
    for sp in new:
        print(f"add_speaker: {sp.name} -> {m['speakers'][sp.name]} ({sp.prompt_speech_tokens.numel()} tokens)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
