/* handlers/audio/audio_mp3.c — MP3 backend over LAME (CBR, mono).
 *
 * DESIGN: one lame_global_flags per stream; input and output sample rate are
 * both the requested output rate (audio.c resamples), so LAME never picks a
 * lower rate for a low bitrate on its own: the six API rates map to MPEG-1
 * (44.1/48 kHz), MPEG-2 (16/22.05/24 kHz) and MPEG-2.5 (8 kHz) layer III.
 * CBR at opts.mp3_bitrate_kbps (LAME rounds to the nearest bitrate the MPEG
 * version allows). No Xing/LAME info frame (lame_set_bWriteVbrTag(0)): it
 * would need a seek back to the start, which a stream cannot do, and CBR
 * needs none. Samples go through lame_encode_buffer() in bounded chunks into
 * a scratch buffer sized by LAME's own worst case (1.25 n + 7200), and
 * lame_encode_flush() pads and emits the last frames at finish. LAME's
 * console messages are routed into our log at debug level.
 */
#include <lame/lame.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "handlers/audio/audio_impl.h"

#define MP3_CHUNK    4608 /* samples per lame_encode_buffer call */
#define MP3_BUF_SIZE (MP3_CHUNK + MP3_CHUNK / 4 + 7200)

struct mp3_state {
	lame_global_flags *gfp;
	unsigned char mp3buf[MP3_BUF_SIZE];
};

static void mp3_report(const char *fmt, va_list ap)
{
	char line[256];

	if (!LOG_ENABLED(LOG_LEVEL_DEBUG))
		return;
	vsnprintf(line, sizeof line, fmt, ap);
	log_debug("audio", "lame: %s", line);
}

static void mp3_free(void *state)
{
	struct mp3_state *s = state;

	if (!s)
		return;
	if (s->gfp)
		lame_close(s->gfp);
	free(s);
}

static int mp3_open(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen)
{
	struct mp3_state *s;
	int bad = 0;

	*state = NULL;
	if (o->mp3_bitrate_kbps < 8 || o->mp3_bitrate_kbps > 320) {
		snprintf(err, errlen, "mp3 bitrate %d kb/s out of range [8, 320]", o->mp3_bitrate_kbps);
		return CV_EINVAL;
	}
	s = xcalloc(1, sizeof *s);
	s->gfp = lame_init();
	if (!s->gfp) {
		snprintf(err, errlen, "mp3: lame_init failed");
		mp3_free(s);
		return CV_ENOMEM;
	}
	lame_set_errorf(s->gfp, mp3_report);
	lame_set_debugf(s->gfp, mp3_report);
	lame_set_msgf(s->gfp, mp3_report);
	bad |= lame_set_num_channels(s->gfp, 1);
	bad |= lame_set_in_samplerate(s->gfp, rate);
	bad |= lame_set_out_samplerate(s->gfp, rate);
	bad |= lame_set_mode(s->gfp, MONO);
	bad |= lame_set_VBR(s->gfp, vbr_off);
	bad |= lame_set_brate(s->gfp, o->mp3_bitrate_kbps);
	bad |= lame_set_quality(s->gfp, 5);
	bad |= lame_set_bWriteVbrTag(s->gfp, 0);
	if (bad != 0 || lame_init_params(s->gfp) < 0) {
		snprintf(err, errlen, "mp3: LAME rejected rate %d / %d kb/s", rate, o->mp3_bitrate_kbps);
		mp3_free(s);
		return CV_EINVAL;
	}
	if (lame_get_out_samplerate(s->gfp) != rate) {
		snprintf(err, errlen, "mp3: LAME cannot encode at %d Hz (chose %d)", rate,
			 lame_get_out_samplerate(s->gfp));
		mp3_free(s);
		return CV_EINVAL;
	}
	*state = s;
	return CV_OK;
}

static int mp3_emit(struct mp3_state *s, int nbytes, struct buf *out)
{
	if (nbytes < 0) {
		log_err("audio", "lame encode failed: %d", nbytes);
		return nbytes == -2 ? CV_ENOMEM : CV_EIO;
	}
	return nbytes ? buf_append(out, s->mp3buf, (size_t)nbytes) : CV_OK;
}

static int mp3_write(void *state, const int16_t *pcm, size_t n, struct buf *out)
{
	struct mp3_state *s = state;
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < MP3_CHUNK ? n - done : MP3_CHUNK;
		int rc, got;

		/* Mono: LAME reads only the left channel. */
		got = lame_encode_buffer(s->gfp, pcm + done, pcm + done, (int)k, s->mp3buf,
					 (int)sizeof s->mp3buf);
		rc = mp3_emit(s, got, out);
		if (rc)
			return rc;
		done += k;
	}
	return CV_OK;
}

static int mp3_finish(void *state, struct buf *out)
{
	struct mp3_state *s = state;

	return mp3_emit(s, lame_encode_flush(s->gfp, s->mp3buf, (int)sizeof s->mp3buf), out);
}

const struct audio_backend audio_backend_mp3 = {
    .name = "mp3", .open = mp3_open, .write = mp3_write, .finish = mp3_finish, .free = mp3_free};
