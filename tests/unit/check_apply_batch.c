/*
 * check_apply_batch.c — what the applier decides without a server: a batch
 * of UPDATEs keeps one row per key (the later update of a key replaces the
 * earlier row's values, other keys get rows of their own, and keys that only
 * look alike when their columns are run together stay apart); and the rows
 * a long run of inserts hands to COPY, in COPY's text format with every
 * character that needs it escaped.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"

/* A row of three columns: (id, balance, note), text values; NULL for SQL NULL. */
typedef struct row3
{
	pgo_value cols[3];
	pgo_tuple t;
} row3;

static const pgo_tuple *
row_of(row3 *r, const char *id, const char *balance, const char *note)
{
	const char *v[3] = {id, balance, note};

	for (int i = 0; i < 3; i++)
	{
		r->cols[i].kind = v[i] ? PGO_COL_TEXT : PGO_COL_NULL;
		r->cols[i].data = v[i];
		r->cols[i].len = v[i] ? (uint32_t)strlen(v[i]) : 0;
	}
	r->t.ncols = 3;
	r->t.cols = r->cols;
	return &r->t;
}

/* ---- batches of UPDATEs of public.accounts, matched by id ---- */

/* UPDATE accounts SET balance, note WHERE id: two SET values, then the key. */
static const uint8_t by_id[] = {MASK_WHERE, MASK_SET, MASK_SET};
#define BY_ID_WIDTH 3

static applier app;
static relcache_entry accounts;
static apply_rel accounts_target;

static void
setup(void)
{
	memset(&app, 0, sizeof(app));
	app.replica_role = true; /* one open batch per relation: nothing is sent here */
	memset(&accounts, 0, sizeof(accounts));
	accounts.relid = 16384;
	accounts.ncols = 3;
	memset(&accounts_target, 0, sizeof(accounts_target));
	accounts_target.relid = 16384;
	accounts_target.ncols = 3;
}

static void
teardown(void)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		free(app.batches[i].values);
		free(app.batches[i].mask);
	}
}

/* Batch an update of m as apply_change_row does: room for the row, then its values. */
static const char **
batch_update(const pgo_tuple *m, bool *replaced)
{
	const char **row = NULL;

	ck_assert(apply_batch_row(&app, &accounts, &accounts_target, 'U', by_id, BY_ID_WIDTH, m, &row,
	                          replaced));
	ck_assert_ptr_nonnull(row);
	row[0] = m->cols[1].data;
	row[1] = m->cols[2].data;
	row[2] = m->cols[0].data;
	return row;
}

START_TEST(two_updates_of_one_key_become_one_row_with_the_later_values)
{
	row3 first, second;
	bool replaced;
	const char **r1 = batch_update(row_of(&first, "3", "10.00", "opened"), &replaced);
	const char **r2;
	apply_batch *b;

	ck_assert(!replaced);
	r2 = batch_update(row_of(&second, "3", "25.50", "paid in"), &replaced);
	ck_assert(replaced);
	ck_assert_ptr_eq(r1, r2);
	b = apply_batch_of(&app, &accounts);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->rows, 1);
	ck_assert_str_eq(b->values[0], "25.50");
	ck_assert_str_eq(b->values[1], "paid in");
	ck_assert_str_eq(b->values[2], "3");
}
END_TEST

START_TEST(updates_of_different_keys_are_rows_of_their_own)
{
	row3 r[3];
	bool replaced;
	apply_batch *b;

	(void)batch_update(row_of(&r[0], "3", "10.00", "a"), &replaced);
	ck_assert(!replaced);
	(void)batch_update(row_of(&r[1], "7", "11.00", "b"), &replaced);
	ck_assert(!replaced);
	(void)batch_update(row_of(&r[2], "3", "12.00", "c"), &replaced);
	ck_assert(replaced);
	b = apply_batch_of(&app, &accounts);
	ck_assert_int_eq(b->rows, 2);
	ck_assert_str_eq(b->values[0], "12.00");
	ck_assert_str_eq(b->values[BY_ID_WIDTH + 0], "11.00");
	ck_assert_str_eq(b->values[BY_ID_WIDTH + 2], "7");
}
END_TEST

START_TEST(a_batch_of_inserts_keeps_every_row)
{
	row3 r;
	bool replaced;
	const char **row;

	for (int i = 0; i < 3; i++)
	{
		ck_assert(apply_batch_row(&app, &accounts, &accounts_target, 'I', NULL, 3, NULL, &row,
		                          &replaced));
		ck_assert(!replaced);
		(void)row_of(&r, "3", "1", "same row again");
		for (int c = 0; c < 3; c++)
			row[c] = r.cols[c].data;
	}
	ck_assert_int_eq(apply_batch_of(&app, &accounts)->rows, 3);
}
END_TEST

