/* engine/espeak/espeak.c — the espeak-ng backend (CPU, no weights, embedded default).
 *
 * DESIGN: libespeak-ng keeps all of its state in globals, so this backend is
 * a process-wide singleton: a second open while one is live is refused
 * (CV_EINVAL), sequential open/close/open is fine. espeak_Initialize() runs
 * once per process and espeak_Terminate() is never called: with 1.51
 * (Debian 12), Initialize after Terminate leaves the library's internal
 * command-FIFO thread in a state where the next SetVoiceByName goes through
 * it and never completes, so the second Terminate (and espeak_Synchronize)
 * deadlock (reproduced with a 20-line program). The one Terminate happens
 * in an atexit handler when no engine is open, so valgrind sees the
 * library's thread joined and its tables freed. Consequence: the data
 * directory is fixed by the first open; a later open asking for another one
 * is refused.
 *
 * Synthesis uses AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth() runs on the
 * caller's thread (the scheduler's worker) and calls our callback with
 * ~100 ms of 16-bit PCM at a time; we convert to float, push it through the
 * sink and poll cancellation on every call, returning 1 to abort. SSML is
 * off, so '<' and '>' are read literally.
 *
 * Speakers are espeak voices: id = lower-cased file name of the voice
 * ("en", "en-us", "cmn", "de"...; exactly what espeak_SetVoiceByName()
 * accepts), language = the voice's first language tag, name = its
 * display name. Default speaker: the configured one (must exist) or "en".
 * When a request names no speaker and its text contains CJK ideographs, the
 * Mandarin voice "cmn" is used instead, unless the default voice itself
 * reads Han characters (cmn*, yue*, hak, ja).
 *
 * Same request, same audio: libespeak-ng keeps two pieces of wave-generator
 * state from one utterance to the next that no API resets — the pitch
 * flutter's phase (a function-static index) and the cycle counter that
 * roughness modulates — so with a stock voice "Hello" after "Hi." and after
 * a long sentence differ in samples and length. Voices are therefore loaded
 * from a copy of their own voice file with "flutter 0" and "roughness 0"
 * appended (later lines override earlier ones; everything else — language,
 * tunes, formants — is the voice's own). The copy lives in a memfd opened
 * through /proc/self/fd (espeak_SetVoiceByFile reads it during the call and
 * truncates paths at 60 bytes), else in a short-lived file under /tmp;
 * when neither works the stock voice is loaded by name and a warning says
 * the output may depend on the previous request.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <espeak-ng/speak_lib.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/path.h"
#include "engine/backend.h"

#define ESPEAK_BUFLENGTH_MS    100
#define ESPEAK_DEFAULT_SPEAKER "en"
#define ESPEAK_CJK_SPEAKER     "cmn"
#define ESPEAK_CONVERT_BLOCK   1024
#define ESPEAK_WARMUP_TEXT     "Warming up the speech engine."
#define ESPEAK_VOICE_FILE_MAX  (64 * 1024)
#define ESPEAK_VOICE_STEADY    "\nflutter 0\nroughness 0\n"

struct espeak_impl {
	int sample_rate;
	char describe[96];
	struct engine_speaker *speakers;
	char **voice_files; /* per speaker: its voice file, relative to the data dir */
	size_t n_speakers;
	const struct engine_speaker *default_speaker;
	const struct engine_speaker *cjk_speaker; /* NULL: no auto-switch */
	const struct engine_speaker *cur_voice;	  /* voice espeak has loaded */
	int cur_rate;
};

/* One espeak_Synth() call in flight (only ever one: the library is global). */
struct espeak_run {
	const struct engine_sink *sink;
	int64_t t_start;
	int64_t t_first_audio;
	int aborted;
};

/* Process-wide library state. */
static pthread_mutex_t espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static int espeak_initialized;
static int espeak_in_use;
static int espeak_rate;
static char espeak_data_dir[1024]; /* as given at first init ("" = default) */
static pid_t espeak_init_pid;	   /* atexit handlers survive fork(); the library's thread does not */
static int espeak_atexit_registered;
static int espeak_terminated;
static struct espeak_run *espeak_cur_run; /* set only around espeak_Synth() */

