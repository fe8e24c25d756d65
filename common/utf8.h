/* common/utf8.h — strict UTF-8 validation and counting (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
#ifndef CV_COMMON_UTF8_H
#define CV_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The one UTF-8 module of cosyvoiced (config values, request text, the tokenizer, the frontend). */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 with *bad set to
 * the length of its maximal invalid subpart (>= 1: what U+FFFD replaces, as
 * Rust's from_utf8_lossy and Hugging Face's tokenizers do). */
size_t utf8_seq(const uint8_t *s, size_t n, size_t *bad);
/* 1 when s[0..len) is valid UTF-8; else 0 and *bad_offset (if non-NULL) is
 * the offset of the first invalid byte. NUL bytes are valid UTF-8 here. */
int utf8_validate(const char *s, size_t len, size_t *bad_offset);
/* Number of code points in valid UTF-8. */
size_t utf8_count(const char *s, size_t len);
/* Decode one code point at s (valid UTF-8 assumed); returns bytes used. */
uint32_t utf8_decode_valid(const uint8_t *s, size_t *n);
/* The same, bounded by len (0 bytes used at len 0). */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);
/* 1 if cp is white space (ASCII, Unicode Zs, line/paragraph separators,
 * U+3000 ideographic space, ZWSP/BOM treated as blank). */
int utf8_is_space(uint32_t cp);

#endif
