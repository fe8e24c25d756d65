/* tests/unit/check_cv2_stream.c — CosyVoice2 streaming bookkeeping against
 * hand-derived schedules and against tests/py/stream_ref.py (the reference's
 * loop, fade_in_out of tools/export/cosyvoice2/hift.py, numpy/torch Hamming, torch
 * F.interpolate) run in the torch venv. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "engine/cosyvoice2/cv2_stream.h"
#include "tests/unit/testutil.h"

/* Feeds tokens one at a time (polling after each), then ends the LLM;
 * writes (n_tokens, token_offset, finalize) triples; returns the count. */
static size_t run_sched(size_t P, size_t N, size_t (*out)[3], size_t cap)
{
	struct cv2_stream_sched s;
	cv2_stream_sched_init(&s, P);
	struct cv2_stream_chunk c;
	size_t n = 0;
	for (size_t have = 0; have <= N; have++) {
		int done = have == N;
		while (cv2_stream_sched_next(&s, have, done, &c)) {
			ck_assert_uint_lt(n, cap);
			ck_assert_uint_eq(c.index, n);
			ck_assert_uint_eq(c.mel_skip, 2 * c.token_offset);
			ck_assert_uint_eq(c.mel_new, 2 * c.hop);
			ck_assert_int_eq(c.streaming, !c.finalize);
			if (!c.finalize)
				ck_assert_uint_eq(c.n_tokens,
						  c.token_offset + c.hop + CV2_STREAM_PRE_LOOKAHEAD);
			else
				ck_assert_uint_eq(c.n_tokens, c.token_offset + c.hop);
			out[n][0] = c.n_tokens;
			out[n][1] = c.token_offset;
			out[n][2] = (size_t)c.finalize;
			n++;
		}
	}
	ck_assert_int_eq(s.done, 1);
	ck_assert_int_eq(cv2_stream_sched_next(&s, N, 1, &c), 0);
	return n;
}

START_TEST(schedule_by_hand)
{
	size_t got[64][3];
	/* P = 0: hops 25, 50, 100, 100 (+3 lookahead each) */
	size_t n = run_sched(0, 300, got, 64);
	static const size_t want0[][3] = {
	    {28, 0, 0}, {78, 25, 0}, {178, 75, 0}, {278, 175, 0}, {300, 275, 1}};
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++)
		ck_assert(got[i][0] == want0[i][0] && got[i][1] == want0[i][1] && got[i][2] == want0[i][2]);
	/* P = 13: pad 12, first hop 37 so prompt + 37 = 50 ends on a chunk */
	ck_assert_uint_eq(cv2_stream_prompt_pad(13, 25), 12);
	n = run_sched(13, 100, got, 64);
	static const size_t want13[][3] = {{40, 0, 0}, {90, 37, 0}, {100, 87, 1}};
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++)
		ck_assert(got[i][0] == want13[i][0] && got[i][1] == want13[i][1] &&
			  got[i][2] == want13[i][2]);
	/* fewer than hop + 3 tokens: only the final chunk */
	n = run_sched(25, 27, got, 64);
	ck_assert_uint_eq(n, 1);
	ck_assert(got[0][0] == 27 && got[0][1] == 0 && got[0][2] == 1);
	/* exactly hop + 3: a streamed chunk, then a final with the 3 lookahead tokens */
	n = run_sched(50, 28, got, 64);
	ck_assert_uint_eq(n, 2);
	ck_assert(got[0][0] == 28 && got[1][0] == 28 && got[1][1] == 25 && got[1][2] == 1);
	ck_assert_uint_eq(cv2_stream_prompt_pad(0, 25), 0);
	ck_assert_uint_eq(cv2_stream_prompt_pad(26, 25), 24);
	ck_assert_uint_eq(cv2_stream_prompt_pad(125, 25), 0);
	/* per-request reset: a fresh init starts at 25 again */
	struct cv2_stream_sched s;
	cv2_stream_sched_init(&s, 0);
	ck_assert_uint_eq(s.token_hop, 25);
	/* all tokens at once, LLM done: same chunks as one-by-one */
	struct cv2_stream_chunk c;
	size_t k = 0;
	while (cv2_stream_sched_next(&s, 300, 1, &c)) {
		ck_assert(c.n_tokens == want0[k][0] && c.token_offset == want0[k][1]);
		k++;
	}
	ck_assert_uint_eq(k, 5);
}
END_TEST

