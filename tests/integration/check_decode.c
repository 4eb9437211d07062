/*
 * check_decode.c — `pg_dbmigrator decode` against a real server.
 *
 * The stories:
 *  - an operator watches a slot: every change made on the source appears,
 *    exactly, one line each (inserts, key and full-row updates and deletes,
 *    unchanged TOAST columns, a two-table TRUNCATE, logical messages); the
 *    backlog read through SQL prints exactly what the stream prints, in
 *    one chunk or in chunks smaller than a transaction;
 *  - they stop at --endpos, come back later, and see only what they had not
 *    seen (nothing acknowledged is shown twice, nothing unshown is lost);
 *  - their terminal stops reading for longer than wal_sender_timeout while
 *    the ring is full: the connection survives and nothing is lost;
 *  - a DBA terminates the walsender: the tool exits non-zero with a clear
 *    error, and the slot was never advanced past what was written out.
 */
#include "config.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgoutput.h"
#include "pgtest.h"

static pgt_cluster server;
static PGconn *conn;
static char source[256];

static void
setup(void)
{
	/* a short wal_sender_timeout makes a stalled client visible within the test */
	pgt_start(&server, "wal_sender_timeout = 2s\nmax_replication_slots = 10\n");
	conn = pgt_connect(&server, "postgres");
	pgt_connstr(&server, "postgres", source, sizeof(source));
	pgt_exec(conn, "CREATE TABLE t (id int PRIMARY KEY, name text, big text)");
	pgt_exec(conn, "ALTER TABLE t ALTER big SET STORAGE EXTERNAL");
	pgt_exec(conn, "CREATE TABLE f (a int, b text)");
	pgt_exec(conn, "ALTER TABLE f REPLICA IDENTITY FULL");
	pgt_exec(conn, "CREATE TABLE bulk (id int PRIMARY KEY, payload text)");
	pgt_exec(conn, "CREATE PUBLICATION pub FOR TABLE t, f, bulk");
}

static void
teardown(void)
{
	PQfinish(conn);
	pgt_stop(&server);
}

/* Run decode with extra arguments to its exit; stdout and stderr returned. */
static int
run_decode(const char *slot, const char *const extra[], char **out, char **err)
{
	const char *argv[32] = {pgt_tool(), "decode",        "--source", source,     "--slot-name",
	                        slot,       "--publication", "pub",      "--output", "-"};
	int n = 10;
	pgt_proc p;
	int rc;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pgt_spawn(&p, argv, NULL);
	*out = pgt_slurp(&p);
	rc = pgt_wait(&p, 60);
	*err = pgt_stderr(&p);
	return rc;
}

/* The source's current WAL position, as text. */
static const char *
current_lsn(char *buf, size_t size)
{
	return pgt_value(conn, "SELECT pg_current_wal_lsn()", buf, size);
}

/* Lines of out that are not BEGIN/COMMIT/RELATION/TYPE, joined with \n, into buf. */
static void
change_lines(const char *out, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (const char *line = out; *line;)
	{
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (strncmp(line, "BEGIN ", 6) != 0 && strncmp(line, "COMMIT ", 7) != 0 &&
		    strncmp(line, "RELATION ", 9) != 0 && strncmp(line, "TYPE ", 5) != 0 && n > 0)
		{
			ck_assert_msg(len + n + 2 < size, "output too long");
			memcpy(buf + len, line, n);
			len += n;
			buf[len++] = '\n';
			buf[len] = '\0';
		}
		line = nl ? nl + 1 : line + n;
	}
}

/* Count occurrences of needle in hay. */
static int
count(const char *hay, const char *needle)
{
	int k = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		k++;
	return k;
}

/* The end_lsn of the last COMMIT line in out (0 when none). */
static pgo_lsn
last_commit_end(const char *out)
{
	pgo_lsn lsn = 0;

	for (const char *p = out; (p = strstr(p, "COMMIT ")) != NULL; p++)
	{
		const char *e = strstr(p, "end_lsn=");
		char text[32];
		size_t n;

		if (e == NULL)
			break;
		e += 8;
		n = strcspn(e, " \n");
		ck_assert_uint_lt(n, sizeof(text));
		memcpy(text, e, n);
		text[n] = '\0';
		ck_assert_msg(pgo_lsn_parse(text, &lsn), "bad end_lsn in %s", p);
	}
	return lsn;
}

/* Skip RELATION lines: one comes again whenever the server's cache of it was invalidated. */
static const char *
skip_relations(const char *p)
{
	while (strncmp(p, "RELATION ", 9) == 0)
	{
		const char *nl = strchr(p, '\n');

		p = nl ? nl + 1 : p + strlen(p);
	}
	return p;
}

