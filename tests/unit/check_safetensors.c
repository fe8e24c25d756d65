/* tests/unit/check_safetensors.c — the strict safetensors reader: files
 * written by the real safetensors package (tests/py/safetensors_fixtures.py
 * in the torch venv, including a speaker from tools/export/cosyvoice2/speakers.py)
 * must read back bit-exactly; malformed images must fail with CV_EINVAL and
 * a message. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "engine/cosyvoice2/safetensors.h"
#include "tests/unit/testutil.h"

/* 8-byte LE length + header + data_len bytes (value i & 0xff). */
static unsigned char *image(const char *header, size_t data_len, size_t *len)
{
	size_t h = strlen(header);
	*len = 8 + h + data_len;
	unsigned char *b = malloc(*len + 1);
	ck_assert_ptr_nonnull(b);
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)h >> (8 * i));
	memcpy(b + 8, header, h);
	for (size_t i = 0; i < data_len; i++)
		b[8 + h + i] = (unsigned char)i;
	return b;
}

/* Expects open_mem to fail with rc and an error text containing needle. */
static void expect_bad(const char *header, size_t data_len, int rc, const char *needle)
{
	size_t len;
	unsigned char *b = image(header, data_len, &len);
	struct safetensors *st = (struct safetensors *)0x1;
	char err[512] = "";
	int got = safetensors_open_mem(b, len, NULL, &st, err, sizeof err);
	ck_assert_msg(got == rc, "header %s: rc %d (want %d) %s", header, got, rc, err);
	ck_assert_msg(strstr(err, needle) != NULL, "header %s: error '%s' lacks '%s'", header, err, needle);
	ck_assert_ptr_eq(st, (struct safetensors *)0x1);
	free(b);
}

static const char *GOOD = "{\"__metadata__\":{\"k\":\"v\"},"
			  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			  "\"b\":{\"dtype\":\"I64\",\"shape\":[1,1],\"data_offsets\":[8,16]}}";

