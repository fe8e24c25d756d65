/* engine/job.h — one synthesis job, shared by the HTTP side and the worker.
 *
 * Lifetime: job_new() returns a job with one reference (the creator's). The
 * scheduler takes its own reference while the job is queued or running; the
 * HTTP side holds one until its connection is finished. The last job_unref()
 * frees it, so completion, cancellation and disconnect may happen in any
 * order. All functions are thread-safe.
 *
 * Data flow: the worker appends PCM (job_append_pcm) and finally calls
 * job_finish(); after each of these the notify callback runs (on the worker
 * thread, with no job lock held) so the HTTP side can resume its connection.
 * The HTTP side takes the pending PCM (job_take_pcm) and encodes it on its
 * own thread.
 */
#ifndef CV_ENGINE_JOB_H
#define CV_ENGINE_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct job;

enum job_state { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE };

struct job_spec {
	const char *text;    /* copied */
	const char *speaker; /* copied; NULL = default */
	float speed;
	uint64_t seed;
	int has_seed;
	int normalize;
	int stream;
	int64_t deadline_ns;	/* absolute clock_now_ns() deadline; 0 = none */
	size_t max_samples;	/* hard cap on PCM produced (engine rate); 0 = none */
	const char *request_id; /* copied; for logs */
};

/* Snapshot of a job's progress for the HTTP side and logs. */
struct job_status {
	enum job_state state;
	int result;		       /* CV_OK or CV_E* once DONE */
	char error[256];	       /* engine/job error text once DONE */
	int64_t t_submit_ns;	       /* job_new */
	int64_t t_start_ns;	       /* worker picked it up (0 if never) */
	int64_t t_first_audio_ns;      /* first PCM appended (0 if none) */
	int64_t t_end_ns;	       /* finished (0 if not yet) */
	size_t samples_total;	       /* PCM produced so far */
	size_t samples_pending;	       /* PCM not yet taken */
	int cancel_reason;	       /* 0 or CV_ECANCELED/CV_ETIMEDOUT/CV_ESHUTDOWN */
	struct engine_timings timings; /* engine stages, valid once DONE */
};

struct job *job_new(const struct job_spec *spec);
void job_ref(struct job *j);
void job_unref(struct job *j); /* NULL is a no-op */

/* Borrowed views of the spec (valid for the job's life). */
const struct job_spec *job_get_spec(const struct job *j);

/* HTTP side: called after new PCM and on finish (worker thread, no lock held).
 * Set it before submitting; clear it (fn NULL) before dropping the HTTP
 * side's reference. Setting/clearing synchronizes with a running callback:
 * once job_set_notify(j, NULL, NULL) returns, fn is not running and won't run. */
void job_set_notify(struct job *j, void (*fn)(void *ctx), void *ctx);

/* Request cancellation; the first reason wins. Idempotent. */
void job_cancel(struct job *j, int reason);
/* Nonzero reason if cancelled, else 0. Also fires CV_ETIMEDOUT when the
 * deadline has passed. */
int job_cancelled(struct job *j);

/* Worker side. */
void job_mark_started(struct job *j);
/* Append PCM; CV_E2BIG past max_samples, CV_ENOMEM, CV_ECANCELED if cancelled. */
int job_append_pcm(struct job *j, const float *pcm, size_t n);
/* Mark done with a result (CV_OK or CV_E*), optional error text and timings. */
void job_finish(struct job *j, int result, const char *error, const struct engine_timings *t);

/* HTTP side: take all pending PCM. *pcm is malloc'd (caller frees) or NULL
 * when nothing is pending; returns the number of samples. */
size_t job_take_pcm(struct job *j, float **pcm);
void job_get_status(struct job *j, struct job_status *st);

#endif
