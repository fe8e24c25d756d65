/* engine/text/frontend.c — CosyVoice2's text_normalize + tokenizer, in C.
 *
 * DESIGN: a literal port of CosyVoiceFrontEnd.text_normalize (docs/text-frontend.md)
 * with wetext as the TN engine, on code points (struct utext) because the
 * Python rules index and slice code points. Steps and their order follow the
 * reference exactly; each Python quirk that matters for equality (Unicode
 * isspace/isdigit, replace_blank's neighbours, the trailing comma regex) is
 * kept and named where it is done. TN (tn.h) runs only when a grammar dir was
 * given; wetext itself only runs its FSTs when the text has a \d digit.
 * Inputs where the reference raises (empty text after strip reaching
 * split_paragraph) give no sentences here instead of an error.
 */
#include "engine/text/frontend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/utf8.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/path.h"
#include "engine/text/numwords.h"
#include "engine/text/split.h"
#include "engine/text/tn.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utext.h"

#define FRONTEND_DEFAULT_MAX_INPUT  ((size_t)1 << 20)
#define FRONTEND_DEFAULT_MAX_TOKENS 512
/* wetext's grammars cost time and memory that grow faster than the text
 * (eager composition: 16 KB of zh with numbers takes ~16 s and 530 MB, 4 KB
 * of en ~40 s and 1.2 GB on this machine). Text up to SEG bytes goes through
 * them in one piece, exactly as the reference; longer text is cut at sentence
 * ends (else at a space, else anywhere) into pieces of at most SEG bytes that
 * are normalized one by one (identical unless a grammar token would span a
 * cut); above MAX bytes the text is refused. zh / en. */
#define FRONTEND_TN_SEG_ZH ((size_t)1 << 10)
#define FRONTEND_TN_SEG_EN ((size_t)512)
#define FRONTEND_TN_MAX_ZH ((size_t)64 << 10)
#define FRONTEND_TN_MAX_EN ((size_t)16 << 10)

struct frontend {
	struct tokenizer *tok;
	struct tn *tn;
	struct frontend_limits lim;
	struct split_params split;
};

static int file_exists(const char *dir, const char *sub, const char *name)
{
	char p[FRONTEND_PATH_MAX];
	return snprintf(p, sizeof p, "%s%s/%s", dir, sub, name) < (int)sizeof p && path_is_file(p);
}

int frontend_open(const char *tokenizer_dir, const char *tn_dir, const struct frontend_limits *lim,
		  struct frontend **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!tokenizer_dir) {
		snprintf(err, errlen, "frontend: no tokenizer directory");
		return CV_EINVAL;
	}
	struct frontend *f = xcalloc(1, sizeof *f);
	if (lim)
		f->lim = *lim;
	if (f->lim.max_input_bytes == 0)
		f->lim.max_input_bytes = FRONTEND_DEFAULT_MAX_INPUT;
	if (f->lim.max_tokens_per_sentence == 0)
		f->lim.max_tokens_per_sentence = FRONTEND_DEFAULT_MAX_TOKENS;
	f->split = split_params_scaled(f->lim.split_max_tokens);
	char dir[4096];
	if (file_exists(tokenizer_dir, "/tokenizer", "vocab.json"))
		snprintf(dir, sizeof dir, "%s/tokenizer", tokenizer_dir);
	else
		snprintf(dir, sizeof dir, "%s", tokenizer_dir);
	int rc = tokenizer_open(dir, &f->tok, err, errlen);
	if (rc)
		goto fail;
	/* Normalization can grow text (digits to words): leave the tokenizer
	 * room well above the input cap. */
	tokenizer_set_max_input(f->tok, f->lim.max_input_bytes * 16 + 4096);
	if (tn_dir && (rc = tn_open(tn_dir, &f->tn, err, errlen)))
		goto fail;
	*out = f;
	return CV_OK;
fail:
	frontend_free(f);
	return rc;
}

