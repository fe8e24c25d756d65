/* tests/unit/check_config.c — the settings table and every source of values.
 *
 * The test keeps its own list of keys (with two non-default values each) and
 * checks it against the keys config_print_json emits, so a key added to the
 * table without tests fails here. Environments are built as arrays and
 * passed in: nothing depends on the real environment.
 */
#include <check.h>
#include <ctype.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "daemon/config.h"
#include "tests/unit/testutil.h"

#define ERRLEN 512

struct tkey {
	const char *key;
	char type; /* 'i' int, 'b' bool, 's' string */
	size_t off;
	const char *t1, *j1; /* text form (env/flag) and JSON literal, non-default */
	const char *t2, *j2; /* a second, different value */
};

#define TK(k, t, a, ja, b, jb)                                  \
	{                                                       \
#k, t, offsetof(struct config, k), a, ja, b, jb \
	}

static const struct tkey tkeys[] = {
    TK(listen, 's', "::1", "\"::1\"", "0.0.0.0", "\"0.0.0.0\""),
    TK(port, 'i', "9000", "9000", "9001", "9001"),
    TK(http_threads, 'i', "4", "4", "8", "8"),
    TK(connection_limit, 'i', "100", "100", "200", "200"),
    TK(per_ip_connection_limit, 'i', "0", "0", "10", "10"),
    TK(connection_timeout_s, 'i', "5", "5", "60", "60"),
    TK(engine, 's', "espeak", "\"espeak\"", "cosyvoice2", "\"cosyvoice2\""),
    TK(model_dir, 's', "/models/cv2", "\"/models/cv2\"", "/models/other", "\"/models/other\""),
    TK(device, 's', "cpu", "\"cpu\"", "cuda", "\"cuda\""),
    TK(frontend_dir, 's', "/srv/bundle", "\"/srv/bundle\"", "/opt/fe", "\"/opt/fe\""),
    TK(espeak_data, 's', "/usr/share/espeak-ng-data", "\"/usr/share/espeak-ng-data\"", "/opt/espeak",
       "\"/opt/espeak\""),
    TK(default_speaker, 's', "en-us", "\"en-us\"", "de", "\"de\""),
    TK(voices_dir, 's', "/var/lib/v", "\"/var/lib/v\"", "/srv/voices", "\"/srv/voices\""),
    TK(max_voices, 'i', "1", "1", "10000", "10000"),
    TK(engine_threads, 'i', "2", "2", "3", "3"),
    TK(cpu_kernel_cache, 'i', "0", "0", "4096", "4096"),
    TK(warmup, 'b', "off", "false", "on", "true"),
    TK(cuda_graph, 'b', "off", "false", "on", "true"),
    TK(llm_max_positions, 'i', "256", "256", "65536", "65536"),
    TK(memory_budget_mb, 'i', "0", "0", "3072", "3072"),
    TK(cuda_memory_limit_mb, 'i', "3276", "3276", "0", "0"),
    TK(torch_lib, 's', "/opt/torch/lib", "\"/opt/torch/lib\"", "/usr/lib/torch", "\"/usr/lib/torch\""),
    TK(cpu_half, 'b', "on", "true", "off", "false"),
    TK(split_max_tokens, 'i', "4", "4", "512", "512"),
    TK(queue_capacity, 'i', "32", "32", "1", "1"),
    TK(deadline_ms, 'i', "5000", "5000", "100", "100"),
    TK(max_body_bytes, 'i', "1024", "1024", "2048", "2048"),
    TK(max_text_chars, 'i', "100", "100", "1000000", "1000000"),
    TK(max_audio_seconds, 'i', "30", "30", "7200", "7200"),
    TK(drain_timeout_ms, 'i', "0", "0", "500", "500"),
    TK(load_stall_timeout_ms, 'i', "1000", "1000", "3600000", "3600000"),
    TK(default_format, 's', "opus", "\"opus\"", "mp3", "\"mp3\""),
    TK(default_sample_rate, 'i', "24000", "24000", "48000", "48000"),
    TK(opus_bitrate, 'i', "64000", "64000", "6000", "6000"),
    TK(opus_complexity, 'i', "10", "10", "0", "0"),
    TK(mp3_bitrate_kbps, 'i', "128", "128", "320", "320"),
    TK(flac_level, 'i', "8", "8", "0", "0"),
    TK(api_keys, 's', "key-aaaa-1111,key-bbbb-2222", "\"key-aaaa-1111,key-bbbb-2222\"", "key-cccc-3333",
       "\"key-cccc-3333\""),
    TK(api_keys_file, 's', "/etc/cosyvoiced/keys", "\"/etc/cosyvoiced/keys\"", "/run/keys", "\"/run/keys\""),
    TK(admin_api_keys, 's', "admin-aaaa-1111", "\"admin-aaaa-1111\"", "admin-bbbb-2222",
       "\"admin-bbbb-2222\""),
    TK(max_voice_bytes, 'i', "1024", "1024", "67108864", "67108864"),
    TK(web_ui, 'b', "off", "false", "on", "true"),
    TK(cors_origins, 's', "https://a.example,http://b.example:8080",
       "\"https://a.example,http://b.example:8080\"", "*", "\"*\""),
    TK(log_level, 's', "debug", "\"debug\"", "error", "\"error\""),
    TK(access_log, 'b', "no", "false", "yes", "true"),
};
#define NTK (sizeof tkeys / sizeof tkeys[0])

static const struct tkey *tk_find(const char *key)
{
	for (size_t i = 0; i < NTK; i++)
		if (strcmp(tkeys[i].key, key) == 0)
			return &tkeys[i];
	ck_abort_msg("no test key %s", key);
	return NULL;
}

static int tk_int(const struct config *c, const struct tkey *k)
{
	return *(const int *)(const void *)((const char *)c + k->off);
}

static const char *tk_str(const struct config *c, const struct tkey *k)
{
	return (const char *)c + k->off;
}

/* Asserts that field k of c holds the value whose text form is t. */
static void tk_assert_value(const struct config *c, const struct tkey *k, const char *t)
{
	if (k->type == 's') {
		ck_assert_str_eq(tk_str(c, k), t);
	} else if (k->type == 'b') {
		int want = strcmp(t, "on") == 0 || strcmp(t, "yes") == 0;
		ck_assert_msg(tk_int(c, k) == want, "%s: %d != %d", k->key, tk_int(c, k), want);
	} else {
		ck_assert_msg(tk_int(c, k) == (int)strtol(t, NULL, 10), "%s: %d != %s", k->key, tk_int(c, k),
			      t);
	}
}

static void tk_env_name(char *dst, size_t cap, const char *key)
{
	int n = snprintf(dst, cap, "COSYVOICED_%s", key);
	ck_assert(n > 0 && (size_t)n < cap);
	for (char *p = dst; *p; p++)
		*p = (char)toupper((unsigned char)*p);
}

