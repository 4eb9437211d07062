/*
 * check_prod_apply.c — the apply engine on schemas shaped like production
 * ones, into a target reached as a NOSUPERUSER role that owns its database
 * (as on a managed service). One pair of clusters for the whole suite.
 *
 * The stories:
 *  - identity columns: inserts a few at a time into GENERATED ALWAYS and
 *    BY DEFAULT identity tables, and updates of their rows, arrive (they
 *    stopped the apply with "Use OVERRIDING SYSTEM VALUE" and "can only be
 *    updated to DEFAULT");
 *  - an apply error names the table, the statement and the source LSN, and
 *    what to do (a PREPARE failure said only "a statement failed");
 *  - composite, domain, enum and array values in a primary key and in a
 *    REPLICA IDENTITY FULL table find their rows (UPDATE/DELETE stopped with
 *    "input of anonymous composite types is not implemented");
 *  - a table with no columns takes inserts, deletes and truncates (it was
 *    reported as missing on the target);
 *  - bench refuses a progress row written for another source;
 *  - online: a LATIN1 source database into a UTF8 target, rows written while
 *    streaming (they stopped the apply as invalid UTF-8);
 *  - online: a progress row left on the target by an earlier run with the same
 *    slot name is not trusted (it skipped every change below its LSN);
 *  - online: a --resume whose progress row belongs to another run refuses,
 *    and goes on once the row is its own again;
 *  - online: the production-shaped schema (identity columns, composite,
 *    domain and enum keys, a FULL identity table of them, a table with no
 *    columns) migrated while written to, into the NOSUPERUSER target;
 *  - --skip-lsn and --on-missing-row are checked before anything starts;
 *  - online: a migration stopped by a missing row goes on with --resume
 *    --skip-lsn, then --resume --on-missing-row skip (both only in bench).
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtest.h"

static pgt_cluster src_server, tgt_server;
static PGconn *src_admin, *tgt_admin;

/* the apply stories' database "prod": src as a superuser, tgt as the owning role */
static PGconn *src, *tgt;
static char src_conn[256], tgt_conn[256];

static void
setup(void)
{
	pgt_start(&src_server, "max_replication_slots = 20\nmax_wal_senders = 20\n");
	pgt_start(&tgt_server, NULL);
	src_admin = pgt_connect(&src_server, "postgres");
	tgt_admin = pgt_connect(&tgt_server, "postgres");
	pgt_owned_database(src_admin, "prod", "app");
	pgt_owned_database(tgt_admin, "prod", "app");
	src = pgt_connect(&src_server, "prod");
	pgt_connstr(&src_server, "prod", src_conn, sizeof(src_conn));
	pgt_connstr_as(&tgt_server, "prod", "app", tgt_conn, sizeof(tgt_conn));
	tgt = PQconnectdb(tgt_conn);
	ck_assert_msg(PQstatus(tgt) == CONNECTION_OK, "%s", PQerrorMessage(tgt));
}

static void
teardown(void)
{
	PQfinish(src);
	PQfinish(tgt);
	PQfinish(src_admin);
	PQfinish(tgt_admin);
	pgt_stop(&src_server);
	pgt_stop(&tgt_server);
}

/* The same SQL on both sides (the target's objects owned by the app role). */
static void
both(const char *sql)
{
	pgt_exec(src, sql);
	pgt_exec(tgt, sql);
}

/* A publication of tables and a slot, both named name. */
static void
publish(const char *name, const char *tables)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "CREATE PUBLICATION %s FOR TABLE %s", name, tables);
	pgt_exec(src, sql);
	snprintf(sql, sizeof(sql), "SELECT pg_create_logical_replication_slot('%s', 'pgoutput')", name);
	pgt_exec(src, sql);
}

/* Run `bench` on slot/publication name up to what the source has written. */
static int
bench(const char *name, const char *const extra[], char **out, char **err)
{
	char upto[32];
	const char *argv[40] = {pgt_tool(), "bench",       "--source", src_conn,        "--target",
	                        tgt_conn,   "--slot-name", name,       "--publication", name,
	                        "--json",   "--endpos",    upto};
	int n = 13, rc;
	pgt_proc p;

	pgt_value(src, "SELECT pg_current_wal_insert_lsn()", upto, sizeof(upto));
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pgt_spawn(&p, argv, NULL);
	*out = pgt_slurp(&p);
	rc = pgt_wait(&p, 300);
	*err = pgt_stderr(&p);
	return rc;
}

