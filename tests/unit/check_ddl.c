/*
 * check_ddl.c — the pure parts of DDL replication: the SQL lexer that says
 * whether a query text is exactly one command of a tag (quotes, E'' strings,
 * dollar quotes, nested comments, several statements), the parser of the
 * capture's messages (every cut-short prefix refused), and the replay
 * decision.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ddl.h"
#include "migopts.h"

START_TEST(statements_are_counted_outside_quotes_and_comments)
{
	static const struct
	{
		const char *sql;
		int n;
	} cases[] = {
	    {"", 0},
	    {"  ;; ", 0},
	    {"ALTER TABLE t ADD c int", 1},
	    {"ALTER TABLE t ADD c int;", 1},
	    {"ALTER TABLE t ADD c int; INSERT INTO t VALUES (1)", 2},
	    {"ALTER TABLE t ADD c text DEFAULT 'a;b'", 1},
	    {"ALTER TABLE t ADD c text DEFAULT 'it''s; fine'", 1},
	    {"ALTER TABLE t ADD c text DEFAULT E'\\'; x'", 1},
	    {"ALTER TABLE t ADD c text DEFAULT e'a\\\\'; SELECT 1", 2},
	    {"ALTER TABLE \"a;b\" ADD c int", 1},
	    {"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql", 1},
	    {"CREATE FUNCTION f() RETURNS int AS $body$ $$; $body$ LANGUAGE sql; SELECT 1", 2},
	    {"SELECT $1; SELECT 2", 2},
	    {"ALTER TABLE t ADD c int -- ; not a statement\n", 1},
	    {"/* a; /* nested; */ still; */ ALTER TABLE t ADD c int", 1},
	    {"-- only a comment", 0},
	    {"ALTER TABLE t ADD c text DEFAULT 'open", -1},
	    {"CREATE FUNCTION f() AS $x$ never closed", -1},
	    {"/* never closed", -1},
	    {"SELECT \"unclosed", -1},
	    {"SELECT E'\\", -1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(ddl_count_statements(cases[i].sql) == cases[i].n,
		              "\"%s\": %d statements, expected %d", cases[i].sql,
		              ddl_count_statements(cases[i].sql), cases[i].n);
}
END_TEST

