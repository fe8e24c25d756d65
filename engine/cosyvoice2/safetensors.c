/* engine/cosyvoice2/safetensors.c — strict, bounded .safetensors reader.
 *
 * DESIGN: speaker files come from users (tools/export/add_speaker.py, copies from
 * elsewhere), so the reader trusts nothing: every size is checked against
 * the file before use, integer products are overflow-checked, the JSON is
 * parsed by jansson with duplicate keys rejected, and the tensors must tile
 * the data buffer exactly as the reference Rust validator demands. A file
 * is read whole (small files; one allocation; no mmap lifetime issues), and
 * tensor views point into that copy; safetensors_map maps it read-only
 * instead (large tables of which a caller reads a few rows: only the pages
 * touched become resident, and they are the page cache's, shared). Conversions to float32/int32 are
 * explicit copies so callers never deal with alignment or endianness.
 */
#include "engine/cosyvoice2/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mem.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define DEF_MAX_FILE	((size_t)256 << 20)
#define DEF_MAX_HEADER	((size_t)16 << 20)
#define DEF_MAX_TENSORS ((size_t)100000)

struct st_entry {
	const char *name; /* key inside root (valid while root lives) */
	enum safetensors_dtype dtype;
	size_t ndim;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	size_t n_elems;
	uint64_t begin, end;
};

struct safetensors {
	unsigned char *buf;
	size_t len;
	int mapped;		   /* buf is a read-only mapping of the file (munmap, not free) */
	const unsigned char *data; /* data buffer start */
	size_t data_len;
	json_t *root;
	json_t *meta; /* borrowed from root, may be NULL */
	struct st_entry *t;
	size_t n;
};

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
    [SAFETENSORS_DTYPE_BOOL] = {"BOOL", 1}, [SAFETENSORS_DTYPE_U8] = {"U8", 1},
    [SAFETENSORS_DTYPE_I8] = {"I8", 1},	    [SAFETENSORS_DTYPE_I16] = {"I16", 2},
    [SAFETENSORS_DTYPE_U16] = {"U16", 2},   [SAFETENSORS_DTYPE_F16] = {"F16", 2},
    [SAFETENSORS_DTYPE_BF16] = {"BF16", 2}, [SAFETENSORS_DTYPE_I32] = {"I32", 4},
    [SAFETENSORS_DTYPE_U32] = {"U32", 4},   [SAFETENSORS_DTYPE_F32] = {"F32", 4},
    [SAFETENSORS_DTYPE_I64] = {"I64", 8},   [SAFETENSORS_DTYPE_U64] = {"U64", 8},
    [SAFETENSORS_DTYPE_F64] = {"F64", 8},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *safetensors_dtype_name(enum safetensors_dtype dt)
{
	return (size_t)dt < N_DTYPES ? dtypes[dt].name : "?";
}

size_t safetensors_dtype_size(enum safetensors_dtype dt)
{
	return (size_t)dt < N_DTYPES ? dtypes[dt].size : 0;
}

static int parse_dtype(const char *s, enum safetensors_dtype *out)
{
	for (size_t i = 0; i < N_DTYPES; i++)
		if (strcmp(s, dtypes[i].name) == 0) {
			*out = (enum safetensors_dtype)i;
			return 1;
		}
	return 0;
}

