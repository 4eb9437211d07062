/*
 * check_hostile.c — hostile input between real servers: names that break
 * naive SQL, and a damaged message in the middle of a live apply.
 *
 * The stories:
 *  - hostile names all the way through an online migration: a database,
 *    schemas, tables, columns, sequences, indexes and the publication whose
 *    names hold double and single quotes, spaces, a backslash, a semicolon,
 *    unicode, mixed case, SQL keywords and an "injection"
 *    (x"; DROP TABLE t; --), with writers running until the Ctrl+C cutover:
 *    every table and sequence equal, the tool's own strict verify clean,
 *    nothing dropped that was not ours;
 *  - a malformed pgoutput message (an INSERT whose first column has kind
 *    '?'), put into the replication stream by a proxy after 50 commits while
 *    a single writer commits small transactions: the apply stops with exit 1
 *    and an error naming the malformed message; the target holds exactly a
 *    gap-free prefix of the source's transactions, the slot is confirmed no
 *    further than the damaged transaction's commit record (so it is sent
 *    again), and a second run without the proxy finishes with the target
 *    equal to the source;
 *  - --schema and --exclude-table with such names select exactly those
 *    objects (pg_dump reads its filters as patterns; ours are names).
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "proxy.h"
#include "story.h"

static story_servers sv;

/*
 * The hostile schema. "t" in public is the canary of the injection-looking
 * name: it must survive on both sides.
 */
static const char hostile_ddl[] =
    "CREATE TABLE public.t (id int PRIMARY KEY);"
    "CREATE SCHEMA \"Zürich ☃\";"
    "CREATE SCHEMA \"select\";"
    "CREATE SCHEMA \"we\"\"ird 'sch\\ema;\";"
    /* a primary key on a hostile column; mixed case, spaces, keywords */
    "CREATE TABLE \"Zürich ☃\".\"MixedCase Table\" (\"order\" int PRIMARY KEY, \"user\" text, "
    "  \"Spalte ☃\" numeric, \"a\"\"b'c\\d;e\" text);"
    "CREATE UNIQUE INDEX \"Idx \"\"☃\"\" ;\" ON \"Zürich ☃\".\"MixedCase Table\" "
    "  (\"a\"\"b'c\\d;e\");"
    "CREATE INDEX \"select\" ON \"Zürich ☃\".\"MixedCase Table\" (\"user\", \"Spalte ☃\");"
    /* REPLICA IDENTITY FULL, duplicates allowed, the injection as table and column */
    "CREATE TYPE \"Zürich ☃\".\"Mood \"\"☃\"\"\" AS ENUM ('ok', 'it''s; bad', 'Ünï\\');"
    "CREATE TABLE \"select\".\"x\"\"; DROP TABLE t; --\" (\"from\" int, "
    "  \"x\"\"; DROP TABLE t; --\" text, \"Where\" jsonb, "
    "  \"Mood\" \"Zürich ☃\".\"Mood \"\"☃\"\"\" DEFAULT 'it''s; bad', "
    "  \"Moods\" \"Zürich ☃\".\"Mood \"\"☃\"\"\"[] DEFAULT '{ok,\"Ünï\\\\\"}');"
    "ALTER TABLE \"select\".\"x\"\"; DROP TABLE t; --\" REPLICA IDENTITY FULL;"
    /* a serial and an owned sequence in a hostile schema */
    "CREATE TABLE \"we\"\"ird 'sch\\ema;\".\"order\" (id serial PRIMARY KEY, \"select\" text);"
    "CREATE SEQUENCE \"we\"\"ird 'sch\\ema;\".\"Seq ☃ \"\"q\"\"\" START 7 INCREMENT 3;"
    "ALTER TABLE \"we\"\"ird 'sch\\ema;\".\"order\" ADD COLUMN \"Nr.\" bigint "
    "  DEFAULT nextval('\"we\"\"ird ''sch\\ema;\".\"Seq ☃ \"\"q\"\"\"');"
    "ALTER SEQUENCE \"we\"\"ird 'sch\\ema;\".\"Seq ☃ \"\"q\"\"\" "
    "  OWNED BY \"we\"\"ird 'sch\\ema;\".\"order\".\"Nr.\";"
    /* a partitioned table */
    "CREATE TABLE \"Zürich ☃\".\"Part \"\"it\"\"\" (\"Key\" int PRIMARY KEY, \"v;al\" text) "
    "  PARTITION BY RANGE (\"Key\");"
    "CREATE TABLE \"Zürich ☃\".\"Part \"\"it\"\" 1\" PARTITION OF \"Zürich ☃\".\"Part \"\"it\"\"\" "
    "  FOR VALUES FROM (MINVALUE) TO (101);"
    "CREATE TABLE \"select\".\"Part 'it' 2\" PARTITION OF \"Zürich ☃\".\"Part \"\"it\"\"\" "
    "  FOR VALUES FROM (101) TO (MAXVALUE);"
    /* truncated during the migration */
    "CREATE TABLE \"Zürich ☃\".\"Trunc;ate \"\"me\"\"\" (id int PRIMARY KEY);"
    /* rows */
    "INSERT INTO \"Zürich ☃\".\"Trunc;ate \"\"me\"\"\" SELECT generate_series(1, 10);"
    "INSERT INTO public.t VALUES (1);"
    "INSERT INTO \"Zürich ☃\".\"MixedCase Table\" SELECT g, 'u''' || g, g / 3.0, "
    "  E'v\\\\\"' || g FROM generate_series(1, 200) g;"
    "INSERT INTO \"select\".\"x\"\"; DROP TABLE t; --\" SELECT g % 50, 'dup', "
    "  '{\"k\": \"; DROP TABLE t; --\"}' FROM generate_series(1, 200) g;"
    "INSERT INTO \"we\"\"ird 'sch\\ema;\".\"order\" (\"select\") SELECT 'o' || g "
    "  FROM generate_series(1, 30) g;"
    "INSERT INTO \"Zürich ☃\".\"Part \"\"it\"\"\" SELECT g, 'p' || g FROM generate_series(1, 200) "
    "g";

