/* tests/unit/check_sampler.c — PCG32, the multinomial primitive and RAS
 * sampling (docs/cosyvoice2.md §3.4/§3.5), with parity against tests/py/sampler_ref.py run
 * in the torch venv (thousands of random logit vectors and histories). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "engine/cosyvoice2/sampler.h"
#include "tests/unit/testutil.h"

/* Runs a shell command, returns its first stdout line (malloc'd) or NULL. */
START_TEST(pcg32_known_answer)
{
	/* pcg32_srandom_r(&rng, 42u, 54u) of the PCG reference demo */
	static const uint32_t want[] = {0xa15c02b7u, 0x7b47f409u, 0xba1d3330u,
					0x83d2f293u, 0xbfa4784bu, 0xcbed606eu};
	struct sampler_rng r;
	sampler_rng_seed(&r, 42);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ck_assert_uint_eq(sampler_rng_u32(&r), want[i]);
}
END_TEST

START_TEST(uniform_range_and_reproducible)
{
	struct sampler_rng a, b;
	sampler_rng_seed(&a, 7);
	sampler_rng_seed(&b, 7);
	double sum = 0.0, lo = 1.0, hi = 0.0;
	for (int i = 0; i < 200000; i++) {
		double u = sampler_rng_uniform(&a);
		ck_assert(u >= 0.0 && u < 1.0);
		ck_assert(u == sampler_rng_uniform(&b));
		sum += u;
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
	}
	ck_assert_double_gt(sum / 200000, 0.495);
	ck_assert_double_lt(sum / 200000, 0.505);
	ck_assert_double_lt(lo, 0.001);
	ck_assert_double_gt(hi, 0.999);
	/* uniform = two u32 outputs, top 53 bits */
	sampler_rng_seed(&a, 99);
	sampler_rng_seed(&b, 99);
	uint64_t x = ((uint64_t)sampler_rng_u32(&b) << 32) | sampler_rng_u32(&b);
	ck_assert(sampler_rng_uniform(&a) == (double)(x >> 11) / 9007199254740992.0);
	/* different seeds differ */
	sampler_rng_seed(&a, 1);
	sampler_rng_seed(&b, 2);
	ck_assert_uint_ne(sampler_rng_u32(&a), sampler_rng_u32(&b));
}
END_TEST

START_TEST(seed_random_reports_seed)
{
	struct sampler_rng a, b;
	uint64_t seed = 0;
	ck_assert_int_eq(sampler_rng_seed_random(&a, &seed), CV_OK);
	sampler_rng_seed(&b, seed);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(sampler_rng_u32(&a), sampler_rng_u32(&b));
	ck_assert_int_eq(sampler_rng_seed_random(&a, NULL), CV_OK);
}
END_TEST

