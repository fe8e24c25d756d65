/* engine/text/tokenizer_pretok.c — NFC and the Qwen2 pre-tokenizer scanner.
 *
 * DESIGN: HF `tokenizers` splits with the Oniguruma regex
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
 *    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Every code point is in exactly one of the classes L, N, CR/LF, other \s,
 * other, so the regex can be run as a hand-written scanner that tries the
 * alternatives in order at the current position (leftmost-first semantics,
 * backtracking resolved by hand in comments below). Every alternative
 * matches at least one character and some alternative always matches, so the
 * split has no gaps. The scanner is linear: each whitespace run is walked at
 * most three times. A regex engine (PCRE2) would be a second Unicode table
 * and ~5x slower; parity with HF is what decides, and the corpus checks it.
 *
 * Classes come from utf8proc (Unicode 15) for L/N, plus the Unicode 15.1/16.0
 * letters and digits HF's Oniguruma knows (table below); \s is Unicode White_Space,
 * which is what Oniguruma's \s means for UTF-8 (U+001C..U+001F are not \s,
 * unlike Python's str.isspace()). (?i) in Oniguruma folds U+017F LATIN SMALL
 * LETTER LONG S to 's', so "'ſ" is a contraction.
 *
 * NFC uses utf8proc_map(COMPOSE|STABLE) but only on the part of the text that
 * needs it: a run of NFC-inert code points (quick-check Yes, combining class
 * 0, never the second element of a composition) is a normalization boundary,
 * so ASCII and CJK text is passed through without a copy.
 */
#include "engine/text/tokenizer_pretok.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/err.h"
#include "common/utf8.h"

/* ASCII classes, precomputed. */
static const uint8_t ascii_class[128] = {
    /* 0x00-0x08 */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    /* \t \n \v \f \r */ TOK_CLASS_S,
    TOK_CLASS_NL,
    TOK_CLASS_S,
    TOK_CLASS_S,
    TOK_CLASS_NL,
    /* 0x0E-0x1F */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    /* space */ TOK_CLASS_S,
    /* !"#$%&'()*+,-./ */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    /* 0-9 */ TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    TOK_CLASS_N,
    /* :;<=>?@ */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    /* A-Z */ TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    /* [\]^_` */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    /* a-z */ TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    TOK_CLASS_L,
    /* {|}~ DEL */ TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O,
    TOK_CLASS_O};

static int is_white_space(uint32_t cp)
{
	/* Unicode White_Space beyond ASCII. */
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Letters and digits of Unicode 15.1 and 16.0, which HF's Oniguruma knows
 * and Debian 12's utf8proc 2.8 (Unicode 15.0) does not: the complete list of
 * code points where the two disagree, found by classifying every code point
 * with `tokenizers` 0.23.3 (and 0.21.4, same result) against utf8proc; the
 * TOK_SWEEP=1 parity case re-checks all code points. Absolute classes, so a
 * newer utf8proc changes nothing. Sorted, disjoint. */
static const struct {
	uint32_t lo, hi;
	uint8_t cls;
} uni16_override[] = {
    {0x1C89, 0x1C8A, TOK_CLASS_L},   {0xA7CB, 0xA7CD, TOK_CLASS_L},   {0xA7DA, 0xA7DC, TOK_CLASS_L},
    {0x105C0, 0x105F3, TOK_CLASS_L}, {0x10D40, 0x10D49, TOK_CLASS_N}, {0x10D4A, 0x10D65, TOK_CLASS_L},
    {0x10D6F, 0x10D85, TOK_CLASS_L}, {0x10EC2, 0x10EC4, TOK_CLASS_L}, {0x11380, 0x11389, TOK_CLASS_L},
    {0x1138B, 0x1138B, TOK_CLASS_L}, {0x1138E, 0x1138E, TOK_CLASS_L}, {0x11390, 0x113B5, TOK_CLASS_L},
    {0x113B7, 0x113B7, TOK_CLASS_L}, {0x113D1, 0x113D1, TOK_CLASS_L}, {0x113D3, 0x113D3, TOK_CLASS_L},
    {0x116D0, 0x116E3, TOK_CLASS_N}, {0x11BC0, 0x11BE0, TOK_CLASS_L}, {0x11BF0, 0x11BF9, TOK_CLASS_N},
    {0x13460, 0x143FA, TOK_CLASS_L}, {0x16100, 0x1611D, TOK_CLASS_L}, {0x16130, 0x16139, TOK_CLASS_N},
    {0x16D40, 0x16D6C, TOK_CLASS_L}, {0x16D70, 0x16D79, TOK_CLASS_N}, {0x18CFF, 0x18CFF, TOK_CLASS_L},
    {0x1CCF0, 0x1CCF9, TOK_CLASS_N}, {0x1E5D0, 0x1E5ED, TOK_CLASS_L}, {0x1E5F0, 0x1E5F0, TOK_CLASS_L},
    {0x1E5F1, 0x1E5FA, TOK_CLASS_N}, {0x2EBF0, 0x2EE5D, TOK_CLASS_L},
};

static int override_class(uint32_t cp)
{
	size_t lo = 0, hi = sizeof uni16_override / sizeof uni16_override[0];
	if (cp < uni16_override[0].lo || cp > uni16_override[hi - 1].hi)
		return -1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < uni16_override[mid].lo)
			hi = mid;
		else if (cp > uni16_override[mid].hi)
			lo = mid + 1;
		else
			return uni16_override[mid].cls;
	}
	return -1;
}

