/*
 * lobsync.c — large objects carried from the source to the target at the
 * cutover (see lobsync.h).
 *
 * The walk, per batch of up to o->batch objects in OID order:
 *
 *   source OIDs ─┐ lobsync_merge_step   ┌─ only on the source: lo_from_bytea with chunk 0,
 *   target OIDs ─┘  (keyset pages)      │  then the chunks copied (lo_get → lo_put); the
 *                                       │  small ones (one chunk) in bulk, per 8 MB
 *                                       ├─ only on the target: lo_unlink
 *                                       └─ on both: chunk 0's length and MD5 for the whole
 *                                          batch in one query per side; a longer object's
 *                                          next chunks in pages of LOBSYNC_PAGE; a differing
 *                                          chunk copied, a longer target cut (lo_truncate64)
 *
 * The server hashes (md5 of each 1 MB lo_get): an unchanged 100 MB object
 * costs 100 × 33 bytes on the wire per side instead of 100 MB. Both servers
 * work at once: each hash query goes to both before either answer is read,
 * and while the target writes chunk i the source already reads chunk i + 1
 * (bench/large-objects.sh: server-side MD5 is slower than sending the bytes
 * to the client on a loopback, but it costs no network).
 *
 * Owns: the results it reads, for the length of a call. Never: writes to
 * the source; never holds more than two chunks of an object's data.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "events.h"
#include "lobsync.h"
#include "strbuf.h"

#define LOBSYNC_PAGE      64       /* chunk hashes asked for at a time, per object and side */
#define LOBSYNC_OIDS      "1000"   /* OIDs listed at a time, per side */
#define LOBSYNC_NAMELEN   64       /* NAMEDATALEN */
#define LOBSYNC_INV_WRITE "131072" /* INV_WRITE (0x20000), libpq/libpq-fs.h */
/* bytes written in one target transaction before it is committed (a kill keeps them) */
#define LOBSYNC_TXN_BYTES (32 * 1024 * 1024)
/* small objects made on the target by one statement: at most this many bytes of them */
#define LOBSYNC_BULK_BYTES (8 * 1024 * 1024)

/*
 * The GRANT statements that re-create the access privileges of large object
 * m (pg_largeobject_metadata AS m), the owner's own entries aside, sorted:
 * the same text on both sides when they grant the same; "" for none.
 */
#define LOBSYNC_GRANTS_SQL                                                                        \
	"(SELECT coalesce(string_agg(g, '; ' ORDER BY g), '') FROM (SELECT pg_catalog.format("        \
	"'GRANT %s ON LARGE OBJECT %s TO %s%s', e.privilege_type, m.oid, CASE WHEN e.grantee = 0 "    \
	"THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END, CASE " \
	"WHEN e.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS g FROM "                       \
	"pg_catalog.aclexplode(m.lomacl) AS e WHERE e.grantee <> m.lomowner) AS q)"
/* The REVOKE that takes every privilege granted on m away (the owner's aside); "" for none. */
#define LOBSYNC_REVOKES_SQL                                                                        \
	"(SELECT coalesce('REVOKE ALL ON LARGE OBJECT ' || m.oid || ' FROM ' || string_agg(DISTINCT "  \
	"CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE "                                                  \
	"pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END, ', ') || ' CASCADE', '') " \
	"FROM pg_catalog.aclexplode(m.lomacl) AS e WHERE e.grantee <> m.lomowner)"
/* The MD5 of "": an object without grants */
#define LOBSYNC_NO_GRANTS "d41d8cd98f00b204e9800998ecf8427e"

/* 1 MB as SQL text, for the queries below */
#define CHUNK_SQL "1048576"

lobsync_side
lobsync_merge_step(bool have_src, uint32_t src, bool have_tgt, uint32_t tgt)
{
	if (!have_src && !have_tgt)
		return LOBSYNC_DONE;
	if (have_src && (!have_tgt || src < tgt))
		return LOBSYNC_SOURCE_ONLY;
	if (have_tgt && (!have_src || tgt < src))
		return LOBSYNC_TARGET_ONLY;
	return LOBSYNC_BOTH;
}

bool
lobsync_chunk_differs(const lobsync_chunk *s, const lobsync_chunk *t)
{
	/* nothing on the source to write: a longer target is cut, not rewritten */
	if (s->len <= 0)
		return false;
	return t->len != s->len || strcmp(s->md5, t->md5) != 0;
}

bool
lobsync_chunk_is_last(int64_t len)
{
	return len < LOBSYNC_CHUNK;
}

/* ------------------------------------------------------------ OID lists */

/* One side's large objects in OID order, read in keyset pages. */
typedef struct lobsync_list
{
	PGconn *conn;     /* borrowed */
	const char *side; /* "source" or "target", for messages */
	PGresult *page;   /* owned: the current page */
	int row;          /* next row of page */
	uint32_t last;    /* the last OID handed out */
	bool done;        /* no more OIDs (or failed: see failed) */
	bool failed;
	int64_t count;
} lobsync_list;

