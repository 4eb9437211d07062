/*
 * check_pgo_copy.c — the CopyBoth framing of START_REPLICATION: XLogData
 * and keepalives from the walsender parse (and every truncation of them
 * fails), the standby status update is byte-exact, and LSNs round-trip
 * through their text form.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "testbuf.h"

static pgo_copymsg cm;
static pgo_error err;

/* An XLogData carrying payload. */
static void
build_xlogdata(testbuf *b, const char *payload)
{
	tb_u8(b, 'w');
	tb_u64(b, 0x16B374D848ULL);
	tb_u64(b, 0x16B374D900ULL);
	tb_u64(b, 777);
	tb_bytes(b, payload, strlen(payload));
}

/* A keepalive asking (or not) for a reply. */
static void
build_keepalive(testbuf *b, uint8_t reply)
{
	tb_u8(b, 'k');
	tb_u64(b, 0x2A000000ULL);
	tb_u64(b, 888);
	tb_u8(b, reply);
}

START_TEST(xlogdata_header_and_payload_view)
{
	testbuf b = {0};

	build_xlogdata(&b, "B-payload");
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_OK);
	ck_assert_int_eq(cm.type, PGO_COPY_XLOGDATA);
	ck_assert_uint_eq(cm.u.xlog.data_start, 0x16B374D848ULL);
	ck_assert_uint_eq(cm.u.xlog.wal_end, 0x16B374D900ULL);
	ck_assert_int_eq(cm.u.xlog.send_time, 777);
	ck_assert_uint_eq(cm.u.xlog.len, 9);
	ck_assert_ptr_eq(cm.u.xlog.data, b.data + PGO_XLOGDATA_HEADER_SIZE);
}
END_TEST

START_TEST(xlogdata_may_be_empty_but_not_shorter_than_its_header)
{
	testbuf b = {0};

	build_xlogdata(&b, "");
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_OK);
	ck_assert_uint_eq(cm.u.xlog.len, 0);
	for (size_t n = 1; n < PGO_XLOGDATA_HEADER_SIZE; n++)
	{
		ck_assert_int_eq(pgo_copy_parse(b.data, n, &cm, &err), PGO_ERR_TRUNCATED);
		ck_assert_uint_le(err.offset, n);
	}
}
END_TEST

START_TEST(keepalive_with_and_without_reply_request)
{
	testbuf b = {0};

	build_keepalive(&b, 1);
	ck_assert_uint_eq(b.len, PGO_KEEPALIVE_SIZE);
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_OK);
	ck_assert_int_eq(cm.type, PGO_COPY_KEEPALIVE);
	ck_assert_uint_eq(cm.u.keepalive.wal_end, 0x2A000000ULL);
	ck_assert_int_eq(cm.u.keepalive.send_time, 888);
	ck_assert(cm.u.keepalive.reply_requested);
	b.data[17] = 0;
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_OK);
	ck_assert(!cm.u.keepalive.reply_requested);
}
END_TEST

START_TEST(malformed_keepalives_are_refused)
{
	testbuf b = {0};

	build_keepalive(&b, 2);
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_BAD_FLAGS);
	ck_assert_uint_eq(err.offset, 17);
	b.data[17] = 1;
	for (size_t n = 1; n < b.len; n++)
		ck_assert_int_eq(pgo_copy_parse(b.data, n, &cm, &err), PGO_ERR_TRUNCATED);
	tb_u8(&b, 0);
	ck_assert_int_eq(pgo_copy_parse(b.data, b.len, &cm, &err), PGO_ERR_TRAILING_DATA);
	ck_assert_uint_eq(err.offset, 18);
}
END_TEST

START_TEST(empty_and_unknown_copy_messages_are_refused)
{
	const uint8_t other[] = {'x', 0, 0};
	char line[256];

	ck_assert_int_eq(pgo_copy_parse(other, 0, &cm, &err), PGO_ERR_EMPTY);
	ck_assert_int_eq(pgo_copy_parse(other, sizeof(other), &cm, &err), PGO_ERR_UNKNOWN_COPY_MESSAGE);
	pgo_error_format(&err, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "0x78"));
	ck_assert_str_eq(pgo_msgtype_name('w'), "XLogData");
	ck_assert_str_eq(pgo_msgtype_name('k'), "Keepalive");
}
END_TEST

START_TEST(status_update_is_byte_exact)
{
	uint8_t out[PGO_STATUS_UPDATE_SIZE];
	testbuf want = {0};

	ck_assert_uint_eq(pgo_copy_build_status(out, 0x100, 0x80, 0x40, 12345, true),
	                  PGO_STATUS_UPDATE_SIZE);
	tb_u8(&want, 'r');
	tb_u64(&want, 0x100);
	tb_u64(&want, 0x80);
	tb_u64(&want, 0x40);
	tb_u64(&want, 12345);
	tb_u8(&want, 1);
	ck_assert_uint_eq(want.len, PGO_STATUS_UPDATE_SIZE);
	ck_assert(memcmp(out, want.data, want.len) == 0);
	pgo_copy_build_status(out, 0, 0, 0, -1, false);
	ck_assert_int_eq(out[33], 0);
	ck_assert_int_eq(out[25], 0xFF); /* negative time, two's complement */
}
END_TEST

START_TEST(lsn_text_form_round_trips)
{
	char buf[PGO_LSN_STRLEN];
	pgo_lsn lsn;

	ck_assert_str_eq(pgo_lsn_format(0x16B374D848ULL, buf), "16/B374D848");
	ck_assert_str_eq(pgo_lsn_format(0, buf), "0/0");
	ck_assert_str_eq(pgo_lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF");
	ck_assert(pgo_lsn_parse("16/B374D848", &lsn));
	ck_assert_uint_eq(lsn, 0x16B374D848ULL);
	ck_assert(pgo_lsn_parse("0/0", &lsn));
	ck_assert_uint_eq(lsn, 0);
	ck_assert(pgo_lsn_parse("ffffffff/ffffffff", &lsn));
	ck_assert_uint_eq(lsn, UINT64_MAX);
}
END_TEST

START_TEST(malformed_lsns_are_refused)
{
	static const char *const bad[] = {"",      "1",    "/1",   "1/",          "G/1",         "1/2x",
	                                  " 1/2",  "-1/2", "1/-2", "123456789/0", "0/123456789", "1//2",
	                                  "1/2/3", NULL};
	pgo_lsn lsn;

	for (int i = 0; bad[i]; i++)
		ck_assert_msg(!pgo_lsn_parse(bad[i], &lsn), "\"%s\" parsed", bad[i]);
	ck_assert(!pgo_lsn_parse(NULL, &lsn));
}
END_TEST

static Suite *
copy_suite(void)
{
	Suite *s = suite_create("pgo_copy");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, xlogdata_header_and_payload_view);
	tcase_add_test(tc, xlogdata_may_be_empty_but_not_shorter_than_its_header);
	tcase_add_test(tc, keepalive_with_and_without_reply_request);
	tcase_add_test(tc, malformed_keepalives_are_refused);
	tcase_add_test(tc, empty_and_unknown_copy_messages_are_refused);
	tcase_add_test(tc, status_update_is_byte_exact);
	tcase_add_test(tc, lsn_text_form_round_trips);
	tcase_add_test(tc, malformed_lsns_are_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(copy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
