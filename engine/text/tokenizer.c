/* engine/text/tokenizer.c — Qwen2 byte-level BPE (CosyVoice-BlankEN), HF-exact.
 *
 * DESIGN: the model works on ids, never on strings. At load, every vocab.json
 * key is turned back from the GPT-2 byte-to-unicode form into its raw bytes
 * (kept for decode), and every merges.txt line "A B" becomes an entry
 * (id(A), id(B)) -> (rank, id(AB)) in an open-addressing table. Encoding a
 * pre-token then starts from one symbol per byte (the id of that byte's
 * one-character token) and repeatedly merges the adjacent pair of lowest rank,
 * leftmost first — exactly the order of HF's BinaryHeap of (rank, position)
 * in `Word::merge_all` (a popped entry is used only if the pair at that
 * position still has that rank; a changed pair always spans more bytes, so
 * comparing ranks is the same test as HF's new-id test). Short pieces use a
 * linear scan over an array (fast, O(n^2) worst case for n <= SCAN_MAX
 * bytes); long ones a binary heap, O(n log n). There is deliberately no
 * `ignore_merges` shortcut: BlankEN's vocab has tokens like "成功" that no
 * merge builds any more, and HF does not use them either.
 *
 * There is no shared word cache: the object stays read-only after open, so
 * threads need no lock, and plain BPE is already well above the 5 MB/s goal.
 * Per-call scratch memory is malloc'd per call (request-sized -> CV_ENOMEM).
 */
#include "engine/text/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"
#include "common/mem.h"
#include "engine/text/tokenizer_pretok.h"

#define SCAN_MAX	128  /* pieces up to this many bytes use the array scan */
#define MAX_TOKEN_BYTES 1024 /* longest vocab / added token accepted */
#define NO_RANK		UINT32_MAX

struct merge_slot {
	uint32_t left, right; /* left == UINT32_MAX: empty */
	uint32_t rank, id;
};

struct added_token {
	char *content;
	size_t len;
	/* What HF's ByteLevel decoder makes of the content: its characters
	 * mapped back to bytes when all are in the byte-level alphabet, else
	 * the content's own bytes. */
	char *dec;
	size_t dec_len;
	int32_t id;
	int lstrip, rstrip, special;
};

struct tokenizer {
	/* Per id: raw bytes (decode) and the vocab.json key (token_id). */
	size_t n_ids;	   /* max id + 1 */
	uint32_t *raw_off; /* [n_ids + 1] offsets into raw */
	uint8_t *raw;	   /* concatenated raw bytes */
	uint32_t *key_off; /* [n_ids + 1] offsets into keys (empty: none) */
	char *keys;	   /* concatenated byte-level keys */
	uint8_t *is_added; /* [n_ids] 1: added token, 2: special added token */
	size_t n_vocab;	   /* entries of vocab.json */
	int32_t *key_hash; /* open addressing: id or -1 */
	size_t key_hash_mask;
	struct merge_slot *merges;
	size_t merges_mask;
	size_t n_merges;
	int32_t byte_id[256];
	struct added_token *added;
	size_t n_added;
	uint8_t added_first[256]; /* first bytes of added tokens */
	size_t max_input;
};

/* ---- small helpers ---- */

static uint64_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static inline size_t merge_hash(uint32_t l, uint32_t r, size_t mask)
{
	uint64_t k = ((uint64_t)l << 32) | r;
	k *= 0x9E3779B97F4A7C15ULL;
	return (size_t)(k >> 32) & mask;
}

static inline const struct merge_slot *merge_find(const struct tokenizer *t, uint32_t l, uint32_t r)
{
	size_t i = merge_hash(l, r, t->merges_mask);
	for (;;) {
		const struct merge_slot *m = &t->merges[i];
		if (m->left == l && m->right == r)
			return m;
		if (m->left == UINT32_MAX)
			return NULL;
		i = (i + 1) & t->merges_mask;
	}
}

static inline uint32_t merge_rank(const struct tokenizer *t, int32_t l, int32_t r)
{
	const struct merge_slot *m = merge_find(t, (uint32_t)l, (uint32_t)r);
	return m ? m->rank : NO_RANK;
}

/* GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order. */
static void byte_level_map(uint32_t byte2cp[256], int16_t cp2byte[324])
{
	int n = 0;
	for (int i = 0; i < 324; i++)
		cp2byte[i] = -1;
	for (int b = 0; b < 256; b++) {
		int direct = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
		byte2cp[b] = direct ? (uint32_t)b : (uint32_t)(256 + n++);
		cp2byte[byte2cp[b]] = (int16_t)b;
	}
}

