/* tests/integration/check_bad_inputs.c — bad input everywhere gets the
 * documented status and envelope (naming the field at fault), and the daemon
 * keeps serving: a table of JSON/HTTP mistakes on /tts and /v1/audio/speech,
 * bodies over the cap (refused from Content-Length before the body is sent,
 * and chunked), malformed HTTP on raw sockets, hostile X-Request-Id values,
 * a slow client that stalls mid-body (dropped after connection_timeout_s
 * while others are served), and API keys. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tests/integration/harness.h"

#define API_KEY "testkey-12345678"

/* Rejections counted before the table ran (scraped by the fixture, in the
 * runner, so every forked test sees it). */
static double rejections_before = -1;

static void table_setup(void)
{
	static const char *const args[] = {"--connection-timeout-s", "2", "--max-text-chars", "5000", NULL};
	harness_start(args);
	rejections_before = scrape_metric("cosyvoiced_rejections_total");
}

enum envelope { ENV_HOUSE, ENV_OPENAI, ENV_NONE };

struct bad_case {
	const char *name;
	const char *path;   /* NULL = /tts */
	const char *method; /* NULL = POST */
	const char *ctype;  /* NULL = application/json, "" = none */
	const char *body;   /* NULL: built by `build` */
	size_t len;	    /* 0 = strlen(body) */
	char *(*build)(void);
	long status;
	enum envelope env;
	const char *field; /* field / param the error must name; NULL = not checked */
};

static char *text_5001(void)
{
	char *t = make_text(5001, 1);
	size_t n = strlen(t) + 64;
	char *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	snprintf(b, n, "{\"text\": \"%s\"}", t);
	free(t);
	return b;
}

/* 5001 two-byte characters: over max_text_chars (5000) by characters, and
 * 10002 bytes, well under max_body_bytes. */
static char *text_5001_multibyte(void)
{
	size_t n = 5001 * 2 + 64;
	char *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	size_t k = (size_t)snprintf(b, n, "{\"text\": \"");
	for (int i = 0; i < 5001; i++) {
		b[k++] = (char)0xc3;
		b[k++] = (char)0xa9; /* é */
	}
	snprintf(b + k, n - k, "\"}");
	return b;
}

static char *input_4097(void)
{
	char *t = make_text(4097, 2);
	size_t n = strlen(t) + 128;
	char *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	snprintf(b, n, "{\"model\": \"tts-1\", \"voice\": \"alloy\", \"input\": \"%s\"}", t);
	free(t);
	return b;
}

#define SPEECH "/v1/audio/speech"

