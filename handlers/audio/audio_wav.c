/* handlers/audio/audio_wav.c — RIFF/WAVE PCM16 mono and raw s16le PCM backends.
 *
 * DESIGN: the canonical 44-byte header (RIFF, WAVE, a 16-byte "fmt " chunk
 * with format 1, then "data"), written byte by byte in little endian so the
 * output does not depend on the host. Buffered WAV keeps the samples in an
 * internal buffer and writes header + data at finish, when the sizes are
 * known; that buffer is checked against the room left in the caller's
 * buffer on every write, so a cap is hit early rather than at finish.
 * Streamed WAV writes the header at the first write (or finish) with the
 * RIFF and data sizes set to 0xFFFFFFFF, the conventional "unknown length"
 * that players read as "until end of stream", then samples as they come.
 * Raw PCM is the same sample path without any header.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/mem.h"
#include "handlers/audio/audio_impl.h"

#define WAV_HEADER_BYTES 44
/* Largest data chunk whose RIFF size (36 + data) still fits 32 bits. */
#define WAV_MAX_DATA ((size_t)0xFFFFFFFFu - 36u - 1u)

struct wav_state {
	int rate;
	int stream;
	int header; /* 1: emit a WAV header (0 for raw PCM) */
	int header_done;
	struct buf data; /* buffered WAV only */
};

static void wav_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
	p[2] = (unsigned char)((v >> 16) & 0xff);
	p[3] = (unsigned char)((v >> 24) & 0xff);
}

static void wav_put_u16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void wav_make_header(unsigned char h[WAV_HEADER_BYTES], int rate, uint32_t riff_size,
			    uint32_t data_size)
{
	h[0] = 'R', h[1] = 'I', h[2] = 'F', h[3] = 'F';
	wav_put_u32(h + 4, riff_size);
	h[8] = 'W', h[9] = 'A', h[10] = 'V', h[11] = 'E';
	h[12] = 'f', h[13] = 'm', h[14] = 't', h[15] = ' ';
	wav_put_u32(h + 16, 16);		  /* fmt chunk size */
	wav_put_u16(h + 20, 1);			  /* PCM */
	wav_put_u16(h + 22, 1);			  /* channels */
	wav_put_u32(h + 24, (uint32_t)rate);	  /* sample rate */
	wav_put_u32(h + 28, (uint32_t)rate * 2u); /* byte rate */
	wav_put_u16(h + 32, 2);			  /* block align */
	wav_put_u16(h + 34, 16);		  /* bits per sample */
	h[36] = 'd', h[37] = 'a', h[38] = 't', h[39] = 'a';
	wav_put_u32(h + 40, data_size);
}

/* Append n samples as s16le to b. */
static int wav_append_samples(struct buf *b, const int16_t *pcm, size_t n)
{
	unsigned char tmp[2048];
	size_t done = 0;

	if (n > (SIZE_MAX - buf_len(b)) / 2 || 2 * n > audio_buf_room(b))
		return CV_E2BIG; /* all or nothing */
	while (done < n) {
		size_t k = n - done < sizeof tmp / 2 ? n - done : sizeof tmp / 2;
		int rc;

		for (size_t i = 0; i < k; i++)
			wav_put_u16(tmp + 2 * i, (uint16_t)pcm[done + i]);
		rc = buf_append(b, tmp, 2 * k);
		if (rc)
			return rc;
		done += k;
	}
	return CV_OK;
}

static int wav_open_common(int rate, const struct audio_enc_opts *o, int header, void **state)
{
	struct wav_state *s = xcalloc(1, sizeof *s);

	s->rate = rate;
	s->stream = o->stream;
	s->header = header;
	buf_init(&s->data, WAV_MAX_DATA);
	*state = s;
	return CV_OK;
}

static int wav_open(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen)
{
	return wav_open_common(rate, o, 1, state);
}

static int pcm_open(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen)
{
	return wav_open_common(rate, o, 0, state);
}

static int wav_emit_stream_header(struct wav_state *s, struct buf *out)
{
	unsigned char h[WAV_HEADER_BYTES];
	int rc;

	if (s->header_done)
		return CV_OK;
	wav_make_header(h, s->rate, 0xFFFFFFFFu, 0xFFFFFFFFu);
	rc = buf_append(out, h, sizeof h);
	if (rc)
		return rc;
	s->header_done = 1;
	return CV_OK;
}

static int wav_write(void *state, const int16_t *pcm, size_t n, struct buf *out)
{
	struct wav_state *s = state;
	int rc;

	if (!s->header || s->stream) {
		if (s->header) {
			rc = wav_emit_stream_header(s, out);
			if (rc)
				return rc;
		}
		return wav_append_samples(out, pcm, n);
	}
	/* Buffered: the final output is header + data, which must fit out. */
	if (audio_buf_room(out) < WAV_HEADER_BYTES || n > (audio_buf_room(out) - WAV_HEADER_BYTES) / 2 ||
	    buf_len(&s->data) > audio_buf_room(out) - WAV_HEADER_BYTES - 2 * n)
		return CV_E2BIG;
	return wav_append_samples(&s->data, pcm, n);
}

static int wav_finish(void *state, struct buf *out)
{
	struct wav_state *s = state;
	unsigned char h[WAV_HEADER_BYTES];
	size_t len = buf_len(&s->data);
	int rc;

	if (!s->header)
		return CV_OK;
	if (s->stream)
		return wav_emit_stream_header(s, out);
	if (audio_buf_room(out) < WAV_HEADER_BYTES || len > audio_buf_room(out) - WAV_HEADER_BYTES)
		return CV_E2BIG;
	wav_make_header(h, s->rate, (uint32_t)(36u + len), (uint32_t)len);
	rc = buf_append(out, h, sizeof h);
	if (!rc && len)
		rc = buf_append(out, buf_data(&s->data), len);
	buf_free(&s->data);
	return rc;
}

static void wav_free(void *state)
{
	struct wav_state *s = state;

	if (!s)
		return;
	buf_free(&s->data);
	free(s);
}

const struct audio_backend audio_backend_wav = {
    .name = "wav", .open = wav_open, .write = wav_write, .finish = wav_finish, .free = wav_free};

const struct audio_backend audio_backend_pcm = {
    .name = "pcm", .open = pcm_open, .write = wav_write, .finish = wav_finish, .free = wav_free};
