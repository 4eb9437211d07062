/*
 * check_relcache.c — the relation and type cache: copies out of the message
 * buffer, replacement after ALTER TABLE (generation, user pointer freed),
 * identical re-sends, 10k relids, the decoder's natts callback, type names,
 * and the transaction tracking.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "relcache.h"

/* ---- building raw pgoutput messages ---- */

typedef struct msgbuf
{
	uint8_t data[4096];
	size_t len;
} msgbuf;

/* Append one byte (big-endian helpers below build on it). */
static void
mb_u8(msgbuf *b, uint8_t v)
{
	ck_assert_uint_lt(b->len, sizeof(b->data));
	b->data[b->len++] = v;
}

/* Append an Int16. */
static void
mb_u16(msgbuf *b, uint16_t v)
{
	mb_u8(b, (uint8_t)(v >> 8));
	mb_u8(b, (uint8_t)v);
}

/* Append an Int32. */
static void
mb_u32(msgbuf *b, uint32_t v)
{
	mb_u16(b, (uint16_t)(v >> 16));
	mb_u16(b, (uint16_t)v);
}

/* Append a NUL-terminated String. */
static void
mb_str(msgbuf *b, const char *s)
{
	do
		mb_u8(b, (uint8_t)*s);
	while (*s++);
}

/* A column description for mb_relation. */
typedef struct testcol
{
	const char *name;
	pgo_oid type;
	int32_t typmod;
	bool key;
} testcol;

/* A raw Relation message. */
static void
mb_relation(msgbuf *b, pgo_oid relid, const char *nsp, const char *rel, char ident,
            const testcol *cols, uint16_t ncols)
{
	b->len = 0;
	mb_u8(b, 'R');
	mb_u32(b, relid);
	mb_str(b, nsp);
	mb_str(b, rel);
	mb_u8(b, (uint8_t)ident);
	mb_u16(b, ncols);
	for (uint16_t i = 0; i < ncols; i++)
	{
		mb_u8(b, cols[i].key ? PGO_RELCOL_KEY : 0);
		mb_str(b, cols[i].name);
		mb_u32(b, cols[i].type);
		mb_u32(b, (uint32_t)cols[i].typmod);
	}
}

/* ---- fixture: a decoder whose natts callback is the cache ---- */

#define MAXCOLS 64

static relcache rc;
static pgo_decoder dec;
static pgo_value old_cols[MAXCOLS], new_cols[MAXCOLS];
static pgo_relcol rel_cols[MAXCOLS];
static char err[256];

/* What the user_free callback saw. */
static int user_frees;
static char freed_relname[64];
static uint32_t freed_generation;

/* The user_free callback: remember what it saw, free the pointer. */
static void
count_user_free(relcache_entry *e)
{
	user_frees++;
	snprintf(freed_relname, sizeof(freed_relname), "%s", e->relname);
	freed_generation = e->generation;
	free(e->user);
}

/* An empty cache and a v4 decoder whose natts callback is the cache. */
static void
setup(void)
{
	pgo_config cfg = {.proto_version = 4,
	                  .max_columns = MAXCOLS,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols,
	                  .natts = relcache_natts,
	                  .natts_arg = &rc};

	user_frees = 0;
	freed_relname[0] = '\0';
	ck_assert_msg(relcache_init(&rc, count_user_free, err, sizeof(err)), "%s", err);
	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
}

/* Free what setup made. */
static void
teardown(void)
{
	relcache_free(&rc);
}

/* Decode b and feed it to the cache. */
static void
observe(msgbuf *b)
{
	pgo_message m;

	ck_assert_int_eq(pgo_decode(&dec, b->data, b->len, &m), PGO_ERR_OK);
	ck_assert_msg(relcache_observe(&rc, &m, err, sizeof(err)), "%s", err);
}

static const testcol t_cols[] = {
    {"id", 23, -1, true}, {"name", 25, -1, false}, {"v", 1043, 14, false}};

START_TEST(relation_is_copied_out_of_the_message)
{
	msgbuf b;
	relcache_entry *e;

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, 3);
	observe(&b);
	/* the ring record is released and reused: nothing may point into it */
	memset(b.data, 0xAA, sizeof(b.data));

	e = relcache_get(&rc, 16384);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->relid, 16384);
	ck_assert_str_eq(e->nspname, "public");
	ck_assert_uint_eq(e->nspname_len, 6);
	ck_assert_str_eq(e->relname, "t");
	ck_assert_int_eq(e->replident, 'd');
	ck_assert_uint_eq(e->ncols, 3);
	ck_assert_uint_eq(e->nkeys, 1);
	ck_assert_str_eq(e->cols[0].name, "id");
	ck_assert_uint_eq(e->cols[0].type_oid, 23);
	ck_assert_int_eq(e->cols[0].typmod, -1);
	ck_assert(e->cols[0].key);
	ck_assert_str_eq(e->cols[2].name, "v");
	ck_assert_uint_eq(e->cols[2].name_len, 1);
	ck_assert_uint_eq(e->cols[2].type_oid, 1043);
	ck_assert_int_eq(e->cols[2].typmod, 14);
	ck_assert(!e->cols[2].key);
	ck_assert_uint_eq(e->generation, 1);
	ck_assert_ptr_null(e->user);
	ck_assert_uint_eq(relcache_count(&rc), 1);
}
END_TEST

