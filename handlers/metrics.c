/* handlers/metrics.c — Prometheus metrics of the daemon (text format 0.0.4).
 *
 * DESIGN
 * - All state is plain integers/doubles in one struct guarded by one mutex.
 *   An observation takes the lock, scans a short fixed bucket array and bumps
 *   a few fields: O(buckets), no allocation, no formatting. metrics_render()
 *   copies the whole state under the lock (about 2 KiB, one struct copy) and formats
 *   the copy with the lock released, so a slow scrape never blocks request
 *   threads, and every scrape is a consistent snapshot (a histogram's +Inf
 *   bucket always equals its _count because both come from the same copy).
 * - Histogram buckets are stored non-cumulative (one slot per bound plus an
 *   overflow slot) and made cumulative when rendering; _count is the running
 *   total of those slots, so "+Inf == _count" holds by construction.
 * - Label sets are small and fixed (route x status-code table, rejection
 *   reasons), so series live in arrays indexed by enum, never in a hash map.
 *   cosyvoiced_requests_total only renders series observed at least once
 *   (8 routes x 14 codes would be 112 mostly-zero lines); rejection reasons
 *   are always all rendered, zero included, so alerts can use rate() from
 *   the start.
 * - Only the synthesis routes (tts, speech) get a request-duration histogram:
 *   probes and scrapes would drown the latency signal and multiply series.
 * - Rendering goes into a private buffer capped at what is left in `out`
 *   and is appended in one piece, so CV_E2BIG leaves `out` untouched.
 * - Numbers are formatted under a thread-local "C" locale (uselocale), so a
 *   setlocale() elsewhere in the process can never turn "0.5" into "0,5".
 *   Floats use the shortest of %.15g/%.16g/%.17g that round-trips exactly.
 * - Non-finite observations are dropped and negative ones clamped to 0, so
 *   one bad clock reading cannot poison a _sum forever.
 * - Process start time is computed once in metrics_new() from
 *   /proc/self/stat (starttime, clock ticks since boot) + btime of
 *   /proc/stat, i.e. when the process really started; when /proc is not
 *   readable it falls back to the wall clock at metrics_new().
 */
#include "handlers/metrics.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/mem.h"
#include "common/version.h"

#define PFX "cosyvoiced_"

/* Latency buckets in seconds: 5 ms .. 2 min. */
static const double lat_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define LAT_NB (sizeof lat_bounds / sizeof lat_bounds[0])

/* Real-time factor (synthesis time / audio time, unitless). */
static const double rtf_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10};
#define RTF_NB (sizeof rtf_bounds / sizeof rtf_bounds[0])

#define MAX_NB 16

/* HTTP status codes with their own series; everything else is "other". */
static const int code_table[] = {200, 201, 204, 400, 401, 403, 404, 405,
				 409, 413, 415, 422, 429, 500, 503, 504};
#define CODE_N	   (sizeof code_table / sizeof code_table[0])
#define CODE_OTHER CODE_N
#define CODE_SLOTS (CODE_N + 1)

/* Synthesis routes that get a duration histogram. */
static const enum metrics_route dur_routes[] = {METRICS_ROUTE_TTS, METRICS_ROUTE_SPEECH};
#define DUR_N (sizeof dur_routes / sizeof dur_routes[0])

struct hist {
	uint64_t bucket[MAX_NB + 1]; /* non-cumulative; [nb] is the overflow */
	uint64_t count;
	double sum;
};

struct metrics_state {
	uint64_t requests[METRICS_ROUTE_COUNT][CODE_SLOTS];
	struct hist duration[DUR_N];
	struct hist queue_wait;
	struct hist ttfa;
	struct hist rtf;
	struct hist synthesis;
	double audio_seconds;
	uint64_t input_chars;
	uint64_t rejections[METRICS_REJECT_COUNT];
	uint64_t cancellations;
	uint64_t deadline_misses;
	uint64_t engine_errors;
	uint64_t engine_oom;
	int64_t inflight;
};

struct metrics {
	pthread_mutex_t mu;
	struct metrics_state st;
	char *version;
	double start_time_s;
	locale_t c_locale; /* (locale_t)0 when newlocale failed */
};

