/* tests/unit/check_request.c — request parsing, validation and the error envelope. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"
#include "handlers/errors.h"
#include "handlers/request.h"

static const struct request_limits lim = {100, 60000, AUDIO_FMT_WAV};

static int parse(const char *body, struct tts_request *r, struct request_error *e)
{
	memset(e, 0, sizeof *e);
	return request_parse_tts(body, strlen(body), &lim, r, e);
}

START_TEST(tts_defaults_and_all_fields)
{
	struct tts_request r;
	struct request_error e;
	ck_assert_int_eq(parse("{\"text\":\"Hello\"}", &r, &e), CV_OK);
	ck_assert_str_eq(r.text, "Hello");
	ck_assert_int_eq(r.format, AUDIO_FMT_WAV);
	ck_assert_int_eq(r.sample_rate, 0);
	ck_assert_int_eq(r.stream, 0);
	ck_assert_float_eq(r.speed, 1.0f);
	ck_assert_int_eq(r.has_seed, 0);
	ck_assert_int_eq(r.normalize, 1);
	ck_assert_str_eq(r.speaker, "");
	request_free(&r);

	ck_assert_int_eq(
	    parse("{\"text\":\"你好\",\"speaker\":\"cmn\",\"format\":\"opus\",\"sample_rate\":48000,"
		  "\"stream\":true,\"speed\":1.5,\"seed\":42,\"normalize\":false,\"deadline_ms\":500}",
		  &r, &e),
	    CV_OK);
	ck_assert_str_eq(r.speaker, "cmn");
	ck_assert_int_eq(r.format, AUDIO_FMT_OPUS);
	ck_assert_int_eq(r.sample_rate, 48000);
	ck_assert_int_eq(r.stream, 1);
	ck_assert_float_eq_tol(r.speed, 1.5f, 1e-6);
	ck_assert_int_eq(r.has_seed, 1);
	ck_assert_uint_eq(r.seed, 42);
	ck_assert_int_eq(r.normalize, 0);
	ck_assert_int_eq(r.deadline_ms, 500);
	ck_assert_uint_eq(r.text_chars, 2);
	ck_assert_uint_eq(r.text_bytes, 6);
	request_free(&r);
	request_free(&r);
}
END_TEST

static const struct bad_case {
	const char *body;
	int status;
	const char *field; /* "" = no field */
} bad_cases[] = {
    {"", 400, ""},
    {"{", 400, ""},
    {"{\"text\":\"abc\"", 400, ""},
    {"[1,2]", 400, ""},
    {"\"text\"", 400, ""},
    {"{\"text\":\"a\",\"text\":\"b\"}", 400, ""},
    {"{}", 400, "text"},
    {"{\"text\":5}", 400, "text"},
    {"{\"text\":null}", 400, "text"},
    {"{\"text\":\"\"}", 400, "text"},
    {"{\"text\":\" \\t\\n\\u3000 \"}", 400, "text"},
    {"{\"text\":\"a\\u0000b\"}", 400, "text"},
    {"{\"text\":\"a\",\"speaker\":7}", 400, "speaker"},
    {"{\"text\":\"a\",\"speaker\":\"a\\u0001\"}", 400, "speaker"},
    {"{\"text\":\"a\",\"format\":\"ogg\"}", 400, "format"},
    {"{\"text\":\"a\",\"format\":\"WAV\"}", 400, "format"},
    {"{\"text\":\"a\",\"sample_rate\":12345}", 400, "sample_rate"},
    {"{\"text\":\"a\",\"sample_rate\":\"24000\"}", 400, "sample_rate"},
    {"{\"text\":\"a\",\"sample_rate\":24000.5}", 400, "sample_rate"},
    {"{\"text\":\"a\",\"stream\":\"yes\"}", 400, "stream"},
    {"{\"text\":\"a\",\"speed\":0}", 400, "speed"},
    {"{\"text\":\"a\",\"speed\":3.0}", 400, "speed"},
    {"{\"text\":\"a\",\"speed\":\"fast\"}", 400, "speed"},
    {"{\"text\":\"a\",\"seed\":-1}", 400, "seed"},
    {"{\"text\":\"a\",\"seed\":1.5}", 400, "seed"},
    {"{\"text\":\"a\",\"seed\":9007199254740993}", 400, "seed"},
    {"{\"text\":\"a\",\"normalize\":1}", 400, "normalize"},
    {"{\"text\":\"a\",\"deadline_ms\":0}", 400, "deadline_ms"},
    {"{\"text\":\"a\",\"deadline_ms\":60001}", 400, "deadline_ms"},
    {"{\"text\":\"a\",\"colour\":\"red\"}", 400, "colour"},
    {"{\"txt\":\"a\"}", 400, "txt"},
};

