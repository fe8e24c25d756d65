/* handlers/audio/audio.c — format table, content types and the encoder pipeline.
 *
 * DESIGN: every format shares one pipeline, written once here:
 *   float @ in_rate → clip to [-1, 1] (NaN → 0) → libsoxr HQ to out_rate
 *   (only when the rates differ) → clip again (the filter may overshoot)
 *   → s16 with rounding → backend (audio_impl.h) at out_rate.
 * Input is processed in fixed blocks through scratch arrays inside the
 * encoder, so a write of any size costs no per-call allocation beyond the
 * resampler's own output buffer, and a write of 0 or 1 samples is as valid as
 * a write of a second. Backends only see s16 at the output rate; for Opus this
 * means libopusenc gets out_rate (its OpusHead then records the rate the
 * client asked for) and does its own resampling to 48 kHz internally.
 * Errors are sticky: once a write or finish fails (cap hit, library error)
 * the stream is broken, and every later call returns the same code.
 */
#include "handlers/audio/audio.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/mem.h"
#include "handlers/audio/audio_impl.h"
#include "handlers/audio/resample.h"

#define AUDIO_BLOCK 4096

static const char *const audio_names[AUDIO_FMT_COUNT] = {
    [AUDIO_FMT_WAV] = "wav",   [AUDIO_FMT_OPUS] = "opus", [AUDIO_FMT_PCM] = "pcm",
    [AUDIO_FMT_FLAC] = "flac", [AUDIO_FMT_MP3] = "mp3",
};

static const struct audio_backend *const audio_backends[AUDIO_FMT_COUNT] = {
    [AUDIO_FMT_WAV] = &audio_backend_wav, [AUDIO_FMT_OPUS] = &audio_backend_opus,
    [AUDIO_FMT_PCM] = &audio_backend_pcm, [AUDIO_FMT_FLAC] = &audio_backend_flac,
    [AUDIO_FMT_MP3] = &audio_backend_mp3,
};

static const int audio_rates[] = {8000, 16000, 22050, 24000, 44100, 48000};

/* Engine rates we accept on input (the resampler handles any ratio). */
#define AUDIO_IN_RATE_MIN 1000
#define AUDIO_IN_RATE_MAX 384000

struct audio_enc {
	const struct audio_backend *be;
	void *state;
	struct resampler *rs; /* NULL when in_rate == out_rate */
	size_t samples_in;
	int failed; /* sticky CV_E* code, 0 while healthy */
	int finished;
	float fbuf[AUDIO_BLOCK];
	int16_t sbuf[AUDIO_BLOCK];
};

size_t audio_buf_room(const struct buf *out)
{
	return buf_cap(out) - buf_len(out);
}

int audio_format_parse(const char *s, enum audio_format *out)
{
	if (!s)
		return CV_EINVAL;
	for (int i = 0; i < AUDIO_FMT_COUNT; i++) {
		if (strcmp(s, audio_names[i]) == 0) {
			*out = (enum audio_format)i;
			return CV_OK;
		}
	}
	return CV_EINVAL;
}

const char *audio_format_name(enum audio_format f)
{
	if ((int)f < 0 || f >= AUDIO_FMT_COUNT)
		return "unknown";
	return audio_names[f];
}

void audio_format_content_type(enum audio_format f, int rate, char *dst, size_t cap)
{
	const char *ct;

	switch (f) {
	case AUDIO_FMT_WAV: ct = "audio/wav"; break;
	case AUDIO_FMT_OPUS: ct = "audio/ogg; codecs=opus"; break;
	case AUDIO_FMT_PCM: snprintf(dst, cap, "audio/L16; rate=%d; channels=1", rate); return;
	case AUDIO_FMT_FLAC: ct = "audio/flac"; break;
	case AUDIO_FMT_MP3: ct = "audio/mpeg"; break;
	default: ct = "application/octet-stream"; break;
	}
	snprintf(dst, cap, "%s", ct);
}

int audio_rate_supported(enum audio_format f, int rate)
{
	if ((int)f < 0 || f >= AUDIO_FMT_COUNT)
		return 0;
	/* Every format carries every API rate: WAV/PCM/FLAC natively, LAME has
	 * MPEG-1/2/2.5 layer III at all six, libopusenc resamples to 48 kHz. */
	for (size_t i = 0; i < sizeof audio_rates / sizeof audio_rates[0]; i++)
		if (audio_rates[i] == rate)
			return 1;
	return 0;
}

