/* tests/integration/check_normalize.c — POST /v1/text/normalize with a real
 * frontend (BlankEN tokenizer + the wetext grammars, in the bundle layout the
 * Makefile assembles into $(BUILD)/frontend): sentences and ids come back,
 * normalize:false is honoured, bad bodies are refused by field. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <signal.h>

#include "tests/integration/harness.h"

static void normalize_setup(void)
{
	static char dir[512];
	const char *d = getenv("CVTEST_FRONTEND_DIR");
	static const char *args[] = {"--frontend-dir", NULL, NULL};
	snprintf(dir, sizeof dir, "%s", d ? d : "build/frontend");
	args[1] = dir;
	harness_start(args);
}

/* Caps raised so one normalize takes a while (long text with many numbers for the grammars). */
static void normalize_long_setup(void)
{
	static char dir[512];
	const char *d = getenv("CVTEST_FRONTEND_DIR");
	static const char *args[] = {"--frontend-dir", NULL, "--max-text-chars", "200000", "--max-body-bytes",
				     "1048576",	       NULL};
	snprintf(dir, sizeof dir, "%s", d ? d : "build/frontend");
	args[1] = dir;
	harness_start(args);
}

static json_t *post_normalize(const char *body, long want_status)
{
	struct http_resp r;
	json_t *j;
	HCHECK(http_post_json("/v1/text/normalize", body, &r) == 0, "POST failed: %s", r.curl_err);
	HCHECK(r.status == want_status, "status %ld, want %ld: %s", r.status, want_status, buf_data(&r.body));
	j = json_loadb(buf_data(&r.body), buf_len(&r.body), 0, NULL);
	HCHECK(j != NULL, "body is not JSON");
	http_resp_free(&r);
	return j;
}

START_TEST(normalize_zh_numbers)
{
	json_t *j = post_normalize("{\"text\":\"今天是2024年3月5日，气温25.5度。\"}", 200);
	json_t *s = json_object_get(j, "sentences");
	ck_assert_int_eq((int)json_array_size(s), 1);
	const char *t = json_string_value(json_object_get(json_array_get(s, 0), "text"));
	ck_assert_ptr_nonnull(t);
	ck_assert_msg(strstr(t, "二零二四年") && strstr(t, "二十五点五"), "text: %s", t);
	ck_assert_msg(strchr(t, '2') == NULL, "digits left: %s", t);
	ck_assert_int_gt((int)json_array_size(json_object_get(json_array_get(s, 0), "ids")), 5);
	ck_assert_str_eq(json_string_value(json_object_get(j, "lang")), "zh");
	json_decref(j);
}
END_TEST

START_TEST(normalize_en_and_off)
{
	json_t *j = post_normalize("{\"text\":\"I have 3 apples.\"}", 200);
	const char *t =
	    json_string_value(json_object_get(json_array_get(json_object_get(j, "sentences"), 0), "text"));
	ck_assert_msg(t && strstr(t, "three"), "text: %s", t ? t : "(null)");
	json_decref(j);
	j = post_normalize("{\"text\":\"I have 3 apples.\",\"normalize\":false}", 200);
	json_t *s0 = json_array_get(json_object_get(j, "sentences"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(s0, "text")), "I have 3 apples.");
	/* BlankEN ids of the raw text: "I" " have" " " "3" " apples" "." */
	json_t *ids = json_object_get(s0, "ids");
	ck_assert_int_eq((int)json_array_size(ids), 6);
	ck_assert_int_eq((int)json_integer_value(json_array_get(ids, 0)), 40);
	ck_assert_int_eq((int)json_integer_value(json_array_get(ids, 3)), 18);
	json_decref(j);
}
END_TEST

START_TEST(normalize_bad_bodies)
{
	json_t *j = post_normalize("{\"text\":\"x\",\"colour\":1}", 400);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "field")), "colour");
	json_decref(j);
	j = post_normalize("{\"text\":5}", 400);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "field")), "text");
	json_decref(j);
	j = post_normalize("{\"text\":\"a\",\"normalize\":\"yes\"}", 400);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "field")),
			 "normalize");
	json_decref(j);
	check_serves_normal();
}
END_TEST

/* SIGTERM while text threads are normalizing: the daemon joins them before it frees the frontend
 * and stops libmicrohttpd, and exits 0 (under ASan: with no use-after-free). */
START_TEST(shutdown_during_long_normalize)
{
	/* English text with numbers normalizes at about 2 ms per byte here: ~2.5 s of grammar work each */
	size_t n = harness_valgrind() ? 200 : 1200;
	char *body = malloc(n + 64);
	ck_assert_ptr_nonnull(body);
	size_t o = (size_t)snprintf(body, 64, "{\"text\": \"");
	for (unsigned i = 0; o + 40 < n; i++)
		o += (size_t)snprintf(body + o, n + 64 - o, "On %u/%u/20%02u we paid $%u.%02u. ", i % 12 + 1,
				      i % 28 + 1, i % 100, i * 7 % 1000, i % 100);
	snprintf(body + o, n + 64 - o, "\"}");
	int fd[2];
	for (int k = 0; k < 2; k++) {
		fd[k] = raw_connect();
		ck_assert_int_ge(fd[k], 0);
		char head[256];
		int hn = snprintf(head, sizeof head,
				  "POST /v1/text/normalize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
				  "application/json\r\nContent-Length: %zu\r\n\r\n",
				  strlen(body));
		raw_send(fd[k], head, (size_t)hn);
		raw_send(fd[k], body, strlen(body));
	}
	double busy = wait_metric_above("cosyvoiced_in_flight_requests", 0.5, harness_scale(10));
	HCHECK(busy >= 1, "the normalize requests never arrived (inflight %g)", busy);
	ck_assert_int_eq(harness_signal(SIGTERM), 0);
	int st = 0;
	HCHECK(harness_wait_exit(harness_scale(60), &st), "daemon still running 60 s after SIGTERM");
	HCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit: wait status 0x%x (exit %d)", (unsigned)st,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	for (int k = 0; k < 2; k++)
		close(fd[k]);
	free(body);
}
END_TEST

Suite *suite_normalize(void);
Suite *suite_normalize(void)
{
	Suite *s = suite_create("normalize");
	TCase *tc = tcase_create("normalize");
	tcase_add_unchecked_fixture(tc, normalize_setup, harness_stop);
	harness_tcase_timeout(tc, 120);
	tcase_add_test(tc, normalize_zh_numbers);
	tcase_add_test(tc, normalize_en_and_off);
	tcase_add_test(tc, normalize_bad_bodies);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	tc = tcase_create("shutdown");
	tcase_add_checked_fixture(tc, normalize_long_setup, harness_stop);
	harness_tcase_timeout(tc, 120);
	tcase_add_test(tc, shutdown_during_long_normalize);
	suite_add_tcase(s, tc);
	return s;
}