/*
 * The next OID, its owner's name (copied into owner) and the MD5 of its
 * grants (into acl, 33 bytes); false at the end or on an error.
 */
static bool
lobsync_list_next(lobsync_list *l, uint32_t *oid, char *owner, char *acl, char *errbuf,
                  size_t errlen)
{
	if (l->done)
		return false;
	if (l->page == NULL || l->row >= PQntuples(l->page))
	{
		char after[16];
		const char *params[1] = {after};

		PQclear(l->page);
		snprintf(after, sizeof(after), "%" PRIu32, l->last);
		l->page = PQexecParams(l->conn,
		                       "SELECT m.oid, pg_catalog.pg_get_userbyid(m.lomowner), "
		                       "pg_catalog.md5(" LOBSYNC_GRANTS_SQL ") "
		                       "FROM pg_catalog.pg_largeobject_metadata AS m WHERE m.oid > $1::oid "
		                       "ORDER BY m.oid LIMIT " LOBSYNC_OIDS,
		                       1, NULL, params, NULL, NULL, 0);
		l->row = 0;
		if (PQresultStatus(l->page) != PGRES_TUPLES_OK)
		{
			snprintf(errbuf, errlen, "cannot list the %s's large objects: %s", l->side,
			         PQerrorMessage(l->conn));
			l->failed = l->done = true;
			return false;
		}
		if (PQntuples(l->page) == 0)
		{
			l->done = true;
			return false;
		}
	}
	*oid = (uint32_t)strtoul(PQgetvalue(l->page, l->row, 0), NULL, 10);
	snprintf(owner, LOBSYNC_NAMELEN, "%s", PQgetvalue(l->page, l->row, 1));
	snprintf(acl, 33, "%s", PQgetvalue(l->page, l->row, 2));
	l->row++;
	l->last = *oid;
	l->count++;
	return true;
}

/* ------------------------------------------------------------ the work */

/* One object of a batch. */
typedef struct lobsync_item
{
	uint32_t oid;
	lobsync_side side;
	char src_owner[LOBSYNC_NAMELEN], tgt_owner[LOBSYNC_NAMELEN];
	char src_acl[33], tgt_acl[33]; /* MD5 of each side's grants (LOBSYNC_GRANTS_SQL) */
	lobsync_chunk s0, t0;          /* chunk 0 on each side (t0: BOTH only) */
	bool written;                  /* SOURCE_ONLY: made, with its bytes, by lobsync_bulk_create */
} lobsync_item;

/* The state of one run. */
typedef struct lobsync_run_state
{
	PGconn *src, *tgt;        /* borrowed */
	const lobsync_opts *o;    /* borrowed */
	lobsync_result *r;        /* borrowed */
	char me[LOBSYNC_NAMELEN]; /* the target role, owner of what it creates */
	int64_t t0, last_event;
	char *errbuf;
	size_t errlen;
} lobsync_run_state;

/* The error of a statement on conn about object oid. */
static bool
lobsync_fail(lobsync_run_state *st, PGconn *conn, uint32_t oid, const char *what)
{
	char msg[1024];
	size_t n;

	snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	snprintf(st->errbuf, st->errlen, "large object %" PRIu32 ": %s failed on the %s: %s", oid, what,
	         conn == st->src ? "source" : "target", msg);
	return false;
}

/* Run a statement with text parameters (or statements without); false with the message in st. */
static bool
lobsync_exec(lobsync_run_state *st, PGconn *conn, uint32_t oid, const char *what, const char *sql,
             int n, const char *const *params)
{
	/* without parameters, a simple query: it may hold several statements (the grants) */
	PGresult *res =
	    n == 0 ? PQexec(conn, sql) : PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok ? true : lobsync_fail(st, conn, oid, what);
}

/* A progress event, at most every o->progress_ms. */
static void
lobsync_progress(lobsync_run_state *st)
{
	int64_t now = cli_now_ms();
	int every = st->o->progress_ms > 0 ? st->o->progress_ms : 1000;
	event e;

	if (now - st->last_event < every)
		return;
	st->last_event = now;
	event_begin(&e, st->o->stage);
	event_int(&e, "compared", st->r->compared);
	event_int(&e, "created", st->r->created);
	event_int(&e, "rewritten", st->r->rewritten);
	event_int(&e, "unlinked", st->r->unlinked);
	event_num(&e, "mb_written", (double)st->r->bytes_written / (1024.0 * 1024.0));
	event_end(&e,
	          "large objects: %" PRId64 " compared, %" PRId64 " created, %" PRId64
	          " rewritten, %" PRId64 " unlinked so far",
	          st->r->compared, st->r->created, st->r->rewritten, st->r->unlinked);
}

