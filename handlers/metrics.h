/* handlers/metrics.h — Prometheus metrics of the daemon (text format 0.0.4).
 *
 * All names start with `cosyvoiced_`, use base units (seconds, bytes) and
 * `_total` for counters; labels are from small fixed sets only (route,
 * status code, rejection reason), never request data. Thread-safe (one
 * mutex; observations are O(buckets)).
 */
#ifndef CV_HANDLERS_METRICS_H
#define CV_HANDLERS_METRICS_H

#include <stddef.h>

#include "common/buf.h"
#include "engine/engine.h"

enum metrics_route {
	METRICS_ROUTE_TTS = 0,
	METRICS_ROUTE_SPEECH,	 /* /v1/audio/speech */
	METRICS_ROUTE_SPEAKERS,	 /* /v1/speakers */
	METRICS_ROUTE_NORMALIZE, /* /v1/text/normalize */
	METRICS_ROUTE_HEALTHZ,
	METRICS_ROUTE_READYZ,
	METRICS_ROUTE_METRICS,
	METRICS_ROUTE_VOICE, /* PUT/DELETE /v1/speakers/{id} */
	METRICS_ROUTE_WEB,   /* the console page and the client module */
	METRICS_ROUTE_OTHER, /* 404s, preflight, ... */
	METRICS_ROUTE_COUNT
};

enum metrics_reject {
	METRICS_REJECT_QUEUE_FULL = 0,
	METRICS_REJECT_BODY_TOO_LARGE,
	METRICS_REJECT_TEXT_TOO_LONG,
	METRICS_REJECT_INVALID, /* 400/415/422 validation */
	METRICS_REJECT_UNAUTHORIZED,
	METRICS_REJECT_NOT_READY,
	METRICS_REJECT_SHUTTING_DOWN,
	METRICS_REJECT_MEMORY, /* predicted memory over budget */
	METRICS_REJECT_COUNT
};

/* Gauges read at scrape time, filled by the caller. */
struct metrics_gauges {
	size_t queue_depth;
	size_t queue_capacity;
	int engine_ready;	 /* 0/1 */
	int worker_busy;	 /* 0/1 */
	const char *engine_name; /* label of cosyvoiced_engine_info */
	double engine_load_seconds;
	double engine_warmup_seconds;
	const struct engine_gauges *engine; /* may be NULL */
	/* voices: the current count, reloads (SIGHUP, PUT, DELETE) and changes over HTTP */
	size_t voices;
	uint64_t voice_reloads_ok, voice_reloads_refused;
	uint64_t voice_puts_ok, voice_puts_refused, voice_deletes_ok, voice_deletes_refused;
};

struct metrics;

struct metrics *metrics_new(const char *version);
void metrics_free(struct metrics *m); /* NULL no-op */

const char *metrics_route_name(enum metrics_route r);
const char *metrics_reject_name(enum metrics_reject r);

void metrics_observe_request(struct metrics *m, enum metrics_route r, int http_status, double duration_s);
void metrics_observe_queue_wait(struct metrics *m, double seconds);
void metrics_observe_ttfa(struct metrics *m, double seconds);
void metrics_observe_rtf(struct metrics *m, double rtf);
void metrics_observe_synthesis(struct metrics *m, double seconds);
void metrics_add_audio_seconds(struct metrics *m, double seconds);
void metrics_add_input_chars(struct metrics *m, size_t n);
void metrics_inc_rejection(struct metrics *m, enum metrics_reject r);
void metrics_inc_cancellation(struct metrics *m);
void metrics_inc_deadline_miss(struct metrics *m);
void metrics_inc_engine_error(struct metrics *m);
/* An engine error that was an out-of-memory (also counted as an engine error). */
void metrics_inc_engine_oom(struct metrics *m);
void metrics_add_inflight(struct metrics *m, int delta);

/* Render everything (including process_* style gauges of this process:
 * resident memory from /proc/self/statm, start time) into out. */
int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *out);

#endif
