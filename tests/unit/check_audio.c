/* tests/unit/check_audio.c — audio encoders checked by independent decoders.
 *
 * Every format (streamed and buffered) encodes a 1.5 s 440 Hz sine fed in
 * uneven chunks (1, 0, 7 ... 10000 samples) at several rate pairs; the bytes
 * go to a temp file and the tools installed on the machine judge them: soxi
 * (WAV, FLAC, decoded output), opusinfo + opusdec (Opus), flac -t + metaflac
 * (FLAC), mpg123 (MP3). Rates must be exact, durations within a tolerance,
 * and the decoded signal must still be a 440 Hz tone (zero crossings). Also:
 * exact WAV header bytes, the streamed WAV "unknown length" header, PCM
 * size, zero-sample streams, output caps, clipping and rounding, streamed
 * Opus pages before finish, and free without finish (for valgrind).
 * Tools run through fork/execvp with argv arrays (no shell); temp files live
 * in one mkdtemp directory per test case, removed by an unchecked teardown.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "handlers/audio/audio.h"

#define SINE_HZ	 440.0
#define SINE_AMP 0.5f
#define SECS	 1.5

static char tmpdir[64];

static void tmpdir_setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cv-audio-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
}

static void tmpdir_teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;

	if (d) {
		while ((de = readdir(d)) != NULL) {
			char p[512];

			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
}

/* A fresh empty file in tmpdir whose name ends in ext (tools pick formats
 * by extension); path receives its name. */
static void tmp_path(const char *ext, char *path, size_t cap)
{
	int fd;

	snprintf(path, cap, "%s/f-XXXXXX%s", tmpdir, ext);
	fd = mkstemps(path, (int)strlen(ext));
	ck_assert_msg(fd >= 0, "mkstemps %s failed", path);
	close(fd);
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	if (n)
		ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long sz;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	sz = ftell(f);
	ck_assert_int_ge(sz, 0);
	rewind(f);
	p = malloc((size_t)sz + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	*n = (size_t)sz;
	return p;
}

/* Run argv (no shell), capture stdout (and stderr when merge) into out.
 * Returns the exit status, or -1 when the tool did not exit normally. */
static int run_tool(const char *const argv[], int merge, char *out, size_t cap)
{
	int pfd[2], status = 0;
	size_t len = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int dn = open("/dev/null", O_RDWR);

		dup2(dn, 0);
		dup2(pfd[1], 1);
		dup2(merge ? pfd[1] : dn, 2);
		close(pfd[0]);
		close(pfd[1]);
		close(dn);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char scratch[512];
		ssize_t r;

		if (len + 1 < cap)
			r = read(pfd[0], out + len, cap - 1 - len);
		else
			r = read(pfd[0], scratch, sizeof scratch); /* drain the rest */
		if (r <= 0)
			break;
		if (len + 1 < cap)
			len += (size_t)r;
	}
	out[len] = '\0';
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Run a tool that must succeed; return its output. */
static const char *tool_ok(char *out, size_t cap, int merge, const char *const argv[])
{
	int rc = run_tool(argv, merge, out, cap);

	ck_assert_msg(rc == 0, "%s %s failed (exit %d): %s", argv[0], argv[1], rc, out);
	return out;
}

static long soxi_long(const char *opt, const char *path)
{
	char out[256], *end;
	const char *argv[] = {"soxi", opt, path, NULL};
	long v;

	tool_ok(out, sizeof out, 0, argv);
	v = strtol(out, &end, 10);
	ck_assert_msg(end != out, "soxi %s %s: no number in '%s'", opt, path, out);
	return v;
}

static double soxi_duration(const char *path)
{
	char out[256], *end;
	const char *argv[] = {"soxi", "-D", path, NULL};
	double v;

	tool_ok(out, sizeof out, 0, argv);
	v = strtod(out, &end);
	ck_assert_msg(end != out, "soxi -D %s: no number in '%s'", path, out);
	return v;
}

static uint32_t rd_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd_u16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Samples of a decoded WAV file (walks the chunks; any header layout). */
static int16_t *wav_samples(const unsigned char *p, size_t n, size_t *count)
{
	size_t off = 12;
	int16_t *s;

	ck_assert_uint_ge(n, 12);
	ck_assert_int_eq(memcmp(p, "RIFF", 4), 0);
	ck_assert_int_eq(memcmp(p + 8, "WAVE", 4), 0);
	while (off + 8 <= n && memcmp(p + off, "data", 4) != 0)
		off += 8 + rd_u32(p + off + 4) + (rd_u32(p + off + 4) & 1);
	ck_assert_msg(off + 8 <= n, "no data chunk");
	off += 8;
	*count = (n - off) / 2;
	s = malloc(*count * 2 + 2);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < *count; i++)
		s[i] = (int16_t)rd_u16(p + off + 2 * i);
	return s;
}

