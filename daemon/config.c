/* daemon/config.c — every setting from one table: defaults, file, env, flags,
 * validation, --help, the annotated JSON dump and the start-up log.
 *
 * DESIGN: one static table (Redis static_configs[] style) lists each key with
 * its type, offset into struct config, bounds or allowed values, default,
 * environment variable and meaning. Everything else is a loop over that
 * table, so a new setting is one struct field plus one table line, and no
 * consumer (parser, --help, sample file, log) can forget it. The table macros
 * derive the key name from the field name and check the field's C type at
 * compile time. Each source (file, env, flags) is applied to a copy that is
 * committed only when the whole source parsed, so a failed load never leaves
 * a half-applied struct, and every error names the key, flag or variable.
 * Strings must be valid UTF-8 without control characters, so that every
 * value can be dumped as JSON and logged on one line; the dump is written by
 * jansson, so it is valid JSON by construction and config_apply_json reads
 * it back to the identical struct (tests rely on this: memcmp-equal).
 */
#include "daemon/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/utf8.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/version.h"

#define CONFIG_FILE_MAX	    (1024 * 1024) /* config file and api_keys_file cap */
#define CONFIG_KEY_LINE_MAX 4096	  /* longest api_keys_file line */
#define CONFIG_API_KEY_MIN  8		  /* shortest accepted API key */
#define CONFIG_WHY_MAX	    512		  /* one error reason before its prefix */
#define CONFIG_NAME_MAX	    64		  /* longest flag name we look up */

enum config_type {
	CONFIG_TYPE_INT,
	CONFIG_TYPE_BOOL,
	CONFIG_TYPE_STRING,
	CONFIG_TYPE_ENUM, /* string, one of words[] */
	CONFIG_TYPE_LIST  /* comma-separated string (a JSON array of strings is also read) */
};

struct config_entry {
	const char *name; /* == the struct field name (snake_case) */
	const char *env;  /* COSYVOICED_<NAME upper-cased> */
	enum config_type type;
	size_t offset;
	size_t size;		  /* field size; strings hold size - 1 bytes */
	long long min, max;	  /* ints: inclusive range */
	const int *ints;	  /* ints: allowed values (-1 ends), NULL = any in range */
	const char *const *words; /* enums: allowed values, NULL-terminated */
	long long def_int;	  /* ints and bools */
	const char *def_str;	  /* strings */
	/* Extra check of a string value; writes the reason to why. */
	int (*check)(const char *value, char *why, size_t whylen);
	const char *values; /* "Range/values" text for strings (NULL: generic) */
	const char *arg;    /* metavariable in --help */
	const char *help;   /* meaning, one sentence without final period */
};

/* Compile-time check that field f has type T (as sizeof operand: never
 * evaluated, folds to 0; a wrong type is a distinct-pointer error). */
#define CFG_IS(f, T)  (0 * sizeof(&((struct config *)0)->f == (T *)0))
#define CFG_IS_STR(f) (0 * sizeof(&((struct config *)0)->f[0] == (char *)0))
#define CFG_BASE(f, ENV, t) \
	.name = #f, .env = "COSYVOICED_" #ENV, .type = t, .size = sizeof(((struct config *)0)->f)
#define CFG_INT(f, ENV, lo, hi, set, def, metavar, text)                                                  \
	{                                                                                                 \
		CFG_BASE(f, ENV, CONFIG_TYPE_INT), .offset = offsetof(struct config, f) + CFG_IS(f, int), \
						   .min = lo, .max = hi, .ints = set, .def_int = def,     \
						   .arg = metavar, .help = text                           \
	}
#define CFG_BOOL(f, ENV, def, text)                                                                        \
	{                                                                                                  \
		CFG_BASE(f, ENV, CONFIG_TYPE_BOOL), .offset = offsetof(struct config, f) + CFG_IS(f, int), \
						    .min = 0, .max = 1, .def_int = def, .arg = "BOOL",     \
						    .help = text                                           \
	}
#define CFG_STR(f, ENV, t, set, chk, vals, def, metavar, text)                                           \
	{                                                                                                \
		CFG_BASE(f, ENV, t), .offset = offsetof(struct config, f) + CFG_IS_STR(f), .words = set, \
				     .check = chk, .values = vals, .def_str = def, .arg = metavar,       \
				     .help = text                                                        \
	}

static int config_check_listen(const char *v, char *why, size_t whylen);
static int config_check_api_keys(const char *v, char *why, size_t whylen);
static int config_check_cors(const char *v, char *why, size_t whylen);

static const char *const config_engines[] = {"auto", "espeak", "cosyvoice2", NULL};
static const char *const config_devices[] = {"cpu", "cuda", NULL};
static const char *const config_formats[] = {"wav", "opus", "pcm", "flac", "mp3", NULL};
static const char *const config_log_levels[] = {"error", "warn", "info", "debug", NULL};
static const int config_sample_rates[] = {0, 8000, 16000, 22050, 24000, 44100, 48000, -1};
/* LAME's CBR bitrates (MPEG-1, -2 and -2.5 layer III together). */
static const int config_mp3_rates[] = {8,  16,	24,  32,  40,  48,  56,	 64,  80,
				       96, 112, 128, 160, 192, 224, 256, 320, -1};

