/*
 * check_copy_direct.c — migrations with --copy-method direct: the schema by
 * pg_dump and pg_restore, every table's rows by COPY from the source to the
 * target in the dump's snapshot. The target is reached as the NOSUPERUSER
 * role "app" that owns its database.
 *
 * The stories:
 *  - offline: every column type, a table larger than the range size (copied
 *    in ranges by three jobs), a partitioned table, generated and identity
 *    columns, hostile names, foreign keys and a trigger (built after the
 *    rows), a sequence, a materialized view and a large object: the target
 *    equals the source, and then --drop-target-first copies it all again;
 *  - online with writers, cut over by Ctrl+C: equal, nothing left behind;
 *  - kill -9 during the copy, then --resume: the copy starts over and the
 *    target ends equal, no row twice;
 *  - Ctrl+C during the copy: exit 3, no session of the copy left running;
 *  - the progress: under a pseudo-terminal the bar moves in place within one
 *    big part; with --json, Copy events within the part, with their fields;
 *  - offline, on a LATIN1 source with non-ASCII names: kill -9 during the
 *    copy, then --resume: started over, equal, nothing left;
 *  - online with --schema: Ctrl+C during the copy exits 3 with no COPY left
 *    running, and the --resume copies again, streams and cuts over, equal.
 *  - a post-data entry that fails (a name taken on the target) stops the run
 *    with pg_restore's error, during the copy or after it; with
 *    --allow-restore-errors the run completes with a warning.
 *  - the verify after an offline direct copy reads the target only, against
 *    the digest of the rows the copy passed from the source: on a LATIN1
 *    source, text and binary, a table split in parts, it ends equal; a
 *    trigger on the target that changes one row as it is copied makes the
 *    run fail, naming the table.
 * Every story that ends equal also compares pg_dump --schema-only of both
 * sides where it builds post-data: each entry restored once.
 */
#include "config.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coltypes.h"
#include "pgtest.h"
#include "story.h"

static story_servers sv;

/* The source's schema and rows: what users have, in the shapes the copy must carry. */
static void
build_source(PGconn *s, int big_rows)
{
	char sql[8192];

	pgt_exec(s, COLTYPES_DDL);
	pgt_exec(s, coltypes_sql(sql, sizeof(sql), "t_types", false));
	pgt_exec(s, coltypes_sql(sql, sizeof(sql), "t_types", true));
	pgt_exec(s, "INSERT INTO t_types (id) VALUES (2)");
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE big (id int PRIMARY KEY, pad text);"
	         "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, %d) g",
	         big_rows);
	pgt_exec(s, sql);
	pgt_exec(s, "CREATE TABLE parts (id int, region text, v numeric) PARTITION BY LIST (region);"
	            "CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');"
	            "CREATE TABLE parts_rest PARTITION OF parts DEFAULT;"
	            "INSERT INTO parts SELECT g, (ARRAY['eu','us'])[g % 2 + 1], g / 3.0 "
	            "FROM generate_series(1, 2000) g");
	pgt_exec(s, "CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int,"
	            " doubled int GENERATED ALWAYS AS (a * 2) STORED);"
	            "INSERT INTO gen (a) SELECT g FROM generate_series(1, 100) g");
	pgt_exec(s, "CREATE SCHEMA \"Sch ema\";"
	            "CREATE TABLE \"Sch ema\".\"we\"\"ird ta.ble\" (\"Col\" text PRIMARY KEY);"
	            "INSERT INTO \"Sch ema\".\"we\"\"ird ta.ble\" VALUES ('a''b'), ('c')");
	pgt_exec(s, "CREATE TABLE customers (id serial PRIMARY KEY, name text);"
	            "CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL REFERENCES "
	            "customers ON DELETE CASCADE, total numeric);"
	            "CREATE TABLE audit (id serial PRIMARY KEY, what text);"
	            "CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
	            "INSERT INTO audit (what) VALUES ('order ' || NEW.id); RETURN NEW; END$$;"
	            "CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE "
	            "FUNCTION audit_order();"
	            "INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 300) g;"
	            "INSERT INTO orders (customer, total) SELECT 1 + g % 300, g FROM "
	            "generate_series(1, 3000) g;"
	            "CREATE INDEX orders_customer ON orders (customer);"
	            "CREATE MATERIALIZED VIEW order_totals AS SELECT customer, sum(total) AS total "
	            "FROM orders GROUP BY customer;"
	            "CREATE SEQUENCE invoice_no START 1000; SELECT setval('invoice_no', 4242);"
	            "SELECT lo_from_bytea(0, 'a large object')");
	/* more post-data, of one table and across tables, built while or after the rows copy */
	pgt_exec(s, "ALTER TABLE customers ADD CONSTRAINT customers_name_key UNIQUE (name);"
	            "ALTER TABLE orders ADD CONSTRAINT orders_total_positive CHECK (total > 0) "
	            "NOT VALID;"
	            "CREATE INDEX big_pad ON big (pad) WHERE id % 100 = 0;"
	            "COMMENT ON INDEX big_pad IS 'one row in a hundred';"
	            "CREATE UNIQUE INDEX parts_id ON parts (id, region);"
	            "CREATE INDEX gen_doubled ON gen (doubled);"
	            "CREATE STATISTICS orders_stats ON customer, total FROM orders;"
	            "ALTER TABLE audit ENABLE ROW LEVEL SECURITY;"
	            "CREATE POLICY audit_all ON audit USING (true);"
	            "CREATE RULE big_no_delete AS ON DELETE TO big WHERE old.id = -42 DO INSTEAD "
	            "NOTHING;"
	            "ALTER TABLE audit ADD COLUMN order_id int REFERENCES orders (id) "
	            "DEFERRABLE INITIALLY DEFERRED");
}

