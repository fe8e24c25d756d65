/* tests/unit/check_espeak.c — the espeak-ng backend through the public engine API. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "engine/engine.h"

/* A sink that keeps everything, optionally aborting after `abort_after`
 * write calls or reporting cancellation after `cancel_after` polls. */
struct collect {
	float *pcm;
	size_t n, alloc;
	int writes;
	int abort_after; /* <0: never */
	int polls;
	int cancel_after; /* <0: never */
	int out_of_range;
};

static int collect_write(void *user, const float *pcm, size_t n)
{
	struct collect *c = user;
	c->writes++;
	if (c->n + n > c->alloc) {
		c->alloc = (c->n + n) * 2;
		c->pcm = xrealloc(c->pcm, c->alloc * sizeof(float));
	}
	for (size_t i = 0; i < n; i++)
		if (!(pcm[i] >= -1.0f && pcm[i] <= 1.0f))
			c->out_of_range++;
	memcpy(c->pcm + c->n, pcm, n * sizeof(float));
	c->n += n;
	return c->abort_after >= 0 && c->writes >= c->abort_after;
}

static int collect_cancelled(void *user)
{
	struct collect *c = user;
	c->polls++;
	return c->cancel_after >= 0 && c->polls > c->cancel_after;
}

static void collect_init(struct collect *c)
{
	memset(c, 0, sizeof *c);
	c->abort_after = -1;
	c->cancel_after = -1;
}

static double collect_rms(const struct collect *c)
{
	double s = 0;
	for (size_t i = 0; i < c->n; i++)
		s += (double)c->pcm[i] * c->pcm[i];
	return c->n ? sqrt(s / (double)c->n) : 0.0;
}

static struct engine *open_espeak(const char *default_speaker)
{
	struct engine_config cfg = {.backend = "espeak", .default_speaker = default_speaker};
	struct engine *e = NULL;
	char err[256] = "";
	int rc = engine_open(&cfg, &e, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "engine_open: %d %s", rc, err);
	ck_assert_ptr_nonnull(e);
	return e;
}

/* Synthesize into c; returns the engine's result. */
static int say(struct engine *e, const char *text, const char *speaker, float speed, struct collect *c,
	       struct engine_timings *t, char *err, size_t errlen)
{
	struct engine_params p = {.text = text, .speaker = speaker, .speed = speed};
	struct engine_sink sink = {.write = collect_write, .cancelled = collect_cancelled, .user = c};
	struct engine_timings tt = {0};
	return engine_synthesize(e, &p, &sink, t ? t : &tt, err, errlen);
}

static const char *timing(const struct engine_timings *t, const char *name, double *ms)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->stage[i].name, name) == 0) {
			*ms = t->stage[i].ms;
			return t->stage[i].name;
		}
	}
	return NULL;
}

START_TEST(open_facts)
{
	struct engine *e = open_espeak(NULL);
	ck_assert_int_eq(engine_sample_rate(e), 22050);
	ck_assert_str_eq(engine_name(e), "espeak-ng");
	ck_assert_int_eq(strncmp(engine_describe(e), "espeak-ng ", 10), 0);
	ck_assert_uint_gt(strlen(engine_describe(e)), 10);
	int have_en = 0, have_cmn = 0;
	size_t n = engine_speaker_count(e);
	for (size_t i = 0; i < n; i++) {
		const struct engine_speaker *s = engine_speaker_at(e, i);
		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s->id), 0);
		ck_assert_uint_gt(strlen(s->language), 0);
		ck_assert_uint_gt(strlen(s->name), 0);
		if (strcmp(s->id, "en") == 0)
			have_en = 1;
		if (strcmp(s->id, "cmn") == 0) {
			have_cmn = 1;
			ck_assert_str_eq(s->language, "cmn");
		}
		for (size_t k = 0; k < i; k++)
			ck_assert_str_ne(engine_speaker_at(e, k)->id, s->id);
	}
	ck_assert(have_en);
	ck_assert(have_cmn);
	ck_assert_str_eq(engine_speaker_find(e, NULL)->id, "en");
	engine_close(e);
}
END_TEST

