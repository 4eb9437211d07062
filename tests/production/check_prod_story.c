/*
 * check_prod_story.c — online migrations of a production-shaped database
 * (prodfix.h) onto a managed-service-shaped target: the target is reached
 * as a NOSUPERUSER role that owns its database and nothing else.
 *
 * The stories:
 *  - the whole migration while asynchronous writers touch every kind of
 *    table, with a leftover progress row on the target and the source's
 *    synchronous_standby_names = '*' (the tool notices, and makes every
 *    target commit synchronous): the source's commits stay fast while
 *    streaming, the Ctrl+C that follows the writers' last acknowledged
 *    commit loses none of them, the target equals the source, its triggers,
 *    foreign keys and identity columns are as on the source, and the
 *    application can write to it at once;
 *  - the same database killed (-9) while streaming, then --resume and a
 *    Ctrl+C: nothing lost or doubled, the target whole again;
 *  - GRANTs to a role the target lacks are refused in Validate, offering
 *    --no-privileges, with nothing created on either side.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "prodfix.h"
#include "story.h"

static story_servers sv;

/* a slow WAL writer: asynchronous commits stay unflushed for seconds */
#define SOURCE_CONF STORY_SOURCE_CONF "wal_writer_delay = 10s\nwal_writer_flush_after = 1GB\n"

/* A session as user that speaks UTF-8 (the fixture's strings are). */
static PGconn *
connect_utf8(const pgt_cluster *c, const char *db, const char *user)
{
	PGconn *conn = pgt_connect_as(c, db, user);

	pgt_exec(conn, "SET client_encoding TO 'UTF8'");
	return conn;
}

static void
spawn_tool(pgt_proc *tool, const char *src, const char *tgt, const char *dump, const char *slot,
           bool resume)
{
	const char *const args[] = {"--slot-name", slot,
	                            "--mode",      "online",
	                            "--source",    src,
	                            "--target",    tgt,
	                            "--no-owner",  "--no-privileges",
	                            "--dump-path", dump,
	                            "--json",      "--cutover-poll-secs",
	                            "1",           "--verify",
	                            "strict",      resume ? "--resume" : NULL,
	                            NULL};

	story_tool_start(tool, args, NULL, NULL);
}

/* The application moves to the target: identity, serial and triggers work there at once. */
static void
assert_application_can_write(PGconn *t)
{
	char before[32], after[32];

	pgt_value(t, "SELECT count(*) FROM audit", before, sizeof(before));
	pgt_exec(t, "INSERT INTO customers (name, city) VALUES ('après', 'Genève')");
	pgt_exec(t, "INSERT INTO orders (customer_id, total) SELECT max(id), 1 FROM customers");
	pgt_value(t, "SELECT count(*) - 2 FROM audit", after, sizeof(after));
	ck_assert_msg(strcmp(before, after) == 0, "the audit trigger did not fire on the target");
	/* the cascade is in force again */
	pgt_exec(t, "DELETE FROM customers WHERE name = 'après'");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM "
	                           "customers c WHERE c.id = o.customer_id)",
	                           before, sizeof(before)),
	                 "0");
}

