/*
 * check_pipeline.c — setting up and tearing down the streaming pipeline
 * without a server: teardown is safe from nothing, after each partial
 * set-up, and twice; a failed step says why; a torn-down pipeline can be set
 * up again (what migrate does on every reconnect); START_REPLICATION asks
 * for what the pipeline was set up for.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

static pipeline pl; /* big, like the commands' */

/* A command that fails before it set anything up frees nothing and keeps its message. */
START_TEST(teardown_of_nothing_keeps_the_message)
{
	char err[256] = "could not connect";

	memset(&pl, 0, sizeof(pl));
	pipeline_abandon(&pl, err, sizeof(err));
	pipeline_free(&pl);
	pipeline_free(&pl);
	ck_assert_str_eq(err, "could not connect");
	ck_assert(!pl.cache_ready && !pl.ring_ready && !pl.app_open && !pl.rcv.started);
}
END_TEST

/* decode fails after the relation cache is set up (its connection failed): the cache goes. */
START_TEST(teardown_after_the_cache_only)
{
	char err[256] = "";

	memset(&pl, 0, sizeof(pl));
	ck_assert(pipeline_init(&pl, NULL, err, sizeof(err)));
	ck_assert(pl.cache_ready);
	pipeline_free(&pl);
	ck_assert(!pl.cache_ready);
	pipeline_free(&pl);
}
END_TEST

