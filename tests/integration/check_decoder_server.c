/*
 * check_decoder_server.c — the bundled decoder against a real server.
 *
 * The story: a user's database has every kind of column (numbers with NaN
 * and infinities, text with quotes, newlines and unicode, bytea, times with
 * zones, json, arrays, an enum, a composite, ranges, NULLs), a TOASTed value
 * updated while another column changes, a REPLICA IDENTITY FULL table, a
 * primary-key update, deletes, a TRUNCATE of two tables with CASCADE and
 * RESTART IDENTITY, and logical messages. We read the pgoutput bytes the
 * server produces for every protocol version it supports, in text and in
 * binary mode, decode every message, and check each value is what was
 * written — as the server's own output (text) or send (binary) function
 * renders it.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "pgtest.h"
#include "relcache.h"

#define MAX_COLS 64

#include "coltypes.h"

static pgt_cluster server;
static PGconn *conn;

/* Counts of what one variant decoded. */
typedef struct tally
{
	int by_type[256];
	int unchanged_toast;  /* 'u' columns in new tuples */
	int old_key;          /* 'K' old tuples */
	int old_full;         /* 'O' old tuples */
	bool checked_row;     /* the t_types row was compared column by column */
	bool truncate_ok;     /* two relations, CASCADE and RESTART IDENTITY */
	int messages_ok;      /* logical messages whose prefix/content/flag matched */
	pgo_lsn last_end_lsn; /* commit end LSNs must increase */
} tally;

