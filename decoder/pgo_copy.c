/*
 * pgo_copy.c — the CopyBoth framing of START_REPLICATION: parses the
 * walsender's XLogData ('w') and primary keepalive ('k') messages and builds
 * the standby status update ('r').
 *
 * Owns: nothing; XLogData's data is a view into the caller's buffer.
 * Never: allocates, does I/O, reads the clock (the caller passes "now").
 *
 * Wire layout (Int64 big-endian):
 *   'w' XLogData        Int64 data_start, Int64 wal_end, Int64 send_time, Byte[n] data
 *   'k' Keepalive       Int64 wal_end, Int64 send_time, Byte1 reply_requested
 *   'r' Status update   Int64 write, Int64 flush, Int64 apply, Int64 client_time, Byte1 reply
 */
#include "pgo_cursor.h"

/* Parse one CopyData payload from the walsender. */
pgo_err
pgo_copy_parse(const void *buf, size_t len, pgo_copymsg *out, pgo_error *err)
{
	pgo__cursor c = {.buf = buf, .len = len, .pos = 1, .err = err};
	size_t at;
	uint8_t reply;

	memset(err, 0, sizeof(*err));
	if (len == 0)
	{
		pgo__fail(&c, PGO_ERR_EMPTY, 0, "no CopyData type byte");
		return err->code;
	}
	err->msgtype = (char)c.buf[0];
	out->type = (char)c.buf[0];
	switch (c.buf[0])
	{
		case PGO_COPY_XLOGDATA:
		{
			pgo_xlogdata *x = &out->u.xlog;

			if (!pgo__get_u64(&c, &x->data_start, "data start") ||
			    !pgo__get_u64(&c, &x->wal_end, "wal end") ||
			    !pgo__get_i64(&c, &x->send_time, "send time"))
				return err->code;
			x->data = c.buf + c.pos;
			x->len = pgo__left(&c);
			return PGO_ERR_OK;
		}
		case PGO_COPY_KEEPALIVE:
		{
			pgo_keepalive *k = &out->u.keepalive;

			if (!pgo__get_u64(&c, &k->wal_end, "wal end") ||
			    !pgo__get_i64(&c, &k->send_time, "send time"))
				return err->code;
			at = c.pos;
			if (!pgo__get_u8(&c, &reply, "reply requested"))
				return err->code;
			if (reply > 1)
			{
				pgo__fail(&c, PGO_ERR_BAD_FLAGS, at, "reply requested 0x%02x, expected 0 or 1",
				          reply);
				return err->code;
			}
			k->reply_requested = reply == 1;
			if (!pgo__end(&c))
				return err->code;
			return PGO_ERR_OK;
		}
		default:
			pgo__fail(&c, PGO_ERR_UNKNOWN_COPY_MESSAGE, 0, "type byte 0x%02x, expected 'w' or 'k'",
			          c.buf[0]);
			return err->code;
	}
}

/* Store v big-endian at p. */
static void
pgo__put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/* Build a standby status update. */
size_t
pgo_copy_build_status(uint8_t out[PGO_STATUS_UPDATE_SIZE], pgo_lsn write, pgo_lsn flush,
                      pgo_lsn apply, pgo_timestamp now, bool reply_requested)
{
	out[0] = PGO_COPY_STATUS_UPDATE;
	pgo__put_u64(out + 1, write);
	pgo__put_u64(out + 9, flush);
	pgo__put_u64(out + 17, apply);
	pgo__put_u64(out + 25, (uint64_t)now);
	out[33] = reply_requested ? 1 : 0;
	return PGO_STATUS_UPDATE_SIZE;
}
