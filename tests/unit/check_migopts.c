/*
 * check_migopts.c — the migrate command line as an operator types it: what
 * each flag sets, what a run gets without it, every invalid value and
 * conflicting pair refused with the message the operator reads, --help, the
 * config hash a --resume compares (it moves with what defines the migration
 * and with nothing else), and what a whole-server child is started with.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "migopts.h"

#define MAX_ARGS 200

/* Parse a NULL-terminated list of arguments (the program name is added). */
static bool
parse(migopts *o, bool *help, char *err, size_t errlen, const char *const *args)
{
	static char *argv[MAX_ARGS + 2];
	int argc = 0;

	argv[argc++] = (char *)"pg_dbmigrator";
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	err[0] = '\0';
	return migopts_parse(argc, argv, o, help, err, errlen);
}

#define PARSE_OK(o, ...)                                                       \
	do                                                                         \
	{                                                                          \
		const char *const a_[] = {__VA_ARGS__, NULL};                          \
		char e_[4096];                                                         \
		bool h_;                                                               \
		ck_assert_msg(parse((o), &h_, e_, sizeof(e_), a_), "refused: %s", e_); \
		ck_assert(!h_);                                                        \
	} while (0)

static void
setup(void)
{
	unsetenv("PG_DBMIGRATOR_SOURCE");
	unsetenv("PG_DBMIGRATOR_TARGET");
}

START_TEST(a_plain_run_gets_the_documented_defaults)
{
	migopts o;

	PARSE_OK(&o, "--mode", "offline", "--source", "host=a", "--target", "host=b");
	ck_assert(!o.online);
	ck_assert_str_eq(o.source, "host=a");
	ck_assert_str_eq(o.target, "host=b");
	ck_assert_int_eq(o.jobs, 1);
	ck_assert(!o.drop_target_first);
	ck_assert_str_eq(o.slot, "pg_dbmigrator");
	ck_assert_str_eq(o.publication, "pg_dbmigrator_pub");
	ck_assert_int_eq(o.lag_threshold, 1024 * 1024);
	ck_assert_int_eq(o.poll_secs, 5);
	ck_assert_int_eq(o.nschemas + o.ntables + o.nex_schemas + o.nex_tables + o.nri_full, 0);
	ck_assert(o.schemas[0] == NULL && o.tables[0] == NULL && o.ri_full[0] == NULL);
	ck_assert(!migopts_has_filters(&o));
	ck_assert(!o.allow_restore_errors);
	ck_assert(o.sequence_sync);
	/* not given: off, unless the source waits for the tool as its synchronous standby */
	ck_assert_int_eq(o.synchronous_commit, -1);
	/* the backlog through SQL, unless told otherwise */
	ck_assert(!o.catch_up_stream);
	ck_assert_str_eq(o.dump_path, "pg_dbmigrator_dump");
	ck_assert_ptr_null(o.compress);
	ck_assert_str_eq(o.compress_arg, "");
	ck_assert_ptr_null(o.subscription_name);
	ck_assert(!o.keep_subscription);
	ck_assert(!o.json);
	ck_assert_str_eq(o.scope, "all");
	ck_assert(o.split_sections);
	ck_assert(!o.keep_slot);
	ck_assert(o.auto_publication);
	ck_assert_int_eq(o.max_runtime, 0);
	ck_assert_int_eq(o.cutover_timeout, 300);
	ck_assert(o.analyze);
	ck_assert(!o.verbose);
	ck_assert(!o.force_clean);
	ck_assert(o.no_publications && o.no_subscriptions && o.no_sync && o.no_comments &&
	          o.no_security_labels);
	ck_assert(!o.no_table_access_method);
	ck_assert_int_eq(o.group_commit, APPLY_DEFAULT_GROUP_TXNS);
	ck_assert_uint_eq(o.ring_size, 64 * 1024 * 1024);
	ck_assert(!o.resume);
	ck_assert(o.resume_file == NULL);
	ck_assert_int_eq(o.verify, 1);
	ck_assert(!o.dry_run);
	ck_assert(!o.all_databases);
	ck_assert_int_eq(o.max_parallel, 2);
	ck_assert_int_eq(o.migrate_globals, -1);
	ck_assert(!o.with_role_passwords);
	ck_assert(!o.include_postgres);
	ck_assert(o.event_tag == NULL);
	ck_assert(!o.fast_restore);
	ck_assert_int_eq(o.reconnect_max_wait, 300);
	ck_assert_int_eq(o.receiver_timeout, 60);
	ck_assert(!o.skip_missing);
	ck_assert_uint_eq(o.skip_lsn, 0);
	ck_assert(!o.no_owner);
	ck_assert(!o.no_privileges);
}
END_TEST