/* pg_dump --schema-only of the database a connection string names, without owners or grants. */
static char *
schema_of(const char *connstr)
{
	char pg_dump[512];
	const char *argv[] = {pgt_bin("pg_dump", pg_dump, sizeof(pg_dump)),
	                      "--schema-only",
	                      "--no-owner",
	                      "--no-privileges",
	                      "--dbname",
	                      connstr,
	                      NULL};
	pgt_proc p;
	char *out, *err, *w;
	int rc;

	pgt_spawn(&p, argv, NULL);
	rc = story_finish(&p, 60, &out, &err);
	ck_assert_msg(rc == 0, "pg_dump --schema-only exited %d: %s", rc, story_tail(err));
	free(err);
	/* without its comments and the random key of \restrict (newer pg_dump) */
	w = out;
	for (char *line = out; *line;)
	{
		char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);

		if (strncmp(line, "--", 2) != 0 && strncmp(line, "\\restrict", 9) != 0 &&
		    strncmp(line, "\\unrestrict", 11) != 0 && line[0] != '\n')
		{
			memmove(w, line, len);
			w += len;
		}
		line += len;
	}
	*w = '\0';
	return out;
}

/* The target's schema is the source's: every post-data entry restored, each once. */
static void
assert_same_schema(const char *src, const char *tgt)
{
	char *a = schema_of(src), *b = schema_of(tgt);

	ck_assert_msg(strstr(a, "CREATE POLICY audit_all") && strstr(a, "big_no_delete"),
	              "the source's schema lacks what the test built");
	size_t at = 0;

	while (a[at] && a[at] == b[at])
		at++;
	at = at > 300 ? at - 300 : 0;
	ck_assert_msg(strcmp(a, b) == 0, "the schemas differ:\n--- source\n%.600s\n--- target\n%.600s",
	              a + at, b + at);
	free(a);
	free(b);
}

static const char *const tables[] = {
    "t_types",   "big",    "parts", "gen",         "\"Sch ema\".\"we\"\"ird ta.ble\"",
    "customers", "orders", "audit", "order_totals"};

static void
assert_equal(PGconn *s, PGconn *t)
{
	char a[64], b[64];

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		pgt_assert_same(s, t, tables[i]);
	ck_assert_str_eq(pgt_value(t, "SELECT last_value FROM invoice_no", a, sizeof(a)), "4242");
	ck_assert_str_eq(pgt_value(t, "SELECT count(*) FROM pg_largeobject_metadata", a, sizeof(a)),
	                 pgt_value(s, "SELECT count(*) FROM pg_largeobject_metadata", b, sizeof(b)));
	/* the post-data was built on the copied rows: the foreign key is there and valid */
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND "
	                           "convalidated AND conrelid = 'orders'::regclass",
	                           a, sizeof(a)),
	                 "1");
}

/* The number of "Copy" events of a part done (one per part, at most one a second). */
static void
assert_copied_in_ranges(const char *err)
{
	const char *done = strstr(err, "stage=Copy");

	ck_assert_msg(done && strstr(err, "copy done"), "no Copy events: %s", story_tail(err));
	/* big is about 700 pages: with 1MB ranges it is copied in several parts */
	ck_assert_msg(strstr(err, "parts=") != NULL, "no parts in the Copy events: %s",
	              story_tail(err));
}

