/* tests/unit/check_metrics.c — Prometheus metrics: the exposition checker
 * itself (it must reject broken input), values after observations, label and
 * HELP escaping, the CV_E2BIG cap, 4-thread consistency, and the real
 * promtool on what we render (plus a bad input, to prove the wiring). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/version.h"
#include "handlers/metrics.h"
#include "tests/unit/promcheck.h"

#define RENDER_CAP (1u << 20)

/* Check refuses failure messages over ~4 KiB (it then exits with an
 * error instead of a failure), so long texts in messages are truncated. */

/* ---- helpers -------------------------------------------------------------- */

static void render_ok(struct metrics *m, const struct metrics_gauges *g, struct buf *b)
{
	char err[256];
	buf_init(b, RENDER_CAP);
	ck_assert_int_eq(metrics_render(m, g, b), CV_OK);
	ck_assert_msg(promcheck_text(buf_data(b), buf_len(b), err, sizeof err) == CV_OK,
		      "promcheck: %s\n%.3000s", err, buf_data(b));
}

static double value_of(const char *text, const char *series)
{
	double v = -12345;
	int rc = promcheck_value(text, series, &v);
	ck_assert_msg(rc == CV_OK, "series %s not found (rc %d)", series, rc);
	return v;
}

static int has_series(const char *text, const char *series)
{
	double v;
	return promcheck_value(text, series, &v) == CV_OK;
}

static void assert_type(const char *text, const char *family, const char *want)
{
	char type[32];
	ck_assert_msg(promcheck_type(text, family, type, sizeof type) == CV_OK, "no TYPE for %s", family);
	ck_assert_str_eq(type, want);
}

/* Path of promtool: $PROMTOOL, else what tools/dev/deps.sh prints. */
static void promtool_path(char *out, size_t cap)
{
	const char *env = getenv("PROMTOOL");
	if (env && *env) {
		ck_assert_uint_lt(strlen(env), cap);
		memcpy(out, env, strlen(env) + 1);
	} else {
		FILE *p = popen("bash tools/dev/deps.sh --print-promtool", "r");
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_nonnull(fgets(out, (int)cap, p));
		ck_assert_int_eq(pclose(p), 0);
		out[strcspn(out, "\n")] = '\0';
	}
	ck_assert_msg(strchr(out, '\'') == NULL, "odd promtool path %s", out);
	ck_assert_msg(access(out, X_OK) == 0,
		      "promtool not executable at '%s' (run tools/dev/deps.sh or set PROMTOOL)", out);
}

/* Feed text to `promtool check metrics`; returns its exit status and
 * leaves its output in msg. */
static int promtool_check(const char *text, size_t len, char *msg, size_t msgcap)
{
	char tool[1024], path[] = "/tmp/cv-promcheck-XXXXXX", cmd[1200];
	int fd, st;
	size_t got = 0, n;
	FILE *p;

	promtool_path(tool, sizeof tool);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", tool, path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (got + 1 < msgcap && (n = fread(msg + got, 1, msgcap - 1 - got, p)) > 0)
		got += n;
	msg[got] = '\0';
	st = pclose(p);
	unlink(path);
	ck_assert_msg(WIFEXITED(st), "promtool did not exit normally");
	return WEXITSTATUS(st);
}

/* ---- the checker must reject broken input ---------------------------------- */

#define GOOD_TEXT                                   \
	"# HELP t_requests_total Requests.\n"       \
	"# TYPE t_requests_total counter\n"         \
	"t_requests_total{code=\"200\"} 3\n"        \
	"t_requests_total{code=\"500\"} 1\n"        \
	"# HELP t_latency_seconds Latency.\n"       \
	"# TYPE t_latency_seconds histogram\n"      \
	"t_latency_seconds_bucket{le=\"0.1\"} 1\n"  \
	"t_latency_seconds_bucket{le=\"1\"} 2\n"    \
	"t_latency_seconds_bucket{le=\"+Inf\"} 3\n" \
	"t_latency_seconds_sum 4.5\n"               \
	"t_latency_seconds_count 3\n"               \
	"# HELP t_queue_depth Depth.\n"             \
	"# TYPE t_queue_depth gauge\n"              \
	"t_queue_depth 2\n"

#define HIST_HEAD               \
	"# HELP h_seconds H.\n" \
	"# TYPE h_seconds histogram\n"

