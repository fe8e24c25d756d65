#!/usr/bin/env python3
"""tools/parity/tok_parity.py — expected token ids from Hugging Face `tokenizers`.

Builds the CosyVoice2 text tokenizer from the same files the C tokenizer reads
(vocab.json, merges.txt, special_tokens.json) and writes, for every line of a
corpus, the ids HF gives. The C test (tests/unit/check_tokenizer.c) compares.

Why this equals `AutoTokenizer.from_pretrained(<dir>/CosyVoice-BlankEN)` plus
CosyVoice2Tokenizer's `add_special_tokens` (docs/cosyvoice2.md §2.2): that folder has no
tokenizer.json, so transformers builds the fast tokenizer by converting the
slow Qwen2Tokenizer with `convert_slow_tokenizer.Qwen2Converter`, which is
exactly
  Tokenizer(BPE(vocab, merges, dropout=None, unk_token=None,
                continuing_subword_prefix="", end_of_word_suffix="",
                fuse_unk=False, byte_fallback=False))
  normalizer     = NFC()
  pre_tokenizer  = Sequence([Split(Regex(QWEN2_PATTERN), "isolated"),
                             ByteLevel(add_prefix_space=False, use_regex=False)])
  decoder        = ByteLevel();  post_processor = ByteLevel(trim_offsets=False)
(no `ignore_merges`, so BlankEN's missing merges really change the ids). The
slow tokenizer reads merges.txt skipping a "#version" header and empty lines,
as BPE.from_file does. Qwen2 declares <|endoftext|>, <|im_start|>, <|im_end|>
as special AddedTokens (normalized=False, no lstrip/rstrip), and
add_special_tokens() adds the rest the same way (special tokens are never
normalized), in the order of special_tokens.json ids; the script asserts that
each gets the id special_tokens.json gives it. `encode` adds no BOS/EOS: the
ByteLevel post-processor only touches offsets.

Corpus format: one JSON string per line (so \\n, \\r, \\t and NUL can be in
texts). Output: one JSON object per line {"text": ..., "ids": [...], "decoded": ...}
(decoded = HF's decode of those ids, special tokens kept).

  tok_parity.py --model-dir DIR --corpus FILE --out FILE
  tok_parity.py --model-dir DIR --sweep --out FILE   (every code point, in
      probes that reveal its pre-tokenizer class and its NFC; a slow check
      of the Unicode tables, not run by `make check` unless asked)
"""
import argparse
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def build(model_dir):
    bpe = models.BPE.from_file(
        os.path.join(model_dir, "vocab.json"),
        os.path.join(model_dir, "merges.txt"),
        dropout=None,
        unk_token=None,
        continuing_subword_prefix="",
        end_of_word_suffix="",
        fuse_unk=False,
        byte_fallback=False,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    with open(os.path.join(model_dir, "special_tokens.json"), encoding="utf-8") as f:
        specials = json.load(f)
    for content, want in sorted(specials.items(), key=lambda kv: kv[1]):
        tok.add_special_tokens([AddedToken(content, special=True, normalized=False, lstrip=False, rstrip=False)])
        got = tok.token_to_id(content)
        if got != want:
            sys.exit(f"tok_parity: {content!r} got id {got}, special_tokens.json says {want}")
    return tok


def sweep_texts():
    """Probes for every scalar value c, grouped 64 code points per line.

    "a"+c (letter?), c+"a" (prefix or digit?), "!"+c (punctuation run?),
    c+c+"!" (whitespace run?), "'"+c+"x" (contraction fold?), and the NFC of
    c after a base letter and before a mark. Newlines separate the probes so
    that one code point's class cannot hide another's."""
    lines, cur = [], []
    for cp in range(0, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cur.append("a" + c + "\n" + c + "a\n!" + c + "\n" + c + c + "!\n'" + c + "x\ne" + c + "\u0301\n")
        if len(cur) == 64:
            lines.append("".join(cur))
            cur = []
    if cur:
        lines.append("".join(cur))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--corpus")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tok = build(a.model_dir)
    if a.sweep:
        texts = sweep_texts()
    else:
        with open(a.corpus, encoding="utf-8") as f:
            texts = [json.loads(line) for line in f if line.strip()]
    encs = tok.encode_batch(texts, add_special_tokens=True)
    tmp = a.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        for text, enc in zip(texts, encs):
            dec = tok.decode(enc.ids, skip_special_tokens=False)
            f.write(json.dumps({"text": text, "ids": enc.ids, "decoded": dec}, ensure_ascii=True) + "\n")
    os.replace(tmp, a.out)
    print(f"tok_parity: tokenizers {tokenizers.__version__}, {len(texts)} lines -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
