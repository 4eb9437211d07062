/*
 * apply.c — the apply engine (see apply.h): decoded changes dispatched to
 * their handlers (apply_message -> apply_insert / apply_update / ...), and
 * source transactions grouped into target transactions.
 *
 * The target connection runs in libpq pipeline mode, nonblocking. One target
 * transaction (a "group") carries one or more source transactions:
 *
 *   BEGIN; <changes>; <progress>; COMMIT; Sync
 *
 * and groups follow each other without waiting. <progress> moves this slot's
 * row of _pg_dbmigrator.apply_progress from the LSN the previous group wrote
 * to this group's last end LSN, and fails (rolling the group back) if the row
 * does not hold the previous value: so a group never commits after one that
 * failed, even when the failure was at COMMIT itself. Every statement sent is
 * queued with its description (apply_pending) and its answer checked in
 * order; the end LSN of a group becomes committed_lsn only when its COMMIT
 * answered OK.
 *
 * Owns: the source transaction and group state of the applier, and the
 * first failure (a->errmsg). Never: copies a value (they are bound from the
 * ring), or reports a position it has not seen committed.
 *
 * Its parts are listed in apply_internal.h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "apply_internal.h"
#include "cli.h"
#include "ddl.h"
#include "events.h"

/* ---------------------------------------------------------------- errors */

bool
apply_fail(applier *a, const char *fmt, const char *detail)
{
	if (!a->failed)
	{
		a->failed = true;
		snprintf(a->errmsg, sizeof(a->errmsg), "%s%s%s", fmt, detail ? ": " : "",
		         detail ? detail : "");
		/* libpq messages end with a newline */
		for (size_t n = strlen(a->errmsg); n > 0 && a->errmsg[n - 1] == '\n'; n--)
			a->errmsg[n - 1] = '\0';
	}
	return false;
}

bool
apply_fail_conn(applier *a, const char *what)
{
	return apply_fail(a, what, PQerrorMessage(a->conn));
}

/* ------------------------------------------------------------- statements */

void
apply_describe(applier *a, apply_pending *d, char what, const relcache_entry *rel, int rows,
               const char *key)
{
	memset(d, 0, sizeof(*d));
	d->what = what;
	d->rows = rows;
	d->relid = rel ? rel->relid : 0;
	d->lsn = what == AP_COMMIT || what == AP_ADVANCE ? a->group_end_lsn
	         : a->sending && a->sending->change_lsn  ? a->sending->change_lsn
	                                                 : a->change_lsn;
	d->txn_lsn = a->txn_lsn;
	if (key)
		snprintf(d->key, sizeof(d->key), "%s", key);
}

/* Send a statement of text, described as what (for rel). */
static bool
apply_send_sql(applier *a, char what, const char *sql, const relcache_entry *rel)
{
	apply_pending d;

	apply_describe(a, &d, what, rel, 0, NULL);
	return apply_pipe_send_sql(a, &d, sql);
}

/* Execute a prepared statement, described as what (rows of rel, the first keys key). */
static bool
apply_send_prepared(applier *a, char what, const char *name, int nparams, const char *const *values,
                    const relcache_entry *rel, int rows, const char *key, size_t bytes)
{
	apply_pending d;

	apply_describe(a, &d, what, rel, rows, key);
	return apply_pipe_send_prepared(a, &d, name, nparams, values, bytes);
}

/* ------------------------------------------------------------------ values */

/* NUL-terminate a text value in place and return it (NULL for SQL NULL). */
static const char *
apply_value(const pgo_value *v)
{
	if (v->kind != PGO_COL_TEXT)
		return NULL;
	((char *)v->data)[v->len] = '\0';
	return v->data;
}

/* Check a tuple carries only what we can bind (text, NULL, and 'u' where allowed). */
static bool
apply_check_tuple(applier *a, const relcache_entry *e, const pgo_tuple *t, bool allow_unchanged)
{
	char msg[512];

	if (t->ncols != e->ncols)
	{
		snprintf(msg, sizeof(msg),
		         "a change for %s.%s has %u columns but its Relation message announced %u",
		         e->nspname, e->relname, t->ncols, e->ncols);
		return apply_fail(a, msg, NULL);
	}
	for (uint16_t i = 0; i < t->ncols; i++)
	{
		if (t->cols[i].kind == PGO_COL_BINARY)
			return apply_fail(a,
			                  "the source sent a binary column value, but the apply asks for "
			                  "text (binary off)",
			                  NULL);
		if (t->cols[i].kind == PGO_COL_UNCHANGED && !allow_unchanged)
		{
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s carries an unchanged TOASTed value in column \"%s\", "
			         "which is needed to find the row",
			         e->nspname, e->relname, e->cols[i].name);
			return apply_fail(a, msg, NULL);
		}
	}
	return true;
}

