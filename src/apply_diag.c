/*
 * apply_diag.c — what names a row in the applier's messages: the diagnostic
 * records of batched UPDATE/DELETE rows (see apply_internal.h for the
 * layout: one encoder, one decoder), and the key text of a row or a batch.
 *
 * Owns: nothing; records are appended to the caller's strbuf and read in
 * place. Never: reads past the buffer it is given, or talks to a server.
 */
#include "config.h"

#include <stdio.h>
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

void
apply_diag_key_text(const relcache_entry *e, const pgo_tuple *t, const uint8_t *mask, char *buf,
                    size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (uint16_t i = 0; i < t->ncols && len + 8 < size; i++)
	{
		const pgo_value *v = &t->cols[i];
		int w;

		if (!(mask[i] & MASK_WHERE))
			continue;
		if (v->kind == PGO_COL_TEXT)
			w = snprintf(buf + len, size - len, "%s%s=%.*s", len ? ", " : "with ", e->cols[i].name,
			             (int)(v->len > 40 ? 40 : v->len), v->data);
		else
			w = snprintf(buf + len, size - len, "%s%s=NULL", len ? ", " : "with ", e->cols[i].name);
		if (w < 0)
			break;
		len += (size_t)w < size - len ? (size_t)w : size - len - 1;
	}
}

void
apply_diag_keys_add(strbuf *keys, const relcache_entry *e, const pgo_tuple *m, const uint8_t *mask)
{
	char key[APPLY_KEY_TEXT];
	const char *text = key;

	if (strbuf_len(keys) >= APPLY_KEY_TEXT - 1)
		return;
	apply_diag_key_text(e, m, mask, key, sizeof(key));
	if (strbuf_len(keys) > 0)
	{
		/* "with id=3" then "; id=7" */
		if (strncmp(key, "with ", 5) == 0)
			text = key + 5;
		if (!strbuf_append_cstr(keys, "; "))
			return;
	}
	if (!strbuf_append_cstr(keys, text))
		strbuf_reset(keys); /* only a message is lost */
}
