/*
 * check_faults.c — placeholder, being written.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "pgtest.h"

START_TEST(placeholder)
{
	ck_assert(1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, placeholder);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
