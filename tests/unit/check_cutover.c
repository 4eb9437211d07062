/*
 * check_cutover.c — when the stream loop's tick does what, told as the
 * operator lives it: the stream polls the lag every --poll-interval, a first
 * Ctrl+C (or --max-runtime-seconds) asks for the cutover's end position, a
 * second one aborts, the cutover nudges the source once a second and gives
 * up after --cutover-timeout. No server, no clock, no signal: cutover_decide
 * is given what the tick sees.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_internal.h"

#define T0 1000000 /* when streaming started, in ms */

/* A stream that started at T0, polled at T0, with no limits but a 60 s cutover timeout. */
static cutover_view
streaming_at(int64_t now_ms)
{
	cutover_view v = {
	    .now_ms = now_ms,
	    .start_ms = T0,
	    .cutover_timeout_secs = 60,
	    .next_poll_ms = T0 + 10000,
	};

	return v;
}

/* Between two polls of a quiet stream, the tick does nothing. */
START_TEST(between_polls_nothing_happens)
{
	cutover_view v = streaming_at(T0 + 100);

	ck_assert_int_eq(cutover_decide(&v), CUTOVER_NOTHING);
	v.now_ms = T0 + 9999;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_NOTHING);
}
END_TEST

/* The first tick of a run polls at once (next_poll_ms is the start), then every interval. */
START_TEST(the_lag_is_polled_when_due)
{
	cutover_view v = streaming_at(T0);

	v.next_poll_ms = T0;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_POLL);
	v.next_poll_ms = T0 + 10000;
	v.now_ms = T0 + 10000;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_POLL);
	v.now_ms = T0 + 25000; /* a late tick polls too */
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_POLL);
}
END_TEST

/* A first Ctrl+C asks for the end position, whether or not a poll is due. */
START_TEST(a_first_ctrl_c_asks_for_the_end_position)
{
	cutover_view v = streaming_at(T0 + 500);

	v.signalled = true;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_BEGIN);
	v.now_ms = T0 + 10000; /* a poll is due: the cutover comes first */
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_BEGIN);
}
END_TEST

/* The end position could not be read: the next tick asks again (nothing is cutting over yet). */
START_TEST(a_failed_read_of_the_end_position_is_tried_again)
{
	cutover_view v = streaming_at(T0 + 500);

	v.signalled = true;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_BEGIN);
	v.now_ms += 100;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_BEGIN);
}
END_TEST

/* A second Ctrl+C aborts: before the cutover, during it, and past its timeout. */
START_TEST(a_second_ctrl_c_aborts)
{
	cutover_view v = streaming_at(T0 + 500);

	v.signalled = true;
	v.aborted = true;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_ABORT);
	v.cutting_over = true;
	v.cutover_ms = T0 + 400;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_ABORT);
	v.now_ms = v.cutover_ms + 61000;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_ABORT);
}
END_TEST

/* --max-runtime-seconds acts like Ctrl+C once the run has streamed that long. */
START_TEST(max_runtime_acts_like_ctrl_c)
{
	cutover_view v = streaming_at(T0 + 29999);

	v.max_runtime_secs = 30;
	v.next_poll_ms = T0 + 40000;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_NOTHING);
	v.now_ms = T0 + 30000;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_BEGIN);
	v.max_runtime_secs = 0; /* none: streams on */
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_NOTHING);
}
END_TEST

/* While cutting over, the Ctrl+C that started it asks for nothing more, and no lag is polled. */
START_TEST(during_the_cutover_no_poll_and_no_second_end_position)
{
	cutover_view v = streaming_at(T0 + 20500);

	v.signalled = true;
	v.cutting_over = true;
	v.cutover_ms = T0 + 20000;
	v.next_poll_ms = T0; /* long due */
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_NOTHING);
}
END_TEST

/* While cutting over, the source is asked for a keepalive in the first tick of each second. */
START_TEST(the_cutover_nudges_the_source_once_a_second)
{
	cutover_view v = streaming_at(0);
	int nudges = 0;

	v.signalled = true;
	v.cutting_over = true;
	v.cutover_ms = T0;
	for (int64_t t = T0; t < T0 + 5000; t += 100)
	{
		v.now_ms = t;
		if (cutover_decide(&v) == CUTOVER_NUDGE)
			nudges++;
	}
	ck_assert_int_eq(nudges, 5);
}
END_TEST

/* The cutover timeout stops the stream (timed out), not a moment before it has passed. */
START_TEST(the_cutover_timeout_stops_with_timed_out)
{
	cutover_view v = streaming_at(0);

	v.signalled = true;
	v.cutting_over = true;
	v.cutover_ms = T0;
	v.now_ms = T0 + 60000;
	ck_assert_int_ne(cutover_decide(&v), CUTOVER_TIMED_OUT);
	v.now_ms = T0 + 60001;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_TIMED_OUT);
}
END_TEST

/* A cutover started by --max-runtime-seconds times out the same way. */
START_TEST(a_max_runtime_cutover_times_out_too)
{
	cutover_view v = streaming_at(0);

	v.max_runtime_secs = 30;
	v.cutting_over = true;
	v.cutover_ms = T0 + 30000;
	v.cutover_timeout_secs = 5;
	v.now_ms = T0 + 35100;
	ck_assert_int_eq(cutover_decide(&v), CUTOVER_TIMED_OUT);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cutover");
	TCase *tc = tcase_create("decide");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, between_polls_nothing_happens);
	tcase_add_test(tc, the_lag_is_polled_when_due);
	tcase_add_test(tc, a_first_ctrl_c_asks_for_the_end_position);
	tcase_add_test(tc, a_failed_read_of_the_end_position_is_tried_again);
	tcase_add_test(tc, a_second_ctrl_c_aborts);
	tcase_add_test(tc, max_runtime_acts_like_ctrl_c);
	tcase_add_test(tc, during_the_cutover_no_poll_and_no_second_end_position);
	tcase_add_test(tc, the_cutover_nudges_the_source_once_a_second);
	tcase_add_test(tc, the_cutover_timeout_stops_with_timed_out);
	tcase_add_test(tc, a_max_runtime_cutover_times_out_too);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
