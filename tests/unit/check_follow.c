/*
 * check_follow.c — the reconnect budget of StreamApply, told as the
 * operator lives it: a source that comes back within --reconnect-max-wait
 * is reconnected to, back-offs double up to 10 s and start over after
 * progress, and a source that keeps accepting connections and dropping them
 * before anything arrives does not keep the run alive forever. No server, no
 * clock: follow_retry_* is given the times.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_internal.h"

#define T0    1000000 /* when the first connection started streaming, in ms */
#define START 0x1000  /* where it started */

/* A connection lost within the window is retried; one lost for longer gives up. */
START_TEST(a_source_down_longer_than_the_window_gives_up)
{
	follow_retry r;

	follow_retry_init(&r, 60, START, T0);
	ck_assert(!follow_retry_gives_up(&r, T0 + 1000));
	ck_assert(!follow_retry_gives_up(&r, T0 + 60000));
	ck_assert(follow_retry_gives_up(&r, T0 + 60001));
}
END_TEST

/* The waits before reconnecting: 1, 2, 4, 8, then 10 s each. */
START_TEST(back_offs_double_up_to_ten_seconds)
{
	follow_retry r;
	const int expected[] = {1000, 2000, 4000, 8000, 10000, 10000};

	follow_retry_init(&r, 60, START, T0);
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		ck_assert_int_eq(follow_retry_next_backoff(&r), expected[i]);
}
END_TEST

/* A connection that received WAL past anything before is progress: the window starts over. */
START_TEST(wal_received_starts_the_window_over)
{
	follow_retry r;

	follow_retry_init(&r, 60, START, T0);
	(void)follow_retry_next_backoff(&r);
	(void)follow_retry_next_backoff(&r);
	r.attempt_ms = T0 + 50000;
	follow_retry_attempt_ended(&r, START + 100, T0 + 55000);
	ck_assert_uint_eq(r.furthest, START + 100);
	ck_assert(!follow_retry_gives_up(&r, T0 + 100000));
	ck_assert(follow_retry_gives_up(&r, T0 + 115001));
	ck_assert_int_eq(follow_retry_next_backoff(&r), 1000);
}
END_TEST

/*
 * A source that accepts the connection and drops it before anything new
 * arrives: reconnecting is no progress, the window runs on from the last
 * real progress and the back-off keeps growing.
 */
START_TEST(reconnects_that_get_nowhere_do_not_start_the_window_over)
{
	follow_retry r;

	follow_retry_init(&r, 60, START, T0);
	for (int i = 0; i < 5; i++)
	{
		int64_t now = T0 + 10000 * (i + 1);

		r.attempt_ms = now - 2000; /* streamed for 2 s, then lost */
		follow_retry_attempt_ended(&r, START, now);
		(void)follow_retry_next_backoff(&r);
	}
	ck_assert_uint_eq(r.furthest, START);
	ck_assert_int_eq(r.last_progress_ms, T0);
	ck_assert(follow_retry_gives_up(&r, T0 + 60001));
	ck_assert_int_eq(follow_retry_next_backoff(&r), 10000);
}
END_TEST

/* A connection that held for the whole window is progress even on an idle source. */
START_TEST(a_connection_that_held_for_the_window_is_progress)
{
	follow_retry r;

	follow_retry_init(&r, 60, START, T0);
	(void)follow_retry_next_backoff(&r);
	r.attempt_ms = T0 + 5000;
	follow_retry_attempt_ended(&r, START, T0 + 65000);
	ck_assert_int_eq(r.last_progress_ms, T0 + 65000);
	ck_assert(!follow_retry_gives_up(&r, T0 + 120000));
	ck_assert_int_eq(follow_retry_next_backoff(&r), 1000);
}
END_TEST

/* A committed position behind the furthest received is no progress. */
START_TEST(going_back_is_no_progress)
{
	follow_retry r;

	follow_retry_init(&r, 60, START, T0);
	r.attempt_ms = T0 + 1000;
	follow_retry_attempt_ended(&r, START + 500, T0 + 2000);
	r.attempt_ms = T0 + 3000;
	follow_retry_attempt_ended(&r, START + 200, T0 + 4000);
	ck_assert_uint_eq(r.furthest, START + 500);
	ck_assert_int_eq(r.last_progress_ms, T0 + 2000);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("follow");
	TCase *tc = tcase_create("reconnect budget");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, a_source_down_longer_than_the_window_gives_up);
	tcase_add_test(tc, back_offs_double_up_to_ten_seconds);
	tcase_add_test(tc, wal_received_starts_the_window_over);
	tcase_add_test(tc, reconnects_that_get_nowhere_do_not_start_the_window_over);
	tcase_add_test(tc, a_connection_that_held_for_the_window_is_progress);
	tcase_add_test(tc, going_back_is_no_progress);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
