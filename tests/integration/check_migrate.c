/*
 * check_migrate.c — `pg_dbmigrator --mode online|offline` between real
 * servers.
 *
 * The stories:
 *  - an online migration while pgbench writes, cut over with Ctrl+C once
 *    caught up: every table and sequence on the target equals the source, the
 *    slot and publication are gone, and a new row on the target does not
 *    collide with migrated ones;
 *  - an offline migration of some tables only;
 *  - a password given in the URI reaches pg_dump and pg_restore only through
 *    their environment: never their argv, an event or a log line;
 *  - Ctrl+C during a slow dump stops the dump's whole process group, exit 3;
 *  - bad input: each gets its one clear message and exit code.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

static story_servers sv;

START_TEST(online_migration_with_writers_cut_over_by_ctrl_c)
{
	char src[256], tgt[256], dump[512], script[512], buf[128];
	PGconn *s, *t;
	pgt_proc writers, tool;
	char *out, *err;
	int rc;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "shop");
	/* the target as on a managed service: a NOSUPERUSER role that owns its database */
	pgt_owned_database(sv.tgt_admin, "shop", "app");
	story_connstrs(&sv, "shop", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "shop");
	t = pgt_connect(&sv.tgt, "shop");
	story_pgbench_init(src);
	pgt_exec(s, "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
	pgt_exec(s, "CREATE TABLE items (id serial PRIMARY KEY, name text, tags text[], "
	            "price numeric(10,2), at timestamptz DEFAULT now())");
	pgt_exec(s, "INSERT INTO items (name, tags, price) SELECT 'item ' || g, ARRAY['a', 'b'], g "
	            "FROM generate_series(1, 500) g");
	story_file(
	    "writers.sql",
	    "\\set aid random(1, 100000)\n"
	    "\\set delta random(-5000, 5000)\n"
	    "BEGIN;\n"
	    "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
	    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, "
	    "now());\n"
	    "INSERT INTO items (name, price) VALUES ('new', :delta);\n"
	    "DELETE FROM items WHERE id = (SELECT min(id) FROM items) AND :delta > 4000;\n"
	    "END;\n",
	    script, sizeof(script));
	story_pgbench_start(
	    &writers, (const char *const[]){"-n", "-c", "4", "-T", "8", "-f", script, src, NULL}, NULL);
	pgt_scratch("shop-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--json", "--cutover-poll-secs", "1", "--jobs", "2",
	                                    "--verify", "strict", "--no-owner", NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	/* the writers finish; then the operator cuts over */
	story_pgbench_done(&writers, 60);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(out, "\"stage\":\"Complete\"") && strstr(out, "\"stage\":\"Cutover\"") &&
	                  strstr(out, "\"stage\":\"SequenceSync\""),
	              "events missing: %s", out);
	ck_assert_msg(strstr(out, "\"stage\":\"Verify\"") && strstr(out, "\"differences\":0"),
	              "no clean Verify event: %s", out);
	pgt_assert_same(s, t, "pgbench_accounts");
	pgt_assert_same(s, t, "pgbench_branches");
	pgt_assert_same(s, t, "pgbench_tellers");
	pgt_assert_same(s, t, "pgbench_history");
	pgt_assert_same(s, t, "items");
	ck_assert_str_eq(pgt_value(t, "SELECT last_value FROM items_id_seq", buf, sizeof(buf)),
	                 pgt_value(s, "SELECT last_value FROM items_id_seq", buf + 64, 64));
	/* nothing left behind on the source or the target */
	story_assert_nothing_left(s, t, "");
	/* the application moves to the target: new rows do not collide */
	pgt_exec(t, "INSERT INTO items (name) VALUES ('after cutover')");
	pgt_exec(t, "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(offline_migration_of_some_tables)
{
	char src[256], tgt[256], dump[512], buf[64];
	PGconn *s, *t;
	char *out, *err;
	pgt_proc tool;
	int rc;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "filt");
	pgt_connstr(&sv.src, "filt", src, sizeof(src));
	pgt_connstr(&sv.tgt, "filt", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "filt");
	t = pgt_connect(&sv.tgt, "filt");
	pgt_exec(s, "CREATE SCHEMA app; CREATE SCHEMA scratch");
	pgt_exec(s, "CREATE TABLE app.keep (id int PRIMARY KEY, v text)");
	pgt_exec(s, "CREATE TABLE app.skip (id int PRIMARY KEY)");
	pgt_exec(s, "CREATE TABLE scratch.junk (id int)");
	pgt_exec(s, "INSERT INTO app.keep SELECT g, 'v' || g FROM generate_series(1, 1000) g");
	pgt_exec(s, "INSERT INTO app.skip VALUES (1)");
	pgt_scratch("filt-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--schema", "app", "--exclude-table", "app.skip", NULL},
	              NULL);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "offline migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "stage=Complete"), "no Complete event: %s", err);
	pgt_assert_same(s, t, "app.keep");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_tables WHERE schemaname IN ('app', "
	                           "'scratch')",
	                           buf, sizeof(buf)),
	                 "1");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* A bin directory whose pg_dump and pg_restore record argv and PGPASSWORD, then run the real ones. */
