/* engine/job.c — one refcounted synthesis job shared by the HTTP side and the worker.
 *
 * DESIGN: an atomic reference count decides the job's lifetime, so the HTTP
 * side (disconnect), the scheduler (completion) and cancellation can let go
 * in any order; everything else sits behind one mutex. PCM accumulates in a
 * growable float array that job_take_pcm() hands over whole (no copy) and
 * restarts empty, so the worker never waits on the encoder.
 *
 * The notify callback runs without any job lock held (it may call
 * job_take_pcm/job_get_status). To make job_set_notify(j, NULL, NULL) a hard
 * barrier we mark "callback running" under the mutex and have setters wait on
 * a condvar until it is clear; notifications are serialized the same way,
 * and a waiting setter goes before the next notification (no starvation).
 * A callback that calls job_set_notify() on its own job does not wait for
 * itself. Callers must not hold a lock in job_set_notify() that the callback
 * itself takes.
 *
 * Cancellation: the first reason wins; a passed deadline is latched as
 * CV_ETIMEDOUT by job_cancelled() (and by the PCM/finish paths), so
 * job_status.cancel_reason tells deadline, client cancel and shutdown apart.
 * Cancelling a finished job does nothing.
 */
#include "engine/job.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/mem.h"

#define JOB_PCM_MIN_ALLOC 4096

struct job {
	atomic_int refs;
	pthread_mutex_t mu;
	pthread_cond_t cb_cv;

	struct job_spec spec; /* strings point at the owned copies below */
	char *text;
	char *speaker;
	char *request_id;

	enum job_state state;
	int result;
	char error[256];
	int cancel_reason;
	int64_t t_submit;
	int64_t t_start;
	int64_t t_first_audio;
	int64_t t_end;
	struct engine_timings timings;

	float *pcm; /* pending, not yet taken */
	size_t pcm_len;
	size_t pcm_alloc;
	size_t samples_total;

	void (*notify_fn)(void *ctx);
	void *notify_ctx;
	int cb_running;
	pthread_t cb_thread;
	int setters_waiting; /* job_set_notify callers get priority over new callbacks */
};

struct job *job_new(const struct job_spec *spec)
{
	struct job *j = xcalloc(1, sizeof *j);

	atomic_init(&j->refs, 1);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cb_cv, NULL);
	if (spec)
		j->spec = *spec;
	j->text = xstrdup(spec && spec->text ? spec->text : "");
	j->speaker = spec && spec->speaker ? xstrdup(spec->speaker) : NULL;
	j->request_id = spec && spec->request_id ? xstrdup(spec->request_id) : NULL;
	j->spec.text = j->text;
	j->spec.speaker = j->speaker;
	j->spec.request_id = j->request_id;
	j->state = JOB_QUEUED;
	j->t_submit = clock_now_ns();
	return j;
}

void job_ref(struct job *j)
{
	if (j)
		atomic_fetch_add(&j->refs, 1);
}

void job_unref(struct job *j)
{
	if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	pthread_cond_destroy(&j->cb_cv);
	pthread_mutex_destroy(&j->mu);
	free(j->pcm);
	free(j->text);
	free(j->speaker);
	free(j->request_id);
	free(j);
}

const struct job_spec *job_get_spec(const struct job *j)
{
	return j ? &j->spec : NULL;
}

/* Wait (mutex held) until no other thread runs this job's callback. */
static void job_wait_callback_locked(struct job *j)
{
	while (j->cb_running && !pthread_equal(j->cb_thread, pthread_self()))
		pthread_cond_wait(&j->cb_cv, &j->mu);
}

void job_set_notify(struct job *j, void (*fn)(void *ctx), void *ctx)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	j->setters_waiting++;
	job_wait_callback_locked(j);
	j->notify_fn = fn;
	j->notify_ctx = ctx;
	j->setters_waiting--;
	pthread_cond_broadcast(&j->cb_cv);
	pthread_mutex_unlock(&j->mu);
}

/* Run the notify callback with no lock held; called with no lock held. */
static void job_notify(struct job *j)
{
	void (*fn)(void *ctx);
	void *ctx;

	pthread_mutex_lock(&j->mu);
	/* Let a waiting job_set_notify() in first: a worker that notifies in a
	 * tight loop must not starve it. */
	while (j->setters_waiting && !(j->cb_running && pthread_equal(j->cb_thread, pthread_self())))
		pthread_cond_wait(&j->cb_cv, &j->mu);
	job_wait_callback_locked(j);
	fn = j->notify_fn;
	ctx = j->notify_ctx;
	if (!fn || j->cb_running) { /* cb_running here: re-entered from our own callback */
		pthread_mutex_unlock(&j->mu);
		return;
	}
	j->cb_running = 1;
	j->cb_thread = pthread_self();
	pthread_mutex_unlock(&j->mu);

	fn(ctx);

	pthread_mutex_lock(&j->mu);
	j->cb_running = 0;
	pthread_cond_broadcast(&j->cb_cv);
	pthread_mutex_unlock(&j->mu);
}

