/* tests/unit/promcheck.c — strict Prometheus text-format checker (see promcheck.h).
 *
 * DESIGN: one pass over the lines with a small parser per line kind. Families
 * are kept in order of first appearance; a family is "closed" when another
 * family's HELP/TYPE/sample starts, and touching a closed family again is the
 * "split group" error. Histogram samples of the current family are buffered
 * and checked when the family closes (grouped by label set without `le`).
 * Series uniqueness is checked at the end by sorting canonical keys (name +
 * labels sorted by name, unescaped values). No Check dependency, plain
 * malloc; numbers are parsed under a private "C" locale.
 */
#include "tests/unit/promcheck.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/mem.h"

enum pc_type { PC_NONE = 0, PC_COUNTER, PC_GAUGE, PC_HISTOGRAM, PC_SUMMARY, PC_UNTYPED };

struct pc_family {
	char *name;
	enum pc_type type;
	int has_help;
	int has_type;
	int nsamples;
	int first_line;
};

enum pc_hkind { PC_H_BUCKET, PC_H_SUM, PC_H_COUNT };

struct pc_hsample {
	char *group; /* canonical labels without le */
	enum pc_hkind kind;
	double le;
	double value;
	int line;
};

struct pc_label {
	char name[128];
	char *value; /* unescaped, malloc'd */
};

#define PC_MAX_LABELS 32

struct pc_ctx {
	locale_t loc;
	char *err;
	size_t errlen;
	int line;
	struct pc_family *fam;
	size_t nfam, capfam;
	ssize_t cur; /* index of the open family, -1 none */
	struct pc_hsample *hs;
	size_t nhs, caphs;
	struct {
		char *key;
		int line;
	} * keys;
	size_t nkeys, capkeys;
};

