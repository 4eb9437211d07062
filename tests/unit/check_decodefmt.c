/*
 * check_decodefmt.c — the decode command's output: exact text and JSON
 * lines for every message kind, built as raw pgoutput bytes and decoded by
 * libpgoutput (so the views-into-the-buffer contract is exercised: every
 * buffer is scribbled over after it is handled); quoting and escaping edge
 * cases of strbuf; timestamps; and the errors.
 *
 * Set DECODEFMT_JSON_DUMP=/some/file to append every JSON line produced, then
 * check them by hand: python3 -c 'import json,sys;[json.loads(l) for l in open(sys.argv[1])]' FILE
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decodefmt.h"
#include "pgoutput.h"
#include "relcache.h"
#include "strbuf.h"

/* ---- building raw pgoutput messages ---- */

typedef struct msgbuf
{
	uint8_t data[4096];
	size_t len;
} msgbuf;

/* Append one byte (big-endian helpers below build on it). */
static void
mb_u8(msgbuf *b, uint8_t v)
{
	ck_assert_uint_lt(b->len, sizeof(b->data));
	b->data[b->len++] = v;
}

/* Append an Int16. */
static void
mb_u16(msgbuf *b, uint16_t v)
{
	mb_u8(b, (uint8_t)(v >> 8));
	mb_u8(b, (uint8_t)v);
}

/* Append an Int32. */
static void
mb_u32(msgbuf *b, uint32_t v)
{
	mb_u16(b, (uint16_t)(v >> 16));
	mb_u16(b, (uint16_t)v);
}

/* Append an Int64. */
static void
mb_u64(msgbuf *b, uint64_t v)
{
	mb_u32(b, (uint32_t)(v >> 32));
	mb_u32(b, (uint32_t)v);
}

/* Append len raw bytes. */
static void
mb_bytes(msgbuf *b, const void *p, size_t len)
{
	ck_assert_uint_le(b->len + len, sizeof(b->data));
	memcpy(b->data + b->len, p, len);
	b->len += len;
}

/* Append a NUL-terminated String. */
static void
mb_str(msgbuf *b, const char *s)
{
	mb_bytes(b, s, strlen(s) + 1);
}

/* Start a new message of type t. */
static msgbuf *
mb_start(msgbuf *b, char t)
{
	b->len = 0;
	mb_u8(b, (uint8_t)t);
	return b;
}

/* A column description for mb_relation. */
typedef struct testcol
{
	const char *name;
	pgo_oid type;
	int32_t typmod;
	bool key;
} testcol;

/* A column value for mb_tuple: kind, and for 't'/'b' the bytes (len -1: strlen). */
typedef struct testval
{
	char kind;
	const char *data;
	int len;
} testval;

#define NUL_         \
	{                \
		'n', NULL, 0 \
	}
#define TOAST_       \
	{                \
		'u', NULL, 0 \
	}
#define TXT(s)     \
	{              \
		't', s, -1 \
	}

/* A raw Relation message. */
static void
mb_relation(msgbuf *b, pgo_oid relid, const char *nsp, const char *rel, char ident,
            const testcol *cols, uint16_t ncols)
{
	mb_start(b, 'R');
	mb_u32(b, relid);
	mb_str(b, nsp);
	mb_str(b, rel);
	mb_u8(b, (uint8_t)ident);
	mb_u16(b, ncols);
	for (uint16_t i = 0; i < ncols; i++)
	{
		mb_u8(b, cols[i].key ? PGO_RELCOL_KEY : 0);
		mb_str(b, cols[i].name);
		mb_u32(b, cols[i].type);
		mb_u32(b, (uint32_t)cols[i].typmod);
	}
}

/* Append TupleData. */
static void
mb_tuple(msgbuf *b, const testval *vals, uint16_t n)
{
	mb_u16(b, n);
	for (uint16_t i = 0; i < n; i++)
	{
		mb_u8(b, (uint8_t)vals[i].kind);
		if (vals[i].kind == 't' || vals[i].kind == 'b')
		{
			size_t len = vals[i].len < 0 ? strlen(vals[i].data) : (size_t)vals[i].len;

			mb_u32(b, (uint32_t)len);
			mb_bytes(b, vals[i].data, len);
		}
	}
}

/* ---- fixture ---- */

#define MAXCOLS  64
#define NVALS(a) ((uint16_t)(sizeof(a) / sizeof((a)[0])))

static relcache rc;
static strbuf out;
static pgo_decoder dec;
static pgo_value old_cols[MAXCOLS], new_cols[MAXCOLS];
static pgo_relcol rel_cols[MAXCOLS];
static char err[256];

/* public.t: the brief's example table. */
static const testcol t_cols[] = {{"id", 23, -1, true},
                                 {"name", 25, -1, false},
                                 {"doc", 17, -1, false},
                                 {"n", 23, -1, false},
                                 {"big", 25, -1, false}};
/* public.u: a small keyed table. */
static const testcol u_cols[] = {{"id", 23, -1, true}, {"name", 25, -1, false}};

/* A cache with the builtin type names preloaded, an empty buffer, a v4 decoder. */
static void
setup(void)
{
	static const struct
	{
		pgo_oid oid;
		const char *name;
	} types[] = {{16, "boolean"},   {17, "bytea"},
	             {20, "bigint"},    {23, "integer"},
	             {25, "text"},      {701, "double precision"},
	             {1700, "numeric"}, {1043, "character varying"}};
	pgo_config cfg = {.proto_version = 4,
	                  .max_columns = MAXCOLS,
	                  .old_cols = old_cols,
	                  .new_cols = new_cols,
	                  .rel_cols = rel_cols,
	                  .natts = relcache_natts,
	                  .natts_arg = &rc};

	ck_assert_msg(relcache_init(&rc, NULL, err, sizeof(err)), "%s", err);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		ck_assert(relcache_set_type_name(&rc, types[i].oid, types[i].name, err, sizeof(err)));
	strbuf_init(&out);
	ck_assert_int_eq(pgo_decoder_init(&dec, &cfg), PGO_ERR_OK);
}

/* Free what setup made. */
static void
teardown(void)
{
	relcache_free(&rc);
	strbuf_free(&out);
}

/* Append a JSON line to $DECODEFMT_JSON_DUMP, for checking with a real parser by hand. */
static void
dump_json(const char *line)
{
	const char *path = getenv("DECODEFMT_JSON_DUMP");
	FILE *f;

	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return;
	fputs(line, f);
	fclose(f);
}

