/* handlers/http_text.c — POST /v1/text/normalize: the frontend runs on a text thread owned by the server
 * (at most HTTP_TEXT_THREADS_MAX; finished ones are joined at the next start, all of them at stop). */
#include "handlers/http_impl.h"

/* Join the text threads that have returned (all of them with wait: at stop); text_mu held. */
void http_text_reap_locked(struct http_server *h, int wait)
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

enum MHD_Result http_begin_normalize(struct conn *c)
{
	struct http_server *h = c->srv;
	struct request_limits lim = {h->cfg.max_text_chars, h->cfg.deadline_ms, h->cfg.default_format};
	struct request_error re;
	int rc;

	if (!h->cfg.frontend)
		return http_send_error(c, 501, NULL,
				       "text frontend not configured: set frontend_dir (a model bundle or "
				       "tools/export/fetch_tn.sh output) or model_dir",
				       NULL, NULL);
	memset(&re, 0, sizeof re);
	rc = request_parse_normalize(buf_data(&c->body), buf_len(&c->body), &lim, &c->req, &re);
	buf_free(&c->body);
	if (rc != CV_OK)
		return http_send_request_error(c, &re);
	c->have_req = 1;
	pthread_mutex_lock(&h->text_mu);
	http_text_reap_locked(h, 0);
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

enum MHD_Result http_continue_normalize(struct conn *c)
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