/* Frequency of a tone from rising zero crossings in [from, to) seconds. */
static double tone_hz(const int16_t *s, size_t n, int rate, double from, double to)
{
	size_t a = (size_t)(from * rate), b = (size_t)(to * rate), ups = 0, first = 0, last = 0;

	ck_assert_uint_le(b, n);
	for (size_t i = a + 1; i < b; i++) {
		if (s[i - 1] < 0 && s[i] >= 0) {
			if (!ups)
				first = i;
			last = i;
			ups++;
		}
	}
	ck_assert_uint_ge(ups, 3);
	return (double)(ups - 1) * rate / (double)(last - first);
}

static double rms(const int16_t *s, size_t a, size_t b)
{
	double acc = 0;

	for (size_t i = a; i < b; i++)
		acc += (double)s[i] * s[i];
	return sqrt(acc / (double)(b - a)) / 32767.0;
}

/* The decoded signal must be our tone: 440 Hz, amplitude about 0.5. */
static void assert_tone(const int16_t *s, size_t n, int rate, double amp_tol)
{
	double hz = tone_hz(s, n, rate, 0.25, 1.25);
	double r = rms(s, (size_t)(0.25 * rate), (size_t)(1.25 * rate));

	ck_assert_msg(fabs(hz - SINE_HZ) < 2.0, "tone at %.2f Hz, want 440", hz);
	ck_assert_msg(fabs(r - SINE_AMP / sqrt(2.0)) < amp_tol, "tone rms %.4f, want %.4f", r,
		      SINE_AMP / sqrt(2.0));
}

static void assert_wav_file_tone(const char *path, int rate, double amp_tol)
{
	size_t n, count;
	unsigned char *p = read_file(path, &n);
	int16_t *s = wav_samples(p, n, &count);

	assert_tone(s, count, rate, amp_tol);
	free(s);
	free(p);
}

static float *make_sine(int rate, double secs, size_t *n)
{
	float *x;

	*n = (size_t)lround(secs * rate);
	x = malloc((*n + 1) * sizeof *x);
	ck_assert_ptr_nonnull(x);
	for (size_t i = 0; i < *n; i++)
		x[i] = SINE_AMP * (float)sin(2.0 * M_PI * SINE_HZ * (double)i / rate);
	return x;
}

static const size_t chunk_sizes[] = {1, 0, 220, 7, 441, 4096, 3, 10000, 160};

/* Feed x in uneven chunks; *before = bytes out had before finish. */
static void encode_chunks(struct audio_enc *e, const float *x, size_t n, struct buf *out, size_t *before)
{
	size_t done = 0, k = 0;

	while (done < n) {
		size_t c = chunk_sizes[k++ % (sizeof chunk_sizes / sizeof chunk_sizes[0])];

		if (c > n - done)
			c = n - done;
		ck_assert_int_eq(audio_enc_write(e, x + done, c, out), CV_OK);
		done += c;
	}
	ck_assert_uint_eq(audio_enc_samples_in(e), n);
	if (before)
		*before = buf_len(out);
	ck_assert_int_eq(audio_enc_finish(e, out), CV_OK);
}

static const struct audio_enc_opts opts_buffered = {
    .stream = 0, .opus_bitrate = 32000, .opus_complexity = 5, .mp3_bitrate_kbps = 64, .flac_level = 5};
static const struct audio_enc_opts opts_stream = {
    .stream = 1, .opus_bitrate = 32000, .opus_complexity = 5, .mp3_bitrate_kbps = 64, .flac_level = 5};

/* ---- format table ---- */

START_TEST(format_names)
{
	static const char *const names[] = {"wav", "opus", "pcm", "flac", "mp3"};
	enum audio_format f;

	for (int i = 0; i < 5; i++) {
		f = AUDIO_FMT_COUNT;
		ck_assert_int_eq(audio_format_parse(names[i], &f), CV_OK);
		ck_assert_int_eq(f, i);
		ck_assert_str_eq(audio_format_name(f), names[i]);
	}
	ck_assert_int_eq(audio_format_parse("WAV", &f), CV_EINVAL);
	ck_assert_int_eq(audio_format_parse("ogg", &f), CV_EINVAL);
	ck_assert_int_eq(audio_format_parse("aac", &f), CV_EINVAL);
	ck_assert_int_eq(audio_format_parse("wav ", &f), CV_EINVAL);
	ck_assert_int_eq(audio_format_parse("", &f), CV_EINVAL);
	ck_assert_int_eq(audio_format_parse(NULL, &f), CV_EINVAL);
	ck_assert_str_eq(audio_format_name(AUDIO_FMT_COUNT), "unknown");
}
END_TEST

