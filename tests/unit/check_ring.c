/*
 * check_ring.c — the SPSC ring: empty, full, wrap-around with a pad, a
 * record of exactly the remaining size, too big, close and abort wakeups,
 * and two threads passing millions of checksummed records.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

static ring r;

/* A fresh ring of size bytes for each test. */
static void
ring_setup_size(size_t size)
{
	char err[128];

	ck_assert_msg(ring_init(&r, size, err, sizeof(err)), "%s", err);
}

static void
teardown(void)
{
	ring_free(&r);
}

/* Write one record of len bytes filled with byte b. */
static void
put(size_t len, uint8_t b, uint64_t tag)
{
	void *dst;

	ck_assert_int_eq(ring_try_reserve(&r, len, &dst), RING_OK);
	memset(dst, b, len);
	ring_commit(&r, 7, tag);
}

/* Read one record and check its length, fill and tag. */
static void
get(size_t len, uint8_t b, uint64_t tag)
{
	ring_record rec;

	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_OK);
	ck_assert_uint_eq(rec.len, len);
	ck_assert_uint_eq(rec.kind, 7);
	ck_assert_uint_eq(rec.tag, tag);
	/* one assertion for the whole payload: Check records every passing assertion */
	ck_assert_msg(len == 0 || (rec.data[0] == b && memcmp(rec.data, rec.data + 1, len - 1) == 0),
	              "payload of record %llu is not all 0x%02x", (unsigned long long)tag, b);
	ring_release(&r, &rec);
}

START_TEST(held_records_stay_intact_across_a_wrap_until_released)
{
	ring_record held[3], rec;
	void *dst;

	ring_setup_size(1024);
	put(300, 1, 1);
	put(300, 2, 2);
	put(200, 3, 3);
	for (int i = 0; i < 3; i++)
	{
		ck_assert_int_eq(ring_peek(&r, 0, &held[i]), RING_OK);
		ck_assert_uint_eq(held[i].tag, (uint64_t)i + 1);
		ring_hold(&r, &held[i]);
	}
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_TIMEOUT);
	ck_assert_uint_eq(ring_held(&r), ring_used(&r));
	/* held space is not free: no room for another record */
	ck_assert_int_eq(ring_try_reserve(&r, 300, &dst), RING_TIMEOUT);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(held[i].data[held[i].len - 1], (uint8_t)(i + 1));
	/* writable in place, as the apply thread NUL-terminates values */
	held[0].data[0] = 0;
	ring_release_held(&r);
	/* what is left is the pad the refused reservation wrote up to the end */
	ck_assert_uint_eq(ring_used(&r), 1024 - 864);
	ck_assert_uint_eq(ring_held(&r), 0);
	/* the next record starts at 0 after that pad and is read normally */
	put(300, 4, 4);
	put(300, 5, 5);
	get(300, 4, 4);
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_OK);
	ring_hold(&r, &rec);
	ring_release(&r, &rec); /* releasing a held record gives back everything read */
	ck_assert_uint_eq(ring_used(&r), 0);
}
END_TEST

START_TEST(an_empty_ring_has_nothing_to_read)
{
	ring_record rec;

	ring_setup_size(1024);
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_TIMEOUT);
	ck_assert_int_eq(ring_peek(&r, 20, &rec), RING_TIMEOUT);
	ck_assert_uint_eq(ring_used(&r), 0);
}
END_TEST

START_TEST(a_full_ring_refuses_and_times_out)
{
	void *dst;

	ring_setup_size(1024);
	/* 4 records of 256 bytes with headers: 16 + 240 payload */
	for (int i = 0; i < 4; i++)
		put(240, (uint8_t)i, (uint64_t)i);
	ck_assert_uint_eq(ring_used(&r), 1024);
	ck_assert_int_eq(ring_try_reserve(&r, 1, &dst), RING_TIMEOUT);
	ck_assert_int_eq(ring_reserve(&r, 1, 30, &dst), RING_TIMEOUT);
	get(240, 0, 0);
	ck_assert_int_eq(ring_try_reserve(&r, 1, &dst), RING_OK);
}
END_TEST

