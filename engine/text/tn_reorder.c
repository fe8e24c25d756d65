/* engine/text/tn_reorder.c — wetext's TokenParser.reorder (token_parser.py).
 *
 * DESIGN: a character-level port of the Python recursive-descent parser,
 * keeping its quirks: the cursor sticks at EOS, parse_chars consumes an
 * optional sequence of expected characters, a backslash copies the next
 * character verbatim, a repeated key keeps its first position and its last
 * value, and a token's members are printed in TN_ORDERS / EN_TN_ORDERS order
 * (unless preserve_order: "true"), unknown names in their own order. Byte
 * level is equivalent to the Python code-point level because every character
 * the parser inspects is ASCII. Where the reference would spin forever
 * (an unterminated value) this port stops at the end of input.
 */
#include "engine/text/tn.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

#define EOS_CH (-1)

struct parser {
	const char *s;
	size_t len, i;
	int ch; /* current byte or EOS_CH */
};

struct member {
	char *key;
	char *val;
	size_t val_len;
};

struct token {
	char *name;
	struct member *m; /* in order of first appearance, with duplicates as the reference keeps them */
	size_t n, cap;
};

static int p_read(struct parser *p)
{
	if (p->i + 1 < p->len) {
		p->i++;
		p->ch = (unsigned char)p->s[p->i];
		return 1;
	}
	p->ch = EOS_CH;
	return 0;
}

static int p_ws(struct parser *p)
{
	int not_eos = p->ch != EOS_CH;
	while (not_eos && p->ch == ' ')
		not_eos = p_read(p);
	return not_eos;
}

static void p_chars(struct parser *p, const char *exp)
{
	for (; *exp; exp++)
		if (p->ch == (unsigned char)*exp)
			p_read(p);
}

static int is_key_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int p_key(struct parser *p, struct buf *b)
{
	buf_reset(b);
	while (p->ch != EOS_CH && is_key_char(p->ch)) {
		char c = (char)p->ch;
		if (buf_append(b, &c, 1))
			return CV_ENOMEM;
		p_read(p);
	}
	return CV_OK;
}

static int p_value(struct parser *p, struct buf *b)
{
	buf_reset(b);
	while (p->ch != '"' && p->ch != EOS_CH) {
		char c = (char)p->ch;
		if (buf_append(b, &c, 1))
			return CV_ENOMEM;
		int escape = p->ch == '\\';
		p_read(p);
		if (escape && p->ch != EOS_CH) {
			c = (char)p->ch;
			if (buf_append(b, &c, 1))
				return CV_ENOMEM;
			p_read(p);
		}
	}
	return CV_OK;
}

static char *dup_buf(const struct buf *b)
{
	char *s = malloc(buf_len(b) + 1);
	if (!s)
		return NULL;
	if (buf_len(b))
		memcpy(s, buf_data(b), buf_len(b));
	s[buf_len(b)] = '\0';
	return s;
}

static void token_free(struct token *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->m[i].key);
		free(t->m[i].val);
	}
	free(t->m);
	free(t->name);
}

static struct member *token_find(struct token *t, const char *key)
{
	struct member *last = NULL;
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->m[i].key, key) == 0)
			last = &t->m[i];
	return last;
}

static const char *const zh_date[] = {"year", "month", "day", NULL};
static const char *const zh_fraction[] = {"denominator", "numerator", NULL};
static const char *const zh_measure[] = {"denominator", "numerator", "value", NULL};
static const char *const zh_money[] = {"value", "currency", NULL};
static const char *const zh_time[] = {"noon", "hour", "minute", "second", NULL};
static const char *const en_date[] = {"preserve_order", "text", "day", "month", "year", NULL};
static const char *const en_money[] = {"integer_part", "fractional_part", "quantity", "currency_maj", NULL};

static const char *const *orders_for(const char *name, enum tn_lang lang)
{
	if (lang == TN_LANG_ZH) {
		if (!strcmp(name, "date"))
			return zh_date;
		if (!strcmp(name, "fraction"))
			return zh_fraction;
		if (!strcmp(name, "measure"))
			return zh_measure;
		if (!strcmp(name, "money"))
			return zh_money;
		if (!strcmp(name, "time"))
			return zh_time;
		return NULL;
	}
	if (!strcmp(name, "date"))
		return en_date;
	if (!strcmp(name, "money"))
		return en_money;
	return NULL;
}