START_TEST(an_offline_direct_copy_equals_the_source_and_copies_again_over_it)
{
	char src[256], tgt[256], dump[512], dump2[512];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_off");
	story_connstrs(&sv, "direct_off", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_off");
	build_source(s, 20000);
	pgt_scratch("direct-off-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--copy-method", "direct", "--jobs", "3",
	                                    "--split-tables-larger-than", "1MB", "--no-owner",
	                                    "--with-comments", "--verify", "strict", NULL},
	              NULL);
	rc = story_finish(&tool, 240, &out, &err);
	ck_assert_msg(rc == 0, "direct offline migration exited %d: %s", rc, story_tail(err));
	assert_copied_in_ranges(err);
	ck_assert_msg(strstr(err, "verified=equal"), "not verified equal: %s", story_tail(err));
	/* every column type checked against the copy's digest: the tables but the
	   materialized view, read on the target only */
	ck_assert_msg(strstr(err, "read_on_target_only=8"), "not read on the target only: %s",
	              story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_off", "app");
	assert_equal(s, t);
	assert_same_schema(src, tgt);
	/* the cascade and the trigger work on the target */
	pgt_exec(t, "INSERT INTO orders (customer, total) VALUES (1, 1); DELETE FROM customers "
	            "WHERE id = 1");
	free(out);
	free(err);

	/* again, over what is there: --drop-target-first */
	pgt_exec(s, "INSERT INTO big VALUES (-1, 'second run')");
	pgt_scratch("direct-off-dump2", dump2, sizeof(dump2));
	story_migrate(&tool, "offline", src, tgt, dump2,
	              (const char *const[]){"--copy-method", "direct", "--jobs", "2",
	                                    "--drop-target-first", "--no-owner", "--with-comments",
	                                    NULL},
	              NULL);
	rc = story_finish(&tool, 240, &out, &err);
	ck_assert_msg(rc == 0, "second direct migration exited %d: %s", rc, story_tail(err));
	PQfinish(t);
	t = pgt_connect_as(&sv.tgt, "direct_off", "app");
	assert_equal(s, t);
	assert_same_schema(src, tgt);
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(filters_copy_only_the_tables_in_scope)
{
	char src[256], tgt[256], dump[512], v[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_filt");
	story_connstrs(&sv, "direct_filt", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_filt");
	pgt_exec(s, "CREATE SCHEMA app; CREATE SCHEMA scratch;"
	            "CREATE TABLE app.keep (id int PRIMARY KEY, v text);"
	            "CREATE TABLE app.skip (id int PRIMARY KEY);"
	            "CREATE TABLE scratch.junk (id int);"
	            "INSERT INTO app.keep SELECT g, 'v' || g FROM generate_series(1, 5000) g;"
	            "INSERT INTO app.skip VALUES (1); INSERT INTO scratch.junk VALUES (1)");
	pgt_scratch("direct-filt-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--copy-method", "direct", "--schema", "app",
	                                    "--exclude-table", "app.skip", "--no-owner", NULL},
	              NULL);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "filtered direct migration exited %d: %s", rc, story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_filt", "app");
	pgt_assert_same(s, t, "app.keep");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(schemaname || '.' || tablename, ',' "
	                           "ORDER BY schemaname, tablename) "
	                           "FROM pg_tables WHERE schemaname IN ('app', 'scratch')",
	                           v, sizeof(v)),
	                 "app.keep");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(an_online_direct_copy_with_writers_cut_over_by_ctrl_c)
{
	char src[256], tgt[256], dump[512], script[512];
	PGconn *s, *t;
	pgt_proc writers, tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_on");
	story_connstrs(&sv, "direct_on", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_on");
	story_pgbench_init(src);
	pgt_exec(s, "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY");
	story_file("direct-writers.sql",
	           "\\set aid random(1, 100000)\n"
	           "\\set delta random(-5000, 5000)\n"
	           "BEGIN;\n"
	           "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
	           "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, "
	           ":delta, now());\n"
	           "END;\n",
	           script, sizeof(script));
	story_pgbench_start(
	    &writers, (const char *const[]){"-n", "-c", "3", "-T", "8", "-f", script, src, NULL}, NULL);
	pgt_scratch("direct-on-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump,
	              (const char *const[]){"--copy-method", "direct", "--jobs", "2",
	                                    "--split-tables-larger-than", "1MB", "--no-owner",
	                                    "--cutover-poll-secs", "1", "--verify", "strict", NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 120);
	story_pgbench_done(&writers, 60);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "direct online migration exited %d: %s", rc, story_tail(err));
	assert_copied_in_ranges(err);
	t = pgt_connect_as(&sv.tgt, "direct_on", "app");
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

/* A source in database db with a big table, and a direct copy of it started. */
typedef struct big_copy
{
	char src[256], tgt[256], dump[512];
	PGconn *s; /* owned by the story */
} big_copy;

static void
big_copy_start(big_copy *b, const char *db, const char *mode, const char *jobs, pgt_proc *tool)
{
	story_app_databases(&sv, db);
	story_connstrs(&sv, db, b->src, b->tgt, sizeof(b->src));
	b->s = pgt_connect(&sv.src, db);
	build_source(b->s, 400000);
	pgt_scratch(db, b->dump, sizeof(b->dump));
	story_migrate(tool, mode, b->src, b->tgt, b->dump,
	              (const char *const[]){"--copy-method", "direct", "--jobs", jobs,
	                                    "--split-tables-larger-than", "1MB", "--no-owner",
	                                    "--with-comments", NULL},
	              NULL);
}

START_TEST(killed_during_the_copy_the_resume_starts_the_copy_over)
{
	big_copy b;
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	/* one job, small ranges: the kill lands with part of big copied */
	big_copy_start(&b, "direct_kill", "online", "1", &tool);
	s = b.s;
	story_expect(&tool, "stage=Copy", 120);
	story_expect(&tool, "parts_done=", 120);
	story_kill_9(&tool);
	/* the application goes on meanwhile */
	pgt_exec(s, "INSERT INTO big VALUES (-7, 'while nobody ran'); UPDATE gen SET a = -1 "
	            "WHERE id < 5");
	story_migrate(&tool, "online", b.src, b.tgt, b.dump,
	              (const char *const[]){"--copy-method", "direct", "--jobs", "1",
	                                    "--split-tables-larger-than", "1MB", "--no-owner",
	                                    "--with-comments", "--resume", "--cutover-poll-secs", "1",
	                                    NULL},
	              NULL);
	story_expect(&tool, "stage=CaughtUp", 180);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "starting from the beginning"), "not started over: %s",
	              story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_kill", "app");
	assert_equal(s, t);
	assert_same_schema(b.src, b.tgt);
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(ctrl_c_during_the_copy_exits_3_and_leaves_no_session_running)
{
	big_copy b;
	char n[64];
	pgt_proc tool;
	char *out, *err;
	int rc;

	big_copy_start(&b, "direct_stop", "offline", "2", &tool);
	story_expect(&tool, "copying", 120);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 3, "Ctrl+C during the copy exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "interrupted"), "no word of the interrupt: %s", story_tail(err));
	/* no COPY left running on either side */
	for (int i = 0; i < 50; i++)
	{
		pgt_value(sv.src_admin,
		          "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY%' AND pid <> "
		          "pg_backend_pid()",
		          n, sizeof(n));
		if (strcmp(n, "0") == 0)
			break;
		usleep(100 * 1000);
	}
	ck_assert_str_eq(n, "0");
	ck_assert_str_eq(pgt_value(sv.tgt_admin,
	                           "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY%' "
	                           "AND state = 'active'",
	                           n, sizeof(n)),
	                 "0");
	free(out);
	free(err);
	PQfinish(b.s);
}
END_TEST

/* How many times text holds needle. */
static int
occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

START_TEST(the_copy_shows_its_progress_within_a_part_on_a_terminal_and_in_json)
{
	char src[256], tgt[256], dump[512], dump2[512], cmd[2048];
	PGconn *s;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_prog");
	story_connstrs(&sv, "direct_prog", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_prog");
	/* one table of about 100 MB, copied as one part by one job */
	pgt_exec(s, "CREATE TABLE big (id int PRIMARY KEY, pad text);"
	            "INSERT INTO big SELECT g, repeat('x', 500) FROM generate_series(1, 200000) g");
	pgt_scratch("direct-prog-dump", dump, sizeof(dump));
	/* under a pseudo-terminal (160 columns wide), as an operator runs it */
	snprintf(
	    cmd, sizeof(cmd),
	    "stty cols 160; '%s' --mode offline --source '%s' --target '%s' --dump-path '%s' --jobs 1 "
	    "--split-tables-larger-than 1GB --no-owner --verify off",
	    pgt_tool(), src, tgt, dump);
	/* script(1) of util-linux: the tool's terminal is a pseudo-terminal, its output ours */
	pgt_spawn(&tool,
	          (const char *const[]){access("/usr/bin/script", X_OK) == 0 ? "/usr/bin/script"
	                                                                     : "/bin/script",
	                                "-qec", cmd, "/dev/null", NULL},
	          NULL);
	rc = story_finish(&tool, 180, &out, &err);
	ck_assert_msg(rc == 0, "the run under a terminal exited %d: %s", rc, story_tail(out));
	/* the bar is written over itself (carriage returns), more than once within the one part */
	ck_assert_msg(occurrences(out, "\rCopy [") >= 3 && occurrences(out, "0/1 parts") >= 2,
	              "the bar did not move within the part: %s", story_tail(out));
	ck_assert_msg(strstr(out, "| public.big ") && strstr(out, "MB/s") && strstr(out, "ETA"),
	              "the bar lacks the table, the rate or the ETA: %s", story_tail(out));
	ck_assert_msg(strstr(out, "1/1 parts") && strstr(out, "200000 rows"),
	              "the bar did not end with the rows: %s", story_tail(out));
	free(out);
	free(err);

	/* --json: Copy events within the part and at its end, with the fields */
	pgt_scratch("direct-prog-dump2", dump2, sizeof(dump2));
	story_migrate(&tool, "offline", src, tgt, dump2,
	              (const char *const[]){"--json", "--jobs", "1", "--split-tables-larger-than",
	                                    "1GB", "--no-owner", "--verify", "off",
	                                    "--drop-target-first", NULL},
	              NULL);
	rc = story_finish(&tool, 180, &out, &err);
	ck_assert_msg(rc == 0, "the --json run exited %d: %s", rc, story_tail(err));
	{
		const char *events = strstr(out, "\"stage\":\"Copy\"") ? out : err;
		const char *tick = strstr(events, "\"parts_done\":0,");

		ck_assert_msg(tick != NULL, "no Copy event within the part: %s", story_tail(events));
		ck_assert_msg(
		    strstr(events, "\"table\":\"public.big\"") && strstr(events, "\"table_bytes\":") &&
		        strstr(events, "\"table_bytes_expected\":") &&
		        strstr(events, "\"table_rows\":200000") && strstr(events, "\"bytes_expected\":") &&
		        strstr(events, "\"rows\":") && strstr(events, "\"mb_per_second\":") &&
		        strstr(events, "\"eta_seconds\":"),
		    "the Copy events lack fields: %s", story_tail(events));
	}
	free(out);
	free(err);
	PQfinish(s);
}
END_TEST

/* A table's rows as UTF-8, in id order, hashed: comparable across database encodings. */
static const char *
utf8_rows(PGconn *c, const char *table, char *buf, size_t size)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "SELECT count(*) || ' ' || coalesce(md5(string_agg(convert_to(x::text, 'UTF8'), "
	         "'\\x0a'::bytea ORDER BY x.id)), '') FROM %s x",
	         table);
	return pgt_value(c, sql, buf, size);
}

START_TEST(offline_on_a_latin1_source_killed_during_the_copy_the_resume_ends_equal)
{
	char src[256], tgt[256], dump[512], a[128], b[128];
	const char *const more[] = {
	    "--copy-method", "direct",     "--jobs", "1", "--split-tables-larger-than",
	    "1MB",           "--no-owner", NULL};
	const char *const resume[] = {
	    "--copy-method", "direct",     "--jobs",   "1", "--split-tables-larger-than",
	    "1MB",           "--no-owner", "--resume", NULL};
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_latin"); /* the role app on both sides */
	pgt_exec(sv.src_admin, "DROP DATABASE IF EXISTS direct_latin WITH (FORCE)");
	pgt_exec(sv.src_admin, "CREATE DATABASE direct_latin ENCODING 'LATIN1' LC_COLLATE 'C' "
	                       "LC_CTYPE 'C' TEMPLATE template0 OWNER app");
	story_connstrs(&sv, "direct_latin", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_latin");
	pgt_exec(s, "SET client_encoding TO 'UTF8'");
	pgt_exec(s, "CREATE TABLE \"größe\" (id int PRIMARY KEY, \"maß\" text);"
	            "INSERT INTO \"größe\" SELECT g, repeat('groß ä ', 30) || g FROM "
	            "generate_series(1, 300000) g;"
	            "CREATE INDEX \"größe_maß\" ON \"größe\" (\"maß\");"
	            "CREATE TABLE menu (id int PRIMARY KEY, place text, dish text);"
	            "INSERT INTO menu VALUES (1, 'café', 'crème brûlée'), (2, 'Zürich', 'rösti')");
	pgt_scratch("direct-latin-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump, more, NULL);
	/* one job, 1MB ranges: the kill lands with part of "größe" copied */
	story_expect(&tool, "parts_done=", 120);
	story_kill_9(&tool);
	pgt_exec(s, "INSERT INTO menu VALUES (3, 'Genève', 'fondue')");
	story_migrate(&tool, "offline", src, tgt, dump, resume, NULL);
	rc = story_finish(&tool, 240, &out, &err);
	ck_assert_msg(rc == 0, "the resumed run exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "starting from the beginning"), "not started over: %s",
	              story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_latin", "app");
	pgt_exec(t, "SET client_encoding TO 'UTF8'");
	ck_assert_str_eq(utf8_rows(t, "\"größe\"", a, sizeof(a)),
	                 utf8_rows(s, "\"größe\"", b, sizeof(b)));
	ck_assert_str_eq(utf8_rows(t, "menu", a, sizeof(a)), utf8_rows(s, "menu", b, sizeof(b)));
	ck_assert_str_eq(pgt_value(t, "SELECT dish FROM menu WHERE id = 3", a, sizeof(a)), "fondue");
	ck_assert_str_eq(
	    pgt_value(t, "SELECT count(*) FROM pg_indexes WHERE indexname = 'größe_maß'", a, sizeof(a)),
	    "1");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

/*
 * The verify reads the target only, its rows hashed against the digest the copy
 * took of the source's rows as it passed them: equal on a LATIN1 source (a
 * table in binary, one in text through a composite type, one split in
 * parts); then a trigger on the target changes one row as it is copied, and
 * the run does not end clean: the verify names the table.
 */
START_TEST(the_verify_checks_the_target_against_the_copied_rows_and_finds_a_changed_one)
{
	char src[256], tgt[256], dump[512], dump2[512];
	const char *const more[] = {"--copy-method",
	                            "direct",
	                            "--jobs",
	                            "2",
	                            "--split-tables-larger-than",
	                            "1MB",
	                            "--no-owner",
	                            "--verify",
	                            "strict",
	                            "--drop-target-first",
	                            NULL};
	PGconn *s, *t, *tadmin;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_digest");
	pgt_exec(sv.src_admin, "DROP DATABASE IF EXISTS direct_digest WITH (FORCE)");
	pgt_exec(sv.src_admin, "CREATE DATABASE direct_digest ENCODING 'LATIN1' LC_COLLATE 'C' "
	                       "LC_CTYPE 'C' TEMPLATE template0 OWNER app");
	story_connstrs(&sv, "direct_digest", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_digest");
	pgt_exec(s, "SET client_encoding TO 'UTF8'");
	pgt_exec(s,
	         "CREATE TYPE pair AS (a int, b text);"
	         "CREATE TABLE big (id int PRIMARY KEY, pad text, at timestamptz, by bytea);"
	         "INSERT INTO big SELECT g, repeat('groß ä ', 20) || g, '2026-12-02 10:00+01'::"
	         "timestamptz + g * interval '1 minute', '\\x00ff'::bytea FROM "
	         "generate_series(1, 20000) g;"
	         "CREATE TABLE menu (id int PRIMARY KEY, place text, dish pair, iv interval, f float8);"
	         "INSERT INTO menu VALUES (1, 'café', ROW(1, 'crème brûlée'), '1 day -02:00', 0.1),"
	         " (2, 'Zürich', ROW(2, 'rösti'), '-3 mons', -0.0), (3, NULL, NULL, NULL, NULL);"
	         /* OID aliases: their text is a name the target resolves again, their binary
	               form the source's OID */
	         "CREATE TABLE refs (id int PRIMARY KEY, r regclass, t regtype[]);"
	         "INSERT INTO refs VALUES (1, 'big', '{pair,int4}')");
	pgt_scratch("direct-digest-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump, more, NULL);
	rc = story_finish(&tool, 240, &out, &err);
	ck_assert_msg(rc == 0, "the direct migration exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "verified=equal") && strstr(err, "read_on_target_only=3"),
	              "not verified equal on the target only: %s", story_tail(err));
	assert_copied_in_ranges(err);
	t = pgt_connect_as(&sv.tgt, "direct_digest", "app");
	{
		char v[64];

		ck_assert_str_eq(pgt_value(t, "SELECT r::text || ' ' || t::text FROM refs", v, sizeof(v)),
		                 "big {pair,integer}");
	}
	PQfinish(t);
	free(out);
	free(err);

	/* the target changes one row of big as it is copied: a trigger the table gets as
	   the schema pass creates it */
	tadmin = pgt_connect(&sv.tgt, "direct_digest");
	pgt_exec(tadmin,
	         "CREATE FUNCTION public.tamper_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
	         "IF NEW.id = 4242 THEN NEW.pad := 'changed on the target'; END IF; RETURN NEW; END$$;"
	         "CREATE FUNCTION public.tamper_on_create() RETURNS event_trigger LANGUAGE plpgsql "
	         "AS $$BEGIN IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() WHERE "
	         "object_identity = 'public.big' AND command_tag = 'CREATE TABLE') THEN EXECUTE "
	         "'CREATE TRIGGER tamper BEFORE INSERT ON public.big FOR EACH ROW EXECUTE FUNCTION "
	         "public.tamper_row()'; END IF; END$$;"
	         "CREATE EVENT TRIGGER tamper ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
	         "EXECUTE FUNCTION public.tamper_on_create()");
	pgt_scratch("direct-digest-dump2", dump2, sizeof(dump2));
	story_migrate(&tool, "offline", src, tgt, dump2, more, NULL);
	rc = story_finish(&tool, 240, &out, &err);
	ck_assert_msg(rc != 0, "a target that differs exited clean: %s", story_tail(err));
	ck_assert_msg(strstr(err, "read_on_target_only=3") && strstr(err, "differ: public.big"),
	              "the verify did not name big: %s", story_tail(err));
	/* menu, copied as text, is equal: only big is named */
	ck_assert_msg(!strstr(err, "differ: public.big, ") && !strstr(err, "public.menu, public.big"),
	              "menu named too: %s", story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_digest", "app");
	{
		char v[64];

		ck_assert_str_eq(pgt_value(t, "SELECT pad FROM big WHERE id = 4242", v, sizeof(v)),
		                 "changed on the target");
	}
	pgt_exec(tadmin, "DROP EVENT TRIGGER tamper");
	free(out);
	free(err);
	PQfinish(tadmin);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(online_filtered_ctrl_c_during_the_copy_exits_3_and_the_resume_ends_equal)
{
	char src[256], tgt[256], dump[512], v[128], n[64];
	const char *const more[] = {"--copy-method",
	                            "direct",
	                            "--jobs",
	                            "2",
	                            "--split-tables-larger-than",
	                            "1MB",
	                            "--no-owner",
	                            "--schema",
	                            "app",
	                            "--cutover-poll-secs",
	                            "1",
	                            NULL};
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_onstop");
	story_connstrs(&sv, "direct_onstop", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_onstop");
	pgt_exec(s, "CREATE SCHEMA app; CREATE SCHEMA scratch;"
	            "CREATE TABLE app.big (id int PRIMARY KEY, pad text);"
	            "INSERT INTO app.big SELECT g, repeat('x', 200) FROM generate_series(1, 400000) g;"
	            "CREATE TABLE app.small (id int PRIMARY KEY, big int REFERENCES app.big);"
	            "INSERT INTO app.small SELECT g, g FROM generate_series(1, 1000) g;"
	            "CREATE TABLE scratch.junk (id int); INSERT INTO scratch.junk VALUES (1)");
	pgt_scratch("direct-onstop-dump", dump, sizeof(dump));
	story_migrate(&tool, "online", src, tgt, dump, more, NULL);
	story_expect(&tool, "copying", 120);
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 60, &out, &err);
	ck_assert_msg(rc == 3, "Ctrl+C during the online copy exited %d: %s", rc, story_tail(err));
	free(out);
	free(err);
	/* no COPY left running on either side */
	for (int i = 0; i < 50; i++)
	{
		pgt_value(sv.src_admin,
		          "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY%' AND pid <> "
		          "pg_backend_pid() AND datname = 'direct_onstop'",
		          n, sizeof(n));
		if (strcmp(n, "0") == 0)
			break;
		usleep(100 * 1000);
	}
	ck_assert_str_eq(n, "0");
	ck_assert_str_eq(pgt_value(sv.tgt_admin,
	                           "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'COPY%' "
	                           "AND state = 'active' AND datname = 'direct_onstop'",
	                           n, sizeof(n)),
	                 "0");
	/* the resume starts the copy over, streams what came meanwhile, and cuts over */
	pgt_exec(s, "INSERT INTO app.big VALUES (-1, 'meanwhile'); INSERT INTO app.small VALUES "
	            "(-1, -1)");
	{
		const char *const resume[] = {"--copy-method",
		                              "direct",
		                              "--jobs",
		                              "2",
		                              "--split-tables-larger-than",
		                              "1MB",
		                              "--no-owner",
		                              "--schema",
		                              "app",
		                              "--cutover-poll-secs",
		                              "1",
		                              "--resume",
		                              NULL};

		story_migrate(&tool, "online", src, tgt, dump, resume, NULL);
	}
	story_expect(&tool, "stage=CaughtUp", 180);
	pgt_exec(s, "UPDATE app.big SET pad = 'after' WHERE id = 7");
	kill(tool.pid, SIGINT);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "the resumed online run exited %d: %s", rc, story_tail(err));
	t = pgt_connect_as(&sv.tgt, "direct_onstop", "app");
	pgt_assert_same(s, t, "app.big");
	pgt_assert_same(s, t, "app.small");
	ck_assert_str_eq(pgt_value(t,
	                           "SELECT string_agg(schemaname || '.' || tablename, ',' "
	                           "ORDER BY schemaname, tablename) "
	                           "FROM pg_tables WHERE schemaname IN ('app', 'scratch')",
	                           v, sizeof(v)),
	                 "app.big,app.small");
	story_assert_nothing_left(s, t, "");
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

START_TEST(a_post_data_error_stops_the_run_unless_restore_errors_are_allowed)
{
	char src[256], tgt[256], dump[512], dump2[512], v[64];
	PGconn *s, *t;
	pgt_proc tool;
	char *out, *err;
	int rc;

	story_app_databases(&sv, "direct_posterr");
	story_connstrs(&sv, "direct_posterr", src, tgt, sizeof(src));
	s = pgt_connect(&sv.src, "direct_posterr");
	pgt_exec(s, "CREATE TABLE big (id int PRIMARY KEY, pad text);"
	            "INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 30000) g;"
	            "CREATE TABLE victim (id int PRIMARY KEY, v text);"
	            "INSERT INTO victim SELECT g, 'v' || g FROM generate_series(1, 100) g;"
	            "CREATE INDEX victim_v ON victim (v)");
	/* the target already has something by the index's name (a sequence is not a table) */
	t = pgt_connect_as(&sv.tgt, "direct_posterr", "app");
	pgt_exec(t, "CREATE SEQUENCE victim_v");
	pgt_scratch("direct-posterr-dump", dump, sizeof(dump));
	story_migrate(&tool, "offline", src, tgt, dump,
	              (const char *const[]){"--jobs", "2", "--split-tables-larger-than", "1MB",
	                                    "--no-owner", NULL},
	              NULL);
	rc = story_finish(&tool, 120, &out, &err);
	/* while the copy goes on or after it, as the timing falls: the same error */
	ck_assert_msg(rc == 1, "a failed post-data exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "exited with 1") && strstr(err, "--allow-restore-errors"),
	              "no word of pg_restore's error: %s", story_tail(err));
	free(out);
	free(err);
	/* accepted: the run completes, the rows are there, the index is not */
	pgt_scratch("direct-posterr-dump2", dump2, sizeof(dump2));
	story_migrate(&tool, "offline", src, tgt, dump2,
	              (const char *const[]){"--jobs", "2", "--split-tables-larger-than", "1MB",
	                                    "--no-owner", "--allow-restore-errors",
	                                    "--drop-target-first", "--verify", "off", NULL},
	              NULL);
	rc = story_finish(&tool, 120, &out, &err);
	ck_assert_msg(rc == 0, "with --allow-restore-errors exited %d: %s", rc, story_tail(err));
	ck_assert_msg(strstr(err, "--allow-restore-errors"), "no warning: %s", story_tail(err));
	pgt_assert_same(s, t, "big");
	pgt_assert_same(s, t, "victim");
	ck_assert_str_eq(
	    pgt_value(t, "SELECT count(*) FROM pg_indexes WHERE tablename = 'victim'", v, sizeof(v)),
	    "1"); /* its primary key */
	free(out);
	free(err);
	PQfinish(s);
	PQfinish(t);
}
END_TEST

int
main(void)
{
	const story_plan plan = {"copy_direct", "direct", 400,  &sv,  STORY_SOURCE_CONF,
	                         NULL,          NULL,     NULL, NULL, "PGDBM_DIRECT_ONLY"};
	const TTest *const stories[] = {
	    an_offline_direct_copy_equals_the_source_and_copies_again_over_it,
	    filters_copy_only_the_tables_in_scope,
	    an_online_direct_copy_with_writers_cut_over_by_ctrl_c,
	    killed_during_the_copy_the_resume_starts_the_copy_over,
	    ctrl_c_during_the_copy_exits_3_and_leaves_no_session_running,
	    the_copy_shows_its_progress_within_a_part_on_a_terminal_and_in_json,
	    offline_on_a_latin1_source_killed_during_the_copy_the_resume_ends_equal,
	    online_filtered_ctrl_c_during_the_copy_exits_3_and_the_resume_ends_equal,
	    a_post_data_error_stops_the_run_unless_restore_errors_are_allowed,
	    the_verify_checks_the_target_against_the_copied_rows_and_finds_a_changed_one,
	    NULL};

	return story_run_suite(story_suite(&plan, stories));
}