START_TEST(good_image_views)
{
	size_t len;
	unsigned char *b = image(GOOD, 16, &len);
	struct safetensors *st = NULL;
	char err[256] = "";
	ck_assert_int_eq(safetensors_open_mem(b, len, NULL, &st, err, sizeof err), CV_OK);
	free(b); /* the reader keeps its own copy */
	ck_assert_uint_eq(safetensors_count(st), 2);
	ck_assert_str_eq(safetensors_metadata(st, "k"), "v");
	ck_assert_ptr_null(safetensors_metadata(st, "nope"));
	struct safetensors_tensor t;
	ck_assert_int_eq(safetensors_get(st, 0, &t), CV_OK);
	ck_assert_str_eq(t.name, "a");
	ck_assert_int_eq(t.dtype, SAFETENSORS_DTYPE_F32);
	ck_assert_uint_eq(t.n_bytes, 8);
	ck_assert_uint_eq(((const unsigned char *)t.data)[0], 0);
	ck_assert_int_eq(safetensors_get(st, 1, &t), CV_OK);
	ck_assert_str_eq(t.name, "b");
	ck_assert_uint_eq(((const unsigned char *)t.data)[0], 8);
	ck_assert_int_eq(safetensors_get(st, 2, &t), CV_EINVAL);
	ck_assert_int_eq(safetensors_find(st, "zz", &t, err, sizeof err), CV_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(err, "zz"));
	/* I64 0x0f0e0d0c0b0a0908 does not fit int32 */
	int32_t *iv = NULL;
	ck_assert_int_eq(safetensors_find(st, "b", &t, err, sizeof err), CV_OK);
	ck_assert_int_eq(safetensors_tensor_to_i32(&t, &iv, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(iv);
	float *fv = NULL;
	ck_assert_int_eq(safetensors_tensor_to_f32(&t, &fv, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "I64"));
	safetensors_free(st);
	safetensors_free(NULL);
	ck_assert_str_eq(safetensors_dtype_name(SAFETENSORS_DTYPE_BF16), "BF16");
	ck_assert_uint_eq(safetensors_dtype_size(SAFETENSORS_DTYPE_F64), 8);
}
END_TEST

START_TEST(every_truncation_fails)
{
	size_t len;
	unsigned char *b = image(GOOD, 16, &len);
	for (size_t n = 0; n < len; n++) {
		struct safetensors *st = NULL;
		char err[256] = "";
		int rc = safetensors_open_mem(b, n, NULL, &st, err, sizeof err);
		ck_assert_msg(rc == CV_EINVAL, "prefix %zu: rc %d", n, rc);
		ck_assert_msg(err[0] != '\0', "prefix %zu: no message", n);
		ck_assert_ptr_null(st);
	}
	/* one extra byte after the data is refused too */
	unsigned char *c = malloc(len + 1);
	memcpy(c, b, len);
	c[len] = 0;
	struct safetensors *st = NULL;
	char err[256] = "";
	ck_assert_int_eq(safetensors_open_mem(c, len + 1, NULL, &st, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "after the last tensor"));
	free(c);
	free(b);
}
END_TEST

START_TEST(malformed_headers)
{
	const char *F = "\"dtype\":\"F32\",\"shape\":[2]";
	char h[512];
	/* offsets out of range */
	snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,8]}}", F);
	expect_bad(h, 4, CV_EINVAL, "exceed");
	/* overlap */
	snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,8]},\"b\":{%s,\"data_offsets\":[4,12]}}", F, F);
	expect_bad(h, 12, CV_EINVAL, "overlaps");
	/* gap */
	snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,8]},\"b\":{%s,\"data_offsets\":[12,20]}}", F,
		 F);
	expect_bad(h, 20, CV_EINVAL, "gap");
	/* size does not match dtype x shape */
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, CV_EINVAL,
		   "need 12");
	/* end < begin */
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, CV_EINVAL,
		   "begin <= end");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, CV_EINVAL,
		   "data_offsets");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, CV_EINVAL,
		   "shape[0]");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, CV_EINVAL,
		   "shape[0]");
	expect_bad("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, CV_EINVAL,
		   "unknown dtype");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, CV_EINVAL,
		   "unknown field");
	expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, CV_EINVAL, "data_offsets");
	expect_bad("{\"a\":[1,2]}", 0, CV_EINVAL, "not an object");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
		   CV_EINVAL, "dimensions");
	expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
		   "\"data_offsets\":[0,1]}}",
		   1, CV_EINVAL, "overflows");
	expect_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8,
		   CV_EINVAL, "data_offsets span");
	/* duplicate key */
	snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,8]},\"a\":{%s,\"data_offsets\":[0,8]}}", F, F);
	expect_bad(h, 8, CV_EINVAL, "bad JSON");
	/* metadata must be string -> string */
	expect_bad("{\"__metadata__\":{\"k\":1}}", 0, CV_EINVAL, "__metadata__");
	expect_bad("{\"__metadata__\":[]}", 0, CV_EINVAL, "__metadata__");
	/* not JSON / not an object / trailing junk */
	expect_bad("[1, 2]", 0, CV_EINVAL, "not a JSON object");
	expect_bad("{\"a\":", 0, CV_EINVAL, "bad JSON");
	expect_bad("{} x", 0, CV_EINVAL, "bad JSON");
	/* padding spaces (as the writer emits) are fine */
	size_t len;
	unsigned char *b = image("{}      ", 0, &len);
	struct safetensors *st = NULL;
	char err[256] = "";
	ck_assert_int_eq(safetensors_open_mem(b, len, NULL, &st, err, sizeof err), CV_OK);
	ck_assert_uint_eq(safetensors_count(st), 0);
	safetensors_free(st);
	free(b);
}
END_TEST

START_TEST(huge_header_length)
{
	static const uint64_t lens[] = {UINT64_MAX, (uint64_t)1 << 63, (uint64_t)1 << 40, (uint64_t)17 << 20,
					100};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		unsigned char b[16] = "........{}      ";
		for (int k = 0; k < 8; k++)
			b[k] = (unsigned char)(lens[i] >> (8 * k));
		struct safetensors *st = NULL;
		char err[256] = "";
		ck_assert_int_eq(safetensors_open_mem(b, sizeof b, NULL, &st, err, sizeof err), CV_EINVAL);
		ck_assert_msg(strstr(err, lens[i] > (16u << 20) ? "exceeds the limit" : "truncated"), "%s",
			      err);
	}
	/* limits */
	size_t len;
	unsigned char *img = image(GOOD, 16, &len);
	struct safetensors_limits lim = {.max_header_bytes = 32};
	struct safetensors *st = NULL;
	char err[256] = "";
	ck_assert_int_eq(safetensors_open_mem(img, len, &lim, &st, err, sizeof err), CV_EINVAL);
	lim = (struct safetensors_limits){.max_file_bytes = len - 1};
	ck_assert_int_eq(safetensors_open_mem(img, len, &lim, &st, err, sizeof err), CV_E2BIG);
	lim = (struct safetensors_limits){.max_tensors = 1};
	ck_assert_int_eq(safetensors_open_mem(img, len, &lim, &st, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "tensors exceed"));
	free(img);
}
END_TEST

typedef int (*st_open_fn)(const char *, const struct safetensors_limits *, struct safetensors **, char *,
			  size_t);

/* What both file readers refuse: a missing file and a truncated image (each named), a directory, a file
 * over the size limit; nothing is handed out (valgrind runs this suite: a failed parse leaks nothing,
 * mapped or read). */