START_TEST(format_content_types)
{
	char ct[64];

	audio_format_content_type(AUDIO_FMT_WAV, 24000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/wav");
	audio_format_content_type(AUDIO_FMT_OPUS, 24000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/ogg; codecs=opus");
	audio_format_content_type(AUDIO_FMT_PCM, 24000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/L16; rate=24000; channels=1");
	audio_format_content_type(AUDIO_FMT_PCM, 8000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/L16; rate=8000; channels=1");
	audio_format_content_type(AUDIO_FMT_FLAC, 48000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/flac");
	audio_format_content_type(AUDIO_FMT_MP3, 48000, ct, sizeof ct);
	ck_assert_str_eq(ct, "audio/mpeg");
	audio_format_content_type(AUDIO_FMT_PCM, 24000, ct, 10);
	ck_assert_str_eq(ct, "audio/L16");
}
END_TEST

START_TEST(format_rates)
{
	static const int good[] = {8000, 16000, 22050, 24000, 44100, 48000};
	static const int bad[] = {0, -1, 11025, 32000, 96000, 24001};

	for (int f = 0; f < AUDIO_FMT_COUNT; f++) {
		for (size_t i = 0; i < 6; i++) {
			ck_assert_int_eq(audio_rate_supported((enum audio_format)f, good[i]), 1);
			ck_assert_int_eq(audio_rate_supported((enum audio_format)f, bad[i]), 0);
		}
	}
	ck_assert_int_eq(audio_rate_supported(AUDIO_FMT_COUNT, 24000), 0);
}
END_TEST

START_TEST(enc_new_rejects)
{
	struct audio_enc *e = (struct audio_enc *)1;
	struct audio_enc_opts o = opts_buffered;
	char err[160];

	err[0] = '\0';
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 24000, 11025, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_msg(strstr(err, "11025") != NULL, "err: %s", err);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_COUNT, 24000, 24000, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 0, 24000, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "input sample rate") != NULL, "err: %s", err);
	o.flac_level = 9;
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_FLAC, 24000, 24000, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "flac") != NULL, "err: %s", err);
	o = opts_buffered;
	o.opus_bitrate = 100;
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_OPUS, 24000, 24000, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "opus bitrate") != NULL, "err: %s", err);
	o = opts_buffered;
	o.mp3_bitrate_kbps = 1000;
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_MP3, 24000, 24000, &o, &e, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "mp3 bitrate") != NULL, "err: %s", err);
	ck_assert_ptr_null(e);
	audio_enc_free(NULL);
	/* NULL options mean defaults. */
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_MP3, 22050, 24000, NULL, &e, err, sizeof err), CV_OK);
	ck_assert_ptr_nonnull(e);
	audio_enc_free(e);
}
END_TEST

/* ---- the matrix: every format variant x rate pair, decoded by tools ---- */

enum variant { V_WAV, V_WAV_S, V_PCM, V_OPUS, V_OPUS_S, V_FLAC, V_FLAC_S, V_MP3, V_MP3_S, V_COUNT };

static const struct {
	enum audio_format f;
	int stream;
	const char *ext;
} variants[V_COUNT] = {
    [V_WAV] = {AUDIO_FMT_WAV, 0, ".wav"},      [V_WAV_S] = {AUDIO_FMT_WAV, 1, ".wav"},
    [V_PCM] = {AUDIO_FMT_PCM, 0, ".pcm"},      [V_OPUS] = {AUDIO_FMT_OPUS, 0, ".opus"},
    [V_OPUS_S] = {AUDIO_FMT_OPUS, 1, ".opus"}, [V_FLAC] = {AUDIO_FMT_FLAC, 0, ".flac"},
    [V_FLAC_S] = {AUDIO_FMT_FLAC, 1, ".flac"}, [V_MP3] = {AUDIO_FMT_MP3, 0, ".mp3"},
    [V_MP3_S] = {AUDIO_FMT_MP3, 1, ".mp3"},
};

static const int rate_pairs[][2] = {
    {22050, 24000}, {22050, 48000}, {24000, 8000}, {24000, 24000}, {24000, 44100}};
#define N_RATE_PAIRS ((int)(sizeof rate_pairs / sizeof rate_pairs[0]))

static void check_wav_header(const unsigned char *h, int rate, uint32_t riff, uint32_t data)
{
	ck_assert_int_eq(memcmp(h, "RIFF", 4), 0);
	ck_assert_uint_eq(rd_u32(h + 4), riff);
	ck_assert_int_eq(memcmp(h + 8, "WAVE", 4), 0);
	ck_assert_int_eq(memcmp(h + 12, "fmt ", 4), 0);
	ck_assert_uint_eq(rd_u32(h + 16), 16);
	ck_assert_uint_eq(rd_u16(h + 20), 1); /* PCM */
	ck_assert_uint_eq(rd_u16(h + 22), 1); /* mono */
	ck_assert_uint_eq(rd_u32(h + 24), (uint32_t)rate);
	ck_assert_uint_eq(rd_u32(h + 28), (uint32_t)rate * 2); /* byte rate */
	ck_assert_uint_eq(rd_u16(h + 32), 2);		       /* block align */
	ck_assert_uint_eq(rd_u16(h + 34), 16);		       /* bits */
	ck_assert_int_eq(memcmp(h + 36, "data", 4), 0);
	ck_assert_uint_eq(rd_u32(h + 40), data);
}

