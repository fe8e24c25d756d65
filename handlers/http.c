/* handlers/http.c — libmicrohttpd glue: routing, validation, suspend/resume,
 * buffered and chunked (streamed) audio, auth, CORS, timing headers, access log.
 *
 * DESIGN
 * - One struct conn per HTTP request, created on the first access-handler call
 *   and freed at the last reference: MHD's (dropped in NOTIFY_COMPLETED) and,
 *   for streamed replies, the response's (dropped in its free callback, which
 *   MHD may run after NOTIFY_COMPLETED).
 * - The event thread never waits for the model. After submitting a job the
 *   connection is suspended; the worker's notify callback resumes it. A
 *   wake-up that races ahead of the suspend is latched in conn->wakeup (under
 *   conn->mu) so it is never lost and MHD_resume is only called on a
 *   connection we really suspended.
 * - Encoding happens here, on the HTTP thread, a chunk at a time as PCM
 *   arrives (both modes), so memory holds encoded bytes rather than floats.
 * - Disconnects: MHD cannot see a FIN while a connection is suspended, so a
 *   small probe thread peeks (MSG_PEEK|MSG_DONTWAIT) at the sockets of
 *   suspended buffered requests every 200 ms and cancels the job of a client
 *   that has gone. Streamed replies learn it at the next write, through
 *   NOTIFY_COMPLETED.
 * - Errors: one envelope (handlers/errors.h), house or OpenAI style by route.
 */
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
	HTTP_ROUTE_NONE
};

static const struct http_route_def {
	const char *path;
	enum http_route route;
	enum metrics_route metric;
	int post; /* 1: POST with a JSON body; 0: GET/HEAD */
} http_routes[] = {
    {"/tts", HTTP_ROUTE_TTS, METRICS_ROUTE_TTS, 1},
    {"/v1/audio/speech", HTTP_ROUTE_SPEECH, METRICS_ROUTE_SPEECH, 1},
    {"/v1/speakers", HTTP_ROUTE_SPEAKERS, METRICS_ROUTE_SPEAKERS, 0},
    {"/v1/text/normalize", HTTP_ROUTE_NORMALIZE, METRICS_ROUTE_NORMALIZE, 1},
    {"/healthz", HTTP_ROUTE_HEALTHZ, METRICS_ROUTE_HEALTHZ, 0},
    {"/readyz", HTTP_ROUTE_READYZ, METRICS_ROUTE_READYZ, 0},
    {"/metrics", HTTP_ROUTE_METRICS, METRICS_ROUTE_METRICS, 0},
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
	char path[64];
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
 * pointers: it reads this immutable snapshot instead. */
struct http_facts {
	char name[ENGINE_NAME_MAX];
	int sample_rate;
	size_t n_speakers;
	size_t default_index;
	struct http_facts_speaker {
		char *id, *language, *name;
	} * speakers;
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
		int used;	   /* a thread was started in this slot and not yet joined */
		atomic_int done;   /* the thread has returned (join will not block) */
		struct conn *conn; /* the connection it works for */
	} text[HTTP_TEXT_THREADS_MAX];
	int text_stopping; /* set under text_mu by http_server_stop */
};

/* ---------------------------------------------------------------- helpers */

static void conn_unref(struct conn *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->job) {
		job_set_notify(c->job, NULL, NULL);
		job_unref(c->job);
	}
	audio_enc_free(c->enc);
	free(c->text_json);
	request_free(&c->req);
	buf_free(&c->body);
	buf_free(&c->out);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static int http_request_id_ok(const char *s)
{
	size_t n = 0;
	if (!s)
		return 0;
	for (; s[n]; n++) {
		char ch = s[n];
		if (n >= HTTP_REQUEST_ID_MAX)
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == ':' || ch == '-'))
			return 0;
	}
	return n > 0;
}

static void http_request_id_generate(char *dst, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	static atomic_ullong counter;
	unsigned char rnd[16];
	if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
		unsigned long long v = atomic_fetch_add(&counter, 1) ^ (unsigned long long)clock_now_ns();
		for (size_t i = 0; i < sizeof rnd; i++)
			rnd[i] = (unsigned char)(v >> ((i % 8) * 8)) ^ (unsigned char)i;
	}
	for (size_t i = 0; i < sizeof rnd && 2 * i + 2 < cap; i++) {
		dst[2 * i] = hex[rnd[i] >> 4];
		dst[2 * i + 1] = hex[rnd[i] & 15];
		dst[2 * i + 2] = '\0';
	}
}

