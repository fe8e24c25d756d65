/* tests/integration/check_shutdown.c — SIGTERM while a long job runs and two
 * more wait in the queue: the running job finishes inside the drain timeout
 * (200, complete audio), the queued ones get 503 with the house envelope,
 * and the process exits with status 0. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/integration/harness.h"

/* The drain timeout, scaled for valgrind (where synthesis is far slower). */
static char drain_ms[32];

static void shutdown_setup(void)
{
	snprintf(drain_ms, sizeof drain_ms, "%.0f", harness_scale(20) * 1000);
	const char *const args[] = {"--queue-capacity",
				    "4",
				    "--drain-timeout-ms",
				    drain_ms,
				    "--max-text-chars",
				    "100000",
				    "--max-audio-seconds",
				    "7200",
				    NULL};
	harness_start(args);
}

struct job_client {
	char *body;
	const char *rid;
	struct http_resp resp;
	int rc;
};

static void *job_client_main(void *arg)
{
	struct job_client *c = arg;
	char hdr[96];
	snprintf(hdr, sizeof hdr, "X-Request-Id: %s", c->rid);
	const char *hdrs[] = {hdr, NULL};
	struct http_req rq = {
	    .path = "/tts", .body = c->body, .body_len = (size_t)-1, .headers = hdrs, .timeout_s = 300};
	c->rc = http_do(&rq, &c->resp);
	return NULL;
}

static char *tts_body(size_t chars, unsigned variant, const char *extra)
{
	char *t = make_text(chars, variant);
	size_t n = strlen(t) + 128;
	char *b = malloc(n);
	ck_assert_ptr_nonnull(b);
	snprintf(b, n, "{\"text\": \"%s\"%s}", t, extra);
	free(t);
	return b;
}

/* Poll a gauge until it reaches want (or timeout); returns the last value. */
static double wait_gauge(const char *name, double want, double timeout_s)
{
	double end = now_s() + harness_scale(timeout_s), v;
	for (;;) {
		v = scrape_metric(name);
		if (v >= want || now_s() > end)
			return v;
		sleep_ms(20);
	}
}

START_TEST(sigterm_drains_running_refuses_queued)
{
	/* About 45 minutes of slow speech: seconds of espeak-ng work, so the
	 * job is still running when the short ones queue and SIGTERM arrives
	 * (valgrind: a fifth of it). PCM at 8 kHz keeps the reply small. */
	size_t long_chars = harness_valgrind() ? 4000 : 20000;
	struct job_client a = {
	    .body = tts_body(long_chars, 7, ", \"speed\": 0.5, \"format\": \"pcm\", \"sample_rate\": 8000"),
	    .rid = "long-running"};
	struct job_client b = {.body = tts_body(200, 8, ""), .rid = "queued-1"};
	struct job_client c = {.body = tts_body(200, 9, ""), .rid = "queued-2"};
	pthread_t ta, tb, tc;

	ck_assert_int_eq(pthread_create(&ta, NULL, job_client_main, &a), 0);
	double busy = wait_gauge("cosyvoiced_worker_busy", 1, 10);
	HCHECK(busy >= 1, "the long job never started (cosyvoiced_worker_busy %g)", busy);
	ck_assert_int_eq(pthread_create(&tb, NULL, job_client_main, &b), 0);
	ck_assert_int_eq(pthread_create(&tc, NULL, job_client_main, &c), 0);
	double depth = wait_gauge("cosyvoiced_queue_depth", 2, 10);
	HCHECK(depth >= 2, "the two short jobs never queued (cosyvoiced_queue_depth %g)", depth);
	double still_busy = scrape_metric("cosyvoiced_worker_busy");
	HCHECK(still_busy >= 1, "the long job ended before SIGTERM: make its text longer");

	ck_assert_int_eq(harness_signal(SIGTERM), 0);
	double t_term = now_s();
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	pthread_join(ta, NULL);
	double drained_for = now_s() - t_term;

	struct job_client *queued[] = {&b, &c};
	for (int i = 0; i < 2; i++) {
		struct http_resp *r = &queued[i]->resp;
		HCHECK(queued[i]->rc == 0, "%s: curl %d %s", queued[i]->rid, queued[i]->rc, r->curl_err);
		check_house_error(r, 503, "unavailable", NULL);
		const char *id = http_header(r, "X-Request-Id");
		HCHECK(id && strcmp(id, queued[i]->rid) == 0, "%s: X-Request-Id %s", queued[i]->rid,
		       id ? id : "(none)");
	}

	HCHECK(a.rc == 0, "running job: curl %d %s", a.rc, a.resp.curl_err);
	if (a.resp.status != 200) {
		/* Allowed only once the drain timeout has run out (slow machine,
		 * valgrind), and then with a clear error. */
		double limit = strtod(drain_ms, NULL) / 1000;
		HCHECK(drained_for >= limit * 0.95,
		       "running job cut after %.1f s, before the drain timeout of %.0f s: status %ld %.300s",
		       drained_for, limit, a.resp.status, buf_data(&a.resp.body));
		check_house_error(&a.resp, a.resp.status, house_type(a.resp.status), NULL);
		HCHECK(a.resp.status == 503 || a.resp.status == 504, "running job cut with status %ld",
		       a.resp.status);
		fprintf(stderr, "shutdown: the running job outlived the drain timeout (%.0f s) and was cut\n",
			limit);
	} else {
		double announced = 0;
		HCHECK(parse_double(http_header(&a.resp, "X-Audio-Duration"), &announced),
		       "X-Audio-Duration %s", http_header(&a.resp, "X-Audio-Duration"));
		struct audio_info ai;
		char err[1024];
		HCHECK(audio_probe("pcm", buf_data(&a.resp.body), buf_len(&a.resp.body), 8000, &ai, err,
				   sizeof err) == 0,
		       "running job audio: %s", err);
		HCHECK(ai.duration > (double)long_chars / 100 && ai.duration > announced - 0.02 &&
			   ai.duration < announced + 0.02,
		       "running job: %.3f s of PCM, announced %.3f s (%zu characters at speed 0.5)",
		       ai.duration, announced, long_chars);
	}
	int st = 0;
	int exited = harness_wait_exit(harness_scale(30), &st);
	HCHECK(exited, "daemon still running 30 s after the drained job finished");
	HCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit: wait status 0x%x (exit %d)", (unsigned)st,
	       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	http_resp_free(&a.resp);
	http_resp_free(&b.resp);
	http_resp_free(&c.resp);
	free(a.body);
	free(b.body);
	free(c.body);
}
END_TEST

Suite *suite_shutdown(void);
Suite *suite_shutdown(void)
{
	Suite *s = suite_create("shutdown");
	TCase *tc = tcase_create("drain");
	tcase_add_unchecked_fixture(tc, shutdown_setup, harness_stop);
	harness_tcase_timeout(tc, 180);
	tcase_add_test(tc, sigterm_drains_running_refuses_queued);
	suite_add_tcase(s, tc);
	return s;
}
