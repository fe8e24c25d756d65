/* tests/unit/check_sched.c — the scheduler with the real espeak-ng backend.
 *
 * "Long" jobs speak a text of hours, throttled by a sleeping notify callback
 * (espeak alone runs ~500x faster than real time), so they are reliably
 * still running while a test queues, cancels or shuts down around them;
 * every test stops them early. "Early" is judged against the measured length
 * of one sentence times the repeat count. Waits poll job status with a generous
 * bound (the Check timeout is the real guard); nothing asserts on timing. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/mem.h"
#include "engine/sched.h"

#define WAIT_MS 20000

static struct sched *start(size_t capacity, int warmup, const char *default_speaker)
{
	struct sched_config cfg = {
	    .queue_capacity = capacity,
	    .engine = {.backend = "espeak", .default_speaker = default_speaker},
	    .warmup = warmup,
	};
	struct sched *s = NULL;
	char err[256] = "";
	ck_assert_int_eq(sched_start(&cfg, &s, err, sizeof err), CV_OK);
	ck_assert_ptr_nonnull(s);
	return s;
}

static struct sched *start_ready(size_t capacity)
{
	struct sched *s = start(capacity, 0, NULL);
	char err[256] = "";
	int rc = sched_wait_ready(s, WAIT_MS, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "wait_ready: %d %s", rc, err);
	ck_assert_int_eq(sched_get_state(s), SCHED_READY);
	return s;
}

#define SENTENCE  "This sentence keeps the speech engine busy for quite a while. "
#define LONG_REPS 3000

static char *long_text(void)
{
	static const char sentence[] = SENTENCE;
	size_t l = strlen(sentence), reps = LONG_REPS;
	char *t = xmalloc(l * reps + 1);
	for (size_t i = 0; i < reps; i++)
		memcpy(t + i * l, sentence, l);
	t[l * reps] = '\0';
	return t;
}

static struct job *mkjob(const char *text, int64_t deadline_ns)
{
	struct job_spec spec = {.text = text, .speed = 1.0f, .deadline_ns = deadline_ns};
	return job_new(&spec);
}

/* Notify runs on the worker after every chunk: sleeping there plays a slow
 * consumer and caps the worker at ~100x real time, so a long job stays
 * long (and small in memory) even on a fast machine. */
static void throttle_notify(void *ctx)
{
	(void)ctx;
	usleep(1000);
}

static struct job *mkjob_long(const char *text, int64_t deadline_ns)
{
	struct job *j = mkjob(text, deadline_ns);
	job_set_notify(j, throttle_notify, NULL);
	return j;
}

static struct job_status wait_state(struct job *j, enum job_state want)
{
	struct job_status st;
	for (int i = 0; i < WAIT_MS; i++) {
		job_get_status(j, &st);
		if (st.state >= want)
			return st;
		usleep(1000);
	}
	ck_abort_msg("job did not reach state %d", (int)want);
	return st;
}

static struct job_status wait_done(struct job *j)
{
	return wait_state(j, JOB_DONE);
}

/* Wait until the job has produced audio (so it is surely running). */
static void wait_audio(struct job *j)
{
	struct job_status st;
	for (int i = 0; i < WAIT_MS; i++) {
		job_get_status(j, &st);
		ck_assert_int_ne(st.state, JOB_DONE);
		if (st.samples_total > 0)
			return;
		usleep(1000);
	}
	ck_abort_msg("no audio arrived");
}

/* Samples the whole long text would give, from one sentence through s. */
static double long_text_samples(struct sched *s)
{
	struct job *j = mkjob(SENTENCE, 0);
	ck_assert_int_eq(sched_submit(s, j), CV_OK);
	struct job_status st = wait_done(j);
	ck_assert_int_eq(st.result, CV_OK);
	ck_assert_uint_gt(st.samples_total, 0);
	job_unref(j);
	return (double)st.samples_total * LONG_REPS;
}

/* Completion log filled by notify callbacks. */
struct done_log {
	pthread_mutex_t mu;
	int order[16];
	int n;
	int notifies;
};

struct tracked {
	struct job *j;
	int id;
	int logged;
	struct done_log *log;
};

static void log_notify(void *ctx)
{
	struct tracked *t = ctx;
	struct job_status st;
	job_get_status(t->j, &st);
	pthread_mutex_lock(&t->log->mu);
	t->log->notifies++;
	if (st.state == JOB_DONE && !t->logged && t->log->n < 16) {
		t->logged = 1;
		t->log->order[t->log->n++] = t->id;
	}
	pthread_mutex_unlock(&t->log->mu);
}

