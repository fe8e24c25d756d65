/* engine/text/split.h — CosyVoice's split_paragraph (docs/text-frontend.md). */
#ifndef CV_ENGINE_SPLIT_H
#define CV_ENGINE_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/text/utext.h"

struct tokenizer;

struct split_params {
	size_t token_max_n; /* 80 */
	size_t token_min_n; /* 60 */
	size_t merge_len;   /* 20 */
	int comma_split;    /* 0 */
};

#define SPLIT_DEFAULT_TOKEN_MAX_N 80 /* the reference's split_paragraph defaults: 80/60/20 */

/* The reference's parameters scaled to token_max_n (token_min_n = 60/80 of
 * it, merge_len = 20/80, no comma split); 0 = the reference's 80/60/20. */
struct split_params split_params_scaled(size_t token_max_n);

struct split_result {
	size_t n;
	struct utext *piece;
};

/* Splits text[0..n) like split_paragraph(text, tokenize, "zh"|"en", ...).
 * lang_zh: lengths in code points; else in BlankEN tokens of tok (required
 * then). Empty text gives no pieces (the reference raises IndexError). A
 * closing quote right after a dropped lone punctuation with no piece before
 * it (the reference raises IndexError) becomes a piece of its own. params
 * NULL means 80/60/20/no comma split. CV_ENOMEM, or tokenizer errors. */
int split_paragraph(const uint32_t *text, size_t n, int lang_zh, const struct tokenizer *tok,
		    const struct split_params *params, struct split_result *out, char *err, size_t errlen);
void split_result_free(struct split_result *r);

#endif
