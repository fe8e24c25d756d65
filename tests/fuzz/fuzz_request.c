/* tests/fuzz/fuzz_request.c — libFuzzer target: both request dialects and the
 * error envelope must accept any bytes without crashing or leaking. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "handlers/errors.h"
#include "handlers/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct request_limits lim = {4096, 60000, AUDIO_FMT_WAV};
	struct tts_request r;
	struct request_error e;
	struct buf b;

	memset(&e, 0, sizeof e);
	if (request_parse_tts((const char *)data, size, &lim, &r, &e) == 0)
		request_free(&r);
	buf_init(&b, 8192);
	errors_render(&b, ERRORS_STYLE_HOUSE, e.status ? e.status : 200, e.field[0] ? e.field : NULL,
		      e.message, "fuzz");
	buf_free(&b);
	memset(&e, 0, sizeof e);
	if (request_parse_openai((const char *)data, size, &lim, &r, &e) == 0)
		request_free(&r);
	return 0;
}