static int http_ct_is_json(const char *ct)
{
	size_t n = strlen("application/json");
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Constant-time comparison of a presented key with each configured key. */
static int http_auth_ok(const struct http_server *h, struct MHD_Connection *mc)
{
	const char *auth;
	int ok = 0;

	if (h->cfg.n_api_keys == 0)
		return 1;
	auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	auth += 7;
	while (*auth == ' ')
		auth++;
	size_t alen = strlen(auth);
	for (size_t i = 0; i < h->cfg.n_api_keys; i++) {
		const char *k = h->cfg.api_keys[i];
		size_t klen = strlen(k);
		unsigned char diff = (unsigned char)(alen != klen);
		for (size_t j = 0; j < klen; j++)
			diff |= (unsigned char)(k[j] ^ (j < alen ? auth[j] : 0));
		ok |= diff == 0;
	}
	return ok;
}

static void http_cors_match(const struct http_server *h, struct conn *c, struct MHD_Connection *mc)
{
	const char *origin = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Origin");
	c->origin[0] = '\0';
	if (!origin || (!h->cors_any && h->n_cors == 0))
		return;
	if (strlen(origin) >= sizeof c->origin)
		return;
	if (h->cors_any) {
		cv_strlcpy(c->origin, "*", sizeof c->origin);
		return;
	}
	for (size_t i = 0; i < h->n_cors; i++) {
		if (strcmp(h->cors[i], origin) == 0) {
			cv_strlcpy(c->origin, origin, sizeof c->origin);
			return;
		}
	}
}

static void http_add_common_headers(struct conn *c, struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Request-Id", c->request_id);
	if (c->origin[0]) {
		MHD_add_response_header(r, "Access-Control-Allow-Origin", c->origin);
		MHD_add_response_header(r, "Vary", "Origin");
		MHD_add_response_header(r, "Access-Control-Expose-Headers",
					"X-Request-Id, Server-Timing, X-Audio-Duration, X-Real-Time-Factor, "
					"X-Sample-Rate, X-Engine, Retry-After");
		MHD_add_response_header(r, "Timing-Allow-Origin", c->origin);
	}
}

static enum MHD_Result http_queue(struct conn *c, int status, struct MHD_Response *r)
{
	enum MHD_Result ret;
	http_add_common_headers(c, r);
	c->status = status;
	c->phase = CONN_PHASE_ANSWERED;
	ret = MHD_queue_response(c->mhd, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result http_send_buf(struct conn *c, int status, const char *ctype, struct buf *b)
{
	size_t len;
	char *data = buf_steal(b, &len);
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, data ? data : (char *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(data);
		return MHD_NO;
	}
	c->bytes_out = len;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return http_queue(c, status, r);
}

static enum MHD_Result http_send_json(struct conn *c, int status, json_t *j)
{
	struct buf b;
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(j);
	if (!text)
		return MHD_NO;
	buf_init(&b, HTTP_SMALL_BODY_CAP * 16);
	buf_append_str(&b, text);
	buf_append(&b, "\n", 1);
	free(text);
	return http_send_buf(c, status, "application/json", &b);
}

/* Error reply; extra_name/extra_value add one header (Allow, Retry-After...). */
static enum MHD_Result http_send_error(struct conn *c, int status, const char *field, const char *message,
				       const char *extra_name, const char *extra_value)
{
	struct buf b;
	struct MHD_Response *r;
	size_t len;
	char *data;

	buf_init(&b, 8192);
	if (errors_render(&b, c->style, status, field, message, c->request_id) != CV_OK) {
		buf_reset(&b);
		buf_append_str(&b,
			       "{\"error\":{\"code\":500,\"type\":\"internal\",\"message\":\"error\"}}\n");
	}
	data = buf_steal(&b, &len);
	r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(data);
		return MHD_NO;
	}
	c->bytes_out = len;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (extra_name)
		MHD_add_response_header(r, extra_name, extra_value);
	if (status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	log_debug("http", "request_id=%s status=%d %s", c->request_id, status, message);
	return http_queue(c, status, r);
}

static enum MHD_Result http_send_unavailable(struct conn *c, const char *msg, int retry_after_s)
{
	char ra[16];
	snprintf(ra, sizeof ra, "%d", retry_after_s > 0 ? retry_after_s : 1);
	return http_send_error(c, 503, NULL, msg, MHD_HTTP_HEADER_RETRY_AFTER, ra);
}

/* ------------------------------------------------------- suspend / resume */

/* Worker thread: new PCM or job finished. */
static void conn_on_job_notify(void *ctx)
{
	struct conn *c = ctx;
	pthread_mutex_lock(&c->mu);
	if (c->suspended) {
		c->suspended = 0;
		MHD_resume_connection(c->mhd);
	} else {
		c->wakeup = 1;
	}
	pthread_mutex_unlock(&c->mu);
}

/* Event thread: suspend unless a wake-up already arrived. Returns 1 if
 * suspended, 0 if the caller should look at the job again right away. */
static int conn_suspend(struct conn *c)
{
	int did = 0;
	pthread_mutex_lock(&c->mu);
	if (c->wakeup) {
		c->wakeup = 0;
	} else {
		c->suspended = 1;
		MHD_suspend_connection(c->mhd);
		did = 1;
	}
	pthread_mutex_unlock(&c->mu);
	return did;
}

/* ------------------------------------------------------------ probe thread */

static void probe_add(struct http_server *h, struct conn *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return;
	pthread_mutex_lock(&h->probe_mu);
	c->sock_fd = ci->connect_fd;
	c->probe_prev = NULL;
	c->probe_next = h->probe_head;
	if (h->probe_head)
		h->probe_head->probe_prev = c;
	h->probe_head = c;
	c->probe_listed = 1;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&h->probe_mu);
}

static void probe_remove(struct http_server *h, struct conn *c)
{
	int listed;
	pthread_mutex_lock(&h->probe_mu);
	listed = c->probe_listed;
	if (listed) {
		if (c->probe_prev)
			c->probe_prev->probe_next = c->probe_next;
		else
			h->probe_head = c->probe_next;
		if (c->probe_next)
			c->probe_next->probe_prev = c->probe_prev;
		c->probe_listed = 0;
	}
	pthread_mutex_unlock(&h->probe_mu);
	if (listed)
		conn_unref(c);
}

static void conn_count_cancel(struct conn *c)
{
	if (!c->cancel_counted) {
		c->cancel_counted = 1;
		metrics_inc_cancellation(c->srv->metrics);
	}
}

static void *probe_main(void *arg)
{
	struct http_server *h = arg;
	pthread_mutex_lock(&h->probe_mu);
	while (!h->probe_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += HTTP_PROBE_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->probe_cv, &h->probe_mu, &ts);
		for (struct conn *c = h->probe_head; c; c = c->probe_next) {
			char b;
			ssize_t n;
			if (atomic_load(&c->client_gone))
				continue;
			n = recv(c->sock_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
				atomic_store(&c->client_gone, 1);
				log_info("http", "request_id=%s client went away while waiting; cancelling",
					 c->request_id);
				sched_cancel(h->sched, c->job, CV_ECANCELED);
			}
		}
	}
	pthread_mutex_unlock(&h->probe_mu);
	return NULL;
}

/* ------------------------------------------------------------ engine facts */

static struct http_facts *http_facts_get(struct http_server *h)
{
	struct http_facts *f = atomic_load(&h->facts);
	const struct engine *e;

	if (f)
		return f;
	pthread_mutex_lock(&h->facts_mu);
	f = atomic_load(&h->facts);
	if (!f && sched_get_state(h->sched) == SCHED_READY && (e = sched_engine(h->sched)) != NULL) {
		const struct engine_speaker *def = engine_speaker_find(e, NULL);
		f = xcalloc(1, sizeof *f);
		cv_strlcpy(f->name, engine_name(e), sizeof f->name);
		f->sample_rate = engine_sample_rate(e);
		f->n_speakers = engine_speaker_count(e);
		f->speakers = xcalloc(f->n_speakers ? f->n_speakers : 1, sizeof *f->speakers);
		for (size_t i = 0; i < f->n_speakers; i++) {
			const struct engine_speaker *sp = engine_speaker_at(e, i);
			f->speakers[i].id = xstrdup(sp->id);
			f->speakers[i].language = xstrdup(sp->language ? sp->language : "");
			f->speakers[i].name = xstrdup(sp->name ? sp->name : sp->id);
			if (def && strcmp(def->id, sp->id) == 0)
				f->default_index = i;
		}
		atomic_store(&h->facts, f);
	}
	pthread_mutex_unlock(&h->facts_mu);
	return f;
}

static void http_facts_free(struct http_facts *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_speakers; i++) {
		free(f->speakers[i].id);
		free(f->speakers[i].language);
		free(f->speakers[i].name);
	}
	free(f->speakers);
	free(f);
}

/* Exact id first, then case-insensitive (as the engine does); NULL if none. */
static const char *http_facts_speaker(const struct http_facts *f, const char *id)
{
	for (size_t i = 0; i < f->n_speakers; i++)
		if (strcmp(f->speakers[i].id, id) == 0)
			return f->speakers[i].id;
	for (size_t i = 0; i < f->n_speakers; i++)
		if (strcasecmp(f->speakers[i].id, id) == 0)
			return f->speakers[i].id;
	return NULL;
}

/* ------------------------------------------------------------ GET routes */

static enum MHD_Result http_answer_healthz(struct conn *c)
{
	return http_send_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

static enum MHD_Result http_answer_readyz(struct conn *c)
{
	struct http_server *h = c->srv;
	enum sched_state st = sched_get_state(h->sched);
	const struct http_facts *f = http_facts_get(h);
	const char *reason = NULL;
	json_t *j;