void safetensors_free(struct safetensors *st)
{
	if (!st)
		return;
	if (st->mapped)
		munmap(st->buf, st->len);
	else
		free(st->buf);
	json_decref(st->root);
	free(st->t);
	free(st);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct st_entry *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int get_u64(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return 0;
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

static int parse_entry(const char *name, json_t *o, struct st_entry *e, char *err, size_t errlen)
{
	if (!json_is_object(o)) {
		snprintf(err, errlen, "safetensors: tensor '%s': entry is not an object", name);
		return CV_EINVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0) {
			snprintf(err, errlen, "safetensors: tensor '%s': unknown field '%s'", name, k);
			return CV_EINVAL;
		}
	}
	json_t *jd = json_object_get(o, "dtype"), *js = json_object_get(o, "shape");
	json_t *jo = json_object_get(o, "data_offsets");
	if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo)) {
		snprintf(err, errlen,
			 "safetensors: tensor '%s': needs string dtype, array shape and data_offsets", name);
		return CV_EINVAL;
	}
	e->name = name;
	if (!parse_dtype(json_string_value(jd), &e->dtype)) {
		snprintf(err, errlen, "safetensors: tensor '%s': unknown dtype '%s'", name,
			 json_string_value(jd));
		return CV_EINVAL;
	}
	e->ndim = json_array_size(js);
	if (e->ndim > SAFETENSORS_MAX_DIMS) {
		snprintf(err, errlen, "safetensors: tensor '%s': %zu dimensions (max %d)", name, e->ndim,
			 SAFETENSORS_MAX_DIMS);
		return CV_EINVAL;
	}
	uint64_t n = 1;
	for (size_t i = 0; i < e->ndim; i++) {
		uint64_t d;
		if (!get_u64(json_array_get(js, i), &d) || d > (uint64_t)INT64_MAX) {
			snprintf(err, errlen,
				 "safetensors: tensor '%s': shape[%zu] is not a non-negative integer", name,
				 i);
			return CV_EINVAL;
		}
		e->shape[i] = (int64_t)d;
		if (d != 0 && n > SIZE_MAX / d) {
			snprintf(err, errlen, "safetensors: tensor '%s': element count overflows", name);
			return CV_EINVAL;
		}
		n *= d;
	}
	e->n_elems = (size_t)n;
	if (json_array_size(jo) != 2 || !get_u64(json_array_get(jo, 0), &e->begin) ||
	    !get_u64(json_array_get(jo, 1), &e->end) || e->end < e->begin) {
		snprintf(err, errlen,
			 "safetensors: tensor '%s': data_offsets must be [begin, end], 0 <= begin <= end",
			 name);
		return CV_EINVAL;
	}
	size_t dsz = dtypes[e->dtype].size;
	if (e->n_elems > SIZE_MAX / dsz || e->end - e->begin != (uint64_t)(e->n_elems * dsz)) {
		snprintf(
		    err, errlen,
		    "safetensors: tensor '%s': data_offsets span %llu bytes, but %s x %zu elements need %zu",
		    name, (unsigned long long)(e->end - e->begin), dtypes[e->dtype].name, e->n_elems,
		    e->n_elems <= SIZE_MAX / dsz ? e->n_elems * dsz : SIZE_MAX);
		return CV_EINVAL;
	}
	return CV_OK;
}

/* Takes ownership of buf (freed on failure too). */
/* Takes buf (freed, or unmapped when mapped, on failure too). */
static int parse(unsigned char *buf, size_t len, int mapped, const struct safetensors_limits *lim,
		 struct safetensors **out, char *err, size_t errlen)
{
	size_t max_header = lim && lim->max_header_bytes ? lim->max_header_bytes : DEF_MAX_HEADER;
	size_t max_tensors = lim && lim->max_tensors ? lim->max_tensors : DEF_MAX_TENSORS;
	struct safetensors *st = xcalloc(1, sizeof *st);
	st->buf = buf;
	st->len = len;
	st->mapped = mapped;
	int rc = CV_EINVAL;
	if (len < 8) {
		snprintf(err, errlen,
			 "safetensors: file of %zu bytes is shorter than the 8-byte header length", len);
		goto fail;
	}
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | buf[i];
	if (hlen > max_header) {
		snprintf(err, errlen, "safetensors: header length %llu exceeds the limit of %zu bytes",
			 (unsigned long long)hlen, max_header);
		goto fail;
	}
	if (hlen > len - 8) {
		snprintf(err, errlen,
			 "safetensors: header length %llu but only %zu bytes follow (truncated file)",
			 (unsigned long long)hlen, len - 8);
		goto fail;
	}
	if (hlen < 2 || buf[8] != '{') {
		snprintf(err, errlen, "safetensors: header is not a JSON object");
		goto fail;
	}
	json_error_t je;
	st->root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
	if (!st->root || !json_is_object(st->root)) {
		snprintf(err, errlen, "safetensors: bad JSON header: %s (at byte %d)",
			 st->root ? "not an object" : je.text, st->root ? 0 : je.position);
		goto fail;
	}
	st->data = buf + 8 + hlen;
	st->data_len = len - 8 - (size_t)hlen;
	size_t cnt = json_object_size(st->root);
	st->meta = json_object_get(st->root, "__metadata__");
	if (st->meta)
		cnt--;
	if (cnt > max_tensors) {
		snprintf(err, errlen, "safetensors: %zu tensors exceed the limit of %zu", cnt, max_tensors);
		goto fail;
	}
	if (st->meta) {
		if (!json_is_object(st->meta)) {
			snprintf(err, errlen, "safetensors: __metadata__ is not an object");
			goto fail;
		}
		const char *k;
		json_t *v;
		json_object_foreach(st->meta, k, v)
		{
			if (!json_is_string(v)) {
				snprintf(err, errlen,
					 "safetensors: __metadata__ value of '%s' is not a string", k);
				goto fail;
			}
		}
	}
	st->t = cnt ? xcalloc(cnt, sizeof *st->t) : NULL;
	const char *k;
	json_t *v;
	json_object_foreach(st->root, k, v)
	{
		if (strcmp(k, "__metadata__") == 0)
			continue;
		rc = parse_entry(k, v, &st->t[st->n], err, errlen);
		if (rc != CV_OK)
			goto fail;
		st->n++;
	}
	rc = CV_EINVAL;
	if (st->n > 1)
		qsort(st->t, st->n, sizeof *st->t, cmp_entry);
	uint64_t pos = 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct st_entry *e = &st->t[i];
		if (e->end > st->data_len) {
			snprintf(err, errlen,
				 "safetensors: tensor '%s': data_offsets [%llu, %llu] exceed the %zu-byte "
				 "data buffer",
				 e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
				 st->data_len);
			goto fail;
		}
		if (e->begin != pos) {
			snprintf(err, errlen, "safetensors: tensor '%s': data at %llu %s (expected %llu)",
				 e->name, (unsigned long long)e->begin,
				 e->begin < pos ? "overlaps the previous tensor" : "leaves a gap",
				 (unsigned long long)pos);
			goto fail;
		}
		pos = e->end;
	}
	if (pos != st->data_len) {
		snprintf(err, errlen, "safetensors: %llu bytes after the last tensor (data buffer %zu bytes)",
			 (unsigned long long)(st->data_len - pos), st->data_len);
		goto fail;
	}
	*out = st;
	return CV_OK;
