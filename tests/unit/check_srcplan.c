/*
 * check_srcplan.c — which synchronous_standby_names values make the
 * migration's walsender a synchronous standby candidate (Validate warns
 * then): every form PostgreSQL accepts, quoted names, case.
 */
#include <check.h>
#include <stdlib.h>

#include "srcplan.h"

START_TEST(synchronous_standby_names_in_every_form)
{
	static const struct
	{
		const char *ssn, *app;
		bool matches;
	} cases[] = {
	    {"*", "pg_dbmigrator", true},
	    {"standby1", "pg_dbmigrator", false},
	    {"standby1, pg_dbmigrator", "pg_dbmigrator", true},
	    {"standby1,PG_DBMIGRATOR", "pg_dbmigrator", true},
	    {"FIRST 1 (standby1, standby2)", "pg_dbmigrator", false},
	    {"FIRST 1 (standby1, *)", "pg_dbmigrator", true},
	    {"ANY 2 (s1, \"pg_dbmigrator\", s3)", "pg_dbmigrator", true},
	    {"2 (s1, s2)", "pg_dbmigrator", false},
	    {"1 (*)", "migrator", true},
	    {"\"my \"\"app\"\"\", other", "my \"app\"", true},
	    {"\"first\"", "FIRST", true},
	    {"pg_dbmigrator_x", "pg_dbmigrator", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(srcplan_sync_standby_matches(cases[i].ssn, cases[i].app) == cases[i].matches,
		              "synchronous_standby_names '%s' with application_name %s: expected %s",
		              cases[i].ssn, cases[i].app, cases[i].matches ? "a match" : "none");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("srcplan");
	TCase *tc = tcase_create("sync standby");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, synchronous_standby_names_in_every_form);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
