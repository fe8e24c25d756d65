/* common/utf8.c — byte-level UTF-8 checks, no locale involved. */
#include "common/utf8.h"

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 with *bad set to
 * the length of the maximal invalid subpart (>= 1). */
size_t utf8_seq(const uint8_t *s, size_t n, size_t *bad)
{
	uint8_t c = s[0];
	size_t need;
	uint8_t lo = 0x80, hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		uint8_t lim_lo = (i == 1) ? lo : 0x80, lim_hi = (i == 1) ? hi : 0xBF;
		if (i >= n || s[i] < lim_lo || s[i] > lim_hi) {
			*bad = i;
			return 0;
		}
	}
	return need + 1;
}

int utf8_validate(const char *str, size_t len, size_t *bad_offset)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t i = 0;
	while (i < len) {
		size_t bad, k = s[i] < 0x80 ? 1 : utf8_seq(s + i, len - i, &bad);
		if (!k) {
			if (bad_offset)
				*bad_offset = i;
			return 0;
		}
		i += k;
	}
	return 1;
}

/* Decoding valid UTF-8 (checked before): no bounds or continuation checks. */
uint32_t utf8_decode_valid(const uint8_t *s, size_t *n)
{
	uint8_t c = s[0];
	if (c < 0x80) {
		*n = 1;
		return c;
	}
	if (c < 0xE0) {
		*n = 2;
		return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
	}
	if (c < 0xF0) {
		*n = 3;
		return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
	}
	*n = 4;
	return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
	       ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

size_t utf8_count(const char *str, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)str[i] & 0xc0) != 0x80)
			n++;
	return n;
}

size_t utf8_decode(const char *str, size_t len, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t need = 0;
	uint32_t v;

	if (len == 0) {
		*cp = 0;
		return 0;
	}
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if (s[0] < 0xe0) {
		need = 1;
		v = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		need = 2;
		v = s[0] & 0x0f;
	} else {
		need = 3;
		v = s[0] & 0x07;
	}
	if (need >= len) {
		*cp = 0xfffd;
		return len;
	}
	for (size_t k = 1; k <= need; k++)
		v = (v << 6) | (s[k] & 0x3f);
	*cp = v;
	return need + 1;
}

int utf8_is_space(uint32_t cp)
{
	switch (cp) {
	case 0x09:
	case 0x0a:
	case 0x0b:
	case 0x0c:
	case 0x0d:
	case 0x20:
	case 0x85:
	case 0xa0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202f:
	case 0x205f:
	case 0x3000:
	case 0x200b:
	case 0xfeff: return 1;
	default: return cp >= 0x2000 && cp <= 0x200a;
	}
}