	if (st == SCHED_READY) {
		if (sched_depth(h->sched) >= sched_capacity(h->sched))
			reason = "queue_full";
	} else if (st == SCHED_LOADING) {
		reason = "loading";
	} else if (st == SCHED_WARMING) {
		reason = "warming";
	} else if (st == SCHED_FAILED) {
		reason = "failed";
	} else {
		reason = "draining";
	}
	j = json_pack("{s:s, s:s, s:b, s:i, s:i}", "status", reason ? "not_ready" : "ready", "engine",
		      f ? f->name : "none", "embedded_default", h->cfg.embedded_default, "queue_depth",
		      (int)sched_depth(h->sched), "queue_capacity", (int)sched_capacity(h->sched));
	if (reason)
		json_object_set_new(j, "reason", json_string(reason));
	if (h->cfg.embedded_default)
		json_object_set_new(
		    j, "note",
		    json_string("embedded default engine (espeak-ng): no CosyVoice2 model configured"));
	return http_send_json(c, reason ? 503 : 200, j);
}

static enum MHD_Result http_answer_speakers(struct conn *c)
{
	const struct http_facts *f = http_facts_get(c->srv);
	json_t *arr, *j;

	if (!f)
		return http_send_unavailable(c, "engine not loaded yet", 5);
	arr = json_array();
	for (size_t i = 0; i < f->n_speakers; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id", f->speakers[i].id, "language",
						     f->speakers[i].language, "name", f->speakers[i].name));
	j = json_pack("{s:s, s:s, s:i, s:o}", "engine", f->name, "default",
		      f->n_speakers ? f->speakers[f->default_index].id : "", "sample_rate", f->sample_rate,
		      "speakers", arr);
	return http_send_json(c, 200, j);
}

static enum MHD_Result http_answer_metrics(struct conn *c)
{
	struct http_server *h = c->srv;
	struct metrics_gauges g;
	struct engine_gauges eg;
	const struct http_facts *f = http_facts_get(h);
	double load_ms = 0, warm_ms = 0;
	struct buf b;

	memset(&g, 0, sizeof g);
	memset(&eg, 0, sizeof eg);
	sched_read_gauges(h->sched, &eg);
	sched_startup_ms(h->sched, &load_ms, &warm_ms);
	g.queue_depth = sched_depth(h->sched);
	g.queue_capacity = sched_capacity(h->sched);
	g.engine_ready = sched_get_state(h->sched) == SCHED_READY;
	g.worker_busy = sched_busy(h->sched);
	g.engine_name = f ? f->name : "none";
	g.engine_load_seconds = load_ms / 1e3;
	g.engine_warmup_seconds = warm_ms / 1e3;
	if (h->cfg.nvml) {
		/* NVML at scrape time (thread-safe), next to the worker's snapshot. */
		struct nvml_sample ns;
		char nerr[160];
		static const char *const nv_name[] = {"gpu_utilization_ratio", "gpu_memory_utilization_ratio",
						      "gpu_nvml_memory_used_bytes",
						      "gpu_nvml_memory_total_bytes"};
		static const char *const nv_help[] = {
		    "NVML: share of the last sample period a GPU kernel ran (0..1).",
		    "NVML: share of the last sample period GPU memory was read or written (0..1).",
		    "NVML: GPU memory in use by all processes, bytes.", "NVML: GPU memory installed, bytes."};
		if (nvml_read(h->cfg.nvml, &ns, nerr, sizeof nerr) == CV_OK) {
			double v[] = {ns.utilization_gpu_ratio, ns.utilization_memory_ratio,
				      ns.memory_used_bytes, ns.memory_total_bytes};
			for (size_t i = 0; i < 4; i++)
				engine_gauges_add(&eg, nv_name[i], nv_help[i], v[i]);
		} else {
			log_warn_limited("http", "nvml_read", "NVML: %s", nerr);
		}
	}
	g.engine = &eg;
	buf_init(&b, 4u << 20);
	if (metrics_render(h->metrics, &g, &b) != CV_OK) {
		buf_free(&b);
		return http_send_error(c, 500, NULL, "metrics rendering failed", NULL, NULL);
	}
	return http_send_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* ------------------------------------------------------------ synthesis */

static void http_timing_append(struct buf *b, const char *name, double ms)
{
	if (ms < 0 || !isfinite(ms))
		return;
	buf_printf(b, "%s%s;dur=%.2f", buf_len(b) ? ", " : "", name, ms);
}

/* Server-Timing value for a finished job. */
static void http_timing_full(struct conn *c, const struct job_status *st, struct buf *b, double total_ms)
{
	double queue_ms = st->t_start_ns ? clock_ms_between(st->t_submit_ns, st->t_start_ns) : 0;
	double synth_ms = st->t_start_ns && st->t_end_ns ? clock_ms_between(st->t_start_ns, st->t_end_ns) : 0;
	http_timing_append(b, "queue", queue_ms);
	/* "ttfa" is the client's view (request arrival → first audio), not the
	 * engine's own figure from the start of its call. */
	for (size_t i = 0; i < st->timings.n; i++)
		if (strcmp(st->timings.stage[i].name, "ttfa") != 0)
			http_timing_append(b, st->timings.stage[i].name, st->timings.stage[i].ms);
	if (st->t_first_audio_ns)
		http_timing_append(b, "ttfa", clock_ms_between(c->t_arrival_ns, st->t_first_audio_ns));
	http_timing_append(b, "synth", synth_ms);
	http_timing_append(b, "encode", c->encode_ms);
	http_timing_append(b, "total", total_ms);
}

static double http_audio_seconds(const struct conn *c, const struct job_status *st)
{
	return c->in_rate > 0 ? (double)st->samples_total / c->in_rate : 0;
}

static double http_rtf(const struct job_status *st, double audio_s)
{
	double synth_s = st->t_start_ns && st->t_end_ns ? (double)(st->t_end_ns - st->t_start_ns) / 1e9 : 0;
	return audio_s > 0 ? synth_s / audio_s : 0;
}

/* Record the finished job's figures in the metrics once. */
static void http_observe_job(struct conn *c, const struct job_status *st)
{
	struct metrics *m = c->srv->metrics;
	if (st->t_start_ns)
		metrics_observe_queue_wait(m, (double)(st->t_start_ns - st->t_submit_ns) / 1e9);
	if (st->result == CV_OK) {
		double audio_s = http_audio_seconds(c, st);
		if (st->t_first_audio_ns)
			metrics_observe_ttfa(m, (double)(st->t_first_audio_ns - c->t_arrival_ns) / 1e9);
		metrics_observe_rtf(m, http_rtf(st, audio_s));
		metrics_observe_synthesis(m, (double)(st->t_end_ns - st->t_start_ns) / 1e9);
		metrics_add_audio_seconds(m, audio_s);
	} else if (st->result == CV_ETIMEDOUT) {
		metrics_inc_deadline_miss(m);
	} else if (st->result == CV_EBUDGET) {
		metrics_inc_rejection(m, METRICS_REJECT_MEMORY);
	} else if (st->result == CV_EENGINE || st->result == CV_ENOMEM) {
		metrics_inc_engine_error(m);
		if (st->result == CV_ENOMEM)
			metrics_inc_engine_oom(m);
	}
}

/* Move pending PCM from the job into the encoder; returns CV_OK or an error. */
static int conn_encode_pending(struct conn *c)
{
	float *pcm = NULL;
	size_t n = job_take_pcm(c->job, &pcm);
	int rc = CV_OK;
	if (n) {
		int64_t t0 = clock_now_ns();
		rc = audio_enc_write(c->enc, pcm, n, &c->out);
		c->encode_ms += clock_ms_between(t0, clock_now_ns());
	}
	free(pcm);
	return rc;
}

static int conn_encode_finish(struct conn *c)
{
	int rc = CV_OK;
	if (!c->enc_finished) {
		int64_t t0 = clock_now_ns();
		c->enc_finished = 1;
		rc = audio_enc_finish(c->enc, &c->out);
		c->encode_ms += clock_ms_between(t0, clock_now_ns());
	}
	return rc;
}

/* Map a failed job to an error reply. */
static enum MHD_Result http_send_job_error(struct conn *c, const struct job_status *st)
{
	char msg[320];
	switch (st->result) {
	case CV_ETIMEDOUT:
		return http_send_error(c, 504, NULL, "deadline exceeded before the audio was complete", NULL,
				       NULL);
	case CV_ESHUTDOWN: return http_send_unavailable(c, "server is shutting down", 5);
	case CV_E2BIG:
	case CV_EBUDGET:
		if (st->error[0])
			snprintf(msg, sizeof msg, "%s", st->error);
		else
			snprintf(msg, sizeof msg, "audio longer than the limit of %d seconds",
				 c->srv->cfg.max_audio_seconds);
		return http_send_error(c, 413, c->style == ERRORS_STYLE_OPENAI ? "input" : "text", msg, NULL,
				       NULL);
	case CV_EINVAL:
		snprintf(msg, sizeof msg, "engine refused the request: %s", st->error);
		return http_send_error(c, 422, NULL, msg, NULL, NULL);
	default:
		snprintf(msg, sizeof msg, "synthesis failed: %s",
			 st->error[0] ? st->error : cv_strerror(st->result));
		log_err_limited("http", "engine_failure", "request_id=%s %s", c->request_id, msg);
		return http_send_error(c, 500, NULL, msg, NULL, NULL);
	}
}

static enum MHD_Result http_send_audio_buffered(struct conn *c, const struct job_status *st)
{
	char ctype[96], hdr[64];
	struct buf timing;
	struct MHD_Response *r;
	size_t len;
	char *data;
	double audio_s = http_audio_seconds(c, st);