static void expect_file_errors(st_open_fn open_fn)
{
	struct safetensors *st = NULL;
	char err[512] = "";
	ck_assert_int_eq(open_fn("/nonexistent/x.safetensors", NULL, &st, err, sizeof err), CV_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.safetensors"));
	ck_assert_int_eq(open_fn("/tmp", NULL, &st, err, sizeof err), CV_EIO);
	char path[] = "/tmp/cv-st-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	size_t len;
	unsigned char *b = image(GOOD, 16, &len);
	ck_assert_int_eq(write(fd, b, len - 3), (ssize_t)(len - 3));
	close(fd);
	ck_assert_int_eq(open_fn(path, NULL, &st, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, path) && strstr(err, "exceed"), "%s", err);
	ck_assert_ptr_null(st);
	struct safetensors_limits lim = {.max_file_bytes = 10};
	ck_assert_int_eq(open_fn(path, &lim, &st, err, sizeof err), CV_E2BIG);
	unlink(path);
	free(b);
}

START_TEST(open_errors)
{
	expect_file_errors(safetensors_open);
}
END_TEST

/* The mapped reader refuses what the reading one refuses, and a file shorter than the header length;
 * a whole file's views point into the read-only mapping. */
START_TEST(map_errors)
{
	expect_file_errors(safetensors_map);
	struct safetensors *st = NULL;
	char err[512] = "";
	char path[] = "/tmp/cv-stm-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "1234", 4), 4);
	ck_assert_int_eq(safetensors_map(path, NULL, &st, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, path) && strstr(err, "shorter"), "%s", err);
	ck_assert_ptr_null(st);
	size_t len;
	unsigned char *b = image(GOOD, 16, &len);
	ck_assert_int_eq(pwrite(fd, b, len, 0), (ssize_t)len);
	ck_assert_int_eq(safetensors_map(path, NULL, &st, err, sizeof err), CV_OK);
	struct safetensors_tensor t;
	ck_assert_int_eq(safetensors_find(st, "b", &t, err, sizeof err), CV_OK);
	ck_assert_uint_eq(((const unsigned char *)t.data)[0], 8);
	ck_assert_str_eq(safetensors_metadata(st, "k"), "v");
	safetensors_free(st);
	close(fd);
	unlink(path);
	free(b);
}
END_TEST

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

/* Compares one file, read (mapped = 0) or mapped (1), against expected.json's entry. */
static void check_file(const char *dir, const char *file, json_t *exp, int mapped)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	struct safetensors *st = NULL;
	char err[512] = "";
	int rc = mapped ? safetensors_map(path, NULL, &st, err, sizeof err)
			: safetensors_open(path, NULL, &st, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "%s", err);
	json_t *meta = json_object_get(exp, "metadata"), *tens = json_object_get(exp, "tensors");
	const char *k;
	json_t *v;
	json_object_foreach(meta, k, v)
	{
		const char *got = safetensors_metadata(st, k);
		ck_assert_msg(got && strcmp(got, json_string_value(v)) == 0, "%s: metadata %s", file, k);
	}
	ck_assert_uint_eq(safetensors_count(st), json_object_size(tens));
	size_t nf = 0, ni = 0;
	json_object_foreach(tens, k, v)
	{
		struct safetensors_tensor t;
		ck_assert_int_eq(safetensors_find(st, k, &t, err, sizeof err), CV_OK);
		ck_assert_str_eq(safetensors_dtype_name(t.dtype),
				 json_string_value(json_object_get(v, "dtype")));
		json_t *shape = json_object_get(v, "shape");
		ck_assert_uint_eq(t.ndim, json_array_size(shape));
		for (size_t i = 0; i < t.ndim; i++)
			ck_assert_int_eq(t.shape[i], json_integer_value(json_array_get(shape, i)));
		json_t *jf = json_object_get(v, "f32"), *ji = json_object_get(v, "i32");
		if (jf) {
			float *f = NULL;
			ck_assert_msg(safetensors_tensor_to_f32(&t, &f, err, sizeof err) == CV_OK, "%s", err);
			ck_assert_uint_eq(t.n_elems, json_array_size(jf));
			for (size_t i = 0; i < t.n_elems; i++) {
				float want = (float)strtod(json_string_value(json_array_get(jf, i)), NULL);
				ck_assert_msg(fbits(f[i]) == fbits(want), "%s/%s[%zu]: %a != %a", file, k, i,
					      (double)f[i], (double)want);
			}
			free(f);
			nf++;
		} else if (ji) {
			int32_t *x = NULL;
			ck_assert_msg(safetensors_tensor_to_i32(&t, &x, err, sizeof err) == CV_OK, "%s", err);
			ck_assert_uint_eq(t.n_elems, json_array_size(ji));
			for (size_t i = 0; i < t.n_elems; i++)
				ck_assert_int_eq(x[i], json_integer_value(json_array_get(ji, i)));
			free(x);
			ni++;
		} else { /* BOOL: neither conversion */
			float *f = NULL;
			int32_t *x = NULL;
			ck_assert_int_eq(safetensors_tensor_to_f32(&t, &f, err, sizeof err), CV_EINVAL);
			ck_assert_int_eq(safetensors_tensor_to_i32(&t, &x, err, sizeof err), CV_EINVAL);
			ck_assert_uint_eq(((const unsigned char *)t.data)[0], 1);
		}
	}
	if (strcmp(file, "dtypes.safetensors") == 0)
		ck_assert(nf == 6 && ni == 5);
	safetensors_free(st);
}