/* Decoded sample count within tol of want. */
static void assert_count(const char *what, long got, long want, long tol)
{
	ck_assert_msg(labs(got - want) <= tol, "%s: %ld samples, want %ld +- %ld", what, got, want, tol);
}

START_TEST(matrix)
{
	enum variant v = (enum variant)(_i / N_RATE_PAIRS);
	int in_rate = rate_pairs[_i % N_RATE_PAIRS][0], out_rate = rate_pairs[_i % N_RATE_PAIRS][1];
	struct audio_enc *e = NULL;
	char err[160], path[256], dec[256], out[4096];
	struct buf b;
	size_t n, before, len;
	float *x = make_sine(in_rate, SECS, &n);
	long want = lround(SECS * out_rate);
	const unsigned char *p;

	buf_init(&b, 8u << 20);
	ck_assert_int_eq(audio_enc_new(variants[v].f, in_rate, out_rate,
				       variants[v].stream ? &opts_stream : &opts_buffered, &e, err,
				       sizeof err),
			 CV_OK);
	encode_chunks(e, x, n, &b, &before);
	audio_enc_free(e);
	free(x);
	p = (const unsigned char *)buf_data(&b);
	len = buf_len(&b);
	tmp_path(variants[v].ext, path, sizeof path);
	write_file(path, p, len);

	switch (v) {
	case V_WAV: {
		ck_assert_uint_eq(before, 0); /* buffered: all at finish */
		ck_assert_uint_ge(len, 44);
		check_wav_header(p, out_rate, (uint32_t)(len - 8), (uint32_t)(len - 44));
		assert_count("wav data", (long)(len - 44) / 2, want, 2);
		ck_assert_int_eq(soxi_long("-r", path), out_rate);
		ck_assert_int_eq(soxi_long("-c", path), 1);
		assert_count("soxi -s", soxi_long("-s", path), want, 2);
		ck_assert_double_eq_tol(soxi_duration(path), SECS, 0.002);
		assert_wav_file_tone(path, out_rate, 0.01);
		break;
	}
	case V_WAV_S: {
		const char *conv[] = {"sox", "-V1", path, dec, NULL};

		ck_assert_uint_ge(before, 44); /* header + samples before finish */
		check_wav_header(p, out_rate, 0xFFFFFFFFu, 0xFFFFFFFFu);
		ck_assert_uint_eq((len - 44) % 2, 0);
		assert_count("wav stream data", (long)(len - 44) / 2, want, 2);
		ck_assert_int_eq(soxi_long("-r", path), out_rate);
		ck_assert_int_eq(soxi_long("-c", path), 1);
		/* sox reads the unknown-length stream to its end. */
		tmp_path(".wav", dec, sizeof dec);
		tool_ok(out, sizeof out, 1, conv);
		ck_assert_int_eq(soxi_long("-s", dec), (long)(len - 44) / 2);
		assert_wav_file_tone(dec, out_rate, 0.01);
		break;
	}
	case V_PCM: {
		char r[16];
		const char *conv[] = {"sox", "-V1", "-t", "raw", "-r", r,    "-e", "signed-integer",
				      "-b",  "16",  "-c", "1",	 "-L", path, dec,  NULL};

		ck_assert_uint_eq(len % 2, 0);
		assert_count("pcm", (long)len / 2, want, 2);
		snprintf(r, sizeof r, "%d", out_rate);
		tmp_path(".wav", dec, sizeof dec);
		tool_ok(out, sizeof out, 1, conv);
		ck_assert_int_eq(soxi_long("-s", dec), (long)len / 2);
		ck_assert_double_eq_tol(soxi_duration(dec), SECS, 0.002);
		assert_wav_file_tone(dec, out_rate, 0.01);
		break;
	}
	case V_OPUS:
	case V_OPUS_S: {
		const char *info[] = {"opusinfo", path, NULL};
		const char *decode[] = {"opusdec", "--quiet", "--rate", "48000", path, dec, NULL};
		const char *q;
		int orig = 0, mins = -1;
		double secs = -1;

		ck_assert_int_eq(memcmp(p, "OggS", 4), 0);
		tool_ok(out, sizeof out, 1, info);
		q = strstr(out, "Original sample rate:");
		ck_assert_msg(q && sscanf(q, "Original sample rate: %d Hz", &orig) == 1, "opusinfo: %s", out);
		ck_assert_int_eq(orig, out_rate);
		q = strstr(out, "Playback length:");
		ck_assert_msg(q && sscanf(q, "Playback length: %dm:%lfs", &mins, &secs) == 2, "opusinfo: %s",
			      out);
		ck_assert_double_eq_tol(mins * 60 + secs, SECS, 0.03);
		if (v == V_OPUS_S)
			ck_assert_msg(strstr(out, "Page duration:    100.0ms (max)") != NULL, "opusinfo: %s",
				      out);
		tmp_path(".wav", dec, sizeof dec);
		tool_ok(out, sizeof out, 1, decode);
		ck_assert_int_eq(soxi_long("-r", dec), 48000);
		ck_assert_int_eq(soxi_long("-c", dec), 1);
		ck_assert_double_eq_tol(soxi_duration(dec), SECS, 0.03);
		assert_wav_file_tone(dec, 48000, 0.05);
		break;
	}
	case V_FLAC:
	case V_FLAC_S: {
		const char *test[] = {"flac", "-t", "-s", path, NULL};
		const char *meta[] = {"metaflac", "--show-sample-rate", "--show-total-samples", path, NULL};
		const char *decode[] = {"flac", "-d", "-s", "-f", "-o", dec, path, NULL};
		long mrate = 0, mtotal = -1;

		ck_assert_int_eq(memcmp(p, "fLaC", 4), 0);
		if (v == V_FLAC)
			ck_assert_uint_eq(before, 0);
		else
			ck_assert_uint_gt(before, 42); /* "fLaC" + STREAMINFO + frames */
		tool_ok(out, sizeof out, 1, test);
		tool_ok(out, sizeof out, 0, meta);
		ck_assert_msg(sscanf(out, "%ld %ld", &mrate, &mtotal) == 2, "metaflac: %s", out);
		ck_assert_int_eq(mrate, out_rate);
		if (v == V_FLAC) {
			assert_count("metaflac total", mtotal, want, 2);
			ck_assert_int_eq(soxi_long("-r", path), out_rate);
			ck_assert_int_eq(soxi_long("-c", path), 1);
			ck_assert_double_eq_tol(soxi_duration(path), SECS, 0.002);
		} else {
			ck_assert_int_eq(mtotal, 0); /* streamed: length unknown */
		}
		tmp_path(".wav", dec, sizeof dec);
		tool_ok(out, sizeof out, 1, decode);
		ck_assert_int_eq(soxi_long("-r", dec), out_rate);
		assert_count("flac -d", soxi_long("-s", dec), want, 2);
		assert_wav_file_tone(dec, out_rate, 0.01);
		break;
	}
	case V_MP3:
	case V_MP3_S: {
		const char *decode[] = {"mpg123", "-q", "-w", dec, path, NULL};
		const char *info[] = {"mpg123", "-v", "-t", path, NULL};
		long frame = out_rate >= 32000 ? 1152 : 576, got;

		ck_assert_uint_ge(len, 2);
		ck_assert_uint_eq(p[0], 0xFF); /* frame sync */
		ck_assert_uint_eq(p[1] & 0xE0, 0xE0);
		if (v == V_MP3_S)
			ck_assert_uint_gt(before, 0);
		tool_ok(out, sizeof out, 1, info);
		ck_assert_msg(strstr(out, "L III cbr64") && strstr(out, " mono"), "mpg123: %s", out);
		tmp_path(".wav", dec, sizeof dec);
		tool_ok(out, sizeof out, 1, decode);
		ck_assert_int_eq(soxi_long("-r", dec), out_rate);
		ck_assert_int_eq(soxi_long("-c", dec), 1);
		/* No gapless info: the decoder delay (528 + 1) plus LAME's 576
		 * start delay and the padding of the last frame are added. */
		got = soxi_long("-s", dec);
		ck_assert_msg(got >= want && got <= want + 1105 + frame, "mp3: %ld samples, want %ld (+%ld)",
			      got, want, 1105 + frame);
		assert_wav_file_tone(dec, out_rate, 0.05);
		break;
	}
	default: ck_abort();
	}
	buf_free(&b);
}
END_TEST

