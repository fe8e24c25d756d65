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
#include "handlers/http_impl.h"

static const struct http_route_def http_routes[] = {
    {"/tts", HTTP_ROUTE_TTS, METRICS_ROUTE_TTS, 1},
    {"/v1/audio/speech", HTTP_ROUTE_SPEECH, METRICS_ROUTE_SPEECH, 1},
    {"/v1/speakers", HTTP_ROUTE_SPEAKERS, METRICS_ROUTE_SPEAKERS, 0},
    {"/v1/text/normalize", HTTP_ROUTE_NORMALIZE, METRICS_ROUTE_NORMALIZE, 1},
    {"/healthz", HTTP_ROUTE_HEALTHZ, METRICS_ROUTE_HEALTHZ, 0},
    {"/readyz", HTTP_ROUTE_READYZ, METRICS_ROUTE_READYZ, 0},
    {"/metrics", HTTP_ROUTE_METRICS, METRICS_ROUTE_METRICS, 0},
    {"/", HTTP_ROUTE_WEB, METRICS_ROUTE_WEB, 0},
    {"/console.js", HTTP_ROUTE_WEB, METRICS_ROUTE_WEB, 0},
    {"/console.css", HTTP_ROUTE_WEB, METRICS_ROUTE_WEB, 0},
    {"/cosyvoiced.js", HTTP_ROUTE_WEB, METRICS_ROUTE_WEB, 0},
};

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

