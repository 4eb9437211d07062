/*
 * check_shadow_online.c — an operator refreshes a live target through
 * shadow tables with `shadow prepare --online` (issue 17): between prepare
 * and swap the source's changes stream into the shadow, so the swap
 * publishes the source as it is at that moment. The target is reached as
 * the NOSUPERUSER role "app" that owns its database and tables.
 *
 * The stories:
 *  - a dry run of prepare --online creates nothing on either server; then
 *    prepare --online streams while a writer changes the source and a
 *    reader and a writer use the target's live tables; the source's writer
 *    stops, swap stops the streaming prepare (which exits 0), drains and
 *    swaps while the target's reader and writer go on: the live
 *    tables equal the source, the preserved table holds the target's own
 *    latest rows, the reader never saw an error, the sequences count on from
 *    the source's, the slot and the publication are gone from the source;
 *  - a streaming prepare killed with kill -9 while the source's counters
 *    are being incremented: a swap without --source, and one whose source
 *    cannot be reached, fail with nothing changed; prepare --online again
 *    streams on from the slot while the source writes again; the swap stops
 *    it and drains from the slot: every counter, order and customer equals the source's
 *    (a change lost would show as a difference; one applied twice as a
 *    failed swap: its insert's key is taken, its delete's row is gone), the
 *    slot is gone;
 *  - start --online (--jobs 2: the workers share the slot's snapshot)
 *    prepares and swaps in one run while the source writes;
 *    nothing is left on the source;
 *  - a streaming prepare goes on after the source restarts; cleanup of an
 *    online migration never swapped needs --source, stops its streaming
 *    prepare and drops its slot with its shadow.
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

/* A session writing (on the source or on the target) or reading (on the target), in a loop. */
typedef struct worker
{
	pthread_t th;
	char connstr[256];
	char kind; /* 's': source writer, 'w': target writer, 'r': target reader,
	              'k': source, updates of a keyless table */
	volatile bool stop;
	long n, inserts;
	char error[512];
} worker;