static const char *const route_names[METRICS_ROUTE_COUNT] = {
    [METRICS_ROUTE_TTS] = "tts",	   [METRICS_ROUTE_SPEECH] = "speech",
    [METRICS_ROUTE_SPEAKERS] = "speakers", [METRICS_ROUTE_NORMALIZE] = "normalize",
    [METRICS_ROUTE_HEALTHZ] = "healthz",   [METRICS_ROUTE_READYZ] = "readyz",
    [METRICS_ROUTE_METRICS] = "metrics",   [METRICS_ROUTE_VOICE] = "voice",
    [METRICS_ROUTE_WEB] = "web",	   [METRICS_ROUTE_OTHER] = "other",
};

static const char *const reject_names[METRICS_REJECT_COUNT] = {
    [METRICS_REJECT_QUEUE_FULL] = "queue_full",	      [METRICS_REJECT_BODY_TOO_LARGE] = "body_too_large",
    [METRICS_REJECT_TEXT_TOO_LONG] = "text_too_long", [METRICS_REJECT_INVALID] = "invalid",
    [METRICS_REJECT_UNAUTHORIZED] = "unauthorized",   [METRICS_REJECT_NOT_READY] = "not_ready",
    [METRICS_REJECT_SHUTTING_DOWN] = "shutting_down", [METRICS_REJECT_MEMORY] = "memory",
};

/* Family names our own code renders; engine gauges must not collide. */
static const char *const reserved_engine_suffixes[] = {"info", "ready", "load_seconds", "warmup_seconds",
						       "errors_total"};

const char *metrics_route_name(enum metrics_route r)
{
	if ((int)r < 0 || r >= METRICS_ROUTE_COUNT)
		return route_names[METRICS_ROUTE_OTHER];
	return route_names[r];
}

const char *metrics_reject_name(enum metrics_reject r)
{
	if ((int)r < 0 || r >= METRICS_REJECT_COUNT)
		return "unknown";
	return reject_names[r];
}

/* ---- process information ---------------------------------------------- */

static double proc_start_time_s(void)
{
	char line[1024];
	FILE *f;
	size_t n;
	unsigned long long start_ticks = 0, btime = 0;
	int have_start = 0, have_btime = 0;
	long hz = sysconf(_SC_CLK_TCK);

	f = fopen("/proc/self/stat", "r");
	if (f) {
		n = fread(line, 1, sizeof line - 1, f);
		line[n] = '\0';
		fclose(f);
		/* comm may hold spaces and ')': fields restart after the last ')'. */
		char *p = strrchr(line, ')');
		if (p) {
			int field = 2; /* the ')' closes field 2 */
			p++;
			while (*p && field < 22) {
				while (*p == ' ')
					p++;
				field++;
				if (field == 22) {
					char *end;
					start_ticks = strtoull(p, &end, 10);
					have_start = end != p;
					break;
				}
				while (*p && *p != ' ')
					p++;
			}
		}
	}
	f = fopen("/proc/stat", "r");
	if (f) {
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "btime ", 6) == 0) {
				char *end;
				btime = strtoull(line + 6, &end, 10);
				have_btime = end != line + 6;
				break;
			}
		}
		fclose(f);
	}
	if (!have_start || !have_btime || hz <= 0)
		return clock_wall_s();
	return (double)btime + (double)start_ticks / (double)hz;
}

/* Resident set size in bytes, or -1 when /proc/self/statm is unreadable. */
static double proc_resident_bytes(void)
{
	char line[256];
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "r");
	int ok;

	if (!f)
		return -1;
	ok = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	if (!ok || page <= 0 || sscanf(line, "%llu %llu", &size, &resident) != 2)
		return -1;
	return (double)resident * (double)page;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct metrics *metrics_new(const char *version)
{
	struct metrics *m = xcalloc(1, sizeof *m);

	pthread_mutex_init(&m->mu, NULL);
	m->version = xstrdup(version ? version : "unknown");
	m->start_time_s = proc_start_time_s();
	m->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	if (m->c_locale != (locale_t)0)
		freelocale(m->c_locale);
	free(m->version);
	free(m);
}

/* ---- observations --------------------------------------------------------- */

/* Returns 0 and the cleaned value, or -1 to drop it. */
static int clean_value(double v, double *out)
{
	if (!isfinite(v))
		return -1;
	*out = v < 0 ? 0 : v;
	return 0;
}

