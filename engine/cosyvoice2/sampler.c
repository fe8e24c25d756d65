/* engine/cosyvoice2/sampler.c — PCG32 and the reference's RAS sampling (docs/cosyvoice2.md §3.5).
 *
 * DESIGN: the reference samples with torch.multinomial on torch's global
 * generator; reproducing that stream in C is neither possible nor useful.
 * What matters is that (a) the algorithm — EOS mask, softmax, stable
 * descending order, top-p/top-k walk, repetition-aware fallback — is the
 * reference's, and (b) a request with a seed is reproducible. So the random
 * source is a small, documented PCG32 and every draw is an inverse-CDF over
 * double weights with a 53-bit uniform: a Python port (tests/py/sampler_ref.py)
 * does the same IEEE operations in the same order (math.exp is the same libm
 * exp) and must pick the same tokens, which check_sampler.c verifies.
 *
 * No allocation: the nucleus only needs the top_k best entries (kept by
 * insertion, ties by lower index = torch's stable sort), and exp() is simply
 * recomputed in each pass instead of storing a vocab-sized array.
 */
#include "engine/cosyvoice2/sampler.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "common/err.h"

#define PCG_MULT   6364136223846793005ULL
#define PCG_STREAM 54u

void sampler_params_default(struct sampler_params *p)
{
	memset(p, 0, sizeof *p);
	p->top_p = 0.8;
	p->top_k = 25;
	p->win_size = 10;
	p->tau_r = 0.1;
	p->ras_exclude_pick = 1;
	p->greedy = 0;
	p->eos_id = SAMPLER_EOS_ID;
	p->stop_ids[0] = 6561;
	p->stop_ids[1] = 6562;
	p->stop_ids[2] = 6563;
	p->n_stop_ids = 3;
}

uint32_t sampler_rng_u32(struct sampler_rng *rng)
{
	uint64_t old = rng->state;
	rng->state = old * PCG_MULT + rng->inc;
	uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
	uint32_t rot = (uint32_t)(old >> 59u);
	return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed)
{
	rng->state = 0;
	rng->inc = ((uint64_t)PCG_STREAM << 1u) | 1u;
	(void)sampler_rng_u32(rng);
	rng->state += seed;
	(void)sampler_rng_u32(rng);
}

int sampler_rng_seed_random(struct sampler_rng *rng, uint64_t *seed_out)
{
	uint64_t seed = 0;
	unsigned char *b = (unsigned char *)&seed;
	size_t got = 0;
	while (got < sizeof seed) {
		ssize_t r = getrandom(b + got, sizeof seed - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return CV_EIO;
		}
		got += (size_t)r;
	}
	sampler_rng_seed(rng, seed);
	if (seed_out)
		*seed_out = seed;
	return CV_OK;
}

double sampler_rng_uniform(struct sampler_rng *rng)
{
	uint64_t a = sampler_rng_u32(rng);
	uint64_t b = sampler_rng_u32(rng);
	return (double)(((a << 32) | b) >> 11) * 0x1.0p-53;
}

int sampler_multinomial(const double *w, size_t n, double u, size_t *out_index)
{
	if (!w || n == 0 || !(u >= 0.0 && u < 1.0))
		return CV_EINVAL;
	double total = 0.0;
	for (size_t i = 0; i < n; i++) {
		if (!(w[i] >= 0.0) || isinf(w[i]))
			return CV_EINVAL;
		total += w[i];
	}
	if (!(total > 0.0) || isinf(total))
		return CV_EINVAL;
	double target = u * total, run = 0.0;
	size_t last = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i] > 0.0)
			last = i;
		run += w[i];
		if (run > target) {
			*out_index = i;
			return CV_OK;
		}
	}
	*out_index = last;
	return CV_OK;
}

int sampler_is_stop(const struct sampler_params *p, int32_t tok)
{
	for (size_t i = 0; i < p->n_stop_ids && i < sizeof p->stop_ids / sizeof p->stop_ids[0]; i++)
		if (p->stop_ids[i] == tok)
			return 1;
	return 0;
}

size_t sampler_min_len(size_t n_text_ids)
{
	return n_text_ids * SAMPLER_MIN_TOKEN_TEXT_RATIO;
}

size_t sampler_max_len(size_t n_text_ids)
{
	return n_text_ids * SAMPLER_MAX_TOKEN_TEXT_RATIO;
}

/* Entry i takes part: not masked EOS, not excluded, not -inf. */
static int allowed(const float *logits, size_t i, long masked, long excluded)
{
	return (long)i != masked && (long)i != excluded && !isinf(logits[i]);
}

