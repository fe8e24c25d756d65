/* daemon/config.h — every setting of cosyvoiced, from one declarative table.
 *
 * Sources, lowest to highest precedence: built-in defaults < config file
 * (JSON object; keys starting with '#' are comments) < environment
 * (COSYVOICED_<KEY upper-cased>) < command-line flags (--key=value or
 * --key value). The same table drives parsing, validation (unknown keys and
 * out-of-range values are refused, naming the key), --help, the effective
 * config dump and the annotated sample file config/cosyvoiced.json.
 */
#ifndef CV_DAEMON_CONFIG_H
#define CV_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_STR_MAX	256
#define CONFIG_LIST_MAX 1024

struct config {
	/* network */
	char listen[CONFIG_STR_MAX]; /* address to bind, "127.0.0.1" */
	int port;		     /* 8080 */
	int http_threads;	     /* MHD thread pool size, 1 = single epoll thread */
	int connection_limit;	     /* 256 */
	int per_ip_connection_limit; /* 64 */
	int connection_timeout_s;    /* idle timeout for slow clients, 30 */
	/* engine */
	char engine[CONFIG_STR_MAX];	      /* "auto" | "espeak" | "cosyvoice2" */
	char model_dir[CONFIG_STR_MAX];	      /* CosyVoice2 bundle dir, "" = none */
	char device[CONFIG_STR_MAX];	      /* "cpu" | "cuda" */
	char frontend_dir[CONFIG_STR_MAX];    /* bundle-shaped dir (tokenizer/, tn/) for /v1/text/normalize */
	char espeak_data[CONFIG_STR_MAX];     /* "" = library default */
	char default_speaker[CONFIG_STR_MAX]; /* "" = engine default */
	char voices_dir[CONFIG_STR_MAX];      /* writable extra voices, "" = none */
	int max_voices;			      /* most voices in voices_dir, 256 */
	int engine_threads;		      /* 0 = auto */
	int cpu_kernel_cache;		      /* oneDNN primitive cache capacity, 128; 0 = oneDNN's */
	int warmup;			      /* bool, 1 */
	int cuda_graph;			      /* bool, 1: LLM decode step as a CUDA graph */
	int llm_max_positions;		      /* KV cache positions allocated at start-up, 4096 */
	int memory_budget_mb;		      /* engine memory budget in MiB; -1 = auto; 0 = no guard */
	int cuda_memory_limit_mb;	      /* CUDA allocator cap in MiB, 0 = none */
	char torch_lib[CONFIG_STR_MAX];	      /* libtorch directory, "" = search */
	int cpu_half;			      /* bool, 0: fp16/bf16 bundles allowed on the CPU */
	int split_max_tokens;		      /* split_paragraph token_max_n, 80 */
	/* scheduling and limits */
	int queue_capacity;	   /* 16 */
	int deadline_ms;	   /* default per-request deadline, 120000 */
	int max_body_bytes;	   /* 65536 */
	int max_text_chars;	   /* /tts text cap in characters, 4096 */
	int max_audio_seconds;	   /* cap on one response's audio, 600 */
	int drain_timeout_ms;	   /* SIGTERM grace for the running job, 10000 */
	int load_stall_timeout_ms; /* start-up stage without progress = hung, 120000 */
	/* audio */
	char default_format[CONFIG_STR_MAX]; /* "wav" */
	int default_sample_rate;	     /* 0 = engine's native rate */
	int opus_complexity;		     /* 5 */
	int opus_bitrate;		     /* 32000 */
	int mp3_bitrate_kbps;		     /* 64 */
	int flac_level;			     /* 5 */
	/* security */
	char api_keys[CONFIG_LIST_MAX];	     /* comma-separated Bearer keys, "" = no auth */
	char api_keys_file[CONFIG_STR_MAX];  /* file with one key per line */
	char admin_api_keys[CONFIG_STR_MAX]; /* keys for PUT/DELETE /v1/speakers/{id} */
	int max_voice_bytes;		     /* largest voice file a PUT accepts */
	int web_ui;			     /* console page + /cosyvoiced.js, 1 */
	char cors_origins[CONFIG_LIST_MAX];  /* comma-separated origins or "*", "" = off */
	/* ops */
	char log_level[CONFIG_STR_MAX]; /* "info" */
	int access_log;			/* bool, 1 */
};

/* What the command line asked for besides settings. */
struct config_cli {
	const char *config_path; /* --config FILE (NULL: none) */
	int help;		 /* --help */
	int version;		 /* --version */
	int check_config;	 /* --check-config: validate, print, exit */
	int print_config;	 /* --print-config: annotated JSON of effective config */
	int healthcheck;	 /* --healthcheck: probe the running daemon's /readyz, exit 0/1 */
};

void config_defaults(struct config *c);

/* Full load: defaults, then --config file, env, flags; validates. On error
 * returns CV_EINVAL with err naming the key/flag/file. */
int config_load(struct config *c, struct config_cli *cli, int argc, char **argv, char **envp, char *err,
		size_t errlen);

/* Pieces (used by config_load and the tests). */
int config_apply_file(struct config *c, const char *path, char *err, size_t errlen);
int config_apply_json(struct config *c, const char *json, size_t len, const char *origin, char *err,
		      size_t errlen);
int config_apply_env(struct config *c, char **envp, char *err, size_t errlen);
int config_apply_args(struct config *c, struct config_cli *cli, int argc, char **argv, char *err,
		      size_t errlen);
/* Set one key from its string form (as env/flags do). */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);
/* Cross-field checks (e.g. engine=cosyvoice2 needs model_dir). */
int config_validate(const struct config *c, char *err, size_t errlen);

void config_print_help(FILE *f, const char *prog);
/* Annotated JSON: for each key a "#key" comment (meaning, range, default)
 * followed by "key": value. config/cosyvoiced.json is this output for the
 * defaults. */
void config_print_json(FILE *f, const struct config *c);
/* One log line per setting (api keys masked). */
void config_log_effective(const struct config *c);

/* Every API key: the comma-separated api_keys plus the lines of api_keys_file
 * (trimmed; blank lines and lines starting with '#' skipped). Refuses a key
 * shorter than 8 characters or with whitespace/control characters; err names
 * the source and line, never the key. *keys is NULL when *n is 0. Returns 0,
 * CV_EINVAL, CV_EIO (file unreadable) or CV_E2BIG (file over 1 MiB). */
int config_read_api_keys(const struct config *c, char ***keys, size_t *n, char *err, size_t errlen);
/* Frees what config_read_api_keys returned; NULL is a no-op. */
void config_free_api_keys(char **keys, size_t n);
/* The admin_api_keys list (no file); free with config_free_api_keys. */
int config_read_admin_keys(const struct config *c, char ***keys, size_t *n, char *err, size_t errlen);

#endif
