/*
 * check_apply.c — the apply engine (`pg_dbmigrator bench`) between two real
 * servers.
 *
 * The stories, each on its own tables, publication and slot:
 *  - every column type written on the source arrives identical, TOASTed
 *    values kept across updates that leave them alone;
 *  - primary key, REPLICA IDENTITY USING INDEX and FULL (with duplicate rows:
 *    one row changes per change) all find their rows;
 *  - a published table with no usable identity stops the run before any
 *    change is applied;
 *  - eight concurrent writers, applied while they write (stopped with Ctrl+C
 *    and resumed): the target equals the source;
 *  - the target's columns are in another order and it has an extra column
 *    with a default: applied by name, the default kept;
 *  - TRUNCATE of FK-linked tables with and without RESTART IDENTITY;
 *  - partitioned tables published with and without publish_via_partition_root,
 *    with a row moved between partitions;
 *  - one 2M-row transaction through a 16 MB ring, memory staying flat;
 *  - kill -9 at many moments of a long apply, restarting each time: nothing
 *    lost, nothing applied twice;
 *  - a row missing on the target: a clear error, nothing acknowledged past
 *    the last applied transaction; then --skip-lsn and --on-missing-row skip;
 *  - a quiet source: each of its transactions reaches the target while the
 *    run goes on (its group commits when the ring runs dry), not once
 *    --group-commit transactions have come; and a burst of them, most
 *    arriving while the target still commits the one before, is committed
 *    in full once the burst is over, without anything more coming;
 *  - an insert the target refuses, in a group of inserts committed without
 *    waiting for their answers: the run fails, nothing of the group is
 *    committed or acknowledged, and a rerun applies everything once;
 *  - a backlog read through SQL is committed 10000 transactions to a
 *    target transaction (--group-commit, when given, holds for it too);
 *  - one history row per transaction among updates goes as multi-row
 *    INSERTs, a long run of inserts into one table as COPY;
 *  - a thousand one-row DELETE transactions reach the target as a few
 *    multi-row statements, and a row the target lost among them is named
 *    with its own transaction, which --skip-lsn then skips alone;
 *  - a NOSUPERUSER target role (no replica mode) with nothing that fires on
 *    the target gets transactions changing two tables as one batch per
 *    table; with a foreign key on the target, the source's order is kept
 *    and every row is accepted;
 *  - two rows swap the values of a unique column through a placeholder, and
 *    two positions unique within a list likewise: applied in order, as the
 *    source made them.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coltypes.h"
#include "pgoutput.h"
#include "pgtest.h"
#include "story.h"

/* many slots: each story publishes its own */
#define SOURCE_CONF "max_replication_slots = 30\nmax_wal_senders = 30\n"

static story_servers sv;
static PGconn *src, *tgt; /* the postgres databases as postgres: sv's admin sessions */
static char src_conn[256], tgt_conn[256];

/* The column types' tables on both sides; the stories' sessions. */
static void
coltypes_tables(void)
{
	src = sv.src_admin;
	tgt = sv.tgt_admin;
	pgt_connstr(&sv.src, "postgres", src_conn, sizeof(src_conn));
	pgt_connstr(&sv.tgt, "postgres", tgt_conn, sizeof(tgt_conn));
	pgt_exec(src, COLTYPES_DDL);
	pgt_exec(tgt, COLTYPES_DDL);
}

/* The same SQL on both sides. */
static void
both(const char *sql)
{
	pgt_exec(src, sql);
	pgt_exec(tgt, sql);
}

/* The source's insert position: with it as --endpos, everything written so far applies. */
static const char *
endpos(char *buf, size_t size)
{
	return pgt_value(src, "SELECT pg_current_wal_insert_lsn()", buf, size);
}

/* Start `bench` on slot/publication name up to endpos (NULL: none) with extra args. */
static void
bench_spawn(pgt_proc *p, const char *name, const char *upto, const char *const extra[])
{
	const char *const args[] = {"bench",    "--source",      src_conn,
	                            "--target", tgt_conn,        "--slot-name",
	                            name,       "--publication", name,
	                            "--json",   "--endpos",      upto ? upto : "FFFFFFFF/FFFFFFFF",
	                            NULL};

	story_tool_start(p, args, extra, NULL);
}

/* Run `bench` to its end; its exit code, stdout and stderr. */
static int
bench(const char *name, const char *upto, const char *const extra[], char **out, char **err)
{
	return story_bench(src_conn, tgt_conn, name, upto, extra, out, err);
}

/* Run `bench` and require success. */
static void
bench_ok(const char *name, const char *const extra[])
{
	char upto[32];
	char *out, *err;
	int rc;

	endpos(upto, sizeof(upto));
	rc = bench(name, upto, extra, &out, &err);
	ck_assert_msg(rc == 0, "bench %s exited %d: %s", name, rc, err);
	free(out);
	free(err);
}

/* Every row of table, in a canonical order, hashed: equal on both sides? */
static void
assert_same(const char *table)
{
	pgt_assert_same(src, tgt, table);
}

/* Poll a count(*) query every step_ms until it reaches at_least; false after timeout_ms. */
static bool
wait_count(PGconn *conn, const char *sql, long at_least, int timeout_ms, int step_ms)
{
	char buf[32];

	for (int waited = 0; waited < timeout_ms; waited += step_ms)
	{
		if (atol(pgt_value(conn, sql, buf, sizeof(buf))) >= at_least)
			return true;
		usleep((useconds_t)step_ms * 1000);
	}
	return false;
}

/* Ctrl+C a streaming bench: it must end cleanly (exit 0) within a minute. */
static void
stop_with_ctrl_c(pgt_proc *apply)
{
	char *out, *err;
	int rc;

	kill(apply->pid, SIGINT);
	rc = story_finish(apply, 60, &out, &err);
	ck_assert_msg(rc == 0, "bench stopped with Ctrl+C exited %d: %s", rc, err);
	free(out);
	free(err);
}

/*
 * Nothing the target lacks is acknowledged: the slot's confirmed position
 * is at most lsn, taken before the first transaction the target does not
 * have (the source sends again every transaction committed from there). It
 * may be past the target's progress row: a keepalive confirms WAL that
 * holds no transaction of ours.
 */
static void
assert_confirmed_at_most(const char *slot, const char *lsn)
{
	char sql[256], buf[128];

	snprintf(sql, sizeof(sql),
	         "SELECT confirmed_flush_lsn <= '%s' FROM pg_replication_slots WHERE slot_name = '%s'",
	         lsn, slot);
	ck_assert_msg(strcmp(pgt_value(src, sql, buf, sizeof(buf)), "t") == 0,
	              "the slot %s is confirmed past %s, before a transaction the target lacks", slot,
	              lsn);
}

