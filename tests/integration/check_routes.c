/* tests/integration/check_routes.c — every route of docs/api.md answers as
 * the contract says: health, readiness (embedded espeak-ng default), metrics
 * (Prometheus text checked by promtool), speakers, 404, 405 + Allow, request
 * ids, and a plain POST /tts. One daemon for the whole TCase. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tests/integration/harness.h"

static void routes_setup(void)
{
	harness_start(NULL);
}

static json_t *body_json(const struct http_resp *r)
{
	json_error_t je;
	json_t *j = json_loadb(buf_data(&r->body), buf_len(&r->body), 0, &je);
	HCHECK(j && json_is_object(j), "not a JSON object (%s): %.300s", je.text, buf_data(&r->body));
	return j;
}

START_TEST(healthz_ok)
{
	struct http_resp r;
	ck_assert_int_eq(http_get("/healthz", &r), 0);
	HCHECK(r.status == 200, "status %ld", r.status);
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strncasecmp(ct, "application/json", 16) == 0, "Content-Type %s", ct ? ct : "(none)");
	json_t *j = body_json(&r);
	const char *st = json_string_value(json_object_get(j, "status"));
	HCHECK(st && strcmp(st, "ok") == 0, "body %s", buf_data(&r.body));
	HCHECK(is_hex32(http_header(&r, "X-Request-Id")), "X-Request-Id %s", http_header(&r, "X-Request-Id"));
	json_decref(j);
	http_resp_free(&r);
}
END_TEST

START_TEST(readyz_embedded_default)
{
	struct http_resp r;
	ck_assert_int_eq(http_get("/readyz", &r), 0);
	HCHECK(r.status == 200, "status %ld", r.status);
	json_t *j = body_json(&r);
	const char *st = json_string_value(json_object_get(j, "status"));
	const char *eng = json_string_value(json_object_get(j, "engine"));
	json_t *emb = json_object_get(j, "embedded_default");
	HCHECK(st && strcmp(st, "ready") == 0, "status field: %s", buf_data(&r.body));
	HCHECK(eng && strcmp(eng, "espeak-ng") == 0, "engine field: %s", buf_data(&r.body));
	HCHECK(json_is_true(emb), "embedded_default is not true: %s", buf_data(&r.body));
	json_decref(j);
	http_resp_free(&r);
}
END_TEST

START_TEST(metrics_pass_promtool)
{
	/* Some traffic first, so histograms and per-code series exist. */
	check_serves_normal();
	struct http_resp r404;
	ck_assert_int_eq(http_get("/no/such/route", &r404), 0);
	http_resp_free(&r404);

	struct http_resp r;
	ck_assert_int_eq(http_get("/metrics", &r), 0);
	HCHECK(r.status == 200, "status %ld", r.status);
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s",
	       ct ? ct : "(none)");
	HCHECK(buf_len(&r.body) > 0 && buf_data(&r.body)[buf_len(&r.body) - 1] == '\n',
	       "metrics body does not end with a newline");
	int found = 0;
	double v = metrics_sum(buf_data(&r.body), "cosyvoiced_build_info", &found);
	HCHECK(found == 1 && v == 1, "cosyvoiced_build_info: %d samples, value %g", found, v);
	v = metrics_sum(buf_data(&r.body), "cosyvoiced_requests_total", &found);
	HCHECK(found >= 1 && v >= 2, "cosyvoiced_requests_total: %d samples, sum %g", found, v);

	char promtool[1024];
	HCHECK(promtool_path(promtool, sizeof promtool) == 0,
	       "promtool not found (set PROMTOOL or run bash tools/dev/deps.sh): %s", promtool);
	const char *argv[] = {promtool, "check", "metrics", NULL};
	struct buf out;
	buf_init(&out, 1 << 16);
	int rc = run_capture(argv, buf_data(&r.body), buf_len(&r.body), &out);
	HCHECK(rc == 0, "promtool check metrics rc %d:\n%s\n--- metrics:\n%.3000s", rc, buf_data(&out),
	       buf_data(&r.body));
	buf_free(&out);
	http_resp_free(&r);
}
END_TEST

