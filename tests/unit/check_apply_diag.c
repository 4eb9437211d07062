/*
 * check_apply_diag.c — the diagnostic records that name the missing row of a
 * batched UPDATE/DELETE: what is written is read back (keys, NULL keys, the
 * commit LSN of each row's own transaction), records follow each other, and
 * every record cut short is refused without moving the reader; and the key
 * text of a row and of a batch that messages quote.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apply_internal.h"

/* A row of three columns: (id, region, note), text values. */
typedef struct row3
{
	pgo_value cols[3];
	pgo_tuple t;
} row3;

static const pgo_tuple *
row_of(row3 *r, const char *id, const char *region, const char *note)
{
	const char *v[3] = {id, region, note};

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

/* Key (id, region), note only set. */
static const uint8_t key_mask[] = {MASK_WHERE, MASK_WHERE | MASK_SET, MASK_SET};

static strbuf diag;

static void
setup(void)
{
	strbuf_init(&diag);
}

static void
teardown(void)
{
	strbuf_free(&diag);
}

/* The next key of row equals want. */
static void
assert_key(const apply_diag_row *row, size_t *koff, const char *want)
{
	const char *value = NULL;
	uint32_t len = 0;

	ck_assert(apply_diag_key(row, koff, &value, &len));
	ck_assert_uint_eq(len, strlen(want));
	ck_assert(memcmp(value, want, len) == 0);
}

START_TEST(a_rows_keys_and_transaction_are_read_back)
{
	row3 r;
	apply_diag_row row;
	size_t off = 0, koff = 0;
	const char *value;
	uint32_t len;

	ck_assert(
	    apply_diag_append(&diag, 0x16B3748, row_of(&r, "42", "eu-west", "hello"), key_mask, 3));
	ck_assert(apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
	ck_assert_uint_eq(off, strbuf_len(&diag));
	ck_assert_uint_eq(row.txn_lsn, 0x16B3748);
	ck_assert_uint_eq(row.nkeys, 2);
	assert_key(&row, &koff, "42");
	assert_key(&row, &koff, "eu-west");
	ck_assert(!apply_diag_key(&row, &koff, &value, &len)); /* the note is not a key */
	ck_assert(!apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
}
END_TEST

START_TEST(each_row_of_a_batch_keeps_its_own_transaction)
{
	/* three source transactions grouped into one batch: a missing row names its own */
	row3 r;
	apply_diag_row row;
	size_t off = 0;
	const char *ids[] = {"1", "22", "333"};

	for (int i = 0; i < 3; i++)
		ck_assert(apply_diag_append(&diag, 1000 + (pgo_lsn)i, row_of(&r, ids[i], "us", NULL),
		                            key_mask, 3));
	for (int i = 0; i < 3; i++)
	{
		size_t koff = 0;

		ck_assert(apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
		ck_assert_uint_eq(row.txn_lsn, 1000 + (pgo_lsn)i);
		assert_key(&row, &koff, ids[i]);
		assert_key(&row, &koff, "us");
	}
	ck_assert_uint_eq(off, strbuf_len(&diag));
}
END_TEST

START_TEST(a_null_key_value_is_an_empty_one)
{
	/* the codec does not judge: a NULL value (no bytes) reads back as an empty one */
	row3 r;
	apply_diag_row row;
	size_t off = 0, koff = 0;

	ck_assert(apply_diag_append(&diag, 7, row_of(&r, "5", NULL, NULL), key_mask, 3));
	ck_assert(apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
	assert_key(&row, &koff, "5");
	assert_key(&row, &koff, "");
}
END_TEST

START_TEST(a_row_without_keys_is_a_record_too)
{
	const uint8_t none[] = {MASK_SET, MASK_SET, 0};
	row3 r;
	apply_diag_row row;
	size_t off = 0, koff = 0;
	const char *value;
	uint32_t len;

	ck_assert(apply_diag_append(&diag, 9, row_of(&r, "1", "2", "3"), none, 3));
	ck_assert_uint_eq(strbuf_len(&diag), 10);
	ck_assert(apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
	ck_assert_uint_eq(row.nkeys, 0);
	ck_assert(!apply_diag_key(&row, &koff, &value, &len));
}
END_TEST

START_TEST(every_truncated_record_fails_cleanly)
{
	row3 r;

	ck_assert(apply_diag_append(&diag, 77, row_of(&r, "1234", "north", "x"), key_mask, 3));
	for (size_t cut = 0; cut < strbuf_len(&diag); cut++)
	{
		char *copy = malloc(cut ? cut : 1); /* exactly cut bytes, so a sanitizer sees overreads */
		apply_diag_row row;
		size_t off = 0;

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, strbuf_data(&diag), cut);
		ck_assert_msg(!apply_diag_next(copy, cut, &off, &row), "a record cut at %zu was read", cut);
		ck_assert_uint_eq(off, 0);
		free(copy);
	}
}
END_TEST

START_TEST(a_key_cut_short_inside_a_record_fails_cleanly)
{
	row3 r;
	apply_diag_row row;
	size_t off = 0, koff = 0;
	const char *value;
	uint32_t len;

	ck_assert(apply_diag_append(&diag, 77, row_of(&r, "1234", "north", "x"), key_mask, 3));
	ck_assert(apply_diag_next(strbuf_data(&diag), strbuf_len(&diag), &off, &row));
	for (size_t cut = 0; cut < row.keys_len; cut++)
	{
		apply_diag_row shorter = row;
		size_t k = 0;
		int keys = 0;

		shorter.keys_len = cut;
		while (apply_diag_key(&shorter, &k, &value, &len))
			keys++;
		ck_assert_int_lt(keys, 2);
		ck_assert_uint_le(k, cut);
	}
	assert_key(&row, &koff, "1234");
}
END_TEST

/* The source's side of the table: (id, region) is the key. */
static char col_id[] = "id", col_region[] = "region", col_note[] = "note";
static relcache_column cols[] = {
    {.name = col_id, .key = true}, {.name = col_region, .key = true}, {.name = col_note}};
static const relcache_entry rel = {.ncols = 3, .nkeys = 2, .cols = cols};

START_TEST(a_rows_key_is_named_column_by_column)
{
	row3 r;
	char buf[APPLY_KEY_TEXT];

	apply_diag_key_text(&rel, row_of(&r, "42", "eu-west", "hello"), key_mask, buf, sizeof(buf));
	ck_assert_str_eq(buf, "with id=42, region=eu-west");
	apply_diag_key_text(&rel, row_of(&r, "42", NULL, "hello"), key_mask, buf, sizeof(buf));
	ck_assert_str_eq(buf, "with id=42, region=NULL");
}
END_TEST

START_TEST(a_long_key_value_is_cut_and_the_text_fits_its_buffer)
{
	const char *long_id = "0123456789012345678901234567890123456789-and-the-rest";
	row3 r;
	char buf[APPLY_KEY_TEXT], small[24];

	apply_diag_key_text(&rel, row_of(&r, long_id, "x", NULL), key_mask, buf, sizeof(buf));
	ck_assert_str_eq(buf, "with id=0123456789012345678901234567890123456789, region=x");
	apply_diag_key_text(&rel, row_of(&r, long_id, "x", NULL), key_mask, small, sizeof(small));
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert(strncmp(small, "with id=0123", 12) == 0);
}
END_TEST

START_TEST(a_batchs_keys_are_listed_until_the_summary_is_full)
{
	/* "with id=1, region=us; id=2, region=us; ..." then no more once APPLY_KEY_TEXT is reached */
	row3 r;
	char id[16];
	strbuf keys;

	strbuf_init(&keys);
	apply_diag_keys_add(&keys, &rel, row_of(&r, "1", "us", NULL), key_mask);
	apply_diag_keys_add(&keys, &rel, row_of(&r, "2", "us", NULL), key_mask);
	ck_assert_str_eq(strbuf_data(&keys), "with id=1, region=us; id=2, region=us");
	for (int i = 3; i < 100; i++)
	{
		snprintf(id, sizeof(id), "%d", i);
		apply_diag_keys_add(&keys, &rel, row_of(&r, id, "us", NULL), key_mask);
	}
	ck_assert_uint_ge(strbuf_len(&keys), APPLY_KEY_TEXT - 1);
	ck_assert_uint_lt(strbuf_len(&keys), 2 * APPLY_KEY_TEXT);
	ck_assert_ptr_null(strstr(strbuf_data(&keys), "id=99,"));
	strbuf_free(&keys);
}
END_TEST

static Suite *
apply_diag_suite(void)
{
	Suite *s = suite_create("apply_diag");
	TCase *tc = tcase_create("records");
	TCase *text = tcase_create("key text");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_rows_keys_and_transaction_are_read_back);
	tcase_add_test(tc, each_row_of_a_batch_keeps_its_own_transaction);
	tcase_add_test(tc, a_null_key_value_is_an_empty_one);
	tcase_add_test(tc, a_row_without_keys_is_a_record_too);
	tcase_add_test(tc, every_truncated_record_fails_cleanly);
	tcase_add_test(tc, a_key_cut_short_inside_a_record_fails_cleanly);
	suite_add_tcase(s, tc);
	tcase_add_test(text, a_rows_key_is_named_column_by_column);
	tcase_add_test(text, a_long_key_value_is_cut_and_the_text_fits_its_buffer);
	tcase_add_test(text, a_batchs_keys_are_listed_until_the_summary_is_full);
	suite_add_tcase(s, text);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(apply_diag_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