/*
 * a is b, byte for byte but for RELATION lines (they are too long for
 * ck_assert_str_eq: show where they part)
 */
static void
assert_same_output(const char *a, const char *b)
{
	const char *pa = skip_relations(a), *pb = skip_relations(b);

	while (*pa && *pa == *pb)
	{
		bool eol = *pa == '\n';

		pa++;
		pb++;
		if (eol)
		{
			pa = skip_relations(pa);
			pb = skip_relations(pb);
		}
	}
	ck_assert_msg(*pa == *pb, "outputs differ at byte %zu: \"%.120s\" against \"%.120s\"",
	              (size_t)(pa - a), pa, pb);
}

START_TEST(every_change_appears_exactly)
{
	char endpos[32];
	char *out, *err, *changes = malloc(512 * 1024);
	const char *extra[] = {"--endpos", endpos, NULL};
	int rc;
	static const char expected[] =
	    "table public.t: INSERT: id[integer]:1 name[text]:'it''s' big[text]:null\n"
	    "table public.t: INSERT: id[integer]:2 name[text]:'two' big[text]:'small'\n"
	    "table public.t: UPDATE: id[integer]:2 name[text]:'deux' big[text]:'small'\n"
	    "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:10 "
	    "name[text]:'it''s' big[text]:null\n"
	    "table public.t: DELETE: id[integer]:2\n"
	    "table public.t: INSERT: id[integer]:3 name[text]:'big' big[text]:'xxxxxxxxxx'\n"
	    "table public.t: UPDATE: id[integer]:3 name[text]:'still big' "
	    "big[text]:unchanged-toast-datum\n"
	    "table public.f: INSERT: a[integer]:1 b[text]:'x'\n"
	    "table public.f: UPDATE: old-tuple: a[integer]:1 b[text]:'x' new-tuple: a[integer]:1 "
	    "b[text]:'y'\n"
	    "table public.f: DELETE: a[integer]:1 b[text]:'y'\n"
	    "message: transactional: 1 prefix: pfx, sz: 5 content:hello\n"
	    "message: transactional: 0 prefix: nontx, sz: 2 content:hi\n"
	    "table public.t, public.f: TRUNCATE: restart_seqs\n";

	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('kinds', 'pgoutput')");
	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('kinds_stream', 'pgoutput')");
	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('kinds_chunks', 'pgoutput')");
	pgt_exec(conn, "INSERT INTO t VALUES (1, 'it''s', NULL), (2, 'two', 'small')");
	pgt_exec(conn, "UPDATE t SET name = 'deux' WHERE id = 2");
	pgt_exec(conn, "UPDATE t SET id = 10 WHERE id = 1");
	pgt_exec(conn, "DELETE FROM t WHERE id = 2");
	/* 'u': a TOASTed value left alone while another column changes */
	pgt_exec(conn, "INSERT INTO t VALUES (3, 'big', repeat('x', 10))");
	pgt_exec(conn, "UPDATE t SET big = repeat('x', 200000) WHERE id = 3");
	pgt_exec(conn, "UPDATE t SET name = 'still big' WHERE id = 3");
	pgt_exec(conn, "INSERT INTO f VALUES (1, 'x')");
	pgt_exec(conn, "UPDATE f SET b = 'y'");
	pgt_exec(conn, "DELETE FROM f");
	pgt_exec(conn, "SELECT pg_logical_emit_message(true, 'pfx', 'hello')");
	pgt_exec(conn, "SELECT pg_logical_emit_message(false, 'nontx', 'hi')");
	pgt_exec(conn, "TRUNCATE t, f RESTART IDENTITY");
	current_lsn(endpos, sizeof(endpos));

	rc = run_decode("kinds", extra, &out, &err);
	ck_assert_msg(rc == 0, "decode exited %d: %s", rc, err);
	ck_assert_msg(strstr(err, "read the backlog through SQL: ") && strstr(err, " (pipelined, "),
	              "the backlog was not read through SQL, pipelined: %s", err);
	/* the stream, and SQL in chunks smaller than the 200 kB update, print the same bytes */
	{
		const char *stream[] = {"--endpos", endpos, "--catch-up", "stream", NULL};
		const char *chunks[] = {"--endpos", endpos, "--catch-up-chunk", "64kB", NULL};
		char *out2, *err2;

		rc = run_decode("kinds_stream", stream, &out2, &err2);
		ck_assert_msg(rc == 0, "decode --catch-up stream exited %d: %s", rc, err2);
		ck_assert_msg(strstr(err2, "through SQL") == NULL, "read through SQL: %s", err2);
		assert_same_output(out2, out);
		free(out2);
		free(err2);
		/*
		 * no replication slot left for a temporary copy (a managed source's
		 * limit): the slot itself is peeked, chunk after chunk
		 */
		pgt_exec(conn, "SELECT pg_create_physical_replication_slot('full_' || g) FROM "
		               "generate_series(1, (SELECT current_setting('max_replication_slots')::int "
		               "- count(*) FROM pg_replication_slots)) g");
		rc = run_decode("kinds_chunks", chunks, &out2, &err2);
		pgt_exec(conn, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
		               "WHERE slot_name LIKE 'full\\_%'");
		ck_assert_msg(rc == 0, "decode --catch-up-chunk 64kB exited %d: %s", rc, err2);
		ck_assert_msg(strstr(err2, "read the backlog through SQL: ") && strstr(err2, " chunks, ") &&
		                  !strstr(err2, "pipelined"),
		              "not through SQL in chunks, serially: %s", err2);
		assert_same_output(out2, out);
		free(out2);
		free(err2);
	}
	ck_assert_ptr_nonnull(changes);
	change_lines(out, changes, 512 * 1024);
	/* the 200 kB update is printed in full: compare the rest around it */
	{
		char *big = strstr(changes, "table public.t: UPDATE: id[integer]:3 name[text]:'big' "
		                            "big[text]:'xxxx");
		char *end;

		ck_assert_msg(big != NULL, "the TOAST update is missing:\n%s", out);
		end = strchr(big, '\n');
		ck_assert_int_eq((int)(end - big), (int)strlen("table public.t: UPDATE: id[integer]:3 "
		                                               "name[text]:'big' big[text]:''") +
		                                       200000);
		memmove(big, end + 1, strlen(end + 1) + 1);
	}
	ck_assert_str_eq(changes, expected);
	/* one BEGIN and one COMMIT per transaction, the non-transactional message has neither */
	ck_assert_int_eq(count(out, "\nBEGIN ") + (strncmp(out, "BEGIN ", 6) == 0), 12);
	ck_assert_int_eq(count(out, "COMMIT "), 12);
	ck_assert_msg(strstr(out, "RELATION public.f (") &&
	                  strstr(out, "replica_identity=full columns=a[integer,key] b[text,key]"),
	              "relation lines missing:\n%s", out);
	free(changes);
	free(out);
	free(err);
}
END_TEST

