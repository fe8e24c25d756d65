/* engine/cosyvoice2/cv2_pipeline.c — one sentence through the model: prompt layout, LLM prefill and
 * decode with the C sampler, flow and HiFT, buffered or on the streaming schedule (docs/cosyvoice2.md §3-§6).
 */
#include "engine/cosyvoice2/cv2_impl.h"

int cv2_cancelled(const struct engine_sink *sink)
{
	return sink && sink->cancelled && sink->cancelled(sink->user);
}

static int cv2_emit(struct cv2_run *run, const float *pcm, size_t n)
{
	if (!n)
		return CV_OK;
	if (!run->first_written) {
		run->first_written = 1;
		run->ttfa_ms = clock_ms_between(run->t0, clock_now_ns());
	}
	if (run->sink->write(run->sink->user, pcm, n) != 0)
		return CV_ECANCELED;
	return CV_OK;
}

/* A model output with NaN or inf fails the sentence (HTTP 500, engine_errors_total) instead of
 * reaching the sampler or the client as noise: in an fp16 bundle that means a value left fp16's
 * range (|x| > 65504), which bf16 (same range as fp32) or fp32 avoids. */
static int cv2_check_finite(const struct cv2 *m, const float *v, size_t n, const char *what, char *err,
			    size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			cv_errf(err, errlen,
				"numeric overflow: %s returned a non-finite value (%s at index %zu)%s", what,
				isnan(v[i]) ? "NaN" : "inf", i,
				strcmp(m->dtype, "fp16") == 0
				    ? "; an fp16 bundle exceeded fp16's range: export with --dtype bf16 "
				      "(Ampere or newer) or fp32"
				    : "");
			return CV_EENGINE;
		}
	}
	return CV_OK;
}

/* HiFT on mel[mel_bins][t]; with zero noise when the run asks for it. */
static int cv2_vocode(struct cv2 *m, struct cv2_run *run, const float *mel, size_t t,
		      const float *cache_source, size_t n_cache, float **speech, size_t *n_speech,
		      float **source, size_t *n_source, char *err, size_t errlen)
{
	float *noise = NULL;
	size_t n_noise = 0;
	int64_t a = clock_now_ns();
	int rc;

	if (run->zero_noise) {
		n_noise = t * m->samples_per_frame * (m->nb_harmonics + 1);
		noise = calloc(n_noise ? n_noise : 1, sizeof *noise);
		if (!noise) {
			cv_errf(err, errlen, "out of memory (vocoder noise)");
			return CV_ENOMEM;
		}
	}
	rc = torch_runtime_hift(m->rt, mel, m->mel_bins, t, cache_source, n_cache, noise, n_noise, speech,
				n_speech, source, n_source, err, errlen);
	free(noise);
	if (rc == CV_OK)
		rc = cv2_check_finite(m, *speech, *n_speech, "hift_inference", err, errlen);
	run->voc_ms += clock_ms_between(a, clock_now_ns());
	return rc;
}

static int cv2_flow(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk, const int32_t *tokens,
		    size_t n, int streaming, int finalize, float **mel, size_t *frames, char *err,
		    size_t errlen)
{
	struct torch_runtime_flow_args a = {0};
	int64_t t = clock_now_ns();
	int rc;

	a.tokens = tokens;
	a.n_tokens = n;
	a.prompt_tokens = spk->prompt_tokens;
	a.n_prompt_tokens = spk->n_prompt_tokens;
	a.prompt_feat = spk->prompt_mel;
	a.n_prompt_feat = spk->n_prompt_mel;
	a.embedding = spk->embedding;
	a.spk_dim = m->spk_dim;
	a.mel_bins = m->mel_bins;
	a.streaming = streaming;
	a.finalize = finalize;
	rc = torch_runtime_flow(m->rt, &a, mel, frames, err, errlen);
	run->flow_ms += clock_ms_between(t, clock_now_ns());
	if (rc == CV_OK)
		rc = cv2_check_finite(m, *mel, *frames * m->mel_bins, "flow_inference", err, errlen);
	return rc;
}

/* One streaming chunk (docs/cosyvoice2.md §6.3): flow on the prefix, keep the new frames,
 * HiFT with the cache, cross-fade, emit. */
