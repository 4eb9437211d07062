/*
 * check_stream_lag.c — when the live stream counts as behind the source
 * (and a group waits a moment for more before it commits): a steady stream
 * on skewed clocks is not behind; a transaction that arrives 2 ms later
 * after its commit than usual is; the floor follows the clocks when they
 * drift, window by window. No server, no clock: the times are given.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "stream.h"

#define T0 1000000 /* ms */

/* The source's clock 40 ms ahead: every delay is -40 ms and some jitter; never behind. */
START_TEST(a_steady_stream_on_skewed_clocks_is_not_behind)
{
	stream_lag l = {0};

	for (int i = 0; i < 20000; i++)
		ck_assert_msg(!stream_lag_behind(&l, -40000 + 300 + (i * 7919) % 1500, T0 + i),
		              "a steady stream counted as behind at %d ms", i);
}
END_TEST

/* A backlog building up: a delay 2 ms above the least seen is behind; back down, it is not. */
START_TEST(a_transaction_2_ms_later_than_usual_is_behind)
{
	stream_lag l = {0};

	ck_assert(!stream_lag_behind(&l, 500, T0));
	ck_assert(!stream_lag_behind(&l, 400, T0 + 1));
	ck_assert(!stream_lag_behind(&l, 2300, T0 + 2));
	ck_assert(stream_lag_behind(&l, 2400, T0 + 3));
	ck_assert(stream_lag_behind(&l, 25000, T0 + 4));
	ck_assert(!stream_lag_behind(&l, 600, T0 + 30));
}
END_TEST

/*
 * The source's clock steps 30 ms back (an NTP correction): every delay is
 * 30 ms more from then on. Behind for at most two windows, then the floor
 * has followed.
 */
START_TEST(the_floor_follows_a_clock_that_drifts)
{
	stream_lag l = {0};
	int64_t t = T0;

	for (; t < T0 + 6000; t++)
		ck_assert(!stream_lag_behind(&l, 500, t));
	for (; t < T0 + 6000 + 2 * STREAM_LAG_WINDOW_MS; t++)
		(void)stream_lag_behind(&l, 30500, t);
	for (int i = 0; i < 1000; i++, t++)
		ck_assert_msg(!stream_lag_behind(&l, 30500, t),
		              "still behind %lld ms after the clock stepped back",
		              (long long)(t - T0 - 6000));
}
END_TEST

static Suite *
stream_lag_suite(void)
{
	Suite *s = suite_create("stream_lag");
	TCase *tc = tcase_create("lag");

	tcase_add_test(tc, a_steady_stream_on_skewed_clocks_is_not_behind);
	tcase_add_test(tc, a_transaction_2_ms_later_than_usual_is_behind);
	tcase_add_test(tc, the_floor_follows_a_clock_that_drifts);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stream_lag_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
