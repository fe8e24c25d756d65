/* common/err.c — names of the CV_E* codes, and the error-text formatter. */
#include "common/err.h"

#include <stdio.h>

void cv_verrf(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
}

void cv_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cv_verrf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *cv_strerror(int code)
{
	switch (code) {
	case CV_OK: return "ok";
	case CV_EINVAL: return "invalid argument";
	case CV_ENOMEM: return "out of memory";
	case CV_E2BIG: return "limit exceeded";
	case CV_EFULL: return "queue full";
	case CV_ECANCELED: return "cancelled";
	case CV_ETIMEDOUT: return "deadline exceeded";
	case CV_ESHUTDOWN: return "shutting down";
	case CV_EENGINE: return "engine failure";
	case CV_ENOTFOUND: return "not found";
	case CV_EIO: return "i/o error";
	case CV_EUNSUPPORTED: return "unsupported";
	case CV_ENOTREADY: return "not ready";
	case CV_EBUDGET: return "over the memory budget";
	default: return "unknown error";
	}
}
