/* common/mem.h — allocation wrappers for bookkeeping-sized objects.
 * xmalloc/xcalloc/xrealloc/xstrdup abort with a message on failure (a daemon
 * that cannot allocate 200 bytes cannot do anything useful). Request-sized
 * buffers (PCM, bodies) use plain malloc and map failure to CV_ENOMEM. */
#ifndef CV_COMMON_MEM_H
#define CV_COMMON_MEM_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Bounded copy: always NUL-terminates when cap > 0; returns strlen(src)
 * (like strlcpy) so truncation is detectable as ret >= cap. */
size_t cv_strlcpy(char *dst, const char *src, size_t cap);

#endif
