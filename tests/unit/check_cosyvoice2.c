/* tests/unit/check_cosyvoice2.c — the CosyVoice2 engine on the tiny random bundle.
 *
 * `make check` exports the tiny random bundle (build/tiny-bundle, with its
 * random model directory build/tiny-model) and passes COSYVOICE2_TEST_BUNDLE,
 * COSYVOICE2_TEST_MODEL, TORCH_PYTHON and CVTEST_BIN. Parity is checked
 * against tests/py/engine_ref.py, run here with the venv's python: greedy LLM
 * decode of the exporter's eager module, buffered flow + HiFT of the eager
 * modules (HiFT noise all zeros on both sides), and the reference streaming
 * algorithm (written in Python over the same model.ts). The HTTP cases start
 * the real daemon on the bundle. Without libtorch in the build, the suite
 * checks that the engine says so.
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/unit/testutil.h"
#include "common/mem.h"
#include "common/sha256.h"
#include "engine/cosyvoice2/cosyvoice2.h"
#include "engine/engine.h"
#include "engine/cosyvoice2/torch_runtime.h"
#include "tests/unit/promcheck.h"

/* ------------------------------------------------------------------ sha256 */

static void sha_hex_of(const char *s, size_t n, char hex[SHA256_HEX_LEN + 1])
{
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_LEN];
	sha256_init(&c);
	/* feed in uneven pieces to exercise the staging buffer */
	for (size_t i = 0; i < n;) {
		size_t k = (i % 7) + 1;
		if (k > n - i)
			k = n - i;
		sha256_update(&c, s + i, k);
		i += k;
	}
	sha256_final(&c, d);
	sha256_hex(d, hex);
}

START_TEST(sha256_vectors)
{
	char hex[SHA256_HEX_LEN + 1];
	static const char two_blocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char *million = malloc(1000000);

	sha_hex_of("", 0, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha_hex_of("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha_hex_of(two_blocks, strlen(two_blocks), hex);
	ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	ck_assert_ptr_nonnull(million);
	memset(million, 'a', 1000000);
	sha_hex_of(million, 1000000, hex);
	ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}
END_TEST

#if CV_WITH_TORCH

/* ------------------------------------------------------------------ helpers */

static const char *env_or_fail(const char *name)
{
	const char *v = getenv(name);
	ck_assert_msg(v && v[0], "%s is not set (run through `make check`)", name);
	return v;
}

static const char *bundle_dir(void)
{
	return env_or_fail("COSYVOICE2_TEST_BUNDLE");
}

struct pcm_sink {
	float *pcm;
	size_t n, cap;
	size_t chunks[256];
	size_t n_chunks;
	int cancel_after; /* >0: cancelled() returns 1 after this many writes */
};

static int pcm_write(void *user, const float *pcm, size_t n)
{
	struct pcm_sink *s = user;
	if (s->n + n > s->cap) {
		s->cap = (s->n + n) * 2;
		s->pcm = realloc(s->pcm, s->cap * sizeof *s->pcm);
		ck_assert_ptr_nonnull(s->pcm);
	}
	memcpy(s->pcm + s->n, pcm, n * sizeof *pcm);
	s->n += n;
	if (s->n_chunks < 256)
		s->chunks[s->n_chunks] = n;
	s->n_chunks++;
	return 0;
}

static int pcm_cancelled(void *user)
{
	struct pcm_sink *s = user;
	return s->cancel_after > 0 && s->n_chunks >= (size_t)s->cancel_after;
}

static struct engine_sink sink_of(struct pcm_sink *s)
{
	struct engine_sink k = {pcm_write, pcm_cancelled, s};
	return k;
}

static struct engine *open_engine_cfg(const struct engine_config *cfg, int want, char *err, size_t errlen)
{
	struct engine *e = NULL;
	int rc = engine_open(cfg, &e, err, errlen);
	ck_assert_msg(rc == want, "engine_open: %d (%s), want %d", rc, err, want);
	return e;
}

static struct engine *open_engine(void)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cpu"};
	char err[512] = "";
	return open_engine_cfg(&cfg, CV_OK, err, sizeof err);
}

static struct cv2 *open_cv2_cfg(const struct engine_config *cfg)
{
	struct cv2 *m = NULL;
	char err[512] = "";
	int rc = cv2_open(cfg, &m, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "cv2_open(%s): %s", cfg->device, err);
	return m;
}

static struct cv2 *open_cv2(void)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cpu"};
	return open_cv2_cfg(&cfg);
}

static int run_cmd(char *const argv[])
{
	pid_t pid = fork();
	int st = 0;
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *make_tmpdir(void)
{
	char *d = strdup("/tmp/cv2test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static void rm_rf(const char *d)
{
	char *argv[] = {"rm", "-rf", (char *)d, NULL};
	run_cmd(argv);
}

/* A copy of the bundle made of symlinks (cp -rs), under tmp/b. */
static char *link_bundle(const char *tmp)
{
	static char b[512];
	char *argv[] = {"cp", "-rs", (char *)bundle_dir(), b, NULL};
	snprintf(b, sizeof b, "%s/b", tmp);
	ck_assert_int_eq(run_cmd(argv), 0);
	return b;
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f;
	unlink(path);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static void *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	long len;
	void *p;
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	ck_assert_int_ge(len, 0);
	rewind(f);
	p = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

/* Rewrite the linked bundle's manifest.json with key = value (JSON). */
/* manifest[obj][key] = value, or manifest[key] when obj is NULL (value stolen) */
static void patch_manifest_in(const char *b, const char *obj, const char *key, json_t *value)
{
	char path[600];
	json_error_t je;
	json_t *m;
	char *txt;
	snprintf(path, sizeof path, "%s/manifest.json", b);
	m = json_load_file(path, 0, &je);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(json_object_set_new(obj ? json_object_get(m, obj) : m, key, value), 0);
	txt = json_dumps(m, JSON_INDENT(1));
	write_file(path, txt, strlen(txt));
	free(txt);
	json_decref(m);
}

static void patch_manifest(const char *b, const char *key, json_t *value)
{
	patch_manifest_in(b, NULL, key, value);
}

static int open_dir(const char *dir, char *err, size_t errlen)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = dir, .device = "cpu"};
	struct engine *e = NULL;
	int rc = engine_open(&cfg, &e, err, errlen);
	if (rc == CV_OK)
		engine_close(e);
	return rc;
}

/* ------------------------------------------------------------------ bundle */

START_TEST(open_tiny_bundle)
{
	struct engine *e = open_engine();
	const struct engine_speaker *s;
	ck_assert_str_eq(engine_name(e), "cosyvoice2");
	ck_assert_int_eq(engine_sample_rate(e), 24000);
	/* 3 bundle speakers, 2 with a prompt -> +2 cross-lingual ids */
	ck_assert_uint_eq(engine_speaker_count(e), 5);
	s = engine_speaker_find(e, NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s->id, "zero_shot_0");
	ck_assert_ptr_nonnull(engine_speaker_find(e, "zero_shot_1/cross-lingual"));
	ck_assert_ptr_nonnull(engine_speaker_find(e, "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3")); /* 中文女 */
	ck_assert_ptr_null(engine_speaker_find(e, "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3/cross-lingual"));
	ck_assert_ptr_nonnull(strstr(engine_describe(e), "libtorch"));
	engine_close(e);
}
END_TEST

/* engine_config.progress: the load reports each stage, in order (the daemon
 * turns them into systemd STATUS lines and its start-up watchdog). */
struct stage_log {
	char names[16][96];
	size_t n;
};

static void stage_log_add(void *user, const char *stage)
{
	struct stage_log *l = user;
	if (l->n < sizeof l->names / sizeof l->names[0])
		cv_strlcpy(l->names[l->n++], stage, sizeof l->names[0]);
}

START_TEST(open_reports_stages)
{
	struct stage_log log = {0};
	struct engine_config cfg = {.backend = "cosyvoice2",
				    .model_dir = bundle_dir(),
				    .device = "cpu",
				    .progress = stage_log_add,
				    .progress_user = &log};
	const char *want[] = {"checking the bundle", "loading the text frontend and speakers",
			      "loading libtorch and the model weights", "allocating the KV cache",
			      "probing memory use"};
	char err[512] = "";
	struct engine *e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	ck_assert_uint_eq(log.n, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < log.n; i++)
		ck_assert_str_eq(log.names[i], want[i]);
	engine_close(e);
}
END_TEST

START_TEST(bad_bundle_missing_file)
{
	char *tmp = make_tmpdir(), err[512] = "", path[600];
	char *b = link_bundle(tmp);
	snprintf(path, sizeof path, "%s/model.ts", b);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EIO);
	ck_assert_msg(strstr(err, "missing file") && strstr(err, "model.ts") && strstr(err, "re-export"),
		      "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(bad_bundle_no_manifest)
{
	char *tmp = make_tmpdir(), err[512] = "";
	ck_assert_int_eq(open_dir(tmp, err, sizeof err), CV_EIO);
	ck_assert_msg(strstr(err, "manifest.json") && strstr(err, "make bundle"), "%s", err);
	ck_assert_int_eq(open_dir("/nonexistent-bundle", err, sizeof err), CV_EIO);
	ck_assert_msg(strstr(err, "/nonexistent-bundle") != NULL, "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(bad_bundle_version)
{
	char *tmp = make_tmpdir(), err[512] = "";
	char *b = link_bundle(tmp);
	/* 1: a bundle from before the text table left model.ts */
	patch_manifest(b, "format_version", json_integer(1));
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "format_version 1") && strstr(err, "reads version 2") &&
			  strstr(err, "re-export"),
		      "%s", err);
	patch_manifest(b, "format_version", json_integer(3));
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "format_version 3") != NULL, "%s", err);
	patch_manifest(b, "format_version", json_integer(2));
	patch_manifest(b, "format", json_string("something-else"));
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "something-else") != NULL, "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* The text table (kept out of model.ts, mapped at load): a manifest without it, naming a tensor the
 * file lacks, or disagreeing with the file's shape is refused with what is wrong. */
START_TEST(bad_bundle_text_table)
{
	char *tmp = make_tmpdir(), err[512] = "";
	char *b = link_bundle(tmp);
	patch_manifest_in(b, "text_embedding", "tensor", json_string("no.such.tensor"));
	ck_assert_int_ne(open_dir(b, err, sizeof err), CV_OK);
	ck_assert_msg(strstr(err, "llm_text_embedding.safetensors") && strstr(err, "no.such.tensor"), "%s",
		      err);
	patch_manifest_in(b, "text_embedding", "tensor", json_string("llm.model.model.embed_tokens.weight"));
	patch_manifest_in(b, "tokens", "text_vocab_size", json_integer(1000));
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "[151936, 16]") && strstr(err, "wants fp32 [1000, 16]") &&
			  strstr(err, "re-export"),
		      "%s", err);
	patch_manifest(b, "text_embedding", json_null());
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "text_embedding") && strstr(err, "re-export"), "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* The linked bundle's manifest gets a voice "aaa" (sorted before every other
 * id, with a full prompt) appended to "speakers"; default_speaker is set to
 * `def`, or removed when def is NULL (a bundle from before the field). */
