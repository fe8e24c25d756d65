/* handlers/audio/resample.c — streaming mono float resampler over libsoxr.
 *
 * DESIGN: one soxr_t per stream (float32 in and out, SOXR_HQ, no flags), fed
 * with soxr_process() as chunks arrive and drained with a NULL input at the
 * end, so the total output length is round(n * out / in) and the filter
 * delay is compensated by soxr itself. Output goes into one internal buffer
 * that only grows (request-sized, so plain malloc → CV_ENOMEM); the caller
 * reads it before the next call. soxr may take less input than offered when
 * the output space is short (we pass idone), so both calls loop until the
 * input is used up and the last call left room to spare.
 */
#include "handlers/audio/resample.h"

#include <soxr.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"

struct resampler {
	soxr_t soxr;
	double ratio; /* out / in */
	float *buf;
	size_t alloc; /* in samples */
};

int resampler_new(int in_rate, int out_rate, struct resampler **out, char *err, size_t errlen)
{
	soxr_error_t serr = NULL;
	soxr_io_spec_t io;
	soxr_quality_spec_t q;
	struct resampler *r;

	*out = NULL;
	if (in_rate <= 0 || out_rate <= 0) {
		snprintf(err, errlen, "resampler: invalid rates %d -> %d", in_rate, out_rate);
		return CV_EINVAL;
	}
	r = xcalloc(1, sizeof *r);
	r->ratio = (double)out_rate / (double)in_rate;
	io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
	q = soxr_quality_spec(SOXR_HQ, 0);
	r->soxr = soxr_create((double)in_rate, (double)out_rate, 1, &serr, &io, &q, NULL);
	if (!r->soxr || serr) {
		snprintf(err, errlen, "resampler: soxr_create %d -> %d failed: %s", in_rate, out_rate,
			 serr ? serr : "unknown error");
		goto fail;
	}
	*out = r;
	return CV_OK;
fail:
	resampler_free(r);
	return CV_EINVAL;
}

static int resampler_reserve(struct resampler *r, size_t need)
{
	size_t want;
	float *p;

	if (need <= r->alloc)
		return CV_OK;
	want = r->alloc ? r->alloc : 1024;
	while (want < need) {
		if (want > SIZE_MAX / 2 / sizeof(float))
			return CV_ENOMEM;
		want *= 2;
	}
	p = realloc(r->buf, want * sizeof(float));
	if (!p)
		return CV_ENOMEM;
	r->buf = p;
	r->alloc = want;
	return CV_OK;
}

/* in == NULL drains the filter tail. */
static int resampler_run(struct resampler *r, const float *in, size_t n, const float **out, size_t *nout)
{
	size_t used = 0, total = 0, est;
	int rc, stalls = 0;

	*out = NULL;
	*nout = 0;
	est = (size_t)((double)n * r->ratio) + 256;
	rc = resampler_reserve(r, est);
	if (rc)
		return rc;
	for (;;) {
		size_t idone = 0, odone = 0, room;
		soxr_error_t serr;

		if (total == r->alloc) {
			rc = resampler_reserve(r, r->alloc * 2);
			if (rc)
				return rc;
		}
		room = r->alloc - total;
		if (in)
			serr =
			    soxr_process(r->soxr, in + used, n - used, &idone, r->buf + total, room, &odone);
		else
			serr = soxr_process(r->soxr, NULL, 0, NULL, r->buf + total, room, &odone);
		if (serr)
			return CV_EIO;
		used += idone;
		total += odone;
		/* Done when all input is taken and soxr did not fill the space it
		 * had (a full buffer may mean more output is waiting). */
		if ((!in || used == n) && odone < room)
			break;
		if (idone == 0 && odone == 0) {
			/* No progress: give soxr more room, a few times at most. */
			if (++stalls > 4)
				return CV_EIO;
			rc = resampler_reserve(r, r->alloc * 2);
			if (rc)
				return rc;
		}
	}
	*out = r->buf;
	*nout = total;
	return CV_OK;
}

int resampler_process(struct resampler *r, const float *in, size_t n, const float **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (!r || (n && !in))
		return CV_EINVAL;
	if (n == 0)
		return CV_OK; /* a NULL input would mean "flush" to soxr */
	return resampler_run(r, in, n, out, nout);
}

int resampler_flush(struct resampler *r, const float **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	if (!r)
		return CV_EINVAL;
	return resampler_run(r, NULL, 0, out, nout);
}

void resampler_free(struct resampler *r)
{
	if (!r)
		return;
	if (r->soxr)
		soxr_delete(r->soxr);
	free(r->buf);
	free(r);
}
