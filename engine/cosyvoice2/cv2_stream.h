/* engine/cosyvoice2/cv2_stream.h — CosyVoice2 streaming bookkeeping (docs/cosyvoice2.md §6.2, §6.3, §5.1).
 *
 * Pure functions and small per-request state, no model calls:
 *  - the token hop schedule: first hop 25 + prompt pad, then 50, 100, 100...
 *    (reset per request), chunk when n_generated - offset >= hop + 3
 *    lookahead; final chunk (finalize, full attention) on all tokens when the
 *    LLM is done and fewer than hop + 3 remain;
 *  - which tokens feed each flow call and which mel frames of its output are
 *    new (2 per token from 2*token_offset on);
 *  - the HiFT cache (8 mel frames, 3840 source samples, 3840 speech samples)
 *    and the symmetric Hamming(7680) cross-fade (tools/export/cosyvoice2/hift.py
 *    fade_in_out: float64 arithmetic, float32 result);
 *  - the speed change of non-streaming synthesis: F.interpolate(mel,
 *    size=int(T/speed), mode='linear', align_corners=False).
 *
 * Mel layout everywhere: channels-first, mel[c * T + t] (torch (1, C, T)).
 */
#ifndef CV_ENGINE_CV2_STREAM_H
#define CV_ENGINE_CV2_STREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CV2_STREAM_TOKEN_HOP	     25	 /* token_hop_len (= training chunk_size) */
#define CV2_STREAM_TOKEN_MAX_HOP     100 /* token_max_hop_len */
#define CV2_STREAM_SCALE	     2	 /* stream_scale_factor */
#define CV2_STREAM_PRE_LOOKAHEAD     3	 /* flow.pre_lookahead_len */
#define CV2_STREAM_TOKEN_MEL_RATIO   2	 /* mel frames per token */
#define CV2_STREAM_SAMPLES_PER_FRAME 480
#define CV2_STREAM_MEL_CACHE	     8	  /* mel_cache_len (frames) */
#define CV2_STREAM_SOURCE_CACHE	     3840 /* source_cache_len = 8 * 480 samples */
#define CV2_STREAM_WINDOW_LEN	     7680 /* speech_window = hamming(2 * 3840) */

/* ---- token schedule ---------------------------------------------------- */

struct cv2_stream_sched {
	size_t n_prompt_tokens; /* flow prompt tokens P (0 for SFT voices) */
	size_t prompt_pad;	/* ceil(P/25)*25 - P */
	size_t token_hop;	/* current token_hop_len: 25, 50, 100 */
	size_t token_offset;	/* generated tokens already vocoded */
	size_t n_chunks;	/* chunks planned so far */
	int done;		/* the final chunk was planned */
};

/* One flow + HiFT call. The flow gets the prompt tokens plus generated
 * tokens [0, n_tokens); for a non-final chunk the last 3 of them are
 * lookahead context (finalize=0, streaming=1); the final chunk has
 * finalize=1, streaming=0 (full attention). Keep the flow's output mel
 * frames from mel_skip on: mel_new of them (for the final chunk
 * mel_new = 2 * (n_tokens - token_offset)). */
struct cv2_stream_chunk {
	size_t index;	     /* 0, 1, ... */
	size_t token_offset; /* offset before this chunk */
	size_t hop;	     /* tokens this chunk makes audible (final: the rest) */
	size_t n_tokens;     /* generated tokens fed to the flow */
	size_t mel_skip;     /* = 2 * token_offset */
	size_t mel_new;	     /* = 2 * hop */
	int finalize;
	int streaming;
};

/* ceil(P / hop) * hop - P. */
size_t cv2_stream_prompt_pad(size_t n_prompt_tokens, size_t hop);
/* Per-request reset: hop 25, offset 0. */
void cv2_stream_sched_init(struct cv2_stream_sched *s, size_t n_prompt_tokens);
/* Poll after new tokens or when the LLM ends (n_generated = tokens emitted
 * so far, stop ids excluded; llm_done = 1 once no more will come). Returns 1
 * and fills *out when a chunk is due now (call again: several may be due),
 * 0 when nothing is due (or after the final chunk: s->done). The schedule is
 * the reference's and does not depend on how often this is polled. */
