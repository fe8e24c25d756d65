/* tests/unit/testutil.h — small helpers shared by the unit suites. */
#ifndef CV_TESTS_UNIT_TESTUTIL_H
#define CV_TESTS_UNIT_TESTUTIL_H

/* Run a shell command and return its first output line (newline stripped,
 * malloc'd), or NULL when it cannot run, prints nothing or exits nonzero.
 * Used to find the project venvs (`bash tools/dev/venv.sh`, tools/dev/torch-venv.sh). */
char *test_run_line(const char *cmd);

/* stderr (the daemon's log lines) into a temporary file between test_stderr_capture and
 * test_stderr_release; release restores stderr and returns what was written (malloc'd, at most
 * 64 KiB, NUL-terminated), or NULL on failure. */
struct test_stderr {
	int fd, saved;
	char path[64];
};
int test_stderr_capture(struct test_stderr *c);
char *test_stderr_release(struct test_stderr *c);

#endif