START_TEST(empty_namespace_means_pg_catalog)
{
	msgbuf b;

	mb_relation(&b, 1259, "", "pg_class", 'n', t_cols, 1);
	observe(&b);
	ck_assert_str_eq(relcache_get(&rc, 1259)->nspname, "pg_catalog");
}
END_TEST

START_TEST(zero_column_relation)
{
	msgbuf b;
	relcache_entry *e;

	mb_relation(&b, 20000, "s", "empty", 'f', NULL, 0);
	observe(&b);
	e = relcache_get(&rc, 20000);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->ncols, 0);
	ck_assert_ptr_null(e->cols);
	ck_assert_int_eq(relcache_natts(&rc, 20000), 0);
}
END_TEST

/*
 * ALTER TABLE t ADD COLUMN: pgoutput sends the Relation again before the
 * next change. The entry keeps its address, its generation goes up, and the
 * apply engine's prepared statements (the user pointer) are freed.
 */
START_TEST(changed_relation_replaces_the_entry)
{
	msgbuf b;
	relcache_entry *e, *again;
	testcol wider[4];

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, 3);
	observe(&b);
	e = relcache_get(&rc, 16384);
	e->user = malloc(32);

	memcpy(wider, t_cols, sizeof(t_cols));
	wider[3] = (testcol){"added", 20, -1, false};
	mb_relation(&b, 16384, "public", "t2", 'f', wider, 4);
	observe(&b);

	again = relcache_get(&rc, 16384);
	ck_assert_ptr_eq(again, e);
	ck_assert_uint_eq(e->generation, 2);
	ck_assert_int_eq(user_frees, 1);
	ck_assert_str_eq(freed_relname, "t"); /* the callback saw the old contents */
	ck_assert_uint_eq(freed_generation, 1);
	ck_assert_ptr_null(e->user);
	ck_assert_str_eq(e->relname, "t2");
	ck_assert_int_eq(e->replident, 'f');
	ck_assert_uint_eq(e->ncols, 4);
	ck_assert_str_eq(e->cols[3].name, "added");
	ck_assert_int_eq(relcache_natts(&rc, 16384), 4);
	ck_assert_uint_eq(relcache_count(&rc), 1);

	/* a change of one column's type alone is a change too */
	wider[1].type = 1043;
	mb_relation(&b, 16384, "public", "t2", 'f', wider, 4);
	observe(&b);
	ck_assert_uint_eq(e->generation, 3);
	ck_assert_int_eq(user_frees, 1); /* user was NULL: nothing to free */

	/* and of the key flag */
	wider[1].key = true;
	mb_relation(&b, 16384, "public", "t2", 'f', wider, 4);
	observe(&b);
	ck_assert_uint_eq(e->generation, 4);
	ck_assert_uint_eq(e->nkeys, 2);
}
END_TEST

/*
 * pgoutput re-sends an unchanged Relation after any relcache invalidation;
 * that must not throw away prepared statements.
 */
START_TEST(identical_resend_changes_nothing)
{
	msgbuf b;
	relcache_entry *e;
	void *user = malloc(8);

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, 3);
	observe(&b);
	e = relcache_get(&rc, 16384);
	e->user = user;
	observe(&b);
	ck_assert_uint_eq(e->generation, 1);
	ck_assert_ptr_eq(e->user, user);
	ck_assert_int_eq(user_frees, 0);
}
END_TEST

START_TEST(free_calls_user_free_for_each_user_pointer)
{
	msgbuf b;

	for (pgo_oid relid = 100; relid < 110; relid++)
	{
		mb_relation(&b, relid, "public", "t", 'd', t_cols, 3);
		observe(&b);
		if (relid % 2 == 0)
			relcache_get(&rc, relid)->user = malloc(4);
	}
	relcache_free(&rc);
	ck_assert_int_eq(user_frees, 5);
	ck_assert_ptr_null(relcache_get(&rc, 100));
	relcache_free(&rc); /* twice is fine */
	ck_assert_int_eq(user_frees, 5);
}
END_TEST

