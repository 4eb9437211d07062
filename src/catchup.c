/*
 * catchup.c — apply a slot's backlog read through SQL (see catchup.h).
 *
 * One chunk: SELECT lsn, data FROM pg_logical_slot_peek_binary_changes(...)
 * in single-row mode, binary results; every row is one pgoutput message,
 * decoded and handed to the sink (the applier, as the stream's are applied,
 * or decode's printer). A row stays allocated while the sink still points
 * into it (the applier's collected INSERT), as the ring's records are held
 * in stream.c. At the chunk's end: settle (commit and make durable, or
 * write and fsync), advance the slot to what the sink keeps, and go on
 * while chunks come back full.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catchup.h"
#include "pgsession.h"

/* The session's work_mem: a chunk's rows are kept in it before they are sent. */
#define CATCHUP_WORK_MEM "64MB"

/* Bytes of rows held for the sink before it is asked to let go of them. */
#define CATCHUP_HOLD_BYTES (8 * 1024 * 1024)

/* Room for a slot's name (NAMEDATALEN). */
#define NAMEDATALEN_MAX 64

/* Bytes of a received chunk kept in memory; the rest of a larger one is applied as it comes. */
#define CATCHUP_ARENA_MAX ((size_t)64 * 1024 * 1024)

/* While a chunk is applied, the next one's rows are read in every this many messages. */
#define CATCHUP_PREFETCH_EVERY 128

/* One message of a received chunk: where its bytes are in the arena. */
typedef struct catchup_rec
{
	pgo_lsn lsn;
	size_t off, len;
} catchup_rec;

/* A received chunk's messages, copied out of their results. */
typedef struct catchup_arena
{
	char *data; /* owned: CATCHUP_ARENA_MAX + 1 bytes, taken at the first message */
	size_t used;
	catchup_rec *recs; /* owned */
	size_t nrecs, caprecs;
} catchup_arena;