START_TEST(multinomial_edges)
{
	const double w[] = {0.0, 1.0, 0.0, 3.0, 0.0};
	size_t i = 99;
	ck_assert_int_eq(sampler_multinomial(w, 5, 0.0, &i), CV_OK);
	ck_assert_uint_eq(i, 1);
	ck_assert_int_eq(sampler_multinomial(w, 5, 0.2499, &i), CV_OK);
	ck_assert_uint_eq(i, 1);
	/* target 1.0: running sum 1.0 is not > 1.0, so the next non-zero */
	ck_assert_int_eq(sampler_multinomial(w, 5, 0.25, &i), CV_OK);
	ck_assert_uint_eq(i, 3);
	ck_assert_int_eq(sampler_multinomial(w, 5, 0.9999999, &i), CV_OK);
	ck_assert_uint_eq(i, 3);
	const double one[] = {2.5};
	ck_assert_int_eq(sampler_multinomial(one, 1, 0.7, &i), CV_OK);
	ck_assert_uint_eq(i, 0);
	const double zero[] = {0.0, 0.0};
	const double neg[] = {1.0, -0.5};
	const double nan_w[] = {1.0, NAN};
	const double inf_w[] = {1.0, INFINITY};
	ck_assert_int_eq(sampler_multinomial(zero, 2, 0.5, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(neg, 2, 0.5, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(nan_w, 2, 0.5, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(inf_w, 2, 0.5, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(w, 0, 0.5, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(w, 5, 1.0, &i), CV_EINVAL);
	ck_assert_int_eq(sampler_multinomial(w, 5, -0.1, &i), CV_EINVAL);
	/* frequencies follow the weights */
	struct sampler_rng r;
	sampler_rng_seed(&r, 3);
	size_t cnt[5] = {0};
	for (int k = 0; k < 40000; k++) {
		ck_assert_int_eq(sampler_multinomial(w, 5, sampler_rng_uniform(&r), &i), CV_OK);
		cnt[i]++;
	}
	ck_assert_uint_eq(cnt[0] + cnt[2] + cnt[4], 0);
	ck_assert_uint_gt(cnt[1], 9400);
	ck_assert_uint_lt(cnt[1], 10600);
}
END_TEST

START_TEST(defaults_lengths_stops)
{
	struct sampler_params p;
	sampler_params_default(&p);
	ck_assert(p.top_p == 0.8 && p.top_k == 25 && p.win_size == 10 && p.tau_r == 0.1);
	ck_assert_int_eq(p.ras_exclude_pick, 1);
	ck_assert_int_eq(p.greedy, 0);
	ck_assert_int_eq(p.eos_id, 6561);
	ck_assert(sampler_is_stop(&p, 6561) && sampler_is_stop(&p, 6562) && sampler_is_stop(&p, 6563));
	ck_assert(!sampler_is_stop(&p, 6560) && !sampler_is_stop(&p, 0) && !sampler_is_stop(&p, 6564));
	/* §3.4 / §6.4: 30 text ids -> min 60, max 600 */
	ck_assert_uint_eq(sampler_min_len(30), 60);
	ck_assert_uint_eq(sampler_max_len(30), 600);
	ck_assert_uint_eq(sampler_min_len(0), 0);
	ck_assert_uint_eq(sampler_max_len(1), 20);
}
END_TEST

START_TEST(greedy_mode)
{
	struct sampler_params p;
	sampler_params_default(&p);
	p.greedy = 1;
	float l[8] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, -INFINITY, 0.0f, 9.0f};
	int32_t t = -1;
	ck_assert_int_eq(sampler_ras(l, 8, NULL, 0, &p, NULL, 0, &t), CV_OK);
	ck_assert_int_eq(t, 7);
	p.eos_id = 7;
	ck_assert_int_eq(sampler_ras(l, 8, NULL, 0, &p, NULL, 1, &t), CV_OK);
	ck_assert_int_eq(t, 1); /* tie 1/3: the lower index */
	/* the repetition rule does not apply to greedy */
	const int32_t hist[] = {1, 1, 1};
	ck_assert_int_eq(sampler_ras(l, 8, hist, 3, &p, NULL, 1, &t), CV_OK);
	ck_assert_int_eq(t, 1);
}
END_TEST

START_TEST(eos_masking)
{
	struct sampler_params p;
	sampler_params_default(&p);
	float *l = calloc(SAMPLER_VOCAB, sizeof *l);
	ck_assert_ptr_nonnull(l);
	for (size_t i = 0; i < SAMPLER_VOCAB; i++)
		l[i] = (float)((i * 7919) % 13) * 0.1f;
	l[SAMPLER_EOS_ID] = 40.0f; /* EOS dominates unless masked */
	struct sampler_rng r;
	sampler_rng_seed(&r, 11);
	int eos = 0;
	for (int k = 0; k < 300; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, SAMPLER_VOCAB, NULL, 0, &p, &r, 1, &t), CV_OK);
		ck_assert_int_ne(t, SAMPLER_EOS_ID);
		ck_assert(t >= 0 && t < SAMPLER_VOCAB);
		ck_assert_int_ne(t, 6561);
	}
	for (int k = 0; k < 50; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, SAMPLER_VOCAB, NULL, 0, &p, &r, 0, &t), CV_OK);
		eos += t == SAMPLER_EOS_ID;
	}
	ck_assert_int_eq(eos, 50);
	/* 6562/6563 are not masked: a dominant 6563 comes out while EOS is masked */
	l[6563] = 50.0f;
	int32_t t = -1;
	ck_assert_int_eq(sampler_ras(l, SAMPLER_VOCAB, NULL, 0, &p, &r, 1, &t), CV_OK);
	ck_assert_int_eq(t, 6563);
	ck_assert(sampler_is_stop(&p, t));
	free(l);
}
END_TEST