START_TEST(every_flag_lands_in_its_field)
{
	migopts o;

	PARSE_OK(&o, "--mode", "online", "--source", "host=a", "--target", "host=b", "--jobs", "8",
	         "--drop-target-first", "--slot-name", "my_slot", "--publication", "my_pub",
	         "--lag-threshold-bytes", "4096", "--cutover-poll-secs", "7", "--schema", "s1",
	         "--schema", "s2", "--table", "s1.t", "--exclude-schema", "x", "--exclude-table",
	         "s2.big", "--allow-restore-errors", "--no-sequence-sync", "--resume", "--dump-path",
	         "/tmp/d", "--compress", "0", "--json", "--dump-scope", "data-only",
	         "--no-split-sections", "--keep-slot", "--no-auto-create-publication",
	         "--max-runtime-seconds", "600", "--cutover-fast-poll-ms", "50", "--skip-analyze",
	         "--resume-file", "/tmp/r.json", "--verbose", "--cutover-timeout", "30",
	         "--with-publications", "--with-subscriptions", "--with-sync", "--with-comments",
	         "--with-security-labels", "--no-table-access-method", "--group-commit", "10",
	         "--ring-size", "2MB", "--verify", "strict", "--dry-run", "--all-databases",
	         "--max-parallel", "4", "--no-migrate-globals", "--with-role-passwords",
	         "--include-postgres-db", "--event-tag", "sales", "--fast-restore-settings",
	         "--reconnect-max-wait", "0", "--wal-receiver-timeout", "0", "--skip-lsn", "0/1A2B3C4",
	         "--on-missing-row", "skip", "--replica-identity-full", "public.log",
	         "--replica-identity-full", "all-keyless", "--no-owner", "--no-privileges",
	         "--synchronous-commit", "on");
	ck_assert(o.online);
	ck_assert_int_eq(o.jobs, 8);
	ck_assert(o.drop_target_first);
	ck_assert_str_eq(o.slot, "my_slot");
	ck_assert_str_eq(o.publication, "my_pub");
	ck_assert_int_eq(o.lag_threshold, 4096);
	ck_assert_int_eq(o.poll_secs, 7);
	ck_assert_int_eq(o.nschemas, 2);
	ck_assert_str_eq(o.schemas[0], "s1");
	ck_assert_str_eq(o.schemas[1], "s2");
	ck_assert(o.schemas[2] == NULL);
	ck_assert_int_eq(o.ntables, 1);
	ck_assert_str_eq(o.tables[0], "s1.t");
	ck_assert_int_eq(o.nex_schemas, 1);
	ck_assert_str_eq(o.ex_schemas[0], "x");
	ck_assert_int_eq(o.nex_tables, 1);
	ck_assert_str_eq(o.ex_tables[0], "s2.big");
	ck_assert(migopts_has_filters(&o));
	ck_assert(o.allow_restore_errors);
	ck_assert(!o.sequence_sync);
	ck_assert(o.resume);
	ck_assert_str_eq(o.dump_path, "/tmp/d");
	ck_assert_str_eq(o.compress, "0");
	ck_assert_str_eq(o.compress_arg, "--compress=0");
	ck_assert(o.json);
	ck_assert_str_eq(o.scope, "data-only");
	ck_assert(!o.split_sections);
	ck_assert(o.keep_slot);
	ck_assert(!o.auto_publication);
	ck_assert_int_eq(o.max_runtime, 600);
	ck_assert(!o.analyze);
	ck_assert_str_eq(o.resume_file, "/tmp/r.json");
	ck_assert(o.verbose);
	ck_assert_int_eq(o.cutover_timeout, 30);
	ck_assert(!o.no_publications && !o.no_subscriptions && !o.no_sync && !o.no_comments &&
	          !o.no_security_labels);
	ck_assert(o.no_table_access_method);
	ck_assert_int_eq(o.group_commit, 10);
	ck_assert_uint_eq(o.ring_size, 2 * 1024 * 1024);
	ck_assert_int_eq(o.verify, 2);
	ck_assert(o.dry_run);
	ck_assert(o.all_databases);
	ck_assert_int_eq(o.max_parallel, 4);
	ck_assert_int_eq(o.migrate_globals, 0);
	ck_assert(o.with_role_passwords);
	ck_assert(o.include_postgres);
	ck_assert_str_eq(o.event_tag, "sales");
	ck_assert(o.fast_restore);
	ck_assert_int_eq(o.reconnect_max_wait, 0);
	ck_assert_int_eq(o.receiver_timeout, 0);
	ck_assert_uint_eq(o.skip_lsn, 0x1A2B3C4);
	ck_assert(o.skip_missing);
	ck_assert_int_eq(o.nri_full, 2);
	ck_assert_str_eq(o.ri_full[0], "public.log");
	ck_assert_str_eq(o.ri_full[1], "all-keyless");
	ck_assert(o.no_owner);
	ck_assert(o.no_privileges);
	ck_assert_int_eq(o.synchronous_commit, 1);
}
END_TEST