START_TEST(hamming_and_fade_basic)
{
	double w[5];
	cv2_stream_hamming(w, 5);
	ck_assert_double_eq_tol(w[0], 0.08, 1e-15);
	ck_assert_double_eq_tol(w[2], 1.0, 1e-15);
	ck_assert_double_eq_tol(w[1], 0.54, 1e-15);
	cv2_stream_hamming(w, 1);
	ck_assert(w[0] == 1.0);
	double w4[4] = {0.0, 0.25, 1.0, 0.5};
	float sp[3] = {1.0f, 2.0f, 4.0f};
	const float prev[2] = {8.0f, 16.0f};
	cv2_stream_fade_in_out(sp, prev, 2, w4);
	ck_assert(sp[0] == 8.0f && sp[1] == 0.5f + 8.0f && sp[2] == 4.0f);
}
END_TEST

START_TEST(hift_cache_flow)
{
	struct cv2_hift_cache c;
	cv2_hift_cache_init(&c, 2);
	float mel[2 * 10];
	for (int i = 0; i < 20; i++)
		mel[i] = (float)i;
	float *in = NULL;
	size_t t = 0;
	ck_assert_int_eq(cv2_hift_cache_mel_input(&c, mel, 10, &in, &t), CV_OK);
	ck_assert_uint_eq(t, 10);
	ck_assert(in[0] == 0.0f && in[10] == 10.0f);
	size_t ns = 10 * 480;
	float *speech = calloc(ns, sizeof *speech), *source = calloc(ns, sizeof *source);
	for (size_t i = 0; i < ns; i++) {
		speech[i] = (float)i;
		source[i] = -(float)i;
	}
	size_t emit = 0;
	ck_assert_int_eq(cv2_hift_cache_update(&c, in, t, speech, ns, source, ns, 0, &emit), CV_OK);
	ck_assert_uint_eq(emit, ns - 3840);
	ck_assert_int_eq(c.valid, 1);
	ck_assert(c.mel[0] == 2.0f && c.mel[7] == 9.0f && c.mel[8] == 12.0f);
	ck_assert(c.speech[0] == (float)(ns - 3840) && c.source[3839] == -(float)(ns - 1));
	free(in);
	/* second chunk: 8 cached frames prepended */
	ck_assert_int_eq(cv2_hift_cache_mel_input(&c, mel, 10, &in, &t), CV_OK);
	ck_assert_uint_eq(t, 18);
	ck_assert(in[0] == 2.0f && in[8] == 0.0f && in[18] == 12.0f && in[26] == 10.0f);
	free(in);
	/* too short for a non-final chunk */
	ck_assert_int_eq(cv2_hift_cache_update(&c, mel, 7, speech, ns, source, ns, 0, &emit), CV_EINVAL);
	ck_assert_int_eq(cv2_hift_cache_update(&c, mel, 10, speech, 3000, source, ns, 0, &emit), CV_EINVAL);
	/* final: faded, everything emitted */
	float first = speech[0];
	ck_assert_int_eq(cv2_hift_cache_update(&c, mel, 10, speech, ns, source, ns, 1, &emit), CV_OK);
	ck_assert_uint_eq(emit, ns);
	ck_assert(speech[0] == (float)((double)first * c.window[0] + (double)(ns - 3840) * c.window[3840]));
	cv2_hift_cache_reset(&c);
	ck_assert_int_eq(c.valid, 0);
	ck_assert_int_eq(cv2_hift_cache_mel_input(&c, mel, 0, &in, &t), CV_EINVAL);
	cv2_hift_cache_free(&c);
	cv2_hift_cache_free(&c);
	free(speech);
	free(source);
}
END_TEST

