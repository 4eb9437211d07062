/*
 * check_pgo_decode.c — every pgoutput message the decoder knows, built byte
 * by byte: each decodes to the right fields as views into the input; every
 * truncated prefix of it fails cleanly; one byte too many is an error; and
 * every error path (bad flags, lengths, counts, markers, kinds, versions,
 * stream order, zero LSNs) says what and where, without changing state.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"
#include "testbuf.h"

#define MAXCOLS 8

static pgo_value old_cols[MAXCOLS], new_cols[MAXCOLS];
static pgo_relcol rel_cols[MAXCOLS];
static pgo_decoder dec;
static pgo_message msg;
static int natts_answer = -1; /* what the column-count callback says */

/* The relation column-count callback: the same answer for every relid. */
static int
test_natts(void *arg, pgo_oid relid)
{
	(void)arg;
	(void)relid;
	return natts_answer;
}

/* A decoder for protocol version v (natts callback installed). */
static void
init_decoder(int v)
{
	pgo_config cfg = {.proto_version = v,
	                  .max_columns = 4,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols,
	                  .natts = test_natts};

	natts_answer = -1;
	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
}

/* Decode b; returns the code. */
static pgo_err
decode(const testbuf *b)
{
	return pgo_decode(&dec, b->data, b->len, &msg);
}

/* Put the decoder inside a stream (Stream Start of xid 77). */
static void
enter_stream(void)
{
	testbuf b = {0};

	tb_u32(tb_u8(&b, 'S'), 77);
	tb_u8(&b, 1);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert(dec.in_stream);
}

/* ---- builders of valid messages ---- */

static void
build_begin(testbuf *b)
{
	tb_u8(b, 'B');
	tb_u64(b, 0x16B374D848ULL);
	tb_u64(b, 123456789);
	tb_u32(b, 750);
}

static void
build_commit(testbuf *b)
{
	tb_u8(tb_u8(b, 'C'), 0);
	tb_u64(b, 0x100);
	tb_u64(b, 0x130);
	tb_u64(b, 42);
}

static void
build_origin(testbuf *b)
{
	tb_u64(tb_u8(b, 'O'), 0x2000);
	tb_str(b, "node_a");
}

static void
build_relation(testbuf *b)
{
	tb_u32(tb_u8(b, 'R'), 16384);
	tb_str(b, "public");
	tb_str(b, "t");
	tb_u8(b, 'd');
	tb_u16(b, 3);
	tb_u32(tb_str(tb_u8(b, 1), "id"), 23);
	tb_u32(b, 0xFFFFFFFF);
	tb_u32(tb_str(tb_u8(b, 0), "name"), 25);
	tb_u32(b, 0xFFFFFFFF);
	tb_u32(tb_str(tb_u8(b, 0), "code"), 1043);
	tb_u32(b, 14);
}

static void
build_type(testbuf *b)
{
	tb_u32(tb_u8(b, 'Y'), 90001);
	tb_str(b, "public");
	tb_str(b, "mood");
}

/* Three columns: text, null, binary. */
static void
build_tuple(testbuf *b)
{
	tb_u16(b, 3);
	tb_col(b, 't', "it's");
	tb_col(b, 'n', NULL);
	tb_col(b, 'b', "\x01\x02");
}

static void
build_insert(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'I'), 16384), 'N');
	build_tuple(b);
}

static void
build_update_key(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'U'), 16384), 'K');
	tb_col(tb_col(tb_col(tb_u16(b, 3), 't', "1"), 'n', NULL), 'n', NULL);
	tb_u8(b, 'N');
	tb_col(tb_col(tb_col(tb_u16(b, 3), 't', "2"), 't', "x"), 'u', NULL);
}

static void
build_update_old(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'U'), 16384), 'O');
	build_tuple(b);
	tb_u8(b, 'N');
	build_tuple(b);
}

static void
build_update_new_only(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'U'), 16384), 'N');
	tb_col(tb_col(tb_col(tb_u16(b, 3), 't', "1"), 'u', NULL), 'n', NULL);
}

static void
build_delete_key(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'D'), 16384), 'K');
	tb_col(tb_col(tb_col(tb_u16(b, 3), 't', "1"), 'n', NULL), 'n', NULL);
}

static void
build_delete_old(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'D'), 16384), 'O');
	build_tuple(b);
}

static void
build_truncate(testbuf *b)
{
	tb_u32(tb_u8(b, 'T'), 3);
	tb_u8(b, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
	tb_u32(tb_u32(tb_u32(b, 16384), 16390), 4000000000u);
}

static void
build_message(testbuf *b)
{
	tb_u8(tb_u8(b, 'M'), 1);
	tb_u64(b, 0x3000);
	tb_str(b, "pgdbm");
	tb_u32(b, 5);
	tb_bytes(b, "he\0lo", 5);
}

static void
build_stream_start(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'S'), 760), 1);
}

static void
build_stream_stop(testbuf *b)
{
	tb_u8(b, 'E');
}