static int read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		cv_errf(err, errlen, "%s: %s", path, strerror(errno));
		return CV_EIO;
	}
	struct buf b;
	buf_init(&b, (size_t)256 << 20);
	char chunk[65536];
	size_t n;
	int rc = CV_OK;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if ((rc = buf_append(&b, chunk, n)) != CV_OK)
			break;
	}
	if (rc == CV_OK && ferror(f))
		rc = CV_EIO;
	fclose(f);
	if (rc != CV_OK) {
		buf_free(&b);
		cv_errf(err, errlen, "%s: read failed (%s)", path, cv_strerror(rc));
		return rc;
	}
	*data = buf_steal(&b, len);
	if (!*data)
		*data = xstrdup("");
	return CV_OK;
}

/* ---- UTF-8 ---- */

/* ---- loading ---- */

static int key_lookup(const struct tokenizer *t, const char *k, size_t n)
{
	size_t i = (size_t)hash_bytes(k, n) & t->key_hash_mask;
	for (;;) {
		int32_t id = t->key_hash[i];
		if (id < 0)
			return CV_ENOTFOUND;
		size_t off = t->key_off[id], kl = t->key_off[id + 1] - off;
		if (kl == n && memcmp(t->keys + off, k, n) == 0)
			return id;
		i = (i + 1) & t->key_hash_mask;
	}
}

static void key_insert(struct tokenizer *t, int32_t id)
{
	size_t off = t->key_off[id], n = t->key_off[id + 1] - off;
	size_t i = (size_t)hash_bytes(t->keys + off, n) & t->key_hash_mask;
	while (t->key_hash[i] >= 0)
		i = (i + 1) & t->key_hash_mask;
	t->key_hash[i] = id;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 1024;
	while (p < n)
		p <<= 1;
	return p;
}

/* A pending (id -> key) pair while the id space is not known yet. */
struct pending_key {
	const char *key;
	size_t len;
	int32_t id;
};

/* vocab.json parser. The file is one flat JSON object {"token": id, ...} of
 * 151,643 entries; jansson needs 90-200 ms (and 30 ms to free) for it, which
 * alone would break the 150 ms load budget, so this strict reader of exactly
 * that shape (any JSON whitespace, all string escapes, integer values) decodes
 * the keys into one arena instead. Anything else is refused with a position. */
struct vreader {
	const char *p, *end, *start;
	char *arena; /* decoded keys, NUL-separated */
	size_t used;
};

