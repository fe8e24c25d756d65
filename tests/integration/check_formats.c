/* tests/integration/check_formats.c — POST /tts in every format, at several
 * sample rates, Chinese and English, buffered and streamed; each body is
 * decoded by an independent tool and must have exactly the asked rate and
 * the duration the daemon announced (X-Audio-Duration, in the headers or,
 * streamed, in the trailers). Timing headers must be present and parse.
 * Then the OpenAI route: default mp3, pcm at 24 kHz, wav, speed clamping. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tests/integration/harness.h"

static const char *const formats[] = {"wav", "opus", "pcm", "flac", "mp3"};
static const int rates[] = {24000, 16000, 48000};
#define N_FORMATS 5
#define N_RATES	  3
#define N_LANGS	  2
#define N_MODES	  2
#define N_COMBOS  (N_FORMATS * N_RATES * N_LANGS * N_MODES)

static const char *const en_text = "The quick brown fox jumps over the lazy dog. It is a sunny morning.";
static const char *const zh_text = "今天天气很好，我们去公园散步吧。";

static void formats_setup(void)
{
	harness_start(NULL);
}

static void expected_type(const char *fmt, int rate, char *out, size_t len)
{
	if (strcmp(fmt, "wav") == 0)
		snprintf(out, len, "audio/wav");
	else if (strcmp(fmt, "opus") == 0)
		snprintf(out, len, "audio/ogg; codecs=opus");
	else if (strcmp(fmt, "pcm") == 0)
		snprintf(out, len, "audio/L16; rate=%d; channels=1", rate);
	else if (strcmp(fmt, "flac") == 0)
		snprintf(out, len, "audio/flac");
	else
		snprintf(out, len, "audio/mpeg");
}

/* How far an independent decoder's duration may be from X-Audio-Duration. */
static double tolerance(const char *fmt, int rate)
{
	if (strcmp(fmt, "opus") == 0)
		return 0.1;
	if (strcmp(fmt, "mp3") == 0) /* encoder delay + padding: up to ~2 frames */
		return 0.1 + 3.0 * (rate >= 32000 ? 1152 : 576) / rate;
	return 0.01 + 1.0 / rate;
}

static void check_timing_value(const char *st, const char *metric)
{
	double ms = -1;
	HCHECK(server_timing_dur(st, metric, &ms), "Server-Timing %s lacks %s;dur=", st ? st : "(none)",
	       metric);
	HCHECK(ms >= 0, "Server-Timing %s: %s;dur=%g is negative", st, metric, ms);
}

