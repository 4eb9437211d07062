/*
 * check_tablecopy.c — the direct copy (tablecopy) between two real servers:
 * a source read in one exported snapshot while the application goes on
 * writing, into a target database owned by a NOSUPERUSER role.
 *
 * The stories:
 *  - every column type of the apply suite, a table larger than the range
 *    size (split into ranges, copied by three workers), a partitioned table
 *    (copied by its leaves), generated and identity columns, hostile names,
 *    a table without columns and accented text arrive equal to the snapshot,
 *    and nothing written after the snapshot is copied; in binary and in text;
 *  - a table the target lacks: a clear error naming it;
 *  - an interrupt stops the copy and says so.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coltypes.h"
#include "pgtest.h"
#include "tablecopy.h"

static pgt_cluster src_server, tgt_server;
static PGconn *admin_src, *admin_tgt, *src, *snap_conn;
static char src_conn[256];
static char snapshot[64];

/* Every table: the DDL runs on both sides (the copy moves rows, not schema). */
static const char schema_sql[] =
    COLTYPES_DDL ";"
                 "CREATE TABLE big (id int PRIMARY KEY, pad text);"
                 "CREATE TABLE parts (id int, region text, v numeric) PARTITION BY LIST (region);"
                 "CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');"
                 "CREATE TABLE parts_us PARTITION OF parts FOR VALUES IN ('us');"
                 "CREATE TABLE parts_rest PARTITION OF parts DEFAULT;"
                 "CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int,"
                 " doubled int GENERATED ALWAYS AS (a * 2) STORED);"
                 "CREATE SCHEMA \"Sch ema\";"
                 "CREATE TABLE \"Sch ema\".\"we\"\"ird ta.ble\" (\"Col\" text, \"sel ect\" int);"
                 "CREATE TABLE nocols ();"
                 "CREATE TABLE latin (id int PRIMARY KEY, t text)";

static void
create_types_table(PGconn *c)
{
	char sql[4096];

	pgt_exec(c, coltypes_sql(sql, sizeof(sql), "t_types", false));
}

static void
fill_source(void)
{
	char sql[8192];

	pgt_exec(src, coltypes_sql(sql, sizeof(sql), "t_types", true));
	pgt_exec(src, "INSERT INTO t_types (id) VALUES (2)"); /* and every column NULL */
	pgt_exec(src, "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g");
	pgt_exec(src, "INSERT INTO parts SELECT g, (ARRAY['eu','us','asia'])[g % 3 + 1], g / 7.0 "
	              "FROM generate_series(1, 3000) g");
	pgt_exec(src, "INSERT INTO gen (a) SELECT g FROM generate_series(1, 100) g");
	pgt_exec(src, "INSERT INTO \"Sch ema\".\"we\"\"ird ta.ble\" VALUES ('a''b', 1), (NULL, 2)");
	pgt_exec(src, "INSERT INTO nocols DEFAULT VALUES; INSERT INTO nocols DEFAULT VALUES");
	pgt_exec(src, "INSERT INTO latin VALUES (1, 'caf\u00e9 \u00fcber \u00e5ngstr\u00f6m')");
}