static int espeak_synth_cb(short *wav, int numsamples, espeak_EVENT *events)
{
	struct espeak_run *r = espeak_cur_run;
	float block[ESPEAK_CONVERT_BLOCK];

	(void)events;
	if (!r)
		return 0;
	if (r->aborted)
		return 1;
	if (wav && numsamples > 0) {
		if (!r->t_first_audio)
			r->t_first_audio = clock_now_ns();
		for (int off = 0; off < numsamples; off += ESPEAK_CONVERT_BLOCK) {
			int n =
			    numsamples - off < ESPEAK_CONVERT_BLOCK ? numsamples - off : ESPEAK_CONVERT_BLOCK;
			for (int i = 0; i < n; i++)
				block[i] = (float)wav[off + i] / 32768.0f;
			if (r->sink->write(r->sink->user, block, (size_t)n) != 0) {
				r->aborted = 1;
				return 1;
			}
		}
	}
	if (r->sink->cancelled && r->sink->cancelled(r->sink->user)) {
		r->aborted = 1;
		return 1;
	}
	return 0;
}

/* espeak accepts the espeak-ng-data directory itself or its parent. */
static int espeak_check_data_dir(const char *dir, char *err, size_t errlen)
{
	char p[1200];

	if (!path_is_dir(dir)) {
		snprintf(err, errlen, "espeak-ng data dir '%s' is not a directory", dir);
		return CV_EINVAL;
	}
	snprintf(p, sizeof p, "%s/phontab", dir);
	if (path_is_file(p))
		return CV_OK;
	snprintf(p, sizeof p, "%s/espeak-ng-data/phontab", dir);
	if (path_is_file(p))
		return CV_OK;
	snprintf(err, errlen, "espeak-ng data dir '%s' has no phontab (give the espeak-ng-data directory)",
		 dir);
	return CV_EINVAL;
}

/* At exit, give the library back (joins its internal thread, frees its
 * tables) so leak checkers see a clean process. Skipped while an engine is
 * still open (a worker may be inside espeak) and in a forked child. */
static void espeak_atexit(void)
{
	pthread_mutex_lock(&espeak_lock);
	if (espeak_initialized && !espeak_in_use && espeak_init_pid == getpid()) {
		espeak_Terminate();
		espeak_terminated = 1; /* never Initialize again (see DESIGN) */
	}
	pthread_mutex_unlock(&espeak_lock);
}

/* Claim the library for one engine, initializing it on first use. */
static int espeak_acquire(const char *data_dir, char *err, size_t errlen)
{
	int rc = CV_OK;
	const char *want = data_dir ? data_dir : "";

	pthread_mutex_lock(&espeak_lock);
	if (espeak_terminated) {
		snprintf(err, errlen, "espeak-ng was already shut down in this process");
		rc = CV_EENGINE;
		goto out;
	}
	if (espeak_in_use) {
		snprintf(err, errlen,
			 "an espeak-ng engine is already open in this process (espeak-ng has global state)");
		rc = CV_EINVAL;
		goto out;
	}
	if (espeak_initialized) {
		if (strcmp(espeak_data_dir, want) != 0) {
			snprintf(err, errlen,
				 "espeak-ng was initialized with data dir '%s' in this process; cannot "
				 "switch to '%s'",
				 espeak_data_dir[0] ? espeak_data_dir : "(default)",
				 want[0] ? want : "(default)");
			rc = CV_EINVAL;
			goto out;
		}
	} else {
		if (strlen(want) >= sizeof espeak_data_dir) {
			snprintf(err, errlen, "espeak-ng data dir path too long");
			rc = CV_EINVAL;
			goto out;
		}
		if (want[0] && (rc = espeak_check_data_dir(want, err, errlen)) != CV_OK)
			goto out;
		int sr = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ESPEAK_BUFLENGTH_MS,
					   want[0] ? want : NULL, espeakINITIALIZE_DONT_EXIT);
		if (sr <= 0) {
			snprintf(err, errlen, "espeak-ng initialization failed (data dir '%s')",
				 want[0] ? want : "(default)");
			rc = CV_EENGINE;
			goto out;
		}
		espeak_rate = sr;
		cv_strlcpy(espeak_data_dir, want, sizeof espeak_data_dir);
		espeak_initialized = 1;
		espeak_init_pid = getpid();
		if (!espeak_atexit_registered) {
			atexit(espeak_atexit);
			espeak_atexit_registered = 1;
		}
	}
	espeak_in_use = 1;
	espeak_SetSynthCallback(espeak_synth_cb);
out:
	pthread_mutex_unlock(&espeak_lock);
	return rc;
}