START_TEST(text_is_replayed_only_when_it_is_the_command)
{
	static const struct
	{
		const char *sql, *tag;
		bool is, concurrently;
	} cases[] = {
	    {"ALTER TABLE t ADD COLUMN c int DEFAULT 5", "ALTER TABLE", true, false},
	    {"  alter table t rename column a to b;", "ALTER TABLE", true, false},
	    {"/* deploy 42 */ ALTER TABLE t DROP COLUMN c", "ALTER TABLE", true, false},
	    {"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX", true, true},
	    {"CREATE INDEX ON t (a)", "CREATE INDEX", true, false},
	    {"CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
	     "CREATE FUNCTION", true, false},
	    {"CREATE TABLE t2 AS SELECT * FROM t", "CREATE TABLE AS", true, false},
	    {"create materialized view m as select 1", "CREATE MATERIALIZED VIEW", true, false},
	    /* the DDL ran inside something else: never replay the outer text */
	    {"SELECT app_migrate()", "ALTER TABLE", false, false},
	    {"DO $$ BEGIN EXECUTE 'ALTER TABLE t ADD c int'; END $$", "ALTER TABLE", false, false},
	    {"CALL deploy()", "CREATE TABLE", false, false},
	    /* several statements: replaying would apply the DML twice */
	    {"ALTER TABLE t ADD c int; INSERT INTO t VALUES (1)", "ALTER TABLE", false, false},
	    {"ALTER TABLE t ADD c int; ALTER TABLE t ADD d int", "ALTER TABLE", false, false},
	    /* the text is another command than the tag (a nested command) */
	    {"CREATE TABLE t (id serial)", "CREATE SEQUENCE", false, false},
	    {"ALTER TABLE t ADD c int", "CREATE INDEX", false, false},
	    {"", "ALTER TABLE", false, false},
	    {"ALTER TABLE t ADD c text DEFAULT 'x", "ALTER TABLE", false, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		bool conc = false;

		ck_assert_msg(ddl_text_is_command(cases[i].sql, cases[i].tag, &conc) == cases[i].is,
		              "\"%s\" as %s: expected %s", cases[i].sql, cases[i].tag,
		              cases[i].is ? "the command" : "not the command");
		if (cases[i].is)
			ck_assert_msg(conc == cases[i].concurrently, "\"%s\": CONCURRENTLY %s", cases[i].sql,
			              conc ? "seen" : "missed");
	}
	ck_assert(!ddl_text_is_command(NULL, "ALTER TABLE", NULL));
}
END_TEST

static const char full_msg[] =
    "{\"v\": 1, \"tag\": \"ALTER TABLE\", \"defs\": [\"DO $x$ \\\"q\\\" \\u00e9\\ud83d\\ude00 "
    "$x$\", "
    "\"CREATE INDEX i ON public.t USING btree (a)\"], \"role\": \"postgres\", \"nodef\": null, "
    "\"query\": \"select f();\\n\", \"commands\": [\"ALTER TABLE table public.t\", \"CREATE "
    "INDEX index public.i\"], \"schemas\": [\"public\", \"\"], \"search_path\": \"public, "
    "\\\"My\\\"\", \"after\": [\"ALTER TABLE public.t REPLICA IDENTITY FULL\"], \"future\": "
    "{\"a\": [1, "
    "2.5e3, true, false, null, {}]}}";

START_TEST(a_message_is_parsed_and_every_prefix_refused)
{
	ddl_msg m;
	char err[256];

	ck_assert_msg(ddl_msg_parse(full_msg, strlen(full_msg), &m, err, sizeof(err)), "%s", err);
	ck_assert_str_eq(m.tag, "ALTER TABLE");
	ck_assert_str_eq(m.query, "select f();\n");
	ck_assert_str_eq(m.search_path, "public, \"My\"");
	ck_assert_str_eq(m.role, "postgres");
	ck_assert_ptr_null(m.nodef);
	ck_assert_ptr_null(m.error);
	ck_assert_int_eq(m.ndefs, 2);
	ck_assert_str_eq(m.defs[0], "DO $x$ \"q\" \xc3\xa9\xf0\x9f\x98\x80 $x$");
	ck_assert_str_eq(m.commands, "ALTER TABLE table public.t; CREATE INDEX index public.i");
	ck_assert_int_eq(m.nschemas, 2);
	ck_assert_str_eq(m.schemas[0], "public");
	ck_assert_str_eq(m.schemas[1], "");
	ck_assert_int_eq(m.nafter, 1);
	ck_assert_str_eq(m.after[0], "ALTER TABLE public.t REPLICA IDENTITY FULL");
	ck_assert_int_eq(ddl_decide(&m, err, sizeof(err)), DDL_REPLAY_DEFS);
	ddl_msg_free(&m);
	ddl_msg_free(&m); /* safe twice */

	for (size_t n = 0; n < strlen(full_msg); n++)
	{
		ck_assert_msg(!ddl_msg_parse(full_msg, n, &m, err, sizeof(err)),
		              "a message cut at %zu bytes was accepted", n);
		ck_assert_ptr_null(m.tag);
		ck_assert(strstr(err, DDL_MSG_PREFIX) != NULL);
	}
}
END_TEST

START_TEST(bad_messages_are_refused)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"tag\": \"ALTER TABLE\"}",
	    "{\"v\": 2, \"tag\": \"ALTER TABLE\"}",
	    "{\"v\": 1}",
	    "{\"v\": 1, \"tag\": \"A\", \"defs\": [1]}",
	    "{\"v\": 1, \"tag\": \"A\\u0000B\"}",
	    "{\"v\": 1, \"tag\": \"A\\udc00\"}",
	    "{\"v\": 1, \"tag\": \"A\\x\"}",
	    "{\"v\": 1, \"tag\": \"A\"} trailing",
	    "{\"v\": 1, \"tag\": \"A\", \"defs\": [\"x\"], \"defs\": [\"y\"]}",
	};
	ddl_msg m;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!ddl_msg_parse(bad[i], strlen(bad[i]), &m, err, sizeof(err)), "accepted: %s",
		              bad[i]);
}
END_TEST

START_TEST(the_replay_is_decided_by_the_text_then_the_definitions)
{
	char tag[] = "CREATE INDEX", plain[] = "CREATE INDEX i ON t (a)",
	     conc[] = "CREATE INDEX CONCURRENTLY i ON t (a)", call[] = "SELECT deploy()",
	     trig[] = "CREATE TRIGGER trigger tr on public.t", oom[] = "out of memory",
	     def[] = "CREATE INDEX i ON public.t USING btree (a)";
	char *defs[1] = {def};
	ddl_msg m;
	char why[512];

	memset(&m, 0, sizeof(m));
	m.tag = tag;
	m.query = plain;
	ck_assert_int_eq(ddl_decide(&m, why, sizeof(why)), DDL_REPLAY_TEXT);
	/* CONCURRENTLY cannot run in the apply's transaction: its definition can */
	m.query = conc;
	ck_assert_int_eq(ddl_decide(&m, why, sizeof(why)), DDL_REPLAY_NONE);
	m.defs = defs;
	m.ndefs = 1;
	ck_assert_int_eq(ddl_decide(&m, why, sizeof(why)), DDL_REPLAY_DEFS);
	/* in a function, one object without a definition stops the apply */
	m.query = call;
	m.nodef = trig;
	ck_assert_int_eq(ddl_decide(&m, why, sizeof(why)), DDL_REPLAY_NONE);
	ck_assert(strstr(why, "CREATE TRIGGER trigger tr") != NULL);
	/* a capture that failed on the source stops it too, even for a plain text */
	m.nodef = NULL;
	m.query = plain;
	m.error = oom;
	ck_assert_int_eq(ddl_decide(&m, why, sizeof(why)), DDL_REPLAY_NONE);
	ck_assert(strstr(why, "out of memory") != NULL);
}
END_TEST