static const struct {
	const char *what;
	const char *text;
	const char *why; /* substring of the expected error */
} bad_cases[] = {
    {"unsorted buckets",
     HIST_HEAD "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"0.1\"} 1\nh_seconds_bucket{le=\"+Inf\"} "
	       "1\nh_seconds_sum 1\nh_seconds_count 1\n",
     "increasing le"},
    {"not cumulative",
     HIST_HEAD "h_seconds_bucket{le=\"0.1\"} 2\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} "
	       "2\nh_seconds_sum 1\nh_seconds_count 2\n",
     "cumulative"},
    {"+Inf != count",
     HIST_HEAD
     "h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 1\nh_seconds_count "
     "3\n",
     "!= _count"},
    {"missing +Inf", HIST_HEAD "h_seconds_bucket{le=\"1\"} 1\nh_seconds_sum 1\nh_seconds_count 1\n", "+Inf"},
    {"missing +Inf in one label set",
     "# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
     "h_seconds_bucket{r=\"a\",le=\"+Inf\"} 1\nh_seconds_sum{r=\"a\"} 1\nh_seconds_count{r=\"a\"} 1\n"
     "h_seconds_bucket{r=\"b\",le=\"1\"} 1\nh_seconds_sum{r=\"b\"} 1\nh_seconds_count{r=\"b\"} 1\n",
     "+Inf"},
    {"missing _sum", HIST_HEAD "h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_count 1\n", "no _sum"},
    {"missing _count", HIST_HEAD "h_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_sum 1\n", "no _count"},
    {"bucket without le", HIST_HEAD "h_seconds_bucket 1\nh_seconds_sum 1\nh_seconds_count 1\n", "without le"},
    {"bare histogram sample", HIST_HEAD "h_seconds 1\n", "without _bucket"},
    {"duplicate series",
     "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
     "duplicate series"},
    {"duplicate series, labels reordered",
     "# HELP g G.\n# TYPE g gauge\ng{x=\"1\",y=\"2\"} 1\ng{y=\"2\",x=\"1\"} 2\n", "duplicate series"},
    {"duplicate unlabelled", "# HELP g G.\n# TYPE g gauge\ng 1\ng 2\n", "duplicate series"},
    {"split family (sample)",
     "# HELP g G.\n# TYPE g gauge\ng{x=\"1\"} 1\n# HELP k K.\n# TYPE k gauge\nk 1\ng{x=\"2\"} 1\n",
     "outside its family"},
    {"split family (HELP again)",
     "# HELP g G.\n# TYPE g gauge\ng 1\n# HELP k K.\n# TYPE k gauge\nk 1\n# HELP g G.\n",
     "two separate groups"},
    {"missing trailing newline", "# HELP g G.\n# TYPE g gauge\ng 1", "newline"},
    {"empty", "", "empty"},
    {"counter without _total", "# HELP a A.\n# TYPE a counter\na 1\n", "_total"},
    {"sample without HELP/TYPE", "g 1\n", "no preceding HELP/TYPE"},
    {"sample before TYPE", "# HELP g G.\ng 1\n# TYPE g gauge\n", "before both HELP and TYPE"},
    {"family without TYPE", "# HELP g G.\n", "lacks TYPE"},
    {"second HELP", "# HELP g G.\n# HELP g G2.\n# TYPE g gauge\ng 1\n", "second HELP"},
    {"second TYPE", "# HELP g G.\n# TYPE g gauge\n# TYPE g gauge\ng 1\n", "second TYPE"},
    {"empty HELP", "# HELP g\n# TYPE g gauge\ng 1\n", "empty HELP"},
    {"unknown type", "# HELP g G.\n# TYPE g meter\ng 1\n", "unknown TYPE"},
    {"bad value", "# HELP g G.\n# TYPE g gauge\ng 1,5\n", "bad sample value"},
    {"missing value", "# HELP g G.\n# TYPE g gauge\ng\n", "blank before the value"},
    {"bad label escape", "# HELP g G.\n# TYPE g gauge\ng{x=\"a\\tb\"} 1\n", "bad escape"},
    {"unterminated label", "# HELP g G.\n# TYPE g gauge\ng{x=\"a} 1\n", "unterminated"},
    {"unquoted label", "# HELP g G.\n# TYPE g gauge\ng{x=a} 1\n", "not quoted"},
    {"label twice", "# HELP g G.\n# TYPE g gauge\ng{x=\"a\",x=\"b\"} 1\n", "twice"},
    {"negative counter", "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n", "negative"},
    {"trailing garbage", "# HELP g G.\n# TYPE g gauge\ng 1 12 x\n", "trailing garbage"},
    {"carriage return", "# HELP g G.\r\n# TYPE g gauge\ng 1\n", "carriage return"},
};

START_TEST(checker_rejects_broken)
{
	char err[256] = "";
	const char *text = bad_cases[_i].text;
	int rc = promcheck_text(text, strlen(text), err, sizeof err);

	ck_assert_msg(rc == CV_EINVAL, "case '%s' passed the checker", bad_cases[_i].what);
	ck_assert_msg(strstr(err, bad_cases[_i].why) != NULL, "case '%s': error '%s' lacks '%s'",
		      bad_cases[_i].what, err, bad_cases[_i].why);
	ck_assert_msg(strncmp(err, "line ", 5) == 0, "error has no line number: %s", err);
}
END_TEST

