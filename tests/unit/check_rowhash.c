/*
 * check_rowhash.c — the order-free digest of COPY streams: text and binary
 * rows give the hash of their bytes whatever the chunks they come in, the
 * same rows in another order or split in parts sum the same, a changed row
 * does not, and malformed or cut binary data is an error, never a crash.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "rowhash.h"

/* Digest of stream fed in chunks of step bytes (0: whole); false if it fails. */
static bool
digest(bool binary, const void *data, size_t len, size_t step, int64_t *rows, uint64_t *sum)
{
	rowhash h;
	bool ok;

	ck_assert(rowhash_init(&h, binary));
	ok = true;
	if (step == 0)
		ok = rowhash_feed(&h, data, len);
	else
		for (size_t at = 0; ok && at < len; at += step)
			ok = rowhash_feed(&h, (const char *)data + at, len - at < step ? len - at : step);
	ok = ok && rowhash_finish(&h);
	*rows = h.rows;
	*sum = h.sum;
	rowhash_free(&h);
	return ok;
}

static const char text[] = "1\tone\n2\t\\N\n3\ttab\\there\n\n";

START_TEST(text_rows_hash_as_their_lines_in_any_chunks)
{
	uint64_t want = XXH3_64bits("1\tone\n", 6) + XXH3_64bits("2\t\\N\n", 5) +
	                XXH3_64bits("3\ttab\\there\n", 12) + XXH3_64bits("\n", 1);

	for (size_t step = 0; step < 9; step++)
	{
		int64_t rows;
		uint64_t sum;

		ck_assert(digest(false, text, strlen(text), step, &rows, &sum));
		ck_assert_int_eq(rows, 4);
		ck_assert(sum == want);
	}
}
END_TEST

START_TEST(text_rows_in_another_order_or_in_parts_sum_the_same_a_changed_row_does_not)
{
	static const char other[] = "\n3\ttab\\there\n1\tone\n2\t\\N\n";
	static const char changed[] = "1\tone\n2\t\\N\n3\ttab\\thera\n\n";
	int64_t r1, r2, r3, r4;
	uint64_t s1, s2, s3, s4;

	ck_assert(digest(false, text, strlen(text), 0, &r1, &s1));
	ck_assert(digest(false, other, strlen(other), 3, &r2, &s2));
	ck_assert(r1 == r2 && s1 == s2);
	/* two parts summed */
	ck_assert(digest(false, text, 11, 0, &r3, &s3));
	ck_assert(digest(false, text + 11, strlen(text) - 11, 2, &r4, &s4));
	ck_assert(r3 + r4 == r1 && s3 + s4 == s1);
	ck_assert(digest(false, changed, strlen(changed), 0, &r3, &s3));
	ck_assert(r3 == r1 && s3 != s1);
}
END_TEST

START_TEST(text_cut_within_a_row_is_an_error)
{
	int64_t rows;
	uint64_t sum;

	ck_assert(!digest(false, "1\tone\n2\ttw", 11, 0, &rows, &sum));
}
END_TEST

/* A binary COPY stream: header (with an extension of ext bytes), tuples, trailer. */
static size_t
binary_stream(unsigned char *out, int ext, size_t *tuple_at, size_t *tuple_len)
{
	static const unsigned char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0377, '\r', '\n', 0};
	size_t n = 0;

	memcpy(out, sig, 11);
	n = 11;
	memset(out + n, 0, 4); /* flags */
	n += 4;
	out[n++] = 0;
	out[n++] = 0;
	out[n++] = 0;
	out[n++] = (unsigned char)ext;
	memset(out + n, 'x', (size_t)ext);
	n += (size_t)ext;
	/* tuple 1: 3 fields: int4 7, NULL, "" */
	tuple_at[0] = n;
	memcpy(out + n,
	       "\0\3"
	       "\0\0\0\4\0\0\0\7"
	       "\377\377\377\377"
	       "\0\0\0\0",
	       2 + 8 + 4 + 4);
	n += 18;
	tuple_len[0] = 18;
	/* tuple 2: 1 field: "hello" */
	tuple_at[1] = n;
	memcpy(out + n, "\0\1\0\0\0\5hello", 11);
	n += 11;
	tuple_len[1] = 11;
	/* tuple 3: no fields */
	tuple_at[2] = n;
	memcpy(out + n, "\0\0", 2);
	n += 2;
	tuple_len[2] = 2;
	memcpy(out + n, "\377\377", 2); /* trailer */
	return n + 2;
}

START_TEST(binary_tuples_hash_as_their_bytes_in_any_chunks)
{
	unsigned char s[128];
	size_t at[3], len[3];
	size_t n = binary_stream(s, _i, at, len);
	uint64_t want = 0;

	for (int i = 0; i < 3; i++)
		want += XXH3_64bits(s + at[i], len[i]);
	for (size_t step = 0; step < 24; step++)
	{
		int64_t rows;
		uint64_t sum;

		ck_assert_msg(digest(true, s, n, step, &rows, &sum), "step %zu", step);
		ck_assert_int_eq(rows, 3);
		ck_assert(sum == want);
	}
}
END_TEST

START_TEST(binary_malformed_or_cut_is_an_error)
{
	unsigned char s[128];
	size_t at[3], len[3];
	size_t n = binary_stream(s, 0, at, len);
	int64_t rows;
	uint64_t sum;
	rowhash h;

	/* cut before the trailer, or within a tuple */
	ck_assert(!digest(true, s, n - 2, 0, &rows, &sum));
	ck_assert(!digest(true, s, at[1] + 5, 1, &rows, &sum));
	/* data after the trailer */
	memcpy(s + n, "\0\0", 2);
	ck_assert(!digest(true, s, n + 2, 0, &rows, &sum));
	/* a bad field length */
	memcpy(s + at[1] + 2, "\377\377\377\376", 4);
	ck_assert(!digest(true, s, n, 0, &rows, &sum));
	/* no signature: and every later feed fails too */
	ck_assert(rowhash_init(&h, true));
	ck_assert(!rowhash_feed(&h, "COPY text, not binary\n", 22));
	ck_assert(strstr(h.error, "signature") != NULL);
	ck_assert(!rowhash_feed(&h, s, n));
	ck_assert(!rowhash_finish(&h));
	rowhash_free(&h);
}
END_TEST

static Suite *
rowhash_suite(void)
{
	Suite *s = suite_create("rowhash");
	TCase *tc = tcase_create("rowhash");

	tcase_add_test(tc, text_rows_hash_as_their_lines_in_any_chunks);
	tcase_add_test(tc, text_rows_in_another_order_or_in_parts_sum_the_same_a_changed_row_does_not);
	tcase_add_test(tc, text_cut_within_a_row_is_an_error);
	/* with a header extension of 0 and of 5 bytes */
	tcase_add_loop_test(tc, binary_tuples_hash_as_their_bytes_in_any_chunks, 0, 6);
	tcase_add_test(tc, binary_malformed_or_cut_is_an_error);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(rowhash_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