static int emit_member(struct buf *o, const char *key, const struct member *m)
{
	if (buf_append_str(o, " ") || buf_append_str(o, key) || buf_append_str(o, ": \"") ||
	    buf_append(o, m->val, m->val_len) || buf_append_str(o, "\""))
		return CV_ENOMEM;
	return CV_OK;
}

static int token_string(struct token *t, enum tn_lang lang, struct buf *o)
{
	if (buf_append_str(o, t->name) || buf_append_str(o, " {"))
		return CV_ENOMEM;
	const char *const *ord = orders_for(t->name, lang);
	const struct member *po = token_find(t, "preserve_order");
	if (po && strcmp(po->val, "true") == 0)
		ord = NULL;
	if (ord) {
		for (size_t k = 0; ord[k]; k++) {
			const struct member *m = token_find(t, ord[k]);
			if (m && emit_member(o, ord[k], m))
				return CV_ENOMEM;
		}
	} else {
		for (size_t k = 0; k < t->n; k++)
			if (emit_member(o, t->m[k].key, token_find(t, t->m[k].key)))
				return CV_ENOMEM;
	}
	if (buf_append_str(o, " }"))
		return CV_ENOMEM;
	return CV_OK;
}

static int is_py_ws_byte(unsigned char c)
{
	return (c >= 0x9 && c <= 0xD) || (c >= 0x1C && c <= 0x20);
}

int tn_reorder(const char *in, size_t len, enum tn_lang lang, char **out, size_t *out_len)
{
	if (!in || len == 0)
		return CV_EINVAL;
	struct parser p = {in, len, 0, (unsigned char)in[0]};
	struct buf key, val, o;
	size_t cap = len * 2 + 64;
	buf_init(&key, cap);
	buf_init(&val, cap);
	buf_init(&o, cap * 2);
	struct token t = {0};
	int rc = CV_OK;
	while (p_ws(&p)) {
		if ((rc = p_key(&p, &key)))
			goto fail;
		p_chars(&p, " { ");
		memset(&t, 0, sizeof t);
		if (!(t.name = dup_buf(&key))) {
			rc = CV_ENOMEM;
			goto fail;
		}
		while (p_ws(&p)) {
			if (p.ch == '}') {
				p_read(&p);
				break;
			}
			if ((rc = p_key(&p, &key)))
				goto fail;
			p_chars(&p, ": \"");
			if ((rc = p_value(&p, &val)))
				goto fail;
			if (p.ch == '"')
				p_read(&p);
			if (t.n == t.cap) {
				size_t nc = t.cap ? t.cap * 2 : 4;
				struct member *m = realloc(t.m, nc * sizeof *m);
				if (!m) {
					rc = CV_ENOMEM;
					goto fail;
				}
				t.m = m;
				t.cap = nc;
			}
			struct member *m = &t.m[t.n];
			memset(m, 0, sizeof *m);
			m->key = dup_buf(&key);
			m->val = dup_buf(&val);
			m->val_len = buf_len(&val);
			if (!m->key || !m->val) {
				free(m->key);
				free(m->val);
				rc = CV_ENOMEM;
				goto fail;
			}
			t.n++;
		}
		/* The reference prints each token as it is complete; printing
		 * right away is the same. Duplicate keys: Python's order list
		 * holds the key twice, members[key] the last value. */
		if ((rc = token_string(&t, lang, &o)) || (rc = buf_append_str(&o, " ") ? CV_ENOMEM : CV_OK))
			goto fail;
		token_free(&t);
		memset(&t, 0, sizeof t);
	}
	size_t L;
	char *s = buf_steal(&o, &L);
	if (!s) {
		s = malloc(1);
		L = 0;
		if (!s) {
			rc = CV_ENOMEM;
			goto fail;
		}
	}
	/* .strip(): the ends are ASCII here (names, braces, spaces). */
	size_t b = 0;
	while (b < L && is_py_ws_byte((unsigned char)s[b]))
		b++;
	while (L > b && is_py_ws_byte((unsigned char)s[L - 1]))
		L--;
	memmove(s, s + b, L - b);
	s[L - b] = '\0';
	*out = s;
	*out_len = L - b;
	buf_free(&key);
	buf_free(&val);
	buf_free(&o);
	return CV_OK;
fail:
	token_free(&t);
	buf_free(&key);
	buf_free(&val);
	buf_free(&o);
	return rc;
}
