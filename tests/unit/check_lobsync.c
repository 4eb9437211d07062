/*
 * check_lobsync.c — the pure parts of the large-object carry-over: which
 * side the merge of the two OID lists takes next (create, unlink, compare),
 * which chunks are rewritten, and where an object ends. The work against
 * real servers is tests/integration/check_lobsync.c.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lobsync.h"

static const struct
{
	bool have_src;
	uint32_t src;
	bool have_tgt;
	uint32_t tgt;
	lobsync_side want;
} merges[] = {
    {false, 0, false, 0, LOBSYNC_DONE},
    /* the application created one after the snapshot */
    {true, 16400, false, 0, LOBSYNC_SOURCE_ONLY},
    {true, 16400, true, 16500, LOBSYNC_SOURCE_ONLY},
    /* the application unlinked one */
    {false, 0, true, 16400, LOBSYNC_TARGET_ONLY},
    {true, 16500, true, 16400, LOBSYNC_TARGET_ONLY},
    {true, 16400, true, 16400, LOBSYNC_BOTH},
    /* OIDs above 2^31 order as unsigned, as the server orders oid */
    {true, 2147483648u, true, 16400, LOBSYNC_TARGET_ONLY},
    {true, 16400, true, 4294967295u, LOBSYNC_SOURCE_ONLY},
};

START_TEST(the_merge_takes_the_lower_oid_and_says_which_side_has_it)
{
	ck_assert_int_eq(lobsync_merge_step(merges[_i].have_src, merges[_i].src, merges[_i].have_tgt,
	                                    merges[_i].tgt),
	                 merges[_i].want);
}
END_TEST

/* A chunk of len bytes with hash h (len -1: no such chunk). */
static lobsync_chunk
chunk(int64_t len, const char *h)
{
	lobsync_chunk c = {.len = len};

	strcpy(c.md5, h);
	return c;
}

#define H1 "0cc175b9c0f1b6a831c399e269772661"
#define H2 "92eb5ffee6ae2fec3ad71c777531578f"
#define HE "d41d8cd98f00b204e9800998ecf8427e" /* the empty chunk */

static const struct
{
	int64_t slen;
	const char *sh;
	int64_t tlen;
	const char *th;
	bool rewrite;
} chunks[] = {
    /* untouched */
    {LOBSYNC_CHUNK, H1, LOBSYNC_CHUNK, H1, false},
    {5, H1, 5, H1, false},
    /* rewritten in place (lo_put): same length, other bytes */
    {LOBSYNC_CHUNK, H1, LOBSYNC_CHUNK, H2, true},
    /* grown: the target's chunk is shorter or absent */
    {LOBSYNC_CHUNK, H1, 5, H2, true},
    {5, H1, -1, "", true},
    /* shrunk: the source has nothing here; the target is cut, not rewritten */
    {-1, "", LOBSYNC_CHUNK, H1, false},
    {0, HE, 5, H1, false},
    /* an empty object on both sides */
    {0, HE, 0, HE, false},
};

START_TEST(a_chunk_is_rewritten_only_when_the_source_has_other_bytes_there)
{
	lobsync_chunk s = chunk(chunks[_i].slen, chunks[_i].sh);
	lobsync_chunk t = chunk(chunks[_i].tlen, chunks[_i].th);

	ck_assert_int_eq(lobsync_chunk_differs(&s, &t), chunks[_i].rewrite);
}
END_TEST

START_TEST(an_object_ends_at_its_first_short_chunk)
{
	ck_assert(!lobsync_chunk_is_last(LOBSYNC_CHUNK));
	ck_assert(lobsync_chunk_is_last(LOBSYNC_CHUNK - 1));
	/* an object of exactly n chunks: chunk n reads empty */
	ck_assert(lobsync_chunk_is_last(0));
	ck_assert(lobsync_chunk_is_last(-1));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("lobsync");
	TCase *tc = tcase_create("plan");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, the_merge_takes_the_lower_oid_and_says_which_side_has_it, 0,
	                    (int)(sizeof(merges) / sizeof(merges[0])));
	tcase_add_loop_test(tc, a_chunk_is_rewritten_only_when_the_source_has_other_bytes_there, 0,
	                    (int)(sizeof(chunks) / sizeof(chunks[0])));
	tcase_add_test(tc, an_object_ends_at_its_first_short_chunk);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