START_TEST(checker_accepts_good)
{
	char err[256] = "";
	const char *extra =
	    "# a plain comment\n\n"
	    "# HELP s_seconds S with \\\\ and \\n escapes.\n# TYPE s_seconds summary\n"
	    "s_seconds{quantile=\"0.5\"} NaN\ns_seconds_sum 1e-3\ns_seconds_count 7 1700000000000\n"
	    "# HELP u U.\n# TYPE u untyped\nu{a=\"x\\\"y\\\\z\\n\",b=\"\",} -Inf\n";
	char both[2048];
	double v;

	ck_assert_msg(promcheck_text(GOOD_TEXT, strlen(GOOD_TEXT), err, sizeof err) == CV_OK, "%s", err);
	snprintf(both, sizeof both, "%s%s", GOOD_TEXT, extra);
	ck_assert_msg(promcheck_text(both, strlen(both), err, sizeof err) == CV_OK, "%s", err);

	ck_assert_int_eq(promcheck_value(GOOD_TEXT, "t_requests_total{code=\"500\"}", &v), CV_OK);
	ck_assert(v == 1);
	ck_assert_int_eq(promcheck_value(GOOD_TEXT, "t_latency_seconds_sum", &v), CV_OK);
	ck_assert(v == 4.5);
	ck_assert_int_eq(promcheck_value(both, "s_seconds_count", &v), CV_OK);
	ck_assert(v == 7);
	ck_assert_int_eq(promcheck_value(both, "u{a=\"x\\\"y\\\\z\\n\",b=\"\",}", &v), CV_OK);
	ck_assert(isinf(v) && v < 0);
	/* Exact series only: no prefix matches, no comment lines. */
	ck_assert_int_eq(promcheck_value(GOOD_TEXT, "t_requests_total", &v), CV_ENOTFOUND);
	ck_assert_int_eq(promcheck_value(GOOD_TEXT, "t_latency_seconds_bucket{le=\"0.1\"", &v), CV_ENOTFOUND);
	ck_assert_int_eq(promcheck_value(GOOD_TEXT, "t_queue_dept", &v), CV_ENOTFOUND);
	ck_assert_int_eq(promcheck_value("# HELP x 1\n", "# HELP x", &v), CV_ENOTFOUND);
	ck_assert_int_eq(promcheck_value("x abc\n", "x", &v), CV_EINVAL);
	char type[16];
	ck_assert_int_eq(promcheck_type(GOOD_TEXT, "t_latency_seconds", type, sizeof type), CV_OK);
	ck_assert_str_eq(type, "histogram");
	ck_assert_int_eq(promcheck_type(GOOD_TEXT, "t_latency", type, sizeof type), CV_ENOTFOUND);
}
END_TEST

/* ---- metrics values ------------------------------------------------------- */

START_TEST(route_and_reason_names)
{
	static const char *const routes[] = {"tts",    "speech",  "speakers", "normalize", "healthz",
					     "readyz", "metrics", "voice",    "web",	   "other"};
	static const char *const reasons[] = {"queue_full",   "body_too_large", "text_too_long", "invalid",
					      "unauthorized", "not_ready",	"shutting_down", "memory"};
	ck_assert_int_eq(METRICS_ROUTE_COUNT, 10);
	ck_assert_int_eq(METRICS_REJECT_COUNT, 8);
	for (int i = 0; i < METRICS_ROUTE_COUNT; i++)
		ck_assert_str_eq(metrics_route_name((enum metrics_route)i), routes[i]);
	for (int i = 0; i < METRICS_REJECT_COUNT; i++)
		ck_assert_str_eq(metrics_reject_name((enum metrics_reject)i), reasons[i]);
	ck_assert_str_eq(metrics_route_name(METRICS_ROUTE_COUNT), "other");
	ck_assert_str_eq(metrics_route_name((enum metrics_route) - 1), "other");
	ck_assert_str_eq(metrics_reject_name(METRICS_REJECT_COUNT), "unknown");
}
END_TEST

static const char *const hist_families[] = {"cosyvoiced_queue_wait_seconds",
					    "cosyvoiced_time_to_first_audio_seconds",
					    "cosyvoiced_real_time_factor", "cosyvoiced_synthesis_seconds"};