/* ---- zero samples: every format still gives a valid stream ---- */

static const int zero_rates[][2] = {{24000, 24000}, {48000, 48000}, {22050, 48000}};
#define N_ZERO_RATES ((int)(sizeof zero_rates / sizeof zero_rates[0]))

START_TEST(zero_samples)
{
	enum variant v = (enum variant)(_i / N_ZERO_RATES);
	int in_rate = zero_rates[_i % N_ZERO_RATES][0], out_rate = zero_rates[_i % N_ZERO_RATES][1];
	struct audio_enc *e = NULL;
	char err[160], path[256], out[4096];
	struct buf b;
	const unsigned char *p;
	size_t len;

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(audio_enc_new(variants[v].f, in_rate, out_rate,
				       variants[v].stream ? &opts_stream : &opts_buffered, &e, err,
				       sizeof err),
			 CV_OK);
	if (_i % 2) /* half the cases also make an empty write */
		ck_assert_int_eq(audio_enc_write(e, NULL, 0, &b), CV_OK);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_EINVAL); /* exactly once */
	ck_assert_uint_eq(audio_enc_samples_in(e), 0);
	audio_enc_free(e);
	p = (const unsigned char *)buf_data(&b);
	len = buf_len(&b);
	tmp_path(variants[v].ext, path, sizeof path);
	write_file(path, p, len);
	switch (variants[v].f) {
	case AUDIO_FMT_WAV:
		ck_assert_uint_eq(len, 44);
		if (variants[v].stream) {
			check_wav_header(p, out_rate, 0xFFFFFFFFu, 0xFFFFFFFFu);
		} else {
			check_wav_header(p, out_rate, 36, 0);
			ck_assert_int_eq(soxi_long("-s", path), 0);
			ck_assert_int_eq(soxi_long("-r", path), out_rate);
		}
		break;
	case AUDIO_FMT_PCM: ck_assert_uint_eq(len, 0); break;
	case AUDIO_FMT_OPUS: {
		const char *info[] = {"opusinfo", path, NULL};
		const char *q;
		int orig = 0, mins = -1;
		double secs = -1;

		tool_ok(out, sizeof out, 1, info);
		q = strstr(out, "Original sample rate:");
		ck_assert_msg(q && sscanf(q, "Original sample rate: %d Hz", &orig) == 1, "opusinfo: %s", out);
		ck_assert_int_eq(orig, out_rate);
		q = strstr(out, "Playback length:");
		ck_assert_msg(q && sscanf(q, "Playback length: %dm:%lfs", &mins, &secs) == 2, "opusinfo: %s",
			      out);
		ck_assert_double_le(mins * 60 + secs, 0.02); /* at most the one silent frame */
		break;
	}
	case AUDIO_FMT_FLAC: {
		const char *test[] = {"flac", "-t", "-s", path, NULL};
		const char *meta[] = {"metaflac", "--show-sample-rate", "--show-total-samples", path, NULL};
		long mrate = 0, mtotal = -1;

		tool_ok(out, sizeof out, 1, test);
		tool_ok(out, sizeof out, 0, meta);
		ck_assert_msg(sscanf(out, "%ld %ld", &mrate, &mtotal) == 2, "metaflac: %s", out);
		ck_assert_int_eq(mrate, out_rate);
		ck_assert_int_eq(mtotal, 0);
		break;
	}
	case AUDIO_FMT_MP3: {
		const char *test[] = {"mpg123", "-t", "-q", path, NULL};

		/* LAME's flush pads to one whole (silent) frame. */
		ck_assert_uint_ge(len, 2);
		ck_assert_uint_eq(p[0], 0xFF);
		ck_assert_uint_eq(p[1] & 0xE0, 0xE0);
		tool_ok(out, sizeof out, 1, test);
		break;
	}
	default: ck_abort();
	}
	buf_free(&b);
}
END_TEST