/* 10k relations: all found, the unknown ones not, the table stays sparse. */
START_TEST(ten_thousand_relids)
{
	msgbuf b;
	char name[32];
	const int n = 10000;

	for (int i = 0; i < n; i++)
	{
		/* dense, strided and near-UINT32_MAX relids */
		pgo_oid relid = i % 3 == 0   ? 16384 + (pgo_oid)i
		                : i % 3 == 1 ? (pgo_oid)i * 65537u
		                             : UINT32_MAX - (pgo_oid)i;
		testcol col = {"c", 23, -1, false};

		snprintf(name, sizeof(name), "t%d", i);
		col.name = name;
		mb_relation(&b, relid, "public", name, 'd', &col, 1);
		observe(&b);
	}
	ck_assert_uint_eq(relcache_count(&rc), (size_t)n);
	ck_assert_uint_le(rc.rel_cap, 4 * (size_t)n); /* at most half full, at least a quarter */
	ck_assert_uint_ge(rc.rel_cap, 2 * (size_t)n);
	for (int i = 0; i < n; i++)
	{
		pgo_oid relid = i % 3 == 0   ? 16384 + (pgo_oid)i
		                : i % 3 == 1 ? (pgo_oid)i * 65537u
		                             : UINT32_MAX - (pgo_oid)i;
		relcache_entry *e = relcache_get(&rc, relid);

		snprintf(name, sizeof(name), "t%d", i);
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq(e->relid, relid);
		ck_assert_str_eq(e->relname, name);
		ck_assert_str_eq(e->cols[0].name, name);
	}
	ck_assert_ptr_null(relcache_get(&rc, 1));
	ck_assert_ptr_null(relcache_get(&rc, 16384 + 1));
	ck_assert_ptr_null(relcache_get(&rc, 0));
	ck_assert_int_eq(relcache_natts(&rc, 7), -1);
}
END_TEST

/* The decoder checks tuple column counts against the cache through relcache_natts. */
START_TEST(natts_callback_checks_tuples)
{
	msgbuf b;
	pgo_message m;

	/* unknown relation: no check, any count decodes */
	b.len = 0;
	mb_u8(&b, 'I');
	mb_u32(&b, 16384);
	mb_u8(&b, 'N');
	mb_u16(&b, 2);
	mb_u8(&b, 'n');
	mb_u8(&b, 'n');
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, 3);
	observe(&b);
	ck_assert_int_eq(relcache_natts(&rc, 16384), 3);

	b.len = 0;
	mb_u8(&b, 'I');
	mb_u32(&b, 16384);
	mb_u8(&b, 'N');
	mb_u16(&b, 2);
	mb_u8(&b, 'n');
	mb_u8(&b, 'n');
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_COLUMN_COUNT_MISMATCH);

	b.len = 0;
	mb_u8(&b, 'I');
	mb_u32(&b, 16384);
	mb_u8(&b, 'N');
	mb_u16(&b, 3);
	mb_u8(&b, 'n');
	mb_u8(&b, 'n');
	mb_u8(&b, 'u');
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);
}
END_TEST

START_TEST(type_names_preloaded_then_type_messages)
{
	msgbuf b;
	size_t len = 0;

	ck_assert_ptr_null(relcache_type_name(&rc, 23));
	ck_assert(relcache_set_type_name(&rc, 23, "integer", err, sizeof(err)));
	ck_assert_str_eq(relcache_type_name(&rc, 23), "integer");
	ck_assert_str_eq(relcache_type_name_len(&rc, 23, &len), "integer");
	ck_assert_uint_eq(len, 7);
	ck_assert(relcache_set_type_name(&rc, 23, "int4", err, sizeof(err)));
	ck_assert_str_eq(relcache_type_name(&rc, 23), "int4");

	/* a Type message for a type the server did not preload */
	b.len = 0;
	mb_u8(&b, 'Y');
	mb_u32(&b, 16390);
	mb_str(&b, "public");
	mb_str(&b, "mood");
	observe(&b);
	memset(b.data, 0, sizeof(b.data));
	ck_assert_str_eq(relcache_type_name(&rc, 16390), "public.mood");

	/* the preloaded name wins over the Type message's */
	ck_assert(relcache_set_type_name(&rc, 16390, "mood", err, sizeof(err)));
	ck_assert_str_eq(relcache_type_name(&rc, 16390), "mood");

	/* a Type message naming pg_catalog by the empty string */
	b.len = 0;
	mb_u8(&b, 'Y');
	mb_u32(&b, 16400);
	mb_str(&b, "");
	mb_str(&b, "x");
	observe(&b);
	ck_assert_str_eq(relcache_type_name(&rc, 16400), "pg_catalog.x");

	ck_assert(!relcache_set_type_name(&rc, 0, "bad", err, sizeof(err)));
	ck_assert_str_eq(err, "type name for type oid 0 (InvalidOid)");
	ck_assert_ptr_null(relcache_type_name(&rc, 0));
	ck_assert_ptr_null(relcache_type_name(&rc, 999999));
}
END_TEST

