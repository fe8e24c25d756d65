/* engine/text/split.c — split_paragraph of CosyVoice's frontend_utils.py.
 *
 * DESIGN: a literal port. Pieces are cut at sentence punctuation (a closing
 * quote right after it is glued on), then packed greedily: the buffer is
 * flushed before a piece that would take it over token_max_n when it already
 * holds more than token_min_n, and a short tail (< merge_len) joins the last
 * flushed piece. zh measures code points, en measures BlankEN tokens of the
 * exact concatenation (tokenizing it, as the reference does), which is why
 * the tokenizer is a parameter.
 */
#include "engine/text/split.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "engine/text/tokenizer.h"

static const uint32_t punc_zh[] = {0x3002, 0xFF1F, 0xFF01, 0xFF1B, 0xFF1A, 0x3001, '.', '?', '!', ';'};
static const uint32_t punc_en[] = {'.', '?', '!', ';', ':'};

static int is_punc(uint32_t c, int lang_zh, int comma_split)
{
	const uint32_t *p = lang_zh ? punc_zh : punc_en;
	size_t n = lang_zh ? sizeof punc_zh / sizeof *punc_zh : sizeof punc_en / sizeof *punc_en;
	for (size_t i = 0; i < n; i++)
		if (p[i] == c)
			return 1;
	return comma_split && (c == 0xFF0C || c == ',');
}

/* Length of a ++ b in the reference's measure. */
static int utt_length(const struct utext *a, const struct utext *b, int lang_zh, const struct tokenizer *tok,
		      size_t *len, char *err, size_t errlen)
{
	size_t n = a->n + (b ? b->n : 0);
	if (lang_zh) {
		*len = n;
		return CV_OK;
	}
	if (n == 0) {
		*len = 0;
		return CV_OK;
	}
	struct utext cat;
	utext_init(&cat);
	char *s = NULL;
	int32_t *ids = NULL;
	size_t sl = 0;
	int rc = utext_append(&cat, a->c, a->n);
	if (!rc && b)
		rc = utext_append(&cat, b->c, b->n);
	if (rc)
		goto fail;
	s = utext_to_utf8(cat.c, cat.n, &sl);
	ids = s ? malloc((sl + 1) * sizeof *ids) : NULL;
	if (!ids) {
		rc = CV_ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = tokenizer_encode(tok, s, sl, ids, sl + 1, len, err, errlen);
fail:
	free(ids);
	free(s);
	utext_free(&cat);
	return rc;
}

static int result_push(struct split_result *r, size_t *cap, struct utext *piece)
{
	if (r->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct utext *p = realloc(r->piece, nc * sizeof *p);
		if (!p)
			return CV_ENOMEM;
		r->piece = p;
		*cap = nc;
	}
	r->piece[r->n++] = *piece;
	utext_init(piece);
	return CV_OK;
}

struct split_params split_params_scaled(size_t token_max_n)
{
	struct split_params p;
	size_t n = token_max_n ? token_max_n : SPLIT_DEFAULT_TOKEN_MAX_N;
	p.token_max_n = n;
	p.token_min_n = n * 60 / SPLIT_DEFAULT_TOKEN_MAX_N;
	p.merge_len = n * 20 / SPLIT_DEFAULT_TOKEN_MAX_N;
	p.comma_split = 0;
	return p;
}

int split_paragraph(const uint32_t *text, size_t n, int lang_zh, const struct tokenizer *tok,
		    const struct split_params *params, struct split_result *out, char *err, size_t errlen)
{
	struct split_params def = split_params_scaled(0);
	const struct split_params *p = params ? params : &def;
	struct split_result utts = {0, NULL};
	size_t ucap = 0, fcap = 0;
	struct utext t, cur;
	utext_init(&t);
	utext_init(&cur);
	int rc = CV_OK;
	out->n = 0;
	out->piece = NULL;
	if (n == 0)
		return CV_OK;
	if ((rc = utext_append(&t, text, n)))
		goto nomem;
	if (!is_punc(t.c[t.n - 1], lang_zh, p->comma_split) && (rc = utext_push(&t, lang_zh ? 0x3002 : '.')))
		goto nomem;

	size_t st = 0;
	for (size_t i = 0; i < t.n; i++) {
		if (!is_punc(t.c[i], lang_zh, p->comma_split))
			continue;
		if (i > st) {
			struct utext u;
			utext_init(&u);
			if ((rc = utext_append(&u, t.c + st, i - st + 1)) ||
			    (rc = result_push(&utts, &ucap, &u))) {
				utext_free(&u);
				goto nomem;
			}
		}
		if (i + 1 < t.n && (t.c[i + 1] == '"' || t.c[i + 1] == 0x201D)) {
			if (utts.n == 0) {
				struct utext u;
				utext_init(&u);
				if ((rc = result_push(&utts, &ucap, &u)))
					goto nomem;
			}
			if ((rc = utext_push(&utts.piece[utts.n - 1], t.c[i + 1])))
				goto nomem;
			st = i + 2;
			i++; /* the quote is consumed; the reference would look at it, but it is no
				punctuation */
		} else {
			st = i + 1;
		}
	}

	for (size_t k = 0; k < utts.n; k++) {
		size_t lboth, lcur;
		if ((rc = utt_length(&cur, &utts.piece[k], lang_zh, tok, &lboth, err, errlen)))
			goto fail;
		if (lboth > p->token_max_n) {
			if ((rc = utt_length(&cur, NULL, lang_zh, tok, &lcur, err, errlen)))
				goto fail;
			if (lcur > p->token_min_n && (rc = result_push(out, &fcap, &cur)))
				goto nomem;
		}
		if ((rc = utext_append(&cur, utts.piece[k].c, utts.piece[k].n)))
			goto nomem;
	}
	if (cur.n > 0) {
		size_t lcur;
		if ((rc = utt_length(&cur, NULL, lang_zh, tok, &lcur, err, errlen)))
			goto fail;
		if (lcur < p->merge_len && out->n != 0) {
			if ((rc = utext_append(&out->piece[out->n - 1], cur.c, cur.n)))
				goto nomem;
		} else if ((rc = result_push(out, &fcap, &cur))) {
			goto nomem;
		}
	}
	split_result_free(&utts);
	utext_free(&t);
	utext_free(&cur);
	return CV_OK;
nomem:
	if (rc == CV_ENOMEM)
		snprintf(err, errlen, "out of memory splitting text");
fail:
	split_result_free(&utts);
	split_result_free(out);
	utext_free(&t);
	utext_free(&cur);
	return rc;
}

void split_result_free(struct split_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		utext_free(&r->piece[i]);
	free(r->piece);
	r->n = 0;
	r->piece = NULL;
}