fail:
	safetensors_free(st);
	return rc;
}

int safetensors_open_mem(const void *buf, size_t len, const struct safetensors_limits *lim,
			 struct safetensors **out, char *err, size_t errlen)
{
	size_t max_file = lim && lim->max_file_bytes ? lim->max_file_bytes : DEF_MAX_FILE;
	if (!buf && len)
		return CV_EINVAL;
	if (len > max_file) {
		snprintf(err, errlen, "safetensors: %zu bytes exceed the limit of %zu", len, max_file);
		return CV_E2BIG;
	}
	unsigned char *copy = malloc(len ? len : 1);
	if (!copy) {
		snprintf(err, errlen, "safetensors: out of memory (%zu bytes)", len);
		return CV_ENOMEM;
	}
	if (len)
		memcpy(copy, buf, len);
	return parse(copy, len, 0, lim, out, err, errlen);
}

/* Open path for reading and check it is a regular file within max_file bytes. */
static int open_checked(const char *path, size_t max_file, int *fd_out, size_t *len_out, char *err,
			size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "safetensors: cannot open %s: %s", path, strerror(e));
		return e == ENOENT ? CV_ENOTFOUND : CV_EIO;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "safetensors: %s is not a regular file", path);
		close(fd);
		return CV_EIO;
	}
	if ((uint64_t)sb.st_size > max_file) {
		snprintf(err, errlen, "safetensors: %s has %lld bytes, over the limit of %zu", path,
			 (long long)sb.st_size, max_file);
		close(fd);
		return CV_E2BIG;
	}
	*fd_out = fd;
	*len_out = (size_t)sb.st_size;
	return CV_OK;
}

/* parse(), with the path in front of any message (messages name the file). */
static int parse_named(const char *path, unsigned char *buf, size_t len, int mapped,
		       const struct safetensors_limits *lim, struct safetensors **out, char *err,
		       size_t errlen)
{
	int rc = parse(buf, len, mapped, lim, out, err, errlen);
	if (rc == CV_OK)
		return CV_OK;
	char tmp[512];
	cv_strlcpy(tmp, err, sizeof tmp);
	snprintf(err, errlen, "%s: %s", path, tmp);
	return rc;
}

int safetensors_open(const char *path, const struct safetensors_limits *lim, struct safetensors **out,
		     char *err, size_t errlen)
{
	size_t max_file = lim && lim->max_file_bytes ? lim->max_file_bytes : DEF_MAX_FILE;
	size_t len = 0, got = 0;
	int fd = -1;
	int rc = open_checked(path, max_file, &fd, &len, err, errlen);
	if (rc != CV_OK)
		return rc;
	unsigned char *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		snprintf(err, errlen, "safetensors: out of memory (%zu bytes)", len);
		return CV_ENOMEM;
	}
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != len) {
		free(buf);
		snprintf(err, errlen, "safetensors: read error on %s", path);
		return CV_EIO;
	}
	return parse_named(path, buf, len, 0, lim, out, err, errlen);
}

