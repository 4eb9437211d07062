/*
 * fuzz_pgoutput.c — libFuzzer target for libpgoutput.
 *
 * Input layout: byte 0 chooses the protocol version (bits 0-1, +1), whether
 * a relation column-count callback is installed (bit 2) and the column limit
 * (bit 3: 4 columns, else 1664). The rest is a sequence of chunks, each an
 * Int16 big-endian length and that many bytes, decoded in order with one
 * decoder (so stream start/stop state is explored); each chunk is also parsed
 * as a CopyData message, and an XLogData payload decoded as a message.
 *
 * Checks beyond "no crash": every view of a decoded message lies inside its
 * chunk, an error's offset lies inside its chunk, and a failed message leaves
 * the stream state as it was.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

#define FUZZ_MAX_COLUMNS 1664

static pgo_value old_cols[FUZZ_MAX_COLUMNS];
static pgo_value new_cols[FUZZ_MAX_COLUMNS];
static pgo_relcol rel_cols[FUZZ_MAX_COLUMNS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A column-count callback that depends on the relation id. */
static int
fuzz_natts(void *arg, pgo_oid relid)
{
	(void)arg;
	return relid % 3 == 0 ? -1 : (int)(relid % 8);
}

/* Abort (a fuzzer finding) unless [p, p+n) lies within [buf, buf+len). */
static void
fuzz_check_view(const void *p, size_t n, const uint8_t *buf, size_t len)
{
	const uint8_t *q = p;

	if (p == NULL)
	{
		if (n != 0)
			abort();
		return;
	}
	if (q < buf || q > buf + len || n > (size_t)(buf + len - q))
		abort();
}

/* Check a string view: inside the buffer and NUL-terminated at len. */
static void
fuzz_check_str(const pgo_str *s, const uint8_t *buf, size_t len)
{
	fuzz_check_view(s->ptr, s->len + 1, buf, len);
	if (s->ptr[s->len] != '\0')
		abort();
}

/* Check a tuple's views. */
static void
fuzz_check_tuple(const pgo_tuple *t, const uint8_t *buf, size_t len)
{
	for (uint16_t i = 0; i < t->ncols; i++)
	{
		const pgo_value *v = &t->cols[i];

		if (v->kind != 'n' && v->kind != 'u' && v->kind != 't' && v->kind != 'b')
			abort();
		fuzz_check_view(v->data, v->len, buf, len);
	}
}

/* Check every view of a decoded message. */
static void
fuzz_check_message(const pgo_message *m, const uint8_t *buf, size_t len)
{
	switch (m->type)
	{
		case PGO_MSG_ORIGIN:
			fuzz_check_str(&m->u.origin.name, buf, len);
			break;
		case PGO_MSG_RELATION:
			fuzz_check_str(&m->u.relation.nspname, buf, len);
			fuzz_check_str(&m->u.relation.relname, buf, len);
			for (uint16_t i = 0; i < m->u.relation.ncols; i++)
				fuzz_check_str(&m->u.relation.cols[i].name, buf, len);
			break;
		case PGO_MSG_TYPE:
			fuzz_check_str(&m->u.type.nspname, buf, len);
			fuzz_check_str(&m->u.type.typname, buf, len);
			break;
		case PGO_MSG_INSERT:
			fuzz_check_tuple(&m->u.insert.newtup, buf, len);
			break;
		case PGO_MSG_UPDATE:
			fuzz_check_tuple(&m->u.update.oldtup, buf, len);
			fuzz_check_tuple(&m->u.update.newtup, buf, len);
			break;
		case PGO_MSG_DELETE:
			fuzz_check_tuple(&m->u.del.oldtup, buf, len);
			break;
		case PGO_MSG_TRUNCATE:
			fuzz_check_view(m->u.truncate.relids_raw, (size_t)m->u.truncate.nrelids * 4, buf, len);
			for (uint32_t i = 0; i < m->u.truncate.nrelids; i++)
				(void)pgo_truncate_relid(&m->u.truncate, i);
			break;
		case PGO_MSG_MESSAGE:
			fuzz_check_str(&m->u.message.prefix, buf, len);
			fuzz_check_view(m->u.message.content, m->u.message.content_len, buf, len);
			break;
		case PGO_MSG_BEGIN_PREPARE:
		case PGO_MSG_PREPARE:
		case PGO_MSG_STREAM_PREPARE:
			fuzz_check_str(&m->u.prepare.gid, buf, len);
			break;
		case PGO_MSG_COMMIT_PREPARED:
			fuzz_check_str(&m->u.commit_prepared.gid, buf, len);
			break;
		case PGO_MSG_ROLLBACK_PREPARED:
			fuzz_check_str(&m->u.rollback_prepared.gid, buf, len);
			break;
		default:
			break;
	}
}

/* Decode one chunk with dec and check the result. */
static void
fuzz_decode(pgo_decoder *dec, const uint8_t *buf, size_t len)
{
	pgo_message msg;
	bool was_in_stream = dec->in_stream;
	char line[256];

	if (pgo_decode(dec, buf, len, &msg) == PGO_ERR_OK)
	{
		fuzz_check_message(&msg, buf, len);
		return;
	}
	if (dec->in_stream != was_in_stream || dec->error.offset > len ||
	    dec->error.code == PGO_ERR_OK || dec->error.code >= PGO_ERR__COUNT)
		abort();
	if (pgo_error_format(&dec->error, line, sizeof(line)) <= 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pgo_config cfg = {0};
	pgo_decoder dec;
	size_t pos = 1;

	if (size < 1)
		return 0;
	cfg.proto_version = (data[0] & 3) + 1;
	cfg.natts = (data[0] & 4) ? fuzz_natts : NULL;
	cfg.max_columns = (data[0] & 8) ? 4 : FUZZ_MAX_COLUMNS;
	cfg.old_cols = old_cols;
	cfg.new_cols = new_cols;
	cfg.rel_cols = rel_cols;
	if (pgo_decoder_init(&dec, &cfg) != PGO_ERR_OK)
		abort();

	while (pos + 2 <= size)
	{
		size_t n = (size_t)data[pos] << 8 | data[pos + 1];
		uint8_t *chunk;
		pgo_copymsg cm;
		pgo_error err;

		pos += 2;
		if (n > size - pos)
			n = size - pos;
		/* an exact-size heap copy, so ASan sees any read past the end */
		chunk = malloc(n ? n : 1);
		if (chunk == NULL)
			return 0;
		memcpy(chunk, data + pos, n);
		pos += n;

		fuzz_decode(&dec, chunk, n);
		if (pgo_copy_parse(chunk, n, &cm, &err) == PGO_ERR_OK)
		{
			if (cm.type == PGO_COPY_XLOGDATA)
			{
				fuzz_check_view(cm.u.xlog.data, cm.u.xlog.len, chunk, n);
				fuzz_decode(&dec, cm.u.xlog.data, cm.u.xlog.len);
			}
		}
		else if (err.offset > n)
			abort();
		free(chunk);
	}
	return 0;
}
