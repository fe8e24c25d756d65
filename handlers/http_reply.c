/* handlers/http_reply.c — replies and errors (one envelope, house or OpenAI style), suspend/resume of
 * connections waiting for the worker, and the probe thread that notices clients gone while suspended. */
#include "handlers/http_impl.h"

void conn_unref(struct conn *c)
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

void http_add_common_headers(struct conn *c, struct MHD_Response *r)
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

enum MHD_Result http_queue(struct conn *c, int status, struct MHD_Response *r)
{
	enum MHD_Result ret;
	http_add_common_headers(c, r);
	c->status = status;
	c->phase = CONN_PHASE_ANSWERED;
	ret = MHD_queue_response(c->mhd, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_send_buf(struct conn *c, int status, const char *ctype, struct buf *b)
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

enum MHD_Result http_send_json(struct conn *c, int status, json_t *j)
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
enum MHD_Result http_send_error(struct conn *c, int status, const char *field, const char *message,
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

/* A request body the parser refused: 400/413 with the field it names, counted as a rejection. */
enum MHD_Result http_send_request_error(struct conn *c, const struct request_error *re)
{
	metrics_inc_rejection(c->srv->metrics,
			      re->status == 413 ? METRICS_REJECT_TEXT_TOO_LONG : METRICS_REJECT_INVALID);
	return http_send_error(c, re->status, re->field[0] ? re->field : NULL, re->message, NULL, NULL);
}

enum MHD_Result http_send_unavailable(struct conn *c, const char *msg, int retry_after_s)
{
	char ra[16];
	snprintf(ra, sizeof ra, "%d", retry_after_s > 0 ? retry_after_s : 1);
	return http_send_error(c, 503, NULL, msg, MHD_HTTP_HEADER_RETRY_AFTER, ra);
}

/* Worker thread: new PCM or job finished. */
void conn_on_job_notify(void *ctx)
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
int conn_suspend(struct conn *c)
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

void http_probe_add(struct http_server *h, struct conn *c)
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

void http_probe_remove(struct http_server *h, struct conn *c)
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

void conn_count_cancel(struct conn *c)
{
	if (!c->cancel_counted) {
		c->cancel_counted = 1;
		metrics_inc_cancellation(c->srv->metrics);
	}
}

void *http_probe_main(void *arg)
{
	struct http_server *h = arg;
	pthread_mutex_lock(&h->probe_mu);
	while (!h->probe_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
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
