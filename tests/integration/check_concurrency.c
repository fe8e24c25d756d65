/* tests/integration/check_concurrency.c — a burst of parallel requests into a
 * small queue (capacity 2): the overflow gets 503 with Retry-After and the
 * house envelope, the rest get 200 with their OWN audio (request id echoed,
 * and audio durations ordered like their text lengths, so no response can
 * carry another request's audio). */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/harness.h"

#define N_CLIENTS 10

static void conc_setup(void)
{
	static const char *const args[] = {"--queue-capacity", "2", "--max-audio-seconds", "3600", NULL};
	harness_start(args);
}

struct client {
	int idx;
	pthread_barrier_t *go;
	char *body;
	char rid[64];
	struct http_resp resp;
	int rc;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	char hdr[96];
	snprintf(hdr, sizeof hdr, "X-Request-Id: %s", c->rid);
	const char *hdrs[] = {hdr, NULL};
	struct http_req rq = {.path = "/tts", .body = c->body, .body_len = (size_t)-1, .headers = hdrs};
	pthread_barrier_wait(c->go);
	c->rc = http_do(&rq, &c->resp);
	return NULL;
}

START_TEST(burst_overflows_cleanly)
{
	double rej_before = scrape_metric("cosyvoiced_rejections_total");
	double cancel_before = scrape_metric("cosyvoiced_cancellations_total");
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, N_CLIENTS);
	struct client cl[N_CLIENTS];
	pthread_t th[N_CLIENTS];
	for (int i = 0; i < N_CLIENTS; i++) {
		memset(&cl[i], 0, sizeof cl[i]);
		cl[i].idx = i;
		cl[i].go = &go;
		/* Lengths 1200, 1300, ... characters: each audio is seconds longer
		 * than the previous one. */
		char *t = make_text(1200 + 100 * (size_t)i, (unsigned)i + 10);
		size_t n = strlen(t) + 64;
		cl[i].body = malloc(n);
		ck_assert_ptr_nonnull(cl[i].body);
		snprintf(cl[i].body, n, "{\"text\": \"%s\"}", t);
		free(t);
		snprintf(cl[i].rid, sizeof cl[i].rid, "burst-%d", i);
		ck_assert_int_eq(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
	}
	for (int i = 0; i < N_CLIENTS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);

	int n200 = 0, n503 = 0;
	double last_dur = 0;
	int last_ok = -1;
	for (int i = 0; i < N_CLIENTS; i++) {
		struct http_resp *r = &cl[i].resp;
		HCHECK(cl[i].rc == 0, "client %d: curl %d %s", i, cl[i].rc, r->curl_err);
		HCHECK(r->status == 200 || r->status == 503, "client %d: status %ld %.300s", i, r->status,
		       buf_data(&r->body));
		const char *id = http_header(r, "X-Request-Id");
		HCHECK(id && strcmp(id, cl[i].rid) == 0, "client %d: X-Request-Id %s, sent %s", i,
		       id ? id : "(none)", cl[i].rid);
		if (r->status == 503) {
			n503++;
			check_house_error(r, 503, "unavailable", NULL);
			double ra = 0;
			const char *ras = http_header(r, "Retry-After");
			HCHECK(parse_double(ras, &ra) && ra >= 1 && ra == (double)(long)ra,
			       "client %d: Retry-After %s", i, ras ? ras : "(none)");
			continue;
		}
		n200++;
		double announced = 0;
		HCHECK(parse_double(http_header(r, "X-Audio-Duration"), &announced),
		       "client %d: X-Audio-Duration %s", i, http_header(r, "X-Audio-Duration"));
		struct audio_info ai;
		char err[1024];
		HCHECK(audio_probe("wav", buf_data(&r->body), buf_len(&r->body), 0, &ai, err, sizeof err) ==
			   0,
		       "client %d: %s", i, err);
		HCHECK(ai.duration > announced - 0.02 && ai.duration < announced + 0.02,
		       "client %d: decoded %.3f s, announced %.3f s", i, ai.duration, announced);
		HCHECK(ai.duration > 10, "client %d: only %.3f s of audio for %d characters", i, ai.duration,
		       1200 + 100 * i);
		/* Longer text, longer audio: a response carrying another request's
		 * audio would break the order. */
		HCHECK(last_ok < 0 || ai.duration > last_dur,
		       "client %d (%d chars): %.3f s, not longer than client "
		       "%d (%d chars): %.3f s",
		       i, 1200 + 100 * i, ai.duration, last_ok, 1200 + 100 * last_ok, last_dur);
		last_dur = ai.duration;
		last_ok = i;
	}
	HCHECK(n503 >= 1, "no request was refused: %d got 200 with a queue of 2", n200);
	HCHECK(n200 >= 1, "every request was refused");
	double rej_after = scrape_metric("cosyvoiced_rejections_total");
	HCHECK(rej_after >= rej_before + n503, "rejections went from %g to %g with %d refusals", rej_before,
	       rej_after, n503);
	/* a refused job was never queued: its 503 is a rejection, not a cancellation */
	double cancel_after = scrape_metric("cosyvoiced_cancellations_total");
	HCHECK(cancel_after == cancel_before,
	       "cancellations went from %g to %g with %d refusals and no client gone", cancel_before,
	       cancel_after, n503);
	for (int i = 0; i < N_CLIENTS; i++) {
		http_resp_free(&cl[i].resp);
		free(cl[i].body);
	}
	/* And it recovers. */
	check_serves_normal();
	struct http_resp r;
	ck_assert_int_eq(http_get("/readyz", &r), 0);
	HCHECK(r.status == 200, "/readyz after the burst: %ld %.200s", r.status, buf_data(&r.body));
	http_resp_free(&r);
}
END_TEST

Suite *suite_concurrency(void);
Suite *suite_concurrency(void)
{
	Suite *s = suite_create("concurrency");
	TCase *tc = tcase_create("burst");
	tcase_add_unchecked_fixture(tc, conc_setup, harness_stop);
	harness_tcase_timeout(tc, 180);
	tcase_add_test(tc, burst_overflows_cleanly);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