static const struct config_entry config_table[] = {
    /* network */
    CFG_STR(listen, LISTEN, CONFIG_TYPE_STRING, NULL, config_check_listen, "an IPv4 or IPv6 address literal",
	    "127.0.0.1", "ADDR",
	    "Address to bind (a numeric IPv4 or IPv6 address, no brackets, no host name)"),
    CFG_INT(port, PORT, 1, 65535, NULL, 8080, "N", "TCP port to listen on"),
    CFG_INT(http_threads, HTTP_THREADS, 1, 16, NULL, 1, "N",
	    "HTTP threads (libmicrohttpd thread pool); 1 = one epoll thread"),
    CFG_INT(connection_limit, CONNECTION_LIMIT, 1, 65535, NULL, 256, "N",
	    "Most simultaneous client connections"),
    CFG_INT(per_ip_connection_limit, PER_IP_CONNECTION_LIMIT, 0, 65535, NULL, 64, "N",
	    "Most simultaneous connections from one client IP address; 0 = unlimited"),
    CFG_INT(connection_timeout_s, CONNECTION_TIMEOUT_S, 1, 3600, NULL, 30, "SECONDS",
	    "Seconds an idle or slow client connection may stay open"),
    /* engine */
    CFG_STR(engine, ENGINE, CONFIG_TYPE_ENUM, config_engines, NULL, NULL, "auto", "NAME",
	    "Synthesis engine; auto = cosyvoice2 when model_dir is set, else espeak"),
    CFG_STR(model_dir, MODEL_DIR, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "DIR",
	    "CosyVoice2 model bundle directory (required by engine cosyvoice2); empty = none"),
    CFG_STR(device, DEVICE, CONFIG_TYPE_ENUM, config_devices, NULL, NULL, "cuda", "NAME",
	    "Device that runs the CosyVoice2 engine"),
    CFG_STR(
	frontend_dir, FRONTEND_DIR, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "DIR",
	"Text frontend for POST /v1/text/normalize: a directory with tokenizer/ and tn/ (a model bundle, or "
	"tools/export/fetch_tn.sh output); empty = model_dir when set, else the route is unavailable"),
    CFG_STR(espeak_data, ESPEAK_DATA, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "DIR",
	    "espeak-ng data directory; empty = the library default"),
    CFG_STR(default_speaker, DEFAULT_SPEAKER, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "ID",
	    "Speaker used when a request names none; empty = the engine default"),
    CFG_STR(
	voices_dir, VOICES_DIR, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "DIR",
	"CosyVoice2: writable directory of extra voices (<id>.safetensors, as tools/export/add_speaker.py "
	"writes them), loaded with the bundle's and changed by SIGHUP or PUT/DELETE /v1/speakers/{id}; "
	"empty = none"),
    CFG_INT(max_voices, MAX_VOICES, 1, 10000, NULL, 256, "N", "CosyVoice2: most voices in voices_dir"),
    CFG_INT(engine_threads, ENGINE_THREADS, 0, 64, NULL, 0, "N", "CPU threads for the engine; 0 = automatic"),
    CFG_INT(cpu_kernel_cache, CPU_KERNEL_CACHE, 0, 65536, NULL, 128, "N",
	    "CPU kernels libtorch's oneDNN keeps compiled (one per operator and input shape: every new "
	    "sentence length adds convolution and half-precision ones; unbounded by this, the resident "
	    "set grows by hundreds of MB until oneDNN's own limit of 1024); an "
	    "ONEDNN_PRIMITIVE_CACHE_CAPACITY in the environment takes precedence; 0 = oneDNN's default"),
    CFG_BOOL(warmup, WARMUP, 1, "Run one warm-up synthesis before reporting ready"),
    CFG_BOOL(cuda_graph, CUDA_GRAPH, 1,
	     "Replay the LLM decode step as a captured CUDA graph (cuda only; eager when capture fails)"),
    CFG_INT(llm_max_positions, LLM_MAX_POSITIONS, 256, 65536, NULL, 4096, "N",
	    "KV-cache positions allocated at start-up (prompt + text + up to 20 speech tokens per text "
	    "token); a sentence that could need more is refused with 413"),
    CFG_INT(memory_budget_mb, MEMORY_BUDGET_MB, -1, 1048576, NULL, -1, "MIB",
	    "Engine memory budget in MiB (GPU memory on cuda, resident memory on cpu); a sentence whose "
	    "predicted need is larger is refused with 413; -1 = auto (3072 on cuda: fits a 4 GB card; 90% "
	    "of physical memory on cpu); 0 = no guard"),
    CFG_INT(cuda_memory_limit_mb, CUDA_MEMORY_LIMIT_MB, 0, 1048576, NULL, 0, "MIB",
	    "Cap of the CUDA caching allocator in MiB, set before the model loads (libtorch's per-process "
	    "memory fraction): a big card then behaves like a small one; 0 = no cap"),
    CFG_STR(torch_lib, TORCH_LIB, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "DIR",
	    "Directory of the libtorch to load (torch/lib of a torch of the version this build was made "
	    "for); empty = the build's own torch, else the torch of python3"),
    CFG_BOOL(cpu_half, CPU_HALF, 0,
	     "Run fp16 bundles on the CPU, and bf16 bundles on CPUs without native bf16 (both slower than "
	     "fp32 there; tests and experiments). bf16 bundles need no setting on CPUs with AVX512-BF16 "
	     "or AMX-BF16"),
    CFG_INT(split_max_tokens, SPLIT_MAX_TOKENS, 4, 512, NULL, 80, "N",
	    "Longest text piece synthesized in one go (CosyVoice split_paragraph token_max_n; min_n and "
	    "merge_len scale with it); 80 = the reference"),
    /* scheduling and limits */
    CFG_INT(queue_capacity, QUEUE_CAPACITY, 1, 4096, NULL, 16, "N",
	    "Most synthesis jobs waiting in the queue; more are refused with 503"),
    CFG_INT(deadline_ms, DEADLINE_MS, 100, 3600000, NULL, 120000, "MS",
	    "Default per-request deadline in milliseconds (a request may only lower it)"),
    CFG_INT(max_body_bytes, MAX_BODY_BYTES, 1024, 16777216, NULL, 65536, "BYTES",
	    "Largest accepted request body in bytes (larger: 413)"),
    CFG_INT(max_text_chars, MAX_TEXT_CHARS, 1, 1000000, NULL, 4096, "N",
	    "Longest accepted text in Unicode characters (longer: 413)"),
    CFG_INT(max_audio_seconds, MAX_AUDIO_SECONDS, 1, 7200, NULL, 600, "SECONDS",
	    "Most seconds of audio in one response"),
    CFG_INT(drain_timeout_ms, DRAIN_TIMEOUT_MS, 0, 600000, NULL, 10000, "MS",
	    "On SIGTERM, milliseconds the running job may take to finish before it is cancelled"),
    CFG_INT(load_stall_timeout_ms, LOAD_STALL_TIMEOUT_MS, 1000, 3600000, NULL, 120000, "MS",
	    "Start-up: a load stage with no sign of progress for this long counts as hung (systemd's "
	    "start timeout and watchdog then stop the service; without systemd the daemon exits 1)"),
    /* audio */
    CFG_STR(default_format, DEFAULT_FORMAT, CONFIG_TYPE_ENUM, config_formats, NULL, NULL, "wav", "FORMAT",
	    "Audio format of a /tts response when the request names none"),
    CFG_INT(default_sample_rate, DEFAULT_SAMPLE_RATE, 0, 48000, config_sample_rates, 0, "HZ",
	    "Output sample rate in Hz when a request names none; 0 = the engine's native rate"),
    CFG_INT(opus_bitrate, OPUS_BITRATE, 6000, 510000, NULL, 32000, "BPS", "Opus bitrate in bits per second"),
    CFG_INT(opus_complexity, OPUS_COMPLEXITY, 0, 10, NULL, 5, "N",
	    "Opus encoder complexity (0 fastest .. 10 best); encoding runs on the HTTP thread"),
    CFG_INT(mp3_bitrate_kbps, MP3_BITRATE_KBPS, 8, 320, config_mp3_rates, 64, "KBPS",
	    "MP3 constant bitrate in kbit/s (one of LAME's CBR rates)"),
    CFG_INT(flac_level, FLAC_LEVEL, 0, 8, NULL, 5, "N", "FLAC compression level"),
    /* security */
    CFG_STR(api_keys, API_KEYS, CONFIG_TYPE_LIST, NULL, config_check_api_keys,
	    "comma-separated keys of at least 8 characters without whitespace", "", "KEYS",
	    "Bearer API keys required on synthesis routes, added to those of api_keys_file; "
	    "no keys at all = no authentication"),
    CFG_STR(api_keys_file, API_KEYS_FILE, CONFIG_TYPE_STRING, NULL, NULL, NULL, "", "FILE",
	    "File with one API key per line (blank lines and lines starting with # skipped; re-read on "
	    "SIGHUP); empty = none"),
    CFG_STR(admin_api_keys, ADMIN_API_KEYS, CONFIG_TYPE_LIST, NULL, config_check_api_keys,
	    "comma-separated keys of at least 8 characters without whitespace", "", "KEYS",
	    "Bearer keys allowed to PUT/DELETE /v1/speakers/{id} (with voices_dir set); empty = those "
	    "routes are off (404)"),
    CFG_INT(max_voice_bytes, MAX_VOICE_BYTES, 1024, 67108864, NULL, 4194304, "BYTES",
	    "Largest voice file PUT /v1/speakers/{id} accepts (larger: 413)"),
    CFG_BOOL(
	web_ui, WEB_UI, 1,
	"Serve the console page at GET / and the browser client at GET /cosyvoiced.js (static, no data)"),
    CFG_STR(cors_origins, CORS_ORIGINS, CONFIG_TYPE_LIST, NULL, config_check_cors,
	    "comma-separated origins (http[s]://host[:port]) or *", "", "ORIGINS",
	    "Origins allowed by CORS; * = any; empty = CORS off"),
    /* ops */
    CFG_STR(log_level, LOG_LEVEL, CONFIG_TYPE_ENUM, config_log_levels, NULL, NULL, "info", "LEVEL",
	    "Log verbosity"),
    CFG_BOOL(access_log, ACCESS_LOG, 1, "Log one line per HTTP request"),
};