/* Decode b, format it at lsn, scribble over b (the ring record is gone), return the line. */
static const char *
handle_at(msgbuf *b, decodefmt_format fmt, pgo_lsn lsn)
{
	pgo_message m;

	ck_assert_int_eq(pgo_decode(&dec, b->data, b->len, &m), PGO_ERR_OK);
	strbuf_reset(&out);
	ck_assert_msg(decodefmt_handle(&out, fmt, &m, lsn, &rc, err, sizeof(err)), "%s", err);
	memset(b->data, 0xEE, sizeof(b->data));
	if (fmt == DECODEFMT_JSON)
		dump_json(strbuf_data(&out));
	return strbuf_data(&out);
}

/* handle_at with a fixed LSN, 0/10. */
static const char *
handle(msgbuf *b, decodefmt_format fmt)
{
	return handle_at(b, fmt, 0x10);
}

/* Send the Relation messages for public.t (16384) and public.u (16385). */
static void
send_relations(void)
{
	msgbuf b;

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, NVALS(t_cols));
	handle(&b, DECODEFMT_TEXT);
	mb_relation(&b, 16385, "public", "u", 'd', u_cols, NVALS(u_cols));
	handle(&b, DECODEFMT_TEXT);
}

/* 2026-11-24 14:00:00.123456 UTC in PostgreSQL-epoch microseconds. */
#define EXAMPLE_TS   INT64_C(848844000123456)
#define EXAMPLE_LSN  UINT64_C(0x16B374D848)
#define EXAMPLE_END  UINT64_C(0x16B374D880)
#define EXAMPLE_XID  750
#define EXAMPLE_TEXT "2026-11-24 14:00:00.123456+00"
#define EXAMPLE_ISO  "2026-11-24T14:00:00.123456Z"

/* The brief's example Begin. */
static void
mb_begin(msgbuf *b)
{
	mb_start(b, 'B');
	mb_u64(b, EXAMPLE_LSN);
	mb_u64(b, (uint64_t)EXAMPLE_TS);
	mb_u32(b, EXAMPLE_XID);
}

/* The brief's example Commit. */
static void
mb_commit(msgbuf *b)
{
	mb_start(b, 'C');
	mb_u8(b, 0);
	mb_u64(b, EXAMPLE_LSN);
	mb_u64(b, EXAMPLE_END);
	mb_u64(b, (uint64_t)EXAMPLE_TS);
}

/* Open transaction 750. */
static void
begin_txn(void)
{
	msgbuf b;

	mb_begin(&b);
	handle(&b, DECODEFMT_TEXT);
}

/* ---- transaction control ---- */

START_TEST(begin_and_commit_text)
{
	msgbuf b;

	mb_begin(&b);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "BEGIN 750 lsn=16/B374D848 commit_time=" EXAMPLE_TEXT "\n");
	mb_commit(&b);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "COMMIT 750 lsn=16/B374D848 end_lsn=16/B374D880 "
	                                             "commit_time=" EXAMPLE_TEXT "\n");
	/* a Commit with no Begin before it cannot name its xid */
	mb_commit(&b);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "COMMIT lsn=16/B374D848 end_lsn=16/B374D880 commit_time=" EXAMPLE_TEXT "\n");
}
END_TEST

START_TEST(begin_and_commit_json)
{
	msgbuf b;

	mb_begin(&b);
	ck_assert_str_eq(handle_at(&b, DECODEFMT_JSON, UINT64_C(0x16B374D000)),
	                 "{\"kind\":\"begin\",\"lsn\":\"16/B374D000\",\"xid\":750,\"final_lsn\":"
	                 "\"16/B374D848\",\"commit_time\":\"" EXAMPLE_ISO "\"}\n");
	mb_commit(&b);
	ck_assert_str_eq(handle_at(&b, DECODEFMT_JSON, EXAMPLE_END),
	                 "{\"kind\":\"commit\",\"lsn\":\"16/B374D880\",\"xid\":750,\"commit_lsn\":"
	                 "\"16/B374D848\",\"end_lsn\":\"16/B374D880\",\"commit_time\":\"" EXAMPLE_ISO
	                 "\"}\n");
	mb_commit(&b);
	ck_assert_str_eq(handle_at(&b, DECODEFMT_JSON, EXAMPLE_END),
	                 "{\"kind\":\"commit\",\"lsn\":\"16/B374D880\",\"commit_lsn\":"
	                 "\"16/B374D848\",\"end_lsn\":\"16/B374D880\",\"commit_time\":\"" EXAMPLE_ISO
	                 "\"}\n");
}
END_TEST

/* ---- changes ---- */

static void
mb_example_insert(msgbuf *b)
{
	const testval vals[] = {TXT("1"), TXT("it's"), TXT("\\x0001"), NUL_, TOAST_};

	mb_start(b, 'I');
	mb_u32(b, 16384);
	mb_u8(b, 'N');
	mb_tuple(b, vals, NVALS(vals));
}

START_TEST(insert_text)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_example_insert(&b);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.t: INSERT: id[integer]:1 name[text]:'it''s' "
	                 "doc[bytea]:'\\x0001' n[integer]:null big[text]:unchanged-toast-datum\n");
}
END_TEST

START_TEST(insert_json)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_example_insert(&b);
	ck_assert_str_eq(
	    handle_at(&b, DECODEFMT_JSON, EXAMPLE_LSN),
	    "{\"kind\":\"insert\",\"lsn\":\"16/B374D848\",\"xid\":750,\"schema\":\"public\","
	    "\"table\":\"t\",\"columns\":[{\"name\":\"id\",\"type\":\"integer\",\"value\":\"1\"},"
	    "{\"name\":\"name\",\"type\":\"text\",\"value\":\"it's\"},"
	    "{\"name\":\"doc\",\"type\":\"bytea\",\"value\":\"\\\\x0001\"},"
	    "{\"name\":\"n\",\"type\":\"integer\",\"value\":null},"
	    "{\"name\":\"big\",\"type\":\"text\",\"unchanged_toast\":true}]}\n");
}
END_TEST

/* An Update of public.u with the given old tuple marker (0: none). */
static void
mb_update(msgbuf *b, char old_kind)
{
	const testval key[] = {TXT("1"), NUL_};
	const testval old[] = {TXT("1"), TXT("a")};
	const testval new[] = {TXT("2"), TXT("x")};

	mb_start(b, 'U');
	mb_u32(b, 16385);
	if (old_kind)
	{
		mb_u8(b, (uint8_t)old_kind);
		if (old_kind == 'K')
			mb_tuple(b, key, NVALS(key));
		else
			mb_tuple(b, old, NVALS(old));
	}
	mb_u8(b, 'N');
	mb_tuple(b, new, NVALS(new));
}