static void
recording_bindir(char *dir, size_t size, const char *log, int sleep_secs, bool restore_fails)
{
	char before[256];

	snprintf(before, sizeof(before), "sleep %d\n%s", sleep_secs,
	         restore_fails ? "case \"$0\" in *pg_restore) echo 'pg_restore: error: could not "
	                         "execute query: simulated failure' >&2; exit 1;; esac"
	                       : "");
	pgt_recording_bindir("bin", log, before, dir, size);
}

START_TEST(a_password_travels_only_in_the_environment)
{
	char src[512], tgt[512], dump[512], bindir[512], log[512], env[600], buf[64];
	char *out, *err, *logged;
	pgt_proc tool;
	int rc;
	const char *secret = "s3cret-Pa55";

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "pw");
	pgt_exec(sv.src_admin, "DROP ROLE IF EXISTS migrator");
	pgt_exec(sv.src_admin, "CREATE ROLE migrator LOGIN SUPERUSER PASSWORD 's3cret-Pa55'");
	snprintf(src, sizeof(src), "postgresql://migrator:%s@127.0.0.1:%d/pw", secret, sv.src.port);
	snprintf(tgt, sizeof(tgt), "postgresql://postgres:%s@127.0.0.1:%d/pw", secret, sv.tgt.port);
	{
		PGconn *s = pgt_connect(&sv.src, "pw");

		pgt_exec(s, "CREATE TABLE t (id int PRIMARY KEY)");
		pgt_exec(s, "INSERT INTO t SELECT generate_series(1, 10)");
		PQfinish(s);
	}
	pgt_scratch("pw.log", log, sizeof(log));
	recording_bindir(bindir, sizeof(bindir), log, 0, false);
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	pgt_scratch("pw-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump, (const char *const[]){"--json", NULL},
	              (const char *const[]){env, NULL});
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, err);
	logged = pgt_read_file(log);
	ck_assert_ptr_nonnull(logged);
	ck_assert_msg(strstr(logged, "argv: ") && strstr(logged, "PGPASSWORD set: yes"),
	              "the children did not run as expected: %s", logged);
	ck_assert_msg(strstr(logged, secret) == NULL, "a child's argv holds the password: %s", logged);
	ck_assert_msg(strstr(out, secret) == NULL, "an event holds the password: %s", out);
	ck_assert_msg(strstr(err, secret) == NULL, "a log line holds the password: %s", err);
	ck_assert_str_eq(pgt_value(sv.tgt_admin, "SELECT 1", buf, sizeof(buf)), "1");
	free(out);
	free(err);
	free(logged);
}
END_TEST

START_TEST(ctrl_c_during_a_slow_dump_leaves_no_child_behind)
{
	char src[256], tgt[256], dump[512], bindir[512], log[512], env[600], buf[64];
	char *out, *err;
	pgt_proc tool;
	int rc;
	FILE *ps;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "slow");
	pgt_connstr(&sv.src, "slow", src, sizeof(src));
	pgt_connstr(&sv.tgt, "slow", tgt, sizeof(tgt));
	pgt_scratch("slow.log", log, sizeof(log));
	recording_bindir(bindir, sizeof(bindir), log, 60, false);
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	pgt_scratch("slow-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump, NULL, (const char *const[]){env, NULL});
	ck_assert_msg(pgt_wait_for_text(log, "argv:", 30), "pg_dump never started");
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 30, &out, &err);
	ck_assert_msg(rc == 3, "interrupted migration exited %d: %s", rc, err);
	/* the wrapper (and its sleep) are gone with their process group */
	usleep(200 * 1000);
	{
		char cmd[700];

		/* "[/]": the pattern must not match the shell that runs pgrep */
		snprintf(cmd, sizeof(cmd), "pgrep -fc '%s[/]pg_dump'", bindir);
		ps = popen(cmd, "r");
	}
	ck_assert_ptr_nonnull(ps);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), ps));
	pclose(ps);
	ck_assert_msg(atoi(buf) == 0, "%d wrapper processes left behind", atoi(buf));
	free(out);
	free(err);
}
END_TEST