int frontend_open_dir(const char *dir, const struct frontend_limits *lim, struct frontend **out, char *err,
		      size_t errlen)
{
	char tok[FRONTEND_PATH_MAX], tn[FRONTEND_PATH_MAX];

	*out = NULL;
	if (snprintf(tok, sizeof tok, "%s/tokenizer", dir) >= (int)sizeof tok ||
	    snprintf(tn, sizeof tn, "%s/tn", dir) >= (int)sizeof tn) {
		cv_errf(err, errlen, "%.200s: directory name too long", dir);
		return CV_E2BIG;
	}
	return frontend_open(tok, path_is_dir(tn) ? tn : NULL, lim, out, err, errlen);
}

int frontend_has_tn(const struct frontend *f)
{
	return f && f->tn != NULL;
}

const struct tokenizer *frontend_tokenizer(const struct frontend *f)
{
	return f ? f->tok : NULL;
}

void frontend_free(struct frontend *f)
{
	if (!f)
		return;
	tokenizer_free(f->tok);
	tn_free(f->tn);
	free(f);
}

void frontend_result_free(struct frontend_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->s[i].text);
		free(r->s[i].ids);
	}
	free(r->s);
	r->s = NULL;
	r->n = 0;
}

/* Python str.strip() on code points. */
static void py_strip(struct utext *t)
{
	size_t b = 0, e = t->n;
	while (b < e && utext_is_py_space(t->c[b]))
		b++;
	while (e > b && utext_is_py_space(t->c[e - 1]))
		e--;
	memmove(t->c, t->c + b, (e - b) * sizeof *t->c);
	t->n = e - b;
}

static int has_chinese(const struct utext *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (utext_is_chinese(t->c[i]))
			return 1;
	return 0;
}

/* One wetext pass: tagger -> reorder -> verbalizer, each output .strip()ped
 * as wetext 0.0.9's tag()/verbalize() do. */
static int wetext_run(const struct tn *tn, enum tn_lang lang, struct utext *t, char *err, size_t errlen)
{
	char *s = NULL, *tag = NULL, *ro = NULL, *vb = NULL;
	size_t sl, tl, rl, vl;
	int rc = CV_ENOMEM;
	s = utext_to_utf8(t->c, t->n, &sl);
	if (!s)
		goto nomem;
	if ((rc = tn_fst_apply(tn, lang, TN_STAGE_TAGGER, s, sl, &tag, &tl, err, errlen)))
		goto fail;
	struct utext u;
	utext_init(&u);
	if ((rc = utext_append_utf8(&u, tag, tl, NULL))) {
		utext_free(&u);
		snprintf(err, errlen, "text normalization produced invalid UTF-8");
		rc = CV_EENGINE;
		goto fail;
	}
	py_strip(&u);
	free(tag);
	tag = utext_to_utf8(u.c, u.n, &tl);
	utext_free(&u);
	if (!tag)
		goto nomem;
	if (tl == 0) {
		/* No tagger path: the reference fails (TokenParser asserts);
		 * keep the text as it is. */
		rc = CV_OK;
		goto fail;
	}
	if ((rc = tn_reorder(tag, tl, lang, &ro, &rl)))
		goto nomem;
	if ((rc = tn_fst_apply(tn, lang, TN_STAGE_VERBALIZER, ro, rl, &vb, &vl, err, errlen)))
		goto fail;
	struct utext v;
	utext_init(&v);
	if ((rc = utext_append_utf8(&v, vb, vl, NULL))) {
		utext_free(&v);
		snprintf(err, errlen, "text normalization produced invalid UTF-8");
		rc = CV_EENGINE;
		goto fail;
	}
	py_strip(&v);
	utext_free(t);
	*t = v;
	rc = CV_OK;
	goto fail;
nomem:
	rc = CV_ENOMEM;
	snprintf(err, errlen, "out of memory in text normalization");
fail:
	free(s);
	free(tag);
	free(ro);
	free(vb);
	return rc;
}

