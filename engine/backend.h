/* engine/backend.h — what a backend implements (private to engine/).
 *
 * engine.c owns struct engine and dispatches through this vtable; a backend
 * keeps its own state behind `impl`. Adding a backend = one .c file with a
 * `const struct engine_backend engine_backend_<name>` and one line in
 * engine.c's table.
 */
#ifndef CV_ENGINE_BACKEND_H
#define CV_ENGINE_BACKEND_H

#include "engine/engine.h"

struct engine_backend {
	const char *name; /* config value, e.g. "espeak" */
	int (*open)(const struct engine_config *cfg, void **impl, char *err, size_t errlen);
	void (*close)(void *impl);
	const char *(*display_name)(void *impl);
	const char *(*describe)(void *impl);
	int (*sample_rate)(void *impl);
	size_t (*speaker_count)(void *impl);
	const struct engine_speaker *(*speaker_at)(void *impl, size_t i);
	const char *(*default_speaker)(void *impl);
	int (*warmup)(void *impl, char *err, size_t errlen);
	int (*synthesize)(void *impl, const struct engine_params *p, const struct engine_sink *sink,
			  struct engine_timings *t, char *err, size_t errlen);
	void (*read_gauges)(void *impl, struct engine_gauges *g);   /* may be NULL */
	int (*reload_voices)(void *impl, char *err, size_t errlen); /* NULL: fixed voices */
	/* Validate a voice file as reload_voices would; any thread (reads only
	 * what open fixed). NULL: fixed voices. */
	int (*check_voice)(void *impl, const char *path, char *err, size_t errlen);
};

/* Report the start of a load stage through cfg->progress (no-op when unset). */
void backend_report_stage(const struct engine_config *cfg, const char *stage);

extern const struct engine_backend engine_backend_espeak;
extern const struct engine_backend engine_backend_cosyvoice2;

#endif
