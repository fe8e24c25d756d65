/* tests/unit/check_frontend.c — the text frontend against the Python reference.
 *
 * The parity case copies the pinned wetext package's grammars (tools/export/fetch_tn.sh),
 * runs tools/parity/frontend_parity.py (CosyVoice2's text_normalize with wetext,
 * inflect and the HF tokenizer, in the venv of tools/dev/venv.sh) over
 * tests/data/frontend_corpus.txt while the C frontend runs the same corpus,
 * and requires the same sentences and ids on every line; the first
 * differences are printed. Other cases: split_paragraph, inflect numbers,
 * wetext token reordering, the zh/en rules without grammars, limits and
 * input errors, normalize=0 and markup, JSON rendering, bundle layout.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "engine/text/frontend.h"
#include "handlers/text_reply.h"
#include "engine/text/numwords.h"
#include "engine/text/split.h"
#include "engine/text/tn.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utext.h"
#include "tests/unit/testutil.h"

#define MODEL_DIR "models/CosyVoice-BlankEN"
#define CORPUS	  "tests/data/frontend_corpus.txt"
/* long inputs (over the TN piece size): piecewise normalization must equal the whole-text reference */
#define LONG_CORPUS "tests/data/frontend_long.txt"

static struct frontend *fe; /* no grammars */

static void fe_setup(void)
{
	char err[256] = "";
	if (frontend_open(MODEL_DIR, NULL, NULL, &fe, err, sizeof err) != CV_OK) {
		fprintf(stderr, "frontend_open(%s): %s\n", MODEL_DIR, err);
		exit(1);
	}
}

static void fe_teardown(void)
{
	frontend_free(fe);
	fe = NULL;
}

/* Appends s to the NUL-terminated dst[cap]. */
static void app(char *dst, size_t cap, const char *s)
{
	size_t l = strlen(dst);
	snprintf(dst + l, cap - l, "%s", s);
}

static void u(struct utext *t, const char *s)
{
	utext_init(t);
	ck_assert_int_eq(utext_append_utf8(t, s, strlen(s), NULL), CV_OK);
}