/* What the writers do, in one transaction each. */
static const char hostile_writers[] =
    "\\set k random(1, 200)\n"
    "BEGIN;\n"
    "UPDATE \"Zürich ☃\".\"MixedCase Table\" SET \"user\" = left(\"user\" || '''', 40), "
    "\"Spalte ☃\" = \"Spalte ☃\" + 1 WHERE \"order\" = :k;\n"
    "INSERT INTO \"select\".\"x\"\"; DROP TABLE t; --\" (\"from\", \"x\"\"; DROP TABLE t; --\") "
    "VALUES (:k % 50, 'new ''; DROP TABLE t; --');\n"
    "DELETE FROM \"select\".\"x\"\"; DROP TABLE t; --\" WHERE ctid = (SELECT min(ctid) FROM "
    "\"select\".\"x\"\"; DROP TABLE t; --\" WHERE \"from\" = :k % 50);\n"
    "INSERT INTO \"we\"\"ird 'sch\\ema;\".\"order\" (\"select\") VALUES ('w');\n"
    "UPDATE \"Zürich ☃\".\"Part \"\"it\"\"\" SET \"v;al\" = left(\"v;al\" || ';', 20) "
    "WHERE \"Key\" = :k;\n"
    "END;\n";

static const char *const hostile_tables[] = {
    "public.t",
    "\"Zürich ☃\".\"MixedCase Table\"",
    "\"select\".\"x\"\"; DROP TABLE t; --\"",
    "\"we\"\"ird 'sch\\ema;\".\"order\"",
    "\"Zürich ☃\".\"Part \"\"it\"\"\"",
    "\"Zürich ☃\".\"Part \"\"it\"\" 1\"",
    "\"select\".\"Part 'it' 2\"",
    "\"Zürich ☃\".\"Trunc;ate \"\"me\"\"\"",
};

static const char *const hostile_sequences[] = {
    "\"we\"\"ird 'sch\\ema;\".\"order_id_seq\"",
    "\"we\"\"ird 'sch\\ema;\".\"Seq ☃ \"\"q\"\"\"",
};

/* The database's name is hostile too: CREATE DATABASE on both sides. */
#define HOSTILE_DB     "Db \"☃\" 'q' \\;"
#define HOSTILE_DB_SQL "\"Db \"\"☃\"\" 'q' \\;\""