	data = buf_steal(&c->out, &len);
	r = MHD_create_response_from_buffer(len, data ? data : (char *)"",
					    data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(data);
		return MHD_NO;
	}
	c->bytes_out = len;
	audio_format_content_type(c->req.format, c->out_rate, ctype, sizeof ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	buf_init(&timing, 2048);
	http_timing_full(c, st, &timing, clock_ms_between(c->t_arrival_ns, clock_now_ns()));
	MHD_add_response_header(r, "Server-Timing", buf_data(&timing));
	buf_free(&timing);
	snprintf(hdr, sizeof hdr, "%.3f", audio_s);
	MHD_add_response_header(r, "X-Audio-Duration", hdr);
	snprintf(hdr, sizeof hdr, "%.4f", http_rtf(st, audio_s));
	MHD_add_response_header(r, "X-Real-Time-Factor", hdr);
	snprintf(hdr, sizeof hdr, "%d", c->out_rate);
	MHD_add_response_header(r, "X-Sample-Rate", hdr);
	MHD_add_response_header(r, "X-Engine", c->engine_name);
	return http_queue(c, 200, r);
}

/* Chunked reader for streamed replies (event thread). */
static ssize_t conn_stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct conn *c = cls;
	(void)pos;
	for (;;) {
		struct job_status st;
		if (buf_len(&c->out)) {
			size_t n = buf_len(&c->out) < max ? buf_len(&c->out) : max;
			memcpy(out, buf_data(&c->out), n);
			buf_consume(&c->out, n);
			c->bytes_out += n;
			return (ssize_t)n;
		}
		if (c->stream_failed)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		job_get_status(c->job, &st);
		if (st.samples_pending) {
			if (conn_encode_pending(c) != CV_OK)
				c->stream_failed = 1;
			if (buf_len(&c->out) || c->stream_failed)
				continue;
		}
		if (st.state == JOB_DONE) {
			if (!c->have_final) {
				c->final = st;
				c->have_final = 1;
				http_observe_job(c, &st);
			}
			if (st.result != CV_OK) {
				/* Audio already started: all we can do is cut the stream so the
				 * client sees an incomplete chunked body, and log why. */
				log_warn("http", "request_id=%s stream ended early: %s", c->request_id,
					 st.error[0] ? st.error : cv_strerror(st.result));
				c->status = errors_status_for_code(st.result);
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			if (!c->enc_finished) {
				if (conn_encode_finish(c) != CV_OK)
					c->stream_failed = 1;
				continue;
			}
			{
				struct buf timing;
				char hdr[64];
				double audio_s = http_audio_seconds(c, &st);
				/* Trailers: MHD sends the response's footers after the last chunk. */
				buf_init(&timing, 2048);
				http_timing_full(c, &st, &timing,
						 clock_ms_between(c->t_arrival_ns, clock_now_ns()));
				MHD_add_response_footer(c->stream_resp, "Server-Timing", buf_data(&timing));
				buf_free(&timing);
				snprintf(hdr, sizeof hdr, "%.3f", audio_s);
				MHD_add_response_footer(c->stream_resp, "X-Audio-Duration", hdr);
				snprintf(hdr, sizeof hdr, "%.4f", http_rtf(&st, audio_s));
				MHD_add_response_footer(c->stream_resp, "X-Real-Time-Factor", hdr);
			}
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		/* Nothing to send yet: suspend inside the reader (allowed with a 0 return). */
		if (conn_suspend(c))
			return 0;
	}
}

static void conn_stream_free(void *cls)
{
	conn_unref(cls);
}

static enum MHD_Result http_start_stream(struct conn *c, const struct job_status *st)
{
	char ctype[96], hdr[64];
	struct buf timing;
	struct MHD_Response *r;

	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, conn_stream_read, c,
					      conn_stream_free);
	if (!r)
		return MHD_NO;
	atomic_fetch_add(&c->refs, 1); /* the response's reference */
	c->stream_resp = r;
	c->phase = CONN_PHASE_STREAMING;
	audio_format_content_type(c->req.format, c->out_rate, ctype, sizeof ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	MHD_add_response_header(r, "Trailer", "Server-Timing, X-Audio-Duration, X-Real-Time-Factor");
	buf_init(&timing, 512);
	http_timing_append(&timing, "queue",
			   st->t_start_ns ? clock_ms_between(st->t_submit_ns, st->t_start_ns) : 0);
	if (st->t_first_audio_ns)
		http_timing_append(&timing, "ttfa", clock_ms_between(c->t_arrival_ns, st->t_first_audio_ns));
	MHD_add_response_header(r, "Server-Timing", buf_data(&timing));
	buf_free(&timing);
	snprintf(hdr, sizeof hdr, "%d", c->out_rate);
	MHD_add_response_header(r, "X-Sample-Rate", hdr);
	MHD_add_response_header(r, "X-Engine", c->engine_name);
	{
		enum MHD_Result ret;
		http_add_common_headers(c, r);
		c->status = 200;
		ret = MHD_queue_response(c->mhd, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
}

/* Event thread, connection resumed (or not yet suspended): look at the job. */
static enum MHD_Result http_continue_synthesis(struct conn *c)
{
	for (;;) {
		struct job_status st;
		int rc;

		if (atomic_load(&c->client_gone)) {
			probe_remove(c->srv, c);
			return MHD_NO; /* closes the connection; nobody is listening */
		}
		/* Status first: when it says DONE, every chunk was appended before
		 * it, so the encode below takes all of them. */
		job_get_status(c->job, &st);
		rc = conn_encode_pending(c);
		if (rc != CV_OK) {
			sched_cancel(c->srv->sched, c->job, CV_ECANCELED);
			probe_remove(c->srv, c);
			return http_send_error(c, rc == CV_E2BIG ? 413 : 500, NULL,
					       rc == CV_E2BIG ? "encoded audio over the output limit"
							      : "audio encoding failed",
					       NULL, NULL);
		}
		if (st.state == JOB_DONE) {
			probe_remove(c->srv, c);
			if (!c->have_final) {
				c->final = st;
				c->have_final = 1;
				http_observe_job(c, &st);
			}
			if (st.result != CV_OK)
				return http_send_job_error(c, &st);
			if (c->req.stream)
				return http_start_stream(c, &st);
			rc = conn_encode_finish(c);
			if (rc != CV_OK)
				return http_send_error(c, rc == CV_E2BIG ? 413 : 500, NULL,
						       rc == CV_E2BIG ? "encoded audio over the output limit"
								      : "audio encoding failed",
						       NULL, NULL);
			return http_send_audio_buffered(c, &st);
		}
		if (c->req.stream && st.samples_total > 0 && buf_len(&c->out) > 0) {
			probe_remove(c->srv, c);
			return http_start_stream(c, &st);
		}
		if (conn_suspend(c))
			return MHD_YES;
	}
}

static enum MHD_Result http_begin_synthesis(struct conn *c)
{
	struct http_server *h = c->srv;
	struct request_limits lim = {h->cfg.max_text_chars, h->cfg.deadline_ms, h->cfg.default_format};
	struct request_error re;
	const struct http_facts *f = http_facts_get(h);
	const char *sp = NULL;
	struct audio_enc_opts eo;
	struct job_spec spec;
	char err[256];
	int rc;

	memset(&re, 0, sizeof re);
	rc = c->route->route == HTTP_ROUTE_SPEECH
		 ? request_parse_openai(buf_data(&c->body), buf_len(&c->body), &lim, &c->req, &re)
		 : request_parse_tts(buf_data(&c->body), buf_len(&c->body), &lim, &c->req, &re);
	buf_free(&c->body);
	if (rc != CV_OK) {
		metrics_inc_rejection(h->metrics, re.status == 413 ? METRICS_REJECT_TEXT_TOO_LONG
								   : METRICS_REJECT_INVALID);
		return http_send_error(c, re.status, re.field[0] ? re.field : NULL, re.message, NULL, NULL);
	}
	c->have_req = 1;
	metrics_add_input_chars(h->metrics, c->req.text_chars);
	if (!f || sched_get_state(h->sched) != SCHED_READY) {
		enum sched_state st = sched_get_state(h->sched);
		int draining = st == SCHED_DRAINING || st == SCHED_STOPPED;
		metrics_inc_rejection(h->metrics,
				      draining ? METRICS_REJECT_SHUTTING_DOWN : METRICS_REJECT_NOT_READY);
		return http_send_unavailable(
		    c, draining ? "server is shutting down" : "engine is not ready yet", 5);
	}
	if (c->req.speaker[0]) {
		sp = http_facts_speaker(f, c->req.speaker);
		if (!sp && c->req.openai_voice) {
			c->req.speaker[0] = '\0'; /* OpenAI voice names map to the default speaker */
		} else if (!sp) {
			char msg[200];
			snprintf(msg, sizeof msg, "unknown %s '%.64s' (see GET /v1/speakers)",
				 c->style == ERRORS_STYLE_OPENAI ? "voice" : "speaker", c->req.speaker);
			metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
			return http_send_error(c, 422, c->style == ERRORS_STYLE_OPENAI ? "voice" : "speaker",
					       msg, NULL, NULL);
		}
	}
	if (sp)
		cv_strlcpy(c->req.speaker, sp, sizeof c->req.speaker); /* canonical id */
	cv_strlcpy(c->engine_name, f->name, sizeof c->engine_name);
	c->in_rate = f->sample_rate;
	c->out_rate = c->req.sample_rate
			  ? c->req.sample_rate
			  : (h->cfg.default_sample_rate ? h->cfg.default_sample_rate : c->in_rate);
	eo = h->cfg.enc;
	eo.stream = c->req.stream;
	rc = audio_enc_new(c->req.format, c->in_rate, c->out_rate, &eo, &c->enc, err, sizeof err);
	if (rc != CV_OK) {
		metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
		return http_send_error(c, 400, c->style == ERRORS_STYLE_OPENAI ? "response_format" : "format",
				       err, NULL, NULL);
	}
	/* Worst case output: 16-bit PCM at the output rate plus headers. */
	buf_init(&c->out, (size_t)h->cfg.max_audio_seconds * (size_t)c->out_rate * 2u + (1u << 20));

	memset(&spec, 0, sizeof spec);
	spec.text = c->req.text;
	spec.speaker = c->req.speaker[0] ? c->req.speaker : NULL;
	spec.speed = c->req.speed;
	spec.seed = c->req.seed;
	spec.has_seed = c->req.has_seed;
	spec.normalize = c->req.normalize;
	spec.stream = c->req.stream;
	spec.deadline_ns =
	    c->t_arrival_ns +
	    (int64_t)(c->req.deadline_ms ? c->req.deadline_ms : h->cfg.deadline_ms) * 1000000LL;
	spec.max_samples = (size_t)h->cfg.max_audio_seconds * (size_t)c->in_rate;
	spec.request_id = c->request_id;
	c->job = job_new(&spec);
	job_set_notify(c->job, conn_on_job_notify, c);
	rc = sched_submit(h->sched, c->job);
	if (rc != CV_OK) {
		/* never queued: the connection lets go of it, so its end is not a cancellation */
		job_set_notify(c->job, NULL, NULL);
		job_unref(c->job);
		c->job = NULL;
		if (rc == CV_EFULL) {
			metrics_inc_rejection(h->metrics, METRICS_REJECT_QUEUE_FULL);
			return http_send_unavailable(c, "queue is full, retry later",
						     sched_retry_after_s(h->sched));
		}
		metrics_inc_rejection(h->metrics, rc == CV_ESHUTDOWN ? METRICS_REJECT_SHUTTING_DOWN
								     : METRICS_REJECT_NOT_READY);
		return http_send_unavailable(
		    c, rc == CV_ESHUTDOWN ? "server is shutting down" : "engine is not ready", 5);
	}
	c->phase = CONN_PHASE_WAITING;
	probe_add(h, c);
	return http_continue_synthesis(c);
}

/* Join the text threads that have returned (all of them with wait: at stop); text_mu held. */
static void text_reap_locked(struct http_server *h, int wait)
{
	for (size_t i = 0; i < HTTP_TEXT_THREADS_MAX; i++) {
		struct text_slot *t = &h->text[i];
		if (t->used && (wait || atomic_load(&t->done))) {
			pthread_join(t->tid, NULL);
			t->used = 0;
		}
	}
}

/* Text thread: run the frontend, hand the result over, wake the connection. */
static void *http_text_main(void *arg)
{
	struct conn *c = arg;
	struct text_slot *slot = &c->srv->text[c->text_slot];
	struct frontend_result fr = {0};
	char err[256] = "";
	char *json = NULL;
	int rc = frontend_run(c->srv->cfg.frontend, c->req.text, c->req.text_bytes, c->req.normalize, &fr,
			      err, sizeof err);
	if (rc == CV_OK) {
		json = text_reply_json(&fr);
		if (!json)
			rc = CV_ENOMEM;
	}
	frontend_result_free(&fr);
	pthread_mutex_lock(&c->mu);
	c->text_rc = rc;
	c->text_json = json;
	cv_strlcpy(c->text_err, err, sizeof c->text_err);
	c->text_done = 1;
	pthread_mutex_unlock(&c->mu);
	conn_on_job_notify(c);
	conn_unref(c);
	atomic_store(&slot->done, 1);
	return NULL;
}

static enum MHD_Result http_begin_normalize(struct conn *c)
{
	struct http_server *h = c->srv;
	struct request_limits lim = {h->cfg.max_text_chars, h->cfg.deadline_ms, h->cfg.default_format};
	struct request_error re;
	int rc;

	if (!h->cfg.frontend)
		return http_send_error(c, 501, NULL,
				       "text frontend not configured: set frontend_dir (a model bundle or "
				       "tools/fetch_tn.sh output) or model_dir",
				       NULL, NULL);
	memset(&re, 0, sizeof re);
	rc = request_parse_normalize(buf_data(&c->body), buf_len(&c->body), &lim, &c->req, &re);
	buf_free(&c->body);
	if (rc != CV_OK) {
		metrics_inc_rejection(h->metrics, re.status == 413 ? METRICS_REJECT_TEXT_TOO_LONG
								   : METRICS_REJECT_INVALID);
		return http_send_error(c, re.status, re.field[0] ? re.field : NULL, re.message, NULL, NULL);
	}
	c->have_req = 1;
	pthread_mutex_lock(&h->text_mu);
	text_reap_locked(h, 0);
	int slot = -1;
	for (int i = 0; i < HTTP_TEXT_THREADS_MAX && slot < 0; i++)
		if (!h->text[i].used)
			slot = i;
	if (slot < 0 || h->text_stopping) {
		pthread_mutex_unlock(&h->text_mu);
		metrics_inc_rejection(h->metrics, METRICS_REJECT_QUEUE_FULL);
		return http_send_unavailable(c, "text normalization is busy, retry later", 1);
	}
	c->phase = CONN_PHASE_TEXT;
	c->text_slot = slot;
	atomic_fetch_add(&c->refs, 1); /* the text thread's reference */
	atomic_store(&h->text[slot].done, 0);
	rc = pthread_create(&h->text[slot].tid, NULL, http_text_main, c);
	if (rc == 0)
		h->text[slot].used = 1;
	pthread_mutex_unlock(&h->text_mu);
	if (rc != 0) {
		atomic_fetch_sub(&c->refs, 1);
		return http_send_error(c, 500, NULL, "cannot start a text thread", NULL, NULL);
	}
	conn_suspend(c); /* not suspended when the result already arrived: MHD calls again */
	return MHD_YES;
}

static enum MHD_Result http_continue_normalize(struct conn *c)
{
	int done, rc;
	char *json;
	struct buf b;

	pthread_mutex_lock(&c->mu);
	done = c->text_done;
	rc = c->text_rc;
	json = c->text_json;
	c->text_json = NULL;
	pthread_mutex_unlock(&c->mu);
	if (!done) {
		conn_suspend(c);
		return MHD_YES;
	}
	if (rc != CV_OK) {
		free(json);
		return http_send_error(c, rc == CV_E2BIG ? 413 : (rc == CV_EINVAL ? 400 : 500),
				       rc == CV_E2BIG || rc == CV_EINVAL ? "text" : NULL,
				       c->text_err[0] ? c->text_err : cv_strerror(rc), NULL, NULL);
	}
	buf_init(&b, strlen(json) + 2);
	buf_append_str(&b, json);
	buf_append(&b, "\n", 1);
	free(json);
	return http_send_buf(c, 200, "application/json", &b);
}

static enum MHD_Result http_answer_preflight(struct conn *c)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST, OPTIONS");
	if (c->origin[0]) {
		MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
		MHD_add_response_header(r, "Access-Control-Allow-Headers",
					"Content-Type, Authorization, X-Request-Id");
		MHD_add_response_header(r, "Access-Control-Max-Age", "600");
	}
	return http_queue(c, 204, r);
}

/* --------------------------------------------------------- access handler */

static const struct http_route_def *http_route_find(const char *url)
{
	for (size_t i = 0; i < sizeof http_routes / sizeof http_routes[0]; i++)
		if (strcmp(url, http_routes[i].path) == 0)
			return &http_routes[i];
	return NULL;
}

struct http_cl_count {
	unsigned n;
	int conflict;
	const char *first;
};

static enum MHD_Result http_count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
						 const char *value)
{
	struct http_cl_count *cc = cls;
	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (cc->n++ == 0)
			cc->first = value;
		else if (!value || !cc->first || strcmp(value, cc->first) != 0)
			cc->conflict = 1;
	}
	return MHD_YES;
}

/* Checks that need only the headers; answers at once (MHD then discards any
 * body and closes). Returns 1 when a reply was queued. */
/* Percent-decoding as libmicrohttpd does it, except that a decoded NUL becomes DEL (0x7f): the URL
 * stays one C string of its real length, so "/metrics%00/x" cannot pass for "/metrics", and the
 * control byte is refused with 400 below (raw control bytes too). */
static size_t http_unescape(void *cls, struct MHD_Connection *mc, char *s)
{
	(void)cls;
	(void)mc;
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
			char hex[3] = {r[1], r[2], 0};
			unsigned long v = strtoul(hex, NULL, 16);
			*w++ = v == 0 ? (char)0x7f : (char)v;
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static int http_path_has_control(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			return 1;
	return 0;
}

static int http_early_checks(struct conn *c, const char *url, const char *method, enum MHD_Result *ret)
{
	struct http_server *h = c->srv;
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int is_post = strcmp(method, "POST") == 0;

	if (strcmp(method, "OPTIONS") == 0) {
		*ret = http_answer_preflight(c);
		return 1;
	}
	if (http_path_has_control(url)) {
		metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
		*ret = http_send_error(c, 400, "path", "the path holds a NUL or another control byte", NULL,
				       NULL);
		return 1;
	}
	if (!c->route) {
		*ret = http_send_error(c, 404, NULL, "no such route (see docs/api.md)", NULL, NULL);
		return 1;
	}
	if ((c->route->post && !is_post) || (!c->route->post && !is_get)) {
		*ret =
		    http_send_error(c, 405, NULL, "method not allowed on this route", MHD_HTTP_HEADER_ALLOW,
				    c->route->post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
		return 1;
	}
	if (c->route->route != HTTP_ROUTE_HEALTHZ && c->route->route != HTTP_ROUTE_READYZ &&
	    c->route->route != HTTP_ROUTE_METRICS && !http_auth_ok(h, c->mhd)) {
		metrics_inc_rejection(h->metrics, METRICS_REJECT_UNAUTHORIZED);
		*ret = http_send_error(c, 401, NULL, "missing or wrong API key (Authorization: Bearer <key>)",
				       NULL, NULL);
		return 1;
	}
	if (c->route->post) {
		const char *ct =
		    MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		const char *cl =
		    MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		struct http_cl_count cc = {0, 0, NULL};
		MHD_get_connection_values(c->mhd, MHD_HEADER_KIND, http_count_content_length, &cc);
		if (cc.conflict) {
			/* RFC 9112 §6.3: conflicting lengths are unrecoverable (request smuggling). */
			metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
			*ret =
			    http_send_error(c, 400, NULL, "conflicting Content-Length headers", NULL, NULL);
			return 1;
		}
		if (!http_ct_is_json(ct)) {
			metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
			*ret = http_send_error(c, 415, NULL, "Content-Type must be application/json", NULL,
					       NULL);
			return 1;
		}
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long n = strtoull(cl, &end, 10);
			if (errno == 0 && end != cl && n > h->cfg.max_body_bytes) {
				char msg[128];
				snprintf(msg, sizeof msg, "body of %llu bytes is over the limit of %zu bytes",
					 n, h->cfg.max_body_bytes);
				metrics_inc_rejection(h->metrics, METRICS_REJECT_BODY_TOO_LARGE);
				*ret = http_send_error(c, 413, NULL, msg, NULL, NULL);
				return 1;
			}
		}
	}
	return 0;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *mc, const char *url,
				       const char *method, const char *version, const char *upload_data,
				       size_t *upload_data_size, void **con_cls)
{
	struct http_server *h = cls;
	struct conn *c = *con_cls;
	enum MHD_Result ret;
	(void)version;

	if (!c) {
		const char *rid;
		c = xcalloc(1, sizeof *c);
		atomic_init(&c->refs, 1);
		atomic_init(&c->client_gone, 0);
		pthread_mutex_init(&c->mu, NULL);
		c->srv = h;
		c->mhd = mc;
		c->t_arrival_ns = clock_now_ns();
		c->method = method;
		cv_strlcpy(c->path, url, sizeof c->path);
		c->route = http_route_find(url);
		c->style = c->route && c->route->route == HTTP_ROUTE_SPEECH ? ERRORS_STYLE_OPENAI
									    : ERRORS_STYLE_HOUSE;
		rid = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-Id");
		if (http_request_id_ok(rid))
			cv_strlcpy(c->request_id, rid, sizeof c->request_id);
		else
			http_request_id_generate(c->request_id, sizeof c->request_id);
		buf_init(&c->body, h->cfg.max_body_bytes);
		*con_cls = c;
		atomic_fetch_add(&h->open_conns, 1);
		if (c->route && c->route->post)
			metrics_add_inflight(h->metrics, 1);
		http_cors_match(h, c, mc);
		if (http_early_checks(c, url, method, &ret))
			return ret;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!c->body_too_big && buf_append(&c->body, upload_data, *upload_data_size) != CV_OK)
			c->body_too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	switch (c->phase) {
	case CONN_PHASE_NEW: break;
	case CONN_PHASE_WAITING: return http_continue_synthesis(c);
	case CONN_PHASE_TEXT: return http_continue_normalize(c);
	default: return MHD_YES; /* response already queued */
	}
	if (c->body_too_big) {
		char msg[128];
		buf_free(&c->body);
		snprintf(msg, sizeof msg, "body is over the limit of %zu bytes", h->cfg.max_body_bytes);
		metrics_inc_rejection(h->metrics, METRICS_REJECT_BODY_TOO_LARGE);
		return http_send_error(c, 413, NULL, msg, NULL, NULL);
	}
	switch (c->route->route) {
	case HTTP_ROUTE_TTS:
	case HTTP_ROUTE_SPEECH: return http_begin_synthesis(c);
	case HTTP_ROUTE_NORMALIZE: return http_begin_normalize(c);
	case HTTP_ROUTE_SPEAKERS: return http_answer_speakers(c);
	case HTTP_ROUTE_HEALTHZ: return http_answer_healthz(c);
	case HTTP_ROUTE_READYZ: return http_answer_readyz(c);
	case HTTP_ROUTE_METRICS: return http_answer_metrics(c);
	default: return http_send_error(c, 404, NULL, "no such route", NULL, NULL);
	}
}

static const char *http_termination_name(enum MHD_RequestTerminationCode toe)
{
	switch (toe) {
	case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "ok";
	case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
	case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
	case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
	case MHD_REQUEST_TERMINATED_READ_ERROR: return "read_error";
	case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client_abort";
	default: return "unknown";
	}
}

static void http_access_log(struct conn *c, enum MHD_RequestTerminationCode toe, double total_ms)
{
	struct buf line;
	if (!c->srv->cfg.access_log || !LOG_ENABLED(LOG_LEVEL_INFO))
		return;
	buf_init(&line, 2048);
	buf_printf(&line, "request_id=%s method=%s path=\"%.48s\" status=%d bytes=%zu term=%s total_ms=%.1f",
		   c->request_id, c->method ? c->method : "-", c->path, c->status, c->bytes_out,
		   http_termination_name(toe), total_ms);
	if (c->have_req)
		buf_printf(&line, " chars=%zu format=%s rate=%d stream=%d", c->req.text_chars,
			   audio_format_name(c->req.format), c->out_rate, c->req.stream);
	if (c->have_final) {
		const struct job_status *st = &c->final;
		double audio_s = http_audio_seconds(c, st);
		buf_printf(&line, " audio_s=%.3f queue_ms=%.1f synth_ms=%.1f encode_ms=%.1f rtf=%.4f",
			   audio_s, st->t_start_ns ? clock_ms_between(st->t_submit_ns, st->t_start_ns) : 0.0,
			   st->t_start_ns && st->t_end_ns ? clock_ms_between(st->t_start_ns, st->t_end_ns)
							  : 0.0,
			   c->encode_ms, http_rtf(st, audio_s));
		if (st->t_first_audio_ns)
			buf_printf(&line, " ttfa_ms=%.1f",
				   clock_ms_between(c->t_arrival_ns, st->t_first_audio_ns));
		for (size_t i = 0; i < st->timings.n; i++)
			if (strcmp(st->timings.stage[i].name, "ttfa") != 0)
				buf_printf(&line, " %s_ms=%.1f", st->timings.stage[i].name,
					   st->timings.stage[i].ms);
		if (st->result != CV_OK)
			buf_printf(&line, " result=\"%s\"", cv_strerror(st->result));
	}
	log_write_kv(LOG_LEVEL_INFO, "access", buf_data(&line));
	buf_free(&line);
}

static void http_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct http_server *h = cls;
	struct conn *c = *con_cls;
	double total_ms;
	(void)mc;

	if (!c)
		return;
	*con_cls = NULL;
	total_ms = clock_ms_between(c->t_arrival_ns, clock_now_ns());
	probe_remove(h, c);
	if (c->job) {
		struct job_status st;
		job_get_status(c->job, &st);
		if (st.state != JOB_DONE ||
		    (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && c->phase != CONN_PHASE_ANSWERED)) {
			if (st.state != JOB_DONE || st.result == CV_ECANCELED)
				conn_count_cancel(c);
			sched_cancel(h->sched, c->job, CV_ECANCELED);
		} else if (atomic_load(&c->client_gone)) {
			conn_count_cancel(c);
		}
		if (atomic_load(&c->client_gone) || toe == MHD_REQUEST_TERMINATED_WITH_ERROR ||
		    toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT)
			c->status = c->status ? c->status : 499;
	}
	if (c->status == 0)
		c->status = 499; /* client closed before any reply */
	if (c->route)
		metrics_observe_request(h->metrics, c->route->metric, c->status, total_ms / 1e3);
	else
		metrics_observe_request(h->metrics, METRICS_ROUTE_OTHER, c->status, total_ms / 1e3);
	if (c->route && c->route->post)
		metrics_add_inflight(h->metrics, -1);
	http_access_log(c, toe, total_ms);
	atomic_fetch_sub(&h->open_conns, 1);
	conn_unref(c);
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_write_limited(LOG_LEVEL_WARN, "mhd", "mhd", "%s", msg);
}

/* ------------------------------------------------------------- lifecycle */

static void http_parse_cors(struct http_server *h)
{
	char *save = NULL, *tok;
	h->cors_store = xstrdup(h->cfg.cors_origins ? h->cfg.cors_origins : "");
	for (tok = strtok_r(h->cors_store, ",", &save); tok && h->n_cors < HTTP_CORS_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		size_t n = strlen(tok);
		while (n && tok[n - 1] == ' ')
			tok[--n] = '\0';
		if (!n)
			continue;
		if (strcmp(tok, "*") == 0)
			h->cors_any = 1;
		else
			h->cors[h->n_cors++] = tok;
	}
}

int http_server_start(const struct http_config *cfg, struct sched *s, struct metrics *m,
		      struct http_server **out, char *err, size_t errlen)
{
	struct http_server *h = xcalloc(1, sizeof *h);
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	struct sockaddr *sa;
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;

