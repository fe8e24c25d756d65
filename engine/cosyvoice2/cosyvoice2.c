/* engine/cosyvoice2/cosyvoice2.c — the CosyVoice2 backend table: synthesize, warm-up, gauges.
 *
 * The backend is four files sharing engine/cosyvoice2/cv2_impl.h: this one, cv2_bundle.c (open),
 * cv2_pipeline.c (one sentence through the model) and cv2_memory.c (the memory guard). The design
 * below is the whole backend's.
 *
 * DESIGN: all orchestration is C; the model is called through the plain-C
 * runtime (engine/cosyvoice2/torch_runtime.h) whose entry points are the bundle's
 * TorchScript methods. The reference's algorithm is followed step by step
 * (docs/cosyvoice2.md §2.4, §3.3-§3.6, §4.1, §5.1, §6): the prompt layout per
 * mode, min/max lengths by text ids with EOS masked before min_len and the
 * three stop ids, RAS sampling in C (engine/cosyvoice2/sampler.h, a per-request seeded
 * PCG32), flow + HiFT, speed by mel interpolation, and the streaming
 * schedule with its HiFT cache and Hamming cross-fade (engine/cosyvoice2/cv2_stream.h).
 * Chunks are computed inside the decode loop as soon as the schedule makes
 * one due, so the first audio leaves after the first hop, not at the end.
 *
 * Opening a bundle checks everything that can be checked before the model
 * is loaded (format, version, torch version, every file's sha256), so a
 * stale or damaged bundle is refused with a message that names the file and
 * the fix, instead of failing later inside libtorch. The engine state
 * (sampler scratch, HiFT cache, KV cache inside the runtime) is per engine
 * and reset per sentence: the scheduler runs one request at a time.
 *
 * Every sentence of a request is synthesized in order; the first failing
 * sentence fails the whole request with its number in the error text.
 *
 * Memory: the KV cache is allocated once at start-up for llm_max_positions
 * and never grows for requests. The memory guard measures at start-up what
 * the engine holds (weights + KV cache: the "base") and what flow + HiFT add
 * per mel frame (two probe syntheses, peak minus start; CUDA: the caching
 * allocator's figures, CPU: resident set and its high-water mark), fits
 * need(T) = base + a*T + b*T^2 (the flow estimator's attention is quadratic
 * in T), and refuses, before any audio, a request whose longest sentence
 * could need more than memory_budget_mb: T is taken at the LLM's maximum
 * length for that sentence (20 speech tokens per text token, docs/cosyvoice2.md §3.4).
 */
#include "engine/cosyvoice2/cv2_impl.h"

#include <malloc.h>

static int cv2_be_open(const struct engine_config *cfg, void **impl, char *err, size_t errlen)
{
	struct cv2 *m = NULL;
	int rc = cv2_open(cfg, &m, err, errlen);
	*impl = m;
	return rc;
}

static int cv2_be_reload(void *impl, char *err, size_t errlen)
{
	return cv2_reload_voices(impl, err, errlen);
}

static int cv2_be_check(void *impl, const char *path, char *err, size_t errlen)
{
	return cv2_check_voice(impl, path, err, errlen);
}

static void cv2_be_close(void *impl)
{
	cv2_free(impl);
}

static const char *cv2_be_name(void *impl)
{
	(void)impl;
	return "cosyvoice2";
}

static const char *cv2_be_describe(void *impl)
{
	return ((struct cv2 *)impl)->describe;
}

static int cv2_be_rate(void *impl)
{
	return ((struct cv2 *)impl)->sample_rate;
}

static size_t cv2_be_count(void *impl)
{
	return ((struct cv2 *)impl)->n_spk;
}

static const struct engine_speaker *cv2_be_at(void *impl, size_t i)
{
	struct cv2 *m = impl;
	return i < m->n_spk ? &m->espk[i] : NULL;
}

static const char *cv2_be_default(void *impl)
{
	struct cv2 *m = impl;
	return m->spk[m->default_spk].id;
}

/* Split "<instruction><|endofprompt|><text>"; returns the text part and the
 * instruction length (including the marker), or 0 when there is none. */
static const char *cv2_split_instruct(const char *text, size_t *instr_len)
{
	const char *p = strstr(text, COSYVOICE2_ENDOFPROMPT);

	*instr_len = 0;
	if (!p)
		return text;
	*instr_len = (size_t)(p - text) + strlen(COSYVOICE2_ENDOFPROMPT);
	return text + *instr_len;
}