START_TEST(hostile_names_survive_an_online_migration_with_writers)
{
	char src[512], tgt[512], dump[512], script[512], buf[256], other[256], sql[512];
	const char *pub = "Pub \"☃\" 'x'; DROP TABLE t; --";
	const char *slot = "pg_dbmigrator_hostile_names_slot_with_a_long_valid_name_0123456";
	PGconn *s, *t;
	pgt_proc writers, tool;
	char *out, *err;
	int rc;

	ck_assert_int_eq((int)strlen(slot), 63);
	pgt_exec(sv.src_admin, "CREATE DATABASE " HOSTILE_DB_SQL);
	pgt_exec(sv.tgt_admin, "CREATE DATABASE " HOSTILE_DB_SQL);
	pgt_connstr(&sv.src, HOSTILE_DB, src, sizeof(src));
	pgt_connstr(&sv.tgt, HOSTILE_DB, tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, HOSTILE_DB);
	t = pgt_connect(&sv.tgt, HOSTILE_DB);
	pgt_exec(s, hostile_ddl);
	story_file("hostile.sql", hostile_writers, script, sizeof(script));
	story_pgbench_start(
	    &writers, (const char *const[]){"-n", "-c", "2", "-T", "4", "-f", script, src, NULL}, NULL);
	pgt_scratch("hostile-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--slot-name", slot, "--publication", pub, "--json",
	                                    "--cutover-poll-secs", "1", "--verify", "strict", NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	story_pgbench_done(&writers, 60);
	pgt_exec(s, "TRUNCATE \"Zürich ☃\".\"Trunc;ate \"\"me\"\"\"");
	pgt_exec(s, "INSERT INTO \"Zürich ☃\".\"Trunc;ate \"\"me\"\"\" VALUES (42)");
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(out, "\"stage\":\"Complete\"") &&
	                  strstr(out, "\"stage\":\"SequenceSync\""),
	              "events missing: %s", out);
	ck_assert_msg(strstr(out, "\"stage\":\"Verify\"") && strstr(out, "\"differences\":0"),
	              "no clean Verify event: %s", out);
	for (size_t i = 0; i < sizeof(hostile_tables) / sizeof(hostile_tables[0]); i++)
		pgt_assert_same(s, t, hostile_tables[i]);
	/* the writers did change every table */
	ck_assert_str_ne(pgt_value(t,
	                           "SELECT count(*) FROM \"we\"\"ird 'sch\\ema;\".\"order\" "
	                           "WHERE \"select\" = 'w'",
	                           buf, sizeof(buf)),
	                 "0");
	for (size_t i = 0; i < sizeof(hostile_sequences) / sizeof(hostile_sequences[0]); i++)
	{
		snprintf(sql, sizeof(sql), "SELECT last_value FROM %s", hostile_sequences[i]);
		ck_assert_msg(strcmp(pgt_value(s, sql, buf, sizeof(buf)),
		                     pgt_value(t, sql, other, sizeof(other))) == 0,
		              "sequence %s: source %s, target %s", hostile_sequences[i], buf, other);
	}
	/* the indexes came along under their names */
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_indexes WHERE indexname IN "
	                           "('Idx \"☃\" ;', 'select')",
	                           buf, sizeof(buf)),
	                 "2");
	/* ours are gone, nothing else is */
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_publication", buf, sizeof(buf)), "0");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM public.t", buf, sizeof(buf)), "1");
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM public.t", buf, sizeof(buf)), "1");
	/* verify, narrowed to hostile names: they match exactly, their sequences come along */
	{
		const char *const args[] = {"verify",   "--source",           src, "--target", tgt,
		                            "--schema", "we\"ird 'sch\\ema;", NULL};

		free(out);
		rc = story_run(args, NULL, 60, &out, NULL);
		ck_assert_msg(rc == 0 && strstr(out, "0 differences; 1 tables"), "verify exited %d: %s", rc,
		              out);
	}
	/* the application moves over: the serial and the owned sequence go on from the source's */
	pgt_exec(t, "INSERT INTO \"we\"\"ird 'sch\\ema;\".\"order\" (\"select\") VALUES ('after')");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* A single writer: the log's n is the order of commit. */