static void
bench_ok(const char *name)
{
	char *out, *err;
	int rc = bench(name, NULL, &out, &err);

	ck_assert_msg(rc == 0, "bench %s exited %d: %s", name, rc, err);
	free(out);
	free(err);
}

/* The end of a long text (Check's messages have a size limit). */
static const char *
tail(const char *text)
{
	size_t n = strlen(text);

	return n > 1500 ? text + n - 1500 : text;
}

static long
count_rows(PGconn *conn, const char *table)
{
	char sql[256], buf[32];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return atol(pgt_value(conn, sql, buf, sizeof(buf)));
}

START_TEST(identity_columns_take_small_inserts_and_updates)
{
	both("CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)");
	both("CREATE TABLE notes (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)");
	/* an identity that is not the key */
	both("CREATE TABLE tickets (code text PRIMARY KEY, "
	     "n int GENERATED BY DEFAULT AS IDENTITY, note text)");
	publish("ident", "orders, notes, tickets");
	/* one row per transaction: each goes as a one-row INSERT */
	pgt_exec(src, "INSERT INTO orders (note) VALUES ('first')");
	pgt_exec(src, "INSERT INTO orders (note) VALUES ('second')");
	pgt_exec(src, "INSERT INTO orders (note) SELECT 'batch ' || g FROM generate_series(1, 5) g");
	pgt_exec(src, "INSERT INTO orders (id, note) OVERRIDING SYSTEM VALUE VALUES (1000, 'forced')");
	pgt_exec(src, "UPDATE orders SET note = 'changed' WHERE id = 1");
	pgt_exec(src, "DELETE FROM orders WHERE id = 2");
	pgt_exec(src, "INSERT INTO notes (note) VALUES ('a'), ('b')");
	pgt_exec(src, "INSERT INTO notes (id, note) VALUES (50, 'chosen')");
	pgt_exec(src, "UPDATE notes SET note = 'c' WHERE id = 2");
	pgt_exec(src, "UPDATE notes SET id = 60 WHERE id = 50");
	pgt_exec(src, "INSERT INTO tickets (code, note) VALUES ('x', 'one'), ('y', 'two')");
	pgt_exec(src, "UPDATE tickets SET note = 'three' WHERE code = 'x'");
	/* many rows at once go by COPY: identity values kept there too */
	pgt_exec(src, "INSERT INTO orders (note) SELECT 'bulk ' || g FROM generate_series(1, 600) g");
	bench_ok("ident");
	pgt_assert_same(src, tgt, "orders");
	pgt_assert_same(src, tgt, "notes");
	pgt_assert_same(src, tgt, "tickets");
}
END_TEST