START_TEST(fresh_render)
{
	struct metrics *m = metrics_new("9.8.7");
	struct metrics_gauges g = {.queue_depth = 3,
				   .queue_capacity = 16,
				   .engine_ready = 1,
				   .worker_busy = 0,
				   .engine_name = "espeak-ng",
				   .engine_load_seconds = 0.25,
				   .engine_warmup_seconds = 1.5};
	struct buf b;
	const char *t;
	char series[256];
	double now = clock_wall_s(), start;

	render_ok(m, &g, &b);
	t = buf_data(&b);
	ck_assert_int_eq(t[buf_len(&b) - 1], '\n');

	/* Requests: only observed series; none yet, but the family is declared. */
	assert_type(t, "cosyvoiced_requests_total", "counter");
	ck_assert(!has_series(t, "cosyvoiced_requests_total{route=\"tts\",code=\"200\"}"));
	for (int r = 0; r < METRICS_REJECT_COUNT; r++) {
		snprintf(series, sizeof series, "cosyvoiced_rejections_total{reason=\"%s\"}",
			 metrics_reject_name((enum metrics_reject)r));
		ck_assert(value_of(t, series) == 0);
	}
	for (size_t i = 0; i < sizeof hist_families / sizeof hist_families[0]; i++) {
		assert_type(t, hist_families[i], "histogram");
		snprintf(series, sizeof series, "%s_count", hist_families[i]);
		ck_assert(value_of(t, series) == 0);
		snprintf(series, sizeof series, "%s_bucket{le=\"+Inf\"}", hist_families[i]);
		ck_assert(value_of(t, series) == 0);
	}
	assert_type(t, "cosyvoiced_request_duration_seconds", "histogram");
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_count{route=\"tts\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_count{route=\"speech\"}") == 0);
	ck_assert(!has_series(t, "cosyvoiced_request_duration_seconds_count{route=\"healthz\"}"));
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"0.005\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"120\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"0.01\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"10\"}") == 0);

	ck_assert(value_of(t, "cosyvoiced_audio_seconds_total") == 0);
	ck_assert(value_of(t, "cosyvoiced_input_characters_total") == 0);
	ck_assert(value_of(t, "cosyvoiced_cancellations_total") == 0);
	ck_assert(value_of(t, "cosyvoiced_deadline_misses_total") == 0);
	ck_assert(value_of(t, "cosyvoiced_engine_errors_total") == 0);
	ck_assert(value_of(t, "cosyvoiced_queue_depth") == 3);
	ck_assert(value_of(t, "cosyvoiced_queue_capacity") == 16);
	ck_assert(value_of(t, "cosyvoiced_in_flight_requests") == 0);
	ck_assert(value_of(t, "cosyvoiced_engine_ready") == 1);
	ck_assert(value_of(t, "cosyvoiced_worker_busy") == 0);
	ck_assert(value_of(t, "cosyvoiced_engine_load_seconds") == 0.25);
	ck_assert(value_of(t, "cosyvoiced_engine_warmup_seconds") == 1.5);
	assert_type(t, "cosyvoiced_queue_depth", "gauge");
	assert_type(t, "cosyvoiced_audio_seconds_total", "counter");

	snprintf(series, sizeof series, "cosyvoiced_build_info{version=\"9.8.7\",revision=\"%s\"}", CV_GIT);
	ck_assert(value_of(t, series) == 1);
	ck_assert(value_of(t, "cosyvoiced_engine_info{engine=\"espeak-ng\"}") == 1);

	/* A test process of a few MiB at least, well under 64 GiB. */
	double rss = value_of(t, "cosyvoiced_process_resident_memory_bytes");
	ck_assert(rss >= 1 << 20 && rss < 64.0 * (1 << 30));
	ck_assert(fmod(rss, (double)sysconf(_SC_PAGESIZE)) == 0);
	/* Start time: this process started before now and not long ago (btime
	 * has 1 s resolution, hence the slack). */
	start = value_of(t, "cosyvoiced_process_start_time_seconds");
	ck_assert_msg(start <= now + 2 && start > now - 3600, "start %f now %f", start, now);

	/* Every family has exactly one HELP and one TYPE line. */
	ck_assert_ptr_nonnull(strstr(t, "# HELP cosyvoiced_requests_total "));
	ck_assert_ptr_null(
	    strstr(strstr(t, "# HELP cosyvoiced_requests_total ") + 1, "# HELP cosyvoiced_requests_total "));
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(observations_land_in_the_right_buckets)
{
	struct metrics *m = metrics_new("1");
	struct buf b;
	const char *t;
	double sum = 0;
	static const double obs[] = {0.005, 0.0051, 200, 0.3};

	for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
		metrics_observe_queue_wait(m, obs[i]);
		sum += obs[i];
	}
	metrics_observe_queue_wait(m, -1); /* clamped to 0 */
	sum += 0;
	metrics_observe_queue_wait(m, NAN); /* dropped */
	metrics_observe_queue_wait(m, INFINITY);
	metrics_observe_ttfa(m, 0.75);
	metrics_observe_synthesis(m, 30);
	metrics_observe_rtf(m, 1);
	metrics_observe_rtf(m, 0.011);
	metrics_observe_rtf(m, 11);

	render_ok(m, NULL, &b);
	t = buf_data(&b);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"0.005\"}") ==
		  2); /* 0.005 (le inclusive), 0 */
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"0.01\"}") == 3);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"0.25\"}") == 3);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"0.5\"}") == 4);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"120\"}") == 4);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_bucket{le=\"+Inf\"}") == 5);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_count") == 5);
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_sum") == sum);

	ck_assert(value_of(t, "cosyvoiced_time_to_first_audio_seconds_bucket{le=\"0.5\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_time_to_first_audio_seconds_bucket{le=\"1\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_time_to_first_audio_seconds_sum") == 0.75);
	ck_assert(value_of(t, "cosyvoiced_synthesis_seconds_bucket{le=\"10\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_synthesis_seconds_bucket{le=\"30\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"0.01\"}") == 0);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"0.025\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"0.75\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"1\"}") == 2);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"10\"}") == 2);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_bucket{le=\"+Inf\"}") == 3);
	ck_assert(value_of(t, "cosyvoiced_real_time_factor_sum") == 1 + 0.011 + 11);
	/* No NaN/Inf leaked into any value of the exposition. */
	ck_assert_ptr_null(strstr(t, " NaN\n"));
	ck_assert_ptr_null(strstr(t, " +Inf\n"));
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(requests_counters_and_gauges)
{
	struct metrics *m = metrics_new("1");
	struct buf b;
	const char *t;

	metrics_observe_request(m, METRICS_ROUTE_TTS, 200, 0.5);
	metrics_observe_request(m, METRICS_ROUTE_TTS, 200, 1.5);
	metrics_observe_request(m, METRICS_ROUTE_TTS, 418, 0.001); /* code not in the table */
	metrics_observe_request(m, METRICS_ROUTE_SPEECH, 503, 0.02);
	metrics_observe_request(m, METRICS_ROUTE_HEALTHZ, 200, 0.0001);
	metrics_observe_request(m, METRICS_ROUTE_READYZ, 503, 0.0001);
	metrics_observe_request(m, (enum metrics_route)99, 404, 0.0001);
	metrics_observe_request(m, METRICS_ROUTE_OTHER, 404, NAN); /* counted, duration dropped */
	metrics_add_audio_seconds(m, 1.5);
	metrics_add_audio_seconds(m, 2.25);
	metrics_add_audio_seconds(m, NAN);
	metrics_add_audio_seconds(m, -3);
	metrics_add_input_chars(m, 120);
	metrics_add_input_chars(m, 5);
	for (int r = 0; r < METRICS_REJECT_COUNT; r++)
		for (int k = 0; k <= r; k++)
			metrics_inc_rejection(m, (enum metrics_reject)r);
	metrics_inc_rejection(m, METRICS_REJECT_COUNT); /* ignored */
	metrics_inc_cancellation(m);
	metrics_inc_deadline_miss(m);
	metrics_inc_deadline_miss(m);
	metrics_inc_engine_error(m);
	metrics_inc_engine_error(m);
	metrics_inc_engine_error(m);
	metrics_add_inflight(m, 3);
	metrics_add_inflight(m, -1);

	render_ok(m, NULL, &b);
	t = buf_data(&b);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"tts\",code=\"200\"}") == 2);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"tts\",code=\"other\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"speech\",code=\"503\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"healthz\",code=\"200\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"readyz\",code=\"503\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"other\",code=\"404\"}") == 2);
	ck_assert(!has_series(t, "cosyvoiced_requests_total{route=\"tts\",code=\"503\"}"));
	ck_assert(!has_series(t, "cosyvoiced_requests_total{route=\"tts\",code=\"418\"}"));

	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_count{route=\"tts\"}") == 3);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_sum{route=\"tts\"}") == 0.5 + 1.5 + 0.001);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"tts\",le=\"0.005\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"tts\",le=\"1\"}") == 2);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"tts\",le=\"2.5\"}") == 3);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_count{route=\"speech\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"speech\",le=\"0.025\"}") ==
		  1);
	ck_assert(!has_series(t, "cosyvoiced_request_duration_seconds_count{route=\"healthz\"}"));

	ck_assert(value_of(t, "cosyvoiced_audio_seconds_total") == 3.75 + 0); /* -3 clamps to 0 */
	ck_assert(value_of(t, "cosyvoiced_input_characters_total") == 125);
	ck_assert(value_of(t, "cosyvoiced_rejections_total{reason=\"queue_full\"}") == 1);
	ck_assert(value_of(t, "cosyvoiced_rejections_total{reason=\"body_too_large\"}") == 2);
	ck_assert(value_of(t, "cosyvoiced_rejections_total{reason=\"unauthorized\"}") == 5);
	ck_assert(value_of(t, "cosyvoiced_rejections_total{reason=\"memory\"}") == 8);
	ck_assert(value_of(t, "cosyvoiced_cancellations_total") == 1);
	ck_assert(value_of(t, "cosyvoiced_deadline_misses_total") == 2);
	ck_assert(value_of(t, "cosyvoiced_engine_errors_total") == 3);
	ck_assert(value_of(t, "cosyvoiced_in_flight_requests") == 2);
	/* No gauges given: zeros, no engine_info. */
	ck_assert(value_of(t, "cosyvoiced_queue_capacity") == 0);
	ck_assert_ptr_null(strstr(t, "cosyvoiced_engine_info"));
	buf_free(&b);
	metrics_free(m);
}
END_TEST