START_TEST(every_column_type_arrives_identical)
{
	char sql[4096];
	size_t n;

	n = (size_t)snprintf(sql, sizeof(sql), "CREATE TABLE types (");
	for (size_t i = 0; i < NCOLUMNS; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s %s%s", i ? ", " : "", columns[i].name,
		                      columns[i].type, i == 0 ? " PRIMARY KEY" : "");
	snprintf(sql + n, sizeof(sql) - n, ")");
	both(sql);
	both("CREATE TABLE toast (id int PRIMARY KEY, big text, n int)");
	pgt_exec(src, "ALTER TABLE toast ALTER big SET STORAGE EXTERNAL");
	story_publish(src, "types", "types, toast", NULL);

	n = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO types VALUES (");
	for (size_t i = 0; i < NCOLUMNS; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s", i ? ", " : "", columns[i].literal);
	snprintf(sql + n, sizeof(sql) - n, ")");
	pgt_exec(src, sql);
	pgt_exec(src, "INSERT INTO types (id) VALUES (2), (3)");
	/* a long run of inserts goes by COPY: every type, escapes and NULLs through it too */
	pgt_exec(
	    src,
	    "INSERT INTO types SELECT 1000 + g, i2, i8, num, num_nan, f8, "
	    "txt || E'\\\\ back\\\\slash \\t tab \\r cr' || g, by, b, ts, iv, u, js, jb, ai, at, m, "
	    "c, r, tr, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END FROM types, "
	    "generate_series(1, 600) g WHERE id = 1");
	pgt_exec(src, "UPDATE types SET txt = E'new\\nline ''q'' \u00e9', num = 'NaN' WHERE id = 2");
	pgt_exec(src, "UPDATE types SET id = 30 WHERE id = 3");
	/* > 100 kB out of line, then updates that leave it alone (they carry 'u') */
	pgt_exec(src, "INSERT INTO toast SELECT 1, string_agg(md5(g::text), ''), 0 "
	              "FROM generate_series(1, 4000) g");
	pgt_exec(src, "UPDATE toast SET n = n + 1");
	pgt_exec(src, "UPDATE toast SET n = n + 1");
	bench_ok("types", NULL);
	assert_same("types");
	assert_same("toast");
	ck_assert_int_eq(story_count(tgt, "toast WHERE length(big) = 128000 AND n = 2"), 1);
}
END_TEST

START_TEST(every_replica_identity_finds_its_row)
{
	both("CREATE TABLE k_pk (id int PRIMARY KEY, v text)");
	both("CREATE TABLE k_idx (a int NOT NULL, b int NOT NULL, v text)");
	both("CREATE UNIQUE INDEX k_idx_ab ON k_idx (a, b)");
	both("ALTER TABLE k_idx REPLICA IDENTITY USING INDEX k_idx_ab");
	both("CREATE TABLE k_full (a int, b text, js json, p point)");
	both("ALTER TABLE k_full REPLICA IDENTITY FULL");
	story_publish(src, "keys", "k_pk, k_idx, k_full", NULL);

	pgt_exec(src, "INSERT INTO k_pk SELECT g, 'v' || g FROM generate_series(1, 100) g");
	pgt_exec(src, "UPDATE k_pk SET v = 'changed' WHERE id % 10 = 0");
	pgt_exec(src, "UPDATE k_pk SET id = id + 1000 WHERE id % 7 = 0");
	pgt_exec(src, "DELETE FROM k_pk WHERE id % 5 = 0");
	pgt_exec(src, "INSERT INTO k_idx SELECT g, g % 3, 'x' FROM generate_series(1, 50) g");
	pgt_exec(src, "UPDATE k_idx SET v = 'y' WHERE a % 2 = 0");
	pgt_exec(src, "UPDATE k_idx SET b = b + 10 WHERE a % 5 = 0");
	pgt_exec(src, "DELETE FROM k_idx WHERE a % 3 = 0");
	/* duplicates: three identical rows, one of them changes, one is deleted */
	pgt_exec(src, "INSERT INTO k_full VALUES (1, 'dup', '{\"a\": 1}', '(1,2)'), "
	              "(1, 'dup', '{\"a\": 1}', '(1,2)'), (1, 'dup', '{\"a\": 1}', '(1,2)'), "
	              "(2, NULL, NULL, NULL)");
	pgt_exec(src, "UPDATE k_full SET b = 'one' WHERE ctid = (SELECT min(ctid) FROM k_full "
	              "WHERE a = 1)");
	pgt_exec(src, "DELETE FROM k_full WHERE ctid = (SELECT max(ctid) FROM k_full WHERE b = 'dup')");
	pgt_exec(src, "UPDATE k_full SET b = 'was null' WHERE a = 2");
	bench_ok("keys", NULL);
	assert_same("k_pk");
	assert_same("k_idx");
	ck_assert_int_eq(story_count(tgt, "k_full"), 3);
	ck_assert_int_eq(story_count(tgt, "k_full WHERE b = 'dup'"), 1);
	ck_assert_int_eq(story_count(tgt, "k_full WHERE b = 'one'"), 1);
	ck_assert_int_eq(story_count(tgt, "k_full WHERE b = 'was null'"), 1);
}
END_TEST

START_TEST(a_table_without_identity_stops_before_anything_is_applied)
{
	char upto[32], buf[64];
	char *out, *err;
	int rc;

	both("CREATE TABLE ok_table (id int PRIMARY KEY)");
	both("CREATE TABLE \"No Key\" (v int)");
	story_publish(src, "nokey", "ok_table, \"No Key\"", NULL);
	pgt_exec(src, "INSERT INTO ok_table VALUES (1)");
	pgt_exec(src, "INSERT INTO \"No Key\" VALUES (1)");
	rc = bench("nokey", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "public.\"No Key\"") && strstr(err, "REPLICA IDENTITY FULL"),
	              "unclear error: %s", err);
	ck_assert_int_eq(story_count(tgt, "ok_table"), 0);
	pgt_value(src,
	          "SELECT confirmed_flush_lsn < pg_current_wal_insert_lsn() FROM "
	          "pg_replication_slots WHERE slot_name = 'nokey'",
	          buf, sizeof(buf));
	ck_assert_str_eq(buf, "t");
	free(out);
	free(err);
}
END_TEST

START_TEST(concurrent_writers_applied_while_they_write)
{
	char script[512], clients[] = "8", upto[32];
	pgt_proc writers, apply;
	char *out, *err;
	int rc;

	both("CREATE TABLE w1 (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)");
	both("CREATE TABLE w2 (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0, note text)");
	both("CREATE TABLE w3 (id bigserial PRIMARY KEY, client int, at timestamptz)");
	pgt_exec(src, "INSERT INTO w1 SELECT g FROM generate_series(1, 200) g");
	pgt_exec(tgt, "INSERT INTO w1 SELECT g FROM generate_series(1, 200) g");
	story_publish(src, "writers", "w1, w2, w3", NULL);
	story_file("writers.sql",
	           "\\set id random(1, 200)\n"
	           "\\set r random(0, 999)\n"
	           "BEGIN;\n"
	           "UPDATE w1 SET n = n + 1 WHERE id = :id;\n"
	           "INSERT INTO w2 VALUES (:id * 100000 + :client_id * 1000 + :r, 1, 'x') "
	           "ON CONFLICT (id) DO UPDATE SET n = w2.n + 1;\n"
	           "INSERT INTO w3 (client, at) VALUES (:client_id, now());\n"
	           "DELETE FROM w3 WHERE id = (SELECT min(id) FROM w3 WHERE client = :client_id) "
	           "AND random() < 0.3;\n"
	           "END;\n",
	           script, sizeof(script));
	story_pgbench_start(&writers,
	                    (const char *const[]){"-n", "-c", clients, "-j", "2", "-T", "6", "-f",
	                                          script, src_conn, NULL},
	                    NULL);
	/* apply while they write, stop with Ctrl+C, then resume to the end */
	sleep(1);
	bench_spawn(&apply, "writers", NULL, NULL);
	sleep(3);
	stop_with_ctrl_c(&apply);
	story_pgbench_done(&writers, 60);
	rc = bench("writers", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "resumed bench exited %d: %s", rc, err);
	free(out);
	free(err);
	assert_same("w1");
	assert_same("w2");
	assert_same("w3");
	ck_assert_int_gt(story_count(tgt, "w2"), 100);
}
END_TEST

START_TEST(columns_are_applied_by_name_and_target_defaults_kept)
{
	char buf[64];

	pgt_exec(src, "CREATE TABLE shape (id int PRIMARY KEY, a text, b int, c date)");
	pgt_exec(tgt, "CREATE TABLE shape (c date, extra text NOT NULL DEFAULT 'kept', b int, "
	              "id int PRIMARY KEY, a text)");
	story_publish(src, "shape", "shape", NULL);
	pgt_exec(src, "INSERT INTO shape VALUES (1, 'one', 1, '2026-01-01'), (2, 'two', 2, NULL)");
	pgt_exec(src, "UPDATE shape SET b = 20, c = '2026-02-02' WHERE id = 2");
	pgt_exec(src, "DELETE FROM shape WHERE id = 1");
	bench_ok("shape", NULL);
	ck_assert_str_eq(pgt_value(tgt,
	                           "SELECT id || ' ' || a || ' ' || b || ' ' || c || ' ' || extra "
	                           "FROM shape",
	                           buf, sizeof(buf)),
	                 "2 two 20 2026-02-02 kept");
	ck_assert_int_eq(story_count(tgt, "shape"), 1);
}
END_TEST

START_TEST(truncate_of_linked_tables_with_and_without_restart_identity)
{
	char buf[64];

	both("CREATE TABLE parent (id serial PRIMARY KEY, v text)");
	both("CREATE TABLE child (id serial PRIMARY KEY, p int REFERENCES parent)");
	story_publish(src, "trunc", "parent, child", NULL);
	pgt_exec(src, "INSERT INTO parent (v) SELECT 'p' FROM generate_series(1, 5)");
	pgt_exec(src, "INSERT INTO child (p) SELECT g FROM generate_series(1, 5) g");
	pgt_exec(src, "TRUNCATE parent, child");
	pgt_exec(src, "INSERT INTO parent (v) VALUES ('after plain truncate')");
	pgt_exec(src, "INSERT INTO child (p) SELECT max(id) FROM parent");
	pgt_exec(src, "TRUNCATE parent RESTART IDENTITY CASCADE");
	pgt_exec(src, "INSERT INTO parent (v) VALUES ('after restart')");
	bench_ok("trunc", NULL);
	assert_same("parent");
	assert_same("child");
	/* the target's own sequence was restarted too: a new row there gets id 1 */
	pgt_exec(tgt, "BEGIN");
	pgt_exec(tgt, "DELETE FROM parent");
	ck_assert_str_eq(
	    pgt_value(tgt, "INSERT INTO parent (v) VALUES ('t') RETURNING id", buf, sizeof(buf)), "1");
	pgt_exec(tgt, "ROLLBACK");
}
END_TEST

START_TEST(partitioned_tables_via_leaves_and_via_root)
{
	for (int root = 0; root <= 1; root++)
	{
		char sql[512], name[32], table[32];

		snprintf(name, sizeof(name), "part%d", root);
		snprintf(table, sizeof(table), "meas%d", root);
		snprintf(sql, sizeof(sql),
		         "CREATE TABLE %s (id int, region int, v text, PRIMARY KEY (id, region)) "
		         "PARTITION BY LIST (region); "
		         "CREATE TABLE %s_1 PARTITION OF %s FOR VALUES IN (1); "
		         "CREATE TABLE %s_2 PARTITION OF %s FOR VALUES IN (2)",
		         table, table, table, table, table);
		both(sql);
		story_publish(src, name, table, root ? "(publish_via_partition_root = true)" : NULL);
		snprintf(sql, sizeof(sql),
		         "INSERT INTO %s SELECT g, 1 + g %% 2, 'v' FROM generate_series(1, 20) g", table);
		pgt_exec(src, sql);
		/* rows move between partitions */
		snprintf(sql, sizeof(sql), "UPDATE %s SET region = 3 - region WHERE id <= 6", table);
		pgt_exec(src, sql);
		snprintf(sql, sizeof(sql), "UPDATE %s SET v = 'w' WHERE id > 10", table);
		pgt_exec(src, sql);
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = 20", table);
		pgt_exec(src, sql);
		bench_ok(name, NULL);
		assert_same(table);
		snprintf(sql, sizeof(sql), "%s_1", table);
		assert_same(sql);
	}
}
END_TEST

START_TEST(a_transaction_larger_than_the_ring_applies_with_flat_memory)
{
	char upto[32];
	const char *extra[] = {"--ring-size", "16MB", NULL};
	char *out, *err, *rss;
	long rss_kb;
	int rc;

	both("CREATE TABLE huge (id int PRIMARY KEY, pad text)");
	story_publish(src, "huge", "huge", NULL);
	pgt_exec(src, "INSERT INTO huge SELECT g, md5(g::text) FROM generate_series(1, 2000000) g");
	rc = bench("huge", endpos(upto, sizeof(upto)), extra, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	ck_assert_int_eq(story_count(tgt, "huge"), 2000000);
	rss = strstr(out, "\"peak_rss_kb\":");
	ck_assert_ptr_nonnull(rss);
	rss_kb = atol(rss + strlen("\"peak_rss_kb\":"));
#ifndef PGDBM_SANITIZERS
	ck_assert_msg(rss_kb < 100 * 1024, "peak RSS %ld kB", rss_kb);
#else
	/* ASan keeps freed memory in quarantine and shadows the rest: only a loose bound */
	ck_assert_msg(rss_kb < 400 * 1024, "peak RSS %ld kB", rss_kb);
#endif
	free(out);
	free(err);
	pgt_exec(src, "DROP PUBLICATION huge");
	pgt_exec(src, "SELECT pg_drop_replication_slot('huge')");
}
END_TEST

START_TEST(kill_9_at_random_moments_loses_and_doubles_nothing)
{
	char upto[32];
	const char *env = getenv("PGDBM_CRASH_KILLS");
	int kills = env ? atoi(env) : 20;
	unsigned seed = (unsigned)time(NULL);

	/* no key on log: a change applied twice would show as a duplicate row */
	both("CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)");
	both("CREATE TABLE log (k int, note text)");
	both("ALTER TABLE log REPLICA IDENTITY FULL");
	pgt_exec(src, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 100) g");
	pgt_exec(tgt, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 100) g");
	story_publish(src, "crash", "counters, log", NULL);
	/* a double-applied increment or insert shows; a lost one too */
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..3000 LOOP "
	              "INSERT INTO log SELECT i, md5(g::text) FROM generate_series(1, 40) g; "
	              "UPDATE counters SET n = n + 1 WHERE id = 1 + i % 100; "
	              "UPDATE counters SET n = n + 1 WHERE id = 1 + (i * 7) % 100; "
	              "COMMIT; END LOOP; END $$");
	endpos(upto, sizeof(upto));
	fprintf(stderr, "kill -9 test: seed %u, %d kills\n", seed, kills);
	srand(seed);
	for (int i = 0; i < kills; i++)
	{
		pgt_proc p;
		useconds_t delay = (useconds_t)(50000 + rand() % 400000);

		/* the backlog through SQL in chunks of 1 MB of WAL: a kill falls between advances too */
		bench_spawn(&p, "crash", upto,
		            (const char *const[]){"--group-commit", "7", "--catch-up-chunk", "1MB", NULL});
		usleep(delay);
		story_kill_9(&p);
	}
	bench_ok("crash", NULL);
	assert_same("counters");
	assert_same("log");
	ck_assert_int_eq(story_count(tgt, "log"), 3000 * 40);
}
END_TEST

/*
 * The operator kills the tool (kill -9) while the target is slow: its
 * target session goes on with the groups it was sent, commits included, and
 * the operator runs the tool again at once. The new run must wait for that
 * session to end before it reads the progress row, or it applies the same
 * changes a second time (a duplicate key, or a progress row moved under it).
 */
START_TEST(a_killed_runs_target_session_ends_before_the_next_run_reads_its_progress)
{
	char upto[32];
	char *out, *err;
	pgt_proc p;
	PGconn *locker = pgt_connect(&sv.tgt, "postgres");
	int rc;

	both("CREATE TABLE orders (id int PRIMARY KEY, note text)");
	story_publish(src, "leftover", "orders", NULL);
	pgt_exec(src, "INSERT INTO orders SELECT g, 'first' FROM generate_series(1, 100) g");
	bench_ok("leftover", NULL);
	/* small transactions of inserts: their group's COMMIT goes out behind them, unanswered */
	pgt_exec(src, "DO $$ BEGIN FOR i IN 101..130 LOOP "
	              "INSERT INTO orders VALUES (i, 'second'); COMMIT; END LOOP; END $$");
	endpos(upto, sizeof(upto));
	/* a session on the target inserts the same key, uncommitted: the tool's insert waits */
	pgt_exec(locker, "BEGIN");
	pgt_exec(locker, "INSERT INTO orders VALUES (120, 'uncommitted')");
	bench_spawn(&p, "leftover", upto, NULL);
	ck_assert_msg(wait_count(tgt,
	                         "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
	                         "AND application_name = 'pg_dbmigrator apply'",
	                         1, 30000, 100),
	              "the tool's target session never waited for the lock");
	usleep(500 * 1000); /* the rest of the group, its COMMIT too, follows it */
	story_kill_9(&p);
	/* the operator runs the same command again at once */
	bench_spawn(&p, "leftover", upto, NULL);
	(void)wait_count(tgt,
	                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
	                 "'pg_dbmigrator apply'",
	                 2, 30000, 100);
	sleep(3); /* the new run says that it waits */
	pgt_exec(locker, "ROLLBACK");
	rc = story_finish(&p, 120, &out, &err);
	ck_assert_msg(rc == 0, "the run after the kill exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "waiting for the target session"), "no word of the wait: %s", err);
	assert_same("orders");
	ck_assert_int_eq(story_count(tgt, "orders"), 130);
	free(out);
	free(err);
	PQfinish(locker);
}
END_TEST

/*
 * A target session of an earlier run whose connection was lost without a
 * word (a network cut: the server never hears the end) sits idle in its
 * open group with the slot's lock: it can never commit, and is ended rather
 * than waited for until the kernel gives it up hours later.
 */
START_TEST(an_idle_leftover_session_holding_the_slot_is_ended)
{
	char upto[32], sql[160], buf[32];
	char *out, *err;
	PGconn *leftover = pgt_connect(&sv.tgt, "postgres");
	uint32_t h = 2166136261u; /* the lock's key: FNV-1a of the slot name */
	int rc;

	both("CREATE TABLE lines (id int PRIMARY KEY)");
	story_publish(src, "cut", "lines", NULL);
	pgt_exec(src, "INSERT INTO lines SELECT generate_series(1, 10)");
	for (const char *c = "cut"; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%d, %d)", 0x70676462, (int32_t)h);
	pgt_exec(leftover, "BEGIN");
	pgt_value(leftover, sql, buf, sizeof(buf));
	rc = bench("cut", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "ending the target session"), "no word of it: %s", err);
	assert_same("lines");
	/* the leftover session is gone */
	{
		PGresult *res = PQexec(leftover, "SELECT 1");

		ck_assert_int_ne(PQresultStatus(res), PGRES_TUPLES_OK);
		PQclear(res);
	}
	free(out);
	free(err);
	PQfinish(leftover);
}
END_TEST

/*
 * A large transaction streams in right after small ones the target
 * committed asynchronously, and the stream stops while it loads: by Ctrl+C,
 * or because the walsender is gone (then a reconnect). The stop makes the
 * small ones durable, and must not commit the half of the large one that
 * was sent (its rows would be on the target with the progress row before
 * them, and come again: CI's duplicate key after a Reconnect).
 */
static void
halves_story(const char *name, bool walsender_gone)
{
	char upto[32], buf[64], sql[256];
	char *out, *err;
	pgt_proc apply;
	PGconn *big = pgt_connect(&sv.src, "postgres");
	int rc;

	snprintf(sql, sizeof(sql), "CREATE TABLE %s (id int PRIMARY KEY, note text)", name);
	both(sql);
	story_publish(src, name, name, NULL);
	bench_spawn(&apply, name, NULL, (const char *const[]){"--catch-up", "stream", NULL});
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND active", name);
	ck_assert_msg(wait_count(src, sql, 1, 15000, 50), "bench never streamed");
	/* the large transaction is written, not yet committed */
	pgt_exec(big, "BEGIN");
	snprintf(sql, sizeof(sql),
	         "INSERT INTO %s SELECT g, 'large' FROM generate_series(1001, 1001000) g", name);
	pgt_exec(big, sql);
	/* the walsender has read it (decoded, held back until its commit) */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_replication WHERE sent_lsn >= '%s'",
	         endpos(upto, sizeof(upto)));
	ck_assert_msg(wait_count(src, sql, 1, 30000, 50),
	              "the walsender never read the large transaction");
	/*
	 * two small ones, each applied on its own: the first group commit waits
	 * for the disk, the next one (within 200 ms) does not
	 */
	for (int id = 1; id <= 2; id++)
	{
		snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (%d, 'small')", name, id);
		pgt_exec(src, sql);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id = %d", name, id);
		(void)wait_count(tgt, sql, 1, 2000, 1);
	}
	pgt_exec(big, "COMMIT");
	/* the large one is being loaded on the target: stop now */
	ck_assert_msg(
	    wait_count(tgt, "SELECT count(*) FROM pg_stat_progress_copy WHERE tuples_processed > 0", 1,
	               10000, 5),
	    "the large transaction was never seen loading");
	if (walsender_gone)
	{
		snprintf(sql, sizeof(sql),
		         "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
		         "WHERE slot_name = '%s'",
		         name);
		pgt_value(src, sql, buf, sizeof(buf));
	}
	else
		kill(apply.pid, SIGINT);
	rc = story_finish(&apply, 120, &out, &err);
	/* bench does not reconnect: the stream's end is its error (a migration reconnects) */
	ck_assert_msg(walsender_gone ? rc != 0 : rc == 0, "bench exited %d: %s", rc, err);
	free(out);
	free(err);
	/* all of it or none of it */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE id > 1000", name);
	pgt_value(tgt, sql, buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, "0") == 0 || strcmp(buf, "1000000") == 0,
	              "%s rows of a 1000000-row transaction are on the target after the stop", buf);
	/* and the run after it applies the rest, once */
	rc = bench(name, endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "the run after the stop exited %d: %s", rc, err);
	free(out);
	free(err);
	assert_same(name);
	PQfinish(big);
}

