#!/usr/bin/env python3
"""tools/parity/gen_frontend_corpus.py — the text-frontend parity corpus (seeded).

Writes tests/data/frontend_corpus.txt: one JSON string per line, >= 1,000
inputs rich in what TN and the frontend rules touch: numbers (integers,
decimals, negatives, long digit runs), dates, times, money, percentages,
phone numbers, units (incl. ² ³), ranges, fractions, scores, mixed zh/en,
brackets, dashes, quotes after sentence ends, trailing commas, long
paragraphs (splitting at 80/60/20), special-token markup and plain text.
Deterministic for a given --seed; the committed file is its output.

  gen_frontend_corpus.py [--seed 20260326] [--n 1200] [--out tests/data/frontend_corpus.txt]
"""
import argparse
import json
import random

ZH_WORDS = ["今天", "我们", "公司", "会议", "价格", "温度", "大约", "总共", "目前", "报告", "北京", "上海",
            "学生", "老师", "比赛", "项目", "预算", "增长", "下降", "用户", "手机", "电脑", "天气", "时间"]
ZH_TAIL = ["。", "！", "？", "，", "；", "：", "、", "", "…"]
EN_WORDS = ["the", "meeting", "price", "is", "about", "we", "paid", "on", "at", "total", "users", "growth",
            "report", "team", "score", "was", "call", "me", "room", "flight", "costs", "weighs", "runs"]
UNITS_ZH = ["kg", "km", "cm", "mm", "m²", "m³", "℃", "°C", "GB", "MB", "km/h", "ml", "L", "mg", "米", "公斤", "元"]
UNITS_EN = ["kg", "km", "cm", "mm", "lbs", "mph", "GB", "MB", "ml", "ft", "in", "oz", "%", "°F", "m²"]
CUR = ["¥", "$", "€", "£", "￥", "US$"]


def num(r):
    k = r.random()
    if k < 0.3:
        return str(r.randint(0, 99))
    if k < 0.55:
        return str(r.randint(100, 99999))
    if k < 0.7:
        return f"{r.randint(0, 999)}.{r.randint(0, 99)}"
    if k < 0.8:
        return f"-{r.randint(1, 500)}"
    if k < 0.88:
        return f"{r.randint(1, 999)},{r.randint(0, 999):03d}"
    if k < 0.95:
        return str(r.randint(10 ** 6, 10 ** 12))
    return "0" + str(r.randint(0, 999))


def date(r):
    y, m, d = r.randint(1900, 2099), r.randint(1, 12), r.randint(1, 28)
    return r.choice([f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{y}/{m}/{d}", f"{m}月{d}日", f"{y}年",
                     f"{y}.{m:02d}.{d:02d}", f"{d}/{m}/{y}"])


def time_(r):
    h, mi, s = r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
    return r.choice([f"{h}:{mi:02d}", f"{h}:{mi:02d}:{s:02d}", f"{h}点{mi}分", f"{h % 12 or 12}:{mi:02d}pm",
                     f"{h % 12 or 12}:{mi:02d} AM", f"{h}时"])


def money(r):
    v = r.choice([str(r.randint(1, 9999)), f"{r.randint(0, 999)}.{r.randint(0, 99):02d}"])
    return r.choice([f"{r.choice(CUR)}{v}", f"{v}元", f"{v}美元", f"{v} dollars", f"{v}块"])


def pct(r):
    return r.choice([f"{r.randint(0, 100)}%", f"{r.randint(0, 99)}.{r.randint(0, 9)}%", f"百分之{r.randint(1, 99)}",
                     f"-{r.randint(1, 30)}%"])


def phone(r):
    return r.choice([f"1{r.randint(3, 9)}{r.randint(0, 9)}{r.randint(10000000, 99999999)}",
                     f"0{r.randint(10, 999)}-{r.randint(1000000, 99999999)}",
                     f"+86 1{r.randint(30, 99)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
                     f"({r.randint(100, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}", "110", "12345"])


def unit(r, zh):
    return f"{num(r).lstrip('-')}{r.choice(['', ' '])}{r.choice(UNITS_ZH if zh else UNITS_EN)}"


def rng(r):
    a = r.randint(1, 100)
    return r.choice([f"{a}-{a + r.randint(1, 50)}", f"{a}~{a + r.randint(1, 50)}", f"{a}到{a + 9}",
                     f"{a}:{r.randint(0, 9)}", f"{r.randint(1, 9)}/{r.randint(2, 12)}", f"第{a}名"])