/* Build the schema and every change, with the slot created first. */
static void
setup(void)
{
	char sql[4096];
	size_t n;

	pgt_start(&server, NULL);
	conn = pgt_connect(&server, "postgres");
	pgt_exec(conn, "CREATE TYPE mood AS ENUM ('sad', 'happy')");
	pgt_exec(conn, "CREATE TYPE pair AS (a int, b text)");
	n = (size_t)snprintf(sql, sizeof(sql), "CREATE TABLE t_types (");
	for (size_t i = 0; i < NCOLUMNS; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s %s%s", i ? ", " : "", columns[i].name,
		                      columns[i].type, i == 0 ? " PRIMARY KEY" : "");
	snprintf(sql + n, sizeof(sql) - n, ")");
	pgt_exec(conn, sql);
	pgt_exec(conn, "CREATE TABLE t_toast (id int PRIMARY KEY, big text, n int)");
	pgt_exec(conn, "ALTER TABLE t_toast ALTER big SET STORAGE EXTERNAL");
	pgt_exec(conn, "CREATE TABLE t_full (a int, b text)");
	pgt_exec(conn, "ALTER TABLE t_full REPLICA IDENTITY FULL");
	pgt_exec(conn, "CREATE TABLE t_parent (id serial PRIMARY KEY)");
	pgt_exec(conn, "CREATE TABLE t_child (id serial PRIMARY KEY, p int REFERENCES t_parent)");
	pgt_exec(conn, "CREATE PUBLICATION pub FOR ALL TABLES");
	pgt_exec(conn, "SELECT pg_create_logical_replication_slot('s', 'pgoutput')");

	/* one row with every literal, one with NULLs */
	n = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO t_types VALUES (");
	for (size_t i = 0; i < NCOLUMNS; i++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%s%s", i ? ", " : "", columns[i].literal);
	snprintf(sql + n, sizeof(sql) - n, ")");
	pgt_exec(conn, sql);
	pgt_exec(conn, "INSERT INTO t_types (id) VALUES (2)");
	/* > 100 kB stored out of line, then an update that leaves it alone */
	pgt_exec(conn, "INSERT INTO t_toast SELECT 1, string_agg(md5(g::text), ''), 0 "
	               "FROM generate_series(1, 4000) g");
	pgt_exec(conn, "UPDATE t_toast SET n = n + 1");
	pgt_exec(conn, "INSERT INTO t_full VALUES (1, 'x'), (2, 'y')");
	pgt_exec(conn, "UPDATE t_full SET b = b || '!'");
	pgt_exec(conn, "DELETE FROM t_full");
	pgt_exec(conn, "UPDATE t_types SET id = 100 WHERE id = 1");
	pgt_exec(conn, "DELETE FROM t_types WHERE id = 2");
	pgt_exec(conn, "INSERT INTO t_parent DEFAULT VALUES");
	pgt_exec(conn, "TRUNCATE t_parent, t_child RESTART IDENTITY CASCADE");
	/* a non-transactional message is not flushed by itself: the commit after it does */
	pgt_exec(conn, "SELECT pg_logical_emit_message(false, 'pgdbm-nt', 'not transactional')");
	pgt_exec(conn, "BEGIN; INSERT INTO t_full VALUES (9, 'z'); "
	               "SELECT pg_logical_emit_message(true, 'pgdbm', 'in a transaction'); COMMIT");
}

static void
teardown(void)
{
	if (conn)
		PQfinish(conn);
	conn = NULL;
	pgt_stop(&server);
}

/* Check the first t_types insert against what the server renders for each literal. */
static void
check_row(const pgo_tuple *t, bool binary)
{
	char sql[1024];

	ck_assert_uint_eq(t->ncols, NCOLUMNS);
	for (size_t i = 0; i < NCOLUMNS; i++)
	{
		const pgo_value *v = &t->cols[i];
		PGresult *res;
		const char *params[1] = {NULL};

		snprintf(sql, sizeof(sql), "SELECT (%s)::%s", columns[i].literal, columns[i].type);
		res = PQexecParams(conn, sql, 0, NULL, params, NULL, NULL, binary ? 1 : 0);
		ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(conn));
		if (PQgetisnull(res, 0, 0))
			ck_assert_msg(v->kind == 'n', "column %s: kind '%c', expected 'n'", columns[i].name,
			              v->kind);
		else
		{
			int len = PQgetlength(res, 0, 0);

			ck_assert_msg(v->kind == (binary ? 'b' : 't'), "column %s: kind '%c'", columns[i].name,
			              v->kind);
			ck_assert_msg(v->len == (uint32_t)len &&
			                  memcmp(v->data, PQgetvalue(res, 0, 0), v->len) == 0,
			              "column %s (%s): decoded %u bytes \"%.*s\", server says %d bytes \"%s\"",
			              columns[i].name, binary ? "binary" : "text", v->len, (int)v->len, v->data,
			              len, binary ? "(binary)" : PQgetvalue(res, 0, 0));
		}
		PQclear(res);
	}
}

/* Tally one tuple's kinds. */
static void
tally_tuple(tally *t, const pgo_tuple *tup)
{
	for (uint16_t i = 0; i < tup->ncols; i++)
		if (tup->cols[i].kind == 'u')
			t->unchanged_toast++;
}

/* Check one decoded message and count it. */
static void
check_message(tally *t, relcache *rc, const pgo_message *m, bool binary)
{
	const relcache_entry *e;

	t->by_type[(unsigned char)m->type]++;
	switch (m->type)
	{
		case PGO_MSG_COMMIT:
			ck_assert_msg(m->u.commit.end_lsn > t->last_end_lsn, "commit end LSNs go backwards");
			ck_assert(m->u.commit.end_lsn > m->u.commit.commit_lsn);
			t->last_end_lsn = m->u.commit.end_lsn;
			break;
		case PGO_MSG_RELATION:
			if (strcmp(m->u.relation.relname.ptr, "t_types") == 0)
			{
				ck_assert_str_eq(m->u.relation.nspname.ptr, "public");
				ck_assert_uint_eq(m->u.relation.ncols, NCOLUMNS);
				ck_assert_int_eq(m->u.relation.replident, PGO_REPLIDENT_DEFAULT);
				for (size_t i = 0; i < NCOLUMNS; i++)
				{
					ck_assert_str_eq(m->u.relation.cols[i].name.ptr, columns[i].name);
					ck_assert_int_eq(m->u.relation.cols[i].flags & PGO_RELCOL_KEY, i == 0);
				}
			}
			if (strcmp(m->u.relation.relname.ptr, "t_full") == 0)
				ck_assert_int_eq(m->u.relation.replident, PGO_REPLIDENT_FULL);
			break;
		case PGO_MSG_INSERT:
			e = relcache_get(rc, m->u.insert.relid);
			ck_assert_ptr_nonnull(e);
			tally_tuple(t, &m->u.insert.newtup);
			if (strcmp(e->relname, "t_types") == 0 && !t->checked_row)
			{
				check_row(&m->u.insert.newtup, binary);
				t->checked_row = true;
			}
			break;
		case PGO_MSG_UPDATE:
			e = relcache_get(rc, m->u.update.relid);
			ck_assert_ptr_nonnull(e);
			tally_tuple(t, &m->u.update.newtup);
			if (m->u.update.old_kind == 'K')
			{
				t->old_key++;
				ck_assert_str_eq(e->relname, "t_types");
			}
			if (m->u.update.old_kind == 'O')
			{
				t->old_full++;
				ck_assert_str_eq(e->relname, "t_full");
				ck_assert_uint_eq(m->u.update.oldtup.ncols, 2);
			}
			if (strcmp(e->relname, "t_toast") == 0)
				ck_assert_msg(m->u.update.newtup.cols[1].kind == 'u',
				              "the TOASTed column should be 'u' in the update, got '%c'",
				              m->u.update.newtup.cols[1].kind);
			break;
		case PGO_MSG_DELETE:
			e = relcache_get(rc, m->u.del.relid);
			ck_assert_ptr_nonnull(e);
			if (m->u.del.old_kind == 'K')
			{
				t->old_key++;
				ck_assert_str_eq(e->relname, "t_types");
			}
			else
				t->old_full++;
			break;
		case PGO_MSG_TRUNCATE:
		{
			bool parent = false, child = false;

			ck_assert_uint_eq(m->u.truncate.nrelids, 2);
			for (uint32_t i = 0; i < 2; i++)
			{
				e = relcache_get(rc, pgo_truncate_relid(&m->u.truncate, i));
				ck_assert_ptr_nonnull(e);
				parent |= strcmp(e->relname, "t_parent") == 0;
				child |= strcmp(e->relname, "t_child") == 0;
			}
			t->truncate_ok =
			    parent && child &&
			    m->u.truncate.options == (PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
			break;
		}
		case PGO_MSG_MESSAGE:
		{
			const pgo_logical_message *lm = &m->u.message;
			bool tx = strcmp(lm->prefix.ptr, "pgdbm") == 0;
			const char *want = tx ? "in a transaction" : "not transactional";

			if (lm->content_len == strlen(want) &&
			    memcmp(lm->content, want, lm->content_len) == 0 &&
			    (lm->flags == PGO_MESSAGE_TRANSACTIONAL) == tx)
				t->messages_ok++;
			break;
		}
		default:
			break;
	}
}

/* Decode the whole slot for one protocol version and mode; check and count. */
static void
decode_variant(int proto, bool binary)
{
	static pgo_value old_cols[MAX_COLS], new_cols[MAX_COLS];
	static pgo_relcol rel_cols[MAX_COLS];
	char sql[512], err[512];
	pgo_config cfg = {.proto_version = proto,
	                  .max_columns = MAX_COLS,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols};
	pgo_decoder dec;
	relcache rc;
	tally t;
	PGresult *res;

	memset(&t, 0, sizeof(t));
	ck_assert(relcache_init(&rc, NULL, err, sizeof(err)));
	cfg.natts = relcache_natts;
	cfg.natts_arg = &rc;
	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
	snprintf(sql, sizeof(sql),
	         "SELECT data FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL, "
	         "'proto_version', '%d', 'publication_names', 'pub', 'messages', 'true'%s)",
	         proto, binary ? ", 'binary', 'true'" : "");
	res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 1);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
	for (int row = 0; row < PQntuples(res); row++)
	{
		pgo_message m;
		char line[512];

		if (pgo_decode(&dec, PQgetvalue(res, row, 0), (size_t)PQgetlength(res, row, 0), &m) !=
		    PGO_ERR_OK)
		{
			pgo_error_format(&dec.error, line, sizeof(line));
			ck_abort_msg("proto %d binary %d row %d: %s", proto, binary, row, line);
		}
		ck_assert_msg(relcache_observe(&rc, &m, err, sizeof(err)), "%s", err);
		check_message(&t, &rc, &m, binary);
	}
	PQclear(res);
	relcache_free(&rc);

	ck_assert_msg(t.checked_row, "the t_types row was not seen");
	ck_assert_int_eq(t.by_type['I'],
	                 2 + 1 + 2 + 1 + 1);         /* t_types 2, toast 1, full 2+1, parent 1 */
	ck_assert_int_eq(t.by_type['U'], 1 + 2 + 1); /* toast, full x2, key */
	ck_assert_int_eq(t.by_type['D'], 2 + 1);     /* full x2, t_types */
	ck_assert_int_eq(t.by_type['T'], 1);
	ck_assert_int_eq(t.by_type['M'], 2);
	ck_assert_int_eq(t.messages_ok, 2);
	ck_assert_int_eq(t.by_type['B'], t.by_type['C']);
	ck_assert_int_ge(t.by_type['B'], 11);
	ck_assert_int_ge(t.by_type['Y'], 2); /* mood and pair */
	ck_assert_int_ge(t.by_type['R'], 5);
	ck_assert_int_eq(t.unchanged_toast, 1);
	ck_assert_int_eq(t.old_key, 2);  /* the key update and the delete on t_types */
	ck_assert_int_eq(t.old_full, 4); /* two updates and two deletes on t_full */
	ck_assert(t.truncate_ok);
}

START_TEST(every_message_decodes_to_what_was_written)
{
	char buf[32];
	int version = atoi(pgt_value(conn, "SHOW server_version_num", buf, sizeof(buf)));
	int max = version >= 160000 ? 4 : version >= 150000 ? 3 : version >= 140000 ? 2 : 1;
	int proto = _i / 2 + 1;
	bool binary = _i % 2 == 1;

	if (proto > max || (binary && version < 140000))
		return; /* this server does not speak it */
	decode_variant(proto, binary);
}
END_TEST

static Suite *
decoder_server_suite(void)
{
	Suite *s = suite_create("decoder against a real server");
	TCase *tc = tcase_create("pgoutput");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	/* loop index: protocol version 1..4 x binary off/on */
	tcase_add_loop_test(tc, every_message_decodes_to_what_was_written, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decoder_server_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
