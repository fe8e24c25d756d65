/* engine/cosyvoice2/sampler.h — CosyVoice2 speech-token sampling (docs/cosyvoice2.md §3.4, §3.5).
 *
 * RNG: PCG32 (O'Neill's pcg32 "XSH RR", 64-bit LCG state, multiplier
 * 6364136223846793005), seeded exactly like pcg32_srandom_r(seed, 54):
 *   state = 0; inc = (54 << 1) | 1; step(); state += seed; step();
 * and each u32 output is XSH RR of the old state before the step. A uniform
 * double in [0, 1) is built from two consecutive outputs a, b:
 *   u = ((((uint64_t)a << 32) | b) >> 11) * 2^-53.
 * tests/py/sampler_ref.py is an integer-exact Python port of this RNG and of
 * the sampling below; check_sampler.c runs it and requires identical picks.
 * Bit-identical parity with the reference's torch.multinomial is NOT a goal
 * (torch's RNG stream differs); the algorithm is what is matched.
 *
 * Multinomial draw (the only way a token is drawn from weights): given
 * non-negative weights w[0..n) in a fixed order, one uniform u is taken,
 * target = u * sum(w) (the sum accumulated in order, double), and the pick
 * is the first i whose running sum (double, in order) is > target; zero
 * weights are never picked; if rounding leaves no such i, the last non-zero
 * weight is picked.
 *
 * RAS step (sampler_ras), reference ras_sampling of HEAD:
 *  1. e_i = exp(l_i - m) in double over the allowed entries (m = their max);
 *     the EOS id is not allowed when mask_eos != 0 (§3.5 step 2: the in-place
 *     -inf also hides EOS from the fallback). p_i = e_i / sum(e).
 *  2. nucleus: order by p desc, ties by index asc (= torch's stable sort);
 *     walk: while (cum < top_p && kept < top_k) { keep; cum += p } (double),
 *     so the token that crosses top_p is kept; draw with the multinomial
 *     above over the kept p in that order.
 *  3. repetition: rep = occurrences of the pick in the last win_size decoded
 *     tokens; if rep >= win_size * tau_r (double): fallback = multinomial over
 *     the full distribution in index order: w_i = exp(l_i - m_r) over the
 *     allowed entries, the nucleus pick excluded when ras_exclude_pick (HEAD
 *     since 2026-02-04; 0 = the older rule that keeps it), m_r = max over what
 *     remains. If nothing remains the nucleus pick stands (no RNG use).
 *  RNG use per step: one uniform for the nucleus draw, one more when the
 *  fallback fires.
 * Greedy mode (params.greedy): argmax over the allowed entries (lowest index
 * on ties), no repetition rule, no RNG use — the "top-k 1" decode used for
 * parity with an eager greedy module.
 *
 * Lengths (§3.4): min_len = n_text*2, max_len = n_text*20 generated tokens
 * (n_text = ids of the sentence, prompt/instruct ids excluded); while the step
 * index i < min_len, call with mask_eos = 1. Stop ids (§3.2): 6561 (EOS),
 * 6562, 6563 — a stop pick ends the sequence and is not emitted.
 */
#ifndef CV_ENGINE_SAMPLER_H
#define CV_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAMPLER_SPEECH_TOKENS	     6561 /* codes 0..6560 */
#define SAMPLER_EOS_ID		     6561
#define SAMPLER_VOCAB		     6564 /* llm_decoder output classes */
#define SAMPLER_MAX_TOP_K	     256
#define SAMPLER_MIN_TOKEN_TEXT_RATIO 2
#define SAMPLER_MAX_TOKEN_TEXT_RATIO 20

/* Treat as opaque; public only so it can live on the stack / in a struct. */
struct sampler_rng {
	uint64_t state;
	uint64_t inc;
};

struct sampler_params {
	double top_p;	      /* 0.8 */
	int top_k;	      /* 25; 1..SAMPLER_MAX_TOP_K */
	int win_size;	      /* 10 */
	double tau_r;	      /* 0.1 */
	int ras_exclude_pick; /* 1 (HEAD): the fallback excludes the repeated pick */
	int greedy;	      /* 1: argmax, no RAS, no RNG */
	int32_t eos_id;	      /* 6561: masked when mask_eos */
	int32_t stop_ids[4];  /* 6561, 6562, 6563 */
	size_t n_stop_ids;    /* 3 */
};

/* The reference's values (HEAD, yaml): top_p 0.8, top_k 25, win 10, tau 0.1,
 * ras_exclude_pick 1, greedy 0, eos 6561, stops {6561, 6562, 6563}. */
void sampler_params_default(struct sampler_params *p);

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed);
/* Seed from getrandom(2); the seed used is stored in *seed_out (may be NULL)
 * so it can be logged/reported. CV_EIO if the kernel gives no entropy. */
int sampler_rng_seed_random(struct sampler_rng *rng, uint64_t *seed_out);
uint32_t sampler_rng_u32(struct sampler_rng *rng);
/* Uniform double in [0, 1) with 53 random bits (two u32 outputs). */
double sampler_rng_uniform(struct sampler_rng *rng);

/* The multinomial primitive (see above) with a given uniform u in [0, 1).
 * CV_EINVAL when n == 0, a weight is negative/NaN/inf, or all are zero. */
int sampler_multinomial(const double *w, size_t n, double u, size_t *out_index);

/* One decoding step: pick a token from the raw llm_decoder logits (vocab
 * entries, float32; log_softmax is implied). decoded/n_decoded are the tokens
 * emitted so far (the RAS window reads the last win_size). mask_eos != 0
 * while step i < min_len. CV_EINVAL on NaN/+inf logits, bad params, vocab
 * <= eos_id when masking, or no allowed entry; *out_token untouched then. */
int sampler_ras(const float *logits, size_t vocab, const int32_t *decoded, size_t n_decoded,
		const struct sampler_params *p, struct sampler_rng *rng, int mask_eos, int32_t *out_token);

/* 1 when tok is one of p's stop ids. */
int sampler_is_stop(const struct sampler_params *p, int32_t tok);
/* §3.4: int(n_text * 2) and int(n_text * 20). */
size_t sampler_min_len(size_t n_text_ids);
size_t sampler_max_len(size_t n_text_ids);

#ifdef __cplusplus
}
#endif

#endif