START_TEST(tts_bad_inputs)
{
	const struct bad_case *bc = &bad_cases[_i];
	struct tts_request r;
	struct request_error e;
	int rc = parse(bc->body, &r, &e);
	ck_assert_msg(rc != CV_OK, "case %d accepted: %s", _i, bc->body);
	ck_assert_int_eq(e.status, bc->status);
	ck_assert_msg(strcmp(e.field, bc->field) == 0, "case %d: field '%s' expected '%s' (%s)", _i, e.field,
		      bc->field, e.message);
	ck_assert_msg(e.message[0] != '\0', "case %d has no message", _i);
	ck_assert_ptr_null(r.text);
}
END_TEST

START_TEST(tts_text_limit_and_utf8)
{
	struct tts_request r;
	struct request_error e;
	char body[512];
	char text[304];
	/* 100 CJK characters (300 bytes) are within a 100-character limit... */
	text[0] = '\0';
	for (int i = 0; i < 100; i++)
		memcpy(text + 3 * i, "字", 4);
	snprintf(body, sizeof body, "{\"text\":\"%s\"}", text);
	ck_assert_int_eq(parse(body, &r, &e), CV_OK);
	ck_assert_uint_eq(r.text_chars, 100);
	request_free(&r);
	/* ...101 are not: 413 naming text. */
	snprintf(body, sizeof body, "{\"text\":\"%s字\"}", text);
	ck_assert_int_eq(parse(body, &r, &e), CV_E2BIG);
	ck_assert_int_eq(e.status, 413);
	ck_assert_str_eq(e.field, "text");
	/* Invalid UTF-8 in the body is refused before JSON parsing. */
	ck_assert_int_eq(parse("{\"text\":\"a\xff\"}", &r, &e), CV_EINVAL);
	ck_assert_int_eq(e.status, 400);
	ck_assert_ptr_nonnull(strstr(e.message, "UTF-8"));
	/* Overlong and surrogate encodings are invalid too. */
	ck_assert_int_eq(utf8_validate("\xc0\xaf", 2, NULL), 0);
	ck_assert_int_eq(utf8_validate("\xed\xa0\x80", 3, NULL), 0);
	ck_assert_int_eq(utf8_validate("\xf4\x90\x80\x80", 4, NULL), 0);
	ck_assert_int_eq(utf8_validate("\xf0\x9f\x98\x80", 4, NULL), 1);
}
END_TEST

START_TEST(openai_mapping)
{
	struct tts_request r;
	struct request_error e;
	const char *b = "{\"model\":\"tts-1\",\"input\":\"Hi there\",\"voice\":\"alloy\",\"extra\":1}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_OK);
	ck_assert_int_eq(r.format, AUDIO_FMT_MP3);
	ck_assert_int_eq(r.stream, 1);
	ck_assert_int_eq(r.openai_voice, 1);
	ck_assert_str_eq(r.speaker, "alloy");
	request_free(&r);
	b = "{\"input\":\"x\",\"voice\":\"en\",\"response_format\":\"pcm\",\"speed\":4.0}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_OK);
	ck_assert_int_eq(r.format, AUDIO_FMT_PCM);
	ck_assert_int_eq(r.sample_rate, 24000);
	ck_assert_float_eq(r.speed, 2.0f);
	ck_assert_int_eq(r.openai_voice, 0);
	request_free(&r);
	b = "{\"input\":\"x\",\"response_format\":\"aac\"}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_EINVAL);
	ck_assert_str_eq(e.field, "response_format");
	b = "{\"input\":\"x\",\"stream_format\":\"sse\"}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_EINVAL);
	ck_assert_str_eq(e.field, "stream_format");
	b = "{\"voice\":\"alloy\"}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_EINVAL);
	ck_assert_str_eq(e.field, "input");
	b = "{\"input\":\"x\",\"speed\":5}";
	ck_assert_int_eq(request_parse_openai(b, strlen(b), &lim, &r, &e), CV_EINVAL);
	ck_assert_str_eq(e.field, "speed");
}
END_TEST