/* A decoder that cannot be set up names the protocol version; the ring is freed anyway. */
START_TEST(decoder_failure_is_reported_and_freed)
{
	char err[256] = "";

	memset(&pl, 0, sizeof(pl));
	ck_assert(pipeline_init(&pl, NULL, err, sizeof(err)));
	ck_assert(!pipeline_prepare(&pl, 64 * 1024, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "could not set up the decoder for protocol version 0");
	ck_assert(pl.ring_ready);
	pipeline_free(&pl);
	ck_assert(!pl.ring_ready && !pl.cache_ready);
}
END_TEST

/* Every reconnect of migrate sets the same pipeline up again after a teardown. */
START_TEST(set_up_again_after_teardown)
{
	char err[256] = "";

	memset(&pl, 0, sizeof(pl));
	for (int proto = PGO_PROTO_VERSION_MIN; proto <= PGO_PROTO_VERSION_MAX; proto++)
	{
		ck_assert(pipeline_init(&pl, NULL, err, sizeof(err)));
		ck_assert_msg(pipeline_prepare(&pl, 64 * 1024, proto, err, sizeof(err)), "%s", err);
		ck_assert_int_eq(pipeline_proto_version(&pl), proto);
		ck_assert(!pl.rcv.started);
		/* no receiver started: stopping it is a no-op that succeeds */
		ck_assert(pipeline_stop(&pl, err, sizeof(err)));
		pipeline_abandon(&pl, err, sizeof(err));
		pipeline_free(&pl);
	}
	ck_assert_str_eq(err, "");
}
END_TEST

/* bench and decode close everything in one call on any path, keeping the first message. */
START_TEST(close_from_any_point_keeps_the_message)
{
	char err[256] = "replication slot \"s\" does not exist on the source";
	replconn rc = {0};

	memset(&pl, 0, sizeof(pl));
	pipeline_close(&pl, &rc, err, sizeof(err));
	ck_assert(pipeline_init(&pl, NULL, err, sizeof(err)));
	ck_assert(pipeline_prepare(&pl, 64 * 1024, 1, err, sizeof(err)));
	pipeline_close(&pl, &rc, err, sizeof(err));
	pipeline_close(&pl, &rc, NULL, 0);
	ck_assert_str_eq(err, "replication slot \"s\" does not exist on the source");
	ck_assert(!pl.cache_ready && !pl.ring_ready && !pl.rcv.started && rc.conn == NULL);
}
END_TEST

/*
 * A decoder set up for protocol version 3 streams with version 3: a
 * PostgreSQL 14 source (up to 2) refuses it before anything is sent, and no
 * receiver starts.
 */
START_TEST(streaming_asks_for_the_decoders_protocol_version)
{
	char err[256] = "";
	replconn rc = {0};
	replstart start = {.slot = "s", .publications = (const char *[]){"p", NULL}};

	rc.server_version = 140000;
	memset(&pl, 0, sizeof(pl));
	ck_assert(pipeline_init(&pl, NULL, err, sizeof(err)));
	ck_assert(pipeline_prepare(&pl, 64 * 1024, 3, err, sizeof(err)));
	ck_assert(!pipeline_stream(&pl, &rc, &start, 10000, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "protocol version 3 is not available: this server (140000) supports "
	                      "pgoutput protocol versions 1 to 2");
	ck_assert(!pl.rcv.started);
	pipeline_close(&pl, &rc, NULL, 0);
}
END_TEST

/* The SQL catch-up names its publications as START_REPLICATION does, quoted. */
START_TEST(catch_up_quotes_publication_names)
{
	char buf[64];

	ck_assert(catchup_publication_names((const char *[]){"pub", NULL}, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "\"pub\"");
	ck_assert(
	    catchup_publication_names((const char *[]){"a\"b", "Ünï, x", NULL}, buf, sizeof(buf)));
	ck_assert_str_eq(buf, "\"a\"\"b\",\"Ünï, x\"");
	/* too long for the buffer: refused, not cut */
	ck_assert(!catchup_publication_names((const char *[]){"abcdefgh", NULL}, buf, 8));
}
END_TEST

/*
 * The pipelined catch-up's chunks for a backlog of total bytes: they
 * double from the first up to max, tapered by catchup_taper. Returns the
 * count; sizes[] gets them.
 */
static int
catch_up_chunks(pgo_lsn total, pgo_lsn max, pgo_lsn *sizes, int cap)
{
	const pgo_lsn start = 0x10000000;
	pgo_lsn from = start, chunk = CATCHUP_FIRST_CHUNK_BYTES;
	int n = 0;

	while (from < start + total && n < cap)
	{
		pgo_lsn c = catchup_taper(chunk, from, start + total, start);
		pgo_lsn upto = start + total - from > c ? from + c : start + total;

		sizes[n++] = upto - from;
		from = upto;
		chunk = chunk * 2 > max ? max : chunk * 2;
	}
	return n;
}

/*
 * A backlog of 15 MB (200k one-row deletes) or 52 MB (pgbench's tpcb) is
 * read in chunks that double and then taper: the last chunk, applied while
 * the source has nothing more to decode, is a small part of the backlog
 * (with chunks that only double it was 8 MB of 15 and 21 of 52), and none
 * is so small that decoding the WAL again from the slot's restart point
 * would cost more than it saves (an eighth of what was read, or the rest).
 */
START_TEST(catch_up_chunks_taper_towards_the_end_of_the_backlog)
{
	const pgo_lsn mb = 1024 * 1024;
	const pgo_lsn totals[] = {15 * mb, 52 * mb, 300 * mb};
	pgo_lsn sizes[64];

	for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++)
	{
		int n = catch_up_chunks(totals[t], CATCHUP_DEFAULT_CHUNK_BYTES, sizes, 64);
		pgo_lsn read = 0;

		ck_assert_int_le(n, 12);
		ck_assert_uint_le(sizes[n - 1], totals[t] / 8);
		for (int i = 0; i < n; i++)
		{
			pgo_lsn left = totals[t] - read;
			pgo_lsn floor = read / CATCHUP_TAPER_FLOOR_DIV;

			if (floor < CATCHUP_FIRST_CHUNK_BYTES)
				floor = CATCHUP_FIRST_CHUNK_BYTES;
			ck_assert_uint_ge(sizes[i], left < floor ? left : floor);
			read += sizes[i];
		}
		ck_assert_uint_eq(read, totals[t]);
	}
}
END_TEST

/*
 * A backlog of many largest chunks is read in largest chunks up to its
 * end: the taper only shortens the last few, each by half at most.
 */
START_TEST(a_long_backlog_is_read_in_largest_chunks_until_its_end)
{
	const pgo_lsn mb = 1024 * 1024, max = 256 * mb, total = 10 * 1024 * mb;
	pgo_lsn sizes[128];
	int n = catch_up_chunks(total, max, sizes, 128);
	int largest = 0;

	for (int i = 0; i < n; i++)
		largest += sizes[i] == max;
	ck_assert_int_ge(largest, (int)(total / max) - 3);
	ck_assert_int_le(n, (int)(total / max) + 12);
	ck_assert_uint_le(sizes[n - 1], max);
}
END_TEST

/* All the cases. */
static Suite *
pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, teardown_of_nothing_keeps_the_message);
	tcase_add_test(tc, catch_up_quotes_publication_names);
	tcase_add_test(tc, catch_up_chunks_taper_towards_the_end_of_the_backlog);
	tcase_add_test(tc, a_long_backlog_is_read_in_largest_chunks_until_its_end);
	tcase_add_test(tc, teardown_after_the_cache_only);
	tcase_add_test(tc, decoder_failure_is_reported_and_freed);
	tcase_add_test(tc, set_up_again_after_teardown);
	tcase_add_test(tc, close_from_any_point_keeps_the_message);
	tcase_add_test(tc, streaming_asks_for_the_decoders_protocol_version);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pipeline_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