START_TEST(the_last_of_a_flag_pair_wins_and_equals_forms_parse)
{
	migopts o;

	PARSE_OK(&o, "--mode=offline", "--source=host=a", "--target=host=b", "--no-split-sections",
	         "--split-sections", "--no-migrate-globals", "--migrate-globals", "--verify=off",
	         "--verify", "warn", "--on-missing-row", "error", "--synchronous-commit=on",
	         "--synchronous-commit", "off", "--catch-up=stream", "--catch-up", "sql");
	ck_assert(!o.online);
	ck_assert(!o.catch_up_stream);
	ck_assert_int_eq(o.synchronous_commit, 0);
	ck_assert_str_eq(o.source, "host=a");
	ck_assert(o.split_sections);
	ck_assert_int_eq(o.migrate_globals, 1);
	ck_assert_int_eq(o.verify, 1);
	ck_assert(!o.skip_missing);
	PARSE_OK(&o, "--mode", "online", "--source", "a", "--target", "b", "--verify", "off");
	ck_assert_int_eq(o.verify, 0);
}
END_TEST

START_TEST(the_connections_may_come_from_the_environment)
{
	migopts o;

	setenv("PG_DBMIGRATOR_SOURCE", "host=env-src", 1);
	setenv("PG_DBMIGRATOR_TARGET", "host=env-tgt", 1);
	PARSE_OK(&o, "--mode", "offline");
	ck_assert_str_eq(o.source, "host=env-src");
	ck_assert_str_eq(o.target, "host=env-tgt");
	PARSE_OK(&o, "--mode", "offline", "--target", "host=flag");
	ck_assert_str_eq(o.source, "host=env-src");
	ck_assert_str_eq(o.target, "host=flag");
}
END_TEST