static void
build_stream_commit(testbuf *b)
{
	tb_u8(tb_u32(tb_u8(b, 'c'), 760), 0);
	tb_u64(b, 0x4000);
	tb_u64(b, 0x4030);
	tb_u64(b, 7);
}

static void
build_stream_abort(testbuf *b)
{
	tb_u32(tb_u32(tb_u8(b, 'A'), 760), 761);
}

static void
build_stream_abort_v4(testbuf *b)
{
	build_stream_abort(b);
	tb_u64(b, 0x4100);
	tb_u64(b, 8);
}

static void
build_begin_prepare(testbuf *b)
{
	tb_u8(b, 'b');
	tb_u64(b, 0x5000);
	tb_u64(b, 0x5030);
	tb_u64(b, 9);
	tb_str(tb_u32(b, 770), "gid-1");
}

/* 'P' or 'p'. */
static void
build_prepare_as(testbuf *b, char tag)
{
	tb_u8(tb_u8(b, (uint8_t)tag), 0);
	tb_u64(b, 0x5000);
	tb_u64(b, 0x5030);
	tb_u64(b, 9);
	tb_str(tb_u32(b, 770), "gid-1");
}

static void
build_prepare(testbuf *b)
{
	build_prepare_as(b, 'P');
}

static void
build_stream_prepare(testbuf *b)
{
	build_prepare_as(b, 'p');
}

static void
build_commit_prepared(testbuf *b)
{
	tb_u8(tb_u8(b, 'K'), 0);
	tb_u64(b, 0x6000);
	tb_u64(b, 0x6030);
	tb_u64(b, 10);
	tb_str(tb_u32(b, 770), "gid-1");
}

static void
build_rollback_prepared(testbuf *b)
{
	tb_u8(tb_u8(b, 'r'), 0);
	tb_u64(b, 0x5030);
	tb_u64(b, 0x7030);
	tb_u64(b, 9);
	tb_u64(b, 11);
	tb_str(tb_u32(b, 770), "gid-1");
}

/* One valid message: how to build it and where it may be decoded. */
static const struct valid_case
{
	const char *name;
	void (*build)(testbuf *);
	int proto;              /* the version to decode with */
	bool in_stream;         /* decode inside Stream Start..Stop */
	size_t complete_prefix; /* a shorter length that is itself a whole message, or 0 */
} valid[] = {
    {"Begin", build_begin, 1, false, 0},
    {"Commit", build_commit, 1, false, 0},
    {"Origin", build_origin, 1, false, 0},
    {"Origin in a stream", build_origin, 2, true, 0},
    {"Relation", build_relation, 1, false, 0},
    {"Relation in a stream", build_relation, 2, true, 0},
    {"Type", build_type, 1, false, 0},
    {"Insert", build_insert, 1, false, 0},
    {"Insert in a stream", build_insert, 2, true, 0},
    {"Update with old key", build_update_key, 1, false, 0},
    {"Update with old row", build_update_old, 1, false, 0},
    {"Update with new row only", build_update_new_only, 1, false, 0},
    {"Delete with old key", build_delete_key, 1, false, 0},
    {"Delete with old row", build_delete_old, 1, false, 0},
    {"Delete in a stream", build_delete_key, 2, true, 0},
    {"Truncate", build_truncate, 1, false, 0},
    {"Truncate in a stream", build_truncate, 2, true, 0},
    {"Message", build_message, 1, false, 0},
    {"Message in a stream", build_message, 2, true, 0},
    {"Stream Start", build_stream_start, 2, false, 0},
    {"Stream Stop", build_stream_stop, 2, true, 0},
    {"Stream Commit", build_stream_commit, 2, false, 0},
    {"Stream Abort", build_stream_abort, 2, false, 0},
    {"Stream Abort v4 without abort info", build_stream_abort, 4, false, 0},
    {"Stream Abort v4 with abort info", build_stream_abort_v4, 4, false,
     9}, /* optional info: 9 bytes is whole too */
    {"Begin Prepare", build_begin_prepare, 3, false, 0},
    {"Prepare", build_prepare, 3, false, 0},
    {"Commit Prepared", build_commit_prepared, 3, false, 0},
    {"Rollback Prepared", build_rollback_prepared, 3, false, 0},
    {"Stream Prepare", build_stream_prepare, 3, false, 0},
};
#define NVALID ((int)(sizeof(valid) / sizeof(valid[0])))

/* Build case i into b (with the streamed xid when in a stream). */
static void
build_case(int i, testbuf *b)
{
	testbuf body = {0};

	memset(b, 0, sizeof(*b));
	valid[i].build(&body);
	tb_u8(b, body.data[0]);
	/* changes inside a stream carry the transaction's xid after the tag */
	if (valid[i].in_stream && strchr("RYIUDTM", body.data[0]) != NULL)
		tb_u32(b, 77);
	tb_bytes(b, body.data + 1, body.len - 1);
}