/* Nucleus: probabilities 0.6, 0.25, 0.1, 0.05 -> kept {0, 1} (0.6 < 0.8, the
 * crossing 0.25 is kept), drawn 0.6:0.25. */
START_TEST(nucleus_top_p)
{
	struct sampler_params p;
	sampler_params_default(&p);
	float l[4] = {logf(0.6f), logf(0.25f), logf(0.1f), logf(0.05f)};
	struct sampler_rng r;
	sampler_rng_seed(&r, 5);
	size_t cnt[4] = {0};
	for (int k = 0; k < 20000; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 0, &t), CV_OK);
		cnt[t]++;
	}
	ck_assert_uint_eq(cnt[2] + cnt[3], 0);
	double f0 = (double)cnt[0] / 20000.0;
	ck_assert_double_gt(f0, 0.6 / 0.85 - 0.02);
	ck_assert_double_lt(f0, 0.6 / 0.85 + 0.02);
}
END_TEST

START_TEST(nucleus_top_k)
{
	struct sampler_params p;
	sampler_params_default(&p);
	p.top_k = 5;
	p.top_p = 1.0; /* only top_k limits */
	float l[100];
	for (int i = 0; i < 100; i++)
		l[i] = (float)((i * 37) % 100) * 0.001f; /* nearly flat, permuted */
	struct sampler_rng r;
	sampler_rng_seed(&r, 8);
	size_t seen[100] = {0};
	for (int k = 0; k < 5000; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, 100, NULL, 0, &p, &r, 0, &t), CV_OK);
		seen[t]++;
	}
	/* the 5 largest are (i*37)%100 in 95..99 */
	for (int i = 0; i < 100; i++) {
		int top = (i * 37) % 100 >= 95;
		if (top)
			ck_assert_uint_gt(seen[i], 700);
		else
			ck_assert_uint_eq(seen[i], 0);
	}
	/* ties: all equal, top_k 3 -> the three lowest indices (stable order) */
	float flat[10];
	for (int i = 0; i < 10; i++)
		flat[i] = 1.0f;
	p.top_k = 3;
	size_t fs[10] = {0};
	for (int k = 0; k < 3000; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(flat, 10, NULL, 0, &p, &r, 0, &t), CV_OK);
		fs[t]++;
	}
	ck_assert(fs[0] > 800 && fs[1] > 800 && fs[2] > 800);
	ck_assert_uint_eq(fs[0] + fs[1] + fs[2], 3000);
}
END_TEST

/* Repetition: the nucleus pick 0 (p ~ 0.99) is in the last 10 tokens, so the
 * fallback draws from the full distribution without it (HEAD) or with it. */
START_TEST(repetition_fallback)
{
	struct sampler_params p;
	sampler_params_default(&p);
	float l[6] = {10.0f, 3.0f, 3.0f, 2.0f, 1.0f, 0.0f};
	int32_t hist[12] = {5, 5, 0, 5, 5, 5, 5, 5, 5, 5, 5, 5};
	struct sampler_rng r;
	sampler_rng_seed(&r, 21);
	size_t cnt[6] = {0};
	for (int k = 0; k < 4000; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, 6, hist, 12, &p, &r, 0, &t), CV_OK);
		cnt[t]++;
	}
	ck_assert_uint_eq(cnt[0], 0);
	ck_assert_uint_gt(cnt[1], 1000);
	ck_assert_uint_gt(cnt[4], 0);
	/* token 0 just outside the window (index 2 of 13 -> window is 3..12) */
	int32_t hist2[13] = {5, 5, 0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
	size_t zeros = 0;
	for (int k = 0; k < 500; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, 6, hist2, 13, &p, &r, 0, &t), CV_OK);
		zeros += t == 0;
	}
	ck_assert_uint_eq(zeros, 500);
	/* the pre-2026-02-04 rule: fallback keeps the pick in the distribution */
	p.ras_exclude_pick = 0;
	zeros = 0;
	for (int k = 0; k < 500; k++) {
		int32_t t = -1;
		ck_assert_int_eq(sampler_ras(l, 6, hist, 12, &p, &r, 0, &t), CV_OK);
		zeros += t == 0;
	}
	ck_assert_uint_gt(zeros, 480);
	/* only the pick is allowed: fallback has nothing left, pick stands */
	p.ras_exclude_pick = 1;
	float solo[3] = {1.0f, -INFINITY, -INFINITY};
	int32_t h0[1] = {0};
	int32_t t = -1;
	ck_assert_int_eq(sampler_ras(solo, 3, h0, 1, &p, &r, 0, &t), CV_OK);
	ck_assert_int_eq(t, 0);
}
END_TEST

