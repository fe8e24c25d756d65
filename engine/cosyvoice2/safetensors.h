/* engine/cosyvoice2/safetensors.h — a strict, bounded reader of .safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON (an object:
 * tensor name -> {"dtype", "shape", "data_offsets": [begin, end]}, plus an
 * optional "__metadata__" object of string -> string), then the data buffer.
 * Offsets are relative to the data buffer. Like the reference (Rust)
 * validator this reader requires: dtype known, shape of non-negative
 * integers, end - begin == elements * dtype size, and the tensors, sorted by
 * offset, tile the data buffer exactly (no gap, no overlap, nothing left
 * over). Duplicate keys, a header longer than the limit or than the file,
 * and trailing junk are refused. Every failure is CV_EINVAL (CV_EIO for read
 * errors, CV_E2BIG for a file over the size limit) with text in err.
 *
 * safetensors_open reads the whole file into memory (speaker files are small);
 * safetensors_map maps it read-only (MAP_SHARED) instead, for large tables
 * read a few rows at a time. Tensor data pointers stay valid until
 * safetensors_free().
 */
#ifndef CV_ENGINE_SAFETENSORS_H
#define CV_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAFETENSORS_MAX_DIMS 8

enum safetensors_dtype {
	SAFETENSORS_DTYPE_BOOL,
	SAFETENSORS_DTYPE_U8,
	SAFETENSORS_DTYPE_I8,
	SAFETENSORS_DTYPE_I16,
	SAFETENSORS_DTYPE_U16,
	SAFETENSORS_DTYPE_F16,
	SAFETENSORS_DTYPE_BF16,
	SAFETENSORS_DTYPE_I32,
	SAFETENSORS_DTYPE_U32,
	SAFETENSORS_DTYPE_F32,
	SAFETENSORS_DTYPE_I64,
	SAFETENSORS_DTYPE_U64,
	SAFETENSORS_DTYPE_F64
};

struct safetensors;

struct safetensors_limits {
	size_t max_file_bytes;	 /* 0 = 256 MiB */
	size_t max_header_bytes; /* 0 = 16 MiB */
	size_t max_tensors;	 /* 0 = 100000 */
};

/* A view of one tensor; data points into the file buffer (little-endian,
 * possibly unaligned: use the conversion helpers or memcpy). */
struct safetensors_tensor {
	const char *name;
	enum safetensors_dtype dtype;
	size_t ndim;
	int64_t shape[SAFETENSORS_MAX_DIMS];
	size_t n_elems;
	size_t n_bytes;
	const void *data;
};

/* lim may be NULL (defaults). */
int safetensors_open(const char *path, const struct safetensors_limits *lim, struct safetensors **out,
		     char *err, size_t errlen);
/* Same, mapping the file read-only instead of reading it (lim's max_file_bytes still applies). */
int safetensors_map(const char *path, const struct safetensors_limits *lim, struct safetensors **out,
		    char *err, size_t errlen);
/* Same, from a memory image (copied). */
int safetensors_open_mem(const void *buf, size_t len, const struct safetensors_limits *lim,
			 struct safetensors **out, char *err, size_t errlen);
void safetensors_free(struct safetensors *st);

size_t safetensors_count(const struct safetensors *st);
/* Tensors in data-offset order; CV_EINVAL when idx >= count. */
int safetensors_get(const struct safetensors *st, size_t idx, struct safetensors_tensor *out);
/* CV_ENOTFOUND (with text) when absent. */
int safetensors_find(const struct safetensors *st, const char *name, struct safetensors_tensor *out,
		     char *err, size_t errlen);
/* __metadata__ value or NULL. */
const char *safetensors_metadata(const struct safetensors *st, const char *key);

/* "F32", "BF16"... for messages. */
const char *safetensors_dtype_name(enum safetensors_dtype dt);
size_t safetensors_dtype_size(enum safetensors_dtype dt);

/* Converting copies (malloc'd, caller frees; *out is NULL for 0 elements).
 * to_f32 accepts F32, F16, BF16, F64; to_i32 accepts I32, I64, I16, I8, U8
 * and U32/U64 when every value fits int32 (else CV_EINVAL). CV_ENOMEM. */
int safetensors_tensor_to_f32(const struct safetensors_tensor *t, float **out, char *err, size_t errlen);
int safetensors_tensor_to_i32(const struct safetensors_tensor *t, int32_t **out, char *err, size_t errlen);

/* find + shape check + convert: ndim must equal want_ndim, and each
 * want_shape[i] >= 0 must match (-1 = any). Shape is returned in shape_out
 * (may be NULL, SAFETENSORS_MAX_DIMS entries). CV_ENOTFOUND / CV_EINVAL. */
int safetensors_read_f32(const struct safetensors *st, const char *name, size_t want_ndim,
			 const int64_t *want_shape, float **out, int64_t *shape_out, char *err,
			 size_t errlen);
int safetensors_read_i32(const struct safetensors *st, const char *name, size_t want_ndim,
			 const int64_t *want_shape, int32_t **out, int64_t *shape_out, char *err,
			 size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