START_TEST(update_text)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_update(&b, 'K');
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 "
	                 "name[text]:'x'\n");
	mb_update(&b, 'O');
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: UPDATE: old-tuple: id[integer]:1 name[text]:'a' new-tuple: "
	                 "id[integer]:2 name[text]:'x'\n");
	mb_update(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: UPDATE: id[integer]:2 name[text]:'x'\n");
}
END_TEST

START_TEST(update_json)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_update(&b, 'K');
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"update\",\"lsn\":\"0/10\",\"xid\":750,\"schema\":\"public\","
	                 "\"table\":\"u\",\"old_key\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"1\"}],\"columns\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"2\"},{\"name\":\"name\",\"type\":\"text\",\"value\":\"x\"}]}\n");
	mb_update(&b, 'O');
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"update\",\"lsn\":\"0/10\",\"xid\":750,\"schema\":\"public\","
	                 "\"table\":\"u\",\"old_tuple\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"1\"},{\"name\":\"name\",\"type\":\"text\",\"value\":\"a\"}],"
	                 "\"columns\":[{\"name\":\"id\",\"type\":\"integer\",\"value\":\"2\"},"
	                 "{\"name\":\"name\",\"type\":\"text\",\"value\":\"x\"}]}\n");
	mb_update(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"update\",\"lsn\":\"0/10\",\"xid\":750,\"schema\":\"public\","
	                 "\"table\":\"u\",\"columns\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"2\"},{\"name\":\"name\",\"type\":\"text\",\"value\":\"x\"}]}\n");
}
END_TEST

/* A Delete of public.u: 'K' carries nulls for the non-key columns, 'O' the whole row. */
static void
mb_delete(msgbuf *b, char old_kind)
{
	const testval key[] = {TXT("1"), NUL_};
	const testval old[] = {TXT("1"), TXT("a")};

	mb_start(b, 'D');
	mb_u32(b, 16385);
	mb_u8(b, (uint8_t)old_kind);
	if (old_kind == 'K')
		mb_tuple(b, key, NVALS(key));
	else
		mb_tuple(b, old, NVALS(old));
}

START_TEST(delete_text_and_json)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_delete(&b, 'K');
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "table public.u: DELETE: id[integer]:1\n");
	mb_delete(&b, 'O');
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: DELETE: id[integer]:1 name[text]:'a'\n");
	mb_delete(&b, 'K');
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"delete\",\"lsn\":\"0/10\",\"xid\":750,\"schema\":\"public\","
	                 "\"table\":\"u\",\"old_key\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"1\"}]}\n");
	mb_delete(&b, 'O');
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"delete\",\"lsn\":\"0/10\",\"xid\":750,\"schema\":\"public\","
	                 "\"table\":\"u\",\"old_tuple\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"1\"},{\"name\":\"name\",\"type\":\"text\",\"value\":\"a\"}]}\n");
}
END_TEST

/* A relation with no key flags (e.g. a re-sent Relation racing a DROP of the key). */
START_TEST(old_key_without_key_columns_prints_the_non_null_ones)
{
	static const testcol cols[] = {{"a", 23, -1, false}, {"b", 25, -1, false}};
	const testval key[] = {NUL_, TXT("k")};
	msgbuf b;

	mb_relation(&b, 16386, "s", "nokey", 'i', cols, NVALS(cols));
	handle(&b, DECODEFMT_TEXT);
	mb_start(&b, 'D');
	mb_u32(&b, 16386);
	mb_u8(&b, 'K');
	mb_tuple(&b, key, NVALS(key));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "table s.nokey: DELETE: b[text]:'k'\n");
}
END_TEST

/* Truncate of public.t and public.u. */
static void
mb_truncate(msgbuf *b, uint8_t options)
{
	mb_start(b, 'T');
	mb_u32(b, 2);
	mb_u8(b, options);
	mb_u32(b, 16384);
	mb_u32(b, 16385);
}

START_TEST(truncate_text_and_json)
{
	msgbuf b;

	send_relations();
	begin_txn();
	mb_truncate(&b, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.t, public.u: TRUNCATE: cascade restart_seqs\n");
	mb_truncate(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.t, public.u: TRUNCATE: (no-flags)\n");
	mb_truncate(&b, PGO_TRUNCATE_RESTART_IDENTITY);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.t, public.u: TRUNCATE: restart_seqs\n");
	mb_truncate(&b, PGO_TRUNCATE_CASCADE);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"truncate\",\"lsn\":\"0/10\",\"xid\":750,\"tables\":["
	                 "{\"schema\":\"public\",\"table\":\"t\"},{\"schema\":\"public\","
	                 "\"table\":\"u\"}],\"cascade\":true,\"restart_identity\":false}\n");
}
END_TEST

/* ---- logical messages ---- */

static void
mb_message(msgbuf *b, bool transactional, const char *prefix, const char *content, size_t len)
{
	mb_start(b, 'M');
	mb_u8(b, transactional ? PGO_MESSAGE_TRANSACTIONAL : 0);
	mb_u64(b, 0x10);
	mb_str(b, prefix);
	mb_u32(b, (uint32_t)len);
	mb_bytes(b, content, len);
}

START_TEST(message_text_and_json)
{
	msgbuf b;

	mb_message(&b, false, "x", "hello", 5);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "message: transactional: 0 prefix: x, sz: 5 content:hello\n");
	mb_message(&b, false, "x", "hello", 5);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"message\",\"lsn\":\"0/10\",\"transactional\":false,"
	                 "\"prefix\":\"x\",\"content\":\"hello\"}\n");

	begin_txn();
	mb_message(&b, true, "x", "hello", 5);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "message: transactional: 1 prefix: x, sz: 5 content:hello\n");
	mb_message(&b, true, "p\"q", "\xc3\xa9\"\\\n", 5);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"message\",\"lsn\":\"0/10\",\"xid\":750,\"transactional\":true,"
	                 "\"prefix\":\"p\\\"q\",\"content\":\"\xc3\xa9\\\"\\\\\\u000a\"}\n");
}
END_TEST

/* Binary payloads: escaped in text, hex in JSON; a NUL byte included. */
START_TEST(message_with_binary_content)
{
	msgbuf b;

	mb_message(&b, false, "bin\n", "a\nb\x01\xff\0z", 7);
	ck_assert_str_eq(
	    handle(&b, DECODEFMT_TEXT),
	    "message: transactional: 0 prefix: bin\\n, sz: 7 content:a\\nb\\x01\\xff\\x00z\n");
	mb_message(&b, false, "bin", "a\nb\x01\xff\0z", 7);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"message\",\"lsn\":\"0/10\",\"transactional\":false,"
	                 "\"prefix\":\"bin\",\"content_hex\":\"610a6201ff007a\"}\n");
	/* valid UTF-8 with a NUL is still a string */
	mb_message(&b, false, "z", "a\0b", 3);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"message\",\"lsn\":\"0/10\",\"transactional\":false,"
	                 "\"prefix\":\"z\",\"content\":\"a\\u0000b\"}\n");
	mb_message(&b, false, "", "", 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "message: transactional: 0 prefix: , sz: 0 content:\n");
}
END_TEST