START_TEST(hello_world)
{
	struct engine *e = open_espeak(NULL);
	struct collect c;
	struct engine_timings t = {0};
	char err[256] = "";
	double ttfa = -1, total = -1, front = -1;
	collect_init(&c);
	ck_assert_int_eq(say(e, "Hello world", NULL, 1.0f, &c, &t, err, sizeof err), CV_OK);
	double secs = (double)c.n / engine_sample_rate(e);
	ck_assert_msg(secs >= 0.3 && secs <= 3.0, "duration %.3f s", secs);
	ck_assert_msg(collect_rms(&c) > 0.01, "rms %f", collect_rms(&c));
	ck_assert_int_eq(c.out_of_range, 0);
	ck_assert_int_gt(c.writes, 1); /* delivered in chunks, not at the end */
	ck_assert_ptr_nonnull(timing(&t, "ttfa", &ttfa));
	ck_assert_ptr_nonnull(timing(&t, "espeak", &total));
	ck_assert_ptr_nonnull(timing(&t, "frontend", &front));
	ck_assert(front >= 0 && front <= total);
	ck_assert(ttfa >= 0 && ttfa <= total);
	free(c.pcm);
	engine_close(e);
}
END_TEST

START_TEST(chinese_auto_voice)
{
	struct engine *e = open_espeak(NULL);
	struct collect a, m, en;
	char err[256] = "";
	const char *text = "你好，世界";
	collect_init(&a);
	collect_init(&m);
	collect_init(&en);
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &a, NULL, err, sizeof err), CV_OK);
	ck_assert_int_eq(say(e, text, "cmn", 1.0f, &m, NULL, err, sizeof err), CV_OK);
	ck_assert_int_eq(say(e, text, "en", 1.0f, &en, NULL, err, sizeof err), CV_OK);
	ck_assert_msg((double)a.n / 22050 > 0.3, "only %zu samples", a.n);
	ck_assert(collect_rms(&a) > 0.01);
	/* No speaker + Han characters → the Mandarin voice, not English spelling them out. */
	double r_cmn = (double)a.n / (double)m.n, r_en = (double)a.n / (double)en.n;
	ck_assert_msg(r_cmn > 0.9 && r_cmn < 1.1, "auto %zu vs cmn %zu", a.n, m.n);
	ck_assert_msg(r_en < 0.9 || r_en > 1.1, "auto %zu vs en %zu", a.n, en.n);
	free(a.pcm);
	free(m.pcm);
	free(en.pcm);
	engine_close(e);
}
END_TEST

START_TEST(speed_changes_duration)
{
	struct engine *e = open_espeak(NULL);
	struct collect fast, slow;
	char err[256] = "";
	const char *text = "The quick brown fox jumps over the lazy dog, twice.";
	collect_init(&fast);
	collect_init(&slow);
	ck_assert_int_eq(say(e, text, "en", 2.0f, &fast, NULL, err, sizeof err), CV_OK);
	ck_assert_int_eq(say(e, text, "en", 0.5f, &slow, NULL, err, sizeof err), CV_OK);
	ck_assert_uint_gt(fast.n, 0);
	ck_assert_msg((double)fast.n / (double)slow.n < 0.75, "fast %zu slow %zu", fast.n, slow.n);
	free(fast.pcm);
	free(slow.pcm);
	engine_close(e);
}
END_TEST

/* The same request gives the same samples whatever came before it: a short
 * text, a long one, another voice, another speed (libespeak-ng's flutter
 * phase and roughness cycle would otherwise carry over). */