static void espeak_release(void)
{
	pthread_mutex_lock(&espeak_lock);
	espeak_in_use = 0;
	pthread_mutex_unlock(&espeak_lock);
}

static const struct engine_speaker *espeak_find(const struct espeak_impl *im, const char *id)
{
	for (size_t i = 0; i < im->n_speakers; i++)
		if (strcmp(im->speakers[i].id, id) == 0)
			return &im->speakers[i];
	for (size_t i = 0; i < im->n_speakers; i++)
		if (strcasecmp(im->speakers[i].id, id) == 0)
			return &im->speakers[i];
	return NULL;
}

static void espeak_free_speakers(struct espeak_impl *im)
{
	for (size_t i = 0; i < im->n_speakers; i++) {
		free((char *)im->speakers[i].id);
		free((char *)im->speakers[i].language);
		free((char *)im->speakers[i].name);
		free(im->voice_files[i]);
	}
	free(im->speakers);
	free(im->voice_files);
	im->speakers = NULL;
	im->voice_files = NULL;
	im->n_speakers = 0;
}

static void espeak_load_speakers(struct espeak_impl *im)
{
	const espeak_VOICE **v = espeak_ListVoices(NULL);
	size_t n = 0;

	while (v && v[n])
		n++;
	im->speakers = xcalloc(n ? n : 1, sizeof *im->speakers);
	im->voice_files = xcalloc(n ? n : 1, sizeof *im->voice_files);
	for (size_t i = 0; i < n; i++) {
		const char *file = v[i]->identifier;
		const char *slash;
		char *id;

		if (!file || !file[0])
			continue;
		slash = strrchr(file, '/');
		id = xstrdup(slash ? slash + 1 : file);
		for (char *c = id; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!id[0] || espeak_find(im, id)) {
			free(id);
			continue;
		}
		/* languages: (priority byte, NUL-terminated tag)*, then a 0 byte. */
		const char *lang = v[i]->languages && v[i]->languages[0] ? v[i]->languages + 1 : id;
		im->voice_files[im->n_speakers] = xstrdup(file);
		struct engine_speaker *s = &im->speakers[im->n_speakers++];
		s->id = id;
		s->language = xstrdup(lang[0] ? lang : id);
		s->name = xstrdup(v[i]->name ? v[i]->name : id);
		s->source = "espeak-ng";
	}
}

/* The voice file of speaker i with the steadying lines appended, as a
 * malloc'd string; NULL when the file cannot be read. */
static char *espeak_voice_text(const struct espeak_impl *im, size_t i, size_t *len)
{
	static const char *const dirs[] = {"lang", "voices"};
	const char *data = NULL;
	char path[1200];

	espeak_Info(&data);
	if (!data || !data[0])
		return NULL;
	for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
		if (snprintf(path, sizeof path, "%s/%s/%s", data, dirs[d], im->voice_files[i]) >=
			(int)sizeof path ||
		    !path_is_file(path))
			continue;
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		size_t cap = ESPEAK_VOICE_FILE_MAX + sizeof ESPEAK_VOICE_STEADY;
		char *buf = xmalloc(cap);
		size_t n = fread(buf, 1, ESPEAK_VOICE_FILE_MAX + 1, f);
		int bad = ferror(f) || n > ESPEAK_VOICE_FILE_MAX;
		fclose(f);
		if (bad) {
			free(buf);
			return NULL;
		}
		memcpy(buf + n, ESPEAK_VOICE_STEADY, sizeof ESPEAK_VOICE_STEADY);
		*len = n + sizeof ESPEAK_VOICE_STEADY - 1;
		return buf;
	}
	return NULL;
}

static int espeak_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Load speaker i's voice with flutter and roughness off (see DESIGN). The
 * path handed to espeak must be lower-case and under 60 bytes. */
