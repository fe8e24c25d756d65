/* tests/unit/check_resample.c — the libsoxr streaming resampler.
 *
 * Length after flush must be n * out / in (within a sample or two) however
 * the input is chunked, a 440 Hz tone must keep its frequency and level,
 * a tone above the new Nyquist must be filtered out (HQ anti-aliasing),
 * chunked and one-shot processing must agree, and a zero-length process
 * must not act as a flush.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "handlers/audio/resample.h"

static float *sine(int rate, double hz, double amp, size_t n)
{
	float *x = malloc((n + 1) * sizeof *x);

	ck_assert_ptr_nonnull(x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(amp * sin(2.0 * M_PI * hz * (double)i / rate));
	return x;
}

/* Append src to a growing result array. */
static void collect(float **acc, size_t *len, const float *src, size_t n)
{
	*acc = realloc(*acc, (*len + n + 1) * sizeof **acc);
	ck_assert_ptr_nonnull(*acc);
	if (n)
		memcpy(*acc + *len, src, n * sizeof *src);
	*len += n;
}

static const size_t chunks[] = {1, 0, 333, 7, 4096, 10, 50000, 160};

/* Resample x (n samples) in uneven chunks plus flush; returns the output. */
static float *run_chunked(int in_rate, int out_rate, const float *x, size_t n, size_t *nout)
{
	struct resampler *r = NULL;
	char err[128];
	float *acc = NULL;
	const float *o;
	size_t len = 0, done = 0, k = 0, on;

	ck_assert_int_eq(resampler_new(in_rate, out_rate, &r, err, sizeof err), CV_OK);
	while (done < n) {
		size_t c = chunks[k++ % (sizeof chunks / sizeof chunks[0])];

		if (c > n - done)
			c = n - done;
		ck_assert_int_eq(resampler_process(r, x + done, c, &o, &on), CV_OK);
		collect(&acc, &len, o, on);
		done += c;
	}
	ck_assert_int_eq(resampler_flush(r, &o, &on), CV_OK);
	collect(&acc, &len, o, on);
	resampler_free(r);
	*nout = len;
	return acc;
}

static double rms(const float *x, size_t a, size_t b)
{
	double acc = 0;

	for (size_t i = a; i < b; i++)
		acc += (double)x[i] * x[i];
	return sqrt(acc / (double)(b - a));
}

static double zc_hz(const float *x, size_t a, size_t b, int rate)
{
	size_t ups = 0, first = 0, last = 0;

	for (size_t i = a + 1; i < b; i++) {
		if (x[i - 1] < 0 && x[i] >= 0) {
			if (!ups)
				first = i;
			last = i;
			ups++;
		}
	}
	ck_assert_uint_ge(ups, 3);
	return (double)(ups - 1) * rate / (double)(last - first);
}

static const int pairs[][2] = {{22050, 24000}, {22050, 48000}, {24000, 8000}, {24000, 16000},
			       {24000, 44100}, {48000, 22050}, {8000, 48000}, {16000, 24000}};

START_TEST(length_and_tone)
{
	int in_rate = pairs[_i][0], out_rate = pairs[_i][1];
	size_t n = (size_t)in_rate * 3 / 2, nout;
	float *x = sine(in_rate, 440.0, 0.5, n);
	float *y = run_chunked(in_rate, out_rate, x, n, &nout);
	double want = (double)n * out_rate / in_rate;
	double hz, level;

	ck_assert_msg(fabs((double)nout - want) <= 2.0, "%d->%d: %zu samples, want %.1f", in_rate, out_rate,
		      nout, want);
	hz = zc_hz(y, (size_t)(0.25 * out_rate), (size_t)(1.25 * out_rate), out_rate);
	ck_assert_msg(fabs(hz - 440.0) < 0.5, "%d->%d: tone at %.3f Hz", in_rate, out_rate, hz);
	level = rms(y, (size_t)(0.25 * out_rate), (size_t)(1.25 * out_rate));
	ck_assert_msg(fabs(level - 0.5 / sqrt(2.0)) < 0.005, "%d->%d: rms %.4f", in_rate, out_rate, level);
	/* The filter delay is compensated: the tone starts at t = 0, in phase
	 * (sample at a quarter period is near the peak). */
	ck_assert_msg(y[out_rate / 1760] > 0.45f, "%d->%d: y[T/4] = %.3f", in_rate, out_rate,
		      (double)y[out_rate / 1760]);
	free(x);
	free(y);
}
END_TEST

