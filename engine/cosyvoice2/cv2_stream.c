/* engine/cosyvoice2/cv2_stream.c — CosyVoice2 streaming bookkeeping (docs/cosyvoice2.md §6.2/§6.3).
 *
 * DESIGN: the reference interleaves this bookkeeping with model calls and a
 * 100 ms polling loop inside CosyVoice2Model.tts()/token2wav(). Here it is
 * pulled out into pure functions and two tiny state structs so that the
 * engine's orchestration stays linear and each rule can be tested against a
 * Python transcription of the reference (tests/py/stream_ref.py) without a
 * model: the chunk schedule depends only on how many tokens exist and whether
 * the LLM finished, never on poll timing; the cross-fade uses double
 * arithmetic as numpy/torch float64 does; the speed change copies PyTorch's
 * CPU linear-interpolation index/weight computation in float32.
 */
#include "engine/cosyvoice2/cv2_stream.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"

size_t cv2_stream_prompt_pad(size_t n_prompt_tokens, size_t hop)
{
	if (hop == 0)
		return 0;
	return (hop - n_prompt_tokens % hop) % hop;
}

void cv2_stream_sched_init(struct cv2_stream_sched *s, size_t n_prompt_tokens)
{
	memset(s, 0, sizeof *s);
	s->n_prompt_tokens = n_prompt_tokens;
	s->token_hop = CV2_STREAM_TOKEN_HOP;
	s->prompt_pad = cv2_stream_prompt_pad(n_prompt_tokens, CV2_STREAM_TOKEN_HOP);
}

int cv2_stream_sched_next(struct cv2_stream_sched *s, size_t n_generated, int llm_done,
			  struct cv2_stream_chunk *out)
{
	if (s->done || n_generated < s->token_offset)
		return 0;
	size_t hop = s->token_offset == 0 ? s->token_hop + s->prompt_pad : s->token_hop;
	memset(out, 0, sizeof *out);
	out->index = s->n_chunks;
	out->token_offset = s->token_offset;
	out->mel_skip = CV2_STREAM_TOKEN_MEL_RATIO * s->token_offset;
	if (n_generated - s->token_offset >= hop + CV2_STREAM_PRE_LOOKAHEAD) {
		out->hop = hop;
		out->n_tokens = s->token_offset + hop + CV2_STREAM_PRE_LOOKAHEAD;
		out->mel_new = CV2_STREAM_TOKEN_MEL_RATIO * hop;
		out->finalize = 0;
		out->streaming = 1;
		s->token_offset += hop;
		size_t next = s->token_hop * CV2_STREAM_SCALE;
		s->token_hop = next < CV2_STREAM_TOKEN_MAX_HOP ? next : CV2_STREAM_TOKEN_MAX_HOP;
		s->n_chunks++;
		return 1;
	}
	if (!llm_done)
		return 0;
	out->hop = n_generated - s->token_offset;
	out->n_tokens = n_generated;
	out->mel_new = CV2_STREAM_TOKEN_MEL_RATIO * out->hop;
	out->finalize = 1;
	out->streaming = 0;
	s->token_offset = n_generated;
	s->n_chunks++;
	s->done = 1;
	return 1;
}

void cv2_stream_hamming(double *w, size_t m)
{
	if (m == 0)
		return;
	if (m == 1) {
		w[0] = 1.0;
		return;
	}
	for (size_t i = 0; i < m; i++) {
		double n = (double)(2 * (long long)i + 1 - (long long)m);
		w[i] = 0.54 + 0.46 * cos(M_PI * n / (double)(m - 1));
	}
}

void cv2_stream_fade_in_out(float *speech, const float *prev_tail, size_t n, const double *window)
{
	for (size_t i = 0; i < n; i++)
		speech[i] = (float)((double)speech[i] * window[i] + (double)prev_tail[i] * window[n + i]);
}

void cv2_hift_cache_init(struct cv2_hift_cache *c, size_t n_mels)
{
	memset(c, 0, sizeof *c);
	c->n_mels = n_mels;
	c->mel = xcalloc(n_mels * CV2_STREAM_MEL_CACHE, sizeof *c->mel);
	c->source = xcalloc(CV2_STREAM_SOURCE_CACHE, sizeof *c->source);
	c->speech = xcalloc(CV2_STREAM_SOURCE_CACHE, sizeof *c->speech);
	c->window = xcalloc(CV2_STREAM_WINDOW_LEN, sizeof *c->window);
	cv2_stream_hamming(c->window, CV2_STREAM_WINDOW_LEN);
}

void cv2_hift_cache_reset(struct cv2_hift_cache *c)
{
	c->valid = 0;
}