START_TEST(bad_input_gets_one_clear_message)
{
	char src[256], tgt[256], dump[512];
	char *err;
	pgt_cluster replica_level;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "bad");
	pgt_connstr(&sv.src, "bad", src, sizeof(src));
	pgt_connstr(&sv.tgt, "bad", tgt, sizeof(tgt));
	pgt_scratch("bad-dump", dump, sizeof(dump));

	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "online", "--bogus", NULL}, NULL, 60, NULL, &err),
	    2);
	ck_assert_msg(strstr(err, "--bogus"), "%s", err);
	free(err);
	ck_assert_int_eq(story_run((const char *const[]){"--source", src, "--target", tgt, NULL}, NULL,
	                           60, NULL, &err),
	                 2);
	ck_assert_msg(strstr(err, "--mode"), "%s", err);
	free(err);
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "offline", "--source",
	                                    "host=x port=notaport =", "--target", tgt, NULL},
	              NULL, 60, NULL, &err),
	    2);
	ck_assert_msg(strstr(err, "--source") && strstr(err, "connection string"), "%s", err);
	free(err);
	/* an unreachable source */
	ck_assert_int_eq(story_run((const char *const[]){"--mode", "offline", "--source",
	                                                 "host=127.0.0.1 port=1 connect_timeout=2",
	                                                 "--target", tgt, "--dump-path", dump, NULL},
	                           NULL, 60, NULL, &err),
	                 1);
	ck_assert_msg(strstr(err, "source_reachable"), "%s", err);
	free(err);
	/* a target that is not empty */
	{
		PGconn *t = pgt_connect(&sv.tgt, "bad");

		pgt_exec(t, "CREATE TABLE already_here (id int)");
		PQfinish(t);
	}
	ck_assert_int_eq(story_run((const char *const[]){"--mode", "offline", "--source", src,
	                                                 "--target", tgt, "--dump-path", dump, NULL},
	                           NULL, 60, NULL, &err),
	                 1);
	ck_assert_msg(strstr(err, "target_empty") && strstr(err, "--drop-target-first"), "%s", err);
	free(err);
	/* online from a source without wal_level = logical */
	pgt_start(&replica_level, "wal_level = replica\n");
	{
		char rsrc[256];

		pgt_connstr(&replica_level, "postgres", rsrc, sizeof(rsrc));
		ck_assert_int_eq(
		    story_run((const char *const[]){"--mode", "online", "--source", rsrc, "--target", tgt,
		                                    "--dump-path", dump, "--drop-target-first", NULL},
		              NULL, 60, NULL, &err),
		    1);
		ck_assert_msg(strstr(err, "source_wal_level") && strstr(err, "wal_level = logical"), "%s",
		              err);
		free(err);
	}
	pgt_stop(&replica_level);
	/* --force-clean with a --dump-path that is not a dump: refused, nothing removed */
	{
		char notes[600], slots[32];
		FILE *f;

		mkdir(dump, 0700);
		snprintf(notes, sizeof(notes), "%s/precious.txt", dump);
		f = fopen(notes, "w");
		ck_assert_ptr_nonnull(f);
		fputs("keep me\n", f);
		fclose(f);
		ck_assert_int_eq(
		    story_run((const char *const[]){"--mode", "online", "--source", src, "--target", tgt,
		                                    "--dump-path", dump, "--drop-target-first",
		                                    "--force-clean", NULL},
		              NULL, 60, NULL, &err),
		    1);
		ck_assert_msg(strstr(err, "does not look like a dump directory") &&
		                  strstr(err, "precious.txt"),
		              "%s", err);
		ck_assert_int_eq(access(notes, F_OK), 0);
		ck_assert_str_eq(pgt_value(sv.src_admin, "SELECT count(*) FROM pg_replication_slots", slots,
		                           sizeof(slots)),
		                 "0");
		free(err);
	}
}
END_TEST

/* Drop a slot once its walsender has let go of it. */
static void
drop_slot_when_free(PGconn *c, const char *slot)
{
	char sql[256], buf[64];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND NOT active",
	         slot);
	for (int i = 0; i < 100; i++)
	{
		if (strcmp(pgt_value(c, sql, buf, sizeof(buf)), "1") == 0)
			break;
		usleep(100 * 1000);
	}
	snprintf(sql, sizeof(sql), "SELECT pg_drop_replication_slot('%s')", slot);
	pgt_exec(c, sql);
}