START_TEST(same_request_same_audio)
{
	struct engine *e = open_espeak(NULL);
	const char *text = "Hello there, how are you today?";
	const char *before[][2] = {
	    {"Hi.", NULL},
	    {"This is a much longer sentence that runs for a while, with commas, and more words.", NULL},
	    {"你好，世界", "cmn"},
	    {"One two three.", "en-us"},
	};
	struct collect ref;
	char err[256] = "";
	collect_init(&ref);
	ck_assert_int_eq(say(e, text, "en", 1.0f, &ref, NULL, err, sizeof err), CV_OK);
	ck_assert_uint_gt(ref.n, 22050);
	for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
		struct collect other, again;
		collect_init(&other);
		collect_init(&again);
		ck_assert_int_eq(
		    say(e, before[i][0], before[i][1], i == 3 ? 1.5f : 1.0f, &other, NULL, err, sizeof err),
		    CV_OK);
		ck_assert_int_eq(say(e, text, "en", 1.0f, &again, NULL, err, sizeof err), CV_OK);
		ck_assert_msg(again.n == ref.n, "after '%s': %zu samples, first time %zu", before[i][0],
			      again.n, ref.n);
		ck_assert_msg(memcmp(again.pcm, ref.pcm, ref.n * sizeof(float)) == 0,
			      "after '%s': different samples", before[i][0]);
		free(other.pcm);
		free(again.pcm);
	}
	free(ref.pcm);
	engine_close(e);
}
END_TEST

START_TEST(unknown_speaker)
{
	struct engine *e = open_espeak(NULL);
	struct collect c;
	char err[256] = "";
	collect_init(&c);
	ck_assert_int_eq(say(e, "Hello", "no-such-voice", 1.0f, &c, NULL, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "'no-such-voice'"));
	ck_assert_uint_eq(c.n, 0);
	/* The engine still works afterwards. */
	ck_assert_int_eq(say(e, "Hello", "en-us", 1.0f, &c, NULL, err, sizeof err), CV_OK);
	ck_assert_uint_gt(c.n, 0);
	free(c.pcm);
	engine_close(e);
}
END_TEST

START_TEST(literal_brackets_and_empty)
{
	struct engine *e = open_espeak(NULL);
	struct collect c, plain;
	char err[256] = "";
	collect_init(&c);
	collect_init(&plain);
	/* Without SSML the bracketed word is spoken, not dropped as a tag. */
	ck_assert_int_eq(say(e, "one <break> two", NULL, 1.0f, &c, NULL, err, sizeof err), CV_OK);
	ck_assert_int_eq(say(e, "one two", NULL, 1.0f, &plain, NULL, err, sizeof err), CV_OK);
	ck_assert_msg(c.n > plain.n + 22050 / 10, "bracketed %zu vs plain %zu", c.n, plain.n);
	free(c.pcm);
	collect_init(&c);
	ck_assert_int_eq(say(e, "", NULL, 1.0f, &c, NULL, err, sizeof err), CV_OK);
	free(c.pcm);
	free(plain.pcm);
	engine_close(e);
}
END_TEST

#define LONG_SENTENCE "This sentence is long enough to take a few seconds to speak out loud. "

static char *long_text(int repeats)
{
	size_t l = strlen(LONG_SENTENCE);
	char *s = xmalloc(l * (size_t)repeats + 1);
	for (int i = 0; i < repeats; i++)
		memcpy(s + l * (size_t)i, LONG_SENTENCE, l);
	s[l * (size_t)repeats] = '\0';
	return s;
}

START_TEST(sink_abort_stops_early)
{
	struct engine *e = open_espeak(NULL);
	struct collect full, ab;
	char err[256] = "";
	char *text = long_text(4);
	collect_init(&full);
	collect_init(&ab);
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &full, NULL, err, sizeof err), CV_OK);
	ab.abort_after = 1;
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &ab, NULL, err, sizeof err), CV_ECANCELED);
	ck_assert_int_eq(ab.writes, 1);
	ck_assert_uint_gt(ab.n, 0);
	ck_assert_msg(ab.n * 4 < full.n, "aborted %zu vs full %zu", ab.n, full.n);
	free(text);
	free(full.pcm);
	free(ab.pcm);
	engine_close(e);
}
END_TEST