static void add_voice_aaa(const char *b, const char *def)
{
	char path[600];
	json_error_t je;
	snprintf(path, sizeof path, "%s/manifest.json", b);
	json_t *m = json_load_file(path, 0, &je);
	ck_assert_ptr_nonnull(m);
	json_t *spk = json_object_get(m, "speakers");
	ck_assert_ptr_nonnull(spk);
	if (!json_object_get(spk, "aaa"))
		json_object_set(spk, "aaa", json_object_get(spk, "zero_shot_1"));
	if (def)
		json_object_set_new(m, "default_speaker", json_string(def));
	else
		json_object_del(m, "default_speaker");
	char *txt = json_dumps(m, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	write_file(path, txt, strlen(txt));
	free(txt);
	json_decref(m);
}

static char *default_of(const char *dir, const char *setting, int want_rc, char *err, size_t errlen)
{
	static char id[128];
	struct engine_config cfg = {
	    .backend = "cosyvoice2", .model_dir = dir, .device = "cpu", .default_speaker = setting};
	struct engine *e = NULL;
	int rc = engine_open(&cfg, &e, err, errlen);
	ck_assert_msg(rc == want_rc, "engine_open: %d (%s), want %d", rc, err, want_rc);
	id[0] = '\0';
	if (e) {
		cv_strlcpy(id, engine_speaker_find(e, NULL)->id, sizeof id);
		engine_close(e);
	}
	return id;
}

/* Adding a voice never moves the default: the manifest names it (the
 * exporter writes default_speaker); without the field the first voice with a
 * full prompt in manifest order (not sorted order) is used; the setting wins;
 * a manifest default that names no voice is refused. */
START_TEST(default_voice_is_stable)
{
	char *tmp = make_tmpdir(), err[512] = "";
	char *b = link_bundle(tmp);
	ck_assert_str_eq(default_of(b, NULL, CV_OK, err, sizeof err), "zero_shot_0");
	add_voice_aaa(b, "zero_shot_0");
	ck_assert_str_eq(default_of(b, NULL, CV_OK, err, sizeof err), "zero_shot_0");
	add_voice_aaa(b, NULL);
	ck_assert_str_eq(default_of(b, NULL, CV_OK, err, sizeof err), "zero_shot_0");
	add_voice_aaa(b, "zero_shot_1");
	ck_assert_str_eq(default_of(b, NULL, CV_OK, err, sizeof err), "zero_shot_1");
	ck_assert_str_eq(default_of(b, "aaa", CV_OK, err, sizeof err), "aaa");
	add_voice_aaa(b, "nobody");
	default_of(b, NULL, CV_EINVAL, err, sizeof err);
	ck_assert_msg(strstr(err, "default_speaker 'nobody'") && strstr(err, "--default"), "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* A bundle written by another user with unreadable files: served as uid 65534 (as root; else as us),
 * the error says it is a permission problem, who the daemon runs as and the fix
 * (instead of "missing file" or a bare "Permission denied"). */
static int open_as_nobody(const char *dir, char *err, size_t errlen)
{
	int pfd[2], st = 0;
	ck_assert_int_eq(pipe(pfd), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char e[512] = "";
		int rc = -100;
		close(pfd[0]);
		if (geteuid() != 0 || (setgid(65534) == 0 && setuid(65534) == 0))
			rc = open_dir(dir, e,
				      sizeof e); /* not root: the 0000 files are unreadable to us too */
		else
			snprintf(e, sizeof e, "cannot become uid 65534: %s", strerror(errno));
		if (write(pfd[1], e, strlen(e) + 1) < 0)
			_exit(2);
		_exit(rc == CV_EIO ? 0 : 1);
	}
	close(pfd[1]);
	ssize_t n = read(pfd[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(unreadable_bundle_names_the_user)
{
	char *tmp = make_tmpdir(), err[512] = "", b[600], path[700];
	char *argv[] = {"cp", "-rL", (char *)bundle_dir(), b, NULL};
	char who[32];
	snprintf(who, sizeof who, "uid %d ", geteuid() == 0 ? 65534 : (int)geteuid());
	snprintf(b, sizeof b, "%s/b", tmp);
	ck_assert_int_eq(run_cmd(argv), 0);
	ck_assert_int_eq(chmod(tmp, 0755), 0);
	char *chm[] = {"chmod", "-R", "a+rX", b, NULL};
	ck_assert_int_eq(run_cmd(chm), 0);
	snprintf(path, sizeof path, "%s/model.ts", b);
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_msg(open_as_nobody(b, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(strstr(err, "model.ts: permission denied") && strstr(err, who) &&
			  strstr(err, "chmod -R a+rX"),
		      "%s", err);
	snprintf(path, sizeof path, "%s/manifest.json", b);
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_msg(open_as_nobody(b, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(strstr(err, "manifest.json: permission denied"), "%s", err);
	ck_assert_int_eq(chmod(b, 0), 0);
	ck_assert_msg(open_as_nobody(b, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(strstr(err, "permission denied") && !strstr(err, "missing file"), "%s", err);
	ck_assert_int_eq(chmod(b, 0755), 0);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* --device cuda with a driver older than the build's CUDA runtime (versions
 * injected: an RTX 2050 laptop's 550 driver reports CUDA 12.4, a CUDA 13.2
 * build): refused before any CUDA call, naming both versions and both ways out. */
START_TEST(old_driver_refused_with_the_way_out)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cuda"};
	char err[768] = "";
	struct engine *e = NULL;
	setenv("CVTEST_CUDA_VERSIONS", "12040:13020", 1);
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_msg(strstr(err, "driver supports CUDA 12.4") && strstr(err, "CUDA runtime is 13.2") &&
			  strstr(err, "580 or newer") && strstr(err, "CUDA 12 build"),
		      "%s", err);
	/* same major: minor-version compatibility, the check lets it through */
	setenv("CVTEST_CUDA_VERSIONS", "13000:13020", 1);
	int rc = engine_open(&cfg, &e, err, sizeof err);
	ck_assert_msg(!strstr(err, "driver supports"), "%s", err);
	if (rc == CV_OK)
		engine_close(e);
	else
		ck_assert_msg(!torch_runtime_cuda_available() && strstr(err, "no CUDA device"), "%d %s", rc,
			      err);
	unsetenv("CVTEST_CUDA_VERSIONS");
}
END_TEST

START_TEST(bad_bundle_torch_version)
{
	char *tmp = make_tmpdir(), err[512] = "";
	char *b = link_bundle(tmp);
	patch_manifest(b, "torch_version", json_string("1.13.1"));
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "1.13.1") && strstr(err, "re-export"), "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* The loader refuses a libtorch of another release before loading anything, naming both versions
 * and the fix; a torch_lib without libtorch.so is named; the build's own torch loads. (Each test runs
 * in its own forked process, so the loader's once-per-process state starts empty.) */
START_TEST(torch_version_mismatch_refused)
{
	char *tmp = make_tmpdir(), err[512] = "", path[700];
	snprintf(path, sizeof path, "%s/torch/lib", tmp);
	char *mk[] = {"mkdir", "-p", path, NULL};
	run_cmd(mk);
	snprintf(path, sizeof path, "%s/torch/lib/libtorch.so", tmp);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	snprintf(path, sizeof path, "%s/torch/version.py", tmp);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("from typing import Optional\n__version__ = '1.13.1+cu117'\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/torch/lib", tmp);
	ck_assert_int_eq(torch_runtime_load(path, 1, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "torch 1.13.1+cu117 found") && strstr(err, torch_runtime_build_version()) &&
			  strstr(err, "TORCH_VERSION=1.13.1"),
		      "%s", err);
	/* the outcome is kept: a second call says the same */
	char again[512] = "";
	ck_assert_int_eq(torch_runtime_load(NULL, 0, again, sizeof again), CV_EINVAL);
	ck_assert_str_eq(err, again);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(torch_lib_without_libtorch_named)
{
	char err[512] = "";
	ck_assert_int_eq(torch_runtime_load("/nonexistent/torch/lib", 0, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "/nonexistent/torch/lib") && strstr(err, "no libtorch.so"), "%s", err);
}
END_TEST

START_TEST(torch_build_torch_loads)
{
	char err[512] = "";
	ck_assert_msg(torch_runtime_load(NULL, 0, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_msg(torch_runtime_version_matches(torch_runtime_version()), "%s vs %s",
		      torch_runtime_version(), torch_runtime_build_version());
	ck_assert_str_ne(torch_runtime_lib_dir(), "");
	ck_assert_int_eq(torch_runtime_version_matches("0.0.1"), 0);
}
END_TEST

/* A fault-injection spec naming no entry point is refused, not ignored. */
START_TEST(bad_fault_spec)
{
	char err[512] = "";
	setenv("CVTEST_FAULT", "flow:2", 1);
	ck_assert_int_eq(open_dir(bundle_dir(), err, sizeof err), CV_EINVAL);
	unsetenv("CVTEST_FAULT");
	ck_assert_msg(strstr(err, "CVTEST_FAULT") && strstr(err, "'flow'"), "%s", err);
}
END_TEST

START_TEST(bad_bundle_hash_mismatch)
{
	char *tmp = make_tmpdir(), err[512] = "", path[600];
	char *b = link_bundle(tmp);
	size_t n;
	char *data;
	snprintf(path, sizeof path, "%s/tokenizer/special_tokens.json", b);
	data = read_file(path, &n);
	ck_assert_uint_gt(n, 10);
	data[n / 2] = data[n / 2] == 'x' ? 'y' : 'x'; /* same size, other bytes */
	write_file(path, data, n);
	free(data);
	ck_assert_int_eq(open_dir(b, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "sha256 mismatch") && strstr(err, "special_tokens.json"), "%s", err);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* ------------------------------------------------------------------ synthesis */

static int synth(struct engine *e, const char *text, const char *speaker, int stream, float speed,
		 uint64_t seed, struct pcm_sink *ps, char *err, size_t errlen)
{
	struct engine_params p = {.text = text,
				  .speaker = speaker,
				  .speed = speed,
				  .seed = seed,
				  .has_seed = 1,
				  .normalize = 0,
				  .stream = stream};
	struct engine_timings t = {0};
	struct engine_sink k = sink_of(ps);
	int rc = engine_synthesize(e, &p, &k, &t, err, errlen);
	if (rc == CV_OK) {
		static const char *const want[] = {
		    "frontend", "llm", "llm_prefill", "llm_decode_per_token", "flow", "vocoder", "ttfa"};
		for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
			size_t i;
			for (i = 0; i < t.n && strcmp(t.stage[i].name, want[w]) != 0; i++)
				;
			ck_assert_msg(i < t.n, "timing %s missing", want[w]);
			ck_assert(t.stage[i].ms >= 0);
		}
	}
	return rc;
}

/* 1 when this process has a file whose path contains name mapped (/proc/self/maps, read line by line:
 * procfs files have no size). */
static int maps_have(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int found = 0;
	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, name) != NULL;
	fclose(f);
	return found;
}

/* Size and Rss (kB) of the first mapping of a file whose path contains name (/proc/self/smaps); 0 when
 * none is mapped. */
static int smaps_of(const char *name, long *size_kb, long *rss_kb)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[4096];
	int in = 0, found = 0;
	ck_assert_ptr_nonnull(f);
	*size_kb = *rss_kb = -1;
	while (fgets(line, sizeof line, f)) {
		if (!found && strstr(line, name) && strchr(line, '/')) {
			in = found = 1;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, "Size: %ld kB", size_kb) == 1)
			continue;
		if (sscanf(line, "Rss: %ld kB", rss_kb) == 1)
			break;
	}
	fclose(f);
	return found;
}

/* The LLM's text table is the bundle's file, mapped and read in place: after synthesis only the pages
 * around the rows a prompt used (the kernel maps neighbouring pages of the page cache with each one
 * read: ~2.3 MB of this 9.5 MB table for 3 ids) and the header are resident, not the table (a copy
 * would have touched every page). An SFT voice has no prompt text: the rows are the sentence's. */
START_TEST(text_table_read_in_place)
{
	struct engine *e = open_engine();
	struct pcm_sink ps = {0};
	char err[512] = "";
	long size_kb, rss_kb;
	ck_assert_msg(synth(e, "Few rows.", "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3", 0, 1.0f, 1, &ps, err,
			    sizeof err) == CV_OK,
		      "%s", err);
	ck_assert_uint_gt(ps.n, 0);
	free(ps.pcm);
	ck_assert_msg(smaps_of("/llm_text_embedding.safetensors", &size_kb, &rss_kb),
		      "the text table is not mapped");
	ck_assert_int_ge(size_kb, 9000); /* 151936 x 16 float32 */
	ck_assert_msg(rss_kb >= 0 && rss_kb * 2 < size_kb, "%ld of %ld kB of the table resident", rss_kb,
		      size_kb);
	engine_close(e);
	ck_assert_msg(!smaps_of("/llm_text_embedding.safetensors", &size_kb, &rss_kb),
		      "the table stays mapped after the engine closed");
}
END_TEST

/* A process whose first runtime is on the CPU loads the CPU-only plugin and c10 + torch_cpu alone:
 * nothing of libtorch_cuda's closure is mapped (~260 MB of resident memory); a CUDA runtime asked of
 * it afterwards is refused with the reason, and the engine it has keeps serving. */
START_TEST(cpu_runtime_maps_no_cuda_library)
{
	struct engine *e = open_engine();
	ck_assert_msg(maps_have("/libcosyvoiced_torch_cpu.so"), "the CPU-only plugin is not loaded");
	ck_assert_msg(maps_have("/libtorch_cpu.so"), "libtorch_cpu.so is not mapped");
	static const char *const cuda_libs[] = {
	    "/libtorch_cuda.so", "/libc10_cuda.so",	   "/libcublas", "/libcudnn", "/libcusparseLt",
	    "/libnccl",		 "/libcosyvoiced_torch.so"};
	for (size_t i = 0; i < sizeof cuda_libs / sizeof cuda_libs[0]; i++)
		ck_assert_msg(!maps_have(cuda_libs[i]), "%s is mapped by a CPU runtime", cuda_libs[i]);
	ck_assert_int_eq(torch_runtime_cuda_available(), 0);
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cuda"};
	char err[512] = "";
	struct engine *g = NULL;
	ck_assert_int_eq(engine_open(&cfg, &g, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_msg(strstr(err, "CPU-only plugin") && strstr(err, "restart"), "%s", err);
	ck_assert_ptr_null(g);
	struct pcm_sink ps = {0};
	ck_assert_msg(synth(e, "Still serving.", NULL, 0, 1.0f, 1, &ps, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_uint_gt(ps.n, 0);
	free(ps.pcm);
	engine_close(e);
}
END_TEST

/* The full plugin (what --device cuda loads first) serves the CPU too: the fallback when the CPU-only
 * plugin is not installed. */
START_TEST(cuda_plugin_serves_the_cpu)
{
	(void)torch_runtime_cuda_available(); /* first load: the full plugin */
	ck_assert_msg(maps_have("/libcosyvoiced_torch.so") && maps_have("/libtorch_cuda.so"),
		      "the full plugin is not loaded");
	struct engine *e = open_engine();
	ck_assert_msg(!maps_have("/libcosyvoiced_torch_cpu.so"), "both plugins are loaded");
	struct pcm_sink ps = {0};
	char err[512] = "";
	ck_assert_msg(synth(e, "Served by the full plugin.", NULL, 0, 1.0f, 1, &ps, err, sizeof err) == CV_OK,
		      "%s", err);
	ck_assert_uint_gt(ps.n, 0);
	free(ps.pcm);
	engine_close(e);
}
END_TEST

START_TEST(modes_produce_audio_and_seed_reproduces)
{
	struct engine *e = open_engine();
	static const char *const spk[] = {"zero_shot_0", "zero_shot_0/cross-lingual",
					  "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3"};
	struct pcm_sink a = {0}, b = {0}, c = {0};
	char err[512] = "";

	for (size_t i = 0; i < 3; i++) {
		struct pcm_sink s = {0};
		ck_assert_msg(synth(e, "Hi.", spk[i], 0, 1.0f, 3, &s, err, sizeof err) == CV_OK, "%s: %s",
			      spk[i], err);
		ck_assert_uint_gt(s.n, 0);
		ck_assert_uint_eq(s.n % 480, 0);
		ck_assert_uint_eq(s.n_chunks, 1);
		for (size_t j = 0; j < s.n; j++)
			ck_assert(isfinite(s.pcm[j]) && fabsf(s.pcm[j]) <= 0.99f + 1e-6f);
		free(s.pcm);
	}
	/* instruct2 with a zero-shot speaker */
	ck_assert_msg(synth(e, "Speak slowly.<|endofprompt|>Hi.", "zero_shot_1", 0, 1.0f, 3, &c, err,
			    sizeof err) == CV_OK,
		      "%s", err);
	ck_assert_uint_gt(c.n, 0);
	/* same seed -> same audio; speed 2 -> half the frames (int(T/2)) */
	ck_assert_int_eq(synth(e, "Hi.", NULL, 0, 1.0f, 11, &a, err, sizeof err), CV_OK);
	ck_assert_int_eq(synth(e, "Hi.", NULL, 0, 1.0f, 11, &b, err, sizeof err), CV_OK);
	ck_assert_uint_eq(a.n, b.n);
	ck_assert_int_eq(memcmp(a.pcm, b.pcm, a.n * sizeof *a.pcm), 0);
	free(b.pcm);
	memset(&b, 0, sizeof b);
	ck_assert_int_eq(synth(e, "Hi.", NULL, 0, 2.0f, 11, &b, err, sizeof err), CV_OK);
	ck_assert_uint_eq(b.n, (a.n / 480 / 2) * 480);
	free(a.pcm);
	free(b.pcm);
	free(c.pcm);
	engine_close(e);
}
END_TEST

START_TEST(errors_are_clear)
{
	struct engine *e = open_engine();
	struct pcm_sink s = {0};
	char err[512] = "";
	size_t n = 6000;
	char *longtext = malloc(n + 1);

	ck_assert_int_eq(synth(e, "Hello.", "nobody", 0, 1.0f, 1, &s, err, sizeof err), CV_ENOTFOUND);
	ck_assert_msg(strstr(err, "'nobody'") != NULL, "%s", err);
	/* over-long text: one sentence (normalize=0) beyond the frontend's limit */
	for (size_t i = 0; i < n; i += 6)
		memcpy(longtext + i, "hello ", 6);
	longtext[n] = '\0';
	ck_assert_int_eq(synth(e, longtext, NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_E2BIG);
	ck_assert_msg(err[0] != '\0', "no error text");
	/* speed with streaming is refused (the reference changes speed on whole mels only) */
	ck_assert_int_eq(synth(e, "Hello.", NULL, 1, 1.5f, 1, &s, err, sizeof err), CV_EINVAL);
	ck_assert_msg(strstr(err, "stream") != NULL, "%s", err);
	ck_assert_uint_eq(s.n, 0);
	/* the engine still works after errors */
	ck_assert_int_eq(synth(e, "Hello.", NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_OK);
	ck_assert_uint_gt(s.n, 0);
	free(s.pcm);
	free(longtext);
	engine_close(e);
}
END_TEST

/* llm_decode_at (tensor position, whole-cache attention: the form the CUDA
 * graph captures) decodes the same greedy tokens as llm_decode_one, also
 * after a longer request left stale entries in the preallocated cache. */
START_TEST(static_decode_equals_eager)
{
	static const int32_t ids[][6] = {{9707, 1879, 13, 0, 0, 0}, {40, 1079, 264, 2699, 3364, 13}};
	static const size_t n_ids[] = {3, 6};
	static const char *const spk[] = {"zero_shot_0", "zero_shot_1/cross-lingual"};
	struct cv2 *eager = open_cv2(), *stat;
	char err[512] = "";

	setenv("CVTEST_STATIC_DECODE", "1", 1);
	stat = open_cv2();
	unsetenv("CVTEST_STATIC_DECODE");
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < 2; i++) {
			size_t k = round ? 1 - i : i; /* second round: the other order (stale cache) */
			struct cv2_llm_request r = {
			    .speaker = spk[k], .text_ids = ids[k], .n_text = n_ids[k], .greedy = 1};
			int32_t *a = NULL, *b = NULL;
			size_t na = 0, nb = 0;
			ck_assert_msg(cv2_llm_generate(eager, &r, &a, &na, err, sizeof err) == CV_OK, "%s",
				      err);
			ck_assert_msg(cv2_llm_generate(stat, &r, &b, &nb, err, sizeof err) == CV_OK, "%s",
				      err);
			ck_assert_uint_eq(na, nb);
			ck_assert_uint_ge(na, 2 * n_ids[k]);
			ck_assert_msg(memcmp(a, b, na * sizeof *a) == 0, "round %d %s: tokens differ", round,
				      spk[k]);
			free(a);
			free(b);
		}
	}
	cv2_free(eager);
	cv2_free(stat);
}
END_TEST

static double gauge_value(struct engine *e, const char *name)
{
	struct engine_gauges g = {0};
	engine_read_gauges(e, &g);
	for (size_t i = 0; i < g.n; i++)
		if (strcmp(g.g[i].name, name) == 0)
			return g.g[i].value;
	return -1;
}

/* The KV cache is sized at start-up (llm_max_positions) and the memory guard
 * measures the engine and refuses, before any audio, what would not fit. */
START_TEST(positions_and_memory_guard)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cpu"};
	struct engine *e;
	struct cv2 *m;
	struct pcm_sink s = {0};
	char err[512] = "", longtext[1300];
	double base, a, p_short, p_long, budget;

	for (size_t i = 0; i + 7 < sizeof longtext; i += 6)
		memcpy(longtext + i, "hello ", 6);
	longtext[6 * 200] = '\0'; /* 200 words: one sentence (normalize off) of about 200 ids */
	/* positions: 300 cannot hold prompt + 200 ids + 20 * 200 tokens */
	cfg.llm_max_positions = 300;
	e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	ck_assert_double_eq(gauge_value(e, "llm_max_positions"), 300);
	ck_assert_int_eq(synth(e, longtext, NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_E2BIG);
	ck_assert_msg(strstr(err, "llm_max_positions") && strstr(err, "sentence 1 of 1"), "%s", err);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(synth(e, "Hi.", NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_OK);
	ck_assert_uint_gt(s.n, 0);
	free(s.pcm);
	memset(&s, 0, sizeof s);
	engine_close(e);

	/* the memory model: measured base and per-frame workspace */
	cfg.llm_max_positions = 8192;
	cfg.memory_budget_mb = 1 << 20;
	ck_assert_int_eq(cv2_open(&cfg, &m, err, sizeof err), CV_OK);
	p_short = cv2_memory_predict(m, NULL, 2);
	p_long = cv2_memory_predict(m, NULL, 200);
	cv2_free(m);
	e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	base = gauge_value(e, "memory_base_bytes");
	a = gauge_value(e, "memory_workspace_bytes_per_frame");
	engine_close(e);
	ck_assert_msg(base > 50e6, "base %.0f bytes: libtorch and the model are resident", base);
	ck_assert_msg(a > 0, "no workspace measured (%g bytes/frame)", a);
	ck_assert_msg(p_short > base * 0.5 && p_long > p_short, "short %.0f long %.0f", p_short, p_long);
	fprintf(stderr,
		"memory model: base %.1f MiB, %.1f KiB/frame; 2 ids -> %.1f MiB, 200 ids -> %.1f MiB\n",
		base / 1048576.0, a / 1024.0, p_short / 1048576.0, p_long / 1048576.0);

	/* a budget well between the two (this engine measures again, with some
	 * noise on a CPU): the short sentence runs, the long one is refused */
	budget = base + (p_long - base) / 4;
	cfg.memory_budget_mb = (long)(budget / 1048576.0);
	e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	ck_assert_int_eq(synth(e, longtext, NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_EBUDGET);
	ck_assert_msg(strstr(err, "memory") && strstr(err, "memory_budget_mb"), "%s", err);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(synth(e, "Hi.", NULL, 0, 1.0f, 1, &s, err, sizeof err), CV_OK);
	ck_assert_uint_gt(s.n, 0);
	free(s.pcm);
	engine_close(e);

	/* a budget below what the model itself holds: refused at start-up */
	cfg.memory_budget_mb = 1;
	e = open_engine_cfg(&cfg, CV_EBUDGET, err, sizeof err);
	ck_assert_ptr_null(e);
	ck_assert_msg(strstr(err, "memory_budget_mb 1") != NULL, "%s", err);
}
END_TEST

START_TEST(cancel_between_chunks)
{
	struct engine *e = open_engine();
	struct pcm_sink s = {.cancel_after = 1};
	char err[512] = "";
	int rc = synth(e, "Hello there, friend.", NULL, 1, 1.0f, 5, &s, err, sizeof err);
	ck_assert_int_eq(rc, CV_ECANCELED);
	ck_assert_uint_eq(s.n_chunks, 1);
	free(s.pcm);
	engine_close(e);
}
END_TEST

START_TEST(stream_first_chunk_after_first_hop)
{
	struct engine *e = open_engine();
	struct pcm_sink s = {0};
	char err[512] = "";
	/* zero_shot_0 has P = 20 prompt tokens: pad 5, first hop 30 tokens ->
	 * 60 mel frames -> 60*480 - 3840 samples held back for the cross-fade. */
	int rc = synth(e, "Hello there, friend.", "zero_shot_0", 1, 1.0f, 5, &s, err, sizeof err);
	ck_assert_msg(rc == CV_OK, "%s", err);
	ck_assert_uint_ge(s.n_chunks, 2);
	ck_assert_uint_eq(s.chunks[0], 60 * 480 - 3840);
	if (s.n_chunks >= 3)
		ck_assert_uint_eq(s.chunks[1], 2 * 50 * 480); /* second hop: 50 tokens */
	ck_assert_uint_eq(s.n % 480, 0);
	free(s.pcm);
	engine_close(e);
}
END_TEST

/* ------------------------------------------------------------------ parity */

static void json_add_ids(json_t *o, const char *key, const int32_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	json_object_set_new(o, key, a);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0;
	for (size_t i = 0; i < n; i++) {
		float d = fabsf(a[i] - b[i]);
		if (!(d <= m))
			m = d;
	}
	return m;
}

START_TEST(parity_with_python_reference)
{
	struct cv2 *m = open_cv2();
	char *tmp = make_tmpdir(), path[600], err[512] = "";
	/* fixed inputs: sentence text ids (BlankEN ids of plain words), instruct ids */
	static const int32_t text_a[] = {9707, 1879, 11, 13};
	static const int32_t text_b[] = {108386, 3837, 99489, 1773};
	static const int32_t instr[] = {2082, 26682, 13, 151646};
	static const struct {
		const char *name, *speaker;
		const int32_t *ids;
		size_t n;
		int instruct;
	} llm[] = {
	    {"zs", "zero_shot_0", text_a, 4, 0},
	    {"xl", "zero_shot_1/cross-lingual", text_b, 4, 0},
	    {"sft", "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3", text_a, 4, 0},
	    {"ins", "zero_shot_1", text_b, 4, 1},
	};
	int32_t *gen[4] = {0};
	size_t n_gen[4] = {0};
	int32_t stream_tok[150];
	struct pcm_sink t2w1 = {0}, t2w2 = {0}, st0 = {0}, st1 = {0};
	struct engine_sink k;
	json_t *req = json_object(), *arr;
	char *txt;

	for (size_t i = 0; i < 4; i++) {
		struct cv2_llm_request r = {.speaker = llm[i].speaker,
					    .text_ids = llm[i].ids,
					    .n_text = llm[i].n,
					    .instruct_ids = llm[i].instruct ? instr : NULL,
					    .n_instruct = llm[i].instruct ? 4 : 0,
					    .greedy = 1};
		ck_assert_msg(cv2_llm_generate(m, &r, &gen[i], &n_gen[i], err, sizeof err) == CV_OK, "%s",
			      err);
		ck_assert_uint_ge(n_gen[i], 2 * llm[i].n); /* EOS masked below min_len */
		ck_assert_uint_le(n_gen[i], 20 * llm[i].n);
	}
	for (size_t i = 0; i < 150; i++)
		stream_tok[i] = (int32_t)((i * 2654435761u) % 6561u);
	/* buffered token2wav (speed 1 and 1.5) on the greedy tokens, zero noise */
	k = sink_of(&t2w1);
	ck_assert_msg(cv2_token2wav(m, "zero_shot_0", stream_tok + 50, 30, 0, 1.0, 1, &k, err, sizeof err) ==
			  CV_OK,
		      "%s", err);
	k = sink_of(&t2w2);
	ck_assert_msg(cv2_token2wav(m, "zero_shot_0", stream_tok, 24, 0, 1.5, 1, &k, err, sizeof err) ==
			  CV_OK,
		      "%s", err);
	/* streaming token2wav: zero-shot (P = 20, pad 5: hops 30, 50, final) and SFT (P = 0: 25, final) */
	k = sink_of(&st0);
	ck_assert_msg(cv2_token2wav(m, "zero_shot_0", stream_tok, 90, 1, 1.0, 1, &k, err, sizeof err) ==
			  CV_OK,
		      "%s", err);
	k = sink_of(&st1);
	ck_assert_msg(cv2_token2wav(m, "\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3", stream_tok, 40, 1, 1.0, 1, &k,
				    err, sizeof err) == CV_OK,
		      "%s", err);

	arr = json_array();
	for (size_t i = 0; i < 4; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(llm[i].name));
		json_object_set_new(o, "speaker", json_string(llm[i].speaker));
		json_add_ids(o, "text_ids", llm[i].ids, llm[i].n);
		if (llm[i].instruct)
			json_add_ids(o, "instruct_ids", instr, 4);
		json_array_append_new(arr, o);
	}
	json_object_set_new(req, "llm", arr);
	arr = json_array();
	{
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string("a"));
		json_object_set_new(o, "speaker", json_string("zero_shot_0"));
		json_add_ids(o, "tokens", stream_tok + 50, 30);
		json_array_append_new(arr, o);
		o = json_object();
		json_object_set_new(o, "name", json_string("speed"));
		json_object_set_new(o, "speaker", json_string("zero_shot_0"));
		json_object_set_new(o, "speed", json_real(1.5));
		json_add_ids(o, "tokens", stream_tok, 24);
		json_array_append_new(arr, o);
	}
	json_object_set_new(req, "t2w", arr);
	arr = json_array();
	{
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string("zs"));
		json_object_set_new(o, "speaker", json_string("zero_shot_0"));
		json_add_ids(o, "tokens", stream_tok, 90);
		json_array_append_new(arr, o);
		o = json_object();
		json_object_set_new(o, "name", json_string("sft"));
		json_object_set_new(o, "speaker", json_string("\xe4\xb8\xad\xe6\x96\x87\xe5\xa5\xb3"));
		json_add_ids(o, "tokens", stream_tok, 40);
		json_array_append_new(arr, o);
	}
	json_object_set_new(req, "stream", arr);
	txt = json_dumps(req, 0);
	snprintf(path, sizeof path, "%s/req.json", tmp);
	write_file(path, txt, strlen(txt));
	free(txt);
	json_decref(req);

	{
		char script[600];
		char *argv[] = {(char *)env_or_fail("TORCH_PYTHON"),
				script,
				(char *)bundle_dir(),
				(char *)env_or_fail("COSYVOICE2_TEST_MODEL"),
				path,
				tmp,
				NULL};
		char cwd[400];
		ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
		snprintf(script, sizeof script, "%s/tests/py/engine_ref.py", cwd);
		ck_assert_int_eq(run_cmd(argv), 0);
	}
	/* greedy LLM: identical token sequences */
	for (size_t i = 0; i < 4; i++) {
		char f[700];
		size_t nb;
		int32_t *ref;
		snprintf(f, sizeof f, "%s/llm_%s.i32", tmp, llm[i].name);
		ref = read_file(f, &nb);
		ck_assert_msg(nb / 4 == n_gen[i], "%s: C %zu tokens, Python %zu", llm[i].name, n_gen[i],
			      nb / 4);
		ck_assert_msg(memcmp(ref, gen[i], nb) == 0, "%s: greedy tokens differ", llm[i].name);
		free(ref);
	}
	/* buffered: eager flow + HiFT */
	{
		const struct {
			const char *f;
			struct pcm_sink *s;
		} cmp[] = {{"t2w_a", &t2w1}, {"t2w_speed", &t2w2}, {"stream_zs", &st0}, {"stream_sft", &st1}};
		for (size_t i = 0; i < 4; i++) {
			char f[700];
			size_t nb;
			float *ref, d;
			snprintf(f, sizeof f, "%s/%s.f32", tmp, cmp[i].f);
			ref = read_file(f, &nb);
			ck_assert_msg(nb / 4 == cmp[i].s->n, "%s: C %zu samples, Python %zu", cmp[i].f,
				      cmp[i].s->n, nb / 4);
			d = max_abs_diff(ref, cmp[i].s->pcm, cmp[i].s->n);
			fprintf(stderr, "parity %s: %zu samples, max |C - Python| = %g\n", cmp[i].f,
				cmp[i].s->n, (double)d);
			ck_assert_msg(d <= 2e-4f, "%s: max |C - Python| = %g", cmp[i].f, (double)d);
			free(ref);
		}
	}
	/* streaming chunk lengths equal the reference's */
	{
		const struct {
			const char *f;
			struct pcm_sink *s;
		} cmp[] = {{"stream_zs", &st0}, {"stream_sft", &st1}};
		for (size_t i = 0; i < 2; i++) {
			char f[700];
			json_error_t je;
			json_t *a;
			snprintf(f, sizeof f, "%s/%s.json", tmp, cmp[i].f);
			a = json_load_file(f, 0, &je);
			ck_assert_ptr_nonnull(a);
			ck_assert_uint_eq(json_array_size(a), cmp[i].s->n_chunks);
			ck_assert_uint_ge(cmp[i].s->n_chunks, i == 0 ? 3 : 2);
			for (size_t j = 0; j < json_array_size(a); j++)
				ck_assert_uint_eq((size_t)json_integer_value(json_array_get(a, j)),
						  cmp[i].s->chunks[j]);
			json_decref(a);
		}
		/* first chunk right after the first hop: zero-shot 30 tokens, SFT 25 */
		ck_assert_uint_eq(st0.chunks[0], 60 * 480 - 3840);
		ck_assert_uint_eq(st1.chunks[0], 50 * 480 - 3840);
	}
	for (size_t i = 0; i < 4; i++)
		free(gen[i]);
	free(t2w1.pcm);
	free(t2w2.pcm);
	free(st0.pcm);
	free(st1.pcm);
	rm_rf(tmp);
	free(tmp);
	cv2_free(m);
}
END_TEST

/* ------------------------------------------------------------------ HTTP */

static pid_t daemon_pid;
static int daemon_port;

struct http_resp {
	long status;
	char *body;
	size_t n;
	char ctype[128];
};

static size_t http_body(char *p, size_t sz, size_t nm, void *user)
{
	struct http_resp *r = user;
	size_t n = sz * nm;
	r->body = realloc(r->body, r->n + n + 1);
	memcpy(r->body + r->n, p, n);
	r->n += n;
	r->body[r->n] = '\0';
	return n;
}

static size_t http_header(char *p, size_t sz, size_t nm, void *user)
{
	struct http_resp *r = user;
	size_t n = sz * nm;
	if (n > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
		snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(n - 16 > 100 ? 100 : n - 16), p + 14);
	return n;
}

static void http_raw(const char *method, const char *route, const void *body, size_t n, const char *ctype,
		     const char *key, struct http_resp *r);

static void http(const char *method, const char *route, const char *body, struct http_resp *r)
{
	http_raw(method, route, body, body ? strlen(body) : 0, body ? "application/json" : NULL, NULL, r);
}

/* Start the daemon on the tiny bundle; extra: more flags (NULL-terminated,
 * may be NULL); fault: CVTEST_FAULT for the daemon, or NULL. */
static char daemon_log[64];

/* A port free right now on 127.0.0.1 (the kernel's pick). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void daemon_start_with(const char *const *extra, const char *fault)
{
	const char *bin = env_or_fail("CVTEST_BIN");
	char port[16];
	daemon_port = free_port();
	snprintf(port, sizeof port, "%d", daemon_port);
	snprintf(daemon_log, sizeof daemon_log, "/tmp/cv2test-daemon-%d.log", (int)getpid());
	daemon_pid = fork();
	ck_assert_int_ge(daemon_pid, 0);
	if (daemon_pid == 0) {
		const char *argv[32] = {bin,	      "--listen", "127.0.0.1", "--port",   port, "--model",
					bundle_dir(), "--device", "cpu",       "--warmup", "0"};
		size_t n = 11;
		int fd = open(daemon_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		for (size_t i = 0; extra && extra[i] && n < 31; i++)
			argv[n++] = extra[i];
		argv[n] = NULL;
		if (fault)
			setenv("CVTEST_FAULT", fault, 1);
		/* an ASan daemon: libtorch's own static-initializer leaks are not ours */
		setenv("LSAN_OPTIONS", "suppressions=tests/lsan-libtorch.supp:print_suppressions=0", 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* dies with the test process */
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 600; i++) {
		struct http_resp r;
		http("GET", "/readyz", NULL, &r);
		free(r.body);
		if (r.status == 200)
			return;
		if (waitpid(daemon_pid, NULL, WNOHANG) != 0) {
			char tail[2048] = "";
			FILE *f = fopen(daemon_log, "rb");
			if (f) {
				fseek(f, 0, SEEK_END);
				long sz = ftell(f);
				fseek(f, sz > 2000 ? sz - 2000 : 0, SEEK_SET);
				size_t k = fread(tail, 1, sizeof tail - 1, f);
				tail[k] = '\0';
				fclose(f);
			}
			ck_abort_msg("the daemon exited during start-up; its log ends:\n%s", tail);
		}
		usleep(100000);
	}
	ck_abort_msg("daemon did not become ready");
}

static void daemon_start(void)
{
	daemon_start_with(NULL, NULL);
}

static void daemon_stop(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	unlink(daemon_log);
}

/* SIGTERM, then the daemon must exit 0 (under ASan: no error, no leak). */
static void daemon_stop_clean(void)
{
	int st = 0;
	ck_assert_int_gt(daemon_pid, 0);
	kill(daemon_pid, SIGTERM);
	ck_assert_int_eq(waitpid(daemon_pid, &st, 0), daemon_pid);
	daemon_pid = 0;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon exit status 0x%x", st);
	unlink(daemon_log);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A WAV body at 24 kHz mono s16 whose data is a whole number of 480-sample frames. */
static size_t check_wav(const struct http_resp *r)
{
	const unsigned char *b = (const unsigned char *)r->body;
	size_t data;
	ck_assert_uint_ge(r->n, 44);
	ck_assert_int_eq(memcmp(b, "RIFF", 4), 0);
	ck_assert_int_eq(memcmp(b + 8, "WAVE", 4), 0);
	ck_assert_uint_eq(le32(b + 24), 24000);
	data = r->n - 44;
	ck_assert_uint_gt(data, 0);
	ck_assert_uint_eq(data % (2 * 480), 0);
	return data / 2;
}

START_TEST(http_end_to_end)
{
	struct http_resp r;
	size_t n;
	daemon_start();
	http("GET", "/v1/speakers", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"cosyvoice2\""));
	ck_assert_ptr_nonnull(strstr(r.body, "zero_shot_0/cross-lingual"));
	free(r.body);
	/* en, buffered WAV */
	http("POST", "/tts", "{\"text\":\"Hello world.\",\"seed\":1}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	n = check_wav(&r);
	ck_assert_uint_ge(n, 480 * 2 * 2 * 2); /* >= min_len tokens (2 per text id) */
	free(r.body);
	/* zh, streamed WAV */
	http("POST", "/tts",
	     "{\"text\":\"\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c\",\"seed\":2,\"stream\":true}",
	     &r);
	ck_assert_msg(r.status == 200, "status %ld", r.status);
	ck_assert_uint_ge(r.n, 44);
	ck_assert_int_eq(memcmp(r.body, "RIFF", 4), 0);
	ck_assert_uint_eq((r.n - 44) % (2 * 480), 0);
	ck_assert_uint_gt(r.n, 44);
	free(r.body);
	/* mixed zh/en, Opus, buffered and streamed */
	http("POST", "/tts",
	     "{\"text\":\"\xe4\xbd\xa0\xe5\xa5\xbd, hello "
	     "\xe4\xb8\x96\xe7\x95\x8c.\",\"format\":\"opus\",\"seed\":3}",
	     &r);
	ck_assert_msg(r.status == 200, "status %ld", r.status);
	ck_assert_uint_gt(r.n, 100);
	ck_assert_int_eq(memcmp(r.body, "OggS", 4), 0);
	ck_assert_ptr_nonnull(strstr(r.ctype, "ogg"));
	free(r.body);
	http("POST", "/tts",
	     "{\"text\":\"\xe4\xbd\xa0\xe5\xa5\xbd, hello.\",\"format\":\"opus\",\"stream\":true,\"seed\":3}",
	     &r);
	ck_assert_msg(r.status == 200, "status %ld", r.status);
	ck_assert_int_eq(memcmp(r.body, "OggS", 4), 0);
	free(r.body);
	/* unknown speaker */
	http("POST", "/tts", "{\"text\":\"Hello.\",\"speaker\":\"nobody\"}", &r);
	ck_assert_int_eq(r.status, 422);
	ck_assert_ptr_nonnull(strstr(r.body, "nobody"));
	free(r.body);
	/* an engine error (speed + stream refused by the engine), then the next request works */
	http("POST", "/tts", "{\"text\":\"Hello.\",\"stream\":true,\"speed\":1.5}", &r);
	ck_assert_int_ge(r.status, 400);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"Hello again.\",\"seed\":4}", &r);
	ck_assert_int_eq(r.status, 200);
	check_wav(&r);
	free(r.body);
	daemon_stop();
}
END_TEST

/* The s16 samples of a 24 kHz WAV reply (malloc'ed), *n samples. */
static int16_t *wav_samples(const struct http_resp *r, size_t *n)
{
	int16_t *s;
	*n = check_wav(r);
	s = malloc(*n * sizeof *s + 1);
	memcpy(s, r->body + 44, *n * sizeof *s);
	return s;
}

/* Value of an unlabelled series on /metrics; -1 when absent. */
static double metric_value(const char *name)
{
	struct http_resp r;
	double v;
	http("GET", "/metrics", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	if (promcheck_value(r.body, name, &v) != CV_OK)
		v = -1;
	free(r.body);
	return v;
}

/* No spaces after the periods: each piece then tokenizes as the sentence alone
 * (" The" and "The" are different ids). */
#define THREE_SENTENCES "Good morning to you all.The weather is fine today.We meet again at noon."
static const char *const three_sentences[] = {"Good morning to you all.", "The weather is fine today.",
					      "We meet again at noon."};
static const char *const split_small[] = {"--split-max-tokens", "6", NULL};

/* Long input: every sentence is synthesized, in order, none dropped: the
 * reply for three sentences with seed s is, sample for sample, the replies
 * for each sentence alone with seeds s, s + 1, s + 2 put end to end. */
START_TEST(http_every_sentence_in_order)
{
	struct http_resp r;
	int16_t *all, *one;
	size_t n_all, n_one, at = 0;
	char body[256];

	daemon_start_with(split_small, NULL);
	http("POST", "/v1/text/normalize", "{\"text\":\"" THREE_SENTENCES "\"}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	{
		json_error_t je;
		json_t *j = json_loads(r.body, 0, &je), *s = json_object_get(j, "sentences");
		ck_assert_msg(json_array_size(s) == 3, "%zu sentences: %s", json_array_size(s), r.body);
		for (size_t i = 0; i < 3; i++)
			ck_assert_str_eq(json_string_value(json_object_get(json_array_get(s, i), "text")),
					 three_sentences[i]);
		json_decref(j);
	}
	free(r.body);
	http("POST", "/tts", "{\"text\":\"" THREE_SENTENCES "\",\"seed\":7}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	all = wav_samples(&r, &n_all);
	free(r.body);
	for (int i = 0; i < 3; i++) {
		snprintf(body, sizeof body, "{\"text\":\"%s\",\"seed\":%d}", three_sentences[i], 7 + i);
		http("POST", "/tts", body, &r);
		ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
		one = wav_samples(&r, &n_one);
		free(r.body);
		ck_assert_uint_gt(n_one, 0);
		ck_assert_msg(at + n_one <= n_all, "sentence %d ends at %zu, the reply has %zu samples",
			      i + 1, at + n_one, n_all);
		ck_assert_msg(memcmp(all + at, one, n_one * sizeof *one) == 0,
			      "sentence %d is not at samples %zu..%zu of the reply", i + 1, at, at + n_one);
		at += n_one;
		free(one);
	}
	ck_assert_uint_eq(at, n_all);
	free(all);
	daemon_stop();
}
END_TEST

/* One failing sentence fails the request (a libtorch exception thrown in the
 * second sentence's flow), with a clear error and no shortened audio; the
 * daemon stays ready and serves the next request. */
START_TEST(http_failing_sentence_fails_request)
{
	struct http_resp r;

	daemon_start_with(split_small, "flow_inference:2");
	http("POST", "/tts", "{\"text\":\"" THREE_SENTENCES "\",\"seed\":7}", &r);
	ck_assert_msg(r.status == 500, "status %ld", r.status);
	ck_assert_msg(strstr(r.body, "sentence 2 of 3") && strstr(r.body, "fault injected"), "%s", r.body);
	ck_assert_int_eq(memcmp(r.body, "{", 1), 0);
	free(r.body);
	ck_assert_double_eq(metric_value("cosyvoiced_engine_errors_total"), 1);
	http("GET", "/readyz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"" THREE_SENTENCES "\",\"seed\":7}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	check_wav(&r);
	free(r.body);
	daemon_stop();
}
END_TEST

/* An out-of-memory inside the model (c10::OutOfMemoryError, as a CUDA OOM
 * throws) in the middle of a stream: that request fails (the client sees a
 * truncated stream, not a clean end), the caches are freed, the OOM is
 * counted, and the daemon stays ready. */
START_TEST(http_out_of_memory_fails_only_that_request)
{
	struct http_resp r;

	daemon_start_with(split_small, "hift_inference:2:oom");
	ck_assert_double_eq(metric_value("cosyvoiced_engine_out_of_memory_total"), 0);
	http("POST", "/tts", "{\"text\":\"" THREE_SENTENCES "\",\"seed\":7,\"stream\":true}", &r);
	ck_assert_msg(r.status == -1, "a failed stream must not end cleanly (status %ld, %zu bytes)",
		      r.status, r.n);
	free(r.body);
	ck_assert_double_eq(metric_value("cosyvoiced_engine_out_of_memory_total"), 1);
	ck_assert_double_eq(metric_value("cosyvoiced_engine_errors_total"), 1);
	http("GET", "/readyz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"Hello again.\",\"seed\":4,\"stream\":true}", &r);
	ck_assert_msg(r.status == 200, "status %ld", r.status);
	ck_assert_int_eq(memcmp(r.body, "RIFF", 4), 0);
	free(r.body);
	daemon_stop();
}
END_TEST

/* Requests the KV cache or the memory budget cannot hold: 413 naming text. */
START_TEST(http_over_budget_is_413)
{
	static const char *const small[] = {"--llm-max-positions", "300", "--split-max-tokens", "512", NULL};
	struct http_resp r;
	char body[1400];
	size_t o = (size_t)snprintf(body, sizeof body, "{\"normalize\":false,\"text\":\"");
	for (int i = 0; i < 150; i++)
		o += (size_t)snprintf(body + o, sizeof body - o, "hello ");
	snprintf(body + o, sizeof body - o, "\"}");
	daemon_start_with(small, NULL);
	ck_assert_double_eq(metric_value("cosyvoiced_engine_llm_max_positions"), 300);
	ck_assert_msg(metric_value("cosyvoiced_engine_memory_base_bytes") > 50e6,
		      "no memory model in /metrics");
	http("POST", "/tts", body, &r);
	ck_assert_int_eq(r.status, 413);
	ck_assert_msg(strstr(r.body, "\"text\"") && strstr(r.body, "llm_max_positions"), "%s", r.body);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"Hi.\",\"seed\":1}", &r);
	ck_assert_int_eq(r.status, 200);
	free(r.body);
	daemon_stop();
}
END_TEST

/* ------------------------------------------------------------------ voices */

#define ADMIN_KEY "admin-key-0123"

/* A request with a raw body, Content-Type and Bearer key (NULLs: none). */
static void http_raw(const char *method, const char *route, const void *body, size_t n, const char *ctype,
		     const char *key, struct http_resp *r)
{
	CURL *c = curl_easy_init();
	char url[256], hdr[2][160];
	struct curl_slist *h = NULL;
	memset(r, 0, sizeof *r);
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", daemon_port, route);
	if (ctype) {
		snprintf(hdr[0], sizeof hdr[0], "Content-Type: %s", ctype);
		h = curl_slist_append(h, hdr[0]);
	}
	if (key) {
		snprintf(hdr[1], sizeof hdr[1], "Authorization: Bearer %s", key);
		h = curl_slist_append(h, hdr[1]);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)n);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 100L);
	if (curl_easy_perform(c) != CURLE_OK)
		r->status = -1;
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	*n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = xmalloc(*n + 1);
	ck_assert_uint_eq(fread(buf, 1, *n, f), *n);
	fclose(f);
	return buf;
}

/* Whether GET /v1/speakers lists `id` (as a quoted id); the default voice into def. */
static int voice_listed(const char *id, char *def, size_t deflen)
{
	struct http_resp r;
	json_error_t je;
	int found = 0;
	http("GET", "/v1/speakers", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	json_t *j = json_loads(r.body, 0, &je), *sp;
	size_t i;
	ck_assert_ptr_nonnull(j);
	json_array_foreach(json_object_get(j, "speakers"), i, sp) found |=
	    strcmp(json_string_value(json_object_get(sp, "id")), id) == 0;
	if (def)
		snprintf(def, deflen, "%s", json_string_value(json_object_get(j, "default")));
	json_decref(j);
	free(r.body);
	return found;
}

/* Poll until `id` is (want = 1) or is not (want = 0) listed: the worker reloads between jobs. */
static void wait_voice(const char *id, int want)
{
	for (int i = 0; i < 200; i++) {
		if (voice_listed(id, NULL, 0) == want)
			return;
		usleep(50000);
	}
	ck_abort_msg("voice '%s' still %s after 10 s", id, want ? "missing" : "listed");
}

static int tts_status(const char *speaker)
{
	struct http_resp r;
	char body[256];
	snprintf(body, sizeof body, "{\"text\":\"Hello there.\",\"speaker\":\"%s\",\"seed\":1}", speaker);
	http("POST", "/tts", body, &r);
	free(r.body);
	return (int)r.status;
}

struct long_tts {
	const char *speaker;
	long status;
	size_t bytes;
	double t_end;
	char body[256]; /* an error reply's start */
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *long_tts_run(void *arg)
{
	struct long_tts *lt = arg;
	char body[4096];
	struct http_resp r;
	size_t n =
	    (size_t)snprintf(body, sizeof body, "{\"speaker\":\"%s\",\"seed\":3,\"text\":\"", lt->speaker);
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "Sentence number %d is here. ", i);
	snprintf(body + n, sizeof body - n, "\"}");
	http("POST", "/tts", body, &r);
	lt->status = r.status;
	lt->bytes = r.n;
	lt->t_end = mono_s();
	snprintf(lt->body, sizeof lt->body, "%s", r.body ? r.body : "");
	free(r.body);
	return NULL;
}

/* Voices added and removed while the daemon runs: PUT/DELETE with an admin
 * key (validated like a start-up load, atomically renamed into voices_dir),
 * SIGHUP re-reading voices_dir (a broken file refused, the old set kept), the
 * default never moving, and every refusal with its status and field. */
START_TEST(http_voices_change_without_restart)
{
	char *tmp = make_tmpdir(), dir[600], path[700], def[128];
	const char *extra[] = {"--voices-dir", dir, "--admin-api-keys", ADMIN_KEY, "--max-voice-bytes",
			       "300000",       NULL};
	const char *oct = "application/octet-stream";
	struct http_resp r;
	size_t n;
	char *file, *big;

	snprintf(dir, sizeof dir, "%s/voices", tmp);
	snprintf(path, sizeof path, "%s/speakers/zero_shot_1.safetensors", bundle_dir());
	file = slurp(path, &n);
	daemon_start_with(extra, NULL);
	ck_assert(!voice_listed("alice", def, sizeof def));
	ck_assert_str_eq(def, "zero_shot_0");

	/* refusals */
	http_raw("PUT", "/v1/speakers/alice", file, n, oct, NULL, &r);
	ck_assert_int_eq(r.status, 401);
	free(r.body);
	http_raw("PUT", "/v1/speakers/alice", file, n, oct, "not-the-admin", &r);
	ck_assert_int_eq(r.status, 403);
	free(r.body);
	http_raw("PUT", "/v1/speakers/alice", file, n, "application/json", ADMIN_KEY, &r);
	ck_assert_int_eq(r.status, 415);
	free(r.body);
	http_raw("PUT", "/v1/speakers/alice", "not a speaker file", 18, oct, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 422 && strstr(r.body, "\"field\":\"body\"") &&
			  strstr(r.body, "safetensors"),
		      "%ld %s", r.status, r.body);
	free(r.body);
	big = xcalloc(1, 400000);
	http_raw("PUT", "/v1/speakers/alice", big, 400000, oct, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 413 && strstr(r.body, "max_voice_bytes"), "%ld %s", r.status, r.body);
	free(r.body);
	free(big);
	http_raw("PUT", "/v1/speakers/-bad", file, n, oct, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 400 && strstr(r.body, "\"field\":\"id\""), "%ld %s", r.status, r.body);
	free(r.body);
	http_raw("POST", "/v1/speakers/alice", file, n, oct, ADMIN_KEY, &r);
	ck_assert_int_eq(r.status, 405);
	free(r.body);
	ck_assert(!voice_listed("alice", NULL, 0));

	/* PUT: new (201), then replaced (200); usable, readable by others, no temporary left */
	http_raw("PUT", "/v1/speakers/alice", file, n, oct, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 201 && strstr(r.body, "\"replaced\":false"), "%ld %s", r.status, r.body);
	free(r.body);
	wait_voice("alice", 1);
	ck_assert(voice_listed("alice/cross-lingual", def, sizeof def));
	ck_assert_str_eq(def, "zero_shot_0");
	ck_assert_int_eq(tts_status("alice"), 200);
	http_raw("PUT", "/v1/speakers/alice", file, n, oct, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "\"replaced\":true"), "%ld %s", r.status, r.body);
	free(r.body);
	{
		struct stat st;
		snprintf(path, sizeof path, "%s/alice.safetensors", dir);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0644);
		char cmd[800];
		snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^\\.' | grep -qx 0", dir);
		ck_assert_msg(system(cmd) == 0, "a temporary file was left in %s", dir);
	}

	/* SIGHUP: a file copied in appears; a broken one is refused and the set stays */
	snprintf(path, sizeof path, "%s/carol.safetensors", dir);
	write_file(path, file, n);
	ck_assert_int_eq(kill(daemon_pid, SIGHUP), 0);
	wait_voice("carol", 1);
	snprintf(path, sizeof path, "%s/dave.safetensors", dir);
	write_file(path, "broken", 6);
	ck_assert_int_eq(kill(daemon_pid, SIGHUP), 0);
	for (int i = 0; i < 100; i++) {
		http("GET", "/metrics", NULL, &r);
		int refused = strstr(r.body, "cosyvoiced_voice_reloads_total{result=\"refused\"} 1") != NULL;
		free(r.body);
		if (refused)
			break;
		ck_assert_msg(i < 99, "the broken file was not refused");
		usleep(50000);
	}
	ck_assert(voice_listed("carol", NULL, 0) && voice_listed("alice", NULL, 0) &&
		  !voice_listed("dave", NULL, 0));
	ck_assert_int_eq(unlink(path), 0);

	/* DELETE: bundle voices are read-only, unknown ids 404, the default stays */
	http_raw("DELETE", "/v1/speakers/zero_shot_0", NULL, 0, NULL, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 409 && strstr(r.body, "read-only"), "%ld %s", r.status, r.body);
	free(r.body);
	http_raw("DELETE", "/v1/speakers/nobody", NULL, 0, NULL, ADMIN_KEY, &r);
	ck_assert_int_eq(r.status, 404);
	free(r.body);
	http_raw("DELETE", "/v1/speakers/alice", NULL, 0, NULL, ADMIN_KEY, &r);
	ck_assert_msg(r.status == 200 && strstr(r.body, "\"deleted\":true"), "%ld %s", r.status, r.body);
	free(r.body);
	wait_voice("alice", 0);
	ck_assert_int_eq(tts_status("alice"), 422);
	ck_assert(voice_listed("carol", def, sizeof def));
	ck_assert_str_eq(def, "zero_shot_0");

	/* a request running with a voice that is deleted meanwhile finishes with all its audio */
	{
		struct long_tts lt = {.speaker = "carol"};
		pthread_t th;
		double t_del;
		ck_assert_int_eq(pthread_create(&th, NULL, long_tts_run, &lt), 0);
		int busy = 0;
		for (int i = 0; i < 3000 && !busy; i++) { /* until the worker runs it */
			http("GET", "/metrics", NULL, &r);
			busy = strstr(r.body, "\ncosyvoiced_worker_busy 1\n") != NULL;
			free(r.body);
			if (!busy)
				usleep(10000);
		}
		ck_assert_msg(busy, "the long request never ran");
		http_raw("DELETE", "/v1/speakers/carol", NULL, 0, NULL, ADMIN_KEY, &r);
		t_del = mono_s();
		ck_assert_int_eq(r.status, 200);
		free(r.body);
		pthread_join(th, NULL);
		ck_assert_msg(lt.t_end > t_del,
			      "the request ended before the DELETE: the test proves nothing");
		ck_assert_msg(lt.status == 200 && lt.bytes > 44 + 40 * 480 * 2, "status %ld, %zu bytes: %s",
			      lt.status, lt.bytes, lt.status == 200 ? "" : lt.body);
		wait_voice("carol", 0);
	}

	/* metrics: the voice count and the changes, valid for promtool */
	http("GET", "/metrics", NULL, &r);
	ck_assert_msg(strstr(r.body, "cosyvoiced_voices 5\n") &&
			  strstr(r.body, "voice_changes_total{op=\"put\",result=\"ok\"} 2") &&
			  strstr(r.body, "voice_changes_total{op=\"delete\",result=\"ok\"} 2"),
		      "%s", r.body);
	free(r.body);
	daemon_stop_clean();
	free(file);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* Without admin keys (or voices_dir) the routes do not exist. */
START_TEST(http_voice_routes_off_by_default)
{
	struct http_resp r;
	daemon_start();
	http_raw("PUT", "/v1/speakers/alice", "x", 1, "application/octet-stream", ADMIN_KEY, &r);
	ck_assert_msg(r.status == 404 && strstr(r.body, "admin_api_keys"), "%ld %s", r.status, r.body);
	free(r.body);
	daemon_stop_clean();
}
END_TEST

struct voice_client {
	int id;
	const char *file;
	size_t n;
	int bad; /* responses outside the expected set */
	char last_bad[160];
};

static void *voice_client_run(void *arg)
{
	struct voice_client *vc = arg;
	static const char *const ids[] = {"v0", "v1", "v2"};
	for (int i = 0; i < 12; i++) {
		struct http_resp r;
		char route[64];
		const char *id = ids[(vc->id + i) % 3];
		int st;
		snprintf(route, sizeof route, "/v1/speakers/%s", id);
		if (vc->id < 2) {
			if ((i + vc->id) % 2 == 0)
				http_raw("PUT", route, vc->file, vc->n, "application/octet-stream", ADMIN_KEY,
					 &r);
			else
				http_raw("DELETE", route, NULL, 0, NULL, ADMIN_KEY, &r);
			st = (int)r.status;
			if (st != 200 && st != 201 && st != 404) {
				vc->bad++;
				snprintf(vc->last_bad, sizeof vc->last_bad, "%s %s: %d",
					 (i + vc->id) % 2 ? "DELETE" : "PUT", id, st);
			}
			free(r.body);
		} else {
			st = tts_status(i % 4 == 0 ? "zero_shot_0" : id);
			if (st != 200 && st != 422) {
				vc->bad++;
				snprintf(vc->last_bad, sizeof vc->last_bad, "tts %s: %d", id, st);
			}
			if (i % 5 == 0)
				kill(daemon_pid, SIGHUP);
		}
	}
	return NULL;
}

/* PUT, DELETE, SIGHUP and synthesis from parallel clients: every answer is one
 * of the expected ones and the daemon keeps serving (run under ASan too). */
START_TEST(http_voices_parallel_clients)
{
	char *tmp = make_tmpdir(), dir[600], path[700];
	const char *extra[] = {"--voices-dir", dir, "--admin-api-keys", ADMIN_KEY, NULL};
	struct voice_client vc[4];
	pthread_t th[4];
	size_t n;
	char *file;

	snprintf(dir, sizeof dir, "%s/voices", tmp);
	snprintf(path, sizeof path, "%s/speakers/zero_shot_1.safetensors", bundle_dir());
	file = slurp(path, &n);
	daemon_start_with(extra, NULL);
	for (int i = 0; i < 4; i++) {
		vc[i] = (struct voice_client){.id = i, .file = file, .n = n};
		ck_assert_int_eq(pthread_create(&th[i], NULL, voice_client_run, &vc[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(vc[i].bad == 0, "client %d: %d unexpected answers, last %s", i, vc[i].bad,
			      vc[i].last_bad);
	}
	ck_assert_int_eq(tts_status("zero_shot_0"), 200);
	ck_assert_int_eq(waitpid(daemon_pid, NULL, WNOHANG), 0);
	daemon_stop_clean();
	free(file);
	rm_rf(tmp);
	free(tmp);
}
END_TEST

/* ------------------------------------------------------------------ CUDA
 * Registered only with CVTEST_CUDA=1 (tools/release/gpu-check.sh sets it on
 * a GPU machine); there a missing GPU is a failure, not a skip. */

static struct cv2 *open_cv2_cuda(int graph)
{
	struct engine_config cfg = {
	    .backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cuda", .cuda_graph = graph};
	ck_assert_msg(torch_runtime_cuda_available(), "CVTEST_CUDA=1 but libtorch sees no CUDA device");
	return open_cv2_cfg(&cfg);
}

/* The captured CUDA graph decodes the same greedy tokens as eager decoding,
 * across requests (the graph is captured once and replayed for every step
 * and position), and reports itself active. */
START_TEST(cuda_graph_decode_equals_eager)
{
	static const int32_t ids[][6] = {{9707, 1879, 13, 0, 0, 0}, {40, 1079, 264, 2699, 3364, 13}};
	static const size_t n_ids[] = {3, 6};
	struct cv2 *eager = open_cv2_cuda(0), *graph = open_cv2_cuda(1);
	struct engine *e;
	struct engine_config cfg = {
	    .backend = "cosyvoice2", .model_dir = bundle_dir(), .device = "cuda", .cuda_graph = 1};
	char err[512] = "";

	for (int round = 0; round < 3; round++) {
		size_t k = (size_t)round % 2;
		struct cv2_llm_request r = {.text_ids = ids[k], .n_text = n_ids[k], .greedy = 1};
		int32_t *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;
		ck_assert_msg(cv2_llm_generate(eager, &r, &a, &na, err, sizeof err) == CV_OK, "%s", err);
		ck_assert_msg(cv2_llm_generate(graph, &r, &b, &nb, err, sizeof err) == CV_OK, "%s", err);
		ck_assert_uint_eq(na, nb);
		ck_assert_msg(memcmp(a, b, na * sizeof *a) == 0, "round %d: graph tokens differ", round);
		free(a);
		free(b);
	}
	cv2_free(eager);
	cv2_free(graph);
	e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	{
		struct pcm_sink s = {0};
		ck_assert_int_eq(synth(e, "Hello there.", NULL, 0, 1.0f, 3, &s, err, sizeof err), CV_OK);
		free(s.pcm);
	}
	ck_assert_double_eq(gauge_value(e, "llm_decode_cuda_graph"), 1);
	engine_close(e);
}
END_TEST

/* Steady state on the GPU: allocated memory after 30 requests equals the
 * figure after the first few (static KV cache, caching allocator reuse; the
 * first requests also capture the decode graphs of the buckets they reach). */
START_TEST(cuda_memory_steady)
{
	struct engine_config cfg = {.backend = "cosyvoice2",
				    .model_dir = bundle_dir(),
				    .device = "cuda",
				    .cuda_graph = 1,
				    .memory_budget_mb = 3072};
	char err[512] = "";
	struct engine *e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	double first = -1, last = -1;

	ck_assert_msg(gauge_value(e, "memory_base_bytes") > 0, "no memory model on cuda");
	for (int i = 0; i < 30; i++) {
		struct pcm_sink s = {0};
		ck_assert_msg(synth(e, i % 2 ? "Hello there, friend." : "Hi.", NULL, i % 3 == 0, 1.0f,
				    (uint64_t)i, &s, err, sizeof err) == CV_OK,
			      "%s", err);
		free(s.pcm);
		if (i == 3)
			first = gauge_value(e, "gpu_memory_allocated_bytes");
	}
	last = gauge_value(e, "gpu_memory_allocated_bytes");
	ck_assert_msg(first > 0 && last == first, "GPU allocated %.0f after request 4, %.0f after 30", first,
		      last);
	engine_close(e);
}
END_TEST

/* ------------------------------------------------------------------ dtypes */

/* A bundle of build/dtype-bundles (Makefile TINY_HALF): tiny-fp16, tiny-bf16 (the tiny bundle's weights),
 * overflow-fp16, overflow-bf16 (a tiny LLM whose residual stream leaves fp16's range at "overflow"). */
static const char *dtype_bundle(const char *name)
{
	static char path[4][700];
	static int k;
	char *p = path[k++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", env_or_fail("COSYVOICE2_TEST_DTYPE_DIR"), name);
	return p;
}

#define OVERFLOW_TEXT "Watch the numbers overflow now."

/* fp16 bundles are made for the GPU: on the CPU they are refused unless cpu_half says so; bf16 ones
 * too on a CPU without native bf16 (injected: CVTEST_CPU_BF16=0), with the reason and the way out. */
START_TEST(half_bundle_refused_on_cpu)
{
	static const char *const names[] = {"tiny-fp16", "tiny-bf16"};
	setenv("CVTEST_CPU_BF16", "0", 1);
	for (size_t i = 0; i < 2; i++) {
		struct engine_config cfg = {
		    .backend = "cosyvoice2", .model_dir = dtype_bundle(names[i]), .device = "cpu"};
		char err[512] = "";
		struct engine *e = open_engine_cfg(&cfg, CV_EUNSUPPORTED, err, sizeof err);
		ck_assert_ptr_null(e);
		ck_assert_msg(strstr(err, "cpu_half") && strstr(err, names[i] + 5) && strstr(err, "fp32"),
			      "%s", err);
		if (i == 1)
			ck_assert_msg(strstr(err, "native bf16") && strstr(err, "AVX512-BF16"), "%s", err);
	}
	unsetenv("CVTEST_CPU_BF16");
}
END_TEST

/* This CPU's own answer (/proc/cpuinfo): AVX512-BF16 or AMX-BF16. */
static int cpuinfo_has_bf16(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	int has = 0;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "flags", 5) == 0) {
			has = strstr(line, " avx512_bf16") || strstr(line, " amx_bf16");
			break;
		}
	if (f)
		fclose(f);
	return has;
}

/* On a CPU with native bf16 (injected: CVTEST_CPU_BF16=1, whatever this machine has) a bf16 bundle
 * serves without cpu_half; an fp16 one is still refused there. Where the CPU really has bf16 units the
 * LLM's weights are reordered for oneDNN at load (the load line says so), and CVTEST_CPU_PACK=0 keeps
 * ATen's path. */
START_TEST(bf16_bundle_serves_on_bf16_cpu)
{
	setenv("CVTEST_CPU_BF16", "1", 1);
	char err[512] = "";
	struct engine_config cfg = {
	    .backend = "cosyvoice2", .model_dir = dtype_bundle("tiny-bf16"), .device = "cpu"};
	struct test_stderr cap;
	ck_assert_int_eq(test_stderr_capture(&cap), 0);
	struct engine *e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	setenv("CVTEST_CPU_PACK", "0", 1);
	struct engine *plain = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	unsetenv("CVTEST_CPU_PACK");
	char *buf = test_stderr_release(&cap);
	ck_assert_ptr_nonnull(buf);
	/* half precision on the CPU decodes with fixed shapes per position bucket (no oneDNN kernel
	 * per position: a flat resident set) */
	static const char stat[] = "LLM decode: static (llm_decode_at per position bucket, no graph)";
	const char *first = strstr(buf, "LLM decode: ");
	ck_assert_msg(first && strncmp(first, stat, sizeof stat - 1) == 0, "%s", buf);
	const char *packed = strstr(buf, ", oneDNN-packed bf16 weights;");
	if (cpuinfo_has_bf16()) {
		ck_assert_msg(packed && packed == first + sizeof stat - 1, "%s", buf);
		/* the CVTEST_CPU_PACK=0 engine's load line comes next and says static, not packed */
		const char *next = strstr(packed + 1, "LLM decode: ");
		ck_assert_msg(next && strncmp(next, stat, sizeof stat - 1) == 0 &&
				  next[sizeof stat - 1] == ';',
			      "%s", buf);
	} else {
		ck_assert_msg(!packed, "%s", buf);
	}
	free(buf);
	/* ATen's path serves too (the packed one is checked below) */
	struct pcm_sink b = {0};
	ck_assert_msg(synth(plain, "Hello there.", NULL, 0, 1.0f, 3, &b, err, sizeof err) == CV_OK, "%s",
		      err);
	ck_assert_uint_gt(b.n, 0);
	free(b.pcm);
	engine_close(plain);
	ck_assert_ptr_nonnull(strstr(engine_describe(e), "bf16"));
	struct pcm_sink s = {0};
	ck_assert_msg(synth(e, "Hello there.", NULL, 0, 1.0f, 3, &s, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_uint_gt(s.n, 0);
	free(s.pcm);
	engine_close(e);
	struct engine_config cfg16 = {
	    .backend = "cosyvoice2", .model_dir = dtype_bundle("tiny-fp16"), .device = "cpu"};
	ck_assert_ptr_null(open_engine_cfg(&cfg16, CV_EUNSUPPORTED, err, sizeof err));
	ck_assert_msg(strstr(err, "fp16") && strstr(err, "cpu_half"), "%s", err);
	unsetenv("CVTEST_CPU_BF16");
}
END_TEST

/* With cpu_half the half-precision bundles serve on the CPU: finite audio in the clip range. */
START_TEST(half_bundles_serve_on_cpu)
{
	static const char *const names[] = {"tiny-fp16", "tiny-bf16"};
	for (size_t i = 0; i < 2; i++) {
		struct engine_config cfg = {.backend = "cosyvoice2",
					    .model_dir = dtype_bundle(names[i]),
					    .device = "cpu",
					    .cpu_half = 1};
		char err[512] = "";
		struct engine *e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
		ck_assert_ptr_nonnull(strstr(engine_describe(e), names[i] + 5));
		for (int stream = 0; stream < 2; stream++) {
			struct pcm_sink s = {0};
			ck_assert_msg(synth(e, "Hello there.", NULL, stream, 1.0f, 3, &s, err, sizeof err) ==
					  CV_OK,
				      "%s: %s", names[i], err);
			ck_assert_uint_gt(s.n, 0);
			for (size_t j = 0; j < s.n; j++)
				ck_assert(isfinite(s.pcm[j]) && fabsf(s.pcm[j]) <= 0.99f + 1e-6f);
			free(s.pcm);
		}
		engine_close(e);
	}
}
END_TEST

/* The stressed model's residual stream passes 65504 at "overflow": in fp16 that sentence fails with a
 * clear error (never noise) and the engine serves the next one; bf16 (fp32's range) serves it. */
START_TEST(fp16_overflow_fails_cleanly)
{
	char err[512] = "";
	struct engine_config cfg = {.backend = "cosyvoice2",
				    .model_dir = dtype_bundle("overflow-fp16"),
				    .device = "cpu",
				    .cpu_half = 1};
	struct engine *e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	struct pcm_sink s = {0};
	ck_assert_int_eq(synth(e, OVERFLOW_TEXT, NULL, 0, 1.0f, 3, &s, err, sizeof err), CV_EENGINE);
	ck_assert_msg(strstr(err, "numeric overflow") && strstr(err, "bf16"), "%s", err);
	ck_assert_uint_eq(s.n, 0);
	free(s.pcm);
	memset(&s, 0, sizeof s);
	ck_assert_msg(synth(e, "Hello there.", NULL, 0, 1.0f, 3, &s, err, sizeof err) == CV_OK, "%s", err);
	free(s.pcm);
	engine_close(e);

	cfg.model_dir = dtype_bundle("overflow-bf16");
	e = open_engine_cfg(&cfg, CV_OK, err, sizeof err);
	memset(&s, 0, sizeof s);
	ck_assert_msg(synth(e, OVERFLOW_TEXT, NULL, 0, 1.0f, 3, &s, err, sizeof err) == CV_OK, "bf16: %s",
		      err);
	ck_assert_uint_gt(s.n, 0);
	for (size_t j = 0; j < s.n; j++)
		ck_assert(isfinite(s.pcm[j]));
	free(s.pcm);
	engine_close(e);
}
END_TEST

/* Through HTTP: the overflowing request is a 500 with the JSON envelope, counted; the daemon stays
 * ready and the next request is served. */
START_TEST(http_fp16_overflow_is_500)
{
	const char *const extra[] = {"--model", dtype_bundle("overflow-fp16"), "--cpu-half", "true", NULL};
	struct http_resp r;
	daemon_start_with(extra, NULL);
	http("POST", "/tts", "{\"text\":\"" OVERFLOW_TEXT "\",\"seed\":3}", &r);
	ck_assert_msg(r.status == 500, "status %ld", r.status);
	ck_assert_msg(r.body && r.body[0] == '{' && strstr(r.body, "numeric overflow"), "%s",
		      r.body ? r.body : "");
	free(r.body);
	ck_assert_double_eq(metric_value("cosyvoiced_engine_errors_total"), 1);
	http("GET", "/readyz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"Hello there.\",\"seed\":3}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	check_wav(&r);
	free(r.body);
	daemon_stop();
}
END_TEST

/* The daemon on cuda answers /tts and exports the GPU gauges. */
START_TEST(cuda_http_end_to_end)
{
	static const char *const cuda[] = {"--device", "cuda", NULL};
	struct http_resp r;
	daemon_start_with(cuda, NULL);
	http("POST", "/tts", "{\"text\":\"Hello world.\",\"seed\":1}", &r);
	ck_assert_msg(r.status == 200, "status %ld: %s", r.status, r.body ? r.body : "");
	check_wav(&r);
	free(r.body);
	http("POST", "/tts", "{\"text\":\"Hello world.\",\"seed\":1,\"stream\":true}", &r);
	ck_assert_msg(r.status == 200, "status %ld", r.status);
	free(r.body);
	ck_assert_msg(metric_value("cosyvoiced_engine_gpu_memory_allocated_bytes") > 0, "no GPU gauges");
	ck_assert_double_eq(metric_value("cosyvoiced_engine_llm_decode_cuda_graph"), 1);
	daemon_stop();
}
END_TEST

START_TEST(http_over_long_text)
{
	struct http_resp r;
	size_t n = 5000;
	char *body = malloc(n + 64);
	size_t o = (size_t)snprintf(body, 64, "{\"normalize\":false,\"text\":\"");
	for (size_t i = 0; i < n; i += 6)
		o += (size_t)snprintf(body + o, 8, "hello ");
	snprintf(body + o, 8, "\"}");
	daemon_start();
	http("POST", "/tts", body, &r);
	ck_assert_int_eq(r.status, 413);
	ck_assert_uint_gt(r.n, 0);
	free(r.body);
	http("GET", "/readyz", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	free(r.body);
	free(body);
	daemon_stop();
}
END_TEST

#else /* !CV_WITH_TORCH */

START_TEST(built_without_libtorch)
{
	struct engine_config cfg = {.backend = "cosyvoice2", .model_dir = "/tmp"};
	struct engine *e = NULL;
	char err[256] = "";
	ck_assert_int_eq(engine_open(&cfg, &e, err, sizeof err), CV_EUNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(err, "built without libtorch"));
	ck_assert_ptr_null(e);
}
END_TEST

#endif

Suite *suite_cosyvoice2(void);
Suite *suite_cosyvoice2(void)
{
	Suite *s = suite_create("cosyvoice2");
	TCase *tc = tcase_create("bundle");
	tcase_add_test(tc, sha256_vectors);
#if CV_WITH_TORCH
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, open_tiny_bundle);
	tcase_add_test(tc, open_reports_stages);
	tcase_add_test(tc, default_voice_is_stable);
	tcase_add_test(tc, unreadable_bundle_names_the_user);
	tcase_add_test(tc, old_driver_refused_with_the_way_out);
	tcase_add_test(tc, bad_bundle_missing_file);
	tcase_add_test(tc, bad_bundle_no_manifest);
	tcase_add_test(tc, bad_bundle_version);
	tcase_add_test(tc, bad_bundle_text_table);
	tcase_add_test(tc, bad_bundle_torch_version);
	tcase_add_test(tc, bad_bundle_hash_mismatch);
	tcase_add_test(tc, bad_fault_spec);
	tcase_add_test(tc, torch_version_mismatch_refused);
	tcase_add_test(tc, torch_lib_without_libtorch_named);
	tcase_add_test(tc, torch_build_torch_loads);
	suite_add_tcase(s, tc);
	tc = tcase_create("synth");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, cpu_runtime_maps_no_cuda_library);
	tcase_add_test(tc, cuda_plugin_serves_the_cpu);
	tcase_add_test(tc, text_table_read_in_place);
	tcase_add_test(tc, modes_produce_audio_and_seed_reproduces);
	tcase_add_test(tc, errors_are_clear);
	tcase_add_test(tc, cancel_between_chunks);
	tcase_add_test(tc, static_decode_equals_eager);
	tcase_add_test(tc, positions_and_memory_guard);
	tcase_add_test(tc, stream_first_chunk_after_first_hop);
	suite_add_tcase(s, tc);
	tc = tcase_create("dtype");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, half_bundle_refused_on_cpu);
	tcase_add_test(tc, bf16_bundle_serves_on_bf16_cpu);
	tcase_add_test(tc, half_bundles_serve_on_cpu);
	tcase_add_test(tc, fp16_overflow_fails_cleanly);
	tcase_add_test(tc, http_fp16_overflow_is_500);
	suite_add_tcase(s, tc);
	tc = tcase_create("parity");
	tcase_set_timeout(tc, 400);
	tcase_add_test(tc, parity_with_python_reference);
	suite_add_tcase(s, tc);
	tc = tcase_create("http");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, http_end_to_end);
	tcase_add_test(tc, http_over_long_text);
	tcase_add_test(tc, http_every_sentence_in_order);
	tcase_add_test(tc, http_failing_sentence_fails_request);
	tcase_add_test(tc, http_out_of_memory_fails_only_that_request);
	tcase_add_test(tc, http_over_budget_is_413);
	tcase_add_test(tc, http_voices_change_without_restart);
	tcase_add_test(tc, http_voice_routes_off_by_default);
	tcase_add_test(tc, http_voices_parallel_clients);
	suite_add_tcase(s, tc);
	if (getenv("CVTEST_CUDA") && strcmp(getenv("CVTEST_CUDA"), "1") == 0) {
		tc = tcase_create("cuda");
		tcase_set_timeout(tc, 600);
		tcase_add_test(tc, cuda_graph_decode_equals_eager);
		tcase_add_test(tc, cuda_memory_steady);
		tcase_add_test(tc, cuda_http_end_to_end);
		suite_add_tcase(s, tc);
	}
#else
	tcase_add_test(tc, built_without_libtorch);
	suite_add_tcase(s, tc);
#endif
	return s;
}