static void fill_engine_gauges(struct engine_gauges *eg)
{
	memset(eg, 0, sizeof *eg);
	eg->n = 7;
	snprintf(eg->g[0].name, sizeof eg->g[0].name, "gpu_memory_allocated_bytes");
	snprintf(eg->g[0].help, sizeof eg->g[0].help, "GPU \\ memory\nallocated.");
	eg->g[0].value = 123456789;
	snprintf(eg->g[1].name, sizeof eg->g[1].name, "Bad-Name");
	eg->g[1].value = 1;
	snprintf(eg->g[2].name, sizeof eg->g[2].name, "ready"); /* would clash with cosyvoiced_engine_ready */
	eg->g[2].value = 42;
	snprintf(eg->g[3].name, sizeof eg->g[3].name, "steps_total"); /* gauge named like a counter */
	snprintf(eg->g[4].name, sizeof eg->g[4].name, "gpu_memory_allocated_bytes"); /* duplicate */
	eg->g[4].value = 7;
	memset(eg->g[5].name, 'a', sizeof eg->g[5].name);		 /* not NUL-terminated */
	snprintf(eg->g[6].name, sizeof eg->g[6].name, "kv_cache_ratio"); /* empty help */
	eg->g[6].value = 0.5;
}

START_TEST(engine_gauges_and_escaping)
{
	struct metrics *m = metrics_new("1.0\"x\\y\nz");
	struct engine_gauges eg;
	struct metrics_gauges g = {.engine_ready = 1, .engine_name = "eng\"ine\\", .engine = &eg};
	struct buf b;
	const char *t;
	char series[256];

	fill_engine_gauges(&eg);
	render_ok(m, &g, &b);
	t = buf_data(&b);
	ck_assert(value_of(t, "cosyvoiced_engine_gpu_memory_allocated_bytes") == 123456789);
	ck_assert_ptr_nonnull(
	    strstr(t, "# HELP cosyvoiced_engine_gpu_memory_allocated_bytes GPU \\\\ memory\\nallocated.\n"
		      "# TYPE cosyvoiced_engine_gpu_memory_allocated_bytes gauge\n"));
	ck_assert(value_of(t, "cosyvoiced_engine_kv_cache_ratio") == 0.5);
	ck_assert_ptr_nonnull(
	    strstr(t, "# HELP cosyvoiced_engine_kv_cache_ratio Engine gauge kv_cache_ratio.\n"));
	ck_assert(value_of(t, "cosyvoiced_engine_ready") == 1); /* ours, not the engine's 42 */
	ck_assert_ptr_null(strstr(t, "Bad-Name"));
	ck_assert_ptr_null(strstr(t, "steps_total"));
	ck_assert_ptr_null(strstr(t, "aaaaaaaa"));
	ck_assert_ptr_null(strstr(t, " 42\n"));

	snprintf(series, sizeof series,
		 "cosyvoiced_build_info{version=\"1.0\\\"x\\\\y\\nz\",revision=\"%s\"}", CV_GIT);
	ck_assert(value_of(t, series) == 1);
	ck_assert(value_of(t, "cosyvoiced_engine_info{engine=\"eng\\\"ine\\\\\"}") == 1);

	/* n beyond the array is clamped, not trusted. */
	eg.n = ENGINE_GAUGES_MAX + 5;
	buf_free(&b);
	render_ok(m, &g, &b);
	buf_free(&b);
	metrics_free(m);
}
END_TEST