/* Each bad command line, and the one message the operator reads after "pg_dbmigrator: ". */
static const struct
{
	const char *args[12];
	const char *message;
} refusals[] = {
#define RUN    "--mode", "offline", "--source", "a", "--target", "b"
#define ONLINE "--mode", "online", "--source", "a", "--target", "b"
    {{RUN, "--jobs", "0"}, "invalid --jobs \"0\": use a number from 1 to 128"},
    {{RUN, "--jobs", "129"}, "invalid --jobs \"129\": use a number from 1 to 128"},
    {{RUN, "--jobs", "two"}, "invalid --jobs \"two\": use a number from 1 to 128"},
    {{ONLINE, "--slot-name", "Bad-Name"}, NULL /* replconn's own reason, checked by prefix */},
    {{ONLINE, "--lag-threshold-bytes", "-1"}, "invalid --lag-threshold-bytes \"-1\""},
    {{ONLINE, "--lag-threshold-bytes", "1k"}, "invalid --lag-threshold-bytes \"1k\""},
    {{ONLINE, "--cutover-poll-secs", "0"},
     "invalid --cutover-poll-secs \"0\": use a number from 1 to 3600"},
    {{RUN, "--compress", "10"},
     "invalid --compress \"10\": use a level from 0 to 9, none, gzip[:LEVEL], lz4[:LEVEL] or "
     "zstd[:LEVEL] (lz4 and zstd need pg_dump 16 or newer)"},
    {{RUN, "--compress", "brotli:3"},
     "invalid --compress \"brotli:3\": use a level from 0 to 9, none, gzip[:LEVEL], lz4[:LEVEL] "
     "or zstd[:LEVEL] (lz4 and zstd need pg_dump 16 or newer)"},
    {{RUN, "--compress", "gzip:11"},
     "invalid --compress \"gzip:11\": gzip takes a level from 0 to 9, like gzip:5"},
    {{RUN, "--compress", "zstd:"}, "invalid --compress \"zstd:\": use zstd or zstd:LEVEL"},
    {{RUN, "--compress", "lz4:1;rm"}, "invalid --compress \"lz4:1;rm\": use lz4 or lz4:LEVEL"},
    {{"--mode", "offline", "--source", "a", "--target", "b", "--from-host", "h"},
     "give --source or the --from-host/--from-port/... options, not both"},
    {{"--mode", "offline", "--target", "b", "--to-user", "u"},
     "give --target or the --to-host/--to-port/... options, not both"},
    {{"--mode", "offline", "--from-port", "65536", "--to-host", "t"},
     "invalid --from-port \"65536\": use a number from 1 to 65535"},
    {{RUN, "--migrate-globals=maybe"},
     "invalid --migrate-globals=maybe: use --migrate-globals or --no-migrate-globals"},
    {{RUN, "--dump-scope", "tables"},
     "invalid --dump-scope \"tables\": use all, schema-only or data-only"},
    {{ONLINE, "--max-runtime-seconds", "0"},
     "invalid --max-runtime-seconds \"0\": use a number from 1 to 100000000"},
    {{ONLINE, "--cutover-fast-poll-ms", "60001"},
     "invalid --cutover-fast-poll-ms \"60001\": use a number from 1 to 60000"},
    {{ONLINE, "--cutover-timeout", "604801"},
     "invalid --cutover-timeout \"604801\": use a number from 1 to 604800"},
    {{ONLINE, "--group-commit", "0"},
     "invalid --group-commit \"0\": use a number from 1 to 1000000"},
    {{ONLINE, "--ring-size", "512kB"}, "invalid --ring-size \"512kB\": use at least 1MB"},
    {{ONLINE, "--ring-size", "lots"}, "invalid --ring-size \"lots\": use at least 1MB"},
    {{RUN, "--verify", "maybe"}, "invalid --verify \"maybe\": use off, warn or strict"},
    {{ONLINE, "--large-objects", "later"}, "invalid --large-objects \"later\": use copy or skip"},
    {{RUN, "--max-parallel", "65"}, "invalid --max-parallel \"65\": use a number from 1 to 64"},
    {{ONLINE, "--reconnect-max-wait", "-1"},
     "invalid --reconnect-max-wait \"-1\": use a number from 0 to 604800"},
    {{ONLINE, "--wal-receiver-timeout", "86401"},
     "invalid --wal-receiver-timeout \"86401\": use a number from 0 to 86400"},
    {{ONLINE, "--skip-lsn", "0/0"},
     "invalid --skip-lsn \"0/0\": give the commit LSN an apply error named, like 0/1A2B3C4"},
    {{ONLINE, "--skip-lsn", "yesterday"},
     "invalid --skip-lsn \"yesterday\": give the commit LSN an apply error named, like "
     "0/1A2B3C4"},
    {{ONLINE, "--on-missing-row", "ignore"},
     "invalid --on-missing-row \"ignore\": use error or skip"},
    {{ONLINE, "--synchronous-commit", "local"},
     "invalid --synchronous-commit \"local\": use on or off"},
    {{ONLINE, "--catch-up", "walsender"}, "invalid --catch-up \"walsender\": use sql or stream"},
    {{RUN, "--no-such-flag"},
     "unknown or incomplete option \"--no-such-flag\"\nTry \"pg_dbmigrator --help\"."},
    {{RUN, "--jobs"}, "unknown or incomplete option \"--jobs\"\nTry \"pg_dbmigrator --help\"."},
    {{RUN, "--json=yes"},
     "unknown or incomplete option \"--json=yes\"\nTry \"pg_dbmigrator --help\"."},
    {{RUN, "leftover"}, "unexpected argument \"leftover\""},
    {{"--source", "a", "--target", "b"}, "--mode offline or --mode online is required"},
    {{"--mode", "sideways", "--source", "a", "--target", "b"},
     "--mode offline or --mode online is required"},
    {{RUN, "--skip-lsn", "0/16B3748"},
     "--skip-lsn and --on-missing-row skip apply to the changes streamed by --mode online"},
    {{RUN, "--on-missing-row", "skip"},
     "--skip-lsn and --on-missing-row skip apply to the changes streamed by --mode online"},
    {{RUN, "--resume", "--force-clean"},
     "--resume and --force-clean conflict: continue the previous run, or start over"},
    {{"--mode", "offline", "--source", "a"},
     "--source and --target are required (or PG_DBMIGRATOR_SOURCE / PG_DBMIGRATOR_TARGET)"},
    {{"--mode", "online", "--target", "b"},
     "--source and --target are required (or PG_DBMIGRATOR_SOURCE / PG_DBMIGRATOR_TARGET)"},
    {{RUN, "--replica-identity-full", "t"},
     "--replica-identity-full is for --mode online (an offline copy needs no replica identity)"},
    {{ONLINE, "--dump-scope", "schema-only"},
     "--dump-scope schema-only conflicts with --mode online (changes need the data)"},
#undef RUN
#undef ONLINE
};

START_TEST(each_bad_command_line_is_refused_with_its_message)
{
	migopts o;
	char err[4096];
	bool help;

	ck_assert_msg(!parse(&o, &help, err, sizeof(err), refusals[_i].args), "case %d accepted", _i);
	if (refusals[_i].message)
		ck_assert_str_eq(err, refusals[_i].message);
	else
		ck_assert_msg(strncmp(err, "invalid --slot-name: ", 21) == 0 && err[21] != '\0', "%s", err);
}
END_TEST

