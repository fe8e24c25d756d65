/* tests/unit/check_engine.c — backend selection, NULL safety, speaker lookup, timings helper. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "engine/engine.h"

START_TEST(open_unknown_backend)
{
	struct engine_config cfg = {.backend = "nope"};
	struct engine *e = (struct engine *)&cfg; /* must be reset to NULL */
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(err, "'nope'"));
}
END_TEST

START_TEST(open_cosyvoice2_unsupported)
{
	/* A missing bundle is named (built with libtorch) or the build says it
	 * has no libtorch; either way no engine. */
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = "/nonexistent"};
	struct engine *e = NULL;
	char err[256] = "";
#if CV_WITH_TORCH
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EIO);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent"));
#else
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err, "built without libtorch"));
#endif
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(open_null_config)
{
	struct engine *e = NULL;
	char err[128] = "";
	ck_assert_int_eq(engine_open(NULL, &e, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_uint_gt(strlen(err), 0);
}
END_TEST

START_TEST(null_safety)
{
	struct engine_gauges g;
	struct engine_timings t = {0};
	struct engine_params p = {.text = "x", .speed = 1.0f};
	char err[64];
	g.n = 5;
	engine_close(NULL);
	ck_assert_ptr_null(engine_name(NULL));
	ck_assert_ptr_null(engine_describe(NULL));
	ck_assert_int_eq(engine_sample_rate(NULL), 0);
	ck_assert_uint_eq(engine_speaker_count(NULL), 0);
	ck_assert_ptr_null(engine_speaker_at(NULL, 0));
	ck_assert_ptr_null(engine_speaker_find(NULL, NULL));
	ck_assert_ptr_null(engine_speaker_find(NULL, "en"));
	ck_assert_int_eq(engine_warmup(NULL, err, sizeof err), CV_EINVAL);
	ck_assert_int_eq(engine_synthesize(NULL, &p, NULL, &t, err, sizeof err), CV_EINVAL);
	engine_read_gauges(NULL, &g);
	ck_assert_uint_eq(g.n, 0);
	engine_read_gauges(NULL, NULL);
	engine_timings_set(NULL, "x", 1.0);
	engine_timings_set(&t, NULL, 1.0);
	ck_assert_uint_eq(t.n, 0);
}
END_TEST

/* The default backend is espeak: lookup by NULL gives the default speaker,
 * ids match exactly or case-insensitively, unknown ids give NULL. */
START_TEST(speaker_lookup_espeak)
{
	struct engine_config cfg = {.backend = "espeak"};
	struct engine *e = NULL;
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_OK);
	ck_assert_str_eq(engine_name(e), "espeak-ng");
	const struct engine_speaker *def = engine_speaker_find(e, NULL);
	ck_assert_ptr_nonnull(def);
	ck_assert_str_eq(def->id, "en");
	const struct engine_speaker *us = engine_speaker_find(e, "EN-US");
	ck_assert_ptr_nonnull(us);
	ck_assert_str_eq(us->id, "en-us");
	ck_assert_ptr_eq(engine_speaker_find(e, "en-us"), us);
	ck_assert_ptr_null(engine_speaker_find(e, "xx-nope"));
	size_t n = engine_speaker_count(e);
	ck_assert_uint_gt(n, 2);
	ck_assert_ptr_nonnull(engine_speaker_at(e, n - 1));
	ck_assert_ptr_null(engine_speaker_at(e, n));
	struct engine_params p = {.text = NULL, .speed = 1.0f};
	struct engine_timings t = {0};
	ck_assert_int_eq(engine_synthesize(e, &p, NULL, &t, err, sizeof err), CV_EINVAL);
	engine_close(e);
}
END_TEST

START_TEST(timings_overwrite)
{
	struct engine_timings t = {0};
	engine_timings_set(&t, "frontend", 1.5);
	engine_timings_set(&t, "llm", 10.0);
	engine_timings_set(&t, "frontend", 2.5);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_str_eq(t.stage[0].name, "frontend");
	ck_assert_double_eq(t.stage[0].ms, 2.5);
	ck_assert_str_eq(t.stage[1].name, "llm");
	ck_assert_double_eq(t.stage[1].ms, 10.0);
}
END_TEST

START_TEST(timings_long_name_truncated_and_overwritten)
{
	struct engine_timings t = {0};
	const char *longname = "a_very_long_stage_name_that_does_not_fit";
	engine_timings_set(&t, longname, 1.0);
	engine_timings_set(&t, longname, 3.0);
	ck_assert_uint_eq(t.n, 1);
	ck_assert_uint_eq(strlen(t.stage[0].name), sizeof t.stage[0].name - 1);
	ck_assert_int_eq(strncmp(t.stage[0].name, longname, sizeof t.stage[0].name - 1), 0);
	ck_assert_double_eq(t.stage[0].ms, 3.0);
}
END_TEST

START_TEST(timings_cap)
{
	struct engine_timings t = {0};
	char name[16];
	for (int i = 0; i < ENGINE_TIMINGS_MAX + 5; i++) {
		snprintf(name, sizeof name, "s%d", i);
		engine_timings_set(&t, name, (double)i);
	}
	ck_assert_uint_eq(t.n, ENGINE_TIMINGS_MAX);
	snprintf(name, sizeof name, "s%d", ENGINE_TIMINGS_MAX - 1);
	ck_assert_str_eq(t.stage[ENGINE_TIMINGS_MAX - 1].name, name);
	/* Existing names can still be updated when full. */
	engine_timings_set(&t, "s3", 42.0);
	ck_assert_uint_eq(t.n, ENGINE_TIMINGS_MAX);
	ck_assert_double_eq(t.stage[3].ms, 42.0);
	snprintf(name, sizeof name, "s%d", ENGINE_TIMINGS_MAX);
	for (size_t i = 0; i < t.n; i++)
		ck_assert_str_ne(t.stage[i].name, name);
}
END_TEST

Suite *suite_engine(void);
Suite *suite_engine(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, open_unknown_backend);
	tcase_add_test(tc, open_cosyvoice2_unsupported);
	tcase_add_test(tc, open_null_config);
	tcase_add_test(tc, null_safety);
	tcase_add_test(tc, speaker_lookup_espeak);
	tcase_add_test(tc, timings_overwrite);
	tcase_add_test(tc, timings_long_name_truncated_and_overwritten);
	tcase_add_test(tc, timings_cap);
	suite_add_tcase(s, tc);
	return s;
}