#define CONFIG_N (sizeof config_table / sizeof config_table[0])

/* The one COSYVOICED_* variable that is not a setting: the config file path.
 * Test and tool variables use other prefixes (CVTEST_*, CV_*), so none of
 * them can stop a daemon from starting and no COSYVOICED_* is ignored. */
static const char *const config_env_allowed[] = {"COSYVOICED_CONFIG", NULL};

/* ---- field access ---------------------------------------------------- */

static int *config_int_ptr(struct config *c, const struct config_entry *e)
{
	return (int *)(void *)((char *)c + e->offset);
}

static int config_int_get(const struct config *c, const struct config_entry *e)
{
	return *(const int *)(const void *)((const char *)c + e->offset);
}

static char *config_str_ptr(struct config *c, const struct config_entry *e)
{
	return (char *)c + e->offset;
}

static const char *config_str_get(const struct config *c, const struct config_entry *e)
{
	return (const char *)c + e->offset;
}

static int config_is_str(const struct config_entry *e)
{
	return e->type == CONFIG_TYPE_STRING || e->type == CONFIG_TYPE_ENUM || e->type == CONFIG_TYPE_LIST;
}

static const struct config_entry *config_find(const char *name)
{
	for (size_t i = 0; i < CONFIG_N; i++)
		if (strcmp(config_table[i].name, name) == 0)
			return &config_table[i];
	return NULL;
}

/* Copy name with '-' turned into '_'; 0 when it does not fit. */
static int config_normalize(char *dst, size_t cap, const char *src, size_t len)
{
	if (len >= cap)
		return 0;
	for (size_t i = 0; i < len; i++)
		dst[i] = src[i] == '-' ? '_' : src[i];
	dst[len] = '\0';
	return 1;
}

/* ---- value checks ------------------------------------------------------ */

static int config_has_space_or_ctl(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch == 0x7f)
			return 1;
	}
	return 0;
}

static int config_check_listen(const char *v, char *why, size_t whylen)
{
	unsigned char addr[16];
	if (inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1)
		return CV_OK;
	snprintf(why, whylen, "\"%s\" is not an IPv4 or IPv6 address literal", v);
	return CV_EINVAL;
}

/* Calls fn(item, len, index, arg) for each comma-separated item, trimmed of
 * blanks; empty items are skipped. Stops at the first nonzero return. */