/* ---- exact WAV / PCM details ---- */

START_TEST(wav_header_exact)
{
	static const unsigned char want[44] = {
	    'R',  'I',	'F',  'F',  0x2c, 0x00, 0x00, 0x00, 'W',  'A',	'V',  'E',  'f',  'm',	't',
	    ' ',  0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0xc0, 0x5d, 0x00, 0x00, 0x80, 0xbb,
	    0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 'd',  'a',  't',  'a',	0x08, 0x00, 0x00, 0x00};
	const float x[4] = {0.0f, 1.0f, -1.0f, 0.5f};
	struct audio_enc *e;
	char err[128];
	struct buf b;
	const unsigned char *p;

	buf_init(&b, 1024);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 24000, 24000, &opts_buffered, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 4, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 0);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 52);
	p = (const unsigned char *)buf_data(&b);
	ck_assert_mem_eq(p, want, 44);
	ck_assert_int_eq((int16_t)rd_u16(p + 44), 0);
	ck_assert_int_eq((int16_t)rd_u16(p + 46), 32767);
	ck_assert_int_eq((int16_t)rd_u16(p + 48), -32767);
	ck_assert_int_eq((int16_t)rd_u16(p + 50), 16384); /* 16383.5 rounds to even */
	audio_enc_free(e);
	buf_free(&b);
}
END_TEST

START_TEST(wav_stream_header)
{
	const float x[3] = {0.25f, -0.25f, 0.0f};
	struct audio_enc *e;
	char err[128];
	struct buf b;
	const unsigned char *p;

	buf_init(&b, 1024);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 16000, 16000, &opts_stream, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 0, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 44); /* header on the first write */
	p = (const unsigned char *)buf_data(&b);
	check_wav_header(p, 16000, 0xFFFFFFFFu, 0xFFFFFFFFu);
	ck_assert_int_eq(audio_enc_write(e, x, 3, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 50);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 50);
	p = (const unsigned char *)buf_data(&b);
	ck_assert_mem_eq(p + 4, "\xff\xff\xff\xff", 4);
	ck_assert_mem_eq(p + 40, "\xff\xff\xff\xff", 4);
	ck_assert_int_eq((int16_t)rd_u16(p + 44), 8192); /* 8191.75 */
	ck_assert_int_eq((int16_t)rd_u16(p + 46), -8192);
	audio_enc_free(e);
	buf_free(&b);
}
END_TEST

