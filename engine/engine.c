/* engine/engine.c — the public engine API, dispatching through backend vtables.
 *
 * DESIGN: struct engine is just {backend vtable, backend state}; every public
 * function is a NULL-safe one-line dispatch so backends stay small and the
 * daemon never needs to know which backend it runs. Backends are picked from
 * a static table by their config name (Redis's ConnectionType idea): adding
 * one is a .c file plus one line here. Speaker lookup lives here, on top of
 * speaker_count/speaker_at, so every backend resolves ids the same way
 * (exact match first, then ASCII case-insensitive).
 */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "common/mem.h"
#include "engine/backend.h"

struct engine {
	const struct engine_backend *be;
	void *impl;
};

static const struct engine_backend *const engine_backends[] = {
    &engine_backend_espeak,
    &engine_backend_cosyvoice2,
};

void backend_report_stage(const struct engine_config *cfg, const char *stage)
{
	if (cfg && cfg->progress)
		cfg->progress(cfg->progress_user, stage);
}

int engine_open(const struct engine_config *cfg, struct engine **out, char *err, size_t errlen)
{
	const struct engine_backend *be = NULL;
	const char *name;
	void *impl = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!cfg || !out) {
		cv_errf(err, errlen, "%s", "engine_open: missing config");
		return CV_EINVAL;
	}
	name = cfg->backend && cfg->backend[0] ? cfg->backend : "espeak";
	for (size_t i = 0; i < sizeof engine_backends / sizeof engine_backends[0]; i++) {
		if (strcmp(engine_backends[i]->name, name) == 0) {
			be = engine_backends[i];
			break;
		}
	}
	if (!be) {
		if (err && errlen)
			snprintf(err, errlen, "unknown engine backend '%s' (known: espeak, cosyvoice2)",
				 name);
		return CV_EINVAL;
	}
	if (err && errlen)
		err[0] = '\0';
	rc = be->open(cfg, &impl, err, errlen);
	if (rc != CV_OK)
		return rc;
	struct engine *e = xcalloc(1, sizeof *e);
	e->be = be;
	e->impl = impl;
	*out = e;
	return CV_OK;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	e->be->close(e->impl);
	free(e);
}

const char *engine_name(const struct engine *e)
{
	return e ? e->be->display_name(e->impl) : NULL;
}

const char *engine_describe(const struct engine *e)
{
	return e ? e->be->describe(e->impl) : NULL;
}

int engine_sample_rate(const struct engine *e)
{
	return e ? e->be->sample_rate(e->impl) : 0;
}

size_t engine_speaker_count(const struct engine *e)
{
	return e ? e->be->speaker_count(e->impl) : 0;
}

const struct engine_speaker *engine_speaker_at(const struct engine *e, size_t i)
{
	if (!e || i >= e->be->speaker_count(e->impl))
		return NULL;
	return e->be->speaker_at(e->impl, i);
}

const struct engine_speaker *engine_speaker_find(const struct engine *e, const char *id)
{
	size_t n;

	if (!e)
		return NULL;
	if (!id)
		id = e->be->default_speaker(e->impl);
	if (!id)
		return NULL;
	n = e->be->speaker_count(e->impl);
	for (size_t i = 0; i < n; i++) {
		const struct engine_speaker *s = e->be->speaker_at(e->impl, i);
		if (s && s->id && strcmp(s->id, id) == 0)
			return s;
	}
	for (size_t i = 0; i < n; i++) {
		const struct engine_speaker *s = e->be->speaker_at(e->impl, i);
		if (s && s->id && strcasecmp(s->id, id) == 0)
			return s;
	}
	return NULL;
}

int engine_warmup(struct engine *e, char *err, size_t errlen)
{
	if (!e) {
		cv_errf(err, errlen, "%s", "engine_warmup: no engine");
		return CV_EINVAL;
	}
	return e->be->warmup(e->impl, err, errlen);
}

int engine_synthesize(struct engine *e, const struct engine_params *p, const struct engine_sink *sink,
		      struct engine_timings *t, char *err, size_t errlen)
{
	if (!e || !p || !p->text || !sink || !sink->write) {
		cv_errf(err, errlen, "%s", "engine_synthesize: missing engine, text or sink");
		return CV_EINVAL;
	}
	return e->be->synthesize(e->impl, p, sink, t, err, errlen);
}

void engine_read_gauges(struct engine *e, struct engine_gauges *g)
{
	if (!g)
		return;
	g->n = 0;
	if (e && e->be->read_gauges)
		e->be->read_gauges(e->impl, g);
}

void engine_gauges_add(struct engine_gauges *g, const char *name, const char *help, double value)
{
	if (!g || g->n >= ENGINE_GAUGES_MAX)
		return;
	cv_strlcpy(g->g[g->n].name, name, sizeof g->g[g->n].name);
	cv_strlcpy(g->g[g->n].help, help, sizeof g->g[g->n].help);
	g->g[g->n].value = value;
	g->n++;
}

void engine_timings_set(struct engine_timings *t, const char *name, double ms)
{
	char key[sizeof t->stage[0].name];

	if (!t || !name || !name[0])
		return;
	/* Compare on the stored (possibly truncated) form so a long name
	 * overwrites itself instead of piling up. */
	cv_strlcpy(key, name, sizeof key);
	if (t->n > ENGINE_TIMINGS_MAX)
		t->n = ENGINE_TIMINGS_MAX;
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->stage[i].name, key) == 0) {
			t->stage[i].ms = ms;
			return;
		}
	}
	if (t->n == ENGINE_TIMINGS_MAX)
		return;
	memcpy(t->stage[t->n].name, key, sizeof key);
	t->stage[t->n].ms = ms;
	t->n++;
}

int engine_voice_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > ENGINE_VOICE_ID_MAX || !isalnum((unsigned char)id[0]) || id[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '.' && id[i] != '-')
			return 0;
	return 1;
}

int engine_reload_voices(struct engine *e, char *err, size_t errlen)
{
	if (!e || !e->be->reload_voices) {
		cv_errf(err, errlen, "the %s engine's voices are fixed", e ? engine_name(e) : "(none)");
		return CV_EUNSUPPORTED;
	}
	return e->be->reload_voices(e->impl, err, errlen);
}

int engine_check_voice(struct engine *e, const char *path, char *err, size_t errlen)
{
	if (!e || !e->be->check_voice) {
		cv_errf(err, errlen, "the %s engine's voices are fixed", e ? engine_name(e) : "(none)");
		return CV_EUNSUPPORTED;
	}
	return e->be->check_voice(e->impl, path, err, errlen);
}