static int cv2_stream_chunk(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk,
			    const int32_t *tokens, const struct cv2_stream_chunk *ch, char *err,
			    size_t errlen)
{
	float *mel = NULL, *sub = NULL, *in = NULL, *speech = NULL, *source = NULL;
	size_t frames = 0, t_new, t_in = 0, n_speech = 0, n_source = 0, emit = 0;
	int rc;

	rc = cv2_flow(m, run, spk, tokens, ch->n_tokens, ch->streaming, ch->finalize, &mel, &frames, err,
		      errlen);
	if (rc != CV_OK)
		goto out;
	if (frames < ch->mel_skip + (ch->finalize ? 1 : ch->mel_new)) {
		cv_errf(err, errlen, "flow returned %zu mel frames, chunk needs %zu..%zu", frames,
			ch->mel_skip, ch->mel_skip + ch->mel_new);
		rc = CV_EENGINE;
		goto out;
	}
	t_new = ch->finalize ? frames - ch->mel_skip : ch->mel_new;
	sub = malloc(m->mel_bins * t_new * sizeof *sub);
	if (!sub) {
		rc = CV_ENOMEM;
		cv_errf(err, errlen, "out of memory (mel chunk)");
		goto out;
	}
	for (size_t c = 0; c < m->mel_bins; c++)
		memcpy(sub + c * t_new, mel + c * frames + ch->mel_skip, t_new * sizeof *sub);
	rc = cv2_hift_cache_mel_input(&m->hc, sub, t_new, &in, &t_in);
	if (rc != CV_OK) {
		cv_errf(err, errlen, "out of memory (HiFT input)");
		goto out;
	}
	rc = cv2_vocode(m, run, in, t_in, m->hc.valid ? m->hc.source : NULL,
			m->hc.valid ? CV2_STREAM_SOURCE_CACHE : 0, &speech, &n_speech, &source, &n_source,
			err, errlen);
	if (rc != CV_OK)
		goto out;
	rc = cv2_hift_cache_update(&m->hc, in, t_in, speech, n_speech, source, n_source, ch->finalize, &emit);
	if (rc != CV_OK) {
		cv_errf(err, errlen, "streaming chunk %zu too short for the HiFT cache (%zu samples)",
			ch->index, n_speech);
		goto out;
	}
	rc = cv2_emit(run, speech, emit);
out:
	free(mel);
	free(sub);
	free(in);
	free(speech);
	free(source);
	return rc;
}

/* Buffered token2wav (docs/cosyvoice2.md §6.2): flow (full attention), speed, HiFT. */
int cv2_buffered(struct cv2 *m, struct cv2_run *run, const struct cv2_speaker *spk, const int32_t *tokens,
		 size_t n, double speed, char *err, size_t errlen)
{
	float *mel = NULL, *fast = NULL, *speech = NULL;
	size_t frames = 0, n_speech = 0;
	int rc;

	rc = cv2_flow(m, run, spk, tokens, n, 0, 1, &mel, &frames, err, errlen);
	if (rc != CV_OK)
		goto out;
	if (speed != 1.0) {
		size_t t2 = 0;
		rc = cv2_stream_speed_mel(mel, m->mel_bins, frames, speed, &fast, &t2);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "speed %.3g: cannot resample %zu mel frames", speed, frames);
			goto out;
		}
		free(mel);
		mel = fast;
		fast = NULL;
		frames = t2;
	}
	rc = cv2_vocode(m, run, mel, frames, NULL, 0, &speech, &n_speech, NULL, NULL, err, errlen);
	if (rc != CV_OK)
		goto out;
	rc = cv2_emit(run, speech, n_speech);
out:
	free(mel);
	free(fast);
	free(speech);
	return rc;
}

struct cv2_prompt cv2_prompt_layout(const struct cv2_speaker *spk, const int32_t *instruct_ids,
				    size_t n_instruct)
{
	struct cv2_prompt p = {NULL, NULL, 0, 0};
	if (instruct_ids) {
		p.text = instruct_ids;
		p.n_text = n_instruct;
	} else if (!spk->sft && !spk->cross_lingual) {
		p.text = spk->prompt_text;
		p.n_text = spk->n_prompt_text;
		p.speech = spk->prompt_tokens;
		p.n_speech = spk->n_prompt_tokens;
	}
	return p;
}

