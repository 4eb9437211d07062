/*
 * check_dumprestore.c — the pg_dump and pg_restore command lines a migration
 * runs, as the operator's flags shape them: the directory format and --jobs
 * always, the snapshot of an online run, the dump scope, compression, the
 * switches pg_dump gets by default and the --with-* flags that drop them,
 * the filters as exact names, the restore's sections, --clean on a clean or
 * resumed run, --no-owner and --no-privileges; and which files --force-clean
 * takes for pg_dump's.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dumprestore.h"
#include "migopts.h"

#define MAX_ARGS 64

/*
 * Parse the migrate command line (the program name, the connections and
 * --copy-method dump are added: these are the dump method's command lines;
 * a later --copy-method wins).
 */
static void
parse(migopts *o, const char *const *args)
{
	static char *argv[MAX_ARGS + 8];
	char err[4096];
	bool help;
	int argc = 0;

	argv[argc++] = (char *)"pg_dbmigrator";
	argv[argc++] = (char *)"--source";
	argv[argc++] = (char *)"host=src";
	argv[argc++] = (char *)"--target";
	argv[argc++] = (char *)"host=tgt";
	argv[argc++] = (char *)"--copy-method";
	argv[argc++] = (char *)"dump";
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	err[0] = '\0';
	ck_assert_msg(migopts_parse(argc, argv, o, &help, err, sizeof(err)), "refused: %s", err);
}

/* argv joined by spaces */
static const char *
joined(const char *const *argv)
{
	static char buf[8192];

	buf[0] = '\0';
	for (int i = 0; argv[i]; i++)
	{
		if (i)
			strcat(buf, " ");
		strcat(buf, argv[i]);
	}
	return buf;
}

/* The pg_dump command line of a run with these flags (no tables resolved). */
#define DUMP_IS(expected, prog, ...)                                                   \
	do                                                                                 \
	{                                                                                  \
		const char *const a_[] = {__VA_ARGS__, NULL};                                  \
		dumprestore_source s_ = {.bindir = "/bin",                                     \
		                         .conninfo = "host=src",                               \
		                         .snapshot = "00000003-1",                             \
		                         .progress = (prog)};                                  \
		dumprestore_dump d_;                                                           \
		char e_[256];                                                                  \
		migopts o_;                                                                    \
		parse(&o_, a_);                                                                \
		ck_assert_msg(dumprestore_dump_argv(&d_, &o_, &s_, e_, sizeof(e_)), "%s", e_); \
		ck_assert_str_eq(joined(d_.argv), (expected));                                 \
		dumprestore_dump_free(&d_);                                                    \
	} while (0)

#define DUMP_BASE "/bin/pg_dump --dbname=host=src --format=directory"
#define DUMP_DEFAULTS \
	"--no-publications --no-subscriptions --no-sync --no-comments --no-security-labels"

START_TEST(an_offline_dump_is_a_directory_with_the_default_switches)
{
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS, false, "--mode",
	        "offline");
	DUMP_IS(DUMP_BASE " --jobs=4 --file /d/x " DUMP_DEFAULTS, false, "--mode", "offline", "--jobs",
	        "4", "--dump-path", "/d/x");
}
END_TEST

START_TEST(an_online_dump_reads_the_exported_snapshot)
{
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --snapshot=00000003-1 " DUMP_DEFAULTS,
	        false, "--mode", "online");
	DUMP_IS(DUMP_BASE
	        " --jobs=1 --file pg_dbmigrator_dump --snapshot=<exported-at-run-time> " DUMP_DEFAULTS,
	        false, "--mode", "online", "--dry-run");
}
END_TEST

START_TEST(scope_compression_and_verbosity_reach_pg_dump)
{
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --schema-only " DUMP_DEFAULTS, false,
	        "--mode", "offline", "--dump-scope", "schema-only");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --data-only " DUMP_DEFAULTS, false,
	        "--mode", "offline", "--dump-scope", "data-only");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --compress=0 " DUMP_DEFAULTS, false,
	        "--mode", "offline", "--compress", "0");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS " --verbose", false,
	        "--mode", "offline", "--verbose");
	/* progress lines on a terminal read pg_dump's --verbose output */
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS " --verbose", true,
	        "--mode", "offline");
}
END_TEST

