/* engine/text/numwords.c — inflect 7.6.0's number_to_words, digits-only input.
 *
 * DESIGN: CosyVoice's English path replaces every run of str.isdigit()
 * characters by inflect.engine().number_to_words(run). For such input inflect
 * takes one fixed path: drop characters that are not \d, "" -> "0", enword()
 * with group 0 (zero / one / triples from the right via regex substitutions,
 * each leaving ", " and inflect's odd spaces: mill[0] is " "), then cleanup
 * regexes (trailing ", ", "\s+," -> ",", ", WORD\s+$" -> " and WORD", space
 * runs collapsed, strip). The port rebuilds that exact intermediate string
 * and applies the same cleanups, so spacing quirks come out identical.
 */
#include "engine/text/numwords.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static const char *const unit_w[] = {"",     "one", "two",   "three", "four",
				     "five", "six", "seven", "eight", "nine"};
static const char *const teen_w[] = {"ten",	"eleven",  "twelve",	"thirteen", "fourteen",
				     "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const ten_w[] = {"",	     "",      "twenty",	 "thirty", "forty",
				    "fifty", "sixty", "seventy", "eighty", "ninety"};
static const char *const mill_w[] = {" ",	    " thousand",    " million",	    " billion",
				     " trillion",   " quadrillion", " quintillion", " sextillion",
				     " septillion", " octillion",   " nonillion",   " decillion"};
#define MILL_N (sizeof mill_w / sizeof *mill_w)

struct nw {
	char *s; /* ASCII work string */
	size_t n, cap;
	int bad;
};

static int nw_add(struct nw *w, const char *s)
{
	size_t k = strlen(s);
	if (w->n + k + 1 > w->cap)
		return CV_ENOMEM;
	memcpy(w->s + w->n, s, k);
	w->n += k;
	w->s[w->n] = '\0';
	return CV_OK;
}

static const char *millfn(struct nw *w, size_t ind)
{
	if (ind >= MILL_N) {
		w->bad = 1;
		return "";
	}
	return mill_w[ind];
}

static int tenfn(struct nw *w, int tens, int units, size_t mindex)
{
	int rc;
	if (tens != 1) {
		if ((rc = nw_add(w, ten_w[tens])) || (tens && units && (rc = nw_add(w, "-"))) ||
		    (rc = nw_add(w, unit_w[units])))
			return rc;
		return nw_add(w, millfn(w, mindex));
	}
	if ((rc = nw_add(w, teen_w[units])))
		return rc;
	return nw_add(w, millfn(w, mindex));
}

static int hundfn(struct nw *w, int h, int t, int u, size_t mindex)
{
	int rc;
	if (h) {
		if ((rc = nw_add(w, unit_w[h])) || (rc = nw_add(w, " hundred")) ||
		    ((t || u) && (rc = nw_add(w, " and "))) || (rc = tenfn(w, t, u, 0)) ||
		    (rc = nw_add(w, millfn(w, mindex))))
			return rc;
		return nw_add(w, ", ");
	}
	if (t || u) {
		if ((rc = tenfn(w, t, u, 0)) || (rc = nw_add(w, millfn(w, mindex))))
			return rc;
		return nw_add(w, ", ");
	}
	return CV_OK;
}

static int is_ws(char c)
{
	return c == ' ';
}

