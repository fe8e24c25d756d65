/* handlers/http_get.c — the GET routes and the engine facts they read (an immutable snapshot copied at
 * READY: the worker closes the engine at shutdown while HTTP still answers). */
#include "handlers/http_impl.h"

struct http_facts *http_facts_get(struct http_server *h)
{
	struct http_facts *f = atomic_load(&h->facts);
	const struct engine *e;

	if (f)
		return f;
	pthread_mutex_lock(&h->facts_mu);
	f = atomic_load(&h->facts);
	if (!f && sched_get_state(h->sched) == SCHED_READY && (e = sched_engine(h->sched)) != NULL) {
		f = xcalloc(1, sizeof *f);
		cv_strlcpy(f->name, engine_name(e), sizeof f->name);
		f->sample_rate = engine_sample_rate(e);
		atomic_store(&h->facts, f);
	}
	pthread_mutex_unlock(&h->facts_mu);
	return f;
}

void http_facts_free(struct http_facts *f)
{
	free(f);
}

enum MHD_Result http_answer_healthz(struct conn *c)
{
	return http_send_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result http_answer_readyz(struct conn *c)
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
	json_object_set_new(j, "max_text_chars", json_integer((json_int_t)h->cfg.max_text_chars));
	if (reason)
		json_object_set_new(j, "reason", json_string(reason));
	if (h->cfg.embedded_default)
		json_object_set_new(
		    j, "note",
		    json_string("embedded default engine (espeak-ng): no CosyVoice2 model configured"));
	return http_send_json(c, reason ? 503 : 200, j);
}

enum MHD_Result http_answer_speakers(struct conn *c)
{
	const struct http_facts *f = http_facts_get(c->srv);
	const struct sched_voices *v;
	json_t *arr, *j;

	if (!f || !(v = sched_voices_get(c->srv->sched)))
		return http_send_unavailable(c, "engine not loaded yet", 5);
	arr = json_array();
	for (size_t i = 0; i < sched_voices_count(v); i++) {
		const struct engine_speaker *sp = sched_voices_at(v, i);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id", sp->id, "language",
						     sp->language, "name", sp->name));
	}
	j = json_pack("{s:s, s:s, s:i, s:o}", "engine", f->name, "default", sched_voices_default(v),
		      "sample_rate", f->sample_rate, "speakers", arr);
	sched_voices_put(v);
	return http_send_json(c, 200, j);
}

enum MHD_Result http_answer_metrics(struct conn *c)
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
	{
		const struct sched_voices *v = sched_voices_get(h->sched);
		g.voices = sched_voices_count(v);
		sched_voices_put(v);
		sched_reload_stats(h->sched, &g.voice_reloads_ok, &g.voice_reloads_refused);
		g.voice_puts_ok = atomic_load(&h->voice_puts_ok);
		g.voice_puts_refused = atomic_load(&h->voice_puts_refused);
		g.voice_deletes_ok = atomic_load(&h->voice_deletes_ok);
		g.voice_deletes_refused = atomic_load(&h->voice_deletes_refused);
	}
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
