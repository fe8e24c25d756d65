/* tests/integration/check_normalize.c — POST /v1/text/normalize with a real
 * frontend (BlankEN tokenizer + the wetext grammars, in the bundle layout the
 * Makefile assembles into $(BUILD)/frontend): sentences and ids come back,
 * normalize:false is honoured, bad bodies are refused by field. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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
	return s;
}