START_TEST(endpos_stops_there_and_the_next_run_prints_the_rest)
{
	char endpos[32], endpos2[32], buf[64];
	char *out, *err;
	const char *extra[] = {"--endpos", endpos, NULL};
	const char *extra2[] = {"--endpos", endpos2, "--format", "json", NULL};
	int rc;

	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('twice', 'pgoutput')");
	pgt_exec(conn, "INSERT INTO bulk VALUES (1, 'first')");
	pgt_exec(conn, "INSERT INTO bulk VALUES (2, 'second')");
	current_lsn(endpos, sizeof(endpos));
	pgt_exec(conn, "INSERT INTO bulk VALUES (3, 'third')");
	current_lsn(endpos2, sizeof(endpos2));
	pgt_exec(conn, "INSERT INTO bulk VALUES (4, 'fourth')");

	rc = run_decode("twice", extra, &out, &err);
	ck_assert_msg(rc == 0, "decode exited %d: %s", rc, err);
	ck_assert_msg(strstr(out, "'first'") && strstr(out, "'second'"), "missing rows:\n%s", out);
	ck_assert_msg(strstr(out, "'third'") == NULL, "printed past --endpos:\n%s", out);
	ck_assert_int_eq(count(out, "COMMIT "), 2);
	/* what was printed was acknowledged, and not further */
	{
		pgo_lsn confirmed;
		pgt_value(conn,
		          "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'twice'",
		          buf, sizeof(buf));
		ck_assert(pgo_lsn_parse(buf, &confirmed));
		ck_assert_uint_eq(confirmed, last_commit_end(out));
	}
	free(out);
	free(err);

	rc = run_decode("twice", extra2, &out, &err);
	ck_assert_msg(rc == 0, "decode exited %d: %s", rc, err);
	ck_assert_msg(strstr(out, "\"first\"") == NULL && strstr(out, "\"second\"") == NULL,
	              "acknowledged rows printed again:\n%s", out);
	ck_assert_msg(strstr(out, "\"third\""), "row 3 missing:\n%s", out);
	ck_assert_msg(strstr(out, "\"fourth\"") == NULL, "printed past --endpos:\n%s", out);
	ck_assert_int_eq(count(out, "{\"kind\":\"commit\""), 1);
	free(out);
	free(err);
}
END_TEST

