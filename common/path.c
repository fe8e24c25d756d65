/* common/path.c — see path.h. */
#include "common/path.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"

int path_is_file(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int path_is_dir(const char *path)
{
	struct stat st;
	return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exe_dir(char *dir, size_t len)
{
	if (!dir || len < 2)
		return CV_E2BIG;
	ssize_t n = readlink("/proc/self/exe", dir, len - 1);
	if (n <= 0)
		return CV_EIO;
	if ((size_t)n >= len - 1)
		return CV_E2BIG;
	dir[n] = '\0';
	char *slash = strrchr(dir, '/');
	if (!slash)
		return CV_EIO;
	*slash = '\0';
	return CV_OK;
}

int path_beside_exe(char *out, size_t len, const char *rel)
{
	struct stat st;
	int rc = path_exe_dir(out, len);
	if (rc != CV_OK)
		return rc;
	size_t n = strlen(out);
	if (snprintf(out + n, len - n, "/%s", rel) >= (int)(len - n))
		return CV_E2BIG;
	return stat(out, &st) == 0 ? CV_OK : CV_ENOTFOUND;
}