typedef struct catchup_state
{
	const catchup_opts *o;
	const catchup_sink *sink; /* borrowed */
	PGconn *conn;             /* owned */
	PGresult **held;          /* owned: rows the sink may still point into */
	size_t nheld, capheld;
	size_t held_bytes;
	bool in_txn;                /* between a Begin and its Commit */
	pgo_lsn upto;               /* where the last chunk read to */
	pgo_lsn flush;              /* the source's flushed WAL when the last chunk was asked for */
	pgo_lsn kept;               /* what the sink keeps: the end of its last settle */
	char temp[NAMEDATALEN_MAX]; /* the temporary copy of the slot the pipelined mode consumes */
	pgo_lsn start;              /* the slot's position when the first chunk was asked for */
	catchup_arena arena;        /* owned: the pipelined mode's chunk being applied */
	/*
	 * The chunk in flight, read while the arena is applied (catchup_prefetch)
	 * and then by catchup_receive: its rows so far (owned), the one that did
	 * not fit (owned), whether its last result is in, and a failure to report.
	 */
	catchup_arena next;
	PGresult *rx_pending;
	long rx_rows;
	uint64_t rx_early; /* rows catchup_prefetch read, every chunk's */
	bool rx_active, rx_done, rx_failed;
	char rx_err[512];
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

const char *
catchup_mode_text(const catchup_stats *st, char *buf, size_t size)
{
	uint64_t early = st->early < st->messages ? st->early : st->messages;

	if (!st->pipelined)
		snprintf(buf, size, "%s", "");
	else
		snprintf(buf, size, " (pipelined, %.0f %% read ahead)",
		         st->messages ? 100.0 * (double)early / (double)st->messages : 0.0);
	return buf;
}

/* Free the rows held for the sink. */
static void
catchup_release(catchup_state *s)
{
	for (size_t i = 0; i < s->nheld; i++)
		PQclear(s->held[i]);
	s->nheld = 0;
	s->held_bytes = 0;
}

/* Keep a row while the sink points into it; false: out of memory. */
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

/* The sink lets go of the rows it points into (the applier sends what it collected); they go. */
static bool
catchup_send(catchup_state *s)
{
	if (s->sink->release && !s->sink->release(s->sink->arg, s->errbuf, s->errlen))
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
	PQclear(s->rx_pending);
	s->rx_pending = NULL;
	s->rx_active = false;
}

/*
 * pg_replication_slot_advance to what the sink keeps, if that is ahead of
 * the slot (a stream's keepalive may have confirmed the slot up to the WAL's
 * end, past the last commit: the server refuses to move a slot back).
 */
static bool
catchup_advance(catchup_state *s, pgo_lsn durable, catchup_stats *st)
{
	char lsn[PGO_LSN_STRLEN];
	const char *params[2];
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

/*
 * The sink keeps what is complete for good (s->kept: all of it with wait,
 * else what it already has); the slot is not moved yet.
 */
static bool
catchup_keep(catchup_state *s, bool wait)
{
	pgo_lsn kept = 0;

	if (!catchup_send(s) || !s->sink->settle(s->sink->arg, wait, &kept, s->errbuf, s->errlen))
		return false;
	if (kept > s->kept)
		s->kept = kept;
	return true;
}

/* The sink keeps what is complete for good; the slot is advanced to it. */
static bool
catchup_settle(catchup_state *s, catchup_stats *st)
{
	return catchup_keep(s, true) && catchup_advance(s, s->kept, st);
}

typedef enum
{
	CHUNK_FULL,  /* read up to its bound, short of the end: more may follow */
	CHUNK_SHORT, /* the backlog ended within it */
	CHUNK_STOP,
	CHUNK_ENDPOS,
	CHUNK_FAILED,
} catchup_chunk;

/* The position and the message of a row of the slot's changes; false with errbuf set. */
static bool
catchup_row_fields(catchup_state *s, PGresult *row, pgo_lsn *lsn, char **data, size_t *len)
{
	const char *lsnbytes = PQgetvalue(row, 0, 0);

	if (PQnfields(row) != 2 || PQgetlength(row, 0, 0) != 8 || PQgetisnull(row, 0, 1))
	{
		snprintf(s->errbuf, s->errlen, "unexpected row from the changes of the slot \"%s\"",
		         s->o->slot);
		return false;
	}
	*lsn = 0;
	for (int i = 0; i < 8; i++)
		*lsn = *lsn << 8 | (uint8_t)lsnbytes[i];
	*data = PQgetvalue(row, 0, 1);
	*len = (size_t)PQgetlength(row, 0, 1);
	return true;
}

/*
 * Decode one message and hand it to the sink; *endpos instead when it
 * begins a transaction past endpos. False with errbuf set.
 */
static bool
catchup_message(catchup_state *s, char *data, size_t len, pgo_lsn lsn, pgo_decoder *dec,
                catchup_stats *st, bool *endpos)
{
	pgo_message msg;

	if (pgo_decode(dec, data, len, &msg) != PGO_ERR_OK)
	{
		char where[PGO_LSN_STRLEN], detail[512];

		pgo_error_format(&dec->error, detail, sizeof(detail));
		snprintf(s->errbuf, s->errlen,
		         "malformed message from the source at %s: %s (the same message would come "
		         "again: please report this)",
		         pgo_lsn_format(lsn, where), detail);
		return false;
	}
	if (msg.type == PGO_MSG_BEGIN && s->o->endpos && msg.u.begin.final_lsn > s->o->endpos)
	{
		*endpos = true;
		return true;
	}
	/* a changed Relation frees the statements a collected INSERT still uses */
	if (msg.type == PGO_MSG_RELATION && !catchup_send(s))
		return false;
	if (!s->sink->message(s->sink->arg, &msg, lsn, len, s->errbuf, s->errlen))
		return false;
	if (msg.type == PGO_MSG_BEGIN)
		s->in_txn = true;
	else if (msg.type == PGO_MSG_COMMIT)
		s->in_txn = false;
	st->messages++;
	st->bytes += len;
	return true;
}

/* Hand one row (one message; the row is ours to keep or free) to the sink; false with errbuf set. */
static bool
catchup_row(catchup_state *s, PGresult *row, pgo_decoder *dec, catchup_stats *st, bool *endpos)
{
	char *data;
	size_t len;
	pgo_lsn lsn;

	if (!catchup_row_fields(s, row, &lsn, &data, &len) ||
	    !catchup_message(s, data, len, lsn, dec, st, endpos))
		goto failed;
	if (*endpos || s->sink->holds == NULL || !s->sink->holds(s->sink->arg))
	{
		catchup_release(s);
		PQclear(row);
	}
	else if (!catchup_hold(s, row, len))
	{
		snprintf(s->errbuf, s->errlen, "out of memory");
		goto failed;
	}
	else if (s->held_bytes >= CATCHUP_HOLD_BYTES && !catchup_send(s))
		return false; /* the row is held: freed with the others */
	return true;
failed:
	PQclear(row);
	return false;
}

pgo_lsn
catchup_taper(pgo_lsn chunk, pgo_lsn from, pgo_lsn end, pgo_lsn start)
{
	pgo_lsn floor = from > start ? (from - start) / CATCHUP_TAPER_FLOOR_DIV : 0;
	pgo_lsn half = end > from ? (end - from) / 2 : 0;

	if (floor < CATCHUP_FIRST_CHUNK_BYTES)
		floor = CATCHUP_FIRST_CHUNK_BYTES;
	if (half < floor)
		half = floor;
	return chunk < half ? chunk : half;
}

/*
 * Where the next chunk reads to: the source's flushed WAL, at most
 * chunk bytes of WAL past where the last chunk ended (or the slot's
 * position, if that is ahead; tapered towards the end when taper), and
 * not past endpos. *to_end: that is the flushed WAL's end (nothing
 * committed before it is left after this chunk); *to_endpos: it is
 * endpos, which is flushed.
 */
static bool
catchup_bounds(catchup_state *s, pgo_lsn chunk, bool taper, pgo_lsn *upto, bool *to_end,
               bool *to_endpos)
{
	const char *params[1] = {s->o->slot};
	PGresult *res =
	    PQexecParams(s->conn,
	                 "SELECT pg_catalog.pg_current_wal_flush_lsn(), confirmed_flush_lsn "
	                 "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
	                 1, NULL, params, NULL, NULL, 0);
	pgo_lsn flush = 0, confirmed = 0, from;
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	if (ok && PQntuples(res) != 1)
	{
		snprintf(s->errbuf, s->errlen, "the replication slot \"%s\" no longer exists on the source",
		         s->o->slot);
		PQclear(res);
		return false;
	}
	ok = ok && pgo_lsn_parse(PQgetvalue(res, 0, 0), &flush) &&
	     (PQgetisnull(res, 0, 1) || pgo_lsn_parse(PQgetvalue(res, 0, 1), &confirmed));
	PQclear(res);
	if (!ok)
	{
		catchup_fail_pq(s, "could not read the source's WAL position");
		return false;
	}
	s->flush = flush;
	if (s->start == 0)
		s->start = confirmed;
	from = s->upto > confirmed ? s->upto : confirmed;
	if (taper)
		chunk = catchup_taper(
		    chunk, from, s->o->endpos && s->o->endpos < flush ? s->o->endpos : flush, s->start);
	*upto = flush - from > chunk ? from + chunk : flush;
	*to_end = *upto == flush;
	*to_endpos = false;
	/*
	 * endpos within this chunk (so flushed; it may be the flushed end
	 * itself): endpos + 1, as the server stops after the record that
	 * reaches upto_lsn, so a commit record that starts at endpos is still
	 * read (the stream applies it too), and one that starts after endpos is
	 * left by catchup_row. The server reads no further than its flushed WAL.
	 */
	if (s->o->endpos && s->o->endpos <= *upto)
	{
		*upto = s->o->endpos + 1;
		*to_end = false;
		*to_endpos = true;
	}
	return true;
}

/* The largest chunk of WAL: --catch-up-chunk, or the default. */
static pgo_lsn
catchup_max_chunk(const catchup_state *s)
{
	return s->o->chunk_bytes > 0 ? (pgo_lsn)s->o->chunk_bytes : CATCHUP_DEFAULT_CHUNK_BYTES;
}

/*
 * Ask for slot's changes up to upto (peek, or get: consume them), binary
 * results in single-row mode; the answer is read with PQgetResult.
 */
static bool
catchup_send_query(catchup_state *s, const char *slot, bool consume, pgo_lsn upto,
                   const char *pubnames)
{
	char sql[320], lsn[PGO_LSN_STRLEN], proto[12];
	const char *params[4];

	snprintf(sql, sizeof(sql),
	         "SELECT lsn, data FROM pg_catalog.pg_logical_slot_%s_binary_changes($1, $2::pg_lsn, "
	         "NULL, 'proto_version', $3, 'publication_names', $4%s)",
	         consume ? "get" : "peek", s->o->messages ? ", 'messages', 'true'" : "");
	snprintf(proto, sizeof(proto), "%d", s->o->proto_version);
	params[0] = slot;
	params[1] = pgo_lsn_format(upto, lsn);
	params[2] = proto;
	params[3] = pubnames;
	if (!PQsendQueryParams(s->conn, sql, 4, NULL, params, NULL, NULL, 1) ||
	    !PQsetSingleRowMode(s->conn))
	{
		catchup_fail_pq(s, "could not read the slot's changes");
		return false;
	}
	s->rx_active = true;
	s->rx_done = s->rx_failed = false;
	s->rx_rows = 0;
	return true;
}

/* ---- reading a chunk ---- */

static void
catchup_arena_reset(catchup_arena *ar)
{
	ar->used = 0;
	ar->nrecs = 0;
}

/*
 * Copy a message into the arena; false: out of memory, or more than the
 * room left (the caller adds only what fits in CATCHUP_ARENA_MAX).
 */
static bool
catchup_arena_add(catchup_arena *ar, pgo_lsn lsn, const char *data, size_t len)
{
	if (ar->nrecs == ar->caprecs)
	{
		size_t cap = ar->caprecs ? 2 * ar->caprecs : 4096;
		catchup_rec *n = realloc(ar->recs, cap * sizeof(*n));

		if (n == NULL)
			return false;
		ar->recs = n;
		ar->caprecs = cap;
	}
	/*
	 * The data's room is taken whole at first: pages are the system's only
	 * once written, and the arena never moves (growing by doubling copied
	 * every byte to fresh pages, whose first writes were a fifth of the
	 * client's time on a backlog of small changes).
	 */
	if (ar->data == NULL)
	{
		ar->data = malloc(CATCHUP_ARENA_MAX + 1);
		if (ar->data == NULL)
			return false;
	}
	/* and a byte after it, as libpq and the ring leave: the decoder may end a value there */
	if (ar->used + len > CATCHUP_ARENA_MAX)
		return false;
	memcpy(ar->data + ar->used, data, len);
	ar->data[ar->used + len] = '\0';
	ar->recs[ar->nrecs++] = (catchup_rec){.lsn = lsn, .off = ar->used, .len = len};
	ar->used += len + 1;
	return true;
}

/*
 * Copy a row of the chunk in flight into s->next if it fits within hold
 * bytes: 1 copied (and the row freed), 0 it does not fit, -1 a failure
 * (errbuf set); with 0 and -1 the row is still the caller's.
 */
static int
catchup_next_add(catchup_state *s, PGresult *row, size_t hold)
{
	pgo_lsn lsn;
	char *data;
	size_t len;

	if (hold == 0)
		return 0;
	if (!catchup_row_fields(s, row, &lsn, &data, &len))
		return -1;
	if (s->next.used + len > hold)
		return 0;
	if (!catchup_arena_add(&s->next, lsn, data, len))
	{
		snprintf(s->errbuf, s->errlen, "out of memory");
		return -1;
	}
	PQclear(row);
	return 1;
}

/* A failure reading the chunk in flight, said when it is received (catchup_receive). */
static void
catchup_rx_fail(catchup_state *s, const char *what, const char *detail)
{
	snprintf(s->rx_err, sizeof(s->rx_err), "%s%s%.*s", what, detail ? ": " : "",
	         detail ? catchup_trimmed(detail) : 0, detail ? detail : "");
	s->rx_failed = true;
}

/*
 * Read what has come of the chunk in flight into s->next, without
 * waiting: the source's rows cross the network while the target applies
 * the arena, not after it (a chunk of small changes is hundreds of
 * thousands of rows). Stops at the first row that does not fit in
 * CATCHUP_ARENA_MAX (kept in rx_pending for catchup_receive), at the
 * result's end, or at a failure (kept for catchup_receive to report).
 */
static void
catchup_prefetch(catchup_state *s)
{
	char what[160];

	if (!s->rx_active || s->rx_done || s->rx_failed || s->rx_pending)
		return;
	snprintf(what, sizeof(what), "could not read the changes of the slot \"%s\"", s->o->slot);
	if (PQconsumeInput(s->conn) == 0)
	{
		catchup_rx_fail(s, what, PQerrorMessage(s->conn));
		return;
	}
	while (!PQisBusy(s->conn))
	{
		PGresult *res = PQgetResult(s->conn);
		ExecStatusType rs;

		if (res == NULL)
		{
			s->rx_done = true;
			return;
		}
		rs = PQresultStatus(res);
		if (rs == PGRES_SINGLE_TUPLE)
		{
			int added = catchup_next_add(s, res, CATCHUP_ARENA_MAX);

			if (added == 0)
				s->rx_pending = res;
			else if (added < 0)
			{
				catchup_rx_fail(s, s->errbuf, NULL);
				PQclear(res);
			}
			if (added <= 0)
				return;
			s->rx_rows++;
			s->rx_early++;
			continue;
		}
		if (rs != PGRES_TUPLES_OK)
			catchup_rx_fail(s, what, PQresultErrorMessage(res));
		PQclear(res);
	}
}

/*
 * Hand the arena's messages to the sink, until a transaction past endpos
 * or a stop (between transactions). They stay where they are until the
 * arena is reset: only after the sink has let go of them (catchup_keep).
 * Applying s->arena, the chunk in flight is read meanwhile (catchup_prefetch).
 */
static bool
catchup_apply_arena(catchup_state *s, catchup_arena *ar, pgo_decoder *dec, catchup_stats *st,
                    bool *endpos, bool *stopping)
{
	for (size_t i = 0; i < ar->nrecs; i++)
	{
		const catchup_rec *r = &ar->recs[i];

		if (ar == &s->arena && i % CATCHUP_PREFETCH_EVERY == CATCHUP_PREFETCH_EVERY - 1)
			catchup_prefetch(s);

		if (!catchup_message(s, ar->data + r->off, r->len, r->lsn, dec, st, endpos))
			return false;
		if (*endpos)
			return true;
		if (s->o->stop && *s->o->stop && !s->in_txn)
		{
			*stopping = true;
			return true;
		}
	}
	return true;
}

/* The next result of the chunk in flight: the row prefetching left, else libpq's. */
static PGresult *
catchup_next_result(catchup_state *s)
{
	PGresult *res = s->rx_pending;

	if (res)
	{
		s->rx_pending = NULL;
		return res;
	}
	return s->rx_done ? NULL : PQgetResult(s->conn);
}

/*
 * Read the chunk in flight: up to hold bytes of it into s->next (the
 * pipelined mode; what catchup_prefetch read is there already), past that
 * (a large transaction; from the first row with 0, the serial mode) what
 * s->next holds goes to the sink and the rest as it comes (*direct), until
 * a transaction past endpos or a stop. *rows: the chunk's rows. False with
 * errbuf set.
 */
static bool
catchup_receive(catchup_state *s, pgo_decoder *dec, catchup_stats *st, size_t hold, long *rows,
                bool *direct, bool *endpos, bool *stopping)
{
	PGresult *res;
	bool failed = false;

	*rows = s->rx_rows;
	*direct = false;
	if (s->rx_failed)
	{
		snprintf(s->errbuf, s->errlen, "%s", s->rx_err);
		catchup_abandon_query(s);
		return false;
	}
	while ((res = catchup_next_result(s)) != NULL)
	{
		ExecStatusType rs = PQresultStatus(res);

		if (rs == PGRES_SINGLE_TUPLE)
		{
			(*rows)++;
			if (!*direct)
			{
				int added = catchup_next_add(s, res, hold);

				if (added < 0)
					goto failed_row;
				if (added > 0)
					continue;
				*direct = true;
				if (!catchup_apply_arena(s, &s->next, dec, st, endpos, stopping))
					goto failed_row;
				if (*endpos || *stopping)
				{
					PQclear(res);
					catchup_abandon_query(s);
					break;
				}
			}
			if (!catchup_row(s, res, dec, st, endpos))
			{
				failed = true;
				catchup_abandon_query(s);
				break;
			}
			if (s->o->stop && *s->o->stop && !s->in_txn)
				*stopping = true;
			if (*endpos || *stopping)
			{
				catchup_abandon_query(s);
				break;
			}
			continue;
		failed_row:
			PQclear(res);
			failed = true;
			catchup_abandon_query(s);
			break;
		}
		if (rs != PGRES_TUPLES_OK && !failed)
		{
			const char *m = PQresultErrorMessage(res);

			snprintf(s->errbuf, s->errlen, "could not read the changes of the slot \"%s\": %.*s",
			         s->o->slot, catchup_trimmed(m), m);
			failed = true;
		}
		PQclear(res);
	}
	s->rx_active = false;
	return !failed;
}

/* Nothing is left open inside a transaction at the end of a chunk. */
static bool
catchup_between_transactions(catchup_state *s, long rows)
{
	if (!s->in_txn)
		return true;
	snprintf(s->errbuf, s->errlen,
	         "the source's changes ended inside a transaction (after %ld rows)", rows);
	return false;
}

/* Say how far the catch-up has come: up to the end of the chunk the sink was handed. */
static void
catchup_report(const catchup_state *s, pgo_lsn applied, const catchup_stats *st)
{
	if (s->o->progress)
		s->o->progress(s->o->progress_arg, applied, s->flush, st);
}

/* Peek one chunk and hand it to the sink. */
static catchup_chunk
catchup_chunk_run(catchup_state *s, const char *pubnames, pgo_decoder *dec, catchup_stats *st)
{
	long rows = 0;
	pgo_lsn to;
	bool to_end, to_endpos;
	bool direct, endpos = false, stopping = false;

	/* bounded by WAL, not by changes: see catchup_bounds */
	if (!catchup_bounds(s, catchup_max_chunk(s), false, &to, &to_end, &to_endpos) ||
	    !catchup_send_query(s, s->o->slot, false, to, pubnames))
		return CHUNK_FAILED;
	st->chunks++;
	/* every row to the sink as it comes */
	if (!catchup_receive(s, dec, st, 0, &rows, &direct, &endpos, &stopping) ||
	    !catchup_between_transactions(s, rows))
		return CHUNK_FAILED;
	if (!catchup_settle(s, st))
		return CHUNK_FAILED;
	if (endpos)
		return CHUNK_ENDPOS;
	if (stopping)
		return CHUNK_STOP;
	s->upto = to;
	if (to_endpos)
		return CHUNK_ENDPOS; /* read up to endpos, and it was there to read */
	/*
	 * Read up to the flushed end: the stream goes on from there. Nothing
	 * committed in a whole chunk of WAL: a transaction longer than that is
	 * under way, and the stream reads it as it comes rather than the source
	 * decoding it again for every chunk until it ends.
	 */
	if (to_end || rows == 0)
		return CHUNK_SHORT;
	catchup_report(s, to, st);
	return CHUNK_FULL;
}

/* The serial catch-up: peek a chunk of the slot itself, apply it, advance, again. */
static catchup_end
catchup_serial(catchup_state *s, const char *pubnames, pgo_decoder *dec, catchup_stats *st)
{
	for (;;)
	{
		catchup_chunk c;

		if (s->o->stop && *s->o->stop)
			return CATCHUP_STOPPED;
		c = catchup_chunk_run(s, pubnames, dec, st);
		if (c != CHUNK_FULL)
			return c == CHUNK_SHORT    ? CATCHUP_DONE
			       : c == CHUNK_STOP   ? CATCHUP_STOPPED
			       : c == CHUNK_ENDPOS ? CATCHUP_ENDPOS
			                           : CATCHUP_FAILED;
	}
}

/* ---- pipelined: the source decodes the next chunk while this one is applied ---- */
/*
 * A temporary copy of the slot, at the slot's position, for this session
 * to consume chunk after chunk: the slot itself stays where the sink's
 * settles move it. False when the source cannot make one (before 12, no
 * free slot): the serial mode reads the slot itself then.
 */
static bool
catchup_temp_slot(catchup_state *s)
{
	const char *params[2];
	PGresult *res;
	bool ok;

	if (PQserverVersion(s->conn) < 120000)
		return false;
	snprintf(s->temp, sizeof(s->temp), "pg_dbmigrator_catchup_%d", PQbackendPID(s->conn));
	params[0] = s->o->slot;
	params[1] = s->temp;
	res = PQexecParams(s->conn,
	                   "SELECT 1 FROM pg_catalog.pg_copy_logical_replication_slot($1, $2, true)", 2,
	                   NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	if (!ok)
		s->temp[0] = '\0';
	return ok;
}

/*
 * The end of the pipelined catch-up: everything handed to the sink kept
 * for good, the slot advanced to it; end, or CATCHUP_FAILED.
 */
static catchup_end
catchup_finish(catchup_state *s, catchup_stats *st, catchup_end end)
{
	return catchup_settle(s, st) ? end : CATCHUP_FAILED;
}

/*
 * The pipelined catch-up: the chunk in flight on the temporary slot is
 * decoded by the source while the arena's chunk is applied, and its rows
 * are read into s->next as they come meanwhile (catchup_prefetch), the rest
 * after. Between chunks the sink settles without waiting (the target goes
 * on with the last statements while the next chunk is asked for), and the
 * slot itself is advanced to what the sink keeps, between queries, once
 * that is a largest chunk ahead of it, and at the end.
 */
static catchup_end
catchup_pipelined(catchup_state *s, const char *pubnames, pgo_decoder *dec, catchup_stats *st)
{
	pgo_lsn max = catchup_max_chunk(s);
	pgo_lsn chunk = max < CATCHUP_FIRST_CHUNK_BYTES ? max : CATCHUP_FIRST_CHUNK_BYTES;
	bool have = false, last = false, last_endpos = false;
	/* no tapering after a chunk with nothing committed: a long transaction is decoded again by each */
	bool taper = true;
	long have_rows = 0;

	for (;;)
	{
		pgo_lsn to = 0;
		bool to_end = false, to_endpos = false, inflight = false;
		bool endpos = false, stopping = false, direct = false;
		long rows = 0;

		/*
		 * The connection is idle: the slot follows what the sink keeps, once
		 * that is a largest chunk ahead of it (the source decodes the WAL
		 * between again to advance it, and the apply waits meanwhile: at
		 * every small chunk that was a tenth of the time; the end of the
		 * catch-up advances it in any case).
		 */
		if (s->kept >= (st->advanced ? st->advanced : s->start) + max &&
		    !catchup_advance(s, s->kept, st))
			return CATCHUP_FAILED;
		if (!last)
		{
			/* a stop before the next chunk: the one received is dropped, unapplied */
			if (s->o->stop && *s->o->stop)
				return catchup_finish(s, st, CATCHUP_STOPPED);
			if (!catchup_bounds(s, chunk, taper, &to, &to_end, &to_endpos) ||
			    !catchup_send_query(s, s->temp, true, to, pubnames))
				return CATCHUP_FAILED;
			inflight = true;
			st->chunks++;
		}
		if (have)
		{
			bool ok = catchup_apply_arena(s, &s->arena, dec, st, &endpos, &stopping) &&
			          ((endpos || stopping) || catchup_between_transactions(s, have_rows)) &&
			          catchup_keep(s, false);

			catchup_arena_reset(&s->arena);
			have = false;
			if (!ok)
				return CATCHUP_FAILED;
			if (endpos || stopping)
			{
				if (inflight)
					catchup_abandon_query(s);
				return catchup_finish(s, st, endpos ? CATCHUP_ENDPOS : CATCHUP_STOPPED);
			}
			if (inflight)
				catchup_report(s, s->upto, st);
		}
		if (!inflight) /* the last chunk is applied */
			return catchup_finish(s, st, last_endpos ? CATCHUP_ENDPOS : CATCHUP_DONE);
		if (!catchup_receive(s, dec, st, CATCHUP_ARENA_MAX, &rows, &direct, &endpos, &stopping))
			return CATCHUP_FAILED;
		s->upto = to;
		if (direct)
		{
			/* the chunk went to the sink as it came */
			bool ok = ((endpos || stopping) || catchup_between_transactions(s, rows)) &&
			          catchup_keep(s, false);

			catchup_arena_reset(&s->next);
			if (!ok)
				return CATCHUP_FAILED;
			if (endpos || stopping)
				return catchup_finish(s, st, endpos ? CATCHUP_ENDPOS : CATCHUP_STOPPED);
			catchup_report(s, to, st);
		}
		else
		{
			/* the chunk received is the one to apply; the applied one's memory receives the next */
			catchup_arena spare = s->arena;

			s->arena = s->next;
			s->next = spare;
			have = rows > 0;
			have_rows = rows;
		}
		/*
		 * The last: read up to the flushed end or to endpos, or nothing
		 * committed in a chunk of the largest size (a transaction longer
		 * than that: see catchup_chunk_run). Nothing committed in a smaller
		 * one: the next is of the largest size at once, as each decodes
		 * that transaction again from its start.
		 */
		last = to_end || to_endpos || (rows == 0 && chunk == max);
		last_endpos = to_endpos;
		taper = rows > 0;
		chunk = rows == 0 || chunk * 2 > max ? max : chunk * 2;
	}
}

catchup_end
catchup_run_sink(const catchup_opts *o, pgo_decoder *dec, const catchup_sink *sink,
                 catchup_stats *st, char *errbuf, size_t errlen)
{
	catchup_state s = {.o = o, .sink = sink, .errbuf = errbuf, .errlen = errlen};
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
	if (catchup_temp_slot(&s))
	{
		st->pipelined = true;
		end = catchup_pipelined(&s, pubnames, dec, st);
		st->early = s.rx_early;
	}
	else
		end = catchup_serial(&s, pubnames, dec, st);
	/*
	 * On a failure the slot stays where it was last advanced: the next run
	 * reads the rest again and the progress row skips what the target has.
	 */
	catchup_release(&s);
	free(s.held);
	free(s.arena.data);
	free(s.arena.recs);
	free(s.next.data);
	free(s.next.recs);
	PQclear(s.rx_pending);
	/* the temporary slot goes with the session */
	PQfinish(s.conn);
	return end;
}

/* ---- the applier as a sink ---- */

typedef struct catchup_apply_sink
{
	relcache *rels; /* borrowed */
	applier *a;     /* borrowed */
} catchup_apply_sink;

static bool
catchup_apply_failed(applier *a, char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "%s", a->errmsg[0] ? a->errmsg : "apply failed");
	return false;
}

static bool
catchup_apply_message(void *arg, pgo_message *msg, pgo_lsn lsn, size_t len, char *errbuf,
                      size_t errlen)
{
	catchup_apply_sink *k = arg;

	if (!relcache_observe(k->rels, msg, errbuf, errlen))
		return false;
	/* the stream counts the CopyData's leading 'w' in a record's length */
	return apply_message(k->a, msg, lsn, len + 1) || catchup_apply_failed(k->a, errbuf, errlen);
}

static bool
catchup_apply_holds(void *arg)
{
	return apply_has_pending(((catchup_apply_sink *)arg)->a);
}

static bool
catchup_apply_release(void *arg, char *errbuf, size_t errlen)
{
	catchup_apply_sink *k = arg;

	return apply_send_pending(k->a) || catchup_apply_failed(k->a, errbuf, errlen);
}

static bool
catchup_apply_settle(void *arg, bool wait, pgo_lsn *kept, char *errbuf, size_t errlen)
{
	catchup_apply_sink *k = arg;

	/* without waiting: commit, and from time to time a commit that waits for the disk */
	if (!apply_end_group(k->a) ||
	    !(wait ? apply_make_durable(k->a) : apply_sync_idle(k->a) && apply_poll(k->a)))
		return catchup_apply_failed(k->a, errbuf, errlen);
	*kept = apply_flushed_lsn(k->a);
	return true;
}

catchup_end
catchup_run(const catchup_opts *o, pgo_decoder *dec, relcache *rels, applier *a, catchup_stats *st,
            char *errbuf, size_t errlen)
{
	catchup_apply_sink k = {.rels = rels, .a = a};
	catchup_sink sink = {.arg = &k,
	                     .message = catchup_apply_message,
	                     .holds = catchup_apply_holds,
	                     .release = catchup_apply_release,
	                     .settle = catchup_apply_settle};

	return catchup_run_sink(o, dec, &sink, st, errbuf, errlen);
}