START_TEST(fifo_order)
{
	static const char *texts[] = {"One.", "Two words.", "Three little words.", "Four.",
				      "Five, then done."};
	struct sched *s = start_ready(8);
	struct done_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct tracked t[5];
	struct job_status st[5];

	for (int i = 0; i < 5; i++) {
		t[i] = (struct tracked){.j = mkjob(texts[i], 0), .id = i, .log = &log};
		job_set_notify(t[i].j, log_notify, &t[i]);
		ck_assert_int_eq(sched_submit(s, t[i].j), CV_OK);
	}
	for (int i = 0; i < 5; i++)
		st[i] = wait_done(t[i].j);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(st[i].result, CV_OK);
		ck_assert_uint_gt(st[i].samples_total, 0);
		ck_assert_int_ne(st[i].t_start_ns, 0);
		ck_assert_uint_gt(st[i].timings.n, 0);
		if (i > 0) {
			ck_assert_int_ge(st[i].t_start_ns, st[i - 1].t_end_ns);
			ck_assert_int_gt(st[i].t_end_ns, st[i - 1].t_end_ns);
		}
		job_set_notify(t[i].j, NULL, NULL);
	}
	pthread_mutex_lock(&log.mu);
	ck_assert_int_eq(log.n, 5);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(log.order[i], i);
	ck_assert_int_gt(log.notifies, 5); /* PCM notifications too, not only finish */
	pthread_mutex_unlock(&log.mu);
	ck_assert_uint_eq(sched_depth(s), 0);
	ck_assert_int_eq(sched_retry_after_s(s), 1);
	sched_free(s);
	for (int i = 0; i < 5; i++)
		job_unref(t[i].j);
}
END_TEST

START_TEST(queue_full)
{
	struct sched *s = start_ready(2);
	char *text = long_text();
	struct job *a = mkjob_long(text, 0), *b = mkjob("Bee.", 0), *c = mkjob("Sea.", 0),
		   *d = mkjob("Dee.", 0);

	ck_assert_uint_eq(sched_capacity(s), 2);
	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_audio(a);
	ck_assert_int_eq(sched_busy(s), 1);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	ck_assert_int_eq(sched_submit(s, c), CV_OK);
	ck_assert_uint_eq(sched_depth(s), 2);
	ck_assert_int_eq(sched_submit(s, d), CV_EFULL);
	/* No job measured yet: 2 s per job for 2 queued + 1 running. */
	ck_assert_int_eq(sched_retry_after_s(s), 6);
	sched_cancel(s, a, CV_ECANCELED);
	ck_assert_int_eq(wait_done(a).result, CV_ECANCELED);
	ck_assert_int_eq(wait_done(b).result, CV_OK);
	ck_assert_int_eq(wait_done(c).result, CV_OK);
	/* d was never queued. */
	struct job_status st;
	job_get_status(d, &st);
	ck_assert_int_eq(st.state, JOB_QUEUED);
	ck_assert_int_eq(sched_submit(s, d), CV_OK);
	ck_assert_int_eq(wait_done(d).result, CV_OK);
	sched_free(s);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	job_unref(d);
	free(text);
}
END_TEST

START_TEST(cancel_queued)
{
	struct sched *s = start_ready(4);
	char *text = long_text();
	struct job *a = mkjob_long(text, 0), *b = mkjob("Never spoken.", 0);
	struct done_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct tracked tb = {.j = b, .id = 1, .log = &log};
	struct job_status st;

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_audio(a);
	job_set_notify(b, log_notify, &tb);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	ck_assert_uint_eq(sched_depth(s), 1);
	sched_cancel(s, b, CV_ECANCELED);
	/* Finished synchronously, without running. */
	job_get_status(b, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, CV_ECANCELED);
	ck_assert_int_eq(st.cancel_reason, CV_ECANCELED);
	ck_assert_int_eq(st.t_start_ns, 0);
	ck_assert_uint_eq(st.samples_total, 0);
	ck_assert_uint_gt(strlen(st.error), 0);
	ck_assert_uint_eq(sched_depth(s), 0);
	pthread_mutex_lock(&log.mu);
	ck_assert_int_eq(log.n, 1);
	pthread_mutex_unlock(&log.mu);
	job_set_notify(b, NULL, NULL);
	sched_cancel(s, a, CV_ECANCELED);
	wait_done(a);
	sched_free(s);
	job_unref(a);
	job_unref(b);
	free(text);
}
END_TEST

