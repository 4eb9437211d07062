/*
 * apply_copy.c — a long run of inserts into one table loaded with COPY (text
 * format), which is faster than multi-row INSERTs. COPY runs outside
 * pipeline mode: the batches before it are sent first, and the pipeline is
 * entered again when it ends (at the next change that is not its insert).
 *
 * Owns: the COPY buffer (a->copy_buf). Never: holds a row's memory past the
 * call that encodes it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"

#define APPLY_COPY_CHUNK  (256 * 1024)
#define MIG_COPY_MAX_COLS 1664 /* columns a COPY row is converted with */

/* Hand the buffered COPY rows to libpq (blocking: we are outside pipeline mode). */
static bool
apply_copy_flush(applier *a)
{
	if (strbuf_len(&a->copy_buf) == 0)
		return true;
	if (PQputCopyData(a->conn, strbuf_data(&a->copy_buf), (int)strbuf_len(&a->copy_buf)) != 1)
		return apply_fail_conn(a, "could not send COPY data to the target");
	strbuf_reset(&a->copy_buf);
	return true;
}

/* One row in COPY's text format: tabs between columns, \N for NULL, escapes. */
bool
apply_copy_encode(strbuf *b, const pgo_tuple *t)
{
	for (uint16_t i = 0; i < t->ncols; i++)
	{
		const pgo_value *v = &t->cols[i];

		if (i > 0 && !strbuf_append_char(b, '\t'))
			return false;
		if (v->kind != PGO_COL_TEXT)
		{
			if (!strbuf_append(b, "\\N", 2))
				return false;
			continue;
		}
		if (!strbuf_reserve(b, (size_t)v->len * 2))
			return false;
		for (uint32_t j = 0, run = 0; j <= v->len; j++)
		{
			char c = j < v->len ? v->data[j] : '\0';
			const char *esc = c == '\\'   ? "\\\\"
			                  : c == '\n' ? "\\n"
			                  : c == '\r' ? "\\r"
			                  : c == '\t' ? "\\t"
			                              : NULL;

			if (esc || j == v->len)
			{
				/* plain bytes since the last escape, then the escape */
				if (!strbuf_append(b, v->data + run, j - run) || (esc && !strbuf_append(b, esc, 2)))
					return false;
				run = j + 1;
			}
		}
	}
	return strbuf_append_char(b, '\n');
}

bool
apply_copy_row(applier *a, const pgo_tuple *t)
{
	if (!apply_copy_encode(&a->copy_buf, t))
		return apply_fail(a, "out of memory", NULL);
	a->copy_rows++;
	a->stats.inserts++;
	return strbuf_len(&a->copy_buf) < APPLY_COPY_CHUNK || apply_copy_flush(a);
}

/* Leave pipeline mode and start COPY into e. */
static bool
apply_copy_begin(applier *a, relcache_entry *e, apply_rel *ar)
{
	PGresult *res;

	if (!apply_pipe_leave(a))
		return false;
	strbuf_reset(&a->sql);
	if (!apply_sql_copy(&a->sql, ar))
		return apply_fail(a, "out of memory", NULL);
	res = PQexec(a->conn, strbuf_data(&a->sql));
	if (PQresultStatus(res) != PGRES_COPY_IN)
	{
		apply_fail(a, "the target refused COPY", PQresultErrorMessage(res));
		PQclear(res);
		return false;
	}
	PQclear(res);
	a->copy_rel = e;
	a->copy_rows = 0;
	a->copy_lsn = a->change_lsn;
	a->copy_txn_lsn = a->txn_lsn;
	a->stats.statements++;
	a->stats.copies++;
	return true;
}

/* End the COPY, check it, and go back to pipeline mode. */
bool
apply_copy_end(applier *a)
{
	PGresult *res;
	bool ok = true;

	if (a->copy_rel == NULL)
		return true;
	if (!apply_copy_flush(a) || PQputCopyEnd(a->conn, NULL) != 1)
		ok = apply_fail_conn(a, "could not end COPY on the target");
	while ((res = PQgetResult(a->conn)) != NULL)
	{
		if (ok && PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			apply_pending p = {.what = AP_INSERT,
			                   .rows = (int)a->copy_rows,
			                   .relid = a->copy_rel->relid,
			                   .lsn = a->copy_lsn,
			                   .txn_lsn = a->copy_txn_lsn};

			apply_fail_answer(a, &p, res);
			ok = false;
		}
		PQclear(res);
	}
	a->copy_rel = NULL;
	strbuf_reset(&a->copy_buf);
	return ok && apply_pipe_enter(a);
}

/* Turn e's full INSERT batch into the first rows of a COPY. */
bool
apply_copy_take_batch(applier *a, relcache_entry *e, apply_rel *ar, apply_batch *b)
{
	apply_batch keep = *b;
	pgo_tuple tup;
	bool ok = true;

	b->rel = NULL; /* not sent as INSERT */
	if (!apply_send_pending(a) || !apply_copy_begin(a, e, ar))
		return false;
	a->copy_lsn = keep.change_lsn;
	/* the batch's rows, already NUL-terminated in the ring */
	for (int r = 0; ok && r < keep.rows; r++)
	{
		pgo_value cols[MIG_COPY_MAX_COLS];
		uint16_t n = ar->ncols;

		if (n > MIG_COPY_MAX_COLS)
			return apply_fail(a, "too many columns for COPY", NULL);
		for (uint16_t i = 0; i < n; i++)
		{
			const char *v = keep.values[(size_t)r * keep.width + i];

			cols[i].kind = v ? PGO_COL_TEXT : PGO_COL_NULL;
			cols[i].data = v;
			cols[i].len = v ? (uint32_t)strlen(v) : 0;
		}
		tup.ncols = n;
		tup.cols = cols;
		ok = apply_copy_row(a, &tup);
	}
	apply_batch_clear(b);
	return ok;
}