int audio_enc_new(enum audio_format f, int in_rate, int out_rate, const struct audio_enc_opts *o,
		  struct audio_enc **out, char *err, size_t errlen)
{
	static const struct audio_enc_opts defaults = {
	    .stream = 0, .opus_bitrate = 32000, .mp3_bitrate_kbps = 64, .flac_level = 5};
	struct audio_enc *e = NULL;
	int rc;

	*out = NULL;
	if ((int)f < 0 || f >= AUDIO_FMT_COUNT) {
		snprintf(err, errlen, "unknown audio format %d", (int)f);
		return CV_EINVAL;
	}
	if (in_rate < AUDIO_IN_RATE_MIN || in_rate > AUDIO_IN_RATE_MAX) {
		snprintf(err, errlen, "input sample rate %d out of range [%d, %d]", in_rate,
			 AUDIO_IN_RATE_MIN, AUDIO_IN_RATE_MAX);
		return CV_EINVAL;
	}
	if (!audio_rate_supported(f, out_rate)) {
		snprintf(
		    err, errlen,
		    "sample rate %d not supported for %s (use 8000, 16000, 22050, 24000, 44100 or 48000)",
		    out_rate, audio_names[f]);
		return CV_EINVAL;
	}
	if (!o)
		o = &defaults;
	e = xcalloc(1, sizeof *e);
	e->be = audio_backends[f];
	if (in_rate != out_rate) {
		rc = resampler_new(in_rate, out_rate, &e->rs, err, errlen);
		if (rc)
			goto fail;
	}
	rc = e->be->open(out_rate, o, &e->state, err, errlen);
	if (rc)
		goto fail;
	*out = e;
	return CV_OK;
fail:
	audio_enc_free(e);
	return rc;
}

static float audio_clip(float x)
{
	if (isnan(x))
		return 0.0f;
	if (x > 1.0f)
		return 1.0f;
	if (x < -1.0f)
		return -1.0f;
	return x;
}

/* Convert n float samples at out_rate to s16 and hand them to the backend.
 * n == 0 still reaches the backend once (it may emit headers). */
static int audio_emit(struct audio_enc *e, const float *x, size_t n, struct buf *out)
{
	size_t done = 0;

	do {
		size_t k = n - done < AUDIO_BLOCK ? n - done : AUDIO_BLOCK;
		int rc;

		for (size_t i = 0; i < k; i++)
			e->sbuf[i] = (int16_t)lrintf(audio_clip(x[done + i]) * 32767.0f);
		rc = e->be->write(e->state, e->sbuf, k, out);
		if (rc)
			return rc;
		done += k;
	} while (done < n);
	return CV_OK;
}

int audio_enc_write(struct audio_enc *e, const float *pcm, size_t n, struct buf *out)
{
	size_t done = 0;
	int rc = CV_OK;

	if (!e || !out || (n && !pcm))
		return CV_EINVAL;
	if (e->failed)
		return e->failed;
	if (e->finished)
		return CV_EINVAL;
	if (n == 0)
		rc = audio_emit(e, NULL, 0, out);
	while (!rc && done < n) {
		size_t k = n - done < AUDIO_BLOCK ? n - done : AUDIO_BLOCK;

		for (size_t i = 0; i < k; i++)
			e->fbuf[i] = audio_clip(pcm[done + i]);
		if (e->rs) {
			const float *ro;
			size_t rn;

			rc = resampler_process(e->rs, e->fbuf, k, &ro, &rn);
			if (!rc)
				rc = audio_emit(e, ro, rn, out);
		} else {
			rc = audio_emit(e, e->fbuf, k, out);
		}
		done += k;
	}
	e->samples_in += done;
	if (rc)
		e->failed = rc;
	return rc;
}

int audio_enc_finish(struct audio_enc *e, struct buf *out)
{
	int rc = CV_OK;

	if (!e || !out)
		return CV_EINVAL;
	if (e->failed)
		return e->failed;
	if (e->finished)
		return CV_EINVAL;
	e->finished = 1;
	if (e->rs) {
		const float *ro;
		size_t rn;

		rc = resampler_flush(e->rs, &ro, &rn);
		if (!rc && rn)
			rc = audio_emit(e, ro, rn, out);
	}
	if (!rc)
		rc = e->be->finish(e->state, out);
	if (rc)
		e->failed = rc;
	return rc;
}

size_t audio_enc_samples_in(const struct audio_enc *e)
{
	return e ? e->samples_in : 0;
}

void audio_enc_free(struct audio_enc *e)
{
	if (!e)
		return;
	if (e->state)
		e->be->free(e->state);
	resampler_free(e->rs);
	free(e);
}
