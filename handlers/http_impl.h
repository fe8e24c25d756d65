/* handlers/http_impl.h — what the pieces of the HTTP layer share (not for other layers).
 *
 * handlers/http.c        the access handler: routing, early checks, access log, life cycle
 * handlers/http_reply.c  sending replies and errors, suspend/resume, the disconnect-probe thread
 * handlers/http_get.c    GET routes (/healthz, /readyz, /v1/speakers, /metrics) and the engine facts
 * handlers/http_synth.c  POST /tts and /v1/audio/speech: job, buffered and streamed audio
 * handlers/http_text.c   POST /v1/text/normalize on owned text threads
 * handlers/http_voices.c PUT/DELETE /v1/speakers/{id}: voice files in voices_dir, admin keys
 * handlers/http_web.c    the console page and /cosyvoiced.js (compiled-in static files)
 */
#ifndef CV_HANDLERS_HTTP_IMPL_H
#define CV_HANDLERS_HTTP_IMPL_H

#include "handlers/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/version.h"
#include "handlers/errors.h"
#include "handlers/request.h"
#include "handlers/text_reply.h"

#define HTTP_REQUEST_ID_MAX    128
#define HTTP_CORS_MAX	       16
#define HTTP_SMALL_BODY_CAP    (1u << 20)
#define HTTP_STREAM_BLOCK      16384
#define HTTP_PROBE_INTERVAL_MS 200
/* Text normalization can take seconds for long English text with numbers
 * (the grammars), so it never runs on the event thread: at most this many
 * text threads run at once; more requests get 503. */
#define HTTP_TEXT_THREADS_MAX 2

enum http_route {
	HTTP_ROUTE_TTS = 0,
	HTTP_ROUTE_SPEECH,
	HTTP_ROUTE_SPEAKERS,
	HTTP_ROUTE_NORMALIZE,
	HTTP_ROUTE_HEALTHZ,
	HTTP_ROUTE_READYZ,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_VOICE, /* PUT/DELETE /v1/speakers/{id} */
	HTTP_ROUTE_WEB,	  /* GET /, /console.js, /console.css, /cosyvoiced.js (web_ui) */
	HTTP_ROUTE_NONE
};

#define HTTP_VOICE_PREFIX "/v1/speakers/"

struct http_route_def {
	const char *path;
	enum http_route route;
	enum metrics_route metric;
	int post; /* 1: POST with a JSON body; 0: GET/HEAD */
};

enum conn_phase {
	CONN_PHASE_NEW = 0,
	CONN_PHASE_WAITING,
	CONN_PHASE_TEXT,
	CONN_PHASE_STREAMING,
	CONN_PHASE_ANSWERED
};

struct http_server;

struct conn {
	atomic_int refs;
	struct http_server *srv;
	struct MHD_Connection *mhd;
	pthread_mutex_t mu; /* guards suspended, wakeup */
	int suspended;
	int wakeup;
	enum conn_phase phase;
	const struct http_route_def *route;
	const char *method;
	char path[128];
	char request_id[HTTP_REQUEST_ID_MAX + 1];
	char origin[256]; /* allowed CORS origin to echo, "" = none */
	int64_t t_arrival_ns;
	struct buf body;
	int body_too_big;
	int status; /* final HTTP status, for logs and metrics */
	size_t bytes_out;
	/* synthesis */
	struct tts_request req;
	int have_req;
	enum errors_style style;
	struct job *job;
	struct audio_enc *enc;
	int in_rate, out_rate;
	struct buf out;
	double encode_ms;
	int enc_finished;
	int stream_failed;
	atomic_int client_gone;
	int cancel_counted;
	struct job_status final; /* snapshot taken when the job finished */
	int have_final;
	/* probe registry (srv->probe_mu) */
	struct conn *probe_next, *probe_prev;
	int probe_listed;
	int sock_fd;
	struct MHD_Response *stream_resp; /* valid while MHD holds the response */
	char engine_name[ENGINE_NAME_MAX];
	/* /v1/text/normalize result, written by the text thread under mu */
	int text_done;
	int text_slot; /* index in http_server.text while a text thread works for it */
	int text_rc;
	char *text_json;
	char text_err[256];
};