START_TEST(render_cap_and_append)
{
	struct metrics *m = metrics_new("1");
	struct buf b;
	char err[256];

	metrics_observe_request(m, METRICS_ROUTE_TTS, 200, 0.1);
	buf_init(&b, 256);
	ck_assert_int_eq(buf_append_str(&b, "abc"), CV_OK);
	ck_assert_int_eq(metrics_render(m, NULL, &b), CV_E2BIG);
	ck_assert_uint_eq(buf_len(&b), 3); /* nothing partial appended */
	ck_assert_str_eq(buf_data(&b), "abc");
	buf_free(&b);

	buf_init(&b, RENDER_CAP);
	ck_assert_int_eq(buf_append_str(&b, "abc"), CV_OK);
	ck_assert_int_eq(metrics_render(m, NULL, &b), CV_OK);
	ck_assert(memcmp(buf_data(&b), "abc# HELP ", 10) == 0);
	ck_assert_msg(promcheck_text(buf_data(&b) + 3, buf_len(&b) - 3, err, sizeof err) == CV_OK, "%s", err);
	buf_free(&b);

	ck_assert_int_eq(metrics_render(NULL, NULL, &b), CV_EINVAL);
	/* NULL metrics are no-ops everywhere. */
	metrics_observe_request(NULL, METRICS_ROUTE_TTS, 200, 1);
	metrics_observe_queue_wait(NULL, 1);
	metrics_observe_ttfa(NULL, 1);
	metrics_observe_rtf(NULL, 1);
	metrics_observe_synthesis(NULL, 1);
	metrics_add_audio_seconds(NULL, 1);
	metrics_add_input_chars(NULL, 1);
	metrics_inc_rejection(NULL, METRICS_REJECT_MEMORY);
	metrics_inc_cancellation(NULL);
	metrics_inc_deadline_miss(NULL);
	metrics_inc_engine_error(NULL);
	metrics_add_inflight(NULL, 1);
	metrics_free(NULL);
	metrics_free(m);
}
END_TEST

/* ---- concurrency ---------------------------------------------------------- */

#define THREADS 4
#define ITERS	5000

