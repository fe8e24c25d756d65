/* tests/unit/check_common.c — capped buffer, error names, bounded copy. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/mem.h"

START_TEST(buf_respects_cap)
{
	struct buf b;
	buf_init(&b, 8);
	ck_assert_int_eq(buf_append(&b, "12345", 5), CV_OK);
	ck_assert_int_eq(buf_append(&b, "6789", 4), CV_E2BIG);
	ck_assert_uint_eq(buf_len(&b), 5);
	ck_assert_str_eq(buf_data(&b), "12345");
	ck_assert_int_eq(buf_append(&b, "678", 3), CV_OK);
	ck_assert_str_eq(buf_data(&b), "12345678");
	ck_assert_int_eq(buf_printf(&b, "%d", 1), CV_E2BIG);
	buf_consume(&b, 3);
	ck_assert_str_eq(buf_data(&b), "45678");
	buf_free(&b);
	buf_free(&b);
}
END_TEST

START_TEST(buf_printf_long)
{
	struct buf b;
	char big[2000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	buf_init(&b, 4096);
	ck_assert_int_eq(buf_printf(&b, "<%s>", big), CV_OK);
	ck_assert_uint_eq(buf_len(&b), sizeof big + 1);
	ck_assert_int_eq(buf_data(&b)[0], '<');
	ck_assert_int_eq(buf_data(&b)[buf_len(&b) - 1], '>');
	size_t n;
	char *p = buf_steal(&b, &n);
	ck_assert_uint_eq(n, sizeof big + 1);
	free(p);
	ck_assert_uint_eq(buf_len(&b), 0);
}
END_TEST

START_TEST(strlcpy_truncates)
{
	char d[4];
	ck_assert_uint_eq(cv_strlcpy(d, "abcdef", sizeof d), 6);
	ck_assert_str_eq(d, "abc");
	ck_assert_str_eq(cv_strerror(CV_EFULL), "queue full");
	ck_assert_str_eq(cv_strerror(12345), "unknown error");
}
END_TEST

Suite *suite_common(void);
Suite *suite_common(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("buf");
	tcase_add_test(tc, buf_respects_cap);
	tcase_add_test(tc, buf_printf_long);
	tcase_add_test(tc, strlcpy_truncates);
	suite_add_tcase(s, tc);
	return s;
}
