/*
 * apply_batch.c — rows collected into batches before they are sent: one
 * batch per relation, kind ('I', 'U', 'D') and column set, sent as few
 * multi-row statements (256, 128, ... 1 rows each). An UPDATE batch keeps
 * one row per key: a later update of the same key with the same columns
 * replaces the earlier row's values (found through a hash of its key).
 *
 * Owns: the batches' value pointer arrays and masks (freed by apply_close).
 * Never: copies a value (rows point into the caller's ring records until
 * they are sent), or sends a relation's changes out of order.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"

bool
apply_has_pending(const applier *a)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
		if (a->batches[i].rel)
			return true;
	return false;
}

/* Send rows [first, first + n) of batch b with one statement. */
static bool
apply_send_rows(applier *a, apply_batch *b, apply_rel *ar, int first, int n)
{
	char kind = b->kind;
	relcache_entry *e = b->rel;
	apply_stmt *s;
	apply_pending d;
	size_t bytes = 0, width = b->width;
	const char *const *values = b->values + (size_t)first * width;

	if (kind == 'I')
		s = apply_insert_stmt(a, ar, n);
	else if (n == 1)
		s = apply_row_stmt(a, e, ar, kind, b->mask);
	else
		s = apply_multi_stmt(a, ar, kind, b->mask, n);
	if (s == NULL)
		return false;
	for (size_t i = 0; i < (size_t)n * width; i++)
		if (values[i])
			bytes += strlen(values[i]) + 4;
	apply_describe(a, &d,
	               kind == 'I'   ? AP_INSERT
	               : kind == 'U' ? AP_UPDATE
	                             : AP_DELETE,
	               e, n, kind == 'I' ? NULL : strbuf_data(&b->keys));
	if (kind != 'I' && n > 1)
	{
		/* this statement's rows of the diagnostic records */
		const char *diag = strbuf_data(&b->diag);
		size_t off = 0, from = 0, to;
		apply_diag_row row;

		for (int r = 0; r < first + n; r++)
		{
			if (r == first)
				from = off;
			if (!apply_diag_next(diag, strbuf_len(&b->diag), &off, &row))
				break; /* every batched row has its record */
		}
		to = off;
		d.diag = malloc(to - from); /* only a message is lost without it */
		if (d.diag)
		{
			memcpy(d.diag, diag + from, to - from);
			d.diag_len = to - from;
		}
	}
	return apply_pipe_send_prepared(a, &d, s->name, (int)((size_t)n * width), values, bytes);
}

/* Send one batch and free its slot. */
static bool
apply_send_batch(applier *a, apply_batch *b)
{
	apply_rel *ar;
	int done = 0;

	if (b->rel == NULL)
		return true;
	ar = b->rel->user;
	a->sending = b;
	/* as few statements as the binary digits of the row count: 256, 128, ... 1 */
	for (int size = APPLY_MAX_BATCH_ROWS; size >= 1; size /= 2)
		while (b->rows - done >= size)
		{
			if (!apply_send_rows(a, b, ar, done, size))
			{
				a->sending = NULL;
				return false;
			}
			done += size;
		}
	a->sending = NULL;
	b->rel = NULL;
	b->change_lsn = 0;
	apply_batch_clear(b);
	return true;
}

void
apply_batch_clear(apply_batch *b)
{
	b->rows = 0;
	strbuf_reset(&b->keys);
	strbuf_reset(&b->diag);
	memset(b->hashes, 0, sizeof(b->hashes));
}

/* Send every open batch, oldest first. */
bool
apply_send_pending(applier *a)
{
	if (a->copy_rel && !apply_copy_end(a))
		return false;
	for (;;)
	{
		apply_batch *oldest = NULL;

		for (int i = 0; i < APPLY_MAX_BATCHES; i++)
			if (a->batches[i].rel && (oldest == NULL || a->batches[i].seq < oldest->seq))
				oldest = &a->batches[i];
		if (oldest == NULL)
			return !a->failed;
		if (!apply_send_batch(a, oldest))
			return false;
	}
}

/* A hash of the row's key values, to keep one row per key in an UPDATE batch. */
uint64_t
apply_batch_key_hash(const pgo_tuple *m, const uint8_t *mask, uint16_t ncols)
{
	uint64_t h = 1469598103934665603ULL;

	for (uint16_t i = 0; i < ncols; i++)
		if (mask[i] & MASK_WHERE)
		{
			for (uint32_t j = 0; j < m->cols[i].len; j++)
				h = (h ^ (uint8_t)m->cols[i].data[j]) * 1099511628211ULL;
			h = (h ^ 0xff) * 1099511628211ULL;
		}
	return h ? h : 1;
}