/* The result of the one query sent on conn (any further result read and dropped). */
static PGresult *
lobsync_collect(PGconn *conn)
{
	PGresult *res = NULL, *r;

	while ((r = PQgetResult(conn)) != NULL)
		if (res == NULL)
			res = r;
		else
			PQclear(r);
	return res;
}

/* The query's text, for the message of a send that failed. */
static const char lobsync_first_sql[] =
    "SELECT length(d), pg_catalog.md5(d) FROM pg_catalog.unnest($1::oid[]) "
    "WITH ORDINALITY AS u(o, n), LATERAL pg_catalog.lo_get(u.o, 0, " CHUNK_SQL
    ") AS d ORDER BY u.n";

/* Is chunk 0 of the item read on that side: both sides' objects, and the source's own. */
static bool
lobsync_reads_first(const lobsync_item *it, bool source)
{
	return it->side == LOBSYNC_BOTH || (source && it->side == LOBSYNC_SOURCE_ONLY);
}

/* The OIDs of the items read on that side as an oid[] literal into arr; their count in *rows. */
static bool
lobsync_first_oids(const lobsync_item *items, int n, bool source, strbuf *arr, int *rows)
{
	bool ok = strbuf_append_cstr(arr, "{");

	*rows = 0;
	for (int i = 0; ok && i < n; i++)
		if (lobsync_reads_first(&items[i], source))
			ok = strbuf_appendf(arr, "%s%" PRIu32, (*rows)++ ? "," : "", items[i].oid);
	return ok && strbuf_append_cstr(arr, "}");
}

/* One side's answer to lobsync_first_sql (res, may be NULL): into s0 or t0. */
static bool
lobsync_first_take(lobsync_run_state *st, PGconn *conn, PGresult *res, lobsync_item *items, int n,
                   int rows)
{
	int row = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != rows)
	{
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(st->errbuf, st->errlen,
		         "cannot read the %s's large objects %" PRIu32 " to %" PRIu32 ": %s%s",
		         conn == st->src ? "source" : "target", items[0].oid, items[n - 1].oid, msg,
		         conn == st->tgt ? " (the target role must own the large objects, or hold "
		                           "SELECT and UPDATE on them)"
		                         : "");
		return false;
	}
	for (int i = 0; i < n; i++)
		if (lobsync_reads_first(&items[i], conn == st->src))
		{
			lobsync_chunk *c = conn == st->src ? &items[i].s0 : &items[i].t0;

			c->len = strtoll(PQgetvalue(res, row, 0), NULL, 10);
			snprintf(c->md5, sizeof(c->md5), "%s", PQgetvalue(res, row, 1));
			row++;
		}
	return true;
}

/*
 * Chunk 0 (length and MD5) of each item of the batch: on both sides for the
 * objects both have (into s0 and t0), on the source for those only there
 * (s0: their length says which are small); one query per side, both
 * servers at work at once.
 */
static bool
lobsync_first_chunks(lobsync_run_state *st, lobsync_item *items, int n)
{
	strbuf as, at;
	PGresult *rs = NULL, *rt = NULL;
	int rows_s = 0, rows_t = 0;
	bool ok, sent_s = false, sent_t = false;

	strbuf_init(&as);
	strbuf_init(&at);
	ok = lobsync_first_oids(items, n, true, &as, &rows_s) &&
	     lobsync_first_oids(items, n, false, &at, &rows_t);
	if (!ok)
		snprintf(st->errbuf, st->errlen, "out of memory");
	if (ok && rows_s > 0)
		sent_s = PQsendQueryParams(st->src, lobsync_first_sql, 1, NULL,
		                           (const char *const[]){strbuf_data(&as)}, NULL, NULL, 0);
	if (ok && rows_t > 0)
		sent_t = PQsendQueryParams(st->tgt, lobsync_first_sql, 1, NULL,
		                           (const char *const[]){strbuf_data(&at)}, NULL, NULL, 0);
	strbuf_free(&as);
	strbuf_free(&at);
	if (sent_s)
		rs = lobsync_collect(st->src);
	if (sent_t)
		rt = lobsync_collect(st->tgt);
	if (ok && rows_s > 0)
		ok = lobsync_first_take(st, st->src, rs, items, n, rows_s);
	if (ok && rows_t > 0)
		ok = lobsync_first_take(st, st->tgt, rt, items, n, rows_t);
	PQclear(rs);
	PQclear(rt);
	return ok;
}

/* One page of chunk hashes of one object. */
typedef struct lobsync_page
{
	PGconn *conn;                    /* borrowed: the side */
	bool ended;                      /* the object's last chunk was seen */
	bool sent;                       /* a query is out */
	lobsync_chunk out[LOBSYNC_PAGE]; /* the page's chunks; -1 after the object's end */
} lobsync_page;

