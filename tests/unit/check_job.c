/* tests/unit/check_job.c — job lifetimes, cancellation, deadlines, PCM hand-over, notify barrier. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "engine/job.h"

static struct job *mkjob(size_t max_samples, int64_t deadline_ns)
{
	struct job_spec spec = {
	    .text = "hello", .speed = 1.0f, .max_samples = max_samples, .deadline_ns = deadline_ns};
	return job_new(&spec);
}

START_TEST(spec_is_copied)
{
	char text[] = "some text";
	char spk[] = "en";
	char rid[] = "req-1";
	struct job_spec spec = {.text = text,
				.speaker = spk,
				.request_id = rid,
				.speed = 1.5f,
				.seed = 7,
				.has_seed = 1,
				.stream = 1,
				.max_samples = 99};
	struct job *j = job_new(&spec);
	memset(text, 'x', sizeof text - 1);
	memset(spk, 'x', sizeof spk - 1);
	memset(rid, 'x', sizeof rid - 1);
	const struct job_spec *s = job_get_spec(j);
	ck_assert_str_eq(s->text, "some text");
	ck_assert_str_eq(s->speaker, "en");
	ck_assert_str_eq(s->request_id, "req-1");
	ck_assert_float_eq(s->speed, 1.5f);
	ck_assert_uint_eq(s->seed, 7);
	ck_assert_int_eq(s->has_seed, 1);
	ck_assert_int_eq(s->stream, 1);
	ck_assert_uint_eq(s->max_samples, 99);
	job_unref(j);

	struct job_spec nul = {.text = "t"};
	j = job_new(&nul);
	ck_assert_ptr_null(job_get_spec(j)->speaker);
	ck_assert_ptr_null(job_get_spec(j)->request_id);
	job_unref(j);
	job_unref(NULL);
}
END_TEST

START_TEST(status_lifecycle)
{
	struct job_status st;
	struct engine_timings t = {0};
	float pcm[4] = {0.1f, 0.2f, 0.3f, 0.4f};
	struct job *j = mkjob(0, 0);

	job_get_status(j, &st);
	ck_assert_int_eq(st.state, JOB_QUEUED);
	ck_assert_int_gt(st.t_submit_ns, 0);
	ck_assert_int_eq(st.t_start_ns, 0);
	ck_assert_int_eq(st.t_first_audio_ns, 0);
	ck_assert_int_eq(st.t_end_ns, 0);

	job_mark_started(j);
	job_get_status(j, &st);
	ck_assert_int_eq(st.state, JOB_RUNNING);
	ck_assert_int_ge(st.t_start_ns, st.t_submit_ns);

	ck_assert_int_eq(job_append_pcm(j, pcm, 4), CV_OK);
	job_get_status(j, &st);
	ck_assert_int_ge(st.t_first_audio_ns, st.t_start_ns);
	ck_assert_uint_eq(st.samples_total, 4);
	ck_assert_uint_eq(st.samples_pending, 4);

	engine_timings_set(&t, "ttfa", 12.5);
	job_finish(j, CV_OK, NULL, &t);
	job_finish(j, CV_EENGINE, "late", NULL); /* first finish wins */
	job_get_status(j, &st);
	ck_assert_int_eq(st.state, JOB_DONE);
	ck_assert_int_eq(st.result, CV_OK);
	ck_assert_str_eq(st.error, "");
	ck_assert_int_ge(st.t_end_ns, st.t_first_audio_ns);
	ck_assert_uint_eq(st.timings.n, 1);
	ck_assert_str_eq(st.timings.stage[0].name, "ttfa");
	ck_assert_double_eq(st.timings.stage[0].ms, 12.5);
	/* Appending after finish is refused. */
	ck_assert_int_eq(job_append_pcm(j, pcm, 1), CV_EINVAL);
	job_unref(j);
}
END_TEST

START_TEST(finish_with_error_text)
{
	struct job_status st;
	struct job *j = mkjob(0, 0);
	job_finish(j, CV_EINVAL, "unknown speaker 'zz'", NULL);
	job_get_status(j, &st);
	ck_assert_int_eq(st.result, CV_EINVAL);
	ck_assert_str_eq(st.error, "unknown speaker 'zz'");
	ck_assert_uint_eq(st.timings.n, 0);
	job_unref(j);
}
END_TEST

START_TEST(finish_then_unref)
{
	struct job *j = mkjob(0, 0);
	job_ref(j); /* scheduler's ref */
	job_finish(j, CV_OK, NULL, NULL);
	job_unref(j); /* scheduler lets go */
	struct job_status st;
	job_get_status(j, &st); /* creator's ref still valid */
	ck_assert_int_eq(st.state, JOB_DONE);
	job_unref(j);
}
END_TEST