START_TEST(records_never_wrap_a_pad_restarts_at_zero)
{
	ring_record rec;
	void *dst;

	ring_setup_size(1024);
	put(500, 1, 1); /* 528 bytes */
	get(500, 1, 1);
	/* 496 left before the end: a 600-byte record must go to offset 0, after a pad */
	ck_assert_int_eq(ring_try_reserve(&r, 600, &dst), RING_TIMEOUT);
	ck_assert_uint_eq(ring_used(&r), 496);                  /* the pad */
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_TIMEOUT); /* the consumer skips it */
	ck_assert_uint_eq(ring_used(&r), 0);
	ck_assert_int_eq(ring_try_reserve(&r, 600, &dst), RING_OK);
	ck_assert_ptr_eq(dst, r.base + RING_HEADER_SIZE);
	memset(dst, 2, 600);
	ring_commit(&r, 7, 2);
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_OK);
	ck_assert_ptr_eq(rec.data, r.base + RING_HEADER_SIZE);
	ck_assert_uint_eq(rec.len, 600);
	ring_release(&r, &rec);
	ck_assert_uint_eq(ring_used(&r), 0);
}
END_TEST

START_TEST(a_record_of_exactly_the_remaining_size_fills_to_the_end)
{
	ring_record rec;

	ring_setup_size(1024);
	put(240, 1, 1); /* 256 */
	get(240, 1, 1);
	put(1024 - 256 - RING_HEADER_SIZE, 3, 3); /* exactly to the end, no pad */
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_OK);
	ck_assert_ptr_eq(rec.data, r.base + 256 + RING_HEADER_SIZE);
	ring_release(&r, &rec);
	put(10, 4, 4); /* next one starts at 0 */
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_OK);
	ck_assert_ptr_eq(rec.data, r.base + RING_HEADER_SIZE);
	ring_release(&r, &rec);
}
END_TEST

START_TEST(a_record_as_big_as_the_ring_fits_and_a_bigger_one_is_refused)
{
	void *dst;

	ring_setup_size(1024);
	ck_assert_uint_eq(ring_max_record(&r), 1024 - RING_HEADER_SIZE);
	ck_assert_int_eq(ring_try_reserve(&r, 1024 - RING_HEADER_SIZE + 1, &dst), RING_TOO_BIG);
	put(100, 1, 1);
	get(100, 1, 1);
	/* not at offset 0: pads to the end, then fits once the pad is consumed */
	ck_assert_int_eq(ring_try_reserve(&r, ring_max_record(&r), &dst), RING_TIMEOUT);
	{
		ring_record rec;

		ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_TIMEOUT); /* the pad is skipped */
	}
	ck_assert_int_eq(ring_try_reserve(&r, ring_max_record(&r), &dst), RING_OK);
	memset(dst, 9, ring_max_record(&r));
	ring_commit(&r, 7, 9);
	get(ring_max_record(&r), 9, 9);
}
END_TEST

START_TEST(zero_length_records_carry_only_a_tag)
{
	ring_setup_size(256);
	for (int lap = 0; lap < 100; lap++)
	{
		put(0, 0, (uint64_t)lap);
		get(0, 0, (uint64_t)lap);
	}
}
END_TEST

START_TEST(varied_sizes_over_many_laps_come_back_in_order)
{
	ring_setup_size(4096);
	for (uint64_t i = 0; i < 20000; i++)
	{
		size_t len = (size_t)((i * 7919) % 1500);

		put(len, (uint8_t)i, i);
		if (i % 2 == 1)
		{
			get((size_t)(((i - 1) * 7919) % 1500), (uint8_t)(i - 1), i - 1);
			get(len, (uint8_t)i, i);
		}
	}
	ck_assert_uint_eq(ring_used(&r), 0);
}
END_TEST

/* Consumer thread body for the wakeup tests: one peek with a long timeout. */
static void *
peek_long(void *arg)
{
	ring_record rec;

	*(ring_status *)arg = ring_peek(&r, 10000, &rec);
	return NULL;
}

START_TEST(close_wakes_a_waiting_consumer_after_the_last_record)
{
	pthread_t t;
	ring_status st = RING_OK;
	ring_record rec;

	ring_setup_size(1024);
	put(5, 1, 1);
	get(5, 1, 1);
	pthread_create(&t, NULL, peek_long, &st);
	usleep(50000);
	ring_close(&r);
	pthread_join(t, NULL);
	ck_assert_int_eq(st, RING_CLOSED);
	/* records committed before close are still read first */
	ring_free(&r);
	ring_setup_size(1024);
	put(5, 1, 1);
	ring_close(&r);
	get(5, 1, 1);
	ck_assert_int_eq(ring_peek(&r, 0, &rec), RING_CLOSED);
}
END_TEST

/* Producer thread body: one reserve with a long timeout. */
static void *
reserve_long(void *arg)
{
	void *dst;

	*(ring_status *)arg = ring_reserve(&r, 500, 10000, &dst);
	return NULL;
}