/* Room for n parameters in a->params. */
static bool
apply_params_room(applier *a, size_t n)
{
	if (n <= a->params_cap)
		return true;
	free(a->params);
	a->params = malloc(n * sizeof(*a->params));
	a->params_cap = a->params ? n : 0;
	return a->params ? true : apply_fail(a, "out of memory", NULL);
}

/* ---------------------------------------------------------------- changes */

/* Open the target transaction (group), if none is open. */
static bool
apply_open_group(applier *a)
{
	if (a->group_open)
		return true;
	a->group_open = true;
	return apply_send_prepared(a, AP_BEGIN, APPLY_BEGIN_STMT, 0, NULL, NULL, 0, NULL, 0);
}

/* An INSERT: into its relation's batch, or the COPY in progress. */
static bool
apply_insert(applier *a, relcache_entry *e, const pgo_tuple *t)
{
	apply_rel *ar = apply_map(a, e);
	const char **row;
	bool replaced;

	if (ar == NULL || !apply_check_tuple(a, e, t, false))
		return false;
	if (a->copy_rel == e)
		return apply_copy_row(a, t);
	if (!apply_batch_row(a, e, ar, 'I', NULL, ar->ncols, NULL, &row, &replaced))
		return false;
	for (uint16_t i = 0; i < ar->ncols; i++)
		row[i] = apply_value(&t->cols[i]);
	{
		apply_batch *b = apply_batch_of(a, e);

		/*
		 * A full batch of inserts into one table, nothing else in between: a
		 * long run is likely, and COPY loads it faster than INSERT (the other
		 * batches go first: COPY leaves pipeline mode, waiting for every
		 * answer). Rows gathered among other tables' changes (one insert per
		 * transaction into a history table) go as a multi-row INSERT: their
		 * COPY would end at the next change, every few hundred transactions
		 * a wait for the target.
		 */
		if (b && b->rows == APPLY_MAX_BATCH_ROWS && !a->opts.no_copy && ar->ncols > 0 &&
		    a->change_seq - b->first_change + 1 == (uint64_t)b->rows)
			return apply_copy_take_batch(a, e, ar, b);
	}
	return apply_batch_done(a, e);
}

/*
 * The column mask of a change (see apply_sql_mask) and the tuple its key
 * values come from; NULL, with the reason in a->errmsg, when it has none.
 */
static const pgo_tuple *
apply_match_columns(applier *a, const relcache_entry *e, char kind, char old_kind,
                    const pgo_tuple *oldtup, const pgo_tuple *newtup, uint8_t *mask)
{
	const pgo_tuple *m = NULL;
	uint16_t bad = 0;
	char msg[512];

	switch (apply_sql_mask(e, kind, old_kind, oldtup, newtup, mask, &m, &bad))
	{
		case APPLY_MASK_OK:
			return m;
		case APPLY_MASK_NO_OLD_ROW:
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s (REPLICA IDENTITY FULL) came without the old row",
			         e->nspname, e->relname);
			break;
		case APPLY_MASK_NO_KEY:
			snprintf(msg, sizeof(msg),
			         "%s.%s has no replica identity key: give it a primary key, or ALTER TABLE ... "
			         "REPLICA IDENTITY FULL / USING INDEX on the source",
			         e->nspname, e->relname);
			break;
		case APPLY_MASK_UNCHANGED_KEY:
			snprintf(msg, sizeof(msg),
			         "a change for %s.%s carries an unchanged TOASTed key column \"%s\"",
			         e->nspname, e->relname, e->cols[bad].name);
			break;
		default:
			snprintf(msg, sizeof(msg), "internal error: no column mask for %s.%s", e->nspname,
			         e->relname);
			break;
	}
	apply_fail(a, msg, NULL);
	return NULL;
}

