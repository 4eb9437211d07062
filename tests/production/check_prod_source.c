/*
 * check_prod_source.c — the source side of an online migration, on a source
 * shaped like production ones: objects owned by an application role, the
 * target a NOSUPERUSER role owning its database (as on a managed service).
 *
 * The stories:
 *  - writers commit with synchronous_commit = off up to the instant of the
 *    operator's Ctrl+C, on a source whose WAL writer flushes only every 10 s:
 *    every row a writer was told is committed before the Ctrl+C is on the
 *    target (the end position used to be the flush position, which such
 *    commits lie past: acknowledged rows were silently left behind);
 *  - pgbench_history has no key: it migrates while pgbench runs (the tool used
 *    to refuse it, after its FOR ALL TABLES publication had already made
 *    UPDATEs on such tables fail on the source);
 *  - an UPDATE on a keyless table during streaming succeeds for the
 *    application, and the tool stops before any cutover, saying why;
 *  - such an UPDATE just before the Ctrl+C, between two polls and before the
 *    statistics show it, is caught by the last look before the cutover;
 *  - --replica-identity-full all-keyless migrates a keyless table's updates
 *    and deletes too;
 *  - a run with a keyless table killed with -9, started over with
 *    --force-clean, killed again and resumed: both publications are tracked;
 *  - a source role that is no superuser gets FOR TABLE publications of the
 *    tables it owns, and a table it does not own is refused up front;
 *  - a publication the operator made (--no-auto-create-publication) that
 *    cannot give an exact copy (row filter, column list, missing actions,
 *    missing tables) is refused before anything is created, with the reason;
 *  - a source with synchronous_standby_names = '*': the tool neither hangs
 *    (its own CREATE/DROP PUBLICATION used to wait for a synchronous standby
 *    that was the tool itself) nor slows the application's commits.
 */
#include "config.h"

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgtest.h"
#include "story.h"

static story_servers sv;

/*
 * The database db on both servers owned by the application role "app" (the
 * same role on both sides, so the restore's OWNER TO works for the target's
 * NOSUPERUSER role); the tool reaches the source as its superuser, the
 * target as app. Connection strings into src/tgt, app's own connections out.
 */
static void
app_databases(const char *db, char *src, char *tgt, size_t size, PGconn **s, PGconn **t)
{
	/* a story that failed may have left its settings and its slot */
	pgt_exec(sv.src_admin, "ALTER SYSTEM RESET synchronous_standby_names");
	pgt_exec(sv.src_admin, "ALTER SYSTEM RESET wal_writer_delay");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	pgt_exec(sv.src_admin, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
	                       "WHERE NOT active");
	story_app_databases(&sv, db);
	pgt_exec(sv.src_admin, "ALTER ROLE app REPLICATION");
	story_connstrs(&sv, db, src, tgt, size);
	*s = pgt_connect_as(&sv.src, db, "app");
	*t = pgt_connect_as(&sv.tgt, db, "app");
}

/* An application's keyless events (100 rows) beside its keyed orders (100 rows). */
static void
keyless_events_and_keyed_orders(PGconn *s)
{
	pgt_exec(s, "CREATE TABLE events (at timestamptz DEFAULT now(), what text)");
	pgt_exec(s, "CREATE TABLE orders (id int PRIMARY KEY, total int)");
	pgt_exec(s, "INSERT INTO events (what) SELECT 'e' || g FROM generate_series(1, 100) g");
	pgt_exec(s, "INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g");
}

/* Start the tool online from src to tgt with the common options and extra (NULL-terminated). */
static void
start_tool(pgt_proc *tool, const char *src, const char *tgt, const char *name,
           const char *const *extra)
{
	char dump[512];
	const char *const args[] = {"--mode",
	                            "online",
	                            "--source",
	                            src,
	                            "--target",
	                            tgt,
	                            "--json",
	                            "--dump-path",
	                            pgt_scratch(name, dump, sizeof(dump)),
	                            "--cutover-poll-secs",
	                            "1",
	                            NULL};

	story_tool_start(tool, args, extra, NULL);
}

/*
 * A writer process: INSERTs ids writer*10^7 + 1, 2, ... one per transaction
 * with synchronous_commit = off, and after each acknowledged commit appends
 * "id microseconds" to log. Runs until killed.
 */