/* ---- relation, type, origin ---- */

START_TEST(relation_text_and_json)
{
	static const testcol cols[] = {{"id", 23, -1, true}, {"v", 1043, 14, false}};
	msgbuf b;

	mb_relation(&b, 16384, "public", "t", 'd', t_cols, NVALS(t_cols));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "RELATION public.t (16384) replica_identity=default columns=id[integer,key] "
	                 "name[text] doc[bytea] n[integer] big[text]\n");
	mb_relation(&b, 16387, "", "pg_thing", 'f', cols, NVALS(cols));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "RELATION pg_catalog.pg_thing (16387) replica_identity=full "
	                 "columns=id[integer,key] v[character varying,typmod=14]\n");
	mb_relation(&b, 16388, "s", "empty", 'n', NULL, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "RELATION s.empty (16388) replica_identity=nothing columns=(none)\n");
	mb_relation(&b, 16385, "public", "u", 'i', u_cols, NVALS(u_cols));
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"relation\",\"lsn\":\"0/10\",\"relid\":16385,\"schema\":"
	                 "\"public\",\"table\":\"u\",\"replica_identity\":\"index\",\"columns\":["
	                 "{\"name\":\"id\",\"type\":\"integer\",\"type_oid\":23,\"typmod\":-1,"
	                 "\"key\":true},{\"name\":\"name\",\"type\":\"text\",\"type_oid\":25,"
	                 "\"typmod\":-1,\"key\":false}]}\n");
}
END_TEST

/* A Type message. */
static void
mb_type(msgbuf *b, pgo_oid oid, const char *nsp, const char *name)
{
	mb_start(b, 'Y');
	mb_u32(b, oid);
	mb_str(b, nsp);
	mb_str(b, name);
}

/* Type names: preloaded, else from the Type message, else the oid. */
START_TEST(type_messages_and_name_fallbacks)
{
	static const testcol cols[] = {
	    {"id", 23, -1, true}, {"m", 16390, -1, false}, {"x", 99999, -1, false}};
	const testval vals[] = {TXT("1"), TXT("happy"), TXT("?")};
	msgbuf b;

	mb_type(&b, 16390, "public", "mood");
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "TYPE 16390 public.mood\n");
	mb_type(&b, 16390, "public", "mood");
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"type\",\"lsn\":\"0/10\",\"oid\":16390,"
	                 "\"schema\":\"public\",\"name\":\"mood\"}\n");
	mb_relation(&b, 16389, "public", "feel", 'd', cols, NVALS(cols));
	ck_assert_str_eq(
	    handle(&b, DECODEFMT_TEXT),
	    "RELATION public.feel (16389) replica_identity=default columns=id[integer,key] "
	    "m[public.mood] x[99999]\n");
	mb_start(&b, 'I');
	mb_u32(&b, 16389);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(
	    handle(&b, DECODEFMT_TEXT),
	    "table public.feel: INSERT: id[integer]:1 m[public.mood]:'happy' x[99999]:'?'\n");
	mb_start(&b, 'I');
	mb_u32(&b, 16389);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"insert\",\"lsn\":\"0/10\",\"schema\":\"public\",\"table\":"
	                 "\"feel\",\"columns\":[{\"name\":\"id\",\"type\":\"integer\",\"value\":\"1\"},"
	                 "{\"name\":\"m\",\"type\":\"public.mood\",\"value\":\"happy\"},"
	                 "{\"name\":\"x\",\"type\":\"99999\",\"value\":\"?\"}]}\n");
}
END_TEST

START_TEST(origin_text_and_json)
{
	msgbuf b;

	begin_txn();
	mb_start(&b, 'O');
	mb_u64(&b, 0xABC);
	mb_str(&b, "node1");
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "ORIGIN lsn=0/ABC name=node1\n");
	mb_start(&b, 'O');
	mb_u64(&b, 0xABC);
	mb_str(&b, "node1");
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"origin\",\"lsn\":\"0/10\",\"xid\":750,\"origin_lsn\":\"0/ABC\","
	                 "\"name\":\"node1\"}\n");
}
END_TEST

/* ---- streaming and two-phase ---- */

START_TEST(stream_messages)
{
	const testval vals[] = {TXT("5"), TXT("s")};
	msgbuf b;

	send_relations();
	mb_start(&b, 'S');
	mb_u32(&b, 900);
	mb_u8(&b, 1);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "STREAM START 900 first_segment\n");

	/* a change of subtransaction 901 inside the block */
	mb_start(&b, 'I');
	mb_u32(&b, 901);
	mb_u32(&b, 16385);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: INSERT: id[integer]:5 name[text]:'s'\n");
	mb_start(&b, 'I');
	mb_u32(&b, 901);
	mb_u32(&b, 16385);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"insert\",\"lsn\":\"0/10\",\"xid\":901,\"schema\":\"public\","
	                 "\"table\":\"u\",\"columns\":[{\"name\":\"id\",\"type\":\"integer\","
	                 "\"value\":\"5\"},{\"name\":\"name\",\"type\":\"text\",\"value\":\"s\"}]}\n");

	mb_start(&b, 'E');
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "STREAM STOP\n");
	mb_start(&b, 'S');
	mb_u32(&b, 900);
	mb_u8(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"stream_start\",\"lsn\":\"0/10\",\"xid\":900,"
	                 "\"first_segment\":false}\n");
	mb_start(&b, 'E');
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON), "{\"kind\":\"stream_stop\",\"lsn\":\"0/10\"}\n");

	mb_start(&b, 'c');
	mb_u32(&b, 900);
	mb_u8(&b, 0);
	mb_u64(&b, 0x100);
	mb_u64(&b, 0x180);
	mb_u64(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "STREAM COMMIT 900 lsn=0/100 end_lsn=0/180 "
	                                             "commit_time=2000-01-01 00:00:00.000000+00\n");
	mb_start(&b, 'c');
	mb_u32(&b, 900);
	mb_u8(&b, 0);
	mb_u64(&b, 0x100);
	mb_u64(&b, 0x180);
	mb_u64(&b, 0);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"stream_commit\",\"lsn\":\"0/10\",\"xid\":900,\"commit_lsn\":"
	                 "\"0/100\",\"end_lsn\":\"0/180\",\"commit_time\":"
	                 "\"2000-01-01T00:00:00.000000Z\"}\n");

	/* v4 with streaming = parallel carries the abort LSN and time */
	mb_start(&b, 'A');
	mb_u32(&b, 900);
	mb_u32(&b, 901);
	mb_u64(&b, 0x200);
	mb_u64(&b, 1000000);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "STREAM ABORT 900 subxid=901 abort_lsn=0/200 "
	                                             "abort_time=2000-01-01 00:00:01.000000+00\n");
	mb_start(&b, 'A');
	mb_u32(&b, 900);
	mb_u32(&b, 901);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT), "STREAM ABORT 900 subxid=901\n");
	mb_start(&b, 'A');
	mb_u32(&b, 900);
	mb_u32(&b, 901);
	mb_u64(&b, 0x200);
	mb_u64(&b, 1000000);
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"stream_abort\",\"lsn\":\"0/10\",\"xid\":900,\"subxid\":901,"
	                 "\"abort_lsn\":\"0/200\",\"abort_time\":\"2000-01-01T00:00:01.000000Z\"}\n");
}
END_TEST