START_TEST(each_with_flag_drops_its_default_switch)
{
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --no-subscriptions --no-sync "
	                  "--no-comments --no-security-labels",
	        false, "--mode", "offline", "--with-publications");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --no-publications --no-sync "
	                  "--no-comments --no-security-labels",
	        false, "--mode", "offline", "--with-subscriptions");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --no-publications "
	                  "--no-subscriptions --no-comments --no-security-labels",
	        false, "--mode", "offline", "--with-sync");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --no-publications "
	                  "--no-subscriptions --no-sync --no-security-labels",
	        false, "--mode", "offline", "--with-comments");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump --no-publications "
	                  "--no-subscriptions --no-sync --no-comments",
	        false, "--mode", "offline", "--with-security-labels");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS
	                  " --no-table-access-method",
	        false, "--mode", "offline", "--no-table-access-method");
}
END_TEST

START_TEST(schemas_go_quoted_and_a_dry_run_gives_the_tables_as_named)
{
	/* names go to pg_dump as UTF-8, whatever the source database's encoding */
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS
	                  " --encoding=UTF8 --schema \"Sales\" --schema \"hr\" --exclude-schema "
	                  "\"tmp\"",
	        false, "--mode", "offline", "--schema", "Sales", "--schema", "hr", "--exclude-schema",
	        "tmp");
	DUMP_IS(DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS
	                  " --encoding=UTF8 --table public.Orders --exclude-table public.log",
	        false, "--mode", "offline", "--dry-run", "--table", "public.Orders", "--exclude-table",
	        "public.log");
}
END_TEST

START_TEST(a_run_dumps_the_tables_as_they_resolved_on_the_source)
{
	char *inc[] = {(char *)"public.\"Orders\"", (char *)"public.items"};
	char *exc[] = {(char *)"public.log"};
	const char *const a[] = {"--mode",          "offline",       "--schema", "public",
	                         "--table",         "public.Orders", "--table",  "public.items",
	                         "--exclude-table", "public.log",    NULL};
	dumprestore_source s = {.bindir = "/bin",
	                        .conninfo = "host=src",
	                        .tables = inc,
	                        .ntables = 2,
	                        .ex_tables = exc,
	                        .nex_tables = 1};
	dumprestore_dump d;
	char e[256];
	migopts o;

	parse(&o, a);
	ck_assert(dumprestore_dump_argv(&d, &o, &s, e, sizeof(e)));
	ck_assert_str_eq(joined(d.argv),
	                 DUMP_BASE " --jobs=1 --file pg_dbmigrator_dump " DUMP_DEFAULTS
	                           " --encoding=UTF8 --schema \"public\" --table public.\"Orders\" "
	                           "--table "
	                           "public.items --exclude-table public.log");
	dumprestore_dump_free(&d);
	dumprestore_dump_free(&d); /* a second free is harmless */
}
END_TEST

/* The pg_restore passes of a run with these flags, joined by " | ". */
static const char *
restore(bool progress, const char *const *args)
{
	static char buf[8192];
	dumprestore_restore r;
	migopts o;

	parse(&o, args);
	dumprestore_restore_argv(&r, &o, "/bin", "host=tgt", progress);
	buf[0] = '\0';
	for (int s = 0; s < r.npasses; s++)
	{
		if (s)
			strcat(buf, " | ");
		strcat(buf, r.section[s]);
		strcat(buf, ": ");
		strcat(buf, joined(r.argv[s]));
	}
	return buf;
}

#define RESTORE_IS(expected, progress, ...)                    \
	do                                                         \
	{                                                          \
		const char *const a_[] = {__VA_ARGS__, NULL};          \
		ck_assert_str_eq(restore((progress), a_), (expected)); \
	} while (0)

#define R "/bin/pg_restore --dbname=host=tgt"