int cv2_stream_sched_next(struct cv2_stream_sched *s, size_t n_generated, int llm_done,
			  struct cv2_stream_chunk *out);

/* ---- HiFT cache and cross-fade ----------------------------------------- */

/* numpy.hamming(m) (symmetric) into w[0..m): 0.54 + 0.46*cos(pi*n/(m-1)),
 * n = 1-m, 3-m, ..., m-1; m == 1 gives 1. */
void cv2_stream_hamming(double *w, size_t m);
/* fade_in_out: speech[i] = (float)(speech[i]*w[i] + prev_tail[i]*w[n+i])
 * for i < n (double arithmetic), window = hamming(2n). n <= n_speech. */
void cv2_stream_fade_in_out(float *speech, const float *prev_tail, size_t n, const double *window);

struct cv2_hift_cache {
	size_t n_mels;	/* 80 */
	int valid;	/* a previous non-final chunk left a cache */
	float *mel;	/* [n_mels][CV2_STREAM_MEL_CACHE] */
	float *source;	/* [CV2_STREAM_SOURCE_CACHE] */
	float *speech;	/* [CV2_STREAM_SOURCE_CACHE] */
	double *window; /* hamming(CV2_STREAM_WINDOW_LEN) */
};

/* Allocate (xmalloc) for n_mels bins; starts empty. */
void cv2_hift_cache_init(struct cv2_hift_cache *c, size_t n_mels);
/* Back to empty (per request). */
void cv2_hift_cache_reset(struct cv2_hift_cache *c);
/* Frees the buffers; safe on a zeroed struct. */
void cv2_hift_cache_free(struct cv2_hift_cache *c);

/* The HiFT input for new mel frames mel[n_mels][t_new]: with a cache the 8
 * cached frames are prepended (*out_t = 8 + t_new), else a copy. *out is
 * malloc'd (CV_ENOMEM). The matching cache_source for hift is
 * c->valid ? c->source (CV2_STREAM_SOURCE_CACHE samples) : empty. */
int cv2_hift_cache_mel_input(const struct cv2_hift_cache *c, const float *mel, size_t t_new, float **out,
			     size_t *out_t);
/* After hift ran on the cache_mel_input mel (mel_in, t_in frames) and gave
 * speech[n_speech] and source[n_source]: cross-fade the start of speech in
 * place when a cache exists; then for a non-final chunk store the new cache
 * (last 8 frames of mel_in, last 3840 source and speech samples) and set
 * *emit_len = n_speech - 3840; for the final chunk *emit_len = n_speech and
 * the cache is left as is. Emit speech[0, *emit_len). CV_EINVAL when the
 * arrays are shorter than the cache lengths (t_in < 8, n_speech or n_source <
 * 3840 for a non-final chunk; n_speech < 3840 when fading). */
int cv2_hift_cache_update(struct cv2_hift_cache *c, const float *mel_in, size_t t_in, float *speech,
			  size_t n_speech, const float *source, size_t n_source, int finalize,
			  size_t *emit_len);

/* ---- speed (§6.2) ------------------------------------------------------- */

/* int(T / speed) as the reference computes it (double division, truncated). */
size_t cv2_stream_speed_frames(size_t t, double speed);
/* mel[n_mels][t] -> *out[n_mels][*out_t], *out_t = cv2_stream_speed_frames:
 * linear, align_corners=False, scale = (float)t / out_t, float32 arithmetic
 * as PyTorch's CPU kernel. speed must be finite and > 0; CV_EINVAL when
 * t == 0 or *out_t would be 0; CV_ENOMEM. */
int cv2_stream_speed_mel(const float *mel, size_t n_mels, size_t t, double speed, float **out, size_t *out_t);

#ifdef __cplusplus
}
#endif

#endif