START_TEST(bad_input)
{
	struct sampler_params p;
	sampler_params_default(&p);
	struct sampler_rng r;
	sampler_rng_seed(&r, 1);
	float l[4] = {0.0f, 1.0f, 2.0f, 3.0f};
	int32_t t = 77;
	ck_assert_int_eq(sampler_ras(l, 0, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	l[1] = NAN;
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	l[1] = INFINITY;
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	l[1] = 1.0f;
	/* EOS id 6561 outside a 4-entry vocab cannot be masked */
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 1, &t), CV_EINVAL);
	float ninf[2] = {-INFINITY, -INFINITY};
	ck_assert_int_eq(sampler_ras(ninf, 2, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	p.eos_id = 0;
	float one_eos[2] = {1.0f, -INFINITY};
	ck_assert_int_eq(sampler_ras(one_eos, 2, NULL, 0, &p, &r, 1, &t), CV_EINVAL);
	sampler_params_default(&p);
	p.top_k = 0;
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	p.top_k = SAMPLER_MAX_TOP_K + 1;
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, &r, 0, &t), CV_EINVAL);
	sampler_params_default(&p);
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 3, &p, &r, 0, &t), CV_EINVAL);
	ck_assert_int_eq(sampler_ras(l, 4, NULL, 0, &p, NULL, 0, &t), CV_EINVAL);
	ck_assert_int_eq(t, 77);
}
END_TEST

/* ---- parity with tests/py/sampler_ref.py -------------------------------- */

static int read_tok(char **s, const char *what, long long *v)
{
	char *end;
	errno = 0;
	*v = strtoll(*s, &end, 10);
	ck_assert_msg(end != *s && errno == 0, "parse %s near '%.20s'", what, *s);
	*s = end;
	return 1;
}