static int config_list_each(const char *list, int (*fn)(const char *item, size_t len, size_t idx, void *arg),
			    void *arg)
{
	size_t idx = 0;
	const char *p = list;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		while (len > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			len--;
		}
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len > 0) {
			idx++;
			int rc = fn(s, len, idx, arg);
			if (rc != 0)
				return rc;
		}
		if (!end)
			return 0;
		p = end + 1;
	}
}

struct config_why {
	char *why;
	size_t whylen;
};

/* Never echoes the key itself: it is a secret. */
static int config_api_key_ok(const char *key, size_t len, char *why, size_t whylen)
{
	if (len < CONFIG_API_KEY_MIN) {
		snprintf(why, whylen, "is shorter than %d characters", CONFIG_API_KEY_MIN);
		return CV_EINVAL;
	}
	if (config_has_space_or_ctl(key, len)) {
		snprintf(why, whylen, "contains whitespace or a control character");
		return CV_EINVAL;
	}
	return CV_OK;
}

static int config_check_api_key_item(const char *item, size_t len, size_t idx, void *arg)
{
	struct config_why *w = arg;
	char reason[128];
	if (config_api_key_ok(item, len, reason, sizeof reason) == CV_OK)
		return 0;
	snprintf(w->why, w->whylen, "key #%zu %s", idx, reason);
	return CV_EINVAL;
}

static int config_check_api_keys(const char *v, char *why, size_t whylen)
{
	struct config_why w = {why, whylen};
	return config_list_each(v, config_check_api_key_item, &w);
}

static int config_check_cors_item(const char *item, size_t len, size_t idx, void *arg)
{
	struct config_why *w = arg;
	size_t skip;
	if (len == 1 && item[0] == '*')
		return 0;
	if (len > 7 && strncasecmp(item, "http://", 7) == 0)
		skip = 7;
	else if (len > 8 && strncasecmp(item, "https://", 8) == 0)
		skip = 8;
	else
		goto bad;
	for (size_t i = skip; i < len; i++) {
		unsigned char ch = (unsigned char)item[i];
		if (!isalnum(ch) && ch != '.' && ch != '-' && ch != ':' && ch != '[' && ch != ']')
			goto bad;
	}
	return 0;
bad:
	snprintf(w->why, w->whylen, "origin #%zu \"%.*s\" is not * or http[s]://host[:port]", idx, (int)len,
		 item);
	return CV_EINVAL;
}

static int config_check_cors(const char *v, char *why, size_t whylen)
{
	struct config_why w = {why, whylen};
	return config_list_each(v, config_check_cors_item, &w);
}

/* ---- storing one value --------------------------------------------------- */

static void config_join_ints(char *dst, size_t cap, const int *set)
{
	size_t pos = 0;
	dst[0] = '\0';
	for (size_t i = 0; set[i] >= 0 && pos < cap; i++) {
		int n = snprintf(dst + pos, cap - pos, "%s%d", i ? ", " : "", set[i]);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

static void config_join_words(char *dst, size_t cap, const char *const *words, const char *sep)
{
	size_t pos = 0;
	dst[0] = '\0';
	for (size_t i = 0; words[i] && pos < cap; i++) {
		int n = snprintf(dst + pos, cap - pos, "%s%s", i ? sep : "", words[i]);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

/* Checks an int against range and set; 0 or CV_EINVAL with a reason. */
static int config_int_ok(const struct config_entry *e, long long v, char *why, size_t whylen)
{
	if (v < e->min || v > e->max) {
		snprintf(why, whylen, "%lld is out of range %lld..%lld", v, e->min, e->max);
		return CV_EINVAL;
	}
	if (e->ints) {
		for (size_t i = 0; e->ints[i] >= 0; i++)
			if (e->ints[i] == v)
				return CV_OK;
		char set[256];
		config_join_ints(set, sizeof set, e->ints);
		snprintf(why, whylen, "%lld is not one of %s", v, set);
		return CV_EINVAL;
	}
	return CV_OK;
}

static int config_store_int(struct config *c, const struct config_entry *e, long long v, char *why,
			    size_t whylen)
{
	int rc = config_int_ok(e, v, why, whylen);
	if (rc != CV_OK)
		return rc;
	*config_int_ptr(c, e) = (int)v;
	return CV_OK;
}

/* Checks a string value (len bytes at s) for the entry; 0 or CV_EINVAL. */
static int config_str_ok(const struct config_entry *e, const char *s, size_t len, char *why, size_t whylen)
{
	if (len >= e->size) {
		snprintf(why, whylen, "value too long (%zu bytes, at most %zu)", len, e->size - 1);
		return CV_EINVAL;
	}
	if (memchr(s, '\0', len)) {
		snprintf(why, whylen, "value contains a NUL byte");
		return CV_EINVAL;
	}
	if (!utf8_validate(s, len, NULL)) {
		snprintf(why, whylen, "value is not valid UTF-8");
		return CV_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f) {
			snprintf(why, whylen, "value contains a control character");
			return CV_EINVAL;
		}
	}
	if (e->type == CONFIG_TYPE_ENUM) {
		for (size_t i = 0; e->words[i]; i++)
			if (strlen(e->words[i]) == len && memcmp(e->words[i], s, len) == 0)
				return CV_OK;
		char set[256];
		config_join_words(set, sizeof set, e->words, ", ");
		snprintf(why, whylen, "\"%.*s\" is not one of %s", (int)len, s, set);
		return CV_EINVAL;
	}
	if (e->check)
		return e->check(s, why, whylen);
	return CV_OK;
}

static int config_store_str(struct config *c, const struct config_entry *e, const char *s, size_t len,
			    char *why, size_t whylen)
{
	int rc = config_str_ok(e, s, len, why, whylen);
	if (rc != CV_OK)
		return rc;
	char *dst = config_str_ptr(c, e);
	memset(dst, 0, e->size); /* whole field: structs compare with memcmp */
	memcpy(dst, s, len);
	return CV_OK;
}

static int config_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return CV_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return CV_OK;
		}
	}
	return CV_EINVAL;
}