START_TEST(a_stop_in_the_middle_of_a_transaction_commits_none_of_it)
{
	halves_story("halves", false);
}
END_TEST

START_TEST(a_lost_walsender_in_the_middle_of_a_transaction_commits_none_of_it)
{
	halves_story("halves_ws", true);
}
END_TEST

START_TEST(a_missing_row_is_a_clear_error_and_nothing_is_overacknowledged)
{
	char upto[32], skip[64], before3[32];
	char *out, *err, *at;
	int rc;

	both("CREATE TABLE acct (id int PRIMARY KEY, bal int)");
	story_publish(src, "missing", "acct", NULL);
	pgt_exec(src, "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g");
	bench_ok("missing", NULL);
	/* the target loses a row the source still has */
	pgt_exec(tgt, "DELETE FROM acct WHERE id = 7");
	endpos(before3, sizeof(before3)); /* the update of id 3 commits after this */
	pgt_exec(src, "UPDATE acct SET bal = 50 WHERE id = 3");
	pgt_exec(src, "UPDATE acct SET bal = 0 WHERE id = 7");
	pgt_exec(src, "UPDATE acct SET bal = 1 WHERE id = 8");
	rc = bench("missing", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "public.acct") && strstr(err, "id=7") && strstr(err, "--skip-lsn"),
	              "unclear error: %s", err);
	free(out);
	/* nothing after it is applied (the one before may share its rolled-back group) */
	ck_assert_int_eq(story_count(tgt, "acct WHERE id = 8 AND bal = 1"), 0);
	at = strstr(err, "--skip-lsn ");
	ck_assert_ptr_nonnull(at);
	snprintf(skip, sizeof(skip), "%.*s", (int)strcspn(at + 11, " \n"), at + 11);
	/* the failing transaction comes again, and so does the one before unless the target has it */
	assert_confirmed_at_most("missing",
	                         story_count(tgt, "acct WHERE id = 3 AND bal = 50") ? skip : before3);
	/* the operator skips that one transaction by the LSN the error gave */
	free(err);
	rc = bench("missing", upto, (const char *const[]){"--skip-lsn", skip, NULL}, &out, &err);
	ck_assert_msg(rc == 0, "bench --skip-lsn %s exited %d: %s", skip, rc, err);
	ck_assert_int_eq(story_count(tgt, "acct WHERE id = 8 AND bal = 1"), 1);
	ck_assert_int_eq(story_count(tgt, "acct WHERE id = 3 AND bal = 50"), 1);
	ck_assert_int_eq(story_count(tgt, "acct WHERE id = 7"), 0);
	free(out);
	free(err);
	/* or goes on past missing rows, counting them */
	pgt_exec(tgt, "DELETE FROM acct WHERE id = 9");
	pgt_exec(src, "UPDATE acct SET bal = 9 WHERE id = 9");
	pgt_exec(src, "UPDATE acct SET bal = 2 WHERE id = 2");
	rc = bench("missing", endpos(upto, sizeof(upto)),
	           (const char *const[]){"--on-missing-row", "skip", NULL}, &out, &err);
	ck_assert_msg(rc == 0, "bench --on-missing-row skip exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "found no row"), "no warning: %s", err);
	ck_assert_int_eq(story_count(tgt, "acct WHERE id = 2 AND bal = 2"), 1);
	free(out);
	free(err);
}
END_TEST

