/* handlers/request.c — JSON request bodies → struct tts_request.
 *
 * DESIGN: jansson parses with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL so that
 * a "\u0000" inside text reaches us and is refused by name instead of being
 * reported as a generic parse error. Each field has one small validator;
 * the first failure fills struct request_error (status + field + message)
 * and parsing stops. The house dialect refuses unknown fields (typos such as
 * "sampel_rate" must not be silently ignored); the OpenAI dialect ignores
 * them, as OpenAI clients send extras.
 */
#include "handlers/request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/utf8.h"

static int request_fail(struct request_error *e, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int request_fail(struct request_error *e, int status, const char *field, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	cv_strlcpy(e->field, field ? field : "", sizeof e->field);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return status == 413 ? CV_E2BIG : CV_EINVAL;
}

int request_rate_allowed(int rate)
{
	static const int rates[] = {8000, 16000, 22050, 24000, 44100, 48000};
	for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
		if (rates[i] == rate)
			return 1;
	return 0;
}

int request_is_openai_voice(const char *name)
{
	static const char *const voices[] = {"alloy", "ash",  "ballad",	 "coral", "echo",  "fable", "onyx",
					     "nova",  "sage", "shimmer", "verse", "marin", "cedar"};
	for (size_t i = 0; i < sizeof voices / sizeof voices[0]; i++)
		if (strcmp(voices[i], name) == 0)
			return 1;
	return 0;
}

static json_t *request_load(const char *body, size_t len, struct request_error *e)
{
	json_error_t jerr;
	size_t bad;
	json_t *root;

	if (!utf8_validate(body, len, &bad)) {
		request_fail(e, 400, NULL, "body is not valid UTF-8 (byte offset %zu)", bad);
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root) {
		request_fail(e, 400, NULL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
			     jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		request_fail(e, 400, NULL, "body must be a JSON object");
		return NULL;
	}
	return root;
}

/* Validate and copy the text field. */
static int request_take_text(json_t *v, const char *field, size_t max_chars, struct tts_request *out,
			     struct request_error *e)
{
	const char *s;
	size_t len, i, chars;
	int blank = 1;

	if (!v)
		return request_fail(e, 400, field, "%s: required", field);
	if (!json_is_string(v))
		return request_fail(e, 400, field, "%s: must be a string", field);
	s = json_string_value(v);
	len = json_string_length(v);
	if (memchr(s, '\0', len))
		return request_fail(e, 400, field, "%s: must not contain NUL characters", field);
	chars = utf8_count(s, len);
	if (chars > max_chars)
		return request_fail(e, 413, field, "%s: %zu characters is over the limit of %zu", field,
				    chars, max_chars);
	for (i = 0; i < len && blank;) {
		uint32_t cp;
		i += utf8_decode(s + i, len - i, &cp);
		if (!utf8_is_space(cp))
			blank = 0;
	}
	if (blank)
		return request_fail(e, 400, field, "%s: must contain some non-blank text", field);
	out->text = xstrndup(s, len);
	out->text_bytes = len;
	out->text_chars = chars;
	return CV_OK;
}

static int request_take_speaker(json_t *v, const char *field, struct tts_request *out,
				struct request_error *e)
{
	const char *s;
	size_t len;

	if (!v || json_is_null(v))
		return CV_OK;
	if (!json_is_string(v))
		return request_fail(e, 400, field, "%s: must be a string", field);
	s = json_string_value(v);
	len = json_string_length(v);
	if (len == 0)
		return CV_OK;
	if (len >= sizeof out->speaker || memchr(s, '\0', len))
		return request_fail(e, 400, field, "%s: must be a speaker id of at most %zu bytes", field,
				    sizeof out->speaker - 1);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return request_fail(e, 400, field, "%s: must not contain control characters", field);
	memcpy(out->speaker, s, len + 1);
	return CV_OK;
}

static int request_take_format(json_t *v, const char *field, struct tts_request *out, struct request_error *e)
{
	if (!v || json_is_null(v))
		return CV_OK;
	if (!json_is_string(v))
		return request_fail(e, 400, field, "%s: must be a string", field);
	if (audio_format_parse(json_string_value(v), &out->format) != CV_OK)
		return request_fail(e, 400, field, "%s: must be one of wav, opus, pcm, flac, mp3", field);
	return CV_OK;
}

static int request_take_bool(json_t *v, const char *field, int *dst, struct request_error *e)
{
	if (!v || json_is_null(v))
		return CV_OK;
	if (!json_is_boolean(v))
		return request_fail(e, 400, field, "%s: must be true or false", field);
	*dst = json_is_true(v);
	return CV_OK;
}

static int request_take_number(json_t *v, const char *field, double lo, double hi, double *dst,
			       struct request_error *e)
{
	double d;
	if (!v || json_is_null(v))
		return CV_OK;
	if (!json_is_number(v))
		return request_fail(e, 400, field, "%s: must be a number", field);
	d = json_number_value(v);
	if (!isfinite(d) || d < lo || d > hi)
		return request_fail(e, 400, field, "%s: must be between %g and %g", field, lo, hi);
	*dst = d;
	return CV_OK;
}

static int request_take_int(json_t *v, const char *field, long long lo, long long hi, long long *dst,
			    struct request_error *e)
{
	long long n;
	if (!v || json_is_null(v))
		return CV_OK;
	if (!json_is_integer(v))
		return request_fail(e, 400, field, "%s: must be an integer", field);
	n = json_integer_value(v);
	if (n < lo || n > hi)
		return request_fail(e, 400, field, "%s: must be between %lld and %lld", field, lo, hi);
	*dst = n;
	return CV_OK;
}

static void request_defaults(struct tts_request *out, const struct request_limits *lim)
{
	memset(out, 0, sizeof *out);
	out->format = lim->default_format;
	out->speed = 1.0f;
	out->normalize = 1;
}

/* Refuse any field not in known[] (house dialects), naming it safely. */
static int request_check_fields(json_t *root, const char *const *known, size_t n_known,
				struct request_error *e)
{
	const char *key;
	json_t *v;

	json_object_foreach(root, key, v)
	{
		size_t i;
		for (i = 0; i < n_known; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == n_known) {
			char shown[24];
			size_t bad;
			/* Never echo invalid or huge keys back. */
			if (!utf8_validate(key, strlen(key), &bad) || strlen(key) >= sizeof shown)
				cv_strlcpy(shown, "(long key)", sizeof shown);
			else
				cv_strlcpy(shown, key, sizeof shown);
			return request_fail(e, 400, shown, "%s: unknown field", shown);
		}
	}
	return CV_OK;
}

int request_parse_tts(const char *body, size_t len, const struct request_limits *lim, struct tts_request *out,
		      struct request_error *e)
{
	static const char *const known[] = {"text",  "speaker", "format",    "sample_rate", "stream",
					    "speed", "seed",	"normalize", "deadline_ms"};
	json_t *root;
	double speed = 1.0;
	long long n;
	int rc;

	request_defaults(out, lim);
	root = request_load(body, len, e);
	if (!root)
		return CV_EINVAL;
	if ((rc = request_check_fields(root, known, sizeof known / sizeof known[0], e)))
		goto done;
	if ((rc = request_take_text(json_object_get(root, "text"), "text", lim->max_text_chars, out, e)))
		goto done;
	if ((rc = request_take_speaker(json_object_get(root, "speaker"), "speaker", out, e)))
		goto done;
	if ((rc = request_take_format(json_object_get(root, "format"), "format", out, e)))
		goto done;
	n = 0;
	if ((rc = request_take_int(json_object_get(root, "sample_rate"), "sample_rate", 1, 1000000, &n, e)))
		goto done;
	if (n && !request_rate_allowed((int)n)) {
		rc = request_fail(e, 400, "sample_rate",
				  "sample_rate: must be one of 8000, 16000, 22050, 24000, 44100, 48000");
		goto done;
	}
	out->sample_rate = (int)n;
	if ((rc = request_take_bool(json_object_get(root, "stream"), "stream", &out->stream, e)))
		goto done;
	if ((rc = request_take_number(json_object_get(root, "speed"), "speed", REQUEST_SPEED_MIN,
				      REQUEST_SPEED_MAX, &speed, e)))
		goto done;
	out->speed = (float)speed;
	n = -1;
	if ((rc = request_take_int(json_object_get(root, "seed"), "seed", 0, REQUEST_SEED_MAX, &n, e)))
		goto done;
	if (n >= 0) {
		out->seed = (uint64_t)n;
		out->has_seed = 1;
	}
	if ((rc = request_take_bool(json_object_get(root, "normalize"), "normalize", &out->normalize, e)))
		goto done;
	n = 0;
	if ((rc = request_take_int(json_object_get(root, "deadline_ms"), "deadline_ms", 1,
				   lim->max_deadline_ms, &n, e)))
		goto done;
	out->deadline_ms = (int)n;
done:
	json_decref(root);
	if (rc)
		request_free(out);
	return rc;
}

int request_parse_openai(const char *body, size_t len, const struct request_limits *lim,
			 struct tts_request *out, struct request_error *e)
{
	json_t *root, *v;
	double speed = 1.0;
	size_t max_chars =
	    lim->max_text_chars < REQUEST_OPENAI_INPUT_MAX ? lim->max_text_chars : REQUEST_OPENAI_INPUT_MAX;
	int rc;

	request_defaults(out, lim);
	out->format = AUDIO_FMT_MP3;
	out->stream = 1;
	root = request_load(body, len, e);
	if (!root)
		return CV_EINVAL;
	v = json_object_get(root, "model");
	if (v && !json_is_string(v)) {
		rc = request_fail(e, 400, "model", "model: must be a string");
		goto done;
	}
	if ((rc = request_take_text(json_object_get(root, "input"), "input", max_chars, out, e)))
		goto done;
	v = json_object_get(root, "voice");
	if (v && json_is_object(v))
		v = json_object_get(v, "id"); /* custom-voice object {"id": "..."} */
	if ((rc = request_take_speaker(v, "voice", out, e)))
		goto done;
	out->openai_voice = out->speaker[0] && request_is_openai_voice(out->speaker);
	v = json_object_get(root, "response_format");
	if (v && json_is_string(v) && strcmp(json_string_value(v), "aac") == 0) {
		rc = request_fail(e, 400, "response_format",
				  "response_format: aac is not supported; use mp3, opus, wav, flac or pcm");
		goto done;
	}
	if ((rc = request_take_format(v, "response_format", out, e)))
		goto done;
	if (out->format == AUDIO_FMT_PCM)
		out->sample_rate = 24000; /* OpenAI's pcm is 24 kHz s16le */
	if ((rc = request_take_number(json_object_get(root, "speed"), "speed", 0.25, 4.0, &speed, e)))
		goto done;
	if (speed < REQUEST_SPEED_MIN)
		speed = REQUEST_SPEED_MIN;
	if (speed > REQUEST_SPEED_MAX)
		speed = REQUEST_SPEED_MAX;
	out->speed = (float)speed;
	v = json_object_get(root, "stream_format");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			rc = request_fail(e, 400, "stream_format", "stream_format: must be a string");
			goto done;
		}
		if (strcmp(json_string_value(v), "sse") == 0) {
			rc = request_fail(e, 400, "stream_format",
					  "stream_format: sse is not supported; use audio");
			goto done;
		}
		if (strcmp(json_string_value(v), "audio") != 0) {
			rc = request_fail(e, 400, "stream_format", "stream_format: must be audio");
			goto done;
		}
	}
	v = json_object_get(root, "instructions");
	if (v && !json_is_null(v) && !json_is_string(v)) {
		rc = request_fail(e, 400, "instructions", "instructions: must be a string");
		goto done;
	}
	rc = CV_OK;
done:
	json_decref(root);
	if (rc)
		request_free(out);
	return rc;
}

int request_parse_normalize(const char *body, size_t len, const struct request_limits *lim,
			    struct tts_request *out, struct request_error *e)
{
	static const char *const known[] = {"text", "normalize"};
	json_t *root;
	int rc;

	request_defaults(out, lim);
	root = request_load(body, len, e);
	if (!root)
		return CV_EINVAL;
	if ((rc = request_check_fields(root, known, sizeof known / sizeof known[0], e)))
		goto done;
	if ((rc = request_take_text(json_object_get(root, "text"), "text", lim->max_text_chars, out, e)))
		goto done;
	rc = request_take_bool(json_object_get(root, "normalize"), "normalize", &out->normalize, e);
done:
	json_decref(root);
	if (rc)
		request_free(out);
	return rc;
}

void request_free(struct tts_request *r)
{
	free(r->text);
	r->text = NULL;
}