static void vr_ws(struct vreader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int vr_hex4(struct vreader *r, uint32_t *v)
{
	if (r->end - r->p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = *r->p++;
		int d = (c >= '0' && c <= '9')	 ? c - '0'
			: (c >= 'a' && c <= 'f') ? c - 'a' + 10
			: (c >= 'A' && c <= 'F') ? c - 'A' + 10
						 : -1;
		if (d < 0)
			return -1;
		*v = (*v << 4) | (uint32_t)d;
	}
	return 0;
}

/* A JSON string at r->p ('"' expected), decoded into the arena. */
static int vr_string(struct vreader *r, const char **key, size_t *len)
{
	if (r->p >= r->end || *r->p != '"')
		return -1;
	r->p++;
	char *out = r->arena + r->used, *o = out;
	for (;;) {
		if (r->p >= r->end)
			return -1;
		unsigned char c = (unsigned char)*r->p++;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		if (r->p >= r->end)
			return -1;
		char e = *r->p++;
		uint32_t cp;
		switch (e) {
		case '"': *o++ = '"'; continue;
		case '\\': *o++ = '\\'; continue;
		case '/': *o++ = '/'; continue;
		case 'b': *o++ = '\b'; continue;
		case 'f': *o++ = '\f'; continue;
		case 'n': *o++ = '\n'; continue;
		case 'r': *o++ = '\r'; continue;
		case 't': *o++ = '\t'; continue;
		case 'u':
			if (vr_hex4(r, &cp) < 0)
				return -1;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				uint32_t lo;
				if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
					return -1;
				r->p += 2;
				if (vr_hex4(r, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
				return -1;
			}
			/* \uXXXX never takes more bytes decoded than escaped. */
			if (cp < 0x80) {
				*o++ = (char)cp;
			} else if (cp < 0x800) {
				*o++ = (char)(0xC0 | (cp >> 6));
				*o++ = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				*o++ = (char)(0xE0 | (cp >> 12));
				*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
				*o++ = (char)(0x80 | (cp & 0x3F));
			} else {
				*o++ = (char)(0xF0 | (cp >> 18));
				*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
				*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
				*o++ = (char)(0x80 | (cp & 0x3F));
			}
			continue;
		default: return -1;
		}
	}
	*len = (size_t)(o - out);
	*o++ = '\0';
	*key = out;
	r->used += (size_t)(o - out);
	return utf8_validate(out, *len, NULL) ? 0 : -1;
}

static int load_vocab(struct tokenizer *t, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/vocab.json", dir);
	char *data = NULL;
	size_t dlen = 0;
	int rc = read_file(path, &data, &dlen, err, errlen);
	if (rc != CV_OK)
		return rc;
	struct pending_key *pk = NULL;
	size_t n = 0, pk_cap = 0, i, keys_total = 0;
	int64_t max_id = -1;
	uint32_t byte2cp[256];
	int16_t cp2byte[324];
	byte_level_map(byte2cp, cp2byte);
	struct vreader vr = {.p = data, .end = data + dlen, .start = data, .arena = xmalloc(dlen + 1)};

	vr_ws(&vr);
	if (vr.p >= vr.end || *vr.p++ != '{')
		goto bad;
	vr_ws(&vr);
	if (vr.p < vr.end && *vr.p == '}')
		goto bad; /* empty */
	for (;;) {
		const char *key;
		size_t kl;
		vr_ws(&vr);
		if (vr_string(&vr, &key, &kl) < 0 || kl == 0 || kl > MAX_TOKEN_BYTES)
			goto bad;
		vr_ws(&vr);
		if (vr.p >= vr.end || *vr.p++ != ':')
			goto bad;
		vr_ws(&vr);
		int64_t id = 0;
		const char *d0 = vr.p;
		while (vr.p < vr.end && *vr.p >= '0' && *vr.p <= '9' && id < (1 << 24))
			id = id * 10 + (*vr.p++ - '0');
		if (vr.p == d0 || id >= (1 << 24) ||
		    (vr.p < vr.end && (*vr.p == '.' || *vr.p == 'e' || *vr.p == 'E')))
			goto bad;
		if (n == pk_cap) {
			pk_cap = pk_cap ? pk_cap * 2 : 1 << 17;
			pk = xrealloc(pk, pk_cap * sizeof *pk);
		}
		pk[n].key = key;
		pk[n].len = kl;
		pk[n].id = (int32_t)id;
		n++;
		keys_total += kl;
		if (id > max_id)
			max_id = id;
		vr_ws(&vr);
		if (vr.p >= vr.end)
			goto bad;
		if (*vr.p == ',') {
			vr.p++;
			continue;
		}
		if (*vr.p++ != '}')
			goto bad;
		break;
	}
	vr_ws(&vr);
	if (vr.p != vr.end)
		goto bad;
	t->n_vocab = n;
	t->n_ids = (size_t)max_id + 1;
	t->key_off = xcalloc(t->n_ids + 1, sizeof *t->key_off);
	t->raw_off = xcalloc(t->n_ids + 1, sizeof *t->raw_off);
	t->is_added = xcalloc(t->n_ids, 1);
	/* Lengths per id first (ids may come in any order), then prefix sums. */
	for (i = 0; i < n; i++) {
		if (t->key_off[pk[i].id + 1]) {
			cv_errf(err, errlen, "%s: id %d used twice", path, (int)pk[i].id);
			rc = CV_EINVAL;
			goto fail;
		}
		t->key_off[pk[i].id + 1] = (uint32_t)pk[i].len;
	}
	for (i = 0; i < t->n_ids; i++)
		t->key_off[i + 1] += t->key_off[i];
	t->keys = xmalloc(keys_total + 1);
	t->raw = xmalloc(keys_total + 1); /* raw bytes never outnumber key bytes */
	for (i = 0; i < n; i++)
		memcpy(t->keys + t->key_off[pk[i].id], pk[i].key, pk[i].len);
	/* Raw bytes: every key character must be in the byte-level alphabet. */
	uint32_t r = 0;
	for (size_t id = 0; id < t->n_ids; id++) {
		t->raw_off[id] = r;
		const uint8_t *k = (const uint8_t *)t->keys + t->key_off[id];
		size_t kl = t->key_off[id + 1] - t->key_off[id], p = 0;
		while (p < kl) {
			size_t bad, sl = utf8_seq(k + p, kl - p, &bad);
			uint32_t cp = sl ? utf8_decode_valid(k + p, &sl) : UINT32_MAX;
			if (cp >= 324 || cp2byte[cp] < 0) {
				cv_errf(err, errlen, "%s: token %zu is not byte-level BPE text", path, id);
				rc = CV_EINVAL;
				goto fail;
			}
			t->raw[r++] = (uint8_t)cp2byte[cp];
			p += sl;
		}
	}
	t->raw_off[t->n_ids] = r;
	/* Key hash and byte ids. */
	size_t hs = pow2_at_least(n * 2);
	t->key_hash = xmalloc(hs * sizeof *t->key_hash);
	memset(t->key_hash, 0xFF, hs * sizeof *t->key_hash);
	t->key_hash_mask = hs - 1;
	for (i = 0; i < n; i++) {
		if (key_lookup(t, pk[i].key, pk[i].len) >= 0) {
			cv_errf(err, errlen, "%s: key \"%.64s\" appears twice", path, pk[i].key);
			rc = CV_EINVAL;
			goto fail;
		}
		key_insert(t, pk[i].id);
	}
	for (int b = 0; b < 256; b++) {
		char u[4];
		uint32_t cp = byte2cp[b];
		size_t ul;
		if (cp < 0x80) {
			u[0] = (char)cp;
			ul = 1;
		} else {
			u[0] = (char)(0xC0 | (cp >> 6));
			u[1] = (char)(0x80 | (cp & 0x3F));
			ul = 2;
		}
		int id = key_lookup(t, u, ul);
		if (id < 0) {
			cv_errf(err, errlen, "%s: no token for byte 0x%02x", path, (unsigned)b);
			rc = CV_EINVAL;
			goto fail;
		}
		t->byte_id[b] = id;
	}
	goto done;
bad:
	cv_errf(err, errlen, "%s: not a flat JSON object of token ids (byte %zu)", path,
		(size_t)(vr.p - vr.start));
	rc = CV_EINVAL;
fail:
done:
	free(pk);
	free(vr.arena);
	free(data);
	return rc;
}

static void merge_insert(struct tokenizer *t, uint32_t l, uint32_t r, uint32_t rank, uint32_t id)
{
	size_t i = merge_hash(l, r, t->merges_mask);
	for (;;) {
		struct merge_slot *m = &t->merges[i];
		if (m->left == UINT32_MAX || (m->left == l && m->right == r)) {
			/* A repeated pair keeps the later rank, as HF's HashMap
			 * collect and Python's dict() both do. */
			if (m->left == UINT32_MAX)
				t->n_merges++;
			m->left = l;
			m->right = r;
			m->rank = rank;
			m->id = id;
			return;
		}
		i = (i + 1) & t->merges_mask;
	}
}

static int load_merges(struct tokenizer *t, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/merges.txt", dir);
	char *data = NULL, both[2 * MAX_TOKEN_BYTES + 1];
	size_t len;
	int rc = read_file(path, &data, &len, err, errlen);
	if (rc != CV_OK)
		return rc;
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	size_t hs = pow2_at_least(lines * 2);
	t->merges = xmalloc(hs * sizeof *t->merges);
	memset(t->merges, 0xFF, hs * sizeof *t->merges);
	t->merges_mask = hs - 1;

	uint32_t rank = 0;
	size_t lineno = 0;
	for (char *p = data, *end = data + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		char *next = nl ? nl + 1 : end;
		lineno++;
		if (le > p && le[-1] == '\r')
			le--;
		if (le == p || (le - p >= 8 && memcmp(p, "#version", 8) == 0)) {
			p = next;
			continue;
		}
		char *sp = memchr(p, ' ', (size_t)(le - p));
		size_t al = sp ? (size_t)(sp - p) : 0, bl = sp ? (size_t)(le - sp - 1) : 0;
		if (!sp || al == 0 || bl == 0 || memchr(sp + 1, ' ', bl) || al + bl > 2 * MAX_TOKEN_BYTES) {
			cv_errf(err, errlen, "%s:%zu: expected \"A B\"", path, lineno);
			rc = CV_EINVAL;
			goto fail;
		}
		memcpy(both, p, al);
		memcpy(both + al, sp + 1, bl);
		int a = key_lookup(t, p, al), b = key_lookup(t, sp + 1, bl),
		    ab = key_lookup(t, both, al + bl);
		if (a < 0 || b < 0 || ab < 0) {
			cv_errf(err, errlen, "%s:%zu: merge uses a token missing from vocab.json", path,
				lineno);
			rc = CV_EINVAL;
			goto fail;
		}
		merge_insert(t, (uint32_t)a, (uint32_t)b, rank++, (uint32_t)ab);
		p = next;
	}
fail:
	free(data);
	return rc;
}

static int add_token(struct tokenizer *t, const char *content, json_int_t id, int lstrip, int rstrip,
		     int special, const char *src, char *err, size_t errlen)
{
	size_t len = strlen(content);
	if (len == 0 || len > MAX_TOKEN_BYTES || id < 0 || id >= (1 << 24) ||
	    !utf8_validate(content, len, NULL)) {
		cv_errf(err, errlen, "%s: bad added token \"%.64s\"", src, content);
		return CV_EINVAL;
	}
	for (size_t i = 0; i < t->n_added; i++) {
		struct added_token *a = &t->added[i];
		if (a->len == len && memcmp(a->content, content, len) == 0) {
			if (a->id != (int32_t)id) {
				cv_errf(err, errlen, "%s: \"%s\" has two ids", src, content);
				return CV_EINVAL;
			}
			a->lstrip |= lstrip;
			a->rstrip |= rstrip;
			a->special |= special;
			return CV_OK;
		}
		if (a->id == (int32_t)id) {
			cv_errf(err, errlen, "%s: id %d used by two added tokens", src, (int)id);
			return CV_EINVAL;
		}
	}
	if ((size_t)id < t->n_vocab && t->key_off[id + 1] != t->key_off[id]) {
		/* HF would map this content to the existing id; different
		 * content on a model id is a broken folder. */
		size_t ko = t->key_off[id], kl = t->key_off[id + 1] - ko;
		if (kl != len || memcmp(t->keys + ko, content, len) != 0) {
			cv_errf(err, errlen, "%s: added token \"%s\" clashes with vocab id %d", src, content,
				(int)id);
			return CV_EINVAL;
		}
	}
	t->added = xrealloc(t->added, (t->n_added + 1) * sizeof *t->added);
	struct added_token *a = &t->added[t->n_added++];
	a->content = xstrdup(content);
	a->len = len;
	a->dec = xmalloc(len + 1);
	a->dec_len = 0;
	uint32_t byte2cp[256];
	int16_t cp2byte[324];
	byte_level_map(byte2cp, cp2byte);
	for (size_t p = 0; p < len;) {
		size_t n;
		uint32_t cp = utf8_decode_valid((const uint8_t *)content + p, &n);
		if (cp >= 324 || cp2byte[cp] < 0) {
			memcpy(a->dec, content, len);
			a->dec_len = len;
			break;
		}
		a->dec[a->dec_len++] = (char)cp2byte[cp];
		p += n;
	}
	a->id = (int32_t)id;
	a->lstrip = lstrip;
	a->rstrip = rstrip;
	a->special = special;
	t->added_first[(uint8_t)content[0]] = 1;
	return CV_OK;
}

static int load_added(struct tokenizer *t, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	json_error_t je;
	int rc = CV_OK, found = 0;

	/* tokenizer_config.json first: it may carry flags. */
	snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
	json_t *cfg = json_load_file(path, 0, &je);
	if (cfg) {
		found = 1;
		json_t *atd = json_object_get(cfg, "added_tokens_decoder");
		const char *k;
		json_t *v;
		json_object_foreach(atd, k, v)
		{
			char *endp;
			errno = 0;
			long id = strtol(k, &endp, 10);
			const char *content = json_string_value(json_object_get(v, "content"));
			if (errno || endp == k || *endp || !content) {
				cv_errf(err, errlen, "%s: bad added_tokens_decoder entry \"%.32s\"", path, k);
				rc = CV_EINVAL;
				break;
			}
			/* transformers' AddedToken defaults: special=False,
			 * normalized = not special. */
			int special = json_is_true(json_object_get(v, "special"));
			json_t *jn = json_object_get(v, "normalized");
			int normalized = jn ? json_is_true(jn) : !special;
			if (normalized || json_is_true(json_object_get(v, "single_word"))) {
				cv_errf(err, errlen,
					"%s: added token \"%.64s\": normalized/single_word not supported",
					path, content);
				rc = CV_EUNSUPPORTED;
				break;
			}
			rc =
			    add_token(t, content, id, json_is_true(json_object_get(v, "lstrip")),
				      json_is_true(json_object_get(v, "rstrip")), special, path, err, errlen);
			if (rc != CV_OK)
				break;
		}
		json_decref(cfg);
		if (rc != CV_OK)
			return rc;
	}

	/* special_tokens.json: {content: id}, all special, no strip, not normalized
	 * (what add_special_tokens() does in CosyVoice2Tokenizer). */
	snprintf(path, sizeof path, "%s/special_tokens.json", dir);
	json_t *sp = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (sp) {
		found = 1;
		const char *k;
		json_t *v;
		if (!json_is_object(sp)) {
			cv_errf(err, errlen, "%s: not a JSON object", path);
			rc = CV_EINVAL;
		}
		json_object_foreach(sp, k, v)
		{
			if (rc != CV_OK)
				break;
			if (!json_is_integer(v)) {
				cv_errf(err, errlen, "%s: \"%.64s\" needs an integer id", path, k);
				rc = CV_EINVAL;
				break;
			}
			rc = add_token(t, k, json_integer_value(v), 0, 0, 1, path, err, errlen);
		}
		json_decref(sp);
	} else if (je.line > 0 || je.position > 0) {
		cv_errf(err, errlen, "%s:%d: %s", path, je.line, je.text);
		return CV_EINVAL;
	}
	if (rc == CV_OK && !found) {
		cv_errf(err, errlen, "%s: neither special_tokens.json nor tokenizer_config.json", dir);
		rc = CV_EIO;
	}
	if (rc != CV_OK)
		return rc;

	/* Extend the id space so every added id has a slot. */
	size_t need = t->n_ids;
	for (size_t i = 0; i < t->n_added; i++)
		if ((size_t)t->added[i].id + 1 > need)
			need = (size_t)t->added[i].id + 1;
	if (need > t->n_ids) {
		t->key_off = xrealloc(t->key_off, (need + 1) * sizeof *t->key_off);
		t->raw_off = xrealloc(t->raw_off, (need + 1) * sizeof *t->raw_off);
		t->is_added = xrealloc(t->is_added, need);
		for (size_t i = t->n_ids + 1; i <= need; i++) {
			t->key_off[i] = t->key_off[t->n_ids];
			t->raw_off[i] = t->raw_off[t->n_ids];
		}
		memset(t->is_added + t->n_ids, 0, need - t->n_ids);
		t->n_ids = need;
	}
	for (size_t i = 0; i < t->n_added; i++)
		t->is_added[t->added[i].id] = t->added[i].special ? 2 : 1;
	return CV_OK;
}

void tokenizer_free(struct tokenizer *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_added; i++) {
		free(t->added[i].content);
		free(t->added[i].dec);
	}
	free(t->added);
	free(t->raw_off);
	free(t->raw);
	free(t->key_off);
	free(t->keys);
	free(t->is_added);
	free(t->key_hash);
	free(t->merges);
	free(t);
}

int tokenizer_open(const char *dir, struct tokenizer **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!dir) {
		cv_errf(err, errlen, "tokenizer: no directory");
		return CV_EINVAL;
	}
	struct tokenizer *t = xcalloc(1, sizeof *t);
	t->max_input = TOKENIZER_DEFAULT_MAX_INPUT;
	int rc = load_vocab(t, dir, err, errlen);
	if (rc == CV_OK)
		rc = load_merges(t, dir, err, errlen);
	if (rc == CV_OK)
		rc = load_added(t, dir, err, errlen);
	if (rc != CV_OK) {
		tokenizer_free(t);
		return rc;
	}
	*out = t;
	return CV_OK;
}

