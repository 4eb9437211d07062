/*
 * catchup.c — apply a slot's backlog read through SQL (see catchup.h).
 *
 * One chunk: SELECT lsn, data FROM pg_logical_slot_peek_binary_changes(...)
 * in single-row mode, binary results; every row is one pgoutput message,
 * decoded and applied as the stream's are. A row stays allocated while the
 * applier still points into it (apply_has_pending), as the ring's records
 * are held in stream.c. At the chunk's end: commit, make durable, advance
 * the slot to what is durable, and go on while chunks come back full.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catchup.h"
#include "pgsession.h"

/* The session's work_mem: a chunk's rows are kept in it before they are sent. */
#define CATCHUP_WORK_MEM "64MB"

/* Bytes of rows held for the applier before the collected statements are sent. */
#define CATCHUP_HOLD_BYTES (8 * 1024 * 1024)

typedef struct catchup_state
{
	const catchup_opts *o;
	PGconn *conn;    /* owned */
	PGresult **held; /* owned: rows the applier may still point into */
	size_t nheld, capheld;
	size_t held_bytes;
	char *errbuf;
	size_t errlen;
} catchup_state;

bool
catchup_publication_names(const char *const *pubs, char *buf, size_t size)
{
	size_t pos = 0;

	for (int i = 0; pubs[i]; i++)
	{
		if (pos + 4 + 2 * strlen(pubs[i]) >= size)
			return false;
		if (i > 0)
			buf[pos++] = ',';
		buf[pos++] = '"';
		for (const char *p = pubs[i]; *p; p++)
		{
			if (*p == '"')
				buf[pos++] = '"';
			buf[pos++] = *p;
		}
		buf[pos++] = '"';
	}
	if (pos >= size)
		return false;
	buf[pos] = '\0';
	return true;
}

/* Free the rows held for the applier. */
static void
catchup_release(catchup_state *s)
{
	for (size_t i = 0; i < s->nheld; i++)
		PQclear(s->held[i]);
	s->nheld = 0;
	s->held_bytes = 0;
}

/* Keep a row while the applier points into it; false: out of memory. */
static bool
catchup_hold(catchup_state *s, PGresult *row, size_t len)
{
	if (s->nheld == s->capheld)
	{
		size_t cap = s->capheld ? 2 * s->capheld : 1024;
		PGresult **n = realloc(s->held, cap * sizeof(*n));

		if (n == NULL)
			return false;
		s->held = n;
		s->capheld = cap;
	}
	s->held[s->nheld++] = row;
	s->held_bytes += len;
	return true;
}

/* Send what the applier collected, then the rows it pointed into may go. */
static bool
catchup_send(catchup_state *s, applier *a)
{
	if (!apply_send_pending(a))
		return false;
	catchup_release(s);
	return true;
}

/* The length of a server message without its trailing newline and blanks. */
static int
catchup_trimmed(const char *m)
{
	size_t n = strlen(m);

	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	return (int)n;
}

static void
catchup_fail_pq(catchup_state *s, const char *what)
{
	const char *detail = PQerrorMessage(s->conn);

	snprintf(s->errbuf, s->errlen, "%s: %.*s", what, catchup_trimmed(detail), detail);
}

/* Drop the rest of a result the server is still sending (after a stop or a failure). */
static void
catchup_abandon_query(catchup_state *s)
{
	PGcancel *c = PQgetCancel(s->conn);
	PGresult *res;

	if (c)
	{
		char ignored[256];

		(void)PQcancel(c, ignored, sizeof(ignored));
		PQfreeCancel(c);
	}
	while ((res = PQgetResult(s->conn)) != NULL)
		PQclear(res);
}

/*
 * pg_replication_slot_advance to what the target keeps, if that is ahead of
 * the slot (a stream's keepalive may have confirmed the slot up to the WAL's
 * end, past the last commit: the server refuses to move a slot back).
 */
