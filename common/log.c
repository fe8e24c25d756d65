/* common/log.c — logfmt lines to stderr, one write(2) each.
 *
 * DESIGN: the message text is escaped (quotes, backslashes, control bytes)
 * so a client-supplied string can never forge a second log line. Rate
 * limiting keeps a tiny fixed table of keys (pointer identity of string
 * literals), 1-second granularity windows; no allocation on the log path.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

#define LOG_LINE_MAX	   4096
#define LOG_LIMIT_KEYS	   32
#define LOG_LIMIT_BURST	   5
#define LOG_LIMIT_PERIOD_S 10

static _Atomic int log_level_cur = LOG_LEVEL_INFO;
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl)
{
	atomic_store(&log_level_cur, (int)lvl);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level_cur);
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*out = (enum log_level)i;
			return CV_OK;
		}
	}
	return CV_EINVAL;
}

/* Append src escaped for a logfmt quoted value; returns new position. */
static size_t log_escape(char *dst, size_t pos, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)src; *p && pos + 5 < cap; p++) {
		if (*p == '"' || *p == '\\') {
			dst[pos++] = '\\';
			dst[pos++] = (char)*p;
		} else if (*p == '\n') {
			dst[pos++] = '\\';
			dst[pos++] = 'n';
		} else if (*p < 0x20 || *p == 0x7f) {
			dst[pos++] = '\\';
			dst[pos++] = 'x';
			dst[pos++] = hex[*p >> 4];
			dst[pos++] = hex[*p & 15];
		} else {
			dst[pos++] = (char)*p;
		}
	}
	return pos;
}

static void log_emit(enum log_level lvl, const char *comp, const char *msg, int raw)
{
	char line[LOG_LINE_MAX];
	size_t pos;
	int n = snprintf(line, sizeof line, "level=%s comp=%s ", log_level_names[lvl], comp ? comp : "-");
	pos = n > 0 ? (size_t)n : 0;
	if (raw) {
		size_t len = strlen(msg);
		if (len > sizeof line - pos - 2)
			len = sizeof line - pos - 2;
		memcpy(line + pos, msg, len);
		pos += len;
	} else {
		memcpy(line + pos, "msg=\"", 5);
		pos += 5;
		pos = log_escape(line, pos, sizeof line - 2, msg);
		line[pos++] = '"';
	}
	line[pos++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, pos);
	(void)w;
}

void log_write(enum log_level lvl, const char *comp, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;

	if (!LOG_ENABLED(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_emit(lvl, comp, msg, 0);
}

void log_write_kv(enum log_level lvl, const char *comp, const char *kv)
{
	if (!LOG_ENABLED(lvl))
		return;
	log_emit(lvl, comp, kv, 1);
}

struct log_limit_slot {
	const char *key;
	time_t window;
	unsigned count;
	unsigned suppressed;
};

static struct log_limit_slot log_limits[LOG_LIMIT_KEYS];
static pthread_mutex_t log_limit_mu = PTHREAD_MUTEX_INITIALIZER;

void log_write_limited(enum log_level lvl, const char *comp, const char *key, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	struct timespec ts;
	unsigned dropped = 0;
	int pass = 1;
	va_list ap;

	if (!LOG_ENABLED(lvl))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	time_t win = ts.tv_sec / LOG_LIMIT_PERIOD_S;
	pthread_mutex_lock(&log_limit_mu);
	struct log_limit_slot *s = NULL;
	for (int i = 0; i < LOG_LIMIT_KEYS; i++) {
		if (log_limits[i].key == key || log_limits[i].key == NULL) {
			s = &log_limits[i];
			break;
		}
	}
	if (s) {
		if (s->key == NULL || s->window != win) {
			dropped = s->suppressed;
			s->key = key;
			s->window = win;
			s->count = 0;
			s->suppressed = 0;
		}
		if (++s->count > LOG_LIMIT_BURST) {
			s->suppressed++;
			pass = 0;
		}
	}
	pthread_mutex_unlock(&log_limit_mu);
	if (dropped)
		log_write(lvl, comp, "%u similar messages (%s) suppressed", dropped, key);
	if (!pass)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_emit(lvl, comp, msg, 0);
}