START_TEST(resume_after_kill_9_during_apply_loses_and_doubles_nothing)
{
	char src[256], tgt[256], other[256], dump[512], script[512];
	PGconn *s, *t;
	pgt_proc writers, tool;
	char *out, *err;
	int rc;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "res");
	pgt_owned_database(sv.tgt_admin, "res", "app");
	pgt_owned_database(sv.tgt_admin, "res_other", "app");
	story_connstrs(&sv, "res", src, tgt, sizeof(src));
	pgt_connstr_as(&sv.tgt, "res_other", "app", other, sizeof(other));
	s = pgt_connect(&sv.src, "res");
	t = pgt_connect(&sv.tgt, "res");
	pgt_exec(s, "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)");
	pgt_exec(s, "CREATE TABLE log (k bigserial PRIMARY KEY, note text)");
	pgt_exec(s, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 50) g");
	story_file("res.sql",
	           "\\set id random(1, 50)\n"
	           "BEGIN;\n"
	           "UPDATE counters SET n = n + 1 WHERE id = :id;\n"
	           "INSERT INTO log (note) VALUES ('c' || :client_id);\n"
	           "END;\n",
	           script, sizeof(script));
	story_pgbench_start(&writers,
	                    (const char *const[]){"-n", "-c", "2", "-T", "10", "-f", script, src, NULL},
	                    NULL);
	pgt_scratch("res-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--cutover-poll-secs", "1", "--no-owner", NULL}, NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	usleep(700 * 1000);
	story_kill_9(&tool);

	/* status after the crash: the stage, the slot kept, what the target has */
	{
		pgt_proc st;

		{
			const char *argv[] = {pgt_tool(), "status", "--dump-path", dump, NULL};

			pgt_spawn(&st, argv, NULL);
		}
		ck_assert_int_eq(story_finish(&st, 30, &out, NULL), 0);
		ck_assert_msg(strstr(out, "last completed stage Restore") &&
		                  strstr(out, "slot:         pg_dbmigrator present") &&
		                  strstr(out, "applied:      up to "),
		              "%s", out);
		free(out);
	}
	/* a rerun without --resume, or with another target, is refused */
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "online", "--source", src, "--target", tgt,
	                                    "--dump-path", dump, "--no-owner", NULL},
	              NULL, 60, NULL, &err),
	    1);
	ck_assert_msg(strstr(err, "--resume") && strstr(err, "--force-clean"), "%s", err);
	free(err);
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "online", "--source", src, "--target", other,
	                                    "--dump-path", dump, "--resume", "--no-owner", NULL},
	              NULL, 60, NULL, &err),
	    1);
	ck_assert_msg(strstr(err, "configuration differs"), "%s", err);
	free(err);

	/* the real resume: no dump, no restore, the stream goes on from the target's progress */
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--cutover-poll-secs", "1", "--resume", "--no-owner", NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	/* status from another terminal while it streams */
	{
		pgt_proc st;
		const char *argv[] = {pgt_tool(), "status", "--dump-path", dump, "--json", NULL};

		pgt_spawn(&st, argv, NULL);
		ck_assert_int_eq(story_finish(&st, 30, &out, NULL), 0);
		ck_assert_msg(strstr(out, "\"slot_present\":true,\"slot_active\":true") &&
		                  strstr(out, "\"applied_lsn\":"),
		              "%s", out);
		free(out);
	}
	story_pgbench_done(&writers, 60);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "resumed migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "pg_dump to") == NULL && strstr(err, "resuming"),
	              "the resumed run dumped again: %s", err);
	pgt_assert_same(s, t, "counters");
	pgt_assert_same(s, t, "log");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(resume_is_refused_when_the_slot_is_gone)
{
	char src[256], tgt[256], dump[512];
	PGconn *s;
	pgt_proc tool;
	char *err;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "gone");
	pgt_connstr(&sv.src, "gone", src, sizeof(src));
	pgt_connstr(&sv.tgt, "gone", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "gone");
	pgt_exec(s, "CREATE TABLE t (id int PRIMARY KEY)");
	pgt_scratch("gone-dump", dump, sizeof(dump));
	story_migrate(
	    &tool, "online", src, tgt, dump,
	    (const char *const[]){"--slot-name", "gone_slot", "--cutover-poll-secs", "1", NULL}, NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	story_kill_9(&tool);
	drop_slot_when_free(s, "gone_slot");
	ck_assert_int_eq(story_run((const char *const[]){"--mode", "online", "--source", src,
	                                                 "--target", tgt, "--dump-path", dump,
	                                                 "--slot-name", "gone_slot", "--resume", NULL},
	                           NULL, 60, NULL, &err),
	                 1);
	ck_assert_msg(strstr(err, "gone_slot") && strstr(err, "is gone") &&
	                  strstr(err, "--force-clean"),
	              "%s", err);
	free(err);
	/* --force-clean starts over */
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--slot-name", "gone_slot", "--force-clean",
	                                    "--drop-target-first", "--cutover-poll-secs", "1", NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 60);
	kill(tool.pid, SIGINT);
	ck_assert_int_eq(story_finish(&tool, 60, NULL, NULL), 0);
	PQfinish(s);
}
END_TEST