struct finisher {
	struct job *j;
	float value;
};

static void *finish_later(void *arg)
{
	struct finisher *f = arg;
	usleep(2000);
	job_mark_started(f->j);
	job_append_pcm(f->j, &f->value, 1);
	job_finish(f->j, CV_OK, NULL, NULL);
	job_unref(f->j); /* the last reference: frees the job on this thread */
	return NULL;
}

START_TEST(unref_then_finish_other_thread)
{
	for (int i = 0; i < 50; i++) {
		struct job *j = mkjob(0, 0);
		struct finisher f = {.j = j, .value = 0.5f};
		pthread_t th;
		job_ref(j); /* the worker's ref */
		ck_assert_int_eq(pthread_create(&th, NULL, finish_later, &f), 0);
		job_unref(j); /* the HTTP side goes away first */
		pthread_join(th, NULL);
	}
}
END_TEST

START_TEST(cancel_before_start)
{
	struct job_status st;
	float x = 0.25f;
	struct job *j = mkjob(0, 0);
	ck_assert_int_eq(job_cancelled(j), 0);
	job_cancel(j, CV_ECANCELED);
	ck_assert_int_eq(job_cancelled(j), CV_ECANCELED);
	ck_assert_int_eq(job_append_pcm(j, &x, 1), CV_ECANCELED);
	job_get_status(j, &st);
	ck_assert_int_eq(st.cancel_reason, CV_ECANCELED);
	ck_assert_int_eq(st.t_start_ns, 0);
	ck_assert_uint_eq(st.samples_total, 0);
	job_unref(j);
}
END_TEST

START_TEST(cancel_after_finish_is_noop)
{
	struct job_status st;
	struct job *j = mkjob(0, 0);
	job_finish(j, CV_OK, NULL, NULL);
	job_cancel(j, CV_ESHUTDOWN);
	ck_assert_int_eq(job_cancelled(j), 0);
	job_get_status(j, &st);
	ck_assert_int_eq(st.result, CV_OK);
	ck_assert_int_eq(st.cancel_reason, 0);
	job_unref(j);
}
END_TEST

START_TEST(double_cancel_keeps_first)
{
	struct job *j = mkjob(0, 0);
	job_cancel(j, CV_ESHUTDOWN);
	job_cancel(j, CV_ECANCELED);
	job_cancel(j, CV_ETIMEDOUT);
	ck_assert_int_eq(job_cancelled(j), CV_ESHUTDOWN);
	job_unref(j);
	j = mkjob(0, 0);
	job_cancel(j, 0); /* no reason given = client cancel */
	ck_assert_int_eq(job_cancelled(j), CV_ECANCELED);
	job_unref(j);
}
END_TEST

START_TEST(deadline_latches)
{
	struct job_status st;
	struct job *j = mkjob(0, clock_now_ns() - 1);
	job_get_status(j, &st);
	ck_assert_int_eq(st.cancel_reason, 0); /* not latched until checked */
	ck_assert_int_eq(job_cancelled(j), CV_ETIMEDOUT);
	job_cancel(j, CV_ECANCELED); /* deadline came first */
	ck_assert_int_eq(job_cancelled(j), CV_ETIMEDOUT);
	job_get_status(j, &st);
	ck_assert_int_eq(st.cancel_reason, CV_ETIMEDOUT);
	job_unref(j);

	/* A far deadline does not fire; an explicit cancel wins over it later. */
	j = mkjob(0, clock_now_ns() + 3600LL * 1000000000LL);
	ck_assert_int_eq(job_cancelled(j), 0);
	job_cancel(j, CV_ESHUTDOWN);
	ck_assert_int_eq(job_cancelled(j), CV_ESHUTDOWN);
	job_unref(j);

	/* The PCM path notices a passed deadline too. */
	float x = 0.0f;
	j = mkjob(0, clock_now_ns() - 1);
	ck_assert_int_eq(job_append_pcm(j, &x, 1), CV_ECANCELED);
	job_get_status(j, &st);
	ck_assert_int_eq(st.cancel_reason, CV_ETIMEDOUT);
	job_unref(j);
}
END_TEST