static int cv2_be_synthesize(void *impl, const struct engine_params *p, const struct engine_sink *sink,
			     struct engine_timings *t, char *err, size_t errlen)
{
	struct cv2 *m = impl;
	struct frontend_result fr = {0}, ir = {0};
	struct cv2_run run;
	const struct cv2_speaker *spk;
	int32_t *instr = NULL;
	size_t n_instr = 0, ilen = 0;
	const char *body;
	uint64_t seed = p->seed;
	int64_t a;
	int rc;

	spk = cv2_speaker_find(m, p->speaker);
	if (!spk) {
		cv_errf(err, errlen, "unknown speaker '%s' (see GET /v1/speakers)", p->speaker);
		return CV_ENOTFOUND;
	}
	if (p->stream && p->speed != 1.0f) {
		cv_errf(err, errlen,
			"speed %.2f with stream=true: CosyVoice2 changes speed on the whole mel (buffered "
			"synthesis only, as the reference)",
			(double)p->speed);
		return CV_EINVAL;
	}
	if (!p->has_seed) {
		if (sampler_rng_seed_random(&run.rng, &seed) != CV_OK)
			seed = (uint64_t)clock_now_ns();
	}
	cv2_run_init(m, &run, sink, seed);

	a = clock_now_ns();
	body = cv2_split_instruct(p->text, &ilen);
	if (ilen) {
		/* instruct2 (docs/cosyvoice2.md §2.4): raw instruction ids ending in <|endofprompt|>. */
		size_t bl = ilen - strlen(COSYVOICE2_ENDOFPROMPT);
		rc = bl ? frontend_run(m->fe, p->text, bl, 0, &ir, err, errlen) : CV_OK;
		if (rc != CV_OK)
			goto out;
		for (size_t i = 0; i < ir.n; i++)
			n_instr += ir.s[i].n_ids;
		instr = malloc((n_instr + 1) * sizeof *instr);
		if (!instr) {
			rc = CV_ENOMEM;
			cv_errf(err, errlen, "out of memory (instruction)");
			goto out;
		}
		n_instr = 0;
		for (size_t i = 0; i < ir.n; i++) {
			memcpy(instr + n_instr, ir.s[i].ids, ir.s[i].n_ids * sizeof *instr);
			n_instr += ir.s[i].n_ids;
		}
		instr[n_instr++] = m->endofprompt_id;
	}
	rc = frontend_run(m->fe, body, strlen(body), p->normalize, &fr, err, errlen);
	engine_timings_set(t, "frontend", clock_ms_between(a, clock_now_ns()));
	if (rc != CV_OK)
		goto out;
	if (fr.n == 0) {
		cv_errf(err, errlen, "nothing speakable in the text");
		rc = CV_EINVAL;
		goto out;
	}
	for (size_t i = 0; i < fr.n; i++) {
		rc = cv2_check_sentence(m, spk, i, fr.n, fr.s[i].n_ids, instr, n_instr, err, errlen);
		if (rc != CV_OK)
			goto out;
	}
	for (size_t i = 0; i < fr.n; i++) {
		struct cv2_sentence se = {0};
		char e2[384];

		if (cv2_cancelled(sink)) {
			rc = CV_ECANCELED;
			goto out;
		}
		se.spk = spk;
		se.text_ids = fr.s[i].ids;
		se.n_text = fr.s[i].n_ids;
		se.instruct_ids = instr;
		se.n_instruct = n_instr;
		se.stream = p->stream;
		se.speed = p->speed > 0 ? p->speed : 1.0;
		se.run_flow = 1;
		if (se.n_text == 0)
			continue;
		/* Sentence i (from 0) runs with seed + i, so any sentence of a seeded
		 * request can be reproduced alone with seed + i as its seed. */
		if (i > 0) {
			sampler_rng_seed(&run.rng, seed + (uint64_t)i);
			torch_runtime_seed(m->rt, seed + (uint64_t)i);
		}
		e2[0] = '\0';
		rc = cv2_sentence_run(m, &run, &se, NULL, NULL, e2, sizeof e2);
		if (rc == CV_ECANCELED)
			goto out;
		if (rc != CV_OK) {
			cv_errf(err, errlen, "sentence %zu of %zu failed: %s", i + 1, fr.n, e2);
			log_warn("cosyvoice2", "sentence %zu of %zu failed: %s", i + 1, fr.n, e2);
			goto out;
		}
	}
	rc = CV_OK;
out:
	engine_timings_set(t, "llm_prefill", run.prefill_ms);
	engine_timings_set(t, "llm_decode_per_token",
			   run.n_decoded ? run.decode_ms / (double)run.n_decoded : 0.0);
	engine_timings_set(t, "llm", run.prefill_ms + run.decode_ms);
	engine_timings_set(t, "flow", run.flow_ms);
	engine_timings_set(t, "vocoder", run.voc_ms);
	if (run.first_written)
		engine_timings_set(t, "ttfa", run.ttfa_ms);
	frontend_result_free(&fr);
	frontend_result_free(&ir);
	free(instr);
	/* CPU: libtorch frees a request's tensors into malloc's heaps, which keep the pages; every
	 * longer sentence than before left the resident set at its new high. Hand the free pages back
	 * (a few ms against seconds of synthesis), so the resident set between requests is what the
	 * engine holds, not the largest request it has served. */
	if (!torch_runtime_is_cuda(m->rt))
		malloc_trim(0);
	return rc;
}

