/* common/path.h — where the running binary lives, for files shipped beside it.
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

/* out = <exe dir>/<rel>, when that names an existing file or directory:
 * CV_OK; CV_ENOTFOUND otherwise. */
int path_beside_exe(char *out, size_t len, const char *rel);

#endif