START_TEST(speed_basics)
{
	ck_assert_uint_eq(cv2_stream_speed_frames(100, 1.0), 100);
	ck_assert_uint_eq(cv2_stream_speed_frames(100, 1.5), 66);
	ck_assert_uint_eq(cv2_stream_speed_frames(100, 0.5), 200);
	ck_assert_uint_eq(cv2_stream_speed_frames(100, 0.0), 0);
	ck_assert_uint_eq(cv2_stream_speed_frames(100, NAN), 0);
	float mel[4] = {0.0f, 1.0f, 2.0f, 3.0f}, *o = NULL;
	size_t ot = 0;
	ck_assert_int_eq(cv2_stream_speed_mel(mel, 1, 4, 1.0, &o, &ot), CV_OK);
	ck_assert_uint_eq(ot, 4);
	for (int i = 0; i < 4; i++)
		ck_assert(o[i] == mel[i]);
	free(o);
	ck_assert_int_eq(cv2_stream_speed_mel(mel, 1, 4, 0.5, &o, &ot), CV_OK);
	ck_assert_uint_eq(ot, 8);
	ck_assert(o[0] == 0.0f && o[1] == 0.25f && o[2] == 0.75f && o[7] == 3.0f);
	free(o);
	ck_assert_int_eq(cv2_stream_speed_mel(mel, 1, 4, 5.0, &o, &ot), CV_EINVAL);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(cv2_stream_speed_mel(mel, 1, 4, -1.0, &o, &ot), CV_EINVAL);
	ck_assert_int_eq(cv2_stream_speed_mel(mel, 1, 0, 1.0, &o, &ot), CV_EINVAL);
}
END_TEST

/* ---- against tests/py/stream_ref.py ------------------------------------- */

static void *load(const char *dir, const char *name, size_t elem, size_t n)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "missing %s", path);
	void *b = malloc(elem * n + 1);
	ck_assert_ptr_nonnull(b);
	ck_assert_msg(fread(b, elem, n, f) == n, "%s too short", path);
	ck_assert_msg(fgetc(f) == EOF, "%s too long", path);
	fclose(f);
	return b;
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* The fake HiFT of stream_ref.py (elementwise, float32). */
static void fake_hift(const float *mel, size_t nm, size_t t, const float *cache_src, size_t n_cache,
		      float *speech, float *source)
{
	(void)nm;
	for (size_t j = 0; j < 480 * t; j++) {
		size_t k = j / 480;
		source[j] = j < n_cache ? cache_src[j] : mel[2 * t + k];
		float frac = (float)(j % 480) / 480.0f;
		speech[j] = mel[0 * t + k] * 0.25f + mel[1 * t + k] * frac + source[j] * 0.1f;
	}
}