static int json_apply(struct config *c, const char *key, const char *jval, char *err)
{
	char doc[2048];
	snprintf(doc, sizeof doc, "{\"%s\": %s}", key, jval);
	return config_apply_json(c, doc, strlen(doc), "test.json", err, ERRLEN);
}

static int env_apply(struct config *c, const char *key, const char *val, char *err)
{
	char var[2048], name[128];
	tk_env_name(name, sizeof name, key);
	snprintf(var, sizeof var, "%s=%s", name, val);
	char *envp[] = {"PATH=/usr/bin", var, "HOME=/root", NULL};
	return config_apply_env(c, envp, err, ERRLEN);
}

static int flag_apply(struct config *c, const char *key, const char *val, char *err)
{
	char flag[128];
	snprintf(flag, sizeof flag, "--%s", key);
	char *argv[] = {"cosyvoiced", flag, (char *)val, NULL};
	struct config_cli cli;
	memset(&cli, 0, sizeof cli);
	return config_apply_args(c, &cli, 3, argv, err, ERRLEN);
}

static char *print_json(const struct config *c, size_t *len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	ck_assert_ptr_nonnull(f);
	config_print_json(f, c);
	ck_assert_int_eq(fclose(f), 0);
	*len = n;
	return out;
}

static char *print_help(void)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	ck_assert_ptr_nonnull(f);
	config_print_help(f, "cosyvoiced");
	ck_assert_int_eq(fclose(f), 0);
	return out;
}

/* Writes text to a fresh temporary file; returns its path (static buffer per slot). */
static const char *tmp_file(int slot, const char *text)
{
	static char paths[4][64];
	char *p = paths[slot];
	snprintf(p, sizeof paths[0], "/tmp/cv-config-test-XXXXXX");
	int fd = mkstemp(p);
	ck_assert_int_ge(fd, 0);
	size_t len = strlen(text);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return p;
}

static void set_all(struct config *c, int second)
{
	char err[ERRLEN];
	for (size_t i = 0; i < NTK; i++) {
		const char *v = second ? tkeys[i].t2 : tkeys[i].t1;
		ck_assert_msg(config_set(c, tkeys[i].key, v, err, sizeof err) == CV_OK, "%s", err);
	}
}

START_TEST(defaults_match_spec)
{
	struct config c;
	char err[ERRLEN];
	memset(&c, 0x5a, sizeof c);
	config_defaults(&c);
	ck_assert_str_eq(c.listen, "127.0.0.1");
	ck_assert_int_eq(c.port, 8080);
	ck_assert_int_eq(c.http_threads, 1);
	ck_assert_int_eq(c.connection_limit, 256);
	ck_assert_int_eq(c.per_ip_connection_limit, 64);
	ck_assert_int_eq(c.connection_timeout_s, 30);
	ck_assert_str_eq(c.engine, "auto");
	ck_assert_str_eq(c.model_dir, "");
	ck_assert_str_eq(c.device, "cuda");
	ck_assert_str_eq(c.frontend_dir, "");
	ck_assert_str_eq(c.espeak_data, "");
	ck_assert_str_eq(c.default_speaker, "");
	ck_assert_int_eq(c.engine_threads, 0);
	ck_assert_int_eq(c.cpu_kernel_cache, 128);
	ck_assert_int_eq(c.warmup, 1);
	ck_assert_int_eq(c.cuda_graph, 1);
	ck_assert_int_eq(c.llm_max_positions, 4096);
	ck_assert_int_eq(c.memory_budget_mb, -1);
	ck_assert_int_eq(c.split_max_tokens, 80);
	ck_assert_int_eq(c.queue_capacity, 16);
	ck_assert_int_eq(c.deadline_ms, 120000);
	ck_assert_int_eq(c.max_body_bytes, 65536);
	ck_assert_int_eq(c.max_text_chars, 4096);
	ck_assert_int_eq(c.max_audio_seconds, 600);
	ck_assert_int_eq(c.drain_timeout_ms, 10000);
	ck_assert_int_eq(c.load_stall_timeout_ms, 120000);
	ck_assert_str_eq(c.voices_dir, "");
	ck_assert_int_eq(c.max_voices, 256);
	ck_assert_str_eq(c.admin_api_keys, "");
	ck_assert_int_eq(c.max_voice_bytes, 4194304);
	ck_assert_int_eq(c.web_ui, 1);
	ck_assert_str_eq(c.default_format, "wav");
	ck_assert_int_eq(c.default_sample_rate, 0);
	ck_assert_int_eq(c.opus_bitrate, 32000);
	ck_assert_int_eq(c.opus_complexity, 5);
	ck_assert_int_eq(c.mp3_bitrate_kbps, 64);
	ck_assert_int_eq(c.flac_level, 5);
	ck_assert_str_eq(c.api_keys, "");
	ck_assert_str_eq(c.api_keys_file, "");
	ck_assert_str_eq(c.cors_origins, "");
	ck_assert_str_eq(c.log_level, "info");
	ck_assert_int_eq(c.access_log, 1);
	/* The whole struct is cleared first: string tails are zero. */
	ck_assert_int_eq(c.listen[sizeof c.listen - 1], 0);
	ck_assert_int_eq(c.api_keys[sizeof c.api_keys - 1], 0);
	ck_assert_msg(config_validate(&c, err, sizeof err) == CV_OK, "%s", err);

	/* config_load with nothing given equals the defaults. */
	struct config l;
	struct config_cli cli;
	char *argv[] = {"cosyvoiced", NULL};
	char *envp[] = {"PATH=/bin", NULL};
	ck_assert_msg(config_load(&l, &cli, 1, argv, envp, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_mem_eq(&l, &c, sizeof c);
	ck_assert_ptr_null(cli.config_path);
	ck_assert_int_eq(cli.help + cli.version + cli.check_config + cli.print_config, 0);
}
END_TEST

/* The test's key list is exactly the table's key list, in table order. */
START_TEST(test_table_covers_every_key)
{
	struct config c;
	size_t len, n = 0;
	config_defaults(&c);
	char *out = print_json(&c, &len);
	json_error_t jerr;
	json_t *root = json_loadb(out, len, JSON_REJECT_DUPLICATES, &jerr);
	ck_assert_msg(root != NULL, "%s", jerr.text);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (key[0] == '#')
			continue;
		ck_assert_uint_lt(n, NTK);
		ck_assert_str_eq(key, tkeys[n].key);
		n++;
	}
	ck_assert_uint_eq(n, NTK);
	json_decref(root);
	free(out);
}
END_TEST

START_TEST(every_key_via_file_env_flag)
{
	char err[ERRLEN];
	struct config def, viafile, viaenv, viaflag, viaset;
	config_defaults(&def);
	for (size_t i = 0; i < NTK; i++) {
		const struct tkey *k = &tkeys[i];
		config_defaults(&viafile);
		config_defaults(&viaenv);
		config_defaults(&viaflag);
		config_defaults(&viaset);
		ck_assert_msg(json_apply(&viafile, k->key, k->j1, err) == CV_OK, "%s: %s", k->key, err);
		ck_assert_msg(env_apply(&viaenv, k->key, k->t1, err) == CV_OK, "%s: %s", k->key, err);
		ck_assert_msg(flag_apply(&viaflag, k->key, k->t1, err) == CV_OK, "%s: %s", k->key, err);
		ck_assert_msg(config_set(&viaset, k->key, k->t1, err, sizeof err) == CV_OK, "%s: %s", k->key,
			      err);
		tk_assert_value(&viafile, k, k->t1);
		ck_assert_msg(memcmp(&viafile, &def, sizeof def) != 0, "%s: value 1 is the default", k->key);
		ck_assert_mem_eq(&viafile, &viaenv, sizeof def);
		ck_assert_mem_eq(&viafile, &viaflag, sizeof def);
		ck_assert_mem_eq(&viafile, &viaset, sizeof def);
		/* The second value through each source too. */
		ck_assert_msg(json_apply(&viafile, k->key, k->j2, err) == CV_OK, "%s: %s", k->key, err);
		ck_assert_msg(env_apply(&viaenv, k->key, k->t2, err) == CV_OK, "%s: %s", k->key, err);
		ck_assert_msg(flag_apply(&viaflag, k->key, k->t2, err) == CV_OK, "%s: %s", k->key, err);
		tk_assert_value(&viafile, k, k->t2);
		ck_assert_mem_eq(&viafile, &viaenv, sizeof def);
		ck_assert_mem_eq(&viafile, &viaflag, sizeof def);
	}
}
END_TEST

START_TEST(flag_spellings)
{
	char err[ERRLEN];
	struct config c;
	struct config_cli cli;
	config_defaults(&c);
	memset(&cli, 0, sizeof cli);
	char *argv[] = {"cosyvoiced",
			"--max-body-bytes=2048",
			"--max_text_chars",
			"77",
			"--per-ip_connection-limit",
			"5",
			"--listen=::",
			"--api-keys=",
			"--config",
			"/x.json",
			"-h",
			"--version",
			"--check-config",
			"--print_config",
			"--warmup=0"};
	int argc = (int)(sizeof argv / sizeof argv[0]);
	ck_assert_msg(config_apply_args(&c, &cli, argc, argv, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.max_body_bytes, 2048);
	ck_assert_int_eq(c.max_text_chars, 77);
	ck_assert_int_eq(c.per_ip_connection_limit, 5);
	ck_assert_str_eq(c.listen, "::");
	ck_assert_str_eq(c.api_keys, "");
	ck_assert_int_eq(c.warmup, 0);
	ck_assert_str_eq(cli.config_path, "/x.json");
	ck_assert_int_eq(cli.help, 1);
	ck_assert_int_eq(cli.version, 1);
	ck_assert_int_eq(cli.check_config, 1);
	ck_assert_int_eq(cli.print_config, 1);

	memset(&cli, 0, sizeof cli);
	char *argv2[] = {"cosyvoiced", "-V", "--help", "--config=/y.json"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 4, argv2, err, sizeof err), CV_OK);
	ck_assert_int_eq(cli.help, 1);
	ck_assert_int_eq(cli.version, 1);
	ck_assert_int_eq(cli.check_config, 0);
	ck_assert_str_eq(cli.config_path, "/y.json");

	/* --model is the short form of --model-dir */
	char *argv3[] = {"cosyvoiced", "--model", "/srv/cv2", "--device=cpu"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 4, argv3, err, sizeof err), CV_OK);
	ck_assert_str_eq(c.model_dir, "/srv/cv2");
	char *argv4[] = {"cosyvoiced", "--model=/srv/other"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, argv4, err, sizeof err), CV_OK);
	ck_assert_str_eq(c.model_dir, "/srv/other");
}
END_TEST

