/*
 * check_shadow.c — an operator refreshes a live target from a source
 * through shadow tables and an atomic swap (issue 17), while an application
 * reads and writes the target. The target is reached as the NOSUPERUSER
 * role "app" that owns its database and tables.
 *
 * The stories:
 *  - a dry run of prepare and of swap changes nothing; prepare while a
 *    reader and a writer hammer the target, then swap: the reader never sees
 *    a missing table or an error, the writer's every write to the preserved
 *    table "users" is there after the swap (and it goes on writing, its ids
 *    still counting), the other tables equal the source's, the view, the
 *    foreign key, the grant and the sequences are right on the new tables;
 *    the longest statement wait during the swap is printed (several swaps,
 *    median and worst);
 *  - start (with --jobs 3) prepares and swaps; list shows the backup, verify passes, rollback brings the previous data
 *    back exactly, a tampered backup fails verify, cleanup drops old backups;
 *  - a swap that cannot get its locks gives up with nothing changed; a swap
 *    killed while it retries and a prepare killed halfway are run again and
 *    end consistent.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"
#include "shadowstory.h"
#include "story.h"

static story_servers sv;

#define MAX_STMTS 200000

/* One application session: its statements' start and duration, its first error. */
typedef struct app_thread
{
	pthread_t th;
	char connstr[256];
	bool writer;
	volatile bool stop;
	int64_t *start_us; /* malloc'd, MAX_STMTS */
	int64_t *dur_us;   /* malloc'd, MAX_STMTS */
	int n;
	char error[512];
	/* the writer's model of users: names by id (ids up to 20000) */
	char (*names)[32];
	bool *present;
} app_thread;

static void *
app_run(void *arg)
{
	app_thread *a = arg;
	PGconn *c = PQconnectdb(a->connstr);
	int ids[20000], nids = 0;

	if (PQstatus(c) != CONNECTION_OK)
	{
		snprintf(a->error, sizeof(a->error), "connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	while (!a->stop && a->n < MAX_STMTS && a->error[0] == '\0')
	{
		int64_t t0 = story_now_us();
		PGresult *r;
		char sql[256];

		if (!a->writer)
			r = PQexec(c, "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer");
		else if (nids > 5 && a->n % 3 == 1)
		{
			int id = ids[nids - 5];

			snprintf(sql, sizeof(sql), "UPDATE users SET name = 'w%d-v2' WHERE id = %d", id, id);
			r = PQexec(c, sql);
			if (PQresultStatus(r) == PGRES_COMMAND_OK)
				snprintf(a->names[id], 32, "w%d-v2", id);
		}
		else if (nids > 7 && a->n % 7 == 2)
		{
			int id = ids[nids - 7];

			snprintf(sql, sizeof(sql), "DELETE FROM users WHERE id = %d", id);
			r = PQexec(c, sql);
			if (PQresultStatus(r) == PGRES_COMMAND_OK)
				a->present[id] = false;
		}
		else
		{
			r = PQexec(c, "INSERT INTO users (name) VALUES ('new') RETURNING id");
			if (PQresultStatus(r) == PGRES_TUPLES_OK)
			{
				int id = atoi(PQgetvalue(r, 0, 0));

				if (id < 20000 && nids < 20000)
				{
					PGresult *u;

					snprintf(sql, sizeof(sql), "UPDATE users SET name = 'w%d' WHERE id = %d", id,
					         id);
					u = PQexec(c, sql);
					PQclear(u);
					snprintf(a->names[id], 32, "w%d", id);
					a->present[id] = true;
					ids[nids++] = id;
				}
			}
		}
		if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
			snprintf(a->error, sizeof(a->error), "%s: %s", a->writer ? "writer" : "reader",
			         PQerrorMessage(c));
		PQclear(r);
		a->start_us[a->n] = t0;
		a->dur_us[a->n] = story_now_us() - t0;
		a->n++;
		usleep(2000);
	}
	PQfinish(c);
	return NULL;
}

/* The writer's model of users, kept over the rounds (the preserved table keeps its rows). */
static char model_names[20000][32];
static bool model_present[20000];

static void
app_start(app_thread *a, const char *db, bool writer)
{
	memset(a, 0, sizeof(*a));
	pgt_connstr_as(&sv.tgt, db, "app", a->connstr, sizeof(a->connstr));
	a->writer = writer;
	a->start_us = calloc(MAX_STMTS, sizeof(int64_t));
	a->dur_us = calloc(MAX_STMTS, sizeof(int64_t));
	a->names = model_names;
	a->present = model_present;
	ck_assert(pthread_create(&a->th, NULL, app_run, a) == 0);
}

/* Stop and join; the longest statement that overlapped [from, to] in ms. */
static double
app_stop(app_thread *a, int64_t from, int64_t to)
{
	double worst = 0;

	a->stop = true;
	pthread_join(a->th, NULL);
	for (int i = 0; i < a->n; i++)
		if (a->start_us[i] <= to && a->start_us[i] + a->dur_us[i] >= from &&
		    a->dur_us[i] / 1000.0 > worst)
			worst = a->dur_us[i] / 1000.0;
	return worst;
}

static void
app_free(app_thread *a)
{
	free(a->start_us);
	free(a->dur_us);
}

/* The application's schema, on both sides; rows differ. */
static void
build(PGconn *c, int customers, int orders, int users, const char *tag)
{
	pgt_exec(c, "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
	            "CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
	            "customer int NOT NULL REFERENCES customers, total numeric);"
	            "CREATE INDEX orders_customer_idx ON orders (customer);"
	            "CREATE TABLE users (id serial PRIMARY KEY, name text);"
	            "CREATE VIEW order_totals AS SELECT customer, sum(total) AS total FROM orders "
	            "GROUP BY customer");
	shst_app_rows(c, customers, orders, users, tag);
}

/* A table's count and content digest. */
static void
digest(PGconn *c, const char *table, char *buf, size_t size)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY "
	         "t::text)), '-') FROM %s t",
	         table);
	pgt_value(c, sql, buf, size);
}