void tokenizer_set_max_input(struct tokenizer *t, size_t max_bytes)
{
	t->max_input = max_bytes ? max_bytes : TOKENIZER_DEFAULT_MAX_INPUT;
}

size_t tokenizer_vocab_size(const struct tokenizer *t)
{
	size_t n = t->n_vocab;
	for (size_t i = 0; i < t->n_added; i++) {
		size_t id = (size_t)t->added[i].id;
		if (t->key_off[id + 1] == t->key_off[id])
			n++; /* not already a vocab.json token */
	}
	return n;
}

int tokenizer_token_id(const struct tokenizer *t, const char *token)
{
	if (!token)
		return CV_ENOTFOUND;
	size_t n = strlen(token);
	for (size_t i = 0; i < t->n_added; i++)
		if (t->added[i].len == n && memcmp(t->added[i].content, token, n) == 0)
			return t->added[i].id;
	return key_lookup(t, token, n);
}

/* ---- encoding ---- */

struct enc {
	const struct tokenizer *t;
	int32_t *ids;
	size_t cap, n;
	/* heap-path scratch, grown on demand */
	int32_t *sym;
	int32_t *prev, *next;
	uint64_t *heap;
	size_t scratch_cap, heap_cap;
};

static inline int emit(struct enc *e, int32_t id)
{
	if (e->n >= e->cap)
		return CV_E2BIG;
	e->ids[e->n++] = id;
	return CV_OK;
}