static void
setup(void)
{
	char conn[256];

	pgt_start(&src_server, NULL);
	pgt_start(&tgt_server, NULL);
	admin_src = pgt_connect(&src_server, "postgres");
	admin_tgt = pgt_connect(&tgt_server, "postgres");
	pgt_exec(admin_src, "CREATE DATABASE shop ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
	                    "TEMPLATE template0");
	pgt_connstr(&src_server, "shop", src_conn, sizeof(src_conn));
	src = PQconnectdb(src_conn);
	ck_assert_int_eq(PQstatus(src), CONNECTION_OK);
	pgt_exec(src, "SET client_encoding = 'UTF8'");
	pgt_exec(src, schema_sql);
	create_types_table(src);
	fill_source();
	/* the snapshot, held open by its exporting transaction as the slot's would be */
	snap_conn = PQconnectdb(src_conn);
	ck_assert_int_eq(PQstatus(snap_conn), CONNECTION_OK);
	pgt_exec(snap_conn, "SET client_encoding = 'UTF8'");
	pgt_exec(snap_conn, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	pgt_value(snap_conn, "SELECT pg_export_snapshot()", snapshot, sizeof(snapshot));
	/* the application goes on: none of this may reach the target */
	pgt_exec(src, "INSERT INTO big VALUES (100001, 'after'); DELETE FROM big WHERE id = 1;"
	              "UPDATE parts SET v = -1 WHERE id < 10; INSERT INTO gen (a) VALUES (-1)");
	(void)conn;
}

static void
teardown(void)
{
	PQfinish(snap_conn);
	PQfinish(src);
	PQfinish(admin_src);
	PQfinish(admin_tgt);
	pgt_stop(&src_server);
	pgt_stop(&tgt_server);
}

/* A fresh target database owned by the NOSUPERUSER role app, with the schema. */
static PGconn *
fresh_target(const char *db, char *conn, size_t size)
{
	PGconn *t;

	pgt_owned_database(admin_tgt, db, "app");
	pgt_connstr_as(&tgt_server, db, "app", conn, size);
	t = PQconnectdb(conn);
	ck_assert_int_eq(PQstatus(t), CONNECTION_OK);
	pgt_exec(t, schema_sql);
	create_types_table(t);
	return t;
}

static const char *const copied[] = {
    "t_types", "big", "parts", "gen", "\"Sch ema\".\"we\"\"ird ta.ble\"", "nocols", "latin"};
#define NCOPIED ((int)(sizeof(copied) / sizeof(copied[0])))

/* Describe, plan (ranges of range_pages) and run; the result, or fail with the message. */
static bool
copy_all(const char *tgt_conn, int jobs, bool binary, int64_t range_pages,
         volatile sig_atomic_t *interrupted, tablecopy_result *r, int *nitems, char *err,
         size_t errlen)
{
	tablecopy_table *tables;
	tablecopy_item *items;
	int ntables;
	tablecopy_opts o = {.source = src_conn,
	                    .target = tgt_conn,
	                    .snapshot = snapshot,
	                    .jobs = jobs,
	                    .binary = binary,
	                    .interrupted = interrupted};
	bool ok;

	ck_assert_msg(tablecopy_describe(src, copied, NCOPIED, &tables, &ntables, err, errlen), "%s",
	              err);
	ck_assert(tablecopy_plan(tables, ntables, range_pages, &items, nitems));
	ok = tablecopy_run(&o, tables, items, *nitems, r, err, errlen);
	free(items);
	tablecopy_free_tables(tables, ntables);
	return ok;
}

static void
assert_equal_to_snapshot(PGconn *t)
{
	for (int i = 0; i < NCOPIED; i++)
		pgt_assert_same(snap_conn, t, copied[i]);
}

START_TEST(every_table_arrives_as_it_was_at_the_snapshot)
{
	/* _i: 0 binary, 1 text */
	bool binary = _i == 0;
	char conn[256], err[2048];
	PGconn *t = fresh_target(binary ? "copy_binary" : "copy_text", conn, sizeof(conn));
	tablecopy_result r;
	int nitems;

	ck_assert_msg(copy_all(conn, 3, binary, 100, NULL, &r, &nitems, err, sizeof(err)), "%s", err);
	/* big (20000 rows of ~230 bytes: about 600 pages) is split into ranges of 100 pages */
	ck_assert_int_gt(nitems, NCOPIED + 3);
	ck_assert_int_eq(r.items, nitems);
	ck_assert(!r.interrupted);
	assert_equal_to_snapshot(t);
	{
		char v[64];

		/* generated columns computed again on the target, identities copied as they were */
		pgt_value(t, "SELECT count(*) FILTER (WHERE doubled = a * 2) || '/' || count(*) FROM gen",
		          v, sizeof(v));
		ck_assert_str_eq(v, "100/100");
		pgt_value(t, "SELECT count(*) FROM big WHERE id = 100001", v, sizeof(v));
		ck_assert_str_eq(v, "0");
		pgt_value(t, "SELECT count(*) FROM parts_us", v, sizeof(v));
		ck_assert_str_eq(v, "1000");
	}
	PQfinish(t);
}
END_TEST

START_TEST(a_table_the_target_lacks_is_named_in_the_error)
{
	char conn[256], err[2048];
	PGconn *t = fresh_target("copy_missing", conn, sizeof(conn));
	tablecopy_result r;
	int nitems;

	pgt_exec(t, "DROP TABLE latin");
	ck_assert(!copy_all(conn, 2, true, 0, NULL, &r, &nitems, err, sizeof(err)));
	ck_assert_msg(strstr(err, "latin") && strstr(err, "target"), "%s", err);
	PQfinish(t);
}
END_TEST

START_TEST(an_interrupt_stops_the_copy)
{
	static volatile sig_atomic_t stop = 1;
	char conn[256], err[2048];
	PGconn *t = fresh_target("copy_stopped", conn, sizeof(conn));
	tablecopy_result r;
	int nitems;

	ck_assert(!copy_all(conn, 2, true, 100, &stop, &r, &nitems, err, sizeof(err)));
	ck_assert(r.interrupted);
	ck_assert_msg(strstr(err, "interrupted"), "%s", err);
	PQfinish(t);
}
END_TEST

static Suite *
tablecopy_suite(void)
{
	Suite *s = suite_create("tablecopy");
	TCase *tc = tcase_create("direct copy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, every_table_arrives_as_it_was_at_the_snapshot, 0, 2);
	tcase_add_test(tc, a_table_the_target_lacks_is_named_in_the_error);
	tcase_add_test(tc, an_interrupt_stops_the_copy);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tablecopy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