static void *
worker_run(void *arg)
{
	worker *w = arg;
	PGconn *c = PQconnectdb(w->connstr);

	if (PQstatus(c) != CONNECTION_OK)
	{
		snprintf(w->error, sizeof(w->error), "connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	while (!w->stop && w->error[0] == '\0')
	{
		PGresult *r;
		char sql[512];

		if (w->kind == 'r')
			snprintf(sql, sizeof(sql),
			         "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer");
		else if (w->kind == 'w')
			snprintf(sql, sizeof(sql), "INSERT INTO users (name) VALUES ('w%ld')", w->n);
		else if (w->kind == 'k')
			snprintf(sql, sizeof(sql), "UPDATE events SET what = 'e%ld' WHERE at = %ld %% 50", w->n,
			         w->n);
		else
			/* pgbench-like: a few statements in one transaction; counters show a double apply */
			snprintf(sql, sizeof(sql),
			         "BEGIN; UPDATE counters SET n = n + 1 WHERE id = %ld; "
			         "INSERT INTO orders (customer, total) VALUES (1 + %ld %% 300, %ld); "
			         "UPDATE customers SET name = 'c' || %ld WHERE id = 1 + %ld %% 300; "
			         "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders) AND %ld %% 5 = 0; "
			         "COMMIT",
			         1 + w->n % 10, w->n, w->n, w->n, w->n * 7, w->n);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
			snprintf(w->error, sizeof(w->error), "%c: %s", w->kind, PQerrorMessage(c));
		else if (w->kind == 'w')
			w->inserts++;
		PQclear(r);
		w->n++;
		usleep(w->kind == 'k' ? 0 : w->kind == 's' ? 1000 : 3000);
	}
	PQfinish(c);
	return NULL;
}

static void
worker_start(worker *w, char kind, const char *db)
{
	memset(w, 0, sizeof(*w));
	w->kind = kind;
	if (kind == 's' || kind == 'k')
		pgt_connstr(&sv.src, db, w->connstr, sizeof(w->connstr));
	else
		pgt_connstr_as(&sv.tgt, db, "app", w->connstr, sizeof(w->connstr));
	ck_assert(pthread_create(&w->th, NULL, worker_run, w) == 0);
}

static void
worker_stop(worker *w)
{
	w->stop = true;
	pthread_join(w->th, NULL);
	ck_assert_msg(w->error[0] == '\0', "%s", w->error);
	ck_assert_msg(w->n > 20, "the %c worker did not run (%ld statements)", w->kind, w->n);
}

/* The application's schema, on both sides; rows differ. */
static void
build(PGconn *c, int customers, int orders, int users, const char *tag)
{
	pgt_exec(c, "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);"
	            "CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
	            "customer int NOT NULL REFERENCES customers, total numeric);"
	            "CREATE TABLE users (id serial PRIMARY KEY, name text);"
	            "CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)");
	shst_app_rows(c, customers, orders, users, tag);
	pgt_exec(c, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g");
}

START_TEST(an_online_shadow_follows_the_source_until_the_swap)
{
	char src[256], tgt[256], dir[512], v[256], v2[256], ts[15];
	char *out, *err, *log;
	PGconn *s, *t, *su;
	pgt_proc prep;
	worker sw, tw, tr;
	int rc;

	shst_two_sides(&sv, "shadow_online", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-online-state", dir, sizeof(dir));

	/* a dry run: the plan, nothing on either server, no state */
	rc = shst_shadow("prepare",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--online", "--dry-run",
	                                       NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0, "prepare --online --dry-run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(out, "CREATE_REPLICATION_SLOT") && strstr(out, "CREATE PUBLICATION"),
	              "no plan: %s", out);
	shst_target_clean(t);
	shst_source_clean(s);
	ck_assert_msg(access(dir, F_OK) != 0, "a dry run made the state directory %s", dir);
	free(out);
	free(err);

	/* the application uses the target; the source is busy */
	worker_start(&tr, 'r', "shadow_online");
	worker_start(&tw, 'w', "shadow_online");
	worker_start(&sw, 's', "shadow_online");
	story_tool_start(&prep, (const char *const[]){"shadow", "prepare", NULL},
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--online", NULL},
	                 NULL);
	story_expect(&prep, "streaming from slot", 60);
	story_expect(&prep, "ShadowLag", 20);
	/* the shadow follows the source while it streams; status tells how far behind it is */
	sleep(1);
	rc = shst_shadow(
	    "status",
	    (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir, "--json", NULL},
	    &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "\"online\": true, \"streaming\": true") &&
	                  strstr(out, "\"lag_bytes\": ") && !strstr(out, "\"lag_bytes\": -1"),
	              "status while streaming: %d %s %s", rc, out, story_tail(err));
	free(out);
	free(err);
	worker_stop(&sw);
	usleep(1500 * 1000);
	/*
	 * The application's last commit before the swap is asynchronous and not
	 * yet written (the source's WAL writer slowed to 10 s): acknowledged to
	 * its client, so the swap must carry it.
	 */
	su = pgt_connect(&sv.src, "postgres");
	pgt_exec(su, "ALTER SYSTEM SET wal_writer_delay = '10s'");
	pgt_exec(su, "SELECT pg_reload_conf()");
	usleep(500 * 1000);
	pgt_exec(s, "SET synchronous_commit = off");
	pgt_exec(s, "INSERT INTO customers (name) VALUES ('async-before-swap')");
	pgt_exec(s, "RESET synchronous_commit");
	rc = shst_shadow(
	    "swap", (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir, NULL},
	    &out, &err);
	pgt_exec(su, "ALTER SYSTEM RESET wal_writer_delay");
	pgt_exec(su, "SELECT pg_reload_conf()");
	PQfinish(su);
	ck_assert_msg(rc == 0, "swap exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strcmp(pgt_value(t,
	                               "SELECT count(*) FROM customers WHERE name = "
	                               "'async-before-swap'",
	                               v, sizeof(v)),
	                     "1") == 0,
	              "the asynchronous commit acknowledged before the swap is not on the target");
	ck_assert_msg(strstr(err, "stopping the streaming prepare") && strstr(err, "drained") &&
	                  strstr(err, "dropped the slot"),
	              "swap: %s", story_tail(err));
	fprintf(stderr, "%s", strstr(err, "pg_dbmigrator shadow: drained"));
	free(out);
	free(err);
	/* the streaming prepare stopped cleanly on the swap's word */
	rc = story_finish(&prep, 30, NULL, &log);
	ck_assert_msg(rc == 0, "the streaming prepare exited %d: %s", rc, story_tail(log));
	ck_assert_msg(strstr(log, "stopped streaming"), "prepare: %s", story_tail(log));
	/* it applied the source's transactions while it streamed, not only the drain */
	ck_assert_msg(strstr(log, "(0 transactions)") == NULL, "nothing streamed: %s", story_tail(log));
	fprintf(stderr, "%s", strstr(log, "pg_dbmigrator shadow: stopped streaming"));
	/* how far behind the source the shadow was while it streamed */
	for (const char *l = strstr(log, "ShadowLag"); l; l = strstr(l + 1, "ShadowLag"))
	{
		const char *e = strchr(l, '\n');

		fprintf(stderr, "%.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
	}
	shst_ts_of(log, "prepared migration ", ts);
	free(log);
	usleep(300 * 1000);
	worker_stop(&tr);
	worker_stop(&tw);

	/* the live tables are the source's, users the target's own, every write in it */
	pgt_assert_same(s, t, "customers");
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "counters");
	snprintf(v2, sizeof(v2), "%ld", tw.inserts);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM users WHERE name LIKE 'w%'", v, sizeof(v)),
	                 v2);
	ck_assert_str_eq(
	    pgt_value(t, "SELECT count(*) FROM users WHERE name LIKE 'tgt-user%'", v, sizeof(v)),
	    "100");
	ck_assert_str_eq(pgt_value(t, "SELECT sum(n) > 20 FROM counters", v, sizeof(v)), "t");
	/* the sequences count on from the source's as of the swap */
	pgt_exec(t, "INSERT INTO customers (name) VALUES ('after'); INSERT INTO orders (customer, "
	            "total) VALUES (1, 1)");
	pgt_value(s, "SELECT max(id) FROM orders", v, sizeof(v));
	pgt_value(t, "SELECT max(id) FROM orders", v2, sizeof(v2));
	ck_assert_msg(atoi(v2) > atoi(v), "orders' identity not set from the source: %s <= %s", v2, v);
	/* nothing left on the source, nor of the stream's progress on the target */
	shst_source_clean(s);
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_namespace WHERE nspname = '_pg_dbmigrator'",
	                           v, sizeof(v)),
	                 "0");
	/* the state says swapped */
	{
		char path[1024];
		char *state;

		snprintf(path, sizeof(path), "%s/shadow-%s.json", dir, ts);
		state = pgt_read_file(path);
		ck_assert_msg(state && strstr(state, "\"phase\": \"swapped\"") &&
		                  strstr(state, "\"pid\": 0"),
		              "state: %s", state ? state : "(none)");
		free(state);
	}
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_killed_streaming_prepare_loses_nothing_and_applies_nothing_twice)
{
	char src[256], tgt[256], dir[512], v[256];
	char *out, *err;
	PGconn *s, *t;
	pgt_proc prep;
	worker sw;
	int rc;

	shst_two_sides(&sv, "shadow_online_kill", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-online-kill-state", dir, sizeof(dir));
	worker_start(&sw, 's', "shadow_online_kill");
	story_tool_start(&prep, (const char *const[]){"shadow", "prepare", NULL},
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--online", NULL},
	                 NULL);
	story_expect(&prep, "streaming from slot", 60);
	sleep(2);
	/* a crash in the middle of the stream: the source goes on */
	story_kill_9(&prep);
	sleep(1);
	worker_stop(&sw);

	/* status: an online migration whose prepare no longer streams, and its slot's lag */
	rc = shst_shadow(
	    "status", (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir, NULL},
	    &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "online: not streaming") &&
	                  strstr(out, "bytes of the source's WAL"),
	              "status after the kill: %d %s %s", rc, out, story_tail(err));
	free(out);
	free(err);

	/* the swap of an online migration needs the source: refused, nothing changed */
	rc = shst_shadow("swap", (const char *const[]){"--dest", tgt, "--state-dir", dir, NULL}, &out,
	                 &err);
	ck_assert_msg(rc != 0 && strstr(err, "--source"), "swap without --source: %d %s", rc,
	              story_tail(err));
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	free(out);
	free(err);
	/* a failed drain (the source unreachable): the live tables untouched, the same swap again */
	rc = shst_shadow("swap",
	                 (const char *const[]){"--dest", tgt, "--source",
	                                       "host=/nonexistent port=1 dbname=x connect_timeout=2",
	                                       "--state-dir", dir, NULL},
	                 &out, &err);
	ck_assert_msg(rc != 0 && strstr(err, "untouched"), "swap with the source away: %d %s", rc,
	              story_tail(err));
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	free(out);
	free(err);
	/* a dry run of the swap says it would drain, and changes nothing */
	rc = shst_shadow("swap",
	                 (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir,
	                                       "--dry-run", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0 && strstr(out, "drain") && strstr(out, "SET SCHEMA"),
	              "swap --dry-run: %d %s %s", rc, out, story_tail(err));
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM orders", v, sizeof(v)), "400");
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", v, sizeof(v)), "1");
	free(out);
	free(err);
	/* prepare --online again streams on from the slot (the source busy again), the swap stops it */
	worker_start(&sw, 's', "shadow_online_kill");
	story_tool_start(&prep, (const char *const[]){"shadow", "prepare", NULL},
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--online", NULL},
	                 NULL);
	story_expect(&prep, "streaming into its shadow again", 30);
	story_expect(&prep, "streaming from slot", 30);
	sleep(1);
	worker_stop(&sw);

	rc = shst_shadow(
	    "swap", (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir, NULL},
	    &out, &err);
	ck_assert_msg(rc == 0, "swap exited %d: %s", rc, story_tail(err));
	free(out);
	free(err);
	rc = story_finish(&prep, 30, NULL, &err);
	ck_assert_msg(rc == 0 && strstr(err, "stopped streaming"), "the resumed prepare: %d %s", rc,
	              story_tail(err));
	free(err);
	/* every counter as on the source: a change lost or applied twice would show */
	pgt_assert_same(s, t, "counters");
	pgt_assert_same(s, t, "orders");
	pgt_assert_same(s, t, "customers");
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM users", v, sizeof(v)), "100");
	shst_source_clean(s);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* start --online: prepare at the slot's snapshot, then the swap drains at once. */
START_TEST(start_online_prepares_drains_and_swaps_in_one_run)
{
	char src[256], tgt[256], dir[512], v[64];
	char *out, *err;
	PGconn *s, *t;
	worker sw;
	int rc;

	shst_two_sides(&sv, "shadow_online_start", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-online-start-state", dir, sizeof(dir));
	worker_start(&sw, 's', "shadow_online_start");
	usleep(300 * 1000);
	rc = shst_shadow("start",
	                 (const char *const[]){"--source", src, "--dest", tgt, "--preserved-tables",
	                                       "users", "--state-dir", dir, "--online", "--jobs", "2",
	                                       NULL},
	                 &out, &err);
	worker_stop(&sw);
	ck_assert_msg(rc == 0, "start --online exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "drained") && strstr(err, "swapped migration"), "start: %s",
	              story_tail(err));
	/* the source's writes during the copy came through the slot */
	ck_assert_msg(strstr(err, "; 0 transactions now") == NULL, "nothing drained: %s",
	              story_tail(err));
	free(out);
	free(err);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM users", v, sizeof(v)), "100");
	ck_assert_str_eq(pgt_value(t, "SELECT sum(n) > 0 FROM counters", v, sizeof(v)), "t");
	shst_source_clean(s);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* cleanup of an online migration never swapped: its streaming prepare stopped, its slot gone. */
START_TEST(cleanup_of_an_unswapped_online_migration_drops_its_slot)
{
	char src[256], tgt[256], dir[512], v[64];
	char *out, *err;
	PGconn *s, *t;
	pgt_proc prep;
	int rc;

	shst_two_sides(&sv, "shadow_online_clean", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-online-clean-state", dir, sizeof(dir));
	story_tool_start(
	    &prep, (const char *const[]){"shadow", "prepare", NULL},
	    (const char *const[]){"--source", src, "--dest", tgt, "--state-dir", dir, "--online", NULL},
	    NULL);
	story_expect(&prep, "streaming from slot", 60);
	/* the source restarts: the prepare streams again from the slot, and the shadow follows */
	pgt_restart(&sv.src);
	PQreset(sv.src_admin);
	PQfinish(s);
	s = pgt_connect_as(&sv.src, "shadow_online_clean", "app");
	story_expect(&prep, "streaming again in", 30);
	pgt_exec(s, "INSERT INTO customers (name) VALUES ('after the restart')");
	{
		char shadow[128], sql[256];
		int i;

		pgt_value(t, "SELECT nspname FROM pg_namespace WHERE nspname LIKE '\\_pgdbm\\_shadow%'",
		          shadow, sizeof(shadow));
		snprintf(sql, sizeof(sql),
		         "SELECT count(*) FROM %s.customers WHERE name = 'after the restart'", shadow);
		for (i = 0; i < 300 && strcmp(pgt_value(t, sql, v, sizeof(v)), "1") != 0; i++)
			usleep(100 * 1000);
		ck_assert_msg(i < 300, "the shadow did not follow the source after its restart: %s",
		              story_tail(pgt_stderr(&prep)));
	}
	/* without the source, its slot could not go: refused, nothing dropped */
	rc = shst_shadow(
	    "cleanup",
	    (const char *const[]){"--dest", tgt, "--state-dir", dir, "--before", "now", NULL}, &out,
	    &err);
	ck_assert_msg(rc != 0 && strstr(err, "--source"), "cleanup without --source: %d %s", rc,
	              story_tail(err));
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_replication_slots", v, sizeof(v)), "1");
	free(out);
	free(err);
	rc = shst_shadow("cleanup",
	                 (const char *const[]){"--dest", tgt, "--source", src, "--state-dir", dir,
	                                       "--before", "now", NULL},
	                 &out, &err);
	ck_assert_msg(rc == 0 && strstr(err, "dropped the slot"), "cleanup: %d %s", rc,
	              story_tail(err));
	free(out);
	free(err);
	rc = story_finish(&prep, 30, NULL, &err);
	ck_assert_msg(rc == 0, "the streaming prepare: %d %s", rc, story_tail(err));
	free(err);
	shst_source_clean(s);
	shst_target_clean(t);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * An append-only log without a key on the source: a publication of it would
 * make the application's UPDATE of it fail. prepare --online refuses before
 * creating anything, says what to do, and the application never sees an error.
 */
START_TEST(a_keyless_table_is_refused_before_the_source_is_touched)
{
	char src[256], tgt[256], dir[512], v[64];
	char *out, *err;
	PGconn *s, *t;
	worker kw;
	int rc;

	shst_two_sides(&sv, "shadow_online_keyless", build, src, tgt, sizeof(src), &s, &t);
	pgt_scratch("shadow-online-keyless-state", dir, sizeof(dir));
	pgt_exec(s, "CREATE TABLE events (at int, what text);"
	            "INSERT INTO events SELECT g, 'e' FROM generate_series(0, 49) g");
	pgt_exec(t, "CREATE TABLE events (at int, what text)");
	worker_start(&kw, 'k', "shadow_online_keyless");
	usleep(200 * 1000);
	rc = shst_shadow(
	    "prepare",
	    (const char *const[]){"--source", src, "--dest", tgt, "--state-dir", dir, "--online", NULL},
	    &out, &err);
	usleep(200 * 1000);
	worker_stop(&kw);
	ck_assert_msg(rc != 0 && strstr(err, "public.events") && strstr(err, "REPLICA IDENTITY FULL") &&
	                  strstr(err, "--preserved-tables"),
	              "prepare --online with a keyless table: %d %s", rc, story_tail(err));
	ck_assert_str_eq(pgt_value(s, "SELECT count(*) FROM pg_publication", v, sizeof(v)), "0");
	shst_source_clean(s);
	shst_target_clean(t);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {
	    "shadow_online",    "shadow_online", 120, &sv, NULL, NULL, NULL, NULL, NULL,
	    "PGDBM_SHADOW_ONLY"};
	const TTest *const stories[] = {
	    an_online_shadow_follows_the_source_until_the_swap,
	    a_killed_streaming_prepare_loses_nothing_and_applies_nothing_twice,
	    start_online_prepares_drains_and_swaps_in_one_run,
	    a_keyless_table_is_refused_before_the_source_is_touched,
	    cleanup_of_an_unswapped_online_migration_drops_its_slot,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