/* UPDATE and DELETE: match by key (batched) or by the whole old row (one at a time). */
static bool
apply_change_row(applier *a, relcache_entry *e, char kind, char old_kind, const pgo_tuple *oldtup,
                 const pgo_tuple *newtup)
{
	apply_rel *ar = apply_map(a, e);
	uint8_t stackmask[256];
	uint8_t *mask;
	const pgo_tuple *m;
	const char **row;
	size_t width = 0, n = 0;
	bool ok = false, replaced;

	if (ar == NULL || (newtup && !apply_check_tuple(a, e, newtup, true)) ||
	    (old_kind && !apply_check_tuple(a, e, oldtup, true)))
		return false;
	if (kind == 'U' && ar->ncols == 0)
	{
		/* a row without columns cannot change */
		a->stats.updates++;
		return true;
	}
	mask = ar->ncols <= sizeof(stackmask) ? stackmask : calloc(ar->ncols, 1);
	if (mask == NULL)
		return apply_fail(a, "out of memory", NULL);
	m = apply_match_columns(a, e, kind, old_kind, oldtup, newtup, mask);
	if (m == NULL)
		goto done;
	for (uint16_t i = 0; i < ar->ncols; i++)
		width += (mask[i] & MASK_SET ? 1 : 0) + (mask[i] & MASK_WHERE ? 1 : 0);
	if (e->replident == PGO_REPLIDENT_FULL ||
	    (kind == 'U' && (old_kind == 'K' || ar->order_updates)))
	{
		/*
		 * One at a time: a row among duplicates, found by a subquery; an
		 * UPDATE whose key changes (batched, one row's new key could be
		 * another's old); or an UPDATE of a table with another unique
		 * index (apply_rel.order_updates). A DELETE by key always carries
		 * the old key ('K') and is batched: its keys are distinct until a
		 * row comes back, and an INSERT or UPDATE of the relation sends
		 * the batch first.
		 */
		char key[APPLY_KEY_TEXT];
		apply_stmt *s;

		if (!apply_send_pending(a) || !apply_params_room(a, width))
			goto done;
		s = apply_row_stmt(a, e, ar, kind, mask);
		if (s == NULL)
			goto done;
		apply_diag_key_text(e, m, mask, key, sizeof(key));
		row = a->params;
		for (int pass = 0; pass < 2; pass++)
			for (uint16_t i = 0; i < ar->ncols; i++)
				if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
					row[n++] = apply_value(pass == 0 ? &newtup->cols[i] : &m->cols[i]);
		ok = apply_send_prepared(a, kind == 'U' ? AP_UPDATE : AP_DELETE, s->name, (int)n, a->params,
		                         e, 1, key, 0);
		if (kind == 'U')
			a->stats.updates++;
		else
			a->stats.deletes++;
		goto done;
	}
	/* the key values are compared in place: terminate them first */
	for (uint16_t i = 0; i < ar->ncols; i++)
		if (mask[i] & MASK_WHERE)
			(void)apply_value(&m->cols[i]);
	if (!apply_batch_row(a, e, ar, kind, mask, width, kind == 'U' ? m : NULL, &row, &replaced))
		goto done;
	if (!replaced)
	{
		apply_batch *b = apply_batch_of(a, e);

		apply_diag_keys_add(&b->keys, e, m, mask);
		if (!apply_diag_append(&b->diag, a->txn_lsn, m, mask, ar->ncols))
		{
			apply_fail(a, "out of memory", NULL);
			goto done;
		}
	}
	/* a replaced row keeps its key; its new values supersede the old ones */
	for (int pass = 0; pass < 2; pass++)
		for (uint16_t i = 0; i < ar->ncols; i++)
			if (mask[i] & (pass == 0 ? MASK_SET : MASK_WHERE))
				row[n++] = apply_value(pass == 0 ? &newtup->cols[i] : &m->cols[i]);
	if (kind == 'U')
		a->stats.updates++;
	else
		a->stats.deletes++;
	ok = apply_batch_done(a, e);
done:
	if (mask != stackmask)
		free(mask);
	return ok;
}

/* An UPDATE (see apply_change_row). */
static bool
apply_update(applier *a, relcache_entry *e, const pgo_update *u)
{
	return apply_change_row(a, e, 'U', u->old_kind, &u->oldtup, &u->newtup);
}

