/* common/buf.h — a growable byte buffer with a hard cap (curl's dynbuf idea).
 *
 * struct buf is visible so it can live inside other structs, but its fields
 * are private: use the functions. Appending past `cap` fails with CV_E2BIG and
 * leaves the buffer unchanged; allocation failure gives CV_ENOMEM. The data is
 * always followed by one NUL byte (not counted in len) so text can be read in
 * place. buf_free() on a zeroed or freed buffer is a no-op.
 */
#ifndef CV_COMMON_BUF_H
#define CV_COMMON_BUF_H
#include <stddef.h>

struct buf {
	char *_data;
	size_t _len;
	size_t _alloc;
	size_t _cap;
};

void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *buf_data(const struct buf *b);
size_t buf_len(const struct buf *b);
size_t buf_cap(const struct buf *b);
/* Hand the storage to the caller (free() it); the buffer is left empty. */
char *buf_steal(struct buf *b, size_t *len);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);

#endif
