/* engine/text/utext.h — code-point strings and the Python character classes the
 * text frontend needs (str.isspace, str.isdigit, re's \d, \p{P}/\p{S}).
 *
 * The reference frontend is Python: its rules index, slice and compare code
 * points, so the C port works on arrays of code points and converts to UTF-8
 * only at its edges (FST, tokenizer, result).
 */
#ifndef CV_ENGINE_UTEXT_H
#define CV_ENGINE_UTEXT_H

#include <stddef.h>
#include <stdint.h>

struct utext {
	uint32_t *c;
	size_t n;
	size_t cap;
};

void utext_init(struct utext *t);
void utext_free(struct utext *t);
void utext_clear(struct utext *t);
/* CV_ENOMEM on allocation failure. */
int utext_push(struct utext *t, uint32_t c);
int utext_append(struct utext *t, const uint32_t *c, size_t n);
/* Decodes UTF-8 and appends; CV_EINVAL (offset in *bad_off) on invalid UTF-8. */
int utext_append_utf8(struct utext *t, const char *s, size_t len, size_t *bad_off);
/* Malloc'd NUL-terminated UTF-8 of c[0..n) (length in *len when non-NULL); NULL on ENOMEM. */
char *utext_to_utf8(const uint32_t *c, size_t n, size_t *len);
/* Index of the first occurrence of needle in t at or after from, or (size_t)-1. */
size_t utext_find(const uint32_t *c, size_t n, const uint32_t *needle, size_t nn, size_t from);
/* Replaces every occurrence of from[0..nf) (left to right, non-overlapping,
 * like Python's str.replace) by to[0..nt). CV_ENOMEM. */
int utext_replace(struct utext *t, const uint32_t *from, size_t nf, const uint32_t *to, size_t nt);

int utext_is_chinese(uint32_t c);  /* U+4E00..U+9FFF */
int utext_is_py_space(uint32_t c); /* Python str.isspace() */
int utext_is_py_digit(uint32_t c); /* Python str.isdigit() */
int utext_is_re_digit(uint32_t c); /* Python re's \d on str: category Nd */
/* Value 0..9 of a \d code point (Python's int()), else -1. */
int utext_digit_value(uint32_t c);
int utext_is_punct_symbol(uint32_t c); /* \p{P} or \p{S} */

#endif