/* Milliseconds on the monotonic clock. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the slot is streamed. */
static void
wait_streaming(const char *slot)
{
	char sql[160];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s' AND active", slot);
	ck_assert_msg(wait_count(src, sql, 1, 30000, 20), "bench did not start streaming %s", slot);
}

START_TEST(a_quiet_source_s_transactions_arrive_one_by_one)
{
	char sql[128];
	pgt_proc apply;
	int64_t t0, worst = 0;

	both("CREATE TABLE quiet (id int PRIMARY KEY, v text)");
	story_publish(src, "quiet", "quiet", NULL);
	bench_spawn(&apply, "quiet", NULL, NULL);
	wait_streaming("quiet");
	/* one small transaction at a time: the default group is 1000 of them */
	for (int i = 1; i <= 10; i++)
	{
		snprintf(sql, sizeof(sql), "INSERT INTO quiet VALUES (%d, 'row %d')", i, i);
		pgt_exec(src, sql);
		t0 = now_ms();
		snprintf(sql, sizeof(sql), "quiet WHERE id = %d", i);
		while (story_count(tgt, sql) == 0)
		{
			/* far above the few milliseconds it takes, for a loaded machine */
			ck_assert_msg(now_ms() - t0 < 10000, "transaction %d not on the target after 10 s", i);
			usleep(2000);
		}
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
	}
	fprintf(stderr, "quiet source: the slowest of 10 transactions arrived after %lld ms\n",
	        (long long)worst);
	stop_with_ctrl_c(&apply);
	assert_same("quiet");
}
END_TEST

