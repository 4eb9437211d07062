/*
 * apply_diag.c — the diagnostic records of batched UPDATE/DELETE rows (see
 * apply_internal.h for the layout): one encoder, one decoder.
 *
 * Owns: nothing; records are appended to the caller's strbuf and read in
 * place. Never: reads past the buffer it is given, or talks to a server.
 */
#include "config.h"

#include <string.h>

#include "apply_internal.h"

#define DIAG_HEAD 10 /* commit LSN (8) and key count (2) */

bool
apply_diag_append(strbuf *diag, pgo_lsn txn_lsn, const pgo_tuple *m, const uint8_t *mask,
                  uint16_t ncols)
{
	size_t start = strbuf_len(diag);
	uint16_t nkeys = 0;
	bool ok;

	for (uint16_t i = 0; i < ncols; i++)
		if (mask[i] & MASK_WHERE)
			nkeys++;
	ok = strbuf_append(diag, &txn_lsn, 8) && strbuf_append(diag, &nkeys, 2);
	for (uint16_t i = 0; ok && i < ncols; i++)
		if (mask[i] & MASK_WHERE)
		{
			uint32_t len = m->cols[i].len;

			ok = strbuf_append(diag, &len, 4) && strbuf_append(diag, m->cols[i].data, len);
		}
	if (!ok)
		strbuf_truncate(diag, start); /* no half record */
	return ok;
}

bool
apply_diag_next(const char *buf, size_t len, size_t *off, apply_diag_row *row)
{
	size_t o = *off;
	apply_diag_row r;

	if (o > len || len - o < DIAG_HEAD)
		return false;
	memcpy(&r.txn_lsn, buf + o, 8);
	memcpy(&r.nkeys, buf + o + 8, 2);
	o += DIAG_HEAD;
	r.keys = buf + o;
	for (uint16_t k = 0; k < r.nkeys; k++)
	{
		uint32_t klen;

		if (len - o < 4)
			return false;
		memcpy(&klen, buf + o, 4);
		if (len - o - 4 < klen)
			return false;
		o += 4 + (size_t)klen;
	}
	r.keys_len = (size_t)(buf + o - r.keys);
	*row = r;
	*off = o;
	return true;
}

bool
apply_diag_key(const apply_diag_row *row, size_t *koff, const char **value, uint32_t *vlen)
{
	size_t o = *koff;
	uint32_t klen;

	if (o > row->keys_len || row->keys_len - o < 4)
		return false;
	memcpy(&klen, row->keys + o, 4);
	if (row->keys_len - o - 4 < klen)
		return false;
	*value = row->keys + o + 4;
	*vlen = klen;
	*koff = o + 4 + klen;
	return true;
}