START_TEST(a_restore_runs_the_three_sections_in_turn)
{
	RESTORE_IS("pre-data: " R " --jobs=1 --section=pre-data pg_dbmigrator_dump | "
	           "data: " R " --jobs=1 --section=data pg_dbmigrator_dump | "
	           "post-data: " R " --jobs=1 --section=post-data pg_dbmigrator_dump",
	           false, "--mode", "offline");
	/* progress reads the data pass only */
	RESTORE_IS("pre-data: " R " --jobs=2 --section=pre-data /d | "
	           "data: " R " --jobs=2 --section=data --verbose /d | "
	           "post-data: " R " --jobs=2 --section=post-data /d",
	           true, "--mode", "offline", "--jobs", "2", "--dump-path", "/d");
	RESTORE_IS("pre-data: " R " --jobs=1 --section=pre-data --verbose pg_dbmigrator_dump | "
	           "data: " R " --jobs=1 --section=data --verbose pg_dbmigrator_dump | "
	           "post-data: " R " --jobs=1 --section=post-data --verbose pg_dbmigrator_dump",
	           false, "--mode", "offline", "--verbose");
}
END_TEST

START_TEST(one_pass_without_split_sections_or_with_clean)
{
	RESTORE_IS(": " R " --jobs=1 pg_dbmigrator_dump", false, "--mode", "offline",
	           "--no-split-sections");
	RESTORE_IS(": " R " --jobs=1 --verbose pg_dbmigrator_dump", true, "--mode", "offline",
	           "--no-split-sections");
	/* --clean drops only what the sections it restores hold: one pass */
	RESTORE_IS(": " R " --jobs=1 --clean --if-exists pg_dbmigrator_dump", false, "--mode",
	           "offline", "--drop-target-first");
	RESTORE_IS(": " R " --jobs=1 --clean --if-exists pg_dbmigrator_dump", false, "--mode",
	           "offline", "--resume");
}
END_TEST

START_TEST(owner_and_privileges_can_be_left_out)
{
	RESTORE_IS(": " R " --jobs=1 --no-owner --no-privileges pg_dbmigrator_dump", false, "--mode",
	           "offline", "--no-split-sections", "--no-owner", "--no-privileges");
	RESTORE_IS(": " R " --jobs=1 --clean --if-exists --verbose --no-owner pg_dbmigrator_dump",
	           false, "--mode", "offline", "--drop-target-first", "--verbose", "--no-owner");
}
END_TEST

START_TEST(a_direct_copy_dumps_the_schema_in_its_snapshot_and_leaves_the_rows_out)
{
	const char *const args[] = {"--mode", "offline", "--copy-method", "direct",
	                            "--jobs", "3",       "--no-owner",    NULL};
	char *no_data[] = {(char[]){"public.big"}, (char[]){"\"Sch ema\".\"T\""}, NULL};
	dumprestore_source s = {.bindir = "/bin",
	                        .conninfo = "host=src",
	                        .snapshot = "00000003-1",
	                        .no_data = no_data,
	                        .nno_data = 2};
	dumprestore_dump d;
	dumprestore_restore r;
	char e[256];
	migopts o;

	parse(&o, args);
	ck_assert(o.copy_direct);
	ck_assert_msg(dumprestore_dump_argv(&d, &o, &s, e, sizeof(e)), "%s", e);
	/* offline too: the rows are read later in the same snapshot */
	ck_assert_str_eq(joined(d.argv), DUMP_BASE " --jobs=3 --file pg_dbmigrator_dump "
	                                           "--snapshot=00000003-1 " DUMP_DEFAULTS
	                                           " --encoding=UTF8 --exclude-table-data public.big "
	                                           "--exclude-table-data \"Sch ema\".\"T\"");
	dumprestore_dump_free(&d);
	/* before the copy: the schema and the data section (sequence values, large objects) */
	dumprestore_restore_direct(&r, &o, "/bin", "host=tgt", false, true, false);
	ck_assert_int_eq(r.npasses, 1);
	ck_assert_str_eq(joined(r.argv[0]), "/bin/pg_restore --dbname=host=tgt --jobs=3 "
	                                    "--section=pre-data --section=data --no-owner "
	                                    "pg_dbmigrator_dump");
	/* a clean one drops what is there first */
	dumprestore_restore_direct(&r, &o, "/bin", "host=tgt", false, true, true);
	ck_assert_str_eq(joined(r.argv[0]), "/bin/pg_restore --dbname=host=tgt --jobs=3 "
	                                    "--section=pre-data --section=data --clean --if-exists "
	                                    "--no-owner pg_dbmigrator_dump");
	/* after it: the post-data, on the copied rows */
	dumprestore_restore_direct(&r, &o, "/bin", "host=tgt", false, false, false);
	ck_assert_str_eq(joined(r.argv[0]), "/bin/pg_restore --dbname=host=tgt --jobs=3 "
	                                    "--section=post-data --no-owner pg_dbmigrator_dump");
}
END_TEST