/* Sets an entry from its string form (env, flags, config_set). */
static int config_store_text(struct config *c, const struct config_entry *e, const char *v, char *why,
			     size_t whylen)
{
	switch (e->type) {
	case CONFIG_TYPE_INT: {
		const char *p = v;
		char *end;
		if (*p == '-' || *p == '+')
			p++;
		if (!isdigit((unsigned char)*p))
			goto not_int;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (*end != '\0')
			goto not_int;
		if (errno == ERANGE) {
			snprintf(why, whylen, "\"%.40s\" is out of range %lld..%lld", v, e->min, e->max);
			return CV_EINVAL;
		}
		return config_store_int(c, e, n, why, whylen);
	not_int:
		snprintf(why, whylen, "\"%.40s\" is not an integer", v);
		return CV_EINVAL;
	}
	case CONFIG_TYPE_BOOL: {
		int b;
		if (config_parse_bool(v, &b) != CV_OK) {
			snprintf(why, whylen, "\"%.40s\" is not a boolean (1/0, true/false, yes/no, on/off)",
				 v);
			return CV_EINVAL;
		}
		*config_int_ptr(c, e) = b;
		return CV_OK;
	}
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_ENUM:
	case CONFIG_TYPE_LIST: return config_store_str(c, e, v, strlen(v), why, whylen);
	}
	snprintf(why, whylen, "internal error: bad type");
	return CV_EINVAL;
}

static const char *config_json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "real number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

/* Sets an entry from a JSON value (config files). */
static int config_store_json(struct config *c, const struct config_entry *e, json_t *v, char *why,
			     size_t whylen)
{
	switch (e->type) {
	case CONFIG_TYPE_INT:
		if (!json_is_integer(v)) {
			snprintf(why, whylen, "expected integer, got %s", config_json_type_name(v));
			return CV_EINVAL;
		}
		return config_store_int(c, e, (long long)json_integer_value(v), why, whylen);
	case CONFIG_TYPE_BOOL:
		if (!json_is_boolean(v)) {
			snprintf(why, whylen, "expected boolean (true or false), got %s",
				 config_json_type_name(v));
			return CV_EINVAL;
		}
		*config_int_ptr(c, e) = json_is_true(v);
		return CV_OK;
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_ENUM:
		if (!json_is_string(v)) {
			snprintf(why, whylen, "expected string, got %s", config_json_type_name(v));
			return CV_EINVAL;
		}
		return config_store_str(c, e, json_string_value(v), json_string_length(v), why, whylen);
	case CONFIG_TYPE_LIST: {
		if (json_is_string(v))
			return config_store_str(c, e, json_string_value(v), json_string_length(v), why,
						whylen);
		if (!json_is_array(v)) {
			snprintf(why, whylen, "expected string (comma-separated) or array of strings, got %s",
				 config_json_type_name(v));
			return CV_EINVAL;
		}
		/* Join the items with ','; the length check happens on the result. */
		char joined[CONFIG_LIST_MAX + 1];
		size_t pos = 0, i;
		json_t *item;
		json_array_foreach(v, i, item)
		{
			if (!json_is_string(item)) {
				snprintf(why, whylen, "item %zu: expected string, got %s", i,
					 config_json_type_name(item));
				return CV_EINVAL;
			}
			const char *s = json_string_value(item);
			size_t len = json_string_length(item);
			if (memchr(s, ',', len)) {
				snprintf(why, whylen, "item %zu contains a comma", i);
				return CV_EINVAL;
			}
			if (pos + (i ? 1 : 0) + len >= sizeof joined) {
				snprintf(why, whylen, "value too long (more than %zu bytes)", e->size - 1);
				return CV_EINVAL;
			}
			if (i)
				joined[pos++] = ',';
			memcpy(joined + pos, s, len);
			pos += len;
		}
		joined[pos] = '\0';
		return config_store_str(c, e, joined, pos, why, whylen);
	}
	}
	snprintf(why, whylen, "internal error: bad type");
	return CV_EINVAL;
}

/* ---- sources ------------------------------------------------------------- */

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		if (config_is_str(e))
			cv_strlcpy(config_str_ptr(c, e), e->def_str, e->size);
		else
			*config_int_ptr(c, e) = (int)e->def_int;
	}
}

int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
	char name[CONFIG_NAME_MAX], why[CONFIG_WHY_MAX];
	const struct config_entry *e = NULL;
	if (config_normalize(name, sizeof name, key, strlen(key)))
		e = config_find(name);
	if (!e) {
		snprintf(err, errlen, "unknown key \"%s\"", key);
		return CV_EINVAL;
	}
	if (config_store_text(c, e, value, why, sizeof why) != CV_OK) {
		snprintf(err, errlen, "key \"%s\": %s", e->name, why);
		return CV_EINVAL;
	}
	return CV_OK;
}

int config_apply_json(struct config *c, const char *json, size_t len, const char *origin, char *err,
		      size_t errlen)
{
	json_error_t jerr;
	char why[CONFIG_WHY_MAX];
	const char *key;
	json_t *v;
	int rc = CV_EINVAL;

	if (!origin)
		origin = "config";
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", origin, jerr.line, jerr.column,
			 jerr.text);
		return CV_EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: the top-level JSON value must be an object, got %s", origin,
			 config_json_type_name(root));
		goto fail;
	}
	struct config *tmp = xmalloc(sizeof *tmp);
	*tmp = *c;
	json_object_foreach(root, key, v)
	{
		if (key[0] == '#')
			continue;
		const struct config_entry *e = config_find(key);
		if (!e) {
			snprintf(err, errlen, "%s: unknown key \"%s\"", origin, key);
			free(tmp);
			goto fail;
		}
		if (config_store_json(tmp, e, v, why, sizeof why) != CV_OK) {
			snprintf(err, errlen, "%s: key \"%s\": %s", origin, key, why);
			free(tmp);
			goto fail;
		}
	}
	*c = *tmp;
	free(tmp);
	rc = CV_OK;
fail:
	json_decref(root);
	return rc;
}

