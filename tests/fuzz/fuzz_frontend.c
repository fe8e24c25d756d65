/* tests/fuzz/fuzz_frontend.c — libFuzzer target: the text frontend
 * (normalizer, rules, splitter, tokenizer) and its pieces on any bytes.
 *
 * The first byte picks the mode; the rest is the text. Runs frontend_run
 * with normalize=1 and 0, split_paragraph directly (zh and en), wetext's
 * token reordering, and number spelling on digit runs. The TN grammars are
 * used when build/frontend/tn holds them (tools/export/fetch_tn.sh; `make fuzz` fetches them)
 * and the input is short: the en grammar costs milliseconds per byte, more
 * under ASan. Every result must be well-formed: valid UTF-8 sentences with
 * ids, or CV_EINVAL / CV_E2BIG with an error text. Run from the repository root. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"
#include "engine/text/frontend.h"
#include "engine/text/numwords.h"
#include "engine/text/split.h"
#include "engine/text/tn.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utext.h"
#include "handlers/text_reply.h"

#define MODEL_DIR "models/CosyVoice-BlankEN"
#define TN_DIR	  "build/frontend/tn"
#define TN_MAX	  128

static void check_result(const struct frontend_result *r, int rc, const char *err)
{
	if (rc != CV_OK) {
		if ((rc != CV_EINVAL && rc != CV_E2BIG) || err[0] == '\0')
			abort();
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		size_t bad;
		if (!r->s[i].text || !utf8_validate(r->s[i].text, strlen(r->s[i].text), &bad))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frontend *plain, *withtn;
	static int init;
	char err[512] = "";
	if (!init) {
		init = 1;
		if (frontend_open(MODEL_DIR, NULL, NULL, &plain, err, sizeof err) != CV_OK) {
			fprintf(stderr, "frontend_open: %s\n", err);
			abort();
		}
		if (frontend_open(MODEL_DIR, TN_DIR, NULL, &withtn, err, sizeof err) != CV_OK) {
			fprintf(stderr, "fuzz_frontend: no TN grammars in %s (%s): fuzzing without them\n",
				TN_DIR, err);
			withtn = NULL;
		}
	}
	if (size == 0)
		return 0;
	uint8_t mode = data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	struct frontend_result r;

	const struct frontend *f = (withtn && len <= TN_MAX && (mode & 1)) ? withtn : plain;
	err[0] = '\0';
	int rc = frontend_run(f, text, len, (mode & 2) ? 0 : 1, &r, err, sizeof err);
	check_result(&r, rc, err);
	if (rc == CV_OK) {
		char *js = text_reply_json(&r);
		if (!js)
			abort();
		free(js);
		frontend_result_free(&r);
	}

	struct utext t;
	utext_init(&t);
	if (utext_append_utf8(&t, text, len, NULL) == CV_OK) {
		struct split_result sp;
		if (split_paragraph(t.c, t.n, (mode >> 2) & 1, frontend_tokenizer(plain), NULL, &sp, err,
				    sizeof err) == CV_OK)
			split_result_free(&sp);
		/* number spelling on each digit run (bounded) */
		size_t i = 0;
		while (i < t.n) {
			if (!utext_is_py_digit(t.c[i])) {
				i++;
				continue;
			}
			size_t j = i;
			while (j < t.n && utext_is_py_digit(t.c[j]) && j - i < 64)
				j++;
			struct utext w;
			utext_init(&w);
			int nr = numwords_append(t.c + i, j - i, &w);
			if (nr != CV_OK && nr != CV_EINVAL)
				abort();
			utext_free(&w);
			i = j;
		}
	}
	utext_free(&t);

	char *ro = NULL;
	size_t rl = 0;
	if (len > 0 && tn_reorder(text, len, (mode & 8) ? TN_LANG_EN : TN_LANG_ZH, &ro, &rl) == CV_OK)
		free(ro);
	return 0;
}