/* ---- key hashes and key comparison ---- */

/* Key (id, region): a two-column key. */
static const uint8_t two_keys[] = {MASK_WHERE, MASK_WHERE, MASK_SET};

START_TEST(keys_that_only_look_alike_run_together_hash_apart)
{
	row3 ab_c, a_bc;

	ck_assert_uint_ne(apply_batch_key_hash(row_of(&ab_c, "ab", "c", "x"), two_keys, 3),
	                  apply_batch_key_hash(row_of(&a_bc, "a", "bc", "x"), two_keys, 3));
}
END_TEST

START_TEST(a_key_hash_reads_the_key_columns_only_and_is_never_zero)
{
	row3 one, other_note, empty;
	uint64_t h = apply_batch_key_hash(row_of(&one, "3", "10.00", "a"), by_id, 3);

	ck_assert_uint_eq(h, apply_batch_key_hash(row_of(&other_note, "3", "99.00", "b"), by_id, 3));
	ck_assert_uint_ne(h, 0);
	ck_assert_uint_ne(apply_batch_key_hash(row_of(&empty, "", NULL, NULL), by_id, 3), 0);
}
END_TEST

START_TEST(a_rows_key_is_compared_value_by_value)
{
	row3 r, same, longer, null_key;
	bool replaced;
	apply_batch *b;

	(void)batch_update(row_of(&r, "3", "10.00", "a"), &replaced);
	b = apply_batch_of(&app, &accounts);
	ck_assert(apply_batch_same_key(b, 0, row_of(&same, "3", "0", "z"), 3));
	ck_assert(!apply_batch_same_key(b, 0, row_of(&longer, "33", "10.00", "a"), 3));
	ck_assert(!apply_batch_same_key(b, 0, row_of(&null_key, NULL, "10.00", "a"), 3));
}
END_TEST

/* ---- rows in COPY's text format ---- */

static strbuf copybuf;

static void
copy_setup(void)
{
	strbuf_init(&copybuf);
}

static void
copy_teardown(void)
{
	strbuf_free(&copybuf);
}

START_TEST(a_copy_row_escapes_what_copy_would_misread)
{
	row3 r;

	ck_assert(apply_copy_encode(&copybuf, row_of(&r, "1", "tab\there", "back\\slash\nnew\rline")));
	ck_assert_str_eq(strbuf_data(&copybuf), "1\ttab\\there\tback\\\\slash\\nnew\\rline\n");
}
END_TEST

START_TEST(a_copy_row_writes_null_and_empty_apart)
{
	row3 r;

	ck_assert(apply_copy_encode(&copybuf, row_of(&r, "2", NULL, "")));
	ck_assert_str_eq(strbuf_data(&copybuf), "2\t\\N\t\n");
}
END_TEST

START_TEST(copy_rows_follow_each_other_and_a_row_without_columns_is_a_newline)
{
	row3 r;
	pgo_tuple none = {.ncols = 0, .cols = NULL};

	ck_assert(apply_copy_encode(&copybuf, row_of(&r, "1", "a", "b")));
	ck_assert(apply_copy_encode(&copybuf, &none));
	ck_assert(apply_copy_encode(&copybuf, row_of(&r, "2", "c", "d")));
	ck_assert_str_eq(strbuf_data(&copybuf), "1\ta\tb\n\n2\tc\td\n");
}
END_TEST

static Suite *
apply_batch_suite(void)
{
	Suite *s = suite_create("apply_batch");
	TCase *dedup = tcase_create("one row per key");
	TCase *keys = tcase_create("keys");
	TCase *copy = tcase_create("COPY rows");

	tcase_add_checked_fixture(dedup, setup, teardown);
	tcase_add_test(dedup, two_updates_of_one_key_become_one_row_with_the_later_values);
	tcase_add_test(dedup, updates_of_different_keys_are_rows_of_their_own);
	tcase_add_test(dedup, a_batch_of_inserts_keeps_every_row);
	suite_add_tcase(s, dedup);
	tcase_add_checked_fixture(keys, setup, teardown);
	tcase_add_test(keys, keys_that_only_look_alike_run_together_hash_apart);
	tcase_add_test(keys, a_key_hash_reads_the_key_columns_only_and_is_never_zero);
	tcase_add_test(keys, a_rows_key_is_compared_value_by_value);
	suite_add_tcase(s, keys);
	tcase_add_checked_fixture(copy, copy_setup, copy_teardown);
	tcase_add_test(copy, a_copy_row_escapes_what_copy_would_misread);
	tcase_add_test(copy, a_copy_row_writes_null_and_empty_apart);
	tcase_add_test(copy, copy_rows_follow_each_other_and_a_row_without_columns_is_a_newline);
	suite_add_tcase(s, copy);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(apply_batch_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