static const char log_writer[] = "\\set id random(1, 20)\n"
                                 "BEGIN;\n"
                                 "INSERT INTO log (note) VALUES ('c' || :id);\n"
                                 "UPDATE counters SET n = n + 1 WHERE id = :id;\n"
                                 "END;\n";

#define CORRUPT_AFTER 50

/* Wait until no walsender holds the slot. */
static void
wait_slot_inactive(PGconn *conn, const char *slot)
{
	char sql[256], buf[16];

	snprintf(sql, sizeof(sql), "SELECT active FROM pg_replication_slots WHERE slot_name = '%s'",
	         slot);
	for (int i = 0; i < 100 && strcmp(pgt_value(conn, sql, buf, sizeof(buf)), "f") != 0; i++)
		usleep(100 * 1000);
	ck_assert_str_eq(pgt_value(conn, sql, buf, sizeof(buf)), "f");
}

START_TEST(a_malformed_message_stops_the_apply_before_it_is_acknowledged)
{
	char src[256], via_proxy[256], tgt[256], script[512], buf[256], start[64], sql[1024];
	char upto[64], confirmed[64], resent_at[64];
	const char *both =
	    "CREATE TABLE log (n bigserial PRIMARY KEY, x xid8 NOT NULL DEFAULT pg_current_xact_id(), "
	    "note text);"
	    "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);"
	    "INSERT INTO counters SELECT generate_series(1, 20)";
	PGconn *s, *t;
	pgt_proxy *proxy;
	pgt_proc writers, tool;
	char *out, *err;
	long k;
	int rc;

	pgt_exec(sv.src_admin, "CREATE DATABASE faulty");
	pgt_exec(sv.tgt_admin, "CREATE DATABASE faulty");
	s = pgt_connect(&sv.src, "faulty");
	t = pgt_connect(&sv.tgt, "faulty");
	pgt_exec(s, both);
	pgt_exec(t, both);
	pgt_exec(s, "CREATE EXTENSION pg_walinspect");
	pgt_exec(s, "CREATE PUBLICATION victim FOR TABLE log, counters");
	pgt_value(s, "SELECT lsn FROM pg_create_logical_replication_slot('victim', 'pgoutput')", start,
	          sizeof(start));
	pgt_connstr(&sv.src, "faulty", src, sizeof(src));
	pgt_connstr(&sv.tgt, "faulty", tgt, sizeof(tgt));
	proxy = pgt_proxy_start(sv.src.port);
	snprintf(via_proxy, sizeof(via_proxy),
	         "host=127.0.0.1 port=%d user=postgres dbname=faulty sslmode=disable "
	         "gssencmode=disable",
	         pgt_proxy_port(proxy));
	pgt_proxy_corrupt_after_commits(proxy, CORRUPT_AFTER);

	/*
	 * one writer, 200 small transactions a second; the apply follows the
	 * stream through the proxy (which damages replication messages, not the
	 * rows of the SQL catch-up)
	 */
	story_file("log.sql", log_writer, script, sizeof(script));
	story_pgbench_start(
	    &writers,
	    (const char *const[]){"-n", "-c", "1", "-R", "200", "-t", "300", "-f", script, src, NULL},
	    NULL);
	{
		const char *argv[] = {
		    pgt_tool(),       "bench",  "--source",      via_proxy, "--target", tgt,
		    "--slot-name",    "victim", "--publication", "victim",  "--endpos", "FFFFFFFF/FFFFFFFF",
		    "--group-commit", "1",      "--catch-up",    "stream",  NULL};

		pgt_spawn(&tool, argv, NULL);
	}
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(pgt_proxy_corrupted(proxy), "the proxy never damaged an INSERT: %s", err);
	ck_assert_msg(rc == 1, "bench exited %d on a malformed message: %s", rc, err);
	ck_assert_msg(strstr(err, "malformed message"), "unclear error: %s", err);
	free(out);
	free(err);
	pgt_proxy_stop(proxy);
	story_pgbench_done(&writers, 60);

	/* the target has transactions 1..k, no gaps, and not the damaged one */
	k = atol(pgt_value(t, "SELECT count(*) FROM log", buf, sizeof(buf)));
	ck_assert_msg(k >= 1 && k <= CORRUPT_AFTER, "%ld transactions applied", k);
	ck_assert_str_eq(pgt_value(t, "SELECT coalesce(max(n), 0) FROM log", buf, sizeof(buf)),
	                 pgt_value(t, "SELECT count(*) FROM log", sql, sizeof(sql)));
	/* ...and the slot is not confirmed past the damaged transaction's commit record */
	wait_slot_inactive(s, "victim");
	pgt_value(s, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'victim'",
	          confirmed, sizeof(confirmed));
	snprintf(sql, sizeof(sql),
	         "SELECT min(w.start_lsn) FROM pg_get_wal_records_info_till_end_of_wal('%s') w, log l "
	         "WHERE l.n = %ld AND w.resource_manager = 'Transaction' AND w.record_type = 'COMMIT' "
	         "AND w.xid::text = (l.x::text::bigint %% 4294967296)::text",
	         start, k + 1);
	pgt_value(s, sql, resent_at, sizeof(resent_at));
	ck_assert_msg(resent_at[0], "no commit record found for transaction %ld", k + 1);
	snprintf(sql, sizeof(sql), "SELECT '%s'::pg_lsn <= '%s'::pg_lsn", confirmed, resent_at);
	ck_assert_msg(strcmp(pgt_value(s, sql, buf, sizeof(buf)), "t") == 0,
	              "slot confirmed at %s, past the commit at %s of transaction %ld that never "
	              "reached the target",
	              confirmed, resent_at, k + 1);

	/* without the proxy, the same slot finishes the job: the damaged transaction was not lost */
	pgt_value(s, "SELECT pg_current_wal_insert_lsn()", upto, sizeof(upto));
	{
		const char *argv[] = {pgt_tool(),    "bench",  "--source",      src,      "--target", tgt,
		                      "--slot-name", "victim", "--publication", "victim", "--endpos", upto,
		                      NULL};

		pgt_spawn(&tool, argv, NULL);
	}
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 0, "bench without the proxy exited %d: %s", rc, err);
	pgt_assert_same(s, t, "log");
	pgt_assert_same(s, t, "counters");
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM log", buf, sizeof(buf)), "300");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* Filters name schemas and tables exactly, however they are spelled. */
START_TEST(hostile_names_in_filters_select_exactly_those_objects)
{
	char src[512], tgt[512], dump[512], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *err;
	int rc;

	pgt_exec(sv.src_admin, "CREATE DATABASE filters");
	pgt_exec(sv.tgt_admin, "CREATE DATABASE filters");
	pgt_connstr(&sv.src, "filters", src, sizeof(src));
	pgt_connstr(&sv.tgt, "filters", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "filters");
	t = pgt_connect(&sv.tgt, "filters");
	pgt_exec(s, hostile_ddl);
	/* a schema whose lower-cased, unquoted spelling exists too: it must stay behind */
	pgt_exec(s, "CREATE SCHEMA \"zürich ☃\"; CREATE TABLE \"zürich ☃\".decoy (id int)");
	pgt_scratch("filters-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--schema", "Zürich ☃", "--schema", "we\"ird 'sch\\ema;",
	                                    "--exclude-table", "Zürich ☃.Trunc;ate \"me\"", "--verify",
	                                    "off", NULL},
	              NULL);
	rc = story_finish(&tool, 120, NULL, &err);
	ck_assert_msg(rc == 0, "offline migration with hostile filters exited %d: %s", rc, err);
	free(err);
	pgt_assert_same(s, t, "\"Zürich ☃\".\"MixedCase Table\"");
	pgt_assert_same(s, t, "\"we\"\"ird 'sch\\ema;\".\"order\"");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_tables WHERE tablename IN ('decoy', "
	                           "'Trunc;ate \"me\"', 'x\"; DROP TABLE t; --', 't')",
	                           buf, sizeof(buf)),
	                 "0");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"hostile input", "hostile", 240, &sv, NULL};
	const TTest *const stories[] = {hostile_names_survive_an_online_migration_with_writers,
	                                a_malformed_message_stops_the_apply_before_it_is_acknowledged,
	                                hostile_names_in_filters_select_exactly_those_objects, NULL};

	return story_run_suite(story_suite(&plan, stories));
}