START_TEST(a_production_database_onto_a_managed_target_loses_nothing)
{
	char src[256], tgt[256], dump[512], script[512], buf[64];
	PGconn *s, *t, *probe;
	pgt_proc writers, tool;
	double lat[40];
	int nlat = 0, rc;
	char *out, *err;

	prodfix_source(sv.src_admin, &sv.src, "shop");
	pgt_owned_database(sv.tgt_admin, "shop", "app");
	story_connstrs(&sv, "shop", src, tgt, sizeof(src));
	s = connect_utf8(&sv.src, "shop", "postgres");
	t = connect_utf8(&sv.tgt, "shop", "app");
	pgt_exec(s, "CREATE TABLE latency_probe (at timestamptz DEFAULT now())");
	/* an earlier attempt's progress row, far ahead, for the same slot name */
	pgt_exec(t, "CREATE SCHEMA _pg_dbmigrator; CREATE TABLE _pg_dbmigrator.apply_progress "
	            "(slot_name text PRIMARY KEY, lsn pg_lsn NOT NULL, applied_at timestamptz NOT "
	            "NULL); INSERT INTO _pg_dbmigrator.apply_progress VALUES ('shop', "
	            "'FF/0', now())");
	pgt_scratch("shop-dump", dump, sizeof(dump));
	spawn_tool(&tool, src, tgt, dump, "shop", false);
	story_expect(&tool, "stage=CaughtUp", 120);
	/* an HA primary: any walsender may be its synchronous standby, the tool's too */
	pgt_exec(sv.src_admin, "ALTER SYSTEM SET synchronous_standby_names = '*'");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	/* the tool sees it: each target commit now waits for the disk and is reported at once */
	story_expect(&tool, "as its synchronous standby", 60);
	pgt_scratch("writers.sql", script, sizeof(script));
	prodfix_writers_script(script);
	/* a steady load below the apply capacity: the source's commits wait on the tool's apply */
	prodfix_start_writers(&writers, &sv.src, "shop", 3, 8, 150, script);
	/* the application's synchronous commits while the tool streams */
	probe = connect_utf8(&sv.src, "shop", "postgres");
	for (int i = 0; i < 20; i++)
	{
		int64_t t0 = story_now_us();

		pgt_exec(probe, "INSERT INTO latency_probe DEFAULT VALUES");
		lat[nlat++] = (double)(story_now_us() - t0) / 1000.0;
		usleep(200 * 1000);
	}
	PQfinish(probe);
	story_pgbench_done(&writers, 60);
	/* the instant the last asynchronous commit is acknowledged: Ctrl+C */
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 180, &out, &err);
	pgt_exec(sv.src_admin, "ALTER SYSTEM RESET synchronous_standby_names");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	story_sort(lat, (size_t)nlat);
	fprintf(stderr,
	        "source commit latency while streaming (synchronous_standby_names = '*'): "
	        "p50 %.1f ms, max %.1f ms\n",
	        lat[nlat / 2], lat[nlat - 1]);
	/* a commit waiting for the tool's 10 s status interval would show here */
	ck_assert_msg(lat[nlat / 2] < 500 && lat[nlat - 1] < 3000,
	              "source commits waited for the tool: p50 %.0f ms, max %.0f ms", lat[nlat / 2],
	              lat[nlat - 1]);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(out, "\"stage\":\"Complete\"") && strstr(out, "\"differences\":0"),
	              "no clean Complete: %s", out);
	/* Validate named what is copied once and never streamed */
	ck_assert_msg(strstr(err, "scratch") && strstr(err, "large object"),
	              "unlogged table and large objects not named: %s", err);
	prodfix_assert_same(s, t);
	pgt_assert_same(s, t, "latency_probe");
	ck_assert_str_ne(
	    pgt_value(s, "SELECT count(*) FROM customers WHERE city LIKE 'Málaga%'", buf, sizeof(buf)),
	    "0");
	prodfix_assert_target_intact(s, t);
	story_assert_nothing_left(s, t, "");
	assert_application_can_write(t);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(killed_while_streaming_then_resumed_loses_and_doubles_nothing)
{
	char src[256], tgt[256], dump[512], script[512];
	PGconn *s, *t;
	pgt_proc writers, tool;
	int rc;
	char *err;

	prodfix_source(sv.src_admin, &sv.src, "shop2");
	pgt_owned_database(sv.tgt_admin, "shop2", "app");
	story_connstrs(&sv, "shop2", src, tgt, sizeof(src));
	s = connect_utf8(&sv.src, "shop2", "postgres");
	t = connect_utf8(&sv.tgt, "shop2", "app");
	pgt_scratch("shop2-dump", dump, sizeof(dump));
	pgt_scratch("writers2.sql", script, sizeof(script));
	prodfix_writers_script(script);
	spawn_tool(&tool, src, tgt, dump, "shop2", false);
	story_expect(&tool, "stage=StreamApply", 120);
	prodfix_start_writers(&writers, &sv.src, "shop2", 3, 8, 0, script);
	sleep(4);
	story_kill_9(&tool);
	story_pgbench_done(&writers, 60);
	/*
	 * Their asynchronous commits flushed: the WAL writer here waits 10 s, and
	 * a commit that wrote nothing else (SELECT pg_current_xact_id()) is
	 * asynchronous itself. Unflushed, the catch-up (up to the flushed end)
	 * had nothing to read and the stream took the backlog when the WAL writer
	 * woke: the story then waited for the catch-up's event in vain.
	 */
	pgt_exec(s, "SELECT pg_switch_wal()");
	spawn_tool(&tool, src, tgt, dump, "shop2", true);
	/* what the writers did meanwhile is a backlog: read through SQL, then streamed */
	story_expect(&tool, "applied the backlog through SQL", 120);
	/* from a temporary copy of the slot, the next chunk decoded while one is applied */
	story_expect(&tool, "(pipelined, ", 5);
	story_expect(&tool, "stage=CaughtUp", 120);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 180, NULL, &err);
	ck_assert_msg(rc == 0, "resumed migration exited %d: %s", rc, err);
	prodfix_assert_same(s, t);
	prodfix_assert_target_intact(s, t);
	story_assert_nothing_left(s, t, "");
	assert_application_can_write(t);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(grants_to_roles_the_target_lacks_are_refused_before_anything_is_created)
{
	char src[256], tgt[256], dump[512], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *err;
	int rc;

	prodfix_source(sv.src_admin, &sv.src, "shop3");
	pgt_owned_database(sv.tgt_admin, "shop3", "app");
	story_connstrs(&sv, "shop3", src, tgt, sizeof(src));
	pgt_scratch("shop3-dump", dump, sizeof(dump));
	{
		/* the operator took care of owners, not of the GRANT to prod_reader */
		const char *argv[] = {pgt_tool(),    "--mode", "online",     "--source",    src,
		                      "--target",    tgt,      "--no-owner", "--dump-path", dump,
		                      "--slot-name", "shop3",  NULL};

		pgt_spawn(&tool, argv, NULL);
	}
	rc = story_finish(&tool, 120, NULL, &err);
	ck_assert_msg(rc == 1, "exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "prod_reader") && strstr(err, "--no-privileges") &&
	                  strstr(err, "check=target_grantees"),
	              "no clear refusal: %s", err);
	s = pgt_connect(&sv.src, "shop3");
	t = pgt_connect(&sv.tgt, "shop3");
	story_assert_source_clean(s);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
	                           "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
	                           "'information_schema', 'pg_toast')",
	                           buf, sizeof(buf)),
	                 "0");
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	/* PGDBM_PROD_ONLY=word: only the stories whose name has it (while developing) */
	const story_plan plan = {"production", "story",     400,
	                         &sv,          SOURCE_CONF, .only_env = "PGDBM_PROD_ONLY"};
	const TTest *const stories[] = {
	    a_production_database_onto_a_managed_target_loses_nothing,
	    killed_while_streaming_then_resumed_loses_and_doubles_nothing,
	    grants_to_roles_the_target_lacks_are_refused_before_anything_is_created, NULL};

	return story_run_suite(story_suite(&plan, stories));
}