/* A DELETE (see apply_change_row). */
static bool
apply_delete(applier *a, relcache_entry *e, const pgo_delete *d)
{
	return apply_change_row(a, e, 'D', d->old_kind, &d->oldtup, NULL);
}

/* A TRUNCATE of one or more relations, as one statement. */
static bool
apply_truncate(applier *a, const pgo_truncate *t)
{
	relcache_entry *first = NULL;
	const apply_rel **rels;
	bool ok;

	if (!apply_send_pending(a))
		return false;
	for (uint32_t i = 0; i < t->nrelids; i++)
	{
		pgo_oid relid = pgo_truncate_relid(t, i);
		relcache_entry *e = relcache_get(a->rels, relid);
		apply_rel *ar;
		char msg[256];

		if (e == NULL)
		{
			snprintf(msg, sizeof(msg),
			         "a TRUNCATE names relation %u, which no Relation message "
			         "described",
			         relid);
			return apply_fail(a, msg, NULL);
		}
		/* mapping may leave and re-enter the pipeline, which reuses a->sql: map first */
		if ((ar = apply_map(a, e)) == NULL)
			return false;
		if (first == NULL)
			first = e;
	}
	rels = malloc((t->nrelids ? t->nrelids : 1) * sizeof(*rels));
	if (rels == NULL)
		return apply_fail(a, "out of memory", NULL);
	for (uint32_t i = 0; i < t->nrelids; i++)
		rels[i] = relcache_get(a->rels, pgo_truncate_relid(t, i))->user;
	strbuf_reset(&a->sql);
	ok = apply_sql_truncate(&a->sql, rels, t->nrelids,
	                        (t->options & PGO_TRUNCATE_RESTART_IDENTITY) != 0,
	                        (t->options & PGO_TRUNCATE_CASCADE) != 0);
	free(rels);
	if (!ok)
		return apply_fail(a, "out of memory", NULL);
	if (!apply_open_group(a))
		return false;
	a->stats.truncates += t->nrelids;
	return apply_send_sql(a, AP_TRUNCATE, strbuf_data(&a->sql), first);
}

/* ------------------------------------------------- durability of commits */

/* Is a synchronous commit due (the last one is APPLY_SYNC_EVERY_MS old, or the source waits)? */
static bool
apply_sync_due(const applier *a)
{
	return a->opts.synchronous_commit || a->source_waits ||
	       cli_now_ms() - a->sync_commit_ms >= APPLY_SYNC_EVERY_MS;
}

/*
 * COMMIT the open group; synchronous: this one waits for the target's disk
 * (which flushes every asynchronous commit before it too), and its answer
 * moves durable_lsn (an entry with rows 1).
 */
static bool
apply_send_commit(applier *a, bool synchronous)
{
	apply_pending d;

	if (synchronous)
	{
		/* the session's setting is on with apply_opts.synchronous_commit */
		if (!a->opts.synchronous_commit &&
		    !apply_send_sql(a, AP_OTHER, "SET LOCAL synchronous_commit TO on", NULL))
			return false;
		a->sync_commit_ms = cli_now_ms();
	}
	apply_describe(a, &d, AP_COMMIT, NULL, synchronous ? 1 : 0, NULL);
	return apply_pipe_send_prepared(a, &d, APPLY_COMMIT_STMT, 0, NULL, 0);
}

/* Write the progress row and COMMIT the open group; ask for the answers. */
bool
apply_end_group(applier *a)
{
	char lsn[PGO_LSN_STRLEN], prev[PGO_LSN_STRLEN];
	const char *params[3];

	if (a->failed || !apply_send_pending(a))
		return false;
	/* a group ends between source transactions only */
	if (!a->group_open || a->in_txn)
		return apply_poll(a);
	/*
	 * An UPDATE or DELETE that found no row is not an error to the server:
	 * see every answer of the group before committing it (one round trip
	 * per group), unless missing rows are to be skipped anyway. Without one
	 * in flight, the COMMIT follows at once: a statement that fails makes
	 * the server skip the rest of the pipeline, COMMIT with it (and its
	 * answer is what moves committed_lsn), so a light stream's transaction
	 * reaches the target in one round trip, not two.
	 */
	if (!a->opts.skip_missing &&
	    (apply_pipe_holds(a, AP_UPDATE) || apply_pipe_holds(a, AP_DELETE)) && !apply_wait(a, -1))
		return false;
	params[0] = a->opts.slot_name;
	params[1] = pgo_lsn_format(a->group_end_lsn, lsn);
	params[2] = pgo_lsn_format(a->progress_written, prev);
	if (!apply_send_prepared(a, AP_PROGRESS, APPLY_PROGRESS_STMT, 3, params, NULL, 0, NULL, 64) ||
	    !apply_send_commit(a, apply_sync_due(a)))
		return false;
	if (!apply_pipe_sync(a))
		return false;
	a->progress_written = a->group_end_lsn;
	a->group_open = false;
	a->group_txns = 0;
	a->group_bytes = 0;
	return apply_pipe_flush(a);
}