FIELDS = [num, date, time_, money, pct, phone, rng]


def zh_sentence(r):
    parts = []
    for _ in range(r.randint(1, 3)):
        parts.append(r.choice(ZH_WORDS) + r.choice(ZH_WORDS))
        if r.random() < 0.7:
            f = r.choice(FIELDS + [unit])
            parts.append(f(r, True) if f is unit else f(r))
        if r.random() < 0.15:
            parts.append(r.choice(["iPhone 15", "AI", "GPU", "CPU", "Wi-Fi", "hello world", "OK"]))
    sep = r.choice(["", "", " ", "，"])
    return sep.join(parts) + r.choice(ZH_TAIL)


def en_sentence(r, digits=True):
    parts = []
    nf = 0
    for _ in range(r.randint(2, 6)):
        parts.append(r.choice(EN_WORDS))
        if digits and nf < 2 and r.random() < 0.35:
            nf += 1
            f = r.choice(FIELDS + [unit])
            v = f(r, False) if f is unit else f(r)
            if f in (date, time_, money, pct) and any("\u4e00" <= c <= "\u9fff" for c in v):
                v = num(r)
            parts.append(v)
    s = " ".join(parts)
    return s[0].upper() + s[1:] + r.choice([".", "!", "?", ";", ":", "", ","])


def decorate(r, s):
    k = r.random()
    if k < 0.06:
        s = f"（{s}）"
    elif k < 0.1:
        s = f"【注意】{s}"
    elif k < 0.13:
        s = s + "——" + zh_sentence(r)
    elif k < 0.16:
        s = s + " - " + zh_sentence(r)
    elif k < 0.19:
        s = "“" + s + "”" + zh_sentence(r)
    elif k < 0.21:
        s = s + "\n" + zh_sentence(r)
    elif k < 0.23:
        s = "  " + s + " \t"
    elif k < 0.25:
        s = s.rstrip("。！？，") + "，，、"
    elif k < 0.27:
        s = s + "`code`"
    return s


def make(r):
    # The en grammar costs ~2 ms per byte of text with digits (the zh one
    # ~0.15): en lines with numbers are kept short, long en paragraphs have
    # no digits (no TN) so that the parity test stays within a minute.
    k = r.random()
    if k < 0.47:
        return decorate(r, "".join(zh_sentence(r) for _ in range(r.randint(1, 3))))
    if k < 0.67:
        return en_sentence(r)
    if k < 0.72:
        return " ".join(en_sentence(r, digits=False) for _ in range(r.randint(1, 3)))
    if k < 0.8:  # long paragraphs: the splitter's limits
        if r.random() < 0.6:
            return "".join(zh_sentence(r) for _ in range(r.randint(8, 14)))
        return " ".join(en_sentence(r, digits=False) for _ in range(r.randint(8, 20)))
    if k < 0.88:  # mixed zh/en
        return zh_sentence(r) + " " + en_sentence(r, digits=r.random() < 0.5) + zh_sentence(r)
    if k < 0.92:  # bare fields
        f = r.choice(FIELDS)
        return f(r)
    if k < 0.95:  # quotes after sentence ends
        return f"他说：“{zh_sentence(r).rstrip('，、…')}”然后走了。" if r.random() < 0.6 else \
            f'She said "{en_sentence(r, digits=False).rstrip(",")}" and left.'
    if k < 0.97:  # special-token markup: no normalization
        return f"{zh_sentence(r)}<|endofprompt|>{num(r)}" if r.random() < 0.5 else f"[breath]{en_sentence(r)}<|im_end|>"
    return r.choice(["面积是5m²，体积是3m³。", "x² + y² = 1", "E=mc²", "温度23.5℃", "2024", "１２３", "第3.5版",
                     "Version 2.0.1 is out.", "v1.2", "No digits here at all", "没有数字的一句话",
                     "A-B testing - done", "1/2 cup", "3 - 2 = 1", "３月５日", "Call 911!", "1e10", "007"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20260326)
    ap.add_argument("--n", type=int, default=1100)
    ap.add_argument("--out", default="tests/data/frontend_corpus.txt")
    a = ap.parse_args()
    r = random.Random(a.seed)
    seen = set()
    with open(a.out, "w", encoding="utf-8") as f:
        while len(seen) < a.n:
            s = make(r)
            if not s.strip() or s in seen:
                continue
            seen.add(s)
            f.write(json.dumps(s, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
