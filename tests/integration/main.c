/* tests/integration/main.c — one Check runner for every integration suite.
 *
 * Suites are found by file name (tests/integration/check_<name>.c defines
 * `Suite *suite_<name>(void)`); the Makefile writes the list into
 * integration_suites.inc. CK_RUN_SUITE / CK_RUN_CASE select as usual. A run that
 * executes zero tests fails, so a typo in a selection can never pass. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#define SUITE(name) Suite *suite_##name(void);
#include "integration_suites.inc"
#undef SUITE

int main(void)
{
	SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, suite_##name());
#include "integration_suites.inc"
#undef SUITE
	srunner_run_all(sr, CK_ENV);
	int ran = srunner_ntests_run(sr);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (ran == 0) {
		fprintf(stderr, "check_integration: no test ran\n");
		return EXIT_FAILURE;
	}
	printf("%d passed, %d failed\n", ran - failed, failed);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
