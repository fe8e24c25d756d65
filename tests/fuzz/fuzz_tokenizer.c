/* tests/fuzz/fuzz_tokenizer.c — libFuzzer target: the BlankEN tokenizer must
 * take any bytes (invalid UTF-8, NUL, special-token fragments) without
 * crashing, reading out of bounds or leaking; valid input must round-trip
 * through decode. Run from the repository root (the model path is relative). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "engine/text/tokenizer.h"

#define MODEL_DIR "models/CosyVoice-BlankEN"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tokenizer *tok;
	char err[256];
	if (!tok && tokenizer_open(MODEL_DIR, &tok, err, sizeof err) != CV_OK) {
		fprintf(stderr, "tokenizer_open: %s\n", err);
		abort();
	}
	int32_t *ids = malloc((size + 1) * sizeof *ids);
	if (!ids)
		return 0;
	size_t n = 0;
	int rc = tokenizer_encode(tok, (const char *)data, size, ids, size + 1, &n, err, sizeof err);
	if (rc == CV_OK) {
		struct buf b;
		buf_init(&b, size * 4 + 64);
		if (tokenizer_decode(tok, ids, n, 0, &b, err, sizeof err) != CV_OK)
			abort();
		/* NFC may change the text; lengths aside, decode must succeed. */
		buf_free(&b);
	} else if (rc != CV_EINVAL && rc != CV_E2BIG) {
		abort();
	}
	free(ids);
	return 0;
}
