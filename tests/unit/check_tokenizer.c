/* tests/unit/check_tokenizer.c — the BlankEN BPE tokenizer against HF.
 *
 * The parity case runs tools/parity/tok_parity.py (Hugging Face `tokenizers` in the
 * venv of tools/dev/venv.sh) over tests/data/tok_corpus.txt and requires the C ids
 * and the C decode to equal HF's on every line; the first differing line is
 * printed. TOK_SWEEP=1 adds the all-code-points sweep (slow). Other cases:
 * caps, invalid UTF-8, special tokens, lstrip/rstrip from tokenizer_config,
 * the NFC fast-path table against utf8proc, threads, load errors.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "common/buf.h"
#include "common/utf8.h"
#include "common/err.h"
#include "engine/text/tokenizer.h"
#include "engine/text/tokenizer_pretok.h"
#include "tests/unit/testutil.h"

#define MODEL_DIR "models/CosyVoice-BlankEN"
#define CORPUS	  "tests/data/tok_corpus.txt"

static struct tokenizer *tok;

static void tok_setup(void)
{
	char err[256] = "";
	int rc = tokenizer_open(MODEL_DIR, &tok, err, sizeof err);
	if (rc != CV_OK) {
		fprintf(stderr, "tokenizer_open(%s): %s\n", MODEL_DIR, err);
		exit(1);
	}
}

static void tok_teardown(void)
{
	tokenizer_free(tok);
	tok = NULL;
}

/* Encodes a NUL-terminated string; returns the count (asserting success). */
static size_t enc(const char *s, int32_t *ids, size_t cap)
{
	char err[256] = "";
	size_t n = 0;
	int rc = tokenizer_encode(tok, s, strlen(s), ids, cap, &n, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "encode(%s): %d %s", s, rc, err);
	return n;
}