int numwords_append(const uint32_t *d, size_t n, struct utext *out)
{
	/* \D removed; values of the \d characters. */
	size_t nd = 0;
	for (size_t i = 0; i < n; i++)
		if (utext_is_re_digit(d[i]))
			nd++;
	int rc = CV_OK;
	int *v = malloc((nd ? nd : 1) * sizeof *v);
	unsigned char *asc0 = malloc(nd ? nd : 1);
	/* Words per digit are bounded (< 48 bytes per triple + separators). */
	size_t cap = 64 + nd * 24;
	struct nw w = {malloc(cap), 0, cap, 0};
	if (!v || !asc0 || !w.s) {
		rc = CV_ENOMEM;
		goto out;
	}
	w.s[0] = '\0';
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (utext_is_re_digit(d[i])) {
			asc0[k] = d[i] == '0';
			v[k++] = utext_digit_value(d[i]);
		}
	if (nd == 0) {
		v[0] = 0;
		asc0[0] = 1;
		nd = 1;
	}
	int all0 = 1, is1 = 0;
	for (size_t i = 0; i < nd; i++)
		if (v[i])
			all0 = 0;
	if (!all0) {
		is1 = v[nd - 1] == 1;
		for (size_t i = 0; i + 1 < nd; i++)
			if (v[i])
				is1 = 0;
	}
	if (all0) {
		rc = nw_add(&w, "zero");
	} else if (is1) {
		rc = nw_add(&w, "one");
	} else {
		/* lstrip("0"): ASCII zeros only. */
		size_t st = 0;
		while (st < nd && asc0[st])
			st++;
		/* Triples from the right, each result prepended: build the groups
		 * from the right into a temporary list, then concatenate. */
		size_t len = nd - st, ngroups = len / 3, rem = len % 3;
		/* Rightmost group first in inflect's loop; output order is left to right,
		 * so write the leading 1-2 digit part first, then the triples by their
		 * mill index descending. */
		size_t mtop = ngroups; /* mill index of the leading partial group */
		if (rem == 2 && (rc = tenfn(&w, v[st], v[st + 1], mtop)) == CV_OK)
			rc = nw_add(&w, ", ");
		else if (rem == 1 && (rc = nw_add(&w, unit_w[v[st]])) == CV_OK &&
			 (rc = nw_add(&w, millfn(&w, mtop))) == CV_OK)
			rc = nw_add(&w, ", ");
		for (size_t g = 0; !rc && g < ngroups; g++) {
			size_t at = st + rem + 3 * g;
			rc = hundfn(&w, v[at], v[at + 1], v[at + 2], ngroups - 1 - g);
		}
	}
	if (rc)
		goto out;
	if (w.bad) {
		rc = CV_EINVAL;
		goto out;
	}
	/* Cleanups of _handle_chunk. */
	char *s = w.s;
	size_t L = w.n;
	if (L >= 2 && s[L - 2] == ',' && s[L - 1] == ' ')
		L -= 2;
	s[L] = '\0';
	/* \s+, -> , */
	size_t o = 0;
	for (size_t i = 0; i < L; i++) {
		if (is_ws(s[i])) {
			size_t j = i;
			while (j < L && is_ws(s[j]))
				j++;
			if (j < L && s[j] == ',') {
				i = j - 1;
				continue;
			}
		}
		s[o++] = s[i];
	}
	L = o;
	s[L] = '\0';
	/* , (\S+)\s+\Z -> " and \1" : the last ", " followed by one word and trailing spaces. */
	{
		size_t e = L;
		while (e > 0 && is_ws(s[e - 1]))
			e--;
		if (e < L) {
			size_t b = e;
			while (b > 0 && !is_ws(s[b - 1]))
				b--;
			if (b < e && b >= 2 && s[b - 1] == ' ' && s[b - 2] == ',') {
				/* the \S+ may not start at b if the word contains ", "... it cannot: \S has
				 * no space */
				char word[256];
				size_t wl = e - b;
				if (wl < sizeof word) {
					memcpy(word, s + b, wl);
					word[wl] = '\0';
					L = b - 2;
					s[L] = '\0';
					w.n = L;
					if ((rc = nw_add(&w, " and ")) || (rc = nw_add(&w, word)))
						goto out;
					L = w.n;
				}
			}
		}
	}
	/* \s+, again, then collapse spaces and strip. */
	o = 0;
	for (size_t i = 0; i < L; i++) {
		if (is_ws(s[i])) {
			size_t j = i;
			while (j < L && is_ws(s[j]))
				j++;
			if (j < L && s[j] == ',')
				continue;
			if (o > 0 && is_ws(s[o - 1]))
				continue;
		}
		s[o++] = s[i];
	}
	L = o;
	size_t b = 0;
	while (b < L && is_ws(s[b]))
		b++;
	while (L > b && is_ws(s[L - 1]))
		L--;
	for (size_t i = b; i < L && !rc; i++)
		rc = utext_push(out, (unsigned char)s[i]);
out:
	free(asc0);
	free(v);
	free(w.s);
	return rc;
}