/* A fresh decoder set up for case i. */
static void
prepare_case(int i)
{
	init_decoder(valid[i].proto);
	if (valid[i].in_stream)
		enter_stream();
}

START_TEST(each_valid_message_decodes)
{
	testbuf b;
	char line[256];

	build_case(_i, &b);
	prepare_case(_i);
	if (decode(&b) != PGO_ERR_OK)
	{
		pgo_error_format(&dec.error, line, sizeof(line));
		ck_abort_msg("%s: %s", valid[_i].name, line);
	}
	ck_assert_int_eq(msg.type, b.data[0]);
	ck_assert_int_eq(msg.has_xid, valid[_i].in_stream && strchr("RYIUDTM", b.data[0]) != NULL);
	if (msg.has_xid)
		ck_assert_uint_eq(msg.xid, 77);
}
END_TEST

START_TEST(every_truncated_prefix_fails_cleanly)
{
	testbuf b;

	build_case(_i, &b);
	for (size_t n = 0; n < b.len; n++)
	{
		bool was;
		pgo_err e;

		if (n > 0 && n == valid[_i].complete_prefix)
			continue;
		prepare_case(_i);
		was = dec.in_stream;
		e = pgo_decode(&dec, b.data, n, &msg);
		ck_assert_msg(e != PGO_ERR_OK, "%s: prefix of %zu of %zu bytes decoded", valid[_i].name, n,
		              b.len);
		if (n == 0)
			ck_assert_int_eq(e, PGO_ERR_EMPTY);
		else
			ck_assert_msg(e == PGO_ERR_TRUNCATED || e == PGO_ERR_BAD_STRING,
			              "%s: prefix %zu gave %s", valid[_i].name, n, pgo_errname(e));
		ck_assert_uint_le(dec.error.offset, n);
		ck_assert_int_eq(dec.in_stream, was);
	}
}
END_TEST

START_TEST(one_byte_too_many_is_an_error)
{
	testbuf b;
	pgo_err e;

	build_case(_i, &b);
	tb_u8(&b, 0xAB);
	prepare_case(_i);
	e = decode(&b);
	/* a v4 Stream Abort reads the extra byte as the start of its abort info */
	ck_assert_msg(e == PGO_ERR_TRAILING_DATA || (e == PGO_ERR_TRUNCATED && b.data[0] == 'A'),
	              "%s + 1 byte gave %s", valid[_i].name, pgo_errname(e));
	if (e == PGO_ERR_TRAILING_DATA)
		ck_assert_uint_eq(dec.error.offset, b.len - 1);
}
END_TEST

/* ---- field checks ---- */

/* True if p lies inside b's bytes. */
static bool
inside(const testbuf *b, const void *p, size_t n)
{
	const uint8_t *q = p;

	return q >= b->data && q + n <= b->data + b->len;
}

START_TEST(begin_and_commit_fields)
{
	testbuf b = {0};

	init_decoder(1);
	build_begin(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.begin.final_lsn, 0x16B374D848ULL);
	ck_assert_int_eq(msg.u.begin.commit_time, 123456789);
	ck_assert_uint_eq(msg.u.begin.xid, 750);
	memset(&b, 0, sizeof(b));
	build_commit(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.commit.commit_lsn, 0x100);
	ck_assert_uint_eq(msg.u.commit.end_lsn, 0x130);
	ck_assert_int_eq(msg.u.commit.commit_time, 42);
}
END_TEST