START_TEST(openai_input_cap_is_4096)
{
	struct request_limits big = {100000, 60000, AUDIO_FMT_WAV};
	struct tts_request r;
	struct request_error e;
	size_t n = 4097;
	char *body = malloc(n + 32);
	memcpy(body, "{\"input\":\"", 10);
	memset(body + 10, 'a', n);
	memcpy(body + 10 + n, "\"}", 3);
	ck_assert_int_eq(request_parse_openai(body, strlen(body), &big, &r, &e), CV_E2BIG);
	ck_assert_int_eq(e.status, 413);
	ck_assert_str_eq(e.field, "input");
	memcpy(body + 10 + n - 1, "\"}", 3);
	ck_assert_int_eq(request_parse_openai(body, strlen(body), &big, &r, &e), CV_OK);
	ck_assert_uint_eq(r.text_chars, 4096);
	request_free(&r);
	free(body);
}
END_TEST

START_TEST(error_envelopes)
{
	struct buf b;
	json_t *j, *err;
	buf_init(&b, 4096);
	ck_assert_int_eq(errors_render(&b, ERRORS_STYLE_HOUSE, 400, "text", "text: \"bad\"\n", "rid-1"),
			 CV_OK);
	j = json_loads(buf_data(&b), 0, NULL);
	ck_assert_ptr_nonnull(j);
	err = json_object_get(j, "error");
	ck_assert_int_eq(json_integer_value(json_object_get(err, "code")), 400);
	ck_assert_str_eq(json_string_value(json_object_get(err, "type")), "invalid_request");
	ck_assert_str_eq(json_string_value(json_object_get(err, "field")), "text");
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")), "text: \"bad\"\n");
	ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "rid-1");
	json_decref(j);

	ck_assert_int_eq(errors_render(&b, ERRORS_STYLE_OPENAI, 503, NULL, "busy", "rid"), CV_OK);
	j = json_loads(buf_data(&b), 0, NULL);
	err = json_object_get(j, "error");
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")), "busy");
	ck_assert(json_is_null(json_object_get(err, "param")));
	ck_assert(json_is_null(json_object_get(err, "code")));
	ck_assert_ptr_null(json_object_get(j, "request_id"));
	json_decref(j);

	/* Invalid UTF-8 in a message never breaks the envelope. */
	ck_assert_int_eq(errors_render(&b, ERRORS_STYLE_HOUSE, 422, "speaker", "bad \xff", NULL), CV_OK);
	j = json_loads(buf_data(&b), 0, NULL);
	ck_assert_ptr_nonnull(j);
	json_decref(j);
	buf_free(&b);

	ck_assert_int_eq(errors_status_for_code(CV_EINVAL), 400);
	ck_assert_int_eq(errors_status_for_code(CV_E2BIG), 413);
	ck_assert_int_eq(errors_status_for_code(CV_EFULL), 503);
	ck_assert_int_eq(errors_status_for_code(CV_ETIMEDOUT), 504);
	ck_assert_int_eq(errors_status_for_code(CV_ENOTFOUND), 422);
	ck_assert_int_eq(errors_status_for_code(CV_EENGINE), 500);
	ck_assert_str_eq(errors_type_for_status(401, ERRORS_STYLE_OPENAI), "authentication_error");
	ck_assert_str_eq(errors_type_for_status(504, ERRORS_STYLE_HOUSE), "deadline_exceeded");
}
END_TEST

Suite *suite_request(void);
Suite *suite_request(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, tts_defaults_and_all_fields);
	tcase_add_loop_test(tc, tts_bad_inputs, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, tts_text_limit_and_utf8);
	tcase_add_test(tc, openai_mapping);
	tcase_add_test(tc, openai_input_cap_is_4096);
	tcase_add_test(tc, error_envelopes);
	suite_add_tcase(s, tc);
	return s;
}