START_TEST(one_filter_too_many_is_refused)
{
	static const char *const flags[] = {"--schema", "--table", "--exclude-schema",
	                                    "--exclude-table", "--replica-identity-full"};

	for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
	{
		const char *args[MAX_ARGS];
		char err[4096], expect[128];
		migopts o;
		bool help;
		int n = 0;

		args[n++] = "--mode";
		args[n++] = "online";
		args[n++] = "--source";
		args[n++] = "a";
		args[n++] = "--target";
		args[n++] = "b";
		for (int i = 0; i < MIGOPTS_MAX_LIST; i++)
		{
			args[n++] = flags[f];
			args[n++] = "s.t";
		}
		args[n] = NULL;
		ck_assert_msg(parse(&o, &help, err, sizeof(err), args), "%s: %s", flags[f], err);
		args[n++] = flags[f];
		args[n++] = "s.one_more";
		args[n] = NULL;
		ck_assert(!parse(&o, &help, err, sizeof(err), args));
		snprintf(expect, sizeof(expect), "at most %d %s", MIGOPTS_MAX_LIST, flags[f]);
		ck_assert_str_eq(err, expect);
	}
}
END_TEST

START_TEST(help_asks_for_nothing_else_and_prints_the_usage)
{
	const char *const args[] = {"--help", NULL};
	const char *const bad_then_help[] = {"--jobs", "1", "--help", "--no-such-flag", NULL};
	migopts o;
	char err[4096], text[16384];
	bool help;
	FILE *f = tmpfile();
	size_t n;

	ck_assert(parse(&o, &help, err, sizeof(err), args));
	ck_assert(help);
	ck_assert(parse(&o, &help, err, sizeof(err), bad_then_help));
	ck_assert(help);
	ck_assert_ptr_nonnull(f);
	migopts_usage(f);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	ck_assert(strncmp(text, "pg_dbmigrator moves a PostgreSQL database to another server.\n", 61) ==
	          0);
	ck_assert_ptr_nonnull(
	    strstr(text, "pg_dbmigrator --mode offline|online --source URI --target URI [options]"));
	ck_assert_ptr_nonnull(strstr(text, "Exit codes: 0 done, 1 error, 2 bad usage, 3 aborted"));
	ck_assert_ptr_nonnull(strstr(text, "--replica-identity-full TABLE|all-keyless"));
	ck_assert_ptr_nonnull(strstr(text, "--no-privileges"));
	/* issue 19: --resume was missing, and the other tools' names are listed */
	ck_assert_ptr_nonnull(strstr(text, "  --resume "));
	ck_assert_ptr_nonnull(strstr(text, "--compress SPEC"));
	ck_assert_ptr_nonnull(strstr(text, "--subscription-name NAME, --keep-subscription"));
	ck_assert_ptr_nonnull(strstr(text, "--from-host"));
	ck_assert_ptr_nonnull(strstr(text, "--dump-root"));
	ck_assert(text[n - 1] == '\n');
}
END_TEST