struct conc {
	struct metrics *m;
	int done; /* set by the main thread under mu after joining workers */
	pthread_mutex_t mu;
	int renders;
	char err[256];
};

static void *conc_worker(void *arg)
{
	struct conc *c = arg;
	for (int i = 0; i < ITERS; i++) {
		metrics_add_inflight(c->m, 1);
		metrics_observe_request(c->m, METRICS_ROUTE_TTS, 200, 0.25);
		metrics_observe_request(c->m, METRICS_ROUTE_SPEECH, 429, 0.5);
		metrics_observe_queue_wait(c->m, 0.5);
		metrics_observe_ttfa(c->m, 0.125);
		metrics_observe_rtf(c->m, 0.5);
		metrics_observe_synthesis(c->m, 1);
		metrics_add_audio_seconds(c->m, 0.5);
		metrics_add_input_chars(c->m, 3);
		metrics_inc_rejection(c->m, (enum metrics_reject)(i % METRICS_REJECT_COUNT));
		metrics_inc_cancellation(c->m);
		metrics_inc_deadline_miss(c->m);
		metrics_inc_engine_error(c->m);
		metrics_add_inflight(c->m, -1);
	}
	return NULL;
}

/* Renders while the workers run: every snapshot must be a valid exposition
 * and internally consistent (both updated under one lock). */
static void *conc_renderer(void *arg)
{
	struct conc *c = arg;
	for (;;) {
		struct buf b;
		double req, cnt;
		int done;

		pthread_mutex_lock(&c->mu);
		done = c->done;
		pthread_mutex_unlock(&c->mu);
		buf_init(&b, RENDER_CAP);
		if (metrics_render(c->m, NULL, &b) != CV_OK) {
			snprintf(c->err, sizeof c->err, "render failed");
		} else if (promcheck_text(buf_data(&b), buf_len(&b), c->err, sizeof c->err) != CV_OK) {
			/* err filled */
		} else {
			if (promcheck_value(buf_data(&b),
					    "cosyvoiced_request_duration_seconds_count{route=\"tts\"}",
					    &cnt) != CV_OK)
				cnt = -1;
			if (promcheck_value(buf_data(&b),
					    "cosyvoiced_requests_total{route=\"tts\",code=\"200\"}",
					    &req) != CV_OK)
				req = 0; /* not observed yet */
			if (req != cnt)
				snprintf(c->err, sizeof c->err,
					 "inconsistent snapshot: %g requests, %g durations", req, cnt);
		}
		buf_free(&b);
		pthread_mutex_lock(&c->mu);
		c->renders++;
		pthread_mutex_unlock(&c->mu);
		if (c->err[0] || done)
			return NULL;
	}
}

START_TEST(concurrent_observations_add_up)
{
	struct conc c = {.m = metrics_new("1"), .done = 0, .renders = 0};
	pthread_t w[THREADS], r;
	struct buf b;
	const char *t;
	char series[128];
	const double n = (double)THREADS * ITERS;

	pthread_mutex_init(&c.mu, NULL);
	ck_assert_int_eq(pthread_create(&r, NULL, conc_renderer, &c), 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&w[i], NULL, conc_worker, &c), 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_join(w[i], NULL), 0);
	pthread_mutex_lock(&c.mu);
	c.done = 1;
	pthread_mutex_unlock(&c.mu);
	ck_assert_int_eq(pthread_join(r, NULL), 0);
	ck_assert_msg(c.err[0] == '\0', "renderer: %s", c.err);
	ck_assert_int_ge(c.renders, 1);

	render_ok(c.m, NULL, &b);
	t = buf_data(&b);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"tts\",code=\"200\"}") == n);
	ck_assert(value_of(t, "cosyvoiced_requests_total{route=\"speech\",code=\"429\"}") == n);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_count{route=\"tts\"}") == n);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_sum{route=\"tts\"}") == n * 0.25);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"speech\",le=\"0.5\"}") ==
		  n);
	ck_assert(value_of(t, "cosyvoiced_request_duration_seconds_bucket{route=\"speech\",le=\"0.25\"}") ==
		  0);
	for (size_t i = 0; i < sizeof hist_families / sizeof hist_families[0]; i++) {
		snprintf(series, sizeof series, "%s_count", hist_families[i]);
		ck_assert(value_of(t, series) == n);
		snprintf(series, sizeof series, "%s_bucket{le=\"+Inf\"}", hist_families[i]);
		ck_assert(value_of(t, series) == n);
	}
	ck_assert(value_of(t, "cosyvoiced_queue_wait_seconds_sum") == n * 0.5);
	ck_assert(value_of(t, "cosyvoiced_time_to_first_audio_seconds_sum") == n * 0.125);
	ck_assert(value_of(t, "cosyvoiced_synthesis_seconds_sum") == n);
	ck_assert(value_of(t, "cosyvoiced_audio_seconds_total") == n * 0.5);
	ck_assert(value_of(t, "cosyvoiced_input_characters_total") == n * 3);
	for (int k = 0; k < METRICS_REJECT_COUNT; k++) {
		double want = 0;
		for (int i = 0; i < ITERS; i++)
			want += i % METRICS_REJECT_COUNT == k;
		snprintf(series, sizeof series, "cosyvoiced_rejections_total{reason=\"%s\"}",
			 metrics_reject_name((enum metrics_reject)k));
		ck_assert(value_of(t, series) == want * THREADS);
	}
	ck_assert(value_of(t, "cosyvoiced_cancellations_total") == n);
	ck_assert(value_of(t, "cosyvoiced_deadline_misses_total") == n);
	ck_assert(value_of(t, "cosyvoiced_engine_errors_total") == n);
	ck_assert(value_of(t, "cosyvoiced_in_flight_requests") == 0);
	buf_free(&b);
	pthread_mutex_destroy(&c.mu);
	metrics_free(c.m);
}
END_TEST

