/* engine/sched.c — bounded FIFO of jobs feeding exactly one worker thread.
 *
 * DESIGN: one mutex guards the ring buffer, the state machine and the
 * statistics; two condvars (CLOCK_MONOTONIC) wake the worker (new job,
 * shutdown) and waiters (state changes, running job done). The worker opens
 * the engine itself so per-thread runtime state (libtorch) lives on it, and
 * closes it before it exits. Whatever finishes a job (and so runs the job's
 * notify callback) does it with the scheduler lock released: jobs to finish
 * are first unlinked under the lock, then finished outside it. Lock order is
 * scheduler → job; a job never takes the scheduler lock.
 *
 * Each queued job holds one scheduler reference, which moves with the job
 * from the ring to `running` and is dropped after job_finish(). Idle, the
 * worker wakes every SCHED_HEARTBEAT_MS to stamp the heartbeat and expire
 * queued jobs whose deadline passed; busy, the sink stamps it on every engine
 * callback and sweeps the queue at most every SCHED_HEARTBEAT_MS. Retry-After is (queued + running) × an
 * exponential moving average of measured seconds per successful job (2 s until measured).
 */
#include "engine/sched.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"

#define SCHED_DEFAULT_JOB_S 2.0
#define SCHED_EMA_ALPHA	    0.3
#define SCHED_RETRY_MAX_S   3600

struct sched {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;	 /* worker: new job, stop */
	pthread_cond_t state_cv; /* waiters: state change, running job done */

	/* Owned copy of the configuration (the worker opens the engine later). */
	struct engine_config ecfg;
	char *backend, *model_dir, *device, *data_dir, *default_speaker;
	int warmup;

	enum sched_state state;
	char fail_err[512];
	struct engine *engine;

	struct job **ring;
	size_t cap, head, count;
	struct job *running;
	struct job **dead;     /* worker scratch: expired jobs to finish, cap entries */
	int64_t last_sweep_ns; /* worker only */

	pthread_t thread;
	int thread_started;
	int stop;	   /* worker: exit once the queue is empty */
	int shutting_down; /* sched_shutdown entered */

	_Atomic int64_t heartbeat_ns;
	char stage[SCHED_STAGE_MAX]; /* current load stage (mutex) */
	char *voices_dir;
	/* voices: the snapshot HTTP threads read (mutex; refcounted), reloads */
	struct sched_voices *voices;
	int reload_pending;
	uint64_t reloads_ok, reloads_failed;
	int engine_users; /* sched_check_voice calls holding the engine (mutex) */
	void (*on_stage)(void *user, const char *stage);
	void *on_stage_user;
	double load_ms, warmup_ms;
	struct engine_gauges gauges;
	double avg_job_s;
	int have_avg;
};

static void sched_stamp(struct sched *s)
{
	atomic_store(&s->heartbeat_ns, clock_now_ns());
}

struct sched_voices {
	_Atomic int refs;
	size_t n, default_index;
	struct engine_speaker *v; /* deep copies */
};

static void sched_voices_free(struct sched_voices *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free((char *)v->v[i].id);
		free((char *)v->v[i].language);
		free((char *)v->v[i].name);
	}
	free(v->v);
	free(v);
}

void sched_voices_put(const struct sched_voices *cv)
{
	struct sched_voices *v = (struct sched_voices *)cv;
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		sched_voices_free(v);
}

/* Copy the engine's voices (worker thread) and publish them. */
static void sched_voices_publish(struct sched *s, struct engine *e)
{
	struct sched_voices *v = xcalloc(1, sizeof *v), *old;
	const struct engine_speaker *def = engine_speaker_find(e, NULL);
	atomic_init(&v->refs, 1);
	v->n = engine_speaker_count(e);
	v->v = xcalloc(v->n ? v->n : 1, sizeof *v->v);
	for (size_t i = 0; i < v->n; i++) {
		const struct engine_speaker *sp = engine_speaker_at(e, i);
		v->v[i].id = xstrdup(sp->id);
		v->v[i].language = xstrdup(sp->language ? sp->language : "");
		v->v[i].name = xstrdup(sp->name ? sp->name : sp->id);
		v->v[i].source = sp->source; /* a string literal of the backend */
		if (def && strcmp(def->id, sp->id) == 0)
			v->default_index = i;
	}
	pthread_mutex_lock(&s->mu);
	old = s->voices;
	s->voices = v;
	pthread_mutex_unlock(&s->mu);
	sched_voices_put(old);
}