static int pc_fail(struct pc_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pc_fail(struct pc_ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (c->err && c->errlen) {
		n = snprintf(c->err, c->errlen, "line %d: ", c->line);
		if (n >= 0 && (size_t)n < c->errlen) {
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return CV_EINVAL;
}

static int is_name_start(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
}

static int is_name_char(char ch)
{
	return is_name_start(ch) || (ch >= '0' && ch <= '9');
}

static int is_label_start(char ch)
{
	return ch != ':' && is_name_start(ch);
}

static int is_label_char(char ch)
{
	return ch != ':' && is_name_char(ch);
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Metric name at *p..end; returns its length (0 when none). */
static size_t scan_name(const char *p, const char *end)
{
	size_t n = 0;

	if (p >= end || !is_name_start(*p))
		return 0;
	while (p + n < end && is_name_char(p[n]))
		n++;
	return n;
}

/* Go-style float: decimal with optional exponent, or NaN/Inf spellings. */
static int parse_float(struct pc_ctx *c, const char *p, size_t n, double *out)
{
	char tmp[64];
	size_t i = 0, digits = 0;
	char *endp;

	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	if (strcmp(tmp, "NaN") == 0) {
		*out = NAN;
		return 0;
	}
	if (strcmp(tmp, "+Inf") == 0 || strcmp(tmp, "Inf") == 0) {
		*out = INFINITY;
		return 0;
	}
	if (strcmp(tmp, "-Inf") == 0) {
		*out = -INFINITY;
		return 0;
	}
	if (tmp[i] == '+' || tmp[i] == '-')
		i++;
	while (tmp[i] >= '0' && tmp[i] <= '9')
		i++, digits++;
	if (tmp[i] == '.') {
		i++;
		while (tmp[i] >= '0' && tmp[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return -1;
	if (tmp[i] == 'e' || tmp[i] == 'E') {
		size_t ed = 0;
		i++;
		if (tmp[i] == '+' || tmp[i] == '-')
			i++;
		while (tmp[i] >= '0' && tmp[i] <= '9')
			i++, ed++;
		if (ed == 0)
			return -1;
	}
	if (tmp[i] != '\0')
		return -1;
	*out = c->loc != (locale_t)0 ? strtod_l(tmp, &endp, c->loc) : strtod(tmp, &endp);
	return *endp == '\0' ? 0 : -1;
}

static ssize_t find_family(struct pc_ctx *c, const char *name, size_t n)
{
	for (size_t i = 0; i < c->nfam; i++)
		if (strlen(c->fam[i].name) == n && memcmp(c->fam[i].name, name, n) == 0)
			return (ssize_t)i;
	return -1;
}

/* Does sample name `s` belong to family f? */
static int sample_in_family(const struct pc_family *f, const char *s, size_t n)
{
	size_t fl = strlen(f->name);

	if (n == fl && memcmp(s, f->name, n) == 0)
		return f->type != PC_HISTOGRAM;
	if (n <= fl || memcmp(s, f->name, fl) != 0)
		return 0;
	s += fl;
	n -= fl;
	if (f->type == PC_HISTOGRAM)
		return (n == 7 && memcmp(s, "_bucket", 7) == 0) || (n == 4 && memcmp(s, "_sum", 4) == 0) ||
		       (n == 6 && memcmp(s, "_count", 6) == 0);
	if (f->type == PC_SUMMARY)
		return (n == 4 && memcmp(s, "_sum", 4) == 0) || (n == 6 && memcmp(s, "_count", 6) == 0);
	return 0;
}

struct pc_group {
	const char *key;
	double last_le;
	double last_bucket;
	int nbuckets;
	int have_inf, have_sum, have_count;
	double inf_value, count_value;
};

static int check_histogram(struct pc_ctx *c, const struct pc_family *f)
{
	struct pc_group *g = xcalloc(c->nhs ? c->nhs : 1, sizeof *g);
	size_t ng = 0;
	int rc = CV_OK;

	for (size_t i = 0; i < c->nhs && rc == CV_OK; i++) {
		const struct pc_hsample *s = &c->hs[i];
		struct pc_group *gr = NULL;

		c->line = s->line;
		for (size_t j = 0; j < ng; j++)
			if (strcmp(g[j].key, s->group) == 0)
				gr = &g[j];
		if (!gr) {
			gr = &g[ng++];
			gr->key = s->group;
			gr->last_le = -INFINITY;
		}
		if (isnan(s->value) || s->value < 0) {
			rc = pc_fail(c, "histogram %s: negative or NaN value", f->name);
			break;
		}
		switch (s->kind) {
		case PC_H_BUCKET:
			if (gr->nbuckets > 0 && !(s->le > gr->last_le))
				rc = pc_fail(c, "histogram %s: buckets not in increasing le order", f->name);
			else if (gr->nbuckets > 0 && s->value < gr->last_bucket)
				rc = pc_fail(c, "histogram %s: buckets not cumulative (value decreases)",
					     f->name);
			gr->nbuckets++;
			gr->last_le = s->le;
			gr->last_bucket = s->value;
			if (isinf(s->le) && s->le > 0) {
				gr->have_inf = 1;
				gr->inf_value = s->value;
			}
			break;
		case PC_H_SUM: gr->have_sum = 1; break;
		case PC_H_COUNT:
			gr->have_count = 1;
			gr->count_value = s->value;
			break;
		}
	}
	for (size_t j = 0; j < ng && rc == CV_OK; j++) {
		c->line = f->first_line;
		if (!g[j].have_inf)
			rc = pc_fail(c, "histogram %s: no le=\"+Inf\" bucket", f->name);
		else if (!g[j].have_count)
			rc = pc_fail(c, "histogram %s: no _count", f->name);
		else if (!g[j].have_sum)
			rc = pc_fail(c, "histogram %s: no _sum", f->name);
		else if (g[j].inf_value != g[j].count_value)
			rc = pc_fail(c, "histogram %s: +Inf bucket %g != _count %g", f->name, g[j].inf_value,
				     g[j].count_value);
	}
	free(g);
	return rc;
}

static void clear_hs(struct pc_ctx *c)
{
	for (size_t i = 0; i < c->nhs; i++)
		free(c->hs[i].group);
	c->nhs = 0;
}

/* Close the open family (checks its histogram invariants). */
static int close_current(struct pc_ctx *c)
{
	int rc = CV_OK;
	int saved = c->line;

	if (c->cur >= 0 && c->fam[c->cur].type == PC_HISTOGRAM)
		rc = check_histogram(c, &c->fam[c->cur]);
	clear_hs(c);
	if (rc == CV_OK)
		c->line = saved;
	c->cur = -1;
	return rc;
}

/* Make `name` the open family (creating it); fails if it was closed before. */
static int open_family(struct pc_ctx *c, const char *name, size_t n)
{
	ssize_t i = find_family(c, name, n);
	int rc;

	if (i >= 0 && i == c->cur)
		return CV_OK;
	if (i >= 0)
		return pc_fail(c, "family %s appears in two separate groups", c->fam[i].name);
	rc = close_current(c);
	if (rc)
		return rc;
	if (c->nfam == c->capfam) {
		c->capfam = c->capfam ? c->capfam * 2 : 16;
		c->fam = xrealloc(c->fam, c->capfam * sizeof *c->fam);
	}
	memset(&c->fam[c->nfam], 0, sizeof c->fam[c->nfam]);
	c->fam[c->nfam].name = xstrndup(name, n);
	c->fam[c->nfam].first_line = c->line;
	c->cur = (ssize_t)c->nfam++;
	return CV_OK;
}

static int parse_comment(struct pc_ctx *c, const char *p, const char *end)
{
	int is_help;
	size_t n;
	const char *name;
	struct pc_family *f;
	int rc;

	if (end - p >= 7 && memcmp(p, "# HELP ", 7) == 0)
		is_help = 1;
	else if (end - p >= 7 && memcmp(p, "# TYPE ", 7) == 0)
		is_help = 0;
	else
		return CV_OK; /* plain comment */
	p += 7;
	name = p;
	n = scan_name(p, end);
	if (n == 0)
		return pc_fail(c, "%s without a valid metric name", is_help ? "HELP" : "TYPE");
	p += n;
	if (p < end && *p != ' ')
		return pc_fail(c, "bad character after metric name in %s", is_help ? "HELP" : "TYPE");
	rc = open_family(c, name, n);
	if (rc)
		return rc;
	f = &c->fam[c->cur];
	if (f->nsamples > 0)
		return pc_fail(c, "%s for %s after its samples", is_help ? "HELP" : "TYPE", f->name);
	if (p < end)
		p++;
	if (is_help) {
		if (f->has_help)
			return pc_fail(c, "second HELP for %s", f->name);
		f->has_help = 1;
		if (p == end)
			return pc_fail(c, "empty HELP text for %s", f->name);
		for (; p < end; p++) {
			if (*p != '\\')
				continue;
			if (p + 1 >= end || (p[1] != '\\' && p[1] != 'n'))
				return pc_fail(c, "bad escape in HELP of %s", f->name);
			p++;
		}
		return CV_OK;
	}
	if (f->has_type)
		return pc_fail(c, "second TYPE for %s", f->name);
	f->has_type = 1;
	static const struct {
		const char *s;
		enum pc_type t;
	} types[] = {{"counter", PC_COUNTER},
		     {"gauge", PC_GAUGE},
		     {"histogram", PC_HISTOGRAM},
		     {"summary", PC_SUMMARY},
		     {"untyped", PC_UNTYPED}};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if ((size_t)(end - p) == strlen(types[i].s) && memcmp(p, types[i].s, (size_t)(end - p)) == 0)
			f->type = types[i].t;
	if (f->type == PC_NONE)
		return pc_fail(c, "unknown TYPE '%.*s' for %s", (int)(end - p), p, f->name);
	if (f->type == PC_COUNTER && !ends_with(f->name, strlen(f->name), "_total"))
		return pc_fail(c, "counter %s does not end in _total", f->name);
	return CV_OK;
}

static void skip_blank(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct pc_label *)a)->name, ((const struct pc_label *)b)->name);
}

static int cmp_key(const void *a, const void *b)
{
	const char *const *x = a;
	const char *const *y = b;
	return strcmp(*x, *y);
}

/* Parse `{a="x",b="y"}`; on success *p is past '}'. Values are unescaped. */
static int parse_labels(struct pc_ctx *c, const char **pp, const char *end, struct pc_label *lab,
			size_t *nlab)
{
	const char *p = *pp + 1; /* past '{' */

	*nlab = 0;
	for (;;) {
		size_t n = 0;
		char *v;
		size_t vn = 0;
		const char *q;

		skip_blank(&p, end);
		if (p < end && *p == '}')
			break;
		if (p >= end || !is_label_start(*p))
			return pc_fail(c, "bad label name");
		while (p + n < end && is_label_char(p[n]))
			n++;
		if (n >= sizeof lab[0].name)
			return pc_fail(c, "label name too long");
		if (*nlab == PC_MAX_LABELS)
			return pc_fail(c, "too many labels");
		memcpy(lab[*nlab].name, p, n);
		lab[*nlab].name[n] = '\0';
		p += n;
		skip_blank(&p, end);
		if (p >= end || *p != '=')
			return pc_fail(c, "expected '=' after label %s", lab[*nlab].name);
		p++;
		skip_blank(&p, end);
		if (p >= end || *p != '"')
			return pc_fail(c, "label value of %s not quoted", lab[*nlab].name);
		p++;
		for (q = p; q < end && *q != '"'; q++)
			if (*q == '\\')
				q++;
		if (q >= end)
			return pc_fail(c, "unterminated label value");
		v = xmalloc((size_t)(q - p) + 1);
		for (; p < q; p++) {
			if (*p == '\\') {
				p++;
				if (*p == '\\' || *p == '"')
					v[vn++] = *p;
				else if (*p == 'n')
					v[vn++] = '\n';
				else {
					free(v);
					return pc_fail(c, "bad escape in label value");
				}
			} else {
				v[vn++] = *p;
			}
		}
		v[vn] = '\0';
		lab[(*nlab)++].value = v;
		p++; /* closing quote */
		skip_blank(&p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}')
			break;
		return pc_fail(c, "expected ',' or '}' in labels");
	}
	*pp = p + 1;
	return CV_OK;
}

static char *make_key(const char *name, size_t n, const struct pc_label *lab, size_t nlab, const char *skip)
{
	size_t len = n + 1;
	char *k, *w;

	for (size_t i = 0; i < nlab; i++)
		len += strlen(lab[i].name) + strlen(lab[i].value) + 2;
	k = xmalloc(len);
	memcpy(k, name, n);
	w = k + n;
	for (size_t i = 0; i < nlab; i++) {
		if (skip && strcmp(lab[i].name, skip) == 0)
			continue;
		/* \x01 / \x02 cannot appear in label names; values keep their bytes. */
		w += snprintf(w, len - (size_t)(w - k), "\x01%s\x02%s", lab[i].name, lab[i].value);
	}
	*w = '\0';
	return k;
}

static int parse_sample(struct pc_ctx *c, const char *p, const char *end)
{
	struct pc_label lab[PC_MAX_LABELS];
	size_t nlab = 0, n;
	const char *name = p;
	const char *v;
	double value, le = 0;
	struct pc_family *f;
	ssize_t fi;
	int rc = CV_OK;
	int have_le = 0;

	n = scan_name(p, end);
	if (n == 0)
		return pc_fail(c, "sample line does not start with a metric name");
	p += n;
	if (c->cur < 0 || !sample_in_family(&c->fam[c->cur], name, n)) {
		for (size_t i = 0; i < c->nfam; i++)
			if (sample_in_family(&c->fam[i], name, n))
				return pc_fail(c, "sample %.*s outside its family's group (%s)", (int)n, name,
					       c->fam[i].name);
		fi = find_family(c, name, n);
		if (fi >= 0 && c->fam[fi].type == PC_HISTOGRAM)
			return pc_fail(c, "histogram %.*s has a sample without _bucket/_sum/_count", (int)n,
				       name);
		return pc_fail(c, "sample %.*s has no preceding HELP/TYPE", (int)n, name);
	}
	f = &c->fam[c->cur];
	if (!f->has_help || !f->has_type)
		return pc_fail(c, "sample %.*s before both HELP and TYPE of its family", (int)n, name);
	if (p < end && *p == '{') {
		rc = parse_labels(c, &p, end, lab, &nlab);
		if (rc)
			goto out;
	}
	if (p >= end || (*p != ' ' && *p != '\t')) {
		rc = pc_fail(c, "expected a blank before the value");
		goto out;
	}
	skip_blank(&p, end);
	v = p;
	while (p < end && *p != ' ' && *p != '\t')
		p++;
	if (parse_float(c, v, (size_t)(p - v), &value)) {
		rc = pc_fail(c, "bad sample value '%.*s'", (int)(p - v), v);
		goto out;
	}
	skip_blank(&p, end);
	if (p < end) {
		const char *t = p;
		if (*p == '-')
			p++;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == t || (p == t + 1 && *t == '-')) {
			rc = pc_fail(c, "bad timestamp");
			goto out;
		}
		skip_blank(&p, end);
		if (p < end) {
			rc = pc_fail(c, "trailing garbage after sample");
			goto out;
		}
	}
	qsort(lab, nlab, sizeof lab[0], cmp_label);
	for (size_t i = 0; i + 1 < nlab; i++)
		if (strcmp(lab[i].name, lab[i + 1].name) == 0) {
			rc = pc_fail(c, "label %s twice", lab[i].name);
			goto out;
		}
	for (size_t i = 0; i < nlab; i++)
		if (strcmp(lab[i].name, "le") == 0) {
			have_le = 1;
			if (parse_float(c, lab[i].value, strlen(lab[i].value), &le) || isnan(le)) {
				rc = pc_fail(c, "bad le value '%s'", lab[i].value);
				goto out;
			}
		}
	if (f->type == PC_COUNTER && (isnan(value) || value < 0)) {
		rc = pc_fail(c, "counter %s has a negative or NaN value", f->name);
		goto out;
	}
	if (f->type == PC_HISTOGRAM) {
		struct pc_hsample *hs;
		enum pc_hkind kind = ends_with(name, n, "_bucket") ? PC_H_BUCKET
				     : ends_with(name, n, "_sum")  ? PC_H_SUM
								   : PC_H_COUNT;
		if (kind == PC_H_BUCKET && !have_le) {
			rc = pc_fail(c, "histogram bucket without le");
			goto out;
		}
		if (kind != PC_H_BUCKET && have_le) {
			rc = pc_fail(c, "histogram _sum/_count with an le label");
			goto out;
		}
		if (c->nhs == c->caphs) {
			c->caphs = c->caphs ? c->caphs * 2 : 32;
			c->hs = xrealloc(c->hs, c->caphs * sizeof *c->hs);
		}
		hs = &c->hs[c->nhs++];
		hs->group = make_key("", 0, lab, nlab, "le");
		hs->kind = kind;
		hs->le = le;
		hs->value = value;
		hs->line = c->line;
	}
	if (c->nkeys == c->capkeys) {
		c->capkeys = c->capkeys ? c->capkeys * 2 : 64;
		c->keys = xrealloc(c->keys, c->capkeys * sizeof *c->keys);
	}
	c->keys[c->nkeys].key = make_key(name, n, lab, nlab, NULL);
	c->keys[c->nkeys++].line = c->line;
	f->nsamples++;
out:
	for (size_t i = 0; i < nlab; i++)
		free(lab[i].value);
	return rc;
}

static int check_unique(struct pc_ctx *c)
{
	qsort(c->keys, c->nkeys, sizeof *c->keys, cmp_key);
	for (size_t i = 0; i + 1 < c->nkeys; i++) {
		if (strcmp(c->keys[i].key, c->keys[i + 1].key) == 0) {
			int a = c->keys[i].line, b = c->keys[i + 1].line;
			char shown[160];
			size_t k;
			c->line = a > b ? a : b;
			cv_strlcpy(shown, c->keys[i].key, sizeof shown);
			for (k = 0; shown[k]; k++)
				if (shown[k] == '\x01')
					shown[k] = ' ';
				else if (shown[k] == '\x02')
					shown[k] = '=';
			return pc_fail(c, "duplicate series %s (also line %d)", shown, a > b ? b : a);
		}
	}
	return CV_OK;
}

int promcheck_text(const char *text, size_t len, char *err, size_t errlen)
{
	struct pc_ctx c;
	const char *p = text, *end = text + len;
	int rc = CV_OK;

	memset(&c, 0, sizeof c);
	c.err = err;
	c.errlen = errlen;
	c.cur = -1;
	if (err && errlen)
		err[0] = '\0';
	if (!text || len == 0)
		return pc_fail(&c, "empty exposition");
	if (memchr(text, '\0', len)) {
		c.line = 1;
		for (const char *q = text; *q; q++)
			c.line += *q == '\n';
		return pc_fail(&c, "NUL byte in exposition");
	}
	if (text[len - 1] != '\n') {
		c.line = 1;
		for (size_t i = 0; i < len; i++)
			c.line += text[i] == '\n';
		return pc_fail(&c, "last line does not end with a newline");
	}
	c.loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	while (p < end && rc == CV_OK) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		c.line++;
		if (memchr(p, '\r', (size_t)(eol - p)))
			rc = pc_fail(&c, "carriage return in line");
		else if (eol == p)
			; /* empty lines are ignored by the format */
		else if (*p == '#')
			rc = parse_comment(&c, p, eol);
		else
			rc = parse_sample(&c, p, eol);
		p = eol + 1;
	}
	if (rc == CV_OK)
		rc = close_current(&c);
	if (rc == CV_OK)
		for (size_t i = 0; i < c.nfam && rc == CV_OK; i++)
			if (!c.fam[i].has_help || !c.fam[i].has_type) {
				c.line = c.fam[i].first_line;
				rc = pc_fail(&c, "family %s lacks %s", c.fam[i].name,
					     c.fam[i].has_help ? "TYPE" : "HELP");
			}
	if (rc == CV_OK)
		rc = check_unique(&c);

	clear_hs(&c);
	free(c.hs);
	for (size_t i = 0; i < c.nfam; i++)
		free(c.fam[i].name);
	free(c.fam);
	for (size_t i = 0; i < c.nkeys; i++)
		free(c.keys[i].key);
	free(c.keys);
	if (c.loc != (locale_t)0)
		freelocale(c.loc);
	return rc;
}

int promcheck_value(const char *text, const char *series, double *out)
{
	size_t sl = strlen(series);
	const char *p = text;

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (*p != '#' && ll > sl && memcmp(p, series, sl) == 0 && (p[sl] == ' ' || p[sl] == '\t')) {
			struct pc_ctx c;
			const char *v = p + sl, *ve;
			int rc;

			while (v < p + ll && (*v == ' ' || *v == '\t'))
				v++;
			for (ve = v; ve < p + ll && *ve != ' ' && *ve != '\t';)
				ve++;
			memset(&c, 0, sizeof c);
			c.loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
			rc = parse_float(&c, v, (size_t)(ve - v), out) ? CV_EINVAL : CV_OK;
			if (c.loc != (locale_t)0)
				freelocale(c.loc);
			return rc;
		}
		p = eol ? eol + 1 : NULL;
	}
	return CV_ENOTFOUND;
}

int promcheck_type(const char *text, const char *name, char *type, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = text;

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t ll = eol ? (size_t)(eol - p) : strlen(p);

		if (ll > 7 + nl + 1 && memcmp(p, "# TYPE ", 7) == 0 && memcmp(p + 7, name, nl) == 0 &&
		    p[7 + nl] == ' ') {
			size_t tl = ll - (7 + nl + 1);
			if (cap) {
				if (tl >= cap)
					tl = cap - 1;
				memcpy(type, p + 7 + nl + 1, tl);
				type[tl] = '\0';
			}
			return CV_OK;
		}
		p = eol ? eol + 1 : NULL;
	}
	return CV_ENOTFOUND;
}