START_TEST(pcm_clip_round)
{
	const float x[8] = {2.0f, -3.0f, NAN, 0.5f, 1000.6f / 32767.0f, -1000.6f / 32767.0f, INFINITY, -0.0f};
	const int16_t want[8] = {32767, -32767, 0, 16384, 1001, -1001, 32767, 0};
	struct audio_enc *e;
	char err[128];
	struct buf b;

	buf_init(&b, 1024);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_PCM, 8000, 8000, &opts_stream, &e, err, sizeof err), CV_OK);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(audio_enc_write(e, x + i, 1, &b), CV_OK);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 16); /* 2 bytes per sample, no header */
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq((int16_t)rd_u16((const unsigned char *)buf_data(&b) + 2 * i), want[i]);
	ck_assert_uint_eq(audio_enc_samples_in(e), 8);
	audio_enc_free(e);
	buf_free(&b);
}
END_TEST

START_TEST(pcm_size_resampled)
{
	struct audio_enc *e;
	char err[128];
	struct buf b;
	size_t n;
	float *x = make_sine(22050, 1.0, &n);

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_PCM, 22050, 16000, &opts_buffered, &e, err, sizeof err),
			 CV_OK);
	encode_chunks(e, x, n, &b, NULL);
	ck_assert_uint_eq(buf_len(&b) % 2, 0);
	ck_assert_uint_le(buf_len(&b) / 2, 16002);
	ck_assert_uint_ge(buf_len(&b) / 2, 15998);
	audio_enc_free(e);
	buf_free(&b);
	free(x);
}
END_TEST

/* ---- caps ---- */

START_TEST(cap_exact_wav)
{
	/* Buffered WAV of n samples needs exactly 44 + 2n bytes. */
	float x[100] = {0};
	struct audio_enc *e;
	char err[128];
	struct buf b;

	buf_init(&b, 44 + 200);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 24000, 24000, &opts_buffered, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 100, &b), CV_OK);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_eq(buf_len(&b), 244);
	audio_enc_free(e);
	buf_free(&b);

	buf_init(&b, 44 + 199);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_WAV, 24000, 24000, &opts_buffered, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 99, &b), CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 1, &b), CV_E2BIG);
	ck_assert_int_eq(audio_enc_write(e, x, 1, &b), CV_E2BIG); /* sticky */
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_E2BIG);
	ck_assert_uint_eq(buf_len(&b), 0);
	audio_enc_free(e);
	buf_free(&b);
}
END_TEST

START_TEST(cap_every_format)
{
	enum variant v = (enum variant)_i;
	struct audio_enc *e;
	char err[128];
	struct buf b;
	size_t n, done = 0;
	float *x = make_sine(24000, SECS, &n);
	int rc = CV_OK;

	buf_init(&b, 600);
	ck_assert_int_eq(audio_enc_new(variants[v].f, 24000, 48000,
				       variants[v].stream ? &opts_stream : &opts_buffered, &e, err,
				       sizeof err),
			 CV_OK);
	while (rc == CV_OK && done < n) {
		size_t c = n - done < 480 ? n - done : 480;

		rc = audio_enc_write(e, x + done, c, &b);
		done += c;
	}
	if (rc == CV_OK)
		rc = audio_enc_finish(e, &b);
	ck_assert_int_eq(rc, CV_E2BIG);
	ck_assert_uint_le(buf_len(&b), 600);
	ck_assert_int_eq(audio_enc_write(e, x, 10, &b), CV_E2BIG);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_E2BIG);
	audio_enc_free(e);
	buf_free(&b);
	free(x);
}
END_TEST

/* ---- streaming behaviour ---- */

static size_t count_ogg_pages(const char *p, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(p + i, "OggS", 4) == 0)
			c++;
	return c;
}

START_TEST(opus_stream_pages_early)
{
	struct audio_enc *e;
	char err[128];
	struct buf b;
	size_t n, pages;
	float *x = make_sine(24000, 0.3, &n);

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_OPUS, 24000, 24000, &opts_stream, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, 0, &b), CV_OK);
	ck_assert_int_eq(count_ogg_pages(buf_data(&b), buf_len(&b)), 2); /* OpusHead + OpusTags at once */
	for (size_t off = 0; off < n; off += 240)			 /* 10 ms chunks */
		ck_assert_int_eq(audio_enc_write(e, x + off, n - off < 240 ? n - off : 240, &b), CV_OK);
	pages = count_ogg_pages(buf_data(&b), buf_len(&b));
	ck_assert_msg(pages >= 3, "only %zu Ogg pages after 300 ms", pages);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_gt(count_ogg_pages(buf_data(&b), buf_len(&b)), pages);
	audio_enc_free(e);
	buf_free(&b);
	free(x);
}
END_TEST