int config_apply_file(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
		return CV_EINVAL;
	}
	char *data = xmalloc(CONFIG_FILE_MAX + 1);
	size_t n = fread(data, 1, CONFIG_FILE_MAX + 1, f);
	int rd_err = ferror(f);
	fclose(f);
	int rc = CV_EINVAL;
	if (rd_err) {
		snprintf(err, errlen, "config file %s: read error", path);
		goto out;
	}
	if (n > CONFIG_FILE_MAX) {
		snprintf(err, errlen, "config file %s: larger than %d bytes", path, CONFIG_FILE_MAX);
		goto out;
	}
	rc = config_apply_json(c, data, n, path, err, errlen);
out:
	free(data);
	return rc;
}

/* getenv() over an explicit environment; first match wins as in getenv. */
static const char *config_env_get(char **envp, const char *name)
{
	size_t len = strlen(name);
	for (char **p = envp; p && *p; p++)
		if (strncmp(*p, name, len) == 0 && (*p)[len] == '=')
			return *p + len + 1;
	return NULL;
}

static int config_env_known(const char *var, size_t len)
{
	for (size_t i = 0; config_env_allowed[i]; i++)
		if (strlen(config_env_allowed[i]) == len && memcmp(config_env_allowed[i], var, len) == 0)
			return 1;
	for (size_t i = 0; i < CONFIG_N; i++)
		if (strlen(config_table[i].env) == len && memcmp(config_table[i].env, var, len) == 0)
			return 1;
	return 0;
}

int config_apply_env(struct config *c, char **envp, char *err, size_t errlen)
{
	char why[CONFIG_WHY_MAX];
	for (char **p = envp; p && *p; p++) {
		if (strncmp(*p, "COSYVOICED_", 11) != 0)
			continue;
		const char *eq = strchr(*p, '=');
		size_t len = eq ? (size_t)(eq - *p) : strlen(*p);
		if (!config_env_known(*p, len)) {
			snprintf(err, errlen, "unknown environment variable %.*s", (int)len, *p);
			return CV_EINVAL;
		}
	}
	struct config *tmp = xmalloc(sizeof *tmp);
	*tmp = *c;
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		const char *v = config_env_get(envp, e->env);
		if (v && config_store_text(tmp, e, v, why, sizeof why) != CV_OK) {
			snprintf(err, errlen, "environment variable %s: %s", e->env, why);
			free(tmp);
			return CV_EINVAL;
		}
	}
	*c = *tmp;
	free(tmp);
	return CV_OK;
}

int config_apply_args(struct config *c, struct config_cli *cli, int argc, char **argv, char *err,
		      size_t errlen)
{
	char name[CONFIG_NAME_MAX], why[CONFIG_WHY_MAX];
	struct config_cli local;
	int rc = CV_EINVAL;

	if (!cli)
		cli = &local;
	struct config *tmp = xmalloc(sizeof *tmp);
	*tmp = *c;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0) {
			cli->help = 1;
			continue;
		}
		if (strcmp(a, "-V") == 0) {
			cli->version = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=') {
			snprintf(err, errlen,
				 "unexpected argument \"%s\" (settings are --key=value or --key value)", a);
			goto fail;
		}
		const char *flag = a + 2;
		const char *eq = strchr(flag, '=');
		int flen = (int)(eq ? (size_t)(eq - flag) : strlen(flag));
		if (!config_normalize(name, sizeof name, flag, (size_t)flen)) {
			snprintf(err, errlen, "unknown flag --%.*s", flen > 64 ? 64 : flen, flag);
			goto fail;
		}
		int *sw = NULL;
		if (strcmp(name, "help") == 0)
			sw = &cli->help;
		else if (strcmp(name, "version") == 0)
			sw = &cli->version;
		else if (strcmp(name, "check_config") == 0)
			sw = &cli->check_config;
		else if (strcmp(name, "print_config") == 0)
			sw = &cli->print_config;
		else if (strcmp(name, "healthcheck") == 0)
			sw = &cli->healthcheck;
		if (sw) {
			if (eq) {
				snprintf(err, errlen, "flag --%.*s takes no value", flen, flag);
				goto fail;
			}
			*sw = 1;
			continue;
		}
		const struct config_entry *e = NULL;
		if (strcmp(name, "model") == 0) /* --model DIR: the issue's and the README's short form */
			cv_strlcpy(name, "model_dir", sizeof name);
		if (strcmp(name, "config") != 0) {
			e = config_find(name);
			if (!e) {
				snprintf(err, errlen, "unknown flag --%.*s", flen, flag);
				goto fail;
			}
		}
		const char *value;
		if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "flag --%.*s needs a value", flen, flag);
			goto fail;
		}
		if (!e) {
			if (value[0] == '\0') {
				snprintf(err, errlen, "flag --%.*s needs a file name", flen, flag);
				goto fail;
			}
			cli->config_path = value;
			continue;
		}
		if (config_store_text(tmp, e, value, why, sizeof why) != CV_OK) {
			snprintf(err, errlen, "flag --%.*s: %s", flen, flag, why);
			goto fail;
		}
	}
	*c = *tmp;
	rc = CV_OK;
fail:
	free(tmp);
	return rc;
}

int config_load(struct config *c, struct config_cli *cli, int argc, char **argv, char **envp, char *err,
		size_t errlen)
{
	struct config_cli local;
	int rc;

	if (!cli)
		cli = &local;
	memset(cli, 0, sizeof *cli);
	struct config *tmp = xmalloc(sizeof *tmp);
	/* Pass 1: syntax of every flag, and where the file is. */
	config_defaults(tmp);
	rc = config_apply_args(tmp, cli, argc, argv, err, errlen);
	if (rc != CV_OK)
		goto out;
	config_defaults(tmp);
	if (cli->help || cli->version) {
		/* Nothing else is read: --help must work with a broken config. */
		*c = *tmp;
		goto out;
	}
	const char *path = cli->config_path;
	if (!path) {
		path = config_env_get(envp, "COSYVOICED_CONFIG");
		if (path && path[0] == '\0')
			path = NULL;
	}
	if (path && (rc = config_apply_file(tmp, path, err, errlen)) != CV_OK)
		goto out;
	if ((rc = config_apply_env(tmp, envp, err, errlen)) != CV_OK)
		goto out;
	/* Pass 2: flags win over everything. */
	if ((rc = config_apply_args(tmp, cli, argc, argv, err, errlen)) != CV_OK)
		goto out;
	if ((rc = config_validate(tmp, err, errlen)) != CV_OK)
		goto out;
	*c = *tmp;
out:
	free(tmp);
	return rc == CV_OK ? CV_OK : CV_EINVAL;
}

