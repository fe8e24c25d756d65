/* tests/unit/testutil.h — small helpers shared by the unit suites. */
#ifndef CV_TESTS_UNIT_TESTUTIL_H
#define CV_TESTS_UNIT_TESTUTIL_H

/* Run a shell command and return its first output line (newline stripped,
 * malloc'd), or NULL when it cannot run, prints nothing or exits nonzero.
 * Used to find the project venvs (`bash tools/dev/venv.sh`, tools/dev/torch-venv.sh). */
char *test_run_line(const char *cmd);

#endif