/* ------------------------------------------------- what is on the target's disk */

pgo_lsn
apply_flushed_lsn(const applier *a)
{
	return a->durable_lsn;
}

/*
 * A transaction that only rewrites the progress row where it is, committed
 * synchronously: it flushes the target's WAL past every group before it.
 */
static bool
apply_send_sync_commit(applier *a)
{
	char lsn[PGO_LSN_STRLEN];
	const char *params[3];
	pgo_lsn saved = a->group_end_lsn;
	bool ok;

	/* never into an open group: its COMMIT would commit the group too */
	if (a->group_open)
		return apply_fail(a, "internal error: a synchronous commit inside an open group", NULL);
	params[0] = a->opts.slot_name;
	params[1] = pgo_lsn_format(a->progress_written, lsn);
	params[2] = params[1];
	/* its COMMIT answers for every group sent before it: the newest one's end */
	a->group_end_lsn = a->progress_written;
	ok = apply_send_prepared(a, AP_BEGIN, APPLY_BEGIN_STMT, 0, NULL, NULL, 0, NULL, 0) &&
	     apply_send_prepared(a, AP_PROGRESS, APPLY_PROGRESS_STMT, 3, params, NULL, 0, NULL, 64) &&
	     apply_send_commit(a, true) && apply_pipe_sync(a) && apply_pipe_flush(a);
	a->group_end_lsn = saved;
	return ok;
}

bool
apply_sync_idle(applier *a)
{
	if (a->failed)
		return false;
	if (a->durable_lsn >= a->committed_lsn || apply_busy(a) || !apply_sync_due(a))
		return true;
	return apply_send_sync_commit(a);
}

bool
apply_make_durable(applier *a)
{
	if (a->failed || !apply_wait(a, -1))
		return false;
	/*
	 * A group still open is in the middle of a source transaction (a stop, or
	 * the source gone, while it streamed in): it cannot be committed, and a
	 * synchronous commit sent into it would commit that half transaction with
	 * the progress row before it. It rolls back with the session; the groups
	 * before it become durable with the target's next WAL flush, and are
	 * acknowledged by the next run (their progress row skips them).
	 */
	if (a->group_open || a->durable_lsn >= a->committed_lsn)
		return true;
	return apply_send_sync_commit(a) && apply_wait(a, -1);
}

/* A source transaction that changed nothing here: acknowledge it in order. */
static bool
apply_advance(applier *a, pgo_lsn end_lsn)
{
	pgo_lsn saved = a->group_end_lsn;
	apply_pending d;

	if (a->group_open)
	{
		/* the open group's COMMIT covers it */
		a->group_end_lsn = end_lsn;
		return true;
	}
	a->group_end_lsn = end_lsn;
	apply_describe(a, &d, AP_ADVANCE, NULL, 0, NULL);
	if (!apply_pipe_mark(a, &d))
		return false;
	a->group_end_lsn = saved;
	return true;
}

/* A message the options asked for should never come. */
static bool
apply_unsupported(applier *a, const pgo_message *msg)
{
	char text[512];

	snprintf(text, sizeof(text),
	         "the source sent a %s message, but the apply asks for streaming off and no two-phase "
	         "decoding: check that nothing else changed the slot's options",
	         pgo_msgtype_name(msg->type));
	return apply_fail(a, text, NULL);
}

/* ------------------------------------------------------------------- DDL */