static void hist_observe(struct hist *h, const double *bounds, size_t nb, double v)
{
	size_t i = 0;

	while (i < nb && v > bounds[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += v;
}

static size_t code_slot(int status)
{
	for (size_t i = 0; i < CODE_N; i++)
		if (code_table[i] == status)
			return i;
	return CODE_OTHER;
}

void metrics_observe_request(struct metrics *m, enum metrics_route r, int http_status, double duration_s)
{
	double v;
	int have_v;

	if (!m)
		return;
	if ((int)r < 0 || r >= METRICS_ROUTE_COUNT)
		r = METRICS_ROUTE_OTHER;
	have_v = clean_value(duration_s, &v) == 0;
	pthread_mutex_lock(&m->mu);
	m->st.requests[r][code_slot(http_status)]++;
	for (size_t i = 0; i < DUR_N && have_v; i++)
		if (dur_routes[i] == r)
			hist_observe(&m->st.duration[i], lat_bounds, LAT_NB, v);
	pthread_mutex_unlock(&m->mu);
}

static void observe_latency(struct metrics *m, struct hist *h, const double *bounds, size_t nb, double raw)
{
	double v;

	if (!m || clean_value(raw, &v))
		return;
	pthread_mutex_lock(&m->mu);
	hist_observe(h, bounds, nb, v);
	pthread_mutex_unlock(&m->mu);
}

void metrics_observe_queue_wait(struct metrics *m, double seconds)
{
	if (m)
		observe_latency(m, &m->st.queue_wait, lat_bounds, LAT_NB, seconds);
}

void metrics_observe_ttfa(struct metrics *m, double seconds)
{
	if (m)
		observe_latency(m, &m->st.ttfa, lat_bounds, LAT_NB, seconds);
}

void metrics_observe_rtf(struct metrics *m, double rtf)
{
	if (m)
		observe_latency(m, &m->st.rtf, rtf_bounds, RTF_NB, rtf);
}

void metrics_observe_synthesis(struct metrics *m, double seconds)
{
	if (m)
		observe_latency(m, &m->st.synthesis, lat_bounds, LAT_NB, seconds);
}

void metrics_add_audio_seconds(struct metrics *m, double seconds)
{
	double v;

	if (!m || clean_value(seconds, &v))
		return;
	pthread_mutex_lock(&m->mu);
	m->st.audio_seconds += v;
	pthread_mutex_unlock(&m->mu);
}

void metrics_add_input_chars(struct metrics *m, size_t n)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->st.input_chars += n;
	pthread_mutex_unlock(&m->mu);
}

void metrics_inc_rejection(struct metrics *m, enum metrics_reject r)
{
	if (!m || (int)r < 0 || r >= METRICS_REJECT_COUNT)
		return;
	pthread_mutex_lock(&m->mu);
	m->st.rejections[r]++;
	pthread_mutex_unlock(&m->mu);
}

static void inc_counter(struct metrics *m, uint64_t *c)
{
	pthread_mutex_lock(&m->mu);
	(*c)++;
	pthread_mutex_unlock(&m->mu);
}

void metrics_inc_cancellation(struct metrics *m)
{
	if (m)
		inc_counter(m, &m->st.cancellations);
}

void metrics_inc_deadline_miss(struct metrics *m)
{
	if (m)
		inc_counter(m, &m->st.deadline_misses);
}

void metrics_inc_engine_oom(struct metrics *m)
{
	if (m)
		inc_counter(m, &m->st.engine_oom);
}

void metrics_inc_engine_error(struct metrics *m)
{
	if (m)
		inc_counter(m, &m->st.engine_errors);
}

void metrics_add_inflight(struct metrics *m, int delta)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->st.inflight += delta;
	pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ------------------------------------------------------------ */

/* Shortest %.Ng (15..17) that reads back as the same double; Prometheus
 * spellings for the non-finite values. */
static void fmt_double(char *dst, size_t cap, double v)
{
	if (isnan(v)) {
		cv_strlcpy(dst, "NaN", cap);
		return;
	}
	if (isinf(v)) {
		cv_strlcpy(dst, v > 0 ? "+Inf" : "-Inf", cap);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(dst, cap, "%.*g", prec, v);
		if (strtod(dst, NULL) == v)
			return;
	}
}

/* Label value: escape backslash, double quote and newline. */
static int put_label_value(struct buf *b, const char *s)
{
	int rc = CV_OK;

	for (const char *p = s; *p && rc == CV_OK; p++) {
		switch (*p) {
		case '\\': rc = buf_append(b, "\\\\", 2); break;
		case '"': rc = buf_append(b, "\\\"", 2); break;
		case '\n': rc = buf_append(b, "\\n", 2); break;
		default: rc = buf_append(b, p, 1); break;
		}
	}
	return rc;
}

/* HELP text: escape backslash and newline. */
static int put_help_text(struct buf *b, const char *s, size_t max)
{
	int rc = CV_OK;

	for (size_t i = 0; i < max && s[i] && rc == CV_OK; i++) {
		switch (s[i]) {
		case '\\': rc = buf_append(b, "\\\\", 2); break;
		case '\n': rc = buf_append(b, "\\n", 2); break;
		default: rc = buf_append(b, &s[i], 1); break;
		}
	}
	return rc;
}

static int put_header(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int put_u64(struct buf *b, const char *name, uint64_t v)
{
	return buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static int put_double(struct buf *b, const char *name, double v)
{
	char num[40];

	fmt_double(num, sizeof num, v);
	return buf_printf(b, "%s %s\n", name, num);
}

static int put_scalar(struct buf *b, const char *name, const char *type, const char *help, double v)
{
	int rc = put_header(b, name, type, help);
	return rc ? rc : put_double(b, name, v);
}

static int put_counter_u64(struct buf *b, const char *name, const char *help, uint64_t v)
{
	int rc = put_header(b, name, "counter", help);
	return rc ? rc : put_u64(b, name, v);
}

/* Samples of one histogram; `label` is `name="value",` or "" (already safe). */
static int put_hist_samples(struct buf *b, const char *name, const char *label, const struct hist *h,
			    const double *bounds, size_t nb)
{
	char num[40];
	uint64_t cum = 0;
	int rc;

	for (size_t i = 0; i < nb; i++) {
		cum += h->bucket[i];
		fmt_double(num, sizeof num, bounds[i]);
		rc =
		    buf_printf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name, label, num, (unsigned long long)cum);
		if (rc)
			return rc;
	}
	cum += h->bucket[nb];
	rc = buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)cum);
	if (rc)
		return rc;
	fmt_double(num, sizeof num, h->sum);
	if (*label) {
		/* `label` ends with a comma; drop it for _sum/_count. */
		int ll = (int)strlen(label) - 1;
		rc = buf_printf(b, "%s_sum{%.*s} %s\n%s_count{%.*s} %llu\n", name, ll, label, num, name, ll,
				label, (unsigned long long)h->count);
	} else {
		rc = buf_printf(b, "%s_sum %s\n%s_count %llu\n", name, num, name,
				(unsigned long long)h->count);
	}
	return rc;
}

