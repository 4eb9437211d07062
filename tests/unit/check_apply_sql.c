/*
 * check_apply_sql.c — the statements the applier prepares, for each kind of
 * replica identity (primary key, USING INDEX, FULL, none), each column mask
 * (unchanged TOAST left out, the key left out of SET when no old key came),
 * multi-row INSERT / UPDATE / DELETE, TRUNCATE and COPY, tables without
 * columns and names that needed quoting; and the parameter types bound to
 * them. No server: the
 * target's description is written here as apply_map would read it.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"

#define INT4OID    23
#define TEXTOID    25
#define NUMERICOID 1700
#define JSONOID    114

/* ---- the target's description of a relation, as apply_map fills it ---- */

static apply_rel *made[8]; /* malloc'd by rel_new, freed by teardown */
static int nmade;

/* A target description with its own copies of the names (apply_rel owns them). */
static apply_rel *
rel_new(const char *qname, char relkind, int touch, uint16_t ncols, const char *const *qcols,
        const char *const *qtypes, const Oid *types, const bool *text_eq)
{
	apply_rel *ar = calloc(1, sizeof(*ar));

	ck_assert_ptr_nonnull(ar);
	ck_assert_int_lt(nmade, 8);
	made[nmade++] = ar;
	ar->relid = 16384;
	ar->qname = strdup(qname);
	ar->relkind = relkind;
	ar->touch = touch;
	ar->ncols = ncols;
	if (ncols)
	{
		ar->qcols = calloc(ncols, sizeof(char *));
		ar->qtypes = calloc(ncols, sizeof(char *));
		ar->types = calloc(ncols, sizeof(Oid));
		ar->text_eq = calloc(ncols, sizeof(bool));
		ck_assert(ar->qcols && ar->qtypes && ar->types && ar->text_eq);
		for (uint16_t i = 0; i < ncols; i++)
		{
			ar->qcols[i] = strdup(qcols[i]);
			ar->qtypes[i] = strdup(qtypes[i]);
			ar->types[i] = types[i];
			ar->text_eq[i] = text_eq[i];
		}
	}
	return ar;
}

/* public.accounts (id integer PRIMARY KEY, balance numeric, note text). */
static const char *const acc_qcols[] = {"\"id\"", "\"balance\"", "\"note\""};
static const char *const acc_qtypes[] = {"integer", "numeric", "text"};
static const Oid acc_types[] = {INT4OID, NUMERICOID, TEXTOID};
static const bool acc_text_eq[] = {false, false, false};

static apply_rel *
accounts(void)
{
	return rel_new("\"public\".\"accounts\"", 'r', 0, 3, acc_qcols, acc_qtypes, acc_types,
	               acc_text_eq);
}

/* A table without columns. */
static apply_rel *
marks(void)
{
	return rel_new("\"public\".\"marks\"", 'r', -1, 0, NULL, NULL, NULL, NULL);
}

/* The source's side of the same table, with its key flags. */
static relcache_column acc_cols[] = {
    {.type_oid = INT4OID, .key = true}, {.type_oid = NUMERICOID}, {.type_oid = TEXTOID}};

static relcache_entry
accounts_entry(char replident)
{
	relcache_entry e = {.relid = 16384,
	                    .replident = replident,
	                    .ncols = 3,
	                    .nkeys = replident == PGO_REPLIDENT_DEFAULT ? 1 : 0,
	                    .cols = acc_cols};
	return e;
}

/* A tuple of three columns: 't' text, 'n' NULL, 'u' unchanged TOAST. */
typedef struct tuple3
{
	pgo_value cols[3];
	pgo_tuple t;
} tuple3;

static const pgo_tuple *
tuple_of(tuple3 *tt, const char *kinds)
{
	for (int i = 0; i < 3; i++)
	{
		tt->cols[i].kind = kinds[i];
		tt->cols[i].data = kinds[i] == 't' ? "1" : NULL;
		tt->cols[i].len = kinds[i] == 't' ? 1 : 0;
	}
	tt->t.ncols = 3;
	tt->t.cols = tt->cols;
	return &tt->t;
}