START_TEST(flag_errors)
{
	char err[ERRLEN];
	struct config c, before;
	struct config_cli cli;
	config_defaults(&c);
	before = c;
	memset(&cli, 0, sizeof cli);
	/* Unknown flag named; earlier flags of the same call not applied. */
	char *a1[] = {"cosyvoiced", "--port=81", "--bogus-flag=3"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 3, a1, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--bogus-flag"));
	ck_assert_ptr_null(strstr(err, "=3"));
	ck_assert_mem_eq(&c, &before, sizeof c);
	char *a2[] = {"cosyvoiced", "--port"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, a2, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--port"));
	ck_assert_ptr_nonnull(strstr(err, "needs a value"));
	char *a3[] = {"cosyvoiced", "port=81"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, a3, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "port=81"));
	char *a4[] = {"cosyvoiced", "--help=yes"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, a4, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--help"));
	char *a5[] = {"cosyvoiced", "-p", "81"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 3, a5, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "-p"));
	char *a6[] = {"cosyvoiced", "--port", "8o"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 3, a6, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--port"));
	ck_assert_ptr_nonnull(strstr(err, "not an integer"));
	char *a7[] = {"cosyvoiced", "--config="};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, a7, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "--config"));
	char *a8[] = {"cosyvoiced", "--"};
	ck_assert_int_eq(config_apply_args(&c, &cli, 2, a8, err, sizeof err), CV_EINVAL);
	ck_assert_mem_eq(&c, &before, sizeof c);
}
END_TEST

START_TEST(precedence_every_key)
{
	char err[ERRLEN];
	struct config c;
	for (size_t i = 0; i < NTK; i++) {
		const struct tkey *k = &tkeys[i];
		for (int swap = 0; swap < 2; swap++) {
			const char *lo_t = swap ? k->t2 : k->t1, *lo_j = swap ? k->j2 : k->j1;
			const char *hi_t = swap ? k->t1 : k->t2;
			/* env > file */
			config_defaults(&c);
			ck_assert_int_eq(json_apply(&c, k->key, lo_j, err), CV_OK);
			ck_assert_int_eq(env_apply(&c, k->key, hi_t, err), CV_OK);
			tk_assert_value(&c, k, hi_t);
			/* flag > env */
			config_defaults(&c);
			ck_assert_int_eq(env_apply(&c, k->key, lo_t, err), CV_OK);
			ck_assert_int_eq(flag_apply(&c, k->key, hi_t, err), CV_OK);
			tk_assert_value(&c, k, hi_t);
			/* file > default */
			config_defaults(&c);
			ck_assert_int_eq(json_apply(&c, k->key, lo_j, err), CV_OK);
			tk_assert_value(&c, k, lo_t);
		}
	}
}
END_TEST