enum tok_class tokenizer_pretok_class(uint32_t cp)
{
	if (cp < 0x80)
		return (enum tok_class)ascii_class[cp];
	if (is_white_space(cp))
		return TOK_CLASS_S;
	if (cp >= 0x1C89 && !(cp >= 0x3000 && cp <= 0xA7CA)) { /* skip the search for CJK */
		int o = override_class(cp);
		if (o >= 0)
			return (enum tok_class)o;
	}
	switch (utf8proc_get_property((utf8proc_int32_t)cp)->category) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO: return TOK_CLASS_L;
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO: return TOK_CLASS_N;
	default: return TOK_CLASS_O;
	}
}

int tokenizer_nfc_inert(uint32_t cp)
{
	/* Conservative ranges, each checked code point by code point against
	 * utf8proc in tests/unit/check_tokenizer.c. Anything else just takes
	 * the slow path through utf8proc. */
	if (cp < 0x300)
		return 1;
	if (cp < 0x2002)
		return 0;
	if (cp <= 0x206F || (cp >= 0x20A0 && cp <= 0x20C0))
		return 1;
	if (cp >= 0x2190 && cp <= 0x2BFF)
		return cp != 0x2329 && cp != 0x232A && cp != 0x2ADC;
	if (cp >= 0x3000 && cp <= 0x30FF)
		return !(cp >= 0x302A && cp <= 0x302F) && cp != 0x3099 && cp != 0x309A;
	if ((cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
	    (cp >= 0xAC00 && cp <= 0xD7A3))
		return 1;
	if ((cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xFF00 && cp <= 0xFFEF))
		return 1;
	if ((cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x20000 && cp <= 0x2F7FF) ||
	    (cp >= 0x30000 && cp <= 0x3134F))
		return 1;
	return 0;
}

/* Code points HF's NFC does not know. tokenizers normalizes with the
 * unicode-normalization-alignments crate, whose tables are Unicode 9.0: marks
 * added later have combining class 0 there (so they neither reorder nor let
 * a later mark compose past them), and U+11935 U+11930 (Unicode 13) do not
 * compose into U+11938. To such a normalizer these code points are inert
 * starters, so NFC_HF(x M y) = NFC(x) M NFC(y): utf8proc runs on the spans
 * between them. Found by comparing HF with utf8proc on every code point with
 * a nonzero combining class or a decomposition (TOK_SWEEP=1 re-checks). */
static const struct {
	uint32_t lo, hi;
} nfc_unknown[] = {
    {0x7FD, 0x7FD},	{0x898, 0x89F},	    {0x8CA, 0x8D3},	{0x9FE, 0x9FE},	    {0xC3C, 0xC3C},
    {0xD3B, 0xD3C},	{0xEBA, 0xEBA},	    {0x1715, 0x1715},	{0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},	{0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x11930, 0x11930}, {0x11935, 0x11935}, {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0},
    {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45},
    {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136},
    {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
};

int tokenizer_nfc_unknown(uint32_t cp)
{
	size_t lo = 0, hi = sizeof nfc_unknown / sizeof nfc_unknown[0];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cp < nfc_unknown[mid].lo)
			hi = mid;
		else if (cp > nfc_unknown[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

/* Output buffer of tokenizer_nfc(). */
struct nfc_out {
	uint8_t *p;
	size_t len, cap;
};

static int out_put(struct nfc_out *o, const void *src, size_t n)
{
	if (o->len + n > o->cap) {
		size_t nc = (o->len + n) * 2;
		uint8_t *np = realloc(o->p, nc);
		if (!np)
			return CV_ENOMEM;
		o->p = np;
		o->cap = nc;
	}
	if (n)
		memcpy(o->p + o->len, src, n);
	o->len += n;
	return CV_OK;
}

static int out_put_nfc(struct nfc_out *o, const uint8_t *s, size_t len)
{
	if (len == 0)
		return CV_OK;
	utf8proc_uint8_t *mid = NULL;
	utf8proc_ssize_t m = utf8proc_map(s, (utf8proc_ssize_t)len, &mid, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (m < 0) {
		free(mid);
		return m == UTF8PROC_ERROR_NOMEM ? CV_ENOMEM : CV_EINVAL;
	}
	int rc = out_put(o, mid, (size_t)m);
	free(mid);
	return rc;
}

int tokenizer_nfc(const uint8_t *s, size_t len, uint8_t **out, size_t *out_len)
{
	*out = NULL;
	*out_len = len;
	/* a: start of the last inert code point before the first non-inert one;
	 * b: end of the last non-inert code point. NFC only touches [a, b). */
	size_t pos = 0, a = 0, b = 0, last_inert = 0;
	int found = 0;
	while (pos < len) {
		if (s[pos] < 0x80) {
			last_inert = pos++;
			continue;
		}
		size_t n;
		uint32_t cp = utf8_decode_valid(s + pos, &n);
		if (tokenizer_nfc_inert(cp)) {
			last_inert = pos;
		} else {
			if (!found) {
				found = 1;
				a = (pos > 0) ? last_inert : 0;
			}
			b = pos + n;
		}
		pos += n;
	}
	if (!found)
		return CV_OK;

	/* [a, b) goes through utf8proc in spans cut at the nfc_unknown code
	 * points, which are copied unchanged, as is everything outside. */
	struct nfc_out o = {.p = malloc(len + 16), .cap = len + 16};
	if (!o.p)
		return CV_ENOMEM;
	int rc = out_put(&o, s, a);
	size_t span = a;
	for (pos = a; pos < b && rc == CV_OK;) {
		size_t n;
		uint32_t cp = utf8_decode_valid(s + pos, &n);
		if (cp >= 0x7FD && tokenizer_nfc_unknown(cp)) {
			rc = out_put_nfc(&o, s + span, pos - span);
			if (rc == CV_OK)
				rc = out_put(&o, s + pos, n);
			span = pos + n;
		}
		pos += n;
	}
	if (rc == CV_OK)
		rc = out_put_nfc(&o, s + span, b - span);
	if (rc == CV_OK)
		rc = out_put(&o, s + b, len - b);
	if (rc != CV_OK) {
		free(o.p);
		return rc;
	}
	*out = o.p;
	*out_len = o.len;
	return CV_OK;
}

/* Class of the code point at s[pos]; *n gets its length. -1 past the end. */
static int class_at(const uint8_t *s, size_t len, size_t pos, size_t *n)
{
	if (pos >= len) {
		*n = 0;
		return -1;
	}
	if (s[pos] < 0x80) {
		*n = 1;
		return ascii_class[s[pos]];
	}
	return (int)tokenizer_pretok_class(utf8_decode_valid(s + pos, n));
}

static size_t letter_run_end(const uint8_t *s, size_t len, size_t pos)
{
	size_t n;
	while (class_at(s, len, pos, &n) == TOK_CLASS_L)
		pos += n;
	return pos;
}

static int fold_eq(uint8_t c, char lower)
{
	return c == (uint8_t)lower || c == (uint8_t)(lower - 'a' + 'A');
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at pos (s[pos] == '\''); 0 if no match. */
static size_t contraction(const uint8_t *s, size_t len, size_t pos)
{
	size_t p = pos + 1;
	if (p >= len)
		return 0;
	uint8_t c = s[p];
	if (fold_eq(c, 's') || fold_eq(c, 't') || fold_eq(c, 'm') || fold_eq(c, 'd'))
		return p + 1;
	if (c == 0xC5 && p + 1 < len && s[p + 1] == 0xBF) /* U+017F folds to s */
		return p + 2;
	if (p + 1 >= len)
		return 0;
	uint8_t d = s[p + 1];
	if ((fold_eq(c, 'r') || fold_eq(c, 'v')) && fold_eq(d, 'e'))
		return p + 2;
	if (fold_eq(c, 'l') && fold_eq(d, 'l'))
		return p + 2;
	return 0;
}

size_t tokenizer_pretok_next(const uint8_t *s, size_t len, size_t pos)
{
	size_t n0, n1;
	int c0 = class_at(s, len, pos, &n0);

	/* 1. (?i:'s|'t|'re|'ve|'m|'ll|'d) */
	if (s[pos] == '\'') {
		size_t e = contraction(s, len, pos);
		if (e)
			return e;
	}
	/* 2. [^\r\n\p{L}\p{N}]?\p{L}+ — the optional prefix is greedy, but when
	 * the next character is no letter the empty prefix fails too unless
	 * this character is itself a letter. */
	if (c0 == TOK_CLASS_L)
		return letter_run_end(s, len, pos + n0);
	int c1 = class_at(s, len, pos + n0, &n1);
	if ((c0 == TOK_CLASS_S || c0 == TOK_CLASS_O) && c1 == TOK_CLASS_L)
		return letter_run_end(s, len, pos + n0 + n1);
	/* 3. \p{N} — one digit. */
	if (c0 == TOK_CLASS_N)
		return pos + n0;
	/* 4.  ?[^\s\p{L}\p{N}]+[\r\n]* */
	size_t j = (size_t)-1;
	if (s[pos] == ' ' && c1 == TOK_CLASS_O)
		j = pos + 1;
	else if (c0 == TOK_CLASS_O)
		j = pos;
	if (j != (size_t)-1) {
		size_t n;
		while (class_at(s, len, j, &n) == TOK_CLASS_O)
			j += n;
		while (j < len && (s[j] == '\r' || s[j] == '\n'))
			j++;
		return j;
	}
	/* Here c0 is \s (CR/LF or other). Walk the whitespace run [pos, e). */
	size_t e = pos, last_start = pos, nl_end = 0, n;
	int c;
	while ((c = class_at(s, len, e, &n)) == TOK_CLASS_S || c == TOK_CLASS_NL) {
		last_start = e;
		e += n;
		if (c == TOK_CLASS_NL)
			nl_end = e;
	}
	/* 5. \s*[\r\n]+ — \s* backtracks to the last CR/LF of the run. */
	if (nl_end)
		return nl_end;
	/* 6. \s+(?!\S) — the whole run at the end of the text, else the run
	 * minus its last character (which then prefixes the next piece). */
	if (e == len)
		return e;
	if (last_start > pos)
		return last_start;
	/* 7. \s+ — a single whitespace character before a non-space. */
	return e;
}