static espeak_ERROR espeak_load_voice(const struct espeak_impl *im, size_t i)
{
	static unsigned tmp_seq;
	espeak_ERROR er = EE_NOT_FOUND;
	size_t len = 0;
	char *text = espeak_voice_text(im, i, &len);
	char path[64];

	if (text) {
		int fd = memfd_create("cosyvoiced-espeak-voice", MFD_CLOEXEC);
		if (fd >= 0) {
			snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
			if (espeak_write_all(fd, text, len) == 0)
				er = espeak_SetVoiceByFile(path);
			close(fd);
		}
		if (er != EE_OK) {
			snprintf(path, sizeof path, "/tmp/cosyvoiced-voice-%ld-%u", (long)getpid(),
				 tmp_seq++);
			fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd >= 0) {
				int ok = espeak_write_all(fd, text, len) == 0;
				close(fd);
				if (ok)
					er = espeak_SetVoiceByFile(path);
				unlink(path);
			}
		}
		free(text);
	}
	if (er == EE_OK)
		return er;
	log_warn("engine",
		 "espeak-ng voice '%s' loaded as shipped (its voice file could not be copied): its "
		 "output may vary with the previous request",
		 im->speakers[i].id);
	return espeak_SetVoiceByName(im->speakers[i].id);
}

/* Whether a voice already reads Han characters itself. */
static int espeak_reads_han(const struct engine_speaker *s)
{
	static const char *const prefixes[] = {"cmn", "yue", "hak", "ja"};
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		size_t l = strlen(prefixes[i]);
		if (strncasecmp(s->language, prefixes[i], l) == 0 &&
		    (s->language[l] == '\0' || s->language[l] == '-'))
			return 1;
	}
	return 0;
}

static int espeak_open(const struct engine_config *cfg, void **impl, char *err, size_t errlen)
{
	struct espeak_impl *im;
	const char *want;
	int rc;

	*impl = NULL;
	backend_report_stage(cfg, "initializing espeak-ng");
	rc = espeak_acquire(cfg->data_dir && cfg->data_dir[0] ? cfg->data_dir : NULL, err, errlen);
	if (rc != CV_OK)
		return rc;
	im = xcalloc(1, sizeof *im);
	im->sample_rate = espeak_rate;
	espeak_load_speakers(im);
	want =
	    cfg->default_speaker && cfg->default_speaker[0] ? cfg->default_speaker : ESPEAK_DEFAULT_SPEAKER;
	im->default_speaker = espeak_find(im, want);
	if (!im->default_speaker) {
		snprintf(err, errlen,
			 "default speaker '%s' is not an espeak-ng voice (%zu voices, e.g. en, en-us, cmn)",
			 want, im->n_speakers);
		rc = CV_EINVAL;
		goto fail;
	}
	im->cjk_speaker = espeak_reads_han(im->default_speaker) ? NULL : espeak_find(im, ESPEAK_CJK_SPEAKER);
	snprintf(im->describe, sizeof im->describe, "espeak-ng %s", espeak_Info(NULL));
	log_debug("engine", "espeak-ng ready: %s, %d Hz, %zu voices, default speaker %s", im->describe,
		  im->sample_rate, im->n_speakers, im->default_speaker->id);
	*impl = im;
	return CV_OK;
fail:
	espeak_free_speakers(im);
	free(im);
	espeak_release();
	return rc;
}

static void espeak_close(void *impl)
{
	struct espeak_impl *im = impl;
	if (!im)
		return;
	espeak_free_speakers(im);
	free(im);
	espeak_release();
}

static const char *espeak_display_name(void *impl)
{
	(void)impl;
	return "espeak-ng";
}

static const char *espeak_describe(void *impl)
{
	return ((struct espeak_impl *)impl)->describe;
}

static int espeak_sample_rate(void *impl)
{
	return ((struct espeak_impl *)impl)->sample_rate;
}

static size_t espeak_speaker_count(void *impl)
{
	return ((struct espeak_impl *)impl)->n_speakers;
}

static const struct engine_speaker *espeak_speaker_at(void *impl, size_t i)
{
	struct espeak_impl *im = impl;
	return i < im->n_speakers ? &im->speakers[i] : NULL;
}

static const char *espeak_default_speaker(void *impl)
{
	return ((struct espeak_impl *)impl)->default_speaker->id;
}

/* Does the UTF-8 text contain a CJK unified ideograph (any block)? */
static int espeak_has_cjk(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;

	while (*s) {
		unsigned cp;
		int len;
		if (*s < 0x80) {
			s++;
			continue;
		} else if ((*s & 0xE0) == 0xC0) {
			cp = *s & 0x1F;
			len = 2;
		} else if ((*s & 0xF0) == 0xE0) {
			cp = *s & 0x0F;
			len = 3;
		} else if ((*s & 0xF8) == 0xF0) {
			cp = *s & 0x07;
			len = 4;
		} else {
			s++;
			continue;
		}
		int i;
		for (i = 1; i < len; i++) {
			if ((s[i] & 0xC0) != 0x80)
				break;
			cp = (cp << 6) | (s[i] & 0x3F);
		}
		if (i < len) {
			s += i;
			continue;
		}
		s += len;
		if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
		    (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3134F))
			return 1;
	}
	return 0;
}