START_TEST(tts_format_rate_lang_mode)
{
	int i = _i;
	const char *fmt = formats[i % N_FORMATS];
	i /= N_FORMATS;
	int rate = rates[i % N_RATES];
	i /= N_RATES;
	int zh = i % N_LANGS;
	i /= N_LANGS;
	int stream = i % N_MODES;

	char body[1024];
	snprintf(body, sizeof body,
		 "{\"text\": \"%s\", \"speaker\": \"%s\", \"format\": \"%s\", \"sample_rate\": %d, "
		 "\"stream\": %s}",
		 zh ? zh_text : en_text, zh ? "cmn" : "en", fmt, rate, stream ? "true" : "false");
	struct http_resp r;
	int rc = http_post_json("/tts", body, &r);
	HCHECK(rc == 0, "%s: curl %d %s", body, rc, r.curl_err);
	HCHECK(r.status == 200, "%s: status %ld %.300s", body, r.status, buf_data(&r.body));

	char want_ct[128];
	expected_type(fmt, rate, want_ct, sizeof want_ct);
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strcasecmp(ct, want_ct) == 0, "%s: Content-Type %s, want %s", body, ct ? ct : "(none)",
	       want_ct);
	HCHECK(is_hex32(http_header(&r, "X-Request-Id")), "X-Request-Id %s", http_header(&r, "X-Request-Id"));
	const char *te = http_header(&r, "Transfer-Encoding");
	const char *st = http_header(&r, "Server-Timing");
	double announced = -1, rtf = -1;
	const char *dur_s, *rtf_s;

	if (stream) {
		HCHECK(te && http_list_has(te, "chunked"), "%s: Transfer-Encoding %s", body,
		       te ? te : "(none)");
		check_timing_value(st, "queue");
		check_timing_value(st, "ttfa");
		const char *decl = http_header(&r, "Trailer");
		HCHECK(decl && http_list_has(decl, "Server-Timing") &&
			   http_list_has(decl, "X-Audio-Duration") &&
			   http_list_has(decl, "X-Real-Time-Factor"),
		       "%s: Trailer header %s", body, decl ? decl : "(none)");
		const char *tst = http_trailer(&r, "Server-Timing");
		HCHECK(tst, "%s: no Server-Timing trailer (%zu trailers)", body, r.n_trls);
		check_timing_value(tst, "total");
		check_timing_value(tst, "synth");
		dur_s = http_trailer(&r, "X-Audio-Duration");
		rtf_s = http_trailer(&r, "X-Real-Time-Factor");
	} else {
		HCHECK(!te || !http_list_has(te, "chunked"), "%s: buffered reply is chunked", body);
		const char *cl = http_header(&r, "Content-Length");
		double clv = -1;
		HCHECK(parse_double(cl, &clv) && (size_t)clv == buf_len(&r.body),
		       "Content-Length %s, body %zu", cl ? cl : "(none)", buf_len(&r.body));
		check_timing_value(st, "queue");
		check_timing_value(st, "synth");
		check_timing_value(st, "encode");
		check_timing_value(st, "total");
		double sr = 0;
		HCHECK(parse_double(http_header(&r, "X-Sample-Rate"), &sr) && (int)sr == rate,
		       "X-Sample-Rate %s", http_header(&r, "X-Sample-Rate"));
		const char *eng = http_header(&r, "X-Engine");
		HCHECK(eng && *eng, "no X-Engine");
		dur_s = http_header(&r, "X-Audio-Duration");
		rtf_s = http_header(&r, "X-Real-Time-Factor");
	}
	HCHECK(parse_double(dur_s, &announced) && announced > 0.3, "%s: X-Audio-Duration %s", body,
	       dur_s ? dur_s : "(none)");
	HCHECK(parse_double(rtf_s, &rtf) && rtf >= 0, "%s: X-Real-Time-Factor %s", body,
	       rtf_s ? rtf_s : "(none)");

	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe(fmt, buf_data(&r.body), buf_len(&r.body), rate, &ai, err, sizeof err) == 0,
	       "%s: %s", body, err);
	HCHECK(ai.rate == rate, "%s: decoded rate %d", body, ai.rate);
	double tol = tolerance(fmt, rate);
	HCHECK(fabs(ai.duration - announced) <= tol,
	       "%s: decoded %.4f s, X-Audio-Duration %.4f s (tolerance %.3f)", body, ai.duration, announced,
	       tol);
	http_resp_free(&r);
}
END_TEST

/* /v1/audio/speech replies are streamed by default: X-Audio-Duration is in
 * the trailers there, in the headers when buffered. */
static int announced_duration(const struct http_resp *r, double *d)
{
	const char *v = http_trailer(r, "X-Audio-Duration");
	if (!v)
		v = http_header(r, "X-Audio-Duration");
	return parse_double(v, d);
}

START_TEST(speech_default_mp3)
{
	struct http_resp r;
	int rc = http_post_json("/v1/audio/speech",
				"{\"model\": \"tts-1\", \"input\": \"Hello there, mirror on the wall.\", "
				"\"voice\": \"alloy\"}",
				&r);
	HCHECK(rc == 0 && r.status == 200, "curl %d status %ld %.300s", rc, r.status, buf_data(&r.body));
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strcasecmp(ct, "audio/mpeg") == 0, "Content-Type %s", ct ? ct : "(none)");
	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe("mp3", buf_data(&r.body), buf_len(&r.body), 0, &ai, err, sizeof err) == 0,
	       "mp3: %s", err);
	HCHECK(ai.duration > 0.5, "duration %.3f", ai.duration);
	double d;
	HCHECK(announced_duration(&r, &d), "no X-Audio-Duration header or trailer");
	HCHECK(fabs(ai.duration - d) <= tolerance("mp3", ai.rate), "decoded %.3f, announced %.3f",
	       ai.duration, d);
	http_resp_free(&r);
}
END_TEST