/* ---- helpers ---- */

static strbuf sql;

static void
setup(void)
{
	strbuf_init(&sql);
}

static void
teardown(void)
{
	strbuf_free(&sql);
	for (int i = 0; i < nmade; i++)
	{
		relcache_entry e = {.user = made[i]};

		apply_rel_free(&e);
	}
	nmade = 0;
}

/* The parameter types the statement for (kind, rows, mask) binds, compared with want. */
static void
assert_types(const apply_rel *ar, char kind, int rows, const uint8_t *mask, const Oid *want,
             size_t nwant)
{
	Oid got[64];
	size_t n = apply_sql_param_types(ar, kind, rows, mask, got, 64);

	ck_assert_uint_eq(n, nwant);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(got[i], want[i]);
}

/* ---- INSERT ---- */

START_TEST(one_inserted_row_keeps_the_sources_identity_values)
{
	apply_rel *ar = accounts();
	const Oid want[] = {INT4OID, NUMERICOID, TEXTOID};
	int n = -1;

	ck_assert(apply_sql_insert(&sql, ar, 1, &n));
	ck_assert_str_eq(strbuf_data(&sql), "INSERT INTO \"public\".\"accounts\" (\"id\", \"balance\", "
	                                    "\"note\") OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3)");
	ck_assert_int_eq(n, 3);
	assert_types(ar, 'I', 1, NULL, want, 3);
}
END_TEST

START_TEST(three_inserted_rows_number_their_parameters_across_rows)
{
	apply_rel *ar = accounts();
	const Oid want[] = {INT4OID, NUMERICOID, TEXTOID,    INT4OID, NUMERICOID,
	                    TEXTOID, INT4OID,    NUMERICOID, TEXTOID};
	int n = -1;

	ck_assert(apply_sql_insert(&sql, ar, 3, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "INSERT INTO \"public\".\"accounts\" (\"id\", \"balance\", \"note\") "
	                 "OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3), ($4, $5, $6), ($7, $8, $9)");
	ck_assert_int_eq(n, 9);
	assert_types(ar, 'I', 3, NULL, want, 9);
}
END_TEST

START_TEST(rows_of_a_table_without_columns_are_inserted_without_values)
{
	apply_rel *ar = marks();
	int n = -1;

	ck_assert(apply_sql_insert(&sql, ar, 4, &n));
	ck_assert_str_eq(
	    strbuf_data(&sql),
	    "INSERT INTO \"public\".\"marks\" SELECT FROM pg_catalog.generate_series(1, 4)");
	ck_assert_int_eq(n, 0);
	assert_types(ar, 'I', 4, NULL, NULL, 0);
}
END_TEST

START_TEST(truncate_names_only_the_tables_the_source_truncated)
{
	/* TRUNCATE accounts, events RESTART IDENTITY CASCADE on the source; events is partitioned */
	const char *const qcols[] = {"\"id\""};
	const char *const qtypes[] = {"integer"};
	const Oid types[] = {INT4OID};
	const bool text_eq[] = {false};
	const apply_rel *rels[2];

	rels[0] = accounts();
	rels[1] = rel_new("\"public\".\"events\"", 'p', 0, 1, qcols, qtypes, types, text_eq);
	ck_assert(apply_sql_truncate(&sql, rels, 1, false, false));
	ck_assert_str_eq(strbuf_data(&sql), "TRUNCATE ONLY \"public\".\"accounts\"");
	strbuf_reset(&sql);
	ck_assert(apply_sql_truncate(&sql, rels, 2, true, true));
	ck_assert_str_eq(strbuf_data(&sql), "TRUNCATE ONLY \"public\".\"accounts\", "
	                                    "\"public\".\"events\" RESTART IDENTITY CASCADE");
}
END_TEST

START_TEST(copy_names_every_published_column)
{
	apply_rel *ar = accounts();

	ck_assert(apply_sql_copy(&sql, ar));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "COPY \"public\".\"accounts\" (\"id\", \"balance\", \"note\") FROM STDIN");
}
END_TEST

/* ---- column masks ---- */