/* Parse the command line as given (only the program name added); false with err. */
static bool
parse_as_given(migopts *o, const char *const *args, char *err, size_t errlen)
{
	char *argv[MAX_ARGS + 2];
	bool help;
	int argc = 0;

	argv[argc++] = (char *)"pg_dbmigrator";
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	return migopts_parse(argc, argv, o, &help, err, errlen);
}

START_TEST(the_direct_copy_is_the_default_where_it_can_do_the_whole_job)
{
	migopts o;
	char err[512];

	ck_assert(parse_as_given(
	    &o, (const char *const[]){"--mode", "online", "--source", "s", "--target", "t", NULL}, err,
	    sizeof(err)));
	ck_assert(o.copy_direct);
	/* the dump method where the direct copy cannot do the job */
	ck_assert(parse_as_given(&o,
	                         (const char *const[]){"--mode", "offline", "--source", "s", "--target",
	                                               "t", "--dump-scope", "schema-only", NULL},
	                         err, sizeof(err)));
	ck_assert(!o.copy_direct);
	/* asked for where it cannot: said so, with the way out */
	ck_assert(!parse_as_given(&o,
	                          (const char *const[]){"--mode", "offline", "--source", "s",
	                                                "--target", "t", "--dump-scope", "data-only",
	                                                "--copy-method", "direct", NULL},
	                          err, sizeof(err)));
	ck_assert_msg(strstr(err, "--copy-method dump"), "%s", err);
}
END_TEST

START_TEST(force_clean_takes_only_what_pg_dump_writes)
{
	const char *ours[] = {"toc.dat",   "blobs.toc", "1234.dat",   "5.dat.gz",
	                      "6.dat.lz4", "7.dat.zst", "blob_5.dat", "blob_12.dat.gz"};
	const char *not_ours[] = {"",   "notes.txt", "toc.dat.bak", "x1.dat", "12.sql",
	                          "12", "blob_.dat", "12.dat.bz2",  ".dat",   "blob_x.dat"};

	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		ck_assert_msg(dumprestore_is_dump_file(ours[i]), "%s", ours[i]);
	for (size_t i = 0; i < sizeof(not_ours) / sizeof(not_ours[0]); i++)
		ck_assert_msg(!dumprestore_is_dump_file(not_ours[i]), "%s", not_ours[i]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dumprestore");
	TCase *tc = tcase_create("dumprestore");
	SRunner *sr;
	int failed;

	unsetenv("PG_DBMIGRATOR_SOURCE");
	unsetenv("PG_DBMIGRATOR_TARGET");
	tcase_add_test(tc, an_offline_dump_is_a_directory_with_the_default_switches);
	tcase_add_test(tc, an_online_dump_reads_the_exported_snapshot);
	tcase_add_test(tc, scope_compression_and_verbosity_reach_pg_dump);
	tcase_add_test(tc, a_direct_copy_dumps_the_schema_in_its_snapshot_and_leaves_the_rows_out);
	tcase_add_test(tc, the_direct_copy_is_the_default_where_it_can_do_the_whole_job);
	tcase_add_test(tc, each_with_flag_drops_its_default_switch);
	tcase_add_test(tc, schemas_go_quoted_and_a_dry_run_gives_the_tables_as_named);
	tcase_add_test(tc, a_run_dumps_the_tables_as_they_resolved_on_the_source);
	tcase_add_test(tc, a_restore_runs_the_three_sections_in_turn);
	tcase_add_test(tc, one_pass_without_split_sections_or_with_clean);
	tcase_add_test(tc, owner_and_privileges_can_be_left_out);
	tcase_add_test(tc, force_clean_takes_only_what_pg_dump_writes);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