START_TEST(cancelled_poll_stops_early)
{
	struct engine *e = open_espeak(NULL);
	struct collect full, cc, pre;
	char err[256] = "";
	char *text = long_text(4);
	collect_init(&full);
	collect_init(&cc);
	collect_init(&pre);
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &full, NULL, err, sizeof err), CV_OK);
	cc.cancel_after = 3;
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &cc, NULL, err, sizeof err), CV_ECANCELED);
	ck_assert_uint_gt(cc.n, 0);
	ck_assert_msg(cc.n * 4 < full.n, "cancelled %zu vs full %zu", cc.n, full.n);
	/* Already cancelled before the start: no audio at all. */
	pre.cancel_after = 0;
	ck_assert_int_eq(say(e, text, NULL, 1.0f, &pre, NULL, err, sizeof err), CV_ECANCELED);
	ck_assert_uint_eq(pre.n, 0);
	free(text);
	free(full.pcm);
	free(cc.pcm);
	free(pre.pcm);
	engine_close(e);
}
END_TEST

START_TEST(second_open_refused)
{
	struct engine *a = open_espeak(NULL);
	struct engine_config cfg = {.backend = "espeak"};
	struct engine *b = NULL;
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &b, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(strstr(err, "already open"));
	engine_close(a);
	/* Sequential reopen works, and the reopened engine synthesizes. */
	b = open_espeak("en-us");
	struct collect c;
	collect_init(&c);
	ck_assert_int_eq(say(b, "Hello again", NULL, 1.0f, &c, NULL, err, sizeof err), CV_OK);
	ck_assert_uint_gt(c.n, 22050 / 10);
	ck_assert_str_eq(engine_speaker_find(b, NULL)->id, "en-us");
	free(c.pcm);
	engine_close(b);
	b = open_espeak(NULL);
	engine_close(b);
}
END_TEST

START_TEST(bad_default_speaker)
{
	struct engine_config cfg = {.backend = "espeak", .default_speaker = "klingon-x"};
	struct engine *e = NULL;
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(err, "'klingon-x'"));
	/* The failed open released the library. */
	e = open_espeak(NULL);
	engine_close(e);
}
END_TEST

START_TEST(bad_data_dir)
{
	struct engine_config cfg = {.backend = "espeak", .data_dir = "/nonexistent/espeak-data"};
	struct engine *e = NULL;
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/espeak-data"));
	e = open_espeak(NULL);
	engine_close(e);
}
END_TEST

START_TEST(warmup_runs)
{
	struct engine *e = open_espeak(NULL);
	char err[256] = "";
	ck_assert_int_eq(engine_warmup(e, err, sizeof err), CV_OK);
	struct engine_gauges g;
	g.n = 99;
	engine_read_gauges(e, &g);
	ck_assert_uint_eq(g.n, 0);
	engine_close(e);
}
END_TEST

Suite *suite_espeak(void);
Suite *suite_espeak(void)
{
	Suite *s = suite_create("espeak");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, open_facts);
	tcase_add_test(tc, hello_world);
	tcase_add_test(tc, chinese_auto_voice);
	tcase_add_test(tc, speed_changes_duration);
	tcase_add_test(tc, same_request_same_audio);
	tcase_add_test(tc, unknown_speaker);
	tcase_add_test(tc, literal_brackets_and_empty);
	tcase_add_test(tc, sink_abort_stops_early);
	tcase_add_test(tc, cancelled_poll_stops_early);
	tcase_add_test(tc, second_open_refused);
	tcase_add_test(tc, bad_default_speaker);
	tcase_add_test(tc, bad_data_dir);
	tcase_add_test(tc, warmup_runs);
	suite_add_tcase(s, tc);
	return s;
}