START_TEST(parity_with_python)
{
	char *py = test_run_line("bash tools/dev/torch-venv.sh");
	ck_assert_msg(py != NULL, "tools/dev/torch-venv.sh failed (no torch venv)");
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "'%s' tests/py/sampler_ref.py gen 2000 20240611", py);
	free(py);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	char *line = NULL;
	size_t cap = 0;
	size_t cases = 0, steps = 0, fallback_seen = 0, mismatches = 0;
	float *logits = malloc(SAMPLER_VOCAB * sizeof *logits);
	int32_t *dec = malloc(64 * sizeof *dec);
	ck_assert(logits && dec);
	while (getline(&line, &cap, f) > 0) {
		ck_assert_msg(line[0] == 'C', "expected a case line, got '%.40s'", line);
		char *s = line + 1;
		char *end;
		errno = 0;
		unsigned long long seed = strtoull(s, &end, 10);
		ck_assert(end != s && errno == 0);
		s = end;
		long long vocab, eos, mask, excl, greedy, topk, win, ndec, nsteps;
		read_tok(&s, "vocab", &vocab);
		read_tok(&s, "eos", &eos);
		read_tok(&s, "mask", &mask);
		read_tok(&s, "exclude", &excl);
		read_tok(&s, "greedy", &greedy);
		read_tok(&s, "top_k", &topk);
		double top_p = strtod(s, &end);
		ck_assert(end != s);
		s = end;
		read_tok(&s, "win", &win);
		double tau = strtod(s, &end);
		ck_assert(end != s);
		s = end;
		read_tok(&s, "n_dec", &ndec);
		ck_assert(vocab >= 1 && vocab <= SAMPLER_VOCAB && ndec >= 0 && ndec <= 30);
		for (long long i = 0; i < ndec; i++) {
			long long d;
			read_tok(&s, "decoded", &d);
			dec[i] = (int32_t)d;
		}
		read_tok(&s, "n_steps", &nsteps);
		ck_assert(nsteps >= 1 && nsteps <= 30);

		ck_assert(getline(&line, &cap, f) > 0 && line[0] == 'L');
		s = line + 1;
		for (long long i = 0; i < vocab; i++) {
			double v = strtod(s, &end);
			ck_assert_msg(end != s, "case %zu: logit %lld", cases, i);
			logits[i] = (float)v;
			ck_assert((double)logits[i] == v || isinf(v)); /* float32 values */
			s = end;
		}

		struct sampler_params p;
		sampler_params_default(&p);
		p.eos_id = (int32_t)eos;
		p.ras_exclude_pick = (int)excl;
		p.greedy = (int)greedy;
		p.top_k = (int)topk;
		p.top_p = top_p;
		p.win_size = (int)win;
		p.tau_r = tau;
		struct sampler_rng r;
		sampler_rng_seed(&r, seed);
		int32_t picks[32];
		size_t n = (size_t)ndec;
		for (long long k = 0; k < nsteps; k++) {
			int32_t t = -1;
			int rc = sampler_ras(logits, (size_t)vocab, dec, n, &p, &r, (int)mask, &t);
			ck_assert_msg(rc == CV_OK, "case %zu step %lld: rc %d", cases, k, rc);
			picks[k] = t;
			dec[n++] = t;
		}
		uint32_t next = sampler_rng_u32(&r);

		ck_assert(getline(&line, &cap, f) > 0 && line[0] == 'E');
		s = line + 1;
		int same = 1;
		for (long long k = 0; k < nsteps; k++) {
			long long want;
			read_tok(&s, "pick", &want);
			same &= want == picks[k];
		}
		long long want_next;
		read_tok(&s, "next", &want_next);
		/* the RNG state after the steps: equal means the same number of draws */
		same &= (uint32_t)want_next == next;
		if (!same) {
			if (mismatches < 5)
				fprintf(stderr, "sampler parity: case %zu (seed %llu, vocab %lld) differs\n",
					cases, seed, vocab);
			mismatches++;
		}
		/* count steps whose picks needed 4 u32 (nucleus + fallback) — shows the fallback ran */
		struct sampler_rng probe;
		sampler_rng_seed(&probe, seed);
		for (long long k = 0; k < nsteps * 4 + 1; k++)
			if (sampler_rng_u32(&probe) == next && k > nsteps * 2 && !greedy) {
				fallback_seen++;
				break;
			}
		steps += (size_t)nsteps;
		cases++;
	}
	free(line);
	free(logits);
	free(dec);
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_uint_eq(cases, 2000);
	ck_assert_msg(mismatches == 0, "%zu of %zu cases differ from the Python reference", mismatches,
		      cases);
	ck_assert_uint_gt(steps, 4000);
	/* the generator makes repetition frequent: the fallback path must be covered */
	ck_assert_uint_gt(fallback_seen, 200);
}
END_TEST

Suite *suite_sampler(void);
Suite *suite_sampler(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, pcg32_known_answer);
	tcase_add_test(tc, uniform_range_and_reproducible);
	tcase_add_test(tc, seed_random_reports_seed);
	tcase_add_test(tc, multinomial_edges);
	tcase_add_test(tc, defaults_lengths_stops);
	tcase_add_test(tc, greedy_mode);
	tcase_add_test(tc, eos_masking);
	tcase_add_test(tc, nucleus_top_p);
	tcase_add_test(tc, nucleus_top_k);
	tcase_add_test(tc, repetition_fallback);
	tcase_add_test(tc, bad_input);
	suite_add_tcase(s, tc);
	TCase *tp = tcase_create("parity");
	tcase_set_timeout(tp, 600); /* may have to build the torch venv first */
	tcase_add_test(tp, parity_with_python);
	suite_add_tcase(s, tp);
	return s;
}