/* KV-cache positions a sentence of n_text ids needs at the LLM's maximum length. */
size_t cv2_positions(const struct cv2_prompt *p, size_t n_text)
{
	return p->n_text + n_text + p->n_speech + 2 + sampler_max_len(n_text);
}

/* One sentence: LLM (prompt layout §3.3, lengths §3.4, sampling §3.5) with
 * streaming chunks cut as soon as they are due, then the final/buffered
 * token2wav. *tokens_out (optional) receives the generated tokens. */
int cv2_sentence_run(struct cv2 *m, struct cv2_run *run, const struct cv2_sentence *se, int32_t **tokens_out,
		     size_t *n_out, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = se->spk;
	struct cv2_prompt pr = cv2_prompt_layout(spk, se->instruct_ids, se->n_instruct);
	const int32_t *ptext = pr.text, *pspeech = pr.speech;
	size_t n_ptext = pr.n_text, n_pspeech = pr.n_speech, min_len, max_len, n = 0, pos;
	int32_t *text = NULL, *tokens = NULL;
	struct cv2_stream_sched sched;
	struct cv2_stream_chunk ch;
	int64_t a;
	int rc;

	if (se->n_text == 0) {
		cv_errf(err, errlen, "empty sentence");
		return CV_EINVAL;
	}
	min_len = sampler_min_len(se->n_text);
	max_len = sampler_max_len(se->n_text);
	text = malloc((n_ptext + se->n_text) * sizeof *text);
	tokens = malloc((max_len ? max_len : 1) * sizeof *tokens);
	if (!text || !tokens) {
		cv_errf(err, errlen, "out of memory (sentence of %zu ids)", se->n_text);
		rc = CV_ENOMEM;
		goto out;
	}
	if (n_ptext)
		memcpy(text, ptext, n_ptext * sizeof *text);
	memcpy(text + n_ptext, se->text_ids, se->n_text * sizeof *text);
	cv2_stream_sched_init(&sched, spk->n_prompt_tokens);
	cv2_hift_cache_reset(&m->hc);

	rc = torch_runtime_llm_begin(m->rt, cv2_positions(&pr, se->n_text), err, errlen);
	if (rc != CV_OK)
		goto out;
	a = clock_now_ns();
	rc = torch_runtime_llm_prefill(m->rt, text, n_ptext + se->n_text, pspeech, n_pspeech, m->logp,
				       m->vocab, err, errlen);
	run->prefill_ms += clock_ms_between(a, clock_now_ns());
	if (rc == CV_OK)
		rc = cv2_check_finite(m, m->logp, m->vocab, "llm_prefill", err, errlen);
	if (rc != CV_OK)
		goto out;
	pos = n_ptext + se->n_text + n_pspeech + 2;
	for (size_t i = 0; i < max_len; i++) {
		int32_t tok;
		struct sampler_params sp = m->sp;

		if (cv2_cancelled(run->sink)) {
			rc = CV_ECANCELED;
			goto out;
		}
		sp.greedy = run->greedy;
		rc = sampler_ras(m->logp, m->vocab, tokens, n, &sp, &run->rng, i < min_len, &tok);
		if (rc != CV_OK) {
			cv_errf(err, errlen, "sampling failed at step %zu (non-finite log-probabilities?)",
				i);
			rc = CV_EENGINE;
			goto out;
		}
		if (sampler_is_stop(&sp, tok))
			break;
		tokens[n++] = tok;
		if (se->stream && se->run_flow) {
			while (cv2_stream_sched_next(&sched, n, 0, &ch)) {
				rc = cv2_stream_chunk(m, run, spk, tokens, &ch, err, errlen);
				if (rc != CV_OK)
					goto out;
				if (cv2_cancelled(run->sink)) {
					rc = CV_ECANCELED;
					goto out;
				}
			}
		}
		if (i + 1 == max_len)
			break;
		a = clock_now_ns();
		rc = torch_runtime_llm_decode(m->rt, tok, pos++, m->logp, m->vocab, err, errlen);
		run->decode_ms += clock_ms_between(a, clock_now_ns());
		run->n_decoded++;
		if (rc == CV_OK)
			rc = cv2_check_finite(m, m->logp, m->vocab, "llm_decode", err, errlen);
		if (rc != CV_OK)
			goto out;
	}
	if (se->run_flow && n == 0) {
		cv_errf(err, errlen, "the LLM produced no speech tokens");
		rc = CV_EENGINE;
		goto out;
	}
	if (se->run_flow) {
		if (se->stream) {
			while (cv2_stream_sched_next(&sched, n, 1, &ch)) {
				rc = cv2_stream_chunk(m, run, spk, tokens, &ch, err, errlen);
				if (rc != CV_OK)
					goto out;
				if (cv2_cancelled(run->sink)) {
					rc = CV_ECANCELED;
					goto out;
				}
			}
		} else {
			rc = cv2_buffered(m, run, spk, tokens, n, se->speed, err, errlen);
			if (rc != CV_OK)
				goto out;
		}
	}
	if (tokens_out) {
		*tokens_out = tokens;
		*n_out = n;
		tokens = NULL;
	}
	rc = CV_OK;
out:
	free(text);
	free(tokens);
	return rc;
}

