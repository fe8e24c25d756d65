/* handlers/http_synth.c — POST /tts and /v1/audio/speech: validate, submit a job, then answer buffered
 * (encoded as PCM arrives) or streamed (chunked, timing in trailers). */
#include "handlers/http_impl.h"

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

double http_audio_seconds(const struct conn *c, const struct job_status *st)
{
	return c->in_rate > 0 ? (double)st->samples_total / c->in_rate : 0;
}

double http_rtf(const struct job_status *st, double audio_s)
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
	case CV_ENOTFOUND: /* the voice was removed (DELETE, SIGHUP) while the request waited */
		snprintf(msg, sizeof msg, "%s", st->error[0] ? st->error : "unknown speaker");
		return http_send_error(c, 422, c->style == ERRORS_STYLE_OPENAI ? "voice" : "speaker", msg,
				       NULL, NULL);
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
enum MHD_Result http_continue_synthesis(struct conn *c)
{
	for (;;) {
		struct job_status st;
		int rc;

		if (atomic_load(&c->client_gone)) {
			http_probe_remove(c->srv, c);
			return MHD_NO; /* closes the connection; nobody is listening */
		}
		/* Status first: when it says DONE, every chunk was appended before
		 * it, so the encode below takes all of them. */
		job_get_status(c->job, &st);
		rc = conn_encode_pending(c);
		if (rc != CV_OK) {
			sched_cancel(c->srv->sched, c->job, CV_ECANCELED);
			http_probe_remove(c->srv, c);
			return http_send_error(c, rc == CV_E2BIG ? 413 : 500, NULL,
					       rc == CV_E2BIG ? "encoded audio over the output limit"
							      : "audio encoding failed",
					       NULL, NULL);
		}
		if (st.state == JOB_DONE) {
			http_probe_remove(c->srv, c);
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
			http_probe_remove(c->srv, c);
			return http_start_stream(c, &st);
		}
		if (conn_suspend(c))
			return MHD_YES;
	}
}

enum MHD_Result http_begin_synthesis(struct conn *c)
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
	if (rc != CV_OK)
		return http_send_request_error(c, &re);
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
		const struct sched_voices *v = sched_voices_get(h->sched);
		if ((sp = sched_voices_find(v, c->req.speaker)) != NULL)
			cv_strlcpy(c->req.speaker, sp, sizeof c->req.speaker); /* canonical id */
		sched_voices_put(v);
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
	http_probe_add(h, c);
	return http_continue_synthesis(c);
}