	h->cfg = *cfg;
	h->sched = s;
	h->metrics = m;
	atomic_init(&h->open_conns, 0);
	pthread_mutex_init(&h->text_mu, NULL);
	pthread_mutex_init(&h->probe_mu, NULL);
	pthread_mutex_init(&h->facts_mu, NULL);
	pthread_cond_init(&h->probe_cv, NULL);
	http_parse_cors(h);

	memset(&a4, 0, sizeof a4);
	memset(&a6, 0, sizeof a6);
	if (inet_pton(AF_INET, cfg->listen, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)cfg->port);
		sa = (struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, cfg->listen, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)cfg->port);
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		snprintf(err, errlen, "listen: '%s' is not an IPv4 or IPv6 address", cfg->listen);
		goto fail;
	}
	/* A pool only when asked: MHD warns about a pool size of 0 or 1. */
	struct MHD_OptionItem pool[2] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL}};
	if (cfg->threads > 1)
		pool[0] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->threads, NULL};
	h->mhd =
	    MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, http_on_request, h,
			     MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, sa,
			     MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, h, MHD_OPTION_CONNECTION_LIMIT,
			     (unsigned int)cfg->connection_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			     (unsigned int)cfg->per_ip_connection_limit, MHD_OPTION_CONNECTION_TIMEOUT,
			     (unsigned int)cfg->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			     (size_t)(64 * 1024), MHD_OPTION_ARRAY, pool, MHD_OPTION_STRICT_FOR_CLIENT,
			     (int)1, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape, NULL, MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->listen, cfg->port, strerror(errno));
		goto fail;
	}
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : cfg->port;
	if (pthread_create(&h->probe_thread, NULL, probe_main, h) != 0) {
		snprintf(err, errlen, "cannot start the probe thread");
		goto fail;
	}
	h->probe_started = 1;
	*out = h;
	return CV_OK;