/* Ask for chunks [first, first + LOBSYNC_PAGE) of oid, unless the side has ended. */
static bool
lobsync_page_send(lobsync_run_state *st, lobsync_page *p, uint32_t oid, int64_t first)
{
	char o[16], a[24], b[24];
	const char *params[3] = {o, a, b};

	for (int k = 0; k < LOBSYNC_PAGE; k++)
	{
		p->out[k].len = -1;
		p->out[k].md5[0] = '\0';
	}
	p->sent = false;
	if (p->ended)
		return true;
	snprintf(o, sizeof(o), "%" PRIu32, oid);
	snprintf(a, sizeof(a), "%" PRId64, first);
	snprintf(b, sizeof(b), "%" PRId64, first + LOBSYNC_PAGE - 1);
	p->sent = PQsendQueryParams(p->conn,
	                            "SELECT length(d), pg_catalog.md5(d) FROM "
	                            "pg_catalog.generate_series($2::bigint, $3::bigint) AS i, LATERAL "
	                            "pg_catalog.lo_get($1::oid, i * " CHUNK_SQL ", " CHUNK_SQL
	                            ") AS d ORDER BY i",
	                            3, NULL, params, NULL, NULL, 0);
	return p->sent ? true : lobsync_fail(st, p->conn, oid, "reading chunk hashes");
}

/* The page asked for (if any): its chunks, those after the object's last one at -1. */
static bool
lobsync_page_take(lobsync_run_state *st, lobsync_page *p, uint32_t oid)
{
	PGresult *res;

	if (!p->sent)
		return true;
	p->sent = false;
	res = lobsync_collect(p->conn);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != LOBSYNC_PAGE)
	{
		PQclear(res);
		return lobsync_fail(st, p->conn, oid, "reading chunk hashes");
	}
	for (int k = 0; k < LOBSYNC_PAGE && !p->ended; k++)
	{
		p->out[k].len = strtoll(PQgetvalue(res, k, 0), NULL, 10);
		snprintf(p->out[k].md5, sizeof(p->out[k].md5), "%s", PQgetvalue(res, k, 1));
		p->ended = lobsync_chunk_is_last(p->out[k].len);
	}
	PQclear(res);
	return true;
}

/* Both sides' next page of oid's chunk hashes, both servers at work at once. */
static bool
lobsync_pages(lobsync_run_state *st, lobsync_page *sp, lobsync_page *tp, uint32_t oid,
              int64_t first)
{
	bool ok = lobsync_page_send(st, sp, oid, first);

	ok = ok && lobsync_page_send(st, tp, oid, first);
	/* take both, whatever failed: each connection is left with nothing pending */
	if (!lobsync_page_take(st, sp, oid))
		ok = false;
	if (!lobsync_page_take(st, tp, oid))
		ok = false;
	return ok;
}

/* Ask the source for chunk i of oid (binary), without waiting. */
static bool
lobsync_read_send(lobsync_run_state *st, uint32_t oid, int64_t i)
{
	char o[16], off[24];
	const char *params[2] = {o, off};

	snprintf(o, sizeof(o), "%" PRIu32, oid);
	snprintf(off, sizeof(off), "%" PRId64, i * (int64_t)LOBSYNC_CHUNK);
	if (PQsendQueryParams(st->src, "SELECT pg_catalog.lo_get($1::oid, $2::bigint, " CHUNK_SQL ")",
	                      2, NULL, params, NULL, NULL, 1))
		return true;
	return lobsync_fail(st, st->src, oid, "lo_get");
}

/* The chunk asked for by lobsync_read_send (the caller clears it); NULL with the message. */
static PGresult *
lobsync_read_take(lobsync_run_state *st, uint32_t oid)
{
	PGresult *res = lobsync_collect(st->src);

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		return res;
	PQclear(res);
	lobsync_fail(st, st->src, oid, "lo_get");
	return NULL;
}

/*
 * Write chunk i of oid (data, as lo_get returned it in binary) to the
 * target; with create, the object is made by this write (lo_from_bytea, the
 * same OID).
 */
static bool
lobsync_write(lobsync_run_state *st, uint32_t oid, int64_t i, bool create, const PGresult *data)
{
	char o[16], off[24];
	int len = PQgetlength(data, 0, 0);
	const char *params[3] = {o, off, PQgetvalue(data, 0, 0)};
	const int lens[3] = {0, 0, len}, fmts[3] = {0, 0, 1};
	PGresult *w;
	bool ok;

	if (len == 0 && !create)
		return true;
	snprintf(o, sizeof(o), "%" PRIu32, oid);
	snprintf(off, sizeof(off), "%" PRId64, i * (int64_t)LOBSYNC_CHUNK);
	if (create)
		w = PQexecParams(st->tgt, "SELECT pg_catalog.lo_from_bytea($1::oid, $2::bytea)", 2, NULL,
		                 (const char *const[]){o, params[2]}, (const int[]){0, len},
		                 (const int[]){0, 1}, 0);
	else
		w = PQexecParams(st->tgt, "SELECT pg_catalog.lo_put($1::oid, $2::bigint, $3::bytea)", 3,
		                 NULL, params, lens, fmts, 0);
	ok = PQresultStatus(w) == PGRES_TUPLES_OK;
	PQclear(w);
	if (!ok)
		return lobsync_fail(st, st->tgt, oid, create ? "lo_from_bytea" : "lo_put");
	st->r->chunks_written++;
	st->r->bytes_written += len;
	lobsync_progress(st);
	return true;
}

