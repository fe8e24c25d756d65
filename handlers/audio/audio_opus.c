/* handlers/audio/audio_opus.c — Ogg Opus backend over libopusenc 0.2.1 (push API).
 *
 * DESIGN: ope_encoder_create_callbacks() with a write callback that appends
 * each Ogg page to the buffer of the call in progress (s->cur, set only for
 * the duration of our write/finish), so pages reach the HTTP layer as soon as
 * libopusenc releases them. We feed libopusenc s16 at the output rate the
 * client asked for (audio.c resamples first when the engine rate differs);
 * libopusenc records that rate in OpusHead as the original rate and resamples
 * to 48 kHz internally (Speex, quality 5), so players see the requested rate.
 *
 * Debian 12 ships libopusenc 0.2.1, whose pitfalls are handled here:
 *  - frame_size_request is left uninitialised (valgrind): set
 *    OPUS_SET_EXPERT_FRAME_DURATION(OPUS_FRAMESIZE_20_MS) right after create;
 *  - draining with zero samples written asserts at 48 kHz: if nothing was
 *    written, one 20 ms frame of silence goes in before the drain;
 *  - the serial number comes from rand() (always the same stream serial):
 *    set OPE_SET_SERIALNO from getrandom() right after create;
 *  - a failing write callback wedges the encoder: our errors are sticky.
 * Streaming sets decision delay 0 and muxing delay 4800 (100 ms at 48 kHz,
 * not 0, which gives fewer pages) and flushes the headers at the first write.
 */
#include <opus/opusenc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "handlers/audio/audio_impl.h"

#define AUDIO_OPUS_BITRATE_MIN 6000
#define AUDIO_OPUS_BITRATE_MAX 510000

struct opus_state {
	OggOpusEnc *enc;
	struct buf *cur; /* where pages go during a call; NULL otherwise */
	int err;	 /* first CV_E* the write callback hit */
	int rate;
	int stream;
	int header_flushed;
	size_t written; /* samples given to libopusenc */
};

static int opus_write_cb(void *user, const unsigned char *ptr, opus_int32 len)
{
	struct opus_state *s = user;
	int rc;

	if (!s->cur)
		return 0; /* outside our calls (destroy): nobody wants the bytes */
	if (s->err)
		return 1;
	rc = buf_append(s->cur, ptr, (size_t)len);
	if (rc) {
		s->err = rc;
		return 1;
	}
	return 0;
}

static int opus_close_cb(void *user)
{
	return 0;
}

static opus_int32 opus_random_serial(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		v = (uint32_t)ts.tv_nsec ^ ((uint32_t)ts.tv_sec << 7) ^ ((uint32_t)getpid() << 16);
	}
	return (opus_int32)(v & 0x7fffffff);
}

static void opus_free(void *state)
{
	struct opus_state *s = state;

	if (!s)
		return;
	s->cur = NULL;
	if (s->enc)
		ope_encoder_destroy(s->enc);
	free(s);
}