/* Max over the allowed entries; 0 when there is none. */
static int max_allowed(const float *logits, size_t vocab, long masked, long excluded, double *m,
		       size_t *argmax)
{
	int any = 0;
	for (size_t i = 0; i < vocab; i++) {
		if (!allowed(logits, i, masked, excluded))
			continue;
		double v = (double)logits[i];
		if (!any || v > *m) {
			*m = v;
			*argmax = i;
			any = 1;
		}
	}
	return any;
}

/* Inverse-CDF draw over w_i = exp(l_i - m) of the allowed entries, index
 * order (the multinomial primitive without a weight array). */
static size_t draw_full(const float *logits, size_t vocab, long masked, long excluded, double m, double u)
{
	double total = 0.0;
	for (size_t i = 0; i < vocab; i++)
		if (allowed(logits, i, masked, excluded))
			total += exp((double)logits[i] - m);
	double target = u * total, run = 0.0;
	size_t last = 0;
	for (size_t i = 0; i < vocab; i++) {
		if (!allowed(logits, i, masked, excluded))
			continue;
		double w = exp((double)logits[i] - m);
		if (w > 0.0)
			last = i;
		run += w;
		if (run > target)
			return i;
	}
	return last;
}

int sampler_ras(const float *logits, size_t vocab, const int32_t *decoded, size_t n_decoded,
		const struct sampler_params *p, struct sampler_rng *rng, int mask_eos, int32_t *out_token)
{
	if (!logits || !p || !out_token || vocab == 0 || vocab > (size_t)INT32_MAX)
		return CV_EINVAL;
	if (n_decoded > 0 && !decoded)
		return CV_EINVAL;
	if (!p->greedy && (!rng || p->top_k < 1 || p->top_k > SAMPLER_MAX_TOP_K || !isfinite(p->top_p) ||
			   p->win_size < 1 || !isfinite(p->tau_r)))
		return CV_EINVAL;
	for (size_t i = 0; i < vocab; i++)
		if (isnan(logits[i]) || (isinf(logits[i]) && logits[i] > 0))
			return CV_EINVAL;
	long masked = -1;
	if (mask_eos) {
		if (p->eos_id < 0 || (size_t)p->eos_id >= vocab)
			return CV_EINVAL;
		masked = p->eos_id;
	}

	double m = 0.0;
	size_t argmax = 0;
	if (!max_allowed(logits, vocab, masked, -1, &m, &argmax))
		return CV_EINVAL;
	if (p->greedy) {
		*out_token = (int32_t)argmax;
		return CV_OK;
	}

	/* softmax over the allowed entries */
	double sum = 0.0;
	for (size_t i = 0; i < vocab; i++)
		if (allowed(logits, i, masked, -1))
			sum += exp((double)logits[i] - m);

	/* the top_k best (p desc, index asc) */
	double kp[SAMPLER_MAX_TOP_K];
	size_t ki[SAMPLER_MAX_TOP_K];
	size_t k = (size_t)p->top_k, cnt = 0;
	for (size_t i = 0; i < vocab; i++) {
		if (!allowed(logits, i, masked, -1))
			continue;
		double pi = exp((double)logits[i] - m) / sum;
		if (cnt == k && !(pi > kp[k - 1]))
			continue;
		size_t j = cnt < k ? cnt++ : k - 1;
		while (j > 0 && kp[j - 1] < pi) {
			kp[j] = kp[j - 1];
			ki[j] = ki[j - 1];
			j--;
		}
		kp[j] = pi;
		ki[j] = i;
	}

	/* nucleus walk: the token that crosses top_p is kept */
	size_t kept = 0;
	double cum = 0.0;
	while (kept < cnt && cum < p->top_p && kept < k) {
		cum += kp[kept];
		kept++;
	}
	if (kept == 0)
		kept = 1; /* top_p <= 0: torch would fail on an empty set; keep the best */
	size_t at = 0;
	if (sampler_multinomial(kp, kept, sampler_rng_uniform(rng), &at) != CV_OK)
		at = 0; /* all kept probabilities underflowed to 0: cannot happen for the best entry */
	size_t pick = ki[at];

	/* repetition-aware fallback */
	size_t from = n_decoded > (size_t)p->win_size ? n_decoded - (size_t)p->win_size : 0;
	size_t rep = 0;
	for (size_t i = from; i < n_decoded; i++)
		if (decoded[i] == (int32_t)pick)
			rep++;
	if ((double)rep >= (double)p->win_size * p->tau_r) {
		long excluded = p->ras_exclude_pick ? (long)pick : -1;
		double mr = 0.0;
		size_t am = 0;
		if (max_allowed(logits, vocab, masked, excluded, &mr, &am))
			pick = draw_full(logits, vocab, masked, excluded, mr, sampler_rng_uniform(rng));
	}
	*out_token = (int32_t)pick;
	return CV_OK;
}