START_TEST(relation_fields_are_views_into_the_input)
{
	testbuf b = {0};
	const pgo_relation *r = &msg.u.relation;

	init_decoder(1);
	build_relation(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(r->relid, 16384);
	ck_assert_str_eq(r->nspname.ptr, "public");
	ck_assert_uint_eq(r->nspname.len, 6);
	ck_assert(inside(&b, r->nspname.ptr, 7));
	ck_assert_str_eq(r->relname.ptr, "t");
	ck_assert_int_eq(r->replident, PGO_REPLIDENT_DEFAULT);
	ck_assert_uint_eq(r->ncols, 3);
	ck_assert_ptr_eq(r->cols, rel_cols);
	ck_assert_str_eq(r->cols[0].name.ptr, "id");
	ck_assert_int_eq(r->cols[0].flags, PGO_RELCOL_KEY);
	ck_assert_uint_eq(r->cols[0].type_oid, 23);
	ck_assert_int_eq(r->cols[0].typmod, -1);
	ck_assert_str_eq(r->cols[2].name.ptr, "code");
	ck_assert_int_eq(r->cols[2].flags, 0);
	ck_assert_int_eq(r->cols[2].typmod, 14);
	ck_assert(inside(&b, r->cols[2].name.ptr, 5));
}
END_TEST

START_TEST(type_and_origin_fields)
{
	testbuf b = {0};

	init_decoder(1);
	build_type(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.type.oid, 90001);
	ck_assert_str_eq(msg.u.type.typname.ptr, "mood");
	memset(&b, 0, sizeof(b));
	build_origin(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.origin.origin_lsn, 0x2000);
	ck_assert_str_eq(msg.u.origin.name.ptr, "node_a");
}
END_TEST

START_TEST(insert_values_of_every_kind_are_views)
{
	testbuf b = {0};
	const pgo_tuple *t = &msg.u.insert.newtup;

	init_decoder(1);
	build_insert(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.insert.relid, 16384);
	ck_assert_uint_eq(t->ncols, 3);
	ck_assert_ptr_eq(t->cols, new_cols);
	ck_assert_int_eq(t->cols[0].kind, 't');
	ck_assert_uint_eq(t->cols[0].len, 4);
	ck_assert(memcmp(t->cols[0].data, "it's", 4) == 0);
	ck_assert(inside(&b, t->cols[0].data, 4));
	ck_assert_int_eq(t->cols[1].kind, 'n');
	ck_assert_ptr_null(t->cols[1].data);
	ck_assert_int_eq(t->cols[2].kind, 'b');
	ck_assert_uint_eq(t->cols[2].len, 2);
	ck_assert(memcmp(t->cols[2].data, "\x01\x02", 2) == 0);
}
END_TEST

START_TEST(update_old_key_old_row_and_unchanged_toast)
{
	testbuf b = {0};
	const pgo_update *u = &msg.u.update;

	init_decoder(1);
	build_update_key(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(u->old_kind, 'K');
	ck_assert_ptr_eq(u->oldtup.cols, old_cols);
	ck_assert_uint_eq(u->oldtup.ncols, 3);
	ck_assert(memcmp(u->oldtup.cols[0].data, "1", 1) == 0);
	ck_assert_int_eq(u->newtup.cols[2].kind, 'u');
	ck_assert_uint_eq(u->newtup.cols[2].len, 0);
	memset(&b, 0, sizeof(b));
	build_update_old(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(u->old_kind, 'O');
	ck_assert_uint_eq(u->oldtup.ncols, 3);
	memset(&b, 0, sizeof(b));
	build_update_new_only(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(u->old_kind, 0);
	ck_assert_uint_eq(u->oldtup.ncols, 0);
	ck_assert_int_eq(u->newtup.cols[1].kind, 'u');
}
END_TEST

START_TEST(delete_with_old_key_and_old_row)
{
	testbuf b = {0};

	init_decoder(1);
	build_delete_key(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(msg.u.del.old_kind, 'K');
	ck_assert_ptr_eq(msg.u.del.oldtup.cols, old_cols);
	memset(&b, 0, sizeof(b));
	build_delete_old(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(msg.u.del.old_kind, 'O');
	ck_assert_uint_eq(msg.u.del.oldtup.ncols, 3);
}
END_TEST

START_TEST(truncate_of_several_relations_with_flags)
{
	testbuf b = {0};

	init_decoder(1);
	build_truncate(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.truncate.nrelids, 3);
	ck_assert_int_eq(msg.u.truncate.options, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
	ck_assert_uint_eq(pgo_truncate_relid(&msg.u.truncate, 0), 16384);
	ck_assert_uint_eq(pgo_truncate_relid(&msg.u.truncate, 1), 16390);
	ck_assert_uint_eq(pgo_truncate_relid(&msg.u.truncate, 2), 4000000000u);
	ck_assert_uint_eq(pgo_truncate_relid(&msg.u.truncate, 3), 0); /* out of range */
}
END_TEST

START_TEST(logical_message_with_binary_content)
{
	testbuf b = {0};

	init_decoder(1);
	build_message(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(msg.u.message.flags, PGO_MESSAGE_TRANSACTIONAL);
	ck_assert_uint_eq(msg.u.message.lsn, 0x3000);
	ck_assert_str_eq(msg.u.message.prefix.ptr, "pgdbm");
	ck_assert_uint_eq(msg.u.message.content_len, 5);
	ck_assert(memcmp(msg.u.message.content, "he\0lo", 5) == 0);
}
END_TEST

START_TEST(a_streamed_transaction_carries_its_xid_until_stream_stop)
{
	testbuf b = {0};

	init_decoder(2);
	build_stream_start(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.stream_start.xid, 760);
	ck_assert_int_eq(msg.u.stream_start.first_segment, 1);
	ck_assert(dec.in_stream);
	memset(&b, 0, sizeof(b));
	tb_u8(&b, 'I');
	tb_u32(&b, 760);
	tb_u8(tb_u32(&b, 16384), 'N');
	build_tuple(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert(msg.has_xid);
	ck_assert_uint_eq(msg.xid, 760);
	ck_assert_uint_eq(msg.u.insert.relid, 16384);
	memset(&b, 0, sizeof(b));
	build_stream_stop(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert(!dec.in_stream);
	memset(&b, 0, sizeof(b));
	build_stream_commit(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.stream_commit.xid, 760);
	ck_assert_uint_eq(msg.u.stream_commit.end_lsn, 0x4030);
	memset(&b, 0, sizeof(b));
	build_insert(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert(!msg.has_xid);
}
END_TEST

START_TEST(stream_abort_with_and_without_v4_abort_info)
{
	testbuf b = {0};

	init_decoder(4);
	build_stream_abort(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.stream_abort.subxid, 761);
	ck_assert(!msg.u.stream_abort.has_abort_info);
	memset(&b, 0, sizeof(b));
	build_stream_abort_v4(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert(msg.u.stream_abort.has_abort_info);
	ck_assert_uint_eq(msg.u.stream_abort.abort_lsn, 0x4100);
	ck_assert_int_eq(msg.u.stream_abort.abort_time, 8);
	/* before v4 the abort info is not part of the message */
	init_decoder(3);
	ck_assert_int_eq(decode(&b), PGO_ERR_TRAILING_DATA);
	ck_assert_uint_eq(dec.error.offset, 9);
}
END_TEST

START_TEST(two_phase_fields)
{
	testbuf b = {0};

	init_decoder(3);
	build_begin_prepare(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.begin_prepare.prepare_lsn, 0x5000);
	ck_assert_str_eq(msg.u.begin_prepare.gid.ptr, "gid-1");
	memset(&b, 0, sizeof(b));
	build_prepare(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.prepare.end_lsn, 0x5030);
	ck_assert_uint_eq(msg.u.prepare.xid, 770);
	memset(&b, 0, sizeof(b));
	build_commit_prepared(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.commit_prepared.commit_lsn, 0x6000);
	ck_assert_str_eq(msg.u.commit_prepared.gid.ptr, "gid-1");
	memset(&b, 0, sizeof(b));
	build_rollback_prepared(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_uint_eq(msg.u.rollback_prepared.prepare_end_lsn, 0x5030);
	ck_assert_uint_eq(msg.u.rollback_prepared.rollback_end_lsn, 0x7030);
	ck_assert_int_eq(msg.u.rollback_prepared.rollback_time, 11);
	memset(&b, 0, sizeof(b));
	build_stream_prepare(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	ck_assert_int_eq(msg.type, PGO_MSG_STREAM_PREPARE);
	ck_assert_str_eq(msg.u.stream_prepare.gid.ptr, "gid-1");
}
END_TEST

/* ---- error paths, each: bytes, decoder state, expected code and offset ---- */

/* Decode b and check the code and the offset of the failing field. */
static void
expect_error(const testbuf *b, pgo_err code, size_t offset)
{
	pgo_err e = decode(b);
	char line[256];

	pgo_error_format(&dec.error, line, sizeof(line));
	ck_assert_msg(e == code, "expected %s, got %s: %s", pgo_errname(code), pgo_errname(e), line);
	ck_assert_msg(dec.error.offset == offset, "expected offset %zu: %s", offset, line);
	ck_assert_int_eq(dec.error.code, code);
}

START_TEST(empty_too_large_and_unknown_messages)
{
	testbuf b = {0};
	pgo_config cfg = {.proto_version = 1,
	                  .max_message_size = 8,
	                  .max_columns = 4,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols};

	init_decoder(1);
	expect_error(&b, PGO_ERR_EMPTY, 0);
	ck_assert_int_eq(dec.error.msgtype, 0);
	tb_u8(&b, 'Z');
	expect_error(&b, PGO_ERR_UNKNOWN_MESSAGE, 0);
	ck_assert_int_eq(dec.error.msgtype, 'Z');
	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
	memset(&b, 0, sizeof(b));
	build_begin(&b);
	expect_error(&b, PGO_ERR_TOO_LARGE, 0);
}
END_TEST

START_TEST(messages_from_a_newer_protocol_version_are_refused)
{
	testbuf b = {0};

	init_decoder(1);
	build_stream_start(&b);
	expect_error(&b, PGO_ERR_PROTO_VERSION, 0);
	ck_assert(!dec.in_stream);
	init_decoder(2);
	memset(&b, 0, sizeof(b));
	build_begin_prepare(&b);
	expect_error(&b, PGO_ERR_PROTO_VERSION, 0);
	memset(&b, 0, sizeof(b));
	build_stream_prepare(&b);
	expect_error(&b, PGO_ERR_PROTO_VERSION, 0);
}
END_TEST

START_TEST(stream_messages_out_of_order_are_refused)
{
	testbuf b = {0};

	init_decoder(2);
	build_stream_stop(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0); /* no Stream Start */
	enter_stream();
	memset(&b, 0, sizeof(b));
	build_stream_start(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0); /* nested */
	memset(&b, 0, sizeof(b));
	build_begin(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0);
	memset(&b, 0, sizeof(b));
	build_commit(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0);
	memset(&b, 0, sizeof(b));
	build_stream_commit(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0); /* STREAM COMMIT without STREAM STOP */
	memset(&b, 0, sizeof(b));
	build_stream_abort(&b);
	expect_error(&b, PGO_ERR_STREAM_STATE, 0);
	ck_assert(dec.in_stream);
}
END_TEST

START_TEST(unknown_flag_bits_are_refused)
{
	testbuf b = {0};

	init_decoder(3);
	tb_u8(tb_u8(&b, 'C'), 1); /* commit flags */
	tb_u64(tb_u64(tb_u64(&b, 1), 2), 3);
	expect_error(&b, PGO_ERR_BAD_FLAGS, 1);
	memset(&b, 0, sizeof(b));
	tb_u32(tb_u8(&b, 'R'), 1);
	tb_str(tb_str(&b, "s"), "t");
	tb_u16(tb_u8(&b, 'd'), 1);
	tb_u8(&b, 2); /* column flags */
	tb_u32(tb_u32(tb_str(&b, "c"), 23), 0);
	expect_error(&b, PGO_ERR_BAD_FLAGS, 12);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'T'), 1), 4); /* truncate options */
	tb_u32(&b, 1);
	expect_error(&b, PGO_ERR_BAD_FLAGS, 5);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u8(&b, 'M'), 2); /* message flags */
	tb_u32(tb_str(tb_u64(&b, 1), "p"), 0);
	expect_error(&b, PGO_ERR_BAD_FLAGS, 1);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'S'), 1), 2); /* first segment */
	expect_error(&b, PGO_ERR_BAD_FLAGS, 5);
	memset(&b, 0, sizeof(b));
	build_prepare(&b);
	b.data[1] = 1;
	expect_error(&b, PGO_ERR_BAD_FLAGS, 1);
	memset(&b, 0, sizeof(b));
	build_rollback_prepared(&b);
	b.data[1] = 0x80;
	expect_error(&b, PGO_ERR_BAD_FLAGS, 1);
}
END_TEST

START_TEST(strings_lengths_and_counts_are_checked)
{
	testbuf b = {0};

	init_decoder(1);
	tb_u32(tb_u8(&b, 'R'), 1);
	tb_bytes(&b, "public", 6); /* no NUL anywhere */
	expect_error(&b, PGO_ERR_BAD_STRING, 5);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u32(tb_u8(tb_u16(&b, 1), 't'), 0xFFFFFFFF); /* length -1 */
	expect_error(&b, PGO_ERR_BAD_LENGTH, 9);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u32(tb_u8(tb_u16(&b, 1), 't'), 0x7FFFFFFF); /* huge */
	tb_bytes(&b, "abc", 3);
	expect_error(&b, PGO_ERR_TRUNCATED, 13);
	ck_assert_ptr_nonnull(strstr(dec.error.detail, "column 1"));
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u8(&b, 'M'), 0);
	tb_u32(tb_str(tb_u64(&b, 1), "p"), 0x80000000); /* content length negative */
	expect_error(&b, PGO_ERR_BAD_LENGTH, 12);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u16(&b, 0xFFFF); /* ncols -1 */
	expect_error(&b, PGO_ERR_BAD_COUNT, 6);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'T'), 0xFFFFFFFE), 0); /* nrelids -2 */
	expect_error(&b, PGO_ERR_BAD_COUNT, 1);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'T'), 1000000), 0); /* far more relids than bytes */
	tb_u32(&b, 1);
	expect_error(&b, PGO_ERR_TRUNCATED, 6);
	memset(&b, 0, sizeof(b));
	tb_u32(tb_u8(&b, 'R'), 1);
	tb_u16(tb_u8(tb_str(tb_str(&b, "s"), "t"), 'd'), 0x8000); /* relation ncols negative */
	expect_error(&b, PGO_ERR_BAD_COUNT, 10);
}
END_TEST