/* The config hash of a run with the baseline and these extra arguments. */
static uint64_t
hash_with(const char *src, const char *tgt, const char *const *extra)
{
	const char *args[MAX_ARGS];
	char err[4096];
	migopts o;
	bool help;
	int n = 0;

	args[n++] = "--source";
	args[n++] = "a";
	args[n++] = "--target";
	args[n++] = "b";
	for (int i = 0; extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	ck_assert_msg(parse(&o, &help, err, sizeof(err), args), "%s", err);
	return migopts_config_hash(&o, src, tgt);
}

#define HASH(src, tgt, ...) hash_with((src), (tgt), (const char *const[]){__VA_ARGS__, NULL})

START_TEST(the_config_hash_moves_with_what_defines_the_migration)
{
	uint64_t base = HASH("host=a", "host=b", "--mode", "online");

	ck_assert_uint_eq(base, HASH("host=a", "host=b", "--mode", "online"));
	/* what a resume must not change */
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "offline"));
	ck_assert_uint_ne(base, HASH("host=c", "host=b", "--mode", "online"));
	ck_assert_uint_ne(base, HASH("host=a", "host=c", "--mode", "online"));
	ck_assert_uint_ne(base, HASH("host=b", "host=a", "--mode", "online"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--slot-name", "s2"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--publication", "p2"));
	ck_assert_uint_ne(base,
	                  HASH("host=a", "host=b", "--mode", "online", "--dump-scope", "data-only"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--schema", "s"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--table", "s"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--exclude-schema", "s"));
	ck_assert_uint_ne(base, HASH("host=a", "host=b", "--mode", "online", "--exclude-table", "s"));
	/* one name in another list is another migration */
	ck_assert_uint_ne(HASH("host=a", "host=b", "--mode", "online", "--schema", "s"),
	                  HASH("host=a", "host=b", "--mode", "online", "--table", "s"));
	ck_assert_uint_ne(HASH("host=a", "host=b", "--mode", "online", "--table", "s"),
	                  HASH("host=a", "host=b", "--mode", "online", "--exclude-schema", "s"));
	ck_assert_uint_ne(HASH("host=a", "host=b", "--mode", "online", "--exclude-schema", "s"),
	                  HASH("host=a", "host=b", "--mode", "online", "--exclude-table", "s"));
	ck_assert_uint_ne(
	    HASH("host=a", "host=b", "--mode", "online", "--schema", "ab"),
	    HASH("host=a", "host=b", "--mode", "online", "--schema", "a", "--schema", "b"));
	/* what a resume may change: tuning, output, how it resumes */
	ck_assert_uint_eq(base,
	                  HASH("host=a", "host=b", "--mode", "online", "--jobs", "4", "--json",
	                       "--verbose", "--compress", "1", "--ring-size", "8MB", "--group-commit",
	                       "5", "--resume", "--resume-file", "/tmp/r", "--dump-path", "/tmp/d",
	                       "--verify", "strict", "--cutover-timeout", "60", "--lag-threshold-bytes",
	                       "0", "--skip-lsn", "0/10", "--on-missing-row", "skip", "--keep-slot",
	                       "--no-sequence-sync", "--drop-target-first", "--allow-restore-errors",
	                       "--no-owner", "--no-privileges"));
}
END_TEST

START_TEST(a_whole_server_child_gets_its_own_slot_dump_and_tag)
{
	static const char *const args[] = {"pg_dbmigrator",
	                                   "--mode",
	                                   "online",
	                                   "--all-databases",
	                                   "--source",
	                                   "host=a password=secret",
	                                   "--target=host=b",
	                                   "--jobs",
	                                   "4",
	                                   "--max-parallel",
	                                   "3",
	                                   "--migrate-globals",
	                                   "--no-migrate-globals",
	                                   "--with-role-passwords",
	                                   "--include-postgres-db",
	                                   "--dump-path=/srv/dump",
	                                   "--slot-name",
	                                   "mine",
	                                   "--event-tag",
	                                   "x",
	                                   "--resume-file",
	                                   "/tmp/r",
	                                   "--json",
	                                   NULL};
	char *argv[sizeof(args) / sizeof(args[0])];
	int argc = (int)(sizeof(args) / sizeof(args[0])) - 1;
	char err[4096];
	migopts o;
	migopts_child c;
	bool help;
	static const char *const expect[] = {
	    "/proc/self/exe", "--mode",      "online",        "--jobs",      "4",
	    "--json",         "--dump-path", NULL /* dump */, "--slot-name", NULL /* slot */,
	    "--event-tag",    "Sales-DB"};
	size_t n = sizeof(expect) / sizeof(expect[0]);

	for (int i = 0; i <= argc; i++)
		argv[i] = (char *)args[i];
	ck_assert_msg(migopts_parse(argc, argv, &o, &help, err, sizeof(err)), "%s", err);
	migopts_child_init(&c, &o, argc, argv, "Sales-DB");
	ck_assert(strncmp(c.slot, "pg_dbmigrator_sales_db_", 23) == 0 && strlen(c.slot) == 23 + 8);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(c.argv[i], expect[i] ? expect[i] : i == 7 ? c.dump_path : c.slot);
	ck_assert_ptr_null(c.argv[n]);
	ck_assert(strncmp(c.dump_path, "/srv/dump/pg_dbmigrator_sales_db_", 33) == 0);
	ck_assert_str_eq(c.dump_path + strlen("/srv/dump/"), c.slot);
}
END_TEST

/*
 * A pg-migrate command line under --all-databases: the children get their
 * connections in the environment, so no --from-pass (nor any --from-* or
 * --to-*, nor --dump-root or --subscription-name) reaches a child's argv.
 */
START_TEST(a_whole_server_child_gets_no_connection_part_of_pg_migrate)
{
	static const char *const args[] = {"pg_dbmigrator",
	                                   "--mode",
	                                   "offline",
	                                   "--all-databases",
	                                   "--from-host",
	                                   "src",
	                                   "--from-pass",
	                                   "secret123",
	                                   "--from-user",
	                                   "postgres",
	                                   "--to-host",
	                                   "dst",
	                                   "--to-pass",
	                                   "newsecret456",
	                                   "--to-port=5433",
	                                   "--dump-root",
	                                   "/srv/dumps",
	                                   "-j",
	                                   "4",
	                                   "--max-parallel",
	                                   "2",
	                                   "--subscription-name",
	                                   "s",
	                                   "--keep-subscription",
	                                   NULL};
	char *argv[sizeof(args) / sizeof(args[0])];
	int argc = (int)(sizeof(args) / sizeof(args[0])) - 1;
	char err[4096];
	migopts o;
	migopts_child c;
	bool help;

	for (int i = 0; i <= argc; i++)
		argv[i] = (char *)args[i];
	ck_assert_msg(migopts_parse(argc, argv, &o, &help, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(o.jobs, 4);
	ck_assert_str_eq(o.dump_path, "/srv/dumps");
	migopts_child_init(&c, &o, argc, argv, "app");
	for (int i = 0; c.argv[i]; i++)
	{
		ck_assert_msg(strstr(c.argv[i], "secret") == NULL, "a password in argv[%d]", i);
		ck_assert_msg(strncmp(c.argv[i], "--from-", 7) && strncmp(c.argv[i], "--to-", 5) &&
		                  strcmp(c.argv[i], "--dump-root") && strcmp(c.argv[i], "/srv/dumps") &&
		                  strncmp(c.argv[i], "--subscription", 14) &&
		                  strcmp(c.argv[i], "--keep-subscription"),
		              "argv[%d] = %s", i, c.argv[i]);
	}
	ck_assert(strncmp(c.dump_path, "/srv/dumps/pg_dbmigrator_app_", 29) == 0);
}
END_TEST

/* The Rust pg_dbmigrator's documented online command line, as its README has it. */
START_TEST(the_rust_tools_online_command_line_parses_and_says_what_it_ignores)
{
	migopts o;
	char note[1024];

	PARSE_OK(&o, "--mode", "online", "--source", "postgres://user:pw@src/db", "--target",
	         "postgres://user:pw@dst/db", "--slot-name", "pg_dbmigrator_slot", "--publication",
	         "pg_dbmigrator_pub", "--subscription-name", "pg_dbmigrator_sub", "--jobs", "4",
	         "--lag-threshold-bytes", "8192", "--cutover-poll-secs", "5");
	ck_assert_str_eq(o.subscription_name, "pg_dbmigrator_sub");
	ck_assert_str_eq(o.slot, "pg_dbmigrator_slot");
	ck_assert(migopts_compat_note(&o, note, sizeof(note)));
	ck_assert_msg(strncmp(note,
	                      "--subscription-name ignored: pg_dbmigrator creates no "
	                      "subscription on the target",
	                      70) == 0,
	              "%s", note);
	PARSE_OK(&o, "--mode", "online", "--source", "a", "--target", "b", "--keep-subscription");
	ck_assert(o.keep_subscription);
	ck_assert(migopts_compat_note(&o, note, sizeof(note)));
	ck_assert(strncmp(note, "--keep-subscription ignored", 27) == 0);
	PARSE_OK(&o, "--mode", "offline", "--source", "a", "--target", "b", "--jobs", "4",
	         "--drop-target-first", "--exclude-schema", "audit", "--exclude-table",
	         "public.large_log", "--allow-restore-errors", "--no-sequence-sync");
	ck_assert(!migopts_compat_note(&o, note, sizeof(note)));
	ck_assert_str_eq(note, "");
}
END_TEST

/* Every --compress form: pg_dump's argument, and the oldest pg_dump that takes it. */
static const struct
{
	const char *spec, *arg;
	int min_major;
} compress_specs[] = {
    {"0", "--compress=0", 0},
    {"9", "--compress=9", 0},
    {"none", "--compress=0", 0},
    {"gzip", "--compress=6", 0},
    {"gzip:1", "--compress=1", 0},
    {"gzip:level=9", "--compress=9", 0},
    {"lz4", "--compress=lz4", 16},
    {"lz4:1", "--compress=lz4:1", 16},
    {"zstd:3", "--compress=zstd:3", 16},
    {"zstd:level=19,long", "--compress=zstd:level=19,long", 16},
};

START_TEST(each_compression_spec_becomes_pg_dumps_own)
{
	migopts o;
	char err[512];

	PARSE_OK(&o, "--mode", "offline", "--source", "a", "--target", "b", "--compress",
	         compress_specs[_i].spec);
	ck_assert_str_eq(o.compress, compress_specs[_i].spec);
	ck_assert_str_eq(o.compress_arg, compress_specs[_i].arg);
	ck_assert_int_eq(o.compress_min_major, compress_specs[_i].min_major);
	ck_assert(migopts_compress_check(&o, 16, err, sizeof(err)));
	ck_assert(migopts_compress_check(&o, 0, err, sizeof(err))); /* unknown: pg_dump judges */
	ck_assert(migopts_compress_check(&o, 15, err, sizeof(err)) ==
	          (compress_specs[_i].min_major <= 15));
}
END_TEST

START_TEST(pg_dump_15_is_told_what_it_can_do_instead_of_zstd)
{
	migopts o;
	char err[512];

	PARSE_OK(&o, "--mode", "offline", "--source", "a", "--target", "b", "--compress", "zstd:3");
	ck_assert(!migopts_compress_check(&o, 15, err, sizeof(err)));
	ck_assert_str_eq(err, "--compress zstd:3 needs pg_dump 16 or newer, and the installed pg_dump "
	                      "is 15 (it compresses with gzip only): use --compress gzip:LEVEL (or a "
	                      "level 0-9, or none), or install PostgreSQL 16+ client tools and set "
	                      "PG_BINDIR");
}
END_TEST

/* pg-migrate's connection options build the conninfo; the environment's gives way. */
START_TEST(pg_migrates_connection_options_build_the_conninfo)
{
	migopts o;
	char note[1024];

	setenv("PG_DBMIGRATOR_SOURCE", "host=env-src", 1);
	PARSE_OK(&o, "--mode", "offline", "--all-databases", "--from-host", "source-db.example.com",
	         "--from-user", "postgres", "--from-pass", "it's\\secret", "--to-host",
	         "target-db.example.com", "--to-port", "5433", "--to-db", "postgres", "-j", "4", "-m",
	         "2", "--dump-root", "pg_dumps", "--migrate-globals=false");
	ck_assert_str_eq(o.source, "host='source-db.example.com' user='postgres' "
	                           "password='it\\'s\\\\secret'");
	ck_assert_str_eq(o.target, "host='target-db.example.com' port='5433' dbname='postgres'");
	ck_assert_int_eq(o.jobs, 4);
	ck_assert_int_eq(o.max_parallel, 2);
	ck_assert_str_eq(o.dump_path, "pg_dumps");
	ck_assert_int_eq(o.migrate_globals, 0);
	ck_assert(migopts_compat_note(&o, note, sizeof(note)));
	ck_assert_ptr_nonnull(strstr(note, "~/.pgpass"));
	PARSE_OK(&o, "--mode", "offline", "--target", "host=t", "--migrate-globals=true");
	ck_assert_str_eq(o.source, "host=env-src");
	ck_assert_int_eq(o.migrate_globals, 1);
}
END_TEST

START_TEST(large_objects_are_carried_unless_skip_is_asked_for)
{
	migopts o;

	PARSE_OK(&o, "--mode", "online", "--source", "host=a", "--target", "host=b");
	ck_assert(!o.skip_large_objects);
	PARSE_OK(&o, "--mode", "online", "--source", "host=a", "--target", "host=b", "--large-objects",
	         "skip");
	ck_assert(o.skip_large_objects);
	PARSE_OK(&o, "--mode", "online", "--source", "host=a", "--target", "host=b",
	         "--large-objects=skip", "--large-objects", "copy");
	ck_assert(!o.skip_large_objects);
}
END_TEST

START_TEST(database_names_map_to_distinct_valid_slot_names)
{
	char a[80], b[80], lng[80];
	char name[200];

	migopts_slot_for("Sales-DB", a, sizeof(a));
	migopts_slot_for("sales_db", b, sizeof(b));
	ck_assert(strncmp(a, "pg_dbmigrator_sales_db_", 23) == 0);
	ck_assert(strncmp(b, "pg_dbmigrator_sales_db_", 23) == 0);
	ck_assert_uint_eq(strlen(a), 23 + 8);
	ck_assert_str_ne(a, b);
	memset(name, 'z', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	migopts_slot_for(name, lng, sizeof(lng));
	ck_assert_uint_le(strlen(lng), 63); /* NAMEDATALEN - 1 */
	for (const char *p = lng; *p; p++)
		ck_assert((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("migopts");
	TCase *tc = tcase_create("migopts");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, a_plain_run_gets_the_documented_defaults);
	tcase_add_test(tc, every_flag_lands_in_its_field);
	tcase_add_test(tc, the_last_of_a_flag_pair_wins_and_equals_forms_parse);
	tcase_add_test(tc, the_connections_may_come_from_the_environment);
	tcase_add_loop_test(tc, each_bad_command_line_is_refused_with_its_message, 0,
	                    (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, one_filter_too_many_is_refused);
	tcase_add_test(tc, help_asks_for_nothing_else_and_prints_the_usage);
	tcase_add_test(tc, the_config_hash_moves_with_what_defines_the_migration);
	tcase_add_test(tc, a_whole_server_child_gets_its_own_slot_dump_and_tag);
	tcase_add_test(tc, large_objects_are_carried_unless_skip_is_asked_for);
	tcase_add_test(tc, database_names_map_to_distinct_valid_slot_names);
	tcase_add_test(tc, a_whole_server_child_gets_no_connection_part_of_pg_migrate);
	tcase_add_test(tc, the_rust_tools_online_command_line_parses_and_says_what_it_ignores);
	tcase_add_loop_test(tc, each_compression_spec_becomes_pg_dumps_own, 0,
	                    (int)(sizeof(compress_specs) / sizeof(compress_specs[0])));
	tcase_add_test(tc, pg_dump_15_is_told_what_it_can_do_instead_of_zstd);
	tcase_add_test(tc, pg_migrates_connection_options_build_the_conninfo);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