int config_validate(const struct config *c, char *err, size_t errlen)
{
	char why[CONFIG_WHY_MAX];
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		int rc;
		if (config_is_str(e)) {
			const char *s = config_str_get(c, e);
			const char *nul = memchr(s, '\0', e->size);
			if (!nul) {
				snprintf(err, errlen, "key \"%s\": value not terminated", e->name);
				return CV_EINVAL;
			}
			rc = config_str_ok(e, s, (size_t)(nul - s), why, sizeof why);
		} else {
			rc = config_int_ok(e, config_int_get(c, e), why, sizeof why);
		}
		if (rc != CV_OK) {
			snprintf(err, errlen, "key \"%s\": %s", e->name, why);
			return CV_EINVAL;
		}
	}
	if (strcmp(c->engine, "cosyvoice2") == 0 && c->model_dir[0] == '\0') {
		snprintf(err, errlen,
			 "engine \"cosyvoice2\" needs model_dir (the CosyVoice2 model bundle directory)");
		return CV_EINVAL;
	}
	char **keys;
	size_t n;
	if (config_read_api_keys(c, &keys, &n, err, errlen) != CV_OK)
		return CV_EINVAL;
	config_free_api_keys(keys, n);
	return CV_OK;
}

/* ---- API keys ---------------------------------------------------------- */

void config_free_api_keys(char **keys, size_t n)
{
	if (!keys)
		return;
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

struct config_keyset {
	char **keys;
	size_t n;
};

static void config_keyset_add(struct config_keyset *ks, const char *s, size_t len)
{
	ks->keys = xrealloc(ks->keys, (ks->n + 1) * sizeof *ks->keys);
	ks->keys[ks->n++] = xstrndup(s, len);
}

static int config_add_inline_key(const char *item, size_t len, size_t idx, void *arg)
{
	config_keyset_add(arg, item, len);
	return 0;
}

/* Adds the keys of api_keys_file. */
static int config_read_key_file(const char *path, struct config_keyset *ks, char *err, size_t errlen)
{
	char why[128];
	char *line = NULL;
	size_t cap = 0, total = 0, lineno = 0;
	ssize_t got;
	int rc = CV_OK;

	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "api_keys_file %s: %s", path, strerror(errno));
		return CV_EIO;
	}
	while ((got = getline(&line, &cap, f)) >= 0) {
		lineno++;
		total += (size_t)got;
		if (total > CONFIG_FILE_MAX) {
			snprintf(err, errlen, "api_keys_file %s: larger than %d bytes", path,
				 CONFIG_FILE_MAX);
			rc = CV_E2BIG;
			goto out;
		}
		size_t len = (size_t)got;
		if (len > CONFIG_KEY_LINE_MAX) {
			snprintf(err, errlen, "api_keys_file %s: line %zu: longer than %d bytes", path,
				 lineno, CONFIG_KEY_LINE_MAX);
			rc = CV_E2BIG;
			goto out;
		}
		const char *s = line;
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		if (len == 0 || s[0] == '#')
			continue;
		if (config_api_key_ok(s, len, why, sizeof why) != CV_OK) {
			snprintf(err, errlen, "api_keys_file %s: line %zu: key %s", path, lineno, why);
			rc = CV_EINVAL;
			goto out;
		}
		config_keyset_add(ks, s, len);
	}
	if (ferror(f)) {
		snprintf(err, errlen, "api_keys_file %s: read error", path);
		rc = CV_EIO;
	}
out:
	free(line);
	fclose(f);
	return rc;
}

/* The keys of one inline comma list setting (`name`, `value` of `cap` bytes) into ks. */
static int config_inline_keys(const char *name, const char *value, size_t cap, struct config_keyset *ks,
			      char *err, size_t errlen)
{
	char why[CONFIG_WHY_MAX];

	if (memchr(value, '\0', cap) == NULL) {
		snprintf(err, errlen, "key \"%s\": value not terminated", name);
		return CV_EINVAL;
	}
	if (config_check_api_keys(value, why, sizeof why) != CV_OK) {
		snprintf(err, errlen, "key \"%s\": %s", name, why);
		return CV_EINVAL;
	}
	config_list_each(value, config_add_inline_key, ks);
	return CV_OK;
}

int config_read_admin_keys(const struct config *c, char ***keys, size_t *n, char *err, size_t errlen)
{
	struct config_keyset ks = {NULL, 0};
	int rc = config_inline_keys("admin_api_keys", c->admin_api_keys, sizeof c->admin_api_keys, &ks, err,
				    errlen);

	*keys = ks.keys;
	*n = ks.n;
	return rc;
}

int config_read_api_keys(const struct config *c, char ***keys, size_t *n, char *err, size_t errlen)
{
	struct config_keyset ks = {NULL, 0};
	int rc;

	*keys = NULL;
	*n = 0;
	rc = config_inline_keys("api_keys", c->api_keys, sizeof c->api_keys, &ks, err, errlen);
	if (rc != CV_OK)
		return rc;
	if (c->api_keys_file[0] != '\0') {
		rc = config_read_key_file(c->api_keys_file, &ks, err, errlen);
		if (rc != CV_OK) {
			config_free_api_keys(ks.keys, ks.n);
			return rc;
		}
	}
	*keys = ks.keys;
	*n = ks.n;
	return CV_OK;
}