static int opus_open(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen)
{
	OpusEncCallbacks cbs = {opus_write_cb, opus_close_cb};
	struct opus_state *s;
	OggOpusComments *comments;
	int oerr = OPE_OK;
	const char *what = "create";

	*state = NULL;
	if (o->opus_bitrate < AUDIO_OPUS_BITRATE_MIN || o->opus_bitrate > AUDIO_OPUS_BITRATE_MAX) {
		snprintf(err, errlen, "opus bitrate %d out of range [%d, %d]", o->opus_bitrate,
			 AUDIO_OPUS_BITRATE_MIN, AUDIO_OPUS_BITRATE_MAX);
		return CV_EINVAL;
	}
	s = xcalloc(1, sizeof *s);
	s->rate = rate;
	s->stream = o->stream;
	comments = ope_comments_create();
	if (!comments) {
		oerr = OPE_ALLOC_FAIL;
		goto fail;
	}
	/* libopusenc copies the comments at create. */
	s->enc = ope_encoder_create_callbacks(&cbs, s, comments, rate, 1, 0, &oerr);
	ope_comments_destroy(comments);
	if (!s->enc)
		goto fail;
	what = "OPUS_SET_EXPERT_FRAME_DURATION";
	if ((oerr = ope_encoder_ctl(s->enc, OPUS_SET_EXPERT_FRAME_DURATION(OPUS_FRAMESIZE_20_MS))) != OPE_OK)
		goto fail;
	what = "OPE_SET_SERIALNO";
	if ((oerr = ope_encoder_ctl(s->enc, OPE_SET_SERIALNO(opus_random_serial()))) != OPE_OK)
		goto fail;
	what = "OPUS_SET_BITRATE";
	if ((oerr = ope_encoder_ctl(s->enc, OPUS_SET_BITRATE(o->opus_bitrate))) != OPE_OK)
		goto fail;
	what = "OPUS_SET_COMPLEXITY";
	if ((oerr = ope_encoder_ctl(s->enc, OPUS_SET_COMPLEXITY(o->opus_complexity))) != OPE_OK)
		goto fail;
	what = "OPUS_SET_SIGNAL";
	if ((oerr = ope_encoder_ctl(s->enc, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE))) != OPE_OK)
		goto fail;
	if (s->stream) {
		what = "OPE_SET_DECISION_DELAY";
		if ((oerr = ope_encoder_ctl(s->enc, OPE_SET_DECISION_DELAY(0))) != OPE_OK)
			goto fail;
		what = "OPE_SET_MUXING_DELAY";
		if ((oerr = ope_encoder_ctl(s->enc, OPE_SET_MUXING_DELAY(4800))) != OPE_OK)
			goto fail;
	}
	*state = s;
	return CV_OK;
fail:
	snprintf(err, errlen, "opus encoder %s failed (rate %d): %s", what, rate, ope_strerror(oerr));
	opus_free(s);
	return oerr == OPE_ALLOC_FAIL ? CV_ENOMEM : CV_EINVAL;
}

/* Map a libopusenc result after a call that may have written pages. */
static int opus_result(struct opus_state *s, int oerr, const char *what)
{
	s->cur = NULL;
	if (s->err)
		return s->err;
	if (oerr != OPE_OK) {
		log_err("audio", "opus %s failed: %s", what, ope_strerror(oerr));
		return oerr == OPE_ALLOC_FAIL ? CV_ENOMEM : CV_EIO;
	}
	return CV_OK;
}

static int opus_flush_header_once(struct opus_state *s)
{
	if (!s->stream || s->header_flushed)
		return OPE_OK;
	s->header_flushed = 1;
	return ope_encoder_flush_header(s->enc);
}

static int opus_write(void *state, const int16_t *pcm, size_t n, struct buf *out)
{
	struct opus_state *s = state;
	size_t done = 0;
	int oerr;

	s->cur = out;
	oerr = opus_flush_header_once(s);
	while (oerr == OPE_OK && !s->err && done < n) {
		int k = n - done < 48000 ? (int)(n - done) : 48000;

		oerr = ope_encoder_write(s->enc, pcm + done, k);
		done += (size_t)k;
	}
	s->written += done;
	return opus_result(s, oerr, "write");
}

static int opus_finish(void *state, struct buf *out)
{
	static const int16_t silence[960]; /* 20 ms at 48 kHz, the most we need */
	struct opus_state *s = state;
	int oerr;

	s->cur = out;
	oerr = opus_flush_header_once(s);
	if (oerr == OPE_OK && !s->err && s->written == 0) {
		/* 0.2.1 asserts when draining an encoder that never got audio. */
		oerr = ope_encoder_write(s->enc, silence, s->rate / 50);
		s->written += (size_t)(s->rate / 50);
	}
	if (oerr == OPE_OK && !s->err)
		oerr = ope_encoder_drain(s->enc);
	return opus_result(s, oerr, "drain");
}

const struct audio_backend audio_backend_opus = {
    .name = "opus", .open = opus_open, .write = opus_write, .finish = opus_finish, .free = opus_free};