START_TEST(an_apply_error_names_the_table_the_statement_and_the_lsn)
{
	char *out, *err;
	int rc;

	/* the target's column is GENERATED ALWAYS, the source's is not (the guard's job undone) */
	pgt_exec(src, "CREATE TABLE counters (name text PRIMARY KEY, n int)");
	pgt_exec(tgt, "CREATE TABLE counters (name text PRIMARY KEY, "
	              "n int GENERATED ALWAYS AS IDENTITY)");
	publish("errs", "counters");
	pgt_exec(src, "INSERT INTO counters VALUES ('a', 1)");
	bench_ok("errs"); /* inserts override the identity */
	pgt_exec(src, "UPDATE counters SET n = 2 WHERE name = 'a'");
	rc = bench("errs", NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	if (getenv("PGDBM_PROD_SHOW"))
		fprintf(stderr, "%s\n", err);
	ck_assert_msg(strstr(err, "public.counters") && strstr(err, "UPDATE") &&
	                  strstr(err, "can only be updated to DEFAULT") &&
	                  strstr(err, "SET GENERATED BY DEFAULT") && strstr(err, "--skip-lsn 0/"),
	              "unclear error: %s", err);
	free(out);
	free(err);
	/* the operator makes the target accept it, as the guard does, and goes on */
	pgt_exec(tgt, "ALTER TABLE counters ALTER n SET GENERATED BY DEFAULT");
	bench_ok("errs");
	pgt_assert_same(src, tgt, "counters");
}
END_TEST

START_TEST(composite_domain_enum_and_array_keys_find_their_rows)
{
	both("CREATE TYPE pair AS (a int, b text)");
	both("CREATE DOMAIN posint AS int CHECK (VALUE > 0)");
	both("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
	both("CREATE TABLE pairs (k pair PRIMARY KEY, v int)");
	both("CREATE TABLE doms (k posint, m mood, tags text[], v int, PRIMARY KEY (k, m, tags))");
	both("CREATE TABLE loose (p pair, d posint, m mood, a int[], pa pair[], note text)");
	both("ALTER TABLE loose REPLICA IDENTITY FULL");
	publish("kinds", "pairs, doms, loose");
	pgt_exec(src,
	         "INSERT INTO pairs SELECT ROW(g, 'x' || g)::pair, g FROM generate_series(1, 6) g");
	pgt_exec(src, "INSERT INTO doms SELECT g, 'ok', ARRAY['t' || g, NULL], g "
	              "FROM generate_series(1, 6) g");
	pgt_exec(src, "INSERT INTO loose SELECT ROW(g, 'y')::pair, g, 'happy', ARRAY[g, g], "
	              "ARRAY[ROW(g, 'z')::pair], 'n' FROM generate_series(1, 4) g");
	pgt_exec(src, "INSERT INTO loose SELECT * FROM loose WHERE d = 1"); /* a duplicate row */
	pgt_exec(src, "UPDATE pairs SET v = v + 10 WHERE (k).a <= 3");      /* batched */
	pgt_exec(src, "UPDATE pairs SET v = 0 WHERE (k).a = 4");            /* one row */
	pgt_exec(src, "DELETE FROM pairs WHERE (k).a IN (5, 6)");
	pgt_exec(src, "UPDATE pairs SET k = ROW(9, 'moved') WHERE (k).a = 1"); /* a key that changes */
	pgt_exec(src, "UPDATE doms SET v = -v WHERE k <= 3");
	pgt_exec(src, "UPDATE doms SET m = 'sad' WHERE k = 4");
	pgt_exec(src, "DELETE FROM doms WHERE k = 5");
	pgt_exec(src, "UPDATE loose SET note = 'changed' WHERE d = 1"); /* both duplicates */
	pgt_exec(src, "UPDATE loose SET m = 'sad', a = ARRAY[0] WHERE d = 2");
	pgt_exec(src, "DELETE FROM loose WHERE d = 3");
	pgt_exec(src, "UPDATE loose SET p = NULL WHERE d = 4");
	pgt_exec(src, "DELETE FROM loose WHERE d = 4");
	bench_ok("kinds");
	pgt_assert_same(src, tgt, "pairs");
	pgt_assert_same(src, tgt, "doms");
	pgt_assert_same(src, tgt, "loose");
	ck_assert_int_eq(count_rows(tgt, "loose WHERE note = 'changed'"), 2);
}
END_TEST

START_TEST(a_table_with_no_columns_takes_inserts_deletes_and_truncates)
{
	both("CREATE TABLE nothing ()");
	both("ALTER TABLE nothing REPLICA IDENTITY FULL");
	both("CREATE TABLE plain (id int PRIMARY KEY)");
	publish("empty", "nothing, plain");
	pgt_exec(src, "INSERT INTO nothing DEFAULT VALUES");
	pgt_exec(src, "INSERT INTO nothing SELECT FROM generate_series(1, 4)");
	pgt_exec(src, "INSERT INTO plain VALUES (1)");
	pgt_exec(src, "DELETE FROM nothing WHERE ctid = (SELECT min(ctid) FROM nothing)");
	bench_ok("empty");
	ck_assert_int_eq(count_rows(tgt, "nothing"), 4);
	pgt_exec(src, "TRUNCATE nothing");
	pgt_exec(src, "INSERT INTO nothing SELECT FROM generate_series(1, 300)"); /* a long run */
	pgt_exec(src, "INSERT INTO nothing DEFAULT VALUES");
	bench_ok("empty");
	ck_assert_int_eq(count_rows(tgt, "nothing"), 301);
	pgt_assert_same(src, tgt, "plain");
}
END_TEST

START_TEST(bench_refuses_a_progress_row_of_another_source)
{
	char *out, *err;
	int rc;

	both("CREATE TABLE kv (k int PRIMARY KEY, v int)");
	publish("stranger", "kv");
	pgt_exec(src, "INSERT INTO kv VALUES (1, 1)");
	bench_ok("stranger");
	/* as if the row had been written streaming from another server */
	pgt_exec(tgt, "UPDATE _pg_dbmigrator.apply_progress SET source_system = '12345' "
	              "WHERE slot_name = 'stranger'");
	pgt_exec(src, "INSERT INTO kv VALUES (2, 2)");
	rc = bench("stranger", NULL, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "another source") && strstr(err, "12345") &&
	                  strstr(err, "apply_progress"),
	              "unclear error: %s", err);
	ck_assert_int_eq(count_rows(tgt, "kv"), 1);
	free(out);
	free(err);
}
END_TEST

/* ---------------------------------------------------------------- online */

/*
 * Start an online migration of db (source as a superuser, target as the
 * owning role app; the dump path and the slot named after db, so that a
 * --resume finds them).
 */
static void
mig_start(pgt_proc *tool, const char *db, const char *const extra[])
{
	static char s[256], t[256], dump[512];
	const char *argv[40] = {pgt_tool(),
	                        "--mode",
	                        "online",
	                        "--source",
	                        s,
	                        "--target",
	                        t,
	                        "--json",
	                        "--dump-path",
	                        dump,
	                        "--cutover-poll-secs",
	                        "1",
	                        "--slot-name",
	                        db};
	int n = 14;

	pgt_connstr(&src_server, db, s, sizeof(s));
	pgt_connstr_as(&tgt_server, db, "app", t, sizeof(t));
	pgt_scratch(db, dump, sizeof(dump));
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pgt_spawn(tool, argv, NULL);
}

/* Wait until the tool is caught up; false (the tool killed) if it never is. */
static bool
mig_caught_up(pgt_proc *tool)
{
	if (pgt_wait_for_text(tool->err_path, "stage=CaughtUp", 90))
		return true;
	kill(tool->pid, SIGKILL);
	return false;
}

/* Run writes on the source's db (as UTF-8 text). */
static void
mig_writes(const char *db, const char *const writes[])
{
	PGconn *w = pgt_connect(&src_server, db);

	pgt_exec(w, "SET client_encoding TO 'UTF8'");
	for (int i = 0; writes && writes[i]; i++)
		pgt_exec(w, writes[i]);
	PQfinish(w);
}

/* Ctrl+C after the writes had time to stream (unless ctrl_c is false); the exit code. */
static int
mig_finish(pgt_proc *tool, bool ctrl_c, char **out, char **err)
{
	int rc;

	if (ctrl_c)
	{
		sleep(2);
		kill(tool->pid, SIGINT);
	}
	*out = pgt_slurp(tool);
	rc = pgt_wait(tool, 120);
	*err = pgt_stderr(tool);
	return rc;
}

/* An online migration of db with writes once caught up, cut over by Ctrl+C. */
static int
migrate_online(const char *db, const char *const writes[], const char *const extra[], char **out,
               char **err)
{
	pgt_proc tool;

	mig_start(&tool, db, extra);
	if (!mig_caught_up(&tool))
	{
		mig_finish(&tool, false, out, err);
		return -1;
	}
	mig_writes(db, writes);
	return mig_finish(&tool, true, out, err);
}

/* Rows of table in id order as UTF-8 bytes, hashed (equal whatever the database encoding). */
static const char *
utf8_hash(PGconn *conn, const char *table, char *buf, size_t size)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) || ' ' || md5(convert_to(string_agg(t::text, '|' ORDER BY id), "
	         "'UTF8')) FROM %s t",
	         table);
	return pgt_value(conn, sql, buf, size);
}

