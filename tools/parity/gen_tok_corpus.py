#!/usr/bin/env python3
"""tools/parity/gen_tok_corpus.py — writes tests/data/tok_corpus.txt (fixed seed).

The tokenizer parity corpus: one JSON string per line (so real newlines, CRs,
tabs and NULs can be in a text). Deterministic: same seed, same file; the
generated file is committed and this script regenerates it:

  python3 tools/parity/gen_tok_corpus.py > tests/data/tok_corpus.txt

Sections: hand-written edge cases (contractions, special tokens embedded and
near-missed, whitespace runs, NFC-sensitive combining sequences, controls),
then random mixes of Chinese, English, mixed, digits, punctuation of both
widths, emoji (ZWJ, skin tones, flags, keycaps), rare CJK (ext B-G,
compatibility ideographs), other scripts, and random code points drawn from
the whole Unicode range. Only the standard library is used.
"""
import json
import random
import sys

SEED = 20240611

ZH = [
    "你好，世界！", "今天天气很好，我们去公园散步吧。", "收到朋友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐。",
    "希望你以后能够做的比我还好呦。", "用四川话说这句话", "在他讲述那个荒诞故事的过程中，他突然停下来，因为他自己也被逗笑了。",
    "八百标兵奔北坡，北坡炮兵并排跑。", "成功用户的经验值得我们学习", "这是一个测试句子，用于检查分词器的正确性。",
    "中华人民共和国成立于一九四九年十月一日。", "我爱北京天安门，天安门上太阳升。", "人工智能正在改变我们的生活方式",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。", "他说：“明天见！”然后就走了……", "《红楼梦》是中国古典四大名著之一。",
    "请问，去火车站怎么走？", "这件衣服多少钱？太贵了！", "我们一起努力吧【加油】", "零一二三四五六七八九十百千万亿",
    "繁體中文與簡體中文的轉換測試", "鬱龘齉靐齾爩麤", "的了是在不有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处府理世",
]
EN = [
    "Hello, world!", "The quick brown fox jumps over the lazy dog.", "I'm sure you'll love it; we've tried it and they'd agree.",
    "It's John's book, isn't it?", "DON'T SHOUT, WE'RE LISTENING! YOU'LL SEE, I'D SAY IT'S FINE.",
    "She said 'hello' and left.", "Rock 'n' roll ain't noise pollution.", "'tis the season, 'twas the night.",
    "e-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag",
    "Mr. and Mrs. Smith arrived at 5:30 p.m. on Jan. 3rd, 2024.", "CosyVoice2 supports streaming TTS with low latency.",
    "state-of-the-art, well-known, mother-in-law", "naïve café résumé coöperate façade jalapeño",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "Supercalifragilisticexpialidocious!!!",
    "camelCaseIdentifier snake_case_identifier SCREAMING_CASE kebab-case", "O'Reilly's O'Neil'S",
    "He said \"no\" — twice.", "Tabs\tare\there", "  leading and trailing spaces  ",
]
MIXED = [
    "我今天用iPhone 15 Pro拍了张照片", "这个API的response time是200ms左右", "Python是一种编程语言，非常popular。",
    "请打开Wi-Fi设置，然后连接到CosyVoice网络", "我在Google工作了3年", "OK，我们明天见！See you tomorrow.",
    "《Harry Potter》的中文版叫《哈利·波特》", "GPT-4和Qwen2都是大模型", "价格是$19.99，约合人民币¥143元",
    "今天是2024年6月11日，星期二", "他的电话号码是138-0013-8000", "温度：25°C～30°C，湿度80%",
]
DIGITS = [
    "0", "7", "42", "123456789012345678901234567890", "3.14159265358979", "1,234,567.89", "-273.15", "+86 10 1234 5678",
    "2024-06-11T12:34:56Z", "１２３４５６７８９０", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "x²+y³=z¹", "½ ¼ ¾ ⅓ ⅔",
    "Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅻ", "①②③④⑤⑩⑳", "〇一二三", "1e-10 0x1F 0b1010 0o777", "99.9% 100‰", "第1名第22名第333名",
]
PUNCT = [
    "，。！？；：、", "“”‘’「」『』", "（）【】《》〈〉〔〕", "……——·～", "!?.,;:'\"()[]{}<>", "...???!!!---___",
    "«»‹›„‚", "¡¿", "§¶†‡•", "@#$%^&*+=|\\/~`", "\u2014\u2013\u2012\u2010", "※〃〆々〒", "！＂＃＄％＆＇（）＊＋，－．／",
    "：；＜＝＞？＠［＼］＾＿｀｛｜｝～", "｡｢｣､･", "?!", "。。。", "!!!!!!!!!!!!!!!!", ",.,.,.", "'''", "'\"'\"",
]
EMOJI = [
    "😀", "😂🤣", "👍", "👍🏻", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "🏴‍☠️", "🇨🇳", "🇺🇸🇯🇵🇩🇪",
    "1️⃣", "#️⃣", "❤️", "❤", "☺️", "✌🏾", "🫠", "🫶🏼", "🐉", "🀄", "🃏", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👁️‍🗨️", "🤷‍♂️", "🙇‍♀️",
]
RARE_CJK = [
    "𠀀", "𠮷野家", "𡈽", "𪚥", "𫝀", "𫠝", "𬺰", "𰀀", "𱍊", "𲎯", "豈更車", "丽丸乁", "兀嗀", "㐀㐁㐂", "䶵", "鿿", "龥",
    "𠀋𠂉𠂢", "𪜀𫝆", "⺀⺁", "⼀⼁⼂", "〡〢〣", "ㄅㄆㄇ", "ㆠㆡ",
]
SCRIPTS = [
    "Привет, мир! Ёлка", "Γειά σου κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "ভাষা", "தமிழ் கொ", "മലയാളം",
    "สวัสดีครับ ภาษาไทย", "ສະບາຍດີ", "こんにちは、世界！", "カタカナとひらがな", "ｶﾀｶﾅ ﾊﾟﾋﾟ", "안녕하세요 세계", "Xin chào thế giới",
    "İstanbul ıi", "Straße GROSSE ẞ", "Ærøskøbing", "Dvořák Łódź", "ꙮ", "ᚠᚢᚦ", "ⴰⵣⵓⵍ", "ཀཁག", "ᠮᠣᠩᠭᠣᠯ", "ᎣᏏᏲ",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ ａｂｃ", "𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊", "ﬁ ﬂ ﬃ", "Ǆ ǅ ǆ", "ℌℍℎ Ω Å K",
]
# NFC-sensitive: decomposed forms, singletons, reordering, Hangul jamo, kana marks.
COMBINING = [
    "e\u0301", "cafe\u0301", "a\u0308o\u0308u\u0308", "A\u030a", "\u212b", "\u2126", "\u212a", "n\u0303",
    "e\u0323\u0302", "e\u0302\u0323", "a\u0301\u0323", "a\u0323\u0301", "o\u031b\u0301", "u\u0308\u0304",
    "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af",
    "\u304b\u3099", "\u30cf\u309a", "\u30a6\u3099", "\u0915\u093c", "\u0928\u093c", "\u0b95\u0bcd\u0bb7",
    "\u0d15\u0d4a", "\u0d15\u0d46\u0d3e", "\u0bc6\u0bbe", "\u0627\u0653", "\u05e9\u05c1\u05b8", "\u0340\u0341",
    "\u0344", "\u0374", "\u037e", "\u0387", "\u1e9b\u0323", "q\u0307\u0323", "\u0301abc", "\u0301",
    "x\u0335\u0336\u0337", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324",
    "\uf900\uf901\ufa0e", "\U0002f800\U0002f801", "\u2000\u2001", "\u2329\u232a", "\u2adc", "\u0958\u0959",
    "\u00c5\u0301", "\u01d5\u0301", "\u1e0a\u0323", "\u0041\u030a\u0301", "\u0f73\u0f75\u0f81", "\u0f77",
    "\u3131\u314f", "\U000110ab\U000110ba", "\U00011131\U00011127", "\U0001d15e\U0001d160",
    # marks newer than Unicode 9.0 (unknown to HF's NFC tables) and U+11938
    "e\u07fd\u0301", "\u1df6\u0301", "a\u0899\u0301", "\U00011935\U00011930", "\U00011938",
    "e\U0001e4ec\u0301", "o\u0301\u1dfa\u0323", "\u0915\u093c\u0c3c\u0301",
]
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>", "</strong>", "[noise]",
    "[laughter]", "[cough]", "[clucking]", "[accent]", "[quick_breath]", "<laughter>", "</laughter>", "[hissing]",
    "[sigh]", "[vocalized-noise]", "[lipsmack]", "[mn]",
]
NEAR_MISS = [
    "<|endoftext|", "<|endoftext", "|endoftext|>", "<|im_start>", "<im_start|>", "[breath", "breath]", "<STRONG>",
    "< strong>", "[Breath]", "<|ENDOFTEXT|>", "[vocalized noise]", "[m n]", "<|", "|>", "<", "[", "</", "<|im_",
    "<<|im_end|>>", "[[mn]]", "<|<|endoftext|>|>", "[[breath]]", "<strong><strong>", "<|endofprompt|>>",
]
WHITESPACE = [
    " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\r\r\n", " \n", "\n ", " \n ", "  \n  \n  ",
    "\t \t", "\u3000", "\u3000\u3000", "\u00a0", "\u2009", "\u200a", "\u202f", "\u205f", "\u1680", "\u0085",
    "\u2028", "\u2029", "\x0b", "\x0c", "\u200b", "\ufeff", " \u00a0 ", "\n\t\n", " \r\n \r\n ", "\u3000\n",
]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", "\x7f", "\u200e", "\u200f", "\u2060",
            "\ue000", "\U000f0000", "\ufffd", "\ufffe", "\uffff", "\U0010ffff", "\u0378", "\U000e0001"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'lL", "'D",
                "'\u017f", "'\u017fa", "\u2019s", "\uff07s", "''s", "'x", "'", "'l", "'r", "'v", "'sss", "'dd"]
WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like him into time has look two more write go see "
         "number no way could people my than first water been call who oil its now find long down day did get come "
         "made may part TTS HTTP JSON API GPU CPU MB/s x86_64 C11 libtorch").split()


def rand_cp(rng):
    """A random Unicode scalar value (any plane, assigned or not)."""
    while True:
        r = rng.random()
        if r < 0.5:
            cp = rng.randrange(0x80, 0x3400)
        elif r < 0.7:
            cp = rng.randrange(0x3400, 0x10000)
        elif r < 0.9:
            cp = rng.randrange(0x10000, 0x32000)
        else:
            cp = rng.randrange(0x32000, 0x110000)
        if not 0xD800 <= cp <= 0xDFFF:
            return chr(cp)


def pick_any(rng):
    pools = [ZH, EN, MIXED, DIGITS, PUNCT, EMOJI, RARE_CJK, SCRIPTS, COMBINING, SPECIAL, NEAR_MISS, WHITESPACE,
             CONTROLS, CONTRACTIONS]
    weights = [6, 6, 4, 3, 3, 3, 2, 2, 2, 2, 2, 4, 1, 2]
    pool = rng.choices(pools, weights)[0]
    return rng.choice(pool)


def main():
    rng = random.Random(SEED)
    out = []
    # 1. Every hand-written fragment alone, and inside text.
    for pool in (ZH, EN, MIXED, DIGITS, PUNCT, EMOJI, RARE_CJK, SCRIPTS, COMBINING, SPECIAL, NEAR_MISS, WHITESPACE,
                 CONTROLS, CONTRACTIONS):
        for frag in pool:
            out.append(frag)
            out.append("x" + frag + "y")
            out.append("中" + frag + " 文 ")
            out.append(" " + frag + "\n")
    # 2. Every special token next to each neighbour kind.
    for sp in SPECIAL:
        for left, right in (("", ""), (" ", " "), ("hello", "world"), ("你好", "世界"), ("\n", "\n"), ("  ", "  "),
                            ("'", "s"), ("1", "2"), ("😀", "👍🏽"), ("e\u0301", "\u0301")):
            out.append(left + sp + right)
        out.append(sp + sp)
        out.append("用四川话说这句话" + sp)
    # 3. Contractions after letters, digits, spaces, CJK.
    for c in CONTRACTIONS:
        for left in ("I", "it", "you", "1", " ", "中", "", "!", "\n"):
            out.append(left + c + " ok")
    # 4. Whitespace runs in front of every kind of character.
    for ws in WHITESPACE:
        for nxt in ("a", "中", "1", "!", "，", "😀", "\n", "", "<|endoftext|>", "\u0301", "'s"):
            out.append("x" + ws + nxt)
            out.append(ws + ws + nxt + ws)
    # 5. Long pieces (BPE on long words, heap path).
    out.append("a" * 300)
    out.append("ab" * 200)
    out.append("中" * 200)
    out.append("".join(ZH[2:5]).replace("，", "").replace("。", "") * 2)
    out.append("1234567890" * 30)
    out.append("!" * 257)
    out.append(" " * 300 + "x")
    out.append("\n" * 100 + " " * 100)
    out.append("😀" * 100)
    out.append("👨‍👩‍👧‍👦" * 30)
    out.append("e\u0301" * 100)
    out.append("𠮷" * 100)
    out.append("llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch" * 4)
    # 6. Random mixes.
    for _ in range(800):
        n = rng.randint(1, 12)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.12:
                parts.append(rng.choice(WORDS))
            elif r < 0.2:
                parts.append(" ")
            else:
                parts.append(pick_any(rng))
        out.append("".join(parts))
    # 7. Random code points from the whole range, in runs and with context.
    for _ in range(500):
        n = rng.randint(1, 24)
        s = "".join(rand_cp(rng) if rng.random() < 0.7 else pick_any(rng) for _ in range(n))
        out.append(s)
    for line in out:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
