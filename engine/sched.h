/* engine/sched.h — bounded FIFO queue feeding exactly one worker thread.
 *
 * The worker owns the engine: it opens it (so per-thread runtime state lives
 * on the worker), warms it up, then runs jobs one at a time. Jobs that are
 * cancelled or past their deadline while queued are finished without
 * running (and notified). The worker stamps a heartbeat at least every
 * SCHED_HEARTBEAT_MS while idle and at every engine step while busy, which
 * the daemon uses to gate systemd watchdog pings.
 */
#ifndef CV_ENGINE_SCHED_H
#define CV_ENGINE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/job.h"

#define SCHED_HEARTBEAT_MS 200
#define SCHED_STAGE_MAX	   96 /* bytes of a load-stage name */

struct sched;

enum sched_state {
	SCHED_LOADING = 0,
	SCHED_WARMING,
	SCHED_READY,
	SCHED_FAILED,
	SCHED_DRAINING,
	SCHED_STOPPED
};

struct sched_config {
	size_t queue_capacity;	     /* >= 1 */
	struct engine_config engine; /* strings must outlive sched_start */
	int warmup;		     /* 1: run engine_warmup before READY */
	/* Called on the worker thread as each load stage starts (after the
	 * scheduler has recorded it); NULL = none. */
	void (*on_stage)(void *user, const char *stage);
	void *on_stage_user;
};

/* Start the worker (which opens the engine). Returns at once. */
int sched_start(const struct sched_config *cfg, struct sched **out, char *err, size_t errlen);
/* Block until READY (0) or FAILED (CV_EENGINE, err = reason) or timeout
 * (CV_ETIMEDOUT); timeout_ms < 0 waits forever. */
int sched_wait_ready(struct sched *s, int timeout_ms, char *err, size_t errlen);
enum sched_state sched_get_state(struct sched *s);
const char *sched_state_name(enum sched_state st);

/* Submit: takes its own reference. CV_EFULL when the queue is full,
 * CV_ESHUTDOWN when draining/stopped, CV_ENOTREADY before READY. */
int sched_submit(struct sched *s, struct job *j);
/* Cancel a job: a queued job is removed and finished with `reason` at once
 * (notify fires); a running one stops at the engine's next step. */
void sched_cancel(struct sched *s, struct job *j, int reason);

size_t sched_depth(struct sched *s); /* queued, not running */
size_t sched_capacity(struct sched *s);
int sched_busy(struct sched *s); /* 1 while a job runs */
/* Seconds a new job would wait, estimated from queue depth and measured speed (>= 1). */
int sched_retry_after_s(struct sched *s);
int64_t sched_heartbeat_ns(struct sched *s);
/* The load stage the worker is in (or last entered) into buf; returns the
 * time of the worker's last sign of life (stage start or heartbeat). */
int64_t sched_load_stage(struct sched *s, char *buf, size_t len);
/* Measured load and warm-up time in ms (valid once READY). */
void sched_startup_ms(struct sched *s, double *load_ms, double *warmup_ms);

/* Engine facts, valid once READY (immutable after load; safe from any thread). */
const struct engine *sched_engine(struct sched *s);
/* Latest engine gauges (copied under lock; refreshed by the worker). */
void sched_read_gauges(struct sched *s, struct engine_gauges *g);

/* The voices, as a refcounted immutable snapshot any thread may read: NULL
 * before READY; the worker publishes a new one after each reload. */
struct sched_voices;
const struct sched_voices *sched_voices_get(struct sched *s);
void sched_voices_put(const struct sched_voices *v); /* NULL: no-op */
size_t sched_voices_count(const struct sched_voices *v);
const struct engine_speaker *sched_voices_at(const struct sched_voices *v, size_t i);
const char *sched_voices_default(const struct sched_voices *v); /* "" when none */
/* Canonical id of `id` (exact, then case-insensitive), NULL when unknown. */
const char *sched_voices_find(const struct sched_voices *v, const char *id);
/* Ask the worker to re-read the engine's voices before its next job (SIGHUP,
 * PUT/DELETE /v1/speakers/{id}). Returns at once; a refused reload keeps the
 * current voices and is logged. */
void sched_reload_voices(struct sched *s);
/* Validate a voice file with the engine (any thread; CV_ENOTREADY before
 * READY and during shutdown). */
int sched_check_voice(struct sched *s, const char *path, char *err, size_t errlen);
/* Voice reloads so far: applied, refused (the log names why). */
void sched_reload_stats(struct sched *s, uint64_t *ok, uint64_t *failed);

/* Stop accepting, finish queued jobs with CV_ESHUTDOWN, let the running job
 * run up to drain_ms then cancel it, join the worker, close the engine. */
void sched_shutdown(struct sched *s, int drain_ms);
void sched_free(struct sched *s); /* shuts down first if needed; NULL no-op */

#endif
