/* engine/engine.h — the C interface every speech backend sits behind.
 *
 * A backend turns text into mono float PCM at its own sample rate
 * (engine_sample_rate()), delivered in chunks through a sink as soon as each
 * chunk exists. Exactly one thread (the scheduler's worker) opens, warms up,
 * runs and closes an engine; nothing here is thread-safe unless stated.
 *
 * Ownership: engine_open() returns an engine the caller frees with
 * engine_close() (NULL is a no-op). Strings returned by the engine live as
 * long as the engine. Errors follow common/err.h, with text in err/errlen.
 *
 * Backends: "espeak" (libespeak-ng, CPU, no weights; the embedded default)
 * and "cosyvoice2" (libtorch bundle; other issues). This header is plain C
 * and is compiled as C by the test suite.
 */
#ifndef CV_ENGINE_ENGINE_H
#define CV_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct engine;

#define ENGINE_NAME_MAX	   64
#define ENGINE_TIMINGS_MAX 16
#define ENGINE_GAUGES_MAX  16

/* How the daemon asks for an engine. Strings are borrowed for the call. */
struct engine_config {
	const char *backend;	     /* "espeak" | "cosyvoice2" */
	const char *model_dir;	     /* bundle directory (cosyvoice2), NULL for espeak */
	const char *device;	     /* "cpu" | "cuda" (cosyvoice2) */
	const char *data_dir;	     /* espeak-ng data path, NULL = library default */
	const char *default_speaker; /* NULL = backend's own default */
	int threads;		     /* CPU threads the backend may use, 0 = auto */
	int cuda_graph;		     /* cosyvoice2: 1 = LLM decode step as a CUDA graph */
	size_t llm_max_positions;    /* cosyvoice2: KV cache positions (0 = 4096) */
	long memory_budget_mb;	     /* cosyvoice2: memory guard budget in MiB; 0 = no guard; -1 =
				      * auto (3072 on cuda, 90% of physical memory on cpu) */
	size_t split_max_tokens;     /* cosyvoice2: split_paragraph token_max_n (0 = 80) */
	const char *torch_lib;	     /* cosyvoice2: libtorch directory, NULL = search (torch_runtime.h) */
	long cuda_memory_limit_mb;   /* cosyvoice2: cap of the CUDA allocator in MiB, 0 = none */
	int cpu_half;		     /* cosyvoice2: allow fp16/bf16 bundles on the CPU */
	const char *voices_dir;	     /* cosyvoice2: extra voices <id>.safetensors, NULL = none */
	size_t max_voices;	     /* cosyvoice2: most voices in voices_dir (0 = 256) */
	/* Load progress: called on the opening thread at the start of each load
	 * stage ("checking the bundle", "loading the model", ...); NULL = none. */
	void (*progress)(void *user, const char *stage);
	void *progress_user;
};

struct engine_speaker {
	const char *id;	      /* what clients send as "speaker" / "voice" */
	const char *language; /* BCP-47-ish language tag, e.g. "en", "cmn" */
	const char *name;     /* human-readable name */
	const char *source;   /* where it comes from: "bundle", "voices_dir", "espeak-ng" (NULL = unknown) */
};

/* One synthesis request, borrowed for the call. */
struct engine_params {
	const char *text;    /* UTF-8, validated, NUL-terminated */
	const char *speaker; /* NULL = default speaker */
	float speed;	     /* 1.0 = normal; range checked by the caller */
	uint64_t seed;	     /* RNG seed for sampling backends */
	int has_seed;	     /* 0: backend picks a seed */
	int normalize;	     /* 1: run text normalization (cosyvoice2 frontend) */
	int stream;	     /* 1: the caller wants chunks as early as possible */
};

/* Where PCM goes. write() receives float samples in [-1, 1] at the engine's
 * rate; it returns 0 to continue or nonzero to abort synthesis (the engine
 * then returns CV_ECANCELED). cancelled() is polled between engine steps
 * (decode steps, sentences, chunks) and returns nonzero to stop. */
struct engine_sink {
	int (*write)(void *user, const float *pcm, size_t n);
	int (*cancelled)(void *user);
	void *user;
};

/* Per-stage timings an engine reports, in milliseconds. Names are short
 * tokens usable in a Server-Timing header ("frontend", "llm", "flow",
 * "vocoder", "ttfa"...). */
struct engine_timings {
	size_t n;
	struct {
		char name[24];
		double ms;
	} stage[ENGINE_TIMINGS_MAX];
};

/* Engine-level gauges for /metrics (e.g. GPU memory). Names are metric-name
 * suffixes in base units ("gpu_memory_allocated_bytes"). */
struct engine_gauges {
	size_t n;
	struct {
		char name[48];
		char help[96];
		double value;
	} g[ENGINE_GAUGES_MAX];
};

int engine_open(const struct engine_config *cfg, struct engine **out, char *err, size_t errlen);
void engine_close(struct engine *e);

/* "espeak-ng" or "cosyvoice2". */
const char *engine_name(const struct engine *e);
/* Version/description string of the backend (library version, bundle id). */
const char *engine_describe(const struct engine *e);
int engine_sample_rate(const struct engine *e);

size_t engine_speaker_count(const struct engine *e);
/* i < engine_speaker_count(); NULL otherwise. */
const struct engine_speaker *engine_speaker_at(const struct engine *e, size_t i);
/* Look a speaker up by id; NULL when unknown. id NULL = the default speaker. */
const struct engine_speaker *engine_speaker_find(const struct engine *e, const char *id);

/* Voice ids that may name a file: 1..ENGINE_VOICE_ID_MAX of [A-Za-z0-9_.-],
 * starting with a letter or digit, not ending with '.'. */
#define ENGINE_VOICE_ID_MAX 64
int engine_voice_id_valid(const char *id);
/* Re-read the engine's voices (CosyVoice2: the bundle manifest's speakers and
 * voices_dir). Call it on the thread that synthesizes, between requests: the
 * speaker list and pointers from engine_speaker_at/find change. On error the
 * old set stays and err names the file. CV_EUNSUPPORTED: the backend's voices
 * are fixed (espeak-ng). */
int engine_reload_voices(struct engine *e, char *err, size_t errlen);
/* Validate one voice file (shapes, dtypes, sizes, finite values) exactly as a
 * reload would load it. Safe from any thread while the engine is open. */
int engine_check_voice(struct engine *e, const char *path, char *err, size_t errlen);

/* Run a short synthesis so the first real request is not slower. */
int engine_warmup(struct engine *e, char *err, size_t errlen);

/* Synthesize; returns 0, CV_ECANCELED (sink aborted or cancelled), CV_EINVAL
 * (bad text/speaker for this engine: err says why), CV_E2BIG, CV_EENGINE. */
int engine_synthesize(struct engine *e, const struct engine_params *p, const struct engine_sink *sink,
		      struct engine_timings *t, char *err, size_t errlen);

/* Fill backend gauges (may be empty). */
void engine_read_gauges(struct engine *e, struct engine_gauges *g);

/* Append a gauge (name: metric suffix; help: one line); dropped when g is full. */
void engine_gauges_add(struct engine_gauges *g, const char *name, const char *help, double value);

/* Helper for backends: add or overwrite a named stage. */
void engine_timings_set(struct engine_timings *t, const char *name, double ms);

#ifdef __cplusplus
}
#endif
#endif