void cv2_run_init(struct cv2 *m, struct cv2_run *run, const struct engine_sink *sink, uint64_t seed)
{
	memset(run, 0, sizeof *run);
	run->sink = sink;
	run->t0 = clock_now_ns();
	sampler_rng_seed(&run->rng, seed);
	torch_runtime_seed(m->rt, seed);
}

int cv2_null_write(void *user, const float *pcm, size_t n)
{
	(void)user;
	(void)pcm;
	(void)n;
	return 0;
}

int cv2_llm_generate(struct cv2 *m, const struct cv2_llm_request *r, int32_t **tokens, size_t *n_tokens,
		     char *err, size_t errlen)
{
	struct engine_sink sink = {cv2_null_write, NULL, NULL};
	struct cv2_sentence se = {0};
	struct cv2_run run;

	*tokens = NULL;
	*n_tokens = 0;
	se.spk = cv2_speaker_find(m, r->speaker);
	if (!se.spk) {
		cv_errf(err, errlen, "unknown speaker '%s'", r->speaker);
		return CV_ENOTFOUND;
	}
	se.text_ids = r->text_ids;
	se.n_text = r->n_text;
	se.instruct_ids = r->instruct_ids;
	se.n_instruct = r->n_instruct;
	se.speed = 1.0;
	cv2_run_init(m, &run, &sink, r->seed);
	run.greedy = r->greedy;
	return cv2_sentence_run(m, &run, &se, tokens, n_tokens, err, errlen);
}

int cv2_token2wav(struct cv2 *m, const char *speaker, const int32_t *tokens, size_t n_tokens, int stream,
		  double speed, int zero_noise, const struct engine_sink *sink, char *err, size_t errlen)
{
	const struct cv2_speaker *spk = cv2_speaker_find(m, speaker);
	struct cv2_run run;
	struct cv2_stream_sched sched;
	struct cv2_stream_chunk ch;
	int rc;

	if (!spk) {
		cv_errf(err, errlen, "unknown speaker '%s'", speaker);
		return CV_ENOTFOUND;
	}
	if (!n_tokens) {
		cv_errf(err, errlen, "no tokens");
		return CV_EINVAL;
	}
	cv2_run_init(m, &run, sink, 0);
	run.zero_noise = zero_noise;
	if (!stream)
		return cv2_buffered(m, &run, spk, tokens, n_tokens, speed, err, errlen);
	cv2_stream_sched_init(&sched, spk->n_prompt_tokens);
	cv2_hift_cache_reset(&m->hc);
	for (int done = 0; done <= 1; done++) {
		while (cv2_stream_sched_next(&sched, n_tokens, done, &ch)) {
			rc = cv2_stream_chunk(m, &run, spk, tokens, &ch, err, errlen);
			if (rc != CV_OK)
				return rc;
		}
	}
	return CV_OK;
}