START_TEST(speech_pcm_24k)
{
	struct http_resp r;
	int rc =
	    http_post_json("/v1/audio/speech",
			   "{\"model\": \"tts-1\", \"input\": \"Raw samples at twenty four kilohertz.\", "
			   "\"voice\": \"nova\", \"response_format\": \"pcm\"}",
			   &r);
	HCHECK(rc == 0 && r.status == 200, "curl %d status %ld %.300s", rc, r.status, buf_data(&r.body));
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strncasecmp(ct, "audio/L16", 9) == 0 && strstr(ct, "rate=24000"), "Content-Type %s",
	       ct ? ct : "(none)");
	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe("pcm", buf_data(&r.body), buf_len(&r.body), 24000, &ai, err, sizeof err) == 0,
	       "pcm: %s", err);
	double d;
	HCHECK(announced_duration(&r, &d), "no X-Audio-Duration header or trailer");
	HCHECK(ai.duration > 0.5 && fabs(ai.duration - d) <= tolerance("pcm", 24000),
	       "pcm bytes %zu = %.4f s at 24 kHz, announced %.4f", buf_len(&r.body), ai.duration, d);
	http_resp_free(&r);
}
END_TEST

static double speech_wav_duration(const char *speed)
{
	char body[512];
	snprintf(body, sizeof body,
		 "{\"model\": \"tts-1\", \"input\": \"One two three four five six seven eight nine ten.\", "
		 "\"voice\": \"en\", \"response_format\": \"wav\", \"speed\": %s}",
		 speed);
	struct http_resp r;
	int rc = http_post_json("/v1/audio/speech", body, &r);
	HCHECK(rc == 0 && r.status == 200, "%s: curl %d status %ld %.300s", body, rc, r.status,
	       buf_data(&r.body));
	const char *ct = http_header(&r, "Content-Type");
	HCHECK(ct && strcasecmp(ct, "audio/wav") == 0, "Content-Type %s", ct ? ct : "(none)");
	struct audio_info ai;
	char err[1024];
	HCHECK(audio_probe("wav", buf_data(&r.body), buf_len(&r.body), 0, &ai, err, sizeof err) == 0,
	       "wav: %s", err);
	double d;
	HCHECK(announced_duration(&r, &d), "no X-Audio-Duration header or trailer");
	HCHECK(fabs(ai.duration - d) <= tolerance("wav", ai.rate), "decoded %.4f, announced %.4f",
	       ai.duration, d);
	http_resp_free(&r);
	return ai.duration;
}

/* speed 0.25..4.0 is accepted and clamped to the engine's 0.5..2.0: 0.25
 * must sound like 0.5 (slower than 1.0), 4.0 like 2.0 (faster). */
START_TEST(speech_wav_speed_clamped)
{
	double slow = speech_wav_duration("0.25");
	double half = speech_wav_duration("0.5");
	double normal = speech_wav_duration("1.0");
	double fast = speech_wav_duration("4.0");
	double twice = speech_wav_duration("2.0");
	HCHECK(slow > normal * 1.3, "speed 0.25 gave %.3f s, 1.0 gave %.3f s", slow, normal);
	HCHECK(fast < normal / 1.3, "speed 4.0 gave %.3f s, 1.0 gave %.3f s", fast, normal);
	HCHECK(fabs(slow - half) < 0.05 * half, "speed 0.25 (%.3f s) is not clamped to 0.5 (%.3f s)", slow,
	       half);
	HCHECK(fabs(fast - twice) < 0.05 * twice, "speed 4.0 (%.3f s) is not clamped to 2.0 (%.3f s)", fast,
	       twice);
}
END_TEST

Suite *suite_formats(void);
Suite *suite_formats(void)
{
	Suite *s = suite_create("formats");
	TCase *tc = tcase_create("formats");
	tcase_add_unchecked_fixture(tc, formats_setup, harness_stop);
	harness_tcase_timeout(tc, 60);
	tcase_add_loop_test(tc, tts_format_rate_lang_mode, 0, N_COMBOS);
	tcase_add_test(tc, speech_default_mp3);
	tcase_add_test(tc, speech_pcm_24k);
	tcase_add_test(tc, speech_wav_speed_clamped);
	harness_add_exit_test(tc);
	suite_add_tcase(s, tc);
	return s;
}