/* Begin Prepare ('b' has no flags byte), Prepare, Stream Prepare. */
static void
mb_prepare(msgbuf *b, char type, const char *gid)
{
	mb_start(b, type);
	if (type != 'b')
		mb_u8(b, 0);
	mb_u64(b, 0x300);
	mb_u64(b, 0x380);
	mb_u64(b, 0);
	mb_u32(b, 950);
	mb_str(b, gid);
}

/* Commit Prepared ('K') of gid: at 0/400, ending at 0/480, xid 950. */
static void
mb_commit_prepared(msgbuf *b, const char *gid)
{
	mb_start(b, 'K');
	mb_u8(b, 0);
	mb_u64(b, 0x400);
	mb_u64(b, 0x480);
	mb_u64(b, 0);
	mb_u32(b, 950);
	mb_str(b, gid);
}

/* Rollback Prepared ('r') of gid: prepared up to 0/380, rolled back up to 0/500, xid 950. */
static void
mb_rollback_prepared(msgbuf *b, const char *gid)
{
	mb_start(b, 'r');
	mb_u8(b, 0);
	mb_u64(b, 0x380);
	mb_u64(b, 0x500);
	mb_u64(b, 0);
	mb_u64(b, 1);
	mb_u32(b, 950);
	mb_str(b, gid);
}

/* One two-phase message, one form, the line it prints. */
typedef struct two_phase_case
{
	char type; /* 'b', 'P', 'p' (the Prepares), 'K' (Commit Prepared), 'r' (Rollback Prepared) */
	const char *gid;
	decodefmt_format fmt;
	const char *want;
	bool closes; /* no transaction is open after it */
} two_phase_case;

static const two_phase_case two_phase_cases[] = {
    {'b', "g1", DECODEFMT_TEXT,
     "BEGIN PREPARE 950 gid='g1' lsn=0/300 end_lsn=0/380 "
     "prepare_time=2000-01-01 00:00:00.000000+00\n",
     false},
    {'P', "g1", DECODEFMT_TEXT,
     "PREPARE 950 gid='g1' lsn=0/300 end_lsn=0/380 "
     "prepare_time=2000-01-01 00:00:00.000000+00\n",
     true},
    {'p', "it's", DECODEFMT_TEXT,
     "STREAM PREPARE 950 gid='it''s' lsn=0/300 end_lsn=0/380 "
     "prepare_time=2000-01-01 00:00:00.000000+00\n",
     false},
    {'P', "g\"1", DECODEFMT_JSON,
     "{\"kind\":\"prepare\",\"lsn\":\"0/10\",\"xid\":950,\"gid\":\"g\\\"1\","
     "\"prepare_lsn\":\"0/300\",\"end_lsn\":\"0/380\",\"prepare_time\":"
     "\"2000-01-01T00:00:00.000000Z\"}\n",
     false},
    {'K', "g1", DECODEFMT_TEXT,
     "COMMIT PREPARED 950 gid='g1' lsn=0/400 end_lsn=0/480 "
     "commit_time=2000-01-01 00:00:00.000000+00\n",
     false},
    {'K', "g1", DECODEFMT_JSON,
     "{\"kind\":\"commit_prepared\",\"lsn\":\"0/10\",\"xid\":950,\"gid\":\"g1\","
     "\"commit_lsn\":\"0/400\",\"end_lsn\":\"0/480\",\"commit_time\":"
     "\"2000-01-01T00:00:00.000000Z\"}\n",
     false},
    {'r', "g1", DECODEFMT_TEXT,
     "ROLLBACK PREPARED 950 gid='g1' prepare_end_lsn=0/380 rollback_end_lsn=0/500 "
     "prepare_time=2000-01-01 00:00:00.000000+00 "
     "rollback_time=2000-01-01 00:00:00.000001+00\n",
     false},
    {'r', "g1", DECODEFMT_JSON,
     "{\"kind\":\"rollback_prepared\",\"lsn\":\"0/10\",\"xid\":950,\"gid\":\"g1\","
     "\"prepare_end_lsn\":\"0/380\",\"rollback_end_lsn\":\"0/500\","
     "\"prepare_time\":\"2000-01-01T00:00:00.000000Z\","
     "\"rollback_time\":\"2000-01-01T00:00:00.000001Z\"}\n",
     false},
};

START_TEST(two_phase_messages)
{
	for (size_t i = 0; i < NVALS(two_phase_cases); i++)
	{
		const two_phase_case *tc = &two_phase_cases[i];
		msgbuf b;

		if (tc->type == 'K')
			mb_commit_prepared(&b, tc->gid);
		else if (tc->type == 'r')
			mb_rollback_prepared(&b, tc->gid);
		else
			mb_prepare(&b, tc->type, tc->gid);
		ck_assert_str_eq(handle(&b, tc->fmt), tc->want);
		if (tc->closes)
			ck_assert(!rc.in_txn);
	}
}
END_TEST

/* ---- values ---- */

static const testcol v_cols[] = {
    {"i", 20, -1, true},    {"f", 701, -1, false}, {"num", 1700, -1, false},
    {"b", 16, -1, false},   {"t", 25, -1, false},  {"vc", 1043, 14, false},
    {"w", 23, -1, false},   {"b2", 16, -1, false}, {"bin", 17, -1, false},
    {"bad", 25, -1, false},
};