START_TEST(a_live_target_is_refreshed_by_a_swap_while_the_application_reads_and_writes)
{
	char src[256], tgt[256], dir[512], ts[15], v[256], v2[256];
	char *out, *err;
	PGconn *s, *t;
	double pauses[3][2];
	int rc;

	shst_two_sides(&sv, "shadow_live", build, src, tgt, sizeof(src), &s, &t);
	pgt_exec(sv.tgt_admin, "DO $$BEGIN CREATE ROLE report; EXCEPTION WHEN duplicate_object THEN "
	                       "NULL; END$$");
	pgt_exec(t, "GRANT SELECT ON orders TO report");
	pgt_scratch("shadow-live-state", dir, sizeof(dir));

	/* a dry run: the plan, and nothing on the target, no state */
	rc = shst_shadow("prepare",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--dry-run", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0, "prepare --dry-run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(out, "CREATE TABLE") && strstr(out, "users"), "no plan: %s", out);
	shst_target_clean(t);
	ck_assert_msg(access(dir, F_OK) != 0, "a dry run made the state directory %s", dir);
	free(out);
	free(err);

	for (int round = 0; round < 3; round++)
	{
		app_thread reader, writer;
		int64_t from, to;
		static char expect[1 << 18], got[1 << 18];
		size_t len = 0;

		if (round > 0)
		{
			/* the next refresh: the source moved on */
			pgt_exec(s, "INSERT INTO orders (customer, total) SELECT 1 + g % 300, g FROM "
			            "generate_series(1, 100) g");
		}
		app_start(&reader, "shadow_live", false);
		app_start(&writer, "shadow_live", true);
		usleep(200000);
		rc = shst_shadow("prepare",
		                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
		                                       "users", "--state-dir", dir, NULL},
		                 &out, &err);
		ck_assert_msg(rc == 0, "prepare exited %d: %s", rc, story_tail(err));
		shst_ts_of(err, "migration ", ts);
		free(out);
		free(err);
		usleep(300000);
		if (round == 0)
		{
			/* a dry run of the swap changes nothing */
			rc = shst_shadow(
			    "swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, "--dry-run", NULL},
			    &out, &err);
			ck_assert_msg(rc == 0 && strstr(out, "SET SCHEMA"), "swap --dry-run: %d %s %s", rc, out,
			              story_tail(err));
			ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
			free(out);
			free(err);
		}
		from = story_now_us();
		rc = shst_shadow("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL},
		                 &out, &err);
		to = story_now_us();
		ck_assert_msg(rc == 0, "swap exited %d: %s", rc, story_tail(err));
		ck_assert_msg(strstr(err, "locked for"), "no pause said: %s", story_tail(err));
		fprintf(stderr, "round %d: %s", round, strstr(err, "swapped migration"));

		free(out);
		free(err);
		usleep(300000);
		pauses[round][0] = app_stop(&reader, from, to);
		pauses[round][1] = app_stop(&writer, from, to);
		fprintf(stderr, "round %d: the longest reader statement %.1f ms, writer %.1f ms\n", round,
		        pauses[round][0], pauses[round][1]);
		ck_assert_msg(reader.error[0] == '\0', "the reader saw: %s", reader.error);
		ck_assert_msg(writer.error[0] == '\0', "the writer saw: %s", writer.error);
		ck_assert_msg(reader.n > 20 && writer.n > 20, "the application did not run");

		/* the refreshed tables are the source's; users is the target's, every write in it */
		pgt_assert_same(s, t, "customers");
		pgt_assert_same(s, t, "orders");
		pgt_assert_same(s, t, "order_totals");
		for (int id = 1; id < 20000; id++)
			if (writer.present[id])
				len += (size_t)snprintf(expect + len, sizeof(expect) - len, "%d:%s,", id,
				                        writer.names[id]);
		pgt_value(t,
		          "SELECT coalesce(string_agg(id || ':' || name, ',' ORDER BY id) || ',', '') "
		          "FROM users WHERE name LIKE 'w%'",
		          got, sizeof(got));
		ck_assert_msg(strcmp(got, expect) == 0, "users is not the writer's: %s", story_tail(got));
		ck_assert_str_eq(
		    pgt_value(t, "SELECT count(*) FROM users WHERE name LIKE 'tgt-user%'", v, sizeof(v)),
		    "100");
		app_free(&reader);
		app_free(&writer);
	}
	/* the foreign key, the grant, the sequences and the view's dependency are on the new tables */
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT confrelid::regclass::text || ' ' || convalidated FROM "
	                           "pg_constraint WHERE conname = 'orders_customer_fkey' AND conrelid "
	                           "= 'public.orders'::regclass",
	                           v, sizeof(v)),
	                 "customers true");
	ck_assert_str_eq(pgt_value(t, "SELECT has_table_privilege('report', 'public.orders', 'SELECT')",
	                           v, sizeof(v)),
	                 "t");
	pgt_exec(t, "INSERT INTO customers (name) VALUES ('after'); INSERT INTO orders (customer, "
	            "total) VALUES (1, 1)");
	pgt_value(s, "SELECT max(id) FROM customers", v, sizeof(v));
	pgt_value(t, "SELECT id FROM customers WHERE name = 'after'", v2, sizeof(v2));
	ck_assert_msg(atoi(v2) > atoi(v), "customers_id_seq not set from the source: %s <= %s", v2, v);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',') FROM "
	                           "pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class "
	                           "= 'order_totals'::regclass AND d.refclassid = 'pg_class'::regclass "
	                           "AND d.refobjid <> r.ev_class",
	                           v, sizeof(v)),
	                 "orders");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_pgdbm%' OR "
	                           "tgrelid = 'public.users'::regclass AND NOT tgisinternal",
	                           v, sizeof(v)),
	                 "0");
	{
		double r[3] = {pauses[0][0], pauses[1][0], pauses[2][0]};
		double w[3] = {pauses[0][1], pauses[1][1], pauses[2][1]};

		story_sort(r, 3);
		story_sort(w, 3);
		fprintf(stderr,
		        "shadow swap of 3 tables, the longest statement during the swap over 3 runs: "
		        "reader median %.1f ms, worst %.1f ms; writer median %.1f ms, worst %.1f ms\n",
		        r[1], r[2], w[1], w[2]);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_backup_is_listed_verified_rolled_back_and_cleaned_up)
{
	char src[256], tgt[256], dir[512], ts[15], v[256], before[3][128], after[128];
	char *out, *err;
	PGconn *s, *t;
	int rc;
	const char *tables[3] = {"customers", "orders", "users"};

	shst_two_sides(&sv, "shadow_back", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-back-state", dir, sizeof(dir));
	for (int i = 0; i < 3; i++)
		digest(t, tables[i], before[i], sizeof(before[i]));
	/* start: prepare (three tables copied at once) and swap */
	rc = shst_shadow("start",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--state-dir", dir,
	                                       "--jobs", "3", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0, "start exited %d: %s", rc, story_tail(err));
	shst_ts_of(err, "migration ", ts);
	pgt_assert_same(s, t, "users");
	free(out);
	free(err);

	rc = shst_shadow("list",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--json", NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 0 && strstr(out, ts) && strstr(out, "\"phase\": \"swapped\""),
	              "list: %d %s", rc, out);
	free(out);
	free(err);
	rc = shst_shadow(
	    "verify", (const char *const[]){"--dest", tgt, "--state-dir", dir, "--timestamp", ts, NULL},
	    &out, &err);
	ck_assert_msg(rc == 0, "verify of a good backup exited %d: %s", rc, story_tail(err));
	free(out);
	free(err);

	/* a dry run of the rollback prints its statements and changes nothing */
	rc = shst_shadow(
	    "rollback",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--latest", "--dry-run", NULL},
	    &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "SET SCHEMA"), "rollback --dry-run: %d %s %s", rc, out,
	              story_tail(err));
	free(out);
	free(err);
	pgt_assert_same(s, t, "orders");

	/* the previous data is back, exactly; the source's rows become a backup of their own */
	rc = shst_shadow("rollback",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--latest", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0, "rollback exited %d: %s", rc, story_tail(err));
	free(out);
	free(err);
	for (int i = 0; i < 3; i++)
	{
		digest(t, tables[i], after, sizeof(after));
		ck_assert_msg(strcmp(after, before[i]) == 0, "%s after the rollback: %s, before: %s",
		              tables[i], after, before[i]);
	}
	pgt_exec(t, "INSERT INTO customers (name) VALUES ('after rollback')");

	/* a tampered backup: verify names it */
	rc = shst_shadow(
	    "start", (const char *const[]){"--source", src, "--dest", tgt, "--state-dir", dir, NULL},
	    &out, &err);
	ck_assert_msg(rc == 0, "a second start exited %d: %s", rc, story_tail(err));
	shst_ts_of(err, "migration ", ts);
	free(out);
	free(err);
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "UPDATE _pgdbm_backup_%s.customers SET name = 'x' WHERE id = 3",
		         ts);
		pgt_exec(t, sql);
	}
	rc = shst_shadow(
	    "verify", (const char *const[]){"--dest", tgt, "--state-dir", dir, "--timestamp", ts, NULL},
	    &out, &err);
	ck_assert_msg(rc == 4 && strstr(err, "customers differs"), "verify of a tampered backup: %d %s",
	              rc, story_tail(err));
	free(out);
	free(err);

	/* cleanup: a dry run keeps them, then every backup older than now goes */
	rc = shst_shadow("cleanup",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--before", "now",
	                                       "--dry-run", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "DROP TABLE"), "cleanup --dry-run: %d %s", rc, out);
	ck_assert_str_ne(pgt_value(t,
	                           "SELECT count(*) FROM pg_namespace WHERE nspname LIKE "
	                           "'\\_pgdbm\\_backup%'",
	                           v, sizeof(v)),
	                 "0");
	free(out);
	free(err);
	rc = shst_shadow(
	    "cleanup",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--before", "now", NULL}, &out,
	    &err);
	ck_assert_msg(rc == 0, "cleanup exited %d: %s", rc, story_tail(err));
	free(out);
	free(err);
	shst_target_clean(t);
	rc = shst_shadow("list", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 0 && strstr(out, "no backups"), "list after cleanup: %s", out);
	free(out);
	free(err);
	pgt_assert_same(s, t, "orders");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_busy_swap_gives_up_unchanged_and_killed_runs_are_run_again)
{
	char src[256], tgt[256], dir[512], state[600], v[256], ts[15];
	char *out, *err;
	PGconn *s, *t, *blocker;
	pgt_proc p;
	int rc;

	shst_two_sides(&sv, "shadow_kill", build, src, tgt, sizeof(src), &s, &t);
	pgt_exec(s, "INSERT INTO orders (customer, total) SELECT 1 + g % 300, g FROM "
	            "generate_series(1, 400000) g");
	pgt_scratch("shadow-kill-state", dir, sizeof(dir));

	/* kill -9 during prepare, then the same command again */
	story_tool_start(&p,
	                 (const char *const[]){"shadow", "prepare", "--source", src, "--dest", tgt,
	                                       "--state-dir", dir, NULL},
	                 NULL, NULL);
	for (int i = 0; i < 300; i++)
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "grep -qs preparing %s/shadow-*.json", dir);
		if (system(cmd) == 0)
			break;
		usleep(10000);
	}
	usleep(150000);
	story_kill_9(&p);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	rc = shst_shadow(
	    "prepare", (const char *const[]){"--source", src, "--dest", tgt, "--state-dir", dir, NULL},
	    &out, &err);
	ck_assert_msg(rc == 0 && strstr(err, "again"), "prepare after kill -9: %d %s", rc,
	              story_tail(err));
	shst_ts_of(err, "prepared migration ", ts);
	free(out);
	free(err);

	/* an application transaction holds a table: the swap tries, then gives up, nothing changed */
	blocker = pgt_connect_as(&sv.tgt, "shadow_kill", "app");
	pgt_exec(blocker, "BEGIN; SELECT count(*) FROM customers");
	rc = shst_shadow(
	    "swap",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--lock-retries", "2", NULL}, &out,
	    &err);
	ck_assert_msg(rc == 1 && strstr(err, "gave up after 2 tries") &&
	                  strstr(err, "nothing was "
	                              "changed"),
	              "a busy swap: %d %s", rc, story_tail(err));
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	free(out);
	free(err);

	/* kill -9 while it retries, then the same command again once the table is free */
	story_tool_start(
	    &p, (const char *const[]){"shadow", "swap", "--dest", tgt, "--state-dir", dir, NULL}, NULL,
	    NULL);
	story_expect(&p, "trying again", 30);
	story_kill_9(&p);
	snprintf(state, sizeof(state), "%s/shadow-%s.json", dir, ts);
	ck_assert_msg(pgt_count_in_file(state, "\"swapping\"") == 1, "the state is not swapping");
	pgt_exec(blocker, "COMMIT");
	PQfinish(blocker);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	rc = shst_shadow("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 0, "swap after kill -9: %d %s", rc, story_tail(err));
	free(out);
	free(err);
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "customers");
	rc = shst_shadow("status",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--json", NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 0 && strstr(out, "\"swapped\""), "status: %s", out);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * The pause the application sees when 100 tables are swapped: a reader of
 * one table and a writer of another, the longest statement of each that
 * overlapped the swap, over 3 swaps (printed: median and worst).
 */