void cv2_hift_cache_free(struct cv2_hift_cache *c)
{
	if (!c)
		return;
	free(c->mel);
	free(c->source);
	free(c->speech);
	free(c->window);
	c->mel = c->source = c->speech = NULL;
	c->window = NULL;
	c->valid = 0;
}

int cv2_hift_cache_mel_input(const struct cv2_hift_cache *c, const float *mel, size_t t_new, float **out,
			     size_t *out_t)
{
	*out = NULL;
	size_t pre = c->valid ? CV2_STREAM_MEL_CACHE : 0, t = pre + t_new;
	if (t == 0 || c->n_mels == 0 || (t_new && !mel))
		return CV_EINVAL;
	float *o = malloc(c->n_mels * t * sizeof *o);
	if (!o)
		return CV_ENOMEM;
	for (size_t ch = 0; ch < c->n_mels; ch++) {
		if (pre)
			memcpy(o + ch * t, c->mel + ch * CV2_STREAM_MEL_CACHE, pre * sizeof *o);
		if (t_new)
			memcpy(o + ch * t + pre, mel + ch * t_new, t_new * sizeof *o);
	}
	*out = o;
	*out_t = t;
	return CV_OK;
}

int cv2_hift_cache_update(struct cv2_hift_cache *c, const float *mel_in, size_t t_in, float *speech,
			  size_t n_speech, const float *source, size_t n_source, int finalize,
			  size_t *emit_len)
{
	const size_t n = CV2_STREAM_SOURCE_CACHE;
	if (c->valid && n_speech < n)
		return CV_EINVAL;
	if (!finalize && (t_in < CV2_STREAM_MEL_CACHE || n_speech < n || n_source < n || !mel_in || !source))
		return CV_EINVAL;
	if (c->valid)
		cv2_stream_fade_in_out(speech, c->speech, n, c->window);
	if (finalize) {
		*emit_len = n_speech;
		return CV_OK;
	}
	for (size_t ch = 0; ch < c->n_mels; ch++)
		memcpy(c->mel + ch * CV2_STREAM_MEL_CACHE, mel_in + ch * t_in + (t_in - CV2_STREAM_MEL_CACHE),
		       CV2_STREAM_MEL_CACHE * sizeof *c->mel);
	memcpy(c->source, source + (n_source - n), n * sizeof *c->source);
	memcpy(c->speech, speech + (n_speech - n), n * sizeof *c->speech);
	c->valid = 1;
	*emit_len = n_speech - n;
	return CV_OK;
}

size_t cv2_stream_speed_frames(size_t t, double speed)
{
	if (!(speed > 0.0) || !isfinite(speed))
		return 0;
	double v = (double)t / speed;
	if (!(v < 9.0e15))
		return 0;
	return (size_t)v;
}

int cv2_stream_speed_mel(const float *mel, size_t n_mels, size_t t, double speed, float **out, size_t *out_t)
{
	*out = NULL;
	if (!mel || n_mels == 0 || t == 0 || !(speed > 0.0) || !isfinite(speed))
		return CV_EINVAL;
	size_t ot = cv2_stream_speed_frames(t, speed);
	if (ot == 0 || ot > ((size_t)1 << 31) || n_mels > SIZE_MAX / sizeof(float) / ot)
		return CV_EINVAL;
	float *o = malloc(n_mels * ot * sizeof *o);
	if (!o)
		return CV_ENOMEM;
	/* PyTorch upsample_linear1d (CPU), align_corners=False, explicit size:
	 * scale = (float)in / out; src = scale * (i + 0.5) - 0.5, clamped at 0;
	 * i0 = min(floor(src), in - 1); lambda = clamp(src - i0, 0, 1);
	 * i1 = i0 + (i0 < in - 1); y = x[i0] * (1 - lambda) + x[i1] * lambda. */
	float scale = (float)t / (float)ot;
	for (size_t i = 0; i < ot; i++) {
		float src = scale * ((float)i + 0.5f) - 0.5f;
		if (src < 0.0f)
			src = 0.0f;
		size_t i0 = (size_t)floorf(src);
		if (i0 > t - 1)
			i0 = t - 1;
		float l1 = src - (float)i0;
		l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
		float l0 = 1.0f - l1;
		size_t i1 = i0 + (i0 < t - 1 ? 1 : 0);
		for (size_t ch = 0; ch < n_mels; ch++)
			o[ch * ot + i] = mel[ch * t + i0] * l0 + mel[ch * t + i1] * l1;
	}
	*out = o;
	*out_t = ot;
	return CV_OK;
}