/* Array scan for short pieces: merge the lowest-rank pair, leftmost first. */
static int bpe_scan(struct enc *e, const uint8_t *p, size_t n)
{
	const struct tokenizer *t = e->t;
	int32_t sym[SCAN_MAX];
	uint32_t rank[SCAN_MAX];
	for (size_t i = 0; i < n; i++)
		sym[i] = t->byte_id[p[i]];
	for (size_t i = 0; i + 1 < n; i++)
		rank[i] = merge_rank(t, sym[i], sym[i + 1]);
	rank[n - 1] = NO_RANK;
	while (n > 1) {
		size_t best = 0;
		uint32_t br = rank[0];
		for (size_t i = 1; i + 1 < n; i++)
			if (rank[i] < br) {
				br = rank[i];
				best = i;
			}
		if (br == NO_RANK)
			break;
		sym[best] = (int32_t)merge_find(t, (uint32_t)sym[best], (uint32_t)sym[best + 1])->id;
		memmove(sym + best + 1, sym + best + 2, (n - best - 2) * sizeof *sym);
		memmove(rank + best + 1, rank + best + 2, (n - best - 2) * sizeof *rank);
		n--;
		rank[best] = best + 1 < n ? merge_rank(t, sym[best], sym[best + 1]) : NO_RANK;
		if (best > 0)
			rank[best - 1] = merge_rank(t, sym[best - 1], sym[best]);
	}
	for (size_t i = 0; i < n; i++) {
		int rc = emit(e, sym[i]);
		if (rc != CV_OK)
			return rc;
	}
	return CV_OK;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (h[up] <= v)
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
	uint64_t top = h[0], v = h[--(*n)];
	size_t i = 0, m = *n;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= m)
			break;
		if (c + 1 < m && h[c + 1] < h[c])
			c++;
		if (v <= h[c])
			break;
		h[i] = h[c];
		i = c;
	}
	if (m)
		h[i] = v;
	return top;
}

