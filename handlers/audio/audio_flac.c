/* handlers/audio/audio_flac.c — native FLAC backend over the libFLAC stream encoder.
 *
 * DESIGN: FLAC__stream_encoder_init_stream(), 16-bit mono at the output rate,
 * streamable subset, compression level from the options. The two modes
 * differ only in where the bytes go:
 *  - streamed: straight into the caller's buffer, with no seek callback, so
 *    libFLAC leaves STREAMINFO as written at init (total samples 0 =
 *    "unknown", MD5 unset), which is what a streamable FLAC is allowed to say.
 *    init writes "fLaC" + STREAMINFO before any caller buffer exists; those
 *    bytes wait in `pending` and go out at the first write (or finish).
 *  - buffered: into a private in-memory "file" with seek and tell callbacks,
 *    so at finish libFLAC rewrites STREAMINFO with the real total samples,
 *    frame sizes and MD5; the whole file is appended to the caller's buffer
 *    then. Its size is checked against the room left in the caller's buffer
 *    on every call, so a cap is hit as early as the data allows.
 * FLAC__stream_encoder_delete() runs finish itself (and so the callbacks)
 * when finish was never called; `discard` makes those writes go nowhere.
 */
#include <FLAC/stream_encoder.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "handlers/audio/audio_impl.h"

struct flac_mem {
	unsigned char *p;
	size_t len, alloc, pos, cap;
};

struct flac_state {
	FLAC__StreamEncoder *enc;
	int stream;
	int discard;
	int err;	 /* first CV_E* a callback hit */
	struct buf *cur; /* streamed: the caller's buffer during a call */
	struct buf pending;
	struct flac_mem mem; /* buffered */
	FLAC__int32 ibuf[1024];
};

static int flac_mem_write(struct flac_mem *m, const void *p, size_t n)
{
	size_t end;

	if (m->pos > m->len || n > m->cap || m->pos > m->cap - n)
		return CV_E2BIG;
	end = m->pos + n;
	if (end > m->alloc) {
		size_t want = m->alloc ? m->alloc : 4096;
		unsigned char *q;

		while (want < end)
			want = want > SIZE_MAX / 2 ? end : want * 2;
		q = realloc(m->p, want);
		if (!q)
			return CV_ENOMEM;
		m->p = q;
		m->alloc = want;
	}
	memcpy(m->p + m->pos, p, n);
	m->pos = end;
	if (end > m->len)
		m->len = end;
	return CV_OK;
}

static FLAC__StreamEncoderWriteStatus flac_write_cb(const FLAC__StreamEncoder *enc, const FLAC__byte buffer[],
						    size_t bytes, uint32_t samples, uint32_t frame,
						    void *client)
{
	struct flac_state *s = client;
	int rc;

	if (s->discard)
		return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
	if (s->err)
		return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
	if (!s->stream)
		rc = flac_mem_write(&s->mem, buffer, bytes);
	else if (s->cur)
		rc = buf_append(s->cur, buffer, bytes);
	else
		rc = buf_append(&s->pending, buffer, bytes);
	if (rc) {
		s->err = rc;
		return FLAC__STREAM_ENCODER_WRITE_STATUS_FATAL_ERROR;
	}
	return FLAC__STREAM_ENCODER_WRITE_STATUS_OK;
}

static FLAC__StreamEncoderSeekStatus flac_seek_cb(const FLAC__StreamEncoder *enc, FLAC__uint64 off,
						  void *client)
{
	struct flac_state *s = client;

	if (s->discard)
		return FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
	if (off > s->mem.len)
		return FLAC__STREAM_ENCODER_SEEK_STATUS_ERROR;
	s->mem.pos = (size_t)off;
	return FLAC__STREAM_ENCODER_SEEK_STATUS_OK;
}

static FLAC__StreamEncoderTellStatus flac_tell_cb(const FLAC__StreamEncoder *enc, FLAC__uint64 *off,
						  void *client)
{
	struct flac_state *s = client;

	*off = s->mem.pos;
	return FLAC__STREAM_ENCODER_TELL_STATUS_OK;
}

static void flac_free(void *state)
{
	struct flac_state *s = state;

	if (!s)
		return;
	s->discard = 1;
	s->cur = NULL;
	if (s->enc)
		FLAC__stream_encoder_delete(s->enc);
	buf_free(&s->pending);
	free(s->mem.p);
	free(s);
}