static int speakers_has(json_t *arr, const char *id)
{
	size_t i;
	json_t *s;
	json_array_foreach(arr, i, s)
	{
		const char *sid = json_string_value(json_object_get(s, "id"));
		if (sid && strcmp(sid, id) == 0)
			return 1;
	}
	return 0;
}

START_TEST(speakers_list)
{
	struct http_resp r;
	ck_assert_int_eq(http_get("/v1/speakers", &r), 0);
	HCHECK(r.status == 200, "status %ld", r.status);
	json_t *j = body_json(&r);
	const char *eng = json_string_value(json_object_get(j, "engine"));
	const char *def = json_string_value(json_object_get(j, "default"));
	json_t *arr = json_object_get(j, "speakers");
	HCHECK(eng && strcmp(eng, "espeak-ng") == 0, "engine: %.300s", buf_data(&r.body));
	HCHECK(def && strcmp(def, "en") == 0, "default: %.300s", buf_data(&r.body));
	HCHECK(json_is_array(arr) && json_array_size(arr) >= 2, "speakers: %.300s", buf_data(&r.body));
	size_t i;
	json_t *s;
	json_array_foreach(arr, i, s)
	{
		HCHECK(json_is_string(json_object_get(s, "id")) &&
			   json_is_string(json_object_get(s, "language")) &&
			   json_is_string(json_object_get(s, "name")),
		       "speaker #%zu lacks id/language/name strings", i);
	}
	HCHECK(speakers_has(arr, "en"), "no speaker en");
	HCHECK(speakers_has(arr, "cmn"), "no speaker cmn");
	HCHECK(speakers_has(arr, def), "default speaker %s is not in the list", def);
	json_decref(j);
	http_resp_free(&r);
}
END_TEST

/* The console page and the client module: compiled in, strict headers, HEAD, ETag revalidation. */
START_TEST(web_console_files)
{
	static const struct {
		const char *path, *ctype, *needle;
	} files[] = {{"/", "text/html", "<script type=\"module\" src=\"/console.js\">"},
		     {"/console.js", "text/javascript", "from \"/cosyvoiced.js\""},
		     {"/console.css", "text/css", ".timing"},
		     {"/cosyvoiced.js", "text/javascript", "export function speak("}};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		struct http_resp r;
		ck_assert_int_eq(http_get(files[i].path, &r), 0);
		HCHECK(r.status == 200, "GET %s: %ld", files[i].path, r.status);
		const char *ct = http_header(&r, "Content-Type"),
			   *csp = http_header(&r, "Content-Security-Policy");
		HCHECK(ct && strncmp(ct, files[i].ctype, strlen(files[i].ctype)) == 0, "%s: Content-Type %s",
		       files[i].path, ct ? ct : "(none)");
		HCHECK(csp && strstr(csp, "default-src 'none'") && strstr(csp, "script-src 'self'") &&
			   !strstr(csp, "unsafe-inline") && !strstr(csp, "unsafe-eval"),
		       "%s: CSP %s", files[i].path, csp ? csp : "(none)");
		HCHECK(http_header(&r, "X-Content-Type-Options") &&
			   strcmp(http_header(&r, "X-Content-Type-Options"), "nosniff") == 0,
		       "%s: no nosniff", files[i].path);
		buf_append(&r.body, "", 1);
		HCHECK(strstr(buf_data(&r.body), files[i].needle) != NULL, "%s lacks %s", files[i].path,
		       files[i].needle);
		const char *etag = http_header(&r, "ETag");
		HCHECK(etag != NULL, "%s: no ETag", files[i].path);
		char inm[128];
		snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
		const char *hdrs[] = {inm, NULL};
		struct http_req rq = {.path = files[i].path, .headers = hdrs};
		struct http_resp r2;
		ck_assert_int_eq(http_do(&rq, &r2), 0);
		HCHECK(r2.status == 304 && buf_len(&r2.body) == 0, "%s revalidated: %ld", files[i].path,
		       r2.status);
		http_resp_free(&r2);
		http_resp_free(&r);
	}
	/* the page holds no inline script or style (the CSP would block it) */
	struct http_resp r;
	ck_assert_int_eq(http_get("/", &r), 0);
	buf_append(&r.body, "", 1);
	HCHECK(strstr(buf_data(&r.body), "<script>") == NULL && strstr(buf_data(&r.body), "<style") == NULL &&
		   strstr(buf_data(&r.body), " style=") == NULL &&
		   strstr(buf_data(&r.body), "onclick") == NULL,
	       "inline script or style in the page");
	http_resp_free(&r);
	struct http_req head = {.method = "HEAD", .path = "/"};
	ck_assert_int_eq(http_do(&head, &r), 0);
	HCHECK(r.status == 200 && buf_len(&r.body) == 0 && http_header(&r, "Content-Security-Policy"),
	       "HEAD /: %ld", r.status);
	http_resp_free(&r);
	struct http_req post = {.path = "/", .body = "{}", .body_len = (size_t)-1};
	ck_assert_int_eq(http_do(&post, &r), 0);
	HCHECK(r.status == 405, "POST /: %ld", r.status);
	http_resp_free(&r);
}
END_TEST