/* ---- output -------------------------------------------------------------- */

/* "Range/values" text of an entry. */
static void config_range_text(const struct config_entry *e, char *dst, size_t cap)
{
	switch (e->type) {
	case CONFIG_TYPE_INT:
		if (e->ints)
			config_join_ints(dst, cap, e->ints);
		else
			snprintf(dst, cap, "%lld..%lld", e->min, e->max);
		return;
	case CONFIG_TYPE_BOOL: snprintf(dst, cap, "true, false"); return;
	case CONFIG_TYPE_ENUM: config_join_words(dst, cap, e->words, ", "); return;
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_LIST:
		if (e->values)
			snprintf(dst, cap, "%s, at most %zu bytes", e->values, e->size - 1);
		else
			snprintf(dst, cap, "a string of at most %zu bytes", e->size - 1);
		return;
	}
	dst[0] = '\0';
}

static void config_default_text(const struct config_entry *e, char *dst, size_t cap)
{
	if (e->type == CONFIG_TYPE_BOOL)
		snprintf(dst, cap, "%s", e->def_int ? "true" : "false");
	else if (e->type == CONFIG_TYPE_INT)
		snprintf(dst, cap, "%lld", e->def_int);
	else if (e->def_str[0] == '\0')
		snprintf(dst, cap, "empty");
	else
		snprintf(dst, cap, "%s", e->def_str);
}

void config_print_help(FILE *f, const char *prog)
{
	char range[512], def[CONFIG_STR_MAX + 16], flag[CONFIG_NAME_MAX + 2];
	if (!prog)
		prog = "cosyvoiced";
	fprintf(
	    f,
	    "Usage: %s [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n"
	    "       %s --help | --version | --check-config | --print-config | --healthcheck\n"
	    "\n"
	    "cosyvoiced %s: text-to-speech HTTP daemon.\n"
	    "Each setting is taken from, highest first: its flag, its environment variable\n"
	    "COSYVOICED_<KEY>, the JSON config file, the built-in default. Flags take dashes or\n"
	    "underscores (--max-body-bytes = --max_body_bytes); booleans take 1/0, true/false,\n"
	    "yes/no, on/off (true/false in the config file).\n"
	    "\n"
	    "Options:\n"
	    "  --config FILE     JSON config file (when absent: env COSYVOICED_CONFIG)\n"
	    "  --check-config    validate the configuration, show it, and exit\n"
	    "  --print-config    print the effective configuration as annotated JSON and exit\n"
	    "  --healthcheck     probe GET /readyz of the daemon this configuration describes (listen, "
	    "port;\n"
	    "                    in a container whose PID 1 is cosyvoiced, PID 1's own flags): exit 0 when\n"
	    "                    ready, 1 otherwise (Docker HEALTHCHECK; no curl needed)\n"
	    "  -h, --help        show this help and exit\n"
	    "  -V, --version     show the version and exit\n"
	    "\n"
	    "Settings:\n",
	    prog, prog, CV_VERSION);
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		config_normalize(flag, sizeof flag, e->name, strlen(e->name));
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		config_range_text(e, range, sizeof range);
		config_default_text(e, def, sizeof def);
		fprintf(f, "  --%s %s\n      %s.\n      env %s; default: %s; range/values: %s\n", flag,
			e->arg, e->help, e->env, def, range);
	}
}

static json_t *config_value_json(const struct config *c, const struct config_entry *e)
{
	switch (e->type) {
	case CONFIG_TYPE_INT: return json_integer(config_int_get(c, e));
	case CONFIG_TYPE_BOOL: return json_boolean(config_int_get(c, e));
	case CONFIG_TYPE_STRING:
	case CONFIG_TYPE_ENUM:
	case CONFIG_TYPE_LIST:
		return json_stringn(config_str_get(c, e), strnlen(config_str_get(c, e), e->size));
	}
	return json_null();
}

void config_print_json(FILE *f, const struct config *c)
{
	char range[512], def[CONFIG_STR_MAX + 16], note[1536], key[CONFIG_NAME_MAX + 2];
	json_t *root = json_object();
	if (!root)
		return;
	json_object_set_new(
	    root, "#",
	    json_string("cosyvoiced configuration (JSON). Keys starting with # are comments. "
			"Precedence, highest first: command-line flag --key, environment variable "
			"COSYVOICED_<KEY>, this file, built-in default. Written by "
			"cosyvoiced --print-config."));
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		config_range_text(e, range, sizeof range);
		config_default_text(e, def, sizeof def);
		snprintf(note, sizeof note, "%s. Range/values: %s. Default: %s.", e->help, range, def);
		snprintf(key, sizeof key, "#%s", e->name);
		json_object_set_new(root, key, json_string(note));
		json_t *v = config_value_json(c, e);
		json_object_set_new(root, e->name, v ? v : json_null());
	}
	json_dumpf(root, f, JSON_INDENT(2));
	fputc('\n', f);
	json_decref(root);
}

static int config_count_item(const char *item, size_t len, size_t idx, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

void config_log_effective(const struct config *c)
{
	for (size_t i = 0; i < CONFIG_N; i++) {
		const struct config_entry *e = &config_table[i];
		if (e->type == CONFIG_TYPE_INT) {
			log_info("config", "%s=%d", e->name, config_int_get(c, e));
		} else if (e->type == CONFIG_TYPE_BOOL) {
			log_info("config", "%s=%s", e->name, config_int_get(c, e) ? "true" : "false");
		} else if (e->offset == offsetof(struct config, api_keys) ||
			   e->offset == offsetof(struct config, admin_api_keys)) {
			size_t n = 0;
			config_list_each(config_str_get(c, e), config_count_item, &n);
			log_info("config", "%s=*** (%zu key%s)", e->name, n, n == 1 ? "" : "s");
		} else {
			const char *s = config_str_get(c, e);
			if (s[0] == '\0')
				log_info("config", "%s=(empty)", e->name);
			else
				log_info("config", "%s=%.*s", e->name, (int)strnlen(s, e->size), s);
		}
	}
}