static int put_hist(struct buf *b, const char *name, const char *help, const struct hist *h,
		    const double *bounds, size_t nb)
{
	int rc = put_header(b, name, "histogram", help);
	return rc ? rc : put_hist_samples(b, name, "", h, bounds, nb);
}

static int valid_engine_suffix(const char *name, size_t cap)
{
	size_t n = strnlen(name, cap);

	if (n == 0 || n == cap)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	/* Gauges must not look like counters (promtool lint). */
	if (n >= 6 && strcmp(name + n - 6, "_total") == 0)
		return 0;
	for (size_t i = 0; i < sizeof reserved_engine_suffixes / sizeof reserved_engine_suffixes[0]; i++)
		if (strcmp(name, reserved_engine_suffixes[i]) == 0)
			return 0;
	return 1;
}

static int put_engine_gauges(struct buf *b, const struct engine_gauges *eg)
{
	size_t n = eg->n < ENGINE_GAUGES_MAX ? eg->n : ENGINE_GAUGES_MAX;
	char name[128];
	int rc;

	for (size_t i = 0; i < n; i++) {
		const char *suffix = eg->g[i].name;
		int dup = 0;

		if (!valid_engine_suffix(suffix, sizeof eg->g[i].name))
			continue;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strncmp(eg->g[j].name, suffix, sizeof eg->g[i].name) == 0;
		if (dup)
			continue;
		snprintf(name, sizeof name, PFX "engine_%s", suffix);
		rc = buf_printf(b, "# HELP %s ", name);
		if (!rc) {
			if (strnlen(eg->g[i].help, sizeof eg->g[i].help) > 0)
				rc = put_help_text(b, eg->g[i].help, sizeof eg->g[i].help);
			else
				rc = buf_printf(b, "Engine gauge %s.", suffix);
		}
		if (!rc)
			rc = buf_printf(b, "\n# TYPE %s gauge\n", name);
		if (!rc)
			rc = put_double(b, name, eg->g[i].value);
		if (rc)
			return rc;
	}
	return CV_OK;
}