START_TEST(a_stalled_reader_outlives_wal_sender_timeout)
{
	char endpos[32];
	const char *argv[] = {pgt_tool(),      "decode", "--source",   source,   "--slot-name", "stall",
	                      "--publication", "pub",    "--endpos",   endpos,   "--ring-size", "64kB",
	                      "--output",      "-",      "--catch-up", "stream", NULL};
	pgt_proc p;
	char *out, *err;
	int rc, rows = 20000;

	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('stall', 'pgoutput')");
	for (int i = 0; i < 10; i++)
	{
		char sql[256];

		snprintf(sql, sizeof(sql),
		         "INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(%d, %d) g",
		         1000 + i * rows / 10, 1000 + (i + 1) * rows / 10 - 1);
		pgt_exec(conn, sql);
	}
	current_lsn(endpos, sizeof(endpos));

	pgt_spawn(&p, argv, NULL);
	/* nobody reads: the pipe fills, then the 64 kB ring; five wal_sender_timeouts pass */
	sleep(10);
	out = pgt_slurp(&p);
	rc = pgt_wait(&p, 60);
	err = pgt_stderr(&p);
	ck_assert_msg(rc == 0, "decode exited %d: %s", rc, err);
	ck_assert_int_eq(count(out, "table public.bulk: INSERT: "), rows);
	ck_assert_int_eq(count(out, "COMMIT "), 10);
	ck_assert_msg(strstr(out, "id[integer]:20999 ") != NULL, "last row missing");
	free(out);
	free(err);
}
END_TEST

START_TEST(a_terminated_walsender_is_a_clear_error_and_nothing_is_overacknowledged)
{
	char file[512], buf[64];
	const char *argv[] = {pgt_tool(),      "decode", "--source", source, "--slot-name",   "term",
	                      "--publication", "pub",    "--output", file,   "--create-slot", NULL};
	pgt_proc p;
	char *out, *err, *written = NULL;
	pgo_lsn confirmed, printed;
	int rc;

	pgt_scratch("term.out", file, sizeof(file));
	pgt_spawn(&p, argv, NULL);
	/* wait for the slot to be streaming */
	for (int i = 0; i < 200; i++)
	{
		pgt_value(conn,
		          "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'term' AND active",
		          buf, sizeof(buf));
		if (strcmp(buf, "1") == 0)
			break;
		usleep(50 * 1000);
	}
	ck_assert_str_eq(buf, "1");
	pgt_exec(conn, "INSERT INTO bulk VALUES (900001, 'before the kill')");
	pgt_exec(conn, "INSERT INTO bulk VALUES (900002, 'also before')");
	for (int i = 0; i < 200; i++)
	{
		free(written);
		written = pgt_read_file(file);
		if (written && count(written, "COMMIT ") == 2)
			break;
		usleep(50 * 1000);
	}
	ck_assert_msg(written && count(written, "COMMIT ") == 2, "changes not written out");
	free(written);

	pgt_exec(conn, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
	               "WHERE slot_name = 'term'");
	pgt_exec(conn, "INSERT INTO bulk VALUES (900003, 'after the kill')");
	out = pgt_slurp(&p);
	rc = pgt_wait(&p, 30);
	err = pgt_stderr(&p);
	ck_assert_msg(rc != 0 && rc != -1, "decode exited %d after its walsender was terminated", rc);
	ck_assert_msg(strstr(err, "replication stream") != NULL || strstr(err, "connection") != NULL,
	              "unclear error: %s", err);
	ck_assert_msg(strstr(err, "last received") != NULL, "the error does not give the LSN: %s", err);

	written = pgt_read_file(file);
	ck_assert_ptr_nonnull(written);
	printed = last_commit_end(written);
	pgt_value(conn, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'term'",
	          buf, sizeof(buf));
	ck_assert(pgo_lsn_parse(buf, &confirmed));
	ck_assert_msg(confirmed <= printed, "slot confirmed %s past the last written COMMIT", buf);
	ck_assert_msg(strstr(written, "after the kill") == NULL, "a change after the kill was printed");
	free(written);
	free(out);
	free(err);
}
END_TEST

static Suite *
decode_suite(void)
{
	Suite *s = suite_create("pg_dbmigrator decode");
	TCase *tc = tcase_create("decode");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, every_change_appears_exactly);
	tcase_add_test(tc, endpos_stops_there_and_the_next_run_prints_the_rest);
	tcase_add_test(tc, a_stalled_reader_outlives_wal_sender_timeout);
	tcase_add_test(tc, a_terminated_walsender_is_a_clear_error_and_nothing_is_overacknowledged);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decode_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