START_TEST(schema_then_data_and_a_self_timed_online_run_keeping_the_slot)
{
	char src[256], tgt[256], dump[512], buf[64];
	PGconn *s, *t;
	char *err;
	pgt_proc tool;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "parts");
	pgt_connstr(&sv.src, "parts", src, sizeof(src));
	pgt_connstr(&sv.tgt, "parts", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "parts");
	t = pgt_connect(&sv.tgt, "parts");
	pgt_exec(s, "CREATE TABLE a (id int PRIMARY KEY, v text)");
	pgt_exec(s, "INSERT INTO a SELECT g, 'x' FROM generate_series(1, 100) g");
	pgt_scratch("parts-dump", dump, sizeof(dump));
	/* the schema, then the data, offline */
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "offline", "--source", src, "--target", tgt,
	                                    "--dump-path", dump, "--dump-scope", "schema-only", NULL},
	              NULL, 60, NULL, &err),
	    0);
	free(err);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM a", buf, sizeof(buf)), "0");
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "offline", "--source", src, "--target", tgt,
	                                    "--dump-path", dump, "--force-clean", "--dump-scope",
	                                    "data-only", NULL},
	              NULL, 60, NULL, &err),
	    0);
	free(err);
	pgt_assert_same(s, t, "a");
	/* online into the same target, with an existing publication, cutting over by itself */
	pgt_exec(s, "CREATE PUBLICATION mine FOR TABLE a");
	pgt_exec(t, "TRUNCATE a");
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--force-clean", "--dump-scope", "data-only",
	                                    "--publication", "mine", "--no-auto-create-publication",
	                                    "--keep-slot", "--max-runtime-seconds", "3", NULL},
	              NULL);
	story_expect(&tool, "stage=StreamApply", 60);
	pgt_exec(s, "INSERT INTO a VALUES (101, 'while streaming')");
	ck_assert_int_eq(story_finish(&tool, 60, NULL, NULL), 0);
	err = pgt_stderr(&tool);
	ck_assert_msg(strstr(err, "--max-runtime-seconds reached"), "%s", err);
	free(err);
	pgt_assert_same(s, t, "a");
	ck_assert_str_eq(pgt_value(s,
	                           "SELECT count(*) FROM pg_replication_slots WHERE slot_name = "
	                           "'pg_dbmigrator'",
	                           buf, sizeof(buf)),
	                 "1");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_publication WHERE pubname = 'mine'", buf,
	                           sizeof(buf)),
	                 "1");
	pgt_exec(s, "SELECT pg_drop_replication_slot('pg_dbmigrator')");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(verify_names_each_difference)
{
	char src[256], tgt[256];
	PGconn *s, *t;
	pgt_proc p;
	char *out, *err;
	int rc;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "ver");
	pgt_connstr(&sv.src, "ver", src, sizeof(src));
	pgt_connstr(&sv.tgt, "ver", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "ver");
	t = pgt_connect(&sv.tgt, "ver");
	for (int side = 0; side < 2; side++)
	{
		PGconn *c = side ? t : s;

		pgt_exec(c, "CREATE TABLE same (id int PRIMARY KEY, v text, d timestamptz)");
		pgt_exec(c, "CREATE TABLE changed (id int PRIMARY KEY, v text)");
		pgt_exec(c, "CREATE SEQUENCE counter");
		/* the same rows, inserted in a different order on each side */
		pgt_exec(c, side ? "INSERT INTO same SELECT g, 'v' || g, '2026-01-01' FROM "
		                   "generate_series(5000, 1, -1) g"
		                 : "INSERT INTO same SELECT g, 'v' || g, '2026-01-01' FROM "
		                   "generate_series(1, 5000) g");
		pgt_exec(c, "INSERT INTO changed SELECT g, 'x' FROM generate_series(1, 100) g");
	}
	{
		const char *argv[] = {pgt_tool(), "verify", "--source", src, "--target",
		                      tgt,        "--jobs", "2",        NULL};

		pgt_spawn(&p, argv, NULL);
		rc = story_finish(&p, 60, &out, &err);
		ck_assert_msg(rc == 0, "equal databases: verify exited %d: %s%s", rc, out, err);
		free(out);
		free(err);
	}
	pgt_exec(t, "UPDATE changed SET v = 'y' WHERE id = 50");
	pgt_exec(t, "CREATE INDEX only_here ON same (v)");
	pgt_exec(s, "SELECT nextval('counter')");
	/* a missing row, an extra row, a missing index */
	for (int side = 0; side < 2; side++)
	{
		PGconn *c = side ? t : s;

		pgt_exec(c, "CREATE TABLE fewer (id int PRIMARY KEY)");
		pgt_exec(c, "CREATE TABLE more (id int PRIMARY KEY)");
		pgt_exec(c, "INSERT INTO fewer SELECT generate_series(1, 10)");
		pgt_exec(c, "INSERT INTO more SELECT generate_series(1, 10)");
	}
	pgt_exec(t, "DELETE FROM fewer WHERE id = 3");
	pgt_exec(t, "INSERT INTO more VALUES (11)");
	pgt_exec(s, "CREATE INDEX only_there ON changed (v)");
	{
		const char *argv[] = {pgt_tool(), "--mode", "verify", "--source", src,
		                      "--target", tgt,      "--json", NULL};

		pgt_spawn(&p, argv, NULL);
		rc = story_finish(&p, 60, &out, &err);
		ck_assert_int_eq(rc, 4); /* differences (1: could not compare) */
		ck_assert_msg(strstr(out, "\"table\":\"public.changed\",\"source_rows\":100,"
		                          "\"target_rows\":100,\"match\":false"),
		              "%s", out);
		ck_assert_msg(strstr(out, "\"table\":\"public.same\",\"source_rows\":5000,"
		                          "\"target_rows\":5000,\"match\":true"),
		              "%s", out);
		ck_assert_msg(strstr(out, "index public.only_here: only on the target"), "%s", out);
		ck_assert_msg(strstr(out, "sequence public.counter=1: only on the source"), "%s", out);
		ck_assert_msg(strstr(out, "\"table\":\"public.fewer\",\"source_rows\":10,"
		                          "\"target_rows\":9,\"match\":false"),
		              "%s", out);
		ck_assert_msg(strstr(out, "\"table\":\"public.more\",\"source_rows\":10,"
		                          "\"target_rows\":11,\"match\":false"),
		              "%s", out);
		ck_assert_msg(strstr(out, "index public.only_there: only on the source"), "%s", out);
		free(out);
		free(err);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* Both servers' catalogs, slots, publications and file settings, in one hash. */
static const char dry_catalog[] =
    "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (SELECT oid::text || relname::text || "
    "relkind::text AS "
    "x FROM pg_class UNION ALL SELECT slot_name::text FROM pg_replication_slots UNION ALL SELECT "
    "pubname::text FROM pg_publication UNION ALL SELECT name || setting FROM pg_settings WHERE "
    "source IN ('configuration file', 'override')) c";

START_TEST(dry_run_prints_the_plan_and_changes_nothing)
{
	char src[512], tgt[256], dump[512], buf[64], before_src[64], before_tgt[64];
	PGconn *s;
	pgt_proc p;
	char *out, *err;
	struct stat st;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "dry");
	snprintf(src, sizeof(src), "postgresql://postgres:hunter2-dry@127.0.0.1:%d/dry", sv.src.port);
	pgt_connstr(&sv.tgt, "dry", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "dry");
	pgt_exec(s, "CREATE TABLE t (id serial PRIMARY KEY)");
	pgt_scratch("dry-dump", dump, sizeof(dump));
	{
		PGconn *tc = pgt_connect(&sv.tgt, "dry");

		pgt_value(s, dry_catalog, before_src, sizeof(before_src));
		pgt_value(tc, dry_catalog, before_tgt, sizeof(before_tgt));
		PQfinish(tc);
	}
	{
		const char *argv[] = {pgt_tool(), "--mode",      "online", "--source",  src, "--target",
		                      tgt,        "--dump-path", dump,     "--dry-run", NULL};

		pgt_spawn(&p, argv, NULL);
	}
	ck_assert_int_eq(story_finish(&p, 60, &out, &err), 0);
	ck_assert_msg(strstr(out, "pg_dump") && strstr(out, "--snapshot=") &&
	                  strstr(out, "pg_restore") && strstr(out, "PGPASSWORD=********") &&
	                  strstr(out, "public.t") && strstr(out, "public.t_id_seq") &&
	                  strstr(out, "create publication"),
	              "%s", out);
	ck_assert_msg(strstr(out, "hunter2-dry") == NULL && strstr(err, "hunter2-dry") == NULL,
	              "the password shows: %s %s", out, err);
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)),
	                 "0");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_publication", buf, sizeof(buf)), "0");
	ck_assert_int_ne(stat(dump, &st), 0);
	{
		PGconn *tc = pgt_connect(&sv.tgt, "dry");

		ck_assert_str_eq(pgt_value(s, dry_catalog, buf, sizeof(buf)), before_src);
		ck_assert_str_eq(pgt_value(tc, dry_catalog, buf, sizeof(buf)), before_tgt);
		PQfinish(tc);
	}
	free(out);
	free(err);
	PQfinish(s);
}
END_TEST