/* One row of public.v exercising every quoting rule. */
static void
mb_value_row(msgbuf *b)
{
	const testval vals[] = {
	    TXT("-42"),         TXT("NaN"),
	    TXT("-1.50e+10"),   TXT("t"),
	    TXT("a\nb'c\\"),    TXT("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
	    TXT("1 2"), /* not a bare number: quoted */
	    TXT("f"),           {'b', "\x00\x01\xff", 3},
	    TXT("\xff\x80z\t"),
	};

	mb_start(b, 'I');
	mb_u32(b, 16391);
	mb_u8(b, 'N');
	mb_tuple(b, vals, NVALS(vals));
}

START_TEST(value_quoting_text)
{
	msgbuf b;

	mb_relation(&b, 16391, "public", "v", 'd', v_cols, NVALS(v_cols));
	handle(&b, DECODEFMT_TEXT);
	mb_value_row(&b);
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.v: INSERT: i[bigint]:-42 f[double precision]:NaN "
	                 "num[numeric]:-1.50e+10 b[boolean]:true t[text]:E'a\\nb''c\\\\' "
	                 "vc[character varying]:'h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80' "
	                 "w[integer]:'1 2' b2[boolean]:false bin[bytea]:'\\x0001ff' "
	                 "bad[text]:E'\xff\x80z\\t'\n");
	/* one line, whatever the values hold */
	ck_assert_ptr_eq(strchr(strbuf_data(&out), '\n'), strbuf_data(&out) + strbuf_len(&out) - 1);
}
END_TEST

START_TEST(value_quoting_json)
{
	msgbuf b;

	mb_relation(&b, 16391, "public", "v", 'd', v_cols, NVALS(v_cols));
	handle(&b, DECODEFMT_TEXT);
	mb_value_row(&b);
	ck_assert_str_eq(
	    handle(&b, DECODEFMT_JSON),
	    "{\"kind\":\"insert\",\"lsn\":\"0/10\",\"schema\":\"public\",\"table\":\"v\",\"columns\":["
	    "{\"name\":\"i\",\"type\":\"bigint\",\"value\":\"-42\"},"
	    "{\"name\":\"f\",\"type\":\"double precision\",\"value\":\"NaN\"},"
	    "{\"name\":\"num\",\"type\":\"numeric\",\"value\":\"-1.50e+10\"},"
	    "{\"name\":\"b\",\"type\":\"boolean\",\"value\":\"t\"},"
	    "{\"name\":\"t\",\"type\":\"text\",\"value\":\"a\\u000ab'c\\\\\"},"
	    "{\"name\":\"vc\",\"type\":\"character varying\","
	    "\"value\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"},"
	    "{\"name\":\"w\",\"type\":\"integer\",\"value\":\"1 2\"},"
	    "{\"name\":\"b2\",\"type\":\"boolean\",\"value\":\"f\"},"
	    "{\"name\":\"bin\",\"type\":\"bytea\",\"value_hex\":\"0001ff\"},"
	    "{\"name\":\"bad\",\"type\":\"text\",\"value\":\"\\u00ff\\u0080z\\u0009\"}]}\n");
}
END_TEST

/* Names with quotes, newlines and bad bytes: escaped in text, valid JSON always. */
START_TEST(odd_names)
{
	static const testcol cols[] = {{"a\"b", 23, -1, true}, {"new\nline", 25, -1, false}};
	const testval vals[] = {TXT("1"), TXT("x")};
	msgbuf b;

	mb_relation(&b, 16392, "My \"Schema\"", "t\xff", 'd', cols, NVALS(cols));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "RELATION My \"Schema\".t\\xff (16392) replica_identity=default "
	                 "columns=a\"b[integer,key] new\\nline[text]\n");
	mb_start(&b, 'I');
	mb_u32(&b, 16392);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(handle(&b, DECODEFMT_JSON),
	                 "{\"kind\":\"insert\",\"lsn\":\"0/10\",\"schema\":\"My \\\"Schema\\\"\","
	                 "\"table\":\"t\\u00ff\",\"columns\":[{\"name\":\"a\\\"b\",\"type\":"
	                 "\"integer\",\"value\":\"1\"},{\"name\":\"new\\u000aline\",\"type\":"
	                 "\"text\",\"value\":\"x\"}]}\n");
}
END_TEST

/* ---- the cache behind the output ---- */

/*
 * ALTER TABLE u ADD COLUMN extra: pgoutput re-sends the Relation, and the
 * next change has three columns. The second Relation replaces the first.
 */
START_TEST(relation_change_mid_stream)
{
	static const testcol cols3[] = {
	    {"id", 23, -1, true}, {"name", 25, -1, false}, {"extra", 20, -1, false}};
	const testval vals[] = {TXT("3"), TXT("c"), TXT("99")};
	msgbuf b;

	send_relations();
	ck_assert_uint_eq(relcache_get(&rc, 16385)->generation, 1);
	mb_relation(&b, 16385, "public", "u", 'd', cols3, NVALS(cols3));
	handle(&b, DECODEFMT_TEXT);
	ck_assert_uint_eq(relcache_get(&rc, 16385)->generation, 2);
	mb_start(&b, 'I');
	mb_u32(&b, 16385);
	mb_u8(&b, 'N');
	mb_tuple(&b, vals, NVALS(vals));
	ck_assert_str_eq(handle(&b, DECODEFMT_TEXT),
	                 "table public.u: INSERT: id[integer]:3 name[text]:'c' extra[bigint]:99\n");
}
END_TEST

START_TEST(unknown_relation_is_an_error)
{
	msgbuf b;
	pgo_message m;

	ck_assert(strbuf_append_cstr(&out, "earlier line\n"));
	mb_example_insert(&b);
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);
	ck_assert(!decodefmt_handle(&out, DECODEFMT_TEXT, &m, 0x10, &rc, err, sizeof(err)));
	ck_assert_str_eq(err, "change for unknown relation 16384: no Relation message received "
	                      "before it");
	ck_assert_str_eq(strbuf_data(&out), "earlier line\n");

	/* a Truncate naming one known and one unknown relation leaves nothing half-written */
	mb_relation(&b, 16384, "public", "t", 'd', t_cols, NVALS(t_cols));
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);
	ck_assert(decodefmt_handle(&out, DECODEFMT_JSON, &m, 0x10, &rc, err, sizeof(err)));
	strbuf_reset(&out);
	mb_truncate(&b, 0);
	ck_assert_int_eq(pgo_decode(&dec, b.data, b.len, &m), PGO_ERR_OK);
	ck_assert(!decodefmt_handle(&out, DECODEFMT_JSON, &m, 0x10, &rc, err, sizeof(err)));
	ck_assert_str_eq(err, "change for unknown relation 16385: no Relation message received "
	                      "before it");
	ck_assert_uint_eq(strbuf_len(&out), 0);
}
END_TEST