START_TEST(unknown_path_404)
{
	static const char *const paths[] = {"/index.html", "/nope",    "/tts/", "/v1/speakers/en",
					    "/metricsx",   "/console", NULL};
	for (size_t i = 0; paths[i]; i++) {
		struct http_resp r;
		ck_assert_int_eq(http_get(paths[i], &r), 0);
		HCHECK(r.status == 404, "GET %s: status %ld", paths[i], r.status);
		check_house_error(&r, 404, "not_found", NULL);
		http_resp_free(&r);
	}
	struct http_resp r;
	struct http_req rq = {.path = "/v2/tts", .body = "{\"text\":\"hi\"}", .body_len = (size_t)-1};
	ck_assert_int_eq(http_do(&rq, &r), 0);
	check_house_error(&r, 404, "not_found", NULL);
	http_resp_free(&r);
}
END_TEST

struct method_case {
	const char *method;
	const char *path;
	const char *allowed; /* a token Allow must list */
	int house;	     /* house envelope expected */
};

static const struct method_case method_cases[] = {
    {"GET", "/tts", "POST", 1},
    {"PUT", "/tts", "POST", 1},
    {"DELETE", "/tts", "POST", 1},
    {"GET", "/v1/audio/speech", "POST", 0},
    {"PUT", "/v1/audio/speech", "POST", 0},
    {"POST", "/healthz", "GET", 1},
    {"DELETE", "/readyz", "GET", 1},
    {"POST", "/metrics", "GET", 1},
    {"POST", "/v1/speakers", "GET", 1},
    {"PATCH", "/v1/speakers", "GET", 1},
    {"GET", "/v1/text/normalize", "POST", 1},
};

START_TEST(wrong_method_405)
{
	const struct method_case *mc = &method_cases[_i];
	struct http_resp r;
	struct http_req rq = {.method = mc->method, .path = mc->path};
	if (strcmp(mc->method, "GET") != 0 && strcmp(mc->method, "DELETE") != 0) {
		rq.body = "{\"text\":\"hi\"}";
		rq.body_len = (size_t)-1;
	}
	ck_assert_int_eq(http_do(&rq, &r), 0);
	HCHECK(r.status == 405, "%s %s: status %ld", mc->method, mc->path, r.status);
	const char *allow = http_header(&r, "Allow");
	HCHECK(allow && http_list_has(allow, mc->allowed), "%s %s: Allow %s lacks %s", mc->method, mc->path,
	       allow ? allow : "(none)", mc->allowed);
	HCHECK(!http_list_has(allow, mc->method), "%s %s: Allow %s lists the refused method", mc->method,
	       mc->path, allow);
	if (mc->house)
		check_house_error(&r, 405, "method_not_allowed", NULL);
	else
		check_openai_error(&r, 405, "invalid_request_error", NULL);
	http_resp_free(&r);
}
END_TEST