START_TEST(column_counts_beyond_the_limit_or_the_relation_are_refused)
{
	testbuf b = {0};

	init_decoder(1);
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u16(&b, 5); /* limit is 4 */
	for (int i = 0; i < 5; i++)
		tb_col(&b, 'n', NULL);
	expect_error(&b, PGO_ERR_TOO_MANY_COLUMNS, 6);
	memset(&b, 0, sizeof(b));
	tb_u32(tb_u8(&b, 'R'), 1);
	tb_u16(tb_u8(tb_str(tb_str(&b, "s"), "t"), 'd'), 5);
	expect_error(&b, PGO_ERR_TOO_MANY_COLUMNS, 10);

	/* the relation said 2 columns; the tuple has 3 */
	natts_answer = 2;
	memset(&b, 0, sizeof(b));
	build_insert(&b);
	expect_error(&b, PGO_ERR_COLUMN_COUNT_MISMATCH, 6);
	memset(&b, 0, sizeof(b));
	build_update_old(&b);
	expect_error(&b, PGO_ERR_COLUMN_COUNT_MISMATCH, 6); /* the old tuple */
	memset(&b, 0, sizeof(b));
	build_delete_key(&b);
	expect_error(&b, PGO_ERR_COLUMN_COUNT_MISMATCH, 6);
	natts_answer = 3;
	memset(&b, 0, sizeof(b));
	build_insert(&b);
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
	natts_answer = -1; /* unknown relation: no check */
	ck_assert_int_eq(decode(&b), PGO_ERR_OK);
}
END_TEST