/* ---- promtool ------------------------------------------------------------- */

START_TEST(promtool_accepts_our_exposition)
{
	struct metrics *m = metrics_new(CV_VERSION);
	struct engine_gauges eg;
	struct metrics_gauges g = {.queue_depth = 1,
				   .queue_capacity = 8,
				   .engine_ready = 1,
				   .worker_busy = 1,
				   .engine_name = "espeak-ng",
				   .engine_load_seconds = 0.1,
				   .engine_warmup_seconds = 0.2,
				   .engine = &eg};
	struct buf b;
	char msg[4096];
	int rc;

	/* Fresh: histogram families with zero counts, requests_total without series. */
	render_ok(m, NULL, &b);
	rc = promtool_check(buf_data(&b), buf_len(&b), msg, sizeof msg);
	ck_assert_msg(rc == 0, "promtool rc %d on fresh exposition:\n%.3000s", rc, msg);
	buf_free(&b);

	/* Busy: every family with data, engine gauges (valid and skipped ones). */
	fill_engine_gauges(&eg);
	for (int r = 0; r < METRICS_ROUTE_COUNT; r++)
		metrics_observe_request(m, (enum metrics_route)r, r % 2 ? 200 : 777, 0.01 * r);
	for (int r = 0; r < METRICS_REJECT_COUNT; r++)
		metrics_inc_rejection(m, (enum metrics_reject)r);
	metrics_observe_queue_wait(m, 0.3);
	metrics_observe_ttfa(m, 0.2);
	metrics_observe_rtf(m, 0.1);
	metrics_observe_synthesis(m, 2);
	metrics_add_audio_seconds(m, 1.0 / 3.0);
	metrics_add_input_chars(m, 10);
	metrics_inc_cancellation(m);
	metrics_inc_deadline_miss(m);
	metrics_inc_engine_error(m);
	metrics_add_inflight(m, 1);
	render_ok(m, &g, &b);
	rc = promtool_check(buf_data(&b), buf_len(&b), msg, sizeof msg);
	ck_assert_msg(rc == 0, "promtool rc %d:\n%.1500s\n---\n%.2000s", rc, msg, buf_data(&b));
	buf_free(&b);

	rc = promtool_check(GOOD_TEXT, strlen(GOOD_TEXT), msg, sizeof msg);
	ck_assert_msg(rc == 0, "promtool rc %d on the checker's good sample:\n%.3000s", rc, msg);
	metrics_free(m);
}
END_TEST

START_TEST(promtool_rejects_bad_exposition)
{
	static const char no_total[] = "# HELP cosyvoiced_requests Requests.\n"
				       "# TYPE cosyvoiced_requests counter\n"
				       "cosyvoiced_requests 3\n";
	static const char no_newline[] = "# HELP g G.\n# TYPE g gauge\ng 1";
	char msg[4096];
	int rc;

	rc = promtool_check(no_total, strlen(no_total), msg, sizeof msg);
	ck_assert_msg(rc != 0, "promtool accepted a counter without _total:\n%s", msg);
	ck_assert_msg(strstr(msg, "_total") != NULL, "unexpected promtool output: %s", msg);
	rc = promtool_check(no_newline, strlen(no_newline), msg, sizeof msg);
	ck_assert_msg(rc != 0, "promtool accepted text without a final newline:\n%s", msg);
}
END_TEST

Suite *suite_metrics(void);
Suite *suite_metrics(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("promcheck");
	tcase_add_loop_test(tc, checker_rejects_broken, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, checker_accepts_good);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_test(tc, route_and_reason_names);
	tcase_add_test(tc, fresh_render);
	tcase_add_test(tc, observations_land_in_the_right_buckets);
	tcase_add_test(tc, requests_counters_and_gauges);
	tcase_add_test(tc, engine_gauges_and_escaping);
	tcase_add_test(tc, render_cap_and_append);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_test(tc, concurrent_observations_add_up);
	suite_add_tcase(s, tc);

	tc = tcase_create("promtool");
	tcase_add_test(tc, promtool_accepts_our_exposition);
	tcase_add_test(tc, promtool_rejects_bad_exposition);
	suite_add_tcase(s, tc);
	return s;
}
