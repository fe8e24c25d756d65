/* common/log.h — one logging macro family for the whole daemon.
 *
 * One line per event to stderr in logfmt (`level=info comp=http msg="..."`),
 * which journald and docker timestamp. The level is checked before any
 * formatting. log_*_ratelimited() lets at most `burst` lines per key through
 * per `period_s`, then prints one "suppressed N" line when the window rolls
 * over (for repeated failures such as a GPU OOM). Thread-safe: each line is
 * formatted into a local buffer and written with one write(2).
 */
#ifndef CV_COMMON_LOG_H
#define CV_COMMON_LOG_H

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or CV_EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

void log_write(enum log_level lvl, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes a preformatted structured line: `level=.. comp=.. <kv>` (kv must be
 * logfmt already; used by the access log). */
void log_write_kv(enum log_level lvl, const char *comp, const char *kv);

/* Rate-limited variant: key identifies the kind of event (a string literal). */
void log_write_limited(enum log_level lvl, const char *comp, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_ENABLED(lvl) ((lvl) <= log_get_level())
#define log_err(comp, ...)                                             \
	do {                                                           \
		if (LOG_ENABLED(LOG_LEVEL_ERROR))                      \
			log_write(LOG_LEVEL_ERROR, comp, __VA_ARGS__); \
	} while (0)
#define log_warn(comp, ...)                                           \
	do {                                                          \
		if (LOG_ENABLED(LOG_LEVEL_WARN))                      \
			log_write(LOG_LEVEL_WARN, comp, __VA_ARGS__); \
	} while (0)
#define log_info(comp, ...)                                           \
	do {                                                          \
		if (LOG_ENABLED(LOG_LEVEL_INFO))                      \
			log_write(LOG_LEVEL_INFO, comp, __VA_ARGS__); \
	} while (0)
#define log_debug(comp, ...)                                           \
	do {                                                           \
		if (LOG_ENABLED(LOG_LEVEL_DEBUG))                      \
			log_write(LOG_LEVEL_DEBUG, comp, __VA_ARGS__); \
	} while (0)
#define log_err_limited(comp, key, ...)                                             \
	do {                                                                        \
		if (LOG_ENABLED(LOG_LEVEL_ERROR))                                   \
			log_write_limited(LOG_LEVEL_ERROR, comp, key, __VA_ARGS__); \
	} while (0)
#define log_warn_limited(comp, key, ...)                                           \
	do {                                                                       \
		if (LOG_ENABLED(LOG_LEVEL_WARN))                                   \
			log_write_limited(LOG_LEVEL_WARN, comp, key, __VA_ARGS__); \
	} while (0)

#endif
