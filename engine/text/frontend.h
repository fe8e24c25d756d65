/* engine/text/frontend.h — CosyVoice2's text frontend: normalize → split → BPE.
 *
 * Behaves exactly like the reference frontend (docs/text-frontend.md; docs/cosyvoice2.md §2):
 * with normalize=1 the text goes through wetext-equivalent TN (zh or en,
 * chosen as the reference does), the frontend's own rules, and
 * split_paragraph; with normalize=0 (the reference's text_frontend=False)
 * the text is one sentence, tokenized as is. Every sentence comes back with
 * its BlankEN token ids.
 *
 * A frontend is read-only after open: frontend_run() is thread-safe, so the
 * HTTP thread (/v1/text/normalize) and the worker may share one.
 *
 * Files: <dir>/tokenizer/{vocab.json,merges.txt,special_tokens.json} (or the
 * three files directly in tokenizer_dir) and the TN grammars in tn_dir
 * (the compiled FSTs that the `wetext` package ships). tn_dir may be NULL:
 * then normalize=1 still applies the frontend's own rules and splitting but
 * no grammar, and frontend_has_tn() says so.
 */
#ifndef CV_ENGINE_FRONTEND_H
#define CV_ENGINE_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FRONTEND_MAX_SENTENCES 4096
#define FRONTEND_PATH_MAX      4096

struct frontend;

struct frontend_limits {
	size_t max_input_bytes;		/* refuse longer input (CV_E2BIG); 0 = 1 MiB */
	size_t max_tokens_per_sentence; /* refuse a sentence with more ids (CV_E2BIG); 0 = 512 */
	size_t split_max_tokens;	/* split_paragraph token_max_n (min_n and merge_len scale
					 * with it as 60/80 and 20/80); 0 = 80, the reference */
};

struct frontend_sentence {
	char *text;   /* normalized sentence, UTF-8 */
	int32_t *ids; /* BlankEN token ids */
	size_t n_ids;
};

struct frontend_result {
	size_t n;
	struct frontend_sentence *s;
	int lang_zh; /* 1 when the zh path was taken (reference: contains Chinese) */
};

int frontend_open(const char *tokenizer_dir, const char *tn_dir, const struct frontend_limits *lim,
		  struct frontend **out, char *err, size_t errlen);
/* The frontend of a bundle-shaped directory: dir/tokenizer and, when it exists, dir/tn (a model
 * bundle, or tools/export/fetch_tn.sh output). The one place that knows this layout. */
int frontend_open_dir(const char *dir, const struct frontend_limits *lim, struct frontend **out, char *err,
		      size_t errlen);
int frontend_has_tn(const struct frontend *f);
/* Run the frontend; CV_EINVAL (invalid UTF-8, NUL...), CV_E2BIG (a limit), or
 * CV_OK with out filled (out->n may be 0 when nothing speakable remains). */
int frontend_run(const struct frontend *f, const char *text, size_t len, int normalize,
		 struct frontend_result *out, char *err, size_t errlen);
void frontend_result_free(struct frontend_result *r);
/* The tokenizer inside (for prompt text, instructions). */
const struct tokenizer *frontend_tokenizer(const struct frontend *f);
void frontend_free(struct frontend *f);

#ifdef __cplusplus
}
#endif
#endif