START_TEST(request_id_echo)
{
	static const char *const ids[] = {"mirror-1.2:3", "A", "abc.DEF-123:xyz", NULL};
	for (size_t i = 0; ids[i]; i++) {
		char h[200];
		snprintf(h, sizeof h, "X-Request-Id: %s", ids[i]);
		const char *hdrs[] = {h, NULL};
		struct http_resp r;
		struct http_req rq = {.path = "/healthz", .headers = hdrs};
		ck_assert_int_eq(http_do(&rq, &r), 0);
		HCHECK(r.status == 200, "status %ld", r.status);
		const char *got = http_header(&r, "X-Request-Id");
		HCHECK(got && strcmp(got, ids[i]) == 0, "sent %s, got %s", ids[i], got ? got : "(none)");
		http_resp_free(&r);
		/* echoed in error envelopes too */
		struct http_req rq2 = {.path = "/nope", .headers = hdrs};
		ck_assert_int_eq(http_do(&rq2, &r), 0);
		check_house_error(&r, 404, "not_found", NULL);
		got = http_header(&r, "X-Request-Id");
		HCHECK(got && strcmp(got, ids[i]) == 0, "404: sent %s, got %s", ids[i], got ? got : "(none)");
		http_resp_free(&r);
	}
	/* Two requests without one get two different generated ids. */
	struct http_resp a, b;
	ck_assert_int_eq(http_get("/healthz", &a), 0);
	ck_assert_int_eq(http_get("/healthz", &b), 0);
	const char *ia = http_header(&a, "X-Request-Id"), *ib = http_header(&b, "X-Request-Id");
	HCHECK(is_hex32(ia) && is_hex32(ib) && strcmp(ia, ib) != 0, "generated ids %s %s", ia, ib);
	http_resp_free(&a);
	http_resp_free(&b);
}
END_TEST

START_TEST(tts_default_wav)
{
	struct http_resp r;
	ck_assert_int_eq(http_post_json("/tts", "{\"text\": \"Hello from the integration test.\"}", &r), 0);
	HCHECK(r.status == 200, "status %ld: %.300s", r.status, buf_data(&r.body));
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strcasecmp(ct, "audio/wav") == 0, "Content-Type %s", ct ? ct : "(none)");
	const char *eng = http_header(&r, "X-Engine");
	HCHECK(eng && strcmp(eng, "espeak-ng") == 0, "X-Engine %s", eng ? eng : "(none)");
	double rate = 0, dur = 0;
	HCHECK(parse_double(http_header(&r, "X-Sample-Rate"), &rate), "X-Sample-Rate %s",
	       http_header(&r, "X-Sample-Rate"));
	HCHECK(parse_double(http_header(&r, "X-Audio-Duration"), &dur), "X-Audio-Duration %s",
	       http_header(&r, "X-Audio-Duration"));
	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe("wav", buf_data(&r.body), buf_len(&r.body), 0, &ai, err, sizeof err) == 0,
	       "wav: %s", err);
	HCHECK(ai.rate == (int)rate, "decoded rate %d, X-Sample-Rate %g", ai.rate, rate);
	HCHECK(ai.duration > 0.5 && ai.duration < 10, "duration %.3f", ai.duration);
	HCHECK(ai.duration > dur - 0.02 && ai.duration < dur + 0.02, "decoded %.3f s, X-Audio-Duration %.3f",
	       ai.duration, dur);
	http_resp_free(&r);
}
END_TEST

Suite *suite_routes(void);
Suite *suite_routes(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("routes");
	tcase_add_unchecked_fixture(tc, routes_setup, harness_stop);
	harness_tcase_timeout(tc, 60);
	tcase_add_test(tc, healthz_ok);
	tcase_add_test(tc, readyz_embedded_default);
	tcase_add_test(tc, metrics_pass_promtool);
	tcase_add_test(tc, speakers_list);
	tcase_add_test(tc, unknown_path_404);
	tcase_add_test(tc, web_console_files);
	tcase_add_loop_test(tc, wrong_method_405, 0, (int)(sizeof method_cases / sizeof method_cases[0]));
	tcase_add_test(tc, request_id_echo);
	tcase_add_test(tc, tts_default_wav);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