START_TEST(unknown_column_kinds_markers_and_identities_are_refused)
{
	testbuf b = {0};

	init_decoder(1);
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u8(tb_col(tb_u16(&b, 2), 't', "1"), 'x');
	expect_error(&b, PGO_ERR_BAD_COLUMN_KIND, 14);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'K'); /* insert needs 'N' */
	build_tuple(&b);
	expect_error(&b, PGO_ERR_BAD_TUPLE_MARKER, 5);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'U'), 1), 'X');
	expect_error(&b, PGO_ERR_BAD_TUPLE_MARKER, 5);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'U'), 1), 'K');
	build_tuple(&b);
	tb_u8(&b, 'O'); /* after the old key, only 'N' */
	build_tuple(&b);
	expect_error(&b, PGO_ERR_BAD_TUPLE_MARKER, 5 + 1 + 2 + 9 + 1 + 7);
	memset(&b, 0, sizeof(b));
	tb_u8(tb_u32(tb_u8(&b, 'D'), 1), 'N'); /* delete needs 'K' or 'O' */
	build_tuple(&b);
	expect_error(&b, PGO_ERR_BAD_TUPLE_MARKER, 5);
	memset(&b, 0, sizeof(b));
	tb_u32(tb_u8(&b, 'R'), 1);
	tb_u16(tb_u8(tb_str(tb_str(&b, "s"), "t"), 'z'), 0);
	expect_error(&b, PGO_ERR_BAD_REPLICA_IDENTITY, 9);
}
END_TEST