START_TEST(abort_wakes_a_producer_blocked_on_a_full_ring)
{
	pthread_t t;
	ring_status st = RING_OK;

	ring_setup_size(1024);
	put(1000, 1, 1);
	pthread_create(&t, NULL, reserve_long, &st);
	usleep(50000);
	ring_abort(&r);
	pthread_join(t, NULL);
	ck_assert_int_eq(st, RING_CLOSED);
}
END_TEST

START_TEST(release_wakes_a_producer_blocked_on_a_full_ring)
{
	pthread_t t;
	ring_status st = RING_TIMEOUT;

	ring_setup_size(1024);
	put(1000, 1, 1);
	pthread_create(&t, NULL, reserve_long, &st);
	usleep(50000);
	get(1000, 1, 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(st, RING_OK);
}
END_TEST

/* A small deterministic generator (xorshift64). */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

typedef struct stress
{
	bool quiet; /* publish with ring_commit_quiet and a ring_notify per burst */
	uint64_t count;
	uint64_t checksum;
	uint64_t bad;
} stress;

/* Stress producer: count records of pseudo-random size and content. */
static void *
stress_produce(void *arg)
{
	stress *s = arg;
	uint64_t seed = 88172645463325252ULL;

	for (uint64_t i = 0; i < s->count; i++)
	{
		size_t len = 1 + (size_t)(next_rand(&seed) % 2048);
		uint8_t *dst;

		while (ring_reserve(&r, len, 100, (void **)&dst) == RING_TIMEOUT)
			;
		memset(dst, (uint8_t)i, len);
		dst[len - 1] = (uint8_t)(i * 31);
		if (s->quiet)
		{
			ring_commit_quiet(&r, (uint8_t)(i & 0x7f), i);
			if (i % 97 == 96)
				ring_notify(&r);
		}
		else
			ring_commit(&r, (uint8_t)(i & 0x7f), i);
		s->checksum += len * 1000003ULL + i;
	}
	ring_close(&r);
	return NULL;
}

START_TEST(two_threads_pass_millions_of_records_intact)
{
	const char *env = getenv("RING_STRESS_RECORDS");
	stress prod = {.quiet = _i == 1, .count = env ? strtoull(env, NULL, 10) : 3000000};
	uint64_t seen = 0, checksum = 0, bad = 0, stalls = 0;
	pthread_t t;
	ring_record rec;
	ring_status st;

	ring_setup_size(256 * 1024);
	pthread_create(&t, NULL, stress_produce, &prod);
	while ((st = ring_peek(&r, 1000, &rec)) != RING_CLOSED)
	{
		if (st != RING_OK)
		{
			stalls++; /* a second without a record: a lost wakeup */
			continue;
		}
		if (rec.tag != seen || rec.kind != (uint8_t)(seen & 0x7f))
			bad++;
		for (size_t j = 0; j + 1 < rec.len; j += 61)
			if (rec.data[j] != (uint8_t)seen)
				bad++;
		if (rec.data[rec.len - 1] != (uint8_t)(seen * 31))
			bad++;
		checksum += rec.len * 1000003ULL + seen;
		seen++;
		ring_release(&r, &rec);
	}
	pthread_join(t, NULL);
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(stalls, 0);
	ck_assert_uint_eq(seen, prod.count);
	ck_assert_uint_eq(checksum, prod.checksum);
}
END_TEST

static Suite *
ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = tcase_create("spsc");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, an_empty_ring_has_nothing_to_read);
	tcase_add_test(tc, held_records_stay_intact_across_a_wrap_until_released);
	tcase_add_test(tc, a_full_ring_refuses_and_times_out);
	tcase_add_test(tc, records_never_wrap_a_pad_restarts_at_zero);
	tcase_add_test(tc, a_record_of_exactly_the_remaining_size_fills_to_the_end);
	tcase_add_test(tc, a_record_as_big_as_the_ring_fits_and_a_bigger_one_is_refused);
	tcase_add_test(tc, zero_length_records_carry_only_a_tag);
	tcase_add_test(tc, varied_sizes_over_many_laps_come_back_in_order);
	tcase_add_test(tc, close_wakes_a_waiting_consumer_after_the_last_record);
	tcase_add_test(tc, abort_wakes_a_producer_blocked_on_a_full_ring);
	tcase_add_test(tc, release_wakes_a_producer_blocked_on_a_full_ring);
	/* 0: a wakeup per record; 1: quiet commits, a ring_notify per burst */
	tcase_add_loop_test(tc, two_threads_pass_millions_of_records_intact, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