/* Do the key values of row r of b equal m's (both NUL-terminated in place)? */
bool
apply_batch_same_key(const apply_batch *b, int r, const pgo_tuple *m, uint16_t ncols)
{
	const char *const *row = b->values + (size_t)r * b->width;
	size_t k = 0;

	for (uint16_t i = 0; i < ncols; i++)
		if (b->mask[i] & MASK_SET)
			k++;
	for (uint16_t i = 0; i < ncols; i++)
		if (b->mask[i] & MASK_WHERE)
		{
			const char *v = row[k++];

			if (v == NULL || m->cols[i].kind != PGO_COL_TEXT || strlen(v) != m->cols[i].len ||
			    memcmp(v, m->cols[i].data, m->cols[i].len) != 0)
				return false;
		}
	return true;
}

/*
 * Find room for a row of kind for e: *row_out points at its width value
 * slots. For an UPDATE whose key is already in the batch, *replaced is set
 * and *row_out is that row: the newer values replace the older ones. False
 * on failure.
 */
bool
apply_batch_row(applier *a, relcache_entry *e, apply_rel *ar, char kind, const uint8_t *mask,
                size_t width, const pgo_tuple *key, const char **row_out[], bool *replaced)
{
	size_t need = (size_t)APPLY_MAX_BATCH_ROWS * (width ? width : 1);
	const size_t nslots = sizeof(((apply_batch *)0)->hashes) / sizeof(uint64_t);
	apply_batch *b = NULL, *free_slot = NULL;
	uint64_t keyhash = 0;
	size_t slot = 0;

	*replaced = false;
	if (a->copy_rel && !apply_copy_end(a))
		return false;
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		if (a->batches[i].rel == e)
			b = &a->batches[i];
		else if (a->batches[i].rel == NULL && free_slot == NULL)
			free_slot = &a->batches[i];
		else if (a->batches[i].rel && !a->any_order && !apply_send_batch(a, &a->batches[i]))
			return false; /* triggers may look at other tables: keep the source's order */
	}
	/* one relation's changes stay in order: a different kind or column set sends the batch */
	if (b && (b->kind != kind || (mask && memcmp(b->mask, mask, ar->ncols) != 0) ||
	          (size_t)(b->rows + 1) * width > 65535))
	{
		if (!apply_send_batch(a, b))
			return false;
		free_slot = b;
		b = NULL;
	}
	if (b && key)
	{
		keyhash = apply_batch_key_hash(key, mask, ar->ncols);
		slot = keyhash % nslots;
		while (b->hashes[slot])
		{
			if (b->hashes[slot] == keyhash &&
			    apply_batch_same_key(b, b->hash_row[slot], key, ar->ncols))
			{
				*replaced = true;
				*row_out = b->values + (size_t)b->hash_row[slot] * width;
				return true;
			}
			slot = (slot + 1) % nslots;
		}
	}
	if (b == NULL)
	{
		if (free_slot == NULL)
		{
			if (!apply_send_pending(a))
				return false;
			free_slot = &a->batches[0];
		}
		b = free_slot;
		if (need > b->cap)
		{
			free(b->values);
			b->values = malloc(need * sizeof(*b->values));
			b->cap = b->values ? need : 0;
			if (b->values == NULL)
				return apply_fail(a, "out of memory", NULL);
		}
		if (mask && ar->ncols > b->mask_cap)
		{
			free(b->mask);
			b->mask = malloc(ar->ncols);
			b->mask_cap = b->mask ? ar->ncols : 0;
			if (b->mask == NULL)
				return apply_fail(a, "out of memory", NULL);
		}
		b->rel = e;
		b->kind = kind;
		b->width = width;
		b->rows = 0;
		b->change_lsn = a->change_lsn;
		b->seq = ++a->batch_seq;
		b->first_change = a->change_seq;
		if (mask)
			memcpy(b->mask, mask, ar->ncols);
		if (key)
		{
			keyhash = apply_batch_key_hash(key, mask, ar->ncols);
			slot = keyhash % nslots;
			while (b->hashes[slot])
				slot = (slot + 1) % nslots;
		}
	}
	if (key)
	{
		b->hashes[slot] = keyhash;
		b->hash_row[slot] = (int16_t)b->rows;
	}
	*row_out = b->values + (size_t)b->rows * width;
	b->rows++;
	return true;
}

/* After a row was added to e's batch: send it when full. */
bool
apply_batch_done(applier *a, relcache_entry *e)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
	{
		apply_batch *b = &a->batches[i];

		if (b->rel == e &&
		    (b->rows == APPLY_MAX_BATCH_ROWS || (size_t)(b->rows + 1) * b->width > 65535))
			return apply_send_batch(a, b);
	}
	return true;
}

/* The open batch of e (NULL if none). */
apply_batch *
apply_batch_of(applier *a, const relcache_entry *e)
{
	for (int i = 0; i < APPLY_MAX_BATCHES; i++)
		if (a->batches[i].rel == e)
			return &a->batches[i];
	return NULL;
}