START_TEST(a_burst_on_a_quiet_source_is_committed_without_more_coming)
{
	pgt_proc apply;

	both("CREATE TABLE burst (id int PRIMARY KEY, v text)");
	story_publish(src, "burst", "burst", NULL);
	bench_spawn(&apply, "burst", NULL, NULL);
	wait_streaming("burst");
	/*
	 * 1500 transactions back to back (not a multiple of --group-commit, so
	 * no group ends full): most of them arrive while the target still
	 * commits the group before, and gather into the next one; the last
	 * group must be committed when that answer is in, the source quiet
	 */
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..1500 LOOP "
	              "INSERT INTO burst VALUES (i, 'row ' || i); COMMIT; END LOOP; END $$");
	/* far above the milliseconds it takes, for a loaded machine */
	ck_assert_msg(wait_count(tgt, "SELECT count(*) FROM burst", 1500, 10000, 5),
	              "%s of a burst of 1500 transactions on the target 10 s after it, the source "
	              "quiet since",
	              story_count(tgt, "burst") == 0 ? "none" : "only part");
	stop_with_ctrl_c(&apply);
	assert_same("burst");
}
END_TEST

START_TEST(an_insert_the_target_refuses_commits_nothing_of_its_group)
{
	char upto[32], before2[32], before3[32];
	char *out, *err;
	int rc;

	both("CREATE TABLE refused (id int PRIMARY KEY, v int NOT NULL)");
	/* the target alone refuses big values */
	pgt_exec(tgt, "ALTER TABLE refused ADD CONSTRAINT small CHECK (v < 100)");
	story_publish(src, "refused", "refused", NULL);
	pgt_exec(src, "INSERT INTO refused VALUES (1, 1)");
	bench_ok("refused", NULL);
	/* inserts only: the group's COMMIT goes out behind them, unanswered */
	endpos(before2, sizeof(before2));
	pgt_exec(src, "INSERT INTO refused VALUES (2, 2)");
	endpos(before3, sizeof(before3));
	pgt_exec(src, "INSERT INTO refused VALUES (3, 500)");
	pgt_exec(src, "INSERT INTO refused VALUES (4, 4)");
	rc = bench("refused", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "small"), "unclear error: %s", err);
	free(out);
	free(err);
	/* nothing after the refused row is committed, nothing acknowledged past the target */
	ck_assert_int_eq(story_count(tgt, "refused WHERE id >= 3"), 0);
	assert_confirmed_at_most("refused",
	                         story_count(tgt, "refused WHERE id = 2") ? before3 : before2);
	/* the operator lifts the constraint: every row arrives, once */
	pgt_exec(tgt, "ALTER TABLE refused DROP CONSTRAINT small");
	bench_ok("refused", NULL);
	assert_same("refused");
}
END_TEST

