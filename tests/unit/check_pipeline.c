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

/* All the cases. */
static Suite *
pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, teardown_of_nothing_keeps_the_message);
	tcase_add_test(tc, catch_up_quotes_publication_names);
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