START_TEST(a_swap_of_100_tables_pauses_the_application_briefly)
{
	char src[256], tgt[256], dir[512];
	char *out, *err;
	PGconn *s, *t;
	double r[3], w[3];
	int rc;

	story_app_databases(&sv, "shadow_many");
	story_connstrs(&sv, "shadow_many", src, tgt, sizeof(src));
	s = pgt_connect_as(&sv.src, "shadow_many", "app");
	t = pgt_connect_as(&sv.tgt, "shadow_many", "app");
	for (int side = 0; side < 2; side++)
	{
		PGconn *c = side ? t : s;

		pgt_exec(c, "DO $$BEGIN FOR i IN 1..98 LOOP EXECUTE format('CREATE TABLE t%s (id int "
		            "PRIMARY KEY, v text); INSERT INTO t%s SELECT g, md5(g::text) FROM "
		            "generate_series(1, 100) g', i, i); END LOOP; END$$");
		build(c, 100, 1000, side ? 50 : 5, side ? "tgt" : "src");
	}
	pgt_scratch("shadow-many-state", dir, sizeof(dir));
	for (int round = 0; round < 3; round++)
	{
		app_thread reader, writer;
		int64_t from, to;

		rc = shst_shadow("prepare",
		                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
		                                       "users", "--state-dir", dir, NULL},
		                 &out, &err);
		ck_assert_msg(rc == 0, "prepare exited %d: %s", rc, story_tail(err));
		free(out);
		free(err);
		app_start(&reader, "shadow_many", false);
		app_start(&writer, "shadow_many", true);
		usleep(300000);
		from = story_now_us();
		rc = shst_shadow("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL},
		                 &out, &err);
		to = story_now_us();
		ck_assert_msg(rc == 0, "swap exited %d: %s", rc, story_tail(err));
		fprintf(stderr, "100 tables, round %d: %s", round, strstr(err, "swapped migration"));
		free(out);
		free(err);
		usleep(200000);
		r[round] = app_stop(&reader, from, to);
		w[round] = app_stop(&writer, from, to);
		ck_assert_msg(reader.error[0] == '\0', "the reader saw: %s", reader.error);
		ck_assert_msg(writer.error[0] == '\0', "the writer saw: %s", writer.error);
		app_free(&reader);
		app_free(&writer);
	}
	pgt_assert_same(s, t, "t98");
	pgt_assert_same(s, t, "orders");
	story_sort(r, 3);
	story_sort(w, 3);
	fprintf(stderr,
	        "shadow swap of 101 tables, the longest statement during the swap over 3 runs: "
	        "reader median %.1f ms, worst %.1f ms; writer median %.1f ms, worst %.1f ms\n",
	        r[1], r[2], w[1], w[2]);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * A write to a preserved table that its shadow cannot take (here the shadow
 * was changed by hand, so the row's key is already there) goes through for
 * the application; it is noted, status shows it, and the swap refuses with
 * nothing changed rather than lose it. cleanup of the unswapped migration
 * takes its sync triggers away with its schema.
 */
START_TEST(a_write_the_shadow_cannot_take_never_fails_and_stops_the_swap)
{
	char src[256], tgt[256], dir[512], ts[15], sql[512], v[256];
	char *out, *err;
	PGconn *s, *t;
	int rc;

	shst_two_sides(&sv, "shadow_sync", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-sync-state", dir, sizeof(dir));
	rc = shst_shadow("prepare",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0, "prepare exited %d: %s", rc, story_tail(err));
	shst_ts_of(err, "migration ", ts);
	free(out);
	free(err);
	snprintf(sql, sizeof(sql), "INSERT INTO _pgdbm_shadow_%s.users VALUES (5000, 'by hand')", ts);
	pgt_exec(t, sql);
	/* the application's write goes through */
	pgt_exec(t, "INSERT INTO users VALUES (5000, 'app')");
	rc = shst_shadow("status",
	                 (const char *const[]){"--dest", tgt, "--state-dir", dir, "--json", NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 0 && strstr(out, "\"sync_errors\": 1"), "status: %s", out);
	free(out);
	free(err);
	rc = shst_shadow("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL}, &out,
	                 &err);
	ck_assert_msg(rc == 1 && strstr(err, "could not be carried") && strstr(err, "users"),
	              "swap over a sync error: %d %s", rc, story_tail(err));
	free(out);
	free(err);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	rc = shst_shadow(
	    "cleanup",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--before", "now", NULL}, &out,
	    &err);
	ck_assert_msg(rc == 0 && strstr(err, "dropped migration"), "cleanup: %d %s", rc,
	              story_tail(err));
	free(out);
	free(err);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid "
	                           "= 'users'::regclass",
	                           v, sizeof(v)),
	                 "0");
	shst_target_clean(t);
	pgt_exec(t, "INSERT INTO users VALUES (5001, 'app')");
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"shadow", "shadow", 120,  &sv,  NULL,
	                         NULL,     NULL,     NULL, NULL, "PGDBM_SHADOW_ONLY"};
	const TTest *const stories[] = {
	    a_live_target_is_refreshed_by_a_swap_while_the_application_reads_and_writes,
	    a_backup_is_listed_verified_rolled_back_and_cleaned_up,
	    a_busy_swap_gives_up_unchanged_and_killed_runs_are_run_again,
	    a_swap_of_100_tables_pauses_the_application_briefly,
	    a_write_the_shadow_cannot_take_never_fails_and_stops_the_swap,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