/* A field of bench's --json line, as a number. */
static long
json_number(const char *json, const char *field)
{
	char key[64];
	const char *at;

	snprintf(key, sizeof(key), "\"%s\":", field);
	at = strstr(json, key);
	ck_assert_msg(at != NULL, "no %s in %s", field, json);
	return atol(at + strlen(key));
}

/*
 * The walsender of slot, and when it last heard from us (epoch seconds), as
 * "pid|seconds" ("none|0" when nobody streams it).
 */
static const char *
walsender_reply(const char *slot, char *buf, size_t size)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	         "SELECT coalesce((SELECT r.pid || '|' || coalesce(extract(epoch FROM r.reply_time), "
	         "0) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid "
	         "WHERE s.slot_name = '%s'), 'none|0')",
	         slot);
	return pgt_value(src, sql, buf, size);
}

/*
 * A light stream: its transactions are read by the apply thread itself
 * (the receiver thread hands the connection over: one wakeup less per
 * transaction). Then a session on the target locks the table while an
 * UPDATE streams in, and the apply thread waits for the target's answer
 * for five seconds: the receiver thread takes the connection back and
 * keeps telling the walsender it is alive (wal_sender_timeout 2 s here), so
 * the same walsender streams on once the lock goes.
 */
START_TEST(a_light_stream_is_read_by_the_apply_thread_and_a_held_target_keeps_the_source_content)
{
	char sql[128], before[64], during[64], after[64];
	PGconn *hold = pgt_connect(&sv.tgt, "postgres");
	pgt_proc apply;
	char *out, *err;
	int rc;

	pgt_exec(src, "ALTER SYSTEM SET wal_sender_timeout = '2s'");
	pgt_exec(src, "SELECT pg_reload_conf()");
	both("CREATE TABLE handed (id int PRIMARY KEY, v int NOT NULL)");
	both("INSERT INTO handed SELECT g, 0 FROM generate_series(1, 20) g");
	story_publish(src, "handed", "handed", NULL);
	bench_spawn(&apply, "handed", NULL, NULL);
	wait_streaming("handed");
	/* a light stream: one small transaction every 20 ms */
	for (int i = 1; i <= 20; i++)
	{
		snprintf(sql, sizeof(sql), "UPDATE handed SET v = %d WHERE id = %d", i, i);
		pgt_exec(src, sql);
		usleep(20 * 1000);
	}
	ck_assert_msg(wait_count(tgt, "SELECT count(*) FROM handed WHERE v = id", 20, 10000, 5),
	              "the light stream's 20 updates are not on the target after 10 s");

	/* the target holds the next update for 5 s: the apply thread waits for its answer */
	pgt_exec(hold, "BEGIN");
	pgt_exec(hold, "LOCK TABLE handed IN SHARE MODE");
	walsender_reply("handed", before, sizeof(before));
	pgt_exec(src, "UPDATE handed SET v = 100 WHERE id = 1");
	sleep(3);
	walsender_reply("handed", during, sizeof(during));
	sleep(2);
	ck_assert_int_eq(story_count(tgt, "handed WHERE v = 100"), 0);
	pgt_exec(hold, "COMMIT");
	ck_assert_msg(wait_count(tgt, "SELECT count(*) FROM handed WHERE v = 100", 1, 10000, 5),
	              "the update held by the lock is not on the target 10 s after it");
	walsender_reply("handed", after, sizeof(after));
	/* the same walsender all along, and it heard from us while the target held the apply */
	ck_assert_msg(strcspn(before, "|") == strcspn(after, "|") &&
	                  strncmp(before, after, strcspn(before, "|")) == 0,
	              "the walsender changed while the target held the apply (before %s, after %s): "
	              "nobody answered it",
	              before, after);
	ck_assert_msg(atof(strchr(during, '|') + 1) > atof(strchr(before, '|') + 1),
	              "no status update reached the walsender while the target held the apply "
	              "(reply times %s, then %s)",
	              before, during);

	pgt_exec(src, "ALTER SYSTEM RESET wal_sender_timeout");
	pgt_exec(src, "SELECT pg_reload_conf()");
	kill(apply.pid, SIGINT);
	rc = story_finish(&apply, 60, &out, &err);
	ck_assert_msg(rc == 0, "bench stopped with Ctrl+C exited %d: %s", rc, err);
	ck_assert_msg(json_number(out, "receiver_handovers") >= 1,
	              "the light stream was never handed to the apply thread: %s", out);
	free(out);
	free(err);
	PQfinish(hold);
	assert_same("handed");
}
END_TEST

