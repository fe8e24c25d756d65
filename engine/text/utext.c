/* engine/text/utext.c — code-point strings and Python's character classes.
 *
 * DESIGN: the frontend's rules are Python string operations, so they run on
 * code points here. Character classes that Python takes from its own Unicode
 * tables (isspace, isdigit) are spelled out from Python 3.11 (Unicode 14);
 * general categories (Nd, P*, S*) come from utf8proc like the tokenizer's.
 */
#include "engine/text/utext.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/err.h"

void utext_init(struct utext *t)
{
	t->c = NULL;
	t->n = 0;
	t->cap = 0;
}

void utext_free(struct utext *t)
{
	if (!t)
		return;
	free(t->c);
	utext_init(t);
}

void utext_clear(struct utext *t)
{
	t->n = 0;
}

static int utext_reserve(struct utext *t, size_t extra)
{
	if (extra > SIZE_MAX / 8 - t->n)
		return CV_ENOMEM;
	size_t need = t->n + extra;
	if (need <= t->cap)
		return CV_OK;
	size_t cap = t->cap ? t->cap : 16;
	while (cap < need)
		cap *= 2;
	uint32_t *p = realloc(t->c, cap * sizeof *p);
	if (!p)
		return CV_ENOMEM;
	t->c = p;
	t->cap = cap;
	return CV_OK;
}

int utext_push(struct utext *t, uint32_t c)
{
	int rc = utext_reserve(t, 1);
	if (rc)
		return rc;
	t->c[t->n++] = c;
	return CV_OK;
}

int utext_append(struct utext *t, const uint32_t *c, size_t n)
{
	if (n == 0)
		return CV_OK;
	int rc = utext_reserve(t, n);
	if (rc)
		return rc;
	memcpy(t->c + t->n, c, n * sizeof *c);
	t->n += n;
	return CV_OK;
}

int utext_append_utf8(struct utext *t, const char *s, size_t len, size_t *bad_off)
{
	int rc = utext_reserve(t, len);
	if (rc)
		return rc;
	size_t i = 0;
	while (i < len) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k =
		    utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
		if (k <= 0 || cp < 0) {
			if (bad_off)
				*bad_off = i;
			return CV_EINVAL;
		}
		t->c[t->n++] = (uint32_t)cp;
		i += (size_t)k;
	}
	return CV_OK;
}

char *utext_to_utf8(const uint32_t *c, size_t n, size_t *len)
{
	if (n > (SIZE_MAX - 1) / 4)
		return NULL;
	char *out = malloc(n * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		utf8proc_ssize_t k =
		    utf8proc_encode_char((utf8proc_int32_t)c[i], (utf8proc_uint8_t *)out + o);
		o += (size_t)k;
	}
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

size_t utext_find(const uint32_t *c, size_t n, const uint32_t *needle, size_t nn, size_t from)
{
	if (nn == 0 || nn > n)
		return (size_t)-1;
	for (size_t i = from; i + nn <= n; i++)
		if (c[i] == needle[0] && memcmp(c + i, needle, nn * sizeof *c) == 0)
			return i;
	return (size_t)-1;
}

int utext_replace(struct utext *t, const uint32_t *from, size_t nf, const uint32_t *to, size_t nt)
{
	size_t at = utext_find(t->c, t->n, from, nf, 0);
	if (at == (size_t)-1)
		return CV_OK;
	struct utext o;
	utext_init(&o);
	size_t i = 0;
	int rc = CV_OK;
	while (at != (size_t)-1) {
		if ((rc = utext_append(&o, t->c + i, at - i)) || (rc = utext_append(&o, to, nt)))
			goto fail;
		i = at + nf;
		at = utext_find(t->c, t->n, from, nf, i);
	}
	if ((rc = utext_append(&o, t->c + i, t->n - i)))
		goto fail;
	free(t->c);
	*t = o;
	return CV_OK;
fail:
	utext_free(&o);
	return rc;
}

int utext_is_chinese(uint32_t c)
{
	return c >= 0x4E00 && c <= 0x9FFF;
}

int utext_is_py_space(uint32_t c)
{
	if ((c >= 0x9 && c <= 0xD) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680)
		return 1;
	if ((c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
	    c == 0x3000)
		return 1;
	return 0;
}

/* Code points with Python str.isdigit() True that are not category Nd
 * (Numeric_Type=Digit), from Python 3.11's tables. */
static const uint32_t py_digit_extra[][2] = {
    {0xB2, 0xB3},     {0xB9, 0xB9},	  {0x1369, 0x1371},   {0x19DA, 0x19DA},	  {0x2070, 0x2070},
    {0x2074, 0x2079}, {0x2080, 0x2089},	  {0x2460, 0x2468},   {0x2474, 0x247C},	  {0x2488, 0x2490},
    {0x24EA, 0x24EA}, {0x24F5, 0x24FD},	  {0x24FF, 0x24FF},   {0x2776, 0x277E},	  {0x2780, 0x2788},
    {0x278A, 0x2792}, {0x10A40, 0x10A43}, {0x10E60, 0x10E68}, {0x11052, 0x1105A}, {0x1F100, 0x1F10A},
};

/* The zero of every decimal-digit (Nd) run of Python 3.11's Unicode 14
 * tables; each run holds the ten digits 0..9 in order. */
static const uint32_t nd_zeros[] = {
    0x30,    0x660,   0x6F0,   0x7C0,	0x966,	 0x9E6,	  0xA66,   0xAE6,   0xB66,   0xBE6,   0xC66,
    0xCE6,   0xD66,   0xDE6,   0xE50,	0xED0,	 0xF20,	  0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,
    0x19D0,  0x1A80,  0x1A90,  0x1B50,	0x1BB0,	 0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,
    0xA9F0,  0xAA50,  0xABF0,  0xFF10,	0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0,
    0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0};

int utext_digit_value(uint32_t c)
{
	size_t lo = 0, hi = sizeof nd_zeros / sizeof *nd_zeros;
	while (lo < hi) { /* last zero <= c */
		size_t mid = (lo + hi) / 2;
		if (nd_zeros[mid] <= c)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0 || c - nd_zeros[lo - 1] > 9)
		return -1;
	return (int)(c - nd_zeros[lo - 1]);
}

int utext_is_re_digit(uint32_t c)
{
	if (c < 0x80)
		return c >= '0' && c <= '9';
	return utext_digit_value(c) >= 0;
}

int utext_is_py_digit(uint32_t c)
{
	if (utext_is_re_digit(c))
		return 1;
	for (size_t i = 0; i < sizeof py_digit_extra / sizeof py_digit_extra[0]; i++)
		if (c >= py_digit_extra[i][0] && c <= py_digit_extra[i][1])
			return 1;
	return 0;
}

int utext_is_punct_symbol(uint32_t c)
{
	if (c > 0x10FFFF)
		return 0;
	switch (utf8proc_category((utf8proc_int32_t)c)) {
	case UTF8PROC_CATEGORY_PC:
	case UTF8PROC_CATEGORY_PD:
	case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE:
	case UTF8PROC_CATEGORY_PI:
	case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
	case UTF8PROC_CATEGORY_SM:
	case UTF8PROC_CATEGORY_SC:
	case UTF8PROC_CATEGORY_SK:
	case UTF8PROC_CATEGORY_SO: return 1;
	default: return 0;
	}
}