/* A tuple that disagrees with its relation (only without the decoder's natts check). */
START_TEST(column_count_mismatch_is_an_error)
{
	pgo_value v = {.data = "1", .len = 1, .kind = 't'};
	pgo_message m = {.type = PGO_MSG_INSERT};

	send_relations();
	strbuf_reset(&out);
	m.u.insert.relid = 16385;
	m.u.insert.newtup.ncols = 1;
	m.u.insert.newtup.cols = &v;
	ck_assert(!decodefmt_handle(&out, DECODEFMT_TEXT, &m, 0x10, &rc, err, sizeof(err)));
	ck_assert_str_eq(err, "Insert for relation public.u (16385) has 1 columns, but its Relation "
	                      "message has 2");
	ck_assert_uint_eq(strbuf_len(&out), 0);
}
END_TEST

START_TEST(bad_format_and_bad_type_are_errors)
{
	pgo_message m = {.type = PGO_MSG_STREAM_STOP};

	ck_assert(!decodefmt_handle(&out, (decodefmt_format)7, &m, 0, &rc, err, sizeof(err)));
	ck_assert_str_eq(err, "unknown output format 7");
	m.type = (pgo_msgtype)'Z';
	ck_assert(!decodefmt_handle(&out, DECODEFMT_TEXT, &m, 0, &rc, err, sizeof(err)));
	ck_assert_str_eq(err, "cannot format message type 0x5a");
	ck_assert(!decodefmt_handle(&out, DECODEFMT_JSON, &m, 0, &rc, NULL, 0));
	ck_assert_uint_eq(strbuf_len(&out), 0);
}
END_TEST

/* ---- timestamps ---- */

START_TEST(timestamps)
{
	char buf[DECODEFMT_TIMESTAMP_STRLEN];

	ck_assert_str_eq(decodefmt_timestamp(0, false, buf), "2000-01-01 00:00:00.000000+00");
	ck_assert_str_eq(decodefmt_timestamp(0, true, buf), "2000-01-01T00:00:00.000000Z");
	ck_assert_str_eq(decodefmt_timestamp(-1, false, buf), "1999-12-31 23:59:59.999999+00");
	ck_assert_str_eq(decodefmt_timestamp(-1000000, true, buf), "1999-12-31T23:59:59.000000Z");
	ck_assert_str_eq(decodefmt_timestamp(-1000001, true, buf), "1999-12-31T23:59:58.999999Z");
	ck_assert_str_eq(decodefmt_timestamp(123456, false, buf), "2000-01-01 00:00:00.123456+00");
	ck_assert_str_eq(decodefmt_timestamp(EXAMPLE_TS, false, buf), EXAMPLE_TEXT);
	ck_assert_str_eq(decodefmt_timestamp(EXAMPLE_TS, true, buf), EXAMPLE_ISO);
	/* the Unix epoch */
	ck_assert_str_eq(decodefmt_timestamp(-PGO_EPOCH_OFFSET_SECS * 1000000, false, buf),
	                 "1970-01-01 00:00:00.000000+00");
	/* the day before 0001-01-01 is 1 BC (astronomical year 0) */
	ck_assert_str_eq(decodefmt_timestamp(INT64_C(-63082368000000000), false, buf),
	                 "0001-12-31 00:00:00.000000+00 BC");
	ck_assert_str_eq(decodefmt_timestamp(INT64_C(-63082368000000000), true, buf),
	                 "0000-12-31T00:00:00.000000Z");
	ck_assert_str_eq(decodefmt_timestamp(INT64_MIN, false, buf), "-infinity");
	ck_assert_str_eq(decodefmt_timestamp(INT64_MAX, true, buf), "infinity");
	/* near the ends of the range: no overflow, some answer */
	ck_assert_uint_gt(strlen(decodefmt_timestamp(INT64_MIN + 1, false, buf)), 0);
	ck_assert_uint_gt(strlen(decodefmt_timestamp(INT64_MAX - 1, true, buf)), 0);
}
END_TEST

/* ---- strbuf ---- */

START_TEST(strbuf_basics)
{
	strbuf sb;
	size_t cap;
	char big[1000];

	strbuf_init(&sb);
	ck_assert_str_eq(strbuf_data(&sb), "");
	ck_assert_uint_eq(strbuf_len(&sb), 0);
	ck_assert(strbuf_append(&sb, "ab", 2));
	ck_assert(strbuf_append_char(&sb, 'c'));
	ck_assert(strbuf_append_cstr(&sb, "de"));
	ck_assert(strbuf_appendf(&sb, "-%d-%s", 42, "x"));
	ck_assert_str_eq(strbuf_data(&sb), "abcde-42-x");
	strbuf_truncate(&sb, 3);
	ck_assert_str_eq(strbuf_data(&sb), "abc");
	strbuf_truncate(&sb, 10); /* longer: no-op */
	ck_assert_str_eq(strbuf_data(&sb), "abc");

	/* printf output longer than the spare room */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert(strbuf_appendf(&sb, "[%s]", big));
	ck_assert_uint_eq(strbuf_len(&sb), 3 + 2 + 999);
	ck_assert_int_eq(strbuf_data(&sb)[strbuf_len(&sb) - 1], ']');

	/* reset keeps the capacity */
	cap = sb.cap;
	strbuf_reset(&sb);
	ck_assert_str_eq(strbuf_data(&sb), "");
	ck_assert_uint_eq(sb.cap, cap);

	/* an impossible size fails cleanly and changes nothing */
	ck_assert(strbuf_append_cstr(&sb, "keep"));
	ck_assert(!strbuf_reserve(&sb, SIZE_MAX));
	ck_assert(!strbuf_reserve(&sb, SIZE_MAX - 4));
	ck_assert(!strbuf_append_json_string(&sb, "x", SIZE_MAX / 2));
	ck_assert_str_eq(strbuf_data(&sb), "keep");

	ck_assert(strbuf_append_hex(&sb, "\x00\x7f\x80\xff", 4));
	ck_assert_str_eq(strbuf_data(&sb), "keep007f80ff");
	strbuf_free(&sb);
	ck_assert_str_eq(strbuf_data(&sb), "");
	strbuf_free(&sb);
}
END_TEST

/* One quoting case: input bytes and the expected output of one function. */
typedef struct quote_case
{
	const char *in;
	size_t len;
	const char *want;
} quote_case;

#define QC(in, want)             \
	{                            \
		in, sizeof(in) - 1, want \
	}