/* Copy chunk i of oid from the source to the target (an object both sides have). */
static bool
lobsync_copy_chunk(lobsync_run_state *st, uint32_t oid, int64_t i)
{
	PGresult *data;
	bool ok;

	if (!lobsync_read_send(st, oid, i) || (data = lobsync_read_take(st, oid)) == NULL)
		return false;
	ok = lobsync_write(st, oid, i, false, data);
	PQclear(data);
	return ok;
}

/* One value of a query about object oid on conn, into a malloc'd string; NULL with the message. */
static char *
lobsync_value(lobsync_run_state *st, PGconn *conn, uint32_t oid, const char *what, const char *sql)
{
	char o[16];
	const char *params[1] = {o};
	PGresult *res;
	char *v;

	snprintf(o, sizeof(o), "%" PRIu32, oid);
	res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		PQclear(res);
		lobsync_fail(st, conn, oid, what);
		return NULL;
	}
	v = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (v == NULL)
		snprintf(st->errbuf, st->errlen, "out of memory");
	return v;
}

/*
 * With privileges kept (no --no-privileges): when the grants differ, the
 * target's taken away and the source's given (before the owner changes,
 * while the target role may still grant).
 */
static bool
lobsync_set_grants(lobsync_run_state *st, const lobsync_item *it)
{
	char *revokes = NULL, *grants = NULL;
	bool ok;

	if (!st->o->privileges || strcmp(it->src_acl, it->tgt_acl) == 0)
		return true;
	grants = lobsync_value(st, st->src, it->oid, "reading the grants",
	                       "SELECT " LOBSYNC_GRANTS_SQL
	                       " FROM pg_catalog.pg_largeobject_metadata AS m WHERE m.oid = $1::oid");
	revokes = grants
	              ? lobsync_value(st, st->tgt, it->oid, "reading the grants",
	                              "SELECT " LOBSYNC_REVOKES_SQL " FROM "
	                              "pg_catalog.pg_largeobject_metadata AS m WHERE m.oid = $1::oid")
	              : NULL;
	ok = revokes != NULL;
	if (ok && revokes[0])
		ok = lobsync_exec(st, st->tgt, it->oid, "taking its grants away", revokes, 0, NULL);
	if (ok && grants[0])
		ok = lobsync_exec(st, st->tgt, it->oid, "granting as on the source", grants, 0, NULL);
	if (ok)
		st->r->grants_set++;
	free(grants);
	free(revokes);
	return ok;
}

/* With owners kept: the target's owner of oid set to the source's. */
static bool
lobsync_set_owner(lobsync_run_state *st, const lobsync_item *it)
{
	const char *tgt_owner = it->tgt_owner;

	char *name;
	char sql[256];
	bool ok;

	if (!st->o->owners || strcmp(it->src_owner, tgt_owner) == 0)
		return true;
	name = PQescapeIdentifier(st->tgt, it->src_owner, strlen(it->src_owner));
	if (name == NULL)
		return lobsync_fail(st, st->tgt, it->oid, "quoting the owner's name");
	snprintf(sql, sizeof(sql), "ALTER LARGE OBJECT %" PRIu32 " OWNER TO %s", it->oid, name);
	PQfreemem(name);
	ok = lobsync_exec(st, st->tgt, it->oid, "setting the owner", sql, 0, NULL);
	if (ok)
		st->r->owners_set++;
	return ok;
}

/* Is the item a small object only on the source, not yet made (lobsync_bulk_create's)? */
static bool
lobsync_bulk_member(const lobsync_item *it)
{
	return it->side == LOBSYNC_SOURCE_ONLY && !it->written && lobsync_chunk_is_last(it->s0.len);
}

/* A big-endian 32-bit integer appended to b. */
static bool
lobsync_put_int32(strbuf *b, uint32_t v)
{
	const char be[4] = {(char)(v >> 24), (char)(v >> 16), (char)(v >> 8), (char)v};

	return strbuf_append(b, be, 4);
}

/*
 * Items [from, to) of the batch (small objects only on the source): their
 * bytes read in one query, and made on the target in one statement (an
 * oid[] and a bytea[] in binary, lo_from_bytea of each pair).
 */