static int espeak_synthesize(void *impl, const struct engine_params *p, const struct engine_sink *sink,
			     struct engine_timings *t, char *err, size_t errlen)
{
	struct espeak_impl *im = impl;
	const struct engine_speaker *sp;
	struct espeak_run run;
	int64_t t0 = clock_now_ns();
	espeak_ERROR er;
	int rate;

	if (p->speaker) {
		sp = espeak_find(im, p->speaker);
		if (!sp) {
			snprintf(err, errlen, "unknown speaker '%s'", p->speaker);
			return CV_EINVAL;
		}
	} else if (im->cjk_speaker && espeak_has_cjk(p->text)) {
		sp = im->cjk_speaker;
	} else {
		sp = im->default_speaker;
	}
	if (sp != im->cur_voice) {
		er = espeak_load_voice(im, (size_t)(sp - im->speakers));
		im->cur_rate = 0; /* set the rate again on the new voice */
		if (er != EE_OK) {
			im->cur_voice = NULL;
			snprintf(err, errlen, "espeak-ng could not load voice '%s' (error %d)", sp->id,
				 (int)er);
			return CV_EENGINE;
		}
		im->cur_voice = sp;
	}
	/* espeak's rate is words per minute; 175 is its normal speed. */
	double speed = p->speed > 0.0f && isfinite(p->speed) ? (double)p->speed : 1.0;
	double r = round(espeakRATE_NORMAL * speed);
	rate = r < espeakRATE_MINIMUM	? espeakRATE_MINIMUM
	       : r > espeakRATE_MAXIMUM ? espeakRATE_MAXIMUM
					: (int)r;
	if (rate != im->cur_rate) {
		er = espeak_SetParameter(espeakRATE, rate, 0);
		if (er != EE_OK) {
			snprintf(err, errlen, "espeak-ng refused rate %d (error %d)", rate, (int)er);
			return CV_EENGINE;
		}
		im->cur_rate = rate;
	}
	int64_t t_front = clock_now_ns();
	engine_timings_set(t, "frontend", clock_ms_between(t0, t_front));

	if (sink->cancelled && sink->cancelled(sink->user)) {
		snprintf(err, errlen, "synthesis cancelled");
		return CV_ECANCELED;
	}
	memset(&run, 0, sizeof run);
	run.sink = sink;
	run.t_start = t0;
	espeak_cur_run = &run;
	er = espeak_Synth(p->text, strlen(p->text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
	espeak_cur_run = NULL;
	int64_t t1 = clock_now_ns();
	if (run.t_first_audio)
		engine_timings_set(t, "ttfa", clock_ms_between(t0, run.t_first_audio));
	engine_timings_set(t, "espeak", clock_ms_between(t0, t1));
	if (run.aborted) {
		snprintf(err, errlen, "synthesis cancelled");
		return CV_ECANCELED;
	}
	if (er != EE_OK) {
		snprintf(err, errlen, "espeak_Synth failed (error %d)", (int)er);
		return CV_EENGINE;
	}
	return CV_OK;
}

static int espeak_discard_write(void *user, const float *pcm, size_t n)
{
	(void)user;
	(void)pcm;
	(void)n;
	return 0;
}

static int espeak_warmup(void *impl, char *err, size_t errlen)
{
	struct engine_params p = {.text = ESPEAK_WARMUP_TEXT, .speed = 1.0f};
	struct engine_sink sink = {.write = espeak_discard_write};
	struct engine_timings t = {0};
	return espeak_synthesize(impl, &p, &sink, &t, err, errlen);
}

const struct engine_backend engine_backend_espeak = {
    .name = "espeak",
    .open = espeak_open,
    .close = espeak_close,
    .display_name = espeak_display_name,
    .describe = espeak_describe,
    .sample_rate = espeak_sample_rate,
    .speaker_count = espeak_speaker_count,
    .speaker_at = espeak_speaker_at,
    .default_speaker = espeak_default_speaker,
    .warmup = espeak_warmup,
    .synthesize = espeak_synthesize,
    .read_gauges = NULL,
};