static char *s8(const struct utext *t)
{
	char *s = utext_to_utf8(t->c, t->n, NULL);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Runs split_paragraph and checks the pieces joined by '|'. */
static void check_split(const char *in, int zh, const char *want)
{
	struct utext t;
	u(&t, in);
	struct split_result r;
	char err[256] = "";
	ck_assert_int_eq(split_paragraph(t.c, t.n, zh, frontend_tokenizer(fe), NULL, &r, err, sizeof err),
			 CV_OK);
	char got[8192] = "";
	for (size_t i = 0; i < r.n; i++) {
		char *p = s8(&r.piece[i]);
		if (i)
			strncat(got, "|", sizeof got - strlen(got) - 1);
		strncat(got, p, sizeof got - strlen(got) - 1);
		free(p);
	}
	ck_assert_msg(strcmp(got, want) == 0, "split(%s): got [%s] want [%s]", in, got, want);
	split_result_free(&r);
	utext_free(&t);
}

START_TEST(split_basic)
{
	check_split("你好。世界", 1, "你好。世界。");
	/* 17 + 3 characters: the tail (< 20) joins nothing (nothing flushed). */
	check_split("一二三。四五六！七八九？", 1, "一二三。四五六！七八九？");
	/* a lone punctuation after a piece is dropped */
	check_split("好。。走", 1, "好。走。");
	/* a closing quote after the punctuation is glued on */
	check_split("他说：“走。”好的", 1, "他说：“走。”好的。");
	check_split("Hi. \"Yes.\" no", 0, "Hi. \"Yes.\" no.");
	check_split("", 1, "");
}
END_TEST

START_TEST(split_packing_zh)
{
	/* 10 sentences of 9 characters + "。" = 10 each: flush when buffer > 60
	 * and buffer + next > 80: after 7 pieces (70 > 60, 80 not > 80 -> 8th
	 * joins: 80; 9th: 90 > 80 and 80 > 60 -> flush). */
	char in[1024] = "", want[1024] = "";
	for (int i = 0; i < 10; i++) {
		app(in, sizeof in, "一二三四五六七八九。");
		if (i == 8)
			app(want, sizeof want, "|");
		app(want, sizeof want, "一二三四五六七八九。");
	}
	check_split(in, 1, want);
	/* a short tail (< 20) joins the last flushed piece */
	char in2[1024] = "", want2[1024] = "";
	for (int i = 0; i < 9; i++)
		app(in2, sizeof in2, "一二三四五六七八九。");
	app(in2, sizeof in2, "短。");
	app(want2, sizeof want2, in2);
	/* 80 flushed at the 9th; the 9th (10) + tail (2) = 12 < 20 merge back */
	check_split(in2, 1, want2);
}
END_TEST

START_TEST(split_packing_en_tokens)
{
	/* en measures BlankEN tokens: "word " is one token each. */
	char in[4096] = "";
	for (int i = 0; i < 30; i++)
		app(in, sizeof in, "one two three four five six seven eight nine ten. ");
	struct utext t;
	u(&t, in);
	struct split_result r;
	char err[256];
	ck_assert_int_eq(split_paragraph(t.c, t.n, 0, frontend_tokenizer(fe), NULL, &r, err, sizeof err),
			 CV_OK);
	ck_assert_uint_gt(r.n, 3);
	for (size_t i = 0; i < r.n; i++) {
		char *p = s8(&r.piece[i]);
		int32_t ids[512];
		size_t n;
		ck_assert_int_eq(
		    tokenizer_encode(frontend_tokenizer(fe), p, strlen(p), ids, 512, &n, err, sizeof err),
		    CV_OK);
		/* each piece: more than 60 tokens unless it is the last */
		if (i + 1 < r.n)
			ck_assert_msg(n > 60 && n <= 80 + 11, "piece %zu has %zu tokens", i, n);
		free(p);
	}
	split_result_free(&r);
	utext_free(&t);
}
END_TEST

static void check_num(const char *digits, const char *want)
{
	struct utext in, out;
	u(&in, digits);
	utext_init(&out);
	ck_assert_int_eq(numwords_append(in.c, in.n, &out), CV_OK);
	char *got = s8(&out);
	ck_assert_msg(strcmp(got, want) == 0, "number_to_words(%s) = [%s], want [%s]", digits, got, want);
	free(got);
	utext_free(&in);
	utext_free(&out);
}

START_TEST(numwords_inflect)
{
	/* Values printed by inflect 7.6.0's number_to_words. */
	check_num("0", "zero");
	check_num("1", "one");
	check_num("01", "one");
	check_num("000", "zero");
	check_num("007", "seven");
	check_num("10", "ten");
	check_num("13", "thirteen");
	check_num("100", "one hundred");
	check_num("101", "one hundred and one");
	check_num("1000", "one thousand");
	check_num("1005", "one thousand and five");
	check_num("2024", "two thousand and twenty-four");
	check_num("1000000", "one million");
	check_num("1234567",
		  "one million, two hundred and thirty-four thousand, five hundred and sixty-seven");
	check_num(
	    "12345678901234567890",
	    "twelve quintillion, three hundred and forty-five quadrillion, six hundred and seventy-eight "
	    "trillion, nine hundred and one billion, two hundred and thirty-four million, five hundred and "
	    "sixty-seven thousand, eight hundred and ninety");
	/* too many groups: inflect raises NumOutOfRangeError */
	struct utext in, out;
	u(&in, "1000000000000000000000000000000000000000");
	utext_init(&out);
	ck_assert_int_eq(numwords_append(in.c, in.n, &out), CV_EINVAL);
	utext_free(&in);
	utext_free(&out);
}
END_TEST

static void check_reorder(const char *in, int zh, const char *want)
{
	char *out = NULL;
	size_t n = 0;
	ck_assert_int_eq(tn_reorder(in, strlen(in), zh ? TN_LANG_ZH : TN_LANG_EN, &out, &n), CV_OK);
	ck_assert_msg(strcmp(out, want) == 0, "reorder(%s) = [%s], want [%s]", in, out, want);
	ck_assert_uint_eq(n, strlen(out));
	free(out);
}

START_TEST(reorder_tokens)
{
	check_reorder("date { day: \"5\" month: \"3\" year: \"2024\" }", 1,
		      "date { year: \"2024\" month: \"3\" day: \"5\" }");
	check_reorder("char { value: \"今\" } money { currency: \"元\" value: \"12\" }", 1,
		      "char { value: \"今\" } money { value: \"12\" currency: \"元\" }");
	check_reorder("time { minute: \"30\" hour: \"10\" noon: \"上午\" }", 1,
		      "time { noon: \"上午\" hour: \"10\" minute: \"30\" }");
	/* en orders; preserve_order keeps the tagger's order */
	check_reorder("money { currency_maj: \"dollars\" integer_part: \"twelve\" }", 0,
		      "money { integer_part: \"twelve\" currency_maj: \"dollars\" }");
	check_reorder("date { month: \"march\" day: \"fifth\" preserve_order: \"true\" }", 0,
		      "date { month: \"march\" day: \"fifth\" preserve_order: \"true\" }");
	/* escapes are copied with their backslash; unknown tokens keep order */
	check_reorder("name { b: \"x\\\"y\" a: \"1\" }", 0, "name { b: \"x\\\"y\" a: \"1\" }");
	/* malformed: no endless loop */
	char *out = NULL;
	size_t n;
	ck_assert_int_eq(tn_reorder("tok { a: \"unterminated", 22, TN_LANG_ZH, &out, &n), CV_OK);
	free(out);
	ck_assert_int_eq(tn_reorder("", 0, TN_LANG_ZH, &out, &n), CV_EINVAL);
}
END_TEST

/* Runs the frontend; returns sentences joined by '|' (static buffer). */
static const char *run(struct frontend *f, const char *text, int normalize)
{
	static char got[16384];
	struct frontend_result r;
	char err[256] = "";
	int rc = frontend_run(f, text, strlen(text), normalize, &r, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "frontend_run(%s): %d %s", text, rc, err);
	got[0] = '\0';
	for (size_t i = 0; i < r.n; i++) {
		if (i)
			strncat(got, "|", sizeof got - strlen(got) - 1);
		strncat(got, r.s[i].text, sizeof got - strlen(got) - 1);
		ck_assert_uint_gt(r.s[i].n_ids, 0);
	}
	frontend_result_free(&r);
	return got;
}

START_TEST(rules_without_tn)
{
	ck_assert_int_eq(frontend_has_tn(fe), 0);
	ck_assert_str_eq(run(fe, "  你好 世界 ok go\n吧 ", 1), "你好世界ok go吧。");
	ck_assert_str_eq(run(fe, "面积5m²和3m³.", 1), "面积5m平方和3m立方。");
	ck_assert_str_eq(run(fe, "（括号）【注】`x` - 好——的，，、", 1), "括号注x -好 的。");
	ck_assert_str_eq(run(fe, "x - y中", 1), "x，y中。");
	ck_assert_str_eq(run(fe, "I have 2024 apples and 3 pears", 1),
			 "I have two thousand and twenty-four apples and three pears.");
	/* punctuation-only pieces are dropped */
	ck_assert_str_eq(run(fe, "……。好", 1), "……。好。");
	ck_assert_str_eq(run(fe, "!!!", 1), "");
	/* normalize=0 and special-token markup: one sentence, as is */
	ck_assert_str_eq(run(fe, " 你好 2024 ", 0), " 你好 2024 ");
	ck_assert_str_eq(run(fe, " 你好<|endofprompt|>2024 ", 1), " 你好<|endofprompt|>2024 ");
	ck_assert_str_eq(run(fe, "", 1), "");
}
END_TEST

START_TEST(input_errors_and_limits)
{
	struct frontend_result r;
	char err[256] = "";
	ck_assert_int_eq(frontend_run(fe, "a\xff", 2, 1, &r, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "UTF-8") != NULL, "%s", err);
	ck_assert_int_eq(frontend_run(fe, "a\0b", 3, 1, &r, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "NUL") != NULL, "%s", err);
	ck_assert_uint_eq(r.n, 0);

	struct frontend *f = NULL;
	struct frontend_limits lim = {64, 10, 0};
	ck_assert_int_eq(frontend_open(MODEL_DIR, NULL, &lim, &f, err, sizeof err), CV_OK);
	char big[100];
	memset(big, 'a', sizeof big);
	ck_assert_int_eq(frontend_run(f, big, sizeof big, 1, &r, err, sizeof err), CV_E2BIG);
	ck_assert_msg(strstr(err, "limit") != NULL, "%s", err);
	const char *many = "one two three four five six seven eight nine ten eleven twelve";
	ck_assert_int_eq(frontend_run(f, many, strlen(many), 0, &r, err, sizeof err), CV_E2BIG);
	ck_assert_msg(strstr(err, "tokens") != NULL, "%s", err);
	ck_assert_int_eq(frontend_run(f, "one two.", 8, 1, &r, err, sizeof err), CV_OK);
	ck_assert_uint_eq(r.n, 1);
	frontend_result_free(&r);
	frontend_free(f);

	/* 40-digit number on the en path: inflect's range error */
	const char *longnum = "x 1000000000000000000000000000000000000000";
	ck_assert_int_eq(frontend_run(fe, longnum, strlen(longnum), 1, &r, err, sizeof err), CV_EINVAL);
	/* missing grammars */
	ck_assert_int_eq(frontend_open(MODEL_DIR, "/nonexistent-tn", NULL, &f, err, sizeof err), CV_EIO);
	ck_assert_ptr_null(f);
}
END_TEST

START_TEST(result_json)
{
	struct frontend_result r;
	char err[256];
	const char *t = "你好。\"世界\"";
	ck_assert_int_eq(frontend_run(fe, t, strlen(t), 1, &r, err, sizeof err), CV_OK);
	char *js = text_reply_json(&r);
	ck_assert_ptr_nonnull(js);
	json_error_t je;
	json_t *o = json_loads(js, 0, &je);
	ck_assert_msg(o != NULL, "%s: %s", js, je.text);
	ck_assert_str_eq(json_string_value(json_object_get(o, "lang")), "zh");
	json_t *ss = json_object_get(o, "sentences");
	ck_assert_uint_eq(json_array_size(ss), r.n);
	for (size_t i = 0; i < r.n; i++) {
		json_t *s = json_array_get(ss, i);
		ck_assert_str_eq(json_string_value(json_object_get(s, "text")), r.s[i].text);
		json_t *ids = json_object_get(s, "ids");
		ck_assert_uint_eq(json_array_size(ids), r.s[i].n_ids);
		for (size_t k = 0; k < r.s[i].n_ids; k++)
			ck_assert_int_eq(json_integer_value(json_array_get(ids, k)), r.s[i].ids[k]);
	}
	json_decref(o);
	free(js);
	frontend_result_free(&r);
	struct frontend_result empty = {0, NULL, 0};
	js = text_reply_json(&empty);
	ck_assert_str_eq(js, "{\"sentences\":[],\"lang\":\"en\"}");
	free(js);
}
END_TEST

/* ------------------------------------------------------------------ parity */

/* A bundle-like directory: <dir>/tokenizer/{three files} and <dir>/tn/, as fetch_tn.sh makes it. */
static char bundle_dir[] = "/tmp/cv-fe-bundle-XXXXXX";

static void make_bundle(void)
{
	ck_assert_ptr_nonnull(mkdtemp(bundle_dir));
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "bash tools/export/fetch_tn.sh %s 2>/dev/null", bundle_dir);
	ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

static void rm_bundle(void)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf %s", bundle_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* All sentence texts of a run, concatenated, spaces dropped (malloc'd). */
static char *joined(struct frontend *f, const char *text)
{
	struct frontend_result r;
	char err[512] = "";
	int rc = frontend_run(f, text, strlen(text), 1, &r, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "frontend_run: %s", err);
	size_t cap = 16;
	for (size_t i = 0; i < r.n; i++)
		cap += strlen(r.s[i].text);
	char *o = calloc(1, cap);
	ck_assert_ptr_nonnull(o);
	size_t k = 0;
	for (size_t i = 0; i < r.n; i++)
		for (const char *c = r.s[i].text; *c; c++)
			if (*c != ' ')
				o[k++] = *c;
	frontend_result_free(&r);
	return o;
}

/* Text longer than one TN piece is normalized in sentence-cut pieces: n
 * copies of a sentence must read as n copies of its normalization. */
static void check_segmented(struct frontend *f, const char *one, int copies)
{
	size_t l = strlen(one);
	char *many = calloc(1, l * (size_t)copies + 1);
	ck_assert_ptr_nonnull(many);
	for (int i = 0; i < copies; i++)
		memcpy(many + l * (size_t)i, one, l);
	char *a = joined(f, one), *b = joined(f, many);
	size_t al = strlen(a);
	ck_assert_uint_gt(al, 0);
	ck_assert_uint_eq(strlen(b), al * (size_t)copies);
	for (int i = 0; i < copies; i++)
		ck_assert_msg(memcmp(b + al * (size_t)i, a, al) == 0, "copy %d differs: %s vs %s", i, b, a);
	free(a);
	free(b);
	free(many);
}

static int ids_equal(json_t *ji, const struct frontend_sentence *s)
{
	if (json_array_size(ji) != s->n_ids)
		return 0;
	for (size_t k = 0; k < s->n_ids; k++)
		if (json_integer_value(json_array_get(ji, k)) != s->ids[k])
			return 0;
	return 1;
}

static const char *const parity_corpora[] = {CORPUS, LONG_CORPUS};

START_TEST(parity_corpus)
{
	const char *corpus = parity_corpora[_i];
	char *py = test_run_line("bash tools/dev/venv.sh");
	ck_assert_msg(py != NULL, "tools/dev/venv.sh failed (no Python venv)");
	make_bundle();
	struct frontend *f = NULL;
	char err[512] = "", tdir[512], ndir[512];
	snprintf(tdir, sizeof tdir, "%s", bundle_dir);
	snprintf(ndir, sizeof ndir, "%s/tn", bundle_dir);
	/* the bundle layout: tokenizer_dir=<bundle> finds <bundle>/tokenizer */
	ck_assert_msg(frontend_open(tdir, ndir, NULL, &f, err, sizeof err) == CV_OK, "frontend_open: %s",
		      err);
	ck_assert_int_eq(frontend_has_tn(f), 1);

	/* The reference runs in the background while C does the same corpus. */
	char out[600], cmd[2048];
	snprintf(out, sizeof out, "%s/expected.jsonl", bundle_dir);
	const char *cache = getenv("CV_CACHE_DIR");
	const char *home = getenv("HOME");
	char cdir[512];
	if (cache && *cache)
		snprintf(cdir, sizeof cdir, "%s/frontend-parity", cache);
	else
		snprintf(cdir, sizeof cdir, "%s/.cache/cosyvoiced/frontend-parity", home ? home : "/tmp");
	snprintf(cmd, sizeof cmd,
		 "'%s' tools/parity/frontend_parity.py --model-dir %s --corpus %s --out %s --cache-dir '%s'",
		 py, MODEL_DIR, corpus, out, cdir);
	free(py);
	FILE *bg = popen(cmd, "r");
	ck_assert_ptr_nonnull(bg);

	FILE *fc = fopen(corpus, "r");
	ck_assert_ptr_nonnull(fc);
	size_t cap = 0, n = 0, lcap = 0;
	struct frontend_result *res = NULL;
	int *rcs = NULL;
	char *line = NULL;
	ssize_t ll;
	while ((ll = getline(&line, &lcap, fc)) > 0) {
		json_error_t je;
		json_t *s = json_loadb(line, (size_t)ll, JSON_DECODE_ANY, &je);
		ck_assert_msg(s && json_is_string(s), "corpus line %zu", n + 1);
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			res = realloc(res, cap * sizeof *res);
			rcs = realloc(rcs, cap * sizeof *rcs);
			ck_assert(res && rcs);
		}
		rcs[n] =
		    frontend_run(f, json_string_value(s), json_string_length(s), 1, &res[n], err, sizeof err);
		if (rcs[n])
			fprintf(stderr, "corpus line %zu: C error %d: %s\n", n + 1, rcs[n], err);
		json_decref(s);
		n++;
	}
	fclose(fc);
	ck_assert_msg(pclose(bg) == 0, "reference failed: %s", cmd);
	ck_assert_uint_ge(n, _i == 0 ? 1000 : 4);

	FILE *fe_ = fopen(out, "r");
	ck_assert_ptr_nonnull(fe_);
	size_t k = 0, diffs = 0;
	while ((ll = getline(&line, &lcap, fe_)) > 0) {
		ck_assert_uint_lt(k, n);
		json_error_t je;
		json_t *o = json_loadb(line, (size_t)ll, 0, &je);
		ck_assert_msg(o != NULL, "expected line %zu: %s", k + 1, je.text);
		json_t *js = json_object_get(o, "sentences"), *ji = json_object_get(o, "ids");
		int same = rcs[k] == CV_OK && json_array_size(js) == res[k].n &&
			   json_is_true(json_object_get(o, "lang_zh")) == (res[k].lang_zh != 0);
		for (size_t i = 0; same && i < res[k].n; i++)
			same = strcmp(json_string_value(json_array_get(js, i)), res[k].s[i].text) == 0 &&
			       ids_equal(json_array_get(ji, i), &res[k].s[i]);
		if (!same && ++diffs <= 8) {
			fprintf(stderr, "DIFF line %zu: %s\n  want:", k + 1,
				json_string_value(json_object_get(o, "text")));
			for (size_t i = 0; i < json_array_size(js); i++)
				fprintf(stderr, " [%s]", json_string_value(json_array_get(js, i)));
			fprintf(stderr, "\n  got (rc %d):", rcs[k]);
			for (size_t i = 0; rcs[k] == CV_OK && i < res[k].n; i++)
				fprintf(stderr, " [%s]", res[k].s[i].text);
			fprintf(stderr, "\n");
		}
		json_decref(o);
		k++;
	}
	fclose(fe_);
	free(line);
	for (size_t i = 0; i < n; i++)
		if (rcs[i] == CV_OK)
			frontend_result_free(&res[i]);
	free(res);
	free(rcs);
	check_segmented(f, "今天是2024年3月5日，价格12.5元，温度-3℃。", 40);
	check_segmented(f, "I paid $12.50 on 2024-03-05. ", 30);
	struct frontend_result big;
	char *huge = calloc(1, 70000);
	ck_assert_ptr_nonnull(huge);
	memset(huge, '7', 69999);
	ck_assert_int_eq(frontend_run(f, huge, 69999, 1, &big, err, sizeof err), CV_E2BIG);
	ck_assert_msg(strstr(err, "normalization") != NULL, "%s", err);
	free(huge);
	frontend_free(f);
	rm_bundle();
	ck_assert_uint_eq(k, n);
	ck_assert_msg(diffs == 0, "%zu of %zu corpus lines differ from the reference", diffs, n);
}
END_TEST

Suite *suite_frontend(void);
Suite *suite_frontend(void)
{
	Suite *s = suite_create("frontend");
	TCase *tc = tcase_create("core");
	tcase_add_unchecked_fixture(tc, fe_setup, fe_teardown);
	tcase_add_test(tc, split_basic);
	tcase_add_test(tc, split_packing_zh);
	tcase_add_test(tc, split_packing_en_tokens);
	tcase_add_test(tc, numwords_inflect);
	tcase_add_test(tc, reorder_tokens);
	tcase_add_test(tc, rules_without_tn);
	tcase_add_test(tc, input_errors_and_limits);
	tcase_add_test(tc, result_json);
	suite_add_tcase(s, tc);

	/* May have to build the Python venv first (pip). */
	TCase *tp = tcase_create("parity");
	tcase_set_timeout(tp, 600);
	tcase_add_loop_test(tp, parity_corpus, 0, 2);
	suite_add_tcase(s, tp);
	return s;
}