static int flac_open(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen)
{
	struct flac_state *s;
	FLAC__StreamEncoderInitStatus ist;
	FLAC__bool ok = true;

	*state = NULL;
	if (o->flac_level < 0 || o->flac_level > 8) {
		snprintf(err, errlen, "flac compression level %d out of range [0, 8]", o->flac_level);
		return CV_EINVAL;
	}
	s = xcalloc(1, sizeof *s);
	s->stream = o->stream;
	buf_init(&s->pending, 4096);
	s->mem.cap = SIZE_MAX;
	s->enc = FLAC__stream_encoder_new();
	if (!s->enc) {
		snprintf(err, errlen, "flac: cannot allocate encoder");
		flac_free(s);
		return CV_ENOMEM;
	}
	ok &= FLAC__stream_encoder_set_verify(s->enc, false);
	ok &= FLAC__stream_encoder_set_streamable_subset(s->enc, true);
	ok &= FLAC__stream_encoder_set_channels(s->enc, 1);
	ok &= FLAC__stream_encoder_set_bits_per_sample(s->enc, 16);
	ok &= FLAC__stream_encoder_set_sample_rate(s->enc, (uint32_t)rate);
	ok &= FLAC__stream_encoder_set_compression_level(s->enc, (uint32_t)o->flac_level);
	if (!ok) {
		snprintf(err, errlen, "flac: encoder settings rejected (rate %d, level %d)", rate,
			 o->flac_level);
		flac_free(s);
		return CV_EINVAL;
	}
	if (s->stream)
		ist = FLAC__stream_encoder_init_stream(s->enc, flac_write_cb, NULL, NULL, NULL, s);
	else
		ist = FLAC__stream_encoder_init_stream(s->enc, flac_write_cb, flac_seek_cb, flac_tell_cb,
						       NULL, s);
	if (ist != FLAC__STREAM_ENCODER_INIT_STATUS_OK) {
		snprintf(err, errlen, "flac: encoder init failed: %s",
			 FLAC__StreamEncoderInitStatusString[ist]);
		flac_free(s);
		return CV_EINVAL;
	}
	*state = s;
	return CV_OK;
}

/* Start a call: route output to out, releasing pending header bytes first. */
static int flac_begin(struct flac_state *s, struct buf *out)
{
	int rc;

	if (s->stream) {
		if (buf_len(&s->pending)) {
			rc = buf_append(out, buf_data(&s->pending), buf_len(&s->pending));
			if (rc)
				return rc;
			buf_reset(&s->pending);
		}
		s->cur = out;
	} else {
		s->mem.cap = audio_buf_room(out);
		if (s->mem.len > s->mem.cap)
			return CV_E2BIG;
	}
	return CV_OK;
}

static int flac_result(struct flac_state *s, FLAC__bool ok, const char *what)
{
	s->cur = NULL;
	if (s->err)
		return s->err;
	if (!ok) {
		FLAC__StreamEncoderState st = FLAC__stream_encoder_get_state(s->enc);

		log_err("audio", "flac %s failed: %s", what, FLAC__StreamEncoderStateString[st]);
		return st == FLAC__STREAM_ENCODER_MEMORY_ALLOCATION_ERROR ? CV_ENOMEM : CV_EIO;
	}
	return CV_OK;
}

static int flac_write(void *state, const int16_t *pcm, size_t n, struct buf *out)
{
	struct flac_state *s = state;
	size_t done = 0;
	FLAC__bool ok = true;
	int rc;

	rc = flac_begin(s, out);
	if (rc)
		return s->err = rc;
	while (ok && done < n) {
		size_t k = n - done;

		if (k > sizeof s->ibuf / sizeof s->ibuf[0])
			k = sizeof s->ibuf / sizeof s->ibuf[0];
		for (size_t i = 0; i < k; i++)
			s->ibuf[i] = pcm[done + i];
		ok = FLAC__stream_encoder_process_interleaved(s->enc, s->ibuf, (uint32_t)k);
		done += k;
	}
	return flac_result(s, ok, "process");
}

static int flac_finish(void *state, struct buf *out)
{
	struct flac_state *s = state;
	FLAC__bool ok;
	int rc;

	rc = flac_begin(s, out);
	if (rc)
		return s->err = rc;
	ok = FLAC__stream_encoder_finish(s->enc);
	rc = flac_result(s, ok, "finish");
	if (rc || s->stream)
		return rc;
	return buf_append(out, s->mem.p, s->mem.len);
}

const struct audio_backend audio_backend_flac = {
    .name = "flac", .open = flac_open, .write = flac_write, .finish = flac_finish, .free = flac_free};