static bool
catchup_advance(catchup_state *s, applier *a, catchup_stats *st)
{
	char lsn[PGO_LSN_STRLEN];
	const char *params[2];
	pgo_lsn durable = apply_flushed_lsn(a);
	PGresult *res;
	bool ok;

	if (durable == 0 || durable <= st->advanced)
		return true;
	params[0] = s->o->slot;
	params[1] = pgo_lsn_format(durable, lsn);
	res = PQexecParams(s->conn,
	                   "SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2::pg_lsn) "
	                   "FROM pg_catalog.pg_replication_slots "
	                   "WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn",
	                   2, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	if (!ok)
	{
		char what[160];

		snprintf(what, sizeof(what), "could not advance the slot \"%s\" to %s", s->o->slot, lsn);
		catchup_fail_pq(s, what);
		return false;
	}
	st->advanced = durable;
	return true;
}

/* Commit what is complete, make it durable, advance the slot. */
static bool
catchup_settle(catchup_state *s, applier *a, catchup_stats *st)
{
	if (!catchup_send(s, a) || !apply_end_group(a) || !apply_make_durable(a))
	{
		snprintf(s->errbuf, s->errlen, "%s", a->errmsg[0] ? a->errmsg : "apply failed");
		return false;
	}
	return catchup_advance(s, a, st);
}

typedef enum
{
	CHUNK_FULL,  /* as many changes as asked for: more may follow */
	CHUNK_SHORT, /* the backlog ended within it */
	CHUNK_STOP,
	CHUNK_ENDPOS,
	CHUNK_FAILED,
} catchup_chunk;

/* Apply one row (one message; the row is ours to keep or free); false with errbuf set. */
static bool
catchup_row(catchup_state *s, PGresult *row, pgo_decoder *dec, relcache *rels, applier *a,
            catchup_stats *st, bool *endpos)
{
	pgo_message msg;
	const char *lsnbytes = PQgetvalue(row, 0, 0);
	char *data = PQgetvalue(row, 0, 1);
	size_t len = (size_t)PQgetlength(row, 0, 1);
	pgo_lsn lsn = 0;

	if (PQnfields(row) != 2 || PQgetlength(row, 0, 0) != 8 || PQgetisnull(row, 0, 1))
	{
		snprintf(s->errbuf, s->errlen, "unexpected row from pg_logical_slot_peek_binary_changes");
		goto failed;
	}
	for (int i = 0; i < 8; i++)
		lsn = lsn << 8 | (uint8_t)lsnbytes[i];
	if (pgo_decode(dec, data, len, &msg) != PGO_ERR_OK)
	{
		char where[PGO_LSN_STRLEN], detail[512];

		pgo_error_format(&dec->error, detail, sizeof(detail));
		snprintf(s->errbuf, s->errlen,
		         "malformed message from the source at %s: %s (the same message would come "
		         "again: please report this)",
		         pgo_lsn_format(lsn, where), detail);
		goto failed;
	}
	if (msg.type == PGO_MSG_BEGIN && s->o->endpos && msg.u.begin.final_lsn > s->o->endpos)
	{
		*endpos = true;
		PQclear(row);
		return true;
	}
	/* a changed Relation frees the statements a collected INSERT still uses */
	if (msg.type == PGO_MSG_RELATION && !catchup_send(s, a))
		goto apply_failed;
	if (!relcache_observe(rels, &msg, s->errbuf, s->errlen))
		goto failed;
	if (!apply_message(a, &msg, lsn, len + 1))
		goto apply_failed;
	st->messages++;
	st->bytes += len;
	if (!apply_has_pending(a))
	{
		catchup_release(s);
		PQclear(row);
	}
	else if (!catchup_hold(s, row, len))
	{
		snprintf(s->errbuf, s->errlen, "out of memory");
		goto failed;
	}
	else if (s->held_bytes >= CATCHUP_HOLD_BYTES && !catchup_send(s, a))
	{
		snprintf(s->errbuf, s->errlen, "%s", a->errmsg[0] ? a->errmsg : "apply failed");
		return false; /* the row is held: freed with the others */
	}
	return true;
apply_failed:
	snprintf(s->errbuf, s->errlen, "%s", a->errmsg[0] ? a->errmsg : "apply failed");
failed:
	PQclear(row);
	return false;
}

/*
 * Is endpos already in the source's flushed WAL? Then a short chunk read up
 * to endpos has everything before it (a later endpos may still be coming).
 */
static bool
catchup_endpos_flushed(catchup_state *s, bool *flushed)
{
	PGresult *res = PQexec(s->conn, "SELECT pg_catalog.pg_current_wal_flush_lsn()");
	pgo_lsn flush = 0;
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	          pgo_lsn_parse(PQgetvalue(res, 0, 0), &flush);

	PQclear(res);
	if (!ok)
	{
		catchup_fail_pq(s, "could not read the source's WAL position");
		return false;
	}
	*flushed = s->o->endpos <= flush;
	return true;
}

/* Peek one chunk and apply it. */
static catchup_chunk
catchup_chunk_run(catchup_state *s, const char *pubnames, pgo_decoder *dec, relcache *rels,
                  applier *a, catchup_stats *st)
{
	static const char sql_msgs[] =
	    "SELECT lsn, data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, "
	    "$3::int, 'proto_version', $4, 'publication_names', $5, 'messages', 'true')";
	static const char sql_plain[] =
	    "SELECT lsn, data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, "
	    "$3::int, 'proto_version', $4, 'publication_names', $5)";
	char upto[PGO_LSN_STRLEN], chunk[24], proto[12];
	const char *params[5];
	long rows = 0;
	long want = s->o->chunk > 0 ? s->o->chunk : CATCHUP_DEFAULT_CHUNK;
	bool endpos = false, stopping = false, failed = false, endpos_flushed = false;
	PGresult *res;

	if (s->o->endpos && !catchup_endpos_flushed(s, &endpos_flushed))
		return CHUNK_FAILED;

	snprintf(chunk, sizeof(chunk), "%ld", want);
	snprintf(proto, sizeof(proto), "%d", s->o->proto_version);
	params[0] = s->o->slot;
	params[1] = s->o->endpos ? pgo_lsn_format(s->o->endpos, upto) : NULL;
	params[2] = chunk;
	params[3] = proto;
	params[4] = pubnames;
	if (!PQsendQueryParams(s->conn, s->o->messages ? sql_msgs : sql_plain, 5, NULL, params, NULL,
	                       NULL, 1) ||
	    !PQsetSingleRowMode(s->conn))
	{
		catchup_fail_pq(s, "could not read the slot's changes");
		return CHUNK_FAILED;
	}
	st->chunks++;
	while ((res = PQgetResult(s->conn)) != NULL)
	{
		ExecStatusType rs = PQresultStatus(res);

		/* the loop is left at a failure, endpos or a stop: a row here is one to apply */
		if (rs == PGRES_SINGLE_TUPLE)
		{
			rows++;
			if (!catchup_row(s, res, dec, rels, a, st, &endpos))
			{
				failed = true;
				catchup_abandon_query(s);
				break;
			}
			/* catchup_row kept or freed the row; stop between transactions only */
			if (s->o->stop && *s->o->stop && !a->in_txn)
				stopping = true;
			if (endpos || stopping)
			{
				catchup_abandon_query(s);
				break;
			}
			continue;
		}
		if (rs != PGRES_TUPLES_OK && rs != PGRES_SINGLE_TUPLE && !failed)
		{
			const char *m = PQresultErrorMessage(res);

			snprintf(s->errbuf, s->errlen, "could not read the changes of the slot \"%s\": %.*s",
			         s->o->slot, catchup_trimmed(m), m);
			failed = true;
		}
		PQclear(res);
	}
	if (failed)
		return CHUNK_FAILED;
	if (a->in_txn)
	{
		snprintf(s->errbuf, s->errlen,
		         "the source's changes ended inside a transaction (after %ld rows)", rows);
		return CHUNK_FAILED;
	}
	if (!catchup_settle(s, a, st))
		return CHUNK_FAILED;
	if (endpos)
		return CHUNK_ENDPOS;
	if (stopping)
		return CHUNK_STOP;
	if (rows >= want)
		return CHUNK_FULL;
	/* read up to endpos, and it was there to read: nothing before it is left */
	return endpos_flushed ? CHUNK_ENDPOS : CHUNK_SHORT;
}

catchup_end
catchup_run(const catchup_opts *o, pgo_decoder *dec, relcache *rels, applier *a, catchup_stats *st,
            char *errbuf, size_t errlen)
{
	catchup_state s = {.o = o, .errbuf = errbuf, .errlen = errlen};
	pgsession_opts so = {
	    .conninfo = o->source, .role = PGSESSION_SOURCE, .client_encoding = o->client_encoding};
	char pubnames[4096];
	catchup_end end = CATCHUP_FAILED;

	memset(st, 0, sizeof(*st));
	if (!catchup_publication_names(o->publications, pubnames, sizeof(pubnames)))
	{
		snprintf(errbuf, errlen, "too many publications");
		return CATCHUP_FAILED;
	}
	s.conn = pgsession_open(&so, errbuf, errlen);
	if (s.conn == NULL)
		return CATCHUP_FAILED;
	/* named in pg_stat_activity; a chunk's rows kept in memory rather than a temporary file */
	PQclear(PQexec(s.conn, "SET application_name = 'pg_dbmigrator catch-up'"));
	PQclear(PQexec(s.conn, "SET work_mem = '" CATCHUP_WORK_MEM "'"));
	for (;;)
	{
		catchup_chunk c;

		if (o->stop && *o->stop)
		{
			end = CATCHUP_STOPPED;
			break;
		}
		c = catchup_chunk_run(&s, pubnames, dec, rels, a, st);
		if (c == CHUNK_FULL)
			continue;
		end = c == CHUNK_SHORT    ? CATCHUP_DONE
		      : c == CHUNK_STOP   ? CATCHUP_STOPPED
		      : c == CHUNK_ENDPOS ? CATCHUP_ENDPOS
		                          : CATCHUP_FAILED;
		break;
	}
	/*
	 * On a failure the slot stays where it was last advanced: the next run
	 * reads the rest again and the progress row skips what the target has.
	 */
	catchup_release(&s);
	free(s.held);
	PQfinish(s.conn);
	return end;
}