static int scratch_reserve(struct enc *e, size_t n)
{
	if (n > (size_t)INT32_MAX)
		return CV_E2BIG;
	if (n > e->scratch_cap) {
		size_t c = n < 4096 ? 4096 : n;
		int32_t *a = realloc(e->sym, c * sizeof *a);
		if (!a)
			return CV_ENOMEM;
		e->sym = a;
		a = realloc(e->prev, c * sizeof *a);
		if (!a)
			return CV_ENOMEM;
		e->prev = a;
		a = realloc(e->next, c * sizeof *a);
		if (!a)
			return CV_ENOMEM;
		e->next = a;
		e->scratch_cap = c;
	}
	/* Live entries never exceed the number of adjacent pairs plus two
	 * pushes per merge (one pop each): 3n bounds it. */
	if (3 * n > e->heap_cap) {
		uint64_t *h = realloc(e->heap, 3 * n * sizeof *h);
		if (!h)
			return CV_ENOMEM;
		e->heap = h;
		e->heap_cap = 3 * n;
	}
	return CV_OK;
}

/* HF Word::merge_all with a binary heap of (rank << 32 | position). */
static int bpe_heap(struct enc *e, const uint8_t *p, size_t n)
{
	const struct tokenizer *t = e->t;
	int rc = scratch_reserve(e, n);
	if (rc != CV_OK)
		return rc;
	int32_t *sym = e->sym, *prev = e->prev, *next = e->next;
	uint64_t *h = e->heap;
	size_t hn = 0;
	for (size_t i = 0; i < n; i++) {
		sym[i] = t->byte_id[p[i]];
		prev[i] = (int32_t)i - 1;
		next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		uint32_t r = merge_rank(t, sym[i], sym[i + 1]);
		if (r != NO_RANK)
			heap_push(h, &hn, ((uint64_t)r << 32) | i);
	}
	while (hn > 0) {
		uint64_t top = heap_pop(h, &hn);
		uint32_t r = (uint32_t)(top >> 32);
		int32_t pos = (int32_t)(top & 0xFFFFFFFFu);
		if (sym[pos] < 0 || next[pos] < 0)
			continue; /* removed symbol, or last one */
		int32_t nx = next[pos];
		const struct merge_slot *m = merge_find(t, (uint32_t)sym[pos], (uint32_t)sym[nx]);
		if (!m || m->rank != r)
			continue; /* expired entry */
		sym[pos] = (int32_t)m->id;
		sym[nx] = -1;
		next[pos] = next[nx];
		if (next[nx] >= 0)
			prev[next[nx]] = pos;
		if (prev[pos] >= 0) {
			uint32_t pr = merge_rank(t, sym[prev[pos]], sym[pos]);
			if (pr != NO_RANK)
				heap_push(h, &hn, ((uint64_t)pr << 32) | (uint32_t)prev[pos]);
		}
		if (next[pos] >= 0) {
			uint32_t nr = merge_rank(t, sym[pos], sym[next[pos]]);
			if (nr != NO_RANK)
				heap_push(h, &hn, ((uint64_t)nr << 32) | (uint32_t)pos);
		}
	}
	for (int32_t i = 0; i >= 0; i = next[i])
		if ((rc = emit(e, sym[i])) != CV_OK)
			return rc;
	return CV_OK;
}