const struct sched_voices *sched_voices_get(struct sched *s)
{
	struct sched_voices *v;
	pthread_mutex_lock(&s->mu);
	v = s->voices;
	if (v)
		atomic_fetch_add(&v->refs, 1);
	pthread_mutex_unlock(&s->mu);
	return v;
}

size_t sched_voices_count(const struct sched_voices *v)
{
	return v ? v->n : 0;
}

const struct engine_speaker *sched_voices_at(const struct sched_voices *v, size_t i)
{
	return v && i < v->n ? &v->v[i] : NULL;
}

const char *sched_voices_default(const struct sched_voices *v)
{
	return v && v->n ? v->v[v->default_index].id : "";
}

const char *sched_voices_find(const struct sched_voices *v, const char *id)
{
	for (size_t i = 0; v && i < v->n; i++)
		if (strcmp(v->v[i].id, id) == 0)
			return v->v[i].id;
	for (size_t i = 0; v && i < v->n; i++)
		if (strcasecmp(v->v[i].id, id) == 0)
			return v->v[i].id;
	return NULL;
}

int sched_check_voice(struct sched *s, const char *path, char *err, size_t errlen)
{
	struct engine *e;
	int rc;

	pthread_mutex_lock(&s->mu);
	e = s->state == SCHED_READY ? s->engine : NULL;
	if (e)
		s->engine_users++;
	pthread_mutex_unlock(&s->mu);
	if (!e) {
		cv_errf(err, errlen, "the engine is not ready");
		return CV_ENOTREADY;
	}
	rc = engine_check_voice(e, path, err, errlen);
	pthread_mutex_lock(&s->mu);
	s->engine_users--;
	pthread_cond_broadcast(&s->state_cv);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void sched_reload_voices(struct sched *s)
{
	pthread_mutex_lock(&s->mu);
	s->reload_pending = 1;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
}

void sched_reload_stats(struct sched *s, uint64_t *ok, uint64_t *failed)
{
	pthread_mutex_lock(&s->mu);
	*ok = s->reloads_ok;
	*failed = s->reloads_failed;
	pthread_mutex_unlock(&s->mu);
}

/* Worker, between jobs: re-read the engine's voices. */
static void sched_worker_reload(struct sched *s)
{
	char err[512] = "";
	struct engine *e = s->engine;
	int rc;

	sched_stamp(s);
	rc = engine_reload_voices(e, err, sizeof err);
	sched_stamp(s);
	if (rc == CV_OK)
		sched_voices_publish(s, e);
	else if (rc == CV_EUNSUPPORTED)
		log_info("sched", "voice reload: %s", err);
	else
		log_err("sched", "voice reload refused, the current voices stay: %s", err);
	pthread_mutex_lock(&s->mu);
	if (rc == CV_OK)
		s->reloads_ok++;
	else
		s->reloads_failed++;
	pthread_cond_broadcast(&s->state_cv);
	pthread_mutex_unlock(&s->mu);
}

static char *sched_dup(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void sched_deadline_ts(struct timespec *ts, int64_t abs_ns)
{
	ts->tv_sec = (time_t)(abs_ns / 1000000000LL);
	ts->tv_nsec = (long)(abs_ns % 1000000000LL);
}

static struct job *sched_ring_at(struct sched *s, size_t i)
{
	return s->ring[(s->head + i) % s->cap];
}

/* Remove queue position i, keeping FIFO order; mutex held. */
static struct job *sched_ring_remove(struct sched *s, size_t i)
{
	struct job *j = sched_ring_at(s, i);
	for (size_t k = i; k + 1 < s->count; k++)
		s->ring[(s->head + k) % s->cap] = s->ring[(s->head + k + 1) % s->cap];
	s->count--;
	return j;
}

static struct job *sched_ring_pop(struct sched *s)
{
	struct job *j = s->ring[s->head];
	s->ring[s->head] = NULL;
	s->head = (s->head + 1) % s->cap;
	s->count--;
	return j;
}

static const char *sched_reason_text(int reason)
{
	switch (reason) {
	case CV_ETIMEDOUT: return "deadline passed";
	case CV_ESHUTDOWN: return "server shutting down";
	default: return "cancelled";
	}
}

/* Finish a job that never ran (no lock held) and drop the queue's reference. */
static void sched_finish_unrun(struct job *j, int reason, const char *where)
{
	char msg[96];
	snprintf(msg, sizeof msg, "%s %s", sched_reason_text(reason), where);
	job_finish(j, reason, msg, NULL);
	job_unref(j);
}

/* Unlink queued jobs that are cancelled or past their deadline into
 * s->dead (worker thread only); mutex held. Returns how many. */
static size_t sched_sweep_locked(struct sched *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->count;) {
		if (job_cancelled(sched_ring_at(s, i)))
			s->dead[n++] = sched_ring_remove(s, i);
		else
			i++;
	}
	s->last_sweep_ns = clock_now_ns();
	return n;
}

/* Finish what sched_sweep_locked() unlinked; no lock held. */
static void sched_finish_dead(struct sched *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sched_finish_unrun(s->dead[i], job_cancelled(s->dead[i]), "while queued");
}

static void sched_set_state_locked(struct sched *s, enum sched_state st)
{
	s->state = st;
	pthread_cond_broadcast(&s->state_cv);
}

/* CVTEST_LOAD_HANG="<stage substring>:<ms>" (test-only): the worker sleeps
 * that long when a load stage whose name contains the substring starts, so
 * the tests can prove a hung load is detected (daemon/main.c). */
static void sched_test_hang(const char *stage)
{
	const char *f = getenv("CVTEST_LOAD_HANG");
	const char *colon = f ? strrchr(f, ':') : NULL;
	char want[SCHED_STAGE_MAX];
	long ms;

	if (!colon || (size_t)(colon - f) >= sizeof want || colon == f)
		return;
	memcpy(want, f, (size_t)(colon - f));
	want[colon - f] = '\0';
	ms = strtol(colon + 1, NULL, 10);
	if (ms <= 0 || !strstr(stage, want))
		return;
	log_warn("sched", "CVTEST_LOAD_HANG: stage '%s' sleeps %ld ms", stage, ms);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* engine_config.progress: a load stage starts (worker thread). */
static void sched_stage(void *user, const char *stage)
{
	struct sched *s = user;

	pthread_mutex_lock(&s->mu);
	cv_strlcpy(s->stage, stage, sizeof s->stage);
	pthread_mutex_unlock(&s->mu);
	sched_stamp(s);
	log_info("sched", "start-up stage: %s", stage);
	if (s->on_stage)
		s->on_stage(s->on_stage_user, stage);
	sched_test_hang(stage);
}

int64_t sched_load_stage(struct sched *s, char *buf, size_t len)
{
	pthread_mutex_lock(&s->mu);
	cv_strlcpy(buf, s->stage, len);
	pthread_mutex_unlock(&s->mu);
	return atomic_load(&s->heartbeat_ns);
}

/* Worker: open and warm the engine. Returns 0 when it may serve. */
static int sched_worker_load(struct sched *s)
{
	char err[256] = "";
	struct engine *e = NULL;
	struct engine_gauges g;
	int64_t t0 = clock_now_ns();
	int rc;

	s->ecfg.progress = sched_stage;
	s->ecfg.progress_user = s;
	sched_stage(s, "opening the engine");
	rc = engine_open(&s->ecfg, &e, err, sizeof err);
	int64_t t1 = clock_now_ns();
	if (rc != CV_OK) {
		pthread_mutex_lock(&s->mu);
		s->load_ms = clock_ms_between(t0, t1);
		if (!err[0])
			snprintf(err, sizeof err, "engine open failed: %s", cv_strerror(rc));
		cv_strlcpy(s->fail_err, err, sizeof s->fail_err);
		if (s->state == SCHED_LOADING)
			sched_set_state_locked(s, SCHED_FAILED);
		pthread_mutex_unlock(&s->mu);
		log_err("sched", "engine load failed: %s", err);
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	s->engine = e;
	s->load_ms = clock_ms_between(t0, t1);
	if (s->warmup && s->state == SCHED_LOADING)
		sched_set_state_locked(s, SCHED_WARMING);
	pthread_mutex_unlock(&s->mu);
	sched_stamp(s);

	if (s->warmup) {
		sched_stage(s, "warm-up");
		rc = engine_warmup(e, err, sizeof err);
		int64_t t2 = clock_now_ns();
		pthread_mutex_lock(&s->mu);
		s->warmup_ms = clock_ms_between(t1, t2);
		if (rc != CV_OK) {
			snprintf(s->fail_err, sizeof s->fail_err, "engine warm-up failed: %s",
				 err[0] ? err : cv_strerror(rc));
			if (s->state == SCHED_WARMING || s->state == SCHED_LOADING)
				sched_set_state_locked(s, SCHED_FAILED);
			pthread_mutex_unlock(&s->mu);
			log_err("sched", "%s", s->fail_err);
			return rc;
		}
		pthread_mutex_unlock(&s->mu);
	}
	engine_read_gauges(e, &g);
	sched_voices_publish(s, e);
	pthread_mutex_lock(&s->mu);
	s->gauges = g;
	if (s->state == SCHED_LOADING || s->state == SCHED_WARMING)
		sched_set_state_locked(s, SCHED_READY);
	pthread_mutex_unlock(&s->mu);
	sched_stamp(s);
	return CV_OK;
}

struct sched_run {
	struct sched *s;
	struct job *j;
	int write_err;
};

static int sched_sink_write(void *user, const float *pcm, size_t n)
{
	struct sched_run *r = user;
	int rc;

	sched_stamp(r->s);
	rc = job_append_pcm(r->j, pcm, n);
	if (rc != CV_OK) {
		r->write_err = rc;
		return 1;
	}
	return 0;
}

static int sched_sink_cancelled(void *user)
{
	struct sched_run *r = user;
	struct sched *s = r->s;
	int64_t now = clock_now_ns();

	sched_stamp(s);
	/* Expire queued jobs while a long job runs, so their clients hear back
	 * at their deadline rather than when the worker is free. */
	if (now - s->last_sweep_ns >= (int64_t)SCHED_HEARTBEAT_MS * 1000000LL) {
		pthread_mutex_lock(&s->mu);
		size_t n = sched_sweep_locked(s);
		pthread_mutex_unlock(&s->mu);
		sched_finish_dead(s, n);
	}
	return job_cancelled(r->j) != 0;
}

/* Worker: run one popped job (s->running == j, owning the queue's ref). */
static void sched_run_job(struct sched *s, struct job *j)
{
	const struct job_spec *spec = job_get_spec(j);
	struct engine_timings t;
	struct engine_gauges g;
	struct sched_run run = {.s = s, .j = j};
	struct engine_sink sink = {
	    .write = sched_sink_write, .cancelled = sched_sink_cancelled, .user = &run};
	char err[256] = "";
	int reason, rc;
	int64_t t0, t1;

	reason = job_cancelled(j);
	if (reason) {
		pthread_mutex_lock(&s->mu);
		s->running = NULL;
		pthread_cond_broadcast(&s->state_cv);
		pthread_mutex_unlock(&s->mu);
		sched_finish_unrun(j, reason, "before start");
		return;
	}
	struct engine_params p = {
	    .text = spec->text,
	    .speaker = spec->speaker,
	    .speed = spec->speed,
	    .seed = spec->seed,
	    .has_seed = spec->has_seed,
	    .normalize = spec->normalize,
	    .stream = spec->stream,
	};
	memset(&t, 0, sizeof t);
	job_mark_started(j);
	sched_stamp(s);
	t0 = clock_now_ns();
	rc = engine_synthesize(s->engine, &p, &sink, &t, err, sizeof err);
	t1 = clock_now_ns();
	sched_stamp(s);
	if (rc == CV_ECANCELED && run.write_err && run.write_err != CV_ECANCELED) {
		rc = run.write_err;
		if (rc == CV_E2BIG)
			snprintf(err, sizeof err, "audio exceeds the cap of %zu samples", spec->max_samples);
		else
			snprintf(err, sizeof err, "storing audio failed: %s", cv_strerror(rc));
	} else if (rc == CV_ECANCELED) {
		reason = job_cancelled(j);
		rc = reason ? reason : CV_ECANCELED;
		cv_strlcpy(err, sched_reason_text(rc), sizeof err);
	}
	/* Bookkeeping first, so whoever sees the job DONE also sees the worker idle. */
	engine_read_gauges(s->engine, &g);
	pthread_mutex_lock(&s->mu);
	s->running = NULL;
	s->gauges = g;
	if (rc == CV_OK) {
		double dt = (double)(t1 - t0) / 1e9;
		s->avg_job_s =
		    s->have_avg ? (1.0 - SCHED_EMA_ALPHA) * s->avg_job_s + SCHED_EMA_ALPHA * dt : dt;
		s->have_avg = 1;
	}
	pthread_cond_broadcast(&s->state_cv);
	pthread_mutex_unlock(&s->mu);
	job_finish(j, rc, rc == CV_OK ? NULL : err, &t);
	job_unref(j);
}

static void *sched_worker(void *arg)
{
	struct sched *s = arg;

	sched_stamp(s);
	if (sched_worker_load(s) != CV_OK)
		goto out;
	for (;;) {
		struct job *j = NULL;
		size_t n_dead = 0;

		int reload = 0;
		pthread_mutex_lock(&s->mu);
		sched_stamp(s);
		n_dead = sched_sweep_locked(s); /* expired or cancelled while queued */
		if (n_dead == 0) {
			if (s->reload_pending && !s->stop) {
				s->reload_pending = 0;
				reload = 1;
			} else if (s->count > 0) {
				j = sched_ring_pop(s);
				s->running = j;
			} else if (s->stop) {
				pthread_mutex_unlock(&s->mu);
				break;
			} else {
				struct timespec ts;
				sched_deadline_ts(&ts,
						  clock_now_ns() + (int64_t)SCHED_HEARTBEAT_MS * 1000000LL);
				pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
			}
		}
		pthread_mutex_unlock(&s->mu);
		sched_finish_dead(s, n_dead);
		if (reload)
			sched_worker_reload(s);
		if (j)
			sched_run_job(s, j);
	}
out:
	/* The worker opened the engine, so it closes it too, once no
	 * sched_check_voice holds it. */
	pthread_mutex_lock(&s->mu);
	struct engine *e = s->engine;
	s->engine = NULL;
	while (s->engine_users > 0)
		pthread_cond_wait(&s->state_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	engine_close(e);
	return NULL;
}

int sched_start(const struct sched_config *cfg, struct sched **out, char *err, size_t errlen)
{
	struct sched *s;
	pthread_condattr_t ca;
	int rc;

	if (out)
		*out = NULL;
	if (!cfg || !out || cfg->queue_capacity < 1) {
		if (err && errlen)
			snprintf(err, errlen, "scheduler: queue capacity must be at least 1");
		return CV_EINVAL;
	}
	s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->work_cv, &ca);
	pthread_cond_init(&s->state_cv, &ca);
	pthread_condattr_destroy(&ca);

	s->ecfg = cfg->engine;
	s->on_stage = cfg->on_stage;
	s->on_stage_user = cfg->on_stage_user;
	s->ecfg.backend = s->backend = sched_dup(cfg->engine.backend);
	s->ecfg.model_dir = s->model_dir = sched_dup(cfg->engine.model_dir);
	s->ecfg.device = s->device = sched_dup(cfg->engine.device);
	s->ecfg.data_dir = s->data_dir = sched_dup(cfg->engine.data_dir);
	s->ecfg.default_speaker = s->default_speaker = sched_dup(cfg->engine.default_speaker);
	s->ecfg.voices_dir = s->voices_dir = sched_dup(cfg->engine.voices_dir);
	s->warmup = cfg->warmup;
	s->cap = cfg->queue_capacity;
	s->ring = xcalloc(s->cap, sizeof *s->ring);
	s->dead = xcalloc(s->cap, sizeof *s->dead);
	s->state = SCHED_LOADING;
	cv_strlcpy(s->stage, "starting", sizeof s->stage);
	sched_stamp(s); /* start-up freshness counts from here */
	rc = pthread_create(&s->thread, NULL, sched_worker, s);
	if (rc != 0) {
		if (err && errlen)
			snprintf(err, errlen, "scheduler: cannot start worker thread: %s", strerror(rc));
		s->state = SCHED_STOPPED;
		s->shutting_down = 1;
		sched_free(s);
		return CV_EENGINE;
	}
	s->thread_started = 1;
	*out = s;
	return CV_OK;
}

int sched_wait_ready(struct sched *s, int timeout_ms, char *err, size_t errlen)
{
	struct timespec ts;
	int rc;

	if (!s)
		return CV_EINVAL;
	sched_deadline_ts(&ts, clock_now_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000LL);
	pthread_mutex_lock(&s->mu);
	while (s->state == SCHED_LOADING || s->state == SCHED_WARMING) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&s->state_cv, &s->mu);
		} else if (pthread_cond_timedwait(&s->state_cv, &s->mu, &ts) != 0 &&
			   (s->state == SCHED_LOADING || s->state == SCHED_WARMING)) {
			if (err && errlen)
				snprintf(err, errlen, "engine not ready after %d ms (%s)", timeout_ms,
					 sched_state_name(s->state));
			pthread_mutex_unlock(&s->mu);
			return CV_ETIMEDOUT;
		}
	}
	if (s->state == SCHED_READY) {
		rc = CV_OK;
	} else if (s->fail_err[0]) {
		if (err && errlen)
			cv_strlcpy(err, s->fail_err, errlen);
		rc = CV_EENGINE;
	} else {
		if (err && errlen)
			snprintf(err, errlen, "scheduler is %s", sched_state_name(s->state));
		rc = CV_ESHUTDOWN;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

enum sched_state sched_get_state(struct sched *s)
{
	enum sched_state st;
	if (!s)
		return SCHED_STOPPED;
	pthread_mutex_lock(&s->mu);
	st = s->state;
	pthread_mutex_unlock(&s->mu);
	return st;
}

const char *sched_state_name(enum sched_state st)
{
	switch (st) {
	case SCHED_LOADING: return "loading";
	case SCHED_WARMING: return "warming";
	case SCHED_READY: return "ready";
	case SCHED_FAILED: return "failed";
	case SCHED_DRAINING: return "draining";
	case SCHED_STOPPED: return "stopped";
	}
	return "unknown";
}

int sched_submit(struct sched *s, struct job *j)
{
	int rc = CV_OK;

	if (!s || !j)
		return CV_EINVAL;
	pthread_mutex_lock(&s->mu);
	if (s->state == SCHED_DRAINING || s->state == SCHED_STOPPED || s->shutting_down)
		rc = CV_ESHUTDOWN;
	else if (s->state != SCHED_READY)
		rc = CV_ENOTREADY;
	else if (s->count >= s->cap)
		rc = CV_EFULL;
	if (rc == CV_OK) {
		job_ref(j);
		s->ring[(s->head + s->count) % s->cap] = j;
		s->count++;
		pthread_cond_signal(&s->work_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void sched_cancel(struct sched *s, struct job *j, int reason)
{
	int found = 0;

	if (!j)
		return;
	if (!reason)
		reason = CV_ECANCELED;
	if (s) {
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < s->count; i++) {
			if (sched_ring_at(s, i) == j) {
				sched_ring_remove(s, i);
				found = 1;
				break;
			}
		}
		if (!found)
			job_cancel(j, reason); /* running (stops at the next step), done, or unknown */
		pthread_mutex_unlock(&s->mu);
	} else {
		job_cancel(j, reason);
	}
	if (found) {
		job_cancel(j, reason);
		/* First reason wins: report the job's own reason (e.g. a deadline). */
		sched_finish_unrun(j, job_cancelled(j), "while queued");
	}
}

size_t sched_depth(struct sched *s)
{
	size_t n;
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	n = s->count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t sched_capacity(struct sched *s)
{
	return s ? s->cap : 0;
}

int sched_busy(struct sched *s)
{
	int b;
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	b = s->running != NULL;
	pthread_mutex_unlock(&s->mu);
	return b;
}

int sched_retry_after_s(struct sched *s)
{
	double per_job, v;
	size_t n;

	if (!s)
		return 1;
	pthread_mutex_lock(&s->mu);
	per_job = s->have_avg ? s->avg_job_s : SCHED_DEFAULT_JOB_S;
	n = s->count + (s->running ? 1 : 0);
	pthread_mutex_unlock(&s->mu);
	v = ceil((double)n * per_job);
	if (!(v >= 1.0))
		return 1;
	if (v > SCHED_RETRY_MAX_S)
		return SCHED_RETRY_MAX_S;
	return (int)v;
}

int64_t sched_heartbeat_ns(struct sched *s)
{
	return s ? atomic_load(&s->heartbeat_ns) : 0;
}

void sched_startup_ms(struct sched *s, double *load_ms, double *warmup_ms)
{
	double l = 0, w = 0;
	if (s) {
		pthread_mutex_lock(&s->mu);
		l = s->load_ms;
		w = s->warmup_ms;
		pthread_mutex_unlock(&s->mu);
	}
	if (load_ms)
		*load_ms = l;
	if (warmup_ms)
		*warmup_ms = w;
}

const struct engine *sched_engine(struct sched *s)
{
	const struct engine *e = NULL;
	if (!s)
		return NULL;
	pthread_mutex_lock(&s->mu);
	if (s->state == SCHED_READY || s->state == SCHED_DRAINING)
		e = s->engine;
	pthread_mutex_unlock(&s->mu);
	return e;
}

void sched_read_gauges(struct sched *s, struct engine_gauges *g)
{
	if (!g)
		return;
	if (!s) {
		g->n = 0;
		return;
	}
	pthread_mutex_lock(&s->mu);
	*g = s->gauges;
	pthread_mutex_unlock(&s->mu);
}

void sched_shutdown(struct sched *s, int drain_ms)
{
	struct job **queued;
	size_t n = 0;
	struct timespec ts;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->shutting_down) {
		/* Idempotent: a second caller waits for the first to finish. */
		while (s->state != SCHED_STOPPED)
			pthread_cond_wait(&s->state_cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	s->shutting_down = 1;
	if (s->state != SCHED_FAILED)
		sched_set_state_locked(s, SCHED_DRAINING);
	queued = xcalloc(s->count ? s->count : 1, sizeof *queued);
	while (s->count > 0)
		queued[n++] = sched_ring_pop(s);
	pthread_mutex_unlock(&s->mu);

	for (size_t i = 0; i < n; i++) {
		job_cancel(queued[i], CV_ESHUTDOWN);
		sched_finish_unrun(queued[i], job_cancelled(queued[i]), "while queued");
	}
	free(queued);

	pthread_mutex_lock(&s->mu);
	sched_deadline_ts(&ts, clock_now_ns() + (int64_t)(drain_ms > 0 ? drain_ms : 0) * 1000000LL);
	while (s->running && pthread_cond_timedwait(&s->state_cv, &s->mu, &ts) == 0)
		;
	if (s->running)
		job_cancel(s->running, CV_ESHUTDOWN);
	s->stop = 1;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mu);

	if (s->thread_started) {
		pthread_join(s->thread, NULL);
		s->thread_started = 0;
	}
	/* The worker closed the engine; this covers a worker that never ran. */
	engine_close(s->engine);
	pthread_mutex_lock(&s->mu);
	s->engine = NULL;
	sched_set_state_locked(s, SCHED_STOPPED);
	pthread_mutex_unlock(&s->mu);
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	sched_shutdown(s, 0); /* no-op when already stopped */
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->state_cv);
	pthread_mutex_destroy(&s->mu);
	free(s->ring);
	free(s->dead);
	free(s->backend);
	free(s->model_dir);
	free(s->device);
	free(s->data_dir);
	free(s->default_speaker);
	free(s->voices_dir);
	sched_voices_put(s->voices);
	free(s);
}
