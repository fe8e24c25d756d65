/* tests/unit/testutil.c — helpers shared by the unit suites. */
#include "tests/unit/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