START_TEST(take_pcm_hands_over_exactly)
{
	struct job *j = mkjob(0, 0);
	float a[3] = {0.1f, -0.2f, 0.3f}, b[2] = {0.4f, -0.5f}, c[5000];
	float *p = (float *)&a; /* must be reset */
	struct job_status st;

	ck_assert_uint_eq(job_take_pcm(j, &p), 0);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(job_append_pcm(j, a, 3), CV_OK);
	ck_assert_int_eq(job_append_pcm(j, b, 2), CV_OK);
	ck_assert_int_eq(job_append_pcm(j, b, 0), CV_OK);
	ck_assert_uint_eq(job_take_pcm(j, &p), 5);
	ck_assert_mem_eq(p, a, sizeof a);
	ck_assert_mem_eq(p + 3, b, sizeof b);
	free(p);
	ck_assert_uint_eq(job_take_pcm(j, &p), 0);
	ck_assert_ptr_null(p);

	for (size_t i = 0; i < 5000; i++)
		c[i] = (float)i / 5000.0f;
	ck_assert_int_eq(job_append_pcm(j, c, 5000), CV_OK); /* forces growth */
	ck_assert_int_eq(job_append_pcm(j, a, 1), CV_OK);
	job_get_status(j, &st);
	ck_assert_uint_eq(st.samples_total, 5006);
	ck_assert_uint_eq(st.samples_pending, 5001);
	ck_assert_uint_eq(job_take_pcm(j, &p), 5001);
	ck_assert_mem_eq(p, c, sizeof c);
	ck_assert_float_eq(p[5000], a[0]);
	free(p);
	job_get_status(j, &st);
	ck_assert_uint_eq(st.samples_pending, 0);
	ck_assert_uint_eq(st.samples_total, 5006);
	job_unref(j);
}
END_TEST

START_TEST(max_samples_cap)
{
	float x[6] = {0};
	float *p;
	struct job_status st;
	struct job *j = mkjob(10, 0);
	ck_assert_int_eq(job_append_pcm(j, x, 6), CV_OK);
	ck_assert_int_eq(job_append_pcm(j, x, 5), CV_E2BIG);
	ck_assert_int_eq(job_append_pcm(j, x, 4), CV_OK);
	ck_assert_int_eq(job_append_pcm(j, x, 1), CV_E2BIG);
	/* Taking PCM does not reset the cap: it is on the total. */
	ck_assert_uint_eq(job_take_pcm(j, &p), 10);
	free(p);
	ck_assert_int_eq(job_append_pcm(j, x, 1), CV_E2BIG);
	job_get_status(j, &st);
	ck_assert_uint_eq(st.samples_total, 10);
	job_unref(j);
}
END_TEST

struct counter {
	atomic_int calls;
	struct job *j;
	atomic_int saw_done;
};

static void count_notify(void *ctx)
{
	struct counter *c = ctx;
	struct job_status st;
	atomic_fetch_add(&c->calls, 1);
	/* The callback may use the job (no job lock is held). */
	job_get_status(c->j, &st);
	if (st.state == JOB_DONE)
		atomic_store(&c->saw_done, 1);
}

START_TEST(notify_after_append_and_finish)
{
	float x[2] = {0.5f, 0.5f};
	struct job *j = mkjob(0, 0);
	struct counter c = {.j = j};
	job_set_notify(j, count_notify, &c);
	ck_assert_int_eq(job_append_pcm(j, x, 2), CV_OK);
	ck_assert_int_eq(atomic_load(&c.calls), 1);
	ck_assert_int_eq(job_append_pcm(j, x, 0), CV_OK); /* nothing new: no notify */
	ck_assert_int_eq(atomic_load(&c.calls), 1);
	ck_assert_int_eq(job_append_pcm(j, x, 1), CV_OK);
	ck_assert_int_eq(atomic_load(&c.calls), 2);
	ck_assert_int_eq(atomic_load(&c.saw_done), 0);
	job_finish(j, CV_OK, NULL, NULL);
	ck_assert_int_eq(atomic_load(&c.calls), 3);
	ck_assert_int_eq(atomic_load(&c.saw_done), 1);
	job_set_notify(j, NULL, NULL);
	job_finish(j, CV_OK, NULL, NULL);
	ck_assert_int_eq(atomic_load(&c.calls), 3);
	job_unref(j);
}
END_TEST

/* Stress the job_set_notify(NULL) barrier: the "connection" context is
 * marked dead right after clearing; a callback that starts or is still
 * running afterwards counts as a violation. */
struct conn {
	atomic_int dead;
	atomic_int violations;
	atomic_int calls;
};

static void conn_notify(void *ctx)
{
	struct conn *c = ctx;
	if (atomic_load(&c->dead))
		atomic_fetch_add(&c->violations, 1);
	atomic_fetch_add(&c->calls, 1);
	for (volatile int i = 0; i < 20000; i++) /* widen the window */
		;
	if (atomic_load(&c->dead))
		atomic_fetch_add(&c->violations, 1);
}

struct producer {
	struct job *j;
	atomic_int stop;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	float x = 0.1f;
	float *taken;
	while (!atomic_load(&p->stop)) {
		job_append_pcm(p->j, &x, 1);
		if (job_take_pcm(p->j, &taken))
			free(taken);
	}
	job_finish(p->j, CV_OK, NULL, NULL);
	return NULL;
}