static bool
lobsync_bulk_group(lobsync_run_state *st, lobsync_item *items, int from, int to)
{
	strbuf oids, arr;
	PGresult *res = NULL, *w = NULL;
	int count = 0, row = 0;
	bool ok;

	strbuf_init(&oids);
	strbuf_init(&arr);
	ok = strbuf_append_cstr(&oids, "{");
	for (int i = from; ok && i < to; i++)
		if (lobsync_bulk_member(&items[i]))
			ok = strbuf_appendf(&oids, "%s%" PRIu32, count++ ? "," : "", items[i].oid);
	ok = ok && strbuf_append_cstr(&oids, "}");
	if (!ok)
		snprintf(st->errbuf, st->errlen, "out of memory");
	if (ok && count > 0)
	{
		res = PQexecParams(st->src,
		                   "SELECT pg_catalog.lo_get(u.o, 0, " CHUNK_SQL ") FROM "
		                   "pg_catalog.unnest($1::oid[]) WITH ORDINALITY AS u(o, n) ORDER BY u.n",
		                   1, NULL, (const char *const[]){strbuf_data(&oids)}, NULL, NULL, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != count)
			ok = lobsync_fail(st, st->src, items[from].oid, "reading small objects");
	}
	/* the bytea[] in binary: 1 dimension, no NULLs, element type bytea (17), 1-based */
	if (ok && count > 0 &&
	    !(lobsync_put_int32(&arr, 1) && lobsync_put_int32(&arr, 0) && lobsync_put_int32(&arr, 17) &&
	      lobsync_put_int32(&arr, (uint32_t)count) && lobsync_put_int32(&arr, 1)))
		ok = false;
	for (int k = 0; ok && k < count; k++)
		ok = lobsync_put_int32(&arr, (uint32_t)PQgetlength(res, k, 0)) &&
		     strbuf_append(&arr, PQgetvalue(res, k, 0), (size_t)PQgetlength(res, k, 0));
	if (!ok && st->errbuf[0] == '\0')
		snprintf(st->errbuf, st->errlen, "out of memory");
	if (ok && count > 0)
	{
		w = PQexecParams(
		    st->tgt,
		    "SELECT count(pg_catalog.lo_from_bytea(u.o, u.d)) FROM "
		    "ROWS FROM (pg_catalog.unnest($1::oid[]), pg_catalog.unnest($2::bytea[])) AS u(o, d)",
		    2, NULL, (const char *const[]){strbuf_data(&oids), strbuf_data(&arr)},
		    (const int[]){0, (int)strbuf_len(&arr)}, (const int[]){0, 1}, 0);
		if (PQresultStatus(w) != PGRES_TUPLES_OK)
			ok = lobsync_fail(st, st->tgt, items[from].oid, "lo_from_bytea of small objects");
	}
	for (int i = from; ok && i < to; i++)
		if (lobsync_bulk_member(&items[i]))
		{
			items[i].written = true;
			st->r->chunks_written++;
			st->r->bytes_written += PQgetlength(res, row++, 0);
		}
	PQclear(res);
	PQclear(w);
	strbuf_free(&oids);
	strbuf_free(&arr);
	return ok;
}

/*
 * The batch's small objects only on the source (chunk 0 is all of them),
 * made on the target in groups of at most LOBSYNC_BULK_BYTES: one query per
 * side and group instead of two per object.
 */
static bool
lobsync_bulk_create(lobsync_run_state *st, lobsync_item *items, int n)
{
	int from = 0;
	int64_t bytes = 0;

	for (int i = 0; i < n; i++)
	{
		if (!lobsync_bulk_member(&items[i]))
			continue;
		if (bytes + items[i].s0.len > LOBSYNC_BULK_BYTES)
		{
			if (!lobsync_bulk_group(st, items, from, i))
				return false;
			from = i;
			bytes = 0;
		}
		bytes += items[i].s0.len;
	}
	return lobsync_bulk_group(st, items, from, n);
}

/*
 * An object only on the source: created with its OID, every chunk copied;
 * the source reads chunk i + 1 while the target writes chunk i.
 */
static bool
lobsync_create(lobsync_run_state *st, const lobsync_item *it)
{
	PGresult *data;
	bool more = true, ok = true;

	if (it->written) /* by lobsync_bulk_create */
	{
		st->r->created++;
		return lobsync_set_grants(st, it) && lobsync_set_owner(st, it);
	}
	if (!lobsync_read_send(st, it->oid, 0))
		return false;
	for (int64_t i = 0; ok && more; i++)
	{
		if ((data = lobsync_read_take(st, it->oid)) == NULL)
			return false;
		more = !lobsync_chunk_is_last(PQgetlength(data, 0, 0));
		if (more && !lobsync_read_send(st, it->oid, i + 1))
		{
			PQclear(data);
			return false;
		}
		ok = lobsync_write(st, it->oid, i, i == 0, data);
		PQclear(data);
	}
	if (!ok)
	{
		/* the next chunk asked for: read and dropped, so the source's session is clean */
		if (more)
			PQclear(lobsync_collect(st->src));
		return false;
	}
	st->r->created++;
	return lobsync_set_grants(st, it) && lobsync_set_owner(st, it);
}