START_TEST(parity_with_python)
{
	char *py = test_run_line("bash tools/dev/torch-venv.sh");
	ck_assert_msg(py != NULL, "tools/dev/torch-venv.sh failed (no torch venv)");
	char dir[] = "/tmp/cv-stream-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "'%s' tests/py/stream_ref.py %s", py, dir);
	free(py);
	ck_assert_msg(system(cmd) == 0, "stream_ref.py failed: %s", cmd);

	/* schedules */
	char path[1100];
	snprintf(path, sizeof path, "%s/sched.txt", dir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *line = NULL;
	size_t cap = 0, lines = 0, chunks_total = 0;
	while (getline(&line, &cap, f) > 0) {
		char *s = line, *end;
		size_t P = strtoul(s, &end, 10);
		s = end;
		size_t N = strtoul(s, &end, 10);
		ck_assert(end != s && strncmp(end, " : ", 3) == 0);
		s = end + 3;
		size_t got[64][3];
		size_t n = run_sched(P, N, got, 64);
		size_t i = 0;
		while (*s && *s != '\n') {
			size_t a = strtoul(s, &end, 10);
			ck_assert(*end == ',');
			size_t b = strtoul(end + 1, &end, 10);
			ck_assert(*end == ',');
			size_t c = strtoul(end + 1, &end, 10);
			s = end + (*end == ' ');
			ck_assert_msg(i < n && got[i][0] == a && got[i][1] == b && got[i][2] == c,
				      "P %zu N %zu chunk %zu: C (%zu,%zu,%zu) vs reference (%zu,%zu,%zu)", P,
				      N, i, i < n ? got[i][0] : 0, i < n ? got[i][1] : 0,
				      i < n ? got[i][2] : 0, a, b, c);
			i++;
		}
		ck_assert_msg(i == n, "P %zu N %zu: %zu chunks vs %zu", P, N, n, i);
		chunks_total += n;
		lines++;
	}
	fclose(f);
	ck_assert_uint_eq(lines, 12 * 16 * 3);
	ck_assert_uint_gt(chunks_total, lines * 2);

	/* windows */
	double w[CV2_STREAM_WINDOW_LEN];
	cv2_stream_hamming(w, CV2_STREAM_WINDOW_LEN);
	double *wn = load(dir, "hamming_np.f64", 8, CV2_STREAM_WINDOW_LEN);
	double *wt = load(dir, "hamming_torch.f64", 8, CV2_STREAM_WINDOW_LEN);
	for (size_t i = 0; i < CV2_STREAM_WINDOW_LEN; i++) {
		ck_assert_msg(fabs(w[i] - wn[i]) <= 2e-16, "hamming[%zu] %.17g vs numpy %.17g", i, w[i],
			      wn[i]);
		ck_assert_msg(fabs(w[i] - wt[i]) <= 4e-16, "hamming[%zu] %.17g vs torch %.17g", i, w[i],
			      wt[i]);
	}

	/* fade_in_out with the torch window (the exporter's buffer) */
	float *fin = load(dir, "fade_in.f32", 4, 10000), *prev = load(dir, "fade_prev.f32", 4, 3840);
	float *fout = load(dir, "fade_out.f32", 4, 10000);
	cv2_stream_fade_in_out(fin, prev, 3840, wt);
	for (size_t i = 0; i < 10000; i++)
		ck_assert_msg(fbits(fin[i]) == fbits(fout[i]), "fade[%zu] %a vs %a", i, (double)fin[i],
			      (double)fout[i]);
	free(wn);
	free(wt);
	free(fin);
	free(prev);
	free(fout);

	/* speed */
	snprintf(path, sizeof path, "%s/speed.txt", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t speed_cases = 0;
	while (getline(&line, &cap, f) > 0) {
		char *end;
		size_t k = strtoul(line, &end, 10), T = strtoul(end, &end, 10);
		double speed = strtod(end, &end);
		size_t ot_ref = strtoul(end, &end, 10);
		char name[64];
		snprintf(name, sizeof name, "speed_%zu_in.f32", k);
		float *mel = load(dir, name, 4, 80 * T);
		snprintf(name, sizeof name, "speed_%zu_out.f32", k);
		float *ref = load(dir, name, 4, 80 * ot_ref);
		float *o = NULL;
		size_t ot = 0;
		ck_assert_int_eq(cv2_stream_speed_mel(mel, 80, T, speed, &o, &ot), CV_OK);
		ck_assert_uint_eq(ot, ot_ref);
		/* torch's CPU upsample_linear1d rounds the source positions differently across releases:
		 * 2.15 matches this float formula within 5e-7, 2.10 (the pin) within 2e-4 on these cases
		 * (mel values of a few units); the check allows that spread, not more. */
		for (size_t i = 0; i < 80 * ot; i++)
			ck_assert_msg(fabsf(o[i] - ref[i]) <= 3e-4f * (1.0f + fabsf(ref[i])),
				      "speed case %zu [%zu]: %a vs %a", k, i, (double)o[i], (double)ref[i]);
		free(o);
		free(mel);
		free(ref);
		speed_cases++;
	}
	fclose(f);
	ck_assert_uint_eq(speed_cases, 11);

	/* a whole streamed utterance through the HiFT cache with the fake HiFT */
	snprintf(path, sizeof path, "%s/hift.txt", dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t hift_cases = 0;
	while (getline(&line, &cap, f) > 0) {
		char *end;
		size_t k = strtoul(line, &end, 10), P = strtoul(end, &end, 10), N = strtoul(end, &end, 10);
		char name[64];
		snprintf(name, sizeof name, "hift_%zu_mel.f32", k);
		float *mel_full = load(dir, name, 4, 80 * 2 * N);
		snprintf(name, sizeof name, "hift_%zu_out.f32", k);
		float *ref = load(dir, name, 4, 2 * N * 480);
		float *wav = calloc(2 * N * 480 + 1, sizeof *wav);
		size_t wav_n = 0;
		struct cv2_stream_sched s;
		cv2_stream_sched_init(&s, P);
		struct cv2_hift_cache c;
		cv2_hift_cache_init(&c, 80);
		struct cv2_stream_chunk ch;
		while (cv2_stream_sched_next(&s, N, 1, &ch)) {
			/* "flow" output: the new frames, channels-first */
			size_t tn = ch.mel_new;
			float *newmel = malloc((80 * tn + 1) * sizeof *newmel);
			for (size_t m = 0; m < 80; m++)
				memcpy(newmel + m * tn, mel_full + m * 2 * N + ch.mel_skip,
				       tn * sizeof *newmel);
			float *in = NULL;
			size_t tin = 0;
			ck_assert_int_eq(cv2_hift_cache_mel_input(&c, newmel, tn, &in, &tin), CV_OK);
			float *sp = malloc(480 * tin * sizeof *sp), *src = malloc(480 * tin * sizeof *src);
			fake_hift(in, 80, tin, c.valid ? c.source : NULL,
				  c.valid ? CV2_STREAM_SOURCE_CACHE : 0, sp, src);
			size_t emit = 0;
			ck_assert_int_eq(cv2_hift_cache_update(&c, in, tin, sp, 480 * tin, src, 480 * tin,
							       ch.finalize, &emit),
					 CV_OK);
			ck_assert_uint_le(wav_n + emit, 2 * N * 480);
			memcpy(wav + wav_n, sp, emit * sizeof *wav);
			wav_n += emit;
			free(sp);
			free(src);
			free(in);
			free(newmel);
		}
		ck_assert_uint_eq(wav_n, 2 * N * 480);
		for (size_t i = 0; i < wav_n; i++)
			ck_assert_msg(fbits(wav[i]) == fbits(ref[i]), "hift case %zu sample %zu: %a vs %a", k,
				      i, (double)wav[i], (double)ref[i]);
		cv2_hift_cache_free(&c);
		free(wav);
		free(ref);
		free(mel_full);
		hift_cases++;
	}
	fclose(f);
	free(line);
	ck_assert_uint_eq(hift_cases, 5);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *suite_cv2_stream(void);
Suite *suite_cv2_stream(void)
{
	Suite *s = suite_create("cv2_stream");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, schedule_by_hand);
	tcase_add_test(tc, hamming_and_fade_basic);
	tcase_add_test(tc, hift_cache_flow);
	tcase_add_test(tc, speed_basics);
	suite_add_tcase(s, tc);
	TCase *tp = tcase_create("python");
	tcase_set_timeout(tp, 600); /* may have to build the torch venv first */
	tcase_add_test(tp, parity_with_python);
	suite_add_tcase(s, tp);
	return s;
}