START_TEST(precedence_config_load)
{
	char err[ERRLEN];
	struct config c;
	struct config_cli cli;
	const char *file = tmp_file(0, "{\"port\": 1001, \"engine\": \"espeak\", \"warmup\": false, "
				       "\"log_level\": \"warn\", \"flac_level\": 1}");
	const char *file2 = tmp_file(1, "{\"port\": 2001, \"flac_level\": 2}");
	char cfgenv[128];
	snprintf(cfgenv, sizeof cfgenv, "COSYVOICED_CONFIG=%s", file2);

	char *env_all[] = {"COSYVOICED_PORT=1002", "COSYVOICED_LOG_LEVEL=debug", "COSYVOICED_WARMUP=yes",
			   NULL};
	char *env_none[] = {NULL};
	char *env_cfg[] = {cfgenv, "COSYVOICED_PORT=", NULL};
	char *argv_all[] = {"cosyvoiced", "--port", "1003", "--config", (char *)file, "--log-level=error"};
	char *argv_file[] = {"cosyvoiced", "--config", (char *)file};
	char *argv_none[] = {"cosyvoiced"};

	/* flag > env > file > default, through config_load (flags come first in argv
	 * but still win). */
	ck_assert_msg(config_load(&c, &cli, 6, argv_all, env_all, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 1003);
	ck_assert_str_eq(c.log_level, "error");
	ck_assert_int_eq(c.warmup, 1);	      /* env over file */
	ck_assert_str_eq(c.engine, "espeak"); /* file over default */
	ck_assert_int_eq(c.flac_level, 1);
	ck_assert_int_eq(c.http_threads, 1); /* default */
	ck_assert_str_eq(cli.config_path, file);

	ck_assert_msg(config_load(&c, &cli, 3, argv_file, env_all, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 1002);
	ck_assert_str_eq(c.log_level, "debug");

	ck_assert_msg(config_load(&c, &cli, 3, argv_file, env_none, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 1001);
	ck_assert_int_eq(c.warmup, 0);
	ck_assert_str_eq(c.log_level, "warn");

	ck_assert_msg(config_load(&c, &cli, 1, argv_none, env_none, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 8080);
	ck_assert_int_eq(c.flac_level, 5);

	/* COSYVOICED_CONFIG is used without --config, ignored with it. */
	char *env_cfg_only[] = {cfgenv, NULL};
	ck_assert_msg(config_load(&c, &cli, 1, argv_none, env_cfg_only, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 2001);
	ck_assert_int_eq(c.flac_level, 2);
	ck_assert_ptr_null(cli.config_path);
	ck_assert_msg(config_load(&c, &cli, 3, argv_file, env_cfg_only, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 1001);
	ck_assert_int_eq(c.flac_level, 1);

	/* A bad env value fails the load and names the variable; c is untouched. */
	struct config before = c;
	ck_assert_int_eq(config_load(&c, &cli, 1, argv_none, env_cfg, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "COSYVOICED_PORT"));
	ck_assert_mem_eq(&c, &before, sizeof c);

	/* Missing config file named. */
	char *argv_missing[] = {"cosyvoiced", "--config", "/nonexistent/cv.json"};
	ck_assert_int_eq(config_load(&c, &cli, 3, argv_missing, env_none, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/cv.json"));

	/* --help works whatever the rest says. */
	char *argv_help[] = {"cosyvoiced", "--help", "--config", "/nonexistent/cv.json"};
	char *env_bad[] = {"COSYVOICED_PORT=0", "COSYVOICED_NOPE=1", NULL};
	ck_assert_int_eq(config_load(&c, &cli, 4, argv_help, env_bad, err, sizeof err), CV_OK);
	ck_assert_int_eq(cli.help, 1);

	unlink(file);
	unlink(file2);
}
END_TEST

START_TEST(unknown_keys_named)
{
	char err[ERRLEN];
	struct config c, before;
	config_defaults(&c);
	before = c;
	const char *doc = "{\"port\": 81, \"no_such_key\": 1}";
	ck_assert_int_eq(config_apply_json(&c, doc, strlen(doc), "f.json", err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no_such_key"));
	ck_assert_ptr_nonnull(strstr(err, "f.json"));
	ck_assert_mem_eq(&c, &before, sizeof c); /* port not half-applied */

	/* Comments are ignored, whatever their value. */
	doc = "{\"#\": 1, \"#port\": [\"x\"], \"#no_such_key\": null, \"port\": 82}";
	ck_assert_msg(config_apply_json(&c, doc, strlen(doc), NULL, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 82);
	c = before;

	char *envp[] = {"COSYVOICED_PORT=83", "COSYVOICED_PROT=84", NULL};
	ck_assert_int_eq(config_apply_env(&c, envp, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "COSYVOICED_PROT"));
	ck_assert_mem_eq(&c, &before, sizeof c);

	/* Tool variables and foreign variables are ignored. */
	char *envp_ok[] = {"CVTEST_BIN=/x",
			   "CVTEST_VALGRIND=1",
			   "CV_CACHE_DIR=/c",
			   "COSYVOICED_CONFIG=",
			   "PORT=1",
			   "cosyvoiced_port=2",
			   "COSYVOICED_PORT=85",
			   "COSYVOICED_PORT=86",
			   NULL};
	ck_assert_msg(config_apply_env(&c, envp_ok, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.port, 85); /* first wins, as getenv */
	ck_assert_int_eq(config_apply_env(&c, NULL, err, sizeof err), CV_OK);

	ck_assert_int_eq(config_set(&c, "no_such_key", "1", err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no_such_key"));
}
END_TEST

/* Test and tool variables live outside COSYVOICED_*: every one the suites, tools/release/gpu-check.sh and the
 * Makefile set passes the loader, and the old COSYVOICED_* spellings are refused like any unknown
 * setting (so no production variable is ever silently ignored). Then the same against the real
 * binary: it starts (--check-config) with all of them in its environment. */
static const char *const test_vars[] = {"CVTEST_BIN=/x",
					"CVTEST_VALGRIND=1",
					"CVTEST_KEEP_LOGS=1",
					"CVTEST_FRONTEND_DIR=/f",
					"CVTEST_CUDA=1",
					"CVTEST_DEVICE=cuda",
					"CVTEST_FAULT=flow_inference:1",
					"CVTEST_STATIC_DECODE=1",
					"CVTEST_JIT_OPTIMIZE=1",
					"CVTEST_CUDA_VERSIONS=12040:13020",
					"CVTEST_LOAD_HANG=warm-up:1",
					"CVTEST_NVML_LIB=/n.so",
					"CV_CACHE_DIR=/c",
					"CV_BASE_PYTHON=python3",
					"CV_TOKENIZER_DIR=/t",
					NULL};

START_TEST(test_variables_never_block_start)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	ck_assert_msg(config_apply_env(&c, (char **)test_vars, err, sizeof err) == CV_OK, "%s", err);
	static const char *const old[] = {"COSYVOICED_BIN",	  "COSYVOICED_VALGRIND",
					  "COSYVOICED_CACHE",	  "COSYVOICED_FAULT",
					  "COSYVOICED_TEST_CUDA", "COSYVOICED_TEST_DEVICE",
					  "COSYVOICED_NVML_LIB",  "COSYVOICED_STATIC_DECODE"};
	for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
		char var[64];
		snprintf(var, sizeof var, "%s=1", old[i]);
		char *envp[] = {var, NULL};
		ck_assert_int_eq(config_apply_env(&c, envp, err, sizeof err), CV_EINVAL);
		ck_assert_msg(strstr(err, old[i]) != NULL, "%s", err);
	}

	const char *bin = getenv("CVTEST_BIN");
	ck_assert_msg(bin && bin[0], "CVTEST_BIN (the daemon binary) is not set: run through make check");
	char cmd[2048];
	size_t n = (size_t)snprintf(cmd, sizeof cmd, "env");
	for (size_t i = 0; test_vars[i]; i++)
		n += (size_t)snprintf(cmd + n, sizeof cmd - n, " '%s'", test_vars[i]);
	snprintf(cmd + n, sizeof cmd - n, " '%s' --check-config >/dev/null 2>&1 && echo started", bin);
	char *line = test_run_line(cmd);
	ck_assert_msg(line && strcmp(line, "started") == 0, "daemon refused the test variables: %s", cmd);
	free(line);
	snprintf(cmd, sizeof cmd, "env COSYVOICED_TEST_CUDA=1 '%s' --check-config 2>&1 >/dev/null | head -n1",
		 bin);
	line = test_run_line(cmd);
	ck_assert_msg(line && strstr(line, "COSYVOICED_TEST_CUDA"), "old variable not refused: %s",
		      line ? line : "(nothing)");
	free(line);
}
END_TEST

START_TEST(int_range_refused)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	ck_assert_int_eq(json_apply(&c, "port", "70000", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "\"port\""));
	ck_assert_ptr_nonnull(strstr(err, "1..65535"));
	ck_assert_int_eq(json_apply(&c, "port", "0", err), CV_EINVAL);
	ck_assert_int_eq(json_apply(&c, "port", "-1", err), CV_EINVAL);
	ck_assert_int_eq(json_apply(&c, "port", "99999999999999", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "1..65535"));
	ck_assert_int_eq(env_apply(&c, "http_threads", "17", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "COSYVOICED_HTTP_THREADS"));
	ck_assert_ptr_nonnull(strstr(err, "1..16"));
	ck_assert_int_eq(flag_apply(&c, "deadline_ms", "99", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "deadline_ms"));
	ck_assert_ptr_nonnull(strstr(err, "100..3600000"));
	ck_assert_int_eq(flag_apply(&c, "port", "99999999999999999999999", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "out of range"));
	ck_assert_int_eq(flag_apply(&c, "port", "", err), CV_EINVAL);
	ck_assert_int_eq(flag_apply(&c, "port", " 80", err), CV_EINVAL);
	ck_assert_int_eq(flag_apply(&c, "port", "80 ", err), CV_EINVAL);
	ck_assert_int_eq(flag_apply(&c, "port", "0x50", err), CV_EINVAL);
	/* Boundaries are inclusive. */
	ck_assert_int_eq(flag_apply(&c, "port", "65535", err), CV_OK);
	ck_assert_int_eq(flag_apply(&c, "port", "+1", err), CV_OK);
	ck_assert_int_eq(c.port, 1);
	ck_assert_int_eq(json_apply(&c, "max_body_bytes", "16777216", err), CV_OK);
	ck_assert_int_eq(json_apply(&c, "max_body_bytes", "16777217", err), CV_EINVAL);
	/* Sets of allowed values. */
	ck_assert_int_eq(json_apply(&c, "mp3_bitrate_kbps", "65", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "mp3_bitrate_kbps"));
	ck_assert_int_eq(json_apply(&c, "mp3_bitrate_kbps", "320", err), CV_OK);
	ck_assert_int_eq(json_apply(&c, "mp3_bitrate_kbps", "8", err), CV_OK);
	ck_assert_int_eq(json_apply(&c, "mp3_bitrate_kbps", "336", err), CV_EINVAL);
	ck_assert_int_eq(env_apply(&c, "default_sample_rate", "22051", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "22050"));
	ck_assert_int_eq(env_apply(&c, "default_sample_rate", "22050", err), CV_OK);
	ck_assert_int_eq(c.default_sample_rate, 22050);
	ck_assert_int_eq(env_apply(&c, "default_sample_rate", "0", err), CV_OK);
	ck_assert_int_eq(c.default_sample_rate, 0);
}
END_TEST

START_TEST(json_type_refused)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	ck_assert_int_eq(json_apply(&c, "port", "\"8080\"", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "port"));
	ck_assert_ptr_nonnull(strstr(err, "expected integer"));
	ck_assert_int_eq(json_apply(&c, "port", "8080.0", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "expected integer"));
	ck_assert_int_eq(json_apply(&c, "warmup", "1", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "warmup"));
	ck_assert_ptr_nonnull(strstr(err, "boolean"));
	ck_assert_int_eq(json_apply(&c, "warmup", "\"true\"", err), CV_EINVAL);
	ck_assert_int_eq(json_apply(&c, "listen", "5", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "listen"));
	ck_assert_ptr_nonnull(strstr(err, "expected string"));
	ck_assert_int_eq(json_apply(&c, "engine", "null", err), CV_EINVAL);
	ck_assert_int_eq(json_apply(&c, "cors_origins", "{}", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "cors_origins"));
	ck_assert_int_eq(json_apply(&c, "cors_origins", "[\"https://a.example\", 3]", err), CV_EINVAL);
	ck_assert_int_eq(json_apply(&c, "cors_origins", "[\"https://a.example,https://b\"]", err), CV_EINVAL);
	/* Lists may also be arrays of strings. */
	ck_assert_int_eq(json_apply(&c, "cors_origins", "[\"https://a.example\", \"http://b:81\"]", err),
			 CV_OK);
	ck_assert_str_eq(c.cors_origins, "https://a.example,http://b:81");
	ck_assert_int_eq(json_apply(&c, "api_keys", "[]", err), CV_OK);
	ck_assert_str_eq(c.api_keys, "");
	ck_assert_int_eq(c.port, 8080);
	ck_assert_int_eq(c.warmup, 1);
}
END_TEST

START_TEST(malformed_json_refused)
{
	char err[ERRLEN];
	struct config c, before;
	config_defaults(&c);
	before = c;
	const char *dup = "{\"port\": 81,\n \"port\": 82}";
	ck_assert_int_eq(config_apply_json(&c, dup, strlen(dup), "d.json", err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "d.json"));
	ck_assert_ptr_nonnull(strstr(err, "duplicate"));
	const char *trunc = "{\"port\": 81, \"listen\": \"::";
	ck_assert_int_eq(config_apply_json(&c, trunc, strlen(trunc), "t.json", err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "t.json"));
	/* Length is honoured: a valid prefix of a longer buffer. */
	const char *pre = "{\"port\": 81}garbage";
	ck_assert_int_eq(config_apply_json(&c, pre, 12, "p.json", err, sizeof err), CV_OK);
	ck_assert_int_eq(c.port, 81);
	ck_assert_int_eq(config_apply_json(&c, pre, strlen(pre), "p.json", err, sizeof err), CV_EINVAL);
	c = before;
	const char *nonobj[] = {"[1, 2]", "\"port\"", "42", "null", "true"};
	for (size_t i = 0; i < sizeof nonobj / sizeof nonobj[0]; i++) {
		ck_assert_int_eq(
		    config_apply_json(&c, nonobj[i], strlen(nonobj[i]), "n.json", err, sizeof err),
		    CV_EINVAL);
		ck_assert_msg(strstr(err, "object") != NULL, "%s: %s", nonobj[i], err);
	}
	ck_assert_int_eq(config_apply_json(&c, "", 0, "e.json", err, sizeof err), CV_EINVAL);
	ck_assert_int_eq(config_apply_json(&c, "{}", 2, "e.json", err, sizeof err), CV_OK);
	ck_assert_mem_eq(&c, &before, sizeof c);

	/* Through a real file too. */
	const char *path = tmp_file(0, "{\"port\": 81, \"port\": 81}");
	ck_assert_int_eq(config_apply_file(&c, path, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, path));
	unlink(path);
	path = tmp_file(0, "{\"#\": \"x\", \"queue_capacity\": 7}\n");
	ck_assert_msg(config_apply_file(&c, path, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_int_eq(c.queue_capacity, 7);
	unlink(path);
}
END_TEST

START_TEST(string_length_bounds)
{
	char err[ERRLEN];
	char val[CONFIG_LIST_MAX + 8], json[CONFIG_LIST_MAX + 16];
	struct config c;
	config_defaults(&c);
	memset(val, 'a', CONFIG_STR_MAX - 1);
	val[CONFIG_STR_MAX - 1] = '\0';
	ck_assert_int_eq(flag_apply(&c, "default_speaker", val, err), CV_OK); /* 255 bytes fit */
	ck_assert_uint_eq(strlen(c.default_speaker), CONFIG_STR_MAX - 1);
	memset(val, 'b', CONFIG_STR_MAX);
	val[CONFIG_STR_MAX] = '\0';
	ck_assert_int_eq(flag_apply(&c, "default_speaker", val, err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "default_speaker"));
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(c.default_speaker[0], 'a');
	snprintf(json, sizeof json, "\"%s\"", val);
	ck_assert_int_eq(json_apply(&c, "model_dir", json, err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "model_dir"));
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(env_apply(&c, "espeak_data", val, err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "COSYVOICED_ESPEAK_DATA"));
	/* Lists hold up to CONFIG_LIST_MAX - 1 bytes. */
	memset(val, 'k', CONFIG_LIST_MAX - 1);
	val[CONFIG_LIST_MAX - 1] = '\0';
	ck_assert_int_eq(flag_apply(&c, "api_keys", val, err), CV_OK);
	val[CONFIG_LIST_MAX - 1] = 'k';
	val[CONFIG_LIST_MAX] = '\0';
	ck_assert_int_eq(flag_apply(&c, "api_keys", val, err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "api_keys"));
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	snprintf(json, sizeof json, "[\"%s\"]", val);
	ck_assert_int_eq(json_apply(&c, "api_keys", json, err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	/* Control characters and bad UTF-8 are refused, good UTF-8 accepted. */
	ck_assert_int_eq(json_apply(&c, "model_dir", "\"/a\\nb\"", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "control"));
	ck_assert_int_eq(flag_apply(&c, "model_dir", "/a\xff", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
	ck_assert_int_eq(flag_apply(&c, "model_dir", "/a\xc0\xaf", err), CV_EINVAL); /* overlong */
	ck_assert_int_eq(flag_apply(&c, "model_dir", "/mod\xc3\xa8le/\xe2\x82\xac", err), CV_OK);
	ck_assert_int_eq(json_apply(&c, "model_dir", "\"/x\\u0000y\"", err), CV_EINVAL);
}
END_TEST

START_TEST(enum_values_checked)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	struct {
		const char *key, *bad;
	} bad[] = {{"engine", "tacotron"},    {"engine", "Espeak"},   {"device", "tpu"},
		   {"default_format", "aac"}, {"log_level", "trace"}, {"engine", ""}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(flag_apply(&c, bad[i].key, bad[i].bad, err), CV_EINVAL);
		ck_assert_msg(strstr(err, bad[i].key) != NULL, "%s", err);
		ck_assert_msg(strstr(err, "not one of") != NULL, "%s", err);
	}
	ck_assert_int_eq(env_apply(&c, "default_format", "ogg", err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "wav, opus, pcm, flac, mp3"));
	const char *ok[][2] = {
	    {"engine", "auto"},	       {"engine", "espeak"},	   {"engine", "cosyvoice2"},
	    {"device", "cpu"},	       {"device", "cuda"},	   {"default_format", "wav"},
	    {"default_format", "pcm"}, {"default_format", "flac"}, {"log_level", "warn"}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_int_eq(flag_apply(&c, ok[i][0], ok[i][1], err), CV_OK);
		ck_assert_str_eq(tk_str(&c, tk_find(ok[i][0])), ok[i][1]);
	}
}
END_TEST

START_TEST(bool_parsing)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	const char *yes[] = {"1", "true", "yes", "on", "TRUE", "Yes", "ON"};
	const char *no[] = {"0", "false", "no", "off", "FALSE", "No", "Off"};
	for (size_t i = 0; i < 7; i++) {
		ck_assert_int_eq(config_set(&c, "warmup", no[i], err, sizeof err), CV_OK);
		ck_assert_msg(c.warmup == 0, "%s", no[i]);
		ck_assert_int_eq(config_set(&c, "warmup", yes[i], err, sizeof err), CV_OK);
		ck_assert_msg(c.warmup == 1, "%s", yes[i]);
		ck_assert_int_eq(env_apply(&c, "access_log", no[i], err), CV_OK);
		ck_assert_int_eq(c.access_log, 0);
		ck_assert_int_eq(flag_apply(&c, "access_log", yes[i], err), CV_OK);
		ck_assert_int_eq(c.access_log, 1);
	}
	const char *bad[] = {"2", "", "y", "enable", "truee", " 1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(config_set(&c, "warmup", bad[i], err, sizeof err), CV_EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "warmup"));
	}
	ck_assert_int_eq(c.warmup, 1);
	ck_assert_int_eq(json_apply(&c, "warmup", "false", err), CV_OK);
	ck_assert_int_eq(c.warmup, 0);
	ck_assert_int_eq(json_apply(&c, "warmup", "true", err), CV_OK);
	ck_assert_int_eq(c.warmup, 1);
	ck_assert_int_eq(json_apply(&c, "warmup", "0", err), CV_EINVAL);
}
END_TEST

START_TEST(help_mentions_every_key)
{
	char *help = print_help();
	char flag[128], env[128];
	for (size_t i = 0; i < NTK; i++) {
		snprintf(flag, sizeof flag, "--%s ", tkeys[i].key);
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		tk_env_name(env, sizeof env, tkeys[i].key);
		ck_assert_msg(strstr(help, flag) != NULL, "help lacks %s", flag);
		ck_assert_msg(strstr(help, env) != NULL, "help lacks %s", env);
	}
	const char *rest[] = {"--config FILE",
			      "--help",
			      "-h",
			      "--version",
			      "-V",
			      "--check-config",
			      "--print-config",
			      "COSYVOICED_CONFIG",
			      "1..65535",
			      "default: 8080",
			      "auto, espeak, cosyvoice2"};
	for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
		ck_assert_msg(strstr(help, rest[i]) != NULL, "help lacks %s", rest[i]);
	free(help);
}
END_TEST

START_TEST(print_config_round_trips)
{
	char err[ERRLEN];
	struct config src, back;
	size_t len;
	for (int second = 0; second < 2; second++) {
		config_defaults(&src);
		set_all(&src, second);
		/* Characters that need JSON escaping survive too. */
		ck_assert_int_eq(config_set(&src, "default_speaker", "a\"b\\c/d \xc3\xa9", err, sizeof err),
				 CV_OK);
		char *out = print_json(&src, &len);
		ck_assert_uint_eq(len, strlen(out));
		config_defaults(&back);
		ck_assert_msg(config_apply_json(&back, out, len, "printed", err, sizeof err) == CV_OK, "%s",
			      err);
		ck_assert_mem_eq(&back, &src, sizeof src);
		/* Annotations: "#key" right before "key", with range and default. */
		json_error_t jerr;
		json_t *root = json_loadb(out, len, JSON_REJECT_DUPLICATES, &jerr);
		ck_assert_ptr_nonnull(root);
		const char *key, *prev = NULL;
		json_t *v;
		json_object_foreach(root, key, v)
		{
			if (key[0] != '#') {
				ck_assert_ptr_nonnull(prev);
				ck_assert_str_eq(prev + 1, key);
			} else if (key[1] != '\0') {
				const char *note = json_string_value(v);
				ck_assert_ptr_nonnull(note);
				ck_assert_ptr_nonnull(strstr(note, ". Range/values: "));
				ck_assert_ptr_nonnull(strstr(note, ". Default: "));
			}
			prev = key;
		}
		json_t *port = json_object_get(root, "#port");
		ck_assert_str_eq(json_string_value(port),
				 "TCP port to listen on. Range/values: 1..65535. Default: 8080.");
		json_decref(root);
		free(out);
	}
}
END_TEST

START_TEST(sample_file_is_rendered_defaults)
{
	struct config c;
	size_t len;
	config_defaults(&c);
	char *want = print_json(&c, &len);
	FILE *f = fopen("config/cosyvoiced.json", "rb");
	ck_assert_msg(f != NULL, "config/cosyvoiced.json must be readable from the repo root");
	char *got = malloc(len + 2);
	ck_assert_ptr_nonnull(got);
	size_t n = fread(got, 1, len + 2, f);
	fclose(f);
	ck_assert_msg(n == len && memcmp(got, want, len) == 0,
		      "config/cosyvoiced.json differs from config_print_json(defaults): regenerate it with "
		      "`build/cosyvoiced --print-config > config/cosyvoiced.json` (no other settings)");
	free(got);
	free(want);
}
END_TEST

START_TEST(validate_cross_checks)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "engine", "cosyvoice2", err, sizeof err), CV_OK);
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "model_dir"));
	ck_assert_int_eq(config_set(&c, "model_dir", "/models/cv2", err, sizeof err), CV_OK);
	ck_assert_msg(config_validate(&c, err, sizeof err) == CV_OK, "%s", err);

	/* Through config_load: the flag set names the problem. */
	char *argv[] = {"cosyvoiced", "--engine=cosyvoice2"};
	char *envp[] = {NULL};
	struct config_cli cli;
	ck_assert_int_eq(config_load(&c, &cli, 2, argv, envp, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "model_dir"));
	char *envp_md[] = {"COSYVOICED_MODEL_DIR=/m", NULL};
	ck_assert_msg(config_load(&c, &cli, 2, argv, envp_md, err, sizeof err) == CV_OK, "%s", err);

	/* listen must be an address literal. */
	config_defaults(&c);
	const char *bad_listen[] = {"localhost", "[::1]", "127.0.0.256", "", "1.2.3.4 ", "::1%lo"};
	for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++) {
		ck_assert_msg(config_set(&c, "listen", bad_listen[i], err, sizeof err) == CV_EINVAL, "%s",
			      bad_listen[i]);
		ck_assert_ptr_nonnull(strstr(err, "listen"));
	}
	const char *good_listen[] = {"0.0.0.0", "::", "::1", "fe80::1", "10.1.2.3"};
	for (size_t i = 0; i < sizeof good_listen / sizeof good_listen[0]; i++)
		ck_assert_msg(config_set(&c, "listen", good_listen[i], err, sizeof err) == CV_OK, "%s", err);

	/* cors_origins syntax. */
	const char *bad_cors[] = {"example.com", "https://", "https://a.example/", "ftp://a", "https://a b"};
	for (size_t i = 0; i < sizeof bad_cors / sizeof bad_cors[0]; i++) {
		ck_assert_msg(config_set(&c, "cors_origins", bad_cors[i], err, sizeof err) == CV_EINVAL, "%s",
			      bad_cors[i]);
		ck_assert_ptr_nonnull(strstr(err, "cors_origins"));
	}
	ck_assert_int_eq(
	    config_set(&c, "cors_origins", " https://a.example , http://[::1]:8080,*", err, sizeof err),
	    CV_OK);

	/* A hand-filled struct is checked field by field too. */
	config_defaults(&c);
	c.port = 0;
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "port"));
	config_defaults(&c);
	c.mp3_bitrate_kbps = 100;
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "mp3_bitrate_kbps"));
	config_defaults(&c);
	memset(c.device, 'x', sizeof c.device);
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "device"));
	config_defaults(&c);
	memcpy(c.default_format, "aac", 4);
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "default_format"));

	/* api_keys_file must be readable. */
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "api_keys_file", "/nonexistent/keys", err, sizeof err), CV_OK);
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/keys"));
	ck_assert_int_eq(config_set(&c, "api_keys_file", "/dev/null", err, sizeof err), CV_OK);
	ck_assert_msg(config_validate(&c, err, sizeof err) == CV_OK, "%s", err);
}
END_TEST

