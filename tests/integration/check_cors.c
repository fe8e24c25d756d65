/* tests/integration/check_cors.c — CORS with cors_origins =
 * http://mirror.local (and an API key, since preflights must never need
 * one): preflight 204 with the Access-Control-Allow-* headers, the allowed
 * origin echoed on real responses (errors included), other origins get no
 * CORS headers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tests/integration/harness.h"

#define ORIGIN	"http://mirror.local"
#define KEY_HDR "Authorization: Bearer testkey-12345678"

static void cors_setup(void)
{
	static const char *const args[] = {"--cors-origins", ORIGIN, "--api-keys", "testkey-12345678", NULL};
	harness_start(args);
}

static void preflight(const char *path, const char *origin, struct http_resp *r)
{
	char o[200];
	snprintf(o, sizeof o, "Origin: %s", origin);
	const char *hdrs[] = {o, "Access-Control-Request-Method: POST",
			      "Access-Control-Request-Headers: content-type, authorization", NULL};
	struct http_req rq = {.method = "OPTIONS", .path = path, .headers = hdrs};
	int rc = http_do(&rq, r);
	HCHECK(rc == 0, "OPTIONS %s: curl %d %s", path, rc, r->curl_err);
}

START_TEST(preflight_allowed_origin)
{
	static const char *const paths[] = {"/tts", "/v1/audio/speech", NULL};
	for (size_t i = 0; paths[i]; i++) {
		struct http_resp r;
		preflight(paths[i], ORIGIN, &r);
		HCHECK(r.status == 204, "OPTIONS %s: status %ld (preflights need no key)", paths[i],
		       r.status);
		const char *acao = http_header(&r, "Access-Control-Allow-Origin");
		HCHECK(acao && (strcmp(acao, ORIGIN) == 0 || strcmp(acao, "*") == 0), "OPTIONS %s: ACAO %s",
		       paths[i], acao ? acao : "(none)");
		const char *acam = http_header(&r, "Access-Control-Allow-Methods");
		HCHECK(acam && http_list_has(acam, "POST"), "OPTIONS %s: Allow-Methods %s", paths[i],
		       acam ? acam : "(none)");
		const char *acah = http_header(&r, "Access-Control-Allow-Headers");
		HCHECK(acah && http_list_has(acah, "Content-Type") && http_list_has(acah, "Authorization"),
		       "OPTIONS %s: Allow-Headers %s", paths[i], acah ? acah : "(none)");
		http_resp_free(&r);
	}
}
END_TEST

START_TEST(preflight_other_origin)
{
	struct http_resp r;
	preflight("/tts", "http://evil.example", &r);
	HCHECK(http_header(&r, "Access-Control-Allow-Origin") == NULL, "ACAO %s for a foreign origin",
	       http_header(&r, "Access-Control-Allow-Origin"));
	HCHECK(http_header(&r, "Access-Control-Allow-Methods") == NULL, "Allow-Methods for a foreign origin");
	http_resp_free(&r);
}
END_TEST

static void post_tts(const char *origin, const char *auth, struct http_resp *r)
{
	char o[200];
	snprintf(o, sizeof o, "Origin: %s", origin);
	const char *hdrs[] = {o, auth, NULL};
	struct http_req rq = {
	    .path = "/tts", .body = "{\"text\": \"Good morning.\"}", .body_len = (size_t)-1, .headers = hdrs};
	int rc = http_do(&rq, r);
	HCHECK(rc == 0, "POST /tts: curl %d %s", rc, r->curl_err);
}

START_TEST(post_allowed_origin)
{
	struct http_resp r;
	post_tts(ORIGIN, KEY_HDR, &r);
	HCHECK(r.status == 200, "status %ld %.300s", r.status, buf_data(&r.body));
	const char *acao = http_header(&r, "Access-Control-Allow-Origin");
	HCHECK(acao && (strcmp(acao, ORIGIN) == 0 || strcmp(acao, "*") == 0), "ACAO %s",
	       acao ? acao : "(none)");
	http_resp_free(&r);
	/* an error answer to the allowed origin is readable by the page too */
	post_tts(ORIGIN, NULL, &r);
	check_house_error(&r, 401, "unauthorized", NULL);
	acao = http_header(&r, "Access-Control-Allow-Origin");
	HCHECK(acao && (strcmp(acao, ORIGIN) == 0 || strcmp(acao, "*") == 0), "401: ACAO %s",
	       acao ? acao : "(none)");
	http_resp_free(&r);
}
END_TEST

START_TEST(post_other_origin)
{
	static const char *const others[] = {"http://evil.example",
					     "http://mirror.local.evil.example",
					     "https://mirror.local",
					     "http://mirror.local:8080",
					     "null",
					     NULL};
	for (size_t i = 0; others[i]; i++) {
		struct http_resp r;
		post_tts(others[i], KEY_HDR, &r);
		HCHECK(r.status == 200, "%s: status %ld", others[i], r.status);
		HCHECK(http_header(&r, "Access-Control-Allow-Origin") == NULL, "%s: ACAO %s", others[i],
		       http_header(&r, "Access-Control-Allow-Origin"));
		http_resp_free(&r);
	}
	/* no Origin at all: no CORS headers */
	const char *hdrs[] = {KEY_HDR, NULL};
	struct http_req rq = {
	    .path = "/tts", .body = "{\"text\": \"Hi.\"}", .body_len = (size_t)-1, .headers = hdrs};
	struct http_resp r;
	ck_assert_int_eq(http_do(&rq, &r), 0);
	HCHECK(r.status == 200 && http_header(&r, "Access-Control-Allow-Origin") == NULL,
	       "no Origin: %ld ACAO %s", r.status, http_header(&r, "Access-Control-Allow-Origin"));
	http_resp_free(&r);
}
END_TEST

Suite *suite_cors(void);
Suite *suite_cors(void)
{
	Suite *s = suite_create("cors");
	TCase *tc = tcase_create("cors");
	tcase_add_unchecked_fixture(tc, cors_setup, harness_stop);
	harness_tcase_timeout(tc, 60);
	tcase_add_test(tc, preflight_allowed_origin);
	tcase_add_test(tc, preflight_other_origin);
	tcase_add_test(tc, post_allowed_origin);
	tcase_add_test(tc, post_other_origin);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