/* Stop on a DDL command: name it, its place, and what the operator can do. */
static bool
apply_ddl_stop(applier *a, const ddl_msg *m, pgo_lsn lsn, const char *why, const char *detail,
               bool fixable)
{
	char text[2048], at[PGO_LSN_STRLEN], txn[PGO_LSN_STRLEN];

	snprintf(text, sizeof(text),
	         "the source's DDL command %s at %s (source transaction committed at %s) %s%s%s: "
	         "%s%s; command text: %.300s",
	         m && m->tag ? m->tag : "(unknown)", pgo_lsn_format(lsn, at),
	         pgo_lsn_format(a->txn_lsn, txn),
	         detail ? "failed on the target (" : "was not replayed (", detail ? detail : why, ")",
	         fixable ? "fix its cause on the target (for example create the missing role or "
	                   "grant the privilege), then run again with --resume; or run it on the "
	                   "target by hand and skip it with --resume --skip-ddl "
	                 : "run it on the target by hand, then skip it with --resume --skip-ddl ",
	         at, m && m->query ? m->query : "(none)");
	return apply_fail(a, text, NULL);
}

/* Run one statement of a DDL replay; on failure stop with the command named. */
static bool
apply_ddl_exec(applier *a, const ddl_msg *m, pgo_lsn lsn, const char *sql, int nparams,
               const char *const *values, char *out, size_t outlen)
{
	PGresult *res = nparams ? PQexecParams(a->conn, sql, nparams, NULL, values, NULL, NULL, 0)
	                        : PQexec(a->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		char detail[1024];

		snprintf(a->sqlstate, sizeof(a->sqlstate), "%s", state ? state : "");
		snprintf(detail, sizeof(detail), "%s", PQresultErrorMessage(res));
		for (size_t n = strlen(detail); n > 0 && detail[n - 1] == '\n'; n--)
			detail[n - 1] = '\0';
		apply_ddl_stop(a, m, lsn, NULL, detail, true);
	}
	else if (out && st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 1)
		snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return ok;
}

/*
 * A captured DDL command (ddl.h): the batches and any COPY before it are sent,
 * then, in the open target transaction and outside pipeline mode, the command
 * runs with the source's search_path; everything the applier knew of the
 * target's relations is forgotten (they are looked up again at their next
 * change), and the transaction's group ends at its COMMIT. Exactly once: the
 * command commits with the progress row, like every change.
 */