static int cv2_warmup_write(void *user, const float *pcm, size_t n)
{
	size_t *total = user;
	(void)pcm;
	*total += n;
	return 0;
}

static int cv2_be_warmup(void *impl, char *err, size_t errlen)
{
	struct cv2 *m = impl;
	struct engine_params p = {0};
	struct engine_timings t = {0};
	size_t total = 0;
	struct engine_sink sink = {cv2_warmup_write, NULL, &total};
	int rc;

	p.text = CV2_WARMUP_TEXT;
	p.speed = 1.0f;
	p.has_seed = 1;
	p.seed = 0;
	rc = cv2_be_synthesize(m, &p, &sink, &t, err, errlen);
	if (rc == CV_OK && total == 0) {
		cv_errf(err, errlen, "warm-up produced no audio");
		rc = CV_EENGINE;
	}
	return rc;
}

static void cv2_be_gauges(void *impl, struct engine_gauges *g)
{
	struct cv2 *m = impl;
	struct torch_runtime_memory mem;

	if (m->budget > 0)
		engine_gauges_add(g, "memory_budget_bytes", "Engine memory budget (memory_budget_mb).",
				  m->budget);
	if (m->mem_valid) {
		engine_gauges_add(
		    g, "memory_base_bytes",
		    "Memory the engine holds with the model and its KV cache loaded (measured at start-up).",
		    m->mem_base);
		engine_gauges_add(
		    g, "memory_workspace_bytes_per_frame",
		    "Measured flow + HiFT workspace per mel frame (linear term of the memory model).",
		    m->mem_a);
		engine_gauges_add(
		    g, "memory_workspace_bytes_per_frame_squared",
		    "Measured flow + HiFT workspace per mel frame squared (attention term of the memory "
		    "model).",
		    m->mem_b);
	}
	engine_gauges_add(g, "llm_max_positions", "KV-cache positions allocated at start-up.",
			  (double)m->max_positions);
	engine_gauges_add(g, "llm_decode_cuda_graph", "1 when LLM decode steps replay a captured CUDA graph.",
			  torch_runtime_graph_active(m->rt));
	torch_runtime_memory(m->rt, &mem);
	if (!mem.valid)
		return;
	engine_gauges_add(g, "gpu_memory_allocated_bytes",
			  "GPU memory allocated by the CUDA caching allocator.", mem.allocated);
	engine_gauges_add(g, "gpu_memory_reserved_bytes",
			  "GPU memory reserved by the CUDA caching allocator.", mem.reserved);
	engine_gauges_add(g, "gpu_memory_peak_bytes", "Peak GPU memory allocated since start.", mem.peak);
	if (mem.device_total > 0)
		engine_gauges_add(g, "gpu_memory_total_bytes", "Total memory of the GPU.", mem.device_total);
	if (mem.limit > 0)
		engine_gauges_add(g, "gpu_memory_limit_bytes",
				  "Cap of the CUDA caching allocator (cuda_memory_limit_mb).", mem.limit);
}

const struct engine_backend engine_backend_cosyvoice2 = {
    .name = "cosyvoice2",
    .open = cv2_be_open,
    .close = cv2_be_close,
    .display_name = cv2_be_name,
    .describe = cv2_be_describe,
    .sample_rate = cv2_be_rate,
    .speaker_count = cv2_be_count,
    .speaker_at = cv2_be_at,
    .default_speaker = cv2_be_default,
    .warmup = cv2_be_warmup,
    .synthesize = cv2_be_synthesize,
    .read_gauges = cv2_be_gauges,
    .reload_voices = cv2_be_reload,
    .check_voice = cv2_be_check,
};