/*
 * 25000 one-row UPDATE transactions wait on the source: read through SQL,
 * nothing waits for their commits, so they go up to 10000 to a target
 * transaction (a page a group changes many times is pruned once); a
 * --group-commit given holds for the backlog too.
 */
START_TEST(a_backlog_read_through_sql_is_committed_in_large_groups)
{
	char upto[32];
	char *out, *err;
	int rc;

	both("CREATE TABLE backlog (id int PRIMARY KEY, v int NOT NULL)");
	both("INSERT INTO backlog SELECT g, 0 FROM generate_series(1, 1000) g");
	story_publish(src, "backlog", "backlog", NULL);
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..25000 LOOP "
	              "UPDATE backlog SET v = v + i WHERE id = i % 1000 + 1; COMMIT; END LOOP; END $$");
	rc = bench("backlog", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	/*
	 * three groups, one more where a chunk ends, and a synchronous commit
	 * every 0.2 s (groups of 1000: 25 and more)
	 */
	ck_assert_msg(json_number(out, "target_transactions") <= 12,
	              "25000 backlog transactions took %ld target transactions",
	              json_number(out, "target_transactions"));
	assert_same("backlog");
	free(out);
	free(err);

	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..3000 LOOP "
	              "UPDATE backlog SET v = v - i WHERE id = i % 1000 + 1; COMMIT; END LOOP; END $$");
	rc = bench("backlog", endpos(upto, sizeof(upto)),
	           (const char *const[]){"--group-commit", "100", NULL}, &out, &err);
	ck_assert_msg(rc == 0, "bench --group-commit 100 exited %d: %s", rc, err);
	ck_assert_msg(json_number(out, "target_transactions") >= 30,
	              "3000 backlog transactions with --group-commit 100 took only %ld target "
	              "transactions",
	              json_number(out, "target_transactions"));
	assert_same("backlog");
	free(out);
	free(err);
	pgt_exec(src, "SELECT pg_drop_replication_slot('backlog')");
}
END_TEST

/*
 * 600 transactions that each update an account and insert one history row
 * (pgbench's shape): the history rows gather into full batches among the
 * updates, and go as multi-row INSERTs (a COPY would end at the next
 * update: a wait for every answer of the target each 256 transactions);
 * 1000 rows inserted into one table with nothing in between still go as
 * COPY.
 */
START_TEST(inserts_among_other_changes_go_as_insert_and_a_long_run_as_copy)
{
	char upto[32];
	char *out, *err;
	int rc;

	both("CREATE TABLE hacct (id int PRIMARY KEY, bal int NOT NULL)");
	both("INSERT INTO hacct SELECT g, 0 FROM generate_series(1, 100) g");
	both("CREATE TABLE hrows (id int PRIMARY KEY, hacct int NOT NULL, delta int NOT NULL)");
	story_publish(src, "hrows", "hacct, hrows", NULL);
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..600 LOOP "
	              "UPDATE hacct SET bal = bal + i WHERE id = i % 100 + 1; "
	              "INSERT INTO hrows VALUES (i, i % 100 + 1, i); COMMIT; END LOOP; END $$");
	rc = bench("hrows", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	ck_assert_msg(json_number(out, "target_copies") == 0,
	              "one history row per transaction among updates went as %ld COPY runs",
	              json_number(out, "target_copies"));
	assert_same("hacct");
	assert_same("hrows");
	free(out);
	free(err);

	pgt_exec(src, "INSERT INTO hrows SELECT g, 1, g FROM generate_series(1001, 2000) g");
	rc = bench("hrows", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	ck_assert_msg(json_number(out, "target_copies") >= 1,
	              "1000 rows inserted into one table went without COPY");
	assert_same("hrows");
	free(out);
	free(err);
	pgt_exec(src, "SELECT pg_drop_replication_slot('hrows')");
}
END_TEST

START_TEST(single_row_deletes_are_applied_in_batches_and_a_missing_one_is_named)
{
	char upto[32], skip[64];
	char *out, *err, *at;
	int rc;

	both("CREATE TABLE gone (id int PRIMARY KEY, v text)");
	both("INSERT INTO gone SELECT g, 'row ' || g FROM generate_series(1, 2000) g");
	story_publish(src, "gone", "gone", NULL);
	/*
	 * 1000 one-row DELETE transactions in a scattered order (7919 is prime to
	 * 1000), and one key deleted, inserted again and deleted again: the batch
	 * of deletes is sent before the insert of a key it holds
	 */
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..1000 LOOP "
	              "DELETE FROM gone WHERE id = (i * 7919) % 1000 + 1; COMMIT; END LOOP; END $$");
	pgt_exec(src, "INSERT INTO gone VALUES (500, 'back')");
	pgt_exec(src, "DELETE FROM gone WHERE id = 500");
	rc = bench("gone", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	ck_assert_int_eq(json_number(out, "deletes"), 1001);
	/* a few multi-row statements, not one per row (before: 1,000 DELETEs and more) */
	ck_assert_msg(json_number(out, "target_statements") < 100,
	              "1001 deletes by key took %ld statements on the target",
	              json_number(out, "target_statements"));
	assert_same("gone");
	free(out);
	free(err);

	/* a row the target lost, among a batch of deletes: named, with its own transaction */
	pgt_exec(tgt, "DELETE FROM gone WHERE id = 1500");
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1001..2000 LOOP "
	              "DELETE FROM gone WHERE id = i; COMMIT; END LOOP; END $$");
	rc = bench("gone", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "a DELETE on public.gone found no row with id=1500") &&
	                  strstr(err, "--skip-lsn"),
	              "unclear error: %s", err);
	free(out);
	at = strstr(err, "--skip-lsn ");
	ck_assert_ptr_nonnull(at);
	snprintf(skip, sizeof(skip), "%.*s", (int)strcspn(at + 11, " \n"), at + 11);
	free(err);
	/* skipping that one transaction (not its batch's first) makes the tables equal */
	rc = bench("gone", upto, (const char *const[]){"--skip-lsn", skip, NULL}, &out, &err);
	ck_assert_msg(rc == 0, "bench --skip-lsn %s exited %d: %s", skip, rc, err);
	ck_assert_int_eq(story_count(tgt, "gone"), 0);
	assert_same("gone");
	free(out);
	free(err);
}
END_TEST