START_TEST(a_whole_server_online_with_roles_and_one_cutover)
{
	pgt_cluster s2, t2;
	char src[256], tgt[256], dump[512], buf[128];
	PGconn *admin;
	pgt_proc tool;
	char *out, *err;
	int rc;

	pgt_start(&s2, NULL);
	pgt_start(&t2, NULL);
	admin = pgt_connect(&s2, "postgres");
	pgt_exec(admin, "CREATE ROLE app_reader LOGIN PASSWORD 'reader-secret'");
	pgt_exec(admin, "CREATE ROLE app_group");
	pgt_exec(admin, "GRANT app_group TO app_reader");
	pgt_exec(admin, "CREATE DATABASE one");
	pgt_exec(admin, "CREATE DATABASE \"Two Words\"");
	pgt_exec(admin, "CREATE DATABASE three");
	/* the source has a role with the target login's name: the target's must not change */
	pgt_exec(admin, "ALTER ROLE postgres CONNECTION LIMIT 42");
	for (int i = 0; i < 3; i++)
	{
		PGconn *c = pgt_connect(&s2, i == 0 ? "one" : i == 1 ? "Two Words" : "three");

		pgt_exec(c, "CREATE TABLE t (id serial PRIMARY KEY, v text)");
		pgt_exec(c, "INSERT INTO t (v) SELECT 'v' || g FROM generate_series(1, 1000) g");
		pgt_exec(c, "GRANT SELECT ON t TO app_group");
		PQfinish(c);
	}
	snprintf(src, sizeof(src), "host=127.0.0.1 port=%d user=postgres", s2.port);
	pgt_connstr(&t2, "postgres", tgt, sizeof(tgt));
	pgt_scratch("all-dump", dump, sizeof(dump));
	{
		const char *argv[] = {pgt_tool(),
		                      "--mode",
		                      "online",
		                      "--all-databases",
		                      "--source",
		                      src,
		                      "--target",
		                      tgt,
		                      "--dump-path",
		                      dump,
		                      "--cutover-poll-secs",
		                      "1",
		                      "--verify",
		                      "strict",
		                      NULL};

		pgt_spawn(&tool, argv, NULL);
	}
	for (int i = 0; i < 600 && pgt_count_in_file(tool.err_path, "stage=CaughtUp") < 3; i++)
		usleep(100 * 1000);
	ck_assert_int_eq(pgt_count_in_file(tool.err_path, "stage=CaughtUp"), 3);
	{
		PGconn *c = pgt_connect(&s2, "Two Words");

		pgt_exec(c, "INSERT INTO t (v) VALUES ('just before the cutover')");
		PQfinish(c);
	}
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "whole-server migration exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "whole-server migration complete"), "%s", err);
	ck_assert_int_eq(pgt_count_in_file(tool.err_path, "source and target are equal"), 3);
	for (int i = 0; i < 3; i++)
	{
		const char *db = i == 0 ? "one" : i == 1 ? "Two Words" : "three";
		PGconn *a = pgt_connect(&s2, db);
		PGconn *b = pgt_connect(&t2, db);

		pgt_assert_same(a, b, "t");
		PQfinish(a);
		PQfinish(b);
	}
	{
		PGconn *c = pgt_connect(&t2, "postgres");

		ck_assert_str_eq(pgt_value(c,
		                           "SELECT count(*) FROM pg_roles r JOIN pg_auth_members m ON "
		                           "m.member = r.oid WHERE r.rolname = 'app_reader'",
		                           buf, sizeof(buf)),
		                 "1");
		ck_assert_str_eq(pgt_value(c,
		                           "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'postgres'",
		                           buf, sizeof(buf)),
		                 "-1");
		/* no password unless --with-role-passwords */
		ck_assert_str_eq(pgt_value(c,
		                           "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = "
		                           "'app_reader'",
		                           buf, sizeof(buf)),
		                 "t");
		PQfinish(c);
	}
	ck_assert_str_eq(
	    pgt_value(admin, "SELECT count(*) FROM pg_replication_slots", buf, sizeof(buf)), "0");
	free(out);
	free(err);
	PQfinish(admin);
	pgt_stop(&s2);
	pgt_stop(&t2);
}
END_TEST