START_TEST(cancel_running_stops_early)
{
	struct sched *s = start_ready(4);
	char *text = long_text();
	struct job *a = mkjob_long(text, 0);
	struct job_status st;
	double full = long_text_samples(s);

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_audio(a);
	sched_cancel(s, a, CV_ECANCELED);
	st = wait_done(a);
	ck_assert_int_eq(st.result, CV_ECANCELED);
	ck_assert_int_eq(st.cancel_reason, CV_ECANCELED);
	ck_assert_int_ne(st.t_start_ns, 0);
	ck_assert_int_ne(st.t_first_audio_ns, 0);
	ck_assert_msg((double)st.samples_total < full / 2, "%zu of ~%.0f samples", st.samples_total, full);
	ck_assert_int_eq(sched_busy(s), 0);
	/* The worker serves the next job normally. */
	struct job *b = mkjob("Still working.", 0);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	ck_assert_int_eq(wait_done(b).result, CV_OK);
	sched_free(s);
	job_unref(a);
	job_unref(b);
	free(text);
}
END_TEST

START_TEST(deadline_in_queue)
{
	struct sched *s = start_ready(4);
	char *text = long_text();
	struct job *a = mkjob_long(text, 0);
	struct job *b = mkjob("Too late.", clock_now_ns() + 50LL * 1000000LL);
	struct done_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct tracked tb = {.j = b, .id = 1, .log = &log};
	struct job_status st;

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_audio(a);
	job_set_notify(b, log_notify, &tb);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	st = wait_done(b); /* expired by the worker's sweep while a still runs */
	ck_assert_int_eq(st.result, CV_ETIMEDOUT);
	ck_assert_int_eq(st.cancel_reason, CV_ETIMEDOUT);
	ck_assert_int_eq(st.t_start_ns, 0);
	pthread_mutex_lock(&log.mu);
	ck_assert_int_eq(log.n, 1);
	pthread_mutex_unlock(&log.mu);
	job_set_notify(b, NULL, NULL);
	job_get_status(a, &st);
	ck_assert_int_eq(st.state, JOB_RUNNING);
	sched_cancel(s, a, CV_ECANCELED);
	wait_done(a);
	sched_free(s);
	job_unref(a);
	job_unref(b);
	free(text);
}
END_TEST

START_TEST(deadline_while_running)
{
	struct sched *s = start_ready(4);
	char *text = long_text();
	double full = long_text_samples(s);
	struct job *a = mkjob_long(text, clock_now_ns() + 300LL * 1000000LL);
	struct job_status st;

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	st = wait_done(a);
	ck_assert_int_eq(st.result, CV_ETIMEDOUT);
	ck_assert_int_eq(st.cancel_reason, CV_ETIMEDOUT);
	ck_assert_msg((double)st.samples_total < full / 2, "%zu of ~%.0f samples", st.samples_total, full);
	sched_free(s);
	job_unref(a);
	free(text);
}
END_TEST

START_TEST(engine_errors_reach_the_job)
{
	struct sched *s = start_ready(4);
	struct job_spec bad = {.text = "Hello.", .speaker = "zz-nope", .speed = 1.0f};
	struct job_spec capped = {
	    .text = "This will not fit in one hundred samples.", .speed = 1.0f, .max_samples = 100};
	struct job *a = job_new(&bad), *b = job_new(&capped);
	struct job_status st;

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	st = wait_done(a);
	ck_assert_int_eq(st.result, CV_EINVAL);
	ck_assert_str_eq(st.error, "unknown speaker 'zz-nope'");
	st = wait_done(b);
	ck_assert_int_eq(st.result, CV_E2BIG);
	ck_assert_uint_le(st.samples_total, 100);
	ck_assert_uint_gt(strlen(st.error), 0);
	sched_free(s);
	job_unref(a);
	job_unref(b);
}
END_TEST

START_TEST(shutdown_with_queued_jobs)
{
	struct sched *s = start_ready(4);
	char *text = long_text();
	struct job *a = mkjob_long(text, 0), *b = mkjob("Bee.", 0), *c = mkjob("Sea.", 0);
	struct done_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct tracked tb = {.j = b, .id = 1, .log = &log}, tc = {.j = c, .id = 2, .log = &log};
	struct job_status st;

	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_audio(a);
	job_set_notify(b, log_notify, &tb);
	job_set_notify(c, log_notify, &tc);
	ck_assert_int_eq(sched_submit(s, b), CV_OK);
	ck_assert_int_eq(sched_submit(s, c), CV_OK);
	sched_shutdown(s, 0);
	ck_assert_int_eq(sched_get_state(s), SCHED_STOPPED);
	ck_assert_ptr_null(sched_engine(s));
	job_get_status(b, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, CV_ESHUTDOWN);
	ck_assert_int_eq(st.t_start_ns, 0);
	job_get_status(c, &st);
	ck_assert_int_eq(st.result, CV_ESHUTDOWN);
	job_get_status(a, &st); /* the running one was cancelled for shutdown */
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, CV_ESHUTDOWN);
	ck_assert_int_eq(st.cancel_reason, CV_ESHUTDOWN);
	pthread_mutex_lock(&log.mu);
	ck_assert_int_eq(log.n, 2);
	ck_assert_int_eq(log.order[0], 1);
	ck_assert_int_eq(log.order[1], 2);
	pthread_mutex_unlock(&log.mu);

	struct job *d = mkjob("After.", 0);
	ck_assert_int_eq(sched_submit(s, d), CV_ESHUTDOWN);
	sched_shutdown(s, 0); /* idempotent */
	ck_assert_int_eq(sched_get_state(s), SCHED_STOPPED);
	char err[128] = "";
	ck_assert_int_eq(sched_wait_ready(s, 0, err, sizeof err), CV_ESHUTDOWN);
	sched_free(s);
	job_set_notify(b, NULL, NULL);
	job_set_notify(c, NULL, NULL);
	job_unref(a);
	job_unref(b);
	job_unref(c);
	job_unref(d);
	free(text);
}
END_TEST