START_TEST(a_latin1_source_streams_into_a_utf8_target)
{
	const char *writes[] = {"INSERT INTO menu VALUES (3, 'Ærø', 'smørrebrød')",
	                        "INSERT INTO \"größe\" VALUES (2, 'ß')",
	                        "UPDATE menu SET dish = 'crème brûlée' WHERE id = 1",
	                        "UPDATE \"größe\" SET \"maß\" = 'straße' WHERE id = 1",
	                        "DELETE FROM menu WHERE id = 2",
	                        NULL};
	char x[128], y[128], *out, *err;
	PGconn *s, *t;
	int rc;

	pgt_exec(src_admin, "DROP DATABASE IF EXISTS latin WITH (FORCE)");
	pgt_exec(src_admin, "CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
	                    "TEMPLATE template0 OWNER app");
	pgt_owned_database(tgt_admin, "latin", "app");
	s = pgt_connect(&src_server, "latin");
	pgt_exec(s, "SET client_encoding TO 'UTF8'");
	pgt_exec(s, "SET ROLE app");
	pgt_exec(s, "CREATE TABLE menu (id int PRIMARY KEY, place text, dish text)");
	pgt_exec(s, "CREATE TABLE \"größe\" (id int PRIMARY KEY, \"maß\" text)");
	pgt_exec(s, "INSERT INTO menu VALUES (1, 'café', 'crêpe'), (2, 'Zürich', 'rösti')");
	pgt_exec(s, "INSERT INTO \"größe\" VALUES (1, 'groß')");
	rc = migrate_online("latin", writes, NULL, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, tail(err));
	t = pgt_connect(&tgt_server, "latin");
	pgt_exec(t, "SET client_encoding TO 'UTF8'");
	ck_assert_str_eq(utf8_hash(t, "menu", x, sizeof(x)), utf8_hash(s, "menu", y, sizeof(y)));
	ck_assert_str_eq(utf8_hash(t, "\"größe\"", x, sizeof(x)),
	                 utf8_hash(s, "\"größe\"", y, sizeof(y)));
	ck_assert_str_eq(pgt_value(t, "SELECT dish FROM menu WHERE id = 1", x, sizeof(x)),
	                 "crème brûlée");
	/* and the tool's own comparison agrees (both sides read as UTF-8) */
	ck_assert_msg(strstr(out, "\"stage\":\"Verify\"") && strstr(out, "\"differences\":0"),
	              "no clean Verify event: %s", tail(out));
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_leftover_progress_row_of_an_earlier_run_is_not_trusted)
{
	const char *writes[] = {"INSERT INTO acct SELECT g, g FROM generate_series(11, 20) g",
	                        "UPDATE acct SET bal = 0 WHERE id <= 5",
	                        "DELETE FROM acct WHERE id = 10", NULL};
	char sql[512], ahead[64], *out, *err;
	PGconn *s, *t;
	int rc;

	pgt_owned_database(src_admin, "bank", "app");
	pgt_owned_database(tgt_admin, "bank", "app");
	s = pgt_connect(&src_server, "bank");
	pgt_exec(s, "SET ROLE app");
	pgt_exec(s, "CREATE TABLE acct (id int PRIMARY KEY, bal int)");
	pgt_exec(s, "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g");
	/* an earlier attempt (the table as older versions made it) got far ahead */
	pgt_value(s, "SELECT pg_current_wal_insert_lsn() + 100000000", ahead, sizeof(ahead));
	t = pgt_connect(&tgt_server, "bank");
	pgt_exec(t, "SET ROLE app");
	pgt_exec(t, "CREATE SCHEMA _pg_dbmigrator");
	pgt_exec(t, "CREATE TABLE _pg_dbmigrator.apply_progress (slot_name text PRIMARY KEY, "
	            "lsn pg_lsn NOT NULL, applied_at timestamptz NOT NULL)");
	snprintf(sql, sizeof(sql),
	         "INSERT INTO _pg_dbmigrator.apply_progress VALUES ('bank', '%s', now())", ahead);
	pgt_exec(t, sql);
	rc = migrate_online("bank", writes, NULL, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, tail(err));
	ck_assert_msg(strstr(err, "another run") || strstr(err, "earlier run"),
	              "no warning about the progress row: %s", tail(err));
	pgt_assert_same(s, t, "acct");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_production_schema_migrates_online_into_a_nosuperuser_target)
{
	const char *writes[] = {"INSERT INTO orders (note, m) VALUES ('w1', 'ok')",
	                        "INSERT INTO orders (note, m) VALUES ('w2', 'sad')",
	                        "UPDATE orders SET note = 'updated' WHERE id = 1",
	                        "DELETE FROM orders WHERE id = 2",
	                        "INSERT INTO notes (note) VALUES ('n')",
	                        "UPDATE notes SET note = 'm' WHERE id = 1",
	                        "UPDATE pairs SET v = v + 1",
	                        "DELETE FROM pairs WHERE (k).a = 2",
	                        "UPDATE pairs SET k = ROW(99, 'q')::pair WHERE (k).a = 3",
	                        "UPDATE doms SET tags = ARRAY['x'] WHERE k = 1",
	                        "DELETE FROM doms WHERE k = 2",
	                        "UPDATE loose SET note = 'c' WHERE d = 1",
	                        "DELETE FROM loose WHERE d = 2",
	                        "INSERT INTO nothing DEFAULT VALUES",
	                        "DELETE FROM nothing WHERE ctid = (SELECT min(ctid) FROM nothing)",
	                        NULL};
	const char *tables[] = {"orders", "notes", "pairs", "doms", "loose", NULL};
	char x[64], y[64], *out, *err;
	PGconn *s, *t;
	int rc;

	pgt_owned_database(src_admin, "shop", "app");
	pgt_owned_database(tgt_admin, "shop", "app");
	s = pgt_connect(&src_server, "shop");
	pgt_exec(s, "SET ROLE app");
	pgt_exec(s, "CREATE TYPE pair AS (a int, b text)");
	pgt_exec(s, "CREATE DOMAIN posint AS int CHECK (VALUE > 0)");
	pgt_exec(s, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
	pgt_exec(s, "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
	            "note text, m mood)");
	pgt_exec(s, "CREATE TABLE notes (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
	            "note text)");
	pgt_exec(s, "CREATE TABLE pairs (k pair PRIMARY KEY, v int)");
	pgt_exec(s, "CREATE TABLE doms (k posint PRIMARY KEY, tags text[])");
	pgt_exec(s, "CREATE TABLE loose (p pair, d posint, m mood, a int[], note text)");
	pgt_exec(s, "ALTER TABLE loose REPLICA IDENTITY FULL");
	pgt_exec(s, "CREATE TABLE nothing ()");
	pgt_exec(s, "ALTER TABLE nothing REPLICA IDENTITY FULL");
	pgt_exec(s,
	         "INSERT INTO orders (note, m) SELECT 'o' || g, 'happy' FROM generate_series(1, 5) g");
	pgt_exec(s, "INSERT INTO notes (note) SELECT 'n' || g FROM generate_series(1, 5) g");
	pgt_exec(s, "INSERT INTO pairs SELECT ROW(g, 'p' || g)::pair, g FROM generate_series(1, 5) g");
	pgt_exec(s, "INSERT INTO doms SELECT g, ARRAY['t'] FROM generate_series(1, 5) g");
	pgt_exec(s, "INSERT INTO loose SELECT ROW(g, 'l')::pair, g, 'ok', ARRAY[g], 'n' "
	            "FROM generate_series(1, 3) g");
	pgt_exec(s, "INSERT INTO nothing SELECT FROM generate_series(1, 3)");
	rc = migrate_online("shop", writes, NULL, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, tail(err));
	t = pgt_connect(&tgt_server, "shop");
	for (int i = 0; tables[i]; i++)
		pgt_assert_same(s, t, tables[i]);
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM nothing", x, sizeof(x)),
	                 pgt_value(s, "SELECT count(*) FROM nothing", y, sizeof(y)));
	ck_assert_msg(strstr(out, "\"stage\":\"Verify\"") && strstr(out, "\"differences\":0"),
	              "no clean Verify event: %s", tail(out));
	/* the application goes on on the target: the identity continues after the source's */
	pgt_exec(t, "SET ROLE app");
	pgt_exec(t, "INSERT INTO orders (note) VALUES ('after cutover')");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/* The LSN after "--skip-lsn " in text, into buf. */
static const char *
skip_lsn_in(const char *text, char *buf, size_t size)
{
	const char *at = strstr(text, "--skip-lsn ");

	ck_assert_msg(at != NULL, "no --skip-lsn in: %s", tail(text));
	snprintf(buf, size, "%.*s", (int)strcspn(at + 11, " \n\"),;"), at + 11);
	return buf;
}

START_TEST(a_migration_stopped_by_a_missing_row_goes_on_with_resume)
{
	const char *resume_skip[] = {"--resume", "--skip-lsn", NULL, "--verify", "off", NULL};
	const char *resume_go_on[] = {"--resume", "--on-missing-row", "skip", "--verify", "off", NULL};
	char lsn[64], *out, *err;
	pgt_proc tool;
	PGconn *s, *t;
	int rc;

	pgt_owned_database(src_admin, "ledger", "app");
	pgt_owned_database(tgt_admin, "ledger", "app");
	s = pgt_connect(&src_server, "ledger");
	pgt_exec(s, "SET ROLE app");
	pgt_exec(s, "CREATE TABLE acct (id int PRIMARY KEY, bal int)");
	pgt_exec(s, "INSERT INTO acct SELECT g, 100 FROM generate_series(1, 10) g");
	mig_start(&tool, "ledger", NULL);
	ck_assert(mig_caught_up(&tool));
	/* the target loses a row the source still has, which the source then updates */
	t = pgt_connect(&tgt_server, "ledger");
	pgt_exec(t, "DELETE FROM acct WHERE id = 7");
	mig_writes("ledger", (const char *const[]){"UPDATE acct SET bal = 0 WHERE id = 7",
	                                           "UPDATE acct SET bal = 1 WHERE id = 8", NULL});
	rc = mig_finish(&tool, false, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "public.acct") && strstr(err, "id=7") &&
	                  strstr(err, "--on-missing-row skip") && strstr(err, "--resume"),
	              "unclear error: %s", tail(err));
	/* the operator skips that one transaction, by the LSN the error gave */
	resume_skip[2] = skip_lsn_in(err, lsn, sizeof(lsn));
	free(out);
	free(err);
	mig_start(&tool, "ledger", resume_skip);
	ck_assert(mig_caught_up(&tool));
	pgt_exec(t, "DELETE FROM acct WHERE id = 9");
	mig_writes("ledger", (const char *const[]){"UPDATE acct SET bal = 9 WHERE id = 9", NULL});
	rc = mig_finish(&tool, false, &out, &err);
	ck_assert_msg(rc == 1 && strstr(err, "id=9"), "exited %d: %s", rc, tail(err));
	ck_assert_int_eq(count_rows(t, "acct WHERE id = 8 AND bal = 1"), 1);
	free(out);
	free(err);
	/* or goes on past rows the target lacks, counting them */
	mig_start(&tool, "ledger", resume_go_on);
	ck_assert(mig_caught_up(&tool));
	mig_writes("ledger", (const char *const[]){"UPDATE acct SET bal = 2 WHERE id = 2",
	                                           "INSERT INTO acct VALUES (11, 11)", NULL});
	rc = mig_finish(&tool, true, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, tail(err));
	ck_assert_msg(strstr(err, "found no row"), "no warning: %s", tail(err));
	pgt_assert_same(s, t, "(SELECT * FROM acct WHERE id NOT IN (7, 9))");
	ck_assert_int_eq(count_rows(t, "acct WHERE id IN (7, 9)"), 0);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_resumed_run_refuses_a_progress_row_of_another_run)
{
	const char *resume[] = {"--resume", NULL};
	char run[64], sql[256], *out, *err;
	pgt_proc tool;
	PGconn *s, *t;
	int rc;

	pgt_owned_database(src_admin, "vault", "app");
	pgt_owned_database(tgt_admin, "vault", "app");
	s = pgt_connect(&src_server, "vault");
	pgt_exec(s, "SET ROLE app");
	pgt_exec(s, "CREATE TABLE box (id int PRIMARY KEY, v text)");
	pgt_exec(s, "INSERT INTO box SELECT g, 'v' FROM generate_series(1, 10) g");
	mig_start(&tool, "vault", NULL);
	ck_assert(mig_caught_up(&tool));
	mig_writes("vault", (const char *const[]){"INSERT INTO box VALUES (11, 'w')", NULL});
	sleep(2);
	kill(tool.pid, SIGKILL); /* a crash while streaming: the slot and the progress row stay */
	free(pgt_slurp(&tool));
	pgt_wait(&tool, 30);
	/* meanwhile something else wrote this slot's row (another run with the same names) */
	t = pgt_connect(&tgt_server, "vault");
	pgt_value(t, "SELECT run_lsn FROM _pg_dbmigrator.apply_progress WHERE slot_name = 'vault'", run,
	          sizeof(run));
	pgt_exec(t, "UPDATE _pg_dbmigrator.apply_progress SET run_lsn = '0/1' "
	            "WHERE slot_name = 'vault'");
	pgt_exec(s, "INSERT INTO box VALUES (12, 'x')");
	mig_start(&tool, "vault", resume);
	rc = mig_finish(&tool, false, &out, &err);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(err, "another run") && strstr(err, "--force-clean"), "unclear error: %s",
	              tail(err));
	ck_assert_int_eq(count_rows(t, "box WHERE id = 12"), 0);
	free(out);
	free(err);
	/* the row put back as its run left it: the resume goes on */
	snprintf(sql, sizeof(sql),
	         "UPDATE _pg_dbmigrator.apply_progress SET run_lsn = '%s' WHERE slot_name = 'vault'",
	         run);
	pgt_exec(t, sql);
	mig_start(&tool, "vault", resume);
	ck_assert(mig_caught_up(&tool));
	rc = mig_finish(&tool, true, &out, &err);
	ck_assert_msg(rc == 0, "migration exited %d: %s", rc, tail(err));
	pgt_assert_same(s, t, "box");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(skip_options_are_checked_before_anything_starts)
{
	static const struct
	{
		const char *mode, *flag, *value, *says;
	} cases[] = {
	    {"offline", "--skip-lsn", "0/16B3748", "apply to the changes streamed by --mode online"},
	    {"offline", "--on-missing-row", "skip", "apply to the changes streamed by --mode online"},
	    {"online", "--skip-lsn", "yesterday", "invalid --skip-lsn \"yesterday\""},
	    {"online", "--on-missing-row", "ignore", "use error or skip"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *argv[] = {pgt_tool(), "--mode", cases[i].mode, "--source",     src_conn,
		                      "--target", tgt_conn, cases[i].flag, cases[i].value, NULL};
		pgt_proc p;
		char *out, *err;
		int rc;

		pgt_spawn(&p, argv, NULL);
		out = pgt_slurp(&p);
		rc = pgt_wait(&p, 30);
		err = pgt_stderr(&p);
		ck_assert_msg(rc == 2 && strstr(err, cases[i].says), "%s %s: exit %d: %s", cases[i].flag,
		              cases[i].value, rc, err);
		free(out);
		free(err);
	}
}
END_TEST

static Suite *
prod_apply_suite(void)
{
	Suite *s = suite_create("apply on production schemas");
	const char *only = getenv("PGDBM_PROD_ONLY");
	TCase *tc = tcase_create("prod_apply");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	/* PGDBM_PROD_ONLY=word: only the stories whose name has it (while developing) */
#define ADD(test)                                \
	do                                           \
		if (only == NULL || strstr(#test, only)) \
			tcase_add_test(tc, test);            \
	while (0)
	ADD(skip_options_are_checked_before_anything_starts);
	ADD(identity_columns_take_small_inserts_and_updates);
	ADD(an_apply_error_names_the_table_the_statement_and_the_lsn);
	ADD(composite_domain_enum_and_array_keys_find_their_rows);
	ADD(a_table_with_no_columns_takes_inserts_deletes_and_truncates);
	ADD(bench_refuses_a_progress_row_of_another_source);
	ADD(a_latin1_source_streams_into_a_utf8_target);
	ADD(a_leftover_progress_row_of_an_earlier_run_is_not_trusted);
	ADD(a_resumed_run_refuses_a_progress_row_of_another_run);
	ADD(a_production_schema_migrates_online_into_a_nosuperuser_target);
	ADD(a_migration_stopped_by_a_missing_row_goes_on_with_resume);
#undef ADD
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(prod_apply_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