/* What the HTTP side needs to know about the engine, copied once when the
 * scheduler first reports READY. The worker closes the engine at shutdown
 * while HTTP is still answering, so the HTTP side never holds engine
 * pointers: it reads this immutable snapshot instead. The voices change at
 * run time and come from the scheduler's refcounted snapshot
 * (sched_voices_get). */
struct http_facts {
	char name[ENGINE_NAME_MAX];
	int sample_rate;
};

struct http_server {
	struct http_config cfg;
	pthread_mutex_t facts_mu;
	struct http_facts *_Atomic facts;
	struct MHD_Daemon *mhd;
	struct sched *sched;
	struct metrics *metrics;
	char *cors_store;
	const char *cors[HTTP_CORS_MAX];
	size_t n_cors;
	int cors_any;
	atomic_size_t open_conns;
	int port;
	/* voices over HTTP: file changes in voices_dir one at a time; counters for /metrics */
	pthread_mutex_t voices_mu;
	/* API keys (owned copies; replaced by http_server_set_api_keys on SIGHUP) */
	pthread_rwlock_t keys_lock;
	char **keys;
	size_t n_keys;
	atomic_ullong voice_puts_ok, voice_puts_refused, voice_deletes_ok, voice_deletes_refused;
	/* probe thread */
	pthread_t probe_thread;
	int probe_started;
	pthread_mutex_t probe_mu;
	pthread_cond_t probe_cv;
	int probe_stop;
	struct conn *probe_head;
	/* text threads (POST /v1/text/normalize): owned here, joined when finished or at stop */
	pthread_mutex_t text_mu;
	struct text_slot {
		pthread_t tid;
		int used;	 /* a thread was started in this slot and not yet joined */
		atomic_int done; /* the thread has returned (join will not block) */
	} text[HTTP_TEXT_THREADS_MAX];
	int text_stopping; /* set under text_mu by http_server_stop */
};

/* http_reply.c */
void conn_unref(struct conn *c);
void http_add_common_headers(struct conn *c, struct MHD_Response *r);
enum MHD_Result http_queue(struct conn *c, int status, struct MHD_Response *r);
enum MHD_Result http_send_buf(struct conn *c, int status, const char *ctype, struct buf *b);
enum MHD_Result http_send_json(struct conn *c, int status, json_t *j);
enum MHD_Result http_send_error(struct conn *c, int status, const char *field, const char *message,
				const char *extra_name, const char *extra_value);
enum MHD_Result http_send_request_error(struct conn *c, const struct request_error *re);
enum MHD_Result http_send_unavailable(struct conn *c, const char *msg, int retry_after_s);
void conn_on_job_notify(void *ctx);
int conn_suspend(struct conn *c);
void http_probe_add(struct http_server *h, struct conn *c);
void http_probe_remove(struct http_server *h, struct conn *c);
void conn_count_cancel(struct conn *c);
void *http_probe_main(void *arg);

/* http_get.c */
struct http_facts *http_facts_get(struct http_server *h);
void http_facts_free(struct http_facts *f);
enum MHD_Result http_answer_healthz(struct conn *c);
enum MHD_Result http_answer_readyz(struct conn *c);
enum MHD_Result http_answer_speakers(struct conn *c);
/* PUT/DELETE /v1/speakers/{id} (the early checks already passed). */
enum MHD_Result http_answer_voice(struct conn *c);
/* GET/HEAD of a compiled-in web file (404 when web_ui is off). */
enum MHD_Result http_answer_web(struct conn *c);
/* Whether a presented Bearer key is one of `keys` (constant time per key). */
int http_key_ok(const char *const *keys, size_t n, struct MHD_Connection *mc);
enum MHD_Result http_answer_metrics(struct conn *c);

/* http_synth.c */
double http_audio_seconds(const struct conn *c, const struct job_status *st);
double http_rtf(const struct job_status *st, double audio_s);
enum MHD_Result http_continue_synthesis(struct conn *c);
enum MHD_Result http_begin_synthesis(struct conn *c);

/* http_text.c */
void http_text_reap_locked(struct http_server *h, int wait);
enum MHD_Result http_begin_normalize(struct conn *c);
enum MHD_Result http_continue_normalize(struct conn *c);

#endif