START_TEST(api_keys_merged_and_checked)
{
	char err[ERRLEN];
	struct config c;
	char **keys = (char **)1;
	size_t n = 99;
	config_defaults(&c);
	ck_assert_int_eq(config_read_api_keys(&c, &keys, &n, err, sizeof err), CV_OK);
	ck_assert_ptr_null(keys);
	ck_assert_uint_eq(n, 0);
	config_free_api_keys(NULL, 0);

	const char *path = tmp_file(0, "# keys for cosyvoiced\n"
				       "\n"
				       "   file-key-0001   \n"
				       "\t# indented comment\n"
				       "file-key-0002\r\n"
				       "file-key-0003"); /* no final newline */
	ck_assert_int_eq(config_set(&c, "api_keys", " inline-key-1 ,, inline-key-2,", err, sizeof err),
			 CV_OK);
	ck_assert_int_eq(config_set(&c, "api_keys_file", path, err, sizeof err), CV_OK);
	ck_assert_msg(config_read_api_keys(&c, &keys, &n, err, sizeof err) == CV_OK, "%s", err);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(keys[0], "inline-key-1");
	ck_assert_str_eq(keys[1], "inline-key-2");
	ck_assert_str_eq(keys[2], "file-key-0001");
	ck_assert_str_eq(keys[3], "file-key-0002");
	ck_assert_str_eq(keys[4], "file-key-0003");
	config_free_api_keys(keys, n);
	ck_assert_msg(config_validate(&c, err, sizeof err) == CV_OK, "%s", err);
	unlink(path);

	/* A short key: refused with its line, the key itself never echoed. */
	path = tmp_file(0, "good-key-0001\n# c\nshort7x\n");
	ck_assert_int_eq(config_set(&c, "api_keys_file", path, err, sizeof err), CV_OK);
	keys = (char **)1;
	ck_assert_int_eq(config_read_api_keys(&c, &keys, &n, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_null(keys);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_nonnull(strstr(err, "line 3"));
	ck_assert_ptr_nonnull(strstr(err, "shorter than 8"));
	ck_assert_ptr_null(strstr(err, "short7x"));
	ck_assert_int_eq(config_validate(&c, err, sizeof err), CV_EINVAL);
	unlink(path);

	path = tmp_file(0, "good-key-0001\nbad key with spaces\n");
	ck_assert_int_eq(config_set(&c, "api_keys_file", path, err, sizeof err), CV_OK);
	ck_assert_int_eq(config_read_api_keys(&c, &keys, &n, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 2"));
	ck_assert_ptr_nonnull(strstr(err, "whitespace"));
	unlink(path);

	ck_assert_int_eq(config_set(&c, "api_keys_file", "/nonexistent/keys", err, sizeof err), CV_OK);
	ck_assert_int_eq(config_read_api_keys(&c, &keys, &n, err, sizeof err), CV_EIO);

	/* Inline keys are checked when set. */
	ck_assert_int_eq(config_set(&c, "api_keys", "long-enough-key,short", err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "api_keys"));
	ck_assert_ptr_nonnull(strstr(err, "#2"));
	ck_assert_ptr_null(strstr(err, "short,"));
	ck_assert_int_eq(config_set(&c, "api_keys", "has\ttab-inside", err, sizeof err), CV_EINVAL);
	char *envp[] = {"COSYVOICED_API_KEYS=1234567", NULL};
	ck_assert_int_eq(config_apply_env(&c, envp, err, sizeof err), CV_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "COSYVOICED_API_KEYS"));
	ck_assert_ptr_null(strstr(err, "1234567"));
}
END_TEST

START_TEST(log_effective_masks_keys)
{
	char err[ERRLEN];
	struct config c;
	config_defaults(&c);
	ck_assert_int_eq(config_set(&c, "api_keys", "secret-key-one,secret-key-two", err, sizeof err), CV_OK);
	ck_assert_int_eq(config_set(&c, "admin_api_keys", "secret-admin-1", err, sizeof err), CV_OK);
	ck_assert_int_eq(config_set(&c, "port", "9123", err, sizeof err), CV_OK);
	struct test_stderr cap;
	ck_assert_int_eq(test_stderr_capture(&cap), 0);
	config_log_effective(&c);
	char *buf = test_stderr_release(&cap);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_gt(strlen(buf), 0);
	ck_assert_ptr_null(strstr(buf, "secret-key"));
	ck_assert_ptr_nonnull(strstr(buf, "api_keys=*** (2 keys)"));
	ck_assert_ptr_nonnull(strstr(buf, "admin_api_keys=*** (1 key)"));
	ck_assert_ptr_nonnull(strstr(buf, "port=9123"));
	size_t lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	ck_assert_uint_eq(lines, NTK);
	for (size_t i = 0; i < NTK; i++) {
		char want[128];
		snprintf(want, sizeof want, "msg=\"%s=", tkeys[i].key);
		ck_assert_msg(strstr(buf, want) != NULL, "log lacks %s", tkeys[i].key);
	}
	free(buf);
}
END_TEST

Suite *suite_config(void);
Suite *suite_config(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("sources");
	tcase_add_test(tc, defaults_match_spec);
	tcase_add_test(tc, test_table_covers_every_key);
	tcase_add_test(tc, every_key_via_file_env_flag);
	tcase_add_test(tc, flag_spellings);
	tcase_add_test(tc, flag_errors);
	tcase_add_test(tc, precedence_every_key);
	tcase_add_test(tc, precedence_config_load);
	tcase_add_test(tc, unknown_keys_named);
	tcase_add_test(tc, test_variables_never_block_start);
	suite_add_tcase(s, tc);
	tc = tcase_create("values");
	tcase_add_test(tc, int_range_refused);
	tcase_add_test(tc, json_type_refused);
	tcase_add_test(tc, malformed_json_refused);
	tcase_add_test(tc, string_length_bounds);
	tcase_add_test(tc, enum_values_checked);
	tcase_add_test(tc, bool_parsing);
	suite_add_tcase(s, tc);
	tc = tcase_create("output");
	tcase_add_test(tc, help_mentions_every_key);
	tcase_add_test(tc, print_config_round_trips);
	tcase_add_test(tc, sample_file_is_rendered_defaults);
	tcase_add_test(tc, log_effective_masks_keys);
	suite_add_tcase(s, tc);
	tc = tcase_create("validate");
	tcase_add_test(tc, validate_cross_checks);
	tcase_add_test(tc, api_keys_merged_and_checked);
	suite_add_tcase(s, tc);
	return s;
}