fail:
	http_server_free(h);
	return CV_EIO;
}

int http_server_port(const struct http_server *h)
{
	return h->port;
}

void http_server_quiesce(struct http_server *h)
{
	if (h && h->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(h->mhd);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

size_t http_server_open_connections(struct http_server *h)
{
	return atomic_load(&h->open_conns);
}

void http_server_stop(struct http_server *h, int wait_ms)
{
	int64_t until;
	if (!h)
		return;
	until = clock_now_ns() + (int64_t)wait_ms * 1000000LL;
	while (h->mhd && atomic_load(&h->open_conns) > 0 && clock_now_ns() < until) {
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (h->probe_started) {
		pthread_mutex_lock(&h->probe_mu);
		h->probe_stop = 1;
		pthread_cond_signal(&h->probe_cv);
		pthread_mutex_unlock(&h->probe_mu);
		pthread_join(h->probe_thread, NULL);
		h->probe_started = 0;
	}
	/* Text threads resume their connections and read the frontend: join them while the daemon
	 * (and, in main, the frontend) still exists; none starts after this. */
	pthread_mutex_lock(&h->text_mu);
	h->text_stopping = 1;
	text_reap_locked(h, 1);
	pthread_mutex_unlock(&h->text_mu);
	if (h->mhd) {
		MHD_stop_daemon(h->mhd);
		h->mhd = NULL;
	}
}

void http_server_free(struct http_server *h)
{
	if (!h)
		return;
	http_server_stop(h, 0);
	pthread_mutex_destroy(&h->probe_mu);
	pthread_mutex_destroy(&h->text_mu);
	pthread_mutex_destroy(&h->facts_mu);
	http_facts_free(atomic_load(&h->facts));
	pthread_cond_destroy(&h->probe_cv);
	free(h->cors_store);
	free(h);
}