int safetensors_map(const char *path, const struct safetensors_limits *lim, struct safetensors **out,
		    char *err, size_t errlen)
{
	size_t max_file = lim && lim->max_file_bytes ? lim->max_file_bytes : DEF_MAX_FILE;
	size_t len = 0;
	int fd = -1;
	int rc = open_checked(path, max_file, &fd, &len, err, errlen);
	if (rc != CV_OK)
		return rc;
	if (len < 8) {
		close(fd);
		snprintf(err, errlen,
			 "%s: safetensors: file of %zu bytes is shorter than the 8-byte header length", path,
			 len);
		return CV_EINVAL;
	}
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "safetensors: cannot map %s: %s", path, strerror(e));
		return CV_EIO;
	}
	/* Rows are read at random: no read-ahead, no fault-around (which would map 16 neighbouring
	 * pages per row read, resident for nothing). Advice only: a refusal changes nothing else. */
	(void)madvise(p, len, MADV_RANDOM);
	return parse_named(path, p, len, 1, lim, out, err, errlen);
}

size_t safetensors_count(const struct safetensors *st)
{
	return st ? st->n : 0;
}

static void fill_view(const struct safetensors *st, const struct st_entry *e, struct safetensors_tensor *out)
{
	memset(out, 0, sizeof *out);
	out->name = e->name;
	out->dtype = e->dtype;
	out->ndim = e->ndim;
	memcpy(out->shape, e->shape, sizeof out->shape);
	out->n_elems = e->n_elems;
	out->n_bytes = (size_t)(e->end - e->begin);
	out->data = st->data + e->begin;
}

int safetensors_get(const struct safetensors *st, size_t idx, struct safetensors_tensor *out)
{
	if (!st || !out || idx >= st->n)
		return CV_EINVAL;
	fill_view(st, &st->t[idx], out);
	return CV_OK;
}

int safetensors_find(const struct safetensors *st, const char *name, struct safetensors_tensor *out,
		     char *err, size_t errlen)
{
	if (!st || !name || !out)
		return CV_EINVAL;
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0) {
			fill_view(st, &st->t[i], out);
			return CV_OK;
		}
	snprintf(err, errlen, "safetensors: no tensor '%s'", name);
	return CV_ENOTFOUND;
}

