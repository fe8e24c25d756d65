/* tests/unit/testutil.c — helpers shared by the unit suites. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *test_run_line(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	char line[4096];
	char *r = fgets(line, sizeof line, p) ? strdup(line) : NULL;
	if (pclose(p) != 0) {
		free(r);
		return NULL;
	}
	if (r)
		r[strcspn(r, "\n")] = '\0';
	return r;
}

int test_stderr_capture(struct test_stderr *c)
{
	snprintf(c->path, sizeof c->path, "/tmp/cv-test-stderr-XXXXXX");
	c->fd = mkstemp(c->path);
	if (c->fd < 0)
		return -1;
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	if (c->saved < 0 || dup2(c->fd, STDERR_FILENO) < 0) {
		close(c->fd);
		unlink(c->path);
		return -1;
	}
	return 0;
}

char *test_stderr_release(struct test_stderr *c)
{
	enum { CAP = 65536 };
	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	char *buf = malloc(CAP);
	ssize_t n = buf ? pread(c->fd, buf, CAP - 1, 0) : -1;
	close(c->fd);
	unlink(c->path);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}