/* Whether a Content-Type header names `type` (parameters after ';' allowed). */
static int http_ct_is(const char *ct, const char *type)
{
	size_t n = strlen(type);
	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Constant-time comparison of a presented key with each key of a list. */
int http_key_ok(const char *const *keys, size_t n, struct MHD_Connection *mc)
{
	const char *auth;
	int ok = 0;

	auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	auth += 7;
	while (*auth == ' ')
		auth++;
	size_t alen = strlen(auth);
	for (size_t i = 0; i < n; i++) {
		const char *k = keys[i];
		size_t klen = strlen(k);
		unsigned char diff = (unsigned char)(alen != klen);
		for (size_t j = 0; j < klen; j++)
			diff |= (unsigned char)(k[j] ^ (j < alen ? auth[j] : 0));
		ok |= diff == 0;
	}
	return ok;
}

static int http_auth_ok(struct http_server *h, struct MHD_Connection *mc)
{
	int ok;
	pthread_rwlock_rdlock(&h->keys_lock);
	ok = h->n_keys == 0 || http_key_ok((const char *const *)h->keys, h->n_keys, mc);
	pthread_rwlock_unlock(&h->keys_lock);
	return ok;
}

static void http_keys_free(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

size_t http_server_set_api_keys(struct http_server *h, const char *const *keys, size_t n)
{
	char **copy = n ? xcalloc(n, sizeof *copy) : NULL, **old;
	size_t old_n;
	for (size_t i = 0; i < n; i++)
		copy[i] = xstrdup(keys[i]);
	pthread_rwlock_wrlock(&h->keys_lock);
	old = h->keys;
	old_n = h->n_keys;
	h->keys = copy;
	h->n_keys = n;
	pthread_rwlock_unlock(&h->keys_lock);
	http_keys_free(old, old_n);
	return n;
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

static const struct http_route_def http_voice_route = {HTTP_VOICE_PREFIX, HTTP_ROUTE_VOICE,
						       METRICS_ROUTE_VOICE, 0};

static const struct http_route_def *http_route_find(const char *url)
{
	for (size_t i = 0; i < sizeof http_routes / sizeof http_routes[0]; i++)
		if (strcmp(url, http_routes[i].path) == 0)
			return &http_routes[i];
	if (strncmp(url, HTTP_VOICE_PREFIX, sizeof HTTP_VOICE_PREFIX - 1) == 0)
		return &http_voice_route;
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

/* Checks of a request that carries a body, from its headers alone: one
 * Content-Length (conflicting ones are request smuggling, RFC 9112 §6.3),
 * Content-Type `type`, and a declared length within `limit` (`what` names the
 * body and the setting in the 413). Returns 1 when a reply was queued. */
static int http_body_checks(struct conn *c, const char *type, size_t limit, const char *what,
			    const char *setting, enum MHD_Result *ret)
{
	struct http_server *h = c->srv;
	const char *ct = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *cl = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct http_cl_count cc = {0, 0, NULL};
	char msg[160];

	MHD_get_connection_values(c->mhd, MHD_HEADER_KIND, http_count_content_length, &cc);
	if (cc.conflict) {
		metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
		*ret = http_send_error(c, 400, NULL, "conflicting Content-Length headers", NULL, NULL);
		return 1;
	}
	if (!http_ct_is(ct, type)) {
		snprintf(msg, sizeof msg, "Content-Type must be %s", type);
		metrics_inc_rejection(h->metrics, METRICS_REJECT_INVALID);
		*ret = http_send_error(c, 415, NULL, msg, NULL, NULL);
		return 1;
	}
	if (cl) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno == 0 && end != cl && n > limit) {
			snprintf(msg, sizeof msg, "%s of %llu bytes is over the limit of %zu bytes%s", what,
				 n, limit, setting);
			metrics_inc_rejection(h->metrics, METRICS_REJECT_BODY_TOO_LARGE);
			*ret = http_send_error(c, 413, NULL, msg, NULL, NULL);
			return 1;
		}
	}
	return 0;
}

/* PUT/DELETE /v1/speakers/{id}: on only with admin keys and voices_dir; an
 * admin key is required (401 without a key, 403 with another). */
static int http_voice_checks(struct conn *c, const char *method, enum MHD_Result *ret)
{
	struct http_server *h = c->srv;
	int is_put = strcmp(method, "PUT") == 0;

	if (h->cfg.n_admin_keys == 0 || !h->cfg.voices_dir || !h->cfg.voices_dir[0]) {
		*ret = http_send_error(c, 404, NULL,
				       "voice changes over HTTP are off (set admin_api_keys and voices_dir)",
				       NULL, NULL);
		return 1;
	}
	if (!is_put && strcmp(method, "DELETE") != 0) {
		*ret = http_send_error(c, 405, NULL, "method not allowed on this route",
				       MHD_HTTP_HEADER_ALLOW, "PUT, DELETE, OPTIONS");
		return 1;
	}
	if (!http_key_ok(h->cfg.admin_keys, h->cfg.n_admin_keys, c->mhd)) {
		int none = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION) == NULL;
		metrics_inc_rejection(h->metrics, METRICS_REJECT_UNAUTHORIZED);
		*ret = http_send_error(c, none ? 401 : 403, NULL,
				       none ? "an admin key is required (Authorization: Bearer <admin key>)"
					    : "this key may not change voices (admin_api_keys)",
				       NULL, NULL);
		return 1;
	}
	if (is_put)
		return http_body_checks(c, "application/octet-stream", h->cfg.max_voice_bytes, "voice file",
					" (max_voice_bytes)", ret);
	return 0;
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
	if (c->route->route == HTTP_ROUTE_VOICE)
		return http_voice_checks(c, method, ret);
	if ((c->route->post && !is_post) || (!c->route->post && !is_get)) {
		*ret =
		    http_send_error(c, 405, NULL, "method not allowed on this route", MHD_HTTP_HEADER_ALLOW,
				    c->route->post ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
		return 1;
	}
	/* Probes and the static console files (no data in them) need no key. */
	if (c->route->route != HTTP_ROUTE_HEALTHZ && c->route->route != HTTP_ROUTE_READYZ &&
	    c->route->route != HTTP_ROUTE_METRICS && c->route->route != HTTP_ROUTE_WEB &&
	    !http_auth_ok(h, c->mhd)) {
		metrics_inc_rejection(h->metrics, METRICS_REJECT_UNAUTHORIZED);
		*ret = http_send_error(c, 401, NULL, "missing or wrong API key (Authorization: Bearer <key>)",
				       NULL, NULL);
		return 1;
	}
	if (c->route->post)
		return http_body_checks(c, "application/json", h->cfg.max_body_bytes, "body", "", ret);
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
		buf_init(&c->body, c->route && c->route->route == HTTP_ROUTE_VOICE ? h->cfg.max_voice_bytes
										   : h->cfg.max_body_bytes);
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
		snprintf(msg, sizeof msg, "body is over the limit of %zu bytes",
			 c->route->route == HTTP_ROUTE_VOICE ? h->cfg.max_voice_bytes
							     : h->cfg.max_body_bytes);
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
	case HTTP_ROUTE_VOICE: return http_answer_voice(c);
	case HTTP_ROUTE_WEB: return http_answer_web(c);
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
	http_probe_remove(h, c);
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
	pthread_mutex_init(&h->voices_mu, NULL);
	pthread_rwlock_init(&h->keys_lock, NULL);
	http_server_set_api_keys(h, cfg->api_keys, cfg->n_api_keys);
	pthread_mutex_init(&h->probe_mu, NULL);
	pthread_mutex_init(&h->facts_mu, NULL);
	{
		/* the probe's 200 ms waits run on the monotonic clock: a wall-clock step cannot stretch them
		 */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->probe_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
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
	if (pthread_create(&h->probe_thread, NULL, http_probe_main, h) != 0) {
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
	http_text_reap_locked(h, 1);
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
	pthread_mutex_destroy(&h->voices_mu);
	http_keys_free(h->keys, h->n_keys);
	pthread_rwlock_destroy(&h->keys_lock);
	pthread_mutex_destroy(&h->facts_mu);
	http_facts_free(atomic_load(&h->facts));
	pthread_cond_destroy(&h->probe_cv);
	free(h->cors_store);
	free(h);
}
