/* handlers/audio/resample.h — streaming mono float resampler over libsoxr (HQ). */
#ifndef CV_HANDLERS_RESAMPLE_H
#define CV_HANDLERS_RESAMPLE_H

#include <stddef.h>

struct resampler;

int resampler_new(int in_rate, int out_rate, struct resampler **out, char *err, size_t errlen);
/* Resample n input samples; *out points to an internal buffer valid until
 * the next call, *nout its length. */
int resampler_process(struct resampler *r, const float *in, size_t n, const float **out, size_t *nout);
/* Drain the filter tail at end of stream. */
int resampler_flush(struct resampler *r, const float **out, size_t *nout);
void resampler_free(struct resampler *r); /* NULL no-op */

#endif