/* Cancel reason (latching a passed deadline), mutex held. */
static int job_cancelled_locked(struct job *j)
{
	if (j->cancel_reason || j->state == JOB_DONE)
		return j->cancel_reason;
	if (j->spec.deadline_ns > 0 && clock_now_ns() > j->spec.deadline_ns)
		j->cancel_reason = CV_ETIMEDOUT;
	return j->cancel_reason;
}

void job_cancel(struct job *j, int reason)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	if (j->state != JOB_DONE && !j->cancel_reason)
		j->cancel_reason = reason ? reason : CV_ECANCELED;
	pthread_mutex_unlock(&j->mu);
}

int job_cancelled(struct job *j)
{
	int r;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->mu);
	r = job_cancelled_locked(j);
	pthread_mutex_unlock(&j->mu);
	return r;
}

void job_mark_started(struct job *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_QUEUED) {
		j->state = JOB_RUNNING;
		j->t_start = clock_now_ns();
	}
	pthread_mutex_unlock(&j->mu);
}

int job_append_pcm(struct job *j, const float *pcm, size_t n)
{
	int rc = CV_OK;

	if (!j || (!pcm && n))
		return CV_EINVAL;
	if (n == 0)
		return CV_OK;
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_DONE) {
		rc = CV_EINVAL;
		goto out;
	}
	if (job_cancelled_locked(j)) {
		rc = CV_ECANCELED;
		goto out;
	}
	if (j->spec.max_samples &&
	    (j->samples_total > j->spec.max_samples || n > j->spec.max_samples - j->samples_total)) {
		rc = CV_E2BIG;
		goto out;
	}
	if (n > j->pcm_alloc - j->pcm_len) {
		size_t want = j->pcm_alloc ? j->pcm_alloc : JOB_PCM_MIN_ALLOC;
		while (want - j->pcm_len < n) {
			if (want > SIZE_MAX / 2 / sizeof(float)) {
				rc = CV_ENOMEM;
				goto out;
			}
			want *= 2;
		}
		float *p = realloc(j->pcm, want * sizeof(float));
		if (!p) {
			rc = CV_ENOMEM;
			goto out;
		}
		j->pcm = p;
		j->pcm_alloc = want;
	}
	memcpy(j->pcm + j->pcm_len, pcm, n * sizeof(float));
	j->pcm_len += n;
	j->samples_total += n;
	if (!j->t_first_audio)
		j->t_first_audio = clock_now_ns();
out:
	pthread_mutex_unlock(&j->mu);
	if (rc == CV_OK)
		job_notify(j);
	return rc;
}

void job_finish(struct job *j, int result, const char *error, const struct engine_timings *t)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	if (j->state == JOB_DONE) { /* first finish wins */
		pthread_mutex_unlock(&j->mu);
		return;
	}
	j->state = JOB_DONE;
	j->result = result;
	cv_strlcpy(j->error, error ? error : "", sizeof j->error);
	if (t) {
		j->timings = *t;
		if (j->timings.n > ENGINE_TIMINGS_MAX)
			j->timings.n = ENGINE_TIMINGS_MAX;
	}
	j->t_end = clock_now_ns();
	pthread_mutex_unlock(&j->mu);
	job_notify(j);
}

size_t job_take_pcm(struct job *j, float **pcm)
{
	size_t n;

	if (pcm)
		*pcm = NULL;
	if (!j || !pcm)
		return 0;
	pthread_mutex_lock(&j->mu);
	n = j->pcm_len;
	if (n) {
		*pcm = j->pcm;
		j->pcm = NULL;
		j->pcm_len = 0;
		j->pcm_alloc = 0;
	}
	pthread_mutex_unlock(&j->mu);
	return n;
}

void job_get_status(struct job *j, struct job_status *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	st->state = j->state;
	st->result = j->result;
	cv_strlcpy(st->error, j->error, sizeof st->error);
	st->t_submit_ns = j->t_submit;
	st->t_start_ns = j->t_start;
	st->t_first_audio_ns = j->t_first_audio;
	st->t_end_ns = j->t_end;
	st->samples_total = j->samples_total;
	st->samples_pending = j->pcm_len;
	st->cancel_reason = j->cancel_reason;
	st->timings = j->timings;
	pthread_mutex_unlock(&j->mu);
}