START_TEST(chunked_equals_oneshot)
{
	struct resampler *r = NULL;
	char err[128];
	size_t n = 22050, nout, on, on2;
	float *x = sine(22050, 440.0, 0.5, n);
	float *y = run_chunked(22050, 24000, x, n, &nout);
	float *z = NULL;
	size_t zl = 0;
	const float *o;

	ck_assert_int_eq(resampler_new(22050, 24000, &r, err, sizeof err), CV_OK);
	ck_assert_int_eq(resampler_process(r, x, n, &o, &on), CV_OK);
	collect(&z, &zl, o, on);
	ck_assert_int_eq(resampler_flush(r, &o, &on2), CV_OK);
	collect(&z, &zl, o, on2);
	ck_assert_uint_eq(zl, nout);
	for (size_t i = 0; i < zl; i++)
		ck_assert_msg(fabsf(z[i] - y[i]) < 1e-5f, "sample %zu: %f vs %f", i, (double)z[i],
			      (double)y[i]);
	resampler_free(r);
	free(x);
	free(y);
	free(z);
}
END_TEST

START_TEST(aliasing_removed)
{
	/* 6 kHz at 24 kHz, resampled to 8 kHz (Nyquist 4 kHz): must vanish. */
	size_t n = 24000, nout;
	float *x = sine(24000, 6000.0, 0.5, n);
	float *y = run_chunked(24000, 8000, x, n, &nout);

	ck_assert_uint_ge(nout, 7998);
	ck_assert_msg(rms(y, 1000, 7000) < 0.001, "alias rms %.5f", rms(y, 1000, 7000));
	free(x);
	free(y);
}
END_TEST

START_TEST(zero_length_is_not_flush)
{
	struct resampler *r = NULL;
	char err[128];
	const float *o = (const float *)1;
	size_t on = 99, total = 0, n = 4800;
	float *x = sine(24000, 440.0, 0.5, n);

	ck_assert_int_eq(resampler_new(24000, 48000, &r, err, sizeof err), CV_OK);
	ck_assert_int_eq(resampler_process(r, x, 0, &o, &on), CV_OK);
	ck_assert_uint_eq(on, 0);
	ck_assert_int_eq(resampler_process(r, NULL, 0, &o, &on), CV_OK);
	ck_assert_uint_eq(on, 0);
	ck_assert_int_eq(resampler_process(r, x, n, &o, &on), CV_OK);
	total += on;
	ck_assert_int_eq(resampler_flush(r, &o, &on), CV_OK);
	total += on;
	ck_assert_uint_le(total, 2 * n + 1);
	ck_assert_uint_ge(total, 2 * n - 1);
	ck_assert_int_eq(resampler_process(r, NULL, 5, &o, &on), CV_EINVAL);
	resampler_free(r);
	free(x);
}
END_TEST

START_TEST(flush_without_input)
{
	struct resampler *r = NULL;
	char err[128];
	const float *o;
	size_t on = 99;

	ck_assert_int_eq(resampler_new(22050, 24000, &r, err, sizeof err), CV_OK);
	ck_assert_int_eq(resampler_flush(r, &o, &on), CV_OK);
	ck_assert_uint_eq(on, 0);
	resampler_free(r);
	resampler_free(NULL);
}
END_TEST

START_TEST(big_block)
{
	/* 10 s in one call at 8k -> 48k: the output buffer must grow. */
	size_t n = 80000, nout;
	struct resampler *r = NULL;
	char err[128];
	const float *o;
	size_t on, on2;
	float *x = sine(8000, 440.0, 0.5, n);

	ck_assert_int_eq(resampler_new(8000, 48000, &r, err, sizeof err), CV_OK);
	ck_assert_int_eq(resampler_process(r, x, n, &o, &on), CV_OK);
	ck_assert_int_eq(resampler_flush(r, &o, &on2), CV_OK);
	nout = on + on2;
	ck_assert_uint_ge(nout, 6 * n - 1);
	ck_assert_uint_le(nout, 6 * n + 1);
	resampler_free(r);
	free(x);
}
END_TEST

START_TEST(bad_rates)
{
	struct resampler *r = (struct resampler *)1;
	char err[128];

	err[0] = '\0';
	ck_assert_int_eq(resampler_new(0, 24000, &r, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(err, "0 -> 24000") != NULL, "err: %s", err);
	ck_assert_int_eq(resampler_new(24000, -8000, &r, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(r);
}
END_TEST

Suite *suite_resample(void);
Suite *suite_resample(void)
{
	Suite *s = suite_create("resample");
	TCase *tc = tcase_create("soxr");

	tcase_add_loop_test(tc, length_and_tone, 0, (int)(sizeof pairs / sizeof pairs[0]));
	tcase_add_test(tc, chunked_equals_oneshot);
	tcase_add_test(tc, aliasing_removed);
	tcase_add_test(tc, zero_length_is_not_flush);
	tcase_add_test(tc, flush_without_input);
	tcase_add_test(tc, big_block);
	tcase_add_test(tc, bad_rates);
	suite_add_tcase(s, tc);
	return s;
}