static const struct bad_case cases[] = {
    /* JSON shape */
    {"malformed_json", NULL, NULL, NULL, "{\"text\": \"hi\",}", 0, NULL, 400, ENV_HOUSE, NULL},
    {"truncated_json", NULL, NULL, NULL, "{\"text\": \"hel", 0, NULL, 400, ENV_HOUSE, NULL},
    {"array_not_object", NULL, NULL, NULL, "[\"hello\"]", 0, NULL, 400, ENV_HOUSE, NULL},
    {"string_not_object", NULL, NULL, NULL, "\"hello\"", 0, NULL, 400, ENV_HOUSE, NULL},
    {"empty_body", NULL, NULL, NULL, "", 0, NULL, 400, ENV_HOUSE, NULL},
    {"duplicate_key", NULL, NULL, NULL, "{\"text\": \"a\", \"text\": \"b\"}", 0, NULL, 400, ENV_HOUSE, NULL},
    /* text */
    {"text_number", NULL, NULL, NULL, "{\"text\": 5}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_null", NULL, NULL, NULL, "{\"text\": null}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_array", NULL, NULL, NULL, "{\"text\": [\"a\"]}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_missing", NULL, NULL, NULL, "{\"speaker\": \"en\"}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_empty", NULL, NULL, NULL, "{\"text\": \"\"}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_whitespace", NULL, NULL, NULL, "{\"text\": \" \\t\\n\\r  \"}", 0, NULL, 400, ENV_HOUSE, "text"},
    {"text_invalid_utf8", NULL, NULL, NULL, "{\"text\": \"caf\xc3 \xff ok\"}", 0, NULL, 400, ENV_HOUSE, NULL},
    {"text_overlong_utf8", NULL, NULL, NULL, "{\"text\": \"a\xc0\xaf b\"}", 0, NULL, 400, ENV_HOUSE, NULL},
    {"text_lone_surrogate", NULL, NULL, NULL, "{\"text\": \"a\\ud800b\"}", 0, NULL, 400, ENV_HOUSE, NULL},
    {"text_nul_escape", NULL, NULL, NULL, "{\"text\": \"a\\u0000b\"}", 0, NULL, 400, ENV_HOUSE, NULL},
    {"text_over_max_chars", NULL, NULL, NULL, NULL, 0, text_5001, 413, ENV_HOUSE, "text"},
    {"text_over_max_chars_multibyte", NULL, NULL, NULL, NULL, 0, text_5001_multibyte, 413, ENV_HOUSE, "text"},
    /* other fields */
    {"speaker_unknown", NULL, NULL, NULL, "{\"text\": \"hi\", \"speaker\": \"klingon\"}", 0, NULL, 422,
     ENV_HOUSE, "speaker"},
    {"speaker_number", NULL, NULL, NULL, "{\"text\": \"hi\", \"speaker\": 7}", 0, NULL, 400, ENV_HOUSE,
     "speaker"},
    {"format_unknown", NULL, NULL, NULL, "{\"text\": \"hi\", \"format\": \"aac\"}", 0, NULL, 400, ENV_HOUSE,
     "format"},
    {"format_number", NULL, NULL, NULL, "{\"text\": \"hi\", \"format\": 1}", 0, NULL, 400, ENV_HOUSE,
     "format"},
    {"rate_12345", NULL, NULL, NULL, "{\"text\": \"hi\", \"sample_rate\": 12345}", 0, NULL, 400, ENV_HOUSE,
     "sample_rate"},
    {"rate_string", NULL, NULL, NULL, "{\"text\": \"hi\", \"sample_rate\": \"24000\"}", 0, NULL, 400,
     ENV_HOUSE, "sample_rate"},
    {"rate_zero", NULL, NULL, NULL, "{\"text\": \"hi\", \"sample_rate\": 0}", 0, NULL, 400, ENV_HOUSE,
     "sample_rate"},
    {"rate_fraction", NULL, NULL, NULL, "{\"text\": \"hi\", \"sample_rate\": 24000.5}", 0, NULL, 400,
     ENV_HOUSE, "sample_rate"},
    {"speed_zero", NULL, NULL, NULL, "{\"text\": \"hi\", \"speed\": 0}", 0, NULL, 400, ENV_HOUSE, "speed"},
    {"speed_3", NULL, NULL, NULL, "{\"text\": \"hi\", \"speed\": 3.0}", 0, NULL, 400, ENV_HOUSE, "speed"},
    {"speed_0_49", NULL, NULL, NULL, "{\"text\": \"hi\", \"speed\": 0.49}", 0, NULL, 400, ENV_HOUSE, "speed"},
    {"speed_fast", NULL, NULL, NULL, "{\"text\": \"hi\", \"speed\": \"fast\"}", 0, NULL, 400, ENV_HOUSE,
     "speed"},
    {"seed_negative", NULL, NULL, NULL, "{\"text\": \"hi\", \"seed\": -1}", 0, NULL, 400, ENV_HOUSE, "seed"},
    {"seed_fraction", NULL, NULL, NULL, "{\"text\": \"hi\", \"seed\": 1.5}", 0, NULL, 400, ENV_HOUSE, "seed"},
    {"seed_over_2p53", NULL, NULL, NULL, "{\"text\": \"hi\", \"seed\": 9007199254740994}", 0, NULL, 400,
     ENV_HOUSE, "seed"},
    {"stream_yes", NULL, NULL, NULL, "{\"text\": \"hi\", \"stream\": \"yes\"}", 0, NULL, 400, ENV_HOUSE,
     "stream"},
    {"stream_one", NULL, NULL, NULL, "{\"text\": \"hi\", \"stream\": 1}", 0, NULL, 400, ENV_HOUSE, "stream"},
    {"normalize_string", NULL, NULL, NULL, "{\"text\": \"hi\", \"normalize\": \"no\"}", 0, NULL, 400,
     ENV_HOUSE, "normalize"},
    {"deadline_zero", NULL, NULL, NULL, "{\"text\": \"hi\", \"deadline_ms\": 0}", 0, NULL, 400, ENV_HOUSE,
     "deadline_ms"},
    {"deadline_over_config", NULL, NULL, NULL, "{\"text\": \"hi\", \"deadline_ms\": 1000000000}", 0, NULL,
     400, ENV_HOUSE, "deadline_ms"},
    {"deadline_fraction", NULL, NULL, NULL, "{\"text\": \"hi\", \"deadline_ms\": 1.5}", 0, NULL, 400,
     ENV_HOUSE, "deadline_ms"},
    {"unknown_field", NULL, NULL, NULL, "{\"text\": \"hi\", \"volume\": 3}", 0, NULL, 400, ENV_HOUSE,
     "volume"},
    {"unknown_field_typo", NULL, NULL, NULL, "{\"text\": \"hi\", \"sampel_rate\": 24000}", 0, NULL, 400,
     ENV_HOUSE, "sampel_rate"},
    /* HTTP level */
    {"content_type_text", NULL, NULL, "text/plain", "{\"text\": \"hi\"}", 0, NULL, 415, ENV_HOUSE, NULL},
    {"content_type_form", NULL, NULL, "application/x-www-form-urlencoded", "{\"text\": \"hi\"}", 0, NULL, 415,
     ENV_HOUSE, NULL},
    {"content_type_missing", NULL, NULL, "", "{\"text\": \"hi\"}", 0, NULL, 415, ENV_HOUSE, NULL},
    {"content_type_jsonx", NULL, NULL, "application/jsonx", "{\"text\": \"hi\"}", 0, NULL, 415, ENV_HOUSE,
     NULL},
    {"wrong_method_get", NULL, "GET", NULL, NULL, 0, NULL, 405, ENV_HOUSE, NULL},
    {"wrong_method_put", NULL, "PUT", NULL, "{\"text\": \"hi\"}", 0, NULL, 405, ENV_HOUSE, NULL},
    {"unknown_path", "/tts/extra", NULL, NULL, "{\"text\": \"hi\"}", 0, NULL, 404, ENV_HOUSE, NULL},
    /* OpenAI route */
    {"openai_input_over_4096", SPEECH, NULL, NULL, NULL, 0, input_4097, 413, ENV_OPENAI, "input"},
    {"openai_aac", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\", \"response_format\": \"aac\"}", 0, NULL,
     400, ENV_OPENAI, "response_format"},
    {"openai_format_unknown", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\", \"response_format\": \"ogg\"}", 0, NULL,
     400, ENV_OPENAI, "response_format"},
    {"openai_sse", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\", \"stream_format\": \"sse\"}", 0, NULL,
     400, ENV_OPENAI, "stream_format"},
    {"openai_missing_input", SPEECH, NULL, NULL, "{\"model\": \"tts-1\", \"voice\": \"alloy\"}", 0, NULL, 400,
     ENV_OPENAI, "input"},
    {"openai_empty_input", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"\", \"voice\": \"alloy\"}", 0, NULL, 400, ENV_OPENAI, "input"},
    {"openai_input_number", SPEECH, NULL, NULL, "{\"model\": \"tts-1\", \"input\": 42, \"voice\": \"alloy\"}",
     0, NULL, 400, ENV_OPENAI, "input"},
    {"openai_unknown_voice", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"klingon\"}", 0, NULL, 422, ENV_OPENAI, "voice"},
    {"openai_speed_string", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\", \"speed\": \"fast\"}", 0, NULL, 400,
     ENV_OPENAI, "speed"},
    {"openai_speed_over_4", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\", \"speed\": 4.5}", 0, NULL, 400,
     ENV_OPENAI, "speed"},
    {"openai_malformed_json", SPEECH, NULL, NULL, "{\"input\": ", 0, NULL, 400, ENV_OPENAI, NULL},
    {"openai_content_type", SPEECH, NULL, "text/plain", "{\"input\": \"hi\"}", 0, NULL, 415, ENV_OPENAI,
     NULL},
    /* accepted: must not be refused by over-eager validation */
    {"ok_json_charset", NULL, NULL, "application/json; charset=utf-8", "{\"text\": \"Fine.\"}", 0, NULL, 200,
     ENV_NONE, NULL},
    {"ok_nulls_are_defaults", NULL, NULL, NULL,
     "{\"text\": \"Fine.\", \"speaker\": null, \"format\": null, \"speed\": null}", 0, NULL, 200, ENV_NONE,
     NULL},
    {"ok_openai_extra_fields", SPEECH, NULL, NULL,
     "{\"model\": \"tts-1\", \"input\": \"Fine.\", \"voice\": \"alloy\", \"foo\": 1, \"instructions\": "
     "\"calm\"}",
     0, NULL, 200, ENV_NONE, NULL},
    {"ok_speed_edges", NULL, NULL, NULL, "{\"text\": \"Fine.\", \"speed\": 2.0, \"seed\": 9007199254740992}",
     0, NULL, 200, ENV_NONE, NULL},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

START_TEST(bad_input_table)
{
	const struct bad_case *bc = &cases[_i];
	char *built = bc->build ? bc->build() : NULL;
	const char *body = built ? built : bc->body;
	struct http_req rq = {.path = bc->path ? bc->path : "/tts",
			      .method = bc->method ? bc->method : (body ? "POST" : "GET"),
			      .body = body,
			      .body_len = body ? (bc->len ? bc->len : strlen(body)) : 0,
			      .content_type = bc->ctype};
	struct http_resp r;
	int rc = http_do(&rq, &r);
	HCHECK(rc == 0, "%s: curl %d %s", bc->name, rc, r.curl_err);
	HCHECK(r.status == bc->status, "%s: status %ld, want %ld; body %.400s", bc->name, r.status,
	       bc->status, buf_data(&r.body));
	if (bc->env == ENV_HOUSE)
		check_house_error(&r, bc->status, house_type(bc->status), bc->field);
	else if (bc->env == ENV_OPENAI)
		check_openai_error(&r, bc->status, "invalid_request_error", bc->field);
	if (bc->status == 405) {
		const char *allow = http_header(&r, "Allow");
		HCHECK(allow && http_list_has(allow, "POST"), "%s: Allow %s", bc->name,
		       allow ? allow : "(none)");
	}
	http_resp_free(&r);
	free(built);
}
END_TEST

/* After the table: the daemon still serves, and it counted rejections. */
START_TEST(after_table_still_serving)
{
	check_serves_normal();
	/* Every 400/413/415/422 of the table is a rejection (404 and 405 are
	 * not: nothing was asked of the engine). */
	int expected = 0;
	for (int i = 0; i < N_CASES; i++)
		if (cases[i].status == 400 || cases[i].status == 413 || cases[i].status == 415 ||
		    cases[i].status == 422)
			expected++;
	double now = scrape_metric("cosyvoiced_rejections_total");
	HCHECK(now >= rejections_before + expected,
	       "cosyvoiced_rejections_total went from %g to %g, want +%d", rejections_before, now, expected);
}
END_TEST

/* Hostile X-Request-Id values are replaced by a generated id; the request
 * itself succeeds. */
START_TEST(request_id_replaced)
{
	char long_id[600] = "X-Request-Id: ";
	size_t k = strlen(long_id);
	for (int i = 0; i < 500; i++)
		long_id[k++] = 'a' + (char)(i % 26);
	long_id[k] = '\0';
	char at_limit[200] = "X-Request-Id: ";
	k = strlen(at_limit);
	for (int i = 0; i < 129; i++)
		at_limit[k++] = 'z';
	at_limit[k] = '\0';
	const char *values[] = {"X-Request-Id: bad\x01id",
				"X-Request-Id: has space",
				"X-Request-Id: semi;colon",
				"X-Request-Id: \xc3\xa9t\xc3\xa9",
				long_id,
				at_limit,
				NULL};
	for (size_t i = 0; values[i]; i++) {
		const char *hdrs[] = {values[i], NULL};
		struct http_req rq = {.path = "/tts",
				      .body = "{\"text\": \"Identify yourself.\"}",
				      .body_len = (size_t)-1,
				      .headers = hdrs};
		struct http_resp r;
		int rc = http_do(&rq, &r);
		HCHECK(rc == 0 && r.status == 200, "%.40s: curl %d status %ld %.300s", values[i], rc,
		       r.status, buf_data(&r.body));
		const char *id = http_header(&r, "X-Request-Id");
		HCHECK(is_hex32(id), "%.40s: X-Request-Id %s is not a generated 32-hex id", values[i],
		       id ? id : "(none)");
		http_resp_free(&r);
	}
}
END_TEST

/* Content-Length over max_body_bytes: 413 arrives although no body byte was
 * sent. */
START_TEST(body_over_cap_refused_from_headers)
{
	int fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	const char *req = "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Content-Length: 100000000\r\n\r\n";
	ck_assert_int_eq(raw_send(fd, req, strlen(req)), 0);
	struct buf resp;
	buf_init(&resp, 1 << 20);
	raw_read_until(fd, &resp, "}", harness_scale(10));
	HCHECK(raw_status(&resp) == 413, "got %.300s", buf_data(&resp));
	HCHECK(strstr(buf_data(&resp), "payload_too_large") != NULL, "no envelope: %.400s", buf_data(&resp));
	buf_free(&resp);
	close(fd);
	check_serves_normal();
}
END_TEST

/* A chunked body over the cap (no Content-Length to refuse early). */
START_TEST(chunked_body_over_cap)
{
	int fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	const char *hdr = "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Transfer-Encoding: chunked\r\n\r\n";
	ck_assert_int_eq(raw_send(fd, hdr, strlen(hdr)), 0);
	char chunk[8192 + 32];
	int n = snprintf(chunk, sizeof chunk, "%x\r\n", 8192);
	memset(chunk + n, 'a', 8192);
	memcpy(chunk + n + 8192, "\r\n", 2);
	int ok = raw_send(fd, "a\r\n{\"text\": \"\r\n", 15) == 0;
	for (int i = 0; ok && i < 10; i++) /* 80 KiB > 64 KiB default cap */
		ok = raw_send(fd, chunk, (size_t)n + 8192 + 2) == 0;
	if (ok) {
		const char *end = "2\r\n\"}\r\n0\r\n\r\n";
		raw_send(fd, end, strlen(end));
	}
	struct buf resp;
	buf_init(&resp, 1 << 20);
	raw_read_until(fd, &resp, "}", harness_scale(10));
	HCHECK(raw_status(&resp) == 413, "got %.300s", buf_data(&resp));
	buf_free(&resp);
	close(fd);
	check_serves_normal();
}
END_TEST

/* Malformed HTTP on raw sockets: bogus Content-Length values, a client that
 * closes in the middle of its headers or its body. */
START_TEST(malformed_http)
{
	static const char *const bad_cl[] = {"abc", "-5", "1e3", "12 34", NULL};
	for (size_t i = 0; bad_cl[i]; i++) {
		int fd = raw_connect();
		ck_assert_int_ge(fd, 0);
		char req[512];
		snprintf(req, sizeof req,
			 "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			 "Content-Length: %s\r\n\r\n{\"text\": \"hi\"}",
			 bad_cl[i]);
		raw_send(fd, req, strlen(req));
		struct buf resp;
		buf_init(&resp, 1 << 20);
		raw_read_until_close(fd, &resp, harness_scale(10));
		int st = raw_status(&resp);
		HCHECK(st == 400, "Content-Length: %s -> %.200s", bad_cl[i], buf_data(&resp));
		buf_free(&resp);
		close(fd);
	}
	/* two different Content-Length headers */
	int fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	const char *dup = "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			  "Content-Length: 14\r\nContent-Length: 5\r\n\r\n{\"text\": \"hi\"}";
	raw_send(fd, dup, strlen(dup));
	struct buf resp;
	buf_init(&resp, 1 << 20);
	raw_read_until_close(fd, &resp, harness_scale(10));
	HCHECK(raw_status(&resp) == 400, "conflicting Content-Length -> %.200s", buf_data(&resp));
	buf_free(&resp);
	close(fd);
	/* garbage request line */
	fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	raw_send(fd, "HELLO\r\n\r\n", 9);
	buf_init(&resp, 1 << 20);
	raw_read_until_close(fd, &resp, harness_scale(10));
	int st = raw_status(&resp);
	HCHECK(st == 400 || st == 501 || (st == -1 && buf_len(&resp) == 0), "garbage request line -> %.200s",
	       buf_data(&resp));
	buf_free(&resp);
	close(fd);
	/* closes in the middle of the headers, and in the middle of a body */
	fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	raw_send(fd, "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty", 46);
	close(fd);
	fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	const char *half = "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			   "Content-Length: 40\r\n\r\n{\"text\": \"hal";
	raw_send(fd, half, strlen(half));
	close(fd);
	check_serves_normal();
}
END_TEST

/* A NUL (or any control byte) in the path, raw or percent-encoded, is a 400 naming the path: the
 * path is never compared as a truncated C string ("/metrics%00/anything" is not /metrics). */
START_TEST(control_bytes_in_path)
{
	static const char *const paths[] = {"/metrics%00/anything", "/metrics%00", "/readyz%01", "/tts%0a",
					    "/v1/speakers%7f",	    NULL};
	for (size_t i = 0; paths[i]; i++) {
		struct http_resp r;
		ck_assert_int_eq(http_get(paths[i], &r), 0);
		check_house_error(&r, 400, "invalid_request", "path");
		HCHECK(http_header(&r, "X-Request-Id") != NULL, "%s: no X-Request-Id", paths[i]);
		http_resp_free(&r);
	}
	/* an encoded percent sign is data, not a control byte */
	struct http_resp r;
	ck_assert_int_eq(http_get("/metrics%2500", &r), 0);
	HCHECK(r.status == 404, "/metrics%%2500 -> %ld", r.status);
	http_resp_free(&r);
	check_serves_normal();
}
END_TEST

/* A client sends half its body and stalls: the daemon (connection_timeout_s
 * = 2) drops it, and serves others meanwhile. */
START_TEST(slow_client_dropped)
{
	int fd = raw_connect();
	ck_assert_int_ge(fd, 0);
	const char *half = "POST /tts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			   "Content-Length: 60\r\n\r\n{\"text\": \"I will never fin";
	ck_assert_int_eq(raw_send(fd, half, strlen(half)), 0);
	check_serves_normal(); /* while the slow one hangs */
	struct buf resp;
	buf_init(&resp, 1 << 20);
	int closed = raw_read_until_close(fd, &resp, harness_scale(20));
	HCHECK(closed == 1, "slow client still connected 20 s after stalling (connection_timeout_s = 2)");
	int st = raw_status(&resp);
	HCHECK(st == -1 || st == 408 || st == 400, "slow client got %.200s", buf_data(&resp));
	buf_free(&resp);
	close(fd);
	check_serves_normal();
}
END_TEST

/* ---------------------------------------------------------------- auth */

static void auth_setup(void)
{
	static const char *const args[] = {"--api-keys", API_KEY ",otherkey-87654321", NULL};
	harness_start(args);
}

static struct http_resp tts_with_auth(const char *auth_header)
{
	const char *hdrs[] = {auth_header, NULL};
	struct http_req rq = {.path = "/tts",
			      .body = "{\"text\": \"Who goes there?\"}",
			      .body_len = (size_t)-1,
			      .headers = auth_header ? hdrs : NULL};
	struct http_resp r;
	int rc = http_do(&rq, &r);
	HCHECK(rc == 0, "curl %d %s", rc, r.curl_err);
	return r;
}

START_TEST(auth_refused)
{
	const char *bad[] = {NULL,
			     "Authorization: Bearer wrongkey-12345678",
			     "Authorization: Bearer testkey-1234567",
			     "Authorization: Bearer testkey-123456789",
			     "Authorization: Bearer ",
			     "Authorization: Basic dGVzdGtleS0xMjM0NTY3ODo=",
			     "Authorization: testkey-12345678",
			     "X-Api-Key: testkey-12345678",
			     "Authorization: Bearer testkey-12345678,otherkey-87654321"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct http_resp r = tts_with_auth(bad[i]);
		HCHECK(r.status == 401, "%s: status %ld", bad[i] ? bad[i] : "(no header)", r.status);
		check_house_error(&r, 401, "unauthorized", NULL);
		const char *wa = http_header(&r, "WWW-Authenticate");
		HCHECK(wa && strncasecmp(wa, "Bearer", 6) == 0, "%s: WWW-Authenticate %s",
		       bad[i] ? bad[i] : "(no header)", wa ? wa : "(none)");
		http_resp_free(&r);
	}
	/* OpenAI route: OpenAI envelope, authentication_error */
	struct http_req rq = {.path = SPEECH,
			      .body = "{\"model\": \"tts-1\", \"input\": \"hi\", \"voice\": \"alloy\"}",
			      .body_len = (size_t)-1};
	struct http_resp r;
	ck_assert_int_eq(http_do(&rq, &r), 0);
	check_openai_error(&r, 401, "authentication_error", NULL);
	http_resp_free(&r);
	/* /v1/speakers needs the key too */
	ck_assert_int_eq(http_get("/v1/speakers", &r), 0);
	HCHECK(r.status == 401, "/v1/speakers without key: %ld", r.status);
	http_resp_free(&r);
}
END_TEST

START_TEST(auth_accepted)
{
	const char *good[] = {"Authorization: Bearer " API_KEY, "Authorization: Bearer otherkey-87654321"};
	for (size_t i = 0; i < 2; i++) {
		struct http_resp r = tts_with_auth(good[i]);
		HCHECK(r.status == 200, "%s: status %ld %.300s", good[i], r.status, buf_data(&r.body));
		http_resp_free(&r);
	}
	/* probes never need a key */
	static const char *const open_paths[] = {"/healthz", "/readyz", "/metrics", NULL};
	for (size_t i = 0; open_paths[i]; i++) {
		struct http_resp r;
		ck_assert_int_eq(http_get(open_paths[i], &r), 0);
		HCHECK(r.status == 200, "%s without key: %ld", open_paths[i], r.status);
		http_resp_free(&r);
	}
	/* the console's static files hold no data: no key needed (its API calls carry one) */
	static const char *const web_paths[] = {"/", "/cosyvoiced.js", NULL};
	for (size_t i = 0; web_paths[i]; i++) {
		struct http_resp r;
		ck_assert_int_eq(http_get(web_paths[i], &r), 0);
		HCHECK(r.status == 200, "%s without key: %ld", web_paths[i], r.status);
		http_resp_free(&r);
	}
	const char *hdrs[] = {"Authorization: Bearer " API_KEY, NULL};
	struct http_req rq = {.path = "/v1/speakers", .headers = hdrs};
	struct http_resp r;
	ck_assert_int_eq(http_do(&rq, &r), 0);
	HCHECK(r.status == 200, "/v1/speakers with key: %ld", r.status);
	http_resp_free(&r);
}
END_TEST

/* api_keys_file is re-read on SIGHUP: a key removed from the file stops
 * working, a key added starts to, without a restart; a file that cannot be
 * read keeps the current keys. */
static char keyfile_path[64];

static void keyfile_write(const char *text)
{
	char tmp[80];
	snprintf(tmp, sizeof tmp, "%s.new", keyfile_path);
	FILE *f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, keyfile_path), 0);
}

static void keyfile_setup(void)
{
	static const char *args[] = {"--api-keys-file", keyfile_path, "--web-ui", "false", NULL};
	snprintf(keyfile_path, sizeof keyfile_path, "/tmp/cvtest-keys-%d", (int)getpid());
	FILE *f = fopen(keyfile_path, "w");
	if (f) {
		fputs("# first key\nfilekey-aaaa-1111\n", f);
		fclose(f);
	}
	harness_start(args);
}

static void keyfile_teardown(void)
{
	harness_stop();
	unlink(keyfile_path);
}

/* Waits until the daemon answers `auth` with `status` (SIGHUP is handled on
 * the main loop's next tick). */
static void keyfile_expect(const char *auth, long status)
{
	long got = 0;
	for (int i = 0; i < 100; i++) {
		struct http_resp r = tts_with_auth(auth);
		got = r.status;
		http_resp_free(&r);
		if (got == status)
			return;
		sleep_ms(50);
	}
	HCHECK(0, "%s: status %ld, want %ld", auth ? auth : "(no key)", got, status);
}

START_TEST(keyfile_reloaded_on_sighup)
{
	keyfile_expect("Authorization: Bearer filekey-aaaa-1111", 200);
	keyfile_expect("Authorization: Bearer filekey-bbbb-2222", 401);
	/* web_ui = false (this daemon): the console is gone */
	struct http_resp w;
	ck_assert_int_eq(http_get("/", &w), 0);
	HCHECK(w.status == 404 && strstr(buf_data(&w.body), "web_ui"), "GET / with web_ui off: %ld",
	       w.status);
	http_resp_free(&w);
	keyfile_write("filekey-bbbb-2222\n");
	ck_assert_int_eq(harness_signal(SIGHUP), 0);
	keyfile_expect("Authorization: Bearer filekey-bbbb-2222", 200);
	keyfile_expect("Authorization: Bearer filekey-aaaa-1111", 401);
	/* an unreadable file: the keys stay, the failure is logged */
	keyfile_write("short\n");
	ck_assert_int_eq(harness_signal(SIGHUP), 0);
	sleep_ms(700);
	keyfile_expect("Authorization: Bearer filekey-bbbb-2222", 200);
	char *tail = harness_log_tail(4000);
	HCHECK(strstr(tail, "API keys not reloaded") != NULL, "no log line for the refused key file");
	/* the voices of espeak-ng are fixed: SIGHUP says so and serving goes on */
	HCHECK(strstr(tail, "voices are fixed") != NULL, "no log line about espeak-ng's fixed voices");
	free(tail);
	keyfile_expect("Authorization: Bearer filekey-bbbb-2222", 200);
}
END_TEST

Suite *suite_bad_inputs(void);
Suite *suite_bad_inputs(void)
{
	Suite *s = suite_create("bad_inputs");
	TCase *tc = tcase_create("table");
	tcase_add_unchecked_fixture(tc, table_setup, harness_stop);
	harness_tcase_timeout(tc, 60);
	tcase_add_loop_test(tc, bad_input_table, 0, N_CASES);
	tcase_add_test(tc, request_id_replaced);
	tcase_add_test(tc, body_over_cap_refused_from_headers);
	tcase_add_test(tc, chunked_body_over_cap);
	tcase_add_test(tc, malformed_http);
	tcase_add_test(tc, control_bytes_in_path);
	tcase_add_test(tc, slow_client_dropped);
	tcase_add_test(tc, after_table_still_serving);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_unchecked_fixture(tc, auth_setup, harness_stop);
	harness_tcase_timeout(tc, 60);
	tcase_add_test(tc, auth_refused);
	tcase_add_test(tc, auth_accepted);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);

	tc = tcase_create("keyfile");
	tcase_add_unchecked_fixture(tc, keyfile_setup, keyfile_teardown);
	harness_tcase_timeout(tc, 60);
	tcase_add_test(tc, keyfile_reloaded_on_sighup);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
