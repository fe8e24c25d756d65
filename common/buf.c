/* common/buf.c — capped byte buffer. Growth doubles, never beyond cap+1. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void buf_init(struct buf *b, size_t cap)
{
	b->_data = NULL;
	b->_len = 0;
	b->_alloc = 0;
	b->_cap = cap;
}

void buf_free(struct buf *b)
{
	free(b->_data);
	b->_data = NULL;
	b->_len = 0;
	b->_alloc = 0;
}

void buf_reset(struct buf *b)
{
	b->_len = 0;
	if (b->_data)
		b->_data[0] = '\0';
}

static int buf_reserve(struct buf *b, size_t need)
{
	size_t want;
	char *p;

	if (need + 1 <= b->_alloc)
		return CV_OK;
	want = b->_alloc ? b->_alloc : 64;
	while (want < need + 1)
		want *= 2;
	if (want > b->_cap + 1)
		want = b->_cap + 1;
	p = realloc(b->_data, want);
	if (!p)
		return CV_ENOMEM;
	b->_data = p;
	b->_alloc = want;
	return CV_OK;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int rc;

	if (n > b->_cap || b->_len > b->_cap - n)
		return CV_E2BIG;
	rc = buf_reserve(b, b->_len + n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->_data + b->_len, p, n);
	b->_len += n;
	b->_data[b->_len] = '\0';
	return CV_OK;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return CV_EINVAL;
	if ((size_t)n < sizeof small)
		return buf_append(b, small, (size_t)n);
	{
		size_t len = (size_t)n;
		int rc;
		if (len > b->_cap || b->_len > b->_cap - len)
			return CV_E2BIG;
		rc = buf_reserve(b, b->_len + len);
		if (rc)
			return rc;
		va_start(ap, fmt);
		vsnprintf(b->_data + b->_len, len + 1, fmt, ap);
		va_end(ap);
		b->_len += len;
	}
	return CV_OK;
}

const char *buf_data(const struct buf *b)
{
	return b->_data ? b->_data : "";
}

size_t buf_len(const struct buf *b)
{
	return b->_len;
}

size_t buf_cap(const struct buf *b)
{
	return b->_cap;
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *p = b->_data;
	if (len)
		*len = b->_len;
	b->_data = NULL;
	b->_len = 0;
	b->_alloc = 0;
	return p;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->_len) {
		buf_reset(b);
		return;
	}
	memmove(b->_data, b->_data + n, b->_len - n);
	b->_len -= n;
	b->_data[b->_len] = '\0';
}
