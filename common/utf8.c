/* common/utf8.c — byte-level UTF-8 checks, no locale involved. */
#include "common/utf8.h"

int utf8_validate(const char *str, size_t len, size_t *bad_offset)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			goto bad;
		}
		if (len - i <= need)
			goto bad;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += need + 1;
	}
	return 1;
bad:
	if (bad_offset)
		*bad_offset = i;
	return 0;
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