START_TEST(opus_buffered_holds_audio)
{
	/* Buffered Opus keeps libopusenc's default delays: 300 ms gives no
	 * audio page before drain (only the two header pages). */
	struct audio_enc *e;
	char err[128];
	struct buf b;
	size_t n;
	float *x = make_sine(24000, 0.3, &n);

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(audio_enc_new(AUDIO_FMT_OPUS, 24000, 24000, &opts_buffered, &e, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, n, &b), CV_OK);
	ck_assert_uint_le(count_ogg_pages(buf_data(&b), buf_len(&b)), 2);
	ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
	ck_assert_uint_ge(count_ogg_pages(buf_data(&b), buf_len(&b)), 3);
	audio_enc_free(e);
	buf_free(&b);
	free(x);
}
END_TEST

static unsigned opus_serial(const char *path)
{
	char out[4096];
	const char *info[] = {"opusinfo", path, NULL};
	const char *q;
	unsigned serial = 0;

	tool_ok(out, sizeof out, 1, info);
	q = strstr(out, "serial: ");
	ck_assert_msg(q && sscanf(q, "serial: %x", &serial) == 1, "opusinfo: %s", out);
	return serial;
}

START_TEST(opus_serials_differ)
{
	char path[2][256], err[128];
	float x[480] = {0};

	for (int i = 0; i < 2; i++) {
		struct audio_enc *e;
		struct buf b;

		buf_init(&b, 1u << 20);
		ck_assert_int_eq(
		    audio_enc_new(AUDIO_FMT_OPUS, 24000, 24000, &opts_buffered, &e, err, sizeof err), CV_OK);
		ck_assert_int_eq(audio_enc_write(e, x, 480, &b), CV_OK);
		ck_assert_int_eq(audio_enc_finish(e, &b), CV_OK);
		tmp_path(".opus", path[i], sizeof path[i]);
		write_file(path[i], buf_data(&b), buf_len(&b));
		audio_enc_free(e);
		buf_free(&b);
	}
	ck_assert_uint_ne(opus_serial(path[0]), opus_serial(path[1]));
	ck_assert_uint_ne(opus_serial(path[0]), 0x6b8b4567u); /* rand() without srand() */
}
END_TEST

/* Every encoder, fed then dropped without finish (valgrind: no leak). */
START_TEST(free_without_finish)
{
	enum variant v = (enum variant)_i;
	struct audio_enc *e;
	char err[128];
	struct buf b;
	size_t n;
	float *x = make_sine(22050, 0.3, &n);

	buf_init(&b, 1u << 20);
	ck_assert_int_eq(audio_enc_new(variants[v].f, 22050, 24000,
				       variants[v].stream ? &opts_stream : &opts_buffered, &e, err,
				       sizeof err),
			 CV_OK);
	ck_assert_int_eq(audio_enc_write(e, x, n, &b), CV_OK);
	audio_enc_free(e);
	ck_assert_int_eq(audio_enc_new(variants[v].f, 24000, 24000,
				       variants[v].stream ? &opts_stream : &opts_buffered, &e, err,
				       sizeof err),
			 CV_OK);
	audio_enc_free(e);
	buf_free(&b);
	free(x);
}
END_TEST

Suite *suite_audio(void);
Suite *suite_audio(void)
{
	Suite *s = suite_create("audio");
	TCase *tc;

	tc = tcase_create("formats");
	tcase_add_test(tc, format_names);
	tcase_add_test(tc, format_content_types);
	tcase_add_test(tc, format_rates);
	tcase_add_test(tc, enc_new_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("decoders");
	tcase_add_unchecked_fixture(tc, tmpdir_setup, tmpdir_teardown);
	tcase_add_loop_test(tc, matrix, 0, V_COUNT * N_RATE_PAIRS);
	tcase_add_loop_test(tc, zero_samples, 0, V_COUNT * N_ZERO_RATES);
	tcase_add_test(tc, opus_serials_differ);
	suite_add_tcase(s, tc);

	tc = tcase_create("details");
	tcase_add_test(tc, wav_header_exact);
	tcase_add_test(tc, wav_stream_header);
	tcase_add_test(tc, pcm_clip_round);
	tcase_add_test(tc, pcm_size_resampled);
	tcase_add_test(tc, cap_exact_wav);
	tcase_add_loop_test(tc, cap_every_format, 0, V_COUNT);
	tcase_add_test(tc, opus_stream_pages_early);
	tcase_add_test(tc, opus_buffered_holds_audio);
	tcase_add_loop_test(tc, free_without_finish, 0, V_COUNT);
	suite_add_tcase(s, tc);
	return s;
}