START_TEST(fast_restore_settings_always_come_back)
{
	char src[256], tgt[256], dump[512], bindir[512], log[512], env[600], buf[64];
	PGconn *s;
	pgt_proc tool;
	char *err;

	pgt_fresh_database(sv.src_admin, sv.tgt_admin, "fast");
	pgt_connstr(&sv.src, "fast", src, sizeof(src));
	pgt_connstr(&sv.tgt, "fast", tgt, sizeof(tgt));
	s = pgt_connect(&sv.src, "fast");
	pgt_exec(s, "CREATE TABLE t (id int PRIMARY KEY)");
	pgt_exec(s, "INSERT INTO t SELECT generate_series(1, 1000)");
	pgt_scratch("fast-dump", dump, sizeof(dump));
	/* killed in the middle of the restore: fsync is off on the target... */
	pgt_scratch("fast.log", log, sizeof(log));
	recording_bindir(bindir, sizeof(bindir), log, 60, false);
	snprintf(env, sizeof(env), "PG_BINDIR=%s", bindir);
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--fast-restore-settings", NULL},
	              (const char *const[]){env, NULL});
	/* the dump's wrapper sleeps first: wait for the restore's */
	for (int i = 0; i < 900 && pgt_count_in_file(log, "argv:") < 2; i++)
		usleep(100 * 1000);
	ck_assert_int_eq(pgt_count_in_file(log, "argv:"), 2);
	/* (the test clusters run with fsync and full_page_writes off anyway: watch the other two) */
	for (int i = 0;
	     i < 50 && strcmp(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "16GB");
	     i++)
		usleep(100 * 1000);
	ck_assert_str_eq(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "16GB");
	ck_assert_str_eq(pgt_value(sv.tgt_admin, "SHOW synchronous_commit", buf, sizeof(buf)), "off");
	story_kill_9(&tool);
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "pkill -9 -f '%s[/]pg_'", bindir);
		if (system(cmd) == -1)
			ck_abort_msg("could not run pkill");
	}
	/* ...and the next run with that dump path puts it back before anything else */
	ck_assert_int_eq(
	    story_run((const char *const[]){"--mode", "offline", "--source", src, "--target", tgt,
	                                    "--dump-path", dump, "--force-clean", "--drop-target-first",
	                                    "--fast-restore-settings", NULL},
	              NULL, 60, NULL, &err),
	    0);
	ck_assert_msg(strstr(err, "settings put back"), "%s", err);
	/* a reload reaches sessions a moment later */
	for (int i = 0;
	     i < 50 && strcmp(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "1GB");
	     i++)
		usleep(100 * 1000);
	ck_assert_msg(strcmp(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "1GB") ==
	                  0,
	              "max_wal_size %s after: %s", buf, err);
	free(err);
	ck_assert_str_eq(pgt_value(sv.tgt_admin, "SHOW synchronous_commit", buf, sizeof(buf)), "on");
	/* a restore that fails, and one interrupted by Ctrl+C: the settings come back too */
	for (int variant = 0; variant < 2; variant++)
	{
		const char *envs[] = {env, NULL};
		const char *argv[] = {pgt_tool(),
		                      "--mode",
		                      "offline",
		                      "--source",
		                      src,
		                      "--target",
		                      tgt,
		                      "--dump-path",
		                      dump,
		                      "--force-clean",
		                      "--drop-target-first",
		                      "--fast-restore-settings",
		                      NULL};
		int rc;

		unlink(log);
		recording_bindir(bindir, sizeof(bindir), log, variant == 0 ? 0 : 60, variant == 0);
		pgt_spawn(&tool, argv, envs);
		if (variant == 1)
		{
			for (int i = 0; i < 900 && pgt_count_in_file(log, "argv:") < 2; i++)
				usleep(100 * 1000);
			kill(tool.pid, SIGINT);
		}
		rc = story_finish(&tool, 180, NULL, &err);
		ck_assert_msg(rc == (variant == 0 ? 1 : 3), "variant %d exited %d: %s", variant, rc, err);
		ck_assert_msg(strstr(err, "settings put back"), "variant %d: %s", variant, err);
		free(err);
		for (int i = 0;
		     i < 50 &&
		     strcmp(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "1GB");
		     i++)
			usleep(100 * 1000);
		ck_assert_str_eq(pgt_value(sv.tgt_admin, "SHOW max_wal_size", buf, sizeof(buf)), "1GB");
	}
	ck_assert_str_eq(pgt_value(sv.tgt_admin,
	                           "SELECT count(*) FROM pg_file_settings WHERE sourcefile "
	                           "LIKE '%auto.conf' AND name IN ('fsync', "
	                           "'full_page_writes', 'synchronous_commit', "
	                           "'max_wal_size')",
	                           buf, sizeof(buf)),
	                 "0");
	PQfinish(s);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"migration", "migrate", 300, &sv, STORY_SOURCE_CONF};
	const TTest *const stories[] = {online_migration_with_writers_cut_over_by_ctrl_c,
	                                offline_migration_of_some_tables,
	                                a_password_travels_only_in_the_environment,
	                                ctrl_c_during_a_slow_dump_leaves_no_child_behind,
	                                bad_input_gets_one_clear_message,
	                                resume_after_kill_9_during_apply_loses_and_doubles_nothing,
	                                resume_is_refused_when_the_slot_is_gone,
	                                schema_then_data_and_a_self_timed_online_run_keeping_the_slot,
	                                verify_names_each_difference,
	                                dry_run_prints_the_plan_and_changes_nothing,
	                                a_whole_server_online_with_roles_and_one_cutover,
	                                fast_restore_settings_always_come_back,
	                                NULL};

	return story_run_suite(story_suite(&plan, stories));
}
