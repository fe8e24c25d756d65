/* common/path.h — what a path names, and where the running binary lives (for files shipped beside it).
 *
 * A release tarball (make dist) is relocatable: bin/cosyvoiced finds its
 * plugin in ../lib and its espeak-ng data in ../share from its own path.
 */
#ifndef CV_COMMON_PATH_H
#define CV_COMMON_PATH_H

#include <stddef.h>

/* Directory of the running executable (from /proc/self/exe) into dir.
 * CV_OK, CV_EIO when it cannot be read, CV_E2BIG when len is too small. */
int path_exe_dir(char *dir, size_t len);

/* 1 when path names a regular file (following links), 0 otherwise. */
int path_is_file(const char *path);
/* 1 when path names a directory (following links), 0 otherwise. */
int path_is_dir(const char *path);

/* out = <exe dir>/<rel>, when that names an existing file or directory:
 * CV_OK; CV_ENOTFOUND otherwise. */
int path_beside_exe(char *out, size_t len, const char *rel);

#endif