static bool
apply_ddl(applier *a, const pgo_logical_message *lm, pgo_lsn lsn)
{
	ddl_msg m;
	char why[1024], saved_path[1024] = "";
	ddl_replay how;
	bool ok = true, utf8;

	if (!a->in_txn || !(lm->flags & PGO_MESSAGE_TRANSACTIONAL))
		return apply_fail(a,
		                  "the source sent a " DDL_MSG_PREFIX " message outside a transaction: "
		                  "something other than the tool's capture emitted it",
		                  NULL);
	if (a->skipping)
		return true;
	/*
	 * Its own option: a message's LSN (the end of its record) may be the
	 * commit LSN of a transaction, which --skip-lsn would skip whole.
	 */
	if (a->opts.skip_ddl_lsn && a->opts.skip_ddl_lsn == lsn)
	{
		char at[PGO_LSN_STRLEN];

		if (!a->opts.quiet)
			event_say("StreamApply", "info", "skipping the DDL command at %s (--skip-ddl)",
			          pgo_lsn_format(lsn, at));
		return true;
	}
	if (!ddl_msg_parse(lm->content, lm->content_len, &m, why, sizeof(why)))
		return apply_ddl_stop(a, NULL, lsn, why, NULL, false);
	if (!ddl_in_scope(&m, a->opts.schemas, a->opts.nschemas, a->opts.ex_schemas,
	                  a->opts.nex_schemas))
	{
		char at[PGO_LSN_STRLEN];

		if (!a->opts.quiet)
			event_say("StreamApply", "info",
			          "the source's %s at %s touches only schemas outside the migration: not "
			          "replayed",
			          m.tag, pgo_lsn_format(lsn, at));
		goto done;
	}
	if (!a->opts.ddl)
	{
		ok = apply_ddl_stop(a, &m, lsn, "--ddl stop: the tool does not replay DDL", NULL, false);
		goto done;
	}
	how = ddl_decide(&m, why, sizeof(why));
	if (how == DDL_REPLAY_NONE)
	{
		ok = apply_ddl_stop(a, &m, lsn, why, NULL, false);
		goto done;
	}
	if (!a->replica_role &&
	    (strcmp(m.tag, "CREATE TRIGGER") == 0 || strcmp(m.tag, "CREATE RULE") == 0))
	{
		/* the applier's own changes would fire it on the target, twice with the source's */
		ok = apply_ddl_stop(a, &m, lsn,
		                    "a trigger or rule would fire on the target for the rows the tool "
		                    "applies, and the target role cannot set session_replication_role",
		                    NULL, false);
		goto done;
	}
	/* everything before the command is sent and answered; the group stays open */
	if (!apply_open_group(a) || !apply_send_pending(a) || !apply_pipe_leave(a))
	{
		ok = false;
		goto done;
	}
	/*
	 * The message is UTF-8 (ddl.h), the session takes the target's encoding
	 * (the rows'): the command runs as UTF-8, the session's own back after it
	 */
	utf8 = a->encoding[0] == '\0' || strcmp(a->encoding, "UTF8") == 0;
	if (!utf8)
		ok = apply_ddl_exec(a, &m, lsn,
		                    "SELECT pg_catalog.set_config('client_encoding', 'UTF8', true)", 0,
		                    NULL, NULL, 0);
	if (ok)
	{
		const char *path[1] = {m.search_path ? m.search_path : ""};

		ok = apply_ddl_exec(a, &m, lsn, "SELECT pg_catalog.current_setting('search_path')", 0, NULL,
		                    saved_path, sizeof(saved_path)) &&
		     apply_ddl_exec(a, &m, lsn, "SELECT pg_catalog.set_config('search_path', $1, true)", 1,
		                    path, NULL, 0);
	}
	if (how == DDL_REPLAY_TEXT)
		ok = ok && apply_ddl_exec(a, &m, lsn, m.query, 0, NULL, NULL, 0);
	for (int i = 0; ok && how == DDL_REPLAY_DEFS && i < m.ndefs; i++)
		ok = apply_ddl_exec(a, &m, lsn, m.defs[i], 0, NULL, NULL, 0);
	/* what the capture did on the source besides (a keyless table's REPLICA IDENTITY FULL) */
	for (int i = 0; ok && i < m.nafter; i++)
		ok = apply_ddl_exec(a, &m, lsn, m.after[i], 0, NULL, NULL, 0);
	/* it may have made a trigger or a foreign key: ask again, in its transaction */
	if (ok && !a->replica_role)
	{
		char fires[8] = "";

		ok = apply_ddl_exec(a, &m, lsn, APPLY_NOTHING_FIRES_SQL, 0, NULL, fires, sizeof(fires));
		a->any_order = ok && strcmp(fires, "t") == 0;
	}
	if (ok)
	{
		const char *path[1] = {saved_path};

		ok = apply_ddl_exec(a, &m, lsn, "SELECT pg_catalog.set_config('search_path', $1, true)", 1,
		                    path, NULL, 0);
	}
	if (ok && !utf8)
	{
		const char *enc[1] = {a->encoding};

		ok = apply_ddl_exec(a, &m, lsn, "SELECT pg_catalog.set_config('client_encoding', $1, true)",
		                    1, enc, NULL, 0);
	}
	/* the target's relations may have changed shape: look each up again at its next change */
	for (size_t i = 0; ok && i < a->rels->rel_cap; i++)
		if (a->rels->rels[i] && a->rels->rels[i]->user)
			apply_rel_free(a->rels->rels[i]);
	if (ok)
	{
		a->ddl_in_txn = true;
		a->stats.ddl++;
		if (!a->opts.quiet)
		{
			char at[PGO_LSN_STRLEN];

			event_say("StreamApply", "info", "replayed the source's %s at %s (%s)", m.tag,
			          pgo_lsn_format(lsn, at),
			          how == DDL_REPLAY_TEXT ? "its text" : "rebuilt from the source's catalog");
		}
		ok = apply_pipe_enter(a);
	}
done:
	ddl_msg_free(&m);
	return ok;
}