START_TEST(required_lsns_of_zero_are_refused)
{
	testbuf b = {0};

	init_decoder(3);
	tb_u64(tb_u8(&b, 'B'), 0);
	tb_u32(tb_u64(&b, 1), 1);
	expect_error(&b, PGO_ERR_INVALID_LSN, 1);
	memset(&b, 0, sizeof(b));
	build_begin_prepare(&b);
	memset(b.data + 9, 0, 8); /* end lsn */
	expect_error(&b, PGO_ERR_INVALID_LSN, 9);
	memset(&b, 0, sizeof(b));
	build_commit_prepared(&b);
	memset(b.data + 2, 0, 8);
	expect_error(&b, PGO_ERR_INVALID_LSN, 2);
	memset(&b, 0, sizeof(b));
	build_rollback_prepared(&b);
	memset(b.data + 10, 0, 8);
	expect_error(&b, PGO_ERR_INVALID_LSN, 10);
	memset(&b, 0, sizeof(b));
	build_prepare(&b);
	memset(b.data + 2, 0, 8);
	expect_error(&b, PGO_ERR_INVALID_LSN, 2);
}
END_TEST

START_TEST(a_failed_message_leaves_the_stream_state_alone)
{
	testbuf b = {0};

	init_decoder(2);
	enter_stream();
	tb_u8(tb_u32(tb_u32(tb_u8(&b, 'I'), 77), 1), 'N');
	tb_u8(tb_u16(&b, 1), 'q');
	ck_assert_int_ne(decode(&b), PGO_ERR_OK);
	ck_assert(dec.in_stream);
	memset(&b, 0, sizeof(b));
	tb_u8(&b, 'E');
	tb_u8(&b, 0); /* a Stream Stop with a stray byte */
	ck_assert_int_eq(decode(&b), PGO_ERR_TRAILING_DATA);
	ck_assert(dec.in_stream);
	init_decoder(2);
	memset(&b, 0, sizeof(b));
	tb_u32(tb_u8(&b, 'S'), 5); /* first-segment byte missing */
	ck_assert_int_eq(decode(&b), PGO_ERR_TRUNCATED);
	ck_assert(!dec.in_stream);
}
END_TEST

START_TEST(an_error_reads_as_one_line_with_type_offset_and_reason)
{
	testbuf b = {0};
	char line[256];

	init_decoder(1);
	tb_u8(tb_u32(tb_u8(&b, 'I'), 1), 'N');
	tb_u32(tb_u8(tb_u16(&b, 1), 't'), 1000);
	ck_assert_int_eq(decode(&b), PGO_ERR_TRUNCATED);
	pgo_error_format(&dec.error, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "Insert message"));
	ck_assert_ptr_nonnull(strstr(line, "byte 13"));
	ck_assert_ptr_nonnull(strstr(line, pgo_strerror(PGO_ERR_TRUNCATED)));
	ck_assert_ptr_nonnull(strstr(line, "need 1000 bytes, 0 left"));
	ck_assert_ptr_null(strchr(line, '\n'));
	memset(&b, 0, sizeof(b));
	tb_u8(&b, 'Z');
	ck_assert_int_eq(decode(&b), PGO_ERR_UNKNOWN_MESSAGE);
	pgo_error_format(&dec.error, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "0x5a"));
}
END_TEST

