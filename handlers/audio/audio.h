/* handlers/audio/audio.h — audio output formats: WAV, Ogg Opus, raw PCM, FLAC, MP3.
 *
 * An encoder takes mono float PCM at the engine's rate (in_rate), resamples
 * to out_rate when they differ (libsoxr, handlers/audio/resample.h), and appends
 * encoded bytes to a capped struct buf. Encoders run on the HTTP thread,
 * never on the worker.
 *
 * Streaming vs buffered (opts.stream):
 *  - WAV buffered: exact RIFF header with real sizes, emitted at finish.
 *    WAV streamed: header first with the "unknown length" sizes 0xFFFFFFFF
 *    (RIFF and data chunk), then samples as they come.
 *  - Opus: Ogg Opus via libopusenc; streamed output flushes a page about
 *    every 100 ms of audio (decision delay 0, muxing delay 4800).
 *  - PCM: s16le, no header. FLAC: libFLAC stream encoder, 16-bit.
 *  - MP3: LAME CBR at opts.mp3_bitrate_kbps.
 * Writing zero samples then finishing always yields a valid (empty or
 * silent) stream; no library assertion can fire.
 */
#ifndef CV_HANDLERS_AUDIO_H
#define CV_HANDLERS_AUDIO_H

#include <stddef.h>

#include "common/buf.h"

enum audio_format {
	AUDIO_FMT_WAV = 0,
	AUDIO_FMT_OPUS,
	AUDIO_FMT_PCM,
	AUDIO_FMT_FLAC,
	AUDIO_FMT_MP3,
	AUDIO_FMT_COUNT
};

struct audio_enc_opts {
	int stream;	      /* 1: emit bytes as early as possible */
	int opus_bitrate;     /* bits/s, e.g. 32000 */
	int opus_complexity;  /* 0..10 (libopus default 10) */
	int mp3_bitrate_kbps; /* e.g. 64 */
	int flac_level;	      /* 0..8 */
};

/* "wav" | "opus" | "pcm" | "flac" | "mp3" → format; CV_EINVAL otherwise. */
int audio_format_parse(const char *s, enum audio_format *out);
const char *audio_format_name(enum audio_format f);
/* Content-Type for a format at rate (pcm: "audio/L16; rate=24000; channels=1"). */
void audio_format_content_type(enum audio_format f, int rate, char *dst, size_t cap);
/* Is out_rate one the format can carry? (Opus/MP3 restrict rates.) */
int audio_rate_supported(enum audio_format f, int rate);

struct audio_enc;

int audio_enc_new(enum audio_format f, int in_rate, int out_rate, const struct audio_enc_opts *o,
		  struct audio_enc **out, char *err, size_t errlen);
/* Feed n samples at in_rate; encoded bytes are appended to out (CV_E2BIG if
 * out's cap is hit). */
int audio_enc_write(struct audio_enc *e, const float *pcm, size_t n, struct buf *out);
/* Flush everything (call once). */
int audio_enc_finish(struct audio_enc *e, struct buf *out);
/* Samples written so far, counted at in_rate. */
size_t audio_enc_samples_in(const struct audio_enc *e);
void audio_enc_free(struct audio_enc *e); /* NULL no-op */

#endif
