#!/usr/bin/env python3
"""tools/parity/frontend_parity.py — the reference text frontend, for the C parity test.

Runs CosyVoice2's CosyVoiceFrontEnd.text_normalize(text, split=True,
text_frontend=True) as the reference does it with wetext as its TN engine
(docs/text-frontend.md), on every line of a corpus, and writes the sentences it gives
and their token ids. tests/unit/check_frontend.c compares with frontend_run().

The reference pieces are reproduced here verbatim from CosyVoice's
cosyvoice/cli/frontend.py and cosyvoice/utils/frontend_utils.py (HEAD):
contains_chinese, replace_blank, replace_corner_mark, remove_bracket,
spell_out_number, split_paragraph, is_only_punctuation; TN is the installed
`wetext` package (Normalizer(remove_erhua=False) for zh, Normalizer() for en,
both lang="auto"), numbers are `inflect`, tokens are tools/tok_parity.build()
(= the CosyVoice2 tokenizer). All pinned in tools/dev/requirements-test.txt.

Corpus: one JSON string per line. Output: one JSON object per line
  {"text": ..., "sentences": [...], "ids": [[...], ...], "lang_zh": bool}
A corpus line on which the reference raises is an error of the corpus (exit 1).

  frontend_parity.py --model-dir DIR --corpus FILE --out FILE [--no-tn] [--cache-dir DIR]

--cache-dir keeps the output under a key of everything it depends on (the
corpus, this script, tok_parity.py, the pinned requirements, the tokenizer
files, --no-tn), so a re-run with the same inputs copies it instead of
spending the ~30 s the grammars take.
"""
import argparse
import hashlib
import json
import shutil
import os
import re
import sys

import inflect
import regex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tok_parity  # noqa: E402

chinese_char_pattern = re.compile(r"[\u4e00-\u9fff]+")


def contains_chinese(text):
    return bool(chinese_char_pattern.search(text))


def replace_corner_mark(text):
    text = text.replace("²", "平方")
    text = text.replace("³", "立方")
    return text


def remove_bracket(text):
    text = text.replace("（", "").replace("）", "")
    text = text.replace("【", "").replace("】", "")
    text = text.replace("`", "").replace("`", "")
    text = text.replace("——", " ")
    return text


def spell_out_number(text, inflect_parser):
    new_text = []
    st = None
    for i, c in enumerate(text):
        if not c.isdigit():
            if st is not None:
                num_str = inflect_parser.number_to_words(text[st:i])
                new_text.append(num_str)
                st = None
            new_text.append(c)
        else:
            if st is None:
                st = i
    if st is not None and st < len(text):
        num_str = inflect_parser.number_to_words(text[st:])
        new_text.append(num_str)
    return "".join(new_text)


def split_paragraph(text, tokenize, lang="zh", token_max_n=80, token_min_n=60, merge_len=20, comma_split=False):
    def calc_utt_length(_text):
        if lang == "zh":
            return len(_text)
        else:
            return len(tokenize(_text))

    def should_merge(_text):
        if lang == "zh":
            return len(_text) < merge_len
        else:
            return len(tokenize(_text)) < merge_len

    if lang == "zh":
        pounc = ["。", "？", "！", "；", "：", "、", ".", "?", "!", ";"]
    else:
        pounc = [".", "?", "!", ";", ":"]
    if comma_split:
        pounc.extend(["，", ","])

    if text[-1] not in pounc:
        if lang == "zh":
            text += "。"
        else:
            text += "."

    st = 0
    utts = []
    for i, c in enumerate(text):
        if c in pounc:
            if len(text[st:i]) > 0:
                utts.append(text[st:i] + c)
            if i + 1 < len(text) and text[i + 1] in ['"', "”"]:
                tmp = utts.pop(-1)
                utts.append(tmp + text[i + 1])
                st = i + 2
            else:
                st = i + 1

    final_utts = []
    cur_utt = ""
    for utt in utts:
        if calc_utt_length(cur_utt + utt) > token_max_n and calc_utt_length(cur_utt) > token_min_n:
            final_utts.append(cur_utt)
            cur_utt = ""
        cur_utt = cur_utt + utt
    if len(cur_utt) > 0:
        if should_merge(cur_utt) and len(final_utts) != 0:
            final_utts[-1] = final_utts[-1] + cur_utt
        else:
            final_utts.append(cur_utt)

    return final_utts


