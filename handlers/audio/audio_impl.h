/* handlers/audio/audio_impl.h — private interface between handlers/audio/audio.c and the
 * encoder backends (audio_wav.c: WAV and raw PCM, audio_opus.c, audio_flac.c,
 * audio_mp3.c). Not for use outside handlers/audio*.c.
 *
 * audio.c owns the common pipeline (clip, resample, convert to s16 with
 * rounding) and hands each backend mono s16 samples already at the output
 * rate. A backend is a small vtable over a private state:
 *  - open:   validate options and create the library encoder; on failure it
 *            frees what it made and fills err.
 *  - write:  encode n samples (n may be 0), append bytes to out. A write with
 *            n == 0 is a chance to emit headers early (streamed WAV, Opus).
 *  - finish: flush everything into out; called at most once.
 *  - free:   release everything, whether or not finish ran or failed; it
 *            must not touch the caller's buffers.
 * Errors are CV_E* codes: CV_E2BIG when out's cap is hit, CV_ENOMEM, CV_EIO
 * when the library itself fails. After an error audio.c never calls write or
 * finish again (only free).
 */
#ifndef CV_HANDLERS_AUDIO_IMPL_H
#define CV_HANDLERS_AUDIO_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "handlers/audio/audio.h"

struct audio_backend {
	const char *name;
	int (*open)(int rate, const struct audio_enc_opts *o, void **state, char *err, size_t errlen);
	int (*write)(void *state, const int16_t *pcm, size_t n, struct buf *out);
	int (*finish)(void *state, struct buf *out);
	void (*free)(void *state);
};

extern const struct audio_backend audio_backend_wav;
extern const struct audio_backend audio_backend_pcm;
extern const struct audio_backend audio_backend_opus;
extern const struct audio_backend audio_backend_flac;
extern const struct audio_backend audio_backend_mp3;

/* Bytes still free in out before its cap. */
size_t audio_buf_room(const struct buf *out);

#endif