/* Each case through quote; with utf8_out, the result must also be valid UTF-8. */
static void
check_quoting(const quote_case *cases, size_t n, bool (*quote)(strbuf *, const char *, size_t),
              bool utf8_out)
{
	strbuf sb;

	strbuf_init(&sb);
	for (size_t i = 0; i < n; i++)
	{
		strbuf_reset(&sb);
		ck_assert(quote(&sb, cases[i].in, cases[i].len));
		ck_assert_msg(strcmp(strbuf_data(&sb), cases[i].want) == 0, "case %zu: got %s want %s", i,
		              strbuf_data(&sb), cases[i].want);
		if (utf8_out)
			ck_assert(strbuf_utf8_valid(strbuf_data(&sb), strbuf_len(&sb)));
	}
	strbuf_free(&sb);
}

START_TEST(strbuf_sql_literals)
{
	static const quote_case cases[] = {
	    QC("", "''"),
	    QC("plain", "'plain'"),
	    QC("it's", "'it''s'"),
	    QC("''", "''''''"),
	    QC("back\\slash", "'back\\slash'"), /* standard strings: backslash is itself */
	    QC("a\nb", "E'a\\nb'"),
	    QC("tab\there", "E'tab\\there'"),
	    QC("q'\\\r", "E'q''\\\\\\r'"),
	    QC("\x01\x7f", "E'\\x01\\x7f'"),
	    QC("\xc3\xa9\xff", "'\xc3\xa9\xff'"), /* high bytes pass through */
	};

	check_quoting(cases, NVALS(cases), strbuf_append_sql_literal, false);
}
END_TEST

START_TEST(strbuf_json_strings)
{
	static const quote_case cases[] = {
	    QC("", "\"\""),
	    QC("a\"b\\c/", "\"a\\\"b\\\\c/\""),
	    QC("\n\r\t\b\f\x01\x1f\x7f",
	       "\"\\u000a\\u000d\\u0009\\u0008\\u000c\\u0001\\u001f\\u007f\""),
	    QC("nul\0!", "\"nul\\u0000!\""),
	    /* valid UTF-8, 2 to 4 bytes, and the largest code point */
	    QC("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
	       "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\""),
	    /* invalid: stray continuation, 0xff, overlong, surrogate, > U+10FFFF, truncated */
	    QC("\x80", "\"\\u0080\""),
	    QC("\xff", "\"\\u00ff\""),
	    QC("\xc0\xaf", "\"\\u00c0\\u00af\""),
	    QC("\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\""),
	    QC("\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""),
	    QC("\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""),
	    QC("\xe2\x82", "\"\\u00e2\\u0082\""),
	    QC("a\xe2\x82z", "\"a\\u00e2\\u0082z\""),
	};

	check_quoting(cases, NVALS(cases), strbuf_append_json_string, true);
}
END_TEST

START_TEST(strbuf_escaped_text)
{
	static const quote_case cases[] = {
	    QC("plain 'q' \"dq\"", "plain 'q' \"dq\""),
	    QC("back\\slash", "back\\\\slash"),
	    QC("\n\r\t\b\f\x01\x7f", "\\n\\r\\t\\b\\f\\x01\\x7f"),
	    QC("\xc3\xa9", "\xc3\xa9"),
	    QC("\xc3", "\\xc3"),
	    QC("\xed\xa0\x80!", "\\xed\\xa0\\x80!"),
	};

	check_quoting(cases, NVALS(cases), strbuf_append_escaped, false);
}
END_TEST

START_TEST(strbuf_utf8_validation)
{
	ck_assert(strbuf_utf8_valid("", 0));
	ck_assert(strbuf_utf8_valid("abc", 3));
	ck_assert(strbuf_utf8_valid("\xef\xbf\xbf", 3));      /* U+FFFF */
	ck_assert(strbuf_utf8_valid("\xed\x9f\xbf", 3));      /* U+D7FF, just below surrogates */
	ck_assert(!strbuf_utf8_valid("\xed\xbf\xbf", 3));     /* a surrogate */
	ck_assert(!strbuf_utf8_valid("\xf0\x8f\xbf\xbf", 4)); /* overlong */
	ck_assert(!strbuf_utf8_valid("\xf5\x80\x80\x80", 4)); /* beyond U+10FFFF */
	ck_assert(!strbuf_utf8_valid("\xc2", 1));             /* truncated */
	ck_assert(!strbuf_utf8_valid("\xe2\x28\xa1", 3));     /* bad continuation */
	ck_assert_uint_eq(strbuf_utf8_seqlen((const unsigned char *)"\xf0\x9f\x98\x80", 3), 0);
}
END_TEST

/* All the cases. */
static Suite *
decodefmt_suite(void)
{
	Suite *s = suite_create("decodefmt");
	TCase *tc = tcase_create("messages");
	TCase *tv = tcase_create("values");
	TCase *tb = tcase_create("strbuf");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, begin_and_commit_text);
	tcase_add_test(tc, begin_and_commit_json);
	tcase_add_test(tc, insert_text);
	tcase_add_test(tc, insert_json);
	tcase_add_test(tc, update_text);
	tcase_add_test(tc, update_json);
	tcase_add_test(tc, delete_text_and_json);
	tcase_add_test(tc, old_key_without_key_columns_prints_the_non_null_ones);
	tcase_add_test(tc, truncate_text_and_json);
	tcase_add_test(tc, message_text_and_json);
	tcase_add_test(tc, message_with_binary_content);
	tcase_add_test(tc, relation_text_and_json);
	tcase_add_test(tc, type_messages_and_name_fallbacks);
	tcase_add_test(tc, origin_text_and_json);
	tcase_add_test(tc, stream_messages);
	tcase_add_test(tc, two_phase_messages);
	tcase_add_test(tc, relation_change_mid_stream);
	tcase_add_test(tc, unknown_relation_is_an_error);
	tcase_add_test(tc, column_count_mismatch_is_an_error);
	tcase_add_test(tc, bad_format_and_bad_type_are_errors);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tv, setup, teardown);
	tcase_add_test(tv, value_quoting_text);
	tcase_add_test(tv, value_quoting_json);
	tcase_add_test(tv, odd_names);
	tcase_add_test(tv, timestamps);
	suite_add_tcase(s, tv);

	tcase_add_test(tb, strbuf_basics);
	tcase_add_test(tb, strbuf_sql_literals);
	tcase_add_test(tb, strbuf_json_strings);
	tcase_add_test(tb, strbuf_escaped_text);
	tcase_add_test(tb, strbuf_utf8_validation);
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(decodefmt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