START_TEST(an_update_without_old_key_leaves_the_key_out_of_set)
{
	/* UPDATE accounts SET balance = 2 WHERE id = 1: pgoutput sends no old key */
	relcache_entry e = accounts_entry(PGO_REPLIDENT_DEFAULT);
	apply_rel *ar = accounts();
	tuple3 nt;
	const pgo_tuple *newtup = tuple_of(&nt, "ttt"), *m = NULL;
	uint8_t mask[3];
	uint16_t bad = 99;
	const Oid want[] = {NUMERICOID, TEXTOID, INT4OID};
	int n = -1;

	ck_assert_int_eq(apply_sql_mask(&e, 'U', 0, NULL, newtup, mask, &m, &bad), APPLY_MASK_OK);
	ck_assert_ptr_eq(m, newtup);
	ck_assert_uint_eq(mask[0], MASK_WHERE);
	ck_assert_uint_eq(mask[1], MASK_SET);
	ck_assert_uint_eq(mask[2], MASK_SET);
	ck_assert(apply_sql_update(&sql, ar, false, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql), "UPDATE \"public\".\"accounts\" SET \"balance\" = $1, "
	                                    "\"note\" = $2 WHERE \"id\" = $3");
	ck_assert_int_eq(n, 3);
	assert_types(ar, 'U', 0, mask, want, 3);
}
END_TEST

START_TEST(an_update_that_changes_the_key_sets_it_and_matches_the_old_one)
{
	/* UPDATE accounts SET id = 2 WHERE id = 1: the old key comes ('K') */
	relcache_entry e = accounts_entry(PGO_REPLIDENT_DEFAULT);
	apply_rel *ar = accounts();
	tuple3 ot, nt;
	const pgo_tuple *oldtup = tuple_of(&ot, "tnn"), *newtup = tuple_of(&nt, "ttt"), *m = NULL;
	uint8_t mask[3];
	uint16_t bad;
	int n = -1;

	ck_assert_int_eq(apply_sql_mask(&e, 'U', 'K', oldtup, newtup, mask, &m, &bad), APPLY_MASK_OK);
	ck_assert_ptr_eq(m, oldtup);
	ck_assert_uint_eq(mask[0], MASK_SET | MASK_WHERE);
	ck_assert(apply_sql_update(&sql, ar, false, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql), "UPDATE \"public\".\"accounts\" SET \"id\" = $1, "
	                                    "\"balance\" = $2, \"note\" = $3 WHERE \"id\" = $4");
	ck_assert_int_eq(n, 4);
}
END_TEST