/* Runs a shell command, returns its first stdout line (malloc'd) or NULL. */
static void print_ids(const char *what, const int32_t *ids, size_t n)
{
	fprintf(stderr, "  %s (%zu):", what, n);
	for (size_t i = 0; i < n && i < 64; i++)
		fprintf(stderr, " %d", (int)ids[i]);
	fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

/* Runs tok_parity.py (args after the python) into a temp file and compares
 * every {"text","ids","decoded"} line with the C tokenizer. Returns lines. */
static size_t parity_run(const char *args, const char *corpus)
{
	char *py = test_run_line("bash tools/dev/venv.sh");
	ck_assert_msg(py != NULL, "tools/dev/venv.sh failed (no Python venv with tokenizers)");
	char out[] = "/tmp/cv-tok-expected-XXXXXX";
	int fd = mkstemp(out);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "'%s' tools/parity/tok_parity.py --model-dir %s %s --out %s", py, MODEL_DIR,
		 args, out);
	free(py);
	ck_assert_msg(system(cmd) == 0, "parity script failed: %s", cmd);

	FILE *fe = fopen(out, "r");
	FILE *fc = corpus ? fopen(corpus, "r") : NULL;
	ck_assert_ptr_nonnull(fe);
	if (corpus)
		ck_assert_ptr_nonnull(fc);
	size_t cap = 1 << 20, lineno = 0;
	int32_t *ids = malloc(cap * sizeof *ids), *want = malloc(cap * sizeof *want);
	char *line = NULL, *cline = NULL;
	size_t lcap = 0, clcap = 0;
	ssize_t ll;
	struct buf dec;
	buf_init(&dec, (size_t)64 << 20);
	while ((ll = getline(&line, &lcap, fe)) > 0) {
		lineno++;
		json_error_t je;
		json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &je);
		ck_assert_msg(o != NULL, "expected file line %zu: %s", lineno, je.text);
		json_t *jt = json_object_get(o, "text"), *ji = json_object_get(o, "ids");
		json_t *jd = json_object_get(o, "decoded");
		ck_assert(json_is_string(jt) && json_is_array(ji) && json_is_string(jd));
		const char *text = json_string_value(jt);
		size_t tlen = json_string_length(jt);
		if (fc) {
			/* The expected file must belong to this corpus line. */
			ck_assert_msg(getline(&cline, &clcap, fc) > 0, "corpus shorter than expected file");
			json_t *cs = json_loads(cline, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
			ck_assert_msg(cs && json_is_string(cs), "corpus line %zu: not a JSON string", lineno);
			ck_assert(json_string_length(cs) == tlen &&
				  memcmp(json_string_value(cs), text, tlen) == 0);
			json_decref(cs);
		}
		size_t nw = json_array_size(ji);
		ck_assert_uint_le(nw, cap);
		for (size_t i = 0; i < nw; i++)
			want[i] = (int32_t)json_integer_value(json_array_get(ji, i));
		char err[256] = "";
		size_t n = 0;
		int rc = tokenizer_encode(tok, text, tlen, ids, cap, &n, err, sizeof err);
		int same = rc == CV_OK && n == nw && memcmp(ids, want, n * sizeof *ids) == 0;
		if (!same) {
			char *esc = json_dumps(jt, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
			fprintf(stderr, "tokenizer parity: first difference at line %zu: %s\n", lineno, esc);
			print_ids("hf", want, nw);
			print_ids("c ", ids, n);
			free(esc);
		}
		ck_assert_msg(same, "line %zu differs from HF (rc %d %s)", lineno, rc, err);
		buf_reset(&dec);
		rc = tokenizer_decode(tok, ids, n, 0, &dec, err, sizeof err);
		ck_assert_int_eq(rc, CV_OK);
		if (buf_len(&dec) != json_string_length(jd) ||
		    memcmp(buf_data(&dec), json_string_value(jd), buf_len(&dec)) != 0) {
			char *esc = json_dumps(jt, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
			fprintf(stderr, "tokenizer parity: decode differs at line %zu: %s\n", lineno, esc);
			free(esc);
			ck_abort_msg("decode of line %zu differs from HF", lineno);
		}
		json_decref(o);
	}
	if (fc) {
		ck_assert_msg(getline(&cline, &clcap, fc) <= 0, "corpus longer than expected file");
		fclose(fc);
	}
	buf_free(&dec);
	free(line);
	free(cline);
	free(ids);
	free(want);
	fclose(fe);
	unlink(out);
	return lineno;
}

START_TEST(parity_corpus)
{
	char args[512];
	snprintf(args, sizeof args, "--corpus %s", CORPUS);
	size_t n = parity_run(args, CORPUS);
	ck_assert_uint_ge(n, 2000);
}
END_TEST

START_TEST(parity_sweep)
{
	size_t n = parity_run("--sweep", NULL);
	ck_assert_uint_ge(n, 17000);
}
END_TEST

START_TEST(empty_and_null)
{
	int32_t ids[4] = {-7, -7, -7, -7};
	size_t n = 99;
	char err[64];
	ck_assert_int_eq(tokenizer_encode(tok, "", 0, ids, 4, &n, err, sizeof err), CV_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ids[0], -7);
	n = 99;
	ck_assert_int_eq(tokenizer_encode(tok, NULL, 0, ids, 0, &n, err, sizeof err), CV_OK);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(tokenizer_encode(tok, NULL, 3, ids, 4, &n, err, sizeof err), CV_EINVAL);
	tokenizer_free(NULL);
}
END_TEST

START_TEST(one_megabyte_of_a)
{
	size_t len = 1 << 20;
	char *s = malloc(len);
	memset(s, 'a', len);
	size_t cap = len, n = 0;
	int32_t *ids = malloc(cap * sizeof *ids);
	char err[128] = "";
	ck_assert_int_eq(tokenizer_encode(tok, s, len, ids, cap, &n, err, sizeof err), CV_OK);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_lt(n, len / 2); /* "aa"... merges exist: far fewer ids than bytes */
	struct buf out;
	buf_init(&out, len + 16);
	ck_assert_int_eq(tokenizer_decode(tok, ids, n, 0, &out, err, sizeof err), CV_OK);
	ck_assert_uint_eq(buf_len(&out), len);
	ck_assert(memcmp(buf_data(&out), s, len) == 0);
	buf_free(&out);
	free(ids);
	free(s);
}
END_TEST

START_TEST(token_cap_e2big)
{
	const char *s = "Hello, world! 你好，世界！";
	int32_t ids[64];
	size_t n = enc(s, ids, 64);
	ck_assert_uint_ge(n, 6);
	int32_t few[64];
	size_t m = 0;
	char err[128] = "";
	ck_assert_int_eq(tokenizer_encode(tok, s, strlen(s), few, n - 1, &m, err, sizeof err), CV_E2BIG);
	ck_assert_uint_eq(m, n - 1);
	ck_assert(memcmp(few, ids, (n - 1) * sizeof *ids) == 0);
	ck_assert_ptr_nonnull(strstr(err, "tokens"));
	ck_assert_int_eq(tokenizer_encode(tok, s, strlen(s), few, 0, &m, err, sizeof err), CV_E2BIG);
	ck_assert_int_eq(tokenizer_encode(tok, s, strlen(s), few, n, &m, err, sizeof err), CV_OK);
	ck_assert_uint_eq(m, n);
	/* A special token alone also counts against the cap. */
	ck_assert_int_eq(tokenizer_encode(tok, "<|endoftext|>", 13, few, 0, &m, err, sizeof err), CV_E2BIG);
}
END_TEST

START_TEST(input_cap_e2big)
{
	struct tokenizer *t2 = NULL;
	char err[256] = "";
	ck_assert_int_eq(tokenizer_open(MODEL_DIR, &t2, err, sizeof err), CV_OK);
	tokenizer_set_max_input(t2, 10);
	int32_t ids[32];
	size_t n = 5;
	ck_assert_int_eq(tokenizer_encode(t2, "0123456789", 10, ids, 32, &n, err, sizeof err), CV_OK);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(tokenizer_encode(t2, "0123456789a", 11, ids, 32, &n, err, sizeof err), CV_E2BIG);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(strstr(err, "cap"));
	tokenizer_set_max_input(t2, 0);
	ck_assert_int_eq(tokenizer_encode(t2, "0123456789a", 11, ids, 32, &n, err, sizeof err), CV_OK);
	tokenizer_free(t2);
}
END_TEST

START_TEST(vocab_and_special_ids)
{
	ck_assert_uint_eq(tokenizer_vocab_size(tok), 151663);
	ck_assert_int_eq(tokenizer_token_id(tok, "<|endoftext|>"), 151643);
	ck_assert_int_eq(tokenizer_token_id(tok, "<|im_start|>"), 151644);
	ck_assert_int_eq(tokenizer_token_id(tok, "<|endofprompt|>"), 151646);
	ck_assert_int_eq(tokenizer_token_id(tok, "[mn]"), 151662);
	ck_assert_int_eq(tokenizer_token_id(tok, "[nonexistent]"), CV_ENOTFOUND);
	ck_assert_int_eq(tokenizer_token_id(tok, NULL), CV_ENOTFOUND);
	/* Every entry of special_tokens.json: token_id and atomic encoding. */
	json_error_t je;
	json_t *sp = json_load_file(MODEL_DIR "/special_tokens.json", 0, &je);
	ck_assert_ptr_nonnull(sp);
	ck_assert_uint_eq(json_object_size(sp), 20);
	const char *k;
	json_t *v;
	json_object_foreach(sp, k, v)
	{
		int32_t ids[8];
		ck_assert_int_eq(tokenizer_token_id(tok, k), json_integer_value(v));
		ck_assert_uint_eq(enc(k, ids, 8), 1);
		ck_assert_int_eq(ids[0], json_integer_value(v));
		struct buf out;
		char err[64];
		buf_init(&out, 64);
		ck_assert_int_eq(tokenizer_decode(tok, ids, 1, 0, &out, err, sizeof err), CV_OK);
		ck_assert_str_eq(buf_data(&out), k);
		buf_reset(&out);
		ck_assert_int_eq(tokenizer_decode(tok, ids, 1, 1, &out, err, sizeof err), CV_OK);
		ck_assert_uint_eq(buf_len(&out), 0);
		buf_free(&out);
	}
	json_decref(sp);
	/* A vocab.json key in byte-level form maps to its id. */
	int32_t ids[8];
	ck_assert_uint_eq(enc(" hello", ids, 8), 1);
	ck_assert_int_eq(tokenizer_token_id(tok, "\xC4\xA0hello"), ids[0]); /* "Ġhello" */
	ck_assert_uint_eq(enc("a", ids, 8), 1);
	ck_assert_int_eq(tokenizer_token_id(tok, "a"), ids[0]);
	/* Special tokens inside text split it into separately encoded spans. */
	int32_t a[16], b[16], c[64];
	size_t na = enc("你好", a, 16), nb = enc("world", b, 16), nc = enc("你好<|im_end|>world", c, 64);
	ck_assert_uint_eq(nc, na + 1 + nb);
	ck_assert(memcmp(c, a, na * sizeof *a) == 0);
	ck_assert_int_eq(c[na], 151645);
	ck_assert(memcmp(c + na + 1, b, nb * sizeof *b) == 0);
}
END_TEST

START_TEST(invalid_utf8)
{
	static const struct {
		const char *s;
		size_t len, off;
	} bad[] = {
	    {"\x80", 1, 0},		    /* lone continuation */
	    {"ab\xC0\xAF", 4, 2},	    /* overlong '/' */
	    {"\xC1\xBF", 2, 0},		    /* overlong */
	    {"x\xE0\x80\xAF", 4, 1},	    /* overlong 3-byte */
	    {"\xED\xA0\x80", 3, 0},	    /* UTF-16 surrogate */
	    {"ok\xED\xBF\xBF", 5, 2},	    /* surrogate */
	    {"\xF4\x90\x80\x80", 4, 0},	    /* above U+10FFFF */
	    {"\xF5\x80\x80\x80", 4, 0},	    /* invalid lead */
	    {"\xF0\x80\x80\x80", 4, 0},	    /* overlong 4-byte */
	    {"abc\xE4\xBD", 5, 3},	    /* truncated at the end */
	    {"\xE4\xBDx", 3, 0},	    /* truncated before ASCII */
	    {"\xC3", 1, 0},		    /* truncated */
	    {"ok\xFF", 3, 2},		    /* 0xFF */
	    {"\xFE\xFF", 2, 0},		    /* UTF-16 BOM bytes */
	    {"\xe4\xbd\xa0\xe5\xa5", 5, 3}, /* "你" then half of "好" */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int32_t ids[16];
		size_t n = 7, off = 99;
		char err[128] = "", want[64];
		ck_assert_int_eq(tokenizer_encode(tok, bad[i].s, bad[i].len, ids, 16, &n, err, sizeof err),
				 CV_EINVAL);
		ck_assert_uint_eq(n, 0);
		snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
		ck_assert_msg(strstr(err, want) != NULL, "case %zu: err \"%s\" lacks \"%s\"", i, err, want);
		ck_assert_int_eq(utf8_validate(bad[i].s, bad[i].len, &off), 0);
		ck_assert_uint_eq(off, bad[i].off);
	}
	/* NUL is valid UTF-8 and an ordinary character: encodes and round-trips. */
	int32_t ids[16];
	size_t n = 0;
	char err[128];
	ck_assert_int_eq(tokenizer_encode(tok, "a\0b\0", 4, ids, 16, &n, err, sizeof err), CV_OK);
	ck_assert_uint_ge(n, 2);
	struct buf out;
	buf_init(&out, 64);
	ck_assert_int_eq(tokenizer_decode(tok, ids, n, 0, &out, err, sizeof err), CV_OK);
	ck_assert_uint_eq(buf_len(&out), 4);
	ck_assert(memcmp(buf_data(&out), "a\0b\0", 4) == 0);
	/* Decoding a partial character gives U+FFFD, like from_utf8_lossy. */
	ids[0] = tokenizer_token_id(tok, "\xC3\xA4"); /* "ä": the token of byte 0xE4 */
	ck_assert_int_ge(ids[0], 0);
	buf_reset(&out);
	ck_assert_int_eq(tokenizer_decode(tok, ids, 1, 0, &out, err, sizeof err), CV_OK);
	ck_assert_str_eq(buf_data(&out), "\xEF\xBF\xBD");
	int32_t badid = 151663;
	ck_assert_int_eq(tokenizer_decode(tok, &badid, 1, 0, &out, err, sizeof err), CV_EINVAL);
	badid = -1;
	ck_assert_int_eq(tokenizer_decode(tok, &badid, 1, 0, &out, err, sizeof err), CV_EINVAL);
	buf_free(&out);
}
END_TEST

/* Every code point the NFC fast path skips must really be NFC-inert. */
START_TEST(nfc_inert_table)
{
	static uint8_t second[0x110000 / 8];
	memset(second, 0, sizeof second);
	utf8proc_int32_t d[32];
	int opts_c = UTF8PROC_DECOMPOSE;
	for (utf8proc_int32_t cp = 0; cp < 0x110000; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		int last;
		utf8proc_ssize_t n = utf8proc_decompose_char(cp, d, 32, (utf8proc_option_t)opts_c, &last);
		ck_assert_int_gt(n, 0);
		for (utf8proc_ssize_t i = 1; i < n; i++)
			second[d[i] / 8] |= (uint8_t)(1u << (d[i] % 8));
	}
	size_t inert = 0;
	for (uint32_t cp = 0; cp < 0x110000; cp++) {
		if ((cp >= 0xD800 && cp <= 0xDFFF) || !tokenizer_nfc_inert(cp))
			continue;
		inert++;
		ck_assert_msg(utf8proc_get_property((utf8proc_int32_t)cp)->combining_class == 0, "U+%04X ccc",
			      cp);
		ck_assert_msg(!(second[cp / 8] & (1u << (cp % 8))), "U+%04X composes with a predecessor", cp);
		uint8_t in[4], *nfc = NULL;
		utf8proc_ssize_t il = utf8proc_encode_char((utf8proc_int32_t)cp, in);
		utf8proc_ssize_t nl = utf8proc_map(in, il, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
		ck_assert_msg(nl == il && memcmp(nfc, in, (size_t)il) == 0, "U+%04X changes under NFC", cp);
		free(nfc);
	}
	ck_assert_uint_gt(inert, 100000);
}
END_TEST

START_TEST(nfc_composes)
{
	/* Decomposed input gives the same ids as the composed form. */
	int32_t a[32], b[32];
	size_t na = enc("caf\xC3\xA9 \xE3\x81\x8C", a, 32);		 /* café が */
	size_t nb = enc("cafe\xCC\x81 \xE3\x81\x8B\xE3\x82\x99", b, 32); /* cafe+◌́ か+◌゙ */
	ck_assert_uint_eq(na, nb);
	ck_assert(memcmp(a, b, na * sizeof *a) == 0);
}
END_TEST

START_TEST(strip_flags_from_config)
{
	char dir[] = "/tmp/cv-tok-cfg-XXXXXX", path[512], src[512], err[256] = "";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *cwd = getcwd(NULL, 0);
	static const char *files[] = {"vocab.json", "merges.txt"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(src, sizeof src, "%s/%s/%s", cwd, MODEL_DIR, files[i]);
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		ck_assert_int_eq(symlink(src, path), 0);
	}
	free(cwd);
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"added_tokens_decoder\": {\"151643\": {\"content\": \"<|endoftext|>\", \"lstrip\": true, "
	      "\"rstrip\": true, \"normalized\": false, \"single_word\": false, \"special\": true}}}",
	      f);
	fclose(f);
	struct tokenizer *t2 = NULL;
	ck_assert_int_eq(tokenizer_open(dir, &t2, err, sizeof err), CV_OK);
	ck_assert_uint_eq(tokenizer_vocab_size(t2), 151644);
	int32_t ids[32], a[8], b[8];
	size_t n = 0, na = enc("a", a, 8), nb = enc("b", b, 8);
	const char *s = "a \xE3\x80\x80\t<|endoftext|>\n b"; /* space, U+3000, tab; newline, space */
	ck_assert_int_eq(tokenizer_encode(t2, s, strlen(s), ids, 32, &n, err, sizeof err), CV_OK);
	ck_assert_uint_eq(n, na + 1 + nb);
	ck_assert_int_eq(ids[na], 151643);
	ck_assert(memcmp(ids, a, na * sizeof *a) == 0 && memcmp(ids + na + 1, b, nb * sizeof *b) == 0);
	tokenizer_free(t2);
	/* normalized=true is refused, not silently mis-tokenized. */
	f = fopen(path, "w");
	fputs("{\"added_tokens_decoder\": {\"151643\": {\"content\": \"<x>\", \"normalized\": true}}}", f);
	fclose(f);
	ck_assert_int_eq(tokenizer_open(dir, &t2, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_ptr_null(t2);
	unlink(path);
	/* Neither added-token file: refused. */
	ck_assert_int_eq(tokenizer_open(dir, &t2, err, sizeof err), CV_EIO);
	ck_assert_ptr_nonnull(strstr(err, "special_tokens.json"));
	/* A merge naming a token missing from vocab.json: refused. */
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	unlink(path);
	f = fopen(path, "w");
	fputs("a b\nzzz_not_a_token q\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/special_tokens.json", dir);
	f = fopen(path, "w");
	fputs("{\"<|endoftext|>\": 151643}", f);
	fclose(f);
	ck_assert_int_eq(tokenizer_open(dir, &t2, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "merges.txt:2"));
	unlink(path);
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/vocab.json", dir);
	unlink(path);
	rmdir(dir);
	ck_assert_int_eq(tokenizer_open("/nonexistent/dir", &t2, err, sizeof err), CV_EIO);
	ck_assert_ptr_null(t2);
}
END_TEST

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void remove_files(const char *dir)
{
	static const char *names[] = {"vocab.json", "merges.txt", "special_tokens.json",
				      "tokenizer_config.json"};
	char path[512];
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* A tiny tokenizer folder: the 256 byte tokens (keys written with every
 * JSON escape form), "ab" from one merge, one added token. */
START_TEST(tiny_vocab_parser)
{
	char dir[] = "/tmp/cv-tok-tiny-XXXXXX", err[256] = "";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	struct buf v;
	buf_init(&v, 1 << 16);
	buf_append_str(&v, "\n{ ");
	int n = 0;
	for (int b = 0; b < 256; b++) {
		int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
		unsigned cp = direct ? (unsigned)b : (unsigned)(256 + n++);
		if (cp == '"')
			buf_printf(&v, "\"\\\"\" : %d,\r\n", b);
		else if (cp == '\\')
			buf_printf(&v, "\"\\\\\":%d,", b);
		else if (cp == '/')
			buf_printf(&v, "\"\\/\"\t:\t%d ,", b);
		else if (cp == 'a' || cp == 'b')
			buf_printf(&v, "\"%c\": %d,", (char)cp, b);
		else
			buf_printf(&v, "\"\\u%04X\": %d,", cp, b);
	}
	buf_append_str(&v, "\"a\\u0062\": 256 }\n");
	write_file(dir, "vocab.json", buf_data(&v));
	buf_free(&v);
	write_file(dir, "merges.txt", "#version: 0.2\r\na b\r\n\n");
	write_file(dir, "special_tokens.json", "{\"<|x|>\": 300}");
	struct tokenizer *t2 = NULL;
	ck_assert_msg(tokenizer_open(dir, &t2, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_uint_eq(tokenizer_vocab_size(t2), 258);
	int32_t ids[16];
	size_t cnt = 0;
	ck_assert_int_eq(tokenizer_encode(t2, "ab", 2, ids, 16, &cnt, err, sizeof err), CV_OK);
	ck_assert_uint_eq(cnt, 1);
	ck_assert_int_eq(ids[0], 256);
	ck_assert_int_eq(tokenizer_encode(t2, "ba\"/\\", 5, ids, 16, &cnt, err, sizeof err), CV_OK);
	ck_assert_uint_eq(cnt, 5); /* "ba" (no merge), then the run "\"/\\" as bytes */
	ck_assert_int_eq(ids[0], 'b');
	ck_assert_int_eq(ids[1], 'a');
	ck_assert_int_eq(ids[2], '"');
	ck_assert_int_eq(ids[3], '/');
	ck_assert_int_eq(ids[4], '\\');
	ck_assert_int_eq(tokenizer_encode(t2, " ab<|x|>", 8, ids, 16, &cnt, err, sizeof err), CV_OK);
	ck_assert_uint_eq(cnt, 3); /* piece " ab": the space has no merge, "ab" does */
	ck_assert_int_eq(ids[0], ' ');
	ck_assert_int_eq(ids[1], 256);
	ck_assert_int_eq(ids[2], 300);
	ck_assert_int_eq(tokenizer_token_id(t2, "\xC4\xA0"), ' '); /* "Ġ" */
	tokenizer_free(t2);

	/* Malformed vocab files are refused with the byte position. */
	static const char *bad[] = {"",
				    "[]",
				    "{}",
				    "{\"a\": 1.5}",
				    "{\"a\": -1}",
				    "{\"a\": 1,}",
				    "{\"a\" 1}",
				    "{\"a\": 1, \"a\": 2}",
				    "{\"\\ud800\": 1}",
				    "{\"a\": 1} x",
				    "{\"a\": 99999999}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(dir, "vocab.json", bad[i]);
		t2 = NULL;
		ck_assert_msg(tokenizer_open(dir, &t2, err, sizeof err) == CV_EINVAL, "case %zu", i);
		ck_assert_ptr_null(t2);
		ck_assert_ptr_nonnull(strstr(err, "vocab.json"));
	}
	remove_files(dir);
}
END_TEST

/* Random texts from a palette of tricky pieces (no added tokens): encoding
 * never fails on valid UTF-8, fails with EINVAL on broken bytes, and
 * decode(encode(x)) == NFC(x) byte for byte. Fixed seed. */
START_TEST(random_roundtrip)
{
	static const char *pal[] = {"a",
				    "Z",
				    "1",
				    "9",
				    " ",
				    "  ",
				    "\t",
				    "\n",
				    "\r",
				    "'",
				    "'s",
				    "'LL",
				    "\xC5\xBF",
				    "!",
				    "...",
				    "\xEF\xBC\x8C",
				    "\xE3\x80\x82",
				    "\xE4\xB8\xAD",
				    "\xE6\x96\x87",
				    "\xF0\x9F\x98\x80",
				    "\xE2\x80\x8D",
				    "\xF0\x9F\x8F\xBD",
				    "\xCC\x81",
				    "\xCC\xA3",
				    "e",
				    "\xE3\x82\x99",
				    "\xE3\x81\x8B",
				    "\xE3\x80\x80",
				    "\xC2\xA0",
				    "\xC2\x85",
				    "\xDF\xBD",
				    "\xE1\xB7\xB6",
				    "\xF0\xA0\xAE\xB7",
				    "\xEF\xA4\x80",
				    "\xE2\x84\xAB",
				    "\x00",
				    "\x1C",
				    "\xD9\xA3",
				    "\xE1\x84\x80",
				    "\xE1\x85\xA1",
				    "\xE1\x86\xA8"};
	static const char *broken[] = {"\x80", "\xC3", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"};
	uint64_t rng = 0x9E3779B97F4A7C15ULL;
	char text[512];
	int32_t ids[1024];
	struct buf out;
	buf_init(&out, 4096);
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = 0;
		int parts = 1 + (int)(rng % 24), broke = 0;
		for (int k = 0; k < parts; k++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			const char *piece = pal[rng % (sizeof pal / sizeof pal[0])];
			size_t pl = piece[0] ? strlen(piece) : 1; /* "\x00" is one NUL byte */
			if (iter % 10 == 9 && k == parts / 2) {
				piece = broken[(rng >> 20) % 5];
				pl = strlen(piece);
				broke = 1;
			}
			memcpy(text + len, piece, pl);
			len += pl;
		}
		size_t n = 0;
		char err[128] = "";
		int rc = tokenizer_encode(tok, text, len, ids, 1024, &n, err, sizeof err);
		if (broke) {
			ck_assert_int_eq(rc, CV_EINVAL);
			continue;
		}
		ck_assert_msg(rc == CV_OK, "iter %d: %s", iter, err);
		uint8_t *norm;
		size_t nlen;
		ck_assert_int_eq(tokenizer_nfc((const uint8_t *)text, len, &norm, &nlen), CV_OK);
		buf_reset(&out);
		ck_assert_int_eq(tokenizer_decode(tok, ids, n, 0, &out, err, sizeof err), CV_OK);
		ck_assert_uint_eq(buf_len(&out), nlen);
		ck_assert_msg(memcmp(buf_data(&out), norm ? norm : (uint8_t *)text, nlen) == 0, "iter %d",
			      iter);
		free(norm);
	}
	buf_free(&out);
}
END_TEST

struct thr {
	const char *text;
	const int32_t *want;
	size_t n_want;
	int ok;
};

static void *thr_main(void *arg)
{
	struct thr *a = arg;
	int32_t ids[256];
	a->ok = 1;
	for (int i = 0; i < 300; i++) {
		size_t n = 0;
		char err[64];
		if (tokenizer_encode(tok, a->text, strlen(a->text), ids, 256, &n, err, sizeof err) != CV_OK ||
		    n != a->n_want || memcmp(ids, a->want, n * sizeof *ids) != 0)
			a->ok = 0;
	}
	return NULL;
}

START_TEST(concurrent_encode)
{
	static const char *texts[4] = {
	    "CosyVoice2 in C: 你好，世界！<|endoftext|> 😀👍🏽",
	    "The quick brown fox's jumps; 1234567 ... \n\n  ok",
	    "收到朋友从远方寄来的生日礼物，那份意外的惊喜与深深的祝福让我心中充满了甜蜜的快乐。",
	    "a\u0301 e\u0301 \xE3\x81\x8B\xE3\x82\x99 [breath] done",
	};
	int32_t want[4][256];
	struct thr a[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		a[i].text = texts[i];
		a[i].n_want = enc(texts[i], want[i], 256);
		a[i].want = want[i];
	}
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(a[i].ok, "thread %d got different ids", i);
	}
}
END_TEST

Suite *suite_tokenizer(void);
Suite *suite_tokenizer(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("tokenizer");
	tcase_add_unchecked_fixture(tc, tok_setup, tok_teardown);
	tcase_add_test(tc, empty_and_null);
	tcase_add_test(tc, one_megabyte_of_a);
	tcase_add_test(tc, token_cap_e2big);
	tcase_add_test(tc, input_cap_e2big);
	tcase_add_test(tc, vocab_and_special_ids);
	tcase_add_test(tc, invalid_utf8);
	tcase_add_test(tc, nfc_inert_table);
	tcase_add_test(tc, nfc_composes);
	tcase_add_test(tc, strip_flags_from_config);
	tcase_add_test(tc, tiny_vocab_parser);
	tcase_add_test(tc, random_roundtrip);
	tcase_add_test(tc, concurrent_encode);
	suite_add_tcase(s, tc);

	/* The parity cases may have to build the Python venv first (pip). */
	TCase *tp = tcase_create("parity");
	tcase_add_unchecked_fixture(tp, tok_setup, tok_teardown);
	tcase_set_timeout(tp, 600);
	tcase_add_test(tp, parity_corpus);
	/* Opt-in (slow: every code point in probes, ~20 MB of text). */
	const char *sweep = getenv("TOK_SWEEP");
	if (sweep && strcmp(sweep, "1") == 0)
		tcase_add_test(tp, parity_sweep);
	suite_add_tcase(s, tp);
	return s;
}