static pid_t
async_writer(const char *connstr, int writer, const char *log)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
	{
		PGconn *c = PQconnectdb(connstr);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		PQclear(PQexec(c, "SET synchronous_commit = off"));
		for (long i = 1;; i++)
		{
			char sql[128], line[64];
			long long id = (long long)writer * 10000000LL + i;
			PGresult *r;

			snprintf(sql, sizeof(sql), "INSERT INTO acks VALUES (%lld, %d)", id, writer);
			r = PQexec(c, sql);
			if (PQresultStatus(r) == PGRES_COMMAND_OK)
			{
				int len =
				    snprintf(line, sizeof(line), "%lld %lld\n", id, (long long)story_now_us());

				if (write(fd, line, (size_t)len) != len)
					_exit(1);
			}
			PQclear(r);
		}
	}
	return pid;
}

START_TEST(every_acknowledged_async_commit_reaches_the_target)
{
	char src[256], tgt[256], as_app[256], logs[3][512], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	pid_t writers[3];
	int64_t ctrl_c;
	char *out, *err, *ids;
	size_t len = 0, cap = 1 << 22;
	int rc, acked = 0;

	app_databases("async", src, tgt, sizeof(src), &s, &t);
	pgt_exec(s, "CREATE TABLE acks (id bigint PRIMARY KEY, writer int)");
	/* WAL reaches disk in pages; the last partial one only every 10 s */
	pgt_exec(sv.src_admin, "ALTER SYSTEM SET wal_writer_delay = '10s'");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	/*
	 * the writers go on after the Ctrl+C, so the source ends with rows the
	 * cut-over target rightly lacks: a verification would say so (exit 4)
	 */
	start_tool(&tool, src, tgt, "async-dump", (const char *const[]){"--verify", "off", NULL});
	story_expect(&tool, "stage=CaughtUp", 60);
	pgt_connstr_as(&sv.src, "async", "app", as_app, sizeof(as_app));
	for (int w = 0; w < 3; w++)
		writers[w] = async_writer(as_app, w + 1, pgt_scratch("acks.log", logs[w], sizeof(logs[w])));
	sleep(3);
	/* the operator presses Ctrl+C while the writers are still committing */
	ctrl_c = story_now_us();
	kill(tool.pid, SIGINT);
	usleep(300 * 1000);
	for (int w = 0; w < 3; w++)
	{
		kill(writers[w], SIGKILL);
		waitpid(writers[w], NULL, 0);
	}
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %.3000s", rc, err);
	/* every id acknowledged before the Ctrl+C */
	ids = malloc(cap);
	ck_assert_ptr_nonnull(ids);
	len = (size_t)snprintf(ids, cap, "SELECT count(*) FROM unnest('{0");
	for (int w = 0; w < 3; w++)
	{
		FILE *f = fopen(logs[w], "r");
		long long id, at;

		ck_assert_ptr_nonnull(f);
		while (fscanf(f, "%lld %lld", &id, &at) == 2)
			if (at < ctrl_c)
			{
				if (len + 64 >= cap)
				{
					ids = realloc(ids, cap *= 2);
					ck_assert_ptr_nonnull(ids);
				}
				len += (size_t)snprintf(ids + len, cap - len, ",%lld", id);
				acked++;
			}
		fclose(f);
	}
	snprintf(ids + len, cap - len,
	         "}'::bigint[]) u(id) WHERE id <> 0 AND NOT EXISTS (SELECT FROM acks a WHERE a.id = "
	         "u.id)");
	ck_assert_int_gt(acked, 100);
	fprintf(stderr, "async commits: %d acknowledged before the Ctrl+C\n", acked);
	ck_assert_msg(strcmp(pgt_value(t, ids, buf, sizeof(buf)), "0") == 0,
	              "%s of %d rows acknowledged before the Ctrl+C are missing on the target", buf,
	              acked);
	/* and the target has no row the source lacks (the writers went on after the Ctrl+C) */
	ck_assert_int_le(atoi(pgt_value(t, "SELECT count(*) FROM acks", buf, sizeof(buf))),
	                 atoi(pgt_value(s, "SELECT count(*) FROM acks", buf, sizeof(buf))));
	story_assert_nothing_left(s, t, "");
	pgt_exec(sv.src_admin, "ALTER SYSTEM RESET wal_writer_delay");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	free(ids);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(pgbench_history_without_a_key_migrates_while_pgbench_runs)
{
	char src[256], tgt[256], as_app[256];
	PGconn *s, *t;
	pgt_proc tool, bench;
	char *out, *err;
	int rc;

	app_databases("bench", src, tgt, sizeof(src), &s, &t);
	/* pgbench's tables, owned by app */
	story_pgbench_init(pgt_connstr_as(&sv.src, "bench", "app", as_app, sizeof(as_app)));
	start_tool(&tool, src, tgt, "bench-dump", NULL);
	story_expect(&tool, "stage=StreamApply", 60);
	story_pgbench_start(&bench, (const char *const[]){"-n", "-c", "3", "-T", "6", as_app, NULL},
	                    NULL);
	/* the application's updates and inserts all succeeded */
	story_pgbench_done(&bench, 60);
	story_expect(&tool, "stage=CaughtUp", 60);
	sleep(2);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %.3000s", rc, err);
	ck_assert_msg(strstr(err, "pgbench_history"),
	              "Validate did not name the keyless table: %.3000s", err);
	pgt_assert_same(s, t, "pgbench_accounts");
	pgt_assert_same(s, t, "pgbench_branches");
	pgt_assert_same(s, t, "pgbench_tellers");
	pgt_assert_same(s, t, "pgbench_history");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(an_update_on_a_keyless_table_stops_the_run_before_cutover)
{
	char src[256], tgt[256], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	app_databases("keyless", src, tgt, sizeof(src), &s, &t);
	keyless_events_and_keyed_orders(s);
	/* past activity, reported by Validate */
	pgt_exec(s, "UPDATE events SET what = 'first' WHERE what = 'e1'");
	pgt_exec(s, "SELECT pg_stat_force_next_flush()");
	start_tool(&tool, src, tgt, "keyless-dump", NULL);
	story_expect(&tool, "stage=StreamApply", 60);
	/* the application keeps writing: inserts, and one UPDATE of a keyless table */
	pgt_exec(s, "INSERT INTO events (what) VALUES ('streamed')");
	pgt_exec(s, "UPDATE orders SET total = total + 1 WHERE id < 10");
	pgt_exec(s, "UPDATE events SET what = 'changed' WHERE what = 'e2'"); /* must not fail */
	pgt_exec(s, "SELECT pg_stat_force_next_flush()");
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 1, "migration exited %d (expected 1): %.3000s", rc, err);
	ck_assert_msg(strstr(err, "public.events") && strstr(err, "1 update"),
	              "Validate did not list the keyless table with its past update: %.3000s", err);
	ck_assert_msg(strstr(err, "events") && strstr(err, "--replica-identity-full"),
	              "no message naming the table and the way out: %.3000s", err);
	ck_assert_msg(strstr(out, "\"stage\":\"Cutover\"") == NULL, "it cut over: %.3000s", out);
	ck_assert_str_eq(
	    pgt_value(s, "SELECT what FROM events WHERE what = 'changed'", buf, sizeof(buf)),
	    "changed");
	/* it cannot be resumed (the update is lost to the stream): nothing left on the source */
	story_assert_source_clean(s);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * The last look before cutting over: an UPDATE of a keyless table committed
 * just before the Ctrl+C, between two polls, and not yet in the statistics
 * (they reach pg_stat_user_tables up to a second later), still stops the run.
 */
START_TEST(an_update_just_before_ctrl_c_is_caught_before_cutover)
{
	char src[256], tgt[256];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;
	const char *extra[] = {"--cutover-poll-secs", "3600", NULL};

	app_databases("lastlook", src, tgt, sizeof(src), &s, &t);
	pgt_exec(s, "CREATE TABLE events (at timestamptz DEFAULT now(), what text)");
	pgt_exec(s, "INSERT INTO events (what) SELECT 'e' || g FROM generate_series(1, 10) g");
	start_tool(&tool, src, tgt, "lastlook-dump", extra);
	story_expect(&tool, "stage=StreamApply", 60);
	sleep(1);
	/* this backend reports its statistics now, and then not again for a second */
	pgt_exec(s, "INSERT INTO events (what) VALUES ('streamed')");
	pgt_exec(s, "UPDATE events SET what = 'late' WHERE what = 'e3'");
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 1 && strstr(err, "public.events") && strstr(err, "nothing was cut over"),
	              "exited %d without stopping for the late update: %.3000s", rc, err);
	ck_assert_msg(strstr(out, "\"stage\":\"Complete\"") == NULL, "it completed: %.3000s", out);
	story_assert_source_clean(s);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(replica_identity_full_all_keyless_migrates_updates_too)
{
	char src[256], tgt[256], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;
	const char *extra[] = {"--replica-identity-full", "all-keyless", "--verify", "strict", NULL};

	app_databases("fullid", src, tgt, sizeof(src), &s, &t);
	keyless_events_and_keyed_orders(s);
	start_tool(&tool, src, tgt, "full-dump", extra);
	story_expect(&tool, "stage=StreamApply", 60);
	ck_assert_str_eq(pgt_value(s, "SELECT relreplident FROM pg_class WHERE relname = 'events'", buf,
	                           sizeof(buf)),
	                 "f");
	pgt_exec(s, "UPDATE events SET what = what || '!' WHERE what LIKE 'e1%'");
	pgt_exec(s, "DELETE FROM events WHERE what LIKE 'e2%'");
	pgt_exec(s, "INSERT INTO events (what) VALUES ('streamed')");
	pgt_exec(s, "UPDATE orders SET total = 0 WHERE id < 10");
	story_expect(&tool, "stage=CaughtUp", 60);
	sleep(2);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %.3000s", rc, err);
	pgt_assert_same(s, t, "events");
	pgt_assert_same(s, t, "orders");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * Both publications live in the resume token: a run killed while streaming is
 * started over with --force-clean (which drops what it left, the keyless
 * publication too), killed again, and resumed; the resumed run streams the
 * keyless table again and drops both publications at the end.
 */
START_TEST(keyless_tables_survive_kill_9_force_clean_and_resume)
{
	char src[256], tgt[256], dump[512], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;
	const char *again[] = {"--force-clean", "--drop-target-first", NULL};
	const char *resume[] = {"--resume", NULL};

	app_databases("resumed", src, tgt, sizeof(src), &s, &t);
	keyless_events_and_keyed_orders(s);
	pgt_scratch("resumed-dump", dump, sizeof(dump));
	for (int run = 0; run < 2; run++)
	{
		start_tool(&tool, src, tgt, "resumed-dump", run ? again : NULL);
		story_expect(&tool, "stage=StreamApply", 60);
		pgt_exec(s, "INSERT INTO events (what) VALUES ('while streaming')");
		pgt_exec(s, "UPDATE orders SET total = total + 1 WHERE id < 5");
		sleep(1);
		story_kill_9(&tool);
		ck_assert_str_eq(pgt_value(s,
		                           "SELECT string_agg(pubname, ',' ORDER BY pubname) FROM "
		                           "pg_publication",
		                           buf, sizeof(buf)),
		                 "pg_dbmigrator_pub,pg_dbmigrator_pub_keyless");
	}
	pgt_exec(s, "INSERT INTO events (what) VALUES ('while nobody streamed')");
	pgt_exec(s, "DELETE FROM orders WHERE id > 90");
	start_tool(&tool, src, tgt, "resumed-dump", resume);
	story_expect(&tool, "stage=CaughtUp", 60);
	pgt_exec(s, "INSERT INTO events (what) VALUES ('after the resume')");
	sleep(2);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "resumed migration exited %d: %.3000s", rc, err);
	pgt_assert_same(s, t, "events");
	pgt_assert_same(s, t, "orders");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * A source role that is no superuser (REPLICATION, owning the application's
 * tables, as on a managed source) cannot create FOR ALL TABLES publications:
 * the tool lists the tables instead; a table it does not own is refused in
 * Validate, naming it, before anything is created.
 */
START_TEST(a_source_role_without_superuser_publishes_the_tables_it_owns)
{
	char src[256], tgt[256];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;
	const char *extra[] = {"--max-runtime-seconds", "3", "--verify", "strict", NULL};

	app_databases("owned", src, tgt, sizeof(src), &s, &t);
	pgt_connstr_as(&sv.src, "owned", "app", src, sizeof(src));
	pgt_exec(s, "CREATE TABLE orders (id int PRIMARY KEY, total int)");
	pgt_exec(s, "CREATE TABLE events (at timestamptz DEFAULT now(), what text)");
	pgt_exec(s, "INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g");
	pgt_exec(s, "INSERT INTO events (what) SELECT 'e' || g FROM generate_series(1, 50) g");
	start_tool(&tool, src, tgt, "owned-dump", extra);
	story_expect(&tool, "stage=StreamApply", 60);
	pgt_exec(s, "INSERT INTO orders VALUES (100, 100)");
	pgt_exec(s, "INSERT INTO events (what) VALUES ('streamed')");
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %.3000s", rc, err);
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "events");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	/* a table of another role's */
	{
		PGconn *admin = pgt_connect(&sv.src, "owned");
		const char *again[] = {"--force-clean", "--drop-target-first", NULL};

		pgt_exec(admin, "CREATE TABLE audit (id int PRIMARY KEY)");
		PQfinish(admin);
		start_tool(&tool, src, tgt, "owned-dump", again);
		rc = story_finish(&tool, 60, &out, &err);
		ck_assert_msg(rc == 1 && strstr(err, "must own") && strstr(err, "public.audit"),
		              "exited %d without naming the table it does not own: %.3000s", rc, err);
		story_assert_source_clean(s);
		free(out);
		free(err);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_user_publication_that_cannot_copy_exactly_is_refused)
{
	static const struct
	{
		const char *create, *reason;
	} cases[] = {
	    {"CREATE PUBLICATION mine FOR TABLE orders WHERE (id > 10), customers", "row filter"},
	    {"CREATE PUBLICATION mine FOR TABLE orders (id), customers", "column list"},
	    {"CREATE PUBLICATION mine FOR ALL TABLES WITH (publish = 'insert, update')",
	     "does not publish delete, truncate"},
	    {"CREATE PUBLICATION mine FOR TABLE orders", "public.customers"},
	};
	char src[256], tgt[256], buf[64];
	PGconn *s, *t;

	app_databases("userpub", src, tgt, sizeof(src), &s, &t);
	pgt_exec(s, "CREATE TABLE orders (id int PRIMARY KEY, total int)");
	pgt_exec(s, "CREATE TABLE customers (id int PRIMARY KEY, name text)");
	pgt_exec(s, "INSERT INTO orders SELECT g, g FROM generate_series(1, 20) g");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		pgt_proc tool;
		char *out, *err;
		int rc;
		const char *extra[] = {"--publication", "mine", "--no-auto-create-publication", NULL};

		pgt_exec(sv.src_admin, "SELECT 1"); /* keep the admin connection warm */
		pgt_exec(s, "DROP PUBLICATION IF EXISTS mine");
		if (strstr(cases[i].create, "ALL TABLES"))
			pgt_exec(sv.src_admin, "ALTER ROLE app SUPERUSER");
		pgt_exec(s, cases[i].create);
		if (strstr(cases[i].create, "ALL TABLES"))
			pgt_exec(sv.src_admin, "ALTER ROLE app NOSUPERUSER");
		start_tool(&tool, src, tgt, "userpub-dump", extra);
		ck_assert_msg(pgt_wait_for_text(tool.err_path, "stage=Error", 20) ||
		                  pgt_wait_for_text(tool.err_path, "stage=CaughtUp", 1),
		              "%s: neither refused nor streamed", cases[i].create);
		kill(tool.pid, SIGTERM);
		rc = story_finish(&tool, 60, &out, &err);
		ck_assert_msg(rc == 1, "%s: exited %d (expected 1): %.3000s", cases[i].create, rc, err);
		ck_assert_msg(strstr(err, "publication") && strstr(err, cases[i].reason),
		              "%s: the refusal does not say \"%s\": %.3000s", cases[i].create,
		              cases[i].reason, err);
		/* nothing created on either side; the operator's publication is left alone */
		story_assert_nothing_left(s, t, "mine");
		ck_assert_str_eq(pgt_value(t,
		                           "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
		                           "c.relnamespace WHERE n.nspname = 'public'",
		                           buf, sizeof(buf)),
		                 "0");
		free(out);
		free(err);
	}
	/* and a publication that can copy exactly is used as it is */
	{
		pgt_proc tool;
		char *out, *err;
		int rc;
		const char *extra[] = {"--publication",         "mine", "--no-auto-create-publication",
		                       "--max-runtime-seconds", "3",    NULL};

		pgt_exec(s, "DROP PUBLICATION mine");
		pgt_exec(s, "CREATE PUBLICATION mine FOR TABLE orders, customers");
		start_tool(&tool, src, tgt, "userpub-ok-dump", extra);
		rc = story_finish(&tool, 120, &out, &err);
		ck_assert_msg(rc == 0, "exited %d: %.3000s", rc, err);
		pgt_assert_same(s, t, "orders");
		pgt_assert_same(s, t, "customers");
		story_assert_nothing_left(s, t, "mine");
		free(out);
		free(err);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_synchronous_standby_setting_neither_hangs_nor_slows_the_source)
{
	char src[256], tgt[256], buf[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;
	double ms[100];
	int n = 0;
	const char *extra[] = {"--verify", "strict", NULL};

	app_databases("syncrep", src, tgt, sizeof(src), &s, &t);
	pgt_exec(s, "CREATE TABLE orders (id int PRIMARY KEY, total int)");
	pgt_exec(s, "INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g");
	/* an HA primary: every commit waits for a synchronous standby (any walsender) */
	pgt_exec(sv.src_admin, "ALTER SYSTEM SET synchronous_standby_names = '*'");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	start_tool(&tool, src, tgt, "syncrep-dump", extra);
	story_expect(&tool, "stage=StreamApply", 30);
	ck_assert_msg(pgt_wait_for_text(tool.err_path, "synchronous_standby_names", 1),
	              "Validate did not warn: %.3000s", pgt_stderr(&tool));
	/* the application's commits while the tool streams: how long each waits (30 s at most) */
	{
		int64_t start = story_now_us();

		while (n < 100 && story_now_us() - start < 30 * 1000000LL)
		{
			char sql[128];
			int64_t t0 = story_now_us();

			snprintf(sql, sizeof(sql), "INSERT INTO orders VALUES (%d, %d)", 1000 + n, n);
			pgt_exec(s, sql);
			ms[n++] = (double)(story_now_us() - t0) / 1000.0;
		}
	}
	story_sort(ms, (size_t)n);
	fprintf(stderr, "synchronous standby: %d source commits, latency p50 %.1f ms, p99 %.1f ms\n", n,
	        ms[n / 2], ms[n * 99 / 100]);
	ck_assert_msg(n == 100 && ms[98] < 500,
	              "the source's commits wait: %d commits in 30 s, p50 %.1f ms, p99 %.1f ms", n,
	              ms[n / 2], ms[n * 99 / 100]);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %.3000s", rc, err);
	pgt_exec(sv.src_admin, "ALTER SYSTEM RESET synchronous_standby_names");
	pgt_exec(sv.src_admin, "SELECT pg_reload_conf()");
	pgt_assert_same(s, t, "orders");
	story_assert_nothing_left(s, t, "");
	(void)buf;
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	/* PGDBM_STORY=part-of-a-name runs only the matching stories */
	const story_plan plan = {"production source",      "source", 300, &sv, STORY_SOURCE_CONF,
	                         .only_env = "PGDBM_STORY"};
	const TTest *const stories[] = {
	    every_acknowledged_async_commit_reaches_the_target,
	    pgbench_history_without_a_key_migrates_while_pgbench_runs,
	    an_update_on_a_keyless_table_stops_the_run_before_cutover,
	    an_update_just_before_ctrl_c_is_caught_before_cutover,
	    replica_identity_full_all_keyless_migrates_updates_too,
	    keyless_tables_survive_kill_9_force_clean_and_resume,
	    a_source_role_without_superuser_publishes_the_tables_it_owns,
	    a_user_publication_that_cannot_copy_exactly_is_refused,
	    a_synchronous_standby_setting_neither_hangs_nor_slows_the_source,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