START_TEST(every_error_code_has_a_name_and_a_reason)
{
	for (int i = 0; i < PGO_ERR__COUNT; i++)
	{
		ck_assert_ptr_nonnull(pgo_strerror((pgo_err)i));
		ck_assert_int_gt(strlen(pgo_strerror((pgo_err)i)), 0);
		for (int j = 0; j < i; j++)
		{
			ck_assert_str_ne(pgo_strerror((pgo_err)i), pgo_strerror((pgo_err)j));
			ck_assert_str_ne(pgo_errname((pgo_err)i), pgo_errname((pgo_err)j));
		}
	}
	ck_assert_ptr_nonnull(pgo_strerror(PGO_ERR__COUNT));
	ck_assert_ptr_nonnull(pgo_errname((pgo_err)-1));
	ck_assert_str_eq(pgo_msgtype_name('Y'), "Type");
	ck_assert_str_eq(pgo_msgtype_name('p'), "Stream Prepare");
	ck_assert_str_eq(pgo_msgtype_name('?'), "unknown");
}
END_TEST

START_TEST(an_unusable_configuration_is_refused)
{
	pgo_config cfg = {.proto_version = 1,
	                  .max_columns = 4,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols};
	pgo_config bad;

	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
	ck_assert_int_eq(pgo_decoder_init(NULL, &cfg), PGO_ERR_INVALID_ARGUMENT);
	ck_assert_int_eq(pgo_decoder_init(&dec, NULL), PGO_ERR_INVALID_ARGUMENT);
	bad = cfg;
	bad.proto_version = 0;
	ck_assert_int_eq(pgo_decoder_init(&dec, &bad), PGO_ERR_INVALID_ARGUMENT);
	bad.proto_version = 5;
	ck_assert_int_eq(pgo_decoder_init(&dec, &bad), PGO_ERR_INVALID_ARGUMENT);
	bad = cfg;
	bad.max_columns = 0;
	ck_assert_int_eq(pgo_decoder_init(&dec, &bad), PGO_ERR_INVALID_ARGUMENT);
	bad = cfg;
	bad.old_cols = NULL;
	ck_assert_int_eq(pgo_decoder_init(&dec, &bad), PGO_ERR_INVALID_ARGUMENT);
	bad = cfg;
	bad.rel_cols = NULL;
	ck_assert_int_eq(pgo_decoder_init(&dec, &bad), PGO_ERR_INVALID_ARGUMENT);
}
END_TEST

static Suite *
decode_suite(void)
{
	Suite *s = suite_create("pgo_decode");
	TCase *tc = tcase_create("valid messages");
	TCase *te = tcase_create("fields");
	TCase *tr = tcase_create("errors");

	tcase_add_loop_test(tc, each_valid_message_decodes, 0, NVALID);
	tcase_add_loop_test(tc, every_truncated_prefix_fails_cleanly, 0, NVALID);
	tcase_add_loop_test(tc, one_byte_too_many_is_an_error, 0, NVALID);
	suite_add_tcase(s, tc);

	tcase_add_test(te, begin_and_commit_fields);
	tcase_add_test(te, relation_fields_are_views_into_the_input);
	tcase_add_test(te, type_and_origin_fields);
	tcase_add_test(te, insert_values_of_every_kind_are_views);
	tcase_add_test(te, update_old_key_old_row_and_unchanged_toast);
	tcase_add_test(te, delete_with_old_key_and_old_row);
	tcase_add_test(te, truncate_of_several_relations_with_flags);
	tcase_add_test(te, logical_message_with_binary_content);
	tcase_add_test(te, a_streamed_transaction_carries_its_xid_until_stream_stop);
	tcase_add_test(te, stream_abort_with_and_without_v4_abort_info);
	tcase_add_test(te, two_phase_fields);
	suite_add_tcase(s, te);

	tcase_add_test(tr, empty_too_large_and_unknown_messages);
	tcase_add_test(tr, messages_from_a_newer_protocol_version_are_refused);
	tcase_add_test(tr, stream_messages_out_of_order_are_refused);
	tcase_add_test(tr, unknown_flag_bits_are_refused);
	tcase_add_test(tr, strings_lengths_and_counts_are_checked);
	tcase_add_test(tr, column_counts_beyond_the_limit_or_the_relation_are_refused);
	tcase_add_test(tr, unknown_column_kinds_markers_and_identities_are_refused);
	tcase_add_test(tr, required_lsns_of_zero_are_refused);
	tcase_add_test(tr, a_failed_message_leaves_the_stream_state_alone);
	tcase_add_test(tr, an_error_reads_as_one_line_with_type_offset_and_reason);
	tcase_add_test(tr, every_error_code_has_a_name_and_a_reason);
	tcase_add_test(tr, an_unusable_configuration_is_refused);
	suite_add_tcase(s, tr);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decode_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
