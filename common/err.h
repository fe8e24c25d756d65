/* common/err.h — the one error convention of cosyvoiced.
 *
 * Every fallible function returns int: 0 (CV_OK) on success or one of the
 * negative CV_E* codes below; results travel in out-parameters. Functions
 * that can say more fill a caller-supplied `char *err, size_t errlen` buffer
 * (always NUL-terminated, truncated to errlen) through cv_errf(); err may be
 * NULL (or errlen 0) when the caller wants the code alone. The callee frees what it
 * allocated when it fails. Small bookkeeping allocations abort through
 * xmalloc() (common/mem.h); oversized *requests* never abort: they get an
 * error code that maps to an HTTP status (handlers/errors.h).
 */
#ifndef CV_COMMON_ERR_H
#define CV_COMMON_ERR_H

enum cv_err {
	CV_OK = 0,
	CV_EINVAL = -1,	       /* bad argument / bad input value */
	CV_ENOMEM = -2,	       /* allocation failed (large, request-sized buffers) */
	CV_E2BIG = -3,	       /* a hard cap was exceeded */
	CV_EFULL = -4,	       /* queue full */
	CV_ECANCELED = -5,     /* cancelled (client went away, or asked) */
	CV_ETIMEDOUT = -6,     /* deadline passed */
	CV_ESHUTDOWN = -7,     /* daemon is shutting down */
	CV_EENGINE = -8,       /* the engine failed */
	CV_ENOTFOUND = -9,     /* unknown speaker, route, key... */
	CV_EIO = -10,	       /* file or socket I/O failed */
	CV_EUNSUPPORTED = -11, /* valid but not supported here */
	CV_ENOTREADY = -12,    /* engine not loaded / warmed up yet */
	CV_EBUDGET = -13       /* predicted memory need over the configured budget */
};

#include <stdarg.h>
#include <stddef.h>

/* Short stable name of an error code ("EINVAL"...), never NULL. */
const char *cv_strerror(int code);

/* Format the error text into err (truncated, NUL-terminated); nothing when
 * err is NULL or errlen 0. The one formatter of every err/errlen pair. */
void cv_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cv_verrf(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