/* The target's object cut to len bytes. */
static bool
lobsync_truncate(lobsync_run_state *st, uint32_t oid, int64_t len)
{
	char o[16], l[24];
	const char *params[2] = {o, l};

	snprintf(o, sizeof(o), "%" PRIu32, oid);
	snprintf(l, sizeof(l), "%" PRId64, len);
	st->r->truncated++;
	return lobsync_exec(
	    st, st->tgt, oid, "lo_truncate64",
	    "SELECT pg_catalog.lo_truncate64(pg_catalog.lo_open($1::oid, " LOBSYNC_INV_WRITE
	    "), $2::bigint)",
	    2, params);
}

/* One chunk compared (i, s against t): copied when it differs; sizes summed. */
static bool
lobsync_compare_chunk(lobsync_run_state *st, uint32_t oid, int64_t i, const lobsync_chunk *s,
                      const lobsync_chunk *t, int64_t *src_size, int64_t *tgt_size, bool *changed)
{
	if (s->len > 0)
		*src_size += s->len;
	if (t->len > 0)
		*tgt_size += t->len;
	if (!lobsync_chunk_differs(s, t))
		return true;
	*changed = true;
	return lobsync_copy_chunk(st, oid, i);
}

/*
 * An object on both sides: compared chunk by chunk (chunk 0 from the batch's
 * query, then pages), the differing chunks copied, a longer target cut.
 */
static bool
lobsync_compare(lobsync_run_state *st, const lobsync_item *it)
{
	lobsync_page sp = {.conn = st->src, .ended = lobsync_chunk_is_last(it->s0.len)};
	lobsync_page tp = {.conn = st->tgt, .ended = lobsync_chunk_is_last(it->t0.len)};
	int64_t src_size = 0, tgt_size = 0;
	bool changed = false;

	st->r->compared++;
	if (!lobsync_compare_chunk(st, it->oid, 0, &it->s0, &it->t0, &src_size, &tgt_size, &changed))
		return false;
	for (int64_t first = 1; !sp.ended || !tp.ended; first += LOBSYNC_PAGE)
	{
		if (!lobsync_pages(st, &sp, &tp, it->oid, first))
			return false;
		lobsync_progress(st);
		for (int k = 0; k < LOBSYNC_PAGE; k++)
			if (!lobsync_compare_chunk(st, it->oid, first + k, &sp.out[k], &tp.out[k], &src_size,
			                           &tgt_size, &changed))
				return false;
	}
	if (tgt_size > src_size)
	{
		changed = true;
		if (!lobsync_truncate(st, it->oid, src_size))
			return false;
	}
	if (changed)
		st->r->rewritten++;
	return lobsync_set_grants(st, it) && lobsync_set_owner(st, it);
}

/* One batch: chunk 0 of each object on both sides, then each object, in one target transaction. */
static bool
lobsync_batch(lobsync_run_state *st, lobsync_item *items, int n)
{
	char o[16];
	const char *params[1] = {o};
	int64_t since = st->r->bytes_written;

	if (!lobsync_first_chunks(st, items, n))
		return false;
	if (!lobsync_exec(st, st->tgt, items[0].oid, "BEGIN", "BEGIN", 0, NULL))
		return false;
	if (!lobsync_bulk_create(st, items, n))
	{
		PQclear(PQexec(st->tgt, "ROLLBACK"));
		return false;
	}
	for (int i = 0; i < n; i++)
	{
		const lobsync_item *it = &items[i];
		bool ok = true;

		snprintf(o, sizeof(o), "%" PRIu32, it->oid);
		switch (it->side)
		{
			case LOBSYNC_SOURCE_ONLY:
				ok = lobsync_create(st, it);
				break;
			case LOBSYNC_TARGET_ONLY:
				ok = lobsync_exec(st, st->tgt, it->oid, "lo_unlink",
				                  "SELECT pg_catalog.lo_unlink($1::oid)", 1, params);
				st->r->unlinked += ok;
				break;
			case LOBSYNC_BOTH:
				ok = lobsync_compare(st, it);
				break;
			case LOBSYNC_DONE:
				break;
		}
		if (!ok)
		{
			PQclear(PQexec(st->tgt, "ROLLBACK"));
			return false;
		}
		lobsync_progress(st);
		if (st->o->stop && *st->o->stop)
		{
			/* a second Ctrl+C: keep what is written, stop */
			PQclear(PQexec(st->tgt, "COMMIT"));
			snprintf(st->errbuf, st->errlen,
			         "interrupted while carrying large objects over (what was written stays): "
			         "run again with --resume to finish");
			return false;
		}
		/* many big objects: what is written is committed as it goes */
		if (st->r->bytes_written - since > LOBSYNC_TXN_BYTES && i + 1 < n)
		{
			if (!lobsync_exec(st, st->tgt, it->oid, "COMMIT", "COMMIT", 0, NULL) ||
			    !lobsync_exec(st, st->tgt, it->oid, "BEGIN", "BEGIN", 0, NULL))
				return false;
			since = st->r->bytes_written;
		}
	}
	return lobsync_exec(st, st->tgt, items[n - 1].oid, "COMMIT", "COMMIT", 0, NULL);
}