START_TEST(an_unchanged_toasted_column_is_left_out_of_set)
{
	relcache_entry e = accounts_entry(PGO_REPLIDENT_DEFAULT);
	apply_rel *ar = accounts();
	tuple3 nt;
	const pgo_tuple *m = NULL;
	uint8_t mask[3];
	uint16_t bad;
	int n = -1;

	ck_assert_int_eq(apply_sql_mask(&e, 'U', 0, NULL, tuple_of(&nt, "ttu"), mask, &m, &bad),
	                 APPLY_MASK_OK);
	ck_assert_uint_eq(mask[2], 0);
	ck_assert(apply_sql_update(&sql, ar, false, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "UPDATE \"public\".\"accounts\" SET \"balance\" = $1 WHERE \"id\" = $2");
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(an_update_with_nothing_to_set_touches_the_row)
{
	/* only the key and unchanged TOAST came: SET a column to itself, so a missing row shows */
	relcache_entry e = accounts_entry(PGO_REPLIDENT_DEFAULT);
	apply_rel *ar = accounts();
	tuple3 nt;
	const pgo_tuple *m = NULL;
	uint8_t mask[3];
	uint16_t bad;
	int n = -1;

	ar->touch = 1; /* id is GENERATED ALWAYS: it may not be named in SET */
	ck_assert_int_eq(apply_sql_mask(&e, 'U', 0, NULL, tuple_of(&nt, "tuu"), mask, &m, &bad),
	                 APPLY_MASK_OK);
	ck_assert(apply_sql_update(&sql, ar, false, mask, &n));
	ck_assert_str_eq(
	    strbuf_data(&sql),
	    "UPDATE \"public\".\"accounts\" SET \"balance\" = \"balance\" WHERE \"id\" = $1");
	ck_assert_int_eq(n, 1);
	strbuf_reset(&sql);
	ck_assert(apply_sql_multi(&sql, ar, 'U', mask, 2, &n));
	ck_assert_str_eq(
	    strbuf_data(&sql),
	    "UPDATE \"public\".\"accounts\" AS pgdbm_x SET \"balance\" = pgdbm_x.\"balance\" "
	    "FROM (VALUES ($1::integer), ($2::integer)) AS pgdbm_v(w0) "
	    "WHERE pgdbm_x.\"id\" = pgdbm_v.w0 RETURNING pgdbm_v.w0 AS \"id\"");
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(a_using_index_identity_matches_by_the_index_columns)
{
	/* REPLICA IDENTITY USING INDEX on (note): the key flags say which columns */
	relcache_column cols[] = {
	    {.type_oid = INT4OID}, {.type_oid = NUMERICOID}, {.type_oid = TEXTOID, .key = true}};
	relcache_entry e = accounts_entry(PGO_REPLIDENT_INDEX);
	apply_rel *ar = accounts();
	tuple3 ot;
	const pgo_tuple *m = NULL;
	uint8_t mask[3];
	uint16_t bad;
	const Oid want[] = {TEXTOID};
	int n = -1;

	e.cols = cols;
	e.nkeys = 1;
	ck_assert_int_eq(apply_sql_mask(&e, 'D', 'K', tuple_of(&ot, "nnt"), NULL, mask, &m, &bad),
	                 APPLY_MASK_OK);
	ck_assert_uint_eq(mask[0], 0);
	ck_assert_uint_eq(mask[1], 0);
	ck_assert_uint_eq(mask[2], MASK_WHERE);
	ck_assert(apply_sql_delete(&sql, ar, false, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql), "DELETE FROM \"public\".\"accounts\" WHERE \"note\" = $1");
	ck_assert_int_eq(n, 1);
	assert_types(ar, 'D', 0, mask, want, 1);
}
END_TEST

START_TEST(a_full_identity_matches_one_row_by_every_sent_old_column)
{
	/* REPLICA IDENTITY FULL: the key stays in SET; unchanged TOAST is not compared */
	relcache_entry e = accounts_entry(PGO_REPLIDENT_FULL);
	apply_rel *ar = accounts();
	tuple3 ot, nt;
	const pgo_tuple *oldtup = tuple_of(&ot, "ttu"), *m = NULL;
	uint8_t mask[3];
	uint16_t bad;
	const Oid want[] = {INT4OID, NUMERICOID, TEXTOID, INT4OID, NUMERICOID};
	int n = -1;

	ck_assert_int_eq(apply_sql_mask(&e, 'U', 'O', oldtup, tuple_of(&nt, "ttt"), mask, &m, &bad),
	                 APPLY_MASK_OK);
	ck_assert_ptr_eq(m, oldtup);
	ck_assert_uint_eq(mask[0], MASK_SET | MASK_WHERE);
	ck_assert_uint_eq(mask[2], MASK_SET);
	ck_assert(apply_sql_update(&sql, ar, true, mask, &n));
	ck_assert_str_eq(
	    strbuf_data(&sql),
	    "UPDATE \"public\".\"accounts\" SET \"id\" = $1, \"balance\" = $2, \"note\" = $3 "
	    "WHERE ctid = (SELECT ctid FROM \"public\".\"accounts\" WHERE \"id\" IS NOT "
	    "DISTINCT FROM $4 AND \"balance\" IS NOT DISTINCT FROM $5 LIMIT 1)");
	ck_assert_int_eq(n, 5);
	assert_types(ar, 'U', 0, mask, want, 5);
}
END_TEST

START_TEST(a_full_identity_compares_types_without_equality_as_text)
{
	/* a json column has no '=': it is compared as text; a partitioned table by (tableoid, ctid) */
	const char *const qcols[] = {"\"id\"", "\"doc\""};
	const char *const qtypes[] = {"integer", "json"};
	const Oid types[] = {INT4OID, JSONOID};
	const bool text_eq[] = {false, true};
	apply_rel *ar = rel_new("\"public\".\"events\"", 'p', 0, 2, qcols, qtypes, types, text_eq);
	const uint8_t mask[] = {MASK_WHERE, MASK_WHERE};
	int n = -1;

	ck_assert(apply_sql_delete(&sql, ar, true, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "DELETE FROM \"public\".\"events\" WHERE (tableoid, ctid) = (SELECT tableoid, "
	                 "ctid FROM \"public\".\"events\" WHERE \"id\" IS NOT DISTINCT FROM $1 AND "
	                 "\"doc\"::text IS NOT DISTINCT FROM $2::text LIMIT 1)");
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(a_full_identity_row_of_a_table_without_columns_is_found_by_ctid)
{
	apply_rel *ar = marks();
	relcache_entry e = {.replident = PGO_REPLIDENT_FULL};
	pgo_tuple empty = {.ncols = 0, .cols = NULL};
	const pgo_tuple *m = NULL;
	uint8_t mask[1];
	uint16_t bad;
	int n = -1;

	ck_assert_int_eq(apply_sql_mask(&e, 'D', 'O', &empty, NULL, mask, &m, &bad), APPLY_MASK_OK);
	ck_assert(apply_sql_delete(&sql, ar, true, mask, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "DELETE FROM \"public\".\"marks\" WHERE ctid = (SELECT ctid FROM "
	                 "\"public\".\"marks\" WHERE true LIMIT 1)");
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(a_full_identity_change_without_the_old_row_is_refused)
{
	relcache_entry e = accounts_entry(PGO_REPLIDENT_FULL);
	tuple3 nt;
	const pgo_tuple *m = NULL;
	uint8_t mask[3];
	uint16_t bad;

	ck_assert_int_eq(apply_sql_mask(&e, 'U', 0, NULL, tuple_of(&nt, "ttt"), mask, &m, &bad),
	                 APPLY_MASK_NO_OLD_ROW);
}
END_TEST

START_TEST(a_table_without_identity_key_is_refused)
{
	/* REPLICA IDENTITY NOTHING, or DEFAULT on a table without a primary key */
	const char kinds[] = {PGO_REPLIDENT_NOTHING, PGO_REPLIDENT_DEFAULT};
	relcache_column cols[3] = {{.key = false}};

	for (size_t k = 0; k < sizeof(kinds); k++)
	{
		relcache_entry e = accounts_entry(kinds[k]);
		tuple3 ot;
		const pgo_tuple *m = NULL;
		uint8_t mask[3];
		uint16_t bad;

		e.cols = cols;
		e.nkeys = 0;
		ck_assert_int_eq(apply_sql_mask(&e, 'D', 0, tuple_of(&ot, "ttt"), NULL, mask, &m, &bad),
		                 APPLY_MASK_NO_KEY);
	}
}
END_TEST

START_TEST(an_unchanged_toasted_key_column_is_refused_and_named)
{
	relcache_column cols[] = {{.key = true}, {.key = false}, {.key = true}};
	relcache_entry e = accounts_entry(PGO_REPLIDENT_INDEX);
	tuple3 nt;
	const pgo_tuple *m = NULL;
	uint8_t mask[3];
	uint16_t bad = 99;

	e.cols = cols;
	e.nkeys = 2;
	ck_assert_int_eq(apply_sql_mask(&e, 'U', 0, NULL, tuple_of(&nt, "ttu"), mask, &m, &bad),
	                 APPLY_MASK_UNCHANGED_KEY);
	ck_assert_uint_eq(bad, 2);
}
END_TEST

/* ---- several rows by distinct keys ---- */

START_TEST(two_updated_rows_go_through_a_typed_values_list)
{
	apply_rel *ar = accounts();
	const uint8_t mask[] = {MASK_WHERE, MASK_SET, MASK_SET};
	const Oid want[] = {NUMERICOID, TEXTOID, INT4OID, NUMERICOID, TEXTOID, INT4OID};
	int n = -1;

	ck_assert(apply_sql_multi(&sql, ar, 'U', mask, 2, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "UPDATE \"public\".\"accounts\" AS pgdbm_x SET \"balance\" = pgdbm_v.s1, "
	                 "\"note\" = pgdbm_v.s2 FROM (VALUES ($1::numeric, $2::text, $3::integer), "
	                 "($4::numeric, $5::text, $6::integer)) AS pgdbm_v(s1, s2, w0) "
	                 "WHERE pgdbm_x.\"id\" = pgdbm_v.w0 RETURNING pgdbm_v.w0 AS \"id\"");
	ck_assert_int_eq(n, 6);
	assert_types(ar, 'U', 2, mask, want, 6);
}
END_TEST

START_TEST(three_deleted_rows_go_through_a_typed_values_list)
{
	apply_rel *ar = accounts();
	const uint8_t mask[] = {MASK_WHERE, 0, 0};
	const Oid want[] = {INT4OID, INT4OID, INT4OID};
	int n = -1;

	ck_assert(apply_sql_multi(&sql, ar, 'D', mask, 3, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "DELETE FROM \"public\".\"accounts\" AS pgdbm_x USING (VALUES ($1::integer), "
	                 "($2::integer), ($3::integer)) AS pgdbm_v(w0) WHERE pgdbm_x.\"id\" = "
	                 "pgdbm_v.w0 RETURNING pgdbm_v.w0 AS \"id\"");
	ck_assert_int_eq(n, 3);
	assert_types(ar, 'D', 3, mask, want, 3);
}
END_TEST

START_TEST(names_that_needed_quoting_are_written_as_the_target_quoted_them)
{
	/* apply_map quotes with the connection (PQescapeIdentifier); aliases are never user names */
	const char *const qcols[] = {"\"Order Id\"", "\"a\"\"b\""};
	const char *const qtypes[] = {"\"My Schema\".\"Money\"", "text"};
	const Oid types[] = {70000, TEXTOID};
	const bool text_eq[] = {false, false};
	apply_rel *ar = rel_new("\"Sales Q1\".\"select\"", 'r', 0, 2, qcols, qtypes, types, text_eq);
	const uint8_t mask[] = {MASK_WHERE, MASK_SET};
	const Oid want[] = {TEXTOID, 70000, TEXTOID, 70000};
	int n = -1;

	ck_assert(apply_sql_multi(&sql, ar, 'U', mask, 2, &n));
	ck_assert_str_eq(strbuf_data(&sql),
	                 "UPDATE \"Sales Q1\".\"select\" AS pgdbm_x SET \"a\"\"b\" = pgdbm_v.s1 FROM "
	                 "(VALUES ($1::text, $2::\"My Schema\".\"Money\"), ($3::text, "
	                 "$4::\"My Schema\".\"Money\")) AS pgdbm_v(s1, w0) WHERE pgdbm_x.\"Order Id\" "
	                 "= pgdbm_v.w0 RETURNING pgdbm_v.w0 AS \"Order Id\"");
	assert_types(ar, 'U', 2, mask, want, 4);
	strbuf_reset(&sql);
	ck_assert(apply_sql_insert(&sql, ar, 1, &n));
	ck_assert_str_eq(strbuf_data(&sql), "INSERT INTO \"Sales Q1\".\"select\" (\"Order Id\", "
	                                    "\"a\"\"b\") OVERRIDING SYSTEM VALUE VALUES ($1, $2)");
}
END_TEST

/* ---- every mask: the statement's parameters are the types bound to it ---- */

/* The highest $n in text (0 when none). */
static int
highest_param(const char *text)
{
	int max = 0;

	for (const char *p = strchr(text, '$'); p; p = strchr(p + 1, '$'))
		if (atoi(p + 1) > max)
			max = atoi(p + 1);
	return max;
}

START_TEST(every_column_mask_numbers_as_many_parameters_as_it_binds)
{
	apply_rel *ar = accounts();

	for (int bits = 0; bits < 64; bits++)
	{
		uint8_t mask[3];
		bool any_where = false, any_set = false;

		for (int i = 0; i < 3; i++)
		{
			mask[i] = (uint8_t)((bits >> (2 * i)) & 3);
			any_where = any_where || (mask[i] & MASK_WHERE);
			any_set = any_set || (mask[i] & MASK_SET);
		}
		for (int full = 0; full < 2; full++)
		{
			int n = -1;

			strbuf_reset(&sql);
			ck_assert(apply_sql_update(&sql, ar, full, mask, &n));
			ck_assert_int_eq(highest_param(strbuf_data(&sql)), n);
			ck_assert_uint_eq(apply_sql_param_types(ar, 'U', 0, mask, NULL, 0), (size_t)n);
			if (any_set)
				continue; /* a DELETE's mask has no new row to set */
			strbuf_reset(&sql);
			ck_assert(apply_sql_delete(&sql, ar, full, mask, &n));
			ck_assert_int_eq(highest_param(strbuf_data(&sql)), n);
			ck_assert_uint_eq(apply_sql_param_types(ar, 'D', 0, mask, NULL, 0), (size_t)n);
		}
		if (!any_where)
			continue; /* batches always match by a key */
		for (int rows = 2; rows <= 3; rows++)
		{
			int n = -1;

			strbuf_reset(&sql);
			ck_assert(apply_sql_multi(&sql, ar, 'U', mask, rows, &n));
			ck_assert_int_eq(highest_param(strbuf_data(&sql)), n);
			ck_assert_uint_eq(apply_sql_param_types(ar, 'U', rows, mask, NULL, 0), (size_t)n);
		}
	}
}
END_TEST

static Suite *
apply_sql_suite(void)
{
	Suite *s = suite_create("apply_sql");
	TCase *ins = tcase_create("insert");
	TCase *mask = tcase_create("mask");
	TCase *multi = tcase_create("multi");

	tcase_add_checked_fixture(ins, setup, teardown);
	tcase_add_test(ins, one_inserted_row_keeps_the_sources_identity_values);
	tcase_add_test(ins, three_inserted_rows_number_their_parameters_across_rows);
	tcase_add_test(ins, rows_of_a_table_without_columns_are_inserted_without_values);
	tcase_add_test(ins, truncate_names_only_the_tables_the_source_truncated);
	tcase_add_test(ins, copy_names_every_published_column);
	suite_add_tcase(s, ins);

	tcase_add_checked_fixture(mask, setup, teardown);
	tcase_add_test(mask, an_update_without_old_key_leaves_the_key_out_of_set);
	tcase_add_test(mask, an_update_that_changes_the_key_sets_it_and_matches_the_old_one);
	tcase_add_test(mask, an_unchanged_toasted_column_is_left_out_of_set);
	tcase_add_test(mask, an_update_with_nothing_to_set_touches_the_row);
	tcase_add_test(mask, a_using_index_identity_matches_by_the_index_columns);
	tcase_add_test(mask, a_full_identity_matches_one_row_by_every_sent_old_column);
	tcase_add_test(mask, a_full_identity_compares_types_without_equality_as_text);
	tcase_add_test(mask, a_full_identity_row_of_a_table_without_columns_is_found_by_ctid);
	tcase_add_test(mask, a_full_identity_change_without_the_old_row_is_refused);
	tcase_add_test(mask, a_table_without_identity_key_is_refused);
	tcase_add_test(mask, an_unchanged_toasted_key_column_is_refused_and_named);
	suite_add_tcase(s, mask);

	tcase_add_checked_fixture(multi, setup, teardown);
	tcase_add_test(multi, two_updated_rows_go_through_a_typed_values_list);
	tcase_add_test(multi, three_deleted_rows_go_through_a_typed_values_list);
	tcase_add_test(multi, names_that_needed_quoting_are_written_as_the_target_quoted_them);
	tcase_add_test(multi, every_column_mask_numbers_as_many_parameters_as_it_binds);
	suite_add_tcase(s, multi);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(apply_sql_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