START_TEST(shutdown_drains_running_job)
{
	struct sched *s = start_ready(4);
	struct job *a = mkjob("A short sentence that finishes within the drain time.", 0);
	ck_assert_int_eq(sched_submit(s, a), CV_OK);
	wait_state(a, JOB_RUNNING);
	sched_shutdown(s, 60000);
	struct job_status st;
	job_get_status(a, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, CV_OK);
	ck_assert_int_eq(st.cancel_reason, 0);
	sched_free(s);
	job_unref(a);
}
END_TEST

START_TEST(heartbeat_advances)
{
	struct sched *s = start_ready(2);
	int64_t h0 = sched_heartbeat_ns(s), h = h0;
	ck_assert_int_gt(h0, 0);
	for (int i = 0; i < WAIT_MS && h == h0; i++) {
		usleep(1000);
		h = sched_heartbeat_ns(s);
	}
	ck_assert_int_gt(h, h0); /* idle worker still stamps */
	ck_assert_int_ge(sched_retry_after_s(s), 1);
	sched_free(s);
}
END_TEST

START_TEST(startup_facts)
{
	struct sched *s = start(2, 1, NULL);
	char err[256] = "";
	double load = -1, warm = -1;
	ck_assert_int_eq(sched_wait_ready(s, WAIT_MS, err, sizeof err), CV_OK);
	sched_startup_ms(s, &load, &warm);
	ck_assert(load > 0);
	ck_assert(warm > 0);
	const struct engine *e = sched_engine(s);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(engine_name(e), "espeak-ng");
	ck_assert_int_eq(engine_sample_rate(e), 22050);
	struct engine_gauges g;
	g.n = 7;
	sched_read_gauges(s, &g);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_str_eq(sched_state_name(SCHED_READY), "ready");
	ck_assert_str_eq(sched_state_name(SCHED_DRAINING), "draining");
	sched_free(s);
}
END_TEST

START_TEST(wait_ready_failure)
{
	struct sched *s = start(2, 1, "no-such-voice");
	char err[256] = "";
	ck_assert_int_eq(sched_wait_ready(s, WAIT_MS, err, sizeof err), CV_EENGINE);
	ck_assert_ptr_nonnull(strstr(err, "no-such-voice"));
	ck_assert_int_eq(sched_get_state(s), SCHED_FAILED);
	ck_assert_ptr_null(sched_engine(s));
	struct job *j = mkjob("Hello.", 0);
	ck_assert_int_eq(sched_submit(s, j), CV_ENOTREADY);
	sched_free(s);
	job_unref(j);
}
END_TEST

START_TEST(bad_config)
{
	struct sched_config cfg = {.queue_capacity = 0, .engine = {.backend = "espeak"}};
	struct sched *s = NULL;
	char err[128] = "";
	ck_assert_int_eq(sched_start(&cfg, &s, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_uint_gt(strlen(err), 0);
	sched_free(NULL);
}
END_TEST

Suite *suite_sched(void);
Suite *suite_sched(void)
{
	Suite *s = suite_create("sched");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, fifo_order);
	tcase_add_test(tc, queue_full);
	tcase_add_test(tc, cancel_queued);
	tcase_add_test(tc, cancel_running_stops_early);
	tcase_add_test(tc, deadline_in_queue);
	tcase_add_test(tc, deadline_while_running);
	tcase_add_test(tc, engine_errors_reach_the_job);
	tcase_add_test(tc, shutdown_with_queued_jobs);
	tcase_add_test(tc, shutdown_drains_running_job);
	tcase_add_test(tc, heartbeat_advances);
	tcase_add_test(tc, startup_facts);
	tcase_add_test(tc, wait_ready_failure);
	tcase_add_test(tc, bad_config);
	suite_add_tcase(s, tc);
	return s;
}