START_TEST(fixtures_from_python)
{
	char *py = test_run_line("bash tools/dev/torch-venv.sh");
	ck_assert_msg(py != NULL, "tools/dev/torch-venv.sh failed (no torch venv)");
	char dir[] = "/tmp/cv-stfx-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "'%s' tests/py/safetensors_fixtures.py %s", py, dir);
	free(py);
	ck_assert_msg(system(cmd) == 0, "fixture script failed: %s", cmd);
	char path[1024];
	snprintf(path, sizeof path, "%s/expected.json", dir);
	json_error_t je;
	json_t *exp = json_load_file(path, 0, &je);
	ck_assert_msg(exp != NULL, "%s", je.text);
	const char *k;
	json_t *v;
	size_t files = 0;
	json_object_foreach(exp, k, v)
	{
		check_file(dir, k, v, 0);
		check_file(dir, k, v, 1);
		files++;
	}
	ck_assert_uint_eq(files, 3);

	/* the speaker file through the typed helpers, as the engine reads it */
	snprintf(path, sizeof path, "%s/speaker.safetensors", dir);
	struct safetensors *st = NULL;
	char err[512] = "";
	ck_assert_int_eq(safetensors_open(path, NULL, &st, err, sizeof err), CV_OK);
	ck_assert_str_eq(safetensors_metadata(st, "name"), "说话人 A");
	ck_assert_str_eq(safetensors_metadata(st, "format"), "cosyvoiced-speaker");
	int64_t shape[SAFETENSORS_MAX_DIMS];
	float *emb = NULL, *mel = NULL;
	int32_t *tok = NULL, *txt = NULL;
	ck_assert_int_eq(
	    safetensors_read_f32(st, "embedding", 1, (const int64_t[]){192}, &emb, shape, err, sizeof err),
	    CV_OK);
	ck_assert_int_eq(shape[0], 192);
	ck_assert_int_eq(safetensors_read_f32(st, "prompt_mel", 2, (const int64_t[]){-1, 80}, &mel, shape,
					      err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(shape[0], 26); /* 27 frames aligned to 2 x 13 tokens */
	ck_assert_int_eq(
	    safetensors_read_i32(st, "prompt_speech_tokens", 1, NULL, &tok, shape, err, sizeof err), CV_OK);
	ck_assert_int_eq(shape[0], 13);
	for (int i = 0; i < 13; i++)
		ck_assert(tok[i] >= 0 && tok[i] < 6561);
	ck_assert_int_eq(safetensors_read_i32(st, "prompt_text", 1, NULL, &txt, NULL, err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(txt[2], 151646);
	float *bad = (float *)0x1;
	ck_assert_int_eq(safetensors_read_f32(st, "prompt_mel", 2, (const int64_t[]){-1, 128}, &bad, NULL,
					      err, sizeof err),
			 CV_EINVAL);
	ck_assert_ptr_null(bad);
	ck_assert_msg(strstr(err, "[26, 80]") && strstr(err, "[*, 128]"), "%s", err);
	ck_assert_int_eq(safetensors_read_f32(st, "embedding", 2, NULL, &bad, NULL, err, sizeof err),
			 CV_EINVAL);
	ck_assert_int_eq(safetensors_read_f32(st, "missing", 1, NULL, &bad, NULL, err, sizeof err),
			 CV_ENOTFOUND);
	free(emb);
	free(mel);
	free(tok);
	free(txt);
	safetensors_free(st);
	json_decref(exp);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *suite_safetensors(void);
Suite *suite_safetensors(void)
{
	Suite *s = suite_create("safetensors");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, good_image_views);
	tcase_add_test(tc, every_truncation_fails);
	tcase_add_test(tc, malformed_headers);
	tcase_add_test(tc, huge_header_length);
	tcase_add_test(tc, open_errors);
	tcase_add_test(tc, map_errors);
	suite_add_tcase(s, tc);
	TCase *tp = tcase_create("python");
	tcase_set_timeout(tp, 600); /* may have to build the torch venv first */
	tcase_add_test(tp, fixtures_from_python);
	suite_add_tcase(s, tp);
	return s;
}