static int render_state(struct buf *b, const struct metrics_state *st, const char *version, double start_time,
			const struct metrics_gauges *g)
{
	char lbl[64];
	double rss;
	int rc;

#define TRY(expr)                  \
	do {                       \
		rc = (expr);       \
		if (rc)            \
			return rc; \
	} while (0)

	/* Requests: only series observed at least once. */
	TRY(put_header(b, PFX "requests_total", "counter", "HTTP requests by route and status code."));
	for (size_t r = 0; r < METRICS_ROUTE_COUNT; r++) {
		for (size_t c = 0; c < CODE_SLOTS; c++) {
			if (!st->requests[r][c])
				continue;
			if (c == CODE_OTHER)
				cv_strlcpy(lbl, "other", sizeof lbl);
			else
				snprintf(lbl, sizeof lbl, "%d", code_table[c]);
			TRY(buf_printf(b, PFX "requests_total{route=\"%s\",code=\"%s\"} %llu\n",
				       route_names[r], lbl, (unsigned long long)st->requests[r][c]));
		}
	}

	TRY(put_header(b, PFX "request_duration_seconds", "histogram",
		       "Time from request arrival to the last response byte, synthesis routes."));
	for (size_t i = 0; i < DUR_N; i++) {
		snprintf(lbl, sizeof lbl, "route=\"%s\",", route_names[dur_routes[i]]);
		TRY(put_hist_samples(b, PFX "request_duration_seconds", lbl, &st->duration[i], lat_bounds,
				     LAT_NB));
	}
	TRY(put_hist(b, PFX "queue_wait_seconds", "Time a synthesis job waited in the queue.",
		     &st->queue_wait, lat_bounds, LAT_NB));
	TRY(put_hist(b, PFX "time_to_first_audio_seconds",
		     "Time from request arrival to the first audio bytes sent.", &st->ttfa, lat_bounds,
		     LAT_NB));
	TRY(put_hist(b, PFX "real_time_factor",
		     "Synthesis time divided by the duration of the audio produced.", &st->rtf, rtf_bounds,
		     RTF_NB));
	TRY(put_hist(b, PFX "synthesis_seconds", "Time the engine spent synthesizing one request.",
		     &st->synthesis, lat_bounds, LAT_NB));

	TRY(put_header(b, PFX "audio_seconds_total", "counter", "Seconds of audio synthesized."));
	TRY(put_double(b, PFX "audio_seconds_total", st->audio_seconds));
	TRY(put_counter_u64(b, PFX "input_characters_total",
			    "Characters of input text accepted for synthesis.", st->input_chars));

	TRY(put_header(b, PFX "rejections_total", "counter",
		       "Requests rejected before synthesis, by reason."));
	for (size_t r = 0; r < METRICS_REJECT_COUNT; r++)
		TRY(buf_printf(b, PFX "rejections_total{reason=\"%s\"} %llu\n", reject_names[r],
			       (unsigned long long)st->rejections[r]));
	TRY(put_counter_u64(b, PFX "cancellations_total",
			    "Synthesis jobs cancelled (client went away or asked).", st->cancellations));
	TRY(put_counter_u64(b, PFX "deadline_misses_total", "Synthesis jobs that ran past their deadline.",
			    st->deadline_misses));
	TRY(put_counter_u64(b, PFX "engine_errors_total", "Synthesis jobs that failed inside the engine.",
			    st->engine_errors));
	TRY(put_counter_u64(
	    b, PFX "engine_out_of_memory_total",
	    "Synthesis jobs that ran out of (GPU) memory; each fails alone, caches are freed.",
	    st->engine_oom));

	TRY(put_scalar(b, PFX "queue_depth", "gauge", "Synthesis jobs waiting in the queue.",
		       (double)g->queue_depth));
	TRY(put_scalar(b, PFX "queue_capacity", "gauge", "Maximum number of queued synthesis jobs.",
		       (double)g->queue_capacity));
	TRY(put_scalar(b, PFX "in_flight_requests", "gauge", "Requests currently being served.",
		       (double)st->inflight));
	TRY(put_scalar(b, PFX "engine_ready", "gauge", "1 when the engine is loaded and warmed up.",
		       g->engine_ready ? 1 : 0));
	TRY(put_scalar(b, PFX "worker_busy", "gauge", "1 while the worker is synthesizing.",
		       g->worker_busy ? 1 : 0));
	TRY(put_scalar(b, PFX "engine_load_seconds", "gauge", "Time it took to load the engine.",
		       g->engine_load_seconds));
	TRY(put_scalar(b, PFX "engine_warmup_seconds", "gauge", "Time the engine warmup took.",
		       g->engine_warmup_seconds));

	TRY(put_scalar(b, PFX "voices", "gauge",
		       "Voice ids the engine serves (cross-lingual variants included).", (double)g->voices));
	TRY(put_header(b, PFX "voice_reloads_total", "counter",
		       "Voice reloads (SIGHUP, PUT, DELETE), by result; a refused one keeps the voices."));
	TRY(buf_printf(b, PFX "voice_reloads_total{result=\"ok\"} %llu\n",
		       (unsigned long long)g->voice_reloads_ok));
	TRY(buf_printf(b, PFX "voice_reloads_total{result=\"refused\"} %llu\n",
		       (unsigned long long)g->voice_reloads_refused));
	TRY(put_header(b, PFX "voice_changes_total", "counter",
		       "PUT and DELETE /v1/speakers/{id}, by operation and result."));
	{
		const struct {
			const char *op, *result;
			uint64_t n;
		} changes[] = {{"put", "ok", g->voice_puts_ok},
			       {"put", "refused", g->voice_puts_refused},
			       {"delete", "ok", g->voice_deletes_ok},
			       {"delete", "refused", g->voice_deletes_refused}};
		for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++)
			TRY(buf_printf(b, PFX "voice_changes_total{op=\"%s\",result=\"%s\"} %llu\n",
				       changes[i].op, changes[i].result, (unsigned long long)changes[i].n));
	}

	TRY(put_header(b, PFX "build_info", "gauge", "Build information; the value is always 1."));
	TRY(buf_append_str(b, PFX "build_info{version=\""));
	TRY(put_label_value(b, version));
	TRY(buf_append_str(b, "\",revision=\""));
	TRY(put_label_value(b, CV_GIT));
	TRY(buf_append_str(b, "\"} 1\n"));
	if (g->engine_name) {
		TRY(put_header(b, PFX "engine_info", "gauge",
			       "Speech engine in use; the value is always 1."));
		TRY(buf_append_str(b, PFX "engine_info{engine=\""));
		TRY(put_label_value(b, g->engine_name));
		TRY(buf_append_str(b, "\"} 1\n"));
	}

	rss = proc_resident_bytes();
	if (rss >= 0)
		TRY(put_scalar(b, PFX "process_resident_memory_bytes", "gauge",
			       "Resident memory size in bytes.", rss));
	TRY(put_scalar(b, PFX "process_start_time_seconds", "gauge",
		       "Start time of the process since the Unix epoch in seconds.", start_time));

	if (g->engine)
		TRY(put_engine_gauges(b, g->engine));
#undef TRY
	return CV_OK;
}

int metrics_render(struct metrics *m, const struct metrics_gauges *g, struct buf *out)
{
	static const struct metrics_gauges no_gauges;
	struct metrics_state snap;
	struct buf tmp;
	locale_t old = (locale_t)0;
	int rc;

	if (!m || !out)
		return CV_EINVAL;
	if (!g)
		g = &no_gauges;
	pthread_mutex_lock(&m->mu);
	snap = m->st;
	pthread_mutex_unlock(&m->mu);

	buf_init(&tmp, buf_cap(out) - buf_len(out));
	if (m->c_locale != (locale_t)0)
		old = uselocale(m->c_locale);
	rc = render_state(&tmp, &snap, m->version, m->start_time_s, g);
	if (m->c_locale != (locale_t)0)
		uselocale(old);
	if (rc == CV_OK)
		rc = buf_append(out, buf_data(&tmp), buf_len(&tmp));
	buf_free(&tmp);
	return rc;
}