static int bpe_piece(struct enc *e, const uint8_t *p, size_t n)
{
	const struct tokenizer *t = e->t;
	if (n == 1)
		return emit(e, t->byte_id[p[0]]);
	if (n == 2) {
		const struct merge_slot *m =
		    merge_find(t, (uint32_t)t->byte_id[p[0]], (uint32_t)t->byte_id[p[1]]);
		if (m)
			return emit(e, (int32_t)m->id);
		int rc = emit(e, t->byte_id[p[0]]);
		return rc != CV_OK ? rc : emit(e, t->byte_id[p[1]]);
	}
	return n <= SCAN_MAX ? bpe_scan(e, p, n) : bpe_heap(e, p, n);
}

/* NFC, pre-tokenize and BPE one span between added tokens. */
static int encode_span(struct enc *e, const uint8_t *s, size_t len)
{
	if (len == 0)
		return CV_OK;
	uint8_t *norm;
	size_t nlen;
	int rc = tokenizer_nfc(s, len, &norm, &nlen);
	if (rc != CV_OK)
		return rc;
	const uint8_t *x = norm ? norm : s;
	for (size_t pos = 0; pos < nlen && rc == CV_OK;) {
		size_t end = tokenizer_pretok_next(x, nlen, pos);
		rc = bpe_piece(e, x + pos, end - pos);
		pos = end;
	}
	free(norm);
	return rc;
}

/* Rust char::is_whitespace (Unicode White_Space) at s[i], returning its
 * length or 0. */