/*
 * The merge of both sides' lists, a batch at a time. The target's list never
 * sees an object this run creates: an object is created only once the merge
 * has passed its OID, which is below the target's next OID already read
 * (every later page starts above that) or the target's list has ended.
 */
static bool
lobsync_walk(lobsync_run_state *st, lobsync_item *items, int batch)
{
	lobsync_list ls = {.conn = st->src, .side = "source"}, lt = {.conn = st->tgt, .side = "target"};
	uint32_t so = 0, to = 0;
	char sown[LOBSYNC_NAMELEN] = "", town[LOBSYNC_NAMELEN] = "", sacl[33] = "", tacl[33] = "";
	bool have_s, have_t, ok = true;
	int n = 0;

	have_s = lobsync_list_next(&ls, &so, sown, sacl, st->errbuf, st->errlen);
	have_t = lobsync_list_next(&lt, &to, town, tacl, st->errbuf, st->errlen);
	while (ok && !ls.failed && !lt.failed)
	{
		lobsync_side side = lobsync_merge_step(have_s, so, have_t, to);
		lobsync_item *it = &items[n];

		if (side != LOBSYNC_DONE)
		{
			memset(it, 0, sizeof(*it));
			it->side = side;
			it->oid = side == LOBSYNC_TARGET_ONLY ? to : so;
			memcpy(it->src_owner, sown, sizeof(sown));
			memcpy(it->src_acl, sacl, sizeof(sacl));
			memcpy(it->tgt_owner, town, sizeof(town));
			memcpy(it->tgt_acl, tacl, sizeof(tacl));
			if (side == LOBSYNC_SOURCE_ONLY)
			{
				/* what lo_from_bytea makes: owned by the target role, no grants */
				snprintf(it->tgt_owner, sizeof(it->tgt_owner), "%s", st->me);
				snprintf(it->tgt_acl, sizeof(it->tgt_acl), "%s", LOBSYNC_NO_GRANTS);
			}
			n++;
			if (side != LOBSYNC_TARGET_ONLY)
				have_s = lobsync_list_next(&ls, &so, sown, sacl, st->errbuf, st->errlen);
			if (side != LOBSYNC_SOURCE_ONLY)
				have_t = lobsync_list_next(&lt, &to, town, tacl, st->errbuf, st->errlen);
		}
		if (n > 0 && (n == batch || side == LOBSYNC_DONE))
		{
			ok = lobsync_batch(st, items, n);
			n = 0;
		}
		if (side == LOBSYNC_DONE)
			break;
		if (st->o->stop && *st->o->stop)
		{
			snprintf(st->errbuf, st->errlen,
			         "interrupted while carrying large objects over (what was written stays): "
			         "run again with --resume to finish");
			ok = false;
		}
	}
	ok = ok && !ls.failed && !lt.failed;
	st->r->src_objects = ls.count;
	st->r->tgt_objects = lt.count;
	PQclear(ls.page);
	PQclear(lt.page);
	return ok;
}

bool
lobsync_run(PGconn *src, PGconn *tgt, const lobsync_opts *o, lobsync_result *r, char *errbuf,
            size_t errlen)
{
	lobsync_run_state st = {
	    .src = src, .tgt = tgt, .o = o, .r = r, .errbuf = errbuf, .errlen = errlen};
	int batch = o->batch > 0 ? o->batch : 256;
	lobsync_item *items;
	PGresult *res;
	bool ok;

	memset(r, 0, sizeof(*r));
	st.t0 = st.last_event = cli_now_ms();
	res = PQexec(tgt, "SELECT current_user");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		snprintf(errbuf, errlen, "cannot read the target's role: %s", PQerrorMessage(tgt));
		PQclear(res);
		return false;
	}
	snprintf(st.me, sizeof(st.me), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	items = calloc((size_t)batch, sizeof(*items));
	if (items == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		return false;
	}
	/* one view of the source: a write that comes late is either all in or all out */
	ok = lobsync_exec(&st, src, 0, "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0,
	                  NULL);
	if (ok)
	{
		ok = lobsync_walk(&st, items, batch);
		PQclear(PQexec(src, ok ? "COMMIT" : "ROLLBACK"));
	}
	free(items);
	r->seconds = (double)(cli_now_ms() - st.t0) / 1000.0;
	return ok;
}