START_TEST(only_commands_touching_the_scope_are_replayed)
{
	char shop[] = "shop", misc[] = "misc", none[] = "";
	char *both[2] = {misc, shop}, *only_misc[1] = {misc}, *no_schema[1] = {none};
	const char *inc[] = {"shop"}, *ex[] = {"misc"};
	ddl_msg m;

	memset(&m, 0, sizeof(m));
	/* a message without schemas, or a run without filters: replayed */
	ck_assert(ddl_in_scope(&m, inc, 1, NULL, 0));
	m.schemas = only_misc;
	m.nschemas = 1;
	ck_assert(ddl_in_scope(&m, NULL, 0, NULL, 0));
	ck_assert(!ddl_in_scope(&m, inc, 1, NULL, 0));
	ck_assert(!ddl_in_scope(&m, NULL, 0, ex, 1));
	m.schemas = both;
	m.nschemas = 2;
	ck_assert(ddl_in_scope(&m, inc, 1, NULL, 0));
	ck_assert(ddl_in_scope(&m, NULL, 0, ex, 1));
	ck_assert(!ddl_in_scope(&m, inc, 1, inc, 1));
	/* an object of no schema (a role, an extension) concerns every run */
	m.schemas = no_schema;
	m.nschemas = 1;
	ck_assert(ddl_in_scope(&m, inc, 1, ex, 1));
}
END_TEST

START_TEST(the_publish_hook_names_its_publication_and_tests_the_scope)
{
	strbuf sql;

	strbuf_init(&sql);
	ck_assert(ddl_publish_hook_sql(&sql, "'my pub'", "(s.nspname = ANY ('{shop}'::text[]))"));
	ck_assert(strstr(strbuf_data(&sql), "AND (s.nspname = ANY ('{shop}'::text[])) AND") != NULL);
	/* only a table with a key or a full identity, of its own (not a partition) */
	ck_assert(strstr(strbuf_data(&sql), "c.relreplident = 'f' OR EXISTS") != NULL);
	ck_assert(strstr(strbuf_data(&sql), "NOT c.relispartition") != NULL);
	ck_assert(strstr(strbuf_data(&sql), "ADD TABLE %s', 'my pub', rel::regclass)") != NULL);
	ck_assert(strstr(strbuf_data(&sql), "SECURITY DEFINER") != NULL);
	ck_assert(strstr(strbuf_data(&sql), "ALTER EXTENSION plpgsql ADD FUNCTION") != NULL);
	strbuf_free(&sql);
}
END_TEST

START_TEST(the_ddl_options_are_parsed)
{
	static const struct
	{
		const char *args[4];
		bool ok;
		int ddl;
	} cases[] = {
	    {{"--mode", "online", NULL}, true, -1},
	    {{"--mode", "online", "--ddl", "replicate"}, true, 1},
	    {{"--mode", "online", "--ddl", "stop"}, true, 0},
	    {{"--mode", "online", "--ddl", "maybe"}, false, 0},
	    {{"--mode", "offline", "--ddl", "replicate"}, false, 0},
	    {{"--mode", "offline", "--ddl", "stop"}, true, 0},
	    {{"--mode", "online", "--skip-ddl", "0/1A2B"}, true, -1},
	    {{"--mode", "online", "--skip-ddl", "nope"}, false, 0},
	    {{"--mode", "offline", "--skip-ddl", "0/1A2B"}, false, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char *argv[10];
		int argc = 0;
		migopts o;
		bool help;
		char err[512] = "";

		argv[argc++] = (char *)"pg_dbmigrator";
		for (int k = 0; k < 4 && cases[i].args[k]; k++)
			argv[argc++] = (char *)cases[i].args[k];
		argv[argc++] = (char *)"--source=host=a";
		argv[argc++] = (char *)"--target=host=b";
		argv[argc] = NULL;
		ck_assert_msg(migopts_parse(argc, argv, &o, &help, err, sizeof(err)) == cases[i].ok,
		              "case %zu: %s", i, err);
		if (cases[i].ok)
			ck_assert_int_eq(o.ddl, cases[i].ddl);
		else
			ck_assert(strstr(err, "ddl") != NULL);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ddl");
	TCase *tc = tcase_create("ddl");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, statements_are_counted_outside_quotes_and_comments);
	tcase_add_test(tc, text_is_replayed_only_when_it_is_the_command);
	tcase_add_test(tc, a_message_is_parsed_and_every_prefix_refused);
	tcase_add_test(tc, bad_messages_are_refused);
	tcase_add_test(tc, the_replay_is_decided_by_the_text_then_the_definitions);
	tcase_add_test(tc, only_commands_touching_the_scope_are_replayed);
	tcase_add_test(tc, the_publish_hook_names_its_publication_and_tests_the_scope);
	tcase_add_test(tc, the_ddl_options_are_parsed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