START_TEST(notify_never_after_clear)
{
	int total_calls = 0;
	for (int round = 0; round < 30; round++) {
		struct job *j = mkjob(0, 0);
		struct producer p = {.j = j};
		struct conn *c = calloc(1, sizeof *c);
		pthread_t th;
		ck_assert_ptr_nonnull(c);
		job_set_notify(j, conn_notify, c);
		ck_assert_int_eq(pthread_create(&th, NULL, produce, &p), 0);
		while (atomic_load(&c->calls) < 3)
			usleep(100);
		job_set_notify(j, NULL, NULL);
		atomic_store(&c->dead, 1);
		/* Let the producer append (and try to notify) some more. */
		struct job_status st;
		job_get_status(j, &st);
		size_t mark = st.samples_total;
		do {
			usleep(100);
			job_get_status(j, &st);
		} while (st.samples_total < mark + 200);
		atomic_store(&p.stop, 1);
		pthread_join(th, NULL);
		int violations = atomic_load(&c->violations);
		ck_assert_msg(violations == 0, "round %d: callback ran after job_set_notify(NULL) returned",
			      round);
		total_calls += atomic_load(&c->calls);
		free(c);
		job_unref(j);
	}
	ck_assert_int_ge(total_calls, 30 * 3);
}
END_TEST

/* A callback may clear its own notify without deadlocking. */
static void self_clearing(void *ctx)
{
	struct counter *c = ctx;
	atomic_fetch_add(&c->calls, 1);
	job_set_notify(c->j, NULL, NULL);
}

START_TEST(notify_self_clear)
{
	float x = 0.0f;
	struct job *j = mkjob(0, 0);
	struct counter c = {.j = j};
	job_set_notify(j, self_clearing, &c);
	ck_assert_int_eq(job_append_pcm(j, &x, 1), CV_OK);
	ck_assert_int_eq(job_append_pcm(j, &x, 1), CV_OK);
	job_finish(j, CV_OK, NULL, NULL);
	ck_assert_int_eq(atomic_load(&c.calls), 1);
	job_unref(j);
}
END_TEST

/* Concurrent producer and consumer: every sample arrives once, in order. */
struct seq_producer {
	struct job *j;
	size_t n;
	int append_errors;
};

static void *produce_seq(void *arg)
{
	struct seq_producer *p = arg;
	float buf[7];
	size_t i = 0;
	while (i < p->n) {
		size_t k = 0;
		for (; k < 7 && i < p->n; k++, i++)
			buf[k] = (float)i;
		if (job_append_pcm(p->j, buf, k) != CV_OK)
			p->append_errors++;
	}
	job_finish(p->j, CV_OK, NULL, NULL);
	return NULL;
}

START_TEST(take_pcm_concurrent_order)
{
	struct job *j = mkjob(0, 0);
	struct seq_producer p = {.j = j, .n = 200000};
	struct job_status st;
	pthread_t th;
	size_t next = 0;
	int bad = 0;
	ck_assert_int_eq(pthread_create(&th, NULL, produce_seq, &p), 0);
	for (;;) {
		float *pcm;
		job_get_status(j, &st);
		size_t n = job_take_pcm(j, &pcm);
		for (size_t i = 0; i < n; i++)
			if (pcm[i] != (float)(next + i))
				bad++;
		next += n;
		free(pcm);
		if (n == 0 && st.state == JOB_DONE)
			break;
		if (n == 0)
			usleep(50);
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(p.append_errors, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(next, p.n);
	job_unref(j);
}
END_TEST

Suite *suite_job(void);
Suite *suite_job(void)
{
	Suite *s = suite_create("job");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, spec_is_copied);
	tcase_add_test(tc, status_lifecycle);
	tcase_add_test(tc, finish_with_error_text);
	tcase_add_test(tc, finish_then_unref);
	tcase_add_test(tc, unref_then_finish_other_thread);
	tcase_add_test(tc, cancel_before_start);
	tcase_add_test(tc, cancel_after_finish_is_noop);
	tcase_add_test(tc, double_cancel_keeps_first);
	tcase_add_test(tc, deadline_latches);
	tcase_add_test(tc, take_pcm_hands_over_exactly);
	tcase_add_test(tc, max_samples_cap);
	tcase_add_test(tc, notify_after_append_and_finish);
	tcase_add_test(tc, notify_never_after_clear);
	tcase_add_test(tc, notify_self_clear);
	tcase_add_test(tc, take_pcm_concurrent_order);
	suite_add_tcase(s, tc);
	return s;
}