START_TEST(a_target_role_without_replica_mode_batches_tables_together_unless_something_fires)
{
	char app_conn[256], upto[32];
	const char *const tables[] = {"ledger_acct", "ledger_hist"};
	PGconn *app;
	char *out, *err;
	long statements;
	int rc;

	/* a NOSUPERUSER role owning its database, as on a managed service: no replica mode */
	pgt_owned_database(sv.tgt_admin, "ledger", "app");
	pgt_connstr_as(&sv.tgt, "ledger", "app", app_conn, sizeof(app_conn));
	app = pgt_connect_as(&sv.tgt, "ledger", "app");
	for (int side = 0; side < 2; side++)
	{
		PGconn *c = side ? app : src;

		pgt_exec(c, "CREATE TABLE ledger_acct (id int PRIMARY KEY, bal int NOT NULL)");
		pgt_exec(c, "CREATE TABLE ledger_hist (id int PRIMARY KEY, acct int NOT NULL, delta int)");
		pgt_exec(c, "INSERT INTO ledger_acct SELECT g, 0 FROM generate_series(1, 100) g");
	}
	story_publish(src, "ledger", "ledger_acct, ledger_hist", NULL);
	/* 300 transactions, each changing an account and writing its history: the tables alternate */
	pgt_exec(src, "DO $$ BEGIN FOR i IN 1..300 LOOP "
	              "UPDATE ledger_acct SET bal = bal + i WHERE id = i % 100 + 1; "
	              "INSERT INTO ledger_hist VALUES (i, i % 100 + 1, i); COMMIT; END LOOP; END $$");
	rc = story_bench(src_conn, app_conn, "ledger", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	/* nothing fires on the target: one batch per table (before: a statement per change) */
	statements = json_number(out, "target_statements");
	ck_assert_msg(statements < 60, "600 changes to two tables took %ld statements", statements);
	for (int i = 0; i < 2; i++)
		pgt_assert_same(src, app, tables[i]);
	free(out);
	free(err);

	/*
	 * A foreign key on the target fires for every row: the source's order is
	 * kept. A history row of an old account first, then accounts opened with
	 * their first history row: sent table by table, the history of a new
	 * account would reach the target before the account
	 */
	pgt_exec(app, "ALTER TABLE ledger_hist ADD FOREIGN KEY (acct) REFERENCES ledger_acct");
	pgt_exec(src, "INSERT INTO ledger_hist VALUES (1000, 1, 0)");
	pgt_exec(src, "DO $$ BEGIN FOR i IN 101..400 LOOP "
	              "INSERT INTO ledger_acct VALUES (i, 0); "
	              "INSERT INTO ledger_hist VALUES (i + 1000, i, 0); COMMIT; END LOOP; END $$");
	rc = story_bench(src_conn, app_conn, "ledger", endpos(upto, sizeof(upto)), NULL, &out, &err);
	ck_assert_msg(rc == 0, "bench with a foreign key on the target exited %d: %s", rc, err);
	for (int i = 0; i < 2; i++)
		pgt_assert_same(src, app, tables[i]);
	free(out);
	free(err);
	PQfinish(app);
}
END_TEST

START_TEST(a_swap_of_unique_values_through_a_third_is_applied_in_order)
{
	char upto[32];
	char *out, *err;
	int rc;

	/* a unique column besides the key, and a position unique within its list */
	both("CREATE TABLE member (id int PRIMARY KEY, email text NOT NULL UNIQUE, "
	     "list int NOT NULL, pos int NOT NULL, UNIQUE (list, pos))");
	both("INSERT INTO member SELECT g, 'm' || g || '@example.org', g % 2, g / 2 "
	     "FROM generate_series(1, 100) g");
	story_publish(src, "member", "member", NULL);
	/* two members swap their emails through a placeholder, in one transaction */
	pgt_exec(src, "BEGIN; UPDATE member SET email = 'swap' WHERE id = 1; "
	              "UPDATE member SET email = 'm1@example.org' WHERE id = 2; "
	              "UPDATE member SET email = 'm2@example.org' WHERE id = 1; COMMIT");
	/* and two positions of a list, one transaction for each step */
	pgt_exec(src, "UPDATE member SET pos = -1 WHERE id = 4");
	pgt_exec(src, "UPDATE member SET pos = 2 WHERE id = 6");
	pgt_exec(src, "UPDATE member SET pos = 3 WHERE id = 4");
	rc = bench("member", endpos(upto, sizeof(upto)), NULL, &out, &err);
	/* before: "duplicate key value violates unique constraint "member_email_key"" */
	ck_assert_msg(rc == 0, "bench exited %d: %s", rc, err);
	assert_same("member");
	free(out);
	free(err);
}
END_TEST

int
main(void)
{
	const story_plan plan = {.suite = "apply engine",
	                         .tcase = "apply",
	                         .timeout_s = 600,
	                         .servers = &sv,
	                         .src_conf = SOURCE_CONF,
	                         .setup = coltypes_tables,
	                         .only_env = "PGDBM_APPLY_ONLY"};
	const TTest *const stories[] = {
	    every_column_type_arrives_identical,
	    every_replica_identity_finds_its_row,
	    a_table_without_identity_stops_before_anything_is_applied,
	    concurrent_writers_applied_while_they_write,
	    columns_are_applied_by_name_and_target_defaults_kept,
	    truncate_of_linked_tables_with_and_without_restart_identity,
	    partitioned_tables_via_leaves_and_via_root,
	    a_transaction_larger_than_the_ring_applies_with_flat_memory,
	    kill_9_at_random_moments_loses_and_doubles_nothing,
	    a_killed_runs_target_session_ends_before_the_next_run_reads_its_progress,
	    an_idle_leftover_session_holding_the_slot_is_ended,
	    a_stop_in_the_middle_of_a_transaction_commits_none_of_it,
	    a_lost_walsender_in_the_middle_of_a_transaction_commits_none_of_it,
	    a_missing_row_is_a_clear_error_and_nothing_is_overacknowledged,
	    a_quiet_source_s_transactions_arrive_one_by_one,
	    a_burst_on_a_quiet_source_is_committed_without_more_coming,
	    a_light_stream_is_read_by_the_apply_thread_and_a_held_target_keeps_the_source_content,
	    an_insert_the_target_refuses_commits_nothing_of_its_group,
	    single_row_deletes_are_applied_in_batches_and_a_missing_one_is_named,
	    a_backlog_read_through_sql_is_committed_in_large_groups,
	    inserts_among_other_changes_go_as_insert_and_a_long_run_as_copy,
	    a_target_role_without_replica_mode_batches_tables_together_unless_something_fires,
	    a_swap_of_unique_values_through_a_third_is_applied_in_order,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