const char *safetensors_metadata(const struct safetensors *st, const char *key)
{
	if (!st || !st->meta || !key)
		return NULL;
	return json_string_value(json_object_get(st->meta, key));
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: man * 2^-24 exactly */
			float v = (float)man * 0x1.0p-24f;
			return sign ? -v : v;
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

int safetensors_tensor_to_f32(const struct safetensors_tensor *t, float **out, char *err, size_t errlen)
{
	*out = NULL;
	if (t->dtype != SAFETENSORS_DTYPE_F32 && t->dtype != SAFETENSORS_DTYPE_F16 &&
	    t->dtype != SAFETENSORS_DTYPE_BF16 && t->dtype != SAFETENSORS_DTYPE_F64) {
		snprintf(err, errlen, "safetensors: tensor '%s' is %s, expected a float type", t->name,
			 safetensors_dtype_name(t->dtype));
		return CV_EINVAL;
	}
	if (t->n_elems == 0)
		return CV_OK;
	float *o = malloc(t->n_elems * sizeof *o);
	if (!o) {
		snprintf(err, errlen, "safetensors: out of memory for tensor '%s'", t->name);
		return CV_ENOMEM;
	}
	const unsigned char *p = t->data;
	for (size_t i = 0; i < t->n_elems; i++) {
		switch (t->dtype) {
		case SAFETENSORS_DTYPE_F32: memcpy(&o[i], p + 4 * i, 4); break;
		case SAFETENSORS_DTYPE_F16: {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			o[i] = half_to_float(h);
			break;
		}
		case SAFETENSORS_DTYPE_BF16: {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			uint32_t bits = (uint32_t)h << 16;
			memcpy(&o[i], &bits, 4);
			break;
		}
		default: {
			double d;
			memcpy(&d, p + 8 * i, 8);
			o[i] = (float)d;
			break;
		}
		}
	}
	*out = o;
	return CV_OK;
}

int safetensors_tensor_to_i32(const struct safetensors_tensor *t, int32_t **out, char *err, size_t errlen)
{
	*out = NULL;
	switch (t->dtype) {
	case SAFETENSORS_DTYPE_I32:
	case SAFETENSORS_DTYPE_I64:
	case SAFETENSORS_DTYPE_I16:
	case SAFETENSORS_DTYPE_I8:
	case SAFETENSORS_DTYPE_U8:
	case SAFETENSORS_DTYPE_U32:
	case SAFETENSORS_DTYPE_U64: break;
	default:
		snprintf(err, errlen, "safetensors: tensor '%s' is %s, expected an integer type", t->name,
			 safetensors_dtype_name(t->dtype));
		return CV_EINVAL;
	}
	if (t->n_elems == 0)
		return CV_OK;
	int32_t *o = malloc(t->n_elems * sizeof *o);
	if (!o) {
		snprintf(err, errlen, "safetensors: out of memory for tensor '%s'", t->name);
		return CV_ENOMEM;
	}
	const unsigned char *p = t->data;
	for (size_t i = 0; i < t->n_elems; i++) {
		int ok = 1;
		switch (t->dtype) {
		case SAFETENSORS_DTYPE_I32: memcpy(&o[i], p + 4 * i, 4); break;
		case SAFETENSORS_DTYPE_I16: {
			int16_t v;
			memcpy(&v, p + 2 * i, 2);
			o[i] = v;
			break;
		}
		case SAFETENSORS_DTYPE_I8: o[i] = (int8_t)p[i]; break;
		case SAFETENSORS_DTYPE_U8: o[i] = p[i]; break;
		case SAFETENSORS_DTYPE_I64: {
			int64_t v;
			memcpy(&v, p + 8 * i, 8);
			ok = v >= INT32_MIN && v <= INT32_MAX;
			o[i] = ok ? (int32_t)v : 0;
			break;
		}
		case SAFETENSORS_DTYPE_U32: {
			uint32_t v;
			memcpy(&v, p + 4 * i, 4);
			ok = v <= INT32_MAX;
			o[i] = ok ? (int32_t)v : 0;
			break;
		}
		default: {
			uint64_t v;
			memcpy(&v, p + 8 * i, 8);
			ok = v <= INT32_MAX;
			o[i] = ok ? (int32_t)v : 0;
			break;
		}
		}
		if (!ok) {
			free(o);
			snprintf(err, errlen, "safetensors: tensor '%s': element %zu does not fit int32",
				 t->name, i);
			return CV_EINVAL;
		}
	}
	*out = o;
	return CV_OK;
}

static int check_shape(const struct safetensors_tensor *t, size_t want_ndim, const int64_t *want_shape,
		       char *err, size_t errlen)
{
	int ok = t->ndim == want_ndim;
	for (size_t i = 0; ok && want_shape && i < want_ndim; i++)
		ok = want_shape[i] < 0 || want_shape[i] == t->shape[i];
	if (ok)
		return CV_OK;
	char have[160] = "", want[160] = "";
	size_t hl = 0, wl = 0;
	for (size_t i = 0; i < t->ndim && hl < sizeof have; i++)
		hl += (size_t)snprintf(have + hl, sizeof have - hl, "%s%lld", i ? ", " : "",
				       (long long)t->shape[i]);
	for (size_t i = 0; i < want_ndim && wl < sizeof want; i++) {
		if (want_shape && want_shape[i] >= 0)
			wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%lld", i ? ", " : "",
					       (long long)want_shape[i]);
		else
			wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s*", i ? ", " : "");
	}
	snprintf(err, errlen, "safetensors: tensor '%s' has shape [%s], expected [%s]", t->name, have, want);
	return CV_EINVAL;
}

int safetensors_read_f32(const struct safetensors *st, const char *name, size_t want_ndim,
			 const int64_t *want_shape, float **out, int64_t *shape_out, char *err, size_t errlen)
{
	struct safetensors_tensor t;
	*out = NULL;
	int rc = safetensors_find(st, name, &t, err, errlen);
	if (rc == CV_OK)
		rc = check_shape(&t, want_ndim, want_shape, err, errlen);
	if (rc == CV_OK)
		rc = safetensors_tensor_to_f32(&t, out, err, errlen);
	if (rc == CV_OK && shape_out)
		memcpy(shape_out, t.shape, sizeof t.shape);
	return rc;
}

int safetensors_read_i32(const struct safetensors *st, const char *name, size_t want_ndim,
			 const int64_t *want_shape, int32_t **out, int64_t *shape_out, char *err,
			 size_t errlen)
{
	struct safetensors_tensor t;
	*out = NULL;
	int rc = safetensors_find(st, name, &t, err, errlen);
	if (rc == CV_OK)
		rc = check_shape(&t, want_ndim, want_shape, err, errlen);
	if (rc == CV_OK)
		rc = safetensors_tensor_to_i32(&t, out, err, errlen);
	if (rc == CV_OK && shape_out)
		memcpy(shape_out, t.shape, sizeof t.shape);
	return rc;
}