def replace_blank(text):
    out_str = []
    for i, c in enumerate(text):
        if c == " ":
            if (text[i + 1].isascii() and text[i + 1] != " ") and (text[i - 1].isascii() and text[i - 1] != " "):
                out_str.append(c)
        else:
            out_str.append(c)
    return "".join(out_str)


def is_only_punctuation(text):
    punctuation_pattern = r"^[\p{P}\p{S}]*$"
    return bool(regex.fullmatch(punctuation_pattern, text))


class Frontend:
    """CosyVoiceFrontEnd.text_normalize with the wetext engine (no ttsfrd)."""

    def __init__(self, tok, use_tn=True):
        self.tok = tok
        self.zh_tn_model = self.en_tn_model = None
        if use_tn:
            from wetext import Normalizer as WeTextNormalizer

            self.zh_tn_model = WeTextNormalizer(remove_erhua=False)
            self.en_tn_model = WeTextNormalizer()
        self.inflect_parser = inflect.engine()

    def encode(self, text):
        return self.tok.encode(text).ids

    def text_normalize(self, text, split=True, text_frontend=True):
        if "<|" in text and "|>" in text:
            text_frontend = False
        if text_frontend is False or text == "":
            return [text] if split is True else text
        text = text.strip()
        if contains_chinese(text):
            if self.zh_tn_model is not None:
                text = self.zh_tn_model.normalize(text)
            text = text.replace("\n", "")
            text = replace_blank(text)
            text = replace_corner_mark(text)
            text = text.replace(".", "。")
            text = text.replace(" - ", "，")
            text = remove_bracket(text)
            text = re.sub(r"[，,、]+$", "。", text)
            texts = list(split_paragraph(text, self.encode, "zh", token_max_n=80, token_min_n=60, merge_len=20,
                                         comma_split=False))
        else:
            if self.en_tn_model is not None:
                text = self.en_tn_model.normalize(text)
            text = spell_out_number(text, self.inflect_parser)
            texts = list(split_paragraph(text, self.encode, "en", token_max_n=80, token_min_n=60, merge_len=20,
                                         comma_split=False))
        texts = [i for i in texts if not is_only_punctuation(i)]
        return texts if split is True else text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-tn", action="store_true", help="no TN engine (the reference without wetext)")
    ap.add_argument("--cache-dir")
    a = ap.parse_args()
    cached = None
    if a.cache_dir:
        here = os.path.dirname(os.path.abspath(__file__))
        h = hashlib.sha256(b"no-tn" if a.no_tn else b"tn")
        for p in (a.corpus, __file__, os.path.join(here, "tok_parity.py"), os.path.join(here, "..", "dev", "requirements-test.txt"),
                  *(os.path.join(a.model_dir, f) for f in ("vocab.json", "merges.txt", "special_tokens.json"))):
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        os.makedirs(a.cache_dir, exist_ok=True)
        cached = os.path.join(a.cache_dir, h.hexdigest()[:24] + ".jsonl")
        if os.path.exists(cached):
            shutil.copyfile(cached, a.out)
            return 0
    fe = Frontend(tok_parity.build(a.model_dir), use_tn=not a.no_tn)
    bad = 0
    with open(a.corpus, encoding="utf-8") as fc, open(a.out, "w", encoding="utf-8") as fo:
        for lineno, line in enumerate(fc, 1):
            text = json.loads(line)
            try:
                sents = fe.text_normalize(text, split=True, text_frontend=True)
            except Exception as e:  # the reference itself fails: the corpus must not hold such lines
                print(f"frontend_parity: corpus line {lineno} {text!r}: reference raises {e!r}", file=sys.stderr)
                bad += 1
                continue
            rec = {"text": text, "sentences": sents, "ids": [fe.encode(s) for s in sents],
                   "lang_zh": contains_chinese(text.strip())}
            fo.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if bad:
        return 1
    if cached:
        shutil.copyfile(a.out, cached + ".part")
        os.replace(cached + ".part", cached)
    return 0


if __name__ == "__main__":
    sys.exit(main())
