/* engine/cosyvoice2/cv2_memory.c — the memory guard (docs/cosyvoice2.md §6.6): two probe syntheses at
 * start-up fit need(T) = base + a*T + b*T^2 over mel frames T; a sentence that could need more than the
 * budget is refused before any audio. */
#include "engine/cosyvoice2/cv2_impl.h"

/* Mel frames flow and HiFT see for n speech tokens with this speaker. */
static double cv2_frames(const struct cv2_speaker *spk, size_t n)
{
	return 2.0 * (double)(spk->n_prompt_tokens + n);
}

static double cv2_need(const struct cv2 *m, double frames)
{
	return m->mem_base + m->mem_a * frames + m->mem_b * frames * frames;
}

/* One buffered flow + HiFT run on n synthetic tokens; *work = peak - start. */
static int cv2_probe_one(struct cv2 *m, const struct cv2_speaker *spk, size_t n, double *work, char *err,
			 size_t errlen)
{
	struct engine_sink sink = {cv2_null_write, NULL, NULL};
	struct torch_runtime_usage u0, u1;
	struct cv2_run run;
	int32_t *tok = xmalloc(n * sizeof *tok);
	int rc;

	for (size_t i = 0; i < n; i++)
		tok[i] = (int32_t)((i * 2654435761u) % SAMPLER_SPEECH_TOKENS);
	torch_runtime_usage_reset(m->rt);
	rc = torch_runtime_usage(m->rt, &u0);
	cv2_run_init(m, &run, &sink, 0);
	if (rc == CV_OK)
		rc = cv2_buffered(m, &run, spk, tok, n, 1.0, err, errlen);
	if (rc == CV_OK)
		rc = torch_runtime_usage(m->rt, &u1);
	free(tok);
	if (rc != CV_OK)
		return rc;
	*work = u1.peak > u0.current ? u1.peak - u0.current : 0.0;
	return CV_OK;
}

/* Start-up measurement of the memory model (see the design note). */
int cv2_probe_memory(struct cv2 *m, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = &m->spk[m->default_spk];
	struct torch_runtime_usage u;
	/* CUDA: cheap, and long enough to see the quadratic term; CPU: linear
	 * model (see below), short probes keep the start-up short. */
	int cuda = torch_runtime_is_cuda(m->rt);
	size_t n1 = cuda ? 50 : 25, n2 = cuda ? 500 : 100;
	double w1 = 0, w2 = 0, t1 = cv2_frames(spk, n1), t2 = cv2_frames(spk, n2), dummy;
	int64_t a = clock_now_ns();
	int rc;

	if (m->budget <= 0)
		return CV_OK;
	/* The first run pays one-time costs (allocator pools, kernels): not measured. */
	if ((rc = cv2_probe_one(m, spk, cuda ? n2 : n1, &dummy, err, errlen)) != CV_OK ||
	    (rc = cv2_probe_one(m, spk, n1, &w1, err, errlen)) != CV_OK ||
	    (rc = cv2_probe_one(m, spk, n2, &w2, err, errlen)) != CV_OK) {
		log_warn("cosyvoice2", "memory probe failed: %s", err);
		return rc;
	}
	torch_runtime_usage_reset(m->rt);
	if (torch_runtime_usage(m->rt, &u) != CV_OK) {
		log_warn("cosyvoice2", "memory guard off: this platform reports no memory usage");
		return CV_OK;
	}
	m->mem_base = u.current;
	/* w = a*t + b*t^2 through both points (CUDA: the allocator's exact
	 * figures). The resident set is too noisy for a quadratic term (repeated
	 * start-ups gave 0..126 B/frame^2), so the CPU uses the larger per-frame
	 * ratio, linear; so does a negative coefficient (noise). */
	m->mem_b = (w2 / t2 - w1 / t1) / (t2 - t1);
	m->mem_a = w1 / t1 - m->mem_b * t1;
	if (!cuda || m->mem_b < 0 || m->mem_a < 0) {
		m->mem_b = 0;
		m->mem_a = w1 / t1 > w2 / t2 ? w1 / t1 : w2 / t2;
	}
	m->mem_valid = 1;
	log_info("cosyvoice2",
		 "memory model (%s, %.0f ms): base %.0f MiB (weights + KV cache), workspace %.1f KiB/frame + "
		 "%.3f B/frame^2 (probes %.0f and %.0f frames: %.1f and %.1f MiB); 30 s of audio -> %.0f MiB "
		 "of a %.0f MiB budget",
		 cuda ? "CUDA caching allocator" : "resident set", clock_ms_between(a, clock_now_ns()),
		 m->mem_base / CV2_MIB, m->mem_a / 1024.0, m->mem_b, t1, t2, w1 / CV2_MIB, w2 / CV2_MIB,
		 cv2_need(m, 1500.0 + cv2_frames(spk, 0)) / CV2_MIB, m->budget / CV2_MIB);
	if (m->mem_base > m->budget) {
		cv_errf(err, errlen,
			"the model needs %.0f MiB with its KV cache (llm_max_positions %zu), over "
			"memory_budget_mb %.0f: raise the budget, lower llm_max_positions or use an fp16 "
			"bundle on cuda",
			m->mem_base / CV2_MIB, m->max_positions, m->budget / CV2_MIB);
		return CV_EBUDGET;
	}
	return CV_OK;
}

double cv2_memory_predict(const struct cv2 *m, const char *speaker, size_t n_text)
{
	const struct cv2_speaker *spk = cv2_speaker_find(m, speaker);
	if (!spk || !m->mem_valid)
		return 0;
	return cv2_need(m, cv2_frames(spk, sampler_max_len(n_text)));
}

/* Before any audio: every sentence must fit the KV cache and the budget. */
int cv2_check_sentence(const struct cv2 *m, const struct cv2_speaker *spk, size_t i, size_t n_sent,
		       size_t n_text, const int32_t *instr, size_t n_instr, char *err, size_t errlen)
{
	struct cv2_prompt pr = cv2_prompt_layout(spk, instr, n_instr);
	size_t max_len = sampler_max_len(n_text);
	size_t need_pos = cv2_positions(&pr, n_text);
	double need;

	if (need_pos > m->max_positions) {
		cv_errf(err, errlen,
			"sentence %zu of %zu (%zu text tokens) could need %zu LLM positions, over "
			"llm_max_positions %zu: split it with punctuation or raise llm_max_positions",
			i + 1, n_sent, n_text, need_pos, m->max_positions);
		return CV_E2BIG;
	}
	if (!m->mem_valid) /* no guard: memory_budget_mb 0, or nothing to measure with */
		return CV_OK;
	need = cv2_need(m, cv2_frames(spk, max_len));
	if (need > m->budget) {
		cv_errf(err, errlen,
			"memory: sentence %zu of %zu could need %.0f MiB (up to %.1f s of audio), over "
			"memory_budget_mb %.0f: shorten the sentence or raise the budget",
			i + 1, n_sent, need / CV2_MIB, (double)max_len / 25.0, m->budget / CV2_MIB);
		return CV_EBUDGET;
	}
	return CV_OK;
}