static size_t white_at(const uint8_t *s, size_t len, size_t i)
{
	if (i >= len)
		return 0;
	size_t n;
	uint32_t cp = utf8_decode_valid(s + i, &n);
	enum tok_class c = tokenizer_pretok_class(cp);
	return (c == TOK_CLASS_S || c == TOK_CLASS_NL) ? n : 0;
}

static int encode_all(struct enc *e, const uint8_t *s, size_t len)
{
	const struct tokenizer *t = e->t;
	size_t seg = 0, pos = 0;
	int rc;
	while (pos < len) {
		if (!t->added_first[s[pos]]) {
			pos++;
			continue;
		}
		const struct added_token *best = NULL;
		for (size_t i = 0; i < t->n_added; i++) {
			const struct added_token *a = &t->added[i];
			if (a->len <= len - pos && memcmp(s + pos, a->content, a->len) == 0 &&
			    (!best || a->len > best->len))
				best = a;
		}
		if (!best) {
			pos++;
			continue;
		}
		size_t start = pos, stop = pos + best->len, w;
		if (best->lstrip) {
			while (start > seg) {
				size_t b = start - 1;
				while (b > seg && (s[b] & 0xC0) == 0x80)
					b--;
				if (!white_at(s, len, b))
					break;
				start = b;
			}
		}
		if (best->rstrip)
			while ((w = white_at(s, len, stop)) > 0)
				stop += w;
		if ((rc = encode_span(e, s + seg, start - seg)) != CV_OK)
			return rc;
		if ((rc = emit(e, best->id)) != CV_OK)
			return rc;
		seg = pos = stop;
	}
	return encode_span(e, s + seg, len - seg);
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
		     size_t *n_out, char *err, size_t errlen)
{
	*n_out = 0;
	if (!text && len > 0) {
		cv_errf(err, errlen, "tokenizer: NULL text");
		return CV_EINVAL;
	}
	if (len > t->max_input) {
		cv_errf(err, errlen, "text is %zu bytes, over the tokenizer's cap of %zu", len, t->max_input);
		return CV_E2BIG;
	}
	size_t bad;
	if (!utf8_validate(text, len, &bad)) {
		cv_errf(err, errlen, "invalid UTF-8 at byte offset %zu", bad);
		return CV_EINVAL;
	}
	struct enc e = {.t = t, .ids = ids, .cap = cap};
	int rc = len ? encode_all(&e, (const uint8_t *)text, len) : CV_OK;
	free(e.sym);
	free(e.prev);
	free(e.next);
	free(e.heap);
	*n_out = e.n;
	if (rc == CV_E2BIG)
		cv_errf(err, errlen, "text needs more than %zu tokens", cap);
	else if (rc == CV_ENOMEM)
		cv_errf(err, errlen, "tokenizer: out of memory");
	else if (rc != CV_OK)
		cv_errf(err, errlen, "tokenizer: %s", cv_strerror(rc));
	return rc;
}

/* ---- decoding ---- */

int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int skip_special,
		     struct buf *out, char *err, size_t errlen)
{
	struct buf raw;
	buf_init(&raw, buf_cap(out));
	int rc = CV_OK;
	for (size_t i = 0; i < n && rc == CV_OK; i++) {
		int32_t id = ids[i];
		if (id < 0 || (size_t)id >= t->n_ids ||
		    (!t->is_added[id] && t->key_off[id + 1] == t->key_off[id])) {
			cv_errf(err, errlen, "unknown token id %d", (int)id);
			rc = CV_EINVAL;
			break;
		}
		if (t->is_added[id]) {
			if (skip_special && t->is_added[id] == 2)
				continue;
			for (size_t k = 0; k < t->n_added; k++)
				if (t->added[k].id == id)
					rc = buf_append(&raw, t->added[k].dec, t->added[k].dec_len);
		} else {
			rc = buf_append(&raw, t->raw + t->raw_off[id], t->raw_off[id + 1] - t->raw_off[id]);
		}
	}
	/* from_utf8_lossy: each maximal invalid subpart becomes U+FFFD. */
	const uint8_t *s = (const uint8_t *)buf_data(&raw);
	size_t len = buf_len(&raw);
	for (size_t i = 0; i < len && rc == CV_OK;) {
		size_t bad, k = utf8_seq(s + i, len - i, &bad);
		if (k) {
			size_t j = i + k;
			while (j < len && (k = utf8_seq(s + j, len - j, &bad)) > 0)
				j += k;
			rc = buf_append(out, s + i, j - i);
			i = j;
		} else {
			rc = buf_append(out, "\xEF\xBF\xBD", 3);
			i += bad;
		}
	}
	if (rc == CV_E2BIG)
		cv_errf(err, errlen, "decoded text over %zu bytes", buf_cap(out));
	buf_free(&raw);
	return rc;
}