static size_t utf8_len(uint32_t c)
{
	return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

static int is_ascii_alpha(uint32_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A cut after t->c[i] that no grammar token can span. Sentence ends: newline, the CJK full stop,
 * exclamation and question marks, semicolons; in English text '.', '!', '?', ';' before white space,
 * except where a token of the grammars continues across it: a '.' followed by a digit or a lower-case
 * letter ("Dec. 25, 2024", "No. 5", "e.g. this"), or ending a short capitalised word or a dotted one
 * (titles and months: "Mr.", "Dr.", "Sept.", "p.m."), which the grammar reads together with what follows. */
static int is_cut_after(const struct utext *t, size_t i)
{
	uint32_t c = t->c[i];
	if (c == '\n' || c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF1B)
		return 1;
	if (!((c == '.' || c == '!' || c == '?' || c == ';') && i + 1 < t->n &&
	      utext_is_py_space(t->c[i + 1])))
		return 0;
	if (c != '.')
		return 1;
	size_t k = i + 1;
	while (k < t->n && utext_is_py_space(t->c[k]))
		k++;
	if (k < t->n && ((t->c[k] >= '0' && t->c[k] <= '9') || (t->c[k] >= 'a' && t->c[k] <= 'z')))
		return 0;
	size_t w = i;
	while (w > 0 && is_ascii_alpha(t->c[w - 1]))
		w--;
	if (w > 0 && t->c[w - 1] == '.')
		return 0; /* "p.m.", "e.g." */
	if (i - w >= 1 && i - w <= 4 && t->c[w] >= 'A' && t->c[w] <= 'Z')
		return 0; /* "Mr.", "Dec.", "Sept." */
	return 1;
}

/* A fallback cut at the white space t->c[i] between two letters: inside plain words, where no
 * number, date or abbreviation token of the grammars can span. */
static int is_space_cut(const struct utext *t, size_t i)
{
	return i > 0 && i + 1 < t->n && utext_is_py_space(t->c[i]) && is_ascii_alpha(t->c[i - 1]) &&
	       is_ascii_alpha(t->c[i + 1]);
}

/* What the grammars make of the white space ws between two pieces, so that the pieces join exactly
 * as the whole text comes out. English: a punctuation token is followed by one space of its own,
 * then the white space as written without its newlines ("evening.  The" -> "evening .   The",
 * "x.\nThe" -> "x . The"). Chinese keeps white space as written. */
static int join_pieces(struct utext *o, enum tn_lang lang, const uint32_t *ws, size_t n_ws)
{
	int rc = CV_OK;
	if (lang == TN_LANG_EN) {
		uint32_t last = o->n ? o->c[o->n - 1] : 0;
		int punct_token = o->n >= 2 && o->c[o->n - 2] == ' ' && last != ' ' &&
				  !is_ascii_alpha(last) && !(last >= '0' && last <= '9');
		if (n_ws > 0 && punct_token)
			rc = utext_push(o, ' ');
		for (size_t k = 0; rc == CV_OK && k < n_ws; k++)
			if (ws[k] != '\n')
				rc = utext_push(o, ws[k]);
		return rc;
	}
	for (size_t k = 0; rc == CV_OK && k < n_ws; k++)
		rc = utext_push(o, ws[k]);
	return rc;
}

/* Long text: normalized piece by piece (see FRONTEND_TN_SEG_*), cut where no grammar token can span
 * and joined as the whole text would come out, so that the pieces equal the reference (tested on long
 * inputs by the parity corpus tests/data/frontend_long.txt). */
static int wetext_segmented(const struct tn *tn, enum tn_lang lang, struct utext *t, size_t seg_max,
			    char *err, size_t errlen)
{
	struct utext o, piece;
	utext_init(&o);
	utext_init(&piece);
	int rc = CV_OK;
	size_t st = 0, ws_from = 0; /* t->c[ws_from..st) is the white space before this piece */
	while (st < t->n) {
		size_t bytes = 0, end = st, cut = 0, space = 0;
		while (end < t->n && bytes + utf8_len(t->c[end]) <= seg_max) {
			bytes += utf8_len(t->c[end]);
			if (is_cut_after(t, end))
				cut = t->c[end] == '\n' ? end : end + 1; /* a newline goes to the join */
			if (is_space_cut(t, end))
				space = end;
			end++;
		}
		if (end < t->n)
			end = cut > st ? cut : space > st ? space : end;
		utext_clear(&piece);
		if ((rc = utext_append(&piece, t->c + st, end - st)))
			goto fail;
		py_strip(&piece);
		if (piece.n > 0) {
			if ((rc = wetext_run(tn, lang, &piece, err, errlen)))
				goto fail;
			py_strip(&piece);
			if (o.n > 0 && piece.n > 0 &&
			    (rc = join_pieces(&o, lang, t->c + ws_from, st - ws_from)))
				goto fail;
			if ((rc = utext_append(&o, piece.c, piece.n)))
				goto fail;
		}
		/* the white space after the cut belongs to the join, not to the next piece */
		ws_from = end;
		st = end;
		while (st < t->n && utext_is_py_space(t->c[st]))
			st++;
	}
	utext_free(t);
	*t = o;
	utext_free(&piece);
	return CV_OK;
fail:
	if (rc == CV_ENOMEM)
		snprintf(err, errlen, "out of memory in text normalization");
	utext_free(&o);
	utext_free(&piece);
	return rc;
}

/* wetext 0.0.9 Normalizer(lang="auto", operator="tn").normalize(text). */
static int wetext_normalize(const struct tn *tn, struct utext *t, char *err, size_t errlen)
{
	py_strip(t);
	int digit = 0, all_digit = t->n > 0;
	size_t bytes = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (utext_is_re_digit(t->c[i]))
			digit = 1;
		if (!utext_is_py_digit(t->c[i]))
			all_digit = 0;
		bytes += utf8_len(t->c[i]);
	}
	if (!digit)
		return CV_OK;
	enum tn_lang lang = (has_chinese(t) || all_digit) ? TN_LANG_ZH : TN_LANG_EN;
	size_t seg = lang == TN_LANG_ZH ? FRONTEND_TN_SEG_ZH : FRONTEND_TN_SEG_EN;
	size_t max = lang == TN_LANG_ZH ? FRONTEND_TN_MAX_ZH : FRONTEND_TN_MAX_EN;
	if (bytes > max) {
		snprintf(
		    err, errlen,
		    "text with numbers is %zu bytes, more than the %zu that text normalization takes (%s); "
		    "send shorter pieces (or normalize=false)",
		    bytes, max, lang == TN_LANG_ZH ? "zh" : "en");
		return CV_E2BIG;
	}
	int rc = bytes <= seg ? wetext_run(tn, lang, t, err, errlen)
			      : wetext_segmented(tn, lang, t, seg, err, errlen);
	if (!rc)
		py_strip(t);
	return rc;
}

/* replace_blank: drop every ' ' unless both neighbours are ASCII and not ' '.
 * text[i - 1] at i == 0 is Python's text[-1] (the last character). */
static void replace_blank(struct utext *t)
{
	size_t o = 0, n = t->n;
	uint32_t *c = t->c;
	uint32_t *orig = malloc((n ? n : 1) * sizeof *orig);
	if (!orig)
		return;
	memcpy(orig, c, n * sizeof *c);
	for (size_t i = 0; i < n; i++) {
		if (orig[i] == ' ') {
			uint32_t nx = i + 1 < n ? orig[i + 1] : ' ';
			uint32_t pv = i > 0 ? orig[i - 1] : orig[n - 1];
			if (nx < 0x80 && nx != ' ' && pv < 0x80 && pv != ' ')
				c[o++] = ' ';
		} else {
			c[o++] = orig[i];
		}
	}
	t->n = o;
	free(orig);
}

#define U(...) ((const uint32_t[]){__VA_ARGS__}), (sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static int zh_rules(struct utext *t)
{
	int rc;
	/* text.replace("\n", "") */
	if ((rc = utext_replace(t, U('\n'), NULL, 0)))
		return rc;
	replace_blank(t);
	if ((rc = utext_replace(t, U(0xB2), U(0x5E73, 0x65B9))) ||  /* ² 平方 */
	    (rc = utext_replace(t, U(0xB3), U(0x7ACB, 0x65B9))) ||  /* ³ 立方 */
	    (rc = utext_replace(t, U('.'), U(0x3002))) ||	    /* . 。 */
	    (rc = utext_replace(t, U(' ', '-', ' '), U(0xFF0C))) || /* " - " ， */
	    (rc = utext_replace(t, U(0xFF08), NULL, 0)) ||	    /* （ */
	    (rc = utext_replace(t, U(0xFF09), NULL, 0)) ||	    /* ） */
	    (rc = utext_replace(t, U(0x3010), NULL, 0)) ||	    /* 【 */
	    (rc = utext_replace(t, U(0x3011), NULL, 0)) ||	    /* 】 */
	    (rc = utext_replace(t, U('`'), NULL, 0)) ||
	    (rc = utext_replace(t, U(0x2014, 0x2014), U(' ')))) /* —— */
		return rc;
	/* re.sub(r'[，,、]+$', '。', text): '$' also matches before a final
	 * '\n', but every '\n' is gone by now. */
	size_t e = t->n;
	while (e > 0 && (t->c[e - 1] == 0xFF0C || t->c[e - 1] == ',' || t->c[e - 1] == 0x3001))
		e--;
	if (e < t->n) {
		t->n = e;
		return utext_push(t, 0x3002);
	}
	return CV_OK;
}

/* spell_out_number: every maximal run of str.isdigit() characters. */
static int spell_out_number(struct utext *t, char *err, size_t errlen)
{
	struct utext o;
	utext_init(&o);
	int rc = CV_OK;
	size_t i = 0;
	while (i < t->n) {
		if (!utext_is_py_digit(t->c[i])) {
			if ((rc = utext_push(&o, t->c[i])))
				goto fail;
			i++;
			continue;
		}
		size_t j = i;
		while (j < t->n && utext_is_py_digit(t->c[j]))
			j++;
		if ((rc = numwords_append(t->c + i, j - i, &o))) {
			if (rc == CV_EINVAL)
				snprintf(err, errlen,
					 "number with more than 36 digits cannot be spelled out");
			goto fail;
		}
		i = j;
	}
	utext_free(t);
	*t = o;
	return CV_OK;
fail:
	if (rc == CV_ENOMEM)
		snprintf(err, errlen, "out of memory spelling numbers");
	utext_free(&o);
	return rc;
}

static int only_punct(const struct utext *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (!utext_is_punct_symbol(t->c[i]))
			return 0;
	return 1;
}

static int result_add(const struct frontend *f, struct frontend_result *r, size_t *cap, char *text, size_t tl,
		      char *err, size_t errlen)
{
	if (r->n >= FRONTEND_MAX_SENTENCES) {
		free(text);
		snprintf(err, errlen, "text gives more than %d sentences", FRONTEND_MAX_SENTENCES);
		return CV_E2BIG;
	}
	if (r->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct frontend_sentence *s = realloc(r->s, nc * sizeof *s);
		if (!s) {
			free(text);
			snprintf(err, errlen, "out of memory");
			return CV_ENOMEM;
		}
		r->s = s;
		*cap = nc;
	}
	size_t icap = tl + 1;
	int32_t *ids = malloc(icap * sizeof *ids);
	if (!ids) {
		free(text);
		snprintf(err, errlen, "out of memory");
		return CV_ENOMEM;
	}
	size_t n = 0;
	int rc = tokenizer_encode(f->tok, text, tl, ids, icap, &n, err, errlen);
	if (rc) {
		free(ids);
		free(text);
		return rc;
	}
	if (n > f->lim.max_tokens_per_sentence) {
		free(ids);
		free(text);
		snprintf(err, errlen, "a sentence has %zu tokens, more than the limit of %zu", n,
			 f->lim.max_tokens_per_sentence);
		return CV_E2BIG;
	}
	r->s[r->n].text = text;
	r->s[r->n].ids = ids;
	r->s[r->n].n_ids = n;
	r->n++;
	return CV_OK;
}

static int has_markup(const char *text, size_t len)
{
	return memmem(text, len, "<|", 2) != NULL && memmem(text, len, "|>", 2) != NULL;
}

int frontend_run(const struct frontend *f, const char *text, size_t len, int normalize,
		 struct frontend_result *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!f || (!text && len > 0)) {
		snprintf(err, errlen, "no text");
		return CV_EINVAL;
	}
	if (len > f->lim.max_input_bytes) {
		snprintf(err, errlen, "text is %zu bytes, more than the limit of %zu", len,
			 f->lim.max_input_bytes);
		return CV_E2BIG;
	}
	const char *nul = len ? memchr(text, '\0', len) : NULL;
	if (nul) {
		snprintf(err, errlen, "text contains a NUL byte at offset %zu", (size_t)(nul - text));
		return CV_EINVAL;
	}
	size_t bad;
	if (!utf8_validate(text, len, &bad)) {
		snprintf(err, errlen, "text is not valid UTF-8 (byte offset %zu)", bad);
		return CV_EINVAL;
	}
	struct utext t;
	utext_init(&t);
	struct split_result sp = {0, NULL};
	size_t cap = 0;
	int rc;
	out->lang_zh = 0;
	if (len == 0)
		return CV_OK;
	if (!normalize || has_markup(text, len)) {
		/* lang: the language of the text (no path is taken) */
		if ((rc = utext_append_utf8(&t, text, len, NULL)))
			goto nomem;
		out->lang_zh = has_chinese(&t);
		utext_free(&t);
		char *s = malloc(len + 1);
		if (!s) {
			snprintf(err, errlen, "out of memory");
			return CV_ENOMEM;
		}
		memcpy(s, text, len);
		s[len] = '\0';
		if ((rc = result_add(f, out, &cap, s, len, err, errlen)))
			goto fail;
		return CV_OK;
	}
	if ((rc = utext_append_utf8(&t, text, len, NULL)))
		goto nomem;
	py_strip(&t);
	int zh = has_chinese(&t);
	out->lang_zh = zh;
	if (f->tn && (rc = wetext_normalize(f->tn, &t, err, errlen)))
		goto fail;

	if (zh) {
		if ((rc = zh_rules(&t)))
			goto nomem;
	} else if ((rc = spell_out_number(&t, err, errlen))) {
		goto fail;
	}
	if ((rc = split_paragraph(t.c, t.n, zh, f->tok, &f->split, &sp, err, errlen)))
		goto fail;
	for (size_t i = 0; i < sp.n; i++) {
		if (only_punct(&sp.piece[i]))
			continue;
		size_t sl;
		char *s = utext_to_utf8(sp.piece[i].c, sp.piece[i].n, &sl);
		if (!s) {
			rc = CV_ENOMEM;
			goto nomem;
		}
		if ((rc = result_add(f, out, &cap, s, sl, err, errlen)))
			goto fail;
	}
	split_result_free(&sp);
	utext_free(&t);
	return CV_OK;
nomem:
	if (rc == CV_ENOMEM)
		snprintf(err, errlen, "out of memory normalizing text");
	else
		snprintf(err, errlen, "text normalization failed");
fail:
	split_result_free(&sp);
	utext_free(&t);
	frontend_result_free(out);
	return rc;
}