bool
apply_message(applier *a, pgo_message *msg, pgo_lsn wal_start, size_t msg_len)
{
	relcache_entry *e = NULL;

	if (a->failed)
		return false;
	a->change_lsn = wal_start;
	switch (msg->type)
	{
		case PGO_MSG_BEGIN:
			a->in_txn = true;
			a->ddl_in_txn = false;
			a->txn_lsn = msg->u.begin.final_lsn;
			a->txn_xid = msg->u.begin.xid;
			/* already applied before a restart, or skipped by the operator */
			a->skipping = msg->u.begin.final_lsn < a->progress_lsn ||
			              (a->opts.skip_lsn && msg->u.begin.final_lsn == a->opts.skip_lsn);
			if (a->skipping && a->opts.skip_lsn == msg->u.begin.final_lsn && !a->opts.quiet)
			{
				char lsn[PGO_LSN_STRLEN];

				event_say("StreamApply", "info",
				          "skipping the source transaction %u committed at %s (--skip-lsn)",
				          msg->u.begin.xid, pgo_lsn_format(msg->u.begin.final_lsn, lsn));
			}
			return true;
		case PGO_MSG_COMMIT:
			a->in_txn = false;
			a->last_commit_time = msg->u.commit.commit_time;
			if (a->skipping)
			{
				a->skipping = false;
				a->stats.skipped_txns++;
				return apply_advance(a, msg->u.commit.end_lsn);
			}
			a->stats.txns++;
			a->group_end_lsn = msg->u.commit.end_lsn;
			if (!a->group_open)
				return apply_advance(a, msg->u.commit.end_lsn);
			a->group_txns++;
			/* a transaction that changed the schema commits on its own */
			if (a->ddl_in_txn || a->group_txns >= a->opts.group_txns ||
			    a->group_bytes >= a->opts.group_bytes)
				return apply_end_group(a);
			return true;
		case PGO_MSG_ORIGIN:
			a->stats.origins++;
			snprintf(a->last_origin, sizeof(a->last_origin), "%.*s", (int)msg->u.origin.name.len,
			         msg->u.origin.name.ptr);
			return true;
		case PGO_MSG_RELATION:
		case PGO_MSG_TYPE:
			return true; /* the caller's relcache has it; mapping happens at first use */
		case PGO_MSG_MESSAGE:
			a->stats.messages++;
			if (msg->u.message.prefix.len == strlen(DDL_MSG_PREFIX) &&
			    memcmp(msg->u.message.prefix.ptr, DDL_MSG_PREFIX, strlen(DDL_MSG_PREFIX)) == 0)
				return apply_ddl(a, &msg->u.message, wal_start);
			return true;
		case PGO_MSG_INSERT:
		case PGO_MSG_UPDATE:
		case PGO_MSG_DELETE:
		case PGO_MSG_TRUNCATE:
			break;
		default:
			return apply_unsupported(a, msg);
	}
	if (!a->in_txn)
		return apply_fail(a, "the source sent a change outside a transaction", NULL);
	if (a->skipping)
		return true;
	a->change_seq++;
	if (msg->type != PGO_MSG_TRUNCATE)
	{
		pgo_oid relid = msg->type == PGO_MSG_INSERT   ? msg->u.insert.relid
		                : msg->type == PGO_MSG_UPDATE ? msg->u.update.relid
		                                              : msg->u.del.relid;

		e = relcache_get(a->rels, relid);
		if (e == NULL)
		{
			char text[128];

			snprintf(text, sizeof(text),
			         "a change for relation %u came before its Relation message", relid);
			return apply_fail(a, text, NULL);
		}
	}
	/* mapping a relation leaves pipeline mode, so do it before BEGIN is queued */
	if (e && apply_map(a, e) == NULL)
		return false;
	if (!apply_open_group(a))
		return false;
	a->group_bytes += msg_len;
	switch (msg->type)
	{
		case PGO_MSG_INSERT:
			return apply_insert(a, e, &msg->u.insert.newtup);
		case PGO_MSG_UPDATE:
			return apply_update(a, e, &msg->u.update);
		case PGO_MSG_DELETE:
			return apply_delete(a, e, &msg->u.del);
		default:
			return apply_truncate(a, &msg->u.truncate);
	}
}

bool
apply_busy(const applier *a)
{
	return a->in_txn || a->group_open || apply_has_pending(a) || a->copy_rel ||
	       apply_commit_in_flight(a) || apply_pipe_holds(a, AP_ADVANCE);
}

bool
apply_lost_target(const applier *a)
{
	/* 08: connection exception; 57P01-57P03: shutdown, crash, cannot connect now */
	return a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK ||
	       strncmp(a->sqlstate, "08", 2) == 0 || strncmp(a->sqlstate, "57P", 3) == 0 ||
	       strstr(a->errmsg, "lost the connection to the target") != NULL;
}