/* A whole pg_type preload (tens of thousands in a big database) grows the table. */
START_TEST(many_type_names)
{
	char name[32];

	for (pgo_oid oid = 1; oid <= 30000; oid++)
	{
		snprintf(name, sizeof(name), "type%u", oid);
		ck_assert(relcache_set_type_name(&rc, oid * 3, name, err, sizeof(err)));
	}
	ck_assert_uint_eq(rc.ntypes, 30000);
	for (pgo_oid oid = 1; oid <= 30000; oid++)
	{
		snprintf(name, sizeof(name), "type%u", oid);
		ck_assert_str_eq(relcache_type_name(&rc, oid * 3), name);
		ck_assert_ptr_null(relcache_type_name(&rc, oid * 3 + 1));
	}
}
END_TEST

START_TEST(transaction_tracking)
{
	pgo_message m = {0};
	pgo_xid xid = 0;

	m.type = PGO_MSG_INSERT;
	ck_assert(!relcache_message_xid(&rc, &m, &xid)); /* outside a transaction */

	m.type = PGO_MSG_BEGIN;
	m.u.begin.xid = 750;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 750);
	ck_assert(relcache_observe(&rc, &m, err, sizeof(err)));
	ck_assert(rc.in_txn);

	m.type = PGO_MSG_INSERT;
	xid = 0;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 750);

	/* the Commit still belongs to 750, and closes it */
	m.type = PGO_MSG_COMMIT;
	xid = 0;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 750);
	ck_assert(relcache_observe(&rc, &m, err, sizeof(err)));
	ck_assert(!rc.in_txn);
	ck_assert(!relcache_message_xid(&rc, &m, &xid));

	/* a streamed change names its own transaction */
	m.type = PGO_MSG_UPDATE;
	m.has_xid = true;
	m.xid = 900;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 900);
	m.has_xid = false;

	m.type = PGO_MSG_BEGIN_PREPARE;
	m.u.begin_prepare.xid = 800;
	ck_assert(relcache_observe(&rc, &m, err, sizeof(err)));
	ck_assert(rc.in_txn);
	ck_assert_uint_eq(rc.txn_xid, 800);
	m.type = PGO_MSG_PREPARE;
	m.u.prepare.xid = 800;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 800);
	ck_assert(relcache_observe(&rc, &m, err, sizeof(err)));
	ck_assert(!rc.in_txn);

	m.type = PGO_MSG_STREAM_STOP;
	ck_assert(!relcache_message_xid(&rc, &m, &xid));
	m.type = PGO_MSG_STREAM_ABORT;
	m.u.stream_abort.xid = 901;
	ck_assert(relcache_message_xid(&rc, &m, &xid));
	ck_assert_uint_eq(xid, 901);
}
END_TEST

START_TEST(used_after_free_is_an_error_not_a_crash)
{
	msgbuf b;
	pgo_message m;

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, 3);
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);
	relcache_free(&rc);
	ck_assert(!relcache_observe(&rc, &m, err, sizeof(err)));
	ck_assert_str_eq(err, "relation cache used before relcache_init or after relcache_free");
	ck_assert(!relcache_set_type_name(&rc, 23, "integer", err, sizeof(err)));
	ck_assert_ptr_null(relcache_get(&rc, 16384));
	ck_assert_ptr_null(relcache_type_name(&rc, 23));
	ck_assert_int_eq(relcache_natts(&rc, 16384), -1);
}
END_TEST

START_TEST(replident_names)
{
	ck_assert_str_eq(relcache_replident_name('d'), "default");
	ck_assert_str_eq(relcache_replident_name('n'), "nothing");
	ck_assert_str_eq(relcache_replident_name('f'), "full");
	ck_assert_str_eq(relcache_replident_name('i'), "index");
	ck_assert_str_eq(relcache_replident_name('x'), "unknown");
}
END_TEST

/* All the cases. */
static Suite *
relcache_suite(void)
{
	Suite *s = suite_create("relcache");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	/* under sanitizers on a busy machine ten_thousand_relids takes seconds */
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, relation_is_copied_out_of_the_message);
	tcase_add_test(tc, empty_namespace_means_pg_catalog);
	tcase_add_test(tc, zero_column_relation);
	tcase_add_test(tc, changed_relation_replaces_the_entry);
	tcase_add_test(tc, identical_resend_changes_nothing);
	tcase_add_test(tc, free_calls_user_free_for_each_user_pointer);
	tcase_add_test(tc, ten_thousand_relids);
	tcase_add_test(tc, natts_callback_checks_tuples);
	tcase_add_test(tc, type_names_preloaded_then_type_messages);
	tcase_add_test(tc, many_type_names);
	tcase_add_test(tc, transaction_tracking);
	tcase_add_test(tc, used_after_free_is_an_error_not_a_crash);
	tcase_add_test(tc, replident_names);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(relcache_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
